//! firmware-bridge: the serial link between the Custody agent and a recorder's
//! microcontroller (MCU): time, battery, buttons, GNSS NMEA, docking and an optional
//! secure element.
//!
//! Protocols here are pure functions over bytes, so the same code runs on the UART, on a
//! pseudo-terminal with the device simulator, and under a fuzzer.
//!
//! ```
//! use firmware_bridge::nmea::{NmeaReader, Sentence};
//!
//! let mut gnss = NmeaReader::new();
//! let got = gnss.push(b"$GPZDA,005947.00,08,07,2010,+00,00*4E\r\n$GPGGA,1*00\r\n");
//! assert!(matches!(got[..], [Sentence::Zda { .. }]));
//! assert_eq!(gnss.stats().bad_checksum, 1);
//! ```

pub mod codec;
pub mod message;
pub mod nmea;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
pub mod transport;
