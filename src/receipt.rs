//! The station's receipt to a device: which of its records the station stored, where
//! each sits in the transparency log, and the proof. A device frees the space of a clip
//! only after [`Receipt::open`] and [`VerifiedReceipt::covers`] succeed for its record.
//!
//! On the device, receipts sit in its inbox (see [`crate::layout::inbox_dir`]) as
//! `receipt-<log size>.json` (exact bytes, as signed) and `.sig` (raw 64-byte Ed25519
//! signature by the station's key, the key that also signs its checkpoints).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use crate::finding::code;
use crate::hash::RecordHash;
use crate::keys::{KeyId, Signature};
use crate::merkle::{ProofError, TreeHash, leaf_hash, verify_inclusion};
use crate::note::{Checkpoint, NoteError, NoteVerifier};

/// Format name of version 1 receipts.
pub const RECEIPT_V1: &str = "custody.receipt/1";
/// Largest receipt accepted, in bytes: checked before parsing (a receipt for 10,000
/// records with 30-hash proofs is about 16 MiB; a dock session is far smaller).
pub const MAX_RECEIPT_BYTES: usize = 16 * 1024 * 1024;

/// Why a receipt frees nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// Larger than [`MAX_RECEIPT_BYTES`].
    #[error("receipt is {len} bytes, more than the {max} accepted")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The signature file is not 64 bytes or does not verify with the station key.
    #[error("receipt signature does not verify with the enrolled station key")]
    BadSignature,
    /// Not a receipt in a known format (truncated, another version, extra fields).
    #[error("malformed receipt: {0}")]
    Malformed(String),
    /// Issued to another device or another device key.
    #[error("receipt is for device {found}, this is {want}")]
    Foreign {
        /// Who it was for.
        found: String,
        /// Who is checking.
        want: String,
    },
    /// The checkpoint inside is not a valid note signed by the station.
    #[error("receipt checkpoint does not verify")]
    Checkpoint(#[from] NoteError),
    /// An entry's proof does not lead to the checkpoint's root.
    #[error("record seq {seq}: inclusion proof does not verify")]
    Inclusion {
        /// The entry's seq.
        seq: u64,
        /// Why.
        #[source]
        source: ProofError,
    },
    /// The receipt names a record other than the one this device holds at that seq.
    #[error("record seq {seq}: the receipt covers record {receipted}, the device holds {held}")]
    OtherRecord {
        /// The seq.
        seq: u64,
        /// Record hash in the receipt.
        receipted: RecordHash,
        /// Record hash the device holds.
        held: RecordHash,
    },
    /// The receipt does not list this seq.
    #[error("record seq {0} is not covered by the receipt")]
    NotCovered(u64),
    /// The receipt lists a seq the device never sealed.
    #[error("record seq {0} is not a record this device holds")]
    UnknownSeq(u64),
}

impl ReceiptError {
    /// The stable code of this refusal (from [`code`](crate::code)), for agents' reports
    /// and tests.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => code::RECEIPT_TOO_LARGE,
            Self::BadSignature => code::RECEIPT_SIGNATURE_INVALID,
            Self::Malformed(_) => code::RECEIPT_MALFORMED,
            Self::Foreign { .. } => code::RECEIPT_FOREIGN,
            Self::Checkpoint(_) => code::RECEIPT_CHECKPOINT_INVALID,
            Self::Inclusion { .. } => code::RECEIPT_PROOF_INVALID,
            Self::OtherRecord { .. } => code::RECEIPT_OTHER_RECORD,
            Self::NotCovered(_) => code::RECEIPT_SEQ_NOT_COVERED,
            Self::UnknownSeq(_) => code::RECEIPT_SEQ_UNKNOWN,
        }
    }
}

/// One stored record in a receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptEntry {
    /// The record's seq on the device.
    pub seq: u64,
    /// SHA-256 of the record's bytes.
    pub record: RecordHash,
    /// 0-based index of the record in the station's log (leaf = the record's bytes).
    pub log_index: u64,
    /// Inclusion proof for that index in the receipt's checkpoint (base64 hashes).
    pub proof: Vec<String>,
}

/// A receipt's signed content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptBody {
    /// [`RECEIPT_V1`].
    pub format: String,
    /// The station's log origin (the checkpoint's first line).
    pub station: String,
    /// Serial of the device it is for.
    pub device: String,
    /// The device key the records were signed with.
    pub device_key_id: KeyId,
    /// When the station issued it.
    pub issued: DateTime<FixedOffset>,
    /// The station-signed checkpoint the proofs lead to, verbatim.
    pub checkpoint: String,
    /// The records stored, in seq order.
    pub entries: Vec<ReceiptEntry>,
}

