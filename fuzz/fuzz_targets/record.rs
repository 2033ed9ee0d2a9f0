//! Fuzzes the evidence record parser (bytes from a device): never a panic; a record that
//! parses parses again to the same body, its hash is the SHA-256 of its exact bytes, and a
//! signature that was never made does not verify.
#![no_main]

use custody::{Record, RecordHash, Signature, SigningKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(record) = Record::parse(data.to_vec()) else {
        return;
    };
    assert_eq!(record.hash(), RecordHash::of(data));
    let again = Record::parse(record.bytes().to_vec()).expect("a parsed record parses again");
    assert_eq!(again.body(), record.body());
    let key = SigningKey::from_seed(&[7; 32]).expect("seed").public_key();
    assert!(record.verify(&key, &Signature([0; 64])).is_err());
});
