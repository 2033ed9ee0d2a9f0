//! Fuzzes the NMEA reader line by line and as a stream split at a data-chosen point: never
//! a panic, and the stream gives the same sentences however it is split.
#![no_main]

use firmware_bridge::nmea::{NmeaReader, parse_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for line in data.split(|&b| b == b'\n') {
        let _ = parse_line(line);
    }
    let whole = NmeaReader::new().push(data);
    let cut = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let mut reader = NmeaReader::new();
    let mut split = reader.push(&data[..cut]);
    split.extend(reader.push(&data[cut..]));
    assert_eq!(format!("{whole:?}"), format!("{split:?}"), "split at {cut}");
});
