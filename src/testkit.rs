//! Sample devices for tests, demos and benchmarks: a device folder in the
//! [`layout`] with signed clip records, plus named tampering recipes that
//! break it in one known way each. The agent produces real devices; this builds the same
//! layout from the core alone, so the verifier and the station can be tested without it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, FixedOffset};

use crate::finding::code;
use crate::hash::{MediaHash, RecordHash};
use crate::keys::{PublicKey, SigningKey};
use crate::layout::{self, PUBLIC_KEY_FILE, RECORDS_DIR};
use crate::record::{
    Agency, Algorithms, ClipFact, ClockSource, DeviceRef, FORMAT_V1, Fact, Media, Officer, Record,
    RecordBody, TimeSpan, Verified,
};

/// Every recipe, with the finding codes it must produce. `N` is a 1-based clip/seq.
pub const RECIPES: &[(&str, &[&str])] = &[
    ("flip-byte:clip-N", &[code::MEDIA_HASH_MISMATCH]),
    ("delete-media:clip-N", &[code::MEDIA_MISSING]),
    ("extra-media", &[code::MEDIA_UNRECORDED]),
    ("drop:seq-N", &[code::CHAIN_GAP]),
    ("flip-byte:record-N", &[code::SIGNATURE_INVALID]),
    ("delete-sig:seq-N", &[code::SIGNATURE_MISSING]),
    // The record's exact bytes again under another name, beside a garbage signature.
    ("copy-bad-sig:seq-N", &[code::SIGNATURE_INVALID]),
    // A record that does not parse covers no clip: its media is also unrecorded.
    (
        "truncate:record-N",
        &[code::MEDIA_UNRECORDED, code::RECORD_MALFORMED],
    ),
    ("fork:seq-N", &[code::CHAIN_FORK]),
    ("replace:seq-N", &[code::CHAIN_PREV_MISMATCH]),
    ("swap:seq-N", &[code::CHAIN_REORDERED]),
    ("foreign-device:seq-N", &[code::RECORD_FOREIGN_DEVICE]),
    ("resign:other-key:seq-N", &[code::RECORD_UNKNOWN_KEY]),
];

/// The start time of sample clip 1 (clips follow every 10 minutes).
pub const SAMPLE_START: &str = "2026-11-20T09:00:00+08:00";

/// A time on the sample clips' day (2026-11-20, Beijing), `hours` after midnight there:
/// `sample_day(18)` is the evening the sample clips are docked on time.
pub fn sample_day(hours: i64) -> chrono::DateTime<chrono::Utc> {
    let start = DateTime::parse_from_rfc3339(SAMPLE_START).unwrap_or_default();
    (start - Duration::hours(9) + Duration::hours(hours)).with_timezone(&chrono::Utc)
}

