//! The profile schema (one TOML file per device model) and its strict loader: unknown keys
//! and broken rules are errors that name the file and line.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::pattern::FileNamePattern;

/// What kind of device a model is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceKind {
    /// 执法记录仪: body-worn recorder that docks at a station.
    Recorder,
    /// 手持执法终端: handheld terminal that uploads over the network.
    HandheldTerminal,
    /// A recorder without the agent: USB mass storage only, clips unattested.
    LegacyRecorder,
}

/// UART parity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Parity {
    /// No parity bit.
    None,
    /// Even parity.
    Even,
    /// Odd parity.
    Odd,
}

/// UART flow control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlowControl {
    /// None.
    None,
    /// Hardware RTS/CTS.
    RtsCts,
}

/// How the recorder closes a clip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Closing {
    /// Written under a suffix, renamed to its final name when closed.
    Rename,
    /// Written under its final name; closed when it stops growing.
    StopsGrowing,
}

/// Network the device can upload over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Network {
    /// Docks only.
    None,
    /// Wi-Fi.
    Wifi,
    /// 4G/5G mobile network.
    Lte,
}

/// The serial link to the MCU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SerialSettings {
    /// Baud rate.
    pub baud: u32,
    /// Data bits (7 or 8).
    pub data_bits: u8,
    /// Parity.
    pub parity: Parity,
    /// Stop bits (1 or 2).
    pub stop_bits: u8,
    /// Flow control.
    pub flow_control: FlowControl,
    /// The firmware-bridge protocol version the MCU speaks.
    pub protocol_version: u8,
    /// How long to wait for a response, in milliseconds.
    pub response_timeout_ms: u32,
    /// How many times a request is re-sent after a timeout.
    pub retries: u8,
}

/// Where and how the device stores clips.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct StorageLayout {
    /// Recording folder, relative to the storage root.
    pub recording_dir: String,
    /// File-name pattern of a closed clip.
    pub file_pattern: String,
    /// How a clip is closed.
    pub closing: Closing,
    /// Suffix of a clip still being written (with `closing = "rename"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_suffix: Option<String>,
    /// Storage capacity in GiB.
    pub capacity_gib: u32,
    /// The recorder only appends to a clip while writing it (e.g. fragmented MP4), so a
    /// hash of the bytes as they arrive is the clip's hash. When false (a muxer that
    /// patches headers at close), the agent re-hashes the whole clip when it closes.
    pub appends_only: bool,
}

/// How the device records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RecordingSpec {
    /// Segment length in seconds: a clip closes at this length.
    pub segment_seconds: u32,
    /// Container, e.g. `mp4`.
    pub container: String,
    /// Video codec (FFmpeg name).
    pub video_codec: String,
    /// Audio codec (FFmpeg name).
    pub audio_codec: String,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Video bit rate in kbit/s.
    pub bitrate_kbps: u32,
}

/// The real-time clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ClockSpec {
    /// Worst-case drift in parts per million (20 ppm ≈ 1.7 s a day).
    pub drift_ppm: u32,
    /// Whether the RTC keeps time with the main battery removed.
    pub battery_backed: bool,
}

/// What the device can do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Capabilities {
    /// GNSS receiver (BeiDou/GPS), NMEA through the MCU.
    pub gnss: bool,
    /// Secure element that can hold the device key and sign.
    pub secure_element: bool,
    /// Network for uploads.
    pub network: Network,
    /// Mass-storage mode is unlocked with a password.
    pub mass_storage_password: bool,
}

/// One device model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HwProfile {
    /// Profile id; equals the file name without `.toml`.
    pub id: String,
    /// Human name (Chinese).
    pub name: String,
    /// Kind of device.
    pub kind: DeviceKind,
    /// Whether the Custody agent runs on it.
    pub runs_agent: bool,
    /// MCU serial link; required when the agent runs on the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<SerialSettings>,
    /// Storage.
    pub storage: StorageLayout,
    /// Recording.
    pub recording: RecordingSpec,
    /// Clock.
    pub clock: ClockSpec,
    /// Capabilities.
    pub capabilities: Capabilities,
}

/// A profile that cannot be loaded: which file, and why (with the line for TOML errors).
#[derive(Debug, thiserror::Error)]
#[error("{}: {why}", path.display())]
pub struct ProfileError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong; TOML errors name the line and column.
    pub why: String,
}

