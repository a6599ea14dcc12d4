//! Custom domains against a real local control plane (storefactory-testkit): adding and
//! removing a domain updates the same Ingress in place while the store stays ready (or
//! suspended), one domain is never two stores', and refusals change nothing.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::networking::v1::Ingress;
use kube::runtime::watcher;
use kube::{Api, Client};
use storefactory_core::blueprint::BlueprintRegistry;
use storefactory_core::error::ErrorKind;
use storefactory_core::memory::MemoryRepository;
use storefactory_core::port::StoreRepository;
use storefactory_core::provisioner::{CreateStore, Provisioner, ProvisionerConfig};
use storefactory_core::spec::{StoreId, StoreSpec, TlsSpec};
use storefactory_core::store::{EventKind, StoreRecord, StoreStatus};

const WAIT: Duration = Duration::from_secs(90);

struct Harness {
    client: Client,
    repo: Arc<MemoryRepository>,
}

impl Harness {
    async fn new() -> Self {
        let cp = storefactory_testkit::shared().await.expect("control plane");
        Harness {
            client: cp.client().await.expect("client"),
            repo: Arc::new(MemoryRepository::new()),
        }
    }

    fn provisioner(&self) -> Provisioner {
        Provisioner::new(
            self.client.clone(),
            self.repo.clone(),
            Arc::new(BlueprintRegistry::builtin().expect("blueprints")),
            ProvisionerConfig {
                leader: None,
                paused_backend: Some(
                    "storefactory.platform.svc.cluster.local:8080"
                        .parse()
                        .unwrap(),
                ),
                ..ProvisionerConfig::default()
            },
        )
    }

    async fn record(&self, id: &StoreId) -> StoreRecord {
        self.repo.get_store(id).await.unwrap().expect("record")
    }

    async fn wait_for(&self, id: &StoreId, status: StoreStatus) -> StoreRecord {
        let started = Instant::now();
        loop {
            let record = self.record(id).await;
            if record.status == status {
                return record;
            }
            if started.elapsed() > WAIT {
                let events = self.repo.events(id, 0).await.unwrap();
                panic!("store {id} did not become {status}: {record:?}\n{events:#?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn ingresses(&self, id: &StoreId) -> Api<Ingress> {
        Api::namespaced(self.client.clone(), &id.namespace())
    }

    async fn ingress(&self, id: &StoreId) -> Ingress {
        self.ingresses(id).get("wordpress").await.expect("ingress")
    }

    /// Waits until the store's Ingress has exactly these rule hosts.
    async fn wait_for_hosts(&self, id: &StoreId, hosts: &[&str]) -> Ingress {
        let started = Instant::now();
        loop {
            let ingress = self.ingress(id).await;
            if rule_hosts(&ingress) == hosts {
                return ingress;
            }
            assert!(
                started.elapsed() < WAIT,
                "Ingress of {id} never had the hosts {hosts:?}: {:?}",
                rule_hosts(&ingress)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn statuses(&self, id: &StoreId) -> Vec<StoreStatus> {
        self.repo
            .events(id, 0)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|e| match e.kind {
                EventKind::Status { status, .. } => Some(status),
                _ => None,
            })
            .collect()
    }

    async fn steps(&self, id: &StoreId, step: &str) -> Vec<String> {
        self.repo
            .events(id, 0)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|e| match e.kind {
                EventKind::Step { step: s, message } if s == step => Some(message),
                _ => None,
            })
            .collect()
    }
}

fn rule_hosts(ingress: &Ingress) -> Vec<String> {
    ingress
        .spec
        .as_ref()
        .and_then(|s| s.rules.as_ref())
        .map(|rules| rules.iter().filter_map(|r| r.host.clone()).collect())
        .unwrap_or_default()
}

fn tls_hosts(ingress: &Ingress) -> Vec<String> {
    ingress
        .spec
        .as_ref()
        .and_then(|s| s.tls.as_ref())
        .and_then(|tls| tls.first())
        .and_then(|t| t.hosts.clone())
        .unwrap_or_default()
}

fn backends(ingress: &Ingress) -> Vec<String> {
    let rules = ingress.spec.as_ref().unwrap().rules.as_ref().unwrap();
    rules
        .iter()
        .map(|r| r.http.as_ref().unwrap().paths[0].clone())
        .map(|p| p.backend.service.unwrap().name)
        .collect()
}

fn request(id: &StoreId, tls: bool) -> CreateStore {
    let mut spec = StoreSpec::new(id.clone(), "alice", format!("store-{id}.storefactory.test"));
    if tls {
        spec.ingress.tls = Some(TlsSpec::ClusterIssuer("letsencrypt-test".to_owned()));
    }
    CreateStore {
        spec,
        name: format!("Shop {id}"),
        blueprint: None,
        inputs: Default::default(),
    }
}

/// Every version of the store's Ingress seen from now on, as its rule hosts.
fn record_ingress_versions(h: &Harness, id: &StoreId) -> Arc<Mutex<Vec<Vec<String>>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let api = h.ingresses(id);
    let sink = Arc::clone(&seen);
    tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default()).boxed();
        while let Some(event) = stream.next().await {
            if let Ok(watcher::Event::Apply(ingress) | watcher::Event::InitApply(ingress)) = event {
                sink.lock().unwrap().push(rule_hosts(&ingress));
            }
        }
    });
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domains_are_added_and_removed_in_place_unique_across_stores() {
    let h = Harness::new().await;
    let p = h.provisioner();
    let (a, b) = (StoreId::generate(), StoreId::generate());
    p.create(request(&a, true)).await.unwrap();
    p.create(request(&b, false)).await.unwrap();
    let host_a = format!("store-{a}.storefactory.test");
    let host_b = format!("store-{b}.storefactory.test");

    // Not ready yet: refused, nothing changes.
    let initialized = h.record(&b).await;
    let error = p.add_domain(&b, "early.example.com").await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Conflict);
    assert!(error.to_string().contains("is initialized"), "{error}");
    assert_eq!(h.record(&b).await, initialized);

