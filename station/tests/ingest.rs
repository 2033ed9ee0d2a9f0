//! Dock sessions against devices made by the core's record builder: clean, tampered,
//! hostile, unenrolled, across docks, late, store full; receipts checked as an agent does.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::too_many_lines,
    reason = "a test reports failure by panicking, and tells its story in order"
)]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use custody::FixedClock;
use custody::testkit::{RECIPES, SampleDevice, sample_day};
use custody::{KeyId, Receipt, SigningKey, code, layout};
use custody_station::{
    ClipStatus, DockOptions, EvidenceStore as _, IngestError, LocalStore, Report, ReportQuery,
    SessionEnd, SessionOutcome, Station, StationConfig, StoreError,
};

struct TestStation {
    dir: tempfile::TempDir,
    station: Station,
    /// The station's clock: on the sample clips' day, 18:00 Beijing, unless a test moves it.
    clock: Arc<FixedClock>,
}

fn config(dir: &Path, reserve: u64) -> StationConfig {
    let text = format!(
        "dock-root = \"dock\"\ndata-dir = \"data\"\norigin = \"test.example/station-01\"\n\
         parallel-copies = 3\nreserve-bytes = {reserve}\n\
         [deadline]\n[deadline.reasons]\nremote = \"偏远地区\"\n"
    );
    StationConfig::parse(&text, &dir.join("station.toml")).unwrap()
}

impl TestStation {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(FixedClock::at(sample_day(18)));
        let station = Station::open_with_clock(config(dir.path(), 0), clock.clone()).unwrap();
        Self {
            dir,
            station,
            clock,
        }
    }

    fn reopen(self, reserve: u64) -> Self {
        let (dir, clock) = (self.dir, self.clock);
        drop(self.station);
        let station = Station::open_with_clock(config(dir.path(), reserve), clock.clone()).unwrap();
        Self {
            dir,
            station,
            clock,
        }
    }

    /// A device with `n` clips of `size` bytes in a slot folder, enrolled.
    fn device(&self, serial: &str, n: usize, size: usize) -> SampleDevice {
        let dev = self.unenrolled_device(serial, n, size);
        self.enroll(&dev);
        dev
    }

    fn unenrolled_device(&self, serial: &str, n: usize, size: usize) -> SampleDevice {
        let slot = self.dir.path().join("dock").join(format!("slot-{serial}"));
        SampleDevice::with_generated_clips(&slot, serial, n, size).unwrap()
    }

    fn enroll(&self, dev: &SampleDevice) {
        let pem = self.dir.path().join(format!("{}.pem", dev.serial));
        fs::write(&pem, dev.public_key().to_pem()).unwrap();
        self.station
            .enroll(
                &dev.serial,
                "ga947-recorder",
                &pem,
                &[("42060119001".into(), "张三".into())],
            )
            .unwrap();
    }

    fn dock(&self, dev: &SampleDevice) -> SessionOutcome {
        self.station
            .ingest_slot(&dev.root, &DockOptions::default())
            .unwrap()
    }

    fn store(&self) -> LocalStore {
        LocalStore::open(&self.station.store_root(), 0, false).unwrap()
    }

    fn report(&self, query: &ReportQuery) -> Report {
        let cfg = self.station.config();
        Report::build(
            &self.station.ledger(),
            &cfg.origin,
            query,
            cfg.utc_offset,
            self.station.now(),
        )
        .unwrap()
    }
}

fn codes(outcome: &SessionOutcome) -> BTreeSet<&'static str> {
    outcome
        .findings
        .iter()
        .map(|f| f.code)
        .filter(|c| *c != code::STORED_LATE)
        .collect()
}

/// Opens the receipt in the device's inbox as the agent does, and returns the seqs whose
/// records it proves (the clips the device may free).
fn receipted_seqs(ts: &TestStation, dev: &SampleDevice, receipt: &str) -> Vec<u64> {
    let path = dev.root.join(receipt);
    let bytes = fs::read(&path).unwrap();
    let sig = fs::read(path.with_extension("sig")).unwrap();
    let opened = Receipt::open(
        &bytes,
        &sig,
        ts.station.verifier(),
        &dev.serial,
        &dev.public_key().key_id(),
    )
    .unwrap();
    dev.records()
        .filter(|r| opened.covers(r.body().seq, r.bytes()).is_ok())
        .map(|r| r.body().seq)
        .collect()
}

