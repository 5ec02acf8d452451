//! `--rules`: the masking and subsetting of a step's result, decided with
//! the other checks before any write (the rules against the result's
//! schema, the key), previewed by a plan on PROD's rows, and built by the
//! step into a fresh file that replaces its copy. The SQL is the `mask`
//! crate's; this module says which files and when.

use super::*;
use crate::report::MaskingReport;

/// A masked step's key, as the preflight found it.
pub(super) struct Masked {
    key: mask::Key,
    key_path: PathBuf,
    /// Material for a new key file, written when the step first builds.
    new_key: Option<Vec<u8>>,
}

impl Masked {
    fn state(&self) -> &'static str {
        if self.key.throwaway {
            "throwaway"
        } else if self.new_key.is_some() {
            "new"
        } else {
            "existing"
        }
    }
}

/// Masking runs where the data is copied: with a remote PROD that is the
/// PROD host, which this version does not do. Refused before anything
/// moves, so no original value crosses the network.
pub(super) fn refuse_remote(d: &Deployment) -> Result<(), Error> {
    match d.remote_source() {
        Some((_, address)) if d.steps.iter().any(|s| s.masking.is_some()) => Err(Error::Usage(format!(
            "{address}: --rules with a remote PROD is not supported yet (masking must run on PROD's host so that no original value crosses the network); copy PROD with `refresh-dev snapshot {address} LOCAL.db` on a trusted host first"
        ))),
        _ => Ok(()),
    }
}

/// The file whose schema the result has (DEV's for a migration, the source's
/// for a copy), and the file whose rows it holds.
fn schema_and_data(d: &Deployment, prepared: &Prepared, s: usize) -> (usize, usize) {
    match d.steps[s].op {
        Operation::Apply { schema, .. } => (schema, prepared.origins[s].target),
        Operation::Snapshot { from, .. } | Operation::Replace { from, .. } => (from, from),
        Operation::Swap { from, .. } => (from, from),
    }
}

fn hints_of(op: &Operation) -> schema_diff::Hints {
    match op {
        Operation::Apply { options, .. } => options.hints.clone(),
        _ => schema_diff::Hints::default(),
    }
}

fn open(path: &Path) -> Result<sqlite_file::ReadOnlyDb, Error> {
    Ok(schema_diff::open(path, &schema_diff::Reading::default())?.0)
}

fn table_names(db: &sqlite_file::ReadOnlyDb, path: &Path) -> Result<Vec<String>, Error> {
    mask::schema::table_names(db.conn()).map_err(|e| Error::File(FileError::sqlite(path, "read the schema", e)))
}

/// The result's tables whose rows are DEV's (only in DEV, `--dev-data`, a
/// migration history): never subset.
fn exempt(result: &[String], data: &[String], hints: &schema_diff::Hints, migrating: bool) -> Vec<String> {
    result
        .iter()
        .filter(|t| {
            let in_data = !migrating || {
                let old = hints.table_in_target(t);
                data.iter().any(|d| d.eq_ignore_ascii_case(&old))
            };
            schema_diff::plan::rows_from(t, in_data, hints).0 != schema_diff::plan::RowsFrom::Target
        })
        .cloned()
        .collect()
}

