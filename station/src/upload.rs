//! The HTTPS upload endpoint for terminals with a network (protocol: [`custody::upload`],
//! docs/upload.md). A device's uploads land in `data/uploads/<serial>/`, laid out as its
//! storage; `POST dock` runs the same dock session as a docked device on that folder, and
//! answers with the receipt. Bodies are streamed to disk (memory does not grow with file
//! size); every chunk is on disk (fsync) before the station answers, so an interrupted
//! upload continues from what the station holds.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use custody::upload::{self, LENGTH_HEADER, MAX_CLOCK_SKEW_MS, MAX_FILE_BYTES, OFFSET_HEADER};
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::{DockOptions, Station};

/// Folder under the data folder holding uploads, one sub-folder per device.
pub const UPLOADS_DIR: &str = "uploads";
/// Partial files, under each device's upload folder.
const PARTIAL_DIR: &str = ".partial";

type Reply = Response<Full<Bytes>>;

/// Partial files being written: a second PATCH of the same file while one is in progress
/// (a client retrying after a timeout) is answered 409, never interleaved.
static WRITING: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Holds a partial file's place in [`WRITING`] until dropped.
struct Writing(PathBuf);

impl Writing {
    fn claim(partial: &Path) -> Option<Self> {
        let mut busy = WRITING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if busy.iter().any(|p| p == partial) {
            return None;
        }
        busy.push(partial.to_path_buf());
        Some(Self(partial.to_path_buf()))
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        let mut busy = WRITING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        busy.retain(|p| p != &self.0);
    }
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

/// Serves uploads on `listen` until the task is dropped.
///
/// # Errors
/// The address cannot be bound.
pub async fn serve(
    station: Arc<Station>,
    listen: SocketAddr,
    tls: Arc<rustls::ServerConfig>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the upload endpoint to {listen}"))?;
    tracing::info!(%listen, "upload endpoint listening");
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = listener.accept().await?;
        let (acceptor, station) = (acceptor.clone(), Arc::clone(&station));
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(tls) => tls,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |req| {
                let station = Arc::clone(&station);
                async move { Ok::<_, std::convert::Infallible>(handle(&station, req).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "upload connection ended");
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

async fn handle(station: &Arc<Station>, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().to_owned();
    let Some(rest) = path.strip_prefix("/v1/devices/") else {
        return reply(StatusCode::NOT_FOUND, "unknown endpoint");
    };
    let Some((serial, what)) = rest.split_once('/') else {
        return reply(StatusCode::NOT_FOUND, "unknown endpoint");
    };
    let serial = serial.to_owned();
    if let Err(why) = authenticate(station, &req, &serial, &path) {
        tracing::warn!(serial, %why, "upload refused");
        return reply(StatusCode::UNAUTHORIZED, why);
    }
    let root = station.config().data_dir.join(UPLOADS_DIR).join(&serial);
    match (req.method().clone(), what) {
        (Method::POST, "dock") => dock(station, &root).await,
        (method, file) => {
            let Some(rel) = file.strip_prefix("files/") else {
                return reply(StatusCode::NOT_FOUND, "unknown endpoint");
            };
            if let Err(why) = upload::check_path(rel) {
                return reply(StatusCode::BAD_REQUEST, why);
            }
            let (done, partial) = (
                root.join(rel),
                root.join(PARTIAL_DIR).join(hex::encode(rel)),
            );
            match method {
                Method::HEAD => head(&done, &partial),
                Method::PATCH => patch(req, &done, &partial).await,
                _ => reply(StatusCode::METHOD_NOT_ALLOWED, "HEAD or PATCH"),
            }
        }
    }
}

/// Checks the request's signature by the enrolled key of `serial` and its time.
fn authenticate(
    station: &Station,
    req: &Request<Incoming>,
    serial: &str,
    path: &str,
) -> Result<(), String> {
    let header = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or("no Authorization header")?;
    let (claimed, time_ms, sig) =
        upload::parse_auth_header(header).ok_or("malformed Authorization header")?;
    if claimed != serial {
        return Err(format!("signed for {claimed}, not {serial}"));
    }
    let now = chrono::Utc::now().timestamp_millis();
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
            &upload::auth_message(req.method().as_str(), path, time_ms),
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

async fn patch(req: Request<Incoming>, done: &Path, partial: &Path) -> Reply {
    let (Some(offset), Some(length)) = (
        header_u64(&req, OFFSET_HEADER),
        header_u64(&req, LENGTH_HEADER),
    ) else {
        return reply(
            StatusCode::BAD_REQUEST,
            "Upload-Offset and Upload-Length needed",
        );
    };
    if length > MAX_FILE_BYTES || offset > length {
        return reply(StatusCode::BAD_REQUEST, "offset or length out of range");
    }
    if let Ok(m) = fs::metadata(done) {
        // Complete already: the same file again is a no-op, another one is refused.
        return if m.len() == length {
            with_offset(StatusCode::OK, m.len())
        } else {
            reply(
                StatusCode::CONFLICT,
                "a different file is complete under this name",
            )
        };
    }
    let Some(_writing) = Writing::claim(partial) else {
        let held = fs::metadata(partial).map_or(0, |m| m.len());
        return with_offset(StatusCode::CONFLICT, held);
    };
    let held = fs::metadata(partial).map_or(0, |m| m.len());
    if held != offset {
        return with_offset(StatusCode::CONFLICT, held);
    }
    match append(req.into_body(), partial, offset, length).await {
        Ok(now) if now == length => match finish(partial, done) {
            Ok(()) => with_offset(StatusCode::OK, now),
            Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
        },
        Ok(now) => with_offset(StatusCode::OK, now),
        Err(e) => reply(StatusCode::BAD_REQUEST, format!("{e:#}")),
    }
}

/// Appends the body to the partial file, never past `length`; what arrived is on disk
/// before the answer, even when the body breaks off.
async fn append(
    mut body: Incoming,
    partial: &Path,
    offset: u64,
    length: u64,
) -> anyhow::Result<u64> {
    if let Some(dir) = partial.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut file = OpenOptions::new().create(true).append(true).open(partial)?;
    let mut at = offset;
    let result = loop {
        match body.frame().await {
            None => break Ok(()),
            Some(Err(e)) => break Err(anyhow::Error::from(e).context("the upload broke off")),
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if at + data.len() as u64 > length {
                    break Err(anyhow::anyhow!("more bytes than Upload-Length"));
                }
                file.write_all(&data)?;
                at += data.len() as u64;
            }
        }
    };
    file.sync_data()?;
    result.map(|()| at)
}

/// Moves a complete file to its place (no clobbering), durably.
fn finish(partial: &Path, done: &Path) -> anyhow::Result<()> {
    let dir = done.parent().context("upload path has no folder")?;
    fs::create_dir_all(dir)?;
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
