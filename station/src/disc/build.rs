//! Building a case's disc set: plan what goes on which disc (spanning by capacity), write
//! each disc's small files into a staging folder, map the clips and documents straight
//! from the store, and have xorriso make the image. Every image is a station record.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use custody::{
    AccessAction, DiscBuiltFact, Fact, MediaHash, Record, RecordHash, Role, StationFact,
};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::{DiscPlan, Medium, ShippedClip, ShippedDocument, disc_name, readme, volume_id};
use crate::ledger::{LedgerDocument, ShippedRecord};
use crate::report::{ClipRow, ClipStatus};
use crate::{Actor, BUF_LEN, Station};

/// Room kept on every disc for the file system, the small files and each file's entries.
const DISC_OVERHEAD: u64 = 4 << 20;
/// Room per file for its directory entries and padding.
const PER_FILE_OVERHEAD: u64 = 8 << 10;
/// The README's file name.
pub const README_FILE: &str = "README-说明.txt";

/// One image built.
#[derive(Debug, Clone, Serialize)]
pub struct BuiltDisc {
    /// The image file.
    pub image: PathBuf,
    /// Its volume id.
    pub volume_id: String,
    /// Disc number, from 1.
    pub disc: usize,
    /// Discs in the set.
    pub of: usize,
    /// Clips on it.
    pub clips: usize,
    /// Documents on it.
    pub documents: usize,
    /// SHA-256 of the image.
    pub image_sha256: String,
    /// Its size in bytes.
    pub image_size: u64,
    /// The station record of the build.
    pub record: String,
}

/// A clip or a document with the records and proofs that travel with it.
pub(super) struct Unit {
    pub(super) clip: Option<ShippedClip>,
    pub(super) document: Option<ShippedDocument>,
    pub(super) records: Vec<ShippedRecord>,
    bytes: u64,
}

/// A small file written into a disc's staging folder: (path on the disc, bytes).
pub(super) type SmallFile = (String, Vec<u8>);

impl Station {
    /// Builds the case's disc set for `medium` (or a given capacity in bytes) into `out`,
    /// as a clerk (内勤) preparing the case file's archive: an access event naming every
    /// clip is written before any is read.
    ///
    /// # Errors
    /// Another role, nothing to archive, a clip that is not intact in the store, a single
    /// clip or document larger than the medium, xorriso failing, or a ledger failure.
    pub fn build_discs(
        &self,
        actor: &Actor,
        case_input: &str,
        medium: Medium,
        capacity: Option<u64>,
        out: &Path,
    ) -> anyhow::Result<Vec<BuiltDisc>> {
        actor.require(&[Role::Clerk], "building archive discs")?;
        let number = self.case_number(case_input)?;
        let case_number = number.to_string();
        let view = self.case_file(&case_number)?;
        if view.clips.is_empty() && view.documents.is_empty() {
            bail!("case {case_number} has no clips or documents to archive");
        }
        if let Some(c) = view.clips.iter().find(|c| c.status != ClipStatus::Verified) {
            bail!(
                "clip {} ({} seq {}) is not intact in the store: a disc holds verified clips only",
                c.number,
                c.serial,
                c.seq
            );
        }
        let records: Vec<RecordHash> = view.clips.iter().map(|c| c.record).collect();
        self.record_access(
            actor,
            AccessAction::DiscBuild,
            Some(&case_number),
            &records,
            None,
            &[],
        )?;
        let capacity = capacity.unwrap_or_else(|| medium.capacity());
        let (checkpoint, units, common, keys, set) = {
            let mut ledger = self.ledger();
            let set = ledger.disc_sets(&case_number)? + 1;
            let checkpoint = ledger.sign_checkpoint(&self.signer, self.now())?;
            let device_records = ledger.case_device_records(&case_number)?;
            let station_records = ledger.case_station_records(&case_number)?;
            let (units, common) = units(
                &view.clips,
                &view.documents,
                device_records,
                station_records,
            )?;
            let serials: BTreeSet<&str> = view.clips.iter().map(|c| c.serial.as_str()).collect();
            let mut keys = BTreeMap::new();
            for serial in &serials {
                let dev = ledger
                    .device(serial)?
                    .with_context(|| format!("device {serial} is not enrolled"))?;
                keys.insert((*serial).to_owned(), dev.key.to_pem());
            }
            (checkpoint, units, common, keys, set)
        };
        let plans = span(units, capacity, &case_number)?;
        fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        let of = plans.len();
        let mut built = Vec::new();
        for (i, units) in plans.into_iter().enumerate() {
            let plan = DiscPlan {
                case_number: case_number.clone(),
                set,
                disc: i + 1,
                of,
                volume_id: volume_id(&number, set, i + 1),
                clips: units.iter().filter_map(|u| u.clip.clone()).collect(),
                documents: units.iter().filter_map(|u| u.document.clone()).collect(),
                package: None,
            };
            let records: Vec<&ShippedRecord> = units
                .iter()
                .flat_map(|u| &u.records)
                .chain(&common)
                .collect();
            built.push(self.build_one(&plan, medium, &records, &keys, &checkpoint, out)?);
        }
        Ok(built)
    }

