//! Signed notes (C2SP signed-note, Go `sumdb/note`) and log checkpoints (C2SP
//! tlog-checkpoint), Ed25519 only, verified over the bytes as received (never re-marshalled).
//! Witness cosignatures (C2SP tlog-cosignature, `cosignature/v1`) verify too.

use std::collections::HashSet;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};

use crate::keys::{
    PUBLIC_KEY_LEN, PublicKey, SIGNATURE_LEN, SignError, Signature, Signer, SigningKey,
};
use crate::merkle::TreeHash;

/// Algorithm byte of an Ed25519 note signature.
const ALG_ED25519: u8 = 0x01;
/// Algorithm byte of an Ed25519 `cosignature/v1` witness signature.
const ALG_COSIGNATURE_V1: u8 = 0x04;
/// What starts each signature line: U+2014 EM DASH and a space.
const SIG_PREFIX: &str = "\u{2014} ";
/// Largest note accepted, in bytes; a checkpoint is a few hundred.
const MAX_NOTE_BYTES: usize = 64 * 1024;
/// Most signature lines read from one note (Go's limit too).
const MAX_SIGNATURES: usize = 100;

/// A note, key or checkpoint that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// The signer (the station's key or its holder) could not sign.
    #[error("cannot sign the note: {0}")]
    Sign(#[from] SignError),
    /// The note's text or signature block is not well formed.
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    /// A verifier or signer key string that cannot be parsed.
    #[error("malformed key {key:?}: {why}")]
    BadKey {
        /// The key string (a private key is never echoed).
        key: String,
        /// What is wrong.
        why: &'static str,
    },
    /// A known key's signature that does not verify.
    #[error("invalid signature for key {name}+{hash:08x}")]
    InvalidSignature {
        /// Key name.
        name: String,
        /// Key hash.
        hash: u32,
    },
    /// No signature from a trusted key.
    #[error("note has no verifiable signatures")]
    NoVerifiableSignature,
    /// The log's own key did not sign it.
    #[error("checkpoint is not signed by the log key {0}")]
    NotSignedByLog(String),
    /// The checkpoint body is not origin / size / root.
    #[error("malformed checkpoint: {0}")]
    BadCheckpoint(&'static str),
    /// A checkpoint of another log.
    #[error("checkpoint origin {found:?} is not the expected {want:?}")]
    WrongOrigin {
        /// What the checkpoint says.
        found: String,
        /// What the caller trusts.
        want: String,
    },
}

fn key_hash(name: &str, alg: u8, key: &[u8]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([alg]);
    h.update(key);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// A key name: non-empty, no whitespace, no `+`.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(char::is_whitespace) && !name.contains('+')
}

/// The exact message an Ed25519 witness signs for a checkpoint body at `timestamp`
/// (C2SP tlog-cosignature).
pub fn cosignature_message(checkpoint_body: &str, timestamp: u64) -> String {
    format!("cosignature/v1\ntime {timestamp}\n{checkpoint_body}")
}

/// A trusted public key for notes: `name+hash+base64(alg || key)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    hash: u32,
    alg: u8,
    key: PublicKey,
}

impl NoteVerifier {
    /// A verifier for plain Ed25519 note signatures.
    ///
    /// # Errors
    /// [`NoteError::BadKey`] for an invalid name.
    pub fn new(name: &str, key: PublicKey) -> Result<Self, NoteError> {
        if !valid_name(name) {
            return Err(NoteError::BadKey {
                key: name.into(),
                why: "invalid key name",
            });
        }
        Ok(Self {
            hash: key_hash(name, ALG_ED25519, &key.0),
            name: name.into(),
            alg: ALG_ED25519,
            key,
        })
    }

