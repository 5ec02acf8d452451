//! The PROD host's side: `refresh-dev remote-helper`, speaking the protocol
//! on stdin and stdout.
//!
//! It first makes a private, consistent copy of PROD (the caller's
//! `make_copy`: `snapshot`'s rules, so PROD is never written and its folder
//! is left as found) in a folder only this user can read, outside PROD's
//! folder; PROD's lock is held only for that local copy, so its writers
//! never wait for the network. Every later read, hash and page comes from
//! that copy, which is removed when the helper ends (and, if a helper was
//! killed, by the next helper of the same user). With `--no-private-copy`
//! (`IN_PLACE`), `make_copy` instead gives a WAL-mode PROD's pages read in
//! place, in one read transaction held for the exchange, and nothing is
//! written on this host.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::digest::{digest_pages, group_digests, group_range, hash_pages, tree, InOrder, GROUP_PAGES};
use crate::frame::{runs, In, Kind, Out, HAS_BASE, IN_PLACE, MAGIC, PROTOCOL};

/// Why the helper could not copy PROD, as the client reports it.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The exit status the client ends with (2 bad input, 3 refused, 4 error).
    pub exit: u8,
    pub code: String,
    pub message: String,
}

/// What the client asked the helper to serve.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// PROD's path on this host.
    pub prod: &'a Path,
    /// Where a private copy goes (in a folder only this user reads, removed
    /// with it; any other file the job makes goes there too).
    pub copy: &'a Path,
    /// How long to wait for PROD's writers.
    pub wait: Duration,
    /// The client's job (opaque bytes, empty for a plain copy).
    pub job: &'a [u8],
    /// `--no-private-copy`: serve a WAL-mode PROD where it lies, in one read
    /// transaction held for the whole exchange, instead of from a copy.
    pub in_place: bool,
}

/// A consistent image of a database, page by page: what the helper serves.
pub trait Pages {
    fn page_size(&self) -> u32;
    /// How many pages the image has.
    fn pages(&self) -> u64;
    /// The permission bits the client gives the base.
    fn mode(&self) -> u32;
    /// Fills `buf` (whole pages) from page `first` (0-based) on.
    fn read_pages(&self, first: u64, buf: &mut [u8]) -> io::Result<()>;
}

/// What the caller's copy function made.
pub struct Served {
    /// The job's answer for the client (opaque bytes).
    pub job_result: Vec<u8>,
    /// `None`: serve the private copy at [`Request::copy`]. `Some`: serve
    /// these pages (PROD read in place).
    pub in_place: Option<Box<dyn Pages>>,
}

/// Makes what the helper serves: a consistent copy of PROD by default,
/// after doing what the client's job asks of it.
pub type MakeCopy<'a> = dyn Fn(&Request) -> Result<Served, Refusal> + 'a;

/// A file's pages: the private copy, or the client's base.
pub(crate) struct FilePages {
    pub file: File,
    pub page_size: u32,
    pub len: u64,
    pub mode: u32,
}

impl FilePages {
    pub fn open(path: &Path) -> io::Result<FilePages> {
        let header = sqlite_file::Header::read(path).map_err(|e| io::Error::other(e.to_string()))?;
        let file = File::open(path)?;
        let meta = file.metadata()?;
        Ok(FilePages {
            file,
            page_size: header.page_size,
            len: meta.len(),
            mode: meta.permissions().mode() & 0o777,
        })
    }
}

