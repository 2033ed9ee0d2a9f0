//! The evidence record: a small JSON document whose exact bytes are signed.
//!
//! Bytes are parsed, hashed and verified as received and never re-serialised. A record
//! names its algorithms (`sha-256`, `ed25519`) so another pair (e.g. SM3/SM2) can be added
//! without a format break. Later facts about a clip (case binding, annotations) are new
//! records in the same chain whose `subject` is the clip record's hash.

use std::borrow::Cow;

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use crate::hash::{MediaHash, RecordHash};
use crate::keys::{BadSignature, KeyId, PublicKey, Signature, Signer};

/// The format this build writes and reads.
pub const FORMAT_V1: &str = "custody.record/1";
/// The only media and chain hash this build knows.
pub const HASH_SHA256: &str = "sha-256";
/// The only signature algorithm this build knows.
pub const SIG_ED25519: &str = "ed25519";
/// Largest record accepted, in bytes, checked before parsing: a record is ~1.5 KiB; a
/// device that offers more is hostile or broken.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;
/// Longest free-text field in characters (summaries, what a clip proves).
const MAX_TEXT_CHARS: usize = 4000;

/// Why record bytes were refused. Never a panic, whatever the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// Longer than [`MAX_RECORD_BYTES`]; nothing was parsed.
    #[error("record is {len} bytes, more than the {max} allowed")]
    TooLarge {
        /// Bytes offered.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not JSON, or JSON not of the record schema.
    #[error("record is not valid JSON of the record schema (line {line}, column {column}): {msg}")]
    Json {
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What serde_json said.
        msg: String,
    },
    /// A format version this build does not read.
    #[error("record format {found:?} is not supported (this build reads {FORMAT_V1:?})")]
    UnsupportedFormat {
        /// The `format` the record gave.
        found: String,
    },
    /// An algorithm this build does not implement.
    #[error("record uses {field} algorithm {found:?}, this build supports only {supported:?}")]
    UnsupportedAlgorithm {
        /// `alg.hash` or `alg.sig`.
        field: &'static str,
        /// What the record named.
        found: String,
        /// What this build can check.
        supported: &'static str,
    },
    /// Well-formed JSON with a value that breaks a rule of the format.
    #[error("record field {field}: {why}")]
    Invalid {
        /// Dotted path of the field.
        field: &'static str,
        /// The rule it breaks.
        why: String,
    },
    /// The signer (a key in memory or a secure element) could not sign.
    #[error("cannot sign the record: {0}")]
    Sign(String),
}

impl From<serde_json::Error> for RecordError {
    fn from(e: serde_json::Error) -> Self {
        Self::Json {
            line: e.line(),
            column: e.column(),
            msg: e.to_string(),
        }
    }
}

/// The algorithms a record is hashed and signed with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Algorithms {
    /// Media and chain hash: `sha-256`.
    pub hash: String,
    /// Signature: `ed25519`.
    pub sig: String,
}

impl Default for Algorithms {
    fn default() -> Self {
        Self {
            hash: HASH_SHA256.into(),
            sig: SIG_ED25519.into(),
        }
    }
}

/// The device that made the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceRef {
    /// 产品序号: the device's product serial.
    pub serial: String,
    /// Id of the key that signed this record.
    pub key_id: KeyId,
    /// Hardware profile id (see `hw-profiles`).
    pub hw_profile: String,
    /// Version of the agent that wrote the record.
    pub agent_version: String,
}

/// 执法人员: the officer bound to the device when the record was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Officer {
    /// 姓名.
    pub name: String,
    /// 执法证号: enforcement certificate number.
    pub cert_no: String,
    /// 警号: police number, where the agency has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub police_no: Option<String>,
}

/// 执法机关: the agency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agency {
    /// 单位编号: agency code.
    pub code: String,
    /// 单位名称: agency name.
    pub name: String,
}

/// Where a clock reading came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClockSource {
    /// The device's real-time clock since its last sync.
    Rtc,
    /// GNSS time.
    Gnss,
    /// Network time.
    Ntp,
    /// Set by a docking station.
    Station,
}

