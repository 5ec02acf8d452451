//! Comparing two catalogs: which objects were added, removed or changed, and
//! for tables, which columns.

use serde::Serialize;

use crate::catalog::{family, key, Catalog, Kind, Object, Table};
use crate::parse::{normalize, parses};
use crate::Hints;

/// What happened to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Only in DEV.
    Added,
    /// Only in TARGET.
    Removed,
    /// In both, with different definitions.
    Modified,
    /// In both; the stored text differs only in white space, case, comments or quoting.
    TextOnly,
}

/// What happened to one column of a table in both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColumnChange {
    pub column: String,
    pub change: ChangeKind,
    /// For a renamed column: its name in TARGET.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renamed_from: Option<String>,
    pub details: Vec<String>,
}

/// One object that differs.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub object: Kind,
    pub name: String,
    pub change: ChangeKind,
    /// What changed, in words.
    pub details: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<ColumnChange>,
    /// `ast` when sqlparser read both texts, `text` when it could not (the
    /// texts were then compared normalized: white space, case, quoting).
    pub compared_by: &'static str,
    pub dev_sql: Option<String>,
    pub target_sql: Option<String>,
}

/// A file-level setting that differs.
#[derive(Debug, Clone, Serialize)]
pub struct SettingChange {
    pub setting: &'static str,
    pub dev: String,
    pub target: String,
    /// Whether it counts against `identical` (only `user_version` and `application_id`).
    pub counts: bool,
}

/// The differences between DEV's schema and TARGET's.
#[derive(Debug, Clone, Serialize)]
pub struct SchemaDiff {
    pub identical: bool,
    pub changes: Vec<Change>,
    pub settings: Vec<SettingChange>,
    /// Possible hints, with the hint that would say so.
    pub possible_renames: Vec<String>,
}

fn same_sql(a: &Option<String>, b: &Option<String>) -> bool {
    a == b
}

fn compared_by(a: &Option<String>, b: &Option<String>) -> &'static str {
    let ok = |s: &Option<String>| s.as_deref().is_none_or(parses);
    if ok(a) && ok(b) {
        "ast"
    } else {
        "text"
    }
}

/// Compares DEV's catalog with TARGET's.
pub fn diff(dev: &Catalog, target: &Catalog, hints: &Hints) -> SchemaDiff {
    let mut changes = Vec::new();
    let mut possible_renames = Vec::new();
    // Objects in DEV, in DEV's order; then those only in TARGET.
    for object in &dev.objects {
        let target_name = hints.table_in_target(&object.name);
        let other = target.object(object.kind, &target_name);
        match other {
            None => changes.push(Change {
                object: object.kind,
                name: object.name.clone(),
                change: ChangeKind::Added,
                details: vec![format!("new {}", object.kind.as_str())],
                columns: Vec::new(),
                compared_by: compared_by(&object.sql, &None),
                dev_sql: object.sql.clone(),
                target_sql: None,
            }),
            Some(old) => {
                if same_sql(&object.sql, &old.sql) && object.kind == old.kind && object.name == old.name {
                    continue;
                }
                changes.push(compare(object, old, dev, target, hints, &mut possible_renames));
            }
        }
    }
    for old in &target.objects {
        let dev_name = hints.table_in_dev(&old.name);
        if dev.object(old.kind, &dev_name).is_none() {
            changes.push(Change {
                object: old.kind,
                name: old.name.clone(),
                change: ChangeKind::Removed,
                details: vec![format!("{} only in TARGET: DEV has none", old.kind.as_str())],
                columns: Vec::new(),
                compared_by: compared_by(&None, &old.sql),
                dev_sql: None,
                target_sql: old.sql.clone(),
            });
        }
    }

    let (d, t) = (&dev.settings, &target.settings);
    let mut settings = Vec::new();
    let mut setting = |name: &'static str, a: String, b: String, counts: bool| {
        if a != b {
            settings.push(SettingChange {
                setting: name,
                dev: a,
                target: b,
                counts,
            });
        }
    };
    setting(
        "user_version",
        d.user_version.to_string(),
        t.user_version.to_string(),
        true,
    );
    setting(
        "application_id",
        d.application_id.to_string(),
        t.application_id.to_string(),
        true,
    );
    setting("journal_mode", d.journal_mode.clone(), t.journal_mode.clone(), false);
    setting("page_size", d.page_size.to_string(), t.page_size.to_string(), false);
    setting("encoding", d.encoding.clone(), t.encoding.clone(), false);
    setting(
        "auto_vacuum",
        d.auto_vacuum.to_string(),
        t.auto_vacuum.to_string(),
        false,
    );

    let identical = changes.is_empty() && !settings.iter().any(|s| s.counts);
    SchemaDiff {
        identical,
        changes,
        settings,
        possible_renames,
    }
}

