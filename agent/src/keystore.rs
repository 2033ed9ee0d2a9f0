//! The device key: generated on first start into the state folder with mode 0600, read on
//! every later start. (A secure element behind firmware-bridge can hold it instead.)

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use custody::SigningKey;

/// File name of the device key in the state folder.
pub const KEY_FILE: &str = "device.key";

/// The key file's path.
pub fn key_path(state_dir: &Path) -> PathBuf {
    state_dir.join(KEY_FILE)
}

/// Reads the device key, or generates it (mode 0600, written atomically) on first start.
/// Returns the key and whether it was just created.
///
/// # Errors
/// An unreadable or invalid key file, one readable by others, or a failed write.
pub fn load_or_create(state_dir: &Path) -> anyhow::Result<(SigningKey, bool)> {
    let path = key_path(state_dir);
    if path.exists() {
        let mode = fs::metadata(&path)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            bail!(
                "{} is readable by others (mode {mode:o}); it must be 0600",
                path.display()
            );
        }
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let key =
            SigningKey::from_pkcs8_pem(&text).with_context(|| format!("{}", path.display()))?;
        return Ok((key, false));
    }
    fs::create_dir_all(state_dir).with_context(|| format!("creating {}", state_dir.display()))?;
    let (key, pem) = SigningKey::generate()?;
    let tmp = state_dir.join(".device.key.tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(pem.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, &path)?;
    fs::File::open(state_dir)?.sync_all()?;
    Ok((key, true))
}
