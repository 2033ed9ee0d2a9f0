//! 案件: search (a case number in any spelling opens the case; otherwise clips by device,
//! officer and day), the case view, and playback in the browser with HTTP range requests.
//! Every search, view and playback goes through the Station API, which writes the access
//! event first; a clip's ranges are served for a while after its playback event
//! (a browser fetches a video in many ranges: one playback, one event).

use std::fmt::Write as _;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{NaiveDate, NaiveTime};
use maud::{Markup, html};
use serde::Deserialize;

use super::{LoggedIn, Web, page};
use crate::report::ClipRow;
use crate::{CaseView, ClipStatus, ReportQuery};

/// Search results shown on one page.
const SEARCH_LIMIT: usize = 200;
/// Bytes read from the store per chunk of a response.
const CHUNK: usize = 128 * 1024;

/// The search form's fields.
#[derive(Deserialize, Default)]
pub struct SearchForm {
    #[serde(default)]
    case: String,
    #[serde(default)]
    device: String,
    #[serde(default)]
    officer: String,
    #[serde(default)]
    day: String,
}

fn search_form(f: &SearchForm) -> Markup {
    html! {
        form.stack method="get" action="/cases" {
            label for="case" { "案件编号（任意写法，如 襄环罚[2019]75号）" }
            input #case type="text" name="case" value=(f.case);
            label for="device" { "设备编号" }
            input #device type="text" name="device" value=(f.device);
            label for="officer" { "执法证号" }
            input #officer type="text" name="officer" value=(f.officer);
            label for="day" { "录制日期（YYYY-MM-DD）" }
            input #day type="text" name="day" value=(f.day) placeholder="2026-11-20";
            p { button type="submit" { "查询" } }
        }
    }
}

/// `GET /cases`: the search form, and its results.
pub async fn search(
    State(web): State<Arc<Web>>,
    LoggedIn(session): LoggedIn,
    Query(form): Query<SearchForm>,
) -> Response {
    let actor = session.actor.clone();
    let layout = |body: Markup| page::layout("案件", Some(&actor), Some(&session.csrf), body);
    if !form.case.trim().is_empty() {
        let input = form.case.trim().to_owned();
        return match web
            .blocking(move |s| Ok(s.case_number(&input)?.to_string()))
            .await
        {
            Ok(number) => Redirect::to(&format!("/cases/{}", urlencode(&number))).into_response(),
            Err(e) => {
                layout(html! { p.error { (e.message) } (search_form(&form)) }).into_response()
            }
        };
    }
    let searching = !(form.device.trim().is_empty()
        && form.officer.trim().is_empty()
        && form.day.trim().is_empty());
    if !searching {
        return layout(search_form(&form)).into_response();
    }
    let day = match form.day.trim() {
        "" => None,
        d => match d.parse::<NaiveDate>() {
            Ok(d) => Some(d),
            Err(_) => {
                return layout(html! { p.error { "日期应为 YYYY-MM-DD" } (search_form(&form)) })
                    .into_response();
            }
        },
    };
    let (device, officer) = (
        Some(form.device.trim().to_owned()).filter(|d| !d.is_empty()),
        Some(form.officer.trim().to_owned()).filter(|o| !o.is_empty()),
    );
    let searcher = actor.clone();
    let found = web
        .blocking(move |station| {
            let offset = station.config().utc_offset;
            let start = |d: NaiveDate| {
                d.and_time(NaiveTime::MIN)
                    .and_local_timezone(offset)
                    .single()
                    .map(|t| t.with_timezone(&chrono::Utc))
            };
            let query = ReportQuery {
                device,
                from: day.and_then(start),
                to: day.and_then(|d| start(d + chrono::Duration::days(1))),
                ..ReportQuery::default()
            };
            station.search_clips(&searcher, &query, officer.as_deref(), SEARCH_LIMIT)
        })
        .await;
    match found {
        Ok((clips, total)) => layout(html! {
            (search_form(&form))
            p { "共 " (total) " 个视音频" @if total > clips.len() { "，显示前 " (clips.len()) " 个，请缩小范围" } }
            (clip_table(&clips))
        })
        .into_response(),
        Err(e) => e.into_response(),
    }
}

