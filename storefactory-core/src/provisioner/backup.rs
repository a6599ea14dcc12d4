//! Backups: a Job the store's blueprint declares (`lifecycle.backup`) takes the store's
//! data and hands it, as one archive, to the platform, which keeps it
//! ([`crate::backup::ArchiveDir`]) and records it ([`BackupRepository`]).
//!
//! [`Provisioner::backup`] records a pending backup, creates a Secret with the Job's
//! one-time token and applies the Job's objects (all labelled [`LABEL_OPERATION`]
//! `backup-<id>`). The platform's internal endpoint completes the backup when the archive
//! arrived whole ([`Provisioner::complete_backup`]). On the leader, a watch of the Jobs
//! labelled [`LABEL_OPERATION`] settles the rest: a Job that failed fails its backup with
//! the reason, one that finished without handing over an archive fails it too; then the
//! Job's objects (token included) are deleted. A pending backup whose Job is gone is failed.
//!
//! The engine knows nothing of what the Job does: that is the blueprint's template.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;
use tokio::task::JoinSet;

use super::Provisioner;
use crate::backup::{
    ArchiveStore, BackupEndpoint, BackupId, BackupKind, BackupOutcome, BackupRecord,
    BackupRepository, BackupStatus, UploadToken,
};
use crate::blueprint::{LABEL_MANAGED_BY, LABEL_STORE, MANAGED_BY};
use crate::error::{Error, Result};
use crate::spec::StoreId;
use crate::store::{EventKind, StoreStatus, Timestamp};

/// The label of every object an on-demand Job of a store is made of, with the Job's name
/// (`backup-<id>`) as its value. The store's own watches leave these objects alone.
pub const LABEL_OPERATION: &str = "storefactory.io/operation";

/// How long a pending backup may be without its Job before it is failed: the Job is
/// created right after the record.
pub(super) const JOB_GRACE: Duration = Duration::from_secs(120);

/// Backups: where their Jobs hand over archives, where the archives are kept, the schedule.
#[derive(Debug, Clone, Default)]
pub struct BackupConfig {
    /// Where store pods reach the platform's internal endpoint; backups cannot be taken
    /// without it.
    pub endpoint: Option<BackupEndpoint>,
    /// Where the archives are kept (the platform's data volume, or a bucket). Deleting a
    /// backup removes its archive from here.
    pub archives: Option<std::sync::Arc<dyn ArchiveStore>>,
    /// Take a scheduled backup of every ready store this often; never when `None`.
    pub schedule: Option<Duration>,
    /// Scheduled backups kept per store; the oldest beyond are deleted (manual ones are
    /// never deleted by the schedule). At least one is kept.
    pub keep: usize,
}

fn job_name(id: &BackupId) -> String {
    format!("backup-{id}")
}

fn backup_of_job(meta: &ObjectMeta) -> Option<BackupId> {
    let value = meta.labels.as_ref()?.get(LABEL_OPERATION)?;
    BackupId::new(value.strip_prefix("backup-")?).ok()
}

impl Provisioner {
    fn backup_repository(&self, id: &StoreId) -> Result<&dyn BackupRepository> {
        self.inner
            .repo
            .backups()
            .ok_or_else(|| Error::BackupsUnavailable {
                id: id.clone(),
                reason: "its repository keeps no backups".to_owned(),
            })
    }

