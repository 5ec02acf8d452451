//! The rules file: `[mask]` (`"TABLE.COLUMN" = RULE`) and `[subset]`
//! (`TABLE = "WHERE …"` or `{ percent = N }`), read with each entry's line,
//! and checked against the schema they are for (the result's: DEV's).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use toml::Spanned;

use crate::schema::{self, TableKind};
use crate::Error;

/// How one column is masked.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Rule {
    /// A realistic fake email, `first.last.TOKEN@example.com`.
    Email,
    /// A realistic fake full name, with a token.
    Name,
    FirstName,
    LastName,
    /// A fake phone number whose digits carry the token.
    Phone,
    /// `[redacted TOKEN]`.
    Redact,
    /// The keyed hash, in hex.
    Hash,
    /// NULL.
    Null,
    /// The last N characters kept; every other letter or digit replaced by
    /// a keyed one of the same class.
    KeepLast(usize),
    /// The first N characters kept, the rest as for `KeepLast`.
    KeepFirst(usize),
    /// Any SQL expression over the row's columns.
    Sql(String),
}

impl Rule {
    /// The rule as the rules file writes it.
    pub fn describe(&self) -> String {
        match self {
            Rule::Email => "email".into(),
            Rule::Name => "name".into(),
            Rule::FirstName => "first_name".into(),
            Rule::LastName => "last_name".into(),
            Rule::Phone => "phone".into(),
            Rule::Redact => "redact".into(),
            Rule::Hash => "hash".into(),
            Rule::Null => "null".into(),
            Rule::KeepLast(n) => format!("{{ keep_last = {n} }}"),
            Rule::KeepFirst(n) => format!("{{ keep_first = {n} }}"),
            Rule::Sql(s) => format!("{{ sql = {s:?} }}"),
        }
    }

    /// The words a rule is named by.
    pub const NAMES: &'static [&'static str] = &[
        "email",
        "name",
        "first_name",
        "last_name",
        "phone",
        "redact",
        "hash",
        "null",
        "{ keep_last = N }",
        "{ keep_first = N }",
        "{ sql = \"…\" }",
    ];
}

/// Which rows of a table a subset keeps before foreign keys are followed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Filter {
    /// The rows a WHERE over the table selects.
    Where(String),
    /// A stable sample: the rows whose primary key hashes below N percent.
    Percent(f64),
}

impl Filter {
    pub fn describe(&self) -> String {
        match self {
            Filter::Where(w) => format!("WHERE {w}"),
            Filter::Percent(p) => format!("{p}% sample by primary key"),
        }
    }
}

/// One `[mask]` entry.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Mask {
    pub table: String,
    pub column: String,
    pub rule: Rule,
    /// Its line in the rules file.
    pub line: usize,
}

/// One `[subset]` entry.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Subset {
    pub table: String,
    pub filter: Filter,
    pub line: usize,
}

