//! The message catalogue of the MCU link (see `PROTOCOL.md`): each message's type byte
//! and payload layout. Integers are big-endian, text is a `u8` length and UTF-8, byte
//! strings a `u16` length. Parsing checks every length against what is left and refuses
//! trailing bytes.

/// A payload that is not a valid message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// A type byte this protocol version does not define.
    #[error("unknown message type 0x{0:02X}")]
    UnknownType(u8),
    /// The payload ends inside a field.
    #[error("payload of 0x{0:02X} ends early")]
    Truncated(u8),
    /// Bytes after the last field.
    #[error("payload of 0x{0:02X} has {1} bytes too many")]
    Trailing(u8, usize),
    /// A field with a value outside its rules (text not UTF-8, serial not 7 characters…).
    #[error("payload of 0x{kind:02X}: {why}")]
    Invalid {
        /// Message type.
        kind: u8,
        /// What is wrong.
        why: &'static str,
    },
    /// Too long to encode (text over 255 bytes, payload over the frame limit).
    #[error("message too long to encode")]
    TooLong,
}

/// 执法人员绑定: the officer a device is issued to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfficerBinding {
    /// 警号 / 执法证号.
    pub police_no: String,
    /// 姓名.
    pub name: String,
    /// 单位编号.
    pub unit_code: String,
    /// 单位名称.
    pub unit_name: String,
}

/// Every message of protocol version 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum McuMessage {
    // Requests, agent to MCU (0x01..=0x3F).
    /// Ask who the device is.
    Identify,
    /// Read the officer binding.
    GetOfficer,
    /// Write the officer binding.
    SetOfficer(OfficerBinding),
    /// Read the RTC.
    GetTime,
    /// Set the RTC (milliseconds since the Unix epoch, UTC).
    SetTime {
        /// New time.
        unix_ms: i64,
    },
    /// Read battery and charging state.
    GetBattery,
    /// Read storage capacity.
    GetStorage,
    /// Switch the storage to USB mass-storage mode (docking), unlocked with a password.
    EnterMassStorage {
        /// Mass-storage password.
        password: String,
    },
    /// LED and vibration feedback.
    Feedback {
        /// LED pattern: 0 off, 1 green, 2 red, 3 blinking red.
        led: u8,
        /// Vibration in milliseconds, 0 for none.
        vibrate_ms: u16,
    },
    /// Ask the secure element for its public key.
    GetPublicKey {
        /// Key slot.
        slot: u8,
    },
    /// Ask the secure element to sign bytes with a key that never leaves it.
    Sign {
        /// Key slot.
        slot: u8,
        /// Bytes to sign (at most 512).
        message: Vec<u8>,
    },
    /// One part of a longer message for the secure element to sign (a whole record): the
    /// element gathers the parts in order and signs once the last one arrives.
    SignPart {
        /// Key slot.
        slot: u8,
        /// Length of the whole message (at most [`MAX_SIGNED_MESSAGE`]).
        total: u32,
        /// Where this part starts in the message.
        offset: u32,
        /// The part (1 to [`MAX_SIGN_BYTES`] bytes).
        part: Vec<u8>,
    },

    // Responses, MCU to agent (0x40..=0x7F).
    /// Request done.
    Ack,
    /// Request refused.
    Nak {
        /// Reason code: 1 unknown, 2 bad argument, 3 wrong password, 4 busy, 5 no secure element.
        code: u8,
        /// Human reason.
        reason: String,
    },
    /// Who the device is.
    Identity {
        /// Model (hw-profile id).
        model: String,
        /// 产品序号: 7-character product serial.
        serial: String,
        /// Firmware version.
        firmware: String,
        /// Protocol version the MCU speaks.
        protocol: u8,
    },
    /// The officer binding.
    Officer(OfficerBinding),
    /// The RTC.
    Time {
        /// RTC time, ms since the Unix epoch.
        unix_ms: i64,
        /// When it was last set, ms since the Unix epoch (0: never).
        last_set_unix_ms: i64,
        /// Drift measured at the last set, in parts per billion (positive: fast).
        drift_ppb: i32,
    },
    /// Battery.
    Battery {
        /// Charge, 0..=100.
        percent: u8,
        /// Voltage in millivolts.
        millivolts: u16,
        /// On the dock's charger.
        charging: bool,
    },
    /// Storage.
    Storage {
        /// Capacity in bytes.
        total_bytes: u64,
        /// Free bytes.
        free_bytes: u64,
    },
    /// The secure element's public key.
    PublicKey {
        /// Ed25519 public key.
        key: [u8; 32],
    },
    /// A signature from the secure element.
    Signature {
        /// Ed25519 signature.
        sig: [u8; 64],
    },

    // Events, MCU to agent, unsolicited (0x80..=0xBF).
    /// Recording started into `file`.
    RecordingStarted {
        /// When, ms since the Unix epoch by the RTC.
        unix_ms: i64,
        /// File being written, relative to the storage root.
        file: String,
    },
    /// Recording stopped by the officer.
    RecordingStopped {
        /// When.
        unix_ms: i64,
    },
    /// A segment was closed (its final name).
    SegmentClosed {
        /// When.
        unix_ms: i64,
        /// Closed file, relative to the storage root.
        file: String,
    },
    /// 重点标记: the officer marked this moment as important.
    KeyMark {
        /// When.
        unix_ms: i64,
    },
    /// GNSS NMEA text passed through.
    Nmea {
        /// Raw NMEA bytes (one or more lines).
        text: Vec<u8>,
    },
    /// Put in a dock.
    Docked,
    /// Taken out of a dock.
    Undocked,
}

