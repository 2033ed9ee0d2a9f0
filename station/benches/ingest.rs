//! Station benchmark, with its baselines measured in the same run:
//! - the pipeline's SHA-256 (the hasher and buffer size ingest uses) against
//!   `openssl speed -evp sha256` at the same block size;
//! - end-to-end ingest of docked devices (N slots × clips × MiB, sources in tmpfs as a fast
//!   USB mount would serve them, store on disk) against `cp` + `sync` of the same files and
//!   against `cp` then `sha256sum`, for each slot count; the station's peak RSS.
//!
//! `cargo bench -p custody-station`. Environment: `CUSTODY_BENCH_SLOTS` (default
//! "1,2,4,8"), `CUSTODY_BENCH_CLIPS` (clips per device, default 4), `CUSTODY_BENCH_MIB`
//! (clip size, default 512), `CUSTODY_BENCH_SRC` (device storage, default /dev/shm),
//! `CUSTODY_BENCH_DIR` (station data, default /var/tmp: it should be a disk).
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark stops on a broken setup"
)]
#![expect(clippy::cast_precision_loss, reason = "MB/s for a report")]

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use custody::testkit::SampleDevice;

mod common;
use common::{device, env_or, fresh_dir, ingest, mb_per_s, sync};

/// Measurements per method and slot count; the best counts.
const ROUNDS: usize = 3;

/// The copy buffer the ingest pipeline uses per file.
const PIPELINE_BUF: usize = 128 << 10;

/// A reader that hands out its buffer untouched: what remains is the hasher's own cost.
struct Prefilled {
    left: u64,
}

impl Read for Prefilled {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        self.left -= n as u64;
        Ok(n)
    }
}

/// SHA-256 MB/s of the pipeline's hasher, best of three 1 GiB passes.
fn pipeline_sha256() -> f64 {
    let mut buf = vec![0xA5; PIPELINE_BUF];
    (0..3)
        .map(|_| {
            let total = 1u64 << 30;
            let t = Instant::now();
            let (n, _) = custody::hash_reader(Prefilled { left: total }, &mut buf).unwrap();
            assert_eq!(n, total);
            mb_per_s(total, t.elapsed())
        })
        .fold(0.0, f64::max)
}

/// `openssl speed -evp sha256` at the pipeline's block size, in MB/s.
fn openssl_sha256() -> Option<f64> {
    let out = Command::new("openssl")
        .args(["speed", "-evp", "sha256", "-seconds", "3", "-bytes"])
        .arg(PIPELINE_BUF.to_string())
        .output()
        .ok()?;
    // The last line: "sha256   123456.78k" (thousands of bytes per second).
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().rev().find(|l| l.starts_with("sha256"))?;
    let k: f64 = last
        .split_whitespace()
        .last()?
        .trim_end_matches('k')
        .parse()
        .ok()?;
    Some(k * 1000.0 / 1e6)
}

/// `cp -r` of the slots, then `sync`; or `cp -r` then `sha256sum` of the copies.
fn baseline(base: &Path, devices: &[SampleDevice], hash: bool) -> Duration {
    let dir = fresh_dir(base, "baseline");
    let t = Instant::now();
    let mut cp = Command::new("cp");
    cp.arg("-r").args(devices.iter().map(|d| &d.root)).arg(&dir);
    assert!(cp.status().unwrap().success());
    if hash {
        let mut files = Vec::new();
        for d in devices {
            let slot = dir.join(d.root.file_name().unwrap()).join("DCIM/100MEDIA");
            for e in fs::read_dir(slot).unwrap() {
                files.push(e.unwrap().path());
            }
        }
        let out = Command::new("sha256sum").args(&files).output().unwrap();
        assert!(out.status.success());
    }
    sync();
    let took = t.elapsed();
    fs::remove_dir_all(&dir).unwrap();
    took
}

fn main() {
    let slots: Vec<usize> = std::env::var("CUSTODY_BENCH_SLOTS")
        .unwrap_or_else(|_| "1,2,4,8".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("CUSTODY_BENCH_SLOTS: comma-separated counts")
        })
        .collect();
    let clips = env_or("CUSTODY_BENCH_CLIPS", 4usize);
    let mib = env_or("CUSTODY_BENCH_MIB", 512usize);
    let src = PathBuf::from(env_or("CUSTODY_BENCH_SRC", "/dev/shm".to_owned()));
    let base = PathBuf::from(env_or("CUSTODY_BENCH_DIR", "/var/tmp".to_owned()));
    let src = tempfile::tempdir_in(src).unwrap();
    let base = tempfile::tempdir_in(base).unwrap();

    let ours = pipeline_sha256();
    match openssl_sha256() {
        Some(ossl) => println!(
            "sha256 ({} KiB blocks): pipeline {ours:.0} MB/s, openssl {ossl:.0} MB/s, ratio {:.3}",
            PIPELINE_BUF >> 10,
            ours / ossl
        ),
        None => println!("sha256: pipeline {ours:.0} MB/s (openssl speed unavailable)"),
    }

    let max = slots.iter().copied().max().unwrap_or(1);
    eprintln!(
        "making {max} devices x {clips} clips x {mib} MiB in {}",
        src.path().display()
    );
    let devices: Vec<SampleDevice> = (0..max)
        .map(|i| device(src.path(), i, clips, mib))
        .collect();
    println!(
        "{:>5} {:>9} {:>12} {:>12} {:>14} {:>9} {:>11} {:>9}",
        "slots",
        "GiB",
        "ingest MB/s",
        "cp+sync MB/s",
        "cp,sha256sum",
        "vs cp",
        "vs cp,sum",
        "peak RSS"
    );
    for &n in &slots {
        let docked = &devices[..n];
        let bytes = (n * clips * mib) as u64 * (1 << 20);
        // Best of `ROUNDS`. This disk's speed drifts, and a method can leave it busy for
        // the next (the host still flushing): each round starts with another method, and
        // each measurement waits for a synced, settled disk.
        let (mut took, mut rss, mut cp, mut cp_sum) =
            (Duration::MAX, 0, Duration::MAX, Duration::MAX);
        for round in 0..ROUNDS {
            for method in (0..3).map(|m| (m + round) % 3) {
                sync();
                std::thread::sleep(Duration::from_secs(2));
                match method {
                    0 => {
                        let (t, r) = ingest(base.path(), docked, "");
                        (took, rss) = (took.min(t), rss.max(r));
                    }
                    1 => cp = cp.min(baseline(base.path(), docked, false)),
                    _ => cp_sum = cp_sum.min(baseline(base.path(), docked, true)),
                }
            }
        }
        let (ours, cp, cp_sum) = (
            mb_per_s(bytes, took),
            mb_per_s(bytes, cp),
            mb_per_s(bytes, cp_sum),
        );
        println!(
            "{n:>5} {:>9.1} {ours:>12.0} {cp:>12.0} {cp_sum:>14.0} {:>9.2} {:>11.2} {:>6} MiB",
            bytes as f64 / f64::from(1u32 << 30),
            ours / cp,
            ours / cp_sum,
            rss / 1024
        );
    }
}