/// A rules file, read.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Rules {
    pub path: PathBuf,
    pub masks: Vec<Mask>,
    pub subsets: Vec<Subset>,
    /// A hash of the rules' meaning (not their layout): a copy made under
    /// other rules is recognised by it.
    pub fingerprint: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesToml {
    #[serde(default)]
    mask: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    #[serde(default)]
    subset: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

impl Rules {
    /// Reads the rules file at `path`: any text is either rules or an error
    /// naming the file and the line.
    pub fn read(path: &Path) -> Result<Rules, Error> {
        let text = match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => return Err(Error::rules(path, 0, "is a folder, not a rules file")),
            Ok(m) if !m.is_file() => return Err(Error::rules(path, 0, "is not a regular file")),
            Ok(_) => std::fs::read_to_string(path).map_err(|e| Error::rules(path, 0, &format!("cannot read: {e}")))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::rules(path, 0, "no such file"));
            }
            Err(e) => return Err(Error::rules(path, 0, &format!("cannot read: {e}"))),
        };
        Rules::parse(path, &text)
    }

    /// The rules `text` says, as if read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Rules, Error> {
        let file: RulesToml = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(0);
            Error::rules(path, line, e.message().trim())
        })?;
        let mut rules = Rules {
            path: path.to_owned(),
            masks: Vec::new(),
            subsets: Vec::new(),
            fingerprint: String::new(),
        };
        for (key, value) in file.mask {
            let line = line_of(text, key.span().start);
            let bad = |why: String| Error::rules(path, line, &format!("[mask] {:?}: {why}", key.get_ref()));
            let Some((table, column)) = key.get_ref().rsplit_once('.') else {
                return Err(bad("name a column as \"TABLE.COLUMN\"".into()));
            };
            if table.is_empty() || column.is_empty() {
                return Err(bad("name a column as \"TABLE.COLUMN\"".into()));
            }
            let rule = parse_rule(value.get_ref()).map_err(bad)?;
            if rules
                .masks
                .iter()
                .any(|m| m.table.eq_ignore_ascii_case(table) && m.column.eq_ignore_ascii_case(column))
            {
                return Err(bad("this column has a rule already".into()));
            }
            rules.masks.push(Mask {
                table: table.to_owned(),
                column: column.to_owned(),
                rule,
                line,
            });
        }
        for (key, value) in file.subset {
            let line = line_of(text, key.span().start);
            let bad = |why: String| Error::rules(path, line, &format!("[subset] {:?}: {why}", key.get_ref()));
            let filter = match value.get_ref() {
                toml::Value::String(w) if !w.trim().is_empty() => Filter::Where(w.clone()),
                toml::Value::Table(t) if t.len() == 1 && t.contains_key("percent") => {
                    let p = match t.get("percent") {
                        Some(toml::Value::Integer(n)) => *n as f64,
                        Some(toml::Value::Float(f)) => *f,
                        _ => f64::NAN,
                    };
                    if !(p > 0.0 && p <= 100.0) {
                        return Err(bad("percent must be a number above 0 and at most 100".into()));
                    }
                    Filter::Percent(p)
                }
                _ => return Err(bad("give a WHERE condition as a string, or { percent = N }".into())),
            };
            if rules
                .subsets
                .iter()
                .any(|s| s.table.eq_ignore_ascii_case(key.get_ref()))
            {
                return Err(bad("this table has a filter already".into()));
            }
            rules.subsets.push(Subset {
                table: key.get_ref().clone(),
                filter,
                line,
            });
        }
        rules.masks.sort_by_key(|m| m.line);
        rules.subsets.sort_by_key(|s| s.line);
        let mut h = blake3::Hasher::new();
        for m in &rules.masks {
            h.update(
                format!(
                    "mask\0{}\0{}\0{:?}\0",
                    m.table.to_lowercase(),
                    m.column.to_lowercase(),
                    m.rule
                )
                .as_bytes(),
            );
        }
        for s in &rules.subsets {
            h.update(format!("subset\0{}\0{:?}\0", s.table.to_lowercase(), s.filter).as_bytes());
        }
        rules.fingerprint = h.finalize().to_hex()[..16].to_owned();
        Ok(rules)
    }

    /// No rule at all.
    pub fn is_empty(&self) -> bool {
        self.masks.is_empty() && self.subsets.is_empty()
    }

    /// The rule for `table.column`, if any (names compared as SQLite does).
    pub fn mask_of(&self, table: &str, column: &str) -> Option<&Mask> {
        self.masks
            .iter()
            .find(|m| m.table.eq_ignore_ascii_case(table) && m.column.eq_ignore_ascii_case(column))
    }

    /// The filter of `table`, if any.
    pub fn subset_of(&self, table: &str) -> Option<&Subset> {
        self.subsets.iter().find(|s| s.table.eq_ignore_ascii_case(table))
    }

    /// Checks every rule against the schema of `conn`'s `main` database (the
    /// result's schema): each table and column exists and is an ordinary
    /// one, and each `sql` rule and filter is valid SQL for its table. An
    /// error names the rules file's line. (A filter on a table whose rows
    /// are DEV's is not an error: see [`Rules::unused_filters`].)
    pub fn check(&self, conn: &Connection) -> Result<(), Error> {
        let tables = schema::tables(conn, "main").map_err(|e| Error::sqlite(&self.path, "read the schema", e))?;
        // The ordinary table `name`, or why a rule cannot be on it.
        let ordinary = |name: &str, used: &str| -> Result<&schema::Table, String> {
            let Some(t) = tables.iter().find(|t| t.name.eq_ignore_ascii_case(name)) else {
                let names: Vec<&str> = tables
                    .iter()
                    .filter(|t| t.kind == TableKind::Ordinary)
                    .map(|t| t.name.as_str())
                    .collect();
                return Err(format!(
                    "no table {name} in the result's schema (tables: {})",
                    names.join(", ")
                ));
            };
            if t.kind != TableKind::Ordinary {
                return Err(format!(
                    "{} is a {} table: only ordinary tables {used}",
                    t.name,
                    t.kind.as_str()
                ));
            }
            Ok(t)
        };
        for m in &self.masks {
            let bad = |why: String| {
                Error::rules(
                    &self.path,
                    m.line,
                    &format!("[mask] \"{}.{}\": {why}", m.table, m.column),
                )
            };
            let t = ordinary(&m.table, "have their columns masked").map_err(bad)?;
            let Some(c) = t.columns.iter().find(|c| c.name.eq_ignore_ascii_case(&m.column)) else {
                let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
                return Err(bad(format!(
                    "no column {} in {} (columns: {})",
                    m.column,
                    t.name,
                    names.join(", ")
                )));
            };
            if c.generated {
                return Err(bad(format!(
                    "{}.{} is a generated column: mask the columns it is computed from",
                    t.name, c.name
                )));
            }
            if let Rule::Sql(expr) = &m.rule {
                conn.prepare(&format!("SELECT ({expr}) FROM main.{}", schema::quote(&t.name)))
                    .map_err(|e| {
                        bad(format!(
                            "not a valid SQL expression over {}: {}",
                            t.name,
                            crate::message(&e)
                        ))
                    })?;
            }
        }
        // A reference and what it references are masked alike, or the
        // reference breaks (a masked value only equals the same rule's).
        for t in tables.iter().filter(|t| t.kind == TableKind::Ordinary) {
            for fk in &t.foreign_keys {
                for (from, to) in fk.from.iter().zip(&fk.to) {
                    let (child, parent) = (self.mask_of(&t.name, from), self.mask_of(&fk.parent, to));
                    let rule = |m: Option<&Mask>| m.map(|m| m.rule.clone());
                    if matches!(rule(child), Some(Rule::Sql(_))) || matches!(rule(parent), Some(Rule::Sql(_))) {
                        continue;
                    }
                    if rule(child) != rule(parent) {
                        let line = child.or(parent).map_or(0, |m| m.line);
                        let said = |m: Option<&Mask>| m.map_or("no rule".to_owned(), |m| m.rule.describe());
                        return Err(Error::rules(
                            &self.path,
                            line,
                            &format!(
                                "{}.{from} references {}.{to}, which must be masked alike or the reference breaks: {} there, {} here; give both the same rule",
                                t.name,
                                fk.parent,
                                said(parent),
                                said(child)
                            ),
                        ));
                    }
                }
            }
        }
        for s in &self.subsets {
            let bad = |why: String| Error::rules(&self.path, s.line, &format!("[subset] {}: {why}", s.table));
            let t = ordinary(&s.table, "are subset").map_err(bad)?;
            if let Filter::Where(w) = &s.filter {
                conn.prepare(&format!("SELECT 1 FROM main.{} WHERE ({w})", schema::quote(&t.name)))
                    .map_err(|e| bad(format!("not a valid WHERE over {}: {}", t.name, crate::message(&e))))?;
            }
        }
        Ok(())
    }

    /// Checks the filters and `sql` rules against the data they run on
    /// (`conn`'s `main`: PROD, or its copy), where its tables are named as
    /// these rules name them (see the caller's renaming). The rows are
    /// masked and subset as they are copied, before a migration: an
    /// expression over a column only DEV has cannot run there. Tables the
    /// data does not have are DEV's own, and skipped.
    pub fn check_on_data(&self, conn: &Connection, shown: &Rules) -> Result<(), Error> {
        let tables = schema::table_names(conn).map_err(|e| Error::sqlite(&self.path, "read the schema", e))?;
        let has = |t: &str| tables.iter().any(|n| n.eq_ignore_ascii_case(t));
        // `sql` must prepare on the data; if not, the rule's line and `what` is wrong.
        let prepares = |sql: String, line, what: String| {
            conn.prepare(&sql)
                .map(drop)
                .map_err(|e| Error::rules(&self.path, line, &format!("{what}: {}", crate::message(&e))))
        };
        for (m, said) in self.masks.iter().zip(&shown.masks) {
            let Rule::Sql(expr) = &m.rule else { continue };
            if !has(&m.table) {
                continue;
            }
            prepares(
                format!("SELECT ({expr}) FROM main.{}", schema::quote(&m.table)),
                said.line,
                format!(
                    "[mask] \"{}.{}\": the expression runs on PROD's rows as they are copied, before the migration, and is not valid there",
                    said.table, said.column
                ),
            )?;
        }
        for (s, said) in self.subsets.iter().zip(&shown.subsets) {
            let Filter::Where(w) = &s.filter else { continue };
            if !has(&s.table) {
                continue;
            }
            prepares(
                format!("SELECT 1 FROM main.{} WHERE ({w})", schema::quote(&s.table)),
                said.line,
                format!(
                    "[subset] {}: the filter runs on PROD's rows as they are copied, before the migration, and is not valid there (name PROD's columns)",
                    said.table
                ),
            )?;
        }
        Ok(())
    }
}

