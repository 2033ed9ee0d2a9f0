//! `custody-station enroll`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

/// Arguments of `enroll`.
#[derive(clap::Args)]
pub struct Args {
    /// 产品序号 of the device.
    #[arg(long)]
    serial: String,
    /// Its hw-profile id (e.g. ga947-recorder).
    #[arg(long)]
    hw_profile: String,
    /// Its public key, as `custody-agent enroll` printed it (PEM file).
    #[arg(long)]
    key: PathBuf,
    /// An officer it is issued to, `执法证号:姓名`; repeatable.
    #[arg(long = "officer", value_name = "CERT:NAME")]
    officers: Vec<String>,
}

/// Enrols the device.
pub fn run(config: &Path, args: &Args) -> anyhow::Result<ExitCode> {
    let station = super::open(config)?;
    let officers = args
        .officers
        .iter()
        .map(|o| {
            o.split_once(':')
                .map(|(c, n)| (c.trim().to_owned(), n.trim().to_owned()))
                .with_context(|| format!("--officer {o:?}: expected CERT:NAME"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let key_id = station.enroll(&args.serial, &args.hw_profile, &args.key, &officers)?;
    custody::outln!(
        "已登记设备 {} ({})，密钥 {key_id}",
        args.serial,
        args.hw_profile
    )?;
    Ok(ExitCode::SUCCESS)
}
