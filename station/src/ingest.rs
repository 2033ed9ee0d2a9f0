//! One dock session: identify the device in a slot, verify its records and chain from
//! the ledger's anchor, stream every new clip once into the store (read → SHA-256 →
//! write) on a bounded pool of copies, commit each record in seq order, sign a checkpoint
//! and leave a receipt in the device's inbox.
//!
//! Bad evidence becomes findings and is kept; only a failing station (store full, ledger
//! error) or a device that went away (cable pulled) stops a session, and then nothing is
//! committed half: what was committed stays, the rest is done at the next dock.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use custody::{
    ChainStart, Fact, Finding, KeyId, MediaHash, PublicKey, RECEIPT_V1, ReceiptBody, ReceiptEntry,
    Record, Verified, code, encode_proof, future_records, layout, media_entries, open_media,
    verify_chain,
};
use serde::Serialize;

use crate::deadline::deadline;
use crate::ledger::{ClipEntry, LedgerError, SessionEnd, SessionId};
use crate::progress::SlotProgress;
use crate::store::{Expected, StoreError, StoredObject};
use crate::{Station, fault};

/// Why a session stopped before the end. What was committed stays committed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// The device went away (slot folder vanished, read error): retried at the next dock.
    #[error(
        "device in {slot} went away mid-ingest (cable pulled?); the rest is taken at the next dock"
    )]
    Unplugged {
        /// The slot.
        slot: String,
        /// The read error.
        #[source]
        source: io::Error,
    },
    /// The store failed (full disk included): ingest stops until it is fixed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The slot is not a folder.
    #[error("slot {0} is not a folder")]
    NotASlot(PathBuf),
    /// Writing the quarantine copy failed.
    #[error("cannot quarantine into {path}")]
    Quarantine {
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// How the officer docked: an optional lawful delay reason, and the dock (return) time.
#[derive(Debug, Clone, Default)]
pub struct DockOptions {
    /// A delay reason code from the policy (checked by the CLI).
    pub delay_reason: Option<String>,
    /// When the device returned; now when absent.
    pub returned: Option<DateTime<Utc>>,
}

/// What a session did, for the officer, the report and the tests.
#[derive(Debug, Clone, Serialize)]
pub struct SessionOutcome {
    /// The ledger's session id.
    pub session: SessionId,
    /// The slot folder's name.
    pub slot: String,
    /// The device, when identified.
    pub serial: Option<String>,
    /// Complete, or quarantined.
    pub outcome: SessionEnd,
    /// Records committed this session.
    pub records: usize,
    /// Clips stored with their signed hash.
    pub clips_verified: usize,
    /// Bytes read from the device and stored.
    pub bytes: u64,
    /// Files ingested without a record.
    pub unattested: usize,
    /// Clips stored after their deadline.
    pub late: usize,
    /// Everything found wrong.
    pub findings: Vec<Finding>,
    /// Log size of the checkpoint signed at the end.
    pub checkpoint_size: Option<u64>,
    /// The receipt written to the device, relative to its storage root.
    pub receipt: Option<String>,
}

/// A fixed set of copy buffers shared by every slot: taking one waits while all are in use,
/// so memory is `parallel_copies × BUF_LEN` however many slots or however large the clips.
#[derive(Debug)]
pub struct BufferPool {
    free: Mutex<Vec<Vec<u8>>>,
    returned: Condvar,
}

impl BufferPool {
    /// A pool of `n` buffers of `len` bytes.
    pub fn new(n: usize, len: usize) -> Self {
        Self {
            free: Mutex::new((0..n).map(|_| vec![0; len]).collect()),
            returned: Condvar::new(),
        }
    }

    /// Takes a buffer, waiting for one to be returned if none is free.
    pub fn take(&self) -> PooledBuffer<'_> {
        // std Mutex: held only to push/pop a Vec, never across I/O.
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(buf) = free.pop() {
                return PooledBuffer {
                    pool: self,
                    buf: Some(buf),
                };
            }
            free = self
                .returned
                .wait(free)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// A buffer on loan from a [`BufferPool`]; returned when dropped.
#[derive(Debug)]
pub struct PooledBuffer<'p> {
    pool: &'p BufferPool,
    buf: Option<Vec<u8>>,
}

impl PooledBuffer<'_> {
    /// The bytes.
    pub fn as_mut(&mut self) -> &mut [u8] {
        self.buf.as_deref_mut().unwrap_or_default()
    }
}

