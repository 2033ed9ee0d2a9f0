//! What the MCU tells the agent through firmware-bridge: the RTC's last sync and measured
//! drift (for the clock error stated in records), the last GNSS fix, and clip-closed events
//! (which wake the sealer at once). A missing or failing MCU never stops sealing: records
//! then state the configured clock error and no location.

use std::path::PathBuf;
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use custody::Location;
use firmware_bridge::message::McuMessage;
use firmware_bridge::nmea::{Fix, NmeaReader, Sentence};
use firmware_bridge::transport::{Bridge, LinkConfig, LinkEvent};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::secure_element::SignService;

/// A fix older than this is not stated as the clip's location.
pub const MAX_FIX_AGE: Duration = Duration::from_mins(2);
/// How often the RTC state and the battery are read from the MCU.
const CLOCK_POLL: Duration = Duration::from_secs(30);
/// Delay before trying to reach a silent MCU again.
const RECONNECT: Duration = Duration::from_secs(2);
/// Error of a freshly synchronised RTC, in milliseconds (sync round trip and resolution).
const SYNC_ERROR_MS: u64 = 50;

/// The latest readings, shared between the bridge task and the sealer. A std `Mutex`: it
/// is held only to copy a value in or out, never across an await.
#[derive(Debug, Default, Clone)]
pub struct Sensors {
    /// The last position fix and when it arrived.
    pub fix: Option<(Fix, DateTime<Utc>)>,
    /// When the RTC was last set, and the drift the MCU measured then (ppb).
    pub clock: Option<(DateTime<Utc>, i32)>,
    /// Battery charge (percent) and whether it is charging, as last read.
    pub battery: Option<(u8, bool)>,
    /// The MCU firmware version it identified itself with.
    pub firmware: Option<String>,
}

impl Sensors {
    /// The clock error to state at `now`, and the last sync, if the RTC was ever set.
    pub fn clock_error(
        &self,
        now: DateTime<Utc>,
        fallback_ms: u64,
    ) -> (u64, Option<DateTime<Utc>>) {
        match self.clock {
            Some((set_at, drift_ppb)) => {
                let elapsed_ms = u64::try_from((now - set_at).num_milliseconds()).unwrap_or(0);
                let drift_ms =
                    elapsed_ms.saturating_mul(u64::from(drift_ppb.unsigned_abs())) / 1_000_000_000;
                (SYNC_ERROR_MS + drift_ms, Some(set_at))
            }
            None => (fallback_ms, None),
        }
    }

    /// The last fix as a record location, if it is recent enough.
    pub fn location(&self, now: DateTime<Utc>, offset: FixedOffset) -> Option<Location> {
        let (fix, at) = self.fix.as_ref()?;
        if (now - *at).to_std().map_or(true, |age| age > MAX_FIX_AGE) {
            return None;
        }
        let fix_time = match (fix.date, fix.time) {
            (Some(d), Some(t)) => d.and_time(t).and_utc(),
            _ => *at,
        };
        Some(Location {
            lat: fix.lat?,
            lon: fix.lon?,
            fix_time: fix_time.with_timezone(&offset),
            source: format!("gnss:{:?}:{}", fix.talker, fix.kind).to_lowercase(),
            satellites: fix.satellites,
            hdop: fix.hdop,
        })
    }
}

/// What the MCU link task needs.
pub struct BridgeSetup {
    /// The serial port.
    pub port: PathBuf,
    /// The device model (link settings).
    pub profile: hw_profiles::HwProfile,
    /// The configured serial (the MCU must report the same).
    pub serial: String,
    /// Opens mass-storage mode when docked, once clips are sealed.
    pub handoff: Option<DockHandoff>,
    /// Signs records with the secure element, when the device key lives there.
    pub signing: Option<SignService>,
}

/// Hands the storage to the dock once the sealer has sealed what closed before docking.
pub struct DockHandoff {
    /// The MCU's mass-storage password.
    pub password: String,
    /// The sealer's count of completed scans.
    pub scans: watch::Receiver<u64>,
}

