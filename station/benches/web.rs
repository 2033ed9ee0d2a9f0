//! The web page's server time with a year of an agency's evidence in the ledger: by
//! default 1,000,000 device records (500 recorders, two officers each, about 200,000
//! cases, one clip in ten bound to its case by a later record), 2,000 requests, 20,000
//! logged case views, and the desk's people. Each page is fetched over loopback as a logged-in person, once to warm
//! up and then `CUSTODY_BENCH_ROUNDS` times; the table gives the median and the slowest,
//! and the process's resident memory before and after.
//!
//! Loading signs and commits every record through the ledger's own commit path (about
//! four minutes on two cores); the ledger lives in `/dev/shm` so a commit's fsync costs
//! nothing (the pages read from the page cache either way). `CUSTODY_BENCH_KEEP=1`
//! keeps it there for the next run; `CUSTODY_BENCH_RECORDS` sizes it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_precision_loss,
    clippy::print_stdout,
    reason = "a benchmark reports by printing and stops at the first failure"
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone as _, Utc};
use custody::testkit::SampleDevice;
use custody::{
    BindingFact, ExportForm, Fact, FixedClock, MediaHash, PublicKey, Record, RecordHash, Role,
    SigningKey, Verified,
};
use custody_station::{ClipEntry, Credential, NewPerson, NewRequest, Station, StationConfig};

const DEVICES: usize = 500;
/// Officers with an account (argon2id makes each one take a few tens of milliseconds).
const OFFICER_ACCOUNTS: usize = 40;
/// Case views by the clerk before the pages are timed (the access log's events).
const VIEWS: usize = 20_000;
/// Requests by the clerk, each for a case.
const REQUESTS: usize = 2000;
const PASSWORD: &str = "correct-horse-battery";
const DEPARTMENTS: [&str; 5] = ["治安大队", "交警大队", "刑侦大队", "巡特警大队", "派出所"];

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn case_number(n: usize) -> String {
    format!("襄环罚〔2026〕{n}号")
}

fn officer(device: usize, clip: usize) -> (String, String) {
    let o = device * 2 + clip % 2;
    (format!("警员{o:04}"), format!("4206011{o:04}"))
}

fn config(dir: &Path) -> StationConfig {
    let numbering = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/numbering.example.toml");
    let text = format!(
        "dock-root = \"dock\"\ndata-dir = \"data\"\norigin = \"bench.example/station-01\"\n\
         reserve-bytes = 0\nnumbering = \"{}\"\n",
        numbering.display()
    );
    StationConfig::parse(&text, &dir.join("station.toml")).unwrap()
}

/// A recorder as it signs: its key, its last record and a body to copy.
struct Recorder {
    index: usize,
    serial: String,
    key: SigningKey,
    body: custody::RecordBody,
    prev: Option<RecordHash>,
    seq: u64,
}

impl Recorder {
    fn new(index: usize) -> Self {
        let serial = format!("X{:06}", index + 1);
        let scratch = tempfile::tempdir().unwrap();
        let template = SampleDevice::with_generated_clips(scratch.path(), &serial, 1, 10).unwrap();
        let mut body = template.records().next().unwrap().body().clone();
        let key = SigningKey::generate().unwrap().0;
        body.device.key_id = key.public_key().key_id();
        Self {
            index,
            serial,
            key,
            body,
            prev: None,
            seq: 0,
        }
    }

    fn seal(&mut self, body: &mut custody::RecordBody) -> Record<Verified> {
        self.seq += 1;
        body.seq = self.seq;
        body.prev = self.prev;
        let rec = Record::seal(body, &self.key).unwrap();
        self.prev = Some(rec.hash());
        rec
    }

