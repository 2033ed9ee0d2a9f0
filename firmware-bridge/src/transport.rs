//! The serial transport: the frame codec on a real port (`tokio-serial`), configured from
//! the device's hw-profile. One request at a time with a timeout and retries, an event
//! stream, and reconnect with backoff when the device resets or is unplugged.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hw_profiles::{FlowControl, Parity, SerialSettings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_serial::{SerialPortBuilderExt, SerialStream};

use crate::codec::{self, Frame, FrameDecoder, LinkStats, PROTOCOL_VERSION, StreamItem};
use crate::message::{MAX_SIGN_BYTES, MAX_SIGNED_MESSAGE, McuMessage};

/// Events waiting for the agent; beyond this they are dropped and counted (the agent's
/// folder watcher is the second source of recording events, NMEA repeats every second).
const EVENT_QUEUE: usize = 256;
/// First reconnect delay; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest reconnect delay.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A secure element signs slowly: its requests get this many response timeouts.
const SIGN_TIMEOUT_FACTOR: u32 = 10;

/// A link failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The port does not exist.
    #[error("serial port {0} does not exist (is the device plugged in?)")]
    NoSuchPort(PathBuf),
    /// The port exists but cannot be opened.
    #[error("cannot open serial port {path}: {why}")]
    Open {
        /// The port.
        path: PathBuf,
        /// What the OS said.
        why: String,
    },
    /// The MCU speaks another protocol version.
    #[error("the device speaks protocol version {0}, this build speaks {PROTOCOL_VERSION}")]
    WrongVersion(u8),
    /// No response after every retry.
    #[error("no response from the device after {attempts} attempts")]
    Timeout {
        /// Attempts made.
        attempts: u32,
    },
    /// The device refused the request.
    #[error("the device refused the request (code {code}): {reason}")]
    Nak {
        /// Reason code (see PROTOCOL.md).
        code: u8,
        /// Its reason.
        reason: String,
    },
    /// The device answered with a response of another kind.
    #[error("unexpected response {0}")]
    Unexpected(String),
    /// The link is down (device reset or unplugged); it reconnects on its own.
    #[error("the device is disconnected: {0}")]
    Disconnected(String),
    /// The bridge was shut down.
    #[error("the bridge is closed")]
    Closed,
}

/// Something that happened on the link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// An event from the MCU (recording, key mark, NMEA, dock).
    Mcu(McuMessage),
    /// The link went down (read error such as EIO, or end of input).
    Disconnected(String),
    /// The port opened again after a disconnect.
    Reconnected,
}

/// What the agent needs to open the link.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// The serial port (or the simulator's link).
    pub path: PathBuf,
    /// UART settings and timing from the hw-profile.
    pub serial: SerialSettings,
}

/// Offset and drift found by a time sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockSync {
    /// Device clock minus the reference before the sync, in milliseconds.
    pub offset_ms: i64,
    /// Drift the MCU measured since its previous set, in parts per billion.
    pub drift_ppb: i32,
}

struct Outgoing {
    msg: McuMessage,
    reply: oneshot::Sender<Result<McuMessage, LinkError>>,
}

/// A connected MCU link.
#[derive(Debug)]
pub struct Bridge {
    requests: mpsc::Sender<Outgoing>,
    events: mpsc::Receiver<LinkEvent>,
    stats: Arc<Mutex<Counters>>,
    timeout: Duration,
    retries: u32,
    task: JoinHandle<()>,
}

/// Link counters: the codec's plus the transport's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// What the frame decoder saw.
    pub link: LinkStats,
    /// Events dropped because the agent did not take them in time.
    pub dropped_events: u64,
    /// Times the link went down.
    pub disconnects: u64,
    /// Requests sent again after a timeout.
    pub retries: u64,
}

fn open_port(cfg: &LinkConfig) -> Result<SerialStream, LinkError> {
    if !cfg.path.exists() {
        return Err(LinkError::NoSuchPort(cfg.path.clone()));
    }
    let s = &cfg.serial;
    tokio_serial::new(cfg.path.to_string_lossy(), s.baud)
        .data_bits(if s.data_bits == 7 {
            tokio_serial::DataBits::Seven
        } else {
            tokio_serial::DataBits::Eight
        })
        .parity(match s.parity {
            Parity::None => tokio_serial::Parity::None,
            Parity::Even => tokio_serial::Parity::Even,
            Parity::Odd => tokio_serial::Parity::Odd,
        })
        .stop_bits(if s.stop_bits == 2 {
            tokio_serial::StopBits::Two
        } else {
            tokio_serial::StopBits::One
        })
        .flow_control(match s.flow_control {
            FlowControl::None => tokio_serial::FlowControl::None,
            FlowControl::RtsCts => tokio_serial::FlowControl::Hardware,
        })
        .open_native_async()
        .map_err(|e| LinkError::Open {
            path: cfg.path.clone(),
            why: e.to_string(),
        })
}

