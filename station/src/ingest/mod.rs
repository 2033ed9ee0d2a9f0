//! One dock session: identify the device in a slot, verify its records and chain from
//! the ledger's anchor, stream every new clip once into the store (read → SHA-256 →
//! write) on a bounded pool of copies, commit each record in seq order, sign a checkpoint
//! and leave a receipt in the device's inbox.
//!
//! Bad evidence becomes findings and is kept; only a failing station (store full, ledger
//! error) or a device that went away (cable pulled) stops a session, and then nothing is
//! committed half: what was committed stays, the rest is done at the next dock.
//!
//! The steps live in their own modules: [`session`] (identify, verify, plan, run),
//! [`pool`] (the shared copy buffers and one session per device), [`copy`] (read → hash →
//! store), [`commit`] (in seq order), [`receipt`] and [`quarantine`].

mod commit;
mod copy;
mod pool;
mod quarantine;
mod receipt;
mod session;

use std::io;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use custody::Finding;
use serde::Serialize;

use crate::ledger::{LedgerError, SessionEnd, SessionId};
use crate::store::StoreError;

pub use pool::BufferPool;
pub(crate) use pool::DeviceSessions;

/// Why a session stopped before the end. What was committed stays committed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// The device went away (slot folder vanished, read error): retried at the next dock.
    #[error(
        "device in {slot} went away mid-ingest (cable pulled?); the rest is taken at the next dock"
    )]
    Unplugged {
        /// The slot.
        slot: String,
        /// The read error.
        #[source]
        source: io::Error,
    },
    /// The store failed (full disk included): ingest stops until it is fixed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The station's key (or its holder) could not sign the receipt.
    #[error("the station cannot sign the receipt")]
    Sign(#[source] custody::SignError),
    /// The slot is not a folder.
    #[error("slot {0} is not a folder")]
    NotASlot(PathBuf),
    /// Writing the quarantine copy failed.
    #[error("cannot quarantine into {path}")]
    Quarantine {
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// How the officer docked: an optional lawful delay reason, and the dock (return) time.
#[derive(Debug, Clone, Default)]
pub struct DockOptions {
    /// A delay reason code from the policy (checked by the CLI).
    pub delay_reason: Option<String>,
    /// When the device returned; now when absent.
    pub returned: Option<DateTime<Utc>>,
}

/// What a session did, for the officer, the report and the tests.
#[derive(Debug, Clone, Serialize)]
pub struct SessionOutcome {
    /// The ledger's session id.
    pub session: SessionId,
    /// The slot folder's name.
    pub slot: String,
    /// The device, when identified.
    pub serial: Option<String>,
    /// Complete, or quarantined.
    pub outcome: SessionEnd,
    /// Records committed this session.
    pub records: usize,
    /// Clips stored with their signed hash.
    pub clips_verified: usize,
    /// Bytes read from the device and stored.
    pub bytes: u64,
    /// Files ingested without a record.
    pub unattested: usize,
    /// Clips stored after their deadline.
    pub late: usize,
    /// Everything found wrong.
    pub findings: Vec<Finding>,
    /// Log size of the checkpoint signed at the end.
    pub checkpoint_size: Option<u64>,
    /// The receipt written to the device, relative to its storage root.
    pub receipt: Option<String>,
}
