//! The shared control plane with its simulated kubelet, driven like a real cluster.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStatus, Namespace, PersistentVolumeClaim, Pod};
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::serde::de::DeserializeOwned;
use kube::api::{ListParams, PostParams};
use kube::runtime::wait::{Condition, await_condition, conditions};
use kube::{Api, Client, Resource};
use serde_json::json;
use storefactory_testkit::{Fault, shared};

const WAIT: Duration = Duration::from_secs(60);

fn object<T: DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).expect("a valid object")
}

async fn create<K>(client: &Client, ns: &str, value: serde_json::Value) -> Result<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + k8s_openapi::serde::Serialize
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    Ok(api.create(&PostParams::default(), &object(value)).await?)
}

async fn wait_for<K>(client: &Client, ns: &str, name: &str, cond: impl Condition<K>) -> Result<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let found = tokio::time::timeout(WAIT, await_condition(api, name, cond))
        .await
        .with_context(|| format!("timed out waiting for {} {ns}/{name}", K::kind(&())))??;
    found.with_context(|| format!("{} {ns}/{name} is gone", K::kind(&())))
}

/// A pod template with an init container and a port (protocol set: apiserver 1.20 requires it
/// under server-side apply).
fn template(app: &str, image: &str) -> serde_json::Value {
    json!({
        "metadata": {"labels": {"app": app}},
        "spec": {
            "initContainers": [{"name": "prepare", "image": "busybox:1.36", "command": ["true"]}],
            "containers": [{
                "name": app, "image": image,
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
            }],
        },
    })
}

#[tokio::test]
async fn deployment_statefulset_and_job_complete_then_namespace_deletion_finishes() -> Result<()> {
    let cp = shared().await?;
    eprintln!("control plane started in {:.1?}", cp.started_in());
    let client = cp.client().await?;
    let ns = cp.namespace(&client, "workloads").await?;
    let began = Instant::now();

    create::<Deployment>(&client, ns.name(), json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": template("web", "wordpress:6")},
    }))
    .await?;
    create::<StatefulSet>(&client, ns.name(), json!({
        "metadata": {"name": "db"},
        "spec": {
            "replicas": 2, "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {
                "metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{
                    "name": "mysql", "image": "mysql:8.0",
                    "volumeMounts": [{"name": "data", "mountPath": "/var/lib/mysql"}],
                }]},
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            }],
        },
    }))
    .await?;
    create::<Job>(&client, ns.name(), json!({
        "metadata": {"name": "seed"},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "seed", "image": "wordpress:cli", "command": ["wp", "seed"]}],
        }}},
    }))
    .await?;

    let deployment = wait_for(
        &client,
        ns.name(),
        "web",
        conditions::is_deployment_completed(),
    )
    .await?;
    assert_eq!(
        deployment.status.and_then(|s| s.available_replicas),
        Some(2)
    );
    let statefulset = wait_for(&client, ns.name(), "db", |s: Option<&StatefulSet>| {
        s.and_then(|s| s.status.as_ref())
            .and_then(|s| s.ready_replicas)
            == Some(2)
    })
    .await?;
    assert_eq!(statefulset.status.map(|s| s.replicas), Some(2));
    let job = wait_for(&client, ns.name(), "seed", conditions::is_job_completed()).await?;
    assert_eq!(job.status.and_then(|s| s.succeeded), Some(1));
    let ready_in = began.elapsed();

    // Volumes were provisioned and bound; pods got IPs and ready containers.
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns.name());
    for claim in ["data-db-0", "data-db-1"] {
        let pvc = claims.get(claim).await?;
        assert_eq!(
            pvc.status.and_then(|s| s.phase).as_deref(),
            Some("Bound"),
            "{claim}"
        );
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns.name());
    let web = pods.list(&ListParams::default().labels("app=web")).await?;
    assert_eq!(web.items.len(), 2);
    for pod in &web.items {
        let status = pod.status.clone().unwrap_or_default();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert!(status.pod_ip.is_some_and(|ip| ip.starts_with("10.244.")));
        let init = status.init_container_statuses.unwrap_or_default();
        assert_eq!(
            init[0]
                .state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .map(|t| t.exit_code),
            Some(0)
        );
        assert!(
            status
                .container_statuses
                .unwrap_or_default()
                .iter()
                .all(|c| c.ready)
        );
    }

    // Deleting the namespace goes through the controller-manager and the kubelet's pod
    // deletion, and completes within seconds.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let uid = namespaces
        .get(ns.name())
        .await?
        .metadata
        .uid
        .context("namespace uid")?;
    let deleting = Instant::now();
    namespaces.delete(ns.name(), &Default::default()).await?;
    tokio::time::timeout(
        Duration::from_secs(10),
        await_condition(namespaces, ns.name(), conditions::is_deleted(&uid)),
    )
    .await
    .context("the namespace was not deleted within 10s")??;
    eprintln!(
        "deployment, statefulset and job ready/complete in {:.1?}; namespace deleted in {:.1?}",
        ready_in,
        deleting.elapsed()
    );
    Ok(())
}

