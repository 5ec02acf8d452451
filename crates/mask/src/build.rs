//! The masked subset, built into a fresh file: each kept row is copied once,
//! with its masked columns already masked, so no page of the result ever
//! held an original value (not a free page, not a journal page: the new
//! file is written without a journal, and deleted whole if the build
//! fails). The schema is created from the stored `CREATE` texts verbatim:
//! tables before their rows, indexes and triggers after them (so no trigger
//! fires on the copy).

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
    /// The copy to read (a staging file: never PROD itself).
    pub source: &'a Path,
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
}

/// One masked column, and how many values it masked.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MaskedColumn {
    pub table: String,
    pub column: String,
    pub rule: String,
    /// Values replaced (NULLs stay NULL and are not counted).
    pub values: i64,
}

/// What a build did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Built {
    pub masked: Vec<MaskedColumn>,
    /// Per table: rows in the source and rows kept (empty without `[subset]`).
    pub subset: Vec<TableSubset>,
    pub warnings: Vec<String>,
    /// The new file's size.
    pub bytes: u64,
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
    let src_err = |action| sqlite(b.source, action);
    let dest_err = |action| sqlite(b.dest, action);
    // The source's settings, read first: the new file takes them before it
    // holds anything.
    let settings: (String, i64, i64, i64, i64, String) = {
        let c = Connection::open_with_flags(
            b.source,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(src_err("open"))?;
        let get = |p: &str| c.query_row(&format!("PRAGMA {p}"), [], |r| r.get::<_, Value>(0));
        let int = |v: Value| match v {
            Value::Integer(i) => i,
            _ => 0,
        };
        let text = |v: Value| match v {
            Value::Text(s) => s,
            _ => String::new(),
        };
        (
            text(get("encoding").map_err(src_err("read settings"))?),
            int(get("page_size").map_err(src_err("read settings"))?),
            int(get("auto_vacuum").map_err(src_err("read settings"))?),
            int(get("user_version").map_err(src_err("read settings"))?),
            int(get("application_id").map_err(src_err("read settings"))?),
            text(get("journal_mode").map_err(src_err("read settings"))?),
        )
    };
    let (encoding, page_size, auto_vacuum, user_version, application_id, journal_mode) = settings;
    drop(
        sqlite_file::sidefile::create_new(b.dest, b.mode).map_err(|e| Error::Io {
            path: b.dest.to_owned(),
            action: "create",
            source: std::io::Error::other(e.to_string()),
        })?,
    );
    let mut conn = Connection::open_with_flags(
        b.dest,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(dest_err("open"))?;
    if let Some(stop) = b.stop.clone() {
        conn.progress_handler(10_000, Some(move || stop.load(Ordering::Relaxed)))
            .map_err(dest_err("set up"))?;
    }
    conn.execute_batch(&format!(
        "PRAGMA encoding = '{encoding}'; PRAGMA page_size = {page_size}; PRAGMA auto_vacuum = {auto_vacuum};
         PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA foreign_keys = OFF;"
    ))
    .map_err(dest_err("set up"))?;
    conn.execute(
        "ATTACH ?1 AS src",
        [format!("file:{}?mode=ro", sqlite_file::uri_path(b.source))],
    )
    .map_err(src_err("attach"))?;
    let tables = schema::tables(&conn, "src").map_err(src_err("read the schema"))?;
    register_mask(&conn, b.rules, b.key).map_err(dest_err("register the masking"))?;
    progress("choosing the rows to keep");
    let selection = subset::select(&conn, "src", &tables, b.rules, b.exempt).map_err(src_err("select the subset"))?;
    let mut warnings = subset::dev_rows_without_parent(&conn, "src", &tables, &selection, b.exempt)
        .map_err(src_err("count DEV's rows"))?;
    conn.execute_batch("BEGIN").map_err(dest_err("begin"))?;
    for t in tables.iter().filter(|t| t.kind != TableKind::Shadow) {
        if let Some(sql) = &t.sql {
            conn.execute_batch(sql).map_err(dest_err("create a table"))?;
        }
        if t.kind == TableKind::Virtual && !b.rules.subsets.is_empty() {
            warnings.push(format!("{}: a virtual table: copied whole, not subset", t.name));
        }
    }
    let mut masked = Vec::new();
    for t in tables.iter().filter(|t| t.kind != TableKind::Virtual) {
        progress(&format!("copying the rows of {}", t.name));
        let (into, select) = masked_columns(t, b.rules);
        let condition = selection.condition(t, "c");
        let filter = condition.as_deref().map(|c| format!(" WHERE {c}")).unwrap_or_default();
        if t.kind == TableKind::Shadow {
            // Its virtual table may have written a first row already.
            conn.execute_batch(&format!("DELETE FROM main.{}", quote(&t.name)))
                .map_err(dest_err("copy a virtual table's storage"))?;
        }
        let sql = format!(
            "INSERT INTO main.{} ({}) SELECT {} FROM src.{} AS c{filter}",
            quote(&t.name),
            into.join(", "),
            select.join(", "),
            quote(&t.name)
        );
        if let Err(e) = conn.execute_batch(&sql) {
            if b.stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed)) {
                return Err(Error::Interrupted);
            }
            let rules: Vec<String> = b
                .rules
                .masks
                .iter()
                .filter(|m| m.table.eq_ignore_ascii_case(&t.name))
                .map(|m| format!("\"{}.{}\" = {}", m.table, m.column, m.rule.describe()))
                .collect();
            if !rules.is_empty() && matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::ConstraintViolation)) {
                return Err(Error::Constraint {
                    table: t.name.clone(),
                    rules,
                    message: crate::message(&e),
                });
            }
            return Err(Error::sqlite(b.dest, "copy rows", e));
        }
        for m in b.rules.masks.iter().filter(|m| m.table.eq_ignore_ascii_case(&t.name)) {
            let values: i64 = conn
                .query_row(
                    &format!(
                        "SELECT count(c.{}) FROM src.{} AS c{filter}",
                        quote(&m.column),
                        quote(&t.name)
                    ),
                    [],
                    |r| r.get(0),
                )
                .map_err(src_err("count masked values"))?;
            masked.push(MaskedColumn {
                table: t.name.clone(),
                column: m.column.clone(),
                rule: m.rule.describe(),
                values,
            });
        }
    }
    // AUTOINCREMENT counters as they were, then indexes, views, triggers.
    let has = |db: &str, name: &str| -> rusqlite::Result<bool> {
        conn.query_row(
            &format!("SELECT count(*) FROM {db}.sqlite_schema WHERE name = ?1"),
            [name],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
    };
    if has("src", "sqlite_sequence").map_err(src_err("read the schema"))?
        && has("main", "sqlite_sequence").map_err(dest_err("read the schema"))?
    {
        conn.execute_batch(
            "DELETE FROM main.sqlite_sequence; INSERT INTO main.sqlite_sequence (name, seq) SELECT name, seq FROM src.sqlite_sequence",
        )
        .map_err(dest_err("copy AUTOINCREMENT counters"))?;
    }
    progress("creating indexes and triggers");
    let others: Vec<(String, String)> = {
        let mut st = conn
            .prepare("SELECT name, sql FROM src.sqlite_schema WHERE type IN ('index', 'view', 'trigger') AND sql IS NOT NULL ORDER BY rowid")
            .map_err(src_err("read the schema"))?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(src_err("read the schema"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(src_err("read the schema"))?
    };
    for (name, sql) in others {
        if has("main", &name).map_err(dest_err("read the schema"))? {
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
    if has("src", "sqlite_stat1").map_err(src_err("read the schema"))? {
        conn.execute_batch("ANALYZE main").map_err(dest_err("analyze"))?;
    }
    conn.execute_batch(&format!(
        "PRAGMA main.user_version = {user_version}; PRAGMA main.application_id = {application_id}; COMMIT"
    ))
    .map_err(dest_err("commit"))?;
    conn.execute_batch("DETACH src").map_err(src_err("detach"))?;
    let mode = if journal_mode.eq_ignore_ascii_case("wal") {
        "WAL"
    } else {
        "DELETE"
    };
    conn.query_row(&format!("PRAGMA journal_mode = {mode}"), [], |_| Ok(()))
        .map_err(dest_err("set the journal mode"))?;
    drop(conn);
    let file = std::fs::File::open(b.dest).map_err(|e| Error::Io {
        path: b.dest.to_owned(),
        action: "open",
        source: e,
    })?;
    file.sync_all().map_err(|e| Error::Io {
        path: b.dest.to_owned(),
        action: "flush",
        source: e,
    })?;
    let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    Ok(Built {
        masked,
        subset: selection.tables,
        warnings,
        bytes,
    })
}
