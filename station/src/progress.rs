//! Per-slot progress for the officer at the dock: clips, bytes, rate and ETA. The daemon
//! keeps it in memory and writes a snapshot to `status.json` for `custody-station status`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// Live counters of one slot's session (updated by the copies without locking).
#[derive(Debug)]
pub struct SlotProgress {
    /// The slot's folder name.
    pub slot: String,
    /// The device.
    pub serial: String,
    /// Files to copy.
    pub clips_total: usize,
    /// Files done (copied and committed).
    pub clips_done: AtomicUsize,
    /// Bytes to copy.
    pub bytes_total: u64,
    /// Bytes read so far.
    pub bytes_done: AtomicU64,
    started: Instant,
}

/// A slot's progress at one moment, as `status --json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotStatus {
    /// The slot.
    pub slot: String,
    /// The device.
    pub serial: String,
    /// Files done.
    pub clips_done: usize,
    /// Files to copy.
    pub clips_total: usize,
    /// Bytes read.
    pub bytes_done: u64,
    /// Bytes to copy.
    pub bytes_total: u64,
    /// Average rate so far, bytes per second.
    pub rate_bytes_per_sec: u64,
    /// Seconds left at that rate, when known.
    pub eta_secs: Option<u64>,
}

/// How a slot's last session ended, as the officer who docked it reads it: counts, no
/// file names. Kept until the slot's next session starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotEnded {
    /// The slot.
    pub slot: String,
    /// The device, when identified.
    pub serial: Option<String>,
    /// Names of the officers it is issued to.
    pub officers: Vec<String>,
    /// Every file was looked at and the session closed (not quarantined or cut off).
    pub complete: bool,
    /// Clips stored exactly as signed.
    pub clips_verified: usize,
    /// Problems found.
    pub findings: usize,
    /// A receipt was written back to the device.
    pub receipt: bool,
    /// When it ended.
    pub at: chrono::DateTime<chrono::Utc>,
}

/// Every slot in progress, and how each slot's last session ended.
#[derive(Debug, Default)]
pub struct ProgressBoard {
    // std Mutex: held only to insert, remove or copy out entries.
    slots: Mutex<BTreeMap<String, Arc<SlotProgress>>>,
    ended: Mutex<BTreeMap<String, SlotEnded>>,
}

impl ProgressBoard {
    /// Starts tracking a slot's session.
    pub fn start(&self, slot: &str, serial: &str, clips: usize, bytes: u64) -> Arc<SlotProgress> {
        let p = Arc::new(SlotProgress {
            slot: slot.into(),
            serial: serial.into(),
            clips_total: clips,
            clips_done: AtomicUsize::new(0),
            bytes_total: bytes,
            bytes_done: AtomicU64::new(0),
            started: Instant::now(),
        });
        self.lock().insert(slot.into(), Arc::clone(&p));
        self.ended_lock().remove(slot);
        p
    }

    /// Stops tracking a slot.
    pub fn finish(&self, slot: &str) {
        self.lock().remove(slot);
    }

    /// Stops tracking a slot, keeping how its session ended.
    pub fn end(&self, ended: SlotEnded) {
        self.lock().remove(&ended.slot);
        self.ended_lock().insert(ended.slot.clone(), ended);
    }

    /// How each slot's last session ended, by slot.
    pub fn ended(&self) -> Vec<SlotEnded> {
        self.ended_lock().values().cloned().collect()
    }

    fn ended_lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, SlotEnded>> {
        self.ended.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A snapshot of every slot in progress.
    pub fn snapshot(&self) -> Vec<SlotStatus> {
        self.lock()
            .values()
            .map(|p| {
                let bytes_done = p.bytes_done.load(Ordering::Relaxed);
                let secs = p.started.elapsed().as_secs_f64();
                #[expect(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    clippy::cast_precision_loss,
                    reason = "a rate in bytes per second; rounding is fine"
                )]
                let rate = if secs > 0.0 {
                    (bytes_done as f64 / secs) as u64
                } else {
                    0
                };
                SlotStatus {
                    slot: p.slot.clone(),
                    serial: p.serial.clone(),
                    clips_done: p.clips_done.load(Ordering::Relaxed),
                    clips_total: p.clips_total,
                    bytes_done,
                    bytes_total: p.bytes_total,
                    rate_bytes_per_sec: rate,
                    eta_secs: (rate > 0).then(|| p.bytes_total.saturating_sub(bytes_done) / rate),
                }
            })
            .collect()
    }

    /// Starts tracking work under `key` for as long as the returned guard lives (it
    /// leaves the board when dropped, on an error too).
    pub(crate) fn track(&self, key: &str, subject: &str, files: usize, bytes: u64) -> Tracked<'_> {
        Tracked {
            progress: self.start(key, subject, files, bytes),
            board: self,
            key: key.to_owned(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<SlotProgress>>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Work on a board while it lasts (see [`ProgressBoard::track`]).
pub(crate) struct Tracked<'a> {
    /// Its counters.
    pub(crate) progress: Arc<SlotProgress>,
    board: &'a ProgressBoard,
    key: String,
}

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        self.board.finish(&self.key);
    }
}

/// A reader that counts the bytes read through it into a progress counter.
pub(crate) struct Counted<'a, R> {
    inner: R,
    done: &'a AtomicU64,
}

impl<'a, R> Counted<'a, R> {
    /// `inner`, counted into `done`.
    pub(crate) fn new(inner: R, done: &'a AtomicU64) -> Self {
        Self { inner, done }
    }
}

impl<R: std::io::Read> std::io::Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}
