//! Every endpoint and error path through the router (`tower::ServiceExt::oneshot`). The
//! Provisioner talks to the shared local control plane; its reconciler is not started here,
//! so stores stay as the API leaves them (see `end_to_end.rs` for the full lifecycle).

mod common;

use anyhow::Result;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use storefactory_core::port::{Quota, StoreRepository};
use storefactory_core::spec::StoreId;
use storefactory_core::store::{EventKind, StoreStatus, Timestamp};

const SEED_BODY: &str = r#"{
    "sample_products": "T-Shirt|599|Cotton t-shirt\nJeans|1299|Denim jeans",
    "storage_size_gi": 2
}"#;

fn seed_body() -> Value {
    serde_json::from_str(SEED_BODY).expect("valid JSON")
}

/// Creates a store with the seed body as the holder of `token`; its id.
async fn seed_store(app: &TestApp, token: &str) -> Result<String> {
    let reply = create_store(&app.router, token, seed_body()).await?;
    Ok(reply.body["id"].as_str().expect("id").to_owned())
}

/// `POST /api/users` with `body` as the holder of `token`.
async fn post_user(app: &TestApp, token: &str, body: Value) -> Result<Reply> {
    send(
        &app.router,
        Method::POST,
        "/api/users",
        Some(token),
        Some(body),
    )
    .await
}

// ---------------------------------------------------------------- health, ready, openapi

#[tokio::test]
async fn health_answers_without_auth() -> Result<()> {
    let app = app_with(config(), false).await?;
    let reply = send(&app.router, Method::GET, "/health", None, None).await?;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["status"], "healthy");
    assert!(
        reply.headers.contains_key("x-request-id"),
        "request id is returned"
    );
    Ok(())
}

#[tokio::test]
async fn ready_reports_database_and_cluster() -> Result<()> {
    let app = app().await?;
    let reply = send(&app.router, Method::GET, "/ready", None, None).await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["status"], "ready");
    assert_eq!(reply.body["cluster"]["ok"], true);
    assert_eq!(reply.body["database"]["ok"], true);
    Ok(())
}

#[tokio::test]
async fn ready_is_503_without_a_cluster() -> Result<()> {
    let app = app_with(config(), false).await?;
    let reply = send(&app.router, Method::GET, "/ready", None, None).await?;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.code(), "not_ready");
    assert_eq!(reply.body["database"]["ok"], true);
    assert_eq!(reply.body["cluster"]["ok"], false);
    Ok(())
}

#[tokio::test]
async fn openapi_document_describes_every_route() -> Result<()> {
    let app = app_with(config(), false).await?;
    let reply = send(&app.router, Method::GET, "/api/openapi.json", None, None).await?;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers[header::CONTENT_TYPE], "application/json");
    assert!(
        reply.body["openapi"]
            .as_str()
            .unwrap_or_default()
            .starts_with("3.")
    );
    let paths = reply.body["paths"].as_object().expect("paths");
    for (path, methods) in [
        ("/health", &["get"][..]),
        ("/ready", &["get"]),
        ("/metrics", &["get"]),
        ("/api/openapi.json", &["get"]),
        ("/api/auth/login", &["post"]),
        ("/api/auth/logout", &["post"]),
        ("/api/users/me", &["get"]),
        ("/api/users", &["get", "post"]),
        ("/api/users/{username}/quota", &["put"]),
        ("/api/users/{username}/disabled", &["put"]),
        ("/api/stores", &["get", "post"]),
        ("/api/stores/{id}", &["get", "delete", "patch"]),
        ("/api/stores/{id}/retry", &["post"]),
        ("/api/stores/{id}/suspend", &["post"]),
        ("/api/stores/{id}/resume", &["post"]),
        ("/api/stores/{id}/events", &["get"]),
        ("/api/stores/{id}/credentials", &["get"]),
        ("/api/stores/{id}/domains", &["get", "post"]),
        ("/api/stores/{id}/domains/{domain}", &["delete"]),
        ("/api/stores/{id}/backups", &["get", "post"]),
        ("/api/stores/{id}/backups/{backup}", &["get", "delete"]),
        ("/internal/backups/{id}", &["put"]),
        ("/api/stores/{id}/restore", &["post"]),
        ("/api/stores/{id}/clone", &["post"]),
        ("/internal/restores/{id}/archive", &["get"]),
        ("/api/webhooks", &["get", "post"]),
        ("/api/webhooks/{id}", &["delete"]),
        ("/api/webhooks/{id}/deliveries", &["get"]),
    ] {
        for method in methods {
            assert!(
                paths[path][method].is_object(),
                "{method} {path} undocumented"
            );
        }
    }
    assert_eq!(paths.len(), 28, "a documented path that does not exist");
    // Every $ref resolves.
    fn refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r.clone()),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&reply.body, &mut all);
    for r in all {
        let pointer = r.trim_start_matches('#');
        assert!(reply.body.pointer(pointer).is_some(), "dangling {r}");
    }
    Ok(())
}

#[tokio::test]
async fn unknown_routes_and_methods_use_the_error_shape() -> Result<()> {
    let app = app_with(config(), false).await?;
    let reply = send(&app.router, Method::GET, "/api/nothing", None, None).await?;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.code(), "not_found");
    let reply = send(&app.router, Method::PATCH, "/api/stores", None, None).await?;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.code(), "method_not_allowed");
    Ok(())
}

// ---------------------------------------------------------------- login and users

#[tokio::test]
async fn login_returns_a_bearer_token_that_works() -> Result<()> {
    let app = app_with(config(), false).await?;
    let reply = post_login(
        &app.router,
        json!({"username": "admin", "password": ADMIN_PASSWORD}),
    )
    .await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["token_type"], "bearer");
    assert_eq!(reply.body["username"], "admin");
    assert_eq!(reply.body["user_id"], "admin");
    assert_eq!(reply.body["role"], "admin");
    // Short-lived by default: a stolen token is good for an hour at most.
    assert_eq!(reply.body["expires_in"], 3600);
    assert_eq!(reply.headers[header::CACHE_CONTROL], "no-store");
    let token = reply.body["access_token"].as_str().expect("token");
    let me = send(&app.router, Method::GET, "/api/users/me", Some(token), None).await?;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["username"], "admin");
    assert_eq!(me.body["usage"]["stores"], 0);
    assert!(me.body["quota"]["max_stores"].is_u64());
    assert!(!me.text.contains("hash"), "{}", me.text);
    Ok(())
}

