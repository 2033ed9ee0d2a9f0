//! `custody-station stats --year YYYY`: the recording part of the annual statistics
//! (统计年报), per act type, at one checkpoint; JSON, CSV and Chinese HTML.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use custody_station::Statistics;

/// `stats` arguments.
#[derive(clap::Args)]
pub struct Args {
    /// The calendar year (local time).
    #[arg(long)]
    year: i32,
    /// Where the JSON, CSV and HTML go (default: the station's reports folder).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Computes, writes and prints the statistics.
pub fn run(config: &Path, args: &Args, json: bool) -> anyhow::Result<ExitCode> {
    let station = super::open(config)?;
    let stats = station.statistics(args.year)?;
    let dir = args.out.clone().unwrap_or_else(|| station.reports_dir());
    let html = station.write_statistics(&stats, &dir)?;
    if json {
        custody::outln!("{}", serde_json::to_string_pretty(&stats)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    custody::outln!(
        "{} {} 年度执法音像记录统计（检查点：日志大小 {}，根 {}）",
        stats.agency,
        stats.year,
        stats.checkpoint_size,
        stats.checkpoint_root
    )?;
    let columns: Vec<(&str, bool)> = Statistics::columns()
        .iter()
        .enumerate()
        .map(|(i, c)| (*c, i != 0 && i != 8))
        .collect();
    let rows: Vec<Vec<String>> = stats
        .rows
        .iter()
        .chain(std::iter::once(&stats.total))
        .map(custody_station::ActFigures::cells)
        .collect();
    custody::out!("{}", super::table(&columns, &rows))?;
    custody::outln!("统计表: {}", html.display())?;
    Ok(ExitCode::SUCCESS)
}
