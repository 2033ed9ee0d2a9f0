//! `recorder-sim`: a simulated recorder on a pseudo-terminal. It prints the port the agent
//! opens, answers the MCU protocol, records real MP4 segments with FFmpeg into its storage
//! folder, and plays a scenario script (a shift: record, mark, stop, dock) with faults.
//!
//! Exit status: 0 when the scenario ran, 2 when it could not start.

use std::path::PathBuf;
use std::process::ExitCode;
use std::thread;

use anyhow::Context as _;
use clap::Parser;
use firmware_bridge::codec::PROTOCOL_VERSION;
use firmware_bridge::message::OfficerBinding;
use firmware_bridge::sim::{SimConfig, Simulator, Step, load_nmea, parse_script};

/// A simulated body-worn recorder (模拟执法记录仪).
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Device model (hw-profile id), e.g. `ga947-recorder`.
    #[arg(long, default_value = "ga947-recorder")]
    profile: String,
    /// Folder of hw-profiles (default: the shipped ones).
    #[arg(long)]
    profiles: Option<PathBuf>,
    /// 产品序号: 7 letters or digits.
    #[arg(long, default_value = "A100001")]
    serial: String,
    /// The device storage folder (recordings go here).
    #[arg(long)]
    storage: PathBuf,
    /// Stable path of the serial port (a symlink to the current pty).
    #[arg(long)]
    link: PathBuf,
    /// Where the storage appears when docked in mass-storage mode.
    #[arg(long)]
    dock_slot: Option<PathBuf>,
    /// GNSS: replay this NMEA capture.
    #[arg(long)]
    nmea: Option<PathBuf>,
    /// Scenario script to play; without one the device runs until interrupted.
    #[arg(long)]
    script: Option<PathBuf>,
    /// Segment length in seconds instead of the profile's.
    #[arg(long)]
    segment_seconds: Option<u32>,
    /// RTC drift in ppm (positive: fast).
    #[arg(long, default_value_t = 20, allow_negative_numbers = true)]
    drift_ppm: i32,
    /// Mass-storage password.
    #[arg(long, default_value = "dock-1234")]
    password: String,
    /// Protocol version to speak (another value tests a mismatch).
    #[arg(long, default_value_t = PROTOCOL_VERSION)]
    protocol_version: u8,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("recorder-sim: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let dir = args.profiles.unwrap_or_else(hw_profiles::shipped_dir);
    let profiles = hw_profiles::load_dir(&dir)?;
    let profile = profiles
        .into_iter()
        .find(|p| p.id == args.profile)
        .with_context(|| format!("no profile {:?} in {}", args.profile, dir.display()))?;
    if profile.serial.is_none() {
        anyhow::bail!(
            "model {} has no MCU link to simulate (it only exposes USB storage)",
            profile.id
        );
    }
    if !(args.serial.len() == 7 && args.serial.bytes().all(|b| b.is_ascii_alphanumeric())) {
        anyhow::bail!(
            "--serial {:?}: a product serial is 7 letters or digits",
            args.serial
        );
    }
    let steps = match &args.script {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            parse_script(&text).with_context(|| format!("script {}", path.display()))?
        }
        None => Vec::new(),
    };
    let nmea = match &args.nmea {
        Some(path) => load_nmea(path).with_context(|| format!("reading {}", path.display()))?,
        None => Vec::new(),
    };
    // A simulated secure element holds a key derived from the serial: stable across runs,
    // and never a production key.
    let seed = profile.capabilities.secure_element.then(|| {
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            format!("recorder-sim secure element {}", args.serial).as_bytes(),
        );
        let mut seed = [0u8; 32];
        seed.copy_from_slice(digest.as_ref());
        seed
    });
    let sim = Simulator::start(SimConfig {
        profile,
        serial: args.serial.clone(),
        firmware: concat!("sim-", env!("CARGO_PKG_VERSION")).into(),
        protocol_version: args.protocol_version,
        link: args.link.clone(),
        storage: args.storage,
        segment_seconds: args.segment_seconds,
        dock_slot: args.dock_slot,
        drift_ppm: args.drift_ppm,
        battery_percent: 100,
        mass_storage_password: args.password,
        nmea,
        officer: OfficerBinding {
            police_no: "042001".into(),
            name: "张三".into(),
            unit_code: "420600".into(),
            unit_name: "襄阳市生态环境局".into(),
        },
        secure_element_seed: seed,
    })
    .context("starting the simulator")?;
    let port = std::fs::read_link(sim.link()).unwrap_or_default();
    println!(
        "recorder-sim: {} on {} (link {})",
        args.serial,
        port.display(),
        args.link.display()
    );
    if args.script.is_none() {
        loop {
            thread::park();
        }
    }
    for step in steps {
        match step {
            Step::Do(control) => sim.send(control),
            Step::Wait(d) => thread::sleep(d),
        }
    }
    sim.stop().context("the simulated device failed")
}
