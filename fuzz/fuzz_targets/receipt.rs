//! Fuzzes the station receipt a device reads from its inbox. A signature cannot be forged
//! by mutation, so the harness signs what the fuzzer made: the checkpoint inside (with a
//! test log key named for its origin) and then the receipt's bytes, addressed to the
//! device the receipt names. That takes the fuzzer past the signatures, into the parser,
//! the checkpoint and the inclusion proofs: never a panic, and a receipt covers only seqs
//! it lists.
#![no_main]

use custody::{KeyId, NoteSigner, Receipt, SigningKey};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn log_key() -> SigningKey {
    SigningKey::from_seed(&[42; 32]).expect("seed")
}

/// The receipt with its checkpoint re-signed by the test log key, and that key's signer.
fn resigned(data: &[u8]) -> Option<(Vec<u8>, NoteSigner, String, KeyId)> {
    let mut receipt: Value = serde_json::from_slice(data).ok()?;
    let note = receipt.get("checkpoint")?.as_str()?;
    let body = &note[..=note.find("\n\n")?];
    let origin = body.lines().next()?;
    let signer = NoteSigner::new(origin, log_key()).ok()?;
    receipt["checkpoint"] = Value::String(signer.sign(body).ok()?);
    let serial = receipt.get("device")?.as_str()?.to_owned();
    let key_id: KeyId = serde_json::from_value(receipt.get("device_key_id")?.clone()).ok()?;
    Some((
        serde_json::to_vec_pretty(&receipt).ok()?,
        signer,
        serial,
        key_id,
    ))
}

fuzz_target!(|data: &[u8]| {
    let Some((bytes, station, serial, key_id)) = resigned(data) else {
        // Not even JSON with a checkpoint: the raw bytes, signed, still go through.
        let key = log_key();
        let sig = key.sign(data);
        let station = NoteSigner::new("test.example/station-01", key).expect("signer");
        let _ = Receipt::open(
            data,
            &sig.0,
            station.verifier(),
            "A100001",
            &KeyId(String::new()),
        );
        return;
    };
    let sig = log_key().sign(&bytes);
    let Ok(receipt) = Receipt::open(&bytes, &sig.0, station.verifier(), &serial, &key_id) else {
        return;
    };
    let listed: Vec<u64> = receipt.body().entries.iter().map(|e| e.seq).collect();
    for seq in listed.iter().copied().chain([0, u64::MAX]) {
        if receipt.covers(seq, data).is_ok() {
            assert!(listed.contains(&seq), "covers seq {seq} it does not list");
        }
    }
});
