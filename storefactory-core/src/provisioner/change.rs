//! Changing a ready store: the change is checked against the cluster (volumes only grow,
//! and only where their StorageClass allows it), recorded as the store's new spec, and
//! applied and observed by the reconciler like provisioning. Jobs the blueprint declares
//! `rerun_on_change` run again when what they run with changed; volumes are waited for
//! until their capacity reaches the new request.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::Api;
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PropagationPolicy};

use super::Provisioner;
use crate::blueprint::lifecycle::WorkloadKind;
use crate::change::StoreChange;
use crate::error::{Error, Result, ValidationError};
use crate::manifest::Manifest;
use crate::spec::{Quantity, StoreId};
use crate::store::{EventKind, StoreRecord, StoreStatus};

/// The storage a rendered or live claim requests.
fn requested(claim: &serde_json::Value) -> Option<Quantity> {
    let text = claim
        .pointer("/spec/resources/requests/storage")?
        .as_str()?;
    Quantity::parse("storage", text).ok()
}

/// Whether the cluster's default StorageClass is `class`.
fn is_default_class(class: &StorageClass) -> bool {
    class.metadata.annotations.as_ref().is_some_and(|a| {
        [
            "storageclass.kubernetes.io/is-default-class",
            "storageclass.beta.kubernetes.io/is-default-class",
        ]
        .iter()
        .any(|key| a.get(*key).is_some_and(|v| v == "true"))
    })
}

/// The names of the ConfigMaps a rendered object reads (volumes, `configMapKeyRef`,
/// `configMapRef`), wherever they are in it.
fn config_maps_read(value: &serde_json::Value, names: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, inner) in map {
                if matches!(
                    key.as_str(),
                    "configMap" | "configMapKeyRef" | "configMapRef"
                ) && let Some(name) = inner.get("name").and_then(|n| n.as_str())
                    && !names.iter().any(|n| n == name)
                {
                    names.push(name.to_owned());
                }
                config_maps_read(inner, names);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                config_maps_read(item, names);
            }
        }
        _ => {}
    }
}

impl Provisioner {
    /// Changes a ready store: validates `change` with the rules of creation, checks it
    /// against the cluster, records the new spec and marks the store `updating` (with an
    /// event naming what changes), and queues the work. Returns at once. The reconciler
    /// applies the store's objects again, runs the Jobs its blueprint declares
    /// `rerun_on_change` again when what they run with changed (for the built-in blueprint:
    /// seeding, when the products, title or currency changed), and marks the store `ready`
    /// once its workloads report the change and its volumes have their new size (or
    /// `failed`, past the deadline). Generated Secrets are kept.
    ///
    /// Refused, changing nothing: a store that is not ready ([`Error::InvalidState`]),
    /// invalid input or a volume that would shrink, or grow where its StorageClass does not
    /// allow expansion ([`Error::Invalid`]), and storage beyond the owner's quota
    /// ([`crate::error::RepositoryError::QuotaExceeded`]). A change that changes nothing
    /// returns the store as it is.
    pub async fn change(&self, id: &StoreId, change: &StoreChange) -> Result<StoreRecord> {
        let record = self.live_record(id).await?;
        if record.status != StoreStatus::Ready {
            return Err(Error::InvalidState {
                id: id.clone(),
                status: record.status,
                operation: "change (only ready stores can be changed)",
            });
        }
        let spec = change.apply_to(&record.spec)?;
        if spec == record.spec {
            return Ok(record);
        }
        // Rendering proves the blueprint works with the new spec before anything is
        // recorded; the two renders tell which volumes grow.
        let state = self.render_state(StoreStatus::Updating);
        let before = self
            .render(&record.blueprint, &record.spec, None, state.clone())
            .await?;
        let after = self.render(&record.blueprint, &spec, None, state).await?;
        self.check_claims(&before, &after).await?;
        let changes = StoreChange::describe(&record.spec, &spec);
        let reason = if changes.is_empty() {
            "changing its spec".to_owned()
        } else {
            format!("changing {}", changes.join(", "))
        };
        let record = self
            .inner
            .repo
            .change_spec(id, &spec, StoreStatus::Updating, Some(&reason))
            .await?;
        self.inner.states.with(id, |state| state.new_pass());
        tracing::info!(store = %id, %reason, "store change requested");
        self.record(
            id,
            EventKind::Status {
                status: StoreStatus::Updating,
                reason: Some(reason),
            },
        )
        .await?;
        self.enqueue(id);
        Ok(record)
    }

