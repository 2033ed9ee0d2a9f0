//! Commits records in seq order as their copies finish: a clip whose bytes are not as
//! signed is kept and flagged; each record, its clip row, findings and log leaf commit in
//! one ledger transaction.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use custody::{Fact, Finding, Record, Verified, code, future_records};

use crate::Station;
use crate::deadline::deadline;
use crate::ledger::{ClipEntry, ClipStatus, SessionId};
use crate::progress::SlotProgress;

use super::copy::{CopyError, CopyResult};
use super::{DockOptions, IngestError, SessionOutcome};

impl Station {
    /// Commits every record whose copy (if any) is done, in seq order, until one is
    /// still copying or a commit fails.
    pub(super) fn commit_ready(
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

    /// Commits one record with what its copy gave.
    pub(super) fn commit(
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
        let mut findings = future_records(std::slice::from_ref(rec), self.now());
        let mut done = Committed::default();
        let entry = match (&body.fact, copied) {
            (Fact::Clip(clip), Some(copied)) => {
                let subject = format!("{serial} seq {} {}", body.seq, clip.media.file);
                let stored = match copied {
                    Ok(stored) => {
                        done.bytes = stored.size;
                        if ClipStatus::of(
                            (clip.media.sha256, clip.media.size),
                            Some((stored.hash, stored.size)),
                        ) == ClipStatus::Verified
                        {
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
                let stored_at = self.now();
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
            .commit_record(session, rec, entry.as_ref(), &findings, self.now())?;
        done.findings = findings;
        Ok(done)
    }
}

/// The in-order commit state of one session.
pub(super) struct Committer<'a> {
    /// The verified records to commit, in seq order.
    pub(super) plan: &'a [Record<Verified>],
    /// For each record in the plan, the index of its copy job (clips only).
    pub(super) job_of: &'a [Option<usize>],
    /// The next record to commit.
    pub(super) next: usize,
    /// Finished copies not committed yet (only while an earlier clip is still copying).
    pub(super) results: BTreeMap<usize, CopyResult>,
    /// What stopped the session, if anything did.
    pub(super) fatal: Option<IngestError>,
}

/// What one committed record adds to the session.
#[derive(Default)]
pub(super) struct Committed {
    pub(super) bytes: u64,
    pub(super) clips_verified: usize,
    pub(super) late: usize,
    pub(super) findings: Vec<Finding>,
}

impl Committed {
    pub(super) fn add_to(self, outcome: &mut SessionOutcome) {
        outcome.records += 1;
        outcome.bytes += self.bytes;
        outcome.clips_verified += self.clips_verified;
        outcome.late += self.late;
        outcome.findings.extend(self.findings);
    }
}
