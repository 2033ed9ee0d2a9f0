//! The station's receipts in the device inbox (`custody/inbox/<serial>/`): the agent frees
//! a clip's space only under a receipt whose signature, addressee, checkpoint and
//! inclusion proof for that exact record it verified against the enrolled station key, and
//! only if the file still holds the sealed bytes. A bad, partial, foreign or replayed
//! receipt frees nothing and is reported. Records and chain state are never deleted.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::Read as _;
use std::path::Path;

use custody::{
    MAX_RECEIPT_BYTES, NoteVerifier, PublicKey, Receipt, ReceiptError, Record, Verified,
    VerifiedReceipt, code, hash_reader, layout,
};
use sha2::{Digest as _, Sha256};

use crate::manifest::Manifest;

/// What one look at the inbox did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct InboxReport {
    /// Receipts that verified.
    pub accepted: usize,
    /// Receipts refused, each with its stable code.
    pub refused: Vec<Refusal>,
    /// Verified receipts that freed nothing new (a replay of covered records,
    /// [`code::RECEIPT_REPLAYED`]): their file names.
    pub replayed: Vec<String>,
    /// Clip files whose space was freed.
    pub freed: Vec<String>,
    /// Bytes freed.
    pub bytes_freed: u64,
    /// Clips kept although receipted, because the file no longer holds the sealed bytes.
    pub kept_changed: Vec<String>,
}

/// A receipt the agent refused: nothing it covers was freed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The receipt's file name in the inbox.
    pub file: String,
    /// Why, as a stable code from [`custody::code`] (`receipt.…`).
    pub code: &'static str,
    /// Why, in words with the values involved.
    pub detail: String,
}

/// Syncs a receipt, its signature and the inbox folder, so that no clip is freed under a
/// receipt a power cut could still take away.
fn keep_durably(receipt: &Path) -> std::io::Result<()> {
    File::open(receipt)?.sync_all()?;
    File::open(receipt.with_extension("sig"))?.sync_all()?;
    File::open(receipt.parent().unwrap_or(Path::new(".")))?.sync_all()
}

/// Looks at every receipt not looked at before (`seen` holds the file names handled in this
/// process; the manifest remembers receipts across restarts by their hash).
///
/// # Errors
/// An unreadable inbox or a manifest failure; bad receipts are reported, not errors.
pub fn process(
    storage: &Path,
    serial: &str,
    key: &PublicKey,
    station: &NoteVerifier,
    manifest: &Manifest,
    records: impl FnOnce() -> anyhow::Result<Vec<Record<Verified>>>,
    seen: &mut HashSet<String>,
) -> anyhow::Result<InboxReport> {
    let mut report = InboxReport::default();
    let dir = layout::inbox_dir(storage, serial);
    let mut names: Vec<String> = match fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            // The station writes these names exactly; anything else is not a receipt.
            .filter(|n| {
                n.starts_with("receipt-") && Path::new(n).extension().is_some_and(|e| e == "json")
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(report),
        Err(e) => return Err(e.into()),
    };
    names.retain(|n| !seen.contains(n));
    if names.is_empty() {
        return Ok(report);
    }
    names.sort();
    // Loaded (and re-verified) only when there is a receipt to check.
    let records = records()?;
    let by_seq: HashMap<u64, &Record<Verified>> =
        records.iter().map(|r| (r.body().seq, r)).collect();
    let mut freed = manifest.freed_seqs()?;
    for name in names {
        let path = dir.join(&name);
        let Some(bytes) = read_bounded(&path, MAX_RECEIPT_BYTES + 1)? else {
            continue;
        };
        let sig = read_bounded(&path.with_extension("sig"), 65)?.unwrap_or_default();
        // Bytes and signature together: the same bytes refused with a forged signature
        // must not shadow them arriving later with the station's.
        let hash: [u8; 32] = Sha256::new()
            .chain_update(&bytes)
            .chain_update(&sig)
            .finalize()
            .into();
        seen.insert(name.clone());
        if manifest.receipt_seen(&hash)? {
            continue;
        }
        let checked = Receipt::open(&bytes, &sig, station, serial, &key.key_id()).and_then(|r| {
            // Every entry must prove a record this device holds; one bad entry and the
            // whole receipt frees nothing.
            for entry in &r.body().entries {
                let held = by_seq
                    .get(&entry.seq)
                    .ok_or(ReceiptError::UnknownSeq(entry.seq))?;
                r.covers(entry.seq, held.bytes())?;
            }
            Ok(r)
        });
        let receipt = match checked {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(receipt = %name, code = e.code(), error = %e, "receipt refused; nothing freed");
                let detail = format!("{}: {e}", e.code());
                manifest.note_receipt(&hash, &bytes, &name, "refused", &detail)?;
                report.refused.push(Refusal {
                    file: name,
                    code: e.code(),
                    detail: e.to_string(),
                });
                continue;
            }
        };
        // What frees space must outlive a power cut: the station's writes may not have
        // reached the disk (a failed sync there leaves the file visible all the same).
        keep_durably(&path)?;
        let freed_here = free_covered(
            storage,
            &receipt,
            &by_seq,
            &mut freed,
            manifest,
            &hash,
            &mut report,
        )?;
        report.accepted += 1;
        if freed_here == 0 && !receipt.body().entries.is_empty() {
            tracing::warn!(receipt = %name, code = code::RECEIPT_REPLAYED, "receipt covers only clips freed before (replayed?)");
            report.replayed.push(name.clone());
        }
        let detail = format!(
            "checkpoint {}, {} records, {freed_here} clips freed",
            receipt.checkpoint().size,
            receipt.body().entries.len()
        );
        manifest.note_receipt(&hash, &bytes, &name, "accepted", &detail)?;
        tracing::info!(receipt = %name, freed = freed_here, "receipt verified");
    }
    Ok(report)
}

