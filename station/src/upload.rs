//! The HTTPS upload endpoint for terminals with a network (protocol: [`custody::upload`],
//! docs/upload.md). A device's uploads land in `data/uploads/<serial>/`, laid out as its
//! storage; `POST dock` runs the same dock session as a docked device on that folder, and
//! answers with the receipt. Bodies are streamed to disk (memory does not grow with file
//! size); every chunk is on disk (fsync) before the station answers, so an interrupted
//! upload continues from what the station holds.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use custody::upload::{self, LENGTH_HEADER, MAX_CLOCK_SKEW_MS, MAX_FILE_BYTES, OFFSET_HEADER};
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::Semaphore;

use crate::{DockOptions, Station, UploadLimits};

/// Folder under the data folder holding uploads, one sub-folder per device.
pub const UPLOADS_DIR: &str = "uploads";
/// Partial files, under each device's upload folder.
const PARTIAL_DIR: &str = ".partial";

type Reply = Response<Full<Bytes>>;

/// First wait after a failed accept (e.g. out of file descriptors), doubled up to
/// [`ACCEPT_BACKOFF_MAX`] while accepting keeps failing.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between two failed accepts.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Most bytes of a refused PATCH read and dropped before the answer: two of the agent's
/// 8 MiB chunks. A longer body is cut off (the connection closes).
const MAX_REFUSED_BODY: u64 = 16 << 20;
/// Body frames queued between the connection and the file writer: bounded memory per
/// upload (hyper frames are at most a few tens of KiB).
const FRAMES_IN_FLIGHT: usize = 4;

/// What the endpoint's connections share: the station, and the partial files being
/// written.
struct Endpoint {
    station: Arc<Station>,
    // std Mutex: held only to look up or change the set, never across I/O or `.await`.
    writing: Mutex<HashSet<PathBuf>>,
    /// How long a request body may send nothing before the upload is given up.
    idle: Duration,
}

/// Holds a partial file's place in [`Endpoint::writing`] until dropped: a second PATCH of
/// the same file while one is in progress (a client retrying after a timeout) is
/// answered 409, never interleaved.
struct Writing {
    endpoint: Arc<Endpoint>,
    partial: PathBuf,
}

impl Writing {
    fn claim(endpoint: &Arc<Endpoint>, partial: &Path) -> Option<Self> {
        let mut busy = endpoint
            .writing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        busy.insert(partial.to_path_buf()).then(|| Self {
            endpoint: Arc::clone(endpoint),
            partial: partial.to_path_buf(),
        })
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        self.endpoint
            .writing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.partial);
    }
}

/// Runs blocking work (SQL, file system, fsync) off the runtime's threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .context("a blocking task of the upload endpoint failed")
}

