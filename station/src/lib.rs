//! custody-station: the docking-station daemon (采集站) of Custody.
//!
//! Officers dock their recorders here at the end of a shift. The station identifies each
//! device, verifies its records and hash chain with [`custody::verify_device`], streams each
//! clip once into write-once storage, commits the records to its ledger and Merkle log
//! ([`custody::MerkleLog`]) and hands a signed receipt back to the device.
//!
//! This crate is where ingest, store, ledger, report and disc will live (issue 5). Until then
//! it holds no code: the formats it will read are owned and documented by `custody`.
