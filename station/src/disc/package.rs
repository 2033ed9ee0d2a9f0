//! Export packages, made by the disc builder: the same small files (records, signatures,
//! keys, proofs, `FILES.txt`, checkpoint, `disc.json` with the request, README, index),
//! written into a folder with the clips copied in (each hash checked as it is copied),
//! and for carrying an ISO image of that folder. The folder appears under its final name
//! only when complete.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use custody::MediaHash;

use super::DiscPlan;
use super::build::{sha256sums, units};
use crate::ledger::ShippedRecord;
use crate::report::ClipRow;
use crate::{BUF_LEN, SignedCheckpoint, Station};

/// A package written.
#[derive(Debug, Clone)]
pub struct WrittenPackage {
    /// The folder.
    pub folder: PathBuf,
    /// The ISO image of it, if one was asked for.
    pub image: Option<PathBuf>,
    /// SHA-256 of its `SHA256SUMS`.
    pub sums_sha256: MediaHash,
    /// Files in it (`SHA256SUMS` included).
    pub files: u64,
}

impl Station {
    /// Writes the package of `clips` with their device records and the package's
    /// `station_records` (request, approvals, export) into `out/<volume id>`, and an ISO
    /// image beside it when `image` is set.
    ///
    /// # Errors
    /// The folder exists already, a clip whose bytes in the store are not its hash, a
    /// device not enrolled, xorriso failing, or an I/O or ledger failure.
    pub(crate) fn write_package(
        &self,
        mut plan: DiscPlan,
        clips: &[ClipRow],
        station_records: Vec<ShippedRecord>,
        checkpoint: &SignedCheckpoint,
        out: &Path,
        image: bool,
    ) -> anyhow::Result<WrittenPackage> {
        let records: Vec<custody::RecordHash> = clips.iter().map(|c| c.record).collect();
        let (device_records, keys) = {
            let ledger = self.ledger();
            let mut keys = BTreeMap::new();
            for c in clips {
                if !keys.contains_key(&c.serial) {
                    let dev = ledger
                        .device(&c.serial)?
                        .with_context(|| format!("device {} is not enrolled", c.serial))?;
                    keys.insert(c.serial.clone(), dev.key.to_pem());
                }
            }
            (ledger.clip_device_records(&records)?, keys)
        };
        let (units, common) = units(clips, &[], device_records, station_records)?;
        plan.clips = units.iter().filter_map(|u| u.clip.clone()).collect();
        let shipped: Vec<&ShippedRecord> = units
            .iter()
            .flat_map(|u| &u.records)
            .chain(&common)
            .collect();
        let mut small = self.small_files(&plan, &shipped, &keys, checkpoint)?;
        let (sums_text, files) = sha256sums(&plan, &small);
        let sums_sha256 = MediaHash::of(sums_text.as_bytes());
        small.push(("SHA256SUMS".into(), sums_text.into_bytes()));

        fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        let folder = out.join(&plan.volume_id);
        if folder.exists() {
            bail!(
                "{} exists already: nothing is overwritten",
                folder.display()
            );
        }
        let partial = tempfile::Builder::new()
            .prefix(&format!(".partial-{}-", plan.volume_id))
            .tempdir_in(out)?;
        for (path, bytes) in &small {
            write_file(partial.path(), path, |f| f.write_all(bytes))?;
        }
        let mut buf = vec![0; BUF_LEN];
        for clip in &plan.clips {
            let mut src = self.store().get(&clip.sha256)?;
            let mut found = None;
            write_file(partial.path(), &clip.disc_path, |f| {
                found = Some(custody::copy_hashing(&mut src, f, &mut buf)?);
                Ok(())
            })?;
            if found.map(|(_, h)| h) != Some(clip.sha256) {
                bail!(
                    "clip {}: the store's bytes are not its hash {}: not exported",
                    clip.row.number,
                    clip.sha256
                );
            }
        }
        let staged = partial.keep();
        fs::rename(&staged, &folder)
            .with_context(|| format!("moving the package to {}", folder.display()))?;
        fs::File::open(out)?.sync_all()?;
        let image = if image {
            let iso = out.join(format!("{}.iso", plan.volume_id));
            super::xorriso::build(
                &iso,
                &plan.volume_id,
                &[(folder.as_path(), "/".into())],
                None,
            )?;
            Some(iso)
        } else {
            None
        };
        Ok(WrittenPackage {
            folder,
            image,
            sums_sha256,
            files,
        })
    }
}

/// Writes one file of the package under `root` (creating its folders) and syncs it.
fn write_file(
    root: &Path,
    rel: &str,
    fill: impl FnOnce(&mut fs::File) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let dst = root.join(rel);
    if let Some(dir) = dst.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut written =
        fs::File::create(&dst).with_context(|| format!("writing {}", dst.display()))?;
    fill(&mut written).with_context(|| format!("writing {}", dst.display()))?;
    written
        .sync_all()
        .with_context(|| format!("writing {}", dst.display()))?;
    Ok(())
}
