//! A deployment: named files, then ordered sub-deployments (steps), each with
//! its operation, its own source and options. `run`, `replace` and `staging`
//! are deployments built in code; `deploy FILE.toml` reads one from a file.
//!
//! This module only describes and validates the shape (every step names
//! defined files and only the options its operation takes); what the files
//! are on disk is checked by the preflight ([`crate::runner`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use schema_diff::apply::ApplyOptions;
use serde::Serialize;

use crate::Error;
use sqlite_file::FileError;

/// One file the deployment names.
#[derive(Debug, Clone, Serialize)]
pub struct NamedFile {
    pub name: String,
    /// For a remote file, the base beside the local file it is copied to
    /// (see [`Deployment::place_remote_bases`]), once placed.
    pub path: PathBuf,
    /// Made by this deployment and removed when it ends (a staging file).
    pub temporary: bool,
    /// A file on another host (`ssh://…` or `host:path`): only ever read,
    /// through the helper, into `path`.
    pub remote: Option<remote::RemoteFile>,
}

/// What one step does.
#[derive(Debug, Clone)]
pub enum Operation {
    /// A point-in-time copy of `from` into the new file `to`.
    Snapshot {
        from: usize,
        to: usize,
        verify: bool,
        timeout: Duration,
    },
    /// `schema`'s exact schema onto `to`, keeping every row of `to` that fits.
    Apply {
        schema: usize,
        to: usize,
        /// schema-diff's own options; rows left out by `on_violation = skip`
        /// go by default to `SCHEMA.rejects-<UTC stamp>.sqlite`, beside the
        /// schema's file (DEV).
        options: ApplyOptions,
    },
    /// `from` (consumed) atomically replaces `to`, keeping a backup.
    Swap { from: usize, to: usize, swap: SwapOptions },
    /// `to` becomes a copy of `from`: a snapshot beside `to`, then a swap.
    Replace {
        from: usize,
        to: usize,
        swap: SwapOptions,
        timeout: Duration,
    },
}

/// The swap options a step may set.
#[derive(Debug, Clone, Copy)]
pub struct SwapOptions {
    pub backup: bool,
    pub keep_backups: usize,
    pub live: bool,
}

impl Default for SwapOptions {
    fn default() -> Self {
        SwapOptions {
            backup: true,
            keep_backups: 3,
            live: false,
        }
    }
}

impl Operation {
    /// `snapshot`, `apply`, `swap` or `replace`.
    pub fn name(&self) -> &'static str {
        match self {
            Operation::Snapshot { .. } => "snapshot",
            Operation::Apply { .. } => "apply",
            Operation::Swap { .. } => "swap",
            Operation::Replace { .. } => "replace",
        }
    }

    /// The file this step writes.
    pub fn target(&self) -> usize {
        match *self {
            Operation::Snapshot { to, .. }
            | Operation::Apply { to, .. }
            | Operation::Swap { to, .. }
            | Operation::Replace { to, .. } => to,
        }
    }

    /// The file this step reads (its source; for `apply`, the schema).
    pub fn source(&self) -> usize {
        match *self {
            Operation::Snapshot { from, .. } | Operation::Swap { from, .. } | Operation::Replace { from, .. } => from,
            Operation::Apply { schema, .. } => schema,
        }
    }
}

/// One sub-deployment.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub op: Operation,
    /// When this step fails, do not run the later ones (the default).
    pub abort_remaining: bool,
    /// `--rules`: the rows this step copies are masked and subset as they
    /// are copied (a snapshot or replace step).
    pub masking: Option<Masking>,
}

/// Masking and subsetting of a step's result (`--rules`, `rules = "…"`).
#[derive(Debug, Clone)]
pub struct Masking {
    pub rules: std::sync::Arc<mask::Rules>,
    /// `--mask-key`; by default the hidden key beside the file the data
    /// ends in ([`Deployment::key_home`]).
    pub key: Option<PathBuf>,
}

