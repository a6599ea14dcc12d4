//! The lifecycle operations: create, delete, retry, suspend, resume, credentials, and the
//! status changes and events that narrate them.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{DeleteParams, PropagationPolicy};

use super::{CreateStore, Credentials, Provisioner, lock};
use crate::blueprint::lifecycle::WorkloadKind;
use crate::error::{Error, Result};
use crate::spec::StoreId;
use crate::store::{EventKind, StoreEvent, StoreRecord, StoreStatus, Timestamp};

impl Provisioner {
    /// Validates the request, records the store as `initialized` (with the chosen secret
    /// values sealed) and queues its provisioning. Returns at once.
    ///
    /// The blueprint is rendered by the reconciler, not here: rendering was two thirds of a
    /// creation's CPU, and every store is rendered again when it is applied anyway. A
    /// template that fails for this store (a blueprint's fault, not the request's) fails
    /// the store, with the reason, on its first reconcile.
    ///
    /// The repository's insert is the quota hook: it fails with
    /// [`crate::error::RepositoryError::QuotaExceeded`] when the owner has no room.
    pub async fn create(&self, request: CreateStore) -> Result<StoreRecord> {
        let CreateStore {
            spec,
            name,
            blueprint,
            inputs,
        } = request;
        let blueprint = blueprint.unwrap_or_else(|| self.inner.config.default_blueprint.clone());
        let lifecycle = self.inner.blueprints.get(&blueprint)?.lifecycle();
        lifecycle.check_inputs(&inputs)?;
        spec.validate()?;
        let name = if name.trim().is_empty() {
            spec.id.to_string()
        } else {
            name.trim().to_owned()
        };
        let mut record = StoreRecord::new(spec, name, blueprint);
        if !inputs.is_empty() {
            let json = serde_json::to_vec(&inputs).unwrap_or_default();
            record.sealed_inputs = Some(
                self.inner
                    .config
                    .sealing_key
                    .seal(record.id.as_str(), &json),
            );
        }
        let first = EventKind::Status {
            status: StoreStatus::Initialized,
            reason: None,
        };
        let own = self.inner.own_events.recording().await;
        let event = self
            .inner
            .repo
            .create_store(&record, Timestamp::now(), &first)
            .await?;
        self.published(&own, event);
        drop(own);
        self.enqueue(&record.id);
        record.sealed_inputs = None;
        Ok(record)
    }

    /// Marks the store `deleting` and queues the deletion of its namespace; the record becomes
    /// `deleted` once the namespace is gone. Repeating it is harmless.
    pub async fn delete(&self, id: &StoreId) -> Result<StoreRecord> {
        let record = self.live_record(id).await?;
        let record = if record.status == StoreStatus::Deleting {
            record
        } else {
            self.transition(id, StoreStatus::Deleting, None).await?
        };
        self.enqueue(id);
        Ok(record)
    }

