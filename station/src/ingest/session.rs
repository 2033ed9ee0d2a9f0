//! One dock session, in order: identify the device, verify its records and chain from
//! the ledger's anchor, plan the copies, copy in parallel, commit in seq order, sign a
//! checkpoint and deliver the receipt.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use custody::{
    ChainStart, Finding, KeyId, PublicKey, Record, Verified, code, layout, media_entries,
    verify_chain,
};

use crate::Station;
use crate::ledger::SessionEnd;

use super::commit::Committer;
use super::copy::{CopyError, CopyResult, Job};
use super::{DockOptions, IngestError, SessionOutcome};

/// The device in a slot, once identified.
pub(super) struct Identified {
    pub(super) serial: String,
    pub(super) key: PublicKey,
    pub(super) key_id: KeyId,
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
        let now = self.now();
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
            let kept = self.quarantine(slot_dir, &slot, session, finding);
            self.progress.end(crate::progress::SlotEnded {
                slot: slot.clone(),
                serial: None,
                officers: Vec::new(),
                complete: false,
                clips_verified: 0,
                findings: 1,
                receipt: false,
                at: self.now(),
            });
            return kept;
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
        // What the officer at the dock reads when the session is over.
        let officers = self
            .ledger()
            .device(&device.serial)
            .ok()
            .flatten()
            .map(|d| d.officers.into_iter().map(|(_, name)| name).collect())
            .unwrap_or_default();
        self.progress.end(crate::progress::SlotEnded {
            slot: slot.clone(),
            serial: Some(device.serial.clone()),
            officers,
            complete: result.is_ok() && outcome.outcome == SessionEnd::Complete,
            clips_verified: outcome.clips_verified,
            findings: outcome.findings.len() + usize::from(result.is_err()),
            receipt: outcome.receipt.is_some(),
            at: self.now(),
        });
        match result {
            Ok(()) => {
                let summary = serde_json::to_value(&outcome).unwrap_or_default();
                self.ledger()
                    .close_session(session, SessionEnd::Complete, &summary, self.now())?;
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
                    self.now(),
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
    pub(super) fn identify(
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
    pub(super) fn ingest_device(
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
            .add_findings(session, Some(serial), &findings, self.now())?;
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
            .add_findings(session, Some(serial), &unattested_findings, self.now())?;
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
                        self.now(),
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
        let checkpoint = self.ledger().sign_checkpoint(&self.signer, self.now())?;
        outcome.checkpoint_size = Some(checkpoint.size);
        outcome.receipt =
            self.deliver_receipt(root, session, device, &checkpoint.note, checkpoint.size)?;
        Ok(())
    }
}