    /// Refuses a change of claims that would shrink, or grow where the claim's StorageClass
    /// does not allow volume expansion (the apiserver would refuse the apply later, after
    /// the change was recorded).
    async fn check_claims(&self, before: &[Manifest], after: &[Manifest]) -> Result<()> {
        let mut classes: Option<Vec<StorageClass>> = None;
        for claim in after.iter().filter(|m| m.kind() == "PersistentVolumeClaim") {
            let name = claim.name();
            let Some(old) = before
                .iter()
                .find(|m| m.kind() == "PersistentVolumeClaim" && m.name() == name)
            else {
                continue;
            };
            let value = claim.to_value();
            let (Some(new_size), Some(old_size)) = (requested(&value), requested(&old.to_value()))
            else {
                continue;
            };
            if new_size.value() < old_size.value() {
                return Err(ValidationError::new(
                    "storage_gib",
                    format!(
                        "volume claim {name} has {old_size}; volumes can only grow, not \
                         shrink to {new_size}"
                    ),
                )
                .into());
            }
            if new_size.value() == old_size.value() {
                continue;
            }
            // The claim's class as rendered, else the cluster's default one (which the
            // apiserver gave the claim when it was created). Classes are few: one listing.
            if classes.is_none() {
                let api: Api<StorageClass> = Api::all(self.inner.client.clone());
                let params = ListParams::default();
                let listed = self
                    .with_retries("list StorageClasses", || api.list(&params))
                    .await?;
                classes = Some(listed.items);
            }
            let all = classes.as_deref().unwrap_or_default();
            let named = value
                .pointer("/spec/storageClassName")
                .and_then(|c| c.as_str())
                .map(str::to_owned);
            let class = match &named {
                Some(name) => all
                    .iter()
                    .find(|c| c.metadata.name.as_deref() == Some(name)),
                None => all.iter().find(|c| is_default_class(c)),
            };
            let class_name = named
                .clone()
                .or_else(|| class.and_then(|c| c.metadata.name.clone()))
                .unwrap_or_else(|| "(none: the cluster has no default)".to_owned());
            if class.and_then(|c| c.allow_volume_expansion) != Some(true) {
                return Err(ValidationError::new(
                    "storage_gib",
                    format!(
                        "volume claim {name} cannot grow: its StorageClass {class_name} does \
                         not allow volume expansion (allowVolumeExpansion is not true); it \
                         keeps {old_size}"
                    ),
                )
                .into());
            }
        }
        Ok(())
    }