    /// Parses a verifier key string (algorithm 0x01 Ed25519 or 0x04 Ed25519 cosignature).
    ///
    /// # Errors
    /// [`NoteError::BadKey`] when it is malformed or its hash does not match.
    pub fn parse(vkey: &str) -> Result<Self, NoteError> {
        let bad = |why| NoteError::BadKey {
            key: vkey.chars().take(200).collect(),
            why,
        };
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(hash_hex), Some(b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("expected name+hash+key"));
        };
        if !valid_name(name) {
            return Err(bad("invalid key name"));
        }
        if hash_hex.len() != 8 || !hash_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("key hash is not 8 hex digits"));
        }
        let hash = u32::from_str_radix(hash_hex, 16).map_err(|_| bad("bad key hash"))?;
        let raw = B64.decode(b64).map_err(|_| bad("key is not base64"))?;
        let Some((&alg, key)) = raw.split_first() else {
            return Err(bad("empty key"));
        };
        if alg != ALG_ED25519 && alg != ALG_COSIGNATURE_V1 {
            return Err(bad("unknown key algorithm"));
        }
        let key: [u8; PUBLIC_KEY_LEN] = key
            .try_into()
            .map_err(|_| bad("Ed25519 key is not 32 bytes"))?;
        if key_hash(name, alg, &key) != hash {
            return Err(bad("key hash does not match the key"));
        }
        Ok(Self {
            name: name.into(),
            hash,
            alg,
            key: PublicKey(key),
        })
    }

    /// Key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Key hash (first 4 bytes of SHA-256 of name, newline, algorithm and key).
    pub fn key_hash(&self) -> u32 {
        self.hash
    }

    /// The underlying Ed25519 public key.
    pub fn public_key(&self) -> PublicKey {
        self.key
    }

    fn verify(&self, text: &str, sig: &[u8]) -> bool {
        match self.alg {
            ALG_COSIGNATURE_V1 => {
                let Some((time, sig)) = sig.split_first_chunk::<8>() else {
                    return false;
                };
                let msg = cosignature_message(text, u64::from_be_bytes(*time));
                Signature::from_bytes(sig)
                    .is_ok_and(|s| self.key.verify(msg.as_bytes(), &s).is_ok())
            }
            _ => Signature::from_bytes(sig)
                .is_ok_and(|s| self.key.verify(text.as_bytes(), &s).is_ok()),
        }
    }
}

impl fmt::Display for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut raw = vec![self.alg];
        raw.extend_from_slice(&self.key.0);
        write!(f, "{}+{:08x}+{}", self.name, self.hash, B64.encode(raw))
    }
}

/// A signing key for notes (the station's log key), behind the [`Signer`] seam.
pub struct NoteSigner {
    verifier: NoteVerifier,
    key: Box<dyn Signer>,
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NoteSigner({})", self.verifier)
    }
}

impl NoteSigner {
    /// A signer named `name` signing with `key`.
    ///
    /// # Errors
    /// [`NoteError::BadKey`] for an invalid name.
    pub fn new(name: &str, key: impl Signer + 'static) -> Result<Self, NoteError> {
        Ok(Self {
            verifier: NoteVerifier::new(name, key.public_key())?,
            key: Box::new(key),
        })
    }

    /// Parses a Go-format private key `PRIVATE+KEY+name+hash+base64(0x01 || seed)`.
    ///
    /// # Errors
    /// [`NoteError::BadKey`] when malformed or when the hash does not match.
    pub fn parse(skey: &str) -> Result<Self, NoteError> {
        let bad = |why| NoteError::BadKey {
            key: "PRIVATE+KEY+…".into(),
            why,
        };
        let rest = skey
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| bad("not PRIVATE+KEY+…"))?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(hash_hex), Some(b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("expected name+hash+key"));
        };
        let raw = B64.decode(b64).map_err(|_| bad("key is not base64"))?;
        let seed: &[u8; 32] = match raw.split_first() {
            Some((&ALG_ED25519, seed)) => {
                seed.try_into().map_err(|_| bad("seed is not 32 bytes"))?
            }
            _ => return Err(bad("not an Ed25519 key")),
        };
        let key = SigningKey::from_seed(seed).map_err(|_| bad("bad seed"))?;
        let signer = Self::new(name, key)?;
        if format!("{:08x}", signer.verifier.hash) != hash_hex {
            return Err(bad("key hash does not match the key"));
        }
        Ok(signer)
    }

    /// The matching verifier.
    pub fn verifier(&self) -> &NoteVerifier {
        &self.verifier
    }

    /// Signs `text` (which must end in a newline) and returns the whole signed note.
    ///
    /// # Errors
    /// [`NoteError::Malformed`] when the text could not be a note's text,
    /// [`NoteError::Sign`] when the key's holder could not sign.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        if text.contains("\n\n") {
            return Err(NoteError::Malformed("text contains a blank line"));
        }
        let sig = self.key.sign(text.as_bytes())?;
        let mut raw = self.verifier.hash.to_be_bytes().to_vec();
        raw.extend_from_slice(&sig.0);
        Ok(format!(
            "{text}\n{SIG_PREFIX}{} {}\n",
            self.verifier.name,
            B64.encode(raw)
        ))
    }
}

fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::Malformed("text does not end in a newline"));
    }
    if text.chars().any(|c| c < ' ' && c != '\n') {
        return Err(NoteError::Malformed("text has control characters"));
    }
    Ok(())
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// Key name.
    pub name: String,
    /// Key hash.
    pub hash: u32,
    /// Signature bytes after the key hash.
    pub sig: Vec<u8>,
}

/// A parsed (not yet verified) signed note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedNote {
    /// The signed text, ending in a newline.
    pub text: String,
    /// Its signature lines.
    pub signatures: Vec<NoteSignature>,
}

impl SignedNote {
    /// Parses a signed note.
    ///
    /// # Errors
    /// [`NoteError::Malformed`] saying what is wrong.
    pub fn parse(note: &[u8]) -> Result<Self, NoteError> {
        if note.len() > MAX_NOTE_BYTES {
            return Err(NoteError::Malformed("note too large"));
        }
        let note = std::str::from_utf8(note).map_err(|_| NoteError::Malformed("not UTF-8"))?;
        if note.chars().any(|c| c < ' ' && c != '\n') {
            return Err(NoteError::Malformed("control characters"));
        }
        let split = note
            .rfind("\n\n")
            .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
        let (text, sigs) = (&note[..=split], &note[split + 2..]);
        if sigs.is_empty() || !sigs.ends_with('\n') {
            return Err(NoteError::Malformed(
                "signature block must end in a newline",
            ));
        }
        let mut signatures = Vec::new();
        for line in sigs[..sigs.len() - 1].split('\n') {
            if signatures.len() == MAX_SIGNATURES {
                return Err(NoteError::Malformed("too many signatures"));
            }
            let line = line.strip_prefix(SIG_PREFIX).ok_or(NoteError::Malformed(
                "signature line does not start with an em dash",
            ))?;
            let (name, b64) = line
                .split_once(' ')
                .ok_or(NoteError::Malformed("no space in signature line"))?;
            let raw = B64
                .decode(b64)
                .map_err(|_| NoteError::Malformed("signature is not base64"))?;
            if !valid_name(name) || raw.len() < 5 {
                return Err(NoteError::Malformed("bad signature line"));
            }
            signatures.push(NoteSignature {
                name: name.into(),
                hash: u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]),
                sig: raw[4..].to_vec(),
            });
        }
        Ok(Self {
            text: text.into(),
            signatures,
        })
    }

    /// Verifies the signatures of trusted keys (lines from unknown keys are ignored, repeats
    /// of one key dropped). Returns the verifiers whose signatures verified.
    ///
    /// # Errors
    /// A trusted key's signature that fails, or no trusted signature at all.
    pub fn verify<'v>(
        &self,
        trusted: &'v [NoteVerifier],
    ) -> Result<Vec<&'v NoteVerifier>, NoteError> {
        let mut seen = HashSet::new();
        let mut verified = Vec::new();
        for s in &self.signatures {
            let Some(v) = trusted
                .iter()
                .find(|v| v.name == s.name && v.hash == s.hash)
            else {
                continue;
            };
            if !seen.insert((&s.name, s.hash)) {
                continue;
            }
            if !v.verify(&self.text, &s.sig) {
                return Err(NoteError::InvalidSignature {
                    name: s.name.clone(),
                    hash: s.hash,
                });
            }
            verified.push(v);
        }
        if verified.is_empty() {
            return Err(NoteError::NoVerifiableSignature);
        }
        Ok(verified)
    }
}

