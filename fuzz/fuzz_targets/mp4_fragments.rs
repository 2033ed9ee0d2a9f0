//! Fuzzes the agent's fragmented-MP4 reader (bytes of a clip still being written): never
//! a panic, and the same bytes fed whole or in two pieces give the same duration. The
//! reader's own source file is compiled in: a pure module, so the fuzz build needs none
//! of the agent's SQLite, FFmpeg or async stack.
#![no_main]

#[path = "../../agent/src/fragments.rs"]
mod fragments;

use fragments::FragmentTimeline;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut whole = FragmentTimeline::default();
    whole.feed(data);
    let cut = data
        .len()
        .min(usize::from(data.first().copied().unwrap_or(0)) * 7);
    let mut split = FragmentTimeline::default();
    split.feed(&data[..cut]);
    split.feed(&data[cut..]);
    assert_eq!(whole.duration_ms(), split.duration_ms(), "split at {cut}");
});
