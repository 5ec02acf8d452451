//! The plan: for each table, the cheapest safe way to reach DEV's definition
//! with the data kept, where its rows come from, and the data impact counted
//! on TARGET's real rows with SQL (one scan per question, never a Rust loop
//! over rows).

use rusqlite::Connection;
use serde::Serialize;

use crate::catalog::{key, quote, Catalog, Kind, Table};
use crate::diff::{affinity, same_fk, Change, ChangeKind, SchemaDiff};
use crate::Hints;

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

/// How a table reaches DEV's definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Identical: nothing is done, whatever its size.
    Unchanged,
    /// Only in DEV: created from DEV's text.
    Create,
    /// Only in TARGET: dropped.
    Drop,
    /// The stored definition is rewritten; no row is touched.
    TextOnly,
    /// `ALTER TABLE … ADD/DROP/RENAME COLUMN`: no rebuild.
    Alter,
    /// The 12-step rebuild of sqlite.org's ALTER TABLE page.
    Rebuild,
}

/// Where a table's rows come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowsFrom {
    Target,
    Dev,
    None,
}

/// The plan for one table.
#[derive(Debug, Clone, Serialize)]
pub struct TablePlan {
    pub table: String,
    pub strategy: Strategy,
    /// Why this strategy (and, for `alter`, the steps).
    pub reasons: Vec<String>,
    pub rows_from: RowsFrom,
    pub rows_from_reason: String,
    /// Rows the strategy reads or writes (a rebuild copies them all).
    pub rows_touched: i64,
}

/// Whether a data-impact entry loses data or breaks a constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImpactKind {
    /// Dropped tables and columns: reported, the apply proceeds.
    DataLoss,
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

