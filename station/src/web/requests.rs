//! 审批: requests (调阅/复制申请) with where each stands, a form to make one, the
//! approve/reject forms (the Station applies the matrix: never the requester, the
//! recording officer or IT), and the export of an approved request by its requester.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use custody::{ExportForm, Role};
use maud::{Markup, html};
use serde::Deserialize;

use super::{Denied, LoggedIn, Web, WebError, page};
use crate::{APPROVAL_DAYS, NewRequest, RequestState, RequestStatus, Requirement};

/// The request form's fields.
#[derive(Deserialize)]
pub struct RequestForm {
    csrf: String,
    #[serde(default)]
    case: String,
    /// Clip numbers or record hashes, one per line.
    #[serde(default)]
    clips: String,
    purpose: String,
    form: String,
    destination: String,
    #[serde(default)]
    outside: Option<String>,
    #[serde(default)]
    sensitive: Option<String>,
}

/// The decision form's fields.
#[derive(Deserialize)]
pub struct DecideForm {
    csrf: String,
    decision: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    days: Option<i64>,
}

/// The export form's fields.
#[derive(Deserialize)]
pub struct ExportForm2 {
    csrf: String,
}

fn needs(list: &[Requirement]) -> String {
    let names: Vec<String> = list.iter().map(Requirement::zh).collect();
    names.join("、")
}

fn refuse_it(session: &super::Session) -> Result<(), Denied> {
    if session.actor.role() == Role::It {
        return Err(Denied::Forbidden(
            "refused: IT 管理员 runs the station and sees no evidence (requests)",
        ));
    }
    Ok(())
}

/// Requests per page of the list.
const PER_PAGE: usize = 50;

/// The list's page (from 0).
#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    page: usize,
}

/// `GET /requests`: the requests a page at a time, newest first, and the form to make one.
pub async fn list(
    State(web): State<Arc<Web>>,
    LoggedIn(session): LoggedIn,
    Query(q): Query<ListQuery>,
) -> Response {
    if let Err(denied) = refuse_it(&session) {
        return denied.into_response();
    }
    let at = q.page;
    let (all, total) = match web
        .blocking(move |station| station.requests_page(at, PER_PAGE))
        .await
    {
        Ok(found) => found,
        Err(e) => return e.into_response(),
    };
    let pages = total.div_ceil(PER_PAGE).max(1);
    page::layout(
        "审批",
        Some(&session.actor),
        Some(&session.csrf),
        html! {
            p #pages data-page=(at) data-pages=(pages) {
                "共 " (total) " 件申请，第 " (at + 1) " / " (pages) " 页（新的在前）"
                @if at > 0 { " · " a href=(format!("/requests?page={}", at - 1)) { "上一页" } }
                @if at + 1 < pages { " · " a href=(format!("/requests?page={}", at + 1)) { "下一页" } }
            }
            table #requests {
                tr { th { "申请" } th { "状态" } th { "申请人" } th { "形式" } th { "视音频" } th { "案件" } th { "事由" } th { "去向" } th { "尚需审批" } }
                @for s in &all {
                    tr data-state=(state_id(s.state)) {
                        td { a href=(format!("/requests/{}", s.id)) { (s.id) } }
                        td { (s.state.zh()) }
                        td { (s.requester) }
                        td { (s.fact.form.name_zh()) }
                        td { (s.fact.records.len()) }
                        td { (s.fact.case_number.as_deref().unwrap_or("")) }
                        td { (s.fact.purpose) }
                        td { (s.fact.destination) }
                        td { (needs(&s.missing)) }
                    }
                }
            }
            h2 { "提出申请" }
            (request_form(&session.csrf))
        },
    )
    .into_response()
}

fn state_id(state: RequestState) -> &'static str {
    match state {
        RequestState::Pending => "pending",
        RequestState::Approved => "approved",
        RequestState::Rejected => "rejected",
        RequestState::Used => "used",
        RequestState::Expired => "expired",
    }
}

