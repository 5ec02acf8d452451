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

impl ChangeKind {
    /// The word for it, as `--json` writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Modified => "modified",
            ChangeKind::TextOnly => "text_only",
        }
    }
}

/// One thing that differs, as data: what the plan's decisions read. Text is
/// made only to show it ([`Display`](std::fmt::Display)), and that text is
/// also how it is serialized (`details` in `--json` are strings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detail {
    /// An object only in DEV (its kind).
    New(Kind),
    /// An object only in TARGET (its kind).
    OnlyInTarget(Kind),
    /// The same name, another kind of object.
    KindChanged {
        from: Kind,
        to: Kind,
    },
    /// Renamed (through a hint): its name in TARGET.
    RenamedFrom(String),
    /// The stored texts differ only in white space, case, comments or quoting.
    Formatting,
    /// Nothing PRAGMAs or the parser show differs, yet the texts do.
    DefinitionChanged,
    WithoutRowid {
        from: bool,
        to: bool,
    },
    Strict {
        from: bool,
        to: bool,
    },
    ForeignKeyAdded {
        from: Vec<String>,
        table: String,
    },
    ForeignKeyDropped {
        from: Vec<String>,
        table: String,
    },
    /// A UNIQUE or PRIMARY KEY constraint, as `column/collation` pairs.
    UniqueAdded(Vec<String>),
    UniqueDropped(Vec<String>),
    CheckAdded(crate::parse::Check),
    CheckDropped(crate::parse::Check),
    Autoincrement {
        from: bool,
        to: bool,
    },
    GeneratedChanged,
    /// A column only in DEV, described.
    ColumnAdded(String),
    /// A column only in TARGET, described.
    ColumnOnlyInTarget(String),
    Type {
        from: String,
        to: String,
    },
    NotNullAdded,
    NotNullDropped,
    Default {
        from: Option<String>,
        to: Option<String>,
    },
    PrimaryKeyPosition {
        from: i64,
        to: i64,
    },
    HiddenChanged,
    Collation {
        from: String,
        to: String,
    },
}

impl Detail {
    /// A change SQLite documents as safe to make in the stored text alone
    /// (sqlite.org/lang_altertable.html): dropping a CHECK, a foreign key or
    /// a NOT NULL, and changing a default.
    pub fn loosens(&self) -> bool {
        matches!(
            self,
            Detail::CheckDropped(_)
                | Detail::ForeignKeyDropped { .. }
                | Detail::NotNullDropped
                | Detail::Default { .. }
        )
    }
}

impl std::fmt::Display for Detail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".to_owned());
        let or_no_type = |t: &str| {
            if t.is_empty() {
                "no type".to_owned()
            } else {
                t.to_owned()
            }
        };
        match self {
            Detail::New(kind) => write!(f, "new {}", kind.as_str()),
            Detail::OnlyInTarget(kind) => write!(f, "{} only in TARGET: DEV has none", kind.as_str()),
            Detail::KindChanged { from, to } => write!(f, "was a {}, is a {}", from.as_str(), to.as_str()),
            Detail::RenamedFrom(name) => write!(f, "renamed from {name}"),
            Detail::Formatting => f.write_str("only white space, case, comments or quoting differ"),
            Detail::DefinitionChanged => f.write_str("definition changed"),
            Detail::WithoutRowid { from, to } => write!(f, "WITHOUT ROWID {from} -> {to}"),
            Detail::Strict { from, to } => write!(f, "STRICT {from} -> {to}"),
            Detail::ForeignKeyAdded { from, table } => write!(f, "new foreign key ({}) -> {table}", from.join(", ")),
            Detail::ForeignKeyDropped { from, table } => {
                write!(f, "foreign key ({}) -> {table} dropped", from.join(", "))
            }
            Detail::UniqueAdded(key) => write!(f, "new UNIQUE or PRIMARY KEY on ({})", key.join(", ")),
            Detail::UniqueDropped(key) => write!(f, "UNIQUE or PRIMARY KEY on ({}) dropped", key.join(", ")),
            Detail::CheckAdded(check) => write!(f, "new CHECK {check}"),
            Detail::CheckDropped(check) => write!(f, "CHECK {check} dropped"),
            Detail::Autoincrement { from, to } => write!(f, "AUTOINCREMENT {from} -> {to}"),
            Detail::GeneratedChanged => f.write_str("generated column expressions changed"),
            Detail::ColumnAdded(described) => f.write_str(described),
            Detail::ColumnOnlyInTarget(described) => write!(f, "only in TARGET: {described}"),
            Detail::Type { from, to } => write!(f, "type {} -> {}", or_no_type(from), or_no_type(to)),
            Detail::NotNullAdded => f.write_str("now NOT NULL"),
            Detail::NotNullDropped => f.write_str("NOT NULL dropped"),
            Detail::Default { from, to } => write!(f, "default {} -> {}", or_none(from), or_none(to)),
            Detail::PrimaryKeyPosition { from, to } => write!(f, "primary key position {from} -> {to}"),
            Detail::HiddenChanged => f.write_str("generated or hidden status changed"),
            Detail::Collation { from, to } => write!(f, "collation {from} -> {to}"),
        }
    }
}

impl Serialize for Detail {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// What happened to one column of a table in both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColumnChange {
    pub column: String,
    pub change: ChangeKind,
    /// For a renamed column: its name in TARGET.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renamed_from: Option<String>,
    pub details: Vec<Detail>,
}

/// One object that differs.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub object: Kind,
    pub name: String,
    pub change: ChangeKind,
    /// What changed (shown, and serialized, as words).
    pub details: Vec<Detail>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<ColumnChange>,
    /// `ast` when sqlparser read both texts, `text` when it could not (the
    /// texts were then compared normalized: white space, case, quoting).
    pub compared_by: ComparedBy,
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

