use proptest::prelude::*;

use super::*;
use crate::message::OfficerBinding;

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 张三襄阳市局_-]{0,40}"
}

fn officer() -> impl Strategy<Value = OfficerBinding> {
    (text(), text(), text(), text()).prop_map(|(police_no, name, unit_code, unit_name)| {
        OfficerBinding {
            police_no,
            name,
            unit_code,
            unit_name,
        }
    })
}

/// Every message of the catalogue, with arbitrary field values.
fn message() -> impl Strategy<Value = McuMessage> {
    use McuMessage as M;
    prop_oneof![
        Just(M::Identify),
        Just(M::GetOfficer),
        officer().prop_map(M::SetOfficer),
        Just(M::GetTime),
        any::<i64>().prop_map(|unix_ms| M::SetTime { unix_ms }),
        Just(M::GetBattery),
        Just(M::GetStorage),
        text().prop_map(|password| M::EnterMassStorage { password }),
        (any::<u8>(), any::<u16>()).prop_map(|(led, vibrate_ms)| M::Feedback { led, vibrate_ms }),
        any::<u8>().prop_map(|slot| M::GetPublicKey { slot }),
        (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..=512))
            .prop_map(|(slot, message)| M::Sign { slot, message }),
        (
            any::<u8>(),
            proptest::collection::vec(any::<u8>(), 1..=512),
            0u32..=crate::message::MAX_SIGNED_MESSAGE - 512,
            0u32..=512,
        )
            .prop_map(|(slot, part, offset, beyond)| {
                let len = u32::try_from(part.len()).unwrap();
                M::SignPart {
                    slot,
                    total: offset + len + beyond.min(512 - len),
                    offset,
                    part,
                }
            }),
        Just(M::Ack),
        (any::<u8>(), text()).prop_map(|(code, reason)| M::Nak { code, reason }),
        (text(), "[A-Z0-9]{7}", text(), any::<u8>()).prop_map(
            |(model, serial, firmware, protocol)| M::Identity {
                model,
                serial,
                firmware,
                protocol
            }
        ),
        officer().prop_map(M::Officer),
        (any::<i64>(), any::<i64>(), any::<i32>()).prop_map(
            |(unix_ms, last_set_unix_ms, drift_ppb)| M::Time {
                unix_ms,
                last_set_unix_ms,
                drift_ppb
            }
        ),
        (0u8..=100, any::<u16>(), any::<bool>()).prop_map(|(percent, millivolts, charging)| {
            M::Battery {
                percent,
                millivolts,
                charging,
            }
        }),
        (any::<u64>(), any::<u64>()).prop_map(|(a, b)| M::Storage {
            total_bytes: a.max(b),
            free_bytes: a.min(b)
        }),
        any::<[u8; 32]>().prop_map(|key| M::PublicKey { key }),
        proptest::collection::vec(any::<u8>(), 64).prop_map(|v| M::Signature {
            sig: v.try_into().unwrap()
        }),
        (any::<i64>(), text()).prop_map(|(unix_ms, file)| M::RecordingStarted { unix_ms, file }),
        any::<i64>().prop_map(|unix_ms| M::RecordingStopped { unix_ms }),
        (any::<i64>(), text()).prop_map(|(unix_ms, file)| M::SegmentClosed { unix_ms, file }),
        any::<i64>().prop_map(|unix_ms| M::KeyMark { unix_ms }),
        proptest::collection::vec(any::<u8>(), 0..1000).prop_map(|text| M::Nmea { text }),
        Just(M::Docked),
        Just(M::Undocked),
    ]
}

fn frame(seq: u8, msg: McuMessage) -> Vec<u8> {
    encode(&Frame { seq, msg }).unwrap()
}

#[test]
fn crc16_is_ccitt_false() {
    assert_eq!(crc16(b"123456789"), 0x29B1);
}

#[test]
fn garbage_between_frames_is_skipped_and_counted() {
    let mut bytes = b"\x00\xffnoise\xa5".to_vec();
    bytes.extend(frame(1, McuMessage::Identify));
    bytes.extend(b"\xa5\x5a\x01");
    bytes.extend(b"more noise");
    bytes.extend(frame(2, McuMessage::Docked));
    let mut dec = FrameDecoder::new();
    let got = dec.push(&bytes);
    assert_eq!(
        got,
        [
            StreamItem::Frame(Frame {
                seq: 1,
                msg: McuMessage::Identify
            }),
            StreamItem::Frame(Frame {
                seq: 2,
                msg: McuMessage::Docked
            })
        ]
    );
    assert!(dec.stats().garbage_bytes > 10, "{:?}", dec.stats());
}

