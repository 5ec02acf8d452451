//! The PROD host's side: `refresh-dev remote-helper`, speaking the protocol
//! on stdin and stdout.
//!
//! It first makes a private, consistent copy of PROD (the caller's
//! `make_copy`: `snapshot`'s rules, so PROD is never written and its folder
//! is left as found) in a folder only this user can read, outside PROD's
//! folder; PROD's lock is held only for that local copy, so its writers
//! never wait for the network. Every later read, hash and page comes from
//! that copy, which is removed when the helper ends (and, if a helper was
//! killed, by the next helper of the same user).

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::frame::{short_hash, In, Kind, Out, MAGIC, PROTOCOL};

/// Why the helper could not copy PROD, as the client reports it.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The exit status the client ends with (2 bad input, 3 refused, 4 error).
    pub exit: u8,
    pub code: String,
    pub message: String,
}

/// Makes a consistent copy of the database at the first path into the
/// second, waiting up to the duration for PROD's writers, doing what the
/// client's job (opaque bytes, empty for a plain copy) asks of it. Returns
/// the job's result for the client (opaque bytes). Any other file it makes
/// goes in the copy's folder, which is private and removed with the copy.
pub type MakeCopy<'a> = dyn Fn(&Path, &Path, Duration, &[u8]) -> Result<Vec<u8>, Refusal> + 'a;

/// The helper's private folder: `TMPDIR/refresh-dev-helper.PID`, mode 0700.
struct Private(PathBuf);