/// A recipe that does not exist or does not fit the device.
#[derive(Debug, thiserror::Error)]
pub enum TamperError {
    /// Unknown recipe text.
    #[error("unknown tampering recipe {0:?}; known: see custody::testkit::RECIPES")]
    Unknown(String),
    /// The device has no such clip or seq.
    #[error("recipe {0:?} names a clip or seq the device does not have")]
    OutOfRange(String),
    /// Writing the tampered files failed.
    #[error("cannot apply recipe")]
    Io(#[from] io::Error),
}

/// A simulated device folder with `n` signed clips.
pub struct SampleDevice {
    /// The device storage root.
    pub root: PathBuf,
    /// Product serial.
    pub serial: String,
    key: SigningKey,
    records: Vec<Record<Verified>>,
    /// When its clip 1 started ([`SAMPLE_START`] unless created otherwise).
    start: DateTime<FixedOffset>,
}

/// A clip record body with sample officer, agency and times (for tests and demos).
pub fn sample_clip_body(
    key: &PublicKey,
    serial: &str,
    seq: u64,
    prev: Option<RecordHash>,
    file: &str,
    size: u64,
    sha256: MediaHash,
) -> RecordBody {
    let base = DateTime::parse_from_rfc3339(SAMPLE_START).unwrap_or_default();
    clip_body_from(base, key, serial, (seq, prev), (file, size, sha256))
}

/// A sample clip body whose clip 1 starts at `base` (clips follow every 10 minutes).
fn clip_body_from(
    base: DateTime<FixedOffset>,
    key: &PublicKey,
    serial: &str,
    (seq, prev): (u64, Option<RecordHash>),
    (file, size, sha256): (&str, u64, MediaHash),
) -> RecordBody {
    let minutes = i64::try_from(seq).unwrap_or(0) * 10;
    let start: DateTime<FixedOffset> = base + Duration::minutes(minutes);
    RecordBody {
        format: FORMAT_V1.into(),
        alg: Algorithms::default(),
        device: DeviceRef {
            serial: serial.into(),
            key_id: key.key_id(),
            hw_profile: "sample-recorder".into(),
            agent_version: env!("CARGO_PKG_VERSION").into(),
        },
        seq,
        prev,
        created: start + Duration::minutes(5),
        officer: Officer {
            name: "张三".into(),
            cert_no: "42060119001".into(),
            police_no: None,
        },
        agency: Agency {
            code: "420600-HB".into(),
            name: "襄阳市生态环境局".into(),
        },
        fact: Fact::Clip(ClipFact {
            number: format!("{serial}-{}-{seq:06}", start.format("%Y%m%d")),
            case_number: None,
            media: Media {
                file: file.into(),
                size,
                sha256,
                facts: None,
            },
            time: TimeSpan {
                start,
                end: start + Duration::minutes(5),
                source: ClockSource::Rtc,
                error_ms: 500,
                last_sync: None,
            },
            location: None,
            proves: None,
        }),
    }
}

impl SampleDevice {
    /// Creates a device under `root` with one clip per media source file (copied into
    /// `DCIM/100MEDIA/`), its key, and one signed record per clip.
    ///
    /// # Errors
    /// Any I/O error.
    pub fn create(root: &Path, serial: &str, media: &[PathBuf]) -> io::Result<Self> {
        Self::create_recorded_at(root, serial, media, None)
    }

    /// As [`SampleDevice::create`], with clip 1 starting at `start` instead of
    /// [`SAMPLE_START`] (e.g. an hour before now, for a test of a binary that runs on the
    /// system clock).
    ///
    /// # Errors
    /// Any I/O error.
    pub fn create_recorded_at(
        root: &Path,
        serial: &str,
        media: &[PathBuf],
        start: Option<chrono::DateTime<chrono::Utc>>,
    ) -> io::Result<Self> {
        let (key, _) = SigningKey::generate().map_err(io::Error::other)?;
        let sample = DateTime::parse_from_rfc3339(SAMPLE_START).unwrap_or_default();
        let mut device = Self {
            root: root.to_path_buf(),
            serial: serial.into(),
            key,
            records: Vec::new(),
            start: start.map_or(sample, |t| t.with_timezone(&sample.timezone())),
        };
        let dir = layout::device_dir(root, serial);
        fs::create_dir_all(dir.join(RECORDS_DIR))?;
        layout::write_atomic(
            &dir.join(PUBLIC_KEY_FILE),
            device.key.public_key().to_pem().as_bytes(),
        )?;
        let dcim = root.join("DCIM/100MEDIA");
        fs::create_dir_all(&dcim)?;
        for (i, src) in media.iter().enumerate() {
            let ext = src.extension().and_then(|e| e.to_str()).unwrap_or("MP4");
            let rel = format!("DCIM/100MEDIA/{serial}_{:04}.{ext}", i + 1);
            fs::copy(src, root.join(&rel))?;
            device.seal_clip(&rel)?;
        }
        Ok(device)
    }

    /// Creates a device whose clips are small generated files (`n` of `size` bytes each).
    ///
    /// # Errors
    /// Any I/O error.
    pub fn with_generated_clips(
        root: &Path,
        serial: &str,
        n: usize,
        size: usize,
    ) -> io::Result<Self> {
        Self::with_generated_clips_at(root, serial, n, size, None)
    }

    /// As [`SampleDevice::with_generated_clips`], clip 1 starting at `start` (see
    /// [`SampleDevice::create_recorded_at`]).
    ///
    /// # Errors
    /// Any I/O error.
    pub fn with_generated_clips_at(
        root: &Path,
        serial: &str,
        n: usize,
        size: usize,
        start: Option<chrono::DateTime<chrono::Utc>>,
    ) -> io::Result<Self> {
        let src = tempfile::tempdir()?;
        let mut media = Vec::new();
        for i in 0..n {
            let path = src.path().join(format!("clip{i}.MP4"));
            let bytes: Vec<u8> = (0..size)
                .map(|j| u8::try_from((j * 31 + i * 7) % 251).unwrap_or(0))
                .collect();
            fs::write(&path, bytes)?;
            media.push(path);
        }
        Self::create_recorded_at(root, serial, &media, start)
    }