impl ReceiptBody {
    /// The bytes to store and sign.
    ///
    /// # Errors
    /// Serialisation failure (not expected for these types).
    pub fn to_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut bytes = serde_json::to_vec_pretty(self)?;
        bytes.push(b'\n');
        Ok(bytes)
    }
}

/// A receipt whose signature and checkpoint verified for this device.
#[derive(Debug, Clone)]
pub struct VerifiedReceipt {
    body: ReceiptBody,
    checkpoint: Checkpoint,
}

/// Namespace for opening receipts.
#[derive(Debug)]
pub struct Receipt;

impl Receipt {
    /// Checks a receipt's size, signature, format, addressee and checkpoint. Entries are
    /// checked one by one with [`VerifiedReceipt::covers`], against the device's own records.
    ///
    /// # Errors
    /// [`ReceiptError`] saying what is wrong; such a receipt frees nothing.
    pub fn open(
        bytes: &[u8],
        sig: &[u8],
        station: &NoteVerifier,
        serial: &str,
        key_id: &KeyId,
    ) -> Result<VerifiedReceipt, ReceiptError> {
        if bytes.len() > MAX_RECEIPT_BYTES {
            return Err(ReceiptError::TooLarge {
                len: bytes.len(),
                max: MAX_RECEIPT_BYTES,
            });
        }
        let sig = Signature::from_bytes(sig).map_err(|_| ReceiptError::BadSignature)?;
        station
            .public_key()
            .verify(bytes, &sig)
            .map_err(|_| ReceiptError::BadSignature)?;
        let body: ReceiptBody =
            serde_json::from_slice(bytes).map_err(|e| ReceiptError::Malformed(e.to_string()))?;
        if body.format != RECEIPT_V1 {
            return Err(ReceiptError::Malformed(format!(
                "format {:?}, expected {RECEIPT_V1}",
                body.format.chars().take(80).collect::<String>()
            )));
        }
        if body.device != serial || body.device_key_id != *key_id {
            return Err(ReceiptError::Foreign {
                found: format!("{} (key {})", body.device, body.device_key_id),
                want: format!("{serial} (key {key_id})"),
            });
        }
        let (checkpoint, _witnesses) =
            Checkpoint::open(body.checkpoint.as_bytes(), &body.station, station, &[])?;
        Ok(VerifiedReceipt { body, checkpoint })
    }
}

impl VerifiedReceipt {
    /// The signed content.
    pub fn body(&self) -> &ReceiptBody {
        &self.body
    }

    /// The checkpoint the proofs lead to.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// Proves that the device's record `record_bytes` at `seq` is in the station's log:
    /// the receipt lists that exact record and its inclusion proof verifies.
    ///
    /// # Errors
    /// [`ReceiptError::NotCovered`], [`ReceiptError::OtherRecord`] or
    /// [`ReceiptError::Inclusion`].
    pub fn covers(&self, seq: u64, record_bytes: &[u8]) -> Result<u64, ReceiptError> {
        let entry = self
            .body
            .entries
            .iter()
            .find(|e| e.seq == seq)
            .ok_or(ReceiptError::NotCovered(seq))?;
        let held = RecordHash::of(record_bytes);
        if entry.record != held {
            return Err(ReceiptError::OtherRecord {
                seq,
                receipted: entry.record,
                held,
            });
        }
        let proof = entry
            .proof
            .iter()
            .map(|h| {
                B64.decode(h)
                    .ok()
                    .and_then(|h| TreeHash::try_from(h).ok())
                    .ok_or(ReceiptError::Malformed(format!(
                        "seq {seq}: proof hash is not 32 bytes of base64"
                    )))
            })
            .collect::<Result<Vec<_>, _>>()?;
        verify_inclusion(
            &leaf_hash(record_bytes),
            entry.log_index,
            self.checkpoint.size,
            &proof,
            &self.checkpoint.root,
        )
        .map_err(|source| ReceiptError::Inclusion { seq, source })?;
        Ok(entry.log_index)
    }
}

