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

/// One CHECK constraint as sqlparser read it, for comparing only.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Check {
    /// The column it is declared on (lower-cased), `None` for a table constraint.
    pub column: Option<String>,
    /// The expression as sqlparser prints it, normalized: never applied.
    pub expr: String,
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.column {
            Some(c) => write!(f, "{c}: {}", self.expr),
            None => f.write_str(&self.expr),
        }
    }
}

/// The parts of a CREATE TABLE that PRAGMAs do not show.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableDetails {
    /// CHECK constraints, sorted.
    pub checks: Vec<Check>,
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
                ColumnOption::Check(expr) => details.checks.push(Check {
                    column: Some(name.clone()),
                    expr: normalize(&expr.to_string()),
                }),
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
            details.checks.push(Check {
                column: None,
                expr: normalize(&check.expr.to_string()),
            });
        }
    }
    if normalize(sql).contains("autoincrement") {
        details.autoincrement = true;
    }
    details.checks.sort();
    Some(details)
}

/// The CHECK constraints of a stored CREATE TABLE text, each as the exact
/// text between its parentheses (never re-printed), with the column it is
/// declared on (`None` for a table constraint).
pub fn check_constraints(sql: &str) -> Vec<(Option<String>, String)> {
    let chars: Vec<char> = sql.chars().collect();
    let items = items(&chars);
    let mut out = Vec::new();
    for (from, to) in items {
        let item = &chars[from..to];
        let column = first_name(item).filter(|first| {
            !["constraint", "primary", "unique", "check", "foreign"].contains(&first.to_ascii_lowercase().as_str())
        });
        for (from, to) in keyword_groups(item, "check") {
            out.push((column.clone(), item[from..to].iter().collect()));
        }
    }
    out
}

