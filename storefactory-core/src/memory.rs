//! An in-memory [`StoreRepository`], for tests and for embedders who want no database.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::backup::{
    BackupId, BackupOutcome, BackupRecord, BackupRepository, BackupStatus, RestoreRecord,
    RestoreStatus,
};
use crate::error::RepositoryError;
use crate::port::{DomainChange, Quota, StoreFilter, StoreRepository, Usage};
use crate::spec::StoreId;
use crate::store::{EventKind, StoreEvent, StoreRecord, StoreStatus, Timestamp};

#[derive(Default)]
struct State {
    stores: BTreeMap<StoreId, StoreRecord>,
    order: Vec<StoreId>,
    events: HashMap<StoreId, Vec<StoreEvent>>,
    quotas: HashMap<String, Quota>,
    feed: Vec<StoreEvent>,
    backups: BTreeMap<BackupId, BackupRecord>,
    restores: BTreeMap<BackupId, RestoreRecord>,
}

/// Keeps stores and events in memory; everything is lost when it is dropped.
///
/// Owners without a quota set by [`MemoryRepository::set_quota`] are unlimited.
#[derive(Default)]
pub struct MemoryRepository {
    state: Mutex<State>,
}

impl MemoryRepository {
    /// An empty repository.
    pub fn new() -> Self {
        Self::default()
    }

    /// Limits what `owner` may hold from now on.
    pub fn set_quota(&self, owner: impl Into<String>, quota: Quota) {
        self.lock().quotas.insert(owner.into(), quota);
    }

