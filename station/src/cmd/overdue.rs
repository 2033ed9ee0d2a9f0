//! `custody-station overdue`: clips stored after their deadline, and devices not docked
//! yet whose telemetry shows clips near or past theirs.

use std::path::Path;
use std::process::ExitCode;

use custody_station::{ReportQuery, pending_devices};

/// Lists both; exit 1 when there is anything to act on.
pub fn run(config: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let station = super::open(config)?;
    let cfg = station.config();
    let now = station.now();
    let report = station.report(&ReportQuery::default(), now)?;
    let late: Vec<_> = report.clips.iter().filter(|c| c.late).collect();
    let undocked = pending_devices(&station.ledger(), &cfg.deadline, cfg.utc_offset, now)?;
    if json {
        let out = serde_json::json!({ "late_clips": late, "undocked_devices": undocked });
        custody::outln!("{}", serde_json::to_string_pretty(&out)?)?;
    } else {
        if late.is_empty() {
            custody::outln!("没有超期存储的视音频文件。")?;
        } else {
            custody::outln!("超期存储的视音频文件（{} 个）：", late.len())?;
            for c in &late {
                custody::outln!(
                    "  {} 第 {} 条 {}  录制结束 {}  时限 {}  存储 {}{}",
                    c.serial,
                    c.seq,
                    c.number,
                    c.recorded_end,
                    c.deadline,
                    c.stored_at,
                    c.delay_reason
                        .as_deref()
                        .map(|r| format!("  延迟理由 {r}"))
                        .unwrap_or_default()
                )?;
            }
        }
        if cfg.telemetry_broker.is_none() {
            custody::outln!("未配置设备遥测（[telemetry]），无法列出尚未入站的设备。")?;
        } else if undocked.is_empty() {
            custody::outln!("没有临近或超过存储时限而尚未入站的设备。")?;
        } else {
            custody::outln!(
                "尚未入站、待存储文件临近或超过时限的设备（{} 台）：",
                undocked.len()
            )?;
            for d in &undocked {
                custody::outln!(
                    "  {}  {}  待存储 {} 个  最早录制结束 {}  时限 {}  最后上报 {}  {}{}",
                    d.serial,
                    if d.past { "已超期" } else { "临近时限" },
                    d.pending_clips,
                    super::fleet::local(&d.oldest_pending_recorded.to_rfc3339(), cfg.utc_offset),
                    super::fleet::local(&d.deadline.to_rfc3339(), cfg.utc_offset),
                    super::fleet::local(&d.last_heard, cfg.utc_offset),
                    match d.status.as_deref() {
                        Some("online") => "在线",
                        Some("offline") => "离线",
                        _ => "状态未知",
                    },
                    d.battery_percent
                        .map(|b| format!("  电量 {b}%"))
                        .unwrap_or_default()
                )?;
            }
        }
    }
    Ok(if late.is_empty() && undocked.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
