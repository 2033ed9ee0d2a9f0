//! The S3 Object Lock store: evidence objects in a bucket with Object Lock, each version
//! retained in COMPLIANCE mode from its upload for the agency's retention period, so that
//! no one (the station included) can delete or overwrite it before then.
//!
//! Objects are keyed by their SHA-256 (`<prefix>sha256/<hex>`). The key must be known
//! when the upload starts, so a put is told the hash the signed record claims and streams
//! the clip once: read → SHA-256 → multipart parts (each with its `Content-MD5`). Only if
//! the bytes hash to something else (or nothing was claimed) is the upload abandoned and
//! the caller asked for a second pass with the hash found ([`StoreError::Unexpected`]).
//! An interrupted upload is resumed: parts the server already holds with the same MD5 are
//! not sent again. The evidence SHA-256 goes into the object's metadata; S3 itself does
//! not check it, so every read re-hashes.

mod client;
mod sigv4;
mod xml;

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use bytes::Bytes;

use chrono::{Duration, Utc};
use custody::{MediaHash, hash_reader};
use sha2::{Digest as _, Sha256};

pub use client::{
    Client, NewObject, ObjectHead, ObjectVersion, Payload, Retention, S3Error, UploadedPart,
};
pub use sigv4::Credentials;

use super::{EvidenceStore, Expected, ObjectCheck, StoreError, StoredObject};

impl From<S3Error> for StoreError {
    fn from(e: S3Error) -> Self {
        StoreError::Remote {
            store: "S3".into(),
            source: Box::new(e),
        }
    }
}

/// Environment variables holding the key pair when no credentials file is configured.
pub const ACCESS_KEY_ENV: &str = "AWS_ACCESS_KEY_ID";
/// See [`ACCESS_KEY_ENV`].
pub const SECRET_KEY_ENV: &str = "AWS_SECRET_ACCESS_KEY";

/// The smallest part S3 accepts (except the last).
pub const MIN_PART_SIZE: usize = 5 << 20;

/// `[s3]` in `station.toml`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// `http(s)://host:port`.
    pub endpoint: String,
    /// The bucket (created with Object Lock enabled).
    pub bucket: String,
    /// The signing region.
    pub region: String,
    /// Key prefix inside the bucket (e.g. `station-07/`), may be empty.
    pub prefix: String,
    /// A TOML file with `access-key-id` and `secret-access-key`; else the environment.
    pub credentials_file: Option<PathBuf>,
    /// COMPLIANCE retention from upload, in days (the agency's retention class).
    pub retention_days: u32,
    /// Put every new object under legal hold (cases under dispute).
    pub legal_hold: bool,
    /// Multipart part size; memory per copy in flight.
    pub part_size: usize,
    /// A PEM CA certificate to trust for an https endpoint with a private CA.
    pub ca: Option<PathBuf>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct CredentialsFile {
    access_key_id: String,
    secret_access_key: String,
}

impl S3Settings {
    /// Reads the key pair: from the credentials file, else from the environment.
    ///
    /// # Errors
    /// An unreadable file, or neither file nor environment.
    pub fn credentials(&self) -> anyhow::Result<Credentials> {
        let (access_key_id, secret_access_key) = match &self.credentials_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("S3 credentials {}: {e}", path.display()))?;
                let file: CredentialsFile = toml::from_str(&text)
                    .map_err(|e| anyhow::anyhow!("S3 credentials {}: {e}", path.display()))?;
                (file.access_key_id, file.secret_access_key)
            }
            None => match (std::env::var(ACCESS_KEY_ENV), std::env::var(SECRET_KEY_ENV)) {
                (Ok(a), Ok(s)) => (a, s),
                _ => anyhow::bail!(
                    "S3 credentials: set [s3] credentials-file, or {ACCESS_KEY_ENV} and {SECRET_KEY_ENV}"
                ),
            },
        };
        Ok(Credentials {
            access_key_id,
            secret_access_key,
            region: self.region.clone(),
        })
    }

    /// A client for the configured bucket.
    ///
    /// # Errors
    /// Credentials, CA or endpoint unusable.
    pub fn client(&self) -> anyhow::Result<Client> {
        let ca = match &self.ca {
            Some(path) => Some(
                std::fs::read(path)
                    .map_err(|e| anyhow::anyhow!("S3 CA {}: {e}", path.display()))?,
            ),
            None => None,
        };
        Client::new(
            &self.endpoint,
            &self.bucket,
            self.credentials()?,
            ca.as_deref(),
        )
    }
}