    fn build_one(
        &self,
        plan: &DiscPlan,
        medium: Medium,
        records: &[&ShippedRecord],
        keys: &BTreeMap<String, String>,
        checkpoint: &crate::SignedCheckpoint,
        out: &Path,
    ) -> anyhow::Result<BuiltDisc> {
        let mut small = self.small_files(plan, records, keys, checkpoint)?;
        let (sums_text, files) = sha256sums(plan, &small);
        let sums_sha256 = MediaHash::of(sums_text.as_bytes());
        small.push(("SHA256SUMS".into(), sums_text.into_bytes()));
        let bytes: u64 = plan.clips.iter().map(|c| c.row.size).sum::<u64>()
            + plan.documents.iter().map(|d| d.size).sum::<u64>()
            + small.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
        let work = self.disc_work().track(
            &format!("制作 {}", plan.volume_id),
            &plan.case_number,
            plan.clips.len() + plan.documents.len() + small.len(),
            bytes,
        );
        let image = self.make_image(plan, &small, out, &work.progress)?;
        let (image_size, image_sha256) = hash_file(&image)?;
        let rec = self.commit_station_fact(StationFact::DiscBuilt(DiscBuiltFact {
            case_number: plan.case_number.clone(),
            volume_id: plan.volume_id.clone(),
            set: plan.set,
            disc: u32::try_from(plan.disc).unwrap_or(u32::MAX),
            of: u32::try_from(plan.of).unwrap_or(u32::MAX),
            medium: medium.as_str().into(),
            image_sha256,
            image_size,
            sums_sha256,
            files,
            checkpoint_size: checkpoint.size,
        }))?;
        Ok(BuiltDisc {
            image,
            volume_id: plan.volume_id.clone(),
            disc: plan.disc,
            of: plan.of,
            clips: plan.clips.len(),
            documents: plan.documents.len(),
            image_sha256: image_sha256.to_string(),
            image_size,
            record: rec.hash().to_string(),
        })
    }
}

impl Station {
    /// The disc's (or package's) small files: keys, records and signatures, proofs,
    /// `FILES.txt`, the checkpoint, `disc.json`, the README and the index page.
    pub(super) fn small_files(
        &self,
        plan: &DiscPlan,
        records: &[&ShippedRecord],
        keys: &BTreeMap<String, String>,
        checkpoint: &crate::SignedCheckpoint,
    ) -> anyhow::Result<Vec<SmallFile>> {
        let mut small: Vec<SmallFile> = vec![(
            "keys/station.pub.pem".into(),
            self.verifier().public_key().to_pem().into_bytes(),
        )];
        let on_disc: BTreeSet<&str> = plan.clips.iter().map(|c| c.row.serial.as_str()).collect();
        for (serial, pem) in keys.iter().filter(|(s, _)| on_disc.contains(s.as_str())) {
            small.push((format!("keys/{serial}.pub.pem"), pem.clone().into_bytes()));
        }
        for rec in records {
            let path = record_path(rec);
            small.push((format!("{path}.json"), rec.bytes.clone()));
            small.push((format!("{path}.sig"), rec.sig.clone()));
            let proof = self
                .ledger()
                .inclusion_proof(rec.log_index, checkpoint.size)?;
            let mut text = format!(
                "leaf {path}.json\nindex {}\nsize {}\n",
                rec.log_index, checkpoint.size
            );
            for hash in &proof {
                let _ = writeln!(text, "hash {}", hex::encode(hash));
            }
            small.push((
                format!("proofs/{:08}.txt", rec.log_index),
                text.into_bytes(),
            ));
        }
        let mut files_txt = String::new();
        for c in &plan.clips {
            let _ = writeln!(
                files_txt,
                "{} {} records/{}/{:08}.json",
                c.sha256, c.disc_path, c.row.serial, c.row.seq
            );
        }
        for d in &plan.documents {
            let _ = writeln!(
                files_txt,
                "{} {} station-records/{:08}.json",
                d.sha256, d.disc_path, d.station_seq
            );
        }
        small.push(("FILES.txt".into(), files_txt.into_bytes()));
        small.push((
            "checkpoint.txt".into(),
            checkpoint.note.clone().into_bytes(),
        ));
        let mut meta = serde_json::json!({
            "case_number": plan.case_number,
            "volume_id": plan.volume_id,
            "disc": plan.disc,
            "of": plan.of,
            "station": self.config().origin,
            "checkpoint_size": checkpoint.size,
        });
        if let Some(p) = &plan.package {
            meta["package"] = serde_json::json!({
                "request": p.request,
                "form": p.form,
                "destination": p.destination,
            });
        }
        small.push(("disc.json".into(), serde_json::to_vec_pretty(&meta)?));
        small.push((
            README_FILE.into(),
            readme::readme(plan, &self.config().origin).into_bytes(),
        ));
        small.push(("index.html".into(), readme::index_html(plan).into_bytes()));
        Ok(small)
    }