fn compare(
    dev_obj: &Object,
    old: &Object,
    dev: &Catalog,
    target: &Catalog,
    hints: &Hints,
    possible_renames: &mut Vec<String>,
) -> Change {
    let by = compared_by(&dev_obj.sql, &old.sql);
    let normalized_equal = dev_obj.kind == old.kind
        && key(&dev_obj.name) == key(&old.name)
        && dev_obj.sql.as_deref().map(normalize) == old.sql.as_deref().map(normalize);
    let mut details = Vec::new();
    let mut columns = Vec::new();
    if dev_obj.kind != old.kind {
        details.push(format!("was a {}, is a {}", old.kind.as_str(), dev_obj.kind.as_str()));
    }
    if !dev_obj.name.eq_ignore_ascii_case(&old.name) {
        details.push(format!("renamed from {}", old.name));
    }
    if family(dev_obj.kind) == Kind::Table {
        if let (Some(d), Some(t)) = (dev.table(&dev_obj.name), target.table(&old.name)) {
            columns = column_changes(d, t, hints, possible_renames);
            // A CHECK on a column that is added or dropped goes with the column.
            let goes_with_a_column = |detail: &String| {
                columns.iter().any(|c| {
                    let prefix = format!("{}: ", key(&c.column));
                    (c.change == ChangeKind::Added && detail.starts_with(&format!("new CHECK {prefix}")))
                        || (c.change == ChangeKind::Removed
                            && detail.starts_with(&format!("CHECK {prefix}"))
                            && detail.ends_with(" dropped"))
                })
            };
            details.extend(table_changes(d, t).into_iter().filter(|d| !goes_with_a_column(d)));
        }
    }
    let change = if normalized_equal && details.is_empty() && columns.is_empty() {
        details.push("only white space, case, comments or quoting differ".to_owned());
        ChangeKind::TextOnly
    } else {
        if details.is_empty() && columns.is_empty() {
            details.push("definition changed".to_owned());
        }
        ChangeKind::Modified
    };
    Change {
        object: dev_obj.kind,
        name: dev_obj.name.clone(),
        change,
        details,
        columns,
        compared_by: by,
        dev_sql: dev_obj.sql.clone(),
        target_sql: old.sql.clone(),
    }
}

/// Column-level differences of a table in both (matched by name, case-insensitively, and the hints).
fn column_changes(dev: &Table, target: &Table, hints: &Hints, possible_renames: &mut Vec<String>) -> Vec<ColumnChange> {
    let mut out = Vec::new();
    for column in &dev.columns {
        let old_name = hints.column_in_target(&dev.name, &column.name);
        match target.column(&old_name) {
            None => out.push(ColumnChange {
                column: column.name.clone(),
                change: ChangeKind::Added,
                renamed_from: None,
                details: vec![describe(column)],
            }),
            Some(old) => {
                let mut details = Vec::new();
                if !old.name.eq_ignore_ascii_case(&column.name) {
                    details.push(format!("renamed from {}", old.name));
                }
                if old.decl_type != column.decl_type {
                    details.push(format!("type {:?} -> {:?}", old.decl_type, column.decl_type));
                }
                if old.not_null != column.not_null {
                    details.push(
                        if column.not_null {
                            "now NOT NULL"
                        } else {
                            "NOT NULL dropped"
                        }
                        .to_owned(),
                    );
                }
                if old.default != column.default {
                    details.push(format!("default {:?} -> {:?}", old.default, column.default));
                }
                if old.pk != column.pk {
                    details.push(format!("primary key position {} -> {}", old.pk, column.pk));
                }
                if old.hidden != column.hidden {
                    details.push("generated or hidden status changed".to_owned());
                }
                let coll = |t: &Table, c: &str| {
                    t.details
                        .as_ref()
                        .and_then(|d| d.collations.get(&key(c)).cloned())
                        .unwrap_or_else(|| "binary".to_owned())
                };
                if coll(dev, &column.name) != coll(target, &old.name) {
                    details.push(format!(
                        "collation {} -> {}",
                        coll(target, &old.name),
                        coll(dev, &column.name)
                    ));
                }
                if !details.is_empty() {
                    let renamed = !old.name.eq_ignore_ascii_case(&column.name);
                    out.push(ColumnChange {
                        column: column.name.clone(),
                        change: ChangeKind::Modified,
                        renamed_from: renamed.then(|| old.name.clone()),
                        details,
                    });
                }
            }
        }
    }
    for old in &target.columns {
        let new_name = hints.column_in_dev(&target.name, &old.name);
        if dev.column(&new_name).is_none() {
            out.push(ColumnChange {
                column: old.name.clone(),
                change: ChangeKind::Removed,
                renamed_from: None,
                details: vec![format!("only in TARGET: {}", describe(old))],
            });
        }
    }
    // A dropped and an added column of compatible type: maybe a rename.
    let added: Vec<&ColumnChange> = out.iter().filter(|c| c.change == ChangeKind::Added).collect();
    for removed in out.iter().filter(|c| c.change == ChangeKind::Removed) {
        for add in &added {
            let (Some(a), Some(r)) = (dev.column(&add.column), target.column(&removed.column)) else {
                continue;
            };
            if affinity(&a.decl_type) == affinity(&r.decl_type) {
                possible_renames.push(format!(
                    "{}.{} may be {} renamed: pass --rename '{}.{}={}' to keep its values",
                    dev.name,
                    add.column,
                    removed.column,
                    crate::catalog::quote(&dev.name),
                    crate::catalog::quote(&removed.column),
                    crate::catalog::quote(&add.column)
                ));
            }
        }
    }
    out
}