fn is_migration_table(name: &str, hints: &Hints) -> bool {
    MIGRATION_TABLES.iter().any(|m| m.eq_ignore_ascii_case(name))
        || hints.migration_tables.iter().any(|p| crate::glob_match(p, name))
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
        let matches = |patterns: &[String]| patterns.iter().any(|p| crate::glob_match(p, &table.name));
        let (rows_from, rows_from_reason) = if old.is_none() {
            (RowsFrom::Dev, "only in DEV: its rows are new development".to_owned())
        } else if matches(&hints.prod_data) {
            (RowsFrom::Target, "--prod-data: TARGET's rows".to_owned())
        } else if matches(&hints.dev_data) {
            (RowsFrom::Dev, "--dev-data: DEV's rows".to_owned())
        } else if is_migration_table(&table.name, hints) {
            (
                RowsFrom::Dev,
                "a migration-history table: it describes DEV's schema".to_owned(),
            )
        } else {
            (
                RowsFrom::Target,
                "in both: TARGET's rows, matched by column name".to_owned(),
            )
        };
        if rows_from == RowsFrom::Target && table.name.to_ascii_lowercase().contains("migration") {
            plan.warnings.push(format!(
                "{}: looks like a migration history but is not treated as one, so it gets PROD's rows; pass --migration-table {} to take DEV's",
                table.name, table.name
            ));
        }
        let (strategy, reasons) = match (old, change_of(&table.name)) {
            (None, _) => (Strategy::Create, vec!["new table".to_owned()]),
            (Some(_), None) => (Strategy::Unchanged, vec!["identical".to_owned()]),
            (Some(_), Some(c)) if c.change == ChangeKind::TextOnly => (
                Strategy::TextOnly,
                vec!["only the stored text's formatting differs: rewritten through writable_schema".to_owned()],
            ),
            (Some(t), Some(c)) => choose(table, t, c, target, hints),
        };
        // Counting rows reads a whole b-tree: only where the plan needs it,
        // so unchanged tables cost nothing whatever their size.
        let target_rows = match old {
            Some(t) if strategy == Strategy::Rebuild || rows_from == RowsFrom::Dev => {
                count(target_conn, &format!("SELECT count(*) FROM {}", quote(&t.name)))?
            }
            _ => 0,
        };
        let rows_touched = match strategy {
            Strategy::Rebuild => target_rows,
            _ => 0,
        };
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
            reasons,
            rows_from,
            rows_from_reason,
            rows_touched,
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
            reasons: vec!["only in TARGET".to_owned()],
            rows_from: RowsFrom::None,
            rows_from_reason: "dropped".to_owned(),
            rows_touched: rows,
        });
        if rows > 0 {
            plan.data_impact.push(Impact {
                table: object.name.clone(),
                column: None,
                constraint: None,
                kind: ImpactKind::DataLoss,
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

/// Chooses between a text-only change, ALTER steps and a rebuild.
fn choose(dev: &Table, old: &Table, change: &Change, target: &Catalog, hints: &Hints) -> (Strategy, Vec<String>) {
    let mut blockers = Vec::new();
    let mut loosenings = Vec::new();
    for detail in &change.details {
        let loosening = detail.starts_with("CHECK ") && detail.ends_with(" dropped")
            || detail.starts_with("foreign key (") && detail.ends_with(" dropped");
        if loosening {
            loosenings.push(detail.clone());
        } else {
            blockers.push(detail.clone());
        }
    }
    let (mut adds, mut drops, mut renamed) = (Vec::new(), Vec::new(), Vec::new());
    for column in &change.columns {
        match column.change {
            ChangeKind::Added => adds.push(column.column.clone()),
            ChangeKind::Removed => drops.push(column.column.clone()),
            _ => {
                let mut only_loosening = true;
                for d in &column.details {
                    if d.starts_with("renamed from ") {
                        renamed.push((column.renamed_from.clone().unwrap_or_default(), column.column.clone()));
                    } else if d == "NOT NULL dropped" || d.starts_with("default ") {
                        loosenings.push(format!("{}: {d}", column.column));
                    } else {
                        only_loosening = false;
                        blockers.push(format!("{}: {d}", column.column));
                    }
                }
                let _ = only_loosening;
            }
        }
    }
    if !blockers.is_empty() {
        return (Strategy::Rebuild, blockers);
    }
    // ALTER keeps column order only one way: renamed in place, dropped
    // removed, added appended.
    let mut names: Vec<String> = old
        .columns
        .iter()
        .map(|c| {
            let dev_name = hints.column_in_dev(&old.name, &c.name);
            key(&dev_name)
        })
        .collect();
    names.retain(|n| {
        !drops
            .iter()
            .any(|d| key(d) == *n || key(&hints.column_in_dev(&old.name, d)) == *n)
    });
    names.extend(adds.iter().map(|a| key(a)));
    let wanted: Vec<String> = dev.columns.iter().map(|c| key(&c.name)).collect();
    if names != wanted {
        return (
            Strategy::Rebuild,
            vec!["column order cannot be reached with ALTER TABLE".to_owned()],
        );
    }
    let mut steps = Vec::new();
    for (from, to) in &renamed {
        steps.push(format!("RENAME COLUMN {} TO {}", quote(from), quote(to)));
    }
    for name in &drops {
        if let Err(why) = droppable(old, name, target) {
            return (
                Strategy::Rebuild,
                vec![format!("{name} cannot be dropped with ALTER TABLE: {why}")],
            );
        }
        steps.push(format!("DROP COLUMN {}", quote(name)));
    }
    for name in &adds {
        if let Err(why) = addable(dev, name) {
            return (
                Strategy::Rebuild,
                vec![format!("{name} cannot be added with ALTER TABLE: {why}")],
            );
        }
        steps.push(format!("ADD COLUMN {}", quote(name)));
    }
    if steps.is_empty() {
        let mut reasons = loosenings;
        reasons.push(
            "SQLite documents these as safe to change in the stored text: rewritten through writable_schema".to_owned(),
        );
        return (Strategy::TextOnly, reasons);
    }
    if !loosenings.is_empty() {
        steps.extend(loosenings.into_iter().map(|l| format!("text-only: {l}")));
    }
    (Strategy::Alter, steps)
}

/// `ALTER TABLE … ADD COLUMN`'s rules (sqlite.org/lang_altertable.html).
fn addable(dev: &Table, name: &str) -> Result<(), &'static str> {
    let c = dev.column(name).ok_or("not in DEV")?;
    if c.pk > 0 {
        return Err("a PRIMARY KEY column");
    }
    if dev.indexes.iter().any(|i| {
        i.unique
            && i.origin != "c"
            && i.columns
                .iter()
                .any(|(n, _)| n.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(name)))
    }) {
        return Err("a UNIQUE column");
    }
    if c.hidden == 3 {
        return Err("a STORED generated column");
    }
    let default = c.default.as_deref().unwrap_or("NULL");
    let upper = default.to_ascii_uppercase();
    if upper.starts_with('(') || upper.starts_with("CURRENT_") {
        return Err("its default is not a constant");
    }
    if c.not_null && upper == "NULL" && c.hidden < 2 {
        return Err("NOT NULL without a default");
    }
    if upper != "NULL"
        && dev
            .foreign_keys
            .iter()
            .any(|f| f.from.iter().any(|n| n.eq_ignore_ascii_case(name)))
    {
        return Err("a foreign key with a non-NULL default");
    }
    Ok(())
}

/// `ALTER TABLE … DROP COLUMN`'s rules, conservatively: the column must not
/// be a key, indexed, referenced, or named anywhere else in the schema.
fn droppable(old: &Table, name: &str, target: &Catalog) -> Result<(), &'static str> {
    let c = old.column(name).ok_or("not in TARGET")?;
    if c.pk > 0 {
        return Err("a PRIMARY KEY column");
    }
    if old.indexes.iter().any(|i| {
        i.columns
            .iter()
            .any(|(n, _)| n.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(name)))
    }) {
        return Err("indexed or UNIQUE");
    }
    if old
        .foreign_keys
        .iter()
        .any(|f| f.from.iter().any(|n| n.eq_ignore_ascii_case(name)))
    {
        return Err("part of a foreign key");
    }
    for t in target.tables.values() {
        if t.foreign_keys.iter().any(|f| {
            f.table.eq_ignore_ascii_case(&old.name)
                && f.to
                    .iter()
                    .any(|n| n.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(name)))
        }) {
            return Err("referenced by a foreign key");
        }
    }
    let word = key(name);
    let mentions = |sql: &str| {
        crate::parse::normalize(sql)
            .split(|ch: char| !(ch.is_alphanumeric() || ch == '_'))
            .any(|w| w == word)
    };
    for o in &target.objects {
        let related = o.kind != Kind::Table && o.tbl_name.eq_ignore_ascii_case(&old.name)
            || matches!(o.kind, Kind::View | Kind::Trigger);
        if related && o.sql.as_deref().is_some_and(mentions) {
            return Err("named by an index, view or trigger");
        }
    }
    if let Some(d) = &old.details {
        if d.checks.iter().any(|ch| mentions(ch)) || d.generated.values().any(|g| mentions(g)) {
            return Err("used by a CHECK or a generated column");
        }
    }
    Ok(())
}

