//! `custody-station case CASE-NO`: the case file's view; `case attach` stores a document
//! for it, `case close` records that its act ended and sets its due date.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::NaiveDate;
use clap::Subcommand;
use custody_station::{CaseView, ClipStatus};

/// `case` arguments: a case number to show, or an action.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    /// The case's document number, in any spelling the numbering template accepts.
    #[arg(required = true)]
    case: Option<String>,
    #[command(flatten)]
    login: super::login::LoginArgs,
    #[command(subcommand)]
    action: Option<Action>,
}

#[derive(Subcommand)]
enum Action {
    /// Attach a document (执法文书: PDF, JPEG, PNG, TIFF or OFD) to a case: stored
    /// write-once, described by a station-signed record in the log.
    Attach {
        /// The case's document number.
        case: String,
        /// The file.
        file: PathBuf,
        /// Its title, e.g. 行政处罚决定书.
        #[arg(long)]
        title: String,
        /// Who attaches it (the clerk).
        #[arg(long)]
        by: String,
    },
    /// Record that the case's enforcement act ended: the case file is due 20 working days
    /// later by the official calendar.
    Close {
        /// The case's document number.
        case: String,
        /// The day the act ended (YYYY-MM-DD).
        #[arg(long)]
        ended: NaiveDate,
        /// Who closes it.
        #[arg(long)]
        by: String,
    },
}

/// Runs the command; the view exits 1 when a clip of the case is not intact.
pub fn run(config: &Path, args: &Args, json: bool) -> anyhow::Result<ExitCode> {
    match &args.action {
        Some(Action::Attach {
            case,
            file,
            title,
            by,
        }) => {
            let station = super::open_for_writing(config)?;
            let rec = station.attach_document(case, file, title, by)?;
            print_sealed(&rec, json, "文书已归入案卷")
        }
        Some(Action::Close { case, ended, by }) => {
            let station = super::open(config)?;
            let rec = station.close_case(case, *ended, by)?;
            print_sealed(&rec, json, "案件已结束")
        }
        None => {
            let station = super::open(config)?;
            let case = args.case.as_deref().unwrap_or_default();
            let actor = super::login::login(&station, &args.login)?;
            let view = station.case_view(&actor, case)?;
            if json {
                custody::outln!("{}", serde_json::to_string_pretty(&view)?)?;
            } else {
                print_view(&view)?;
            }
            let intact = view.clips.iter().all(|c| c.status == ClipStatus::Verified);
            Ok(if intact {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

fn print_sealed(rec: &custody::StationRecord, json: bool, what: &str) -> anyhow::Result<ExitCode> {
    let body = rec.body();
    if json {
        let out = serde_json::json!({
            "record": rec.hash().to_string(),
            "seq": body.seq,
            "fact": body.fact,
        });
        custody::outln!("{}", serde_json::to_string_pretty(&out)?)?;
    } else {
        custody::outln!("{what}：{}", body.fact.case_number().unwrap_or("—"))?;
        match &body.fact {
            custody::StationFact::Document(d) => custody::outln!(
                "  {}（{}，{}，SHA-256 {}）",
                d.title,
                d.file,
                super::human_bytes(d.size),
                d.sha256
            )?,
            custody::StationFact::CaseClosed(c) => custody::outln!(
                "  执法行为结束 {}，案卷应于 {} 前归档（{} 个工作日）",
                c.ended,
                c.due,
                custody_station::CASE_FILE_WORKING_DAYS
            )?,
            // Disc and access records are sealed by the commands that print their own.
            custody::StationFact::DiscBuilt(_)
            | custody::StationFact::DiscBurned(_)
            | custody::StationFact::DiscChecked(_)
            | custody::StationFact::Access(_)
            | custody::StationFact::Request(_)
            | custody::StationFact::Decision(_) => {}
        }
        custody::outln!("  采集站记录 第 {} 条：{}", body.seq, rec.hash())?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_view(view: &CaseView) -> anyhow::Result<()> {
    let h = &view.header;
    custody::outln!(
        "案件 {}（{}，文书类别：{}）",
        h.case_number,
        h.act_type,
        h.document_kind
    )?;
    match (h.ended, h.due) {
        (Some(ended), Some(due)) => {
            custody::outln!("执法行为结束 {ended}，案卷应于 {due} 前归档")?;
        }
        _ => custody::outln!("案件尚未结束（custody-station case close 设定结束日期）")?,
    }
    custody::outln!()?;
    custody::outln!("视音频资料（{} 个）：", view.clips.len())?;
    if view.hidden > 0 {
        custody::outln!("  （另有 {} 个不属于您的视音频资料未列出）", view.hidden)?;
    }
    let rows: Vec<Vec<String>> = view
        .clips
        .iter()
        .map(|c| {
            vec![
                c.number.clone(),
                c.serial.clone(),
                c.time_zh(),
                c.place_zh(),
                c.officer_zh(),
                c.proves.clone().unwrap_or_default(),
                match c.status {
                    ClipStatus::Verified => "完整".into(),
                    ClipStatus::Mismatch => "与签名不符".into(),
                    ClipStatus::Missing => "缺失".into(),
                },
                if c.late { "超期" } else { "按时" }.into(),
            ]
        })
        .collect();
    custody::out!(
        "{}",
        super::table(
            &[
                ("编号", false),
                ("设备", false),
                ("录制时间（时钟、误差）", false),
                ("地点", false),
                ("执法人员", false),
                ("证明对象", false),
                ("完整性", false),
                ("24小时", false),
            ],
            &rows
        )
    )?;
    custody::outln!()?;
    custody::outln!("执法文书（{} 份）：", view.documents.len())?;
    for d in &view.documents {
        custody::outln!(
            "  {}  {}  {}  {}  SHA-256 {}",
            d.title,
            d.file,
            super::human_bytes(d.size),
            d.attached_by,
            d.sha256
        )?;
    }
    custody::outln!()?;
    custody::outln!(
        "归档光盘（{} 张）：{}",
        view.discs.len(),
        if view.archived {
            "已归档"
        } else {
            "尚未归档"
        }
    )?;
    for d in &view.discs {
        custody::outln!(
            "  {}  第 {} 套 {}/{}  {}  {}  {}",
            d.volume_id,
            d.set,
            d.disc,
            d.of,
            d.medium,
            match d.burned {
                Some(true) => "已刻录",
                Some(false) => "刻录失败",
                None => "未刻录",
            },
            match d.intact {
                Some(true) => "核验通过",
                Some(false) => "核验失败",
                None => "未核验",
            }
        )?;
    }
    Ok(())
}
