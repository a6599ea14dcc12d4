//! Backup archives kept in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, …), addressed
//! path-style (`<endpoint>/<bucket>/<key>`), which every S3-compatible store understands.
//!
//! An upload is first streamed to a staging folder on the platform's data volume while it is
//! hashed and bounded ([`ArchiveDir`]); only once it is whole with the announced checksum is
//! it PUT to the bucket, read from disk as it is sent, then the staged file is removed. Why
//! not a multipart upload straight from the Job's stream: parts of at least 5 MiB would be
//! held in memory (or staged anyway), and a checksum mismatch found at the end would have to
//! abort the upload; staging keeps "an archive that exists is whole and matches" as simple
//! as the folder's, and lets the PUT carry the archive's real SHA-256 as its signed payload
//! hash, so the bucket itself rejects a body that changed on the way.
//!
//! Requests are signed with AWS Signature Version 4 ([`sigv4`]) and sent over one fresh
//! HTTP/1.1 connection each, on the hyper and rustls the Kubernetes client already brings
//! (as webhooks are). Credentials are never logged: errors carry the bucket's error code
//! (`InvalidAccessKeyId`, `SignatureDoesNotMatch`, `NoSuchBucket`, …), never the request.

pub mod sigv4;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use axum::body::Bytes;
use axum::http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use storefactory_core::backup::{
    ArchiveChunks, ArchiveDir, ArchiveStore, BackupId, ReceiveError, UploadBody,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

pub use sigv4::Credentials;

use crate::error::{Error, Result};

/// How long connecting, and each answer without a body to stream, may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Where the bucket is and how to sign for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketConfig {
    /// `http(s)://host[:port]`, without a path.
    pub endpoint: String,
    /// The bucket's name.
    pub bucket: String,
    /// Put before every object key, e.g. `storefactory/` (empty for none).
    pub prefix: String,
    /// The signing region (`us-east-1` for most S3-compatibles).
    pub region: String,
    /// The key pair.
    pub credentials: Credentials,
}

/// An endpoint taken apart.
#[derive(Debug, Clone)]
struct Endpoint {
    tls: bool,
    host: String,
    port: u16,
    /// The `Host` header.
    authority: String,
}

impl Endpoint {
    fn parse(url: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidBucket {
            reason: format!("endpoint {url}: {reason}"),
        };
        let uri: http::Uri = url.parse().map_err(|_| invalid("not a URL"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(invalid("must start with http:// or https://")),
        };
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(invalid(
                "must have no path (buckets are addressed path-style)",
            ));
        }
        let authority = uri.authority().ok_or_else(|| invalid("has no host"))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(Endpoint {
            tls,
            host,
            port,
            authority: authority.as_str().to_owned(),
        })
    }
}

/// Parses a credentials file: `AWS_ACCESS_KEY_ID=…` and `AWS_SECRET_ACCESS_KEY=…` lines (as
/// an env file or a Kubernetes Secret's keys written out), blank lines and `#` comments
/// allowed; or, without `=`, the access key id on the first line and the secret on the
/// second.
pub fn parse_credentials(text: &str) -> Result<Credentials> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let invalid = |reason: &str| Error::InvalidBucket {
        reason: format!("credentials: {reason}"),
    };
    let (id, secret) = if lines.iter().any(|l| l.contains('=')) {
        let mut id = None;
        let mut secret = None;
        for line in &lines {
            let line = line.strip_prefix("export ").unwrap_or(line);
            let Some((key, value)) = line.split_once('=') else {
                return Err(invalid("a line is not KEY=VALUE"));
            };
            let value = value.trim().trim_matches('"').trim_matches('\'').to_owned();
            match key.trim() {
                "AWS_ACCESS_KEY_ID" => id = Some(value),
                "AWS_SECRET_ACCESS_KEY" => secret = Some(value),
                // Other keys (a region, a session name) are allowed and ignored; their
                // values are never shown.
                _ => {}
            }
        }
        (
            id.ok_or_else(|| invalid("AWS_ACCESS_KEY_ID is missing"))?,
            secret.ok_or_else(|| invalid("AWS_SECRET_ACCESS_KEY is missing"))?,
        )
    } else {
        match lines.as_slice() {
            [id, secret] => ((*id).to_owned(), (*secret).to_owned()),
            _ => {
                return Err(invalid(
                    "expected KEY=VALUE lines, or the access key id and the secret on two lines",
                ));
            }
        }
    };
    if id.is_empty() || secret.is_empty() {
        return Err(invalid(
            "the access key id and the secret must not be empty",
        ));
    }
    Ok(Credentials {
        access_key_id: id,
        secret_access_key: secret,
    })
}

/// Archives in an S3-compatible bucket, staged in a local folder while they arrive. Cheap to
/// clone.
#[derive(Clone)]
pub struct Bucket {
    inner: Arc<Inner>,
}