fn clip_table(clips: &[ClipRow]) -> Markup {
    html! {
        table {
            tr { th { "编号" } th { "设备" } th { "录制时间" } th { "地点" } th { "执法人员" } th { "证明对象" } th { "完整性" } th { "24小时" } }
            @for c in clips {
                tr {
                    td { a href=(format!("/clips/{}", c.record)) { (c.number) } }
                    td { (c.serial) }
                    td { (c.time_zh()) }
                    td { (c.place_zh()) }
                    td { (c.officer_zh()) }
                    td { (c.proves.as_deref().unwrap_or("")) }
                    td { (status_zh(c.status)) }
                    td { @if c.late { "超期" } @else { "按时" } }
                }
            }
        }
    }
}

pub(super) fn status_zh(status: ClipStatus) -> &'static str {
    match status {
        ClipStatus::Verified => "完整",
        ClipStatus::Mismatch => "哈希不一致",
        ClipStatus::Missing => "缺失",
    }
}

/// `GET /cases/{number}`: the case view as the person may see it (logged first).
pub async fn case(
    State(web): State<Arc<Web>>,
    LoggedIn(session): LoggedIn,
    Path(number): Path<String>,
) -> Response {
    let actor = session.actor.clone();
    match web
        .blocking(move |station| station.case_view(&actor, &number))
        .await
    {
        Ok(view) => page::layout(
            &format!("案件 {}", view.header.case_number),
            Some(&session.actor),
            Some(&session.csrf),
            case_body(&view),
        )
        .into_response(),
        Err(e) => e.into_response(),
    }
}

fn case_body(view: &CaseView) -> Markup {
    let h = &view.header;
    html! {
        p {
            (h.act_type) "（文书类别：" (h.document_kind) "）"
            @match (h.ended, h.due) {
                (Some(ended), Some(due)) => { "；执法行为结束 " (ended) "，案卷应于 " (due) " 前归档" }
                _ => { "；案件尚未结束" }
            }
            @if view.archived { "；已归档" }
        }
        h2 { "视音频资料（" (view.clips.len()) " 个）" }
        @if view.hidden > 0 { p.muted { "另有 " (view.hidden) " 个不属于您的视音频资料未列出" } }
        (clip_table(&view.clips))
        h2 { "执法文书（" (view.documents.len()) " 份）" }
        table {
            tr { th { "标题" } th { "文件" } th { "大小（字节）" } th { "归入人" } th { "SHA-256" } }
            @for d in &view.documents {
                tr { td { (d.title) } td { (d.file) } td { (d.size) } td { (d.attached_by) } td { code { (d.sha256) } } }
            }
        }
        h2 { "归档光盘（" (view.discs.len()) " 张）" }
        table {
            tr { th { "卷标" } th { "套" } th { "张" } th { "介质" } th { "刻录" } th { "核验" } }
            @for d in &view.discs {
                tr {
                    td { (d.volume_id) } td { (d.set) } td { (d.disc) "/" (d.of) } td { (d.medium) }
                    td { @match d.burned { Some(true) => "已刻录", Some(false) => "刻录失败", None => "未刻录" } }
                    td { @match d.intact { Some(true) => "核验通过", Some(false) => "核验失败", None => "未核验" } }
                }
            }
        }
    }
}

/// A clip page's and media's query: the view request it is played under, if any.
#[derive(Deserialize, Default)]
pub struct PlayQuery {
    request: Option<u64>,
}

