//! Power cut at random points of sealing, ingest, receipt delivery and freeing, on a
//! filesystem that keeps only what was synced (crashfs, mounted with FUSE): the docked
//! recorder's storage and state, and the station's store and ledger, are one power domain
//! (the dock powers the recorder). After each cut what survived is mounted again, the
//! agent and the station run again, and nothing may be lost, half, forked or freed without
//! its receipt. Then an fsync that fails with EIO: nothing it covered may be reported
//! stored. Last, a full card and a full ledger disk: clear errors, nothing half, and both
//! resume. The seed of a failing run is printed (`CUSTODY_POWER_SEED`,
//! `CUSTODY_FSYNC_SEED` and `CUSTODY_FULL_SEED` repeat it).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crashfs::{Control, Image};
use custody::testkit::SeededRng;
use custody::{
    MediaHash, NoteVerifier, PublicKey, Receipt, Record, RecordHash, VerifyOptions, code, layout,
    verify_consistency, verify_folder,
};
use custody_station::{EvidenceStore as _, Ledger, LocalStore};
use fuser::BackgroundSession;

use crate::util::{bin, station_vkey};

const SERIAL: &str = "A100001";
/// Where the recorder writes its clips (the ga947 profile's recording folder).
const CLIP_DIR: &str = "DCIM/100MEDIA";
/// How long one step may run before the test calls it hung.
const STEP_DEADLINE: Duration = Duration::from_mins(2);

/// The three steps of a dock, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    /// `custody-agent run --once`: seals the closed clips.
    Seal,
    /// `custody-station ingest --slot`: stores, commits, writes the receipt.
    Ingest,
    /// `custody-agent run --once` again: verifies the receipt and frees its clips.
    Free,
}

const STEPS: [Step; 3] = [Step::Seal, Step::Ingest, Step::Free];

/// How a dock went.
enum Dock {
    /// Every step ran to its end.
    Done(Vec<Output>),
    /// The power went off during this step.
    Cut(Step),
}

/// A mounted crashfs holding the recorder (`dev/`) and the station's data (`station/`);
/// the configurations sit outside it (they are not what a cut tests).
struct Rig {
    tmp: tempfile::TempDir,
    mnt: PathBuf,
    session: Option<BackgroundSession>,
    control: Control,
    agent_config: PathBuf,
    station_config: PathBuf,
    device_key: PublicKey,
    verifier: NoteVerifier,
    clips_made: u64,
}

impl Rig {
    fn new() -> Self {
        Self::with_store(false)
    }

