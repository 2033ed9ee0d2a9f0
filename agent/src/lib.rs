//! custody-agent: the on-device agent of Custody.
//!
//! It runs on a recorder (执法记录仪) or handheld terminal (手持执法终端) beside the
//! vendor's recording firmware. It follows each clip while it is written (hashing as the
//! file grows), and when the clip closes it seals a record — numbered, signed with the
//! device key, appended to the device's hash chain in an append-only SQLite manifest — and
//! writes it to the outbox on the device storage, in the layout the station reads
//! ([`custody::layout`]). Later facts (case binding, annotations) are new records.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let cfg = custody_agent::AgentConfig::load(std::path::Path::new("agent.toml"))?;
//! custody_agent::run(cfg, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```

mod config;
mod failpoint;
mod follower;
mod fragments;
mod inbox;
pub mod keystore;
mod manifest;
pub mod media;
mod sealer;
pub mod secure_element;
mod sensors;
pub mod telemetry;
pub mod upload;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use custody::{Record, Verified};
use notify::Watcher as _;
use tokio::task::JoinSet;

pub use config::AgentConfig;
pub use failpoint::{ENV as CRASH_AT_ENV, POINTS as CRASH_POINTS};
pub use follower::{FileId, Follower, Progress};
pub use inbox::{InboxReport, Refusal};
pub use manifest::{ChainHead, Manifest, ManifestError};
pub use sealer::{MANIFEST_FILE, Sealer};
pub use sensors::{MAX_FIX_AGE, Sensors};

/// How often the recording folder is looked at without a file-system event: the fallback
/// that also closes clips of recorders that stop writing without renaming.
const SCAN_EVERY: Duration = Duration::from_millis(250);
/// File-system events waiting to wake the sealer; more are redundant (one scan sees all).
const WAKEUPS: usize = 16;
/// How often the upload loop looks whether sealed clips wait.
const UPLOAD_POLL: Duration = Duration::from_secs(1);

/// Runs the agent until `shutdown` completes: seals clips as they close.
///
/// # Errors
/// The device key or manifest cannot be opened, or sealing fails (a clip is then left on
/// the device, unsealed but never lost).
pub async fn run(cfg: AgentConfig, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let (key, signing) = daemon_signer(&cfg)?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop_flag = Arc::clone(&stop);
    // Bounded: a burst of wakeups needs one scan, not one each.
    let (wake, wakeups) = mpsc::sync_channel(WAKEUPS);
    let (scans, scans_rx) = tokio::sync::watch::channel(0u64);
    let bridge = cfg.bridge_port.clone().map(|port| sensors::BridgeSetup {
        port,
        profile: cfg.profile.clone(),
        serial: cfg.serial.clone(),
        handoff: cfg
            .mass_storage_password
            .clone()
            .map(|password| sensors::DockHandoff {
                password,
                scans: scans_rx.clone(),
            }),
        signing,
    });
    let telemetry_setup = cfg
        .telemetry
        .clone()
        .map(|settings| telemetry::TelemetrySetup {
            settings,
            serial: cfg.serial.clone(),
            storage: cfg.storage.clone(),
            fallback_clock_error_ms: cfg.clock_error_ms,
            utc_offset: cfg.utc_offset,
        });
    let uploads = cfg
        .upload
        .clone()
        .filter(|u| u.auto)
        .map(|settings| (cfg.clone(), settings, Arc::clone(&key)));
    let sealer = Sealer::open(cfg, key)?;
    let sources = telemetry::Sources {
        sensors: sealer.sensors(),
        device: Arc::default(),
        changed: Arc::default(),
        live: Arc::default(),
    };
    // The helpers beside the sealer: each says its name when it ends, so an ending the
    // agent did not ask for is noticed and logged; sealing goes on without it.
    let mut helpers: JoinSet<&'static str> = JoinSet::new();
    let bridge = bridge.map(|setup| {
        let (sensors, wake) = (sealer.sensors(), wake.clone());
        helpers.spawn(async move {
            sensors::run_bridge(setup, sensors, wake).await;
            "firmware bridge"
        })
    });
    let (telemetry_stop, telemetry_stopped) = tokio::sync::oneshot::channel::<()>();
    if let Some(setup) = telemetry_setup {
        let sources = sources.clone();
        helpers.spawn(async move {
            telemetry::run(setup, sources, async {
                let _ = telemetry_stopped.await;
            })
            .await;
            "telemetry"
        });
    }
    let (uploads_stop, uploads_stopped) = tokio::sync::oneshot::channel::<()>();
    if let Some((cfg, settings, key)) = uploads {
        let (sources, wake) = (sources.clone(), wake.clone());
        helpers.spawn(async move {
            tokio::select! {
                () = upload_loop(&cfg, &settings, &key, &sources, &wake) => {}
                _ = uploads_stopped => {}
            }
            "upload"
        });
    }
    let mut sealing = tokio::task::spawn_blocking(move || {
        seal_loop(sealer, wake, &wakeups, &stop_flag, &sources, &scans)
    });
    supervise(shutdown, &mut sealing, &mut helpers).await?;
    stop.store(true, Ordering::Relaxed);
    if let Some(task) = bridge {
        task.abort();
    }
    let _ = telemetry_stop.send(());
    // An upload cut off here resumes next time; nothing is freed without a receipt.
    let _ = uploads_stop.send(());
    while helpers.join_next().await.is_some() {}
    sealing.await?
}

