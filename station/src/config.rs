//! `station.toml`: the file as IT writes it, then the validated configuration the station
//! runs on. Unknown keys are errors: a typo must not fall back to a default.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use chrono::FixedOffset;
use serde::Deserialize;

use crate::store::s3::{MIN_PART_SIZE, S3Settings};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct StationFile {
    dock_root: PathBuf,
    data_dir: PathBuf,
    origin: String,
    parallel_copies: Option<usize>,
    reserve_bytes: Option<u64>,
    immutable_flag: Option<bool>,
    utc_offset: Option<String>,
    deadline: Option<DeadlineFile>,
    telemetry: Option<TelemetryFile>,
    upload: Option<UploadFile>,
    web: Option<WebFile>,
    store: Option<StoreFile>,
    s3: Option<S3File>,
    numbering: Option<PathBuf>,
    calendar_dir: Option<PathBuf>,
    discs: Option<DiscsFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct DiscsFile {
    check_every_years: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct StoreFile {
    backend: Option<String>,
    replicate: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct S3File {
    endpoint: String,
    bucket: String,
    region: Option<String>,
    prefix: Option<String>,
    credentials_file: Option<PathBuf>,
    retention_days: u32,
    legal_hold: Option<bool>,
    part_size_mib: Option<usize>,
    ca: Option<PathBuf>,
}

/// Where evidence objects are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreBackend {
    /// The local write-once directory `data/store` (the default).
    Local,
    /// The S3 Object Lock bucket of `[s3]`.
    S3(S3Settings),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct UploadFile {
    listen: String,
    cert: PathBuf,
    key: PathBuf,
    max_connections: Option<usize>,
    handshake_timeout_seconds: Option<u64>,
    idle_timeout_seconds: Option<u64>,
}

/// The HTTPS upload endpoint for networked terminals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSettings {
    /// Address and port to listen on.
    pub listen: std::net::SocketAddr,
    /// TLS certificate chain (PEM) the terminals trust.
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// How many clients it serves at once, and how long it waits for a silent one.
    pub limits: UploadLimits,
}

/// The upload endpoint's bounds, so that a flood of connections or clients that stall
/// cannot hold its places: `[upload] max-connections`, `handshake-timeout-seconds`,
/// `idle-timeout-seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadLimits {
    /// Connections served at once (default 64: a fleet at a shift change); more wait in
    /// the kernel's accept queue, not in memory.
    pub connections: usize,
    /// A TLS handshake not finished by then is dropped (default 10 s).
    pub handshake: std::time::Duration,
    /// A connection that sends no request header, or no body bytes, for this long is
    /// dropped (default 30 s).
    pub idle: std::time::Duration,
}

/// The `[upload]` table: address, certificate and bounds.
fn upload_settings(u: UploadFile, base: &Path, path: &Path) -> Result<UploadSettings, ConfigError> {
    let listen = u.listen.parse().map_err(|e| ConfigError::Invalid {
        path: path.into(),
        field: "upload.listen",
        why: format!("{:?}: {e}", u.listen),
    })?;
    Ok(UploadSettings {
        listen,
        limits: upload_limits(&u, path)?,
        cert: base.join(u.cert),
        key: base.join(u.key),
    })
}

/// `[upload] max-connections`, `handshake-timeout-seconds` and `idle-timeout-seconds`,
/// each at least 1, the defaults where absent.
fn upload_limits(u: &UploadFile, path: &Path) -> Result<UploadLimits, ConfigError> {
    let invalid = |field, why: &str| ConfigError::Invalid {
        path: path.into(),
        field,
        why: why.into(),
    };
    let d = UploadLimits::default();
    let secs = |v: Option<u64>, default, field| match v {
        Some(0) => Err(invalid(field, "must be at least 1 second")),
        Some(s) => Ok(std::time::Duration::from_secs(s)),
        None => Ok(default),
    };
    Ok(UploadLimits {
        connections: match u.max_connections {
            Some(0) => return Err(invalid("upload.max-connections", "must be at least 1")),
            Some(n) => n,
            None => d.connections,
        },
        handshake: secs(
            u.handshake_timeout_seconds,
            d.handshake,
            "upload.handshake-timeout-seconds",
        )?,
        idle: secs(
            u.idle_timeout_seconds,
            d.idle,
            "upload.idle-timeout-seconds",
        )?,
    })
}

impl Default for UploadLimits {
    fn default() -> Self {
        Self {
            connections: 64,
            handshake: std::time::Duration::from_secs(10),
            idle: std::time::Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct WebFile {
    listen: String,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    #[serde(default)]
    dock_without_login: bool,
}

/// The station web page (采集站工作台): where it listens, and its TLS certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSettings {
    /// Address and port to listen on.
    pub listen: std::net::SocketAddr,
    /// The agency certificate chain and key (PEM) for HTTPS; plain HTTP only on loopback.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `dock-without-login`: the dock page (progress only, no footage) opens without a
    /// login for a browser on the station itself (a loopback peer), its own screen.
    pub dock_without_login: bool,
}

impl WebSettings {
    /// Settings for `listen`, checked: without a certificate, only a loopback address.
    ///
    /// # Errors
    /// Why not: plain HTTP off loopback, or half a certificate.
    pub fn new(
        listen: std::net::SocketAddr,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
    ) -> Result<Self, String> {
        let tls = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => return Err("give both cert and key, or neither".into()),
        };
        if tls.is_none() && !listen.ip().is_loopback() {
            return Err(format!(
                "{listen} is not loopback: serve HTTPS there (web.cert and web.key)"
            ));
        }
        Ok(Self {
            listen,
            tls,
            dock_without_login: false,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct TelemetryFile {
    broker: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct DeadlineFile {
    hours_after_return: Option<u32>,
    warn_before_minutes: Option<u32>,
    #[serde(default)]
    reasons: BTreeMap<String, String>,
}

/// The agency's storage-deadline policy (当日存储, 最迟返回单位后 24 小时).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadlinePolicy {
    /// With a lawful delay reason, the latest storage time after the device returned.
    pub hours_after_return: u32,
    /// `overdue` warns about clips this close to their deadline.
    pub warn_before_minutes: u32,
    /// Lawful delay reasons: code → text shown to clerks (e.g. `remote` → 偏远地区当日无法返回).
    pub reasons: BTreeMap<String, String>,
}

/// What the station runs on: checked once when loaded, then trusted.
#[derive(Debug, Clone)]
pub struct StationConfig {
    /// Where docked devices appear, one folder per slot (a USB mass-storage mount each).
    pub dock_root: PathBuf,
    /// The station's own data: ledger, store, quarantine, reports, key.
    pub data_dir: PathBuf,
    /// The transparency log's origin (first line of every checkpoint), unique per station.
    pub origin: String,
    /// Clips copied at once across all slots; each holds one buffer of [`crate::BUF_LEN`].
    pub parallel_copies: NonZeroUsize,
    /// Free space the store keeps; an ingest that would go below stops cleanly.
    pub reserve_bytes: u64,
    /// Set the immutable flag (`chattr +i`) on stored objects; needs CAP_LINUX_IMMUTABLE.
    pub immutable_flag: bool,
    /// The agency's UTC offset: "the same day" is a local day (China: +08:00).
    pub utc_offset: FixedOffset,
    /// The storage deadline policy.
    pub deadline: DeadlinePolicy,
    /// The MQTT broker (host, port) whose device telemetry the station follows, if any.
    pub telemetry_broker: Option<(String, u16)>,
    /// The upload endpoint, if terminals upload over the network.
    pub upload: Option<UploadSettings>,
    /// The web page, served inside `serve` when configured.
    pub web: Option<WebSettings>,
    /// Where evidence objects are kept.
    pub store: StoreBackend,
    /// With the local store: the bucket every object is also pushed to, in the background.
    pub replicate_to: Option<S3Settings>,
    /// The agency's numbering template: case numbers in any spelling find their case.
    pub numbering: Option<custody::NumberingScheme>,
    /// The official calendar (working days): the shipped years plus the year files of
    /// `calendar-dir` (newer State Council notices).
    pub calendar: custody::Calendar,
    /// Years between periodic checks of a burned disc (`[discs] check-every-years`).
    pub disc_check_years: u32,
}

/// Default reserve: keep 1 GiB free for the ledger and the system.
const DEFAULT_RESERVE_BYTES: u64 = 1 << 30;
/// Default copies at once: two per core on the 2-core reference machine (copies wait on disk).
const DEFAULT_PARALLEL_COPIES: usize = 4;

/// China Standard Time, UTC+08:00, in seconds: the default agency offset.
const CHINA_STANDARD_TIME_SECS: i32 = 8 * 3600;

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Unreadable file.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not valid TOML for this schema.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (line and column included).
        message: String,
    },
    /// A value out of range.
    #[error("{path}: {field}: {why}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key.
        field: &'static str,
        /// Why.
        why: String,
    },
}

impl StationConfig {
    /// Loads and checks `station.toml`; relative paths are relative to its folder.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file and what is wrong.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and checks the text of `station.toml` found at `path`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file and what is wrong.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let file: StationFile = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: e.to_string(),
        })?;
        let invalid = |field, why: String| ConfigError::Invalid {
            path: path.into(),
            field,
            why,
        };
        let base = path.parent().unwrap_or(Path::new("."));
        if file.origin.is_empty() || file.origin.chars().any(|c| c.is_whitespace() || c == '+') {
            return Err(invalid(
                "origin",
                "must be non-empty, without spaces or '+' (it names the log's key)".into(),
            ));
        }
        let parallel_copies =
            NonZeroUsize::new(file.parallel_copies.unwrap_or(DEFAULT_PARALLEL_COPIES))
                .ok_or_else(|| invalid("parallel-copies", "must be at least 1".into()))?;
        let utc_offset = match file.utc_offset {
            None => FixedOffset::east_opt(CHINA_STANDARD_TIME_SECS)
                .ok_or_else(|| invalid("utc-offset", "default offset out of range".into()))?,
            Some(text) => text
                .parse::<FixedOffset>()
                .map_err(|e| invalid("utc-offset", format!("{text:?}: {e}")))?,
        };
        let deadline = file.deadline.unwrap_or(DeadlineFile {
            hours_after_return: None,
            warn_before_minutes: None,
            reasons: BTreeMap::new(),
        });
        let hours_after_return = deadline.hours_after_return.unwrap_or(24);
        if !(1..=72).contains(&hours_after_return) {
            return Err(invalid(
                "deadline.hours-after-return",
                format!("{hours_after_return} is outside 1..=72"),
            ));
        }
        let telemetry_broker = match file.telemetry {
            None => None,
            Some(t) => Some(custody::telemetry::parse_broker(&t.broker).ok_or_else(|| {
                invalid(
                    "telemetry.broker",
                    format!("{:?} is not HOST:PORT", t.broker),
                )
            })?),
        };
        let upload = file
            .upload
            .map(|u| upload_settings(u, base, path))
            .transpose()?;
        let web = match file.web {
            None => None,
            Some(w) => Some(
                WebSettings::new(
                    w.listen
                        .parse()
                        .map_err(|e| invalid("web.listen", format!("{:?}: {e}", w.listen)))?,
                    w.cert.map(|c| base.join(c)),
                    w.key.map(|k| base.join(k)),
                )
                .map(|settings| WebSettings {
                    dock_without_login: w.dock_without_login,
                    ..settings
                })
                .map_err(|why| invalid("web", why))?,
            ),
        };
        let (store, replicate_to) = parse_store(file.store, file.s3, base, path)?;
        let (numbering, calendar, disc_check_years) =
            case_file_settings(file.numbering, file.calendar_dir, file.discs, base, path)?;
        Ok(Self {
            numbering,
            calendar,
            disc_check_years,
            store,
            replicate_to,
            upload,
            web,
            telemetry_broker,
            dock_root: base.join(file.dock_root),
            data_dir: base.join(file.data_dir),
            origin: file.origin,
            parallel_copies,
            reserve_bytes: file.reserve_bytes.unwrap_or(DEFAULT_RESERVE_BYTES),
            immutable_flag: file.immutable_flag.unwrap_or(false),
            utc_offset,
            deadline: DeadlinePolicy {
                hours_after_return,
                warn_before_minutes: deadline.warn_before_minutes.unwrap_or(120),
                reasons: deadline.reasons,
            },
        })
    }
}

