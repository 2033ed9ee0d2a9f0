//! The S3 Object Lock store against a real Ceph RADOS Gateway on 127.0.0.1, which
//! `scripts/test` starts (`scripts/ceph-rgw`) and names in `CUSTODY_S3_ENDPOINT`, with the
//! key pair in `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::too_many_lines,
    reason = "a test reports failure by panicking, and tells its story in order"
)]

use std::io::{self, Read, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use custody::MediaHash;
use custody_station::s3::{NewObject, S3Settings, S3Store};
use custody_station::{EvidenceStore as _, Expected, ObjectCheck, StoreError};

mod common;
use common::{Docked, station, station_as_clerk};

/// The gateway `scripts/test` started; a clear failure when run without it.
fn endpoint() -> String {
    std::env::var("CUSTODY_S3_ENDPOINT").expect(
        "CUSTODY_S3_ENDPOINT is not set: run scripts/test, or start a gateway with \
         `eval \"$(scripts/ceph-rgw start target/ceph)\"`",
    )
}

/// Settings for a fresh bucket of this test's own.
fn settings(endpoint: &str, name: &str) -> S3Settings {
    S3Settings {
        endpoint: endpoint.into(),
        bucket: format!(
            "t-{name}-{}-{}",
            std::process::id(),
            Utc::now().timestamp_micros()
        ),
        region: "us-east-1".into(),
        prefix: "station-1/".into(),
        credentials_file: None,
        retention_days: 1,
        legal_hold: false,
        part_size: 5 << 20,
        ca: None,
    }
}

fn locked_store(name: &str) -> S3Store {
    let s = settings(&endpoint(), name);
    s.client().unwrap().create_locked_bucket().unwrap();
    S3Store::open(&s).unwrap()
}

/// Deleting a version fails while it is retained (or under legal hold).
fn assert_undeletable(store: &S3Store, hash: &MediaHash) {
    let key = store.key(hash);
    let version = store
        .client()
        .head(&key, None)
        .unwrap()
        .unwrap()
        .version_id
        .unwrap();
    let err = store.client().delete(&key, Some(&version)).unwrap_err();
    assert_eq!(err.code(), Some("AccessDenied"), "{err}");
}

/// Deterministic, incompressible-looking bytes.
fn clip(len: usize, seed: u8) -> Vec<u8> {
    let mut state = u64::from(seed) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

fn expect(bytes: &[u8]) -> Expected {
    Expected {
        size: bytes.len() as u64,
        sha256: Some(MediaHash::of(bytes)),
    }
}

/// A source that fails like a pulled cable after `ok` bytes.
struct Unplugged<'a> {
    bytes: &'a [u8],
    ok: usize,
}

impl Read for Unplugged<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.ok == 0 {
            return Err(io::Error::from_raw_os_error(5));
        }
        let n = buf.len().min(self.ok).min(self.bytes.len());
        buf[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        self.ok -= n;
        Ok(n)
    }
}

#[test]
fn a_bucket_without_object_lock_is_refused_with_a_clear_message() {
    let s = settings(&endpoint(), "plain");
    s.client().unwrap().create_plain_bucket().unwrap();
    let err = S3Store::open(&s).unwrap_err().to_string();
    assert!(err.contains("does not have Object Lock enabled"), "{err}");
    assert!(err.contains(&s.bucket), "{err}");

    let mut wrong = settings(&endpoint(), "keys");
    wrong.credentials_file = Some(std::env::temp_dir().join("custody-no-such-credentials.toml"));
    let err = S3Store::open(&wrong).unwrap_err().to_string();
    assert!(err.contains("S3 credentials"), "{err}");
}