#[tokio::test]
async fn wrong_password_and_unknown_user_are_the_same_401() -> Result<()> {
    let app = app_with(config(), false).await?;
    let wrong = post_login(
        &app.router,
        json!({"username": "admin", "password": "not-the-password"}),
    )
    .await?;
    let unknown = post_login(
        &app.router,
        json!({"username": "nobody", "password": "not-the-password"}),
    )
    .await?;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.code(), "unauthorized");
    assert_eq!(wrong.text, unknown.text);
    Ok(())
}

// Regression: a token stayed good until it expired, even after the password it was issued
// under was changed, so changing a leaked password did not lock out whoever held a token.
#[tokio::test]
async fn tokens_issued_before_a_password_change_are_401() -> Result<()> {
    let app = app_with(config(), false).await?;
    let old = user_token(&app, "olga", Quota::default()).await?;
    let me = send(&app.router, Method::GET, "/api/users/me", Some(&old), None).await?;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);

    // Most likely within the second the old token was issued in.
    app.db.set_password("olga", "a-new-password-1").await?;
    let refused = send(&app.router, Method::GET, "/api/users/me", Some(&old), None).await?;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.text);
    assert_eq!(refused.code(), "unauthorized");
    assert!(
        refused.text.contains("password changed"),
        "{}",
        refused.text
    );
    let stores = send(&app.router, Method::GET, "/api/stores", Some(&old), None).await?;
    assert_eq!(stores.status, StatusCode::UNAUTHORIZED, "{}", stores.text);

    // The old password is gone; the new one logs in, and its token works at once.
    assert!(login(&app.router, "olga", PASSWORD).await.is_err());
    let new = login(&app.router, "olga", "a-new-password-1").await?;
    let me = send(&app.router, Method::GET, "/api/users/me", Some(&new), None).await?;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    // Other users' tokens are not affected.
    let admin = admin_token(&app).await?;
    let other = send(
        &app.router,
        Method::GET,
        "/api/users/me",
        Some(&admin),
        None,
    )
    .await?;
    assert_eq!(other.status, StatusCode::OK, "{}", other.text);
    Ok(())
}

#[tokio::test]
async fn first_start_without_configured_password_generates_one() -> Result<()> {
    let mut config = config();
    config.admin_password = None;
    let app = app_with(config, false).await?;
    let users = app.db.list_users().await?;
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].username, "admin");
    // No well-known default works.
    for guess in ["admin", "admin123", "password", ""] {
        assert!(app.db.verify_password("admin", guess).await?.is_none());
    }
    // The generated one is in a file next to the database that only its owner can read.
    let file = app._dir.path().join("test.db.admin-password");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file)?.permissions());
    assert_eq!(mode & 0o777, 0o600, "{}", file.display());
    let generated = std::fs::read_to_string(&file)?;
    assert!(
        app.db
            .verify_password("admin", generated.trim())
            .await?
            .is_some()
    );
    // Only the file: nothing else was written next to the database.
    let names: Vec<_> = std::fs::read_dir(app._dir.path())?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains("admin-password"))
        .collect();
    assert_eq!(names, ["test.db.admin-password"]);
    Ok(())
}

#[tokio::test]
async fn admin_creates_lists_and_limits_users() -> Result<()> {
    let app = app_with(config(), false).await?;
    let admin = admin_token(&app).await?;
    let reply = post_user(
        &app,
        &admin,
        json!({"username": "alice", "password": "alice-password",
               "quota": {"max_stores": 2, "max_storage_gib": 8}}),
    )
    .await?;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.body["role"], "user");
    assert_eq!(reply.body["quota"]["max_stores"], 2);

    let dup = post_user(
        &app,
        &admin,
        json!({"username": "alice", "password": "alice-password"}),
    )
    .await?;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    assert_eq!(dup.code(), "user_exists");

    let bad = post_user(
        &app,
        &admin,
        json!({"username": "Bad Name", "password": "alice-password"}),
    )
    .await?;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.code(), "invalid_input");
    let short = post_user(
        &app,
        &admin,
        json!({"username": "bob", "password": "short"}),
    )
    .await?;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);

    let list = send(&app.router, Method::GET, "/api/users", Some(&admin), None).await?;
    assert_eq!(list.status, StatusCode::OK);
    let names: Vec<&str> = list.body["users"]
        .as_array()
        .expect("users")
        .iter()
        .filter_map(|u| u["username"].as_str())
        .collect();
    assert_eq!(names, ["admin", "alice"]);
    assert!(!list.text.contains("password"), "{}", list.text);

    let quota = send(
        &app.router,
        Method::PUT,
        "/api/users/alice/quota",
        Some(&admin),
        Some(json!({"max_stores": 7, "max_storage_gib": 30})),
    )
    .await?;
    assert_eq!(quota.status, StatusCode::OK, "{}", quota.text);
    assert_eq!(quota.body["quota"]["max_stores"], 7);
    let missing = send(
        &app.router,
        Method::PUT,
        "/api/users/nobody/quota",
        Some(&admin),
        Some(json!({"max_stores": 7, "max_storage_gib": 30})),
    )
    .await?;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    Ok(())
}

#[tokio::test]
async fn users_cannot_use_admin_endpoints() -> Result<()> {
    let app = app_with(config(), false).await?;
    let token = user_token(&app, "mallory", Quota::default()).await?;
    let list = send(&app.router, Method::GET, "/api/users", Some(&token), None).await?;
    assert_eq!(list.status, StatusCode::FORBIDDEN);
    assert_eq!(list.code(), "forbidden");
    let create = post_user(
        &app,
        &token,
        json!({"username": "eve", "password": "eve-password", "role": "admin"}),
    )
    .await?;
    assert_eq!(create.status, StatusCode::FORBIDDEN);
    assert!(app.db.get_user("eve").await?.is_none());
    let quota = send(
        &app.router,
        Method::PUT,
        "/api/users/mallory/quota",
        Some(&token),
        Some(json!({"max_stores": 1000, "max_storage_gib": 1000})),
    )
    .await?;
    assert_eq!(quota.status, StatusCode::FORBIDDEN);
    let all = send(
        &app.router,
        Method::GET,
        "/api/stores?all=true",
        Some(&token),
        None,
    )
    .await?;
    assert_eq!(all.status, StatusCode::FORBIDDEN);
    Ok(())
}

