//! Attacks and faults of issue 12 (exhaustion, secrets and tokens), each performed against
//! the router over a real SQLite file, and where Kubernetes is involved against a real
//! (local or deliberately hung) apiserver. Each test asserts what a user would notice.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use common::*;
use http_body_util::BodyExt;
use serde_json::json;
use storefactory_core::port::StoreRepository;
use storefactory_core::spec::{StoreId, StoreSpec};
use storefactory_core::store::{EventKind, StoreRecord, StoreStatus, Timestamp};
use storefactory_http::{AppState, router};
use storefactory_sql::{Database, Quota, Role};

fn quota(max_stores: u32) -> Quota {
    Quota {
        max_stores,
        max_storage_gib: 100,
    }
}

async fn me(app: &TestApp, token: &str) -> Result<Reply> {
    send(&app.router, Method::GET, "/api/users/me", Some(token), None).await
}

/// A store record of `owner` put straight into the database, with an `initialized` event.
async fn stored_store(db: &Database, id: &str, owner: &str) -> Result<StoreId> {
    let id = StoreId::new(id)?;
    let spec = StoreSpec::new(id.clone(), owner, format!("{id}.shop.example"));
    db.insert_store(&StoreRecord::new(spec, "Shop", "woocommerce"))
        .await?;
    db.append_event(
        &id,
        Timestamp::now(),
        &EventKind::Status {
            status: StoreStatus::Initialized,
            reason: None,
        },
    )
    .await?;
    Ok(id)
}

// ------------------------------------------------------------------------ tokens

#[tokio::test]
async fn logout_voids_every_token_of_the_user_on_every_device() -> Result<()> {
    let app = app_with(config(), false).await?;
    let phone = user_token(&app, "lou", quota(1)).await?;
    let laptop = login(&app.router, "lou", PASSWORD).await?;
    assert_eq!(me(&app, &phone).await?.status, StatusCode::OK);

    let out = send(
        &app.router,
        Method::POST,
        "/api/auth/logout",
        Some(&laptop),
        None,
    )
    .await?;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.text);
    for token in [&phone, &laptop] {
        let reply = me(&app, token).await?;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);
        assert!(reply.message().contains("revoked"), "{}", reply.text);
    }
    // Logging in again works, and the new token is good.
    let again = login(&app.router, "lou", PASSWORD).await?;
    assert_eq!(me(&app, &again).await?.status, StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn a_disabled_user_is_out_at_once_and_cannot_log_in_until_enabled() -> Result<()> {
    let app = app_with(config(), false).await?;
    let admin = admin_token(&app).await?;
    let token = user_token(&app, "dina", quota(1)).await?;
    let disable = |disabled: bool| {
        send(
            &app.router,
            Method::PUT,
            "/api/users/dina/disabled",
            Some(&admin),
            Some(json!({ "disabled": disabled })),
        )
    };
    let reply = disable(true).await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["disabled"], true);

    let reply = me(&app, &token).await?;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);
    assert!(reply.message().contains("disabled"), "{}", reply.text);
    let refused = post_login(
        &app.router,
        json!({"username": "dina", "password": PASSWORD}),
    )
    .await?;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    // A wrong password does not learn that the account is disabled.
    let wrong = post_login(
        &app.router,
        json!({"username": "dina", "password": "nope-nope"}),
    )
    .await?;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);

    assert_eq!(disable(false).await?.status, StatusCode::OK);
    // The old token stays void; a new login works.
    assert_eq!(me(&app, &token).await?.status, StatusCode::UNAUTHORIZED);
    let fresh = login(&app.router, "dina", PASSWORD).await?;
    assert_eq!(me(&app, &fresh).await?.status, StatusCode::OK);

    // Only admins disable, and an admin cannot lock themselves out.
    let by_user = send(
        &app.router,
        Method::PUT,
        "/api/users/admin/disabled",
        Some(&fresh),
        Some(json!({"disabled": true})),
    )
    .await?;
    assert_eq!(by_user.status, StatusCode::FORBIDDEN);
    let itself = send(
        &app.router,
        Method::PUT,
        "/api/users/admin/disabled",
        Some(&admin),
        Some(json!({"disabled": true})),
    )
    .await?;
    assert_eq!(
        itself.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        itself.text
    );
    Ok(())
}

#[tokio::test]
async fn the_login_answer_is_never_cached() -> Result<()> {
    let app = app_with(config(), false).await?;
    let reply = post_login(
        &app.router,
        json!({"username": "admin", "password": ADMIN_PASSWORD}),
    )
    .await?;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(reply.headers[header::PRAGMA], "no-cache");
    Ok(())
}