    let run = {
        let p = p.clone();
        tokio::spawn(async move { p.run().await.expect("reconciler") })
    };
    h.wait_for(&a, StoreStatus::Ready).await;
    h.wait_for(&b, StoreStatus::Ready).await;
    let before = h.ingress(&a).await;
    assert_eq!(rule_hosts(&before), [host_a.as_str()]);
    let statuses_before = h.statuses(&a).await;
    let versions = record_ingress_versions(&h, &a);

    // Added: written as people write it, kept normalised; the same Ingress gains a rule and
    // a name on its certificate, and the store stays ready.
    let record = p.add_domain(&a, " Shop.Example.COM. ").await.unwrap();
    assert_eq!(record.status, StoreStatus::Ready);
    assert_eq!(record.spec.ingress.domains, ["shop.example.com"]);
    let after = h.wait_for_hosts(&a, &[&host_a, "shop.example.com"]).await;
    assert_eq!(tls_hosts(&after), [host_a.as_str(), "shop.example.com"]);
    assert_eq!(backends(&after), ["wordpress", "wordpress"]);
    assert_eq!(
        after.metadata.uid, before.metadata.uid,
        "the same Ingress, updated in place"
    );
    assert_eq!(h.record(&a).await.status, StoreStatus::Ready);
    assert_eq!(h.statuses(&a).await, statuses_before, "no status change");
    assert_eq!(
        h.steps(&a, "domain").await,
        ["domain shop.example.com added"]
    );
    // Adding it again changes nothing.
    assert_eq!(
        p.add_domain(&a, "shop.example.com").await.unwrap(),
        h.record(&a).await
    );
    assert_eq!(h.steps(&a, "domain").await.len(), 1);

