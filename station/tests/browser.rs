//! The web page in a real browser: Debian's chromium, headless, driven over WebDriver by
//! chromedriver on a free loopback port (started and stopped here). An officer logs in
//! and watches a dock session reach 100 % live; opens the case and plays his clip (a real
//! MP4 made with FFmpeg, fetched by the browser in ranges); oversight finds that playback
//! in the access log; a clerk's own approval is refused; IT is refused footage.
//! Screenshots go to target/web-screenshots/ (look at them).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::too_many_lines,
    reason = "a test reports failure by panicking, and tells its story in order"
)]

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use custody::{AccessAction, BindingFact, Fact};
use custody_station::{AccessQuery, DockOptions};
use fantoccini::{Client, ClientBuilder, Locator};

mod agency;
use agency::{Agency, CASE, PASSWORD};

/// chromedriver on a free loopback port, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn chromedriver() -> Driver {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver is installed by scripts/setup (chromium-driver)");
    let driver = Driver { child, port };
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    driver
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,800",
                     "--autoplay-policy=no-user-gesture-required"],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a chromium session")
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/web-screenshots");
    fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

async fn login(c: &Client, url: &str, login: &str, role: &str) {
    c.goto(&format!("{url}/login")).await.unwrap();
    c.find(Locator::Id("login"))
        .await
        .unwrap()
        .send_keys(login)
        .await
        .unwrap();
    c.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    if !role.is_empty() {
        c.find(Locator::Css(&format!("#role option[value='{role}']")))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }
    c.find(Locator::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("header .who"))
        .await
        .unwrap();
}

