//! The Provisioner: takes stores from a record to ready Kubernetes objects and back, driven
//! by watches, correct under crashes, retries, concurrency and several processes.
//!
//! [`Provisioner::create`], [`Provisioner::delete`], [`Provisioner::retry`],
//! [`Provisioner::suspend`], [`Provisioner::resume`], [`Provisioner::change`],
//! [`Provisioner::add_domain`] and [`Provisioner::remove_domain`] change records and queue
//! work; [`Provisioner::run`] does the work, in the one process that holds the
//! leader Lease. Every step is idempotent (server-side apply under one field manager,
//! Secrets created once), so stopping `run` at any point and starting it again — in this
//! process or another — converges to the same objects.
//!
//! One module per mechanism: [`lifecycle`](self) (create, delete, retry, status changes and
//! events), `change` (changing a ready store), `domains` (custom domains), `queue` (the run
//! loop and its work queue), `watch` (watches, caches and the event filter), `apply`,
//! `reconcile`, `readiness` (pure functions), `state` (per-store runtime state), `leader`
//! (the Lease), `feed` (following other processes through the repository) and `pace`
//! (giving way to requests people wait on).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::mpsc;
use kube::Client;
use kube::runtime::scheduler::ScheduleRequest;
use tokio::sync::broadcast;

use crate::blueprint::{
    BlueprintRegistry, DEFAULT_BLUEPRINT, LABEL_MANAGED_BY, LABEL_STORE, MANAGED_BY, PausedBackend,
    SecretInputs,
};
use crate::port::StoreRepository;
use crate::seal::SealingKey;
use crate::spec::{StoreId, StoreSpec};
use crate::store::StoreEvent;

mod apply;
mod backup;
mod change;
mod domains;
mod feed;
mod leader;
mod lifecycle;
mod pace;
mod queue;
mod readiness;
mod reconcile;
mod restore;
mod state;
mod watch;

pub use backup::{BackupConfig, LABEL_OPERATION};
pub use domains::DOMAIN_STATUSES;
pub use leader::{LeaderConfig, default_identity};
pub use pace::{BUSY_SLOTS, Foreground, ForegroundRequest};

/// Label selector of everything Storefactory manages.
const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=storefactory";

/// How the Provisioner behaves.
#[derive(Debug, Clone)]
pub struct ProvisionerConfig {
    /// Field manager of server-side apply.
    pub field_manager: String,
    /// How long a store may take from `provisioning` to `ready` before it is marked failed.
    pub ready_deadline: Duration,
    /// Blueprint of stores created without one.
    pub default_blueprint: String,
    /// Attempts of one API call on transient errors before the reconcile gives up for now.
    pub max_attempts: u32,
    /// First delay between attempts; doubled each time up to `max_backoff`.
    pub initial_backoff: Duration,
    /// Longest delay between attempts, and between reconciles of a store whose work fails.
    pub max_backoff: Duration,
    /// Most stores reconciled at the same time.
    pub concurrency: usize,
    /// Longest one reconcile may take before it is given up and the store looked at again
    /// after `max_backoff`: an apiserver that accepts connections and never answers must
    /// not hold every reconcile slot. Every step is idempotent, so stopping one anywhere is
    /// safe.
    pub reconcile_timeout: Duration,
    /// Only these stores are reconciled; `None` for all. A command that drives one store
    /// limits itself to it.
    pub only: Option<HashSet<StoreId>>,
    /// Leader election; `None` reconciles without it (one process per repository and
    /// cluster, e.g. tests and embedders that know they are alone).
    pub leader: Option<LeaderConfig>,
    /// Seals values chosen at creation until they are in the store's Secrets. Processes
    /// sharing a repository must share the key; the default is random per process, so chosen
    /// values do not survive its restart.
    pub sealing_key: SealingKey,
    /// How often the repository's event feed is read for what other processes did.
    pub feed_interval: Duration,
    /// Told how long each reconcile took (for a service's figures); none by default.
    pub on_reconcile: Option<ReconcileHook>,
    /// Where the host of a suspended store is sent (templates see it as
    /// `paused_backend`): the platform's own Service, which answers a paused store's host
    /// with a "store paused" page. `None` (the default): a suspended store's Ingress keeps
    /// its backend, and the ingress controller answers its own 503. Every process sharing a
    /// repository must use the same value.
    pub paused_backend: Option<PausedBackend>,
    /// Backups: where store Jobs hand their archives over, where the archives are kept, and
    /// the schedule. Nothing by default (stores cannot be backed up).
    pub backups: BackupConfig,
    /// Requests people wait on (a server's API): while any is in flight, new reconciles
    /// start in [`BUSY_SLOTS`] slots only. Counts nothing by default.
    pub foreground: Foreground,
}

