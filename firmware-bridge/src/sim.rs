//! A faithful recorder simulator: it plays the MCU side of the link on a pseudo-terminal,
//! with a drifting RTC, a draining battery, storage, an officer binding, GNSS NMEA replayed
//! from a real capture, docking and mass-storage mode, and faults on demand (garbage on
//! the line, reset mid-frame, unplug and replug, clock jump, storage full).
//!
//! One thread owns the pty and does everything in a poll loop, so faults happen exactly
//! between two frames. The pty's current path is published as a stable symlink (`link`),
//! as a USB serial device keeps its `/dev/ttyUSB0` name across replugs.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use hw_profiles::HwProfile;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};

use crate::codec::{self, Frame, FrameDecoder, StreamItem};
use crate::message::{McuMessage, OfficerBinding};
use secure_element::SecureElement;

mod recording;
mod script;
mod secure_element;

pub use recording::{Camera, RecorderEvent};
pub use script::{ScriptError, Step, parse_script};

/// How long one turn of the poll loop waits for input, in milliseconds.
const TICK_MS: u16 = 10;
/// How often NMEA is passed through (a receiver's 1 Hz, sped up for tests).
const NMEA_EVERY: Duration = Duration::from_millis(200);
/// NMEA lines sent per burst.
const NMEA_LINES_PER_BURST: usize = 4;

/// What the simulated device is.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The device model: Identify reports its id; storage layout, naming, segment length,
    /// codecs and capacity come from it.
    pub profile: HwProfile,
    /// 7-character product serial.
    pub serial: String,
    /// Firmware version reported by Identify.
    pub firmware: String,
    /// Protocol version the simulated MCU speaks (set 2 to test a mismatch).
    pub protocol_version: u8,
    /// Stable symlink to the current pty.
    pub link: PathBuf,
    /// The device storage root (what mass-storage mode exposes).
    pub storage: PathBuf,
    /// Segment length in seconds instead of the profile's (demos and tests).
    pub segment_seconds: Option<u32>,
    /// Where the storage appears when docked in mass-storage mode (a dock slot under the
    /// station's dock root), as a USB mount would.
    pub dock_slot: Option<PathBuf>,
    /// RTC drift in parts per million (positive: fast).
    pub drift_ppm: i32,
    /// Battery charge at start, percent.
    pub battery_percent: u8,
    /// Password that unlocks mass-storage mode.
    pub mass_storage_password: String,
    /// NMEA lines replayed in a loop (from a real capture); empty for no GNSS.
    pub nmea: Vec<Vec<u8>>,
    /// The officer the device is issued to.
    pub officer: OfficerBinding,
    /// A secure-element key (32-byte Ed25519 seed), if the model has one.
    pub secure_element_seed: Option<[u8; 32]>,
}

/// A fault or action injected into the running simulator.
#[derive(Debug, Clone)]
pub enum Control {
    /// Write these bytes on the line as they are.
    Garbage(Vec<u8>),
    /// Send the first half of a frame, then reset: the rest never comes.
    ResetMidFrame,
    /// Pull the cable: the pty closes, the agent's reads fail with EIO.
    Unplug,
    /// Plug it back in: a new pty behind the same link path.
    Replug,
    /// The RTC jumps by this many milliseconds.
    ClockJump(i64),
    /// The storage fills up.
    StorageFull,
    /// The officer presses record.
    StartRecording,
    /// The officer presses stop.
    StopRecording,
    /// 重点标记: the officer presses the mark button.
    KeyMark,
    /// Put in a dock (recording stops, the battery charges).
    Dock,
    /// Taken out of the dock (the storage disappears from the dock slot).
    Undock,
    /// Stop the simulator.
    Stop,
}

/// A running simulator.
#[derive(Debug)]
pub struct Simulator {
    /// Controls for the device thread, each with an optional acknowledgement sent once it
    /// has been applied.
    control: mpsc::Sender<(Control, Option<mpsc::SyncSender<()>>)>,
    thread: Option<JoinHandle<io::Result<()>>>,
    link: PathBuf,
}

