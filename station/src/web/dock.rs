//! 采集: each slot's device, clips and bytes, progress, rate and ETA, live over
//! server-sent events (htmx's SSE extension swaps the table in); `?kiosk=1` is the large
//! type an officer reads from a step away. Content-free: no footage, no clip metadata.
//! Inside `serve` it reads the daemon's own progress board; the standalone `web` command
//! reads the daemon's `status.json`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::{Web, page};
use crate::SlotStatus;

/// Sessions that ended within this many hours are shown (one shift at the dock).
const SHIFT_HOURS: i64 = 8;

/// How often the live table is looked at (sent only when it changed).
const TICK: Duration = Duration::from_millis(500);

/// The dock page's query.
#[derive(Deserialize, Default)]
pub struct DockQuery {
    #[serde(default)]
    kiosk: Option<u8>,
}

/// The slots now: the daemon's board when the page runs inside it, else its status file.
fn slots(web: &Web) -> Vec<SlotStatus> {
    let live = web.station.progress().snapshot();
    if web.inside_daemon {
        return live;
    }
    daemon_file(web, crate::STATUS_FILE).unwrap_or(live)
}

/// What the daemon keeps in file `name` of the data folder, if it is there and reads.
fn daemon_file<T: serde::de::DeserializeOwned>(web: &Web, name: &str) -> Option<T> {
    let bytes = std::fs::read(web.station.config().data_dir.join(name)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn percent(done: u64, total: u64) -> u64 {
    done.saturating_mul(100)
        .checked_div(total)
        .map_or(100, |p| p.min(100))
}

/// The dock now (the SSE event's content too): the slots in progress, then how each
/// slot's last session ended (the daemon's board, or the file it keeps beside its status).
fn board(web: &Web, kiosk: bool) -> Markup {
    let since = web.station.now() - chrono::Duration::hours(SHIFT_HOURS);
    let mut ended: Vec<crate::SlotEnded> = if web.inside_daemon {
        web.station.progress().ended()
    } else {
        daemon_file(web, crate::DOCK_ENDED_FILE).unwrap_or_default()
    };
    ended.retain(|e| e.at >= since);
    let offset = web.station.config().utc_offset;
    html! {
        (progress_table(&slots(web), ["槽位", "设备", "没有正在采集的设备"], kiosk))
        @if !ended.is_empty() {
            h2 { "已结束" }
            table #ended class=[kiosk.then_some("kiosk")] {
                tr { th { "槽位" } th { "设备" } th { "民警" } th { "结果" } th { "时间" } }
                @for e in &ended {
                    tr data-ended=(e.slot) data-complete=(e.complete && e.findings == 0) {
                        td { (e.slot) }
                        td { (e.serial.as_deref().unwrap_or("未识别")) }
                        td { (e.officers.join("、")) }
                        td class=(if e.complete && e.findings == 0 { "ok" } else { "error" }) {
                            (ended_zh(e))
                        }
                        td { (e.at.with_timezone(&offset).format("%H:%M:%S")) }
                    }
                }
            }
        }
    }
}

/// What a slot's end means for the officer: may the device go, or see the clerk.
fn ended_zh(e: &crate::SlotEnded) -> String {
    match (e.serial.is_some(), e.complete, e.findings, e.receipt) {
        (false, _, _, _) => "设备未能识别，文件已隔离保存，请联系内勤".into(),
        (true, false, _, _) => "采集中断（设备拔出或存储故障），请重新插入".into(),
        (true, true, 0, true) => format!("完成：{} 个文件已存储，回执已写入设备", e.clips_verified),
        (true, true, 0, false) => format!("完成：{} 个文件已存储", e.clips_verified),
        (true, true, n, _) => format!(
            "完成：{} 个文件已存储，发现 {n} 个问题，请联系内勤",
            e.clips_verified
        ),
    }
}

/// Rows of live progress under `names` (the first two columns' headings, and what to say
/// when there is none).
pub(super) fn progress_table(slots: &[SlotStatus], names: [&str; 3], kiosk: bool) -> Markup {
    html! {
        @if slots.is_empty() {
            p.muted { (names[2]) }
        } @else {
            table class=[kiosk.then_some("kiosk")] {
                tr { th { (names[0]) } th { (names[1]) } th { "文件" } th { "进度" } th { "速率" } th { "剩余时间" } }
                @for s in slots {
                    @let pct = percent(s.bytes_done, s.bytes_total);
                    tr data-slot=(s.slot) data-percent=(pct) {
                        td { (s.slot) }
                        td { (s.serial) }
                        td { (s.clips_done) " / " (s.clips_total) }
                        td {
                            div.bar { span style=(format!("width:{pct}%")) {} }
                            (pct) "%（" (mib(s.bytes_done)) " / " (mib(s.bytes_total)) " MiB）"
                        }
                        td { (mib(s.rate_bytes_per_sec)) " MiB/s" }
                        td { @match s.eta_secs { Some(e) => { (e) " 秒" }, None => { "—" } } }
                    }
                }
            }
        }
    }
}

fn mib(bytes: u64) -> String {
    #[expect(clippy::cast_precision_loss, reason = "display only")]
    let v = bytes as f64 / 1_048_576.0;
    format!("{v:.1}")
}

/// `GET /dock`.
pub async fn page(
    State(web): State<Arc<Web>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<DockQuery>,
) -> Response {
    // The station's own screen may show it without a login, when configured so.
    let session = match web.session(&headers) {
        Ok((_, s)) => Some(s),
        Err(_) if web.dock_open_to(peer) => None,
        Err(denied) => return denied.into_response(),
    };
    let kiosk = q.kiosk.is_some();
    let events = if kiosk {
        "/dock/events?kiosk=1"
    } else {
        "/dock/events"
    };
    page::layout(
        "采集",
        session.as_ref().map(|s| &s.actor),
        session.as_ref().map(|s| s.csrf.as_str()),
        html! {
            div #slots hx-ext="sse" sse-connect=(events) sse-swap="slots" {
                (board(&web, kiosk))
            }
            p.muted { "本页实时更新；只显示采集进度，不含任何视音频内容。" }
            @if session.is_none() { p { a href="/login" { "登录工作台" } } }
        },
    )
    .into_response()
}

