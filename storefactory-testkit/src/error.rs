//! The one error type of the testkit.

use std::path::PathBuf;

/// Result with the testkit's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while installing, starting or driving the local control plane.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The install script could not be run or failed.
    #[error("installing the control plane with {script}: {reason}")]
    Install {
        /// Path of the install script.
        script: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// A binary the control plane needs is missing.
    #[error(
        "binary {name} not found (looked in {looked_in}); set STOREFACTORY_K8S_BIN_DIR or run scripts/install-control-plane.sh"
    )]
    BinaryNotFound {
        /// Binary name, like `kube-apiserver`.
        name: String,
        /// Where it was looked for.
        looked_in: String,
    },

    /// A file or directory operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done, like "writing".
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// Generating certificates or keys with the `openssl` command failed.
    #[error("generating {what} with openssl: {reason}")]
    GenerateCertificate {
        /// The certificate or key being generated.
        what: String,
        /// What went wrong, with openssl's output.
        reason: String,
    },

    /// A control plane process could not be started.
    #[error("starting {component}: {source}")]
    SpawnComponent {
        /// Component name, like `etcd`.
        component: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },

    /// A control plane process exited while it should have been running.
    #[error("{component} exited with {status}; its log is {} and ends with:\n{log_tail}", log.display())]
    ComponentExited {
        /// Component name, like `kube-apiserver`.
        component: &'static str,
        /// How it exited.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The last lines of its log.
        log_tail: String,
    },

    /// A component did not become ready in time.
    #[error("{component} was not ready after {seconds}s (logs in {})", logs_dir.display())]
    NotReady {
        /// Component name.
        component: &'static str,
        /// How long we waited.
        seconds: u64,
        /// Where the component logs are.
        logs_dir: PathBuf,
    },

    /// Reading the generated kubeconfig failed.
    #[error("loading kubeconfig {}: {source}", path.display())]
    LoadKubeconfig {
        /// The kubeconfig file.
        path: PathBuf,
        /// The underlying error.
        source: kube::config::KubeconfigError,
    },

    /// Building a client failed.
    #[error("building a Kubernetes client: {0}")]
    BuildClient(#[source] kube::Error),

    /// A request to the Kubernetes API failed.
    #[error("{action}: {source}")]
    Kube {
        /// What was being done, like "creating namespace x".
        action: String,
        /// The underlying error.
        source: kube::Error,
    },

    /// Waiting for a condition on the Kubernetes API failed.
    #[error("waiting for {what}: {source}")]
    Wait {
        /// What was awaited.
        what: String,
        /// The underlying error.
        source: kube::runtime::wait::Error,
    },

    /// The thread that hosts the control plane is gone (it stopped or panicked).
    #[error("the control plane host thread has stopped")]
    HostStopped,

    /// [`crate::Options::keep_data`] was asked for without a directory to keep it in.
    #[error("keeping the cluster's data needs a directory (Options::dir)")]
    KeepDataWithoutDir,
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn kube(action: impl Into<String>, source: kube::Error) -> Self {
        Error::Kube {
            action: action.into(),
            source,
        }
    }

    /// Whether retrying the same operation later may succeed (the API was unreachable or
    /// answered with a server-side error).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Kube { source, .. } | Error::BuildClient(source) => {
                kube_error_is_transient(source)
            }
            Error::NotReady { .. } => true,
            _ => false,
        }
    }
}

/// Whether a Kubernetes API error is worth retrying.
pub(crate) fn kube_error_is_transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code >= 500 || status.code == 429,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}
