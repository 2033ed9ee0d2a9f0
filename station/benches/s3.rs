//! S3 store benchmark against a real Ceph RGW, with its baselines in the same run: docked
//! devices (N slots × clips × MiB, in tmpfs) ingested into the Object Lock bucket, against
//! the same ingest into the local store on disk and against `aws s3 cp --recursive` of the
//! same files to the same gateway; the station's peak RSS.
//!
//! `scripts/bench-s3` installs the CLI, starts the gateway and runs this. Environment: the
//! gateway (`CUSTODY_S3_ENDPOINT`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`),
//! `CUSTODY_BENCH_SLOTS` (default "1,4"), `CUSTODY_BENCH_CLIPS` (default 2),
//! `CUSTODY_BENCH_MIB` (default 128), `CUSTODY_BENCH_SRC` (default /dev/shm),
//! `CUSTODY_BENCH_DIR` (default /var/tmp). Every round writes to a fresh bucket: retained
//! objects cannot be deleted, so the gateway's disk must hold rounds × slots × clips × MiB.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark stops on a broken setup"
)]
#![expect(clippy::cast_precision_loss, reason = "MB/s for a report")]

use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use custody::testkit::SampleDevice;
use custody_station::s3::S3Settings;
use custody_station::{DockOptions, Station, StationConfig};

/// Measurements per method and slot count; the best counts.
const ROUNDS: usize = 2;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn mb_per_s(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / 1e6 / took.as_secs_f64()
}

/// Device `i` with `clips` signed clips of unique bytes in `src/slot-i`.
fn device(src: &Path, i: usize, clips: usize, mib: usize) -> SampleDevice {
    let root = src.join(format!("slot-{i}"));
    let serial = format!("C{:06}", i + 1);
    let mut dev = SampleDevice::create(&root, &serial, &[]).unwrap();
    let mut block: Vec<u8> = (0..1usize << 20)
        .map(|j| u8::try_from((j * 131 + 7) % 251).unwrap())
        .collect();
    for c in 0..clips {
        let rel = format!("DCIM/100MEDIA/{serial}_{:04}.MP4", c + 1);
        let mut f = fs::File::create(root.join(&rel)).unwrap();
        for m in 0..mib as u64 {
            block[..8].copy_from_slice(&(((i as u64) << 32) | c as u64).to_le_bytes());
            block[8..16].copy_from_slice(&m.to_le_bytes());
            f.write_all(&block).unwrap();
        }
        drop(f);
        dev.seal_clip(&rel).unwrap();
    }
    dev
}

