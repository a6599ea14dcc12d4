//! Latency of `POST /api/stores` and `GET /api/stores` with 1,000 stores in the database,
//! through the full router (auth, JSON, SQLite) with `tower::ServiceExt::oneshot`.
//!
//! `cargo bench -p storefactory-http --bench api_latency`
//!
//! The reconciler is not running, and the Kubernetes client points at an unused port: these
//! requests never call the cluster (creating a store records it and queues the work), so
//! what is measured is the API itself.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use storefactory_core::port::StoreRepository;
use storefactory_core::spec::{StoreId, StoreSpec};
use storefactory_core::store::StoreRecord;
use storefactory_http::{AppState, ServerConfig, router};
use storefactory_sql::{Database, Quota, Role};
use tower::ServiceExt;

const STORES: usize = 1_000;
const SAMPLES: usize = 300;

async fn timed(router: &Router, request: Request<Body>, expect: StatusCode) -> Result<Duration> {
    let started = Instant::now();
    let response = router.clone().oneshot(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    let took = started.elapsed();
    anyhow::ensure!(
        status == expect,
        "{status}: {}",
        String::from_utf8_lossy(&body)
    );
    Ok(took)
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "{what:<40} n={:<4} median {:>8.2?}  p99 {:>8.2?}  mean {:>8.2?}  max {:>8.2?}",
        samples.len(),
        pick(0.5),
        pick(0.99),
        mean,
        pick(1.0)
    );
}

fn main() -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Database::open(dir.path().join("bench.db")).await?;
    let mut config = ServerConfig::default();
    config.provisioner.leader = None;
    config.admin_password = Some("bench-admin-password".to_owned());
    config.token_key = Some("k".repeat(32));
    // Measures the API, not the per-user creation budget.
    config.max_store_creations = u32::MAX;
    let unused: http::Uri = "http://127.0.0.1:9".parse()?;
    let client = kube::Client::try_from(kube::Config::new(unused))?;
    let state = AppState::new(&config, db.clone(), Some(client)).await?;
    let router = router(state);

    let quota = Quota {
        max_stores: 1_000_000,
        max_storage_gib: 1_000_000_000,
    };
    db.create_user("bench", "bench-password", Role::User, quota)
        .await?;
    let started = Instant::now();
    for _ in 0..STORES {
        let id = StoreId::generate();
        let host = format!("store-{id}.storefactory.local");
        let mut spec = StoreSpec::new(id, "bench", host);
        spec.products = storefactory_core::product::parse_products(
            "T-Shirt|599|Cotton t-shirt\nJeans|1299|Denim jeans",
        )?;
        db.insert_store(&StoreRecord::new(spec, "", "woocommerce"))
            .await?;
    }
    println!("inserted {STORES} stores in {:.2?}", started.elapsed());

    let login = Request::post("/api/auth/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            r#"{"username":"bench","password":"bench-password"}"#,
        ))?;
    let response = router.clone().oneshot(login).await?;
    let body: serde_json::Value =
        serde_json::from_slice(&response.into_body().collect().await?.to_bytes())?;
    let token = body["access_token"].as_str().context("token")?.to_owned();
    let bearer = format!("Bearer {token}");

    // Warm up connections and caches.
    for _ in 0..10 {
        let request = Request::get("/api/stores")
            .header(header::AUTHORIZATION, &bearer)
            .body(Body::empty())?;
        timed(&router, request, StatusCode::OK).await?;
    }

    let mut list = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let request = Request::get("/api/stores")
            .header(header::AUTHORIZATION, &bearer)
            .body(Body::empty())?;
        list.push(timed(&router, request, StatusCode::OK).await?);
    }
    report(&format!("GET /api/stores ({STORES} stores listed)"), list);

    let some_id = db
        .list_stores(&Default::default())
        .await?
        .first()
        .map(|r| r.id.to_string())
        .context("a store")?;
    let mut one = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let request = Request::get(format!("/api/stores/{some_id}"))
            .header(header::AUTHORIZATION, &bearer)
            .body(Body::empty())?;
        one.push(timed(&router, request, StatusCode::OK).await?);
    }
    report("GET /api/stores/{id}", one);

    let mut create = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let request = Request::post("/api/stores")
            .header(header::AUTHORIZATION, &bearer)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                r#"{"sample_products":"T-Shirt|599|Cotton t-shirt\nJeans|1299|Denim jeans","storage_size_gi":2}"#,
            ))?;
        create.push(timed(&router, request, StatusCode::CREATED).await?);
    }
    report(
        &format!("POST /api/stores ({STORES}+ stores in db)"),
        create,
    );
    Ok(())
}