    /// The device's public key.
    pub fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }

    /// Number of clips.
    pub fn clip_count(&self) -> usize {
        self.records
            .iter()
            .filter(|r| matches!(r.body().fact, Fact::Clip(_)))
            .count()
    }

    /// The signed records (each with its signature), in seq order.
    pub fn records(&self) -> impl Iterator<Item = &Record<Verified>> {
        self.records.iter()
    }

    /// Hashes the media at `rel` and appends a signed clip record for it.
    ///
    /// # Errors
    /// Any I/O error.
    pub fn seal_clip(&mut self, rel: &str) -> io::Result<()> {
        self.seal_clip_edited(rel, |_| {})
    }

    /// As [`SampleDevice::seal_clip`], with the record body changed by `edit` before
    /// signing (a clock far ahead, another officer…): validly signed, oddly dated.
    ///
    /// # Errors
    /// Any I/O error.
    pub fn seal_clip_edited(
        &mut self,
        rel: &str,
        edit: impl FnOnce(&mut RecordBody),
    ) -> io::Result<()> {
        let file = fs::File::open(self.root.join(rel))?;
        let (size, hash) = crate::hash_reader(file, &mut vec![0; 1 << 20])?;
        let seq = self.records.len() as u64 + 1;
        let prev = self.records.last().map(Record::hash);
        let mut body = clip_body_from(
            self.start,
            &self.key.public_key(),
            &self.serial,
            (seq, prev),
            (rel, size, hash),
        );
        edit(&mut body);
        let rec = Record::seal(&body, &self.key).map_err(io::Error::other)?;
        layout::write_record(&self.root, &rec)?;
        self.records.push(rec);
        Ok(())
    }

    /// Appends a signed record stating `fact` about an earlier clip (a binding to a case,
    /// an annotation), as the agent's `bind` and `annotate` do; returns its hash.
    ///
    /// # Errors
    /// Any I/O error, or a device without records.
    pub fn add_fact(&mut self, fact: Fact) -> io::Result<RecordHash> {
        let last = self
            .records
            .last()
            .ok_or_else(|| io::Error::other("a fact needs an earlier record"))?;
        let mut body = last.body().clone();
        body.seq = self.records.len() as u64 + 1;
        body.prev = Some(last.hash());
        body.created += Duration::seconds(1);
        body.fact = fact;
        let rec = Record::seal(&body, &self.key).map_err(io::Error::other)?;
        layout::write_record(&self.root, &rec)?;
        let hash = rec.hash();
        self.records.push(rec);
        Ok(hash)
    }

    fn record_path(&self, seq: u64) -> PathBuf {
        layout::record_path(&self.root, &self.serial, seq)
    }

    fn clip_path(&self, n: u64) -> Option<PathBuf> {
        let rec = self.records.get(usize::try_from(n).ok()?.checked_sub(1)?)?;
        rec.body().media().map(|m| self.root.join(&m.file))
    }