/// The TLS server configuration from a certificate chain and key (PEM files), on ring.
///
/// # Errors
/// Unreadable or invalid PEM, or a key that does not fit the certificate.
pub fn tls_config(cert: &Path, key: &Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let certs = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("certificates in {}", cert.display()))?;
    let key =
        PrivateKeyDer::from_pem_file(key).with_context(|| format!("key {}", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}

/// Serves uploads on `listen` until the task is dropped, within `limits`: so many
/// connections at once, each TLS handshake in time, and a client that stalls (no request
/// header, or no body bytes, for the idle time) dropped, so that neither a flood nor slow
/// clients hold the places a terminal needs. A failing accept is logged and retried after
/// a growing pause, never the end of the endpoint.
///
/// # Errors
/// The address cannot be bound.
pub async fn serve(
    station: Arc<Station>,
    listen: SocketAddr,
    tls: Arc<rustls::ServerConfig>,
    limits: UploadLimits,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the upload endpoint to {listen}"))?;
    tracing::info!(%listen, "upload endpoint listening");
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let endpoint = Arc::new(Endpoint {
        station,
        writing: Mutex::new(HashSet::new()),
        idle: limits.idle,
    });
    let places = Arc::new(Semaphore::new(limits.connections));
    let mut backoff = ACCEPT_BACKOFF;
    loop {
        let place = Arc::clone(&places).acquire_owned().await?;
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => {
                backoff = ACCEPT_BACKOFF;
                accepted
            }
            Err(e) => {
                tracing::warn!(error = %e, pause = ?backoff, "cannot accept an upload connection; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        let (acceptor, endpoint) = (acceptor.clone(), Arc::clone(&endpoint));
        tokio::spawn(async move {
            let _place = place; // freed when this connection ends
            let tls = match tokio::time::timeout(limits.handshake, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::info!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::info!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |req| {
                let endpoint = Arc::clone(&endpoint);
                async move { Ok::<_, std::convert::Infallible>(handle(&endpoint, req).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.idle)
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await
            {
                tracing::info!(%peer, error = %e, "upload connection ended");
            }
        });
    }
}

fn reply(status: StatusCode, text: impl Into<String>) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(text.into())));
    *r.status_mut() = status;
    r
}

fn with_offset(status: StatusCode, offset: u64) -> Reply {
    let mut r = reply(status, "");
    if let Ok(v) = offset.to_string().parse() {
        r.headers_mut().insert(OFFSET_HEADER, v);
    }
    r
}

async fn handle(endpoint: &Arc<Endpoint>, req: Request<Incoming>) -> Reply {
    match route(endpoint, req).await {
        Ok(reply) => reply,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "upload request failed");
            reply(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"))
        }
    }
}

async fn route(endpoint: &Arc<Endpoint>, req: Request<Incoming>) -> anyhow::Result<Reply> {
    let station = &endpoint.station;
    let path = req.uri().path().to_owned();
    let Some(rest) = path.strip_prefix("/v1/devices/") else {
        return Ok(reply(StatusCode::NOT_FOUND, "unknown endpoint"));
    };
    let Some((serial, what)) = rest.split_once('/') else {
        return Ok(reply(StatusCode::NOT_FOUND, "unknown endpoint"));
    };
    let (serial, what) = (serial.to_owned(), what.to_owned());
    let auth = Authorization::of(&req, path.clone());
    let checked = {
        let (station, serial) = (Arc::clone(station), serial.clone());
        blocking(move || authenticate(&station, auth, &serial)).await?
    };
    if let Err(why) = checked {
        tracing::warn!(serial, %why, "upload refused");
        return Ok(reply(StatusCode::UNAUTHORIZED, why));
    }
    let root = station.config().data_dir.join(UPLOADS_DIR).join(&serial);
    Ok(match (req.method().clone(), what.as_str()) {
        (Method::POST, "dock") => dock(station, &root).await,
        (method, file) => {
            let Some(rel) = file.strip_prefix("files/") else {
                return Ok(reply(StatusCode::NOT_FOUND, "unknown endpoint"));
            };
            if let Err(why) = upload::check_path(rel) {
                return Ok(reply(StatusCode::BAD_REQUEST, why));
            }
            let (done, partial) = (
                root.join(rel),
                root.join(PARTIAL_DIR).join(hex::encode(rel)),
            );
            match method {
                Method::HEAD => blocking(move || head(&done, &partial)).await?,
                Method::PATCH => patch(endpoint, req, done, partial).await?,
                _ => reply(StatusCode::METHOD_NOT_ALLOWED, "HEAD or PATCH"),
            }
        }
    })
}

/// What a request offers to prove who sent it, taken from it before the blocking check.
struct Authorization {
    header: Option<String>,
    method: String,
    path: String,
}

impl Authorization {
    fn of(req: &Request<Incoming>, path: String) -> Self {
        Self {
            header: req
                .headers()
                .get(hyper::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            method: req.method().as_str().to_owned(),
            path,
        }
    }
}

/// Checks the request's signature by the enrolled key of `serial` and its time (SQL:
/// blocking).
fn authenticate(station: &Station, auth: Authorization, serial: &str) -> Result<(), String> {
    let header = auth.header.ok_or("no Authorization header")?;
    let (claimed, time_ms, sig) =
        upload::parse_auth_header(&header).ok_or("malformed Authorization header")?;
    if claimed != serial {
        return Err(format!("signed for {claimed}, not {serial}"));
    }
    let now = station.now().timestamp_millis();
    if (now - time_ms).abs() > MAX_CLOCK_SKEW_MS {
        return Err(format!(
            "request time is {} s away from the station's clock",
            (now - time_ms) / 1000
        ));
    }
    let device = station
        .ledger()
        .device(serial)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{serial} is not enrolled"))?;
    device
        .key
        .verify(
            &upload::auth_message(&auth.method, &auth.path, time_ms),
            &sig,
        )
        .map_err(|_| "signature does not verify with the enrolled key".to_owned())
}

fn head(done: &Path, partial: &Path) -> Reply {
    match fs::metadata(done).or_else(|_| fs::metadata(partial)) {
        Ok(m) => with_offset(StatusCode::OK, m.len()),
        Err(_) => reply(StatusCode::NOT_FOUND, ""),
    }
}

fn header_u64(req: &Request<Incoming>, name: &str) -> Option<u64> {
    req.headers().get(name)?.to_str().ok()?.parse().ok()
}

async fn patch(
    endpoint: &Arc<Endpoint>,
    req: Request<Incoming>,
    done: PathBuf,
    partial: PathBuf,
) -> anyhow::Result<Reply> {
    let (offset, length) = (
        header_u64(&req, OFFSET_HEADER),
        header_u64(&req, LENGTH_HEADER),
    );
    let body = req.into_body();
    let (Some(offset), Some(length)) = (offset, length) else {
        let answer = reply(
            StatusCode::BAD_REQUEST,
            "Upload-Offset and Upload-Length needed",
        );
        return Ok(refuse(body, endpoint.idle, answer).await);
    };
    if length > MAX_FILE_BYTES || offset > length {
        let answer = reply(StatusCode::BAD_REQUEST, "offset or length out of range");
        return Ok(refuse(body, endpoint.idle, answer).await);
    }
    let complete = {
        let done = done.clone();
        blocking(move || fs::metadata(done).ok().map(|m| m.len())).await?
    };
    if let Some(len) = complete {
        // Complete already: the same file again is a no-op, another one is refused.
        let answer = if len == length {
            with_offset(StatusCode::OK, len)
        } else {
            reply(
                StatusCode::CONFLICT,
                "a different file is complete under this name",
            )
        };
        return Ok(refuse(body, endpoint.idle, answer).await);
    }
    let claimed = Writing::claim(endpoint, &partial);
    let held = {
        let partial = partial.clone();
        blocking(move || fs::metadata(partial).map_or(0, |m| m.len())).await?
    };
    // Another request still writes this file (a client retrying while the station has
    // not yet seen its last connection break), or the client is not where the station
    // is: it goes on from what the station holds.
    let (Some(_writing), true) = (claimed, held == offset) else {
        return Ok(refuse(body, endpoint.idle, with_offset(StatusCode::CONFLICT, held)).await);
    };
    Ok(
        match append(body, partial.clone(), (offset, length), endpoint.idle).await {
            Ok(now) if now == length => match blocking(move || finish(&partial, &done)).await? {
                Ok(()) => with_offset(StatusCode::OK, now),
                Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
            },
            Ok(now) => with_offset(StatusCode::OK, now),
            Err(e) => reply(StatusCode::BAD_REQUEST, format!("{e:#}")),
        },
    )
}

/// Answers a PATCH whose body will not be written with `answer`, after reading the body
/// (up to [`MAX_REFUSED_BODY`]) and dropping it. Answering before the body is read makes
/// the connection close under a client still sending, and the client then sees a broken
/// connection instead of the offset to go on from.
async fn refuse(mut body: Incoming, idle: Duration, answer: Reply) -> Reply {
    let mut dropped = 0u64;
    while let Ok(Some(Ok(frame))) = tokio::time::timeout(idle, body.frame()).await {
        if let Ok(data) = frame.into_data() {
            dropped += data.len() as u64;
            if dropped > MAX_REFUSED_BODY {
                break;
            }
        }
    }
    answer
}

/// Appends the body to the partial file, never past `length`; what arrived is on disk
/// before the answer, even when the body breaks off. The connection reads frames, one
/// blocking writer owns the file and its fsync, and a bounded channel sits between.
async fn append(
    mut body: Incoming,
    partial: PathBuf,
    (offset, length): (u64, u64),
    idle: Duration,
) -> anyhow::Result<u64> {
    let (frames, mut to_write) = tokio::sync::mpsc::channel::<Bytes>(FRAMES_IN_FLIGHT);
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
        if let Some(dir) = partial.parent() {
            custody::layout::create_dir_durable(dir)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&partial)?;
        let mut written = 0u64;
        let mut result = Ok(());
        while let Some(data) = to_write.blocking_recv() {
            if let Err(e) = file.write_all(&data) {
                result = Err(e);
                break;
            }
            written += data.len() as u64;
        }
        file.sync_data()?;
        result.map(|()| written)
    });
    let mut at = offset;
    let read = loop {
        let Ok(frame) = tokio::time::timeout(idle, body.frame()).await else {
            break Err(anyhow::anyhow!("the upload stalled: no bytes for {idle:?}"));
        };
        match frame {
            None => break Ok(()),
            Some(Err(e)) => break Err(anyhow::Error::from(e).context("the upload broke off")),
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if at + data.len() as u64 > length {
                    break Err(anyhow::anyhow!("more bytes than Upload-Length"));
                }
                at += data.len() as u64;
                if frames.send(data).await.is_err() {
                    // The writer stopped: its error is the one to tell.
                    break Ok(());
                }
            }
        }
    };
    drop(frames);
    let written = writer
        .await
        .context("the upload writer failed")?
        .context("writing the upload to disk")?;
    read.map(|()| offset + written)
}

