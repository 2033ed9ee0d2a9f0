//! 报告: integrity reports by case, device or period, shown a page of clips at a time (a
//! period of 40,000 clips is never one page), with the whole report as JSON or HTML to
//! download. Each report is an access event naming its terms (the Station's
//! `report_for`: clerks, department heads, oversight and the agency head).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, NaiveTime};
use maud::{Markup, html};
use serde::Deserialize;

use super::{LoggedIn, Web, page};
use crate::ReportQuery;

/// Clips per page.
pub const PAGE: usize = 100;

/// The report form's fields.
#[derive(Deserialize, Default, Clone)]
pub struct ReportForm {
    #[serde(default)]
    case: String,
    #[serde(default)]
    device: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    page: usize,
    /// `json` or `html` to download the whole report.
    #[serde(default)]
    download: String,
}

impl ReportForm {
    fn asked(&self) -> bool {
        [&self.case, &self.device, &self.from, &self.to]
            .iter()
            .any(|f| !f.trim().is_empty())
    }

    fn link(&self, page: usize, download: &str) -> String {
        let enc = super::cases::urlencode;
        format!(
            "/reports?case={}&device={}&from={}&to={}&page={page}&download={download}",
            enc(self.case.trim()),
            enc(self.device.trim()),
            enc(self.from.trim()),
            enc(self.to.trim())
        )
    }
}

fn form(f: &ReportForm) -> Markup {
    html! {
        form.stack method="get" action="/reports" {
            label for="case" { "案件编号" }
            input #case type="text" name="case" value=(f.case);
            label for="device" { "设备编号" }
            input #device type="text" name="device" value=(f.device);
            label for="from" { "录制结束自（YYYY-MM-DD）" }
            input #from type="text" name="from" value=(f.from);
            label for="to" { "至（含当日）" }
            input #to type="text" name="to" value=(f.to);
            p { button type="submit" { "生成报告" } }
        }
    }
}

/// `GET /reports`.
pub async fn page(
    State(web): State<Arc<Web>>,
    LoggedIn(session): LoggedIn,
    Query(f): Query<ReportForm>,
) -> Response {
    let layout =
        |body: Markup| page::layout("报告", Some(&session.actor), Some(&session.csrf), body);
    if !f.asked() {
        return layout(form(&f)).into_response();
    }
    let actor = session.actor.clone();
    let asked = f.clone();
    // The page lists one page of clips (counted by the ledger); a download is the whole.
    let whole = matches!(f.download.as_str(), "json" | "html");
    let built = web
        .blocking(move |station| {
            let query = query(station, &asked)?;
            if whole {
                station.report_for(&actor, &query, station.now())
            } else {
                station.report_page_for(&actor, &query, (asked.page, PAGE))
            }
        })
        .await;
    let report = match built {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    if let Some(file) = download(&report, &f.download) {
        return file;
    }
    layout(body(&report, &f)).into_response()
}

/// The report's terms from the form, in the agency's days.
fn query(station: &crate::Station, asked: &ReportForm) -> anyhow::Result<ReportQuery> {
    let offset = station.config().utc_offset;
    let day = |text: &str, next: bool| -> anyhow::Result<Option<chrono::DateTime<chrono::Utc>>> {
        match text.trim() {
            "" => Ok(None),
            t => {
                let d: NaiveDate = t
                    .parse()
                    .map_err(|_| anyhow::anyhow!("日期应为 YYYY-MM-DD：{t}"))?;
                let d = if next {
                    d + chrono::Duration::days(1)
                } else {
                    d
                };
                Ok(d.and_time(NaiveTime::MIN)
                    .and_local_timezone(offset)
                    .single()
                    .map(|t| t.with_timezone(&chrono::Utc)))
            }
        }
    };
    let case = match asked.case.trim() {
        "" => None,
        c => Some(station.case_number(c)?.to_string()),
    };
    Ok(ReportQuery {
        case,
        device: Some(asked.device.trim().to_owned()).filter(|d| !d.is_empty()),
        from: day(&asked.from, false)?,
        to: day(&asked.to, true)?,
        ..ReportQuery::default()
    })
}

/// The whole report as a file to download, when one was asked for.
fn download(report: &crate::Report, kind: &str) -> Option<Response> {
    let (kind, name, bytes) = match kind {
        "json" => (
            "application/json",
            "attachment; filename=\"report.json\"",
            serde_json::to_string_pretty(report).unwrap_or_default(),
        ),
        "html" => (
            "text/html; charset=utf-8",
            "attachment; filename=\"report.html\"",
            report.to_html(),
        ),
        _ => return None,
    };
    Some(
        (
            [
                (header::CONTENT_TYPE, kind),
                (header::CONTENT_DISPOSITION, name),
            ],
            bytes,
        )
            .into_response(),
    )
}

/// The totals, the download links and one page of clips.
fn body(report: &crate::Report, f: &ReportForm) -> Markup {
    let t = &report.totals;
    let (at, pages) = report.page.map_or((0, 1), |p| (p.index, p.pages));
    let shown = &report.clips;
    html! {
        (form(f))
        h2 { (report.scope) }
        p #totals {
            (t.clips) " 个文件，校验通过 " (t.verified) "，哈希不一致 " (t.mismatched) "，缺失 " (t.missing)
            "，无签封记录 " (t.unattested) "，超期 " (t.late) "，问题 " (t.findings)
        }
        p {
            a href=(f.link(0, "html")) { "下载 HTML" } " · " a href=(f.link(0, "json")) { "下载 JSON" }
        }
        p #pages data-page=(at) data-pages=(pages) {
            "第 " (at + 1) " / " (pages) " 页"
            @if at > 0 { " · " a href=(f.link(at - 1, "")) { "上一页" } }
            @if at + 1 < pages { " · " a href=(f.link(at + 1, "")) { "下一页" } }
        }
        table #clips {
            tr { th { "编号" } th { "设备" } th { "录制结束" } th { "存储时间" } th { "完整性" } th { "24小时" } }
            @for c in shown {
                tr {
                    td { (c.number) } td { (c.serial) } td { (c.recorded_end) } td { (c.stored_at) }
                    td { (super::cases::status_zh(c.status)) }
                    td { @if c.late { "超期" } @else { "按时" } }
                }
            }
        }
    }
}
