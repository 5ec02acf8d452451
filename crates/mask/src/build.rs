//! The masked subset, built into a fresh file: each kept row is read once
//! from the source (in one read transaction: a consistent point in time)
//! and written once, with its masked columns already masked, so no page of
//! the result ever held an original value (not a free page, not a journal
//! page: the new file is written without a journal, and deleted whole if
//! the build fails). Only the kept rows are written: a 5% subset writes
//! about 5% of the source. The source is only read, through the caller's
//! read-only connection. The schema is created from the stored `CREATE`
//! texts verbatim: tables before their rows, indexes and triggers after
//! them (so no trigger fires on the copy).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rusqlite::functions::FunctionFlags;
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};

use crate::key::Key;
use crate::rules::{Rule, Rules};
use crate::schema::{self, quote, Table, TableKind};
use crate::subset::{self, TableSubset};
use crate::Error;

/// What to build.
pub struct Build<'a> {
    /// The data, opened read-only by the caller (its `main` database).
    pub source: &'a Connection,
    /// Its path, for messages.
    pub source_path: &'a Path,
    /// The new file: must not exist.
    pub dest: &'a Path,
    pub rules: &'a Rules,
    pub key: &'a Key,
    /// Tables whose rows are DEV's: never subset.
    pub exempt: &'a [String],
    /// The new file's permission bits.
    pub mode: u32,
    /// Set to stop the build (its statements are interrupted).
    pub stop: Option<Arc<AtomicBool>>,
    /// Copy the rows of these tables only (an image of the schema, with a
    /// migration history's rows, for comparing on another host: no other
    /// table data moves); `None`: every table's kept rows.
    pub only_rows_of: Option<&'a [String]>,
}

/// One masked column, and how many values it masked.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct MaskedColumn {
    pub table: String,
    pub column: String,
    pub rule: String,
    /// Values replaced (NULLs stay NULL and are not counted).
    pub values: i64,
}

/// What a build did.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Built {
    pub masked: Vec<MaskedColumn>,
    /// Per table: rows in the source and rows kept (empty without `[subset]`).
    pub subset: Vec<TableSubset>,
    pub warnings: Vec<String>,
    /// The new file's size.
    pub bytes: u64,
}

/// A build asked of another host (the remote helper on PROD's host, so
/// that no original value crosses the network): the rules in the data's
/// names, the key, and the tables that are never subset.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Job {
    pub rules: Rules,
    /// [`Key::to_hex`].
    pub key: String,
    pub exempt: Vec<String>,
    /// Check the rules against the source's schema first (a copy whose
    /// schema is the result's); a migration's rules were checked against
    /// DEV's by the caller.
    pub check: bool,
}

impl Job {
    /// Builds the masked subset of `source` into the new file `dest`.
    /// Rules naming a column the source lacks (a column DEV adds) mask
    /// nothing there.
    pub fn run(&self, source: &Path, dest: &Path) -> Result<Built, Error> {
        let key = Key::from_hex(&self.key).ok_or_else(|| Error::Key {
            path: dest.to_owned(),
            why: "the job's key is not 32 bytes in hex".into(),
        })?;
        // The helper's private copy, or PROD itself (`--no-private-copy`):
        // opened so that its folder is left as found.
        let header = sqlite_file::Header::read(source)
            .map_err(|e| Error::io(source, "read the header", std::io::Error::other(e.to_string())))?;
        let sidecars = sqlite_file::Sidecars::of(source).map_err(|e| Error::io(source, "look for sidecars", e))?;
        let db =
            sqlite_file::open_read_only(source, &header, &sidecars).map_err(|e| Error::sqlite(source, "open", e))?;
        let conn = db.conn();
        if self.check {
            self.rules.check(conn)?;
        }
        build(
            &Build {
                source: conn,
                source_path: source,
                dest,
                rules: &self.rules,
                key: &key,
                exempt: &self.exempt,
                mode: 0o600,
                stop: None,
                only_rows_of: None,
            },
            &mut |_| {},
        )
    }
}