/// TARGET's rows of `old` as DEV's table `dev` will hold them, as a
/// subquery: DEV's column names (a column DEV adds takes its default), and
/// the rowid as `refresh_dev_row_id` (NULL in a WITHOUT ROWID table).
fn rows_as_dev(dev: &Table, old: &Table, hints: &Hints) -> String {
    let mut select: Vec<String> = Vec::new();
    for c in dev.columns.iter().filter(|c| c.hidden < 2) {
        let value = match old.column(&hints.column_in_target(&dev.name, &c.name)) {
            Some(o) => quote(&o.name),
            None => format!("({})", c.default.as_deref().unwrap_or("NULL")),
        };
        select.push(format!("{value} AS {}", quote(&c.name)));
    }
    let id = if old.without_rowid { "NULL" } else { "rowid" };
    format!(
        "(SELECT {id} AS refresh_dev_row_id, {} FROM {})",
        select.join(", "),
        quote(&old.name)
    )
}

/// A unique key's parts: the key items (quoted column names or verbatim
/// expressions), each with its collation, and a partial index's condition.
struct UniqueKey {
    items: Vec<(String, String)>,
    condition: Option<String>,
}

/// The parts of `index`, a unique index of `catalog`'s. `None` where the
/// stored text cannot be cut into them.
fn unique_key(index: &crate::catalog::Index, catalog: &Catalog) -> Option<UniqueKey> {
    if index.origin == "c" {
        let sql = catalog.object(Kind::Index, &index.name)?.sql.as_deref()?;
        let parts = crate::parse::index_parts(sql)?;
        if parts.items.len() != index.columns.len() {
            return None;
        }
        let items = parts
            .items
            .into_iter()
            .zip(&index.columns)
            .map(|(item, (_, coll))| (item, coll.clone()))
            .collect();
        Some(UniqueKey {
            items,
            condition: parts.condition,
        })
    } else {
        let items = index
            .columns
            .iter()
            .map(|(name, coll)| name.as_ref().map(|n| (quote(n), coll.clone())))
            .collect::<Option<Vec<_>>>()?;
        Some(UniqueKey { items, condition: None })
    }
}

