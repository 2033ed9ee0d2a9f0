//! Freeing space under station receipts: only a receipt verified against the enrolled
//! station key, for this device, with a valid inclusion proof for every record it lists,
//! frees clips; bad, partial, foreign and replayed receipts free nothing and are reported.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use std::fs;
use std::path::PathBuf;

use chrono::Utc;
use custody::{
    Checkpoint, KeyId, MemoryHashStore, MerkleLog, NoteSigner, RECEIPT_V1, ReceiptBody,
    ReceiptEntry, Record, SigningKey, Verified, code, encode_proof, layout,
};
use custody_agent::{AgentConfig, Sealer};

const ORIGIN: &str = "test.example/station-01";
const STATION_SEED: [u8; 32] = [42; 32];

struct Device {
    _dir: tempfile::TempDir,
    config: PathBuf,
    storage: PathBuf,
}

fn device() -> Device {
    let dir = tempfile::tempdir().unwrap();
    let signer = NoteSigner::new(ORIGIN, SigningKey::from_seed(&STATION_SEED).unwrap()).unwrap();
    let config = dir.path().join("agent.toml");
    fs::write(
        &config,
        format!(
            "serial = \"A100001\"\nhw-profile = \"android-terminal\"\nstorage = \"storage\"\n\
             state-dir = \"state\"\nclose-idle-ms = 0\n\n[station]\nvkey = \"{}\"\n\n\
             [officer]\nname = \"张三\"\ncert-no = \"42060119001\"\n\n\
             [agency]\ncode = \"420600\"\nname = \"襄阳市生态环境局\"\n",
            signer.verifier()
        ),
    )
    .unwrap();
    Device {
        storage: dir.path().join("storage"),
        _dir: dir,
        config,
    }
}

impl Device {
    fn cfg(&self) -> AgentConfig {
        AgentConfig::load(&self.config).unwrap()
    }

    /// Seals `n` closed clips; returns their records.
    fn seal(&self, n: usize) -> Vec<Record<Verified>> {
        let cfg = self.cfg();
        let rec_dir = cfg.recording_dir();
        fs::create_dir_all(&rec_dir).unwrap();
        for i in 0..n {
            fs::write(
                rec_dir.join(format!("VID_{i:04}.mp4")),
                vec![u8::try_from(i).unwrap(); 5000 + i],
            )
            .unwrap();
        }
        let mut sealer = Sealer::load(cfg).unwrap();
        // Files that stopped growing close after the idle time (0 here): two looks.
        sealer.scan().unwrap();
        sealer.scan().unwrap();
        let records = sealer.records().unwrap();
        assert_eq!(records.len(), n);
        records
    }

    /// Places a receipt in the inbox as the station does: exact bytes and signature.
    fn deliver(&self, name: &str, bytes: &[u8], sig: &[u8]) {
        let dir = layout::inbox_dir(&self.storage, "A100001");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(format!("{name}.json")), bytes).unwrap();
        fs::write(dir.join(format!("{name}.sig")), sig).unwrap();
    }

    fn clip(&self, rec: &Record<Verified>) -> PathBuf {
        self.storage.join(&rec.body().media().unwrap().file)
    }
}

/// A station log holding `records` (after some other device's entries) and a signed
/// receipt for them, as `custody-station` would issue it.
fn receipt_for(records: &[&Record<Verified>], serial: &str, key_id: &KeyId) -> ReceiptBody {
    let signer = NoteSigner::new(ORIGIN, SigningKey::from_seed(&STATION_SEED).unwrap()).unwrap();
    let mut log = MerkleLog::open(MemoryHashStore::default()).unwrap();
    log.append(b"another device's record").unwrap();
    let indices: Vec<u64> = records
        .iter()
        .map(|r| log.append(r.bytes()).unwrap())
        .collect();
    let checkpoint = Checkpoint {
        origin: ORIGIN.into(),
        size: log.size(),
        root: log.root_at(log.size()).unwrap(),
        extensions: Vec::new(),
    };
    ReceiptBody {
        format: RECEIPT_V1.into(),
        station: ORIGIN.into(),
        device: serial.into(),
        device_key_id: key_id.clone(),
        issued: Utc::now().fixed_offset(),
        checkpoint: checkpoint.sign(&signer).unwrap(),
        entries: records
            .iter()
            .zip(indices)
            .map(|(r, i)| ReceiptEntry {
                seq: r.body().seq,
                record: r.hash(),
                log_index: i,
                proof: encode_proof(&log.inclusion_proof(i, log.size()).unwrap()),
            })
            .collect(),
    }
}

