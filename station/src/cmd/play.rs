//! `custody-station play CLIP`: a clip's bytes for a player (`| ffplay -`) or into a file,
//! after the playback event is in the ledger and the log.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use super::login::{LoginArgs, login};

/// Arguments of `play`.
#[derive(clap::Args)]
pub struct Args {
    /// The clip: its number (编号) or record hash.
    clip: String,
    /// The approved view request (调阅) to play it under, when it is not yours.
    #[arg(long)]
    request: Option<u64>,
    /// Write the bytes to this file instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    login: LoginArgs,
}

/// Streams the clip.
pub fn run(config: &Path, args: &Args) -> anyhow::Result<ExitCode> {
    let station = super::open(config)?;
    let actor = login(&station, &args.login)?;
    let (row, mut reader) = station.open_clip(&actor, &args.clip, args.request)?;
    let n = match &args.out {
        Some(path) => {
            let mut file = std::fs::File::create_new(path)
                .with_context(|| format!("creating {} (never overwritten)", path.display()))?;
            std::io::copy(&mut reader, &mut file)?
        }
        None => std::io::copy(&mut reader, &mut std::io::stdout().lock())?,
    };
    tracing::info!(clip = %row.number, bytes = n, "played");
    Ok(ExitCode::SUCCESS)
}
