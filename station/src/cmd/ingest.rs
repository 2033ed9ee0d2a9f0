//! `custody-station ingest --slot DIR`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;
use custody_station::{DockOptions, SessionEnd};

/// Arguments of `ingest`.
#[derive(clap::Args)]
pub struct Args {
    /// The slot folder (the device's storage as mounted).
    #[arg(long)]
    slot: PathBuf,
    /// A lawful delay reason code from the configuration (`[deadline.reasons]`).
    #[arg(long)]
    delay_reason: Option<String>,
}

/// Ingests one slot and prints what happened; exit 1 when something was found.
pub fn run(config: &Path, args: &Args, json: bool) -> anyhow::Result<ExitCode> {
    let station = super::open_for_writing(config)?;
    if let Some(reason) = &args.delay_reason {
        let reasons = &station.config().deadline.reasons;
        if !reasons.contains_key(reason) {
            let known: Vec<&str> = reasons.keys().map(String::as_str).collect();
            bail!(
                "unknown delay reason {reason:?}; configured: {}",
                known.join(", ")
            );
        }
    }
    let opts = DockOptions {
        delay_reason: args.delay_reason.clone(),
        returned: None,
    };
    let outcome = station.ingest_slot(&args.slot, &opts)?;
    custody_station::write_session_report(&station, &outcome);
    if json {
        custody::outln!("{}", serde_json::to_string_pretty(&outcome)?)?;
    } else {
        custody::outln!(
            "{} {}: {} 条记录，{} 个文件校验通过，{}，{} 个无签封记录，{} 个超期，{} 个问题",
            outcome.slot,
            outcome.serial.as_deref().unwrap_or("未识别设备"),
            outcome.records,
            outcome.clips_verified,
            super::human_bytes(outcome.bytes),
            outcome.unattested,
            outcome.late,
            outcome.findings.len()
        )?;
        for f in &outcome.findings {
            super::print_finding(f)?;
        }
        if let Some(receipt) = &outcome.receipt {
            custody::outln!("回执已写入设备: {receipt}")?;
        }
        if outcome.outcome == SessionEnd::Quarantined {
            custody::outln!("设备已隔离：文件单独保存，未混入证据。")?;
        }
    }
    Ok(if outcome.findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
