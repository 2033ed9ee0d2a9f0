//! Upload to the station over HTTPS, for terminals with a network (protocol:
//! [`custody::upload`], docs/upload.md): the device's outbox (public key, records,
//! signatures) and its media, each file resumed from what the station already holds,
//! then `dock`; the receipt that comes back goes into the inbox and is checked like one
//! a dock left, before any space is freed.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use custody::upload::{self, LENGTH_HEADER, OFFSET_HEADER};
use custody::{Signer, layout};
use reqwest::StatusCode;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

/// Bytes sent per request: each chunk is on the station's disk before the next is sent,
/// so an interrupted upload loses at most one chunk of work.
pub const CHUNK: usize = 8 << 20;

/// The device being uploaded: its serial and its storage root.
#[derive(Debug, Clone, Copy)]
pub struct Device<'a> {
    /// Product serial.
    pub serial: &'a str,
    /// The storage root (as the station sees it when docked).
    pub storage: &'a Path,
}

/// Where uploads go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSettings {
    /// The station's base URL (`https://…`).
    pub url: String,
    /// The CA certificate (PEM) the station's TLS certificate must chain to.
    pub ca: PathBuf,
    /// `run` uploads on its own when sealed clips wait (else only `custody-agent upload`).
    pub auto: bool,
    /// `run` tries again this long after a failed upload, or after one whose receipt left
    /// clips unfreed.
    pub retry: Duration,
}

/// What one upload did.
#[derive(Debug, Default)]
pub struct UploadReport {
    /// Files the station holds completely now.
    pub files: usize,
    /// Bytes sent this time.
    pub bytes_sent: u64,
    /// Bytes the station already held (earlier, interrupted uploads).
    pub bytes_resumed: u64,
    /// The receipt written to the inbox, relative to the storage root.
    pub receipt: Option<String>,
    /// Files the protocol cannot carry (names outside `[A-Za-z0-9._-]`, hidden files).
    pub skipped: Vec<String>,
}

/// Uploads the device's records and its sealed media (`sealed`: path → size sealed; a
/// clip still recording, or replaced since, stays until it is sealed) and asks the
/// station to ingest them; the receipt lands in the inbox (the caller then processes it).
///
/// # Errors
/// The station cannot be reached or refuses (the message says why); what was sent stays
/// on the station and the next upload continues from there.
pub async fn upload<S: std::hash::BuildHasher>(
    device: Device<'_>,
    settings: &UploadSettings,
    key: &Arc<dyn Signer>,
    sealed: &HashMap<String, u64, S>,
) -> anyhow::Result<UploadReport> {
    let client = client(&settings.ca)?;
    let base = settings.url.trim_end_matches('/');
    let mut report = UploadReport::default();
    for rel in files(device, sealed)? {
        if let Err(why) = upload::check_path(&rel) {
            // The station would refuse it: say so, and send the rest.
            tracing::warn!(file = %rel, %why, "not uploadable; it stays on the device");
            report.skipped.push(rel);
            continue;
        }
        send_file(&client, base, device, key, &rel, &mut report)
            .await
            .with_context(|| format!("uploading {rel}"))?;
        report.files += 1;
    }
    let path = format!("/v1/devices/{}/dock", device.serial);
    let resp = signed(
        &client,
        reqwest::Method::POST,
        base,
        &path,
        device.serial,
        key,
    )
    .await?
    .send()
    .await?;
    let status = resp.status();
    let body: serde_json::Value = if status == StatusCode::OK {
        serde_json::from_slice(&resp.bytes().await?)?
    } else {
        bail!(
            "the station refused the dock: {status} {}",
            resp.text().await?
        );
    };
    if let Some(r) = body.get("receipt").filter(|r| !r.is_null()) {
        let file = r["file"].as_str().context("receipt without a file name")?;
        let name = Path::new(file)
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| {
                n.strip_prefix("receipt-")
                    .and_then(|r| r.strip_suffix(".json"))
                    .is_some_and(|d| d.len() == 16 && d.bytes().all(|b| b.is_ascii_digit()))
            })
            .context("receipt with an unexpected file name")?;
        let inbox = layout::inbox_dir(device.storage, device.serial);
        custody::layout::create_dir_durable(&inbox)?;
        let json = B64.decode(r["json"].as_str().unwrap_or_default())?;
        let sig = B64.decode(r["sig"].as_str().unwrap_or_default())?;
        layout::write_atomic(&inbox.join(name).with_extension("sig"), &sig)?;
        layout::write_atomic(&inbox.join(name), &json)?;
        report.receipt = Some(format!(
            "{}/{name}",
            inbox
                .strip_prefix(device.storage)
                .unwrap_or(&inbox)
                .display()
        ));
    }
    Ok(report)
}

