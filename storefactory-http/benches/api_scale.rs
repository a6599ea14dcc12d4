//! The HTTP API under load, on a real server on a loopback port with its reconciler working
//! against the local control plane:
//!
//! 1. `CLIENTS` concurrent clients (64 by default) create `STORES` stores (200 by default)
//!    through `POST /api/stores` and read `GET /api/stores` between creations, while the
//!    server provisions them: latency p50/p99 of each, and when the last store was ready;
//! 2. with every store ready, the Kubernetes requests the server sends over `IDLE_SECS`
//!    seconds (60 by default) of idleness, and the server's memory;
//! 3. with `LIST_STORES` stores (10,000 by default) of `OWNERS` users (10 by default) in the
//!    database, the latency of the first page of one user's `GET /api/stores`, of an admin's
//!    page of every store, and the time to walk every page of the user's stores;
//!
//! Before all that, the creations of 1. against a server that provisions nothing, on a control
//! plane with no store yet: the cost of the request path alone.
//!
//! The control plane and its simulated kubelet run in a child process, so that the memory
//! this process holds is the server's (with its reconciler) and the benchmark's small client.
//!
//! ```sh
//! STORES=200 CLIENTS=64 LIST_STORES=10000 OWNERS=10 cargo bench -p storefactory-http --bench api_scale
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use axum::body::Bytes;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use storefactory_core::port::StoreRepository;
use storefactory_core::spec::{StoreId, StoreSpec};
use storefactory_core::store::{StoreRecord, StoreStatus};
use storefactory_http::{Server, ServerConfig};
use storefactory_sql::{Quota, Role};
use storefactory_testkit::bench::{
    ChildControlPlane, env_usize, host_control_plane_if_child, rss_mib, rss_split_mib,
};

/// One request on a fresh connection, as a browser or script without keep-alive would.
async fn call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<(StatusCode, Value, Duration)> {
    let started = Instant::now();
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
    let response = sender.send_request(builder.body(body)?).await?;
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    let took = started.elapsed();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((status, value, took))
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort();
    if samples.is_empty() {
        println!("  {what}: no samples");
        return;
    }
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "  {what:<44} n={:<6} p50 {:>9.2?}  p99 {:>9.2?}  max {:>9.2?}",
        samples.len(),
        pick(0.5),
        pick(0.99),
        pick(1.0)
    );
}

fn p99(samples: &[Duration]) -> Duration {
    samples
        .get(((samples.len().max(1) - 1) as f64 * 0.99).round() as usize)
        .copied()
        .unwrap_or_default()
}

async fn login(addr: SocketAddr, username: &str, password: &str) -> Result<String> {
    let (status, body, _) = call(
        addr,
        Method::POST,
        "/api/auth/login",
        None,
        Some(json!({"username": username, "password": password})),
    )
    .await?;
    ensure!(status == StatusCode::OK, "login: {status} {body}");
    body["access_token"]
        .as_str()
        .map(str::to_owned)
        .context("no token in the login answer")
}

/// 400 requests of `path` from 8 clients at once.
async fn sample_pages(addr: SocketAddr, token: &Arc<String>, path: &str) -> Result<Vec<Duration>> {
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (token, path) = (token.clone(), path.to_owned());
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            for _ in 0..50 {
                let (status, body, took) =
                    call(addr, Method::GET, &path, Some(&token), None).await?;
                ensure!(status == StatusCode::OK, "GET {path}: {status}");
                ensure!(body["stores"].as_array().is_some_and(|s| !s.is_empty()));
                samples.push(took);
            }
            anyhow::Ok(samples)
        }));
    }
    let mut samples = Vec::new();
    for worker in workers {
        samples.extend(worker.await??);
    }
    Ok(samples)
}

fn server_config(dir: &std::path::Path, kubeconfig: &std::path::Path) -> ServerConfig {
    let mut config = ServerConfig::default();
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.database = dir.join("bench.db");
    config.kubeconfig = Some(kubeconfig.to_owned());
    config.admin_password = Some("bench-admin-password".to_owned());
    config.token_key = Some("k".repeat(32));
    config.max_store_creations = u32::MAX;
    // One server on this control plane: no need to wait for a Lease.
    config.provisioner.leader = None;
    config
}

/// A server serving on its loopback port, with its users.
struct Running {
    addr: SocketAddr,
    state: storefactory_http::AppState,
    stop: tokio::sync::oneshot::Sender<()>,
    serving: tokio::task::JoinHandle<storefactory_http::Result<()>>,
}

impl Running {
    /// Binds a server with `config`, adds `users` (password `bench-password`) and serves.
    async fn start(config: ServerConfig, users: &[&str], quota: Quota) -> Result<Running> {
        let server = Server::bind(config).await?;
        let (addr, state) = (server.local_addr(), server.state().clone());
        for user in users {
            state
                .db()
                .create_user(user, "bench-password", Role::User, quota)
                .await?;
        }
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Ok(Running {
            addr,
            state,
            stop,
            serving,
        })
    }