/// The evidence store on an S3 bucket with Object Lock.
#[derive(Debug)]
pub struct S3Store {
    client: Client,
    bucket: String,
    endpoint: String,
    /// Set once the bucket was seen with Object Lock on (it cannot be turned off).
    locked: OnceLock<()>,
    prefix: String,
    retention_days: u32,
    legal_hold: bool,
    part_size: usize,
    parts: PartPool,
}

/// Part buffers reused from upload to upload: a fresh 8 MiB buffer per part fragments the
/// allocator's per-thread arenas (peak RSS tripled in the benchmark). A buffer returns
/// here when the request that sent it drops it.
#[derive(Debug, Default, Clone)]
struct PartPool(Arc<Mutex<Vec<Vec<u8>>>>);

impl PartPool {
    fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_default()
    }

    fn give(&self, mut buf: Vec<u8>) {
        if buf.capacity() == 0 {
            return;
        }
        buf.clear();
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(buf);
    }

    /// The filled part as request bytes, given back to the pool once sent.
    fn bytes(&self, part: Vec<u8>) -> Bytes {
        Bytes::from_owner(PooledPart {
            buf: part,
            pool: self.clone(),
        })
    }
}

struct PooledPart {
    buf: Vec<u8>,
    pool: PartPool,
}

impl AsRef<[u8]> for PooledPart {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for PooledPart {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.buf));
    }
}

/// Why the S3 store would not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum S3OpenError {
    /// The bucket has no Object Lock: objects could be deleted or overwritten.
    #[error(
        "bucket {bucket:?} does not have Object Lock enabled: evidence there could be deleted or overwritten. \
         Object Lock can only be enabled when a bucket is created: create a new bucket with it \
         (x-amz-bucket-object-lock-enabled: true) and set it in [s3] bucket"
    )]
    NoObjectLock {
        /// The bucket.
        bucket: String,
    },
    /// The bucket could not be asked.
    #[error("checking bucket {bucket:?} at {endpoint}")]
    Unreachable {
        /// The bucket.
        bucket: String,
        /// The endpoint.
        endpoint: String,
        /// Why.
        #[source]
        source: S3Error,
    },
    /// Settings unusable (credentials, CA, endpoint).
    #[error(transparent)]
    Settings(#[from] anyhow::Error),
}

impl S3Store {
    /// Connects and checks that the bucket has Object Lock enabled; refuses otherwise.
    ///
    /// # Errors
    /// [`S3OpenError`].
    pub fn open(settings: &S3Settings) -> Result<Self, S3OpenError> {
        let store = Self::connect(settings)?;
        store.check_object_lock()?;
        Ok(store)
    }

    /// Prepares the client without asking the server: the bucket is checked before the
    /// first write, or by [`S3Store::check_object_lock`]. Commands that only read the
    /// ledger (reports, fleet) then work while the central store is unreachable.
    ///
    /// # Errors
    /// [`S3OpenError::Settings`] (credentials, CA, endpoint).
    pub fn connect(settings: &S3Settings) -> Result<Self, S3OpenError> {
        Ok(Self {
            client: settings.client()?,
            bucket: settings.bucket.clone(),
            endpoint: settings.endpoint.clone(),
            locked: OnceLock::new(),
            prefix: settings.prefix.clone(),
            retention_days: settings.retention_days,
            legal_hold: settings.legal_hold,
            part_size: settings.part_size.max(MIN_PART_SIZE),
            parts: PartPool::default(),
        })
    }