impl Pages for FilePages {
    fn page_size(&self) -> u32 {
        self.page_size
    }
    fn pages(&self) -> u64 {
        self.len / u64::from(self.page_size)
    }
    fn mode(&self) -> u32 {
        self.mode
    }
    fn read_pages(&self, first: u64, buf: &mut [u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.file.read_exact_at(buf, first * u64::from(self.page_size))
    }
}

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
    let flags = open.u8()?;
    let in_place = flags & IN_PLACE != 0;
    // Nothing is written on this host when PROD itself is served in place
    // (a job's output, masked or counted, still needs the private folder).
    let private = if in_place && job.is_empty() {
        None
    } else {
        Some(Private::create()?)
    };
    let copy = private.as_ref().map(|p| p.0.join("prod.db")).unwrap_or_default();
    let started = Instant::now();
    let request = Request {
        prod: Path::new(&path),
        copy: &copy,
        wait,
        job: &job,
        in_place,
    };
    let served = match make_copy(&request) {
        Ok(served) => served,
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
    // Every group's hash, once: what the base's groups are compared with,
    // and the whole-file hash's leaves. For a client with a base, a private
    // copy's are computed beside the exchange (its own handle). Otherwise
    // (PROD read in place: one SQLite connection; a first copy; a plan's
    // question) they are computed when first needed: a first copy's pages
    // are hashed as they are sent, and a plan needs none.
    let (source, mut digests): (Box<dyn Pages>, Digests) = match served.in_place {
        Some(pages) => (pages, Digests::Later),
        None if flags & HAS_BASE == 0 => (Box::new(FilePages::open(&copy)?), Digests::Later),
        None => {
            let own = FilePages::open(&copy)?;
            let thread = std::thread::spawn(move || group_digests(&own));
            (Box::new(FilePages::open(&copy)?), Digests::Computing(thread))
        }
    };
    let page_size = u64::from(source.page_size());
    let pages = source.pages();
    let len = pages * page_size;
    Out::default()
        .u32(source.page_size())
        .u64(pages)
        .u64(len)
        .u32(source.mode())
        .u64(copy_seconds.as_millis() as u64)
        .bytes(&served.job_result)
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
    let usable = base_page_size == source.page_size();
    let base_pages = if usable { base_pages } else { 0 };
    let mut wanted = Vec::new();
    for g in 0..count.min(base_pages.div_ceil(group_pages)) {
        let theirs = groups.raw(16)?;
        let range = group_range(g, group_pages, base_pages);
        if range != group_range(g, group_pages, pages) {
            wanted.push(g);
            continue;
        }
        let ours = match group_pages == GROUP_PAGES {
            true => digests.get(&*source)?[g as usize],
            false => digest_pages(&*source, range)?,
        };
        if ours[..16] != theirs[..] {
            wanted.push(g);
        }
    }
    let mut want = Out::default().u32(wanted.len() as u32);
    for g in &wanted {
        want = want.u64(*g);
    }
    want.send(Kind::Want, output)?;

    // Which pages to send: each page of a wanted group whose hash differs,
    // and every page past the base's end. A bit per page: the helper's
    // memory stays a small fraction of PROD's size.
    let mut send = PageSet::new(pages);
    let mut hashes: Option<In> = None;
    for &g in &wanted {
        let (from, to) = group_range(g, group_pages, base_pages);
        for p in from..to {
            if hashes.as_ref().is_none_or(|h| h.remaining() == 0) {
                let Some(next) = In::read(input)? else {
                    return Ok(());
                };
                expect(&next, Kind::PageHashes)?;
                hashes = Some(next);
            }
            let theirs = hashes.as_mut().map(|h| h.raw(16)).transpose()?.unwrap_or_default();
            if p < pages && hash_pages(&*source, (p, p + 1))? != theirs.as_slice() {
                send.insert(p);
            }
        }
    }
    for p in base_pages..pages {
        send.insert(p);
    }
    // Every page sent, and no group hashed yet (a first copy): hashed as sent.
    let hash_as_sent = matches!(digests, Digests::Later) && send.len() == pages;
    let mut in_order = hash_as_sent.then(|| InOrder::new(source.page_size()));
    send_pages(&*source, &send, output, in_order.as_mut())?;
    let whole = match in_order.and_then(|h| h.finish(source.page_size(), pages)) {
        Some(whole) => whole,
        None => tree(source.page_size(), pages, digests.get(&*source)?),
    };
    Out::default().u64(send.len()).raw(&whole).send(Kind::Done, output)?;
    // The client's goodbye, or its end: either way the private copy goes.
    let _ = In::read(input);
    drop(source);
    drop(private);
    Ok(())
}

/// The image's groups' hashes: being computed beside the exchange, to be
/// computed when first asked for, or known.
enum Digests {
    Computing(std::thread::JoinHandle<io::Result<Vec<[u8; 32]>>>),
    Later,
    Known(Vec<[u8; 32]>),
}

impl Digests {
    fn get(&mut self, source: &dyn Pages) -> io::Result<&[[u8; 32]]> {
        let known = match std::mem::replace(self, Digests::Later) {
            Digests::Computing(thread) => thread
                .join()
                .map_err(|_| io::Error::other("hashing the groups failed"))??,
            Digests::Later => group_digests(source)?,
            Digests::Known(known) => known,
        };
        *self = Digests::Known(known);
        match self {
            Digests::Known(known) => Ok(known),
            _ => unreachable!("just set"),
        }
    }
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

/// A set of page numbers, a bit each.
struct PageSet {
    words: Vec<u64>,
    len: u64,
}

impl PageSet {
    fn new(pages: u64) -> PageSet {
        PageSet {
            words: vec![0; pages.div_ceil(64) as usize],
            len: 0,
        }
    }
    fn insert(&mut self, p: u64) {
        let (w, bit) = ((p / 64) as usize, 1u64 << (p % 64));
        if self.words[w] & bit == 0 {
            self.words[w] |= bit;
            self.len += 1;
        }
    }
    fn len(&self) -> u64 {
        self.len
    }
    /// The pages, in order.
    fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.words.iter().enumerate().flat_map(|(w, &word)| {
            (0..64)
                .filter(move |b| word & (1 << b) != 0)
                .map(move |b| w as u64 * 64 + b)
        })
    }
}

/// Sends `pages` in zstd-compressed frames of about 1 MiB. Consecutive pages
/// are read together, in one call, straight into the frame. The buffers and
/// the compression context serve every frame, and the compression level
/// follows what limits the transfer ([`Level`]). (Compressing in worker
/// threads while this one writes measured no faster on a 2-core loopback,
/// where ssh, sshd and the client share the cores.)
fn send_pages(
    source: &dyn Pages,
    pages: &PageSet,
    output: &mut impl Write,
    mut in_order: Option<&mut InOrder>,
) -> io::Result<()> {
    let per_frame = ((1 << 20) / u64::from(source.page_size())).max(1) as usize;
    let mut level = Level::default();
    let mut compressor = zstd::bulk::Compressor::new(level.get())?;
    let (mut chunk, mut raw, mut packed) = (Vec::with_capacity(per_frame), Vec::new(), Vec::new());
    let mut all = pages.iter().peekable();
    while all.peek().is_some() {
        let started = Instant::now();
        chunk.clear();
        chunk.extend(all.by_ref().take(per_frame));
        read_frame(source, &chunk, in_order.as_deref_mut(), &mut raw)?;
        packed.clear();
        packed.reserve(zstd::zstd_safe::compress_bound(raw.len()));
        compressor.compress_to_buffer(&raw[..], &mut packed)?;
        let made = Instant::now();
        let bytes = Out::default()
            .u32(raw.len() as u32)
            .send_with(Kind::Data, &packed, output)?;
        if let Some(next) = level.after(made - started, made.elapsed(), bytes) {
            compressor.set_compression_level(next)?;
        }
    }
    Ok(())
}

/// The zstd level of the next Data frames, adapted as `zstd --adapt` does,
/// to what limits the transfer. Every [`Level::WINDOW`] frames it compares
/// how long writing them waited with how long making them took (reading,
/// hashing, compressing):
/// - writes waited more than twice as long as making: the link limits the
///   transfer, and a stronger level sends fewer bytes (up to level 1, zstd's
///   best ratio per CPU second on database pages);
/// - writes waited less than making took: making frames limits it (a link
///   faster than level 1 compresses, such as a loopback where ssh and sshd
///   share the CPU), and a faster level sends sooner. Not before
///   [`Level::SETTLED`] bytes were written: until the pipe, ssh's buffers
///   and the sockets' are full, a write never waits, however slow the link.
///
/// One step at a time. Every level makes an ordinary zstd frame: the client
/// needs to know nothing of it.
#[derive(Debug, Default)]
struct Level {
    /// Into [`LEVELS`].
    at: usize,
    frames: u32,
    make: Duration,
    write: Duration,
    written: u64,
}

/// From the strongest to the fastest.
const LEVELS: [i32; 6] = [1, -1, -3, -7, -20, -100];

impl Level {
    const WINDOW: u32 = 4;
    /// Bytes written before a write that did not wait says anything of the
    /// link: the buffers on the way (the pipe, ssh's, the sockets') took 4
    /// to 7 MB on the bench's throttled loopback, more where the link's
    /// bandwidth-delay product is larger.
    const SETTLED: u64 = 16 << 20;

