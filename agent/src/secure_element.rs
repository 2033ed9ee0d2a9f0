//! Sealing through the MCU's secure element: the device key never leaves the chip. The
//! agent pins the element's public key at enrolment (`device.pub` in the state folder)
//! and checks every signature it gets back against it, so a swapped MCU cannot sign
//! records under another key.
//!
//! The sealer signs from its own thread; the MCU link lives in an async task. A
//! [`SecureElementSigner`] hands each message to that task as a [`SignJob`] and waits for
//! the answer. In `run` the bridge task serves the jobs beside its other work; a one-shot
//! command ([`connect`]) opens the link on a thread of its own.

use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use anyhow::Context as _;
use custody::{PublicKey, SignError, Signature, Signer};
use firmware_bridge::message::McuMessage;
use firmware_bridge::transport::{Bridge, LinkConfig};
use tokio::sync::mpsc;

use crate::config::AgentConfig;

/// File name of the pinned secure-element public key in the state folder.
pub const PINNED_KEY_FILE: &str = "device.pub";
/// Signing requests waiting for the link; more means the element is far behind.
const QUEUE: usize = 8;
/// Longest wait for a signature: reconnecting and a long record over a slow line.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// One message for the secure element to sign, and where its answer goes.
pub struct SignJob {
    message: Vec<u8>,
    answer: std_mpsc::SyncSender<Result<[u8; 64], String>>,
}

/// A [`Signer`] whose key is in the MCU's secure element.
pub struct SecureElementSigner {
    public: PublicKey,
    jobs: mpsc::Sender<SignJob>,
}

/// The other end of a [`SecureElementSigner`]: the signing requests, served by the task
/// that owns the MCU link.
pub struct SignService {
    slot: u8,
    jobs: mpsc::Receiver<SignJob>,
}

/// A signer for the pinned key, and the service that signs its messages with the key in
/// `slot`.
pub fn channel(public: PublicKey, slot: u8) -> (SecureElementSigner, SignService) {
    let (jobs, rx) = mpsc::channel(QUEUE);
    (
        SecureElementSigner { public, jobs },
        SignService { slot, jobs: rx },
    )
}

impl SignService {
    /// The next signing request: `None` once no signer is left. Without a service (a
    /// device whose key is a file) it never completes.
    pub async fn next(service: &mut Option<Self>) -> Option<SignJob> {
        match service {
            Some(s) => s.jobs.recv().await,
            None => std::future::pending().await,
        }
    }

    /// Signs one request over the link and answers it.
    pub async fn serve(service: &Option<Self>, bridge: &Bridge, job: SignJob) {
        let Some(s) = service else { return };
        let result = bridge
            .sign(s.slot, &job.message)
            .await
            .map_err(|e| e.to_string());
        // The signer may have given up waiting: nothing to answer then.
        let _ = job.answer.try_send(result);
    }
}

impl Signer for SecureElementSigner {
    fn public_key(&self) -> PublicKey {
        self.public
    }

    /// Sends the message to the link task and waits (blocking, never inside the async
    /// runtime's own work) for the element's signature, which must verify under the
    /// pinned key.
    fn sign(&self, msg: &[u8]) -> Result<Signature, SignError> {
        let (answer, answered) = std_mpsc::sync_channel(1);
        let job = SignJob {
            message: msg.to_vec(),
            answer,
        };
        self.jobs.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                SignError("the secure element is busy (signing requests queued)".into())
            }
            mpsc::error::TrySendError::Closed(_) => SignError("the MCU link is gone".into()),
        })?;
        let sig = match answered.recv_timeout(ANSWER_WITHIN) {
            Ok(Ok(sig)) => Signature(sig),
            Ok(Err(why)) => return Err(SignError(format!("the secure element: {why}"))),
            Err(std_mpsc::RecvTimeoutError::Timeout) => {
                return Err(SignError(format!(
                    "the secure element did not answer within {ANSWER_WITHIN:?}"
                )));
            }
            Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                return Err(SignError("the MCU link went away while signing".into()));
            }
        };
        self.public.verify(msg, &sig).map_err(|_| {
            SignError(
                "the secure element signed with a key other than the one enrolled (MCU replaced?)"
                    .into(),
            )
        })?;
        Ok(sig)
    }
}

/// The pinned public key's path.
pub fn pinned_key_path(state_dir: &Path) -> PathBuf {
    state_dir.join(PINNED_KEY_FILE)
}

