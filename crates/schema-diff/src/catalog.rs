//! Reading one database's schema: `sqlite_schema` for the objects and their
//! stored text, SQLite's PRAGMAs for columns, keys and indexes (the
//! authority), and sqlparser for what PRAGMAs do not show.

use std::collections::BTreeMap;

use rusqlite::Connection;
use serde::Serialize;

use crate::parse::{parse_table, TableDetails};

/// The kind of a schema object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Table,
    VirtualTable,
    View,
    Index,
    Trigger,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Table => "table",
            Kind::VirtualTable => "virtual table",
            Kind::View => "view",
            Kind::Index => "index",
            Kind::Trigger => "trigger",
        }
    }
}

/// One row of `sqlite_schema` that a user wrote (not an `sqlite_` internal,
/// not a virtual table's shadow table).
#[derive(Debug, Clone, Serialize)]
pub struct Object {
    pub kind: Kind,
    pub name: String,
    pub tbl_name: String,
    pub sql: Option<String>,
    /// Shadow tables that belong to this virtual table, compared as one unit.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shadow_tables: Vec<String>,
}

/// A column, as `PRAGMA table_xinfo` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Column {
    pub name: String,
    pub decl_type: String,
    pub not_null: bool,
    pub default: Option<String>,
    /// Position in the primary key (1-based), 0 if not part of it.
    pub pk: i64,
    /// Stored, hidden, or generated (`PRAGMA table_xinfo`'s `hidden`).
    pub hidden: Hidden,
}

/// A foreign key, as `PRAGMA foreign_key_list` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForeignKey {
    pub table: String,
    pub from: Vec<String>,
    pub to: Vec<Option<String>>,
    pub on_update: String,
    pub on_delete: String,
}

/// What `PRAGMA table_xinfo` says of a column beyond its definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Hidden {
    /// An ordinary column, whose values rows hold.
    No,
    /// A hidden column of a virtual table.
    Hidden,
    /// `GENERATED ALWAYS AS (…) VIRTUAL`: computed when read.
    Virtual,
    /// `GENERATED ALWAYS AS (…) STORED`: computed when written.
    Stored,
}

impl Hidden {
    fn from_xinfo(value: i64) -> Hidden {
        match value {
            1 => Hidden::Hidden,
            2 => Hidden::Virtual,
            3 => Hidden::Stored,
            _ => Hidden::No,
        }
    }

    /// A generated column: its values are computed, never copied.
    pub fn is_generated(self) -> bool {
        matches!(self, Hidden::Virtual | Hidden::Stored)
    }
}

/// An index of a table, as `PRAGMA index_list`/`index_xinfo` report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Index {
    pub name: String,
    pub unique: bool,
    /// `c` (CREATE INDEX), `u` (UNIQUE constraint) or `pk`.
    pub origin: String,
    pub partial: bool,
    /// Key columns with their collation; `None` for an expression.
    pub columns: Vec<(Option<String>, String)>,
}

/// A table's definition.
#[derive(Debug, Clone, Serialize)]
pub struct Table {
    pub name: String,
    pub columns: Vec<Column>,
    pub without_rowid: bool,
    pub strict: bool,
    pub foreign_keys: Vec<ForeignKey>,
    pub indexes: Vec<Index>,
    /// What sqlparser read from the stored text (`None` where it could not).
    #[serde(skip)]
    pub details: Option<TableDetails>,
    /// The stored CREATE text.
    #[serde(skip)]
    pub sql: Option<String>,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name.eq_ignore_ascii_case(name))
    }
}

/// File-level settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Settings {
    pub user_version: i64,
    pub application_id: i64,
    pub journal_mode: String,
    pub page_size: i64,
    pub encoding: String,
    pub auto_vacuum: i64,
}

/// One database's schema.
#[derive(Debug, Clone, Serialize)]
pub struct Catalog {
    pub objects: Vec<Object>,
    /// Tables by lower-cased name.
    pub tables: BTreeMap<String, Table>,
    pub settings: Settings,
    /// Objects SQLite could not describe (a missing module or collation), with why.
    pub unreadable: Vec<(String, String)>,
}

