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
        profile: profile(),
        serial: "A100001".into(),
        firmware: "1.4.2".into(),
        protocol_version: PROTOCOL_VERSION,
        link: dir.join("ttySIM0"),
        storage: dir.join("storage"),
        segment_seconds: Some(2),
        dock_slot: Some(dir.join("dock/slot-1")),
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
            free_bytes: 64 << 30
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
    sim.apply(Control::ClockJump(-90_000)).unwrap();
    let first = bridge.sync_time(now_ms).await.unwrap();
    assert!((first.offset_ms + 90_000).abs() < 2_000, "{first:?}");
    // Drift is measured over elapsed time: this wait is the measurement, not a guess
    // at when something happened.
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
    sim.send(Control::KeyMark);
    let mut reader = NmeaReader::new();
    let (mut mark, mut fixes) = (false, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while (!mark || fixes < 3) && tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(2), bridge.next_event()).await {
            Ok(Some(LinkEvent::Mcu(McuMessage::KeyMark { .. }))) => mark = true,
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
    let (mut bridge, _) = connect(&sim).await;
    sim.send(Control::Dock);
    wait_for(&mut bridge, 5, |m| *m == McuMessage::Docked).await;
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
    // A whole record (about 1.5 KiB) goes in parts.
    let record: Vec<u8> = (0..1537u32).map(|i| (i % 253) as u8).collect();
    let sig = bridge.sign(0, &record).await.unwrap();
    assert!(
        UnparsedPublicKey::new(&ED25519, key)
            .verify(&record, &sig)
            .is_ok()
    );
    sim.apply(Control::StorageFull).unwrap();
    assert!(matches!(
        bridge.request(McuMessage::GetStorage).await.unwrap(),
        McuMessage::Storage { free_bytes: 0, .. }
    ));
    sim.stop().unwrap();
}

/// Waits for the next MCU event matching `want`, for at most `secs`.
async fn wait_for(
    bridge: &mut Bridge,
    secs: u64,
    want: impl Fn(&McuMessage) -> bool,
) -> McuMessage {
    tokio::time::timeout(Duration::from_secs(secs), async {
        loop {
            if let Some(LinkEvent::Mcu(m)) = bridge.next_event().await
                && want(&m)
            {
                return m;
            }
        }
    })
    .await
    .expect("event did not come in time")
}

