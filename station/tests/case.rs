//! The case file (案卷): clips bound from any device, documents stored write-once and
//! described by station records in the log, closing a case by the official calendar, the
//! case files listed as due, and the case's archive discs, verified as a court would.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking, and tells its story in order"
)]

use std::fs;
use std::path::Path;
use std::sync::Arc;

use chrono::NaiveDate;
use custody::testkit::{SampleDevice, sample_day};
use custody::{
    BindingFact, Fact, FixedClock, MediaHash, Role, StationFact, StationRecord, leaf_hash,
};
use custody_station::{Actor, Credential, DockOptions, NewPerson, Station, StationConfig};

mod disc_tools;
use disc_tools::{extract, run_readme};

const CASE: &str = "襄环罚〔2019〕75号";

/// Binds `dev`'s first clip as clip `number` (of the case that number extends: the
/// number without its media kind and sequence).
fn bind_first(dev: &mut SampleDevice, number: &str) {
    let first = dev.records().next().unwrap().clone();
    let case = number.rsplitn(3, '-').nth(2).unwrap();
    dev.add_fact(Fact::Binding(BindingFact {
        subject: first.hash(),
        case_number: case.into(),
        number: number.into(),
    }))
    .unwrap();
}

struct Desk {
    dir: tempfile::TempDir,
    station: Station,
    clock: Arc<FixedClock>,
    /// 内勤 李四, logged in.
    clerk: Actor,
}

/// A password long enough for the station's accounts.
const PASSWORD: &str = "correct-horse-battery";

fn config(dir: &Path) -> StationConfig {
    let numbering = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/numbering.example.toml");
    let text = format!(
        "dock-root = \"dock\"\ndata-dir = \"data\"\norigin = \"test.example/station-01\"\n\
         reserve-bytes = 0\nnumbering = \"{}\"\n",
        numbering.display()
    );
    StationConfig::parse(&text, &dir.join("station.toml")).unwrap()
}

impl Desk {
    fn open() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(FixedClock::at(sample_day(18)));
        let station = Station::open_with_clock(config(dir.path()), clock.clone()).unwrap();
        let new = NewPerson {
            login: "lisi",
            name: "李四",
            department: "法制大队",
            badge: None,
            roles: &[Role::Clerk],
        };
        station.add_person(&new, PASSWORD).unwrap();
        let clerk = station
            .login("lisi", Credential::Password(PASSWORD), None)
            .unwrap();
        Self {
            dir,
            station,
            clock,
            clerk,
        }
    }

    /// Device `serial` with `n` clips, its first bound as clip `number` (of the case that
    /// number extends), enrolled and docked.
    fn dock_bound(&self, serial: &str, n: usize, number: &str) {
        self.dock_bound_with(serial, (n, 1000), number, None);
    }

    /// As [`Desk::dock_bound`], with `(clips, bytes each)` and a tampering recipe applied
    /// to the device before it docks.
    fn dock_bound_with(
        &self,
        serial: &str,
        (n, size): (usize, usize),
        number: &str,
        recipe: Option<&str>,
    ) {
        let slot = self.dir.path().join("dock").join(serial);
        let mut dev = SampleDevice::with_generated_clips(&slot, serial, n, size).unwrap();
        bind_first(&mut dev, number);
        if let Some(recipe) = recipe {
            dev.tamper(recipe).unwrap();
        }
        self.enroll_and_dock(&dev);
    }

    /// Enrols `dev` (issued to 张三) and docks it.
    fn enroll_and_dock(&self, dev: &SampleDevice) {
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
        self.station
            .ingest_slot(&dev.root, &DockOptions::default())
            .unwrap();
    }

    fn file(&self, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let p = self.dir.path().join(name);
        fs::write(&p, bytes).unwrap();
        p
    }
}

