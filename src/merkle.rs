//! The RFC 9162 Merkle tree of the station's transparency log: leaf and node hashing,
//! inclusion and consistency proofs built from stored subtree hashes (O(log² n) lookups,
//! never a rehash of all leaves), and their verification with transparency-dev's strict
//! edge rules (no consistency proof from the empty tree, exact proof lengths).

use std::convert::Infallible;

use sha2::{Digest, Sha256};

/// A node or root hash of the tree.
pub type TreeHash = [u8; 32];

/// `SHA-256(0x00 || entry)`: the hash of a log entry (for Custody: a record's exact bytes).
pub fn leaf_hash(entry: &[u8]) -> TreeHash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(entry);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &[u8], right: &[u8]) -> TreeHash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree, `SHA-256("")`.
pub fn empty_root() -> TreeHash {
    Sha256::digest([]).into()
}

/// Why a proof was rejected, or could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The leaf index is not inside the tree.
    #[error("leaf index {index} is outside a tree of size {size}")]
    IndexOutOfRange {
        /// 0-based leaf index.
        index: u64,
        /// Tree size.
        size: u64,
    },
    /// Sizes that no consistency proof can link.
    #[error("no consistency proof links size {size1} to size {size2}")]
    BadSizes {
        /// Older size.
        size1: u64,
        /// Newer size.
        size2: u64,
    },
    /// A hash that is not 32 bytes.
    #[error("a hash in the proof input is {0} bytes, expected 32")]
    HashLength(usize),
    /// The proof has too many or too few hashes.
    #[error("the proof has the wrong number of hashes")]
    WrongLength,
    /// The proof leads to another root.
    #[error("the proof does not lead to the expected root")]
    RootMismatch,
    /// The two roots of equal-size trees differ.
    #[error("two trees of the same size have different roots")]
    RootsDiffer,
}

fn hash32(bytes: &[u8]) -> Result<TreeHash, ProofError> {
    bytes
        .try_into()
        .map_err(|_| ProofError::HashLength(bytes.len()))
}

