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
}
