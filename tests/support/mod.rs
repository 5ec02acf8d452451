//! Small helpers for the end-to-end tests: real files in temporary folders,
//! real processes. Each test file includes this with `mod support;`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};

use rusqlite::Connection;

/// A temporary folder that an unprivileged user can also enter.
pub fn tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// Every file in `dir` with its bytes (`-shm` files by name only: SQLite
/// readers move their read marks, as any WAL reader does).
pub fn folder(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| {
            let e = e.expect("entry");
            let name = e.file_name().to_string_lossy().into_owned();
            let bytes = if name.ends_with("-shm") || e.path().is_dir() {
                Vec::new()
            } else {
                std::fs::read(e.path()).expect("read")
            };
            (name, bytes)
        })
        .collect()
}

/// The names in `dir`, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    folder(dir).into_keys().collect()
}

/// Creates a database at `path` in `journal_mode` by running `sql`.
pub fn make_db(path: &Path, journal_mode: &str, sql: &str) {
    let conn = Connection::open(path).expect("open");
    conn.pragma_update(None, "journal_mode", journal_mode)
        .expect("journal_mode");
    conn.execute_batch(sql).expect("sql");
    conn.close().expect("close");
}

/// One value from a query on the database at `path`. Opened read-write with
/// `query_only`, so that no `-wal`/`-shm` is left behind (a read-only open of
/// an idle WAL file would create them and leave them).
pub fn query_i64(path: &Path, sql: &str) -> i64 {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE).expect("open");
    conn.pragma_update(None, "query_only", true).expect("query_only");
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .expect("busy_timeout");
    conn.query_row(sql, [], |r| r.get(0)).expect(sql)
}

/// The `(type, name, tbl_name, sql)` rows of `sqlite_schema`, the `sqlite_`
/// internals aside, sorted.
pub fn schema_rows(path: &Path) -> Vec<(String, String, String, Option<String>)> {
    let conn = Connection::open(path).expect("open");
    let mut stmt = conn
        .prepare(
            "SELECT type, name, tbl_name, sql FROM sqlite_schema \
             WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY type, name",
        )
        .expect("prepare");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("rows")
}

/// `PRAGMA integrity_check` on the database at `path`.
pub fn integrity(path: &Path) -> String {
    let conn = Connection::open(path).expect("open");
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check")
}

/// The application stand-in `tests/support/sqlite_app.py`.
pub fn app() -> Command {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/support/sqlite_app.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script);
    cmd
}

/// The app stand-in moving amounts between the accounts of `db` (see
/// sqlite_app.py `transfer`) until `stop` exists; in WAL mode with
/// automatic checkpoints only when `checkpoint`. Killed if still running
/// when dropped.
pub fn transfer_writer(db: &Path, stop: &Path, checkpoint: bool) -> KillOnDrop {
    let mut cmd = app();
    cmd.arg("transfer").arg(db).arg(stop);
    if checkpoint {
        cmd.arg("checkpoint");
    }
    KillOnDrop(Some(cmd.stdout(Stdio::null()).spawn().expect("spawn the writer")))
}

/// An app process holding a connection to a database in some state, until dropped.
pub struct HeldConnection {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<std::process::ChildStdout>,
}

impl HeldConnection {
    /// `state`: `open`, `idle`, `read` or `write` (see sqlite_app.py).
    pub fn start(db: &Path, state: &str) -> HeldConnection {
        let mut child = app()
            .args(["hold", db.to_str().expect("utf-8 path"), state])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn app");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read");
        assert_eq!(line.trim(), "ready", "the app did not reach state {state}");
        let stdin = child.stdin.take();
        HeldConnection { child, stdin, stdout }
    }

    /// The app's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends one command (`end`, `sql QUERY`) and returns the app's answer.
    pub fn ask(&mut self, command: &str) -> String {
        let stdin = self.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{command}").expect("write");
        stdin.flush().expect("flush");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read");
        line.trim().to_owned()
    }
}

impl Drop for HeldConnection {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.flush();
        }
        let _ = self.child.wait();
    }
}

/// A child process that is killed if the test ends (or panics) before it
/// was waited for: a leftover child would keep the test runner's pipes open.
pub struct KillOnDrop(pub Option<Child>);