    /// What `owner` currently holds.
    pub fn usage(&self, owner: &str) -> Usage {
        usage_of(&self.lock(), owner)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave `State` half-updated in a way that
        // matters more than losing the whole repository, so recover the guard.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Whether a store other than `id` that is not deleted answers on `host`.
fn host_taken(state: &State, id: &StoreId, host: &str) -> bool {
    state.stores.values().any(|r| {
        r.id != *id && r.status != StoreStatus::Deleted && r.spec.ingress.hosts().any(|h| h == host)
    })
}

fn append_locked(
    state: &mut State,
    id: &StoreId,
    at: Timestamp,
    kind: &EventKind,
) -> Result<StoreEvent, RepositoryError> {
    if !state.stores.contains_key(id) {
        return Err(RepositoryError::NotFound { id: id.clone() });
    }
    let events = state.events.entry(id.clone()).or_default();
    let event = StoreEvent {
        seq: events.last().map_or(1, |e| e.seq + 1),
        store_id: id.clone(),
        at,
        kind: kind.clone(),
    };
    events.push(event.clone());
    state.feed.push(event.clone());
    Ok(event)
}

fn usage_of(state: &State, owner: &str) -> Usage {
    state
        .stores
        .values()
        .filter(|r| r.owner == owner && r.status.holds_resources())
        .fold(Usage::default(), |usage, r| Usage {
            stores: usage.stores + 1,
            storage_gib: usage.storage_gib.saturating_add(r.storage_gib()),
        })
}

#[async_trait]
impl StoreRepository for MemoryRepository {
    async fn insert_store(&self, record: &StoreRecord) -> Result<(), RepositoryError> {
        let mut state = self.lock();
        if let Some(existing) = state.stores.get(&record.id)
            && existing.status != StoreStatus::Deleted
        {
            return Err(RepositoryError::AlreadyExists {
                id: record.id.clone(),
            });
        }
        if let Some(quota) = state.quotas.get(&record.owner)
            && let Some(message) =
                usage_of(&state, &record.owner).exceeds(quota, record.storage_gib())
        {
            return Err(RepositoryError::QuotaExceeded {
                owner: record.owner.clone(),
                message,
            });
        }
        if let Some(host) = record
            .spec
            .ingress
            .hosts()
            .find(|host| host_taken(&state, &record.id, host))
        {
            return Err(RepositoryError::DomainTaken {
                host: host.to_owned(),
            });
        }
        state.order.retain(|id| *id != record.id);
        state.order.push(record.id.clone());
        state.events.remove(&record.id);
        state.stores.insert(record.id.clone(), record.clone());
        Ok(())
    }

    async fn get_store(&self, id: &StoreId) -> Result<Option<StoreRecord>, RepositoryError> {
        Ok(self.lock().stores.get(id).cloned())
    }

    async fn list_stores(&self, filter: &StoreFilter) -> Result<Vec<StoreRecord>, RepositoryError> {
        let state = self.lock();
        Ok(state
            .order
            .iter()
            .filter_map(|id| state.stores.get(id))
            .filter(|r| filter.matches(r))
            .cloned()
            .collect())
    }

    async fn set_status(
        &self,
        id: &StoreId,
        status: StoreStatus,
        reason: Option<&str>,
    ) -> Result<StoreRecord, RepositoryError> {
        let mut state = self.lock();
        let record = state
            .stores
            .get_mut(id)
            .ok_or_else(|| RepositoryError::NotFound { id: id.clone() })?;
        if !record.status.can_become(status) {
            return Err(RepositoryError::InvalidTransition {
                id: id.clone(),
                from: record.status,
                to: status,
            });
        }
        record.status = status;
        record.reason = reason.map(str::to_owned);
        record.updated_at = Timestamp::now();
        Ok(record.clone())
    }

    async fn change_spec(
        &self,
        id: &StoreId,
        spec: &crate::spec::StoreSpec,
        status: StoreStatus,
        reason: Option<&str>,
    ) -> Result<StoreRecord, RepositoryError> {
        let mut state = self.lock();
        let current = state
            .stores
            .get(id)
            .ok_or_else(|| RepositoryError::NotFound { id: id.clone() })?;
        if !current.status.can_become(status) {
            return Err(RepositoryError::InvalidTransition {
                id: id.clone(),
                from: current.status,
                to: status,
            });
        }
        if let Some(quota) = state.quotas.get(&current.owner)
            && let Some(message) = usage_of(&state, &current.owner).exceeds_on_growth(
                quota,
                current.storage_gib(),
                spec.storage_gib(),
            )
        {
            return Err(RepositoryError::QuotaExceeded {
                owner: current.owner.clone(),
                message,
            });
        }
        let record = state
            .stores
            .get_mut(id)
            .ok_or_else(|| RepositoryError::NotFound { id: id.clone() })?;
        // Custom domains change only through `change_domain`: the store's current ones stay.
        let domains = std::mem::take(&mut record.spec.ingress.domains);
        record.spec = spec.clone();
        record.spec.ingress.domains = domains;
        record.status = status;
        record.reason = reason.map(str::to_owned);
        record.updated_at = Timestamp::now();
        Ok(record.clone())
    }

    async fn append_event(
        &self,
        id: &StoreId,
        at: Timestamp,
        kind: &EventKind,
    ) -> Result<StoreEvent, RepositoryError> {
        append_locked(&mut self.lock(), id, at, kind)
    }

    async fn change_domain(
        &self,
        id: &StoreId,
        change: &DomainChange,
        allowed: &[StoreStatus],
        at: Timestamp,
        event: &EventKind,
    ) -> Result<(StoreRecord, Option<StoreEvent>), RepositoryError> {
        let mut state = self.lock();
        let record = state
            .stores
            .get(id)
            .filter(|r| r.status != StoreStatus::Deleted)
            .ok_or_else(|| RepositoryError::NotFound { id: id.clone() })?;
        if !allowed.contains(&record.status) {
            return Err(RepositoryError::WrongStatus {
                id: id.clone(),
                status: record.status,
            });
        }
        let mut domains = record.spec.ingress.domains.clone();
        let host = change.host().to_owned();
        match change {
            DomainChange::Add(_) if domains.contains(&host) => return Ok((record.clone(), None)),
            DomainChange::Add(_) => {
                if host_taken(&state, id, &host) || record.spec.ingress.host == host {
                    return Err(RepositoryError::DomainTaken { host });
                }
                if domains.len() >= crate::spec::MAX_DOMAINS {
                    return Err(RepositoryError::DomainLimit {
                        id: id.clone(),
                        max: crate::spec::MAX_DOMAINS,
                    });
                }
                domains.push(host);
            }
            DomainChange::Remove(_) => {
                let Some(at) = domains.iter().position(|d| *d == host) else {
                    return Err(RepositoryError::DomainNotFound {
                        id: id.clone(),
                        host,
                    });
                };
                domains.remove(at);
            }
        }
        // Checked, changed and narrated under one lock: two concurrent adds cannot both win.
        let event = append_locked(&mut state, id, at, event)?;
        let record = state
            .stores
            .get_mut(id)
            .ok_or_else(|| RepositoryError::NotFound { id: id.clone() })?;
        record.spec.ingress.domains = domains;
        record.updated_at = Timestamp::now();
        Ok((record.clone(), Some(event)))
    }

    async fn set_namespace_uid(&self, id: &StoreId, uid: &str) -> Result<(), RepositoryError> {
        let mut state = self.lock();
        let record = state
            .stores
            .get_mut(id)
            .ok_or_else(|| RepositoryError::NotFound { id: id.clone() })?;
        record.namespace_uid = Some(uid.to_owned());
        Ok(())
    }

    async fn clear_sealed_inputs(&self, id: &StoreId) -> Result<(), RepositoryError> {
        if let Some(record) = self.lock().stores.get_mut(id) {
            record.sealed_inputs = None;
        }
        Ok(())
    }

    async fn feed(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, StoreEvent)>, RepositoryError> {
        let state = self.lock();
        let start = usize::try_from(after.max(0)).unwrap_or(usize::MAX);
        Ok(state
            .feed
            .iter()
            .enumerate()
            .skip(start)
            .take(limit)
            .map(|(i, e)| (i64::try_from(i + 1).unwrap_or(i64::MAX), e.clone()))
            .collect())
    }

    async fn feed_head(&self) -> Result<i64, RepositoryError> {
        Ok(i64::try_from(self.lock().feed.len()).unwrap_or(i64::MAX))
    }

    fn backups(&self) -> Option<&dyn BackupRepository> {
        Some(self)
    }

    async fn events(
        &self,
        id: &StoreId,
        after_seq: i64,
    ) -> Result<Vec<StoreEvent>, RepositoryError> {
        let state = self.lock();
        Ok(state
            .events
            .get(id)
            .map(|events| {
                events
                    .iter()
                    .filter(|e| e.seq > after_seq)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }
}

#[async_trait]
impl BackupRepository for MemoryRepository {
    async fn insert_backup(&self, record: &BackupRecord) -> Result<(), RepositoryError> {
        self.lock()
            .backups
            .insert(record.id.clone(), record.clone());
        Ok(())
    }

    async fn get_backup(&self, id: &BackupId) -> Result<Option<BackupRecord>, RepositoryError> {
        Ok(self.lock().backups.get(id).cloned())
    }

    async fn list_backups(&self, store: &StoreId) -> Result<Vec<BackupRecord>, RepositoryError> {
        let mut list: Vec<BackupRecord> = self
            .lock()
            .backups
            .values()
            .filter(|b| b.store_id == *store)
            .cloned()
            .collect();
        list.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        Ok(list)
    }

    async fn pending_backups(&self) -> Result<Vec<BackupRecord>, RepositoryError> {
        let mut list: Vec<BackupRecord> = self
            .lock()
            .backups
            .values()
            .filter(|b| b.status == BackupStatus::Pending)
            .cloned()
            .collect();
        list.sort_by_key(|b| b.created_at);
        Ok(list)
    }

    async fn settle_backup(
        &self,
        id: &BackupId,
        outcome: BackupOutcome,
    ) -> Result<Option<BackupRecord>, RepositoryError> {
        let mut state = self.lock();
        match state.backups.get_mut(id) {
            Some(record) if record.status == BackupStatus::Pending => {
                outcome.apply(record, Timestamp::now());
                Ok(Some(record.clone()))
            }
            _ => Ok(None),
        }
    }

    async fn delete_backup(&self, id: &BackupId) -> Result<bool, RepositoryError> {
        Ok(self.lock().backups.remove(id).is_some())
    }

    async fn insert_restore(&self, record: &RestoreRecord) -> Result<(), RepositoryError> {
        self.lock()
            .restores
            .insert(record.id.clone(), record.clone());
        Ok(())
    }

    async fn get_restore(&self, id: &BackupId) -> Result<Option<RestoreRecord>, RepositoryError> {
        Ok(self.lock().restores.get(id).cloned())
    }

    async fn open_restores(&self) -> Result<Vec<RestoreRecord>, RepositoryError> {
        let mut list: Vec<RestoreRecord> = self
            .lock()
            .restores
            .values()
            .filter(|r| matches!(r.status, RestoreStatus::Waiting | RestoreStatus::Running))
            .cloned()
            .collect();
        list.sort_by_key(|r| r.created_at);
        Ok(list)
    }

    async fn update_restore(
        &self,
        record: &RestoreRecord,
        from: RestoreStatus,
    ) -> Result<bool, RepositoryError> {
        let mut state = self.lock();
        match state.restores.get_mut(&record.id) {
            Some(current) if current.status == from => {
                *current = record.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
