//! What a plan shows of the rules, read from PROD (or its copy) without
//! writing anything: one masked example per masked column (never an
//! original), the rows the subset keeps per table, the masked values that
//! would break a constraint of the result's table, and the columns that
//! look like personal data but have no rule.

use rusqlite::types::Value;
use rusqlite::Connection;

use crate::build::register_mask;
use crate::key::Key;
use crate::rules::{Rule, Rules};
use crate::scan::{self, Finding};
use crate::schema::{self, quote, TableKind};
use crate::subset::{self, TableSubset};

/// One masked column with an example of its masked values.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Example {
    pub table: String,
    pub column: String,
    pub rule: String,
    /// A masked value (`NULL` where the column has no value to mask), or
    /// `None` where it could not be computed (see `note`).
    pub example: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Masked rows of one table that break one of its constraints.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Break {
    pub table: String,
    pub rows: usize,
    /// SQLite's message for the first such row (the constraint).
    pub message: String,
    /// The table's rules, as the rules file writes them.
    pub rules: Vec<String>,
}

impl Break {
    /// The error `run` stops with for these rows.
    pub fn error(&self) -> crate::Error {
        crate::Error::Constraint {
            table: self.table.clone(),
            rules: self.rules.clone(),
            message: format!("{} masked rows: {}", self.rows, self.message),
        }
    }
}

/// What the rules would do, counted on PROD.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Preview {
    pub masked: Vec<Example>,
    /// Per table: PROD's rows and the rows the subset keeps.
    pub subset: Vec<TableSubset>,
    /// Masked values that break a constraint of the result's table, per
    /// table: what `run` would refuse.
    pub breaks: Vec<Break>,
    /// Columns of the result that look like personal data and have no rule.
    pub unruled: Vec<Finding>,
    /// What could not be counted, and why.
    pub not_counted: Vec<String>,
    pub warnings: Vec<String>,
}

fn shown(v: Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => f.to_string(),
        Value::Text(s) => s,
        Value::Blob(b) => format!("<{} bytes>", b.len()),
    }
}

/// Previews `rules` on database `main` of `data` (PROD or its copy, names
/// already in DEV's words where a table keeps its name), with `result`
/// the result's schema (DEV) for the constraints and the unruled columns.
/// `exempt`: tables whose rows are DEV's. `masked_already`: `data` is a
/// copy masked and subset on PROD's host (its values are shown as they
/// are, and its subset is the caller's to report).
pub fn preview(
    data: &Connection,
    result: &Connection,
    rules: &Rules,
    key: &Key,
    exempt: &[String],
    masked_already: bool,
) -> Preview {
    let mut p = Preview {
        masked: Vec::new(),
        subset: Vec::new(),
        breaks: Vec::new(),
        unruled: Vec::new(),
        not_counted: Vec::new(),
        warnings: Vec::new(),
    };
    let data_tables = match schema::tables(data, "main") {
        Ok(t) => t,
        Err(e) => {
            p.not_counted.push(format!("PROD's schema: {}", crate::message(&e)));
            return p;
        }
    };
    let result_tables = schema::tables(result, "main").unwrap_or_default();
    if let Err(e) = register_mask(data, rules, key) {
        p.not_counted.push(format!("masking: {}", crate::message(&e)));
    }
    for (i, m) in rules.masks.iter().enumerate() {
        let expr = match &m.rule {
            _ if masked_already => quote(&m.column),
            Rule::Sql(expr) => format!("({expr})"),
            Rule::Null => "NULL".into(),
            _ => format!("refresh_mask({i}, {})", quote(&m.column)),
        };
        let sql = format!(
            "SELECT {expr} FROM main.{t} WHERE {c} IS NOT NULL LIMIT 1",
            t = quote(&m.table),
            c = quote(&m.column)
        );
        let (example, note) = match data.query_row(&sql, [], |r| r.get::<_, Value>(0)) {
            Ok(v) => (Some(shown(v)), None),
            Err(rusqlite::Error::QueryReturnedNoRows) => (None, Some("no value in PROD to mask".to_owned())),
            Err(e) => (None, Some(format!("not computed on PROD: {}", crate::message(&e)))),
        };
        p.masked.push(Example {
            table: m.table.clone(),
            column: m.column.clone(),
            rule: m.rule.describe(),
            example,
            note,
        });
    }
    // The constraints of the result's table, tried on the masked rows in a
    // scratch database in memory (one batch at a time, never kept).
    // Values masked on PROD's host already cannot be tried against their originals.
    for t in result_tables
        .iter()
        .filter(|t| t.kind == TableKind::Ordinary && !masked_already)
    {
        if !rules.masks.iter().any(|m| m.table.eq_ignore_ascii_case(&t.name)) {
            continue;
        }
        let Some(d) = data_tables.iter().find(|d| d.name.eq_ignore_ascii_case(&t.name)) else {
            continue;
        };
        match breaking(data, t, d, rules) {
            Ok(Some(line)) => p.breaks.push(line),
            Ok(None) => {}
            Err(e) => p
                .not_counted
                .push(format!("{}: the masked values' constraints: {e}", t.name)),
        }
    }
    if !rules.subsets.is_empty() && !masked_already {
        match subset::select(data, "main", &data_tables, rules, exempt) {
            Ok(s) => p.subset = s.tables,
            Err(e) => p.not_counted.push(format!("the subset: {}", crate::message(&e))),
        }
    }
    p.warnings.extend(rules.unused_filters(exempt));
    p.unruled = scan::by_name(&result_tables)
        .into_iter()
        .filter(|f| rules.mask_of(&f.table, &f.column).is_none())
        .collect();
    p
}

