//! The replication queue: stored objects (clips and unattested files) minus those the
//! replication bucket holds.

use chrono::{DateTime, Utc};
use custody::MediaHash;
use serde::Serialize;

use super::{Ledger, LedgerError, db_time, parse_db_time};

/// An object waiting in the replication queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// Its SHA-256.
    pub hash: MediaHash,
    /// Its length.
    pub size: u64,
    /// When it was first stored.
    pub queued_at: DateTime<Utc>,
}

/// The replication queue in figures (for `status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplicationLag {
    /// Objects waiting.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
    /// When the oldest waiting one was stored.
    pub oldest: Option<DateTime<Utc>>,
    /// Objects pushed so far.
    pub pushed: u64,
    /// Their bytes.
    pub pushed_bytes: u64,
    /// Bytes pushed in the last minute.
    pub last_minute_bytes: u64,
}

/// Every object the store holds by the ledger, one row per reference:
/// `sha256, size, stored_at`.
const ALL_STORED: &str = "SELECT stored_sha256 AS sha256, stored_size AS size, stored_at FROM clips
        WHERE stored_sha256 IS NOT NULL
    UNION ALL SELECT sha256, size, stored_at FROM unattested
    UNION ALL SELECT sha256, size, attached_at FROM documents";

/// Every stored object not yet replicated, one row per reference: `sha256, size, first`.
fn backlog_sql() -> String {
    format!(
        "SELECT sha256, size, MIN(stored_at) AS first FROM ({ALL_STORED}) \
         WHERE sha256 NOT IN (SELECT sha256 FROM replicated)"
    )
}

impl Ledger {
    /// Objects stored but not yet in the replication bucket, first stored first: the
    /// durable replication queue (the stored clips and unattested files, minus
    /// `replicated`).
    ///
    /// # Errors
    /// SQL failure.
    pub fn replication_backlog(&self, limit: usize) -> Result<Vec<Queued>, LedgerError> {
        let mut stmt = self.conn.prepare(&format!(
            "{} GROUP BY sha256 ORDER BY MIN(stored_at), sha256 LIMIT ?1",
            backlog_sql()
        ))?;
        let rows = stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?.unsigned_abs(),
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (hash, size, at) = row?;
            out.push(Queued {
                hash: MediaHash(
                    hash.try_into().map_err(|_| {
                        LedgerError::Invalid("a stored sha256 is not 32 bytes".into())
                    })?,
                ),
                size,
                queued_at: parse_db_time(&at)?,
            });
        }
        Ok(out)
    }

    /// The replication queue in figures: objects and bytes waiting, the oldest waiting
    /// since, and bytes pushed in the last minute.
    ///
    /// # Errors
    /// SQL failure.
    pub fn replication_lag(&self, now: DateTime<Utc>) -> Result<ReplicationLag, LedgerError> {
        let (objects, bytes, oldest): (i64, i64, Option<String>) = self.conn.query_row(
            &format!(
                "SELECT COUNT(*), COALESCE(SUM(size), 0), MIN(first) FROM \
                 ({} GROUP BY sha256)",
                backlog_sql()
            ),
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let (pushed, pushed_bytes, last_minute): (i64, i64, i64) = self.conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(size), 0),
                    COALESCE(SUM(CASE WHEN pushed_at >= ?1 THEN size END), 0) FROM replicated",
            [db_time(now - chrono::Duration::minutes(1))],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        Ok(ReplicationLag {
            objects: objects.unsigned_abs(),
            bytes: bytes.unsigned_abs(),
            oldest: oldest.as_deref().map(parse_db_time).transpose()?,
            pushed: pushed.unsigned_abs(),
            pushed_bytes: pushed_bytes.unsigned_abs(),
            last_minute_bytes: last_minute.unsigned_abs(),
        })
    }

    /// Every object the store should hold (`replicated`: the replication bucket instead),
    /// by hash, with its size.
    ///
    /// # Errors
    /// SQL failure, or a stored hash that is not 32 bytes.
    pub fn stored_objects(&self, replicated: bool) -> Result<Vec<(MediaHash, u64)>, LedgerError> {
        let sql = if replicated {
            "SELECT sha256, size FROM replicated ORDER BY sha256".to_owned()
        } else {
            format!("SELECT sha256, MAX(size) FROM ({ALL_STORED}) GROUP BY sha256 ORDER BY sha256")
        };
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?.unsigned_abs()))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (hash, size) = row?;
            let hash = hash
                .try_into()
                .map_err(|_| LedgerError::Invalid("a stored sha256 is not 32 bytes".into()))?;
            out.push((MediaHash(hash), size));
        }
        Ok(out)
    }

    /// Records that the replication bucket holds an object (verified by its SHA-256).
    ///
    /// # Errors
    /// SQL failure.
    pub fn mark_replicated(
        &self,
        hash: &MediaHash,
        size: u64,
        at: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        self.conn.execute(
            "INSERT OR IGNORE INTO replicated (sha256, size, pushed_at) VALUES (?1, ?2, ?3)",
            rusqlite::params![
                hash.0.as_slice(),
                i64::try_from(size).unwrap_or(i64::MAX),
                db_time(at)
            ],
        )?;
        Ok(())
    }
}
