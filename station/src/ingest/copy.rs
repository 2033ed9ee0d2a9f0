//! One file from the device into the store: opened inside the device, streamed once
//! through a pooled buffer, counted into the slot's progress.

use std::fs::{self, File};
use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;

use custody::{MediaHash, layout, open_media};

use crate::progress::{Counted, SlotProgress};
use crate::store::{Expected, StoreError, StoredObject};
use crate::{Station, fault};

use super::IngestError;

/// One file to copy: a record's clip, or a file no record covers.
pub(super) struct Job {
    /// Path relative to the device root.
    pub(super) file: String,
    /// The size the record states (or the file's size, unattested).
    pub(super) size: u64,
    /// Index of the record in the session's plan, `None` for unattested files.
    pub(super) record: Option<usize>,
    /// The hash the record claims, `None` for unattested files.
    pub(super) sha256: Option<MediaHash>,
}

/// The outcome of one copy.
pub(super) type CopyResult = Result<StoredObject, CopyError>;

pub(super) enum CopyError {
    /// The file cannot be opened (absent, not regular, outside the device): a finding.
    Unreadable(String),
    /// Fatal for the session.
    Fatal(IngestError),
}

impl Station {
    /// Opens and copies one file into the store (through the shared buffer pool). A store
    /// that keys objects by the hash before writing (S3) asks for a second read when the
    /// bytes are not what the record claims, or no record claims anything.
    pub(super) fn copy(
        &self,
        root: &Path,
        real_root: &Path,
        job: &Job,
        progress: &SlotProgress,
    ) -> CopyResult {
        let mut buf = self.buffers.take();
        let mut expected = Expected {
            size: job.size,
            sha256: job.sha256,
        };
        for pass in 0..2 {
            let file = Self::open_for_copy(root, real_root, job, progress)?;
            let mut src = Counted::new(fault::source(file), &progress.bytes_done);
            match self.store.put(&mut src, expected, buf.as_mut()) {
                Ok(stored) => return Ok(stored),
                Err(StoreError::Unexpected { found, size }) if pass == 0 => {
                    // The second pass counts the same bytes again.
                    progress.bytes_done.fetch_sub(size, Ordering::Relaxed);
                    expected.sha256 = Some(found);
                }
                Err(StoreError::Unexpected { found, size }) => {
                    return Err(CopyError::Unreadable(format!(
                        "changed while being copied: read twice, the second time {size} bytes sha256 {found}"
                    )));
                }
                Err(StoreError::Source(source)) => {
                    return Err(CopyError::Fatal(IngestError::Unplugged {
                        slot: progress.slot.clone(),
                        source,
                    }));
                }
                Err(other) => return Err(CopyError::Fatal(IngestError::Store(other))),
            }
        }
        Err(CopyError::Unreadable("not stored after two reads".into()))
    }

    /// Opens a file to copy; a file that vanished with the whole device is an unplug.
    fn open_for_copy(
        root: &Path,
        real_root: &Path,
        job: &Job,
        progress: &SlotProgress,
    ) -> Result<File, CopyError> {
        open_media(root, real_root, &job.file).map_err(
            |custody::MediaUnavailable { why, .. }| {
                if fs::metadata(root.join(layout::CUSTODY_DIR)).is_err() && job.record.is_some() {
                    CopyError::Fatal(IngestError::Unplugged {
                        slot: progress.slot.clone(),
                        source: io::Error::new(io::ErrorKind::NotFound, why),
                    })
                } else {
                    CopyError::Unreadable(why)
                }
            },
        )
    }
}
