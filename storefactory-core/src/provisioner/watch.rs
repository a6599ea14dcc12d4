//! Watches: one per kind over every store namespace (by the `managed-by` label). They keep
//! caches of what readiness reads (namespaces, workloads, pods, volume claims), so that
//! reconciling a store costs no LIST, and wake the stores their events concern, through a
//! filter that tells this process's own apply echoes and status-only updates from drift.

use std::collections::HashSet;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::task::JoinSet;

use super::state::Seen;
use super::{MANAGED_SELECTOR, Provisioner};
use crate::blueprint::LABEL_STORE;
use crate::blueprint::lifecycle::WorkloadKind;
use crate::manifest::Manifest;
use crate::spec::StoreId;
use crate::store::StoreStatus;

/// The caches readiness and ownership checks read.
#[derive(Clone)]
pub(crate) struct Caches {
    pub namespaces: Store<DynamicObject>,
    deployments: Store<DynamicObject>,
    statefulsets: Store<DynamicObject>,
    jobs: Store<DynamicObject>,
    pods: Store<Pod>,
    /// Volume claims: a changed store waits until its grown claims report their new
    /// capacity.
    claims: Store<DynamicObject>,
    resources: Arc<[ApiResource; 5]>,
}

impl Caches {
    /// The store's namespace, if the cache has it.
    pub fn namespace(&self, name: &str) -> Option<Arc<DynamicObject>> {
        self.namespaces
            .get(&ObjectRef::new_with(name, self.resources[0].clone()))
    }

    /// A workload of the store.
    pub fn workload(
        &self,
        namespace: &str,
        kind: WorkloadKind,
        name: &str,
    ) -> Option<Arc<DynamicObject>> {
        let (store, resource) = match kind {
            WorkloadKind::Deployment => (&self.deployments, &self.resources[1]),
            WorkloadKind::StatefulSet => (&self.statefulsets, &self.resources[2]),
            WorkloadKind::Job => (&self.jobs, &self.resources[3]),
        };
        store.get(&ObjectRef::new_with(name, resource.clone()).within(namespace))
    }

    /// A volume claim of the store.
    pub fn claim(&self, namespace: &str, name: &str) -> Option<Arc<DynamicObject>> {
        self.claims
            .get(&ObjectRef::new_with(name, self.resources[4].clone()).within(namespace))
    }

    /// The store's pods.
    pub fn pods(&self, namespace: &str) -> Vec<Pod> {
        self.pods
            .state_filter(|p| p.metadata.namespace.as_deref() == Some(namespace))
            .into_iter()
            .map(|p| (*p).clone())
            .collect()
    }

    /// Waits until every cache holds its first complete listing.
    pub async fn ready(&self) {
        let _ = self.namespaces.wait_until_ready().await;
        let _ = self.deployments.wait_until_ready().await;
        let _ = self.statefulsets.wait_until_ready().await;
        let _ = self.jobs.wait_until_ready().await;
        let _ = self.pods.wait_until_ready().await;
        let _ = self.claims.wait_until_ready().await;
    }
}

/// What a watch event calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Nothing: our own apply coming back, or a version already seen.
    Ignore,
    /// Look at the store's progress (a status change).
    Progress,
    /// Re-apply the store's objects (possible drift).
    Apply,
}

/// A hash of the fields `manager` owns by server-side apply (its `Apply` entry in
/// `managedFields`); `None` when it owns none. Drift is a change to these: anyone who changes
/// a field we applied — by an update, a patch or a forced apply — takes its ownership, and
/// our entry loses it. Changes to fields nobody applied (a controller writing status, the
/// volume binder setting a claim's `volumeName`) and no-op applies that still bump the
/// resource version leave it as it was.
pub(crate) fn ownership(meta: &ObjectMeta, manager: &str) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let entry = meta.managed_fields.iter().flatten().find(|e| {
        e.manager.as_deref() == Some(manager) && e.operation.as_deref() == Some("Apply")
    })?;
    let fields = entry
        .fields_v1
        .as_ref()
        .map(|f| f.0.to_string())
        .unwrap_or_default();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    fields.hash(&mut hasher);
    Some(hasher.finish())
}

