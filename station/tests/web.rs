//! The web page over HTTP, route by route: without a session nothing of the evidence
//! leaks (a redirect to the login page, or 401), each role gets what the CLI gives it
//! (IT no footage, an officer their own clips), a forged or missing CSRF token changes
//! nothing, playback serves the exact bytes in ranges after its access event, and when
//! that event cannot be written not one byte is served.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::too_many_lines,
    reason = "a test reports failure by panicking, and tells its story in order"
)]

use std::sync::Arc;

use custody::AccessAction;
use custody_station::{AccessQuery, Station};
use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

mod agency;
use agency::{Agency, CASE, PASSWORD};

/// The web page of a station, served on a free loopback port by its own runtime.
struct Served {
    url: String,
    _rt: tokio::runtime::Runtime,
}

fn serve(station: Arc<Station>) -> Served {
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
        station, listener, None, false,
    ));
    Served { url, _rt: rt }
}

/// A browser without a cookie jar: redirects not followed, cookies sent by hand.
fn client() -> Client {
    // reqwest is built without a TLS provider of its own: the station's ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The `name=value` of cookie `name` in a response's `Set-Cookie` headers.
fn set_cookie(r: &Response, name: &str) -> Option<String> {
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap().to_owned())
}

/// The value of the first hidden `csrf` field of a page.
fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a csrf field")
        + 19;
    html[at..at + 64].to_owned()
}

/// A logged-in browser: its session cookie and its forms' CSRF token.
struct Browser {
    cookie: String,
    csrf: String,
}