fn sign(body: &ReceiptBody) -> (Vec<u8>, Vec<u8>) {
    let bytes = body.to_bytes().unwrap();
    let sig = SigningKey::from_seed(&STATION_SEED)
        .unwrap()
        .sign(&bytes)
        .0
        .to_vec();
    (bytes, sig)
}

fn inbox(dev: &Device) -> custody_agent::InboxReport {
    Sealer::load(dev.cfg()).unwrap().process_inbox().unwrap()
}

fn key_id(recs: &[Record<Verified>]) -> KeyId {
    recs[0].body().device.key_id.clone()
}

#[test]
fn a_verified_receipt_frees_exactly_its_clips_and_keeps_every_record() {
    let dev = device();
    let recs = dev.seal(3);
    let (bytes, sig) = sign(&receipt_for(
        &[&recs[0], &recs[1]],
        "A100001",
        &key_id(&recs),
    ));
    dev.deliver("receipt-0000000000000003", &bytes, &sig);
    let report = inbox(&dev);
    assert_eq!(report.accepted, 1);
    assert_eq!(report.freed.len(), 2, "{report:?}");
    assert!(!dev.clip(&recs[0]).exists() && !dev.clip(&recs[1]).exists());
    assert!(
        dev.clip(&recs[2]).exists(),
        "a clip no receipt covers stays"
    );
    // Records stay: in the manifest and in the outbox the station reads.
    let sealer = Sealer::load(dev.cfg()).unwrap();
    assert_eq!(sealer.records().unwrap().len(), 3);
    for r in &recs {
        assert!(layout::record_path(&dev.storage, "A100001", r.body().seq).is_file());
    }
    // The same receipt looked at again (another start) does nothing more.
    assert_eq!(inbox(&dev), custody_agent::InboxReport::default());

    // Delivered again under another name: verified, frees nothing, reported as a replay.
    let mut body = receipt_for(&[&recs[0], &recs[1]], "A100001", &key_id(&recs));
    body.issued += chrono::Duration::seconds(1);
    let (bytes, sig) = sign(&body);
    dev.deliver("receipt-0000000000000009", &bytes, &sig);
    let report = inbox(&dev);
    assert_eq!((report.accepted, report.freed.len()), (1, 0));
    assert_eq!(report.replayed, ["receipt-0000000000000009.json"]);
}