#[test]
fn a_clean_device_is_stored_logged_checkpointed_and_receipted() {
    let ts = TestStation::start();
    let dev = ts.device("A100001", 5, 200_000);
    let out = ts.dock(&dev);
    assert_eq!(codes(&out), BTreeSet::new(), "{:#?}", out.findings);
    assert_eq!((out.records, out.clips_verified), (5, 5));
    assert_eq!(out.bytes, 5 * 200_000);
    assert_eq!(out.checkpoint_size, Some(5));
    let store = ts.store();
    let stored = store.list().unwrap();
    let signed: Vec<_> = {
        let mut v: Vec<_> = dev
            .records()
            .map(|r| r.body().media().unwrap().sha256)
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        stored, signed,
        "each clip stored once, under its signed hash"
    );
    assert_eq!(store.partial_count().unwrap(), 0);
    let receipt = out.receipt.expect("a receipt on the device");
    assert_eq!(receipted_seqs(&ts, &dev, &receipt), vec![1, 2, 3, 4, 5]);

    // Docking again changes nothing: no duplicate record, object or receipt.
    let again = ts.dock(&dev);
    assert_eq!((again.records, again.unattested, again.bytes), (0, 0, 0));
    assert_eq!(again.receipt, None);
    assert_eq!(ts.store().list().unwrap().len(), 5);
    assert_eq!(ts.station.ledger().log_size().unwrap(), 5);
}