impl Masking {
    /// Reads the rules file (bad input names its line) and the key's path.
    pub fn read(rules: &Path, key: Option<&Path>) -> Result<Masking, Error> {
        Ok(Masking {
            rules: std::sync::Arc::new(mask::Rules::read(rules)?),
            key: key.map(Path::to_owned),
        })
    }
}

/// Files and steps, validated for shape.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// What built it: `run`, `replace`, `staging`, or the deployment file
    /// (the report's `deployment`).
    pub built_by: String,
    /// Read from a deployment file (whose temporary files are the user's
    /// names, so an existing one is bad input rather than a refusal).
    pub from_file: bool,
    pub files: Vec<NamedFile>,
    pub steps: Vec<Step>,
    /// Files that must exist before anything runs (PROD and DEV for the
    /// commands; a deployment file's steps say what they need).
    pub required: Vec<usize>,
}

/// The name of the staging file beside `dev`: `dev/.shop.refresh-staging.db`
/// for `dev/shop.db`. A leftover of a killed run is recognised by it.
pub fn staging_path(dev: &Path) -> PathBuf {
    sqlite_file::sidefile::staging(dev)
}

impl Step {
    /// A step that aborts the remaining ones when it fails.
    fn new(name: &str, op: Operation) -> Step {
        Step {
            name: name.to_owned(),
            op,
            abort_remaining: true,
            masking: None,
        }
    }
}

impl Deployment {
    fn new(built_by: &str) -> Deployment {
        Deployment {
            built_by: built_by.to_owned(),
            from_file: false,
            files: Vec::new(),
            steps: Vec::new(),
            required: Vec::new(),
        }
    }

    /// Names a file. A symbolic link stands for the file it points to, as
    /// for SQLite: that file is the one replaced, the link stays. A
    /// temporary file is the run's own: its name is never resolved (a link
    /// there is refused by the preflight, never followed).
    fn file(&mut self, name: &str, path: PathBuf, temporary: bool) -> usize {
        let remote = match remote::Address::of_path(&path) {
            Ok(remote::Address::Remote(r)) if !temporary => Some(r),
            _ => None,
        };
        let path = if temporary || remote.is_some() {
            path
        } else {
            sqlite_file::fs::resolve_link(&path)
        };
        self.files.push(NamedFile {
            name: name.to_owned(),
            path,
            temporary,
            remote,
        });
        self.files.len() - 1
    }

    /// The one remote file, if any.
    pub fn remote_source(&self) -> Option<(usize, &remote::RemoteFile)> {
        self.files
            .iter()
            .enumerate()
            .find_map(|(i, f)| f.remote.as_ref().map(|r| (i, r)))
    }

    /// Checks that a remote file is only read, as the source of a snapshot
    /// or a replace, and gives it its local home: the base beside the file
    /// its data ends in (DEV, for the pattern: the staging file is swapped
    /// into DEV), where the last copy received is kept for the next
    /// refresh. Bad input (exit 2) otherwise: DEV and every file written stay
    /// local, and the tool runs on DEV's host.
    pub fn place_remote_bases(&mut self) -> Result<(), Error> {
        let remotes: Vec<usize> = (0..self.files.len())
            .filter(|&i| self.files[i].remote.is_some())
            .collect();
        if remotes.len() > 1 {
            return Err(Error::Usage(
                "one remote file per deployment: copy the others with `refresh-dev snapshot HOST:PATH LOCAL` first"
                    .into(),
            ));
        }
        for i in remotes {
            let address = self.files[i]
                .remote
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
            let refuse = || {
                Error::Usage(format!(
                    "{address}: a remote file can only be read (PROD, or the source of a snapshot or replace); DEV and every file written stay local: run refresh-dev on DEV's host"
                ))
            };
            let mut into = None;
            for step in &self.steps {
                match step.op {
                    Operation::Snapshot { from, to, .. } | Operation::Replace { from, to, .. } if from == i => {
                        into.get_or_insert(to);
                    }
                    Operation::Snapshot { to, .. } | Operation::Replace { to, .. } | Operation::Swap { to, .. }
                        if to == i =>
                    {
                        return Err(refuse())
                    }
                    Operation::Swap { from, .. } if from == i => return Err(refuse()),
                    Operation::Apply { schema, to, .. } if schema == i || to == i => return Err(refuse()),
                    _ => {}
                }
            }
            if into.is_none() {
                return Err(refuse());
            }
            let to = self.remote_home(i).unwrap_or(i);
            self.files[i].path = sqlite_file::sidefile::base(&self.files[to].path);
        }
        Ok(())
    }

