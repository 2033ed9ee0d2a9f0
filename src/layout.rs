//! Where records, signatures and keys sit in a folder: a device's storage (its outbox), an
//! archive disc, an export package. The agent writes this layout, the station and
//! `custody verify` read it:
//!
//! ```text
//! ROOT/                                  device storage root, disc root, export root
//!   DCIM/...                             media, where the recorder wrote them
//!   custody/devices/<serial>/device.pub.pem    the device's public key (PEM SPKI)
//!   custody/devices/<serial>/records/00000001.json   record bytes, as signed
//!   custody/devices/<serial>/records/00000001.sig    raw 64-byte Ed25519 signature
//!   custody/inbox/<serial>/receipt-<log size>.json   the station's receipts (+ .sig)
//! ```
//! A record's `fact.media.file` is relative to ROOT. Everything under `custody/` is
//! metadata; every other file is media and should be covered by a record.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::chain::RecordFile;
use crate::finding::{Finding, code};
use crate::keys::SIGNATURE_LEN;
use crate::record::{MAX_RECORD_BYTES, Record, Verified};

/// The metadata folder at the root of a device, disc or export.
pub const CUSTODY_DIR: &str = "custody";
/// Folder of per-device folders, inside [`CUSTODY_DIR`].
pub const DEVICES_DIR: &str = "devices";
/// The device's public key file, in its device folder.
pub const PUBLIC_KEY_FILE: &str = "device.pub.pem";
/// The records folder, in a device folder.
pub const RECORDS_DIR: &str = "records";

/// The station's receipts folder, inside [`CUSTODY_DIR`].
pub const INBOX_DIR: &str = "inbox";

/// `ROOT/custody/inbox/<serial>`: where the station leaves receipts for a device.
pub fn inbox_dir(root: &Path, serial: &str) -> PathBuf {
    root.join(CUSTODY_DIR).join(INBOX_DIR).join(serial)
}

/// File name of the receipt issued at log size `size` (names sort like sizes).
pub fn receipt_file_name(size: u64) -> String {
    format!("receipt-{size:016}.json")
}

/// `ROOT/custody/devices/<serial>`.
pub fn device_dir(root: &Path, serial: &str) -> PathBuf {
    root.join(CUSTODY_DIR).join(DEVICES_DIR).join(serial)
}

/// File name of the record with this seq: zero-padded so names sort like seqs.
pub fn record_file_name(seq: u64) -> String {
    format!("{seq:08}.json")
}

/// Where the record with `seq` of device `serial` sits: `ROOT/custody/devices/<serial>/records/NNNNNNNN.json`
/// (its signature beside it, `.sig`).
pub fn record_path(root: &Path, serial: &str, seq: u64) -> PathBuf {
    device_dir(root, serial)
        .join(RECORDS_DIR)
        .join(record_file_name(seq))
}

/// Writes a record and its signature into the device folder, each atomically.
///
/// # Errors
/// Any I/O error, with nothing half-written visible.
pub fn write_record(root: &Path, rec: &Record<Verified>) -> io::Result<PathBuf> {
    let path = record_path(root, &rec.body().device.serial, rec.body().seq);
    if let Some(dir) = path.parent() {
        create_dir_durable(dir)?;
    }
    write_record_at(&path, rec)?;
    Ok(path)
}

/// Writes a record to `path` (a `*.json` name) and its signature beside it, each
/// atomically, the signature first: a record file never exists without its signature.
///
/// # Errors
/// Any I/O error, with nothing half-written visible.
pub fn write_record_at(path: &Path, rec: &Record<Verified>) -> io::Result<()> {
    write_atomic(&path.with_extension("sig"), &rec.signature().0)?;
    write_atomic(path, rec.bytes())
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or the new one:
/// temp file in the same folder, fsync, rename, fsync the folder.
///
/// # Errors
/// Any I/O error; the temp file is removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    File::open(dir)?.sync_all()
}

/// Creates `dir` and any missing parents durably: each new folder's name is synced into
/// its parent, so a power cut cannot take away a folder whose files were synced.
///
/// # Errors
/// Any I/O error; the folders made so far stay.
pub fn create_dir_durable(dir: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut at = dir;
    while !at.as_os_str().is_empty() && !at.is_dir() {
        missing.push(at);
        match at.parent() {
            Some(parent) => at = parent,
            None => break,
        }
    }
    for new in missing.into_iter().rev() {
        match fs::create_dir(new) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
        let parent = match new.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// The serials of the device folders under `ROOT/custody/devices`, sorted.
///
/// # Errors
/// An unreadable folder; a missing one is just no devices.
pub fn device_serials(root: &Path) -> io::Result<Vec<String>> {
    let dir = root.join(CUSTODY_DIR).join(DEVICES_DIR);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut serials = Vec::new();
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir()
            && let Ok(name) = entry.file_name().into_string()
        {
            serials.push(name);
        }
    }
    serials.sort();
    Ok(serials)
}

/// Reads every `*.json` record (and its `.sig`) of a device folder, never more than one
/// byte past the size limits; a symlink becomes a finding without being followed.
///
/// # Errors
/// An unreadable folder.
pub fn read_records(device_dir: &Path) -> io::Result<(Vec<RecordFile>, Vec<Finding>)> {
    let dir = device_dir.join(RECORDS_DIR);
    let (mut files, mut findings) = (Vec::new(), Vec::new());
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((files, findings)),
        Err(e) => return Err(e),
    };
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.map(|e| e.path()))
        .collect::<io::Result<_>>()?;
    paths.sort();
    for path in paths {
        if path.extension().is_none_or(|ext| ext != "json") {
            continue;
        }
        let name = path.display().to_string();
        let meta = fs::symlink_metadata(&path)?;
        if !meta.is_file() {
            findings.push(Finding::error(
                code::RECORD_MALFORMED,
                &name,
                "not a regular file (symlinks are not followed)",
            ));
            continue;
        }
        // One byte past the limit is enough for the parser to refuse an oversized record.
        // A file that cannot be read is a finding, and the others are still read.
        let bytes = match read_bounded(&path, MAX_RECORD_BYTES + 1) {
            Ok(bytes) => bytes,
            Err(e) => {
                findings.push(Finding::error(
                    code::FILE_UNREADABLE,
                    &name,
                    format!("the record cannot be read: {e}"),
                ));
                continue;
            }
        };
        let sig_path = path.with_extension("sig");
        let sig = match fs::symlink_metadata(&sig_path) {
            Ok(m) if m.is_file() => match read_bounded(&sig_path, SIGNATURE_LEN + 1) {
                Ok(sig) => Some(sig),
                Err(e) => {
                    findings.push(Finding::error(
                        code::FILE_UNREADABLE,
                        sig_path.display().to_string(),
                        format!("the signature cannot be read: {e}"),
                    ));
                    continue;
                }
            },
            _ => None,
        };
        files.push(RecordFile { name, bytes, sig });
    }
    Ok((files, findings))
}

/// Reads at most `max` bytes of a file.
fn read_bounded(path: &Path, max: usize) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    File::open(path)?.take(max as u64).read_to_end(&mut bytes)?;
    Ok(bytes)
}
