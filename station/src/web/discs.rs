//! 光盘: every archive disc with its last burn and check, the discs due for their
//! periodic check, and the forms to build a case's disc set, burn an image and verify
//! one. Building and burning are clerks' work and access events (the Station's
//! `build_discs` and `burn_disc` write them first); a verify reads a disc back.
//! Work that takes longer than [`HANDOFF`] goes on in the background: the page shows its
//! progress live (the station's disc board, over SSE) and its outcome when it ends.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use clap::ValueEnum as _;
use custody::Role;
use maud::{Markup, html};
use serde::Deserialize;

use super::{Denied, LoggedIn, Web, WebError, page};
use crate::Medium;

/// The build form's fields.
#[derive(Deserialize)]
pub struct BuildForm {
    csrf: String,
    case: String,
    media: String,
}

/// The burn and verify forms' fields.
#[derive(Deserialize)]
pub struct DiscForm {
    csrf: String,
    volume: String,
    #[serde(default)]
    drive: String,
}

fn refuse(session: &super::Session) -> Result<(), Denied> {
    if session.actor.role() == Role::Officer {
        return Err(Denied::Forbidden(
            "refused: the discs page is for records staff",
        ));
    }
    Ok(())
}

/// Where the station keeps the images it builds.
fn images(station: &crate::Station) -> std::path::PathBuf {
    station.config().data_dir.join("discs")
}

/// A disc image of the station's folder, by volume id (letters and digits only).
fn image(station: &crate::Station, volume: &str) -> anyhow::Result<std::path::PathBuf> {
    if volume.is_empty() || !volume.chars().all(|c| c.is_ascii_alphanumeric()) {
        anyhow::bail!("a volume id is letters and digits: {volume:?}");
    }
    Ok(images(station).join(format!("{volume}.iso")))
}

/// How long a form waits for its disc work before the page shows its progress instead.
pub const HANDOFF: Duration = Duration::from_secs(2);

/// The live part: the disc work under way and `person`'s outcomes not yet shown.
fn work(web: &Web, person: u64) -> Markup {
    let notes = web
        .disc_notes
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&person)
        .cloned()
        .unwrap_or_default();
    work_with(web, &notes)
}

/// The live part with `notes` as the outcomes to show.
fn work_with(web: &Web, notes: &[String]) -> Markup {
    let rows = web.station.disc_work().snapshot();
    html! {
        (super::dock::progress_table(&rows, ["任务", "案件", "没有进行中的光盘任务"], false))
        @for n in notes { (maud::PreEscaped(n)) }
    }
}

/// Runs `job` (the outcome's note, or why not) off the async threads: its page when it
/// ends within [`HANDOFF`], else the discs page, where its progress shows and its
/// outcome will.
async fn run(
    web: Arc<Web>,
    session: &super::Session,
    job: impl FnOnce(&crate::Station) -> anyhow::Result<Markup> + Send + 'static,
) -> Response {
    let station = Arc::clone(&web.station);
    let mut task = tokio::task::spawn_blocking(move || job(&station));
    match tokio::time::timeout(HANDOFF, &mut task).await {
        Ok(Ok(Ok(note))) => render(&web, session, Some(note)).await,
        Ok(Ok(Err(e))) => WebError::from_station(&e).into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("内部错误：{e}")).into_response(),
        Err(_) => {
            let person = session.actor.id();
            let later = Arc::clone(&web);
            tokio::spawn(async move {
                let note = match task.await {
                    Ok(Ok(note)) => note,
                    Ok(Err(e)) => html! { p.error { (format!("{e:#}")) } },
                    Err(e) => html! { p.error { "内部错误：" (e.to_string()) } },
                };
                later
                    .disc_notes
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry(person)
                    .or_default()
                    .push(note.into_string());
            });
            Redirect::to("/discs").into_response()
        }
    }
}

