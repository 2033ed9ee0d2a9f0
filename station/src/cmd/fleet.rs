//! `custody-station fleet`: every enrolled device with what its telemetry last said, and
//! the ratio of devices to the officers they are issued to (at least one per two).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::ExitCode;

use chrono::{DateTime, FixedOffset};
use custody::telemetry::Telemetry;
use serde::Serialize;

/// One row of the fleet table.
#[derive(Serialize)]
struct Row {
    serial: String,
    hw_profile: String,
    officers: Vec<(String, String)>,
    status: Option<String>,
    last_heard: Option<String>,
    telemetry: Option<Telemetry>,
    /// Clips on the device the station has not stored: its telemetry, unless a dock or an
    /// upload since stored what it counted.
    pending_clips: Option<u64>,
    /// When the oldest of them finished recording.
    oldest_pending_recorded: Option<DateTime<FixedOffset>>,
}

/// Prints the fleet; exit 0.
pub fn run(config: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let station = super::open(config)?;
    let offset = station.config().utc_offset;
    let (devices, heard) = {
        let ledger = station.ledger();
        (ledger.devices()?, ledger.fleet()?)
    };
    let mut rows: Vec<Row> = Vec::with_capacity(devices.len());
    for d in devices {
        let h = heard.iter().find(|h| h.serial == d.serial);
        let telemetry = h
            .and_then(|h| h.telemetry.as_deref())
            .and_then(|j| Telemetry::parse(j.as_bytes(), &d.serial).ok());
        let pending = match (&telemetry, h) {
            (Some(t), Some(h)) => Some(custody_station::pending(
                &station.ledger(),
                &d.serial,
                t,
                &h.received_at,
            )?),
            _ => None,
        };
        rows.push(Row {
            telemetry,
            pending_clips: pending.map(|p| p.clips),
            oldest_pending_recorded: pending.and_then(|p| p.oldest_recorded),
            status: h.and_then(|h| h.status.clone()),
            last_heard: h.map(|h| h.received_at.clone()),
            serial: d.serial,
            hw_profile: d.hw_profile,
            officers: d.officers,
        });
    }
    let officers: BTreeSet<&str> = rows
        .iter()
        .flat_map(|r| r.officers.iter().map(|(cert, _)| cert.as_str()))
        .collect();
    if json {
        let out = serde_json::json!({ "devices": rows, "officers": officers.len() });
        custody::outln!("{}", serde_json::to_string_pretty(&out)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    custody::outln!(
        "登记设备 {} 台，领用民警 {} 人（要求每 2 人至少 1 台）{}",
        rows.len(),
        officers.len(),
        if rows.len() * 2 >= officers.len() {
            "：符合"
        } else {
            "：不足"
        }
    )?;
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let t = r.telemetry.as_ref();
            vec![
                r.serial.clone(),
                r.hw_profile.clone(),
                match r.status.as_deref() {
                    Some("online") => "在线",
                    Some("offline") => "离线",
                    _ => "未知",
                }
                .to_owned(),
                t.and_then(|t| t.battery_percent)
                    .map_or_else(|| "—".into(), |b| format!("{b}%")),
                r.pending_clips
                    .map_or_else(|| "—".into(), |n| n.to_string()),
                r.oldest_pending_recorded
                    .map_or_else(|| "—".into(), |d| local(&d.to_rfc3339(), offset)),
                t.and_then(|t| t.storage_free_bytes)
                    .map_or_else(|| "—".into(), super::human_bytes),
                t.map_or_else(|| "—".into(), |t| format!("{} ms", t.clock_error_ms)),
                r.last_heard
                    .as_deref()
                    .map_or_else(|| "从未上报".into(), |h| local(h, offset)),
            ]
        })
        .collect();
    custody::out!(
        "{}",
        super::table(
            &[
                ("设备", false),
                ("型号", false),
                ("状态", false),
                ("电量", true),
                ("待存储", true),
                ("最早待存储录制结束", false),
                ("剩余空间", true),
                ("时钟误差", true),
                ("最后上报", false),
            ],
            &cells
        )
    )?;
    Ok(ExitCode::SUCCESS)
}

/// An RFC 3339 time as agency-local `YYYY-MM-DD HH:MM:SS` (as is, if it does not parse).
pub fn local(rfc3339: &str, offset: FixedOffset) -> String {
    DateTime::parse_from_rfc3339(rfc3339).map_or_else(
        |_| rfc3339.to_owned(),
        |t| {
            t.with_timezone(&offset)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        },
    )
}