    /// The first step that copies file `i` (a snapshot or a replace reading it).
    pub fn copy_of(&self, i: usize) -> Option<usize> {
        self.steps.iter().position(
            |s| matches!(s.op, Operation::Snapshot { from, .. } | Operation::Replace { from, .. } if from == i),
        )
    }

    /// How long the copy of file `i` waits for its writers (60 s where no
    /// step copies it).
    pub fn copy_timeout(&self, i: usize) -> Duration {
        self.copy_of(i)
            .and_then(|s| match self.steps[s].op {
                Operation::Snapshot { timeout, .. } | Operation::Replace { timeout, .. } => Some(timeout),
                _ => None,
            })
            .unwrap_or(Duration::from_secs(60))
    }

    /// The file a later swap puts step `s`'s target at, if one does.
    fn swapped_target(&self, s: usize) -> Option<usize> {
        let to = self.steps[s].op.target();
        self.steps[s..].iter().find_map(|st| match st.op {
            Operation::Swap { from, to: into, .. } if from == to => Some(into),
            _ => None,
        })
    }

    /// The file the data of remote file `i` ends in (DEV, for the pattern:
    /// the staging copy is swapped into DEV), beside which its base lives.
    pub fn remote_home(&self, i: usize) -> Option<usize> {
        let s = self.copy_of(i)?;
        let to = self.steps[s].op.target();
        // A temporary copy ends in the file a swap puts it at.
        Some(match self.files[to].temporary {
            true => self.swapped_target(s).unwrap_or(to),
            false => to,
        })
    }

    /// The first two sub-deployments of the pattern: a snapshot of PROD into
    /// `staging`, then DEV's schema onto it.
    fn snapshot_and_migrate(
        &mut self,
        prod: usize,
        dev: usize,
        staging: usize,
        apply: ApplyOptions,
        timeout: Duration,
    ) {
        self.steps.push(Step::new(
            "copy data from production",
            Operation::Snapshot {
                from: prod,
                to: staging,
                verify: false,
                timeout,
            },
        ));
        self.steps.push(Step::new(
            "migrate schema from development",
            Operation::Apply {
                schema: dev,
                to: staging,
                options: apply,
            },
        ));
    }

    /// The Refresh Dev pattern: snapshot PROD beside DEV, apply DEV's schema
    /// onto it, swap it into DEV.
    pub fn refresh_dev(prod: &Path, dev: &Path, apply: ApplyOptions, swap: SwapOptions, timeout: Duration) -> Self {
        let mut d = Deployment::new("run");
        let prod = d.file("prod", prod.to_owned(), false);
        let dev = d.file("dev", dev.to_owned(), false);
        let staging = d.file("staging", staging_path(&d.files[dev].path), true);
        d.required = vec![prod, dev];
        d.snapshot_and_migrate(prod, dev, staging, apply, timeout);
        d.steps.push(Step::new(
            "overwrite development with staging",
            Operation::Swap {
                from: staging,
                to: dev,
                swap,
            },
        ));
        d
    }

    /// Refresh Staging: snapshot PROD to STAGING, apply DEV's schema onto it, stop.
    pub fn refresh_staging(prod: &Path, dev: &Path, out: &Path, apply: ApplyOptions, timeout: Duration) -> Self {
        let mut d = Deployment::new("staging");
        let prod = d.file("prod", prod.to_owned(), false);
        let dev = d.file("dev", dev.to_owned(), false);
        let staging = d.file("staging", out.to_owned(), false);
        d.required = vec![prod, dev];
        d.snapshot_and_migrate(prod, dev, staging, apply, timeout);
        d
    }