/// Waits for `shutdown` while the sealer and the helpers run; a helper that ends on its
/// own is said in the log, and sealing goes on without it.
///
/// # Errors
/// The sealer stopped on its own (failing or not): the agent cannot go on.
async fn supervise(
    shutdown: impl Future<Output = ()>,
    sealing: &mut tokio::task::JoinHandle<anyhow::Result<()>>,
    helpers: &mut JoinSet<&'static str>,
) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => {
                tracing::info!("shutdown requested");
                return Ok(());
            }
            joined = &mut *sealing => {
                joined??;
                anyhow::bail!("the sealer stopped on its own");
            }
            Some(ended) = helpers.join_next() => match ended {
                Ok(task) => tracing::error!(task, "{task} stopped on its own; sealing goes on without it"),
                Err(e) => tracing::error!(error = %e, "a task of the agent failed; sealing goes on without it"),
            },
        }
    }
}

/// The daemon's device key: the key file (created on first use), or the secure element,
/// whose requests the bridge task then serves.
///
/// # Errors
/// An unreadable key file, or a secure element not enrolled.
fn daemon_signer(
    cfg: &AgentConfig,
) -> anyhow::Result<(
    Arc<dyn custody::Signer>,
    Option<secure_element::SignService>,
)> {
    let Some(slot) = cfg.secure_element_slot else {
        let (key, created) = keystore::load_or_create(&cfg.state_dir)?;
        if created {
            tracing::info!(key_id = %key.public_key().key_id(), "device key generated; enrol it with the station");
        }
        return Ok((Arc::new(key), None));
    };
    let public = secure_element::pinned_key(&cfg.state_dir)?;
    let (signer, service) = secure_element::channel(public, slot);
    Ok((Arc::new(signer), Some(service)))
}

/// The device key for a command that runs once: the key file (created on first use), or
/// the secure element over a link of the command's own.
///
/// # Errors
/// An unreadable key file, or a secure element that is not enrolled or cannot be reached.
pub fn device_signer(cfg: &AgentConfig) -> anyhow::Result<Arc<dyn custody::Signer>> {
    Ok(match cfg.secure_element_slot {
        Some(slot) => Arc::new(secure_element::connect(cfg, slot)?),
        None => Arc::new(keystore::load_or_create(&cfg.state_dir)?.0),
    })
}

/// Seals what is closed now, handles new receipts, and returns (for `run --once` and tests).
///
/// # Errors
/// As [`run`].
pub fn seal_once(cfg: AgentConfig) -> anyhow::Result<(Vec<Record<Verified>>, InboxReport)> {
    let mut sealer = Sealer::load(cfg)?;
    let new_records = sealer.scan()?;
    let inbox = sealer.process_inbox()?;
    Ok((new_records, inbox))
}

/// Seals what is closed, uploads the device to the station over HTTPS (resuming what an
/// earlier upload left), and processes the receipt that comes back.
///
/// # Errors
/// No `[upload]` configured, sealing fails, or the station cannot be reached or refuses;
/// nothing is freed then, and the next upload continues where this one stopped.
pub async fn upload_once(cfg: AgentConfig) -> anyhow::Result<(upload::UploadReport, InboxReport)> {
    let settings = cfg
        .upload
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no [upload] section in the configuration"))?;
    let mut sealer = Sealer::load(cfg.clone())?;
    sealer.scan()?;
    let key = sealer.signer();
    let device = upload::Device {
        serial: &cfg.serial,
        storage: &cfg.storage,
    };
    let report = upload::upload(device, &settings, &key, &sealer.sealed_files()).await?;
    let inbox = sealer.process_inbox()?;
    Ok((report, inbox))
}