// ---------------------------------------------------------------- security

async fn status_with_token(token: &str) -> Result<Reply> {
    let app = app_with(config(), false).await?;
    send(&app.router, Method::GET, "/api/users/me", Some(token), None).await
}

fn claims(exp: Option<u64>) -> Value {
    let mut claims = json!({"sub": "admin", "iat": unix_now(), "iss": "storefactory"});
    if let Some(exp) = exp {
        claims["exp"] = json!(exp);
    }
    claims
}

fn sign(alg: Algorithm, key: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(key)).expect("sign")
}

#[tokio::test]
async fn security_a_valid_token_is_accepted() -> Result<()> {
    // The control for the cases below: the same claims, properly signed, work. The token is
    // made after the app (and its admin user) exist: a token issued in an earlier second
    // than the user's password was set would rightly be refused.
    let app = app_with(config(), false).await?;
    let token = sign(
        Algorithm::HS256,
        TOKEN_KEY.as_bytes(),
        &claims(Some(unix_now() + 600)),
    );
    let reply = send(
        &app.router,
        Method::GET,
        "/api/users/me",
        Some(&token),
        None,
    )
    .await?;
    assert_eq!(reply.status, StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn security_missing_token_is_401() -> Result<()> {
    let app = app_with(config(), false).await?;
    let reply = send(&app.router, Method::GET, "/api/stores", None, None).await?;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.code(), "unauthorized");
    assert_eq!(reply.headers[header::WWW_AUTHENTICATE], "Bearer");
    let request = Request::get("/api/stores")
        .header(header::AUTHORIZATION, "Basic YWRtaW46YWRtaW4=")
        .body(Body::empty())?;
    assert_eq!(
        send_raw(&app.router, request).await?.status,
        StatusCode::UNAUTHORIZED
    );
    Ok(())
}

#[tokio::test]
async fn security_alg_none_is_401() -> Result<()> {
    let header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64url(claims(Some(unix_now() + 600)).to_string().as_bytes());
    for token in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}"),
    ] {
        let reply = status_with_token(&token).await?;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{token}");
    }
    Ok(())
}

#[tokio::test]
async fn security_other_algorithms_are_401_even_with_the_right_key() -> Result<()> {
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let token = sign(alg, TOKEN_KEY.as_bytes(), &claims(Some(unix_now() + 600)));
        let reply = status_with_token(&token).await?;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{alg:?}");
        assert!(reply.text.contains("algorithm"), "{}", reply.text);
    }
    Ok(())
}

#[tokio::test]
async fn security_bad_signature_is_401() -> Result<()> {
    let token = sign(
        Algorithm::HS256,
        b"another-key-that-is-32-bytes-long!!",
        &claims(Some(unix_now() + 600)),
    );
    assert_eq!(
        status_with_token(&token).await?.status,
        StatusCode::UNAUTHORIZED
    );
    // A valid token with its payload swapped for another user's keeps its old signature.
    let good = sign(
        Algorithm::HS256,
        TOKEN_KEY.as_bytes(),
        &claims(Some(unix_now() + 600)),
    );
    let parts: Vec<&str> = good.split('.').collect();
    let forged_payload = b64url(
        json!({"sub": "admin2", "iat": unix_now(), "iss": "storefactory", "exp": unix_now() + 600})
            .to_string()
            .as_bytes(),
    );
    let forged = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
    assert_eq!(
        status_with_token(&forged).await?.status,
        StatusCode::UNAUTHORIZED
    );
    Ok(())
}

#[tokio::test]
async fn security_expired_token_is_401() -> Result<()> {
    let token = sign(
        Algorithm::HS256,
        TOKEN_KEY.as_bytes(),
        &claims(Some(unix_now() - 5)),
    );
    let reply = status_with_token(&token).await?;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.text.contains("expired"), "{}", reply.text);
    Ok(())
}

#[tokio::test]
async fn security_token_without_expiry_is_401() -> Result<()> {
    let token = sign(Algorithm::HS256, TOKEN_KEY.as_bytes(), &claims(None));
    assert_eq!(
        status_with_token(&token).await?.status,
        StatusCode::UNAUTHORIZED
    );
    Ok(())
}