#[test]
fn a_clip_is_stored_once_under_compliance_retention_and_reads_back_verified() {
    // The bucket's default retention is shorter than the station's: the station's wins
    // (Ceph 16 applies only the default to multipart uploads; the store lengthens it).
    let mut s = settings(&endpoint(), "put");
    s.retention_days = 2;
    s.client().unwrap().create_locked_bucket().unwrap();
    s.client()
        .unwrap()
        .set_default_retention("COMPLIANCE", 1)
        .unwrap();
    let store = S3Store::open(&s).unwrap();
    let mut buf = vec![0; 128 << 10];
    for (bytes, what) in [
        (clip(12 << 20, 1), "multipart"),
        (clip(300_000, 2), "one request"),
        (Vec::new(), "empty"),
    ] {
        let hash = MediaHash::of(&bytes);
        let before = Utc::now();
        let stored = store
            .put(&mut &bytes[..], expect(&bytes), &mut buf)
            .unwrap();
        assert_eq!(
            (stored.hash, stored.size, stored.fresh),
            (hash, bytes.len() as u64, true),
            "{what}"
        );

        let head = store
            .client()
            .head(&store.key(&hash), None)
            .unwrap()
            .unwrap();
        assert_eq!(head.size, bytes.len() as u64, "{what}");
        assert_eq!(
            head.sha256.as_deref(),
            Some(hash.to_hex().as_str()),
            "{what}"
        );
        let retention = head.retention.expect("retention set at upload");
        assert_eq!(retention.mode, "COMPLIANCE", "{what}");
        let hours = (retention.until - before).num_hours();
        assert!(
            (47..=49).contains(&hours),
            "{what}: retained {hours} h, configured 2 days"
        );
        assert!(!head.legal_hold);
        assert_undeletable(&store, &hash);

        assert_eq!(
            store.verify(&hash, &mut buf).unwrap(),
            ObjectCheck::Intact {
                size: bytes.len() as u64
            }
        );
        let mut back = Vec::new();
        store.get(&hash).unwrap().read_to_end(&mut back).unwrap();
        assert!(back == bytes, "{what}: read back differs");

        let again = store
            .put(&mut &bytes[..], expect(&bytes), &mut buf)
            .unwrap();
        assert!(!again.fresh, "{what}: an object already there is success");
        let versions = store.client().versions(&store.key(&hash)).unwrap();
        assert_eq!(versions.len(), 1, "{what}: stored once: {versions:?}");
    }
    assert!(store.exists(&MediaHash::of(&clip(300_000, 2))).unwrap());
    assert!(!store.exists(&MediaHash::of(b"never stored")).unwrap());
    assert_eq!(
        store
            .verify(&MediaHash::of(b"never stored"), &mut buf)
            .unwrap(),
        ObjectCheck::Missing
    );
}

#[test]
fn the_server_refuses_to_delete_retained_evidence_and_an_overwrite_is_caught_on_read() {
    let store = locked_store("lock");
    let mut buf = vec![0; 128 << 10];
    let bytes = clip(7 << 20, 3);
    let hash = MediaHash::of(&bytes);
    store
        .put(&mut &bytes[..], expect(&bytes), &mut buf)
        .unwrap();
    let key = store.key(&hash);
    let head = store.client().head(&key, None).unwrap().unwrap();
    let original = head.version_id.unwrap();
    let mode = head.retention.map(|r| r.mode);
    assert_eq!(
        mode.as_deref(),
        Some("COMPLIANCE"),
        "retained without a bucket default too"
    );

    // Deleting the retained version: the server refuses, whoever asks.
    assert_undeletable(&store, &hash);

    // Someone writes around the station: a new version under the same key.
    let forged = b"edited footage".to_vec();
    let meta = [("sha256", hash.to_hex())];
    store
        .client()
        .put(
            &key,
            custody_station::s3::Payload::new(forged),
            &NewObject {
                retention: None,
                legal_hold: false,
                metadata: &meta,
            },
        )
        .unwrap();
    match store.verify(&hash, &mut buf).unwrap() {
        ObjectCheck::Corrupt { found } => assert_eq!(found, MediaHash::of(b"edited footage")),
        other => panic!("an overwritten object must read as corrupt, got {other:?}"),
    }
    let mut reader = store.get(&hash).unwrap();
    let err = io::copy(&mut reader, &mut io::sink()).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert!(err.to_string().contains(&key), "{err}");

    // The retained original is still there, whole, and still cannot be deleted.
    let mut back = Vec::new();
    store
        .client()
        .get(&key, Some(&original))
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert!(back == bytes);
    assert!(store.client().delete(&key, Some(&original)).is_err());
    // A legal hold goes on every version: the station's, and the one written around it.
    store.set_legal_hold(&hash, true).unwrap();
    for v in store.client().versions(&key).unwrap() {
        let version = store
            .client()
            .head(&key, Some(&v.version_id))
            .unwrap()
            .unwrap();
        assert!(version.legal_hold, "version {} not held", v.version_id);
    }
    assert_eq!(store.client().versions(&key).unwrap().len(), 2);
}