struct Inner {
    config: BucketConfig,
    endpoint: Endpoint,
    staging: ArchiveDir,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket")
            .field("endpoint", &self.inner.config.endpoint)
            .field("bucket", &self.inner.config.bucket)
            .field("prefix", &self.inner.config.prefix)
            .field("region", &self.inner.config.region)
            .finish_non_exhaustive()
    }
}

/// What one request to the bucket ended in, before its body.
type Answer = Response<Incoming>;

impl Bucket {
    /// The bucket of `config`; uploads are staged in `staging` (on the data volume) while
    /// they arrive. Checks the configuration, not the bucket: see [`Bucket::check`].
    pub fn new(config: BucketConfig, staging: impl Into<PathBuf>) -> Result<Self> {
        let endpoint = Endpoint::parse(&config.endpoint)?;
        let invalid = |reason: String| Err(Error::InvalidBucket { reason });
        let name_ok = (3..=63).contains(&config.bucket.len())
            && config
                .bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !name_ok {
            return invalid(format!(
                "bucket {:?}: 3 to 63 lowercase letters, digits, '-' or '.'",
                config.bucket
            ));
        }
        if !config
            .prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
            || config.prefix.starts_with('/')
            || config.prefix.contains("//")
            || config.prefix.split('/').any(|s| s == "." || s == "..")
        {
            return invalid(format!(
                "prefix {:?}: letters, digits, '-', '_', '.' and '/' (not leading, not doubled)",
                config.prefix
            ));
        }
        if config.region.is_empty()
            || !config
                .region
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return invalid(format!("region {:?}: e.g. us-east-1", config.region));
        }
        let tls = if endpoint.tls {
            let config = crate::webhooks::tls_config().map_err(|e| Error::InvalidBucket {
                reason: format!("no TLS configuration for https: {e}"),
            })?;
            Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
        } else {
            None
        };
        Ok(Bucket {
            inner: Arc::new(Inner {
                config,
                endpoint,
                staging: ArchiveDir::new(staging),
                tls,
            }),
        })
    }

    /// The object key of backup `id`.
    pub fn key(&self, id: &BackupId) -> String {
        format!("{}{id}.tar", self.inner.config.prefix)
    }

    /// Checks that the bucket is reachable and these credentials may use it (a signed
    /// `HEAD` of the bucket), so that a wrong configuration stops the server at start-up
    /// instead of failing the first backup.
    pub async fn check(&self) -> Result<()> {
        let answer = self
            .timed(self.send(Method::HEAD, None, sigv4::EMPTY_SHA256, empty(), None))
            .await
            .map_err(|reason| self.unreachable(reason))?;
        let status = answer.status();
        if status.is_success() {
            return Ok(());
        }
        // A HEAD has no body: the status alone tells.
        let reason = match status {
            StatusCode::FORBIDDEN => {
                "answered 403: the credentials are refused (a wrong access key or secret, \
                 or no permission on this bucket)"
                    .to_owned()
            }
            StatusCode::NOT_FOUND => "answered 404: there is no such bucket".to_owned(),
            StatusCode::MOVED_PERMANENTLY | StatusCode::BAD_REQUEST => format!(
                "answered {}: is the region {:?} right?",
                status.as_u16(),
                self.inner.config.region
            ),
            _ => format!("answered {}", status.as_u16()),
        };
        Err(self.unreachable(reason))
    }

    fn unreachable(&self, reason: String) -> Error {
        Error::BucketUnavailable {
            endpoint: self.inner.config.endpoint.clone(),
            bucket: self.inner.config.bucket.clone(),
            reason,
        }
    }

    async fn timed<T>(
        &self,
        work: impl Future<Output = std::result::Result<T, String>>,
    ) -> std::result::Result<T, String> {
        tokio::time::timeout(TIMEOUT, work)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} s", TIMEOUT.as_secs())))
    }

    /// Sends one signed request for the object `key` (the bucket itself when `None`).
    async fn send(
        &self,
        method: Method,
        key: Option<&str>,
        payload_sha256: &str,
        body: BoxBody<Bytes, std::io::Error>,
        content_length: Option<u64>,
    ) -> std::result::Result<Answer, String> {
        let Inner {
            config, endpoint, ..
        } = &*self.inner;
        let mut path = format!("/{}", config.bucket);
        if let Some(key) = key {
            path.push('/');
            path.push_str(key);
        }
        let path = sigv4::uri_encode(&path, false);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let amz_date = sigv4::amz_date(now);
        let authorization = sigv4::authorization(
            &config.credentials,
            &config.region,
            "s3",
            &amz_date,
            &sigv4::Request {
                method: method.as_str(),
                path: &path,
                query: &[],
                headers: &[
                    ("host", &endpoint.authority),
                    ("x-amz-content-sha256", payload_sha256),
                    ("x-amz-date", &amz_date),
                ],
                payload_sha256,
            },
        );
        let mut request = Request::builder()
            .method(method)
            .uri(&path)
            .header(header::HOST, &endpoint.authority)
            .header("x-amz-content-sha256", payload_sha256)
            .header("x-amz-date", &amz_date)
            .header(header::AUTHORIZATION, authorization)
            .header(
                header::USER_AGENT,
                concat!("Storefactory/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(length) = content_length {
            request = request.header(header::CONTENT_LENGTH, length);
        }
        let request = request
            .body(body)
            .map_err(|e| format!("cannot build the request: {e}"))?;
        let stream = tokio::time::timeout(
            TIMEOUT,
            TcpStream::connect((endpoint.host.as_str(), endpoint.port)),
        )
        .await
        .map_err(|_| format!("cannot connect within {} s", TIMEOUT.as_secs()))?
        .map_err(|e| format!("cannot connect: {e}"))?;
        if let Some(tls) = &self.inner.tls {
            let name = rustls::pki_types::ServerName::try_from(endpoint.host.clone())
                .map_err(|_| "the host is not a valid TLS server name".to_owned())?;
            let stream = tls
                .connect(name, stream)
                .await
                .map_err(|e| format!("TLS handshake failed: {e}"))?;
            exchange(stream, request).await
        } else {
            exchange(stream, request).await
        }
    }

    /// PUTs the staged archive of `id` (`size` bytes with SHA-256 `sha256`).
    async fn put(&self, id: &BackupId, size: u64, sha256: &str) -> std::result::Result<(), String> {
        let file = tokio::fs::File::open(self.inner.staging.archive(id))
            .await
            .map_err(|e| format!("cannot read the staged archive: {e}"))?;
        let body = BoxBody::new(StreamBody::new(futures::stream::try_unfold(
            file,
            |mut file| async move {
                use tokio::io::AsyncReadExt as _;
                let mut buffer = vec![0u8; 64 * 1024];
                let read = file.read(&mut buffer).await?;
                if read == 0 {
                    return Ok(None);
                }
                buffer.truncate(read);
                Ok(Some((Frame::data(Bytes::from(buffer)), file)))
            },
        )));
        let key = self.key(id);
        // No deadline on the whole exchange: a large archive takes as long as it takes; the
        // connection itself is bounded by `send`.
        let answer = self
            .send(Method::PUT, Some(&key), sha256, body, Some(size))
            .await?;
        if answer.status().is_success() {
            Ok(())
        } else {
            Err(refusal(answer).await)
        }
    }
}