    async fn stop(self) -> Result<()> {
        let _ = self.stop.send(());
        self.serving.await??;
        Ok(())
    }
}

/// `clients` clients create `stores` stores between them, each reading the first page of
/// 50 stores after each creation: the latencies of the creations and of the reads.
async fn create_stores(
    addr: SocketAddr,
    token: &Arc<String>,
    clients: usize,
    stores: usize,
) -> Result<(Vec<Duration>, Vec<Duration>)> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..clients {
        let (next, token) = (next.clone(), token.clone());
        workers.push(tokio::spawn(async move {
            let (mut posts, mut gets) = (Vec::new(), Vec::new());
            while next.fetch_add(1, Ordering::Relaxed) < stores {
                let (status, body, took) = call(
                    addr,
                    Method::POST,
                    "/api/stores",
                    Some(&token),
                    Some(json!({"name": "bench", "sample_products": "Mug|4.5|"})),
                )
                .await?;
                ensure!(status == StatusCode::CREATED, "POST: {status} {body}");
                posts.push(took);
                let (status, body, took) = call(
                    addr,
                    Method::GET,
                    "/api/stores?limit=50",
                    Some(&token),
                    None,
                )
                .await?;
                ensure!(status == StatusCode::OK, "GET: {status} {body}");
                gets.push(took);
            }
            anyhow::Ok((posts, gets))
        }));
    }
    let (mut posts, mut gets) = (Vec::new(), Vec::new());
    for worker in workers {
        let (p, g) = worker.await??;
        posts.extend(p);
        gets.extend(g);
    }
    Ok((posts, gets))
}

fn main() -> Result<()> {
    host_control_plane_if_child();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(bench())
}