#[test]
fn a_legal_hold_is_set_and_released_on_a_retained_object() {
    let store = locked_store("hold");
    let bytes = clip(1000, 4);
    let hash = MediaHash::of(&bytes);
    store
        .put(&mut &bytes[..], expect(&bytes), &mut [0; 4096])
        .unwrap();
    store.set_legal_hold(&hash, true).unwrap();
    assert!(
        store
            .client()
            .head(&store.key(&hash), None)
            .unwrap()
            .unwrap()
            .legal_hold
    );
    store.set_legal_hold(&hash, false).unwrap();
    assert!(
        !store
            .client()
            .head(&store.key(&hash), None)
            .unwrap()
            .unwrap()
            .legal_hold
    );
    assert!(
        store
            .set_legal_hold(&MediaHash::of(b"absent"), true)
            .is_err()
    );

    let mut s = settings(&endpoint(), "holdall");
    s.legal_hold = true;
    s.client().unwrap().create_locked_bucket().unwrap();
    let held = S3Store::open(&s).unwrap();
    held.put(&mut &bytes[..], expect(&bytes), &mut [0; 4096])
        .unwrap();
    assert!(
        held.client()
            .head(&held.key(&hash), None)
            .unwrap()
            .unwrap()
            .legal_hold
    );
}

#[test]
fn bytes_other_than_claimed_leave_nothing_under_any_key() {
    let store = locked_store("claim");
    let mut buf = vec![0; 128 << 10];
    let bytes = clip(11 << 20, 5);
    let claimed = MediaHash::of(b"what the record says");
    let err = store
        .put(
            &mut &bytes[..],
            Expected {
                size: bytes.len() as u64,
                sha256: Some(claimed),
            },
            &mut buf,
        )
        .unwrap_err();
    match err {
        StoreError::Unexpected { found, size } => {
            assert_eq!((found, size), (MediaHash::of(&bytes), bytes.len() as u64));
        }
        other => panic!("expected Unexpected, got {other}"),
    }
    assert!(!store.exists(&claimed).unwrap());
    assert!(
        store
            .client()
            .uploads_in_progress(&store.key(&claimed))
            .unwrap()
            .is_empty()
    );

    // Without a claim the store only hashes, and asks for a second pass.
    let err = store
        .put(
            &mut &bytes[..],
            Expected {
                size: bytes.len() as u64,
                sha256: None,
            },
            &mut buf,
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::Unexpected { found, .. } if found == MediaHash::of(&bytes)));
    assert!(
        store.client().versions("").unwrap().is_empty(),
        "nothing stored"
    );
}

/// A TCP relay to the gateway that counts the bytes sent upstream and can be taken down
/// (connections refused) and brought back.
struct Relay {
    port: u16,
    upstream_bytes: Arc<AtomicU64>,
    up: Arc<AtomicBool>,
    /// Microseconds to wait per 64 KiB sent upstream (a slow uplink).
    delay_us: Arc<AtomicU64>,
}

impl Relay {
    fn start(to: &str) -> Self {
        let target = to.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream_bytes = Arc::new(AtomicU64::new(0));
        let up = Arc::new(AtomicBool::new(true));
        let delay_us = Arc::new(AtomicU64::new(0));
        let (counted, is_up, delay) = (
            Arc::clone(&upstream_bytes),
            Arc::clone(&up),
            Arc::clone(&delay_us),
        );
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !is_up.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let (mut c_in, mut s_out) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (counted, up_now, delay) =
                    (Arc::clone(&counted), Arc::clone(&is_up), Arc::clone(&delay));
                std::thread::spawn(move || {
                    let mut buf = vec![0; 64 << 10];
                    while let Ok(n) = c_in.read(&mut buf) {
                        if n == 0
                            || !up_now.load(Ordering::SeqCst)
                            || s_out.write_all(&buf[..n]).is_err()
                        {
                            break;
                        }
                        counted.fetch_add(n as u64, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_micros(delay.load(Ordering::SeqCst)));
                    }
                    let _ = s_out.shutdown(Shutdown::Both);
                });
                let (mut s_in, mut c_out) = (server, client);
                std::thread::spawn(move || {
                    let _ = io::copy(&mut s_in, &mut c_out);
                    let _ = c_out.shutdown(Shutdown::Both);
                });
            }
        });
        Self {
            port,
            upstream_bytes,
            up,
            delay_us,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn sent(&self) -> u64 {
        self.upstream_bytes.load(Ordering::SeqCst)
    }
}

