//! A WAL-mode database read in place, without a copy: one read transaction
//! held open for as long as its pages are wanted.
//!
//! The same reasoning as the byte copy: while the transaction holds its read
//! mark, a checkpoint can write into the main file only the pages of frames
//! this snapshot sees, and the `-wal` cannot restart. So a page the `-wal`
//! does not name is read from the file as it is, and a page it names is read
//! through SQLite (`sqlite_dbpage`) in the same transaction.
//!
//! The cost, on PROD's side: for as long as a [`Held`] lives, no checkpoint
//! gets past its read mark, so PROD's `-wal` grows by whatever its writers
//! commit meanwhile, and is reset only after. Writers never wait for it.

use std::collections::BTreeSet;
use std::fs::File;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use sqlite_file::{open_read_only, JournalFlag, ReadOnlyDb, Sidecars};

use crate::{has_dbpage, io_error, Error, Options, Quiet, Snapshot, PAGE_THROUGH_SQLITE};

/// A WAL-mode database's pages, as one committed state, read where they lie.
pub struct Held {
    // SQLite's handle first: it is closed before ours, since closing a
    // second handle on the file would drop SQLite's locks.
    db: ReadOnlyDb,
    file: File,
    snapshot: Snapshot,
    page_size: u32,
    pages: u64,
    mode: u32,
    /// Pages (1-based) the `-wal` names: read through SQLite.
    in_wal: BTreeSet<u32>,
}

impl Held {
    /// Opens `source` (which must be in WAL mode) and starts the read
    /// transaction, waiting up to `timeout` for it. `source` is never written
    /// and its folder is left as found. A rollback-mode source is refused
    /// with [`Error::NotWal`]: holding its lock would hold its writers.
    pub fn open(source: &Path, timeout: Duration) -> Result<Held, Error> {
        let snapshot = Snapshot::new(
            source,
            source,
            Options {
                timeout,
                ..Options::default()
            },
        );
        let (file, header) = snapshot.check_source()?;
        if header.journal != JournalFlag::Wal {
            return Err(Error::NotWal(source.to_owned()));
        }
        let mode = file
            .metadata()
            .map_err(|e| io_error(source, "stat", e))?
            .permissions()
            .mode()
            & 0o777;
        let sidecars = Sidecars::of(source).map_err(|e| io_error(source, "look for sidecars", e))?;
        let db = open_read_only(source, &header, &sidecars).map_err(|e| snapshot.source_error(e, "open"))?;
        let (state, _) = snapshot.begin_read(db.conn(), &Quiet)?;
        if !has_dbpage(db.conn()) {
            return Err(Error::MethodUnsupported(source.to_owned()));
        }
        let in_wal = snapshot.pages_in_wal(&state)?;
        Ok(Held {
            db,
            file,
            snapshot,
            page_size: state.page_size,
            pages: state.pages,
            mode,
            in_wal,
        })
    }

    pub fn page_size(&self) -> u32 {
        self.page_size
    }

    /// Pages in this snapshot.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// The source's permission bits.
    pub fn mode(&self) -> u32 {
        self.mode
    }

    /// How many of this snapshot's pages are read through SQLite.
    pub fn pages_in_wal(&self) -> u64 {
        self.in_wal.len() as u64
    }

    /// Fills `buf` (whole pages) with this snapshot's pages from `first`
    /// (0-based) on.
    pub fn read_pages(&self, first: u64, buf: &mut [u8]) -> Result<(), Error> {
        let ps = u64::from(self.page_size);
        let count = buf.len() as u64 / ps;
        if !(buf.len() as u64).is_multiple_of(ps) || first + count > self.pages {
            return Err(Error::BadCopy {
                path: self.snapshot.source.clone(),
                reason: format!("pages {first}..{} asked of {}", first + count, self.pages),
            });
        }
        // The file may end before the snapshot does (a checkpoint truncated
        // it): every page past its end is in the -wal.
        let mut done = 0;
        while done < buf.len() {
            match self.file.read_at(&mut buf[done..], first * ps + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(&self.snapshot.source, "read", e)),
            }
        }
        buf[done..].fill(0);
        let from = u32::try_from(first + 1).unwrap_or(u32::MAX);
        let to = u32::try_from(first + count).unwrap_or(u32::MAX);
        if self.in_wal.range(from..=to).next().is_none() {
            return Ok(());
        }
        let mut stmt = self
            .db
            .conn()
            .prepare_cached(PAGE_THROUGH_SQLITE)
            .map_err(|e| self.snapshot.source_error(e, "read pages"))?;
        for &pgno in self.in_wal.range(from..=to) {
            let data = self
                .snapshot
                .page_through_sqlite(&mut stmt, pgno, ps, &self.snapshot.source)?;
            let at = ((u64::from(pgno) - 1 - first) * ps) as usize;
            buf[at..at + ps as usize].copy_from_slice(&data);
        }
        Ok(())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.db.conn().execute_batch("COMMIT");
    }
}
