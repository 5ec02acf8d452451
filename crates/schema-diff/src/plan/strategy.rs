//! The strategy for one table: a text-only change, `ALTER TABLE` steps or
//! the 12-step rebuild. Pure: it reads the two catalogs and the diff, never
//! a row.

use super::*;
use crate::diff::Detail;

/// Chooses between a text-only change, ALTER steps and a rebuild, reading
/// the typed differences only.
pub(super) fn choose(dev: &Table, old: &Table, change: &Change, target: &Catalog, hints: &Hints) -> Strategy {
    let mut blockers: Vec<Loosening> = Vec::new();
    let mut loosenings: Vec<Loosening> = Vec::new();
    for detail in &change.details {
        let part = Loosening {
            column: None,
            detail: detail.clone(),
        };
        if detail.loosens() {
            loosenings.push(part);
        } else {
            blockers.push(part);
        }
    }
    let (mut adds, mut drops, mut renamed) = (Vec::new(), Vec::new(), Vec::new());
    for column in &change.columns {
        match column.change {
            ChangeKind::Added => adds.push(column.column.clone()),
            ChangeKind::Removed => drops.push(column.column.clone()),
            _ => {
                for d in &column.details {
                    let part = Loosening {
                        column: Some(column.column.clone()),
                        detail: d.clone(),
                    };
                    match d {
                        Detail::RenamedFrom(from) => renamed.push((from.clone(), column.column.clone())),
                        d if d.loosens() => loosenings.push(part),
                        _ => blockers.push(part),
                    }
                }
            }
        }
    }
    if !blockers.is_empty() {
        return Strategy::Rebuild(Reason::Changed(blockers));
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
        return Strategy::Rebuild(Reason::ColumnOrder);
    }
    let mut steps = Vec::new();
    for (from, to) in renamed {
        steps.push(AlterStep::RenameColumn { from, to });
    }
    for name in drops {
        if let Err(why) = droppable(old, &name, target) {
            return Strategy::Rebuild(Reason::CannotDrop { column: name, why });
        }
        steps.push(AlterStep::DropColumn(name));
    }
    for name in adds {
        if let Err(why) = addable(dev, &name) {
            return Strategy::Rebuild(Reason::CannotAdd { column: name, why });
        }
        steps.push(AlterStep::AddColumn(name));
    }
    if steps.is_empty() {
        return Strategy::TextOnly(Some(loosenings));
    }
    steps.extend(loosenings.into_iter().map(AlterStep::TextOnly));
    Strategy::Alter(steps)
}