/// `Kind/name`: how an object being applied is known before its UID is.
pub(crate) fn object_key(kind: &str, name: &str) -> String {
    format!("{kind}/{name}")
}

fn store_of<K: Resource>(obj: &K) -> Option<StoreId> {
    let labels = obj.meta().labels.as_ref()?;
    // The objects of on-demand Jobs (backups) come and go with them, and are followed by
    // their own watch: they are neither drift nor progress of the store.
    if labels.contains_key(super::backup::LABEL_OPERATION) {
        return None;
    }
    labels
        .get(LABEL_STORE)
        .and_then(|id| StoreId::new(id.clone()).ok())
}

/// A cache's writer, and what it trims from objects before storing them.
type CacheWriter<K> = (reflector::store::Writer<K>, fn(&mut K));

/// What to do about a watch event once the cache holds it.
enum Then {
    Wake(StoreId, Wake),
    Deleted(StoreId, Box<ObjectMeta>),
    /// Every known store (a namespace listing: deletions missed while away send no event).
    WakeAll,
    /// The stores a completed listing of a cached kind concerns.
    WakeRelisted,
}

/// The identity and version of an object, and what the namespace checks read (labels, the
/// deletion mark): the rest of the metadata is dropped from cached objects.
fn trim_meta(meta: &mut ObjectMeta, keep_labels: bool) {
    *meta = ObjectMeta {
        name: meta.name.take(),
        namespace: meta.namespace.take(),
        uid: meta.uid.take(),
        resource_version: meta.resource_version.take(),
        generation: meta.generation.take(),
        deletion_timestamp: meta.deletion_timestamp.take(),
        labels: if keep_labels {
            meta.labels.take()
        } else {
            None
        },
        ..ObjectMeta::default()
    };
}

/// Keeps of a cached namespace, workload or volume claim what readiness and the namespace
/// checks read: its identity, labels, generation, wanted replicas and status (a claim's
/// capacity). The spec keeps only its
/// replicas and the fields the typed readers require (the pod template and selector, empty);
/// conditions lose their timestamps. Field ownership is read from the watch event before
/// the object is trimmed. A thousand stores' workloads whole hold hundreds of MiB; trimmed,
/// a few.
fn trim_object(obj: &mut DynamicObject) {
    trim_meta(&mut obj.metadata, true);
    let data = std::mem::take(&mut obj.data);
    let serde_json::Value::Object(mut data) = data else {
        return;
    };
    let mut kept = serde_json::Map::new();
    if let Some(serde_json::Value::Object(spec)) = data.remove("spec") {
        let mut small = serde_json::Map::new();
        for (key, value) in spec {
            match key.as_str() {
                "replicas" | "serviceName" => {
                    small.insert(key, value);
                }
                "template" | "selector" => {
                    small.insert(key, serde_json::json!({}));
                }
                _ => {}
            }
        }
        kept.insert("spec".to_owned(), serde_json::Value::Object(small));
    }
    if let Some(mut status) = data.remove("status") {
        if let Some(conditions) = status.get_mut("conditions").and_then(|c| c.as_array_mut()) {
            for condition in conditions.iter_mut().filter_map(|c| c.as_object_mut()) {
                condition.retain(|key, _| {
                    matches!(key.as_str(), "type" | "status" | "reason" | "message")
                });
            }
        }
        kept.insert("status".to_owned(), status);
    }
    obj.data = serde_json::Value::Object(kept);
}

/// Keeps of a cached pod its identity, phase and what each container waits for: what tells
/// a pod that will not come up ([`super::readiness::pod_failure`]) or has finished.
fn trim_pod(pod: &mut Pod) {
    use k8s_openapi::api::core::v1::{ContainerState, ContainerStatus, PodStatus};
    trim_meta(&mut pod.metadata, false);
    pod.spec = None;
    let Some(status) = pod.status.take() else {
        return;
    };
    let containers = |statuses: Option<Vec<ContainerStatus>>| {
        statuses.map(|statuses| {
            statuses
                .into_iter()
                .map(|c| ContainerStatus {
                    name: c.name,
                    image: c.image,
                    ready: c.ready,
                    restart_count: c.restart_count,
                    state: c
                        .state
                        .and_then(|s| s.waiting)
                        .map(|waiting| ContainerState {
                            waiting: Some(waiting),
                            ..ContainerState::default()
                        }),
                    ..ContainerStatus::default()
                })
                .collect()
        })
    };
    pod.status = Some(PodStatus {
        phase: status.phase,
        init_container_statuses: containers(status.init_container_statuses),
        container_statuses: containers(status.container_statuses),
        ..PodStatus::default()
    });
}

