//! The apiserver restarts while stores are being provisioned: the same Provisioner, never
//! restarted, still takes every store to ready. Runs its own control plane, since the shared
//! one must not go away under other tests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use storefactory_core::blueprint::BlueprintRegistry;
use storefactory_core::memory::MemoryRepository;
use storefactory_core::port::StoreRepository;
use storefactory_core::provisioner::{CreateStore, Provisioner, ProvisionerConfig};
use storefactory_core::spec::{StoreId, StoreSpec};
use storefactory_core::store::{EventKind, StoreStatus};
use storefactory_testkit::{ControlPlane, KubeletConfig, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_converge_when_the_apiserver_restarts_mid_flight() {
    let mut options = Options::default();
    // Slow pods down so that the restart lands while stores are still provisioning.
    options.kubelet = Some(KubeletConfig::default().pod_start_delay(Duration::from_secs(2)));
    let cp = ControlPlane::start(options).await.expect("control plane");
    let client = cp.client().await.unwrap();
    let repo = Arc::new(MemoryRepository::new());
    let provisioner = Provisioner::new(
        client,
        repo.clone(),
        Arc::new(BlueprintRegistry::builtin().unwrap()),
        ProvisionerConfig {
            leader: None,
            ..ProvisionerConfig::default()
        },
    );
    let runner = provisioner.clone();
    let run = tokio::spawn(async move { runner.run().await });

    let mut events = provisioner.subscribe();
    let ids: Vec<StoreId> = (0..4).map(|_| StoreId::generate()).collect();
    for id in &ids {
        let spec = StoreSpec::new(id.clone(), "alice", format!("store-{id}.restart.test"));
        provisioner
            .create(CreateStore {
                spec,
                name: String::new(),
                blueprint: None,
                inputs: Default::default(),
            })
            .await
            .unwrap();
    }
    // Restart as soon as the first store starts applying.
    loop {
        let event = events.recv().await.unwrap();
        if matches!(event.kind, EventKind::Step { .. }) {
            break;
        }
    }
    cp.restart_apiserver().await.expect("restart apiserver");

    let started = Instant::now();
    for id in &ids {
        loop {
            let record = repo.get_store(id).await.unwrap().unwrap();
            match record.status {
                StoreStatus::Ready => break,
                StoreStatus::Failed => panic!("store {id} failed: {:?}", record.reason),
                _ if started.elapsed() > Duration::from_secs(120) => {
                    panic!("store {id} stuck in {} after the restart", record.status)
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    run.abort();
}
