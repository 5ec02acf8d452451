//! The plan: for each table, the cheapest safe way to reach DEV's definition
//! with the data kept, where its rows come from, and the data impact counted
//! on TARGET's real rows with SQL (one scan per question, never a Rust loop
//! over rows).

use rusqlite::Connection;
use serde::Serialize;

use crate::catalog::{key, quote, Catalog, Kind, Table};
use crate::diff::{affinity, same_fk, Change, ChangeKind, SchemaDiff};
use crate::Hints;

mod impact;
mod strategy;

use impact::*;
use strategy::*;

/// Migration-history tables: they describe DEV's schema, so their rows come
/// from DEV. Each is a tool's documented default name (the setting that
/// changes it in brackets); matched case-insensitively. A user adds others
/// with `--migration-table` ([`Hints::migration_tables`]).
pub const MIGRATION_TABLES: &[&str] = &[
    // Rails, Ecto, golang-migrate, dbmate (`schema_migrations`).
    "schema_migrations",
    // Rails' environment record, written with schema_migrations.
    "ar_internal_metadata",
    // Django (django.db.migrations.recorder.MigrationRecorder).
    "django_migrations",
    // Alembic (`version_table`).
    "alembic_version",
    // sqlx (`sqlx::migrate`; sqlx-migrate DEFAULT_MIGRATIONS_TABLE).
    "_sqlx_migrations",
    // Diesel (diesel_migrations).
    "__diesel_schema_migrations",
    // goose (`-table`).
    "goose_db_version",
    // Knex (`tableName`, and its lock table).
    "knex_migrations",
    "knex_migrations_lock",
    // Prisma Migrate.
    "_prisma_migrations",
    // Refinery.
    "refinery_schema_history",
    // SeaORM (sea-orm-migration).
    "seaql_migrations",
    // Flyway (`flyway.table`).
    "flyway_schema_history",
    // Laravel (`database.migrations`), TypeORM (`migrationsTableName`),
    // knex-migrator as Ghost uses it, Authelia's storage schema, gormigrate.
    "migrations",
    // knex-migrator's lock table (Ghost).
    "migrations_lock",
    // Sequelize CLI / Umzug's SequelizeStorage (`migrationStorageTableName`).
    "SequelizeMeta",
    // Entity Framework Core (`MigrationsHistoryTable`).
    "__EFMigrationsHistory",
    // Entity Framework 6.
    "__MigrationHistory",
    // Drizzle Kit (`migrations.table`).
    "__drizzle_migrations",
    // Doctrine Migrations (`table_storage.table_name`).
    "doctrine_migration_versions",
    // Phinx and CakePHP Migrations (`default_migration_table`).
    "phinxlog",
    // Liquibase (`databaseChangeLogTableName`, and its lock table).
    "databasechangelog",
    "databasechangeloglock",
    // Kysely's Migrator (`migrationTableName`, `migrationLockTableName`).
    "kysely_migration",
    "kysely_migration_lock",
    // MikroORM (`migrations.tableName`).
    "mikro_orm_migrations",
    // Atlas (`--revisions-schema`; its revisions table).
    "atlas_schema_revisions",
    // node-pg-migrate (`migrationsTable`).
    "pgmigrations",
    // FluentMigrator (VersionTableMetaData).
    "VersionInfo",
    // Yii (`migrationTable`).
    "migration",
    // Play evolutions.
    "play_evolutions",
    // Directus, Strapi.
    "directus_migrations",
    "strapi_migrations",
];

/// The kind of a [`Strategy`], without its data: what reports show and
/// what callers compare (`"strategy"` in `--json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StrategyKind {
    Unchanged,
    Create,
    Drop,
    TextOnly,
    Alter,
    Rebuild,
}

impl StrategyKind {
    /// The word for it, as `--json` writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            StrategyKind::Unchanged => "unchanged",
            StrategyKind::Create => "create",
            StrategyKind::Drop => "drop",
            StrategyKind::TextOnly => "text_only",
            StrategyKind::Alter => "alter",
            StrategyKind::Rebuild => "rebuild",
        }
    }
}