#[test]
fn an_interrupted_upload_resumes_without_sending_held_parts_again() {
    let relay = Relay::start(&endpoint());
    let mut s = settings(&relay.endpoint(), "resume");
    s.client().unwrap().create_locked_bucket().unwrap();
    s.part_size = 5 << 20;
    let store = S3Store::open(&s).unwrap();
    let mut buf = vec![0; 128 << 10];
    let bytes = clip(23 << 20, 6);
    let hash = MediaHash::of(&bytes);
    let key = store.key(&hash);

    // The cable is pulled 16 MiB in: three 5 MiB parts reached the server.
    let err = store
        .put(
            &mut Unplugged {
                bytes: &bytes,
                ok: 16 << 20,
            },
            expect(&bytes),
            &mut buf,
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::Source(_)), "{err}");
    assert!(!store.exists(&hash).unwrap(), "nothing visible yet");
    let uploads = store.client().uploads_in_progress(&key).unwrap();
    assert_eq!(uploads.len(), 1);
    assert_eq!(
        store
            .client()
            .list_parts(&key, &uploads[0].0)
            .unwrap()
            .len(),
        3
    );

    let before = relay.sent();
    let stored = store
        .put(&mut &bytes[..], expect(&bytes), &mut buf)
        .unwrap();
    assert!(stored.fresh);
    let resent = relay.sent() - before;
    assert!(
        resent < 9 << 20,
        "only the 8 MiB not yet held go again (plus requests), sent {resent} bytes"
    );
    assert_eq!(
        store.client().versions(&key).unwrap().len(),
        1,
        "one object, no duplicate"
    );
    assert!(store.client().uploads_in_progress(&key).unwrap().is_empty());
    assert_eq!(
        store.verify(&hash, &mut buf).unwrap(),
        ObjectCheck::Intact {
            size: bytes.len() as u64
        }
    );

    // With the endpoint down a put fails cleanly and says where.
    relay.up.store(false, Ordering::SeqCst);
    let other = clip(1000, 7);
    let err = store
        .put(&mut &other[..], expect(&other), &mut buf)
        .unwrap_err();
    assert!(matches!(err, StoreError::Remote { .. }), "{err}");
}

/// A station whose `station.toml` ends with `store` (its `[store]` and `[s3]`), and one
/// enrolled device with `clips` generated clips of `size` bytes docked in slot 1.
fn docked(store: &str, clips: usize, size: usize) -> Docked {
    common::docked(
        "test.example/station-s3",
        &format!("parallel-copies = 2\n{store}"),
        "S300001",
        clips,
        size,
    )
}

/// Stops `serve` as systemd does (SIGTERM) and checks it stopped cleanly.
fn stop(serve: &mut std::process::Child) {
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    assert!(
        serve.wait().unwrap().success(),
        "serve stops cleanly on SIGTERM"
    );
}

/// A fresh locked bucket at `endpoint` with a default COMPLIANCE retention of one day (as
/// docs/s3-store.md recommends; the station lengthens it), a station whose `[store]` has
/// `mode` for it, one docked device, and the bucket opened as the station sees it.
fn station_on_bucket(
    endpoint: &str,
    name: &str,
    mode: &str,
    clips: usize,
    size: usize,
) -> (S3Settings, Docked, S3Store) {
    let s = settings(endpoint, name);
    let client = s.client().unwrap();
    client.create_locked_bucket().unwrap();
    client.set_default_retention("COMPLIANCE", 1).unwrap();
    let d = docked(
        &format!("[store]\n{mode}\n{}", s3_section(endpoint, &s.bucket)),
        clips,
        size,
    );
    let store = S3Store::open(&S3Settings {
        prefix: "station-s3/".into(),
        ..s.clone()
    })
    .unwrap();
    (s, d, store)
}

fn s3_section(endpoint: &str, bucket: &str) -> String {
    format!(
        "[s3]\nendpoint = \"{endpoint}\"\nbucket = \"{bucket}\"\nretention-days = 1\n\
         part-size-mib = 5\nprefix = \"station-s3/\"\n"
    )
}

fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_station_on_s3_killed_mid_upload_resumes_and_stores_each_clip_once() {
    let relay = Relay::start(&endpoint());
    let (_, d, store) = station_on_bucket(
        &relay.endpoint(),
        "station",
        "backend = \"s3\"",
        3,
        16 << 20,
    );
    let hashes: Vec<MediaHash> = d
        .dev
        .records()
        .filter_map(|r| r.body().media().map(|m| m.sha256))
        .collect();
    assert_eq!(hashes.len(), 3);

    // A slow uplink (about 30 MB/s), so the kill lands while parts are on their way.
    relay.delay_us.store(2000, Ordering::SeqCst);
    let mut child = station(&d.config, &["ingest", "--slot"])
        .arg(&d.dev.root)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_mins(1);
    let held = loop {
        let held: u64 = hashes
            .iter()
            .flat_map(|h| {
                let key = store.key(h);
                let uploads = store.client().uploads_in_progress(&key).unwrap();
                uploads
                    .into_iter()
                    .flat_map(|(id, _)| store.client().list_parts(&key, &id).unwrap())
                    .collect::<Vec<_>>()
            })
            .map(|p| p.size)
            .sum();
        if held > 0 {
            break held;
        }
        assert!(Instant::now() < deadline, "no part reached the gateway");
        assert!(
            child.try_wait().unwrap().is_none(),
            "ingest ended before any part was seen"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    relay.delay_us.store(0, Ordering::SeqCst);

    let before = relay.sent();
    let out = station(&d.config, &["--json", "ingest", "--slot"])
        .arg(&d.dev.root)
        .output()
        .unwrap();
    // Exit 0: every clip stored as signed, on time.
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let sent = relay.sent() - before;
    let total = 3 * (16u64 << 20);
    assert!(
        sent + held <= total + (1 << 20),
        "the parts held when killed ({held} bytes) are not sent again: sent {sent} of {total}"
    );
    let mut buf = vec![0; 128 << 10];
    for hash in &hashes {
        let key = store.key(hash);
        assert_eq!(
            store.client().versions(&key).unwrap().len(),
            1,
            "{key}: stored once"
        );
        assert!(
            store.client().uploads_in_progress(&key).unwrap().is_empty(),
            "{key}"
        );
        assert_eq!(
            store.verify(hash, &mut buf).unwrap(),
            ObjectCheck::Intact { size: 16 << 20 }
        );
        let current = store.client().head(&key, None).unwrap().unwrap();
        assert_eq!(
            current.retention.map(|r| r.mode).as_deref(),
            Some("COMPLIANCE")
        );
    }
    // The ledger holds each clip once, verified, and the device got its receipt.
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"], "complete", "{report}");
    assert_eq!(report["clips_verified"].as_u64(), Some(3), "{report}");
    assert_eq!(report["records"].as_u64(), Some(3), "{report}");
    assert!(
        !d.dir.path().join("data/store/objects").exists(),
        "nothing went to a local store"
    );
}

#[test]
fn with_the_central_store_unreachable_reports_still_print_and_ingest_refuses_at_once() {
    let relay = Relay::start(&endpoint());
    let (_, d, _) = station_on_bucket(&relay.endpoint(), "outage", "backend = \"s3\"", 1, 1 << 20);
    let out = station(&d.config, &["ingest", "--slot"])
        .arg(&d.dev.root)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    relay.up.store(false, Ordering::SeqCst);

    // Clerks and IT: commands that only read the ledger do not ask the bucket.
    let out = station_as_clerk(&d.config, &["--json", "report", "--device", "S300001"])
        .output()
        .unwrap();
    assert!(
        out.status.code().is_some_and(|c| c < 2),
        "{}",
        output_text(&out)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["totals"]["verified"].as_u64(), Some(1), "{report}");
    for args in [&["fleet"][..], &["overdue"], &["key"]] {
        let out = station(&d.config, args).output().unwrap();
        assert!(
            out.status.code().is_some_and(|c| c < 2),
            "{args:?}: {}",
            output_text(&out)
        );
    }

    // Commands that write evidence stop before any work, naming the bucket; the device
    // keeps everything.
    let on_device = std::fs::read_dir(d.dev.root.join("DCIM/100MEDIA"))
        .unwrap()
        .count();
    for args in [&["ingest", "--slot"][..], &["serve"]] {
        let mut cmd = station(&d.config, args);
        if args[0] == "ingest" {
            cmd.arg(&d.dev.root);
        }
        let out = cmd.output().unwrap();
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {text}");
        assert!(
            text.contains("cannot take evidence") && text.contains("outage"),
            "{args:?}: {text}"
        );
    }
    assert_eq!(
        std::fs::read_dir(d.dev.root.join("DCIM/100MEDIA"))
            .unwrap()
            .count(),
        on_device
    );
}

#[test]
fn the_replication_queue_survives_a_restart_and_drains_once_the_bucket_is_back() {
    let relay = Relay::start(&endpoint());
    let (s, d, target) =
        station_on_bucket(&relay.endpoint(), "replica", "replicate = true", 3, 6 << 20);
    relay.up.store(false, Ordering::SeqCst);

    // The central bucket is unreachable: the dock still completes into the local store.
    let mut serve = station(&d.config, &["serve"]).spawn().unwrap();
    let status = |config: &std::path::Path| -> serde_json::Value {
        let out = station(config, &["--json", "status"]).output().unwrap();
        assert!(out.status.success(), "{}", output_text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let deadline = Instant::now() + Duration::from_mins(1);
    while status(&d.config)["replication"]["objects"].as_u64() != Some(3) {
        assert!(Instant::now() < deadline, "{}", status(&d.config));
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = station(&d.config, &["replicate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(
        output_text(&out).contains(&s.bucket),
        "{}",
        output_text(&out)
    );
    stop(&mut serve);

    // Still queued after the restart (the queue is the ledger), and it drains once the
    // bucket answers again.
    let queued = status(&d.config);
    assert_eq!(
        queued["replication"]["objects"].as_u64(),
        Some(3),
        "{queued}"
    );
    assert_eq!(queued["replication"]["bytes"].as_u64(), Some(3 * (6 << 20)));
    let text = String::from_utf8(station(&d.config, &["status"]).output().unwrap().stdout).unwrap();
    assert!(text.contains("待推送 3 个"), "{text}");
    relay.up.store(true, Ordering::SeqCst);
    let mut serve = station(&d.config, &["serve"]).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let now = status(&d.config);
        if now["replication"]["objects"].as_u64() == Some(0) {
            assert_eq!(now["replication"]["pushed"].as_u64(), Some(3), "{now}");
            break;
        }
        assert!(Instant::now() < deadline, "queue did not drain: {now}");
        std::thread::sleep(Duration::from_millis(200));
    }
    stop(&mut serve);
    let mut buf = vec![0; 128 << 10];
    for rec in d.dev.records() {
        if let Some(media) = rec.body().media() {
            assert_eq!(
                target.verify(&media.sha256, &mut buf).unwrap(),
                ObjectCheck::Intact { size: media.size }
            );
            assert_eq!(
                target
                    .client()
                    .versions(&target.key(&media.sha256))
                    .unwrap()
                    .len(),
                1
            );
        }
    }
    // An audit reads back both copies of each clip: the local one and the replica.
    let out = station(&d.config, &["--json", "audit"]).output().unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let audit: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(audit["checked"].as_u64(), Some(6), "{audit}");

    // Nothing left: a manual drain pushes nothing and exits 0.
    let out = station(&d.config, &["--json", "replicate"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["drained"]["pushed"].as_u64(), Some(0), "{v}");
}

#[test]
fn on_s3_an_altered_clip_and_an_unsigned_file_are_stored_under_their_own_hashes() {
    let (_, mut d, store) =
        station_on_bucket(&endpoint(), "altered", "backend = \"s3\"", 3, 7 << 20);
    let signed: Vec<MediaHash> = d
        .dev
        .records()
        .filter_map(|r| r.body().media().map(|m| m.sha256))
        .collect();
    d.dev.tamper("flip-byte:clip-2").unwrap();
    d.dev.tamper("extra-media").unwrap();
    let out = station(&d.config, &["--json", "ingest", "--slot"])
        .arg(&d.dev.root)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let codes: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["code"].as_str())
        .collect();
    assert!(
        codes.contains(&custody::code::MEDIA_HASH_MISMATCH),
        "{report}"
    );
    assert_eq!(report["clips_verified"].as_u64(), Some(2), "{report}");
    assert_eq!(report["unattested"].as_u64(), Some(1), "{report}");

    // Nothing sits under the hash the altered clip was signed with; what was read is kept.
    assert!(store.exists(&signed[0]).unwrap() && store.exists(&signed[2]).unwrap());
    assert!(
        !store.exists(&signed[1]).unwrap(),
        "no object under a hash its bytes lack"
    );
    let on_device = |rel: &str| MediaHash::of(&std::fs::read(d.dev.root.join(rel)).unwrap());
    let altered = d
        .dev
        .records()
        .filter_map(|r| r.body().media())
        .nth(1)
        .map(|m| on_device(&m.file))
        .unwrap();
    assert!(
        store.exists(&altered).unwrap(),
        "the altered clip is kept as read"
    );
    let objects = store.client().versions("station-s3/").unwrap();
    assert_eq!(
        objects.len(),
        4,
        "three clips and the unsigned file: {objects:?}"
    );
    let mut buf = vec![0; 128 << 10];
    for v in &objects {
        let hash: MediaHash = v.key.rsplit('/').next().unwrap().parse().unwrap();
        assert!(matches!(
            store.verify(&hash, &mut buf).unwrap(),
            ObjectCheck::Intact { .. }
        ));
    }

    // An audit reads every object back: all as stored, then one overwritten around the
    // station is a finding, in the ledger and in the report of the audit session.
    let audit = |expect_code: i32| -> serde_json::Value {
        let out = station(&d.config, &["--json", "audit"]).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(expect_code),
            "{}",
            output_text(&out)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let clean = audit(0);
    assert_eq!(clean["checked"].as_u64(), Some(4), "{clean}");
    store
        .client()
        .put(
            &store.key(&signed[0]),
            custody_station::s3::Payload::new(b"re-encoded".to_vec()),
            &NewObject {
                retention: None,
                legal_hold: false,
                metadata: &[],
            },
        )
        .unwrap();
    let found = audit(1);
    let findings = found["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{found}");
    assert_eq!(findings[0]["code"], custody::code::STORE_OBJECT_CORRUPT);
    assert!(
        findings[0]["subject"]
            .as_str()
            .unwrap()
            .contains(&signed[0].to_hex())
    );
    let session = found["session"].as_i64().unwrap().to_string();
    let out = station_as_clerk(&d.config, &["--json", "report", "--session", &session])
        .arg("--out")
        .arg(d.dir.path().join("audit-report"))
        .output()
        .unwrap();
    assert!(
        output_text(&out).contains(custody::code::STORE_OBJECT_CORRUPT),
        "{}",
        output_text(&out)
    );
}

#[test]
fn a_case_under_dispute_is_put_under_legal_hold_and_released() {
    let (_, mut d, store) = station_on_bucket(&endpoint(), "case", "backend = \"s3\"", 1, 1000);
    let case = "襄环罚〔2026〕12号";
    let rel = "DCIM/100MEDIA/S300001_0002.MP4";
    std::fs::write(d.dev.root.join(rel), b"the disputed clip").unwrap();
    d.dev
        .seal_clip_edited(rel, |body| {
            if let custody::Fact::Clip(clip) = &mut body.fact {
                clip.case_number = Some(case.into());
            }
        })
        .unwrap();
    let out = station(&d.config, &["ingest", "--slot"])
        .arg(&d.dev.root)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stored as signed, on time: {}",
        output_text(&out)
    );
    let held = |bytes: &[u8]| {
        store
            .client()
            .head(&store.key(&MediaHash::of(bytes)), None)
            .unwrap()
            .unwrap()
            .legal_hold
    };
    let first = std::fs::read(d.dev.root.join("DCIM/100MEDIA/S300001_0001.MP4")).unwrap();

    let out = station(&d.config, &["hold", case]).output().unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("法律保留"),
        "{}",
        output_text(&out)
    );
    assert!(held(b"the disputed clip"), "the case's clip is held");
    assert!(!held(&first), "other clips are not");

    let out = station(&d.config, &["hold", case, "--release"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(!held(b"the disputed clip"));

    let out = station(&d.config, &["hold", "no such case"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
}
