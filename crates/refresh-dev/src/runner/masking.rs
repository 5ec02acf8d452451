//! `--rules`: the masking and subsetting of the rows a step copies from
//! PROD, decided with the other checks before any write (the rules against
//! the result's schema, the key), previewed by a plan on PROD's rows, and
//! done as the rows are copied: the step's copy is built fresh from PROD
//! (read in one read transaction, or from a private copy of a rollback-mode
//! PROD), only the kept rows, already masked. With a remote PROD the same
//! build runs on PROD's host. The SQL is the `mask` crate's; this module
//! says which files and when.

use super::*;
use crate::report::MaskingReport;

/// A masked step's key, found before anything runs.
pub(super) struct Masked {
    key: mask::Key,
    key_path: PathBuf,
    /// Material for a new key file, written when the step first builds.
    new_key: Option<Vec<u8>>,
    /// The rows came masked and subset from PROD's host (a remote PROD):
    /// nothing is left to build here.
    remote_done: bool,
}

impl Masked {
    /// The report's `masking` object for these rules and this key.
    fn report(&self, rules: &Path, key_state: &'static str, built: Option<mask::Built>) -> MaskingReport {
        MaskingReport {
            rules: rules.to_owned(),
            key: self.key_path.clone(),
            key_state,
            planned: None,
            built,
        }
    }

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

/// Each masked step's key: the existing key file, new material the run
/// writes when it first builds, or (a plan with no key yet) a throwaway key.
/// A key file that is a link or too short is bad input.
pub(super) fn keys(d: &Deployment, options: &RunOptions) -> Result<BTreeMap<usize, Masked>, Error> {
    let mut keys = BTreeMap::new();
    for (s, step) in d.steps.iter().enumerate() {
        let Some(masking) = &step.masking else { continue };
        let key_path = masking.key.clone().unwrap_or_else(|| sidefile::mask_key(d.key_home(s)));
        let found = sidefile::look(&key_path).map_err(|e| FileError::io(&key_path, "stat", e))?;
        let masked = match found {
            sidefile::Found::Nothing if options.dry_run => Masked {
                key: mask::Key::throwaway().map_err(|e| FileError::io(&key_path, "make a throwaway key", e))?,
                key_path,
                new_key: None,
                remote_done: false,
            },
            sidefile::Found::Nothing => {
                let material = mask::Key::random_material().map_err(|e| FileError::io(&key_path, "make a key", e))?;
                Masked {
                    key: mask::Key::from_bytes(&material),
                    key_path,
                    new_key: Some(material),
                    remote_done: false,
                }
            }
            _ => Masked {
                key: mask::Key::read(&key_path)?,
                key_path,
                new_key: None,
                remote_done: false,
            },
        };
        keys.insert(s, masked);
    }
    Ok(keys)
}

/// With a remote PROD, masking and subsetting run on PROD's host, so that
/// original values and left-out rows never cross the network: the job the
/// helper is given (the rules in PROD's names, the key, the tables never
/// subset), and the base it goes into, named after the rules and the key
/// (a base left by other rules, another key or none is discarded). `None`
/// without masking.
pub(super) fn remote_job(
    d: &Deployment,
    remote: usize,
    keys: &BTreeMap<usize, Masked>,
) -> Result<Option<(usize, mask::Job, PathBuf)>, Error> {
    let masked: Vec<usize> = keys.keys().copied().collect();
    let &[s] = masked.as_slice() else {
        if masked.len() > 1 {
            return Err(Error::Usage(
                "with a remote PROD, one step may have rules (they run on PROD's host)".into(),
            ));
        }
        return Ok(None);
    };
    let (Some(masking), Some(masked)) = (&d.steps[s].masking, keys.get(&s)) else {
        return Ok(None);
    };
    let hints = hints_of(d, s);
    // The rules are the result's: checked against DEV's schema before anything moves.
    let (exempt, check) = match d.migration_of(s) {
        Some((schema, _)) => {
            let path = &d.files[schema].path;
            let db = open(path)?;
            let names = table_names(&db, path)?;
            let exempt = exempt(&names, &names, &hints, false);
            masking.rules.check(db.conn())?;
            (exempt.iter().map(|t| hints.table_in_target(t)).collect(), false)
        }
        // A plain copy's schema is PROD's: the helper checks the rules there.
        None => (Vec::new(), true),
    };
    let job = mask::Job {
        rules: in_data_names(&masking.rules, &hints),
        key: masked.key.to_hex(),
        exempt,
        check,
    };
    let tag = blake3_tag(&masking.rules.fingerprint, &masked.key.id());
    // Where the plain base would be (see `Deployment::place_remote_bases`).
    let home = d
        .remote_home(remote)
        .map_or_else(|| d.key_home(s).to_owned(), |h| d.files[h].path.clone());
    Ok(Some((s, job, sidefile::masked_base(&home, &tag))))
}

/// A short name for the rules and the key together.
fn blake3_tag(rules: &str, key: &str) -> String {
    mask::key::tag(&format!("{rules}:{key}"))
}

/// Bases beside `base`'s DEV other than `base`: made under other rules,
/// another key, or none. Removed (only regular files no process has open).
pub(super) fn discard_other_bases(dev: &Path, base: &Path, events: &mut dyn Events) {
    for other in sidefile::bases(dev) {
        if other != base {
            match sidefile::remove_with_sidecars(&other) {
                Ok(_) => events.event("info", None, "discarded a base made under other rules", Some(&other)),
                Err(e) => events.event("warn", None, &format!("not removed: {e}"), Some(&other)),
            }
        }
    }
}

/// What the helper did on PROD's host, from its answer.
pub(super) fn remote_done(
    d: &Deployment,
    s: usize,
    transfer: &remote::Transfer,
    keys: &mut BTreeMap<usize, Masked>,
    report: &mut Report,
) -> Result<(), Error> {
    let built: mask::Built = serde_json::from_slice(&transfer.job_result).map_err(|e| {
        Error::Usage(format!(
            "{}: the helper's answer to the masking job: {e}",
            transfer.from
        ))
    })?;
    let (Some(masking), Some(masked)) = (&d.steps[s].masking, keys.get_mut(&s)) else {
        return Ok(());
    };
    masked.remote_done = true;
    report.masking = Some(masked.report(&masking.rules.path, masked.state(), Some(built)));
    Ok(())
}

/// The file whose schema the result has (DEV's, where a migration follows
/// the copy; else the copied file's), and the file whose rows are copied.
fn schema_and_data(d: &Deployment, s: usize) -> (usize, usize) {
    let from = d.steps[s].op.source();
    (d.migration_of(s).map_or(from, |(schema, _)| schema), from)
}

/// The migration's hints: they lead the rules' names (DEV's) to PROD's.
fn hints_of(d: &Deployment, s: usize) -> schema_diff::Hints {
    d.migration_of(s).map(|(_, o)| o.hints.clone()).unwrap_or_default()
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
/// that is not valid SQL is bad input, exit 2, before anything is written),
/// and says which key the step uses.
pub(super) fn check_rules(d: &Deployment, report: &mut Report, prepared: &mut Prepared) -> Result<(), Error> {
    for (s, step) in d.steps.iter().enumerate() {
        let Some(masking) = &step.masking else { continue };
        let (schema, data) = schema_and_data(d, s);
        if prepared.disk[schema].is_some() {
            let schema_path = &d.files[schema].path;
            masking.rules.check(open(schema_path)?.conn())?;
        }
        // The filters and expressions run on PROD's rows, in PROD's names.
        if data != schema && prepared.disk[data].is_some() && !prepared.masks.get(&s).is_some_and(|m| m.remote_done) {
            let data_path = &d.files[data].path;
            let in_data = in_data_names(&masking.rules, &hints_of(d, s));
            in_data.check_on_data(open(data_path)?.conn(), &masking.rules)?;
        }
        let Some(masked) = prepared.masks.get(&s) else { continue };
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
        // What a remote helper already built stays in the report.
        let built = report.masking.take().and_then(|m| m.built);
        report.masking = Some(masked.report(&masking.rules.path, masked.state(), built));
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
    let (schema, _) = schema_and_data(d, s);
    let hints = hints_of(d, s);
    let result = open(&d.files[schema].path)?;
    let data_db = open(data)?;
    let migrating = d.migration_of(s).is_some();
    let result_tables = table_names(&result, &d.files[schema].path)?;
    let data_tables = table_names(&data_db, data)?;
    let exempt: Vec<String> = exempt(&result_tables, &data_tables, &hints, migrating)
        .iter()
        .map(|t| hints.table_in_target(t))
        .collect();
    let rules = in_data_names(&masking.rules, &hints);
    // A remote PROD's rows were previewed on its host.
    let counted = prepared
        .counted_remotely
        .as_ref()
        .and_then(|c| c.answer.preview.clone());
    let mut preview = counted.unwrap_or_else(|| {
        mask::preview(
            data_db.conn(),
            result.conn(),
            &rules,
            &masked.key,
            &exempt,
            masked.remote_done,
        )
    });
    // Shown in the rules' names (DEV's).
    for (example, rule) in preview.masked.iter_mut().zip(&masking.rules.masks) {
        example.table = rule.table.clone();
        example.column = rule.column.clone();
    }
    let breaks = preview.breaks.clone();
    if let Some(m) = report.masking.as_mut() {
        // Counted on PROD's host, before its rows were left out.
        if let Some(built) = &m.built {
            preview.subset = built.subset.clone();
        }
        m.planned = Some(preview);
    }
    if let Some(first) = breaks.first() {
        let e = Error::Mask(first.error());
        check(report, "rules", false, e.to_string());
        blocked(prepared, options, e)?;
    }
    Ok(())
}

/// Whether the apply step `s` migrates a copy that a subset made: DEV's own
/// rows may then reference parents the subset left out (kept, reported).
pub(super) fn migrates_a_subset(d: &Deployment, s: usize) -> bool {
    let Operation::Apply { to, .. } = d.steps[s].op else {
        return false;
    };
    d.steps[..s].iter().any(|st| match (&st.op, &st.masking) {
        (Operation::Snapshot { to: made, .. }, Some(m)) => *made == to && !m.rules.subsets.is_empty(),
        _ => false,
    })
}

/// Step `s`'s copy of `from` into the new file `to`, masked and subset as
/// it is made: only the kept rows, already masked, so no page of `to` ever
/// held an original value. A WAL-mode PROD is read in one read transaction
/// (its writers go on); a rollback-mode PROD is first copied privately
/// beside DEV (`sidefile::mask_source`: its writers wait for that copy
/// only), which then goes.
#[allow(clippy::too_many_arguments)]
pub(super) fn snapshot(
    d: &Deployment,
    s: usize,
    from: &Path,
    to: &Path,
    timeout: Duration,
    events: &mut dyn Events,
    prepared: &mut Prepared,
    sr: &mut StepReport,
    created: &mut Vec<PathBuf>,
) -> Result<(), Error> {
    let (Some(masking), Some(masked)) = (&d.steps[s].masking, prepared.masks.get_mut(&s)) else {
        return Err(Error::Usage("internal: a masked copy without its rules".into()));
    };
    let key_state = masked.state();
    if let Some(material) = masked.new_key.take() {
        // Not recorded as a killed run's leftover: a key a killed run made is
        // the next run's key (removing it would change every masked value).
        // A run that fails removes it.
        mask::Key::write_new(&masked.key_path, &material)?;
        created.push(masked.key_path.clone());
        sr.operations.push(format!(
            "made the masking key {} (mode 0600)",
            masked.key_path.display()
        ));
    }
    if masked.remote_done {
        let r = snapshot_into(from, to, false, timeout, events)?;
        sr.operations.push(format!(
            "created {} ({}): its rows came masked and subset from PROD's host",
            to.display(),
            size(r.bytes)
        ));
        sr.bytes = Some(r.bytes);
        sr.snapshot = Some(r);
        return Ok(());
    }
    let key = masked.key.clone();
    let hints = hints_of(d, s);
    let rules = in_data_names(&masking.rules, &hints);
    let exempt: Vec<String> = match d.migration_of(s) {
        Some((schema, _)) => {
            let path = &d.files[schema].path;
            let names = table_names(&open(path)?, path)?;
            let in_data = table_names(&open(from)?, from)?;
            exempt(&names, &in_data, &hints, true)
                .iter()
                .map(|t| hints.table_in_target(t))
                .collect()
        }
        None => Vec::new(),
    };
    let disk = prepared.disk[d.steps[s].op.source()].as_ref();
    let mode = disk.map_or(0o600, |o| o.mode);
    let wal = disk.is_some_and(|o| o.header.journal == JournalFlag::Wal);
    // A rollback-mode PROD is never read under its lock for longer than a copy.
    // A killed run's half-made private copy, provably its by its dead pid.
    let source_name = sidefile::mask_source(d.key_home(s));
    let (prefix, suffix) = sidefile::pid_temp_pattern(&source_name, "snapshot");
    for leftover in sidefile::dead_pid_leftovers(parent_dir(&source_name), &prefix, &suffix) {
        sidefile::remove_with_sidecars(&leftover)?;
    }
    let private = (!wal).then_some(source_name);
    if let Some(p) = &private {
        for lock in &mut prepared.locks {
            lock.record_made(p)?;
        }
        snapshot_into(from, p, false, timeout, events)?;
    }
    let source = private.as_deref().unwrap_or(from);
    let built = open(source).and_then(|db| {
        events.detail(&format!("masking and subsetting the rows of {}", from.display()));
        mask::build(
            &mask::Build {
                source: db.conn(),
                source_path: source,
                dest: to,
                rules: &rules,
                key: &key,
                exempt: &exempt,
                mode,
                stop: events.stop_flag(),
                only_rows_of: None,
            },
            &mut |what| events.detail(what),
        )
        .map_err(Error::from)
    });
    if let Some(p) = &private {
        sidefile::remove_with_sidecars(p)?;
    }
    let built = match built {
        Err(_) if events.cancelled() => return Err(Error::Interrupted),
        b => b?,
    };
    sr.bytes = Some(built.bytes);
    sr.operations.push(format!(
        "created {} ({}) from {}: {} masked, {}",
        to.display(),
        size(built.bytes),
        from.display(),
        cli_support::plural(built.masked.len() as u64, "column", "columns"),
        if built.subset.is_empty() {
            "every row kept".to_owned()
        } else {
            let rows: i64 = built.subset.iter().map(|t| t.kept).sum();
            let of: i64 = built.subset.iter().map(|t| t.rows).sum();
            format!("{rows} of {of} rows kept")
        },
    ));
    if let Some(masked) = prepared.masks.get(&s) {
        sr.masking = Some(masked.report(&masking.rules.path, key_state, Some(built)));
    }
    Ok(())
}
