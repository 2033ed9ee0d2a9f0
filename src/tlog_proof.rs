//! Offline proofs in the C2SP `tlog-proof` text format: an entry's index, its inclusion
//! proof and the checkpoint it leads to, verifiable with no access to the log.

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::merkle::{ProofError, TreeHash, leaf_hash, verify_inclusion};
use crate::note::{Checkpoint, NoteError, NoteVerifier, parse_decimal};

/// The first line of every proof.
const HEADER: &str = "c2sp.org/tlog-proof@v1";
/// Largest proof accepted, in bytes (a proof for 2^64 entries plus a checkpoint is < 8 KiB).
const MAX_PROOF_BYTES: usize = 64 * 1024;

/// A proof that cannot be read or does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlogProofError {
    /// Not in the tlog-proof format.
    #[error("malformed tlog-proof: {0}")]
    Malformed(&'static str),
    /// The checkpoint inside does not verify.
    #[error("the proof's checkpoint does not verify")]
    Checkpoint(#[from] NoteError),
    /// The inclusion proof does not lead to the checkpoint's root.
    #[error("the entry is not included in the checkpointed tree")]
    Inclusion(#[from] ProofError),
}

/// A `c2sp.org/tlog-proof@v1` proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogProof {
    /// Opaque, unauthenticated extra data.
    pub extra: Option<Vec<u8>>,
    /// 0-based index of the entry.
    pub index: u64,
    /// Inclusion proof, leaf's sibling first.
    pub hashes: Vec<TreeHash>,
    /// The signed checkpoint note, verbatim.
    pub checkpoint: String,
}

impl TlogProof {
    /// The proof as text (store with extension `.tlog-proof`).
    pub fn to_text(&self) -> String {
        let mut out = format!("{HEADER}\n");
        if let Some(extra) = &self.extra {
            let _ = writeln!(out, "extra {}", B64.encode(extra));
        }
        let _ = writeln!(out, "index {}", self.index);
        for h in &self.hashes {
            out.push_str(&B64.encode(h));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.checkpoint);
        out
    }

    /// Parses proof text.
    ///
    /// # Errors
    /// [`TlogProofError::Malformed`] saying which part is wrong.
    pub fn parse(text: &[u8]) -> Result<Self, TlogProofError> {
        use TlogProofError::Malformed;
        if text.len() > MAX_PROOF_BYTES {
            return Err(Malformed("too large"));
        }
        let text = std::str::from_utf8(text).map_err(|_| Malformed("not UTF-8"))?;
        let rest = text
            .strip_prefix(HEADER)
            .and_then(|r| r.strip_prefix('\n'))
            .ok_or(Malformed("first line is not c2sp.org/tlog-proof@v1"))?;
        let (mut line, mut rest) = rest.split_once('\n').ok_or(Malformed("no index line"))?;
        let mut extra = None;
        if let Some(b64) = line.strip_prefix("extra ") {
            extra = Some(
                B64.decode(b64)
                    .map_err(|_| Malformed("extra is not base64"))?,
            );
            (line, rest) = rest.split_once('\n').ok_or(Malformed("no index line"))?;
        }
        let digits = line
            .strip_prefix("index ")
            .ok_or(Malformed("no index line"))?;
        let index = parse_decimal(digits)
            .ok_or(Malformed("index is not a decimal without leading zeros"))?;
        let mut hashes = Vec::new();
        loop {
            let (line, after) = rest
                .split_once('\n')
                .ok_or(Malformed("no blank line before the checkpoint"))?;
            rest = after;
            if line.is_empty() {
                break;
            }
            let hash = B64
                .decode(line)
                .ok()
                .and_then(|h| TreeHash::try_from(h).ok())
                .ok_or(Malformed("a proof line is not a base64 SHA-256 hash"))?;
            hashes.push(hash);
            if hashes.len() > 64 {
                return Err(Malformed("more than 64 proof hashes"));
            }
        }
        if rest.is_empty() {
            return Err(Malformed("no checkpoint"));
        }
        Ok(Self {
            extra,
            index,
            hashes,
            checkpoint: rest.into(),
        })
    }

    /// Verifies that `entry` (for Custody: a record's exact bytes) is in the log whose
    /// checkpoint, signed by `log` for `origin`, this proof carries.
    ///
    /// # Errors
    /// [`TlogProofError`] when the checkpoint or the inclusion proof does not hold.
    pub fn verify(
        &self,
        entry: &[u8],
        origin: &str,
        log: &NoteVerifier,
        witnesses: &[NoteVerifier],
    ) -> Result<Checkpoint, TlogProofError> {
        let (checkpoint, _) = Checkpoint::open(self.checkpoint.as_bytes(), origin, log, witnesses)?;
        verify_inclusion(
            &leaf_hash(entry),
            self.index,
            checkpoint.size,
            &self.hashes,
            &checkpoint.root,
        )?;
        Ok(checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKey;
    use crate::merkle::{MemoryHashStore, MerkleLog};
    use crate::note::NoteSigner;

    fn proof_for(index: u64) -> (TlogProof, NoteSigner) {
        let mut log = MerkleLog::open(MemoryHashStore::default()).unwrap();
        for i in 0..11u8 {
            log.append(&[i]).unwrap();
        }
        let signer =
            NoteSigner::new("custody.test/log", SigningKey::generate().unwrap().0).unwrap();
        let cp = Checkpoint {
            origin: "custody.test/log".into(),
            size: 11,
            root: log.root_at(11).unwrap(),
            extensions: vec![],
        };
        let proof = TlogProof {
            extra: Some(b"seq 3".to_vec()),
            index,
            hashes: log.inclusion_proof(index, 11).unwrap(),
            checkpoint: cp.sign(&signer).unwrap(),
        };
        (proof, signer)
    }

    #[test]
    fn written_proofs_read_back_and_verify() {
        let (proof, signer) = proof_for(3);
        let again = TlogProof::parse(proof.to_text().as_bytes()).unwrap();
        assert_eq!(again, proof);
        assert!(
            again
                .verify(&[3], "custody.test/log", signer.verifier(), &[])
                .is_ok()
        );
        assert!(matches!(
            again.verify(&[4], "custody.test/log", signer.verifier(), &[]),
            Err(TlogProofError::Inclusion(_))
        ));
    }

    #[test]
    fn the_c2sp_example_layout_parses() {
        let text = "c2sp.org/tlog-proof@v1\nextra YWdl\nindex 73894\ngSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=\n\nexample.com/fancylog\n109482\nsFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=\n\n\u{2014} example.com/fancylog hI2DJw==\n";
        let p = TlogProof::parse(text.as_bytes()).unwrap();
        assert_eq!((p.index, p.hashes.len()), (73894, 1));
        assert_eq!(p.extra.as_deref(), Some(&b"age"[..]));
        assert!(p.checkpoint.starts_with("example.com/fancylog\n109482\n"));
        assert_eq!(p.to_text(), text);
    }

    #[test]
    fn malformed_proofs_are_refused() {
        let (proof, _) = proof_for(0);
        let good = proof.to_text();
        for bad in [
            good.replace("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2"),
            good.replace("index 0", "index 00"),
            good.replace("index 0", "index -1"),
            good.replacen("\n\n", "\n", 1),
            good.split("\n\n").next().unwrap().to_owned(),
            String::from("c2sp.org/tlog-proof@v1\nindex 1\nAAAA\n\ncp\n"),
        ] {
            assert!(TlogProof::parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }
}
