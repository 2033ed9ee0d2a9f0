//! An unidentified device's files: copied apart into quarantine, kept, reported, never
//! mixed with evidence.

use std::fs::{self};
use std::path::{Path, PathBuf};

use custody::{Finding, layout};

use crate::Station;
use crate::ledger::{SessionEnd, SessionId};

use super::{IngestError, SessionOutcome};

impl Station {
    /// Copies an unidentified device's files into quarantine (kept, reported, never mixed
    /// with evidence) and records it.
    pub(super) fn quarantine(
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
        layout::create_dir_durable(&dest).map_err(q_err)?;
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
                        layout::create_dir_durable(parent).map_err(q_err)?;
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
            self.now(),
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
            self.now(),
        )?;
        tracing::warn!(slot, files, bytes, folder, "device quarantined");
        Ok(outcome)
    }
}

/// Folder depth copied into quarantine (recorders nest 2–3 levels).
pub(super) const QUARANTINE_DEPTH: usize = 8;
