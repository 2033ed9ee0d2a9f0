//! `custody-agent`: seals every clip on the recorder into the device's signed hash chain.
//!
//! Exit status, as the other Custody tools: 0 all fine, 1 it ran and found problems (a
//! receipt refused), 2 it could not run (the message says why).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use custody::Speaker;
use custody_agent::{AgentConfig, Sealer, keystore};
use tracing_subscriber::EnvFilter;

/// Custody agent (执法记录仪证据签封).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The agent configuration.
    #[arg(long, global = true, default_value = "agent.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Seal clips as they close, until interrupted.
    Run {
        /// Seal what is closed now, then exit.
        #[arg(long)]
        once: bool,
    },
    /// Seal what is closed, upload the device to the station over HTTPS (resuming an
    /// interrupted upload), and free what the receipt proves stored.
    Upload,
    /// Print the device public key (PEM) and its fingerprint for IT to enrol: the key
    /// file's (created on first use), or the secure element's, which is then pinned in the
    /// state folder so that only that element signs for this device.
    Enroll,
    /// Bind a sealed clip to a case (a new signed record; nothing is edited).
    Bind {
        /// The clip, relative to the storage root (as in its record).
        clip: String,
        /// The case's document number, e.g. 襄环罚〔2019〕75号.
        case: String,
    },
    /// Annotate a sealed clip (a new signed record).
    Annotate {
        /// The clip, relative to the storage root.
        clip: String,
        /// 证明对象: what the clip proves.
        #[arg(long)]
        proves: Option<String>,
        /// 对话人员: `NAME:IDENTITY`, repeatable.
        #[arg(long = "speaker", value_name = "NAME:IDENTITY")]
        speakers: Vec<String>,
        /// 主要对话内容: the main content.
        #[arg(long)]
        summary: Option<String>,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        // The reader stopped early (`| head`): a normal end, not a failure.
        Err(e) if custody::cli::is_closed_output(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("custody-agent: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let cfg = AgentConfig::load(&cli.config)?;
    let mut found_problems = false;
    match cli.command {
        Command::Run { once: true } => {
            let (sealed, inbox) = custody_agent::seal_once(cfg)?;
            custody::outln!("sealed {} clip(s)", sealed.len())?;
            if inbox.accepted > 0 || !inbox.refused.is_empty() {
                custody::outln!(
                    "receipts: {} verified, {} refused; freed {} clip(s), {} bytes",
                    inbox.accepted,
                    inbox.refused.len(),
                    inbox.freed.len(),
                    inbox.bytes_freed
                )?;
                for r in &inbox.refused {
                    custody::outln!("  refused {} [{}]: {}", r.file, r.code, r.detail)?;
                }
                found_problems = !inbox.refused.is_empty();
            }
        }
        Command::Run { once: false } => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(custody_agent::run(cfg, stop_requested()))?;
        }
        Command::Upload => {
            let runtime = tokio::runtime::Runtime::new()?;
            let (sent, inbox) = runtime.block_on(custody_agent::upload_once(cfg))?;
            custody::outln!(
                "上传 {} 个文件：本次发送 {} 字节，续传已有 {} 字节；回执 {}；释放 {} 个文件（{} 字节）",
                sent.files,
                sent.bytes_sent,
                sent.bytes_resumed,
                sent.receipt.as_deref().unwrap_or("无"),
                inbox.freed.len(),
                inbox.bytes_freed
            )?;
            for file in &sent.skipped {
                custody::outln!("  未上传（文件名不符合上传协议，保留在设备上）: {file}")?;
            }
            for r in &inbox.refused {
                custody::outln!("  回执被拒绝 {} [{}]: {}", r.file, r.code, r.detail)?;
            }
            found_problems = !inbox.refused.is_empty();
        }
        Command::Enroll => {
            let public = match cfg.secure_element_slot {
                Some(slot) => custody_agent::secure_element::enroll(&cfg, slot)?.0,
                None => keystore::load_or_create(&cfg.state_dir)?.0.public_key(),
            };
            custody::outln!(
                "# 设备 {} ({}) 公钥, 请交 IT 登记 / device public key for enrolment",
                cfg.serial,
                cfg.profile.id
            )?;
            custody::outln!(
                "# key id (SHA-256 of the DER public key): {}",
                public.key_id()
            )?;
            custody::out!("{}", public.to_pem())?;
        }
        Command::Bind { clip, case } => {
            let mut sealer = Sealer::load(cfg)?;
            let stored = sealer.bind(&clip, &case)?;
            custody::outln!("bound as seq {}: {}", stored.body().seq, stored.hash())?;
        }
        Command::Annotate {
            clip,
            proves,
            speakers,
            summary,
        } => {
            let speakers = speakers
                .iter()
                .map(|s| {
                    let (name, identity) = s
                        .split_once(':')
                        .with_context(|| format!("--speaker {s:?}: expected NAME:IDENTITY"))?;
                    Ok(Speaker {
                        name: name.trim().into(),
                        identity: identity.trim().into(),
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let mut sealer = Sealer::load(cfg)?;
            let stored = sealer.annotate(&clip, proves, speakers, summary)?;
            custody::outln!("annotated as seq {}: {}", stored.body().seq, stored.hash())?;
        }
    }
    Ok(if found_problems {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Completes on Ctrl-C or SIGTERM (how a service manager stops the agent).
async fn stop_requested() {
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
