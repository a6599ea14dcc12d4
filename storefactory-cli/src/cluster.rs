//! The Kubernetes client, from --kubeconfig/--context or the usual places.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::apimachinery::pkg::version::Info;
use kube::{Client, Config};
use storefactory_core::kube_config::{self, KubeConfigError};

use crate::exit::{Code, Failure};

/// How long connecting to the API server may take before the cluster counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The client configuration: `kubeconfig` if given, else `$KUBECONFIG` or `~/.kube/config`,
/// else the in-cluster service account; `context` instead of the current context.
pub async fn config(kubeconfig: Option<&Path>, context: Option<&str>) -> Result<Config> {
    let mut config = kube_config::load(kubeconfig, context)
        .await
        .map_err(|error| match error {
            KubeConfigError::NotFound(_) => {
                anyhow::anyhow!("{error}: give --kubeconfig, set KUBECONFIG, or run in a cluster")
            }
            error => anyhow::Error::new(error),
        })?;
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
