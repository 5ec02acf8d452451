//! `schema-diff`: read two SQLite schemas, compare them, and preview what
//! applying DEV's schema onto TARGET would do to TARGET's data.
//!
//! What it does:
//! - Reads each database's schema ([`catalog`]): every object of
//!   `sqlite_schema` with its stored text, PRAGMAs (`table_list`,
//!   `table_xinfo`, `index_list`, `index_xinfo`, `foreign_key_list`) as the
//!   authority for columns, keys and indexes, and sqlparser for CHECK,
//!   COLLATE, generated expressions and AUTOINCREMENT ([`parse`]). Virtual
//!   tables and their shadow tables are one unit; `sqlite_sequence` and
//!   `sqlite_stat*` are data, not objects.
//! - Compares them ([`diff`]): identical means the `(type, name, tbl_name,
//!   sql)` rows are byte-equal and `user_version` and `application_id` match.
//!   Identifiers compare case-insensitively, as SQLite does. Where sqlparser
//!   cannot read a statement the texts are compared normalized and the change
//!   says `compared_by: "text"`: a database is never refused for it.
//! - Plans ([`plan`]) the cheapest safe strategy per table (unchanged,
//!   create, drop, text-only, ALTER steps, rebuild), where each table's rows
//!   come from, and counts the data impact on TARGET's real rows with SQL.
//!
//! - Applies ([`apply`]) DEV's exact schema onto TARGET in one transaction,
//!   keeping every row that fits, and prints the statements it would run
//!   ([`apply::sql`]).
//!
//! The comparison writes nothing: both files are opened so that they and
//! their folders stay as found ([`sqlite_file::open_read_only`]). Only
//! `apply` writes, and only TARGET.

pub mod apply;
mod behind;
pub mod catalog;
mod check_hints;
pub mod cli;
pub mod diff;
pub mod parse;
pub mod plan;
pub mod space;

use std::io;
use std::path::{Path, PathBuf};

use exit_code::Exit;
use serde::Serialize;
use sqlite_file::fs::FileId;
use sqlite_file::{open_read_only, FileError, Header, ReadOnlyDb, Sidecars};

pub use behind::behind;
pub use catalog::Catalog;
pub use diff::SchemaDiff;
pub use plan::Plan;

/// What the user tells schema-diff: renames (`--rename-table OLD=NEW`,
/// `--rename TABLE.OLD=NEW`) and where rows come from (`--dev-data`,
/// `--prod-data`, glob patterns).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Hints {
    /// (old table, new table), lower-cased.
    pub tables: Vec<(String, String)>,
    /// (table, old column, new column), lower-cased.
    pub columns: Vec<(String, String, String)>,
    /// Tables whose rows come from DEV (glob patterns, case-insensitive).
    pub dev_data: Vec<String>,
    /// Tables whose rows come from TARGET even where the defaults say DEV.
    pub prod_data: Vec<String>,
    /// Migration-history tables beyond [`plan::MIGRATION_TABLES`] (glob
    /// patterns, case-insensitive): their rows come from DEV.
    pub migration_tables: Vec<String>,
}

/// Whether `name` matches the glob `pattern` (`*` and `?`), ignoring ASCII case.
///
/// Linear in the pattern times the name at worst: on a mismatch only the
/// last `*` is retried one character further (a `*` met later makes every
/// earlier choice final), so no pattern backtracks exponentially.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == '?' || c.eq_ignore_ascii_case(&n[ni]) => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

impl Hints {
    /// The hints of a command line: `--rename-table OLD=NEW`, `--rename
    /// TABLE.OLD=NEW`, `--dev-data`, `--prod-data` and `--migration-table` globs.
    pub fn parse(
        tables: &[String],
        columns: &[String],
        dev_data: &[String],
        prod_data: &[String],
        migration_tables: &[String],
    ) -> Result<Hints, String> {
        let mut hints = Hints::default();
        for hint in tables {
            hints.add_table(hint)?;
        }
        for hint in columns {
            hints.add_column(hint)?;
        }
        hints.dev_data = dev_data.to_vec();
        hints.prod_data = prod_data.to_vec();
        hints.migration_tables = migration_tables.to_vec();
        Ok(hints)
    }

