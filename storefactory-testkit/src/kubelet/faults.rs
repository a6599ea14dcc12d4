//! Failure injection: which pods fail, and how.

use std::collections::BTreeMap;
use std::sync::Weak;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};

use super::Shared;

/// A pod annotation that makes the simulated kubelet fail that pod, for people driving the
/// control plane by hand (`up`). Values: `crash`, `crash:<exit code>`, `image-pull`,
/// `never-ready`, `slow-start:<seconds>`. The fault applies to every container of the pod.
pub const FAULT_ANNOTATION: &str = "testkit.storefactory.io/fault";

/// How a pod fails.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FaultKind {
    /// The container exits with this code every time it starts.
    ///
    /// On an init container (the first one the fault selects) the pod never initializes;
    /// on app containers they never stay up. With `restartPolicy: Never` the pod turns
    /// `Failed` (so a Job counts a failure and retries until its `backoffLimit`); otherwise the
    /// container is restarted every [`restart_interval`](super::KubeletConfig::restart_interval)
    /// and waits in `CrashLoopBackOff` with a growing `restartCount` (which a Job with
    /// `restartPolicy: OnFailure` counts against its `backoffLimit`).
    Crash {
        /// The exit code, like 1.
        exit_code: i32,
    },
    /// The image cannot be pulled: the container waits with reason `ErrImagePull`, then
    /// `ImagePullBackOff`, and the pod stays `Pending` (or `Running` but not ready when other
    /// app containers run).
    ImagePull,
    /// The app containers run but never pass their readiness check: the pod is `Running` with
    /// `Ready=False`.
    NeverReady,
    /// The pod starts normally, but only after this long (instead of the kubelet's
    /// configured start delay).
    SlowStart(Duration),
}

/// A failure to inject, and the pods and containers it applies to.
///
/// Pods are selected by namespace, name prefix and labels (all that are set must match);
/// within a pod, containers (init and app) by name and image. A fault without container
/// selectors applies to all containers.
///
/// ```
/// use storefactory_testkit::Fault;
/// // The seeding Job's pods in one namespace exit with code 1.
/// let fault = Fault::crash(1).namespace("store-a1").pod_name_prefix("seed-");
/// // Any container using this image cannot be pulled.
/// let unpullable = Fault::image_pull().image("registry.invalid/wordpress:nope");
/// # let _ = (fault, unpullable);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    kind: FaultKind,
    namespace: Option<String>,
    pod_name_prefix: Option<String>,
    labels: BTreeMap<String, String>,
    container: Option<String>,
    image: Option<String>,
}

impl Fault {
    /// A fault of this kind matching every pod (narrow it with the selector methods).
    pub fn new(kind: FaultKind) -> Self {
        Fault {
            kind,
            namespace: None,
            pod_name_prefix: None,
            labels: BTreeMap::new(),
            container: None,
            image: None,
        }
    }

    /// Containers exit with `exit_code` ([`FaultKind::Crash`]).
    pub fn crash(exit_code: i32) -> Self {
        Self::new(FaultKind::Crash { exit_code })
    }

    /// Images cannot be pulled ([`FaultKind::ImagePull`]).
    pub fn image_pull() -> Self {
        Self::new(FaultKind::ImagePull)
    }

    /// Containers never become ready ([`FaultKind::NeverReady`]).
    pub fn never_ready() -> Self {
        Self::new(FaultKind::NeverReady)
    }

    /// Pods start only after `delay` ([`FaultKind::SlowStart`]).
    pub fn slow_start(delay: Duration) -> Self {
        Self::new(FaultKind::SlowStart(delay))
    }

    /// Only pods in this namespace.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Only pods whose name starts with `prefix` (a Job `seed` makes pods `seed-xxxxx`).
    pub fn pod_name_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.pod_name_prefix = Some(prefix.into());
        self
    }

    /// Only pods carrying this label (may be called several times).
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Only the container (init or app) with this name.
    pub fn container(mut self, name: impl Into<String>) -> Self {
        self.container = Some(name.into());
        self
    }

    /// Only containers whose image is `image` or starts with it (so `"mysql"` matches
    /// `mysql:8.0`).
    pub fn image(mut self, image: impl Into<String>) -> Self {
        self.image = Some(image.into());
        self
    }

    /// What happens to the selected containers.
    pub fn kind(&self) -> &FaultKind {
        &self.kind
    }

    /// Whether this fault selects `pod` (and at least one of its containers).
    pub fn matches_pod(&self, pod: &Pod) -> bool {
        let meta = &pod.metadata;
        if self
            .namespace
            .as_deref()
            .is_some_and(|ns| meta.namespace.as_deref() != Some(ns))
        {
            return false;
        }
        if let Some(prefix) = &self.pod_name_prefix
            && !meta
                .name
                .as_deref()
                .unwrap_or_default()
                .starts_with(prefix.as_str())
        {
            return false;
        }
        let labels = meta.labels.clone().unwrap_or_default();
        if self.labels.iter().any(|(k, v)| labels.get(k) != Some(v)) {
            return false;
        }
        let Some(spec) = &pod.spec else { return false };
        spec.init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
            .any(|c| self.matches_container(c))
    }

    /// Whether this fault selects `container` (assuming it selects its pod).
    pub fn matches_container(&self, container: &Container) -> bool {
        if self
            .container
            .as_deref()
            .is_some_and(|name| container.name != name)
        {
            return false;
        }
        if let Some(image) = &self.image
            && !container
                .image
                .as_deref()
                .unwrap_or_default()
                .starts_with(image.as_str())
        {
            return false;
        }
        true
    }

    /// Reads the [`FAULT_ANNOTATION`] value of a pod; `None` if absent or not understood.
    pub fn from_annotation(value: &str) -> Option<Self> {
        let (name, arg) = match value.trim().split_once(':') {
            Some((name, arg)) => (name, Some(arg.trim())),
            None => (value.trim(), None),
        };
        let kind = match (name, arg) {
            ("crash", None) => FaultKind::Crash { exit_code: 1 },
            ("crash", Some(code)) => FaultKind::Crash {
                exit_code: code.parse().ok()?,
            },
            ("image-pull", None) => FaultKind::ImagePull,
            ("never-ready", None) => FaultKind::NeverReady,
            ("slow-start", Some(secs)) => FaultKind::SlowStart(
                Duration::try_from_secs_f64(secs.trim_end_matches('s').parse().ok()?).ok()?,
            ),
            _ => return None,
        };
        Some(Fault::new(kind))
    }
}

