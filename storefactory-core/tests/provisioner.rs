//! The Provisioner against a real local control plane (storefactory-testkit): readiness
//! through real controller status propagation, failures, deletion, crash safety, drift and
//! concurrency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use kube::api::{DeleteParams, ListParams};
use kube::{Api, Client};
use storefactory_core::blueprint::{BlueprintRegistry, DEFAULT_BLUEPRINT, SecretValues};
use storefactory_core::memory::MemoryRepository;
use storefactory_core::port::StoreRepository;
use storefactory_core::product::parse_products;
use storefactory_core::provisioner::{CreateStore, Provisioner, ProvisionerConfig, store_selector};
use storefactory_core::request_counter::RequestCounter;
use storefactory_core::spec::{StoreId, StoreSpec};
use storefactory_core::store::{EventKind, StoreEvent, StoreRecord, StoreStatus};
use storefactory_testkit::Fault;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(90);

struct Harness {
    client: Client,
    repo: Arc<MemoryRepository>,
}

impl Harness {
    /// Whether the store has a warning event containing `text`.
    async fn has_warning(&self, id: &StoreId, text: &str) -> bool {
        self.repo
            .events(id, 0)
            .await
            .expect("events")
            .iter()
            .any(|e| matches!(&e.kind, EventKind::Warning { message } if message.contains(text)))
    }

    async fn new() -> Self {
        let cp = storefactory_testkit::shared().await.expect("control plane");
        Harness {
            client: cp.client().await.expect("client"),
            repo: Arc::new(MemoryRepository::new()),
        }
    }

    fn provisioner(&self) -> Provisioner {
        self.provisioner_with(ProvisionerConfig::default())
    }

    /// A Provisioner without leader election: the tests of this binary share one control
    /// plane, each with its own repository, so each reconciles its own stores.
    fn provisioner_with(&self, config: ProvisionerConfig) -> Provisioner {
        Provisioner::new(
            self.client.clone(),
            self.repo.clone(),
            Arc::new(BlueprintRegistry::builtin().expect("blueprints")),
            ProvisionerConfig {
                leader: None,
                ..config
            },
        )
    }

    async fn record(&self, id: &StoreId) -> Option<StoreRecord> {
        self.repo.get_store(id).await.expect("repository")
    }

    /// Waits until the store reaches `status`; panics with the store's history otherwise.
    async fn wait_for(&self, id: &StoreId, status: StoreStatus) -> StoreRecord {
        let started = Instant::now();
        loop {
            if let Some(record) = self.record(id).await {
                if record.status == status {
                    return record;
                }
                if record.status.is_settled() && started.elapsed() > Duration::from_secs(2) {
                    let events = self.repo.events(id, 0).await.unwrap();
                    panic!(
                        "store {id} settled as {} ({:?}), expected {status}: {events:#?}",
                        record.status, record.reason
                    );
                }
            }
            if started.elapsed() > WAIT {
                let events = self.repo.events(id, 0).await.unwrap();
                panic!(
                    "store {id} did not become {status} within {WAIT:?}: {:?}\n{events:#?}",
                    self.record(id).await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn count<K>(&self, id: &StoreId) -> usize
    where
        K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), &id.namespace());
        api.list(&ListParams::default().labels(&store_selector(id)))
            .await
            .expect("list")
            .items
            .len()
    }

    /// The statuses the store went through, in order.
    async fn statuses(&self, id: &StoreId) -> Vec<StoreStatus> {
        self.repo
            .events(id, 0)
            .await
            .expect("events")
            .into_iter()
            .filter_map(|e| match e.kind {
                EventKind::Status { status, .. } => Some(status),
                _ => None,
            })
            .collect()
    }

    async fn namespace_exists(&self, id: &StoreId) -> bool {
        Api::<Namespace>::all(self.client.clone())
            .get_opt(&id.namespace())
            .await
            .expect("get namespace")
            .is_some()
    }
}

fn spec(id: &StoreId) -> StoreSpec {
    let mut spec = StoreSpec::new(id.clone(), "alice", format!("store-{id}.storefactory.test"));
    spec.products = parse_products("T-Shirt|5.99|Cotton\nJeans|12.99|Denim").unwrap();
    spec
}

fn request(id: &StoreId) -> CreateStore {
    CreateStore {
        spec: spec(id),
        name: format!("Shop {id}"),
        blueprint: None,
        inputs: Default::default(),
    }
}

fn spawn(provisioner: &Provisioner) -> JoinHandle<()> {
    let provisioner = provisioner.clone();
    tokio::spawn(async move {
        provisioner.run().await.expect("reconciler");
    })
}

/// A Provisioner running in the background with one store it has taken to ready.
async fn ready_store(h: &Harness) -> (Provisioner, StoreId, JoinHandle<()>) {
    let p = h.provisioner();
    let id = StoreId::generate();
    p.create(request(&id)).await.unwrap();
    let run = spawn(&p);
    h.wait_for(&id, StoreStatus::Ready).await;
    (p, id, run)
}

/// Waits for the first provisioning step of the store: applying has begun.
async fn until_applying(events: &mut tokio::sync::broadcast::Receiver<StoreEvent>, id: &StoreId) {
    loop {
        let event = events.recv().await.unwrap();
        if event.store_id == *id && matches!(event.kind, EventKind::Step { .. }) {
            return;
        }
    }
}

/// Polls `check` until it holds; panics with `what` after [`WAIT`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < WAIT, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Deletes a store at the end of a test so the shared control plane stays clean.
async fn cleanup(provisioner: &Provisioner, harness: &Harness, id: &StoreId) {
    if provisioner.delete(id).await.is_ok() {
        harness.wait_for(id, StoreStatus::Deleted).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_reaches_ready_through_real_status_with_events_in_order() {
    let h = Harness::new().await;
    let p = h.provisioner();
    let id = StoreId::generate();
    let created = p.create(request(&id)).await.unwrap();
    assert_eq!(created.status, StoreStatus::Initialized);
    let run = spawn(&p);

    h.wait_for(&id, StoreStatus::Ready).await;
    let statuses = h.statuses(&id).await;
    assert_eq!(
        statuses,
        [
            StoreStatus::Initialized,
            StoreStatus::Provisioning,
            StoreStatus::Ready
        ]
    );
    let steps: Vec<String> = h
        .repo
        .events(&id, 0)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Step { step, .. } => Some(step),
            _ => None,
        })
        .collect();
    assert_eq!(steps.first().map(String::as_str), Some("apply"));
    for step in ["mysql", "wordpress", "seed"] {
        assert!(
            steps.iter().any(|s| s == step),
            "no {step} step in {steps:?}"
        );
    }
    let events = h.repo.events(&id, 0).await.unwrap();
    assert!(
        events
            .windows(2)
            .all(|w| w[0].seq < w[1].seq && w[0].at <= w[1].at)
    );

    // The three passwords are in the Secrets, different from each other, and the
    // credentials read them back.
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &id.namespace());
    let mysql = secrets.get("mysql").await.unwrap().data.unwrap();
    let credentials = p.credentials(&id).await.unwrap();
    assert_eq!(credentials.username, "admin");
    assert!(credentials.password.len() >= 20);
    assert_ne!(mysql["password"].0, mysql["root-password"].0);
    assert_ne!(mysql["password"].0, credentials.password.as_bytes());
    assert!(credentials.admin_url.ends_with("/wp-admin/"));