#[tokio::test]
async fn security_garbage_token_is_401() -> Result<()> {
    for token in ["x", "a.b.c", "....", "\u{e9}t\u{e9}"] {
        let reply = status_with_token(token).await;
        // A non-ASCII header cannot even be built by some clients; when it is, it is a 401.
        if let Ok(reply) = reply {
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{token}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn security_generated_token_key_is_kept_across_restarts() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("keys.db");
    let mut config = config();
    config.token_key = None;
    let db = storefactory_sql::Database::open(&path).await?;
    let state = storefactory_http::AppState::new(&config, db, None).await?;
    let token = login(&storefactory_http::router(state), "admin", ADMIN_PASSWORD).await?;
    let key = storefactory_sql::Database::open(&path)
        .await?
        .get_setting(storefactory_http::TOKEN_KEY_SETTING)
        .await?
        .expect("key persisted");
    assert!(key.len() >= 32);
    // A "restarted" server on the same database accepts the token.
    let db = storefactory_sql::Database::open(&path).await?;
    let state = storefactory_http::AppState::new(&config, db, None).await?;
    let reply = send(
        &storefactory_http::router(state),
        Method::GET,
        "/api/users/me",
        Some(&token),
        None,
    )
    .await?;
    assert_eq!(reply.status, StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn security_short_configured_token_key_is_refused() -> Result<()> {
    let mut config = config();
    config.token_key = Some("too-short".to_owned());
    let Err(error) = app_with(config, false).await else {
        anyhow::bail!("a 9-byte key was accepted");
    };
    assert!(error.to_string().contains("at least 32"), "{error}");
    Ok(())
}

#[tokio::test]
async fn security_repeated_failed_logins_are_429() -> Result<()> {
    let app = app_with(config(), false).await?;
    let attempt = |password: &'static str| {
        let router = app.router.clone();
        async move { post_login(&router, json!({"username": "admin", "password": password})).await }
    };
    for _ in 0..3 {
        assert_eq!(
            attempt("wrong-password").await?.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let refused = attempt("wrong-password").await?;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.code(), "too_many_attempts");
    assert!(refused.headers.contains_key(header::RETRY_AFTER));
    // Even the right password waits out the window.
    assert_eq!(
        attempt(ADMIN_PASSWORD).await?.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another username is not affected.
    let other = post_login(&app.router, json!({"username": "someone", "password": "x"})).await?;
    assert_eq!(other.status, StatusCode::UNAUTHORIZED);
    Ok(())
}

async fn login_from(router: &axum::Router, forwarded_for: &str, password: &str) -> Result<Reply> {
    let request = Request::builder()
        .method(Method::POST)
        .uri("/api/auth/login")
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-forwarded-for", forwarded_for)
        .body(Body::from(
            json!({"username": "admin", "password": password}).to_string(),
        ))?;
    send_raw(router, request).await
}

// Regression: behind a trusted proxy the leftmost X-Forwarded-For entry was taken as the
// client, and the client writes that one, so a fresh made-up entry per guess got a fresh
// budget of failed logins.
#[tokio::test]
async fn security_spoofed_forwarded_for_entries_do_not_reset_the_login_budget() -> Result<()> {
    let mut config = config();
    config.trust_forwarded_for = true;
    let app = app_with(config, false).await?;
    // The proxy appends the address it saw (203.0.113.7) to whatever the client sent.
    for i in 0..3 {
        let reply = login_from(&app.router, &format!("10.0.0.{i}, 203.0.113.7"), "wrong").await?;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);
    }
    let refused = login_from(&app.router, "10.0.0.99, 203.0.113.7", "wrong").await?;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.text
    );
    // A client the proxy saw at another address has its own budget.
    let other = login_from(&app.router, "10.0.0.1, 198.51.100.2", "wrong").await?;
    assert_eq!(other.status, StatusCode::UNAUTHORIZED, "{}", other.text);
    // The trail records the address the proxy saw, not the spoofed one.
    let entries = app
        .db
        .audit_log(&storefactory_sql::AuditFilter {
            action: Some("login.failed".to_owned()),
            ..Default::default()
        })
        .await?;
    assert!(!entries.is_empty());
    for entry in entries {
        let addr = entry.client_addr.map(|a| a.to_string());
        assert!(
            matches!(addr.as_deref(), Some("203.0.113.7" | "198.51.100.2")),
            "{addr:?}"
        );
    }
    Ok(())
}

// Regression: the throttle was consulted before the slow password check and counted the
// failure only after it, so parallel guesses all passed the check while the count was
// still zero.
#[tokio::test]
async fn security_parallel_wrong_logins_get_no_more_password_checks_than_allowed() -> Result<()> {
    let app = app_with(config(), false).await?;
    let guesses = (0..12).map(|i| {
        let router = app.router.clone();
        async move {
            post_login(
                &router,
                json!({"username": "admin", "password": format!("guess-{i}")}),
            )
            .await
        }
    });
    let replies = futures::future::try_join_all(guesses).await?;
    let checked = replies
        .iter()
        .filter(|r| r.status == StatusCode::UNAUTHORIZED)
        .count();
    let throttled = replies
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(checked, 3, "the configured 3 attempts get a password check");
    assert_eq!(throttled, 9, "the rest are refused without one");
    Ok(())
}

#[tokio::test]
async fn security_body_over_the_limit_is_413() -> Result<()> {
    let mut config = config();
    config.max_body_bytes = 4096;
    let app = app_with(config, false).await?;
    let admin = admin_token(&app).await?;
    let big = json!({"sample_products": "P|1|".to_owned() + &"x".repeat(5000)});
    let reply = create_store(&app.router, &admin, big).await?;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        reply.text
    );
    assert_eq!(reply.code(), "payload_too_large");
    Ok(())
}

#[tokio::test]
async fn security_unknown_fields_are_422() -> Result<()> {
    let app = app_with(config(), false).await?;
    let admin = admin_token(&app).await?;
    let reply = create_store(
        &app.router,
        &admin,
        json!({"storage_size_gi": 2, "owner": "someone-else"}),
    )
    .await?;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.text
    );
    assert_eq!(reply.code(), "invalid_input");
    assert!(reply.text.contains("owner"), "{}", reply.text);
    let login = post_login(
        &app.router,
        json!({"username": "admin", "password": ADMIN_PASSWORD, "role": "admin"}),
    )
    .await?;
    assert_eq!(login.status, StatusCode::UNPROCESSABLE_ENTITY);
    Ok(())
}

#[tokio::test]
async fn security_other_users_stores_are_404() -> Result<()> {
    let app = app().await?;
    let alice = user_token(&app, "alice", Quota::default()).await?;
    let bob = user_token(&app, "bob", Quota::default()).await?;
    let store = create_store(&app.router, &alice, seed_body()).await?;
    assert_eq!(store.status, StatusCode::CREATED, "{}", store.text);
    let id = store.body["id"].as_str().expect("id").to_owned();
    let missing = StoreId::generate();
    for (method, suffix) in [
        (Method::GET, ""),
        (Method::DELETE, ""),
        (Method::POST, "/retry"),
        (Method::POST, "/suspend"),
        (Method::POST, "/resume"),
        (Method::GET, "/events"),
        (Method::GET, "/credentials"),
    ] {
        let theirs = send(
            &app.router,
            method.clone(),
            &format!("/api/stores/{id}{suffix}"),
            Some(&bob),
            None,
        )
        .await?;
        let absent = send(
            &app.router,
            method.clone(),
            &format!("/api/stores/{missing}{suffix}"),
            Some(&bob),
            None,
        )
        .await?;
        assert_eq!(
            theirs.status,
            StatusCode::NOT_FOUND,
            "{method} {suffix}: {}",
            theirs.text
        );
        assert_eq!(
            theirs.text, absent.text,
            "{method} {suffix} tells them apart"
        );
    }
    let list = send(&app.router, Method::GET, "/api/stores", Some(&bob), None).await?;
    assert_eq!(list.body["stores"], json!([]));
    // Alice's store is untouched.
    let record = app.db.get_store(&StoreId::new(id)?).await?.expect("store");
    assert_eq!(record.status, StoreStatus::Initialized);
    Ok(())
}

#[tokio::test]
async fn security_no_secret_in_store_responses() -> Result<()> {
    let app = app().await?;
    let admin = admin_token(&app).await?;
    let secret = "my-very-own-wp-password";
    let mut body = seed_body();
    body["admin_password"] = json!(secret);
    let created = create_store(&app.router, &admin, body).await?;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.body["id"].as_str().expect("id");
    let list = send(&app.router, Method::GET, "/api/stores", Some(&admin), None).await?;
    let one = send(
        &app.router,
        Method::GET,
        &format!("/api/stores/{id}"),
        Some(&admin),
        None,
    )
    .await?;
    // The answer to the create tells the password, as the seed's did, and is not cached;
    // nothing else does.
    assert_eq!(created.body["admin_password"], secret);
    assert_eq!(created.headers[header::CACHE_CONTROL], "no-store");
    for text in [&list.text, &one.text] {
        assert!(!text.contains(secret), "{text}");
        assert!(!text.to_lowercase().contains("password"), "{text}");
    }
    let record = app.db.get_store(&StoreId::new(id)?).await?.expect("store");
    assert!(!serde_json::to_string(&record)?.contains(secret));
    Ok(())
}

// ---------------------------------------------------------------- stores

#[tokio::test]
async fn create_store_with_the_seed_body() -> Result<()> {
    let app = app().await?;
    let admin = admin_token(&app).await?;
    let started = std::time::Instant::now();
    let reply = create_store(&app.router, &admin, seed_body()).await?;
    let took = started.elapsed();
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let id = reply.body["id"].as_str().expect("id");
    assert_eq!(reply.headers[header::LOCATION], format!("/api/stores/{id}"));
    assert_eq!(reply.body["status"], "initialized");
    assert_eq!(reply.body["owner"], "admin");
    assert_eq!(reply.body["name"], id);
    assert_eq!(
        reply.body["url"],
        format!("http://store-{id}.storefactory.local/")
    );
    assert_eq!(
        reply.body["admin_url"],
        format!("http://store-{id}.storefactory.local/wp-admin/")
    );
    assert_eq!(
        reply.body["storage_gib"], 3,
        "2 GiB WordPress + 1 GiB MySQL"
    );
    assert!(reply.body["created_at"].as_i64().unwrap_or_default() > 0);
    assert!(reply.body["reason"].is_null());
    assert!(
        took < std::time::Duration::from_millis(500),
        "create took {took:?}"
    );

    let record = app
        .db
        .get_store(&StoreId::new(id)?)
        .await?
        .expect("recorded");
    assert_eq!(record.spec.products.len(), 2);
    assert_eq!(record.spec.products[1].name, "Jeans");
    assert_eq!(record.spec.wordpress.storage.as_str(), "2Gi");

    let list = send(&app.router, Method::GET, "/api/stores", Some(&admin), None).await?;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body["stores"][0]["id"], id);
    let one = send(
        &app.router,
        Method::GET,
        &format!("/api/stores/{id}"),
        Some(&admin),
        None,
    )
    .await?;
    assert_eq!(one.status, StatusCode::OK);
    for (key, value) in reply.body.as_object().expect("an object") {
        if key != "admin_password" {
            assert_eq!(&one.body[key], value, "{key}");
        }
    }
    assert_eq!(one.body["products"][1]["name"], "Jeans");
    assert!(one.body.get("admin_password").is_none());
    Ok(())
}

