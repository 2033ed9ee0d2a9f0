//! The evidence itself: accepted records (each a log leaf), their clips, files stored
//! unattested, and the receipts handed to devices.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use custody::{
    ChainAnchor, Fact, Finding, MediaHash, PublicKey, Record, RecordHash, Signature, Verified,
};
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::reports::ClipStatus;
use super::sessions::insert_findings;
use super::{Ledger, LedgerError, SessionId, db_time, parse_db_time, to_i64};
use crate::tlog::{self};

/// The ledger's facts about one clip, as a clip row is committed.
#[derive(Debug, Clone)]
pub struct ClipEntry {
    /// What the store holds for it: `None` when the media was missing on the device.
    pub stored: Option<(MediaHash, u64)>,
    /// Its storage deadline.
    pub deadline: DateTime<Utc>,
    /// Stored after the deadline.
    pub late: bool,
    /// The lawful delay reason declared for the dock, if any.
    pub delay_reason: Option<String>,
}

/// A record the ledger holds, as a receipt needs it.
#[derive(Debug, Clone)]
pub struct LedgerRecord {
    /// Seq on its device.
    pub seq: u64,
    /// Hash of its bytes.
    pub hash: RecordHash,
    /// Its leaf index in the log.
    pub log_index: u64,
}

impl Ledger {
    /// A record the ledger holds, with the signature it was committed with, verified
    /// again against its device's enrolled key on the way out: whatever leaves the ledger
    /// (a disc, an export) is checked, not trusted.
    ///
    /// # Errors
    /// SQL failure, or a stored record that no longer parses or verifies
    /// ([`LedgerError::Invalid`]).
    pub fn record(&self, hash: &RecordHash) -> Result<Option<Record<Verified>>, LedgerError> {
        let row: Option<(Vec<u8>, Vec<u8>, String)> = self
            .conn
            .query_row(
                "SELECT r.bytes, r.sig, d.key_pem FROM records r
                 JOIN devices d ON d.serial = r.serial WHERE r.hash = ?1",
                [&hash.0[..]],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((bytes, sig, pem)) = row else {
            return Ok(None);
        };
        let damaged = |why: String| LedgerError::Invalid(format!("stored record {hash}: {why}"));
        let key = PublicKey::from_pem(&pem).map_err(|e| damaged(e.to_string()))?;
        let sig = Signature::from_bytes(&sig).map_err(|e| damaged(e.to_string()))?;
        let rec = Record::parse(bytes)
            .map_err(|e| damaged(e.to_string()))?
            .verify(&key, &sig)
            .map_err(|e| damaged(e.to_string()))?;
        Ok(Some(rec))
    }

    /// When the station last stored a clip of `serial` (its latest dock or upload that
    /// stored anything), if ever.
    ///
    /// # Errors
    /// SQL failure, or a stored time the ledger did not write.
    pub fn last_stored(&self, serial: &str) -> Result<Option<DateTime<Utc>>, LedgerError> {
        let at: Option<String> = self.conn.query_row(
            "SELECT MAX(stored_at) FROM clips WHERE serial = ?1 AND stored_sha256 IS NOT NULL",
            [serial],
            |r| r.get(0),
        )?;
        at.as_deref().map(parse_db_time).transpose()
    }

    /// The device's last record in the ledger: its chain continues from here.
    ///
    /// # Errors
    /// SQL failure.
    pub fn anchor(&self, serial: &str) -> Result<Option<ChainAnchor>, LedgerError> {
        Ok(self
            .conn
            .query_row(
                "SELECT seq, hash FROM records WHERE serial = ?1 ORDER BY seq DESC LIMIT 1",
                [serial],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, [u8; 32]>(1)?)),
            )
            .optional()?
            .map(|(seq, hash)| ChainAnchor {
                seq: seq.unsigned_abs(),
                hash: RecordHash(hash),
            }))
    }

    /// Files of the device's clips the store holds (as stored: name → stored size).
    ///
    /// # Errors
    /// SQL failure.
    pub fn stored_clip_files(&self, serial: &str) -> Result<HashMap<String, u64>, LedgerError> {
        let mut stmt = self.conn.prepare(
            "SELECT file, stored_size FROM clips WHERE serial = ?1 AND stored_sha256 IS NOT NULL",
        )?;
        let files = stmt.query_map([serial], |r| {
            Ok((r.get(0)?, r.get::<_, i64>(1)?.unsigned_abs()))
        })?;
        Ok(files.collect::<Result<_, _>>()?)
    }

    /// Commits a verified record (and, for a clip, what the store holds), its findings and
    /// its log leaf, all in one transaction. Returns its log index.
    ///
    /// # Errors
    /// SQL failure (then nothing of it is in the ledger), or the record is already there.
    pub fn commit_record(
        &mut self,
        session: SessionId,
        rec: &Record<Verified>,
        clip: Option<&ClipEntry>,
        findings: &[Finding],
        now: DateTime<Utc>,
    ) -> Result<u64, LedgerError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let body = rec.body();
        let index = tlog::append_leaf(&tx, rec.bytes())?;
        let kind = match &body.fact {
            Fact::Clip(_) => "clip",
            Fact::Binding(_) => "binding",
            Fact::Annotation(_) => "annotation",
        };
        tx.execute(
            "INSERT INTO records (log_index, serial, seq, hash, kind, bytes, sig, session, stored_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                to_i64(index),
                body.device.serial,
                to_i64(body.seq),
                &rec.hash().0[..],
                kind,
                rec.bytes(),
                &rec.signature().0[..],
                session.0,
                db_time(now)
            ],
        )?;
        match (&body.fact, clip) {
            (Fact::Clip(fact), Some(entry)) => {
                tx.execute(
                    "INSERT INTO clips (record_hash, serial, seq, number, case_number, file,
                         officer_cert, signed_sha256, signed_size, stored_sha256, stored_size,
                         recorded_end, deadline, stored_at, late, delay_reason)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
                    params![
                        &rec.hash().0[..],
                        body.device.serial,
                        to_i64(body.seq),
                        fact.number,
                        fact.case_number,
                        fact.media.file,
                        body.officer.cert_no,
                        &fact.media.sha256.0[..],
                        to_i64(fact.media.size),
                        entry.stored.map(|(h, _)| h.0.to_vec()),
                        entry.stored.map(|(_, s)| to_i64(s)),
                        db_time(fact.time.end.with_timezone(&Utc)),
                        db_time(entry.deadline),
                        db_time(now),
                        entry.late,
                        entry.delay_reason,
                    ],
                )?;
            }
            (Fact::Binding(binding), _) => {
                tx.execute(
                    "INSERT INTO bindings (record_hash, subject, case_number, number)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![
                        &rec.hash().0[..],
                        &binding.subject.0[..],
                        binding.case_number,
                        binding.number
                    ],
                )?;
            }
            (Fact::Clip(_), None) => {
                return Err(LedgerError::Invalid(
                    "a clip record needs its clip entry".into(),
                ));
            }
            (Fact::Annotation(_), _) => {}
        }
        insert_findings(&tx, session, Some(&body.device.serial), findings, now)?;
        tx.commit()?;
        Ok(index)
    }

    /// Commits a file no record covers, stored with the station's own hash, and its finding.
    ///
    /// # Errors
    /// SQL failure.
    pub fn commit_unattested(
        &mut self,
        session: SessionId,
        serial: &str,
        file: &str,
        stored: (MediaHash, u64),
        finding: &Finding,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let tx = self.conn.transaction()?;
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO unattested (session, serial, file, sha256, size, stored_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                session.0,
                serial,
                file,
                &stored.0.0[..],
                to_i64(stored.1),
                db_time(now)
            ],
        )?;
        // Docked again with the same file: it is already in, and already reported.
        if inserted == 1 {
            insert_findings(
                &tx,
                session,
                Some(serial),
                std::slice::from_ref(finding),
                now,
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The device's records a receipt should cover: those after the last receipt issued,
    /// whose clip (if any) is stored with the signed hash. Mismatched or missing clips are
    /// never receipted, so the device keeps them.
    ///
    /// # Errors
    /// SQL failure.
    pub fn unreceipted(&self, serial: &str) -> Result<Vec<LedgerRecord>, LedgerError> {
        let mut stmt = self.conn.prepare(
            "SELECT r.seq, r.hash, r.log_index, r.kind,
                    c.signed_sha256, c.signed_size, c.stored_sha256, c.stored_size
             FROM records r LEFT JOIN clips c ON c.record_hash = r.hash
             WHERE r.serial = ?1
               AND r.seq > COALESCE((SELECT MAX(max_seq) FROM receipts WHERE serial = ?1), 0)
             ORDER BY r.seq",
        )?;
        let mut rows = stmt.query([serial])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let kind: String = r.get(3)?;
            if kind == "clip" {
                let hash = |i: usize| -> Result<Option<MediaHash>, LedgerError> {
                    Ok(r.get::<_, Option<[u8; 32]>>(i)?.map(MediaHash))
                };
                let size = |i: usize| -> Result<Option<u64>, LedgerError> {
                    Ok(r.get::<_, Option<i64>>(i)?.map(i64::unsigned_abs))
                };
                let signed = hash(4)?.zip(size(5)?);
                let stored = hash(6)?.zip(size(7)?);
                // A clip is receipted only when verified; the device keeps the others.
                if signed
                    .is_none_or(|signed| ClipStatus::of(signed, stored) != ClipStatus::Verified)
                {
                    continue;
                }
            }
            out.push(LedgerRecord {
                seq: r.get::<_, i64>(0)?.unsigned_abs(),
                hash: RecordHash(r.get(1)?),
                log_index: r.get::<_, i64>(2)?.unsigned_abs(),
            });
        }
        Ok(out)
    }

    /// Keeps a copy of a receipt delivered to a device.
    ///
    /// # Errors
    /// SQL failure.
    pub fn commit_receipt(
        &mut self,
        session: SessionId,
        serial: &str,
        (max_seq, log_size): (u64, u64),
        bytes: &[u8],
        sig: &Signature,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        self.conn.execute(
            "INSERT INTO receipts (session, serial, max_seq, log_size, bytes, sig, issued_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                session.0,
                serial,
                to_i64(max_seq),
                to_i64(log_size),
                bytes,
                &sig.0[..],
                db_time(now)
            ],
        )?;
        Ok(())
    }
}
