//! Which rows a subset keeps, closed over foreign keys:
//!
//! 1. A table with a filter keeps the rows its filter selects.
//! 2. Those rows, and every row pulled in for them, pull in the parents they
//!    reference, to a fixpoint.
//! 3. A table without a filter keeps all its rows, except rows whose parent
//!    (present in the source) was left out: they follow their parents,
//!    transitively. Their rows never pull parents in.
//!
//! The kept rows are held as sets of row keys in this process and asked for
//! by SQL through `refresh_in(SET, KEY)`, so the same selection serves a
//! read-only plan and the build.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use rusqlite::functions::FunctionFlags;
use rusqlite::types::ValueRef;
use rusqlite::Connection;

use crate::rules::{Filter, Rules};
use crate::schema::{quote, Table, TableKind};

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
enum RowKey {
    Int(i64),
    Bytes(Vec<u8>),
}

impl RowKey {
    fn of(v: ValueRef<'_>) -> Option<RowKey> {
        match v {
            ValueRef::Null => None,
            ValueRef::Integer(i) => Some(RowKey::Int(i)),
            ValueRef::Real(f) => Some(RowKey::Bytes(f.to_string().into_bytes())),
            ValueRef::Text(t) | ValueRef::Blob(t) => Some(RowKey::Bytes(t.to_vec())),
        }
    }
}

type Sets = Arc<Mutex<Vec<HashSet<RowKey>>>>;

/// What a table keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Every row (no filter, or rows that are DEV's).
    All,
    /// A filtered table: the rows in this set.
    Only(usize),
    /// An unfiltered table: every row but those in this set.
    AllBut(usize),
}

/// A table's part in the subset.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TableSubset {
    pub table: String,
    /// Rows in the source.
    pub rows: i64,
    /// Rows kept.
    pub kept: i64,
    /// Why rows were left out, or kept whole.
    pub why: String,
    #[serde(skip, default = "all")]
    pub keep: Keep,
}

fn all() -> Keep {
    Keep::All
}

/// The rows every table keeps.
pub struct Selection {
    pub tables: Vec<TableSubset>,
    sets: Sets,
}

impl Selection {
    /// The condition (over `alias`) a row of `table` meets to be kept, or
    /// `None` where every row is.
    pub fn condition(&self, table: &Table, alias: &str) -> Option<String> {
        let t = self.tables.iter().find(|t| t.table == table.name)?;
        let key = table.row_key(alias);
        match t.keep {
            Keep::All => None,
            Keep::Only(set) => Some(format!("refresh_in({set}, {key})")),
            Keep::AllBut(set) => self.nonempty(set).then(|| format!("NOT refresh_in({set}, {key})")),
        }
    }

    fn nonempty(&self, set: usize) -> bool {
        self.sets.lock().map(|s| !s[set].is_empty()).unwrap_or(true)
    }
}

/// Registers `refresh_in(SET, KEY)` and `refresh_sample(PERCENT, KEY…)` on `conn`.
fn register(conn: &Connection, sets: &Sets) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    let held = Arc::clone(sets);
    conn.create_scalar_function("refresh_in", 2, flags, move |ctx| {
        let set: usize = ctx.get::<i64>(0)? as usize;
        let Some(key) = RowKey::of(ctx.get_raw(1)) else {
            return Ok(false);
        };
        let sets = held
            .lock()
            .map_err(|_| rusqlite::Error::UserFunctionError("poisoned".into()))?;
        Ok(sets.get(set).is_some_and(|s| s.contains(&key)))
    })?;
    conn.create_scalar_function("refresh_sample", -1, flags, |ctx| {
        let percent: f64 = ctx.get(0)?;
        let key: Vec<ValueRef<'_>> = (1..ctx.len()).map(|i| ctx.get_raw(i)).collect();
        Ok(crate::key::sampled(percent, &key))
    })
}

