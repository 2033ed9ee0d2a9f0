//! hw-profiles: each recorder or handheld-terminal model described as data.
//!
//! One TOML file per model in `profiles/` (serial settings, storage layout and file-name
//! pattern, segment length, codecs, capacity, clock drift, capabilities). The loader
//! refuses unknown keys and broken rules, naming the file and line, because a typo in a
//! profile must not quietly fall back to a default.
//!
//! ```
//! let profiles = hw_profiles::load_dir(&hw_profiles::shipped_dir())?;
//! let recorder = profiles.iter().find(|p| p.id == "ga947-recorder").unwrap();
//! let pattern = recorder.file_pattern()?;
//! let start = chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap().and_hms_opt(9, 0, 0).unwrap();
//! assert_eq!(pattern.render("A100001", start, 1), "A100001_20261120_090000_0001.MP4");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod pattern;
mod profile;

pub use pattern::{FileNamePattern, NameParts, PatternError};
pub use profile::{
    Capabilities, ClockSpec, Closing, DeviceKind, FlowControl, HwProfile, Network, Parity,
    ProfileError, RecordingSpec, SerialSettings, StorageLayout, load_dir, profile_files,
    shipped_dir,
};

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn every_shipped_profile_loads() {
        let profiles = load_dir(&shipped_dir()).unwrap();
        assert!(
            profiles.len() >= 3,
            "only {} profiles shipped",
            profiles.len()
        );
        let kinds: Vec<DeviceKind> = profiles.iter().map(|p| p.kind).collect();
        for kind in [
            DeviceKind::Recorder,
            DeviceKind::HandheldTerminal,
            DeviceKind::LegacyRecorder,
        ] {
            assert!(kinds.contains(&kind), "no {kind:?} profile");
        }
    }

    fn recorder_text() -> String {
        std::fs::read_to_string(shipped_dir().join("ga947-recorder.toml")).unwrap()
    }

    #[test]
    fn an_unknown_key_names_the_file_and_line() {
        let text = recorder_text().replace("segment-seconds = 600", "segment-second = 600");
        let err =
            HwProfile::from_toml(Path::new("profiles/ga947-recorder.toml"), &text).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("profiles/ga947-recorder.toml: "), "{msg}");
        assert!(msg.contains("line 28"), "{msg}");
        assert!(msg.contains("segment-second"), "{msg}");
    }

    #[test]
    fn broken_rules_are_refused() {
        let path = Path::new("ga947-recorder.toml");
        let cases = [
            ("closing = \"rename\"", "closing = \"stops-growing\""),
            ("protocol-version = 1", "protocol-version = 9"),
            (
                "recording-dir = \"DCIM/100MEDIA\"",
                "recording-dir = \"../etc\"",
            ),
            ("id = \"ga947-recorder\"", "id = \"other\""),
            ("{seq:4}", "{seq:0}"),
        ];
        for (from, to) in cases {
            let text = recorder_text().replace(from, to);
            assert!(HwProfile::from_toml(path, &text).is_err(), "{to}");
        }
        let no_serial = recorder_text().split("[serial]").next().unwrap().to_owned()
            + &recorder_text()
                .split("[storage]")
                .nth(1)
                .map(|s| format!("[storage]{s}"))
                .unwrap();
        let err = HwProfile::from_toml(path, &no_serial).unwrap_err();
        assert!(err.why.contains("[serial]"), "{err}");
    }
}
