//! `custody-station audit`: reads every stored object back and records what is missing or
//! corrupt as findings.

use std::path::Path;
use std::process::ExitCode;

use custody_station::audit;
use custody_station::s3::S3Store;

/// Audits the store (and the replication bucket, when replicating). Exit 0 when every
/// object reads back as stored, 1 with findings (printed and in the ledger), 2 when the
/// audit could not run.
pub fn run(config: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let station = super::open_for_writing(config)?;
    let replica = match &station.config().replicate_to {
        Some(settings) => Some(S3Store::open(settings)?),
        None => None,
    };
    let outcome = audit(&station, replica.as_ref())?;
    if json {
        custody::outln!("{}", serde_json::to_string_pretty(&outcome)?)?;
    } else {
        custody::outln!(
            "核查 {} 个存储对象（{}），发现问题 {} 项（记录于会话 {}）。",
            outcome.checked,
            super::human_bytes(outcome.bytes),
            outcome.findings.len(),
            outcome.session.0
        )?;
        for f in &outcome.findings {
            super::print_finding(f)?;
        }
    }
    Ok(if outcome.findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
