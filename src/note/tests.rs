//! Signed-note and checkpoint vectors from `tests/data/merkle/signed-note-vectors.json`.

use std::fmt::Write as _;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;

use super::*;

fn vectors() -> Vec<Value> {
    let dir = std::env::var_os("MERKLE_TESTDATA").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/merkle"),
        std::path::PathBuf::from,
    );
    let text = std::fs::read_to_string(dir.join("signed-note-vectors.json")).unwrap();
    let all: Value = serde_json::from_str(&text).unwrap();
    all["vectors"].as_array().unwrap().clone()
}

fn vector(id: &str) -> Value {
    vectors()
        .into_iter()
        .find(|v| v["id"] == id)
        .unwrap_or_else(|| panic!("no vector {id}"))
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("no string {k}"))
}

fn verifiers(v: &Value, k: &str) -> Vec<NoteVerifier> {
    v[k].as_array()
        .unwrap()
        .iter()
        .map(|k| NoteVerifier::parse(k.as_str().unwrap()).unwrap())
        .collect()
}

#[test]
fn every_vector_is_checked() {
    let known = [
        "go-note-sign",
        "go-note-open-two-sigs",
        "go-note-open-no-trusted-key",
        "go-note-corrupt-sig",
        "go-note-malformed",
        "go-note-bad-vkeys",
        "c2sp-signed-note-example",
        "c2sp-checkpoint-example",
        "c2sp-cosigned-message-example",
        "formats-real-sumdb-checkpoint-with-witnesses",
        "formats-keypairs",
        "formats-cosig-timestamp",
    ];
    for v in vectors() {
        assert!(
            known.contains(&s(&v, "id")),
            "vector {} has no test",
            v["id"]
        );
    }
}

#[test]
fn signing_reproduces_the_go_vector_byte_for_byte() {
    let v = vector("go-note-sign");
    let signer = NoteSigner::parse(s(&v, "skey")).unwrap();
    assert_eq!(signer.verifier().to_string(), s(&v, "vkey"));
    assert_eq!(signer.sign(s(&v, "text")).unwrap(), s(&v, "want_note"));
}

#[test]
fn a_note_verifies_with_any_trusted_subset_and_ignores_unknown_keys() {
    let v = vector("go-note-open-two-sigs");
    let all = verifiers(&v, "vkeys");
    let note = SignedNote::parse(s(&v, "note").as_bytes()).unwrap();
    assert_eq!(note.text, s(&v, "want_text"));
    let only_first = note.verify(&all[..1]).unwrap();
    assert_eq!(only_first.len(), 1);
    assert_eq!(only_first[0].name(), "PeterNeumann");
    assert_eq!(note.verify(&all).unwrap().len(), 2);
}

#[test]
fn no_trusted_key_and_a_corrupt_signature_are_rejected() {
    let v = vector("go-note-open-no-trusted-key");
    let note = SignedNote::parse(s(&v, "note").as_bytes()).unwrap();
    assert_eq!(note.verify(&[]), Err(NoteError::NoVerifiableSignature));
    let v = vector("go-note-corrupt-sig");
    let trusted = verifiers(&v, "vkeys");
    let rejected =
        SignedNote::parse(s(&v, "note").as_bytes()).and_then(|n| n.verify(&trusted).map(|_| ()));
    assert!(rejected.is_err());
}

#[test]
fn malformed_notes_and_bad_vkeys_are_rejected() {
    let v = vector("go-note-malformed");
    let trusted = verifiers(&v, "vkeys");
    for bad in v["bad_notes"].as_array().unwrap() {
        let bad = bad.as_str().unwrap();
        let opened = SignedNote::parse(bad.as_bytes()).and_then(|n| n.verify(&trusted).map(|_| ()));
        assert!(opened.is_err(), "accepted {bad:?}");
    }
    for bad in vector("go-note-bad-vkeys")["bad_vkeys"].as_array().unwrap() {
        assert!(NoteVerifier::parse(bad.as_str().unwrap()).is_err(), "{bad}");
    }
}

#[test]
fn the_c2sp_signed_note_example_verifies() {
    let v = vector("c2sp-signed-note-example");
    let note = SignedNote::parse(s(&v, "note").as_bytes()).unwrap();
    assert_eq!(note.text, s(&v, "want_text"));
    note.verify(&verifiers(&v, "vkeys")).unwrap();
}

