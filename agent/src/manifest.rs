//! The agent's manifest and chain state in SQLite (WAL): every record it ever sealed, its
//! signature, and the file it covers. Append-only: triggers refuse UPDATE and DELETE, and
//! `seq` is the primary key, so a seq is never reused and the chain cannot fork, whatever
//! point a crash hits. The chain head is the last row, not a separate mutable value.

use std::path::Path;

use custody::{MediaHash, Record, RecordBody, RecordHash, Signature, Signer, Verified};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::failpoint;

/// A manifest failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// SQLite failed (locked, corrupt, disk full).
    #[error("manifest database {path}")]
    Sql {
        /// The database file.
        path: String,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// A stored record that no longer parses: the database was tampered with.
    #[error("manifest record seq {seq} is damaged: {why}")]
    Damaged {
        /// Its seq.
        seq: u64,
        /// What is wrong.
        why: String,
    },
    /// This clip (file and media hash) already has a record: another agent process on the
    /// same device sealed it first. Nothing was appended.
    #[error("clip {file} is sealed already")]
    AlreadySealed {
        /// The clip, under the storage root.
        file: String,
    },
    /// The record could not be built (a body that breaks the format).
    #[error("cannot seal the record")]
    Record(#[from] custody::RecordError),
}

/// The last record of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    /// Its seq.
    pub seq: u64,
    /// Its hash.
    pub hash: RecordHash,
}

