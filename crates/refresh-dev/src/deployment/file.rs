//! Deployment files: the TOML format (unknown keys are errors) and its
//! reading into a [`Deployment`], every mistake named with its line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use schema_diff::apply::OnViolation;
use schema_diff::Hints;
use serde::Deserialize;

use super::*;

impl Deployment {
    /// Reads and validates a deployment file. Paths resolve relative to it.
    pub fn from_file(path: &Path) -> Result<Deployment, Error> {
        let bad = |why: String| Error::BadDeployment {
            path: path.to_owned(),
            why,
        };
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => return Err(Error::File(FileError::IsDirectory(path.to_owned()))),
            // A FIFO or device would block or never end: not a deployment file.
            Ok(m) if !m.is_file() => {
                return Err(bad(format!(
                    "is {}, not a regular file",
                    sqlite_file::sidefile::kind_of(&m.file_type())
                )))
            }
            _ => {}
        }
        let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::File(FileError::Missing(path.to_owned())),
            std::io::ErrorKind::IsADirectory => Error::File(FileError::IsDirectory(path.to_owned())),
            _ => bad(format!("cannot read: {e}")),
        })?;
        Deployment::parse(path, &text)
    }

    /// The deployment `text` says, as if read from the file `path` (paths
    /// are relative to its folder). Any text is either a deployment or an
    /// error naming the line: never a panic.
    pub fn parse(path: &Path, text: &str) -> Result<Deployment, Error> {
        let bad = |why: String| Error::BadDeployment {
            path: path.to_owned(),
            why,
        };
        let file: FileToml = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| {
                    text.as_bytes()[..s.start.min(text.len())]
                        .iter()
                        .filter(|&&b| b == b'\n')
                        .count()
                        + 1
                })
                .map(|l| format!("line {l}: "))
                .unwrap_or_default();
            bad(format!("{line}{}", e.message().trim()))
        })?;
        let base = sqlite_file::fs::parent_dir(path).to_owned();
        Deployment::from_toml(file, &base, &path.display().to_string()).map_err(bad)
    }

    pub(super) fn from_toml(file: FileToml, base: &Path, built_by: &str) -> Result<Deployment, String> {
        let mut d = Deployment::new(&match &file.name {
            Some(name) => format!("{name} ({built_by})"),
            None => built_by.to_owned(),
        });
        d.from_file = true;
        if file.files.is_empty() {
            return Err("[files] names no file".into());
        }
        for (name, spec) in file.files {
            let (path, temporary) = match spec {
                FileSpec::Path(p) => (p, false),
                FileSpec::Full(f) => (f.path, f.temporary),
            };
            if path.is_empty() {
                return Err(format!("files.{name}: empty path"));
            }
            // A remote address is not relative to the deployment file.
            let path = match remote::Address::parse(&path) {
                Ok(remote::Address::Remote(_)) => PathBuf::from(path),
                _ => base.join(path),
            };
            d.file(&name, path, temporary);
        }
        if file.step.is_empty() {
            return Err("no [[step]]".into());
        }
        let names: BTreeMap<String, usize> = d.files.iter().enumerate().map(|(i, f)| (f.name.clone(), i)).collect();
        for (n, step) in file.step.into_iter().enumerate() {
            let label = match &step.name {
                Some(name) => format!("step {} ({name})", n + 1),
                None => format!("step {}", n + 1),
            };
            let op = step.operation(&names, base).map_err(|why| format!("{label}: {why}"))?;
            let read = |rules: &str, key: Option<&String>| {
                Masking::read(&base.join(rules), key.map(|k| base.join(k)).as_deref())
                    .map_err(|e| format!("{label}: {e}"))
            };
            let masking = match (&step.rules, &step.mask_key, &op) {
                (None, None, _) => None,
                (None, Some(_), _) => return Err(format!("{label}: `mask_key` needs `rules`")),
                (Some(_), _, Operation::Swap { .. }) => {
                    return Err(format!("{label}: `rules` does not apply to op = \"swap\""));
                }
                // The rows are masked as they are copied: by the snapshot that
                // made the file this step migrates.
                (Some(rules), key, Operation::Apply { to, .. }) => {
                    let copy = d
                        .steps
                        .iter_mut()
                        .rev()
                        .find(|s| matches!(s.op, Operation::Snapshot { to: made, .. } if made == *to));
                    let Some(copy) = copy else {
                        return Err(format!(
                            "{label}: `rules` needs a snapshot step before it that copies PROD into its `to` (the rows are masked as they are copied)"
                        ));
                    };
                    if copy.masking.is_some() {
                        return Err(format!("{label}: the copy it migrates has rules already"));
                    }
                    copy.masking = Some(read(rules, key.as_ref())?);
                    None
                }
                (Some(rules), key, _) => Some(read(rules, key.as_ref())?),
            };
            d.steps.push(Step {
                name: step.name.unwrap_or_else(|| format!("step {}", n + 1)),
                op,
                abort_remaining: step.abort_remaining,
                masking,
            });
        }
        // Rules for the whole file: every copy of PROD without its own.
        match (&file.rules, &file.mask_key) {
            (None, None) => {}
            (None, Some(_)) => return Err("`mask_key` needs `rules`".into()),
            (Some(rules), key) => {
                let masking = Masking::read(&base.join(rules), key.as_ref().map(|k| base.join(k)).as_deref())
                    .map_err(|e| e.to_string())?;
                for step in d.steps.iter_mut().filter(|s| {
                    s.masking.is_none() && matches!(s.op, Operation::Snapshot { .. } | Operation::Replace { .. })
                }) {
                    step.masking = Some(masking.clone());
                }
            }
        }
        Ok(d)
    }
}

