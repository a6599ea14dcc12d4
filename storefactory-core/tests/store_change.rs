//! Changing ready stores on the local control plane (real etcd, kube-apiserver and
//! kube-controller-manager, a simulated kubelet that also grows volumes as a CSI resizer
//! would): bigger volumes, resources, products, title and currency, and what is refused.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, ResourceQuota};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use storefactory_core::blueprint::BlueprintRegistry;
use storefactory_core::change::StoreChange;
use storefactory_core::error::{Error, ErrorKind};
use storefactory_core::memory::MemoryRepository;
use storefactory_core::port::{Quota, StoreRepository};
use storefactory_core::product::parse_products;
use storefactory_core::provisioner::{CreateStore, Provisioner, ProvisionerConfig};
use storefactory_core::spec::{Currency, StoreId, StoreSpec};
use storefactory_core::store::{EventKind, StoreRecord, StoreStatus};
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(90);

struct Harness {
    client: Client,
    repo: Arc<MemoryRepository>,
    provisioner: Provisioner,
}

impl Harness {
    async fn new() -> Self {
        let cp = storefactory_testkit::shared().await.expect("control plane");
        let client = cp.client().await.expect("client");
        let repo = Arc::new(MemoryRepository::new());
        let provisioner = Provisioner::new(
            client.clone(),
            repo.clone(),
            Arc::new(BlueprintRegistry::builtin().expect("blueprints")),
            ProvisionerConfig {
                leader: None,
                ..ProvisionerConfig::default()
            },
        );
        Harness {
            client,
            repo,
            provisioner,
        }
    }

    fn run(&self) -> JoinHandle<()> {
        let provisioner = self.provisioner.clone();
        tokio::spawn(async move { provisioner.run().await.expect("reconciler") })
    }

    async fn record(&self, id: &StoreId) -> StoreRecord {
        self.repo
            .get_store(id)
            .await
            .expect("repository")
            .expect("store")
    }

