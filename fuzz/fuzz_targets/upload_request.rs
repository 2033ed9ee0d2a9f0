//! Fuzzes what the HTTPS upload endpoint reads from a terminal's request: the
//! `Authorization` header and the file path. A header that parses prints back to the same
//! values; a path that is accepted stays under the device's upload folder and out of the
//! station's inbox.
#![no_main]

use std::path::{Component, Path};

use custody::upload::{auth_header, check_path, parse_auth_header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some((serial, time, sig)) = parse_auth_header(text) {
        let printed = auth_header(&serial, time, &sig);
        assert_eq!(parse_auth_header(&printed), Some((serial, time, sig)));
    }
    if check_path(text).is_ok() {
        let path = Path::new(text);
        assert!(
            path.components().all(|c| matches!(c, Component::Normal(_))),
            "{text:?}"
        );
        let mut parts = text.split('/');
        assert!(
            !(parts.next() == Some("custody") && parts.next() == Some("inbox")),
            "{text:?}"
        );
    }
});
