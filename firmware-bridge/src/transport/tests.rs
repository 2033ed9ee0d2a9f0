//! The transport against the recorder simulator over a real pseudo-terminal.

use std::time::Duration;

use super::*;
use crate::message::OfficerBinding;
use crate::nmea::{NmeaReader, Sentence};
use crate::sim::{Control, SimConfig, Simulator, load_nmea};

fn profile() -> hw_profiles::HwProfile {
    hw_profiles::load_dir(&hw_profiles::shipped_dir())
        .unwrap()
        .into_iter()
        .find(|p| p.id == "ga947-recorder")
        .unwrap()
}

fn sim_config(dir: &Path) -> SimConfig {
    SimConfig {
        model: "ga947-recorder".into(),
        serial: "A100001".into(),
        firmware: "1.4.2".into(),
        protocol_version: PROTOCOL_VERSION,
        link: dir.join("ttySIM0"),
        capacity_bytes: 64 << 30,
        used_bytes: 10 << 30,
        drift_ppm: 0,
        battery_percent: 80,
        mass_storage_password: "dock-1234".into(),
        nmea: Vec::new(),
        officer: OfficerBinding {
            police_no: "042001".into(),
            name: "张三".into(),
            unit_code: "420600".into(),
            unit_name: "襄阳市生态环境局".into(),
        },
        secure_element_seed: Some([7; 32]),
    }
}

async fn connect(sim: &Simulator) -> (Bridge, McuMessage) {
    Bridge::connect(link_config(sim.link(), &profile()).unwrap())
        .await
        .unwrap()
}

fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

#[tokio::test]
async fn identify_read_state_and_bind_an_officer() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start(sim_config(dir.path())).unwrap();
    let (bridge, identity) = connect(&sim).await;
    assert!(
        matches!(identity, McuMessage::Identity { ref serial, protocol: 1, .. } if serial == "A100001")
    );
    assert!(matches!(
        bridge.request(McuMessage::GetBattery).await.unwrap(),
        McuMessage::Battery {
            percent: 80,
            charging: false,
            ..
        }
    ));
    assert_eq!(
        bridge.request(McuMessage::GetStorage).await.unwrap(),
        McuMessage::Storage {
            total_bytes: 64 << 30,
            free_bytes: 54 << 30
        }
    );
    let officer = OfficerBinding {
        police_no: "042002".into(),
        name: "李四".into(),
        unit_code: "420600".into(),
        unit_name: "襄阳市生态环境局".into(),
    };
    bridge
        .request(McuMessage::SetOfficer(officer.clone()))
        .await
        .unwrap();
    assert_eq!(
        bridge.request(McuMessage::GetOfficer).await.unwrap(),
        McuMessage::Officer(officer)
    );
    sim.stop().unwrap();
}

#[tokio::test]
async fn time_sync_measures_offset_and_drift() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = sim_config(dir.path());
    cfg.drift_ppm = 50_000; // 5 %: fast enough to measure within a test
    let sim = Simulator::start(cfg).unwrap();
    let (bridge, _) = connect(&sim).await;
    sim.send(Control::ClockJump(-90_000));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let first = bridge.sync_time(now_ms).await.unwrap();
    assert!((first.offset_ms + 90_000).abs() < 2_000, "{first:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let second = bridge.sync_time(now_ms).await.unwrap();
    // 5 % fast over ~1 s: about 50 ms ahead, measured as ~50,000,000 ppb; the bounds leave
    // room for a loaded machine's scheduling latency on either side.
    assert!(
        second.offset_ms > 20 && second.offset_ms < 120,
        "{second:?}"
    );
    assert!(
        (25_000_000..80_000_000).contains(&second.drift_ppb),
        "{second:?}"
    );
    sim.stop().unwrap();
}

#[tokio::test]
async fn events_arrive_and_nmea_from_a_real_capture_gives_fixes() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = sim_config(dir.path());
    cfg.nmea =
        load_nmea(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/nmea/beidou-bd.log"))
            .unwrap();
    let sim = Simulator::start(cfg).unwrap();
    let (mut bridge, _) = connect(&sim).await;
    sim.send(Control::Event(McuMessage::KeyMark { unix_ms: 42 }));
    let mut reader = NmeaReader::new();
    let (mut mark, mut fixes) = (false, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while (!mark || fixes < 3) && tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(2), bridge.next_event()).await {
            Ok(Some(LinkEvent::Mcu(McuMessage::KeyMark { unix_ms: 42 }))) => mark = true,
            Ok(Some(LinkEvent::Mcu(McuMessage::Nmea { text }))) => {
                fixes += reader
                    .push(&text)
                    .iter()
                    .filter(|s| matches!(s, Sentence::Fix(f) if f.lat.is_some()))
                    .count();
            }
            _ => {}
        }
    }
    assert!(mark, "key mark event not seen");
    assert!(fixes >= 3, "only {fixes} fixes from the NMEA pass-through");
    assert_eq!(reader.stats().bad_checksum, 0);
    sim.stop().unwrap();
}

