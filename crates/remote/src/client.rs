//! The DEV host's side: runs the helper through `ssh`, and brings PROD's
//! pages into the base beside DEV, sending hashes and receiving only the
//! pages that differ.
//!
//! The base is updated atomically: the new version is put together in a
//! temporary file (a copy of the old base, reflinked where the file system
//! can), checked against the whole-file hash the helper computed, given
//! PROD's permission bits, and renamed over the base. A cut link leaves the
//! old base (or none), never a mix.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use sqlite_file::sidefile::{self, Found, SideFileError};
use sqlite_file::FileError;

use crate::digest::{digest_pages, group_range, hash_pages, tree, InOrder, GROUP_PAGES};
use crate::frame::{runs, In, Kind, Out, HAS_BASE, IN_PLACE, MAGIC, PAGE_HASH_GROUPS, PROTOCOL};
use crate::helper::FilePages;
use crate::{Error, RemoteFile};

/// How to reach the helper and what to ask of it.
#[derive(Debug, Clone)]
pub struct Fetch<'a> {
    pub remote: &'a RemoteFile,
    /// `--ssh`: the program and its options, split as a shell would split
    /// them (like rsync's `-e`). Nothing is inserted inside its words.
    pub ssh: &'a str,
    /// `--remote-exe`: the helper's program on the remote host.
    pub remote_exe: &'a str,
    /// `--upload-helper`: send this very program to a private temporary
    /// folder on the remote host (after checking its OS and architecture),
    /// run it there, and remove it; `remote_exe` is then not used.
    pub upload_helper: bool,
    /// How long the helper waits for PROD's writers while it copies PROD.
    pub wait: Duration,
    /// What the helper does to its copy before serving it (opaque to this
    /// crate: the caller's helper reads it); empty for a plain copy. It
    /// travels inside the protocol, never on a command line.
    pub job: &'a [u8],
    /// `--no-private-copy`: the helper serves a WAL-mode PROD in place, in
    /// one read transaction held for the whole exchange, and writes nothing
    /// on PROD's host (a rollback-mode PROD is then refused, exit 2).
    pub in_place: bool,
}

/// What a fetch moved, for the report's `transfer` object.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Transfer {
    /// The remote file, as given.
    pub from: String,
    pub host: String,
    /// The helper's refresh-dev version.
    pub helper_version: String,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub pages_total: u64,
    pub pages_sent: u64,
    /// Whether a base from an earlier refresh was there to build on.
    pub base_used: bool,
    /// Where the helper read PROD's pages: `private copy` (the default) or
    /// `in place` (`--no-private-copy`).
    pub served_from: &'static str,
    /// The helper's private copy of PROD, on the PROD host.
    pub remote_copy_seconds: f64,
    /// Hashes and pages over the link.
    pub transfer_seconds: f64,
    /// Checking the result against the helper's hash, and the rename.
    pub verify_seconds: f64,
    /// What the helper said of the job (opaque bytes: the caller reads them).
    #[serde(skip)]
    pub job_result: Vec<u8>,
}

/// Told as a fetch goes, and asked whether to stop.
pub trait Observer {
    /// Bytes received so far, pages received so far.
    fn received(&mut self, _bytes: u64, _pages: u64) {}
    fn cancelled(&mut self) -> bool {
        false
    }
}

impl Observer for () {}

/// The ssh child: killed and reaped however the fetch ends.
struct Link {
    child: Child,
    to: BufWriter<ChildStdin>,
    from: BufReader<ChildStdout>,
    /// A read frame's memory, for the next one.
    spare: Vec<u8>,
    stderr: Arc<Mutex<String>>,
    /// The thread gathering ssh's stderr: done once ssh (and whatever
    /// shares its stderr) has closed it.
    gatherer: Option<std::thread::JoinHandle<()>>,
    host: String,
    sent: u64,
    received: u64,
    /// Goodbye said: the helper ends of itself (and the remote shell
    /// removes an uploaded helper), so it is given a moment before a kill.
    said_bye: bool,
}

