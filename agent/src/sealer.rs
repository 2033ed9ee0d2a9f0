//! Sealing: turns closed clips into signed records in the chain, and keeps the outbox on
//! the device storage holding every record for the station to read.
//!
//! A clip is followed (hashed) while it is written; it is closed when the recorder renames
//! it to its final name or, for recorders that do not rename, when it stops growing. Then
//! only the tail remains to hash, and the record is sealed at once.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, FixedOffset, Utc};
use custody::{
    AnnotationFact, BindingFact, ClipFact, ClockSource, DeviceRef, FORMAT_V1, Fact, Media,
    MediaHash, ProvisionalNumber, Record, RecordBody, Signer, Speaker, TimeSpan, Verified,
};
use hw_profiles::Closing;
use tracing::{info, warn};

use crate::config::AgentConfig;
use crate::failpoint;
use crate::follower::{FileId, Follower, Progress};
use crate::manifest::{Manifest, ManifestError};
use crate::sensors::Sensors;

/// Read buffer for hashing: 128 KiB beat larger chunks for copy+hash on target machines.
const HASH_BUF_LEN: usize = 128 * 1024;
/// File name of the manifest database in the state folder.
pub const MANIFEST_FILE: &str = "manifest.db";

/// The agent's sealing state.
pub struct Sealer {
    cfg: AgentConfig,
    /// Signs every record: the key file in the state folder, or a vendor's secure
    /// element behind the signing seam.
    key: Arc<dyn Signer>,
    manifest: Manifest,
    template: RecordTemplate,
    /// Clips being written, by path relative to the storage root.
    followers: HashMap<String, Follower>,
    /// Sealed clips by path, with the size sealed (a different size means a new file).
    sealed: HashMap<String, u64>,
    /// Records committed but not yet (fully) written to the outbox.
    unexported: Vec<Record<Verified>>,
    /// RTC and GNSS readings from the MCU (empty without a bridge).
    sensors: Arc<Mutex<Sensors>>,
    buf: Vec<u8>,
    /// Receipt files already looked at by this process.
    receipts_seen: HashSet<String>,
}

impl Sealer {
    /// Opens the manifest, re-verifies every record in it, and makes sure the outbox on the
    /// device storage holds the public key and every record (a crash may have left some
    /// committed but not exported).
    ///
    /// # Errors
    /// The manifest cannot be opened or holds a damaged record; the outbox cannot be written.
    pub fn open(cfg: AgentConfig, key: Arc<dyn Signer>) -> anyhow::Result<Self> {
        custody::layout::create_dir_durable(&cfg.state_dir)?;
        let manifest = Manifest::open(&cfg.state_dir.join(MANIFEST_FILE))?;
        let records = manifest.records(&key.public_key())?;
        let sealed_sizes = records
            .iter()
            .filter_map(|r| r.body().media().map(|m| (m.file.clone(), m.size)))
            .collect();
        let template = RecordTemplate::new(&cfg, &key.public_key());
        let mut sealer = Self {
            cfg,
            key,
            manifest,
            template,
            followers: HashMap::new(),
            sealed: sealed_sizes,
            unexported: records,
            sensors: Arc::default(),
            buf: vec![0; HASH_BUF_LEN],
            receipts_seen: HashSet::new(),
        };
        let dev_dir = custody::layout::device_dir(&sealer.cfg.storage, &sealer.cfg.serial);
        custody::layout::create_dir_durable(&dev_dir)?;
        custody::layout::write_atomic(
            &dev_dir.join(custody::layout::PUBLIC_KEY_FILE),
            sealer.key.public_key().to_pem().as_bytes(),
        )?;
        sealer.export_pending();
        Ok(sealer)
    }

    /// Opens the sealer with the device key: the state folder's key file (created on
    /// first use) or the secure element ([`crate::device_signer`]).
    ///
    /// # Errors
    /// As [`crate::device_signer`] and [`Sealer::open`].
    pub fn load(cfg: AgentConfig) -> anyhow::Result<Self> {
        let key = crate::device_signer(&cfg)?;
        Self::open(cfg, key)
    }

    /// What signs this sealer's records (and the device's upload requests).
    pub fn signer(&self) -> Arc<dyn Signer> {
        Arc::clone(&self.key)
    }

    /// Verifies new receipts in the inbox and frees the space of the clips they prove
    /// stored (nothing without an enrolled station key).
    ///
    /// # Errors
    /// An unreadable inbox or a manifest failure.
    pub fn process_inbox(&mut self) -> anyhow::Result<crate::InboxReport> {
        let Some(station) = self.cfg.station.clone() else {
            return Ok(crate::InboxReport::default());
        };
        let key = self.key.public_key();
        let manifest = &self.manifest;
        crate::inbox::process(
            &self.cfg.storage,
            &self.cfg.serial,
            &key,
            &station,
            manifest,
            || Ok(manifest.records(&key)?),
            &mut self.receipts_seen,
        )
    }