/// The case-file settings: the numbering template, the calendar (shipped years plus
/// `calendar-dir`), and the years between periodic disc checks.
fn case_file_settings(
    numbering: Option<PathBuf>,
    calendar_dir: Option<PathBuf>,
    discs: Option<DiscsFile>,
    base: &Path,
    path: &Path,
) -> Result<(Option<custody::NumberingScheme>, custody::Calendar, u32), ConfigError> {
    let invalid = |field, why: String| ConfigError::Invalid {
        path: path.into(),
        field,
        why,
    };
    let numbering = match numbering {
        None => None,
        Some(p) => {
            let p = base.join(p);
            let text = std::fs::read_to_string(&p)
                .map_err(|e| invalid("numbering", format!("{}: {e}", p.display())))?;
            Some(
                custody::NumberingScheme::from_toml(&text)
                    .map_err(|e| invalid("numbering", format!("{}: {e}", p.display())))?,
            )
        }
    };
    let mut calendar = custody::Calendar::embedded()
        .map_err(|e| invalid("calendar-dir", format!("the shipped calendar: {e}")))?;
    if let Some(dir) = calendar_dir {
        calendar
            .load_dir(&base.join(dir))
            .map_err(|e| invalid("calendar-dir", e.to_string()))?;
    }
    let years = discs
        .and_then(|d| d.check_every_years)
        .unwrap_or(crate::disc::CHECK_EVERY_YEARS);
    if !(1..=10).contains(&years) {
        return Err(invalid(
            "discs.check-every-years",
            format!("{years} is outside 1..=10"),
        ));
    }
    Ok((numbering, calendar, years))
}