    /// Clip `c` of the `clips` this recorder makes over 2026: five neighbours make one
    /// case; one clip in ten is sealed without its case and bound by a later record.
    fn clip(&mut self, c: usize, clips: usize) -> Vec<Record<Verified>> {
        let (d, serial) = (self.index, self.serial.clone());
        let offset = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
        let year = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let end = year
            + chrono::Duration::seconds(i64::try_from(c * 365 * 86_400 / clips).unwrap() + 600);
        let case = case_number(d * clips / 5 + c / 5 + 1);
        let mut body = self.body.clone();
        let (name, cert) = officer(d, c);
        body.officer.name = name;
        body.officer.cert_no = cert;
        body.created = end.with_timezone(&offset);
        let Fact::Clip(clip) = &mut body.fact else {
            unreachable!("a clip template")
        };
        let late_bound = c % 10 == 9;
        let number = format!("{case}-视-{:03}", c % 5 + 1);
        clip.number = if late_bound {
            format!("{serial}-{:06}", c + 1)
        } else {
            number.clone()
        };
        clip.case_number = (!late_bound).then(|| case.clone());
        clip.media.file = format!("DCIM/100MEDIA/{serial}_{:04}.MP4", c + 1);
        clip.media.size = 300_000_000;
        let mut h = [0u8; 32];
        h[..8].copy_from_slice(&(d as u64).to_be_bytes());
        h[8..16].copy_from_slice(&(c as u64).to_be_bytes());
        clip.media.sha256 = MediaHash(h);
        clip.time.start = (end - chrono::Duration::minutes(10)).with_timezone(&offset);
        clip.time.end = end.with_timezone(&offset);
        let sealed = self.seal(&mut body);
        let mut out = vec![sealed];
        if late_bound {
            body.created += chrono::Duration::hours(1);
            body.fact = Fact::Binding(BindingFact {
                subject: out[0].hash(),
                case_number: case,
                number,
            });
            out.push(self.seal(&mut body));
        }
        out
    }
}