/// How a table reaches DEV's definition, with what the apply needs to do it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    /// Identical: nothing is done, whatever its size.
    Unchanged,
    /// Only in DEV: created from DEV's text.
    Create,
    /// Only in TARGET: dropped.
    Drop,
    /// The stored definition is rewritten; no row is touched. Holds what
    /// differs (`None`: only the text's formatting).
    TextOnly(Option<Vec<Loosening>>),
    /// `ALTER TABLE … ADD/DROP/RENAME COLUMN`, in order: no rebuild.
    Alter(Vec<AlterStep>),
    /// The 12-step rebuild of sqlite.org's ALTER TABLE page, and why.
    Rebuild(Reason),
}

/// A difference SQLite documents as safe to make in the stored text alone
/// ([`crate::diff::Detail::loosens`]), with its column where it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loosening {
    pub column: Option<String>,
    pub detail: crate::diff::Detail,
}

impl std::fmt::Display for Loosening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.column {
            Some(c) => write!(f, "{c}: {}", self.detail),
            None => write!(f, "{}", self.detail),
        }
    }
}

/// One step of an [`Strategy::Alter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterStep {
    RenameColumn {
        from: String,
        to: String,
    },
    DropColumn(String),
    /// Added with DEV's own definition of the column, cut from its text.
    AddColumn(String),
    /// A part written through the stored text after the ALTERs.
    TextOnly(Loosening),
}

impl std::fmt::Display for AlterStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AlterStep::RenameColumn { from, to } => write!(f, "RENAME COLUMN {} TO {}", quote(from), quote(to)),
            AlterStep::DropColumn(c) => write!(f, "DROP COLUMN {}", quote(c)),
            AlterStep::AddColumn(c) => write!(f, "ADD COLUMN {}", quote(c)),
            AlterStep::TextOnly(l) => write!(f, "text-only: {l}"),
        }
    }
}

/// Why a table is rebuilt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Differences no ALTER makes, each with its column where it has one.
    Changed(Vec<Loosening>),
    /// ALTER keeps column order one way only: renamed, dropped, added last.
    ColumnOrder,
    CannotDrop {
        column: String,
        why: &'static str,
    },
    CannotAdd {
        column: String,
        why: &'static str,
    },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Changed(details) => {
                let text: Vec<String> = details.iter().map(ToString::to_string).collect();
                f.write_str(&text.join("; "))
            }
            Reason::ColumnOrder => f.write_str("column order cannot be reached with ALTER TABLE"),
            Reason::CannotDrop { column, why } => write!(f, "{column} cannot be dropped with ALTER TABLE: {why}"),
            Reason::CannotAdd { column, why } => write!(f, "{column} cannot be added with ALTER TABLE: {why}"),
        }
    }
}

impl Strategy {
    pub fn kind(&self) -> StrategyKind {
        match self {
            Strategy::Unchanged => StrategyKind::Unchanged,
            Strategy::Create => StrategyKind::Create,
            Strategy::Drop => StrategyKind::Drop,
            Strategy::TextOnly(_) => StrategyKind::TextOnly,
            Strategy::Alter(_) => StrategyKind::Alter,
            Strategy::Rebuild(_) => StrategyKind::Rebuild,
        }
    }

    /// Why this strategy and, for `alter`, its steps, in words (`"reasons"`).
    pub fn reasons(&self) -> Vec<String> {
        match self {
            Strategy::Unchanged => vec!["identical".to_owned()],
            Strategy::Create => vec!["new table".to_owned()],
            Strategy::Drop => vec!["only in TARGET".to_owned()],
            Strategy::TextOnly(None) => {
                vec!["only the stored text's formatting differs: rewritten through writable_schema".to_owned()]
            }
            Strategy::TextOnly(Some(loosened)) => loosened
                .iter()
                .map(ToString::to_string)
                .chain([
                    "SQLite documents these as safe to change in the stored text: rewritten through writable_schema"
                        .to_owned(),
                ])
                .collect(),
            Strategy::Alter(steps) => steps.iter().map(ToString::to_string).collect(),
            Strategy::Rebuild(Reason::Changed(details)) => details.iter().map(ToString::to_string).collect(),
            Strategy::Rebuild(reason) => vec![reason.to_string()],
        }
    }
}

/// Where a table's rows come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowsFrom {
    Target,
    Dev,
    None,
}

