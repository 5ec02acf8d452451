//! What DEV's host asks of the remote helper beyond a plain copy of PROD,
//! inside the protocol (never on a command line):
//!
//! - [`HelperJob::Mask`]: `--rules` — mask and subset the copy on PROD's
//!   host, so that no original value crosses the network;
//! - [`HelperJob::Plan`]: `plan` — compare an image of DEV's schema with
//!   the copy and count the migration's data impact there, answering with
//!   the counts and an image of PROD's schema: no table data moves.
//!
//! The driver holds no SQL: the comparing and counting are `schema_diff`'s,
//! the images `mask::schema_image`'s.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::Error;

/// A job for the helper, as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "snake_case")]
pub enum HelperJob {
    Mask(mask::Job),
    Plan(PlanJob),
}

/// `plan`'s question: DEV's schema (an image, no row) and the migration's
/// hints; `None` where no migration follows (a plain copy: only PROD's
/// size and schema are wanted).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanJob {
    pub dev_image: Option<Vec<u8>>,
    pub hints: schema_diff::Hints,
    /// `--rules`: previewed there too (examples, kept rows, constraints
    /// broken), so that neither original values nor masked rows move.
    pub mask: Option<mask::Job>,
}

/// The helper's answer to a [`PlanJob`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanAnswer {
    /// An image of PROD's schema (its settings and `CREATE` texts, no row).
    pub prod_image: Vec<u8>,
    /// The migration's data impact, counted on PROD's rows.
    pub counts: Option<schema_diff::Counts>,
    /// The room the migration takes, measured on PROD's pages.
    pub bytes: Option<schema_diff::space::MigrationBytes>,
    /// Why the comparison could not be made there.
    pub failed: Option<String>,
    /// What the rules would do, counted there.
    pub preview: Option<mask::Preview>,
}

impl HelperJob {
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        serde_json::to_vec(self).map_err(|e| Error::Usage(format!("the helper's job: {e}")))
    }
}

/// An image of the schema of the database at `path`, as bytes: no row but
/// its migration history's (what `schema_diff::behind` compares). Made
/// beside `beside` under a name of this process's, then removed.
pub fn schema_image_bytes(path: &Path, beside: &Path, hints: &schema_diff::Hints) -> Result<Vec<u8>, Error> {
    let image = sqlite_file::sidefile::pid_temp(beside, "schema-image");
    let made = (|| -> Result<Vec<u8>, Error> {
        let (db, _) = schema_diff::open(path, &schema_diff::Reading::default())?;
        let history: Vec<String> = mask::schema::table_names(db.conn())
            .map_err(|e| Error::File(sqlite_file::FileError::sqlite(path, "read the schema", e)))?
            .into_iter()
            .filter(|t| schema_diff::plan::is_migration_table(t, hints))
            .collect();
        mask::schema_image(db.conn(), path, &image, &history)?;
        std::fs::read(&image).map_err(|e| Error::File(sqlite_file::FileError::io(&image, "read", e)))
    })();
    let _ = sqlite_file::sidefile::remove_with_sidecars(&image);
    made
}

impl PlanJob {
    /// On PROD's host: the answer, from `copy` (the helper's private copy,
    /// or PROD itself, read-only), with scratch files beside `scratch` (in
    /// the helper's private folder, removed with it).
    pub fn answer(&self, copy: &Path, scratch: &Path) -> Result<PlanAnswer, Error> {
        let prod_image = schema_image_bytes(copy, scratch, &self.hints)?;
        let mut answer = PlanAnswer {
            prod_image,
            counts: None,
            bytes: None,
            failed: None,
            preview: None,
        };
        let Some(dev_image) = &self.dev_image else {
            return Ok(answer);
        };
        let dev = scratch.with_file_name("dev-schema.db");
        std::fs::write(&dev, dev_image).map_err(|e| Error::File(sqlite_file::FileError::io(&dev, "write", e)))?;
        match schema_diff::compare(&dev, copy, &self.hints, &schema_diff::Reading::default()) {
            Ok(report) => {
                answer.bytes = Some(schema_diff::space::migration_bytes(copy, &report));
                answer.counts = Some(report.counts());
            }
            Err(e) => answer.failed = Some(e.to_string()),
        }
        if let Some(job) = &self.mask {
            let key = mask::Key::from_hex(&job.key)
                .ok_or_else(|| Error::Usage("the job's key is not 32 bytes in hex".into()))?;
            let (data, _) = schema_diff::open(copy, &schema_diff::Reading::default())?;
            let (result, _) = schema_diff::open(&dev, &schema_diff::Reading::default())?;
            answer.preview = Some(mask::preview(
                data.conn(),
                result.conn(),
                &job.rules,
                &key,
                &job.exempt,
                false,
            ));
        }
        let _ = sqlite_file::sidefile::remove_with_sidecars(&dev);
        Ok(answer)
    }
}