/// Opens the bench station in `dir`, loading `records` records first if it is new.
fn station(dir: &Path, records: usize) -> Arc<Station> {
    let clock = Arc::new(FixedClock::at(
        Utc.with_ymd_and_hms(2027, 1, 10, 2, 0, 0).unwrap(),
    ));
    let loaded = dir.join("loaded");
    let station = Station::open_with_clock(config(dir), clock.clone()).unwrap();
    if loaded.exists() {
        return Arc::new(station);
    }
    let clips = (records * 10).div_ceil(11 * DEVICES);
    let started = Instant::now();
    let (tx, rx) = std::sync::mpsc::sync_channel::<(Record<Verified>, PublicKey)>(4096);
    // In the order a station stores them: every recorder's clips of a day, day by day.
    let sealer = std::thread::spawn(move || {
        let mut recorders: Vec<Recorder> = (0..DEVICES).map(Recorder::new).collect();
        for c in 0..clips {
            for r in &mut recorders {
                for rec in r.clip(c, clips) {
                    tx.send((rec, r.key.public_key())).unwrap();
                }
            }
        }
    });
    let mut sessions = std::collections::HashMap::new();
    let mut n = 0;
    for (rec, key) in rx {
        let body = rec.body();
        let serial = body.device.serial.clone();
        let session = *sessions.entry(serial.clone()).or_insert_with(|| {
            let d: usize = serial[1..].parse::<usize>().unwrap() - 1;
            let officers = [officer(d, 0), officer(d, 1)];
            let mut ledger = station.ledger();
            ledger
                .enroll(&serial, "ga947-recorder", &key, &officers, station.now())
                .unwrap();
            ledger
                .open_session(
                    &format!("slot-{}", d % 8),
                    Some(&serial),
                    None,
                    station.now(),
                )
                .unwrap()
        });
        let entry = match &body.fact {
            Fact::Clip(c) => Some(ClipEntry {
                stored: Some((c.media.sha256, c.media.size)),
                deadline: c.time.end.with_timezone(&Utc) + chrono::Duration::hours(24),
                late: false,
                delay_reason: None,
            }),
            _ => None,
        };
        station
            .ledger()
            .commit_record(
                session,
                &rec,
                entry.as_ref(),
                &[],
                body.created.with_timezone(&Utc),
            )
            .unwrap();
        n += 1;
        if n % 100_000 == 0 {
            println!(
                "loaded {n} records in {:.0} s",
                started.elapsed().as_secs_f64()
            );
        }
    }
    sealer.join().unwrap();
    people(&station);
    requests(&station, REQUESTS, DEVICES * clips / 5);
    views(&station, VIEWS, DEVICES * clips / 5);
    std::fs::write(&loaded, n.to_string()).unwrap();
    println!(
        "loaded {n} records in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Arc::new(station)
}

/// The desk: a clerk, department heads, an agency head, oversight, IT and two officers.
fn people(station: &Station) {
    let add = |login: &str, name: &str, department: &str, badge: Option<&str>, roles: &[Role]| {
        let new = NewPerson {
            login,
            name,
            department,
            badge,
            roles,
        };
        station.add_person(&new, PASSWORD).unwrap();
    };
    add("lisi", "李四", "法制大队", None, &[Role::Clerk]);
    for (i, dept) in DEPARTMENTS.iter().enumerate() {
        add(
            &format!("head{i}"),
            &format!("队长{i}"),
            dept,
            None,
            &[Role::DepartmentHead],
        );
    }
    add("sun", "孙局", "局领导", None, &[Role::AgencyHead]);
    add("zhou", "周八", "督察", None, &[Role::Oversight]);
    add("wu", "吴九", "科技信息化", None, &[Role::It]);
    for o in 0..OFFICER_ACCOUNTS {
        let (name, cert) = officer(o / 2, o % 2);
        add(
            &format!("officer{o}"),
            &name,
            DEPARTMENTS[o % 5],
            Some(&cert),
            &[Role::Officer],
        );
    }
}

/// `n` case views by the clerk (access events for the log), spread over `cases` cases.
fn views(station: &Station, n: usize, cases: usize) {
    let clerk = station
        .login("lisi", Credential::Password(PASSWORD), None)
        .unwrap();
    for i in 0..n {
        station
            .case_view(&clerk, &case_number(i * 7919 % cases + 1))
            .unwrap();
    }
}

/// `n` requests by the clerk, each for one of the `cases` cases.
fn requests(station: &Station, n: usize, cases: usize) {
    let clerk = station
        .login("lisi", Credential::Password(PASSWORD), None)
        .unwrap();
    for i in 0..n {
        let case = case_number(i * 97 % cases + 1);
        station
            .make_request(
                &clerk,
                &NewRequest {
                    case: Some(&case),
                    clips: &[],
                    purpose: "复议审查",
                    form: ExportForm::Copy,
                    destination: "法制大队",
                    outside: false,
                    sensitive: false,
                },
            )
            .unwrap();
    }
}

/// Resident memory of this process now and at its peak, in MiB.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
            / 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A logged-in browser on the served page: its session cookie.
struct Browser {
    url: String,
    cookie: String,
    client: reqwest::blocking::Client,
}

impl Browser {
    /// Logs in as `login` through the login form.
    fn login(url: &str, login: &str) -> Self {
        let client = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let form = client.get(format!("{url}/login")).send().unwrap();
        let pre = cookie(&form, custody_station::LOGIN_COOKIE);
        let html = form.text().unwrap();
        let at = html.find("name=\"csrf\" value=\"").unwrap() + 19;
        let csrf = html[at..at + 64].to_owned();
        let r = client
            .post(format!("{url}/login"))
            .header(reqwest::header::COOKIE, pre)
            .form(&[
                ("login", login),
                ("password", PASSWORD),
                ("role", ""),
                ("csrf", &csrf),
            ])
            .send()
            .unwrap();
        assert_eq!(
            r.status(),
            reqwest::StatusCode::SEE_OTHER,
            "login of {login}"
        );
        Self {
            url: url.to_owned(),
            cookie: cookie(&r, custody_station::SESSION_COOKIE),
            client,
        }
    }

    /// Fetches `path` and reads the whole page; how long that took and its size.
    fn time(&self, path: &str) -> (Duration, usize) {
        let started = Instant::now();
        let r = self
            .client
            .get(format!("{}{path}", self.url))
            .header(reqwest::header::COOKIE, &self.cookie)
            .send()
            .unwrap();
        // A case number found redirects to its case view.
        let status = r.status();
        assert!(
            status == reqwest::StatusCode::OK || status == reqwest::StatusCode::SEE_OTHER,
            "{path}: {status}"
        );
        let body = r.bytes().unwrap();
        (started.elapsed(), body.len())
    }
}

fn cookie(r: &reqwest::blocking::Response, name: &str) -> String {
    r.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap().to_owned())
        .unwrap()
}