impl RowsFrom {
    /// The word for it, as `--json` writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            RowsFrom::Target => "target",
            RowsFrom::Dev => "dev",
            RowsFrom::None => "none",
        }
    }
}

/// The plan for one table. Serialized as `table`, `strategy` (its kind),
/// `reasons` (in words), `rows_from`, `rows_from_reason`, `rows_touched`,
/// `bytes_written`.
#[derive(Debug, Clone)]
pub struct TablePlan {
    pub table: String,
    pub strategy: Strategy,
    pub rows_from: RowsFrom,
    pub rows_from_reason: String,
    /// Rows the strategy reads or writes (a rebuild copies them all).
    pub rows_touched: i64,
    /// Bytes the migration writes into TARGET for this table, measured on
    /// TARGET's pages ([`crate::space`]): the table and its indexes when it
    /// is rebuilt, the table's b-tree once for each index DEV adds or
    /// changes on it, else 0. `None` where this SQLite cannot measure.
    pub bytes_written: Option<u64>,
}

impl Serialize for TablePlan {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("TablePlan", 7)?;
        s.serialize_field("table", &self.table)?;
        s.serialize_field("strategy", &self.strategy.kind())?;
        s.serialize_field("reasons", &self.strategy.reasons())?;
        s.serialize_field("rows_from", &self.rows_from)?;
        s.serialize_field("rows_from_reason", &self.rows_from_reason)?;
        s.serialize_field("rows_touched", &self.rows_touched)?;
        s.serialize_field("bytes_written", &self.bytes_written)?;
        s.end()
    }
}

/// Whether a data-impact entry loses data or breaks a constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImpactKind {
    /// Data that does not reach the result (dropped tables and columns):
    /// reported, the apply proceeds. `"lost"` (`"lost"` before: still read).
    #[serde(alias = "lost")]
    Lost,
    /// A new or tightened constraint the rows break: blocks `--apply` unless skipped.
    Violation,
    /// Rows replaced by DEV's (DEV-owned tables) or kept only in DEV's backup.
    Replaced,
    /// Violations TARGET already has under the same constraint: carried as they are.
    Existing,
}

/// One thing applying DEV's schema would do to data.
#[derive(Debug, Clone, Serialize)]
pub struct Impact {
    pub table: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub constraint: Option<String>,
    pub kind: ImpactKind,
    pub reason: String,
    pub rows: i64,
    /// A few rowids (or keys) of the rows concerned.
    pub examples: Vec<String>,
    /// For a violation: the rows `--on-violation skip` leaves out, as a
    /// condition over TARGET's table (`None` where they cannot be singled out).
    #[serde(skip)]
    pub skip_condition: Option<String>,
    /// Where `skip_condition` is `None`: why the rows cannot be singled out.
    #[serde(skip)]
    pub unskippable: Option<&'static str>,
}

/// The plan for every table, and the data impact.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Plan {
    pub tables: Vec<TablePlan>,
    pub data_impact: Vec<Impact>,
    /// Constraints whose violations could not be counted, with why.
    pub not_counted: Vec<String>,
    /// What is carried as it is but worth knowing (see `Report::warnings`).
    pub warnings: Vec<String>,
}

/// Whether `name` is a migration-history table (the known names, or a hint's).
pub fn is_migration_table(name: &str, hints: &Hints) -> bool {
    MIGRATION_TABLES.iter().any(|m| m.eq_ignore_ascii_case(name))
        || hints.migration_tables.iter().any(|p| crate::glob_match(p, name))
}

/// Where the rows of DEV's table `table` come from, and why: DEV's for a
/// table only in DEV (`in_target` false), a `--dev-data` table or a
/// migration history; TARGET's otherwise (and for `--prod-data`).
pub fn rows_from(table: &str, in_target: bool, hints: &Hints) -> (RowsFrom, String) {
    let matches = |patterns: &[String]| patterns.iter().any(|p| crate::glob_match(p, table));
    if !in_target {
        (RowsFrom::Dev, "only in DEV: its rows are new development".to_owned())
    } else if matches(&hints.prod_data) {
        (RowsFrom::Target, "--prod-data: TARGET's rows".to_owned())
    } else if matches(&hints.dev_data) {
        (RowsFrom::Dev, "--dev-data: DEV's rows".to_owned())
    } else if is_migration_table(table, hints) {
        (
            RowsFrom::Dev,
            "a migration-history table: it describes DEV's schema".to_owned(),
        )
    } else {
        (
            RowsFrom::Target,
            "in both: TARGET's rows, matched by column name".to_owned(),
        )
    }
}

