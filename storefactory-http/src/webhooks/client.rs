//! Sending one delivery: resolve, check every address, connect (TLS for `https`), POST,
//! read the status; all within one deadline. Built on the hyper and rustls the Kubernetes
//! client already brings, rather than a general HTTP client: a webhook needs one request
//! per connection, no redirects, no cookies, no proxies from the environment, and the
//! address check between resolving and connecting, which a general client hides.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Method, Request, header};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use storefactory_sql::webhook_target::{Target, is_public};

/// The `User-Agent` of deliveries.
const USER_AGENT: &str = concat!("Storefactory-Webhooks/", env!("CARGO_PKG_VERSION"));

/// Sends deliveries. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Client {
    /// `None` when no TLS configuration could be built (no trust roots): `https`
    /// deliveries then fail with that reason.
    tls: Option<tokio_rustls::TlsConnector>,
    allow_private: bool,
    timeout: Duration,
}

/// Why an attempt failed, for the delivery log (never holds the secret or the body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// The HTTP status, when the receiver answered.
    pub status: Option<u16>,
    /// What happened, for people.
    pub error: String,
}

impl Failure {
    fn before_answer(error: impl Into<String>) -> Self {
        Failure {
            status: None,
            error: error.into(),
        }
    }
}

impl Client {
    pub(crate) fn new(allow_private: bool, timeout: Duration) -> Self {
        let tls = match tls_config() {
            Ok(config) => Some(tokio_rustls::TlsConnector::from(Arc::new(config))),
            Err(error) => {
                tracing::warn!(%error, "no TLS configuration for webhooks: https deliveries fail");
                None
            }
        };
        Client {
            tls,
            allow_private,
            timeout,
        }
    }

    /// POSTs `body` with `headers` to `target`; `Ok(status)` for a 2xx answer.
    pub(crate) async fn post(
        &self,
        target: &Target,
        headers: &[(&'static str, String)],
        body: String,
    ) -> Result<u16, Failure> {
        match tokio::time::timeout(self.timeout, self.exchange(target, headers, body)).await {
            Ok(result) => result,
            Err(_) => Err(Failure::before_answer(format!(
                "no answer within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }

    async fn exchange(
        &self,
        target: &Target,
        headers: &[(&'static str, String)],
        body: String,
    ) -> Result<u16, Failure> {
        let addresses = self.resolve(target).await?;
        let mut last_error = None;
        let mut stream = None;
        for address in addresses {
            match TcpStream::connect(address).await {
                Ok(connected) => {
                    stream = Some(connected);
                    break;
                }
                Err(error) => last_error = Some(error),
            }
        }
        let Some(stream) = stream else {
            return Err(Failure::before_answer(format!(
                "cannot connect to {}:{}: {}",
                target.host,
                target.port,
                last_error.map_or_else(|| "no address".to_owned(), |e| e.to_string())
            )));
        };
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(&target.path)
            .header(header::HOST, host_header(target))
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::USER_AGENT, USER_AGENT);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| Failure::before_answer(format!("cannot build the request: {e}")))?;
        let status = if target.tls {
            let Some(tls) = &self.tls else {
                return Err(Failure::before_answer(
                    "https is not available: the server found no trusted certificates",
                ));
            };
            let name = rustls::pki_types::ServerName::try_from(target.host.clone())
                .map_err(|_| Failure::before_answer("the host is not a valid TLS server name"))?;
            let stream = tls
                .connect(name, stream)
                .await
                .map_err(|e| Failure::before_answer(format!("TLS handshake failed: {e}")))?;
            send(stream, request).await?
        } else {
            send(stream, request).await?
        };
        if (200..300).contains(&status) {
            Ok(status)
        } else {
            Err(Failure {
                status: Some(status),
                error: if (300..400).contains(&status) {
                    format!("answered {status}; redirects are not followed")
                } else {
                    format!("answered {status}")
                },
            })
        }
    }

    /// The addresses of `target` this server may connect to: all of them with
    /// `allow_private`, the public ones otherwise (an error when there is none).
    async fn resolve(&self, target: &Target) -> Result<Vec<SocketAddr>, Failure> {
        let found: Vec<SocketAddr> = match target.host.parse::<std::net::IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, target.port)],
            Err(_) => tokio::net::lookup_host((target.host.as_str(), target.port))
                .await
                .map_err(|e| {
                    Failure::before_answer(format!("cannot resolve {}: {e}", target.host))
                })?
                .collect(),
        };
        if self.allow_private {
            return Ok(found);
        }
        let public: Vec<SocketAddr> = found
            .iter()
            .copied()
            .filter(|a| is_public(a.ip()))
            .collect();
        if public.is_empty() {
            return Err(Failure::before_answer(format!(
                "refused: {} resolves to a private, loopback or internal address only",
                target.host
            )));
        }
        Ok(public)
    }
}

/// The `Host` header: the host with brackets for IPv6, and a port that is not the default.
fn host_header(target: &Target) -> String {
    let host = if target.host.contains(':') {
        format!("[{}]", target.host)
    } else {
        target.host.clone()
    };
    let default = if target.tls { 443 } else { 80 };
    if target.port == default {
        host
    } else {
        format!("{host}:{}", target.port)
    }
}

/// One request on a fresh HTTP/1.1 connection; the status of the answer. The body of the
/// answer is not read: only the status counts.
async fn send<I>(io: I, request: Request<Full<Bytes>>) -> Result<u16, Failure>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| Failure::before_answer(format!("HTTP handshake failed: {e}")))?;
    let driver = tokio::spawn(connection);
    let result = sender
        .send_request(request)
        .await
        .map(|response| response.status().as_u16())
        .map_err(|e| Failure::before_answer(format!("the request failed: {e}")));
    // The connection is not reused; closing it now frees the receiver too.
    driver.abort();
    result
}

/// TLS with the platform's trust roots and verifier (as the Kubernetes client uses), and
/// the `ring` provider the tree already has.
pub(crate) fn tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    use rustls_platform_verifier::BuilderVerifierExt;
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_platform_verifier()?
    .with_no_client_auth())
}
