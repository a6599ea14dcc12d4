//! Store records, their lifecycle states and the events that narrate them.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::spec::{StoreId, StoreSpec};

/// Where a store is in its lifecycle.
///
/// `initialized -> provisioning -> ready`, any of them `-> failed` (with a reason), and
/// `-> deleting -> deleted` (or the record is removed). A ready store may be suspended and
/// resumed: `ready -> suspending -> suspended -> resuming -> ready`, and changed:
/// `ready -> updating -> ready` (or `failed`). A backup is restored into a ready (or failed)
/// store: `-> restoring -> ready` (or `failed`, with the reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreStatus {
    /// Recorded, nothing applied yet.
    Initialized,
    /// Objects are being applied or pods are coming up.
    Provisioning,
    /// MySQL and WordPress report ready and seeding finished.
    Ready,
    /// Provisioning failed; the record carries the reason. A failed store can be retried.
    Failed,
    /// The namespace is being deleted.
    Deleting,
    /// The namespace is gone; the record is kept for the audit trail.
    Deleted,
    /// Its workloads are being scaled to zero; its data, Secrets and quota are kept.
    Suspending,
    /// No pod runs; volumes, Secrets and the quota are kept, and the store's host answers
    /// that it is paused.
    Suspended,
    /// Its workloads are coming back up, with the same data and passwords; the seeding Job
    /// is not run again.
    Resuming,
    /// A change to a ready store (a bigger volume, resources, products, title, currency) is
    /// being applied; it becomes `ready` once its workloads report the change and its
    /// volumes have grown. Its data and passwords are kept.
    Updating,
    /// A backup is being restored into it (its database and files are replaced); it is not
    /// ready meanwhile. Keeps its Secrets: the backup's data is served with them.
    Restoring,
}

impl StoreStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [StoreStatus; 11] = [
        StoreStatus::Initialized,
        StoreStatus::Provisioning,
        StoreStatus::Ready,
        StoreStatus::Failed,
        StoreStatus::Deleting,
        StoreStatus::Deleted,
        StoreStatus::Suspending,
        StoreStatus::Suspended,
        StoreStatus::Resuming,
        StoreStatus::Updating,
        StoreStatus::Restoring,
    ];

    /// The lowercase name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreStatus::Initialized => "initialized",
            StoreStatus::Provisioning => "provisioning",
            StoreStatus::Ready => "ready",
            StoreStatus::Failed => "failed",
            StoreStatus::Deleting => "deleting",
            StoreStatus::Deleted => "deleted",
            StoreStatus::Suspending => "suspending",
            StoreStatus::Suspended => "suspended",
            StoreStatus::Resuming => "resuming",
            StoreStatus::Updating => "updating",
            StoreStatus::Restoring => "restoring",
        }
    }

    /// Whether the store still holds (or is about to hold) cluster resources, and so counts
    /// against its owner's quota.
    pub fn holds_resources(self) -> bool {
        !matches!(self, StoreStatus::Deleted)
    }

    /// Whether a store in this status may move to `next`. Repositories enforce this
    /// atomically, so a transition decided on a stale read (say, `ready` while a delete has
    /// already marked the store `deleting`) cannot overwrite a newer one.
    pub fn can_become(self, next: StoreStatus) -> bool {
        use StoreStatus::*;
        matches!(
            (self, next),
            (Initialized, Provisioning | Failed | Deleting)
                | (Provisioning, Ready | Failed | Deleting)
                // A ready store fails when its namespace vanished (its data is gone).
                | (Ready, Deleting | Failed | Suspending | Updating | Restoring)
                | (Failed, Provisioning | Deleting | Restoring)
                // A restore ends ready, or failed with the reason (partly restored).
                | (Restoring, Ready | Failed | Deleting)
                | (Deleting, Deleted)
                // A suspend can be taken back before it finished.
                | (Suspending, Suspended | Resuming | Deleting | Failed)
                | (Suspended, Resuming | Deleting | Failed)
                | (Resuming, Ready | Failed | Deleting)
                | (Updating, Ready | Failed | Deleting)
        )
    }

    /// Whether a store in this status is to be suspended: its declared workloads at zero
    /// replicas, its host answering that it is paused.
    pub fn wants_suspended(self) -> bool {
        matches!(self, StoreStatus::Suspending | StoreStatus::Suspended)
    }

    /// Whether the store's host answers that it is paused: while it is suspended, and while
    /// it resumes, until its workloads are ready again.
    pub fn is_paused(self) -> bool {
        matches!(
            self,
            StoreStatus::Suspending | StoreStatus::Suspended | StoreStatus::Resuming
        )
    }

    /// Whether the store was ready once in this status, so its generated Secrets hold the
    /// passwords its data was set up with: they are never created anew.
    pub fn was_ready(self) -> bool {
        matches!(
            self,
            StoreStatus::Ready
                | StoreStatus::Suspending
                | StoreStatus::Suspended
                | StoreStatus::Resuming
                | StoreStatus::Updating
                | StoreStatus::Restoring
        )
    }

    /// The statuses from which a store may move to `next`.
    pub fn predecessors(next: StoreStatus) -> Vec<StoreStatus> {
        StoreStatus::ALL
            .into_iter()
            .filter(|from| from.can_become(next))
            .collect()
    }

    /// Whether no further transition happens without a user action.
    pub fn is_settled(self) -> bool {
        matches!(
            self,
            StoreStatus::Ready
                | StoreStatus::Failed
                | StoreStatus::Deleted
                | StoreStatus::Suspended
        )
    }
}

