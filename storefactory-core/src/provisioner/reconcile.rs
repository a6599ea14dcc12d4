//! Reconciling one store: one step closer to what its record asks for. Idempotent, and
//! returns what it needs next instead of waiting inside.

use std::time::Duration;

use kube::api::{Api, DeleteParams, DynamicObject, Preconditions};

use super::apply::NamespaceProblem;
use super::readiness::{self, Observed};
use super::{Outcome, Provisioner, error_chain, lock};
use crate::blueprint::lifecycle::WorkloadKind;
use crate::error::{Error, RepositoryError, Result};
use crate::manifest::Manifest;
use crate::spec::StoreId;
use crate::store::{StoreRecord, StoreStatus, Timestamp};

impl Provisioner {
    /// Reconciles the store and turns errors into what happens next: transient ones are
    /// retried after a backoff (until the deadline), others fail a store in provisioning.
    pub(super) async fn reconcile_logged(&self, id: &StoreId) -> Outcome {
        match self.reconcile(id).await {
            Ok(outcome) => outcome,
            Err(Error::Repository(RepositoryError::InvalidTransition { from, to, .. })) => {
                // Someone (a delete, a retry) changed the store while this reconcile worked
                // from an older read; the change queued the store again.
                tracing::debug!(store = %id, %from, %to, "status changed meanwhile");
                Outcome::AwaitChange
            }
            Err(error) if error.is_transient() => {
                let reason = error_chain(&error);
                tracing::info!(store = %id, error = %reason, "transient failure; will retry");
                if let Ok(Some(record)) = self.inner.repo.get_store(id).await
                    && matches!(
                        record.status,
                        StoreStatus::Initialized
                            | StoreStatus::Provisioning
                            | StoreStatus::Resuming
                            | StoreStatus::Updating
                    )
                    && self.time_left(&record).is_none()
                {
                    let reason = format!(
                        "not ready within {} s; last error: {reason}",
                        self.inner.config.ready_deadline.as_secs()
                    );
                    let _ = self
                        .transition(id, StoreStatus::Failed, Some(&reason))
                        .await;
                    return Outcome::AwaitChange;
                }
                Outcome::RequeueAfter(self.inner.config.max_backoff)
            }
            Err(error) => {
                let reason = error_chain(&error);
                tracing::warn!(store = %id, error = %reason, "reconcile failed");
                // A ready store fails only when its data is gone; other errors are looked at
                // again later.
                let fails = |status| match status {
                    StoreStatus::Initialized
                    | StoreStatus::Provisioning
                    | StoreStatus::Resuming
                    | StoreStatus::Updating => true,
                    StoreStatus::Ready
                    | StoreStatus::Suspending
                    | StoreStatus::Suspended
                    | StoreStatus::Restoring => matches!(error, Error::NamespaceLost { .. }),
                    _ => false,
                };
                if let Ok(Some(record)) = self.inner.repo.get_store(id).await
                    && fails(record.status)
                {
                    let _ = self
                        .transition(id, StoreStatus::Failed, Some(&reason))
                        .await;
                    return Outcome::AwaitChange;
                }
                Outcome::RequeueAfter(self.inner.config.max_backoff)
            }
        }
    }

    /// Brings one store one step closer to what its record asks for.
    pub(super) async fn reconcile(&self, id: &StoreId) -> Result<Outcome> {
        let Some(record) = self.inner.repo.get_store(id).await? else {
            self.inner.states.forget(id);
            return Ok(Outcome::AwaitChange);
        };
        match record.status {
            StoreStatus::Initialized
            | StoreStatus::Provisioning
            | StoreStatus::Resuming
            | StoreStatus::Updating => self.provision(record).await,
            // A restoring store runs as a ready one; its restore Job's end moves it on.
            StoreStatus::Ready | StoreStatus::Suspended | StoreStatus::Restoring => {
                self.keep_ready(&record).await
            }
            StoreStatus::Suspending => self.suspend_pass(&record).await,
            StoreStatus::Deleting => self.finish_delete(&record).await,
            StoreStatus::Failed => Ok(Outcome::AwaitChange),
            StoreStatus::Deleted => {
                self.inner.states.forget(id);
                Ok(Outcome::AwaitChange)
            }
        }
    }