#[test]
fn a_case_joins_clips_from_every_device_and_its_documents_under_any_spelling() {
    let desk = Desk::open();
    desk.dock_bound("A100001", 2, "襄环罚〔2019〕75号-视-001");
    desk.dock_bound("B200002", 1, "襄环罚〔2019〕75号-视-002");
    let pdf = desk.file(
        "行政处罚决定书.pdf",
        b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n%%EOF\n",
    );
    let log_before = desk.station.ledger().log_size().unwrap();
    let rec = desk
        .station
        .attach_document("襄环罚[2019]75号", &pdf, "行政处罚决定书", "李四")
        .unwrap();
    // The record is the station's, signed by the station key, and the log's next leaf.
    let station_key = desk.station.verifier().public_key();
    StationRecord::parse_verified(rec.bytes().to_vec(), &station_key, rec.signature()).unwrap();
    // A checkpoint covers it at once, and proves it in.
    let ledger = desk.station.ledger();
    let checkpoint = ledger.latest_checkpoint().unwrap().unwrap();
    assert_eq!(checkpoint.size, log_before + 1);
    let proof = ledger.inclusion_proof(log_before, checkpoint.size).unwrap();
    custody::verify_inclusion(
        &leaf_hash(rec.bytes()),
        log_before,
        checkpoint.size,
        &proof,
        &checkpoint.root,
    )
    .unwrap();
    drop(ledger);
    // The file is stored write-once under its hash.
    let sha = MediaHash::of(&fs::read(&pdf).unwrap());
    let StationFact::Document(fact) = &rec.body().fact else {
        panic!("{:?}", rec.body().fact)
    };
    assert_eq!((fact.sha256, fact.case_number.as_str()), (sha, CASE));
    assert!(desk.station.store().exists(&sha).unwrap());
    // One view, whatever the spelling: both devices' bound clips and the document.
    let view = desk
        .station
        .case_view(&desk.clerk, "襄环罚（2019）75号")
        .unwrap();
    assert_eq!(view.header.case_number, CASE);
    assert_eq!(
        (
            view.header.document_kind.as_str(),
            view.header.act_type.as_str()
        ),
        ("罚", "行政处罚")
    );
    let mut numbers: Vec<&str> = view.clips.iter().map(|c| c.number.as_str()).collect();
    numbers.sort_unstable();
    assert_eq!(
        numbers,
        ["襄环罚〔2019〕75号-视-001", "襄环罚〔2019〕75号-视-002"]
    );
    assert_eq!(view.documents.len(), 1);
    assert_eq!(view.documents[0].title, "行政处罚决定书");
    assert_eq!(view.documents[0].attached_by, "李四");
    // Each clip with its record's times, clock and error, for the clerk.
    let clip = &view.clips[0];
    assert!(clip.time.start <= clip.time.end);
    assert!(
        clip.time_zh()
            .contains(&format!("误差 ±{} ms", clip.time.error_ms))
    );
    // The clerk's view was an access event naming the clips shown, in the station's chain
    // after the document; a second document chains to that event.
    let events = desk
        .station
        .ledger()
        .access_events(&custody_station::AccessQuery::default())
        .unwrap();
    let viewed = events.last().unwrap();
    assert_eq!(viewed.fact.action, custody::AccessAction::CaseView);
    assert_eq!(viewed.fact.records.len(), view.clips.len());
    let png = desk.file("现场照片.png", b"\x89PNG\r\n\x1A\n0000");
    let second = desk
        .station
        .attach_document(CASE, &png, "现场照片", "李四")
        .unwrap();
    assert_eq!(second.body().seq, rec.body().seq + 2);
    assert_eq!(second.body().prev, Some(viewed.record));
}

