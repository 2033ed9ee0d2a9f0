//! Fuzzes the MCU frame decoder and the NMEA reader: any bytes, any split, never a panic,
//! never a buffer beyond one frame, and every decoded frame re-encodes to the same bytes.
#![no_main]

use firmware_bridge::codec::{
    Decoded, Frame, FrameDecoder, HEADER_LEN, MAX_PAYLOAD, StreamItem, decode, encode,
};
use firmware_bridge::nmea::NmeaReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Decoded::Frame { frame, used }) = decode(data) {
        let again = encode(&frame).expect("a decoded frame encodes");
        assert_eq!(again, data[..used], "decode then encode is the identity");
    }
    // The same bytes through the stream decoder, split at a data-chosen point.
    let cut = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let mut dec = FrameDecoder::new();
    let mut frames: Vec<Frame> = Vec::new();
    for part in [&data[..cut], &data[cut..]] {
        for item in dec.push(part) {
            if let StreamItem::Frame(f) = item {
                assert!(encode(&f).is_ok_and(|b| b.len() <= HEADER_LEN + MAX_PAYLOAD + 2));
                frames.push(f);
            }
        }
    }
    let mut nmea = NmeaReader::new();
    let _ = nmea.push(data);
});
