//! Provisioning latency against the local control plane with the simulated kubelet's delays
//! at zero. Prints, as medians over the stores:
//! - create → all objects applied (the Provisioner's "all objects applied" event);
//! - last pod ready (or Job pod succeeded) → store marked `ready`.
//!
//! Run with `cargo bench -p storefactory-core --bench provision` (`STORES=n` to change the
//! number of stores, 30 by default).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use storefactory_core::blueprint::BlueprintRegistry;
use storefactory_core::memory::MemoryRepository;
use storefactory_core::port::StoreRepository;
use storefactory_core::provisioner::{CreateStore, Provisioner, ProvisionerConfig};
use storefactory_core::spec::{StoreId, StoreSpec};
use storefactory_core::store::{EventKind, StoreStatus};
use storefactory_testkit::{ControlPlane, Options};

fn pod_done(pod: &Pod) -> bool {
    let Some(status) = &pod.status else {
        return false;
    };
    status.phase.as_deref() == Some("Succeeded")
        || status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let stores: usize = std::env::var("STORES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let cp = ControlPlane::start(Options::default()).await?;
    println!("control plane started in {:.1?}", cp.started_in());
    let client = cp.client().await?;
    let repo = Arc::new(MemoryRepository::new());
    let provisioner = Provisioner::new(
        client.clone(),
        repo.clone(),
        Arc::new(BlueprintRegistry::builtin()?),
        ProvisionerConfig {
            leader: None,
            ..ProvisionerConfig::default()
        },
    );

    // When each store's last pod became ready, as seen by a watch of our own.
    let last_pod_ready: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let seen = last_pod_ready.clone();
    let pods: Api<Pod> = Api::all(client.clone());
    let config = watcher::Config::default().labels("app.kubernetes.io/managed-by=storefactory");
    tokio::spawn(async move {
        let mut stream = watcher(pods, config).applied_objects().boxed();
        while let Some(Ok(pod)) = stream.next().await {
            if pod_done(&pod)
                && let Some(ns) = pod.metadata.namespace.clone()
            {
                seen.lock().expect("lock").insert(ns, Instant::now());
            }
        }
    });

    let mut events = provisioner.subscribe();
    let runner = provisioner.clone();
    let run = tokio::spawn(async move { runner.run().await });

    let mut created: HashMap<StoreId, Instant> = HashMap::new();
    let mut applied = Vec::new();
    let mut ready = Vec::new();
    let started = Instant::now();
    for _ in 0..stores {
        let id = StoreId::generate();
        let spec = StoreSpec::new(id.clone(), "bench", format!("store-{id}.bench.test"));
        created.insert(id.clone(), Instant::now());
        provisioner
            .create(CreateStore {
                spec,
                name: String::new(),
                blueprint: None,
                inputs: Default::default(),
            })
            .await?;
    }
    while ready.len() < stores {
        let event = tokio::time::timeout(Duration::from_secs(120), events.recv()).await??;
        let at = Instant::now();
        match &event.kind {
            EventKind::Step { message, .. } if message == "all objects applied" => {
                applied.push(at - created[&event.store_id]);
            }
            EventKind::Status {
                status: StoreStatus::Ready,
                ..
            } => {
                let pod_ready = last_pod_ready
                    .lock()
                    .expect("lock")
                    .get(&event.store_id.namespace())
                    .copied();
                ready.push(
                    pod_ready
                        .map(|p| at.saturating_duration_since(p))
                        .unwrap_or_default(),
                );
            }
            EventKind::Status {
                status: StoreStatus::Failed,
                reason,
            } => {
                anyhow::bail!("store {} failed: {reason:?}", event.store_id);
            }
            _ => {}
        }
    }
    let total = started.elapsed();
    println!("stores: {stores}, all ready after {total:.2?}");
    println!(
        "create -> all objects applied: median {:.1?}",
        median(applied)
    );
    println!(
        "last pod ready -> store ready: median {:.1?}",
        median(ready)
    );

    for id in created.keys() {
        provisioner.delete(id).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    for id in created.keys() {
        while repo.get_store(id).await?.map(|r| r.status) != Some(StoreStatus::Deleted) {
            anyhow::ensure!(Instant::now() < deadline, "stores were not deleted in time");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    run.abort();
    Ok(())
}
