//! Helpers shared by the HTTP tests.
#![allow(dead_code)]

pub mod openapi;

use std::time::Duration;

use anyhow::Result;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use storefactory_http::{AppState, ServerConfig, router};
use storefactory_sql::{Database, Quota, Role};
use tower::ServiceExt;

pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";
pub const TOKEN_KEY: &str = "0123456789abcdef0123456789abcdef-test-key";
pub const PASSWORD: &str = "user-password-1";

pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    pub db: Database,
    pub _dir: tempfile::TempDir,
}

pub fn config() -> ServerConfig {
    let mut config = ServerConfig::default();
    config.admin_password = Some(ADMIN_PASSWORD.to_owned());
    config.token_key = Some(TOKEN_KEY.to_owned());
    config.max_failed_logins = 3;
    // The tests of a binary share one control plane, each with a database of its own: each
    // server reconciles its own stores, without electing a leader among them.
    config.provisioner.leader = None;
    config
}

/// A router over a fresh database; with a client of the shared test control plane when
/// `cluster` is set. The reconciler is not started.
pub async fn app_with(config: ServerConfig, cluster: bool) -> Result<TestApp> {
    let dir = tempfile::tempdir()?;
    let db = Database::open(dir.path().join("test.db")).await?;
    let client = if cluster {
        Some(storefactory_testkit::shared().await?.client().await?)
    } else {
        None
    };
    let state = AppState::new(&config, db.clone(), client).await?;
    Ok(TestApp {
        router: router(state.clone()),
        state,
        db,
        _dir: dir,
    })
}

pub async fn app() -> Result<TestApp> {
    app_with(config(), true).await
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// The `code` of an error reply, after checking the error shape: `error` a string
    /// (what the seed's clients show), `code` beside it.
    pub fn code(&self) -> &str {
        assert!(
            self.body["error"].as_str().is_some_and(|m| !m.is_empty()),
            "not the error shape: {}",
            self.text
        );
        self.body["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code: {}", self.text))
    }

    /// The `error` message of an error reply.
    pub fn message(&self) -> &str {
        self.body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error message: {}", self.text))
    }
}

/// Sends `request` through the router. A JSON answer of an operation the OpenAPI document
/// describes is checked against it.
pub async fn send_raw(router: &Router, request: Request<Body>) -> Result<Reply> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = router.clone().oneshot(request).await?;
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = tokio::time::timeout(Duration::from_secs(30), response.into_body().collect())
        .await??
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json && path != "/api/openapi.json" {
        openapi::check_answer(method.as_str(), &path, status.as_u16(), &body);
    }
    Ok(Reply {
        status,
        headers,
        body,
        text,
    })
}

pub async fn send(
    router: &Router,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<Reply> {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = match body {
        Some(body) => request
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))?,
        None => request.body(Body::empty())?,
    };
    send_raw(router, request).await
}

/// `POST /api/auth/login` with `body`, whatever it answers.
pub async fn post_login(router: &Router, body: Value) -> Result<Reply> {
    send(router, Method::POST, "/api/auth/login", None, Some(body)).await
}

pub async fn login(router: &Router, username: &str, password: &str) -> Result<String> {
    let reply = post_login(
        router,
        serde_json::json!({ "username": username, "password": password }),
    )
    .await?;
    anyhow::ensure!(
        reply.status == StatusCode::OK,
        "login failed: {}",
        reply.text
    );
    Ok(reply.body["access_token"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no token"))?
        .to_owned())
}

pub async fn admin_token(app: &TestApp) -> Result<String> {
    login(&app.router, "admin", ADMIN_PASSWORD).await
}

/// Creates a user with `quota` and logs in as them.
pub async fn user_token(app: &TestApp, name: &str, quota: Quota) -> Result<String> {
    app.db
        .create_user(name, PASSWORD, Role::User, quota)
        .await?;
    login(&app.router, name, PASSWORD).await
}

pub async fn create_store(router: &Router, token: &str, body: Value) -> Result<Reply> {
    send(router, Method::POST, "/api/stores", Some(token), Some(body)).await
}

/// base64url without padding, for hand-made tokens.
pub fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}