    /// Applies one recipe from [`RECIPES`], e.g. `flip-byte:clip-2` or `drop:seq-3`.
    ///
    /// # Errors
    /// [`TamperError`] for an unknown recipe, a clip/seq out of range, or I/O.
    pub fn tamper(&mut self, recipe: &str) -> Result<(), TamperError> {
        let range = || TamperError::OutOfRange(recipe.to_owned());
        let (action, n) = match recipe.rsplit_once('-') {
            Some((head, num)) if num.parse::<u64>().is_ok() => {
                (head, num.parse::<u64>().unwrap_or(0))
            }
            _ => (recipe, 0),
        };
        let have = n >= 1 && n <= self.records.len() as u64;
        match action {
            "extra-media" => {
                fs::write(
                    self.root.join("DCIM/100MEDIA/UNKNOWN_0001.MP4"),
                    b"vendor clip",
                )?;
            }
            "flip-byte:clip" | "delete-media:clip" => {
                let path = self.clip_path(n).ok_or_else(range)?;
                if action == "delete-media:clip" {
                    fs::remove_file(path)?;
                } else {
                    let mut bytes = fs::read(&path)?;
                    let mid = bytes.len() / 2;
                    *bytes.get_mut(mid).ok_or_else(range)? ^= 0x01;
                    fs::write(path, bytes)?;
                }
            }
            "drop:seq" | "flip-byte:record" | "delete-sig:seq" | "truncate:record"
            | "copy-bad-sig:seq"
                if have =>
            {
                let path = self.record_path(n);
                match action {
                    "copy-bad-sig:seq" => {
                        // Named to sort after the original, so a reader keyed by bytes
                        // where the last one wins would take the garbage signature.
                        let copy = path.with_file_name(format!("{n:08}_copy.json"));
                        fs::copy(&path, &copy)?;
                        fs::write(copy.with_extension("sig"), [0x5a; 64])?;
                    }
                    "drop:seq" => {
                        // The whole clip goes: media, record and signature.
                        if let Some(media) = self.clip_path(n) {
                            fs::remove_file(media)?;
                        }
                        fs::remove_file(&path)?;
                        fs::remove_file(path.with_extension("sig"))?;
                    }
                    "delete-sig:seq" => fs::remove_file(path.with_extension("sig"))?,
                    "truncate:record" => {
                        let bytes = fs::read(&path)?;
                        fs::write(&path, &bytes[..bytes.len() / 2])?;
                    }
                    _ => {
                        // Change one digit of the media size: still valid JSON, wrong bytes.
                        let text =
                            fs::read_to_string(&path)?.replacen("\"size\": ", "\"size\": 1", 1);
                        fs::write(&path, text)?;
                    }
                }
            }
            "fork:seq" | "replace:seq" if have => {
                // The device key signs a second version: beside the first, or instead of it.
                let name = (action == "fork:seq").then(|| format!("{n:08}-fork.json"));
                self.resign(n, None, name, |body| body.created += Duration::seconds(1))?;
            }
            "swap:seq" if n >= 2 && n < self.records.len() as u64 => {
                self.swap(usize::try_from(n).unwrap_or(0))?;
            }
            "foreign-device:seq" | "resign:other-key:seq" if have => {
                // Another device's record is added beside ours; a re-signed one replaces it.
                let (other_key, _) = SigningKey::generate().map_err(io::Error::other)?;
                let foreign = action == "foreign-device:seq";
                let name = foreign.then(|| format!("{n:08}-foreign.json"));
                let serial = format!("{}X", self.serial);
                self.resign(n, Some(&other_key), name, |body| {
                    if foreign {
                        body.device.serial = serial;
                    }
                })?;
            }
            "drop:seq"
            | "flip-byte:record"
            | "delete-sig:seq"
            | "copy-bad-sig:seq"
            | "truncate:record"
            | "fork:seq"
            | "replace:seq"
            | "swap:seq"
            | "foreign-device:seq"
            | "resign:other-key:seq" => {
                return Err(range());
            }
            _ => return Err(TamperError::Unknown(recipe.to_owned())),
        }
        Ok(())
    }

    /// Signs an edited copy of record `n` (with `key`, or the device key) and writes it
    /// under `name` beside the records, or over record `n` when `name` is `None`.
    fn resign(
        &self,
        n: u64,
        key: Option<&SigningKey>,
        name: Option<String>,
        edit: impl FnOnce(&mut RecordBody),
    ) -> io::Result<()> {
        let key = key.unwrap_or(&self.key);
        let rec = &self.records[usize::try_from(n - 1).unwrap_or(0)];
        let mut body = rec.body().clone();
        body.device.key_id = key.public_key().key_id();
        edit(&mut body);
        let other = Record::seal(&body, key).map_err(io::Error::other)?;
        let path = self.record_path(n);
        let path = name.map_or_else(|| path.clone(), |name| path.with_file_name(name));
        layout::write_record_at(&path, &other)
    }