impl KillOnDrop {
    /// Waits for the child and returns whether it exited successfully.
    pub fn wait(mut self) -> bool {
        self.0.take().is_some_and(|mut c| c.wait().is_ok_and(|s| s.success()))
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `out` parsed as JSON; a test fails showing it when it is not.
pub fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// Runs `cmd` and returns its output with the exit code.
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output { status, stdout, stderr } = cmd.output().expect("run");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// Whether this process runs as root (needed to mount a tmpfs, and to switch
/// to an unprivileged user: root itself ignores permission bits).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `cmd` run as the unprivileged user `nobody`.
pub fn as_nobody(program: &Path) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(program);
    cmd
}

/// A small tmpfs mounted at a folder inside `parent`, unmounted on drop.
pub struct Tmpfs {
    pub path: PathBuf,
}

impl Tmpfs {
    pub fn mount(parent: &Path, size: &str) -> Tmpfs {
        let path = parent.join("small-disk");
        std::fs::create_dir(&path).expect("mkdir");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"])
            .arg(&path)
            .status()
            .expect("mount");
        assert!(status.success(), "mount tmpfs failed (tests must run as root)");
        Tmpfs { path }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

/// Runs `cmd` to completion and returns (exit code, peak RSS in KiB).
pub fn run_measuring_rss(cmd: &mut Command) -> (i32, u64) {
    let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: waiting for our own child; both out-pointers are valid.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, usage.as_mut_ptr()) };
    assert_eq!(rc, pid, "wait4");
    // SAFETY: wait4 succeeded and filled the struct.
    let usage = unsafe { usage.assume_init() };
    std::mem::forget(child);
    (libc::WEXITSTATUS(status), usage.ru_maxrss as u64)
}

/// `crates/refresh-dev/schema/report.schema.json`, read.
pub fn report_schema() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crates/refresh-dev/schema/report.schema.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("schema")).expect("JSON")
}

/// Checks `value` against the subset of JSON Schema that
/// `crates/refresh-dev/schema/report.schema.json` uses: type, enum,
/// required, properties, additionalProperties: false, items, anyOf, $ref.
pub fn conforms(
    value: &serde_json::Value,
    schema: &serde_json::Value,
    root: &serde_json::Value,
    at: &str,
) -> Result<(), String> {
    use serde_json::Value;
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.trim_start_matches("#/$defs/");
        return conforms(value, &root["$defs"][name], root, at);
    }
    if let Some(options) = schema.get("anyOf").and_then(Value::as_array) {
        return if options.iter().any(|o| conforms(value, o, root, at).is_ok()) {
            Ok(())
        } else {
            Err(format!("{at}: matches none of anyOf"))
        };
    }
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    if let Some(t) = schema.get("type") {
        let allowed: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let ok = allowed.contains(&kind) || (kind == "integer" && allowed.contains(&"number"));
        if !ok {
            return Err(format!("{at}: {kind}, the schema says {t}"));
        }
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        if !values.contains(value) {
            return Err(format!("{at}: {value} is not among {values:?}"));
        }
    }
    if let Value::Object(object) = value {
        let properties = schema.get("properties").and_then(Value::as_object);
        for required in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
            let key = required.as_str().unwrap_or_default();
            if !object.contains_key(key) {
                return Err(format!("{at}: {key} is required"));
            }
        }
        for (key, v) in object {
            match properties.and_then(|p| p.get(key)) {
                Some(s) => conforms(v, s, root, &format!("{at}.{key}"))?,
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    return Err(format!("{at}: {key} is not in the schema"));
                }
                None => {}
            }
        }
    }
    if let (Value::Array(items), Some(s)) = (value, schema.get("items")) {
        for (i, v) in items.iter().enumerate() {
            conforms(v, s, root, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// A PROD and a DEV for the driver's tests.
pub trait ProdAndDev {
    fn prod(&self) -> &Path;
    fn dev(&self) -> &Path;

    /// `COMMAND --prod PROD --dev DEV`.
    fn args(&self, command: &str) -> Vec<String> {
        vec![
            command.to_owned(),
            "--prod".into(),
            self.prod().display().to_string(),
            "--dev".into(),
            self.dev().display().to_string(),
        ]
    }
}

/// Sends Ctrl-C (SIGINT) to `child` once `ready` says so, and checks that
/// it ends as an interrupted run does: exit 3, `interrupted` in its JSON.
pub fn interrupt_when(mut child: std::process::Child, what: &str, ready: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !ready() {
        assert!(child.try_wait().expect("wait").is_none(), "ended before {what}");
        assert!(std::time::Instant::now() < deadline, "{what} never started");
        std::thread::yield_now();
    }
    // SAFETY: kill only sends a signal to our own child.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) }, 0);
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        json(&String::from_utf8_lossy(&out.stdout))["error"]["code"],
        "interrupted"
    );
}
