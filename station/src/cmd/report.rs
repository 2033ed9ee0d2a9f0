//! `custody-station report`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use custody_station::{ReportQuery, SessionId};

/// Arguments of `report`.
#[derive(clap::Args)]
pub struct Args {
    /// Only this device.
    #[arg(long)]
    device: Option<String>,
    /// Only this case (案件编号), including clips bound to it later.
    #[arg(long)]
    case: Option<String>,
    /// Only this officer's clips (执法证号).
    #[arg(long)]
    officer: Option<String>,
    /// Only this dock session.
    #[arg(long)]
    session: Option<i64>,
    /// Recordings ending on or after this day (YYYY-MM-DD, agency time).
    #[arg(long)]
    from: Option<NaiveDate>,
    /// Recordings ending before the end of this day (YYYY-MM-DD, agency time).
    #[arg(long)]
    to: Option<NaiveDate>,
    /// Folder for the report files (default: the station's reports folder).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    login: super::login::LoginArgs,
}

/// Builds the report, writes `report-….json/html`, prints where; exit 1 when it is not clean.
pub fn run(config: &Path, args: &Args, json: bool) -> anyhow::Result<ExitCode> {
    let station = super::open(config)?;
    let actor = super::login::login(&station, &args.login)?;
    let cfg = station.config();
    let day_start = |d: NaiveDate| -> anyhow::Result<DateTime<Utc>> {
        Ok(d.and_time(NaiveTime::MIN)
            .and_local_timezone(cfg.utc_offset)
            .single()
            .context("date out of range")?
            .with_timezone(&Utc))
    };
    let query = ReportQuery {
        device: args.device.clone(),
        case: args.case.clone(),
        session: args.session.map(SessionId),
        from: args.from.map(day_start).transpose()?,
        to: args
            .to
            .map(|d| day_start(d + chrono::Duration::days(1)))
            .transpose()?,
        records: None,
        officer: args.officer.clone(),
    };
    let now = station.now();
    let report = station.report_for(&actor, &query, now)?;
    let dir = args.out.clone().unwrap_or_else(|| station.reports_dir());
    let name = format!(
        "report-{}",
        now.with_timezone(&cfg.utc_offset).format("%Y%m%d-%H%M%S")
    );
    let html = report.write(&dir, &name)?;
    if json {
        custody::outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        let t = &report.totals;
        custody::outln!(
            "{}：{} 个文件（{}），校验通过 {}，哈希不一致 {}，缺失 {}，无签封记录 {}，超期 {}，问题 {}",
            report.scope,
            t.clips,
            super::human_bytes(t.bytes),
            t.verified,
            t.mismatched,
            t.missing,
            t.unattested,
            t.late,
            t.findings
        )?;
        custody::outln!("报告: {}", html.display())?;
    }
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
