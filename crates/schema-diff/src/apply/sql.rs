//! The SQL text `--sql` prints: the statements `apply` runs, found by
//! applying to a temporary copy of TARGET.

use super::*;

/// The statements `--apply` would run against TARGET, found by applying to
/// a temporary, consistent copy of TARGET in its folder (removed afterwards).
/// TARGET itself is only read. Empty when the schemas are identical.
pub fn sql(dev_path: &Path, target_path: &Path, hints: &Hints, reading: &Reading) -> Result<Vec<String>, Error> {
    let folder = sqlite_file::fs::parent_dir(target_path);
    let (prefix, suffix) = sqlite_file::sidefile::pid_temp_pattern(target_path, "schema-diff-sql");
    for leftover in sqlite_file::sidefile::dead_pid_leftovers(folder, &prefix, &suffix) {
        let _ = sqlite_file::sidefile::remove_with_sidecars(&leftover);
    }
    let copy = sqlite_file::sidefile::pid_temp(target_path, "schema-diff-sql");
    let remove = |p: &Path| {
        let _ = sqlite_file::sidefile::remove_with_sidecars(p);
    };
    let result = (|| {
        {
            let (source, _) = crate::open(target_path, reading)?;
            sqlite_file::sidefile::create_new(&copy, 0o600)?;
            let mut dest = Connection::open(&copy).map_err(|e| sqlite_error(&copy, "create", e))?;
            let _: String = dest
                .pragma_update_and_check(None, "journal_mode", "OFF", |r| r.get(0))
                .map_err(|e| sqlite_error(&copy, "pragma", e))?;
            let backup =
                rusqlite::backup::Backup::new(source.conn(), &mut dest).map_err(|e| sqlite_error(&copy, "copy", e))?;
            loop {
                match backup.step(-1).map_err(|e| sqlite_error(target_path, "copy", e))? {
                    rusqlite::backup::StepResult::Done => break,
                    rusqlite::backup::StepResult::More => {}
                    _ => std::thread::sleep(std::time::Duration::from_millis(10)),
                }
            }
        }
        let options = ApplyOptions {
            hints: hints.clone(),
            reading: reading.clone(),
            ..ApplyOptions::default()
        };
        apply(dev_path, &copy, &options).map(|r| r.statements)
    })();
    remove(&copy);
    result
}

/// An SQL string literal.
pub(super) fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}
