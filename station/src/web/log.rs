//! 日志: the latest signed checkpoint, for outside verifiers (also as plain text at
//! `/log/checkpoint`, which holds only hashes and needs no login), and for oversight and
//! the agency head the access log: who saw or copied what, each event with its proof.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use custody::Role;
use maud::html;
use serde::Deserialize;

use super::{LoggedIn, Web, page};
use crate::AccessQuery;

/// Access events shown on the page (the newest).
const SHOWN: usize = 200;

/// The log page's query.
#[derive(Deserialize, Default)]
pub struct LogQuery {
    #[serde(default)]
    case: String,
}

/// `GET /log/checkpoint`: the latest signed checkpoint, verbatim.
pub async fn checkpoint(State(web): State<Arc<Web>>) -> Response {
    match web
        .blocking(|station| Ok(station.ledger().latest_checkpoint()?))
        .await
    {
        Ok(Some(cp)) => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            cp.note,
        )
            .into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "no checkpoint yet").into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /log`.
pub async fn page(
    State(web): State<Arc<Web>>,
    LoggedIn(session): LoggedIn,
    Query(q): Query<LogQuery>,
) -> Response {
    let actor = session.actor.clone();
    let reads_log = matches!(actor.role(), Role::Oversight | Role::AgencyHead);
    let case = q.case.trim().to_owned();
    let found = web
        .blocking(move |station| {
            let events = if reads_log {
                let case = match case.as_str() {
                    "" => None,
                    c => Some(station.case_number(c)?.to_string()),
                };
                let mut newest = station.access_log(
                    &actor,
                    &AccessQuery {
                        case,
                        newest: Some(SHOWN),
                        ..AccessQuery::default()
                    },
                )?;
                newest.reverse();
                newest
            } else {
                Vec::new()
            };
            // After the page's own event, so the checkpoint covers everything listed.
            let checkpoint = station.ledger().latest_checkpoint()?;
            Ok((checkpoint, events, station.config().utc_offset))
        })
        .await;
    let (checkpoint, events, offset) = match found {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    page::layout(
        "日志",
        Some(&session.actor),
        Some(&session.csrf),
        html! {
            h2 { "最新检查点" }
            @match &checkpoint {
                Some(cp) => {
                    p {
                        "日志大小 " (cp.size) "；供外部核验（纯文本，无需登录）："
                        a href="/log/checkpoint" { "/log/checkpoint" } "、"
                        code { "/log/inclusion?index=N" } "（包含证明）、"
                        code { "/log/consistency?from=A&to=B" } "（一致性证明）"
                    }
                    pre { (cp.note) }
                }
                None => { p.muted { "尚无检查点" } }
            }
            @if reads_log {
                h2 { "访问日志" }
                form method="get" action="/log" {
                    input type="text" name="case" value=(q.case) placeholder="案件编号";
                    " " button type="submit" { "筛选" }
                }
                table #access {
                    tr { th { "日志序号" } th { "时间" } th { "操作" } th { "人员" } th { "角色" } th { "案件" } th { "视音频" } th { "申请" } th { "包含证明" } }
                    @for e in &events {
                        @let f = &e.event.fact;
                        tr data-action=(f.action.as_str()) {
                            td { (e.event.log_index) }
                            td { (e.event.at.with_timezone(&offset).format("%Y-%m-%d %H:%M:%S")) }
                            td { (f.action.name_zh()) }
                            td { (e.name.as_deref().unwrap_or("—")) }
                            td { (f.role.map_or("—", |r| r.name_zh())) }
                            td { (f.case_number.as_deref().unwrap_or("")) }
                            td { (f.records.len()) }
                            td { @if let Some(r) = f.request { a href=(format!("/requests/{r}")) { (r) } } }
                            td { details { summary { "查看" } pre { (e.proof) } } }
                        }
                    }
                }
            }
        },
    )
    .into_response()
}

/// The query of the proof routes.
#[derive(Deserialize)]
pub struct ProofQuery {
    /// Inclusion: the leaf's index.
    index: Option<u64>,
    /// Consistency: the older tree size.
    from: Option<u64>,
    /// Consistency: the newer tree size (default: the latest checkpoint's).
    to: Option<u64>,
}

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

/// `GET /log/inclusion?index=N`: leaf N's inclusion proof to the latest checkpoint, as
/// `c2sp.org/tlog-proof@v1` text (only hashes: no login).
pub async fn inclusion(State(web): State<Arc<Web>>, Query(q): Query<ProofQuery>) -> Response {
    let Some(index) = q.index else {
        return (StatusCode::BAD_REQUEST, "give ?index=N").into_response();
    };
    let found = web
        .blocking(move |station| {
            let ledger = station.ledger();
            let cp = ledger
                .latest_checkpoint()?
                .ok_or_else(|| anyhow::anyhow!("no checkpoint yet"))?;
            if index >= cp.size {
                anyhow::bail!(
                    "leaf {index} is not in the latest checkpoint (size {})",
                    cp.size
                );
            }
            let proof = custody::TlogProof {
                extra: None,
                index,
                hashes: ledger.inclusion_proof(index, cp.size)?,
                checkpoint: cp.note,
            };
            Ok(proof.to_text())
        })
        .await;
    match found {
        Ok(proof) => text(proof),
        Err(e) => e.into_response(),
    }
}

/// `GET /log/consistency?from=A[&to=B]`: the consistency proof between two signed tree
/// sizes, one base64 hash a line (only hashes: no login).
pub async fn consistency(State(web): State<Arc<Web>>, Query(q): Query<ProofQuery>) -> Response {
    let Some(from) = q.from else {
        return (StatusCode::BAD_REQUEST, "give ?from=SIZE").into_response();
    };
    let found = web
        .blocking(move |station| {
            use base64::Engine as _;
            let ledger = station.ledger();
            let to = match q.to {
                Some(to) => to,
                None => {
                    ledger
                        .latest_checkpoint()?
                        .ok_or_else(|| anyhow::anyhow!("no checkpoint yet"))?
                        .size
                }
            };
            for size in [from, to] {
                if ledger.checkpoint_at(size)?.is_none() {
                    anyhow::bail!("no signed checkpoint of size {size}");
                }
            }
            let hashes = ledger.consistency_proof(from, to)?;
            Ok(hashes
                .iter()
                .map(|h| base64::engine::general_purpose::STANDARD.encode(h) + "\n")
                .collect::<String>())
        })
        .await;
    match found {
        Ok(proof) => text(proof),
        Err(e) => e.into_response(),
    }
}
