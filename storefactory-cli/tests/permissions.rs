//! `storefactory doctor`'s list of needed permissions is what the Provisioner really uses.
//!
//! A Provisioner with leader election runs a store through its whole life on the local
//! control plane — created, failed (its seeding pod crashes), retried, ready, credentials
//! read, suspended, resumed, changed, deleted — through a client layer that records every request as the apiserver
//! authorizes it: (verb, API group, resource). That set must equal the permissions doctor
//! names for an identity that has none: nothing doctor asks for is unused (the chart grants
//! exactly doctor's list, so an unused entry is a needless grant), and nothing used is
//! missing from it (a missing one would fail in production, not in doctor).

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde_json::Value;
use storefactory_core::blueprint::BlueprintRegistry;
use storefactory_core::memory::MemoryRepository;
use storefactory_core::port::StoreRepository;
use storefactory_core::provisioner::{
    CreateStore, LeaderConfig, Provisioner, ProvisionerConfig, default_identity,
};
use storefactory_core::spec::{StoreId, StoreSpec};
use storefactory_core::store::StoreStatus;
use storefactory_testkit::{Fault, shared};

const BIN: &str = env!("CARGO_BIN_EXE_storefactory");

/// (verb, group, resource, namespace): the namespace only for namespaced grants (the Lease).
type Permission = (String, String, String, Option<String>);

/// Records the authorization attributes of every request that passes through it.
#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<BTreeSet<Permission>>>,
    /// Lease requests go to one namespace: doctor names it.
    lease_namespace: String,
}

impl Recorder {
    fn seen(&self) -> BTreeSet<Permission> {
        self.seen.lock().unwrap().clone()
    }

    /// The apiserver's view of a request (its RequestInfo): `/api/v1/...` is the core
    /// group, `/apis/<group>/<version>/...` another; `namespaces/<ns>/<resource>[/<name>]`
    /// is namespaced. GET is `get` with a name, `watch` with `watch=true`, `list` otherwise.
    /// A server-side apply (PATCH) that creates its object is also authorized as `create`.
    fn record(&self, method: &http::Method, uri: &http::Uri, status: http::StatusCode) {
        let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
        let (group, rest) = match segments.as_slice() {
            ["api", _version, rest @ ..] => ("", rest),
            ["apis", group, _version, rest @ ..] => (*group, rest),
            _ => return, // discovery and /version: allowed to every authenticated user
        };
        let (namespace, resource, name) = match rest {
            ["namespaces", namespace, resource, name @ ..] => {
                (Some(*namespace), *resource, name.first().copied())
            }
            [resource, name @ ..] => (None, *resource, name.first().copied()),
            [] => return,
        };
        let watch = uri
            .query()
            .unwrap_or_default()
            .split('&')
            .any(|pair| pair == "watch=true" || pair == "watch=1");
        let mut verbs = vec![match (method.as_str(), name, watch) {
            ("GET", Some(_), _) => "get",
            ("GET", None, true) => "watch",
            ("GET", None, false) => "list",
            ("POST", ..) => "create",
            ("PATCH", ..) => "patch",
            ("PUT", ..) => "update",
            ("DELETE", Some(_), _) => "delete",
            ("DELETE", None, _) => "deletecollection",
            (other, ..) => panic!("unexpected request {other} {uri}"),
        }];
        if method == http::Method::PATCH && status == http::StatusCode::CREATED {
            verbs.push("create");
        }
        let scope = (resource == "leases").then(|| {
            assert_eq!(namespace, Some(self.lease_namespace.as_str()), "{uri}");
            self.lease_namespace.clone()
        });
        let mut seen = self.seen.lock().unwrap();
        for verb in verbs {
            seen.insert((
                verb.to_owned(),
                group.to_owned(),
                resource.to_owned(),
                scope.clone(),
            ));
        }
    }
}

impl<S> tower::Layer<S> for Recorder {
    type Service = Recording<S>;
    fn layer(&self, inner: S) -> Recording<S> {
        Recording {
            inner,
            recorder: self.clone(),
        }
    }
}

#[derive(Clone)]
struct Recording<S> {
    inner: S,
    recorder: Recorder,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, R> tower::Service<http::Request<B>> for Recording<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    R: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.method().clone();
        let uri = request.uri().clone();
        let recorder = self.recorder.clone();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            recorder.record(&method, &uri, response.status());
            Ok(response)
        })
    }
}