/// Newest firmware-bridge protocol version a profile may name.
const MAX_PROTOCOL_VERSION: u8 = 1;

impl HwProfile {
    /// Parses and checks a profile's text; `path` names it in errors and gives the id.
    ///
    /// # Errors
    /// [`ProfileError`] naming the file, and the line for syntax and unknown keys.
    pub fn from_toml(path: &Path, text: &str) -> Result<Self, ProfileError> {
        let err = |why: String| ProfileError {
            path: path.to_path_buf(),
            why,
        };
        let profile: Self = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        profile.validate(path).map_err(err)?;
        Ok(profile)
    }

    /// Loads one profile file.
    ///
    /// # Errors
    /// [`ProfileError`] when unreadable or invalid.
    pub fn load(path: &Path) -> Result<Self, ProfileError> {
        let text = fs::read_to_string(path).map_err(|e| ProfileError {
            path: path.to_path_buf(),
            why: e.to_string(),
        })?;
        Self::from_toml(path, &text)
    }

    /// The clip file-name pattern, parsed.
    ///
    /// # Errors
    /// Never for a loaded profile (checked when loading).
    pub fn file_pattern(&self) -> Result<FileNamePattern, crate::PatternError> {
        self.storage.file_pattern.parse()
    }

    fn validate(&self, path: &Path) -> Result<(), String> {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        if self.id != stem {
            return Err(format!(
                "id {:?} must equal the file name {stem:?}",
                self.id
            ));
        }
        self.file_pattern().map_err(|e| e.to_string())?;
        let dir = &self.storage.recording_dir;
        if dir.is_empty()
            || dir.starts_with('/')
            || dir.split('/').any(|p| p.is_empty() || p == "..")
        {
            return Err(format!(
                "storage.recording-dir {dir:?} must be a relative path inside the storage"
            ));
        }
        match (self.storage.closing, &self.storage.recording_suffix) {
            (Closing::Rename, None) => {
                return Err("storage.closing = \"rename\" needs storage.recording-suffix".into());
            }
            (Closing::StopsGrowing, Some(_)) => {
                return Err("storage.recording-suffix is only for closing = \"rename\"".into());
            }
            _ => {}
        }
        match (self.kind, self.runs_agent, &self.serial) {
            (DeviceKind::LegacyRecorder, true, _) => {
                return Err("a legacy-recorder does not run the agent".into());
            }
            (_, true, None) => {
                return Err("runs-agent = true needs a [serial] section for the MCU link".into());
            }
            _ => {}
        }
        if let Some(s) = &self.serial {
            if !(1..=MAX_PROTOCOL_VERSION).contains(&s.protocol_version) {
                return Err(format!(
                    "serial.protocol-version {} is not one this build speaks (1..={MAX_PROTOCOL_VERSION})",
                    s.protocol_version
                ));
            }
            if !matches!(s.data_bits, 7 | 8)
                || !matches!(s.stop_bits, 1 | 2)
                || s.baud == 0
                || s.response_timeout_ms == 0
            {
                return Err("serial: data-bits 7 or 8, stop-bits 1 or 2, baud and response-timeout-ms above 0".into());
            }
        }
        if self.recording.segment_seconds == 0
            || self.storage.capacity_gib == 0
            || self.recording.bitrate_kbps == 0
        {
            return Err("recording.segment-seconds, recording.bitrate-kbps and storage.capacity-gib must be above 0".into());
        }
        Ok(())
    }
}

/// The `*.toml` files in a folder, sorted.
///
/// # Errors
/// The folder cannot be read.
pub fn profile_files(dir: &Path) -> Result<Vec<PathBuf>, ProfileError> {
    let read_err = |e: std::io::Error| ProfileError {
        path: dir.to_path_buf(),
        why: e.to_string(),
    };
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(read_err)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(read_err)?;
    paths.retain(|p| p.extension().is_some_and(|e| e == "toml"));
    paths.sort();
    Ok(paths)
}

/// Loads every `*.toml` profile in a folder, sorted by file name.
///
/// # Errors
/// The first file that cannot be loaded, or a folder that cannot be read.
pub fn load_dir(dir: &Path) -> Result<Vec<HwProfile>, ProfileError> {
    profile_files(dir)?
        .iter()
        .map(|p| HwProfile::load(p))
        .collect()
}

/// The folder of profiles shipped with this crate.
pub fn shipped_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles")
}