impl Provisioner {
    /// Starts the watches in `set` and returns their caches.
    pub(super) fn start_watches(&self, set: &mut JoinSet<()>) -> Caches {
        let resource = |kind: &str| {
            Manifest::api_resource_of_kind(kind)
                .unwrap_or_else(|| ApiResource::erase::<k8s_openapi::api::core::v1::Namespace>(&()))
        };
        let resources = Arc::new([
            resource("Namespace"),
            resource("Deployment"),
            resource("StatefulSet"),
            resource("Job"),
            resource("PersistentVolumeClaim"),
        ]);
        let cache = |resource: &ApiResource, set: &mut JoinSet<()>| {
            let writer = reflector::store::Writer::new(resource.clone());
            let store = writer.as_reader();
            let api: Api<DynamicObject> = Api::all_with(self.inner.client.clone(), resource);
            let stream = watcher(api, self.watch_config()).default_backoff().boxed();
            self.spawn_watch(
                set,
                resource.kind.clone(),
                stream,
                Some((writer, trim_object)),
            );
            store
        };
        let namespaces = cache(&resources[0], set);
        let deployments = cache(&resources[1], set);
        let statefulsets = cache(&resources[2], set);
        let jobs = cache(&resources[3], set);
        let claims = cache(&resources[4], set);
        let pod_writer = reflector::store::Writer::<Pod>::default();
        let pods = pod_writer.as_reader();
        let api: Api<Pod> = Api::all(self.inner.client.clone());
        let stream = watcher(api, self.watch_config()).default_backoff().boxed();
        self.spawn_watch(set, "Pod".to_owned(), stream, Some((pod_writer, trim_pod)));
        // The other kinds are watched for drift only. Secrets are not watched: that would
        // need every Secret of every namespace listed and watched (a label selector narrows
        // what is sent, not what may be read). A store's Secrets are read only when needed,
        // by name in its namespace; one deleted after the store was ready is noticed when
        // its credentials are read (see `lifecycle::credentials`).
        // Kinds no blueprint creates are not watched either (when a custom blueprint does
        // not render a default store, every kind is).
        let created = self.inner.blueprints.kinds();
        for resource in Manifest::api_resources() {
            let skipped = resources.iter().any(|r| r.kind == resource.kind)
                || resource.kind == "Secret"
                || created
                    .as_ref()
                    .is_some_and(|kinds| !kinds.contains(resource.kind.as_str()));
            if skipped {
                continue;
            }
            let api: Api<DynamicObject> = Api::all_with(self.inner.client.clone(), &resource);
            let stream = watcher(api, self.watch_config()).default_backoff().boxed();
            self.spawn_watch::<DynamicObject>(set, resource.kind.clone(), stream, None);
        }
        Caches {
            namespaces,
            deployments,
            statefulsets,
            jobs,
            pods,
            claims,
            resources,
        }
    }

    fn watch_config(&self) -> watcher::Config {
        watcher::Config::default().labels(MANAGED_SELECTOR)
    }

