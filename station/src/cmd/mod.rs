//! One file per user command.

pub mod access;
pub mod audit;
pub mod case;
pub mod disc;
pub mod enroll;
pub mod fleet;
pub mod hold;
pub mod ingest;
pub mod key;
pub mod login;
pub mod overdue;
pub mod play;
pub mod replicate;
pub mod report;
pub mod request;
pub mod serve;
pub mod stats;
pub mod status;
pub mod user;
pub mod web;

use std::path::Path;

use anyhow::Context as _;
use custody_station::{Station, StationConfig};

/// Loads the configuration and opens the station, for commands that only read the ledger.
pub fn open(config: &Path) -> anyhow::Result<Station> {
    let cfg = StationConfig::load(config)?;
    Station::open(cfg).with_context(|| format!("opening the station of {}", config.display()))
}

/// Opens the station for a command that writes evidence or findings: the store must be
/// able to take evidence before any work starts.
pub fn open_for_writing(config: &Path) -> anyhow::Result<Station> {
    let station = open(config)?;
    station.check_store()?;
    Ok(station)
}

/// Prints one finding as a line of a readable table: what it means in Chinese, its
/// stable code, what it is about, the detail.
///
/// # Errors
/// Stdout failing (a closed pipe is handled by `main`).
pub fn print_finding(f: &custody::Finding) -> std::io::Result<()> {
    custody::outln!(
        "  {} [{}] {}: {}",
        custody::describe_zh(f.code).unwrap_or(f.code),
        f.code,
        f.subject,
        f.detail
    )
}

/// Bytes as people read them (binary units).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    #[expect(clippy::cast_precision_loss, reason = "display only")]
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A text table for people: one line per row, columns as wide as their widest cell in
/// terminal columns (a Chinese character takes two), `(title, right-aligned)` per column.
pub fn table(columns: &[(&str, bool)], rows: &[Vec<String>]) -> String {
    use unicode_width::UnicodeWidthStr as _;
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (title, _))| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.width())
                .chain([title.width()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for ((cell, (_, right)), width) in cells.zip(columns).zip(&widths) {
            let fill = " ".repeat(width.saturating_sub(cell.width()));
            let padded = if *right {
                format!("{fill}{cell}")
            } else {
                format!("{cell}{fill}")
            };
            out.push_str(&padded);
            out.push_str("  ");
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    };
    let mut out = line(&mut columns.iter().map(|(title, _)| *title));
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

#[cfg(test)]
mod tests {
    use unicode_width::UnicodeWidthStr as _;

    #[test]
    fn columns_line_up_in_a_terminal_whatever_the_script() {
        let rows = vec![
            vec!["A100001".to_owned(), "在线".to_owned(), "90%".to_owned()],
            vec!["B2".to_owned(), "unknown".to_owned(), "5%".to_owned()],
        ];
        let text = super::table(&[("设备", false), ("状态", false), ("电量", true)], &rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        // Every line is as wide on screen, so the right-aligned last column ends together.
        let widths: Vec<usize> = lines.iter().map(|l| l.width()).collect();
        assert!(widths.iter().all(|&w| w == widths[0]), "{text}");
        // The second column starts at the same screen column on every line.
        let second: Vec<usize> = lines
            .iter()
            .zip(["状态", "在线", "unknown"])
            .map(|(l, cell)| l[..l.find(cell).unwrap()].width())
            .collect();
        assert!(second.iter().all(|&c| c == second[0]), "{text}");
    }
}