    /// Checks (once per store) that the bucket is reachable and has Object Lock enabled.
    ///
    /// # Errors
    /// [`S3OpenError::NoObjectLock`] or [`S3OpenError::Unreachable`].
    pub fn check_object_lock(&self) -> Result<(), S3OpenError> {
        if self.locked.get().is_some() {
            return Ok(());
        }
        let locked =
            self.client
                .object_lock_enabled()
                .map_err(|source| S3OpenError::Unreachable {
                    bucket: self.bucket.clone(),
                    endpoint: self.endpoint.clone(),
                    source,
                })?;
        if !locked {
            return Err(S3OpenError::NoObjectLock {
                bucket: self.bucket.clone(),
            });
        }
        let _ = self.locked.set(());
        Ok(())
    }

    /// The object key for `hash`.
    pub fn key(&self, hash: &MediaHash) -> String {
        format!("{}sha256/{}", self.prefix, hash.to_hex())
    }

    /// The client (audits, legal holds, tests).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Sets or clears the legal hold on every version of the object with `hash` (a case
    /// under dispute).
    ///
    /// # Errors
    /// [`StoreError::Remote`].
    pub fn set_legal_hold(&self, hash: &MediaHash, on: bool) -> Result<(), StoreError> {
        let key = self.key(hash);
        let versions: Vec<ObjectVersion> = self
            .client
            .versions(&key)?
            .into_iter()
            .filter(|v| v.key == key)
            .collect();
        if versions.is_empty() {
            return Err(StoreError::from(S3Error::Server {
                op: "PutObjectLegalHold",
                status: 404,
                code: "NoSuchKey".into(),
                message: key,
            }));
        }
        // Every version: the one the station stored, and any written around it since
        // (which is evidence of tampering, and must not go either).
        for v in &versions {
            self.client.set_legal_hold(&key, Some(&v.version_id), on)?;
        }
        Ok(())
    }

    fn retention(&self) -> Retention {
        Retention {
            mode: "COMPLIANCE".into(),
            until: Utc::now() + Duration::days(i64::from(self.retention_days)),
        }
    }

    /// Checks the new version is retained as asked. Some servers (Ceph RGW 16) ignore the
    /// lock headers of a multipart upload and apply only the bucket's default retention:
    /// a shorter retention is lengthened (COMPLIANCE allows that, never the reverse), and a
    /// missing one is set at once, with a warning to configure a bucket default.
    fn check_retention(
        &self,
        key: &str,
        version: Option<&str>,
        wanted: &Retention,
    ) -> Result<(), StoreError> {
        let head = self.client.head(key, version)?;
        match head.as_ref().and_then(|h| h.retention.as_ref()) {
            Some(r) if r.mode == wanted.mode && r.until >= wanted.until - Duration::minutes(5) => {
                return Ok(());
            }
            Some(r) => {
                tracing::info!(key, until = %r.until, "lengthening the bucket's default retention");
            }
            None => tracing::warn!(
                key,
                "the server stored the object without the retention its upload asked for; \
                 setting it now. Give the bucket a default COMPLIANCE retention to close this gap"
            ),
        }
        self.client.set_retention(key, version, wanted)?;
        Ok(())
    }