/// `[store]` and `[s3]`: where objects are kept, and where they are replicated.
fn parse_store(
    store: Option<StoreFile>,
    s3: Option<S3File>,
    base: &Path,
    path: &Path,
) -> Result<(StoreBackend, Option<S3Settings>), ConfigError> {
    let invalid = |field, why: String| ConfigError::Invalid {
        path: path.into(),
        field,
        why,
    };
    let s3 = match s3 {
        None => None,
        Some(f) => {
            let part_size = f.part_size_mib.unwrap_or(8) << 20;
            if !(MIN_PART_SIZE..=(512 << 20)).contains(&part_size) {
                return Err(invalid("s3.part-size-mib", "must be 5..=512".into()));
            }
            if f.retention_days == 0 {
                return Err(invalid(
                    "s3.retention-days",
                    "must be at least 1 (the agency's retention period)".into(),
                ));
            }
            Some(S3Settings {
                endpoint: f.endpoint,
                bucket: f.bucket,
                region: f.region.unwrap_or_else(|| "us-east-1".into()),
                prefix: f.prefix.unwrap_or_default(),
                credentials_file: f.credentials_file.map(|p| base.join(p)),
                retention_days: f.retention_days,
                legal_hold: f.legal_hold.unwrap_or(false),
                part_size,
                ca: f.ca.map(|p| base.join(p)),
            })
        }
    };
    let store_file = store.unwrap_or(StoreFile {
        backend: None,
        replicate: None,
    });
    let replicate = store_file.replicate.unwrap_or(false);
    let s3_backend = match store_file.backend.as_deref() {
        None | Some("local") => false,
        Some("s3") => true,
        Some(other) => {
            return Err(invalid(
                "store.backend",
                format!("{other:?} is not \"local\" or \"s3\""),
            ));
        }
    };
    Ok(match (s3, s3_backend, replicate) {
        (None, false, false) => (StoreBackend::Local, None),
        (Some(s3), false, true) => (StoreBackend::Local, Some(s3)),
        (Some(s3), true, false) => (StoreBackend::S3(s3), None),
        (None, _, _) => {
            return Err(invalid("s3", "is needed by [store] and missing".into()));
        }
        (Some(_), false, false) => {
            return Err(invalid(
                "s3",
                "is set but unused: set [store] backend = \"s3\" or replicate = true".into(),
            ));
        }
        (Some(_), true, true) => {
            return Err(invalid(
                "store.replicate",
                "replicates the local store; with backend = \"s3\" there is none".into(),
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_example_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/station.example.toml");
        let cfg = StationConfig::load(&path).unwrap();
        assert_eq!(cfg.deadline.hours_after_return, 24);
        assert!(!cfg.deadline.reasons.is_empty());
        assert!(cfg.dock_root.is_absolute());
    }

    #[test]
    fn typos_and_bad_values_are_errors_naming_the_key() {
        let p = Path::new("/etc/custody/station.toml");
        let base = "dock-root = \"d\"\ndata-dir = \"x\"\norigin = \"o\"\n";
        let err = StationConfig::parse(&format!("{base}paralel-copies = 2\n"), p).unwrap_err();
        assert!(err.to_string().contains("paralel-copies"), "{err}");
        let err = StationConfig::parse(&format!("{base}parallel-copies = 0\n"), p).unwrap_err();
        assert!(err.to_string().contains("parallel-copies"), "{err}");
        let err = StationConfig::parse(&format!("{base}utc-offset = \"8\"\n"), p).unwrap_err();
        assert!(err.to_string().contains("utc-offset"), "{err}");
        let bad_origin = "dock-root = \"d\"\ndata-dir = \"x\"\norigin = \"a b\"\n";
        let err = StationConfig::parse(bad_origin, p).unwrap_err();
        assert!(err.to_string().contains("origin"), "{err}");
        let s3 =
            "[s3]\nendpoint = \"http://127.0.0.1:7480\"\nbucket = \"ev\"\nretention-days = 3650\n";
        let err = StationConfig::parse(&format!("{base}{s3}"), p).unwrap_err();
        assert!(err.to_string().contains("unused"), "{err}");
        let err =
            StationConfig::parse(&format!("{base}[store]\nbackend = \"s3\"\n"), p).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
        let err = StationConfig::parse(&format!("{base}[store]\nbackend = \"nfs\"\n{s3}"), p)
            .unwrap_err();
        assert!(err.to_string().contains("store.backend"), "{err}");
        let cfg =
            StationConfig::parse(&format!("{base}[store]\nreplicate = true\n{s3}"), p).unwrap();
        assert_eq!(cfg.store, StoreBackend::Local);
        let target = cfg.replicate_to.unwrap();
        assert_eq!((target.retention_days, target.part_size), (3650, 8 << 20));
        let cfg =
            StationConfig::parse(&format!("{base}[store]\nbackend = \"s3\"\n{s3}"), p).unwrap();
        assert!(matches!(cfg.store, StoreBackend::S3(ref s) if s.bucket == "ev"));
        let upload = "[upload]\nlisten = \"127.0.0.1:8443\"\ncert = \"c.pem\"\nkey = \"k.pem\"\n";
        let cfg = StationConfig::parse(&format!("{base}{upload}"), p).unwrap();
        assert_eq!(cfg.upload.unwrap().limits, UploadLimits::default());
        let cfg = StationConfig::parse(
            &format!("{base}{upload}max-connections = 8\nidle-timeout-seconds = 5\n"),
            p,
        )
        .unwrap();
        let limits = cfg.upload.unwrap().limits;
        assert_eq!((limits.connections, limits.idle.as_secs()), (8, 5));
        for zero in [
            "max-connections = 0",
            "handshake-timeout-seconds = 0",
            "idle-timeout-seconds = 0",
        ] {
            let err = StationConfig::parse(&format!("{base}{upload}{zero}\n"), p).unwrap_err();
            let key = zero.split(' ').next().unwrap();
            assert!(err.to_string().contains(key), "{err}");
        }
        let cfg = StationConfig::parse(base, p).unwrap();
        assert_eq!(cfg.store, StoreBackend::Local);
        assert_eq!(cfg.data_dir, Path::new("/etc/custody/x"));
        assert_eq!(cfg.utc_offset.local_minus_utc(), 8 * 3600);
    }
}
