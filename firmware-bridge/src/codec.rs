//! The frame codec of the MCU link (see `PROTOCOL.md`): a pure function from bytes to a
//! frame, "need more", or an error; length checked before any allocation; never a panic.
//! [`FrameDecoder`] wraps it for a byte stream: it resynchronises after garbage and counts
//! what it dropped.

use crate::message::{McuMessage, MessageError};

/// First two bytes of every frame.
pub const SYNC: [u8; 2] = [0xA5, 0x5A];
/// Protocol version this build speaks.
pub const PROTOCOL_VERSION: u8 = 1;
/// Largest payload in bytes: an NMEA burst or a 512-byte sign request fits with room.
pub const MAX_PAYLOAD: usize = 1024;
/// Bytes before the payload: sync (2), version, length (2), seq, type.
pub const HEADER_LEN: usize = 7;
/// Bytes after the payload: CRC-16.
pub const TRAILER_LEN: usize = 2;

/// A frame that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The bytes at the start are not the sync word.
    #[error("no frame sync at the start")]
    BadSync,
    /// A length field beyond [`MAX_PAYLOAD`]; nothing was allocated.
    #[error("payload length {0} is more than the {MAX_PAYLOAD} allowed")]
    TooLong(usize),
    /// The CRC does not match.
    #[error("CRC mismatch: frame says {stated:04X}, computed {computed:04X}")]
    Crc {
        /// From the frame.
        stated: u16,
        /// Computed.
        computed: u16,
    },
    /// The peer speaks another protocol version.
    #[error("peer speaks protocol version {0}, this build speaks {PROTOCOL_VERSION}")]
    Version(u8),
    /// A well-formed frame whose payload is not a valid message.
    #[error("bad message in frame")]
    Message(#[from] MessageError),
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// Request id: a response carries its request's; events count on their own.
    pub seq: u8,
    /// The message.
    pub msg: McuMessage,
}

/// What [`decode`] found at the start of a buffer.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// A whole frame, and how many bytes it used.
    Frame {
        /// The frame.
        frame: Frame,
        /// Bytes consumed.
        used: usize,
    },
    /// The buffer holds the start of a frame; read more.
    NeedMore,
}

/// CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF), over version..payload.
pub fn crc16(bytes: &[u8]) -> u16 {
    let mut crc = 0xFFFFu16;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Decodes the frame at the start of `buf`.
///
/// # Errors
/// [`FrameError`] when the start of `buf` is not a valid frame.
pub fn decode(buf: &[u8]) -> Result<Decoded, FrameError> {
    match buf {
        [] => return Ok(Decoded::NeedMore),
        [s0] if *s0 == SYNC[0] => return Ok(Decoded::NeedMore),
        [s0, s1, ..] if [*s0, *s1] == SYNC => {}
        _ => return Err(FrameError::BadSync),
    }
    let Some(&[version, hi, lo, seq, kind]) = buf.get(2..HEADER_LEN) else {
        return Ok(Decoded::NeedMore);
    };
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    if len > MAX_PAYLOAD {
        return Err(FrameError::TooLong(len));
    }
    let total = HEADER_LEN + len + TRAILER_LEN;
    let Some(frame) = buf.get(..total) else {
        return Ok(Decoded::NeedMore);
    };
    let stated = u16::from_be_bytes([frame[total - 2], frame[total - 1]]);
    let computed = crc16(&frame[2..total - 2]);
    if stated != computed {
        return Err(FrameError::Crc { stated, computed });
    }
    if version != PROTOCOL_VERSION {
        return Err(FrameError::Version(version));
    }
    let msg = McuMessage::parse(kind, &frame[HEADER_LEN..total - 2])?;
    Ok(Decoded::Frame {
        frame: Frame { seq, msg },
        used: total,
    })
}

/// Encodes a frame.
///
/// # Errors
/// [`MessageError::TooLong`] when the payload would exceed [`MAX_PAYLOAD`].
pub fn encode(frame: &Frame) -> Result<Vec<u8>, MessageError> {
    let (kind, payload) = frame.msg.encode()?;
    let len = u16::try_from(payload.len())
        .ok()
        .filter(|&l| usize::from(l) <= MAX_PAYLOAD)
        .ok_or(MessageError::TooLong)?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len() + TRAILER_LEN);
    out.extend_from_slice(&SYNC);
    out.push(PROTOCOL_VERSION);
    out.extend_from_slice(&len.to_be_bytes());
    out.push(frame.seq);
    out.push(kind);
    out.extend_from_slice(&payload);
    let crc = crc16(&out[2..]);
    out.extend_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// Counts of what a [`FrameDecoder`] dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames decoded.
    pub frames: u64,
    /// Bytes skipped while looking for a sync word.
    pub garbage_bytes: u64,
    /// Frames dropped for a CRC mismatch.
    pub crc_errors: u64,
    /// Frames dropped for an impossible length.
    pub oversized: u64,
    /// Frames with a valid CRC but a bad message.
    pub bad_messages: u64,
}