async fn bench() -> Result<()> {
    let stores = env_usize("STORES", 200);
    let clients = env_usize("CLIENTS", 64);
    let list_stores = env_usize("LIST_STORES", 10_000);
    let idle_secs = env_usize("IDLE_SECS", 60);
    let owners = env_usize("OWNERS", 10).max(1);
    println!(
        "STORES={stores} CLIENTS={clients} IDLE_SECS={idle_secs} LIST_STORES={list_stores} OWNERS={owners} cargo bench -p storefactory-http --bench api_scale"
    );
    let rss_before_cluster = rss_mib();
    let cp = tokio::task::spawn_blocking(ChildControlPlane::start).await??;
    let quota = Quota {
        max_stores: 1_000_000,
        max_storage_gib: 1_000_000_000,
    };
    // ---- 0: the request path alone --------------------------------------------------------
    // The creations of 1. against a server that reconciles nothing, on a control plane that
    // holds no store yet: what the requests cost without provisioning beside them. First,
    // because once 1,000 stores exist a new server's watches begin by listing them all.
    let alone_dir = tempfile::tempdir()?;
    let mut alone_config = server_config(alone_dir.path(), cp.kubeconfig_path());
    alone_config.provisioner.only = Some(Default::default());
    let alone = Running::start(alone_config, &["bench"], quota).await?;
    let token = Arc::new(login(alone.addr, "bench", "bench-password").await?);
    let started = Instant::now();
    let (mut alone_posts, mut alone_gets) =
        create_stores(alone.addr, &token, clients, stores).await?;
    alone.stop().await?;
    drop(alone_dir);
    println!(
        "{stores} stores created by {clients} clients, a server that provisions nothing (the request path alone):"
    );
    report("POST /api/stores", &mut alone_posts);
    report("GET /api/stores?limit=50", &mut alone_gets);
    println!("  all created after {:.1?}", started.elapsed());

    let dir = tempfile::tempdir()?;
    let config = server_config(dir.path(), cp.kubeconfig_path());
    let running = Running::start(config, &["bench", "lister"], quota).await?;
    let (addr, server_state) = (running.addr, running.state.clone());
    let db = server_state.db().clone();
    let token = Arc::new(login(addr, "bench", "bench-password").await?);

    // ---- 1: creations and reads while provisioning runs -----------------------------------
    let started = Instant::now();
    let (mut posts, mut gets) = create_stores(addr, &token, clients, stores).await?;
    let created_in = started.elapsed();
    // Told before the wait for every store to be ready, which takes minutes.
    println!("{stores} stores created by {clients} clients while the server provisions them:");
    report("POST /api/stores", &mut posts);
    report("GET /api/stores?limit=50 (while provisioning)", &mut gets);
    println!("  all created after {created_in:.1?}");
    let deadline = Instant::now() + Duration::from_secs(900);
    let ready_in = loop {
        let counts = db.count_stores_by_status().await?;
        let ready = counts
            .iter()
            .find(|(s, _)| *s == StoreStatus::Ready)
            .map_or(0, |(_, n)| *n);
        let failed = counts
            .iter()
            .find(|(s, _)| *s == StoreStatus::Failed)
            .map_or(0, |(_, n)| *n);
        ensure!(failed == 0, "{failed} stores failed");
        if ready as usize >= stores {
            break started.elapsed();
        }
        ensure!(Instant::now() < deadline, "only {ready} of {stores} ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "  all ready after {ready_in:.1?}; server RSS {:.0} MiB (this process before the server started: {rss_before_cluster:.0} MiB)",
        rss_mib()
    );

    // ---- 2: idle with every store ready ---------------------------------------------------
    let kube = server_state.metrics().kube_counter().clone();
    let before = kube.snapshot();
    tokio::time::sleep(Duration::from_secs(idle_secs as u64)).await;
    let after = kube.snapshot();
    let idle_rss = rss_mib();
    let (idle_anon, idle_file) = rss_split_mib();
    let mut idle_requests = 0;
    let mut idle_detail = String::new();
    for (key, n) in &after {
        let new = n - before.get(key).copied().unwrap_or(0);
        if new > 0 {
            idle_requests += new;
            idle_detail.push_str(&format!(" {} {}: {new};", key.0, key.1));
        }
    }
    println!(
        "{stores} ready stores, idle for {idle_secs} s: {idle_requests} Kubernetes requests from the server;{idle_detail} server RSS {idle_rss:.0} MiB ({idle_anon:.0} MiB allocated, {idle_file:.0} MiB of mapped files, its executable's included)"
    );

    // ---- 3: listing with many stores -------------------------------------------------------
    // The stores belong to `OWNERS` users, interleaved as creations over time would leave
    // them: one user's page must not cost a walk through everyone else's stores.
    let mut names = vec!["lister".to_owned()];
    for i in 1..owners {
        let name = format!("owner{i}");
        db.create_user(&name, "bench-password", Role::User, quota)
            .await?;
        names.push(name);
    }
    let inserting = Instant::now();
    for i in 0..list_stores {
        let id = StoreId::new(format!("l{i:07}"))?;
        let owner = &names[i % owners];
        let spec = StoreSpec::new(id.clone(), owner, format!("store-{id}.bench.test"));
        let mut record = StoreRecord::new(spec, format!("listed {i}"), "woocommerce");
        // Recorded as ready without a cluster object: nothing queues them, so the
        // reconciler leaves them alone, and the listing reads real rows.
        record.status = StoreStatus::Ready;
        db.insert_store(&record).await?;
    }
    let mine = list_stores.div_ceil(owners);
    println!(
        "{list_stores} stores of {owners} users inserted in {:.1?}; the lister owns {mine}, one in {owners}",
        inserting.elapsed()
    );
    let token = Arc::new(login(addr, "lister", "bench-password").await?);
    let mut pages = sample_pages(addr, &token, "/api/stores?limit=12&order=newest").await?;
    report("GET /api/stores?limit=12 (the dashboard page)", &mut pages);
    let mut full_pages = sample_pages(addr, &token, "/api/stores").await?;
    report(
        "GET /api/stores (default page: 500 stores)",
        &mut full_pages,
    );
    let admin = Arc::new(login(addr, "admin", "bench-admin-password").await?);
    let mut admin_pages = sample_pages(addr, &admin, "/api/stores?all=true&limit=12").await?;
    report(
        "GET /api/stores?all=true&limit=12 (an admin)",
        &mut admin_pages,
    );
    let walking = Instant::now();
    let (mut cursor, mut seen, mut requests) = (None::<String>, 0usize, 0usize);
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/stores?limit=500&cursor={c}"),
            None => "/api/stores?limit=500".to_owned(),
        };
        let (status, body, _) = call(addr, Method::GET, &path, Some(&token), None).await?;
        ensure!(status == StatusCode::OK, "GET {path}: {status} {body}");
        requests += 1;
        seen += body["stores"].as_array().map_or(0, Vec::len);
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    ensure!(seen == mine, "walked {seen} of the lister's {mine} stores");
    println!(
        "  every page of the lister's {mine} stores, 500 a page: {requests} requests in {:.1?}",
        walking.elapsed()
    );

    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!("targets:");
    println!(
        "  POST /api/stores p99 {:.1?} with {clients} clients while provisioning (target <= 100 ms: {})",
        p99(&posts),
        verdict(p99(&posts) <= Duration::from_millis(100))
    );
    println!(
        "    the same creations with nothing provisioning: p99 {:.1?}",
        p99(&alone_posts)
    );
    println!(
        "  GET /api/stores page p99 {:.1?} with {list_stores} stores of {owners} users (target <= 10 ms: {})",
        p99(&pages),
        verdict(p99(&pages) <= Duration::from_millis(10))
    );
    println!(
        "  {idle_requests} Kubernetes requests in {idle_secs} s idle with {stores} ready stores (target 0: {})",
        verdict(idle_requests == 0)
    );
    println!(
        "  server RSS {idle_rss:.0} MiB with {stores} ready stores (target <= 80 MiB: {})",
        verdict(idle_rss <= 80.0)
    );
    running.stop().await?;
    Ok(())
}