#[tokio::test]
async fn create_store_accepts_json_products_a_name_and_configured_publishing() -> Result<()> {
    let mut config = config();
    config.store_domain = "shops.example.com".to_owned();
    config.tls_cluster_issuer = Some("letsencrypt".to_owned());
    config.ingress_class = Some("nginx".to_owned());
    config.storage_class = Some("fast".to_owned());
    let app = app_with(config, true).await?;
    let admin = admin_token(&app).await?;
    let reply = create_store(
        &app.router,
        &admin,
        json!({"name": "Hat Shop", "storage_size_gi": 5,
               "sample_products": [{"name": "Hat", "price": 10, "description": "Warm"}]}),
    )
    .await?;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let id = reply.body["id"].as_str().expect("id");
    assert_eq!(reply.body["name"], "Hat Shop");
    assert_eq!(
        reply.body["url"],
        format!("https://store-{id}.shops.example.com/")
    );
    assert_eq!(reply.body["storage_gib"], 6);
    let record = app
        .db
        .get_store(&StoreId::new(id)?)
        .await?
        .expect("recorded");
    assert_eq!(record.spec.site_title, "Hat Shop");
    assert_eq!(record.spec.products[0].name, "Hat");
    assert_eq!(record.spec.storage_class.as_deref(), Some("fast"));
    assert_eq!(record.spec.ingress.class.as_deref(), Some("nginx"));
    // The same list as text works too.
    let text = create_store(
        &app.router,
        &admin,
        json!({"sample_products": r#"[{"name": "Mug", "price": "4.50"}]"#}),
    )
    .await?;
    assert_eq!(text.status, StatusCode::CREATED, "{}", text.text);
    Ok(())
}

#[tokio::test]
async fn create_store_rejects_bad_input_with_422_naming_the_field() -> Result<()> {
    let app = app().await?;
    let admin = admin_token(&app).await?;
    for (body, field) in [
        (
            json!({"sample_products": "Ok|1|fine\nBroken line"}),
            "sample_products line 2",
        ),
        (
            json!({"sample_products": "Neg|-5|x"}),
            "sample_products line 1",
        ),
        (json!({"sample_products": 42}), "sample_products"),
        (json!({"storage_size_gi": 0}), "storage_size_gi"),
        (json!({"storage_size_gi": 100000}), "storage_size_gi"),
        (json!({"admin_password": "short"}), "admin_password"),
        (json!({"name": "x".repeat(101)}), "name"),
        (json!({"name": "bad\u{7}name"}), "site_title"),
    ] {
        let reply = create_store(&app.router, &admin, body.clone()).await?;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            reply.text
        );
        assert_eq!(reply.code(), "invalid_input");
        let message = reply.message();
        assert!(message.starts_with(field), "{body}: {message}");
        let named = reply.body["field"].as_str().unwrap_or_default();
        assert!(
            field.starts_with(named) && !named.is_empty(),
            "{body}: {}",
            reply.text
        );
    }
    // Wrong types are 422 too, not 500.
    let reply = create_store(&app.router, &admin, json!({"storage_size_gi": "two"})).await?;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let reply = create_store(&app.router, &admin, json!({"storage_size_gi": -1})).await?;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(app.db.list_stores(&Default::default()).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn malformed_json_is_400_and_a_wrong_content_type_is_415() -> Result<()> {
    let app = app_with(config(), false).await?;
    let admin = admin_token(&app).await?;
    let request = Request::post("/api/stores")
        .header(header::AUTHORIZATION, format!("Bearer {admin}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"storage_size_gi\": "))?;
    let reply = send_raw(&app.router, request).await?;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.code(), "invalid_json");
    let request = Request::post("/api/stores")
        .header(header::AUTHORIZATION, format!("Bearer {admin}"))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("{}"))?;
    let reply = send_raw(&app.router, request).await?;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(reply.code(), "unsupported_media_type");
    let reply = send(
        &app.router,
        Method::GET,
        "/api/stores?colour=red",
        Some(&admin),
        None,
    )
    .await?;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.code(), "invalid_query");
    Ok(())
}

