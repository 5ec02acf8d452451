//! `refresh-dev` and the disk: a full disk before or during a run (a small
//! tmpfs, as root), the space check with reflinks (an XFS image, as root),
//! and a staging file deleted under a running migration.

#[path = "support/pair.rs"]
mod pair;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pair::*;
use support::*;

/// An XFS file system in an image file, loop-mounted at `path` (root only),
/// with or without reflinks; unmounted on drop.
struct Xfs {
    path: PathBuf,
}

impl Xfs {
    fn mount(parent: &Path, reflink: bool) -> Xfs {
        let image = parent.join(format!("xfs-{reflink}.img"));
        let path = parent.join(format!("xfs-{reflink}"));
        std::fs::create_dir(&path).expect("mkdir");
        let file = std::fs::File::create(&image).expect("image");
        file.set_len(300 << 20).expect("size");
        let ok = Command::new("mkfs.xfs")
            .args(["-q", "-m", if reflink { "reflink=1" } else { "reflink=0" }])
            .arg(&image)
            .status()
            .expect("mkfs.xfs (xfsprogs)");
        assert!(ok.success(), "mkfs.xfs");
        let ok = Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(&path)
            .status()
            .expect("mount");
        assert!(ok.success(), "mount -o loop");
        Xfs { path }
    }
}

impl Drop for Xfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

/// Takes all but about `leave` bytes of the free space in `dir`'s file
/// system, writing a file until the disk is full or the goal is reached.
fn fill_leaving(dir: &Path, leave: u64) -> PathBuf {
    use std::io::Write;
    let free = || {
        let c = std::ffi::CString::new(dir.to_str().expect("utf-8")).expect("cstring");
        let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
        // SAFETY: a valid path and buffer.
        assert_eq!(unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) }, 0);
        // SAFETY: statvfs succeeded.
        let st = unsafe { st.assume_init() };
        st.f_bavail * st.f_frsize
    };
    let filler = dir.join("filler");
    let mut file = std::fs::File::create(&filler).expect("filler");
    let chunk = vec![0x5au8; 1 << 20];
    while free() > leave {
        let want = (free() - leave).min(chunk.len() as u64) as usize;
        if file.write_all(&chunk[..want]).is_err() || file.sync_data().is_err() {
            break; // full
        }
    }
    filler
}

#[test]
#[ignore = "needs root"]
fn with_reflinks_a_refresh_needs_room_only_for_what_it_really_writes() {
    if !is_root() {
        eprintln!("skipped: needs root to mount an XFS image");
        return;
    }
    let dir = tempdir();
    for reflink in [true, false] {
        let fs = Xfs::mount(dir.path(), reflink);
        for sub in ["prod", "dev"] {
            std::fs::create_dir(fs.path.join(sub)).expect("mkdir");
        }
        let pair = Pair {
            dir: tempdir(),
            prod: fs.path.join("prod/shop.db"),
            dev: fs.path.join("dev/shop.db"),
        };
        // A 100 MiB PROD in rollback mode; DEV adds a column.
        make_db(
            &pair.prod,
            "delete",
            "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT, photo BLOB);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100)
             INSERT INTO customers(name, photo) SELECT 'c' || i, zeroblob(1 << 20) FROM n;
             CREATE TABLE log(k INTEGER PRIMARY KEY);",
        );
        make_db(
            &pair.dev,
            "delete",
            "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT, photo BLOB, email TEXT);
             CREATE TABLE log(k INTEGER PRIMARY KEY);",
        );
        // 60 MiB free: less than a whole copy of PROD.
        let filler = fill_leaving(&fs.path, 60 << 20);
        let dev_before = std::fs::read(&pair.dev).expect("read");
        let args = [
            "run".to_owned(),
            "--prod".into(),
            pair.prod.display().to_string(),
            "--dev".into(),
            pair.dev.display().to_string(),
        ];
        let (code, out, err) = run(refresh_dev().args(&args));
        if reflink {
            assert_eq!(code, 0, "reflinks: {out}{err}");
            assert_eq!(query_i64(&pair.dev, "SELECT count(*) FROM customers"), 100);
        } else {
            assert_eq!(code, 4, "no reflinks: {out}{err}");
            assert!(err.contains("not enough free space"), "{err}");
            assert_eq!(std::fs::read(&pair.dev).expect("read"), dev_before);
            assert_eq!(names(&fs.path.join("dev")), ["shop.db"]);
        }
        std::fs::remove_file(filler).expect("rm");
        drop(pair);
        drop(fs);
    }
}