/// An image of `source`'s schema (its `CREATE` texts and settings) in the
/// new file `dest`, with the rows of the tables in `with_rows` only (a
/// migration history).
pub fn schema_image(source: &Connection, source_path: &Path, dest: &Path, with_rows: &[String]) -> Result<(), Error> {
    let rules = Rules {
        path: source_path.to_owned(),
        masks: Vec::new(),
        subsets: Vec::new(),
        fingerprint: String::new(),
    };
    let key = Key::from_bytes(b"schema image: no value is masked");
    build(
        &Build {
            source,
            source_path,
            dest,
            rules: &rules,
            key: &key,
            exempt: &[],
            mode: 0o600,
            stop: None,
            only_rows_of: Some(with_rows),
        },
        &mut |_| {},
    )
    .map(|_| ())
}

/// Registers `refresh_mask(RULE_INDEX, VALUE)` on `conn`: the masked value
/// of `VALUE` under `rules.masks[RULE_INDEX]`.
pub fn register_mask(conn: &Connection, rules: &Rules, key: &Key) -> rusqlite::Result<()> {
    let masks: Vec<Rule> = rules.masks.iter().map(|m| m.rule.clone()).collect();
    let key = key.clone();
    conn.create_scalar_function(
        "refresh_mask",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        move |ctx| {
            let i: usize = ctx.get::<i64>(0)? as usize;
            let rule = masks
                .get(i)
                .ok_or_else(|| rusqlite::Error::UserFunctionError("no such rule".into()))?;
            Ok(key.mask(rule, ctx.get_raw(1)))
        },
    )
}

/// The SELECT list copying `t`'s columns (aliased `c`) with its masked
/// columns masked, and the matching INSERT column list.
pub fn masked_columns(t: &Table, rules: &Rules) -> (Vec<String>, Vec<String>) {
    let mut into = Vec::new();
    let mut select = Vec::new();
    if t.rowid_alias().is_none() {
        if let Some(rowid) = t.rowid_name() {
            into.push(rowid.to_owned());
            select.push(format!("c.{rowid}"));
        }
    }
    for col in t.columns.iter().filter(|c| !c.generated) {
        into.push(quote(&col.name));
        let plain = format!("c.{}", quote(&col.name));
        select.push(
            match rules
                .masks
                .iter()
                .position(|m| m.table.eq_ignore_ascii_case(&t.name) && m.column.eq_ignore_ascii_case(&col.name))
            {
                None => plain,
                Some(i) => match &rules.masks[i].rule {
                    Rule::Sql(expr) => format!("({expr})"),
                    Rule::Null => "NULL".into(),
                    _ => format!("refresh_mask({i}, {plain})"),
                },
            },
        );
    }
    (into, select)
}

fn sqlite<'a>(path: &'a Path, action: &'static str) -> impl Fn(rusqlite::Error) -> Error + 'a {
    move |e| Error::sqlite(path, action, e)
}

/// Builds the masked subset of `b.source` into the new file `b.dest`. On
/// any failure the new file is removed; the source is never written.
pub fn build(b: &Build, progress: &mut dyn FnMut(&str)) -> Result<Built, Error> {
    let result = build_into(b, progress);
    if result.is_err() {
        let _ = sqlite_file::sidefile::remove_with_sidecars(b.dest);
    }
    result
}

fn build_into(b: &Build, progress: &mut dyn FnMut(&str)) -> Result<Built, Error> {
    // One read transaction: every table as of one point in time.
    b.source
        .execute_batch("BEGIN")
        .map_err(sqlite(b.source_path, "begin"))?;
    // Stopping interrupts the statement reading the source (a long
    // selection or copy), from a watcher, as the stop flag is set.
    let done = Arc::new(AtomicBool::new(false));
    let watcher = b.stop.clone().map(|stop| {
        let handle = b.source.get_interrupt_handle();
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if stop.load(Ordering::Relaxed) {
                    handle.interrupt();
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        })
    });
    let result = build_in(b, progress);
    done.store(true, Ordering::Relaxed);
    if let Some(w) = watcher {
        let _ = w.join();
    }
    let _ = b.source.execute_batch("COMMIT");
    match result {
        Err(_) if b.stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed)) => Err(Error::Interrupted),
        r => r,
    }
}