    /// Waits until the store reaches `status`; panics with its history otherwise.
    async fn wait_for(&self, id: &StoreId, status: StoreStatus) -> StoreRecord {
        let started = Instant::now();
        loop {
            let record = self.record(id).await;
            if record.status == status {
                return record;
            }
            let settled = record.status.is_settled() && started.elapsed() > Duration::from_secs(2);
            if settled || started.elapsed() > WAIT {
                let events = self.repo.events(id, 0).await.unwrap();
                panic!(
                    "store {id} is {} ({:?}), expected {status}: {events:#?}",
                    record.status, record.reason
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A store made ready by the harness's provisioner.
    async fn ready_store(&self, spec: StoreSpec) -> StoreId {
        let id = spec.id.clone();
        self.provisioner
            .create(CreateStore::new(spec))
            .await
            .expect("create");
        self.wait_for(&id, StoreStatus::Ready).await;
        id
    }

    async fn claim(&self, id: &StoreId) -> PersistentVolumeClaim {
        Api::<PersistentVolumeClaim>::namespaced(self.client.clone(), &id.namespace())
            .get("wordpress")
            .await
            .expect("claim")
    }

    async fn job_uid(&self, id: &StoreId) -> String {
        Api::<Job>::namespaced(self.client.clone(), &id.namespace())
            .get("seed")
            .await
            .expect("job")
            .metadata
            .uid
            .expect("uid")
    }

    async fn events(&self, id: &StoreId) -> Vec<EventKind> {
        self.repo
            .events(id, 0)
            .await
            .expect("events")
            .into_iter()
            .map(|e| e.kind)
            .collect()
    }

    async fn cleanup(&self, id: &StoreId) {
        if self.provisioner.delete(id).await.is_ok() {
            self.wait_for(id, StoreStatus::Deleted).await;
        }
    }
}

fn spec(id: &StoreId) -> StoreSpec {
    let mut spec = StoreSpec::new(id.clone(), "alice", format!("store-{id}.storefactory.test"));
    spec.products = parse_products("T-Shirt|5.99|Cotton\nJeans|12.99|Denim").unwrap();
    spec
}

/// The storage a claim requests and has.
fn sizes(claim: &PersistentVolumeClaim) -> (String, Option<String>) {
    let requested = claim.spec.as_ref().unwrap().resources.as_ref().unwrap();
    let requested = requested.requests.as_ref().unwrap()["storage"].0.clone();
    let capacity = claim
        .status
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .map(|c| c["storage"].0.clone());
    (requested, capacity)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bigger_volume_grows_in_place_and_the_store_is_ready_again() {
    let h = Harness::new().await;
    let run = h.run();
    let id = h.ready_store(spec(&StoreId::generate())).await;
    let claim_uid = h.claim(&id).await.metadata.uid;
    assert_eq!(
        sizes(&h.claim(&id).await),
        ("2Gi".to_owned(), Some("2Gi".to_owned()))
    );
    let seed_job = h.job_uid(&id).await;
    // The resizer waits until the test lets it: the store waits for it meanwhile.
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(h.client.clone(), &id.namespace());
    let hold = |value: serde_json::Value| {
        Patch::Merge(serde_json::json!({
            "metadata": {"annotations": {storefactory_testkit::RESIZE_HOLD_ANNOTATION: value}}
        }))
    };
    claims
        .patch("wordpress", &PatchParams::default(), &hold("true".into()))
        .await
        .unwrap();

    let change = StoreChange {
        storage_gib: Some(12),
        ..StoreChange::default()
    };
    let changed = h.provisioner.change(&id, &change).await.unwrap();
    assert_eq!(changed.status, StoreStatus::Updating);
    assert_eq!(changed.spec.wordpress.storage.as_str(), "12Gi");
    let started = Instant::now();
    loop {
        let waiting = h.events(&id).await.iter().any(|e| {
            matches!(e, EventKind::Step { step, message }
                if step == "storage"
                    && message == "waiting for volume claim wordpress to grow from 2Gi to 12Gi")
        });
        if waiting {
            break;
        }
        assert!(started.elapsed() < WAIT, "{:#?}", h.events(&id).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(h.record(&id).await.status, StoreStatus::Updating);
    assert_eq!(
        sizes(&h.claim(&id).await),
        ("12Gi".to_owned(), Some("2Gi".to_owned())),
        "asked for, not grown yet"
    );
    claims
        .patch(
            "wordpress",
            &PatchParams::default(),
            &hold(serde_json::Value::Null),
        )
        .await
        .unwrap();
    let ready = h.wait_for(&id, StoreStatus::Ready).await;
    assert_eq!(ready.reason, None);

    // The same claim, grown: its request and, through the resizer, its capacity.
    let claim = h.claim(&id).await;
    assert_eq!(claim.metadata.uid, claim_uid, "the claim is grown in place");
    assert_eq!(sizes(&claim), ("12Gi".to_owned(), Some("12Gi".to_owned())));
    // The namespace's quota grew to hold the bigger volume (12 GiB + 1 GiB of MySQL is more
    // than the default 10 GiB): otherwise the apiserver would have refused the claim.
    let quota = Api::<ResourceQuota>::namespaced(h.client.clone(), &id.namespace())
        .get("store-quota")
        .await
        .unwrap();
    let hard = quota.spec.unwrap().hard.unwrap();
    assert_eq!(hard["requests.storage"].0, "13Gi");
    // Seeding did not run again for a bigger volume.
    assert_eq!(h.job_uid(&id).await, seed_job);

    let events = h.events(&id).await;
    let updating = events.iter().find_map(|e| match e {
        EventKind::Status {
            status: StoreStatus::Updating,
            reason,
        } => reason.clone(),
        _ => None,
    });
    assert_eq!(
        updating.as_deref(),
        Some("changing WordPress storage 2Gi -> 12Gi")
    );
    assert!(
        events.iter().any(|e| matches!(e,
            EventKind::Step { step, message } if step == "storage" && message.contains("new size"))),
        "{events:#?}"
    );
    let statuses: Vec<StoreStatus> = events
        .iter()
        .filter_map(|e| match e {
            EventKind::Status { status, .. } => Some(*status),
            _ => None,
        })
        .collect();
    assert_eq!(
        statuses[statuses.len() - 2..],
        [StoreStatus::Updating, StoreStatus::Ready]
    );

    h.cleanup(&id).await;
    run.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_products_title_and_currency_run_seeding_again_and_resources_do_not() {
    let h = Harness::new().await;
    let run = h.run();
    let id = h.ready_store(spec(&StoreId::generate())).await;
    let first_job = h.job_uid(&id).await;

    // Resources only: the Deployment changes, seeding does not run again.
    let resources = serde_json::from_value(serde_json::json!({
        "cpu_request": "200m", "memory_request": "300Mi",
        "cpu_limit": "600m", "memory_limit": "600Mi"
    }))
    .unwrap();
    let change = StoreChange {
        wordpress_resources: Some(resources),
        ..StoreChange::default()
    };
    h.provisioner.change(&id, &change).await.unwrap();
    h.wait_for(&id, StoreStatus::Ready).await;
    let deployment = Api::<Deployment>::namespaced(h.client.clone(), &id.namespace())
        .get("wordpress")
        .await
        .unwrap();
    let container = &deployment.spec.unwrap().template.spec.unwrap().containers[0];
    let limits = container
        .resources
        .as_ref()
        .unwrap()
        .limits
        .as_ref()
        .unwrap();
    assert_eq!(limits["memory"].0, "600Mi");
    // Ready again only once a pod of the new template is: the one WordPress pod left has
    // the new limits.
    let pods = Api::<Pod>::namespaced(h.client.clone(), &id.namespace())
        .list(&ListParams::default().labels("app.kubernetes.io/name=wordpress"))
        .await
        .unwrap()
        .items;
    let live: Vec<_> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    assert_eq!(live.len(), 1, "{pods:#?}");
    let container = &live[0].spec.as_ref().unwrap().containers[0];
    let limits = container
        .resources
        .as_ref()
        .unwrap()
        .limits
        .as_ref()
        .unwrap();
    assert_eq!(limits["memory"].0, "600Mi");
    let ready = live[0]
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    assert!(ready, "{:#?}", live[0].status);
    assert_eq!(h.job_uid(&id).await, first_job, "seeding is not run again");

    // Products, title and currency: the seeding Job runs again with them.
    let change = StoreChange {
        products: Some(parse_products("T-Shirt|7.50|Organic cotton\nMug|3|Ceramic").unwrap()),
        site_title: Some("Changed Shop".to_owned()),
        currency: Some(Currency::new("EUR").unwrap()),
        ..StoreChange::default()
    };
    let changed = h.provisioner.change(&id, &change).await.unwrap();
    assert_eq!(changed.status, StoreStatus::Updating);
    h.wait_for(&id, StoreStatus::Ready).await;
    let second_job = h.job_uid(&id).await;
    assert_ne!(second_job, first_job, "a new seeding Job ran");
    let job = Api::<Job>::namespaced(h.client.clone(), &id.namespace())
        .get("seed")
        .await
        .unwrap();
    assert_eq!(job.status.and_then(|s| s.succeeded), Some(1));
    let config = Api::<ConfigMap>::namespaced(h.client.clone(), &id.namespace())
        .get("seed")
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(config["site-title"], "Changed Shop");
    assert_eq!(config["currency"], "EUR");
    assert!(config["products.json"].contains("Organic cotton"));
    let record = h.record(&id).await;
    assert_eq!(record.spec.site_title, "Changed Shop");
    assert_eq!(record.spec.products.len(), 2);

    let events = h.events(&id).await;
    assert!(
        events.iter().any(|e| matches!(e,
            EventKind::Step { step, message }
                if step == "seed" && message.contains("running Job seed again"))),
        "{events:#?}"
    );
    assert!(events.iter().any(|e| matches!(e,
        EventKind::Status { status: StoreStatus::Updating, reason: Some(r) }
            if r.contains("products (2 products)") && r.contains("currency USD -> EUR"))));

    // The same change again changes nothing: no new status, no new Job.
    let again = h.provisioner.change(&id, &change).await.unwrap();
    assert_eq!(again.status, StoreStatus::Ready);
    assert_eq!(h.job_uid(&id).await, second_job);

    h.cleanup(&id).await;
    run.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_whose_storage_class_does_not_allow_expansion_is_refused() {
    let h = Harness::new().await;
    let run = h.run();
    let class_name = format!("fixed-{}", StoreId::generate());
    let classes: Api<StorageClass> = Api::all(h.client.clone());
    let class: StorageClass = serde_json::from_value(serde_json::json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": class_name},
        // The simulated kubelet provisions its claims; it just cannot grow them.
        "provisioner": "storefactory.io/simulated",
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
        "allowVolumeExpansion": false,
    }))
    .unwrap();
    classes
        .create(&PostParams::default(), &class)
        .await
        .unwrap();
    let mut spec = spec(&StoreId::generate());
    spec.storage_class = Some(class_name.clone());
    let id = h.ready_store(spec).await;
    let before = h.record(&id).await;

    let change = StoreChange {
        storage_gib: Some(4),
        ..StoreChange::default()
    };
    let error = h.provisioner.change(&id, &change).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Invalid, "{error}");
    let text = error.to_string();
    assert!(
        text.contains(&class_name) && text.contains("does not allow volume expansion"),
        "{text}"
    );
    // Nothing changed: the record, its history and the claim.
    let after = h.record(&id).await;
    assert_eq!(after.status, StoreStatus::Ready);
    assert_eq!(after.spec, before.spec);
    assert_eq!(sizes(&h.claim(&id).await).0, "2Gi");
    assert!(!h.events(&id).await.iter().any(
        |e| matches!(e, EventKind::Status { status, .. } if *status == StoreStatus::Updating)
    ));

    h.cleanup(&id).await;
    classes
        .delete(&class_name, &DeleteParams::default())
        .await
        .unwrap();
    run.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_changes_and_changes_to_stores_that_are_not_ready_are_refused_and_change_nothing() {
    let h = Harness::new().await;
    // Not running yet: the store stays `initialized`.
    let id = StoreId::generate();
    h.provisioner
        .create(CreateStore::new(spec(&id)))
        .await
        .unwrap();
    let change = StoreChange {
        site_title: Some("Too Early".to_owned()),
        ..StoreChange::default()
    };
    let error = h.provisioner.change(&id, &change).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::InvalidState {
                status: StoreStatus::Initialized,
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(error.kind(), ErrorKind::Conflict);

    let run = h.run();
    h.wait_for(&id, StoreStatus::Ready).await;
    let before = h.record(&id).await;

    // A smaller volume.
    let smaller = StoreChange {
        storage_gib: Some(1),
        ..StoreChange::default()
    };
    let error = h.provisioner.change(&id, &smaller).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Invalid);
    assert_eq!(error.field(), Some("storage_gib"));
    assert!(
        error.to_string().contains("2Gi"),
        "names the current size: {error}"
    );

    // Beyond the owner's storage quota: 2 GiB + 1 GiB in use, 6 allowed, 5 more asked for.
    h.repo.set_quota(
        "alice",
        Quota {
            max_stores: 1,
            max_storage_gib: 6,
        },
    );
    let bigger = StoreChange {
        storage_gib: Some(7),
        ..StoreChange::default()
    };
    let error = h.provisioner.change(&id, &bigger).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::QuotaExceeded, "{error}");

    // Invalid products.
    let bad_products: Result<StoreChange, _> = serde_json::from_value(serde_json::json!({
        "products": [{"name": "", "price": "1"}]
    }));
    let error = h
        .provisioner
        .change(&id, &bad_products.unwrap())
        .await
        .unwrap_err();
    assert_eq!(error.field(), Some("products[0]"), "{error}");

    let after = h.record(&id).await;
    assert_eq!(after.status, StoreStatus::Ready);
    assert_eq!(after.spec, before.spec);
    assert_eq!(
        sizes(&h.claim(&id).await),
        ("2Gi".to_owned(), Some("2Gi".to_owned()))
    );
    assert!(!h.events(&id).await.iter().any(
        |e| matches!(e, EventKind::Status { status, .. } if *status == StoreStatus::Updating)
    ));

    h.cleanup(&id).await;
    run.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_recorded_while_no_reconciler_runs_is_carried_out_by_the_next_one() {
    let h = Harness::new().await;
    let run = h.run();
    let id = h.ready_store(spec(&StoreId::generate())).await;
    let first_job = h.job_uid(&id).await;
    run.abort();
    let _ = run.await;

    // Recorded only: nothing reconciles (the process stopped, say, right after answering).
    let change = StoreChange {
        products: Some(parse_products("Lamp|19|Brass").unwrap()),
        ..StoreChange::default()
    };
    let changed = h.provisioner.change(&id, &change).await.unwrap();
    assert_eq!(changed.status, StoreStatus::Updating);

    // A new process picks it up at start, runs seeding again and observes it.
    let next = Harness {
        client: h.client.clone(),
        repo: h.repo.clone(),
        provisioner: Provisioner::new(
            h.client.clone(),
            h.repo.clone(),
            Arc::new(BlueprintRegistry::builtin().expect("blueprints")),
            ProvisionerConfig {
                leader: None,
                ..ProvisionerConfig::default()
            },
        ),
    };
    let run = next.run();
    next.wait_for(&id, StoreStatus::Ready).await;
    assert_ne!(next.job_uid(&id).await, first_job, "seeding ran again");
    let config = Api::<ConfigMap>::namespaced(h.client.clone(), &id.namespace())
        .get("seed")
        .await
        .unwrap()
        .data
        .unwrap();
    assert!(config["products.json"].contains("Lamp"));
    next.cleanup(&id).await;
    run.abort();
}
