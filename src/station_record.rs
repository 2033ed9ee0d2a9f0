//! Station records: what the station itself attests, in its own signed hash chain and as
//! leaves of its transparency log, beside the devices' records. A clerk's document
//! attached to a case, a case closed, a disc built, burned or checked; and supervised
//! access: every access event, request and decision ([`crate::access_fact`]).
//!
//! The same conventions as a device record (docs/record-format.md): pretty JSON with a
//! final newline, signed as exact bytes with plain Ed25519 by the station key (so that
//! `openssl pkeyutl -verify -rawin` checks it), `prev` the SHA-256 of the station's
//! previous record. A station record is only ever held verified.

use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::access_fact::{AccessFact, DecisionFact, RequestFact};
use crate::hash::{MediaHash, RecordHash};
use crate::keys::{KeyId, PublicKey, Signature, Signer};
use crate::record::{RecordError, check_format};

/// The format identifier of station records.
pub const STATION_FORMAT_V1: &str = "custody-station-record/1";

/// The station that made a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationRef {
    /// The station's log origin (its name in checkpoints).
    pub origin: String,
    /// Id of the station key that signed the record.
    pub key_id: KeyId,
}

/// 执法文书: a document a clerk attached to a case, stored write-once like a clip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentFact {
    /// The case's canonical document number.
    pub case_number: String,
    /// The document's title, as the clerk gave it (e.g. 行政处罚决定书).
    pub title: String,
    /// The file's name as attached (no folders).
    pub file: String,
    /// SHA-256 of the file's bytes (its object in the store).
    pub sha256: MediaHash,
    /// Size in bytes.
    pub size: u64,
    /// Who attached it.
    pub attached_by: String,
}

/// A case's enforcement act ended: the case file is due by `due`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseClosedFact {
    /// The case's canonical document number.
    pub case_number: String,
    /// The day the act ended.
    pub ended: NaiveDate,
    /// The case file's due date (20 working days later by the official calendar).
    pub due: NaiveDate,
    /// Who closed it.
    pub closed_by: String,
}

/// An archive disc image built for a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscBuiltFact {
    /// The case's canonical document number.
    pub case_number: String,
    /// The image's ASCII volume id.
    pub volume_id: String,
    /// Which disc set of the case, from 1 (a case may be archived again).
    pub set: u64,
    /// Disc number in its set, from 1.
    pub disc: u32,
    /// Discs in the set.
    pub of: u32,
    /// Medium (`cd`, `dvd`, `dvd-dl`, `bd25`, `bd50`, `bd100`).
    pub medium: String,
    /// SHA-256 of the image.
    pub image_sha256: MediaHash,
    /// Size of the image.
    pub image_size: u64,
    /// SHA-256 of the disc's `SHA256SUMS`: what the disc holds.
    pub sums_sha256: MediaHash,
    /// Files on the disc.
    pub files: u64,
    /// The log size of the checkpoint the disc's proofs lead to.
    pub checkpoint_size: u64,
}

/// A disc image written to a disc (or an emulated drive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscBurnedFact {
    /// The case's canonical document number.
    pub case_number: String,
    /// The disc's volume id.
    pub volume_id: String,
    /// The drive written to.
    pub drive: String,
    /// Whether the burn completed and read back the same bytes; a burn that failed
    /// part-way is recorded as failed, never as burned.
    pub burned: bool,
    /// What happened, in a line.
    pub detail: String,
}

/// A disc (or its image) read back and checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscCheckedFact {
    /// The case's canonical document number.
    pub case_number: String,
    /// The disc's volume id.
    pub volume_id: String,
    /// What was read: an image file, a drive, a folder.
    pub source: String,
    /// Whether everything verified.
    pub intact: bool,
    /// Problems found (files named in the ledger's check report).
    pub problems: u64,
}

/// What a station record attests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum StationFact {
    /// A document attached to a case.
    Document(DocumentFact),
    /// A case closed (its act ended).
    CaseClosed(CaseClosedFact),
    /// A disc image built.
    DiscBuilt(DiscBuiltFact),
    /// A disc image burned (or a burn that failed).
    DiscBurned(DiscBurnedFact),
    /// A disc read back and checked.
    DiscChecked(DiscCheckedFact),
    /// Someone accessed evidence (or logged in, or failed to).
    Access(AccessFact),
    /// A request to view or copy clips.
    Request(RequestFact),
    /// A decision on a request.
    Decision(DecisionFact),
}

impl StationFact {
    /// The fact's kind as written in the record (`document`, `case-closed`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Document(_) => "document",
            Self::CaseClosed(_) => "case-closed",
            Self::DiscBuilt(_) => "disc-built",
            Self::DiscBurned(_) => "disc-burned",
            Self::DiscChecked(_) => "disc-checked",
            Self::Access(_) => "access",
            Self::Request(_) => "request",
            Self::Decision(_) => "decision",
        }
    }

    /// The case the fact is about, if it is about one.
    pub fn case_number(&self) -> Option<&str> {
        match self {
            Self::Document(d) => Some(&d.case_number),
            Self::CaseClosed(c) => Some(&c.case_number),
            Self::DiscBuilt(d) => Some(&d.case_number),
            Self::DiscBurned(d) => Some(&d.case_number),
            Self::DiscChecked(d) => Some(&d.case_number),
            Self::Access(a) => a.case_number.as_deref(),
            Self::Request(r) => r.case_number.as_deref(),
            Self::Decision(_) => None,
        }
    }

    /// Whether the fact belongs in the case file itself (documents, closures, discs), as
    /// opposed to the supervision of access to it.
    pub fn is_case_file(&self) -> bool {
        !matches!(self, Self::Access(_) | Self::Request(_) | Self::Decision(_))
    }
}

