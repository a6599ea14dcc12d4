//! The simulator itself: watches pods, claims and volumes, and writes what a kubelet would.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Container, Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};

use super::faults::{Fault, FaultKind};
use super::{Shared, SimulatedKubelet};
use crate::error::{Error, Result};

const MANAGER: &str = "storefactory-testkit-kubelet";
/// A claim annotation that holds back growing the claim's volume while it is there, so that
/// a test can see what waits for a resize; removing it lets the resize happen. Any value.
pub const RESIZE_HOLD_ANNOTATION: &str = "testkit.storefactory.io/hold-resize";
/// The provisioner name of the simulator's StorageClass.
pub(crate) const PROVISIONER: &str = "storefactory.io/simulated";
const LEASE_RENEW: Duration = Duration::from_secs(10);
const NODE_STATUS_REFRESH: Duration = Duration::from_secs(60);

/// Starts the simulated kubelet on the current runtime: registers its nodes and StorageClass,
/// then runs its watch loops in the returned set (dropping it stops them).
pub(crate) async fn run(
    client: Client,
    kubelet: &SimulatedKubelet,
    log_path: &Path,
) -> Result<JoinSet<()>> {
    let (claims, claims_writer) = reflector::store();
    let sim = Arc::new(Sim {
        client,
        claims,
        storage_classes: Mutex::new(HashMap::new()),
        shared: kubelet.shared.clone(),
        nodes: kubelet.node_names(),
        next_node: AtomicUsize::new(0),
        next_ip: AtomicU32::new(0),
        pods: Mutex::new(HashMap::new()),
        provisioned: Mutex::new(HashSet::new()),
        resizing: Mutex::new(HashSet::new()),
        volumes_changed: watch::channel(0).0,
        log: Log::open(log_path),
    });
    sim.ensure_storage_class().await?;
    sim.register_nodes().await?;
    sim.renew_leases().await?;
    let mut tasks = JoinSet::new();
    tasks.spawn(sim.clone().heartbeat_loop());
    tasks.spawn(sim.clone().watch_claims(claims_writer));
    tasks.spawn(sim.clone().watch_volumes());
    tasks.spawn(sim.clone().watch_pods());
    sim.log
        .line(format_args!("kubelet started with nodes {:?}", sim.nodes));
    Ok(tasks)
}

struct Sim {
    client: Client,
    /// Every claim, as the claims watch last saw it: pods waiting for their claims read it
    /// here, so their waits cost the apiserver nothing however many there are.
    claims: reflector::Store<PersistentVolumeClaim>,
    /// The provisioner of each StorageClass looked up so far (classes are few and their
    /// provisioner field is immutable).
    storage_classes: Mutex<HashMap<String, String>>,
    shared: Arc<Shared>,
    nodes: Vec<String>,
    next_node: AtomicUsize,
    next_ip: AtomicU32,
    /// Pods we drive or delete, by uid.
    pods: Mutex<HashMap<String, PodEntry>>,
    /// Claims we created a volume for, by uid.
    provisioned: Mutex<HashSet<String>>,
    /// Claims we grew (or are growing), by uid and requested size.
    resizing: Mutex<HashSet<(String, String)>>,
    /// Bumped on every claim event: pods waiting for their claims look again.
    volumes_changed: watch::Sender<u64>,
    log: Log,
}

/// Whether growing the claim's volume is held back ([`RESIZE_HOLD_ANNOTATION`]).
fn held(pvc: &PersistentVolumeClaim) -> bool {
    pvc.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(RESIZE_HOLD_ANNOTATION))
}

/// What a bound claim requests when it is more than its capacity: it was grown, and its
/// volume is to follow.
fn grown(pvc: &PersistentVolumeClaim) -> Option<String> {
    let bound = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    let wanted = pvc
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")?
        .0
        .clone();
    let capacity = pvc
        .status
        .as_ref()?
        .capacity
        .as_ref()?
        .get("storage")?
        .0
        .clone();
    // Claims only grow (the apiserver refuses less): any other request is a bigger one.
    (bound && pvc.metadata.deletion_timestamp.is_none() && wanted != capacity).then_some(wanted)
}

enum PodEntry {
    Driving(AbortHandle),
    Deleting,
}

/// `kubelet.log` in the control plane's logs directory.
struct Log(Option<Mutex<std::fs::File>>);

impl Log {
    fn open(path: &Path) -> Self {
        Log(std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ok()
            .map(Mutex::new))
    }