    /// A ready or suspended store: its namespace must still be the one its data lives in;
    /// possible drift is re-applied (as the status asks: a suspended store's workloads stay
    /// at zero).
    async fn keep_ready(&self, record: &StoreRecord) -> Result<Outcome> {
        let id = &record.id;
        self.check_namespace(record).await?;
        let requested = self
            .inner
            .states
            .get(id, |s| s.apply_requests)
            .unwrap_or_default();
        if requested > 0 {
            // Read again now that the requests are counted: a change recorded (a custom
            // domain added) after `record` was read and before they were counted must not be
            // answered by an apply of the older spec.
            let Some(record) = self.inner.repo.get_store(id).await? else {
                return Ok(Outcome::AwaitChange);
            };
            if !matches!(record.status, StoreStatus::Ready | StoreStatus::Suspended) {
                // Its status changed meanwhile, which queued it again.
                return Ok(Outcome::AwaitChange);
            }
            self.apply_all(&record, false).await?;
            self.inner.states.with(id, |s| {
                // Requests made during the apply are answered by the next reconcile.
                s.apply_requests = s.apply_requests.saturating_sub(requested);
            });
        }
        Ok(Outcome::AwaitChange)
    }

    /// Fails with [`Error::NamespaceLost`] or [`Error::NamespaceTaken`] when the namespace
    /// cannot be used.
    async fn check_namespace(&self, record: &StoreRecord) -> Result<()> {
        match self.namespace_problem(record).await? {
            None => Ok(()),
            Some(NamespaceProblem::Taken) => Err(Error::NamespaceTaken {
                namespace: record.id.namespace(),
            }),
            Some(NamespaceProblem::Lost(reason)) => Err(Error::NamespaceLost {
                namespace: record.id.namespace(),
                reason,
            }),
        }
    }