#[test]
fn a_corrupt_frame_is_counted_and_the_next_one_still_arrives() {
    let mut bad = frame(1, McuMessage::KeyMark { unix_ms: 7 });
    let n = bad.len();
    bad[n - 4] ^= 0x10;
    let mut dec = FrameDecoder::new();
    let mut got = dec.push(&bad);
    got.extend(dec.push(&frame(2, McuMessage::Undocked)));
    assert_eq!(
        got,
        [StreamItem::Frame(Frame {
            seq: 2,
            msg: McuMessage::Undocked
        })]
    );
    assert_eq!(dec.stats().crc_errors, 1);
}

#[test]
fn an_impossible_length_is_refused_before_allocating() {
    let header = [0xA5, 0x5A, 1, 0xFF, 0xFF, 0, 0x01];
    assert_eq!(decode(&header), Err(FrameError::TooLong(0xFFFF)));
    let mut dec = FrameDecoder::new();
    let mut bytes = header.to_vec();
    bytes.extend(frame(3, McuMessage::Ack));
    assert_eq!(
        dec.push(&bytes),
        [StreamItem::Frame(Frame {
            seq: 3,
            msg: McuMessage::Ack
        })]
    );
    assert_eq!(dec.stats().oversized, 1);
}

#[test]
fn another_protocol_version_is_reported_not_dropped() {
    let mut f = frame(1, McuMessage::Identify);
    f[2] = 2;
    let crc = crc16(&f[2..f.len() - 2]).to_be_bytes();
    let n = f.len();
    f[n - 2..].copy_from_slice(&crc);
    assert_eq!(decode(&f), Err(FrameError::Version(2)));
    assert_eq!(FrameDecoder::new().push(&f), [StreamItem::WrongVersion(2)]);
}

#[test]
fn bad_payloads_are_message_errors() {
    use crate::message::MessageError;
    assert_eq!(
        McuMessage::parse(0x7E, &[]),
        Err(MessageError::UnknownType(0x7E))
    );
    assert_eq!(
        McuMessage::parse(0x05, &[0; 7]),
        Err(MessageError::Truncated(0x05))
    );
    assert_eq!(
        McuMessage::parse(0x01, &[0]),
        Err(MessageError::Trailing(0x01, 1))
    );
    assert!(
        McuMessage::parse(0x45, &[101, 0, 0, 0]).is_err(),
        "battery 101%"
    );
    let identity = McuMessage::Identity {
        model: "m".into(),
        serial: "A1B2C3D".into(),
        firmware: "1".into(),
        protocol: 1,
    };
    let (kind, mut payload) = identity.encode().unwrap();
    payload[3] = b'/';
    assert!(
        McuMessage::parse(kind, &payload).is_err(),
        "serial with a slash"
    );
    let part = |total: u32, offset: u32, len: usize| {
        let msg = McuMessage::SignPart {
            slot: 0,
            total,
            offset,
            part: vec![7; len],
        };
        let (kind, payload) = msg.encode().unwrap();
        McuMessage::parse(kind, &payload)
    };
    assert!(part(1024, 512, 512).is_ok(), "the last part of 1 KiB");
    assert!(
        part(1024, 600, 512).is_err(),
        "a part ending after the message"
    );
    assert!(
        part(100, u32::MAX, 1).is_err(),
        "an offset near the u32 limit"
    );
    assert!(part(1024, 0, 0).is_err(), "an empty part");
    assert!(part(1024, 0, 513).is_err(), "a part over 512 bytes");
    assert!(part(64 * 1024 + 1, 0, 512).is_err(), "more than 64 KiB");
    assert!(
        McuMessage::Nak {
            code: 1,
            reason: "x".repeat(300)
        }
        .encode()
        .is_err()
    );
}

proptest! {
    #[test]
    fn every_message_round_trips(seq in any::<u8>(), msg in message()) {
        let bytes = frame(seq, msg.clone());
        prop_assert_eq!(decode(&bytes), Ok(Decoded::Frame { frame: Frame { seq, msg }, used: bytes.len() }));
    }

    #[test]
    fn frames_split_anywhere_decode_the_same(msgs in proptest::collection::vec(message(), 1..6), cut in 1usize..50) {
        let bytes: Vec<u8> = msgs.iter().enumerate().flat_map(|(i, m)| frame(u8::try_from(i).unwrap(), m.clone())).collect();
        let mut dec = FrameDecoder::new();
        let got: Vec<StreamItem> = bytes.chunks(cut).flat_map(|c| dec.push(c)).collect();
        let want: Vec<StreamItem> = msgs.into_iter().enumerate().map(|(i, msg)| StreamItem::Frame(Frame { seq: u8::try_from(i).unwrap(), msg })).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
        let _ = decode(&bytes);
        let mut dec = FrameDecoder::new();
        let _ = dec.push(&bytes);
    }
}