/// Verifies that `leaf` (a leaf hash) sits at `index` in the tree of `size` with `root`
/// (RFC 9162 section 2.1.3.2). The verdict is that of the reference verifier
/// (transparency-dev/merkle `proof.VerifyInclusion`) for every input: the leaf hash must
/// be 32 bytes; proof hashes and the root are compared as the bytes they are, so one of
/// another length never matches.
///
/// # Errors
/// [`ProofError`] when the proof does not hold.
pub fn verify_inclusion<P: AsRef<[u8]>>(
    leaf: &[u8],
    index: u64,
    size: u64,
    proof: &[P],
    root: &[u8],
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut r = hash32(leaf)?;
    let (mut f, mut s) = (index, size - 1);
    for p in proof {
        let p = p.as_ref();
        if s == 0 {
            return Err(ProofError::WrongLength);
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::WrongLength);
    }
    if r.as_slice() == root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// Verifies that the tree of `size1` with `root1` is a prefix of the tree of `size2` with
/// `root2` (RFC 9162 section 2.1.4.2). The verdict is that of the reference verifier
/// (transparency-dev/merkle `proof.VerifyConsistency`) for every input: equal sizes (even
/// 0) need an empty proof and byte-equal roots; otherwise a proof from size 0 is refused;
/// hashes are compared as the bytes they are, whatever their length.
///
/// # Errors
/// [`ProofError`] when the proof does not hold.
pub fn verify_consistency<P: AsRef<[u8]>>(
    size1: u64,
    size2: u64,
    proof: &[P],
    root1: &[u8],
    root2: &[u8],
) -> Result<(), ProofError> {
    if size1 > size2 {
        return Err(ProofError::BadSizes { size1, size2 });
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return if root1 == root2 {
            Ok(())
        } else {
            Err(ProofError::RootsDiffer)
        };
    }
    if size1 == 0 {
        return Err(ProofError::BadSizes { size1, size2 });
    }
    let mut hashes = proof.iter().map(AsRef::as_ref);
    // The subtree hash the proof starts from: the old root itself when the old tree is a
    // complete subtree, else the proof's first hash (of whatever length it has).
    let first: Vec<u8> = if size1.is_power_of_two() {
        root1.to_vec()
    } else {
        hashes.next().ok_or(ProofError::WrongLength)?.to_vec()
    };
    let (mut f, mut s) = (size1 - 1, size2 - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (first.clone(), first);
    for c in hashes {
        if s == 0 {
            return Err(ProofError::WrongLength);
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr).to_vec();
            sr = node_hash(c, &sr).to_vec();
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c).to_vec();
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::WrongLength);
    }
    if fr == root1 && sr == root2 {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// Where the log keeps the hashes of its complete subtrees: node `(level, index)` covers
/// leaves `index·2^level .. (index+1)·2^level`. The station keeps them in SQLite; tests
/// and benches in memory.
pub trait HashStore {
    /// The store's own failure (I/O, SQL).
    type Error: std::error::Error + Send + Sync + 'static;
    /// Number of leaves stored.
    ///
    /// # Errors
    /// The store's failure.
    fn leaf_count(&self) -> Result<u64, Self::Error>;
    /// A stored node hash, if present.
    ///
    /// # Errors
    /// The store's failure.
    fn get(&self, level: u32, index: u64) -> Result<Option<TreeHash>, Self::Error>;
    /// Stores the nodes one append completes, all or nothing.
    ///
    /// # Errors
    /// The store's failure.
    fn put(&mut self, nodes: &[(u32, u64, TreeHash)]) -> Result<(), Self::Error>;
}

/// A [`HashStore`] in memory (about 64 bytes per leaf).
#[derive(Debug, Default, Clone)]
pub struct MemoryHashStore {
    levels: Vec<Vec<TreeHash>>,
}

impl HashStore for MemoryHashStore {
    type Error = Infallible;

    fn leaf_count(&self) -> Result<u64, Infallible> {
        Ok(self.levels.first().map_or(0, |l| l.len() as u64))
    }

    fn get(&self, level: u32, index: u64) -> Result<Option<TreeHash>, Infallible> {
        let level = self.levels.get(level as usize);
        Ok(level
            .and_then(|l| l.get(usize::try_from(index).ok()?))
            .copied())
    }

    fn put(&mut self, nodes: &[(u32, u64, TreeHash)]) -> Result<(), Infallible> {
        for &(level, _index, hash) in nodes {
            // Appends complete nodes in index order, so each lands at the end of its level.
            let level = level as usize;
            if self.levels.len() <= level {
                self.levels.resize_with(level + 1, Vec::new);
            }
            self.levels[level].push(hash);
        }
        Ok(())
    }
}

/// A log operation that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError<E: std::error::Error + 'static> {
    /// The store failed.
    #[error("the log's hash store failed")]
    Store(#[source] E),
    /// A node the tree needs is not in the store: the store is damaged.
    #[error("node (level {level}, index {index}) is missing from the hash store")]
    MissingNode {
        /// Node level.
        level: u32,
        /// Node index.
        index: u64,
    },
    /// A request outside the tree.
    #[error(transparent)]
    Proof(#[from] ProofError),
}

/// An append-only Merkle log over a [`HashStore`].
#[derive(Debug)]
pub struct MerkleLog<S> {
    store: S,
    size: u64,
}

/// Largest power of two strictly below `n` (n ≥ 2): the RFC's split point.
fn split(n: u64) -> u64 {
    1 << (n - 1).ilog2()
}

impl<S: HashStore> MerkleLog<S> {
    /// Opens the log held by `store`.
    ///
    /// # Errors
    /// The store's failure.
    pub fn open(store: S) -> Result<Self, LogError<S::Error>> {
        let size = store.leaf_count().map_err(LogError::Store)?;
        Ok(Self { store, size })
    }

    /// Number of entries.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The store, e.g. to commit it with other ledger changes.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Appends an entry; returns its 0-based index.
    ///
    /// # Errors
    /// The store's failure (then nothing was appended).
    pub fn append(&mut self, entry: &[u8]) -> Result<u64, LogError<S::Error>> {
        let index = self.size;
        let mut hash = leaf_hash(entry);
        let mut nodes = vec![(0u32, index, hash)];
        let (mut level, mut i) = (0u32, index);
        while i & 1 == 1 {
            let left = self.node(level, i - 1)?;
            hash = node_hash(&left, &hash);
            level += 1;
            i >>= 1;
            nodes.push((level, i, hash));
        }
        self.store.put(&nodes).map_err(LogError::Store)?;
        self.size += 1;
        Ok(index)
    }

    fn node(&self, level: u32, index: u64) -> Result<TreeHash, LogError<S::Error>> {
        self.store
            .get(level, index)
            .map_err(LogError::Store)?
            .ok_or(LogError::MissingNode { level, index })
    }

    /// MTH of leaves `lo..hi` (non-empty), from stored complete subtrees.
    fn subtree(&self, lo: u64, hi: u64) -> Result<TreeHash, LogError<S::Error>> {
        let n = hi - lo;
        if n.is_power_of_two() && lo.is_multiple_of(n) {
            return self.node(n.trailing_zeros(), lo / n);
        }
        let k = split(n);
        Ok(node_hash(
            &self.subtree(lo, lo + k)?,
            &self.subtree(lo + k, hi)?,
        ))
    }

    fn check_size(&self, size: u64) -> Result<(), LogError<S::Error>> {
        if size > self.size {
            return Err(ProofError::IndexOutOfRange {
                index: size,
                size: self.size,
            }
            .into());
        }
        Ok(())
    }

    /// The root of the tree's first `size` entries.
    ///
    /// # Errors
    /// `size` beyond the log, or a store failure.
    pub fn root_at(&self, size: u64) -> Result<TreeHash, LogError<S::Error>> {
        self.check_size(size)?;
        if size == 0 {
            return Ok(empty_root());
        }
        self.subtree(0, size)
    }

    /// The inclusion proof of entry `index` in the tree of `size` (RFC 9162 2.1.3.1).
    ///
    /// # Errors
    /// `index` outside the tree, or a store failure.
    pub fn inclusion_proof(
        &self,
        index: u64,
        size: u64,
    ) -> Result<Vec<TreeHash>, LogError<S::Error>> {
        self.check_size(size)?;
        if index >= size {
            return Err(ProofError::IndexOutOfRange { index, size }.into());
        }
        let mut proof = Vec::new();
        self.path(index, 0, size, &mut proof)?;
        Ok(proof)
    }

    fn path(
        &self,
        m: u64,
        lo: u64,
        hi: u64,
        out: &mut Vec<TreeHash>,
    ) -> Result<(), LogError<S::Error>> {
        let n = hi - lo;
        if n == 1 {
            return Ok(());
        }
        let k = split(n);
        if m < k {
            self.path(m, lo, lo + k, out)?;
            out.push(self.subtree(lo + k, hi)?);
        } else {
            self.path(m - k, lo + k, hi, out)?;
            out.push(self.subtree(lo, lo + k)?);
        }
        Ok(())
    }

    /// The consistency proof from size `size1` to `size2` (RFC 9162 2.1.4.1);
    /// `0 < size1 <= size2 <= size()`.
    ///
    /// # Errors
    /// Sizes out of range, or a store failure.
    pub fn consistency_proof(
        &self,
        size1: u64,
        size2: u64,
    ) -> Result<Vec<TreeHash>, LogError<S::Error>> {
        self.check_size(size2)?;
        if size1 == 0 || size1 > size2 {
            return Err(ProofError::BadSizes { size1, size2 }.into());
        }
        let mut proof = Vec::new();
        if size1 < size2 {
            self.subproof(size1, 0, size2, true, &mut proof)?;
        }
        Ok(proof)
    }

    fn subproof(
        &self,
        m: u64,
        lo: u64,
        hi: u64,
        whole: bool,
        out: &mut Vec<TreeHash>,
    ) -> Result<(), LogError<S::Error>> {
        let n = hi - lo;
        if m == n {
            if !whole {
                out.push(self.subtree(lo, hi)?);
            }
            return Ok(());
        }
        let k = split(n);
        if m <= k {
            self.subproof(m, lo, lo + k, whole, out)?;
            out.push(self.subtree(lo + k, hi)?);
        } else {
            self.subproof(m - k, lo + k, hi, false, out)?;
            out.push(self.subtree(lo, lo + k)?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
