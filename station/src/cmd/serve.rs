//! `custody-station serve`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

/// Runs the daemon until Ctrl-C or SIGTERM.
pub fn run(config: &Path) -> anyhow::Result<ExitCode> {
    let station = Arc::new(super::open_for_writing(config)?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(custody_station::run(station, stop_requested()))?;
    Ok(ExitCode::SUCCESS)
}

/// Completes on Ctrl-C or SIGTERM (how a service manager stops the station).
pub async fn stop_requested() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