/// What `storefactory doctor` says an identity without permissions lacks.
async fn doctor_list(kubeconfig: &std::path::Path, lease_namespace: &str) -> BTreeSet<Permission> {
    let dir = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(BIN)
        .current_dir(dir.path())
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--db")
        .arg(dir.path().join("sf.db"))
        .args(["--lease-namespace", lease_namespace])
        .args(["doctor", "--output", "json"])
        .env_remove("STOREFACTORY_LEASE_NAMESPACE")
        .output()
        .await
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(8),
        "doctor finds permissions missing"
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("a JSON report");
    report["missing_permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let field = |f: &str| p[f].as_str().unwrap().to_owned();
            (
                field("verb"),
                field("group"),
                field("resource"),
                p["namespace"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

async fn wait_for(repo: &MemoryRepository, id: &StoreId, status: StoreStatus) {
    let started = Instant::now();
    loop {
        let record = repo.get_store(id).await.unwrap();
        if record.as_ref().is_some_and(|r| r.status == status) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "store {id} did not become {status}: {record:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_exactly_the_permissions_a_store_lifecycle_uses() {
    let cp = shared().await.expect("control plane");
    let admin = cp.client().await.unwrap();
    let lease_ns = cp.namespace(&admin, "permissions").await.unwrap();
    let recorder = Recorder {
        lease_namespace: lease_ns.name().to_owned(),
        ..Recorder::default()
    };
    let kubeconfig = kube::config::Kubeconfig::read_from(cp.kubeconfig_path()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let client = kube::client::ClientBuilder::try_from(config)
        .unwrap()
        .with_layer(&recorder)
        .build();

    let repo = Arc::new(MemoryRepository::new());
    let id = StoreId::generate();
    let provisioner = Provisioner::new(
        client,
        repo.clone(),
        Arc::new(BlueprintRegistry::builtin().unwrap()),
        ProvisionerConfig {
            // Only this test's store: the shared control plane holds other tests' stores.
            only: Some([id.clone()].into_iter().collect()),
            leader: Some(LeaderConfig {
                namespace: lease_ns.name().to_owned(),
                name: "permissions-test".to_owned(),
                identity: default_identity(),
                lease_duration: Duration::from_secs(4),
                retry_period: Duration::from_millis(500),
            }),
            ..ProvisionerConfig::default()
        },
    );

    // Seeding fails once: the store fails, and a retry deletes and re-creates its Job.
    let fault = cp.kubelet().unwrap().inject(
        Fault::crash(1)
            .namespace(id.namespace())
            .label("app.kubernetes.io/name", "seed"),
    );
    let mut spec = StoreSpec::new(id.clone(), "alice", format!("store-{id}.storefactory.test"));
    spec.params
        .insert("seed_backoff_limit".to_owned(), "0".to_owned());
    provisioner
        .create(CreateStore {
            spec,
            name: "Permissions".to_owned(),
            blueprint: None,
            inputs: Default::default(),
        })
        .await
        .unwrap();
    let run = {
        let provisioner = provisioner.clone();
        tokio::spawn(async move { provisioner.run().await.expect("reconciler") })
    };
    wait_for(&repo, &id, StoreStatus::Failed).await;
    drop(fault);
    provisioner.retry(&id).await.unwrap();
    wait_for(&repo, &id, StoreStatus::Ready).await;
    let credentials = provisioner.credentials(&id).await.unwrap();
    assert_eq!(credentials.username, "admin");
    // Suspended (its finished seeding pod deleted) and resumed.
    provisioner.suspend(&id).await.unwrap();
    wait_for(&repo, &id, StoreStatus::Suspended).await;
    provisioner.resume(&id).await.unwrap();
    wait_for(&repo, &id, StoreStatus::Ready).await;
    // Changed: a bigger volume (its StorageClass checked) and new products (the seeding
    // Job's ConfigMap compared, the Job replaced).
    let change = storefactory_core::change::StoreChange {
        storage_gib: Some(3),
        products: Some(storefactory_core::product::parse_products("Mug|3|Ceramic").unwrap()),
        ..Default::default()
    };
    provisioner.change(&id, &change).await.unwrap();
    wait_for(&repo, &id, StoreStatus::Ready).await;
    // Renewals of the Lease (updates) happen every retry period.
    tokio::time::sleep(Duration::from_secs(2)).await;
    provisioner.delete(&id).await.unwrap();
    wait_for(&repo, &id, StoreStatus::Deleted).await;
    run.abort();

    let used = recorder.seen();
    let listed = doctor_list(cp.restricted_kubeconfig_path(), lease_ns.name()).await;
    let unused: Vec<_> = listed.difference(&used).collect();
    let unlisted: Vec<_> = used.difference(&listed).collect();
    assert!(
        unused.is_empty() && unlisted.is_empty(),
        "doctor names permissions the Provisioner never used: {unused:#?}\n\
         and the Provisioner used permissions doctor does not name: {unlisted:#?}"
    );
    // The point of the exercise: no Secret is read in bulk.
    for verb in ["list", "watch"] {
        assert!(
            !used.iter().any(|p| p.0 == verb && p.2 == "secrets"),
            "{verb} secrets"
        );
    }
    eprintln!("{} permissions used, all named by doctor", used.len());
}