/// Longest wait for the sealer before the storage goes to the dock anyway: what it seals
/// later is in the next dock's outbox; nothing is lost either way.
const SEAL_BEFORE_DOCK: Duration = Duration::from_secs(10);

impl DockHandoff {
    async fn hand_over(
        &mut self,
        bridge: &mut Bridge,
        wake: &SyncSender<()>,
        signing: &mut Option<SignService>,
    ) {
        let seen = *self.scans.borrow_and_update();
        let _ = wake.try_send(());
        // The scan running now may have started before the last clip closed: wait for the
        // one after it, signing what it seals meanwhile.
        let deadline = tokio::time::Instant::now() + SEAL_BEFORE_DOCK;
        let sealed = loop {
            if *self.scans.borrow_and_update() >= seen + 2 {
                break true;
            }
            tokio::select! {
                changed = tokio::time::timeout_at(deadline, self.scans.changed()) => {
                    if !matches!(changed, Ok(Ok(()))) {
                        break false;
                    }
                }
                Some(job) = SignService::next(signing) => SignService::serve(signing, bridge, job).await,
            }
        };
        if !sealed {
            warn!("the sealer is still busy; handing the storage to the dock anyway");
        }
        let request = McuMessage::EnterMassStorage {
            password: self.password.clone(),
        };
        match bridge.request(request).await {
            Ok(McuMessage::Ack) => info!("docked: storage handed to the dock"),
            Ok(other) => warn!(?other, "the MCU refused mass-storage mode"),
            Err(e) => warn!(error = %e, "cannot open mass-storage mode"),
        }
    }
}

/// Keeps the MCU link up for the agent's lifetime: identifies the device, reads the RTC
/// state, follows NMEA, wakes the sealer when a segment closes, and opens mass-storage
/// mode when the device docks.
pub async fn run_bridge(setup: BridgeSetup, sensors: Arc<Mutex<Sensors>>, wake: SyncSender<()>) {
    let BridgeSetup {
        port,
        profile,
        serial,
        mut handoff,
        mut signing,
    } = setup;
    let Ok(cfg) = firmware_bridge::transport::link_config(&port, &profile) else {
        warn!(model = %profile.id, "this model has no MCU link; sealing without RTC and GNSS data");
        return;
    };
    loop {
        match Bridge::connect(LinkConfig {
            path: cfg.path.clone(),
            serial: cfg.serial.clone(),
        })
        .await
        {
            Ok((
                bridge,
                McuMessage::Identity {
                    serial: reported, ..
                },
            )) if reported != serial => {
                warn!(%reported, configured = %serial, "the MCU reports another serial; not using its data");
                drop(bridge);
                return;
            }
            Ok((mut bridge, identity)) => {
                if let (McuMessage::Identity { firmware, .. }, Ok(mut s)) =
                    (identity, sensors.lock())
                {
                    s.firmware = Some(firmware);
                }
                info!(port = %port.display(), "MCU link up");
                follow(&mut bridge, &sensors, &wake, handoff.as_mut(), &mut signing).await;
            }
            Err(e) => warn!(error = %e, "MCU link unavailable; retrying"),
        }
        tokio::time::sleep(RECONNECT).await;
    }
}