/// The public key pinned at enrolment.
///
/// # Errors
/// No key pinned yet (enrol first), or the file is not an Ed25519 public key.
pub fn pinned_key(state_dir: &Path) -> anyhow::Result<PublicKey> {
    let path = pinned_key_path(state_dir);
    let pem = match std::fs::read_to_string(&path) {
        Ok(pem) => pem,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "no secure-element key enrolled ({} is missing): run `custody-agent enroll` first",
            path.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    PublicKey::from_pem(&pem).with_context(|| format!("{}", path.display()))
}

/// Reads the element's public key over the link and pins it; a key pinned already must
/// be the same one. Returns the key and whether it was pinned just now.
///
/// # Errors
/// The link or the element fails, or the element holds another key than the pinned one.
pub fn enroll(cfg: &AgentConfig, slot: u8) -> anyhow::Result<(PublicKey, bool)> {
    let public = with_link(cfg, |bridge| async move {
        match bridge.request(McuMessage::GetPublicKey { slot }).await? {
            McuMessage::PublicKey { key } => Ok(PublicKey(key)),
            other => anyhow::bail!("GetPublicKey answered with {other:?}"),
        }
    })?;
    custody::layout::create_dir_durable(&cfg.state_dir)?;
    let path = pinned_key_path(&cfg.state_dir);
    if !path.exists() {
        custody::layout::write_atomic(&path, public.to_pem().as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        return Ok((public, true));
    }
    // A pinned key that cannot be read is an error, never replaced.
    let pinned = pinned_key(&cfg.state_dir)?;
    anyhow::ensure!(
        pinned == public,
        "the secure element holds key {} but key {} is enrolled for this device (MCU replaced?); IT must re-enrol the device",
        public.key_id(),
        pinned.key_id()
    );
    Ok((public, false))
}

/// Opens the MCU link on a thread of its own and returns a signer served over it, for a
/// command that runs once (`run --once`, `bind`, `annotate`, `upload`). The link closes
/// when the signer is dropped.
///
/// # Errors
/// No key pinned, or the link cannot be opened (the port is held by a running agent, the
/// MCU does not answer or reports another serial).
pub fn connect(cfg: &AgentConfig, slot: u8) -> anyhow::Result<SecureElementSigner> {
    let public = pinned_key(&cfg.state_dir)?;
    let (signer, service) = channel(public, slot);
    let mut service = Some(service);
    let (ready, is_ready) = std_mpsc::sync_channel::<anyhow::Result<()>>(1);
    let cfg = cfg.clone();
    std::thread::Builder::new()
        .name("secure-element".into())
        .spawn(move || {
            let up = ready.clone();
            let served = with_link(&cfg, |bridge| async move {
                let _ = up.send(Ok(()));
                // Until every signer is dropped: the command is done then.
                while let Some(job) = SignService::next(&mut service).await {
                    SignService::serve(&service, &bridge, job).await;
                }
                Ok(())
            });
            // Before the link was up the error reaches the caller; after, it is logged.
            if let Err(e) = served
                && let Err(
                    std_mpsc::TrySendError::Full(Err(e))
                    | std_mpsc::TrySendError::Disconnected(Err(e)),
                ) = ready.try_send(Err(e))
            {
                tracing::warn!(error = %format!("{e:#}"), "secure-element link ended");
            }
        })?;
    match is_ready.recv() {
        Ok(Ok(())) => Ok(signer),
        Ok(Err(e)) => Err(e),
        Err(_) => anyhow::bail!("the secure-element link thread ended"),
    }
}

/// Connects to the MCU of `cfg` (checking it is this device), runs `work` with the link on
/// a runtime of this thread, and closes the link.
fn with_link<T, F>(cfg: &AgentConfig, work: impl FnOnce(Bridge) -> F) -> anyhow::Result<T>
where
    F: Future<Output = anyhow::Result<T>>,
{
    let port = cfg
        .bridge_port
        .clone()
        .context("the secure element is reached through [bridge] port, which is not set")?;
    let link = firmware_bridge::transport::link_config(&port, &cfg.profile)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (bridge, identity) = Bridge::connect(LinkConfig {
            path: link.path,
            serial: link.serial,
        })
        .await
        .with_context(|| format!("MCU link on {}", port.display()))?;
        if let McuMessage::Identity { serial, .. } = &identity
            && *serial != cfg.serial
        {
            anyhow::bail!(
                "the MCU on {} is device {serial}, not {}",
                port.display(),
                cfg.serial
            );
        }
        work(bridge).await
    })
}
