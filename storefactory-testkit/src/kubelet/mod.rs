//! The simulated kubelet: plays the node's part for pods that never really run.
//!
//! Like the kwok project, it registers Nodes and keeps their leases fresh, binds pending pods
//! (once their volume claims are bound), reports init containers completed and containers
//! running and ready with a pod IP, completes run-to-completion pods, provisions
//! PersistentVolumes for claims, and finishes pod deletion so namespaces go away.
//!
//! Tests make chosen pods fail with [`Fault`]s, registered with [`SimulatedKubelet::inject`]
//! or written on a pod as the [`FAULT_ANNOTATION`].

mod faults;
mod sim;

use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use faults::{FAULT_ANNOTATION, Fault, FaultGuard, FaultKind};
pub use sim::RESIZE_HOLD_ANNOTATION;
pub(crate) use sim::run;

/// How the simulated kubelet behaves.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct KubeletConfig {
    /// How many Nodes to register (named `sim-node-0`, `sim-node-1`, ...). At least one.
    pub nodes: usize,
    /// Time between binding a pod and reporting it Running (init containers run meanwhile).
    /// Zero reports it at once.
    pub pod_start_delay: Duration,
    /// How long a run-to-completion container (Job pods; restartPolicy `Never`/`OnFailure`)
    /// runs before the pod is reported `Succeeded`.
    pub job_duration: Duration,
    /// Time before the first restart of a crashing container (later ones back off, doubling
    /// up to eight times this), and between `ErrImagePull` and `ImagePullBackOff`.
    pub restart_interval: Duration,
    /// Name of a default StorageClass to create (its volumes are provisioned by the
    /// simulator), or `None` for no StorageClass.
    pub storage_class: Option<String>,
}

impl Default for KubeletConfig {
    fn default() -> Self {
        KubeletConfig {
            nodes: 1,
            pod_start_delay: Duration::ZERO,
            job_duration: Duration::ZERO,
            restart_interval: Duration::from_millis(500),
            storage_class: Some("standard".to_owned()),
        }
    }
}

impl KubeletConfig {
    /// Sets [`KubeletConfig::nodes`].
    pub fn nodes(mut self, nodes: usize) -> Self {
        self.nodes = nodes.max(1);
        self
    }

    /// Sets [`KubeletConfig::pod_start_delay`].
    pub fn pod_start_delay(mut self, delay: Duration) -> Self {
        self.pod_start_delay = delay;
        self
    }

    /// Sets [`KubeletConfig::job_duration`].
    pub fn job_duration(mut self, duration: Duration) -> Self {
        self.job_duration = duration;
        self
    }

    /// Sets [`KubeletConfig::restart_interval`].
    pub fn restart_interval(mut self, interval: Duration) -> Self {
        self.restart_interval = interval;
        self
    }

    /// Sets [`KubeletConfig::storage_class`].
    pub fn storage_class(mut self, name: Option<String>) -> Self {
        self.storage_class = name;
        self
    }

    /// The names of the Nodes this configuration registers.
    pub fn node_names(&self) -> Vec<String> {
        (0..self.nodes.max(1))
            .map(|i| format!("sim-node-{i}"))
            .collect()
    }
}

/// A handle on the simulated kubelet of a control plane: its configuration and the faults
/// tests inject. Cheap to clone; usable from any thread or runtime.
#[derive(Debug, Clone)]
pub struct SimulatedKubelet {
    pub(crate) shared: Arc<Shared>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub config: KubeletConfig,
    pub faults: Mutex<Vec<(u64, Fault)>>,
    pub next_fault_id: Mutex<u64>,
}

impl SimulatedKubelet {
    pub(crate) fn new(config: KubeletConfig) -> Self {
        SimulatedKubelet {
            shared: Arc::new(Shared {
                config,
                faults: Mutex::new(Vec::new()),
                next_fault_id: Mutex::new(0),
            }),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &KubeletConfig {
        &self.shared.config
    }

    /// The names of its Nodes.
    pub fn node_names(&self) -> Vec<String> {
        self.shared.config.node_names()
    }

    /// Makes the pods `fault` matches fail, until the returned guard is dropped.
    ///
    /// A fault is looked up when the kubelet starts a pod, so register it before creating the
    /// objects whose pods should fail. When several faults match, the latest wins.
    #[must_use = "the fault is removed when the guard is dropped"]
    pub fn inject(&self, fault: Fault) -> FaultGuard {
        let id = {
            let mut next = self
                .shared
                .next_fault_id
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            *next += 1;
            *next
        };
        self.shared
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((id, fault));
        FaultGuard {
            id,
            shared: Arc::downgrade(&self.shared),
        }
    }
}
