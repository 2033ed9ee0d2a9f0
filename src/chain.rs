//! The per-device hash chain: each record names its `seq` and the hash of the previous
//! record's bytes, so a deleted, reordered, forked or replaced record leaves a visible mark.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::finding::{Finding, code};
use crate::hash::RecordHash;
use crate::keys::{PublicKey, Signature};
use crate::record::{Fact, Record, Verified};

/// The last record of a device that is already trusted (e.g. held by the station's ledger):
/// checking continues from it, because a chain spans docks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainAnchor {
    /// Its sequence number.
    pub seq: u64,
    /// Its hash.
    pub hash: RecordHash,
}

/// Where the records being checked are expected to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainStart {
    /// At seq 1: the device's whole history.
    Genesis,
    /// Right after a trusted record.
    After(ChainAnchor),
    /// Anywhere, with holes allowed (the records of one case on an archive disc):
    /// links are checked only between records that are both present.
    Subset,
}

/// One record as found on a device or disc: where it was, its bytes, its signature bytes.
#[derive(Debug, Clone)]
pub struct RecordFile {
    /// Where it was found (for findings), e.g. `custody/devices/A123456/records/00000003.json`.
    pub name: String,
    /// Its bytes, as read.
    pub bytes: Vec<u8>,
    /// Its `.sig` file's bytes, if there was one.
    pub sig: Option<Vec<u8>>,
}

/// The outcome of checking a device's records.
#[derive(Debug, Default)]
pub struct ChainReport {
    /// Records that parsed, belong to the device and verify, in seq order (duplicates of
    /// the same bytes once; both sides of a fork kept).
    pub verified: Vec<Record<Verified>>,
    /// What was wrong.
    pub findings: Vec<Finding>,
    /// Files whose bytes could not be trusted (their media are still "covered" by them for
    /// the unrecorded-file check, so one problem is reported once).
    pub rejected_media: Vec<String>,
}

/// Checks each record (parse, device, key, signature), then the chain they form.
pub fn verify_chain(
    serial: &str,
    key: &PublicKey,
    files: Vec<RecordFile>,
    start: ChainStart,
) -> ChainReport {
    let mut report = ChainReport::default();
    let key_id = key.key_id();
    // seqs claimed by records that were rejected: their absence is already explained.
    let mut explained = Vec::new();
    let mut by_hash: HashMap<RecordHash, Record<Verified>> = HashMap::new();
    for file in files {
        let rec = match Record::parse(file.bytes) {
            Ok(rec) => rec,
            Err(e) => {
                report.findings.push(Finding::error(
                    code::RECORD_MALFORMED,
                    &file.name,
                    e.to_string(),
                ));
                // The file name (`00000003.json`) claims a seq; its absence is explained.
                explained.extend(claimed_seq(&file.name));
                continue;
            }
        };
        let body = rec.body();
        let reject = if body.device.serial != serial {
            Some(Finding::error(
                code::RECORD_FOREIGN_DEVICE,
                &file.name,
                format!(
                    "record of device {} found under device {serial}",
                    body.device.serial
                ),
            ))
        } else if body.device.key_id != key_id {
            Some(Finding::error(
                code::RECORD_UNKNOWN_KEY,
                &file.name,
                format!(
                    "signed with key {}, device key is {key_id}",
                    body.device.key_id
                ),
            ))
        } else {
            None
        };
        if let Some(finding) = reject {
            report.findings.push(finding);
            // A foreign record claims nothing about this device's sequence.
            if body.device.serial == serial {
                explained.push(body.seq);
            }
            report
                .rejected_media
                .extend(body.media().map(|m| m.file.clone()));
            continue;
        }
        let seq = body.seq;
        let media = body.media().map(|m| m.file.clone());
        let checked = match file.sig.as_deref().map(Signature::from_bytes) {
            None => Err(Finding::error(
                code::SIGNATURE_MISSING,
                &file.name,
                "no .sig file beside the record",
            )),
            Some(Err(e)) => Err(Finding::error(
                code::SIGNATURE_INVALID,
                &file.name,
                e.to_string(),
            )),
            Some(Ok(sig)) => rec
                .verify(key, &sig)
                .map_err(|e| Finding::error(code::SIGNATURE_INVALID, &file.name, e.to_string())),
        };
        match checked {
            Ok(rec) => {
                by_hash.entry(rec.hash()).or_insert(rec);
            }
            Err(finding) => {
                report.findings.push(finding);
                explained.push(seq);
                report.rejected_media.extend(media);
            }
        }
    }

    let mut by_seq: BTreeMap<u64, Vec<Record<Verified>>> = BTreeMap::new();
    for rec in by_hash.into_values() {
        by_seq.entry(rec.body().seq).or_default().push(rec);
    }
    link(serial, &mut by_seq, start, &explained, &mut report.findings);
    report.verified = by_seq.into_values().flatten().collect();
    // Only a whole history can show that a subject is missing; after an anchor the clip
    // may sit in the ledger, and a subset (a disc) holds only some clips.
    if start == ChainStart::Genesis {
        report.findings.extend(unknown_subjects(&report.verified));
    }
    report
}