#[test]
fn a_document_that_is_not_what_it_claims_is_refused_and_nothing_is_stored() {
    let desk = Desk::open();
    let log = desk.station.ledger().log_size().unwrap();
    let cases = [
        (desk.file("空.pdf", b""), "empty"),
        (desk.file("假.pdf", b"<html>not a pdf</html>"), "not PDF"),
        (desk.file("笔录.docx", b"PK\x03\x04"), "documents are"),
    ];
    for (path, why) in &cases {
        let err = desk
            .station
            .attach_document(CASE, path, "笔录", "李四")
            .unwrap_err();
        assert!(format!("{err:#}").contains(why), "{why}: {err:#}");
    }
    let missing = desk.dir.path().join("不存在.pdf");
    let err = desk
        .station
        .attach_document(CASE, &missing, "笔录", "李四")
        .unwrap_err();
    assert!(format!("{err:#}").contains("cannot read"), "{err:#}");
    let err = desk
        .station
        .attach_document("襄环罚〔2019〕号", &cases[0].0, "笔录", "李四")
        .unwrap_err();
    assert!(format!("{err:#}").contains("serial"), "{err:#}");
    // Nothing reached the log or the store.
    assert_eq!(desk.station.ledger().log_size().unwrap(), log);
    // Objects live in 256 fan-out folders, made when the store is opened.
    let objects: usize = fs::read_dir(desk.station.store_root().join("objects"))
        .unwrap()
        .map(|fan| fs::read_dir(fan.unwrap().path()).unwrap().count())
        .sum();
    assert_eq!(objects, 0, "an object was stored for a refused document");
}

#[test]
fn a_closed_case_is_due_twenty_working_days_later_and_listed_when_close() {
    let desk = Desk::open();
    // 2026-09-25 (Friday) + 20 working days, across the National Day holiday
    // (Oct 1–8 off, Sep 28 and Oct 10 worked): 2026-10-30.
    desk.clock.set(sample_day(18));
    let rec = desk
        .station
        .close_case(CASE, NaiveDate::from_ymd_opt(2026, 9, 25).unwrap(), "王五")
        .unwrap();
    let StationFact::CaseClosed(closed) = &rec.body().fact else {
        panic!()
    };
    let due = closed.due;
    let by_weekdays = NaiveDate::from_ymd_opt(2026, 10, 23).unwrap();
    assert_ne!(due, by_weekdays, "the holiday was not counted");
    assert_eq!(
        custody::Calendar::embedded()
            .unwrap()
            .add_working_days(NaiveDate::from_ymd_opt(2026, 9, 25).unwrap(), 20)
            .unwrap(),
        due
    );
    assert_eq!(
        desk.station
            .case_view(&desk.clerk, CASE)
            .unwrap()
            .header
            .due,
        Some(due)
    );
    // Listed once due within 5 days or past it; not before.
    let listed = |today| desk.station.cases_due(today, 5).unwrap().len();
    assert_eq!(listed(due - chrono::Duration::days(6)), 0);
    assert_eq!(listed(due - chrono::Duration::days(5)), 1);
    let past = desk
        .station
        .cases_due(due + chrono::Duration::days(2), 5)
        .unwrap();
    assert_eq!(past[0].days_left, -2);
    // A date the calendar has no data for is said so, not guessed.
    desk.clock.set(sample_day(24 * 40));
    let err = desk
        .station
        .close_case(
            "襄环罚〔2019〕76号",
            NaiveDate::from_ymd_opt(2026, 12, 20).unwrap(),
            "王五",
        )
        .unwrap_err();
    assert!(format!("{err:#}").contains("calendar"), "{err:#}");
    // An act cannot end after today.
    desk.clock.set(sample_day(18));
    assert!(
        desk.station
            .close_case(CASE, NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(), "王五")
            .is_err()
    );
}