    /// Solution 1: DEV becomes a copy of PROD (with the backup).
    pub fn replace(prod: &Path, dev: &Path, swap: SwapOptions, timeout: Duration) -> Self {
        let mut d = Deployment::new("replace");
        let prod = d.file("prod", prod.to_owned(), false);
        let dev = d.file("dev", dev.to_owned(), false);
        d.required = vec![prod, dev];
        d.steps.push(Step::new(
            "replace development with a copy of production",
            Operation::Replace {
                from: prod,
                to: dev,
                swap,
                timeout,
            },
        ));
        d
    }

    /// `--rules`: the step that copies PROD masks and subsets its rows as
    /// it copies them (names in the rules are the result's: DEV's, followed
    /// back through the migration's hints).
    pub fn with_masking(mut self, masking: Option<Masking>) -> Deployment {
        if let Some(step) = self
            .steps
            .iter_mut()
            .find(|s| matches!(s.op, Operation::Snapshot { .. } | Operation::Replace { .. }))
        {
            step.masking = masking;
        }
        self
    }

    /// The migration applied later onto what step `s` copies, if any: the
    /// rules of `s` name its schema's tables and columns.
    pub fn migration_of(&self, s: usize) -> Option<(usize, &ApplyOptions)> {
        let Operation::Snapshot { to: copy, .. } = self.steps[s].op else {
            return None;
        };
        self.steps[s..].iter().find_map(|st| match &st.op {
            Operation::Apply { schema, to, options } if *to == copy => Some((*schema, options)),
            _ => None,
        })
    }

    /// DEV, for step `s`'s copy: the file a swap puts its copy at, else the
    /// schema of the migration applied onto it (`staging`'s DEV), else the
    /// copy itself. Its masking key lives beside it, so that one DEV's
    /// data is masked alike by `run`, `staging` and `replace`.
    pub fn key_home(&self, s: usize) -> &Path {
        let home = self
            .swapped_target(s)
            .or_else(|| self.migration_of(s).map(|(schema, _)| schema))
            .unwrap_or(self.steps[s].op.target());
        &self.files[home].path
    }
}

mod file;

#[cfg(test)]
mod tests {
    use super::file::FileToml;
    use super::*;
    use schema_diff::apply::OnViolation;

    fn parse(text: &str) -> Result<Deployment, String> {
        let file: FileToml = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        Deployment::from_toml(file, Path::new("/base"), "test")
    }

    #[test]
    fn the_readme_example_parses_with_paths_relative_to_the_file() {
        let d = parse(
            r#"
            [files]
            prod    = "prod/shop.db"
            dev     = "dev/shop.db"
            staging = { path = "dev/.shop.refresh-staging.db", temporary = true }
            [[step]]
            op = "snapshot"
            from = "prod"
            to = "staging"
            [[step]]
            op = "apply"
            schema = "dev"
            to = "staging"
            on_violation = "skip"
            [[step]]
            op = "swap"
            from = "staging"
            to = "dev"
            keep_backups = 2
            abort_remaining = false
            "#,
        )
        .expect("valid");
        assert_eq!(d.steps.len(), 3);
        let staging = d.files.iter().find(|f| f.name == "staging").expect("staging");
        assert!(staging.temporary);
        assert_eq!(staging.path, Path::new("/base/dev/.shop.refresh-staging.db"));
        assert!(matches!(
            d.steps[1].op,
            Operation::Apply {
                options: ApplyOptions {
                    on_violation: OnViolation::Skip,
                    ..
                },
                ..
            }
        ));
        assert!(matches!(
            d.steps[2].op,
            Operation::Swap {
                swap: SwapOptions { keep_backups: 2, .. },
                ..
            }
        ));
        assert!(!d.steps[2].abort_remaining && d.steps[0].abort_remaining);
    }