/// A function told the duration of every reconcile, e.g. to feed a histogram. It runs on the
/// reconciling task: it must be quick and must not block.
#[derive(Clone)]
pub struct ReconcileHook(pub Arc<dyn Fn(Duration) + Send + Sync>);

impl std::fmt::Debug for ReconcileHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReconcileHook")
    }
}

/// Work in the reconciler's hands right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    /// Stores taken from the queue that wait for one of the `concurrency` slots.
    pub waiting: usize,
    /// Stores being reconciled.
    pub running: usize,
}

impl Default for ProvisionerConfig {
    fn default() -> Self {
        ProvisionerConfig {
            field_manager: "storefactory".to_owned(),
            ready_deadline: Duration::from_secs(15 * 60),
            default_blueprint: DEFAULT_BLUEPRINT.to_owned(),
            max_attempts: 6,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            concurrency: 16,
            reconcile_timeout: Duration::from_secs(120),
            only: None,
            leader: Some(LeaderConfig::default()),
            sealing_key: SealingKey::random(),
            feed_interval: Duration::from_millis(500),
            on_reconcile: None,
            paused_backend: None,
            backups: BackupConfig::default(),
            foreground: Foreground::default(),
        }
    }
}

/// A request for a new store.
#[derive(Debug, Clone)]
pub struct CreateStore {
    /// What to build.
    pub spec: StoreSpec,
    /// A name for people; the id when empty.
    pub name: String,
    /// The blueprint; the configured default when `None`.
    pub blueprint: Option<String>,
    /// Values chosen for inputs the blueprint's generated Secrets declare (for the
    /// built-in blueprint, `admin_password`); the rest are generated. Kept sealed until the
    /// Secrets exist.
    pub inputs: SecretInputs,
}

impl CreateStore {
    /// A request for `spec` with the default blueprint and generated secrets.
    pub fn new(spec: StoreSpec) -> Self {
        CreateStore {
            spec,
            name: String::new(),
            blueprint: None,
            inputs: SecretInputs::none(),
        }
    }
}

/// The credentials a store's blueprint shows its owner.
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
    /// Where to log in.
    pub admin_url: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("admin_url", &self.admin_url)
            .finish_non_exhaustive()
    }
}

/// What a reconcile asks for next, like kube-runtime's `Action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing until a watch event or a user action.
    AwaitChange,
    /// Look again after this long (a deadline, or a backoff after an error).
    RequeueAfter(Duration),
}

struct Inner {
    client: Client,
    repo: Arc<dyn StoreRepository>,
    blueprints: Arc<BlueprintRegistry>,
    config: ProvisionerConfig,
    events: broadcast::Sender<StoreEvent>,
    states: state::States,
    /// The work queue while this process reconciles (it leads); `None` otherwise.
    queue: Mutex<Option<mpsc::UnboundedSender<ScheduleRequest<StoreId>>>>,
    /// The watches' caches while this process reconciles.
    caches: Mutex<Option<watch::Caches>>,
    /// Renders running at once: one per core ([`Provisioner::render`]).
    render_turns: Arc<tokio::sync::Semaphore>,
    /// Events this process recorded that the feed has not passed yet.
    own_events: feed::OwnEvents,
    /// Whether `run` is active.
    running: std::sync::atomic::AtomicBool,
    /// Reconciles waiting for a slot, and holding one.
    waiting: std::sync::atomic::AtomicUsize,
    reconciling: std::sync::atomic::AtomicUsize,
}

/// Creates, watches and deletes stores. Cheap to clone.
#[derive(Clone)]
pub struct Provisioner {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Provisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provisioner")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Provisioner {
    /// A Provisioner working through `client`, recording in `repo`.
    pub fn new(
        client: Client,
        repo: Arc<dyn StoreRepository>,
        blueprints: Arc<BlueprintRegistry>,
        config: ProvisionerConfig,
    ) -> Self {
        let (events, _) = broadcast::channel(1024);
        Provisioner {
            inner: Arc::new(Inner {
                client,
                repo,
                blueprints,
                config,
                events,
                states: state::States::default(),
                queue: Mutex::new(None),
                caches: Mutex::new(None),
                render_turns: Arc::new(tokio::sync::Semaphore::new(
                    std::thread::available_parallelism().map_or(2, |n| n.get()),
                )),
                own_events: feed::OwnEvents::default(),
                running: std::sync::atomic::AtomicBool::new(false),
                waiting: std::sync::atomic::AtomicUsize::new(0),
                reconciling: std::sync::atomic::AtomicUsize::new(0),
            }),
        }
    }

