//! The station's ledger in SQLite (WAL): enrolled devices, dock sessions, every accepted
//! record with its clip, findings, quarantined slots, the Merkle log's nodes, signed
//! checkpoints and receipts. Evidence tables are append-only: triggers refuse UPDATE and
//! DELETE, so a mistake or an intruder with the station's SQL can add, never rewrite.
//!
//! A record, its clip row, its findings and its log leaf commit in one transaction: after a
//! crash the ledger holds a record with all of it or not at all.

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use custody::{
    ChainAnchor, Checkpoint, Fact, Finding, HashStore, MediaHash, MerkleLog, NoteSigner, PublicKey,
    Record, RecordHash, Signature, TreeHash, Verified, verify_consistency,
};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use serde::Serialize;

/// A ledger failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// SQLite failed (locked, corrupt, disk full) or refused (append-only).
    #[error("ledger database")]
    Sql(#[from] rusqlite::Error),
    /// The Merkle log in the ledger is damaged.
    #[error("transparency log: {0}")]
    Log(String),
    /// The new tree is not an extension of the last signed one: refusing to sign.
    #[error("refusing to sign checkpoint {size}: not consistent with checkpoint {last}")]
    Inconsistent {
        /// Last signed size.
        last: u64,
        /// Size that would be signed.
        size: u64,
    },
    /// A device enrolled twice, or a stored value that no longer parses.
    #[error("{0}")]
    Invalid(String),
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS devices (
    serial      TEXT PRIMARY KEY,
    hw_profile  TEXT NOT NULL,
    key_pem     TEXT NOT NULL,
    key_id      TEXT NOT NULL UNIQUE,
    enrolled_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS assignments (          -- 设备领用: who the device is issued to
    serial       TEXT NOT NULL REFERENCES devices(serial),
    officer_cert TEXT NOT NULL,
    officer_name TEXT NOT NULL,
    assigned_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (             -- one dock of one device
    id           INTEGER PRIMARY KEY,
    slot         TEXT NOT NULL,
    serial       TEXT,
    started_at   TEXT NOT NULL,
    delay_reason TEXT
);
CREATE TABLE IF NOT EXISTS session_ends (
    session     INTEGER PRIMARY KEY REFERENCES sessions(id),
    ended_at    TEXT NOT NULL,
    outcome     TEXT NOT NULL,                    -- SessionEnd: complete, quarantined, interrupted, audit
    summary     TEXT NOT NULL                     -- JSON
);
CREATE TABLE IF NOT EXISTS records (              -- leaf i of the log = bytes of log_index i
    log_index  INTEGER PRIMARY KEY,
    serial     TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    hash       BLOB NOT NULL UNIQUE,
    kind       TEXT NOT NULL,
    bytes      BLOB NOT NULL,
    sig        BLOB NOT NULL,
    session    INTEGER NOT NULL REFERENCES sessions(id),
    stored_at  TEXT NOT NULL,
    UNIQUE (serial, seq)
);
CREATE TABLE IF NOT EXISTS clips (
    record_hash    BLOB PRIMARY KEY REFERENCES records(hash),
    serial         TEXT NOT NULL,
    seq            INTEGER NOT NULL,
    number         TEXT NOT NULL,
    case_number    TEXT,
    file           TEXT NOT NULL,
    officer_cert   TEXT NOT NULL,
    signed_sha256  BLOB NOT NULL,
    signed_size    INTEGER NOT NULL,
    stored_sha256  BLOB,                          -- NULL: media missing on the device
    stored_size    INTEGER,
    recorded_end   TEXT NOT NULL,
    deadline       TEXT NOT NULL,
    stored_at      TEXT NOT NULL,
    late           INTEGER NOT NULL,
    delay_reason   TEXT
);
CREATE INDEX IF NOT EXISTS clips_by_case ON clips(case_number);
CREATE TABLE IF NOT EXISTS bindings (             -- clip bound to a case by a later record
    record_hash BLOB PRIMARY KEY REFERENCES records(hash),
    subject     BLOB NOT NULL,
    case_number TEXT NOT NULL,
    number      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS bindings_by_case ON bindings(case_number);
CREATE TABLE IF NOT EXISTS unattested (           -- files no record covers, hashed by us
    id        INTEGER PRIMARY KEY,
    session   INTEGER NOT NULL REFERENCES sessions(id),
    serial    TEXT NOT NULL,
    file      TEXT NOT NULL,
    sha256    BLOB NOT NULL,
    size      INTEGER NOT NULL,
    stored_at TEXT NOT NULL,
    UNIQUE (serial, file, sha256)
);
CREATE TABLE IF NOT EXISTS findings (
    id       INTEGER PRIMARY KEY,
    session  INTEGER NOT NULL REFERENCES sessions(id),
    serial   TEXT,
    level    TEXT NOT NULL,
    code     TEXT NOT NULL,
    subject  TEXT NOT NULL,
    detail   TEXT NOT NULL,
    at       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    id        INTEGER PRIMARY KEY,
    session   INTEGER NOT NULL REFERENCES sessions(id),
    claimed   TEXT,
    folder    TEXT NOT NULL,
    files     INTEGER NOT NULL,
    bytes     INTEGER NOT NULL,
    at        TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tlog_nodes (
    level INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    hash  BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    size      INTEGER PRIMARY KEY,
    root      BLOB NOT NULL,
    note      TEXT NOT NULL,
    signed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS device_telemetry (     -- fleet state, not evidence: the latest heard
    serial      TEXT PRIMARY KEY,
    received_at TEXT NOT NULL,
    telemetry   TEXT,
    status      TEXT
);
CREATE TABLE IF NOT EXISTS replicated (           -- objects the replication bucket holds
    sha256     BLOB PRIMARY KEY,
    size       INTEGER NOT NULL,
    pushed_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS receipts (
    id        INTEGER PRIMARY KEY,
    session   INTEGER NOT NULL REFERENCES sessions(id),
    serial    TEXT NOT NULL,
    max_seq   INTEGER NOT NULL,
    log_size  INTEGER NOT NULL,
    bytes     BLOB NOT NULL,
    sig       BLOB NOT NULL,
    issued_at TEXT NOT NULL
);
";

/// Every object the store holds by the ledger, one row per reference:
/// `sha256, size, stored_at`.
const ALL_STORED: &str = "SELECT stored_sha256 AS sha256, stored_size AS size, stored_at FROM clips
        WHERE stored_sha256 IS NOT NULL
    UNION ALL SELECT sha256, size, stored_at FROM unattested";

/// Every stored object not yet replicated, one row per reference: `sha256, size, first`.
fn backlog_sql() -> String {
    format!(
        "SELECT sha256, size, MIN(stored_at) AS first FROM ({ALL_STORED}) \
         WHERE sha256 NOT IN (SELECT sha256 FROM replicated)"
    )
}

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

/// The latest a device told the fleet broker.
#[derive(Debug, Clone)]
pub struct HeardDevice {
    /// Product serial.
    pub serial: String,
    /// When its last message arrived (RFC 3339, station clock).
    pub received_at: String,
    /// Its last telemetry JSON, if any arrived.
    pub telemetry: Option<String>,
    /// `online` / `offline`, if known.
    pub status: Option<String>,
}

/// Every evidence table: each gets triggers refusing UPDATE and DELETE.
const APPEND_ONLY: &[&str] = &[
    "replicated",
    "devices",
    "assignments",
    "sessions",
    "session_ends",
    "records",
    "clips",
    "bindings",
    "unattested",
    "findings",
    "quarantine",
    "tlog_nodes",
    "checkpoints",
    "receipts",
];

/// A device IT enrolled.
#[derive(Debug, Clone, Serialize)]
pub struct EnrolledDevice {
    /// 产品序号.
    pub serial: String,
    /// Its hw-profile id.
    pub hw_profile: String,
    /// Its public key.
    #[serde(skip)]
    pub key: PublicKey,
    /// The key's id.
    pub key_id: String,
    /// When it was enrolled (UTC, RFC 3339).
    pub enrolled_at: String,
    /// Officers it is issued to: (执法证号, name).
    pub officers: Vec<(String, String)>,
}

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

/// A signed checkpoint as kept in the ledger.
#[derive(Debug, Clone)]
pub struct SignedCheckpoint {
    /// The tree size.
    pub size: u64,
    /// The root at that size.
    pub root: TreeHash,
    /// The signed note, verbatim.
    pub note: String,
}

/// A `size, root, note` row of the checkpoints table.
fn checkpoint_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SignedCheckpoint> {
    Ok(SignedCheckpoint {
        size: r.get::<_, i64>(0)?.unsigned_abs(),
        root: r.get(1)?,
        note: r.get(2)?,
    })
}

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

/// The log's node table, seen through one connection or transaction.
struct SqlNodes<'c>(&'c Connection);

impl HashStore for SqlNodes<'_> {
    type Error = rusqlite::Error;

    fn leaf_count(&self) -> Result<u64, rusqlite::Error> {
        // MAX over the primary key is an index lookup, not a scan.
        let max: Option<i64> =
            self.0
                .query_row("SELECT MAX(idx) FROM tlog_nodes WHERE level = 0", [], |r| {
                    r.get(0)
                })?;
        Ok(max.map_or(0, |m| m.unsigned_abs() + 1))
    }

    fn get(&self, level: u32, index: u64) -> Result<Option<TreeHash>, rusqlite::Error> {
        self.0
            .query_row(
                "SELECT hash FROM tlog_nodes WHERE level = ?1 AND idx = ?2",
                params![level, to_i64(index)],
                |r| r.get::<_, [u8; 32]>(0),
            )
            .optional()
    }

    fn put(&mut self, nodes: &[(u32, u64, TreeHash)]) -> Result<(), rusqlite::Error> {
        let mut insert = self
            .0
            .prepare("INSERT INTO tlog_nodes (level, idx, hash) VALUES (?1, ?2, ?3)")?;
        for (level, index, hash) in nodes {
            insert.execute(params![level, to_i64(*index), &hash[..]])?;
        }
        Ok(())
    }
}

/// SQLite integers are i64; log indices and seqs never reach 2^63.
fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn log_err<E: std::error::Error>(e: E) -> LedgerError {
    LedgerError::Log(e.to_string())
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
        conn.execute_batch(SCHEMA)?;
        for table in APPEND_ONLY {
            conn.execute_batch(&format!(
                "CREATE TRIGGER IF NOT EXISTS {table}_no_update BEFORE UPDATE ON {table}
                     BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END;
                 CREATE TRIGGER IF NOT EXISTS {table}_no_delete BEFORE DELETE ON {table}
                     BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END;"
            ))?;
        }
        Ok(Self { conn })
    }

    /// Keeps the latest telemetry heard from a device (fleet state, replaced each time).
    ///
    /// # Errors
    /// [`LedgerError::Sql`].
    pub fn note_telemetry(
        &self,
        serial: &str,
        telemetry: &str,
        received: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        self.conn.execute(
            "INSERT INTO device_telemetry (serial, received_at, telemetry) VALUES (?1, ?2, ?3)
             ON CONFLICT (serial) DO UPDATE SET received_at = ?2, telemetry = ?3",
            params![serial, received.to_rfc3339(), telemetry],
        )?;
        Ok(())
    }

    /// Keeps a device's last `online`/`offline` status.
    ///
    /// # Errors
    /// [`LedgerError::Sql`].
    pub fn note_status(
        &self,
        serial: &str,
        status: &str,
        received: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        self.conn.execute(
            "INSERT INTO device_telemetry (serial, received_at, status) VALUES (?1, ?2, ?3)
             ON CONFLICT (serial) DO UPDATE SET status = ?3",
            params![serial, received.to_rfc3339(), status],
        )?;
        Ok(())
    }

    /// Every device heard on the fleet broker: serial, when its telemetry arrived, the
    /// telemetry JSON and its last status.
    ///
    /// # Errors
    /// [`LedgerError::Sql`].
    pub fn fleet(&self) -> Result<Vec<HeardDevice>, LedgerError> {
        let mut stmt = self.conn.prepare(
            "SELECT serial, received_at, telemetry, status FROM device_telemetry ORDER BY serial",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok(HeardDevice {
                serial: row.get(0)?,
                received_at: row.get(1)?,
                telemetry: row.get(2)?,
                status: row.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The raw connection, for read-only reports.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Enrols a device with its key and officers.
    ///
    /// # Errors
    /// [`LedgerError::Invalid`] when the serial or key is already enrolled.
    pub fn enroll(
        &mut self,
        serial: &str,
        hw_profile: &str,
        key: &PublicKey,
        officers: &[(String, String)],
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let tx = self.conn.transaction()?;
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO devices (serial, hw_profile, key_pem, key_id, enrolled_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                serial,
                hw_profile,
                key.to_pem(),
                key.key_id().0,
                db_time(now)
            ],
        )?;
        if inserted == 0 {
            return Err(LedgerError::Invalid(format!(
                "device {serial} or key {} is already enrolled",
                key.key_id()
            )));
        }
        for (cert, name) in officers {
            tx.execute(
                "INSERT INTO assignments (serial, officer_cert, officer_name, assigned_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![serial, cert, name, db_time(now)],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The enrolled device with `serial`.
    ///
    /// # Errors
    /// SQL failure or a damaged stored key.
    pub fn device(&self, serial: &str) -> Result<Option<EnrolledDevice>, LedgerError> {
        Ok(self.devices()?.into_iter().find(|d| d.serial == serial))
    }

    /// Every enrolled device, by serial.
    ///
    /// # Errors
    /// SQL failure or a damaged stored key.
    pub fn devices(&self) -> Result<Vec<EnrolledDevice>, LedgerError> {
        let mut stmt = self.conn.prepare(
            "SELECT serial, hw_profile, key_pem, key_id, enrolled_at FROM devices ORDER BY serial",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (serial, hw_profile, pem, key_id, enrolled_at) = row?;
            let key = PublicKey::from_pem(&pem)
                .map_err(|e| LedgerError::Invalid(format!("stored key of {serial}: {e}")))?;
            let mut officers = self.conn.prepare(
                "SELECT officer_cert, officer_name FROM assignments WHERE serial = ?1 ORDER BY rowid",
            )?;
            let officers = officers
                .query_map([&serial], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            out.push(EnrolledDevice {
                serial,
                hw_profile,
                key,
                key_id,
                enrolled_at,
                officers,
            });
        }
        Ok(out)
    }

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
        let mut log = MerkleLog::open(SqlNodes(&tx)).map_err(log_err)?;
        let index = log.append(rec.bytes()).map_err(log_err)?;
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

    /// Number of leaves in the log.
    ///
    /// # Errors
    /// SQL failure.
    pub fn log_size(&self) -> Result<u64, LedgerError> {
        Ok(SqlNodes(&self.conn).leaf_count()?)
    }

    /// The last signed checkpoint.
    ///
    /// # Errors
    /// SQL failure.
    pub fn latest_checkpoint(&self) -> Result<Option<SignedCheckpoint>, LedgerError> {
        Ok(self
            .conn
            .query_row(
                "SELECT size, root, note FROM checkpoints ORDER BY size DESC LIMIT 1",
                [],
                checkpoint_row,
            )
            .optional()?)
    }

    /// The checkpoint signed at `size`, if any.
    ///
    /// # Errors
    /// SQL failure.
    pub fn checkpoint_at(&self, size: u64) -> Result<Option<SignedCheckpoint>, LedgerError> {
        Ok(self
            .conn
            .query_row(
                "SELECT size, root, note FROM checkpoints WHERE size = ?1",
                [to_i64(size)],
                checkpoint_row,
            )
            .optional()?)
    }

    /// Signs a checkpoint for the log as it is now, unless one exists for this size.
    /// Refuses when the tree is not an extension of the last signed one (checked with a
    /// consistency proof, not assumed).
    ///
    /// # Errors
    /// [`LedgerError::Inconsistent`], a damaged log, SQL failure.
    pub fn sign_checkpoint(
        &mut self,
        signer: &NoteSigner,
        now: DateTime<Utc>,
    ) -> Result<SignedCheckpoint, LedgerError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let log = MerkleLog::open(SqlNodes(&tx)).map_err(log_err)?;
        let size = log.size();
        let root = log.root_at(size).map_err(log_err)?;
        let last: Option<(u64, TreeHash, String)> = tx
            .query_row(
                "SELECT size, root, note FROM checkpoints ORDER BY size DESC LIMIT 1",
                [],
                |r| Ok((r.get::<_, i64>(0)?.unsigned_abs(), r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        if let Some((last_size, last_root, note)) = last {
            if last_size == size && last_root == root {
                return Ok(SignedCheckpoint { size, root, note });
            }
            let consistent = last_size < size
                && last_size > 0
                && log
                    .consistency_proof(last_size, size)
                    .ok()
                    .is_some_and(|proof| {
                        verify_consistency(last_size, size, &proof, &last_root, &root).is_ok()
                    });
            if !consistent && last_size > 0 {
                return Err(LedgerError::Inconsistent {
                    last: last_size,
                    size,
                });
            }
        }
        let checkpoint = Checkpoint {
            origin: signer.verifier().name().into(),
            size,
            root,
            extensions: Vec::new(),
        };
        let note = checkpoint
            .sign(signer)
            .map_err(|e| LedgerError::Invalid(format!("cannot sign checkpoint: {e}")))?;
        tx.execute(
            "INSERT INTO checkpoints (size, root, note, signed_at) VALUES (?1, ?2, ?3, ?4)",
            params![to_i64(size), &root[..], note, db_time(now)],
        )?;
        tx.commit()?;
        Ok(SignedCheckpoint { size, root, note })
    }

    /// The inclusion proof of leaf `index` in the tree of `size`.
    ///
    /// # Errors
    /// Out of range or a damaged log.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<TreeHash>, LedgerError> {
        MerkleLog::open(SqlNodes(&self.conn))
            .map_err(log_err)?
            .inclusion_proof(index, size)
            .map_err(log_err)
    }

    /// The consistency proof between two tree sizes.
    ///
    /// # Errors
    /// Out of range or a damaged log.
    pub fn consistency_proof(&self, size1: u64, size2: u64) -> Result<Vec<TreeHash>, LedgerError> {
        MerkleLog::open(SqlNodes(&self.conn))
            .map_err(log_err)?
            .consistency_proof(size1, size2)
            .map_err(log_err)
    }

    /// The device's records a receipt should cover: those after the last receipt issued,
    /// whose clip (if any) is stored with the signed hash. Mismatched or missing clips are
    /// never receipted, so the device keeps them.
    ///
    /// # Errors
    /// SQL failure.
    pub fn unreceipted(&self, serial: &str) -> Result<Vec<LedgerRecord>, LedgerError> {
        let mut stmt = self.conn.prepare(
            "SELECT r.seq, r.hash, r.log_index FROM records r
             LEFT JOIN clips c ON c.record_hash = r.hash
             WHERE r.serial = ?1
               AND r.seq > COALESCE((SELECT MAX(max_seq) FROM receipts WHERE serial = ?1), 0)
               AND (r.kind != 'clip' OR (c.stored_sha256 = c.signed_sha256
                                          AND c.stored_size = c.signed_size))
             ORDER BY r.seq",
        )?;
        let rows = stmt.query_map([serial], |r| {
            Ok(LedgerRecord {
                seq: r.get::<_, i64>(0)?.unsigned_abs(),
                hash: RecordHash(r.get(1)?),
                log_index: r.get::<_, i64>(2)?.unsigned_abs(),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
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

fn insert_findings(
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

#[cfg(test)]
mod tests {
    use custody::{SigningKey, testkit::SampleDevice};

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
            let err = ledger.conn().execute(sql, []).unwrap_err();
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
        ledger.conn().execute_batch(
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
            matches!(err, LedgerError::Inconsistent { last: 3, size: 4 }),
            "{err}"
        );
    }
}