    #[test]
    fn the_readme_documents_a_file_that_parses() {
        let readme = include_str!("../../../README.md");
        let block = |section: &str| {
            let from = readme.find(section).expect("the section");
            let start = from + readme[from..].find("```toml\n").expect("a toml block in the section") + 8;
            let end = start + readme[start..].find("```").expect("its end");
            &readme[start..end]
        };
        let d = parse(block("### Deployment files")).expect("the README's example is valid");
        // The README's rules file too.
        let rules = mask::Rules::parse(Path::new("rules.toml"), block("### Masking and subsetting"))
            .expect("the README's rules are valid");
        assert_eq!((rules.masks.len(), rules.subsets.len()), (5, 2));
        let ops: Vec<&str> = d.steps.iter().map(|s| s.op.name()).collect();
        assert_eq!(ops, ["snapshot", "apply", "swap"]);
        for example in ["refresh-dev.toml", "replace.toml", "refresh-staging.toml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../fixtures/deployments")
                .join(example);
            Deployment::from_file(&path).unwrap_or_else(|e| panic!("{example}: {e}"));
        }
    }

    #[test]
    fn mistakes_are_named() {
        let base = "[files]\na = \"a.db\"\nb = \"b.db\"\n";
        let cases = [
            ("[[step]]\nop = \"snapshot\"\nfrom = \"a\"\nto = \"c\"", "names no file"),
            ("[[step]]\nop = \"snapshot\"\nfrom = \"a\"", "`to` is required"),
            (
                "[[step]]\nop = \"snapshot\"\nfrom = \"a\"\nto = \"b\"\nlive = true",
                "`live` does not apply",
            ),
            ("[[step]]\nop = \"swap\"\nfrom = \"a\"\nto = \"a\"", "same file"),
            (
                "[[step]]\nop = \"snapshot\"\nfrom = \"a\"\nto = \"b\"\ntimeout = 1e30",
                "longest wait accepted",
            ),
            (
                "[[step]]\nop = \"snapshot\"\nfrom = \"a\"\nto = \"b\"\ntimeout = 2.2e6",
                "longest wait accepted",
            ),
            (
                "[[step]]\nop = \"snapshot\"\nfrom = \"a\"\nto = \"b\"\ntimeout = nan",
                "expected a number of seconds",
            ),
            (
                "[[step]]\nop = \"snapshot\"\nfrom = \"a\"\nto = \"b\"\ntimeout = -1.0",
                "expected a number of seconds",
            ),
            (
                "[[step]]\nop = \"apply\"\nschema = \"a\"\nto = \"b\"\non_violation = \"ignore\"",
                "unknown variant",
            ),
            ("[[step]]\nop = \"copy\"\nfrom = \"a\"\nto = \"b\"", "unknown variant"),
            (
                "[[step]]\nop = \"swap\"\nfrom = \"a\"\nto = \"b\"\nkeep_backup = 1",
                "unknown field",
            ),
            (
                "[[step]]\nop = \"apply\"\nschema = \"a\"\nto = \"b\"\nrename = [\"x\"]",
                "TABLE.OLD=NEW",
            ),
            ("", "no [[step]]"),
            (
                "[[step]]\nop = \"swap\"\nfrom = \"a\"\nto = \"b\"\nbackup = true\nno_backup = true",
                "contradict",
            ),
        ];
        for (steps, expected) in cases {
            let err = parse(&format!("{base}{steps}")).expect_err(steps);
            assert!(err.contains(expected), "{steps:?}: {err}");
        }
    }

    #[test]
    fn staging_sits_beside_dev_hidden() {
        assert_eq!(
            staging_path(Path::new("dev/shop.db")),
            Path::new("dev/.shop.refresh-staging.db")
        );
        assert_eq!(staging_path(Path::new("shop")), Path::new("./.shop.refresh-staging"));
    }
}
