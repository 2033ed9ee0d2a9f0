//! The agent sealing real files: closing patterns, restarts, crashes at every step,
//! tampering under it, bindings, and a simulated recorder writing real MP4 with FFmpeg.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::too_many_lines,
    reason = "a test reports failure by panicking, and tells its story in order"
)]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use custody::{VerifyOptions, verify_folder};
use custody_agent::{AgentConfig, CRASH_AT_ENV, CRASH_POINTS, MANIFEST_FILE, Sealer, keystore};

struct Device {
    _dir: tempfile::TempDir,
    config: PathBuf,
    storage: PathBuf,
    state: PathBuf,
}

fn device(profile: &str) -> Device {
    let dir = tempfile::tempdir().unwrap();
    let numbering = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/numbering.example.toml");
    let config = dir.path().join("agent.toml");
    fs::write(
        &config,
        format!(
            "serial = \"A100001\"\nhw-profile = \"{profile}\"\nstorage = \"storage\"\nstate-dir = \"state\"\nnumbering = \"{}\"\nclose-idle-ms = 300\n\n[officer]\nname = \"张三\"\ncert-no = \"42060119001\"\n\n[agency]\ncode = \"420600\"\nname = \"襄阳市生态环境局\"\n",
            numbering.display()
        ),
    )
    .unwrap();
    Device {
        storage: dir.path().join("storage"),
        state: dir.path().join("state"),
        config,
        _dir: dir,
    }
}

impl Device {
    fn cfg(&self) -> AgentConfig {
        AgentConfig::load(&self.config).unwrap()
    }
    fn sealer(&self) -> Sealer {
        Sealer::load(self.cfg()).unwrap()
    }
    fn rec_dir(&self) -> PathBuf {
        let d = self.storage.join(self.cfg().profile.storage.recording_dir);
        fs::create_dir_all(&d).unwrap();
        d
    }
    fn agent(&self, args: &[&str], crash_at: Option<&str>) -> std::process::Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_custody-agent"));
        cmd.arg("--config").arg(&self.config).args(args);
        if let Some(point) = crash_at {
            cmd.env(CRASH_AT_ENV, point);
        }
        cmd.output().unwrap()
    }
    fn verify(&self) -> custody::VerifyReport {
        verify_folder(&self.storage, &VerifyOptions::default()).unwrap()
    }
}

fn codes(report: &custody::VerifyReport) -> BTreeSet<&'static str> {
    report.findings.iter().map(|f| f.code).collect()
}

/// Writes a clip the way a renaming recorder does, letting the sealer look in between.
fn record_renaming(dev: &Device, sealer: &mut Sealer, name: &str, chunks: usize) -> Vec<u8> {
    let part = dev.rec_dir().join(format!("{name}.part"));
    let mut f = fs::File::create(&part).unwrap();
    let mut all = Vec::new();
    for i in 0..chunks {
        let chunk: Vec<u8> = (0..10_000)
            .map(|j| u8::try_from((i * 7 + j) % 251).unwrap())
            .collect();
        f.write_all(&chunk).unwrap();
        all.extend(chunk);
        assert!(
            sealer.scan().unwrap().is_empty(),
            "sealed while still recording"
        );
    }
    fs::rename(&part, dev.rec_dir().join(name)).unwrap();
    all
}

#[test]
fn clips_closed_by_rename_are_sealed_once_and_verify() {
    let dev = device("ga947-recorder");
    let mut sealer = dev.sealer();
    for n in 1..=3 {
        let bytes = record_renaming(
            &dev,
            &mut sealer,
            &format!("A100001_20261120_09000{n}_000{n}.MP4"),
            5,
        );
        let new_records = sealer.scan().unwrap();
        assert_eq!(new_records.len(), 1);
        let media = new_records[0].body().media().unwrap();
        assert_eq!(
            (media.size, media.sha256),
            (bytes.len() as u64, custody::MediaHash::of(&bytes))
        );
        assert_eq!(new_records[0].body().seq, n);
    }
    assert!(sealer.scan().unwrap().is_empty(), "nothing sealed twice");
    let report = dev.verify();
    assert!(report.is_clean(), "{:#?}", report.findings);
    assert_eq!(report.devices[0].clips_verified, 3);
}

