//! What the reconciler asks of the apiserver when nothing happens: provisions `STORES` stores
//! (1,000 by default) on the local control plane, waits until all are ready, then counts the
//! Provisioner's own API requests over `IDLE_SECS` seconds (60 by default) of quiet.
//!
//! Run with `cargo bench -p storefactory-core --bench idle`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kube::config::{KubeConfigOptions, Kubeconfig};
use storefactory_core::blueprint::BlueprintRegistry;
use storefactory_core::memory::MemoryRepository;
use storefactory_core::port::{StoreFilter, StoreRepository};
use storefactory_core::provisioner::{CreateStore, Provisioner, ProvisionerConfig};
use storefactory_core::spec::{StoreId, StoreSpec};
use storefactory_core::store::StoreStatus;
use storefactory_testkit::{ControlPlane, Options};
use tower::util::MapRequestLayer;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // RUST_LOG=storefactory_core=debug shows what the reconciler does.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let stores = env_or("STORES", 1000) as usize;
    let idle = Duration::from_secs(env_or("IDLE_SECS", 60));
    let cp = ControlPlane::start(Options::default()).await?;

    // A client that counts every request the Provisioner sends.
    let requests = Arc::new(AtomicU64::new(0));
    let counter = requests.clone();
    let kubeconfig = Kubeconfig::read_from(cp.kubeconfig_path())?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    let client = kube::client::ClientBuilder::try_from(config)?
        .with_layer(&MapRequestLayer::new(move |request| {
            counter.fetch_add(1, Ordering::Relaxed);
            request
        }))
        .build();

    let repo = Arc::new(MemoryRepository::new());
    let provisioner = Provisioner::new(
        client,
        repo.clone(),
        Arc::new(BlueprintRegistry::builtin()?),
        ProvisionerConfig {
            leader: None,
            ..ProvisionerConfig::default()
        },
    );
    let runner = provisioner.clone();
    let run = tokio::spawn(async move { runner.run().await });

    let started = Instant::now();
    for _ in 0..stores {
        let id = StoreId::generate();
        let spec = StoreSpec::new(id.clone(), "bench", format!("store-{id}.idle.test"));
        provisioner
            .create(CreateStore {
                spec,
                name: String::new(),
                blueprint: None,
                inputs: Default::default(),
            })
            .await?;
    }
    loop {
        let records = repo.list_stores(&StoreFilter::default()).await?;
        let ready = records
            .iter()
            .filter(|r| r.status == StoreStatus::Ready)
            .count();
        if let Some(failed) = records.iter().find(|r| r.status == StoreStatus::Failed) {
            anyhow::bail!("store {} failed: {:?}", failed.id, failed.reason);
        }
        if ready == stores {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(1800),
            "only {ready} of {stores} ready"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let provisioning = requests.load(Ordering::Relaxed);
    println!(
        "{stores} stores ready after {:.1?}; {provisioning} API requests to get there ({:.1} per store)",
        started.elapsed(),
        provisioning as f64 / stores as f64
    );

    // Let the last status updates settle, then count over a quiet window.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = requests.load(Ordering::Relaxed);
    tokio::time::sleep(idle).await;
    let during = requests.load(Ordering::Relaxed) - before;
    println!(
        "idle for {}s with {stores} ready stores: {during} API requests ({:.2} per second)",
        idle.as_secs(),
        during as f64 / idle.as_secs_f64()
    );
    run.abort();
    Ok(())
}
