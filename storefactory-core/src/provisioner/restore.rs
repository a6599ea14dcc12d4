//! Restores and clones: a Job the store's blueprint declares (`lifecycle.restore`) fetches a
//! completed backup from the platform and restores it into the store, which is `restoring`
//! meanwhile and `ready` again afterwards (or `failed`, with the reason: it may be partly
//! restored, and can be restored again).
//!
//! A clone is a new store of the caller's (created like any, so the owner's quota applies)
//! with a restore that waits for it: once the new store is ready, the source's latest
//! completed backup is restored into it and its site URL rewritten from the source's to
//! the clone's. The leader starts waiting restores when their store becomes ready.

use std::collections::{BTreeMap, HashSet};

use serde_json::json;

use super::Provisioner;
use super::backup::{JOB_GRACE, LABEL_OPERATION};
use crate::backup::{
    BackupId, BackupRecord, BackupRepository, BackupStatus, RestoreRecord, RestoreStatus,
    UploadToken, site_url,
};
use crate::error::{Error, Result};
use crate::provisioner::CreateStore;
use crate::spec::StoreId;
use crate::store::{EventKind, StoreRecord, StoreStatus, Timestamp};

fn restore_job(id: &BackupId) -> String {
    format!("restore-{id}")
}

impl Provisioner {
    fn restores(&self, id: &StoreId) -> Result<&dyn BackupRepository> {
        self.inner
            .repo
            .backups()
            .ok_or_else(|| Error::BackupsUnavailable {
                id: id.clone(),
                reason: "its repository keeps no backups".to_owned(),
            })
    }

    /// Checks that `store` can be restored into: an endpoint is configured and its
    /// blueprint declares a restore Job.
    fn check_restorable(&self, store: &StoreRecord) -> Result<()> {
        let unavailable = |reason: &str| Error::BackupsUnavailable {
            id: store.id.clone(),
            reason: reason.to_owned(),
        };
        if self.inner.config.backups.endpoint.is_none() {
            return Err(unavailable("no backup endpoint is configured"));
        }
        let blueprint = self.inner.blueprints.get(&store.blueprint)?;
        if blueprint.lifecycle().restore.is_none() {
            return Err(unavailable(
                "its blueprint declares no restore (lifecycle.restore)",
            ));
        }
        Ok(())
    }

    /// A completed backup by id; [`Error::BackupNotFound`] when there is none, and a
    /// conflict when it is not completed.
    async fn completed_backup(&self, store: &StoreId, backup: &BackupId) -> Result<BackupRecord> {
        let Some(record) = self.restores(store)?.get_backup(backup).await? else {
            return Err(Error::BackupNotFound {
                id: backup.to_string(),
            });
        };
        if record.status != BackupStatus::Completed {
            return Err(Error::BackupsUnavailable {
                id: store.clone(),
                reason: format!(
                    "backup {backup} is {}; only completed backups can be restored",
                    record.status
                ),
            });
        }
        Ok(record)
    }

    /// Restores the completed backup `backup` (of this store or of another) into the store
    /// `id`, which must be ready or failed: it becomes `restoring` at once, and `ready` once
    /// the restore Job finished (or `failed`, with the reason). The backup of another store
    /// has its site URL rewritten to this store's. Refused with nothing changed when the
    /// store cannot take it ([`Error::InvalidState`]), the backup does not exist
    /// ([`Error::BackupNotFound`]) or is not completed, or restores are not available.
    pub async fn restore(&self, id: &StoreId, backup: &BackupId) -> Result<RestoreRecord> {
        let record = self.live_record(id).await?;
        self.check_restorable(&record)?;
        let backup = self.completed_backup(id, backup).await?;
        if !matches!(record.status, StoreStatus::Ready | StoreStatus::Failed) {
            return Err(Error::InvalidState {
                id: id.clone(),
                status: record.status,
                operation: "restore a backup (only ready or failed stores can be restored)",
            });
        }
        let urls = backup
            .site_url
            .clone()
            .map(|old| (old, site_url(&record.spec)))
            .filter(|(old, new)| old != new);
        let restore =
            RestoreRecord::new(id.clone(), backup.id.clone(), RestoreStatus::Running, urls);
        self.start_restore_detached(record, restore, backup, None)
            .await
    }

