//! Ed25519 keys and signatures (with `ring`): public keys travel as PEM
//! SubjectPublicKeyInfo, private keys as PEM PKCS#8, signatures as the raw 64 bytes,
//! so that `openssl pkeyutl -verify -rawin` checks them without Custody.

use std::fmt::{self, Write as _};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use sha2::{Digest, Sha256};

/// Length of an Ed25519 public key in bytes.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of an Ed25519 signature in bytes.
pub const SIGNATURE_LEN: usize = 64;
/// The fixed DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): SEQUENCE,
/// AlgorithmIdentifier { id-Ed25519 }, BIT STRING of 33 bytes (no unused bits).
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// Longest PEM text accepted for a key; a key file is a few hundred bytes.
const MAX_PEM_LEN: usize = 4096;

/// A key or signature that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The PEM armour is missing, has the wrong label or is not base64.
    #[error("not a PEM {label} block: {why}")]
    Pem {
        /// The label expected after `BEGIN`.
        label: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// The DER inside is not an Ed25519 key of the expected form.
    #[error("not an Ed25519 {what}: {why}")]
    NotEd25519 {
        /// `public key` or `private key`.
        what: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// A signature of the wrong length.
    #[error("an Ed25519 signature is 64 bytes, got {0}")]
    SignatureLength(usize),
    /// The system random generator failed.
    #[error("cannot generate a key: the system random generator failed")]
    Random,
}

/// The signature does not verify under the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the signature does not verify")]
pub struct BadSignature;

/// Identifies a public key: SHA-256 of its SubjectPublicKeyInfo DER, in full hex, so that
/// `openssl pkey -pubin -in KEY.pem -outform DER | sha256sum` gives the same value.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct KeyId(pub String);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.0)
    }
}

/// An Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(pub [u8; PUBLIC_KEY_LEN]);

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", hex::encode(self.0))
    }
}

impl PublicKey {
    /// Parses a PEM `PUBLIC KEY` (SubjectPublicKeyInfo) holding an Ed25519 key.
    ///
    /// # Errors
    /// [`KeyError`] when the armour, the base64 or the DER is not an Ed25519 SPKI.
    pub fn from_pem(text: &str) -> Result<Self, KeyError> {
        let der = pem_decode(text, "PUBLIC KEY")?;
        let raw = der
            .strip_prefix(&SPKI_PREFIX[..])
            .ok_or_else(|| KeyError::NotEd25519 {
                what: "public key",
                why: "the SubjectPublicKeyInfo is not id-Ed25519".into(),
            })?;
        let raw: [u8; PUBLIC_KEY_LEN] = raw.try_into().map_err(|_| KeyError::NotEd25519 {
            what: "public key",
            why: format!("key is {} bytes, expected {PUBLIC_KEY_LEN}", raw.len()),
        })?;
        Ok(Self(raw))
    }

    /// The SubjectPublicKeyInfo DER.
    pub fn to_spki_der(&self) -> Vec<u8> {
        [&SPKI_PREFIX[..], &self.0[..]].concat()
    }

    /// The PEM `PUBLIC KEY` text (what openssl writes with `pkey -pubout`).
    pub fn to_pem(&self) -> String {
        pem_encode(&self.to_spki_der(), "PUBLIC KEY")
    }

    /// This key's id (SHA-256 of the SPKI DER).
    pub fn key_id(&self) -> KeyId {
        KeyId(hex::encode(Sha256::digest(self.to_spki_der())))
    }

    /// Verifies `sig` over exactly `msg`.
    ///
    /// # Errors
    /// [`BadSignature`] when it does not verify.
    pub fn verify(&self, msg: &[u8], sig: &Signature) -> Result<(), BadSignature> {
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(msg, &sig.0)
            .map_err(|_| BadSignature)
    }
}

/// A raw 64-byte Ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; SIGNATURE_LEN]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", hex::encode(self.0))
    }
}

impl Signature {
    /// Takes a signature from a `.sig` file's bytes.
    ///
    /// # Errors
    /// [`KeyError::SignatureLength`] unless exactly 64 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        bytes
            .try_into()
            .map(Self)
            .map_err(|_| KeyError::SignatureLength(bytes.len()))
    }
}

/// Why a [`Signer`] could not sign: e.g. the secure element is busy, locked or gone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SignError(pub String);