async fn follow(
    bridge: &mut Bridge,
    sensors: &Mutex<Sensors>,
    wake: &SyncSender<()>,
    mut handoff: Option<&mut DockHandoff>,
    signing: &mut Option<SignService>,
) {
    let mut nmea = NmeaReader::new();
    let mut poll = tokio::time::interval(CLOCK_POLL);
    loop {
        tokio::select! {
            _ = poll.tick() => read_clock_and_battery(bridge, sensors).await,
            Some(job) = SignService::next(signing) => SignService::serve(signing, bridge, job).await,
            event = bridge.next_event() => match event {
                None => return,
                Some(LinkEvent::Mcu(McuMessage::Nmea { text })) => {
                    for sentence in nmea.push(&text) {
                        if let Sentence::Fix(fix) = sentence
                            && fix.lat.is_some()
                            && let Ok(mut s) = sensors.lock()
                        {
                            s.fix = Some((fix, Utc::now()));
                        }
                    }
                }
                Some(LinkEvent::Mcu(McuMessage::SegmentClosed { .. } | McuMessage::RecordingStopped { .. })) => {
                    // Seal now rather than at the next scan; a full queue already means "scan".
                    let _ = wake.try_send(());
                }
                Some(LinkEvent::Mcu(McuMessage::Docked)) => match handoff.as_deref_mut() {
                    Some(handoff) => handoff.hand_over(bridge, wake, signing).await,
                    None => {
                        let _ = wake.try_send(());
                    }
                },
                Some(LinkEvent::Disconnected(why)) => warn!(%why, "MCU link down; reconnecting"),
                Some(_) => {}
            },
        }
    }
}

/// Reads the RTC state and the battery into the shared readings.
async fn read_clock_and_battery(bridge: &mut Bridge, sensors: &Mutex<Sensors>) {
    match bridge.request(McuMessage::GetTime).await {
        Ok(McuMessage::Time {
            last_set_unix_ms,
            drift_ppb,
            ..
        }) => {
            let set = (last_set_unix_ms > 0)
                .then(|| DateTime::from_timestamp_millis(last_set_unix_ms))
                .flatten();
            if let Ok(mut s) = sensors.lock() {
                s.clock = set.map(|at| (at, drift_ppb));
            }
        }
        Ok(other) => warn!(?other, "unexpected answer to GetTime"),
        Err(e) => warn!(error = %e, "cannot read the RTC"),
    }
    match bridge.request(McuMessage::GetBattery).await {
        Ok(McuMessage::Battery {
            percent, charging, ..
        }) => {
            if let Ok(mut s) = sensors.lock() {
                s.battery = Some((percent, charging));
            }
        }
        Ok(other) => warn!(?other, "unexpected answer to GetBattery"),
        Err(e) => warn!(error = %e, "cannot read the battery"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fix() -> Fix {
        let line =
            b"$GNGGA,074158.799,3114.8953,N,12135.2439,E,1,07,1.1,198.5,M,8.3,M,,0000,1.8*70";
        match firmware_bridge::nmea::parse_line(line) {
            Ok(Some(Sentence::Fix(f))) => f,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_clock_error_grows_with_drift_since_the_last_sync() {
        let now = Utc::now();
        assert_eq!(Sensors::default().clock_error(now, 2000), (2000, None));
        let day_ago = now - chrono::Duration::days(1);
        // 20 ppm = 20,000 ppb over 86,400 s is 1,728 ms, plus the sync's own error.
        let s = Sensors {
            fix: None,
            clock: Some((day_ago, -20_000)),
            ..Sensors::default()
        };
        assert_eq!(
            s.clock_error(now, 2000),
            (1728 + SYNC_ERROR_MS, Some(day_ago))
        );
    }

    #[test]
    fn only_a_recent_fix_becomes_the_location() {
        let now = Utc::now();
        let china = FixedOffset::east_opt(8 * 3600).unwrap();
        let fresh = Sensors {
            fix: Some((fix(), now)),
            ..Sensors::default()
        };
        let loc = fresh.location(now, china).unwrap();
        assert!((loc.lat - 31.248_255).abs() < 1e-6 && (loc.lon - 121.587_398).abs() < 1e-5);
        assert_eq!(
            (loc.source.as_str(), loc.satellites),
            ("gnss:gn:gga", Some(7))
        );
        let stale = Sensors {
            fix: Some((fix(), now - chrono::Duration::minutes(5))),
            ..Sensors::default()
        };
        assert!(stale.location(now, china).is_none());
    }
}
