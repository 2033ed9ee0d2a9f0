//! `hw-profiles`: check and show device-model profiles.
//!
//! Exit status: 0 all good, 1 a profile is invalid, 2 could not run.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hw_profiles::{HwProfile, load_dir, profile_files, shipped_dir};

/// Device-model profiles (设备型号配置).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Folder of profiles (default: the profiles shipped with this build).
    #[arg(long, global = true)]
    dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check profile files; with no files, every profile in the folder.
    Lint {
        /// Profile files to check.
        files: Vec<PathBuf>,
    },
    /// Show one model's profile.
    Show {
        /// Profile id, e.g. `ga947-recorder`.
        model: String,
        /// As JSON for machines.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let dir = cli.dir.unwrap_or_else(shipped_dir);
    match cli.command {
        Command::Lint { files } => {
            let files = if files.is_empty() {
                match profile_files(&dir) {
                    Ok(files) => files,
                    Err(e) => {
                        eprintln!("hw-profiles: {e}");
                        return ExitCode::from(2);
                    }
                }
            } else {
                files
            };
            let mut bad = 0;
            for path in &files {
                match HwProfile::load(path) {
                    Ok(p) => println!("ok    {}  {} ({})", path.display(), p.id, p.name),
                    Err(e) => {
                        bad += 1;
                        println!("error {e}");
                    }
                }
            }
            println!("{} profiles, {bad} invalid", files.len());
            if bad == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Command::Show { model, json } => {
            let profiles = match load_dir(&dir) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("hw-profiles: {e}");
                    return ExitCode::from(2);
                }
            };
            let Some(profile) = profiles.iter().find(|p| p.id == model) else {
                let known: Vec<&str> = profiles.iter().map(|p| p.id.as_str()).collect();
                eprintln!(
                    "hw-profiles: no profile {model:?}; known: {}",
                    known.join(", ")
                );
                return ExitCode::from(2);
            };
            let text = if json {
                serde_json::to_string_pretty(profile).map_err(|e| e.to_string())
            } else {
                toml::to_string(profile).map_err(|e| e.to_string())
            };
            match text {
                Ok(t) => {
                    println!("{t}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("hw-profiles: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}