#[test]
fn the_c2sp_checkpoint_example_parses_and_verifies_against_nothing() {
    let v = vector("c2sp-checkpoint-example");
    let note = SignedNote::parse(s(&v, "note").as_bytes()).unwrap();
    let cp = Checkpoint::parse_body(&note.text).unwrap();
    assert_eq!(cp.origin, s(&v, "want_origin"));
    assert_eq!(cp.size, v["want_size"].as_u64().unwrap());
    assert_eq!(B64.encode(cp.root), s(&v, "want_root_b64"));
    assert_eq!(cp.body(), note.text);
    let (other, _) = SigningKey::generate().unwrap();
    let stranger = NoteVerifier::new("example.com/behind-the-sofa", other.public_key()).unwrap();
    assert!(Checkpoint::open(s(&v, "note").as_bytes(), &cp.origin, &stranger, &[]).is_err());
}

#[test]
fn the_cosigned_message_is_exact() {
    let v = vector("c2sp-cosigned-message-example");
    let ts = v["timestamp"].as_u64().unwrap();
    assert_eq!(
        cosignature_message(s(&v, "checkpoint_body"), ts),
        s(&v, "want_signed_message")
    );
}

#[test]
fn the_real_sumdb_checkpoint_verifies_with_its_witnesses_and_only_for_its_origin() {
    let v = vector("formats-real-sumdb-checkpoint-with-witnesses");
    let log = NoteVerifier::parse(s(&v, "log_vkey")).unwrap();
    let witnesses = verifiers(&v, "witness_vkeys");
    let note = s(&v, "note").as_bytes();
    let (cp, names) = Checkpoint::open(note, s(&v, "want_origin"), &log, &witnesses).unwrap();
    assert_eq!(cp.size, v["want_size"].as_u64().unwrap());
    assert_eq!(B64.encode(cp.root), s(&v, "want_root_b64"));
    assert_eq!(names, ["monkeys", "bananas", "witness"]);
    assert!(matches!(
        Checkpoint::open(note, "go.sum database tree2", &log, &witnesses),
        Err(NoteError::WrongOrigin { .. })
    ));
    // Witnesses alone do not make a checkpoint: the log must have signed it.
    let stranger = NoteVerifier::new(
        "sum.golang.org",
        SigningKey::generate().unwrap().0.public_key(),
    )
    .unwrap();
    assert!(matches!(
        Checkpoint::open(note, s(&v, "want_origin"), &stranger, &witnesses),
        Err(NoteError::NotSignedByLog(_))
    ));
}

#[test]
fn go_key_pairs_derive_their_verifiers() {
    for pair in vector("formats-keypairs")["pairs"].as_array().unwrap() {
        let signer = NoteSigner::parse(s(pair, "skey")).unwrap();
        assert_eq!(signer.verifier().to_string(), s(pair, "vkey"));
        assert_eq!(
            NoteVerifier::parse(s(pair, "vkey")).unwrap(),
            *signer.verifier()
        );
    }
}

#[test]
fn cosignature_blobs_parse_and_plain_signatures_do_not() {
    let v = vector("formats-cosig-timestamp");
    let (hash, ts, _) = parse_cosignature(&B64.decode(s(&v, "sig_b64")).unwrap()).unwrap();
    assert_eq!(format!("{hash:08x}"), s(&v, "want_keyid_hex"));
    assert_eq!(ts, v["want_timestamp"].as_u64().unwrap());
    assert!(parse_cosignature(&B64.decode(s(&v, "wrong_type_sig_b64")).unwrap()).is_err());
}

#[test]
fn a_station_checkpoint_round_trips_and_a_witness_cosignature_verifies() {
    let (key, _) = SigningKey::generate().unwrap();
    let signer = NoteSigner::new("custody.example/station-01", key).unwrap();
    let cp = Checkpoint {
        origin: "custody.example/station-01".into(),
        size: 42,
        root: [7; 32],
        extensions: vec![],
    };
    let mut note = cp.sign(&signer).unwrap();
    // A witness adds a cosignature/v1 line over the same body.
    let (wkey, _) = SigningKey::generate().unwrap();
    let wpub = wkey.public_key();
    let mut raw = vec![ALG_COSIGNATURE_V1];
    raw.extend_from_slice(&wpub.0);
    let vkey = format!(
        "witness.example+{:08x}+{}",
        key_hash("witness.example", ALG_COSIGNATURE_V1, &wpub.0),
        B64.encode(&raw)
    );
    let witness = NoteVerifier::parse(&vkey).unwrap();
    let ts = 1_700_000_000u64;
    let sig = wkey.sign(cosignature_message(&cp.body(), ts).as_bytes());
    let mut blob = witness.key_hash().to_be_bytes().to_vec();
    blob.extend_from_slice(&ts.to_be_bytes());
    blob.extend_from_slice(&sig.0);
    writeln!(note, "\u{2014} witness.example {}", B64.encode(blob)).unwrap();
    let (opened, names) =
        Checkpoint::open(note.as_bytes(), &cp.origin, signer.verifier(), &[witness]).unwrap();
    assert_eq!(opened, cp);
    assert_eq!(names, ["witness.example"]);
}