/// DEV's folder on a small tmpfs of `size` (root only), PROD's on the
/// test's own disk. Dropped in order: the pair, the mount, the folder.
struct SmallDisk {
    pair: Pair,
    disk: Tmpfs,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn new(size: &str) -> SmallDisk {
        let dir = tempdir();
        let disk = Tmpfs::mount(dir.path(), size);
        std::fs::create_dir(disk.path.join("dev")).expect("mkdir");
        std::fs::create_dir(dir.path().join("prod")).expect("mkdir");
        let pair = Pair {
            dir: tempdir(),
            prod: dir.path().join("prod/shop.db"),
            dev: disk.path.join("dev/shop.db"),
        };
        SmallDisk { pair, disk, _dir: dir }
    }
}

#[test]
#[ignore = "needs root"]
fn the_space_check_counts_the_indexes_dev_adds() {
    if !is_root() {
        eprintln!("skipped: needs root to mount a tmpfs");
        return;
    }
    let small = SmallDisk::new("64m");
    let (disk, pair) = (&small.disk, &small.pair);
    // 12 MiB of text in PROD; DEV indexes it.
    make_db(
        &pair.prod,
        "wal",
        "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
         INSERT INTO notes(body) SELECT hex(randomblob(60)) FROM n;",
    );
    make_db(
        &pair.dev,
        "delete",
        "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT); CREATE INDEX notes_body ON notes(body);",
    );
    let prod_bytes = std::fs::metadata(&pair.prod).expect("stat").len();
    // Room for the copy and a little, not for the index it builds.
    let filler = fill_leaving(&disk.path, prod_bytes + (prod_bytes / 3));
    let dev_before = folder(pair.dev.parent().expect("dev folder"));
    for command in ["plan", "run"] {
        let (code, out, err) = run(refresh_dev().args(pair.args(command)));
        assert_eq!(code, 4, "{command}: {out}{err}");
        assert!(
            err.contains("not enough free space") && err.contains("new indexes"),
            "{err}"
        );
    }
    assert_eq!(folder(&disk.path.join("dev")), dev_before, "refused before copying");
    std::fs::remove_file(filler).expect("rm");
}