    /// Re-signs the chain as if records `n` and `n+1` had been sealed in the other order:
    /// seqs stay in place, the `prev` links follow the sealing order. Seq 1 stays first
    /// (it alone has no `prev`), so `n` is at least 2.
    fn swap(&mut self, n: usize) -> io::Result<()> {
        let mut order: Vec<usize> = (0..self.records.len()).collect();
        order.swap(n - 1, n);
        let mut prev = None;
        let mut resealed = vec![None; order.len()];
        for k in order {
            let mut body = self.records[k].body().clone();
            body.prev = prev;
            let rec = Record::seal(&body, &self.key).map_err(io::Error::other)?;
            prev = Some(rec.hash());
            layout::write_record(&self.root, &rec)?;
            resealed[k] = Some(rec);
        }
        self.records = resealed.into_iter().flatten().collect();
        Ok(())
    }
}

/// A small deterministic generator (xorshift64*) for randomised tests: seeded from the
/// environment variable `var` when it holds a number, else from the clock. The seed is
/// printed (`VAR=seed`), so a failing run can be repeated.
pub struct SeededRng(u64);

impl SeededRng {
    /// The generator and its seed.
    pub fn from_env(var: &str) -> (Self, u64) {
        let seed = std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| u64::from(d.subsec_nanos()) ^ d.as_secs() | 1)
            });
        eprintln!("{var}={seed}");
        (Self(seed), seed)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// Runs `cmd` with its stdout closed before it writes (as `| head -n 0` would) and
/// returns how it ended, with its stderr: a command-line tool must end normally then,
/// never panic.
///
/// # Errors
/// The command cannot be started.
pub fn run_with_closed_stdout(cmd: &mut std::process::Command) -> io::Result<std::process::Output> {
    use std::process::Stdio;
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    drop(child.stdout.take());
    child.wait_with_output()
}

/// The password of the accounts tests add to a station.
pub const TEST_PASSWORD: &str = "correct-horse-battery";

/// Makes `cmd` (a `custody-station` command of the station configured by `config`) act as
/// the station's 内勤 `clerk`, adding that account with `station_bin` on first use: appends
/// `--as clerk --password-fd 0` and gives the password on stdin, as a clerk's script would.
///
/// # Errors
/// The password file cannot be written, or `user add` fails.
pub fn act_as_clerk(
    station_bin: &Path,
    config: &Path,
    cmd: &mut std::process::Command,
) -> io::Result<()> {
    let dir = config.parent().unwrap_or(Path::new("."));
    let password = dir.join("clerk.password");
    if !password.exists() {
        std::fs::write(&password, format!("{TEST_PASSWORD}\n"))?;
        let out = std::process::Command::new(station_bin)
            .arg("--config")
            .arg(config)
            .args([
                "user",
                "add",
                "clerk",
                "--name",
                "内勤",
                "--department",
                "法制大队",
            ])
            .args(["--role", "clerk", "--password-fd", "0"])
            .stdin(std::fs::File::open(&password)?)
            .output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "user add clerk: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
    }
    cmd.args(["--as", "clerk", "--password-fd", "0"])
        .stdin(std::fs::File::open(&password)?);
    Ok(())
}

/// A real Mosquitto broker on 127.0.0.1 for tests and demos, stopped when dropped.
pub struct Mosquitto {
    /// The port it listens on.
    pub port: u16,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    /// Starts `mosquitto` on a free loopback port and waits until it accepts connections.
    ///
    /// # Errors
    /// Mosquitto is not installed (`scripts/setup` installs it) or does not come up.
    pub fn start() -> io::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        Self::start_on(port)
    }

    /// Starts it on `port` (to bring a stopped broker back where clients expect it).
    ///
    /// # Errors
    /// As [`Mosquitto::start`].
    pub fn start_on(port: u16) -> io::Result<Self> {
        let dir = tempfile::tempdir()?;
        // As root Mosquitto drops to its own user: it must be able to read its config.
        let mut perms = fs::metadata(dir.path())?.permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        fs::set_permissions(dir.path(), perms)?;
        let conf = dir.path().join("mosquitto.conf");
        fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
        )?;
        // Debian puts it in /usr/sbin, which a user's PATH may lack.
        let bin = ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("mosquitto");
        let child = std::process::Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot run mosquitto: {e}")))?;
        let mut broker = Self {
            port,
            child,
            _dir: dir,
        };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(broker);
            }
            if let Some(status) = broker.child.try_wait()? {
                return Err(io::Error::other(format!("mosquitto exited: {status}")));
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Err(io::Error::other("mosquitto did not start listening"))
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
