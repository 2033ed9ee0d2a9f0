//! The simulated secure element: an Ed25519 key that never leaves the "chip", signing
//! short messages at once ([`McuMessage::Sign`]) and long ones (a whole record) gathered
//! from parts sent in order ([`McuMessage::SignPart`]).

use ring::signature::{Ed25519KeyPair, KeyPair as _};

use crate::message::McuMessage;

/// Nak code of an argument the element cannot take (PROTOCOL.md).
const BAD_ARGUMENT: u8 = 2;

/// The key and the message being gathered.
pub struct SecureElement {
    pair: Ed25519KeyPair,
    /// The slot and total length of the message being gathered, and the bytes so far.
    gathering: Option<(u8, u32, Vec<u8>)>,
}

impl SecureElement {
    /// The element holding the key of this 32-byte seed, or `None` for a broken seed.
    pub fn new(seed: &[u8; 32]) -> Option<Self> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed).ok()?;
        Some(Self {
            pair,
            gathering: None,
        })
    }

    /// The answer to a secure-element request (`GetPublicKey`, `Sign`, `SignPart`).
    pub fn answer(&mut self, request: McuMessage) -> McuMessage {
        match request {
            McuMessage::GetPublicKey { .. } => {
                let mut key = [0u8; 32];
                key.copy_from_slice(self.pair.public_key().as_ref());
                McuMessage::PublicKey { key }
            }
            McuMessage::Sign { message, .. } => self.signature(&message),
            McuMessage::SignPart {
                slot,
                total,
                offset,
                part,
            } => self.gather(slot, total, offset, &part),
            _ => nak(1, "not a secure-element request"),
        }
    }

    /// Takes one part. Part 0 starts a message; each later part must start where the
    /// gathered bytes end, or repeat bytes already gathered (a retry after a lost answer,
    /// answered as before). The part that completes the message is answered with the
    /// signature.
    fn gather(&mut self, slot: u8, total: u32, offset: u32, part: &[u8]) -> McuMessage {
        if offset == 0 {
            self.gathering = Some((slot, total, Vec::with_capacity(total as usize)));
        }
        let Some((g_slot, g_total, bytes)) = &mut self.gathering else {
            return nak(
                BAD_ARGUMENT,
                "no message is being gathered: send part 0 first",
            );
        };
        if (*g_slot, *g_total) != (slot, total) {
            return nak(BAD_ARGUMENT, "this part belongs to another message");
        }
        let (start, end) = (offset as usize, offset as usize + part.len());
        match start.cmp(&bytes.len()) {
            // A retry: it must repeat what is gathered, and cannot run past it.
            std::cmp::Ordering::Less if bytes.get(start..end) != Some(part) => {
                return nak(BAD_ARGUMENT, "a repeated part differs from the first");
            }
            std::cmp::Ordering::Less => {}
            std::cmp::Ordering::Equal => bytes.extend_from_slice(part),
            std::cmp::Ordering::Greater => {
                return nak(BAD_ARGUMENT, "a part is missing before this one");
            }
        }
        if end < total as usize {
            return McuMessage::Ack;
        }
        let message = std::mem::take(bytes);
        let signature = self.signature(&message);
        // Kept, so a retried last part is answered with the same signature.
        if let Some((_, _, bytes)) = &mut self.gathering {
            *bytes = message;
        }
        signature
    }

    fn signature(&self, message: &[u8]) -> McuMessage {
        let mut sig = [0u8; 64];
        sig.copy_from_slice(self.pair.sign(message).as_ref());
        McuMessage::Signature { sig }
    }
}

fn nak(code: u8, reason: &str) -> McuMessage {
    McuMessage::Nak {
        code,
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use ring::signature::{ED25519, UnparsedPublicKey};

    use super::*;

    fn part(total: u32, offset: u32, bytes: &[u8]) -> McuMessage {
        McuMessage::SignPart {
            slot: 0,
            total,
            offset,
            part: bytes.to_vec(),
        }
    }

    fn verifies(se: &mut SecureElement, message: &[u8], answer: &McuMessage) -> bool {
        let McuMessage::PublicKey { key } = se.answer(McuMessage::GetPublicKey { slot: 0 }) else {
            panic!("no public key")
        };
        let McuMessage::Signature { sig } = answer else {
            return false;
        };
        UnparsedPublicKey::new(&ED25519, key)
            .verify(message, sig)
            .is_ok()
    }

    #[test]
    fn a_long_message_is_signed_from_its_parts_and_retries_are_harmless() {
        let mut se = SecureElement::new(&[9; 32]).unwrap();
        let message: Vec<u8> = (0..1300u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(se.answer(part(1300, 0, &message[..512])), McuMessage::Ack);
        // The answer to part 0 was lost: the agent sends it again.
        assert_eq!(se.answer(part(1300, 0, &message[..512])), McuMessage::Ack);
        assert_eq!(
            se.answer(part(1300, 512, &message[512..1024])),
            McuMessage::Ack
        );
        let last = se.answer(part(1300, 1024, &message[1024..]));
        assert!(verifies(&mut se, &message, &last));
        // The signature was lost: the last part again gives the same signature.
        assert_eq!(se.answer(part(1300, 1024, &message[1024..])), last);
    }

    #[test]
    fn parts_out_of_order_or_changed_are_refused() {
        let mut se = SecureElement::new(&[9; 32]).unwrap();
        let refused = |m: McuMessage| {
            matches!(
                m,
                McuMessage::Nak {
                    code: BAD_ARGUMENT,
                    ..
                }
            )
        };
        assert!(refused(se.answer(part(1000, 512, &[1; 488]))), "no part 0");
        assert_eq!(se.answer(part(1000, 0, &[1; 400])), McuMessage::Ack);
        assert!(refused(se.answer(part(1000, 512, &[1; 488]))), "a gap");
        assert_eq!(se.answer(part(1000, 400, &[1; 300])), McuMessage::Ack);
        assert!(
            refused(se.answer(part(1000, 400, &[2; 300]))),
            "a changed retry"
        );
        assert!(
            refused(se.answer(part(999, 700, &[1; 299]))),
            "another total"
        );
        // The message gathered so far is intact.
        let last = se.answer(part(1000, 700, &[1; 300]));
        assert!(verifies(&mut se, &[1; 1000], &last));
    }
}
