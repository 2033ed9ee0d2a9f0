//! Fuzzes signed notes, checkpoints, verifier keys and witness cosignatures (C2SP
//! signed-note, tlog-checkpoint, tlog-cosignature). The text is also signed with a known
//! log key, so checkpoint parsing behind a valid signature is reached: never a panic, and
//! a checkpoint that opens has the body it was signed over.
#![no_main]

use custody::{Checkpoint, NoteSigner, NoteVerifier, SignedNote, SigningKey, parse_cosignature};
use libfuzzer_sys::fuzz_target;

const ORIGIN: &str = "test.example/station-01";

fuzz_target!(|data: &[u8]| {
    let _ = SignedNote::parse(data);
    let _ = parse_cosignature(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = NoteVerifier::parse(text.trim_end());
    let _ = NoteSigner::parse(text.trim_end());
    if let Ok(checkpoint) = Checkpoint::parse_body(text) {
        let again = Checkpoint::parse_body(&checkpoint.body()).expect("a body re-parses");
        assert_eq!(again, checkpoint);
    }
    let signer =
        NoteSigner::new(ORIGIN, SigningKey::from_seed(&[42; 32]).expect("seed")).expect("signer");
    if let Ok(note) = signer.sign(text)
        && let Ok((checkpoint, witnesses)) =
            Checkpoint::open(note.as_bytes(), ORIGIN, signer.verifier(), &[])
    {
        assert_eq!(checkpoint.body(), text);
        assert!(witnesses.is_empty());
    }
});
