//! Disc benchmark, with its baseline measured in the same run: building and verifying the
//! disc image of a case of several GB (`disc build` then `disc verify` of the image: MD5
//! tags, extraction, every file's SHA-256, signatures, proofs, ledger) against the bare
//! tools on the same files: `xorriso -as mkisofs` (level 3, Joliet long names, Rock Ridge,
//! MD5 tags) of the store's objects, then extracting the image and `sha256sum -c`. Reports
//! MB/s of each, the ratio, and the station's peak RSS (xorriso runs as a child process in
//! both).
//!
//! `cargo bench -p custody-station --bench disc`. Environment: `CUSTODY_BENCH_CLIPS`
//! (default 6), `CUSTODY_BENCH_MIB` (clip size, default 512), `CUSTODY_BENCH_DIR` (where
//! the device, the station and the images go, default /var/tmp: a disk).
#![expect(clippy::unwrap_used, reason = "a benchmark stops on a broken setup")]
#![expect(clippy::cast_precision_loss, reason = "MB/s for a report")]

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use custody::{BindingFact, Fact, Role};
use custody_station::{Actor, Credential, DockOptions, LocalStore, Medium, NewPerson, Station};

#[expect(
    dead_code,
    reason = "the ingest helper: this benchmark keeps its station after ingest"
)]
mod common;
use common::{device, env_or, fresh_dir, mb_per_s, peak_rss_kib, sync};

/// Measurements per method; the best counts.
const ROUNDS: usize = 2;
const CASE: &str = "襄环罚〔2019〕75号";

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {out:?}");
}

/// The bare tools: the image of the same objects under the same names, then extracting
/// it and checking every file with `sha256sum -c`.
fn bare(base: &Path, objects: &[(PathBuf, String, String)]) -> Duration {
    let dir = fresh_dir(base, "bare");
    let image = dir.join("bare.iso");
    let mut sums = String::new();
    for (_, name, hash) in objects {
        let _ = writeln!(sums, "{hash}  {name}");
    }
    let t = Instant::now();
    let mut mkisofs = Command::new("xorriso");
    mkisofs
        .args([
            "-as",
            "mkisofs",
            "-iso-level",
            "3",
            "-J",
            "-joliet-long",
            "-R",
            "--md5",
        ])
        .args(["-graft-points", "-o"])
        .arg(&image);
    for (path, name, _) in objects {
        mkisofs.arg(format!("{name}={}", path.display()));
    }
    run(&mut mkisofs);
    let extracted = dir.join("x");
    run(Command::new("xorriso")
        .args(["-osirrox", "on", "-indev"])
        .arg(&image)
        .args(["-extract", "/"])
        .arg(&extracted));
    fs::write(extracted.join("SUMS"), &sums).unwrap();
    run(Command::new("sha256sum")
        .args(["-c", "--quiet", "SUMS"])
        .current_dir(&extracted));
    let took = t.elapsed();
    fs::remove_dir_all(&dir).unwrap();
    took
}

/// `disc build` then `disc verify` of the image, as the station does them.
fn ours(station: &Station, clerk: &Actor, base: &Path) -> (Duration, u64) {
    let out = fresh_dir(base, "discs");
    let _ = fs::write("/proc/self/clear_refs", "5");
    let t = Instant::now();
    let discs = station
        .build_discs(clerk, CASE, Medium::Bd25, None, &out)
        .unwrap();
    for d in &discs {
        let check = station.verify_disc(d.image.to_str().unwrap()).unwrap();
        assert!(check.is_intact(), "{:?}", check.problems);
    }
    let took = t.elapsed();
    let rss = peak_rss_kib();
    fs::remove_dir_all(&out).unwrap();
    (took, rss)
}

fn main() {
    let clips: usize = env_or("CUSTODY_BENCH_CLIPS", 6);
    let mib: usize = env_or("CUSTODY_BENCH_MIB", 512);
    let base = PathBuf::from(env_or("CUSTODY_BENCH_DIR", "/var/tmp".to_owned()));
    let base = tempfile::tempdir_in(base).unwrap();
    eprintln!("making a device of {clips} clips x {mib} MiB bound to {CASE}");
    let mut dev = device(base.path(), 0, clips, mib);
    let records: Vec<_> = dev.records().cloned().collect();
    for (i, rec) in records.iter().enumerate() {
        dev.add_fact(Fact::Binding(BindingFact {
            subject: rec.hash(),
            case_number: CASE.into(),
            number: format!("{CASE}-视-{:03}", i + 1),
        }))
        .unwrap();
    }
    let dir = fresh_dir(base.path(), "station");
    let numbering = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/numbering.example.toml");
    let station = common::station(
        &dir,
        std::slice::from_ref(&dev),
        &format!("numbering = \"{}\"\n", numbering.display()),
    );
    station
        .ingest_slot(&dev.root, &DockOptions::default())
        .unwrap();
    fs::remove_dir_all(&dev.root).unwrap();
    let store = LocalStore::open(&station.store_root(), 0, false).unwrap();
    let new = NewPerson {
        login: "clerk",
        name: "内勤",
        department: "法制大队",
        badge: None,
        roles: &[Role::Clerk],
    };
    station.add_person(&new, "bench-password").unwrap();
    let clerk = station
        .login("clerk", Credential::Password("bench-password"), None)
        .unwrap();
    let view = station.case_view(&clerk, CASE).unwrap();
    let objects: Vec<(PathBuf, String, String)> = view
        .clips
        .iter()
        .map(|c| {
            let hash = c.signed_sha256.parse().unwrap();
            (
                store.object_path(&hash),
                format!("clips/{}.MP4", c.number),
                c.signed_sha256.clone(),
            )
        })
        .collect();
    let bytes = (clips * mib) as u64 * (1 << 20);
    let (mut took, mut rss, mut bare_took) = (Duration::MAX, 0, Duration::MAX);
    for round in 0..ROUNDS {
        for method in (0..2).map(|m| (m + round) % 2) {
            sync();
            std::thread::sleep(Duration::from_secs(2));
            if method == 0 {
                let (t, r) = ours(&station, &clerk, base.path());
                (took, rss) = (took.min(t), rss.max(r));
            } else {
                bare_took = bare_took.min(bare(base.path(), &objects));
            }
        }
    }
    let (station_rate, bare_rate) = (mb_per_s(bytes, took), mb_per_s(bytes, bare_took));
    println!(
        "disc of {:.1} GiB ({clips} clips): build+verify {station_rate:.0} MB/s, bare xorriso+extract+sha256sum {bare_rate:.0} MB/s, ratio {:.2}, station peak RSS {} MiB",
        bytes as f64 / f64::from(1u32 << 30),
        station_rate / bare_rate,
        rss / 1024
    );
}