fn build_in(b: &Build, progress: &mut dyn FnMut(&str)) -> Result<Built, Error> {
    let src = b.source;
    let src_err = |action| sqlite(b.source_path, action);
    let dest_err = |action| sqlite(b.dest, action);
    let int = |p: &str| src.query_row(&format!("PRAGMA main.{p}"), [], |r| r.get::<_, i64>(0));
    let encoding: String = src
        .query_row("PRAGMA main.encoding", [], |r| r.get(0))
        .map_err(src_err("read settings"))?;
    let journal_mode: String = src
        .query_row("PRAGMA main.journal_mode", [], |r| r.get(0))
        .map_err(src_err("read settings"))?;
    let [page_size, auto_vacuum, user_version, application_id] =
        ["page_size", "auto_vacuum", "user_version", "application_id"].map(int);
    let (page_size, auto_vacuum, user_version, application_id) = (
        page_size.map_err(src_err("read settings"))?,
        auto_vacuum.map_err(src_err("read settings"))?,
        user_version.map_err(src_err("read settings"))?,
        application_id.map_err(src_err("read settings"))?,
    );
    let tables = schema::tables(src, "main").map_err(src_err("read the schema"))?;
    register_mask(src, b.rules, b.key).map_err(src_err("register the masking"))?;
    progress("choosing the rows to keep");
    let selection = subset::select(src, "main", &tables, b.rules, b.exempt).map_err(src_err("select the subset"))?;
    let mut warnings = b.rules.unused_filters(b.exempt);

    drop(
        sqlite_file::sidefile::create_new(b.dest, b.mode)
            .map_err(|e| Error::io(b.dest, "create", std::io::Error::other(e.to_string())))?,
    );
    let conn = Connection::open_with_flags(
        b.dest,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(dest_err("open"))?;
    let stopped = || b.stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed));
    conn.execute_batch(&format!(
        "PRAGMA encoding = '{encoding}'; PRAGMA page_size = {page_size}; PRAGMA auto_vacuum = {auto_vacuum};
         PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA foreign_keys = OFF; BEGIN;"
    ))
    .map_err(dest_err("set up"))?;
    for t in tables.iter().filter(|t| t.kind != TableKind::Shadow) {
        if let Some(sql) = &t.sql {
            conn.execute_batch(sql).map_err(dest_err("create a table"))?;
        }
        if t.kind == TableKind::Virtual && !b.rules.subsets.is_empty() {
            warnings.push(format!("{}: a virtual table: copied whole, not subset", t.name));
        }
    }
    let mut masked = Vec::new();
    let copied = |t: &Table| {
        b.only_rows_of
            .is_none_or(|only| only.iter().any(|o| o.eq_ignore_ascii_case(&t.name)))
    };
    for t in tables.iter().filter(|t| t.kind != TableKind::Virtual && copied(t)) {
        progress(&format!("copying the rows of {}", t.name));
        let (into, select) = masked_columns(t, b.rules);
        let condition = selection.condition(t, "c");
        let filter = condition.as_deref().map(|c| format!(" WHERE {c}")).unwrap_or_default();
        if t.kind == TableKind::Shadow {
            // Its virtual table may have written a first row already.
            conn.execute_batch(&format!("DELETE FROM main.{}", quote(&t.name)))
                .map_err(dest_err("copy a virtual table's storage"))?;
        }
        let marks: Vec<String> = (1..=into.len()).map(|i| format!("?{i}")).collect();
        let mut insert = conn
            .prepare(&format!(
                "INSERT INTO main.{} ({}) VALUES ({})",
                quote(&t.name),
                into.join(", "),
                marks.join(", ")
            ))
            .map_err(dest_err("copy rows"))?;
        let mut read = src
            .prepare(&format!(
                "SELECT {} FROM main.{} AS c{filter}",
                select.join(", "),
                quote(&t.name)
            ))
            .map_err(src_err("read rows"))?;
        let mut rows = read.raw_query();
        let mut n: u64 = 0;
        loop {
            let row = match rows.next() {
                Ok(Some(row)) => row,
                Ok(None) => break,
                Err(_) if stopped() => return Err(Error::Interrupted),
                Err(e) => return Err(Error::sqlite(b.source_path, "read rows", e)),
            };
            for i in 0..into.len() {
                let v = row.get_ref(i).map_err(src_err("read rows"))?;
                insert
                    .raw_bind_parameter(i + 1, rusqlite::types::ToSqlOutput::Borrowed(v))
                    .map_err(dest_err("copy rows"))?;
            }
            if let Err(e) = insert.raw_execute() {
                let rules: Vec<String> = b
                    .rules
                    .masks
                    .iter()
                    .filter(|m| m.table.eq_ignore_ascii_case(&t.name))
                    .map(|m| format!("\"{}.{}\" = {}", m.table, m.column, m.rule.describe()))
                    .collect();
                if !rules.is_empty() && matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::ConstraintViolation))
                {
                    return Err(Error::Constraint {
                        table: t.name.clone(),
                        rules,
                        message: crate::message(&e),
                    });
                }
                return Err(Error::sqlite(b.dest, "copy rows", e));
            }
            n += 1;
            if n.is_multiple_of(10_000) && stopped() {
                return Err(Error::Interrupted);
            }
        }
        drop(rows);
        for m in b.rules.masks.iter().filter(|m| m.table.eq_ignore_ascii_case(&t.name)) {
            let values: i64 = conn
                .query_row(
                    &format!("SELECT count({}) FROM main.{}", quote(&m.column), quote(&t.name)),
                    [],
                    |r| r.get(0),
                )
                .map_err(dest_err("count masked values"))?;
            masked.push(MaskedColumn {
                table: t.name.clone(),
                column: m.column.clone(),
                rule: m.rule.describe(),
                values,
            });
        }
    }
    // AUTOINCREMENT counters as they were, then indexes, views, triggers.
    let has = |c: &Connection, name: &str| -> rusqlite::Result<bool> {
        c.query_row("SELECT count(*) FROM main.sqlite_schema WHERE name = ?1", [name], |r| {
            r.get::<_, i64>(0)
        })
        .map(|n| n > 0)
    };
    if has(src, "sqlite_sequence").map_err(src_err("read the schema"))?
        && has(&conn, "sqlite_sequence").map_err(dest_err("read the schema"))?
    {
        conn.execute_batch("DELETE FROM main.sqlite_sequence")
            .map_err(dest_err("copy AUTOINCREMENT counters"))?;
        let mut st = src
            .prepare("SELECT name, seq FROM main.sqlite_sequence")
            .map_err(src_err("read AUTOINCREMENT counters"))?;
        let counters: Vec<(Value, Value)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(src_err("read AUTOINCREMENT counters"))?
            .collect::<rusqlite::Result<_>>()
            .map_err(src_err("read AUTOINCREMENT counters"))?;
        for (name, seq) in counters {
            conn.execute(
                "INSERT INTO main.sqlite_sequence (name, seq) VALUES (?1, ?2)",
                (name, seq),
            )
            .map_err(dest_err("copy AUTOINCREMENT counters"))?;
        }
    }
    progress("creating indexes and triggers");
    let others: Vec<(String, String)> = {
        let mut st = src
            .prepare("SELECT name, sql FROM main.sqlite_schema WHERE type IN ('index', 'view', 'trigger') AND sql IS NOT NULL ORDER BY rowid")
            .map_err(src_err("read the schema"))?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(src_err("read the schema"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(src_err("read the schema"))?
    };
    for (name, sql) in others {
        if has(&conn, &name).map_err(dest_err("read the schema"))? {
            continue;
        }
        conn.execute_batch(&sql).map_err(|e| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::ConstraintViolation) => Error::Constraint {
                table: name.clone(),
                rules: b
                    .rules
                    .masks
                    .iter()
                    .map(|m| format!("\"{}.{}\" = {}", m.table, m.column, m.rule.describe()))
                    .collect(),
                message: crate::message(&e),
            },
            _ => Error::sqlite(b.dest, "create an index, view or trigger", e),
        })?;
    }
    if has(src, "sqlite_stat1").map_err(src_err("read the schema"))? && b.only_rows_of.is_none() {
        conn.execute_batch("ANALYZE main").map_err(dest_err("analyze"))?;
    }
    conn.execute_batch(&format!(
        "PRAGMA main.user_version = {user_version}; PRAGMA main.application_id = {application_id}; COMMIT"
    ))
    .map_err(dest_err("commit"))?;
    let mode = if journal_mode.eq_ignore_ascii_case("wal") {
        "WAL"
    } else {
        "DELETE"
    };
    conn.query_row(&format!("PRAGMA journal_mode = {mode}"), [], |_| Ok(()))
        .map_err(dest_err("set the journal mode"))?;
    drop(conn);
    let file = std::fs::File::open(b.dest).map_err(|e| Error::io(b.dest, "open", e))?;
    file.sync_all().map_err(|e| Error::io(b.dest, "flush", e))?;
    let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    Ok(Built {
        masked,
        subset: selection.tables,
        warnings,
        bytes,
    })
}
