//! The write-once evidence store, content-addressed by SHA-256, behind [`EvidenceStore`]
//! (put, get, exists, verify). [`LocalStore`] keeps objects in a local directory; an S3
//! Object Lock backend plugs in behind the same trait.
//!
//! A put streams the source once (read → SHA-256 → write): temp file in the store's own
//! `tmp/`, fsync, no-clobber rename into `objects/ab/<hash>`, fsync the directory, then
//! read-only (and immutable where allowed). A crash leaves at most a temp file, which is
//! never visible as an object and is swept at the next open.
//!
//! Backends: [`local`] (a directory) and [`s3`] (an S3 Object Lock bucket).

pub mod local;
pub mod s3;

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use custody::MediaHash;

/// What a put stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredObject {
    /// SHA-256 of the bytes read (and written).
    pub hash: MediaHash,
    /// Their length.
    pub size: u64,
    /// False when an object with this hash was already there (same hash, same bytes).
    pub fresh: bool,
}

/// The outcome of re-reading an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectCheck {
    /// Present and its bytes hash to its name.
    Intact {
        /// Its length.
        size: u64,
    },
    /// Not in the store.
    Missing,
    /// Present, but its bytes hash to something else.
    Corrupt {
        /// What the bytes hash to now.
        found: MediaHash,
    },
    /// Present, but reading it fails (an I/O error on this object, not the whole store).
    Unreadable {
        /// The error, in words.
        why: String,
    },
}

/// What the caller knows of a source before it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    /// The length the record states (for the free-space check).
    pub size: u64,
    /// The SHA-256 the signed record claims (or a first pass found), if any.
    pub sha256: Option<MediaHash>,
}

/// A store operation that failed. The source failing (a pulled cable) is told apart from
/// the store failing, because only the latter stops the station.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Reading the source failed (device unplugged, I/O error on the card).
    #[error("reading the source failed")]
    Source(#[source] io::Error),
    /// The store has not enough free space (or the disk filled up while writing).
    #[error("store {root} is full: {needed} bytes needed (with the reserve), {free} free")]
    Full {
        /// The store root.
        root: PathBuf,
        /// Bytes needed.
        needed: u64,
        /// Bytes free.
        free: u64,
    },
    /// A store keyed by the expected hash (S3) read bytes with another hash, or was given
    /// none: nothing was stored. Put the source again expecting `found` (a second read).
    #[error("the source hashed to {found} ({size} bytes), not to the hash expected")]
    Unexpected {
        /// What the bytes read hash to.
        found: MediaHash,
        /// How many bytes were read.
        size: u64,
    },
    /// The store will not take evidence as configured (an S3 bucket without Object Lock).
    #[error("{0}")]
    Refused(String),
    /// A remote store's server failed, refused or could not be reached.
    #[error("the {store} store failed")]
    Remote {
        /// Which store (e.g. `S3 bucket custody-evidence`).
        store: String,
        /// The backend's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Any other store I/O failure.
    #[error("store I/O failed on {path}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// Puts a path on an I/O error: `io::Result<T>::at(&path)`.
pub(crate) trait At<T> {
    fn at(self, path: &Path) -> Result<T, StoreError>;
}

impl<T> At<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Io {
            path: path.into(),
            source,
        })
    }
}

/// A write-once, content-addressed evidence store.
pub trait EvidenceStore: Send + Sync {
    /// Streams `src` into the store in one pass (read → SHA-256 → write) through `buf`.
    /// An object that already exists with the same hash is success (`fresh: false`).
    ///
    /// # Errors
    /// [`StoreError::Source`] when the source fails; [`StoreError::Full`];
    /// [`StoreError::Unexpected`] from a store that must know the hash before it writes;
    /// other I/O. Nothing partial becomes visible in any case.
    fn put(
        &self,
        src: &mut dyn Read,
        expected: Expected,
        buf: &mut [u8],
    ) -> Result<StoredObject, StoreError>;

    /// Opens an object for reading.
    ///
    /// # Errors
    /// [`StoreError::Io`] (not found included).
    fn get(&self, hash: &MediaHash) -> Result<Box<dyn Read + Send>, StoreError>;

    /// Whether an object is present.
    ///
    /// # Errors
    /// [`StoreError::Io`] other than "not found".
    fn exists(&self, hash: &MediaHash) -> Result<bool, StoreError>;

    /// Checks that the store can take evidence now (an S3 store asks its server: reachable,
    /// Object Lock on). Commands that write call this first, to fail before any work.
    ///
    /// # Errors
    /// [`StoreError::Refused`] or [`StoreError::Remote`].
    fn check(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Re-reads an object and checks its bytes against its name.
    ///
    /// # Errors
    /// [`StoreError::Io`] when it cannot be read.
    fn verify(&self, hash: &MediaHash, buf: &mut [u8]) -> Result<ObjectCheck, StoreError>;

    /// The object's file on this machine, when the store keeps objects as local files
    /// (a disc image maps it instead of copying it); `None` for a remote store.
    fn local_path(&self, _hash: &MediaHash) -> Option<PathBuf> {
        None
    }
}