    /// No hint at all.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
            && self.columns.is_empty()
            && self.dev_data.is_empty()
            && self.prod_data.is_empty()
            && self.migration_tables.is_empty()
    }

    /// TARGET's name for DEV's table `dev_name`.
    pub fn table_in_target(&self, dev_name: &str) -> String {
        let k = catalog::key(dev_name);
        self.tables
            .iter()
            .find(|(_, new)| *new == k)
            .map_or_else(|| dev_name.to_owned(), |(old, _)| old.clone())
    }

    /// DEV's name for TARGET's table `target_name`.
    pub fn table_in_dev(&self, target_name: &str) -> String {
        let k = catalog::key(target_name);
        self.tables
            .iter()
            .find(|(old, _)| *old == k)
            .map_or_else(|| target_name.to_owned(), |(_, new)| new.clone())
    }

    /// TARGET's name for column `column` of DEV's table `table`. A hint's
    /// table may be named as in DEV or as in TARGET.
    pub fn column_in_target(&self, table: &str, column: &str) -> String {
        let names = [catalog::key(table), catalog::key(&self.table_in_target(table))];
        let c = catalog::key(column);
        self.columns
            .iter()
            .find(|(tb, _, new)| names.contains(tb) && *new == c)
            .map_or_else(|| column.to_owned(), |(_, old, _)| old.clone())
    }

    /// DEV's name for column `column` of TARGET's table `table`.
    pub fn column_in_dev(&self, table: &str, column: &str) -> String {
        let names = [catalog::key(table), catalog::key(&self.table_in_dev(table))];
        let c = catalog::key(column);
        self.columns
            .iter()
            .find(|(tb, old, _)| names.contains(tb) && *old == c)
            .map_or_else(|| column.to_owned(), |(_, _, new)| new.clone())
    }

    /// Parses `OLD=NEW` (a table rename hint).
    pub fn add_table(&mut self, hint: &str) -> Result<(), String> {
        let names = split_names(hint)?;
        match names.as_slice() {
            [(old, '='), (new, '\0')] => {
                self.tables.push((catalog::key(old), catalog::key(new)));
                Ok(())
            }
            _ => Err(format!("{hint:?}: expected OLD=NEW")),
        }
    }

    /// Parses `TABLE.OLD=NEW` (a column rename hint).
    pub fn add_column(&mut self, hint: &str) -> Result<(), String> {
        let names = split_names(hint)?;
        match names.as_slice() {
            [(table, '.'), (old, '='), (new, '\0')] => {
                self.columns
                    .push((catalog::key(table), catalog::key(old), catalog::key(new)));
                Ok(())
            }
            _ => Err(format!("{hint:?}: expected TABLE.OLD=NEW")),
        }
    }
}

/// Splits `a.b=c` into names and the separators after them; names may be
/// SQL-quoted (`"…"`, `` `…` ``, `[…]`, `'…'`) to hold dots, spaces or `=`.
fn split_names(hint: &str) -> Result<Vec<(String, char)>, String> {
    let chars: Vec<char> = hint.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        let mut name = String::new();
        match chars.get(i) {
            Some(&q @ ('"' | '`' | '[' | '\'')) => {
                let close = if q == '[' { ']' } else { q };
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(format!("{hint:?}: unclosed quote")),
                        Some(&c) if c == close && close != ']' && chars.get(i + 1) == Some(&close) => {
                            name.push(c);
                            i += 2;
                        }
                        Some(&c) if c == close => {
                            i += 1;
                            break;
                        }
                        Some(&c) => {
                            name.push(c);
                            i += 1;
                        }
                    }
                }
            }
            _ => {
                while let Some(&c) = chars.get(i) {
                    if c == '.' || c == '=' {
                        break;
                    }
                    name.push(c);
                    i += 1;
                }
            }
        }
        if name.is_empty() {
            return Err(format!("{hint:?}: empty name"));
        }
        match chars.get(i) {
            None => {
                out.push((name, '\0'));
                return Ok(out);
            }
            Some(&sep @ ('.' | '=')) => {
                out.push((name, sep));
                i += 1;
            }
            Some(c) => return Err(format!("{hint:?}: unexpected {c:?}")),
        }
    }
}

