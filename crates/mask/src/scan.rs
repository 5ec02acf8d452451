//! Finding likely personal data: by column name, and by the shape of
//! sampled values (emails, phone numbers, Luhn-valid card numbers, IBANs,
//! IP addresses). What it finds becomes a starting rules file.

use std::fmt::Write;

use rusqlite::types::ValueRef;
use rusqlite::Connection;

use crate::rules::Rule;
use crate::schema::{quote, Table, TableKind};

/// A column that looks like personal data.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Finding {
    pub table: String,
    pub column: String,
    /// What it looks like (`email`, `card`, …).
    pub kind: String,
    /// Why: its name, or how many sampled values have the shape.
    pub why: String,
    /// The rule a starting rules file gives it.
    #[serde(skip, default = "redact")]
    pub rule: Rule,
}

fn redact() -> Rule {
    Rule::Redact
}

/// The column name's words (`customerEmail` → `customer`, `email`).
fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if !c.is_alphanumeric() {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        word.extend(c.to_lowercase());
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

const PEOPLE: &[&str] = &[
    "customer",
    "customers",
    "user",
    "users",
    "person",
    "people",
    "persons",
    "employee",
    "employees",
    "contact",
    "contacts",
    "member",
    "members",
    "account",
    "accounts",
    "patient",
    "patients",
    "student",
    "students",
    "client",
    "clients",
    "author",
    "authors",
    "staff",
];

/// What a column's name says it holds, and the rule to start from.
fn by_column_name(table: &str, column: &str) -> Option<(&'static str, Rule)> {
    let w = words(column);
    let has = |s: &str| w.iter().any(|x| x == s);
    let joined = w.join("_");
    if has("email") || has("mail") || joined.contains("e_mail") {
        return Some(("email", Rule::Email));
    }
    if has("phone") || has("mobile") || has("telephone") || has("tel") || has("fax") || has("cell") {
        return Some(("phone", Rule::Phone));
    }
    if joined.contains("first_name") || has("firstname") || has("fname") || joined.contains("given_name") {
        return Some(("name", Rule::FirstName));
    }
    if joined.contains("last_name")
        || has("lastname")
        || has("surname")
        || has("lname")
        || joined.contains("family_name")
    {
        return Some(("name", Rule::LastName));
    }
    if joined.contains("full_name")
        || has("fullname")
        || joined.contains("contact_name")
        || joined.contains("customer_name")
    {
        return Some(("name", Rule::Name));
    }
    if joined == "name" && PEOPLE.iter().any(|p| words(table).iter().any(|t| t == p)) {
        return Some(("name", Rule::Name));
    }
    if has("address") || has("addr") || has("street") || has("zip") || has("postcode") || joined.contains("postal_code")
    {
        return Some(("address", Rule::Redact));
    }
    if has("birth") || has("dob") || has("birthday") || has("birthdate") {
        return Some(("birth date", Rule::Redact));
    }
    if has("ssn")
        || joined.contains("social_security")
        || joined.contains("national_id")
        || joined.contains("tax_id")
        || has("passport")
    {
        return Some(("national id", Rule::Hash));
    }
    if has("iban") {
        return Some(("iban", Rule::KeepLast(4)));
    }
    if has("card") || has("cc") || joined.contains("credit_card") || has("pan") {
        return Some(("card", Rule::KeepLast(4)));
    }
    if has("ip") || has("ipaddr") || joined.contains("ip_address") {
        return Some(("ip address", Rule::Hash));
    }
    None
}

/// Columns of `tables` whose names look like personal data.
pub fn by_name(tables: &[Table]) -> Vec<Finding> {
    let mut out = Vec::new();
    for t in tables.iter().filter(|t| t.kind == TableKind::Ordinary) {
        for c in t.columns.iter().filter(|c| !c.generated) {
            if let Some((kind, rule)) = by_column_name(&t.name, &c.name) {
                out.push(Finding {
                    table: t.name.clone(),
                    column: c.name.clone(),
                    kind: kind.into(),
                    why: "its name".into(),
                    rule,
                });
            }
        }
    }
    out
}

fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !local.contains(char::is_whitespace)
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain.chars().all(|c| c.is_alphanumeric() || c == '.' || c == '-')
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

fn is_card(s: &str) -> bool {
    if !s.chars().all(|c| c.is_ascii_digit() || c == ' ' || c == '-') {
        return false;
    }
    let d = digits(s);
    if !(13..=19).contains(&d.len()) {
        return false;
    }
    let sum: u32 = d
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let n = u32::from(b - b'0');
            if i % 2 == 1 {
                let x = n * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                n
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn is_phone(s: &str) -> bool {
    let t = s.trim();
    if !t.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c)) {
        return false;
    }
    let d = digits(t);
    // A date (2026-10-01) or a time has the same characters: not a phone.
    let date_like = t.len() >= 8 && t.as_bytes()[4] == b'-' && t[..4].chars().all(|c| c.is_ascii_digit());
    (9..=15).contains(&d.len()) && !date_like && (t.starts_with('+') || t.contains(['-', ' ', '(', '.']))
}

fn is_iban(s: &str) -> bool {
    let t: String = s
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    if !(15..=34).contains(&t.len()) || !t.chars().all(|c| c.is_ascii_alphanumeric()) {
        return false;
    }
    let b = t.as_bytes();
    if !(b[0].is_ascii_alphabetic() && b[1].is_ascii_alphabetic() && b[2].is_ascii_digit() && b[3].is_ascii_digit()) {
        return false;
    }
    let rearranged = format!("{}{}", &t[4..], &t[..4]);
    let mut rem: u32 = 0;
    for c in rearranged.chars() {
        let v = c.to_digit(36).unwrap_or(0);
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

fn is_ip(s: &str) -> bool {
    s.trim().parse::<std::net::IpAddr>().is_ok()
}

/// A kind of personal data, how to recognise a value of it, its rule.
type Shape = (&'static str, fn(&str) -> bool, Rule);

/// The shape sampled values have, if most of them have one.
fn by_values(values: &[String]) -> Option<(&'static str, Rule, usize)> {
    let checks: [Shape; 5] = [
        ("email", is_email, Rule::Email),
        ("card", is_card, Rule::KeepLast(4)),
        ("iban", is_iban, Rule::KeepLast(4)),
        ("ip address", is_ip, Rule::Hash),
        ("phone", is_phone, Rule::Phone),
    ];
    for (kind, check, rule) in checks {
        let n = values.iter().filter(|v| check(v)).count();
        if n >= 1 && n * 2 > values.len() {
            return Some((kind, rule, n));
        }
    }
    None
}

/// Finds likely personal data in database `db` of `conn`: by column name,
/// and by up to `sample` non-NULL values of each column.
pub fn scan(conn: &Connection, db: &str, tables: &[Table], sample: usize) -> rusqlite::Result<Vec<Finding>> {
    let named = by_name(tables);
    let mut out = Vec::new();
    for t in tables.iter().filter(|t| t.kind == TableKind::Ordinary) {
        for c in t.columns.iter().filter(|c| !c.generated) {
            if let Some(f) = named.iter().find(|f| f.table == t.name && f.column == c.name) {
                out.push(f.clone());
                continue;
            }
            let mut st = conn.prepare(&format!(
                "SELECT {col} FROM {db}.{t} WHERE {col} IS NOT NULL LIMIT {sample}",
                col = quote(&c.name),
                db = quote(db),
                t = quote(&t.name)
            ))?;
            let mut rows = st.query([])?;
            let mut values = Vec::new();
            while let Some(r) = rows.next()? {
                match r.get_ref(0)? {
                    ValueRef::Text(b) => values.push(String::from_utf8_lossy(b).into_owned()),
                    ValueRef::Integer(i) => values.push(i.to_string()),
                    _ => {}
                }
            }
            if let Some((kind, rule, n)) = by_values(&values) {
                out.push(Finding {
                    table: t.name.clone(),
                    column: c.name.clone(),
                    kind: kind.into(),
                    why: format!("{n} of {} sampled values look like {kind}s", values.len()),
                    rule,
                });
            }
        }
    }
    Ok(out)
}

/// A starting rules file for `findings`, with a comment saying why each
/// rule is there.
pub fn starting_rules(findings: &[Finding], source: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Starting rules for {source}, written by `refresh-dev scan`.");
    let _ = writeln!(out, "# Review each rule: a column not listed here is copied as it is.");
    let _ = writeln!(out, "[mask]");
    for f in findings {
        let _ = writeln!(
            out,
            "{:<40} = {:<24} # {}: {}",
            format!("\"{}.{}\"", f.table.replace('"', "\\\""), f.column.replace('"', "\\\"")),
            match &f.rule {
                Rule::KeepLast(n) => format!("{{ keep_last = {n} }}"),
                other => format!("\"{}\"", other.describe()),
            },
            f.kind,
            f.why
        );
    }
    let _ = writeln!(
        out,
        "\n[subset]\n# orders = \"placed_at >= '2026-01-01'\"   # a WHERE over the table"
    );
    let _ = writeln!(out, "# events = {{ percent = 5 }}                 # a stable sample");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert!(is_email("ann@example.com"));
        assert!(!is_email("not an email"));
        assert!(is_card("4111 1111 1111 1111"));
        assert!(!is_card("4111 1111 1111 1112"));
        assert!(is_iban("DE89 3704 0044 0532 0130 00"));
        assert!(!is_iban("DE89 3704 0044 0532 0130 01"));
        assert!(is_ip("192.168.1.20") && is_ip("::1"));
        assert!(is_phone("+1 (555) 010-9999") && !is_phone("12345"));
        assert!(!is_phone("2026-10-01") && !is_phone("2026-10-01 12:30:00"));
        assert_eq!(words("customerEmail"), ["customer", "email"]);
        assert!(by_column_name("customers", "name").is_some());
        assert!(by_column_name("products", "name").is_none());
    }
}