/// New UNIQUE keys (constraints and unique indexes, partial, on
/// expressions, with DEV's collations) that TARGET's rows break, counted
/// over the rows as DEV's table will hold them. A key TARGET already has
/// (the same items, collations and condition) costs nothing, so an
/// unchanged table with no new unique index is not read at all.
fn unique_impact(
    plan: &mut Plan,
    dev: &Table,
    old: &Table,
    catalogs: (&Catalog, &Catalog),
    conn: &Connection,
    hints: &Hints,
) -> rusqlite::Result<()> {
    use crate::parse::normalize;
    let (dev_catalog, target_catalog) = catalogs;
    let same = |a: &UniqueKey, b: &UniqueKey| {
        a.items.len() == b.items.len()
            && a.items
                .iter()
                .zip(&b.items)
                .all(|((x, cx), (y, cy))| normalize(x) == normalize(y) && cx.eq_ignore_ascii_case(cy))
            && a.condition.as_deref().map(normalize) == b.condition.as_deref().map(normalize)
    };
    let had: Vec<_> = old
        .indexes
        .iter()
        .filter(|i| i.unique)
        .filter_map(|i| unique_key(i, target_catalog))
        .map(|UniqueKey { items, condition }| {
            // In DEV's column names, where a hint renamed them.
            let items = items
                .into_iter()
                .map(|(item, coll)| {
                    let named = old.column(item.trim_matches('"')).map(|c| c.name.clone());
                    match named {
                        Some(n) => (quote(&hints.column_in_dev(&old.name, &n)), coll),
                        None => (item, coll),
                    }
                })
                .collect();
            UniqueKey { items, condition }
        })
        .collect();
    let rows = rows_as_dev(dev, old, hints);
    for index in dev.indexes.iter().filter(|i| i.unique) {
        let Some(key) = unique_key(index, dev_catalog) else {
            plan.not_counted.push(format!(
                "{}: UNIQUE index {}: its definition could not be read",
                dev.name, index.name
            ));
            continue;
        };
        if had.iter().any(|h| same(h, &key)) {
            continue; // TARGET's rows already satisfy it
        }
        let UniqueKey { items, condition } = &key;
        let keys: Vec<String> = items.iter().map(|(e, coll)| format!("({e}) COLLATE {coll}")).collect();
        let mut filter: Vec<String> = items.iter().map(|(e, _)| format!("({e}) IS NOT NULL")).collect();
        if let Some(c) = condition {
            filter.push(format!("({c})"));
        }
        let (filter, group) = (filter.join(" AND "), keys.join(", "));
        let duplicates = format!(
            "SELECT refresh_dev_row_id FROM {rows} WHERE {filter} AND refresh_dev_row_id NOT IN \
             (SELECT min(refresh_dev_row_id) FROM {rows} WHERE {filter} GROUP BY {group})"
        );
        let counted = conn
            .query_row(
                &format!(
                    "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM {rows} WHERE {filter} GROUP BY {group} HAVING count(*) > 1)"
                ),
                [],
                |r| r.get::<_, i64>(0),
            )
            .and_then(|n| {
                if n == 0 || old.without_rowid {
                    return Ok((n, Vec::new()));
                }
                let mut stmt = conn.prepare(&format!("{duplicates} ORDER BY 1 LIMIT 3"))?;
                let examples = stmt
                    .query_map([], |r| r.get::<_, i64>(0))?
                    .map(|r| r.map(|i| i.to_string()))
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok((n, examples))
            });
        // Column names as they are; expressions as DEV wrote them.
        let names: Vec<&str> = items
            .iter()
            .zip(&index.columns)
            .map(|((e, _), (name, _))| match (index.origin.as_str(), name) {
                ("c", _) | (_, None) => e.as_str(),
                (_, Some(n)) => n.as_str(),
            })
            .collect();
        let constraint = format!(
            "UNIQUE ({}){}",
            names.join(", "),
            condition.as_ref().map(|c| format!(" WHERE {c}")).unwrap_or_default()
        );
        match counted {
            Ok((0, _)) => {}
            Ok((n, examples)) => plan.data_impact.push(Impact {
                table: dev.name.clone(),
                column: Some(names.join(", ")),
                constraint: Some(constraint),
                kind: ImpactKind::Violation,
                reason: "new UNIQUE key: these rows repeat an earlier row's key (the first, lowest rowid, stays)"
                    .to_owned(),
                rows: n,
                examples,
                // The first row (lowest rowid) of each group stays.
                skip_condition: (!old.without_rowid).then(|| format!("rowid IN ({duplicates})")),
                unskippable: None,
            }),
            // What DEV's application provides (a collation, a function) is
            // asked for by name, as everywhere: the caller says how to load it.
            Err(e) if needs_extension(&e) => return Err(e),
            Err(e) => plan.not_counted.push(format!("{}: {constraint}: {e}", dev.name)),
        }
    }
    Ok(())
}

