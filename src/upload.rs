//! The HTTPS upload protocol shared by the agent (client) and the station (server), for
//! terminals that reach the station over a network instead of docking. The full
//! description is docs/upload.md. In short, under `/v1/devices/<serial>/`:
//!
//! - `HEAD files/<path>`: `Upload-Offset` says how many bytes of the file the station
//!   holds (404: none).
//! - `PATCH files/<path>` with `Upload-Offset` (must equal what the station holds) and
//!   `Upload-Length` (the whole file): appends the body; the file is complete when it
//!   reaches its length. An interrupted upload continues where it stopped.
//! - `POST dock`: the station ingests what was uploaded through the docking pipeline and
//!   answers with the receipt.
//!
//! Every request is signed by the device key IT enrolled: `Authorization: Custody
//! serial=<serial>, time=<unix ms>, sig=<base64 Ed25519 over auth_message>`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::keys::Signature;
use crate::layout::{CUSTODY_DIR, INBOX_DIR};

/// Names the signed request format.
pub const UPLOAD_V1: &str = "custody-upload/1";
/// A request whose time differs from the station's clock by more is refused.
pub const MAX_CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;
/// Header: bytes the station holds / where this chunk starts.
pub const OFFSET_HEADER: &str = "upload-offset";
/// Header: the whole file's length.
pub const LENGTH_HEADER: &str = "upload-length";
/// Largest file accepted, in bytes.
pub const MAX_FILE_BYTES: u64 = 64 << 30;

/// The bytes a device signs for one request.
pub fn auth_message(method: &str, path: &str, time_ms: i64) -> Vec<u8> {
    format!("{UPLOAD_V1}\n{method}\n{path}\n{time_ms}\n").into_bytes()
}

/// The `Authorization` header value.
pub fn auth_header(serial: &str, time_ms: i64, sig: &Signature) -> String {
    format!(
        "Custody serial={serial}, time={time_ms}, sig={}",
        B64.encode(sig.0)
    )
}

/// Reads an `Authorization` header: (serial, time in ms, signature).
pub fn parse_auth_header(value: &str) -> Option<(String, i64, Signature)> {
    let rest = value.strip_prefix("Custody ")?;
    let (mut serial, mut time, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "serial" => serial = Some(v.to_owned()),
            "time" => time = Some(v.parse().ok()?),
            "sig" => sig = Some(Signature::from_bytes(&B64.decode(v).ok()?).ok()?),
            _ => return None,
        }
    }
    Some((serial?, time?, sig?))
}

/// Checks a path a device wants to upload (relative to its storage root): plain relative
/// components of safe characters, not into the station's inbox, at most 8 deep.
///
/// # Errors
/// Why the path is refused.
pub fn check_path(rel: &str) -> Result<(), String> {
    let parts: Vec<&str> = rel.split('/').collect();
    if rel.is_empty() || rel.len() > 255 || parts.len() > 8 {
        return Err("empty, too long or too deep".into());
    }
    for p in &parts {
        if p.is_empty() || *p == "." || *p == ".." || p.starts_with('.') {
            return Err(format!("component {p:?} is not allowed"));
        }
        if !p
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(format!(
                "component {p:?} has characters outside [A-Za-z0-9._-]"
            ));
        }
    }
    if parts.first() == Some(&CUSTODY_DIR) && parts.get(1) == Some(&INBOX_DIR) {
        return Err("the inbox is the station's to write".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SigningKey;

    #[test]
    fn a_signed_header_reads_back() {
        let (key, _) = SigningKey::generate().unwrap();
        let sig = key.sign(&auth_message("PATCH", "/v1/devices/A100001/files/x", 42));
        let header = auth_header("A100001", 42, &sig);
        let (serial, time, read) = parse_auth_header(&header).unwrap();
        assert_eq!((serial.as_str(), time, read), ("A100001", 42, sig));
        assert!(parse_auth_header("Bearer x").is_none());
        assert!(parse_auth_header("Custody serial=A, time=1, sig=AAAA").is_none());
        assert!(parse_auth_header("Custody serial=A, time=x, sig=").is_none());
    }

    #[test]
    fn only_plain_paths_outside_the_inbox_are_accepted() {
        for ok in [
            "DCIM/100MEDIA/A100001_0001.MP4",
            "custody/devices/A100001/records/00000001.json",
        ] {
            assert_eq!(check_path(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "../x",
            "/etc/passwd",
            "DCIM//x",
            "DCIM/./x",
            ".hidden",
            "custody/inbox/A100001/receipt-1.json",
            "DCIM/名字.MP4",
            "a/b/c/d/e/f/g/h/i",
        ] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
    }
}