#[test]
fn the_case_commands_print_chinese_and_json_and_overdue_lists_the_case_file() {
    let dir = tempfile::tempdir().unwrap();
    let numbering = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/numbering.example.toml");
    let config = dir.path().join("station.toml");
    fs::write(
        &config,
        format!(
            "dock-root = \"dock\"\ndata-dir = \"data\"\norigin = \"test.example/station-01\"\n\
             reserve-bytes = 0\nnumbering = \"{}\"\n",
            numbering.display()
        ),
    )
    .unwrap();
    let pdf = dir.path().join("决定书.pdf");
    fs::write(&pdf, b"%PDF-1.4\n%%EOF\n").unwrap();
    let run = |args: &[&str]| {
        use std::io::Write as _;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_custody-station"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // A command that asks no password may exit before reading it.
        let _ = writeln!(stdin, "{PASSWORD}");
        drop(stdin);
        child.wait_with_output().unwrap()
    };
    let out = run(&[
        "user",
        "add",
        "lisi",
        "--name",
        "李四",
        "--department",
        "法制大队",
        "--role",
        "clerk",
        "--password-fd",
        "0",
    ]);
    assert!(out.status.success(), "{out:?}");
    let out = run(&[
        "case",
        "attach",
        "襄环罚【2019】75号",
        pdf.to_str().unwrap(),
        "--title",
        "行政处罚决定书",
        "--by",
        "李四",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("文书已归入案卷：襄环罚〔2019〕75号"));
    // 2019-03-01 is in the shipped calendar and in the past whatever the clock says.
    let out = run(&[
        "case",
        "close",
        CASE,
        "--ended",
        "2019-03-01",
        "--by",
        "王五",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("案卷应于"));
    let clerk = ["--as", "lisi", "--password-fd", "0"];
    let out = run(&[&["--json", "case", "襄环罚(2019)75号"][..], &clerk].concat());
    assert!(out.status.success(), "{out:?}");
    let view: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(view["header"]["case_number"], CASE);
    assert_eq!(view["header"]["ended"], "2019-03-01");
    assert_eq!(view["documents"][0]["file"], "决定书.pdf");
    let out = run(&[&["case", CASE][..], &clerk].concat());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("执法文书（1 份）") && text.contains("行政处罚决定书"),
        "{text}"
    );
    // The case file is long past due and not archived: overdue says so and exits 1.
    let out = run(&["--json", "overdue"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let due: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(due["case_files_due"][0]["case_number"], CASE);
    assert!(due["case_files_due"][0]["days_left"].as_i64().unwrap() < 0);
    // A number the template rejects: a clear error, exit 2.
    let out = run(&[&["case", "京环罚〔2019〕75号"][..], &clerk].concat());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("agency code"),
        "{out:?}"
    );
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// Lists an image's files in one view: Rock Ridge (as Linux reads it) by xorriso, Joliet
/// (as Windows reads it) by bsdtar with Rock Ridge off.
fn listing(image: &Path, joliet: bool) -> String {
    let out = if joliet {
        std::process::Command::new("bsdtar")
            .args(["--options", "iso9660:!rockridge", "-tf"])
            .arg(image)
            .output()
    } else {
        std::process::Command::new("xorriso")
            .args(["-indev"])
            .arg(image)
            .args(["-find", "/"])
            .output()
    }
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_disc_verifies_alone_by_the_commands_of_its_own_readme() {
    let desk = Desk::open();
    // The device also carries a copy of record 1 with a garbage signature: the disc must
    // ship the signature the record verified with.
    desk.dock_bound_with(
        "A100001",
        (2, 5000),
        "襄环罚〔2019〕75号-视-001",
        Some("copy-bad-sig:seq-1"),
    );
    let pdf = desk.file("行政处罚决定书.pdf", b"%PDF-1.7\n%%EOF\n");
    desk.station
        .attach_document(CASE, &pdf, "行政处罚决定书", "李四")
        .unwrap();
    let out = desk.dir.path().join("discs");
    let discs = desk
        .station
        .build_discs(
            &desk.clerk,
            "襄环罚[2019]75号",
            custody_station::Medium::Cd,
            None,
            &out,
        )
        .unwrap();
    assert_eq!(discs.len(), 1);
    let image = &discs[0].image;
    assert_eq!(discs[0].volume_id, "AJ20190075S1D01");
    // Chinese names intact in both views.
    for joliet in [false, true] {
        let files = listing(image, joliet);
        for name in [
            "clips/襄环罚〔2019〕75号-视-001.MP4",
            "documents/行政处罚决定书.pdf",
            "README-说明.txt",
        ] {
            assert!(
                files.contains(name),
                "{name} missing (joliet: {joliet}):\n{files}"
            );
        }
    }
    // The station reads it back clean, and records the check.
    let log = desk.station.ledger().log_size().unwrap();
    let check = desk.station.verify_disc(image.to_str().unwrap()).unwrap();
    assert!(check.is_intact(), "{:#?}", check.problems);
    assert_eq!(desk.station.ledger().log_size().unwrap(), log + 1);
    // A court with only coreutils and openssl, by the README's own commands.
    let disc = extract(image);
    let out = run_readme(disc.path());
    assert!(
        out.status.success() && stdout(&out).contains("全部核验通过"),
        "{}",
        stdout(&out)
    );
    // One byte of a clip changed: the same commands fail and name the file.
    let clip = disc.path().join("clips/襄环罚〔2019〕75号-视-001.MP4");
    let mut bytes = fs::read(&clip).unwrap();
    bytes[100] ^= 1;
    let mut perms = fs::metadata(&clip).unwrap().permissions();
    #[expect(
        clippy::permissions_set_readonly_false,
        reason = "the test damages its copy"
    )]
    perms.set_readonly(false);
    fs::set_permissions(&clip, perms).unwrap();
    fs::write(&clip, bytes).unwrap();
    let out = run_readme(disc.path());
    assert!(!out.status.success());
    assert!(
        stdout(&out).contains("襄环罚〔2019〕75号-视-001.MP4: FAILED"),
        "{}",
        stdout(&out)
    );
    // The station's check of the damaged copy names it too.
    let check = desk
        .station
        .verify_disc(disc.path().to_str().unwrap())
        .unwrap();
    assert!(
        check
            .problems
            .iter()
            .any(|p| p.file == "clips/襄环罚〔2019〕75号-视-001.MP4"),
        "{:#?}",
        check.problems
    );
}

#[test]
fn a_flipped_byte_in_an_image_fails_verify_and_names_the_file() {
    let desk = Desk::open();
    desk.dock_bound_with("A100001", (1, 200_000), "襄环罚〔2019〕75号-视-001", None);
    let out = desk.dir.path().join("discs");
    let image = desk
        .station
        .build_discs(&desk.clerk, CASE, custody_station::Medium::Cd, None, &out)
        .unwrap()
        .remove(0)
        .image;
    // Find the clip's bytes in the image and flip one in the middle.
    let clip = fs::read(
        fs::read_dir(desk.dir.path().join("dock/A100001/DCIM/100MEDIA"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path(),
    )
    .unwrap();
    let mut iso = fs::read(&image).unwrap();
    let at = iso
        .windows(64)
        .position(|w| w == &clip[..64])
        .expect("the clip is not in the image");
    iso[at + 100_000] ^= 0x40;
    fs::write(&image, iso).unwrap();
    let check = desk.station.verify_disc(image.to_str().unwrap()).unwrap();
    assert!(!check.is_intact());
    // Named twice: by xorriso's MD5 tag (its exit code alone would say nothing) and by
    // SHA256SUMS after extraction.
    let clip = "clips/襄环罚〔2019〕75号-视-001.MP4";
    let whys: Vec<&str> = check
        .problems
        .iter()
        .filter(|p| p.file == clip)
        .map(|p| p.why.as_str())
        .collect();
    assert!(
        whys.iter().any(|w| w.contains("MD5")) && whys.iter().any(|w| w.contains("SHA-256")),
        "{:#?}",
        check.problems
    );
}

#[test]
fn a_case_larger_than_a_disc_spans_discs_that_each_verify_alone() {
    let desk = Desk::open();
    for (serial, n) in [("A100001", 1), ("A100002", 2), ("A100003", 3)] {
        desk.dock_bound_with(serial, (1, 1_000_000), &format!("{CASE}-视-00{n}"), None);
    }
    let out = desk.dir.path().join("discs");
    // Room for one clip per disc (4 MiB are kept for the file system and small files).
    let capacity = (4 << 20) + 1_200_000;
    let discs = desk
        .station
        .build_discs(
            &desk.clerk,
            CASE,
            custody_station::Medium::Cd,
            Some(capacity),
            &out,
        )
        .unwrap();
    assert_eq!(discs.len(), 3, "{discs:#?}");
    for (i, disc) in discs.iter().enumerate() {
        assert_eq!((disc.disc, disc.of, disc.clips), (i + 1, 3, 1));
        let check = desk
            .station
            .verify_disc(disc.image.to_str().unwrap())
            .unwrap();
        assert!(check.is_intact(), "disc {}: {:#?}", i + 1, check.problems);
        let root = extract(&disc.image);
        let run = run_readme(root.path());
        assert!(run.status.success(), "disc {}: {}", i + 1, stdout(&run));
        let index = fs::read_to_string(root.path().join("index.html")).unwrap();
        assert!(
            index.contains(&format!("光盘 第 {} 张，共 3 张", i + 1)),
            "{index}"
        );
    }
    // A clip larger than the medium: refused, with what to do.
    let err = desk
        .station
        .build_discs(
            &desk.clerk,
            CASE,
            custody_station::Medium::Cd,
            Some((4 << 20) + 500_000),
            &out,
        )
        .unwrap_err();
    assert!(format!("{err:#}").contains("larger medium"), "{err:#}");
}

#[test]
fn a_burn_is_read_back_and_checked_and_a_failed_one_is_recorded_as_failed() {
    let desk = Desk::open();
    desk.dock_bound("A100001", 1, "襄环罚〔2019〕75号-视-001");
    desk.station
        .close_case(CASE, NaiveDate::from_ymd_opt(2026, 9, 25).unwrap(), "王五")
        .unwrap();
    let out = desk.dir.path().join("discs");
    let image = desk
        .station
        .build_discs(&desk.clerk, CASE, custody_station::Medium::Dvd, None, &out)
        .unwrap()
        .remove(0)
        .image;
    let today = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    // A drive that fails part-way (every write is "no space left"): recorded as failed.
    let failed = desk
        .station
        .burn_disc(&desk.clerk, &image, "stdio:/dev/full")
        .unwrap();
    assert!(!failed.burned && failed.check.is_none(), "{failed:?}");
    let view = desk.station.case_view(&desk.clerk, CASE).unwrap();
    assert_eq!(view.discs[0].burned, Some(false));
    assert!(!view.archived);
    assert_eq!(desk.station.cases_due(today, 365).unwrap().len(), 1);
    // An emulated drive: written (with cdrecord's padding after the image), read back,
    // checked; the case file is archived and no longer listed as due.
    let drive = desk.dir.path().join("drive.bin");
    let drive_name = format!("stdio:{}", drive.display());
    let burned = desk
        .station
        .burn_disc(&desk.clerk, &image, &drive_name)
        .unwrap();
    assert!(burned.burned, "{burned:?}");
    assert!(burned.check.as_ref().unwrap().is_intact(), "{burned:?}");
    assert!(fs::metadata(&drive).unwrap().len() > fs::metadata(&image).unwrap().len());
    let view = desk.station.case_view(&desk.clerk, CASE).unwrap();
    assert!(view.archived, "{:#?}", view.discs);
    assert!(desk.station.cases_due(today, 365).unwrap().is_empty());
    // The periodic check: not due now, due four years after the last check.
    let now = desk.station.now();
    assert!(desk.station.discs_due(now, 4).unwrap().is_empty());
    let later = now + chrono::Duration::days(4 * 366);
    let due = desk.station.discs_due(later, 4).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].disc.volume_id, burned.volume_id);
    // An image this station did not build is refused.
    let other = desk.file("other.iso", b"not an image");
    let err = desk
        .station
        .burn_disc(&desk.clerk, &other, &drive_name)
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("not a disc image this station built"),
        "{err:#}"
    );
}

/// Runs once in `scripts/test`, not again under `scripts/test-clock` (it skips tests
/// named `over_4_gib`): it moves about 20 GB through the disk, on an injected clock, and
/// holds two copies (9 GiB) at its peak.
#[test]
fn a_clip_over_4_gib_round_trips_through_a_disc() {
    use std::io::Write as _;
    const MIB: usize = 1 << 20;
    const SIZE: u64 = 4608 * MIB as u64; // 4.5 GiB
    let desk = Desk::open();
    // Say so plainly rather than fail half-way with ENOSPC.
    let volume = nix::sys::statvfs::statvfs(desk.dir.path()).unwrap();
    let free = volume.blocks_available() * volume.fragment_size();
    let needed = 2 * SIZE + (1 << 30);
    assert!(
        free >= needed,
        "this test needs {} GiB free under {} (two copies of a 4.5 GiB clip); {} GiB are \
         free: free some space or point TMPDIR at a larger disk",
        needed >> 30,
        desk.dir.path().display(),
        free >> 30
    );
    // Written straight into the device's folder: one copy, not two.
    let slot = desk.dir.path().join("dock/A100001");
    let mut dev = SampleDevice::create(&slot, "A100001", &[]).unwrap();
    let rel = "DCIM/100MEDIA/A100001_0001.MP4";
    {
        fs::create_dir_all(slot.join("DCIM/100MEDIA")).unwrap();
        let mut f = std::io::BufWriter::new(fs::File::create(slot.join(rel)).unwrap());
        let mut block: Vec<u8> = (0..MIB).map(|i| u8::try_from(i % 251).unwrap()).collect();
        for n in 0..4608u64 {
            block[..8].copy_from_slice(&n.to_be_bytes());
            f.write_all(&block).unwrap();
        }
        f.flush().unwrap();
    }
    dev.seal_clip(rel).unwrap();
    bind_first(&mut dev, &format!("{CASE}-视-001"));
    desk.enroll_and_dock(&dev);
    // The device's copy is no longer needed: the store holds the clip.
    fs::remove_dir_all(slot.join("DCIM")).unwrap();
    let out = desk.dir.path().join("discs");
    // The build shows on the station's disc board while it runs, part-way done, and
    // leaves it when it ends.
    let mut seen = Vec::new();
    let discs = std::thread::scope(|s| {
        let build = s.spawn(|| {
            desk.station
                .build_discs(&desk.clerk, CASE, custody_station::Medium::Bd25, None, &out)
        });
        while !build.is_finished() {
            for row in desk.station.disc_work().snapshot() {
                seen.push((row.slot, row.bytes_done, row.bytes_total));
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        build.join().unwrap().unwrap()
    });
    assert_eq!(discs.len(), 1);
    assert!(
        seen.iter()
            .any(|(what, done, total)| what.starts_with("制作 ")
                && *total > SIZE
                && *done > 0
                && done < total),
        "{seen:?}"
    );
    assert!(desk.station.disc_work().snapshot().is_empty());
    let image = &discs[0].image;
    // One file of 4.5 GiB (ISO 9660 level 3 writes it in several extents), whole in both views.
    let rock_ridge = std::process::Command::new("xorriso")
        .arg("-indev")
        .arg(image)
        .args(["-find", "/clips", "-exec", "lsdl"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&rock_ridge.stdout);
    assert!(listed.contains(&SIZE.to_string()), "{listed}");
    let joliet = std::process::Command::new("bsdtar")
        .args(["--options", "iso9660:!rockridge", "-tvf"])
        .arg(image)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&joliet.stdout);
    assert!(
        listed
            .lines()
            .any(|l| l.contains(&SIZE.to_string()) && l.contains("视-001.MP4")),
        "{listed}"
    );
    let check = desk.station.verify_disc(image.to_str().unwrap()).unwrap();
    assert!(check.is_intact(), "{:#?}", check.problems);
}

#[test]
fn the_year_s_statistics_count_per_act_type_at_one_checkpoint() {
    let desk = Desk::open();
    desk.dock_bound("A100001", 2, "襄环罚〔2019〕75号-视-001");
    desk.dock_bound("B200002", 1, "襄环查封〔2026〕3号-视-001");
    desk.station
        .close_case(CASE, NaiveDate::from_ymd_opt(2026, 9, 25).unwrap(), "王五")
        .unwrap();
    // Clips recorded three days before they docked: stored late, no reason declared.
    let slot = desk.dir.path().join("dock/C300003");
    let late = SampleDevice::with_generated_clips_at(
        &slot,
        "C300003",
        1,
        1000,
        Some(sample_day(18) - chrono::Duration::days(3)),
    )
    .unwrap();
    desk.enroll_and_dock(&late);
    let stats = desk.station.statistics(2026).unwrap();
    let row = |act: &str| {
        stats
            .rows
            .iter()
            .find(|r| r.act_type == act)
            .unwrap_or_else(|| panic!("no row {act}: {:#?}", stats.rows))
    };
    let fines = row("行政处罚");
    assert_eq!(
        (fines.cases, fines.cases_with_av, fines.clips, fines.bound),
        (1, 1, 1, 1)
    );
    let seals = row("行政强制");
    assert_eq!((seals.cases, seals.clips), (1, 1));
    let unbound = row(custody_station::UNBOUND);
    assert_eq!((unbound.cases, unbound.clips, unbound.late), (0, 2, 1));
    assert_eq!(unbound.late_reasons.get("未申报理由"), Some(&1));
    assert_eq!(
        (stats.total.clips, stats.total.cases, stats.total.late),
        (4, 2, 1)
    );
    // Every figure names the checkpoint it was computed at: the log as it is now.
    let ledger = desk.station.ledger();
    let checkpoint = ledger.latest_checkpoint().unwrap().unwrap();
    assert_eq!(stats.checkpoint_size, ledger.log_size().unwrap());
    assert_eq!(stats.checkpoint_size, checkpoint.size);
    drop(ledger);
    // Another year has nothing.
    assert_eq!(desk.station.statistics(2025).unwrap().total.clips, 0);
    // Written for people and for spreadsheets.
    let html = desk
        .station
        .write_statistics(&stats, &desk.dir.path().join("stats"))
        .unwrap();
    let page = fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("行政处罚") && page.contains(&stats.checkpoint_root),
        "{page}"
    );
    let csv = fs::read_to_string(html.with_extension("csv")).unwrap();
    assert!(
        csv.starts_with('\u{feff}') && csv.contains("\"合计\",\"2\""),
        "{csv}"
    );
}

#[test]
fn an_audit_finds_station_records_changed_or_removed_behind_the_station() {
    let desk = Desk::open();
    let pdf = desk.file("决定书.pdf", b"%PDF-1.7\n%%EOF\n");
    desk.station
        .attach_document(CASE, &pdf, "行政处罚决定书", "李四")
        .unwrap();
    desk.station
        .close_case(CASE, NaiveDate::from_ymd_opt(2026, 9, 25).unwrap(), "王五")
        .unwrap();
    let clean = custody_station::audit(&desk.station, None).unwrap();
    assert!(clean.findings.is_empty(), "{:#?}", clean.findings);
    // Someone with the station's SQL drops the append-only triggers, edits the document's
    // record and removes the closure.
    let db = rusqlite::Connection::open(desk.dir.path().join("data/ledger.sqlite")).unwrap();
    db.execute_batch(
        "DROP TRIGGER station_records_no_update; DROP TRIGGER station_records_no_delete;
         DROP TRIGGER case_closures_no_delete;
         UPDATE station_records SET bytes = CAST('{}' AS BLOB) WHERE kind = 'document';
         DELETE FROM case_closures; DELETE FROM station_records WHERE kind = 'case-closed';",
    )
    .unwrap();
    let found = custody_station::audit(&desk.station, None).unwrap();
    let unmatched: Vec<&str> = found
        .findings
        .iter()
        .filter(|f| f.code == custody::code::LOG_LEAF_UNMATCHED)
        .map(|f| f.detail.as_str())
        .collect();
    assert_eq!(unmatched.len(), 2, "{:#?}", found.findings);
    assert!(
        unmatched
            .iter()
            .any(|d| d.contains("not the bytes of its leaf"))
    );
    assert!(
        unmatched
            .iter()
            .any(|d| d.contains("no record in the ledger"))
    );
}
