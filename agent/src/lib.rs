//! custody-agent: the on-device agent of Custody.
//!
//! It runs on a recorder (执法记录仪) or handheld terminal (手持执法终端) beside the
//! vendor's recording firmware. As each clip closes it builds the clip's evidence record
//! and signs it with [`custody::Record::seal`] and appends it to the
//! device's hash chain; the station later reads those records from the device's outbox.
//!
//! This crate is where the agent's watcher, sealer, outbox and telemetry will live
//! (issue 4). Until then it holds no code: the record format it will write is owned and
//! documented by the `custody` crate.
