//! custody-station: the docking-station daemon (采集站). Officers dock their recorders at
//! the end of a shift; the station identifies each device, verifies its records and hash
//! chain from where the ledger left off, streams every clip once into write-once storage,
//! commits each record to an append-only ledger and a Merkle transparency log, signs a
//! checkpoint and leaves a receipt on the device, so the device may free the space.
//!
//! ```no_run
//! use custody_station::{DockOptions, Station, StationConfig};
//!
//! let cfg = StationConfig::load("station.toml".as_ref())?;
//! let station = Station::open(cfg)?;
//! let outcome = station.ingest_slot("/media/custody-dock/slot-1".as_ref(), &DockOptions::default())?;
//! println!("{} records, {} findings", outcome.records, outcome.findings.len());
//! # Ok::<(), anyhow::Error>(())
//! ```

mod access;
mod audit;
mod case;
mod config;
mod deadline;
mod disc;
mod fault;
mod fleet;
mod ingest;
mod ledger;
mod progress;
mod replicate;
mod report;
mod serve;
mod stats;
mod store;
mod tlog;
mod upload;
mod web;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use anyhow::Context as _;
use custody::{Clock, NoteSigner, NoteVerifier, SigningKey, SystemClock, load_or_create_key_pem};
use ingest::DeviceSessions;
use store::s3::S3Store;

pub use access::{
    APPROVAL_DAYS, AccessEntry, Actor, Authenticator, Credential, Exported, LOCKOUT_FAILURES,
    LOCKOUT_MINUTES, MAX_APPROVAL_DAYS, MIN_PASSWORD_CHARS, NewPerson, NewRequest,
    PasswordAuthenticator, RequestState, RequestStatus, Requirement, hash_password,
};
pub use audit::{AUDIT_SLOT, AuditOutcome, audit};
pub use case::{CASE_FILE_WORKING_DAYS, CaseDue, CaseHeader, CaseView, DUE_SOON_DAYS};
pub use config::{
    ConfigError, DeadlinePolicy, StationConfig, StoreBackend, UploadLimits, UploadSettings,
    WebSettings,
};
pub use deadline::{Deadline, deadline, end_of_day};
pub use disc::{
    BuiltDisc, Burned, CHECK_EVERY_YEARS, CHECK_SAMPLE_PERCENT, DiscDue, Medium, README_FILE,
    SCRIPT_BEGIN, SCRIPT_END,
};
pub use fleet::{
    FleetDevice, FleetView, Pending, PendingDevice, follow as follow_fleet, pending,
    pending_devices,
};
pub use ingest::{BufferPool, DockOptions, IngestError, SessionOutcome};
pub use ledger::{
    AccessQuery, ClipEntry, ClipTotals, EnrolledDevice, HeardDevice, Ledger, LedgerAccessEvent,
    LedgerDisc, LedgerError, LedgerPerson, LedgerRequest, Queued, ReplicationLag, SessionEnd,
    SessionId,
};
pub use progress::{ProgressBoard, SlotEnded, SlotStatus};
pub use replicate::{Drained, drain as replicate_drain, run as replicate_run};
pub use report::{ClipRow, ClipStatus, FindingRow, Report, ReportPage, ReportQuery};
pub use serve::{DOCK_ENDED_FILE, STATUS_FILE, run, write_session_report};
pub use stats::{ActFigures, Statistics, UNBOUND};
pub use store::local::LocalStore;
pub use store::s3;
pub use store::{EvidenceStore, Expected, ObjectCheck, StoreError, StoredObject};
pub use tlog::{SignedCheckpoint, TlogError};
pub use upload::{UPLOADS_DIR, serve as serve_uploads, tls_config};
pub use web::{
    LOGIN_COOKIE, REPORT_PAGE, SESSION_COOKIE, serve as serve_web, serve_on as serve_web_on,
};

/// Copy buffer size: 128 KiB chunks beat 1 MiB ones for copy+hash on the reference machine.
pub const BUF_LEN: usize = 128 * 1024;

/// File name of the station's key (PEM PKCS#8, mode 0600) in the data folder: it signs
/// checkpoints and receipts.
pub const KEY_FILE: &str = "station.key";

/// A station: configuration, ledger, store, key, copy buffers and progress.
pub struct Station {
    cfg: Arc<StationConfig>,
    // std Mutex: held for one SQL transaction at a time, never across I/O on a device.
    ledger: Mutex<Ledger>,
    store: Arc<dyn EvidenceStore>,
    signer: NoteSigner,
    /// Signs receipts and station records (the same key as the log's checkpoints).
    key: Box<dyn custody::Signer>,
    buffers: BufferPool,
    progress: ProgressBoard,
    /// Disc builds, burns and checks under way.
    disc_work: ProgressBoard,
    device_sessions: DeviceSessions,
    clock: Arc<dyn Clock>,
    /// Checks logins: local passwords unless another authenticator is set.
    authenticator: Box<dyn Authenticator>,
}

impl Station {
    /// Opens the station's data folder (creating ledger, store and key on first use). A
    /// remote store is not asked here: commands that write call [`Station::check_store`].
    ///
    /// # Errors
    /// An unusable data folder, ledger, store or key.
    pub fn open(cfg: StationConfig) -> anyhow::Result<Self> {
        Self::open_with_clock(cfg, Arc::new(SystemClock))
    }

