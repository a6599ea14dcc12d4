//! End to end: a real server on a loopback port, with its reconciler, against the local
//! control plane and its simulated kubelet. Log in, create a store, follow its events until
//! it is ready, read its credentials, delete it and see it gone.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use axum::body::Bytes;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Namespace;
use serde_json::{Value, json};
use storefactory_http::Server;

const WAIT: Duration = Duration::from_secs(180);

/// Sends one request on a fresh connection and returns the response with its streaming body.
async fn request(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<hyper::Response<Incoming>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, addr.to_string());
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let body: BoxBody<Bytes, std::convert::Infallible> = match body {
        Some(value) => {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
            Full::new(Bytes::from(value.to_string())).boxed()
        }
        None => Empty::new().boxed(),
    };
    Ok(sender.send_request(builder.body(body)?).await?)
}

async fn call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<(StatusCode, Value)> {
    let response = request(addr, method, path, token, body).await?;
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

/// Follows a store's event stream until an event with one of `statuses` arrives or the
/// stream ends; returns every event seen.
async fn follow(addr: SocketAddr, token: &str, id: &str, statuses: &[&str]) -> Result<Vec<Value>> {
    let response = request(
        addr,
        Method::GET,
        &format!("/api/stores/{id}/events"),
        Some(token),
        None,
    )
    .await?;
    ensure!(
        response.status() == StatusCode::OK,
        "events: {}",
        response.status()
    );
    let mut body = response.into_body();
    let mut buffer = String::new();
    let mut events = Vec::new();
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(frame) = tokio::time::timeout(left, body.frame())
            .await
            .with_context(|| format!("no {statuses:?} event within {WAIT:?}; saw {events:#?}"))?
        else {
            return Ok(events);
        };
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        buffer.push_str(&String::from_utf8_lossy(&data));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            for line in block.lines() {
                if let Some(data) = line.strip_prefix("data: ") {
                    let event: Value = serde_json::from_str(data)?;
                    eprintln!("event: {event}");
                    let status = event["status"].as_str().unwrap_or_default().to_owned();
                    events.push(event);
                    if statuses.contains(&status.as_str()) {
                        return Ok(events);
                    }
                }
            }
        }
    }
}

