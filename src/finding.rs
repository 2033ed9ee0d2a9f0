//! Findings: evidence that fails a check. Not errors: checking goes on, and every finding
//! carries a stable code that reports print and tests match.

use serde::Serialize;

/// Stable finding codes: printed in reports, matched by tests, never reworded.
pub mod code {
    /// Record bytes could not be parsed (size, JSON, schema, unknown version).
    pub const RECORD_MALFORMED: &str = "record.malformed";
    /// A record without its `.sig` file.
    pub const SIGNATURE_MISSING: &str = "record.signature.missing";
    /// The signature does not verify over the record's bytes.
    pub const SIGNATURE_INVALID: &str = "record.signature.invalid";
    /// A record naming another device than the one it was found under.
    pub const RECORD_FOREIGN_DEVICE: &str = "record.device.foreign";
    /// A record signed by (naming) a key that is not the device's enrolled key.
    pub const RECORD_UNKNOWN_KEY: &str = "record.key.unknown";
    /// A record made (or a clip ending) later than the verifier's clock allows: the
    /// device clock ran ahead, or the record was made up.
    pub const RECORD_FROM_FUTURE: &str = "record.time.future";
    /// A later record points at a clip record that is not in the chain.
    pub const SUBJECT_UNKNOWN: &str = "record.subject.unknown";
    /// Sequence numbers are missing: a record was deleted.
    pub const CHAIN_GAP: &str = "chain.gap";
    /// A record's `prev` is the hash of a record with another place in the sequence.
    pub const CHAIN_REORDERED: &str = "chain.reordered";
    /// Two different, validly signed records with one sequence number.
    pub const CHAIN_FORK: &str = "chain.fork";
    /// A record's `prev` matches no record: the one before it was replaced.
    pub const CHAIN_PREV_MISMATCH: &str = "chain.prev.mismatch";
    /// The device folder holds no public key.
    pub const DEVICE_KEY_MISSING: &str = "device.key.missing";
    /// The device's public key is not among the keys the verifier was told to trust.
    pub const DEVICE_KEY_UNTRUSTED: &str = "device.key.untrusted";
    /// The media's SHA-256 (or size) differs from the signed record.
    pub const MEDIA_HASH_MISMATCH: &str = "media.hash.mismatch";
    /// The media file a record covers is not there.
    pub const MEDIA_MISSING: &str = "media.missing";
    /// A file that no record covers.
    pub const MEDIA_UNRECORDED: &str = "media.unrecorded";
    /// A docked device the station has no enrolment for: quarantined, never mixed with
    /// evidence.
    pub const DEVICE_UNENROLLED: &str = "device.unenrolled";
    /// A clip stored after its deadline (当日 / 返回后 24 小时).
    pub const STORED_LATE: &str = "deadline.late";
    /// An audit found a stored object missing from the store (or its replica).
    pub const STORE_OBJECT_MISSING: &str = "store.object.missing";
    /// An audit read a stored object back and its bytes no longer hash to its name.
    pub const STORE_OBJECT_CORRUPT: &str = "store.object.corrupt";
    /// A stored object (or a device's file) that cannot be read at all: an I/O error.
    pub const STORE_OBJECT_UNREADABLE: &str = "store.object.unreadable";
    /// A record or media file that exists but cannot be read (permissions, I/O error).
    pub const FILE_UNREADABLE: &str = "file.unreadable";

    /// Why an agent refused a receipt (nothing it covers is freed).
    /// Larger than any receipt.
    pub const RECEIPT_TOO_LARGE: &str = "receipt.too-large";
    /// Cut short or not a receipt of a known format (a pulled cable, another version).
    pub const RECEIPT_MALFORMED: &str = "receipt.malformed";
    /// The signature does not verify with the enrolled station key.
    pub const RECEIPT_SIGNATURE_INVALID: &str = "receipt.signature.invalid";
    /// Addressed to another device or device key.
    pub const RECEIPT_FOREIGN: &str = "receipt.addressee.foreign";
    /// Its checkpoint is not a note signed by the station.
    pub const RECEIPT_CHECKPOINT_INVALID: &str = "receipt.checkpoint.invalid";
    /// An inclusion proof does not lead to the checkpoint's root.
    pub const RECEIPT_PROOF_INVALID: &str = "receipt.proof.invalid";
    /// It names, at a seq, a record other than the one the device holds.
    pub const RECEIPT_OTHER_RECORD: &str = "receipt.record.other";
    /// It names a seq the device never sealed.
    pub const RECEIPT_SEQ_UNKNOWN: &str = "receipt.seq.unknown";
    /// It does not list a seq it was asked about.
    pub const RECEIPT_SEQ_NOT_COVERED: &str = "receipt.seq.uncovered";
    /// Verified, but it covers only clips freed before: a replay (not refused, frees
    /// nothing).
    pub const RECEIPT_REPLAYED: &str = "receipt.replayed";
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Evidence integrity is in doubt.
    Error,
    /// Needs a look, integrity of signed evidence is not in doubt (e.g. an unrecorded file).
    Warning,
}

/// One problem found in evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Error or warning.
    pub level: Level,
    /// A stable code from [`code`].
    pub code: &'static str,
    /// What it is about: a device, `seq 3`, a file path.
    pub subject: String,
    /// Human explanation with the values involved.
    pub detail: String,
}

impl Finding {
    /// An error-level finding.
    pub fn error(
        code: &'static str,
        subject: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            level: Level::Error,
            code,
            subject: subject.into(),
            detail: detail.into(),
        }
    }

    /// A warning-level finding.
    pub fn warning(
        code: &'static str,
        subject: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            level: Level::Warning,
            ..Self::error(code, subject, detail)
        }
    }
}