fn container<'a>(
    statuses: &'a Option<Vec<ContainerStatus>>,
    name: &str,
) -> Option<&'a ContainerStatus> {
    statuses.as_ref()?.iter().find(|c| c.name == name)
}

/// Waits for the one pod with label `app=<app>` to satisfy `check`, returning it.
async fn wait_for_pod(
    client: &Client,
    ns: &str,
    app: &str,
    check: impl Fn(&Pod) -> bool,
) -> Result<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let deadline = Instant::now() + WAIT;
    let mut stream = std::pin::pin!(kube::runtime::watcher::watcher(
        pods,
        kube::runtime::watcher::Config::default().labels(&format!("app={app}"))
    ));
    use futures::StreamExt;
    let mut last = None;
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline.into(), stream.next()).await {
        if let kube::runtime::watcher::Event::Apply(pod)
        | kube::runtime::watcher::Event::InitApply(pod) = event?
        {
            if check(&pod) {
                return Ok(pod);
            }
            last = Some(pod);
        }
    }
    bail!(
        "pod app={app} never matched; last seen: {:#?}",
        last.and_then(|p| p.status)
    )
}

#[tokio::test]
async fn failing_pods_report_their_failure_like_a_kubelet() -> Result<()> {
    let cp = shared().await?;
    let client = cp.client().await?;
    let ns = cp.namespace(&client, "faults").await?;
    let kubelet = cp.kubelet().context("kubelet")?;
    let _crash = kubelet.inject(
        Fault::crash(3)
            .namespace(ns.name())
            .container("prepare")
            .pod_name_prefix("crashy-"),
    );
    let _pull = kubelet.inject(
        Fault::image_pull()
            .namespace(ns.name())
            .image("registry.invalid/"),
    );
    let _unready = kubelet.inject(
        Fault::never_ready()
            .namespace(ns.name())
            .label("app", "unready"),
    );
    let _seed = kubelet.inject(
        Fault::crash(1)
            .namespace(ns.name())
            .pod_name_prefix("seed-"),
    );

    for (name, image) in [
        ("crashy", "wordpress:6"),
        ("unpullable", "registry.invalid/wordpress:nope"),
        ("unready", "wordpress:6"),
    ] {
        create::<Deployment>(&client, ns.name(), json!({
            "metadata": {"name": name},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}}, "template": template(name, image)},
        }))
        .await?;
    }
    create::<Job>(&client, ns.name(), json!({
        "metadata": {"name": "seed"},
        "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": {"app": "seed"}}, "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "seed", "image": "wordpress:cli"}],
        }}},
    }))
    .await?;
    create::<Job>(&client, ns.name(), json!({
        "metadata": {"name": "seed-restarting"},
        "spec": {"backoffLimit": 2, "template": {"metadata": {"labels": {"app": "seed-restarting"}}, "spec": {
            "restartPolicy": "OnFailure",
            "containers": [{"name": "seed", "image": "wordpress:cli"}],
        }}},
    }))
    .await?;

    // An init container that keeps exiting non-zero: Pending, CrashLoopBackOff, restarts.
    let pod = wait_for_pod(&client, ns.name(), "crashy", |p| {
        let s = p.status.clone().unwrap_or_default();
        container(&s.init_container_statuses, "prepare").is_some_and(|c| c.restart_count >= 2)
    })
    .await?;
    let status = pod.status.unwrap_or_default();
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    let init = container(&status.init_container_statuses, "prepare").unwrap();
    let waiting = init
        .state
        .as_ref()
        .and_then(|s| s.waiting.as_ref())
        .unwrap();
    assert_eq!(waiting.reason.as_deref(), Some("CrashLoopBackOff"));
    let last = init
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .unwrap();
    assert_eq!(last.exit_code, 3);
    let app = container(&status.container_statuses, "crashy").unwrap();
    assert_eq!(
        app.state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.as_deref()),
        Some("PodInitializing")
    );

    // An image that cannot be pulled.
    let pod = wait_for_pod(&client, ns.name(), "unpullable", |p| {
        let s = p.status.clone().unwrap_or_default();
        container(&s.container_statuses, "unpullable")
            .and_then(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
            .is_some_and(|r| r == "ImagePullBackOff")
    })
    .await?;
    let status = pod.status.unwrap_or_default();
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    let message = container(&status.container_statuses, "unpullable")
        .and_then(|c| c.state.as_ref()?.waiting.as_ref()?.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains("registry.invalid/wordpress:nope"),
        "{message}"
    );

    // Running, never ready: the Deployment never becomes available.
    let pod = wait_for_pod(&client, ns.name(), "unready", |p| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
    })
    .await?;
    let ready = pod
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_deref()),
        ("False", Some("ContainersNotReady"))
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns.name());
    let unready = deployments.get("unready").await?;
    assert_eq!(
        unready
            .status
            .and_then(|s| s.available_replicas)
            .unwrap_or(0),
        0
    );

    // A Job whose container exits non-zero fails once its backoff limit is reached.
    let job = wait_for(&client, ns.name(), "seed", |j: Option<&Job>| {
        j.and_then(|j| j.status.as_ref()?.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Failed" && c.status == "True"))
    })
    .await?;
    let failed = job
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Failed")
        .unwrap();
    assert_eq!(failed.reason.as_deref(), Some("BackoffLimitExceeded"));
    let pod = wait_for_pod(&client, ns.name(), "seed", |p| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed")
    })
    .await?;
    let seed = container(&pod.status.unwrap_or_default().container_statuses, "seed")
        .cloned()
        .unwrap();
    let terminated = seed.state.and_then(|s| s.terminated).unwrap();
    assert_eq!(
        (terminated.exit_code, terminated.reason.as_deref()),
        (1, Some("Error"))
    );

    // With restartPolicy OnFailure the container restarts in place, and the Job counts the
    // restarts against its backoff limit.
    let job = wait_for(&client, ns.name(), "seed-restarting", |j: Option<&Job>| {
        j.and_then(|j| j.status.as_ref()?.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Failed" && c.status == "True"))
    })
    .await?;
    let failed = job
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Failed")
        .unwrap();
    assert_eq!(failed.reason.as_deref(), Some("BackoffLimitExceeded"));
    Ok(())
}

#[tokio::test]
async fn restricted_identity_is_refused_what_rbac_does_not_grant() -> Result<()> {
    let cp = shared().await?;
    let admin = cp.client().await?;
    let ns = cp.namespace(&admin, "rbac").await?;
    let restricted = cp.restricted_client().await?;
    let pods: Api<Pod> = Api::namespaced(restricted.clone(), ns.name());

    match pods.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => bail!("expected 403 Forbidden, got {other:?}"),
    }
    let namespaces: Api<Namespace> = Api::all(restricted.clone());
    assert!(namespaces.list(&ListParams::default()).await.is_err());

    // Granting `view` in the namespace lets it read there, and only read.
    create::<RoleBinding>(&admin, ns.name(), json!({
        "metadata": {"name": "restricted-view"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": cp.restricted_user()}],
    }))
    .await?;
    // RBAC changes reach the authorizer through its informer: allow it a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    while pods.list(&ListParams::default()).await.is_err() {
        if Instant::now() > deadline {
            bail!("the RoleBinding never took effect");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pod: Pod = object(
        json!({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "x", "image": "x"}]}}),
    );
    match pods.create(&PostParams::default(), &pod).await {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => bail!("expected 403 Forbidden on create, got {other:?}"),
    }
    Ok(())
}
