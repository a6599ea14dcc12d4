//! A control plane of its own (the apiserver goes down here, which would disturb tests sharing
//! one): stopping and restarting the apiserver keeps etcd's data, and the controller-manager and
//! simulated kubelet carry on.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::PostParams;
use kube::runtime::wait::{await_condition, conditions};
use serde_json::json;
use storefactory_testkit::{ControlPlane, Options};

#[tokio::test]
async fn restarting_the_apiserver_keeps_data_and_the_cluster_keeps_working() -> Result<()> {
    let cp = ControlPlane::start(Options::default()).await?;
    eprintln!("control plane started in {:.1?}", cp.started_in());
    let dir = cp.dir().to_owned();
    let client = cp.client().await?;
    let ns = cp.namespace(&client, "restart").await?;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns.name());
    let config_map: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "kept"}, "data": {"k": "v"}}))?;
    config_maps
        .create(&PostParams::default(), &config_map)
        .await?;

    cp.stop_apiserver().await?;
    if config_maps.get("kept").await.is_ok() {
        bail!("the apiserver still answers after being stopped");
    }
    let restarting = Instant::now();
    cp.start_apiserver().await?;
    eprintln!("apiserver restarted in {:.1?}", restarting.elapsed());

    // The same client works again, and the data survived.
    let kept = config_maps.get("kept").await?;
    assert_eq!(
        kept.data.and_then(|d| d.get("k").cloned()).as_deref(),
        Some("v")
    );

    // Controllers and the kubelet reconnect by themselves.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns.name());
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}},
        },
    }))?;
    deployments
        .create(&PostParams::default(), &deployment)
        .await?;
    tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(deployments, "web", conditions::is_deployment_completed()),
    )
    .await
    .context("the Deployment did not become available after the restart")??;

    drop(ns);
    drop(client);
    drop(cp);
    assert!(!dir.exists(), "{} is left behind", dir.display());
    Ok(())
}
