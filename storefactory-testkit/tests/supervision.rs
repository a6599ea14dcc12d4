//! The control plane's host restarts a crashed apiserver on its own (etcd's data kept), so a
//! long benchmark survives the requests this apiserver cannot encode; a stop asked for by a
//! test is not undone.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use storefactory_testkit::{ControlPlane, Options};

/// The pid of the kube-apiserver whose arguments mention `dir`.
fn apiserver_pid(dir: &std::path::Path) -> Option<u32> {
    let dir = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc").ok()?.find_map(|entry| {
        let entry = entry.ok()?;
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        let cmdline = String::from_utf8_lossy(&cmdline);
        (cmdline.split('\0').next()?.ends_with("kube-apiserver") && cmdline.contains(&dir))
            .then_some(pid)
    })
}

#[tokio::test]
async fn a_crashed_apiserver_is_started_again_with_its_data() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(Options::default().dir(dir.path())).await?;
    let client = cp.client().await?;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let config_map: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "before-the-crash"}}))?;
    config_maps
        .create(&PostParams::default(), &config_map)
        .await?;

    let pid = apiserver_pid(dir.path()).context("no kube-apiserver process found")?;
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()?;
    assert!(killed.success());

    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(found) = config_maps.get("before-the-crash").await {
            assert_eq!(found.metadata.name.as_deref(), Some("before-the-crash"));
            break;
        }
        assert!(Instant::now() < deadline, "the apiserver did not come back");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let new_pid = apiserver_pid(dir.path()).context("no kube-apiserver after the restart")?;
    assert_ne!(new_pid, pid);
    // The restart is logged once the apiserver passes the readiness checks of a start.
    let log = loop {
        let log = std::fs::read_to_string(cp.logs_dir().join("supervisor.log"))?;
        if log.contains("kube-apiserver is back") || Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(log.contains("kube-apiserver exited"), "{log}");
    assert!(log.contains("kube-apiserver is back"), "{log}");

    // A stop asked for stays a stop: the supervisor leaves it alone.
    cp.stop_apiserver().await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        apiserver_pid(dir.path()).is_none(),
        "a requested stop was undone"
    );
    cp.start_apiserver().await?;
    config_maps.get("before-the-crash").await?;
    Ok(())
}