    /// The recording folder this sealer watches.
    pub fn recording_dir(&self) -> std::path::PathBuf {
        self.cfg.recording_dir()
    }

    /// The readings records are sealed with; the bridge task writes into them.
    pub fn sensors(&self) -> Arc<Mutex<Sensors>> {
        Arc::clone(&self.sensors)
    }

    /// The records sealed so far, re-verified.
    ///
    /// # Errors
    /// A damaged manifest.
    pub fn records(&self) -> anyhow::Result<Vec<Record<Verified>>> {
        Ok(self.manifest.records(&self.key.public_key())?)
    }

    /// Applies IT's live configuration: the officer named in records sealed from now on,
    /// and the numbering template for bindings. Records already sealed are not touched.
    ///
    /// # Errors
    /// A numbering template that does not parse (nothing is applied then).
    pub fn apply(&mut self, live: &custody::telemetry::DeviceConfig) -> anyhow::Result<()> {
        let numbering = live
            .numbering
            .as_deref()
            .map(custody::NumberingScheme::from_toml)
            .transpose()
            .map_err(|e| anyhow::anyhow!("numbering template from IT: {e}"))?;
        if let Some(scheme) = numbering {
            info!("numbering template set by IT");
            self.cfg.numbering = Some(scheme);
        }
        if let Some(officer) = &live.officer {
            info!(cert_no = %officer.cert_no, "device issued to another officer by IT");
            self.cfg.officer = officer.clone();
            self.template.officer = officer.clone();
        }
        Ok(())
    }

    /// Sealed clips still on the device (not freed under a station receipt), and when the
    /// oldest of them finished recording.
    ///
    /// # Errors
    /// A damaged manifest.
    pub fn pending(&self) -> anyhow::Result<(u64, Option<DateTime<FixedOffset>>)> {
        Ok(self.manifest.pending_clips()?)
    }

    /// The device storage root.
    pub fn storage(&self) -> &Path {
        &self.cfg.storage
    }

    /// Writes every committed record the outbox lacks; what fails (storage full, card
    /// pulled) stays pending and is tried again on the next scan. Nothing is lost: the
    /// manifest holds the record.
    fn export_pending(&mut self) {
        let storage = self.cfg.storage.clone();
        self.unexported.retain(|r| {
            let body = r.body();
            let path = custody::layout::record_path(&storage, &body.device.serial, body.seq);
            let present = fs::read(&path).is_ok_and(|b| b == r.bytes()) && fs::read(path.with_extension("sig")).is_ok_and(|s| s == r.signature().0);
            if present {
                return false;
            }
            match custody::layout::write_record(&storage, r) {
                Ok(_) => {
                    failpoint::hit("exported");
                    false
                }
                Err(e) => {
                    warn!(seq = r.body().seq, error = %e, "record kept in the manifest; outbox write will be retried");
                    true
                }
            }
        });
    }

    /// The clips sealed so far (path under the storage root → size sealed).
    pub fn sealed_files(&self) -> HashMap<String, u64> {
        self.sealed.clone()
    }

