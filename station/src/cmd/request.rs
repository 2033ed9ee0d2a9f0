//! `custody-station request|requests|approve|reject|export`: asking to view or copy clips,
//! deciding under the approval matrix, and making the export package from an approval.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use custody::ExportForm;
use custody_station::{APPROVAL_DAYS, NewRequest, RequestStatus, Requirement};

use super::login::{LoginArgs, login};

/// Arguments of `request`.
#[derive(clap::Args)]
pub struct RequestArgs {
    /// A whole case (any spelling of its number): every clip under it now.
    #[arg(long, required_unless_present = "clips")]
    case: Option<String>,
    /// A clip, by number (编号) or record hash (repeat for several).
    #[arg(long = "clip")]
    clips: Vec<String>,
    /// 事由: why the footage is needed.
    #[arg(long)]
    purpose: String,
    /// What is to be given.
    #[arg(long, value_enum)]
    form: ExportForm,
    /// Where it goes (e.g. 某某区人民法院).
    #[arg(long = "to")]
    destination: String,
    /// It leaves the agency (对外提供): the agency head approves.
    #[arg(long)]
    outside: bool,
    /// The footage is sensitive: a second, higher approval.
    #[arg(long)]
    sensitive: bool,
    #[command(flatten)]
    login: LoginArgs,
}

/// Arguments of `approve` and `reject`.
#[derive(clap::Args)]
pub struct DecideArgs {
    /// The request's number.
    request: u64,
    /// Why (required to reject).
    #[arg(long)]
    reason: Option<String>,
    /// Days the approval lasts (approve only).
    #[arg(long, default_value_t = APPROVAL_DAYS)]
    days: i64,
    #[command(flatten)]
    login: LoginArgs,
}

/// Arguments of `export`.
#[derive(clap::Args)]
pub struct ExportArgs {
    /// The approved request's number.
    request: u64,
    /// Where the package goes (a folder `RQ<number>` and, for disc and package, its ISO).
    #[arg(long, default_value = "exports")]
    out: PathBuf,
    #[command(flatten)]
    login: LoginArgs,
}

/// `request`: makes the request and prints it with the approvals it needs.
pub fn request(config: &Path, args: &RequestArgs, json: bool) -> anyhow::Result<ExitCode> {
    let station = super::open(config)?;
    let actor = login(&station, &args.login)?;
    let status = station.make_request(
        &actor,
        &NewRequest {
            case: args.case.as_deref(),
            clips: &args.clips,
            purpose: &args.purpose,
            form: args.form,
            destination: &args.destination,
            outside: args.outside,
            sensitive: args.sensitive,
        },
    )?;
    print_status(&status, json)?;
    Ok(ExitCode::SUCCESS)
}

/// `requests`: every request with where it stands (for approvers and requesters).
pub fn list(config: &Path, args: &LoginArgs, json: bool) -> anyhow::Result<ExitCode> {
    let station = super::open(config)?;
    let _actor = login(&station, args)?;
    let all = station.requests()?;
    if json {
        custody::outln!("{}", serde_json::to_string_pretty(&all)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|s| {
            vec![
                s.id.to_string(),
                s.state.zh().into(),
                s.requester.clone(),
                s.fact.form.name_zh().into(),
                s.fact.records.len().to_string(),
                s.fact.case_number.clone().unwrap_or_default(),
                s.fact.purpose.clone(),
                s.fact.destination.clone(),
                needs(&s.missing),
            ]
        })
        .collect();
    let columns = [
        ("申请", true),
        ("状态", false),
        ("申请人", false),
        ("形式", false),
        ("视音频", true),
        ("案件", false),
        ("事由", false),
        ("去向", false),
        ("尚需审批", false),
    ];
    custody::out!("{}", super::table(&columns, &rows))?;
    Ok(ExitCode::SUCCESS)
}

/// `approve` / `reject`.
pub fn decide(
    config: &Path,
    args: &DecideArgs,
    approve: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let station = super::open(config)?;
    let actor = login(&station, &args.login)?;
    let status = station.decide(
        &actor,
        args.request,
        approve,
        args.reason.as_deref(),
        args.days,
    )?;
    print_status(&status, json)?;
    Ok(ExitCode::SUCCESS)
}

/// `export`: the package of an approved request.
pub fn export(config: &Path, args: &ExportArgs, json: bool) -> anyhow::Result<ExitCode> {
    let station = super::open(config)?;
    let actor = login(&station, &args.login)?;
    let done = station.export(&actor, args.request, &args.out)?;
    if json {
        custody::outln!("{}", serde_json::to_string_pretty(&done)?)?;
    } else {
        custody::outln!(
            "第 {} 号申请已导出：视音频 {} 个，文件 {} 个",
            done.request,
            done.clips,
            done.files
        )?;
        custody::outln!("  导出包: {}", done.folder.display())?;
        if let Some(image) = &done.image {
            custody::outln!("  光盘镜像: {}", image.display())?;
        }
        custody::outln!("  导出记录: {}", done.record)?;
        custody::outln!("  核验: custody verify {}", done.folder.display())?;
    }
    Ok(ExitCode::SUCCESS)
}

fn needs(missing: &[Requirement]) -> String {
    let names: Vec<String> = missing.iter().map(Requirement::zh).collect();
    names.join("、")
}

fn print_status(s: &RequestStatus, json: bool) -> anyhow::Result<()> {
    if json {
        custody::outln!("{}", serde_json::to_string_pretty(s)?)?;
        return Ok(());
    }
    custody::outln!(
        "第 {} 号申请（{}）：{}，{} 个视音频，事由：{}，去向：{}{}{}",
        s.id,
        s.state.zh(),
        s.fact.form.name_zh(),
        s.fact.records.len(),
        s.fact.purpose,
        s.fact.destination,
        if s.fact.outside {
            "，对外提供"
        } else {
            ""
        },
        if s.fact.sensitive { "，敏感" } else { "" }
    )?;
    let all: Vec<String> = s.needs.iter().map(Requirement::zh).collect();
    custody::outln!("  需审批: {}", all.join("、"))?;
    if !s.missing.is_empty() {
        custody::outln!("  尚需: {}", needs(&s.missing))?;
    }
    for (hash, d) in &s.decisions {
        custody::outln!(
            "  {} {} {}（{}）{}：{}",
            if d.approved { "批准" } else { "驳回" },
            d.role.name_zh(),
            s.names
                .get(&d.approver)
                .map_or_else(|| format!("#{}", d.approver), Clone::clone),
            d.expires.map_or_else(String::new, |e| format!(
                "有效至 {}",
                e.format("%Y-%m-%d %H:%M")
            )),
            d.reason
                .as_deref()
                .map_or(String::new(), |r| format!("，{r}")),
            hash
        )?;
    }
    Ok(())
}