/// A device that also carries a copy of a record's exact bytes beside a garbage `.sig`:
/// the ledger keeps the signature the record was verified with, and the real `openssl`
/// verifies it (a disc or an export ships what the ledger holds).
#[test]
fn the_ledger_keeps_the_signature_a_record_was_verified_with() {
    let ts = TestStation::start();
    let mut dev = ts.device("A100009", 3, 10_000);
    dev.tamper("copy-bad-sig:seq-2").unwrap();
    let out = ts.dock(&dev);
    assert_eq!(codes(&out), BTreeSet::from([code::SIGNATURE_INVALID]));
    assert_eq!((out.records, out.clips_verified), (3, 3));
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("device.pub.pem");
    fs::write(&pem, dev.public_key().to_pem()).unwrap();
    for want in dev.records() {
        let held = ts.station.ledger().record(&want.hash()).unwrap().unwrap();
        assert_eq!(held.bytes(), want.bytes());
        let (r, s) = (dir.path().join("R.json"), dir.path().join("R.sig"));
        fs::write(&r, held.bytes()).unwrap();
        fs::write(&s, held.signature().0).unwrap();
        let out = std::process::Command::new("openssl")
            .args(["pkeyutl", "-verify", "-pubin", "-inkey"])
            .arg(&pem)
            .args(["-rawin", "-in"])
            .arg(&r)
            .arg("-sigfile")
            .arg(&s)
            .output()
            .expect("openssl is installed by scripts/setup");
        assert!(
            out.status.success(),
            "seq {}: {}",
            want.body().seq,
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn a_receipt_for_another_device_or_with_a_bad_signature_is_refused() {
    let ts = TestStation::start();
    let dev = ts.device("A100001", 2, 1000);
    let receipt = ts.dock(&dev).receipt.unwrap();
    let path = dev.root.join(receipt);
    let bytes = fs::read(&path).unwrap();
    let sig = fs::read(path.with_extension("sig")).unwrap();
    let key_id = dev.public_key().key_id();
    let verifier = ts.station.verifier();
    assert!(Receipt::open(&bytes, &sig, verifier, "B999999", &key_id).is_err());
    assert!(Receipt::open(&bytes, &sig, verifier, &dev.serial, &KeyId("other".into())).is_err());
    let mut flipped = sig.clone();
    flipped[0] ^= 1;
    assert!(Receipt::open(&bytes, &flipped, verifier, &dev.serial, &key_id).is_err());
    let stranger =
        custody::NoteSigner::new("test.example/station-01", SigningKey::generate().unwrap().0)
            .unwrap();
    assert!(Receipt::open(&bytes, &sig, stranger.verifier(), &dev.serial, &key_id).is_err());
}

#[test]
fn every_tampering_recipe_is_flagged_and_nothing_is_dropped() {
    for (recipe, want) in RECIPES {
        let recipe = recipe.replace('N', "2");
        let ts = TestStation::start();
        let mut dev = ts.device("A100001", 4, 3000);
        dev.tamper(&recipe).unwrap();
        let out = ts.dock(&dev);
        let got = codes(&out);
        for code in *want {
            assert!(got.contains(code), "{recipe}: want {code}, got {got:?}");
        }
        // Every regular media file on the device is in the store, as read: a verified
        // clip, a flagged one, or unattested. Nothing is dropped.
        let store = ts.store();
        for (file, regular) in custody::media_entries(&dev.root).unwrap() {
            if regular {
                let bytes = fs::read(dev.root.join(&file)).unwrap();
                let hash = custody::MediaHash::of(&bytes);
                assert!(store.exists(&hash).unwrap(), "{recipe}: {file} not stored");
            }
        }
        let report = ts.report(&ReportQuery::default());
        assert!(!report.is_clean(), "{recipe}");
        // The ledger's counts agree with the clips' own statuses, one by one.
        let count = |s: ClipStatus| report.clips.iter().filter(|c| c.status == s).count();
        assert_eq!(
            (
                report.totals.clips,
                report.totals.verified,
                report.totals.mismatched,
                report.totals.missing
            ),
            (
                report.clips.len(),
                count(ClipStatus::Verified),
                count(ClipStatus::Mismatch),
                count(ClipStatus::Missing)
            ),
            "{recipe}"
        );
    }
}

#[test]
fn a_flipped_byte_is_kept_flagged_and_not_receipted() {
    let ts = TestStation::start();
    let mut dev = ts.device("A100001", 3, 5000);
    dev.tamper("flip-byte:clip-2").unwrap();
    let out = ts.dock(&dev);
    assert_eq!(codes(&out), BTreeSet::from([code::MEDIA_HASH_MISMATCH]));
    assert_eq!(
        ts.store().list().unwrap().len(),
        3,
        "the altered clip is kept as read"
    );
    let receipt = out.receipt.unwrap();
    assert_eq!(
        receipted_seqs(&ts, &dev, &receipt),
        vec![1, 3],
        "the device keeps the flagged clip"
    );
    let report = ts.report(&ReportQuery::default());
    assert_eq!((report.totals.verified, report.totals.mismatched), (2, 1));
    let html = report.to_html();
    assert!(html.contains("哈希不一致") && html.contains(code::MEDIA_HASH_MISMATCH));
}

#[test]
fn the_chain_continues_across_docks_and_checkpoints_stay_consistent() {
    let ts = TestStation::start();
    let mut dev = ts.device("A100001", 2, 1000);
    let first = ts.dock(&dev);
    assert_eq!(first.checkpoint_size, Some(2));
    let before = ts.station.ledger().latest_checkpoint().unwrap().unwrap();
    for i in 3..=4 {
        let rel = format!("DCIM/100MEDIA/A100001_{i:04}.MP4");
        fs::write(dev.root.join(&rel), vec![u8::try_from(i).unwrap(); 777]).unwrap();
        dev.seal_clip(&rel).unwrap();
    }
    let second = ts.dock(&dev);
    assert_eq!(codes(&second), BTreeSet::new(), "{:#?}", second.findings);
    assert_eq!(second.records, 2, "only the new records");
    let after = ts.station.ledger().latest_checkpoint().unwrap().unwrap();
    let proof = ts
        .station
        .ledger()
        .consistency_proof(before.size, after.size)
        .unwrap();
    custody::verify_consistency(before.size, after.size, &proof, &before.root, &after.root)
        .unwrap();
    assert_eq!(
        receipted_seqs(&ts, &dev, &second.receipt.unwrap()),
        vec![3, 4],
        "a receipt covers what the last one did not"
    );
}

#[test]
fn a_record_deleted_after_the_last_dock_leaves_a_gap_from_the_anchor() {
    let ts = TestStation::start();
    let mut dev = ts.device("A100001", 2, 1000);
    ts.dock(&dev);
    for i in 3..=5 {
        let rel = format!("DCIM/100MEDIA/A100001_{i:04}.MP4");
        fs::write(dev.root.join(&rel), vec![7u8; 100 + i]).unwrap();
        dev.seal_clip(&rel).unwrap();
    }
    dev.tamper("drop:seq-3").unwrap();
    let out = ts.dock(&dev);
    assert!(codes(&out).contains(code::CHAIN_GAP), "{:#?}", out.findings);
}

#[test]
fn unenrolled_and_impostor_devices_are_quarantined_not_mixed_with_evidence() {
    let ts = TestStation::start();
    let stranger = ts.unenrolled_device("B200001", 2, 1000);
    let out = ts.dock(&stranger);
    assert_eq!(out.outcome, SessionEnd::Quarantined);
    assert_eq!(codes(&out), BTreeSet::from([code::DEVICE_UNENROLLED]));
    assert!(ts.store().list().unwrap().is_empty());

    // A device claiming an enrolled serial with its own key.
    let real = ts.device("A100001", 1, 1000);
    let impostor_slot = ts.dir.path().join("dock/slot-fake");
    let impostor = SampleDevice::with_generated_clips(&impostor_slot, "A100001", 2, 500).unwrap();
    let out = ts.dock(&impostor);
    assert_eq!(out.outcome, SessionEnd::Quarantined);
    assert_eq!(codes(&out), BTreeSet::from([code::DEVICE_KEY_UNTRUSTED]));
    assert!(ts.store().list().unwrap().is_empty());
    let q = ts.report(&ReportQuery::default()).quarantine;
    assert_eq!(q.len(), 2);
    let kept = PathBuf::from(&q[1].folder);
    assert!(
        kept.join("DCIM/100MEDIA/A100001_0001.MP4").is_file(),
        "files are kept"
    );
    assert!(kept.join("QUARANTINE.json").is_file());
    // The real device still docks normally.
    assert_eq!(ts.dock(&real).clips_verified, 1);
}

#[test]
fn hostile_content_is_flagged_and_never_followed() {
    let ts = TestStation::start();
    let dev = ts.device("A100001", 2, 1000);
    let records = layout::device_dir(&dev.root, "A100001").join("records");
    // A huge record (over the 64 KiB limit) with a plausible name.
    fs::write(records.join("00000003.json"), vec![b' '; 70 * 1024]).unwrap();
    // A symlink posing as a clip, pointing outside the device.
    std::os::unix::fs::symlink("/etc/passwd", dev.root.join("DCIM/100MEDIA/EVIL.MP4")).unwrap();
    // A file that no record covers (a crashed agent, or the vendor firmware alone).
    fs::write(dev.root.join("DCIM/100MEDIA/ORPHAN.MP4"), b"orphan clip").unwrap();
    let out = ts.dock(&dev);
    let got = codes(&out);
    assert!(got.contains(code::RECORD_MALFORMED), "{got:?}");
    assert!(got.contains(code::MEDIA_UNRECORDED), "{got:?}");
    assert_eq!(out.clips_verified, 2);
    assert_eq!(out.unattested, 1);
    let store = ts.store();
    assert!(
        store
            .exists(&custody::MediaHash::of(b"orphan clip"))
            .unwrap()
    );
    let passwd = fs::read("/etc/passwd").unwrap();
    assert!(
        !store.exists(&custody::MediaHash::of(&passwd)).unwrap(),
        "symlink not followed"
    );
    let report = ts.report(&ReportQuery::default());
    assert_eq!(report.totals.unattested, 1);
}

#[test]
fn a_record_from_the_future_is_flagged_and_a_path_out_of_the_device_is_never_read() {
    let ts = TestStation::start();
    let mut dev = ts.device("A100001", 1, 1000);
    // A clip dated tomorrow (a device clock far ahead, or a made-up record).
    fs::write(dev.root.join("DCIM/100MEDIA/A100001_0002.MP4"), b"tomorrow").unwrap();
    let tomorrow = ts.station.now().fixed_offset() + chrono::Duration::days(1);
    dev.seal_clip_edited("DCIM/100MEDIA/A100001_0002.MP4", |body| {
        body.created = tomorrow;
        if let custody::Fact::Clip(clip) = &mut body.fact {
            clip.time.start = tomorrow;
            clip.time.end = tomorrow;
        }
    })
    .unwrap();
    // A record whose media path climbs out of the device to a file beside it (the agent
    // cannot seal such a path: this one is hand-made from record 1).
    let outside = dev.root.parent().unwrap().join("outside.MP4");
    fs::write(&outside, b"not the device's").unwrap();
    let records = layout::device_dir(&dev.root, "A100001").join("records");
    let first = fs::read_to_string(records.join("00000001.json")).unwrap();
    let climbing = first.replace("DCIM/100MEDIA/A100001_0001.MP4", "../../outside.MP4");
    assert_ne!(first, climbing);
    fs::write(records.join("00000003.json"), climbing).unwrap();
    fs::copy(records.join("00000001.sig"), records.join("00000003.sig")).unwrap();
    let out = ts.dock(&dev);
    let got = codes(&out);
    assert!(got.contains(code::RECORD_FROM_FUTURE), "{got:?}");
    assert!(got.contains(code::RECORD_MALFORMED), "{got:?}");
    // The future clip is kept (flagged); the file outside the device never enters the store.
    assert_eq!(out.clips_verified, 2, "{:?}", out.findings);
    let store = ts.store();
    assert!(store.exists(&custody::MediaHash::of(b"tomorrow")).unwrap());
    assert!(
        !store
            .exists(&custody::MediaHash::of(b"not the device's"))
            .unwrap()
    );
}

#[test]
fn a_clip_missing_at_one_dock_is_stored_when_its_file_comes_back() {
    let ts = TestStation::start();
    let dev = ts.device("A100001", 2, 1000);
    let clip2 = dev.root.join("DCIM/100MEDIA/A100001_0002.MP4");
    let away = dev.root.parent().unwrap().join("away.MP4");
    fs::rename(&clip2, &away).unwrap();
    let out = ts.dock(&dev);
    assert!(
        codes(&out).contains(code::MEDIA_MISSING),
        "{:?}",
        out.findings
    );
    fs::rename(&away, &clip2).unwrap();
    let bytes = fs::read(&clip2).unwrap();
    let again = ts.dock(&dev);
    assert_eq!(again.unattested, 1, "{:?}", again.findings);
    assert!(ts.store().exists(&custody::MediaHash::of(&bytes)).unwrap());
    // Clip 1, stored the first time, is not taken twice.
    assert_eq!(again.clips_verified, 0);
}

#[test]
fn clips_from_days_ago_are_late_unless_a_lawful_delay_was_declared() {
    // Sample clips were recorded on 2026-11-20 (Beijing). Docked that evening, on time.
    let ts = TestStation::start();
    let dev = ts.device("A100001", 2, 1000);
    let out = ts.dock(&dev);
    assert_eq!(out.late, 0, "{:#?}", out.findings);
    // Docked three days later, they are late.
    let ts = TestStation::start();
    ts.clock.set(sample_day(3 * 24 + 10));
    let dev = ts.device("A100003", 2, 1000);
    let out = ts.dock(&dev);
    assert_eq!(out.late, 2);
    assert!(out.findings.iter().any(|f| f.code == code::STORED_LATE));

    // Three days later with a lawful delay, within 24 hours of returning: not late.
    let ts = TestStation::start();
    ts.clock.set(sample_day(3 * 24 + 10));
    let dev = ts.device("A100002", 2, 1000);
    let opts = DockOptions {
        delay_reason: Some("remote".into()),
        returned: Some(sample_day(3 * 24 + 8)),
    };
    let out = ts.station.ingest_slot(&dev.root, &opts).unwrap();
    assert_eq!(out.late, 0, "{:#?}", out.findings);
    let report = ts.report(&ReportQuery::default());
    assert!(
        report
            .clips
            .iter()
            .all(|c| c.delay_reason.as_deref() == Some("remote"))
    );
}

#[test]
fn a_full_store_stops_cleanly_and_the_next_dock_resumes() {
    let ts = TestStation::start();
    let dev = ts.device("A100001", 3, 10_000);
    let ts = ts.reopen(u64::MAX / 2);
    let err = ts
        .station
        .ingest_slot(&dev.root, &DockOptions::default())
        .unwrap_err();
    assert!(
        matches!(err, IngestError::Store(StoreError::Full { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("full"), "{err}");
    assert_eq!(
        ts.station.ledger().log_size().unwrap(),
        0,
        "nothing committed"
    );
    assert!(ts.store().list().unwrap().is_empty());
    assert_eq!(ts.store().partial_count().unwrap(), 0);
    assert!(
        !layout::inbox_dir(&dev.root, &dev.serial).exists(),
        "no receipt"
    );

    let ts = ts.reopen(0);
    let out = ts.dock(&dev);
    assert_eq!(out.clips_verified, 3);
}

#[test]
fn reports_filter_by_device_and_are_written_as_json_and_html() {
    let ts = TestStation::start();
    let dev = ts.device("A100001", 3, 1000);
    ts.dock(&dev);
    let report = ts.report(&ReportQuery {
        device: Some("A100001".into()),
        ..ReportQuery::default()
    });
    assert_eq!(report.totals.clips, 3);
    let none = ts.report(&ReportQuery {
        device: Some("B000000".into()),
        ..ReportQuery::default()
    });
    assert_eq!(none.totals.clips, 0);
    // A page of the report lists its clips in the same order, with the totals of all.
    let cfg = ts.station.config();
    let page = |index| {
        Report::page(
            &ts.station.ledger(),
            &cfg.origin,
            &ReportQuery::default(),
            (cfg.utc_offset, ts.station.now()),
            (index, 2),
        )
        .unwrap()
    };
    let (first, second, beyond) = (page(0), page(1), page(9));
    let numbers = |r: &Report| r.clips.iter().map(|c| c.number.clone()).collect::<Vec<_>>();
    assert_eq!(
        [numbers(&first), numbers(&second)].concat(),
        numbers(&report)
    );
    assert_eq!(first.totals.clips, 3);
    assert_eq!(second.page.map(|p| (p.index, p.pages)), Some((1, 2)));
    assert_eq!(
        numbers(&beyond),
        numbers(&second),
        "past the end: the last page"
    );
    let path = report.write(&ts.dir.path().join("out"), "r").unwrap();
    let html = fs::read_to_string(&path).unwrap();
    assert!(html.contains("证据完整性报告") && html.contains("A100001"));
    let json: serde_json::Value =
        serde_json::from_slice(&fs::read(ts.dir.path().join("out/r.json")).unwrap()).unwrap();
    assert_eq!(json["totals"]["clips"], 3);
}

#[test]
fn one_device_docked_and_uploading_at_once_is_ingested_by_one_session_at_a_time() {
    let ts = TestStation::start();
    let dev = ts.device("A100001", 6, 300_000);
    // The same device seen twice at once: its dock slot, and what it uploaded over the
    // network (a terminal on a docking cradle with Wi-Fi).
    let uploaded = ts.dir.path().join("uploads-A100001");
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(&dev.root)
        .arg(&uploaded)
        .status()
        .unwrap();
    assert!(copied.success());
    let outcomes: Vec<SessionOutcome> = std::thread::scope(|s| {
        let sessions: Vec<_> = [&dev.root, &uploaded]
            .into_iter()
            .map(|dir| s.spawn(|| ts.station.ingest_slot(dir, &DockOptions::default())))
            .collect();
        sessions
            .into_iter()
            .map(|h| h.join().unwrap().expect("both sessions complete"))
            .collect()
    });
    assert_eq!(
        outcomes.iter().map(|o| o.records).sum::<usize>(),
        6,
        "each record committed once: {outcomes:?}"
    );
    assert!(outcomes.iter().all(|o| o.outcome == SessionEnd::Complete));
    assert_eq!(ts.station.ledger().log_size().unwrap(), 6);
}

#[test]
fn an_audit_finds_a_local_object_changed_or_removed_behind_the_station() {
    let ts = TestStation::start();
    let dev = ts.device("A100001", 3, 4000);
    ts.dock(&dev);
    let clean = custody_station::audit(&ts.station, None).unwrap();
    assert_eq!((clean.checked, clean.findings.len()), (3, 0));

    // Root on the station box edits one object and deletes another (read-only files do
    // not stop root; the immutable flag would, where the file system has it).
    let hashes: Vec<custody::MediaHash> = dev
        .records()
        .filter_map(|r| r.body().media().map(|m| m.sha256))
        .collect();
    let store = ts.store();
    let edited = store.object_path(&hashes[0]);
    let mut perms = fs::metadata(&edited).unwrap().permissions();
    #[expect(
        clippy::permissions_set_readonly_false,
        reason = "the test plays the intruder"
    )]
    perms.set_readonly(false);
    fs::set_permissions(&edited, perms).unwrap();
    fs::write(&edited, b"re-encoded").unwrap();
    fs::remove_file(store.object_path(&hashes[2])).unwrap();
    // A third cannot be read at all (here: a folder where the object was; on a failing
    // disk, EIO): a finding too, and the audit goes on to the next object.
    let unreadable = store.object_path(&hashes[1]);
    fs::remove_file(&unreadable).unwrap();
    fs::create_dir(&unreadable).unwrap();

    let found = custody_station::audit(&ts.station, None).unwrap();
    assert_eq!(found.checked, 3);
    let by_code: BTreeSet<(&str, bool)> = found
        .findings
        .iter()
        .map(|f| (f.code, f.subject.contains(&hashes[0].to_hex())))
        .collect();
    assert_eq!(
        by_code,
        BTreeSet::from([
            (code::STORE_OBJECT_CORRUPT, true),
            (code::STORE_OBJECT_UNREADABLE, false),
            (code::STORE_OBJECT_MISSING, false)
        ]),
        "{:?}",
        found.findings
    );
    // Recorded in the ledger under the audit session: the report of that session shows them.
    let report = ts.report(&ReportQuery {
        session: Some(found.session),
        ..ReportQuery::default()
    });
    let codes: BTreeSet<&str> = report.findings.iter().map(|f| f.code.as_str()).collect();
    assert_eq!(
        codes,
        BTreeSet::from([
            code::STORE_OBJECT_CORRUPT,
            code::STORE_OBJECT_UNREADABLE,
            code::STORE_OBJECT_MISSING
        ])
    );
}

/// The ledger failing while the docked device is identified is said to be the ledger,
/// never "device went away mid-ingest (cable pulled?)", and the device keeps every file.
#[test]
fn a_ledger_error_while_identifying_a_device_is_a_ledger_error() {
    let ts = TestStation::start();
    let dev = ts.device("A100010", 2, 1000);
    // Someone with the station's SQL (around the append-only triggers) damages the
    // enrolled key: the ledger can no longer say who the device is.
    let conn = rusqlite::Connection::open(ts.dir.path().join("data/ledger.sqlite")).unwrap();
    conn.execute_batch(
        "DROP TRIGGER devices_no_update; UPDATE devices SET key_pem = 'damaged' WHERE serial = 'A100010';",
    )
    .unwrap();
    drop(conn);
    let err = ts
        .station
        .ingest_slot(&dev.root, &DockOptions::default())
        .unwrap_err();
    assert!(matches!(err, IngestError::Ledger(_)), "{err:?}");
    assert!(!format!("{err:#}").contains("cable"), "{err:#}");
    for rec in dev.records() {
        assert!(dev.root.join(&rec.body().media().unwrap().file).is_file());
    }
}

/// A clip bound to a case and annotated after it was sealed: the report shows its number
/// under the case (not the provisional one), its 证明对象, speakers and main content, and
/// its findings in Chinese.
#[test]
fn the_report_shows_the_number_under_the_case_and_the_annotations() {
    use custody::{AnnotationFact, BindingFact, Fact, Speaker};
    let ts = TestStation::start();
    let mut dev = ts.device("A100011", 2, 1000);
    let first = dev.records().next().unwrap().clone();
    dev.add_fact(Fact::Binding(BindingFact {
        subject: first.hash(),
        case_number: "襄环罚〔2019〕75号".into(),
        number: "襄环罚〔2019〕75号-视-001".into(),
    }))
    .unwrap();
    dev.add_fact(Fact::Annotation(AnnotationFact {
        subject: first.hash(),
        proves: Some("当事人拒绝停止排污".into()),
        speakers: vec![Speaker {
            name: "李四".into(),
            identity: "当事人".into(),
        }],
        summary: Some("告知当事人违法事实及依据 <script>alert(1)</script>".into()),
    }))
    .unwrap();
    dev.tamper("extra-media").unwrap();
    ts.dock(&dev);
    let report = ts.report(&ReportQuery {
        case: Some("襄环罚〔2019〕75号".into()),
        ..ReportQuery::default()
    });
    assert_eq!(report.clips.len(), 1, "{:#?}", report.clips);
    let clip = &report.clips[0];
    assert_eq!(clip.number, "襄环罚〔2019〕75号-视-001");
    assert_ne!(clip.sealed_number, clip.number);
    assert_eq!(clip.proves.as_deref(), Some("当事人拒绝停止排污"));
    assert_eq!(clip.speakers[0].name, "李四");
    let html = report.to_html();
    for text in [
        "襄环罚〔2019〕75号-视-001",
        "当事人拒绝停止排污",
        "李四（当事人）",
        "告知当事人违法事实及依据",
    ] {
        assert!(html.contains(text), "{text} missing from the case report");
    }
    // What a device wrote is text on the page, never markup.
    assert!(!html.contains("<script>alert(1)"), "unescaped device text");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    // The device's whole report lists the unrecorded file's finding in Chinese.
    let all = ts.report(&ReportQuery::default()).to_html();
    assert!(
        all.contains(custody::describe_zh(code::MEDIA_UNRECORDED).unwrap()),
        "the finding is not described in Chinese"
    );
}

/// IT's fleet view right after a dock shows what the station knows: the clips an older
/// telemetry message counted as pending were stored and receipted, so the device is no
/// longer listed as holding clips near their deadline.
#[test]
fn after_a_dock_older_telemetry_no_longer_counts_stored_clips_as_pending() {
    use custody::telemetry::{TELEMETRY_V1, Telemetry};
    let ts = TestStation::start();
    let dev = ts.device("A100012", 2, 1000);
    let recorded = dev.records().last().unwrap().body().created;
    let telemetry = Telemetry {
        format: TELEMETRY_V1.into(),
        serial: "A100012".into(),
        at: recorded,
        agent_version: "test".into(),
        firmware: None,
        battery_percent: Some(80),
        charging: None,
        storage_free_bytes: None,
        pending_clips: 2,
        oldest_pending_recorded: Some(recorded),
        clock_error_ms: 500,
        clock_last_sync: None,
        gnss: None,
    };
    let heard = ts.station.now();
    ts.station
        .ledger()
        .note_telemetry(
            "A100012",
            &serde_json::to_string(&telemetry).unwrap(),
            heard,
        )
        .unwrap();
    // Late in the evening, before the dock: listed, two clips close to their deadline.
    ts.clock.set(sample_day(23));
    let policy = &ts.station.config().deadline;
    let offset = ts.station.config().utc_offset;
    let listed = |ts: &TestStation| {
        custody_station::pending_devices(&ts.station.ledger(), policy, offset, ts.station.now())
            .unwrap()
    };
    assert_eq!(listed(&ts).len(), 1);
    assert_eq!(listed(&ts)[0].pending_clips, 2);
    // Docked and receipted: nothing pending any more, whatever that telemetry said.
    let out = ts.dock(&dev);
    assert!(out.receipt.is_some());
    assert!(listed(&ts).is_empty());
    let now = custody_station::pending(
        &ts.station.ledger(),
        "A100012",
        &telemetry,
        &heard.to_rfc3339(),
    )
    .unwrap();
    assert_eq!((now.clips, now.oldest_recorded), (0, None));
}
