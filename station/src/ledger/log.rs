//! The ledger's face of the transparency log ([`crate::tlog`]): the same database, so a
//! record and its leaf commit together.

use chrono::{DateTime, Utc};
use custody::{NoteSigner, TreeHash};

use super::{Ledger, LedgerError};
use crate::tlog::{self, SignedCheckpoint};

impl Ledger {
    /// Number of leaves in the log.
    ///
    /// # Errors
    /// SQL failure.
    pub fn log_size(&self) -> Result<u64, LedgerError> {
        Ok(tlog::leaf_count(&self.conn)?)
    }

    /// The last signed checkpoint.
    ///
    /// # Errors
    /// SQL failure.
    pub fn latest_checkpoint(&self) -> Result<Option<SignedCheckpoint>, LedgerError> {
        Ok(tlog::latest_checkpoint(&self.conn)?)
    }

    /// Every signed checkpoint, smallest first.
    ///
    /// # Errors
    /// SQL failure.
    pub fn checkpoints(&self) -> Result<Vec<SignedCheckpoint>, LedgerError> {
        Ok(tlog::checkpoints(&self.conn)?)
    }

    /// The checkpoint signed at `size`, if any.
    ///
    /// # Errors
    /// SQL failure.
    pub fn checkpoint_at(&self, size: u64) -> Result<Option<SignedCheckpoint>, LedgerError> {
        Ok(tlog::checkpoint_at(&self.conn, size)?)
    }

    /// Signs a checkpoint for the log as it is now, unless one exists for this size.
    /// Refuses when the tree is not an extension of the last signed one (checked with a
    /// consistency proof, not assumed).
    ///
    /// # Errors
    /// [`LedgerError::Log`] ([`crate::TlogError::Inconsistent`] or a damaged log), SQL
    /// failure.
    pub fn sign_checkpoint(
        &mut self,
        signer: &NoteSigner,
        now: DateTime<Utc>,
    ) -> Result<SignedCheckpoint, LedgerError> {
        Ok(tlog::sign_checkpoint(&mut self.conn, signer, now)?)
    }

    /// The inclusion proof of leaf `index` in the tree of `size`.
    ///
    /// # Errors
    /// Out of range or a damaged log.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<TreeHash>, LedgerError> {
        Ok(tlog::inclusion_proof(&self.conn, index, size)?)
    }

    /// The consistency proof between two tree sizes.
    ///
    /// # Errors
    /// Out of range or a damaged log.
    pub fn consistency_proof(&self, size1: u64, size2: u64) -> Result<Vec<TreeHash>, LedgerError> {
        Ok(tlog::consistency_proof(&self.conn, size1, size2)?)
    }

    /// Every disagreement between the log and the ledger's rows: a leaf without its row
    /// (device or station record), a row without its leaf, a row whose bytes do not hash
    /// to its leaf. Calls `each(leaf index, what is wrong)`; reads row by row.
    ///
    /// # Errors
    /// SQL failure.
    pub fn log_mismatches(
        &self,
        mut each: impl FnMut(u64, &'static str),
    ) -> Result<(), LedgerError> {
        let mut stmt = self.conn.prepare(
            "SELECT n.idx, n.hash, COALESCE(r.bytes, s.bytes),
                    (r.log_index IS NOT NULL) + (s.log_index IS NOT NULL)
             FROM tlog_nodes n
             LEFT JOIN records r ON r.log_index = n.idx
             LEFT JOIN station_records s ON s.log_index = n.idx
             WHERE n.level = 0 ORDER BY n.idx",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let index = r.get::<_, i64>(0)?.unsigned_abs();
            let leaf: Vec<u8> = r.get(1)?;
            match (r.get::<_, Option<Vec<u8>>>(2)?, r.get::<_, i64>(3)?) {
                (None, _) => each(index, "a leaf of the log has no record in the ledger"),
                (Some(_), n) if n > 1 => each(index, "two records claim one leaf"),
                (Some(bytes), _) if custody::leaf_hash(&bytes)[..] != leaf[..] => {
                    each(index, "the ledger's record is not the bytes of its leaf");
                }
                _ => {}
            }
        }
        let mut orphans = self.conn.prepare(
            "SELECT log_index FROM records
               WHERE log_index NOT IN (SELECT idx FROM tlog_nodes WHERE level = 0)
             UNION SELECT log_index FROM station_records
               WHERE log_index NOT IN (SELECT idx FROM tlog_nodes WHERE level = 0)",
        )?;
        let mut rows = orphans.query([])?;
        while let Some(r) = rows.next()? {
            each(
                r.get::<_, i64>(0)?.unsigned_abs(),
                "a record in the ledger is not in the log",
            );
        }
        Ok(())
    }
}
