//! Offline verification of a folder (device storage, archive disc, export package):
//! every record's signature and chain, every media file's hash, every file covered.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

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
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            trusted_keys: Vec::new(),
            start: ChainStart::Genesis,
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
    for file in walk_media(root, &mut report.findings)? {
        if !covered.contains(&file) {
            report.findings.push(Finding::warning(
                code::MEDIA_UNRECORDED,
                &file,
                "no record covers this file",
            ));
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
    for rec in &verified {
        let Fact::Clip(clip) = &rec.body().fact else {
            continue;
        };
        let media = &clip.media;
        check.covered.insert(media.file.clone());
        let subject = format!("{serial} seq {} {}", rec.body().seq, media.file);
        match open_inside(root, &media.file) {
            Ok(file) => {
                let (size, hash) = hash_reader(file, &mut buf)?;
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
            Err(why) => check
                .findings
                .push(Finding::error(code::MEDIA_MISSING, subject, why)),
        }
    }
    check.verified = verified;
    Ok(check)
}

/// Opens `rel` under `root`, refusing anything that is not a regular file inside it
/// (symlinks out of the folder included).
fn open_inside(root: &Path, rel: &str) -> Result<File, String> {
    let path = root.join(rel);
    let meta = fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    let inside = fs::canonicalize(&path)
        .and_then(|p| Ok(p.starts_with(fs::canonicalize(root)?)))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if !inside {
        return Err(format!("{} leads outside the folder", path.display()));
    }
    File::open(&path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Every file outside `custody/`, as `/`-separated paths relative to `root`. Symlinks and
/// odd names become findings, not media.
fn walk_media(root: &Path, findings: &mut Vec<Finding>) -> io::Result<Vec<String>> {
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
            } else if kind.is_file() {
                out.push(rel);
            } else {
                findings.push(Finding::warning(
                    code::MEDIA_UNRECORDED,
                    rel,
                    "not a regular file (symlink, device or folder too deep); not followed",
                ));
            }
        }
    }
    out.sort();
    Ok(out)
}