impl Simulator {
    /// Opens the pty, publishes its link, and starts the device.
    ///
    /// # Errors
    /// The pty cannot be opened or the link cannot be written.
    pub fn start(config: SimConfig) -> io::Result<Self> {
        let mut device = Device::new(config)?;
        let link = device.config.link.clone();
        let (control, rx) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("recorder-sim".into())
            .spawn(move || device.run(&rx))?;
        Ok(Self {
            control,
            thread: Some(thread),
            link,
        })
    }

    /// The stable path the agent opens.
    pub fn link(&self) -> &Path {
        &self.link
    }

    /// Injects a fault or event, without waiting for the device to act on it.
    pub fn send(&self, c: Control) {
        // A stopped simulator has nothing to inject into; the caller sees it on stop().
        let _ = self.control.send((c, None));
    }

    /// Injects a fault or event and returns once the device has applied it (the clock
    /// jumped, the storage is full…): a test then asserts on a state that holds, instead
    /// of sleeping and hoping.
    ///
    /// # Errors
    /// The simulator stopped before it applied the control.
    pub fn apply(&self, c: Control) -> io::Result<()> {
        // A rendezvous: the device thread answers right after applying the control.
        let (done, applied) = mpsc::sync_channel(1);
        self.control
            .send((c, Some(done)))
            .map_err(|_| io::Error::other("the simulator has stopped"))?;
        applied
            .recv()
            .map_err(|_| io::Error::other("the simulator stopped before applying the control"))
    }

    /// Stops the device and reports how its thread ended.
    ///
    /// # Errors
    /// The I/O error that stopped the device early, if any.
    pub fn stop(mut self) -> io::Result<()> {
        self.send(Control::Stop);
        self.thread.take().map_or(Ok(()), |t| {
            t.join()
                .unwrap_or_else(|_| Err(io::Error::other("simulator thread panicked")))
        })
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = self.control.send((Control::Stop, None));
            let _ = t.join();
        }
    }
}

/// The pty pair: the simulator keeps the slave open too, so the master never reads EIO
/// merely because no agent has opened the port yet.
struct Pty {
    master: File,
    _slave: OwnedFd,
}

