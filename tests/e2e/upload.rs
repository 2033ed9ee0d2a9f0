//! A terminal with a network uploads to the station's real HTTPS endpoint: the link
//! breaks mid-clip (a TCP relay cuts it), the next upload continues from what the station
//! holds, the station ingests through the dock pipeline, and the receipt frees the clips
//! on the terminal. A terminal signing with a key IT did not enrol is refused.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use custody_agent::AgentConfig;
use custody_station::{ClipStatus, Station, StationConfig};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::util::{certificates, free_port};

const SERIAL: &str = "H200001";

/// A TCP relay to `to` that cuts the connection once `cut_after` bytes went upstream: a
/// network link lost in the middle of an upload.
async fn breaking_relay(to: u16, cut_after: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut budget = cut_after;
        while let Ok((client, _)) = listener.accept().await {
            let upstream = TcpStream::connect(("127.0.0.1", to)).await.unwrap();
            let (mut cr, mut cw) = client.into_split();
            let (mut ur, mut uw) = upstream.into_split();
            let down = tokio::spawn(async move { tokio::io::copy(&mut ur, &mut cw).await });
            let mut buf = vec![0; 64 << 10];
            loop {
                let n = cr.read(&mut buf).await.unwrap_or(0);
                if n == 0 || n > budget {
                    break;
                }
                budget -= n;
                if uw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            down.abort();
            if budget < buf.len() {
                return; // the link is gone
            }
        }
    });
    port
}

/// A station with its HTTPS upload endpoint on a free port (certificates from a test CA).
fn start_station(dir: &Path) -> (Arc<Station>, u16) {
    certificates(dir);
    let port = free_port();
    fs::write(
        dir.join("station.toml"),
        format!(
            "dock-root = \"dock\"\ndata-dir = \"data\"\norigin = \"test.example/station-01\"\n\
             reserve-bytes = 0\n[upload]\nlisten = \"127.0.0.1:{port}\"\n\
             cert = \"station.pem\"\nkey = \"station.key\"\n"
        ),
    )
    .unwrap();
    let cfg = StationConfig::load(&dir.join("station.toml")).unwrap();
    let upload = cfg.upload.clone().unwrap();
    let station = Arc::new(Station::open(cfg).unwrap());
    let tls = custody_station::tls_config(&upload.cert, &upload.key).unwrap();
    tokio::spawn(custody_station::serve_uploads(
        Arc::clone(&station),
        upload.listen,
        tls,
        upload.limits,
    ));
    (station, port)
}

fn enroll_terminal(station: &Station, dir: &Path, agent: &AgentConfig) {
    let pem = dir.join("terminal.pem");
    let (key, _) = custody_agent::keystore::load_or_create(&agent.state_dir).unwrap();
    fs::write(&pem, key.public_key().to_pem()).unwrap();
    station
        .enroll(
            SERIAL,
            "ga947-recorder",
            &pem,
            &[("42060119001".into(), "张三".into())],
        )
        .unwrap();
}

