//! The fleet as the station hears it over MQTT: enrolled devices' telemetry and status
//! (topics: [`custody::telemetry`]) are kept in the ledger's fleet table, so `overdue` can
//! list devices that are not docked yet but hold clips near or past their deadline.
//!
//! Telemetry is advisory, not evidence: it tells IT whom to call, it never decides what
//! was stored.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use custody::telemetry::{self, ALL_TELEMETRY, Telemetry};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde::Serialize;

use crate::ledger::Ledger;
use crate::{DeadlinePolicy, Station, end_of_day};

/// Delay before reconnecting to an unreachable broker.
const RECONNECT: Duration = Duration::from_secs(2);

/// Follows the broker until the task is dropped; reconnects on its own.
pub async fn follow(station: Arc<Station>, host: String, port: u16) {
    let mut opts = MqttOptions::new(
        format!(
            "custody-station-{}",
            station.config().origin.replace('/', "_")
        ),
        host,
        port,
    );
    opts.set_keep_alive(Duration::from_secs(30));
    // Requests queued for the client's event loop (two subscribes per connection).
    let (client, mut events) = AsyncClient::new(opts, 16);
    // Said once when the broker goes away, not at every retry.
    let mut reachable = true;
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                tracing::info!("following device telemetry");
                reachable = true;
                for topic in [ALL_TELEMETRY, "custody/+/status"] {
                    if let Err(e) = client.try_subscribe(topic, QoS::AtLeastOnce) {
                        tracing::warn!(topic, error = %e, "cannot subscribe; telemetry incomplete until the next connection");
                    }
                }
            }
            Ok(Event::Incoming(Packet::Publish(msg))) => {
                let station = Arc::clone(&station);
                // The ledger is SQLite: blocking work, kept off the runtime's threads.
                let kept = tokio::task::spawn_blocking(move || {
                    heard(&station, &msg.topic, &msg.payload, station.now());
                })
                .await;
                if let Err(e) = kept {
                    tracing::error!(error = %e, "telemetry handler failed");
                }
            }
            Ok(_) => {}
            Err(e) => {
                if reachable {
                    tracing::warn!(error = %e, "telemetry broker unreachable; retrying every {RECONNECT:?}");
                    reachable = false;
                } else {
                    tracing::debug!(error = %e, "telemetry broker still unreachable");
                }
                tokio::time::sleep(RECONNECT).await;
            }
        }
    }
}

/// Keeps one message from an enrolled device; anything else is logged and dropped.
fn heard(station: &Station, topic: &str, payload: &[u8], now: DateTime<Utc>) {
    let Some(serial) = telemetry::topic_serial(topic) else {
        return;
    };
    let ledger = station.ledger();
    match ledger.device(serial) {
        Ok(Some(_)) => {}
        Ok(None) => {
            tracing::debug!(serial, "telemetry from a device not enrolled here; ignored");
            return;
        }
        Err(e) => {
            tracing::warn!(serial, error = %format!("{e:#}"), "cannot look the device up; telemetry dropped");
            return;
        }
    }
    let kept = if topic == telemetry::telemetry_topic(serial) {
        match Telemetry::parse(payload, serial) {
            Ok(_) => ledger.note_telemetry(serial, &String::from_utf8_lossy(payload), now),
            Err(e) => {
                tracing::warn!(serial, error = %e, "unusable telemetry");
                return;
            }
        }
    } else if topic == telemetry::status_topic(serial) {
        match payload {
            b"online" | b"offline" => {
                ledger.note_status(serial, &String::from_utf8_lossy(payload), now)
            }
            _ => return,
        }
    } else {
        return;
    };
    if let Err(e) = kept {
        tracing::warn!(serial, error = %e, "cannot keep telemetry");
    }
}

/// What a device holds that the station has not stored, as far as the station knows: its
/// last telemetry, unless the station stored its clips after that telemetry was heard (a
/// dock or an upload since then took what it counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    /// Clips sealed on the device and not stored.
    pub clips: u64,
    /// When the oldest of them finished recording.
    pub oldest_recorded: Option<DateTime<FixedOffset>>,
}

/// [`Pending`] for a device whose last telemetry is `t`, heard at `heard_at` (RFC 3339).
///
/// # Errors
/// The ledger cannot be read.
pub fn pending(
    ledger: &Ledger,
    serial: &str,
    t: &Telemetry,
    heard_at: &str,
) -> Result<Pending, crate::LedgerError> {
    let heard = DateTime::parse_from_rfc3339(heard_at).ok();
    let stored_since = match (ledger.last_stored(serial)?, heard) {
        (Some(stored), Some(heard)) => stored >= heard,
        _ => false,
    };
    Ok(if stored_since {
        // Everything it counted was sealed before that telemetry, hence on the device
        // when it docked or uploaded afterwards.
        Pending {
            clips: 0,
            oldest_recorded: None,
        }
    } else {
        Pending {
            clips: t.pending_clips,
            oldest_recorded: t.oldest_pending_recorded.filter(|_| t.pending_clips > 0),
        }
    })
}

/// A device not docked yet whose oldest pending clip is near or past its deadline.
#[derive(Debug, Clone, Serialize)]
pub struct PendingDevice {
    /// Product serial.
    pub serial: String,
    /// Clips sealed on it and not yet stored (freed), as it last reported.
    pub pending_clips: u64,
    /// When the oldest of them finished recording.
    pub oldest_pending_recorded: DateTime<FixedOffset>,
    /// Its deadline under the same-day rule.
    pub deadline: DateTime<FixedOffset>,
    /// Past the deadline (otherwise within the warning time before it).
    pub past: bool,
    /// When the station last heard its telemetry.
    pub last_heard: String,
    /// `online` / `offline`, if known.
    pub status: Option<String>,
    /// Battery charge it last reported.
    pub battery_percent: Option<u8>,
}