    /// Reads up to one part from `src` into `part`, hashing what it reads; true at the end.
    fn fill(
        &self,
        src: &mut dyn Read,
        part: &mut Vec<u8>,
        hasher: &mut Sha256,
    ) -> Result<bool, StoreError> {
        part.resize(self.part_size, 0);
        let mut filled = 0;
        let end = loop {
            if filled == part.len() {
                break false;
            }
            match src.read(&mut part[filled..]) {
                Ok(0) => break true,
                Ok(n) => {
                    hasher.update(&part[filled..filled + n]);
                    filled += n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(StoreError::Source(e)),
            }
        };
        part.truncate(filled);
        Ok(end)
    }

    /// An upload of `key` left by a crash or a pulled cable, with the parts it holds: the
    /// newest is kept, older ones are aborted.
    fn interrupted_upload(
        &self,
        key: &str,
    ) -> Result<(Option<String>, Vec<UploadedPart>), StoreError> {
        let mut in_progress = self.client.uploads_in_progress(key)?;
        let resumed = in_progress.pop();
        for (stale, _) in &in_progress {
            self.client.abort_multipart(key, stale)?;
        }
        Ok(match resumed {
            Some((id, _)) => {
                let held = self.client.list_parts(key, &id)?;
                tracing::info!(key, parts = held.len(), "resuming an interrupted upload");
                (Some(id), held)
            }
            None => (None, Vec::new()),
        })
    }

    /// Streams `src` to `key` as a multipart upload, resuming one left by an earlier try.
    fn upload(
        &self,
        key: &str,
        src: &mut dyn Read,
        expected: MediaHash,
    ) -> Result<StoredObject, StoreError> {
        let meta = [("sha256", expected.to_hex())];
        let retention = self.retention();
        let new = NewObject {
            retention: Some(&retention),
            legal_hold: self.legal_hold,
            metadata: &meta,
        };
        let (upload_id, held) = self.interrupted_upload(key)?;
        let (mut hasher, mut size) = (Sha256::new(), 0u64);
        let mut part = self.parts.take();
        let end = self.fill(src, &mut part, &mut hasher)?;
        size += part.len() as u64;
        if end && upload_id.is_none() {
            // Small enough for one request.
            let found = MediaHash(hasher.finalize().into());
            if found != expected {
                return Err(StoreError::Unexpected { found, size });
            }
            let version = self
                .client
                .put(key, Payload::new(self.parts.bytes(part)), &new)?;
            self.check_retention(key, version.as_deref(), &retention)?;
            return Ok(StoredObject {
                hash: found,
                size,
                fresh: true,
            });
        }
        let upload_id = match upload_id {
            Some(id) => id,
            None => self.client.create_multipart(key, &new)?,
        };
        // This thread reads, hashes and MD5s the next part while a sender uploads the
        // last one: two part buffers per copy.
        let parts = std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<(u32, Payload)>(0);
            let sender = scope.spawn(|| -> Result<(), S3Error> {
                for (number, payload) in rx {
                    self.client.upload_part(key, &upload_id, number, payload)?;
                }
                Ok(())
            });
            let read = (|| -> Result<Vec<UploadedPart>, StoreError> {
                let (mut part, mut end) = (part, end);
                let mut parts = Vec::new();
                loop {
                    if part.is_empty() && !parts.is_empty() {
                        break;
                    }
                    let number = u32::try_from(parts.len() + 1).unwrap_or(u32::MAX);
                    let filled = std::mem::take(&mut part);
                    let payload = Payload::new(self.parts.bytes(filled));
                    let (etag, len) = (payload.etag(), payload.len());
                    let already = held
                        .iter()
                        .any(|p| p.number == number && p.size == len && p.etag == etag);
                    // A failed sender has hung up: its error is reported below.
                    if !already && tx.send((number, payload)).is_err() {
                        break;
                    }
                    parts.push(UploadedPart {
                        number,
                        etag,
                        size: len,
                    });
                    if end {
                        break;
                    }
                    // Taken only now: the send above returned once the part before was
                    // sent and its buffer came back, so two buffers per copy suffice.
                    part = self.parts.take();
                    end = self.fill(src, &mut part, &mut hasher)?;
                    size += part.len() as u64;
                }
                self.parts.give(part);
                Ok(parts)
            })();
            drop(tx);
            let sent = sender.join().unwrap_or_else(|_| {
                Err(S3Error::Protocol {
                    op: "UploadPart",
                    why: "the sender thread panicked".into(),
                })
            });
            sent?;
            read
        })?;
        let found = MediaHash(hasher.finalize().into());
        if found != expected {
            // Nothing becomes visible under a key its bytes do not hash to.
            self.client.abort_multipart(key, &upload_id)?;
            return Err(StoreError::Unexpected { found, size });
        }
        let version = self.client.complete_multipart(key, &upload_id, &parts)?;
        self.check_retention(key, version.as_deref(), &retention)?;
        Ok(StoredObject {
            hash: found,
            size,
            fresh: true,
        })
    }
}