/// The top-level items of a CREATE TABLE body (column definitions and table
/// constraints) as ranges of `chars`, quotes and comments respected.
fn items(chars: &[char]) -> Vec<(usize, usize)> {
    let Some(open) = chars.iter().position(|&c| c == '(') else {
        return Vec::new();
    };
    let mut items: Vec<(usize, usize)> = Vec::new();
    let (mut depth, mut start, mut i) = (0i32, open + 1, open + 1);
    while i < chars.len() {
        if let Some(next) = skip_token(chars, i) {
            i = next;
            continue;
        }
        match chars[i] {
            '(' => {
                depth += 1;
                i += 1;
            }
            ')' if depth == 0 => {
                items.push((start, i));
                break;
            }
            ')' => {
                depth -= 1;
                i += 1;
            }
            ',' if depth == 0 => {
                items.push((start, i));
                start = i + 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    items
}

/// What a stored `CREATE [UNIQUE] INDEX … ON t (…) [WHERE …]` says, cut
/// verbatim out of its text (quotes and comments respected): each key item
/// without its `ASC`/`DESC` (its `COLLATE` kept), and the partial index's
/// condition. `None` where the text is not of that shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexParts {
    pub items: Vec<String>,
    pub condition: Option<String>,
}

pub fn index_parts(sql: &str) -> Option<IndexParts> {
    let chars: Vec<char> = sql.chars().collect();
    let mut i = 0;
    let open = loop {
        if i >= chars.len() {
            return None;
        }
        if let Some(next) = skip_token(&chars, i) {
            i = next;
            continue;
        }
        if chars[i] == '(' {
            break i;
        }
        i += 1;
    };
    let ranges = items(&chars[open..]);
    let close = open + ranges.last()?.1;
    let items: Vec<String> = ranges
        .iter()
        .map(|&(from, to)| strip_order(&chars[open + from..open + to]))
        .collect();
    if items.iter().any(String::is_empty) {
        return None;
    }
    let rest = &chars[close + 1..];
    let condition = keyword_at(rest, "where").map(|at| {
        let text: String = rest[at + 5..].iter().collect();
        text.trim().trim_end_matches(';').trim().to_owned()
    });
    Some(IndexParts { items, condition })
}

/// An index key item without a trailing `ASC` or `DESC`, trimmed.
fn strip_order(item: &[char]) -> String {
    let text: String = item.iter().collect();
    let trimmed = text.trim();
    let lower = trimmed.to_ascii_lowercase();
    for word in ["asc", "desc"] {
        if let Some(head) = lower.strip_suffix(word) {
            if head.ends_with(|c: char| c.is_whitespace() || c == ')' || c == '"' || c == ']' || c == '`') {
                return trimmed[..head.len()].trim().to_owned();
            }
        }
    }
    trimmed.to_owned()
}

/// Where the word `keyword` first stands in `chars` outside quotes and
/// comments, as a whole word.
fn keyword_at(chars: &[char], keyword: &str) -> Option<usize> {
    let word: Vec<char> = keyword.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if let Some(next) = skip_token(chars, i) {
            i = next;
            continue;
        }
        if word_at(chars, i, &word) {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Whether `word` stands at `chars[i..]` as a whole word, ignoring case.
fn word_at(chars: &[char], i: usize, word: &[char]) -> bool {
    chars.len() >= i + word.len()
        && chars[i..i + word.len()]
            .iter()
            .zip(word)
            .all(|(a, b)| a.eq_ignore_ascii_case(b))
        && (i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_'))
        && chars
            .get(i + word.len())
            .is_none_or(|c| !(c.is_alphanumeric() || *c == '_'))
}

/// The verbatim text of `column`'s definition in a stored CREATE TABLE
/// (for `ALTER TABLE … ADD COLUMN`), trimmed of white space and comments
/// around it.
pub fn column_definition(sql: &str, column: &str) -> Option<String> {
    let chars: Vec<char> = sql.chars().collect();
    items(&chars).into_iter().find_map(|(from, to)| {
        let item = &chars[from..to];
        let name = first_name(item)?;
        if !name.eq_ignore_ascii_case(column) {
            return None;
        }
        let text: String = item.iter().collect();
        let rest = skip_comments(text.trim());
        // A trailing `-- comment` would swallow whatever SQL follows it.
        let rest = match rest.rfind("--") {
            Some(at) if !rest[at..].contains('\n') && !rest[at..].contains('\'') => rest[..at].trim_end(),
            _ => rest,
        };
        Some(rest.to_owned())
    })
}

/// The verbatim expression of generated column `column` (the text inside
/// `AS ( … )`), from a stored CREATE TABLE.
pub fn generated_expression(sql: &str, column: &str) -> Option<String> {
    let def: Vec<char> = column_definition(sql, column)?.chars().collect();
    let (from, to) = *keyword_groups(&def, "as").first()?;
    Some(def[from..to].iter().collect())
}

/// The inner ranges of every `KEYWORD ( … )` in `chars` (the keyword matched
/// as a whole word, case-insensitively), quotes and comments respected.
fn keyword_groups(chars: &[char], keyword: &str) -> Vec<(usize, usize)> {
    let word: Vec<char> = keyword.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if let Some(next) = skip_token(chars, i) {
            i = next;
            continue;
        }
        if !word_at(chars, i, &word) {
            i += 1;
            continue;
        }
        let mut open = i + word.len();
        while open < chars.len() && chars[open].is_whitespace() {
            open += 1;
        }
        if chars.get(open) != Some(&'(') {
            i += word.len();
            continue;
        }
        let (mut depth, mut e) = (0, open);
        while e < chars.len() {
            if let Some(next) = skip_token(chars, e) {
                e = next;
                continue;
            }
            match chars[e] {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            e += 1;
        }
        if e >= chars.len() {
            break; // unclosed: not a group
        }
        out.push((open + 1, e));
        i = e + 1;
    }
    out
}

/// `text` from its first character that is not white space or inside a
/// leading comment (`-- …` to the line's end, `/* … */`).
fn skip_comments(text: &str) -> &str {
    let mut rest = text.trim_start();
    loop {
        if let Some(r) = rest.strip_prefix("--") {
            rest = r.split_once('\n').map_or("", |(_, r)| r).trim_start();
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map_or("", |(_, r)| r).trim_start();
        } else {
            break;
        }
    }
    rest
}

/// The first name of a definition item (a column's name, or a keyword),
/// unquoted, skipping leading white space and comments.
fn first_name(item: &[char]) -> Option<String> {
    let text: String = item.iter().collect();
    let rest = skip_comments(&text);
    let chars: Vec<char> = rest.chars().collect();
    match chars.first()? {
        '"' | '`' | '[' | '\'' => {
            let end = skip_quoted(&chars, 0);
            let inner: String = chars[1..end.saturating_sub(1)].iter().collect();
            let q = chars[0];
            Some(if q == '[' {
                inner
            } else {
                inner.replace(&format!("{q}{q}"), &q.to_string())
            })
        }
        _ => Some(
            chars
                .iter()
                .take_while(|c| c.is_alphanumeric() || **c == '_' || **c == '$')
                .collect(),
        ),
    }
}

/// Where a quoted token or a comment starting at `i` ends (just past it);
/// `None` when none starts there.
fn skip_token(chars: &[char], i: usize) -> Option<usize> {
    match chars[i] {
        '\'' | '"' | '`' | '[' => Some(skip_quoted(chars, i)),
        '-' if chars.get(i + 1) == Some(&'-') => Some(
            chars[i..]
                .iter()
                .position(|&c| c == '\n')
                .map_or(chars.len(), |n| i + n),
        ),
        '/' if chars.get(i + 1) == Some(&'*') => {
            let mut j = i + 2;
            while j + 1 < chars.len() && !(chars[j] == '*' && chars[j + 1] == '/') {
                j += 1;
            }
            Some((j + 2).min(chars.len()))
        }
        _ => None,
    }
}

/// The index just past the quoted token starting at `i`.
fn skip_quoted(chars: &[char], i: usize) -> usize {
    let close = if chars[i] == '[' { ']' } else { chars[i] };
    let mut j = i + 1;
    while j < chars.len() {
        if chars[j] == close {
            if close != ']' && chars.get(j + 1) == Some(&close) {
                j += 2;
                continue;
            }
            return j + 1;
        }
        j += 1;
    }
    j
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
    fn index_parts_are_cut_verbatim() {
        let p = index_parts("CREATE UNIQUE INDEX \"a (b\" ON t(lower(e) DESC, \"x y\" COLLATE NOCASE ASC) WHERE live = 1 AND note <> 'where'")
            .expect("parts");
        assert_eq!(p.items, ["lower(e)", "\"x y\" COLLATE NOCASE"]);
        assert_eq!(p.condition.as_deref(), Some("live = 1 AND note <> 'where'"));
        let p = index_parts("CREATE INDEX i ON t(descr)").expect("parts");
        assert_eq!((p.items, p.condition), (vec!["descr".to_owned()], None));
    }

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
    fn finds_check_constraints_verbatim() {
        let checks = check_constraints(
            "CREATE TABLE t(a INT CHECK (a > 0x1F), \"b c\" TEXT CHECK(\"b c\" <> ')'), -- CHECK (no)\n              CONSTRAINT ok CHECK (a ISNULL OR length(\"b c\") < 5), d DEFAULT 'check(x)')",
        );
        assert_eq!(
            checks,
            vec![
                (Some("a".to_owned()), "a > 0x1F".to_owned()),
                (Some("b c".to_owned()), "\"b c\" <> ')'".to_owned()),
                (None, "a ISNULL OR length(\"b c\") < 5".to_owned()),
            ]
        );
    }

    #[test]
    fn cuts_column_definitions_verbatim() {
        let sql =
            "CREATE TABLE t(\n  a INT, -- first\n  \"b c\" TEXT DEFAULT 'x,y' CHECK (length(\"b c\") > 0) -- note\n)";
        assert_eq!(column_definition(sql, "A").as_deref(), Some("a INT"));
        assert_eq!(
            column_definition(sql, "b c").as_deref(),
            Some("\"b c\" TEXT DEFAULT 'x,y' CHECK (length(\"b c\") > 0)")
        );
        assert_eq!(column_definition(sql, "nope"), None);
    }

    #[test]
    fn finds_generated_expressions_verbatim() {
        let sql = "CREATE TABLE t(a TEXT, \"as\" INT, b INT GENERATED ALWAYS AS (json_extract(a, '$.x') + 0x10) STORED, c AS (a || ')'))";
        assert_eq!(
            generated_expression(sql, "b").as_deref(),
            Some("json_extract(a, '$.x') + 0x10")
        );
        assert_eq!(generated_expression(sql, "c").as_deref(), Some("a || ')'"));
        assert_eq!(generated_expression(sql, "as"), None);
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