impl Drop for PooledBuffer<'_> {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            let mut free = self
                .pool
                .free
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            free.push(buf);
            self.pool.returned.notify_one();
        }
    }
}

/// Counts bytes read into the slot's progress.
struct Counted<'a, R> {
    inner: R,
    done: &'a AtomicU64,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Devices with a dock session in progress. A device can be seen twice at once (docked in
/// a slot while its upload is ingested); two sessions would verify and commit the same
/// chain side by side.
#[derive(Debug, Default)]
pub(crate) struct DeviceSessions {
    busy: Mutex<HashSet<String>>,
    freed: Condvar,
}

/// A device's turn, until dropped.
pub(crate) struct DeviceTurn<'a> {
    sessions: &'a DeviceSessions,
    serial: String,
}

impl DeviceSessions {
    /// Waits until no session holds `serial`, then holds it.
    pub(crate) fn enter(&self, serial: &str) -> DeviceTurn<'_> {
        let mut busy = self.busy.lock().unwrap_or_else(PoisonError::into_inner);
        while busy.contains(serial) {
            tracing::info!(serial, "device already in a session; waiting for it to end");
            busy = self
                .freed
                .wait(busy)
                .unwrap_or_else(PoisonError::into_inner);
        }
        busy.insert(serial.to_owned());
        DeviceTurn {
            sessions: self,
            serial: serial.to_owned(),
        }
    }
}

impl Drop for DeviceTurn<'_> {
    fn drop(&mut self) {
        self.sessions
            .busy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.serial);
        self.sessions.freed.notify_all();
    }
}

/// One file to copy: a record's clip, or a file no record covers.
struct Job {
    /// Path relative to the device root.
    file: String,
    /// The size the record states (or the file's size, unattested).
    size: u64,
    /// Index of the record in the session's plan, `None` for unattested files.
    record: Option<usize>,
    /// The hash the record claims, `None` for unattested files.
    sha256: Option<MediaHash>,
}

/// The outcome of one copy.
type CopyResult = Result<StoredObject, CopyError>;

enum CopyError {
    /// The file cannot be opened (absent, not regular, outside the device): a finding.
    Unreadable(String),
    /// Fatal for the session.
    Fatal(IngestError),
}

/// The device in a slot, once identified.
struct Identified {
    serial: String,
    key: PublicKey,
    key_id: KeyId,
}