/// How many of the rows of `d` (read from `data`) a masked value makes
/// break one of the result's constraints on its table `t` (DEV's), and the
/// first message: each row is tried as it is and masked, in two scratch
/// databases in memory (`INSERT OR IGNORE`, one batch at a time), and
/// counts where it goes in as it is but not masked. What the migration
/// itself breaks is the migration's to report, not this. Columns the
/// result adds take their defaults.
fn breaking(data: &Connection, t: &schema::Table, d: &schema::Table, rules: &Rules) -> Result<Option<Break>, String> {
    let sql = t.sql.as_deref().ok_or("no CREATE text")?;
    let scratch = || -> Result<Connection, String> {
        let c = Connection::open_in_memory().map_err(|e| e.to_string())?;
        // Foreign keys are the subset's business, not the masking's.
        c.execute_batch(&format!("PRAGMA foreign_keys = OFF; {sql}"))
            .map_err(|e| e.to_string())?;
        Ok(c)
    };
    let (as_is, masked) = (scratch()?, scratch()?);
    let columns: Vec<&str> = t
        .columns
        .iter()
        .filter(|c| !c.generated && d.columns.iter().any(|dc| dc.name.eq_ignore_ascii_case(&c.name)))
        .map(|c| c.name.as_str())
        .collect();
    if columns.is_empty() {
        return Ok(None);
    }
    let plain: Vec<String> = columns.iter().map(|c| format!("c.{}", quote(c))).collect();
    let masked_exprs: Vec<String> = columns
        .iter()
        .map(|c| {
            match rules
                .masks
                .iter()
                .position(|m| m.table.eq_ignore_ascii_case(&d.name) && m.column.eq_ignore_ascii_case(c))
            {
                None => format!("c.{}", quote(c)),
                Some(i) => match &rules.masks[i].rule {
                    Rule::Sql(expr) => format!("({expr})"),
                    Rule::Null => "NULL".into(),
                    _ => format!("refresh_mask({i}, c.{})", quote(c)),
                },
            }
        })
        .collect();
    let mut st = data
        .prepare(&format!(
            "SELECT {}, {} FROM main.{} AS c",
            plain.join(", "),
            masked_exprs.join(", "),
            quote(&d.name)
        ))
        .map_err(|e| crate::message(&e))?;
    let n = columns.len();
    let marks: Vec<String> = (1..=n).map(|i| format!("?{i}")).collect();
    let into: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    let insert = |how: &str| {
        format!(
            "INSERT {how} INTO main.{} ({}) VALUES ({})",
            quote(&t.name),
            into.join(", "),
            marks.join(", ")
        )
    };
    let (lenient, strict) = (insert("OR IGNORE"), insert(""));
    let goes_in =
        |c: &Connection, row: &[Value]| matches!(c.execute(&lenient, rusqlite::params_from_iter(row.iter())), Ok(1));
    let (mut broken, mut tried) = (0usize, 0usize);
    let mut first: Option<String> = None;
    let mut rows = st.query([]).map_err(|e| crate::message(&e))?;
    while let Some(r) = rows.next().map_err(|e| crate::message(&e))? {
        let row = (0..2 * n)
            .map(|i| r.get::<_, Value>(i))
            .collect::<rusqlite::Result<Vec<Value>>>()
            .map_err(|e| crate::message(&e))?;
        let (row_as_is, row_masked) = row.split_at(n);
        if goes_in(&as_is, row_as_is) && !goes_in(&masked, row_masked) {
            broken += 1;
            if first.is_none() {
                if let Err(e) = masked.execute(&strict, rusqlite::params_from_iter(row_masked.iter())) {
                    first = Some(crate::message(&e));
                }
            }
        }
        tried += 1;
        // Memory stays flat: the scratch tables hold one batch at a time.
        if tried.is_multiple_of(1000) {
            for c in [&as_is, &masked] {
                c.execute_batch(&format!("DELETE FROM main.{}", quote(&t.name)))
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    if broken == 0 {
        return Ok(None);
    }
    Ok(Some(Break {
        table: t.name.clone(),
        rows: broken,
        message: first.unwrap_or_else(|| "a constraint".into()),
        rules: rules
            .masks
            .iter()
            .filter(|m| m.table.eq_ignore_ascii_case(&d.name))
            .map(|m| format!("\"{}.{}\" = {}", t.name, m.column, m.rule.describe()))
            .collect(),
    }))
}
