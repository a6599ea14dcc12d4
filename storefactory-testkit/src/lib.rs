//! A local Kubernetes control plane and a simulated kubelet for Storefactory's tests,
//! benchmarks, and people trying the platform on a machine without a cluster.
//!
//! [`ControlPlane::start`] runs etcd, kube-apiserver (RBAC, TLS on loopback, token
//! authentication for an admin and a restricted identity) and kube-controller-manager as
//! local processes, plus a [simulated kubelet](kubelet) that plays the node's part. Tests in one
//! binary share one control plane through [`shared`], each working in its own namespace:
//!
//! ```no_run
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use kube::Api;
//! use storefactory_testkit::{Fault, shared};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let cp = shared().await?;
//! let client = cp.client().await?; // one client per test: runtimes differ between tests
//! let ns = cp.namespace(&client, "my-test").await?; // deleted when dropped
//! let _guard = cp.kubelet().expect("kubelet").inject(Fault::crash(1).namespace(ns.name()));
//! let config_maps: Api<ConfigMap> = Api::namespaced(client, ns.name());
//! # let _ = config_maps;
//! # Ok(())
//! # }
//! ```
//!
//! The binaries are found through `STOREFACTORY_K8S_BIN_DIR`, else the install script's
//! cache, else `scripts/install-control-plane.sh` is run (about five minutes, once per
//! machine). `cargo run -p storefactory-testkit -- up --dir DIR` runs a control plane until
//! interrupted.

pub mod bench;
mod control_plane;
mod error;
mod install;
pub mod kubelet;
mod pki;
mod process;

pub use control_plane::{ControlPlane, Options, TestNamespace};
pub use error::{Error, Result};
pub use install::{
    Binaries, KUBERNETES_VERSION, default_bin_dir, install_script, run_install_script,
};
pub use kubelet::{
    FAULT_ANNOTATION, Fault, FaultGuard, FaultKind, KubeletConfig, RESIZE_HOLD_ANNOTATION,
    SimulatedKubelet,
};

/// The control plane shared by all tests of this test binary, started (with default
/// [`Options`]) by the first caller.
///
/// It lives until the process exits; its processes die with the process and its files are
/// removed then. Each test should build its own client ([`ControlPlane::client`]) and work in
/// its own namespace ([`ControlPlane::namespace`]). Tests that stop the apiserver must start
/// their own [`ControlPlane`] instead.
pub async fn shared() -> Result<&'static ControlPlane> {
    static SHARED: tokio::sync::OnceCell<ControlPlane> = tokio::sync::OnceCell::const_new();
    SHARED
        .get_or_try_init(|| ControlPlane::start(Options::default()))
        .await
}
