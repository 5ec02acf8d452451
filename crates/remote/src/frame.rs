//! The helper's protocol: frames on the ssh channel, each `kind` (1 byte),
//! `len` (4 bytes, little-endian) and `len` bytes of payload, written with
//! [`Out`] and read with [`In`]. Integers are little-endian; strings and
//! byte strings are a 4-byte length and the bytes.

use std::io::{self, Read, Write};

/// The protocol's version: both sides must speak the same one.
pub const PROTOCOL: u32 = 4;
/// What the helper says first, before its version.
pub const MAGIC: &[u8; 20] = b"refresh-dev remote\0\x01";
/// The most groups whose page hashes one `PageHashes` frame holds (4 MiB of
/// hashes): a PROD of any size fits in frames well under [`MAX_FRAME`].
pub const PAGE_HASH_GROUPS: usize = 1024;
/// The largest frame either side accepts.
pub const MAX_FRAME: u32 = 64 << 20;
/// `Open`'s flags: serve PROD in place, with no private copy.
pub const IN_PLACE: u8 = 1;
/// `Open`'s flags: the client holds a base and will send its groups'
/// hashes, so the helper hashes its own groups ahead, beside the exchange.
/// Without it (a first copy, a plan's question) no group is hashed ahead.
pub const HAS_BASE: u8 = 2;

/// The kinds of frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Helper: MAGIC, protocol, its version, OS, architecture.
    Hello = 1,
    /// Client: the remote path, the wait for PROD's writers (ms), the job,
    /// and flags ([`IN_PLACE`], [`HAS_BASE`]).
    Open = 2,
    /// Helper: a refusal or a failure (exit status, code, message).
    Error = 3,
    /// Helper: page size, page count, file length, mode, seconds taken, the job's result.
    Info = 4,
    /// Client: pages per group, the base's page size and count, a hash per group.
    Groups = 5,
    /// Helper: the groups whose hashes differ.
    Want = 6,
    /// Client: a hash per page of each wanted group, in order, over as many
    /// frames as it takes (at most [`PAGE_HASH_GROUPS`] groups each).
    PageHashes = 7,
    /// Helper: pages, zstd-compressed: their length before compression, then
    /// (compressed) their count, each one's number (u32), and their bytes.
    Data = 8,
    /// Helper: every page has been sent (how many), and the whole hash
    /// ([`crate::digest`]: the BLAKE3 of its groups' hashes).
    Done = 9,
    /// Client: finished; the helper removes its private copy and exits.
    Bye = 10,
}

impl Kind {
    fn of(byte: u8) -> Option<Kind> {
        use Kind::*;
        [Hello, Open, Error, Info, Groups, Want, PageHashes, Data, Done, Bye]
            .into_iter()
            .find(|k| *k as u8 == byte)
    }
}

/// A frame's payload being built.
#[derive(Debug, Default)]
pub struct Out(pub Vec<u8>);

impl Out {
    pub fn u8(mut self, v: u8) -> Out {
        self.0.push(v);
        self
    }
    pub fn u32(mut self, v: u32) -> Out {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(mut self, v: u64) -> Out {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn bytes(mut self, v: &[u8]) -> Out {
        self.0.extend_from_slice(&(v.len() as u32).to_le_bytes());
        self.0.extend_from_slice(v);
        self
    }
    pub fn str(self, v: &str) -> Out {
        self.bytes(v.as_bytes())
    }
    pub fn raw(mut self, v: &[u8]) -> Out {
        self.0.extend_from_slice(v);
        self
    }
    /// Writes the frame and flushes: returns the bytes written.
    pub fn send(self, kind: Kind, to: &mut impl Write) -> io::Result<u64> {
        self.send_with(kind, &[], to)
    }
    /// Writes the frame with `tail` after what was built (not copied into
    /// it), and flushes: returns the bytes written.
    pub fn send_with(self, kind: Kind, tail: &[u8], to: &mut impl Write) -> io::Result<u64> {
        let len = u32::try_from(self.0.len() + tail.len()).map_err(|_| io::Error::other("frame too large"))?;
        to.write_all(&[kind as u8])?;
        to.write_all(&len.to_le_bytes())?;
        to.write_all(&self.0)?;
        to.write_all(tail)?;
        to.flush()?;
        Ok(5 + u64::from(len))
    }
}

/// A frame received: its kind and payload, read field by field.
#[derive(Debug)]
pub struct In {
    pub kind: Kind,
    data: Vec<u8>,
    at: usize,
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("malformed frame: {what}"))
}

impl In {
    /// Reads one frame: `None` at a clean end of the stream.
    pub fn read(from: &mut impl Read) -> io::Result<Option<In>> {
        In::read_into(from, Vec::new())
    }