    fn get(&self) -> i32 {
        LEVELS[self.at]
    }

    /// The level for the next frame, if it changes, given how long this
    /// frame took to make, how long writing it waited, and its size.
    fn after(&mut self, make: Duration, write: Duration, bytes: u64) -> Option<i32> {
        self.frames += 1;
        self.written += bytes;
        self.make += make;
        self.write += write;
        if self.frames < Self::WINDOW {
            return None;
        }
        let was = self.at;
        if self.write > self.make * 2 {
            self.at = self.at.saturating_sub(1);
        } else if self.write < self.make && self.written >= Self::SETTLED {
            self.at = (self.at + 1).min(LEVELS.len() - 1);
        }
        (self.frames, self.make, self.write) = (0, Duration::ZERO, Duration::ZERO);
        (self.at != was).then(|| self.get())
    }
}

/// One frame's payload into `raw`: the pages' count, their numbers, their bytes.
fn read_frame(
    source: &dyn Pages,
    chunk: &[u64],
    mut in_order: Option<&mut InOrder>,
    raw: &mut Vec<u8>,
) -> io::Result<()> {
    let ps = source.page_size() as usize;
    raw.clear();
    raw.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
    for &p in chunk {
        raw.extend_from_slice(&(p as u32).to_le_bytes());
    }
    let data = raw.len();
    raw.resize(data + chunk.len() * ps, 0);
    for (i, j) in runs(chunk) {
        let run = &mut raw[data + i * ps..data + j * ps];
        source.read_pages(chunk[i], run)?;
        if let Some(h) = in_order.as_deref_mut() {
            h.update(chunk[i], run);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::GROUP_PAGES;
    use crate::frame::short_hash;

    /// Pages in memory: 3 groups and a bit, page `p` filled with `p`.
    struct Memory;
    impl Pages for Memory {
        fn page_size(&self) -> u32 {
            512
        }
        fn pages(&self) -> u64 {
            3 * GROUP_PAGES + 10
        }
        fn mode(&self) -> u32 {
            0o600
        }
        fn read_pages(&self, first: u64, buf: &mut [u8]) -> io::Result<()> {
            for (i, page) in buf.chunks_mut(512).enumerate() {
                page.fill((first + i as u64) as u8);
            }
            Ok(())
        }
    }

    /// Four frames of 1 MiB: how long making each took, how long writing it waited.
    fn window(level: &mut Level, make_ms: u64, write_ms: u64) -> Option<i32> {
        let (make, write) = (Duration::from_millis(make_ms), Duration::from_millis(write_ms));
        (0..Level::WINDOW)
            .map(|_| level.after(make, write, 1 << 20))
            .last()
            .flatten()
    }

    #[test]
    fn the_level_follows_what_limits_the_transfer() {
        let mut level = Level::default();
        assert_eq!(level.get(), 1, "it starts at zstd's level 1");
        // Within a window, nothing changes.
        assert_eq!(level.after(Duration::from_millis(3), Duration::ZERO, 1 << 20), None);
        let mut level = Level::default();
        // Writes that never wait while the buffers on the way fill say nothing of the link.
        let went: Vec<_> = (0..3).map(|_| window(&mut level, 3, 0)).collect();
        assert_eq!(went, [None; 3], "12 MiB written");
        // Then writes that hardly wait: making frames is what limits; faster, one step at a time.
        let went: Vec<_> = (0..8).map(|_| window(&mut level, 3, 1)).collect();
        assert_eq!(
            went,
            [Some(-1), Some(-3), Some(-7), Some(-20), Some(-100), None, None, None]
        );
        // Writes waiting between one and two times the making: balanced, it stays.
        assert_eq!(window(&mut level, 2, 3), None);
        assert_eq!(level.get(), -100);
        // Writes waiting long (a slow link): stronger, back to level 1 and no further.
        let went: Vec<_> = (0..7).map(|_| window(&mut level, 2, 30)).collect();
        assert_eq!(went, [Some(-20), Some(-7), Some(-3), Some(-1), Some(1), None, None]);
        assert_eq!(level.get(), 1);
    }

    #[test]
    fn every_level_makes_frames_the_client_reads() {
        // Text-like pages, as the client's decompressor gets them: one
        // context, its level changed between frames, as send_pages does.
        let raw: Vec<u8> = (0..1u32 << 18)
            .flat_map(|i| format!("row {} name-{} ", i % 977, i.wrapping_mul(2654435761) % 10007).into_bytes())
            .take(1 << 20)
            .collect();
        let mut compressor = zstd::bulk::Compressor::new(LEVELS[0]).expect("compressor");
        let mut decompressor = zstd::bulk::Decompressor::new().expect("decompressor");
        let mut sizes = Vec::new();
        for level in LEVELS {
            compressor.set_compression_level(level).expect("level");
            let packed = compressor.compress(&raw).expect("compress");
            let unpacked = decompressor.decompress(&packed, raw.len()).expect("decompress");
            assert!(unpacked == raw, "level {level}");
            sizes.push(packed.len());
        }
        // From the strongest to the fastest: never fewer bytes.
        assert!(sizes.windows(2).all(|w| w[0] <= w[1]), "{sizes:?}");
        assert!(sizes[0] < sizes[LEVELS.len() - 1], "{sizes:?}");
    }

    #[test]
    fn page_hashes_may_come_over_several_frames() {
        let (mut ours, theirs) = std::os::unix::net::UnixStream::pair().expect("pair");
        let helper = std::thread::spawn(move || {
            let make = |_: &Request| -> Result<Served, Refusal> {
                Ok(Served {
                    job_result: Vec::new(),
                    in_place: Some(Box::new(Memory)),
                })
            };
            let (mut input, mut output) = (theirs.try_clone().expect("clone"), theirs);
            serve(&mut input, &mut output, "test", &make)
        });
        let hello = In::read(&mut ours).expect("read").expect("hello");
        assert_eq!(hello.kind, Kind::Hello);
        Out::default()
            .str("/prod.db")
            .u64(0)
            .bytes(&[])
            .u8(1)
            .send(Kind::Open, &mut ours)
            .expect("open");
        assert_eq!(In::read(&mut ours).expect("read").expect("info").kind, Kind::Info);
        // A base of the first 3 groups: every group hash wrong, so all 3 are wanted.
        let mut groups = Out::default()
            .u32(GROUP_PAGES as u32)
            .u32(512)
            .u64(3 * GROUP_PAGES)
            .u32(3);
        for _ in 0..3 {
            groups = groups.raw(&[0; 16]);
        }
        groups.send(Kind::Groups, &mut ours).expect("groups");
        let mut want = In::read(&mut ours).expect("read").expect("want");
        assert_eq!(want.u32().expect("count"), 3);
        // One frame per group; each page's right hash but for one page a group.
        for g in 0..3 {
            let mut hashes = Out::default();
            for p in g * GROUP_PAGES..(g + 1) * GROUP_PAGES {
                let right = short_hash(&[p as u8; 512]);
                hashes = hashes.raw(if p % GROUP_PAGES == 7 { &[0; 16] } else { &right });
            }
            hashes.send(Kind::PageHashes, &mut ours).expect("hashes");
        }
        let mut sent = Vec::new();
        loop {
            let mut frame = In::read(&mut ours).expect("read").expect("frame");
            if frame.kind == Kind::Done {
                assert_eq!(frame.u64().expect("count"), sent.len() as u64);
                break;
            }
            let len = frame.u32().expect("len") as usize;
            let raw = zstd::bulk::decompress(frame.rest(), len).expect("zstd");
            let count = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize;
            assert_eq!(raw.len(), 4 + count * (4 + 512));
            let numbers: Vec<u32> = raw[4..4 + 4 * count]
                .chunks(4)
                .map(|e| u32::from_le_bytes([e[0], e[1], e[2], e[3]]))
                .collect();
            for (k, &p) in numbers.iter().enumerate() {
                let at = 4 + 4 * count + k * 512;
                assert!(raw[at..at + 512].iter().all(|&b| b == p as u8), "page {p}'s bytes");
            }
            sent.extend(numbers);
        }
        let tail = (3 * GROUP_PAGES as u32)..(3 * GROUP_PAGES as u32 + 10);
        let expected: Vec<u32> = [7, 263, 519].into_iter().chain(tail).collect();
        assert_eq!(sent, expected);
        Out::default().send(Kind::Bye, &mut ours).expect("bye");
        helper.join().expect("helper").expect("served");
    }

    #[test]
    fn a_page_set_lists_its_pages_once_and_in_order() {
        let mut set = PageSet::new(200);
        for p in [130, 3, 64, 63, 3, 199, 0] {
            set.insert(p);
        }
        assert_eq!(set.len(), 6);
        assert_eq!(set.iter().collect::<Vec<_>>(), [0, 3, 63, 64, 130, 199]);
    }
}
