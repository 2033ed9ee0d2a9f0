//! What the station's process-level tests share: the station binary, and a station with
//! one enrolled device docked in slot 1.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use custody::testkit::SampleDevice;

/// The `custody-station` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_custody-station");

/// The station binary with `--config config` and `args`, logging warnings only.
pub fn station(config: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "warn");
    cmd
}

/// As [`station`], acting as the station's 内勤 `clerk` (added on first use): for commands
/// that read evidence (reports, case views).
pub fn station_as_clerk(config: &Path, args: &[&str]) -> Command {
    let mut cmd = station(config, args);
    custody::testkit::act_as_clerk(Path::new(BIN), config, &mut cmd).unwrap();
    cmd
}

/// A UTC offset under which the station's local time now is near midday: a clip recorded
/// an hour ago is then on the same local day (on time) whatever hour the test runs at,
/// while the binary under test runs on the real clock.
fn midday_offset() -> String {
    use chrono::Timelike as _;
    let hour = i32::try_from(chrono::Utc::now().hour()).unwrap_or(0);
    let offset = 12 - hour;
    format!(
        "{}{:02}:00",
        if offset < 0 { '-' } else { '+' },
        offset.abs()
    )
}

/// A station folder with its configuration and one docked device.
pub struct Docked {
    /// The station's folder (dock root, data folder, configuration).
    pub dir: tempfile::TempDir,
    /// Its `station.toml`.
    pub config: PathBuf,
    /// The device docked in slot 1.
    pub dev: SampleDevice,
}

/// A station of `origin` whose `station.toml` ends with `settings`, and the device `serial`
/// enrolled (with the real `enroll` command) and docked in slot 1 with `clips` generated
/// clips of `size` bytes, recorded an hour ago.
pub fn docked(origin: &str, settings: &str, serial: &str, clips: usize, size: usize) -> Docked {
    docked_recorded(
        origin,
        settings,
        serial,
        (clips, size),
        chrono::Utc::now() - chrono::Duration::hours(1),
    )
}

/// As [`docked`], the clips recorded at `recorded` by the system clock the station binary
/// runs on (days ago: they are late when docked now).
pub fn docked_recorded(
    origin: &str,
    settings: &str,
    serial: &str,
    (clips, size): (usize, usize),
    recorded: chrono::DateTime<chrono::Utc>,
) -> Docked {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("station.toml");
    fs::write(
        &config,
        format!(
            "dock-root = \"dock\"\ndata-dir = \"data\"\norigin = \"{origin}\"\n\
             reserve-bytes = 0\nutc-offset = \"{}\"\n{settings}",
            midday_offset()
        ),
    )
    .unwrap();
    let slot = dir.path().join("dock/slot-1");
    let dev =
        SampleDevice::with_generated_clips_at(&slot, serial, clips, size, Some(recorded)).unwrap();
    let pem = dir.path().join("device.pub.pem");
    fs::write(&pem, dev.public_key().to_pem()).unwrap();
    let out = station(
        &config,
        &[
            "enroll",
            "--serial",
            serial,
            "--hw-profile",
            "ga947-recorder",
        ],
    )
    .arg("--key")
    .arg(&pem)
    .args(["--officer", "42060119001:张三"])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Docked { dir, config, dev }
}
