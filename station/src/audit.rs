//! The store audit: every object the ledger says is stored is read back and re-hashed (in
//! the store, and in the replication bucket for what was pushed there). What is missing or
//! no longer hashes to its name becomes a finding, recorded in the ledger under an audit
//! session, so reports show it like any other.

use chrono::Utc;
use custody::{Finding, code};
use serde::Serialize;

use crate::ledger::SessionId;
use crate::s3::S3Store;
use crate::store::{EvidenceStore, ObjectCheck};
use crate::{BUF_LEN, Station};

/// The slot name audit sessions are recorded under.
pub const AUDIT_SLOT: &str = "audit";

/// What an audit found.
#[derive(Debug, Clone, Serialize)]
pub struct AuditOutcome {
    /// The ledger session its findings are under.
    pub session: SessionId,
    /// Objects read back.
    pub checked: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Missing and corrupt objects.
    pub findings: Vec<Finding>,
}

/// Reads back every stored object (and, with `replica`, every replicated one there).
///
/// # Errors
/// The ledger failing, or a store that cannot be read at all (not a finding: the audit
/// could not run).
pub fn audit(station: &Station, replica: Option<&S3Store>) -> anyhow::Result<AuditOutcome> {
    let session = station
        .ledger()
        .open_session(AUDIT_SLOT, None, None, Utc::now())?;
    let mut out = AuditOutcome {
        session,
        checked: 0,
        bytes: 0,
        findings: Vec::new(),
    };
    let mut buf = vec![0; BUF_LEN];
    let mut targets: Vec<(&dyn EvidenceStore, &str, bool)> =
        vec![(station.store(), "store", false)];
    if let Some(replica) = replica {
        targets.push((replica, "replica", true));
    }
    for (store, place, replicated) in targets {
        let objects = station.ledger().stored_objects(replicated)?;
        for (hash, size) in objects {
            let subject = format!("{place} sha256 {hash}");
            match store.verify(&hash, &mut buf)? {
                ObjectCheck::Intact { size: read } if read == size => {}
                ObjectCheck::Intact { size: read } => out.findings.push(Finding::error(
                    code::STORE_OBJECT_CORRUPT,
                    &subject,
                    format!("{read} bytes read back, {size} stored"),
                )),
                ObjectCheck::Missing => out.findings.push(Finding::error(
                    code::STORE_OBJECT_MISSING,
                    &subject,
                    format!("{size} bytes stored, not found now"),
                )),
                ObjectCheck::Corrupt { found } => out.findings.push(Finding::error(
                    code::STORE_OBJECT_CORRUPT,
                    &subject,
                    format!("read back as sha256 {found}"),
                )),
            }
            out.checked += 1;
            out.bytes += size;
        }
    }
    let mut ledger = station.ledger();
    ledger.add_findings(session, None, &out.findings, Utc::now())?;
    let summary = serde_json::json!({
        "checked": out.checked,
        "bytes": out.bytes,
        "findings": out.findings.len(),
    });
    ledger.close_session(session, "audit", &summary, Utc::now())?;
    Ok(out)
}