#[tokio::test]
async fn quota_exceeded_is_403_and_nothing_is_recorded() -> Result<()> {
    let app = app().await?;
    let token = user_token(
        &app,
        "carol",
        Quota {
            max_stores: 1,
            max_storage_gib: 20,
        },
    )
    .await?;
    let first = create_store(&app.router, &token, seed_body()).await?;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let second = create_store(&app.router, &token, seed_body()).await?;
    assert_eq!(second.status, StatusCode::FORBIDDEN, "{}", second.text);
    assert_eq!(second.code(), "quota_exceeded");
    let big = user_token(
        &app,
        "dave",
        Quota {
            max_stores: 5,
            max_storage_gib: 4,
        },
    )
    .await?;
    let reply = create_store(&app.router, &big, json!({"storage_size_gi": 10})).await?;
    assert_eq!(reply.code(), "quota_exceeded");
    let me = send(
        &app.router,
        Method::GET,
        "/api/users/me",
        Some(&token),
        None,
    )
    .await?;
    assert_eq!(me.body["usage"]["stores"], 1);
    assert_eq!(me.body["usage"]["storage_gib"], 3);
    Ok(())
}

#[tokio::test]
async fn store_operations_without_a_cluster_are_503_but_reads_work() -> Result<()> {
    let app = app_with(config(), false).await?;
    let admin = admin_token(&app).await?;
    let reply = create_store(&app.router, &admin, seed_body()).await?;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.code(), "cluster_unavailable");
    let list = send(&app.router, Method::GET, "/api/stores", Some(&admin), None).await?;
    assert_eq!(list.status, StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn delete_answers_202_deleting_and_is_safe_to_repeat() -> Result<()> {
    let app = app().await?;
    let admin = admin_token(&app).await?;
    let id = seed_store(&app, &admin).await?;
    for _ in 0..2 {
        let reply = send(
            &app.router,
            Method::DELETE,
            &format!("/api/stores/{id}"),
            Some(&admin),
            None,
        )
        .await?;
        // 200 with `success` for the seed's clients; `deleting` says it goes on in the
        // background.
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(reply.body["success"], true);
        assert_eq!(reply.body["status"], "deleting");
    }
    let bad = send(
        &app.router,
        Method::DELETE,
        "/api/stores/NOT_AN_ID",
        Some(&admin),
        None,
    )
    .await?;
    assert_eq!(bad.status, StatusCode::NOT_FOUND);
    assert_eq!(bad.code(), "not_found");
    Ok(())
}

#[tokio::test]
async fn retry_only_failed_stores() -> Result<()> {
    let app = app().await?;
    let admin = admin_token(&app).await?;
    let id = seed_store(&app, &admin).await?;
    let path = format!("/api/stores/{id}/retry");
    let reply = send(&app.router, Method::POST, &path, Some(&admin), None).await?;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text);
    assert_eq!(reply.code(), "invalid_state");
    app.db
        .set_status(
            &StoreId::new(id.clone())?,
            StoreStatus::Failed,
            Some("seeding failed"),
        )
        .await?;
    let failed = send(
        &app.router,
        Method::GET,
        &format!("/api/stores/{id}"),
        Some(&admin),
        None,
    )
    .await?;
    assert_eq!(failed.body["reason"], "seeding failed");
    let reply = send(&app.router, Method::POST, &path, Some(&admin), None).await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["status"], "provisioning");
    Ok(())
}