    /// Writes the small files into a staging folder beside the image and has xorriso make
    /// the image, mapping the clips and documents straight from a local store (a remote
    /// store's objects are copied into the staging folder first).
    fn make_image(
        &self,
        plan: &DiscPlan,
        small: &[SmallFile],
        out: &Path,
        progress: &crate::progress::SlotProgress,
    ) -> anyhow::Result<PathBuf> {
        let staging = tempfile::Builder::new()
            .prefix(&format!(".staging-{}-", plan.volume_id))
            .tempdir_in(out)?;
        for (path, bytes) in small {
            let dst = staging.path().join(path);
            if let Some(dir) = dst.parent() {
                fs::create_dir_all(dir)?;
            }
            fs::write(&dst, bytes).with_context(|| format!("writing {}", dst.display()))?;
        }
        let objects = plan
            .clips
            .iter()
            .map(|c| (c.sha256, c.disc_path.as_str()))
            .chain(
                plan.documents
                    .iter()
                    .map(|d| (d.sha256, d.disc_path.as_str())),
            );
        let mut maps: Vec<(PathBuf, String)> = vec![(staging.path().to_path_buf(), "/".into())];
        for (hash, disc_path) in objects {
            if let Some(source) = self.store().local_path(&hash) {
                maps.push((source, format!("/{disc_path}")));
            } else {
                let dst = staging.path().join(disc_path);
                fs::create_dir_all(dst.parent().unwrap_or(staging.path()))?;
                let mut src = self.store().get(&hash)?;
                std::io::copy(&mut src, &mut fs::File::create(&dst)?)?;
            }
        }
        let image = out.join(format!("{}.iso", plan.volume_id));
        let map_refs: Vec<(&Path, String)> =
            maps.iter().map(|(p, d)| (p.as_path(), d.clone())).collect();
        let watch = super::xorriso::Watch { progress, base: 0 };
        super::xorriso::build(&image, &plan.volume_id, &map_refs, Some(watch))?;
        Ok(image)
    }
}

/// `SHA256SUMS` of a disc: the small files hashed here, the clips and documents by their
/// store hash (checked when they were stored; a disc verify reads them back). Returns the
/// text and the number of files on the disc (`SHA256SUMS` included).
pub(super) fn sha256sums(plan: &DiscPlan, small: &[SmallFile]) -> (String, u64) {
    let mut sums: Vec<(String, String)> = small
        .iter()
        .map(|(p, b)| (p.clone(), hex::encode(Sha256::digest(b))))
        .collect();
    sums.extend(
        plan.clips
            .iter()
            .map(|c| (c.disc_path.clone(), c.sha256.to_string())),
    );
    sums.extend(
        plan.documents
            .iter()
            .map(|d| (d.disc_path.clone(), d.sha256.to_string())),
    );
    sums.sort();
    let mut text = String::new();
    for (path, hash) in &sums {
        let _ = writeln!(text, "{hash}  {path}");
    }
    (text, sums.len() as u64 + 1)
}

/// A record's path on the disc, without the extension.
fn record_path(rec: &ShippedRecord) -> String {
    match &rec.serial {
        Some(serial) => format!("records/{serial}/{:08}", rec.seq),
        None => format!("station-records/{:08}", rec.seq),
    }
}