    fn line(&self, args: fmt::Arguments<'_>) {
        tracing::debug!(target: "storefactory_testkit::kubelet", "{args}");
        if let Some(file) = &self.0 {
            let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(file, "{} {args}", Timestamp::now());
        }
    }
}

fn now() -> Value {
    serde_json::to_value(Time(Timestamp::now())).unwrap_or(Value::Null)
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

fn is_retryable(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code >= 500 || s.code == 429,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

impl Sim {
    /// Runs `op` until it succeeds, retrying while the apiserver is unreachable or busy (it
    /// may be restarting); `None` when the object is gone or the error is final.
    async fn retry<T, F, Fut>(&self, what: String, mut op: F) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = kube::Result<T>>,
    {
        let mut delay = Duration::from_millis(100);
        for _ in 0..60 {
            match op().await {
                Ok(v) => return Some(v),
                Err(e) if is_not_found(&e) => return None,
                Err(e) if is_retryable(&e) => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                Err(e) => {
                    self.log.line(format_args!("{what}: {e}"));
                    return None;
                }
            }
        }
        self.log
            .line(format_args!("{what}: giving up after retries"));
        None
    }

    // ---- nodes -------------------------------------------------------------------------

    async fn ensure_storage_class(&self) -> Result<()> {
        let Some(name) = &self.shared.config.storage_class else {
            return Ok(());
        };
        let api: Api<StorageClass> = Api::all(self.client.clone());
        let class = json!({
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": name,
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": PROVISIONER,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
            "allowVolumeExpansion": true,
        });
        api.patch(
            name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(class),
        )
        .await
        .map_err(|e| Error::kube(format!("creating StorageClass {name}"), e))?;
        Ok(())
    }

    fn node_status(&self, index: usize) -> Value {
        let resources =
            json!({"cpu": "32", "memory": "128Gi", "pods": "110", "ephemeral-storage": "200Gi"});
        let condition = |kind: &str, status: &str, reason: &str, message: &str| {
            json!({"type": kind, "status": status, "reason": reason, "message": message,
                   "lastHeartbeatTime": now(), "lastTransitionTime": now()})
        };
        json!({
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status (simulated by storefactory-testkit)"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": format!("10.0.0.{}", 10 + index)},
                {"type": "Hostname", "address": self.nodes[index]},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": "", "systemUUID": "", "bootID": "",
                "kernelVersion": "simulated", "osImage": "storefactory-testkit simulated node",
                "containerRuntimeVersion": "simulated://1.0", "kubeletVersion": "v1.20.2",
                "kubeProxyVersion": "v1.20.2", "operatingSystem": "linux", "architecture": "amd64",
            },
        })
    }

    async fn register_nodes(&self) -> Result<()> {
        let api: Api<Node> = Api::all(self.client.clone());
        for (index, name) in self.nodes.iter().enumerate() {
            let node = json!({
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "labels": {
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "type": "storefactory-testkit-simulated",
                    },
                },
            });
            api.patch(
                name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(node),
            )
            .await
            .map_err(|e| Error::kube(format!("registering node {name}"), e))?;
            self.post_node_status(&api, index)
                .await
                .map_err(|e| Error::kube(format!("posting status of node {name}"), e))?;
        }
        Ok(())
    }

    async fn post_node_status(&self, api: &Api<Node>, index: usize) -> kube::Result<Node> {
        let status = json!({"status": self.node_status(index)});
        api.patch_status(
            &self.nodes[index],
            &PatchParams::default(),
            &Patch::Merge(status),
        )
        .await
    }

    async fn renew_leases(&self) -> Result<()> {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), "kube-node-lease");
        for name in &self.nodes {
            let lease = json!({
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": name, "namespace": "kube-node-lease"},
                "spec": {
                    "holderIdentity": name,
                    "leaseDurationSeconds": 40,
                    "renewTime": serde_json::to_value(MicroTime(Timestamp::now())).unwrap_or(Value::Null),
                },
            });
            api.patch(
                name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(lease),
            )
            .await
            .map_err(|e| Error::kube(format!("renewing the lease of node {name}"), e))?;
        }
        Ok(())
    }

    async fn heartbeat_loop(self: Arc<Self>) {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let mut since_status = Duration::ZERO;
        loop {
            tokio::time::sleep(LEASE_RENEW).await;
            if let Err(e) = self.renew_leases().await {
                self.log.line(format_args!("{e}"));
            }
            since_status += LEASE_RENEW;
            if since_status >= NODE_STATUS_REFRESH {
                since_status = Duration::ZERO;
                for index in 0..self.nodes.len() {
                    if let Err(e) = self.post_node_status(&nodes, index).await {
                        self.log.line(format_args!("posting node status: {e}"));
                    }
                }
            }
        }
    }

    // ---- volumes -----------------------------------------------------------------------

    async fn watch_claims(self: Arc<Self>, cache: reflector::store::Writer<PersistentVolumeClaim>) {
        let api: Api<PersistentVolumeClaim> = Api::all(self.client.clone());
        // The cache is updated before each event reaches the loop below, so a pod woken by
        // `volumes_changed` reads the claim as this event left it.
        let mut events = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .reflect(cache)
            .boxed();
        while let Some(event) = events.next().await {
            match event {
                Ok(Event::Apply(pvc) | Event::InitApply(pvc)) => {
                    self.volumes_changed.send_modify(|n| *n += 1);
                    let pending = pvc.spec.as_ref().is_some_and(|s| s.volume_name.is_none())
                        && pvc.metadata.deletion_timestamp.is_none()
                        && pvc
                            .status
                            .as_ref()
                            .and_then(|s| s.phase.as_deref())
                            .unwrap_or("Pending")
                            == "Pending";
                    let uid = pvc.metadata.uid.clone().unwrap_or_default();
                    if pending
                        && self
                            .provisioned
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(uid.clone())
                    {
                        tokio::spawn(self.clone().provision(pvc));
                    } else if let Some(wanted) = grown(&pvc)
                        && !held(&pvc)
                        && self
                            .resizing
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert((uid, wanted.clone()))
                    {
                        tokio::spawn(self.clone().resize(pvc, wanted));
                    }
                }
                Ok(Event::Delete(pvc)) => {
                    self.volumes_changed.send_modify(|n| *n += 1);
                    if let Some(uid) = &pvc.metadata.uid {
                        self.provisioned
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(uid);
                    }
                }
                Ok(_) => {}
                Err(e) => self.log.line(format_args!("watching claims: {e}")),
            }
        }
    }

    /// Grows the volume of a bound claim of ours to what the claim now requests, then the
    /// claim's capacity, as a CSI resizer and the kubelet's file system resize do together.
    async fn resize(self: Arc<Self>, pvc: PersistentVolumeClaim, wanted: String) {
        let ns = pvc.metadata.namespace.clone().unwrap_or_default();
        let name = pvc.metadata.name.clone().unwrap_or_default();
        let Some(volume) = pvc.spec.as_ref().and_then(|s| s.volume_name.clone()) else {
            return;
        };
        let volumes: Api<PersistentVolume> = Api::all(self.client.clone());
        let pv = self
            .retry(format!("reading volume {volume}"), || {
                volumes.get_opt(&volume)
            })
            .await
            .flatten();
        let ours = pv.as_ref().is_some_and(|pv| {
            pv.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("pv.kubernetes.io/provisioned-by"))
                .is_some_and(|p| p == PROVISIONER)
        });
        if !ours {
            return;
        }
        let grow = Patch::Merge(json!({"spec": {"capacity": {"storage": wanted}}}));
        let params = PatchParams::default();
        let grown = self
            .retry(format!("growing volume {volume} to {wanted}"), || {
                volumes.patch(&volume, &params, &grow)
            })
            .await;
        if grown.is_none() {
            return;
        }
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &ns);
        let status =
            Patch::Merge(json!({"status": {"capacity": {"storage": wanted}, "conditions": null}}));
        let done = self
            .retry(format!("growing claim {ns}/{name} to {wanted}"), || {
                claims.patch_status(&name, &params, &status)
            })
            .await;
        if done.is_some() {
            self.log.line(format_args!(
                "claim {ns}/{name}: volume {volume} grown to {wanted}"
            ));
        }
    }

    /// Creates a PersistentVolume pre-bound to the claim; the controller-manager's volume
    /// binder then binds the two, as after a real dynamic provisioning.
    async fn provision(self: Arc<Self>, pvc: PersistentVolumeClaim) {
        let ns = pvc.metadata.namespace.clone().unwrap_or_default();
        let name = pvc.metadata.name.clone().unwrap_or_default();
        let uid = pvc.metadata.uid.clone().unwrap_or_default();
        let spec = pvc.spec.clone().unwrap_or_default();
        let class = spec.storage_class_name.clone().unwrap_or_default();
        if !class.is_empty() {
            let known = self
                .storage_classes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&class)
                .cloned();
            let provisioner = match known {
                Some(provisioner) => Some(provisioner),
                None => {
                    let classes: Api<StorageClass> = Api::all(self.client.clone());
                    let found = self
                        .retry(format!("reading StorageClass {class}"), || {
                            classes.get_opt(&class)
                        })
                        .await
                        .flatten()
                        .map(|c| c.provisioner);
                    if let Some(provisioner) = &found {
                        self.storage_classes
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(class.clone(), provisioner.clone());
                    }
                    found
                }
            };
            if provisioner.is_none_or(|p| p != PROVISIONER) {
                self.log.line(format_args!(
                    "claim {ns}/{name}: StorageClass {class:?} is not the simulator's, leaving it pending"
                ));
                return;
            }
        }
        let storage = spec
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .map(|q| q.0.clone())
            .unwrap_or_else(|| "1Gi".to_owned());
        let access_modes = spec
            .access_modes
            .clone()
            .unwrap_or_else(|| vec!["ReadWriteOnce".to_owned()]);
        let pv_name = format!("pvc-{uid}");
        let pv = json!({
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {
                "name": pv_name,
                "labels": {"app.kubernetes.io/managed-by": "storefactory-testkit"},
                "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER},
            },
            "spec": {
                "capacity": {"storage": storage},
                "accessModes": access_modes,
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": class,
                "volumeMode": spec.volume_mode.clone().unwrap_or_else(|| "Filesystem".to_owned()),
                "hostPath": {"path": format!("/tmp/storefactory-testkit/volumes/{pv_name}"), "type": ""},
                "claimRef": {
                    "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "namespace": ns, "name": name, "uid": uid,
                },
            },
        });
        let pv: PersistentVolume = match serde_json::from_value(pv) {
            Ok(pv) => pv,
            Err(e) => {
                self.log
                    .line(format_args!("claim {ns}/{name}: building its volume: {e}"));
                return;
            }
        };
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        let created = self
            .retry(
                format!("creating volume {pv_name} for claim {ns}/{name}"),
                || async {
                    match api.create(&PostParams::default(), &pv).await {
                        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                        other => other.map(|_| ()),
                    }
                },
            )
            .await;
        if created.is_some() {
            self.log.line(format_args!(
                "claim {ns}/{name}: provisioned volume {pv_name} ({storage})"
            ));
        }
    }

    /// Deletes released volumes of ours, as a provisioner does for `reclaimPolicy: Delete`.
    async fn watch_volumes(self: Arc<Self>) {
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        let mut events = watcher::watcher(api.clone(), watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(event) = events.next().await {
            match event {
                Ok(Event::Apply(pv) | Event::InitApply(pv)) => {
                    let ours = pv
                        .metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get("pv.kubernetes.io/provisioned-by"))
                        .is_some_and(|p| p == PROVISIONER);
                    let released =
                        pv.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Released");
                    if ours && released && pv.metadata.deletion_timestamp.is_none() {
                        let name = pv.metadata.name.clone().unwrap_or_default();
                        let this = self.clone();
                        let api = api.clone();
                        tokio::spawn(async move {
                            let params = DeleteParams::default();
                            this.retry(format!("deleting released volume {name}"), || {
                                api.delete(&name, &params)
                            })
                            .await;
                        });
                    }
                }
                Ok(_) => {}
                Err(e) => self.log.line(format_args!("watching volumes: {e}")),
            }
        }
    }

    // ---- pods --------------------------------------------------------------------------

    async fn watch_pods(self: Arc<Self>) {
        let api: Api<Pod> = Api::all(self.client.clone());
        let mut events = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(event) = events.next().await {
            match event {
                Ok(Event::Apply(pod) | Event::InitApply(pod)) => self.on_pod(pod),
                Ok(Event::Delete(pod)) => self.on_pod_gone(&pod),
                Ok(_) => {}
                Err(e) => self.log.line(format_args!("watching pods: {e}")),
            }
        }
    }

    fn on_pod(self: &Arc<Self>, pod: Pod) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        if node.as_ref().is_some_and(|n| !self.nodes.contains(n)) {
            return; // another kubelet's pod
        }
        let mut pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        if pod.metadata.deletion_timestamp.is_some() {
            // Unbound pods are removed by the apiserver itself; bound ones wait for their
            // kubelet to confirm the containers are gone.
            if node.is_some() {
                match pods.insert(uid, PodEntry::Deleting) {
                    Some(PodEntry::Deleting) => {}
                    Some(PodEntry::Driving(task)) => {
                        task.abort();
                        tokio::spawn(self.clone().finish_deletion(pod));
                    }
                    None => {
                        tokio::spawn(self.clone().finish_deletion(pod));
                    }
                }
            }
            return;
        }
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or("Pending");
        if pods.contains_key(&uid) || phase == "Succeeded" || phase == "Failed" {
            return;
        }
        let task = tokio::spawn(self.clone().drive(pod));
        pods.insert(uid, PodEntry::Driving(task.abort_handle()));
    }

    fn on_pod_gone(&self, pod: &Pod) {
        let Some(uid) = &pod.metadata.uid else { return };
        if let Some(PodEntry::Driving(task)) = self
            .pods
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uid)
        {
            task.abort();
        }
    }

    async fn finish_deletion(self: Arc<Self>, pod: Pod) {
        let api: Api<Pod> = Api::namespaced(
            self.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let name = pod.metadata.name.clone().unwrap_or_default();
        let params = DeleteParams::default()
            .grace_period(0)
            .preconditions(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            });
        let done = self
            .retry(format!("deleting pod {}", pod_key(&pod)), || async {
                match api.delete(&name, &params).await {
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(()), // replaced by a new pod
                    other => other.map(|_| ()),
                }
            })
            .await;
        if done.is_some() {
            self.log.line(format_args!(
                "pod {}: containers stopped, deletion finished",
                pod_key(&pod)
            ));
        }
    }

    /// Waits until every claim the pod mounts is bound, reporting the pod unschedulable
    /// meanwhile (as the scheduler does).
    async fn wait_for_claims(&self, pod: &Pod, api: &Api<Pod>) {
        let claims: Vec<String> = pod
            .spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .filter_map(|v| {
                v.persistent_volume_claim
                    .as_ref()
                    .map(|c| c.claim_name.clone())
            })
            .collect();
        if claims.is_empty() {
            return;
        }
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let mut changed = self.volumes_changed.subscribe();
        let mut reported = None;
        loop {
            changed.borrow_and_update();
            let mut problem = None;
            for claim in &claims {
                match self.claims.get(&ObjectRef::new(claim).within(ns)) {
                    Some(pvc)
                        if pvc.status.as_ref().and_then(|s| s.phase.as_deref())
                            == Some("Bound") => {}
                    Some(_) => {
                        problem =
                            Some("1 pod has unbound immediate PersistentVolumeClaims".to_owned())
                    }
                    None => problem = Some(format!("persistentvolumeclaim \"{claim}\" not found")),
                }
            }
            let Some(problem) = problem else { return };
            if reported.as_ref() != Some(&problem) {
                let message = format!("0/{} nodes are available: {problem}.", self.nodes.len());
                let status = json!({"status": {"conditions": [{
                    "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": message, "lastProbeTime": null, "lastTransitionTime": now(),
                }]}});
                let name = pod.metadata.name.as_deref().unwrap_or_default();
                let _ = api
                    .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
                    .await;
                self.log
                    .line(format_args!("pod {}: waiting: {message}", pod_key(pod)));
                reported = Some(problem);
            }
            // A claim event wakes us; the timeout covers a cache still relisting after the
            // apiserver was down.
            let _ = tokio::time::timeout(Duration::from_secs(5), changed.changed()).await;
        }
    }

    /// The node a pod asks for (by `kubernetes.io/hostname` node selector, or by node name
    /// affinity, as DaemonSet pods do), else the next one round-robin.
    fn pick_node(&self, spec: &k8s_openapi::api::core::v1::PodSpec) -> String {
        let by_selector = spec
            .node_selector
            .as_ref()
            .and_then(|s| s.get("kubernetes.io/hostname"));
        let by_affinity = spec
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .into_iter()
            .flat_map(|s| &s.node_selector_terms)
            .flat_map(|t| t.match_fields.iter().flatten())
            .filter(|r| r.key == "metadata.name" && r.operator == "In")
            .flat_map(|r| r.values.iter().flatten())
            .find(|n| self.nodes.contains(n));
        by_selector
            .filter(|n| self.nodes.contains(n))
            .or(by_affinity)
            .cloned()
            .unwrap_or_else(|| {
                self.nodes[self.next_node.fetch_add(1, Ordering::Relaxed) % self.nodes.len()]
                    .clone()
            })
    }

    /// Plays one pod's life on this node.
    async fn drive(self: Arc<Self>, pod: Pod) {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let spec = pod.spec.clone().unwrap_or_default();

        let node = match spec.node_name.clone() {
            Some(node) => node,
            None => {
                self.wait_for_claims(&pod, &api).await;
                let node = self.pick_node(&spec);
                let binding = json!({
                    "apiVersion": "v1",
                    "kind": "Binding",
                    "metadata": {"name": name, "namespace": ns, "uid": pod.metadata.uid},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": node},
                });
                let post = PostParams::default();
                let bound = self
                    .retry(format!("binding pod {ns}/{name}"), || {
                        api.create_subresource::<_, Value>("binding", &name, &post, &binding)
                    })
                    .await;
                if bound.is_none() {
                    return;
                }
                self.log
                    .line(format_args!("pod {ns}/{name}: bound to {node}"));
                node
            }
        };

        let fault = self.shared.fault_for(&pod);
        let config = &self.shared.config;
        let n = self.next_ip.fetch_add(1, Ordering::Relaxed);
        let node_index = self.nodes.iter().position(|n| *n == node).unwrap_or(0);
        let view = PodView {
            pod: &pod,
            init: spec.init_containers.clone().unwrap_or_default(),
            app: spec.containers.clone(),
            host_ip: format!("10.0.0.{}", 10 + node_index),
            pod_ip: format!("10.244.{}.{}", n / 250, n % 250 + 2),
            start_time: now(),
        };
        let patch = |status: Value| {
            let api = api.clone();
            let this = self.clone();
            let name = name.clone();
            let ns = ns.clone();
            async move {
                let body = Patch::Merge(json!({"status": status}));
                let params = PatchParams::default();
                this.retry(format!("updating status of pod {ns}/{name}"), || {
                    api.patch_status(&name, &params, &body)
                })
                .await
                .is_some()
            }
        };

        let delay = match fault.as_ref().map(Fault::kind) {
            Some(FaultKind::SlowStart(d)) => *d,
            _ => config.pod_start_delay,
        };
        if !delay.is_zero() {
            let init = view
                .init
                .iter()
                .enumerate()
                .map(|(i, _)| {
                    if i == 0 {
                        C::running(true)
                    } else {
                        C::waiting("PodInitializing", "")
                    }
                })
                .collect();
            let waiting = if view.init.is_empty() {
                "ContainerCreating"
            } else {
                "PodInitializing"
            };
            let app = view.app.iter().map(|_| C::waiting(waiting, "")).collect();
            if !patch(view.status("Pending", init, app)).await {
                return;
            }
            tokio::time::sleep(delay).await;
        }

        let restart_policy = spec
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".to_owned());
        let never_restart = restart_policy == "Never";
        let owned_by_job = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.kind == "Job");
        let runs_to_completion = restart_policy != "Always" || owned_by_job;
        let interval = config.restart_interval;
        let completed = || C::terminated(0, "Completed");

        let fault = fault.filter(|f| !matches!(f.kind(), FaultKind::SlowStart(_)));
        let Some(fault) = fault else {
            // The happy path: init containers complete, containers run and are ready.
            let init: Vec<C> = view.init.iter().map(|_| completed()).collect();
            let app = view.app.iter().map(|_| C::running(true)).collect();
            if !patch(view.status("Running", init.clone(), app)).await {
                return;
            }
            self.log.line(format_args!(
                "pod {ns}/{name}: running and ready on {node}, ip {}",
                view.pod_ip
            ));
            if runs_to_completion {
                tokio::time::sleep(config.job_duration).await;
                let app = view.app.iter().map(|_| completed()).collect();
                if patch(view.status("Succeeded", init, app)).await {
                    self.log.line(format_args!("pod {ns}/{name}: succeeded"));
                }
            }
            return;
        };

        self.log.line(format_args!(
            "pod {ns}/{name}: injecting fault {:?}",
            fault.kind()
        ));
        let failing_init = view.init.iter().position(|c| fault.matches_container(c));
        // Containers before the failing init container completed; those after it wait.
        let init_with = |failing: C| -> Vec<C> {
            view.init
                .iter()
                .enumerate()
                .map(|(i, _)| match failing_init {
                    Some(f) if i < f => completed(),
                    Some(f) if i == f => failing.clone(),
                    Some(_) => C::waiting("PodInitializing", ""),
                    None => completed(),
                })
                .collect()
        };
        let app_with = |failing: C, others: C| -> Vec<C> {
            view.app
                .iter()
                .map(|c| {
                    if failing_init.is_some() {
                        C::waiting("PodInitializing", "")
                    } else if fault.matches_container(c) {
                        failing.clone()
                    } else {
                        others.clone()
                    }
                })
                .collect()
        };
        // Phase of a pod whose init containers are done and whose app containers are as
        // given, following the kubelet's rules.
        let phase_when_initialized = || {
            if failing_init.is_some() {
                "Pending"
            } else {
                "Running"
            }
        };

        match *fault.kind() {
            FaultKind::Crash { exit_code } => {
                let crashed = C::terminated(exit_code, "Error");
                if never_restart {
                    // Nothing restarts: the pod has failed (other containers stop too).
                    let status = view.status(
                        "Failed",
                        init_with(crashed.clone()),
                        app_with(crashed, completed()),
                    );
                    if patch(status).await {
                        self.log.line(format_args!(
                            "pod {ns}/{name}: failed with exit code {exit_code}"
                        ));
                    }
                    return;
                }
                let phase = phase_when_initialized();
                let status = view.status(
                    phase,
                    init_with(crashed.clone()),
                    app_with(crashed, C::running(true)),
                );
                if !patch(status).await {
                    return;
                }
                let mut restarts = 0;
                loop {
                    // Back off like the kubelet (doubling), from the configured interval up to
                    // eight times it, so a crash-looping pod does not flood the apiserver.
                    tokio::time::sleep(interval * (1 << restarts.min(3))).await;
                    restarts += 1;
                    let backoff = 10u64.saturating_mul(1 << restarts.min(5)).min(300) / 2;
                    let looping = C::Waiting {
                        reason: "CrashLoopBackOff",
                        message: String::new(),
                        restarts,
                        last_exit: Some(exit_code),
                    };
                    let looping = looping.with_message(|c| {
                        format!("back-off {backoff}s restarting failed container={c} pod={name}_{ns}({})",
                            pod.metadata.uid.as_deref().unwrap_or_default())
                    });
                    let status = view.status(
                        phase,
                        init_with(looping.clone()),
                        app_with(looping, C::running(true)),
                    );
                    if !patch(status).await {
                        return;
                    }
                }
            }
            FaultKind::ImagePull => {
                let pull_error = |reason: &'static str| C::Waiting {
                    reason,
                    message: String::new(),
                    restarts: 0,
                    last_exit: None,
                };
                let mut others_running = view.app.iter().any(|c| !fault.matches_container(c));
                others_running &= failing_init.is_none();
                let phase = if others_running { "Running" } else { "Pending" };
                for (reason, describe) in [
                    (
                        "ErrImagePull",
                        "rpc error: code = NotFound desc = failed to pull and unpack image",
                    ),
                    ("ImagePullBackOff", "Back-off pulling image"),
                ] {
                    let failing = pull_error(reason).with_image_message(describe);
                    let status = view.status(
                        phase,
                        init_with(failing.clone()),
                        app_with(failing, C::running(true)),
                    );
                    if !patch(status).await {
                        return;
                    }
                    tokio::time::sleep(interval).await;
                }
                self.log
                    .line(format_args!("pod {ns}/{name}: image cannot be pulled"));
            }
            FaultKind::NeverReady => {
                let init: Vec<C> = view.init.iter().map(|_| completed()).collect();
                let app = view
                    .app
                    .iter()
                    .map(|c| C::running(!fault.matches_container(c)))
                    .collect();
                if patch(view.status("Running", init, app)).await {
                    self.log
                        .line(format_args!("pod {ns}/{name}: running, never ready"));
                }
            }
            FaultKind::SlowStart(_) => {}
        }
    }
}