    async fn provision(&self, mut record: StoreRecord) -> Result<Outcome> {
        let id = record.id.clone();
        if record.status == StoreStatus::Initialized {
            record = self
                .transition(&id, StoreStatus::Provisioning, None)
                .await?;
        }
        let (applied, first) = self
            .inner
            .states
            .with(&id, |s| (s.applied, s.reported.is_empty()));
        if !applied {
            self.check_namespace(&record).await?;
            let requested = self
                .inner
                .states
                .get(&id, |s| s.apply_requests)
                .unwrap_or_default();
            if record.status == StoreStatus::Updating {
                self.rerun_changed_jobs(&record).await?;
            }
            self.apply_all(&record, first).await?;
            self.inner.states.with(&id, |s| {
                s.applied = true;
                s.apply_requests = s.apply_requests.saturating_sub(requested);
                s.reported.insert("apply".to_owned());
            });
        }

        let blueprint = self.inner.blueprints.get(&record.blueprint)?;
        let lifecycle = blueprint.lifecycle();
        let observed = self.observe(&record);
        for (ready, done) in lifecycle.ready.iter().zip(&observed.done) {
            let new = *done
                && self
                    .inner
                    .states
                    .with(&id, |s| s.reported.insert(ready.step.clone()));
            if new {
                self.step(&id, &ready.step, ready.message.clone()).await?;
            }
        }
        if let Some(reason) = observed.failure {
            self.transition(&id, StoreStatus::Failed, Some(&reason))
                .await?;
            return Ok(Outcome::AwaitChange);
        }
        let mut waiting_claims = Vec::new();
        if observed.ready() && record.status == StoreStatus::Updating {
            // A grown volume claim is resized by its storage driver after the apply: the
            // store is ready once the claim's capacity reaches its request.
            waiting_claims = self.claims_waiting(&record).await?;
            let (waited, report) = self.inner.states.with(&id, |s| {
                if waiting_claims.is_empty() {
                    let waited = s.reported.contains("storage waiting");
                    (waited, waited && s.reported.insert("storage".to_owned()))
                } else {
                    (false, s.reported.insert("storage waiting".to_owned()))
                }
            });
            if report && waited {
                self.step(&id, "storage", "the volumes have their new size")
                    .await?;
            } else if report {
                self.step(
                    &id,
                    "storage",
                    format!("waiting for {}", waiting_claims.join(", ")),
                )
                .await?;
            }
        }
        if observed.ready() && waiting_claims.is_empty() {
            if record.status == StoreStatus::Resuming {
                // The workloads are up again: the host serves the store, not the paused page.
                self.apply_changed(
                    &record,
                    self.render_state(StoreStatus::Resuming),
                    self.render_state(StoreStatus::Ready),
                )
                .await?;
            }
            self.transition(&id, StoreStatus::Ready, None).await?;
            return Ok(Outcome::AwaitChange);
        }
        let Some(remaining) = self.time_left(&record) else {
            let reason = format!(
                "not ready within {} s; still waiting for {}",
                self.inner.config.ready_deadline.as_secs(),
                observed
                    .waiting(lifecycle)
                    .into_iter()
                    .map(str::to_owned)
                    .chain(waiting_claims)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            self.transition(&id, StoreStatus::Failed, Some(&reason))
                .await?;
            return Ok(Outcome::AwaitChange);
        };
        Ok(Outcome::RequeueAfter(remaining))
    }

    /// A suspending store: applies it suspended (its declared workloads at zero replicas, its
    /// host paused), deletes the finished pods of its Jobs, and marks it `suspended` once the
    /// caches show the workloads at zero and no pod left in its namespace. Nothing is
    /// deleted but those finished pods: volumes, Secrets and the completed Jobs stay.
    async fn suspend_pass(&self, record: &StoreRecord) -> Result<Outcome> {
        let id = &record.id;
        let lifecycle = self.inner.blueprints.get(&record.blueprint)?.lifecycle();
        if !self.inner.states.with(id, |s| s.applied) {
            self.check_namespace(record).await?;
            let requested = self
                .inner
                .states
                .get(id, |s| s.apply_requests)
                .unwrap_or_default();
            self.apply_all(record, false).await?;
            let first = self.inner.states.with(id, |s| {
                s.applied = true;
                s.apply_requests = s.apply_requests.saturating_sub(requested);
                s.reported.insert("suspend".to_owned())
            });
            if first {
                let workloads: Vec<String> = lifecycle
                    .suspend
                    .iter()
                    .map(|w| format!("{}/{}", w.kind, w.name))
                    .collect();
                self.step(
                    id,
                    "suspend",
                    format!("scaling {} to zero replicas", workloads.join(", ")),
                )
                .await?;
            }
        }
        let Some(caches) = lock(&self.inner.caches).clone() else {
            // Not reconciling with watches (a one-off pass): the leader observes the rest.
            return Ok(Outcome::AwaitChange);
        };
        let namespace = id.namespace();
        let pods = caches.pods(&namespace);
        let pod_api: Api<k8s_openapi::api::core::v1::Pod> =
            Api::namespaced(self.inner.client.clone(), &namespace);
        for pod in pods
            .iter()
            .filter(|p| readiness::finished(p) && p.metadata.deletion_timestamp.is_none())
        {
            let name = pod.metadata.name.clone().unwrap_or_default();
            self.with_retries(&format!("delete Pod {namespace}/{name}"), || async {
                match pod_api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
                    Err(e) => Err(e),
                }
            })
            .await?;
        }
        let objects: Vec<_> = lifecycle
            .suspend
            .iter()
            .map(|w| self.applied_workload(&caches, id, w.kind, &w.name))
            .collect();
        let waiting = readiness::suspension(
            lifecycle,
            |kind, name| {
                lifecycle
                    .suspend
                    .iter()
                    .position(|w| w.kind == kind && w.name == name)
                    .and_then(|i| objects[i].as_deref())
            },
            &pods,
        );
        if waiting.is_empty() {
            self.transition(id, StoreStatus::Suspended, None).await?;
        } else {
            tracing::debug!(store = %id, ?waiting, "suspending");
        }
        // The watches wake the store as its workloads scale down and its pods go.
        Ok(Outcome::AwaitChange)
    }

    /// A workload of the store as the cache holds it, if the cache holds what this process
    /// last applied (the same object, at least at the generation the apply produced);
    /// `None` until the watch brings that version.
    fn applied_workload(
        &self,
        caches: &super::watch::Caches,
        id: &StoreId,
        kind: WorkloadKind,
        name: &str,
    ) -> Option<std::sync::Arc<DynamicObject>> {
        let cached = caches.workload(&id.namespace(), kind, name)?;
        let key = super::watch::object_key(kind.as_str(), name);
        let applied = self
            .inner
            .states
            .get(id, |s| s.generations.get(&key).cloned())
            .flatten();
        readiness::is_current(&cached.metadata, applied.as_ref()).then_some(cached)
    }