fn agent_config(dir: &Path, state: &str, url: &str, vkey: &str) -> AgentConfig {
    let config = dir.join(format!("agent-{state}.toml"));
    fs::write(
        &config,
        format!(
            "serial = \"{SERIAL}\"\nhw-profile = \"ga947-recorder\"\nstorage = \"storage\"\n\
             state-dir = \"{state}\"\n[officer]\nname = \"张三\"\ncert-no = \"42060119001\"\n\
             [agency]\ncode = \"420600\"\nname = \"襄阳市生态环境局\"\n\
             [station]\nvkey = \"{vkey}\"\n[upload]\nurl = \"{url}\"\nca = \"ca.pem\"\n"
        ),
    )
    .unwrap();
    AgentConfig::load(&config).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_upload_resumes_and_its_receipt_frees_the_clips() {
    let dir = tempfile::tempdir().unwrap();
    let (station, port) = start_station(dir.path());
    let vkey = station.verifier().to_string();

    // The terminal seals two clips (24 MiB and 3 MiB).
    let direct = format!("https://127.0.0.1:{port}");
    let agent = agent_config(dir.path(), "state", &direct, &vkey);
    let rec = agent.recording_dir();
    fs::create_dir_all(&rec).unwrap();
    for (name, mib) in [("H200001_0001.MP4", 24usize), ("H200001_0002.MP4", 3)] {
        let bytes: Vec<u8> = (0..mib << 20)
            .map(|i| u8::try_from((i + mib) % 251).unwrap())
            .collect();
        fs::write(rec.join(format!("{name}.part")), bytes).unwrap();
        fs::rename(rec.join(format!("{name}.part")), rec.join(name)).unwrap();
    }
    // A file the protocol cannot name (a space): skipped and kept, the rest goes.
    fs::write(rec.join("odd name.MP4"), b"odd").unwrap();
    let mut sealer = custody_agent::Sealer::load(agent.clone()).unwrap();
    assert_eq!(sealer.scan().unwrap().len(), 3);
    drop(sealer);
    enroll_terminal(&station, dir.path(), &agent);

    // A terminal with another key under this serial is refused, and nothing is ingested.
    let impostor = agent_config(dir.path(), "impostor", &direct, &vkey);
    let err = custody_agent::upload_once(impostor).await.unwrap_err();
    assert!(format!("{err:#}").contains("401"), "{err:#}");

    // The link breaks 13 MiB into the first clip.
    let relay = breaking_relay(port, 13 << 20).await;
    let flaky = agent_config(
        dir.path(),
        "state",
        &format!("https://127.0.0.1:{relay}"),
        &vkey,
    );
    let err = custody_agent::upload_once(flaky).await.unwrap_err();
    assert!(!format!("{err:#}").is_empty());
    let clip1 = agent.storage.join("DCIM/100MEDIA/H200001_0001.MP4");
    assert!(clip1.exists(), "nothing is freed without a receipt");

    // Next time it continues where the station's disk stands.
    let (sent, inbox) = custody_agent::upload_once(agent.clone()).await.unwrap();
    let total = 27u64 << 20;
    assert!(sent.bytes_resumed >= 8 << 20, "{sent:?}");
    assert!(sent.bytes_sent < total, "{sent:?}");
    assert!(sent.receipt.is_some(), "{sent:?}");
    assert_eq!(sent.skipped, ["DCIM/100MEDIA/odd name.MP4"], "{sent:?}");
    assert_eq!(inbox.freed.len(), 2, "{inbox:?}");
    assert!(!clip1.exists(), "the receipted clip is freed");
    assert!(rec.join("odd name.MP4").exists(), "what was not sent stays");
    // The station's upload folder keeps no copy of what its store holds.
    let staged = dir.path().join("data/uploads").join(SERIAL);
    assert!(!staged.join("DCIM/100MEDIA/H200001_0001.MP4").exists());
    assert!(
        staged
            .join("custody/devices")
            .join(SERIAL)
            .join("device.pub.pem")
            .exists()
    );
    // The station holds both clips, verified, in its ledger and store.
    let report = custody_station::Report::build(
        &station.ledger(),
        "test.example/station-01",
        &custody_station::ReportQuery::default(),
        station.config().utc_offset,
        chrono::Utc::now(),
    )
    .unwrap();
    let status: Vec<(&str, ClipStatus)> = report
        .clips
        .iter()
        .map(|c| (c.file.as_str(), c.status))
        .collect();
    assert_eq!(
        status,
        [
            ("DCIM/100MEDIA/H200001_0001.MP4", ClipStatus::Verified),
            ("DCIM/100MEDIA/H200001_0002.MP4", ClipStatus::Verified),
            // Its record came, its file could not: reported missing, kept on the terminal.
            ("DCIM/100MEDIA/odd name.MP4", ClipStatus::Missing),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_run_loop_uploads_sealed_clips_on_its_own_and_the_receipt_frees_them() {
    let dir = tempfile::tempdir().unwrap();
    let (station, port) = start_station(dir.path());
    let vkey = station.verifier().to_string();
    let agent = agent_config(
        dir.path(),
        "state",
        &format!("https://127.0.0.1:{port}"),
        &vkey,
    );
    enroll_terminal(&station, dir.path(), &agent);
    let rec = agent.recording_dir();
    fs::create_dir_all(&rec).unwrap();
    let clip = |n: u8| -> Vec<u8> {
        (0..2 << 20)
            .map(|i| u8::try_from((i + usize::from(n)) % 251).unwrap())
            .collect()
    };
    fs::write(rec.join("H200001_0001.MP4.part"), clip(1)).unwrap();
    fs::rename(
        rec.join("H200001_0001.MP4.part"),
        rec.join("H200001_0001.MP4"),
    )
    .unwrap();
    // The next segment is still being recorded.
    fs::write(rec.join("H200001_0002.MP4.part"), clip(2)).unwrap();

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(custody_agent::run(agent.clone(), async {
        let _ = stopped.await;
    }));
    let freed = |name: &'static str| {
        let path = rec.join(name);
        async move {
            for _ in 0..300 {
                if !path.exists() {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            panic!("{name} was not uploaded and freed within 30 s");
        }
    };
    freed("H200001_0001.MP4").await;
    assert!(
        rec.join("H200001_0002.MP4.part").exists(),
        "a recording is not touched"
    );
    let report = |station: &Station| {
        custody_station::Report::build(
            &station.ledger(),
            "test.example/station-01",
            &custody_station::ReportQuery::default(),
            station.config().utc_offset,
            chrono::Utc::now(),
        )
        .unwrap()
    };
    let first = report(&station);
    assert_eq!(
        (first.clips.len(), first.unattested.len()),
        (1, 0),
        "only the sealed clip went"
    );

    // The segment closes: sealed, uploaded and freed without anyone asking.
    fs::rename(
        rec.join("H200001_0002.MP4.part"),
        rec.join("H200001_0002.MP4"),
    )
    .unwrap();
    freed("H200001_0002.MP4").await;
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
    let both = report(&station);
    assert_eq!(both.clips.len(), 2);
    assert!(
        both.clips.iter().all(|c| c.status == ClipStatus::Verified),
        "{:?}",
        both.clips
    );
    assert!(both.unattested.is_empty());
}

/// A client that opens a connection and never says a word (no TLS handshake) is dropped
/// after the handshake timeout, so silent sockets cannot use up the endpoint's places.
/// The clock is tokio's paused one: the ten seconds pass without being waited for.
#[tokio::test(start_paused = true)]
async fn a_silent_client_is_dropped_after_the_handshake_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (_station, port) = start_station(dir.path());
    // The endpoint binds in its own task: connect once it listens.
    let mut first = None;
    for _ in 0..500 {
        match TcpStream::connect(("127.0.0.1", port)).await {
            Ok(socket) => {
                first = Some(socket);
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
    let mut silent = vec![first.expect("the upload endpoint listens")];
    for _ in 0..2 {
        silent.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    }
    for mut socket in silent {
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(std::time::Duration::from_mins(1), socket.read(&mut buf))
            .await
            .expect("the station closes a silent connection within its handshake timeout");
        assert_eq!(read.unwrap_or(0), 0, "closed without a byte");
    }
}

/// A chunk the station will not write (the client is not where the station is, or another
/// request still writes the file) is answered 409 with the offset the station holds,
/// and the client reads that answer: the station reads the refused body first, instead of
/// answering while the client still sends and leaving it a broken connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_chunk_is_answered_with_the_offset_to_go_on_from() {
    let dir = tempfile::tempdir().unwrap();
    let (station, port) = start_station(dir.path());
    let vkey = station.verifier().to_string();
    let agent = agent_config(
        dir.path(),
        "state",
        &format!("https://127.0.0.1:{port}"),
        &vkey,
    );
    enroll_terminal(&station, dir.path(), &agent);
    let (key, _) = custody_agent::keystore::load_or_create(&agent.state_dir).unwrap();
    let client = custody_agent::upload::client(&dir.path().join("ca.pem")).unwrap();
    let path = format!("/v1/devices/{SERIAL}/files/DCIM/100MEDIA/H200001_0009.MP4");
    // The station holds nothing of this file; the chunk claims to start at 1 MiB.
    let chunk = vec![7u8; 8 << 20];
    let mut answer = None;
    for _ in 0..100 {
        let time_ms = chrono::Utc::now().timestamp_millis();
        let sig = key.sign(&custody::upload::auth_message("PATCH", &path, time_ms));
        match client
            .patch(format!("https://127.0.0.1:{port}{path}"))
            .header(
                "Authorization",
                custody::upload::auth_header(SERIAL, time_ms, &sig),
            )
            .header(custody::upload::OFFSET_HEADER, 1u64 << 20)
            .header(custody::upload::LENGTH_HEADER, 32u64 << 20)
            .body(chunk.clone())
            .send()
            .await
        {
            Ok(resp) => {
                answer = Some(resp);
                break;
            }
            // The endpoint binds in its own task: wait until it listens.
            Err(e) if e.is_connect() => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the refused chunk broke the connection: {e:?}"),
        }
    }
    let resp = answer.expect("the upload endpoint listens");
    assert_eq!(resp.status().as_u16(), 409);
    assert_eq!(
        resp.headers()[custody::upload::OFFSET_HEADER]
            .to_str()
            .unwrap(),
        "0"
    );
}

/// Open descriptors and resident memory of a process: (fds, RSS in KiB).
fn fds_and_rss(pid: u32) -> (usize, u64) {
    let fds = fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count);
    let rss = fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        })
        .unwrap_or(0);
    (fds, rss)
}

/// A TLS client to the endpoint that sends `request` and then stalls, holding the socket.
async fn stalled_tls_client(
    port: u16,
    connector: tokio_rustls::TlsConnector,
    request: &'static [u8],
) -> Option<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").ok()?;
    let mut tls = connector.connect(name, tcp).await.ok()?;
    tls.write_all(request).await.ok()?;
    tls.flush().await.ok()?;
    Some(tls)
}

/// A flood against the real `custody-station serve`: 300 sockets that never speak, 40
/// TLS clients that stop half-way through a request header and 40 that stop in the body.
/// The endpoint serves 8 at once and drops a silent client after 2 s, so a terminal's
/// upload still completes; the station holds no more descriptors than its places allow,
/// and its memory stays bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_and_stalled_clients_do_not_stop_a_terminal_s_upload() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let port = free_port();
    let config = dir.path().join("station.toml");
    fs::write(
        &config,
        format!(
            "dock-root = \"dock\"\ndata-dir = \"data\"\norigin = \"test.example/station-01\"\n\
             reserve-bytes = 0\n[upload]\nlisten = \"127.0.0.1:{port}\"\n\
             cert = \"station.pem\"\nkey = \"station.key\"\nmax-connections = 8\n\
             handshake-timeout-seconds = 2\nidle-timeout-seconds = 2\n"
        ),
    )
    .unwrap();
    let station = || {
        let mut cmd = std::process::Command::new(crate::util::bin("custody-station"));
        cmd.arg("--config").arg(&config).env("RUST_LOG", "warn");
        cmd
    };
    let vkey = crate::util::station_vkey(&config);
    let agent = agent_config(
        dir.path(),
        "state",
        &format!("https://127.0.0.1:{port}"),
        &vkey,
    );
    let rec = agent.recording_dir();
    fs::create_dir_all(&rec).unwrap();
    for (name, mib) in [("H200001_0001.MP4", 6usize), ("H200001_0002.MP4", 2)] {
        let bytes: Vec<u8> = (0..mib << 20)
            .map(|i| u8::try_from((i * 3 + mib) % 251).unwrap())
            .collect();
        fs::write(rec.join(name), bytes).unwrap();
    }
    let mut sealer = custody_agent::Sealer::load(agent.clone()).unwrap();
    assert_eq!(sealer.scan().unwrap().len(), 2);
    drop(sealer);
    let (terminal_key, _) = custody_agent::keystore::load_or_create(&agent.state_dir).unwrap();
    let pem = dir.path().join("terminal.pem");
    fs::write(&pem, terminal_key.public_key().to_pem()).unwrap();
    let enrolled = station()
        .args([
            "enroll",
            "--serial",
            SERIAL,
            "--hw-profile",
            "ga947-recorder",
            "--key",
        ])
        .arg(&pem)
        .args(["--officer", "42060119001:张三"])
        .output()
        .unwrap();
    assert!(
        enrolled.status.success(),
        "{}",
        String::from_utf8_lossy(&enrolled.stderr)
    );

    let log = fs::File::create(dir.path().join("serve.log")).unwrap();
    let mut serve = station()
        .arg("serve")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let pid = serve.id();
    let deadline = std::time::Instant::now() + std::time::Duration::from_mins(1);
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the endpoint never listened"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (base_fds, _) = fds_and_rss(pid);

    // Watch the station's descriptors and memory while the flood lasts.
    let watching = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = {
        let watching = Arc::clone(&watching);
        tokio::task::spawn_blocking(move || {
            let (mut fds, mut rss) = (0, 0);
            while watching.load(std::sync::atomic::Ordering::Relaxed) {
                let (f, r) = fds_and_rss(pid);
                (fds, rss) = (fds.max(f), rss.max(r));
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            (fds, rss)
        })
    };
    let mut silent = Vec::new();
    for _ in 0..300 {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port)).await {
            silent.push(s);
        }
    }
    let mut roots = rustls::RootCertStore::empty();
    {
        use rustls::pki_types::pem::PemObject as _;
        for cert in
            rustls::pki_types::CertificateDer::pem_file_iter(dir.path().join("ca.pem")).unwrap()
        {
            roots.add(cert.unwrap()).unwrap();
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let mut stalled = tokio::task::JoinSet::new();
    for i in 0..80 {
        let request: &'static [u8] = if i % 2 == 0 {
            b"PATCH /v1/devices/H200001/files/DCIM/x HTTP/1.1\r\nHost: 127.0.0.1\r\nUpload-Off"
        } else {
            b"PATCH /v1/devices/H200001/files/DCIM/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\
              Upload-Offset: 0\r\nUpload-Length: 100000\r\nContent-Length: 100000\r\n\r\nabc"
        };
        let connector = connector.clone();
        stalled.spawn(async move { stalled_tls_client(port, connector, request).await });
    }

    // The terminal uploads through all of it.
    let (sent, inbox) = tokio::time::timeout(
        std::time::Duration::from_mins(3),
        custody_agent::upload_once(agent.clone()),
    )
    .await
    .expect("the terminal's upload finishes despite the flood")
    .unwrap();
    assert!(sent.receipt.is_some(), "{sent:?}");
    assert_eq!(inbox.freed.len(), 2, "{inbox:?}");
    let mut held = Vec::new();
    while let Some(client) = stalled.join_next().await {
        held.extend(client.unwrap());
    }
    watching.store(false, std::sync::atomic::Ordering::Relaxed);
    let (max_fds, max_rss_kib) = watcher.await.unwrap();
    eprintln!(
        "flood: {} silent sockets, {} stalled TLS clients got through the handshake; station \
         fds {base_fds} -> at most {max_fds}, RSS at most {} MiB",
        silent.len(),
        held.len(),
        max_rss_kib >> 10
    );
    // A place per connection, plus the files of the upload and ingest being written.
    assert!(
        max_fds <= base_fds + 8 + 16,
        "{max_fds} descriptors (base {base_fds})"
    );
    assert!(max_rss_kib < 256 << 10, "{max_rss_kib} KiB resident");
    // The stalled clients were dropped by the station, not left hanging.
    for mut client in held {
        let mut buf = [0u8; 256];
        let read = tokio::time::timeout(std::time::Duration::from_secs(30), client.read(&mut buf))
            .await
            .expect("the station drops a stalled client");
        assert!(
            read.map_or(true, |n| n == 0 || buf.starts_with(b"HTTP/1.1 4")),
            "a stalled client was answered as if served"
        );
    }
    let _ = serve.kill();
    let _ = serve.wait();
}
