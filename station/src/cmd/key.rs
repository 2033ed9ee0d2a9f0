//! `custody-station key`.

use std::path::Path;
use std::process::ExitCode;

/// Prints the verifier key (agents' `[station] vkey`) and the public key PEM.
pub fn run(config: &Path) -> anyhow::Result<ExitCode> {
    let station = super::open(config)?;
    let verifier = station.verifier();
    custody::outln!("{verifier}")?;
    custody::out!("{}", verifier.public_key().to_pem())?;
    Ok(ExitCode::SUCCESS)
}
