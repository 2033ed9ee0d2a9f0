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

/// A signed record as a disc or an export ships it: its exact bytes, the signature the
/// ledger keeps for it, and its leaf in the log.
#[derive(Debug, Clone)]
pub struct ShippedRecord {
    /// The device serial, or `None` for a station record.
    pub serial: Option<String>,
    /// Seq in its chain (the device's or the station's).
    pub seq: u64,
    /// Its leaf index in the log.
    pub log_index: u64,
    /// The exact bytes.
    pub bytes: Vec<u8>,
    /// The signature (64 bytes).
    pub sig: Vec<u8>,
}

/// A disc of a case as the ledger keeps it, with its last burn and check.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LedgerDisc {
    /// The case.
    pub case_number: String,
    /// Its volume id.
    pub volume_id: String,
    /// Its disc set, from 1.
    pub set: u64,
    /// Disc number in the set.
    pub disc: u64,
    /// Discs in the set.
    pub of: u64,
    /// Medium.
    pub medium: String,
    /// SHA-256 of the image.
    pub image_sha256: MediaHash,
    /// Size of the image.
    pub image_size: u64,
    /// When it was built.
    pub built_at: DateTime<Utc>,
    /// Whether the last burn succeeded (`None`: never burned).
    pub burned: Option<bool>,
    /// Whether the last check found it intact (`None`: never checked).
    pub intact: Option<bool>,
    /// When it was last checked.
    pub checked_at: Option<DateTime<Utc>>,
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