/// Checks each masked step's rules against the result's schema (a rules
/// file that names a missing table or column, an unknown rule or a filter
/// that is not valid SQL is bad input, exit 2, before anything is written)
/// and finds its key: the existing one, a new one the run will write, or
/// (a plan with no key yet) a throwaway one.
pub(super) fn check_rules(
    d: &Deployment,
    options: &RunOptions,
    report: &mut Report,
    prepared: &mut Prepared,
) -> Result<(), Error> {
    for (s, step) in d.steps.iter().enumerate() {
        let Some(masking) = &step.masking else { continue };
        let (schema, data) = schema_and_data(d, prepared, s);
        if prepared.disk[schema].is_some() && prepared.disk[data].is_some() {
            let (schema_path, data_path) = (&d.files[schema].path, &d.files[data].path);
            let db = open(schema_path)?;
            let result = table_names(&db, schema_path)?;
            let in_data = if data == schema {
                result.clone()
            } else {
                table_names(&open(data_path)?, data_path)?
            };
            let migrating = matches!(step.op, Operation::Apply { .. });
            let exempt = exempt(&result, &in_data, &hints_of(&step.op), migrating);
            masking.rules.check(db.conn(), &exempt)?;
        }
        let key_path = masking.key.clone().unwrap_or_else(|| sidefile::mask_key(d.key_home(s)));
        let masked = match sidefile::look(&key_path) {
            Ok(sidefile::Found::Nothing) if masking.key.is_some() => {
                return Err(mask::Error::Key {
                    path: key_path,
                    why: "no such file (--mask-key names an existing key; leave it out to have one made beside DEV)"
                        .into(),
                }
                .into())
            }
            Ok(sidefile::Found::Nothing) if options.dry_run => Masked {
                key: mask::Key::throwaway().map_err(|e| FileError::io(&key_path, "make a throwaway key", e))?,
                key_path,
                new_key: None,
            },
            Ok(sidefile::Found::Nothing) => {
                let material = mask::Key::random_material().map_err(|e| FileError::io(&key_path, "make a key", e))?;
                Masked {
                    key: mask::Key::from_bytes(&material),
                    key_path,
                    new_key: Some(material),
                }
            }
            _ => Masked {
                key: mask::Key::read(&key_path)?,
                key_path,
                new_key: None,
            },
        };
        check(
            report,
            "rules",
            true,
            format!(
                "{}: {} masked, {} subset; key {} ({})",
                masking.rules.path.display(),
                cli_support::plural(masking.rules.masks.len() as u64, "column", "columns"),
                cli_support::plural(masking.rules.subsets.len() as u64, "table", "tables"),
                masked.key_path.display(),
                match masked.state() {
                    "throwaway" => "none yet: the examples use a throwaway key; the run makes one",
                    "new" => "none yet: made by this run, mode 0600",
                    _ => "kept from an earlier run",
                }
            ),
        );
        report.masking = Some(MaskingReport {
            rules: masking.rules.path.clone(),
            key: masked.key_path.clone(),
            key_state: masked.state(),
            planned: None,
            built: None,
        });
        prepared.masks.insert(s, masked);
    }
    Ok(())
}

/// The rules in the data file's names (a renamed table or column is
/// followed through the migration's hints).
fn in_data_names(rules: &mask::Rules, hints: &schema_diff::Hints) -> mask::Rules {
    let mut r = rules.clone();
    for m in &mut r.masks {
        m.column = hints.column_in_target(&m.table, &m.column);
        m.table = hints.table_in_target(&m.table);
    }
    for s in &mut r.subsets {
        s.table = hints.table_in_target(&s.table);
    }
    r
}

/// A plan's preview of step `s`'s rules, counted on `data` (PROD, or its
/// copy): examples, kept rows, constraints broken, unruled columns.
/// Masked values that break a constraint block the plan as they would
/// stop the run.
pub(super) fn preview(
    d: &Deployment,
    s: usize,
    data: &Path,
    options: &RunOptions,
    report: &mut Report,
    prepared: &mut Prepared,
) -> Result<(), Error> {
    let (Some(masking), Some(masked)) = (&d.steps[s].masking, prepared.masks.get(&s)) else {
        return Ok(());
    };
    let (schema, _) = schema_and_data(d, prepared, s);
    let hints = hints_of(&d.steps[s].op);
    let result = open(&d.files[schema].path)?;
    let data_db = open(data)?;
    let migrating = matches!(d.steps[s].op, Operation::Apply { .. });
    let result_tables = table_names(&result, &d.files[schema].path)?;
    let data_tables = table_names(&data_db, data)?;
    let exempt: Vec<String> = exempt(&result_tables, &data_tables, &hints, migrating)
        .iter()
        .map(|t| hints.table_in_target(t))
        .collect();
    let rules = in_data_names(&masking.rules, &hints);
    let mut preview = mask::preview(data_db.conn(), result.conn(), &rules, &masked.key, &exempt);
    // Shown in the rules' names (DEV's).
    for (example, rule) in preview.masked.iter_mut().zip(&masking.rules.masks) {
        example.table = rule.table.clone();
        example.column = rule.column.clone();
    }
    let breaks = preview.breaks.clone();
    if let Some(m) = report.masking.as_mut() {
        m.planned = Some(preview);
    }
    if let Some(first) = breaks.first() {
        let e = Error::Mask(first.error());
        check(report, "rules", false, e.to_string());
        blocked(prepared, options, e)?;
    }
    Ok(())
}