impl Link {
    fn open(fetch: &Fetch) -> Result<Link, Error> {
        let host = fetch.remote.host().to_owned();
        let mut words = shell_words::split(fetch.ssh).map_err(|e| Error::Connect {
            host: host.clone(),
            message: format!("--ssh {:?}: {e}", fetch.ssh),
        })?;
        if words.is_empty() {
            return Err(Error::Connect {
                host,
                message: "--ssh is empty".into(),
            });
        }
        let program = words.remove(0);
        let mut cmd = Command::new(&program);
        cmd.args(&words).args(["-o", "BatchMode=yes"]);
        if let Some(port) = fetch.remote.port {
            cmd.args(["-p", &port.to_string()]);
        }
        let upload = if fetch.upload_helper {
            let exe = std::env::current_exe().map_err(|e| Error::Connect {
                host: host.clone(),
                message: format!("--upload-helper: cannot find this program: {e}"),
            })?;
            let size = std::fs::metadata(&exe).map(|m| m.len()).map_err(|e| Error::Connect {
                host: host.clone(),
                message: format!("--upload-helper: {}: {e}", exe.display()),
            })?;
            Some((exe, size))
        } else {
            None
        };
        let remote_command = match &upload {
            None => format!("{} remote-helper", shell_words::quote(fetch.remote_exe)),
            Some((_, size)) => upload_command(*size),
        };
        cmd.arg(&fetch.remote.destination).arg(remote_command);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| Error::Connect {
            host: host.clone(),
            message: format!("cannot run {program}: {e}"),
        })?;
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut gatherer = None;
        if let Some(mut pipe) = child.stderr.take() {
            let sink = Arc::clone(&stderr);
            gatherer = Some(std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut s) = sink.lock() {
                        if s.len() < 64 << 10 {
                            s.push_str(&String::from_utf8_lossy(&buf[..n]));
                        }
                    }
                }
            }));
        }
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err(Error::Connect {
                host,
                message: "no pipe to ssh".into(),
            });
        };
        crate::frame::grow_pipe(&stdout);
        let mut to = BufWriter::new(stdin);
        if let Some((exe, _)) = &upload {
            // The helper speaks first, once it has all of itself: nothing
            // else is in the pipe meanwhile. A refused upload (another OS)
            // closes the pipe; the handshake then says why.
            if let Ok(mut file) = std::fs::File::open(exe) {
                let _ = io::copy(&mut file, &mut to).and_then(|_| to.flush());
            }
        }
        Ok(Link {
            child,
            to,
            from: BufReader::with_capacity(1 << 20, stdout),
            spare: Vec::new(),
            stderr,
            gatherer,
            host,
            sent: 0,
            received: 0,
            said_bye: false,
        })
    }

    /// What ssh or the remote shell said, once it has ended.
    fn said(&mut self) -> (Option<i32>, String) {
        let status = self.child.wait().ok().and_then(|s| s.code());
        // ssh's last words are read once the pipe closes; a process that
        // inherited it (a ControlMaster) may keep it open: wait 2 s at most.
        if let Some(gatherer) = self.gatherer.take() {
            let deadline = Instant::now() + Duration::from_secs(2);
            while !gatherer.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let text = self.stderr.lock().map(|s| s.trim().to_owned()).unwrap_or_default();
        let last: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        (status, last.join("; "))
    }

    fn send(&mut self, out: Out, kind: Kind) -> Result<(), Error> {
        match out.send(kind, &mut self.to) {
            Ok(n) => {
                self.sent += n;
                Ok(())
            }
            Err(e) => Err(self.cut(e)),
        }
    }

    /// Gives a read frame's memory back, for the next frame.
    fn recycle(&mut self, frame: In) {
        self.spare = frame.into_data();
    }

    /// The helper's next frame, counted; its error frame is its error, and
    /// an end or a broken stream is a cut link.
    fn next(&mut self) -> Result<In, Error> {
        match In::read_into(&mut self.from, std::mem::take(&mut self.spare)) {
            Ok(Some(frame)) => {
                self.received += frame.wire_len();
                match frame.kind {
                    Kind::Error => Err(self.remote_error(frame)),
                    _ => Ok(frame),
                }
            }
            Ok(None) => Err(self.cut(io::Error::new(io::ErrorKind::UnexpectedEof, "the helper ended early"))),
            Err(e) => Err(self.cut(e)),
        }
    }

    /// The helper's next frame, which must be a `kind`.
    fn read(&mut self, kind: Kind) -> Result<In, Error> {
        let frame = self.next()?;
        if frame.kind != kind {
            return Err(self.cut(io::Error::other(format!("expected {kind:?}, got {:?}", frame.kind))));
        }
        Ok(frame)
    }

    fn remote_error(&mut self, mut frame: In) -> Error {
        let host = self.host.clone();
        let parsed = (|| -> io::Result<(u8, String, String)> { Ok((frame.u8()?, frame.str()?, frame.str()?)) })();
        match parsed {
            Ok((exit, code, message)) => Error::Remote {
                host,
                exit,
                code,
                message,
            },
            Err(e) => self.cut(e),
        }
    }

    fn cut(&mut self, e: io::Error) -> Error {
        let _ = self.child.kill();
        let (_, said) = self.said();
        Error::Cut {
            host: self.host.clone(),
            why: if said.is_empty() {
                e.to_string()
            } else {
                format!("{e}; ssh: {said}")
            },
        }
    }

    /// Reads the helper's hello and checks its protocol. A failure here is
    /// bad input: ssh's own message, a missing helper, another version.
    fn handshake(&mut self, exe: &str) -> Result<String, Error> {
        let hello = In::read(&mut self.from);
        let mut hello = match hello {
            Ok(Some(frame)) if frame.kind == Kind::Hello => frame,
            other => {
                let _ = self.child.kill();
                let (status, said) = self.said();
                let host = self.host.clone();
                return Err(match (status, other) {
                    (Some(UPLOAD_REFUSED), _) => Error::Connect {
                        host,
                        message: format!("--upload-helper: {said}"),
                    },
                    (Some(126 | 127), _) => Error::HelperMissing {
                        host,
                        exe: exe.to_owned(),
                        message: said,
                    },
                    (_, Ok(Some(frame))) => Error::NotAHelper {
                        host,
                        exe: exe.to_owned(),
                        answer: format!("a {:?} frame", frame.kind),
                    },
                    (_, Err(e)) if e.kind() == io::ErrorKind::InvalidData => Error::NotAHelper {
                        host,
                        exe: exe.to_owned(),
                        answer: if said.is_empty() { e.to_string() } else { said },
                    },
                    _ => Error::Connect {
                        host,
                        message: if said.is_empty() {
                            "the connection closed".into()
                        } else {
                            said
                        },
                    },
                });
            }
        };
        self.received += hello.wire_len();
        let magic = hello.raw(MAGIC.len()).unwrap_or_default();
        if magic != MAGIC {
            return Err(Error::NotAHelper {
                host: self.host.clone(),
                exe: exe.to_owned(),
                answer: "a hello without refresh-dev's mark".into(),
            });
        }
        let theirs = hello.u32().unwrap_or(0);
        let version = hello.str().unwrap_or_default();
        if theirs != PROTOCOL {
            return Err(Error::Version {
                host: self.host.clone(),
                ours: PROTOCOL,
                theirs,
                our_version: env!("CARGO_PKG_VERSION").to_owned(),
                their_version: version,
            });
        }
        Ok(version)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let _ = self.to.flush();
        if self.said_bye {
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The remote shell's status when `--upload-helper` cannot run there.
const UPLOAD_REFUSED: i32 = 125;

/// The remote command of `--upload-helper`: check the OS and architecture,
/// read `size` bytes of program into a private temporary folder, run it as
/// the helper, and remove the folder however it ends.
fn upload_command(size: u64) -> String {
    let os = match std::env::consts::OS {
        "linux" => "Linux",
        "macos" => "Darwin",
        "freebsd" => "FreeBSD",
        other => other,
    };
    let want = format!("{os} {}", std::env::consts::ARCH);
    format!(
        "want={want}; have=\"$(uname -s) $(uname -m)\"; \
         if [ \"$have\" != \"$want\" ]; then echo \"this host is $have, the helper is built for $want\" >&2; exit {UPLOAD_REFUSED}; fi; \
         d=$(mktemp -d) || exit {UPLOAD_REFUSED}; trap 'rm -rf \"$d\"' EXIT; trap 'exit 129' HUP INT TERM; \
         head -c {size} > \"$d/refresh-dev\" && chmod 700 \"$d/refresh-dev\" && \"$d/refresh-dev\" remote-helper",
        want = shell_words::quote(&want)
    )
}

/// The new base being put together: removed unless renamed into place.
struct NewBase {
    path: PathBuf,
    file: File,
    kept: bool,
}

impl Drop for NewBase {
    fn drop(&mut self) {
        if !self.kept {
            let _ = sidefile::remove_with_sidecars(&self.path);
        }
    }
}

/// What the helper says of its copy of PROD before any page.
struct Info {
    page_size: u32,
    pages: u64,
    len: u64,
    mode: u32,
    remote_millis: u64,
    job_result: Vec<u8>,
}

/// Opens the link, shakes hands, asks for `fetch.remote` with the job (and
/// says whether a base is kept), and reads the helper's description of its copy.
fn open_and_describe(fetch: &Fetch, has_base: bool) -> Result<(Link, String, Info), Error> {
    let mut link = Link::open(fetch)?;
    let helper_version = link.handshake(fetch.remote_exe)?;
    link.send(
        Out::default()
            .str(&fetch.remote.path)
            .u64(fetch.wait.as_millis() as u64)
            .bytes(fetch.job)
            .u8(if fetch.in_place { IN_PLACE } else { 0 } | if has_base { HAS_BASE } else { 0 }),
        Kind::Open,
    )?;
    let mut frame = link.read(Kind::Info)?;
    let info = (|| -> io::Result<Info> {
        Ok(Info {
            page_size: frame.u32()?,
            pages: frame.u64()?,
            len: frame.u64()?,
            mode: frame.u32()?,
            remote_millis: frame.u64()?,
            job_result: frame.bytes()?,
        })
    })();
    let info = info.map_err(|e| link.cut(e))?;
    if info.page_size == 0 || u64::from(info.page_size) * info.pages != info.len {
        return Err(link.cut(io::Error::other("the helper described an impossible file")));
    }
    Ok((link, helper_version, info))
}

/// What the helper said of PROD without sending a page: its size, its
/// permission bits, and the job's result (the counts of a plan).
#[derive(Debug, Clone)]
pub struct Answer {
    /// What moved: the job and its answer, no page.
    pub transfer: Transfer,
    /// PROD's size in bytes (of the helper's copy).
    pub len: u64,
    /// PROD's permission bits.
    pub mode: u32,
}

/// Asks the helper to do `fetch.job` on its private copy of PROD (in place:
/// on PROD, read-only) and answer, with no page sent: what `plan` asks, so
/// that no table data moves.
pub fn ask(fetch: &Fetch) -> Result<Answer, Error> {
    let started = Instant::now();
    let (mut link, helper_version, info) = open_and_describe(fetch, false)?;
    link.said_bye = link.send(Out::default(), Kind::Bye).is_ok();
    Ok(Answer {
        transfer: Transfer {
            from: fetch.remote.to_string(),
            host: link.host.clone(),
            helper_version,
            bytes_sent: link.sent,
            bytes_received: link.received,
            pages_total: info.pages,
            pages_sent: 0,
            base_used: false,
            served_from: served_from(fetch),
            remote_copy_seconds: info.remote_millis as f64 / 1000.0,
            transfer_seconds: started.elapsed().as_secs_f64(),
            verify_seconds: 0.0,
            job_result: info.job_result,
        },
        len: info.len,
        mode: info.mode,
    })
}

/// Brings the remote PROD into `base` (created or replaced whole), moving
/// only the pages that differ from the `base` already there.
pub fn fetch(fetch: &Fetch, base: &Path, observer: &mut dyn Observer) -> Result<Transfer, Error> {
    let io_err = |path: &Path, action: &'static str| {
        let path = path.to_owned();
        move |e: io::Error| Error::File(FileError::io(&path, action, e))
    };
    // A killed fetch's temporary file is provably its own by its pid.
    let (prefix, suffix) = sidefile::pid_temp_pattern(base, "refresh-base");
    for leftover in sidefile::dead_pid_leftovers(sqlite_file::fs::parent_dir(base), &prefix, &suffix) {
        let _ = sidefile::remove_with_sidecars(&leftover);
    }
    let old = match base_is_regular(base)? {
        true => sqlite_file::Header::read(base).ok().map(|h| h.page_size),
        false => None,
    };

    let (mut link, helper_version, info) = open_and_describe(fetch, old.is_some())?;
    let Info {
        page_size,
        pages,
        len,
        mode,
        remote_millis,
        job_result,
    } = info;
    let started = Instant::now();

    // Room for the base's next version beside it, before a byte comes: with
    // reflinks its unchanged pages share the old base's blocks.
    let folder = sqlite_file::fs::parent_dir(base);
    let shared = old.is_some() && sqlite_file::fs::reflinks(folder).unwrap_or(false);
    let needed = if shared { len / 100 + (1 << 20) } else { len + (1 << 20) };
    let available = sqlite_file::fs::available_space(folder).map_err(io_err(folder, "statvfs"))?;
    if available < needed {
        return Err(FileError::DiskFull {
            path: folder.to_owned(),
            needed: Some(needed),
            available: Some(available),
        }
        .into());
    }
    let temp = sidefile::pid_temp(base, "refresh-base");
    let file = sidefile::create_new(&temp, 0o600)?;
    let mut new = NewBase {
        path: temp.clone(),
        file,
        kept: false,
    };
    let base_used = old == Some(page_size);
    let base_pages = if base_used {
        let src = File::open(base).map_err(io_err(base, "open"))?;
        let base_len = src.metadata().map_err(io_err(base, "stat"))?.len();
        sqlite_file::fs::copy_range(&src, &new.file, base_len, &mut |_| true)
            .map_err(io_err(&temp, "copy the base"))?;
        base_len / u64::from(page_size)
    } else {
        0
    };

    // Round one: a hash per group of the base's pages.
    let ps = u64::from(page_size);
    let view = FilePages {
        file: new.file.try_clone().map_err(io_err(&temp, "open"))?,
        page_size,
        len: base_pages * ps,
        mode: 0,
    };
    let groups = base_pages.div_ceil(GROUP_PAGES);
    let mut out = Out::default()
        .u32(GROUP_PAGES as u32)
        .u32(if base_used { page_size } else { 0 })
        .u64(base_pages)
        .u32(groups as u32);
    // Their whole hashes are kept: a group that turns out the same needs no
    // second reading for the final check.
    let mut digests = Vec::with_capacity(groups as usize);
    for g in 0..groups {
        let digest = digest_pages(&view, group_range(g, GROUP_PAGES, base_pages)).map_err(io_err(&temp, "read"))?;
        out = out.raw(&digest[..16]);
        digests.push(digest);
    }
    link.send(out, Kind::Groups)?;
    let mut want = link.read(Kind::Want)?;
    let wanted: Vec<u64> =
        (|| -> io::Result<Vec<u64>> { (0..want.u32()?).map(|_| want.u64()).collect() })().map_err(|e| link.cut(e))?;
    // Round two: a hash per page of the groups that differ.
    for some in wanted.chunks(PAGE_HASH_GROUPS) {
        let mut out = Out::default();
        for &g in some {
            let (from, to) = group_range(g, GROUP_PAGES, base_pages);
            for p in from..to {
                out = out.raw(&hash_pages(&view, (p, p + 1)).map_err(io_err(&temp, "read"))?);
            }
        }
        link.send(out, Kind::PageHashes)?;
    }
    // The pages. A first copy's come in order: they are hashed as they are
    // written, and the file need not be read again to be checked.
    let mut received_pages = 0u64;
    let mut in_order = (!base_used).then(|| InOrder::new(page_size));
    let mut decompressor = zstd::bulk::Decompressor::new().map_err(|e| link.cut(e))?;
    let (mut raw, mut numbers) = (Vec::new(), Vec::new());
    let whole: Vec<u8>;
    loop {
        if observer.cancelled() {
            return Err(Error::Interrupted);
        }
        let mut frame = link.next()?;
        match frame.kind {
            Kind::Done => {
                let _count = frame.u64().map_err(|e| link.cut(e))?;
                whole = frame.raw(32).map_err(|e| link.cut(e))?;
                break;
            }
            Kind::Data => {
                let raw_len = frame.u32().map_err(|e| link.cut(e))? as usize;
                raw.clear();
                raw.reserve(raw_len);
                let unpacked = decompressor.decompress_to_buffer(frame.rest(), &mut raw);
                link.recycle(frame);
                if unpacked.map_err(|e| link.cut(e))? != raw_len {
                    return Err(link.cut(io::Error::other("a frame of the wrong length")));
                }
                let count = raw.get(..4).map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])) as usize;
                let data = 4 + 4 * count;
                if raw.len() != data + count * page_size as usize {
                    return Err(link.cut(io::Error::other("a page cut short")));
                }
                numbers.clear();
                numbers.extend(
                    raw[4..data]
                        .chunks(4)
                        .map(|b| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
                );
                if numbers.iter().any(|&p| p >= pages) {
                    return Err(link.cut(io::Error::other("a page past the file's end")));
                }
                // Consecutive pages are written together, in one call.
                for (i, j) in runs(&numbers) {
                    let (start, run) = (numbers[i], &raw[data + i * ps as usize..data + j * ps as usize]);
                    new.file.write_all_at(run, start * ps).map_err(io_err(&temp, "write"))?;
                    in_order = in_order.take().and_then(|mut h| h.update(start, run).then_some(h));
                }
                received_pages += count as u64;
                observer.received(link.received, received_pages);
            }
            other => return Err(link.cut(io::Error::other(format!("unexpected {other:?}")))),
        }
    }
    let transfer_seconds = started.elapsed().as_secs_f64();
    let verify_started = Instant::now();
    new.file.set_len(len).map_err(io_err(&temp, "truncate"))?;
    let got = match in_order.and_then(|h| h.finish(page_size, pages)) {
        Some(got) => got,
        None => {
            // A group the helper did not want is as the old base had it:
            // its hash from before stands. The others are hashed again.
            let wanted: std::collections::HashSet<u64> = wanted.iter().copied().collect();
            let final_groups = pages.div_ceil(GROUP_PAGES);
            let mut all = Vec::with_capacity(final_groups as usize);
            for g in 0..final_groups {
                let range = group_range(g, GROUP_PAGES, pages);
                let unchanged = (g as usize) < digests.len()
                    && !wanted.contains(&g)
                    && range == group_range(g, GROUP_PAGES, base_pages);
                all.push(match unchanged {
                    true => digests[g as usize],
                    false => digest_pages(&view, range).map_err(io_err(&temp, "read"))?,
                });
            }
            tree(page_size, pages, &all)
        }
    };
    if got[..] != whole[..] {
        return Err(Error::Verify {
            host: link.host.clone(),
        });
    }
    new.file
        .set_permissions(std::fs::Permissions::from_mode(mode & 0o777))
        .map_err(io_err(&temp, "chmod"))?;
    // Only a regular file (or nothing) is ever replaced at the base's name.
    let old_base = match base_is_regular(base)? {
        // Held open across the rename, then let go by a thread of its own:
        // freeing a large file's blocks and cached pages (a tenth of a
        // second for 170 MB) is then not on the run's way.
        true => std::fs::File::open(base).ok(),
        false => None,
    };
    std::fs::rename(&temp, base).map_err(io_err(base, "rename"))?;
    if let Some(old_base) = old_base {
        std::thread::spawn(move || drop(old_base));
    }
    // Not flushed to disk: the base is a cache, every use of which is
    // checked against the helper's whole-file hash (a base a crash left
    // torn only costs the pages it lost), and each file made from it (the
    // staging file, DEST) is flushed itself.
    new.kept = true;
    link.said_bye = link.send(Out::default(), Kind::Bye).is_ok();
    Ok(Transfer {
        from: fetch.remote.to_string(),
        host: link.host.clone(),
        helper_version,
        bytes_sent: link.sent,
        bytes_received: link.received,
        pages_total: pages,
        pages_sent: received_pages,
        base_used,
        served_from: served_from(fetch),
        remote_copy_seconds: remote_millis as f64 / 1000.0,
        transfer_seconds,
        verify_seconds: verify_started.elapsed().as_secs_f64(),
        job_result,
    })
}

fn served_from(fetch: &Fetch) -> &'static str {
    match fetch.in_place {
        true => "in place",
        false => "private copy",
    }
}

/// Whether a regular file lies at the base's name (`false`: nothing); a
/// link or an odd file there is refused, never followed or replaced.
fn base_is_regular(base: &Path) -> Result<bool, Error> {
    match sidefile::look(base).map_err(|e| FileError::io(base, "stat", e))? {
        Found::Nothing => Ok(false),
        Found::Regular(_) => Ok(true),
        Found::Link => Err(SideFileError::Link(base.to_owned()).into()),
        Found::Other(kind) => Err(SideFileError::NotRegular {
            path: base.to_owned(),
            kind,
        }
        .into()),
    }
}
