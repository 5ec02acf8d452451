//! Virtual tables: external-content FTS tables and their columns.

use super::*;

/// The `content=` option of an FTS4/FTS5 table: `Some("")` for contentless,
/// `None` when the table keeps its own content.
pub(super) fn external_content(sql: &str) -> Option<String> {
    let n = crate::parse::normalize(sql);
    if !n.contains("using fts") {
        return None;
    }
    let at = n.find("content=")?;
    if n[..at].ends_with('_') {
        return None; // content_rowid=
    }
    let rest = &n[at + "content=".len()..];
    let value: String = if let Some(r) = rest.strip_prefix('\'') {
        r.split('\'').next().unwrap_or_default().to_owned()
    } else {
        rest.split([',', ')', ' '])
            .next()
            .unwrap_or_default()
            .trim_matches('"')
            .to_owned()
    };
    Some(value)
}

pub(super) fn vtab_columns(conn: &Connection, name: &str) -> Result<Vec<String>, Error> {
    let mut stmt = conn
        .prepare("SELECT name FROM pragma_table_info(?1)")
        .map_err(|e| Error::Internal(e.to_string()))?;
    let rows = stmt
        .query_map([name], |r| r.get::<_, String>(0))
        .map_err(|e| Error::Internal(e.to_string()))?;
    rows.collect::<rusqlite::Result<_>>()
        .map_err(|e| Error::Internal(e.to_string()))
}