fn request_form(csrf: &str) -> Markup {
    html! {
        form.stack method="post" action="/requests" {
            input type="hidden" name="csrf" value=(csrf);
            label for="case" { "整个案件（案件编号）" }
            input #case type="text" name="case";
            label for="clips" { "或指定视音频（编号或记录哈希，每行一个）" }
            textarea #clips name="clips" rows="3" {}
            label for="purpose" { "事由" }
            input #purpose type="text" name="purpose" required;
            label for="form" { "形式" }
            select #form name="form" {
                @for f in [ExportForm::View, ExportForm::Copy, ExportForm::Disc, ExportForm::Package] {
                    option value=(f.as_str()) { (f.name_zh()) }
                }
            }
            label for="destination" { "去向" }
            input #destination type="text" name="destination" required;
            label { input type="checkbox" name="outside" value="1"; " 对外提供（单位以外）" }
            label { input type="checkbox" name="sensitive" value="1"; " 敏感内容（需上一级审批）" }
            p { button type="submit" { "提交申请" } }
        }
    }
}

/// `POST /requests`.
pub async fn create(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Form(form): Form<RequestForm>,
) -> Response {
    let (_, session) = match web.checked(&headers, &form.csrf) {
        Ok(s) => s,
        Err(denied) => return denied.into_response(),
    };
    let Some(kind) = [
        ExportForm::View,
        ExportForm::Copy,
        ExportForm::Disc,
        ExportForm::Package,
    ]
    .into_iter()
    .find(|f| f.as_str() == form.form) else {
        return WebError::forbidden("unknown form").into_response();
    };
    let actor = session.actor.clone();
    let made = web
        .blocking(move |station| {
            let clips: Vec<String> = form
                .clips
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect();
            let case = form.case.trim();
            station.make_request(
                &actor,
                &NewRequest {
                    case: (!case.is_empty()).then_some(case),
                    clips: &clips,
                    purpose: &form.purpose,
                    form: kind,
                    destination: &form.destination,
                    outside: form.outside.is_some(),
                    sensitive: form.sensitive.is_some(),
                },
            )
        })
        .await;
    match made {
        Ok(status) => Redirect::to(&format!("/requests/{}", status.id)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /requests/{id}`.
pub async fn show(
    State(web): State<Arc<Web>>,
    LoggedIn(session): LoggedIn,
    Path(id): Path<u64>,
) -> Response {
    if let Err(denied) = refuse_it(&session) {
        return denied.into_response();
    }
    match web
        .blocking(move |station| {
            let status = station.request_status(id)?;
            let kept = downloadable(station, &status);
            Ok((status, kept))
        })
        .await
    {
        Ok((status, kept)) => page::layout(
            &format!("第 {id} 号申请"),
            Some(&session.actor),
            Some(&session.csrf),
            status_body(&status, &session, None, kept),
        )
        .into_response(),
        Err(e) => e.into_response(),
    }
}

/// Whether request `s`'s export has an image here to download (exported from this page,
/// or by `request export` into the same folder) and its approval still holds.
fn downloadable(station: &crate::Station, s: &RequestStatus) -> bool {
    station.export_image(s, &exports(station)).is_ok()
}

fn status_body(
    s: &RequestStatus,
    session: &super::Session,
    note: Option<Markup>,
    downloadable: bool,
) -> Markup {
    let mine = s.fact.requester == session.actor.id();
    html! {
        @if let Some(n) = note { (n) }
        table {
            tr { th { "状态" } td #state data-state=(state_id(s.state)) { (s.state.zh()) } }
            tr { th { "申请人" } td { (s.names.get(&s.fact.requester).cloned().unwrap_or_else(|| s.requester.clone())) } }
            tr { th { "形式" } td { (s.fact.form.name_zh()) } }
            tr { th { "视音频" } td { (s.fact.records.len()) " 个" @if let Some(c) = &s.fact.case_number { "（案件 " (c) "）" } } }
            tr { th { "事由" } td { (s.fact.purpose) } }
            tr { th { "去向" } td { (s.fact.destination) @if s.fact.outside { "（对外提供）" } } }
            tr { th { "需审批" } td { (needs(&s.needs)) } }
            tr { th { "尚需" } td { (needs(&s.missing)) } }
            @if let Some(e) = s.expires { tr { th { "有效至" } td { (e.format("%Y-%m-%d %H:%M")) } } }
        }
        h2 { "审批记录" }
        table {
            tr { th { "决定" } th { "审批人" } th { "角色" } th { "理由" } th { "记录" } }
            @for (hash, d) in &s.decisions {
                tr {
                    td { @if d.approved { "批准" } @else { "驳回" } }
                    td { (s.names.get(&d.approver).cloned().unwrap_or_default()) }
                    td { (d.role.name_zh()) }
                    td { (d.reason.as_deref().unwrap_or("")) }
                    td { code { (hash) } }
                }
            }
        }
        @if s.state == RequestState::Pending && !mine {
            h2 { "审批" }
            form.stack method="post" action=(format!("/requests/{}/decide", s.id)) {
                input type="hidden" name="csrf" value=(session.csrf);
                label for="days" { "有效期（天）" }
                input #days type="text" name="days" value=(APPROVAL_DAYS);
                label for="reason" { "理由（驳回时必填）" }
                input #reason type="text" name="reason";
                p {
                    button #approve type="submit" name="decision" value="approve" { "批准" }
                    " "
                    button.reject #reject type="submit" name="decision" value="reject" { "驳回" }
                }
            }
        }
        @if s.state == RequestState::Pending && mine {
            p.muted { "本人提出的申请须由他人审批。" }
            form method="post" action=(format!("/requests/{}/decide", s.id)) {
                input type="hidden" name="csrf" value=(session.csrf);
                input type="hidden" name="days" value=(APPROVAL_DAYS);
                button #approve type="submit" name="decision" value="approve" { "批准（将被拒绝）" }
            }
        }
        @if s.state == RequestState::Approved && mine && s.fact.form != ExportForm::View {
            form method="post" action=(format!("/requests/{}/export", s.id)) {
                input type="hidden" name="csrf" value=(session.csrf);
                button #export type="submit" { "导出" }
            }
        }
        @if downloadable && mine {
            p { a #download href=(format!("/requests/{}/download", s.id)) download { "下载导出的光盘镜像（ISO）" } }
        }
    }
}

/// `POST /requests/{id}/decide`.
pub async fn decide(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Path(id): Path<u64>,
    Form(form): Form<DecideForm>,
) -> Response {
    let (_, session) = match web.checked(&headers, &form.csrf) {
        Ok(s) => s,
        Err(denied) => return denied.into_response(),
    };
    let actor = session.actor.clone();
    let approve = form.decision == "approve";
    let decided = web
        .blocking(move |station| {
            let reason = Some(form.reason.as_str()).filter(|r| !r.trim().is_empty());
            station.decide(
                &actor,
                id,
                approve,
                reason,
                form.days.unwrap_or(APPROVAL_DAYS),
            )
        })
        .await;
    match decided {
        Ok(_) => Redirect::to(&format!("/requests/{id}")).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /requests/{id}/export`: the package, under the station's `exports/` folder.
pub async fn export(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Path(id): Path<u64>,
    Form(form): Form<ExportForm2>,
) -> Response {
    let (_, session) = match web.checked(&headers, &form.csrf) {
        Ok(s) => s,
        Err(denied) => return denied.into_response(),
    };
    let actor = session.actor.clone();
    let done = web
        .blocking(move |station| {
            let done = station.export_with_image(&actor, id, &exports(station))?;
            let status = station.request_status(id)?;
            let kept = downloadable(station, &status);
            Ok((done, status, kept))
        })
        .await;
    match done {
        Ok((done, status, kept)) => {
            let note = html! {
                p.ok #exported {
                    "已导出 " (done.clips) " 个视音频：" code { (done.folder.display()) }
                }
            };
            page::layout(
                &format!("第 {id} 号申请"),
                Some(&session.actor),
                Some(&session.csrf),
                status_body(&status, &session, Some(note), kept),
            )
            .into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// Where the page's exports are written.
fn exports(station: &crate::Station) -> std::path::PathBuf {
    station.config().data_dir.join("exports")
}

/// `GET /requests/{id}/download`: the export's ISO image, to its requester until the
/// approval expires; each download is an access event, written first.
pub async fn download(
    State(web): State<Arc<Web>>,
    LoggedIn(session): LoggedIn,
    Path(id): Path<u64>,
) -> Response {
    let actor = session.actor.clone();
    let opened = web
        .blocking(move |station| {
            let (image, file) = station.open_export_image(&actor, id, &exports(station))?;
            let size = file.metadata()?.len();
            let name = image
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            Ok((file, size, name))
        })
        .await;
    let (file, size, name) = match opened {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let mut response = Response::new(super::cases::stream_file(file, size));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/x-iso9660-image"),
    );
    if let Ok(v) = format!("attachment; filename=\"{name}\"").parse() {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = size.to_string().parse() {
        h.insert(header::CONTENT_LENGTH, v);
    }
    response
}