    /// Takes a backup of a ready store: records it as pending and starts its Job. Returns
    /// at once; the backup completes when the Job has handed its archive to the platform,
    /// or fails with the reason.
    ///
    /// Refused, with nothing changed, when the store is not ready ([`Error::InvalidState`]),
    /// or backups are not configured, not kept by the repository or not declared by the
    /// store's blueprint ([`Error::BackupsUnavailable`]).
    pub async fn backup(&self, id: &StoreId, kind: BackupKind) -> Result<BackupRecord> {
        let record = self.live_record(id).await?;
        let repo = self.backup_repository(id)?;
        let unavailable = |reason: &str| Error::BackupsUnavailable {
            id: id.clone(),
            reason: reason.to_owned(),
        };
        let Some(endpoint) = &self.inner.config.backups.endpoint else {
            return Err(unavailable("no backup endpoint is configured"));
        };
        let blueprint = self.inner.blueprints.get(&record.blueprint)?;
        let Some(job) = &blueprint.lifecycle().backup else {
            return Err(unavailable(
                "its blueprint declares no backup (lifecycle.backup)",
            ));
        };
        if record.status != StoreStatus::Ready {
            return Err(Error::InvalidState {
                id: id.clone(),
                status: record.status,
                operation: "back up (only ready stores can be backed up)",
            });
        }
        let token = UploadToken::generate();
        let mut backup = BackupRecord::pending(id.clone(), kind, &token);
        backup.site_url = Some(crate::backup::site_url(&record.spec));
        let name = job_name(&backup.id);
        let labels = BTreeMap::from([(LABEL_OPERATION.to_owned(), name.clone())]);
        let context = json!({
            "id": backup.id,
            "name": name,
            "token_secret": name,
            "url": format!("{}/internal/backups/{}", endpoint.url, backup.id),
            "platform": { "namespace": endpoint.namespace, "port": endpoint.port },
        });
        // Rendered before anything is recorded: a broken template changes nothing.
        let manifests = self.inner.blueprints.render_job(
            &record.blueprint,
            &job.template,
            &record.spec,
            context,
            &labels,
        )?;
        repo.insert_backup(&backup).await?;
        let started = self.create_job_objects(id, &name, &token, &labels, &manifests);
        if let Err(error) = started.await {
            let reason = format!(
                "its Job could not be started: {}",
                super::error_chain(&error)
            );
            let _ = repo
                .settle_backup(&backup.id, BackupOutcome::Failed(reason))
                .await;
            self.remove_job_objects(id, &name).await;
            return Err(error);
        }
        self.step(
            id,
            "backup",
            format!("backup {} started ({kind})", backup.id),
        )
        .await?;
        Ok(backup)
    }

