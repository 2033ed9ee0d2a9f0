//! `custody-station serve`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

/// Runs the daemon until Ctrl-C or SIGTERM.
pub fn run(config: &Path) -> anyhow::Result<ExitCode> {
    let station = Arc::new(super::open(config)?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(custody_station::run(station, async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
    }))?;
    Ok(ExitCode::SUCCESS)
}
