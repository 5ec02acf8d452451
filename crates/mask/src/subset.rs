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

/// `set`'s keys as a sorted JSON array, where they are integers and fewer
/// than a quarter of `rows`: a list SQLite seeks by, rather than a scan.
fn listed(set: &HashSet<RowKey>, rows: i64) -> Option<String> {
    if set.len() as i64 * 4 > rows {
        return None;
    }
    let mut keys: Vec<i64> = set
        .iter()
        .map(|k| match k {
            RowKey::Int(i) => Some(*i),
            RowKey::Bytes(_) => None,
        })
        .collect::<Option<_>>()?;
    keys.sort_unstable();
    let text: Vec<String> = keys.iter().map(i64::to_string).collect();
    Some(format!("[{}]", text.join(",")))
}

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
            // A few rows of a large table: found by their rowids, not a scan.
            Keep::Only(set) => Some(match (table.rowid_name(), self.listed(set, t.rows)) {
                (Some(rowid), Some(list)) => format!("{alias}.{rowid} IN (SELECT value FROM json_each('{list}'))"),
                _ => format!("refresh_in({set}, {key})"),
            }),
            Keep::AllBut(set) => self.nonempty(set).then(|| format!("NOT refresh_in({set}, {key})")),
        }
    }

    /// The set's keys as a JSON array, sorted, where they are integers and
    /// fewer than a quarter of the table's `rows`.
    fn listed(&self, set: usize, rows: i64) -> Option<String> {
        let sets = self.sets.lock().ok()?;
        listed(&sets[set], rows)
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

/// The indexes of the in-scope tables, each parent before its children
/// (a table's references to itself aside), or `None` where foreign keys
/// make a cycle among tables.
fn parents_first(
    tables: &[Table],
    in_scope: &dyn Fn(&Table) -> bool,
    index_of: &dyn Fn(&str) -> Option<usize>,
) -> Option<Vec<usize>> {
    let scope: Vec<usize> = (0..tables.len()).filter(|&i| in_scope(&tables[i])).collect();
    let parents = |c: usize| -> Vec<usize> {
        tables[c]
            .foreign_keys
            .iter()
            .filter_map(|fk| index_of(&fk.parent))
            .filter(|&p| p != c && scope.contains(&p))
            .collect()
    };
    let mut order: Vec<usize> = Vec::new();
    while order.len() < scope.len() {
        let next = scope
            .iter()
            .copied()
            .find(|&c| !order.contains(&c) && parents(c).iter().all(|p| order.contains(p)))?;
        order.push(next);
    }
    Some(order)
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
    // How a child's foreign key finds its parent: by the parent's rowid
    // straight from the child's column where the key is the parent's
    // INTEGER PRIMARY KEY (no join), else by a join on the key's columns.
    let direct = |fk: &crate::schema::ForeignKey, parent: &Table| -> Option<String> {
        match (fk.from.as_slice(), fk.to.as_slice(), parent.rowid_alias()) {
            ([f], [t], Some(alias)) if alias.name.eq_ignore_ascii_case(t) && parent.rowid_name().is_some() => {
                Some(format!("c.{}", quote(f)))
            }
            _ => None,
        }
    };
    let exists = |fk: &crate::schema::ForeignKey, parent: &Table| -> String {
        match (direct(fk, parent), parent.rowid_name()) {
            (Some(value), Some(rowid)) => {
                format!("EXISTS (SELECT 1 FROM {} AS p WHERE p.{rowid} = {value})", from(parent))
            }
            _ => format!("EXISTS (SELECT 1 FROM {} AS p WHERE {})", from(parent), join(fk)),
        }
    };
    // The in-scope tables, parents before children where the foreign keys
    // allow (then one pass suffices); a cycle among tables falls back to
    // passes until nothing changes.
    let order = parents_first(tables, &in_scope, &index_of);
    let acyclic = order.is_some();
    let order = order.unwrap_or_else(|| (0..tables.len()).filter(|&i| in_scope(&tables[i])).collect());

    // 2. Kept rows pull their parents in, to a fixpoint (children first).
    let mut changed = true;
    while changed {
        changed = false;
        for &c in order.iter().rev() {
            let child = &tables[c];
            loop {
                let mut grew = false;
                if sets.lock().map(|s| s[pulled[c]].is_empty()).unwrap_or(true) {
                    break;
                }
                for fk in &child.foreign_keys {
                    let Some(p) = index_of(&fk.parent).filter(|&p| in_scope(&tables[p])) else {
                        continue;
                    };
                    let parent = &tables[p];
                    let sql = match direct(fk, parent) {
                        Some(value) => format!(
                            "SELECT {value} FROM {} AS c WHERE refresh_in({}, {}) AND {value} IS NOT NULL AND {}",
                            from(child),
                            pulled[c],
                            child.row_key("c"),
                            exists(fk, parent)
                        ),
                        None => format!(
                            "SELECT {} FROM {} AS p JOIN {} AS c ON {} WHERE refresh_in({}, {})",
                            parent.row_key("p"),
                            from(parent),
                            from(child),
                            join(fk),
                            pulled[c],
                            child.row_key("c")
                        ),
                    };
                    let more = collect(conn, &sets, pulled[p], &sql)?;
                    changed |= more;
                    grew |= more && p == c;
                }
                // A table referencing itself pulls its own rows: again, until none is new.
                if !grew {
                    break;
                }
            }
        }
        changed &= !acyclic;
    }
    // 3. Unfiltered tables' rows follow their parents out (parents first).
    // only[i]: table i's kept rows are exactly pulled[i] (a filter's, or
    // found from a parent's few kept rows); else removed[i] holds those
    // that go.
    let only: Vec<std::cell::Cell<bool>> = tables
        .iter()
        .map(|t| std::cell::Cell::new(filtered(t).is_some()))
        .collect();
    let kept_parent = |p: usize, value: &str| -> String {
        if only[p].get() {
            format!("refresh_in({}, {value})", pulled[p])
        } else {
            format!("NOT refresh_in({}, {value})", removed[p])
        }
    };
    let rows: Vec<i64> = tables
        .iter()
        .map(|t| {
            if in_scope(t) {
                conn.query_row(&format!("SELECT count(*) FROM {}", from(t)), [], |r| r.get(0))
            } else {
                Ok(0)
            }
        })
        .collect::<rusqlite::Result<_>>()?;
    // A child whose one parent keeps a few rows: its kept rows are found
    // through its foreign key's index (those of the kept parents, those
    // with no parent), not by testing each of its rows.
    let few_kept_parents = |c: usize| -> rusqlite::Result<bool> {
        let child = &tables[c];
        let fks: Vec<(&crate::schema::ForeignKey, usize)> = child
            .foreign_keys
            .iter()
            .filter_map(|fk| index_of(&fk.parent).filter(|&p| in_scope(&tables[p])).map(|p| (fk, p)))
            .collect();
        let (Some(rowid), [(fk, p)]) = (child.rowid_name(), fks.as_slice()) else {
            return Ok(false);
        };
        let (p, parent) = (*p, &tables[*p]);
        let (Some(value), Some(parent_rowid)) = (direct(fk, parent), parent.rowid_name()) else {
            return Ok(false);
        };
        if p == c || !only[p].get() {
            return Ok(false);
        }
        let list = {
            let sets = sets
                .lock()
                .map_err(|_| rusqlite::Error::UserFunctionError("poisoned".into()))?;
            listed(&sets[pulled[p]], rows[p])
        };
        let Some(list) = list else { return Ok(false) };
        collect(
            conn,
            &sets,
            pulled[c],
            &format!(
                "SELECT c.{rowid} FROM {} AS c WHERE {value} IN (SELECT value FROM json_each('{list}'))",
                from(child)
            ),
        )?;
        collect(
            conn,
            &sets,
            pulled[c],
            &format!(
                "SELECT c.{rowid} FROM {} AS c WHERE {value} IS NULL OR NOT EXISTS (SELECT 1 FROM {} AS p WHERE p.{parent_rowid} = {value})",
                from(child),
                from(parent)
            ),
        )?;
        only[c].set(true);
        Ok(true)
    };
    if acyclic {
        for &c in &order {
            if filtered(&tables[c]).is_none() {
                few_kept_parents(c)?;
            }
        }
    }
    let mut changed = true;
    while changed {
        changed = false;
        for &c in &order {
            let child = &tables[c];
            if only[c].get() {
                continue;
            }
            loop {
                let mut grew = false;
                for fk in &child.foreign_keys {
                    let Some(p) = index_of(&fk.parent).filter(|&p| in_scope(&tables[p])) else {
                        continue;
                    };
                    let parent = &tables[p];
                    let not_null: Vec<String> = fk.from.iter().map(|f| format!("c.{} IS NOT NULL", quote(f))).collect();
                    let left_out = match direct(fk, parent) {
                        Some(value) => format!("NOT ({})", kept_parent(p, &value)),
                        None => format!(
                            "NOT EXISTS (SELECT 1 FROM {} AS p WHERE {} AND {})",
                            from(parent),
                            join(fk),
                            kept_parent(p, &parent.row_key("p"))
                        ),
                    };
                    let more = collect(
                        conn,
                        &sets,
                        removed[c],
                        &format!(
                            "SELECT {key} FROM {child} AS c WHERE {nn} AND {left_out} \
                             AND NOT refresh_in({pc}, {key}) AND NOT refresh_in({rc}, {key}) AND {exists}",
                            key = child.row_key("c"),
                            child = from(child),
                            nn = not_null.join(" AND "),
                            pc = pulled[c],
                            rc = removed[c],
                            exists = exists(fk, parent),
                        ),
                    )?;
                    changed |= more;
                    grew |= more && p == c;
                }
                if !grew {
                    break;
                }
            }
        }
        changed &= !acyclic;
    }
    // The counts.
    let mut out = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        if t.kind != TableKind::Ordinary {
            continue;
        }
        let rows = if in_scope(t) {
            rows[i]
        } else {
            conn.query_row(&format!("SELECT count(*) FROM {}", from(t)), [], |r| r.get(0))?
        };
        // Every key in a set is a row's: the counts are the sets' sizes.
        let count_in = |set: usize| -> rusqlite::Result<i64> {
            sets.lock()
                .map(|s| s[set].len() as i64)
                .map_err(|_| rusqlite::Error::UserFunctionError("poisoned".into()))
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
        } else if only[i].get() {
            let kept = count_in(pulled[i])?;
            let why = if kept < rows {
                "rows whose parent was left out follow it".to_owned()
            } else {
                "no filter: every row".to_owned()
            };
            (Keep::Only(pulled[i]), kept, why)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Rules;

    fn kept(sql: &str, rules: &str) -> Vec<(String, i64, i64)> {
        let conn = Connection::open_in_memory().expect("memory");
        conn.execute_batch(sql).expect("sql");
        let rules = Rules::parse(std::path::Path::new("rules.toml"), rules).expect("rules");
        let tables = crate::schema::tables(&conn, "main").expect("tables");
        let s = select(&conn, "main", &tables, &rules, &[]).expect("select");
        s.tables.iter().map(|t| (t.table.clone(), t.rows, t.kept)).collect()
    }

    #[test]
    fn a_cycle_of_tables_and_a_self_reference_reach_a_fixpoint() {
        // a <-> b reference each other; c references itself in a chain.
        let sql = "PRAGMA foreign_keys = OFF;
            CREATE TABLE a (id INTEGER PRIMARY KEY, b_id INTEGER REFERENCES b(id));
            CREATE TABLE b (id INTEGER PRIMARY KEY, a_id INTEGER REFERENCES a(id));
            CREATE TABLE c (id INTEGER PRIMARY KEY, up INTEGER REFERENCES c(id), a_id INTEGER REFERENCES a(id));
            INSERT INTO a VALUES (1, 10), (2, 20), (3, NULL);
            INSERT INTO b VALUES (10, 2), (20, NULL), (30, 3);
            INSERT INTO c VALUES (100, NULL, 1), (101, 100, NULL), (102, 101, NULL), (103, NULL, 3);";
        // a keeps 1, which pulls b 10, which pulls a 2, which pulls b 20.
        // c (no filter): 103's parent a 3 is left out, so it goes; the chain 100-102 stays.
        let got = kept(sql, "[subset]\na = \"id = 1\"\n");
        assert_eq!(
            got,
            [("a".into(), 3, 2), ("b".into(), 3, 2), ("c".into(), 4, 3)],
            "{got:?}"
        );
        // Leaving the chain's head out takes the whole chain with it.
        let got = kept(sql, "[subset]\na = \"id = 3\"\n");
        assert_eq!(got[2], ("c".into(), 4, 1), "{got:?}");
    }

    #[test]
    fn children_of_a_few_kept_parents_are_found_by_their_key_with_nulls_and_orphans_kept() {
        let sql = "PRAGMA foreign_keys = OFF;
            CREATE TABLE r (id INTEGER PRIMARY KEY);
            CREATE TABLE k (id INTEGER PRIMARY KEY, r_id INTEGER REFERENCES r(id));
            CREATE INDEX k_r ON k(r_id);
            CREATE TABLE g (id INTEGER PRIMARY KEY, k_id INTEGER REFERENCES k(id));
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100)
            INSERT INTO r SELECT i FROM n;
            INSERT INTO k VALUES (1, 1), (2, 2), (3, NULL), (4, 999);
            WITH RECURSIVE n(i) AS (SELECT 5 UNION ALL SELECT i + 1 FROM n WHERE i < 100)
            INSERT INTO k SELECT i, i FROM n;
            INSERT INTO g VALUES (1, 1), (2, 50), (3, 4), (4, NULL);";
        // r keeps 2 rows; k keeps their children, its NULL and its orphan;
        // g keeps the children of those, and its NULL.
        let got = kept(sql, "[subset]\nr = \"id <= 2\"\n");
        assert_eq!(
            got,
            [("r".into(), 100, 2), ("k".into(), 100, 4), ("g".into(), 4, 3)],
            "{got:?}"
        );
    }
}
