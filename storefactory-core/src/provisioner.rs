//! The Provisioner: takes stores from a record to ready Kubernetes objects and back, driven
//! by watches, correct under crashes, retries and concurrency.
//!
//! [`Provisioner::create`], [`Provisioner::delete`] and [`Provisioner::retry`] only change
//! records and queue work; [`Provisioner::run`] does the work. Every step of the work is
//! idempotent (server-side apply under one field manager), so stopping `run` at any point and
//! starting it again — in this process or another — converges to the same objects.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams,
    PropagationPolicy,
};
use kube::core::GroupVersionKind;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::{Semaphore, broadcast, mpsc};
use tokio::task::JoinSet;

use crate::blueprint::{
    BlueprintRegistry, DEFAULT_BLUEPRINT, LABEL_MANAGED_BY, LABEL_STORE, MANAGED_BY, StoreSecrets,
    validate_admin_password,
};
use crate::error::{Error, RepositoryError, Result, kube_error_is_transient};
use crate::manifest::Manifest;
use crate::port::{StoreFilter, StoreRepository};
use crate::spec::{StoreId, StoreSpec};
use crate::store::{EventKind, StoreEvent, StoreRecord, StoreStatus, Timestamp};

/// Name of the Secret holding MySQL's passwords (keys `root-password`, `password`).
pub const MYSQL_SECRET: &str = "mysql";
/// Name of the Secret holding the WordPress administrator (keys `username`, `password`).
pub const ADMIN_SECRET: &str = "wordpress-admin";
/// Label selector of everything Storefactory manages.
const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=storefactory";

/// Name of the seeding Job.
pub const SEED_JOB: &str = "seed";

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
    /// Only these stores are reconciled; `None` for all. A command that drives one store
    /// while a server may be running elsewhere limits itself to that store.
    pub only: Option<HashSet<StoreId>>,
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
            only: None,
        }
    }
}

/// A request for a new store.
#[derive(Clone)]
pub struct CreateStore {
    /// What to build.
    pub spec: StoreSpec,
    /// A name for people; the id when empty.
    pub name: String,
    /// The blueprint; the configured default when `None`.
    pub blueprint: Option<String>,
    /// The WordPress administrator's password; generated when `None`. Kept in memory only
    /// until it is written to the store's Secret.
    pub admin_password: Option<String>,
}

