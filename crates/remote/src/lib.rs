//! Reading a SQLite database that lives on another host, over SSH.
//!
//! What it does:
//! - [`Address`]: `ssh://[user@]host[:port]/path` and scp's `[user@]host:path`
//!   (a `:` before any `/` makes it remote; `./a:b` is local).
//! - [`helper::serve`]: the PROD host's side, `refresh-dev remote-helper`:
//!   a private, consistent copy of PROD first (PROD's writers never wait for
//!   the network), then hashes and pages from that copy, over a small framed,
//!   versioned protocol ([`frame`]) on stdin and stdout.
//! - [`client::fetch`]: the DEV host's side: runs the system `ssh` (so
//!   `~/.ssh/config`, the agent, `known_hosts` and ProxyJump apply; never a
//!   prompt: `BatchMode=yes`), sends the hashes of the base it kept from the
//!   last refresh, by groups and then by page where a group differs, and
//!   receives only the differing pages, zstd-compressed (the helper adapts
//!   the level to whether the link or the compressing is the slow part).
//!   The result is
//!   checked against the helper's whole-file hash before it replaces the
//!   base, atomically.
//!
//! What it does not do: it never writes the remote file, never accepts a
//! host key, holds no SSH library in-process, and makes the snapshot of
//! PROD itself only through the copy function its caller gives the helper.

pub mod address;
pub mod client;
pub mod digest;
mod error;
pub mod frame;
pub mod helper;

pub use address::{Address, BadAddress, RemoteFile};
pub use client::{ask, fetch, Answer, Fetch, Observer, Transfer};
pub use error::Error;
