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
