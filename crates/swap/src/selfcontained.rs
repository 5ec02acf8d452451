//! Making the old TARGET self-contained, the way SQLite would: its hot
//! journal rolled back, its WAL checkpointed, its sidecars removed by SQLite.

use super::*;

/// Makes the database at `db` self-contained, as SQLite itself would: open
/// it (SQLite rolls back a hot journal), checkpoint its WAL into it and
/// close it (the last connection removes `-wal` and `-shm`). Returns what
/// was done. Fails if a sidecar is still there afterwards.
pub fn make_self_contained(db: &Path, busy_timeout: Duration) -> Result<Vec<String>, Error> {
    let before = Sidecars::of(db).map_err(|e| io_error(db, "look for sidecars", e))?;
    let mut done = Vec::new();
    let live_journal = before.journal == Some(JournalState::Live);
    if before.wal.is_some() || before.shm.is_some() || live_journal {
        let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .map_err(|e| sqlite_error(db, "open", e))?;
        conn.busy_timeout(sqlite_file::wait::busy_timeout(busy_timeout))
            .map_err(|e| sqlite_error(db, "busy timeout", e))?;
        let _: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
            .map_err(|e| sqlite_error(db, "read (and recover)", e))?;
        if live_journal {
            done.push("rolled back a hot -journal (an interrupted transaction)".to_owned());
        }
        if before.wal.is_some() {
            let busy: i64 = conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
                .map_err(|e| sqlite_error(db, "checkpoint", e))?;
            if busy != 0 {
                return Err(Error::Busy {
                    path: db.to_owned(),
                    secs: busy_timeout.as_secs_f64(),
                    what: "checkpoint of its -wal",
                });
            }
            if before.wal_has_frames() {
                // TRUNCATE answers 0 frames once it has reset the log: count them from its size.
                let page_size: u64 = conn
                    .query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))
                    .map_err(|e| sqlite_error(db, "page_size", e))? as u64;
                let frames = (before.wal.unwrap_or(0) - 32) / (24 + page_size);
                done.push(format!("checkpointed its -wal ({frames} frames) into it"));
            }
        }
        conn.close().map_err(|(_, e)| sqlite_error(db, "close", e))?;
    }
    let after = Sidecars::of(db).map_err(|e| io_error(db, "look for sidecars", e))?;
    if after.journal == Some(JournalState::Inactive) && after.wal.is_none() && after.shm.is_none() {
        // Empty or zeroed header: nothing SQLite would ever roll back.
        std::fs::remove_file(sidecar_path(db, Sidecar::Journal))
            .map_err(|e| io_error(db, "remove the inactive -journal", e))?;
        done.push("removed an inactive -journal (TRUNCATE/PERSIST leftover)".to_owned());
    }
    let left = Sidecars::of(db).map_err(|e| io_error(db, "look for sidecars", e))?;
    if !left.is_empty() {
        return Err(Error::NotSelfContained {
            path: db.to_owned(),
            left: left.present().iter().map(|s| s.suffix()).collect::<Vec<_>>().join(", "),
        });
    }
    Ok(done)
}
