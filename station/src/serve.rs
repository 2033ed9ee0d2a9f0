//! The daemon: watches the dock root, runs one session per newly docked slot (sessions in
//! parallel, copies bounded by the shared buffer pool), writes each session's report, and
//! keeps `status.json` current for `custody-station status`.
//!
//! The dock root is polled, not watched with inotify: USB mounts appearing and vanishing
//! are not reliably reported as events inside the mounted folders.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::report::ReportQuery;
use crate::{DockOptions, IngestError, SessionOutcome, Station};

/// File in the data folder with the live per-slot progress (JSON list of `SlotStatus`).
pub const STATUS_FILE: &str = "status.json";
/// How each slot's last session ended, beside [`STATUS_FILE`] (the standalone web page's
/// dock view reads it).
pub const DOCK_ENDED_FILE: &str = "dock-ended.json";
/// How often the dock root is looked at and `status.json` rewritten.
const POLL: Duration = Duration::from_millis(500);
/// A slot whose session failed (store full, ledger error) is retried after this long.
const RETRY_AFTER: Duration = Duration::from_secs(30);
/// A slot whose device could not be read but is still there (a loose cable, a flaky
/// card) is retried after this long; a device really pulled out leaves the dock root and
/// starts afresh when it is docked again.
const RETRY_UNPLUGGED_AFTER: Duration = Duration::from_secs(5);

/// Runs the station until `shutdown` completes; sessions in progress finish first (their
/// copies are bounded, and stopping mid-copy would only redo the work at the next dock).
///
/// # Errors
/// An unreadable dock root or data folder.
pub async fn run(station: Arc<Station>, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let dock_root = station.config().dock_root.clone();
    std::fs::create_dir_all(&dock_root)?;
    tracing::info!(dock_root = %dock_root.display(), vkey = %station.verifier(), "station serving");
    let mut sessions: JoinSet<(String, Result<SessionOutcome, IngestError>)> = JoinSet::new();
    let mut active: HashSet<String> = HashSet::new();
    let mut done: HashSet<String> = HashSet::new();
    let mut retry: HashMap<String, Instant> = HashMap::new();
    let background = Background::start(&station)?;
    let mut tick = tokio::time::interval(POLL);
    let mut last_status = None;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = tick.tick() => {}
            Some(joined) = sessions.join_next() => {
                let (slot, result) = joined?;
                active.remove(&slot);
                match result {
                    Ok(outcome) => {
                        done.insert(slot);
                        let station = Arc::clone(&station);
                        // SQL and fsync: off the runtime's threads.
                        tokio::task::spawn_blocking(move || write_session_report(&station, &outcome)).await?;
                    }
                    Err(e @ IngestError::Unplugged { .. }) => {
                        tracing::warn!(slot, error = %format!("{e:#}"), "device could not be read; retrying while it stays docked");
                        retry.insert(slot, Instant::now() + RETRY_UNPLUGGED_AFTER);
                    }
                    Err(e) => {
                        tracing::error!(slot, error = %format!("{e:#}"), "session failed; retrying later");
                        retry.insert(slot, Instant::now() + RETRY_AFTER);
                    }
                }
                continue;
            }
        }
        // Listing the dock and fsyncing status.json are blocking file work: off the
        // runtime's threads.
        let (present, status) = {
            let (station, root, last) =
                (Arc::clone(&station), dock_root.clone(), last_status.take());
            tokio::task::spawn_blocking(move || {
                let mut last = last;
                write_status(&station, &mut last);
                (slots(&root), last)
            })
            .await?
        };
        last_status = status;
        let present = present?;
        // An undocked slot starts fresh at its next dock.
        done.retain(|s| present.iter().any(|(n, _)| n == s));
        retry.retain(|s, _| present.iter().any(|(n, _)| n == s));
        for (name, path) in present {
            let waiting = retry.get(&name).is_some_and(|t| *t > Instant::now());
            if active.contains(&name) || done.contains(&name) || waiting {
                continue;
            }
            retry.remove(&name);
            active.insert(name.clone());
            let station = Arc::clone(&station);
            sessions.spawn_blocking(move || {
                let result = station.ingest_slot(&path, &DockOptions::default());
                (name, result)
            });
        }
    }
    background.stop().await?;
    tracing::info!(
        sessions = active.len(),
        "shutting down after the sessions in progress"
    );
    while let Some(joined) = sessions.join_next().await {
        let (_slot, result) = joined?;
        if let Ok(outcome) = result {
            let station = Arc::clone(&station);
            tokio::task::spawn_blocking(move || write_session_report(&station, &outcome)).await?;
        }
    }
    tokio::task::spawn_blocking(move || write_status(&station, &mut last_status)).await?;
    Ok(())
}