/// A station record read as `seq, log_index, bytes, sig`, as a disc or an export ships it.
pub(super) fn shipped_station_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<ShippedRecord> {
    Ok(ShippedRecord {
        serial: None,
        seq: r.get::<_, i64>(0)?.unsigned_abs(),
        log_index: r.get::<_, i64>(1)?.unsigned_abs(),
        bytes: r.get(2)?,
        sig: r.get(3)?,
    })
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
        insert_fact_row(&tx, &rec.hash(), body.seq, index, &body.fact, &now)?;
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

    /// Every device record about the case's clips: each clip record under or bound to the
    /// case, and the bindings and annotations of those clips, in log order.
    ///
    /// # Errors
    /// SQL failure or a stored annotation that no longer parses.
    pub fn case_device_records(&self, case: &str) -> Result<Vec<ShippedRecord>, LedgerError> {
        let mut stmt = self.conn.prepare(
            "WITH subjects AS (
                 SELECT record_hash AS h FROM clips WHERE case_number = ?1
                 UNION SELECT subject FROM bindings WHERE case_number = ?1)
             SELECT r.serial, r.seq, r.log_index, r.kind, r.bytes, r.sig,
                    r.hash IN (SELECT h FROM subjects), r.hash
             FROM records r
             WHERE r.hash IN (SELECT h FROM subjects)
                OR r.hash IN (SELECT record_hash FROM bindings WHERE subject IN (SELECT h FROM subjects))
                OR (r.kind = 'annotation'
                    AND r.serial IN (SELECT serial FROM clips WHERE record_hash IN (SELECT h FROM subjects)))
             ORDER BY r.log_index",
        )?;
        let mut rows = stmt.query([case])?;
        let mut found = Vec::new();
        let mut subjects = std::collections::HashSet::new();
        while let Some(r) = rows.next()? {
            if r.get::<_, bool>(6)? {
                subjects.insert(r.get::<_, Vec<u8>>(7)?);
            }
            let kind: String = r.get(3)?;
            let record = ShippedRecord {
                serial: Some(r.get(0)?),
                seq: r.get::<_, i64>(1)?.unsigned_abs(),
                log_index: r.get::<_, i64>(2)?.unsigned_abs(),
                bytes: r.get(4)?,
                sig: r.get(5)?,
            };
            found.push((kind == "annotation", record));
        }
        // Only the annotations of this case's clips.
        let mut out = Vec::new();
        for (annotation, record) in found {
            if annotation {
                let rec = custody::Record::parse(record.bytes.clone())
                    .map_err(|e| LedgerError::Invalid(format!("stored annotation: {e}")))?;
                match &rec.body().fact {
                    custody::Fact::Annotation(a) if subjects.contains(&a.subject.0[..]) => {}
                    _ => continue,
                }
            }
            out.push(record);
        }
        Ok(out)
    }

    /// The station records of the case file (documents, closures, discs; not the access
    /// events, requests and decisions about it), in log order.
    ///
    /// # Errors
    /// SQL failure.
    pub fn case_station_records(&self, case: &str) -> Result<Vec<ShippedRecord>, LedgerError> {
        let mut stmt = self.conn.prepare(
            "SELECT seq, log_index, bytes, sig FROM station_records WHERE case_number = ?1
               AND kind NOT IN ('access', 'request', 'decision')
             ORDER BY log_index",
        )?;
        let rows = stmt.query_map([case], shipped_station_record)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many disc sets were built for `case` so far.
    ///
    /// # Errors
    /// SQL failure.
    pub fn disc_sets(&self, case: &str) -> Result<u64, LedgerError> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM discs WHERE case_number = ?1 AND disc = 1",
            [case],
            |r| r.get(0),
        )?;
        Ok(n.unsigned_abs())
    }

    /// The discs built for `case`, by set and number, each with its last burn and its last
    /// check.
    ///
    /// # Errors
    /// SQL failure or a stored value the ledger did not write.
    pub fn case_discs(&self, case: &str) -> Result<Vec<LedgerDisc>, LedgerError> {
        self.discs_where(case)
    }

    /// Every disc of every case (for the periodic check schedule).
    ///
    /// # Errors
    /// SQL failure or a stored value the ledger did not write.
    pub fn all_discs(&self) -> Result<Vec<LedgerDisc>, LedgerError> {
        self.discs_where("")
    }

    fn discs_where(&self, case: &str) -> Result<Vec<LedgerDisc>, LedgerError> {
        let mut stmt = self.conn.prepare(
            "SELECT d.case_number, d.volume_id, d.disc_set, d.disc, d.disc_count, d.medium,
                    d.image_sha256, d.image_size, d.built_at,
                    (SELECT b.burned FROM disc_burns b JOIN station_records s ON s.hash = b.record_hash
                      WHERE b.volume_id = d.volume_id ORDER BY s.log_index DESC LIMIT 1),
                    (SELECT c.intact FROM disc_checks c JOIN station_records s ON s.hash = c.record_hash
                      WHERE c.volume_id = d.volume_id ORDER BY s.log_index DESC LIMIT 1),
                    (SELECT c.checked_at FROM disc_checks c JOIN station_records s ON s.hash = c.record_hash
                      WHERE c.volume_id = d.volume_id ORDER BY s.log_index DESC LIMIT 1)
             FROM discs d WHERE (?1 = '' OR d.case_number = ?1)
             ORDER BY d.case_number, d.disc_set, d.disc",
        )?;
        let mut rows = stmt.query([case])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let image: Vec<u8> = r.get(6)?;
            out.push(LedgerDisc {
                case_number: r.get(0)?,
                volume_id: r.get(1)?,
                set: r.get::<_, i64>(2)?.unsigned_abs(),
                disc: r.get::<_, i64>(3)?.unsigned_abs(),
                of: r.get::<_, i64>(4)?.unsigned_abs(),
                medium: r.get(5)?,
                image_sha256: MediaHash(
                    <[u8; 32]>::try_from(image.as_slice()).map_err(|_| {
                        LedgerError::Invalid("a stored hash is not 32 bytes".into())
                    })?,
                ),
                image_size: r.get::<_, i64>(7)?.unsigned_abs(),
                built_at: parse_db_time(&r.get::<_, String>(8)?)?,
                burned: r.get(9)?,
                intact: r.get(10)?,
                checked_at: r
                    .get::<_, Option<String>>(11)?
                    .as_deref()
                    .map(parse_db_time)
                    .transpose()?,
            });
        }
        Ok(out)
    }

    /// The disc whose image has this SHA-256: its case and volume id.
    ///
    /// # Errors
    /// SQL failure.
    pub fn disc_by_image(
        &self,
        sha256: &MediaHash,
    ) -> Result<Option<(String, String)>, LedgerError> {
        Ok(self
            .conn
            .query_row(
                "SELECT case_number, volume_id FROM discs WHERE image_sha256 = ?1",
                [&sha256.0[..]],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// The disc built under `volume_id`: its case and the SHA-256 of its `SHA256SUMS`.
    ///
    /// # Errors
    /// SQL failure.
    pub fn disc(&self, volume_id: &str) -> Result<Option<(String, MediaHash)>, LedgerError> {
        let row: Option<(String, Vec<u8>)> = self
            .conn
            .query_row(
                "SELECT case_number, sums_sha256 FROM discs WHERE volume_id = ?1",
                [volume_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        row.map(|(case, sums)| {
            <[u8; 32]>::try_from(sums.as_slice())
                .map(|h| (case, MediaHash(h)))
                .map_err(|_| LedgerError::Invalid("a stored hash is not 32 bytes".into()))
        })
        .transpose()
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
        Ok(self.closures_where(case)?.into_iter().next())
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

/// The table row of a station fact, beside its record.
fn insert_fact_row(
    tx: &rusqlite::Transaction<'_>,
    hash: &RecordHash,
    seq: u64,
    log_index: u64,
    fact: &StationFact,
    now: &str,
) -> Result<(), LedgerError> {
    match fact {
        StationFact::Access(a) => super::access::insert_access_event(tx, hash, log_index, a, now)?,
        StationFact::Request(r) => super::access::insert_request(tx, hash, seq, r, now)?,
        StationFact::Decision(d) => super::access::insert_decision(tx, hash, d, now)?,
        StationFact::Document(d) => tx.execute(
            "INSERT INTO documents (record_hash, case_number, title, file, sha256, size, attached_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                &hash.0[..],
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
                &hash.0[..],
                c.case_number,
                c.ended.to_string(),
                c.due.to_string(),
                now
            ],
        )?,
        StationFact::DiscBuilt(d) => tx.execute(
            "INSERT INTO discs (record_hash, case_number, volume_id, disc_set, disc, disc_count,
                 medium, image_sha256, image_size, sums_sha256, built_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                &hash.0[..],
                d.case_number,
                d.volume_id,
                to_i64(d.set),
                d.disc,
                d.of,
                d.medium,
                &d.image_sha256.0[..],
                to_i64(d.image_size),
                &d.sums_sha256.0[..],
                now
            ],
        )?,
        StationFact::DiscBurned(b) => tx.execute(
            "INSERT INTO disc_burns (record_hash, volume_id, drive, burned, detail, burned_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![&hash.0[..], b.volume_id, b.drive, b.burned, b.detail, now],
        )?,
        StationFact::DiscChecked(c) => tx.execute(
            "INSERT INTO disc_checks (record_hash, volume_id, source, intact, problems, checked_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                &hash.0[..],
                c.volume_id,
                c.source,
                c.intact,
                to_i64(c.problems),
                now
            ],
        )?,
    };
    Ok(())
}