fn login(s: &Served, login: &str, role: &str) -> Browser {
    let c = client();
    let form = c.get(format!("{}/login", s.url)).send().unwrap();
    let pre = set_cookie(&form, custody_station::LOGIN_COOKIE).unwrap();
    let csrf = csrf_of(&form.text().unwrap());
    let r = c
        .post(format!("{}/login", s.url))
        .header(COOKIE, pre)
        .form(&[
            ("login", login),
            ("password", PASSWORD),
            ("role", role),
            ("csrf", &csrf),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "login of {login}");
    let set = r.headers().get_all(SET_COOKIE).iter().count();
    assert_eq!(set, 2, "the session cookie set, the login cookie cleared");
    let cookie = set_cookie(&r, custody_station::SESSION_COOKIE).unwrap();
    let raw: Vec<&str> = r
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert!(
        raw.iter()
            .any(|v| v.contains("HttpOnly") && v.contains("SameSite=Strict")),
        "{raw:?}"
    );
    let page = c
        .get(format!("{}/dock", s.url))
        .header(COOKIE, &cookie)
        .send()
        .unwrap()
        .text()
        .unwrap();
    Browser {
        csrf: csrf_of(&page),
        cookie,
    }
}

impl Browser {
    fn get(&self, s: &Served, path: &str) -> Response {
        client()
            .get(format!("{}{path}", s.url))
            .header(COOKIE, &self.cookie)
            .send()
            .unwrap()
    }

    fn post(&self, s: &Served, path: &str, form: &[(&str, &str)]) -> Response {
        client()
            .post(format!("{}{path}", s.url))
            .header(COOKIE, &self.cookie)
            .form(form)
            .send()
            .unwrap()
    }
}

/// The clerk's request for a copy of the whole case.
fn case_copy_request(ag: &Agency) -> u64 {
    ag.request_form(
        &ag.login("lisi", None),
        true,
        &[],
        (false, false),
        custody::ExportForm::Copy,
    )
}

fn case_path() -> String {
    format!("/cases/{}", urlencode(CASE))
}

fn urlencode(text: &str) -> String {
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

#[test]
fn no_route_serves_evidence_without_a_session() {
    let ag = Agency::open();
    let a1 = ag.clip_a1();
    let id = case_copy_request(&ag);
    let station = Arc::new(ag.station);
    let s = serve(Arc::clone(&station));
    let c = client();
    for path in [
        "/".to_owned(),
        "/dock".into(),
        "/cases".into(),
        format!("/cases?case={}", urlencode(CASE)),
        case_path(),
        format!("/clips/{a1}"),
        "/requests".into(),
        format!("/requests/{id}"),
        format!("/requests/{id}/download"),
        "/log".into(),
        format!("/reports?case={}", urlencode(CASE)),
        format!("/reports?case={}&download=json", urlencode(CASE)),
        "/fleet".into(),
        "/discs".into(),
    ] {
        let r = c.get(format!("{}{path}", s.url)).send().unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(r.headers()[LOCATION], "/login", "{path}");
        assert!(r.text().unwrap().is_empty(), "{path}");
    }
    for path in [
        format!("/clips/{a1}/media"),
        "/dock/events".into(),
        "/discs/events".into(),
    ] {
        let r = c.get(format!("{}{path}", s.url)).send().unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert!(r.bytes().unwrap().is_empty(), "{path}");
    }
    // Forms without a session change nothing, whatever token they carry.
    for path in [
        "/requests".to_owned(),
        format!("/requests/{id}/decide"),
        format!("/requests/{id}/export"),
        "/logout".into(),
    ] {
        let r = c
            .post(format!("{}{path}", s.url))
            .form(&[
                ("csrf", "0".repeat(64).as_str()),
                ("decision", "approve"),
                ("purpose", "x"),
                ("form", "copy"),
                ("destination", "x"),
                ("case", CASE),
            ])
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
    }
    assert_eq!(station.requests().unwrap().len(), 1);
    assert!(station.request_status(id).unwrap().decisions.is_empty());
    // Content-free routes are public: the checkpoint for outside verifiers, the assets.
    let cp = c.get(format!("{}/log/checkpoint", s.url)).send().unwrap();
    assert_eq!(cp.status(), StatusCode::OK);
    assert!(cp.text().unwrap().starts_with("test.example/station-01\n"));
    let js = c
        .get(format!("{}/assets/htmx.min.js", s.url))
        .send()
        .unwrap();
    assert_eq!(js.status(), StatusCode::OK);
    assert!(js.text().unwrap().contains("htmx"));
    // A wrong password: the form again, 401, and no session cookie.
    let form = c.get(format!("{}/login", s.url)).send().unwrap();
    let pre = set_cookie(&form, custody_station::LOGIN_COOKIE).unwrap();
    let csrf = csrf_of(&form.text().unwrap());
    let r = c
        .post(format!("{}/login", s.url))
        .header(COOKIE, &pre)
        .form(&[
            ("login", "lisi"),
            ("password", "wrong-password!"),
            ("csrf", &csrf),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(&r, custody_station::SESSION_COOKIE).is_none());
    // A forged login token: refused before the password is looked at.
    let r = c
        .post(format!("{}/login", s.url))
        .header(COOKIE, &pre)
        .form(&[
            ("login", "lisi"),
            ("password", PASSWORD),
            ("csrf", &"f".repeat(64)),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[test]
fn the_dock_opens_without_a_login_on_the_station_s_own_screen_only_when_configured() {
    use std::io::Read as _;
    let dir = tempfile::tempdir().unwrap();
    let numbering =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/numbering.example.toml");
    let text = format!(
        "dock-root = \"dock\"\ndata-dir = \"data\"\norigin = \"test.example/station-01\"\n\
         reserve-bytes = 0\nnumbering = \"{}\"\n\n[web]\nlisten = \"127.0.0.1:8080\"\n\
         dock-without-login = true\n",
        numbering.display()
    );
    let cfg =
        custody_station::StationConfig::parse(&text, &dir.path().join("station.toml")).unwrap();
    assert!(cfg.web.as_ref().unwrap().dock_without_login);
    let s = serve(Arc::new(Station::open(cfg).unwrap()));
    let c = client();
    // This test's client is on the station itself: the progress page, with no way into
    // the rest and nobody named.
    let r = c.get(format!("{}/dock?kiosk=1", s.url)).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().unwrap();
    assert!(
        html.contains("没有正在采集的设备") && html.contains("href=\"/login\""),
        "{html}"
    );
    assert!(
        !html.contains("href=\"/cases\"") && !html.contains("退出"),
        "{html}"
    );
    let mut live = c.get(format!("{}/dock/events", s.url)).send().unwrap();
    assert_eq!(live.status(), StatusCode::OK);
    let mut first = Vec::new();
    let mut buf = [0u8; 512];
    while !String::from_utf8_lossy(&first).contains("\n\n") {
        let n = live.read(&mut buf).unwrap();
        assert!(n > 0, "the stream ended");
        first.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&first).starts_with("event: slots\n"));
    // Everything else still needs a login.
    for path in ["/cases", "/fleet", "/log", "/requests"] {
        let r = c.get(format!("{}{path}", s.url)).send().unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
    }
}

#[test]
fn each_role_gets_what_its_rights_allow_and_forms_need_their_csrf_token() {
    let ag = Agency::open();
    let (a1, a2) = (ag.clip_a1(), ag.clip_a2());
    let station = Arc::new(ag.station);
    let s = serve(Arc::clone(&station));
    // IT: the dock and the log, no case, no clip, no requests.
    let it = login(&s, "wu", "it");
    assert_eq!(it.get(&s, "/").headers()[LOCATION], "/dock");
    assert_eq!(it.get(&s, "/dock").status(), StatusCode::OK);
    assert_eq!(it.get(&s, &case_path()).status(), StatusCode::FORBIDDEN);
    assert_eq!(
        it.get(&s, &format!("/clips/{a1}")).status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        it.get(&s, &format!("/clips/{a1}/media")).status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(it.get(&s, "/requests").status(), StatusCode::FORBIDDEN);
    let found = it.get(&s, "/cases?device=A100001");
    assert_eq!(found.status(), StatusCode::FORBIDDEN);
    let log = it.get(&s, "/log").text().unwrap();
    assert!(log.contains("最新检查点") && !log.contains("访问日志"));
    // An officer: the case shows his clip only; he plays his own, not another's.
    let zhangsan = login(&s, "zhangsan", "");
    let case = zhangsan.get(&s, &case_path());
    assert_eq!(case.status(), StatusCode::OK);
    let html = case.text().unwrap();
    assert!(html.contains(&format!("/clips/{a1}")), "{html}");
    assert!(
        html.contains("另有 2 个不属于您的视音频资料未列出"),
        "{html}"
    );
    assert_eq!(
        zhangsan.get(&s, &format!("/clips/{a1}")).status(),
        StatusCode::OK
    );
    let wangwu = login(&s, "wangwu", "");
    assert_eq!(
        wangwu.get(&s, &format!("/clips/{a1}")).status(),
        StatusCode::FORBIDDEN
    );
    // His search finds his own clips only, and is an access event.
    let mine = zhangsan.get(&s, "/cases?device=A100001").text().unwrap();
    assert!(mine.contains("共 2 个视音频"), "{mine}");
    let theirs = zhangsan.get(&s, "/cases?device=B100002").text().unwrap();
    assert!(theirs.contains("共 0 个视音频"), "{theirs}");
    // A case number in any spelling opens the case.
    let r = zhangsan.get(
        &s,
        "/cases?case=%E8%A5%84%E7%8E%AF%E7%BD%9A%5B2019%5D75%E5%8F%B7",
    );
    assert_eq!(r.headers()[LOCATION], case_path().as_str());

    // The clerk asks for a copy through the form: a forged or missing token makes nothing.
    let clerk = login(&s, "lisi", "");
    let fields = |csrf: &str| -> Vec<(String, String)> {
        [
            ("csrf", csrf),
            ("clips", &a2),
            ("purpose", "复核"),
            ("form", "copy"),
            ("destination", "法制大队"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    };
    let as_refs = |v: &[(String, String)]| -> Vec<(String, String)> { v.to_vec() };
    let forged = client()
        .post(format!("{}/requests", s.url))
        .header(COOKIE, &clerk.cookie)
        .form(&as_refs(&fields(&"0".repeat(64))))
        .send()
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let missing = client()
        .post(format!("{}/requests", s.url))
        .header(COOKIE, &clerk.cookie)
        .form(&[
            ("clips", a2.as_str()),
            ("purpose", "复核"),
            ("form", "copy"),
            ("destination", "x"),
        ])
        .send()
        .unwrap();
    assert!(missing.status().is_client_error(), "{}", missing.status());
    // Another person's token does not pass either.
    let other = client()
        .post(format!("{}/requests", s.url))
        .header(COOKIE, &clerk.cookie)
        .form(&as_refs(&fields(&zhangsan.csrf)))
        .send()
        .unwrap();
    assert_eq!(other.status(), StatusCode::FORBIDDEN);
    assert!(station.requests().unwrap().is_empty());
    let made = client()
        .post(format!("{}/requests", s.url))
        .header(COOKIE, &clerk.cookie)
        .form(&as_refs(&fields(&clerk.csrf)))
        .send()
        .unwrap();
    assert_eq!(made.status(), StatusCode::SEE_OTHER);
    let id = station.requests().unwrap()[0].id;
    assert_eq!(made.headers()[LOCATION], format!("/requests/{id}").as_str());
    // Self-approval through the page: refused.
    let own = clerk.post(
        &s,
        &format!("/requests/{id}/decide"),
        &[
            ("csrf", &clerk.csrf),
            ("decision", "approve"),
            ("days", "7"),
        ],
    );
    assert_eq!(own.status(), StatusCode::FORBIDDEN);
    assert!(own.text().unwrap().contains("不能审批自己的申请"));
    // The head approves with his token; with the clerk's token he cannot.
    let zhao = login(&s, "zhao", "");
    let stolen = zhao.post(
        &s,
        &format!("/requests/{id}/decide"),
        &[
            ("csrf", &clerk.csrf),
            ("decision", "approve"),
            ("days", "7"),
        ],
    );
    assert_eq!(stolen.status(), StatusCode::FORBIDDEN);
    let ok = zhao.post(
        &s,
        &format!("/requests/{id}/decide"),
        &[("csrf", &zhao.csrf), ("decision", "approve"), ("days", "7")],
    );
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    let page = clerk.get(&s, &format!("/requests/{id}")).text().unwrap();
    assert!(page.contains("data-state=\"approved\""), "{page}");
    let exported = clerk.post(
        &s,
        &format!("/requests/{id}/export"),
        &[("csrf", &clerk.csrf)],
    );
    assert_eq!(exported.status(), StatusCode::OK);
    let html = exported.text().unwrap();
    assert!(html.contains("已导出 1 个视音频"), "{html}");
    // The copy leaves as a download of its image: the requester's alone, each download
    // logged before a byte goes.
    let link = format!("/requests/{id}/download");
    assert!(html.contains(&format!("href=\"{link}\"")), "{html}");
    assert_eq!(zhao.get(&s, &link).status(), StatusCode::FORBIDDEN);
    let got = clerk.get(&s, &link);
    assert_eq!(got.status(), StatusCode::OK);
    assert!(
        got.headers()[reqwest::header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .contains(&format!("RQ{id:06}.iso"))
    );
    let bytes = got.bytes().unwrap();
    let kept = std::fs::read(
        station
            .config()
            .data_dir
            .join(format!("exports/RQ{id:06}.iso")),
    )
    .unwrap();
    assert!(bytes[..] == kept[..], "the image as the station wrote it");
    assert_eq!(&bytes[32769..32774], b"CD001", "an ISO 9660 image");
    let downloads = station
        .ledger()
        .access_events(&AccessQuery {
            request: Some(id),
            ..AccessQuery::default()
        })
        .unwrap()
        .into_iter()
        .filter(|e| e.fact.action == AccessAction::Download)
        .count();
    assert_eq!(downloads, 1);
    // Oversight reads the access log on the page.
    let zhou = login(&s, "zhou", "");
    let log = zhou.get(&s, "/log").text().unwrap();
    assert!(log.contains("data-action=\"export\"") && log.contains("data-action=\"search\""));
    // After logout the cookie opens nothing.
    let out = clerk.post(&s, "/logout", &[("csrf", &clerk.csrf)]);
    assert_eq!(out.headers()[LOCATION], "/login");
    assert_eq!(clerk.get(&s, &case_path()).status(), StatusCode::SEE_OTHER);
}

/// A form posted as someone: who, where, and its fields but the token.
type FormPost<'a> = (&'a Browser, String, Vec<(&'a str, &'a str)>);

#[test]
fn every_form_refuses_a_forged_or_missing_csrf_token_and_changes_nothing() {
    let ag = Agency::open();
    let id = case_copy_request(&ag);
    let station = Arc::new(ag.station);
    let s = serve(Arc::clone(&station));
    let clerk = login(&s, "lisi", "");
    let zhao = login(&s, "zhao", "");
    let events_before = station
        .ledger()
        .access_events(&AccessQuery::default())
        .unwrap()
        .len();
    let forms: Vec<FormPost<'_>> = vec![
        (
            &clerk,
            "/requests".into(),
            vec![
                ("case", CASE),
                ("purpose", "x"),
                ("form", "copy"),
                ("destination", "x"),
            ],
        ),
        (
            &zhao,
            format!("/requests/{id}/decide"),
            vec![("decision", "approve"), ("days", "7")],
        ),
        (&clerk, format!("/requests/{id}/export"), vec![]),
        (
            &clerk,
            "/discs/build".into(),
            vec![("case", CASE), ("media", "cd")],
        ),
        (
            &clerk,
            "/discs/burn".into(),
            vec![("volume", "AJ20190075S1D01"), ("drive", "stdio:/tmp/x")],
        ),
        (
            &clerk,
            "/discs/verify".into(),
            vec![("volume", "AJ20190075S1D01")],
        ),
        (&clerk, "/logout".into(), vec![]),
    ];
    let zeros = "0".repeat(64);
    for (who, path, fields) in &forms {
        let forged: Vec<(&str, &str)> = fields
            .iter()
            .copied()
            .chain([("csrf", zeros.as_str())])
            .collect();
        let r = who.post(&s, path, &forged);
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "forged token: {path}");
        let r = who.post(&s, path, fields);
        assert!(
            r.status().is_client_error(),
            "no token: {path}: {}",
            r.status()
        );
        // Another person's token is no better.
        let other = if who.cookie == clerk.cookie {
            &zhao
        } else {
            &clerk
        };
        let stolen: Vec<(&str, &str)> = fields
            .iter()
            .copied()
            .chain([("csrf", other.csrf.as_str())])
            .collect();
        let r = who.post(&s, path, &stolen);
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "another's token: {path}");
    }
    assert_eq!(station.requests().unwrap().len(), 1, "no request made");
    assert!(station.request_status(id).unwrap().decisions.is_empty());
    assert!(
        station.ledger().all_discs().unwrap().is_empty(),
        "no disc built"
    );
    assert_eq!(
        station
            .ledger()
            .access_events(&AccessQuery::default())
            .unwrap()
            .len(),
        events_before,
        "nothing done, nothing logged"
    );
    assert_eq!(
        clerk.get(&s, "/cases").status(),
        StatusCode::OK,
        "not logged out"
    );
}

#[test]
fn playback_serves_ranges_after_its_access_event_and_nothing_when_it_cannot_be_written() {
    let ag = Agency::open();
    let a1 = ag.clip_a1();
    let recorded = std::fs::read(ag.a.root.join("DCIM/100MEDIA/A100001_0001.MP4")).unwrap();
    let db_path = ag.dir.path().join("data/ledger.sqlite");
    let station = Arc::new(ag.station);
    let s = serve(Arc::clone(&station));
    let zhangsan = login(&s, "zhangsan", "");
    let events = |station: &Station| {
        station
            .ledger()
            .access_events(&AccessQuery::default())
            .unwrap()
            .into_iter()
            .filter(|e| e.fact.action == AccessAction::Playback)
            .count()
    };
    // Media fetched directly: the playback event first, then the bytes, in ranges.
    let whole = zhangsan.get(&s, &format!("/clips/{a1}/media"));
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(whole.bytes().unwrap().as_ref(), recorded.as_slice());
    assert_eq!(events(&station), 1);
    let part = client()
        .get(format!("{}/clips/{a1}/media", s.url))
        .header(COOKIE, &zhangsan.cookie)
        .header("range", "bytes=100-199")
        .send()
        .unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 100-199/{}", recorded.len()).as_str()
    );
    assert_eq!(part.bytes().unwrap().as_ref(), &recorded[100..200]);
    let beyond = client()
        .get(format!("{}/clips/{a1}/media", s.url))
        .header(COOKIE, &zhangsan.cookie)
        .header("range", format!("bytes={}-", recorded.len()))
        .send()
        .unwrap();
    assert_eq!(beyond.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(events(&station), 1, "ranges of one playback: one event");

    // The ledger refuses access events: another officer's session gets no byte.
    let db = rusqlite::Connection::open(&db_path).unwrap();
    db.execute_batch(
        "CREATE TRIGGER refuse_access BEFORE INSERT ON access_events
         BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
    )
    .unwrap();
    let again = login_fails_closed(&s);
    assert!(again, "no login while the ledger refuses events");
    db.execute_batch("DROP TRIGGER refuse_access;").unwrap();
    let fresh = login(&s, "zhangsan", "");
    db.execute_batch(
        "CREATE TRIGGER refuse_access BEFORE INSERT ON access_events
         BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
    )
    .unwrap();
    let refused = fresh.get(&s, &format!("/clips/{a1}/media"));
    assert!(refused.status().is_client_error(), "{}", refused.status());
    let body = refused.bytes().unwrap();
    assert!(
        !body
            .windows(16)
            .any(|w| recorded.windows(16).next() == Some(w)),
        "no clip byte without its event"
    );
    assert_eq!(events(&station), 1);
    assert!(fresh.get(&s, &case_path()).status().is_client_error());
}

/// Whether a login is refused while the ledger refuses access events (the login event
/// cannot be written, so there is no session).
fn login_fails_closed(s: &Served) -> bool {
    let c = client();
    let form = c.get(format!("{}/login", s.url)).send().unwrap();
    let pre = set_cookie(&form, custody_station::LOGIN_COOKIE).unwrap();
    let csrf = csrf_of(&form.text().unwrap());
    let r = c
        .post(format!("{}/login", s.url))
        .header(COOKIE, pre)
        .form(&[
            ("login", "zhangsan"),
            ("password", PASSWORD),
            ("csrf", &csrf),
        ])
        .send()
        .unwrap();
    r.status() == StatusCode::UNAUTHORIZED
        && set_cookie(&r, custody_station::SESSION_COOKIE).is_none()
}

#[test]
fn reports_come_a_page_at_a_time_with_the_whole_as_a_download_and_it_sees_the_fleet() {
    let ag = Agency::open();
    // A device with 120 clips, so a report runs to two pages.
    let many = custody::testkit::SampleDevice::with_generated_clips(
        &ag.dir.path().join("dock/M"),
        "M100009",
        120,
        10,
    )
    .unwrap();
    let pem = ag.dir.path().join("M100009.pem");
    std::fs::write(&pem, many.public_key().to_pem()).unwrap();
    ag.station
        .enroll(
            "M100009",
            "ga947-recorder",
            &pem,
            &[("42060119001".into(), "张三".into())],
        )
        .unwrap();
    ag.station
        .ingest_slot(&many.root, &custody_station::DockOptions::default())
        .unwrap();
    let station = Arc::new(ag.station);
    let s = serve(Arc::clone(&station));
    // Officers and IT get no reports.
    for (who, role) in [("zhangsan", ""), ("wu", "it")] {
        let b = login(&s, who, role);
        assert_eq!(
            b.get(&s, "/reports?device=M100009").status(),
            StatusCode::FORBIDDEN,
            "{who}"
        );
    }
    let clerk = login(&s, "lisi", "");
    let first = clerk.get(&s, "/reports?device=M100009").text().unwrap();
    assert!(
        first.contains("data-page=\"0\" data-pages=\"2\""),
        "{first}"
    );
    assert_eq!(
        first.matches("M100009-").count(),
        custody_station::REPORT_PAGE
    );
    let second = clerk
        .get(&s, "/reports?device=M100009&page=1")
        .text()
        .unwrap();
    assert_eq!(
        second.matches("M100009-").count(),
        120 - custody_station::REPORT_PAGE
    );
    let json: serde_json::Value = serde_json::from_slice(
        &clerk
            .get(&s, "/reports?device=M100009&download=json")
            .bytes()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(json["clips"].as_array().unwrap().len(), 120);
    let html = clerk.get(&s, "/reports?device=M100009&download=html");
    assert_eq!(
        html.headers()["content-disposition"],
        "attachment; filename=\"report.html\""
    );
    // Each report is an access event naming its terms.
    let reports = station
        .ledger()
        .access_events(&AccessQuery::default())
        .unwrap()
        .into_iter()
        .filter(|e| e.fact.action == AccessAction::Report)
        .count();
    assert_eq!(reports, 4);
    // IT's fleet view: every device, and the ratio to officers.
    let it = login(&s, "wu", "it");
    let fleet = it.get(&s, "/fleet").text().unwrap();
    assert_eq!(fleet.matches("data-serial=").count(), 4, "{fleet}");
    assert!(fleet.contains("data-enough=\"true\""), "{fleet}");
}

#[test]
fn records_staff_build_burn_and_verify_a_disc_from_the_page() {
    let ag = Agency::open();
    let drive = ag.dir.path().join("drive-sr0.bin");
    let slow_drive = ag.dir.path().join("drive-sr1");
    let station = Arc::new(ag.station);
    let s = serve(Arc::clone(&station));
    assert_eq!(
        login(&s, "zhangsan", "").get(&s, "/discs").status(),
        StatusCode::FORBIDDEN
    );
    // IT sees the discs but does not build them.
    let it = login(&s, "wu", "it");
    assert_eq!(it.get(&s, "/discs").status(), StatusCode::OK);
    let refused = it.post(
        &s,
        "/discs/build",
        &[("csrf", &it.csrf), ("case", CASE), ("media", "cd")],
    );
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let clerk = login(&s, "lisi", "");
    let built = clerk.post(
        &s,
        "/discs/build",
        &[("csrf", &clerk.csrf), ("case", CASE), ("media", "cd")],
    );
    assert_eq!(built.status(), StatusCode::OK);
    let html = built.text().unwrap();
    assert!(html.contains("已制作 1 张"), "{html}");
    let volume = "AJ20190075S1D01";
    let burned = clerk.post(
        &s,
        "/discs/burn",
        &[
            ("csrf", &clerk.csrf),
            ("volume", volume),
            ("drive", &format!("stdio:{}", drive.display())),
        ],
    );
    let html = burned.text().unwrap();
    assert!(html.contains("written and read back the same"), "{html}");
    let verified = it.post(
        &s,
        "/discs/verify",
        &[("csrf", &it.csrf), ("volume", volume), ("drive", "")],
    );
    let html = verified.text().unwrap();
    assert!(html.contains("data-intact=\"true\""), "{html}");
    // A volume id that is a path is refused.
    let sneaky = clerk.post(
        &s,
        "/discs/verify",
        &[
            ("csrf", &clerk.csrf),
            ("volume", "../../etc/passwd"),
            ("drive", ""),
        ],
    );
    assert!(sneaky.status().is_client_error());
    let view = station.case_view(
        &station
            .login(
                "lisi",
                custody_station::Credential::Password(PASSWORD),
                None,
            )
            .unwrap(),
        CASE,
    );
    assert!(view.unwrap().archived, "burned and checked: archived");
    // A burn that outlasts its form (a drive that takes its time: a FIFO nobody reads
    // yet) goes on in the background: the page shows it under way, then how it ended.
    nix::unistd::mkfifo(&slow_drive, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let slow = clerk.post(
        &s,
        "/discs/burn",
        &[
            ("csrf", &clerk.csrf),
            ("volume", volume),
            ("drive", &format!("stdio:{}", slow_drive.display())),
        ],
    );
    assert_eq!(slow.status(), StatusCode::SEE_OTHER);
    assert_eq!(slow.headers()[LOCATION], "/discs");
    let html = clerk.get(&s, "/discs").text().unwrap();
    assert!(html.contains(&format!("刻录 {volume}")), "{html}");
    // The drive takes the image, then reads nothing back.
    let written = std::fs::read(&slow_drive).unwrap();
    let image = station
        .config()
        .data_dir
        .join(format!("discs/{volume}.iso"));
    assert!(written.len() as u64 >= std::fs::metadata(image).unwrap().len());
    drop(
        std::fs::OpenOptions::new()
            .write(true)
            .open(&slow_drive)
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_mins(1);
    let html = loop {
        let html = clerk.get(&s, "/discs").text().unwrap();
        if html.contains("id=\"burned\"") {
            break html;
        }
        assert!(std::time::Instant::now() < deadline, "no outcome: {html}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(html.contains("holds 0 bytes"), "{html}");
    assert!(
        !html.contains(&format!("刻录 {volume}")),
        "no longer under way"
    );
    // Shown once.
    let again = clerk.get(&s, "/discs").text().unwrap();
    assert!(!again.contains("id=\"burned\""), "{again}");
}