    /// Follows one watch: each event is classified on the whole object as the apiserver sent
    /// it, then, when the kind is cached, trimmed to what readiness reads and stored, and only
    /// then does the store it concerns wake up, so that its reconcile finds the cache current.
    fn spawn_watch<K>(
        &self,
        set: &mut JoinSet<()>,
        kind: String,
        mut stream: futures::stream::BoxStream<'static, watcher::Result<watcher::Event<K>>>,
        mut cache: Option<CacheWriter<K>>,
    ) where
        K: Resource + Clone + serde::Serialize + Send + Sync + 'static,
        K::DynamicType: Clone + Eq + std::hash::Hash + Send + Sync,
    {
        let this = self.clone();
        set.spawn(async move {
            // Stores woken by a relisting of a cached kind: the cache takes the listed
            // objects only once the listing is complete, so they look again then.
            let mut relisted: HashSet<StoreId> = HashSet::new();
            while let Some(event) = stream.next().await {
                let event = match event {
                    Ok(event) => event,
                    Err(error) => {
                        tracing::debug!(%kind, %error, "watch interrupted; resuming");
                        continue;
                    }
                };
                let then = match &event {
                    watcher::Event::Apply(obj) | watcher::Event::InitApply(obj) => store_of(obj)
                        .map(|id| {
                            let wake = this.classify(&id, &kind, obj.meta());
                            Then::Wake(id, wake)
                        }),
                    watcher::Event::Delete(obj) => {
                        store_of(obj).map(|id| Then::Deleted(id, Box::new(obj.meta().clone())))
                    }
                    watcher::Event::InitDone if kind == "Namespace" => Some(Then::WakeAll),
                    watcher::Event::InitDone => Some(Then::WakeRelisted),
                    watcher::Event::Init => None,
                };
                let then = match then {
                    Some(Then::Wake(id, wake))
                        if cache.is_some()
                            && wake != Wake::Ignore
                            && matches!(event, watcher::Event::InitApply(_)) =>
                    {
                        // Drift found in a listing is re-applied once the cache has it too.
                        if wake == Wake::Apply {
                            this.enqueue(&id);
                        }
                        relisted.insert(id);
                        None
                    }
                    other => other,
                };
                if let Some((writer, trim)) = cache.as_mut() {
                    writer.apply_watcher_event(&event.modify(*trim));
                }
                match then {
                    None | Some(Then::Wake(_, Wake::Ignore)) => {}
                    Some(Then::Wake(id, Wake::Progress)) => this.wake(&id),
                    Some(Then::Wake(id, Wake::Apply)) => this.enqueue(&id),
                    Some(Then::Deleted(id, meta)) => this.deleted(&id, &kind, &meta).await,
                    // Namespaces deleted while the watch was interrupted send no event:
                    // every known store looks at its namespace again (from the cache).
                    Some(Then::WakeAll) => {
                        relisted.clear();
                        for id in this.inner.states.ids() {
                            this.wake(&id);
                        }
                    }
                    Some(Then::WakeRelisted) => {
                        for id in relisted.drain() {
                            this.wake(&id);
                        }
                    }
                }
            }
        });
    }

    /// What a watch event of a store's object calls for. Our own applies come back as events
    /// (and on Kubernetes 1.20 some applies that change nothing still bump the resource
    /// version of StatefulSets and Ingresses): those are ignored, or a ready store would
    /// re-apply itself for ever. Changes that leave the fields we applied ours ([`ownership`]:
    /// controllers writing status or filling in fields of their own), objects we never
    /// applied (Secrets created once, claims made from templates), and pods only move
    /// progress; a change that took fields from us is drift, so the store is re-applied.
    fn classify(&self, id: &StoreId, kind: &str, meta: &ObjectMeta) -> Wake {
        if kind == "Pod" {
            return Wake::Progress;
        }
        let Some(uid) = meta.uid.clone() else {
            return Wake::Progress;
        };
        let key = object_key(kind, meta.name.as_deref().unwrap_or_default());
        self.inner.states.with(id, |state| {
            let previous = state.seen.get(&uid);
            if meta.resource_version.is_some()
                && previous.is_some_and(|p| p.resource_version == meta.resource_version)
            {
                return Wake::Ignore;
            }
            let content = ownership(meta, &self.inner.config.field_manager);
            // During our own apply of the object, its events are ours (a change by someone
            // else in that moment is overwritten by the apply anyway).
            let ours = state.in_flight.contains_key(&key);
            let unchanged = ours
                || content.is_none() && previous.is_none_or(|p| p.content.is_none())
                || previous.is_some_and(|p| p.content == content);
            state.seen.insert(
                uid,
                Seen {
                    resource_version: meta.resource_version.clone(),
                    content,
                },
            );
            if unchanged {
                Wake::Progress
            } else {
                Wake::Apply
            }
        })
    }