#[test]
fn clips_that_stop_growing_are_closed_after_the_idle_time() {
    let dev = device("android-terminal");
    let mut sealer = dev.sealer();
    let path = dev.rec_dir().join("VID_20261120_090000_001.mp4");
    fs::write(&path, vec![1u8; 50_000]).unwrap();
    assert!(sealer.scan().unwrap().is_empty());
    let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(&vec![2u8; 50_000]).unwrap();
    assert!(sealer.scan().unwrap().is_empty(), "still growing");
    std::thread::sleep(Duration::from_millis(400));
    let new_records = sealer.scan().unwrap();
    assert_eq!(new_records.len(), 1);
    assert_eq!(new_records[0].body().media().unwrap().size, 100_000);
    assert!(dev.verify().is_clean());
}

#[test]
fn a_restart_keeps_the_chain_and_seals_nothing_twice() {
    let dev = device("ga947-recorder");
    {
        let mut sealer = dev.sealer();
        record_renaming(&dev, &mut sealer, "A100001_20261120_090001_0001.MP4", 2);
        assert_eq!(sealer.scan().unwrap().len(), 1);
    }
    // Restart in the middle of a clip: the new process hashes it again from the start.
    let part = dev.rec_dir().join("A100001_20261120_091001_0002.MP4.part");
    fs::write(&part, vec![9u8; 30_000]).unwrap();
    let mut sealer = dev.sealer();
    assert!(sealer.scan().unwrap().is_empty());
    fs::OpenOptions::new()
        .append(true)
        .open(&part)
        .unwrap()
        .write_all(&[8u8; 1000])
        .unwrap();
    fs::rename(
        &part,
        dev.rec_dir().join("A100001_20261120_091001_0002.MP4"),
    )
    .unwrap();
    let new_records = sealer.scan().unwrap();
    assert_eq!(new_records.len(), 1);
    assert_eq!(new_records[0].body().seq, 2);
    assert_eq!(new_records[0].body().media().unwrap().size, 31_000);
    assert!(dev.verify().is_clean());
}

