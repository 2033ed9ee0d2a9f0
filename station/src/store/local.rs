//! The default store: a local directory, written once per object (temp file, fsync,
//! no-clobber rename, fsync the directory, read-only, immutable where allowed).

use std::fs::{self, File, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use custody::{ChunkError, MediaHash, for_each_chunk, hash_reader, layout};
use sha2::{Digest as _, Sha256};

use super::{At as _, EvidenceStore, Expected, ObjectCheck, StoreError, StoredObject};

/// Bytes written to a new object between two nudges of the kernel's writeback.
const WRITEBACK_CHUNK: u64 = 8 << 20;

/// Asks the kernel to start writing bytes `from..to` of `file` to disk now, without
/// waiting, and to drop pages of it already written (the station never reads them back
/// soon). The disk then works while the next bytes are hashed and copied, instead of all
/// at the final fsync; and evidence does not push everything else out of the page cache.
/// Advisory: a failure changes nothing but speed.
fn start_writeback(file: &File, from: u64, to: u64) {
    let (Ok(offset), Ok(len)) = (i64::try_from(from), i64::try_from(to - from)) else {
        return;
    };
    let _ = nix::fcntl::posix_fadvise(
        file,
        offset,
        len,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    );
}

/// The default store: a local directory.
#[derive(Debug)]
pub struct LocalStore {
    root: PathBuf,
    reserve_bytes: u64,
    immutable_flag: bool,
}

impl LocalStore {
    /// Opens (creating on first use) the store at `root`: makes the 256 fan-out folders
    /// and sweeps temp files a crash left behind.
    ///
    /// # Errors
    /// [`StoreError::Io`] when the folders cannot be made or read.
    pub fn open(root: &Path, reserve_bytes: u64, immutable_flag: bool) -> Result<Self, StoreError> {
        let objects = root.join("objects");
        for i in 0..=255u8 {
            let dir = objects.join(format!("{i:02x}"));
            layout::create_dir_durable(&dir).at(&dir)?;
        }
        let tmp = root.join("tmp");
        layout::create_dir_durable(&tmp).at(&tmp)?;
        for entry in fs::read_dir(&tmp).at(&tmp)? {
            let path = entry.at(&tmp)?.path();
            tracing::info!(path = %path.display(), "removing a partial copy left by a crash");
            fs::remove_file(&path).at(&path)?;
        }
        Ok(Self {
            root: root.into(),
            reserve_bytes,
            immutable_flag,
        })
    }

    /// Where the object with `hash` lives: `objects/ab/abcd…`.
    pub fn object_path(&self, hash: &MediaHash) -> PathBuf {
        let hex = hash.to_hex();
        self.root.join("objects").join(&hex[..2]).join(hex)
    }

    /// Every object's hash (for audits and tests), sorted.
    ///
    /// # Errors
    /// [`StoreError::Io`] on an unreadable folder.
    pub fn list(&self) -> Result<Vec<MediaHash>, StoreError> {
        let mut out = Vec::new();
        let objects = self.root.join("objects");
        for dir in fs::read_dir(&objects).at(&objects)? {
            let dir = dir.at(&objects)?.path();
            for entry in fs::read_dir(&dir).at(&dir)? {
                let name = entry.at(&dir)?.file_name();
                if let Some(hash) = name.to_str().and_then(|n| n.parse().ok()) {
                    out.push(hash);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Entries in `tmp/` (partial copies in progress or left by a crash).
    ///
    /// # Errors
    /// [`StoreError::Io`] on an unreadable folder.
    pub fn partial_count(&self) -> Result<usize, StoreError> {
        let tmp = self.root.join("tmp");
        Ok(fs::read_dir(&tmp).at(&tmp)?.count())
    }

    fn free_bytes(&self) -> Result<u64, StoreError> {
        let stat = nix::sys::statvfs::statvfs(&self.root)
            .map_err(|e| io::Error::from_raw_os_error(e as i32))
            .at(&self.root)?;
        Ok(stat.blocks_available().saturating_mul(stat.fragment_size()))
    }

    fn full(&self, needed: u64) -> Result<StoreError, StoreError> {
        Ok(StoreError::Full {
            root: self.root.clone(),
            needed,
            free: self.free_bytes()?,
        })
    }

    /// Sets the immutable flag; where the file system or privileges refuse, the object
    /// stays read-only and a warning says so.
    fn make_immutable(path: &Path) {
        match Command::new("chattr").arg("+i").arg(path).output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => tracing::warn!(
                path = %path.display(),
                stderr = %String::from_utf8_lossy(&out.stderr).trim(),
                "immutable flag refused; object stays read-only"
            ),
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "chattr not runnable"),
        }
    }
}

impl EvidenceStore for LocalStore {
    fn put(
        &self,
        src: &mut dyn Read,
        expected: Expected,
        buf: &mut [u8],
    ) -> Result<StoredObject, StoreError> {
        let needed = expected.size.saturating_add(self.reserve_bytes);
        if self.free_bytes()? < needed {
            return Err(self.full(needed)?);
        }
        let tmp_dir = self.root.join("tmp");
        let mut tmp = tempfile::Builder::new()
            .prefix("put-")
            .tempfile_in(&tmp_dir)
            .at(&tmp_dir)?;
        let mut hasher = Sha256::new();
        let (mut size, mut advised_before, mut written_back) = (0u64, 0u64, 0u64);
        let streamed = for_each_chunk(src, buf, |chunk| {
            hasher.update(chunk);
            tmp.write_all(chunk)?;
            size += chunk.len() as u64;
            if size - written_back >= WRITEBACK_CHUNK {
                // The chunk before this one again too: its writeback is likely done, so
                // now its pages can be dropped.
                start_writeback(tmp.as_file(), advised_before, size);
                (advised_before, written_back) = (written_back, size);
            }
            Ok::<(), io::Error>(())
        });
        match streamed {
            Ok(_) => {}
            Err(ChunkError::Read(e)) => return Err(StoreError::Source(e)),
            Err(ChunkError::Handle(e)) if e.kind() == io::ErrorKind::StorageFull => {
                return Err(self.full(needed)?);
            }
            Err(ChunkError::Handle(source)) => {
                return Err(StoreError::Io {
                    path: tmp.path().into(),
                    source,
                });
            }
        }
        let hash = MediaHash(hasher.finalize().into());
        tmp.as_file().sync_all().at(tmp.path())?;
        let dst = self.object_path(&hash);
        match tmp.persist_noclobber(&dst) {
            Ok(_) => {}
            // Same name means same hash means same bytes: already stored.
            Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => {
                return Ok(StoredObject {
                    hash,
                    size,
                    fresh: false,
                });
            }
            Err(e) => return Err(e.error).at(&dst),
        }
        fs::set_permissions(&dst, Permissions::from_mode(0o444)).at(&dst)?;
        let dir = dst.parent().unwrap_or(&self.root);
        // The rename survives a power cut only once its directory is on disk.
        File::open(dir).and_then(|d| d.sync_all()).at(dir)?;
        if self.immutable_flag {
            Self::make_immutable(&dst);
        }
        Ok(StoredObject {
            hash,
            size,
            fresh: true,
        })
    }

    fn local_path(&self, hash: &MediaHash) -> Option<PathBuf> {
        Some(self.object_path(hash))
    }

    fn get(&self, hash: &MediaHash) -> Result<Box<dyn Read + Send>, StoreError> {
        let path = self.object_path(hash);
        Ok(Box::new(File::open(&path).at(&path)?))
    }

    fn exists(&self, hash: &MediaHash) -> Result<bool, StoreError> {
        let path = self.object_path(hash);
        match fs::symlink_metadata(&path) {
            Ok(meta) => Ok(meta.is_file()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e).at(&path),
        }
    }

    fn verify(&self, hash: &MediaHash, buf: &mut [u8]) -> Result<ObjectCheck, StoreError> {
        let path = self.object_path(hash);
        let unreadable = |e: io::Error| ObjectCheck::Unreadable {
            why: format!("{}: {e}", path.display()),
        };
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ObjectCheck::Missing),
            Err(e) => return Ok(unreadable(e)),
        };
        let (size, found) = match hash_reader(file, buf) {
            Ok(read) => read,
            Err(e) => return Ok(unreadable(e)),
        };
        Ok(if found == *hash {
            ObjectCheck::Intact { size }
        } else {
            ObjectCheck::Corrupt { found }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn len(size: u64) -> Expected {
        Expected { size, sha256: None }
    }

    fn store(dir: &Path) -> LocalStore {
        LocalStore::open(&dir.join("store"), 0, false).unwrap()
    }

    #[test]
    fn a_put_is_read_only_content_addressed_and_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let data = vec![7u8; 300_000];
        let mut buf = vec![0; 4096];
        let first = s.put(&mut &data[..], len(300_000), &mut buf).unwrap();
        assert_eq!(first.hash, MediaHash::of(&data));
        assert_eq!(first.size, 300_000);
        assert!(first.fresh);
        let path = s.object_path(&first.hash);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o444
        );
        let again = s.put(&mut &data[..], len(300_000), &mut buf).unwrap();
        assert!(!again.fresh);
        assert_eq!(s.list().unwrap(), vec![first.hash]);
        assert_eq!(s.partial_count().unwrap(), 0);
        let mut back = Vec::new();
        s.get(&first.hash).unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        assert!(s.exists(&first.hash).unwrap());
        assert!(!s.exists(&MediaHash::of(b"other")).unwrap());
        assert_eq!(
            s.verify(&first.hash, &mut buf).unwrap(),
            ObjectCheck::Intact { size: 300_000 }
        );
    }

    #[test]
    fn a_changed_object_is_reported_corrupt_and_a_missing_one_missing() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let mut buf = vec![0; 4096];
        let obj = s.put(&mut &b"evidence"[..], len(8), &mut buf).unwrap();
        let path = s.object_path(&obj.hash);
        fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
        fs::write(&path, b"evidencE").unwrap();
        assert_eq!(
            s.verify(&obj.hash, &mut buf).unwrap(),
            ObjectCheck::Corrupt {
                found: MediaHash::of(b"evidencE")
            }
        );
        fs::remove_file(&path).unwrap();
        assert_eq!(s.verify(&obj.hash, &mut buf).unwrap(), ObjectCheck::Missing);
    }

    /// A reader that fails after `ok` bytes, as a USB card does when its cable is pulled.
    struct Unplugged {
        ok: usize,
    }
    impl Read for Unplugged {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.ok == 0 {
                return Err(io::Error::from_raw_os_error(nix::libc::EIO));
            }
            let n = buf.len().min(self.ok);
            buf[..n].fill(1);
            self.ok -= n;
            Ok(n)
        }
    }

    #[test]
    fn a_source_failing_mid_copy_leaves_nothing_visible() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let err = s
            .put(&mut Unplugged { ok: 10_000 }, len(20_000), &mut [0; 1024])
            .unwrap_err();
        assert!(matches!(err, StoreError::Source(_)), "{err}");
        assert!(s.list().unwrap().is_empty());
        assert_eq!(s.partial_count().unwrap(), 0, "the temp file is removed");
    }

    #[test]
    fn no_put_goes_below_the_reserve_and_leftovers_are_swept_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let s = LocalStore::open(&root, u64::MAX / 2, false).unwrap();
        let err = s.put(&mut &b"x"[..], len(1), &mut [0; 16]).unwrap_err();
        match err {
            StoreError::Full { needed, free, .. } => assert!(needed > free),
            other => panic!("{other}"),
        }
        assert!(s.list().unwrap().is_empty());
        fs::write(root.join("tmp/put-crashed"), b"half").unwrap();
        let s = LocalStore::open(&root, 0, false).unwrap();
        assert_eq!(s.partial_count().unwrap(), 0);
    }

    #[test]
    fn the_immutable_flag_is_set_where_privileges_allow() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStore::open(&dir.path().join("store"), 0, true).unwrap();
        let obj = s.put(&mut &b"clip"[..], len(4), &mut [0; 16]).unwrap();
        let path = s.object_path(&obj.hash);
        let attrs = Command::new("lsattr").arg(&path).output().unwrap();
        let flags = String::from_utf8_lossy(&attrs.stdout).to_string();
        if flags.split_whitespace().next().unwrap_or("").contains('i') {
            // Even root cannot remove it now; clear the flag so the temp dir can go.
            assert!(fs::remove_file(&path).is_err());
            assert!(
                Command::new("chattr")
                    .arg("-i")
                    .arg(&path)
                    .status()
                    .unwrap()
                    .success()
            );
        } else {
            // No privilege or file system support (e.g. tmpfs, not root): read-only stays.
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o444
            );
        }
    }
}
