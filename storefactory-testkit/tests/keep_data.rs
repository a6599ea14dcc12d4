//! `Options::keep_data`: a control plane stopped and started again on the same directory has
//! its objects back (on other ports, with a rewritten kubeconfig); without it, or without a
//! directory, nothing is kept.

use anyhow::Result;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use storefactory_testkit::{ControlPlane, Error, Options};

#[tokio::test]
async fn a_control_plane_started_again_on_its_directory_has_its_objects_back() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let options = || Options::default().dir(dir.path()).keep_data(true);
    let first = ControlPlane::start(options()).await?;
    let config_maps: Api<ConfigMap> = Api::namespaced(first.client().await?, "default");
    let config_map: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "kept"}, "data": {"k": "v"}}))?;
    config_maps
        .create(&PostParams::default(), &config_map)
        .await?;
    let first_url = first.server_url().to_owned();
    drop(first);
    assert!(dir.path().join("etcd").is_dir(), "etcd's data is gone");
    assert!(
        dir.path().join("kubeconfig").is_file(),
        "the kubeconfig is gone"
    );

    let second = ControlPlane::start(options()).await?;
    eprintln!("first at {first_url}, second at {}", second.server_url());
    let config_maps: Api<ConfigMap> = Api::namespaced(second.client().await?, "default");
    let kept = config_maps.get("kept").await?;
    assert_eq!(
        kept.data.unwrap_or_default().get("k").map(String::as_str),
        Some("v")
    );
    Ok(())
}

#[tokio::test]
async fn keeping_data_needs_a_directory() {
    let error = ControlPlane::start(Options::default().keep_data(true))
        .await
        .expect_err("no directory to keep the data in");
    assert!(matches!(error, Error::KeepDataWithoutDir), "{error}");
}