/// The signing seam: whatever holds an Ed25519 private key and signs exact bytes with it.
/// A [`SigningKey`] in memory is one; a device's secure element behind its MCU is another
/// (the key never leaves it). The agent seals records through it, the station signs
/// checkpoints and receipts through it.
pub trait Signer: Send + Sync {
    /// The public half of the key that signs.
    fn public_key(&self) -> PublicKey;
    /// Signs exactly `msg`.
    ///
    /// # Errors
    /// [`SignError`] when the key's holder refuses or cannot be reached.
    fn sign(&self, msg: &[u8]) -> Result<Signature, SignError>;
}

impl Signer for SigningKey {
    fn public_key(&self) -> PublicKey {
        SigningKey::public_key(self)
    }

    fn sign(&self, msg: &[u8]) -> Result<Signature, SignError> {
        Ok(SigningKey::sign(self, msg))
    }
}

/// An Ed25519 private key able to sign (a device key, or the station's key).
pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.public_key().key_id())
    }
}

impl SigningKey {
    /// Generates a new key; returns it and its PEM PKCS#8 text to store (mode 0600).
    ///
    /// # Errors
    /// [`KeyError::Random`] when the system random generator fails.
    pub fn generate() -> Result<(Self, String), KeyError> {
        let rng = ring::rand::SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| KeyError::Random)?;
        let pem = pem_encode(doc.as_ref(), "PRIVATE KEY");
        Ok((Self::from_pkcs8_der(doc.as_ref())?, pem))
    }

    /// Reads a PEM `PRIVATE KEY` (PKCS#8 v1 as `openssl genpkey` writes it, or v2).
    ///
    /// # Errors
    /// [`KeyError`] when the text is not an Ed25519 PKCS#8 key.
    pub fn from_pkcs8_pem(text: &str) -> Result<Self, KeyError> {
        Self::from_pkcs8_der(&pem_decode(text, "PRIVATE KEY")?)
    }

    fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map(|pair| Self { pair })
            .map_err(|e| KeyError::NotEd25519 {
                what: "private key",
                why: e.to_string(),
            })
    }

    /// A key from its 32-byte RFC 8032 seed (the Go signed-note private key form).
    ///
    /// # Errors
    /// [`KeyError::NotEd25519`] when the seed is rejected.
    pub fn from_seed(seed: &[u8; 32]) -> Result<Self, KeyError> {
        Ed25519KeyPair::from_seed_unchecked(seed)
            .map(|pair| Self { pair })
            .map_err(|e| KeyError::NotEd25519 {
                what: "private key",
                why: e.to_string(),
            })
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        let mut raw = [0u8; PUBLIC_KEY_LEN];
        raw.copy_from_slice(self.pair.public_key().as_ref());
        PublicKey(raw)
    }

    /// Signs exactly `msg`.
    pub fn sign(&self, msg: &[u8]) -> Signature {
        let mut raw = [0u8; SIGNATURE_LEN];
        raw.copy_from_slice(self.pair.sign(msg).as_ref());
        Signature(raw)
    }
}

fn pem_encode(der: &[u8], label: &str) -> String {
    let body = B64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    let _ = writeln!(out, "-----END {label}-----");
    out
}

fn pem_decode(text: &str, label: &'static str) -> Result<Vec<u8>, KeyError> {
    let err = |why: &str| KeyError::Pem {
        label,
        why: why.to_owned(),
    };
    if text.len() > MAX_PEM_LEN {
        return Err(err("longer than any key file"));
    }
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    if lines.next() != Some(begin.as_str()) {
        return Err(err(&format!("the first line must be {begin}")));
    }
    let mut body = String::new();
    for line in lines.by_ref() {
        if line == end {
            return if lines.next().is_some() {
                Err(err("text after the END line"))
            } else {
                B64.decode(body)
                    .map_err(|e| err(&format!("bad base64: {e}")))
            };
        }
        body.push_str(line);
    }
    Err(err(&format!("no {end} line")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_round_trips_through_pem_and_signs() {
        let (key, pem) = SigningKey::generate().unwrap();
        let again = SigningKey::from_pkcs8_pem(&pem).unwrap();
        let public = PublicKey::from_pem(&key.public_key().to_pem()).unwrap();
        assert_eq!(again.public_key(), public);
        let sig = key.sign(b"clip");
        assert_eq!(public.verify(b"clip", &sig), Ok(()));
        assert_eq!(public.verify(b"clip.", &sig), Err(BadSignature));
        assert_eq!(public.key_id().0.len(), 64);
    }

    #[test]
    fn wrong_pem_is_a_clear_error_not_a_panic() {
        for bad in [
            "",
            "-----BEGIN PUBLIC KEY-----\n",
            "-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        ] {
            assert!(PublicKey::from_pem(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            Signature::from_bytes(&[0; 63]),
            Err(KeyError::SignatureLength(63))
        );
    }
}