    /// [`Provisioner::start_restore`] in a task of its own: a caller that stops waiting (a
    /// request's deadline, a command that returns) does not cut it off half-way, between
    /// recording the restore, marking the store and creating the Job.
    async fn start_restore_detached(
        &self,
        store: StoreRecord,
        restore: RestoreRecord,
        backup: BackupRecord,
        from: Option<RestoreStatus>,
    ) -> Result<RestoreRecord> {
        let this = self.clone();
        let id = store.id.clone();
        let task =
            tokio::spawn(async move { this.start_restore(&store, restore, &backup, from).await });
        match task.await {
            Ok(result) => result,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(_) => Err(Error::BackupsUnavailable {
                id,
                reason: "the restore could not be started (shutting down)".to_owned(),
            }),
        }
    }

    /// Creates a new store (`request`, checked against its owner's quota like any creation:
    /// refused with nothing created) from the latest completed backup of `source`: it is
    /// provisioned, then the backup is restored into it with its URL rewritten from the
    /// source's to the new store's. Returns the new store and its waiting restore.
    pub async fn clone_store(
        &self,
        source: &StoreId,
        mut request: CreateStore,
    ) -> Result<(StoreRecord, RestoreRecord)> {
        // The clone answers on its own host only: custom domains are unique across stores,
        // and the source's stay the source's (a spec copied from it carries them).
        request.spec.ingress.domains.clear();
        let source_record = self.live_record(source).await?;
        let repo = self.restores(source)?;
        let backup = repo
            .list_backups(source)
            .await?
            .into_iter()
            .find(|b| b.status == BackupStatus::Completed)
            .ok_or_else(|| Error::BackupsUnavailable {
                id: source.clone(),
                reason: "it has no completed backup to clone from; back it up first".to_owned(),
            })?;
        // What the clone will be: it must be restorable before anything is created.
        let blueprint = request
            .blueprint
            .clone()
            .unwrap_or_else(|| self.inner.config.default_blueprint.clone());
        self.check_restorable(&StoreRecord::new(request.spec.clone(), "", blueprint))?;
        let old = backup
            .site_url
            .clone()
            .unwrap_or_else(|| site_url(&source_record.spec));
        let new = site_url(&request.spec);
        let record = self.create(request).await?;
        let restore = RestoreRecord::new(
            record.id.clone(),
            backup.id.clone(),
            RestoreStatus::Waiting,
            Some((old, new)),
        );
        repo.insert_restore(&restore).await?;
        self.step(
            &record.id,
            "clone",
            format!(
                "clone of store {source} from its backup {}: it is provisioned, then the \
                 backup is restored into it",
                backup.id
            ),
        )
        .await?;
        // Ready already? (Not yet, in practice: it was just created.)
        Ok((record, restore))
    }

    /// Renders and starts the restore Job of `restore` (new, or `from` the status it is
    /// recorded in) and marks the store `restoring`.
    async fn start_restore(
        &self,
        store: &StoreRecord,
        mut restore: RestoreRecord,
        backup: &BackupRecord,
        from: Option<RestoreStatus>,
    ) -> Result<RestoreRecord> {
        let id = &store.id;
        let repo = self.restores(id)?;
        let endpoint = self.inner.config.backups.endpoint.clone().ok_or_else(|| {
            Error::BackupsUnavailable {
                id: id.clone(),
                reason: "no backup endpoint is configured".to_owned(),
            }
        })?;
        let blueprint = self.inner.blueprints.get(&store.blueprint)?;
        let Some(job) = blueprint.lifecycle().restore.clone() else {
            return Err(Error::BackupsUnavailable {
                id: id.clone(),
                reason: "its blueprint declares no restore (lifecycle.restore)".to_owned(),
            });
        };
        let token = UploadToken::generate();
        restore.status = RestoreStatus::Running;
        restore.token_hash = Some(token.hash());
        let name = restore_job(&restore.id);
        let labels = BTreeMap::from([(LABEL_OPERATION.to_owned(), name.clone())]);
        let context = json!({
            "id": restore.id,
            "name": name,
            "token_secret": name,
            "url": format!("{}/internal/restores/{}/archive", endpoint.url, restore.id),
            "platform": { "namespace": endpoint.namespace, "port": endpoint.port },
            "backup": { "id": backup.id, "sha256": backup.sha256.clone().unwrap_or_default() },
            "old_url": restore.old_url.clone().unwrap_or_default(),
            "new_url": restore.new_url.clone().unwrap_or_default(),
        });
        let manifests = self.inner.blueprints.render_job(
            &store.blueprint,
            &job.template,
            &store.spec,
            context,
            &labels,
        )?;
        // Recorded as running first, so that a store never is `restoring` without a
        // restore that the leader settles.
        match from {
            None => repo.insert_restore(&restore).await?,
            Some(from) => {
                if !repo.update_restore(&restore, from).await? {
                    return Err(Error::InvalidState {
                        id: id.clone(),
                        status: store.status,
                        operation: "start a restore (it was started already)",
                    });
                }
            }
        }
        if let Err(error) = self
            .transition(
                id,
                StoreStatus::Restoring,
                Some(&format!("restoring backup {}", backup.id)),
            )
            .await
        {
            let mut ended = restore.clone();
            ended.status = RestoreStatus::Failed;
            ended.token_hash = None;
            ended.finished_at = Some(Timestamp::now());
            ended.error = Some(format!(
                "the store could not become restoring: {}",
                super::error_chain(&error)
            ));
            let _ = repo.update_restore(&ended, RestoreStatus::Running).await;
            return Err(error);
        }
        let started = self.create_job_objects(id, &name, &token, &labels, &manifests);
        if let Err(error) = started.await {
            let reason = format!(
                "the restore Job could not be started: {}",
                super::error_chain(&error)
            );
            // Nothing was touched: the store is as it was.
            self.end_restore(&restore, Err(reason), false).await;
            self.remove_job_objects(id, &name).await;
            return Err(error);
        }
        let from_store = if backup.store_id == *id {
            String::new()
        } else {
            format!(" of store {}", backup.store_id)
        };
        self.step(
            id,
            "restore",
            format!("restoring backup {}{from_store}", backup.id),
        )
        .await?;
        Ok(restore)
    }