/// The whole comparison: the diff, the plan and the data impact.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub dev: PathBuf,
    pub target: PathBuf,
    pub identical: bool,
    pub settings: Vec<diff::SettingChange>,
    pub changes: Vec<diff::Change>,
    pub possible_renames: Vec<String>,
    pub plan: Vec<plan::TablePlan>,
    pub data_impact: Vec<plan::Impact>,
    /// Objects SQLite could not describe (missing module or collation), per file.
    pub unreadable: Vec<String>,
    /// Constraints whose violations could not be counted, with why.
    pub not_counted: Vec<String>,
    /// What applying keeps as it is but a user should know: a foreign key
    /// of DEV's that references a table DEV does not have, a table that
    /// looks like a migration history but is not treated as one.
    pub warnings: Vec<String>,
}

impl Report {
    /// Whether applying this report's plan with `on_violation` is refused,
    /// and why, in one sentence that says what to do. The one decision that
    /// `apply` enforces and the driver's `plan` predicts.
    pub fn blocking(&self, on_violation: apply::OnViolation) -> Option<String> {
        let violations = self.violations();
        if !violations.is_empty() {
            if on_violation == apply::OnViolation::Abort {
                return Some(format!(
                    "new constraint violations (nothing was changed; pass --on-violation skip to leave those rows out into a rejects file): {}",
                    violations.join("; ")
                ));
            }
            let unskippable: Vec<String> = self
                .data_impact
                .iter()
                .filter(|i| i.kind == plan::ImpactKind::Violation && i.skip_condition.is_none())
                .map(|i| {
                    format!(
                        "{}{}: {}",
                        i.table,
                        i.column.as_ref().map(|c| format!(".{c}")).unwrap_or_default(),
                        i.unskippable.unwrap_or("its violating rows cannot be singled out")
                    )
                })
                .collect();
            if !unskippable.is_empty() {
                return Some(format!(
                    "new constraint violations that --on-violation skip cannot leave out (nothing was changed; change DEV's schema or PROD's rows): {}",
                    unskippable.join("; ")
                ));
            }
        }
        if !self.not_counted.is_empty() {
            return Some(format!(
                "could not count the rows some new constraints break (nothing was changed): {}",
                self.not_counted.join("; ")
            ));
        }
        None
    }

    /// The rows breaking a new constraint, one line per constraint:
    /// `table.column: N rows: why (e.g. rowid 3, rowid 7)`.
    pub fn violations(&self) -> Vec<String> {
        self.data_impact
            .iter()
            .filter(|i| i.kind == plan::ImpactKind::Violation)
            .map(|i| {
                format!(
                    "{}{}: {}: {}{}",
                    i.table,
                    i.column.as_ref().map(|c| format!(".{c}")).unwrap_or_default(),
                    cli_support::rows(i.rows),
                    i.reason,
                    if i.examples.is_empty() {
                        String::new()
                    } else {
                        format!(" (e.g. {})", i.examples.join(", "))
                    }
                )
            })
            .collect()
    }
}

/// What a comparison counted on TARGET's rows, apart from its structure:
/// what another host (a remote PROD's helper) sends back, counted on its
/// copy of TARGET, for a caller that compared against TARGET's schema alone
/// (the structure depends on the schemas only, so both sides agree on it).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Counts {
    /// Every data-impact entry but those counting DEV's own rows.
    pub impacts: Vec<CountedImpact>,
    /// Per table of the plan: rows touched, bytes written.
    pub tables: Vec<(String, i64, Option<u64>)>,
    pub not_counted: Vec<String>,
    /// Objects TARGET's SQLite could not describe.
    pub unreadable: Vec<String>,
}