/// SHA-256 and size of a file, read once.
pub(super) fn hash_file(path: &Path) -> anyhow::Result<(u64, MediaHash)> {
    let file = fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut buf = vec![0; BUF_LEN];
    custody::hash_reader(file, &mut buf).with_context(|| format!("reading {}", path.display()))
}

/// Groups the records with their clip or document; the other station records (closures,
/// a package's request, approvals and export) go on every disc.
pub(super) fn units(
    clips: &[ClipRow],
    documents: &[LedgerDocument],
    device_records: Vec<ShippedRecord>,
    station_records: Vec<ShippedRecord>,
) -> anyhow::Result<(Vec<Unit>, Vec<ShippedRecord>)> {
    let mut by_subject: BTreeMap<RecordHash, Vec<ShippedRecord>> = BTreeMap::new();
    let mut clip_by_leaf: BTreeMap<u64, RecordHash> = BTreeMap::new();
    for rec in device_records {
        let parsed = Record::parse(rec.bytes.clone())
            .map_err(|e| anyhow::anyhow!("a stored record no longer parses: {e}"))?;
        let subject = match &parsed.body().fact {
            Fact::Clip(_) => {
                clip_by_leaf.insert(rec.log_index, parsed.hash());
                parsed.hash()
            }
            Fact::Binding(b) => b.subject,
            Fact::Annotation(a) => a.subject,
        };
        by_subject.entry(subject).or_default().push(rec);
    }
    let mut names = BTreeSet::new();
    let mut unique = |wanted: String| {
        let mut name = wanted.clone();
        let mut n = 2;
        while !names.insert(name.clone()) {
            name = match wanted.rsplit_once('.') {
                Some((stem, ext)) => format!("{stem}-{n}.{ext}"),
                None => format!("{wanted}-{n}"),
            };
            n += 1;
        }
        name
    };
    let mut units = Vec::new();
    for row in clips {
        let hash: MediaHash = row
            .signed_sha256
            .parse()
            .map_err(|e| anyhow::anyhow!("clip {}: {e}", row.number))?;
        let ext = Path::new(&row.file)
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("bin");
        let disc_path = unique(format!("clips/{}.{ext}", disc_name(&row.number)));
        let records = clip_by_leaf
            .get(&row.log_index)
            .and_then(|h| by_subject.remove(h))
            .unwrap_or_default();
        let bytes = row.size
            + records
                .iter()
                .map(|r| r.bytes.len() as u64 + 2048)
                .sum::<u64>();
        units.push(Unit {
            clip: Some(ShippedClip {
                row: row.clone(),
                sha256: hash,
                disc_path,
            }),
            document: None,
            records,
            bytes,
        });
    }
    let mut common = Vec::new();
    for rec in station_records {
        let seq = rec.seq;
        match documents.iter().find(|d| rec.log_index == d.log_index) {
            Some(d) => {
                let disc_path = unique(format!("documents/{}", disc_name(&d.file)));
                units.push(Unit {
                    bytes: d.size + rec.bytes.len() as u64 + 2048,
                    clip: None,
                    document: Some(ShippedDocument {
                        title: d.title.clone(),
                        attached_by: d.attached_by.clone(),
                        sha256: d.sha256,
                        size: d.size,
                        disc_path,
                        station_seq: seq,
                    }),
                    records: vec![rec],
                });
            }
            // Closures (and earlier discs' records) are small: every disc carries them.
            None => common.push(rec),
        }
    }
    Ok((units, common))
}

/// Splits the units over as few discs as their order allows (a disc is filled, then the
/// next begins), refusing a unit larger than one disc.
fn span(units: Vec<Unit>, capacity: u64, case: &str) -> anyhow::Result<Vec<Vec<Unit>>> {
    let room = capacity.saturating_sub(DISC_OVERHEAD);
    let mut discs: Vec<Vec<Unit>> = vec![Vec::new()];
    let mut used = 0u64;
    for unit in units {
        let need = unit.bytes + PER_FILE_OVERHEAD * (1 + 2 * unit.records.len() as u64);
        if need > room {
            let what = unit
                .clip
                .as_ref()
                .map(|c| c.row.number.clone())
                .or_else(|| unit.document.as_ref().map(|d| d.title.clone()))
                .unwrap_or_default();
            bail!(
                "{what} of case {case} needs {need} bytes, more than one disc holds ({room} of {capacity}): choose a larger medium"
            );
        }
        if used + need > room {
            discs.push(Vec::new());
            used = 0;
        }
        used += need;
        if let Some(last) = discs.last_mut() {
            last.push(unit);
        }
    }
    Ok(discs)
}