    /// The storage the Provisioner records in.
    pub fn repository(&self) -> &Arc<dyn StoreRepository> {
        &self.inner.repo
    }

    /// The blueprints stores are rendered from.
    pub fn blueprints(&self) -> &Arc<BlueprintRegistry> {
        &self.inner.blueprints
    }

    /// The Kubernetes client.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// Every event recorded from now on — by this process, and, while [`Provisioner::run`]
    /// is active, by other processes sharing the repository — as it is recorded.
    ///
    /// Events of one store recorded at the same moment by two operations (a reconcile and
    /// a deletion, say) may arrive out of order; their `seq` gives the order, and the
    /// repository holds them all.
    pub fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.inner.events.subscribe()
    }

    /// Whether this process reconciles stores right now (it holds the leader Lease, or runs
    /// without election).
    pub fn is_leading(&self) -> bool {
        lock(&self.inner.queue).is_some()
    }

    /// Reconciles waiting for a slot and running, in this process.
    pub fn queue_depth(&self) -> QueueDepth {
        use std::sync::atomic::Ordering::Relaxed;
        QueueDepth {
            waiting: self.inner.waiting.load(Relaxed),
            running: self.inner.reconciling.load(Relaxed),
        }
    }

    /// How many stores this process keeps runtime state for (for figures and tests: it falls
    /// back when stores are deleted).
    pub fn tracked_stores(&self) -> usize {
        self.inner.states.len()
    }

    fn in_scope(&self, id: &StoreId) -> bool {
        self.inner
            .config
            .only
            .as_ref()
            .is_none_or(|only| only.contains(id))
    }
}

/// An error with its causes, on one line, for people.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Labels of a store's objects by which it can be found: `managed-by` and `store`.
pub fn store_selector(id: &StoreId) -> String {
    format!("{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_STORE}={id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_use_the_blueprint_labels() {
        assert_eq!(MANAGED_SELECTOR, format!("{LABEL_MANAGED_BY}={MANAGED_BY}"));
        let id = StoreId::new("ab12").unwrap();
        assert_eq!(
            store_selector(&id),
            "app.kubernetes.io/managed-by=storefactory,storefactory.io/store=ab12"
        );
    }

    #[test]
    fn statuses_follow_the_lifecycle() {
        use crate::store::StoreStatus::*;
        assert!(Initialized.can_become(Provisioning));
        assert!(Provisioning.can_become(Ready));
        assert!(Failed.can_become(Provisioning));
        assert!(Deleting.can_become(Deleted));
        for undoes_a_delete in [Ready, Provisioning, Failed, Initialized] {
            assert!(!Deleting.can_become(undoes_a_delete));
        }
        assert!(!Deleted.can_become(Deleting));
        assert_eq!(crate::store::StoreStatus::predecessors(Deleted), [Deleting]);
        // Only a ready store is suspended; a suspend can be taken back before it finished.
        assert_eq!(crate::store::StoreStatus::predecessors(Suspending), [Ready]);
        assert_eq!(
            crate::store::StoreStatus::predecessors(Resuming),
            [Suspending, Suspended]
        );
        assert!(Suspending.can_become(Suspended) && Resuming.can_become(Ready));
        for status in [Suspending, Suspended, Resuming] {
            assert!(status.can_become(Deleting) && status.can_become(Failed));
            assert!(!Deleting.can_become(status), "{status} undoes a delete");
        }
        // A decision taken on an old read cannot undo a resume.
        assert!(!Resuming.can_become(Suspended));
        assert!(Suspended.is_settled() && !Suspending.is_settled() && !Resuming.is_settled());
        assert!(
            Suspended.holds_resources(),
            "a suspended store keeps its quota"
        );
        // A restore starts from a ready or failed store and ends ready or failed.
        assert_eq!(
            crate::store::StoreStatus::predecessors(Restoring),
            [Ready, Failed]
        );
        assert!(Restoring.can_become(Ready) && Restoring.can_become(Failed));
        assert!(Restoring.was_ready(), "a restoring store keeps its Secrets");
        assert!(!Restoring.is_settled());
    }
}
