//! `custody-station fleet`: every enrolled device with what its telemetry last said, and
//! the ratio of devices to the officers they are issued to (at least one per two).

use std::path::Path;
use std::process::ExitCode;

use chrono::{DateTime, FixedOffset};

/// Prints the fleet; exit 0.
pub fn run(config: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let station = super::open(config)?;
    let offset = station.config().utc_offset;
    let view = station.fleet_view()?;
    let rows = &view.devices;
    if json {
        custody::outln!("{}", serde_json::to_string_pretty(&view)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    custody::outln!(
        "登记设备 {} 台，领用民警 {} 人（要求每 2 人至少 1 台）{}",
        rows.len(),
        view.officers,
        if view.enough_devices() {
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