    /// Provisions a failed store again: the Jobs its blueprint reruns on retry are replaced
    /// and the deadline starts anew.
    pub async fn retry(&self, id: &StoreId) -> Result<StoreRecord> {
        let record = self.live_record(id).await?;
        if record.status != StoreStatus::Failed {
            return Err(Error::InvalidState {
                id: id.clone(),
                status: record.status,
                operation: "retry (only failed stores can be retried)",
            });
        }
        let lifecycle = self.inner.blueprints.get(&record.blueprint)?.lifecycle();
        let jobs: Api<Job> = Api::namespaced(self.inner.client.clone(), &id.namespace());
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        for job in lifecycle
            .ready
            .iter()
            .filter(|r| r.kind == WorkloadKind::Job && r.rerun_on_retry)
        {
            match jobs.delete(&job.name, &params).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(source) => {
                    return Err(Error::Kube {
                        operation: format!("delete Job {}/{}", id.namespace(), job.name),
                        source,
                    });
                }
            }
        }
        let record = self
            .transition(id, StoreStatus::Provisioning, Some("retried"))
            .await?;
        self.enqueue(id);
        Ok(record)
    }

    /// Suspends a ready store: marks it `suspending` and queues the work. The reconciler
    /// scales the workloads its blueprint lists under `lifecycle.suspend` to zero, points
    /// its host at the paused page (when [`super::ProvisionerConfig::paused_backend`] is
    /// set), deletes the finished pods of its Jobs, and marks it `suspended` once no pod is
    /// left. Volumes, Secrets and the store's place in its owner's quota are kept.
    ///
    /// Only a ready store can be suspended ([`Error::InvalidState`] otherwise), and only if
    /// its blueprint declares what suspending means ([`Error::CannotSuspend`]); a refused
    /// request changes nothing.
    pub async fn suspend(&self, id: &StoreId) -> Result<StoreRecord> {
        let record = self.live_record(id).await?;
        let blueprint = self.inner.blueprints.get(&record.blueprint)?;
        if !blueprint.lifecycle().can_suspend() {
            return Err(Error::CannotSuspend {
                id: id.clone(),
                blueprint: record.blueprint.clone(),
            });
        }
        if record.status != StoreStatus::Ready {
            return Err(Error::InvalidState {
                id: id.clone(),
                status: record.status,
                operation: "suspend (only ready stores can be suspended)",
            });
        }
        // A blueprint whose suspended render fails (a workload left running) is refused
        // here, before anything changes.
        self.render(
            &record.blueprint,
            &record.spec,
            None,
            self.render_state(StoreStatus::Suspending),
        )
        .await?;
        let record = self.transition(id, StoreStatus::Suspending, None).await?;
        self.enqueue(id);
        Ok(record)
    }

    /// Resumes a suspended (or still suspending) store: marks it `resuming` and queues the
    /// work. Its workloads come back with the same volumes and Secrets (the same data and
    /// passwords); Jobs are not run again. It becomes `ready` as it did when it was
    /// provisioned (or `failed`, past the deadline), and its host serves it again.
    pub async fn resume(&self, id: &StoreId) -> Result<StoreRecord> {
        let record = self.live_record(id).await?;
        if !record.status.wants_suspended() {
            return Err(Error::InvalidState {
                id: id.clone(),
                status: record.status,
                operation: "resume (only suspended stores can be resumed)",
            });
        }
        let record = self.transition(id, StoreStatus::Resuming, None).await?;
        self.enqueue(id);
        Ok(record)
    }

    /// The credentials the store's blueprint shows its owner, read from the store's Secret.
    pub async fn credentials(&self, id: &StoreId) -> Result<Credentials> {
        let record = self.live_record(id).await?;
        let blueprint = self.inner.blueprints.get(&record.blueprint)?;
        let Some(declared) = &blueprint.lifecycle().credentials else {
            return Err(Error::InvalidState {
                id: id.clone(),
                status: record.status,
                operation: "read credentials (its blueprint shows none)",
            });
        };
        let secrets: Api<Secret> = Api::namespaced(self.inner.client.clone(), &id.namespace());
        let secret = match secrets.get_opt(&declared.secret).await {
            Ok(Some(secret)) => secret,
            Ok(None) if record.status.was_ready() => {
                // Deleted by someone after the store was ready. Fresh passwords would not
                // match what the workloads were set up with: the Secret is not re-created
                // (`apply_all` skips generated Secrets of ready stores), and a person is told.
                self.warn_once(
                    id,
                    format!(
                        "Secret {} was deleted; its passwords cannot be recovered, so it is \
                         not re-created with new ones. Restore it from a backup, or delete and \
                         re-create the store.",
                        declared.secret
                    ),
                )
                .await;
                return Err(Error::InvalidState {
                    id: id.clone(),
                    status: record.status,
                    operation: "read credentials (their Secret was deleted and cannot be recovered)",
                });
            }
            Ok(None) => {
                return Err(Error::InvalidState {
                    id: id.clone(),
                    status: record.status,
                    operation: "read credentials (not created yet)",
                });
            }
            Err(source) => {
                return Err(Error::Kube {
                    operation: format!("read Secret {}/{}", id.namespace(), declared.secret),
                    source,
                });
            }
        };
        let field = |key: &str| {
            secret
                .data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(|v| String::from_utf8_lossy(&v.0).into_owned())
                .unwrap_or_default()
        };
        Ok(Credentials {
            username: field(&declared.username_key),
            password: field(&declared.password_key),
            admin_url: format!("{}{}", record.spec.url(), declared.path),
        })
    }

    pub(super) async fn live_record(&self, id: &StoreId) -> Result<StoreRecord> {
        match self.inner.repo.get_store(id).await? {
            Some(record) if record.status != StoreStatus::Deleted => Ok(record),
            _ => Err(Error::StoreNotFound { id: id.clone() }),
        }
    }

    /// Records an event, publishes it, and remembers it as this process's own so that the
    /// feed does not publish it again.
    pub(super) async fn record(&self, id: &StoreId, kind: EventKind) -> Result<StoreEvent> {
        // Held across the append, so that the feed cannot pass the event before it is known
        // as ours; shared with other recorders.
        let own = self.inner.own_events.recording().await;
        let event = self
            .inner
            .repo
            .append_event(id, Timestamp::now(), &kind)
            .await?;
        Ok(self.published(&own, event))
    }

    /// Publishes an event just recorded, while `own` (the lock on this process's events)
    /// is held: the feed then knows it as ours and does not republish it.
    pub(super) fn published(
        &self,
        own: &super::feed::Recording<'_>,
        event: StoreEvent,
    ) -> StoreEvent {
        if self
            .inner
            .running
            .load(std::sync::atomic::Ordering::Acquire)
        {
            own.mark(&event);
        }
        let _ = self.inner.events.send(event.clone());
        event
    }

    pub(super) async fn step(
        &self,
        id: &StoreId,
        step: &str,
        message: impl Into<String>,
    ) -> Result<()> {
        self.record(
            id,
            EventKind::Step {
                step: step.to_owned(),
                message: message.into(),
            },
        )
        .await
        .map(drop)
    }

    /// Records a warning once for as long as the store is known.
    pub(super) async fn warn_once(&self, id: &StoreId, message: String) {
        if self
            .inner
            .states
            .with(id, |state| state.warned.insert(message.clone()))
        {
            tracing::warn!(store = %id, "{message}");
            let _ = self.record(id, EventKind::Warning { message }).await;
        }
    }

    /// Changes the store's status (compare-and-set along the lifecycle) and records it.
    pub(super) async fn transition(
        &self,
        id: &StoreId,
        status: StoreStatus,
        reason: Option<&str>,
    ) -> Result<StoreRecord> {
        let record = self.inner.repo.set_status(id, status, reason).await?;
        self.inner.states.with(id, |state| state.new_pass());
        match status {
            StoreStatus::Failed => tracing::warn!(store = %id, reason, "store failed"),
            _ => tracing::info!(store = %id, %status, "store status changed"),
        }
        self.record(
            id,
            EventKind::Status {
                status,
                reason: reason.map(str::to_owned),
            },
        )
        .await?;
        Ok(record)
    }

    /// Queues the store for a reconcile that re-applies its objects (a user action, possible
    /// drift). Does nothing while this process does not reconcile: the leader learns of the
    /// change through the feed, or its start-up pass.
    pub(super) fn enqueue(&self, id: &StoreId) {
        if !self.in_scope(id) || !self.is_leading() {
            return;
        }
        self.inner.states.with(id, |state| {
            state.apply_requests += 1;
            state.new_pass();
        });
        self.schedule(id, std::time::Duration::ZERO);
    }

    /// Queues the store for a reconcile that only looks at its progress.
    pub(super) fn wake(&self, id: &StoreId) {
        if self.in_scope(id) {
            self.schedule(id, std::time::Duration::ZERO);
        }
    }

    pub(super) fn schedule(&self, id: &StoreId, delay: std::time::Duration) {
        if let Some(queue) = lock(&self.inner.queue).as_ref() {
            let _ = queue.unbounded_send(kube::runtime::scheduler::ScheduleRequest {
                message: id.clone(),
                run_at: tokio::time::Instant::now() + delay,
            });
        }
    }
}