    /// As [`Station::open`], with the station's time taken from `clock` (tests state the
    /// time they run at; the daemon uses the system clock).
    ///
    /// # Errors
    /// As [`Station::open`].
    pub fn open_with_clock(cfg: StationConfig, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let data = &cfg.data_dir;
        custody::layout::create_dir_durable(data)
            .with_context(|| format!("creating {}", data.display()))?;
        let ledger = Ledger::open(&data.join("ledger.sqlite")).with_context(|| {
            format!(
                "opening the ledger in {}{}",
                data.display(),
                disk_full_note(data)
            )
        })?;
        let store: Arc<dyn EvidenceStore> = match &cfg.store {
            StoreBackend::Local => Arc::new(LocalStore::open(
                &data.join("store"),
                cfg.reserve_bytes,
                cfg.immutable_flag,
            )?),
            StoreBackend::S3(settings) => Arc::new(S3Store::connect(settings)?),
        };
        let (pem, created) = load_or_create_key_pem(&data.join(KEY_FILE))?;
        let signer = NoteSigner::new(&cfg.origin, SigningKey::from_pkcs8_pem(&pem)?)?;
        if created {
            tracing::info!(vkey = %signer.verifier(), "station key created");
        }
        let buffers = BufferPool::new(cfg.parallel_copies.get(), BUF_LEN);
        Ok(Self {
            key: Box::new(SigningKey::from_pkcs8_pem(&pem)?),
            signer,
            ledger: Mutex::new(ledger),
            store,
            buffers,
            progress: ProgressBoard::default(),
            disc_work: ProgressBoard::default(),
            device_sessions: DeviceSessions::default(),
            clock,
            authenticator: Box::new(PasswordAuthenticator),
            cfg: Arc::new(cfg),
        })
    }

    /// Checks that the evidence store can take evidence now (see [`EvidenceStore::check`]).
    ///
    /// # Errors
    /// The store refuses or cannot be reached.
    pub fn check_store(&self) -> anyhow::Result<()> {
        self.store
            .check()
            .context("the evidence store cannot take evidence")
    }

    /// A report of what the ledger holds for `query`, times in the agency's offset, as of
    /// `now`.
    ///
    /// # Errors
    /// The ledger cannot be read.
    pub fn report(
        &self,
        query: &ReportQuery,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Report, LedgerError> {
        Report::build(
            &self.ledger(),
            &self.cfg.origin,
            query,
            self.cfg.utc_offset,
            now,
        )
    }

    /// The station key, behind the signing seam: it signs receipts and station records.
    pub(crate) fn station_key(&self) -> &dyn custody::Signer {
        self.key.as_ref()
    }

    /// Replaces how logins are checked (certificates, an agency identity provider).
    #[must_use]
    pub fn with_authenticator(mut self, authenticator: Box<dyn Authenticator>) -> Self {
        self.authenticator = authenticator;
        self
    }

    /// How logins are checked.
    pub(crate) fn authenticator(&self) -> &dyn Authenticator {
        self.authenticator.as_ref()
    }

    /// The station's time now (its clock: the system's, or the one it was opened with).
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// The configuration.
    pub fn config(&self) -> &StationConfig {
        &self.cfg
    }

    /// The ledger (locked for the caller's statement).
    pub fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The evidence store.
    pub fn store(&self) -> &dyn EvidenceStore {
        self.store.as_ref()
    }

    /// The verifier key of the station's log (`name+hash+base64`), which agents enrol to
    /// check receipts and checkpoints.
    pub fn verifier(&self) -> &NoteVerifier {
        self.signer.verifier()
    }

    /// Live progress of the slots being ingested.
    pub fn progress(&self) -> &ProgressBoard {
        &self.progress
    }

    /// Live progress of the disc images being built, burned or checked (keyed by what
    /// and which volume, e.g. `制作 AJ20190075S1D01`).
    pub fn disc_work(&self) -> &ProgressBoard {
        &self.disc_work
    }

    /// Where the local store keeps its objects (with the default backend).
    pub fn store_root(&self) -> PathBuf {
        self.cfg.data_dir.join("store")
    }

    /// Where reports go.
    pub fn reports_dir(&self) -> PathBuf {
        self.cfg.data_dir.join("reports")
    }

    /// Enrols a device from its public key PEM file.
    ///
    /// # Errors
    /// An unreadable or invalid key, or a device already enrolled.
    pub fn enroll(
        &self,
        serial: &str,
        hw_profile: &str,
        key_pem: &Path,
        officers: &[(String, String)],
    ) -> anyhow::Result<custody::KeyId> {
        custody::check_serial(serial)?;
        let text = std::fs::read_to_string(key_pem)
            .with_context(|| format!("reading {}", key_pem.display()))?;
        let key = custody::PublicKey::from_pem(&text)
            .with_context(|| format!("{}", key_pem.display()))?;
        self.ledger()
            .enroll(serial, hw_profile, &key, officers, self.now())?;
        Ok(key.key_id())
    }
}

/// `"; its disk is full (N bytes free)"` when the disk holding `dir` has less than 1 MiB
/// left: SQLite reports a full disk as a plain I/O error when it cannot grow its
/// shared-memory file, and the user needs to know what to free.
fn disk_full_note(dir: &std::path::Path) -> String {
    match nix::sys::statvfs::statvfs(dir) {
        Ok(stat) => {
            let free = stat.blocks_available().saturating_mul(stat.fragment_size());
            if free < 1 << 20 {
                format!("; its disk is full ({free} bytes free)")
            } else {
                String::new()
            }
        }
        Err(_) => String::new(),
    }
}