/// Adds the keys `sql` returns to `set`; whether it grew.
fn collect(conn: &Connection, sets: &Sets, set: usize, sql: &str) -> rusqlite::Result<bool> {
    let mut st = conn.prepare(sql)?;
    let mut rows = st.query([])?;
    let mut found = Vec::new();
    while let Some(r) = rows.next()? {
        if let Some(k) = RowKey::of(r.get_ref(0)?) {
            found.push(k);
        }
    }
    let mut sets = sets
        .lock()
        .map_err(|_| rusqlite::Error::UserFunctionError("poisoned".into()))?;
    let before = sets[set].len();
    sets[set].extend(found);
    Ok(sets[set].len() > before)
}

/// The join of child `c` to parent `p` over a foreign key's columns.
fn join(fk: &crate::schema::ForeignKey) -> String {
    let on: Vec<String> = fk
        .from
        .iter()
        .zip(&fk.to)
        .map(|(f, t)| format!("p.{} = c.{}", quote(t), quote(f)))
        .collect();
    on.join(" AND ")
}

/// Selects the rows each table of database `db` keeps under `rules`.
/// Tables named in `exempt` (DEV's rows) keep all theirs and never pull.
pub fn select(
    conn: &Connection,
    db: &str,
    tables: &[Table],
    rules: &Rules,
    exempt: &[String],
) -> rusqlite::Result<Selection> {
    let sets: Sets = Arc::new(Mutex::new(Vec::new()));
    register(conn, &sets)?;
    let in_scope = |t: &Table| t.kind == TableKind::Ordinary && !exempt.iter().any(|e| e.eq_ignore_ascii_case(&t.name));
    let index_of = |name: &str| tables.iter().position(|t| t.name.eq_ignore_ascii_case(name));
    // pulled[i]: rows of table i that are kept whatever else (filtered or pulled in);
    // removed[i]: rows of unfiltered table i left out with their parents.
    let mut pulled = vec![0usize; tables.len()];
    let mut removed = vec![0usize; tables.len()];
    {
        let mut s = sets
            .lock()
            .map_err(|_| rusqlite::Error::UserFunctionError("poisoned".into()))?;
        for i in 0..tables.len() {
            pulled[i] = s.len();
            s.push(HashSet::new());
            removed[i] = s.len();
            s.push(HashSet::new());
        }
    }
    let from = |t: &Table| format!("{}.{}", quote(db), quote(&t.name));
    let filtered = |t: &Table| in_scope(t).then(|| rules.subset_of(&t.name)).flatten();
    if rules.subsets.is_empty() {
        return Ok(Selection {
            tables: Vec::new(),
            sets,
        });
    }
    // 1. The filters.
    for (i, t) in tables.iter().enumerate() {
        let Some(s) = filtered(t) else { continue };
        let condition = match &s.filter {
            Filter::Where(w) => format!("({w})"),
            Filter::Percent(p) => format!("refresh_sample({p}, {})", t.sample_key("c")),
        };
        collect(
            conn,
            &sets,
            pulled[i],
            &format!("SELECT {} FROM {} AS c WHERE {condition}", t.row_key("c"), from(t)),
        )?;
    }
    // 2. Kept rows pull their parents in, to a fixpoint.
    let mut changed = true;
    while changed {
        changed = false;
        for (c, child) in tables.iter().enumerate().filter(|(_, t)| in_scope(t)) {
            if sets.lock().map(|s| s[pulled[c]].is_empty()).unwrap_or(true) {
                continue;
            }
            for fk in &child.foreign_keys {
                let Some(p) = index_of(&fk.parent).filter(|&p| in_scope(&tables[p])) else {
                    continue;
                };
                let parent = &tables[p];
                changed |= collect(
                    conn,
                    &sets,
                    pulled[p],
                    &format!(
                        "SELECT {} FROM {} AS p JOIN {} AS c ON {} WHERE refresh_in({}, {})",
                        parent.row_key("p"),
                        from(parent),
                        from(child),
                        join(fk),
                        pulled[c],
                        child.row_key("c")
                    ),
                )?;
            }
        }
    }
    // 3. Unfiltered tables' rows follow their parents out, to a fixpoint.
    let kept_parent = |p: usize| -> String {
        let parent = &tables[p];
        if filtered(parent).is_some() {
            format!("refresh_in({}, {})", pulled[p], parent.row_key("p"))
        } else {
            format!("NOT refresh_in({}, {})", removed[p], parent.row_key("p"))
        }
    };
    let mut changed = true;
    while changed {
        changed = false;
        for (c, child) in tables.iter().enumerate() {
            if !in_scope(child) || filtered(child).is_some() {
                continue;
            }
            for fk in &child.foreign_keys {
                let Some(p) = index_of(&fk.parent).filter(|&p| in_scope(&tables[p])) else {
                    continue;
                };
                let not_null: Vec<String> = fk.from.iter().map(|f| format!("c.{} IS NOT NULL", quote(f))).collect();
                changed |= collect(
                    conn,
                    &sets,
                    removed[c],
                    &format!(
                        "SELECT {key} FROM {child} AS c WHERE {nn} \
                         AND EXISTS (SELECT 1 FROM {parent} AS p WHERE {on}) \
                         AND NOT EXISTS (SELECT 1 FROM {parent} AS p WHERE {on} AND {kept}) \
                         AND NOT refresh_in({pc}, {key}) AND NOT refresh_in({rc}, {key})",
                        key = child.row_key("c"),
                        child = from(child),
                        nn = not_null.join(" AND "),
                        parent = from(&tables[p]),
                        on = join(fk),
                        kept = kept_parent(p),
                        pc = pulled[c],
                        rc = removed[c],
                    ),
                )?;
            }
        }
    }
    // The counts.
    let mut out = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        if t.kind != TableKind::Ordinary {
            continue;
        }
        let rows: i64 = conn.query_row(&format!("SELECT count(*) FROM {}", from(t)), [], |r| r.get(0))?;
        let count_in = |set: usize| -> rusqlite::Result<i64> {
            conn.query_row(
                &format!(
                    "SELECT count(*) FROM {} AS c WHERE refresh_in({set}, {})",
                    from(t),
                    t.row_key("c")
                ),
                [],
                |r| r.get(0),
            )
        };
        let (keep, kept, why) = if !in_scope(t) {
            (Keep::All, rows, "its rows are DEV's: not subset".to_owned())
        } else if let Some(s) = filtered(t) {
            let kept = count_in(pulled[i])?;
            (
                Keep::Only(pulled[i]),
                kept,
                format!("{}, and the parents of rows kept", s.filter.describe()),
            )
        } else {
            let gone = count_in(removed[i])?;
            let why = if gone > 0 {
                "rows whose parent was left out follow it".to_owned()
            } else {
                "no filter: every row".to_owned()
            };
            (Keep::AllBut(removed[i]), rows - gone, why)
        };
        out.push(TableSubset {
            table: t.name.clone(),
            rows,
            kept,
            why,
            keep,
        });
    }
    Ok(Selection { tables: out, sets })
}