/// A log checkpoint: origin, tree size, root hash, optional extension lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line (e.g. `custody.example/station-01`).
    pub origin: String,
    /// Number of entries.
    pub size: u64,
    /// Root hash at that size.
    pub root: TreeHash,
    /// Extension lines, without their newlines.
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// Parses a checkpoint body (a note's text).
    ///
    /// # Errors
    /// [`NoteError::BadCheckpoint`] saying which line is wrong.
    pub fn parse_body(text: &str) -> Result<Self, NoteError> {
        let body = text
            .strip_suffix('\n')
            .ok_or(NoteError::BadCheckpoint("does not end in a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or(NoteError::BadCheckpoint("no origin"))?;
        let size_text = lines
            .next()
            .ok_or(NoteError::BadCheckpoint("no tree size"))?;
        let size = parse_decimal(size_text).ok_or(NoteError::BadCheckpoint(
            "tree size is not a decimal without leading zeros",
        ))?;
        let root = lines
            .next()
            .and_then(|r| B64.decode(r).ok())
            .and_then(|r| TreeHash::try_from(r).ok())
            .ok_or(NoteError::BadCheckpoint(
                "root hash is not 32 bytes of base64",
            ))?;
        let extensions: Vec<String> = lines.map(str::to_owned).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(NoteError::BadCheckpoint("empty extension line"));
        }
        Ok(Self {
            origin: origin.into(),
            size,
            root,
            extensions,
        })
    }

    /// The body text, as signed.
    pub fn body(&self) -> String {
        let mut out = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        );
        for ext in &self.extensions {
            out.push_str(ext);
            out.push('\n');
        }
        out
    }

    /// Signs the checkpoint as a note.
    ///
    /// # Errors
    /// [`NoteError`] when the origin or extensions make an invalid note.
    pub fn sign(&self, signer: &NoteSigner) -> Result<String, NoteError> {
        signer.sign(&self.body())
    }

    /// Parses and verifies a signed checkpoint: the log key must have signed it and its
    /// origin must be `origin`. Returns the checkpoint and the names of the witnesses
    /// whose (co)signatures verified.
    ///
    /// # Errors
    /// [`NoteError`] for a malformed note, a bad or missing log signature, another origin.
    pub fn open(
        note: &[u8],
        origin: &str,
        log: &NoteVerifier,
        witnesses: &[NoteVerifier],
    ) -> Result<(Self, Vec<String>), NoteError> {
        let note = SignedNote::parse(note)?;
        let mut trusted = vec![log.clone()];
        trusted.extend_from_slice(witnesses);
        let verified = note.verify(&trusted)?;
        if !verified.contains(&log) {
            return Err(NoteError::NotSignedByLog(log.to_string()));
        }
        let checkpoint = Self::parse_body(&note.text)?;
        if checkpoint.origin != origin {
            return Err(NoteError::WrongOrigin {
                found: checkpoint.origin,
                want: origin.into(),
            });
        }
        let names = verified
            .iter()
            .filter(|v| **v != log)
            .map(|v| v.name.clone())
            .collect();
        Ok((checkpoint, names))
    }
}

/// An ASCII decimal without leading zeros (unless it is `0`), as tlog formats write numbers.
pub(crate) fn parse_decimal(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    text.parse().ok().filter(|_| canonical)
}

/// A witness cosignature's fields: `keyhash(4) || timestamp(8, big-endian) || sig(64)`.
///
/// # Errors
/// [`NoteError::Malformed`] unless exactly 76 bytes (after base64 decoding).
pub fn parse_cosignature(raw: &[u8]) -> Result<(u32, u64, Signature), NoteError> {
    let malformed = NoteError::Malformed("a cosignature/v1 signature is 76 bytes");
    let (hash, rest) = raw.split_first_chunk::<4>().ok_or(malformed.clone())?;
    let (time, sig) = rest.split_first_chunk::<8>().ok_or(malformed.clone())?;
    if sig.len() != SIGNATURE_LEN {
        return Err(malformed);
    }
    let sig = Signature::from_bytes(sig).map_err(|_| malformed)?;
    Ok((u32::from_be_bytes(*hash), u64::from_be_bytes(*time), sig))
}

#[cfg(test)]
mod tests;
