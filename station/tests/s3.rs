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

use chrono::Utc;
use custody::MediaHash;
use custody_station::s3::{NewObject, S3Settings, S3Store};
use custody_station::{EvidenceStore as _, Expected, ObjectCheck, StoreError};

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
            forged,
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
}

impl Relay {
    fn start(to: &str) -> Self {
        let target = to.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream_bytes = Arc::new(AtomicU64::new(0));
        let up = Arc::new(AtomicBool::new(true));
        let (counted, is_up) = (Arc::clone(&upstream_bytes), Arc::clone(&up));
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
                let (counted, up_now) = (Arc::clone(&counted), Arc::clone(&is_up));
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
    assert!(matches!(err, StoreError::Remote(_)), "{err}");
}