/// Rows of DEV's tables (`exempt`) that reference a parent the subset left
/// out: kept, and reported. One line per foreign key with such rows.
pub fn dev_rows_without_parent(
    conn: &Connection,
    db: &str,
    tables: &[Table],
    selection: &Selection,
    exempt: &[String],
) -> rusqlite::Result<Vec<String>> {
    let mut out = Vec::new();
    for child in tables
        .iter()
        .filter(|t| exempt.iter().any(|e| e.eq_ignore_ascii_case(&t.name)))
    {
        for fk in &child.foreign_keys {
            let Some(parent) = tables.iter().find(|t| t.name.eq_ignore_ascii_case(&fk.parent)) else {
                continue;
            };
            let Some(kept) = selection.condition(parent, "p") else {
                continue;
            };
            let on = join(fk);
            let n: i64 = conn.query_row(
                &format!(
                    "SELECT count(*) FROM {db}.{c} AS c WHERE EXISTS (SELECT 1 FROM {db}.{p} AS p WHERE {on}) \
                     AND NOT EXISTS (SELECT 1 FROM {db}.{p} AS p WHERE {on} AND {kept})",
                    db = quote(db),
                    c = quote(&child.name),
                    p = quote(&parent.name),
                ),
                [],
                |r| r.get(0),
            )?;
            if n > 0 {
                out.push(format!(
                    "{}: {n} of DEV's rows reference a row of {} the subset left out: kept",
                    child.name, parent.name
                ));
            }
        }
    }
    Ok(out)
}