#[async_trait]
impl ArchiveStore for Bucket {
    async fn receive(
        &self,
        id: &BackupId,
        body: UploadBody<'_>,
        max_bytes: u64,
        expected_sha256: &str,
    ) -> std::result::Result<(u64, String), ReceiveError> {
        let (size, sha256) = self
            .inner
            .staging
            .receive(id, body, max_bytes, expected_sha256)
            .await?;
        let put = self.put(id, size, &sha256).await;
        // The staged copy goes whatever happened: the bucket holds the archive, or nothing.
        let _ = self.inner.staging.remove(id).await;
        match put {
            Ok(()) => Ok((size, sha256)),
            Err(reason) => {
                tracing::warn!(backup = %id, bucket = %self.inner.config.bucket, %reason, "the bucket did not keep a backup archive");
                // The backup's error is shown to the store's owner: the reason, not where
                // the platform keeps its archives (that is in the log above).
                Err(ReceiveError::Store(reason))
            }
        }
    }

    async fn read(&self, id: &BackupId) -> std::io::Result<Option<(u64, ArchiveChunks)>> {
        let key = self.key(id);
        let answer = self
            .timed(self.send(Method::GET, Some(&key), sigv4::EMPTY_SHA256, empty(), None))
            .await
            .map_err(std::io::Error::other)?;
        match answer.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            _ => return Err(std::io::Error::other(refusal(answer).await)),
        }
        let size = answer
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| std::io::Error::other("the bucket sent no Content-Length"))?;
        use futures::StreamExt as _;
        let chunks = answer
            .into_body()
            .into_data_stream()
            .map(|chunk| chunk.map(|b| b.to_vec()).map_err(std::io::Error::other));
        Ok(Some((size, Box::pin(chunks))))
    }

    async fn remove(&self, id: &BackupId) -> std::io::Result<bool> {
        let key = self.key(id);
        // S3 answers a DELETE 204 whether or not the object was there: a HEAD tells first.
        let head = self
            .timed(self.send(Method::HEAD, Some(&key), sigv4::EMPTY_SHA256, empty(), None))
            .await
            .map_err(std::io::Error::other)?;
        let existed = match head.status() {
            s if s.is_success() => true,
            StatusCode::NOT_FOUND => false,
            s => {
                return Err(std::io::Error::other(format!(
                    "the bucket answered {} to a HEAD of {key}",
                    s.as_u16()
                )));
            }
        };
        let answer = self
            .timed(self.send(
                Method::DELETE,
                Some(&key),
                sigv4::EMPTY_SHA256,
                empty(),
                None,
            ))
            .await
            .map_err(std::io::Error::other)?;
        if answer.status().is_success() || answer.status() == StatusCode::NOT_FOUND {
            Ok(existed)
        } else {
            Err(std::io::Error::other(refusal(answer).await))
        }
    }

    async fn check(&self) -> std::io::Result<()> {
        Bucket::check(self).await.map_err(std::io::Error::other)
    }
}