impl Bridge {
    /// Opens the port, starts the link and identifies the device (which also checks the
    /// protocol version). Returns the bridge and the device's Identity.
    ///
    /// # Errors
    /// [`LinkError::NoSuchPort`], [`LinkError::Open`], [`LinkError::WrongVersion`], or
    /// [`LinkError::Timeout`] when nothing answers.
    pub async fn connect(cfg: LinkConfig) -> Result<(Self, McuMessage), LinkError> {
        let port = open_port(&cfg)?;
        let (requests, rx) = mpsc::channel(1);
        let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
        let stats = Arc::new(Mutex::new(Counters::default()));
        let timeout = Duration::from_millis(u64::from(cfg.serial.response_timeout_ms));
        let retries = u32::from(cfg.serial.retries);
        let task = tokio::spawn(io_task(cfg, port, rx, events_tx, Arc::clone(&stats)));
        let bridge = Self {
            requests,
            events,
            stats,
            timeout,
            retries,
            task,
        };
        let identity = bridge.request(McuMessage::Identify).await?;
        match &identity {
            McuMessage::Identity { protocol, .. } if *protocol == PROTOCOL_VERSION => {
                Ok((bridge, identity))
            }
            McuMessage::Identity { protocol, .. } => Err(LinkError::WrongVersion(*protocol)),
            other => Err(LinkError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Sends a request and waits for its response, re-sending after each timeout up to
    /// the profile's retries. A `Nak` becomes [`LinkError::Nak`].
    ///
    /// # Errors
    /// [`LinkError`] when there is no usable response.
    pub async fn request(&self, msg: McuMessage) -> Result<McuMessage, LinkError> {
        let factor = if matches!(msg, McuMessage::Sign { .. } | McuMessage::SignPart { .. }) {
            SIGN_TIMEOUT_FACTOR
        } else {
            1
        };
        let attempts = self.retries + 1;
        for attempt in 0..attempts {
            if attempt > 0 {
                self.counters(|c| c.retries += 1);
            }
            let (reply, rx) = oneshot::channel();
            self.requests
                .send(Outgoing {
                    msg: msg.clone(),
                    reply,
                })
                .await
                .map_err(|_| LinkError::Closed)?;
            match tokio::time::timeout(self.timeout * factor, rx).await {
                Ok(Ok(Ok(McuMessage::Nak { code, reason }))) => {
                    return Err(LinkError::Nak { code, reason });
                }
                Ok(Ok(result)) => return result,
                Ok(Err(_)) => return Err(LinkError::Closed),
                Err(_elapsed) => {}
            }
        }
        Err(LinkError::Timeout { attempts })
    }

    /// Has the secure element sign exactly `message` with the key in `slot`: in one
    /// `Sign` request up to 512 bytes, else in `SignPart`s of 512 bytes (PROTOCOL.md).
    ///
    /// # Errors
    /// [`LinkError`] from a request (a `Nak` code 5 when there is no secure element), or
    /// [`LinkError::Unexpected`] for an answer that is not the one the protocol gives.
    pub async fn sign(&self, slot: u8, message: &[u8]) -> Result<[u8; 64], LinkError> {
        if message.len() <= MAX_SIGN_BYTES {
            let answer = self
                .request(McuMessage::Sign {
                    slot,
                    message: message.to_vec(),
                })
                .await?;
            return signature_of(answer);
        }
        let total = u32::try_from(message.len())
            .ok()
            .filter(|&n| n <= MAX_SIGNED_MESSAGE)
            .ok_or_else(|| {
                LinkError::Unexpected(format!(
                    "{} bytes are more than a secure element signs",
                    message.len()
                ))
            })?;
        let mut offset = 0u32;
        for part in message.chunks(MAX_SIGN_BYTES) {
            let answer = self
                .request(McuMessage::SignPart {
                    slot,
                    total,
                    offset,
                    part: part.to_vec(),
                })
                .await?;
            // A part is at most 512 bytes, the whole at most 64 KiB: no overflow.
            offset += u32::try_from(part.len()).unwrap_or(u32::MAX);
            if offset < total {
                if answer != McuMessage::Ack {
                    return Err(LinkError::Unexpected(format!(
                        "SignPart answered with {answer:?}"
                    )));
                }
            } else {
                return signature_of(answer);
            }
        }
        Err(LinkError::Unexpected("nothing to sign".into()))
    }

    /// Synchronises the device clock to `reference_unix_ms`: reads the offset, sets the
    /// time, and reads the drift the MCU measured.
    ///
    /// # Errors
    /// [`LinkError`] from the requests.
    pub async fn sync_time(
        &self,
        reference_unix_ms: impl Fn() -> i64,
    ) -> Result<ClockSync, LinkError> {
        let McuMessage::Time { unix_ms, .. } = self.request(McuMessage::GetTime).await? else {
            return Err(LinkError::Unexpected(
                "GetTime not answered with Time".into(),
            ));
        };
        let offset_ms = unix_ms - reference_unix_ms();
        self.request(McuMessage::SetTime {
            unix_ms: reference_unix_ms(),
        })
        .await?;
        let McuMessage::Time { drift_ppb, .. } = self.request(McuMessage::GetTime).await? else {
            return Err(LinkError::Unexpected(
                "GetTime not answered with Time".into(),
            ));
        };
        Ok(ClockSync {
            offset_ms,
            drift_ppb,
        })
    }

    /// The next event; `None` once the bridge is closed.
    pub async fn next_event(&mut self) -> Option<LinkEvent> {
        self.events.recv().await
    }

    /// The link counters so far.
    pub fn counters_snapshot(&self) -> Counters {
        self.stats.lock().map(|c| *c).unwrap_or_default()
    }

    fn counters(&self, f: impl FnOnce(&mut Counters)) {
        // std Mutex: held only for a counter update, never across an await.
        if let Ok(mut c) = self.stats.lock() {
            f(&mut c);
        }
    }
}

fn signature_of(answer: McuMessage) -> Result<[u8; 64], LinkError> {
    match answer {
        McuMessage::Signature { sig } => Ok(sig),
        other => Err(LinkError::Unexpected(format!(
            "a signing request answered with {other:?}"
        ))),
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Owns the port: writes requests, reads frames, routes responses and events, and
/// reconnects with backoff when the port fails.
async fn io_task(
    cfg: LinkConfig,
    port: SerialStream,
    mut requests: mpsc::Receiver<Outgoing>,
    events: mpsc::Sender<LinkEvent>,
    stats: Arc<Mutex<Counters>>,
) {
    let mut port = Some(port);
    let mut decoder = FrameDecoder::new();
    let mut pending: Option<(u8, oneshot::Sender<Result<McuMessage, LinkError>>)> = None;
    let mut seq = 0u8;
    let mut backoff = FIRST_BACKOFF;
    let mut buf = vec![0u8; 4096];
    let emit = |e: LinkEvent| {
        if events.try_send(e).is_err()
            && let Ok(mut c) = stats.lock()
        {
            c.dropped_events += 1;
        }
    };
    loop {
        let down = if let Some(p) = &mut port {
            tokio::select! {
                read = p.read(&mut buf) => match read {
                    Ok(0) => Some("end of input".to_owned()),
                    Ok(n) => {
                        for item in decoder.push(&buf[..n]) {
                            match item {
                                StreamItem::Frame(f) if f.msg.is_event() => emit(LinkEvent::Mcu(f.msg)),
                                StreamItem::Frame(f) => {
                                    if pending.as_ref().is_some_and(|(s, _)| *s == f.seq)
                                        && let Some((_, reply)) = pending.take()
                                    {
                                        let _ = reply.send(Ok(f.msg));
                                    }
                                }
                                StreamItem::WrongVersion(v) => {
                                    if let Some((_, reply)) = pending.take() {
                                        let _ = reply.send(Err(LinkError::WrongVersion(v)));
                                    }
                                }
                            }
                        }
                        if let Ok(mut c) = stats.lock() {
                            c.link = decoder.stats();
                        }
                        None
                    }
                    Err(e) => Some(e.to_string()),
                },
                req = requests.recv() => match req {
                    None => return,
                    Some(out) => {
                        seq = seq.wrapping_add(1);
                        match codec::encode(&Frame { seq, msg: out.msg }) {
                            Err(e) => {
                                let _ = out.reply.send(Err(LinkError::Unexpected(e.to_string())));
                                None
                            }
                            Ok(bytes) => {
                                // A newer attempt replaces an older one; its late answer is ignored.
                                pending = Some((seq, out.reply));
                                p.write_all(&bytes).await.err().map(|e| e.to_string())
                            }
                        }
                    }
                },
            }
        } else {
            tokio::select! {
                () = tokio::time::sleep(backoff) => {
                    match open_port(&cfg) {
                        Ok(p) => {
                            port = Some(p);
                            decoder.reset();
                            backoff = FIRST_BACKOFF;
                            emit(LinkEvent::Reconnected);
                        }
                        Err(_) => backoff = (backoff * 2).min(MAX_BACKOFF),
                    }
                }
                req = requests.recv() => match req {
                    None => return,
                    Some(out) => { let _ = out.reply.send(Err(LinkError::Disconnected("waiting for the device to come back".into()))); }
                },
            }
            None
        };
        if let Some(why) = down {
            port = None;
            decoder.reset();
            if let Ok(mut c) = stats.lock() {
                c.disconnects += 1;
            }
            if let Some((_, reply)) = pending.take() {
                let _ = reply.send(Err(LinkError::Disconnected(why.clone())));
            }
            emit(LinkEvent::Disconnected(why));
        }
    }
}

/// The link settings of a profile for the port at `path`.
///
/// # Errors
/// [`LinkError::Open`] when the profile has no serial link (a legacy recorder).
pub fn link_config(path: &Path, profile: &hw_profiles::HwProfile) -> Result<LinkConfig, LinkError> {
    let serial = profile.serial.clone().ok_or_else(|| LinkError::Open {
        path: path.into(),
        why: format!("model {} has no MCU serial link", profile.id),
    })?;
    Ok(LinkConfig {
        path: path.into(),
        serial,
    })
}

#[cfg(test)]
mod tests;