impl Private {
    fn create() -> io::Result<Private> {
        let tmp = std::env::temp_dir();
        // A killed helper's copy of PROD must not stay readable on disk.
        let uid = my_uid();
        if let Ok(entries) = std::fs::read_dir(&tmp) {
            for e in entries.flatten() {
                let name = e.file_name();
                let Some(pid) = name
                    .to_str()
                    .and_then(|n| n.strip_prefix("refresh-dev-helper."))
                    .and_then(|p| p.parse::<u32>().ok())
                else {
                    continue;
                };
                let ours = std::fs::symlink_metadata(e.path()).is_ok_and(|m| m.is_dir() && Some(m.uid()) == uid);
                if ours && !sqlite_file::fs::process_alive(pid) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = tmp.join(format!("refresh-dev-helper.{}", std::process::id()));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        Ok(Private(dir))
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// This process's user, as the owner of its `/proc` entry.
fn my_uid() -> Option<u32> {
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// Serves one client on `input`/`output` until it says goodbye or goes.
/// `version` is this refresh-dev's version, for the client's messages.
pub fn serve(input: &mut impl Read, output: &mut impl Write, version: &str, make_copy: &MakeCopy) -> io::Result<()> {
    Out::default()
        .raw(MAGIC)
        .u32(PROTOCOL)
        .str(version)
        .str(std::env::consts::OS)
        .str(std::env::consts::ARCH)
        .send(Kind::Hello, output)?;
    let Some(mut open) = In::read(input)? else {
        return Ok(());
    };
    expect(&open, Kind::Open)?;
    let (path, wait, job) = (open.str()?, Duration::from_millis(open.u64()?), open.bytes()?);
    let private = Private::create()?;
    let copy = private.0.join("prod.db");
    let started = Instant::now();
    let done = match make_copy(Path::new(&path), &copy, wait, &job) {
        Ok(done) => done,
        Err(r) => {
            Out::default()
                .u8(r.exit)
                .str(&r.code)
                .str(&r.message)
                .send(Kind::Error, output)?;
            return Ok(());
        }
    };
    let copy_seconds = started.elapsed();
    let header = sqlite_file::Header::read(&copy).map_err(|e| io::Error::other(e.to_string()))?;
    let page_size = u64::from(header.page_size);
    let mut file = File::open(&copy)?;
    let meta = file.metadata()?;
    let len = meta.len();
    let pages = len / page_size;
    // The whole-file hash, computed beside the exchange (its own handle),
    // sent when the pages have gone.
    let whole = {
        let own = File::open(&copy)?;
        std::thread::spawn(move || whole_hash(&own))
    };
    Out::default()
        .u32(header.page_size)
        .u64(pages)
        .u64(len)
        .u32(meta.permissions().mode() & 0o777)
        .u64(copy_seconds.as_millis() as u64)
        .bytes(&done)
        .send(Kind::Info, output)?;

    let Some(mut groups) = In::read(input)? else {
        return Ok(());
    };
    // A client that asked only for the job's answer (a plan) says goodbye here.
    if groups.kind == Kind::Bye {
        return Ok(());
    }
    expect(&groups, Kind::Groups)?;
    let (group_pages, base_page_size, base_pages) = (u64::from(groups.u32()?.max(1)), groups.u32()?, groups.u64()?);
    let count = groups.u32()? as u64;
    let usable = base_page_size == header.page_size;
    let base_pages = if usable { base_pages } else { 0 };
    let mut wanted = Vec::new();
    for g in 0..count.min(base_pages.div_ceil(group_pages)) {
        let theirs = groups.raw(16)?;
        let range = group_range(g, group_pages, base_pages);
        let same_range = range == group_range(g, group_pages, pages);
        if !same_range || hash_pages(&file, page_size, range)? != theirs.as_slice() {
            wanted.push(g);
        }
    }
    let mut want = Out::default().u32(wanted.len() as u32);
    for g in &wanted {
        want = want.u64(*g);
    }
    want.send(Kind::Want, output)?;

    // Which pages to send: each page of a wanted group whose hash differs,
    // and every page past the base's end.
    let mut send: Vec<u64> = Vec::new();
    if !wanted.is_empty() {
        let Some(mut hashes) = In::read(input)? else {
            return Ok(());
        };
        expect(&hashes, Kind::PageHashes)?;
        for &g in &wanted {
            let (from, to) = group_range(g, group_pages, base_pages);
            for p in from..to {
                let theirs = hashes.raw(16)?;
                if p >= pages {
                    continue;
                }
                if hash_pages(&file, page_size, (p, p + 1))? != theirs.as_slice() {
                    send.push(p);
                }
            }
        }
    }
    send.extend(base_pages..pages);
    send_pages(&mut file, page_size, &send, output)?;
    let whole = whole
        .join()
        .map_err(|_| io::Error::other("the whole-file hash failed"))??;
    Out::default()
        .u64(send.len() as u64)
        .raw(&whole)
        .send(Kind::Done, output)?;
    // The client's goodbye, or its end: either way the private copy goes.
    let _ = In::read(input);
    drop(private);
    Ok(())
}

fn expect(frame: &In, kind: Kind) -> io::Result<()> {
    if frame.kind == kind {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("expected {kind:?}, got {:?}", frame.kind),
        ))
    }
}

/// Pages `[from, to)` of group `g` in a file of `pages` pages (0-based).
pub(crate) fn group_range(g: u64, group_pages: u64, pages: u64) -> (u64, u64) {
    let from = (g * group_pages).min(pages);
    (from, ((g + 1) * group_pages).min(pages))
}

/// The short hash of pages `[from, to)` of `file`: what both sides compare.
pub(crate) fn hash_pages(file: &File, page_size: u64, (from, to): (u64, u64)) -> io::Result<[u8; 16]> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; ((to - from) * page_size) as usize];
    file.read_exact_at(&mut buf, from * page_size)?;
    Ok(short_hash(&buf))
}

/// The BLAKE3 of all of `file`: the helper's promise, the client's check.
pub(crate) fn whole_hash(mut file: &File) -> io::Result<[u8; 32]> {
    file.seek(SeekFrom::Start(0))?;
    let mut hasher = blake3::Hasher::new();
    io::copy(&mut BufReader::with_capacity(1 << 20, file), &mut hasher)?;
    Ok(*hasher.finalize().as_bytes())
}

/// Sends `pages` (0-based, in order) in zstd-compressed frames of about 1 MiB.
/// Consecutive pages are read together, in one call.
fn send_pages(file: &mut File, page_size: u64, pages: &[u64], output: &mut impl Write) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let per_frame = ((1 << 20) / page_size).max(1) as usize;
    let ps = page_size as usize;
    let mut run = Vec::with_capacity(per_frame * ps);
    for chunk in pages.chunks(per_frame) {
        let mut raw = Vec::with_capacity(chunk.len() * (ps + 4));
        let mut i = 0;
        while i < chunk.len() {
            let mut j = i + 1;
            while j < chunk.len() && chunk[j] == chunk[j - 1] + 1 {
                j += 1;
            }
            run.resize((j - i) * ps, 0);
            file.read_exact_at(&mut run, chunk[i] * page_size)?;
            for (k, &p) in chunk[i..j].iter().enumerate() {
                raw.extend_from_slice(&(p as u32).to_le_bytes());
                raw.extend_from_slice(&run[k * ps..(k + 1) * ps]);
            }
            i = j;
        }
        let packed = zstd::bulk::compress(&raw, 1)?;
        Out::default()
            .u32(raw.len() as u32)
            .raw(&packed)
            .send(Kind::Data, output)?;
    }
    Ok(())
}
