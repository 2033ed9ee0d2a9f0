//! The store audit: every object the ledger says is stored is read back and re-hashed (in
//! the store, and in the replication bucket for what was pushed there). What is missing or
//! no longer hashes to its name becomes a finding, recorded in the ledger under an audit
//! session, so reports show it like any other.

use custody::{Finding, code};
use serde::Serialize;

use crate::ledger::{SessionEnd, SessionId};
use crate::store::s3::S3Store;
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
/// Each finding is written to the ledger as it is found, so an audit cut short keeps what
/// it found, and its session is closed `interrupted`.
///
/// # Errors
/// The ledger failing, or a store that cannot be read at all (not a finding: the audit
/// could not run).
pub fn audit(station: &Station, replica: Option<&S3Store>) -> anyhow::Result<AuditOutcome> {
    let session = station
        .ledger()
        .open_session(AUDIT_SLOT, None, None, station.now())?;
    let mut out = AuditOutcome {
        session,
        checked: 0,
        bytes: 0,
        findings: Vec::new(),
    };
    let checked = check_all(station, replica, &mut out);
    let mut summary = serde_json::json!({
        "checked": out.checked,
        "bytes": out.bytes,
        "findings": out.findings.len(),
    });
    let ended = if let Err(e) = &checked {
        summary["error"] = format!("{e:#}").into();
        tracing::warn!(session = session.0, error = %format!("{e:#}"), "audit interrupted; its findings so far are in the ledger");
        SessionEnd::Interrupted
    } else {
        SessionEnd::Audit
    };
    // The ledger may be what failed; the session then simply has no end row.
    let closed = station
        .ledger()
        .close_session(session, ended, &summary, station.now());
    checked?;
    closed?;
    Ok(out)
}

/// Reads every object back into `out`, recording each finding at once; then checks that
/// the log and the ledger's records agree leaf by leaf.
fn check_all(
    station: &Station,
    replica: Option<&S3Store>,
    out: &mut AuditOutcome,
) -> anyhow::Result<()> {
    check_objects(station, replica, out)?;
    let mut found = Vec::new();
    {
        let ledger = station.ledger();
        let mut each = |index: u64, why: &str| {
            found.push(Finding::error(
                code::LOG_LEAF_UNMATCHED,
                format!("log leaf {index}"),
                why.to_owned(),
            ));
        };
        ledger.log_mismatches(&mut each)?;
        ledger.access_mismatches(&mut each)?;
    }
    if !found.is_empty() {
        station
            .ledger()
            .add_findings(out.session, None, &found, station.now())?;
        out.findings.extend(found);
    }
    Ok(())
}

/// Reads every stored object back (the store's, then the replica's).
fn check_objects(
    station: &Station,
    replica: Option<&S3Store>,
    out: &mut AuditOutcome,
) -> anyhow::Result<()> {
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
            let finding = match store.verify(&hash, &mut buf)? {
                ObjectCheck::Intact { size: read } if read == size => None,
                ObjectCheck::Intact { size: read } => Some(Finding::error(
                    code::STORE_OBJECT_CORRUPT,
                    &subject,
                    format!("{read} bytes read back, {size} stored"),
                )),
                ObjectCheck::Missing => Some(Finding::error(
                    code::STORE_OBJECT_MISSING,
                    &subject,
                    format!("{size} bytes stored, not found now"),
                )),
                ObjectCheck::Corrupt { found } => Some(Finding::error(
                    code::STORE_OBJECT_CORRUPT,
                    &subject,
                    format!("read back as sha256 {found}"),
                )),
                ObjectCheck::Unreadable { why } => Some(Finding::error(
                    code::STORE_OBJECT_UNREADABLE,
                    &subject,
                    format!("{size} bytes stored, cannot be read now: {why}"),
                )),
            };
            if let Some(finding) = finding {
                station.ledger().add_findings(
                    out.session,
                    None,
                    std::slice::from_ref(&finding),
                    station.now(),
                )?;
                out.findings.push(finding);
            }
            out.checked += 1;
            out.bytes += size;
        }
    }
    Ok(())
}
