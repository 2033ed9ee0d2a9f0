//! A case's archive disc checked by the court's own tool: `custody verify` on the disc's
//! files (extracted as a machine without the station reads them), trusting the disc's
//! keys or only the keys it is given.

use std::fs;
use std::sync::Arc;

use custody::testkit::{SampleDevice, sample_day};
use custody::{BindingFact, Fact, FixedClock, Role, SigningKey};
use custody_station::{Actor, Credential, DockOptions, Medium, NewPerson, Station, StationConfig};

use crate::util::{arg, custody, run_ok};

/// The case the station's clips are bound to.
pub const CASE: &str = "襄环罚〔2019〕75号";
/// The password of every person the tests add.
pub const PASSWORD: &str = "correct-horse-battery";

/// Adds a person and logs them in.
pub fn person(station: &Station, new: &NewPerson<'_>) -> Actor {
    station.add_person(new, PASSWORD).unwrap();
    station
        .login(new.login, Credential::Password(PASSWORD), None)
        .unwrap()
}

/// A station in `dir` with device A100001 (issued to 张三, 42060119001) docked: 2 clips,
/// the first bound to [`CASE`], its key in `dir/A100001.pem`; and the clerk (内勤 李四)
/// logged in.
pub fn bound_case_station(dir: &std::path::Path) -> (Station, Actor) {
    let numbering =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/numbering.example.toml");
    let text = format!(
        "dock-root = \"dock\"\ndata-dir = \"data\"\norigin = \"test.example/station-01\"\n\
         reserve-bytes = 0\nnumbering = \"{}\"\n",
        numbering.display()
    );
    let cfg = StationConfig::parse(&text, &dir.join("station.toml")).unwrap();
    let station = Station::open_with_clock(cfg, Arc::new(FixedClock::at(sample_day(18)))).unwrap();
    let mut dev =
        SampleDevice::with_generated_clips(&dir.join("dock/A100001"), "A100001", 2, 4000).unwrap();
    let first = dev.records().next().unwrap().clone();
    dev.add_fact(Fact::Binding(BindingFact {
        subject: first.hash(),
        case_number: CASE.into(),
        number: format!("{CASE}-视-001"),
    }))
    .unwrap();
    let pem = dir.join("A100001.pem");
    fs::write(&pem, dev.public_key().to_pem()).unwrap();
    station
        .enroll(
            "A100001",
            "ga947-recorder",
            &pem,
            &[("42060119001".into(), "张三".into())],
        )
        .unwrap();
    station
        .ingest_slot(&dev.root, &DockOptions::default())
        .unwrap();
    let clerk = person(
        &station,
        &NewPerson {
            login: "lisi",
            name: "李四",
            department: "法制大队",
            badge: None,
            roles: &[Role::Clerk],
        },
    );
    (station, clerk)
}

#[test]
fn custody_verify_checks_a_disc_and_names_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let (station, clerk) = bound_case_station(dir.path());
    // The device's key, as the agency publishes it (written when it was enrolled).
    let pem = dir.path().join("A100001.pem");
    let image = station
        .build_discs(&clerk, CASE, Medium::Cd, None, &dir.path().join("discs"))
        .unwrap()
        .remove(0)
        .image;
    let disc = dir.path().join("disc");
    run_ok(
        "xorriso",
        &[
            "-osirrox",
            "on",
            "-indev",
            arg(&image),
            "-extract",
            "/",
            arg(&disc),
        ],
    );
    // The disc's own keys.
    let out = custody(&["verify", arg(&disc)]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("核验通过"),
        "{out:?}"
    );
    // Only the keys the agency published: the station's and the device's pass…
    let station_pem = dir.path().join("station.pub.pem");
    fs::write(&station_pem, station.verifier().public_key().to_pem()).unwrap();
    let out = custody(&[
        "verify",
        arg(&disc),
        "--key",
        arg(&station_pem),
        "--key",
        arg(&pem),
    ]);
    assert!(out.status.success(), "{out:?}");
    // …another station's key does not.
    let other = dir.path().join("other.pem");
    let stranger = SigningKey::from_seed(&[9; 32]).unwrap().public_key();
    fs::write(&other, stranger.to_pem()).unwrap();
    let out = custody(&[
        "verify",
        arg(&disc),
        "--key",
        arg(&other),
        "--key",
        arg(&pem),
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("checkpoint.txt"),
        "{out:?}"
    );
    // A changed byte in the clip: named, exit 1, in JSON too.
    let clip = disc.join(format!("clips/{CASE}-视-001.MP4"));
    let mut bytes = fs::read(&clip).unwrap();
    bytes[10] ^= 1;
    fs::remove_file(&clip).unwrap();
    fs::write(&clip, bytes).unwrap();
    let out = custody(&["verify", "--json", arg(&disc)]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let check: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        check["problems"][0]["file"],
        format!("clips/{CASE}-视-001.MP4")
    );
}