/// SQLite's word that something DEV's application registers is missing.
fn needs_extension(e: &rusqlite::Error) -> bool {
    let message = e.to_string();
    ["no such collation sequence", "no such module", "no such function"]
        .iter()
        .any(|m| message.contains(m))
}

/// New CHECK constraints: TARGET's rows, seen through DEV's column names
/// (missing columns take DEV's default), for which the constraint is false.
/// The expression is DEV's stored text, verbatim.
fn check_impact(plan: &mut Plan, dev: &Table, old: &Table, conn: &Connection, hints: &Hints) {
    use crate::parse::{check_constraints, normalize};
    let (Some(dev_sql), Some(old_sql)) = (&dev.sql, &old.sql) else {
        return;
    };
    let had: Vec<String> = check_constraints(old_sql).iter().map(|(_, e)| normalize(e)).collect();
    let rows = rows_as_dev(dev, old, hints);
    // Generated columns that are new or whose expression changed: evaluate
    // the expression over every row once; an error means some row fails.
    for c in dev.columns.iter().filter(|c| c.hidden >= 2) {
        let Some(expr) = crate::parse::generated_expression(dev_sql, &c.name) else {
            continue;
        };
        let before = crate::parse::generated_expression(old_sql, &hints.column_in_target(&dev.name, &c.name));
        if before.as_deref().map(normalize) == Some(normalize(&expr)) {
            continue;
        }
        if let Err(e) = conn.query_row(&format!("SELECT count(({expr})) FROM {rows}"), [], |r| {
            r.get::<_, i64>(0)
        }) {
            plan.data_impact.push(Impact {
                table: dev.name.clone(),
                column: Some(c.name.clone()),
                constraint: Some(format!("GENERATED AS ({expr})")),
                kind: ImpactKind::Violation,
                reason: format!("generated column: its expression fails on TARGET's rows ({e}); the failing rows cannot be counted one by one"),
                rows: -1,
                examples: Vec::new(),
                skip_condition: None,
                unskippable: None,
            });
        }
    }
    for (column, expr) in check_constraints(dev_sql) {
        if had.contains(&normalize(&expr)) {
            continue; // TARGET's rows already satisfy it
        }
        let counted = conn
            .query_row(&format!("SELECT count(*) FROM {rows} WHERE NOT ({expr})"), [], |r| {
                r.get::<_, i64>(0)
            })
            .and_then(|n| {
                let mut stmt = conn.prepare(&format!(
                    "SELECT refresh_dev_row_id FROM {rows} WHERE NOT ({expr}) LIMIT 3"
                ))?;
                let examples = stmt
                    .query_map([], |r| r.get::<_, Option<i64>>(0))?
                    .filter_map(|r| r.ok().flatten().map(|i| i.to_string()))
                    .collect::<Vec<_>>();
                Ok((n, examples))
            });
        match counted {
            Ok((0, _)) => {}
            Ok((n, examples)) => plan.data_impact.push(Impact {
                table: dev.name.clone(),
                column: column.clone(),
                constraint: Some(format!("CHECK ({expr})")),
                kind: ImpactKind::Violation,
                reason: "new CHECK constraint: false for these rows".to_owned(),
                rows: n,
                examples,
                skip_condition: (!old.without_rowid)
                    .then(|| format!("rowid IN (SELECT refresh_dev_row_id FROM {rows} WHERE NOT ({expr}))")),
                unskippable: None,
            }),
            Err(e) => plan.not_counted.push(format!("{}: CHECK ({expr}): {e}", dev.name)),
        }
    }
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

/// Up to three rowids (or primary keys) of TARGET's rows matching `condition`.
fn examples(conn: &Connection, table: &Table, condition: &str) -> rusqlite::Result<Vec<String>> {
    let key_expr = if table.without_rowid {
        let pk: Vec<String> = {
            let mut cols: Vec<_> = table.columns.iter().filter(|c| c.pk > 0).collect();
            cols.sort_by_key(|c| c.pk);
            cols.iter().map(|c| format!("quote({})", quote(&c.name))).collect()
        };
        if pk.is_empty() {
            return Ok(Vec::new());
        }
        pk.join(" || ', ' || ")
    } else {
        "rowid".to_owned()
    };
    let sql = format!(
        "SELECT {key_expr} FROM {} WHERE {condition} LIMIT 3",
        quote(&table.name)
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], |r| {
        Ok(match r.get_ref(0)? {
            rusqlite::types::ValueRef::Integer(i) => i.to_string(),
            rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
            other => format!("{other:?}"),
        })
    })?;
    rows.collect()
}

