//! `agent.toml`: the file as IT writes it, then the validated configuration the agent runs
//! on. Unknown keys are errors: a typo must not fall back to a default.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::FixedOffset;
use custody::{Agency, NoteVerifier, NumberingScheme, Officer};
use hw_profiles::HwProfile;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct AgentFile {
    serial: String,
    hw_profile: String,
    profiles_dir: Option<PathBuf>,
    storage: PathBuf,
    state_dir: PathBuf,
    numbering: Option<PathBuf>,
    close_idle_ms: Option<u64>,
    utc_offset: Option<String>,
    clock_error_ms: Option<u64>,
    officer: OfficerFile,
    agency: AgencyFile,
    bridge: Option<BridgeFile>,
    station: Option<StationFile>,
    telemetry: Option<TelemetryFile>,
    upload: Option<UploadFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct UploadFile {
    url: String,
    ca: PathBuf,
    auto: Option<bool>,
    retry_seconds: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct TelemetryFile {
    broker: String,
    interval_seconds: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct StationFile {
    vkey: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct BridgeFile {
    port: PathBuf,
    mass_storage_password: Option<String>,
    secure_element_slot: Option<u8>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct OfficerFile {
    name: String,
    cert_no: String,
    police_no: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct AgencyFile {
    code: String,
    name: String,
}

/// What the agent runs on: checked once when loaded, then trusted.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// 产品序号.
    pub serial: String,
    /// The device model.
    pub profile: HwProfile,
    /// The device storage root (where the recorder writes and the station reads).
    pub storage: PathBuf,
    /// Where the manifest database and the device key live (not on the removable storage).
    pub state_dir: PathBuf,
    /// The agency's numbering scheme, if configured.
    pub numbering: Option<NumberingScheme>,
    /// A clip that stops growing for this long is closed (profiles that do not rename).
    pub close_idle: Duration,
    /// The device's UTC offset for record times (China: +08:00).
    pub utc_offset: FixedOffset,
    /// Estimated clock error to state in records until a time sync measures it.
    pub clock_error_ms: u64,
    /// The officer the device is issued to.
    pub officer: Officer,
    /// The agency.
    pub agency: Agency,
    /// The MCU's serial port, if the agent reads RTC, GNSS and recording events from it.
    pub bridge_port: Option<PathBuf>,
    /// Password that opens USB mass-storage mode when the device docks: the agent asks the
    /// MCU for it once the clips are sealed. Without it the dock's host must ask.
    pub mass_storage_password: Option<String>,
    /// The secure-element key slot that signs records, when the device key lives in the
    /// MCU's secure element rather than in the state folder's key file.
    pub secure_element_slot: Option<u8>,
    /// The station's upload endpoint, for terminals with a network.
    pub upload: Option<crate::upload::UploadSettings>,
    /// The MQTT broker telemetry goes to, if any.
    pub telemetry: Option<TelemetrySettings>,
    /// The station's verifier key (`custody-station key`): receipts it signs free space.
    /// Without it, no receipt is trusted and nothing is ever freed.
    pub station: Option<NoteVerifier>,
}

/// Where telemetry goes and how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetrySettings {
    /// Broker host name or address.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Time between periodic messages (IT may change it live through `config`).
    pub interval: Duration,
}

/// Default time between telemetry messages.
const TELEMETRY_INTERVAL_SECONDS: u64 = 60;

impl TelemetrySettings {
    fn from_file(file: &TelemetryFile) -> anyhow::Result<Self> {
        let (host, port) = custody::telemetry::parse_broker(&file.broker).ok_or_else(|| {
            anyhow::anyhow!("telemetry.broker: {:?} is not HOST:PORT", file.broker)
        })?;
        let secs = file.interval_seconds.unwrap_or(TELEMETRY_INTERVAL_SECONDS);
        anyhow::ensure!(secs >= 1, "telemetry.interval-seconds must be at least 1");
        Ok(Self {
            host,
            port,
            interval: Duration::from_secs(secs),
        })
    }
}

/// Default idle time before a non-renaming recorder's clip counts as closed, in ms.
const DEFAULT_CLOSE_IDLE_MS: u64 = 3000;
/// Default clock error stated before any sync: an RTC with no recent sync, in ms.
const DEFAULT_CLOCK_ERROR_MS: u64 = 2000;

impl AgentConfig {
    /// Loads and checks `agent.toml`; relative paths are relative to its folder.
    ///
    /// # Errors
    /// A message naming the file and the problem (TOML errors give the line).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_toml(&text, base).with_context(|| format!("{}", path.display()))
    }

    /// Parses and checks configuration text; relative paths are taken from `base`.
    ///
    /// # Errors
    /// What is wrong, naming the key.
    pub fn from_toml(text: &str, base: &Path) -> anyhow::Result<Self> {
        use anyhow::{Context as _, bail};
        let file: AgentFile = toml::from_str(text)?;
        custody::check_serial(&file.serial)?;
        let profiles_dir = file
            .profiles_dir
            .map_or_else(hw_profiles::shipped_dir, |d| base.join(d));
        let profile = hw_profiles::load_dir(&profiles_dir)?
            .into_iter()
            .find(|p| p.id == file.hw_profile)
            .with_context(|| {
                format!(
                    "hw-profile {:?} not found in {}",
                    file.hw_profile,
                    profiles_dir.display()
                )
            })?;
        if !profile.runs_agent {
            bail!(
                "hw-profile {} is a model the agent does not run on",
                profile.id
            );
        }
        let numbering = match file.numbering {
            Some(p) => {
                let p = base.join(p);
                let text = std::fs::read_to_string(&p)
                    .with_context(|| format!("reading numbering template {}", p.display()))?;
                Some(
                    NumberingScheme::from_toml(&text)
                        .map_err(anyhow::Error::msg)
                        .with_context(|| format!("numbering template {}", p.display()))?,
                )
            }
            None => None,
        };
        let utc_offset = file.utc_offset.as_deref().unwrap_or("+08:00");
        let utc_offset: FixedOffset = utc_offset
            .parse()
            .map_err(|_| anyhow::anyhow!("utc-offset {utc_offset:?} is not like +08:00"))?;
        if file.officer.name.trim().is_empty() || file.officer.cert_no.trim().is_empty() {
            bail!("officer.name and officer.cert-no are required");
        }
        let secure_element_slot = file.bridge.as_ref().and_then(|b| b.secure_element_slot);
        if secure_element_slot.is_some() && !profile.capabilities.secure_element {
            bail!(
                "bridge.secure-element-slot: model {} has no secure element",
                profile.id
            );
        }
        Ok(Self {
            serial: file.serial,
            profile,
            storage: base.join(file.storage),
            state_dir: base.join(file.state_dir),
            numbering,
            close_idle: Duration::from_millis(file.close_idle_ms.unwrap_or(DEFAULT_CLOSE_IDLE_MS)),
            utc_offset,
            clock_error_ms: file.clock_error_ms.unwrap_or(DEFAULT_CLOCK_ERROR_MS),
            officer: Officer {
                name: file.officer.name,
                cert_no: file.officer.cert_no,
                police_no: file.officer.police_no,
            },
            agency: Agency {
                code: file.agency.code,
                name: file.agency.name,
            },
            mass_storage_password: file
                .bridge
                .as_ref()
                .and_then(|b| b.mass_storage_password.clone()),
            secure_element_slot,
            bridge_port: file.bridge.map(|b| base.join(b.port)),
            station: file
                .station
                .map(|s| NoteVerifier::parse(&s.vkey))
                .transpose()
                .map_err(|e| anyhow::anyhow!("station.vkey: {e}"))?,
            upload: match file.upload {
                Some(u) if !u.url.starts_with("https://") => {
                    anyhow::bail!("upload.url must be https://…, not {:?}", u.url)
                }
                Some(u) => Some(crate::upload::UploadSettings {
                    url: u.url,
                    ca: base.join(u.ca),
                    auto: u.auto.unwrap_or(true),
                    retry: Duration::from_secs(u.retry_seconds.unwrap_or(300).max(1)),
                }),
                None => None,
            },
            telemetry: file
                .telemetry
                .as_ref()
                .map(TelemetrySettings::from_file)
                .transpose()?,
        })
    }

    /// The recording folder.
    pub fn recording_dir(&self) -> PathBuf {
        self.storage.join(&self.profile.storage.recording_dir)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config_dir() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../config")
    }

    #[test]
    fn the_shipped_example_loads() {
        let cfg = AgentConfig::load(&config_dir().join("agent.example.toml")).unwrap();
        assert_eq!(
            (cfg.serial.as_str(), cfg.profile.id.as_str()),
            ("A100001", "ga947-recorder")
        );
        assert!(cfg.numbering.is_some());
        assert_eq!(cfg.utc_offset.local_minus_utc(), 8 * 3600);
    }

    #[test]
    fn typos_and_bad_values_are_refused() {
        let text = std::fs::read_to_string(config_dir().join("agent.example.toml")).unwrap();
        for (from, to, why) in [
            ("close-idle-ms", "close-idle-msec", "close-idle-msec"),
            (
                "hw-profile = \"ga947-recorder\"",
                "hw-profile = \"legacy-recorder\"",
                "does not run on",
            ),
            (
                "hw-profile = \"ga947-recorder\"",
                "hw-profile = \"nope\"",
                "not found",
            ),
            ("serial = \"A100001\"", "serial = \"A1/../\"", "serial"),
            (
                "utc-offset = \"+08:00\"",
                "utc-offset = \"CST\"",
                "utc-offset",
            ),
        ] {
            let err = AgentConfig::from_toml(&text.replace(from, to), &config_dir()).unwrap_err();
            assert!(format!("{err:#}").contains(why), "{to}: {err:#}");
        }
    }
}