    /// Records the end of a running restore and moves its store on: `ready`, or `failed`
    /// with the reason when its Job may have `touched` the store (else `ready`, with a
    /// warning).
    async fn end_restore(
        &self,
        restore: &RestoreRecord,
        result: std::result::Result<(), String>,
        touched: bool,
    ) {
        let Some(repo) = self.inner.repo.backups() else {
            return;
        };
        let mut ended = restore.clone();
        ended.token_hash = None;
        ended.finished_at = Some(Timestamp::now());
        ended.status = match &result {
            Ok(()) => RestoreStatus::Completed,
            Err(_) => RestoreStatus::Failed,
        };
        ended.error = result.as_ref().err().cloned();
        match repo.update_restore(&ended, RestoreStatus::Running).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(error) => {
                tracing::warn!(restore = %restore.id, %error, "cannot record the end of a restore");
                return;
            }
        }
        let id = &restore.store_id;
        // Only a store this restore made `restoring` is moved on (one whose start was cut
        // off before that is left as it is).
        match self.inner.repo.get_store(id).await {
            Ok(Some(store)) if store.status == StoreStatus::Restoring => {}
            _ => {
                if let Err(why) = &result {
                    let _ = self
                        .record(
                            id,
                            EventKind::Warning {
                                message: format!(
                                    "restoring backup {} did not start: {why}",
                                    restore.backup_id
                                ),
                            },
                        )
                        .await;
                }
                return;
            }
        }
        let moved = match result {
            Ok(()) => {
                let _ = self
                    .step(
                        id,
                        "restore",
                        format!("backup {} restored", restore.backup_id),
                    )
                    .await;
                self.transition(id, StoreStatus::Ready, None).await
            }
            Err(why) if !touched => {
                let _ = self
                    .record(
                        id,
                        EventKind::Warning {
                            message: format!(
                                "restoring backup {} failed before it began: {why}",
                                restore.backup_id
                            ),
                        },
                    )
                    .await;
                self.transition(id, StoreStatus::Ready, None).await
            }
            Err(why) => {
                let reason = format!(
                    "restoring backup {} failed: {why}. The store may be partly restored: \
                     restore it again",
                    restore.backup_id
                );
                self.transition(id, StoreStatus::Failed, Some(&reason))
                    .await
            }
        };
        if let Err(error) = moved {
            tracing::warn!(store = %id, error = %super::error_chain(&error), "cannot end a restore");
        }
    }

    /// The restore Job `name` of restore `id` finished.
    pub(super) async fn restore_job_finished(
        &self,
        id: &BackupId,
        name: &str,
        finished: std::result::Result<(), String>,
    ) {
        let Some(repo) = self.inner.repo.backups() else {
            return;
        };
        let Ok(Some(restore)) = repo.get_restore(id).await else {
            return;
        };
        if !self.in_scope(&restore.store_id) {
            return;
        }
        if restore.status == RestoreStatus::Running {
            let result = finished.map_err(|why| format!("the restore Job failed: {why}"));
            self.end_restore(&restore, result, true).await;
        }
        self.remove_job_objects(&restore.store_id, name).await;
    }

    /// Running restores whose Job is not among those listed (and older than the grace
    /// period) fail: their Job was deleted, or never created.
    pub(super) async fn fail_orphan_restores(&self, listed: &HashSet<String>) {
        let Some(repo) = self.inner.repo.backups() else {
            return;
        };
        let Ok(open) = repo.open_restores().await else {
            return;
        };
        let grace = i64::try_from(JOB_GRACE.as_millis()).unwrap_or(i64::MAX);
        let now = Timestamp::now();
        for restore in open {
            if restore.status == RestoreStatus::Running
                && self.in_scope(&restore.store_id)
                && !listed.contains(&restore_job(&restore.id))
                && now.0 - restore.created_at.0 >= grace
            {
                self.end_restore(&restore, Err("its Job is gone".to_owned()), true)
                    .await;
            }
        }
    }

    /// Starts the waiting restores (clones) of stores that are ready now, and of every
    /// store that becomes ready from now on.
    pub(super) async fn start_waiting_restores(&self) {
        let mut events = self.subscribe();
        self.start_waiting(None).await;
        loop {
            match events.recv().await {
                Ok(event) => {
                    if let EventKind::Status {
                        status: StoreStatus::Ready,
                        ..
                    } = event.kind
                    {
                        self.start_waiting(Some(&event.store_id)).await;
                    }
                }
                // Missed some: look at them all.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    self.start_waiting(None).await;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// Starts the waiting restore of a store (a clone) if the store is ready now. The
    /// leader does this by itself when the store becomes ready; a program that drives one
    /// store without a leader's help (the command line's `--wait`) calls it.
    pub async fn start_waiting_restore(&self, id: &StoreId) {
        self.start_waiting(Some(id)).await;
    }

    async fn start_waiting(&self, only: Option<&StoreId>) {
        let Some(repo) = self.inner.repo.backups() else {
            return;
        };
        let Ok(open) = repo.open_restores().await else {
            return;
        };
        for restore in open {
            if restore.status != RestoreStatus::Waiting
                || only.is_some_and(|id| *id != restore.store_id)
                || !self.in_scope(&restore.store_id)
            {
                continue;
            }
            let store = match self.inner.repo.get_store(&restore.store_id).await {
                Ok(Some(store)) if store.status == StoreStatus::Ready => store,
                Ok(Some(store)) if store.status.holds_resources() => continue,
                // The store is gone: its restore will never run.
                Ok(_) => {
                    let mut ended = restore.clone();
                    ended.status = RestoreStatus::Failed;
                    ended.finished_at = Some(Timestamp::now());
                    ended.error = Some("its store was deleted".to_owned());
                    let _ = repo.update_restore(&ended, RestoreStatus::Waiting).await;
                    continue;
                }
                Err(_) => continue,
            };
            let backup = match repo.get_backup(&restore.backup_id).await {
                Ok(Some(backup)) if backup.status == BackupStatus::Completed => backup,
                Ok(_) => {
                    let mut ended = restore.clone();
                    ended.status = RestoreStatus::Failed;
                    ended.finished_at = Some(Timestamp::now());
                    ended.error = Some(format!("backup {} is gone", restore.backup_id));
                    if let Ok(true) = repo.update_restore(&ended, RestoreStatus::Waiting).await {
                        let _ = self
                            .record(
                                &store.id,
                                EventKind::Warning {
                                    message: format!(
                                        "the clone's backup {} was deleted before it could be \
                                         restored; the store keeps its fresh data",
                                        restore.backup_id
                                    ),
                                },
                            )
                            .await;
                    }
                    continue;
                }
                Err(_) => continue,
            };
            if let Err(error) = self
                .start_restore_detached(
                    store.clone(),
                    restore.clone(),
                    backup,
                    Some(RestoreStatus::Waiting),
                )
                .await
            {
                tracing::warn!(store = %store.id, restore = %restore.id, error = %super::error_chain(&error), "cannot start a waiting restore");
            }
        }
    }

    /// One restore of a store; [`Error::BackupNotFound`] when it has none by this id.
    pub async fn get_restore(&self, id: &StoreId, restore: &BackupId) -> Result<RestoreRecord> {
        match self.restores(id)?.get_restore(restore).await? {
            Some(record) if record.store_id == *id => Ok(record),
            _ => Err(Error::BackupNotFound {
                id: restore.to_string(),
            }),
        }
    }
}
