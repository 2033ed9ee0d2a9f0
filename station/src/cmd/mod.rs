//! One file per user command.

pub mod audit;
pub mod enroll;
pub mod fleet;
pub mod hold;
pub mod ingest;
pub mod key;
pub mod overdue;
pub mod replicate;
pub mod report;
pub mod serve;
pub mod status;

use std::path::Path;

use anyhow::Context as _;
use custody_station::{Station, StationConfig};

/// Loads the configuration and opens the station, for commands that only read the ledger.
pub fn open(config: &Path) -> anyhow::Result<Station> {
    let cfg = StationConfig::load(config)?;
    Station::open(cfg).with_context(|| format!("opening the station of {}", config.display()))
}

/// Opens the station for a command that writes evidence or findings: the store must be
/// able to take evidence before any work starts.
pub fn open_for_writing(config: &Path) -> anyhow::Result<Station> {
    let station = open(config)?;
    station.check_store()?;
    Ok(station)
}

/// Bytes as people read them (binary units).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    #[expect(clippy::cast_precision_loss, reason = "display only")]
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
