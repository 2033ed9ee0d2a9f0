//! Checking a disc, its image, or a folder copied from one: xorriso's MD5 tags (for an
//! image or a drive), then the disc's files as any verifier checks them
//! ([`custody::check_disc_folder`]) under the keys this station's ledger enrolled, and
//! what the ledger says the disc holds. Each problem names the file. The check is a
//! station record.

use std::path::{Path, PathBuf};

use custody::{
    DiscCheck, DiscCheckedFact, DiscProblem, DiscTrust, NoteVerifier, PublicKey, StationFact,
};

use crate::Station;

/// A station trusts the device keys it enrolled and its own key.
struct LedgerTrust<'a>(&'a Station);

impl DiscTrust for LedgerTrust<'_> {
    fn device_key(&self, serial: &str) -> Option<PublicKey> {
        self.0.ledger().device(serial).ok().flatten().map(|d| d.key)
    }

    fn station(&self) -> Option<NoteVerifier> {
        Some(self.0.verifier().clone())
    }
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
        let work;
        let root: PathBuf = if path.is_dir() {
            path.to_path_buf()
        } else {
            // Read twice: every MD5 tag checked, then everything extracted and hashed.
            let size = std::fs::metadata(path).map_or(0, |m| m.len());
            let name = path
                .file_stem()
                .map_or_else(|| source.to_owned(), |s| s.to_string_lossy().into_owned());
            work =
                self.disc_work()
                    .track(&format!("核验 {name}"), source, 1, size.saturating_mul(2));
            let watch = |base| super::xorriso::Watch {
                progress: &work.progress,
                base,
            };
            for file in super::xorriso::check_md5(source, Some(watch(0)))? {
                problems.push(DiscProblem::new(
                    file.trim_start_matches('/'),
                    "MD5 tag does not match",
                ));
            }
            extracted = tempfile::Builder::new()
                .prefix(".disc-check-")
                .tempdir_in(self.config().data_dir.as_path())?;
            super::xorriso::extract(source, extracted.path(), Some(watch(size)))?;
            extracted.path().to_path_buf()
        };
        let mut check = custody::check_disc_folder(&root, &LedgerTrust(self))?;
        problems.append(&mut check.problems);
        check.problems = problems;
        // The ledger: the disc is one this station built, and holds what it built.
        if let (Some(case_number), Some(volume_id)) =
            (check.case_number.clone(), check.volume_id.clone())
        {
            // The guard is released here: committing the check locks the ledger again.
            let built = self.ledger().disc(&volume_id)?;
            match built {
                None => check.problems.push(DiscProblem::new(
                    "disc",
                    "this station's ledger has no disc of this volume id",
                )),
                Some((case, sums_sha256)) => {
                    if case != case_number || Some(sums_sha256) != check.sums_sha256 {
                        check.problems.push(DiscProblem::new(
                            "SHA256SUMS",
                            "differs from what the ledger says this disc holds",
                        ));
                    }
                    self.commit_station_fact(StationFact::DiscChecked(DiscCheckedFact {
                        case_number,
                        volume_id,
                        source: source.into(),
                        intact: check.is_intact(),
                        problems: check.problems.len() as u64,
                    }))?;
                }
            }
        }
        Ok(check)
    }
}