#[test]
fn bad_partial_foreign_and_lying_receipts_free_nothing_and_are_reported() {
    let dev = device();
    let recs = dev.seal(2);
    let kid = key_id(&recs);
    let good = receipt_for(&[&recs[0], &recs[1]], "A100001", &kid);
    let (bytes, sig) = sign(&good);

    // Truncated (a receipt cut short by a pulled cable).
    dev.deliver("receipt-a-partial", &bytes[..bytes.len() - 40], &sig);
    // Signed by a key that is not the station's.
    let forged = SigningKey::from_seed(&[1; 32])
        .unwrap()
        .sign(&bytes)
        .0
        .to_vec();
    dev.deliver("receipt-b-forged", &bytes, &forged);
    // For another device.
    let (b, s) = sign(&receipt_for(&[&recs[0]], "B200002", &kid));
    dev.deliver("receipt-c-foreign", &b, &s);
    // Lists a record this device holds at seq 2 with other bytes (a proof that lies).
    let mut lying = good.clone();
    lying.entries[1].proof[0] = lying.entries[0].proof[0].clone();
    let (b, s) = sign(&lying);
    dev.deliver("receipt-d-bad-proof", &b, &s);
    // Names a seq the device never sealed.
    let mut extra = good.clone();
    extra.entries[1].seq = 99;
    let (b, s) = sign(&extra);
    dev.deliver("receipt-e-unknown-seq", &b, &s);
    // Signed by the station, but not a receipt of a format this agent reads.
    let other_format = String::from_utf8(good.to_bytes().unwrap())
        .unwrap()
        .replacen(RECEIPT_V1, "custody.receipt/9", 1)
        .into_bytes();
    let station = SigningKey::from_seed(&STATION_SEED).unwrap();
    dev.deliver(
        "receipt-f-other-format",
        &other_format,
        &station.sign(&other_format).0,
    );

    let report = inbox(&dev);
    assert_eq!(report.accepted, 0, "{report:?}");
    assert!(report.freed.is_empty());
    let refused: Vec<(&str, &str)> = report
        .refused
        .iter()
        .map(|r| (r.file.as_str(), r.code))
        .collect();
    assert_eq!(
        refused,
        [
            // Cut short: the station's signature no longer covers the bytes.
            ("receipt-a-partial.json", code::RECEIPT_SIGNATURE_INVALID),
            ("receipt-b-forged.json", code::RECEIPT_SIGNATURE_INVALID),
            ("receipt-c-foreign.json", code::RECEIPT_FOREIGN),
            ("receipt-d-bad-proof.json", code::RECEIPT_PROOF_INVALID),
            ("receipt-e-unknown-seq.json", code::RECEIPT_SEQ_UNKNOWN),
            ("receipt-f-other-format.json", code::RECEIPT_MALFORMED),
        ]
    );
    assert!(dev.clip(&recs[0]).exists() && dev.clip(&recs[1]).exists());
}

#[test]
fn a_clip_changed_after_sealing_is_kept_even_under_a_good_receipt() {
    let dev = device();
    let recs = dev.seal(1);
    fs::write(dev.clip(&recs[0]), b"replaced under the agent").unwrap();
    let (bytes, sig) = sign(&receipt_for(&[&recs[0]], "A100001", &key_id(&recs)));
    dev.deliver("receipt-0000000000000002", &bytes, &sig);
    let report = inbox(&dev);
    assert_eq!(report.accepted, 1);
    assert!(report.freed.is_empty());
    assert_eq!(report.kept_changed.len(), 1);
    assert!(dev.clip(&recs[0]).exists());
}

#[test]
fn without_an_enrolled_station_key_nothing_is_ever_freed() {
    let dev = device();
    let recs = dev.seal(1);
    let text = fs::read_to_string(&dev.config).unwrap();
    let start = text.find("[station]").unwrap();
    let end = start + text[start..].find("\n\n").unwrap() + 2;
    fs::write(&dev.config, format!("{}{}", &text[..start], &text[end..])).unwrap();
    let (bytes, sig) = sign(&receipt_for(&[&recs[0]], "A100001", &key_id(&recs)));
    dev.deliver("receipt-0000000000000002", &bytes, &sig);
    assert_eq!(inbox(&dev), custody_agent::InboxReport::default());
    assert!(dev.clip(&recs[0]).exists());
}

/// The agent's exit codes follow the other Custody tools: 1 when it ran and refused a
/// receipt, 0 when all was fine, and a reader that closed stdout (`| head`) is a normal
/// end, never a panic.
#[test]
fn the_binary_exits_1_on_a_refused_receipt_and_0_when_its_reader_stops_early() {
    use std::process::Command;
    let agent = |dev: &Device, args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_custody-agent"));
        cmd.arg("--config").arg(&dev.config).args(args);
        cmd
    };
    let dev = device();
    let recs = dev.seal(1);
    let out = agent(&dev, &["run", "--once"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    let (bytes, _) = sign(&receipt_for(&[&recs[0]], "A100001", &key_id(&recs)));
    dev.deliver("receipt-forged", &bytes, &[7; 64]);
    let out = agent(&dev, &["run", "--once"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(code::RECEIPT_SIGNATURE_INVALID), "{stdout}");
    assert!(dev.clip(&recs[0]).exists());

    for args in [&["enroll"][..], &["run", "--once"]] {
        let out = custody::testkit::run_with_closed_stdout(&mut agent(&dev, args)).unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