// The file format. Unknown keys are errors: a typo must not silently drop an option.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileToml {
    /// What the deployment is called, shown in its report.
    name: Option<String>,
    #[allow(dead_code)] // documentation for the reader of the file
    description: Option<String>,
    /// Masking and subsetting of every copy of PROD (`--rules`).
    rules: Option<String>,
    mask_key: Option<String>,
    #[serde(default)]
    files: BTreeMap<String, FileSpec>,
    #[serde(default)]
    step: Vec<StepToml>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged, expecting = "a path, or a table { path = \"...\", temporary = true }")]
enum FileSpec {
    Path(String),
    Full(FullFileSpec),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FullFileSpec {
    path: String,
    #[serde(default)]
    temporary: bool,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum OpToml {
    Snapshot,
    Apply,
    Swap,
    Replace,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepToml {
    name: Option<String>,
    #[allow(dead_code)] // documentation for the reader of the file
    description: Option<String>,
    op: OpToml,
    from: Option<String>,
    to: Option<String>,
    schema: Option<String>,
    #[serde(default = "yes")]
    abort_remaining: bool,
    // snapshot and replace
    timeout: Option<f64>,
    verify: Option<bool>,
    // apply
    on_violation: Option<OnViolation>,
    #[serde(default)]
    rename: Vec<String>,
    #[serde(default)]
    rename_table: Vec<String>,
    #[serde(default)]
    dev_data: Vec<String>,
    #[serde(default)]
    prod_data: Vec<String>,
    #[serde(default)]
    migration_tables: Vec<String>,
    rejects: Option<String>,
    #[serde(default)]
    load_extension: Vec<String>,
    // snapshot and replace (or apply: its copy's): masking and subsetting of the rows copied
    rules: Option<String>,
    mask_key: Option<String>,
    // swap and replace
    backup: Option<bool>,
    /// The command line's `--no-backup`, as a key: `no_backup = true`.
    no_backup: Option<bool>,
    keep_backups: Option<u64>,
    live: Option<bool>,
}

fn yes() -> bool {
    true
}

impl StepToml {
    fn operation(&self, names: &BTreeMap<String, usize>, base: &Path) -> Result<Operation, String> {
        let file = |key: &str, value: &Option<String>| -> Result<usize, String> {
            let name = value.as_ref().ok_or_else(|| format!("`{key}` is required"))?;
            names
                .get(name)
                .copied()
                .ok_or_else(|| format!("`{key} = \"{name}\"` names no file of [files]"))
        };
        let op = self.op;
        let not_for = |keys: &[(&str, bool)]| -> Result<(), String> {
            match keys.iter().find(|(_, set)| *set) {
                Some((key, _)) => Err(format!("`{key}` does not apply to op = \"{}\"", op_name(op))),
                None => Ok(()),
            }
        };
        let snapshot_keys = [("timeout", self.timeout.is_some()), ("verify", self.verify.is_some())];
        let apply_keys = [
            ("schema", self.schema.is_some()),
            ("on_violation", self.on_violation.is_some()),
            ("rename", !self.rename.is_empty()),
            ("rename_table", !self.rename_table.is_empty()),
            ("dev_data", !self.dev_data.is_empty()),
            ("prod_data", !self.prod_data.is_empty()),
            ("migration_tables", !self.migration_tables.is_empty()),
            ("rejects", self.rejects.is_some()),
            ("load_extension", !self.load_extension.is_empty()),
        ];
        let swap_keys = [
            ("backup", self.backup.is_some()),
            ("no_backup", self.no_backup.is_some()),
            ("keep_backups", self.keep_backups.is_some()),
            ("live", self.live.is_some()),
        ];
        let timeout = match self.timeout {
            Some(t) => cli_support::seconds(t).map_err(|e| format!("timeout = {e}"))?,
            None => Duration::from_secs(60),
        };
        let swap = || -> Result<SwapOptions, String> {
            if self.keep_backups == Some(0) {
                return Err("keep_backups must be at least 1 (use backup = false to keep none)".into());
            }
            let backup = match (self.backup, self.no_backup) {
                (Some(b), Some(nb)) if b == nb => {
                    return Err("`backup` and `no_backup` contradict each other".into());
                }
                (Some(b), _) => b,
                (None, Some(nb)) => !nb,
                (None, None) => true,
            };
            Ok(SwapOptions {
                backup,
                keep_backups: self.keep_backups.unwrap_or(3) as usize,
                live: self.live.unwrap_or(false),
            })
        };
        let distinct = |a: usize, b: usize| {
            if a == b {
                Err("reads and writes the same file".to_owned())
            } else {
                Ok(())
            }
        };
        // `from` and `to`: two files, not the same one.
        let from_to = || -> Result<(usize, usize), String> {
            let (from, to) = (file("from", &self.from)?, file("to", &self.to)?);
            distinct(from, to)?;
            Ok((from, to))
        };
        match op {
            OpToml::Snapshot => {
                not_for(&apply_keys)?;
                not_for(&swap_keys)?;
                let (from, to) = from_to()?;
                Ok(Operation::Snapshot {
                    from,
                    to,
                    verify: self.verify.unwrap_or(false),
                    timeout,
                })
            }
            OpToml::Apply => {
                not_for(&snapshot_keys)?;
                not_for(&swap_keys)?;
                not_for(&[("from", self.from.is_some())])?;
                let (schema, to) = (file("schema", &self.schema)?, file("to", &self.to)?);
                distinct(schema, to)?;
                // A table hint reads OLD=NEW and a column hint TABLE.OLD=NEW:
                // the message says which key was wrong.
                let hints = Hints::parse(
                    &self.rename_table,
                    &self.rename,
                    &self.dev_data,
                    &self.prod_data,
                    &self.migration_tables,
                )
                .map_err(|e| format!("bad rename hint {e}"))?;
                Ok(Operation::Apply {
                    schema,
                    to,
                    options: ApplyOptions {
                        on_violation: self.on_violation.unwrap_or_default(),
                        hints,
                        rejects: self.rejects.as_ref().map(|r| base.join(r)),
                        subset: false,
                        reading: schema_diff::Reading {
                            extensions: self.load_extension.iter().map(|e| base.join(e)).collect(),
                            ..schema_diff::Reading::default()
                        },
                    },
                })
            }
            OpToml::Swap => {
                not_for(&snapshot_keys)?;
                not_for(&apply_keys)?;
                let (from, to) = from_to()?;
                Ok(Operation::Swap {
                    from,
                    to,
                    swap: swap()?,
                })
            }
            OpToml::Replace => {
                not_for(&apply_keys)?;
                not_for(&[("verify", self.verify.is_some())])?;
                let (from, to) = from_to()?;
                Ok(Operation::Replace {
                    from,
                    to,
                    swap: swap()?,
                    timeout,
                })
            }
        }
    }
}

fn op_name(op: OpToml) -> &'static str {
    match op {
        OpToml::Snapshot => "snapshot",
        OpToml::Apply => "apply",
        OpToml::Swap => "swap",
        OpToml::Replace => "replace",
    }
}
