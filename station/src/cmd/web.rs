//! `custody-station web [--listen ADDR]`: the station web page on its own (the daemon
//! serves it too when `[web]` is configured); its dock view reads the daemon's status.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use custody_station::WebSettings;

/// Arguments of `web`.
#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on (default: `[web] listen`, else 127.0.0.1:8080). Plain HTTP
    /// only on loopback; elsewhere `[web] cert` and `key` serve HTTPS.
    #[arg(long)]
    listen: Option<SocketAddr>,
}

/// Serves the page until Ctrl-C or SIGTERM.
pub fn run(config: &Path, args: &Args) -> anyhow::Result<ExitCode> {
    let station = Arc::new(super::open(config)?);
    let configured = station.config().web.clone();
    let settings = match (args.listen, configured) {
        (Some(listen), Some(web)) => {
            WebSettings::new(listen, web.tls.clone().map(|t| t.0), web.tls.map(|t| t.1))
        }
        (Some(listen), None) => WebSettings::new(listen, None, None),
        (None, Some(web)) => Ok(web),
        (None, None) => WebSettings::new(SocketAddr::from(([127, 0, 0, 1], 8080)), None, None),
    }
    .map_err(|why| anyhow::anyhow!("web: {why}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        tokio::select! {
            served = custody_station::serve_web(station, settings, false) => served,
            () = super::serve::stop_requested() => Ok(()),
        }
    })?;
    Ok(ExitCode::SUCCESS)
}