/// `GET /dock/events`: `event: slots` with the table's HTML whenever it changes.
pub async fn events(
    State(web): State<Arc<Web>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<DockQuery>,
) -> Response {
    if web.session(&headers).is_err() && !web.dock_open_to(peer) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let kiosk = q.kiosk.is_some();
    live("slots", move || board(&web, kiosk).into_string())
}

/// A server-sent event stream: `event: NAME` with what `render` gives whenever it
/// changes (looked at every [`TICK`]), until the page is closed.
pub(super) fn live(name: &'static str, render: impl Fn() -> String + Send + 'static) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(2);
    tokio::spawn(async move {
        let mut last = None;
        let mut quiet = 0u32;
        loop {
            let html = render();
            if last.as_ref() == Some(&html) {
                quiet += 1;
                // A comment now and then, so proxies keep the stream open.
                if quiet.is_multiple_of(30)
                    && tx
                        .send(Ok(Bytes::from_static(b": keep-alive\n\n")))
                        .await
                        .is_err()
                {
                    break;
                }
            } else {
                let mut event = format!("event: {name}\n");
                for line in html.lines() {
                    event.push_str("data: ");
                    event.push_str(line);
                    event.push('\n');
                }
                event.push('\n');
                if tx.send(Ok(Bytes::from(event))).await.is_err() {
                    break; // the page was closed
                }
                last = Some(html);
                quiet = 0;
            }
            tokio::time::sleep(TICK).await;
        }
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::new(super::cases::ChannelBody(rx)),
    )
        .into_response()
}
