//! A running server and a cluster that comes and goes: started before its cluster exists, it
//! connects when the cluster appears; under an apiserver restart it answers 503 only while
//! the apiserver is down, and provisions again once it is back. Each test runs a control
//! plane of its own (they stop it); one at a time, to spare the machine.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};
use storefactory_http::Server;
use storefactory_testkit::{ControlPlane, Options};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `METHOD path` with an optional JSON body and token: status and JSON body.
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<(u16, Value)> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("an HTTP status line")?;
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

/// A server on port 0 whose kubeconfig is `kubeconfig` (which need not exist yet).
async fn start_server(
    dir: &std::path::Path,
    kubeconfig: &std::path::Path,
) -> Result<(
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
)> {
    let mut config = common::config();
    config.listen = "127.0.0.1:0".parse()?;
    config.database = dir.join("server.db");
    config.kubeconfig = Some(kubeconfig.to_owned());
    let server = Server::bind(config).await?;
    let addr = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        server
            .run(async move {
                let _ = stopped.await;
            })
            .await
            .expect("the server runs");
    });
    Ok((addr, stop, running))
}

async fn login(addr: SocketAddr) -> Result<String> {
    let (status, body) = call(
        addr,
        "POST",
        "/api/auth/login",
        None,
        Some(json!({"username": "admin", "password": common::ADMIN_PASSWORD})),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    Ok(body["access_token"].as_str().context("token")?.to_owned())
}

/// Waits until `/ready` answers `want` (200 or 503), returning its body.
async fn ready_becomes(addr: SocketAddr, want: u16, within: Duration) -> Result<Value> {
    let started = Instant::now();
    loop {
        let (status, body) = call(addr, "GET", "/ready", None, None).await?;
        if status == want {
            return Ok(body);
        }
        if started.elapsed() > within {
            bail!("/ready still {status} after {within:?}: {body}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Creates a store and follows it to `ready`, then deletes it and follows it to `deleted`.
async fn provision_and_delete(addr: SocketAddr, token: &str) -> Result<()> {
    let (status, store) = call(
        addr,
        "POST",
        "/api/stores",
        Some(token),
        Some(json!({"sample_products": "Mug|4.50|Ceramic"})),
    )
    .await?;
    assert_eq!(status, 201, "{store}");
    let id = store["id"].as_str().context("id")?.to_owned();
    status_becomes(addr, token, &id, "ready").await?;
    let (status, deleting) = call(
        addr,
        "DELETE",
        &format!("/api/stores/{id}"),
        Some(token),
        None,
    )
    .await?;
    assert_eq!(status, 200, "{deleting}");
    status_becomes(addr, token, &id, "deleted").await
}

async fn status_becomes(addr: SocketAddr, token: &str, id: &str, want: &str) -> Result<()> {
    let started = Instant::now();
    loop {
        let (_, store) = call(addr, "GET", &format!("/api/stores/{id}"), Some(token), None).await?;
        if store["status"] == want {
            return Ok(());
        }
        if store["status"] == "failed" || started.elapsed() > Duration::from_secs(90) {
            bail!("store {id} did not become {want}: {store}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn a_server_started_before_its_cluster_connects_when_the_cluster_appears() -> Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir()?;
    let cluster_dir = dir.path().join("cluster");
    let kubeconfig = cluster_dir.join("kubeconfig");
    let (addr, stop, running) = start_server(dir.path(), &kubeconfig).await?;

    let not_ready = ready_becomes(addr, 503, Duration::from_secs(5)).await?;
    assert_eq!(not_ready["cluster"]["ok"], false, "{not_ready}");
    let token = login(addr).await?;
    let (status, refused) = call(
        addr,
        "POST",
        "/api/stores",
        Some(&token),
        Some(json!({"sample_products": "Mug|4.50|Ceramic"})),
    )
    .await?;
    assert_eq!(status, 503, "{refused}");
    assert_eq!(refused["code"], "cluster_unavailable", "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("no Kubernetes cluster is configured")),
        "{refused}"
    );

    // The cluster appears: its kubeconfig is written where the server looks.
    let cp = ControlPlane::start(Options::default().dir(&cluster_dir)).await?;
    let ready = ready_becomes(addr, 200, Duration::from_secs(30)).await?;
    // Generic for anonymous callers: no cluster version (the hardening of `/ready`).
    assert_eq!(ready["cluster"]["ok"], true, "{ready}");
    assert!(!ready.to_string().contains("v1.20"), "{ready}");
    provision_and_delete(addr, &token).await?;

    let _ = stop.send(());
    running.await?;
    drop(cp);
    Ok(())
}

#[tokio::test]
async fn a_running_server_survives_an_apiserver_restart() -> Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(Options::default().dir(dir.path().join("cluster"))).await?;
    let (addr, stop, running) = start_server(dir.path(), cp.kubeconfig_path()).await?;
    ready_becomes(addr, 200, Duration::from_secs(10)).await?;
    let token = login(addr).await?;

    cp.stop_apiserver().await?;
    let down = ready_becomes(addr, 503, Duration::from_secs(15)).await?;
    // Why is in the log; anonymous callers get a generic answer without addresses.
    assert_eq!(down["cluster"]["ok"], false, "{down}");
    assert_eq!(
        down["cluster"]["detail"], "Kubernetes cluster unreachable",
        "{down}"
    );
    let (status, refused) = call(
        addr,
        "POST",
        "/api/stores",
        Some(&token),
        Some(json!({"sample_products": "Mug|4.50|Ceramic"})),
    )
    .await?;
    assert_eq!(status, 503, "{refused}");
    assert_eq!(refused["code"], "cluster_unavailable", "{refused}");
    // The dashboard and the API still answer what needs no cluster.
    let (status, stores) = call(addr, "GET", "/api/stores", Some(&token), None).await?;
    assert_eq!(status, 200, "{stores}");

    cp.start_apiserver().await?;
    // No wait for the background check: the first request after the restart goes through.
    provision_and_delete(addr, &token).await?;
    ready_becomes(addr, 200, Duration::from_secs(5)).await?;

    let _ = stop.send(());
    running.await?;
    Ok(())
}

#[tokio::test]
async fn a_kubeconfig_that_changes_under_a_running_server_is_followed() -> Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir()?;
    let cluster_dir = dir.path().join("cluster");
    let options = || Options::default().dir(&cluster_dir).keep_data(true);
    let first = ControlPlane::start(options()).await?;
    let (addr, stop, running) = start_server(dir.path(), first.kubeconfig_path()).await?;
    ready_becomes(addr, 200, Duration::from_secs(10)).await?;
    let token = login(addr).await?;

    // The control plane stops, and starts again on other ports with other credentials: only
    // a server that reads its kubeconfig again can use it.
    let first_url = first.server_url().to_owned();
    drop(first);
    ready_becomes(addr, 503, Duration::from_secs(15)).await?;
    let second = ControlPlane::start(options()).await?;
    assert_ne!(second.server_url(), first_url);
    ready_becomes(addr, 200, Duration::from_secs(30)).await?;
    provision_and_delete(addr, &token).await?;

    let _ = stop.send(());
    running.await?;
    drop(second);
    Ok(())
}