/// Type bytes: requests 0x01..=0x3F, responses 0x40..=0x7F, events 0x80..=0xBF.
mod type_byte {
    pub const IDENTIFY: u8 = 0x01;
    pub const GET_OFFICER: u8 = 0x02;
    pub const SET_OFFICER: u8 = 0x03;
    pub const GET_TIME: u8 = 0x04;
    pub const SET_TIME: u8 = 0x05;
    pub const GET_BATTERY: u8 = 0x06;
    pub const GET_STORAGE: u8 = 0x07;
    pub const ENTER_MASS_STORAGE: u8 = 0x08;
    pub const FEEDBACK: u8 = 0x09;
    pub const GET_PUBLIC_KEY: u8 = 0x0A;
    pub const SIGN: u8 = 0x0B;
    pub const SIGN_PART: u8 = 0x0C;
    pub const ACK: u8 = 0x40;
    pub const NAK: u8 = 0x41;
    pub const IDENTITY: u8 = 0x42;
    pub const OFFICER: u8 = 0x43;
    pub const TIME: u8 = 0x44;
    pub const BATTERY: u8 = 0x45;
    pub const STORAGE: u8 = 0x46;
    pub const PUBLIC_KEY: u8 = 0x47;
    pub const SIGNATURE: u8 = 0x48;
    pub const RECORDING_STARTED: u8 = 0x80;
    pub const RECORDING_STOPPED: u8 = 0x81;
    pub const SEGMENT_CLOSED: u8 = 0x82;
    pub const KEY_MARK: u8 = 0x83;
    pub const NMEA: u8 = 0x84;
    pub const DOCKED: u8 = 0x85;
    pub const UNDOCKED: u8 = 0x86;
}

/// Most bytes a secure element signs in one request, and the longest part of a
/// [`McuMessage::SignPart`].
pub const MAX_SIGN_BYTES: usize = 512;
/// Longest message signed in parts: a record's limit (`custody::MAX_RECORD_BYTES`).
pub const MAX_SIGNED_MESSAGE: u32 = 64 * 1024;

/// Reads fields off a payload, refusing to read past its end.
struct Reader<'a> {
    kind: u8,
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], MessageError> {
        if self.rest.len() < n {
            return Err(MessageError::Truncated(self.kind));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], MessageError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, MessageError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, MessageError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, MessageError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, MessageError> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, MessageError> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, MessageError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    fn bool(&mut self) -> Result<bool, MessageError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(MessageError::Invalid {
                kind: self.kind,
                why: "a flag is neither 0 nor 1",
            }),
        }
    }
    fn text(&mut self) -> Result<String, MessageError> {
        let len = usize::from(self.u8()?);
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| MessageError::Invalid {
            kind: self.kind,
            why: "text is not UTF-8",
        })
    }
    fn bytes(&mut self) -> Result<Vec<u8>, MessageError> {
        let len = usize::from(self.u16()?);
        Ok(self.take(len)?.to_vec())
    }
    fn officer(&mut self) -> Result<OfficerBinding, MessageError> {
        Ok(OfficerBinding {
            police_no: self.text()?,
            name: self.text()?,
            unit_code: self.text()?,
            unit_name: self.text()?,
        })
    }
    fn end(self) -> Result<(), MessageError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(MessageError::Trailing(self.kind, self.rest.len()))
        }
    }
}

/// Builds a payload.
#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn text(&mut self, s: &str) -> Result<(), MessageError> {
        self.0
            .push(u8::try_from(s.len()).map_err(|_| MessageError::TooLong)?);
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
    fn bytes(&mut self, b: &[u8]) -> Result<(), MessageError> {
        self.0.extend_from_slice(
            &u16::try_from(b.len())
                .map_err(|_| MessageError::TooLong)?
                .to_be_bytes(),
        );
        self.0.extend_from_slice(b);
        Ok(())
    }
    fn officer(&mut self, o: &OfficerBinding) -> Result<(), MessageError> {
        self.text(&o.police_no)?;
        self.text(&o.name)?;
        self.text(&o.unit_code)?;
        self.text(&o.unit_name)
    }
    fn raw(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
}