/// Start and end of a clip with the clock's provenance and estimated error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeSpan {
    /// Recording start, with UTC offset.
    pub start: DateTime<FixedOffset>,
    /// Recording end, with UTC offset.
    pub end: DateTime<FixedOffset>,
    /// The clock that gave these times.
    pub source: ClockSource,
    /// Estimated error of the clock, in milliseconds (from drift since the last sync).
    pub error_ms: u64,
    /// When that clock was last synchronised, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync: Option<DateTime<FixedOffset>>,
}

/// A WGS-84 position fix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// Latitude in degrees, north positive.
    pub lat: f64,
    /// Longitude in degrees, east positive.
    pub lon: f64,
    /// When the fix was taken.
    pub fix_time: DateTime<FixedOffset>,
    /// Receiver or source, e.g. `gnss:BD+GP`.
    pub source: String,
    /// Satellites used, if reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub satellites: Option<u8>,
    /// Horizontal dilution of precision, if reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hdop: Option<f64>,
}

/// Facts about the media file, as read with FFmpeg where the device could.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaFacts {
    /// Container, e.g. `mp4`.
    pub container: String,
    /// Video codec, e.g. `h264`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_codec: Option<String>,
    /// Audio codec, e.g. `aac`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_codec: Option<String>,
    /// Duration in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Frame width in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Frame height in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// The container's `creation_time`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<DateTime<FixedOffset>>,
}

/// The media file a clip record covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Media {
    /// Path relative to the device storage root, `/`-separated, as the recorder named it.
    pub file: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the media bytes.
    pub sha256: MediaHash,
    /// What FFmpeg read from it; absent where the device could not read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts: Option<MediaFacts>,
}

/// A clip as the device closed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipFact {
    /// 编号: clip number under the agency's scheme, or a provisional number.
    pub number: String,
    /// 案件编号: case number, if known when the clip closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_number: Option<String>,
    /// The media file.
    pub media: Media,
    /// When it was recorded.
    pub time: TimeSpan,
    /// 地点: last position fix, if the device had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// 证明对象: what the clip proves, if given at recording time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proves: Option<String>,
}

/// Binds an earlier clip record to a case and its clip number under the case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingFact {
    /// Hash of the clip record being bound.
    pub subject: RecordHash,
    /// 案件编号 / 文书编号 of the case.
    pub case_number: String,
    /// The clip's number under the case, e.g. `襄环罚〔2019〕75号-视-003`.
    pub number: String,
}

/// 对话人员: a person speaking in a recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Speaker {
    /// Name.
    pub name: String,
    /// 身份: role or identity, e.g. `当事人`, `执法人员`.
    pub identity: String,
}

/// Adds what a clip proves, who speaks and the main content to an earlier clip record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnnotationFact {
    /// Hash of the clip record being annotated.
    pub subject: RecordHash,
    /// 证明对象.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proves: Option<String>,
    /// 对话人员身份.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub speakers: Vec<Speaker>,
    /// 主要对话内容.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

/// What a record states.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[expect(
    clippy::large_enum_variant,
    reason = "a record is built or parsed once per clip; boxing buys nothing"
)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Fact {
    /// A clip closed on the device.
    Clip(ClipFact),
    /// A clip bound to a case.
    Binding(BindingFact),
    /// Annotations on a clip.
    Annotation(AnnotationFact),
}

/// The parsed content of a record. The signed truth stays the bytes it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordBody {
    /// Format version, [`FORMAT_V1`].
    pub format: String,
    /// Algorithms used.
    pub alg: Algorithms,
    /// Device and key.
    pub device: DeviceRef,
    /// Per-device sequence number: starts at 1, never reused.
    pub seq: u64,
    /// SHA-256 of the previous record's bytes; absent only for `seq` 1.
    pub prev: Option<RecordHash>,
    /// When the record was made, by the device clock.
    pub created: DateTime<FixedOffset>,
    /// Who held the device.
    pub officer: Officer,
    /// Their agency.
    pub agency: Agency,
    /// What the record states.
    pub fact: Fact,
}

impl RecordBody {
    /// The media a clip record covers; `None` for bindings and annotations.
    pub fn media(&self) -> Option<&Media> {
        match &self.fact {
            Fact::Clip(clip) => Some(&clip.media),
            Fact::Binding(_) | Fact::Annotation(_) => None,
        }
    }