/// Percent-encodes everything but ASCII letters and digits.
fn enc(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn main() {
    let records: usize = env_or("CUSTODY_BENCH_RECORDS", 1_000_000);
    let rounds: usize = env_or("CUSTODY_BENCH_ROUNDS", 10);
    let keep = std::env::var_os("CUSTODY_BENCH_KEEP").is_some();
    let dir = PathBuf::from(format!("/dev/shm/custody-bench-web-{records}"));
    if !keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    std::fs::create_dir_all(&dir).unwrap();
    let station = station(&dir, records);
    let (rt, url) = serve(&station);

    let clips = (records * 10).div_ceil(11 * DEVICES);
    let cases = DEVICES * clips / 5;
    let (clerk, head, it, officer0, oversight) = (
        Browser::login(&url, "lisi"),
        Browser::login(&url, "head0"),
        Browser::login(&url, "wu"),
        Browser::login(&url, "officer0"),
        Browser::login(&url, "zhou"),
    );
    let middle = case_number(cases / 2);
    // Another spelling of the same number, as people type it.
    let typed = middle.replace('〔', "[").replace('〕', "]");
    let device = format!("X{:06}", DEVICES / 2);
    let request = station.ledger().requests().unwrap().last().unwrap().id;
    let pages: Vec<(&str, &Browser, String)> = vec![
        (
            "search: a case number, typed",
            &clerk,
            format!("/cases?case={}", enc(&typed)),
        ),
        (
            "search: an officer",
            &clerk,
            format!("/cases?officer={}", officer(DEVICES / 2, 0).1),
        ),
        (
            "search: a device on a day",
            &clerk,
            format!("/cases?device={device}&day=2026-06-15"),
        ),
        (
            "case view (clerk)",
            &clerk,
            format!("/cases/{}", enc(&middle)),
        ),
        (
            "case view (officer: own clips)",
            &officer0,
            format!("/cases/{}", enc(&case_number(1))),
        ),
        (
            "report: a device's year, page 1",
            &clerk,
            format!("/reports?device={device}"),
        ),
        (
            "report: a day, page 1",
            &clerk,
            "/reports?from=2026-06-15&to=2026-06-15".into(),
        ),
        (
            "report: a month, page 1",
            &clerk,
            "/reports?from=2026-06-01&to=2026-06-30".into(),
        ),
        (
            "report: a month, last page",
            &clerk,
            "/reports?from=2026-06-01&to=2026-06-30&page=100000".into(),
        ),
        ("fleet (IT)", &it, "/fleet".into()),
        ("approvals: the list", &head, "/requests".into()),
        (
            "approvals: one request",
            &head,
            format!("/requests/{request}"),
        ),
        ("log", &clerk, "/log".into()),
        ("access log (oversight), newest", &oversight, "/log".into()),
        ("dock", &it, "/dock".into()),
    ];
    println!(
        "{records} records, {cases} cases, {REQUESTS} requests, {VIEWS} case views logged; \
         {rounds} rounds per page"
    );
    measure(&pages, rounds);
    drop(rt);
    if !keep {
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// The web page of `station` on a free loopback port, served by its own runtime.
fn serve(station: &Arc<Station>) -> (tokio::runtime::Runtime, String) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    rt.spawn(custody_station::serve_web_on(
        Arc::clone(station),
        listener,
        None,
        false,
    ));
    (rt, url)
}

/// Fetches each page once to warm up, then `rounds` times, and prints the table.
fn measure(pages: &[(&str, &Browser, String)], rounds: usize) {
    let (rss_before, _) = memory();
    println!(
        "{:<34} {:>10} {:>10} {:>10}",
        "page", "median ms", "max ms", "KiB"
    );
    for (name, browser, path) in pages {
        browser.time(path);
        let mut times: Vec<Duration> = Vec::new();
        let mut size = 0;
        for _ in 0..rounds {
            let (took, n) = browser.time(path);
            times.push(took);
            size = n;
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{name:<34} {:>10.1} {:>10.1} {:>10}",
            ms(times[times.len() / 2]),
            ms(times[times.len() - 1]),
            size / 1024
        );
    }
    let (rss_after, peak) = memory();
    println!(
        "resident memory: {rss_before} MiB before the pages, {rss_after} MiB after, peak {peak} MiB"
    );
}