/// A data-impact entry as [`Counts`] carries it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct CountedImpact {
    pub table: String,
    pub column: Option<String>,
    pub constraint: Option<String>,
    pub kind: plan::ImpactKind,
    pub reason: String,
    pub rows: i64,
    pub examples: Vec<String>,
    pub skip_condition: Option<String>,
    pub unskippable: Option<String>,
}

/// Whether an impact counts DEV's own rows (counted where DEV is).
fn counts_devs_rows(i: &plan::Impact) -> bool {
    i.kind == plan::ImpactKind::Replaced && i.reason.starts_with("DEV's own rows")
}

impl Report {
    /// What this report counted on TARGET's rows (see [`Counts`]).
    pub fn counts(&self) -> Counts {
        let target = self.target.display().to_string();
        Counts {
            impacts: self
                .data_impact
                .iter()
                .filter(|i| !counts_devs_rows(i))
                .map(|i| CountedImpact {
                    table: i.table.clone(),
                    column: i.column.clone(),
                    constraint: i.constraint.clone(),
                    kind: i.kind,
                    reason: i.reason.clone(),
                    rows: i.rows,
                    examples: i.examples.clone(),
                    skip_condition: i.skip_condition.clone(),
                    unskippable: i.unskippable.map(str::to_owned),
                })
                .collect(),
            tables: self
                .plan
                .iter()
                .map(|t| (t.table.clone(), t.rows_touched, t.bytes_written))
                .collect(),
            not_counted: self.not_counted.clone(),
            unreadable: self
                .unreadable
                .iter()
                .filter(|u| u.starts_with(&target))
                .map(|u| u[target.len()..].to_owned())
                .collect(),
        }
    }

    /// Takes TARGET's counts from `counts` (counted elsewhere on TARGET's
    /// rows), keeping what this report counted on DEV's rows.
    pub fn merge_counts(&mut self, counts: Counts) {
        const UNSKIPPABLE: [&str; 3] = [
            "the rows that fail cannot be told apart in SQL, so none can be left out",
            "a WITHOUT ROWID table: its rows cannot be singled out to leave out",
            "its violating rows cannot be singled out",
        ];
        let mut impacts: Vec<plan::Impact> = counts
            .impacts
            .into_iter()
            .map(|i| plan::Impact {
                table: i.table,
                column: i.column,
                constraint: i.constraint,
                kind: i.kind,
                reason: i.reason,
                rows: i.rows,
                examples: i.examples,
                skip_condition: i.skip_condition,
                unskippable: i
                    .unskippable
                    .map(|u| UNSKIPPABLE.into_iter().find(|k| *k == u).unwrap_or(UNSKIPPABLE[2])),
            })
            .collect();
        impacts.extend(self.data_impact.drain(..).filter(counts_devs_rows));
        self.data_impact = impacts;
        for t in &mut self.plan {
            if let Some((_, touched, bytes)) = counts.tables.iter().find(|c| c.0 == t.table) {
                t.rows_touched = *touched;
                t.bytes_written = *bytes;
            }
        }
        self.not_counted = counts.not_counted;
        let target = self.target.display().to_string();
        self.unreadable.retain(|u| !u.starts_with(&target));
        self.unreadable
            .extend(counts.unreadable.into_iter().map(|u| format!("{target}{u}")));
    }
}

