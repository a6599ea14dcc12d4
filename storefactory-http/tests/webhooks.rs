//! Webhooks against real receivers: a server running on a loopback port over a real SQLite
//! file, with its dispatcher, and small HTTP servers on 127.0.0.1:0 that record what they
//! receive and answer as each test wants (fine, failing then recovering, hanging). API calls
//! go through the router over the running server's own state, so every JSON answer is
//! checked against the OpenAPI document.
//!
//! Store events are recorded straight through the repository (as the Provisioner records
//! them) except in the last test, which creates a store on the local control plane.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use common::*;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use storefactory_core::port::StoreRepository;
use storefactory_core::spec::{StoreId, StoreSpec};
use storefactory_core::store::{EventKind, StoreRecord, StoreStatus, Timestamp};
use storefactory_http::{Server, ServerConfig, router};
use storefactory_sql::{Database, Quota, Role};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

// ------------------------------------------------------------------------ the receiver

/// What a receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
    at: Instant,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// How a receiver answers.
#[derive(Clone)]
enum Behaviour {
    /// These statuses, in order, then 200 for ever.
    Answer(Arc<Mutex<Vec<u16>>>),
    /// Never answers.
    Hang,
}

struct Receiver {
    url: String,
    got: mpsc::UnboundedReceiver<Received>,
}

impl Receiver {
    /// The next request, within `within`.
    async fn next(&mut self, within: Duration) -> Result<Received> {
        tokio::time::timeout(within, self.got.recv())
            .await
            .context("the receiver got nothing in time")?
            .context("the receiver stopped")
    }
}

async fn receiver(behaviour: Behaviour) -> Result<Receiver> {
    let (tx, got) = mpsc::unbounded_channel();
    let app = Router::new()
        .route(
            "/hook",
            axum::routing::post(
                |State((behaviour, tx)): State<(Behaviour, mpsc::UnboundedSender<Received>)>,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    let _ = tx.send(Received {
                        headers,
                        body,
                        at: Instant::now(),
                    });
                    match behaviour {
                        Behaviour::Hang => {
                            std::future::pending::<()>().await;
                            StatusCode::OK
                        }
                        Behaviour::Answer(statuses) => {
                            let next = {
                                let mut statuses = statuses.lock().unwrap();
                                (!statuses.is_empty()).then(|| statuses.remove(0))
                            };
                            next.and_then(|s| StatusCode::from_u16(s).ok())
                                .unwrap_or(StatusCode::OK)
                        }
                    }
                },
            ),
        )
        .with_state((behaviour, tx));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(Receiver {
        url: format!("http://{addr}/hook"),
        got,
    })
}

fn answering(statuses: &[u16]) -> Behaviour {
    Behaviour::Answer(Arc::new(Mutex::new(statuses.to_vec())))
}

// ------------------------------------------------------------------------ the server

/// A server on a loopback port, with its dispatcher running, and a router over its state.
struct Running {
    router: Router,
    db: Database,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<storefactory_http::Result<()>>,
}

impl Running {
    async fn stop(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(WAIT, &mut self.task).await???;
        Ok(())
    }
}

/// The tests' configuration: no cluster (a kubeconfig that does not exist), receivers on
/// loopback allowed, a one-second timeout and quick retries.
fn webhook_config(dir: &std::path::Path) -> Result<ServerConfig> {
    let mut config = config();
    config.listen = "127.0.0.1:0".parse()?;
    config.database = dir.join("webhooks.db");
    config.kubeconfig = Some(dir.join("no-such-kubeconfig"));
    config.webhooks.allow_private = true;
    config.webhooks.timeout = Duration::from_secs(1);
    config.webhooks.first_retry_delay = Duration::from_millis(100);
    config.webhooks.max_retry_delay = Duration::from_millis(300);
    config.webhooks.poll_interval = Duration::from_millis(50);
    Ok(config)
}

async fn start(config: ServerConfig) -> Result<Running> {
    let server = Server::bind(config).await?;
    let state = server.state().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    Ok(Running {
        router: router(state.clone()),
        db: state.db().clone(),
        stop: Some(stop),
        task,
    })
}

async fn user(running: &Running, name: &str) -> Result<String> {
    running
        .db
        .create_user(name, PASSWORD, Role::User, Quota::default())
        .await?;
    login(&running.router, name, PASSWORD).await
}

async fn register(running: &Running, token: &str, body: Value) -> Result<Reply> {
    send(
        &running.router,
        Method::POST,
        "/api/webhooks",
        Some(token),
        Some(body),
    )
    .await
}