/// `GET /clips/{record}`: the player. Opening it writes the playback event (the Station
/// refuses a clip that is not the person's to play) and lets the browser fetch the clip.
pub async fn clip(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Path(record): Path<String>,
    Query(q): Query<PlayQuery>,
) -> Response {
    let (token, session) = match web.session(&headers) {
        Ok(s) => s,
        Err(denied) => return denied.into_response(),
    };
    let actor = session.actor.clone();
    let id = record.clone();
    let opened = web
        .blocking(move |station| Ok(station.open_clip(&actor, &id, q.request)?.0))
        .await;
    let row = match opened {
        Ok(row) => row,
        Err(e) => return e.into_response(),
    };
    web.sessions.grant(&token, &row.record.to_string());
    let src = match q.request {
        Some(r) => format!("/clips/{}/media?request={r}", row.record),
        None => format!("/clips/{}/media", row.record),
    };
    page::layout(
        &format!("播放 {}", row.number),
        Some(&session.actor),
        Some(&session.csrf),
        html! {
            video #player controls preload="metadata" src=(src) {}
            table {
                tr { th { "编号" } td { (row.number) } }
                tr { th { "案件" } td { (row.case_number.as_deref().unwrap_or("—")) } }
                tr { th { "录制时间" } td { (row.time_zh()) } }
                tr { th { "地点" } td { (row.place_zh()) } }
                tr { th { "执法人员" } td { (row.officer_zh()) } }
                tr { th { "证明对象" } td { (row.proves.as_deref().unwrap_or("")) } }
                tr { th { "对话人员" } td { @for p in &row.speakers { (p.name) "（" (p.identity) "） " } } }
                tr { th { "主要内容" } td { (row.summary.as_deref().unwrap_or("")) } }
                tr { th { "设备" } td { (row.serial) "，记录第 " (row.seq) " 条" } }
                tr { th { "完整性" } td { (status_zh(row.status)) } }
                tr { th { "SHA-256" } td { code { (row.signed_sha256) } } }
            }
            p.muted { "本次播放已记入访问日志。" }
        },
    )
    .into_response()
}

/// `GET /clips/{record}/media`: the clip's bytes, whole or the asked range. Without a
/// grant from the player page, the playback event is written here first.
pub async fn media(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Path(record): Path<String>,
    Query(q): Query<PlayQuery>,
) -> Response {
    let Ok((token, session)) = web.session(&headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let granted = session.granted(&record);
    let actor = session.actor.clone();
    let id = record.clone();
    let opened = web
        .blocking(move |station| {
            let row = if granted {
                let hash = station.find_clip(&id)?;
                station
                    .clips_by_record(&[hash])?
                    .pop()
                    .ok_or_else(|| anyhow::anyhow!("no clip {id}"))?
            } else {
                station.open_clip(&actor, &id, q.request)?.0
            };
            let stored: custody::MediaHash = row
                .stored_sha256
                .as_deref()
                .ok_or_else(|| anyhow::anyhow!("clip {} has nothing stored", row.number))?
                .parse()?;
            let size = match station.store().local_path(&stored) {
                Some(path) => std::fs::metadata(path)?.len(),
                None => row.size,
            };
            Ok((row, stored, size))
        })
        .await;
    let (row, stored, size) = match opened {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    if !granted {
        web.sessions.grant(&token, &row.record.to_string());
    }
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => None,
        Some(text) => match parse_range(text, size) {
            Some(r) => Some(r),
            None => {
                return (
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    [(header::CONTENT_RANGE, format!("bytes */{size}"))],
                )
                    .into_response();
            }
        },
    };
    let (start, end) = range.unwrap_or((0, size.saturating_sub(1)));
    let length = if size == 0 { 0 } else { end - start + 1 };
    let body = stream_object(&web, stored, start, length);
    let kind = if row.file.to_ascii_lowercase().ends_with(".mp4") {
        "video/mp4"
    } else {
        "application/octet-stream"
    };
    let mut response = Response::new(body);
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, header::HeaderValue::from_static(kind));
    h.insert(
        header::ACCEPT_RANGES,
        header::HeaderValue::from_static("bytes"),
    );
    if let Ok(v) = length.to_string().parse() {
        h.insert(header::CONTENT_LENGTH, v);
    }
    if range.is_some() {
        if let Ok(v) = format!("bytes {start}-{end}/{size}").parse() {
            h.insert(header::CONTENT_RANGE, v);
        }
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    response
}

/// `bytes=START-END`, `bytes=START-` or `bytes=-SUFFIX` within `size`, as inclusive
/// `(start, end)`; `None` when it cannot be satisfied (several ranges are read as the
/// first).
fn parse_range(text: &str, size: u64) -> Option<(u64, u64)> {
    let spec = text.strip_prefix("bytes=")?.split(',').next()?.trim();
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().ok()?;
            (size.checked_sub(n.min(size))?, size.checked_sub(1)?)
        }
        (start, "") => (start.parse().ok()?, size.checked_sub(1)?),
        (start, end) => (
            start.parse().ok()?,
            end.parse::<u64>().ok()?.min(size.checked_sub(1)?),
        ),
    };
    (start <= end && end < size).then_some((start, end))
}