/// The manifest database.
pub struct Manifest {
    conn: Connection,
    path: String,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS records (
    seq          INTEGER PRIMARY KEY,      -- never reused: the insert fails instead
    hash         BLOB NOT NULL UNIQUE,     -- SHA-256 of bytes
    kind         TEXT NOT NULL,            -- clip, binding, annotation
    file         TEXT,                     -- media path for clips, relative to the storage root
    media_sha256 BLOB,                     -- for clips
    bytes        BLOB NOT NULL,            -- the record exactly as signed
    sig          BLOB NOT NULL,
    sealed_at    TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS one_record_per_clip ON records(file, media_sha256) WHERE kind = 'clip';
CREATE TABLE IF NOT EXISTS receipts (       -- every receipt seen in the inbox, good or bad
    hash     BLOB PRIMARY KEY,                -- SHA-256 of its bytes then its signature
    file     TEXT NOT NULL,
    status   TEXT NOT NULL,                   -- accepted, refused
    detail   TEXT NOT NULL,
    bytes    BLOB NOT NULL,
    seen_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS freed (          -- clips whose space a verified receipt freed
    seq       INTEGER PRIMARY KEY REFERENCES records(seq),
    file      TEXT NOT NULL,
    size      INTEGER NOT NULL,
    receipt   BLOB NOT NULL,
    freed_at  TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS receipts_no_update BEFORE UPDATE ON receipts
    BEGIN SELECT RAISE(ABORT, 'receipts are append-only'); END;
CREATE TRIGGER IF NOT EXISTS receipts_no_delete BEFORE DELETE ON receipts
    BEGIN SELECT RAISE(ABORT, 'receipts are append-only'); END;
CREATE TRIGGER IF NOT EXISTS freed_no_update BEFORE UPDATE ON freed
    BEGIN SELECT RAISE(ABORT, 'freed is append-only'); END;
CREATE TRIGGER IF NOT EXISTS freed_no_delete BEFORE DELETE ON freed
    BEGIN SELECT RAISE(ABORT, 'freed is append-only'); END;
CREATE TRIGGER IF NOT EXISTS records_no_update BEFORE UPDATE ON records
    BEGIN SELECT RAISE(ABORT, 'records are append-only'); END;
CREATE TRIGGER IF NOT EXISTS records_no_delete BEFORE DELETE ON records
    BEGIN SELECT RAISE(ABORT, 'records are append-only'); END;
";

impl Manifest {
    /// Opens (or creates) the manifest at `path`.
    ///
    /// # Errors
    /// [`ManifestError::Sql`] when the database cannot be opened or is not a manifest.
    pub fn open(path: &Path) -> Result<Self, ManifestError> {
        let p = path.display().to_string();
        let sql = |source| ManifestError::Sql {
            path: p.clone(),
            source,
        };
        let conn = Connection::open(path).map_err(sql)?;
        // WAL: a crash leaves either the committed transaction or nothing.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sql)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sql)?;
        conn.execute_batch(SCHEMA).map_err(sql)?;
        Ok(Self { conn, path: p })
    }

    fn sql(&self, source: rusqlite::Error) -> ManifestError {
        ManifestError::Sql {
            path: self.path.clone(),
            source,
        }
    }

    /// The chain head, `None` before the first record.
    ///
    /// # Errors
    /// [`ManifestError::Sql`].
    pub fn head(&self) -> Result<Option<ChainHead>, ManifestError> {
        head(&self.conn).map_err(|e| self.sql(e))
    }

    /// Whether this exact clip (file and media hash) is already sealed.
    ///
    /// # Errors
    /// [`ManifestError::Sql`].
    pub fn is_sealed(&self, file: &str, media: &MediaHash) -> Result<bool, ManifestError> {
        clip_sealed(&self.conn, file, media).map_err(|e| self.sql(e))
    }

    /// Seals the next record: in one immediate transaction it reads the head, lets `build`
    /// fill in the body for `seq`/`prev`, signs it and appends it. A crash before the commit
    /// leaves nothing (the record was never published); after it, the record is durable.
    ///
    /// # Errors
    /// [`ManifestError::AlreadySealed`] when the body is a clip that has a record already
    /// (checked inside the transaction, so two processes never seal one clip twice);
    /// otherwise [`ManifestError`] when SQLite fails or the body breaks the record format.
    pub fn seal(
        &mut self,
        signer: &dyn Signer,
        build: impl FnOnce(u64, Option<RecordHash>) -> RecordBody,
    ) -> Result<Record<Verified>, ManifestError> {
        let path = self.path.clone();
        let sql = |source| ManifestError::Sql {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        let head = head(&tx).map_err(sql)?;
        let body = build(head.map_or(1, |h| h.seq + 1), head.map(|h| h.hash));
        let (kind, file, media) = match &body.fact {
            custody::Fact::Clip(c) => {
                if clip_sealed(&tx, &c.media.file, &c.media.sha256).map_err(sql)? {
                    return Err(ManifestError::AlreadySealed {
                        file: c.media.file.clone(),
                    });
                }
                (
                    "clip",
                    Some(c.media.file.clone()),
                    Some(c.media.sha256.0.to_vec()),
                )
            }
            custody::Fact::Binding(_) => ("binding", None, None),
            custody::Fact::Annotation(_) => ("annotation", None, None),
        };
        let record = Record::seal(&body, signer)?;
        failpoint::hit("signed");
        tx.execute(
            "INSERT INTO records (seq, hash, kind, file, media_sha256, bytes, sig, sealed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                i64::try_from(body.seq).unwrap_or(i64::MAX),
                &record.hash().0[..],
                kind,
                file,
                media,
                record.bytes(),
                &record.signature().0[..],
                body.created.to_rfc3339(),
            ],
        )
        .map_err(sql)?;
        failpoint::hit("inserted");
        tx.commit().map_err(sql)?;
        failpoint::hit("committed");
        Ok(record)
    }

    /// Every record, in seq order, re-verified against `key` (a damaged row is an error,
    /// never silently skipped).
    ///
    /// # Errors
    /// [`ManifestError::Damaged`] for a row that does not parse or verify.
    pub fn records(
        &self,
        key: &custody::PublicKey,
    ) -> Result<Vec<Record<Verified>>, ManifestError> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, bytes, sig FROM records ORDER BY seq")
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })
            .map_err(|e| self.sql(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, bytes, sig) = row.map_err(|e| self.sql(e))?;
            let seq = u64::try_from(seq).unwrap_or(0);
            let damaged = |why: String| ManifestError::Damaged { seq, why };
            let sig = Signature::from_bytes(&sig).map_err(|e| damaged(e.to_string()))?;
            let record = Record::parse(bytes)
                .map_err(|e| damaged(e.to_string()))?
                .verify(key, &sig)
                .map_err(|e| damaged(e.to_string()))?;
            out.push(record);
        }
        Ok(out)
    }

    /// Whether a receipt with these bytes was seen before.
    ///
    /// # Errors
    /// [`ManifestError::Sql`].
    pub fn receipt_seen(&self, hash: &[u8; 32]) -> Result<bool, ManifestError> {
        self.conn
            .query_row(
                "SELECT 1 FROM receipts WHERE hash = ?1",
                [&hash[..]],
                |_| Ok(()),
            )
            .optional()
            .map(|r| r.is_some())
            .map_err(|e| self.sql(e))
    }

    /// Keeps a receipt seen in the inbox (by the hash of its bytes and signature) with what
    /// was decided about it.
    ///
    /// # Errors
    /// [`ManifestError::Sql`].
    pub fn note_receipt(
        &self,
        hash: &[u8; 32],
        bytes: &[u8],
        file: &str,
        status: &str,
        detail: &str,
    ) -> Result<(), ManifestError> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO receipts (hash, file, status, detail, bytes, seen_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    &hash[..],
                    file,
                    status,
                    detail,
                    bytes,
                    chrono::Utc::now().to_rfc3339()
                ],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// Seqs of clips whose space was freed.
    ///
    /// # Errors
    /// [`ManifestError::Sql`].
    pub fn freed_seqs(&self) -> Result<std::collections::HashSet<u64>, ManifestError> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq FROM freed")
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, i64>(0))
            .map_err(|e| self.sql(e))?;
        rows.map(|r| r.map(i64::unsigned_abs).map_err(|e| self.sql(e)))
            .collect()
    }

    /// Clip records whose space no receipt freed yet, and when the oldest of those
    /// recordings ended. Only these rows are read, and only parsed: this is the agent's
    /// own database, and the answer feeds telemetry, not evidence.
    ///
    /// # Errors
    /// [`ManifestError::Sql`], or [`ManifestError::Damaged`] for a row that does not parse.
    pub fn pending_clips(
        &self,
    ) -> Result<(u64, Option<chrono::DateTime<chrono::FixedOffset>>), ManifestError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT seq, bytes FROM records r WHERE kind = 'clip'
                 AND NOT EXISTS (SELECT 1 FROM freed f WHERE f.seq = r.seq)",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
            .map_err(|e| self.sql(e))?;
        let (mut count, mut oldest) = (0, None::<chrono::DateTime<chrono::FixedOffset>>);
        for row in rows {
            let (seq, bytes) = row.map_err(|e| self.sql(e))?;
            let record = Record::parse(bytes).map_err(|e| ManifestError::Damaged {
                seq: seq.unsigned_abs(),
                why: e.to_string(),
            })?;
            if let custody::Fact::Clip(clip) = &record.body().fact {
                count += 1;
                oldest = Some(oldest.map_or(clip.time.end, |o| o.min(clip.time.end)));
            }
        }
        Ok((count, oldest))
    }

    /// Records that a clip's space was freed under the receipt with `receipt_hash`.
    ///
    /// # Errors
    /// [`ManifestError::Sql`].
    pub fn mark_freed(
        &self,
        seq: u64,
        file: &str,
        size: u64,
        receipt_hash: &[u8; 32],
    ) -> Result<(), ManifestError> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO freed (seq, file, size, receipt, freed_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    i64::try_from(seq).unwrap_or(i64::MAX),
                    file,
                    i64::try_from(size).unwrap_or(i64::MAX),
                    &receipt_hash[..],
                    chrono::Utc::now().to_rfc3339()
                ],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// The clip record covering `file` (its latest, if the name was reused).
    ///
    /// # Errors
    /// [`ManifestError::Sql`].
    pub fn clip_record_hash(&self, file: &str) -> Result<Option<RecordHash>, ManifestError> {
        self.conn
            .query_row("SELECT hash FROM records WHERE kind = 'clip' AND file = ?1 ORDER BY seq DESC LIMIT 1", params![file], |r| r.get::<_, Vec<u8>>(0))
            .optional()
            .map_err(|e| self.sql(e))?
            .map(|h| h.try_into().map(RecordHash).map_err(|_| ManifestError::Damaged { seq: 0, why: "hash is not 32 bytes".into() }))
            .transpose()
    }
}

/// Whether `file` with these media bytes has a clip record.
fn clip_sealed(conn: &Connection, file: &str, media: &MediaHash) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT 1 FROM records WHERE kind = 'clip' AND file = ?1 AND media_sha256 = ?2",
        params![file, &media.0[..]],
        |_| Ok(()),
    )
    .optional()
    .map(|r| r.is_some())
}

fn head(conn: &Connection) -> rusqlite::Result<Option<ChainHead>> {
    conn.query_row(
        "SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1",
        [],
        |r| {
            let seq: i64 = r.get(0)?;
            let hash: Vec<u8> = r.get(1)?;
            Ok((seq, hash))
        },
    )
    .optional()
    .map(|row| {
        row.and_then(|(seq, hash)| {
            Some(ChainHead {
                seq: u64::try_from(seq).ok()?,
                hash: RecordHash(hash.try_into().ok()?),
            })
        })
    })
}