    /// What the watch caches say of the store's workloads.
    fn observe(&self, record: &StoreRecord) -> Observed {
        let Ok(blueprint) = self.inner.blueprints.get(&record.blueprint) else {
            return Observed::default();
        };
        let lifecycle = blueprint.lifecycle();
        let namespace = record.id.namespace();
        let Some(caches) = lock(&self.inner.caches).clone() else {
            return Observed {
                done: vec![false; lifecycle.ready.len()],
                failure: None,
            };
        };
        let objects: Vec<_> = lifecycle
            .ready
            .iter()
            .map(|r| self.applied_workload(&caches, &record.id, r.kind, &r.name))
            .collect();
        let pods = caches.pods(&namespace);
        readiness::observe(
            lifecycle,
            |kind, name| {
                lifecycle
                    .ready
                    .iter()
                    .position(|r| r.kind == kind && r.name == name)
                    .and_then(|i| objects[i].as_deref())
            },
            &pods,
        )
    }

    /// The time left before a provisioning store's deadline, or `None` once it has passed.
    /// The deadline runs from the last status change (creation, or a retry).
    fn time_left(&self, record: &StoreRecord) -> Option<Duration> {
        let elapsed_ms = Timestamp::now()
            .0
            .saturating_sub(record.updated_at.0)
            .max(0);
        let elapsed = Duration::from_millis(u64::try_from(elapsed_ms).unwrap_or_default());
        self.inner
            .config
            .ready_deadline
            .checked_sub(elapsed)
            .filter(|left| !left.is_zero())
    }

    /// Deletes the store's namespace — only the one its objects were created in, by UID —
    /// and marks the store deleted once it is gone.
    async fn finish_delete(&self, record: &StoreRecord) -> Result<Outcome> {
        let id = &record.id;
        let namespace = id.namespace();
        let resource =
            Manifest::api_resource_of_kind("Namespace").ok_or_else(|| Error::NamespaceTaken {
                namespace: namespace.clone(),
            })?;
        let api: Api<DynamicObject> = Api::all_with(self.inner.client.clone(), &resource);
        let cached = lock(&self.inner.caches)
            .as_ref()
            .map(|c| c.namespace(&namespace));
        let current = match cached {
            Some(cached) => cached.map(|ns| (*ns).clone()),
            None => {
                self.with_retries(&format!("read Namespace {namespace}"), || {
                    api.get_opt(&namespace)
                })
                .await?
            }
        };
        let Some(ns) = current else {
            self.transition(id, StoreStatus::Deleted, None).await?;
            self.inner.states.forget(id);
            return Ok(Outcome::AwaitChange);
        };
        let ours = ns
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(crate::blueprint::LABEL_STORE))
            .is_some_and(|store| store == id.as_str());
        let same = record
            .namespace_uid
            .as_ref()
            .is_none_or(|uid| ns.metadata.uid.as_ref() == Some(uid));
        if !ours || !same {
            // Never delete what we do not own: a namespace of that name without our label, or
            // not the one the store was created in.
            tracing::warn!(store = %id, namespace, "namespace is not this store's; not deleting it");
            self.transition(
                id,
                StoreStatus::Deleted,
                Some("namespace was not the store's own and was left alone"),
            )
            .await?;
            self.inner.states.forget(id);
            return Ok(Outcome::AwaitChange);
        }
        if ns.metadata.deletion_timestamp.is_none() {
            let params = DeleteParams {
                preconditions: ns.metadata.uid.clone().map(|uid| Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..DeleteParams::background()
            };
            self.with_retries(&format!("delete Namespace {namespace}"), || async {
                match api.delete(&namespace, &params).await {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
                    Err(e) => Err(e),
                }
            })
            .await?;
            self.step(id, "delete", format!("deleting namespace {namespace}"))
                .await?;
        }
        // The namespace watch reports when it is gone; look again later in case the event is
        // missed.
        Ok(Outcome::RequeueAfter(Duration::from_secs(30)))
    }
}