fn claimed_seq(name: &str) -> Option<u64> {
    let file = name.rsplit('/').next()?;
    file.strip_suffix(".json")?.parse().ok()
}

/// Checks seq continuity and `prev` links over the verified records.
fn link(
    serial: &str,
    by_seq: &mut BTreeMap<u64, Vec<Record<Verified>>>,
    start: ChainStart,
    explained: &[u64],
    findings: &mut Vec<Finding>,
) {
    let seq_of: HashMap<RecordHash, u64> = by_seq
        .values()
        .flatten()
        .map(|r| (r.hash(), r.body().seq))
        .collect();
    let anchor = match start {
        ChainStart::After(a) => Some(a),
        ChainStart::Genesis | ChainStart::Subset => None,
    };
    if let Some(a) = anchor {
        // Records the anchor already covers are not new evidence; one that differs at the
        // anchor's own seq is a fork against the trusted chain.
        if let Some(at) = by_seq.get(&a.seq)
            && at.iter().any(|r| r.hash() != a.hash)
        {
            findings.push(Finding::error(
                code::CHAIN_FORK,
                format!("{serial} seq {}", a.seq),
                format!("differs from the trusted record {}", a.hash),
            ));
        }
        by_seq.retain(|&seq, _| seq > a.seq);
    }
    let mut expected = match start {
        ChainStart::Genesis => Some(1),
        ChainStart::After(a) => Some(a.seq + 1),
        ChainStart::Subset => None,
    };
    for (&seq, recs) in by_seq.iter() {
        if recs.len() > 1 {
            let hashes: Vec<String> = recs.iter().map(|r| r.hash().to_hex()).collect();
            findings.push(Finding::error(
                code::CHAIN_FORK,
                format!("{serial} seq {seq}"),
                format!(
                    "{} different signed records: {}",
                    recs.len(),
                    hashes.join(", ")
                ),
            ));
        }
        if let Some(exp) = expected
            && seq > exp
        {
            let missing: Vec<u64> = (exp..seq).filter(|s| !explained.contains(s)).collect();
            if let (Some(first), Some(last)) = (missing.first(), missing.last()) {
                findings.push(Finding::error(
                    code::CHAIN_GAP,
                    format!("{serial} seq {first}..={last}"),
                    format!("{} record(s) missing before seq {seq}", missing.len()),
                ));
            }
        }
        if start != ChainStart::Subset {
            expected = Some(seq + 1);
        }
        for rec in recs {
            check_prev(serial, rec, by_seq, anchor, &seq_of, findings);
        }
    }
}

fn check_prev(
    serial: &str,
    rec: &Record<Verified>,
    by_seq: &BTreeMap<u64, Vec<Record<Verified>>>,
    anchor: Option<ChainAnchor>,
    seq_of: &HashMap<RecordHash, u64>,
    findings: &mut Vec<Finding>,
) {
    let seq = rec.body().seq;
    let Some(prev) = rec.body().prev else {
        return; // seq 1: the parser already insisted on no prev
    };
    let before: Vec<RecordHash> = match anchor {
        Some(a) if a.seq + 1 == seq => vec![a.hash],
        _ => by_seq
            .get(&(seq - 1))
            .map(|v| v.iter().map(Record::hash).collect())
            .unwrap_or_default(),
    };
    if before.contains(&prev) {
        return;
    }
    let subject = format!("{serial} seq {seq}");
    if let Some(&other) = seq_of.get(&prev).filter(|&&other| other != seq - 1) {
        findings.push(Finding::error(
            code::CHAIN_REORDERED,
            subject,
            format!(
                "prev is the record with seq {other}, expected seq {}",
                seq - 1
            ),
        ));
    } else if !before.is_empty() {
        findings.push(Finding::error(
            code::CHAIN_PREV_MISMATCH,
            subject,
            format!(
                "prev {prev} is not the hash of seq {} ({}): that record was replaced",
                seq - 1,
                before[0]
            ),
        ));
    }
}

/// Bindings and annotations must point at a clip record of the same chain.
fn unknown_subjects(verified: &[Record<Verified>]) -> Vec<Finding> {
    let clips: HashSet<RecordHash> = verified
        .iter()
        .filter(|r| matches!(r.body().fact, Fact::Clip(_)))
        .map(Record::hash)
        .collect();
    verified
        .iter()
        .filter_map(|r| {
            match &r.body().fact {
                Fact::Binding(b) if !clips.contains(&b.subject) => Some(b.subject),
                Fact::Annotation(a) if !clips.contains(&a.subject) => Some(a.subject),
                _ => None,
            }
            .map(|subject| {
                Finding::warning(
                    code::SUBJECT_UNKNOWN,
                    format!("{} seq {}", r.body().device.serial, r.body().seq),
                    format!(
                        "refers to clip record {subject}, which is not among the records checked"
                    ),
                )
            })
        })
        .collect()
}
