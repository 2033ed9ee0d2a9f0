//! hw-profiles: each recorder or handheld-terminal model described as data.
//!
//! One TOML file per model (serial settings, storage layout and file-name pattern, segment
//! length, codecs, capacity, clock drift, capabilities), with a strict loader (issue 3).
//! Until then this crate holds no code.
