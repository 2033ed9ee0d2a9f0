//! `custody`: the offline verifier that clerks and courts run on a folder of evidence
//! (device storage, archive disc, export package); with the `testkit` feature, also a
//! sample-device maker for demos.
//!
//! Exit status: 0 all verified, 1 evidence problems found, 2 could not run.

use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use custody::{ChainStart, Level, PublicKey, VerifyOptions, VerifyReport};

/// Custody evidence tools (执法记录证据核验).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Verify a folder: every record's signature and hash chain, every clip's SHA-256, and
    /// that every file is covered by a record. An archive disc (a folder with `disc.json`,
    /// a mounted disc or a copy) is checked as one: SHA256SUMS, every signature, every hash
    /// against its record, the checkpoint and every inclusion proof. Exit 0 all verified,
    /// 1 problems, 2 cannot run.
    Verify {
        /// The folder: device storage, archive disc or export package.
        folder: PathBuf,
        /// Print the report as JSON for machines.
        #[arg(long)]
        json: bool,
        /// Trust only these public keys (PEM: devices', and a disc's station); by default
        /// the keys in the folder.
        #[arg(long = "key", value_name = "PEM")]
        keys: Vec<PathBuf>,
        /// The folder holds only some of each device's records (a case disc): do not
        /// report missing sequence numbers.
        #[arg(long)]
        subset: bool,
        /// Check as of this time (RFC 3339, e.g. `2026-11-20T18:00:00+08:00`): records
        /// dated later are flagged as from the future. Default: now.
        #[arg(long, value_name = "TIME")]
        at: Option<chrono::DateTime<chrono::FixedOffset>>,
    },
    /// Write a simulated device (for demos and tests): the given media files become its
    /// clips, each with a signed record in the device's hash chain. Only in builds with
    /// the `testkit` feature, never in the verifier clerks get.
    #[cfg(feature = "testkit")]
    SampleDevice {
        /// The device storage folder to create.
        #[arg(long)]
        out: PathBuf,
        /// Product serial (产品序号).
        #[arg(long)]
        serial: String,
        /// Then break it with a tampering recipe, e.g. `flip-byte:clip-2`, `drop:seq-3`.
        #[arg(long = "tamper", value_name = "RECIPE")]
        tamper: Vec<String>,
        /// Media files to record as clips.
        #[arg(required = true)]
        media: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        // The reader stopped early (`| head`): a normal end, not a failure.
        Err(err) if custody::cli::is_closed_output(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("custody: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Checks an archive disc's files under the given keys (or the disc's own).
fn verify_disc(
    folder: &std::path::Path,
    trusted: &[PublicKey],
    json: bool,
) -> anyhow::Result<ExitCode> {
    let trust = custody::DiscOwnKeys::new(folder, trusted);
    let check = custody::check_disc_folder(folder, &trust)
        .with_context(|| format!("verifying the disc {}", folder.display()))?;
    if json {
        custody::outln!("{}", serde_json::to_string_pretty(&check)?)?;
    } else {
        for line in check.lines_zh() {
            custody::outln!("{line}")?;
        }
    }
    Ok(if check.is_intact() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Verify {
            folder,
            json,
            keys,
            subset,
            at,
        } => {
            let mut opts = VerifyOptions {
                now: at.map_or_else(chrono::Utc::now, |t| t.with_timezone(&chrono::Utc)),
                start: if subset {
                    ChainStart::Subset
                } else {
                    ChainStart::Genesis
                },
                ..VerifyOptions::default()
            };
            for path in keys {
                let text = fs::read_to_string(&path)
                    .with_context(|| format!("reading key {}", path.display()))?;
                opts.trusted_keys.push(
                    PublicKey::from_pem(&text)
                        .with_context(|| format!("key {}", path.display()))?,
                );
            }
            if custody::disc_meta(&folder).is_some() {
                return verify_disc(&folder, &opts.trusted_keys, json);
            }
            let report = custody::verify_folder(&folder, &opts)
                .with_context(|| format!("verifying {}", folder.display()))?;
            if json {
                custody::outln!("{}", serde_json::to_string_pretty(&report)?)?;
            } else {
                custody::out!("{}", render_table(&report))?;
            }
            Ok(if report.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        #[cfg(feature = "testkit")]
        Command::SampleDevice {
            out,
            serial,
            tamper,
            media,
        } => {
            custody::check_serial(&serial)?;
            if out.exists() {
                anyhow::bail!(
                    "{} already exists; a sample device is written into a new folder",
                    out.display()
                );
            }
            let mut device = custody::testkit::SampleDevice::create(&out, &serial, &media)
                .with_context(|| format!("writing {}", out.display()))?;
            for recipe in &tamper {
                device.tamper(recipe)?;
            }
            eprintln!(
                "custody: device {serial} with {} clips in {}",
                device.clip_count(),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The clerk's table: devices, then findings, then a one-line verdict (in Chinese).
fn render_table(report: &VerifyReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "核验目录 folder: {}", report.root.display());
    if !report.keys_pinned {
        let _ = writeln!(
            out,
            "注意: 未指定可信公钥 (--key)，使用目录内的设备公钥 (keys taken from the folder)"
        );
    }
    for d in &report.devices {
        let key = d
            .key_id
            .as_ref()
            .map_or_else(|| "-".to_owned(), ToString::to_string);
        let _ = writeln!(
            out,
            "设备 {}: 有效记录 {} 条, 核验通过视频 {} 个, {} 字节; 公钥 {key}",
            d.serial, d.records, d.clips_verified, d.bytes
        );
    }
    if !report.findings.is_empty() {
        let _ = writeln!(out, "\n问题 findings ({}):", report.findings.len());
        for f in &report.findings {
            let level = match f.level {
                Level::Error => "错误",
                Level::Warning => "警告",
            };
            let _ = writeln!(
                out,
                "{level}  {}  [{}]\n      {}\n      {}",
                custody::describe_zh(f.code).unwrap_or(f.code),
                f.code,
                f.subject,
                f.detail
            );
        }
    }
    let (n, errors) = (
        report.findings.len(),
        report
            .findings
            .iter()
            .filter(|f| f.level == Level::Error)
            .count(),
    );
    let _ = if report.is_clean() {
        writeln!(out, "\n结论: 全部核验通过 (all verified)")
    } else {
        writeln!(
            out,
            "\n结论: 发现 {n} 个问题，其中 {errors} 个错误 ({n} findings, {errors} errors)"
        )
    };
    out
}
