//! What the masking and the subset need to know of a schema: its tables,
//! their columns and keys, and the foreign keys between them, as SQLite's
//! own PRAGMAs describe them.

use rusqlite::Connection;

/// An SQL identifier, double-quoted.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The names of the tables of `conn`'s `main` database (not SQLite's own).
pub fn table_names(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut st = conn.prepare(
        "SELECT name FROM main.sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
    )?;
    let rows = st.query_map([], |r| r.get(0))?;
    rows.collect()
}

/// What kind of table SQLite says it is (`PRAGMA table_list`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    Ordinary,
    Virtual,
    /// A virtual table's storage.
    Shadow,
}

impl TableKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TableKind::Ordinary => "ordinary",
            TableKind::Virtual => "virtual",
            TableKind::Shadow => "shadow",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub declared_type: String,
    /// Position in the primary key (1-based), 0 when not in it.
    pub pk: i64,
    /// A generated column (never inserted).
    pub generated: bool,
}

/// A foreign key of a table: its columns and the parent's.
#[derive(Debug, Clone)]
pub struct ForeignKey {
    pub parent: String,
    pub from: Vec<String>,
    /// The parent's columns (its primary key where the key names none).
    pub to: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Table {
    pub name: String,
    pub kind: TableKind,
    pub without_rowid: bool,
    pub columns: Vec<Column>,
    pub foreign_keys: Vec<ForeignKey>,
    /// `CREATE TABLE …` as stored.
    pub sql: Option<String>,
}

impl Table {
    /// The primary key's columns, in key order.
    pub fn primary_key(&self) -> Vec<&Column> {
        let mut pk: Vec<&Column> = self.columns.iter().filter(|c| c.pk > 0).collect();
        pk.sort_by_key(|c| c.pk);
        pk
    }

    /// The column that is the rowid (`INTEGER PRIMARY KEY`), if any.
    pub fn rowid_alias(&self) -> Option<&Column> {
        match self.primary_key().as_slice() {
            [c] if !self.without_rowid && c.declared_type.eq_ignore_ascii_case("integer") => Some(c),
            _ => None,
        }
    }

    /// A name for the rowid no column hides, for a rowid table.
    pub fn rowid_name(&self) -> Option<&'static str> {
        if self.without_rowid {
            return None;
        }
        ["rowid", "_rowid_", "oid"]
            .into_iter()
            .find(|n| !self.columns.iter().any(|c| c.name.eq_ignore_ascii_case(n)))
    }

    /// An SQL expression (over the table, aliased `alias`) whose value says
    /// which row it is: the rowid, else the primary key (as one value).
    pub fn row_key(&self, alias: &str) -> String {
        if let Some(name) = self.rowid_name() {
            return format!("{alias}.{name}");
        }
        match self.primary_key().as_slice() {
            [c] => format!("{alias}.{}", quote(&c.name)),
            pk => {
                let cols: Vec<String> = pk.iter().map(|c| format!("{alias}.{}", quote(&c.name))).collect();
                format!("json_array({})", cols.join(", "))
            }
        }
    }

    /// The columns a sample hashes: the primary key, else the rowid.
    pub fn sample_key(&self, alias: &str) -> String {
        match self.primary_key().as_slice() {
            [] => self.row_key(alias),
            pk => {
                let cols: Vec<String> = pk.iter().map(|c| format!("{alias}.{}", quote(&c.name))).collect();
                cols.join(", ")
            }
        }
    }
}

/// The tables of database `db` on `conn` (not SQLite's own `sqlite_*`), in
/// the schema's order.
pub fn tables(conn: &Connection, db: &str) -> rusqlite::Result<Vec<Table>> {
    let kinds: Vec<(String, String, bool)> = {
        let mut st = conn.prepare(&format!("PRAGMA {}.table_list", quote(db)))?;
        let rows = st.query_map([], |r| {
            Ok((r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, i64>(4)? != 0))
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut st = conn.prepare(&format!(
        "SELECT name, sql FROM {}.sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid",
        quote(db)
    ))?;
    let named: Vec<(String, Option<String>)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::new();
    for (name, sql) in named {
        let (kind, without_rowid) = match kinds.iter().find(|k| k.0 == name) {
            Some((_, k, wr)) if k == "virtual" => (TableKind::Virtual, *wr),
            Some((_, k, wr)) if k == "shadow" => (TableKind::Shadow, *wr),
            Some((_, _, wr)) => (TableKind::Ordinary, *wr),
            None => (TableKind::Ordinary, false),
        };
        let mut columns = Vec::new();
        if kind != TableKind::Virtual {
            let mut st = conn.prepare(&format!("PRAGMA {}.table_xinfo({})", quote(db), quote(&name)))?;
            let rows = st.query_map([], |r| {
                Ok(Column {
                    name: r.get(1)?,
                    declared_type: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    pk: r.get(5)?,
                    generated: matches!(r.get::<_, i64>(6)?, 2 | 3),
                })
            })?;
            columns = rows.collect::<rusqlite::Result<_>>()?;
        }
        out.push(Table {
            name,
            kind,
            without_rowid,
            columns,
            foreign_keys: Vec::new(),
            sql,
        });
    }
    // Foreign keys, with the parent's key filled in where the child names none.
    for i in 0..out.len() {
        if out[i].kind != TableKind::Ordinary {
            continue;
        }
        let mut st = conn.prepare(&format!(
            "PRAGMA {}.foreign_key_list({})",
            quote(db),
            quote(&out[i].name)
        ))?;
        let rows: Vec<(i64, String, String, Option<String>)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut keys: Vec<(i64, ForeignKey)> = Vec::new();
        for (id, parent, from, to) in rows {
            let to = to.or_else(|| {
                let parent_table = out.iter().find(|t| t.name.eq_ignore_ascii_case(&parent))?;
                let n = keys.iter().find(|k| k.0 == id).map_or(0, |k| k.1.from.len());
                parent_table.primary_key().get(n).map(|c| c.name.clone())
            });
            let Some(to) = to else { continue };
            match keys.iter_mut().find(|k| k.0 == id) {
                Some((_, k)) => {
                    k.from.push(from);
                    k.to.push(to);
                }
                None => keys.push((
                    id,
                    ForeignKey {
                        parent,
                        from: vec![from],
                        to: vec![to],
                    },
                )),
            }
        }
        out[i].foreign_keys = keys.into_iter().map(|k| k.1).collect();
    }
    Ok(out)
}
