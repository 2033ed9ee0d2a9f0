//! Burning a disc image: write it, read the written bytes back against the image, check
//! the disc as a whole, and record the burn (failed ones too) and the check as station
//! records. The periodic re-check schedule (GB/T 18894: optical discs every 4 years, at
//! least 10 % sampled) lists the discs due.

use std::fs::File;
use std::io::Read as _;
use std::path::Path;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use custody::{AccessAction, DiscBurnedFact, MediaHash, Role, StationFact};
use serde::Serialize;

use super::build::hash_file;
use crate::ledger::LedgerDisc;
use crate::{Actor, BUF_LEN, Station};
use custody::DiscCheck;

/// Years between periodic checks of a disc, by default (GB/T 18894).
pub const CHECK_EVERY_YEARS: u32 = 4;
/// The share of a set's discs each periodic check reads at least, in percent.
pub const CHECK_SAMPLE_PERCENT: u64 = 10;

/// What a burn did.
#[derive(Debug, Clone, Serialize)]
pub struct Burned {
    /// The disc's volume id.
    pub volume_id: String,
    /// Whether it was written and read back the same.
    pub burned: bool,
    /// What happened.
    pub detail: String,
    /// The check of the written disc, when the burn completed.
    pub check: Option<DiscCheck>,
}

/// A disc due for its periodic check.
#[derive(Debug, Clone, Serialize)]
pub struct DiscDue {
    /// The disc.
    #[serde(flatten)]
    pub disc: LedgerDisc,
    /// When it was last checked or, never checked, built.
    pub since: DateTime<Utc>,
}

impl Station {
    /// Burns `image` (one this station built) to `drive`, reads it back, checks it, as a
    /// clerk: the access event is written before the burn.
    ///
    /// # Errors
    /// Another role, an image this station did not build, or a ledger failure. A failed burn is an
    /// outcome (recorded as failed), not an error.
    pub fn burn_disc(&self, actor: &Actor, image: &Path, drive: &str) -> anyhow::Result<Burned> {
        actor.require(&[Role::Clerk], "burning archive discs")?;
        let (size, sha256) = hash_file(image)?;
        let (case_number, volume_id) =
            self.ledger().disc_by_image(&sha256)?.with_context(|| {
                format!("{} is not a disc image this station built", image.display())
            })?;
        self.record_access(
            actor,
            AccessAction::DiscBurn,
            Some(&case_number),
            &[],
            None,
            &[],
        )?;
        // Written, then read back: twice the image.
        let work = self.disc_work().track(
            &format!("刻录 {volume_id}"),
            &case_number,
            1,
            size.saturating_mul(2),
        );
        let watch = super::xorriso::Watch {
            progress: &work.progress,
            base: 0,
        };
        let outcome = super::xorriso::burn(image, drive, Some(watch))
            .and_then(|()| read_back(drive, size, &sha256, &work.progress));
        drop(work);
        let (burned, detail) = match &outcome {
            Ok(()) => (true, format!("{size} bytes written and read back the same")),
            Err(e) => (false, format!("{e:#}")),
        };
        self.commit_station_fact(StationFact::DiscBurned(DiscBurnedFact {
            case_number,
            volume_id: volume_id.clone(),
            drive: drive.into(),
            burned,
            detail: detail.clone(),
        }))?;
        let check = if burned {
            Some(self.verify_disc(drive)?)
        } else {
            None
        };
        Ok(Burned {
            volume_id,
            burned,
            detail,
            check,
        })
    }

    /// Discs whose periodic check is due at `now` (last checked, or built, `every_years`
    /// ago or more), and at least `CHECK_SAMPLE_PERCENT` % of all discs (the longest
    /// unchecked first) so that every round samples enough.
    ///
    /// # Errors
    /// A ledger failure.
    pub fn discs_due(&self, now: DateTime<Utc>, every_years: u32) -> anyhow::Result<Vec<DiscDue>> {
        let mut discs: Vec<DiscDue> = self
            .ledger()
            .all_discs()?
            .into_iter()
            .filter(|d| d.burned == Some(true))
            .map(|d| DiscDue {
                since: d.checked_at.unwrap_or(d.built_at),
                disc: d,
            })
            .collect();
        discs.sort_by_key(|d| d.since);
        let cutoff = now
            .checked_sub_months(chrono::Months::new(every_years * 12))
            .unwrap_or(now);
        let due = discs.iter().filter(|d| d.since <= cutoff).count();
        if due == 0 {
            return Ok(Vec::new());
        }
        let sample = (discs.len() as u64 * CHECK_SAMPLE_PERCENT).div_ceil(100);
        let take = due.max(usize::try_from(sample).unwrap_or(usize::MAX));
        discs.truncate(take);
        Ok(discs)
    }
}

/// Reads the first `size` bytes written to `drive` and compares them with the image (a
/// written disc or an emulated drive may hold padding after them).
fn read_back(
    drive: &str,
    size: u64,
    want: &MediaHash,
    progress: &crate::progress::SlotProgress,
) -> anyhow::Result<()> {
    let path = drive.strip_prefix("stdio:").unwrap_or(drive);
    let file = File::open(path).with_context(|| format!("reading back {path}"))?;
    progress
        .bytes_done
        .store(size, std::sync::atomic::Ordering::Relaxed);
    let counted = crate::progress::Counted::new(file.take(size), &progress.bytes_done);
    let mut buf = vec![0; BUF_LEN];
    let (read, found) =
        custody::hash_reader(counted, &mut buf).with_context(|| format!("reading back {path}"))?;
    anyhow::ensure!(
        read == size && found == *want,
        "{path} holds {read} bytes of SHA-256 {found}, not the image ({size} bytes, {want})"
    );
    Ok(())
}