#[test]
#[ignore = "needs root"]
fn a_disk_filled_by_another_process_mid_run_leaves_dev_whole_and_no_stray_file() {
    if !is_root() {
        eprintln!("skipped: needs root to mount a tmpfs");
        return;
    }
    let small = SmallDisk::new("48m");
    let (disk, pair) = (&small.disk, &small.pair);
    make_db(
        &pair.prod,
        "wal",
        "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT, n INT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60000)
         INSERT INTO notes(body, n) SELECT hex(randomblob(60)), i FROM n;",
    );
    // A rebuild: the migration writes the whole table again.
    make_db(
        &pair.dev,
        "wal",
        "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT NOT NULL DEFAULT '', n INT CHECK (n > 0));",
    );
    let dev_dir = disk.path.join("dev");
    let dev_before = std::fs::read(&pair.dev).expect("read");
    let staging = dev_dir.join(".shop.refresh-staging.db");
    let child = refresh_dev()
        .args(pair.args("run"))
        .args(["--quiet", "--keep-backups", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // As soon as the copy is in place, another process takes every free byte.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !staging.exists() && Instant::now() < deadline {
        std::thread::yield_now();
    }
    let filler = fill_leaving(&disk.path, 0);
    let (code, err) = finish_within(child, Duration::from_secs(120));
    let left = names(&dev_dir);
    // Room again before reading DEV: a WAL-mode DEV read makes its -shm.
    std::fs::remove_file(&filler).expect("rm");
    eprintln!("the run ended with {code}: {}", err.trim());
    if code == 0 {
        // It finished before the disk filled: a whole new DEV and its backup.
        assert_eq!(query_i64(&pair.dev, "SELECT count(*) FROM notes"), 60000);
        assert_eq!(left.len(), 2, "{left:?}");
    } else {
        assert_eq!(code, 4, "{err}");
        assert_eq!(std::fs::read(&pair.dev).expect("read"), dev_before, "DEV as it was");
        assert_eq!(left, ["shop.db"], "no staging, no sidecar, no lock: {err}");
    }
}

#[test]
#[ignore = "needs root"]
fn reading_a_wal_dev_on_a_full_disk_fails_and_leaves_no_sidecar_or_lock() {
    if !is_root() {
        eprintln!("skipped: needs root to mount a tmpfs");
        return;
    }
    // A WAL-mode DEV with no -wal or -shm: reading it makes both, and on a
    // full disk SQLite cannot grow the -shm, fails the read and leaves them.
    let small = SmallDisk::new("8m");
    let (disk, pair) = (&small.disk, &small.pair);
    make_db(
        &pair.prod,
        "wal",
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b TEXT);",
    );
    make_db(&pair.dev, "wal", "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT);");
    let dev_dir = disk.path.join("dev");
    let before = folder(&dev_dir);
    assert_eq!(names(&dev_dir), ["shop.db"]);
    let filler = fill_leaving(&disk.path, 0);
    let out = dev_dir.join("staged.db");
    let (dev, prod) = (pair.dev.display().to_string(), pair.prod.display().to_string());
    let copy = pair.dir.path().join("copy.db").display().to_string();
    let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let commands = [
        pair.args("plan"),
        pair.args("run"),
        [pair.args("staging"), words(&["--out", &out.display().to_string()])].concat(),
        words(&["diff", &dev, &prod]),
        words(&["snapshot", &dev, &copy]),
    ];
    for args in commands {
        let (code, stdout, err) = run(refresh_dev().args(&args));
        assert_eq!(code, 4, "{args:?}: {stdout}{err}");
        assert!(
            err.contains(&*dev_dir.to_string_lossy()),
            "{args:?} names the file: {err}"
        );
        assert_eq!(folder(&dev_dir), before, "{args:?}: DEV's folder as found: {err}");
    }
    std::fs::remove_file(filler).expect("rm");
}

#[test]
fn a_staging_file_deleted_mid_migration_leaves_no_wal_for_the_next_run() {
    // A migration long enough to delete its file under it: a rebuild of
    // 300,000 rows, copied from a WAL-mode PROD (so the staging copy is
    // WAL-mode too and the migration writes a -wal).
    let pair = small_pair(
        "CREATE TABLE big(id INTEGER PRIMARY KEY, s TEXT, n INT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000)
         INSERT INTO big(s, n) SELECT hex(randomblob(16)), i FROM n;",
        "CREATE TABLE big(id INTEGER PRIMARY KEY, s TEXT, n INT NOT NULL DEFAULT 0 CHECK (n >= 0));",
    );
    let dev_before = std::fs::read(&pair.dev).expect("read");
    let log = pair.dir.path().join("run.log");
    let child = refresh_dev()
        .args(pair.args("run"))
        .args(["--quiet", "--log", log.to_str().expect("utf-8")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // The migration is writing once the staging file's -wal has frames.
    let wal = sqlite_file_sidecar(&pair.staging(), "-wal");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::metadata(&wal).is_ok_and(|m| m.len() > 32) {
        assert!(Instant::now() < deadline, "the migration never wrote");
        std::thread::yield_now();
    }
    let _ = std::fs::remove_file(pair.staging());
    let (code, err) = finish_within(child, Duration::from_secs(120));
    let left = names(&pair.dev_dir());
    eprintln!("the run ended with {code}: {}", err.trim());
    if code == 0 {
        // It had finished the migration first: DEV is new, whole.
        assert_eq!(query_i64(&pair.dev, "SELECT count(*) FROM big"), 300_000, "{err}");
    } else {
        assert_eq!(std::fs::read(&pair.dev).expect("read"), dev_before, "{err}");
        assert_eq!(left, ["shop.db"], "no -wal, -shm or lock left: {err}");
    }
    // Either way the next run copies PROD's rows.
    let (code, out, err) = pair.run("run", &["--quiet"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(query_i64(&pair.dev, "SELECT count(*) FROM big"), 300_000);
}
