//! Masking and subsetting of a copy of PROD: bring only the rows you need,
//! with personal data replaced, and no original byte left behind.
//!
//! - [`Rules`]: the rules file (`[mask]` and `[subset]`), each entry with
//!   its line, checked against the result's schema ([`Rules::check`]).
//! - [`Key`]: the secret every masked value is derived from. A masked value
//!   depends only on the key, the rule and the input (deterministic, so
//!   joins on masked columns still match), and the realistic rules carry a
//!   keyed-hash token so distinct inputs stay distinct.
//! - [`subset`]: the rows each table keeps, closed over foreign keys.
//! - [`build()`]: copies the kept rows, masked, into a **fresh file**: no page
//!   of the result ever held an original value.
//! - [`preview()`]: what a plan shows (examples, kept counts, constraints the
//!   masked values break, unruled columns), read-only.
//! - [`scan`]: likely personal data, by column name and sampled values.
//!
//! What it does not do: open PROD itself for writing (it reads a copy, or
//! reads PROD read-only for a preview), or decide where files go (the
//! caller names the source and the new file; `sqlite-file` names them).

pub mod build;
pub mod key;
pub mod preview;
pub mod rules;
pub mod scan;
pub mod schema;
pub mod subset;

use std::path::{Path, PathBuf};

pub use build::{build, schema_image, Build, Built, Job, MaskedColumn};
pub use key::Key;
pub use preview::{preview, Break, Example, Preview};
pub use rules::{Filter, Rule, Rules};

/// Why rules could not be read or applied. Every variant names its file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The rules file is not valid (its line, when known).
    #[error("{}: {}{why}", path.display(), line.map(|l| format!("line {l}: ")).unwrap_or_default())]
    Rules {
        path: PathBuf,
        line: Option<usize>,
        why: String,
    },
    #[error("{}: masking key: {why}", path.display())]
    Key { path: PathBuf, why: String },
    /// Masked values break a constraint of the result: nothing is kept.
    #[error("{table}: the masked rows break a constraint ({message}); rules: {}; write a {{ sql = \"…\" }} rule that keeps it", rules.join(", "))]
    Constraint {
        table: String,
        rules: Vec<String>,
        message: String,
    },
    /// A file error every tool shares: an I/O or SQLite failure, a full disk.
    #[error(transparent)]
    File(#[from] sqlite_file::FileError),
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    pub(crate) fn rules(path: &Path, line: usize, why: &str) -> Error {
        Error::Rules {
            path: path.to_owned(),
            line: (line > 0).then_some(line),
            why: why.to_owned(),
        }
    }

    pub(crate) fn sqlite(path: &Path, action: &'static str, source: rusqlite::Error) -> Error {
        Error::File(sqlite_file::FileError::sqlite(path, action, source))
    }

    pub(crate) fn io(path: &Path, action: &'static str, source: std::io::Error) -> Error {
        Error::File(sqlite_file::FileError::io(path, action, source))
    }

    /// A stable code for `--json`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Rules { .. } => "bad_rules",
            Error::Key { .. } => "bad_mask_key",
            Error::Constraint { .. } => "masked_values_break_constraint",
            Error::File(e) => e.code(),
            Error::Interrupted => "interrupted",
        }
    }
}

/// SQLite's own message for `e`, without rusqlite's wrapping.
pub(crate) fn message(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(_, Some(m)) => m.clone(),
        rusqlite::Error::SqlInputError { msg, .. } => msg.clone(),
        other => other.to_string(),
    }
}