    fn validate(&self) -> Result<(), RecordError> {
        let invalid = |field, why: &str| {
            Err(RecordError::Invalid {
                field,
                why: why.to_owned(),
            })
        };
        if self.alg.hash != HASH_SHA256 {
            return Err(RecordError::UnsupportedAlgorithm {
                field: "alg.hash",
                found: self.alg.hash.clone(),
                supported: HASH_SHA256,
            });
        }
        if self.alg.sig != SIG_ED25519 {
            return Err(RecordError::UnsupportedAlgorithm {
                field: "alg.sig",
                found: self.alg.sig.clone(),
                supported: SIG_ED25519,
            });
        }
        check_serial(&self.device.serial)?;
        match (self.seq, &self.prev) {
            (0, _) => return invalid("seq", "starts at 1"),
            (1, Some(_)) => return invalid("prev", "the first record (seq 1) has no prev"),
            (2.., None) => return invalid("prev", "every record after seq 1 names its prev"),
            _ => {}
        }
        for (field, text) in [
            ("officer.name", &self.officer.name),
            ("officer.cert_no", &self.officer.cert_no),
            ("agency.code", &self.agency.code),
        ] {
            check_text(field, text, true)?;
        }
        match &self.fact {
            Fact::Clip(clip) => clip.validate(),
            Fact::Binding(b) => {
                check_text("fact.case_number", &b.case_number, true)?;
                check_text("fact.number", &b.number, true)
            }
            Fact::Annotation(a) => {
                if a.proves.is_none() && a.speakers.is_empty() && a.summary.is_none() {
                    return invalid("fact", "an annotation states at least one thing");
                }
                for text in a.proves.iter().chain(&a.summary) {
                    check_text("fact", text, true)?;
                }
                Ok(())
            }
        }
    }
}

impl ClipFact {
    fn validate(&self) -> Result<(), RecordError> {
        check_text("fact.number", &self.number, true)?;
        check_media_path(&self.media.file)?;
        if self.time.end < self.time.start {
            return Err(RecordError::Invalid {
                field: "fact.time.end",
                why: "ends before it starts".into(),
            });
        }
        if let Some(loc) = &self.location
            && !((-90.0..=90.0).contains(&loc.lat) && (-180.0..=180.0).contains(&loc.lon))
        {
            return Err(RecordError::Invalid {
                field: "fact.location",
                why: format!("({}, {}) is not a WGS-84 position", loc.lat, loc.lon),
            });
        }
        if let Some(text) = &self.proves {
            check_text("fact.proves", text, true)?;
        }
        Ok(())
    }
}

fn check_text(field: &'static str, text: &str, non_empty: bool) -> Result<(), RecordError> {
    let why = if non_empty && text.trim().is_empty() {
        "must not be empty"
    } else if text.chars().count() > MAX_TEXT_CHARS {
        "is longer than 4000 characters"
    } else if text.chars().any(|c| c.is_control() && c != '\n') {
        "contains control characters"
    } else {
        return Ok(());
    };
    Err(RecordError::Invalid {
        field,
        why: why.into(),
    })
}

/// A product serial: 1 to 32 of `A-Z a-z 0-9 - _`. It names folders and provisional
/// numbers, so nothing else is allowed in it.
///
/// # Errors
/// [`RecordError::Invalid`] naming the rule.
pub fn check_serial(serial: &str) -> Result<(), RecordError> {
    let ok = (1..=32).contains(&serial.len())
        && serial
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(RecordError::Invalid {
            field: "device.serial",
            why: format!("{serial:?} is not 1-32 characters of A-Z, a-z, 0-9, '-', '_'"),
        })
    }
}

/// A media path must stay inside the device storage: relative, `/`-separated, no `.`/`..`
/// components, no backslashes or control characters.
fn check_media_path(path: &str) -> Result<(), RecordError> {
    let bad = path.is_empty()
        || path.len() > 1024
        || path.starts_with('/')
        || path.contains('\\')
        || path.chars().any(char::is_control)
        || path
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..");
    if bad {
        Err(RecordError::Invalid {
            field: "fact.media.file",
            why: format!("{path:?} is not a relative path inside the device storage"),
        })
    } else {
        Ok(())
    }
}

