//! What reports read, as typed rows: clips with their later bindings and annotations,
//! unattested files, findings and quarantined slots, filtered by a [`ReportQuery`].

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use custody::{Fact, MediaHash, Record, RecordHash, Speaker};
use rusqlite::{OptionalExtension as _, params_from_iter};

use super::{Ledger, LedgerError, SessionId, db_time, parse_db_time};

/// What a report covers. Empty means everything.
#[derive(Debug, Clone, Default)]
pub struct ReportQuery {
    /// One device.
    pub device: Option<String>,
    /// One case (clips whose record names it, or bound to it later).
    pub case: Option<String>,
    /// One dock session.
    pub session: Option<SessionId>,
    /// Clips whose recording ended at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Clips whose recording ended before this time.
    pub to: Option<DateTime<Utc>>,
    /// Only the clips with these record hashes.
    pub records: Option<Vec<RecordHash>>,
    /// One officer's clips (执法证号).
    pub officer: Option<String>,
}

/// What a report's clips add up to, counted by the ledger (a period of a million clips
/// is counted, not loaded).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClipTotals {
    /// Clips.
    pub clips: usize,
    /// Bytes stored.
    pub bytes: u64,
    /// Stored exactly as signed.
    pub verified: usize,
    /// Stored, not as signed.
    pub mismatched: usize,
    /// Nothing stored.
    pub missing: usize,
    /// Stored after their deadline.
    pub late: usize,
}

/// The join a count or a page of clips needs for `query`'s condition: the records, for a
/// dock session's.
fn records_join(query: &ReportQuery) -> &'static str {
    if query.session.is_some() {
        " JOIN records r ON r.hash = c.record_hash"
    } else {
        ""
    }
}

/// The SQL condition (on `clips c` joined to `records r`) of `query`, and its arguments.
fn clip_filter(query: &ReportQuery) -> (String, Vec<String>) {
    let mut filter = String::from(" WHERE 1 = 1");
    let mut args: Vec<String> = Vec::new();
    if let Some(d) = &query.device {
        args.push(d.clone());
        let _ = write!(filter, " AND c.serial = ?{}", args.len());
    }
    if let Some(o) = &query.officer {
        args.push(o.clone());
        let _ = write!(filter, " AND c.officer_cert = ?{}", args.len());
    }
    if let Some(case) = &query.case {
        args.push(case.clone());
        let n = args.len();
        let _ = write!(
            filter,
            " AND (c.case_number = ?{n} OR c.record_hash IN (SELECT subject FROM bindings WHERE case_number = ?{n}))"
        );
    }
    if let Some(s) = query.session {
        args.push(s.0.to_string());
        let _ = write!(filter, " AND r.session = ?{}", args.len());
    }
    if let Some(t) = query.from {
        args.push(db_time(t));
        let _ = write!(filter, " AND c.recorded_end >= ?{}", args.len());
    }
    if let Some(t) = query.to {
        args.push(db_time(t));
        let _ = write!(filter, " AND c.recorded_end < ?{}", args.len());
    }
    if let Some(records) = &query.records {
        // Hex literals of 32-byte hashes: nothing from outside reaches the SQL text.
        let list: Vec<String> = records.iter().map(|h| format!("X'{h}'")).collect();
        let _ = write!(filter, " AND c.record_hash IN ({})", list.join(", "));
    }
    (filter, args)
}

/// What became of a clip's media: the one definition of "a verified clip", used by
/// ingest, receipts and reports alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClipStatus {
    /// Stored with exactly the signed hash and size.
    Verified,
    /// Stored, but not as signed (kept and flagged).
    Mismatch,
    /// Not found on the device: nothing stored.
    Missing,
}

impl ClipStatus {
    /// The status of a clip signed as `signed` (hash, size) of which `stored` was stored.
    pub fn of(signed: (MediaHash, u64), stored: Option<(MediaHash, u64)>) -> Self {
        match stored {
            None => Self::Missing,
            Some(s) if s == signed => Self::Verified,
            Some(_) => Self::Mismatch,
        }
    }
}

