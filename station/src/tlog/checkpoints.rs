//! Signed checkpoints (the transparency-dev checkpoint in a C2SP signed note): one per
//! tree size, each an extension of the last, checked with a consistency proof before the
//! station signs.

use chrono::{DateTime, Utc};
use custody::{Checkpoint, MerkleLog, NoteSigner, TreeHash, verify_consistency};
use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior, params};

use super::nodes::SqlNodes;
use super::{TlogError, damaged, to_i64};
use crate::ledger::db_time;

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

/// The last signed checkpoint.
pub(crate) fn latest_checkpoint(conn: &Connection) -> Result<Option<SignedCheckpoint>, TlogError> {
    Ok(conn
        .query_row(
            "SELECT size, root, note FROM checkpoints ORDER BY size DESC LIMIT 1",
            [],
            checkpoint_row,
        )
        .optional()?)
}

/// Every signed checkpoint, smallest first.
pub(crate) fn checkpoints(conn: &Connection) -> Result<Vec<SignedCheckpoint>, TlogError> {
    let mut stmt = conn.prepare("SELECT size, root, note FROM checkpoints ORDER BY size")?;
    let rows = stmt.query_map([], checkpoint_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The checkpoint signed at `size`, if any.
pub(crate) fn checkpoint_at(
    conn: &Connection,
    size: u64,
) -> Result<Option<SignedCheckpoint>, TlogError> {
    Ok(conn
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
pub(crate) fn sign_checkpoint(
    conn: &mut Connection,
    signer: &NoteSigner,
    now: DateTime<Utc>,
) -> Result<SignedCheckpoint, TlogError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let log = MerkleLog::open(SqlNodes(&tx)).map_err(damaged)?;
    let size = log.size();
    let root = log.root_at(size).map_err(damaged)?;
    if let Some(last) = latest_checkpoint(&tx)? {
        if last.size == size && last.root == root {
            return Ok(last);
        }
        let consistent = last.size < size
            && last.size > 0
            && log
                .consistency_proof(last.size, size)
                .ok()
                .is_some_and(|proof| {
                    verify_consistency(last.size, size, &proof, &last.root, &root).is_ok()
                });
        if !consistent && last.size > 0 {
            return Err(TlogError::Inconsistent {
                last: last.size,
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
        .map_err(|e| TlogError::Sign(e.to_string()))?;
    tx.execute(
        "INSERT INTO checkpoints (size, root, note, signed_at) VALUES (?1, ?2, ?3, ?4)",
        params![to_i64(size), &root[..], note, db_time(now)],
    )?;
    tx.commit()?;
    Ok(SignedCheckpoint { size, root, note })
}
