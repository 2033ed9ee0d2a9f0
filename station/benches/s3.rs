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

use std::process::Command;
use std::time::{Duration, Instant};

use custody::testkit::SampleDevice;
use custody_station::s3::S3Settings;

mod common;
use common::{device, env_or, ingest, mb_per_s};

/// Measurements per method and slot count; the best counts.
const ROUNDS: usize = 2;

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