/// The `kid` header of a token.
fn kid(token: &str) -> Option<String> {
    jsonwebtoken::decode_header(token).ok()?.kid
}

#[tokio::test]
async fn rotating_the_token_key_logs_nobody_out_and_retiring_it_does() -> Result<()> {
    let old_key = TOKEN_KEY.to_owned();
    let new_key = "a brand new token key of at least thirty-two bytes".to_owned();
    let app = app_with(config(), false).await?;
    let before = admin_token(&app).await?;

    // The next release signs with the new key and still accepts the old one.
    let mut rotated = config();
    rotated.token_key = Some(new_key.clone());
    rotated.previous_token_keys = vec![old_key];
    let state = AppState::new(&rotated, app.db.clone(), None).await?;
    let rotated_router = router(state);
    let reply = send(
        &rotated_router,
        Method::GET,
        "/api/users/me",
        Some(&before),
        None,
    )
    .await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let after = login(&rotated_router, "admin", ADMIN_PASSWORD).await?;
    assert!(kid(&after).is_some() && kid(&after) != kid(&before));

    // Once the old key is retired its tokens are refused, the new ones are not.
    let mut retired = config();
    retired.token_key = Some(new_key);
    let retired_router = router(AppState::new(&retired, app.db.clone(), None).await?);
    let old = send(
        &retired_router,
        Method::GET,
        "/api/users/me",
        Some(&before),
        None,
    )
    .await?;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    let new = send(
        &retired_router,
        Method::GET,
        "/api/users/me",
        Some(&after),
        None,
    )
    .await?;
    assert_eq!(new.status, StatusCode::OK);
    Ok(())
}

// ------------------------------------------------------------------------ login throttle

/// `POST /api/auth/login` arriving from TCP peer `peer` with `X-Forwarded-For: xff`.
async fn login_via(
    app: &TestApp,
    peer: &str,
    xff: Option<&str>,
    username: &str,
    password: &str,
) -> Result<StatusCode> {
    let mut request = Request::post("/api/auth/login")
        .header(header::CONTENT_TYPE, "application/json")
        .extension(ConnectInfo(SocketAddr::new(peer.parse()?, 40000)));
    if let Some(xff) = xff {
        request = request.header("x-forwarded-for", xff);
    }
    let request = request.body(Body::from(
        json!({"username": username, "password": password}).to_string(),
    ))?;
    Ok(send_raw(&app.router, request).await?.status)
}

fn behind_proxy() -> storefactory_http::ServerConfig {
    let mut config = config();
    config.trusted_proxies = vec!["10.0.0.0/8".to_owned()];
    config.max_login_attempts_per_account = 100;
    config
}