/// Keeps a fault injected; dropping it removes the fault (pods already failing keep failing).
#[derive(Debug)]
pub struct FaultGuard {
    pub(super) id: u64,
    pub(super) shared: Weak<Shared>,
}

impl Drop for FaultGuard {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            shared
                .faults
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|(id, _)| *id != self.id);
        }
    }
}

impl Shared {
    /// The fault for `pod`: its annotation, else the latest matching injected fault.
    pub(crate) fn fault_for(&self, pod: &Pod) -> Option<Fault> {
        if let Some(fault) = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(FAULT_ANNOTATION))
            .and_then(|v| Fault::from_annotation(v))
        {
            return Some(fault);
        }
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .rev()
            .find(|(_, f)| f.matches_pod(pod))
            .map(|(_, f)| f.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;
    use kube::api::ObjectMeta;

    fn pod(ns: &str, name: &str, images: &[(&str, &str)]) -> Pod {
        Pod {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: images
                    .iter()
                    .map(|(n, i)| Container {
                        name: (*n).into(),
                        image: Some((*i).into()),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn selectors_narrow_the_pods_a_fault_applies_to() {
        let p = pod("shop", "seed-abcde", &[("seed", "wordpress:6")]);
        assert!(Fault::crash(1).matches_pod(&p));
        assert!(
            Fault::crash(1)
                .namespace("shop")
                .pod_name_prefix("seed-")
                .matches_pod(&p)
        );
        assert!(!Fault::crash(1).namespace("other").matches_pod(&p));
        assert!(!Fault::crash(1).pod_name_prefix("mysql-").matches_pod(&p));
        assert!(Fault::image_pull().image("wordpress").matches_pod(&p));
        assert!(!Fault::image_pull().image("mysql").matches_pod(&p));
        assert!(!Fault::image_pull().container("other").matches_pod(&p));
        assert!(!Fault::never_ready().label("app", "x").matches_pod(&p));
    }

    #[test]
    fn annotation_values_parse() {
        assert_eq!(
            Fault::from_annotation("crash").unwrap().kind(),
            &FaultKind::Crash { exit_code: 1 }
        );
        assert_eq!(
            Fault::from_annotation("crash:3").unwrap().kind(),
            &FaultKind::Crash { exit_code: 3 }
        );
        assert_eq!(
            Fault::from_annotation("image-pull").unwrap().kind(),
            &FaultKind::ImagePull
        );
        assert_eq!(
            Fault::from_annotation("never-ready").unwrap().kind(),
            &FaultKind::NeverReady
        );
        assert_eq!(
            Fault::from_annotation("slow-start:1.5s").unwrap().kind(),
            &FaultKind::SlowStart(Duration::from_millis(1500))
        );
        assert_eq!(Fault::from_annotation("explode"), None);
        assert_eq!(Fault::from_annotation("crash:x"), None);
    }

    #[test]
    fn latest_matching_fault_wins_and_guards_remove_theirs() {
        let kubelet = super::super::SimulatedKubelet::new(Default::default());
        let p = pod("shop", "web-1", &[("web", "nginx")]);
        let first = kubelet.inject(Fault::crash(2));
        let second = kubelet.inject(Fault::never_ready().namespace("shop"));
        assert_eq!(
            kubelet.shared.fault_for(&p).unwrap().kind(),
            &FaultKind::NeverReady
        );
        drop(second);
        assert_eq!(
            kubelet.shared.fault_for(&p).unwrap().kind(),
            &FaultKind::Crash { exit_code: 2 }
        );
        drop(first);
        assert_eq!(kubelet.shared.fault_for(&p), None);
    }
}