/// How two stored texts were compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ComparedBy {
    /// sqlparser read both: compared as syntax trees.
    Ast,
    /// sqlparser could not read one: compared as normalized text (white
    /// space, case, comments, quoting). Never a reason to refuse.
    Text,
}

fn compared_by(a: &Option<String>, b: &Option<String>) -> ComparedBy {
    let ok = |s: &Option<String>| s.as_deref().is_none_or(parses);
    if ok(a) && ok(b) {
        ComparedBy::Ast
    } else {
        ComparedBy::Text
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
                details: vec![Detail::New(object.kind)],
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
                details: vec![Detail::OnlyInTarget(old.kind)],
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
        details.push(Detail::KindChanged {
            from: old.kind,
            to: dev_obj.kind,
        });
    }
    if !dev_obj.name.eq_ignore_ascii_case(&old.name) {
        details.push(Detail::RenamedFrom(old.name.clone()));
    }
    if family(dev_obj.kind) == Kind::Table {
        if let (Some(d), Some(t)) = (dev.table(&dev_obj.name), target.table(&old.name)) {
            columns = column_changes(d, t, hints, possible_renames);
            // A CHECK on a column that is added or dropped goes with the column.
            let goes_with_a_column = |detail: &Detail| {
                let on = |check: &crate::parse::Check, change: ChangeKind| {
                    columns
                        .iter()
                        .any(|c| c.change == change && check.column.as_deref() == Some(key(&c.column).as_str()))
                };
                match detail {
                    Detail::CheckAdded(check) => on(check, ChangeKind::Added),
                    Detail::CheckDropped(check) => on(check, ChangeKind::Removed),
                    _ => false,
                }
            };
            details.extend(table_changes(d, t).into_iter().filter(|d| !goes_with_a_column(d)));
        }
    }
    let change = if normalized_equal && details.is_empty() && columns.is_empty() {
        details.push(Detail::Formatting);
        ChangeKind::TextOnly
    } else {
        if details.is_empty() && columns.is_empty() {
            details.push(Detail::DefinitionChanged);
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
                details: vec![Detail::ColumnAdded(describe(column))],
            }),
            Some(old) => {
                let mut details = Vec::new();
                if !old.name.eq_ignore_ascii_case(&column.name) {
                    details.push(Detail::RenamedFrom(old.name.clone()));
                }
                if old.decl_type != column.decl_type {
                    details.push(Detail::Type {
                        from: old.decl_type.clone(),
                        to: column.decl_type.clone(),
                    });
                }
                if old.not_null != column.not_null {
                    details.push(if column.not_null {
                        Detail::NotNullAdded
                    } else {
                        Detail::NotNullDropped
                    });
                }
                if old.default != column.default {
                    details.push(Detail::Default {
                        from: old.default.clone(),
                        to: column.default.clone(),
                    });
                }
                if old.pk != column.pk {
                    details.push(Detail::PrimaryKeyPosition {
                        from: old.pk,
                        to: column.pk,
                    });
                }
                if old.hidden != column.hidden {
                    details.push(Detail::HiddenChanged);
                }
                let coll = |t: &Table, c: &str| {
                    t.details
                        .as_ref()
                        .and_then(|d| d.collations.get(&key(c)).cloned())
                        .unwrap_or_else(|| "binary".to_owned())
                };
                if coll(dev, &column.name) != coll(target, &old.name) {
                    details.push(Detail::Collation {
                        from: coll(target, &old.name),
                        to: coll(dev, &column.name),
                    });
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
                details: vec![Detail::ColumnOnlyInTarget(describe(old))],
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
    if c.hidden.is_generated() {
        s.push_str(", generated");
    }
    s
}

/// Table-level differences PRAGMAs and the parser show.
fn table_changes(dev: &Table, target: &Table) -> Vec<Detail> {
    let mut out = Vec::new();
    if dev.without_rowid != target.without_rowid {
        out.push(Detail::WithoutRowid {
            from: target.without_rowid,
            to: dev.without_rowid,
        });
    }
    if dev.strict != target.strict {
        out.push(Detail::Strict {
            from: target.strict,
            to: dev.strict,
        });
    }
    for fk in &dev.foreign_keys {
        if !target.foreign_keys.iter().any(|t| same_fk(t, fk)) {
            out.push(Detail::ForeignKeyAdded {
                from: fk.from.clone(),
                table: fk.table.clone(),
            });
        }
    }
    for fk in &target.foreign_keys {
        if !dev.foreign_keys.iter().any(|d| same_fk(d, fk)) {
            out.push(Detail::ForeignKeyDropped {
                from: fk.from.clone(),
                table: fk.table.clone(),
            });
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
    out.extend(du.iter().filter(|u| !tu.contains(u)).cloned().map(Detail::UniqueAdded));
    out.extend(
        tu.iter()
            .filter(|u| !du.contains(u))
            .cloned()
            .map(Detail::UniqueDropped),
    );
    if let (Some(d), Some(t)) = (&dev.details, &target.details) {
        out.extend(
            d.checks
                .iter()
                .filter(|c| !t.checks.contains(c))
                .cloned()
                .map(Detail::CheckAdded),
        );
        out.extend(
            t.checks
                .iter()
                .filter(|c| !d.checks.contains(c))
                .cloned()
                .map(Detail::CheckDropped),
        );
        if d.autoincrement != t.autoincrement {
            out.push(Detail::Autoincrement {
                from: t.autoincrement,
                to: d.autoincrement,
            });
        }
        if d.generated != t.generated {
            out.push(Detail::GeneratedChanged);
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
