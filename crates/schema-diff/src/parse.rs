//! What sqlparser reads from stored CREATE text, for comparing only.
//!
//! The AST is never printed back as DDL: that changes meaning (hex literals
//! become blobs, `x ISNULL` breaks, type names change case). Expressions are
//! printed only to compare two of them. Where sqlparser cannot read a
//! statement, [`normalize`] gives a whitespace-, case- and quote-insensitive
//! text to compare instead, and the object is marked as compared by text.

use std::collections::BTreeMap;

use sqlparser::ast::{ColumnOption, Statement, TableConstraint};
use sqlparser::dialect::SQLiteDialect;
use sqlparser::parser::Parser;

/// The parts of a CREATE TABLE that PRAGMAs do not show.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableDetails {
    /// CHECK constraints as printed expressions (column-level ones as `col: expr`), sorted.
    pub checks: Vec<String>,
    /// Column collations by lower-cased column name.
    pub collations: BTreeMap<String, String>,
    /// Generated columns' expressions by lower-cased column name.
    pub generated: BTreeMap<String, String>,
    pub autoincrement: bool,
}

fn parse(sql: &str) -> Option<Vec<Statement>> {
    Parser::parse_sql(&SQLiteDialect {}, sql).ok()
}

/// Whether sqlparser can read `sql`.
pub fn parses(sql: &str) -> bool {
    parse(sql).is_some_and(|s| s.len() == 1)
}

/// Reads the details of a CREATE TABLE; `None` where sqlparser cannot.
pub fn parse_table(sql: &str) -> Option<TableDetails> {
    let statements = parse(sql)?;
    let [Statement::CreateTable(table)] = statements.as_slice() else {
        return None;
    };
    let mut details = TableDetails::default();
    for column in &table.columns {
        let name = column.name.value.to_ascii_lowercase();
        for option in &column.options {
            match &option.option {
                ColumnOption::Check(expr) => details.checks.push(format!("{name}: {}", normalize(&expr.to_string()))),
                ColumnOption::Collation(collation) => {
                    details.collations.insert(
                        name.clone(),
                        collation.to_string().trim_matches('"').to_ascii_lowercase(),
                    );
                }
                ColumnOption::Generated {
                    generation_expr: Some(expr),
                    ..
                } => {
                    details.generated.insert(name.clone(), normalize(&expr.to_string()));
                }
                ColumnOption::DialectSpecific(tokens)
                    if tokens
                        .iter()
                        .any(|t| t.to_string().eq_ignore_ascii_case("AUTOINCREMENT")) =>
                {
                    details.autoincrement = true;
                }
                _ => {}
            }
        }
    }
    for constraint in &table.constraints {
        if let TableConstraint::Check(check) = constraint {
            details.checks.push(normalize(&check.expr.to_string()));
        }
    }
    if normalize(sql).contains("autoincrement") {
        details.autoincrement = true;
    }
    details.checks.sort();
    Some(details)
}

/// A text to compare SQL by: comments dropped, white space collapsed,
/// letters lower-cased outside string literals, simple identifiers unquoted.
pub fn normalize(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let chars: Vec<char> = sql.chars().collect();
    let mut i = 0;
    let mut pending_space = false;
    let push = |out: &mut String, s: &str, pending: &mut bool| {
        let joins = |c: Option<char>| c.is_some_and(|c| "(),;=.".contains(c));
        if *pending && !out.is_empty() && !joins(out.chars().last()) && !joins(s.chars().next()) {
            out.push(' ');
        }
        *pending = false;
        out.push_str(s);
    };
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            pending_space = true;
            i += 1;
        } else if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            pending_space = true;
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i += 2;
            pending_space = true;
        } else if c == '\'' {
            let start = i;
            i += 1;
            while i < chars.len() {
                if chars[i] == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i += 1;
            let literal: String = chars[start..i.min(chars.len())].iter().collect();
            push(&mut out, &literal, &mut pending_space);
        } else if c == '"' || c == '`' || c == '[' {
            let close = if c == '[' { ']' } else { c };
            let mut ident = String::new();
            i += 1;
            while i < chars.len() {
                if chars[i] == close {
                    if close != ']' && chars.get(i + 1) == Some(&close) {
                        ident.push(close);
                        i += 2;
                        continue;
                    }
                    break;
                }
                ident.push(chars[i]);
                i += 1;
            }
            i += 1;
            let lower = ident.to_lowercase();
            let simple = lower
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && lower.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            let text = if simple {
                lower
            } else {
                format!("\"{}\"", lower.replace('"', "\"\""))
            };
            push(&mut out, &text, &mut pending_space);
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect::<String>().to_lowercase();
            push(&mut out, &word, &mut pending_space);
        } else {
            push(&mut out, &c.to_string(), &mut pending_space);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_ignores_space_case_comments_and_simple_quotes() {
        assert_eq!(
            normalize("CREATE TABLE \"T\" ( a INT , -- note\n b /* x */ TEXT DEFAULT 'Hi' )"),
            normalize("create table t(A int,b text default 'Hi')")
        );
        assert_ne!(normalize("CHECK (x = 'A')"), normalize("CHECK (x = 'a')"));
        assert_ne!(normalize("\"a b\""), normalize("a b"));
    }

    #[test]
    fn reads_what_pragmas_do_not_show() {
        let d = parse_table(
            "CREATE TABLE t(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT COLLATE NOCASE CHECK (length(name) > 0), \
             total INT GENERATED ALWAYS AS (id * 2) STORED, CHECK (id > 0))",
        )
        .expect("parses");
        assert!(d.autoincrement);
        assert_eq!(d.collations.get("name").map(String::as_str), Some("nocase"));
        assert_eq!(d.checks.len(), 2);
        assert!(d.generated.contains_key("total"));
    }

    #[test]
    fn what_sqlparser_cannot_read_is_none_not_an_error() {
        assert!(
            parse_table("CREATE TABLE t(a UNSIGNED BIG INT)").is_none() || parses("CREATE TABLE t(a UNSIGNED BIG INT)")
        );
        assert!(parse_table("CREATE TABLE t(a, b, PRIMARY KEY(a) ON CONFLICT REPLACE)").is_none());
    }
}