/// Builds the plan from the diff, counting on TARGET (and DEV for DEV's rows).
pub fn plan(
    diff: &SchemaDiff,
    dev: &Catalog,
    target: &Catalog,
    dev_conn: &Connection,
    target_conn: &Connection,
    hints: &Hints,
) -> rusqlite::Result<Plan> {
    let mut plan = Plan::default();
    let count = |conn: &Connection, sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0));
    let change_of = |name: &str| {
        diff.changes
            .iter()
            .find(|c| matches!(c.object, Kind::Table) && c.name.eq_ignore_ascii_case(name))
    };

    for object in dev.objects.iter().filter(|o| o.kind == Kind::Table) {
        let Some(table) = dev.table(&object.name) else { continue };
        let old_name = hints.table_in_target(&table.name);
        let old = target.table(&old_name);
        let (rows_from, rows_from_reason) = rows_from(&table.name, old.is_some(), hints);
        if rows_from == RowsFrom::Target && table.name.to_ascii_lowercase().contains("migration") {
            plan.warnings.push(format!(
                "{}: looks like a migration history but is not treated as one, so it gets PROD's rows; pass --migration-table {} to take DEV's",
                table.name, table.name
            ));
        }
        let strategy = match (old, change_of(&table.name)) {
            (None, _) => Strategy::Create,
            (Some(_), None) => Strategy::Unchanged,
            (Some(_), Some(c)) if c.change == ChangeKind::TextOnly => Strategy::TextOnly(None),
            (Some(t), Some(c)) => choose(table, t, c, target, hints),
        };
        let rebuilt = matches!(strategy, Strategy::Rebuild(_));
        // Counting rows reads a whole b-tree: only where the plan needs it,
        // so unchanged tables cost nothing whatever their size.
        let target_rows = match old {
            Some(t) if rebuilt || rows_from == RowsFrom::Dev => {
                count(target_conn, &format!("SELECT count(*) FROM {}", quote(&t.name)))?
            }
            _ => 0,
        };
        let rows_touched = if rebuilt { target_rows } else { 0 };
        if rows_from == RowsFrom::Dev && old.is_some() && target_rows > 0 {
            plan.data_impact.push(Impact {
                table: table.name.clone(),
                column: None,
                constraint: None,
                kind: ImpactKind::Replaced,
                reason: format!("TARGET's rows are replaced by DEV's ({rows_from_reason})"),
                rows: target_rows,
                examples: Vec::new(),
                skip_condition: None,
                unskippable: None,
            });
        }
        if rows_from == RowsFrom::Target {
            let dev_rows = count(dev_conn, &format!("SELECT count(*) FROM {}", quote(&table.name)))?;
            if dev_rows > 0 {
                plan.data_impact.push(Impact {
                    table: table.name.clone(),
                    column: None,
                    constraint: None,
                    kind: ImpactKind::Replaced,
                    reason: "DEV's own rows in this table are replaced by TARGET's; they survive only in DEV's backup"
                        .to_owned(),
                    rows: dev_rows,
                    examples: Vec::new(),
                    skip_condition: None,
                    unskippable: None,
                });
            }
        }
        if let (Some(t), RowsFrom::Target, false) = (old, rows_from, strategy == Strategy::Unchanged) {
            impact_of_table(&mut plan.data_impact, table, t, target, target_conn, hints)?;
            check_impact(&mut plan, table, t, target_conn, hints);
        }
        if let (Some(t), RowsFrom::Target) = (old, rows_from) {
            // Also for an unchanged table: a new unique index is its own object.
            unique_impact(&mut plan, table, t, (dev, target), target_conn, hints)?;
        }
        plan.tables.push(TablePlan {
            table: table.name.clone(),
            strategy,
            rows_from,
            rows_from_reason,
            rows_touched,
            bytes_written: Some(0),
        });
    }
    // Foreign-key violations TARGET already has: carried, and reported.
    {
        let mut stmt = target_conn.prepare("PRAGMA foreign_key_check")?;
        let mut found: std::collections::BTreeMap<(String, String), (i64, Vec<String>)> = Default::default();
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<i64>>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        for row in rows {
            let (table, rowid, parent) = row?;
            let entry = found.entry((table, parent)).or_default();
            entry.0 += 1;
            if entry.1.len() < 3 {
                entry.1.extend(rowid.map(|r| r.to_string()));
            }
        }
        for ((table, parent), (rows, examples)) in found {
            plan.data_impact.push(Impact {
                table,
                column: None,
                constraint: Some(format!("FOREIGN KEY -> {parent}")),
                kind: ImpactKind::Existing,
                reason: "foreign-key violations TARGET already has: carried as they are".to_owned(),
                rows,
                examples,
                skip_condition: None,
                unskippable: None,
            });
        }
    }
    for object in target
        .objects
        .iter()
        .filter(|o| matches!(o.kind, Kind::Table | Kind::VirtualTable))
    {
        let dev_name = hints.table_in_dev(&object.name);
        if dev.table(&dev_name).is_some() || dev.object(Kind::Table, &dev_name).is_some() {
            continue;
        }
        let rows = match count(target_conn, &format!("SELECT count(*) FROM {}", quote(&object.name))) {
            Ok(n) => n,
            Err(e) if object.kind == Kind::VirtualTable => {
                plan.not_counted
                    .push(format!("{}: rows of a dropped virtual table: {e}", object.name));
                0
            }
            Err(e) => return Err(e),
        };
        plan.tables.push(TablePlan {
            table: object.name.clone(),
            strategy: Strategy::Drop,
            rows_from: RowsFrom::None,
            rows_from_reason: "dropped".to_owned(),
            rows_touched: rows,
            bytes_written: Some(0),
        });
        if rows > 0 {
            plan.data_impact.push(Impact {
                table: object.name.clone(),
                column: None,
                constraint: None,
                kind: ImpactKind::Lost,
                reason: "table dropped: DEV has no such table".to_owned(),
                rows,
                examples: Vec::new(),
                skip_condition: None,
                unskippable: None,
            });
        }
    }
    // Foreign keys of DEV's that reference a table DEV does not have (as
    // after a table was renamed aside and dropped): they dangle in DEV
    // already; the rows are carried as they are.
    for table in dev
        .objects
        .iter()
        .filter(|o| o.kind == Kind::Table)
        .filter_map(|o| dev.table(&o.name))
    {
        for fk in &table.foreign_keys {
            if dev.table(&fk.table).is_none() {
                plan.warnings.push(format!(
                    "{}: its foreign key ({}) references {}, which DEV's schema does not have; the reference dangles in DEV too, and the rows are carried as they are",
                    table.name,
                    fk.from.join(", "),
                    fk.table
                ));
            }
        }
    }
    // Why the violating rows that cannot be singled out cannot be.
    for impact in plan.data_impact.iter_mut().filter(|i| i.kind == ImpactKind::Violation) {
        if impact.skip_condition.is_none() && impact.unskippable.is_none() {
            let without_rowid = target
                .table(&hints.table_in_target(&impact.table))
                .is_some_and(|t| t.without_rowid);
            impact.unskippable = Some(if impact.rows < 0 {
                "the rows that fail cannot be told apart in SQL, so none can be left out"
            } else if without_rowid {
                "a WITHOUT ROWID table: its rows cannot be singled out to leave out"
            } else {
                "its violating rows cannot be singled out"
            });
        }
    }
    Ok(plan)
}

/// The column that aliases `table`'s rowid (an INTEGER PRIMARY KEY), if any.
pub fn rowid_alias(table: &Table) -> Option<&str> {
    if table.without_rowid {
        return None;
    }
    let pk: Vec<_> = table.columns.iter().filter(|c| c.pk > 0).collect();
    match pk.as_slice() {
        [c] if c.decl_type.eq_ignore_ascii_case("INTEGER") => Some(c.name.as_str()),
        _ => None,
    }
}
