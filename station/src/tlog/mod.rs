//! The station's transparency log (RFC 9162), kept in the ledger's database so a record
//! and its leaf commit in one transaction: [`nodes`] holds the tree, [`checkpoints`] the
//! signed checkpoints (never one that does not extend the last), [`proofs`] the
//! inclusion and consistency proofs handed to devices and outside verifiers.
//!
//! Only the ledger calls these functions, with its own connection or transaction.

mod checkpoints;
mod nodes;
mod proofs;

pub use checkpoints::SignedCheckpoint;
pub(crate) use checkpoints::{checkpoint_at, checkpoints, latest_checkpoint, sign_checkpoint};
pub(crate) use nodes::{append_leaf, leaf_count};
pub(crate) use proofs::{consistency_proof, inclusion_proof};

/// A failure of the log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlogError {
    /// SQLite failed.
    #[error("transparency log database")]
    Sql(#[from] rusqlite::Error),
    /// The tree in the database is damaged or the request is outside it.
    #[error("transparency log: {0}")]
    Damaged(String),
    /// The new tree is not an extension of the last signed one: refusing to sign.
    #[error("refusing to sign checkpoint {size}: not consistent with checkpoint {last}")]
    Inconsistent {
        /// Last signed size.
        last: u64,
        /// Size that would be signed.
        size: u64,
    },
    /// The station's key could not sign the checkpoint.
    #[error("cannot sign checkpoint: {0}")]
    Sign(String),
}

fn damaged<E: std::error::Error>(e: E) -> TlogError {
    TlogError::Damaged(e.to_string())
}

/// SQLite integers are i64; log indices never reach 2^63.
fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