impl Station {
    /// Runs one dock session on the device in `slot_dir`.
    ///
    /// # Errors
    /// [`IngestError`] when the session had to stop: device gone, store full, ledger
    /// failure. Evidence problems are findings in the outcome, not errors.
    pub fn ingest_slot(
        &self,
        slot_dir: &Path,
        opts: &DockOptions,
    ) -> Result<SessionOutcome, IngestError> {
        let slot = slot_dir.file_name().map_or_else(
            || slot_dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        if !fs::metadata(slot_dir).is_ok_and(|m| m.is_dir()) {
            return Err(IngestError::NotASlot(slot_dir.into()));
        }
        let now = Utc::now();
        let returned = opts.returned.unwrap_or(now);
        let (identity, why_not) = self.identify(slot_dir, &slot)?;
        // One session per device at a time: the second waits, then finds what the first
        // committed in the ledger.
        let _device = identity
            .as_ref()
            .map(|d| self.device_sessions.enter(&d.serial));
        let session = self.ledger().open_session(
            &slot,
            identity.as_ref().map(|d| d.serial.as_str()),
            opts.delay_reason.as_deref(),
            now,
        )?;
        let span = tracing::info_span!("dock", slot = %slot, session = session.0);
        let _entered = span.enter();
        let Some(device) = identity else {
            let finding = why_not.unwrap_or_else(|| {
                Finding::error(code::DEVICE_UNENROLLED, &slot, "device not identified")
            });
            return self.quarantine(slot_dir, &slot, session, finding);
        };
        let mut outcome = SessionOutcome {
            session,
            slot: slot.clone(),
            serial: Some(device.serial.clone()),
            outcome: SessionEnd::Complete,
            records: 0,
            clips_verified: 0,
            bytes: 0,
            unattested: 0,
            late: 0,
            findings: Vec::new(),
            checkpoint_size: None,
            receipt: None,
        };
        let result = self.ingest_device(slot_dir, &device, opts, returned, &mut outcome);
        self.progress.finish(&slot);
        match result {
            Ok(()) => {
                let summary = serde_json::to_value(&outcome).unwrap_or_default();
                self.ledger()
                    .close_session(session, SessionEnd::Complete, &summary, Utc::now())?;
                tracing::info!(
                    serial = %device.serial,
                    records = outcome.records,
                    findings = outcome.findings.len(),
                    "dock session complete"
                );
                Ok(outcome)
            }
            Err(e) => {
                let summary = serde_json::json!({ "error": format!("{e:#}") });
                // The ledger may be what failed; the session then simply has no end row.
                let _ = self.ledger().close_session(
                    session,
                    SessionEnd::Interrupted,
                    &summary,
                    Utc::now(),
                );
                tracing::warn!(serial = %device.serial, error = %e, "dock session interrupted");
                Err(e)
            }
        }
    }

    /// Identifies the device: exactly one device folder, enrolled, whose public key is the
    /// enrolled one. Otherwise `None` and the finding explaining why.
    ///
    /// # Errors
    /// The device cannot be read (gone: [`IngestError::Unplugged`]) or the ledger fails
    /// ([`IngestError::Ledger`], never mistaken for a pulled cable).
    fn identify(
        &self,
        root: &Path,
        slot: &str,
    ) -> Result<(Option<Identified>, Option<Finding>), IngestError> {
        let serials = layout::device_serials(root).map_err(|source| IngestError::Unplugged {
            slot: slot.to_owned(),
            source,
        })?;
        let [serial] = serials.as_slice() else {
            let why = if serials.is_empty() {
                "no custody folder: not a Custody device, or an agent never ran".to_owned()
            } else {
                format!(
                    "several device folders on one device: {}",
                    serials.join(", ")
                )
            };
            return Ok((
                None,
                Some(Finding::error(code::DEVICE_UNENROLLED, "slot", why)),
            ));
        };
        let Some(enrolled) = self.ledger().device(serial)? else {
            return Ok((
                None,
                Some(Finding::error(
                    code::DEVICE_UNENROLLED,
                    serial,
                    "no enrolment for this serial; IT enrols devices with `custody-station enroll`",
                )),
            ));
        };
        let pem_path = layout::device_dir(root, serial).join(layout::PUBLIC_KEY_FILE);
        let on_device = fs::read_to_string(&pem_path)
            .ok()
            .and_then(|t| PublicKey::from_pem(&t).ok());
        if on_device != Some(enrolled.key) {
            return Ok((
                None,
                Some(Finding::error(
                    code::DEVICE_KEY_UNTRUSTED,
                    serial,
                    format!(
                        "the device's key is {}, not the key enrolled for {serial} ({})",
                        on_device.map_or_else(|| "missing".into(), |k| k.key_id().0),
                        enrolled.key_id
                    ),
                )),
            ));
        }
        Ok((
            Some(Identified {
                serial: serial.clone(),
                key: enrolled.key,
                key_id: enrolled.key.key_id(),
            }),
            None,
        ))
    }

    #[expect(
        clippy::too_many_lines,
        reason = "the session's steps in order; each is a few lines and reads best in sequence"
    )]
    fn ingest_device(
        &self,
        root: &Path,
        device: &Identified,
        opts: &DockOptions,
        returned: DateTime<Utc>,
        outcome: &mut SessionOutcome,
    ) -> Result<(), IngestError> {
        let serial = device.serial.as_str();
        let session = outcome.session;
        let unplugged = |source| IngestError::Unplugged {
            slot: outcome.slot.clone(),
            source,
        };
        // 1. Records and chain, continuing from the ledger's anchor (a chain spans docks).
        let anchor = self.ledger().anchor(serial)?;
        let start = anchor.map_or(ChainStart::Genesis, ChainStart::After);
        let (files, mut findings) =
            layout::read_records(&layout::device_dir(root, serial)).map_err(unplugged)?;
        let chain = verify_chain(serial, &device.key, files, start);
        findings.extend(chain.findings);
        // Both sides of a fork verify; the first at each seq is committed, the other's
        // media is not covered and comes in as unattested below. Nothing is dropped.
        let mut seen = HashSet::new();
        let plan: Vec<Record<Verified>> = chain
            .verified
            .into_iter()
            .filter(|r| seen.insert(r.body().seq))
            .collect();
        self.ledger()
            .add_findings(session, Some(serial), &findings, Utc::now())?;
        outcome.findings.extend(findings);

        // 2. What to copy: every new clip, then every file no verified record covers.
        // Clips of earlier docks not freed yet are not taken twice; a file under such a
        // name with another size (the name was reused) is new and is taken, and so is the
        // file of a clip whose media was missing at an earlier dock (stored unattested).
        let earlier = self.ledger().stored_clip_files(serial)?;
        let mut covered: HashSet<String> = HashSet::new();
        let mut jobs = Vec::new();
        for (i, rec) in plan.iter().enumerate() {
            if let Some(media) = rec.body().media() {
                covered.insert(media.file.clone());
                jobs.push(Job {
                    file: media.file.clone(),
                    size: media.size,
                    record: Some(i),
                    sha256: Some(media.sha256),
                });
            }
        }
        let real_root = fs::canonicalize(root).map_err(unplugged)?;
        let mut unattested_findings = Vec::new();
        for (file, regular) in media_entries(root).map_err(unplugged)? {
            let size = fs::symlink_metadata(root.join(&file)).map_or(0, |m| m.len());
            if covered.contains(&file) || earlier.get(&file) == Some(&size) {
                continue;
            }
            if !regular {
                unattested_findings.push(Finding::warning(
                    code::MEDIA_UNRECORDED,
                    &file,
                    "not a regular file (symlink, device or folder too deep); not followed",
                ));
                continue;
            }
            jobs.push(Job {
                file,
                size,
                record: None,
                sha256: None,
            });
        }
        self.ledger()
            .add_findings(session, Some(serial), &unattested_findings, Utc::now())?;
        outcome.findings.extend(unattested_findings);
        let progress = self.progress.start(
            &outcome.slot,
            serial,
            jobs.len(),
            jobs.iter().map(|j| j.size).sum(),
        );

        // 3. Copy in parallel, commit in seq order.
        let mut job_of = vec![None; plan.len()];
        for (j, job) in jobs.iter().enumerate() {
            if let Some(r) = job.record {
                job_of[r] = Some(j);
            }
        }
        let mut committer = Committer {
            plan: &plan,
            job_of: &job_of,
            next: 0,
            results: BTreeMap::new(),
            fatal: None,
        };
        let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, CopyResult)>(
            // At most one finished copy per worker waits here: a slow commit pauses copies.
            self.cfg.parallel_copies.get(),
        );
        let next_job = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let workers = self.cfg.parallel_copies.get().min(jobs.len());
            for _ in 0..workers {
                let tx = tx.clone();
                let (jobs, next_job, stop, real_root, progress) =
                    (&jobs, &next_job, &stop, &real_root, &progress);
                scope.spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let i = next_job.fetch_add(1, Ordering::Relaxed);
                        let Some(job) = jobs.get(i) else { break };
                        let result = self.copy(root, real_root, job, progress);
                        if tx.send((i, result)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            for (i, result) in rx {
                committer.results.insert(i, result);
                self.commit_ready(&mut committer, session, opts, returned, &progress, outcome);
                if committer.fatal.is_some() {
                    stop.store(true, Ordering::Relaxed);
                }
            }
        });
        // Records without media (bindings, annotations) after the last copy.
        self.commit_ready(&mut committer, session, opts, returned, &progress, outcome);
        if let Some(e) = committer.fatal {
            return Err(e);
        }
        let mut results = committer.results;
        // Unattested files, in any order.
        for (i, job) in jobs.iter().enumerate().filter(|(_, j)| j.record.is_none()) {
            match results.remove(&i) {
                Some(Ok(stored)) => {
                    let finding = Finding::warning(
                        code::MEDIA_UNRECORDED,
                        format!("{serial} {}", job.file),
                        format!(
                            "no record covers this file; stored unattested, {} bytes sha256 {}",
                            stored.size, stored.hash
                        ),
                    );
                    self.ledger().commit_unattested(
                        session,
                        serial,
                        &job.file,
                        (stored.hash, stored.size),
                        &finding,
                        Utc::now(),
                    )?;
                    outcome.unattested += 1;
                    outcome.bytes += stored.size;
                    outcome.findings.push(finding);
                }
                Some(Err(CopyError::Fatal(e))) => return Err(e),
                Some(Err(CopyError::Unreadable(why))) => {
                    tracing::warn!(file = %job.file, %why, "unrecorded file vanished before copy");
                }
                None => {}
            }
            progress.clips_done.fetch_add(1, Ordering::Relaxed);
        }

        // 4. Checkpoint, then the receipt for everything stored and not yet receipted.
        let checkpoint = self.ledger().sign_checkpoint(&self.signer, Utc::now())?;
        outcome.checkpoint_size = Some(checkpoint.size);
        outcome.receipt =
            self.deliver_receipt(root, session, device, &checkpoint.note, checkpoint.size)?;
        Ok(())
    }

    /// Commits every record whose copy (if any) is done, in seq order, until one is
    /// still copying or a commit fails.
    fn commit_ready(
        &self,
        c: &mut Committer<'_>,
        session: SessionId,
        opts: &DockOptions,
        returned: DateTime<Utc>,
        progress: &SlotProgress,
        outcome: &mut SessionOutcome,
    ) {
        while c.fatal.is_none() {
            let Some(rec) = c.plan.get(c.next) else { break };
            let copied = match c.job_of[c.next] {
                None => None,
                Some(j) => match c.results.remove(&j) {
                    None => break,
                    Some(r) => Some(r),
                },
            };
            match self.commit(session, rec, copied, opts, returned) {
                Ok(done) => done.add_to(outcome),
                Err(e) => c.fatal = Some(e),
            }
            progress.clips_done.fetch_add(1, Ordering::Relaxed);
            c.next += 1;
        }
    }

    /// Opens and copies one file into the store (through the shared buffer pool). A store
    /// that keys objects by the hash before writing (S3) asks for a second read when the
    /// bytes are not what the record claims, or no record claims anything.
    fn copy(
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
            let mut src = Counted {
                inner: fault::source(file),
                done: &progress.bytes_done,
            };
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

    /// Commits one record with what its copy gave.
    fn commit(
        &self,
        session: SessionId,
        rec: &Record<Verified>,
        copied: Option<CopyResult>,
        opts: &DockOptions,
        returned: DateTime<Utc>,
    ) -> Result<Committed, IngestError> {
        let body = rec.body();
        let serial = &body.device.serial;
        // A record dated after the station's clock (plus tolerance) is kept and flagged.
        let mut findings = future_records(std::slice::from_ref(rec), Utc::now());
        let mut done = Committed::default();
        let entry = match (&body.fact, copied) {
            (Fact::Clip(clip), Some(copied)) => {
                let subject = format!("{serial} seq {} {}", body.seq, clip.media.file);
                let stored = match copied {
                    Ok(stored) => {
                        done.bytes = stored.size;
                        if stored.hash == clip.media.sha256 && stored.size == clip.media.size {
                            done.clips_verified = 1;
                        } else {
                            findings.push(Finding::error(
                                code::MEDIA_HASH_MISMATCH,
                                &subject,
                                format!(
                                    "signed {} bytes sha256 {}, read {} bytes sha256 {}; stored as read and kept on the device",
                                    clip.media.size, clip.media.sha256, stored.size, stored.hash
                                ),
                            ));
                        }
                        Some((stored.hash, stored.size))
                    }
                    Err(CopyError::Unreadable(why)) => {
                        findings.push(Finding::error(code::MEDIA_MISSING, &subject, why));
                        None
                    }
                    Err(CopyError::Fatal(e)) => return Err(e),
                };
                let stored_at = Utc::now();
                let due = deadline(
                    &self.cfg.deadline,
                    self.cfg.utc_offset,
                    clip.time.end.with_timezone(&Utc),
                    returned,
                    opts.delay_reason.as_deref(),
                    stored_at,
                );
                if due.late {
                    done.late = 1;
                    findings.push(Finding::warning(
                        code::STORED_LATE,
                        &subject,
                        format!(
                            "recorded until {}, due by {}, stored {}{}",
                            clip.time.end,
                            due.due.with_timezone(&self.cfg.utc_offset),
                            stored_at.with_timezone(&self.cfg.utc_offset),
                            opts.delay_reason
                                .as_deref()
                                .map(|r| format!(" (delay reason: {r})"))
                                .unwrap_or_default()
                        ),
                    ));
                }
                Some(ClipEntry {
                    stored,
                    deadline: due.due,
                    late: due.late,
                    delay_reason: opts.delay_reason.clone(),
                })
            }
            _ => None,
        };
        self.ledger()
            .commit_record(session, rec, entry.as_ref(), &findings, Utc::now())?;
        done.findings = findings;
        Ok(done)
    }

    /// Writes the receipt into the device's inbox and keeps a copy in the ledger. A device
    /// that cannot take it (read-only, gone) gets it at the next dock.
    fn deliver_receipt(
        &self,
        root: &Path,
        session: SessionId,
        device: &Identified,
        checkpoint_note: &str,
        size: u64,
    ) -> Result<Option<String>, IngestError> {
        let records = self.ledger().unreceipted(&device.serial)?;
        let Some(max_seq) = records.last().map(|r| r.seq) else {
            return Ok(None);
        };
        let mut entries = Vec::with_capacity(records.len());
        for r in &records {
            entries.push(ReceiptEntry {
                seq: r.seq,
                record: r.hash,
                log_index: r.log_index,
                proof: encode_proof(&self.ledger().inclusion_proof(r.log_index, size)?),
            });
        }
        let body = ReceiptBody {
            format: RECEIPT_V1.into(),
            station: self.cfg.origin.clone(),
            device: device.serial.clone(),
            device_key_id: device.key_id.clone(),
            issued: Utc::now().with_timezone(&self.cfg.utc_offset),
            checkpoint: checkpoint_note.into(),
            entries,
        };
        let bytes = body
            .to_bytes()
            .map_err(|e| LedgerError::Invalid(format!("receipt: {e}")))?;
        let sig = self.receipt_key.sign(&bytes);
        let dir = layout::inbox_dir(root, &device.serial);
        let path = dir.join(layout::receipt_file_name(size));
        let written = fs::create_dir_all(&dir)
            .and_then(|()| layout::write_atomic(&path.with_extension("sig"), &sig.0))
            .and_then(|()| layout::write_atomic(&path, &bytes));
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "receipt not delivered; re-issued at the next dock");
            return Ok(None);
        }
        self.ledger().commit_receipt(
            session,
            &device.serial,
            (max_seq, size),
            &bytes,
            &sig,
            Utc::now(),
        )?;
        Ok(path
            .strip_prefix(root)
            .ok()
            .map(|p| p.display().to_string()))
    }

    /// Copies an unidentified device's files into quarantine (kept, reported, never mixed
    /// with evidence) and records it.
    fn quarantine(
        &self,
        slot_dir: &Path,
        slot: &str,
        session: SessionId,
        finding: Finding,
    ) -> Result<SessionOutcome, IngestError> {
        let claimed = (finding.subject != "slot").then(|| finding.subject.clone());
        let dest = self
            .cfg
            .data_dir
            .join("quarantine")
            .join(format!("session-{:08}-{slot}", session.0));
        let q_err = |source| IngestError::Quarantine {
            path: dest.clone(),
            source,
        };
        fs::create_dir_all(&dest).map_err(q_err)?;
        let (mut files, mut bytes) = (0u64, 0u64);
        let mut manifest = Vec::new();
        let mut stack = vec![(slot_dir.to_path_buf(), PathBuf::new(), 0usize)];
        let mut buf = self.buffers.take();
        while let Some((dir, rel, depth)) = stack.pop() {
            for entry in fs::read_dir(&dir).map_err(q_err)? {
                let entry = entry.map_err(q_err)?;
                let kind = entry.file_type().map_err(q_err)?;
                let rel = rel.join(entry.file_name());
                if kind.is_dir() && depth < QUARANTINE_DEPTH {
                    stack.push((entry.path(), rel, depth + 1));
                } else if kind.is_file() {
                    let target = dest.join(&rel);
                    if let Some(parent) = target.parent() {
                        fs::create_dir_all(parent).map_err(q_err)?;
                    }
                    let src = fs::File::open(entry.path()).map_err(q_err)?;
                    let copy = fs::File::create(&target).map_err(q_err)?;
                    let (size, hash) =
                        custody::copy_hashing(src, &copy, buf.as_mut()).map_err(q_err)?;
                    copy.sync_all().map_err(q_err)?;
                    files += 1;
                    bytes += size;
                    manifest.push(serde_json::json!({
                        "file": rel.display().to_string(), "size": size, "sha256": hash.to_hex()
                    }));
                }
            }
        }
        layout::write_atomic(
            &dest.join("QUARANTINE.json"),
            serde_json::to_string_pretty(&manifest)
                .unwrap_or_default()
                .as_bytes(),
        )
        .map_err(q_err)?;
        let folder = dest.display().to_string();
        self.ledger().commit_quarantine(
            session,
            claimed.as_deref(),
            &folder,
            (files, bytes),
            &finding,
            Utc::now(),
        )?;
        let outcome = SessionOutcome {
            session,
            slot: slot.into(),
            serial: claimed,
            outcome: SessionEnd::Quarantined,
            records: 0,
            clips_verified: 0,
            bytes,
            unattested: 0,
            late: 0,
            findings: vec![finding],
            checkpoint_size: None,
            receipt: None,
        };
        self.ledger().close_session(
            session,
            SessionEnd::Quarantined,
            &serde_json::to_value(&outcome).unwrap_or_default(),
            Utc::now(),
        )?;
        tracing::warn!(slot, files, bytes, folder, "device quarantined");
        Ok(outcome)
    }
}

/// Folder depth copied into quarantine (recorders nest 2–3 levels).
const QUARANTINE_DEPTH: usize = 8;

/// The in-order commit state of one session.
struct Committer<'a> {
    plan: &'a [Record<Verified>],
    /// For each record in the plan, the index of its copy job (clips only).
    job_of: &'a [Option<usize>],
    /// The next record to commit.
    next: usize,
    /// Finished copies not committed yet (only while an earlier clip is still copying).
    results: BTreeMap<usize, CopyResult>,
    fatal: Option<IngestError>,
}

/// What one committed record adds to the session.
#[derive(Default)]
struct Committed {
    bytes: u64,
    clips_verified: usize,
    late: usize,
    findings: Vec<Finding>,
}

impl Committed {
    fn add_to(self, outcome: &mut SessionOutcome) {
        outcome.records += 1;
        outcome.bytes += self.bytes;
        outcome.clips_verified += self.clips_verified;
        outcome.late += self.late;
        outcome.findings.extend(self.findings);
    }
}