/// A product serial on the wire: exactly 7 ASCII letters or digits.
fn is_serial(s: &str) -> bool {
    s.len() == 7 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl McuMessage {
    /// Parses a payload of message type `kind`.
    ///
    /// # Errors
    /// [`MessageError`] for an unknown type or a payload that breaks its layout.
    #[expect(
        clippy::too_many_lines,
        reason = "one arm per message of the catalogue"
    )]
    pub fn parse(kind: u8, payload: &[u8]) -> Result<Self, MessageError> {
        use type_byte as k;
        let mut r = Reader {
            kind,
            rest: payload,
        };
        let msg = match kind {
            k::IDENTIFY => Self::Identify,
            k::GET_OFFICER => Self::GetOfficer,
            k::SET_OFFICER => Self::SetOfficer(r.officer()?),
            k::GET_TIME => Self::GetTime,
            k::SET_TIME => Self::SetTime { unix_ms: r.i64()? },
            k::GET_BATTERY => Self::GetBattery,
            k::GET_STORAGE => Self::GetStorage,
            k::ENTER_MASS_STORAGE => Self::EnterMassStorage {
                password: r.text()?,
            },
            k::FEEDBACK => Self::Feedback {
                led: r.u8()?,
                vibrate_ms: r.u16()?,
            },
            k::GET_PUBLIC_KEY => Self::GetPublicKey { slot: r.u8()? },
            k::SIGN => {
                let slot = r.u8()?;
                let message = r.bytes()?;
                if message.len() > MAX_SIGN_BYTES {
                    return Err(MessageError::Invalid {
                        kind,
                        why: "more than 512 bytes to sign",
                    });
                }
                Self::Sign { slot, message }
            }
            k::SIGN_PART => {
                let (slot, total, offset, part) = (r.u8()?, r.u32()?, r.u32()?, r.bytes()?);
                let invalid = |why| Err(MessageError::Invalid { kind, why });
                if part.is_empty() || part.len() > MAX_SIGN_BYTES {
                    return invalid("a part to sign is 1 to 512 bytes");
                }
                if total > MAX_SIGNED_MESSAGE {
                    return invalid("more than 64 KiB to sign");
                }
                // `part.len()` is at most 512: the sum cannot overflow a u64.
                if u64::from(offset) + part.len() as u64 > u64::from(total) {
                    return invalid("a part ends after the message");
                }
                Self::SignPart {
                    slot,
                    total,
                    offset,
                    part,
                }
            }
            k::ACK => Self::Ack,
            k::NAK => Self::Nak {
                code: r.u8()?,
                reason: r.text()?,
            },
            k::IDENTITY => {
                let (model, serial, firmware, protocol) =
                    (r.text()?, r.text()?, r.text()?, r.u8()?);
                if !is_serial(&serial) {
                    return Err(MessageError::Invalid {
                        kind,
                        why: "product serial is not 7 letters or digits",
                    });
                }
                Self::Identity {
                    model,
                    serial,
                    firmware,
                    protocol,
                }
            }
            k::OFFICER => Self::Officer(r.officer()?),
            k::TIME => Self::Time {
                unix_ms: r.i64()?,
                last_set_unix_ms: r.i64()?,
                drift_ppb: r.i32()?,
            },
            k::BATTERY => {
                let (percent, millivolts, charging) = (r.u8()?, r.u16()?, r.bool()?);
                if percent > 100 {
                    return Err(MessageError::Invalid {
                        kind,
                        why: "battery above 100%",
                    });
                }
                Self::Battery {
                    percent,
                    millivolts,
                    charging,
                }
            }
            k::STORAGE => {
                let (total_bytes, free_bytes) = (r.u64()?, r.u64()?);
                if free_bytes > total_bytes {
                    return Err(MessageError::Invalid {
                        kind,
                        why: "more free bytes than capacity",
                    });
                }
                Self::Storage {
                    total_bytes,
                    free_bytes,
                }
            }
            k::PUBLIC_KEY => Self::PublicKey { key: r.array()? },
            k::SIGNATURE => Self::Signature { sig: r.array()? },
            k::RECORDING_STARTED => Self::RecordingStarted {
                unix_ms: r.i64()?,
                file: r.text()?,
            },
            k::RECORDING_STOPPED => Self::RecordingStopped { unix_ms: r.i64()? },
            k::SEGMENT_CLOSED => Self::SegmentClosed {
                unix_ms: r.i64()?,
                file: r.text()?,
            },
            k::KEY_MARK => Self::KeyMark { unix_ms: r.i64()? },
            k::NMEA => Self::Nmea { text: r.bytes()? },
            k::DOCKED => Self::Docked,
            k::UNDOCKED => Self::Undocked,
            other => return Err(MessageError::UnknownType(other)),
        };
        r.end()?;
        Ok(msg)
    }

    /// The message's type byte and payload.
    ///
    /// # Errors
    /// [`MessageError::TooLong`] for text over 255 bytes or a byte string over 65535.
    #[expect(
        clippy::too_many_lines,
        reason = "one arm per message of the catalogue"
    )]
    pub fn encode(&self) -> Result<(u8, Vec<u8>), MessageError> {
        use type_byte as k;
        let mut w = Writer::default();
        let kind = match self {
            Self::Identify => k::IDENTIFY,
            Self::GetOfficer => k::GET_OFFICER,
            Self::SetOfficer(o) => {
                w.officer(o)?;
                k::SET_OFFICER
            }
            Self::GetTime => k::GET_TIME,
            Self::SetTime { unix_ms } => {
                w.raw(&unix_ms.to_be_bytes());
                k::SET_TIME
            }
            Self::GetBattery => k::GET_BATTERY,
            Self::GetStorage => k::GET_STORAGE,
            Self::EnterMassStorage { password } => {
                w.text(password)?;
                k::ENTER_MASS_STORAGE
            }
            Self::Feedback { led, vibrate_ms } => {
                w.raw(&[*led]);
                w.raw(&vibrate_ms.to_be_bytes());
                k::FEEDBACK
            }
            Self::GetPublicKey { slot } => {
                w.raw(&[*slot]);
                k::GET_PUBLIC_KEY
            }
            Self::Sign { slot, message } => {
                w.raw(&[*slot]);
                w.bytes(message)?;
                k::SIGN
            }
            Self::SignPart {
                slot,
                total,
                offset,
                part,
            } => {
                w.raw(&[*slot]);
                w.raw(&total.to_be_bytes());
                w.raw(&offset.to_be_bytes());
                w.bytes(part)?;
                k::SIGN_PART
            }
            Self::Ack => k::ACK,
            Self::Nak { code, reason } => {
                w.raw(&[*code]);
                w.text(reason)?;
                k::NAK
            }
            Self::Identity {
                model,
                serial,
                firmware,
                protocol,
            } => {
                w.text(model)?;
                w.text(serial)?;
                w.text(firmware)?;
                w.raw(&[*protocol]);
                k::IDENTITY
            }
            Self::Officer(o) => {
                w.officer(o)?;
                k::OFFICER
            }
            Self::Time {
                unix_ms,
                last_set_unix_ms,
                drift_ppb,
            } => {
                w.raw(&unix_ms.to_be_bytes());
                w.raw(&last_set_unix_ms.to_be_bytes());
                w.raw(&drift_ppb.to_be_bytes());
                k::TIME
            }
            Self::Battery {
                percent,
                millivolts,
                charging,
            } => {
                w.raw(&[*percent]);
                w.raw(&millivolts.to_be_bytes());
                w.raw(&[u8::from(*charging)]);
                k::BATTERY
            }
            Self::Storage {
                total_bytes,
                free_bytes,
            } => {
                w.raw(&total_bytes.to_be_bytes());
                w.raw(&free_bytes.to_be_bytes());
                k::STORAGE
            }
            Self::PublicKey { key } => {
                w.raw(key);
                k::PUBLIC_KEY
            }
            Self::Signature { sig } => {
                w.raw(sig);
                k::SIGNATURE
            }
            Self::RecordingStarted { unix_ms, file } => {
                w.raw(&unix_ms.to_be_bytes());
                w.text(file)?;
                k::RECORDING_STARTED
            }
            Self::RecordingStopped { unix_ms } => {
                w.raw(&unix_ms.to_be_bytes());
                k::RECORDING_STOPPED
            }
            Self::SegmentClosed { unix_ms, file } => {
                w.raw(&unix_ms.to_be_bytes());
                w.text(file)?;
                k::SEGMENT_CLOSED
            }
            Self::KeyMark { unix_ms } => {
                w.raw(&unix_ms.to_be_bytes());
                k::KEY_MARK
            }
            Self::Nmea { text } => {
                w.bytes(text)?;
                k::NMEA
            }
            Self::Docked => k::DOCKED,
            Self::Undocked => k::UNDOCKED,
        };
        Ok((kind, w.0))
    }

    /// Whether the MCU sends this on its own (an event), not as a response.
    pub fn is_event(&self) -> bool {
        matches!(
            self,
            Self::RecordingStarted { .. }
                | Self::RecordingStopped { .. }
                | Self::SegmentClosed { .. }
                | Self::KeyMark { .. }
                | Self::Nmea { .. }
                | Self::Docked
                | Self::Undocked
        )
    }
}