#[tokio::test]
async fn login_create_follow_until_ready_credentials_delete_gone() -> Result<()> {
    let cp = storefactory_testkit::shared().await?;
    let dir = tempfile::tempdir()?;
    let mut config = common::config();
    config.listen = "127.0.0.1:0".parse()?;
    config.database = dir.path().join("e2e.db");
    config.kubeconfig = Some(cp.kubeconfig_path().to_path_buf());
    let server = Server::bind(config).await?;
    let addr = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));

    let (status, ready) = call(addr, Method::GET, "/ready", None, None).await?;
    assert_eq!(status, StatusCode::OK, "{ready}");

    let (status, login) = call(
        addr,
        Method::POST,
        "/api/auth/login",
        None,
        Some(json!({"username": "admin", "password": common::ADMIN_PASSWORD})),
    )
    .await?;
    assert_eq!(status, StatusCode::OK, "{login}");
    let token = login["access_token"].as_str().context("token")?.to_owned();

    let wp_password = "correct-horse-battery-staple";
    let began = Instant::now();
    let (status, store) = call(
        addr,
        Method::POST,
        "/api/stores",
        Some(&token),
        Some(json!({
            "sample_products": "T-Shirt|599|Cotton t-shirt\nJeans|1299|Denim jeans",
            "storage_size_gi": 2,
            "admin_password": wp_password,
        })),
    )
    .await?;
    assert_eq!(status, StatusCode::CREATED, "{store}");
    eprintln!("POST /api/stores answered in {:?}", began.elapsed());
    let id = store["id"].as_str().context("id")?.to_owned();

    let result = async {
        let events = follow(addr, &token, &id, &["ready", "failed"]).await?;
        let last = events.last().context("no events")?;
        if last["status"] != "ready" {
            bail!("store did not become ready: {last}");
        }
        eprintln!("ready after {:?}", began.elapsed());
        let statuses: Vec<&str> = events.iter().filter_map(|e| e["status"].as_str()).collect();
        assert_eq!(statuses.first(), Some(&"initialized"), "{statuses:?}");
        assert!(statuses.contains(&"provisioning"), "{statuses:?}");

        let (status, credentials) = call(
            addr,
            Method::GET,
            &format!("/api/stores/{id}/credentials"),
            Some(&token),
            None,
        )
        .await?;
        assert_eq!(status, StatusCode::OK, "{credentials}");
        assert_eq!(credentials["username"], "admin");
        assert_eq!(credentials["password"], wp_password);
        assert_eq!(
            credentials["admin_url"],
            format!("http://store-{id}.storefactory.local/wp-admin/")
        );
        let (_, listed) = call(addr, Method::GET, "/api/stores", Some(&token), None).await?;
        assert_eq!(listed["stores"][0]["status"], "ready");
        assert!(!listed.to_string().contains(wp_password));

        // The service's figures say what just happened, in Prometheus' text format.
        let response = request(addr, Method::GET, "/metrics", None, None).await?;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response.headers()[header::CONTENT_TYPE]
                .to_str()?
                .starts_with("application/openmetrics-text")
        );
        let metrics = String::from_utf8(response.into_body().collect().await?.to_bytes().to_vec())?;
        let value = |prefix: &str| -> Option<f64> {
            metrics
                .lines()
                .find(|l| l.starts_with(prefix))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse().ok())
        };
        assert_eq!(value("storefactory_stores{status=\"ready\"}"), Some(1.0), "{metrics}");
        assert_eq!(value("storefactory_stores{status=\"failed\"}"), Some(0.0), "{metrics}");
        assert_eq!(
            value("storefactory_kube_requests_total{verb=\"APPLY\",resource=\"deployments\"}"),
            Some(1.0),
            "{metrics}"
        );
        assert!(value("storefactory_reconcile_duration_seconds_count").unwrap_or(0.0) >= 1.0);
        assert_eq!(
            value(
                "storefactory_http_requests_total{method=\"POST\",route=\"/api/stores\",status=\"201\"}"
            ),
            Some(1.0),
            "{metrics}"
        );
        assert!(metrics.contains("route=\"/api/stores/{id}/credentials\""), "{metrics}");
        assert!(!metrics.contains(&id), "a store id became a label: {metrics}");
        assert!(!metrics.contains(wp_password));

        let (status, deleting) = call(
            addr,
            Method::DELETE,
            &format!("/api/stores/{id}"),
            Some(&token),
            None,
        )
        .await?;
        assert_eq!(status, StatusCode::OK, "{deleting}");
        assert_eq!(deleting["status"], "deleting");
        let events = follow(addr, &token, &id, &["deleted"]).await?;
        assert_eq!(
            events.last().and_then(|e| e["status"].as_str()),
            Some("deleted")
        );

        let (status, gone) = call(
            addr,
            Method::GET,
            &format!("/api/stores/{id}"),
            Some(&token),
            None,
        )
        .await?;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(gone["status"], "deleted");
        let (_, listed) = call(addr, Method::GET, "/api/stores", Some(&token), None).await?;
        assert_eq!(listed["stores"], json!([]));
        let client = cp.client().await?;
        let namespaces: kube::Api<Namespace> = kube::Api::all(client);
        assert!(namespaces.get_opt(&format!("store-{id}")).await?.is_none());
        let (status, _) = call(
            addr,
            Method::DELETE,
            &format!("/api/stores/{id}"),
            Some(&token),
            None,
        )
        .await?;
        assert_eq!(status, StatusCode::NOT_FOUND);
        Ok(())
    }
    .await;
    if result.is_err() {
        // Leave no store namespace behind on failure.
        let client = cp.client().await?;
        let namespaces: kube::Api<Namespace> = kube::Api::all(client);
        let _ = namespaces
            .delete(&format!("store-{id}"), &Default::default())
            .await;
    }

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .context("graceful shutdown took too long")???;
    result
}