/// A body streaming `length` bytes of object `hash` from `start`, read off the async
/// threads in chunks (memory bounded by a few chunks whatever the clip's size).
fn stream_object(web: &Web, hash: custody::MediaHash, start: u64, length: u64) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    let station = Arc::clone(&web.station);
    tokio::task::spawn_blocking(move || {
        let send = |item: std::io::Result<Bytes>| tx.blocking_send(item).is_ok();
        let reader: Box<dyn std::io::Read + Send> = match station.store().local_path(&hash) {
            Some(path) => match std::fs::File::open(path).and_then(|mut f| {
                f.seek(SeekFrom::Start(start))?;
                Ok(f)
            }) {
                Ok(f) => Box::new(f),
                Err(e) => {
                    send(Err(e));
                    return;
                }
            },
            None => match station.store().get(&hash) {
                Ok(mut r) => {
                    if let Err(e) = std::io::copy(&mut (&mut r).take(start), &mut std::io::sink()) {
                        send(Err(e));
                        return;
                    }
                    r
                }
                Err(e) => {
                    send(Err(std::io::Error::other(e.to_string())));
                    return;
                }
            },
        };
        pump(reader, length, &tx);
    });
    Body::new(ChannelBody(rx))
}

/// A body streaming the `length` bytes of an open file (an export's image), read off the
/// async threads in chunks.
pub(super) fn stream_file(file: std::fs::File, length: u64) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || pump(file, length, &tx));
    Body::new(ChannelBody(rx))
}

/// Sends up to `length` bytes of `reader` down `tx` a chunk at a time, until the reader
/// ends or fails or the browser goes away.
fn pump(
    mut reader: impl std::io::Read,
    length: u64,
    tx: &tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
) {
    let send = |item: std::io::Result<Bytes>| tx.blocking_send(item).is_ok();
    let mut left = length;
    let mut buf = vec![0; CHUNK];
    while left > 0 {
        let want = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
        match reader.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => {
                left -= n as u64;
                if !send(Ok(Bytes::copy_from_slice(&buf[..n]))) {
                    break; // the browser went away
                }
            }
            Err(e) => {
                send(Err(e));
                break;
            }
        }
    }
}

/// A response body fed by a channel.
pub(super) struct ChannelBody(pub(super) tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|item| item.map(|r| r.map(http_body::Frame::data)))
    }
}

/// A path segment with everything but unreserved ASCII percent-encoded.
pub fn urlencode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_read_as_browsers_send_them_and_refused_beyond_the_clip() {
        assert_eq!(parse_range("bytes=0-", 100), Some((0, 99)));
        assert_eq!(parse_range("bytes=10-19", 100), Some((10, 19)));
        assert_eq!(parse_range("bytes=90-200", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=0-0,5-9", 100), Some((0, 0)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=20-10", 100), None);
        assert_eq!(parse_range("bytes=0-", 0), None);
        assert_eq!(parse_range("items=0-1", 100), None);
        assert_eq!(urlencode("a b/c-1"), "a%20b%2Fc-1");
        assert_eq!(urlencode("号"), "%E5%8F%B7");
    }
}
