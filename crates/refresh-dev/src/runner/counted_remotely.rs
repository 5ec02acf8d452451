//! `plan` with a remote PROD: the helper counts the migration's data impact
//! on PROD's host, on its private copy, against an image of DEV's schema,
//! and answers with the counts and an image of PROD's schema (its settings,
//! `CREATE` texts and migration history, no other row): no table data
//! moves. The plan then runs as for a local PROD, on that image, with the
//! counts taken from the answer.

use super::*;
use crate::helper_job::{schema_image_bytes, HelperJob, PlanAnswer, PlanJob};

/// What the helper counted, and where its image of PROD's schema is.
pub(super) struct CountedRemotely {
    /// The remote file's index.
    pub file: usize,
    /// PROD's size and permission bits, as the helper found them.
    pub len: u64,
    pub mode: u32,
    pub answer: PlanAnswer,
    /// The image of PROD's schema beside DEV, removed when the plan ends.
    pub image: PathBuf,
}

impl Drop for CountedRemotely {
    fn drop(&mut self) {
        let _ = sidefile::remove_with_sidecars(&self.image);
    }
}

/// Asks the helper for the counts of `d`'s remote file `i` and puts the
/// image of PROD's schema at the file's local path.
pub(super) fn count_remotely(
    d: &mut Deployment,
    i: usize,
    address: &remote::RemoteFile,
    options: &RunOptions,
    events: &mut dyn Events,
    mask: Option<mask::Job>,
) -> Result<(remote::Transfer, CountedRemotely), Error> {
    let (dev_image, hints) = match d.copy_of(i).and_then(|s| d.migration_of(s)) {
        Some((schema, apply)) => {
            let dev = &d.files[schema].path;
            (Some(schema_image_bytes(dev, dev, &apply.hints)?), apply.hints.clone())
        }
        None => (None, schema_diff::Hints::default()),
    };
    let job = HelperJob::Plan(PlanJob { dev_image, hints, mask }).to_bytes()?;
    let wait = d.copy_timeout(i);
    events.event(
        "info",
        None,
        &format!(
            "counting on {}'s host through `{}`: no table data moves",
            address, options.remote.ssh
        ),
        None,
    );
    let answer = remote::ask(&options.remote.fetch(address, wait, &job))?;
    let plan: PlanAnswer = serde_json::from_slice(&answer.transfer.job_result)
        .map_err(|e| Error::Usage(format!("{address}: the helper's answer to the plan: {e}")))?;
    if let Some(why) = &plan.failed {
        return Err(Error::Usage(format!("{address}: counting on PROD's host: {why}")));
    }
    let home = d.remote_home(i).unwrap_or(i);
    let image = sidefile::plan_copy(&d.files[home].path);
    let mut file = sidefile::create_new(&image, answer.mode & 0o666)?;
    use std::io::Write as _;
    file.write_all(&plan.prod_image)
        .map_err(|e| FileError::io(&image, "write", e))?;
    drop(file);
    d.files[i].path = image.clone();
    let counted = CountedRemotely {
        file: i,
        len: answer.len,
        mode: answer.mode,
        answer: plan,
        image,
    };
    Ok((answer.transfer, counted))
}

impl CountedRemotely {
    /// The walk found the image: the report and the space checks see PROD.
    pub(super) fn patch(&self, disk: &mut [Option<OnDisk>], report: &mut Report, address: &str) {
        if let Some(o) = disk[self.file].as_ref() {
            let (was, now) = (
                format!("{} is a database ({}", self.image.display(), size(o.bytes)),
                format!("{} is a database ({}", self.image.display(), size(self.len)),
            );
            for c in report.preflight.iter_mut().filter(|c| c.check == "files") {
                c.detail = c.detail.replace(&was, &now);
            }
        }
        if let Some(o) = disk[self.file].as_mut() {
            o.bytes = self.len;
            o.wal_bytes = 0;
            o.mode = self.mode;
        }
        if let Some(f) = report.files.get_mut(self.file) {
            f.path = PathBuf::from(address);
            f.bytes = Some(self.len);
            f.mode = Some(format!("{:04o}", self.mode));
        }
    }

    /// The counts of the migration whose data is the remote file's.
    pub(super) fn counts_for(
        &self,
        data_file: usize,
    ) -> Option<(&schema_diff::Counts, &schema_diff::space::MigrationBytes)> {
        (data_file == self.file)
            .then(|| self.answer.counts.as_ref().zip(self.answer.bytes.as_ref()))
            .flatten()
    }
}
