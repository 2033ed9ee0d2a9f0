//! Fuzzes clip and document numbers (typed at a terminal, read from records) and the
//! agency's numbering TOML: never a panic, and whatever parses renders in a canonical
//! form that parses to the same number.
#![no_main]

use std::sync::LazyLock;

use custody::{NumberingScheme, ProvisionalNumber};
use libfuzzer_sys::fuzz_target;

static SCHEME: LazyLock<NumberingScheme> = LazyLock::new(|| {
    NumberingScheme::from_toml(include_str!("../../config/numbering.example.toml"))
        .expect("the example scheme loads")
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let scheme = &*SCHEME;
    if let Ok(doc) = scheme.parse_document(text) {
        let canonical = doc.to_string();
        assert_eq!(
            scheme.parse_document(&canonical).as_ref(),
            Ok(&doc),
            "{canonical}"
        );
    }
    if let Ok(clip) = scheme.parse_clip(text) {
        let canonical = scheme.render_clip(&clip);
        assert_eq!(
            scheme.parse_clip(&canonical).as_ref(),
            Ok(&clip),
            "{canonical}"
        );
    }
    if let Ok(number) = ProvisionalNumber::parse(text) {
        let canonical = number.to_string();
        assert_eq!(
            ProvisionalNumber::parse(&canonical).as_ref(),
            Ok(&number),
            "{canonical}"
        );
    }
    let _ = NumberingScheme::from_toml(text);
});