fn peak_rss_kib() -> u64 {
    fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn bucket_name(what: &str) -> String {
    format!("bench-{what}-{}", chrono::Utc::now().timestamp_micros())
}

/// A locked bucket with a default COMPLIANCE retention of one day, as docs/s3-store.md says.
fn locked_bucket(endpoint: &str) -> String {
    let bucket = bucket_name("station");
    let client = settings(endpoint, &bucket).client().unwrap();
    client.create_locked_bucket().unwrap();
    client.set_default_retention("COMPLIANCE", 1).unwrap();
    bucket
}

fn settings(endpoint: &str, bucket: &str) -> S3Settings {
    S3Settings {
        endpoint: endpoint.into(),
        bucket: bucket.into(),
        region: "us-east-1".into(),
        prefix: String::new(),
        credentials_file: None,
        retention_days: 1,
        legal_hold: false,
        part_size: 8 << 20,
        ca: None,
    }
}

/// Ingests the docked devices as the daemon does (one session per slot, all at once) into
/// the store `store` configures; answers the time and the peak RSS.
fn ingest(base: &Path, devices: &[SampleDevice], store: &str) -> (Duration, u64) {
    let dir = base.join("station");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let text = format!(
        "dock-root = \"dock\"\ndata-dir = \"data\"\norigin = \"bench.example/station\"\n\
         reserve-bytes = 0\n{store}"
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

/// `aws s3 cp --recursive` of each slot's clips, all slots at once, to a plain bucket.
fn aws_cp(endpoint: &str, devices: &[SampleDevice]) -> Duration {
    let bucket = bucket_name("aws");
    settings(endpoint, &bucket)
        .client()
        .unwrap()
        .create_plain_bucket()
        .unwrap();
    let t = Instant::now();
    let children: Vec<_> = devices
        .iter()
        .map(|dev| {
            Command::new("aws")
                .args([
                    "--endpoint-url",
                    endpoint,
                    "s3",
                    "cp",
                    "--recursive",
                    "--quiet",
                ])
                .arg(dev.root.join("DCIM"))
                .arg(format!("s3://{bucket}/{}", dev.serial))
                // Ceph 16 rejects the CRC trailers newer SDKs send by default.
                .env("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required")
                .env("AWS_DEFAULT_REGION", "us-east-1")
                .spawn()
                .expect("aws CLI (scripts/bench-s3 installs it)")
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success(), "aws s3 cp failed");
    }
    t.elapsed()
}

fn main() {
    let endpoint = std::env::var("CUSTODY_S3_ENDPOINT")
        .expect("CUSTODY_S3_ENDPOINT: run scripts/bench-s3 (it starts a Ceph gateway)");
    let slots: Vec<usize> = std::env::var("CUSTODY_BENCH_SLOTS")
        .unwrap_or_else(|_| "1,4".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("CUSTODY_BENCH_SLOTS: comma-separated counts")
        })
        .collect();
    let clips = env_or("CUSTODY_BENCH_CLIPS", 2usize);
    let mib = env_or("CUSTODY_BENCH_MIB", 128usize);
    let src = tempfile::tempdir_in(env_or("CUSTODY_BENCH_SRC", "/dev/shm".to_owned())).unwrap();
    let base = tempfile::tempdir_in(env_or("CUSTODY_BENCH_DIR", "/var/tmp".to_owned())).unwrap();
    let max = slots.iter().copied().max().unwrap_or(1);
    eprintln!(
        "making {max} devices x {clips} clips x {mib} MiB in {}",
        src.path().display()
    );
    let devices: Vec<SampleDevice> = (0..max)
        .map(|i| device(src.path(), i, clips, mib))
        .collect();
    println!(
        "{:>5} {:>8} {:>11} {:>11} {:>11} {:>9} {:>9} {:>9}",
        "slots", "GiB", "S3 MB/s", "local MB/s", "aws cp MB/s", "vs local", "vs aws", "peak RSS"
    );
    for &n in &slots {
        let docked = &devices[..n];
        let bytes = (n * clips * mib) as u64 * (1 << 20);
        let (mut s3, mut rss, mut local, mut aws) =
            (Duration::MAX, 0, Duration::MAX, Duration::MAX);
        for _ in 0..ROUNDS {
            let store = format!(
                "[store]\nbackend = \"s3\"\n[s3]\nendpoint = \"{endpoint}\"\nbucket = \"{}\"\n\
                 retention-days = 1\n",
                locked_bucket(&endpoint)
            );
            let (t, r) = ingest(base.path(), docked, &store);
            (s3, rss) = (s3.min(t), rss.max(r));
            local = local.min(ingest(base.path(), docked, "").0);
            aws = aws.min(aws_cp(&endpoint, docked));
        }
        let (s3, local, aws) = (
            mb_per_s(bytes, s3),
            mb_per_s(bytes, local),
            mb_per_s(bytes, aws),
        );
        println!(
            "{n:>5} {:>8.2} {s3:>11.0} {local:>11.0} {aws:>11.0} {:>9.2} {:>9.2} {:>5} MiB",
            bytes as f64 / f64::from(1u32 << 30),
            s3 / local,
            s3 / aws,
            rss / 1024
        );
    }
}