    /// [`In::read`] into `data`'s memory (a frame's, given back by
    /// [`In::into_data`]): a stream of large frames allocates once.
    pub fn read_into(from: &mut impl Read, mut data: Vec<u8>) -> io::Result<Option<In>> {
        let mut head = [0u8; 5];
        match from.read_exact(&mut head[..1]) {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            r => r?,
        }
        from.read_exact(&mut head[1..])?;
        let kind = Kind::of(head[0]).ok_or_else(|| malformed("unknown kind"))?;
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
        if len > MAX_FRAME {
            return Err(malformed("too long"));
        }
        data.clear();
        data.resize(len as usize, 0);
        from.read_exact(&mut data)?;
        Ok(Some(In { kind, data, at: 0 }))
    }

    /// The bytes on the wire.
    pub fn wire_len(&self) -> u64 {
        5 + self.data.len() as u64
    }

    fn take(&mut self, n: usize) -> io::Result<&[u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| malformed("short"))?;
        let out = &self.data[self.at..end];
        self.at = end;
        Ok(out)
    }
    pub fn u8(&mut self) -> io::Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> io::Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn u64(&mut self) -> io::Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    pub fn bytes(&mut self) -> io::Result<Vec<u8>> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    pub fn str(&mut self) -> io::Result<String> {
        String::from_utf8(self.bytes()?).map_err(|_| malformed("not UTF-8"))
    }
    pub fn raw(&mut self, n: usize) -> io::Result<Vec<u8>> {
        Ok(self.take(n)?.to_vec())
    }
    /// The payload's memory, for [`In::read_into`].
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }
    /// How many bytes of the payload are left to read.
    pub fn remaining(&self) -> usize {
        self.data.len() - self.at
    }
    /// What is left of the payload.
    pub fn rest(&mut self) -> &[u8] {
        let out = &self.data[self.at..];
        self.at = self.data.len();
        out
    }
}

/// The runs of consecutive numbers in `pages`, as `(i, j)`: `pages[i..j]`
/// follow each other, so they are read or written in one call.
pub(crate) fn runs(pages: &[u64]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        if i >= pages.len() {
            return None;
        }
        let mut j = i + 1;
        while j < pages.len() && pages[j] == pages[j - 1] + 1 {
            j += 1;
        }
        let run = (i, j);
        i = j;
        Some(run)
    })
}

/// A larger pipe (1 MiB, where the system allows) carries a frame in fewer
/// hand-overs between processes. Best effort: a pipe that keeps its size
/// only costs speed.
pub fn grow_pipe(fd: &impl std::os::fd::AsRawFd) {
    // SAFETY: F_SETPIPE_SZ on a descriptor we hold; a failure changes nothing.
    unsafe {
        libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20);
    }
}

/// A page's or a group's hash: the first 16 bytes of its BLAKE3.
pub fn short_hash(bytes: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out.copy_from_slice(&blake3::hash(bytes).as_bytes()[..16]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_reads_back_as_written() {
        let mut wire = Vec::new();
        let n = Out::default()
            .u8(7)
            .u32(9)
            .u64(1 << 40)
            .str("héllo")
            .bytes(b"\0x")
            .send(Kind::Info, &mut wire)
            .expect("send");
        assert_eq!(n, wire.len() as u64);
        let mut frame = In::read(&mut wire.as_slice()).expect("read").expect("a frame");
        assert_eq!(frame.kind, Kind::Info);
        assert_eq!(frame.u8().expect("u8"), 7);
        assert_eq!(frame.u32().expect("u32"), 9);
        assert_eq!(frame.u64().expect("u64"), 1 << 40);
        assert_eq!(frame.str().expect("str"), "héllo");
        assert_eq!(frame.bytes().expect("bytes"), b"\0x");
        assert!(frame.u8().is_err(), "nothing left");
        assert!(In::read(&mut &[][..]).expect("eof").is_none());
        assert!(In::read(&mut &[99u8, 0, 0, 0, 0][..]).is_err(), "unknown kind");
        assert!(In::read(&mut &wire[..3]).is_err(), "cut short");
    }
}