/// The data impact of changing TARGET's table `old` into DEV's `dev`.
fn impact_of_table(
    out: &mut Vec<Impact>,
    dev: &Table,
    old: &Table,
    target: &Catalog,
    conn: &Connection,
    hints: &Hints,
) -> rusqlite::Result<()> {
    let count = |sql: String| conn.query_row(&sql, [], |r| r.get::<_, i64>(0));
    let t = quote(&old.name);
    let mut rows_cache = None;
    let mut rows = || -> rusqlite::Result<i64> {
        if let Some(n) = rows_cache {
            return Ok(n);
        }
        let n = conn.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get::<_, i64>(0))?;
        rows_cache = Some(n);
        Ok(n)
    };
    // Columns dropped: their non-NULL values are lost.
    for c in &old.columns {
        let dev_name = hints.column_in_dev(&old.name, &c.name);
        if dev.column(&dev_name).is_none() && c.hidden < 2 {
            let condition = format!("{} IS NOT NULL", quote(&c.name));
            let n = count(format!("SELECT count(*) FROM {t} WHERE {condition}"))?;
            if n > 0 {
                out.push(Impact {
                    table: dev.name.clone(),
                    column: Some(c.name.clone()),
                    constraint: None,
                    kind: ImpactKind::DataLoss,
                    reason: "column dropped: DEV has no such column".to_owned(),
                    rows: n,
                    examples: examples(conn, old, &condition)?,
                    skip_condition: None,
                    unskippable: None,
                });
            }
        }
    }
    for c in &dev.columns {
        let old_name = hints.column_in_target(&dev.name, &c.name);
        match old.column(&old_name) {
            None if c.not_null && c.default.is_none() && c.hidden < 2 && c.pk == 0 && rows()? > 0 => out.push(Impact {
                table: dev.name.clone(),
                column: Some(c.name.clone()),
                constraint: Some("NOT NULL".to_owned()),
                kind: ImpactKind::Violation,
                reason: "new NOT NULL column without a default: every existing row would be NULL".to_owned(),
                rows: rows()?,
                examples: examples(conn, old, "1")?,
                skip_condition: Some("1".to_owned()),
                unskippable: None,
            }),
            Some(o) if c.not_null && !o.not_null && c.pk == 0 => {
                let condition = format!("{} IS NULL", quote(&o.name));
                let n = count(format!("SELECT count(*) FROM {t} WHERE {condition}"))?;
                if n > 0 {
                    out.push(Impact {
                        table: dev.name.clone(),
                        column: Some(c.name.clone()),
                        constraint: Some("NOT NULL".to_owned()),
                        kind: ImpactKind::Violation,
                        reason: "now NOT NULL: these rows hold NULL".to_owned(),
                        rows: n,
                        examples: examples(conn, old, &condition)?,
                        skip_condition: Some(condition),
                        unskippable: None,
                    });
                }
            }
            _ => {}
        }
    }
    // New foreign keys whose parent is a table TARGET has: orphans.
    for fk in &dev.foreign_keys {
        if old.foreign_keys.iter().any(|o| same_fk(o, fk)) {
            continue; // violations TARGET already had under the same constraint are carried as they are
        }
        let parent_old = hints.table_in_target(&fk.table);
        let Some(parent) = target.table(&parent_old) else {
            continue;
        };
        let parent_key: Vec<String> = if fk.to.iter().all(Option::is_some) {
            fk.to.iter().flatten().cloned().collect()
        } else {
            let mut pk: Vec<_> = parent.columns.iter().filter(|c| c.pk > 0).collect();
            pk.sort_by_key(|c| c.pk);
            pk.iter().map(|c| c.name.clone()).collect()
        };
        let child: Option<Vec<String>> = fk
            .from
            .iter()
            .map(|n| {
                old.column(&hints.column_in_target(&dev.name, n))
                    .map(|c| c.name.clone())
            })
            .collect();
        let Some(child) = child else { continue };
        if parent_key.len() != child.len() || parent_key.is_empty() {
            continue;
        }
        let not_null: Vec<String> = child.iter().map(|c| format!("c.{} IS NOT NULL", quote(c))).collect();
        let joins: Vec<String> = child
            .iter()
            .zip(&parent_key)
            .map(|(c, p)| format!("p.{} = c.{}", quote(p), quote(c)))
            .collect();
        let condition = format!(
            "{} AND NOT EXISTS (SELECT 1 FROM {} p WHERE {})",
            not_null.join(" AND "),
            quote(&parent.name),
            joins.join(" AND ")
        );
        let n = count(format!("SELECT count(*) FROM {t} c WHERE {condition}"))?;
        if n > 0 {
            out.push(Impact {
                table: dev.name.clone(),
                column: Some(child.join(", ")),
                constraint: Some(format!("FOREIGN KEY ({}) REFERENCES {}", child.join(", "), fk.table)),
                kind: ImpactKind::Violation,
                reason: "new foreign key: these rows point at no parent row".to_owned(),
                rows: n,
                examples: Vec::new(),
                skip_condition: (!old.without_rowid)
                    .then(|| format!("rowid IN (SELECT c.rowid FROM {t} c WHERE {condition})")),
                unskippable: None,
            });
        }
    }
    // A new INTEGER PRIMARY KEY (the rowid) takes integers only.
    if let Some(alias) = rowid_alias(dev) {
        let source = old.column(&hints.column_in_target(&dev.name, alias));
        if let (Some(o), false) = (source, rowid_alias(old).is_some_and(|a| a.eq_ignore_ascii_case(alias))) {
            let col = quote(&o.name);
            let condition = format!(
                "{col} IS NOT NULL AND NOT (typeof({col}) = 'integer' OR (typeof({col}) IN ('text', 'real') AND CAST({col} AS INTEGER) = {col}))"
            );
            let n = count(format!("SELECT count(*) FROM {t} WHERE {condition}"))?;
            if n > 0 {
                out.push(Impact {
                    table: dev.name.clone(),
                    column: Some(alias.to_owned()),
                    constraint: Some("INTEGER PRIMARY KEY".to_owned()),
                    kind: ImpactKind::Violation,
                    reason: "now the INTEGER PRIMARY KEY (the rowid): these values are not integers".to_owned(),
                    rows: n,
                    examples: examples(conn, old, &condition)?,
                    skip_condition: Some(condition.clone()),
                    unskippable: None,
                });
            }
            // Integer values that repeat: the rowid holds each once.
            let integral = format!("{col} IS NOT NULL AND NOT ({condition})");
            let repeats = format!(
                "{integral} AND rowid NOT IN (SELECT min(rowid) FROM {t} WHERE {integral} GROUP BY CAST({col} AS INTEGER))"
            );
            let n = if old.without_rowid {
                count(format!(
                    "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM {t} WHERE {integral} GROUP BY CAST({col} AS INTEGER) HAVING count(*) > 1)"
                ))?
            } else {
                count(format!("SELECT count(*) FROM {t} WHERE {repeats}"))?
            };
            if n > 0 {
                out.push(Impact {
                    table: dev.name.clone(),
                    column: Some(alias.to_owned()),
                    constraint: Some("INTEGER PRIMARY KEY".to_owned()),
                    kind: ImpactKind::Violation,
                    reason: "now the INTEGER PRIMARY KEY (the rowid): these rows repeat an earlier row's value (the first, lowest rowid, stays)".to_owned(),
                    rows: n,
                    examples: if old.without_rowid { Vec::new() } else { examples(conn, old, &repeats)? },
                    skip_condition: (!old.without_rowid).then_some(repeats),
                    unskippable: None,
                });
            }
        }
    }
    if dev.strict && !old.strict {
        for c in &dev.columns {
            let Some(o) = old.column(&hints.column_in_target(&dev.name, &c.name)) else {
                continue;
            };
            let allowed = match affinity(&c.decl_type) {
                "INTEGER" => "'integer'",
                "REAL" => "'integer', 'real'",
                "TEXT" => "'text'",
                _ => continue, // ANY or BLOB accept everything
            };
            let condition = format!(
                "{col} IS NOT NULL AND typeof({col}) NOT IN ({allowed}) AND NOT (typeof({col}) IN ('text', 'integer', 'real') AND typeof(CAST({col} AS {ty})) IN ({allowed}) AND CAST(CAST({col} AS {ty}) AS TEXT) = CAST({col} AS TEXT))",
                col = quote(&o.name),
                ty = affinity(&c.decl_type),
            );
            let n = count(format!("SELECT count(*) FROM {t} WHERE {condition}"))?;
            if n > 0 {
                out.push(Impact {
                    table: dev.name.clone(),
                    column: Some(c.name.clone()),
                    constraint: Some(format!("STRICT {}", c.decl_type)),
                    kind: ImpactKind::Violation,
                    reason: "STRICT table: these values cannot be stored as the declared type".to_owned(),
                    rows: n,
                    examples: examples(conn, old, &condition)?,
                    skip_condition: Some(condition),
                    unskippable: None,
                });
            }
        }
    }
    Ok(())
}
