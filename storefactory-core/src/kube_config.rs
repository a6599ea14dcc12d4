//! Where a Kubernetes client's configuration comes from, the same for every front end (the
//! server, the command line, Python): the kubeconfig file given, else `$KUBECONFIG` or
//! `~/.kube/config` (the context asked for, or the current one), else the in-cluster service
//! account.

use std::path::{Path, PathBuf};

use kube::Config;
use kube::config::{InferConfigError, KubeConfigOptions, Kubeconfig, KubeconfigError};

/// Why no configuration could be loaded. Each message names the file it is about and ends
/// with kube's own reason; front ends add how to give one.
#[derive(Debug, thiserror::Error)]
pub enum KubeConfigError {
    /// The file given cannot be read or parsed.
    #[error("cannot read kubeconfig {}: {error}", path.display())]
    Read {
        /// The file given.
        path: PathBuf,
        /// kube's reason.
        error: KubeconfigError,
    },
    /// The file given was read but cannot be used (no such context, bad credentials).
    #[error("cannot use kubeconfig {}: {error}", path.display())]
    Invalid {
        /// The file given.
        path: PathBuf,
        /// kube's reason.
        error: KubeconfigError,
    },
    /// A context was asked for and the usual kubeconfig has none by that name, or cannot
    /// be used.
    #[error("cannot use the kubeconfig: {0}")]
    Context(KubeconfigError),
    /// No file given, none in the usual places, and not running in a cluster.
    #[error("no Kubernetes configuration found ({0})")]
    NotFound(InferConfigError),
}

/// The configuration from `kubeconfig` if given, else from the usual places, with `context`
/// instead of the current context when given.
pub async fn load(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> Result<Config, KubeConfigError> {
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..KubeConfigOptions::default()
    };
    match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path).map_err(|error| KubeConfigError::Read {
                path: path.to_owned(),
                error,
            })?;
            Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|error| KubeConfigError::Invalid {
                    path: path.to_owned(),
                    error,
                })
        }
        None if context.is_some() => Config::from_kubeconfig(&options)
            .await
            .map_err(KubeConfigError::Context),
        None => Config::infer().await.map_err(KubeConfigError::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECONFIG: &str = r#"
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: "https://127.0.0.1:6443"}
- name: other
  cluster: {server: "https://127.0.0.2:6443"}
users:
- name: me
  user: {token: secret}
contexts:
- name: local
  context: {cluster: local, user: me}
- name: other
  context: {cluster: other, user: me}
current-context: local
"#;

    #[tokio::test]
    async fn a_given_file_is_used_with_its_current_or_the_asked_context() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        std::fs::write(&path, KUBECONFIG).unwrap();
        let config = load(Some(&path), None).await.unwrap();
        assert_eq!(config.cluster_url.host(), Some("127.0.0.1"));
        let config = load(Some(&path), Some("other")).await.unwrap();
        assert_eq!(config.cluster_url.host(), Some("127.0.0.2"));
    }

    #[tokio::test]
    async fn a_missing_file_or_context_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nowhere");
        let error = load(Some(&missing), None).await.unwrap_err();
        assert!(matches!(error, KubeConfigError::Read { .. }), "{error}");
        assert!(error.to_string().contains("nowhere"), "{error}");

        let path = dir.path().join("kubeconfig");
        std::fs::write(&path, KUBECONFIG).unwrap();
        let error = load(Some(&path), Some("elsewhere")).await.unwrap_err();
        assert!(matches!(error, KubeConfigError::Invalid { .. }), "{error}");
        assert!(error.to_string().contains("elsewhere"), "{error}");
    }
}