#[tokio::test]
async fn a_guesser_behind_the_trusted_proxy_does_not_lock_the_owner_out() -> Result<()> {
    let app = app_with(behind_proxy(), false).await?;
    app.db
        .create_user("olive", PASSWORD, Role::User, quota(1))
        .await?;
    let attacker = Some("203.0.113.9");
    for _ in 0..3 {
        let status = login_via(&app, "10.0.0.1", attacker, "olive", "guess-guess").await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let status = login_via(&app, "10.0.0.1", attacker, "olive", "guess-guess").await?;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "the guesser is throttled"
    );
    // The owner, through the same proxy from their own address, gets in.
    let status = login_via(&app, "10.0.0.1", Some("198.51.100.7"), "olive", PASSWORD).await?;
    assert_eq!(status, StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn forwarded_for_is_ignored_from_untrusted_peers_and_left_of_trusted_hops() -> Result<()> {
    let app = app_with(behind_proxy(), false).await?;
    app.db
        .create_user("paul", PASSWORD, Role::User, quota(1))
        .await?;
    // A client talking to the server directly makes up a new address for every guess.
    for n in 0..3 {
        let xff = format!("192.0.2.{n}");
        let status = login_via(&app, "203.0.113.50", Some(&xff), "paul", "guess-guess").await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let status = login_via(&app, "203.0.113.50", Some("192.0.2.99"), "paul", "guess").await?;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "its own address counts"
    );

    // Through the proxy, the made-up entries are on the left of the one the proxy added.
    for n in 0..3 {
        let xff = format!("192.0.2.{n}, 203.0.113.51");
        let status = login_via(&app, "10.1.2.3", Some(&xff), "paul", "guess-guess").await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let status = login_via(
        &app,
        "10.1.2.3",
        Some("192.0.2.200, 203.0.113.51"),
        "paul",
        "guess-guess",
    )
    .await?;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    Ok(())
}

#[tokio::test]
async fn a_guess_spread_over_many_addresses_is_slowed_but_the_account_not_locked() -> Result<()> {
    let mut config = behind_proxy();
    config.max_login_attempts_per_account = 4;
    let app = app_with(config, false).await?;
    app.db
        .create_user("rita", PASSWORD, Role::User, quota(1))
        .await?;
    // Rita logged in from home last week.
    let home = Some("192.0.2.1");
    assert_eq!(
        login_via(&app, "10.0.0.1", home, "rita", PASSWORD).await?,
        StatusCode::OK
    );
    // A botnet: every guess from another address, each under the per-address limit.
    for n in 0..4 {
        let xff = format!("198.51.100.{n}");
        let status = login_via(&app, "10.0.0.1", Some(&xff), "rita", "guess-guess").await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let mut refused = 0;
    for n in 10..30 {
        let xff = format!("198.51.100.{n}");
        if login_via(&app, "10.0.0.1", Some(&xff), "rita", "guess-guess").await?
            == StatusCode::TOO_MANY_REQUESTS
        {
            refused += 1;
        }
    }
    assert!(
        refused >= 18,
        "the account's backoff held off {refused} of 20"
    );
    // From home, where she logged in before, Rita is not held up at all.
    assert_eq!(
        login_via(&app, "10.0.0.1", home, "rita", PASSWORD).await?,
        StatusCode::OK
    );
    for n in 30..34 {
        let xff = format!("198.51.100.{n}");
        let _ = login_via(&app, "10.0.0.1", Some(&xff), "rita", "guess-guess").await?;
    }
    // The owner is not locked out for good: once the delay has passed they get in.
    let started = Instant::now();
    loop {
        let status = login_via(&app, "10.0.0.1", Some("192.0.2.77"), "rita", PASSWORD).await?;
        if status == StatusCode::OK {
            break;
        }
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert!(started.elapsed() < Duration::from_secs(20), "locked out");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}

// ------------------------------------------------------------------------ churn

#[tokio::test]
async fn create_delete_churn_is_bounded() -> Result<()> {
    let mut config = config();
    config.max_store_creations = 3;
    config.deleted_store_retention = Duration::ZERO;
    let app = app_with(config, true).await?;
    let token = user_token(&app, "chuck", quota(10)).await?;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let reply = create_store(&app.router, &token, json!({})).await?;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        ids.push(reply.body["id"].as_str().unwrap_or_default().to_owned());
    }
    let limited = create_store(&app.router, &token, json!({})).await?;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        limited.text
    );
    assert_eq!(limited.code(), "rate_limited");
    assert!(limited.headers.contains_key(header::RETRY_AFTER));

    // A deleted store keeps no products, and after the retention nothing at all.
    let id = StoreId::new(ids[0].as_str())?;
    app.db.set_status(&id, StoreStatus::Deleting, None).await?;
    app.db.set_status(&id, StoreStatus::Deleted, None).await?;
    let path = format!("/api/stores/{id}");
    let deleted = send(&app.router, Method::GET, &path, Some(&token), None).await?;
    assert_eq!(deleted.body["status"], "deleted", "{}", deleted.text);
    assert_eq!(deleted.body["products"], json!([]));
    assert_eq!(app.state.purge_deleted_stores().await?, 1);
    let listed = send(
        &app.router,
        Method::GET,
        "/api/stores?include_deleted=true",
        Some(&token),
        None,
    )
    .await?;
    let listed: Vec<&str> = listed.body["stores"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(listed.len(), 2);
    assert!(!listed.contains(&ids[0].as_str()));
    Ok(())
}

#[tokio::test]
async fn a_full_quota_is_refused_before_the_products_are_even_read() -> Result<()> {
    let app = app_with(config(), false).await?;
    let token = user_token(&app, "quinn", quota(1)).await?;
    stored_store(&app.db, "held1", "quinn").await?;
    // A large, broken product list: with room left this would be a validation error.
    let products = "no price here\n".repeat(20_000);
    let reply = create_store(&app.router, &token, json!({ "sample_products": products })).await?;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    assert_eq!(reply.code(), "quota_exceeded");
    Ok(())
}

#[tokio::test]
async fn admins_page_through_users() -> Result<()> {
    let app = app_with(config(), false).await?;
    let admin = admin_token(&app).await?;
    for n in 0..5 {
        app.db
            .create_user(&format!("pager{n}"), PASSWORD, Role::User, quota(1))
            .await?;
    }
    let mut seen = Vec::new();
    let mut path = "/api/users?limit=2".to_owned();
    loop {
        let page = send(&app.router, Method::GET, &path, Some(&admin), None).await?;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        let users = page.body["users"].as_array().cloned().unwrap_or_default();
        assert!(users.len() <= 2);
        seen.extend(
            users
                .iter()
                .filter_map(|u| u["username"].as_str().map(str::to_owned)),
        );
        match page.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/users?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6, "{seen:?}");
    assert_eq!(seen[0], "admin");
    let bad = send(
        &app.router,
        Method::GET,
        "/api/users?limit=0",
        Some(&admin),
        None,
    )
    .await?;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    Ok(())
}

// ------------------------------------------------------------------------ event streams

/// Opens the event stream of store `id`; the response, its body not yet read.
async fn open_stream(
    app: &TestApp,
    token: &str,
    id: &StoreId,
    last_event_id: Option<&str>,
) -> Result<axum::response::Response> {
    use tower::ServiceExt;
    let mut request = Request::get(format!("/api/stores/{id}/events"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"));
    if let Some(last) = last_event_id {
        request = request.header("last-event-id", last);
    }
    Ok(app
        .router
        .clone()
        .oneshot(request.body(Body::empty())?)
        .await?)
}

/// Reads the stream until it ends; its text, or an error if it is still open after
/// `within`.
async fn read_to_end(response: axum::response::Response, within: Duration) -> Result<String> {
    let bytes = tokio::time::timeout(within, response.into_body().collect())
        .await
        .map_err(|_| anyhow::anyhow!("the stream did not end within {within:?}"))??
        .to_bytes();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn event_streams_are_capped_per_user() -> Result<()> {
    let mut config = config();
    config.max_event_streams_per_user = 2;
    let app = app_with(config, false).await?;
    let token = user_token(&app, "sam", quota(1)).await?;
    let id = stored_store(&app.db, "strm1", "sam").await?;
    let first = open_stream(&app, &token, &id, None).await?;
    let second = open_stream(&app, &token, &id, None).await?;
    assert_eq!(
        (first.status(), second.status()),
        (StatusCode::OK, StatusCode::OK)
    );
    let third = open_stream(&app, &token, &id, None).await?;
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    // Another user is not affected by sam's streams.
    let admin = admin_token(&app).await?;
    assert_eq!(
        open_stream(&app, &admin, &id, None).await?.status(),
        StatusCode::OK
    );
    // Closing one frees its slot.
    drop(first);
    assert_eq!(
        open_stream(&app, &token, &id, None).await?.status(),
        StatusCode::OK
    );
    drop(second);
    Ok(())
}

#[tokio::test]
async fn a_last_event_id_past_the_end_is_clamped_and_the_stream_ends_when_settled() -> Result<()> {
    let app = app_with(config(), false).await?;
    let token = user_token(&app, "tess", quota(1)).await?;
    let id = stored_store(&app.db, "clamp1", "tess").await?;
    let stream = open_stream(&app, &token, &id, Some("999999999")).await?;
    assert_eq!(stream.status(), StatusCode::OK);
    // The store settles, recorded by another process (no live broadcast here).
    app.db
        .set_status(&id, StoreStatus::Failed, Some("test"))
        .await?;
    app.db
        .append_event(
            &id,
            Timestamp::now(),
            &EventKind::Status {
                status: StoreStatus::Failed,
                reason: Some("test".to_owned()),
            },
        )
        .await?;
    let text = read_to_end(stream, Duration::from_secs(15)).await?;
    assert!(
        text.contains("id: 2"),
        "the event after the clamped id arrives: {text}"
    );
    assert!(text.contains("failed"), "{text}");
    Ok(())
}

#[tokio::test]
async fn a_stream_ends_when_its_token_expires() -> Result<()> {
    let mut config = config();
    config.token_ttl = Duration::from_secs(2);
    let app = app_with(config, false).await?;
    let token = user_token(&app, "uma", quota(1)).await?;
    let id = stored_store(&app.db, "expire1", "uma").await?;
    let started = Instant::now();
    let stream = open_stream(&app, &token, &id, None).await?;
    assert_eq!(stream.status(), StatusCode::OK);
    read_to_end(stream, Duration::from_secs(10)).await?;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn a_stream_ends_when_its_token_is_revoked_or_the_user_disabled() -> Result<()> {
    let app = app_with(config(), false).await?;
    let admin = admin_token(&app).await?;
    let token = user_token(&app, "vic", quota(1)).await?;
    let id = stored_store(&app.db, "revoke1", "vic").await?;

    let stream = open_stream(&app, &token, &id, None).await?;
    let out = send(
        &app.router,
        Method::POST,
        "/api/auth/logout",
        Some(&token),
        None,
    )
    .await?;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    read_to_end(stream, Duration::from_secs(15)).await?;

    let token = login(&app.router, "vic", PASSWORD).await?;
    let stream = open_stream(&app, &token, &id, None).await?;
    let reply = send(
        &app.router,
        Method::PUT,
        "/api/users/vic/disabled",
        Some(&admin),
        Some(json!({"disabled": true})),
    )
    .await?;
    assert_eq!(reply.status, StatusCode::OK);
    read_to_end(stream, Duration::from_secs(15)).await?;
    Ok(())
}

// ------------------------------------------------------------------------ timeouts

/// An "apiserver" that accepts connections and never answers; counts the requests for
/// `/version` it received.
async fn hung_apiserver() -> Result<(kube::Client, Arc<AtomicUsize>)> {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let versions = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&versions);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counted = Arc::clone(&counted);
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&seen);
                    let found = text.matches("GET /version").count();
                    if found > 0 {
                        counted.fetch_add(found, Ordering::SeqCst);
                        seen.clear();
                    }
                }
            });
        }
    });
    let config = kube::Config::new(format!("http://{addr}").parse()?);
    Ok((kube::Client::try_from(config)?, versions))
}