/// The simulated state of one container.
#[derive(Debug, Clone)]
enum C {
    Waiting {
        reason: &'static str,
        message: String,
        restarts: i32,
        last_exit: Option<i32>,
    },
    Running {
        ready: bool,
    },
    Terminated {
        exit_code: i32,
        reason: &'static str,
    },
}

/// Placeholders in messages that depend on the container they are reported for.
const CONTAINER: &str = "\u{0}container\u{0}";
const IMAGE: &str = "\u{0}image\u{0}";

impl C {
    fn running(ready: bool) -> Self {
        C::Running { ready }
    }

    fn waiting(reason: &'static str, message: &str) -> Self {
        C::Waiting {
            reason,
            message: message.to_owned(),
            restarts: 0,
            last_exit: None,
        }
    }

    fn terminated(exit_code: i32, reason: &'static str) -> Self {
        C::Terminated { exit_code, reason }
    }

    fn with_message(mut self, make: impl Fn(&str) -> String) -> Self {
        if let C::Waiting { message, .. } = &mut self {
            *message = make(CONTAINER);
        }
        self
    }

    fn with_image_message(self, describe: &str) -> Self {
        self.with_message(|_| format!("{describe} \"{IMAGE}\" (simulated by storefactory-testkit)"))
    }

    fn ready(&self) -> bool {
        matches!(self, C::Running { ready: true })
    }

