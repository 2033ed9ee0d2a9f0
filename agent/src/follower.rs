//! Hashing a clip while it is being written: the follower reads whatever the recorder has
//! appended since last time, so when the clip closes only the tail remains to hash.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Instant;

use custody::MediaHash;
use sha2::{Digest, Sha256};

use crate::fragments::FragmentTimeline;

/// Which file a follower is reading: survives a rename, changes when the file is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    /// The identity of the file at `path` (not following a final symlink).
    ///
    /// # Errors
    /// The file cannot be stat'ed.
    pub fn of(path: &Path) -> io::Result<Self> {
        let m = std::fs::symlink_metadata(path)?;
        Ok(Self {
            dev: m.dev(),
            ino: m.ino(),
        })
    }
}

/// What one step of following found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// New bytes were hashed.
    Grew,
    /// Nothing new.
    Idle,
    /// The file shrank or was replaced: hashing started again from the start.
    Restarted,
}

/// Bytes at the start of a clip kept to check at close that they were not rewritten (MP4
/// muxers that are not fragmented patch the `mdat` size there).
const HEAD_CHECK: usize = 64 * 1024;

/// Incremental SHA-256 of a growing file.
#[derive(Debug, Clone)]
pub struct Follower {
    id: FileId,
    hasher: Sha256,
    offset: u64,
    /// The first bytes hashed, up to [`HEAD_CHECK`].
    head: Vec<u8>,
    /// The clip's duration so far, if it is a fragmented MP4.
    timeline: FragmentTimeline,
    /// When bytes last arrived (for "stops growing" closing).
    pub last_growth: Instant,
    /// When the follower first saw the file (the clip's start, by the device clock).
    pub first_seen: chrono::DateTime<chrono::Utc>,
}

impl Follower {
    /// Starts following the file at `path` from its first byte.
    ///
    /// # Errors
    /// The file cannot be stat'ed.
    pub fn new(path: &Path) -> io::Result<Self> {
        Ok(Self::start(FileId::of(path)?, chrono::Utc::now()))
    }

    /// A follower at the first byte of file `id`, first seen at `first_seen`.
    fn start(id: FileId, first_seen: chrono::DateTime<chrono::Utc>) -> Self {
        Self {
            id,
            hasher: Sha256::new(),
            offset: 0,
            head: Vec::new(),
            timeline: FragmentTimeline::default(),
            last_growth: Instant::now(),
            first_seen,
        }
    }

    /// The file this follower reads.
    pub fn id(&self) -> FileId {
        self.id
    }

    /// Bytes hashed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Hashes what was appended since the last call, through the caller's buffer.
    ///
    /// # Errors
    /// The file cannot be read (it vanished: the caller drops the follower).
    pub fn advance(&mut self, path: &Path, buf: &mut [u8]) -> io::Result<Progress> {
        let mut file = File::open(path)?;
        let meta = file.metadata()?;
        let id = FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        };
        let mut progress = Progress::Idle;
        if id != self.id || meta.len() < self.offset {
            // Replaced or truncated under us: what was hashed no longer describes the file.
            *self = Self::start(id, self.first_seen);
            progress = Progress::Restarted;
        }
        file.seek(SeekFrom::Start(self.offset))?;
        let reader = file.take(meta.len() - self.offset);
        custody::for_each_chunk(reader, buf, |chunk| {
            self.hasher.update(chunk);
            self.timeline.feed(chunk);
            let keep = HEAD_CHECK.saturating_sub(self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..keep]);
            self.offset += chunk.len() as u64;
            self.last_growth = Instant::now();
            if progress == Progress::Idle {
                progress = Progress::Grew;
            }
            Ok::<(), std::convert::Infallible>(())
        })
        .map_err(|e| match e {
            custody::ChunkError::Read(e) => e,
            custody::ChunkError::Handle(never) => match never {},
        })?;
        Ok(progress)
    }

    /// Whether the start of the file still holds the bytes that were hashed.
    ///
    /// # Errors
    /// The file cannot be read.
    pub fn head_unchanged(&self, path: &Path) -> io::Result<bool> {
        let mut now = Vec::with_capacity(self.head.len());
        File::open(path)?
            .take(self.head.len() as u64)
            .read_to_end(&mut now)?;
        Ok(now == self.head)
    }

    /// The duration of everything read, in milliseconds, when it is a whole fragmented MP4:
    /// a `moov` announcing fragments, at least one `moof`, and nothing cut off at the end.
    pub fn fragmented_duration_ms(&self) -> Option<u64> {
        self.timeline.duration_ms()
    }

    /// The size and hash of everything read.
    pub fn finish(self) -> (u64, MediaHash) {
        (self.offset, MediaHash(self.hasher.finalize().into()))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn following_a_growing_file_gives_the_one_shot_hash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clip.part");
        let mut f = File::create(&path).unwrap();
        let mut follower = Follower::new(&path).unwrap();
        let mut all = Vec::new();
        for i in 0..50u8 {
            let chunk = vec![i; 1000 + usize::from(i) * 37];
            f.write_all(&chunk).unwrap();
            all.extend_from_slice(&chunk);
            assert_ne!(
                follower.advance(&path, &mut [0; 4096]).unwrap(),
                Progress::Restarted
            );
        }
        // Renamed on close: same file, the follower goes on.
        let closed = dir.path().join("clip.mp4");
        std::fs::rename(&path, &closed).unwrap();
        assert_eq!(
            follower.advance(&closed, &mut [0; 4096]).unwrap(),
            Progress::Idle
        );
        assert!(follower.head_unchanged(&closed).unwrap());
        assert_eq!(follower.finish(), (all.len() as u64, MediaHash::of(&all)));
    }

    #[test]
    fn a_shrunk_or_replaced_file_is_hashed_again_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clip.mp4");
        std::fs::write(&path, vec![1u8; 5000]).unwrap();
        let mut follower = Follower::new(&path).unwrap();
        follower.advance(&path, &mut [0; 512]).unwrap();
        std::fs::write(&path, b"short").unwrap();
        assert_eq!(
            follower.advance(&path, &mut [0; 512]).unwrap(),
            Progress::Restarted
        );
        assert_eq!(follower.clone().finish(), (5, MediaHash::of(b"short")));
        let other = dir.path().join("other");
        std::fs::write(&other, b"replacement").unwrap();
        std::fs::rename(&other, &path).unwrap();
        assert_eq!(
            follower.advance(&path, &mut [0; 512]).unwrap(),
            Progress::Restarted
        );
        assert_eq!(follower.finish(), (11, MediaHash::of(b"replacement")));
    }

    #[test]
    fn a_header_patched_at_close_is_noticed() {
        use std::os::unix::fs::FileExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clip.mp4");
        std::fs::write(&path, vec![0u8; 100_000]).unwrap();
        let mut follower = Follower::new(&path).unwrap();
        follower.advance(&path, &mut [0; 4096]).unwrap();
        // What a non-fragmented MP4 muxer does at close: rewrite the mdat size in place.
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .write_at(&[0, 1, 134, 160], 40)
            .unwrap();
        assert!(!follower.head_unchanged(&path).unwrap());
    }

    #[test]
    fn a_zero_length_clip_hashes_to_the_empty_hash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.mp4");
        File::create(&path).unwrap();
        let mut follower = Follower::new(&path).unwrap();
        follower.advance(&path, &mut [0; 64]).unwrap();
        assert_eq!(follower.finish(), (0, MediaHash::of(b"")));
    }
}
