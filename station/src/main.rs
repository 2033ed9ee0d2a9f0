//! `custody-station`: the docking-station daemon and its commands.
//!
//! Exit status: 0 success (and, for `ingest`/`report`, nothing found), 1 the command ran
//! and found evidence problems, 2 it could not run (the message says why).

mod cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Custody docking station (执法记录仪采集站).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The station configuration.
    #[arg(long, global = true, default_value = "station.toml")]
    config: PathBuf,
    /// Print JSON for machines instead of tables for people.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ingest every device docked under the dock root, until interrupted.
    Serve,
    /// Ingest the device in one slot folder now, then exit.
    Ingest(cmd::ingest::Args),
    /// Enrol a device: serial, model, public key, officers it is issued to.
    Enroll(cmd::enroll::Args),
    /// Print the station's verifier key, which agents enrol to check receipts.
    Key,
    /// Show per-slot progress of the running daemon.
    Status(cmd::status::Args),
    /// List clips stored late and devices holding clips close to or past their deadline.
    Overdue,
    /// Every enrolled device with its last telemetry (status, battery, pending clips).
    Fleet,
    /// Write an integrity report (JSON + Chinese HTML) for a device, a case or a period.
    Report(cmd::report::Args),
    /// Push the replication queue to the S3 bucket now, until it is empty.
    Replicate,
    /// Read every stored object back; record what is missing or corrupt as findings.
    Audit,
    /// A case file (案卷): its clips from every device, documents and dates; `case attach`
    /// and `case close` add to it.
    Case(cmd::case::Args),
    /// The recording part of the annual statistics (统计年报), per act type: JSON, CSV and
    /// Chinese HTML, every figure at one checkpoint.
    Stats(cmd::stats::Args),
    /// Archive discs (光盘) of a case: build the images, verify a disc or image.
    #[command(subcommand)]
    Disc(cmd::disc::Action),
    /// Put a case's stored clips under legal hold in the S3 bucket (or release them).
    Hold(cmd::hold::Args),
    /// The station's people: add, roles, disable, enable, passwd, list.
    #[command(subcommand)]
    User(cmd::user::Action),
    /// Ask to view or copy clips (调阅/复制申请): a case or clips, purpose, form,
    /// destination.
    Request(cmd::request::RequestArgs),
    /// Every request and where it stands.
    Requests(cmd::login::LoginArgs),
    /// Approve a request (department head of the collecting department; agency head for
    /// outside the agency and for the second approval of sensitive footage).
    Approve(cmd::request::DecideArgs),
    /// Reject a request, with its reason.
    Reject(cmd::request::DecideArgs),
    /// Write the export package of an approved request (once, by its requester): a
    /// folder that verifies with sha256sum and openssl alone, and an ISO image of it.
    Export(cmd::request::ExportArgs),
    /// Play a clip (its bytes to stdout or a file): one's own, one's department's as its
    /// head, or under an approved view request.
    Play(cmd::play::Args),
    /// The access log: who saw or copied what, when, under which approval, each event
    /// with its inclusion proof.
    Access(cmd::access::Args),
    /// Serve the station web page (采集站工作台) on its own, until interrupted.
    Web(cmd::web::Args),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve => cmd::serve::run(&cli.config),
        Command::Ingest(args) => cmd::ingest::run(&cli.config, &args, cli.json),
        Command::Enroll(args) => cmd::enroll::run(&cli.config, &args),
        Command::Key => cmd::key::run(&cli.config),
        Command::Status(args) => cmd::status::run(&cli.config, &args, cli.json),
        Command::Overdue => cmd::overdue::run(&cli.config, cli.json),
        Command::Fleet => cmd::fleet::run(&cli.config, cli.json),
        Command::Report(args) => cmd::report::run(&cli.config, &args, cli.json),
        Command::Replicate => cmd::replicate::run(&cli.config, cli.json),
        Command::Audit => cmd::audit::run(&cli.config, cli.json),
        Command::Hold(args) => cmd::hold::run(&cli.config, &args, cli.json),
        Command::Case(args) => cmd::case::run(&cli.config, &args, cli.json),
        Command::Stats(args) => cmd::stats::run(&cli.config, &args, cli.json),
        Command::Disc(action) => cmd::disc::run(&cli.config, &action, cli.json),
        Command::User(action) => cmd::user::run(&cli.config, &action, cli.json),
        Command::Request(args) => cmd::request::request(&cli.config, &args, cli.json),
        Command::Requests(args) => cmd::request::list(&cli.config, &args, cli.json),
        Command::Approve(args) => cmd::request::decide(&cli.config, &args, true, cli.json),
        Command::Reject(args) => cmd::request::decide(&cli.config, &args, false, cli.json),
        Command::Export(args) => cmd::request::export(&cli.config, &args, cli.json),
        Command::Play(args) => cmd::play::run(&cli.config, &args),
        Command::Access(args) => cmd::access::run(&cli.config, &args, cli.json),
        Command::Web(args) => cmd::web::run(&cli.config, &args),
    };
    match result {
        Ok(code) => code,
        // The reader stopped early (`| head`): a normal end, not a failure.
        Err(e) if custody::cli::is_closed_output(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("custody-station: {e:#}");
            ExitCode::from(2)
        }
    }
}
