//! What the station benchmarks share: settings from the environment, rates, docked sample
//! devices with unique clips, and ingest runs as the daemon does them, with peak RSS.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use custody::testkit::SampleDevice;
use custody_station::{DockOptions, Station, StationConfig};

/// The value of `name`, or `default` when unset or unparsable.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Decimal megabytes per second.
pub fn mb_per_s(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / 1e6 / took.as_secs_f64()
}

/// Writes a clip of `mib` MiB whose every MiB is unique (stores deduplicate by hash).
fn write_clip(path: &Path, mib: usize, tag: u64) {
    let mut block: Vec<u8> = (0..1usize << 20)
        .map(|i| u8::try_from((i * 131 + 7) % 251).unwrap())
        .collect();
    let mut f = fs::File::create(path).unwrap();
    for m in 0..mib as u64 {
        block[..8].copy_from_slice(&tag.to_le_bytes());
        block[8..16].copy_from_slice(&m.to_le_bytes());
        f.write_all(&block).unwrap();
    }
}

/// Device `i` with `clips` signed clips in `src/slot-i`, made once and reused.
pub fn device(src: &Path, i: usize, clips: usize, mib: usize) -> SampleDevice {
    let root = src.join(format!("slot-{i}"));
    let _ = fs::remove_dir_all(&root);
    let serial = format!("B{:06}", i + 1);
    let mut dev = SampleDevice::create(&root, &serial, &[]).unwrap();
    for c in 0..clips {
        let rel = format!("DCIM/100MEDIA/{serial}_{:04}.MP4", c + 1);
        write_clip(&root.join(&rel), mib, ((i as u64) << 32) | c as u64);
        dev.seal_clip(&rel).unwrap();
    }
    dev
}

/// An empty folder `base/name`, with the disk synced so earlier runs do not bleed in.
pub fn fresh_dir(base: &Path, name: &str) -> PathBuf {
    let dir = base.join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    sync();
    dir
}

/// `sync`(1).
pub fn sync() {
    assert!(Command::new("sync").status().unwrap().success());
}

/// This process's peak RSS in KiB since the last reset (`/proc/self/clear_refs`).
pub fn peak_rss_kib() -> u64 {
    fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A station in `dir` whose `station.toml` ends with `settings`, with `devices` enrolled.
pub fn station(dir: &Path, devices: &[SampleDevice], settings: &str) -> Station {
    let text = format!(
        "dock-root = \"dock\"\ndata-dir = \"data\"\norigin = \"bench.example/station\"\n\
         reserve-bytes = 0\n{settings}"
    );
    let station =
        Station::open(StationConfig::parse(&text, &dir.join("station.toml")).unwrap()).unwrap();
    for dev in devices {
        let pem = dir.join(format!("{}.pem", dev.serial));
        fs::write(&pem, dev.public_key().to_pem()).unwrap();
        station
            .enroll(
                &dev.serial,
                "ga947-recorder",
                &pem,
                &[("1".into(), "张三".into())],
            )
            .unwrap();
    }
    station
}

/// Ingests the docked devices as the daemon does (one session per slot, all at once)
/// into a station whose `station.toml` ends with `store` (its `[store]`/`[s3]`, or
/// nothing for the local store); answers the time and this process's peak RSS in KiB.
pub fn ingest(base: &Path, devices: &[SampleDevice], store: &str) -> (Duration, u64) {
    let dir = fresh_dir(base, "station");
    let station = station(&dir, devices, store);
    // Resets the peak so the reading covers only the ingest.
    let _ = fs::write("/proc/self/clear_refs", "5");
    let t = Instant::now();
    let outcomes: Vec<_> = std::thread::scope(|s| {
        let workers: Vec<_> = devices
            .iter()
            .map(|dev| s.spawn(|| station.ingest_slot(&dev.root, &DockOptions::default())))
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap().unwrap())
            .collect()
    });
    let took = t.elapsed();
    let rss = peak_rss_kib();
    for (dev, o) in devices.iter().zip(&outcomes) {
        assert_eq!(o.clips_verified, dev.clip_count(), "{:?}", o.findings);
    }
    drop(station);
    fs::remove_dir_all(&dir).unwrap();
    (took, rss)
}