/// What a stream decoder yields: a frame, or a frame of another protocol version (which
/// the transport reports instead of silently dropping).
#[derive(Debug, Clone, PartialEq)]
pub enum StreamItem {
    /// A decoded frame.
    Frame(Frame),
    /// A CRC-valid frame of another protocol version.
    WrongVersion(u8),
}

/// Decodes frames from a byte stream with a bounded buffer, resynchronising after
/// garbage, CRC errors and impossible lengths.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    stats: LinkStats,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// What was dropped so far.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// Drops a partial frame (after a reset or reconnect of the peer).
    pub fn reset(&mut self) {
        self.buf.clear();
    }

    /// Feeds bytes; returns everything they completed. The buffer never holds more than
    /// one maximal frame.
    pub fn push(&mut self, mut bytes: &[u8]) -> Vec<StreamItem> {
        let mut out = Vec::new();
        let max = HEADER_LEN + MAX_PAYLOAD + TRAILER_LEN;
        while !bytes.is_empty() {
            let room = max - self.buf.len();
            let take = room.min(bytes.len());
            self.buf.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            self.drain(&mut out);
        }
        out
    }

    fn drain(&mut self, out: &mut Vec<StreamItem>) {
        loop {
            let skip = match decode(&self.buf) {
                Ok(Decoded::NeedMore) => return,
                Ok(Decoded::Frame { frame, used }) => {
                    self.stats.frames += 1;
                    out.push(StreamItem::Frame(frame));
                    self.buf.drain(..used);
                    continue;
                }
                Err(FrameError::BadSync) => {
                    // Skip to the next possible sync byte.
                    let next = self
                        .buf
                        .iter()
                        .skip(1)
                        .position(|&b| b == SYNC[0])
                        .map_or(self.buf.len(), |p| p + 1);
                    self.stats.garbage_bytes += next as u64;
                    next
                }
                Err(FrameError::Crc { .. }) => {
                    self.stats.crc_errors += 1;
                    1
                }
                Err(FrameError::TooLong(_)) => {
                    self.stats.oversized += 1;
                    1
                }
                Err(FrameError::Version(v)) => {
                    out.push(StreamItem::WrongVersion(v));
                    self.frame_len()
                }
                Err(FrameError::Message(_)) => {
                    self.stats.bad_messages += 1;
                    self.frame_len()
                }
            };
            self.buf.drain(..skip.min(self.buf.len()));
        }
    }

    /// Length of the (CRC-valid) frame at the start of the buffer.
    fn frame_len(&self) -> usize {
        let len = usize::from(u16::from_be_bytes([self.buf[3], self.buf[4]]));
        HEADER_LEN + len + TRAILER_LEN
    }
}

#[cfg(test)]
mod tests;
