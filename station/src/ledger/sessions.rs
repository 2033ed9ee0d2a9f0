//! Dock and audit sessions, their findings, and quarantined slots.

use chrono::{DateTime, Utc};
use custody::Finding;
use rusqlite::{Transaction, params};

use super::{Ledger, LedgerError, SessionEnd, SessionId, db_time, to_i64};

pub(super) fn insert_findings(
    tx: &Transaction<'_>,
    session: SessionId,
    serial: Option<&str>,
    findings: &[Finding],
    now: DateTime<Utc>,
) -> Result<(), LedgerError> {
    let mut insert = tx.prepare(
        "INSERT INTO findings (session, serial, level, code, subject, detail, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for f in findings {
        let level = match f.level {
            custody::Level::Error => "error",
            custody::Level::Warning => "warning",
        };
        insert.execute(params![
            session.0,
            serial,
            level,
            f.code,
            f.subject,
            f.detail,
            db_time(now)
        ])?;
    }
    Ok(())
}

impl Ledger {
    /// Opens a dock session.
    ///
    /// # Errors
    /// SQL failure.
    pub fn open_session(
        &mut self,
        slot: &str,
        serial: Option<&str>,
        delay_reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<SessionId, LedgerError> {
        self.conn.execute(
            "INSERT INTO sessions (slot, serial, started_at, delay_reason) VALUES (?1, ?2, ?3, ?4)",
            params![slot, serial, db_time(now), delay_reason],
        )?;
        Ok(SessionId(self.conn.last_insert_rowid()))
    }

    /// Closes a session with its outcome and a JSON summary.
    ///
    /// # Errors
    /// SQL failure.
    pub fn close_session(
        &mut self,
        session: SessionId,
        outcome: SessionEnd,
        summary: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        self.conn.execute(
            "INSERT INTO session_ends (session, ended_at, outcome, summary) VALUES (?1, ?2, ?3, ?4)",
            params![session.0, db_time(now), outcome.as_str(), summary.to_string()],
        )?;
        Ok(())
    }

    /// Records findings about a session (not tied to one record).
    ///
    /// # Errors
    /// SQL failure.
    pub fn add_findings(
        &mut self,
        session: SessionId,
        serial: Option<&str>,
        findings: &[Finding],
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let tx = self.conn.transaction()?;
        insert_findings(&tx, session, serial, findings, now)?;
        tx.commit()?;
        Ok(())
    }

    /// Records a quarantined slot.
    ///
    /// # Errors
    /// SQL failure.
    pub fn commit_quarantine(
        &mut self,
        session: SessionId,
        claimed: Option<&str>,
        folder: &str,
        (files, bytes): (u64, u64),
        finding: &Finding,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO quarantine (session, claimed, folder, files, bytes, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                session.0,
                claimed,
                folder,
                to_i64(files),
                to_i64(bytes),
                db_time(now)
            ],
        )?;
        insert_findings(&tx, session, claimed, std::slice::from_ref(finding), now)?;
        tx.commit()?;
        Ok(())
    }
}
