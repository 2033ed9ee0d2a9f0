//! The tree's nodes in the `tlog_nodes` table, seen through one connection or
//! transaction (the core's [`MerkleLog`] computes, this stores).

use custody::{HashStore, MerkleLog, TreeHash};
use rusqlite::{Connection, OptionalExtension as _, params};

use super::{TlogError, damaged, to_i64};

/// The log's node table, seen through one connection or transaction.
pub(super) struct SqlNodes<'c>(pub(super) &'c Connection);

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

/// Appends `leaf` (a record's or an event's exact bytes) inside the caller's transaction;
/// returns its index.
pub(crate) fn append_leaf(tx: &Connection, leaf: &[u8]) -> Result<u64, TlogError> {
    let mut log = MerkleLog::open(SqlNodes(tx)).map_err(damaged)?;
    log.append(leaf).map_err(damaged)
}

/// Number of leaves in the log.
pub(crate) fn leaf_count(conn: &Connection) -> Result<u64, TlogError> {
    Ok(SqlNodes(conn).leaf_count()?)
}
