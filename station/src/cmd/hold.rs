//! `custody-station hold CASE [--release]`: puts every stored clip of a case under legal
//! hold in the S3 Object Lock bucket (the store, or the replica), or releases it. A held
//! object cannot be deleted even after its retention ends, until the hold is released.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use custody::MediaHash;
use custody_station::s3::S3Store;
use custody_station::{ReportQuery, StoreBackend};

/// Arguments of `hold`.
#[derive(clap::Args)]
pub struct Args {
    /// 案件编号: the case whose clips are held (from their records or later bindings).
    case: String,
    /// Release the hold instead (the dispute is over).
    #[arg(long)]
    release: bool,
}

/// Sets or clears the legal hold on each stored clip of the case. Exit 0 when every one
/// was set, 1 when the case has no stored clip, 2 on failure (what was set stays set).
pub fn run(config: &Path, args: &Args, json: bool) -> anyhow::Result<ExitCode> {
    let station = super::open(config)?;
    let cfg = station.config();
    let settings = match (&cfg.store, &cfg.replicate_to) {
        (StoreBackend::S3(s), _) | (StoreBackend::Local, Some(s)) => s.clone(),
        (StoreBackend::Local, None) => anyhow::bail!(
            "{}: legal holds need the S3 Object Lock store ([store] backend = \"s3\" or replicate = true)",
            config.display()
        ),
    };
    let store = S3Store::open(&settings)?;
    let query = ReportQuery {
        case: Some(args.case.clone()),
        ..ReportQuery::default()
    };
    let report = station.report(&query, station.now())?;
    let mut held = Vec::new();
    for clip in &report.clips {
        let Some(stored) = &clip.stored_sha256 else {
            continue;
        };
        let hash: MediaHash = stored
            .parse()
            .with_context(|| format!("stored hash {stored:?} in the ledger"))?;
        if held.contains(&hash) {
            continue;
        }
        store
            .set_legal_hold(&hash, !args.release)
            .with_context(|| format!("{} ({})", clip.number, clip.file))?;
        held.push(hash);
    }
    let action = if args.release { "解除" } else { "设置" };
    if json {
        custody::outln!(
            "{}",
            serde_json::json!({
                "case": args.case,
                "legal_hold": !args.release,
                "objects": held.iter().map(MediaHash::to_hex).collect::<Vec<_>>(),
            })
        )?;
    } else if held.is_empty() {
        custody::outln!("案件 {} 没有已存储的视频。", args.case)?;
    } else {
        custody::outln!(
            "案件 {}：已为 {} 个视频对象{action}法律保留（legal hold）。",
            args.case,
            held.len()
        )?;
    }
    Ok(if held.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