    /// Looks at the recording folder once: follows clips being written and seals the ones
    /// that closed. Returns what it sealed.
    ///
    /// # Errors
    /// Only a manifest failure (a clip that cannot be read is logged and retried).
    pub fn scan(&mut self) -> anyhow::Result<Vec<Record<Verified>>> {
        self.export_pending();
        let mut sealed = Vec::new();
        let dir = self.cfg.recording_dir();
        let Ok(entries) = fs::read_dir(&dir) else {
            return Ok(sealed);
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        let rec_dir = self.cfg.profile.storage.recording_dir.clone();
        let suffix = self.cfg.profile.storage.recording_suffix.clone();
        let closing = self.cfg.profile.storage.closing;
        let present: Vec<String> = names.iter().map(|n| format!("{rec_dir}/{n}")).collect();
        for (name, rel) in names.iter().zip(&present) {
            let path = self.cfg.storage.join(rel);
            if suffix.as_deref().is_some_and(|s| name.ends_with(s)) {
                self.follow(rel, &path);
                continue;
            }
            if self
                .sealed
                .get(rel)
                .is_some_and(|&size| fs::metadata(&path).is_ok_and(|m| m.len() == size))
            {
                continue;
            }
            let closed = match closing {
                Closing::Rename => self
                    .take_renamed(&path)
                    .or_else(|| Follower::new(&path).ok()),
                Closing::StopsGrowing => {
                    self.follow(rel, &path);
                    let idle = self
                        .followers
                        .get(rel)
                        .is_some_and(|f| f.last_growth.elapsed() >= self.cfg.close_idle);
                    if idle {
                        self.followers.remove(rel)
                    } else {
                        None
                    }
                }
            };
            if let Some(follower) = closed
                && let Some(record) = self.close(rel, &path, follower)?
            {
                sealed.push(record);
            }
        }
        self.followers.retain(|rel, _| {
            let keep = present.contains(rel);
            if !keep {
                warn!(file = %rel, "clip vanished while being recorded (renamed files are picked up under their new name)");
            }
            keep
        });
        Ok(sealed)
    }

    fn follow(&mut self, rel: &str, path: &Path) {
        let follower = match self.followers.get_mut(rel) {
            Some(f) => f,
            None => match Follower::new(path) {
                Ok(f) => self.followers.entry(rel.to_owned()).or_insert(f),
                Err(_) => return,
            },
        };
        match follower.advance(path, &mut self.buf) {
            Ok(Progress::Restarted) => {
                warn!(file = %rel, "clip shrank or was replaced while recording; hashing again from the start");
            }
            Ok(_) => {}
            // Renamed or removed between listing and reading: the next scan sees its new name.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => warn!(file = %rel, error = %e, "cannot read the clip being recorded"),
        }
    }

    /// The follower of the `.part` file that was just renamed to `path`, if any.
    fn take_renamed(&mut self, path: &Path) -> Option<Follower> {
        let id = FileId::of(path).ok()?;
        let key = self
            .followers
            .iter()
            .find(|(_, f)| f.id() == id)
            .map(|(k, _)| k.clone())?;
        self.followers.remove(&key)
    }

    /// Hashes the tail of a closed clip and seals it.
    fn close(
        &mut self,
        rel: &str,
        path: &Path,
        mut follower: Follower,
    ) -> anyhow::Result<Option<Record<Verified>>> {
        if let Err(e) = follower.advance(path, &mut self.buf) {
            warn!(file = %rel, error = %e, "closed clip cannot be read; will retry");
            return Ok(None);
        }
        let start = follower.first_seen;
        // The running hash is the clip's hash only if the recorder never went back.
        let trusted =
            self.cfg.profile.storage.appends_only && follower.head_unchanged(path).unwrap_or(false);
        let fragmented_duration = trusted.then(|| follower.fragmented_duration_ms()).flatten();
        let (size, hash) = if trusted {
            follower.finish()
        } else {
            if self.cfg.profile.storage.appends_only {
                warn!(file = %rel, "the start of the clip was rewritten at close; hashing it again in full");
            }
            match fs::File::open(path).and_then(|f| custody::hash_reader(f, &mut self.buf)) {
                Ok(done) => done,
                Err(e) => {
                    warn!(file = %rel, error = %e, "closed clip cannot be read; will retry");
                    return Ok(None);
                }
            }
        };
        failpoint::hit("hashed");
        if self.manifest.is_sealed(rel, &hash)? {
            self.sealed.insert(rel.to_owned(), size);
            return Ok(None);
        }
        let facts = match crate::media::probe(path, fragmented_duration) {
            Ok(facts) => Some(facts),
            Err(e) => {
                warn!(file = %rel, error = %e, "sealed without media facts");
                None
            }
        };
        self.seal_clip(rel, size, hash, facts, start)
    }

    fn seal_clip(
        &mut self,
        rel: &str,
        size: u64,
        sha256: MediaHash,
        facts: Option<custody::MediaFacts>,
        start: chrono::DateTime<Utc>,
    ) -> anyhow::Result<Option<Record<Verified>>> {
        let offset = self.template.utc_offset;
        let end = Utc::now().with_timezone(&offset);
        let start = start.with_timezone(&offset).min(end);
        let readings = self.sensors.lock().map(|s| s.clone()).unwrap_or_default();
        let (error_ms, last_sync) = readings.clock_error(Utc::now(), self.cfg.clock_error_ms);
        let last_sync = last_sync.map(|t| t.with_timezone(&offset));
        let location = readings.location(Utc::now(), offset);
        let template = &self.template;
        let sealed = self.manifest.seal(self.key.as_ref(), |seq, prev| {
            let number = ProvisionalNumber {
                device: template.device.serial.clone(),
                date: start.date_naive(),
                seq,
            }
            .to_string();
            template.body(
                seq,
                prev,
                Fact::Clip(ClipFact {
                    number,
                    case_number: None,
                    media: Media {
                        file: rel.to_owned(),
                        size,
                        sha256,
                        facts,
                    },
                    time: TimeSpan {
                        start,
                        end,
                        source: ClockSource::Rtc,
                        error_ms,
                        last_sync,
                    },
                    location,
                    proves: None,
                }),
            )
        });
        let stored = match sealed {
            Err(ManifestError::AlreadySealed { .. }) => {
                // Another agent process on this device (`upload` beside `run`) sealed it.
                self.sealed.insert(rel.to_owned(), size);
                return Ok(None);
            }
            Err(ManifestError::Record(custody::RecordError::Sign(why))) => {
                // The secure element is busy or its link is down: nothing was appended,
                // and the next scan hashes the clip again and seals it.
                warn!(file = %rel, %why, "cannot sign the clip's record now; will retry");
                return Ok(None);
            }
            other => other?,
        };
        info!(seq = stored.body().seq, file = %rel, size, sha256 = %sha256, "clip sealed");
        self.sealed.insert(rel.to_owned(), size);
        Ok(Some(self.append_and_export(stored)))
    }

    fn append_and_export(&mut self, stored: Record<Verified>) -> Record<Verified> {
        self.unexported.push(stored.clone());
        self.export_pending();
        stored
    }

    /// The clip record covering `file` (relative to the storage root), or an error naming it.
    fn clip_hash(&self, file: &str) -> anyhow::Result<custody::RecordHash> {
        self.manifest
            .clip_record_hash(file)?
            .ok_or_else(|| anyhow::anyhow!("no sealed clip {file:?} on this device"))
    }

    /// Binds a sealed clip to a case: a new record with the case's document number and the
    /// clip's number under it (the next per-case sequence). Needs the numbering template.
    ///
    /// # Errors
    /// No such clip, no numbering template, a case number the template rejects, or a
    /// manifest failure.
    pub fn bind(&mut self, file: &str, case: &str) -> anyhow::Result<Record<Verified>> {
        let scheme = self.cfg.numbering.clone().ok_or_else(|| {
            anyhow::anyhow!("binding needs a numbering template (numbering = … in agent.toml)")
        })?;
        let document = scheme.parse_document(case)?;
        let subject = self.clip_hash(file)?;
        let case_number = document.to_string();
        let earlier = self
            .records()?
            .iter()
            .filter(|r| matches!(&r.body().fact, Fact::Binding(b) if b.case_number == case_number))
            .count();
        let number = scheme.render_clip(&custody::ClipNumber {
            document,
            media: custody::MediaKind::Video,
            seq: u32::try_from(earlier + 1)?,
        });
        let template = &self.template;
        let stored = self.manifest.seal(self.key.as_ref(), |seq, prev| {
            template.body(
                seq,
                prev,
                Fact::Binding(BindingFact {
                    subject,
                    case_number,
                    number,
                }),
            )
        })?;
        Ok(self.append_and_export(stored))
    }

    /// Annotates a sealed clip: what it proves, who speaks, the main content.
    ///
    /// # Errors
    /// No such clip, nothing stated, or a manifest failure.
    pub fn annotate(
        &mut self,
        file: &str,
        proves: Option<String>,
        speakers: Vec<Speaker>,
        summary: Option<String>,
    ) -> anyhow::Result<Record<Verified>> {
        let subject = self.clip_hash(file)?;
        let template = &self.template;
        let stored = self.manifest.seal(self.key.as_ref(), |seq, prev| {
            template.body(
                seq,
                prev,
                Fact::Annotation(AnnotationFact {
                    subject,
                    proves,
                    speakers,
                    summary,
                }),
            )
        })?;
        Ok(self.append_and_export(stored))
    }
}

/// What every record of this device repeats.
struct RecordTemplate {
    device: DeviceRef,
    officer: custody::Officer,
    agency: custody::Agency,
    utc_offset: chrono::FixedOffset,
}

impl RecordTemplate {
    fn new(cfg: &AgentConfig, key: &custody::PublicKey) -> Self {
        Self {
            device: DeviceRef {
                serial: cfg.serial.clone(),
                key_id: key.key_id(),
                hw_profile: cfg.profile.id.clone(),
                agent_version: env!("CARGO_PKG_VERSION").into(),
            },
            officer: cfg.officer.clone(),
            agency: cfg.agency.clone(),
            utc_offset: cfg.utc_offset,
        }
    }

    fn body(&self, seq: u64, prev: Option<custody::RecordHash>, fact: Fact) -> RecordBody {
        RecordBody {
            format: FORMAT_V1.into(),
            alg: custody::Algorithms::default(),
            device: self.device.clone(),
            seq,
            prev,
            created: Utc::now().with_timezone(&self.utc_offset),
            officer: self.officer.clone(),
            agency: self.agency.clone(),
            fact,
        }
    }
}