/// A clip as the ledger holds it, with what later records said about it.
#[derive(Debug, Clone)]
pub struct LedgerClip {
    /// Device.
    pub serial: String,
    /// Record seq.
    pub seq: u64,
    /// Hash of its record.
    pub record: RecordHash,
    /// Leaf index in the log.
    pub log_index: u64,
    /// The number it was sealed with (provisional before a case existed).
    pub sealed_number: String,
    /// Its number under its case, once a binding record gave one.
    pub case_clip_number: Option<String>,
    /// 案件编号: from its record, or the latest binding.
    pub case_number: Option<String>,
    /// File on the device.
    pub file: String,
    /// 执法证号 of the officer.
    pub officer_cert: String,
    /// What the record signed: hash and size.
    pub signed: (MediaHash, u64),
    /// What the store holds, if anything.
    pub stored: Option<(MediaHash, u64)>,
    /// When the recording ended.
    pub recorded_end: DateTime<Utc>,
    /// Its storage deadline.
    pub deadline: DateTime<Utc>,
    /// When it was stored.
    pub stored_at: DateTime<Utc>,
    /// Stored after the deadline.
    pub late: bool,
    /// Lawful delay reason, if declared.
    pub delay_reason: Option<String>,
    /// 证明对象 as the clip's own record states it, if it did.
    pub proves: Option<String>,
    /// Its duration from the record's media facts, if the agent could read it.
    pub duration_ms: Option<u64>,
    /// Start and end with the clock's source and error, as the record states them.
    pub time: custody::TimeSpan,
    /// Where it was recorded, if the device had a fix.
    pub location: Option<custody::Location>,
    /// 姓名 of the officer the record names.
    pub officer_name: String,
}

impl LedgerClip {
    /// What became of its media.
    pub fn status(&self) -> ClipStatus {
        ClipStatus::of(self.signed, self.stored)
    }
}

/// What annotation records said of a clip, later records winning field by field.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ClipNotes {
    /// 证明对象.
    pub proves: Option<String>,
    /// 对话人员身份.
    pub speakers: Vec<Speaker>,
    /// 主要对话内容.
    pub summary: Option<String>,
}

/// A file stored without a record.
#[derive(Debug, Clone)]
pub struct LedgerUnattested {
    /// Device.
    pub serial: String,
    /// File on the device.
    pub file: String,
    /// Its size.
    pub size: u64,
    /// Its SHA-256, computed by the station.
    pub sha256: MediaHash,
    /// When it was stored.
    pub stored_at: DateTime<Utc>,
    /// The session that stored it.
    pub session: SessionId,
}

/// A finding as the ledger keeps it.
#[derive(Debug, Clone)]
pub struct LedgerFinding {
    /// Session it came from.
    pub session: SessionId,
    /// Device, if known.
    pub serial: Option<String>,
    /// `error` or `warning`.
    pub level: String,
    /// Stable code.
    pub code: String,
    /// What it is about.
    pub subject: String,
    /// Explanation, as recorded.
    pub detail: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A quarantined slot.
#[derive(Debug, Clone)]
pub struct LedgerQuarantine {
    /// Session.
    pub session: SessionId,
    /// Serial the device claimed, if any.
    pub claimed: Option<String>,
    /// Where its files were kept.
    pub folder: String,
    /// Files kept.
    pub files: u64,
    /// Bytes kept.
    pub bytes: u64,
    /// When.
    pub at: DateTime<Utc>,
}

fn media_hash(bytes: &[u8]) -> Result<MediaHash, LedgerError> {
    <[u8; 32]>::try_from(bytes)
        .map(MediaHash)
        .map_err(|_| LedgerError::Invalid(format!("stored hash of {} bytes", bytes.len())))
}

impl Ledger {
    /// The clips `query` covers, by device and seq.
    ///
    /// # Errors
    /// SQL failure, or a stored value the ledger did not write.
    pub fn clips(&self, query: &ReportQuery) -> Result<Vec<LedgerClip>, LedgerError> {
        self.clips_window(query, None)
    }

    /// `limit` of the `total` clips `query` covers, from the `offset`-th by device and
    /// seq. A page past the middle is read from the end, so no page sorts more than half.
    ///
    /// # Errors
    /// SQL failure, or a stored value the ledger did not write.
    pub fn clips_page(
        &self,
        query: &ReportQuery,
        (offset, limit): (usize, usize),
        total: usize,
    ) -> Result<Vec<LedgerClip>, LedgerError> {
        let end = offset.saturating_add(limit).min(total);
        if offset < total / 2 || offset >= end {
            return self.clips_window(query, Some((offset, limit, false)));
        }
        // The same rows, counted from the other end.
        self.clips_window(query, Some((total - end, end - offset, true)))
    }