/// Frees the clips a verified receipt covers that are not freed yet and still hold the
/// sealed bytes; returns how many it marked freed.
fn free_covered(
    storage: &Path,
    receipt: &VerifiedReceipt,
    by_seq: &HashMap<u64, &Record<Verified>>,
    freed: &mut HashSet<u64>,
    manifest: &Manifest,
    hash: &[u8; 32],
    report: &mut InboxReport,
) -> anyhow::Result<usize> {
    let mut freed_here = 0;
    for entry in &receipt.body().entries {
        let Some(media) = by_seq.get(&entry.seq).and_then(|r| r.body().media()) else {
            continue;
        };
        if freed.contains(&entry.seq) {
            continue;
        }
        let file = storage.join(&media.file);
        match fs::symlink_metadata(&file) {
            Ok(meta) if meta.is_file() => {
                // The station proved it holds the sealed bytes; free them only if the
                // file still is those bytes (a file replaced under the agent stays).
                let (size, now) = hash_reader(File::open(&file)?, &mut vec![0; 1 << 16])?;
                if size != media.size || now != media.sha256 {
                    tracing::warn!(file = %media.file, "receipted clip changed since sealing; kept");
                    report.kept_changed.push(media.file.clone());
                    continue;
                }
                fs::remove_file(&file)?;
                if let Some(parent) = file.parent() {
                    File::open(parent)?.sync_all()?;
                }
                report.bytes_freed += size;
                report.freed.push(media.file.clone());
            }
            // Already gone (freed before a crash, or removed by hand): nothing to free.
            _ => {}
        }
        manifest.mark_freed(entry.seq, &media.file, media.size, hash)?;
        freed.insert(entry.seq);
        freed_here += 1;
    }
    Ok(freed_here)
}

/// Reads at most `max` bytes; `None` when the file is gone.
fn read_bounded(path: &Path, max: usize) -> std::io::Result<Option<Vec<u8>>> {
    match File::open(path) {
        Ok(f) => {
            let mut bytes = Vec::new();
            f.take(max as u64).read_to_end(&mut bytes)?;
            Ok(Some(bytes))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