fn open_pty(link: &Path) -> io::Result<Pty> {
    let pair = nix::pty::openpty(None, None).map_err(io::Error::from)?;
    // Raw mode before anyone opens it: no echo, no CR/LF translation, bytes as they are.
    let mut t = tcgetattr(pair.slave.as_fd()).map_err(io::Error::from)?;
    cfmakeraw(&mut t);
    tcsetattr(pair.slave.as_fd(), SetArg::TCSANOW, &t).map_err(io::Error::from)?;
    // Non-blocking master: with nobody reading, output is lost as on a real UART.
    fcntl(pair.master.as_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(io::Error::from)?;
    let path = nix::unistd::ttyname(pair.slave.as_fd()).map_err(io::Error::from)?;
    let tmp = link.with_extension("tmp-link");
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&path, &tmp)?;
    fs::rename(&tmp, link)?;
    Ok(Pty {
        master: File::from(pair.master),
        _slave: pair.slave,
    })
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

struct Device {
    config: SimConfig,
    pty: Option<Pty>,
    decoder: FrameDecoder,
    /// RTC = host clock + offset + drift since `set_at`.
    offset_ms: i64,
    set_at: Instant,
    last_set_unix_ms: i64,
    measured_drift_ppb: i32,
    battery_percent: u8,
    battery_since: Instant,
    docked: bool,
    storage_full: bool,
    camera: Camera,
    event_seq: u8,
    nmea_next: Instant,
    nmea_pos: usize,
    /// The secure element, if the model has one (and its seed makes a key).
    secure_element: Option<SecureElement>,
}

impl Device {
    fn new(config: SimConfig) -> io::Result<Self> {
        let pty = open_pty(&config.link)?;
        fs::create_dir_all(&config.storage)?;
        let camera = Camera::new(
            &config.profile,
            &config.storage,
            &config.serial,
            config.segment_seconds,
        )?;
        let secure_element = config
            .secure_element_seed
            .as_ref()
            .and_then(SecureElement::new);
        Ok(Self {
            camera,
            secure_element,
            battery_percent: config.battery_percent.min(100),
            config,
            pty: Some(pty),
            decoder: FrameDecoder::new(),
            offset_ms: 0,
            set_at: Instant::now(),
            last_set_unix_ms: 0,
            measured_drift_ppb: 0,
            battery_since: Instant::now(),
            docked: false,
            storage_full: false,
            event_seq: 0,
            nmea_next: Instant::now(),
            nmea_pos: 0,
        })
    }

    fn rtc(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.rtc_ms()).unwrap_or_default()
    }

    fn capacity_bytes(&self) -> u64 {
        u64::from(self.config.profile.storage.capacity_gib) << 30
    }

    fn free_bytes(&self) -> u64 {
        if self.storage_full {
            0
        } else {
            self.capacity_bytes()
                .saturating_sub(dir_size(&self.config.storage))
        }
    }

    fn rtc_ms(&self) -> i64 {
        let elapsed = i64::try_from(self.set_at.elapsed().as_millis()).unwrap_or(i64::MAX);
        unix_ms(SystemTime::now())
            + self.offset_ms
            + elapsed * i64::from(self.config.drift_ppm) / 1_000_000
    }

    fn run(
        &mut self,
        control: &mpsc::Receiver<(Control, Option<mpsc::SyncSender<()>>)>,
    ) -> io::Result<()> {
        let mut buf = [0u8; 4096];
        loop {
            while let Ok((c, done)) = control.try_recv() {
                let go_on = self.apply(c)?;
                if let Some(done) = done {
                    let _ = done.send(());
                }
                if !go_on {
                    return Ok(());
                }
            }
            let Some(pty) = &mut self.pty else {
                thread::sleep(Duration::from_millis(u64::from(TICK_MS)));
                continue;
            };
            let mut fds = [PollFd::new(pty.master.as_fd(), PollFlags::POLLIN)];
            let ready = poll(&mut fds, PollTimeout::from(TICK_MS)).map_err(io::Error::from)?;
            if ready > 0 {
                match pty.master.read(&mut buf) {
                    Ok(n) => {
                        for item in self.decoder.push(&buf[..n]) {
                            if let StreamItem::Frame(frame) = item {
                                self.answer(frame)?;
                            }
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // EIO: the agent closed its side for a moment; keep the device alive.
                    Err(e) if e.raw_os_error() == Some(nix::libc::EIO) => {
                        thread::sleep(Duration::from_millis(u64::from(TICK_MS)));
                    }
                    Err(e) => return Err(e),
                }
            }
            self.tick()?;
        }
    }

    /// Periodic work: recording, battery, NMEA pass-through.
    fn tick(&mut self) -> io::Result<()> {
        if self.camera.is_recording() {
            if self.free_bytes() == 0 {
                // A full card ends the recording; what was written is closed, never lost.
                self.stop_recording()?;
            } else {
                for e in self.camera.poll(self.rtc())? {
                    self.recorder_event(e)?;
                }
            }
        }
        // One percent every 30 s off the dock, charging 1 % per 5 s on it.
        let step = if self.docked { 5 } else { 30 };
        if self.battery_since.elapsed() >= Duration::from_secs(step) {
            self.battery_since = Instant::now();
            self.battery_percent = if self.docked {
                (self.battery_percent + 1).min(100)
            } else {
                self.battery_percent.saturating_sub(1)
            };
        }
        if !self.config.nmea.is_empty() && Instant::now() >= self.nmea_next {
            self.nmea_next = Instant::now() + NMEA_EVERY;
            let mut text = Vec::new();
            for _ in 0..NMEA_LINES_PER_BURST {
                text.extend_from_slice(&self.config.nmea[self.nmea_pos % self.config.nmea.len()]);
                text.extend_from_slice(b"\r\n");
                self.nmea_pos += 1;
            }
            self.event(&McuMessage::Nmea { text })?;
        }
        Ok(())
    }

    fn apply(&mut self, c: Control) -> io::Result<bool> {
        match c {
            Control::Garbage(bytes) => self.write(&bytes)?,
            Control::ResetMidFrame => {
                let frame = self.frame(
                    self.event_seq,
                    &McuMessage::KeyMark {
                        unix_ms: self.rtc_ms(),
                    },
                )?;
                self.write(&frame[..frame.len() / 2])?;
                self.decoder.reset();
            }
            Control::Unplug => {
                self.pty = None;
                let _ = fs::remove_file(&self.config.link);
            }
            Control::Replug => {
                if self.pty.is_none() {
                    self.pty = Some(open_pty(&self.config.link)?);
                    self.decoder.reset();
                }
            }
            Control::ClockJump(ms) => self.offset_ms += ms,
            Control::StorageFull => self.storage_full = true,
            Control::StartRecording if !self.camera.is_recording() && !self.docked => {
                let e = self.camera.start(self.rtc())?;
                self.recorder_event(e)?;
            }
            Control::StartRecording => {}
            Control::StopRecording => self.stop_recording()?,
            Control::KeyMark => self.event(&McuMessage::KeyMark {
                unix_ms: self.rtc_ms(),
            })?,
            Control::Dock => {
                self.stop_recording()?;
                self.docked = true;
                self.event(&McuMessage::Docked)?;
            }
            Control::Undock => {
                self.docked = false;
                if let Some(slot) = &self.config.dock_slot {
                    let _ = fs::remove_file(slot);
                }
                self.event(&McuMessage::Undocked)?;
            }
            Control::Stop => {
                self.stop_recording()?;
                self.pty = None;
                let _ = fs::remove_file(&self.config.link);
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn stop_recording(&mut self) -> io::Result<()> {
        if let Some(e) = self.camera.stop()? {
            self.recorder_event(e)?;
            self.event(&McuMessage::RecordingStopped {
                unix_ms: self.rtc_ms(),
            })?;
        }
        Ok(())
    }

    fn recorder_event(&mut self, e: RecorderEvent) -> io::Result<()> {
        let unix_ms = self.rtc_ms();
        match e {
            RecorderEvent::Started(file) => {
                self.event(&McuMessage::RecordingStarted { unix_ms, file })
            }
            RecorderEvent::Closed(file) => self.event(&McuMessage::SegmentClosed { unix_ms, file }),
        }
    }

    /// Mass-storage mode: the storage appears in the dock slot.
    fn expose_storage(&self) -> io::Result<()> {
        let Some(slot) = &self.config.dock_slot else {
            return Ok(());
        };
        if let Some(parent) = slot.parent() {
            fs::create_dir_all(parent)?;
        }
        let _ = fs::remove_file(slot);
        std::os::unix::fs::symlink(&self.config.storage, slot)
    }

    fn frame(&self, seq: u8, msg: &McuMessage) -> io::Result<Vec<u8>> {
        let mut bytes = codec::encode(&Frame {
            seq,
            msg: msg.clone(),
        })
        .map_err(io::Error::other)?;
        if self.config.protocol_version != codec::PROTOCOL_VERSION {
            // An MCU of another protocol version: same framing, another version byte.
            bytes[2] = self.config.protocol_version;
            let n = bytes.len();
            let crc = codec::crc16(&bytes[2..n - 2]).to_be_bytes();
            bytes[n - 2..].copy_from_slice(&crc);
        }
        Ok(bytes)
    }

    fn event(&mut self, msg: &McuMessage) -> io::Result<()> {
        self.event_seq = self.event_seq.wrapping_add(1);
        let bytes = self.frame(self.event_seq, msg)?;
        self.write(&bytes)
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let Some(pty) = &mut self.pty else {
            return Ok(());
        };
        match pty.master.write_all(bytes) {
            // Nobody reading, or the agent's side closed: the bytes are lost, as on a UART.
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.raw_os_error() == Some(nix::libc::EIO) =>
            {
                Ok(())
            }
            other => other,
        }
    }

    fn answer(&mut self, frame: Frame) -> io::Result<()> {
        let reply = match frame.msg {
            McuMessage::Identify => McuMessage::Identity {
                model: self.config.profile.id.clone(),
                serial: self.config.serial.clone(),
                firmware: self.config.firmware.clone(),
                protocol: self.config.protocol_version,
            },
            McuMessage::GetOfficer => McuMessage::Officer(self.config.officer.clone()),
            McuMessage::SetOfficer(o) => {
                self.config.officer = o;
                McuMessage::Ack
            }
            McuMessage::GetTime => McuMessage::Time {
                unix_ms: self.rtc_ms(),
                last_set_unix_ms: self.last_set_unix_ms,
                drift_ppb: self.measured_drift_ppb,
            },
            McuMessage::SetTime { unix_ms } => {
                let since = i64::try_from(self.set_at.elapsed().as_millis())
                    .unwrap_or(i64::MAX)
                    .max(1);
                if self.last_set_unix_ms != 0 {
                    let error = self.rtc_ms() - unix_ms;
                    self.measured_drift_ppb =
                        i32::try_from(error * 1_000_000_000 / since).unwrap_or(i32::MAX);
                }
                self.offset_ms = unix_ms - unix_ms_now();
                self.set_at = Instant::now();
                self.last_set_unix_ms = unix_ms;
                McuMessage::Ack
            }
            McuMessage::GetBattery => McuMessage::Battery {
                percent: self.battery_percent,
                millivolts: 3300 + u16::from(self.battery_percent) * 9,
                charging: self.docked,
            },
            McuMessage::GetStorage => McuMessage::Storage {
                total_bytes: self.capacity_bytes(),
                free_bytes: self.free_bytes(),
            },
            McuMessage::EnterMassStorage { .. } if !self.docked => McuMessage::Nak {
                code: 4,
                reason: "not docked".into(),
            },
            McuMessage::EnterMassStorage { password }
                if password == self.config.mass_storage_password =>
            {
                self.expose_storage()?;
                McuMessage::Ack
            }
            McuMessage::EnterMassStorage { .. } => McuMessage::Nak {
                code: 3,
                reason: "wrong mass-storage password".into(),
            },
            McuMessage::Feedback { .. } => McuMessage::Ack,
            request @ (McuMessage::GetPublicKey { .. }
            | McuMessage::Sign { .. }
            | McuMessage::SignPart { .. }) => match &mut self.secure_element {
                None => McuMessage::Nak {
                    code: 5,
                    reason: "no secure element".into(),
                },
                Some(se) => se.answer(request),
            },
            _ => McuMessage::Nak {
                code: 1,
                reason: "not a request this device answers".into(),
            },
        };
        let bytes = self.frame(frame.seq, &reply)?;
        self.write(&bytes)
    }
}

fn unix_ms_now() -> i64 {
    unix_ms(SystemTime::now())
}

/// Bytes in the regular files under `dir` (symlinks not followed).
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

/// Reads an NMEA capture into lines (gpsd `#` headers and blank lines left out).
///
/// # Errors
/// The file cannot be read.
pub fn load_nmea(path: &Path) -> io::Result<Vec<Vec<u8>>> {
    let bytes = fs::read(path)?;
    Ok(bytes
        .split(|&b| b == b'\n')
        .map(<[u8]>::trim_ascii)
        .filter(|l| !l.is_empty() && !l.starts_with(b"#"))
        .map(<[u8]>::to_vec)
        .collect())
}