/// Type state: parsed, signature not checked yet.
#[derive(Debug, Clone)]
pub struct Unverified(());

/// Type state: signature checked against a known key. It keeps the signature it was
/// checked with, so whoever stores or ships the record ships exactly that one.
#[derive(Debug, Clone)]
pub struct Verified {
    signature: Signature,
}

/// A record: its exact bytes, their hash, and the parsed body. Only
/// `Record<Verified>` can be committed to a ledger.
#[derive(Debug, Clone)]
pub struct Record<S> {
    bytes: Vec<u8>,
    hash: RecordHash,
    body: RecordBody,
    state: S,
}

impl<S> Record<S> {
    /// The exact bytes, as signed.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// SHA-256 of the bytes.
    pub fn hash(&self) -> RecordHash {
        self.hash
    }
    /// The parsed body.
    pub fn body(&self) -> &RecordBody {
        &self.body
    }
}

impl Record<Unverified> {
    /// Parses record bytes: size limit first, then format version, then the strict schema
    /// and the format's rules.
    ///
    /// # Errors
    /// [`RecordError`] saying what is wrong and where.
    pub fn parse(bytes: Vec<u8>) -> Result<Self, RecordError> {
        check_format(&bytes, FORMAT_V1)?;
        let body: RecordBody = serde_json::from_slice(&bytes)?;
        body.validate()?;
        Ok(Self {
            hash: RecordHash::of(&bytes),
            bytes,
            body,
            state: Unverified(()),
        })
    }

    /// Checks the signature over the exact bytes with `key`, and that the record names that
    /// key.
    ///
    /// # Errors
    /// [`BadSignature`] when the key id differs or the signature does not verify.
    pub fn verify(
        self,
        key: &PublicKey,
        sig: &Signature,
    ) -> Result<Record<Verified>, BadSignature> {
        if self.body.device.key_id != key.key_id() {
            return Err(BadSignature);
        }
        key.verify(&self.bytes, sig)?;
        Ok(Record {
            bytes: self.bytes,
            hash: self.hash,
            body: self.body,
            state: Verified { signature: *sig },
        })
    }
}

impl Record<Verified> {
    /// The signature the record was verified with (its `.sig` file's bytes).
    pub fn signature(&self) -> &Signature {
        &self.state.signature
    }

    /// Writes `body` as record bytes (pretty JSON, final newline), checks them with the
    /// same parser a verifier uses, signs them with `signer` (a key in memory or a secure
    /// element) and checks that signature. The device key id in `body` must be the
    /// signer's.
    ///
    /// # Errors
    /// [`RecordError`] when the body breaks a rule of the format or names another key, or
    /// the signer fails.
    pub fn seal(body: &RecordBody, signer: &dyn Signer) -> Result<Self, RecordError> {
        let public = signer.public_key();
        if body.device.key_id != public.key_id() {
            return Err(RecordError::Invalid {
                field: "device.key_id",
                why: "is not the id of the signing key".into(),
            });
        }
        let mut bytes = serde_json::to_vec_pretty(body)?;
        bytes.push(b'\n');
        let parsed = Record::parse(bytes)?;
        let sig = signer
            .sign(parsed.bytes())
            .map_err(|e| RecordError::Sign(e.to_string()))?;
        parsed
            .verify(&public, &sig)
            .map_err(|BadSignature| RecordError::Invalid {
                field: "device.key_id",
                why: "the key did not verify its own signature".into(),
            })
    }
}

