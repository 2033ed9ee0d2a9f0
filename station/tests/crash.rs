//! The station binary killed with SIGKILL at random points of ingest, and a cable pulled
//! mid-copy: nothing missing, nothing duplicated, nothing partial visible, the device
//! keeps every clip, and every checkpoint is consistent with the next.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::too_many_lines,
    reason = "a test reports failure by panicking, and tells its story in order"
)]

use std::fs;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use custody::{MediaHash, Receipt, verify_consistency};
use custody_station::{
    EvidenceStore as _, Ledger, LocalStore, ObjectCheck, Station, StationConfig,
};

mod common;
use common::{Docked, station, station_as_clerk};

/// Clips recorded between two docks of the kill test.
const NEW_PER_DOCK: usize = 6;

/// A station (three copies at once) with `serial` docked: `clips` clips of `size` bytes.
fn setup(serial: &str, clips: usize, size: usize) -> Docked {
    common::docked(
        "test.example/station-01",
        "parallel-copies = 3\n",
        serial,
        clips,
        size,
    )
}

fn ingest(s: &Docked) -> Command {
    let mut cmd = station(&s.config, &["ingest", "--slot"]);
    cmd.arg(&s.dev.root);
    cmd
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn killed_at_random_points_fifty_times_the_station_loses_and_duplicates_nothing() {
    let mut s = setup("A100001", 6, 256 << 10);
    let (mut rng, seed) = custody::testkit::SeededRng::from_env("CUSTODY_KILL_SEED");
    let store_root = s.dir.path().join("data/store");
    let mut killed = 0;
    let mut completed = 0;
    let mut clip_no = 6;
    // The kill comes at a random moment within about one run's length (learnt as runs
    // finish), so deaths fall all over the session: reading, copying, committing, signing.
    let mut window_ms = 100u64;
    let mut checked = std::collections::HashSet::new();
    // Kills before any commit of this dock, between commits, after all commits.
    let mut died = [0u32; 3];
    let mut last_size = 0u64;
    // At least 50 kills, and at least 3 in each phase (bounded, in case a phase is too
    // short to hit on this machine: the assertion below then says so).
    let mut docks = 0;
    while (killed < 50 || died.iter().any(|&n| n < 3)) && docks < 400 {
        docks += 1;
        // The officer keeps recording between docks: there is always new work to cut.
        for _ in 0..NEW_PER_DOCK {
            clip_no += 1;
            let rel = format!("DCIM/100MEDIA/A100001_{clip_no:04}.MP4");
            let fill = u8::try_from(clip_no % 251).unwrap();
            fs::write(s.dev.root.join(&rel), vec![fill; (1 << 20) + clip_no]).unwrap();
            s.dev.seal_clip(&rel).unwrap();
        }
        let mut child = ingest(&s)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let kill_at = Duration::from_millis(rng.below(window_ms.max(2) * 5 / 4));
        loop {
            if child.try_wait().unwrap().is_some() {
                completed += 1;
                let took = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                window_ms = u64::midpoint(window_ms, took);
                break;
            }
            if started.elapsed() >= kill_at {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                killed += 1;
                // Where did it die? Count by how much of this dock's work was committed.
                let ledger = Ledger::open(&s.dir.path().join("data/ledger.sqlite")).unwrap();
                let size = ledger.log_size().unwrap();
                let records = s.dev.records().count() as u64;
                let class = if size == records {
                    2
                } else {
                    usize::from(size > last_size)
                };
                died[class] += 1;
                // Learn where the commits are: later after an early death, earlier after
                // a late one.
                match class {
                    0 => window_ms += window_ms / 4 + 1,
                    2 => window_ms -= window_ms / 8,
                    _ => {}
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        child.wait().unwrap();
        last_size = Ledger::open(&s.dir.path().join("data/ledger.sqlite"))
            .unwrap()
            .log_size()
            .unwrap();
        // Whatever the point of death: every object in the store is complete and intact.
        let store = LocalStore::open(&store_root, 0, false).unwrap();
        let mut buf = vec![0; 1 << 16];
        for hash in store.list().unwrap() {
            if checked.insert(hash) {
                assert!(
                    matches!(
                        store.verify(&hash, &mut buf).unwrap(),
                        ObjectCheck::Intact { .. }
                    ),
                    "partial object {hash} visible (seed {seed})"
                );
            }
        }
    }
    eprintln!(
        "{killed} kills ({} before this dock's first commit, {} between commits, {} after the last), \
         {completed} runs finished first; window {window_ms} ms",
        died[0], died[1], died[2]
    );
    assert!(
        died.iter().all(|&n| n > 0),
        "kills should land in every phase: {died:?}"
    );

    // A last uninterrupted dock finishes the work.
    let out = ingest(&s).output().unwrap();
    assert!(out.status.code().is_some_and(|c| c <= 1), "{}", text(&out));
    let cfg = StationConfig::load(&s.config).unwrap();
    let station = Station::open(cfg).unwrap();
    let ledger: &Ledger = &station.ledger();
    let records: u64 = s.dev.records().count() as u64;
    assert_eq!(
        ledger.log_size().unwrap(),
        records,
        "each record once (seed {seed})"
    );
    assert_eq!(ledger.anchor("A100001").unwrap().unwrap().seq, records);
    let store = LocalStore::open(&store_root, 0, false).unwrap();
    let mut want: Vec<MediaHash> = s
        .dev
        .records()
        .map(|r| r.body().media().unwrap().sha256)
        .collect();
    want.sort();
    assert_eq!(
        store.list().unwrap(),
        want,
        "each clip once, none missing (seed {seed})"
    );
    assert_eq!(store.partial_count().unwrap(), 0);
    // The device still holds every clip (nothing is deleted from a device by the station).
    for rec in s.dev.records() {
        assert!(s.dev.root.join(&rec.body().media().unwrap().file).is_file());
    }
    // Every receipt on the device verifies, and together they cover every record.
    let inbox = custody::layout::inbox_dir(&s.dev.root, "A100001");
    let mut covered = std::collections::BTreeSet::new();
    for entry in fs::read_dir(&inbox).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let receipt = Receipt::open(
                &fs::read(&path).unwrap(),
                &fs::read(path.with_extension("sig")).unwrap(),
                station.verifier(),
                "A100001",
                &s.dev.public_key().key_id(),
            )
            .unwrap();
            for rec in s.dev.records() {
                if receipt.covers(rec.body().seq, rec.bytes()).is_ok() {
                    covered.insert(rec.body().seq);
                }
            }
        }
    }
    assert_eq!(covered.len() as u64, records, "seed {seed}");
    // Each signed checkpoint is consistent with the next.
    let mut sizes: Vec<u64> = ledger
        .checkpoints()
        .unwrap()
        .into_iter()
        .map(|c| c.size)
        .collect();
    sizes.retain(|&n| n > 0);
    for pair in sizes.windows(2) {
        let (a, b) = (
            ledger.checkpoint_at(pair[0]).unwrap().unwrap(),
            ledger.checkpoint_at(pair[1]).unwrap().unwrap(),
        );
        let proof = ledger.consistency_proof(a.size, b.size).unwrap();
        verify_consistency(a.size, b.size, &proof, &a.root, &b.root).unwrap();
    }
}

#[test]
fn a_cable_pulled_mid_copy_commits_nothing_half_and_the_next_dock_completes() {
    let s = setup("A100002", 3, 300_000);
    let out = ingest(&s)
        .env("CUSTODY_STATION_FAULT", "unplug-after:100000")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("cable pulled"), "{}", text(&out));
    let store_root = s.dir.path().join("data/store");
    let store = LocalStore::open(&store_root, 0, false).unwrap();
    assert!(store.list().unwrap().is_empty(), "no partial object");
    let ledger = Ledger::open(&s.dir.path().join("data/ledger.sqlite")).unwrap();
    assert_eq!(ledger.log_size().unwrap(), 0, "nothing committed");
    drop(ledger);

    let out = ingest(&s).output().unwrap();
    assert!(out.status.code().is_some_and(|c| c <= 1), "{}", text(&out));
    assert_eq!(
        LocalStore::open(&store_root, 0, false)
            .unwrap()
            .list()
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn the_cli_reports_in_chinese_and_json_with_exit_codes() {
    // Clips recorded three days ago by the clock the station runs on: stored late, a
    // finding, exit 1.
    let s = common::docked_recorded(
        "test.example/station-01",
        "parallel-copies = 3\n",
        "A100003",
        (2, 1000),
        chrono::Utc::now() - chrono::Duration::days(3),
    );
    let out = ingest(&s).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("deadline.late"), "{}", text(&out));
    assert!(text(&out).contains("回执已写入设备"), "{}", text(&out));
    let out = station_as_clerk(&s.config, &["report", "--device", "A100003", "--json"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["totals"]["verified"], 2);
    let out = station(&s.config, &["overdue"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("超期存储"), "{}", text(&out));
    let out = station(&s.config, &["status"]).output().unwrap();
    assert!(out.status.success());
    let out = station(&s.config, &["ingest", "--slot", "/nonexistent/slot"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = station(&s.config, &["ingest", "--delay-reason", "nope", "--slot"])
        .arg(&s.dev.root)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("unknown delay reason"),
        "{}",
        text(&out)
    );
}

#[test]
fn the_verifier_key_prints_for_agents_and_a_reader_that_stops_early_is_no_error() {
    let s = setup("A100004", 1, 10);
    let out = station(&s.config, &["key"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let vkey = stdout.lines().next().unwrap();
    assert!(vkey.starts_with("test.example/station-01+"), "{vkey}");
    custody::NoteVerifier::parse(vkey).unwrap();
    assert!(stdout.contains("BEGIN PUBLIC KEY"), "{stdout}");
    // `custody-station key | head -n 1`: the pipe closes before the station writes. So
    // for every command that prints, in tables and in JSON.
    for args in [
        &["key"][..],
        &["fleet"],
        &["--json", "fleet"],
        &["overdue"],
        &["report"],
        &["--json", "report"],
        &["status"],
    ] {
        let mut cmd = if args.contains(&"report") {
            station_as_clerk(&s.config, args)
        } else {
            station(&s.config, args)
        };
        let out = custody::testkit::run_with_closed_stdout(&mut cmd).unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        assert!(!text(&out).contains("panicked"), "{}", text(&out));
    }
}
