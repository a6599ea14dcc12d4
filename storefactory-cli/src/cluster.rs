//! The Kubernetes client, from --kubeconfig/--context or the usual places.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::apimachinery::pkg::version::Info;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::exit::{Code, Failure};

/// How long connecting to the API server may take before the cluster counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The client configuration: `kubeconfig` if given, else `$KUBECONFIG` or `~/.kube/config`,
/// else the in-cluster service account; `context` instead of the current context.
pub async fn config(kubeconfig: Option<&Path>, context: Option<&str>) -> Result<Config> {
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..KubeConfigOptions::default()
    };
    let mut config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read kubeconfig {}", path.display()))?;
            Config::from_custom_kubeconfig(file, &options)
                .await
                .with_context(|| format!("cannot use kubeconfig {}", path.display()))?
        }
        None if context.is_some() => Config::from_kubeconfig(&options)
            .await
            .context("cannot use the kubeconfig")?,
        None => Config::infer()
            .await
            .context("no Kubernetes configuration found (give --kubeconfig, set KUBECONFIG, or run in a cluster)")?,
    };
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    Ok(config)
}

/// A client for the configured cluster. Connects lazily.
pub async fn client(kubeconfig: Option<&Path>, context: Option<&str>) -> Result<Client> {
    let config = config(kubeconfig, context).await?;
    Client::try_from(config).context("cannot build a Kubernetes client")
}

/// The API server's version, or a clear error saying it cannot be reached.
pub async fn reachable(client: &Client) -> Result<Info> {
    client.apiserver_version().await.map_err(|e| {
        anyhow::Error::new(Failure::new(
            Code::Cluster,
            format!(
                "cannot reach the Kubernetes API server: {}",
                storefactory_core::provisioner::error_chain(&e)
            ),
        ))
    })
}