/// Why a comparison could not be made. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file error every tool shares: missing, not a database, I/O, a full disk, … ([`sqlite_file::FileError`]).
    #[error(transparent)]
    File(#[from] sqlite_file::FileError),
    #[error("{}: has a hot journal (an interrupted transaction); open it with its application first", .0.display())]
    HotJournal(PathBuf),
    /// Another process held its lock for longer than `--wait`.
    #[error("{}: another process holds its lock; nothing was changed (wait longer with --wait SECONDS)", .0.display())]
    Busy(PathBuf),
    #[error("{}: needs what its application provides: {what}; load it with --load-extension PATH", path.display())]
    MissingExtension { path: PathBuf, what: String },
    #[error("{}: cannot load extension: {why}", path.display())]
    Extension { path: PathBuf, why: String },
    /// A hint that names no such table or column (a typo would lose data silently).
    #[error("{hint}: {why}")]
    BadHint { hint: String, why: String },
    /// What [`Report::blocking`] said, in its words.
    #[error("{}: {list}", path.display())]
    Violations { path: PathBuf, list: String },
    /// A link, an existing file or a stale sidecar at the name of a file it
    /// makes (the rejects database, the `--sql` copy): refused.
    #[error(transparent)]
    SideFile(sqlite_file::sidefile::SideFileError),
    #[error("not built yet: {0}")]
    NotBuilt(&'static str),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<sqlite_file::sidefile::SideFileError> for Error {
    /// A side file's I/O failure is a file error; its refusals stay refusals.
    fn from(e: sqlite_file::sidefile::SideFileError) -> Error {
        match e {
            sqlite_file::sidefile::SideFileError::Io { path, action, source } => {
                Error::File(FileError::Io { path, action, source })
            }
            e => Error::SideFile(e),
        }
    }
}

impl Error {
    /// A stable code for scripts (`--json`'s `error.code`), listed in the README.
    pub fn code(&self) -> &'static str {
        match self {
            Error::File(e) => e.code(),
            Error::HotJournal(_) => "hot_journal",
            Error::Busy(_) => "busy",
            Error::MissingExtension { .. } | Error::Extension { .. } => "missing_extension",
            Error::BadHint { .. } => "bad_hint",
            Error::Violations { .. } => "violations",
            Error::SideFile(e) => e.code(),
            Error::NotBuilt(_) | Error::Internal(_) => "io",
        }
    }

    /// The file the error is about, where it names one.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Error::File(e) => Some(e.path()),
            Error::HotJournal(p) | Error::Busy(p) => Some(p),
            Error::MissingExtension { path, .. } | Error::Extension { path, .. } | Error::Violations { path, .. } => {
                Some(path)
            }
            Error::SideFile(e) => Some(e.path()),
            Error::BadHint { .. } | Error::NotBuilt(_) | Error::Internal(_) => None,
        }
    }

    /// The exit status for this error, from the workspace's one table.
    pub fn exit(&self) -> Exit {
        match self {
            Error::File(e) => e.exit(),
            Error::Internal(_) => Exit::Error,
            Error::HotJournal(_) | Error::Busy(_) | Error::Violations { .. } | Error::SideFile(_) => Exit::Refused,
            _ => Exit::BadInput,
        }
    }
}

pub(crate) fn sqlite_error(path: &Path, action: &'static str, e: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode;
    let message = e.to_string();
    for missing in ["no such collation sequence", "no such module", "no such function"] {
        if let Some(at) = message.find(missing) {
            return Error::MissingExtension {
                path: path.to_owned(),
                what: message[at..].to_owned(),
            };
        }
    }
    match e.sqlite_error() {
        Some(f) if f.extended_code == rusqlite::ffi::SQLITE_READONLY_ROLLBACK => Error::HotJournal(path.to_owned()),
        Some(f) if matches!(f.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            Error::Busy(path.to_owned())
        }
        Some(f) if matches!(f.code, ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            Error::File(FileError::NotADatabase {
                path: path.to_owned(),
                reason: format!("corrupt: {e}"),
            })
        }
        _ => Error::File(FileError::Sqlite {
            path: path.to_owned(),
            action,
            source: e,
        }),
    }
}

/// An I/O failure on the file at `path`.
pub(crate) fn io_error(path: &Path, action: &'static str, source: io::Error) -> Error {
    Error::File(FileError::Io {
        path: path.to_owned(),
        action,
        source,
    })
}

