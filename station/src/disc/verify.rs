//! Checking a disc, its image, or a folder copied from one: xorriso's MD5 tags (for an
//! image or a drive), then every file against `SHA256SUMS`, every signature, every
//! clip's and document's hash against its record, the checkpoint's signature, every
//! inclusion proof to it, and what the ledger says the disc holds. Each problem names
//! the file. The check is a station record.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use custody::{
    Checkpoint, DiscCheckedFact, MediaHash, PublicKey, Record, Signature, StationFact,
    StationRecord, leaf_hash, verify_inclusion,
};
use serde::Serialize;

use super::build::hash_file;
use crate::Station;

/// One thing wrong with a disc.
#[derive(Debug, Clone, Serialize)]
pub struct DiscProblem {
    /// The file (path on the disc), or `disc` for the disc as a whole.
    pub file: String,
    /// What is wrong.
    pub why: String,
}

/// The outcome of a disc check.
#[derive(Debug, Clone, Serialize)]
pub struct DiscCheck {
    /// The disc's volume id (from its `disc.json`).
    pub volume_id: Option<String>,
    /// The case it belongs to.
    pub case_number: Option<String>,
    /// Files checked against `SHA256SUMS`.
    pub files: usize,
    /// What is wrong (empty: intact).
    pub problems: Vec<DiscProblem>,
}

impl DiscCheck {
    /// Whether everything verified.
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

#[derive(serde::Deserialize)]
struct DiscMeta {
    case_number: String,
    volume_id: String,
}

impl Station {
    /// Checks a disc image, a drive (`stdio:` path or device), or a folder copied from a
    /// disc, and records the check in the ledger when the disc is one of this station's.
    ///
    /// # Errors
    /// The source cannot be read at all, or a ledger failure. Damage is a problem in the
    /// outcome, not an error.
    pub fn verify_disc(&self, source: &str) -> anyhow::Result<DiscCheck> {
        let path = Path::new(source.strip_prefix("stdio:").unwrap_or(source));
        let mut problems = Vec::new();
        let extracted;
        let root: PathBuf = if path.is_dir() {
            path.to_path_buf()
        } else {
            for file in super::xorriso::check_md5(source)? {
                problems.push(problem(
                    file.trim_start_matches('/'),
                    "MD5 tag does not match",
                ));
            }
            extracted = tempfile::Builder::new()
                .prefix(".disc-check-")
                .tempdir_in(self.config().data_dir.as_path())?;
            super::xorriso::extract(source, extracted.path())?;
            extracted.path().to_path_buf()
        };
        let mut check = self.check_folder(&root, problems)?;
        if let (Some(case_number), Some(volume_id)) =
            (check.case_number.clone(), check.volume_id.clone())
        {
            if self.ledger().disc(&volume_id)?.is_some() {
                self.commit_station_fact(StationFact::DiscChecked(DiscCheckedFact {
                    case_number,
                    volume_id,
                    source: source.into(),
                    intact: check.is_intact(),
                    problems: check.problems.len() as u64,
                }))?;
            } else {
                check.problems.push(problem(
                    "disc",
                    "this station's ledger has no disc of this volume id",
                ));
            }
        }
        Ok(check)
    }

    fn check_folder(
        &self,
        root: &Path,
        mut problems: Vec<DiscProblem>,
    ) -> anyhow::Result<DiscCheck> {
        let meta: Option<DiscMeta> = fs::read(root.join("disc.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if meta.is_none() {
            problems.push(problem(
                "disc.json",
                "missing or unreadable: not a Custody disc?",
            ));
        }
        let sums = fs::read(root.join("SHA256SUMS")).context("the disc has no SHA256SUMS")?;
        let listed = check_sums(root, &sums, &mut problems)?;
        self.check_signatures(root, &listed, &mut problems)?;
        check_stated_hashes(root, &mut problems);
        self.check_proofs(root, &listed, &mut problems);
        // The ledger: the disc holds what the station built.
        if let Some(meta) = &meta
            && let Some((case, sums_sha256)) = self.ledger().disc(&meta.volume_id)?
            && (case != meta.case_number || sums_sha256 != MediaHash::of(&sums))
        {
            problems.push(problem(
                "SHA256SUMS",
                "differs from what the ledger says this disc holds",
            ));
        }
        Ok(DiscCheck {
            volume_id: meta.as_ref().map(|m| m.volume_id.clone()),
            case_number: meta.map(|m| m.case_number),
            files: listed.len(),
            problems,
        })
    }
}

impl Station {
    /// Device records under the keys the ledger enrolled; station records and the disc's
    /// station key against this station's key.
    fn check_signatures(
        &self,
        root: &Path,
        listed: &BTreeSet<String>,
        problems: &mut Vec<DiscProblem>,
    ) -> anyhow::Result<()> {
        let read = |rel: &str| fs::read(root.join(rel));
        let sig = |f: &str| {
            read(&f.replace(".json", ".sig"))
                .ok()
                .and_then(|b| Signature::from_bytes(&b).ok())
        };
        let station_key = self.verifier().public_key();
        for file in listed
            .iter()
            .filter(|f| Path::new(f).extension().is_some_and(|x| x == "json"))
        {
            if let Some(rest) = file.strip_prefix("records/") {
                let serial = rest.split('/').next().unwrap_or_default();
                let key = self.ledger().device(serial)?.map(|d| d.key);
                let ok = match (key, sig(file), read(file)) {
                    (Some(key), Some(sig), Ok(bytes)) => record_verifies(bytes, &key, &sig),
                    _ => false,
                };
                if !ok {
                    problems.push(problem(
                        file,
                        "signature does not verify under the enrolled device key",
                    ));
                }
            } else if file.starts_with("station-records/") {
                let ok = match (sig(file), read(file)) {
                    (Some(sig), Ok(bytes)) => {
                        StationRecord::parse_verified(bytes, &station_key, &sig).is_ok()
                    }
                    _ => false,
                };
                if !ok {
                    problems.push(problem(
                        file,
                        "signature does not verify under the station key",
                    ));
                }
            }
        }
        if read("keys/station.pub.pem")
            .ok()
            .and_then(|b| PublicKey::from_pem(&String::from_utf8_lossy(&b)).ok())
            != Some(station_key)
        {
            problems.push(problem("keys/station.pub.pem", "is not this station's key"));
        }
        Ok(())
    }

