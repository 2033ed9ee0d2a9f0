//! firmware-bridge: the serial link between the Custody agent and a recorder's
//! microcontroller (MCU): time, battery, buttons, GNSS NMEA, docking and an optional
//! secure element.
//!
//! The frame codec and NMEA parser will be pure functions over bytes, the transport a thin
//! `tokio-serial` layer, and a device simulator will speak the same protocol on a
//! pseudo-terminal (issue 3). Until then this crate holds no code.
