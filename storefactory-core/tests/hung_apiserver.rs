//! An apiserver that accepts connections and never answers cannot hold the reconcile slots:
//! each reconcile is given up after `reconcile_timeout`, and the store is looked at again.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use storefactory_core::blueprint::BlueprintRegistry;
use storefactory_core::memory::MemoryRepository;
use storefactory_core::provisioner::{CreateStore, Provisioner, ProvisionerConfig, ReconcileHook};
use storefactory_core::spec::{StoreId, StoreSpec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciles_against_a_hung_apiserver_end_and_come_back() {
    // Accepts every connection, reads nothing, answers nothing.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let uri: http::Uri = format!("http://{addr}").parse().unwrap();
    let client = kube::Client::try_from(kube::Config::new(uri)).unwrap();

    let finished = Arc::new(AtomicUsize::new(0));
    let counter = finished.clone();
    let provisioner = Provisioner::new(
        client,
        Arc::new(MemoryRepository::new()),
        Arc::new(BlueprintRegistry::builtin().unwrap()),
        ProvisionerConfig {
            leader: None,
            concurrency: 1,
            reconcile_timeout: Duration::from_millis(500),
            max_backoff: Duration::from_millis(200),
            on_reconcile: Some(ReconcileHook(Arc::new(move |_| {
                counter.fetch_add(1, Ordering::Relaxed);
            }))),
            ..ProvisionerConfig::default()
        },
    );
    let id = StoreId::generate();
    let spec = StoreSpec::new(id.clone(), "owner", format!("store-{id}.example.test"));
    provisioner.create(CreateStore::new(spec)).await.unwrap();
    let run = tokio::spawn({
        let provisioner = provisioner.clone();
        async move { provisioner.run().await }
    });

    // The watches cannot list either; the run goes on without them after its wait for them
    // (10 s), then each reconcile hangs on its first apply until the limit.
    let deadline = Instant::now() + Duration::from_secs(30);
    while finished.load(Ordering::Relaxed) < 3 {
        assert!(
            Instant::now() < deadline,
            "{} reconciles finished: a hung apiserver holds the slot",
            finished.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    run.abort();
}