/// How the databases are read: what to load into each connection, and how
/// long to wait for another process's lock on them.
#[derive(Debug, Clone)]
pub struct Reading {
    /// Extensions loaded into every connection (collations, functions,
    /// virtual table modules DEV's application provides).
    pub extensions: Vec<PathBuf>,
    /// How long to wait for an application's lock, reading or applying.
    pub wait: std::time::Duration,
}

impl Default for Reading {
    /// No extension; 10 seconds for a lock.
    fn default() -> Reading {
        Reading {
            extensions: Vec::new(),
            wait: std::time::Duration::from_secs(10),
        }
    }
}

/// Opens `path` read-only, leaving it and its folder as found, with the
/// extensions loaded (collations, functions, virtual table modules).
pub fn open(path: &Path, reading: &Reading) -> Result<(ReadOnlyDb, Header), Error> {
    // SQLite reads an empty file as an empty database: so does schema-diff.
    let header = sqlite_file::inspect(path, true)
        .map_err(|e| match sqlite_file::FileError::of_input(path, e) {
            Ok(e) => Error::File(e),
            Err(e) => Error::File(FileError::Io {
                path: path.to_owned(),
                action: "read the header",
                source: e,
            }),
        })?
        .header;
    let sidecars = Sidecars::of(path).map_err(|e| io_error(path, "look for sidecars", e))?;
    let db = open_read_only(path, &header, &sidecars).map_err(|e| sqlite_error(path, "open", e))?;
    // Foreign keys play no part in reading; say so rather than inherit
    // rusqlite's bundled default.
    db.conn()
        .pragma_update(None, "foreign_keys", false)
        .map_err(|e| sqlite_error(path, "pragma", e))?;
    db.conn()
        .busy_timeout(sqlite_file::wait::busy_timeout(reading.wait))
        .map_err(|e| sqlite_error(path, "busy timeout", e))?;
    load_extensions(db.conn(), &reading.extensions)?;
    Ok((db, header))
}

/// Loads each extension into `conn`.
pub(crate) fn load_extensions(conn: &rusqlite::Connection, extensions: &[PathBuf]) -> Result<(), Error> {
    for extension in extensions {
        let loaded = {
            // SAFETY: loading an extension runs its code in this process; the
            // user named it explicitly with --load-extension, and loading is
            // switched off again by the guard.
            let _guard = unsafe { rusqlite::LoadExtensionGuard::new(conn) };
            unsafe { conn.load_extension(extension, None::<&str>) }
        };
        loaded.map_err(|e| Error::Extension {
            path: extension.clone(),
            why: e.to_string(),
        })?;
    }
    Ok(())
}

pub(crate) use sqlite_file::uri_path;

/// `open`, for a short read that must not wait for a writer (PROD's
/// application): SQLite gives up after 200 ms, and the caller after it.
pub(crate) fn open_briefly(path: &Path) -> Result<(ReadOnlyDb, Header), Error> {
    let (db, header) = open(path, &Reading::default())?;
    db.conn()
        .busy_timeout(std::time::Duration::from_millis(200))
        .map_err(|e| sqlite_error(path, "busy timeout", e))?;
    Ok((db, header))
}

/// Checks the hints against DEV's and TARGET's schemas alone (a short read
/// of each, nothing counted): a rename names a table or column that is
/// there, a glob matches a table. `Error::BadHint` (exit 2) names the hint,
/// the file and the closest name.
pub fn check_hints(dev_path: &Path, target_path: &Path, hints: &Hints, reading: &Reading) -> Result<(), Error> {
    if hints.is_empty() {
        return Ok(());
    }
    let catalog = |path: &Path| -> Result<Catalog, Error> {
        let (db, header) = open_briefly(path)?;
        crate::load_extensions(db.conn(), &reading.extensions)?;
        Catalog::read(db.conn(), header.journal.as_str()).map_err(|e| sqlite_error(path, "read schema", e))
    };
    check_hints::check(
        &catalog(dev_path)?,
        &catalog(target_path)?,
        hints,
        dev_path,
        target_path,
    )
}

