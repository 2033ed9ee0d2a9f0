//! Case files (案卷): the station's own signed records (documents attached, cases closed)
//! in its chain and its log, and what the case view and the overdue list read of them.

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use custody::{
    MediaHash, RecordHash, STATION_FORMAT_V1, Signer, StationFact, StationRecord,
    StationRecordBody, StationRef,
};
use rusqlite::{OptionalExtension as _, TransactionBehavior, params};

use super::{Ledger, LedgerError, db_time, parse_db_time, to_i64};
use crate::tlog;

/// A document attached to a case.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LedgerDocument {
    /// Hash of the station record that describes it.
    pub record: RecordHash,
    /// Its leaf in the log.
    pub log_index: u64,
    /// Title.
    pub title: String,
    /// File name as attached.
    pub file: String,
    /// SHA-256 of its bytes (its object in the store).
    pub sha256: MediaHash,
    /// Size in bytes.
    pub size: u64,
    /// Who attached it.
    pub attached_by: String,
    /// When.
    pub attached_at: DateTime<Utc>,
}

/// A case's latest closure: when its act ended and when its case file is due.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LedgerClosure {
    /// The case.
    pub case_number: String,
    /// The day the act ended.
    pub ended: NaiveDate,
    /// The case file's due date.
    pub due: NaiveDate,
    /// When it was closed.
    pub closed_at: DateTime<Utc>,
}

fn date(text: &str) -> Result<NaiveDate, LedgerError> {
    text.parse()
        .map_err(|e| LedgerError::Invalid(format!("stored date {text:?}: {e}")))
}

impl Ledger {
    /// Seals `fact` as the station's next record (signed by `signer`, chained to the last
    /// one) and commits it with its log leaf and its table row in one transaction, so two
    /// clerks at once never fork the chain.
    ///
    /// # Errors
    /// The signer fails, or SQL fails (nothing is committed then).
    pub fn commit_station_fact(
        &mut self,
        fact: StationFact,
        signer: &dyn Signer,
        origin: &str,
        created: DateTime<FixedOffset>,
    ) -> Result<StationRecord, LedgerError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let head: Option<(i64, Vec<u8>)> = tx
            .query_row(
                "SELECT seq, hash FROM station_records ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let prev = head
            .as_ref()
            .map(|(_, h)| {
                <[u8; 32]>::try_from(h.as_slice())
                    .map(RecordHash)
                    .map_err(|_| {
                        LedgerError::Invalid("a station record hash is not 32 bytes".into())
                    })
            })
            .transpose()?;
        let body = StationRecordBody {
            format: STATION_FORMAT_V1.into(),
            seq: head.map_or(1, |(seq, _)| seq.unsigned_abs() + 1),
            prev,
            station: StationRef {
                origin: origin.into(),
                key_id: signer.public_key().key_id(),
            },
            created,
            fact,
        };
        let rec = StationRecord::seal(&body, signer)
            .map_err(|e| LedgerError::Invalid(format!("cannot seal a station record: {e}")))?;
        let now = db_time(created.with_timezone(&Utc));
        let index = tlog::append_leaf(&tx, rec.bytes())?;
        tx.execute(
            "INSERT INTO station_records (log_index, seq, hash, kind, case_number, bytes, sig, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                to_i64(index),
                to_i64(body.seq),
                &rec.hash().0[..],
                body.fact.kind(),
                body.fact.case_number(),
                rec.bytes(),
                &rec.signature().0[..],
                now
            ],
        )?;
        match &body.fact {
            StationFact::Document(d) => tx.execute(
                "INSERT INTO documents (record_hash, case_number, title, file, sha256, size, attached_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    &rec.hash().0[..],
                    d.case_number,
                    d.title,
                    d.file,
                    &d.sha256.0[..],
                    to_i64(d.size),
                    now
                ],
            )?,
            StationFact::CaseClosed(c) => tx.execute(
                "INSERT INTO case_closures (record_hash, case_number, ended, due, closed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    &rec.hash().0[..],
                    c.case_number,
                    c.ended.to_string(),
                    c.due.to_string(),
                    now
                ],
            )?,
        };
        tx.commit()?;
        Ok(rec)
    }

    /// The documents attached to `case`, in the order they were attached.
    ///
    /// # Errors
    /// SQL failure or a stored value the ledger did not write.
    pub fn case_documents(&self, case: &str) -> Result<Vec<LedgerDocument>, LedgerError> {
        let mut stmt = self.conn.prepare(
            "SELECT d.record_hash, s.log_index, d.title, d.file, d.sha256, d.size, s.bytes,
                    d.attached_at
             FROM documents d JOIN station_records s ON s.hash = d.record_hash
             WHERE d.case_number = ?1 ORDER BY s.log_index",
        )?;
        let mut rows = stmt.query([case])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let hash = |b: Vec<u8>| {
                <[u8; 32]>::try_from(b.as_slice())
                    .map_err(|_| LedgerError::Invalid("a stored hash is not 32 bytes".into()))
            };
            let body: StationRecordBody = serde_json::from_slice(&r.get::<_, Vec<u8>>(6)?)
                .map_err(|e| LedgerError::Invalid(format!("stored station record: {e}")))?;
            let StationFact::Document(fact) = body.fact else {
                return Err(LedgerError::Invalid(
                    "a document row points at another kind of record".into(),
                ));
            };
            out.push(LedgerDocument {
                record: RecordHash(hash(r.get(0)?)?),
                log_index: r.get::<_, i64>(1)?.unsigned_abs(),
                title: r.get(2)?,
                file: r.get(3)?,
                sha256: MediaHash(hash(r.get(4)?)?),
                size: r.get::<_, i64>(5)?.unsigned_abs(),
                attached_by: fact.attached_by,
                attached_at: parse_db_time(&r.get::<_, String>(7)?)?,
            });
        }
        Ok(out)
    }

    /// Every closed case with its latest closure, by due date.
    ///
    /// # Errors
    /// SQL failure or a stored value the ledger did not write.
    pub fn case_closures(&self) -> Result<Vec<LedgerClosure>, LedgerError> {
        self.closures_where("")
    }

    /// The latest closure of `case`, if it was closed.
    ///
    /// # Errors
    /// SQL failure or a stored value the ledger did not write.
    pub fn case_closure(&self, case: &str) -> Result<Option<LedgerClosure>, LedgerError> {
        Ok(self
            .closures_where(case)?
            .into_iter()
            .find(|c| c.case_number == case))
    }

    /// Latest closure per case (of `case` only, unless empty).
    fn closures_where(&self, case: &str) -> Result<Vec<LedgerClosure>, LedgerError> {
        let mut stmt = self.conn.prepare(
            "SELECT c.case_number, c.ended, c.due, c.closed_at
             FROM case_closures c JOIN station_records s ON s.hash = c.record_hash
             WHERE s.log_index = (SELECT MAX(s2.log_index) FROM case_closures c2
                                  JOIN station_records s2 ON s2.hash = c2.record_hash
                                  WHERE c2.case_number = c.case_number)
               AND (?1 = '' OR c.case_number = ?1)
             ORDER BY c.due, c.case_number",
        )?;
        let mut rows = stmt.query([case])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(LedgerClosure {
                case_number: r.get(0)?,
                ended: date(&r.get::<_, String>(1)?)?,
                due: date(&r.get::<_, String>(2)?)?,
                closed_at: parse_db_time(&r.get::<_, String>(3)?)?,
            });
        }
        Ok(out)
    }
}