/// Uploads on its own (terminals with `[upload]`): when sealed clips wait and they changed
/// since the last upload, or `retry` after the last try. Only sealed media goes; the seal
/// loop is woken to process the receipt that comes back.
async fn upload_loop(
    cfg: &AgentConfig,
    settings: &upload::UploadSettings,
    key: &Arc<dyn custody::Signer>,
    sources: &telemetry::Sources,
    wake: &mpsc::SyncSender<()>,
) {
    let mut last: Option<(u64, Option<chrono::DateTime<chrono::FixedOffset>>)> = None;
    let mut retry_at = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(UPLOAD_POLL).await;
        let Ok(state) = sources.device.lock().map(|s| s.clone()) else {
            continue;
        };
        let waiting = (state.pending_clips, state.oldest_pending_recorded);
        let changed = last != Some(waiting);
        if state.pending_clips == 0 || (!changed && tokio::time::Instant::now() < retry_at) {
            continue;
        }
        let device = upload::Device {
            serial: &cfg.serial,
            storage: &cfg.storage,
        };
        match upload::upload(device, settings, key, &state.sealed_files).await {
            Ok(report) => {
                tracing::info!(
                    files = report.files,
                    bytes_sent = report.bytes_sent,
                    receipt = ?report.receipt,
                    "uploaded to the station"
                );
                last = Some(waiting);
                let _ = wake.try_send(());
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), retry_in = ?settings.retry, "upload failed; the next one resumes");
                last = Some(waiting);
            }
        }
        retry_at = tokio::time::Instant::now() + settings.retry;
    }
}

/// Whether an event means the recording folder changed. The sealer's own reads of a clip
/// raise open/read/close events; waking on those would make it read again at once, a
/// feedback loop burning a whole core.
fn changes_folder(kind: notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode, EventKind};
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

fn seal_loop(
    mut sealer: Sealer,
    wake: mpsc::SyncSender<()>,
    wakeups: &mpsc::Receiver<()>,
    stop: &AtomicBool,
    sources: &telemetry::Sources,
    scans: &tokio::sync::watch::Sender<u64>,
) -> anyhow::Result<()> {
    let dir = sealer.recording_dir();
    std::fs::create_dir_all(&dir)?;
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| changes_folder(e.kind)) {
            let _ = wake.try_send(());
        }
    })?;
    watcher.watch(&dir, notify::RecursiveMode::NonRecursive)?;
    let mut first = true;
    while !stop.load(Ordering::Relaxed) {
        let live = sources.live.lock().ok().and_then(|mut l| l.take());
        if let Some(live) = live
            && let Err(e) = sealer.apply(&live)
        {
            tracing::warn!(error = %format!("{e:#}"), "configuration from IT not applied");
        }
        let new_records = sealer.scan()?;
        // Cheap when nothing is new: one directory listing; each receipt is read once.
        let inbox = sealer.process_inbox()?;
        if first || !new_records.is_empty() || !inbox.freed.is_empty() {
            first = false;
            refresh_state(&sealer, sources)?;
        }
        scans.send_modify(|n| *n += 1);
        match wakeups.recv_timeout(SCAN_EVERY) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                anyhow::bail!("the folder watcher stopped")
            }
        }
    }
    Ok(())
}

/// Refreshes what telemetry reports about the device and tells it so.
fn refresh_state(sealer: &Sealer, sources: &telemetry::Sources) -> anyhow::Result<()> {
    let (pending_clips, oldest_pending_recorded) = sealer.pending()?;
    let storage_free_bytes = nix::sys::statvfs::statvfs(sealer.storage())
        .ok()
        .map(|s| s.blocks_available().saturating_mul(s.fragment_size()));
    if let Ok(mut state) = sources.device.lock() {
        *state = telemetry::DeviceState {
            pending_clips,
            oldest_pending_recorded,
            storage_free_bytes,
            sealed_files: sealer.sealed_files(),
        };
    }
    sources.changed.notify_one();
    Ok(())
}