    /// What the clips `query` covers add up to.
    ///
    /// # Errors
    /// SQL failure.
    pub fn clip_totals(&self, query: &ReportQuery) -> Result<ClipTotals, LedgerError> {
        let (filter, args) = clip_filter(query);
        let join = records_join(query);
        let sql = format!(
            "SELECT COUNT(*), COALESCE(SUM(c.stored_size), 0),
                    COALESCE(SUM(c.stored_sha256 = c.signed_sha256 AND c.stored_size = c.signed_size), 0),
                    COALESCE(SUM(c.stored_sha256 IS NULL), 0), COALESCE(SUM(c.late), 0)
             FROM clips c{join}{filter}"
        );
        let (clips, bytes, verified, missing, late): (i64, i64, i64, i64, i64) = self
            .conn
            .query_row(&sql, params_from_iter(args.iter()), |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?;
        let n = |v: i64| usize::try_from(v).unwrap_or(0);
        Ok(ClipTotals {
            clips: n(clips),
            bytes: bytes.unsigned_abs(),
            verified: n(verified),
            mismatched: n(clips - verified - missing),
            missing: n(missing),
            late: n(late),
        })
    }

    /// The clips `query` covers, by device and seq; with `window` (offset, limit,
    /// counted from the last) only those.
    fn clips_window(
        &self,
        query: &ReportQuery,
        window: Option<(usize, usize, bool)>,
    ) -> Result<Vec<LedgerClip>, LedgerError> {
        let (mut filter, args) = clip_filter(query);
        if let Some((offset, limit, from_end)) = window {
            let order = if from_end { "DESC" } else { "ASC" };
            // The page is chosen on the clips table alone, before records are joined.
            let join = records_join(query);
            filter = format!(
                " WHERE c.rowid IN (SELECT c.rowid FROM clips c{join}{filter}
                                     ORDER BY c.serial {order}, c.seq {order}
                                     LIMIT {limit} OFFSET {offset})"
            );
        }
        // The latest binding of a clip (by log order, found once per clip through
        // bindings_by_subject) gives its case and its number under the case.
        let sql = format!(
            "SELECT c.serial, c.seq, c.record_hash, r.log_index, c.number,
                    lb.number, COALESCE(lb.case_number, c.case_number),
                    c.file, c.officer_cert, c.signed_sha256, c.signed_size, c.stored_sha256,
                    c.stored_size, c.recorded_end, c.deadline, c.stored_at, c.late, c.delay_reason,
                    r.bytes
             FROM clips c JOIN records r ON r.hash = c.record_hash
             LEFT JOIN bindings lb ON lb.record_hash = (
                 SELECT b.record_hash FROM bindings b JOIN records br ON br.hash = b.record_hash
                 WHERE b.subject = c.record_hash ORDER BY br.log_index DESC LIMIT 1)
             {filter}
             ORDER BY c.serial, c.seq"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let mut rows = stmt.query(params_from_iter(args.iter()))?;
        let mut clips = Vec::new();
        while let Some(r) = rows.next()? {
            let stored = match (
                r.get::<_, Option<Vec<u8>>>(11)?,
                r.get::<_, Option<i64>>(12)?,
            ) {
                (Some(h), Some(n)) => Some((media_hash(&h)?, n.unsigned_abs())),
                _ => None,
            };
            let (clip, officer_name) = match Record::parse(r.get(18)?)
                .map(|rec| (rec.body().fact.clone(), rec.body().officer.name.clone()))
            {
                Ok((Fact::Clip(clip), name)) => (clip, name),
                Ok(_) => {
                    return Err(LedgerError::Invalid(
                        "a clip row points at another kind of record".into(),
                    ));
                }
                Err(e) => return Err(LedgerError::Invalid(format!("stored clip record: {e}"))),
            };
            clips.push(LedgerClip {
                serial: r.get(0)?,
                seq: r.get::<_, i64>(1)?.unsigned_abs(),
                record: RecordHash(r.get(2)?),
                log_index: r.get::<_, i64>(3)?.unsigned_abs(),
                sealed_number: r.get(4)?,
                case_clip_number: r.get(5)?,
                case_number: r.get(6)?,
                file: r.get(7)?,
                officer_cert: r.get(8)?,
                signed: (
                    media_hash(&r.get::<_, Vec<u8>>(9)?)?,
                    r.get::<_, i64>(10)?.unsigned_abs(),
                ),
                stored,
                recorded_end: parse_db_time(&r.get::<_, String>(13)?)?,
                deadline: parse_db_time(&r.get::<_, String>(14)?)?,
                stored_at: parse_db_time(&r.get::<_, String>(15)?)?,
                late: r.get(16)?,
                delay_reason: r.get(17)?,
                duration_ms: clip.media.facts.and_then(|f| f.duration_ms),
                proves: clip.proves,
                time: clip.time,
                location: clip.location,
                officer_name,
            });
        }
        Ok(clips)
    }

    /// Whether a clip record with this hash is in the ledger.
    ///
    /// # Errors
    /// SQL failure.
    pub fn clip_exists(&self, record: &RecordHash) -> Result<bool, LedgerError> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM clips WHERE record_hash = ?1",
                [&record.0[..]],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// The record hash of the clip numbered `number` (as sealed, or as a binding numbered
    /// it under a case).
    ///
    /// # Errors
    /// SQL failure or a stored value the ledger did not write.
    pub fn clip_by_number(&self, number: &str) -> Result<Option<RecordHash>, LedgerError> {
        let found: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT record_hash FROM clips WHERE number = ?1
                 UNION ALL SELECT subject FROM bindings WHERE number = ?1 LIMIT 1",
                [number],
                |r| r.get(0),
            )
            .optional()?;
        found
            .map(|h| {
                <[u8; 32]>::try_from(h.as_slice())
                    .map(RecordHash)
                    .map_err(|_| {
                        LedgerError::Invalid("a stored record hash is not 32 bytes".into())
                    })
            })
            .transpose()
    }

