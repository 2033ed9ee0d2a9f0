//! `custody-station status`: per-slot progress bars from the running daemon.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use custody_station::{STATUS_FILE, SlotStatus, StationConfig};

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
    let mut lines_drawn = 0;
    loop {
        let slots: Vec<SlotStatus> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("reading {}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        if json {
            println!("{}", serde_json::to_string(&slots)?);
        } else {
            let text = render(&slots);
            if args.follow && lines_drawn > 0 {
                // Move up and clear what was drawn last time.
                print!("\x1b[{lines_drawn}A\x1b[J");
            }
            print!("{text}");
            lines_drawn = text.lines().count();
        }
        if !args.follow {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
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
