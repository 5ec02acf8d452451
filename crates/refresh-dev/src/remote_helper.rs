//! `refresh-dev remote-helper`: what `ssh HOST refresh-dev remote-helper`
//! runs on PROD's host. It makes what the client asked for (a private copy
//! of PROD, PROD read in place, a masked subset, or a plan's counts) with
//! `snapshot`, `mask` and `schema-diff`, and serves it with
//! `remote::helper::serve` on stdin and stdout.

use std::path::Path;

use exit_code::Exit;
use refresh_dev::helper_job::HelperJob;

/// The PROD host's side of a remote refresh: a private, consistent copy of
/// PROD by `snapshot`'s rules (or, `--no-private-copy`, PROD held in place),
/// then hashes and pages over stdin/stdout.
pub(crate) fn serve() -> Exit {
    use remote::helper::{Pages, Refusal, Request, Served};
    // What the client asked for: PROD's pages, a masked subset built from
    // them (original values never leave this host), or a plan's counts.
    let make_copy = |request: &Request| -> Result<Served, Refusal> {
        let Request {
            prod,
            copy,
            wait,
            job,
            in_place,
        } = *request;
        let refusal = |exit: Exit, code: &str, message: String| Refusal {
            exit: exit.code(),
            code: code.to_owned(),
            message,
        };
        let job: Option<HelperJob> = if job.is_empty() {
            None
        } else {
            Some(serde_json::from_slice(job).map_err(|e| refusal(Exit::BadInput, "usage", format!("the job: {e}")))?)
        };
        let snapshot_error = |e: snapshot::Error| refusal(e.exit(), e.code(), e.to_string());
        // --no-private-copy: PROD read where it lies, in one read transaction
        // (refused for a rollback-mode PROD, in plan and run alike).
        let hold = || snapshot::Held::open(prod, wait).map_err(snapshot_error);
        // Refused here for a rollback-mode PROD whatever the job. Nothing else
        // opens PROD while it is held: closing a second handle on it would drop
        // the read transaction's locks.
        let held = in_place.then(hold).transpose()?;
        let snapshot_into = |to: &Path| {
            // A private copy, read and removed here: no need to flush it to disk.
            let options = snapshot::Options {
                timeout: wait,
                durable: false,
                ..snapshot::Options::default()
            };
            snapshot::Snapshot::new(prod, to, options)
                .run(&mut snapshot::Quiet)
                .map(|_| ())
                .map_err(snapshot_error)
        };
        let failed = |e: refresh_dev::Error| refusal(e.exit(), e.code(), format!("on {}: {e}", prod.display()));
        let answer =
            |json: serde_json::Result<Vec<u8>>| json.map_err(|e| refusal(Exit::Error, "internal", e.to_string()));
        match job {
            None => match held {
                Some(held) => Ok(Served {
                    job_result: Vec::new(),
                    in_place: Some(Box::new(InPlace(held))),
                }),
                None => {
                    snapshot_into(copy)?;
                    Ok(Served {
                        job_result: Vec::new(),
                        in_place: None,
                    })
                }
            },
            // Masked and subset here: original values never leave this host.
            // In place, a WAL-mode PROD is read in one read transaction by the
            // build itself.
            Some(HelperJob::Mask(job)) => {
                drop(held);
                let built = if in_place {
                    job.run(prod, copy)
                } else {
                    let original = copy.with_file_name("original.db");
                    snapshot_into(&original)?;
                    let built = job.run(&original, copy);
                    let _ = sqlite_file::sidefile::remove_with_sidecars(&original);
                    built
                };
                Ok(Served {
                    job_result: answer(serde_json::to_vec(&built.map_err(|e| failed(e.into()))?))?,
                    in_place: None,
                })
            }
            // Counted here, on the copy or (in place) on PROD read-only, with
            // nothing held on it meanwhile: no table data moves. In place,
            // PROD's description for the client is read once the counting has
            // let go.
            Some(HelperJob::Plan(job)) => {
                drop(held);
                let data = if in_place {
                    prod
                } else {
                    snapshot_into(copy)?;
                    copy
                };
                let counted = answer(serde_json::to_vec(&job.answer(data, copy).map_err(failed)?))?;
                let described: Option<Box<dyn Pages>> = match in_place {
                    true => Some(Box::new(InPlace(hold()?))),
                    false => None,
                };
                Ok(Served {
                    job_result: counted,
                    in_place: described,
                })
            }
        }
    };
    let (stdin, stdout) = (std::io::stdin(), std::io::stdout());
    remote::frame::grow_pipe(&stdout);
    match remote::helper::serve(
        &mut stdin.lock(),
        &mut stdout.lock(),
        env!("CARGO_PKG_VERSION"),
        &make_copy,
    ) {
        Ok(()) => Exit::Done,
        Err(e) => {
            cli_support::print_error("refresh-dev remote-helper", &e.to_string());
            Exit::Error
        }
    }
}

/// PROD's pages read in place (`--no-private-copy`), as the helper serves them.
struct InPlace(snapshot::Held);

impl remote::helper::Pages for InPlace {
    fn page_size(&self) -> u32 {
        self.0.page_size()
    }
    fn pages(&self) -> u64 {
        self.0.pages()
    }
    fn mode(&self) -> u32 {
        self.0.mode()
    }
    fn read_pages(&self, first: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.0.read_pages(first, buf).map_err(std::io::Error::other)
    }
}
