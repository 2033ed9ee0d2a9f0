//! Offline verification of a folder (device storage, archive disc, export package):
//! every record's signature and chain, every media file's hash, every file covered.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::chain::{ChainReport, ChainStart, verify_chain};
use crate::finding::{Finding, code};
use crate::hash::hash_reader;
use crate::keys::{KeyId, PublicKey};
use crate::layout::{self, CUSTODY_DIR, PUBLIC_KEY_FILE};
use crate::record::{Fact, Record, Verified};

/// Read buffer for hashing media: 128 KiB beat 1 MiB for copy+hash on the target machines.
pub const HASH_BUF_LEN: usize = 128 * 1024;
/// Folder depth beyond which the walk for unrecorded files stops (hostile trees).
const MAX_DEPTH: usize = 32;

/// How to verify a folder.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Keys to trust. Empty: trust the keys found in the folder (and say so in the report).
    pub trusted_keys: Vec<PublicKey>,
    /// Whether each device's records are its whole history or a subset (a case disc).
    pub start: ChainStart,
    /// The verifier's clock: records dated later (beyond [`CLOCK_TOLERANCE`]) are flagged.
    pub now: DateTime<Utc>,
}

/// How far ahead of the verifier's clock a record may be dated before it is flagged:
/// device clocks drift (20 ppm is 1.7 s a day) and are set at each dock.
pub const CLOCK_TOLERANCE: Duration = Duration::minutes(5);

/// Flags records dated after `now` + [`CLOCK_TOLERANCE`] (made, or clip ended).
pub fn future_records(records: &[Record<Verified>], now: DateTime<Utc>) -> Vec<Finding> {
    let limit = now + CLOCK_TOLERANCE;
    records
        .iter()
        .filter_map(|r| {
            let body = r.body();
            let end = match &body.fact {
                Fact::Clip(c) => c.time.end.max(body.created),
                _ => body.created,
            };
            (end > limit).then(|| {
                Finding::warning(
                    code::RECORD_FROM_FUTURE,
                    format!("{} seq {}", body.device.serial, body.seq),
                    format!(
                        "dated {end}, {} min after the verifier's clock ({now})",
                        (end.with_timezone(&Utc) - now).num_minutes()
                    ),
                )
            })
        })
        .collect()
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            trusted_keys: Vec::new(),
            start: ChainStart::Genesis,
            now: Utc::now(),
        }
    }
}

/// What was verified for one device.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceSummary {
    /// Product serial.
    pub serial: String,
    /// Id of the key its records were checked with.
    pub key_id: Option<KeyId>,
    /// Records that verified.
    pub records: usize,
    /// Clip records whose media matched.
    pub clips_verified: usize,
    /// Media bytes hashed for this device.
    pub bytes: u64,
}

/// The outcome of verifying a folder.
#[derive(Debug, Serialize)]
pub struct VerifyReport {
    /// The folder.
    pub root: PathBuf,
    /// Whether the keys were pinned by the caller or taken from the folder.
    pub keys_pinned: bool,
    /// Per device.
    pub devices: Vec<DeviceSummary>,
    /// Every problem found.
    pub findings: Vec<Finding>,
}