fn describe(c: &crate::catalog::Column) -> String {
    let mut s = if c.decl_type.is_empty() {
        "no type".to_owned()
    } else {
        c.decl_type.clone()
    };
    if c.pk > 0 {
        s.push_str(", primary key");
    }
    if c.not_null {
        s.push_str(", NOT NULL");
    }
    if let Some(d) = &c.default {
        s.push_str(&format!(", default {d}"));
    }
    if c.hidden >= 2 {
        s.push_str(", generated");
    }
    s
}

/// Table-level differences PRAGMAs and the parser show.
fn table_changes(dev: &Table, target: &Table) -> Vec<String> {
    let mut out = Vec::new();
    if dev.without_rowid != target.without_rowid {
        out.push(format!(
            "WITHOUT ROWID {} -> {}",
            target.without_rowid, dev.without_rowid
        ));
    }
    if dev.strict != target.strict {
        out.push(format!("STRICT {} -> {}", target.strict, dev.strict));
    }
    for fk in &dev.foreign_keys {
        if !target.foreign_keys.iter().any(|t| same_fk(t, fk)) {
            out.push(format!("new foreign key ({}) -> {}", fk.from.join(", "), fk.table));
        }
    }
    for fk in &target.foreign_keys {
        if !dev.foreign_keys.iter().any(|d| same_fk(d, fk)) {
            out.push(format!("foreign key ({}) -> {} dropped", fk.from.join(", "), fk.table));
        }
    }
    let uniques = |t: &Table| -> Vec<Vec<String>> {
        t.indexes
            .iter()
            .filter(|i| i.unique && i.origin != "c")
            .map(|i| {
                i.columns
                    .iter()
                    .map(|(c, coll)| {
                        format!(
                            "{}/{}",
                            c.as_deref().map(key).unwrap_or_default(),
                            coll.to_ascii_lowercase()
                        )
                    })
                    .collect()
            })
            .collect()
    };
    let (du, tu) = (uniques(dev), uniques(target));
    for u in &du {
        if !tu.contains(u) {
            out.push(format!("new UNIQUE or PRIMARY KEY on ({})", u.join(", ")));
        }
    }
    for u in &tu {
        if !du.contains(u) {
            out.push(format!("UNIQUE or PRIMARY KEY on ({}) dropped", u.join(", ")));
        }
    }
    if let (Some(d), Some(t)) = (&dev.details, &target.details) {
        for check in d.checks.iter().filter(|c| !t.checks.contains(c)) {
            out.push(format!("new CHECK {check}"));
        }
        for check in t.checks.iter().filter(|c| !d.checks.contains(c)) {
            out.push(format!("CHECK {check} dropped"));
        }
        if d.autoincrement != t.autoincrement {
            out.push(format!("AUTOINCREMENT {} -> {}", t.autoincrement, d.autoincrement));
        }
        if d.generated != t.generated {
            out.push("generated column expressions changed".to_owned());
        }
    }
    out
}

pub fn same_fk(a: &crate::catalog::ForeignKey, b: &crate::catalog::ForeignKey) -> bool {
    let lower = |v: &[String]| v.iter().map(|s| key(s)).collect::<Vec<_>>();
    let lower_opt = |v: &[Option<String>]| v.iter().map(|s| s.as_deref().map(key)).collect::<Vec<_>>();
    key(&a.table) == key(&b.table)
        && lower(&a.from) == lower(&b.from)
        && lower_opt(&a.to) == lower_opt(&b.to)
        && a.on_update == b.on_update
        && a.on_delete == b.on_delete
}

/// SQLite's column affinity from a declared type (the rules of datatype3.html 3.1).
pub fn affinity(decl: &str) -> &'static str {
    let t = decl.to_ascii_uppercase();
    if t.contains("INT") {
        "INTEGER"
    } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
        "TEXT"
    } else if t.contains("BLOB") || t.is_empty() {
        "BLOB"
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        "REAL"
    } else {
        "NUMERIC"
    }
}
