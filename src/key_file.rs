//! Private key files: PEM PKCS#8, mode 0600, generated on first use and written atomically
//! (the agent's device key, the station's log and receipt key).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use crate::keys::{KeyError, SigningKey};

/// A key file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// Unreadable or unwritable.
    #[error("key file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Readable by others: the key may have leaked and is not used.
    #[error("{path} is readable by others (mode {mode:o}); it must be 0600")]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Not an Ed25519 PKCS#8 key.
    #[error("key file {path}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: KeyError,
    },
}

/// Reads the private key at `path`, or generates one there (mode 0600, temp file, fsync,
/// rename, fsync the folder) on first use. Returns its PEM text (to build the key, or
/// several handles to it) and whether it was just created.
///
/// # Errors
/// [`KeyFileError`]: unreadable, exposed (group/other bits set), invalid, or unwritable.
pub fn load_or_create_key_pem(path: &Path) -> Result<(String, bool), KeyFileError> {
    let io_err = |source| KeyFileError::Io {
        path: path.into(),
        source,
    };
    if path.exists() {
        let mode = fs::metadata(path).map_err(io_err)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyFileError::Exposed {
                path: path.into(),
                mode,
            });
        }
        let pem = fs::read_to_string(path).map_err(io_err)?;
        SigningKey::from_pkcs8_pem(&pem).map_err(|source| KeyFileError::Invalid {
            path: path.into(),
            source,
        })?;
        return Ok((pem, false));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    crate::layout::create_dir_durable(dir).map_err(io_err)?;
    let (_key, pem) = SigningKey::generate().map_err(|source| KeyFileError::Invalid {
        path: path.into(),
        source,
    })?;
    let tmp = path.with_extension("key.tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err)?;
    f.write_all(pem.as_bytes()).map_err(io_err)?;
    f.sync_all().map_err(io_err)?;
    fs::rename(&tmp, path).map_err(io_err)?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err)?;
    Ok((pem, true))
}