/// An HTTPS client that trusts only the agency CA in `ca` (PEM), on ring.
///
/// # Errors
/// An unreadable or invalid CA file.
pub fn client(ca: &Path) -> anyhow::Result<reqwest::Client> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        CertificateDer::pem_file_iter(ca).with_context(|| format!("reading {}", ca.display()))?
    {
        roots.add(cert.with_context(|| format!("certificate in {}", ca.display()))?)?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .build()?)
}

/// A request with the device's signature over method, path and time. Signing may wait
/// for a secure element: it runs off the async runtime's threads.
async fn signed(
    client: &reqwest::Client,
    method: reqwest::Method,
    base: &str,
    path: &str,
    serial: &str,
    key: &Arc<dyn Signer>,
) -> anyhow::Result<reqwest::RequestBuilder> {
    let time_ms = chrono::Utc::now().timestamp_millis();
    let message = upload::auth_message(method.as_str(), path, time_ms);
    let key = Arc::clone(key);
    let sig = tokio::task::spawn_blocking(move || key.sign(&message))
        .await?
        .context("signing the upload request")?;
    Ok(client.request(method, format!("{base}{path}")).header(
        reqwest::header::AUTHORIZATION,
        upload::auth_header(serial, time_ms, &sig),
    ))
}

/// What a dock would read: the outbox (key, records, signatures) and every media file.
fn files<S: std::hash::BuildHasher>(
    device: Device<'_>,
    sealed: &HashMap<String, u64, S>,
) -> anyhow::Result<Vec<String>> {
    let root = device.storage;
    let device = layout::device_dir(root, device.serial);
    let rel = |p: &Path| {
        p.strip_prefix(root)
            .map(|r| r.to_string_lossy().into_owned())
    };
    let mut out = vec![rel(&device.join(layout::PUBLIC_KEY_FILE))?];
    let mut records: Vec<PathBuf> = std::fs::read_dir(device.join(layout::RECORDS_DIR))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    records.sort();
    // Signatures first: a record never arrives without its signature.
    records.sort_by_key(|p| p.extension().is_none_or(|x| x != "sig"));
    for path in records {
        // Only records and signatures: not an interrupted atomic write's temp file.
        if path.extension().is_some_and(|x| x == "json" || x == "sig") {
            out.push(rel(&path)?);
        }
    }
    for (file, regular) in custody::media_entries(root)? {
        let size = std::fs::metadata(root.join(&file)).map(|m| m.len());
        if regular && size.is_ok_and(|size| sealed.get(&file) == Some(&size)) {
            out.push(file);
        }
    }
    Ok(out)
}

async fn send_file(
    client: &reqwest::Client,
    base: &str,
    device: Device<'_>,
    key: &Arc<dyn Signer>,
    rel: &str,
    report: &mut UploadReport,
) -> anyhow::Result<()> {
    let path = format!("/v1/devices/{}/files/{rel}", device.serial);
    let mut file = File::open(device.storage.join(rel))?;
    let length = file.metadata()?.len();
    let resp = signed(
        client,
        reqwest::Method::HEAD,
        base,
        &path,
        device.serial,
        key,
    )
    .await?
    .send()
    .await?;
    let mut offset = match resp.status() {
        StatusCode::OK => offset_of(&resp).context("HEAD without Upload-Offset")?,
        StatusCode::NOT_FOUND => 0,
        other => bail!("the station refused: {other}"),
    };
    report.bytes_resumed += offset;
    while offset < length {
        // Each chunk is handed to the request as it is (no copy), then dropped.
        let left = usize::try_from(length - offset).unwrap_or(CHUNK);
        let mut chunk = Vec::with_capacity(CHUNK.min(left));
        file.seek(SeekFrom::Start(offset))?;
        (&mut file).take(CHUNK as u64).read_to_end(&mut chunk)?;
        if chunk.is_empty() {
            bail!("{rel} shrank while being uploaded");
        }
        let sent = chunk.len() as u64;
        let resp = signed(
            client,
            reqwest::Method::PATCH,
            base,
            &path,
            device.serial,
            key,
        )
        .await?
        .header(OFFSET_HEADER, offset)
        .header(LENGTH_HEADER, length)
        .body(chunk)
        .send()
        .await?;
        match resp.status() {
            StatusCode::OK => {
                report.bytes_sent += sent;
                offset = offset_of(&resp).context("PATCH without Upload-Offset")?;
            }
            // The station holds another amount (an earlier chunk did arrive): go on from there.
            StatusCode::CONFLICT => {
                offset = offset_of(&resp).context("the station holds a different file")?;
            }
            other => bail!("the station refused: {other} {}", resp.text().await?),
        }
    }
    Ok(())
}

fn offset_of(resp: &reqwest::Response) -> Option<u64> {
    resp.headers()
        .get(OFFSET_HEADER)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}
