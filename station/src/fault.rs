//! Fault injection at the device boundary, for tests: `CUSTODY_STATION_FAULT=unplug-after:N`
//! makes every clip read fail with EIO after N bytes, as a USB card does when its cable is
//! pulled mid-copy. Unset in production: one environment lookup per clip.

use std::fs::File;
use std::io::{self, Read};

/// The environment variable naming the fault.
pub const ENV: &str = "CUSTODY_STATION_FAULT";

/// A clip source, possibly failing as configured.
pub enum Source {
    /// The file as is.
    Plain(File),
    /// Fails with EIO once `left` bytes were read.
    Unplugging {
        /// The file.
        file: File,
        /// Bytes still readable.
        left: u64,
    },
}

/// Wraps a clip file in the configured fault, if any.
pub fn source(file: File) -> Source {
    let after = std::env::var(ENV)
        .ok()
        .and_then(|v| v.strip_prefix("unplug-after:")?.parse().ok());
    match after {
        Some(left) => Source::Unplugging { file, left },
        None => Source::Plain(file),
    }
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(file) => file.read(buf),
            Self::Unplugging { file, left } => {
                if *left == 0 {
                    return Err(io::Error::from_raw_os_error(nix::libc::EIO));
                }
                let max = usize::try_from(*left).unwrap_or(usize::MAX).min(buf.len());
                let n = file.read(&mut buf[..max])?;
                *left -= n as u64;
                Ok(n)
            }
        }
    }
}