async fn deliveries(running: &Running, token: &str, id: &str) -> Result<Reply> {
    send(
        &running.router,
        Method::GET,
        &format!("/api/webhooks/{id}/deliveries"),
        Some(token),
        None,
    )
    .await
}

/// Waits until the delivery log of webhook `id` satisfies `done`; returns the log.
async fn log_until(
    running: &Running,
    token: &str,
    id: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Result<Vec<Value>> {
    let deadline = Instant::now() + WAIT;
    loop {
        let reply = deliveries(running, token, id).await?;
        ensure!(reply.status == StatusCode::OK, "{}", reply.text);
        let log = reply.body["deliveries"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if done(&log) {
            return Ok(log);
        }
        if Instant::now() > deadline {
            bail!("the delivery log never got there: {log:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A store of `owner` recorded in the database, as the Provisioner records one.
async fn store_of(db: &Database, id: &str, owner: &str) -> Result<StoreId> {
    let id = StoreId::new(id)?;
    let spec = StoreSpec::new(id.clone(), owner, format!("{id}.shop.example"));
    db.insert_store(&StoreRecord::new(spec, "Shop", "woocommerce"))
        .await?;
    Ok(id)
}

async fn status_event(db: &Database, id: &StoreId, status: StoreStatus) -> Result<()> {
    db.append_event(
        id,
        Timestamp::now(),
        &EventKind::Status {
            status,
            reason: None,
        },
    )
    .await?;
    Ok(())
}

/// HMAC-SHA256 of `<t>.<body>` in hex, computed here from the documented recipe rather
/// than with the server's code.
fn expected_signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// ------------------------------------------------------------------------ tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_is_signed_with_the_secret_shown_once_and_only_the_owner_gets_it() -> Result<()>
{
    let dir = tempfile::tempdir()?;
    let running = start(webhook_config(dir.path())?).await?;
    let mut hook = receiver(answering(&[])).await?;
    let ann = user(&running, "ann").await?;
    let bob = user(&running, "bob").await?;

    let created = register(
        &running,
        &ann,
        json!({ "url": hook.url, "events": "status" }),
    )
    .await?;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.headers["cache-control"], "no-store");
    let secret = created.body["secret"]
        .as_str()
        .context("secret")?
        .to_owned();
    assert!(
        secret.starts_with("whsec_") && secret.len() >= 64,
        "{secret}"
    );
    let id = created.body["id"].as_str().context("id")?.to_owned();

    // The secret is never shown again, to the owner or an admin.
    let admin = login(&running.router, "admin", ADMIN_PASSWORD).await?;
    for (token, path) in [(&ann, "/api/webhooks"), (&admin, "/api/webhooks?all=true")] {
        let listed = send(&running.router, Method::GET, path, Some(token), None).await?;
        assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
        assert_eq!(
            listed.body["webhooks"][0]["id"],
            id.as_str(),
            "{}",
            listed.text
        );
        assert!(!listed.text.contains(&secret), "{}", listed.text);
        assert!(!listed.text.contains("secret"), "{}", listed.text);
    }

    // Bob's store is none of Ann's business; her own store's status change reaches her.
    let bobs = store_of(&running.db, "bob1", "bob").await?;
    status_event(&running.db, &bobs, StoreStatus::Provisioning).await?;
    let anns = store_of(&running.db, "ann1", "ann").await?;
    // Not a status change: filtered out by `"events": "status"`.
    running
        .db
        .append_event(
            &anns,
            Timestamp::now(),
            &EventKind::Warning {
                message: "slow".to_owned(),
            },
        )
        .await?;
    status_event(&running.db, &anns, StoreStatus::Provisioning).await?;

    let got = hook.next(WAIT).await?;
    let body = got.json();
    assert_eq!(body["type"], "status", "{body}");
    assert_eq!(body["store_id"], "ann1", "{body}");
    assert_eq!(body["owner"], "ann", "{body}");
    assert_eq!(body["data"]["status"], "provisioning", "{body}");
    assert_eq!(got.header("storefactory-event"), "status");
    assert_eq!(got.header("content-type"), "application/json");
    let delivery_id = got.header("storefactory-delivery").to_owned();
    assert!(delivery_id.parse::<i64>().is_ok(), "{delivery_id}");

    // The signature verifies with the secret from the creation, over the raw body.
    let signature = got.header("storefactory-signature");
    let (t, v1) = signature
        .split_once(',')
        .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v1=")?)))
        .with_context(|| format!("signature {signature:?}"))?;
    let sent_at: u64 = t.parse()?;
    assert!(unix_now().abs_diff(sent_at) < 60, "a current timestamp");
    assert_eq!(v1, expected_signature(&secret, t, &got.body));
    assert_ne!(v1, expected_signature("whsec_wrong", t, &got.body));
    assert!(storefactory_http::webhooks::signature::verify(
        secret.as_bytes(),
        signature,
        &got.body,
        unix_now(),
        300
    ));

    // Nothing else arrives: neither Bob's event nor Ann's warning.
    assert!(hook.next(Duration::from_millis(500)).await.is_err());
    let log = log_until(&running, &ann, &id, |log| {
        log.first().is_some_and(|d| d["state"] == "delivered")
    })
    .await?;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["attempts"], 1);
    assert_eq!(log[0]["last_status"], 200);
    assert_eq!(log[0]["id"].to_string(), delivery_id);
    assert_eq!(log[0]["event"], "status");

    // Bob cannot see Ann's webhook, its log, or delete it: it does not exist for him.
    for (method, path) in [
        (Method::GET, format!("/api/webhooks/{id}/deliveries")),
        (Method::DELETE, format!("/api/webhooks/{id}")),
    ] {
        let reply = send(&running.router, method, &path, Some(&bob), None).await?;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
        assert_eq!(reply.code(), "not_found");
    }
    let bobs_list = send(
        &running.router,
        Method::GET,
        "/api/webhooks",
        Some(&bob),
        None,
    )
    .await?;
    assert_eq!(bobs_list.body["webhooks"], json!([]), "{}", bobs_list.text);
    let everyone = send(
        &running.router,
        Method::GET,
        "/api/webhooks?all=true",
        Some(&bob),
        None,
    )
    .await?;
    assert_eq!(everyone.status, StatusCode::FORBIDDEN, "{}", everyone.text);

    // The owner deletes it: gone, and later events are not sent.
    let deleted = send(
        &running.router,
        Method::DELETE,
        &format!("/api/webhooks/{id}"),
        Some(&ann),
        None,
    )
    .await?;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    assert_eq!(
        deliveries(&running, &ann, &id).await?.status,
        StatusCode::NOT_FOUND
    );
    status_event(&running.db, &anns, StoreStatus::Ready).await?;
    assert!(hook.next(Duration::from_millis(500)).await.is_err());
    running.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_fails_twice_then_recovers_gets_the_delivery_on_the_third_attempt()
-> Result<()> {
    let dir = tempfile::tempdir()?;
    let running = start(webhook_config(dir.path())?).await?;
    let mut hook = receiver(answering(&[500, 503])).await?;
    let cat = user(&running, "cat").await?;
    let created = register(&running, &cat, json!({ "url": hook.url })).await?;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.body["id"].as_str().context("id")?.to_owned();

    let store = store_of(&running.db, "cat1", "cat").await?;
    status_event(&running.db, &store, StoreStatus::Failed).await?;

    let first = hook.next(WAIT).await?;
    let second = hook.next(WAIT).await?;
    let third = hook.next(WAIT).await?;
    // One delivery, sent three times under one id, the same body each time, each signed
    // anew.
    for again in [&second, &third] {
        assert_eq!(
            again.header("storefactory-delivery"),
            first.header("storefactory-delivery")
        );
        assert_eq!(again.body, first.body);
    }
    // Backed off: the retries were not immediate.
    assert!(second.at - first.at >= Duration::from_millis(50));
    assert!(third.at - second.at >= Duration::from_millis(50));

    let log = log_until(&running, &cat, &id, |log| {
        log.first().is_some_and(|d| d["state"] == "delivered")
    })
    .await?;
    assert_eq!(log[0]["attempts"], 3, "{log:?}");
    assert_eq!(log[0]["last_status"], 200);
    assert_eq!(log[0]["last_error"], Value::Null);
    assert!(
        hook.next(Duration::from_millis(500)).await.is_err(),
        "delivered once is enough"
    );

    let metrics = send(&running.router, Method::GET, "/metrics", None, None).await?;
    assert!(
        metrics
            .text
            .contains("storefactory_webhook_deliveries_total{outcome=\"retried\"} 2"),
        "{}",
        metrics.text
    );
    assert!(
        metrics
            .text
            .contains("storefactory_webhook_deliveries_total{outcome=\"delivered\"} 1"),
        "{}",
        metrics.text
    );
    running.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_receiver_holds_up_only_its_own_webhook_and_fails_after_its_attempts() -> Result<()>
{
    let dir = tempfile::tempdir()?;
    let mut config = webhook_config(dir.path())?;
    config.webhooks.max_attempts = 2;
    config.webhooks.timeout = Duration::from_secs(2);
    let running = start(config).await?;
    let mut hung = receiver(Behaviour::Hang).await?;
    let mut fine = receiver(answering(&[])).await?;
    let dan = user(&running, "dan").await?;
    let hung_hook = register(&running, &dan, json!({ "url": hung.url })).await?;
    let hung_id = hung_hook.body["id"].as_str().context("id")?.to_owned();
    assert_eq!(
        register(&running, &dan, json!({ "url": fine.url }))
            .await?
            .status,
        StatusCode::CREATED
    );

    let store = store_of(&running.db, "dan1", "dan").await?;
    let started = Instant::now();
    for status in [
        StoreStatus::Provisioning,
        StoreStatus::Ready,
        StoreStatus::Deleting,
    ] {
        status_event(&running.db, &store, status).await?;
    }
    // Recording events never waits for receivers.
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // The healthy receiver gets all three, in order, while the other one hangs.
    hung.next(WAIT).await?;
    for expected in ["provisioning", "ready", "deleting"] {
        let got = fine.next(WAIT).await?;
        assert_eq!(got.json()["data"]["status"], expected);
    }
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "the healthy receiver waited for the hung one: {:?}",
        started.elapsed()
    );

    // The hung delivery is given up after the timeout, retried once, then failed; the
    // deliveries behind it are tried after it.
    let log = log_until(&running, &dan, &hung_id, |log| {
        log.last().is_some_and(|d| d["state"] == "failed")
    })
    .await?;
    let oldest = log.last().context("a delivery")?;
    assert_eq!(oldest["attempts"], 2, "{log:?}");
    assert_eq!(oldest["last_status"], Value::Null);
    assert!(
        oldest["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("no answer within 2000 ms")),
        "{oldest}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "two full timeouts"
    );
    running.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_webhooks_are_refused_with_a_clear_error_and_nothing_is_stored() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = webhook_config(dir.path())?;
    // As in production: no private targets, https only.
    config.webhooks.allow_private = false;
    config.webhooks.max_per_user = 2;
    let running = start(config).await?;
    let eve = user(&running, "eve").await?;

    for (body, status, code, words) in [
        (
            json!({"url": "http://127.0.0.1:9/hook"}),
            422,
            "invalid_input",
            "https",
        ),
        (
            json!({"url": "https://127.0.0.1/hook"}),
            422,
            "invalid_input",
            "private",
        ),
        (
            json!({"url": "https://169.254.169.254/latest/meta-data"}),
            422,
            "invalid_input",
            "link-local",
        ),
        (
            json!({"url": "https://[::1]/"}),
            422,
            "invalid_input",
            "loopback",
        ),
        (
            json!({"url": "https://kubernetes.default.svc/"}),
            422,
            "invalid_input",
            "cluster-internal",
        ),
        (
            json!({"url": "https://user:pw@hooks.example.invalid/"}),
            422,
            "invalid_input",
            "credentials",
        ),
        (json!({"url": "not a url"}), 422, "invalid_input", "spaces"),
        (
            json!({"url": "hooks.example.invalid/x"}),
            422,
            "invalid_input",
            "absolute",
        ),
        (
            json!({"url": format!("https://hooks.example.invalid/{}", "a".repeat(3000))}),
            422,
            "invalid_input",
            "at most",
        ),
        (
            json!({"url": "https://hooks.example.invalid/", "events": "some"}),
            422,
            "invalid_input",
            "unknown variant",
        ),
        (
            json!({"url": "https://hooks.example.invalid/", "secret": "mine"}),
            422,
            "invalid_input",
            "unknown field",
        ),
        (
            json!({"url": "https://hooks.example.invalid/", "all_stores": true}),
            403,
            "forbidden",
            "admin",
        ),
        (json!({}), 422, "invalid_input", "url"),
    ] {
        let reply = register(&running, &eve, body.clone()).await?;
        assert_eq!(reply.status.as_u16(), status, "{body}: {}", reply.text);
        assert_eq!(reply.code(), code, "{body}: {}", reply.text);
        assert!(reply.message().contains(words), "{body}: {}", reply.text);
    }
    let listed = send(
        &running.router,
        Method::GET,
        "/api/webhooks",
        Some(&eve),
        None,
    )
    .await?;
    assert_eq!(
        listed.body["webhooks"],
        json!([]),
        "nothing stored: {}",
        listed.text
    );

    // The per-user limit: the third is refused, the first two stay. (`.invalid` never
    // resolves, and no event is recorded: nothing leaves the machine.)
    for n in 0..2 {
        let reply = register(
            &running,
            &eve,
            json!({"url": format!("https://hooks{n}.example.invalid/in")}),
        )
        .await?;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    }
    let third = register(
        &running,
        &eve,
        json!({"url": "https://hooks2.example.invalid/in"}),
    )
    .await?;
    assert_eq!(third.status, StatusCode::CONFLICT, "{}", third.text);
    assert_eq!(third.code(), "webhook_limit");
    let listed = send(
        &running.router,
        Method::GET,
        "/api/webhooks",
        Some(&eve),
        None,
    )
    .await?;
    assert_eq!(listed.body["webhooks"].as_array().map(Vec::len), Some(2));

    // Paths and queries that name nothing, or ask too much.
    for (path, status) in [
        ("/api/webhooks/wh_nope/deliveries", 404),
        ("/api/webhooks/..%2F..%2Fstores/deliveries", 404),
        ("/api/webhooks?all=maybe", 400),
    ] {
        let reply = send(&running.router, Method::GET, path, Some(&eve), None).await?;
        assert_eq!(reply.status.as_u16(), status, "{path}: {}", reply.text);
    }
    let id = listed.body["webhooks"][0]["id"].as_str().context("id")?;
    let reply = send(
        &running.router,
        Method::GET,
        &format!("/api/webhooks/{id}/deliveries?limit=1000"),
        Some(&eve),
        None,
    )
    .await?;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    running.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_recorded_while_the_server_was_down_are_delivered_after_it_restarts() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut hook = receiver(answering(&[])).await?;
    let running = start(webhook_config(dir.path())?).await?;
    let fay = user(&running, "fay").await?;
    let created = register(&running, &fay, json!({ "url": hook.url })).await?;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let store = store_of(&running.db, "fay1", "fay").await?;
    status_event(&running.db, &store, StoreStatus::Provisioning).await?;
    assert_eq!(
        hook.next(WAIT).await?.json()["data"]["status"],
        "provisioning"
    );
    running.stop().await?;

    // While no server runs, another process (the command line, say) records events.
    {
        let db = Database::open(dir.path().join("webhooks.db")).await?;
        status_event(&db, &store, StoreStatus::Ready).await?;
        status_event(&db, &store, StoreStatus::Deleting).await?;
    }
    assert!(hook.next(Duration::from_millis(300)).await.is_err());

    let running = start(webhook_config(dir.path())?).await?;
    for expected in ["ready", "deleting"] {
        assert_eq!(hook.next(WAIT).await?.json()["data"]["status"], expected);
    }
    // And nothing twice.
    assert!(hook.next(Duration::from_millis(500)).await.is_err());
    running.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_created_through_the_api_reports_its_progress_to_its_owners_webhook() -> Result<()>
{
    let cp = storefactory_testkit::shared().await?;
    let dir = tempfile::tempdir()?;
    let mut config = webhook_config(dir.path())?;
    config.kubeconfig = Some(cp.kubeconfig_path().to_path_buf());
    let running = start(config).await?;
    let mut hook = receiver(answering(&[])).await?;
    let gus = user(&running, "gus").await?;
    let created = register(
        &running,
        &gus,
        json!({ "url": hook.url, "events": "status" }),
    )
    .await?;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);

    let store = create_store(&running.router, &gus, json!({})).await?;
    assert_eq!(store.status, StatusCode::CREATED, "{}", store.text);
    let store_id = store.body["id"].as_str().context("store id")?.to_owned();
    let mut seen = Vec::new();
    while !seen.iter().any(|s| s == "provisioning") {
        let got = hook.next(Duration::from_secs(60)).await?;
        let body = got.json();
        assert_eq!(body["store_id"], store_id.as_str(), "{body}");
        seen.push(
            body["data"]["status"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    assert_eq!(
        seen.first().map(String::as_str),
        Some("initialized"),
        "{seen:?}"
    );

    let deleted = send(
        &running.router,
        Method::DELETE,
        &format!("/api/stores/{store_id}"),
        Some(&gus),
        None,
    )
    .await?;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    loop {
        let got = hook.next(Duration::from_secs(60)).await?;
        if got.json()["data"]["status"] == "deleting" {
            break;
        }
    }
    running.stop().await
}