#[tokio::test]
async fn suspend_only_ready_stores_and_resume_only_suspended_ones() -> Result<()> {
    let app = app().await?;
    let admin = admin_token(&app).await?;
    let id = seed_store(&app, &admin).await?;
    let store_id = StoreId::new(id.clone())?;
    let suspend = format!("/api/stores/{id}/suspend");
    let resume = format!("/api/stores/{id}/resume");
    let audited = |app: &TestApp| {
        let db = app.db.clone();
        let id = id.clone();
        async move {
            let entries = db
                .audit_log(&storefactory_sql::AuditFilter {
                    target: Some(id.clone()),
                    ..Default::default()
                })
                .await?;
            anyhow::Ok(
                entries
                    .into_iter()
                    .map(|e| e.action)
                    .filter(|a| a.starts_with("store.suspend") || a.starts_with("store.resume"))
                    .collect::<Vec<_>>(),
            )
        }
    };

    // Not ready yet: refused, saying why, and nothing changes.
    let before = app.db.get_store(&store_id).await?.expect("store");
    let reply = send(&app.router, Method::POST, &suspend, Some(&admin), None).await?;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text);
    assert_eq!(reply.code(), "invalid_state");
    assert!(
        reply.message().contains("only ready stores"),
        "{}",
        reply.text
    );
    let reply = send(&app.router, Method::POST, &resume, Some(&admin), None).await?;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text);
    assert!(
        reply.message().contains("only suspended stores"),
        "{}",
        reply.text
    );
    assert_eq!(app.db.get_store(&store_id).await?.expect("store"), before);
    assert_eq!(audited(&app).await?, Vec::<String>::new());

    for status in [StoreStatus::Provisioning, StoreStatus::Ready] {
        app.db.set_status(&store_id, status, None).await?;
    }
    // A ready store is not resumed.
    let reply = send(&app.router, Method::POST, &resume, Some(&admin), None).await?;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text);
    let reply = send(&app.router, Method::POST, &suspend, Some(&admin), None).await?;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    assert_eq!(reply.body["status"], "suspending");
    assert_eq!(reply.body["id"], id.as_str());
    // Suspending twice is refused; a suspend in progress may be taken back.
    let reply = send(&app.router, Method::POST, &suspend, Some(&admin), None).await?;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text);
    let reply = send(&app.router, Method::POST, &resume, Some(&admin), None).await?;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    assert_eq!(reply.body["status"], "resuming");
    let shown = send(
        &app.router,
        Method::GET,
        &format!("/api/stores/{id}"),
        Some(&admin),
        None,
    )
    .await?;
    assert_eq!(shown.body["status"], "resuming");
    assert_eq!(
        audited(&app).await?.len(),
        2,
        "each accepted request is audited"
    );
    Ok(())
}

/// Sends one HTTP/1.1 request with `host` to the server at `addr`; the status line, the
/// headers (lowercase) and the body.
async fn raw_get(
    addr: std::net::SocketAddr,
    host: &str,
    path: &str,
) -> Result<(String, String, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await?;
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    Ok((
        status.to_owned(),
        headers.to_ascii_lowercase(),
        body.to_owned(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_stores_host_answers_that_it_is_paused_over_real_http() -> Result<()> {
    use storefactory_core::spec::StoreSpec;
    use storefactory_core::store::StoreRecord;
    let dir = tempfile::tempdir()?;
    let mut config = config();
    config.listen = "127.0.0.1:0".parse()?;
    config.database = dir.path().join("paused.db");
    // No cluster: nothing reconciles the records this test writes.
    config.kubeconfig = Some(dir.path().join("no-kubeconfig"));
    let server = storefactory_http::Server::bind(config).await?;
    let addr = server.local_addr();
    let db = server.state().db().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));

    let store = |id: &str| {
        let id = StoreId::new(id).expect("id");
        let host = format!("store-{id}.storefactory.local");
        StoreRecord::new(StoreSpec::new(id, "admin", host), "Shop", "woocommerce")
    };
    let (paused, running_store) = (store("paused1"), store("open1"));
    // Made by the command line with a store domain of its own.
    let elsewhere = StoreRecord::new(
        StoreSpec::new(
            StoreId::new("cli1")?,
            "admin",
            "store-cli1.shops.example.com",
        ),
        "Shop",
        "woocommerce",
    );
    for record in [&paused, &running_store, &elsewhere] {
        db.insert_store(record).await?;
        for status in [StoreStatus::Provisioning, StoreStatus::Ready] {
            db.set_status(&record.id, status, None).await?;
        }
    }
    for status in [StoreStatus::Suspending, StoreStatus::Suspended] {
        db.set_status(&paused.id, status, None).await?;
        db.set_status(&elsewhere.id, status, None).await?;
    }
    let (status, _, body) = raw_get(addr, "store-cli1.shops.example.com", "/").await?;
    assert!(
        status.contains(" 503 ") && body.contains("This store is paused"),
        "{status}"
    );

    for host in [
        "store-paused1.storefactory.local",
        "store-paused1.storefactory.local:8080",
        "STORE-PAUSED1.storefactory.local.",
    ] {
        for path in ["/", "/wp-admin/", "/api/stores"] {
            let (status, headers, body) = raw_get(addr, host, path).await?;
            assert!(status.contains(" 503 "), "{host}{path}: {status}");
            assert!(headers.contains("retry-after: 300"), "{headers}");
            assert!(headers.contains("content-type: text/html"), "{headers}");
            assert!(body.contains("This store is paused"), "{body}");
        }
    }
    // Any other host, a ready store's included, reaches the API as before.
    for host in [
        "127.0.0.1",
        "store-open1.storefactory.local",
        "store-paused1.elsewhere.test",
    ] {
        let (status, _, body) = raw_get(addr, host, "/health").await?;
        assert!(status.contains(" 200 "), "{host}: {status}");
        assert!(body.contains("healthy"), "{body}");
    }
    // Resuming: still paused until ready; then the host is served again.
    db.set_status(&paused.id, StoreStatus::Resuming, None)
        .await?;
    let (status, _, _) = raw_get(addr, "store-paused1.storefactory.local", "/health").await?;
    assert!(status.contains(" 503 "), "{status}");
    db.set_status(&paused.id, StoreStatus::Ready, None).await?;
    let (status, _, _) = raw_get(addr, "store-paused1.storefactory.local", "/health").await?;
    assert!(status.contains(" 200 "), "{status}");

    let _ = stop.send(());
    running.await??;
    Ok(())
}

#[tokio::test]
async fn credentials_are_for_the_owner_only() -> Result<()> {
    let app = app().await?;
    let admin = admin_token(&app).await?;
    let erin = user_token(&app, "erin", Quota::default()).await?;
    let id = seed_store(&app, &erin).await?;
    let path = format!("/api/stores/{id}/credentials");
    // An admin sees the store but not its password.
    let reply = send(&app.router, Method::GET, &path, Some(&admin), None).await?;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    // Before provisioning wrote the Secret there is nothing to show yet.
    let reply = send(&app.router, Method::GET, &path, Some(&erin), None).await?;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text);
    assert_eq!(reply.code(), "invalid_state");
    Ok(())
}

#[tokio::test]
async fn admins_list_everyones_stores_on_request() -> Result<()> {
    let app = app().await?;
    let admin = admin_token(&app).await?;
    let frank = user_token(&app, "frank", Quota::default()).await?;
    let id = create_store(&app.router, &frank, seed_body()).await?.body["id"].clone();
    let own = send(&app.router, Method::GET, "/api/stores", Some(&admin), None).await?;
    assert_eq!(own.body["stores"], json!([]));
    let all = send(
        &app.router,
        Method::GET,
        "/api/stores?all=true",
        Some(&admin),
        None,
    )
    .await?;
    assert_eq!(all.body["stores"][0]["id"], id);
    assert_eq!(all.body["stores"][0]["owner"], "frank");
    Ok(())
}

#[tokio::test]
async fn events_replay_history_and_end_when_the_store_settles() -> Result<()> {
    let app = app().await?;
    let admin = admin_token(&app).await?;
    let id = seed_store(&app, &admin).await?;
    let store = StoreId::new(id.clone())?;
    // The way the Provisioner takes it: the repository refuses to skip lifecycle states.
    app.db
        .set_status(&store, StoreStatus::Provisioning, None)
        .await?;
    app.db
        .append_event(
            &store,
            Timestamp::now(),
            &EventKind::Step {
                step: "apply".into(),
                message: "applying".into(),
            },
        )
        .await?;
    app.db.set_status(&store, StoreStatus::Ready, None).await?;
    app.db
        .append_event(
            &store,
            Timestamp::now(),
            &EventKind::Status {
                status: StoreStatus::Ready,
                reason: None,
            },
        )
        .await?;
    let path = format!("/api/stores/{id}/events");
    // The stream ends by itself (send_raw would time out otherwise).
    let reply = send(&app.router, Method::GET, &path, Some(&admin), None).await?;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers[header::CONTENT_TYPE], "text/event-stream");
    let events: Vec<Value> = reply
        .text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or_default(),
                e["status"]
                    .as_str()
                    .or(e["step"].as_str())
                    .unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("status", "initialized"),
            ("step", "apply"),
            ("status", "ready")
        ]
    );
    assert!(reply.text.contains("id: 3"), "{}", reply.text);

    // Resuming after the last event sends nothing and ends.
    let request = Request::get(&path)
        .header(header::AUTHORIZATION, format!("Bearer {admin}"))
        .header("last-event-id", "3")
        .body(Body::empty())?;
    let reply = send_raw(&app.router, request).await?;
    assert!(!reply.text.contains("data:"), "{}", reply.text);
    Ok(())
}