impl VerifyReport {
    /// True when nothing was found wrong.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// The check of one device's folder: chain plus media.
#[derive(Debug)]
pub struct DeviceCheck {
    /// Records that verified, in seq order.
    pub verified: Vec<Record<Verified>>,
    /// Findings about records, chain and media.
    pub findings: Vec<Finding>,
    /// Media files (relative to the root) covered by a record, good or bad.
    pub covered: HashSet<String>,
    /// Clip records whose media is present and matches.
    pub clips_verified: usize,
    /// Media bytes hashed.
    pub bytes: u64,
}

/// Verifies a folder. Problems with the evidence are findings in the report.
///
/// # Errors
/// Only when it cannot run: the folder is missing or unreadable.
pub fn verify_folder(root: &Path, opts: &VerifyOptions) -> io::Result<VerifyReport> {
    if !fs::metadata(root)?.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            format!("{} is not a folder", root.display()),
        ));
    }
    let mut report = VerifyReport {
        root: root.to_path_buf(),
        keys_pinned: !opts.trusted_keys.is_empty(),
        devices: Vec::new(),
        findings: Vec::new(),
    };
    let mut covered = HashSet::new();
    for serial in layout::device_serials(root)? {
        let dir = layout::device_dir(root, &serial);
        let key = match read_public_key(&dir) {
            Ok(key) => key,
            Err(why) => {
                report
                    .findings
                    .push(Finding::error(code::DEVICE_KEY_MISSING, &serial, why));
                report.devices.push(DeviceSummary {
                    serial,
                    key_id: None,
                    records: 0,
                    clips_verified: 0,
                    bytes: 0,
                });
                continue;
            }
        };
        if report.keys_pinned && !opts.trusted_keys.contains(&key) {
            report.findings.push(Finding::error(
                code::DEVICE_KEY_UNTRUSTED,
                &serial,
                format!("key {} is not among the trusted keys", key.key_id()),
            ));
        }
        let check = verify_device(root, &serial, &key, opts.start)?;
        report
            .findings
            .extend(future_records(&check.verified, opts.now));
        covered.extend(check.covered);
        report.findings.extend(check.findings);
        report.devices.push(DeviceSummary {
            serial,
            key_id: Some(key.key_id()),
            records: check.verified.len(),
            clips_verified: check.clips_verified,
            bytes: check.bytes,
        });
    }
    for (file, regular) in media_entries(root)? {
        if !covered.contains(&file) {
            let detail = if regular {
                "no record covers this file"
            } else {
                "not a regular file (symlink, device or folder too deep); not followed"
            };
            report
                .findings
                .push(Finding::warning(code::MEDIA_UNRECORDED, &file, detail));
        }
    }
    Ok(report)
}

