//! The README's `cargo run -p storefactory-testkit -- up --dir DIR`: it says when it is ready,
//! the kubeconfig it writes works, and SIGTERM stops everything.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};

#[tokio::test]
async fn up_runs_a_usable_control_plane_until_sigterm() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_storefactory-testkit"))
        .args(["up", "--dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().expect("piped stdout");
    let ready_line = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find(|line| line.contains("control plane ready"))
    })
    .await?;
    let Some(ready_line) = ready_line else {
        let _ = child.kill();
        anyhow::bail!("`up` exited without saying it was ready");
    };
    let kubeconfig_path = dir.path().canonicalize()?.join("kubeconfig");
    assert!(
        ready_line.contains(&format!("export KUBECONFIG={}", kubeconfig_path.display())),
        "{ready_line}"
    );

    let kubeconfig = Kubeconfig::read_from(&kubeconfig_path)?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    let server = config.cluster_url.clone();
    let client = kube::Client::try_from(config)?;
    let nodes = Api::<Node>::all(client.clone())
        .list(&Default::default())
        .await?;
    assert!(
        !nodes.items.is_empty(),
        "the simulated kubelet registered no node"
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    assert!(status.success());
    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = child.try_wait()? {
            break exit;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "`up` did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(exit.success(), "`up` exited with {exit}");
    let after = Api::<Node>::all(client).list(&Default::default()).await;
    assert!(
        after.is_err(),
        "the apiserver at {server} still answers after `up` stopped"
    );
    Ok(())
}
