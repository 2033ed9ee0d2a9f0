//! A blocking S3 client for the calls the evidence store makes: objects with Object Lock
//! headers, multipart uploads that can be listed and resumed, legal holds, and the
//! bucket's lock configuration. Path-style addressing (`endpoint/bucket/key`), SigV4
//! signatures, `Content-MD5` on every body.

use std::fmt::Write as _;
use std::io::Read;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use reqwest::blocking::{Body, Client as Http, Response};

use super::sigv4::{self, Credentials, UNSIGNED_PAYLOAD};
use super::xml;

/// Largest XML answer read (list results are paged at 1000 entries).
const MAX_XML: u64 = 4 << 20;

/// A failed S3 call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum S3Error {
    /// The server answered with an error.
    #[error("S3 {op} answered {status} {code}: {message}")]
    Server {
        /// The operation.
        op: &'static str,
        /// HTTP status.
        status: u16,
        /// The S3 error code (`AccessDenied`, `NoSuchKey`, …).
        code: String,
        /// Its message.
        message: String,
    },
    /// No answer (connection refused, reset, timeout).
    #[error("S3 {op}: no answer from the endpoint")]
    Transport {
        /// The operation.
        op: &'static str,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// An answer that does not say what S3 says.
    #[error("S3 {op}: unexpected answer: {why}")]
    Protocol {
        /// The operation.
        op: &'static str,
        /// What was wrong.
        why: String,
    },
}

impl S3Error {
    /// The S3 error code, if the server gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Server { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// Object Lock mode and retain-until date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// `COMPLIANCE` or `GOVERNANCE`.
    pub mode: String,
    /// Until when no one can delete or shorten it.
    pub until: DateTime<Utc>,
}

/// What HEAD says about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHead {
    /// Its length.
    pub size: u64,
    /// The evidence SHA-256 the station put in its metadata (`x-amz-meta-sha256`).
    pub sha256: Option<String>,
    /// Its version id.
    pub version_id: Option<String>,
    /// Its Object Lock retention, if any.
    pub retention: Option<Retention>,
    /// Whether a legal hold is on.
    pub legal_hold: bool,
}

/// A part already uploaded to a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedPart {
    /// 1-based number.
    pub number: u32,
    /// Its ETag (the MD5 of its bytes, quoted, for unencrypted parts).
    pub etag: String,
    /// Its length.
    pub size: u64,
}

/// One version of an object (for audits and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    /// The key.
    pub key: String,
    /// Its version id.
    pub version_id: String,
    /// Whether it is the current one.
    pub latest: bool,
    /// Its length.
    pub size: u64,
}

/// Headers a new object carries: lock, hold and metadata.
#[derive(Debug, Clone)]
pub struct NewObject<'a> {
    /// Retention to set at upload (never after).
    pub retention: Option<&'a Retention>,
    /// Legal hold at upload.
    pub legal_hold: bool,
    /// `x-amz-meta-*` pairs (lowercase names, ASCII values).
    pub metadata: &'a [(&'a str, String)],
}

impl Retention {
    /// The date as the lock headers and bodies write it.
    pub fn until_text(&self) -> String {
        self.until.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    }
}

impl NewObject<'_> {
    fn headers(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(r) = self.retention {
            out.push(("x-amz-object-lock-mode".into(), r.mode.clone()));
            out.push(("x-amz-object-lock-retain-until-date".into(), r.until_text()));
        }
        if self.legal_hold {
            out.push(("x-amz-object-lock-legal-hold".into(), "ON".into()));
        }
        for (name, value) in self.metadata {
            out.push((format!("x-amz-meta-{name}"), value.clone()));
        }
        out
    }
}

/// A request body with its MD5, computed once: the `Content-MD5` header the server checks,
/// and the ETag it gives a part with these bytes.
#[derive(Debug)]
pub struct Payload {
    bytes: Bytes,
    md5: [u8; 16],
}

impl Payload {
    /// Takes the bytes (without copying them) and computes their MD5.
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        use md5::Digest as _;
        let bytes = bytes.into();
        let md5 = md5::Md5::digest(&bytes).into();
        Self { bytes, md5 }
    }

    /// The quoted hex MD5 S3 gives as the ETag of a part with these bytes.
    pub fn etag(&self) -> String {
        format!("\"{}\"", hex::encode(self.md5))
    }

    /// Its length.
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn content_md5(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.md5)
    }
}