    /// An object of a store was deleted: forget its version, say what happens to it, and
    /// look at the store again.
    async fn deleted(&self, id: &StoreId, kind: &str, meta: &ObjectMeta) {
        if let Some(uid) = &meta.uid {
            self.inner.states.with(id, |state| state.seen.remove(uid));
        }
        if kind == "Pod" || kind == "Namespace" {
            self.wake(id);
            return;
        }
        let name = meta.name.as_deref().unwrap_or_default();
        if let Ok(Some(record)) = self.inner.repo.get_store(id).await
            && matches!(record.status, StoreStatus::Ready | StoreStatus::Suspended)
        {
            // Reported once per deletion.
            let message = format!("{kind}/{name} was deleted; restoring it");
            let _ = self
                .record(id, crate::store::EventKind::Warning { message })
                .await;
        }
        self.enqueue(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(entries: serde_json::Value) -> ObjectMeta {
        serde_json::from_value(serde_json::json!({"managedFields": entries})).unwrap()
    }

    #[test]
    fn ownership_changes_only_when_our_applied_fields_do() {
        let ours = serde_json::json!({"manager": "storefactory", "operation": "Apply",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}});
        let applied = meta(serde_json::json!([ours]));
        // A controller writes status and a field of its own: our entry is the same.
        let controller = meta(serde_json::json!([ours,
            {"manager": "kube-controller-manager", "operation": "Update",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:volumeName": {}}, "f:status": {}}}]));
        assert_eq!(
            ownership(&applied, "storefactory"),
            ownership(&controller, "storefactory")
        );
        // Someone edits a field we applied: it is theirs now, and ours is missing it.
        let edited = meta(serde_json::json!([
            {"manager": "storefactory", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}},
            {"manager": "kubectl-edit", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]));
        assert_ne!(
            ownership(&applied, "storefactory"),
            ownership(&edited, "storefactory")
        );
        // Created, not applied (a Secret made once): nothing of ours.
        let created = meta(serde_json::json!([
            {"manager": "storefactory", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {}}}]));
        assert_eq!(ownership(&created, "storefactory"), None);
    }

    #[test]
    fn trimmed_objects_tell_readiness_what_whole_ones_do_in_a_fraction_of_the_size() {
        use crate::blueprint::lifecycle::Lifecycle;
        use crate::provisioner::readiness;

        let lifecycle: Lifecycle = crate::yaml::from_str(
            "ready:\n\
             - {kind: StatefulSet, name: db, step: db, message: db up}\n\
             - {kind: Deployment, name: web, step: web, message: web up}\n\
             - {kind: Job, name: seed, step: seed, message: seeded, failure: seeding failed}\n",
        )
        .unwrap();
        let meta = |name: &str| {
            serde_json::json!({"name": name, "namespace": "store-a", "uid": format!("uid-{name}"),
                "resourceVersion": "42", "generation": 3, "creationTimestamp": "2026-12-03T09:00:00Z",
                "labels": {"app.kubernetes.io/managed-by": "storefactory", "storefactory.io/store": "a"},
                "annotations": {"deployment.kubernetes.io/revision": "3"},
                "managedFields": [{"manager": "storefactory", "operation": "Apply",
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]})
        };
        let template = serde_json::json!({"metadata": {"labels": {"app": "x"}}, "spec": {
            "containers": [{"name": "c", "image": "wordpress:6", "env": [{"name": "A", "value": "b"}],
                "resources": {"limits": {"cpu": "500m"}}}]}});
        let conditions = serde_json::json!([{"type": "Available", "status": "True",
            "lastUpdateTime": "2026-12-03T09:00:00Z", "lastTransitionTime": "2026-12-03T09:00:00Z",
            "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability."}]);
        let whole = |kind: &str, name: &str, spec: serde_json::Value, status: serde_json::Value| {
            let mut spec = spec;
            spec["template"] = template.clone();
            spec["selector"] = serde_json::json!({"matchLabels": {"app": "x"}});
            serde_json::from_value::<DynamicObject>(serde_json::json!({
                "apiVersion": if kind == "Job" { "batch/v1" } else { "apps/v1" },
                "kind": kind, "metadata": meta(name),
                "spec": spec, "status": status}))
            .unwrap()
        };
        let objects = [
            whole(
                "StatefulSet",
                "db",
                serde_json::json!({"replicas": 1, "serviceName": "db",
                "volumeClaimTemplates": [{"metadata": {"name": "data"}}]}),
                serde_json::json!({"observedGeneration": 3, "readyReplicas": 1, "replicas": 1,
                    "updatedReplicas": 1}),
            ),
            whole(
                "Deployment",
                "web",
                serde_json::json!({"replicas": 1, "strategy": {"type": "Recreate"}}),
                serde_json::json!({"observedGeneration": 3, "readyReplicas": 1, "replicas": 1,
                    "updatedReplicas": 1, "conditions": conditions}),
            ),
            whole(
                "Job",
                "seed",
                serde_json::json!({"backoffLimit": 3}),
                serde_json::json!({"failed": 4, "conditions": [{"type": "Failed", "status": "True",
                    "lastProbeTime": "2026-12-03T09:00:00Z", "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit"}]}),
            ),
        ];
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": meta("web-1"),
            "spec": template["spec"],
            "status": {"phase": "Pending", "hostIP": "10.0.0.1", "podIP": "10.1.0.7",
                "conditions": conditions,
                "containerStatuses": [{"name": "c", "image": "wordpress:6", "imageID": "sha256:abc",
                    "containerID": "containerd://abc", "ready": false, "restartCount": 5,
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}},
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m"}}}]}}))
        .unwrap();

        let mut trimmed = objects.clone();
        trimmed.iter_mut().for_each(trim_object);
        let mut small_pod = pod.clone();
        trim_pod(&mut small_pod);

        fn pick<'a>(
            objects: &'a [DynamicObject],
            kind: WorkloadKind,
            name: &str,
        ) -> Option<&'a DynamicObject> {
            objects.iter().find(|o| {
                o.types.as_ref().is_some_and(|t| t.kind == kind.as_str())
                    && o.metadata.name.as_deref() == Some(name)
            })
        }
        let before = readiness::observe(
            &lifecycle,
            |kind, name| pick(&objects, kind, name),
            std::slice::from_ref(&pod),
        );
        let after = readiness::observe(
            &lifecycle,
            |kind, name| pick(&trimmed, kind, name),
            std::slice::from_ref(&small_pod),
        );
        assert_eq!(before.done, [true, true, false]);
        assert_eq!(after.done, before.done);
        assert!(
            before
                .failure
                .as_deref()
                .unwrap()
                .contains("BackoffLimitExceeded")
        );
        assert_eq!(after.failure, before.failure);
        assert_eq!(
            readiness::pod_failure(&small_pod),
            readiness::pod_failure(&pod)
        );
        assert!(
            readiness::pod_failure(&pod)
                .unwrap()
                .contains("CrashLoopBackOff")
        );
        // What the namespace checks and the cache's keys read survives.
        assert_eq!(trimmed[0].metadata.uid.as_deref(), Some("uid-db"));
        assert_eq!(small_pod.metadata.namespace.as_deref(), Some("store-a"));
        assert!(trimmed[0].metadata.labels.is_some());

        // The size as JSON: a stand-in for what each holds in memory.
        fn json_bytes<T: serde::Serialize>(value: &T) -> usize {
            serde_json::to_vec(value)
                .map(|v| v.len())
                .unwrap_or_default()
        }
        let whole_bytes: usize = objects.iter().map(json_bytes).sum::<usize>() + json_bytes(&pod);
        let trimmed_bytes: usize =
            trimmed.iter().map(json_bytes).sum::<usize>() + json_bytes(&small_pod);
        assert!(
            trimmed_bytes * 2 < whole_bytes,
            "trimmed {trimmed_bytes} bytes of {whole_bytes}"
        );
    }

    #[test]
    fn every_kind_a_blueprint_may_create_has_its_resource() {
        for kind in Manifest::KINDS {
            let resource = Manifest::api_resource_of_kind(kind)
                .unwrap_or_else(|| panic!("{kind} has no resource"));
            assert_eq!(resource.kind, *kind);
        }
    }
}