    /// With `store_outside`, the station's store is a folder on the ordinary disk (its
    /// ledger stays on crashfs): a full ledger disk while the store has room.
    fn with_store(store_outside: bool) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let mnt = tmp.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        let (session, control) = crashfs::mount(&mnt, Image::new())
            .expect("mount crashfs (needs /dev/fuse and root or fusermount3)");
        if store_outside {
            fs::create_dir_all(mnt.join("station/data")).unwrap();
            fs::create_dir(tmp.path().join("store")).unwrap();
            std::os::unix::fs::symlink(tmp.path().join("store"), mnt.join("station/data/store"))
                .unwrap();
            for d in ["station/data", "station", ""] {
                File::open(mnt.join(d)).unwrap().sync_all().unwrap();
            }
        }
        let station_config = tmp.path().join("station.toml");
        fs::write(
            &station_config,
            format!(
                "dock-root = \"dock\"\ndata-dir = \"{}\"\norigin = \"test.example/station-power\"\n\
                 parallel-copies = 2\nreserve-bytes = 0\n",
                mnt.join("station/data").display()
            ),
        )
        .unwrap();
        let vkey = station_vkey(&station_config);
        let agent_config = tmp.path().join("agent.toml");
        fs::write(
            &agent_config,
            format!(
                "serial = \"{SERIAL}\"\nhw-profile = \"ga947-recorder\"\nstorage = \"{}\"\n\
                 state-dir = \"{}\"\nclose-idle-ms = 0\n[officer]\nname = \"张三\"\n\
                 cert-no = \"42060119001\"\n[agency]\ncode = \"420600\"\n\
                 name = \"襄阳市生态环境局\"\n[station]\nvkey = \"{vkey}\"\n",
                mnt.join("dev/storage").display(),
                mnt.join("dev/state").display()
            ),
        )
        .unwrap();
        let printed = run(Command::new(bin("custody-agent"))
            .arg("--config")
            .arg(&agent_config)
            .arg("enroll"));
        let pem: String = String::from_utf8(printed.stdout)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .fold(String::new(), |mut pem, l| {
                pem.push_str(l);
                pem.push('\n');
                pem
            });
        let pem_path = tmp.path().join("device.pub.pem");
        fs::write(&pem_path, &pem).unwrap();
        run(Command::new(bin("custody-station"))
            .arg("--config")
            .arg(&station_config)
            .args([
                "enroll",
                "--serial",
                SERIAL,
                "--hw-profile",
                "ga947-recorder",
            ])
            .arg("--key")
            .arg(&pem_path)
            .args(["--officer", "42060119001:张三"]));
        let mut rig = Self {
            tmp,
            mnt,
            session: Some(session),
            control,
            agent_config,
            station_config,
            device_key: PublicKey::from_pem(&pem).unwrap(),
            verifier: NoteVerifier::parse(&vkey).unwrap(),
            clips_made: 0,
        };
        // Keys and enrolment were synced: after a cut the same keys sign.
        rig.power_cycle();
        let again = run(rig.station().arg("key"));
        assert!(
            String::from_utf8_lossy(&again.stdout).starts_with(&vkey),
            "the station key did not survive a power cut"
        );
        let printed = run(rig.agent().arg("enroll"));
        assert!(
            String::from_utf8_lossy(&printed.stdout).contains(pem.lines().nth(1).unwrap()),
            "the device key did not survive a power cut"
        );
        rig
    }

    fn storage(&self) -> PathBuf {
        self.mnt.join("dev/storage")
    }

    fn agent(&self) -> Command {
        let mut cmd = Command::new(bin("custody-agent"));
        cmd.arg("--config")
            .arg(&self.agent_config)
            .env("RUST_LOG", "warn");
        cmd
    }

    fn station(&self) -> Command {
        let mut cmd = Command::new(bin("custody-station"));
        cmd.arg("--config")
            .arg(&self.station_config)
            .env("RUST_LOG", "warn");
        cmd
    }

    fn step(&self, step: Step) -> Command {
        match step {
            Step::Seal | Step::Free => {
                let mut cmd = self.agent();
                cmd.args(["run", "--once"]);
                cmd
            }
            Step::Ingest => {
                let mut cmd = self.station();
                cmd.args(["ingest", "--slot"]).arg(self.storage());
                cmd
            }
        }
    }

    /// The recorder closes `n` new clips: written and synced, as a recorder closes a file.
    fn record(&mut self, n: u64, rng: &mut SeededRng) {
        let dir = self.storage().join(CLIP_DIR);
        fs::create_dir_all(&dir).unwrap();
        for _ in 0..n {
            self.clips_made += 1;
            let size = 4096 + rng.below(96 << 10);
            let bytes: Vec<u8> = (0..size)
                .map(|i| u8::try_from((i * 31 + self.clips_made * 7 + (i >> 9)) % 251).unwrap())
                .collect();
            let name = format!(
                "{SERIAL}_20261120_{:06}_{:04}.MP4",
                self.clips_made, self.clips_made
            );
            let mut f = File::create(dir.join(name)).unwrap();
            f.write_all(&bytes).unwrap();
            f.sync_all().unwrap();
        }
        // Every folder on the way, so the clips themselves survive any cut.
        for d in [
            dir.clone(),
            self.storage().join("DCIM"),
            self.storage(),
            self.mnt.join("dev"),
            self.mnt.clone(),
        ] {
            File::open(d).unwrap().sync_all().unwrap();
        }
    }

    /// Runs the dock's three steps. A step the power cut is killed at once, as the power
    /// kills it; a step that fails without a cut fails the test.
    fn dock(&self) -> Dock {
        let mut outputs = Vec::new();
        for step in STEPS {
            let mut child = self
                .step(step)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let started = Instant::now();
            loop {
                if self.control.is_cut() {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Dock::Cut(step);
                }
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                assert!(started.elapsed() < STEP_DEADLINE, "{step:?} hung");
                std::thread::sleep(Duration::from_millis(2));
            }
            let out = child.wait_with_output().unwrap();
            if self.control.is_cut() {
                return Dock::Cut(step);
            }
            outputs.push(out);
        }
        Dock::Done(outputs)
    }

    /// A dock with no cut armed, every step ending well (ingest may report findings: exit
    /// 1); `when` and `story` tell a failure's circumstances.
    fn full_dock(&self, seed: u64, when: &str, story: &str) {
        let outputs = match self.dock() {
            Dock::Done(outputs) => outputs,
            Dock::Cut(step) => panic!("seed {seed}: no cut was armed, yet {step:?} lost power"),
        };
        for (step, out) in STEPS.iter().zip(&outputs) {
            let ok = match step {
                Step::Ingest => out.status.code().is_some_and(|c| c <= 1),
                Step::Seal | Step::Free => out.status.success(),
            };
            assert!(
                ok,
                "seed {seed}: {step:?} {when} failed: {}\n{story}",
                text(out)
            );
        }
    }

    /// Cuts the power (if it is still on), unmounts, and mounts what survived.
    fn power_cycle(&mut self) {
        self.control.cut_now();
        let image = crashfs::unmount(self.session.take().unwrap(), &self.control).unwrap();
        let (session, control) = crashfs::mount(&self.mnt, image).unwrap();
        self.session = Some(session);
        self.control = control;
    }

    /// The device's records, by seq: (record hash, record bytes, the clip's media).
    fn records(&self) -> BTreeMap<u64, (RecordHash, Vec<u8>, Option<custody::Media>)> {
        let dir = layout::device_dir(&self.storage(), SERIAL).join(layout::RECORDS_DIR);
        let mut out = BTreeMap::new();
        let Ok(entries) = fs::read_dir(&dir) else {
            return out;
        };
        for e in entries {
            let path = e.unwrap().path();
            if path.extension().is_some_and(|x| x == "json") {
                let bytes = fs::read(&path).unwrap();
                let rec = Record::parse(bytes.clone())
                    .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
                let media = rec.body().media().cloned();
                out.insert(rec.body().seq, (rec.hash(), bytes, media));
            }
        }
        out
    }

    /// The station's receipts on the device, verified.
    fn receipts(&self) -> Vec<custody::VerifiedReceipt> {
        let inbox = layout::inbox_dir(&self.storage(), SERIAL);
        let Ok(entries) = fs::read_dir(&inbox) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in entries {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("receipt-") && path.extension().is_some_and(|x| x == "json") {
                let receipt = Receipt::open(
                    &fs::read(&path).unwrap(),
                    &fs::read(path.with_extension("sig"))
                        .unwrap_or_else(|e| panic!("{name} has no signature: {e}")),
                    &self.verifier,
                    SERIAL,
                    &self.device_key.key_id(),
                )
                .unwrap_or_else(|e| panic!("{name} does not verify: {e}"));
                out.push(receipt);
            }
        }
        out
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            let _ = s.umount_and_join();
        }
        let _ = &self.tmp;
    }
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", text(&out));
    out
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// What every check after a cut remembers from the ones before.
#[derive(Default)]
struct History {
    /// Every record hash seen on the device, by seq: a seq never changes its record.
    chain: BTreeMap<u64, RecordHash>,
    /// Checkpoints seen signed (on the device in receipts, or the station's latest).
    checkpoints: Vec<(u64, custody::TreeHash)>,
}