/// Devices whose telemetry shows clips close to or past their deadline, most urgent first.
///
/// # Errors
/// The ledger cannot be read.
pub fn pending_devices(
    ledger: &Ledger,
    policy: &DeadlinePolicy,
    offset: FixedOffset,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<PendingDevice>> {
    let warn = chrono::Duration::minutes(i64::from(policy.warn_before_minutes));
    let mut out = Vec::new();
    for heard in ledger.fleet()? {
        let Some(t) = heard
            .telemetry
            .as_deref()
            .and_then(|j| Telemetry::parse(j.as_bytes(), &heard.serial).ok())
        else {
            continue;
        };
        let now_pending = pending(ledger, &heard.serial, &t, &heard.received_at)?;
        let Some(oldest) = now_pending.oldest_recorded else {
            continue;
        };
        let deadline = end_of_day(oldest.with_timezone(&Utc), offset);
        if now + warn < deadline {
            continue;
        }
        out.push(PendingDevice {
            serial: heard.serial,
            pending_clips: now_pending.clips,
            oldest_pending_recorded: oldest,
            deadline: deadline.with_timezone(&offset),
            past: now >= deadline,
            last_heard: heard.received_at,
            status: heard.status,
            battery_percent: t.battery_percent,
        });
    }
    out.sort_by_key(|d| d.deadline);
    Ok(out)
}

/// One enrolled device as IT's fleet view shows it.
#[derive(Debug, Clone, Serialize)]
pub struct FleetDevice {
    /// Product serial.
    pub serial: String,
    /// Its model.
    pub hw_profile: String,
    /// Who it is issued to: (执法证号, name).
    pub officers: Vec<(String, String)>,
    /// `online` / `offline`, if heard.
    pub status: Option<String>,
    /// When the station last heard it (RFC 3339).
    pub last_heard: Option<String>,
    /// Its last telemetry.
    pub telemetry: Option<Telemetry>,
    /// Clips on the device the station has not stored: its telemetry, unless a dock or an
    /// upload since stored what it counted.
    pub pending_clips: Option<u64>,
    /// When the oldest of them finished recording.
    pub oldest_pending_recorded: Option<DateTime<FixedOffset>>,
    /// That clip's storage deadline.
    pub deadline: Option<DateTime<FixedOffset>>,
}

/// The fleet: every enrolled device, and how many officers they are issued to.
#[derive(Debug, Clone, Serialize)]
pub struct FleetView {
    /// The devices, by serial.
    pub devices: Vec<FleetDevice>,
    /// Distinct officers the devices are issued to.
    pub officers: usize,
}

impl FleetView {
    /// Whether there is at least one device per two officers.
    pub fn enough_devices(&self) -> bool {
        self.devices.len() * 2 >= self.officers
    }

    /// How many devices run each agent version and firmware (`agent / firmware`), from
    /// their last telemetry.
    pub fn versions(&self) -> std::collections::BTreeMap<String, usize> {
        let mut spread = std::collections::BTreeMap::new();
        for d in &self.devices {
            let key = d.telemetry.as_ref().map_or_else(
                || "未上报".to_owned(),
                |t| {
                    format!(
                        "{} / {}",
                        t.agent_version,
                        t.firmware.as_deref().unwrap_or("—")
                    )
                },
            );
            *spread.entry(key).or_insert(0) += 1;
        }
        spread
    }
}

impl Station {
    /// Every enrolled device with its last telemetry, what it still holds and the
    /// deadline of the oldest of that.
    ///
    /// # Errors
    /// The ledger cannot be read.
    pub fn fleet_view(&self) -> anyhow::Result<FleetView> {
        let offset = self.config().utc_offset;
        let ledger = self.ledger();
        let (devices, heard) = (ledger.devices()?, ledger.fleet()?);
        let mut out = Vec::with_capacity(devices.len());
        for d in devices {
            let h = heard.iter().find(|h| h.serial == d.serial);
            let telemetry = h
                .and_then(|h| h.telemetry.as_deref())
                .and_then(|j| Telemetry::parse(j.as_bytes(), &d.serial).ok());
            let pending = match (&telemetry, h) {
                (Some(t), Some(h)) => Some(pending(&ledger, &d.serial, t, &h.received_at)?),
                _ => None,
            };
            let oldest = pending.and_then(|p| p.oldest_recorded);
            out.push(FleetDevice {
                telemetry,
                pending_clips: pending.map(|p| p.clips),
                oldest_pending_recorded: oldest,
                deadline: oldest
                    .map(|o| end_of_day(o.with_timezone(&Utc), offset).with_timezone(&offset)),
                status: h.and_then(|h| h.status.clone()),
                last_heard: h.map(|h| h.received_at.clone()),
                serial: d.serial,
                hw_profile: d.hw_profile,
                officers: d.officers,
            });
        }
        let officers: std::collections::BTreeSet<&str> = out
            .iter()
            .flat_map(|r| r.officers.iter().map(|(cert, _)| cert.as_str()))
            .collect();
        Ok(FleetView {
            officers: officers.len(),
            devices: out,
        })
    }
}
