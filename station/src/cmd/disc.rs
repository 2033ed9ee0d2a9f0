//! `custody-station disc build CASE-NO --media …`: the case's archive disc images;
//! `disc verify IMAGE|DRIVE|FOLDER`: read a disc back and check everything on it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use custody::DiscCheck;
use custody_station::{Actor, Medium, Station};

/// `disc` actions.
#[derive(Subcommand)]
pub enum Action {
    /// Build the case's disc set (ISO 9660 level 3 + Joliet + Rock Ridge, MD5 tags), split
    /// over as many discs as its size needs, each self-contained.
    Build {
        /// The case's document number.
        case: String,
        /// The medium the images are for.
        #[arg(long, value_enum)]
        media: Medium,
        /// Capacity in bytes, for a medium of another size than the nominal one.
        #[arg(long)]
        capacity: Option<u64>,
        /// Where the images go.
        #[arg(long, default_value = "discs")]
        out: PathBuf,
        #[command(flatten)]
        login: super::login::LoginArgs,
    },
    /// Burn an image this station built to a drive (e.g. /dev/sr0, or stdio:/path for an
    /// emulated one), read it back and check it. Exit 1 if the burn or the check failed.
    Burn {
        /// The image.
        image: PathBuf,
        /// The drive.
        #[arg(long)]
        drive: String,
        #[command(flatten)]
        login: super::login::LoginArgs,
    },
    /// List burned discs due for their periodic check (every `[discs] check-every-years`,
    /// default 4, and at least 10 % of the discs each round). Exit 1 if any is due.
    Due,
    /// Check a disc image, a drive (e.g. stdio:/path or /dev/sr0) or a folder copied from
    /// a disc: MD5 tags, SHA256SUMS, signatures, proofs, and the ledger. Exit 1 if damaged.
    Verify {
        /// The image, drive or folder.
        source: String,
    },
}

/// Runs the action.
pub fn run(config: &Path, action: &Action, json: bool) -> anyhow::Result<ExitCode> {
    let station = super::open(config)?;
    match action {
        Action::Build {
            case,
            media,
            capacity,
            out,
            login,
        } => {
            let actor = super::login::login(&station, login)?;
            build(&station, &actor, case, *media, *capacity, out, json)
        }
        Action::Burn {
            image,
            drive,
            login,
        } => {
            let actor = super::login::login(&station, login)?;
            burn(&station, &actor, image, drive, json)
        }
        Action::Due => due(&station, json),
        Action::Verify { source } => {
            let check = with_progress(&station, || station.verify_disc(source))?;
            if json {
                custody::outln!("{}", serde_json::to_string_pretty(&check)?)?;
            } else {
                print_check(&check)?;
            }
            Ok(exit(check.is_intact()))
        }
    }
}

fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn build(
    station: &Station,
    actor: &Actor,
    case: &str,
    media: Medium,
    capacity: Option<u64>,
    out: &Path,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let discs = with_progress(station, || {
        station.build_discs(actor, case, media, capacity, out)
    })?;
    if json {
        custody::outln!("{}", serde_json::to_string_pretty(&discs)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    for d in &discs {
        custody::outln!(
            "光盘 {}/{}  卷标 {}  视音频 {} 个  文书 {} 份  {}  {}",
            d.disc,
            d.of,
            d.volume_id,
            d.clips,
            d.documents,
            super::human_bytes(d.image_size),
            d.image.display()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn burn(
    station: &Station,
    actor: &Actor,
    image: &Path,
    drive: &str,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let burned = with_progress(station, || station.burn_disc(actor, image, drive))?;
    let ok = burned.burned && burned.check.as_ref().is_some_and(DiscCheck::is_intact);
    if json {
        custody::outln!("{}", serde_json::to_string_pretty(&burned)?)?;
        return Ok(exit(ok));
    }
    if burned.burned {
        custody::outln!(
            "光盘 {} 已刻录到 {drive}：{}",
            burned.volume_id,
            burned.detail
        )?;
    } else {
        custody::outln!(
            "光盘 {} 刻录失败（已记入台账）：{}",
            burned.volume_id,
            burned.detail
        )?;
    }
    if let Some(check) = &burned.check {
        print_check(check)?;
    }
    Ok(exit(ok))
}

fn due(station: &Station, json: bool) -> anyhow::Result<ExitCode> {
    let years = station.config().disc_check_years;
    let due = station.discs_due(station.now(), years)?;
    if json {
        custody::outln!("{}", serde_json::to_string_pretty(&due)?)?;
    } else if due.is_empty() {
        custody::outln!("没有到期需抽检的光盘（每 {years} 年抽检一次，每次不少于 10%）。")?;
    } else {
        custody::outln!(
            "到期需抽检的光盘（{} 张，每 {years} 年一次，每次不少于 10%）：",
            due.len()
        )?;
        let offset = station.config().utc_offset;
        for d in &due {
            custody::outln!(
                "  {}  {}  光盘 {}/{}  上次核验或刻录 {}",
                d.disc.volume_id,
                d.disc.case_number,
                d.disc.disc,
                d.disc.of,
                d.since.with_timezone(&offset).format("%Y-%m-%d")
            )?;
        }
    }
    Ok(exit(due.is_empty()))
}

fn print_check(check: &DiscCheck) -> std::io::Result<()> {
    for line in check.lines_zh() {
        custody::outln!("{line}")?;
    }
    Ok(())
}

/// Runs `work`, showing the station's disc board on one line of a terminal's stderr as it
/// goes (what, percent, rate, time left); nothing when stderr is not a terminal.
fn with_progress<T: Send>(station: &Station, work: impl FnOnce() -> T + Send) -> T {
    use std::io::{IsTerminal as _, Write as _};
    if !std::io::stderr().is_terminal() {
        return work();
    }
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let line: Vec<String> = station
                    .disc_work()
                    .snapshot()
                    .iter()
                    .map(|r| {
                        let pct = r.bytes_done.saturating_mul(100) / r.bytes_total.max(1);
                        let left = r
                            .eta_secs
                            .map_or_else(String::new, |e| format!("，剩余 {e} 秒"));
                        format!(
                            "{} {pct:>3}%（{} MiB/s{left}）",
                            r.slot,
                            r.rate_bytes_per_sec >> 20
                        )
                    })
                    .collect();
                let _ = write!(std::io::stderr(), "\r\x1b[2K{}", line.join("  "));
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        });
        let out = work();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        out
    })
}
