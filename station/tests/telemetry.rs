//! The station follows device telemetry on a real Mosquitto broker on 127.0.0.1, and
//! `overdue` lists enrolled devices not docked yet whose pending clips are past (or near)
//! their deadline; strangers and malformed messages are ignored.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::too_many_lines,
    reason = "a test reports failure by panicking, and tells its story in order"
)]

use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use chrono::{FixedOffset, Utc};
use custody::telemetry::{TELEMETRY_V1, Telemetry, status_topic, telemetry_topic};
use custody::testkit::{Mosquitto, SampleDevice};
use rumqttc::{AsyncClient, MqttOptions, QoS};

const BIN: &str = env!("CARGO_BIN_EXE_custody-station");

fn station(config: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn telemetry(serial: &str, pending: u64, recorded_hours_ago: i64) -> Vec<u8> {
    let china = FixedOffset::east_opt(8 * 3600).unwrap();
    let now = Utc::now().with_timezone(&china);
    serde_json::to_vec(&Telemetry {
        format: TELEMETRY_V1.into(),
        serial: serial.into(),
        at: now,
        agent_version: "0.1.0".into(),
        firmware: Some("1".into()),
        battery_percent: Some(41),
        charging: Some(false),
        storage_free_bytes: Some(1 << 30),
        pending_clips: pending,
        oldest_pending_recorded: Some(now - chrono::Duration::hours(recorded_hours_ago)),
        clock_error_ms: 50,
        clock_last_sync: None,
        gnss: None,
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overdue_lists_undocked_devices_from_their_telemetry() {
    let broker = Mosquitto::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("station.toml");
    fs::write(
        &config,
        format!(
            "dock-root = \"dock\"\ndata-dir = \"data\"\norigin = \"test.example/station-01\"\n\
             [deadline]\nwarn-before-minutes = 1\n[telemetry]\nbroker = \"127.0.0.1:{}\"\n",
            broker.port
        ),
    )
    .unwrap();
    for serial in ["A100001", "A100002", "A100003"] {
        let dev = SampleDevice::create(&dir.path().join(serial), serial, &[]).unwrap();
        let pem = dir.path().join(format!("{serial}.pem"));
        fs::write(&pem, dev.public_key().to_pem()).unwrap();
        let out = station(
            &config,
            &[
                "enroll",
                "--serial",
                serial,
                "--hw-profile",
                "ga947-recorder",
                "--key",
                pem.to_str().unwrap(),
                "--officer",
                "42060119001:张三",
            ],
        );
        assert!(out.status.success(), "{out:?}");
    }

    // The devices published before the station started: retained messages still reach it.
    let (client, mut events) =
        AsyncClient::new(MqttOptions::new("devices", "127.0.0.1", broker.port), 32);
    tokio::spawn(async move { while events.poll().await.is_ok() {} });
    let publish = |topic: String, payload: Vec<u8>| {
        let client = client.clone();
        async move {
            client
                .publish(topic, QoS::AtLeastOnce, true, payload)
                .await
                .unwrap();
        }
    };
    // Two clips recorded two days ago, still on the device: past the deadline.
    publish(telemetry_topic("A100001"), telemetry("A100001", 2, 48)).await;
    publish(status_topic("A100001"), b"offline".to_vec()).await;
    // A clip recorded just now: within today's deadline.
    publish(telemetry_topic("A100002"), telemetry("A100002", 1, 0)).await;
    // Nothing pending.
    publish(telemetry_topic("A100003"), telemetry("A100003", 0, 48)).await;
    // A stranger: not enrolled here.
    publish(telemetry_topic("B999999"), telemetry("B999999", 5, 48)).await;

    let mut serve = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    for _ in 0..100 {
        let out = station(&config, &["overdue", "--json"]);
        let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if listed["undocked_devices"]
            .as_array()
            .is_some_and(|d| !d.is_empty())
        {
            assert_eq!(out.status.code(), Some(1));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Later, live: a message claiming to be another device, and garbage. Neither may
    // change what the station believes.
    for (topic, payload) in [
        (telemetry_topic("A100003"), telemetry("A100002", 9, 72)),
        (telemetry_topic("A100002"), b"{not json".to_vec()),
    ] {
        client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }
    // A marker after them (the same client, in order): once the station shows it, it has
    // handled the two before; only then is "nothing changed" a finding.
    let mut marker =
        serde_json::from_slice::<serde_json::Value>(&telemetry("A100003", 0, 48)).unwrap();
    marker["battery_percent"] = 77.into();
    client
        .publish(
            telemetry_topic("A100003"),
            QoS::AtLeastOnce,
            false,
            serde_json::to_vec(&marker).unwrap(),
        )
        .await
        .unwrap();
    let mut seen = false;
    for _ in 0..100 {
        let out = station(&config, &["--json", "fleet"]);
        let fleet: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        seen = fleet["devices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["serial"] == "A100003" && d["telemetry"]["battery_percent"] == 77);
        if seen {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen, "the station never handled the marker message");
    let out = station(&config, &["overdue", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    terminate(&serve);
    serve.wait().unwrap();

    let devices = listed["undocked_devices"].as_array().unwrap();
    let serials: Vec<&str> = devices
        .iter()
        .map(|d| d["serial"].as_str().unwrap())
        .collect();
    assert_eq!(serials, ["A100001"], "{listed:#}");
    assert_eq!(devices[0]["pending_clips"], 2);
    assert_eq!(devices[0]["past"], true);
    assert_eq!(devices[0]["status"], "offline");
    let out = station(&config, &["overdue"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("A100001") && text.contains("已超期") && text.contains("离线"),
        "{text}"
    );
    assert_eq!(out.status.code(), Some(1));

    // IT's view: every enrolled device with what it last said; the stranger is not there.
    let out = station(&config, &["fleet", "--json"]);
    assert!(out.status.success());
    let fleet: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = fleet["devices"].as_array().unwrap();
    let pending: Vec<(&str, u64)> = rows
        .iter()
        .map(|r| {
            (
                r["serial"].as_str().unwrap(),
                r["telemetry"]["pending_clips"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(pending, [("A100001", 2), ("A100002", 1), ("A100003", 0)]);
    assert_eq!(rows[0]["telemetry"]["battery_percent"], 41);
    let text = String::from_utf8(station(&config, &["fleet"]).stdout).unwrap();
    assert!(
        text.contains("登记设备 3 台") && text.contains("离线"),
        "{text}"
    );
}

fn terminate(child: &std::process::Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}
