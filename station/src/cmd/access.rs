//! `custody-station access`: the access log (who saw or copied what, when, why, under
//! which approval), each event with its inclusion proof.

use std::path::Path;
use std::process::ExitCode;

use custody_station::AccessQuery;

use super::login::{LoginArgs, login};

/// Arguments of `access`.
#[derive(clap::Args)]
pub struct Args {
    /// Events about one case (any spelling of its number).
    #[arg(long)]
    case: Option<String>,
    /// Events of one person (their login).
    #[arg(long)]
    person: Option<String>,
    /// Events that served one clip (number or record hash).
    #[arg(long)]
    clip: Option<String>,
    /// Events made under one request.
    #[arg(long)]
    request: Option<u64>,
    /// Only the newest N events.
    #[arg(long, value_name = "N")]
    newest: Option<usize>,
    #[command(flatten)]
    login: LoginArgs,
}

/// Prints the access log; JSON carries each event's `c2sp.org/tlog-proof@v1` proof.
pub fn run(config: &Path, args: &Args, json: bool) -> anyhow::Result<ExitCode> {
    let station = super::open(config)?;
    let actor = login(&station, &args.login)?;
    let query = AccessQuery {
        case: args
            .case
            .as_deref()
            .map(|c| station.case_number(c).map(|n| n.to_string()))
            .transpose()?,
        person: args
            .person
            .as_deref()
            .map(|p| station.person(p).map(|p| p.id))
            .transpose()?,
        clip: args
            .clip
            .as_deref()
            .map(|c| station.find_clip(c))
            .transpose()?,
        request: args.request,
        newest: args.newest,
    };
    let entries = station.access_log(&actor, &query)?;
    if json {
        custody::outln!("{}", serde_json::to_string_pretty(&entries)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let offset = station.config().utc_offset;
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let f = &e.event.fact;
            vec![
                e.event.log_index.to_string(),
                e.event
                    .at
                    .with_timezone(&offset)
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string(),
                f.action.name_zh().into(),
                match (&e.login, &e.name) {
                    (Some(l), Some(n)) => format!("{n}（{l}）"),
                    _ => "—".into(),
                },
                f.role.map_or("—", |r| r.name_zh()).into(),
                f.case_number.clone().unwrap_or_default(),
                f.records.len().to_string(),
                f.request.map(|r| r.to_string()).unwrap_or_default(),
                f.query.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let columns = [
        ("日志序号", true),
        ("时间", false),
        ("操作", false),
        ("人员", false),
        ("角色", false),
        ("案件", false),
        ("视音频", true),
        ("申请", true),
        ("条件", false),
    ];
    custody::out!("{}", super::table(&columns, &rows))?;
    custody::outln!(
        "共 {} 条；每条的包含证明见 --json 的 proof 字段",
        entries.len()
    )?;
    Ok(ExitCode::SUCCESS)
}
