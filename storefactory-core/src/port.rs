//! Ports: the traits the edges (SQLite, memory, ...) implement for the Provisioner.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::RepositoryError;
use crate::spec::StoreId;
use crate::store::{EventKind, StoreEvent, StoreRecord, StoreStatus, Timestamp};

/// How many stores and how much storage an owner may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    /// Most stores that may exist at once (deleted ones do not count).
    pub max_stores: u32,
    /// Most storage, in GiB, over the WordPress and MySQL volumes of all those stores.
    pub max_storage_gib: u64,
}

impl Default for Quota {
    fn default() -> Self {
        Quota {
            max_stores: 5,
            max_storage_gib: 20,
        }
    }
}

/// What an owner currently holds, as counted against a [`Quota`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Stores not yet deleted.
    pub stores: u32,
    /// Storage of those stores, in GiB.
    pub storage_gib: u64,
}

impl Usage {
    /// Why adding a store of `storage_gib` to this usage would exceed `quota`, if it would.
    pub fn exceeds(&self, quota: &Quota, storage_gib: u64) -> Option<String> {
        if self.stores >= quota.max_stores {
            return Some(format!(
                "store limit reached: {} of {} stores in use",
                self.stores, quota.max_stores
            ));
        }
        let wanted = self.storage_gib.saturating_add(storage_gib);
        if wanted > quota.max_storage_gib {
            return Some(format!(
                "storage limit reached: {} GiB in use, {} GiB requested, {} GiB allowed",
                self.storage_gib, storage_gib, quota.max_storage_gib
            ));
        }
        None
    }

    /// Why growing one of the owner's stores from `from_gib` to `to_gib` of storage would
    /// exceed `quota`, if it would. The store is already counted, so only the storage limit
    /// applies, and only to growth.
    pub fn exceeds_on_growth(&self, quota: &Quota, from_gib: u64, to_gib: u64) -> Option<String> {
        let more = to_gib.saturating_sub(from_gib);
        let wanted = self.storage_gib.saturating_add(more);
        (more > 0 && wanted > quota.max_storage_gib).then(|| {
            format!(
                "storage limit reached: {} GiB in use, {more} GiB more requested, {} GiB allowed",
                self.storage_gib, quota.max_storage_gib
            )
        })
    }
}

/// A change of a store's custom domains ([`StoreRepository::change_domain`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainChange {
    /// Add this domain (normalised, see [`crate::spec::normalize_domain`]).
    Add(String),
    /// Remove this domain.
    Remove(String),
}

impl DomainChange {
    /// The domain added or removed.
    pub fn host(&self) -> &str {
        match self {
            DomainChange::Add(host) | DomainChange::Remove(host) => host,
        }
    }
}

/// Which stores a listing returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreFilter {
    /// Only this owner's stores; `None` for everyone's.
    pub owner: Option<String>,
    /// Whether records kept for the audit trail (status `deleted`) are included.
    pub include_deleted: bool,
}

impl StoreFilter {
    /// The live stores of one owner.
    pub fn owner(owner: impl Into<String>) -> Self {
        StoreFilter {
            owner: Some(owner.into()),
            include_deleted: false,
        }
    }

    /// Whether `record` passes this filter.
    pub fn matches(&self, record: &StoreRecord) -> bool {
        self.owner.as_ref().is_none_or(|o| *o == record.owner)
            && (self.include_deleted || record.status != StoreStatus::Deleted)
    }
}

