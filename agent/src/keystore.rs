//! The device key: generated on first start into the state folder with mode 0600, read on
//! every later start. (A secure element behind firmware-bridge can hold it instead.)

use std::path::{Path, PathBuf};

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
    let (pem, created) = custody::load_or_create_key_pem(&key_path(state_dir))?;
    Ok((SigningKey::from_pkcs8_pem(&pem)?, created))
}