/// The body of a station record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationRecordBody {
    /// [`STATION_FORMAT_V1`].
    pub format: String,
    /// Position in the station's chain, from 1.
    pub seq: u64,
    /// Hash of the previous station record (`None` for seq 1).
    pub prev: Option<RecordHash>,
    /// The station.
    pub station: StationRef,
    /// When the station made the record.
    pub created: DateTime<FixedOffset>,
    /// What it attests.
    pub fact: StationFact,
}

/// A station record whose signature verified: its exact bytes, their hash, the body and
/// the signature.
#[derive(Debug, Clone)]
pub struct StationRecord {
    bytes: Vec<u8>,
    hash: RecordHash,
    body: StationRecordBody,
    signature: Signature,
}

impl StationRecord {
    /// Parses record bytes (size first, then format, then the strict schema) and checks
    /// the signature with the station's key.
    ///
    /// # Errors
    /// [`RecordError`]: too large, another format, a schema break, a chain rule broken,
    /// or a signature that does not verify under `key`.
    pub fn parse_verified(
        bytes: Vec<u8>,
        key: &PublicKey,
        sig: &Signature,
    ) -> Result<Self, RecordError> {
        check_format(&bytes, STATION_FORMAT_V1)?;
        let body: StationRecordBody = serde_json::from_slice(&bytes)?;
        if (body.seq == 1) != body.prev.is_none() || body.seq == 0 {
            return Err(RecordError::Invalid {
                field: "prev",
                why: "seq 1 has no prev, every later record has one".into(),
            });
        }
        if body.station.key_id != key.key_id() {
            return Err(RecordError::Invalid {
                field: "station.key_id",
                why: "is not the id of the station key".into(),
            });
        }
        key.verify(&bytes, sig).map_err(|_| RecordError::Invalid {
            field: "signature",
            why: "does not verify under the station key".into(),
        })?;
        Ok(Self {
            hash: RecordHash::of(&bytes),
            bytes,
            body,
            signature: *sig,
        })
    }

    /// Writes `body` as record bytes, signs them with `signer`, and checks the result as
    /// a verifier would.
    ///
    /// # Errors
    /// [`RecordError`] when the body breaks a rule or the signer fails.
    pub fn seal(body: &StationRecordBody, signer: &dyn Signer) -> Result<Self, RecordError> {
        let mut bytes = serde_json::to_vec_pretty(body)?;
        bytes.push(b'\n');
        let sig = signer
            .sign(&bytes)
            .map_err(|e| RecordError::Sign(e.to_string()))?;
        Self::parse_verified(bytes, &signer.public_key(), &sig)
    }

    /// The exact bytes, as signed.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// SHA-256 of the bytes.
    pub fn hash(&self) -> RecordHash {
        self.hash
    }
    /// The parsed body.
    pub fn body(&self) -> &StationRecordBody {
        &self.body
    }
    /// The signature it was verified with (its `.sig` file's bytes).
    pub fn signature(&self) -> &Signature {
        &self.signature
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKey;

    fn body(key: &SigningKey, seq: u64, prev: Option<RecordHash>) -> StationRecordBody {
        StationRecordBody {
            format: STATION_FORMAT_V1.into(),
            seq,
            prev,
            station: StationRef {
                origin: "station.example/custody".into(),
                key_id: key.public_key().key_id(),
            },
            created: "2026-11-20T10:00:00+08:00".parse().unwrap(),
            fact: StationFact::Document(DocumentFact {
                case_number: "襄环罚〔2019〕75号".into(),
                title: "行政处罚决定书".into(),
                file: "决定书.pdf".into(),
                sha256: MediaHash::of(b"%PDF-1.7"),
                size: 8,
                attached_by: "李四".into(),
            }),
        }
    }

    #[test]
    fn a_sealed_record_verifies_and_a_changed_byte_does_not() {
        let key = SigningKey::from_seed(&[5; 32]).unwrap();
        let rec = StationRecord::seal(&body(&key, 1, None), &key).unwrap();
        assert_eq!(rec.body().fact.kind(), "document");
        let again =
            StationRecord::parse_verified(rec.bytes().to_vec(), &key.public_key(), rec.signature())
                .unwrap();
        assert_eq!(again.hash(), rec.hash());
        let mut changed = rec.bytes().to_vec();
        let at = changed.iter().position(|&b| b == b'8').unwrap();
        changed[at] = b'9';
        assert!(
            StationRecord::parse_verified(changed, &key.public_key(), rec.signature()).is_err()
        );
        let other = SigningKey::from_seed(&[6; 32]).unwrap().public_key();
        assert!(
            StationRecord::parse_verified(rec.bytes().to_vec(), &other, rec.signature()).is_err()
        );
    }

    #[test]
    fn the_chain_rule_and_the_format_are_checked() {
        let key = SigningKey::from_seed(&[5; 32]).unwrap();
        assert!(StationRecord::seal(&body(&key, 2, None), &key).is_err());
        assert!(StationRecord::seal(&body(&key, 1, Some(RecordHash::of(b"x"))), &key).is_err());
        let mut device_format = body(&key, 1, None);
        device_format.format = crate::record::FORMAT_V1.into();
        assert!(matches!(
            StationRecord::seal(&device_format, &key),
            Err(RecordError::UnsupportedFormat { .. })
        ));
    }
}
