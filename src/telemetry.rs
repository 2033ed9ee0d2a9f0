//! Fleet telemetry over MQTT: the topics, and the messages agents publish and the station
//! follows. Every device has three topics under `custody/<serial>/`:
//!
//! | topic | who | retained | payload |
//! |---|---|---|---|
//! | `status` | agent (and the broker, as its last will) | yes | `online` / `offline` |
//! | `telemetry` | agent, periodic and on change | yes | [`Telemetry`] JSON |
//! | `config` | IT | yes | [`DeviceConfig`] JSON, applied live |

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

/// Format name of version 1 telemetry.
pub const TELEMETRY_V1: &str = "custody.telemetry/1";
/// Largest telemetry or config message accepted, in bytes (checked before parsing).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// The `status` payload while the agent is connected.
pub const ONLINE: &str = "online";
/// The `status` payload after a clean stop, and the agent's last will.
pub const OFFLINE: &str = "offline";
/// Every device's telemetry (for the station's subscription).
pub const ALL_TELEMETRY: &str = "custody/+/telemetry";

/// `custody/<serial>/status`.
pub fn status_topic(serial: &str) -> String {
    format!("custody/{serial}/status")
}

/// `custody/<serial>/telemetry`.
pub fn telemetry_topic(serial: &str) -> String {
    format!("custody/{serial}/telemetry")
}

/// `custody/<serial>/config`.
pub fn config_topic(serial: &str) -> String {
    format!("custody/{serial}/config")
}

/// A broker address as configured: `HOST:PORT`.
pub fn parse_broker(text: &str) -> Option<(String, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    let port = port.parse().ok()?;
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

/// The serial in a `custody/<serial>/<leaf>` topic.
pub fn topic_serial(topic: &str) -> Option<&str> {
    let mut parts = topic.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("custody"), Some(serial), Some(_), None) => Some(serial),
        _ => None,
    }
}

/// What a device reports about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Telemetry {
    /// [`TELEMETRY_V1`].
    pub format: String,
    /// Product serial.
    pub serial: String,
    /// When the agent took this reading (device clock).
    pub at: DateTime<FixedOffset>,
    /// The agent's version.
    pub agent_version: String,
    /// The MCU firmware version, if the link is up.
    pub firmware: Option<String>,
    /// Battery charge, percent, if the MCU reported it.
    pub battery_percent: Option<u8>,
    /// On the dock's charger.
    pub charging: Option<bool>,
    /// Free bytes on the device storage.
    pub storage_free_bytes: Option<u64>,
    /// Sealed clips still on the device, not yet freed under a station receipt.
    pub pending_clips: u64,
    /// When the oldest of those clips finished recording (the storage deadline runs from
    /// it).
    pub oldest_pending_recorded: Option<DateTime<FixedOffset>>,
    /// The error the agent states for its clock now, in milliseconds.
    pub clock_error_ms: u64,
    /// When the RTC was last synchronised, if ever.
    pub clock_last_sync: Option<DateTime<Utc>>,
    /// The last GNSS fix, if any.
    pub gnss: Option<GnssState>,
}

/// A GNSS fix as telemetry states it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GnssState {
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
    /// Seconds since the fix arrived.
    pub age_seconds: u64,
    /// Satellites used, if reported.
    pub satellites: Option<u8>,
    /// Horizontal dilution of precision, if reported.
    pub hdop: Option<f64>,
}

/// Settings IT pushes to a device (retained), applied without a restart. Absent fields
/// leave the agent's setting as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// Seconds between periodic telemetry messages (at least 1).
    pub telemetry_interval_seconds: Option<u64>,
    /// The officer the device is now issued to (领用): records sealed from now on name
    /// them.
    pub officer: Option<crate::Officer>,
    /// The agency's numbering template (the TOML of `config/numbering.example.toml`),
    /// replacing the configured one for bindings from now on.
    pub numbering: Option<String>,
}

/// A telemetry or config message that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// Larger than [`MAX_MESSAGE_BYTES`].
    #[error("message is {0} bytes, more than the {MAX_MESSAGE_BYTES} accepted")]
    TooLarge(usize),
    /// Not JSON of the expected shape (or an unknown field).
    #[error("malformed message: {0}")]
    Malformed(#[from] serde_json::Error),
    /// A numbering template that does not parse.
    #[error("numbering template: {0}")]
    Numbering(String),
    /// An officer without a name or certificate number.
    #[error("officer needs a name and a cert_no (执法证号)")]
    Officer,
    /// Another format version.
    #[error("unknown telemetry format {0:?}")]
    Format(String),
    /// The message names another device than its topic.
    #[error("telemetry for {inside} published under {topic}")]
    WrongTopic {
        /// The serial inside.
        inside: String,
        /// The serial of the topic.
        topic: String,
    },
}

