//! `custody-station key`.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

/// Prints the verifier key (agents' `[station] vkey`) and the public key PEM. A reader
/// that stops early (`| head -n 1`) is not an error.
pub fn run(config: &Path) -> anyhow::Result<ExitCode> {
    let station = super::open(config)?;
    let verifier = station.verifier();
    let mut out = std::io::stdout().lock();
    let written = writeln!(out, "{verifier}")
        .and_then(|()| write!(out, "{}", verifier.public_key().to_pem()))
        .and_then(|()| out.flush());
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other?,
    }
    Ok(ExitCode::SUCCESS)
}
