//! Inclusion and consistency proofs from the stored tree.

use custody::{MerkleLog, TreeHash};
use rusqlite::Connection;

use super::nodes::SqlNodes;
use super::{TlogError, damaged};

/// The inclusion proof of leaf `index` in the tree of `size`.
pub(crate) fn inclusion_proof(
    conn: &Connection,
    index: u64,
    size: u64,
) -> Result<Vec<TreeHash>, TlogError> {
    MerkleLog::open(SqlNodes(conn))
        .map_err(damaged)?
        .inclusion_proof(index, size)
        .map_err(damaged)
}

/// The consistency proof between two tree sizes.
pub(crate) fn consistency_proof(
    conn: &Connection,
    size1: u64,
    size2: u64,
) -> Result<Vec<TreeHash>, TlogError> {
    MerkleLog::open(SqlNodes(conn))
        .map_err(damaged)?
        .consistency_proof(size1, size2)
        .map_err(damaged)
}