/// Storage of store records and their events: the port the Provisioner is built on.
///
/// Implementations must be safe to call concurrently from many tasks, and must not block the
/// async runtime's worker threads.
#[async_trait]
pub trait StoreRepository: Send + Sync + 'static {
    /// Records a new store.
    ///
    /// This is the quota hook: an implementation that knows owners' quotas checks the owner's
    /// usage and inserts the record in one atomic step, failing with
    /// [`RepositoryError::QuotaExceeded`]. A record with the same id that is not `deleted`
    /// gives [`RepositoryError::AlreadyExists`].
    async fn insert_store(&self, record: &StoreRecord) -> Result<(), RepositoryError>;

    /// Records a new store ([`StoreRepository::insert_store`]) with its first event, and
    /// returns the event. A repository that can should do both in one atomic step, so that
    /// no store is ever without its first event; this default does one after the other.
    async fn create_store(
        &self,
        record: &StoreRecord,
        at: Timestamp,
        kind: &EventKind,
    ) -> Result<StoreEvent, RepositoryError> {
        self.insert_store(record).await?;
        self.append_event(&record.id, at, kind).await
    }

    /// One store, deleted ones included.
    async fn get_store(&self, id: &StoreId) -> Result<Option<StoreRecord>, RepositoryError>;

    /// Stores passing `filter`, oldest first.
    async fn list_stores(&self, filter: &StoreFilter) -> Result<Vec<StoreRecord>, RepositoryError>;

    /// Sets the status and reason of a store and returns the updated record.
    ///
    /// The change is atomic and only allowed along the lifecycle
    /// ([`StoreStatus::can_become`]); otherwise it fails with
    /// [`RepositoryError::InvalidTransition`] and changes nothing.
    async fn set_status(
        &self,
        id: &StoreId,
        status: StoreStatus,
        reason: Option<&str>,
    ) -> Result<StoreRecord, RepositoryError>;

    /// Adds or removes one custom domain of a store (in `spec.ingress.domains`) and appends
    /// `event` to its history, in one atomic step, if its status is one of `allowed`; returns
    /// the updated record and the event. Adding a domain the store already has changes
    /// nothing and appends nothing (the event is `None`).
    ///
    /// Custom domains are unique across the stores that are not `deleted`, including their
    /// own hosts, and two concurrent changes cannot both take one domain: a domain held
    /// elsewhere gives [`RepositoryError::DomainTaken`]. A store holds at most
    /// [`crate::spec::MAX_DOMAINS`] ([`RepositoryError::DomainLimit`]); removing a domain it
    /// does not have gives [`RepositoryError::DomainNotFound`], a status not in `allowed`
    /// [`RepositoryError::WrongStatus`]. A refused change changes nothing. A store's domains
    /// are released when it becomes `deleted`, and [`StoreRepository::insert_store`] refuses
    /// a store whose host or domains another store holds in the same way.
    async fn change_domain(
        &self,
        id: &StoreId,
        change: &DomainChange,
        allowed: &[StoreStatus],
        at: Timestamp,
        event: &EventKind,
    ) -> Result<(StoreRecord, Option<StoreEvent>), RepositoryError>;

    /// Records a changed spec of the store and sets its status and reason, in one atomic
    /// step: only along the lifecycle, as [`StoreStatus::can_become`] allows (failing with
    /// [`RepositoryError::InvalidTransition`]), and, for an implementation that knows
    /// owners' quotas, only if the owner's storage quota holds the store's new storage
    /// (failing with [`RepositoryError::QuotaExceeded`]). A refused change changes
    /// nothing. Returns the updated record.
    async fn change_spec(
        &self,
        id: &StoreId,
        spec: &crate::spec::StoreSpec,
        status: StoreStatus,
        reason: Option<&str>,
    ) -> Result<StoreRecord, RepositoryError>;

    /// Records the UID of the store's namespace.
    async fn set_namespace_uid(&self, id: &StoreId, uid: &str) -> Result<(), RepositoryError>;

    /// Forgets the store's sealed inputs: its Secrets hold them now.
    async fn clear_sealed_inputs(&self, id: &StoreId) -> Result<(), RepositoryError>;

    /// Appends an event to the store's history and returns it with its sequence number.
    async fn append_event(
        &self,
        id: &StoreId,
        at: Timestamp,
        kind: &EventKind,
    ) -> Result<StoreEvent, RepositoryError>;

    /// The store's events with a sequence number greater than `after_seq`, in order.
    async fn events(
        &self,
        id: &StoreId,
        after_seq: i64,
    ) -> Result<Vec<StoreEvent>, RepositoryError>;

    /// Everyone's events after position `after` of the feed, in the order they were
    /// recorded, at most `limit`, each with its position. Processes sharing a repository
    /// follow each other through it: the leader learns of stores created by other replicas,
    /// and they of its progress. Positions only grow; `0` is before the first event.
    async fn feed(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, StoreEvent)>, RepositoryError>;

    /// The position of the newest event of the feed (`0` when there is none).
    async fn feed_head(&self) -> Result<i64, RepositoryError>;

    /// Where this repository keeps backup records, if it keeps them; `None` (the default)
    /// means stores recorded here cannot be backed up.
    fn backups(&self) -> Option<&dyn crate::backup::BackupRepository> {
        None
    }
}