/// Lower-cases an identifier the way SQLite compares them (ASCII only).
pub fn key(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// `"name"` quoted for SQL.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Catalog {
    /// Reads the schema of the database `conn` has open as `main`.
    pub fn read(conn: &Connection, journal_mode: &str) -> rusqlite::Result<Catalog> {
        let one = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, rusqlite::types::Value>(0));
        let int = |sql: &str| -> rusqlite::Result<i64> {
            Ok(match one(sql)? {
                rusqlite::types::Value::Integer(i) => i,
                _ => 0,
            })
        };
        let settings = Settings {
            user_version: int("PRAGMA user_version")?,
            application_id: int("PRAGMA application_id")?,
            journal_mode: journal_mode.to_owned(),
            page_size: int("PRAGMA page_size")?,
            encoding: conn.query_row("PRAGMA encoding", [], |r| r.get(0))?,
            auto_vacuum: int("PRAGMA auto_vacuum")?,
        };

        // name -> (type, ncol, wr, strict) from table_list.
        let mut list: BTreeMap<String, (String, bool, bool)> = BTreeMap::new();
        {
            let mut stmt =
                conn.prepare("SELECT name, type, wr, strict FROM pragma_table_list WHERE schema = 'main'")?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })?;
            for row in rows {
                let (name, kind, wr, strict) = row?;
                list.insert(key(&name), (kind, wr != 0, strict != 0));
            }
        }

        let mut objects = Vec::new();
        let mut shadows = Vec::new();
        {
            let mut stmt = conn.prepare(
                "SELECT type, name, tbl_name, sql FROM sqlite_schema \
                 WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                ))
            })?;
            for row in rows {
                let (kind, name, tbl_name, sql) = row?;
                let listed = list.get(&key(&name)).map(|(k, _, _)| k.as_str());
                let kind = match (kind.as_str(), listed) {
                    ("table", Some("shadow")) => {
                        shadows.push(name);
                        continue;
                    }
                    ("table", Some("virtual")) => Kind::VirtualTable,
                    ("table", _) if sql.as_deref().is_some_and(is_virtual) => Kind::VirtualTable,
                    ("table", _) => Kind::Table,
                    ("view", _) => Kind::View,
                    ("index", _) => Kind::Index,
                    ("trigger", _) => Kind::Trigger,
                    _ => continue,
                };
                objects.push(Object {
                    kind,
                    name,
                    tbl_name,
                    sql,
                    shadow_tables: Vec::new(),
                });
            }
        }
        for shadow in shadows {
            let owner = objects
                .iter_mut()
                .filter(|o| o.kind == Kind::VirtualTable)
                .filter(|o| key(&shadow).starts_with(&format!("{}_", key(&o.name))))
                .max_by_key(|o| o.name.len());
            if let Some(owner) = owner {
                owner.shadow_tables.push(shadow);
            }
        }

        let mut tables = BTreeMap::new();
        let mut unreadable = Vec::new();
        for object in objects.iter().filter(|o| o.kind == Kind::Table) {
            let (without_rowid, strict) = list
                .get(&key(&object.name))
                .map_or((false, false), |&(_, wr, strict)| (wr, strict));
            match read_table(conn, &object.name, without_rowid, strict, object.sql.as_deref()) {
                Ok(table) => {
                    tables.insert(key(&object.name), table);
                }
                Err(e) => unreadable.push((object.name.clone(), e.to_string())),
            }
        }
        Ok(Catalog {
            objects,
            tables,
            settings,
            unreadable,
        })
    }

    /// Objects by (kind family, lower-cased name). Tables and virtual tables
    /// share a family: a table that became virtual is a change of one object.
    pub fn object(&self, kind: Kind, name: &str) -> Option<&Object> {
        self.objects
            .iter()
            .find(|o| family(o.kind) == family(kind) && o.name.eq_ignore_ascii_case(name))
    }

    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.get(&key(name))
    }
}

/// Tables and virtual tables are one family of names.
pub fn family(kind: Kind) -> Kind {
    match kind {
        Kind::VirtualTable => Kind::Table,
        k => k,
    }
}

fn is_virtual(sql: &str) -> bool {
    let words: Vec<String> = sql.split_whitespace().take(2).map(|w| w.to_ascii_uppercase()).collect();
    words == ["CREATE", "VIRTUAL"]
}

fn read_table(
    conn: &Connection,
    name: &str,
    without_rowid: bool,
    strict: bool,
    sql: Option<&str>,
) -> rusqlite::Result<Table> {
    let mut columns = Vec::new();
    let mut stmt =
        conn.prepare("SELECT name, type, \"notnull\", dflt_value, pk, hidden FROM pragma_table_xinfo(?1)")?;
    let rows = stmt.query_map([name], |r| {
        Ok(Column {
            name: r.get(0)?,
            decl_type: r.get(1)?,
            not_null: r.get::<_, i64>(2)? != 0,
            default: r.get(3)?,
            pk: r.get(4)?,
            hidden: Hidden::from_xinfo(r.get(5)?),
        })
    })?;
    for row in rows {
        columns.push(row?);
    }

    let mut fks: BTreeMap<i64, ForeignKey> = BTreeMap::new();
    let mut stmt = conn.prepare(
        "SELECT id, \"table\", \"from\", \"to\", on_update, on_delete FROM pragma_foreign_key_list(?1) ORDER BY id, seq",
    )?;
    let rows = stmt.query_map([name], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Option<String>>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, String>(5)?,
        ))
    })?;
    for row in rows {
        let (id, table, from, to, on_update, on_delete) = row?;
        let fk = fks.entry(id).or_insert_with(|| ForeignKey {
            table,
            from: Vec::new(),
            to: Vec::new(),
            on_update,
            on_delete,
        });
        fk.from.push(from);
        fk.to.push(to);
    }

    let mut indexes = Vec::new();
    let mut stmt = conn.prepare("SELECT name, \"unique\", origin, partial FROM pragma_index_list(?1)")?;
    let listed: Vec<(String, bool, String, bool)> = stmt
        .query_map([name], |r| {
            Ok((r.get(0)?, r.get::<_, i64>(1)? != 0, r.get(2)?, r.get::<_, i64>(3)? != 0))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut cols = conn.prepare("SELECT name, coll FROM pragma_index_xinfo(?1) WHERE key = 1 ORDER BY seqno")?;
    for (index, unique, origin, partial) in listed {
        let columns = cols
            .query_map([&index], |r| {
                Ok((r.get::<_, Option<String>>(0)?, r.get::<_, String>(1)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        indexes.push(Index {
            name: index,
            unique,
            origin,
            partial,
            columns,
        });
    }
    indexes.sort_by(|a, b| a.name.cmp(&b.name));

    Ok(Table {
        name: name.to_owned(),
        columns,
        without_rowid,
        strict,
        foreign_keys: fks.into_values().collect(),
        indexes,
        details: sql.and_then(parse_table),
        sql: sql.map(str::to_owned),
    })
}
