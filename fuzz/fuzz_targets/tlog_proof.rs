//! Fuzzes `c2sp.org/tlog-proof@v1` text (proofs handed to courts and read back): never a
//! panic, and a proof that parses prints as text that parses to the same proof.
#![no_main]

use custody::{NoteSigner, SigningKey, TlogProof};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(proof) = TlogProof::parse(data) else {
        return;
    };
    let again = TlogProof::parse(proof.to_text().as_bytes()).expect("printed proof parses");
    assert_eq!(again, proof);
    let log = NoteSigner::new(
        "test.example/station-01",
        SigningKey::from_seed(&[42; 32]).expect("seed"),
    )
    .expect("signer");
    let _ = proof.verify(data, "test.example/station-01", log.verifier(), &[]);
});