fn empty() -> BoxBody<Bytes, std::io::Error> {
    BoxBody::new(Empty::new().map_err(|never| match never {}))
}

/// One request on a fresh HTTP/1.1 connection. The connection lives until the answer's body
/// was read (or dropped), so a GET's body can be streamed on.
async fn exchange<I>(
    io: I,
    request: Request<BoxBody<Bytes, std::io::Error>>,
) -> std::result::Result<Answer, String>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    tokio::spawn(connection);
    sender
        .send_request(request)
        .await
        .map_err(|e| format!("the request failed: {e}"))
}

/// Why the bucket refused: its status and the `<Code>` of its XML error (never the request,
/// which would show the credentials' id and signature).
async fn refusal(answer: Answer) -> String {
    let status = answer.status().as_u16();
    let body = tokio::time::timeout(
        TIMEOUT,
        http_body_util::Limited::new(answer.into_body(), 64 * 1024).collect(),
    )
    .await
    .ok()
    .and_then(|r| r.ok())
    .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
    .unwrap_or_default();
    let code = body
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(code, _)| code.trim())
        .filter(|code| code.bytes().all(|b| b.is_ascii_alphanumeric()) && !code.is_empty());
    let hint = match code {
        Some("InvalidAccessKeyId") => ": the access key id is not known to the bucket's store",
        Some("SignatureDoesNotMatch") => ": the secret access key is wrong",
        Some("AccessDenied") => ": these credentials may not do this",
        Some("NoSuchBucket") => ": there is no such bucket",
        Some("XAmzContentSHA256Mismatch" | "BadDigest") => {
            ": the bytes changed on the way to the bucket"
        }
        _ => "",
    };
    match code {
        Some(code) => format!("answered {status} ({code}){hint}"),
        None => format!("answered {status}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_files_take_either_form() {
        let both = parse_credentials(
            "# minio\nAWS_ACCESS_KEY_ID=id1\nexport AWS_SECRET_ACCESS_KEY=\"s/ecret\"\nAWS_REGION=x\n",
        )
        .unwrap();
        assert_eq!(
            (both.access_key_id.as_str(), both.secret_access_key.as_str()),
            ("id1", "s/ecret")
        );
        let lines = parse_credentials("id2\n  secret2  \n").unwrap();
        assert_eq!(
            (
                lines.access_key_id.as_str(),
                lines.secret_access_key.as_str()
            ),
            ("id2", "secret2")
        );
        for bad in [
            "",
            "one-line",
            "a\nb\nc",
            "AWS_ACCESS_KEY_ID=x",
            "AWS_ACCESS_KEY_ID=\nAWS_SECRET_ACCESS_KEY=y",
        ] {
            let err = parse_credentials(bad).unwrap_err().to_string();
            assert!(!err.contains("secret2"), "{err}");
            assert!(err.contains("credentials"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn configuration_is_checked() {
        let config = |endpoint: &str, bucket: &str, prefix: &str| BucketConfig {
            endpoint: endpoint.to_owned(),
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            region: "us-east-1".to_owned(),
            credentials: Credentials {
                access_key_id: "id".to_owned(),
                secret_access_key: "secret".to_owned(),
            },
        };
        let bucket =
            Bucket::new(config("http://127.0.0.1:9000", "backups", "sf/"), "/tmp").unwrap();
        let id = BackupId::new("abcd1234efgh").unwrap();
        assert_eq!(bucket.key(&id), "sf/abcd1234efgh.tar");
        assert!(!format!("{bucket:?}").contains("secret"));
        for (endpoint, name, prefix) in [
            ("ftp://a", "backups", ""),
            ("http://a/path", "backups", ""),
            ("http://a", "Backups", ""),
            ("http://a", "ab", ""),
            ("http://a", "backups", "/abs"),
            ("http://a", "backups", "a/../b"),
            ("http://a", "backups", "a b"),
        ] {
            assert!(
                Bucket::new(config(endpoint, name, prefix), "/tmp").is_err(),
                "{endpoint} {name} {prefix}"
            );
        }
    }
}