    cleanup(&p, &h, &id).await;
    run.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chosen_admin_password_is_used() {
    let h = Harness::new().await;
    let p = h.provisioner();
    let id = StoreId::generate();
    let mut req = request(&id);
    req.inputs = storefactory_core::blueprint::SecretInputs::one(
        "admin_password",
        "correct horse battery staple",
    );
    p.create(req).await.unwrap();
    let run = spawn(&p);
    h.wait_for(&id, StoreStatus::Ready).await;
    assert_eq!(
        p.credentials(&id).await.unwrap().password,
        "correct horse battery staple"
    );
    let mut short = request(&StoreId::generate());
    short.inputs = storefactory_core::blueprint::SecretInputs::one("admin_password", "short");
    assert!(p.create(short).await.is_err());
    cleanup(&p, &h, &id).await;
    run.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_seeding_step_fails_the_store_with_a_reason_and_can_be_retried() {
    let h = Harness::new().await;
    let cp = storefactory_testkit::shared().await.unwrap();
    let id = StoreId::generate();
    let guard = cp.kubelet().unwrap().inject(
        Fault::crash(1)
            .namespace(id.namespace())
            .label("app.kubernetes.io/name", "seed"),
    );
    let p = h.provisioner();
    let mut req = request(&id);
    // Fail on the first failed pod rather than after the Job controller's growing backoff.
    req.spec
        .params
        .insert("seed_backoff_limit".to_owned(), "0".to_owned());
    p.create(req).await.unwrap();
    let run = spawn(&p);
    let failed = h.wait_for(&id, StoreStatus::Failed).await;
    let reason = failed.reason.unwrap();
    assert!(
        reason.contains("seeding failed") && reason.contains("BackoffLimitExceeded"),
        "{reason}"
    );

    // Once the cause is gone, a retry provisions the store.
    drop(guard);
    p.retry(&id).await.unwrap();
    h.wait_for(&id, StoreStatus::Ready).await;
    assert!(
        p.retry(&id).await.is_err(),
        "a ready store cannot be retried"
    );
    cleanup(&p, &h, &id).await;
    run.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpullable_image_fails_the_store_with_a_reason() {
    let h = Harness::new().await;
    let cp = storefactory_testkit::shared().await.unwrap();
    let id = StoreId::generate();
    let _guard = cp.kubelet().unwrap().inject(
        Fault::image_pull()
            .namespace(id.namespace())
            .container("wordpress"),
    );
    let p = h.provisioner();
    p.create(request(&id)).await.unwrap();
    let run = spawn(&p);
    let failed = h.wait_for(&id, StoreStatus::Failed).await;
    let reason = failed.reason.unwrap();
    assert!(reason.contains("cannot be pulled"), "{reason}");
    assert!(reason.contains("wordpress"), "{reason}");
    cleanup(&p, &h, &id).await;
    run.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_is_not_ready_by_the_deadline_fails() {
    let h = Harness::new().await;
    let cp = storefactory_testkit::shared().await.unwrap();
    let id = StoreId::generate();
    let _guard = cp.kubelet().unwrap().inject(
        Fault::never_ready()
            .namespace(id.namespace())
            .container("mysql"),
    );
    let p = h.provisioner_with(ProvisionerConfig {
        ready_deadline: Duration::from_secs(3),
        ..ProvisionerConfig::default()
    });
    p.create(request(&id)).await.unwrap();
    let run = spawn(&p);
    let failed = h.wait_for(&id, StoreStatus::Failed).await;
    let reason = failed.reason.unwrap();
    assert!(
        reason.contains("not ready within 3 s") && reason.contains("mysql"),
        "{reason}"
    );
    cleanup(&p, &h, &id).await;
    run.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_the_namespace_then_marks_the_record_deleted() {
    let h = Harness::new().await;
    let (p, id, run) = ready_store(&h).await;
    assert!(h.namespace_exists(&id).await);

    let deleting = p.delete(&id).await.unwrap();
    assert_eq!(deleting.status, StoreStatus::Deleting);
    assert_eq!(
        p.delete(&id).await.unwrap().status,
        StoreStatus::Deleting,
        "repeating is harmless"
    );
    h.wait_for(&id, StoreStatus::Deleted).await;
    assert!(
        !h.namespace_exists(&id).await,
        "record marked deleted before the namespace was gone"
    );
    assert!(p.delete(&id).await.is_err(), "a deleted store is gone");
    run.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_store_that_is_still_provisioning_works() {
    let h = Harness::new().await;
    let p = h.provisioner();
    let id = StoreId::generate();
    p.create(request(&id)).await.unwrap();
    let run = spawn(&p);
    let mut events = p.subscribe();
    until_applying(&mut events, &id).await;
    p.delete(&id).await.unwrap();
    h.wait_for(&id, StoreStatus::Deleted).await;
    assert!(!h.namespace_exists(&id).await);
    run.abort();
}

async fn assert_one_of_each(h: &Harness, id: &StoreId) {
    assert_eq!(h.count::<Deployment>(id).await, 1);
    assert_eq!(h.count::<StatefulSet>(id).await, 1);
    assert_eq!(h.count::<Job>(id).await, 1);
    assert_eq!(h.count::<Service>(id).await, 2);
    assert_eq!(h.count::<Secret>(id).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provisioner_stopped_mid_apply_is_resumed_by_a_new_one() {
    let h = Harness::new().await;
    for delay_ms in [0u64, 20, 80] {
        let id = StoreId::generate();
        let first = h.provisioner();
        first.create(request(&id)).await.unwrap();
        let mut events = first.subscribe();
        let run = spawn(&first);
        // Stop at a chosen point: some time after applying began.
        until_applying(&mut events, &id).await;
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        run.abort();
        let _ = run.await;
        drop(first);

        let second = h.provisioner();
        let run = spawn(&second);
        h.wait_for(&id, StoreStatus::Ready).await;
        assert_one_of_each(&h, &id).await;
        cleanup(&second, &h, &id).await;
        run.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provisioner_stopped_mid_delete_is_resumed_by_a_new_one() {
    let h = Harness::new().await;
    let id = StoreId::generate();
    let first = h.provisioner();
    first.create(request(&id)).await.unwrap();
    let run = spawn(&first);
    h.wait_for(&id, StoreStatus::Ready).await;
    run.abort();
    let _ = run.await;
    // The deletion is recorded, but the Provisioner stops before it acts on it.
    first.delete(&id).await.unwrap();
    drop(first);

    let second = h.provisioner();
    let run = spawn(&second);
    h.wait_for(&id, StoreStatus::Deleted).await;
    assert!(!h.namespace_exists(&id).await);
    run.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_child_object_of_a_ready_store_comes_back() {
    let h = Harness::new().await;
    let (p, id, run) = ready_store(&h).await;

    let services: Api<Service> = Api::namespaced(h.client.clone(), &id.namespace());
    services
        .delete("wordpress", &DeleteParams::default())
        .await
        .unwrap();
    eventually("Service/wordpress was not restored", || async {
        services.get_opt("wordpress").await.unwrap().is_some()
    })
    .await;
    assert!(h.has_warning(&id, "Service/wordpress was deleted").await);
    cleanup(&p, &h, &id).await;
    run.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_stores_all_become_ready() {
    let h = Harness::new().await;
    let p = h.provisioner();
    let run = spawn(&p);
    let ids: Vec<StoreId> = (0..20).map(|_| StoreId::generate()).collect();
    let creations = ids.iter().map(|id| p.create(request(id)));
    for result in futures::future::join_all(creations).await {
        result.unwrap();
    }
    for id in &ids {
        h.wait_for(id, StoreStatus::Ready).await;
    }
    for id in &ids {
        p.delete(id).await.unwrap();
    }
    for id in &ids {
        h.wait_for(id, StoreStatus::Deleted).await;
    }
    run.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_and_deleting_the_same_store_at_once_ends_consistent() {
    let h = Harness::new().await;
    let p = h.provisioner();
    let run = spawn(&p);
    for _ in 0..3 {
        let id = StoreId::generate();
        let (created, deleted) = tokio::join!(p.create(request(&id)), p.delete(&id));
        created.unwrap();
        match deleted {
            // The delete came first: nothing to delete yet, the store lives on.
            Err(_) => {
                h.wait_for(&id, StoreStatus::Ready).await;
                p.delete(&id).await.unwrap();
            }
            Ok(record) => assert_eq!(record.status, StoreStatus::Deleting),
        }
        h.wait_for(&id, StoreStatus::Deleted).await;
        assert!(!h.namespace_exists(&id).await);
    }
    run.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_run_can_be_started_again_on_the_same_provisioner() {
    let h = Harness::new().await;
    let p = h.provisioner();
    let run = spawn(&p);
    tokio::time::sleep(Duration::from_millis(100)).await;
    run.abort();
    let _ = run.await;
    let id = StoreId::generate();
    p.create(request(&id)).await.unwrap();
    let run = spawn(&p);
    h.wait_for(&id, StoreStatus::Ready).await;
    cleanup(&p, &h, &id).await;
    run.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_that_is_not_the_stores_is_never_adopted_or_deleted() {
    let h = Harness::new().await;
    let id = StoreId::generate();
    let namespaces: Api<Namespace> = Api::all(h.client.clone());
    let foreign: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": {"name": id.namespace(), "labels": {"team": "someone-else"}}
    }))
    .unwrap();
    namespaces
        .create(&kube::api::PostParams::default(), &foreign)
        .await
        .unwrap();
    let p = h.provisioner();
    p.create(request(&id)).await.unwrap();
    let run = spawn(&p);
    let failed = h.wait_for(&id, StoreStatus::Failed).await;
    assert!(
        failed
            .reason
            .as_deref()
            .unwrap()
            .contains("already exists and does not belong"),
        "{failed:?}"
    );
    let ns = namespaces.get(&id.namespace()).await.unwrap();
    assert!(
        !ns.metadata
            .labels
            .unwrap()
            .contains_key("storefactory.io/store"),
        "adopted"
    );

    p.delete(&id).await.unwrap();
    h.wait_for(&id, StoreStatus::Deleted).await;
    let ns = namespaces.get_opt(&id.namespace()).await.unwrap();
    assert!(
        ns.is_some_and(|n| n.metadata.deletion_timestamp.is_none()),
        "foreign namespace deleted"
    );
    namespaces
        .delete(&id.namespace(), &DeleteParams::default())
        .await
        .unwrap();
    run.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_secret_of_a_ready_store_is_not_refilled_with_new_passwords() {
    let h = Harness::new().await;
    let (p, id, run) = ready_store(&h).await;
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &id.namespace());
    // Secrets are not watched (no cluster-wide Secret list or watch): the loss is found when
    // the Secret is next needed, and said plainly.
    secrets
        .delete("wordpress-admin", &DeleteParams::default())
        .await
        .unwrap();
    let error = p.credentials(&id).await.unwrap_err().to_string();
    assert!(error.contains("cannot be recovered"), "{error}");
    assert!(
        h.has_warning(&id, "Secret wordpress-admin was deleted")
            .await
    );
    secrets
        .delete("mysql", &DeleteParams::default())
        .await
        .unwrap();
    // A re-apply (a restart, drift elsewhere) does not refill either with new passwords.
    let services: Api<Service> = Api::namespaced(h.client.clone(), &id.namespace());
    services
        .delete("wordpress", &DeleteParams::default())
        .await
        .unwrap();
    eventually("Service/wordpress was not restored", || async {
        services.get_opt("wordpress").await.unwrap().is_some()
    })
    .await;
    for name in ["mysql", "wordpress-admin"] {
        assert!(
            secrets.get_opt(name).await.unwrap().is_none(),
            "{name} re-created with new passwords"
        );
    }
    assert_eq!(h.record(&id).await.unwrap().status, StoreStatus::Ready);
    cleanup(&p, &h, &id).await;
    run.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_during_provisioning_is_never_undone_by_the_reconcile_in_flight() {
    let h = Harness::new().await;
    let p = h.provisioner();
    let run = spawn(&p);
    for _ in 0..5 {
        let id = StoreId::generate();
        p.create(request(&id)).await.unwrap();
        // Delete while the provisioning reconcile is somewhere in its work.
        let mut events = p.subscribe();
        until_applying(&mut events, &id).await;
        p.delete(&id).await.unwrap();
        h.wait_for(&id, StoreStatus::Deleted).await;
        let statuses = h.statuses(&id).await;
        let deleting = statuses
            .iter()
            .position(|s| *s == StoreStatus::Deleting)
            .unwrap();
        assert_eq!(
            &statuses[deleting..],
            [StoreStatus::Deleting, StoreStatus::Deleted],
            "{statuses:?}"
        );
        assert!(!h.namespace_exists(&id).await);
    }
    run.abort();
}

/// Idle ready stores cost the apiserver nothing. On Kubernetes 1.20 some applies that change
/// nothing still bump the resource version (StatefulSets, Ingresses); at 100-300 stores the
/// reconciler used to re-apply ready stores on their own watch events for ever (~800
/// requests a second with 300 stores, `cargo bench -p storefactory-core --bench idle`). This
/// small case did not reproduce that loop before the fix; the bench is where it shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_stores_send_no_requests_while_nothing_changes() {
    let (h, counter) = counted_harness().await;
    // One reconcile at a time, so that re-applies wait in the queue as they do under load.
    let p = h.provisioner_with(ProvisionerConfig {
        concurrency: 1,
        ..ProvisionerConfig::default()
    });
    let ids: Vec<StoreId> = (0..8).map(|_| StoreId::generate()).collect();
    for id in &ids {
        p.create(request(id)).await.unwrap();
    }
    let run = spawn(&p);
    for id in &ids {
        h.wait_for(id, StoreStatus::Ready).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = counter.total();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let during = counter.total() - before;
    assert_eq!(during, 0, "{during} requests in 5 s from idle ready stores");
    for id in &ids {
        cleanup(&p, &h, id).await;
    }
    run.abort();
}

/// A harness whose client counts its requests by verb and resource.
async fn counted_harness() -> (Harness, RequestCounter) {
    let cp = storefactory_testkit::shared().await.unwrap();
    let kubeconfig = kube::config::Kubeconfig::read_from(cp.kubeconfig_path()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let counter = RequestCounter::new();
    let h = Harness {
        client: counter.client(config).unwrap(),
        repo: Arc::new(MemoryRepository::new()),
    };
    (h, counter)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioning_sends_each_object_once_and_lists_nothing_per_store() {
    let (h, counter) = counted_harness().await;
    let p = h.provisioner();
    let run = spawn(&p);
    // The watches list once when they start, for every store there will be.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = counter.snapshot();
    let ids: Vec<StoreId> = (0..4).map(|_| StoreId::generate()).collect();
    for id in &ids {
        p.create(request(id)).await.unwrap();
    }
    for id in &ids {
        h.wait_for(id, StoreStatus::Ready).await;
    }
    let after = counter.snapshot();
    let sent = |verb: &str| -> u64 {
        after
            .iter()
            .filter(|((v, _), _)| *v == verb)
            .map(|(key, n)| n - before.get(key).copied().unwrap_or(0))
            .sum()
    };
    let objects = BlueprintRegistry::builtin()
        .unwrap()
        .render(
            DEFAULT_BLUEPRINT,
            &spec(&ids[0]),
            SecretValues::Placeholders,
        )
        .unwrap();
    let secrets = objects.iter().filter(|o| o.kind() == "Secret").count() as u64;
    let stores = ids.len() as u64;
    // Secrets are created once; everything else is applied once: no second pass.
    assert_eq!(sent("CREATE"), secrets * stores, "{after:?}");
    assert_eq!(
        sent("APPLY"),
        (objects.len() as u64 - secrets) * stores,
        "{after:?}"
    );
    assert_eq!(sent("LIST"), 0, "{after:?}");
    // The namespace's identity is read once per store; nothing else.
    assert!(sent("GET") <= stores, "{after:?}");
    for id in &ids {
        cleanup(&p, &h, id).await;
    }
    run.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_child_object_of_a_ready_store_is_restored() {
    let h = Harness::new().await;
    let (p, id, run) = ready_store(&h).await;

    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), &id.namespace());
    deployments
        .patch(
            "wordpress",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    eventually("replicas were not restored to 1", || async {
        deployments
            .get("wordpress")
            .await
            .unwrap()
            .spec
            .unwrap()
            .replicas
            == Some(1)
    })
    .await;
    cleanup(&p, &h, &id).await;
    run.abort();
}

/// A blueprint that is not WooCommerce: one Deployment serving a static page, no database, no
/// seeding Job, one generated Secret and its credentials. Registered the way an embedder
/// would, with no change to the engine.
fn storefront_registry() -> BlueprintRegistry {
    const METADATA: &str = "\
description: A static storefront page.
parameters: {}
lifecycle:
  ready:
    - {kind: Deployment, name: web, step: web, message: The storefront is served}
  secrets:
    - name: editor
      keys:
        user: {from: store.owner}
        token: {generate: 24, input: editor_token}
  credentials: {secret: editor, username_key: user, password_key: token, path: edit/}
";
    const TEMPLATE: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: {{namespace}}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {{namespace}}
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: nginx:1.27
";
    let mut registry = BlueprintRegistry::builtin().unwrap();
    registry
        .register_blueprint(
            storefactory_core::blueprint::Blueprint::from_files(
                "storefront",
                [("blueprint.yaml", METADATA), ("00-web.yaml.hbs", TEMPLATE)],
            )
            .unwrap(),
        )
        .unwrap();
    registry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_blueprint_provisions_fails_and_deletes_through_the_same_engine() {
    let h = Harness::new().await;
    let p = Provisioner::new(
        h.client.clone(),
        h.repo.clone(),
        Arc::new(storefront_registry()),
        ProvisionerConfig {
            leader: None,
            ..ProvisionerConfig::default()
        },
    );
    let run = spawn(&p);
    let id = StoreId::generate();
    let mut req = request(&id);
    req.blueprint = Some("storefront".to_owned());
    req.inputs =
        storefactory_core::blueprint::SecretInputs::one("editor_token", "a chosen editor token");
    // The built-in blueprint's input is not this one's.
    let mut wrong = request(&StoreId::generate());
    wrong.blueprint = Some("storefront".to_owned());
    wrong.inputs =
        storefactory_core::blueprint::SecretInputs::one("admin_password", "correct horse battery");
    assert!(
        p.create(wrong)
            .await
            .unwrap_err()
            .to_string()
            .contains("editor_token")
    );

    p.create(req).await.unwrap();
    h.wait_for(&id, StoreStatus::Ready).await;
    let steps: Vec<String> = h
        .repo
        .events(&id, 0)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Step { step, .. } => Some(step),
            _ => None,
        })
        .collect();
    assert!(steps.contains(&"web".to_owned()), "{steps:?}");
    assert!(
        !steps.iter().any(|s| s == "mysql" || s == "seed"),
        "{steps:?}"
    );
    assert_eq!(h.count::<StatefulSet>(&id).await, 0);
    assert_eq!(h.count::<Job>(&id).await, 0);
    // It declares nothing to suspend: a suspend is refused, saying why, and changes nothing.
    let before = h.record(&id).await.unwrap();
    let refused = p.suspend(&id).await.unwrap_err();
    assert_eq!(
        refused.kind(),
        storefactory_core::error::ErrorKind::Conflict
    );
    assert!(
        refused
            .to_string()
            .contains("declares no workloads to suspend"),
        "{refused}"
    );
    assert_eq!(h.record(&id).await.unwrap(), before);
    let credentials = p.credentials(&id).await.unwrap();
    assert_eq!(credentials.username, "alice");
    assert_eq!(credentials.password, "a chosen editor token");
    assert!(
        credentials.admin_url.ends_with("/edit/"),
        "{}",
        credentials.admin_url
    );
    cleanup(&p, &h, &id).await;
    assert!(!h.namespace_exists(&id).await);

    // The same blueprint fails like any other when its image cannot be pulled.
    let cp = storefactory_testkit::shared().await.unwrap();
    let failing = StoreId::generate();
    let _guard = cp.kubelet().unwrap().inject(
        Fault::image_pull()
            .namespace(failing.namespace())
            .container("web"),
    );
    let mut req = request(&failing);
    req.blueprint = Some("storefront".to_owned());
    p.create(req).await.unwrap();
    let failed = h.wait_for(&failing, StoreStatus::Failed).await;
    assert!(failed.reason.unwrap().contains("nginx:1.27"));
    cleanup(&p, &h, &failing).await;
    run.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ready_store_whose_namespace_vanishes_fails_and_is_never_recreated_empty() {
    let h = Harness::new().await;
    let (p, id, run) = ready_store(&h).await;
    let namespaces: Api<Namespace> = Api::all(h.client.clone());
    namespaces
        .delete(&id.namespace(), &DeleteParams::default())
        .await
        .unwrap();
    let failed = h.wait_for(&id, StoreStatus::Failed).await;
    let reason = failed.reason.unwrap();
    assert!(reason.contains("outside Storefactory"), "{reason}");
    assert!(reason.contains("data is lost"), "{reason}");
    // Whatever happens next, nothing re-creates it: not a restart of the reconciler either.
    run.abort();
    eventually("the namespace is gone", || async {
        !h.namespace_exists(&id).await
    })
    .await;
    let again = spawn(&p);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!h.namespace_exists(&id).await, "re-created empty");
    assert_eq!(h.record(&id).await.unwrap().status, StoreStatus::Failed);
    // Deleting the failed store works, and leaves nothing behind.
    p.delete(&id).await.unwrap();
    h.wait_for(&id, StoreStatus::Deleted).await;
    again.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chosen_password_survives_a_restart_before_the_first_apply_sealed() {
    let h = Harness::new().await;
    let key = storefactory_core::seal::SealingKey::derive(b"the operator's secret, long enough");
    let config = || ProvisionerConfig {
        sealing_key: key.clone(),
        ..ProvisionerConfig::default()
    };
    let id = StoreId::generate();
    let chosen = "a password the user chose";
    let mut req = request(&id);
    req.inputs = storefactory_core::blueprint::SecretInputs::one("admin_password", chosen);
    // Recorded by one process that stops before it applies anything...
    let first = h.provisioner_with(config());
    first.create(req).await.unwrap();
    drop(first);
    let sealed = h.record(&id).await.unwrap().sealed_inputs.expect("sealed");
    assert!(!sealed.contains(chosen) && !sealed.contains("chose"));
    // ... and provisioned by another.
    let second = h.provisioner_with(config());
    let run = spawn(&second);
    h.wait_for(&id, StoreStatus::Ready).await;
    assert_eq!(second.credentials(&id).await.unwrap().password, chosen);
    assert_eq!(
        h.record(&id).await.unwrap().sealed_inputs,
        None,
        "kept after use"
    );
    cleanup(&second, &h, &id).await;
    run.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_store_make_one_set_of_passwords() {
    let h = Harness::new().await;
    let id = StoreId::generate();
    let a = h.provisioner();
    a.create(request(&id)).await.unwrap();
    // Two reconcilers race on the same store (no election between them here).
    let b = h.provisioner();
    let (run_a, run_b) = (spawn(&a), spawn(&b));
    h.wait_for(&id, StoreStatus::Ready).await;
    let seen_a = a.credentials(&id).await.unwrap().password;
    let seen_b = b.credentials(&id).await.unwrap().password;
    assert_eq!(seen_a, seen_b);
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &id.namespace());
    let mysql = secrets.get("mysql").await.unwrap();
    let created = mysql.metadata.resource_version.clone();
    // A third pass of either changes nothing: the Secret is never written again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        secrets
            .get("mysql")
            .await
            .unwrap()
            .metadata
            .resource_version,
        created
    );
    run_b.abort();
    cleanup(&a, &h, &id).await;
    run_a.abort();
}

/// The pods left in the store's namespace, by name.
async fn pods_of(h: &Harness, id: &StoreId) -> Vec<String> {
    let api: Api<k8s_openapi::api::core::v1::Pod> =
        Api::namespaced(h.client.clone(), &id.namespace());
    api.list(&ListParams::default())
        .await
        .expect("list pods")
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect()
}

/// Name and UID of every object of kind `K` in the store's namespace (labelled or not).
async fn uids<K>(h: &Harness, id: &StoreId) -> Vec<(String, String)>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(h.client.clone(), &id.namespace());
    let mut found: Vec<(String, String)> = api
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .map(|o| {
            let meta = o.meta().clone();
            (meta.name.unwrap_or_default(), meta.uid.unwrap_or_default())
        })
        .collect();
    found.sort();
    found
}

async fn ingress_backend(h: &Harness, id: &StoreId) -> String {
    let api: Api<k8s_openapi::api::networking::v1::Ingress> =
        Api::namespaced(h.client.clone(), &id.namespace());
    let ingress = api.get("wordpress").await.expect("ingress");
    let rules = ingress.spec.unwrap().rules.unwrap();
    let path = &rules[0].http.as_ref().unwrap().paths[0];
    path.backend.service.as_ref().unwrap().name.clone()
}

async fn replicas(h: &Harness, id: &StoreId) -> (Option<i32>, Option<i32>) {
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), &id.namespace());
    let statefulsets: Api<StatefulSet> = Api::namespaced(h.client.clone(), &id.namespace());
    (
        deployments
            .get("wordpress")
            .await
            .unwrap()
            .spec
            .unwrap()
            .replicas,
        statefulsets
            .get("mysql")
            .await
            .unwrap()
            .spec
            .unwrap()
            .replicas,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_store_runs_no_pod_keeps_its_data_and_resumes_with_the_same_passwords() {
    let h = Harness::new().await;
    let p = h.provisioner_with(ProvisionerConfig {
        paused_backend: Some(
            "storefactory.platform.svc.cluster.local:8080"
                .parse()
                .unwrap(),
        ),
        ..ProvisionerConfig::default()
    });
    let id = StoreId::generate();
    p.create(request(&id)).await.unwrap();

    // Not ready yet: neither suspended nor resumed, and nothing changes.
    let initialized = h.record(&id).await.unwrap();
    for refused in [p.suspend(&id).await, p.resume(&id).await] {
        let error = refused.unwrap_err();
        assert_eq!(error.kind(), storefactory_core::error::ErrorKind::Conflict);
        assert!(error.to_string().contains("is initialized"), "{error}");
    }
    assert_eq!(h.record(&id).await.unwrap(), initialized);

    let run = spawn(&p);
    h.wait_for(&id, StoreStatus::Ready).await;
    assert_eq!(ingress_backend(&h, &id).await, "wordpress");
    let credentials = p.credentials(&id).await.unwrap();
    let jobs = uids::<Job>(&h, &id).await;
    let secrets = uids::<Secret>(&h, &id).await;
    let claims = uids::<k8s_openapi::api::core::v1::PersistentVolumeClaim>(&h, &id).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(claims.len(), 2, "WordPress and MySQL volumes: {claims:?}");
    assert!(!pods_of(&h, &id).await.is_empty());

    // A ready store cannot be resumed.
    let ready = h.record(&id).await.unwrap();
    let error = p.resume(&id).await.unwrap_err();
    assert!(
        error.to_string().contains("only suspended stores"),
        "{error}"
    );
    assert_eq!(h.record(&id).await.unwrap(), ready);

    let suspending = p.suspend(&id).await.unwrap();
    assert_eq!(suspending.status, StoreStatus::Suspending);
    h.wait_for(&id, StoreStatus::Suspended).await;
    assert_eq!(replicas(&h, &id).await, (Some(0), Some(0)));
    assert_eq!(
        pods_of(&h, &id).await,
        Vec::<String>::new(),
        "no pod is left"
    );
    assert_eq!(
        uids::<Secret>(&h, &id).await,
        secrets,
        "the Secrets are kept"
    );
    assert_eq!(
        uids::<k8s_openapi::api::core::v1::PersistentVolumeClaim>(&h, &id).await,
        claims,
        "the volumes are kept"
    );
    assert_eq!(
        uids::<Job>(&h, &id).await,
        jobs,
        "the seeding Job stays, complete"
    );
    // Its host goes to the platform, which answers that it is paused.
    assert_eq!(ingress_backend(&h, &id).await, "storefactory-paused");
    let paused: Service = Api::namespaced(h.client.clone(), &id.namespace())
        .get("storefactory-paused")
        .await
        .unwrap();
    let paused = paused.spec.unwrap();
    assert_eq!(paused.type_.as_deref(), Some("ExternalName"));
    assert_eq!(
        paused.external_name.as_deref(),
        Some("storefactory.platform.svc.cluster.local")
    );
    assert_eq!(paused.ports.unwrap()[0].port, 8080);
    // Suspending again is refused; credentials can still be read.
    let suspended = h.record(&id).await.unwrap();
    let error = p.suspend(&id).await.unwrap_err();
    assert!(error.to_string().contains("only ready stores"), "{error}");
    assert_eq!(h.record(&id).await.unwrap(), suspended);
    assert_eq!(p.credentials(&id).await.unwrap(), credentials);

    let resuming = p.resume(&id).await.unwrap();
    assert_eq!(resuming.status, StoreStatus::Resuming);
    h.wait_for(&id, StoreStatus::Ready).await;
    assert_eq!(replicas(&h, &id).await, (Some(1), Some(1)));
    // Ready means running again, not "zero of zero replicas ready" read before the resume.
    let deployment: Deployment = Api::namespaced(h.client.clone(), &id.namespace())
        .get("wordpress")
        .await
        .unwrap();
    let statefulset: StatefulSet = Api::namespaced(h.client.clone(), &id.namespace())
        .get("mysql")
        .await
        .unwrap();
    assert_eq!(deployment.status.unwrap().ready_replicas, Some(1));
    assert_eq!(statefulset.status.unwrap().ready_replicas, Some(1));
    assert!(!pods_of(&h, &id).await.is_empty());
    assert_eq!(
        p.credentials(&id).await.unwrap(),
        credentials,
        "same passwords"
    );
    assert_eq!(uids::<Secret>(&h, &id).await, secrets);
    assert_eq!(
        uids::<k8s_openapi::api::core::v1::PersistentVolumeClaim>(&h, &id).await,
        claims,
        "same volumes, so the same data"
    );
    assert_eq!(
        uids::<Job>(&h, &id).await,
        jobs,
        "the seeding Job is not run again"
    );
    let job: Job = Api::namespaced(h.client.clone(), &id.namespace())
        .get("seed")
        .await
        .unwrap();
    assert_eq!(job.status.unwrap().succeeded, Some(1));
    assert_eq!(ingress_backend(&h, &id).await, "wordpress");
    let statuses = h.statuses(&id).await;
    assert_eq!(
        statuses[statuses.len() - 5..],
        [
            StoreStatus::Ready,
            StoreStatus::Suspending,
            StoreStatus::Suspended,
            StoreStatus::Resuming,
            StoreStatus::Ready
        ]
    );

    // A suspended store is deleted like any other.
    p.suspend(&id).await.unwrap();
    h.wait_for(&id, StoreStatus::Suspended).await;
    cleanup(&p, &h, &id).await;
    assert!(!h.namespace_exists(&id).await);
    run.abort();
}