#[test]
fn the_manifest_refuses_updates_and_deletes() {
    let dev = device("ga947-recorder");
    let mut sealer = dev.sealer();
    record_renaming(&dev, &mut sealer, "A100001_20261120_090001_0001.MP4", 1);
    sealer.scan().unwrap();
    let conn = rusqlite_open(&dev.state.join(MANIFEST_FILE));
    for sql in [
        "UPDATE records SET seq = 9",
        "DELETE FROM records",
        "UPDATE records SET bytes = x'00'",
    ] {
        let err = conn.execute(sql, []).unwrap_err().to_string();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
}

fn rusqlite_open(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

#[test]
fn a_zero_length_clip_is_sealed_and_a_vanished_one_is_not() {
    let dev = device("ga947-recorder");
    let mut sealer = dev.sealer();
    fs::File::create(dev.rec_dir().join("A100001_20261120_090001_0001.MP4")).unwrap();
    let new_records = sealer.scan().unwrap();
    assert_eq!(new_records[0].body().media().unwrap().size, 0);
    let part = dev.rec_dir().join("A100001_20261120_090002_0002.MP4.part");
    fs::write(&part, b"half a clip").unwrap();
    assert!(sealer.scan().unwrap().is_empty());
    fs::remove_file(&part).unwrap();
    assert!(sealer.scan().unwrap().is_empty());
    assert!(dev.verify().is_clean());
}

/// A key holder that refuses while `busy` is set, as a secure element does while it is
/// busy or its link is down.
struct BusySigner {
    key: custody::SigningKey,
    busy: std::sync::atomic::AtomicBool,
}

impl custody::Signer for BusySigner {
    fn public_key(&self) -> custody::PublicKey {
        self.key.public_key()
    }
    fn sign(&self, msg: &[u8]) -> Result<custody::Signature, custody::SignError> {
        if self.busy.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(custody::SignError("busy".into()));
        }
        Ok(self.key.sign(msg))
    }
}

#[test]
fn a_clip_whose_record_cannot_be_signed_now_is_sealed_at_the_next_scan() {
    use std::sync::atomic::Ordering;
    let dev = device("ga947-recorder");
    let signer = std::sync::Arc::new(BusySigner {
        key: custody::SigningKey::from_seed(&[3; 32]).unwrap(),
        busy: true.into(),
    });
    let mut sealer = Sealer::open(dev.cfg(), signer.clone()).unwrap();
    fs::write(
        dev.rec_dir().join("A100001_20261120_090001_0001.MP4"),
        b"clip",
    )
    .unwrap();
    assert!(
        sealer.scan().unwrap().is_empty(),
        "sealed without a signature"
    );
    assert!(sealer.records().unwrap().is_empty());
    signer.busy.store(false, Ordering::SeqCst);
    let new_records = sealer.scan().unwrap();
    assert_eq!(new_records.len(), 1);
    assert_eq!(
        new_records[0].body().seq,
        1,
        "no seq was used up by the failed try"
    );
    assert!(dev.verify().is_clean());
}

#[test]
fn a_file_replaced_after_sealing_gets_a_new_record_and_the_old_one_shows_the_change() {
    let dev = device("ga947-recorder");
    let mut sealer = dev.sealer();
    let name = "A100001_20261120_090001_0001.MP4";
    record_renaming(&dev, &mut sealer, name, 2);
    sealer.scan().unwrap();
    fs::write(dev.rec_dir().join(name), b"a different, shorter file").unwrap();
    let new_records = sealer.scan().unwrap();
    assert_eq!(new_records.len(), 1);
    assert_eq!(new_records[0].body().seq, 2);
    let report = dev.verify();
    assert_eq!(
        codes(&report),
        BTreeSet::from([custody::code::MEDIA_HASH_MISMATCH]),
        "{:#?}",
        report.findings
    );
}

#[test]
fn a_corrupt_manifest_is_a_clear_error_and_the_clips_stay() {
    let dev = device("ga947-recorder");
    fs::create_dir_all(&dev.state).unwrap();
    fs::write(dev.state.join(MANIFEST_FILE), vec![0x5a; 8192]).unwrap();
    let clip = dev.rec_dir().join("A100001_20261120_090001_0001.MP4");
    fs::write(&clip, b"evidence").unwrap();
    let out = dev.agent(&["run", "--once"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("manifest"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read(&clip).unwrap(), b"evidence");
}

#[test]
fn a_locked_manifest_is_a_clear_error_and_the_clip_is_sealed_once_it_is_free() {
    let dev = device("ga947-recorder");
    assert!(dev.agent(&["run", "--once"], None).status.success());
    let clip = dev.rec_dir().join("A100001_20261120_090001_0001.MP4");
    fs::write(&clip, b"evidence").unwrap();
    // Another process holds the manifest's write lock longer than the agent waits.
    let holder = rusqlite_open(&dev.state.join(MANIFEST_FILE));
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let out = dev.agent(&["run", "--once"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("locked"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read(&clip).unwrap(), b"evidence");
    drop(holder);
    let out = dev.agent(&["run", "--once"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = dev.verify();
    assert!(report.is_clean(), "{:#?}", report.findings);
    assert_eq!(report.devices[0].clips_verified, 1);
}

#[test]
fn two_agent_processes_closing_the_same_clip_seal_it_once() {
    // `custody-agent upload` started beside the `run` daemon: both find the clip closed and
    // unsealed, then queue on the manifest's write lock (held here so they surely meet).
    let dev = device("ga947-recorder");
    assert!(dev.agent(&["run", "--once"], None).status.success());
    fs::write(
        dev.rec_dir().join("A100001_20261120_090001_0001.MP4"),
        vec![5u8; 50_000],
    )
    .unwrap();
    let holder = rusqlite_open(&dev.state.join(MANIFEST_FILE));
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let racers: Vec<_> = (0..2)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_custody-agent"))
                .arg("--config")
                .arg(&dev.config)
                .args(["run", "--once"])
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    holder.execute_batch("COMMIT").unwrap();
    for racer in racers {
        let out = racer.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let report = dev.verify();
    assert!(report.is_clean(), "{:#?}", report.findings);
    assert_eq!(report.devices[0].records, 1, "the clip is sealed once");
}

#[test]
fn a_crash_at_any_step_loses_nothing_and_forks_nothing() {
    for point in CRASH_POINTS {
        let dev = device("ga947-recorder");
        for n in 1..=2 {
            fs::create_dir_all(dev.rec_dir()).unwrap();
            fs::write(
                dev.rec_dir()
                    .join(format!("A100001_20261120_09000{n}_000{n}.MP4")),
                vec![n; 20_000],
            )
            .unwrap();
        }
        let crashed = dev.agent(&["run", "--once"], Some(point));
        assert!(
            !crashed.status.success(),
            "{point}: the agent did not crash"
        );
        let again = dev.agent(&["run", "--once"], None);
        assert!(
            again.status.success(),
            "{point}: {}",
            String::from_utf8_lossy(&again.stderr)
        );
        let report = dev.verify();
        assert!(report.is_clean(), "{point}: {:#?}", report.findings);
        assert_eq!(
            report.devices[0].records, 2,
            "{point}: every clip sealed exactly once"
        );
        assert_eq!(report.devices[0].clips_verified, 2, "{point}");
    }
}

#[test]
fn bindings_and_annotations_are_new_records_pointing_at_the_clip() {
    let dev = device("ga947-recorder");
    let mut sealer = dev.sealer();
    for n in 1..=2 {
        record_renaming(
            &dev,
            &mut sealer,
            &format!("A100001_20261120_09000{n}_000{n}.MP4"),
            1,
        );
        sealer.scan().unwrap();
    }
    drop(sealer);
    let clip = |n: u8| format!("DCIM/100MEDIA/A100001_20261120_09000{n}_000{n}.MP4");
    for n in 1..=2 {
        let out = dev.agent(&["bind", &clip(n), "襄环罚［2019］75号"], None);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = dev.agent(
        &[
            "annotate",
            &clip(1),
            "--proves",
            "当事人拒不停止排污",
            "--speaker",
            "李四:当事人",
            "--summary",
            "告知整改",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = dev.agent(
        &["bind", "DCIM/100MEDIA/NOPE.MP4", "襄环罚〔2019〕75号"],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let out = dev.agent(&["bind", &clip(1), "武环罚〔2019〕75号"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("agency code"));

    let report = dev.verify();
    assert!(report.is_clean(), "{:#?}", report.findings);
    let records = dev.sealer().records().unwrap();
    let numbers: Vec<String> = records
        .iter()
        .filter_map(|r| match &r.body().fact {
            custody::Fact::Binding(b) => Some(b.number.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        numbers,
        ["襄环罚〔2019〕75号-视-001", "襄环罚〔2019〕75号-视-002"]
    );
    assert_eq!(records.len(), 5);
}

#[test]
fn enroll_prints_the_public_key_and_the_key_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dev = device("ga947-recorder");
    let out = dev.agent(&["enroll"], None);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let pem: String = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(|l| {
            [
                l, "
",
            ]
        })
        .collect();
    let key = custody::PublicKey::from_pem(&pem).unwrap();
    assert!(text.contains(&key.key_id().0));
    let mode = fs::metadata(keystore::key_path(&dev.state))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    fs::set_permissions(
        keystore::key_path(&dev.state),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = dev.agent(&["enroll"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("0600"));
}

/// NMEA lines of a real BeiDou receiver's capture (gpsd's test data).
fn beidou_capture() -> Vec<Vec<u8>> {
    let capture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../firmware-bridge/tests/data/nmea/beidou-bd.log");
    firmware_bridge::sim::load_nmea(&capture).unwrap()
}

/// Links `dev`'s agent to a simulated MCU (2 s segments, docking into `dock/slot-1` with
/// the password `dock-1234`) that plays `nmea`; returns the simulator and the slot.
fn simulated_mcu(
    dev: &Device,
    nmea: Vec<Vec<u8>>,
) -> (firmware_bridge::sim::Simulator, AgentConfig, PathBuf) {
    simulated_mcu_of(dev, "A100001", nmea)
}

/// As [`simulated_mcu`], with an MCU that reports `serial` as its device's.
fn simulated_mcu_of(
    dev: &Device,
    serial: &str,
    nmea: Vec<Vec<u8>>,
) -> (firmware_bridge::sim::Simulator, AgentConfig, PathBuf) {
    let (cfg, slot) = link_to_mcu(dev, false);
    let sim = start_mcu(dev, &cfg, serial, nmea, None);
    (sim, cfg, slot)
}

/// Adds the `[bridge]` section to `dev`'s configuration (with the secure element's slot 0
/// as the device key when `secure_element`); returns the configuration and the dock slot.
fn link_to_mcu(dev: &Device, secure_element: bool) -> (AgentConfig, PathBuf) {
    let mut text = fs::read_to_string(&dev.config).unwrap();
    writeln!(
        text,
        "\n[bridge]\nport = \"{}\"\nmass-storage-password = \"dock-1234\"",
        mcu_link(dev).display()
    )
    .unwrap();
    if secure_element {
        writeln!(text, "secure-element-slot = 0").unwrap();
    }
    fs::write(&dev.config, text).unwrap();
    (dev.cfg(), dev.state.parent().unwrap().join("dock/slot-1"))
}

/// The serial link's path (a symlink to the simulator's pty).
fn mcu_link(dev: &Device) -> PathBuf {
    dev.state.parent().unwrap().join("tty")
}

/// Starts a simulated MCU for `dev` (2 s segments, docking into the slot of
/// [`link_to_mcu`] with the password `dock-1234`) reporting `serial`, playing `nmea`, with
/// a secure element holding the key of `seed` if given.
fn start_mcu(
    dev: &Device,
    cfg: &AgentConfig,
    serial: &str,
    nmea: Vec<Vec<u8>>,
    seed: Option<[u8; 32]>,
) -> firmware_bridge::sim::Simulator {
    use firmware_bridge::message::OfficerBinding;
    use firmware_bridge::sim::{SimConfig, Simulator};
    Simulator::start(SimConfig {
        profile: cfg.profile.clone(),
        serial: serial.into(),
        firmware: "1".into(),
        protocol_version: 1,
        link: mcu_link(dev),
        storage: dev.storage.clone(),
        segment_seconds: Some(2),
        dock_slot: Some(dev.state.parent().unwrap().join("dock/slot-1")),
        drift_ppm: 0,
        battery_percent: 90,
        mass_storage_password: "dock-1234".into(),
        nmea,
        officer: OfficerBinding {
            police_no: "1".into(),
            name: "张三".into(),
            unit_code: "1".into(),
            unit_name: "局".into(),
        },
        secure_element_seed: seed,
    })
    .unwrap()
}

/// Runs the agent on `cfg` in the background while the simulated recorder records until
/// two 2 s segments have closed; send on the returned channel to stop the agent.
async fn record_two_segments(
    cfg: AgentConfig,
    sim: &firmware_bridge::sim::Simulator,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    use firmware_bridge::sim::Control;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let dir = cfg.recording_dir();
    let agent = tokio::spawn(custody_agent::run(cfg, async {
        let _ = stopped.await;
    }));
    sim.apply(Control::StartRecording).unwrap();
    // Two segments closed: two `.MP4` files beside the one still being written.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while closed_segments(&dir) < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        closed_segments(&dir) >= 2,
        "the recorder closed no two segments"
    );
    sim.apply(Control::StopRecording).unwrap();
    (stop, agent)
}

/// Closed segments in `dir` (written `.part` files are renamed to `.MP4` when closed).
fn closed_segments(dir: &Path) -> usize {
    fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "MP4"))
            .count()
    })
}

/// Waits until every closed segment in `dev`'s recording folder has its record: the
/// agent has sealed all it was given.
async fn all_sealed(dev: &Device) {
    let dir = dev.rec_dir();
    let records = || {
        fs::read_dir(
            custody::layout::device_dir(&dev.storage, "A100001").join(custody::layout::RECORDS_DIR),
        )
        .map_or(0, |e| {
            e.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .count()
        })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while (closed_segments(&dir) == 0 || records() < closed_segments(&dir))
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        records() >= closed_segments(&dir),
        "{} records for {} closed segments",
        records(),
        closed_segments(&dir)
    );
}

/// The device's clip records (seq, fact), once its storage verifies clean with at least
/// two clips.
fn verified_clips(dev: &Device) -> Vec<(u64, custody::ClipFact)> {
    let report = dev.verify();
    assert!(report.is_clean(), "{:#?}", report.findings);
    assert!(
        report.devices[0].clips_verified >= 2,
        "{:?}",
        report.devices
    );
    dev.sealer()
        .records()
        .unwrap()
        .into_iter()
        .filter_map(|r| match &r.body().fact {
            custody::Fact::Clip(clip) => Some((r.body().seq, clip.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn without_a_gnss_fix_clips_are_sealed_and_state_no_location() {
    let dev = device("ga947-recorder");
    // The capture's first seconds, before the receiver had a fix (GGA quality 0, RMC "V").
    let no_fix: Vec<Vec<u8>> = beidou_capture()
        .into_iter()
        .take_while(|l| !l.windows(8).any(|w| w == b",074155."))
        .collect();
    assert!(no_fix.iter().any(|l| l.starts_with(b"$GNGGA")));
    let (sim, cfg, _) = simulated_mcu(&dev, no_fix);
    let (stop, agent) = record_two_segments(cfg, &sim).await;
    all_sealed(&dev).await;
    sim.stop().unwrap();
    stop.send(()).unwrap();
    agent.await.unwrap().unwrap();
    for (_, clip) in verified_clips(&dev) {
        assert!(clip.media.facts.is_some(), "{clip:?}");
        assert!(clip.location.is_none(), "no fix, no location: {clip:?}");
    }
}

#[tokio::test]
async fn a_simulated_recorder_s_real_mp4_segments_are_sealed_as_they_close_then_handed_to_the_dock()
{
    use firmware_bridge::sim::Control;
    let dev = device("ga947-recorder");
    // The agent follows the MCU link too: RTC state, GNSS, segment-closed events.
    let (sim, cfg, slot) = simulated_mcu(&dev, beidou_capture());
    let (stop, agent) = record_two_segments(cfg, &sim).await;
    // Docked: the agent seals what closed, then opens mass-storage mode with the password.
    assert!(!slot.exists());
    sim.send(Control::Dock);
    for _ in 0..50 {
        if slot.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        slot.exists(),
        "the agent never handed the storage to the dock"
    );
    // Every clip closed before docking was sealed before the storage went to the dock.
    let count = |dir: PathBuf, ext: &str| {
        fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == ext)
            })
            .count()
    };
    let clips = count(dev.rec_dir(), "MP4");
    let records = count(
        custody::layout::device_dir(&dev.storage, "A100001").join(custody::layout::RECORDS_DIR),
        "json",
    );
    assert!(
        clips >= 2 && records == clips,
        "{records} records for {clips} clips at handoff"
    );
    sim.stop().unwrap();
    stop.send(()).unwrap();
    agent.await.unwrap().unwrap();
    // Every clip states where it was recorded: the capture's fix near Shanghai.
    for (seq, clip) in verified_clips(&dev) {
        let facts = clip
            .media
            .facts
            .as_ref()
            .unwrap_or_else(|| panic!("seq {seq} has no media facts"));
        assert_eq!(
            (
                facts.container.as_str(),
                facts.video_codec.as_deref(),
                facts.audio_codec.as_deref()
            ),
            ("mp4", Some("h264"), Some("aac"))
        );
        assert!(facts.creation_time.is_some(), "{facts:?}");
        // The duration was read while the clip was recorded; FFmpeg walking the whole file
        // at close finds the same.
        let walked = custody_agent::media::probe(&dev.storage.join(&clip.media.file), None)
            .unwrap()
            .duration_ms;
        assert!(
            facts.duration_ms.is_some_and(|d| d > 0)
                && facts.duration_ms.unwrap().abs_diff(walked.unwrap()) <= 1,
            "sealed {facts:?}, FFmpeg at close {walked:?}"
        );
        let loc = clip
            .location
            .as_ref()
            .unwrap_or_else(|| panic!("seq {seq} has no location"));
        assert!(
            (loc.lat - 31.248).abs() < 0.01 && (loc.lon - 121.587).abs() < 0.01,
            "{loc:?}"
        );
    }
}

/// The public key of the simulated secure element holding `seed`.
fn secure_element_key(seed: [u8; 32]) -> custody::PublicKey {
    custody::SigningKey::from_seed(&seed).unwrap().public_key()
}

#[tokio::test]
async fn a_secure_element_signs_every_record_and_a_swapped_one_is_refused() {
    use firmware_bridge::sim::Control;
    const SEED: [u8; 32] = [7; 32];
    let dev = device("ga947-recorder");
    let (cfg, slot) = link_to_mcu(&dev, true);
    let sim = start_mcu(&dev, &cfg, "A100001", Vec::new(), Some(SEED));
    // Nothing is sealed before IT has the element's key.
    let out = dev.agent(&["run", "--once"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("custody-agent enroll"),
        "{out:?}"
    );
    // Enrolment reads the key from the element and pins it; no key file is made.
    let out = dev.agent(&["enroll"], None);
    assert!(out.status.success(), "{out:?}");
    let public = secure_element_key(SEED);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&public.to_pem()));
    assert!(!keystore::key_path(&dev.state).exists());
    // The daemon seals whole records through the element while the recorder records,
    // and still seals everything before handing the storage to the dock.
    let (stop, agent) = record_two_segments(cfg, &sim).await;
    sim.send(Control::Dock);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !slot.exists() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(slot.exists(), "the storage was never handed to the dock");
    stop.send(()).unwrap();
    agent.await.unwrap().unwrap();
    let dev_dir = custody::layout::device_dir(&dev.storage, "A100001");
    assert_eq!(
        fs::read_to_string(dev_dir.join(custody::layout::PUBLIC_KEY_FILE)).unwrap(),
        public.to_pem()
    );
    let clips = verified_clips(&dev);
    assert!(clips.len() >= 2 && !keystore::key_path(&dev.state).exists());
    // A one-shot command opens the link itself: a binding, also signed by the element.
    let out = dev.agent(
        &["bind", &clips[0].1.media.file, "襄环罚〔2019〕75号"],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    assert!(dev.verify().is_clean());
    let records = dev.sealer().records().unwrap().len();
    sim.stop().unwrap();
    // Another MCU (another element) in the same device: refused, nothing sealed.
    let swapped = start_mcu(&dev, &dev.cfg(), "A100001", Vec::new(), Some([8; 32]));
    let out = dev.agent(
        &["annotate", &clips[0].1.media.file, "--proves", "现场"],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("other than the one enrolled"),
        "{out:?}"
    );
    let out = dev.agent(&["enroll"], None);
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("MCU replaced"),
        "{out:?}"
    );
    swapped.stop().unwrap();
    let sim = start_mcu(&dev, &dev.cfg(), "A100001", Vec::new(), Some(SEED));
    assert_eq!(dev.sealer().records().unwrap().len(), records);
    sim.stop().unwrap();
}

#[test]
fn an_outbox_that_cannot_be_written_loses_nothing_and_is_filled_later() {
    let dev = device("ga947-recorder");
    let mut sealer = dev.sealer();
    // The records folder cannot be created (as when the card is full or read-only).
    let records = dev.storage.join("custody/devices/A100001/records");
    fs::create_dir_all(records.parent().unwrap()).unwrap();
    fs::write(&records, b"not a folder").unwrap();
    record_renaming(&dev, &mut sealer, "A100001_20261120_090001_0001.MP4", 2);
    assert_eq!(
        sealer.scan().unwrap().len(),
        1,
        "sealed into the manifest all the same"
    );
    assert_eq!(sealer.records().unwrap().len(), 1);
    fs::remove_file(&records).unwrap();
    sealer.scan().unwrap();
    let report = dev.verify();
    assert!(report.is_clean(), "{:#?}", report.findings);
    assert_eq!(report.devices[0].records, 1);
}

/// The parsed record `seq` of device A100001 on `dev`'s storage, once it exists.
fn record(dev: &Device, seq: u64) -> Option<custody::RecordBody> {
    let bytes = fs::read(custody::layout::record_path(&dev.storage, "A100001", seq)).ok()?;
    Some(custody::Record::parse(bytes).ok()?.body().clone())
}

fn wait_for_record(dev: &Device, seq: u64) -> custody::RecordBody {
    for _ in 0..100 {
        if let Some(body) = record(dev, seq) {
            return body;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("record {seq} was not sealed within 10 s");
}

/// Stops a running agent as a service manager does (SIGTERM) and requires a clean exit.
fn stop_cleanly(mut agent: std::process::Child) {
    let stopped = Command::new("kill")
        .args(["-TERM", &agent.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    assert!(agent.wait().unwrap().success());
}

/// The wall clock jumps back an hour mid-recording (an RTC reset, a bad time sync). The
/// real agent runs under libfaketime (Debian's `faketime`), whose offset the test changes
/// while the agent runs; the monotonic clock goes on as it does on a device. Clips close by
/// the monotonic clock and chain by seq, so every clip is sealed once and in order, and
/// the chain verifies; each record's own times stay in order.
#[test]
fn a_wall_clock_jumping_backwards_loses_no_clip_and_breaks_no_chain() {
    let lib = Path::new("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1");
    assert!(
        lib.exists(),
        "libfaketime is missing (Debian package faketime; scripts/setup installs it)"
    );
    let dev = device("android-terminal");
    let rec = dev.rec_dir();
    let offset = dev.state.parent().unwrap().join("faketime-offset");
    fs::write(&offset, "+0\n").unwrap();
    let agent = Command::new(env!("CARGO_BIN_EXE_custody-agent"))
        .arg("--config")
        .arg(&dev.config)
        .arg("run")
        .env("LD_PRELOAD", lib)
        // A FAKETIME inherited from a run of the whole suite under faketime would win
        // over the offset file this test moves.
        .env_remove("FAKETIME")
        .env("FAKETIME_TIMESTAMP_FILE", &offset)
        .env("FAKETIME_NO_CACHE", "1")
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();

    fs::write(rec.join("VID_20261120_090000_001.mp4"), vec![1u8; 40_000]).unwrap();
    let before = wait_for_record(&dev, 1);
    // A clip that starts before the jump and ends after it.
    let mut across = fs::File::create(rec.join("VID_20261120_090100_002.mp4")).unwrap();
    across.write_all(&vec![2u8; 40_000]).unwrap();
    std::thread::sleep(Duration::from_millis(150));
    fs::write(&offset, "-1h\n").unwrap();
    std::thread::sleep(Duration::from_millis(150));
    across.write_all(&vec![3u8; 40_000]).unwrap();
    drop(across);
    let spanning = wait_for_record(&dev, 2);
    fs::write(rec.join("VID_20261120_090200_003.mp4"), vec![4u8; 40_000]).unwrap();
    let after = wait_for_record(&dev, 3);
    stop_cleanly(agent);

    // The jump was real: the last record is dated before the first.
    assert!(
        after.created < before.created - chrono::Duration::minutes(50),
        "clock did not jump: {} then {}",
        before.created,
        after.created
    );
    let span = |b: &custody::RecordBody| match &b.fact {
        custody::Fact::Clip(c) => (c.time.start, c.time.end, c.media.size),
        other => panic!("not a clip: {other:?}"),
    };
    let (start, end, size) = span(&spanning);
    assert!(
        start <= end,
        "a clip's start is never after its end: {start} .. {end}"
    );
    assert_eq!(size, 80_000, "the clip across the jump is whole");
    assert_eq!(after.seq, 3);
    assert_eq!(
        after.prev,
        Some(
            custody::Record::parse(
                fs::read(custody::layout::record_path(&dev.storage, "A100001", 2)).unwrap()
            )
            .unwrap()
            .hash()
        )
    );
    assert!(record(&dev, 4).is_none(), "nothing sealed twice");
    // Checked as of the agent's clock (the real one, whatever clock this test runs on).
    let latest = [&before, &spanning, &after]
        .iter()
        .map(|b| b.created)
        .max()
        .unwrap();
    let report = verify_folder(
        &dev.storage,
        &VerifyOptions {
            now: latest.with_timezone(&chrono::Utc) + chrono::Duration::minutes(1),
            ..VerifyOptions::default()
        },
    )
    .unwrap();
    assert!(report.is_clean(), "{:?}", report.findings);
}

/// A helper of the run loop that ends on its own is noticed and said, and sealing goes
/// on: here the MCU reports another device's serial, so the bridge refuses its data and
/// ends; a clip closed afterwards is still sealed, and SIGTERM still ends the agent
/// cleanly.
#[test]
fn a_helper_that_ends_on_its_own_is_said_and_sealing_goes_on() {
    use std::io::BufRead as _;
    use std::process::Stdio;
    use std::time::Instant;
    let dev = device("ga947-recorder");
    let (sim, cfg, _) = simulated_mcu_of(&dev, "B999999", Vec::new());
    let mut agent = Command::new(env!("CARGO_BIN_EXE_custody-agent"))
        .arg("--config")
        .arg(&dev.config)
        .arg("run")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = agent.stderr.take().unwrap();
    let (lines, said) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut log = Vec::new();
    while let Ok(line) = said.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let found = line.contains("firmware bridge stopped on its own");
        log.push(line);
        if found {
            break;
        }
    }
    assert!(
        log.iter()
            .any(|l| l.contains("firmware bridge stopped on its own")),
        "{log:#?}"
    );
    let rec_dir = dev.storage.join(&cfg.profile.storage.recording_dir);
    fs::create_dir_all(&rec_dir).unwrap();
    fs::write(rec_dir.join("A100001_0001.MP4"), vec![7u8; 4096]).unwrap();
    // Still sealing after the bridge ended.
    wait_for_record(&dev, 1);
    stop_cleanly(agent);
    sim.stop().unwrap();
}