fn ffprobe(path: &Path) -> serde_json::Value {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=format_name:format_tags=creation_time:stream=codec_name,codec_type",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("ffprobe is installed by scripts/setup");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn recording_writes_growing_segments_named_and_closed_as_the_profile_says() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sim_config(dir.path());
    let storage = cfg.storage.clone();
    let sim = Simulator::start(cfg).unwrap();
    let (mut bridge, _) = connect(&sim).await;
    sim.send(Control::StartRecording);
    let McuMessage::RecordingStarted { file, .. } = wait_for(&mut bridge, 5, |m| {
        matches!(m, McuMessage::RecordingStarted { .. })
    })
    .await
    else {
        unreachable!()
    };
    assert!(
        file.starts_with("DCIM/100MEDIA/A100001_") && file.ends_with(".MP4.part"),
        "{file}"
    );
    // The file grows while it is written, as on a real recorder: it is seen growing
    // (or closed, having grown) before a deadline.
    let size = |f: &str| std::fs::metadata(storage.join(f)).ok().map(|m| m.len());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut early = size(&file);
    while early.is_none() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        early = size(&file);
    }
    let early = early.unwrap_or_else(|| panic!("{file} never appeared"));
    let mut later = early;
    while later <= early && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        later = size(&file).unwrap_or(later);
    }
    assert!(later > early, "{file} did not grow: {early} then {later}");
    let pattern = profile().file_pattern().unwrap();
    let mut closed = Vec::new();
    for _ in 0..2 {
        let McuMessage::SegmentClosed { file, .. } = wait_for(&mut bridge, 10, |m| {
            matches!(m, McuMessage::SegmentClosed { .. })
        })
        .await
        else {
            unreachable!()
        };
        closed.push(file);
    }
    sim.send(Control::KeyMark);
    sim.send(Control::StopRecording);
    let McuMessage::SegmentClosed { file, .. } = wait_for(&mut bridge, 10, |m| {
        matches!(m, McuMessage::SegmentClosed { .. })
    })
    .await
    else {
        unreachable!()
    };
    closed.push(file);
    wait_for(&mut bridge, 5, |m| {
        matches!(m, McuMessage::RecordingStopped { .. })
    })
    .await;
    for (i, file) in closed.iter().enumerate() {
        let name = file.rsplit('/').next().unwrap();
        let parts = pattern
            .parse_name(name)
            .unwrap_or_else(|| panic!("{name} does not follow the profile pattern"));
        assert_eq!(
            (parts.serial.as_deref(), parts.seq),
            (Some("A100001"), u32::try_from(i + 1).unwrap())
        );
        assert!(!storage.join(format!("{file}.part")).exists());
        let probe = ffprobe(&storage.join(file));
        let codecs: Vec<&str> = probe["streams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["codec_name"].as_str().unwrap())
            .collect();
        assert_eq!(codecs, ["h264", "aac"], "{file}");
        assert!(
            probe["format"]["format_name"]
                .as_str()
                .unwrap()
                .contains("mp4")
        );
        assert!(
            probe["format"]["tags"]["creation_time"]
                .as_str()
                .is_some_and(|t| t.starts_with("20")),
            "{probe}"
        );
    }
    sim.stop().unwrap();
}

#[tokio::test]
async fn docking_exposes_the_storage_only_with_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sim_config(dir.path());
    let (slot, storage) = (cfg.dock_slot.clone().unwrap(), cfg.storage.clone());
    let sim = Simulator::start(cfg).unwrap();
    let (mut bridge, _) = connect(&sim).await;
    let undocked = bridge
        .request(McuMessage::EnterMassStorage {
            password: "dock-1234".into(),
        })
        .await;
    assert!(matches!(undocked, Err(LinkError::Nak { code: 4, .. })));
    sim.send(Control::Dock);
    wait_for(&mut bridge, 5, |m| *m == McuMessage::Docked).await;
    assert!(matches!(
        bridge.request(McuMessage::GetBattery).await.unwrap(),
        McuMessage::Battery { charging: true, .. }
    ));
    assert!(!slot.exists());
    bridge
        .request(McuMessage::EnterMassStorage {
            password: "dock-1234".into(),
        })
        .await
        .unwrap();
    assert_eq!(std::fs::read_link(&slot).unwrap(), storage);
    sim.send(Control::Undock);
    wait_for(&mut bridge, 5, |m| *m == McuMessage::Undocked).await;
    assert!(!slot.exists());
    sim.stop().unwrap();
}

#[tokio::test]
async fn a_full_card_ends_the_recording_and_keeps_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sim_config(dir.path());
    let storage = cfg.storage.clone();
    let sim = Simulator::start(cfg).unwrap();
    let (mut bridge, _) = connect(&sim).await;
    sim.send(Control::StartRecording);
    wait_for(&mut bridge, 5, |m| {
        matches!(m, McuMessage::RecordingStarted { .. })
    })
    .await;
    sim.apply(Control::StorageFull).unwrap();
    let McuMessage::SegmentClosed { file, .. } = wait_for(&mut bridge, 10, |m| {
        matches!(m, McuMessage::SegmentClosed { .. })
    })
    .await
    else {
        unreachable!()
    };
    wait_for(&mut bridge, 5, |m| {
        matches!(m, McuMessage::RecordingStopped { .. })
    })
    .await;
    assert!(std::fs::metadata(storage.join(&file)).unwrap().len() > 0);
    sim.stop().unwrap();
}