impl fmt::Display for StoreStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not the name of a [`StoreStatus`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown store status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for StoreStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StoreStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// Milliseconds since the Unix epoch; the one clock used by records and events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        Timestamp(i64::try_from(millis).unwrap_or(i64::MAX))
    }
}

/// A store as the platform records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreRecord {
    /// The store's id; its namespace is `store-<id>`.
    pub id: StoreId,
    /// Username of the owner.
    pub owner: String,
    /// Human-friendly name.
    pub name: String,
    /// Lifecycle state.
    pub status: StoreStatus,
    /// Why the store failed (or other context for the status), readable by a person.
    pub reason: Option<String>,
    /// The blueprint the store is rendered from.
    pub blueprint: String,
    /// The full specification. Holds no secrets: passwords live in Kubernetes Secrets.
    pub spec: StoreSpec,
    /// When the record was created.
    pub created_at: Timestamp,
    /// When the record last changed.
    pub updated_at: Timestamp,
    /// The UID of the store's namespace once it was created: a namespace of the same name
    /// with another UID (or none at all) means the store's data is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_uid: Option<String>,
    /// Values chosen at creation for the blueprint's generated Secrets, sealed
    /// ([`crate::seal`]), until the Secrets are created. Never shown to anyone.
    #[serde(default, skip_serializing)]
    pub sealed_inputs: Option<String>,
}

impl StoreRecord {
    /// A fresh record in state `initialized`.
    pub fn new(spec: StoreSpec, name: impl Into<String>, blueprint: impl Into<String>) -> Self {
        let now = Timestamp::now();
        StoreRecord {
            id: spec.id.clone(),
            owner: spec.owner.clone(),
            name: name.into(),
            status: StoreStatus::Initialized,
            reason: None,
            blueprint: blueprint.into(),
            spec,
            created_at: now,
            updated_at: now,
            namespace_uid: None,
            sealed_inputs: None,
        }
    }

    /// Storage the store reserves, in GiB: the WordPress volume plus the MySQL volume.
    pub fn storage_gib(&self) -> u64 {
        self.spec.storage_gib()
    }
}

/// What happened to a store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// The status changed.
    Status {
        /// The new status.
        status: StoreStatus,
        /// Why, when there is something to say.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A provisioning step started, finished or was retried.
    Step {
        /// The step, e.g. `apply Deployment/wordpress`.
        step: String,
        /// Details for a person.
        message: String,
    },
    /// Something worth a person's attention that is not (yet) a failure.
    Warning {
        /// Details for a person.
        message: String,
    },
}

/// The step of the events that record a change of a store's custom domains ("domain
/// shop.example.com added"). Such an event asks the leader to apply the store again, as a
/// status change does: the process that made the change may not be the one reconciling.
pub const DOMAIN_STEP: &str = "domain";

impl EventKind {
    /// Whether this event, recorded by another process, means that the store's objects are
    /// to be applied again: a status change, or a change of its custom domains.
    pub fn asks_for_apply(&self) -> bool {
        match self {
            EventKind::Status { .. } => true,
            EventKind::Step { step, .. } => step == DOMAIN_STEP,
            EventKind::Warning { .. } => false,
        }
    }
}

/// One entry of a store's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreEvent {
    /// Position in the store's history, assigned by the repository (starting at 1).
    pub seq: i64,
    /// The store.
    pub store_id: StoreId,
    /// When it happened.
    pub at: Timestamp,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

impl StoreEvent {
    /// Whether this event moves the store to a status from which no further event follows
    /// without user action.
    pub fn is_terminal(&self) -> bool {
        matches!(&self.kind, EventKind::Status { status, .. } if status.is_settled())
    }
}