/// The promises, checked on what survived. `all_stored`: after a full dock, every clip
/// sealed is receipted.
fn check(rig: &Rig, history: &mut History, all_stored: bool, seed: u64, story: &str) {
    let fail = |what: String| -> ! { panic!("seed {seed}: {what}\n{story}") };
    let storage = rig.storage();
    // The device: every record has its signature, the chain has no gap, fork or
    // mismatch; media is missing only where a receipt freed it.
    let report = verify_folder(&storage, &VerifyOptions::default()).unwrap();
    let records = rig.records();
    let receipts = rig.receipts();
    let covered = |seq: u64, bytes: &[u8]| receipts.iter().any(|r| r.covers(seq, bytes).is_ok());
    for f in &report.findings {
        if f.code == code::MEDIA_MISSING {
            continue; // judged below, record by record
        }
        if f.code == code::MEDIA_UNRECORDED && !all_stored {
            continue; // a clip the cut came before the sealing of
        }
        fail(format!("the device's folder has a finding: {f:?}"));
    }
    for (&seq, (hash, bytes, media)) in &records {
        if history
            .chain
            .insert(seq, *hash)
            .is_some_and(|seen| seen != *hash)
        {
            fail(format!(
                "seq {seq} now holds another record: the chain forked"
            ));
        }
        if let Some(media) = media {
            let on_device = storage.join(&media.file).exists();
            if !on_device && !covered(seq, bytes) {
                fail(format!(
                    "{} was freed without a receipt that survived",
                    media.file
                ));
            }
            if all_stored && !covered(seq, bytes) {
                fail(format!(
                    "{} (seq {seq}) is not receipted after a full dock",
                    media.file
                ));
            }
        }
    }
    if let Some((&last, _)) = history.chain.last_key_value()
        && !records.contains_key(&last)
    {
        fail(format!(
            "record seq {last} seen before is gone from the device"
        ));
    }
    // The station: what it receipted is in the store, whole.
    let data = rig.mnt.join("station/data");
    let objects = LocalStore::open(&data.join("store"), 0, false).unwrap();
    for r in &receipts {
        for entry in &r.body().entries {
            let Some((_, _, Some(media))) = records.get(&entry.seq) else {
                continue;
            };
            let hash: MediaHash = media.sha256;
            if !objects.exists(&hash).unwrap() {
                fail(format!(
                    "{} was receipted but is not in the store",
                    media.file
                ));
            }
            let object = objects.object_path(&hash);
            let bytes = fs::read(&object).unwrap();
            if MediaHash::of(&bytes) != hash || bytes.len() as u64 != media.size {
                fail(format!("{} is partial or corrupt in the store", media.file));
            }
        }
    }
    // Every ledger row's object reads back and every log leaf matches its record.
    let audit = rig.station().args(["audit"]).output().unwrap();
    if !audit.status.success() {
        fail(format!(
            "the station's audit found problems: {}",
            text(&audit)
        ));
    }
    // Checkpoints: the log never shrinks or rewrites what was signed before.
    let ledger = Ledger::open(&data.join("ledger.sqlite")).unwrap();
    let Some(latest) = ledger.latest_checkpoint().unwrap() else {
        if receipts.is_empty() && history.checkpoints.is_empty() {
            return;
        }
        fail("the station lost its log".to_owned());
    };
    let mut signed = std::mem::take(&mut history.checkpoints);
    signed.extend(
        receipts
            .iter()
            .map(|r| (r.checkpoint().size, r.checkpoint().root)),
    );
    for &(size, root) in &signed {
        if size > latest.size {
            fail(format!(
                "a checkpoint of size {size} was signed, the log now has {}",
                latest.size
            ));
        }
        let proof = ledger.consistency_proof(size, latest.size).unwrap();
        if verify_consistency(size, latest.size, &proof, &root, &latest.root).is_err() {
            fail(format!(
                "checkpoint {size} is not consistent with the latest ({})",
                latest.size
            ));
        }
    }
    history.checkpoints = vec![(latest.size, latest.root)];
}