/// Reads the store until its status is `status`; fails after [`WAIT`].
async fn until_status(addr: SocketAddr, token: &str, id: &str, status: &str) -> Result<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, store) = call(
            addr,
            Method::GET,
            &format!("/api/stores/{id}"),
            Some(token),
            None,
        )
        .await?;
        if store["status"] == status {
            return Ok(store);
        }
        ensure!(
            Instant::now() < deadline && store["status"] != "failed",
            "store {id} did not become {status}: {store}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET /` with `host` as the Host header: the status and the body.
async fn get_as_host(addr: SocketAddr, host: &str) -> Result<(StatusCode, String)> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = Request::builder()
        .uri("/")
        .header(header::HOST, host)
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[tokio::test]
async fn a_store_suspended_through_the_api_answers_paused_and_resumes() -> Result<()> {
    let cp = storefactory_testkit::shared().await?;
    let dir = tempfile::tempdir()?;
    let mut config = common::config();
    config.listen = "127.0.0.1:0".parse()?;
    config.database = dir.path().join("e2e-suspend.db");
    config.kubeconfig = Some(cp.kubeconfig_path().to_path_buf());
    config.provisioner.paused_backend = Some("storefactory.platform.svc.cluster.local:80".parse()?);
    let server = Server::bind(config).await?;
    let addr = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let (_, login) = call(
        addr,
        Method::POST,
        "/api/auth/login",
        None,
        Some(json!({"username": "admin", "password": common::ADMIN_PASSWORD})),
    )
    .await?;
    let token = login["access_token"].as_str().context("token")?.to_owned();
    let (status, store) = call(
        addr,
        Method::POST,
        "/api/stores",
        Some(&token),
        Some(json!({"storage_size_gi": 1})),
    )
    .await?;
    assert_eq!(status, StatusCode::CREATED, "{store}");
    let id = store["id"].as_str().context("id")?.to_owned();
    let host = format!("store-{id}.storefactory.local");

    let result = async {
        until_status(addr, &token, &id, "ready").await?;
        let (status, _) = get_as_host(addr, &host).await?;
        assert_eq!(status, StatusCode::OK, "a ready store's host is not paused");
        let (status, _) = call(
            addr,
            Method::POST,
            &format!("/api/stores/{id}/suspend"),
            Some(&token),
            None,
        )
        .await?;
        assert_eq!(status, StatusCode::ACCEPTED);
        until_status(addr, &token, &id, "suspended").await?;
        let (status, page) = get_as_host(addr, &host).await?;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(page.contains("This store is paused"), "{page}");
        let client = cp.client().await?;
        let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
            kube::Api::namespaced(client, &format!("store-{id}"));
        assert!(pods.list(&Default::default()).await?.items.is_empty());

        let (status, resumed) = call(
            addr,
            Method::POST,
            &format!("/api/stores/{id}/resume"),
            Some(&token),
            None,
        )
        .await?;
        assert_eq!(status, StatusCode::ACCEPTED, "{resumed}");
        until_status(addr, &token, &id, "ready").await?;
        let (status, _) = get_as_host(addr, &host).await?;
        assert_eq!(status, StatusCode::OK, "served again once ready");
        let (status, _) = call(
            addr,
            Method::DELETE,
            &format!("/api/stores/{id}"),
            Some(&token),
            None,
        )
        .await?;
        assert_eq!(status, StatusCode::OK);
        until_status(addr, &token, &id, "deleted").await?;
        Ok(())
    }
    .await;
    if result.is_err() {
        let client = cp.client().await?;
        let namespaces: kube::Api<Namespace> = kube::Api::all(client);
        let _ = namespaces
            .delete(&format!("store-{id}"), &Default::default())
            .await;
    }
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .context("graceful shutdown took too long")???;
    result
}
