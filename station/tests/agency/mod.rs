//! The agency the access and web tests work in: a station with three devices docked
//! (clips of three officers in two departments, bound to one case) and one person per
//! role, with the helpers those tests share.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "each test crate uses part of it; a test reports failure by panicking"
)]

use std::fs;
use std::path::Path;
use std::sync::Arc;

use custody::testkit::{SampleDevice, sample_day};
use custody::{BindingFact, ExportForm, Fact, FixedClock, Role};
use custody_station::{
    Actor, Credential, DockOptions, NewPerson, NewRequest, Station, StationConfig,
};

pub const CASE: &str = "襄环罚〔2019〕75号";
pub const PASSWORD: &str = "correct-horse-battery";

/// A person: (login, name, department, badge, roles).
pub type Person = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static [Role],
);

/// The people of the agency.
pub const PEOPLE: &[Person] = &[
    (
        "zhangsan",
        "张三",
        "治安大队",
        Some("42060119001"),
        &[Role::Officer],
    ),
    (
        "wangwu",
        "王五",
        "交警大队",
        Some("42060119002"),
        &[Role::Officer],
    ),
    // An officer who is also the head of his department.
    (
        "zheng",
        "郑十",
        "治安大队",
        Some("42060119003"),
        &[Role::Officer, Role::DepartmentHead],
    ),
    ("lisi", "李四", "法制大队", None, &[Role::Clerk]),
    ("zhao", "赵六", "治安大队", None, &[Role::DepartmentHead]),
    ("qian", "钱七", "交警大队", None, &[Role::DepartmentHead]),
    ("sun", "孙局", "局领导", None, &[Role::AgencyHead]),
    ("ma", "马副局", "局领导", None, &[Role::AgencyHead]),
    ("zhou", "周八", "督察", None, &[Role::Oversight]),
    // IT who was also made a department head: still never approves.
    (
        "wu",
        "吴九",
        "治安大队",
        None,
        &[Role::It, Role::DepartmentHead],
    ),
];

/// A station with three devices docked and the agency's people.
pub struct Agency {
    /// The station's folder.
    pub dir: tempfile::TempDir,
    /// The station.
    pub station: Station,
    /// Its clock.
    pub clock: Arc<FixedClock>,
    /// Device A100001: 张三's two clips, the first bound to the case.
    pub a: SampleDevice,
}

/// The station's configuration in `dir`.
pub fn config(dir: &Path) -> StationConfig {
    let numbering = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/numbering.example.toml");
    let text = format!(
        "dock-root = \"dock\"\ndata-dir = \"data\"\norigin = \"test.example/station-01\"\n\
         reserve-bytes = 0\nnumbering = \"{}\"\n",
        numbering.display()
    );
    StationConfig::parse(&text, &dir.join("station.toml")).unwrap()
}

/// A device whose `n` clips were recorded by the officer `(name, badge)`, its first clip
/// bound to the case as clip `case_seq`.
fn device(
    root: &Path,
    serial: &str,
    officer: (&str, &str),
    n: usize,
    case_seq: u32,
) -> SampleDevice {
    let mut dev = SampleDevice::with_generated_clips(root, serial, 0, 0).unwrap();
    fs::create_dir_all(root.join("DCIM/100MEDIA")).unwrap();
    for i in 1..=n {
        let rel = format!("DCIM/100MEDIA/{serial}_{i:04}.MP4");
        fs::write(root.join(&rel), format!("{serial} clip {i} ").repeat(200)).unwrap();
        dev.seal_clip_edited(&rel, |body| {
            body.officer.name = officer.0.into();
            body.officer.cert_no = officer.1.into();
        })
        .unwrap();
    }
    let first = dev.records().next().unwrap().hash();
    dev.add_fact(Fact::Binding(BindingFact {
        subject: first,
        case_number: CASE.into(),
        number: format!("{CASE}-视-{case_seq:03}"),
    }))
    .unwrap();
    dev
}

impl Agency {
    /// Opens the agency's station in a fresh folder.
    pub fn open() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(FixedClock::at(sample_day(18)));
        let station = Station::open_with_clock(config(dir.path()), clock.clone()).unwrap();
        let dock = dir.path().join("dock");
        let a = device(&dock.join("A"), "A100001", ("张三", "42060119001"), 2, 1);
        let b = device(&dock.join("B"), "B100002", ("王五", "42060119002"), 1, 2);
        let c = device(&dock.join("C"), "C100003", ("郑十", "42060119003"), 1, 3);
        for dev in [&a, &b, &c] {
            let pem = dir.path().join(format!("{}.pem", dev.serial));
            fs::write(&pem, dev.public_key().to_pem()).unwrap();
            station
                .enroll(&dev.serial, "ga947-recorder", &pem, &[])
                .unwrap();
            station
                .ingest_slot(&dev.root, &DockOptions::default())
                .unwrap();
        }
        for (login, name, department, badge, roles) in PEOPLE {
            let new = NewPerson {
                login,
                name,
                department,
                badge: *badge,
                roles,
            };
            station.add_person(&new, PASSWORD).unwrap();
        }
        Self {
            dir,
            station,
            clock,
            a,
        }
    }

    /// `login` logged in under `role` (or their only role).
    pub fn login(&self, login: &str, role: Option<Role>) -> Actor {
        self.station
            .login(login, Credential::Password(PASSWORD), role)
            .unwrap()
    }

    /// A request by `actor`.
    pub fn request(&self, actor: &Actor, case: bool, clips: &[String], how: (bool, bool)) -> u64 {
        self.request_form(actor, case, clips, how, ExportForm::Package)
    }

    pub fn request_form(
        &self,
        actor: &Actor,
        case: bool,
        clips: &[String],
        (outside, sensitive): (bool, bool),
        form: ExportForm,
    ) -> u64 {
        self.station
            .make_request(
                actor,
                &NewRequest {
                    case: case.then_some(CASE),
                    clips,
                    purpose: "案件审核",
                    form,
                    destination: "法制大队",
                    outside,
                    sensitive,
                },
            )
            .unwrap()
            .id
    }

    /// The number of device A's first clip.
    pub fn clip_a1(&self) -> String {
        self.a.records().next().unwrap().hash().to_string()
    }

    /// Device A's second clip, bound to no case.
    pub fn clip_a2(&self) -> String {
        self.a.records().nth(1).unwrap().hash().to_string()
    }

    pub fn decide_err(&self, actor: &Actor, id: u64) -> String {
        format!(
            "{:#}",
            self.station
                .decide(actor, id, true, None, 7)
                .expect_err("the decision must be refused")
        )
    }

    pub fn exports(&self) -> std::path::PathBuf {
        self.dir.path().join("exports")
    }
}
