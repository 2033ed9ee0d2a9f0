//! Load: 25 devices docked at once (the largest Chinese stations found) into one serving
//! station. Every slot's session ends with its receipt, every clip is stored exactly once,
//! and the daemon's memory stays bounded by its buffer pool, not by the data docked.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::too_many_lines,
    reason = "a test reports failure by panicking, and tells its story in order"
)]

use std::collections::BTreeSet;
use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use custody::testkit::SampleDevice;
use custody_station::{Ledger, LocalStore};

/// The station binary with `--config config` and `args`, logging warnings only.
fn station(config: &std::path::Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_custody-station"));
    cmd.arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "warn");
    cmd
}

const DEVICES: usize = 25;
const CLIPS: usize = 3;
const CLIP_BYTES: usize = 3 << 20;

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn twenty_five_devices_docked_at_once_are_each_stored_once_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("station.toml");
    fs::write(
        &config,
        "dock-root = \"dock\"\ndata-dir = \"data\"\norigin = \"test.example/station-load\"\n\
         reserve-bytes = 0\nparallel-copies = 4\n",
    )
    .unwrap();
    // Recorded an hour ago by the clock the binary runs on; the test asserts storage, not
    // deadlines, so the station's local day does not matter.
    let recorded = chrono::Utc::now() - chrono::Duration::hours(1);
    let mut hashes = BTreeSet::new();
    for i in 1..=DEVICES {
        let serial = format!("A2{i:05}");
        let slot = dir.path().join(format!("dock/slot-{i}"));
        // Distinct clips per device: the store is content-addressed.
        let media: Vec<std::path::PathBuf> = (0..CLIPS)
            .map(|c| {
                let path = dir.path().join(format!("src-{i}-{c}.MP4"));
                let bytes: Vec<u8> = (0..CLIP_BYTES)
                    .map(|j| u8::try_from((j * 31 + c * 7 + i * 13 + (j >> 12)) % 251).unwrap())
                    .collect();
                fs::write(&path, bytes).unwrap();
                path
            })
            .collect();
        let dev = SampleDevice::create_recorded_at(&slot, &serial, &media, Some(recorded)).unwrap();
        for path in &media {
            fs::remove_file(path).unwrap();
        }
        hashes.extend(
            dev.records()
                .filter_map(|r| r.body().media().map(|m| m.sha256)),
        );
        let pem = dir.path().join(format!("{serial}.pub.pem"));
        fs::write(&pem, dev.public_key().to_pem()).unwrap();
        let out = station(
            &config,
            &[
                "enroll",
                "--serial",
                &serial,
                "--hw-profile",
                "ga947-recorder",
            ],
        )
        .arg("--key")
        .arg(&pem)
        .args(["--officer", &format!("4206011{i:04}:警员{i}")])
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(
        hashes.len(),
        DEVICES * CLIPS,
        "every generated clip is distinct"
    );

    let log = fs::File::create(dir.path().join("serve.log")).unwrap();
    let mut serve = station(&config, &["serve"])
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let pid = serve.id();
    let ended = dir.path().join("data/dock-ended.json");
    let deadline = Instant::now() + Duration::from_mins(10);
    let mut peak = 0;
    let done = loop {
        peak = peak.max(rss_kib(pid));
        let rows: Vec<serde_json::Value> = fs::read(&ended)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let complete = rows
            .iter()
            .filter(|r| r["complete"] == true && r["receipt"] == true)
            .count();
        if complete >= DEVICES {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "only {complete} of {DEVICES} slots ended with a receipt: {rows:#?}\n{}",
            fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let status = serve.wait().unwrap();
    assert!(status.success(), "serve did not stop cleanly: {status}");
    let slots: BTreeSet<&str> = done.iter().filter_map(|r| r["slot"].as_str()).collect();
    assert_eq!(slots.len(), DEVICES, "{done:#?}");

    // Every clip once: in the store, and in the ledger's log once per record.
    let store = LocalStore::open(&dir.path().join("data/store"), 0, false).unwrap();
    let stored: BTreeSet<_> = store.list().unwrap().into_iter().collect();
    assert_eq!(stored, hashes, "the store holds exactly the docked clips");
    let ledger = Ledger::open(&dir.path().join("data/ledger.sqlite")).unwrap();
    assert_eq!(
        ledger.log_size().unwrap(),
        u64::try_from(DEVICES * CLIPS).unwrap(),
        "one log leaf per record"
    );
    let data_mib = (DEVICES * CLIPS * CLIP_BYTES) >> 20;
    eprintln!(
        "25 slots at once: {data_mib} MiB docked, serve's resident memory at most {} MiB",
        peak >> 10
    );
    assert!(
        peak < 96 << 10,
        "serve held {} MiB for {data_mib} MiB docked: memory is not bounded by the pool",
        peak >> 10
    );
}