    pub(super) async fn create_job_objects(
        &self,
        id: &StoreId,
        name: &str,
        token: &UploadToken,
        labels: &BTreeMap<String, String>,
        manifests: &[crate::manifest::Manifest],
    ) -> Result<()> {
        let namespace = id.namespace();
        let mut secret_labels = BTreeMap::from([
            (LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned()),
            (LABEL_STORE.to_owned(), id.to_string()),
        ]);
        secret_labels.extend(labels.clone());
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.clone()),
                labels: Some(secret_labels),
                ..ObjectMeta::default()
            },
            string_data: Some(BTreeMap::from([(
                "token".to_owned(),
                token.expose().to_owned(),
            )])),
            ..Secret::default()
        };
        let secrets: Api<Secret> = Api::namespaced(self.inner.client.clone(), &namespace);
        let operation = format!("create Secret {namespace}/{name}");
        self.with_retries(&operation, || async {
            match secrets.create(&PostParams::default(), &secret).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
                Err(error) => Err(error),
            }
        })
        .await?;
        let params = PatchParams::apply(&self.inner.config.field_manager).force();
        for manifest in manifests {
            let api: Api<DynamicObject> = Api::namespaced_with(
                self.inner.client.clone(),
                &namespace,
                &manifest.api_resource(),
            );
            let patch = Patch::Apply(manifest.to_value());
            let operation = format!("apply {}", manifest.describe());
            self.with_retries(&operation, || api.patch(manifest.name(), &params, &patch))
                .await?;
        }
        Ok(())
    }

    /// Deletes the objects of the on-demand Job `name` (its token included), found by their
    /// label. One by one rather than by `deletecollection`: the platform's RBAC grants
    /// `list` and `delete` on these kinds, nothing more. Best effort: what is left is found
    /// again by its label when the Job's watch event comes back.
    pub(super) async fn remove_job_objects(&self, id: &StoreId, name: &str) {
        let namespace = id.namespace();
        let selector = ListParams::default().labels(&format!("{LABEL_OPERATION}={name}"));
        let client = &self.inner.client;
        async fn remove<K>(api: Api<K>, selector: &ListParams) -> kube::Result<()>
        where
            K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
        {
            for object in api.list_metadata(selector).await?.items {
                let Some(name) = object.metadata.name else {
                    continue;
                };
                match api.delete(&name, &DeleteParams::background()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(status)) if status.code == 404 => {}
                    Err(error) => return Err(error),
                }
            }
            Ok(())
        }
        let results = [
            remove(
                Api::<Job>::namespaced(client.clone(), &namespace),
                &selector,
            )
            .await,
            remove(
                Api::<Secret>::namespaced(client.clone(), &namespace),
                &selector,
            )
            .await,
            remove(
                Api::<ConfigMap>::namespaced(client.clone(), &namespace),
                &selector,
            )
            .await,
            remove(
                Api::<NetworkPolicy>::namespaced(client.clone(), &namespace),
                &selector,
            )
            .await,
        ];
        for error in results.into_iter().filter_map(|r| r.err()) {
            tracing::warn!(store = %id, job = name, %error, "cannot delete an on-demand Job's objects");
        }
    }

    /// The backups of a store (a deleted one too, while its record exists), newest first.
    pub async fn list_backups(&self, id: &StoreId) -> Result<Vec<BackupRecord>> {
        if self.inner.repo.get_store(id).await?.is_none() {
            return Err(Error::StoreNotFound { id: id.clone() });
        }
        Ok(self.backup_repository(id)?.list_backups(id).await?)
    }

    /// One backup of a store; [`Error::BackupNotFound`] when the store has none by this id.
    pub async fn get_backup(&self, id: &StoreId, backup: &BackupId) -> Result<BackupRecord> {
        match self.backup_repository(id)?.get_backup(backup).await? {
            Some(record) if record.store_id == *id => Ok(record),
            _ => Err(Error::BackupNotFound {
                id: backup.to_string(),
            }),
        }
    }

    /// Deletes a settled backup: its archive, then its record. A pending one is refused
    /// ([`Error::InvalidState`]-like conflict): its Job still runs.
    pub async fn delete_backup(&self, id: &StoreId, backup: &BackupId) -> Result<BackupRecord> {
        let record = self.get_backup(id, backup).await?;
        if record.status == BackupStatus::Pending {
            return Err(Error::BackupsUnavailable {
                id: id.clone(),
                reason: format!("backup {backup} is still being taken; delete it once it settled"),
            });
        }
        self.forget_backup(&record).await?;
        Ok(record)
    }

    async fn forget_backup(&self, record: &BackupRecord) -> Result<()> {
        if let Some(archives) = &self.inner.config.backups.archives {
            archives
                .remove(&record.id)
                .await
                .map_err(|source| Error::BackupArchive {
                    id: record.id.to_string(),
                    source,
                })?;
        }
        self.backup_repository(&record.store_id)?
            .delete_backup(&record.id)
            .await?;
        Ok(())
    }

    /// The pending backup `backup`, if `token` is its upload token; otherwise
    /// [`Error::BackupNotFound`] (a wrong token learns nothing more).
    pub async fn authorize_upload(&self, backup: &BackupId, token: &str) -> Result<BackupRecord> {
        let not_found = || Error::BackupNotFound {
            id: backup.to_string(),
        };
        let repo = self.inner.repo.backups().ok_or_else(not_found)?;
        match repo.get_backup(backup).await? {
            Some(record) if record.status == BackupStatus::Pending && record.accepts(token) => {
                Ok(record)
            }
            _ => Err(not_found()),
        }
    }

    /// Settles a pending backup: completed (its archive arrived whole) or failed. Records
    /// an event on its store. `None` when it was not pending any more.
    pub async fn settle_backup(
        &self,
        backup: &BackupRecord,
        outcome: BackupOutcome,
    ) -> Result<Option<BackupRecord>> {
        let id = &backup.store_id;
        let message = match &outcome {
            BackupOutcome::Completed { size_bytes, .. } => {
                format!("backup {} completed ({size_bytes} bytes)", backup.id)
            }
            BackupOutcome::Failed(reason) => format!("backup {} failed: {reason}", backup.id),
        };
        let settled = self
            .backup_repository(id)?
            .settle_backup(&backup.id, outcome)
            .await?;
        if let Some(settled) = &settled {
            let kind = match settled.status {
                BackupStatus::Failed => EventKind::Warning { message },
                _ => EventKind::Step {
                    step: "backup".to_owned(),
                    message,
                },
            };
            tracing::info!(store = %id, backup = %backup.id, status = %settled.status, "backup settled");
            self.record(id, kind).await?;
        }
        Ok(settled)
    }

    /// Starts the leader's backup work: the watch that settles backups by their Jobs, and
    /// the schedule.
    pub(super) fn start_backup_work(&self, set: &mut JoinSet<()>) {
        if self.inner.repo.backups().is_none() {
            return;
        }
        let this = self.clone();
        set.spawn(async move { this.watch_backup_jobs().await });
        let this = self.clone();
        set.spawn(async move { this.start_waiting_restores().await });
        if let Some(every) = self.inner.config.backups.schedule {
            let this = self.clone();
            set.spawn(async move { this.schedule_backups(every).await });
        }
    }

    async fn watch_backup_jobs(&self) {
        let jobs: Api<Job> = Api::all(self.inner.client.clone());
        let config = watcher::Config::default().labels(LABEL_OPERATION);
        let mut stream = watcher(jobs, config).boxed();
        let mut listed = HashSet::new();
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Init) => listed.clear(),
                Ok(watcher::Event::InitApply(job)) => {
                    if let Some(name) = job
                        .metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(LABEL_OPERATION))
                    {
                        listed.insert(name.clone());
                    }
                    self.job_changed(&job).await;
                }
                Ok(watcher::Event::Apply(job)) => self.job_changed(&job).await,
                Ok(watcher::Event::InitDone) => self.fail_orphans(&listed).await,
                Ok(watcher::Event::Delete(job)) => self.job_deleted(&job).await,
                Err(error) => {
                    tracing::debug!(%error, "backup Job watch interrupted; resuming");
                    tokio::time::sleep(self.inner.config.initial_backoff).await;
                }
            }
        }
    }

    /// A Job of a backup or restore changed: once it finished, its backup (restore) is
    /// settled and its objects go.
    async fn job_changed(&self, job: &Job) {
        let Some(name) = job
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_OPERATION))
            .cloned()
        else {
            return;
        };
        let Some(status) = &job.status else { return };
        let condition = |kind: &str| {
            status
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == kind && c.status == "True")
        };
        let finished = if condition("Complete").is_some() {
            Ok(())
        } else if let Some(failed) = condition("Failed") {
            let namespace = job.metadata.namespace.clone().unwrap_or_default();
            Err(self
                .pod_failure(&namespace, &name)
                .await
                .or_else(|| failed.message.clone())
                .unwrap_or_else(|| "no reason given".to_owned()))
        } else {
            return;
        };
        if let Some(id) = name.strip_prefix("restore-") {
            if let Ok(id) = BackupId::new(id) {
                self.restore_job_finished(&id, &name, finished).await;
            }
            return;
        }
        let Some(backup) = backup_of_job(&job.metadata) else {
            return;
        };
        let outcome = match finished {
            Ok(()) => BackupOutcome::Failed(
                "the backup Job finished without handing over its archive".to_owned(),
            ),
            Err(why) => BackupOutcome::Failed(format!("the backup Job failed: {why}")),
        };
        let Some(repo) = self.inner.repo.backups() else {
            return;
        };
        let Ok(Some(record)) = repo.get_backup(&backup).await else {
            return;
        };
        // A process limited to some stores leaves the others' Jobs to their leader.
        if !self.in_scope(&record.store_id) {
            return;
        }
        if record.status == BackupStatus::Pending
            && let Err(error) = self.settle_backup(&record, outcome).await
        {
            tracing::warn!(%backup, error = %super::error_chain(&error), "cannot settle a backup");
            return;
        }
        self.remove_job_objects(&record.store_id, &job_name(&backup))
            .await;
    }

    /// A backup or restore Job was deleted (with its store's namespace, or by someone):
    /// one that had not finished fails its backup or restore. (The engine deletes Jobs only
    /// once they are settled, so its own deletions change nothing.)
    async fn job_deleted(&self, job: &Job) {
        let Some(name) = job
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_OPERATION))
        else {
            return;
        };
        let Some(repo) = self.inner.repo.backups() else {
            return;
        };
        let why = "its Job was deleted before it finished".to_owned();
        if let Some(id) = name.strip_prefix("restore-") {
            if let Ok(id) = BackupId::new(id) {
                self.restore_job_finished(&id, name, Err(why)).await;
            }
            return;
        }
        let Some(backup) = backup_of_job(&job.metadata) else {
            return;
        };
        if let Ok(Some(record)) = repo.get_backup(&backup).await
            && record.status == BackupStatus::Pending
            && self.in_scope(&record.store_id)
        {
            let _ = self
                .settle_backup(&record, BackupOutcome::Failed(why))
                .await;
        }
    }

    /// What the failed container of a Job's pod said last (its termination message).
    async fn pod_failure(&self, namespace: &str, job: &str) -> Option<String> {
        let pods: Api<Pod> = Api::namespaced(self.inner.client.clone(), namespace);
        let list = pods
            .list(&ListParams::default().labels(&format!("storefactory.io/job={job}")))
            .await
            .ok()?;
        list.items.iter().find_map(|pod| {
            let status = pod.status.as_ref()?;
            status
                .init_container_statuses
                .iter()
                .flatten()
                .chain(status.container_statuses.iter().flatten())
                .find_map(|c| {
                    let terminated = c.state.as_ref()?.terminated.as_ref()?;
                    (terminated.exit_code != 0).then(|| {
                        let said = terminated.message.as_deref().unwrap_or("").trim();
                        let said: String = said
                            .chars()
                            .rev()
                            .take(500)
                            .collect::<Vec<_>>()
                            .into_iter()
                            .rev()
                            .collect();
                        format!(
                            "container {} exited with {}: {said}",
                            c.name, terminated.exit_code
                        )
                    })
                })
        })
    }

    /// Pending backups whose Job is not among those listed, and that are older than the
    /// grace period, failed: their Job was deleted, or never created (a crash in between).
    async fn fail_orphans(&self, listed: &HashSet<String>) {
        self.fail_orphan_restores(listed).await;
        let Some(repo) = self.inner.repo.backups() else {
            return;
        };
        let Ok(pending) = repo.pending_backups().await else {
            return;
        };
        let grace = i64::try_from(JOB_GRACE.as_millis()).unwrap_or(i64::MAX);
        let now = Timestamp::now();
        for record in pending {
            if !self.in_scope(&record.store_id)
                || listed.contains(&job_name(&record.id))
                || now.0 - record.created_at.0 < grace
            {
                continue;
            }
            let outcome = BackupOutcome::Failed("its Job is gone".to_owned());
            if let Err(error) = self.settle_backup(&record, outcome).await {
                tracing::warn!(backup = %record.id, error = %super::error_chain(&error), "cannot settle a backup");
            }
        }
    }

    /// Takes a scheduled backup of every ready store that can be backed up each `every`,
    /// and deletes the oldest scheduled backups beyond the kept count.
    ///
    /// Why a scheduler on the leader rather than a CronJob per store: CronJob is
    /// `batch/v1beta1` on Kubernetes 1.20 and `batch/v1` on current clusters (one template
    /// cannot serve both), and a Job started by a CronJob would not be recorded: here every
    /// backup is recorded before its Job exists, gets its own one-time token, and is settled
    /// and pruned the same way as a manual one.
    async fn schedule_backups(&self, every: Duration) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate: a schedule starts one period after the leader does.
        ticks.tick().await;
        loop {
            ticks.tick().await;
            self.scheduled_pass().await;
        }
    }

    /// One pass of the schedule: a backup of every ready store, then retention.
    pub async fn scheduled_pass(&self) {
        let stores = match self
            .inner
            .repo
            .list_stores(&crate::port::StoreFilter::default())
            .await
        {
            Ok(stores) => stores,
            Err(error) => {
                tracing::warn!(%error, "scheduled backups: cannot list stores");
                return;
            }
        };
        for store in stores.iter().filter(|s| s.status == StoreStatus::Ready) {
            if !self.in_scope(&store.id) {
                continue;
            }
            match self.backup(&store.id, BackupKind::Scheduled).await {
                Ok(_) | Err(Error::BackupsUnavailable { .. }) => {}
                Err(error) => {
                    tracing::warn!(store = %store.id, error = %super::error_chain(&error), "scheduled backup failed to start")
                }
            }
            if let Err(error) = self.prune_backups(&store.id).await {
                tracing::warn!(store = %store.id, error = %super::error_chain(&error), "cannot prune backups");
            }
        }
    }

    /// Deletes the oldest settled scheduled backups of a store beyond the kept count
    /// ([`BackupConfig::keep`]): the newest `keep` completed ones stay, and the newest `keep`
    /// failed ones (so that failures stay visible, but do not pile up). Manual backups are
    /// never deleted here. Returns how many were deleted.
    pub async fn prune_backups(&self, id: &StoreId) -> Result<usize> {
        let keep = self.inner.config.backups.keep.max(1);
        let scheduled = self
            .backup_repository(id)?
            .list_backups(id)
            .await?
            .into_iter()
            .filter(|b| b.kind == BackupKind::Scheduled);
        let (mut completed, mut failed, mut deleted) = (0, 0, 0);
        // Newest first.
        for backup in scheduled {
            let seen = match backup.status {
                BackupStatus::Pending => continue,
                BackupStatus::Completed => &mut completed,
                BackupStatus::Failed => &mut failed,
            };
            *seen += 1;
            if *seen > keep {
                self.forget_backup(&backup).await?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}
