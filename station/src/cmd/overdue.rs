//! `custody-station overdue`: clips stored after their deadline, per device.

use std::path::Path;
use std::process::ExitCode;

use custody_station::{Report, ReportQuery};

/// Lists late clips; exit 1 when there are any.
pub fn run(config: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let station = super::open(config)?;
    let cfg = station.config();
    let report = Report::build(
        &station.ledger(),
        &cfg.origin,
        &ReportQuery::default(),
        cfg.utc_offset,
        chrono::Utc::now(),
    )?;
    let late: Vec<_> = report.clips.iter().filter(|c| c.late).collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&late)?);
    } else if late.is_empty() {
        println!("没有超期存储的视音频文件。");
    } else {
        println!("超期存储的视音频文件（{} 个）：", late.len());
        for c in &late {
            println!(
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
            );
        }
    }
    Ok(if late.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