    // Another store cannot have it, nor the first store's own host; bad names are refused;
    // none of it changes anything.
    let b_before = h.record(&b).await;
    let b_ingress = h.ingress(&b).await;
    for (domain, kind, text) in [
        (
            "shop.example.com",
            ErrorKind::Conflict,
            "already used by another store",
        ),
        (
            "SHOP.example.com",
            ErrorKind::Conflict,
            "already used by another store",
        ),
        (
            host_a.as_str(),
            ErrorKind::Conflict,
            "already used by another store",
        ),
        (host_b.as_str(), ErrorKind::Invalid, "the store's own host"),
        ("*.example.com", ErrorKind::Invalid, "wildcards"),
        ("10.1.2.3", ErrorKind::Invalid, "IP address"),
        ("localhost", ErrorKind::Invalid, "two labels"),
    ] {
        let error = p.add_domain(&b, domain).await.unwrap_err();
        assert_eq!(error.kind(), kind, "{domain}: {error}");
        assert!(error.to_string().contains(text), "{domain}: {error}");
    }
    let error = p.remove_domain(&b, "shop.example.com").await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound, "{error}");
    let error = p.remove_domain(&a, &host_a).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Invalid, "{error}");
    assert_eq!(h.record(&b).await, b_before);
    assert_eq!(
        h.ingress(&b).await.metadata.resource_version,
        b_ingress.metadata.resource_version,
        "the other store's Ingress is untouched"
    );

    // Suspended: a domain added now answers with the paused page like the store's host.
    p.suspend(&a).await.unwrap();
    h.wait_for(&a, StoreStatus::Suspended).await;
    let record = p.add_domain(&a, "www.example.com").await.unwrap();
    assert_eq!(record.status, StoreStatus::Suspended);
    let paused = h
        .wait_for_hosts(&a, &[&host_a, "shop.example.com", "www.example.com"])
        .await;
    assert_eq!(backends(&paused), ["storefactory-paused"; 3]);
    assert_eq!(h.record(&a).await.status, StoreStatus::Suspended);
    p.resume(&a).await.unwrap();
    h.wait_for(&a, StoreStatus::Ready).await;
    let resumed = h.ingress(&a).await;
    assert_eq!(backends(&resumed), ["wordpress"; 3]);

    // Removed: its rule and certificate name go, every other stays; it is free for others.
    let record = p.remove_domain(&a, "shop.example.com").await.unwrap();
    assert_eq!(record.spec.ingress.domains, ["www.example.com"]);
    let removed = h.wait_for_hosts(&a, &[&host_a, "www.example.com"]).await;
    assert_eq!(tls_hosts(&removed), [host_a.as_str(), "www.example.com"]);
    assert_eq!(removed.metadata.uid, before.metadata.uid);
    p.add_domain(&b, "shop.example.com").await.unwrap();
    h.wait_for_hosts(&b, &[&host_b, "shop.example.com"]).await;
    assert_eq!(
        h.steps(&a, "domain").await,
        [
            "domain shop.example.com added",
            "domain www.example.com added",
            "domain shop.example.com removed"
        ]
    );

    // Through all of it, every version of the Ingress kept the store's own host first.
    let versions = versions.lock().unwrap().clone();
    assert!(versions.len() >= 3, "{versions:?}");
    assert!(
        versions.iter().all(|hosts| hosts.first() == Some(&host_a)),
        "{versions:?}"
    );

    // Deleting a store releases its domains once it is gone (its Ingress with it), not while
    // it is being deleted.
    p.delete(&a).await.unwrap();
    let error = p.add_domain(&b, "www.example.com").await.unwrap_err();
    assert!(
        error.to_string().contains("already used by another store"),
        "{error}"
    );
    h.wait_for(&a, StoreStatus::Deleted).await;
    p.add_domain(&b, "www.example.com").await.unwrap();
    h.wait_for_hosts(&b, &[&host_b, "shop.example.com", "www.example.com"])
        .await;
    p.delete(&b).await.unwrap();
    h.wait_for(&b, StoreStatus::Deleted).await;
    run.abort();
}

// A process that does not reconcile (a replica serving the API, the command line while a
// server leads) records the change; the leader learns of it through the repository's event
// feed and applies it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_added_by_a_process_that_does_not_lead_is_applied_by_the_leader() {
    let h = Harness::new().await;
    let leader = h.provisioner();
    let replica = h.provisioner();
    let id = StoreId::generate();
    leader.create(request(&id, false)).await.unwrap();
    let run = {
        let p = leader.clone();
        tokio::spawn(async move { p.run().await.expect("reconciler") })
    };
    h.wait_for(&id, StoreStatus::Ready).await;
    let host = format!("store-{id}.storefactory.test");
    assert!(!replica.is_leading());

    replica
        .add_domain(&id, "replica.example.com")
        .await
        .unwrap();
    h.wait_for_hosts(&id, &[&host, "replica.example.com"]).await;
    replica
        .remove_domain(&id, "replica.example.com")
        .await
        .unwrap();
    h.wait_for_hosts(&id, &[&host]).await;
    assert_eq!(h.record(&id).await.status, StoreStatus::Ready);

    leader.delete(&id).await.unwrap();
    h.wait_for(&id, StoreStatus::Deleted).await;
    run.abort();
}