/// Moves a complete file to its place (no clobbering), durably.
fn finish(partial: &Path, done: &Path) -> anyhow::Result<()> {
    let dir = done.parent().context("upload path has no folder")?;
    custody::layout::create_dir_durable(dir)?;
    fs::hard_link(partial, done).with_context(|| format!("placing {}", done.display()))?;
    fs::remove_file(partial)?;
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Runs the dock session on the device's upload folder and answers with the receipt.
async fn dock(station: &Arc<Station>, root: &Path) -> Reply {
    let (station, root): (Arc<Station>, PathBuf) = (Arc::clone(station), root.to_path_buf());
    let ran = tokio::task::spawn_blocking(move || {
        let outcome = station.ingest_slot(&root, &DockOptions::default())?;
        crate::write_session_report(&station, &outcome);
        if let Some(serial) = &outcome.serial {
            clear_stored(&station, &root, serial);
        }
        let receipt = match &outcome.receipt {
            Some(rel) => {
                let json = fs::read(root.join(rel))?;
                let sig = fs::read(root.join(rel).with_extension("sig"))?;
                Some((rel.clone(), B64.encode(json), B64.encode(sig)))
            }
            None => None,
        };
        anyhow::Ok((outcome, receipt))
    })
    .await;
    match ran {
        Ok(Ok((outcome, receipt))) => {
            let body = serde_json::json!({
                "session": outcome,
                "receipt": receipt.map(|(file, json, sig)| serde_json::json!({
                    "file": file, "json": json, "sig": sig
                })),
            });
            reply(StatusCode::OK, body.to_string())
        }
        Ok(Err(e)) => reply(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}")),
        Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Removes uploaded clips the store now holds: the store has the evidence, and the device
/// keeps its copy until it has verified the receipt. Records and keys stay (they are small
/// and the next dock reads the chain).
fn clear_stored(station: &Station, root: &Path, serial: &str) {
    let stored = match station.ledger().stored_clip_files(serial) {
        Ok(stored) => stored,
        Err(e) => {
            tracing::warn!(serial, error = %e, "cannot list stored clips; uploads kept");
            return;
        }
    };
    for (file, size) in stored {
        let path = root.join(&file);
        if upload::check_path(&file).is_ok()
            && fs::symlink_metadata(&path).is_ok_and(|m| m.is_file() && m.len() == size)
            && let Err(e) = fs::remove_file(&path)
        {
            tracing::warn!(serial, file, error = %e, "cannot clear an uploaded clip");
        }
    }
}
