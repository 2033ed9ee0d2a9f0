//! `custody-station status`: per-slot progress bars from the running daemon.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use custody_station::s3::S3Settings;
use custody_station::{Ledger, ReplicationLag, STATUS_FILE, SlotStatus, StationConfig};

/// Arguments of `status`.
#[derive(clap::Args)]
pub struct Args {
    /// Keep refreshing (every second) until interrupted.
    #[arg(long)]
    follow: bool,
}

/// Width of a progress bar, in cells.
const BAR: usize = 30;

/// Prints the progress of every slot being ingested.
pub fn run(config: &Path, args: &Args, json: bool) -> anyhow::Result<ExitCode> {
    let cfg = StationConfig::load(config)?;
    let path = cfg.data_dir.join(STATUS_FILE);
    // The replication queue is in the ledger (durable), not in the daemon's memory.
    let ledger = match &cfg.replicate_to {
        Some(_) => Some(Ledger::open(&cfg.data_dir.join("ledger.sqlite"))?),
        None => None,
    };
    let mut lines_drawn = 0;
    loop {
        let slots: Vec<SlotStatus> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("reading {}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let lag = match &ledger {
            Some(ledger) => Some(ledger.replication_lag(Utc::now())?),
            None => None,
        };
        if json {
            custody::outln!(
                "{}",
                serde_json::json!({ "slots": slots, "replication": lag })
            )?;
        } else {
            let mut text = render(&slots);
            if let (Some(lag), Some(target)) = (&lag, &cfg.replicate_to) {
                text.push_str(&render_replication(lag, target, Utc::now()));
            }
            if args.follow && lines_drawn > 0 {
                // Move up and clear what was drawn last time.
                custody::out!("\x1b[{lines_drawn}A\x1b[J")?;
            }
            custody::out!("{text}")?;
            lines_drawn = text.lines().count();
        }
        if !args.follow {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The replication line: what waits, since when, and the push rate.
pub fn render_replication(lag: &ReplicationLag, target: &S3Settings, now: DateTime<Utc>) -> String {
    let behind = lag.oldest.map_or_else(
        || "无积压".to_owned(),
        |t| {
            let mins = (now - t).num_minutes().max(0);
            format!("最早一个已等待 {}:{:02}", mins / 60, mins % 60)
        },
    );
    format!(
        "异地复制 {}/{}：待推送 {} 个（{}），{behind}；已推送 {} 个（{}），近一分钟 {}/s\n",
        target.endpoint,
        target.bucket,
        lag.objects,
        super::human_bytes(lag.bytes),
        lag.pushed,
        super::human_bytes(lag.pushed_bytes),
        super::human_bytes(lag.last_minute_bytes / 60),
    )
}

/// The progress table: one bar per slot, with clips, bytes, rate and ETA.
pub fn render(slots: &[SlotStatus]) -> String {
    if slots.is_empty() {
        return "没有正在采集的设备。\n".into();
    }
    let mut out = String::new();
    for s in slots {
        let filled = (s.bytes_done.min(s.bytes_total) * BAR as u64)
            .checked_div(s.bytes_total)
            .map_or(BAR, |f| usize::try_from(f).unwrap_or(BAR));
        let eta = s
            .eta_secs
            .map_or_else(|| "--".to_owned(), |e| format!("{}:{:02}", e / 60, e % 60));
        let _ = writeln!(
            out,
            "{:<10} {:<10} [{}{}] {}/{} 个文件  {} / {}  {}/s  剩余 {eta}",
            s.slot,
            s.serial,
            "#".repeat(filled),
            "-".repeat(BAR - filled),
            s.clips_done,
            s.clips_total,
            super::human_bytes(s.bytes_done),
            super::human_bytes(s.bytes_total),
            super::human_bytes(s.rate_bytes_per_sec),
        );
    }
    out
}