/// Step `s`'s result at `target` (a copy this run made), masked and subset:
/// built into a new file beside it, which then replaces it. The rejects
/// file, if the step made one, is masked the same way.
pub(super) fn build(
    d: &Deployment,
    s: usize,
    target: &Path,
    events: &mut dyn Events,
    prepared: &mut Prepared,
    sr: &mut StepReport,
    created: &mut Vec<PathBuf>,
) -> Result<(), Error> {
    let Some(masking) = &d.steps[s].masking else {
        return Ok(());
    };
    let Some(masked) = prepared.masks.get_mut(&s) else {
        return Ok(());
    };
    // DEV's tables (as the migration decided) are never subset.
    let exempt: Vec<String> = match prepared.diffs.get(&s) {
        Some(diff) => diff
            .plan
            .iter()
            .filter(|t| {
                t.rows_from != schema_diff::plan::RowsFrom::Target && t.strategy != schema_diff::plan::Strategy::Drop
            })
            .map(|t| t.table.clone())
            .collect(),
        None => {
            let db = open(target)?;
            let names = table_names(&db, target)?;
            exempt(&names, &names, &schema_diff::Hints::default(), false)
        }
    };
    // The copy has the result's schema now: the rules are checked on it too.
    masking.rules.check(open(target)?.conn(), &exempt)?;
    let key_state = masked.state();
    if let Some(material) = masked.new_key.take() {
        for lock in &mut prepared.locks {
            lock.record_made(&masked.key_path)?;
        }
        mask::Key::write_new(&masked.key_path, &material)?;
        created.push(masked.key_path.clone());
        sr.operations.push(format!(
            "made the masking key {} (mode 0600)",
            masked.key_path.display()
        ));
    }
    let key = masked.key.clone();
    let rejects = sr.apply.as_ref().and_then(|a| a.rejects.clone());
    let hints = hints_of(&d.steps[s].op);
    let mut jobs = vec![(target.to_owned(), (*masking.rules).clone(), exempt)];
    if let Some(r) = rejects {
        // The rejects hold PROD's rows as they were: PROD's names, no subset.
        let mut rules = in_data_names(&masking.rules, &hints);
        rules.subsets.clear();
        jobs.push((r, rules, Vec::new()));
    }
    for (n, (file, rules, exempt)) in jobs.into_iter().enumerate() {
        let dest = sidefile::pid_temp(&file, "mask");
        for lock in &mut prepared.locks {
            lock.record_made(&dest)?;
        }
        let mode = std::fs::metadata(&file)
            .map(|m| m.permissions().mode() & 0o777)
            .map_err(|e| FileError::io(&file, "stat", e))?;
        let built = mask::build(
            &mask::Build {
                source: &file,
                dest: &dest,
                rules: &rules,
                key: &key,
                exempt: &exempt,
                mode,
                stop: events.stop_flag(),
            },
            &mut |what| events.detail(what),
        );
        let built = match built {
            Err(_) if events.cancelled() => return Err(Error::Interrupted),
            b => b?,
        };
        // The copy with the original values goes; the new file takes its name.
        std::fs::rename(&dest, &file).map_err(|e| {
            let _ = sidefile::remove_with_sidecars(&dest);
            FileError::io(&file, "replace with its masked copy", e)
        })?;
        sqlite_file::fs::fsync_dir(parent_dir(&file)).map_err(|e| FileError::io(&file, "fsync its folder", e))?;
        if n == 0 {
            sr.operations.push(format!(
                "masked {} and kept {} into a fresh {} ({})",
                cli_support::plural(built.masked.len() as u64, "column", "columns"),
                if built.subset.is_empty() {
                    "every row".to_owned()
                } else {
                    let rows: i64 = built.subset.iter().map(|t| t.kept).sum();
                    let of: i64 = built.subset.iter().map(|t| t.rows).sum();
                    format!("{rows} of {of} rows")
                },
                file.display(),
                size(built.bytes)
            ));
            sr.masking = Some(MaskingReport {
                rules: masking.rules.path.clone(),
                key: masked_path(prepared, s),
                key_state,
                planned: None,
                built: Some(built),
            });
        } else {
            sr.operations.push(format!("masked the rejects in {}", file.display()));
        }
    }
    Ok(())
}

fn masked_path(prepared: &Prepared, s: usize) -> PathBuf {
    prepared.masks.get(&s).map(|m| m.key_path.clone()).unwrap_or_default()
}