/// The checks before any schema: at most [`MAX_RECORD_BYTES`], then a `format` field
/// naming `want` (device records and station records share the rule).
///
/// # Errors
/// [`RecordError::TooLarge`], [`RecordError::UnsupportedFormat`], a missing format, or
/// text that is not JSON.
pub(crate) fn check_format(bytes: &[u8], want: &str) -> Result<(), RecordError> {
    #[derive(Deserialize)]
    struct Version<'a> {
        #[serde(borrow)]
        format: Option<Cow<'a, str>>,
    }
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(RecordError::TooLarge {
            len: bytes.len(),
            max: MAX_RECORD_BYTES,
        });
    }
    match serde_json::from_slice::<Version>(bytes)?.format {
        Some(f) if f == want => Ok(()),
        Some(f) => Err(RecordError::UnsupportedFormat {
            found: f.chars().take(80).collect(),
        }),
        None => Err(RecordError::Invalid {
            field: "format",
            why: "missing".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKey;
    use crate::testkit::sample_clip_body;

    fn sealed() -> (Record<Verified>, Signature, SigningKey) {
        let (key, _) = SigningKey::generate().unwrap();
        let body = sample_clip_body(
            &key.public_key(),
            "A123456",
            1,
            None,
            "DCIM/1.MP4",
            5,
            MediaHash::of(b"12345"),
        );
        let rec = Record::seal(&body, &key).unwrap();
        (rec.clone(), *rec.signature(), key)
    }

    #[test]
    fn sealed_record_parses_back_to_the_same_body_and_verifies() {
        let (rec, sig, key) = sealed();
        let again = Record::parse(rec.bytes().to_vec()).unwrap();
        assert_eq!(again.body(), rec.body());
        assert_eq!(again.hash(), RecordHash::of(rec.bytes()));
        assert!(again.verify(&key.public_key(), &sig).is_ok());
    }

    #[test]
    fn a_changed_byte_or_another_key_fails_verification() {
        let (rec, sig, key) = sealed();
        let text = String::from_utf8(rec.bytes().to_vec()).unwrap();
        let edited = text.replace("\"size\": 5", "\"size\": 6").into_bytes();
        let parsed = Record::parse(edited).unwrap();
        assert!(parsed.verify(&key.public_key(), &sig).is_err());
        let (other, _) = SigningKey::generate().unwrap();
        let parsed = Record::parse(rec.bytes().to_vec()).unwrap();
        assert!(parsed.verify(&other.public_key(), &sig).is_err());
    }

    #[test]
    fn oversized_input_is_refused_before_parsing() {
        let err = Record::parse(vec![b' '; MAX_RECORD_BYTES + 1]).unwrap_err();
        assert!(matches!(err, RecordError::TooLarge { .. }));
    }

    #[test]
    fn unknown_version_unknown_field_and_duplicate_key_are_refused() {
        let (rec, _, _) = sealed();
        let text = String::from_utf8(rec.bytes().to_vec()).unwrap();
        let v2 = text.replace(FORMAT_V1, "custody.record/2");
        assert!(matches!(
            Record::parse(v2.into_bytes()),
            Err(RecordError::UnsupportedFormat { found }) if found == "custody.record/2"
        ));
        let extra = text.replacen("\"seq\"", "\"colour\": 1,\n  \"seq\"", 1);
        assert!(matches!(
            Record::parse(extra.into_bytes()),
            Err(RecordError::Json { .. })
        ));
        let dup = text.replacen("\"seq\": 1", "\"seq\": 1, \"seq\": 2", 1);
        assert!(matches!(
            Record::parse(dup.into_bytes()),
            Err(RecordError::Json { .. })
        ));
        let sm3 = text.replace("\"sha-256\"", "\"sm3\"");
        assert!(matches!(
            Record::parse(sm3.into_bytes()),
            Err(RecordError::UnsupportedAlgorithm {
                field: "alg.hash",
                ..
            })
        ));
    }

    #[test]
    fn media_paths_that_leave_the_device_storage_are_refused() {
        let (rec, _, _) = sealed();
        let text = String::from_utf8(rec.bytes().to_vec()).unwrap();
        for bad in [
            "../etc/passwd",
            "/etc/passwd",
            "DCIM//x",
            "DCIM/./x",
            "a\\\\b",
        ] {
            let t = text.replace("DCIM/1.MP4", bad);
            assert!(
                matches!(
                    Record::parse(t.into_bytes()),
                    Err(RecordError::Invalid {
                        field: "fact.media.file",
                        ..
                    })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn garbage_never_panics() {
        for junk in [
            &b""[..],
            b"{",
            b"null",
            b"[]",
            b"{\"format\":1}",
            b"\xff\xfe",
            b"{\"format\":\"custody.record/1\"}",
        ] {
            assert!(Record::parse(junk.to_vec()).is_err());
        }
    }
}