/// Compares DEV's schema with TARGET's and plans the change. Writes nothing.
/// `reading`'s extensions are loaded into both connections first.
pub fn compare(dev_path: &Path, target_path: &Path, hints: &Hints, reading: &Reading) -> Result<Report, Error> {
    let (dev, dev_header) = open(dev_path, reading)?;
    let (target, target_header) = open(target_path, reading)?;
    if FileId::of(dev_path).ok() == FileId::of(target_path).ok() {
        return Err(Error::File(FileError::SameFile {
            a: dev_path.to_owned(),
            b: target_path.to_owned(),
        }));
    }
    let read = |db: &ReadOnlyDb, header: &Header, path: &Path| -> Result<Catalog, Error> {
        // One read transaction: the catalog and the counts see one state.
        db.conn()
            .execute_batch("BEGIN")
            .map_err(|e| sqlite_error(path, "begin", e))?;
        Catalog::read(db.conn(), header.journal.as_str()).map_err(|e| sqlite_error(path, "read schema", e))
    };
    let dev_catalog = read(&dev, &dev_header, dev_path)?;
    let target_catalog = read(&target, &target_header, target_path)?;
    if dev_catalog.settings.encoding != target_catalog.settings.encoding {
        return Err(Error::File(FileError::Encodings {
            a: dev_path.to_owned(),
            b: target_path.to_owned(),
            a_encoding: dev_catalog.settings.encoding.clone(),
            b_encoding: target_catalog.settings.encoding.clone(),
        }));
    }
    check_hints::check(&dev_catalog, &target_catalog, hints, dev_path, target_path)?;
    let diff = diff::diff(&dev_catalog, &target_catalog, hints);
    let mut plan = plan::plan(&diff, &dev_catalog, &target_catalog, dev.conn(), target.conn(), hints)
        .map_err(|e| sqlite_error(target_path, "count the data impact", e))?;
    space::measure(&mut plan.tables, &diff.changes, &dev_catalog, hints, target.conn());
    let mut unreadable = Vec::new();
    for (path, catalog) in [(dev_path, &dev_catalog), (target_path, &target_catalog)] {
        for (name, why) in &catalog.unreadable {
            unreadable.push(format!("{}: {name}: {why}", path.display()));
        }
    }
    let _ = dev.conn().execute_batch("COMMIT");
    let _ = target.conn().execute_batch("COMMIT");
    Ok(Report {
        dev: dev_path.to_owned(),
        target: target_path.to_owned(),
        identical: diff.identical,
        settings: diff.settings,
        changes: diff.changes,
        possible_renames: diff.possible_renames,
        plan: plan.tables,
        data_impact: plan.data_impact,
        unreadable,
        not_counted: plan.not_counted,
        warnings: plan.warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_never_backtrack_exponentially() {
        // Exponential matching would not finish these in the life of the machine.
        let name = "a".repeat(200);
        assert!(!glob_match("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", &name));
        assert!(glob_match("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*", &name));
        assert!(glob_match("*?b", "aab") && !glob_match("*?b", "b"));
    }

    #[test]
    fn globs_match_like_a_shell_ignoring_case() {
        assert!(glob_match("audit_*", "AUDIT_log"));
        assert!(glob_match("t?", "t1"));
        assert!(!glob_match("t?", "t12"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("orders", "order_items"));
    }

    #[test]
    fn rename_hints_take_quoted_names() {
        let mut r = Hints::default();
        r.add_column("orders.note=comment").expect("plain");
        r.add_column("'\"order items\".\"old col\"=new'".trim_matches('\''))
            .expect("quoted");
        r.add_column("[a.b].\"x=y\"=z").expect("brackets");
        r.add_table("old=new").expect("table");
        assert_eq!(r.columns[1], ("order items".into(), "old col".into(), "new".into()));
        assert_eq!(r.columns[2], ("a.b".into(), "x=y".into(), "z".into()));
        assert_eq!(r.table_in_target("NEW"), "old");
        assert!(r.add_column("no-dot=x").is_err());
        assert!(r.add_table("a=b=c").is_err());
    }
}