    /// Before an updating store is applied: deletes each Job its blueprint declares
    /// `rerun_on_change` whose inputs changed — a ConfigMap it reads differs from what is
    /// rendered now, or its own object can no longer be applied (a Job's pod template is
    /// immutable) — so that the apply creates it anew and it runs again. Compared with
    /// what is live, so a pass stopped anywhere decides the same way when it is resumed.
    pub(super) async fn rerun_changed_jobs(&self, record: &StoreRecord) -> Result<()> {
        let id = &record.id;
        let lifecycle = self.inner.blueprints.get(&record.blueprint)?.lifecycle();
        let declared: Vec<_> = lifecycle
            .ready
            .iter()
            .filter(|r| r.kind == WorkloadKind::Job && r.rerun_on_change)
            .collect();
        if declared.is_empty() {
            return Ok(());
        }
        let manifests = self
            .render(
                &record.blueprint,
                &record.spec,
                None,
                self.render_state(record.status),
            )
            .await?;
        let namespace = id.namespace();
        let jobs: Api<Job> = Api::namespaced(self.inner.client.clone(), &namespace);
        for ready in declared {
            let Some(rendered) = manifests
                .iter()
                .find(|m| m.kind() == "Job" && m.name() == ready.name)
            else {
                continue;
            };
            let Some(why) = self
                .job_inputs_changed(record, rendered, &manifests)
                .await?
            else {
                continue;
            };
            let params = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Background),
                ..DeleteParams::default()
            };
            self.with_retries(
                &format!("delete Job {namespace}/{}", ready.name),
                || async {
                    match jobs.delete(&ready.name, &params).await {
                        // Gone already (an earlier pass deleted it): the apply creates it.
                        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
                        other => other.map(drop),
                    }
                },
            )
            .await?;
            self.step(
                id,
                &ready.step,
                format!("running Job {} again: {why}", ready.name),
            )
            .await?;
        }
        Ok(())
    }

    /// Why the rendered Job `job` must run again, if it must.
    async fn job_inputs_changed(
        &self,
        record: &StoreRecord,
        job: &Manifest,
        manifests: &[Manifest],
    ) -> Result<Option<String>> {
        let namespace = record.id.namespace();
        let value = job.to_value();
        let mut names = Vec::new();
        config_maps_read(&value, &mut names);
        let config_maps: Api<ConfigMap> = Api::namespaced(self.inner.client.clone(), &namespace);
        for name in names {
            let Some(rendered) = manifests
                .iter()
                .find(|m| m.kind() == "ConfigMap" && m.name() == name)
            else {
                continue;
            };
            let live = self
                .with_retries(&format!("read ConfigMap {namespace}/{name}"), || {
                    config_maps.get_opt(&name)
                })
                .await?;
            let wanted = rendered
                .to_value()
                .get("data")
                .cloned()
                .unwrap_or_else(|| serde_json::json!({}));
            let live = live
                .and_then(|cm| cm.data)
                .map(|data| serde_json::to_value(data).unwrap_or_default())
                .unwrap_or_else(|| serde_json::json!({}));
            if wanted != live {
                return Ok(Some(format!("ConfigMap {name} changed")));
            }
        }
        // The Job itself: an apply that would change its pod template is refused.
        let resource = job.api_resource();
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.inner.client.clone(), &namespace, &resource);
        let params = PatchParams::apply(&self.inner.config.field_manager)
            .force()
            .dry_run();
        let name = job.name().to_owned();
        let dry_run = self
            .with_retries(&format!("try applying Job {namespace}/{name}"), || {
                let (api, params, value, name) =
                    (api.clone(), params.clone(), value.clone(), name.clone());
                async move {
                    match api.patch(&name, &params, &Patch::Apply(&value)).await {
                        Ok(_) => Ok(None),
                        Err(kube::Error::Api(status)) if status.code == 422 => {
                            Ok(Some(status.message))
                        }
                        Err(e) => Err(e),
                    }
                }
            })
            .await?;
        Ok(dry_run.map(|_| "its pod template changed".to_owned()))
    }

    /// The volume claims of an updating store whose capacity has not reached what they
    /// request, in words for people; nothing once every claim has its size. Read from the
    /// watch cache when its workloads are ready; a claim's status change wakes the store.
    pub(super) async fn claims_waiting(&self, record: &StoreRecord) -> Result<Vec<String>> {
        let manifests = self
            .render(
                &record.blueprint,
                &record.spec,
                None,
                self.render_state(record.status),
            )
            .await?;
        let namespace = record.id.namespace();
        let caches = super::lock(&self.inner.caches).clone();
        let mut waiting = Vec::new();
        for claim in manifests
            .iter()
            .filter(|m| m.kind() == "PersistentVolumeClaim")
        {
            let Some(wanted) = requested(&claim.to_value()) else {
                continue;
            };
            let name = claim.name();
            let capacity = caches
                .as_ref()
                .and_then(|c| c.claim(&namespace, name))
                .and_then(|c| {
                    let text = c.data.pointer("/status/capacity/storage")?.as_str()?;
                    Quantity::parse("capacity", text).ok()
                });
            match capacity {
                Some(capacity) if capacity.value() >= wanted.value() => {}
                Some(capacity) => waiting.push(format!(
                    "volume claim {name} to grow from {capacity} to {wanted}"
                )),
                None => waiting.push(format!("volume claim {name} to have {wanted}")),
            }
        }
        Ok(waiting)
    }
}