/// Base64 of each proof hash, as a receipt lists them.
pub fn encode_proof(proof: &[TreeHash]) -> Vec<String> {
    proof.iter().map(|h| B64.encode(h)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKey;
    use crate::merkle::{MemoryHashStore, MerkleLog};
    use crate::note::{NoteSigner, SignedNote};

    const ORIGIN: &str = "custody.example/station-01";

    struct Fixture {
        signer: NoteSigner,
        station_key: SigningKey,
        records: Vec<Vec<u8>>,
        body: ReceiptBody,
    }

    fn fixture() -> Fixture {
        let seed = [7u8; 32];
        let station_key = SigningKey::from_seed(&seed).unwrap();
        let signer = NoteSigner::new(ORIGIN, SigningKey::from_seed(&seed).unwrap()).unwrap();
        let mut log = MerkleLog::open(MemoryHashStore::default()).unwrap();
        // Another device's records interleave in the station's log.
        let records: Vec<Vec<u8>> = (1..=3)
            .map(|i| format!("record {i}").into_bytes())
            .collect();
        let mut indices = Vec::new();
        for rec in &records {
            log.append(b"someone else").unwrap();
            indices.push(log.append(rec).unwrap());
        }
        let checkpoint = Checkpoint {
            origin: ORIGIN.into(),
            size: log.size(),
            root: log.root_at(log.size()).unwrap(),
            extensions: Vec::new(),
        };
        let entries = records
            .iter()
            .zip(&indices)
            .enumerate()
            .map(|(i, (rec, &index))| ReceiptEntry {
                seq: i as u64 + 1,
                record: RecordHash::of(rec),
                log_index: index,
                proof: encode_proof(&log.inclusion_proof(index, log.size()).unwrap()),
            })
            .collect();
        let body = ReceiptBody {
            format: RECEIPT_V1.into(),
            station: ORIGIN.into(),
            device: "A123456".into(),
            device_key_id: KeyId("k".into()),
            issued: DateTime::parse_from_rfc3339("2026-11-23T18:00:00+08:00").unwrap(),
            checkpoint: checkpoint.sign(&signer).unwrap(),
            entries,
        };
        Fixture {
            signer,
            station_key,
            records,
            body,
        }
    }

    fn signed(f: &Fixture, body: &ReceiptBody) -> (Vec<u8>, Vec<u8>) {
        let bytes = body.to_bytes().unwrap();
        let sig = f.station_key.sign(&bytes).0.to_vec();
        (bytes, sig)
    }

    fn open(f: &Fixture, bytes: &[u8], sig: &[u8]) -> Result<VerifiedReceipt, ReceiptError> {
        Receipt::open(
            bytes,
            sig,
            f.signer.verifier(),
            "A123456",
            &KeyId("k".into()),
        )
    }

    #[test]
    fn a_good_receipt_covers_exactly_the_records_it_lists() {
        let f = fixture();
        let (bytes, sig) = signed(&f, &f.body);
        let receipt = open(&f, &bytes, &sig).unwrap();
        for (i, rec) in f.records.iter().enumerate() {
            let seq = i as u64 + 1;
            assert_eq!(receipt.covers(seq, rec).unwrap(), 2 * i as u64 + 1);
        }
        assert!(matches!(
            receipt.covers(4, b"record 4"),
            Err(ReceiptError::NotCovered(4))
        ));
        assert!(matches!(
            receipt.covers(2, b"record 1"),
            Err(ReceiptError::OtherRecord { seq: 2, .. })
        ));
    }

    #[test]
    fn bad_partial_and_foreign_receipts_are_refused() {
        let f = fixture();
        let (bytes, sig) = signed(&f, &f.body);
        // Truncated (a pulled cable while the station wrote it, or a partial copy).
        let cut = &bytes[..bytes.len() / 2];
        assert!(matches!(
            open(&f, cut, &sig),
            Err(ReceiptError::BadSignature)
        ));
        // Signed by someone else.
        let other = SigningKey::from_seed(&[9; 32]).unwrap();
        let forged = other.sign(&bytes).0.to_vec();
        assert!(matches!(
            open(&f, &bytes, &forged),
            Err(ReceiptError::BadSignature)
        ));
        assert!(matches!(
            open(&f, &bytes, &sig[..10]),
            Err(ReceiptError::BadSignature)
        ));
        // For another device.
        let mut body = f.body.clone();
        body.device = "B000001".into();
        let (b, s) = signed(&f, &body);
        assert!(matches!(
            open(&f, &b, &s),
            Err(ReceiptError::Foreign { .. })
        ));
        // A proof that does not lead to the root.
        let mut body = f.body.clone();
        body.entries[1].proof.swap(0, 1);
        let (b, s) = signed(&f, &body);
        let receipt = open(&f, &b, &s).unwrap();
        assert!(matches!(
            receipt.covers(2, &f.records[1]),
            Err(ReceiptError::Inclusion { seq: 2, .. })
        ));
        // A checkpoint signed by another log key.
        let mut body = f.body.clone();
        let stranger = NoteSigner::new(ORIGIN, other).unwrap();
        let text = SignedNote::parse(f.body.checkpoint.as_bytes())
            .unwrap()
            .text;
        body.checkpoint = Checkpoint::parse_body(&text)
            .unwrap()
            .sign(&stranger)
            .unwrap();
        let (b, s) = signed(&f, &body);
        assert!(matches!(open(&f, &b, &s), Err(ReceiptError::Checkpoint(_))));
        // Another format version.
        let mut body = f.body.clone();
        body.format = "custody.receipt/9".into();
        let (b, s) = signed(&f, &body);
        assert!(matches!(open(&f, &b, &s), Err(ReceiptError::Malformed(_))));
    }
}