/// One endpoint, bucket and key pair.
#[derive(Debug, Clone)]
pub struct Client {
    http: Http,
    endpoint: String,
    host: String,
    bucket: String,
    creds: Credentials,
}

type Query = Vec<(String, String)>;

fn q(pairs: &[(&str, &str)]) -> Query {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// `query` for one version of an object (`versionId`), or for the current one.
fn for_version(mut query: Query, version: Option<&str>) -> Query {
    if let Some(v) = version {
        query.push(("versionId".into(), v.into()));
    }
    query
}

impl Client {
    /// A client for `bucket` at `endpoint` (`http://host:port` or `https://…`); `ca` adds a
    /// PEM certificate to trust (a private CA).
    ///
    /// # Errors
    /// A malformed endpoint or CA, or a TLS setup failure.
    pub fn new(
        endpoint: &str,
        bucket: &str,
        creds: Credentials,
        ca: Option<&[u8]>,
    ) -> anyhow::Result<Self> {
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        let host = endpoint
            .strip_prefix("http://")
            .or_else(|| endpoint.strip_prefix("https://"))
            .filter(|h| !h.is_empty() && !h.contains('/'))
            .ok_or_else(|| {
                anyhow::anyhow!("S3 endpoint {endpoint:?} is not http(s)://HOST[:PORT]")
            })?
            .to_owned();
        // reqwest is built without a default TLS provider: ring, as everywhere in Custody.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut http = Http::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_mins(5))
            .pool_max_idle_per_host(16);
        if let Some(pem) = ca {
            http = http.add_root_certificate(reqwest::Certificate::from_pem(pem)?);
        }
        Ok(Self {
            http: http.build()?,
            endpoint,
            host,
            bucket: bucket.to_owned(),
            creds,
        })
    }

    /// The bucket name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn send(
        &self,
        op: &'static str,
        method: reqwest::Method,
        key: Option<&str>,
        query: &Query,
        mut headers: Vec<(String, String)>,
        body: Option<Payload>,
    ) -> Result<Response, S3Error> {
        let path = match key {
            Some(key) => format!("/{}/{key}", self.bucket),
            None => format!("/{}", self.bucket),
        };
        let now = Utc::now();
        headers.push(("host".into(), self.host.clone()));
        headers.push(("x-amz-date".into(), sigv4::amz_date(now)));
        headers.push(("x-amz-content-sha256".into(), UNSIGNED_PAYLOAD.into()));
        if let Some(body) = &body {
            headers.push(("content-md5".into(), body.content_md5()));
        }
        let auth = sigv4::authorization(
            &self.creds,
            &sigv4::Request {
                method: method.as_str(),
                path: &path,
                query,
                headers: &headers,
            },
            now,
        );
        let mut url = format!("{}{}", self.endpoint, sigv4::uri_encode(&path, true));
        if !query.is_empty() {
            url.push('?');
            url.push_str(&sigv4::canonical_query(query));
        }
        let mut req = self.http.request(method, url).header("authorization", auth);
        for (name, value) in &headers {
            if name != "host" {
                req = req.header(name.as_str(), value.as_str());
            }
        }
        if let Some(body) = body {
            req = req.body(Body::from(body.bytes));
        }
        let resp = req
            .send()
            .map_err(|source| S3Error::Transport { op, source })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let text = read_text(op, resp).unwrap_or_default();
        Err(S3Error::Server {
            op,
            status,
            code: xml::text(&text, "Code").unwrap_or_else(|| format!("HTTP {status}")),
            message: xml::text(&text, "Message").unwrap_or_default(),
        })
    }

    fn xml(
        &self,
        op: &'static str,
        method: reqwest::Method,
        key: Option<&str>,
        query: &Query,
        body: Option<Payload>,
    ) -> Result<String, S3Error> {
        let resp = self.send(op, method, key, query, Vec::new(), body)?;
        read_text(op, resp)
    }

    /// Creates the bucket with Object Lock enabled (for tests, benchmarks and first setup).
    ///
    /// # Errors
    /// [`S3Error`]; a bucket that already exists and is ours is success.
    pub fn create_locked_bucket(&self) -> Result<(), S3Error> {
        let headers = vec![("x-amz-bucket-object-lock-enabled".into(), "true".into())];
        match self.send(
            "CreateBucket",
            reqwest::Method::PUT,
            None,
            &Vec::new(),
            headers,
            None,
        ) {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("BucketAlreadyOwnedByYou") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Creates the bucket without Object Lock (tests of the refusal to start).
    ///
    /// # Errors
    /// [`S3Error`].
    pub fn create_plain_bucket(&self) -> Result<(), S3Error> {
        self.send(
            "CreateBucket",
            reqwest::Method::PUT,
            None,
            &Vec::new(),
            Vec::new(),
            None,
        )
        .map(drop)
    }

    /// Whether Object Lock is enabled on the bucket.
    ///
    /// # Errors
    /// [`S3Error`] other than "no lock configuration".
    pub fn object_lock_enabled(&self) -> Result<bool, S3Error> {
        match self.xml(
            "GetObjectLockConfiguration",
            reqwest::Method::GET,
            None,
            &q(&[("object-lock", "")]),
            None,
        ) {
            Ok(doc) => Ok(xml::text(&doc, "ObjectLockEnabled").as_deref() == Some("Enabled")),
            Err(e) if e.code() == Some("ObjectLockConfigurationNotFoundError") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Sets the bucket's default retention: every new version is retained `days` in
    /// `mode` unless its upload says more.
    ///
    /// # Errors
    /// [`S3Error`].
    pub fn set_default_retention(&self, mode: &str, days: u32) -> Result<(), S3Error> {
        let body = format!(
            "<ObjectLockConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention>\
             <Mode>{mode}</Mode><Days>{days}</Days></DefaultRetention></Rule></ObjectLockConfiguration>"
        );
        self.send(
            "PutObjectLockConfiguration",
            reqwest::Method::PUT,
            None,
            &q(&[("object-lock", "")]),
            Vec::new(),
            Some(Payload::new(body.into_bytes())),
        )
        .map(drop)
    }

    /// HEAD of the current version (or `version`); `None` when there is none.
    ///
    /// # Errors
    /// [`S3Error`] other than 404.
    pub fn head(&self, key: &str, version: Option<&str>) -> Result<Option<ObjectHead>, S3Error> {
        let query = for_version(Vec::new(), version);
        let resp = match self.send(
            "HeadObject",
            reqwest::Method::HEAD,
            Some(key),
            &query,
            Vec::new(),
            None,
        ) {
            Ok(resp) => resp,
            Err(S3Error::Server { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let h = resp.headers();
        let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let size = get("content-length")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| S3Error::Protocol {
                op: "HeadObject",
                why: "no Content-Length".into(),
            })?;
        let retention = match (
            get("x-amz-object-lock-mode"),
            get("x-amz-object-lock-retain-until-date"),
        ) {
            (Some(mode), Some(until)) => Some(Retention {
                mode,
                until: DateTime::parse_from_rfc3339(&until)
                    .map_err(|e| S3Error::Protocol {
                        op: "HeadObject",
                        why: format!("retain-until {until:?}: {e}"),
                    })?
                    .with_timezone(&Utc),
            }),
            _ => None,
        };
        Ok(Some(ObjectHead {
            size,
            sha256: get("x-amz-meta-sha256"),
            version_id: get("x-amz-version-id"),
            retention,
            legal_hold: get("x-amz-object-lock-legal-hold").as_deref() == Some("ON"),
        }))
    }

    /// Uploads a whole object in one request; answers the new version's id.
    ///
    /// # Errors
    /// [`S3Error`].
    pub fn put(
        &self,
        key: &str,
        body: Payload,
        new: &NewObject<'_>,
    ) -> Result<Option<String>, S3Error> {
        let resp = self.send(
            "PutObject",
            reqwest::Method::PUT,
            Some(key),
            &Vec::new(),
            new.headers(),
            Some(body),
        )?;
        Ok(version_id(&resp))
    }

    /// Sets a version's retention. COMPLIANCE retention can only be lengthened; the store
    /// uses this to lengthen a bucket default, or when a server ignored the lock headers
    /// of a multipart upload.
    ///
    /// # Errors
    /// [`S3Error`].
    pub fn set_retention(
        &self,
        key: &str,
        version: Option<&str>,
        retention: &Retention,
    ) -> Result<(), S3Error> {
        let body = format!(
            "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>{}</Mode>\
             <RetainUntilDate>{}</RetainUntilDate></Retention>",
            retention.mode,
            retention.until_text()
        );
        let query = for_version(q(&[("retention", "")]), version);
        self.send(
            "PutObjectRetention",
            reqwest::Method::PUT,
            Some(key),
            &query,
            Vec::new(),
            Some(Payload::new(body.into_bytes())),
        )
        .map(drop)
    }

    /// Starts a multipart upload; the lock headers go here, at creation.
    ///
    /// # Errors
    /// [`S3Error`].
    pub fn create_multipart(&self, key: &str, new: &NewObject<'_>) -> Result<String, S3Error> {
        let op = "CreateMultipartUpload";
        let resp = self.send(
            op,
            reqwest::Method::POST,
            Some(key),
            &q(&[("uploads", "")]),
            new.headers(),
            None,
        )?;
        let doc = read_text(op, resp)?;
        xml::text(&doc, "UploadId").ok_or_else(|| S3Error::Protocol {
            op,
            why: "no UploadId".into(),
        })
    }

    /// Uploads part `number`; answers its ETag.
    ///
    /// # Errors
    /// [`S3Error`].
    pub fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        body: Payload,
    ) -> Result<String, S3Error> {
        let op = "UploadPart";
        let resp = self.send(
            op,
            reqwest::Method::PUT,
            Some(key),
            &q(&[("partNumber", &number.to_string()), ("uploadId", upload_id)]),
            Vec::new(),
            Some(body),
        )?;
        resp.headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| S3Error::Protocol {
                op,
                why: "no ETag".into(),
            })
    }

    /// Completes a multipart upload from its parts, in order; answers the version id.
    ///
    /// # Errors
    /// [`S3Error`] (S3 can answer 200 with an error body: that is an error too).
    pub fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[UploadedPart],
    ) -> Result<Option<String>, S3Error> {
        let op = "CompleteMultipartUpload";
        let mut body = String::from("<CompleteMultipartUpload>");
        for p in parts {
            let _ = write!(
                body,
                "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
                p.number,
                xml::escape(&p.etag)
            );
        }
        body.push_str("</CompleteMultipartUpload>");
        let resp = self.send(
            op,
            reqwest::Method::POST,
            Some(key),
            &q(&[("uploadId", upload_id)]),
            Vec::new(),
            Some(Payload::new(body.into_bytes())),
        )?;
        let version = version_id(&resp);
        let doc = read_text(op, resp)?;
        match xml::text(&doc, "Code") {
            Some(code) => Err(S3Error::Server {
                op,
                status: 200,
                code,
                message: xml::text(&doc, "Message").unwrap_or_default(),
            }),
            None => Ok(version),
        }
    }

    /// Abandons a multipart upload and its parts.
    ///
    /// # Errors
    /// [`S3Error`] other than "no such upload".
    pub fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), S3Error> {
        match self.send(
            "AbortMultipartUpload",
            reqwest::Method::DELETE,
            Some(key),
            &q(&[("uploadId", upload_id)]),
            Vec::new(),
            None,
        ) {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("NoSuchUpload") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Multipart uploads in progress for exactly `key`, oldest first: (upload id, started).
    ///
    /// # Errors
    /// [`S3Error`].
    pub fn uploads_in_progress(&self, key: &str) -> Result<Vec<(String, String)>, S3Error> {
        let doc = self.xml(
            "ListMultipartUploads",
            reqwest::Method::GET,
            None,
            &q(&[("uploads", ""), ("prefix", key)]),
            None,
        )?;
        let mut out: Vec<(String, String)> = xml::blocks(&doc, "Upload")
            .into_iter()
            .filter(|u| xml::text(u, "Key").as_deref() == Some(key))
            .filter_map(|u| Some((xml::text(u, "UploadId")?, xml::text(u, "Initiated")?)))
            .collect();
        out.sort_by(|a, b| a.1.cmp(&b.1));
        Ok(out)
    }

    /// The parts of an upload in progress, by number.
    ///
    /// # Errors
    /// [`S3Error`].
    pub fn list_parts(&self, key: &str, upload_id: &str) -> Result<Vec<UploadedPart>, S3Error> {
        let op = "ListParts";
        let mut parts = Vec::new();
        let mut marker = String::from("0");
        loop {
            let doc = self.xml(
                op,
                reqwest::Method::GET,
                Some(key),
                &q(&[("uploadId", upload_id), ("part-number-marker", &marker)]),
                None,
            )?;
            for p in xml::blocks(&doc, "Part") {
                let field = |name| {
                    xml::text(p, name).ok_or_else(|| S3Error::Protocol {
                        op,
                        why: format!("a part without {name}"),
                    })
                };
                let bad = |why: String| S3Error::Protocol { op, why };
                parts.push(UploadedPart {
                    number: field("PartNumber")?
                        .parse()
                        .map_err(|e| bad(format!("{e}")))?,
                    etag: field("ETag")?,
                    size: field("Size")?.parse().map_err(|e| bad(format!("{e}")))?,
                });
            }
            match (
                xml::text(&doc, "IsTruncated").as_deref(),
                xml::text(&doc, "NextPartNumberMarker"),
            ) {
                (Some("true"), Some(next)) if next != marker => marker = next,
                _ => break,
            }
        }
        parts.sort_by_key(|p| p.number);
        Ok(parts)
    }

    /// Opens the current version (or `version`) for reading.
    ///
    /// # Errors
    /// [`S3Error`] (404 included).
    pub fn get(&self, key: &str, version: Option<&str>) -> Result<Response, S3Error> {
        let query = for_version(Vec::new(), version);
        self.send(
            "GetObject",
            reqwest::Method::GET,
            Some(key),
            &query,
            Vec::new(),
            None,
        )
    }

    /// Sets or clears the legal hold on the current version (or `version`).
    ///
    /// # Errors
    /// [`S3Error`].
    pub fn set_legal_hold(
        &self,
        key: &str,
        version: Option<&str>,
        on: bool,
    ) -> Result<(), S3Error> {
        let status = if on { "ON" } else { "OFF" };
        let query = for_version(q(&[("legal-hold", "")]), version);
        let body = format!(
            "<LegalHold xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Status>{status}</Status></LegalHold>"
        );
        self.send(
            "PutObjectLegalHold",
            reqwest::Method::PUT,
            Some(key),
            &query,
            Vec::new(),
            Some(Payload::new(body.into_bytes())),
        )
        .map(drop)
    }

    /// Deletes a version (or, without one, puts a delete marker). Object Lock makes the
    /// server refuse this for retained versions; the store never calls it on evidence.
    ///
    /// # Errors
    /// [`S3Error`].
    pub fn delete(&self, key: &str, version: Option<&str>) -> Result<(), S3Error> {
        let query = for_version(Vec::new(), version);
        self.send(
            "DeleteObject",
            reqwest::Method::DELETE,
            Some(key),
            &query,
            Vec::new(),
            None,
        )
        .map(drop)
    }

    /// Every version of the objects under `prefix` (first 1000).
    ///
    /// # Errors
    /// [`S3Error`].
    pub fn versions(&self, prefix: &str) -> Result<Vec<ObjectVersion>, S3Error> {
        let op = "ListObjectVersions";
        let doc = self.xml(
            op,
            reqwest::Method::GET,
            None,
            &q(&[("versions", ""), ("prefix", prefix)]),
            None,
        )?;
        xml::blocks(&doc, "Version")
            .into_iter()
            .map(|v| {
                let field = |name| {
                    xml::text(v, name).ok_or_else(|| S3Error::Protocol {
                        op,
                        why: format!("a version without {name}"),
                    })
                };
                Ok(ObjectVersion {
                    key: field("Key")?,
                    version_id: field("VersionId")?,
                    latest: field("IsLatest")? == "true",
                    size: field("Size")?.parse().map_err(|e| S3Error::Protocol {
                        op,
                        why: format!("{e}"),
                    })?,
                })
            })
            .collect()
    }
}

fn version_id(resp: &Response) -> Option<String> {
    resp.headers()
        .get("x-amz-version-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn read_text(op: &'static str, resp: Response) -> Result<String, S3Error> {
    let mut text = String::new();
    resp.take(MAX_XML)
        .read_to_string(&mut text)
        .map_err(|e| S3Error::Protocol {
            op,
            why: format!("unreadable answer: {e}"),
        })?;
    Ok(text)
}