fn read_public_key(device_dir: &Path) -> Result<PublicKey, String> {
    let path = device_dir.join(PUBLIC_KEY_FILE);
    let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    PublicKey::from_pem(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Verifies one device's records (signatures, chain from `start`) and the media they cover.
///
/// # Errors
/// Only an unreadable records folder; bad evidence becomes findings.
pub fn verify_device(
    root: &Path,
    serial: &str,
    key: &PublicKey,
    start: ChainStart,
) -> io::Result<DeviceCheck> {
    let (files, mut findings) = layout::read_records(&layout::device_dir(root, serial))?;
    let ChainReport {
        verified,
        findings: chain_findings,
        rejected_media,
    } = verify_chain(serial, key, files, start);
    findings.extend(chain_findings);
    let mut check = DeviceCheck {
        covered: rejected_media.into_iter().collect(),
        verified: Vec::new(),
        findings,
        clips_verified: 0,
        bytes: 0,
    };
    let mut buf = vec![0u8; HASH_BUF_LEN];
    // Media must resolve inside the folder; its real path is looked up once, not per clip.
    let real_root = fs::canonicalize(root)?;
    for rec in &verified {
        let Fact::Clip(clip) = &rec.body().fact else {
            continue;
        };
        let media = &clip.media;
        check.covered.insert(media.file.clone());
        let subject = format!("{serial} seq {} {}", rec.body().seq, media.file);
        let read = open_media(root, &real_root, &media.file).and_then(|file| {
            hash_reader(file, &mut buf).map_err(|e| MediaUnavailable {
                code: code::FILE_UNREADABLE,
                why: format!("{}: reading failed: {e}", media.file),
            })
        });
        match read {
            Ok((size, hash)) => {
                check.bytes += size;
                if size == media.size && hash == media.sha256 {
                    check.clips_verified += 1;
                } else {
                    check.findings.push(Finding::error(
                        code::MEDIA_HASH_MISMATCH,
                        subject,
                        format!(
                            "signed {} bytes sha256 {}, found {size} bytes sha256 {hash}",
                            media.size, media.sha256
                        ),
                    ));
                }
            }
            Err(MediaUnavailable { code, why }) => {
                check.findings.push(Finding::error(code, subject, why));
            }
        }
    }
    check.verified = verified;
    Ok(check)
}

/// Why a media file a record covers cannot be read: absent (or not a regular file inside
/// the folder), or there but unreadable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaUnavailable {
    /// [`code::MEDIA_MISSING`] or [`code::FILE_UNREADABLE`].
    pub code: &'static str,
    /// Why, with the path.
    pub why: String,
}

/// Opens media file `rel` under `root` (whose canonical path is `real_root`), refusing
/// anything that is not a regular file inside it (symlinks out of the folder included).
///
/// # Errors
/// Why the file cannot be read, with the finding code that says so.
pub fn open_media(root: &Path, real_root: &Path, rel: &str) -> Result<File, MediaUnavailable> {
    let path = root.join(rel);
    let missing = |why: String| MediaUnavailable {
        code: code::MEDIA_MISSING,
        why,
    };
    let failed = |e: io::Error| MediaUnavailable {
        code: if e.kind() == io::ErrorKind::NotFound {
            code::MEDIA_MISSING
        } else {
            code::FILE_UNREADABLE
        },
        why: format!("{}: {e}", path.display()),
    };
    let meta = fs::symlink_metadata(&path).map_err(failed)?;
    if !meta.is_file() {
        return Err(missing(format!("{} is not a regular file", path.display())));
    }
    let inside = fs::canonicalize(&path)
        .map(|p| p.starts_with(real_root))
        .map_err(failed)?;
    if !inside {
        return Err(missing(format!(
            "{} leads outside the folder",
            path.display()
        )));
    }
    File::open(&path).map_err(failed)
}

/// Every entry outside `custody/` that is not a folder, as a `/`-separated path relative to
/// `root` and whether it is a regular file (symlinks are listed, never followed).
///
/// # Errors
/// An unreadable folder.
pub fn media_entries(root: &Path) -> io::Result<Vec<(String, bool)>> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), String::new(), 0usize)];
    while let Some((dir, prefix, depth)) = stack.pop() {
        let mut entries: Vec<_> = fs::read_dir(&dir)?.collect::<io::Result<_>>()?;
        entries.sort_by_key(fs::DirEntry::file_name);
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = format!("{prefix}{name}");
            if depth == 0 && name == CUSTODY_DIR {
                continue;
            }
            let kind = entry.file_type()?;
            if kind.is_dir() && depth < MAX_DEPTH {
                stack.push((entry.path(), format!("{rel}/"), depth + 1));
            } else {
                out.push((rel, kind.is_file()));
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::chain::ChainAnchor;
    use crate::keys::SigningKey;
    use crate::record::{BindingFact, Record};
    use crate::testkit::{RECIPES, SampleDevice};

    fn device(clips: usize) -> (tempfile::TempDir, SampleDevice) {
        let dir = tempfile::tempdir().unwrap();
        let dev =
            SampleDevice::with_generated_clips(&dir.path().join("dev"), "A123456", clips, 3000)
                .unwrap();
        (dir, dev)
    }

    /// Checking as of the evening of the sample clips' day.
    fn sample_opts() -> VerifyOptions {
        VerifyOptions {
            now: crate::testkit::sample_day(18),
            ..VerifyOptions::default()
        }
    }

    fn codes(report: &VerifyReport) -> BTreeSet<&'static str> {
        report.findings.iter().map(|f| f.code).collect()
    }

    #[test]
    fn a_clean_device_verifies_with_every_clip_checked() {
        let (_dir, dev) = device(4);
        let report = verify_folder(&dev.root, &sample_opts()).unwrap();
        assert!(report.is_clean(), "{:#?}", report.findings);
        assert_eq!(report.devices[0].records, 4);
        assert_eq!(report.devices[0].clips_verified, 4);
        assert_eq!(report.devices[0].bytes, 4 * 3000);
    }

    #[test]
    fn every_tampering_recipe_gives_exactly_its_finding_code() {
        for (recipe, want) in RECIPES {
            let (_dir, mut dev) = device(4);
            let recipe = recipe.replace('N', "2");
            dev.tamper(&recipe).unwrap();
            let report = verify_folder(&dev.root, &sample_opts()).unwrap();
            let want: BTreeSet<&str> = want.iter().copied().collect();
            assert_eq!(codes(&report), want, "{recipe}: {:#?}", report.findings);
        }
    }

    #[test]
    fn a_recipe_outside_the_device_or_unknown_is_an_error() {
        let (_dir, mut dev) = device(2);
        assert!(dev.tamper("drop:seq-9").is_err());
        assert!(dev.tamper("swap:seq-1").is_err());
        assert!(dev.tamper("melt:clip-1").is_err());
    }

    #[test]
    fn pinned_keys_flag_a_device_key_nobody_enrolled() {
        let (_dir, dev) = device(1);
        let stranger = SigningKey::generate().unwrap().0.public_key();
        let opts = VerifyOptions {
            trusted_keys: vec![stranger],
            ..sample_opts()
        };
        let report = verify_folder(&dev.root, &opts).unwrap();
        assert_eq!(codes(&report), BTreeSet::from([code::DEVICE_KEY_UNTRUSTED]));
        let opts = VerifyOptions {
            trusted_keys: vec![dev.public_key()],
            ..sample_opts()
        };
        assert!(verify_folder(&dev.root, &opts).unwrap().is_clean());
    }

    #[test]
    fn the_chain_continues_from_a_trusted_anchor() {
        let (_dir, dev) = device(4);
        let second = dev.records().nth(1).unwrap();
        let anchor = ChainAnchor {
            seq: 2,
            hash: second.hash(),
        };
        let check = verify_device(
            &dev.root,
            &dev.serial,
            &dev.public_key(),
            ChainStart::After(anchor),
        )
        .unwrap();
        assert!(check.findings.is_empty(), "{:#?}", check.findings);
        assert_eq!(
            check.verified.len(),
            2,
            "records the anchor covers are not new"
        );

        // The ledger holds another record at seq 2: this device's chain forked from it.
        let other = ChainAnchor {
            seq: 2,
            hash: dev.records().next().unwrap().hash(),
        };
        let check = verify_device(
            &dev.root,
            &dev.serial,
            &dev.public_key(),
            ChainStart::After(other),
        )
        .unwrap();
        let got: BTreeSet<_> = check.findings.iter().map(|f| f.code).collect();
        assert_eq!(
            got,
            BTreeSet::from([code::CHAIN_FORK, code::CHAIN_PREV_MISMATCH])
        );
    }

    #[test]
    fn records_missing_right_after_the_anchor_are_a_gap() {
        let (_dir, mut dev) = device(4);
        dev.tamper("drop:seq-3").unwrap();
        let first = ChainAnchor {
            seq: 1,
            hash: dev.records().next().unwrap().hash(),
        };
        // Seq 2 left the device under an earlier receipt; the ledger's anchor is seq 1 only.
        let check = verify_device(
            &dev.root,
            &dev.serial,
            &dev.public_key(),
            ChainStart::After(first),
        )
        .unwrap();
        assert!(
            check
                .findings
                .iter()
                .any(|f| f.code == code::CHAIN_GAP && f.subject.ends_with("seq 3..=3"))
        );
    }

    #[test]
    fn a_subset_allows_holes_but_still_checks_what_is_there() {
        let (_dir, mut dev) = device(4);
        dev.tamper("drop:seq-2").unwrap();
        let subset = VerifyOptions {
            start: ChainStart::Subset,
            ..sample_opts()
        };
        let report = verify_folder(&dev.root, &subset).unwrap();
        assert!(report.is_clean(), "{:#?}", report.findings);
        dev.tamper("flip-byte:clip-3").unwrap();
        assert_eq!(
            codes(&verify_folder(&dev.root, &subset).unwrap()),
            BTreeSet::from([code::MEDIA_HASH_MISMATCH])
        );
    }

    #[test]
    fn a_binding_is_a_new_record_that_points_at_its_clip() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let (key, _) = SigningKey::generate().unwrap();
        fs::create_dir_all(root.join("DCIM")).unwrap();
        fs::write(root.join("DCIM/1.MP4"), b"clip").unwrap();
        let clip_body = crate::testkit::sample_clip_body(
            &key.public_key(),
            "B1",
            1,
            None,
            "DCIM/1.MP4",
            4,
            crate::hash::MediaHash::of(b"clip"),
        );
        let clip = Record::seal(&clip_body, &key).unwrap();
        let mut bind = clip_body.clone();
        bind.seq = 2;
        bind.prev = Some(clip.hash());
        bind.fact = Fact::Binding(BindingFact {
            subject: clip.hash(),
            case_number: "襄环罚〔2019〕75号".into(),
            number: "襄环罚〔2019〕75号-视-001".into(),
        });
        let binding = Record::seal(&bind, &key).unwrap();
        let dev_dir = layout::device_dir(root, "B1");
        fs::create_dir_all(&dev_dir).unwrap();
        fs::write(dev_dir.join(PUBLIC_KEY_FILE), key.public_key().to_pem()).unwrap();
        layout::write_record(root, &clip).unwrap();
        layout::write_record(root, &binding).unwrap();
        let report = verify_folder(root, &sample_opts()).unwrap();
        assert!(report.is_clean(), "{:#?}", report.findings);
        assert_eq!(report.devices[0].records, 2);

        // A binding whose clip is not in the chain is reported.
        let mut stray = bind.clone();
        stray.seq = 3;
        stray.prev = Some(binding.hash());
        stray.fact = Fact::Binding(BindingFact {
            subject: crate::hash::RecordHash([9; 32]),
            ..match bind.fact {
                Fact::Binding(b) => b,
                _ => unreachable!(),
            }
        });
        let stray_record = Record::seal(&stray, &key).unwrap();
        layout::write_record(root, &stray_record).unwrap();
        let report = verify_folder(root, &sample_opts()).unwrap();
        assert_eq!(codes(&report), BTreeSet::from([code::SUBJECT_UNKNOWN]));
    }

    #[test]
    fn hostile_files_become_findings_and_are_never_followed() {
        let (dir, dev) = device(2);
        let records = layout::device_dir(&dev.root, &dev.serial).join(layout::RECORDS_DIR);
        // A huge record: refused after reading one byte past the limit.
        fs::write(
            records.join("00000009.json"),
            vec![b' '; crate::record::MAX_RECORD_BYTES * 4],
        )
        .unwrap();
        // A record symlinked to a file outside the folder.
        fs::write(dir.path().join("outside.json"), b"{}").unwrap();
        std::os::unix::fs::symlink(
            dir.path().join("outside.json"),
            records.join("00000010.json"),
        )
        .unwrap();
        // A media symlink out of the folder.
        std::os::unix::fs::symlink("/etc/hostname", dev.root.join("DCIM/100MEDIA/LINK.MP4"))
            .unwrap();
        let report = verify_folder(&dev.root, &sample_opts()).unwrap();
        assert_eq!(
            codes(&report),
            BTreeSet::from([code::RECORD_MALFORMED, code::MEDIA_UNRECORDED])
        );
        assert_eq!(report.devices[0].clips_verified, 2);
    }

    #[test]
    fn a_clip_replaced_by_a_symlink_out_of_the_folder_is_missing() {
        let (_dir, dev) = device(1);
        let clip = dev
            .root
            .join(&dev.records().next().unwrap().body().media().unwrap().file);
        fs::remove_file(&clip).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", &clip).unwrap();
        let report = verify_folder(&dev.root, &sample_opts()).unwrap();
        assert_eq!(codes(&report), BTreeSet::from([code::MEDIA_MISSING]));
    }

    #[test]
    fn records_dated_after_the_verifier_s_clock_are_flagged() {
        // The sample device's clips are from 2026-11-20; a verifier whose clock says
        // 2026-11-19 sees them as made in the future.
        let (_dir, dev) = device(2);
        let before = DateTime::parse_from_rfc3339("2026-11-19T12:00:00+08:00")
            .unwrap()
            .with_timezone(&Utc);
        let opts = VerifyOptions {
            now: before,
            ..sample_opts()
        };
        let report = verify_folder(&dev.root, &opts).unwrap();
        assert_eq!(codes(&report), BTreeSet::from([code::RECORD_FROM_FUTURE]));
        assert_eq!(report.findings.len(), 2);
        // Within the tolerance of a drifting clock: not flagged.
        let last_end = dev
            .records()
            .filter_map(|r| match &r.body().fact {
                Fact::Clip(c) => Some(c.time.end),
                _ => None,
            })
            .max()
            .unwrap();
        let just_before = last_end.with_timezone(&Utc) - Duration::minutes(4);
        assert!(
            verify_folder(
                &dev.root,
                &VerifyOptions {
                    now: just_before,
                    ..sample_opts()
                }
            )
            .unwrap()
            .is_clean()
        );
    }

    #[test]
    fn a_missing_folder_cannot_be_verified() {
        assert!(verify_folder(Path::new("/nonexistent/custody"), &sample_opts()).is_err());
    }
}
