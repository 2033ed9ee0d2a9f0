//! Telemetry against a real Mosquitto broker on 127.0.0.1: the agent seals while the
//! broker is down, reports as soon as it comes up, applies IT's retained config live, and
//! the broker announces it offline (its last will) when the agent dies.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::too_many_lines,
    reason = "a test reports failure by panicking, and tells its story in order"
)]

use std::fs;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use custody::telemetry::{Telemetry, config_topic, status_topic, telemetry_topic};
use custody::testkit::Mosquitto;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

const SERIAL: &str = "A100007";

/// Follows every topic of the device, as IT's dashboard would.
async fn watch(port: u16) -> (AsyncClient, mpsc::UnboundedReceiver<(String, Vec<u8>)>) {
    let (client, mut events) =
        AsyncClient::new(MqttOptions::new("it-dashboard", "127.0.0.1", port), 16);
    client
        .subscribe(format!("custody/{SERIAL}/#"), QoS::AtLeastOnce)
        .await
        .unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(event) = events.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = event {
                let _ = tx.send((p.topic.clone(), p.payload.to_vec()));
            }
        }
    });
    (client, rx)
}

/// The next message on `topic` that satisfies `want`, within `secs` seconds.
async fn next_on(
    rx: &mut mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    topic: &str,
    secs: u64,
    want: impl Fn(&[u8]) -> bool,
) -> Vec<u8> {
    tokio::time::timeout(Duration::from_secs(secs), async {
        loop {
            let (t, payload) = rx.recv().await.expect("subscription ended");
            if t == topic && want(&payload) {
                return payload;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("nothing wanted on {topic} within {secs} s"))
}

fn start_agent(dir: &Path, port: u16) -> Child {
    let config = dir.join("agent.toml");
    fs::write(
        &config,
        format!(
            "serial = \"{SERIAL}\"\nhw-profile = \"ga947-recorder\"\nstorage = \"storage\"\n\
             state-dir = \"state\"\n[officer]\nname = \"张三\"\ncert-no = \"42060119001\"\n\
             [agency]\ncode = \"420600\"\nname = \"襄阳市生态环境局\"\n\
             [telemetry]\nbroker = \"127.0.0.1:{port}\"\ninterval-seconds = 3600\n"
        ),
    )
    .unwrap();
    Command::new(env!("CARGO_BIN_EXE_custody-agent"))
        .arg("--config")
        .arg(&config)
        .arg("run")
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_seals_while_the_broker_is_down_reports_when_it_is_back_and_dies_offline() {
    let dir = tempfile::tempdir().unwrap();
    // A port where no broker listens yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut agent = start_agent(dir.path(), port);

    // A clip closes while the broker is down: it is sealed all the same.
    let rec = dir.path().join("storage/DCIM/100MEDIA");
    fs::create_dir_all(&rec).unwrap();
    fs::write(rec.join("A100007_0001.MP4.part"), vec![7u8; 50_000]).unwrap();
    fs::rename(
        rec.join("A100007_0001.MP4.part"),
        rec.join("A100007_0001.MP4"),
    )
    .unwrap();
    let record = dir.path().join(format!(
        "storage/custody/devices/{SERIAL}/records/00000001.json"
    ));
    for _ in 0..100 {
        if record.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        record.exists(),
        "the clip was not sealed while the broker was down"
    );

    // The broker comes up: the agent connects by itself and reports what is pending.
    let _broker = Mosquitto::start_on(port).unwrap();
    let (it, mut rx) = watch(port).await;
    next_on(&mut rx, &status_topic(SERIAL), 10, |p| p == b"online").await;
    let payload = next_on(&mut rx, &telemetry_topic(SERIAL), 10, |_| true).await;
    let t = Telemetry::parse(&payload, SERIAL).unwrap();
    assert_eq!(t.pending_clips, 1, "{t:?}");
    assert!(t.oldest_pending_recorded.is_some(), "{t:?}");
    assert!(t.storage_free_bytes.is_some_and(|b| b > 0), "{t:?}");
    assert_eq!(t.agent_version, env!("CARGO_PKG_VERSION"));

    // IT shortens the interval and issues the device to another officer (retained
    // config): readings now come every second, where the file said every hour, and the
    // next clip's record names the new officer.
    it.publish(
        config_topic(SERIAL),
        QoS::AtLeastOnce,
        true,
        r#"{"telemetry_interval_seconds": 1, "officer": {"name": "李四", "cert_no": "42060119009"}}"#
            .as_bytes()
            .to_vec(),
    )
    .await
    .unwrap();
    for _ in 0..3 {
        next_on(&mut rx, &telemetry_topic(SERIAL), 5, |_| true).await;
    }
    fs::write(rec.join("A100007_0002.MP4.part"), vec![8u8; 50_000]).unwrap();
    fs::rename(
        rec.join("A100007_0002.MP4.part"),
        rec.join("A100007_0002.MP4"),
    )
    .unwrap();
    let second = record.with_file_name("00000002.json");
    for _ in 0..100 {
        if second.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let officer = |path: &Path| -> String {
        let json: serde_json::Value = serde_json::from_slice(&fs::read(path).unwrap()).unwrap();
        json["officer"]["cert_no"].as_str().unwrap().to_owned()
    };
    assert_eq!(officer(&record), "42060119001");
    assert_eq!(officer(&second), "42060119009");
    let payload = next_on(&mut rx, &telemetry_topic(SERIAL), 5, |p| {
        Telemetry::parse(p, SERIAL).is_ok_and(|t| t.pending_clips == 2)
    })
    .await;
    assert!(Telemetry::parse(&payload, SERIAL).is_ok());

    // The agent dies without a word: the broker publishes its last will.
    agent.kill().unwrap();
    agent.wait().unwrap();
    next_on(&mut rx, &status_topic(SERIAL), 10, |p| p == b"offline").await;
}
