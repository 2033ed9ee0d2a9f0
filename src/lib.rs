//! custody: the evidence core shared by the Custody agent and station.
//!
//! It owns the contract between them: the evidence [`Record`] (exact signed bytes), the
//! per-device hash chain ([`verify_chain`]), clip numbering by the agency's document rules
//! ([`NumberingScheme`]), Ed25519 keys, the RFC 9162 Merkle transparency log
//! ([`MerkleLog`]) with signed checkpoints ([`Checkpoint`]) and offline proofs
//! ([`TlogProof`]), the working-day calendar ([`Calendar`]) and the offline verifier
//! ([`verify_folder`]) that clerks and courts run.
//!
//! ```
//! use custody::{ChainStart, Record, SigningKey, MediaHash, testkit, verify_chain, RecordFile};
//!
//! let (key, _pem) = SigningKey::generate()?;
//! let body = testkit::sample_clip_body(
//!     &key.public_key(), "A123456", 1, None, "DCIM/100MEDIA/A123456_0001.MP4", 5,
//!     MediaHash::of(b"12345"),
//! );
//! let record = Record::seal(&body, &key)?;
//! let sig = record.signature().0.to_vec();
//! let file = RecordFile { name: "1.json".into(), bytes: record.bytes().to_vec(), sig: Some(sig) };
//! let report = verify_chain("A123456", &key.public_key(), vec![file], ChainStart::Genesis);
//! assert!(report.findings.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod access_fact;
mod calendar;
mod chain;
pub mod cli;
mod clock;
mod disc_check;
mod finding;
mod hash;
mod key_file;
mod keys;
pub mod layout;
mod merkle;
mod note;
mod numbering;
mod receipt;
mod record;
mod station_record;
pub mod telemetry;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
mod tlog_proof;
pub mod upload;
mod verify;

pub use access_fact::{
    AccessAction, AccessFact, DecisionFact, ExportForm, MAX_EVENT_RECORDS, RequestFact, Role,
};
pub use calendar::{Calendar, CalendarError};
pub use chain::{ChainAnchor, ChainReport, ChainStart, RecordFile, verify_chain};
pub use clock::{Clock, FixedClock, SystemClock};
pub use disc_check::{
    DISC_META_FILE, DiscCheck, DiscMeta, DiscOwnKeys, DiscProblem, DiscTrust, PackageMeta,
    check_disc_folder, disc_meta,
};
pub use finding::{Finding, Level, code, describe_zh};
pub use hash::{
    ChunkError, DIGEST_LEN, HexDigestError, MediaHash, RecordHash, copy_hashing, for_each_chunk,
    hash_reader,
};
pub use key_file::{KeyFileError, load_or_create_key_pem};
pub use keys::{
    BadSignature, KeyError, KeyId, PublicKey, SignError, Signature, Signer, SigningKey,
};
pub use merkle::{
    HashStore, LogError, MemoryHashStore, MerkleLog, ProofError, TreeHash, empty_root, leaf_hash,
    node_hash, verify_consistency, verify_inclusion,
};
pub use note::{
    Checkpoint, NoteError, NoteSignature, NoteSigner, NoteVerifier, SignedNote,
    cosignature_message, parse_cosignature,
};
pub use numbering::{
    ClipNumber, DocumentNumber, MediaKind, NumberError, NumberingScheme, ProvisionalNumber,
};
pub use receipt::{
    MAX_RECEIPT_BYTES, RECEIPT_V1, Receipt, ReceiptBody, ReceiptEntry, ReceiptError,
    VerifiedReceipt, encode_proof,
};
pub use record::{
    Agency, Algorithms, AnnotationFact, BindingFact, ClipFact, ClockSource, DeviceRef, FORMAT_V1,
    Fact, Location, MAX_RECORD_BYTES, Media, MediaFacts, Officer, Record, RecordBody, RecordError,
    Speaker, TimeSpan, Unverified, Verified, check_serial,
};
pub use station_record::{
    CaseClosedFact, DiscBuiltFact, DiscBurnedFact, DiscCheckedFact, DocumentFact,
    STATION_FORMAT_V1, StationFact, StationRecord, StationRecordBody, StationRef,
};
pub use tlog_proof::{TlogProof, TlogProofError};
pub use verify::{
    CLOCK_TOLERANCE, DeviceCheck, DeviceSummary, MediaUnavailable, VerifyOptions, VerifyReport,
    future_records, media_entries, open_media, verify_device, verify_folder,
};