    /// The checkpoint is this station's, and every proof leads to it.
    fn check_proofs(
        &self,
        root: &Path,
        listed: &BTreeSet<String>,
        problems: &mut Vec<DiscProblem>,
    ) {
        let checkpoint = fs::read(root.join("checkpoint.txt")).ok().and_then(|note| {
            Checkpoint::open(&note, &self.config().origin, self.verifier(), &[])
                .ok()
                .map(|(cp, _)| cp)
        });
        let Some(cp) = checkpoint else {
            problems.push(problem(
                "checkpoint.txt",
                "missing, or not signed by this station",
            ));
            return;
        };
        for file in listed.iter().filter(|f| f.starts_with("proofs/")) {
            if !proof_holds(root, file, &cp) {
                problems.push(problem(
                    file,
                    "inclusion proof does not lead to the checkpoint",
                ));
            }
        }
    }
}

/// Every file against `SHA256SUMS`, and nothing on the disc beyond it; returns the files
/// it lists.
fn check_sums(
    root: &Path,
    sums: &[u8],
    problems: &mut Vec<DiscProblem>,
) -> anyhow::Result<BTreeSet<String>> {
    let mut listed = BTreeSet::new();
    for line in String::from_utf8_lossy(sums).lines() {
        let Some((hash, file)) = line.split_once("  ") else {
            problems.push(problem("SHA256SUMS", &format!("unreadable line {line:?}")));
            continue;
        };
        listed.insert(file.to_owned());
        match hash_file(&root.join(file)) {
            Ok((_, found)) if found.to_string() == hash => {}
            Ok((_, found)) => problems.push(problem(
                file,
                &format!("SHA-256 is {found}, SHA256SUMS says {hash}"),
            )),
            Err(e) => problems.push(problem(file, &format!("cannot be read: {e:#}"))),
        }
    }
    for file in files_under(root)? {
        if file != "SHA256SUMS" && !listed.contains(&file) {
            problems.push(problem(&file, "on the disc but not in SHA256SUMS"));
        }
    }
    Ok(listed)
}

/// Each clip's and document's hash (`FILES.txt`) is the one its record states.
fn check_stated_hashes(root: &Path, problems: &mut Vec<DiscProblem>) {
    let files_txt = fs::read(root.join("FILES.txt")).unwrap_or_default();
    for line in String::from_utf8_lossy(&files_txt).lines() {
        let mut parts = line.split(' ');
        let (Some(hash), Some(file), Some(rec)) = (parts.next(), parts.next(), parts.next()) else {
            problems.push(problem("FILES.txt", &format!("unreadable line {line:?}")));
            continue;
        };
        let stated = fs::read(root.join(rec))
            .ok()
            .map(|b| String::from_utf8_lossy(&b).contains(&format!("\"sha256\": \"{hash}\"")));
        if stated != Some(true) {
            problems.push(problem(
                file,
                &format!("its record {rec} does not state its hash"),
            ));
        }
    }
}

fn problem(file: &str, why: &str) -> DiscProblem {
    DiscProblem {
        file: file.into(),
        why: why.into(),
    }
}

fn record_verifies(bytes: Vec<u8>, key: &PublicKey, sig: &Signature) -> bool {
    Record::parse(bytes).is_ok_and(|r| r.verify(key, sig).is_ok())
}

/// Whether a `proofs/*.txt` file proves its leaf into `cp`.
fn proof_holds(root: &Path, file: &str, cp: &Checkpoint) -> bool {
    let Ok(text) = fs::read_to_string(root.join(file)) else {
        return false;
    };
    let (mut leaf, mut index, mut size, mut hashes) = (None, None, None, Vec::new());
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("leaf", v)) => leaf = Some(v.to_owned()),
            Some(("index", v)) => index = v.parse::<u64>().ok(),
            Some(("size", v)) => size = v.parse::<u64>().ok(),
            Some(("hash", v)) => match hex::decode(v) {
                Ok(h) => hashes.push(h),
                Err(_) => return false,
            },
            _ => return false,
        }
    }
    let (Some(leaf), Some(index), Some(size)) = (leaf, index, size) else {
        return false;
    };
    let Ok(bytes) = fs::read(root.join(&leaf)) else {
        return false;
    };
    size == cp.size && verify_inclusion(&leaf_hash(&bytes), index, size, &hashes, &cp.root).is_ok()
}

/// Every regular file under `root`, as paths relative to it.
fn files_under(root: &Path) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                dirs.push(path);
            } else if let Ok(rel) = path.strip_prefix(root) {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    Ok(out)
}
