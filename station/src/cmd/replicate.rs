//! `custody-station replicate`: pushes the replication queue to the bucket now, until it
//! is empty (what `serve` does in the background), and says what is left.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

use anyhow::Context as _;
use custody_station::replicate_drain;
use custody_station::s3::S3Store;

/// Drains the queue; exit 0 when the bucket holds everything, 1 when local objects could
/// not be read back as stored (they are named), 2 when the bucket is unusable.
pub fn run(config: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let station = super::open(config)?;
    let settings = station.config().replicate_to.clone().with_context(|| {
        format!(
            "{}: replication is off ([store] replicate = true and [s3])",
            config.display()
        )
    })?;
    let target = S3Store::open(&settings)?;
    let drained = replicate_drain(
        &station,
        &target,
        &mut BTreeSet::new(),
        &AtomicBool::new(false),
    )?;
    let lag = station.ledger().replication_lag(station.now())?;
    if json {
        custody::outln!(
            "{}",
            serde_json::json!({ "drained": drained, "queue": lag })
        )?;
    } else {
        custody::outln!(
            "已推送 {} 个对象（{}）到 {}/{}；队列剩余 {} 个（{}）。",
            drained.pushed,
            super::human_bytes(drained.bytes),
            settings.endpoint,
            settings.bucket,
            lag.objects,
            super::human_bytes(lag.bytes),
        )?;
        for hash in &drained.unreadable {
            custody::outln!("本地对象无法按原哈希读回，未推送：sha256 {hash}")?;
        }
    }
    Ok(if drained.unreadable.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