/// `ALTER TABLE … ADD COLUMN`'s rules (sqlite.org/lang_altertable.html).
pub(super) fn addable(dev: &Table, name: &str) -> Result<(), &'static str> {
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
    if c.hidden == crate::catalog::Hidden::Stored {
        return Err("a STORED generated column");
    }
    let default = c.default.as_deref().unwrap_or("NULL");
    let upper = default.to_ascii_uppercase();
    if upper.starts_with('(') || upper.starts_with("CURRENT_") {
        return Err("its default is not a constant");
    }
    if c.not_null && upper == "NULL" && !c.hidden.is_generated() {
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
pub(super) fn droppable(old: &Table, name: &str, target: &Catalog) -> Result<(), &'static str> {
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
        if d.checks.iter().any(|ch| mentions(&ch.to_string())) || d.generated.values().any(|g| mentions(g)) {
            return Err("used by a CHECK or a generated column");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn catalog(sql: &str) -> Catalog {
        let conn = Connection::open_in_memory().expect("memory");
        conn.execute_batch(sql).expect(sql);
        Catalog::read(&conn, "rollback").expect("catalog")
    }

    /// The strategy for table `t`, TARGET's `target` made DEV's `dev`, and its reasons in words.
    fn strategy(target: &str, dev: &str, hints: &Hints) -> (StrategyKind, Vec<String>) {
        let (dev, target) = (catalog(dev), catalog(target));
        let diff = crate::diff::diff(&dev, &target, hints);
        let old = target.table(&hints.table_in_target("t")).expect("t in TARGET");
        let chosen = match diff
            .changes
            .iter()
            .find(|c| c.object == Kind::Table && key(&c.name) == "t")
        {
            None => Strategy::Unchanged,
            Some(c) if c.change == ChangeKind::TextOnly => Strategy::TextOnly(None),
            Some(c) => choose(dev.table("t").expect("t in DEV"), old, c, &target, hints),
        };
        (chosen.kind(), chosen.reasons())
    }

    #[test]
    fn each_schema_pair_gets_its_strategy_and_steps() {
        use StrategyKind::*;
        // (TARGET's t, DEV's t, a column rename hint, strategy, steps that must be among its reasons)
        type Row<'a> = (&'a str, &'a str, Option<&'a str>, StrategyKind, &'a [&'a str]);
        let rows: &[Row] = &[
            ("CREATE TABLE t(a)", "CREATE TABLE t(a)", None, Unchanged, &[]),
            ("CREATE TABLE t(a,   b)", "CREATE TABLE t(a, b)", None, TextOnly, &[]),
            (
                "CREATE TABLE t(a)",
                "CREATE TABLE t(a, b)",
                None,
                Alter,
                &["ADD COLUMN \"b\""],
            ),
            (
                "CREATE TABLE t(a, b)",
                "CREATE TABLE t(a)",
                None,
                Alter,
                &["DROP COLUMN \"b\""],
            ),
            (
                "CREATE TABLE t(a, \"x\"\"y\")",
                "CREATE TABLE t(a)",
                None,
                Alter,
                &["DROP COLUMN \"x\"\"y\""],
            ),
            (
                "CREATE TABLE t(a, old)",
                "CREATE TABLE t(a, new)",
                Some("t.old=new"),
                Alter,
                &["RENAME COLUMN \"old\" TO \"new\""],
            ),
            (
                "CREATE TABLE t(a, b CHECK (b > 0))",
                "CREATE TABLE t(a, b)",
                None,
                TextOnly,
                &["CHECK b: check(b > 0) dropped"],
            ),
            (
                "CREATE TABLE t(a NOT NULL, b)",
                "CREATE TABLE t(a, b)",
                None,
                TextOnly,
                &["a: NOT NULL dropped"],
            ),
            (
                "CREATE TABLE t(a, b DEFAULT 1)",
                "CREATE TABLE t(a, b DEFAULT 2)",
                None,
                TextOnly,
                &["b: default 1 -> 2"],
            ),
            (
                "CREATE TABLE t(a INT, b)",
                "CREATE TABLE t(a TEXT, b)",
                None,
                Rebuild,
                &["a: type INT -> TEXT"],
            ),
            (
                "CREATE TABLE t(a, b)",
                "CREATE TABLE t(a, b CHECK (b > 0))",
                None,
                Rebuild,
                &["new CHECK b: check(b > 0)"],
            ),
            (
                "CREATE TABLE t(a, b)",
                "CREATE TABLE t(a NOT NULL DEFAULT 1, b)",
                None,
                Rebuild,
                &["a: now NOT NULL"],
            ),
            (
                "CREATE TABLE t(a, b UNIQUE)",
                "CREATE TABLE t(a, b)",
                None,
                Rebuild,
                &["UNIQUE or PRIMARY KEY on (b/binary) dropped"],
            ),
            (
                "CREATE TABLE t(a, b)",
                "CREATE TABLE t(b, a)",
                None,
                Rebuild,
                &["definition changed"],
            ),
            (
                "CREATE TABLE t(a, b)",
                "CREATE TABLE t(a, b, c NOT NULL)",
                None,
                Rebuild,
                &["c cannot be added with ALTER TABLE: NOT NULL without a default"],
            ),
            (
                "CREATE TABLE t(a ANY, b ANY)",
                "CREATE TABLE t(a ANY, b ANY) STRICT",
                None,
                Rebuild,
                &["STRICT false -> true"],
            ),
        ];
        for (target, dev, hint, expected, steps) in rows {
            let mut hints = Hints::default();
            if let Some(h) = hint {
                hints.add_column(h).expect("hint");
            }
            let (got, reasons) = strategy(target, dev, &hints);
            assert_eq!(got, *expected, "{target} -> {dev}: {reasons:?}");
            for step in *steps {
                assert!(
                    reasons.iter().any(|r| r == step),
                    "{target} -> {dev}: {step} not in {reasons:?}"
                );
            }
        }
    }
}
