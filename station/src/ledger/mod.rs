//! The station's ledger in SQLite (WAL): enrolled devices, dock sessions, every accepted
//! record with its clip, findings, quarantined slots, the Merkle log's nodes, signed
//! checkpoints and receipts. Evidence tables are append-only: triggers refuse UPDATE and
//! DELETE, so a mistake or an intruder with the station's SQL can add, never rewrite.
//!
//! A record, its clip row, its findings and its log leaf commit in one transaction: after a
//! crash the ledger holds a record with all of it or not at all.
//!
//! Every statement is behind a typed function here, one module per group of tables
//! ([`schema`] holds the tables); no connection leaves the ledger.

mod access;
mod cases;
mod devices;
mod evidence;
mod fleet;
mod log;
mod replication;
mod reports;
mod schema;
mod sessions;

use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::Connection;
use serde::Serialize;

pub use access::{AccessQuery, LedgerAccessEvent, LedgerPerson, LedgerRequest};
pub use cases::{LedgerClosure, LedgerDisc, LedgerDocument, ShippedRecord};
pub use devices::EnrolledDevice;
pub use evidence::ClipEntry;
pub use fleet::HeardDevice;
pub use replication::{Queued, ReplicationLag};
pub use reports::{ClipStatus, ClipTotals, LedgerClip, ReportQuery};

use crate::tlog::TlogError;

/// A ledger failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// SQLite failed (locked, corrupt, disk full) or refused (append-only).
    #[error("ledger database")]
    Sql(#[from] rusqlite::Error),
    /// The transparency log in the ledger is damaged, or refused to sign a checkpoint
    /// that does not extend the last one.
    #[error(transparent)]
    Log(#[from] TlogError),
    /// A device enrolled twice, or a stored value that no longer parses.
    #[error("{0}")]
    Invalid(String),
}

/// How a session ended, as the ledger's `session_ends.outcome` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionEnd {
    /// A dock session that verified, stored and receipted what the device held.
    Complete,
    /// An unidentified device: its files kept apart, never mixed with evidence.
    Quarantined,
    /// Stopped before the end (device gone, store full, ledger error); what was committed
    /// stays, the rest is taken at the next dock.
    Interrupted,
    /// A store audit that read every object back.
    Audit,
}

impl SessionEnd {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Quarantined => "quarantined",
            Self::Interrupted => "interrupted",
            Self::Audit => "audit",
        }
    }
}

/// A session's identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct SessionId(pub i64);

/// Times in the ledger: UTC, fixed width, so text order is time order.
pub fn db_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses a time written by [`db_time`].
///
/// # Errors
/// [`LedgerError::Invalid`] for text the ledger did not write.
pub fn parse_db_time(text: &str) -> Result<DateTime<Utc>, LedgerError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| LedgerError::Invalid(format!("stored time {text:?}: {e}")))
}

/// SQLite integers are i64; log indices and seqs never reach 2^63.
fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The ledger database.
pub struct Ledger {
    conn: Connection,
}

impl Ledger {
    /// Opens (creating on first use) the ledger at `path`: WAL, full fsync on commit,
    /// schema and append-only triggers.
    ///
    /// # Errors
    /// [`LedgerError::Sql`] when the file cannot be opened or is not a ledger.
    pub fn open(path: &Path) -> Result<Self, LedgerError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // A commit is on disk before the station tells the device anything about it.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(schema::SCHEMA)?;
        for table in schema::APPEND_ONLY {
            conn.execute_batch(&format!(
                "CREATE TRIGGER IF NOT EXISTS {table}_no_update BEFORE UPDATE ON {table}
                     BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END;
                 CREATE TRIGGER IF NOT EXISTS {table}_no_delete BEFORE DELETE ON {table}
                     BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END;"
            ))?;
        }
        Ok(Self { conn })
    }
}

#[cfg(test)]
mod tests {
    use custody::{Finding, NoteSigner, SigningKey, testkit::SampleDevice};

    use super::*;

    #[test]
    fn evidence_tables_refuse_update_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
        let key = SigningKey::generate().unwrap().0.public_key();
        ledger
            .enroll("A123456", "ga947-recorder", &key, &[], Utc::now())
            .unwrap();
        let s = ledger
            .open_session("slot-1", None, None, Utc::now())
            .unwrap();
        ledger
            .add_findings(s, None, &[Finding::error("x", "y", "z")], Utc::now())
            .unwrap();
        for sql in [
            "UPDATE devices SET hw_profile = 'x'",
            "DELETE FROM devices",
            "UPDATE findings SET code = 'ok'",
            "DELETE FROM findings",
            "DELETE FROM sessions",
        ] {
            let err = ledger.conn.execute(sql, []).unwrap_err();
            assert!(err.to_string().contains("append-only"), "{sql}: {err}");
        }
        // Enrolling the same device twice is refused, not overwritten.
        assert!(
            ledger
                .enroll("A123456", "other", &key, &[], Utc::now())
                .is_err()
        );
    }

    #[test]
    fn records_become_log_leaves_and_checkpoints_only_grow() {
        let dir = tempfile::tempdir().unwrap();
        let dev =
            SampleDevice::with_generated_clips(&dir.path().join("dev"), "A123456", 3, 100).unwrap();
        let mut ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
        let signer = NoteSigner::new("test/station", SigningKey::generate().unwrap().0).unwrap();
        let s = ledger
            .open_session("slot-1", None, None, Utc::now())
            .unwrap();
        let entry = ClipEntry {
            stored: None,
            deadline: Utc::now(),
            late: false,
            delay_reason: None,
        };
        for rec in dev.records() {
            let i = ledger
                .commit_record(s, rec, Some(&entry), &[], Utc::now())
                .unwrap();
            assert_eq!(i + 1, rec.body().seq);
        }
        // The same record twice is refused: (serial, seq) and hash are unique.
        let first = dev.records().next().unwrap();
        assert!(
            ledger
                .commit_record(s, first, Some(&entry), &[], Utc::now())
                .is_err()
        );
        assert_eq!(ledger.log_size().unwrap(), 3);
        let cp3 = ledger.sign_checkpoint(&signer, Utc::now()).unwrap();
        assert_eq!(cp3.size, 3);
        assert_eq!(ledger.anchor("A123456").unwrap().unwrap().seq, 3);
        // Signing again at the same size returns the same checkpoint.
        assert_eq!(
            ledger.sign_checkpoint(&signer, Utc::now()).unwrap().note,
            cp3.note
        );
        // Only verified clips are receipted; these have no stored media.
        assert!(ledger.unreceipted("A123456").unwrap().is_empty());

        // A damaged node table (written around the triggers' reach: a restored backup,
        // a disk error) gives a root the last checkpoint does not extend: no signature.
        ledger.conn.execute_batch(
            "DROP TRIGGER tlog_nodes_no_update; UPDATE tlog_nodes SET hash = zeroblob(32) WHERE level = 1 AND idx = 0;",
        ).unwrap();
        let next =
            SampleDevice::with_generated_clips(&dir.path().join("dev2"), "B123456", 1, 10).unwrap();
        let rec = next.records().next().unwrap();
        ledger
            .commit_record(s, rec, Some(&entry), &[], Utc::now())
            .unwrap();
        let err = ledger.sign_checkpoint(&signer, Utc::now()).unwrap_err();
        assert!(
            matches!(
                err,
                LedgerError::Log(TlogError::Inconsistent { last: 3, size: 4 })
            ),
            "{err}"
        );
    }
}
