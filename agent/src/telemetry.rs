//! Telemetry for IT over MQTT (topics and messages: [`custody::telemetry`]): `status`
//! online/offline with the broker holding `offline` as the last will, `telemetry` every
//! interval and whenever the pending clips change, and the retained `config` applied live.
//!
//! The broker being down never stops sealing: this task only reads shared state. What
//! matters is the current state, not each reading, so nothing queues up while the broker
//! is away: on reconnecting the agent publishes its status and a fresh reading at once.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use custody::telemetry::{
    DeviceConfig, GnssState, OFFLINE, ONLINE, TELEMETRY_V1, Telemetry, config_topic, status_topic,
    telemetry_topic,
};
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use crate::config::TelemetrySettings;
use crate::sensors::Sensors;

/// Requests (publishes, subscribes) waiting for the connection; more are dropped, the
/// next reading supersedes them.
const REQUESTS: usize = 16;
/// Delay before reconnecting after the broker was unreachable.
const RECONNECT: Duration = Duration::from_secs(1);
/// Readings triggered by changes are at least this far apart.
const MIN_GAP: Duration = Duration::from_secs(1);
/// Time given to deliver `offline` when the agent stops.
const GOODBYE: Duration = Duration::from_secs(2);

/// What the sealer knows that telemetry reports; it refreshes it after each change.
#[derive(Debug, Default, Clone)]
pub struct DeviceState {
    /// Sealed clips still on the device.
    pub pending_clips: u64,
    /// When the oldest of them finished recording.
    pub oldest_pending_recorded: Option<DateTime<FixedOffset>>,
    /// Free bytes on the device storage.
    pub storage_free_bytes: Option<u64>,
    /// Clips sealed (path → size sealed): what an upload may send.
    pub sealed_files: std::collections::HashMap<String, u64>,
}

/// Everything the telemetry task needs.
pub struct TelemetrySetup {
    /// Broker and interval.
    pub settings: TelemetrySettings,
    /// The device serial (topics and client id).
    pub serial: String,
    /// The device storage root.
    pub storage: PathBuf,
    /// Clock error stated without an RTC sync.
    pub fallback_clock_error_ms: u64,
    /// The device's UTC offset.
    pub utc_offset: FixedOffset,
}

/// Shared state the task reports from.
#[derive(Clone)]
pub struct Sources {
    /// MCU readings.
    pub sensors: Arc<Mutex<Sensors>>,
    /// The sealer's state.
    pub device: Arc<Mutex<DeviceState>>,
    /// Notified when `device` changed.
    pub changed: Arc<Notify>,
    /// IT's latest configuration for the sealer to apply (officer, numbering).
    pub live: Arc<Mutex<Option<DeviceConfig>>>,
}

/// Publishes until `stop` completes, then says `offline`.
pub async fn run(setup: TelemetrySetup, sources: Sources, stop: impl Future<Output = ()>) {
    let serial = setup.serial.clone();
    let mut opts = MqttOptions::new(
        format!("custody-agent-{serial}"),
        setup.settings.host.clone(),
        setup.settings.port,
    );
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_last_will(LastWill::new(
        status_topic(&serial),
        OFFLINE,
        QoS::AtLeastOnce,
        true,
    ));
    let (client, mut events) = AsyncClient::new(opts, REQUESTS);
    let mut interval = setup.settings.interval;
    let mut next = tokio::time::Instant::now() + interval;
    let mut connected = false;
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            event = events.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    info!(broker = %format!("{}:{}", setup.settings.host, setup.settings.port), "telemetry connected");
                    connected = true;
                    let _ = client.try_publish(status_topic(&serial), QoS::AtLeastOnce, true, ONLINE);
                    let _ = client.try_subscribe(config_topic(&serial), QoS::AtLeastOnce);
                    publish(&client, &setup, &sources);
                }
                Ok(Event::Incoming(Packet::Publish(msg))) if msg.topic == config_topic(&serial) => {
                    match DeviceConfig::parse(&msg.payload) {
                        Ok(cfg) => {
                            if let Some(secs) = cfg.telemetry_interval_seconds.filter(|s| *s >= 1) {
                                interval = Duration::from_secs(secs);
                                next = tokio::time::Instant::now() + interval;
                                info!(seconds = secs, "telemetry interval set by IT");
                            }
                            if (cfg.officer.is_some() || cfg.numbering.is_some())
                                && let Ok(mut live) = sources.live.lock()
                            {
                                *live = Some(cfg);
                            }
                        }
                        Err(e) => warn!(error = %e, "configuration from IT not applied"),
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if connected {
                        warn!(error = %e, "telemetry broker lost; sealing goes on, reconnecting");
                    } else {
                        debug!(error = %e, "telemetry broker unreachable");
                    }
                    connected = false;
                    tokio::time::sleep(RECONNECT).await;
                }
            },
            () = tokio::time::sleep_until(next) => {
                publish(&client, &setup, &sources);
                next = tokio::time::Instant::now() + interval;
            }
            () = sources.changed.notified() => {
                publish(&client, &setup, &sources);
                tokio::time::sleep(MIN_GAP).await;
            }
        }
    }
    if connected {
        let _ = client.try_publish(status_topic(&serial), QoS::AtLeastOnce, true, OFFLINE);
        let _ = client.try_disconnect();
        let _ = tokio::time::timeout(GOODBYE, async { while events.poll().await.is_ok() {} }).await;
    }
}

fn publish(client: &AsyncClient, setup: &TelemetrySetup, sources: &Sources) {
    let reading = reading(setup, sources, Utc::now());
    match serde_json::to_vec(&reading) {
        Ok(bytes) => {
            // A full queue means the broker is away: this reading is superseded by the one
            // published on reconnecting.
            if client
                .try_publish(
                    telemetry_topic(&setup.serial),
                    QoS::AtLeastOnce,
                    true,
                    bytes,
                )
                .is_err()
            {
                debug!("telemetry queue full; reading dropped");
            }
        }
        Err(e) => warn!(error = %e, "cannot encode telemetry"),
    }
}

/// The device's state now.
pub fn reading(setup: &TelemetrySetup, sources: &Sources, now: DateTime<Utc>) -> Telemetry {
    let sensors = sources
        .sensors
        .lock()
        .map(|s| s.clone())
        .unwrap_or_default();
    let device = sources.device.lock().map(|d| d.clone()).unwrap_or_default();
    let (clock_error_ms, last_sync) = sensors.clock_error(now, setup.fallback_clock_error_ms);
    let gnss = sensors.fix.as_ref().and_then(|(fix, at)| {
        Some(GnssState {
            lat: fix.lat?,
            lon: fix.lon?,
            age_seconds: u64::try_from((now - *at).num_seconds()).unwrap_or(0),
            satellites: fix.satellites,
            hdop: fix.hdop,
        })
    });
    Telemetry {
        format: TELEMETRY_V1.into(),
        serial: setup.serial.clone(),
        at: now.with_timezone(&setup.utc_offset),
        agent_version: env!("CARGO_PKG_VERSION").into(),
        firmware: sensors.firmware,
        battery_percent: sensors.battery.map(|(p, _)| p),
        charging: sensors.battery.map(|(_, c)| c),
        storage_free_bytes: device.storage_free_bytes,
        pending_clips: device.pending_clips,
        oldest_pending_recorded: device.oldest_pending_recorded,
        clock_error_ms,
        clock_last_sync: last_sync,
        gnss,
    }
}