/// Power cuts a test run makes (`CUSTODY_POWER_CUTS`; at least 100 in `scripts/test`).
fn cuts_wanted() -> u64 {
    std::env::var("CUSTODY_POWER_CUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

#[test]
fn power_cut_at_random_points_of_a_dock_loses_forks_and_frees_nothing_wrongly() {
    let (mut rng, seed) = SeededRng::from_env("CUSTODY_POWER_SEED");
    let mut rig = Rig::new();
    let mut history = History::default();
    // A first dock without a cut says how many changes a dock makes.
    rig.record(2, &mut rng);
    let before = rig.control.changes();
    rig.full_dock(seed, "in the first dock", "");
    let mut span = rig.control.changes() - before;
    check(&rig, &mut history, true, seed, "after the first dock");
    let (mut cuts, mut by_step) = (0, BTreeMap::<Step, u64>::new());
    let mut hits = BTreeMap::<String, u64>::new();
    let mut story = String::new();
    let mut round = 0;
    while cuts < cuts_wanted() {
        round += 1;
        assert!(
            round < cuts_wanted() * 3,
            "seed {seed}: too many docks without a cut"
        );
        let n = 1 + rng.below(3);
        rig.record(n, &mut rng);
        let at = 1 + rng.below(span);
        let before = rig.control.changes();
        rig.control.cut_after(at);
        match rig.dock() {
            Dock::Done(_) => {
                // The dock made fewer changes than the cut point: a longer span next time.
                span = span.max(rig.control.changes() - before);
                rig.power_cycle();
                let _ = writeln!(story, "round {round}: {n} clip(s), dock done, then a cut");
            }
            Dock::Cut(step) => {
                cuts += 1;
                *by_step.entry(step).or_default() += 1;
                let hit = rig.control.hit().unwrap_or_default();
                let what = hit.split(' ').next().unwrap_or_default().to_owned();
                *hits.entry(what).or_default() += 1;
                let _ = writeln!(
                    story,
                    "round {round}: {n} clip(s), cut at change {at} during {step:?}: {hit}"
                );
                rig.power_cycle();
            }
        }
        // What survived keeps every promise; a full dock then stores everything.
        check(&rig, &mut history, false, seed, &story);
        rig.full_dock(seed, "after the cut", &story);
        check(&rig, &mut history, true, seed, &story);
    }
    let stored = rig.records().len();
    eprintln!(
        "power cuts survived: {cuts} in {round} docks ({stored} records): by step {by_step:?}; \
         by operation {hits:?}"
    );
}

#[test]
fn after_an_fsync_fails_nothing_it_covered_is_reported_stored_or_freed() {
    let (mut rng, seed) = SeededRng::from_env("CUSTODY_FSYNC_SEED");
    let mut rig = Rig::new();
    let mut history = History::default();
    rig.record(2, &mut rng);
    // Any file's fsync may fail: store objects, records, receipts, keys, and the ledger's
    // and manifest's SQLite files.
    let before = rig.control.syncs();
    rig.full_dock(seed, "in the first dock", "");
    let span = rig.control.syncs() - before;
    check(&rig, &mut history, true, seed, "after the first dock");
    let mut failed_steps = 0;
    let mut story = String::new();
    for round in 1..=20 {
        rig.record(1 + rng.below(2), &mut rng);
        let at = 1 + rng.below(span);
        rig.control.fail_sync_after(at);
        let Dock::Done(outputs) = rig.dock() else {
            panic!("seed {seed}: no cut was armed")
        };
        let hit = rig.control.hit().unwrap_or_default();
        let errors = outputs.iter().filter(|o| !o.status.success()).count();
        failed_steps += errors;
        let _ = writeln!(
            story,
            "round {round}: fsync {at} failed ({hit}); {errors} step(s) failed"
        );
        for (step, out) in STEPS.iter().zip(&outputs) {
            if !out.status.success() {
                let _ = writeln!(story, "  {step:?}: {}", text(out).trim_end());
            }
        }
        // Whatever the steps said, a power cut now must find everything they reported
        // stored or receipted whole, and nothing freed without its receipt.
        rig.power_cycle();
        check(&rig, &mut history, false, seed, &story);
        rig.full_dock(seed, "after the failed fsync", &story);
        check(&rig, &mut history, true, seed, &story);
    }
    eprintln!("failed fsyncs survived: 20, steps that reported the failure: {failed_steps}");
}

#[test]
fn a_full_device_stops_sealing_and_a_full_ledger_disk_stops_ingest_cleanly_and_both_resume() {
    let (mut rng, seed) = SeededRng::from_env("CUSTODY_FULL_SEED");
    let mut rig = Rig::with_store(true);
    let mut history = History::default();
    rig.record(3, &mut rng);

    // The recorder's card is full: sealing fails with a clear message, nothing half.
    rig.control.set_capacity(Some(rig.control.used()));
    let out = rig.step(Step::Seal).output().unwrap();
    assert!(
        !out.status.success(),
        "sealing on a full card succeeded: {}",
        text(&out)
    );
    assert!(
        text(&out).contains("No space left") || text(&out).contains("full"),
        "the message says the disk is full: {}",
        text(&out)
    );
    // Room again (the checks themselves write): nothing half was left.
    rig.control.set_capacity(None);
    check(
        &rig,
        &mut history,
        false,
        seed,
        "after sealing on a full card",
    );
    assert!(rig.step(Step::Seal).output().unwrap().status.success());
    let sealed = rig.records().len();
    assert_eq!(sealed, 3, "every clip sealed once space returned");

    // The station's ledger disk is full while its store has room: ingest stops, writes no
    // receipt, commits nothing half; it resumes when space returns.
    rig.control.set_capacity(Some(rig.control.used()));
    let out = rig.step(Step::Ingest).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("full") || text(&out).contains("No space left"),
        "the message says the disk is full: {}",
        text(&out)
    );
    assert!(
        rig.receipts().is_empty(),
        "no receipt for what the ledger could not hold"
    );
    // Room again (the checks themselves write): nothing half was left.
    rig.control.set_capacity(None);
    check(
        &rig,
        &mut history,
        false,
        seed,
        "after ingest on a full ledger disk",
    );
    rig.full_dock(seed, "after space returned", "");
    check(&rig, &mut history, true, seed, "after space returned");
    // And what it stored survives a cut.
    rig.power_cycle();
    check(&rig, &mut history, true, seed, "after a cut");
}