impl std::fmt::Debug for CreateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateStore")
            .field("spec", &self.spec)
            .field("name", &self.name)
            .field("blueprint", &self.blueprint)
            .field(
                "admin_password",
                &self.admin_password.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// The WordPress administrator's credentials of a store.
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
pub struct Credentials {
    /// Administrator user name.
    pub username: String,
    /// Administrator password.
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

/// What the watches saw of a store's workloads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Progress {
    mysql_ready: bool,
    wordpress_ready: bool,
    seeded: bool,
}

struct Inner {
    client: Client,
    repo: Arc<dyn StoreRepository>,
    blueprints: Arc<BlueprintRegistry>,
    config: ProvisionerConfig,
    events: broadcast::Sender<StoreEvent>,
    queue_tx: mpsc::UnboundedSender<StoreId>,
    queue_rx: Mutex<Option<mpsc::UnboundedReceiver<StoreId>>>,
    admin_passwords: Mutex<HashMap<StoreId, String>>,
    progress: Mutex<HashMap<StoreId, Progress>>,
    /// Stores whose objects this process has applied since it started provisioning them;
    /// later reconciles of the same pass only observe. A deleted child clears the mark.
    applied: Mutex<HashMap<StoreId, Workloads>>,
    /// Warnings already recorded, so a condition that persists is reported once.
    warned: Mutex<HashSet<(StoreId, String)>>,
    /// The last version of each object this process applied or saw, to tell its own echoes
    /// and status-only changes from changes that need the store re-applied.
    seen: Mutex<HashMap<String, Seen>>,
    /// Objects being applied right now: their watch events may arrive before the apply's
    /// response tells which version is ours.
    in_flight: Mutex<HashMap<String, usize>>,
    /// Ready stores woken by something that may need their objects re-applied (a change by
    /// someone else, a deletion, a restart); status-only wake-ups only observe.
    /// (Each request bumps the store's count, so one arriving during an apply is not lost.)
    needs_apply: Mutex<HashMap<StoreId, u64>>,
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
        let (queue_tx, queue_rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(1024);
        Provisioner {
            inner: Arc::new(Inner {
                client,
                repo,
                blueprints,
                config,
                events,
                queue_tx,
                queue_rx: Mutex::new(Some(queue_rx)),
                admin_passwords: Mutex::new(HashMap::new()),
                progress: Mutex::new(HashMap::new()),
                applied: Mutex::new(HashMap::new()),
                warned: Mutex::new(HashSet::new()),
                seen: Mutex::new(HashMap::new()),
                in_flight: Mutex::new(HashMap::new()),
                needs_apply: Mutex::new(HashMap::new()),
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

    /// Every event recorded from now on, as it is recorded.
    pub fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.inner.events.subscribe()
    }

    /// Validates the request, renders it once to catch template errors, records the store as
    /// `initialized` and queues its provisioning. Returns at once.
    ///
    /// The repository's insert is the quota hook: it fails with
    /// [`crate::error::RepositoryError::QuotaExceeded`] when the owner has no room.
    pub async fn create(&self, request: CreateStore) -> Result<StoreRecord> {
        let CreateStore {
            spec,
            name,
            blueprint,
            admin_password,
        } = request;
        if let Some(password) = &admin_password {
            validate_admin_password(password)?;
        }
        let blueprint = blueprint.unwrap_or_else(|| self.inner.config.default_blueprint.clone());
        // Rendering validates the spec and proves the blueprint works for it before anything
        // is recorded; the throwaway secrets are never used.
        self.inner
            .blueprints
            .render(&blueprint, &spec, &StoreSecrets::generate(None))?;
        let name = if name.trim().is_empty() {
            spec.id.to_string()
        } else {
            name.trim().to_owned()
        };
        let record = StoreRecord::new(spec, name, blueprint);
        self.inner.repo.insert_store(&record).await?;
        if let Some(password) = admin_password {
            lock(&self.inner.admin_passwords).insert(record.id.clone(), password);
        }
        self.record(
            &record.id,
            EventKind::Status {
                status: StoreStatus::Initialized,
                reason: None,
            },
        )
        .await?;
        self.enqueue(&record.id);
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

    /// Provisions a failed store again: its seeding Job is replaced and the deadline starts
    /// anew.
    pub async fn retry(&self, id: &StoreId) -> Result<StoreRecord> {
        let record = self.live_record(id).await?;
        if record.status != StoreStatus::Failed {
            return Err(Error::InvalidState {
                id: id.clone(),
                status: record.status,
                operation: "retry (only failed stores can be retried)",
            });
        }
        let jobs: Api<Job> = Api::namespaced(self.inner.client.clone(), &id.namespace());
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        match jobs.delete(SEED_JOB, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => {
                return Err(Error::Kube {
                    operation: format!("delete Job {}/{SEED_JOB}", id.namespace()),
                    source,
                });
            }
        }
        lock(&self.inner.progress).remove(id);
        let record = self
            .transition(id, StoreStatus::Provisioning, Some("retried"))
            .await?;
        self.enqueue(id);
        Ok(record)
    }

    /// The WordPress administrator's credentials, read from the store's Secret.
    pub async fn credentials(&self, id: &StoreId) -> Result<Credentials> {
        let record = self.live_record(id).await?;
        let secrets: Api<Secret> = Api::namespaced(self.inner.client.clone(), &id.namespace());
        let secret = match secrets.get_opt(ADMIN_SECRET).await {
            Ok(Some(secret)) => secret,
            Ok(None) => {
                return Err(Error::InvalidState {
                    id: id.clone(),
                    status: record.status,
                    operation: "read credentials (not created yet)",
                });
            }
            Err(source) => {
                return Err(Error::Kube {
                    operation: format!("read Secret {}/{ADMIN_SECRET}", id.namespace()),
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
            username: field("username"),
            password: field("password"),
            admin_url: format!("{}wp-admin/", record.spec.url()),
        })
    }

    async fn live_record(&self, id: &StoreId) -> Result<StoreRecord> {
        match self.inner.repo.get_store(id).await? {
            Some(record) if record.status != StoreStatus::Deleted => Ok(record),
            _ => Err(Error::StoreNotFound { id: id.clone() }),
        }
    }

    fn in_scope(&self, id: &StoreId) -> bool {
        self.inner
            .config
            .only
            .as_ref()
            .is_none_or(|only| only.contains(id))
    }

    /// Queues the store for a reconcile that re-applies a ready store's objects.
    fn enqueue(&self, id: &StoreId) {
        if !self.in_scope(id) {
            return;
        }
        *lock(&self.inner.needs_apply).entry(id.clone()).or_default() += 1;
        // A store still provisioning applies again on its next pass, too.
        lock(&self.inner.applied).remove(id);
        self.wake(id);
    }

    /// Queues the store for a reconcile that only looks at its progress (a status change).
    fn wake(&self, id: &StoreId) {
        if !self.in_scope(id) {
            return;
        }
        // The receiver lives as long as `run`; before `run` starts, ids wait in the channel.
        let _ = self.inner.queue_tx.send(id.clone());
    }

    async fn record(&self, id: &StoreId, kind: EventKind) -> Result<StoreEvent> {
        let event = self
            .inner
            .repo
            .append_event(id, Timestamp::now(), &kind)
            .await?;
        let _ = self.inner.events.send(event.clone());
        Ok(event)
    }

    async fn step(&self, id: &StoreId, step: &str, message: impl Into<String>) -> Result<()> {
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

    async fn transition(
        &self,
        id: &StoreId,
        status: StoreStatus,
        reason: Option<&str>,
    ) -> Result<StoreRecord> {
        let record = self.inner.repo.set_status(id, status, reason).await?;
        if status != StoreStatus::Provisioning {
            lock(&self.inner.applied).remove(id);
        }

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

    /// Runs the reconciler until the future is dropped: compares records with the cluster
    /// once, then reconciles stores as watch events, user actions and deadlines call for.
    ///
    /// Only one `run` may be active per Provisioner; a second call returns at once.
    pub async fn run(&self) -> Result<()> {
        let Some(queue) = lock(&self.inner.queue_rx).take() else {
            tracing::warn!("Provisioner::run called twice; the second call does nothing");
            return Ok(());
        };
        // Whether `run` returns or is dropped (an aborted task), the queue goes back so that a
        // later `run` on this Provisioner resumes with the work still queued.
        let mut guard = QueueGuard {
            inner: self.inner.clone(),
            queue: Some(queue),
        };
        let Some(queue) = guard.queue.as_mut() else {
            return Ok(());
        };
        self.run_with(queue).await
    }

    async fn run_with(&self, queue: &mut mpsc::UnboundedReceiver<StoreId>) -> Result<()> {
        let mut background = JoinSet::new();
        self.spawn_watches(&mut background);
        self.startup_pass().await;

        let semaphore = Arc::new(Semaphore::new(self.inner.config.concurrency.max(1)));
        let mut running: HashSet<StoreId> = HashSet::new();
        let mut dirty: HashSet<StoreId> = HashSet::new();
        let mut reconciles: JoinSet<(StoreId, Outcome)> = JoinSet::new();
        let mut tasks: HashMap<tokio::task::Id, StoreId> = HashMap::new();
        loop {
            tokio::select! {
                Some(id) = queue.recv() => {
                    if running.contains(&id) {
                        dirty.insert(id);
                        continue;
                    }
                    running.insert(id.clone());
                    let this = self.clone();
                    let semaphore = semaphore.clone();
                    let task_id = id.clone();
                    let handle = reconciles.spawn(async move {
                        let _permit = semaphore.acquire_owned().await;
                        let outcome = this.reconcile_logged(&id).await;
                        (id, outcome)
                    });
                    tasks.insert(handle.id(), task_id);
                }
                Some(done) = reconciles.join_next_with_id() => {
                    let (id, outcome) = match done {
                        Ok((task, result)) => {
                            tasks.remove(&task);
                            result
                        }
                        Err(error) => {
                            // A panicking reconcile must not leave its store marked running
                            // for ever: forget it and look again after a backoff.
                            let Some(id) = tasks.remove(&error.id()) else { continue };
                            tracing::error!(store = %id, %error, "reconcile panicked");
                            (id, Outcome::RequeueAfter(self.inner.config.max_backoff))
                        }
                    };
                    running.remove(&id);
                    if dirty.remove(&id) {
                        // Whoever marked it dirty recorded whether it needs applying.
                        self.wake(&id);
                    } else if let Outcome::RequeueAfter(delay) = outcome {
                        let tx = self.inner.queue_tx.clone();
                        background.spawn(async move {
                            tokio::time::sleep(delay).await;
                            let _ = tx.send(id);
                        });
                    }
                }
                Some(_) = background.join_next() => {}
            }
        }
    }

    /// Compares records with labelled namespaces: queues every store with work in flight, and
    /// reports namespaces without a record and records without a namespace.
    async fn startup_pass(&self) {
        let records = match self
            .inner
            .repo
            .list_stores(&StoreFilter {
                owner: None,
                include_deleted: false,
            })
            .await
        {
            Ok(records) => records,
            Err(error) => {
                tracing::error!(%error, "cannot list stores; relying on watches alone");
                return;
            }
        };
        let namespaces: Api<Namespace> = Api::all(self.inner.client.clone());
        let params = ListParams::default().labels(MANAGED_SELECTOR);
        let existing: Option<HashSet<String>> = match namespaces.list(&params).await {
            Ok(list) => Some(list.items.iter().map(|n| n.name_any()).collect()),
            Err(error) => {
                tracing::warn!(%error, "cannot list store namespaces at start; will retry through watches");
                None
            }
        };
        let known: HashSet<String> = records.iter().map(|r| r.id.namespace()).collect();
        for record in records.iter().filter(|r| self.in_scope(&r.id)) {
            let has_namespace = existing
                .as_ref()
                .is_none_or(|e| e.contains(&record.id.namespace()));
            if !has_namespace && record.status == StoreStatus::Ready {
                tracing::warn!(store = %record.id, "ready store has no namespace; re-creating it");
                let _ = self
                    .record(
                        &record.id,
                        EventKind::Warning {
                            message: format!(
                                "namespace {} was missing at start; re-creating the store's objects",
                                record.id.namespace()
                            ),
                        },
                    )
                    .await;
            }
            if record.status != StoreStatus::Failed {
                self.enqueue(&record.id);
            }
        }
        let scoped = self.inner.config.only.is_some();
        for namespace in existing.iter().flatten().filter(|_| !scoped) {
            if !known.contains(namespace) {
                tracing::warn!(
                    namespace,
                    "namespace labelled as managed by storefactory has no store record; leaving it alone"
                );
            }
        }
    }

    fn spawn_watches(&self, set: &mut JoinSet<()>) {
        // Objects we apply are watched untyped, so that what a watch event carries and what
        // an apply returns are compared in the same form (see `fingerprint`).
        self.watch::<Pod>(set);
        for kind in Manifest::KINDS {
            self.watch_dynamic(kind, set);
        }
    }

    fn watch<K>(&self, set: &mut JoinSet<()>)
    where
        K: Resource<DynamicType = ()>
            + Clone
            + DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug
            + Send
            + Sync
            + 'static,
    {
        let api: Api<K> = Api::all(self.inner.client.clone());
        let kind = K::kind(&()).to_string();
        self.spawn_watch(
            set,
            kind,
            watcher(api, self.watch_config()).default_backoff().boxed(),
        );
    }

    fn watch_dynamic(&self, kind: &str, set: &mut JoinSet<()>) {
        let Some(resource) = api_resource_of_kind(kind) else {
            return;
        };
        let api: Api<DynamicObject> = Api::all_with(self.inner.client.clone(), &resource);
        self.spawn_watch(
            set,
            kind.to_owned(),
            watcher(api, self.watch_config()).default_backoff().boxed(),
        );
    }

    fn watch_config(&self) -> watcher::Config {
        watcher::Config::default().labels(MANAGED_SELECTOR)
    }

    fn spawn_watch<K>(
        &self,
        set: &mut JoinSet<()>,
        kind: String,
        mut stream: futures::stream::BoxStream<'static, watcher::Result<watcher::Event<K>>>,
    ) where
        K: Resource + serde::Serialize + Send + 'static,
    {
        let this = self.clone();
        set.spawn(async move {
            while let Some(event) = stream.next().await {
                match event {
                    Ok(watcher::Event::Apply(obj) | watcher::Event::InitApply(obj)) => {
                        if let Some(id) = store_of(&obj) {
                            match this.classify(&kind, obj.meta(), || fingerprint(&obj)) {
                                Wake::Ignore => {}
                                Wake::Progress => this.wake(&id),
                                Wake::Apply => this.enqueue(&id),
                            }
                        }
                    }
                    Ok(watcher::Event::Delete(obj)) => {
                        if let Some(id) = store_of(&obj) {
                            if kind != "Pod" && kind != "Namespace" {
                                this.note_deleted_child(&id, &kind, &obj.name_any()).await;
                            }
                            this.enqueue(&id);
                        }
                    }
                    Ok(_) => {}
                    Err(error) => tracing::debug!(%kind, %error, "watch interrupted; resuming"),
                }
            }
        });
    }

    /// What a watch event of a store's object calls for. Our own applies come back as events
    /// (and on Kubernetes 1.20 some applies that change nothing still bump the resource
    /// version of StatefulSets and Ingresses): those are ignored, or a ready store would
    /// re-apply itself for ever. Changes that leave everything but status and metadata as it
    /// was (controllers writing status), and pods, only move progress; anything else may be
    /// drift, so the store is re-applied.
    fn classify(&self, kind: &str, meta: &ObjectMeta, content: impl FnOnce() -> u64) -> Wake {
        if kind == "Pod" {
            return Wake::Progress;
        }
        let key = object_key(kind, meta);
        let mut seen = lock(&self.inner.seen);
        let previous = seen.get(&key);
        if meta.resource_version.is_some()
            && previous.is_some_and(|p| p.resource_version == meta.resource_version)
        {
            return Wake::Ignore;
        }
        let content = content();
        // During our own apply of the object, its events are ours (a change by someone else
        // in that moment is overwritten by the apply anyway).
        let ours = lock(&self.inner.in_flight).contains_key(&key);
        let unchanged = ours || previous.is_some_and(|p| p.content == content);
        seen.insert(
            key,
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
    }

    /// Records that a child of a ready store was deleted; the caller queues the store for
    /// re-applying.
    async fn note_deleted_child(&self, id: &StoreId, kind: &str, name: &str) {
        // A deleted Secret is not simply restored (see `secrets_for`); the re-apply says what
        // happens to it.
        if let Ok(Some(record)) = self.inner.repo.get_store(id).await
            && record.status == StoreStatus::Ready
            && kind != "Secret"
        {
            let _ = self
                .record(
                    id,
                    EventKind::Warning {
                        message: format!("{kind}/{name} was deleted; restoring it"),
                    },
                )
                .await;
        }
    }

    async fn reconcile_logged(&self, id: &StoreId) -> Outcome {
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
                        StoreStatus::Initialized | StoreStatus::Provisioning
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
                if let Ok(Some(record)) = self.inner.repo.get_store(id).await
                    && matches!(
                        record.status,
                        StoreStatus::Initialized | StoreStatus::Provisioning
                    )
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
    pub async fn reconcile(&self, id: &StoreId) -> Result<Outcome> {
        let Some(record) = self.inner.repo.get_store(id).await? else {
            return Ok(Outcome::AwaitChange);
        };
        match record.status {
            StoreStatus::Initialized | StoreStatus::Provisioning => self.provision(record).await,
            StoreStatus::Ready => {
                let requested = lock(&self.inner.needs_apply).get(id).copied();
                if let Some(requested) = requested {
                    self.apply_all(&record, false).await?;
                    let mut needs_apply = lock(&self.inner.needs_apply);
                    if needs_apply.get(id) == Some(&requested) {
                        needs_apply.remove(id);
                    }
                }
                Ok(Outcome::AwaitChange)
            }
            StoreStatus::Deleting => self.finish_delete(&record).await,
            StoreStatus::Failed | StoreStatus::Deleted => Ok(Outcome::AwaitChange),
        }
    }

    async fn provision(&self, mut record: StoreRecord) -> Result<Outcome> {
        let id = record.id.clone();
        // Requests to re-apply made before this pass are answered by it; one made during it
        // (a child deleted meanwhile) must survive into the ready store's next reconcile.
        let apply_requests = lock(&self.inner.needs_apply).get(&id).copied();
        if record.status == StoreStatus::Initialized {
            record = self
                .transition(&id, StoreStatus::Provisioning, None)
                .await?;
        }
        let known = lock(&self.inner.applied).get(&id).cloned();
        let workloads = match known {
            Some(workloads) => workloads,
            None => {
                let first_pass = !lock(&self.inner.progress).contains_key(&id);
                let workloads = self.apply_all(&record, first_pass).await?;
                lock(&self.inner.applied).insert(id.clone(), workloads.clone());
                workloads
            }
        };

        let observed = self.observe(&id.namespace(), &workloads).await?;
        let previous = lock(&self.inner.progress)
            .insert(id.clone(), observed.progress.clone())
            .unwrap_or_default();
        for (was, is, step, message) in [
            (
                previous.mysql_ready,
                observed.progress.mysql_ready,
                "mysql",
                "MySQL is ready",
            ),
            (
                previous.wordpress_ready,
                observed.progress.wordpress_ready,
                "wordpress",
                "WordPress is ready",
            ),
            (
                previous.seeded,
                observed.progress.seeded,
                "seed",
                "WooCommerce installed and products created",
            ),
        ] {
            if is && !was {
                self.step(&id, step, message).await?;
            }
        }
        if let Some(reason) = observed.failure {
            lock(&self.inner.progress).remove(&id);
            self.transition(&id, StoreStatus::Failed, Some(&reason))
                .await?;
            return Ok(Outcome::AwaitChange);
        }
        let p = &observed.progress;
        if p.mysql_ready && p.wordpress_ready && p.seeded {
            lock(&self.inner.progress).remove(&id);
            self.transition(&id, StoreStatus::Ready, None).await?;
            let mut needs_apply = lock(&self.inner.needs_apply);
            if needs_apply.get(&id).copied() == apply_requests {
                needs_apply.remove(&id);
            }
            return Ok(Outcome::AwaitChange);
        }
        let deadline = self.inner.config.ready_deadline;
        let Some(remaining) = self.time_left(&record) else {
            lock(&self.inner.progress).remove(&id);
            let waiting: Vec<&str> = [
                (!p.mysql_ready).then_some("MySQL"),
                (!p.wordpress_ready).then_some("WordPress"),
                (!p.seeded).then_some("seeding"),
            ]
            .into_iter()
            .flatten()
            .collect();
            let reason = format!(
                "not ready within {} s; still waiting for {}",
                deadline.as_secs(),
                waiting.join(", ")
            );
            self.transition(&id, StoreStatus::Failed, Some(&reason))
                .await?;
            return Ok(Outcome::AwaitChange);
        };
        Ok(Outcome::RequeueAfter(remaining))
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

    /// Renders the store and applies every object, in order, reusing the passwords already in
    /// its Secrets.
    async fn apply_all(&self, record: &StoreRecord, report: bool) -> Result<Workloads> {
        let namespace = record.id.namespace();
        self.check_namespace_is_ours(&record.id).await?;
        let (secrets, lost) = self.secrets_for(record, &namespace).await?;
        let mut manifests =
            self.inner
                .blueprints
                .render(&record.blueprint, &record.spec, &secrets)?;
        if !lost.is_empty() {
            // Fresh passwords would not match what MySQL and WordPress already hold; leave
            // the Secret missing and tell a person instead.
            manifests.retain(|m| !(m.kind() == "Secret" && lost.contains(&m.name())));
            for name in &lost {
                self.warn_once(
                    &record.id,
                    format!(
                        "Secret {name} was deleted; its passwords cannot be recovered, so it is \
                         not re-created with new ones. Restore it from a backup, or delete and \
                         re-create the store."
                    ),
                )
                .await;
            }
        }
        if report {
            self.step(
                &record.id,
                "apply",
                format!("applying {} objects", manifests.len()),
            )
            .await?;
        }
        for manifest in &manifests {
            self.apply(manifest).await?;
        }
        if report {
            self.step(&record.id, "apply", "all objects applied")
                .await?;
        }
        // The Secret now holds the administrator's password; forget it.
        lock(&self.inner.admin_passwords).remove(&record.id);
        Ok(Workloads::of(&manifests))
    }

    /// Fails if the store's namespace exists without this store's label: server-side apply
    /// would otherwise adopt somebody else's namespace, and a later delete would remove it.
    async fn check_namespace_is_ours(&self, id: &StoreId) -> Result<()> {
        let namespaces: Api<Namespace> = Api::all(self.inner.client.clone());
        let namespace = id.namespace();
        let existing = self
            .with_retries(&format!("read Namespace {namespace}"), || {
                namespaces.get_opt(&namespace)
            })
            .await?;
        match existing {
            Some(ns) if ns.labels().get(LABEL_STORE).map(String::as_str) != Some(id.as_str()) => {
                Err(Error::NamespaceTaken { namespace })
            }
            _ => Ok(()),
        }
    }

    async fn warn_once(&self, id: &StoreId, message: String) {
        if lock(&self.inner.warned).insert((id.clone(), message.clone())) {
            tracing::warn!(store = %id, "{message}");
            let _ = self.record(id, EventKind::Warning { message }).await;
        }
    }

    /// The passwords of the store: those already in its Secrets, fresh ones for Secrets not
    /// created yet. For a store that was ready, a missing Secret is reported (second value)
    /// rather than filled with passwords nothing else knows.
    async fn secrets_for(
        &self,
        record: &StoreRecord,
        namespace: &str,
    ) -> Result<(StoreSecrets, Vec<&'static str>)> {
        let id = &record.id;
        let api: Api<Secret> = Api::namespaced(self.inner.client.clone(), namespace);
        let read = |name: &'static str| {
            let api = api.clone();
            async move {
                self.with_retries(&format!("read Secret {namespace}/{name}"), || {
                    let api = api.clone();
                    async move { api.get_opt(name).await }
                })
                .await
            }
        };
        let mysql = read(MYSQL_SECRET).await?;
        let admin = read(ADMIN_SECRET).await?;
        let value = |secret: &Option<Secret>, key: &str| {
            secret
                .as_ref()
                .and_then(|s| s.data.as_ref())
                .and_then(|d| d.get(key))
                .map(|v| String::from_utf8_lossy(&v.0).into_owned())
                .filter(|v| !v.is_empty())
        };
        let pending_admin = lock(&self.inner.admin_passwords).get(id).cloned();
        let fresh = StoreSecrets::generate(pending_admin);
        let mut lost = Vec::new();
        if record.status == StoreStatus::Ready {
            if mysql.is_none() {
                lost.push(MYSQL_SECRET);
            }
            if admin.is_none() {
                lost.push(ADMIN_SECRET);
            }
        }
        let secrets = StoreSecrets {
            mysql_root_password: value(&mysql, "root-password")
                .unwrap_or(fresh.mysql_root_password),
            mysql_password: value(&mysql, "password").unwrap_or(fresh.mysql_password),
            admin_password: value(&admin, "password").unwrap_or(fresh.admin_password),
        };
        Ok((secrets, lost))
    }

    async fn apply(&self, manifest: &Manifest) -> Result<()> {
        let resource = api_resource(manifest);
        let api: Api<DynamicObject> = match &manifest.meta().namespace {
            Some(namespace) => {
                Api::namespaced_with(self.inner.client.clone(), namespace, &resource)
            }
            None => Api::all_with(self.inner.client.clone(), &resource),
        };
        let params = PatchParams::apply(&self.inner.config.field_manager).force();
        let value = manifest.to_value();
        let name = manifest.name().to_owned();
        let operation = format!("apply {}", manifest.describe());
        let key = object_key(manifest.kind(), manifest.meta());
        *lock(&self.inner.in_flight).entry(key.clone()).or_default() += 1;
        let result = self
            .with_retries(&operation, || {
                let api = api.clone();
                let params = params.clone();
                let value = value.clone();
                let name = name.clone();
                async move { api.patch(&name, &params, &Patch::Apply(&value)).await }
            })
            .await;
        {
            let mut in_flight = lock(&self.inner.in_flight);
            if let Some(count) = in_flight.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    in_flight.remove(&key);
                }
            }
        }
        let applied = result?;
        // Remember the version our apply produced: its watch event is our own echo.
        let content = fingerprint(&applied);
        lock(&self.inner.seen).insert(
            key,
            Seen {
                resource_version: applied.metadata.resource_version,
                content,
            },
        );
        Ok(())
    }

    /// Calls `call` until it succeeds, fails for good, or runs out of attempts; transient
    /// failures are retried with exponential backoff, honouring a server's retry-after hint.
    async fn with_retries<T, F, Fut>(&self, operation: &str, mut call: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = kube::Result<T>>,
    {
        let config = &self.inner.config;
        let mut delay = config.initial_backoff;
        let mut attempt = 1;
        loop {
            match call().await {
                Ok(value) => return Ok(value),
                Err(source)
                    if kube_error_is_transient(&source) && attempt < config.max_attempts =>
                {
                    let hinted = match &source {
                        kube::Error::Api(status) => status
                            .details
                            .as_ref()
                            .map(|d| Duration::from_secs(u64::from(d.retry_after_seconds)))
                            .filter(|d| !d.is_zero()),
                        _ => None,
                    };
                    let wait = hinted.unwrap_or(delay).min(config.max_backoff);
                    tracing::debug!(operation, attempt, ?wait, error = %source, "retrying");
                    tokio::time::sleep(wait).await;
                    delay = (delay * 2).min(config.max_backoff);
                    attempt += 1;
                }
                Err(source) => {
                    return Err(Error::Kube {
                        operation: operation.to_owned(),
                        source,
                    });
                }
            }
        }
    }

    async fn observe(&self, namespace: &str, workloads: &Workloads) -> Result<Observed> {
        let client = &self.inner.client;
        let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
        let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let lp = ListParams::default().labels(MANAGED_SELECTOR);
        let sts = self
            .with_retries("list StatefulSets", || statefulsets.list(&lp))
            .await?;
        let deps = self
            .with_retries("list Deployments", || deployments.list(&lp))
            .await?;
        let job_list = self.with_retries("list Jobs", || jobs.list(&lp)).await?;
        let pod_list = self.with_retries("list Pods", || pods.list(&lp)).await?;
        Ok(Observed::from_objects(
            workloads,
            &sts.items,
            &deps.items,
            &job_list.items,
            &pod_list.items,
        ))
    }

    async fn finish_delete(&self, record: &StoreRecord) -> Result<Outcome> {
        let id = &record.id;
        let namespaces: Api<Namespace> = Api::all(self.inner.client.clone());
        let namespace = id.namespace();
        let current = self
            .with_retries(&format!("read Namespace {namespace}"), || {
                namespaces.get_opt(&namespace)
            })
            .await?;
        match current {
            None => {
                lock(&self.inner.progress).remove(id);
                lock(&self.inner.admin_passwords).remove(id);
                let infix = format!("/{namespace}/");
                lock(&self.inner.seen).retain(|key, _| !key.contains(&infix));
                lock(&self.inner.needs_apply).remove(id);
                self.transition(id, StoreStatus::Deleted, None).await?;
                Ok(Outcome::AwaitChange)
            }
            Some(ns) => {
                let ours = ns
                    .labels()
                    .get(LABEL_STORE)
                    .is_some_and(|store| store == id.as_str());
                if !ours {
                    // Never delete what we do not own: a namespace of that name without our
                    // label was not created by us.
                    tracing::warn!(store = %id, namespace, "namespace is not labelled as this store's; not deleting it");
                    self.transition(
                        id,
                        StoreStatus::Deleted,
                        Some("namespace was not created by storefactory and was left alone"),
                    )
                    .await?;
                    return Ok(Outcome::AwaitChange);
                }
                if ns.metadata.deletion_timestamp.is_none() {
                    self.with_retries(&format!("delete Namespace {namespace}"), || async {
                        match namespaces
                            .delete(&namespace, &DeleteParams::background())
                            .await
                        {
                            Ok(_) => Ok(()),
                            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
                            Err(e) => Err(e),
                        }
                    })
                    .await?;
                    self.step(id, "delete", format!("deleting namespace {namespace}"))
                        .await?;
                }
                // The namespace watch reports when it is gone; look again later in case the
                // event is missed.
                Ok(Outcome::RequeueAfter(Duration::from_secs(30)))
            }
        }
    }
}

/// Holds the work queue while `run` is active and gives it back when `run` ends.
struct QueueGuard {
    inner: Arc<Inner>,
    queue: Option<mpsc::UnboundedReceiver<StoreId>>,
}

impl Drop for QueueGuard {
    fn drop(&mut self) {
        *lock(&self.inner.queue_rx) = self.queue.take();
    }
}

/// What a watch event calls for.
enum Wake {
    /// Nothing: our own apply coming back, or a version already seen.
    Ignore,
    /// Look at the store's progress (a status change).
    Progress,
    /// Re-apply the store's objects (possible drift).
    Apply,
}

/// The last known version of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    resource_version: Option<String>,
    /// [`fingerprint`] of the object.
    content: u64,
}

/// A hash of an object without its metadata and status: what changes when its desired state
/// changes, and not when a controller reports on it.
fn fingerprint<K: serde::Serialize>(object: &K) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut value = serde_json::to_value(object).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    value.to_string().hash(&mut hasher);
    hasher.finish()
}

/// The workloads a store's blueprint renders, by kind: what readiness waits for.
#[derive(Debug, Clone, Default)]
struct Workloads {
    statefulsets: Vec<String>,
    deployments: Vec<String>,
    jobs: Vec<String>,
}

impl Workloads {
    fn of(manifests: &[Manifest]) -> Self {
        let mut workloads = Workloads::default();
        for manifest in manifests {
            let list = match manifest {
                Manifest::StatefulSet(_) => &mut workloads.statefulsets,
                Manifest::Deployment(_) => &mut workloads.deployments,
                Manifest::Job(_) => &mut workloads.jobs,
                _ => continue,
            };
            list.push(manifest.name().to_owned());
        }
        workloads
    }
}

/// The readiness of a store's workloads, and why it failed if it did.
#[derive(Debug, Default)]
struct Observed {
    progress: Progress,
    failure: Option<String>,
}

impl Observed {
    fn from_objects(
        expected: &Workloads,
        statefulsets: &[StatefulSet],
        deployments: &[Deployment],
        jobs: &[Job],
        pods: &[Pod],
    ) -> Self {
        let sts_ready = |s: &StatefulSet| {
            let want = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let status = s.status.as_ref();
            status.and_then(|s| s.ready_replicas).unwrap_or(0) >= want
                && status.and_then(|s| s.observed_generation) >= s.metadata.generation
        };
        let dep_ready = |d: &Deployment| {
            let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let status = d.status.as_ref();
            status.and_then(|s| s.ready_replicas).unwrap_or(0) >= want
                && status.and_then(|s| s.observed_generation) >= d.metadata.generation
        };
        let job_condition = |j: &Job, kind: &str| {
            j.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == kind && c.status == "True"))
                .cloned()
        };
        // Every workload the blueprint renders must exist and be done: a missing one (deleted
        // while being applied, say) is not ready.
        fn all_done<K: Resource>(
            names: &[String],
            objects: &[K],
            done: impl Fn(&K) -> bool,
        ) -> bool {
            names.iter().all(|name| {
                objects
                    .iter()
                    .any(|o| o.meta().name.as_deref() == Some(name.as_str()) && done(o))
            })
        }
        let progress = Progress {
            mysql_ready: all_done(&expected.statefulsets, statefulsets, sts_ready),
            wordpress_ready: all_done(&expected.deployments, deployments, dep_ready),
            seeded: all_done(&expected.jobs, jobs, |j| {
                job_condition(j, "Complete").is_some()
            }),
        };
        let mut failure = jobs.iter().find_map(|j| {
            job_condition(j, "Failed").map(|c| {
                format!(
                    "seeding failed: Job {} {}{}",
                    j.name_any(),
                    c.reason.unwrap_or_else(|| "failed".to_owned()),
                    c.message.map(|m| format!(": {m}")).unwrap_or_default()
                )
            })
        });
        if failure.is_none() {
            failure = pods.iter().find_map(pod_failure);
        }
        Observed { progress, failure }
    }
}

/// Why a pod will not come up on its own, if it will not: an image that cannot be pulled, or
/// a container that keeps crashing.
fn pod_failure(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let statuses = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for container in statuses {
        let Some(waiting) = container.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
            continue;
        };
        let reason = waiting.reason.as_deref().unwrap_or_default();
        let message = waiting
            .message
            .as_deref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        match reason {
            "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" => {
                return Some(format!(
                    "image {} of container {} in pod {} cannot be pulled ({reason}{message})",
                    container.image,
                    container.name,
                    pod.name_any()
                ));
            }
            "CrashLoopBackOff" | "CreateContainerConfigError" => {
                return Some(format!(
                    "container {} in pod {} keeps failing ({reason}{message})",
                    container.name,
                    pod.name_any()
                ));
            }
            _ => {}
        }
    }
    None
}

fn object_key(kind: &str, meta: &ObjectMeta) -> String {
    format!(
        "{kind}/{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

fn store_of<K: Resource>(obj: &K) -> Option<StoreId> {
    obj.meta()
        .labels
        .as_ref()?
        .get(LABEL_STORE)
        .and_then(|id| StoreId::new(id.clone()).ok())
}

fn api_resource(manifest: &Manifest) -> ApiResource {
    let (group, version) = match manifest.api_version().split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", manifest.api_version()),
    };
    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, manifest.kind()))
}

fn api_resource_of_kind(kind: &str) -> Option<ApiResource> {
    use k8s_openapi::api::apps::v1 as apps;
    use k8s_openapi::api::batch::v1 as batch;
    use k8s_openapi::api::core::v1 as core;
    use k8s_openapi::api::networking::v1 as net;
    Some(match kind {
        "Namespace" => ApiResource::erase::<core::Namespace>(&()),
        "Deployment" => ApiResource::erase::<apps::Deployment>(&()),
        "StatefulSet" => ApiResource::erase::<apps::StatefulSet>(&()),
        "Job" => ApiResource::erase::<batch::Job>(&()),
        "ResourceQuota" => ApiResource::erase::<core::ResourceQuota>(&()),
        "LimitRange" => ApiResource::erase::<core::LimitRange>(&()),
        "NetworkPolicy" => ApiResource::erase::<net::NetworkPolicy>(&()),
        "ServiceAccount" => ApiResource::erase::<core::ServiceAccount>(&()),
        "Secret" => ApiResource::erase::<core::Secret>(&()),
        "ConfigMap" => ApiResource::erase::<core::ConfigMap>(&()),
        "PersistentVolumeClaim" => ApiResource::erase::<core::PersistentVolumeClaim>(&()),
        "Service" => ApiResource::erase::<core::Service>(&()),
        "Ingress" => ApiResource::erase::<net::Ingress>(&()),
        _ => return None,
    })
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
    fn every_kind_a_blueprint_may_create_is_watched() {
        for kind in Manifest::KINDS {
            let resource =
                api_resource_of_kind(kind).unwrap_or_else(|| panic!("{kind} not watched"));
            assert_eq!(resource.kind, *kind);
        }
    }

    #[test]
    fn fingerprints_ignore_status_and_metadata() {
        let a = serde_json::json!({"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 1}, "status": {"readyReplicas": 0}});
        let b = serde_json::json!({"metadata": {"resourceVersion": "2"}, "spec": {"replicas": 1}, "status": {"readyReplicas": 1}});
        let c = serde_json::json!({"metadata": {"resourceVersion": "3"}, "spec": {"replicas": 3}, "status": {"readyReplicas": 1}});
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&b), fingerprint(&c));
    }

    #[test]
    fn statuses_follow_the_lifecycle() {
        use StoreStatus::*;
        assert!(Initialized.can_become(Provisioning));
        assert!(Provisioning.can_become(Ready));
        assert!(Failed.can_become(Provisioning));
        assert!(Deleting.can_become(Deleted));
        for undoes_a_delete in [Ready, Provisioning, Failed, Initialized] {
            assert!(!Deleting.can_become(undoes_a_delete));
        }
        assert!(!Deleted.can_become(Deleting));
        assert_eq!(StoreStatus::predecessors(Deleted), [Deleting]);
    }
}
