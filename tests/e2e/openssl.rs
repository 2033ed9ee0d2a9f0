//! Records signed by Custody verify with the real openssl, and records openssl signs
//! verify in Custody: the signature format is standard, not ours.

use std::fs;

use custody::{MediaHash, PublicKey, Record, Signature, SigningKey, testkit::sample_clip_body};

use crate::util::{arg, run, run_ok};

#[test]
fn a_record_custody_signs_verifies_with_openssl_pkeyutl() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = SigningKey::generate().unwrap();
    let body = sample_clip_body(
        &key.public_key(),
        "A123456",
        1,
        None,
        "DCIM/1.MP4",
        5,
        MediaHash::of(b"12345"),
    );
    let record = Record::seal(&body, &key).unwrap();
    let (r, s, k) = (
        dir.path().join("R.json"),
        dir.path().join("R.sig"),
        dir.path().join("KEY.pem"),
    );
    fs::write(&r, record.bytes()).unwrap();
    fs::write(&s, record.signature().0).unwrap();
    fs::write(&k, key.public_key().to_pem()).unwrap();
    let verify = [
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        arg(&k),
        "-rawin",
        "-in",
        arg(&r),
        "-sigfile",
        arg(&s),
    ];
    let out = run_ok("openssl", &verify);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Signature Verified Successfully"));

    // One byte changed in the record: openssl refuses it too.
    let mut bytes = record.bytes().to_vec();
    bytes[10] ^= 1;
    fs::write(&r, bytes).unwrap();
    assert!(!run("openssl", &verify).status.success());
}

#[test]
fn a_record_openssl_signs_with_its_own_key_verifies_in_custody() {
    let dir = tempfile::tempdir().unwrap();
    let (sk, pk) = (
        dir.path().join("device.pem"),
        dir.path().join("device.pub.pem"),
    );
    run_ok(
        "openssl",
        &["genpkey", "-algorithm", "ed25519", "-out", arg(&sk)],
    );
    run_ok(
        "openssl",
        &["pkey", "-in", arg(&sk), "-pubout", "-out", arg(&pk)],
    );
    let public = PublicKey::from_pem(&fs::read_to_string(&pk).unwrap()).unwrap();

    // The key id is what openssl and sha256sum compute over the DER public key.
    let der = run_ok(
        "openssl",
        &["pkey", "-pubin", "-in", arg(&pk), "-outform", "DER"],
    )
    .stdout;
    assert_eq!(public.key_id().0, MediaHash::of(&der).to_hex());

    // openssl's private key file (PKCS#8 v1) is also usable as a device key.
    let same = SigningKey::from_pkcs8_pem(&fs::read_to_string(&sk).unwrap()).unwrap();
    assert_eq!(same.public_key(), public);

    let body = sample_clip_body(
        &public,
        "A123456",
        1,
        None,
        "DCIM/1.MP4",
        5,
        MediaHash::of(b"12345"),
    );
    let mut bytes = serde_json::to_vec_pretty(&body).unwrap();
    bytes.push(b'\n');
    let (r, s) = (dir.path().join("R.json"), dir.path().join("R.sig"));
    fs::write(&r, &bytes).unwrap();
    run_ok(
        "openssl",
        &[
            "pkeyutl",
            "-sign",
            "-inkey",
            arg(&sk),
            "-rawin",
            "-in",
            arg(&r),
            "-out",
            arg(&s),
        ],
    );
    let sig = Signature::from_bytes(&fs::read(&s).unwrap()).unwrap();
    let parsed = Record::parse(fs::read(&r).unwrap()).unwrap();
    assert!(parsed.verify(&public, &sig).is_ok());

    let edited = String::from_utf8(bytes)
        .unwrap()
        .replace("\"size\": 5", "\"size\": 6");
    let other = Record::parse(edited.into_bytes()).unwrap();
    assert!(other.verify(&public, &sig).is_err());
}
