//! SHA-256 digests with distinct types for media and records, and the one streaming
//! copy-and-hash loop every ingest path uses.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// Size in bytes of a SHA-256 digest.
pub const DIGEST_LEN: usize = 32;

macro_rules! digest_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; DIGEST_LEN]);

        impl $name {
            /// Lower-case hex, all 64 digits (as `sha256sum` prints it).
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl FromStr for $name {
            type Err = HexDigestError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_hex_digest(s).map(Self)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

digest_type!(
    /// SHA-256 of a clip's media bytes. Displayed in full (64 hex digits), never shortened.
    MediaHash
);
digest_type!(
    /// SHA-256 of a record's exact bytes: what the next record's `prev` holds. A distinct
    /// type from [`MediaHash`], so a media hash can never be stored as a `prev`.
    RecordHash
);

impl RecordHash {
    /// The hash of a record's bytes as received.
    pub fn of(record_bytes: &[u8]) -> Self {
        Self(Sha256::digest(record_bytes).into())
    }
}

impl MediaHash {
    /// The hash of a whole in-memory buffer (small media, tests).
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }
}

/// A digest that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected 64 lower-case hex digits of a SHA-256 digest, got {got:?}")]
pub struct HexDigestError {
    /// The text that was offered (cut to 80 characters).
    pub got: String,
}

fn parse_hex_digest(s: &str) -> Result<[u8; DIGEST_LEN], HexDigestError> {
    let err = || HexDigestError {
        got: s.chars().take(80).collect(),
    };
    // Upper case is refused: one spelling per digest keeps signed JSON unambiguous.
    if s.len() != 2 * DIGEST_LEN || s.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(err());
    }
    let mut out = [0u8; DIGEST_LEN];
    hex::decode_to_slice(s, &mut out).map_err(|_| err())?;
    Ok(out)
}

/// Why [`for_each_chunk`] stopped: reading the source failed, or the caller's handler did.
#[derive(Debug)]
pub enum ChunkError<E> {
    /// The source failed (other than `Interrupted`, which is retried).
    Read(io::Error),
    /// The handler of a chunk failed.
    Handle(E),
}

/// Reads `src` to its end through the caller's buffer (so the caller decides the memory
/// spent), handing each chunk read to `each`; retries `Interrupted`. Returns the bytes
/// read. The one read loop behind every streamed hash: the store's put, the agent's
/// follower, [`copy_hashing`].
///
/// # Errors
/// [`ChunkError::Read`] or [`ChunkError::Handle`], at the first failure.
pub fn for_each_chunk<E>(
    mut src: impl Read,
    buf: &mut [u8],
    mut each: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<u64, ChunkError<E>> {
    let mut total = 0u64;
    loop {
        let n = match src.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ChunkError::Read(e)),
        };
        each(&buf[..n]).map_err(ChunkError::Handle)?;
        total += n as u64;
    }
}

/// Streams `src` into `dst` once, hashing what passes through, using the caller's buffer
/// (so the caller decides the memory spent). Returns the byte count and the media hash.
///
/// # Errors
/// Any read or write error other than `Interrupted` (which is retried).
pub fn copy_hashing(
    src: impl Read,
    mut dst: impl Write,
    buf: &mut [u8],
) -> io::Result<(u64, MediaHash)> {
    let mut hasher = Sha256::new();
    let total = for_each_chunk(src, buf, |chunk| {
        hasher.update(chunk);
        dst.write_all(chunk)
    })
    .map_err(|e| match e {
        ChunkError::Read(e) | ChunkError::Handle(e) => e,
    })?;
    Ok((total, MediaHash(hasher.finalize().into())))
}

/// Hashes a reader to its end without writing anywhere (verification of stored media).
///
/// # Errors
/// Any read error other than `Interrupted`.
pub fn hash_reader(src: impl Read, buf: &mut [u8]) -> io::Result<(u64, MediaHash)> {
    copy_hashing(src, io::sink(), buf)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn empty_input_hashes_to_the_sha256_of_nothing() {
        let (n, h) = hash_reader(&b""[..], &mut [0; 16]).unwrap();
        assert_eq!(n, 0);
        assert_eq!(
            h.to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn digests_parse_only_in_canonical_hex() {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(hex.parse::<MediaHash>().unwrap().to_hex(), hex);
        assert!(hex.to_uppercase().parse::<MediaHash>().is_err());
        assert!(hex[1..].parse::<MediaHash>().is_err());
        assert!(format!("{hex}00").parse::<RecordHash>().is_err());
        assert!("zz".repeat(32).parse::<RecordHash>().is_err());
    }

    proptest! {
        #[test]
        fn streamed_hash_equals_one_shot_hash_for_every_buffer_size(
            data in proptest::collection::vec(any::<u8>(), 0..5000),
            buf_len in 1usize..700,
        ) {
            let mut out = Vec::new();
            let (n, h) = copy_hashing(&data[..], &mut out, &mut vec![0; buf_len]).unwrap();
            prop_assert_eq!(n, data.len() as u64);
            prop_assert_eq!(h, MediaHash::of(&data));
            prop_assert_eq!(out, data);
        }
    }
}
