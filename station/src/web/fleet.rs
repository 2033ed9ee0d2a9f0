//! 设备: IT's view of the fleet: every device, who holds it, online or offline, battery,
//! clips it still holds and the oldest against its deadline, free storage, clock error,
//! the spread of agent and firmware versions, and the ratio of devices to officers (at
//! least one per two). Content-free: no footage, no clip metadata.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::html;

use super::{LoggedIn, Web, page};

fn local(rfc3339: &str, offset: chrono::FixedOffset) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339).map_or_else(
        |_| rfc3339.to_owned(),
        |t| {
            t.with_timezone(&offset)
                .format("%Y-%m-%d %H:%M")
                .to_string()
        },
    )
}

fn mib(bytes: u64) -> String {
    #[expect(clippy::cast_precision_loss, reason = "display only")]
    let v = bytes as f64 / 1_073_741_824.0;
    format!("{v:.1} GiB")
}

/// `GET /fleet`.
pub async fn page(State(web): State<Arc<Web>>, LoggedIn(session): LoggedIn) -> Response {
    let found = web
        .blocking(|station| {
            Ok((
                station.fleet_view()?,
                station.config().utc_offset,
                station.now(),
            ))
        })
        .await;
    let (view, offset, now) = match found {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    page::layout(
        "设备",
        Some(&session.actor),
        Some(&session.csrf),
        html! {
            p #ratio data-enough=(view.enough_devices()) {
                "登记设备 " (view.devices.len()) " 台，领用民警 " (view.officers) " 人（要求每 2 人至少 1 台）："
                @if view.enough_devices() { span.ok { "符合" } } @else { span.error { "不足" } }
            }
            table #fleet {
                tr { th { "设备" } th { "型号" } th { "领用人" } th { "状态" } th { "电量" } th { "待存储" } th { "最早待存储（时限）" } th { "剩余空间" } th { "时钟误差" } th { "最后上报" } }
                @for d in &view.devices {
                    @let t = d.telemetry.as_ref();
                    tr data-serial=(d.serial) {
                        td { (d.serial) }
                        td { (d.hw_profile) }
                        td { @for (cert, name) in &d.officers { (name) "（" (cert) "） " } }
                        td { @match d.status.as_deref() { Some("online") => "在线", Some("offline") => "离线", _ => "未知" } }
                        td { @match t.and_then(|t| t.battery_percent) { Some(b) => { (b) "%" }, None => "—" } }
                        td { @match d.pending_clips { Some(n) => { (n) }, None => "—" } }
                        td {
                            @match (d.oldest_pending_recorded, d.deadline) {
                                (Some(o), Some(due)) => {
                                    (o.format("%m-%d %H:%M")) "（" (due.format("%m-%d %H:%M")) "）"
                                    @if due.with_timezone(&chrono::Utc) <= now { " " span.error { "已超期" } }
                                }
                                _ => "—",
                            }
                        }
                        td { @match t.and_then(|t| t.storage_free_bytes) { Some(b) => { (mib(b)) }, None => "—" } }
                        td { @match t { Some(t) => { (t.clock_error_ms) " ms" }, None => "—" } }
                        td { @match d.last_heard.as_deref() { Some(h) => { (local(h, offset)) }, None => "从未上报" } }
                    }
                }
            }
            h2 { "软件版本分布（agent / 固件）" }
            table {
                tr { th { "版本" } th { "设备数" } }
                @for (version, n) in view.versions() { tr { td { (version) } td { (n) } } }
            }
        },
    )
    .into_response()
}