/// What runs beside the dock sessions: the telemetry follower, the upload endpoint, the
/// web page and the replicator, each when configured.
struct Background {
    fleet: Option<tokio::task::JoinHandle<()>>,
    uploads: Option<tokio::task::JoinHandle<()>>,
    web: Option<tokio::task::JoinHandle<()>>,
    replicator: Option<tokio::task::JoinHandle<()>>,
    stop_replicating: Arc<AtomicBool>,
}

impl Background {
    fn start(station: &Arc<Station>) -> anyhow::Result<Self> {
        // Telemetry is advisory: the task is simply dropped at shutdown.
        let fleet = station
            .config()
            .telemetry_broker
            .clone()
            .map(|(host, port)| {
                tokio::spawn(crate::fleet::follow(Arc::clone(station), host, port))
            });
        let uploads = match station.config().upload.clone() {
            Some(u) => {
                let tls = crate::upload::tls_config(&u.cert, &u.key)?;
                let station = Arc::clone(station);
                Some(tokio::spawn(async move {
                    if let Err(e) = crate::upload::serve(station, u.listen, tls, u.limits).await {
                        tracing::error!(error = %format!("{e:#}"), "upload endpoint stopped");
                    }
                }))
            }
            None => None,
        };
        let web = station.config().web.clone().map(|settings| {
            let station = Arc::clone(station);
            tokio::spawn(async move {
                if let Err(e) = crate::web::serve(station, settings, true).await {
                    tracing::error!(error = %format!("{e:#}"), "web page stopped");
                }
            })
        });
        let stop_replicating = Arc::new(AtomicBool::new(false));
        let replicator = station.config().replicate_to.clone().map(|settings| {
            let (station, stop) = (Arc::clone(station), Arc::clone(&stop_replicating));
            tokio::task::spawn_blocking(move || crate::replicate::run(&station, &settings, &stop))
        });
        Ok(Self {
            fleet,
            uploads,
            web,
            replicator,
            stop_replicating,
        })
    }

    async fn stop(self) -> anyhow::Result<()> {
        for task in [self.fleet, self.uploads, self.web].into_iter().flatten() {
            task.abort();
        }
        // The object being pushed finishes (or fails); the queue keeps the rest.
        self.stop_replicating.store(true, Ordering::Relaxed);
        if let Some(replicator) = self.replicator {
            replicator.await?;
        }
        Ok(())
    }
}

/// The slot folders under the dock root (a slot may be a symlink to a mount).
fn slots(root: &std::path::Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !entry.path().is_dir() {
            continue;
        }
        out.push((name, entry.path()));
    }
    out.sort();
    Ok(out)
}

/// Rewrites `status.json` (the slots in progress) and `dock-ended.json` (how each slot's
/// last session ended) when they changed since `last` (an idle station does not fsync
/// twice a second).
fn write_status(station: &Station, last: &mut Option<(Vec<u8>, Vec<u8>)>) {
    let dir = &station.config().data_dir;
    let slots = serde_json::to_vec(&station.progress().snapshot()).unwrap_or_default();
    let ended = serde_json::to_vec(&station.progress().ended()).unwrap_or_default();
    let now = (slots, ended);
    if last.as_ref() == Some(&now) {
        return;
    }
    for (name, bytes) in [(STATUS_FILE, &now.0), (DOCK_ENDED_FILE, &now.1)] {
        let path = dir.join(name);
        if let Err(e) = custody::layout::write_atomic(&path, bytes) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write status");
            return;
        }
    }
    *last = Some(now);
}

/// Writes `reports/session-N.{json,html}` after a dock session.
pub fn write_session_report(station: &Station, outcome: &SessionOutcome) {
    let query = ReportQuery {
        session: Some(outcome.session),
        ..ReportQuery::default()
    };
    let report = station.report(&query, station.now());
    let name = format!("session-{:06}", outcome.session.0);
    match report.map(|r| r.write(&station.reports_dir(), &name)) {
        Ok(Ok(path)) => tracing::info!(report = %path.display(), "session report written"),
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot write the session report"),
        Err(e) => tracing::warn!(error = %e, "cannot build the session report"),
    }
}
