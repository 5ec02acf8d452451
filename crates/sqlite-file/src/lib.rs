//! Low-level care for SQLite database files on disk.
//!
//! What it does:
//! - [`Header`]: reads and checks the 100-byte database header without SQLite
//!   (page size, page count, WAL flag, text encoding, `user_version`, …), so a
//!   file that is not a database, or is truncated, is refused before SQLite
//!   ever opens it. [`inspect`] does the checks every tool makes of an input
//!   file (exists, not a folder, readable, a sound header).
//! - [`FileError`]: the one error for an input file that cannot be used
//!   (missing, a folder, not a database, not readable), wrapped by each tool.
//! - [`Sidecars`]: what lies beside a database (`-wal`, `-shm`, `-journal`), and
//!   whether a `-journal` is live (a header that SQLite would roll back) or an
//!   inactive leftover of `journal_mode=TRUNCATE`/`PERSIST`.
//! - [`open_read_only`]: opens a database for reading so that its bytes and its
//!   folder are left exactly as found (the rule measured in
//!   `shared/notes/sqlite-traps.md`).
//! - [`fs`]: the durable file operations every writer needs: same-file checks
//!   through links, `fsync` of a folder, rename without replacing, free space.
//! - [`sidefile`]: the one home of the files the tools make beside DEV and
//!   PROD (staging, temporary copies, rejects, backups), their names and
//!   their rules: never follow a link, never adopt a sidecar, remove only
//!   what is provably the tool's own. [`lock`]: the lock file that is also a
//!   run's record of what it made. [`users`]: which processes have a file open.
//!
//! What it does not do: it never writes a database, never deletes a sidecar it
//! cannot prove a tool made, and never repairs anything. Callers decide; this
//! crate looks, reports, and applies the side-file rules.

mod error;
pub mod fs;
mod header;
pub mod lock;
mod open;
mod sidecars;
pub mod sidefile;
pub mod users;
pub mod wait;

pub use error::FileError;
pub use header::{inspect, Encoding, Header, HeaderError, InputError, Inspected, JournalFlag, HEADER_LEN};
pub use open::{close_idle_wal, open_read_only, uri_path, OpenMode, ReadOnlyDb};
pub use sidecars::{sidecar_path, wal_page_numbers, JournalState, Sidecar, Sidecars};
