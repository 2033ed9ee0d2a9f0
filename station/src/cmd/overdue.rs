//! `custody-station overdue`: clips stored after their deadline, devices not docked yet
//! whose telemetry shows clips near or past theirs, and case files not archived by their
//! due date (or close to it).

use std::path::Path;
use std::process::ExitCode;

use chrono::Datelike as _;
use custody_station::{DUE_SOON_DAYS, ReportQuery, pending_devices};

/// Lists both; exit 1 when there is anything to act on.
pub fn run(config: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let station = super::open(config)?;
    let cfg = station.config();
    let now = station.now();
    let report = station.report(&ReportQuery::default(), now)?;
    let late: Vec<_> = report.clips.iter().filter(|c| c.late).collect();
    let undocked = pending_devices(&station.ledger(), &cfg.deadline, cfg.utc_offset, now)?;
    let today = now.with_timezone(&cfg.utc_offset).date_naive();
    let cases = station.cases_due(today, DUE_SOON_DAYS)?;
    // The annual statistics are due by 31 January: remind all month.
    let stats_due = (today.month() == 1).then(|| today.year() - 1);
    if json {
        let out = serde_json::json!({
            "late_clips": late,
            "undocked_devices": undocked,
            "case_files_due": cases,
            "statistics_due": stats_due,
        });
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
        if let Some(year) = stats_due {
            custody::outln!(
                "{year} 年度统计年报应于 1 月 31 日前报送：custody-station stats --year {year}"
            )?;
        }
        if cases.is_empty() {
            custody::outln!("没有临近或超过归档期限的案卷。")?;
        } else {
            custody::outln!("临近或超过归档期限、尚未归档的案卷（{} 件）：", cases.len())?;
            for c in &cases {
                custody::outln!(
                    "  {}  执法行为结束 {}  应于 {} 前归档  {}",
                    c.closure.case_number,
                    c.closure.ended,
                    c.closure.due,
                    match c.days_left {
                        d if d < 0 => format!("已超期 {} 天", -d),
                        0 => "今天到期".to_owned(),
                        d => format!("还剩 {d} 天"),
                    }
                )?;
            }
        }
    }
    Ok(
        if late.is_empty() && undocked.is_empty() && cases.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}