/// Hashes a whole source (the first pass when the hash is not known).
fn hash_source(src: &mut dyn Read, buf: &mut [u8]) -> Result<(MediaHash, u64), StoreError> {
    let (size, hash) = hash_reader(src, buf).map_err(StoreError::Source)?;
    Ok((hash, size))
}

impl EvidenceStore for S3Store {
    fn check(&self) -> Result<(), StoreError> {
        self.check_object_lock().map_err(|e| match e {
            S3OpenError::Unreachable { source, .. } => StoreError::from(source),
            refused => StoreError::Refused(refused.to_string()),
        })
    }

    fn put(
        &self,
        src: &mut dyn Read,
        expected: Expected,
        buf: &mut [u8],
    ) -> Result<StoredObject, StoreError> {
        EvidenceStore::check(self)?;
        let Some(claimed) = expected.sha256 else {
            let (found, size) = hash_source(src, buf)?;
            return Err(StoreError::Unexpected { found, size });
        };
        let key = self.key(&claimed);
        if let Some(head) = self.client.head(&key, None)?
            && head.sha256.as_deref() == Some(claimed.to_hex().as_str())
        {
            // Already stored (an earlier dock, or a crash after the upload): only check
            // that this source is the same clip.
            let (found, size) = hash_source(src, buf)?;
            if found != claimed {
                return Err(StoreError::Unexpected { found, size });
            }
            return Ok(StoredObject {
                hash: found,
                size,
                fresh: false,
            });
        }
        self.upload(&key, src, claimed)
    }

    fn get(&self, hash: &MediaHash) -> Result<Box<dyn Read + Send>, StoreError> {
        let resp = self.client.get(&self.key(hash), None)?;
        Ok(Box::new(Verifying {
            inner: resp,
            hasher: Sha256::new(),
            expected: *hash,
            key: self.key(hash),
            checked: false,
        }))
    }

    fn exists(&self, hash: &MediaHash) -> Result<bool, StoreError> {
        Ok(self.client.head(&self.key(hash), None)?.is_some())
    }

    fn verify(&self, hash: &MediaHash, buf: &mut [u8]) -> Result<ObjectCheck, StoreError> {
        let resp = match self.client.get(&self.key(hash), None) {
            Ok(resp) => resp,
            Err(S3Error::Server { status: 404, .. }) => return Ok(ObjectCheck::Missing),
            Err(e) => return Err(e.into()),
        };
        let (size, found) = hash_reader(resp, buf).map_err(|source| StoreError::Io {
            path: Path::new(&self.key(hash)).into(),
            source,
        })?;
        Ok(if found == *hash {
            ObjectCheck::Intact { size }
        } else {
            ObjectCheck::Corrupt { found }
        })
    }
}

/// A reader that fails at the end if the bytes do not hash to the object's name.
struct Verifying<R> {
    inner: R,
    hasher: Sha256,
    expected: MediaHash,
    key: String,
    checked: bool,
}

impl<R: Read> Read for Verifying<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() && !self.checked {
            self.checked = true;
            let found = MediaHash(std::mem::take(&mut self.hasher).finalize().into());
            if found != self.expected {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} read back as sha256 {found}", self.key),
                ));
            }
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