async fn app_on(config: storefactory_http::ServerConfig, client: kube::Client) -> Result<TestApp> {
    let dir = tempfile::tempdir()?;
    let db = Database::open(dir.path().join("test.db")).await?;
    let state = AppState::new(&config, db.clone(), Some(client)).await?;
    Ok(TestApp {
        router: router(state.clone()),
        state,
        db,
        _dir: dir,
    })
}

#[tokio::test]
async fn a_hung_apiserver_cannot_hold_a_credentials_request() -> Result<()> {
    let (client, _) = hung_apiserver().await?;
    let mut config = config();
    config.cluster_call_timeout = Duration::from_secs(1);
    let app = app_on(config, client).await?;
    let token = user_token(&app, "wes", quota(1)).await?;
    let id = stored_store(&app.db, "hung1", "wes").await?;
    let started = Instant::now();
    let path = format!("/api/stores/{id}/credentials");
    let reply = send(&app.router, Method::GET, &path, Some(&token), None).await?;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text
    );
    assert_eq!(reply.code(), "cluster_unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn a_request_slower_than_the_request_timeout_answers_503() -> Result<()> {
    let (client, _) = hung_apiserver().await?;
    let mut config = config();
    config.request_timeout = Duration::from_secs(1);
    config.cluster_call_timeout = Duration::from_secs(60);
    let app = app_on(config, client).await?;
    let token = user_token(&app, "xia", quota(1)).await?;
    let id = stored_store(&app.db, "slow1", "xia").await?;
    let started = Instant::now();
    let path = format!("/api/stores/{id}/credentials");
    let reply = send(&app.router, Method::GET, &path, Some(&token), None).await?;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text
    );
    assert_eq!(reply.code(), "timeout");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // Event streams are long-lived on purpose: not cut by the request timeout.
    let stream = open_stream(&app, &token, &id, None).await?;
    assert_eq!(stream.status(), StatusCode::OK);
    let cut = tokio::time::timeout(Duration::from_secs(2), stream.into_body().collect()).await;
    assert!(
        cut.is_err(),
        "the stream stayed open past the request timeout"
    );
    Ok(())
}

#[tokio::test]
async fn ready_is_cached_and_tells_anonymous_callers_nothing_about_the_cluster() -> Result<()> {
    let (client, versions) = hung_apiserver().await?;
    let app = app_on(config(), client).await?;
    let mut bodies = Vec::new();
    let started = Instant::now();
    for _ in 0..20 {
        let reply = send(&app.router, Method::GET, "/ready", None, None).await?;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        bodies.push(reply.text);
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        versions.load(Ordering::SeqCst),
        1,
        "one cluster call for 20 requests"
    );
    for body in &bodies {
        assert!(
            !body.contains("127.0.0.1") && !body.contains("within"),
            "{body}"
        );
    }
    assert!(
        bodies[0].contains("Kubernetes cluster unreachable"),
        "{}",
        bodies[0]
    );

    // On the real control plane: ready, without the cluster's version.
    let app = app_with(config(), true).await?;
    let reply = send(&app.router, Method::GET, "/ready", None, None).await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(!reply.text.contains("v1."), "{}", reply.text);
    Ok(())
}