    fn json(&self, container: &Container, pod: &Pod, started_at: &Value) -> Value {
        let image = container.image.clone().unwrap_or_default();
        let mut hasher = DefaultHasher::new();
        (pod.metadata.uid.as_deref(), &container.name).hash(&mut hasher);
        let container_id = format!("containerd://{:016x}", hasher.finish());
        let image_id = format!("simulated://{image}");
        let terminated = |exit_code: i32, reason: &str| {
            json!({"terminated": {
                "exitCode": exit_code, "reason": reason, "startedAt": started_at,
                "finishedAt": now(), "containerID": container_id,
            }})
        };
        // Image and container ids exist once the container has run at least once.
        let (state, last_state, restarts, has_run) = match self {
            C::Waiting {
                reason,
                message,
                restarts,
                last_exit,
            } => {
                let message = message
                    .replace(CONTAINER, &container.name)
                    .replace(IMAGE, &image);
                let mut waiting = json!({"reason": reason});
                if !message.is_empty() {
                    waiting["message"] = json!(message);
                }
                let last = last_exit.map_or(json!({}), |code| terminated(code, "Error"));
                (
                    json!({"waiting": waiting}),
                    last,
                    *restarts,
                    last_exit.is_some(),
                )
            }
            C::Running { .. } => (
                json!({"running": {"startedAt": started_at}}),
                json!({}),
                0,
                true,
            ),
            C::Terminated { exit_code, reason } => {
                (terminated(*exit_code, reason), json!({}), 0, true)
            }
        };
        let mut status = json!({
            "name": container.name,
            "image": image,
            "imageID": if has_run { image_id } else { String::new() },
            "ready": self.ready(),
            "started": matches!(self, C::Running { .. }),
            "restartCount": restarts,
            "state": state,
            "lastState": last_state,
        });
        if has_run {
            status["containerID"] = json!(container_id);
        }
        status
    }
}