impl Rules {
    /// The filters on tables whose rows are DEV's (`exempt`: only in DEV,
    /// `--dev-data`, a migration history): never subset, so not used; one
    /// warning each, naming the line.
    pub fn unused_filters(&self, exempt: &[String]) -> Vec<String> {
        self.subsets
            .iter()
            .filter(|s| exempt.iter().any(|e| e.eq_ignore_ascii_case(&s.table)))
            .map(|s| {
                format!(
                    "{}: line {}: [subset] {}: its rows are DEV's (a table only in DEV, --dev-data, or a migration history): never subset, the filter is not used",
                    self.path.display(),
                    s.line,
                    s.table
                )
            })
            .collect()
    }
}

fn parse_rule(value: &toml::Value) -> Result<Rule, String> {
    let unknown = |what: &str| format!("unknown rule {what}: use one of {}", Rule::NAMES.join(", "));
    match value {
        toml::Value::String(s) => match s.as_str() {
            "email" => Ok(Rule::Email),
            "name" => Ok(Rule::Name),
            "first_name" => Ok(Rule::FirstName),
            "last_name" => Ok(Rule::LastName),
            "phone" => Ok(Rule::Phone),
            "redact" => Ok(Rule::Redact),
            "hash" => Ok(Rule::Hash),
            "null" => Ok(Rule::Null),
            other => Err(unknown(&format!("{other:?}"))),
        },
        toml::Value::Table(t) if t.len() == 1 => {
            let (k, v) = t.iter().next().ok_or_else(|| unknown("{}"))?;
            let count = || match v {
                toml::Value::Integer(n) if *n >= 0 => Ok(*n as usize),
                _ => Err(format!("{k} takes a whole number of characters")),
            };
            match k.as_str() {
                "keep_last" => Ok(Rule::KeepLast(count()?)),
                "keep_first" => Ok(Rule::KeepFirst(count()?)),
                "sql" => match v {
                    toml::Value::String(s) if !s.trim().is_empty() => Ok(Rule::Sql(s.clone())),
                    _ => Err("sql takes an SQL expression as a string".into()),
                },
                other => Err(unknown(&format!("{{ {other} = … }}"))),
            }
        }
        other => Err(unknown(&other.to_string())),
    }
}