async fn logout(c: &Client) {
    c.find(Locator::Css("header form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Id("login"))
        .await
        .unwrap();
}

/// A real MP4 (2 s of a test pattern) made with FFmpeg.
fn real_mp4(path: &Path) {
    let out = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc=duration=2:size=320x240:rate=25")
        .args(["-pix_fmt", "yuv420p", "-movflags", "+faststart"])
        .arg(path)
        .output()
        .expect("ffmpeg is installed by scripts/setup");
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn the_page_in_a_real_browser() {
    let ag = Agency::open();
    // 张三's recorder D100004 with a real MP4, bound to the case, docked.
    let root = ag.dir.path().join("dock/D");
    let mut dev =
        custody::testkit::SampleDevice::with_generated_clips(&root, "D100004", 0, 0).unwrap();
    fs::create_dir_all(root.join("DCIM/100MEDIA")).unwrap();
    real_mp4(&root.join("DCIM/100MEDIA/D100004_0001.MP4"));
    dev.seal_clip_edited("DCIM/100MEDIA/D100004_0001.MP4", |b| {
        b.officer.cert_no = "42060119001".into();
    })
    .unwrap();
    let first = dev.records().next().unwrap().hash();
    dev.add_fact(Fact::Binding(BindingFact {
        subject: first,
        case_number: CASE.into(),
        number: format!("{CASE}-视-009"),
    }))
    .unwrap();
    let pem = ag.dir.path().join("D100004.pem");
    fs::write(&pem, dev.public_key().to_pem()).unwrap();
    ag.station
        .enroll(
            "D100004",
            "ga947-recorder",
            &pem,
            &[("42060119001".into(), "张三".into())],
        )
        .unwrap();
    let station = Arc::new(ag.station);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    // Served as inside the daemon: the dock view follows the station's own progress board.
    rt.spawn(custody_station::serve_web_on(
        Arc::clone(&station),
        listener,
        None,
        true,
    ));
    let driver = chromedriver();
    let record = first.to_string();
    rt.block_on(async {
        let c = browser(&driver).await;
        // The officer at the dock: his slot's progress arrives live.
        login(&c, &url, "zhangsan", "").await;
        c.goto(&format!("{url}/dock?kiosk=1")).await.unwrap();
        let slot = station.progress().start("slot-3", "A100001", 4, 4_000_000);
        slot.bytes_done.store(2_000_000, Ordering::Relaxed);
        slot.clips_done.store(2, Ordering::Relaxed);
        c.wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css("tr[data-slot='slot-3'][data-percent='50']"))
            .await
            .unwrap();
        shot(&c, "01-dock-50").await;
        slot.bytes_done.store(4_000_000, Ordering::Relaxed);
        slot.clips_done.store(4, Ordering::Relaxed);
        c.wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css("tr[data-slot='slot-3'][data-percent='100']"))
            .await
            .unwrap();
        shot(&c, "02-dock-100").await;
        station.progress().finish("slot-3");
        // His recorder docks for real: when the session is over the page says so, and
        // that he may take it.
        let docking = Arc::clone(&station);
        let docked = tokio::task::spawn_blocking(move || {
            docking.ingest_slot(&root, &DockOptions::default())
        });
        c.wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Css("tr[data-ended='D'][data-complete='true']"))
            .await
            .unwrap();
        let done = c
            .find(Locator::Css("tr[data-ended='D']"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(done.contains("张三") && done.contains("回执已写入设备"), "{done}");
        shot(&c, "02b-dock-done").await;
        assert_eq!(docked.await.unwrap().unwrap().clips_verified, 1);

        // The case (any spelling) and the clip, played by the browser.
        c.goto(&format!("{url}/cases")).await.unwrap();
        c.find(Locator::Id("case"))
            .await
            .unwrap()
            .send_keys("襄环罚[2019]75号")
            .await
            .unwrap();
        c.find(Locator::Css("form button[type=submit]:not(header *)"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let link = c
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(&format!("a[href='/clips/{record}']")))
            .await
            .unwrap();
        let page = c.source().await.unwrap();
        assert!(page.contains("不属于您的视音频资料未列出"), "an officer sees his own clips only");
        shot(&c, "03-case").await;
        link.click().await.unwrap();
        c.wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Id("player"))
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let state = c
                .execute(
                    "const v = document.getElementById('player'); return [v.readyState, v.duration, v.error ? v.error.code : 0];",
                    vec![],
                )
                .await
                .unwrap();
            let ready = state[0].as_u64().unwrap_or(0);
            assert_eq!(state[2].as_u64(), Some(0), "the video failed to load: {state}");
            if ready >= 1 {
                let duration = state[1].as_f64().unwrap_or(0.0);
                assert!((1.5..3.0).contains(&duration), "{state}");
                break;
            }
            assert!(Instant::now() < deadline, "the video never loaded: {state}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        shot(&c, "04-playback").await;
        logout(&c).await;

        // Oversight finds the playback in the access log.
        login(&c, &url, "zhou", "").await;
        c.goto(&format!("{url}/log")).await.unwrap();
        let row = c
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css("#access tr[data-action='playback']"))
            .await
            .unwrap();
        assert!(row.text().await.unwrap().contains("张三"));
        shot(&c, "05-access-log").await;
        logout(&c).await;

        // The clerk asks, then tries to approve his own request: refused.
        login(&c, &url, "lisi", "").await;
        c.goto(&format!("{url}/requests")).await.unwrap();
        c.find(Locator::Id("case"))
            .await
            .unwrap()
            .send_keys(CASE)
            .await
            .unwrap();
        c.find(Locator::Id("purpose"))
            .await
            .unwrap()
            .send_keys("移送起诉")
            .await
            .unwrap();
        c.find(Locator::Id("destination"))
            .await
            .unwrap()
            .send_keys("某某区人民法院")
            .await
            .unwrap();
        c.find(Locator::Css("form.stack button[type=submit]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        c.wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css("#state[data-state='pending']"))
            .await
            .unwrap();
        shot(&c, "06-request").await;
        c.find(Locator::Id("approve"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let refused = c
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css("p.error"))
            .await
            .unwrap();
        assert!(refused.text().await.unwrap().contains("不能审批自己的申请"));
        shot(&c, "07-self-approval-refused").await;
        c.goto(&format!("{url}/")).await.unwrap();
        logout(&c).await;

        // IT: no 案件 in the menu, and the case's URL refused.
        login(&c, &url, "wu", "it").await;
        let nav = c.find(Locator::Css("header nav")).await.unwrap().text().await.unwrap();
        assert!(!nav.contains("案件"), "{nav}");
        c.goto(&format!("{url}/clips/{record}")).await.unwrap();
        let refused = c
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css("p.error"))
            .await
            .unwrap();
        assert!(refused.text().await.unwrap().contains("IT 管理员"));
        shot(&c, "08-it-refused").await;
        c.close().await.unwrap();
    });
    // The playback the browser made is in the ledger, as his, under no request.
    let plays: Vec<_> = station
        .ledger()
        .access_events(&AccessQuery::default())
        .unwrap()
        .into_iter()
        .filter(|e| e.fact.action == AccessAction::Playback)
        .collect();
    assert_eq!(plays.len(), 1, "one playback, however many ranges");
    assert_eq!(plays[0].fact.records, [first]);
    drop(driver);
}