async fn render(web: &Web, session: &super::Session, note: Option<Markup>) -> Response {
    let found = web
        .blocking(|station| {
            let all = station.ledger().all_discs()?;
            let due = station.discs_due(station.now(), station.config().disc_check_years)?;
            Ok((all, due))
        })
        .await;
    let (all, due) = match found {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    // Shown now, so taken off the list the live part shows, in one step: an outcome that
    // arrives meanwhile is shown by the next page, never dropped unseen.
    let notes = web
        .disc_notes
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&session.actor.id())
        .unwrap_or_default();
    let live = work_with(web, &notes);
    page::layout(
        "光盘",
        Some(&session.actor),
        Some(&session.csrf),
        html! {
            @if let Some(n) = note { (n) }
            h2 { "进行中" }
            div #work hx-ext="sse" sse-connect="/discs/events" sse-swap="work" { (live) }
            table #discs {
                tr { th { "卷标" } th { "案件" } th { "套" } th { "张" } th { "介质" } th { "刻录" } th { "核验" } }
                @for d in &all {
                    tr data-volume=(d.volume_id) {
                        td { (d.volume_id) } td { (d.case_number) } td { (d.set) } td { (d.disc) "/" (d.of) } td { (d.medium) }
                        td { @match d.burned { Some(true) => "已刻录", Some(false) => "刻录失败", None => "未刻录" } }
                        td { @match d.intact { Some(true) => "核验通过", Some(false) => "核验失败", None => "未核验" } }
                    }
                }
            }
            h2 { "到期待核验（" (due.len()) " 张）" }
            ul { @for d in &due { li { (d.disc.volume_id) "（" (d.disc.case_number) "，上次 " (d.since.format("%Y-%m-%d")) "）" } } }
            h2 { "制作案件光盘" }
            form.stack method="post" action="/discs/build" {
                input type="hidden" name="csrf" value=(session.csrf);
                label for="case" { "案件编号" }
                input #case type="text" name="case" required;
                label for="media" { "介质" }
                select #media name="media" {
                    @for m in Medium::value_variants() { option value=(m.as_str()) { (m.as_str()) } }
                }
                p { button type="submit" { "制作" } }
            }
            h2 { "刻录或核验" }
            form.stack method="post" action="/discs/burn" {
                input type="hidden" name="csrf" value=(session.csrf);
                label for="volume" { "卷标" }
                input #volume type="text" name="volume" required;
                label for="drive" { "刻录机（如 /dev/sr0）" }
                input #drive type="text" name="drive";
                p {
                    button type="submit" { "刻录" }
                    " "
                    button type="submit" formaction="/discs/verify" { "核验" }
                }
            }
        },
    )
    .into_response()
}

/// `GET /discs`.
pub async fn page(State(web): State<Arc<Web>>, LoggedIn(session): LoggedIn) -> Response {
    if let Err(denied) = refuse(&session) {
        return denied.into_response();
    }
    render(&web, &session, None).await
}

/// `POST /discs/build`.
pub async fn build(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Form(form): Form<BuildForm>,
) -> Response {
    let (_, session) = match web.checked(&headers, &form.csrf) {
        Ok(s) => s,
        Err(denied) => return denied.into_response(),
    };
    let Ok(medium) = Medium::from_str(&form.media, true) else {
        return WebError::forbidden("unknown medium").into_response();
    };
    let actor = session.actor.clone();
    run(web, &session, move |station| {
        let discs = station.build_discs(&actor, &form.case, medium, None, &images(station))?;
        Ok(html! {
            p.ok #built {
                "已制作 " (discs.len()) " 张："
                @for d in &discs { " " code { (d.volume_id) } }
            }
        })
    })
    .await
}

/// `POST /discs/burn`.
pub async fn burn(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Form(form): Form<DiscForm>,
) -> Response {
    let (_, session) = match web.checked(&headers, &form.csrf) {
        Ok(s) => s,
        Err(denied) => return denied.into_response(),
    };
    let actor = session.actor.clone();
    run(web, &session, move |station| {
        let b = station.burn_disc(&actor, &image(station, &form.volume)?, form.drive.trim())?;
        Ok(html! {
            p class=(if b.burned { "ok" } else { "error" }) #burned {
                (b.volume_id) "：" (b.detail)
            }
        })
    })
    .await
}

/// `POST /discs/verify`: reads the image (or a drive) back and checks everything on it.
pub async fn verify(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Form(form): Form<DiscForm>,
) -> Response {
    let (_, session) = match web.checked(&headers, &form.csrf) {
        Ok(s) => s,
        Err(denied) => return denied.into_response(),
    };
    if let Err(denied) = refuse(&session) {
        return denied.into_response();
    }
    run(web, &session, move |station| {
        let source = match form.drive.trim() {
            "" => image(station, &form.volume)?.display().to_string(),
            drive => drive.to_owned(),
        };
        let check = station.verify_disc(&source)?;
        Ok(html! {
            div #verified data-intact=(check.is_intact()) {
                @for line in check.lines_zh() { p class=(if check.is_intact() { "ok" } else { "error" }) { (line) } }
            }
        })
    })
    .await
}

/// `GET /discs/events`: `event: work` with the live part whenever it changes.
pub async fn events(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    let person = match web.session(&headers) {
        Ok((_, s)) if s.actor.role() != Role::Officer => s.actor.id(),
        Ok(_) => return StatusCode::FORBIDDEN.into_response(),
        Err(_) => return StatusCode::UNAUTHORIZED.into_response(),
    };
    super::dock::live("work", move || work(&web, person).into_string())
}