#[tokio::test]
async fn events_follow_live_changes() -> Result<()> {
    let app = app().await?;
    let admin = admin_token(&app).await?;
    let id = seed_store(&app, &admin).await?;
    let request = Request::get(format!("/api/stores/{id}/events"))
        .header(header::AUTHORIZATION, format!("Bearer {admin}"))
        .body(Body::empty())?;
    let reply = tower::ServiceExt::oneshot(app.router.clone(), request).await?;
    assert_eq!(reply.status(), StatusCode::OK);
    let mut body = reply.into_body();
    let mut seen = String::new();
    while !seen.contains("initialized") {
        let frame = next_frame(&mut body).await?.expect("frame")?;
        if let Ok(data) = frame.into_data() {
            seen.push_str(&String::from_utf8_lossy(&data));
        }
    }
    // A live change, made through the Provisioner, arrives on the open stream.
    let provisioner = app.state.provisioner().expect("cluster");
    provisioner.delete(&StoreId::new(id)?).await?;
    while !seen.contains("deleting") {
        let frame = next_frame(&mut body).await?.expect("frame")?;
        if let Ok(data) = frame.into_data() {
            seen.push_str(&String::from_utf8_lossy(&data));
        }
    }
    // Shutting down ends the stream rather than holding the server open.
    app.state.begin_shutdown();
    loop {
        match next_frame(&mut body).await? {
            None => break,
            Some(frame) => drop(frame?),
        }
    }
    Ok(())
}

async fn next_frame(
    body: &mut Body,
) -> Result<
    Option<Result<hyper::body::Frame<axum::body::Bytes>, axum::Error>>,
    tokio::time::error::Elapsed,
> {
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        http_body_util::BodyExt::frame(body),
    )
    .await
}

#[tokio::test]
async fn dashboard_is_served_with_a_strict_content_security_policy() -> Result<()> {
    let app = app_with(config(), false).await?;
    let page = send(&app.router, Method::GET, "/", None, None).await?;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.headers[header::CONTENT_TYPE]
            .to_str()?
            .starts_with("text/html")
    );
    let csp = page.headers[header::CONTENT_SECURITY_POLICY].to_str()?;
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("script-src 'self' 'unsafe"),
        "{csp}"
    );
    assert!(page.text.contains(r#"<script src="/app.js">"#));
    let script = send(&app.router, Method::GET, "/app.js", None, None).await?;
    assert_eq!(script.status, StatusCode::OK);
    assert!(script.text.contains("/api/stores"));
    // User data reaches the page through textContent only.
    assert!(!script.text.contains("innerHTML"));
    Ok(())
}

#[tokio::test]
async fn cors_allows_only_configured_origins() -> Result<()> {
    let mut config = config();
    config.cors_origins = vec!["https://shops.example.com".to_owned()];
    let app = app_with(config, false).await?;
    let preflight = |origin: &'static str| {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/api/stores")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                "authorization,content-type",
            )
            .body(Body::empty())
    };
    let allowed = send_raw(&app.router, preflight("https://shops.example.com")?).await?;
    assert_eq!(
        allowed.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://shops.example.com"
    );
    let other = send_raw(&app.router, preflight("https://evil.example.net")?).await?;
    assert!(
        !other
            .headers
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );

    let mut config = common::config();
    config.cors_origins = vec!["not an origin".to_owned()];
    assert!(app_with(config, false).await.is_err());
    Ok(())
}