    /// What annotation records of the devices `serials` said of each of their clips (by
    /// the clip's record hash), in log order so a later annotation overrides an earlier
    /// one field by field. An annotation is in its clip's own chain, so only those
    /// devices' annotations are read.
    ///
    /// # Errors
    /// SQL failure, or a stored annotation that no longer parses.
    pub fn clip_notes(
        &self,
        serials: &BTreeSet<&str>,
    ) -> Result<HashMap<RecordHash, ClipNotes>, LedgerError> {
        let mut notes: HashMap<RecordHash, ClipNotes> = HashMap::new();
        if serials.is_empty() {
            return Ok(notes);
        }
        let places = (1..=serials.len())
            .map(|n| format!("?{n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut stmt = self.conn.prepare(&format!(
            "SELECT bytes FROM records WHERE kind = 'annotation' AND serial IN ({places})
             ORDER BY log_index"
        ))?;
        let mut rows = stmt.query(params_from_iter(serials.iter()))?;
        while let Some(r) = rows.next()? {
            let rec = Record::parse(r.get(0)?)
                .map_err(|e| LedgerError::Invalid(format!("stored annotation: {e}")))?;
            if let Fact::Annotation(a) = &rec.body().fact {
                let n = notes.entry(a.subject).or_default();
                if a.proves.is_some() {
                    n.proves.clone_from(&a.proves);
                }
                if !a.speakers.is_empty() {
                    n.speakers.clone_from(&a.speakers);
                }
                if a.summary.is_some() {
                    n.summary.clone_from(&a.summary);
                }
            }
        }
        Ok(notes)
    }

    /// Every file stored without a record, by device and file.
    ///
    /// # Errors
    /// SQL failure.
    pub fn unattested_files(&self) -> Result<Vec<LedgerUnattested>, LedgerError> {
        let mut stmt = self.conn.prepare(
            "SELECT serial, file, size, sha256, stored_at, session FROM unattested ORDER BY serial, file",
        )?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(LedgerUnattested {
                serial: r.get(0)?,
                file: r.get(1)?,
                size: r.get::<_, i64>(2)?.unsigned_abs(),
                sha256: media_hash(&r.get::<_, Vec<u8>>(3)?)?,
                stored_at: parse_db_time(&r.get::<_, String>(4)?)?,
                session: SessionId(r.get(5)?),
            });
        }
        Ok(out)
    }

    /// Every finding, in the order recorded.
    ///
    /// # Errors
    /// SQL failure.
    pub fn findings(&self) -> Result<Vec<LedgerFinding>, LedgerError> {
        let mut stmt = self.conn.prepare(
            "SELECT session, serial, level, code, subject, detail, at FROM findings ORDER BY id",
        )?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(LedgerFinding {
                session: SessionId(r.get(0)?),
                serial: r.get(1)?,
                level: r.get(2)?,
                code: r.get(3)?,
                subject: r.get(4)?,
                detail: r.get(5)?,
                at: parse_db_time(&r.get::<_, String>(6)?)?,
            });
        }
        Ok(out)
    }

    /// Every quarantined slot, in the order recorded.
    ///
    /// # Errors
    /// SQL failure.
    pub fn quarantined(&self) -> Result<Vec<LedgerQuarantine>, LedgerError> {
        let mut stmt = self.conn.prepare(
            "SELECT session, claimed, folder, files, bytes, at FROM quarantine ORDER BY id",
        )?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(LedgerQuarantine {
                session: SessionId(r.get(0)?),
                claimed: r.get(1)?,
                folder: r.get(2)?,
                files: r.get::<_, i64>(3)?.unsigned_abs(),
                bytes: r.get::<_, i64>(4)?.unsigned_abs(),
                at: parse_db_time(&r.get::<_, String>(5)?)?,
            });
        }
        Ok(out)
    }
}