impl Telemetry {
    /// Parses a message received on `custody/<topic_serial>/telemetry`.
    ///
    /// # Errors
    /// [`TelemetryError`] when it is too large, malformed, of another format, or names
    /// another device.
    pub fn parse(bytes: &[u8], topic_serial: &str) -> Result<Self, TelemetryError> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(TelemetryError::TooLarge(bytes.len()));
        }
        let t: Self = serde_json::from_slice(bytes)?;
        if t.format != TELEMETRY_V1 {
            return Err(TelemetryError::Format(t.format));
        }
        if t.serial != topic_serial {
            return Err(TelemetryError::WrongTopic {
                inside: t.serial,
                topic: topic_serial.into(),
            });
        }
        Ok(t)
    }
}

impl DeviceConfig {
    /// Parses a retained config message.
    ///
    /// # Errors
    /// [`TelemetryError`] when it is too large or malformed.
    pub fn parse(bytes: &[u8]) -> Result<Self, TelemetryError> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(TelemetryError::TooLarge(bytes.len()));
        }
        let cfg: Self = serde_json::from_slice(bytes)?;
        if let Some(text) = &cfg.numbering {
            crate::NumberingScheme::from_toml(text).map_err(TelemetryError::Numbering)?;
        }
        if cfg
            .officer
            .as_ref()
            .is_some_and(|o| o.name.trim().is_empty() || o.cert_no.trim().is_empty())
        {
            return Err(TelemetryError::Officer);
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Telemetry {
        Telemetry {
            format: TELEMETRY_V1.into(),
            serial: "A100001".into(),
            at: "2026-11-23T16:00:00+08:00".parse().unwrap(),
            agent_version: "0.1.0".into(),
            firmware: Some("1.2".into()),
            battery_percent: Some(80),
            charging: Some(false),
            storage_free_bytes: Some(1 << 30),
            pending_clips: 3,
            oldest_pending_recorded: Some("2026-11-23T09:00:00+08:00".parse().unwrap()),
            clock_error_ms: 50,
            clock_last_sync: None,
            gnss: None,
        }
    }

    #[test]
    fn telemetry_round_trips_and_is_checked_against_its_topic() {
        let bytes = serde_json::to_vec(&sample()).unwrap();
        assert_eq!(Telemetry::parse(&bytes, "A100001").unwrap(), sample());
        assert!(matches!(
            Telemetry::parse(&bytes, "A100002"),
            Err(TelemetryError::WrongTopic { .. })
        ));
        let other = bytes
            .windows(TELEMETRY_V1.len())
            .position(|w| w == TELEMETRY_V1.as_bytes())
            .unwrap();
        let mut v2 = bytes.clone();
        v2[other + TELEMETRY_V1.len() - 1] = b'2';
        assert!(matches!(
            Telemetry::parse(&v2, "A100001"),
            Err(TelemetryError::Format(_))
        ));
        assert!(Telemetry::parse(&bytes[..bytes.len() / 2], "A100001").is_err());
        assert!(matches!(
            Telemetry::parse(&vec![b' '; MAX_MESSAGE_BYTES + 1], "A100001"),
            Err(TelemetryError::TooLarge(_))
        ));
    }

    #[test]
    fn broker_addresses_are_host_and_port() {
        assert_eq!(
            parse_broker("127.0.0.1:1883"),
            Some(("127.0.0.1".into(), 1883))
        );
        assert_eq!(parse_broker("mqtt.example:99999"), None);
        assert_eq!(parse_broker(":1883"), None);
        assert_eq!(parse_broker("mqtt.example"), None);
    }

    #[test]
    fn topics_name_their_device() {
        assert_eq!(topic_serial(&telemetry_topic("A100001")), Some("A100001"));
        assert_eq!(topic_serial("custody/A1/telemetry/extra"), None);
        assert_eq!(topic_serial("other/A1/telemetry"), None);
    }

    #[test]
    fn a_config_with_unknown_settings_is_refused() {
        assert_eq!(
            DeviceConfig::parse(br#"{"telemetry_interval_seconds": 5}"#)
                .unwrap()
                .telemetry_interval_seconds,
            Some(5)
        );
        assert!(DeviceConfig::parse(br#"{"wipe": true}"#).is_err());
        let officer = DeviceConfig::parse(
            r#"{"officer": {"name": "李四", "cert_no": "42060119009"}}"#.as_bytes(),
        )
        .unwrap();
        assert_eq!(officer.officer.unwrap().cert_no, "42060119009");
        assert!(matches!(
            DeviceConfig::parse(br#"{"officer": {"name": "", "cert_no": "1"}}"#),
            Err(TelemetryError::Officer)
        ));
        assert!(matches!(
            DeviceConfig::parse(br#"{"numbering": "not = [toml"}"#),
            Err(TelemetryError::Numbering(_))
        ));
    }
}