struct PodView<'a> {
    pod: &'a Pod,
    init: Vec<Container>,
    app: Vec<Container>,
    host_ip: String,
    pod_ip: String,
    start_time: Value,
}

impl PodView<'_> {
    /// A full pod status, with conditions derived from the containers as the kubelet does.
    fn status(&self, phase: &str, init: Vec<C>, app: Vec<C>) -> Value {
        let terminal = phase == "Succeeded" || phase == "Failed";
        let not_done: Vec<&str> = self
            .init
            .iter()
            .zip(&init)
            .filter(|(_, s)| !matches!(s, C::Terminated { exit_code: 0, .. }))
            .map(|(c, _)| c.name.as_str())
            .collect();
        let unready: Vec<&str> = self
            .app
            .iter()
            .zip(&app)
            .filter(|(_, s)| !s.ready())
            .map(|(c, _)| c.name.as_str())
            .collect();
        let condition = |kind: &str, ok: bool, reason: &str, message: String| {
            let mut c = json!({"type": kind, "status": if ok { "True" } else { "False" },
                               "lastProbeTime": null, "lastTransitionTime": now()});
            if !ok || phase == "Succeeded" {
                c["reason"] = json!(reason);
                if !message.is_empty() {
                    c["message"] = json!(message);
                }
            }
            c
        };
        let initialized = not_done.is_empty();
        let (ready_reason, ready_message) = if phase == "Succeeded" {
            ("PodCompleted", String::new())
        } else {
            (
                "ContainersNotReady",
                format!("containers with unready status: [{}]", unready.join(" ")),
            )
        };
        let ready = unready.is_empty() && !terminal;
        let (init_reason, init_message) = if phase == "Succeeded" {
            ("PodCompleted", String::new())
        } else {
            (
                "ContainersNotInitialized",
                format!(
                    "containers with incomplete status: [{}]",
                    not_done.join(" ")
                ),
            )
        };
        let started_at = &self.start_time;
        json!({
            "phase": phase,
            "conditions": [
                condition("Initialized", initialized, init_reason, init_message),
                condition("Ready", ready, ready_reason, ready_message.clone()),
                condition("ContainersReady", ready, ready_reason, ready_message),
                {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": started_at},
            ],
            "hostIP": self.host_ip,
            "podIP": self.pod_ip,
            "podIPs": [{"ip": self.pod_ip}],
            "startTime": started_at,
            "initContainerStatuses": self.init.iter().zip(&init).map(|(c, s)| s.json(c, self.pod, started_at)).collect::<Vec<_>>(),
            "containerStatuses": self.app.iter().zip(&app).map(|(c, s)| s.json(c, self.pod, started_at)).collect::<Vec<_>>(),
            "reason": null,
            "message": null,
        })
    }
}