#[tokio::test]
async fn garbage_and_a_reset_mid_frame_are_survived() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start(sim_config(dir.path())).unwrap();
    let (bridge, _) = connect(&sim).await;
    for _ in 0..5 {
        sim.send(Control::Garbage(
            b"\x00\xa5\x5a\xff\xffboot: SoC reset\r\n".to_vec(),
        ));
        sim.send(Control::ResetMidFrame);
        assert!(matches!(
            bridge.request(McuMessage::GetBattery).await.unwrap(),
            McuMessage::Battery { .. }
        ));
    }
    let c = bridge.counters_snapshot();
    assert!(
        c.link.garbage_bytes > 0 && c.link.crc_errors + c.link.oversized > 0,
        "{c:?}"
    );
    sim.stop().unwrap();
}

#[tokio::test]
async fn unplug_and_replug_reconnect_on_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start(sim_config(dir.path())).unwrap();
    let (mut bridge, _) = connect(&sim).await;
    sim.send(Control::Unplug);
    let down = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(LinkEvent::Disconnected(why)) = bridge.next_event().await {
                return why;
            }
        }
    })
    .await
    .unwrap();
    assert!(!down.is_empty());
    assert!(matches!(
        bridge.request(McuMessage::GetBattery).await,
        Err(LinkError::Disconnected(_))
    ));
    sim.send(Control::Replug);
    tokio::time::timeout(Duration::from_secs(10), async {
        while bridge.next_event().await != Some(LinkEvent::Reconnected) {}
    })
    .await
    .unwrap();
    assert!(matches!(
        bridge.request(McuMessage::Identify).await.unwrap(),
        McuMessage::Identity { .. }
    ));
    assert_eq!(bridge.counters_snapshot().disconnects, 1);
    sim.stop().unwrap();
}

#[tokio::test]
async fn another_protocol_version_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = sim_config(dir.path());
    cfg.protocol_version = 2;
    let sim = Simulator::start(cfg).unwrap();
    let err = Bridge::connect(link_config(sim.link(), &profile()).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err, LinkError::WrongVersion(2));
    assert!(err.to_string().contains("protocol version 2"));
    sim.stop().unwrap();
}

#[tokio::test]
async fn a_missing_port_is_a_clear_error() {
    let err = Bridge::connect(link_config(Path::new("/dev/ttyNOSUCH9"), &profile()).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err, LinkError::NoSuchPort("/dev/ttyNOSUCH9".into()));
}

#[tokio::test]
async fn nobody_answering_times_out_after_the_retries() {
    // A pty with nothing behind it: the request goes out and nothing comes back.
    let pair = nix::pty::openpty(None, None).unwrap();
    let path = nix::unistd::ttyname(std::os::fd::AsFd::as_fd(&pair.slave)).unwrap();
    let err = Bridge::connect(link_config(&path, &profile()).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err, LinkError::Timeout { attempts: 4 });
}

#[tokio::test]
async fn mass_storage_needs_the_password_and_the_secure_element_signs() {
    use ring::signature::{ED25519, UnparsedPublicKey};
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start(sim_config(dir.path())).unwrap();
    let (bridge, _) = connect(&sim).await;
    let wrong = bridge
        .request(McuMessage::EnterMassStorage {
            password: "guess".into(),
        })
        .await;
    assert!(matches!(wrong, Err(LinkError::Nak { code: 3, .. })));
    assert_eq!(
        bridge
            .request(McuMessage::EnterMassStorage {
                password: "dock-1234".into()
            })
            .await
            .unwrap(),
        McuMessage::Ack
    );
    let McuMessage::PublicKey { key } = bridge
        .request(McuMessage::GetPublicKey { slot: 0 })
        .await
        .unwrap()
    else {
        panic!()
    };
    let McuMessage::Signature { sig } = bridge
        .request(McuMessage::Sign {
            slot: 0,
            message: b"record hash".to_vec(),
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(
        UnparsedPublicKey::new(&ED25519, key)
            .verify(b"record hash", &sig)
            .is_ok()
    );
    sim.send(Control::StorageFull);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(matches!(
        bridge.request(McuMessage::GetStorage).await.unwrap(),
        McuMessage::Storage { free_bytes: 0, .. }
    ));
    sim.stop().unwrap();
}
