//! The Provisioner from Python: create, follow and delete stores on a cluster, and run the
//! reconciler in the background of the Python process.
//!
//! Every operation has a blocking form (the GIL released while it waits, Ctrl-C honoured)
//! and an `_async` form returning an awaitable for asyncio. Waits read the database's record
//! and events, so they see progress whichever process reconciles: this one (after
//! `start()`), a running server sharing the database, or another program.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::exceptions::PyStopAsyncIteration;
use pyo3::prelude::*;
use storefactory_core::blueprint::SecretInputs;
use storefactory_core::change::StoreChange;
use storefactory_core::error::ErrorKind;
use storefactory_core::kube_config::{self, KubeConfigError};
use storefactory_core::port::StoreFilter;
use storefactory_core::provisioner::{CreateStore, LeaderConfig, Provisioner, ProvisionerConfig};
use storefactory_core::seal::SealingKey;
use storefactory_core::spec::StoreId;
use storefactory_core::store::{StoreEvent, StoreRecord, StoreStatus};
use tokio::sync::{broadcast, oneshot};
use tokio::time::Instant;

use crate::blueprints::PyBlueprints;
use crate::database::PyDatabase;
use crate::error::{StoreFailed, WaitTimeout, exception, invalid, to_py};
use crate::records::{PyBackup, PyCredentials, PyEvent, PyRestore, PyStore};
use crate::runtime::{awaitable, block_on, runtime};
use crate::spec::{PyStoreSpec, change_from};
use storefactory_core::backup::{BackupId, BackupKind};

/// How long connecting to the API server may take before the cluster counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a wait re-reads the database when no event of this process wakes it: the pace
/// at which it notices another process's work.
const POLL: Duration = Duration::from_millis(500);
/// The database setting holding the server's token key. Values chosen at creation are
/// sealed under a key derived from it, as the server does, so that whichever process
/// reconciles (this one or a server sharing the database) can open them.
const TOKEN_KEY_SETTING: &str = "http.token_key";

fn store_id(text: &str) -> PyResult<StoreId> {
    StoreId::new(text).map_err(to_py)
}

fn duration(seconds: f64, field: &str) -> PyResult<Duration> {
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| invalid(field, format!("{seconds} is not a number of seconds >= 0")))
}

async fn kube_client(
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
) -> PyResult<kube::Client> {
    let unavailable = |message: String| exception(ErrorKind::Unavailable, message, None);
    let mut config = kube_config::load(kubeconfig.as_deref(), context.as_deref())
        .await
        .map_err(|error| match error {
            KubeConfigError::NotFound(_) => unavailable(format!(
                "{error}: give kubeconfig=, set KUBECONFIG, or run in a cluster"
            )),
            error => unavailable(error.to_string()),
        })?;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    kube::Client::try_from(config)
        .map_err(|e| unavailable(format!("cannot build a Kubernetes client: {e}")))
}

/// What a wait waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Ready,
    Deleted,
    Suspended,
}

impl Target {
    fn parse(text: &str) -> PyResult<Self> {
        match text {
            "ready" => Ok(Target::Ready),
            "deleted" => Ok(Target::Deleted),
            "suspended" => Ok(Target::Suspended),
            other => Err(invalid(
                "until",
                format!("{other:?} is not \"ready\", \"deleted\" or \"suspended\""),
            )),
        }
    }

    /// Whether the wait is over: `Some(Ok)` reached, `Some(Err)` never will be.
    fn settle(
        self,
        id: &StoreId,
        record: Option<StoreRecord>,
    ) -> Option<PyResult<Option<PyStore>>> {
        let status = record.as_ref().map(|r| r.status);
        match (self, status) {
            (Target::Deleted, None) => Some(Ok(None)),
            (Target::Deleted, Some(StoreStatus::Deleted))
            | (Target::Ready, Some(StoreStatus::Ready)) => Some(Ok(record.map(PyStore::from))),
            (Target::Deleted, _) => None,
            (Target::Ready, None) => Some(Err(exception(
                ErrorKind::NotFound,
                format!("store {id} not found"),
                None,
            ))),
            (Target::Ready, Some(StoreStatus::Failed)) => {
                let reason = record
                    .and_then(|r| r.reason)
                    .unwrap_or_else(|| "no reason recorded".to_owned());
                Some(Err(StoreFailed::new_err(format!(
                    "store {id} failed: {reason}"
                ))))
            }
            (Target::Ready, Some(status @ (StoreStatus::Deleting | StoreStatus::Deleted))) => {
                Some(Err(StoreFailed::new_err(format!(
                    "store {id} is {status}; it will not become ready"
                ))))
            }
            (Target::Ready, Some(_)) => None,
            (Target::Suspended, Some(StoreStatus::Suspended)) => {
                Some(Ok(record.map(PyStore::from)))
            }
            (Target::Suspended, Some(StoreStatus::Suspending)) => None,
            (Target::Suspended, None) => Some(Err(exception(
                ErrorKind::NotFound,
                format!("store {id} not found"),
                None,
            ))),
            (Target::Suspended, Some(status)) => Some(Err(StoreFailed::new_err(format!(
                "store {id} is {status}; it will not become suspended"
            )))),
        }
    }
}

/// Sleeps until an event of this process, the next poll, whichever comes first; fails at
/// `deadline`.
async fn pause(
    events: &mut broadcast::Receiver<StoreEvent>,
    deadline: Option<Instant>,
    timed_out: String,
) -> PyResult<()> {
    let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);
    tokio::select! {
        received = events.recv() => {
            if let Err(broadcast::error::RecvError::Closed) = received {
                tokio::time::sleep(POLL).await;
            }
            Ok(())
        }
        () = tokio::time::sleep(POLL) => Ok(()),
        () = tokio::time::sleep_until(deadline.unwrap_or(far)) => Err(WaitTimeout::new_err(timed_out)),
    }
}

async fn wait_for(
    provisioner: Provisioner,
    id: StoreId,
    target: Target,
    timeout: Duration,
) -> PyResult<Option<PyStore>> {
    let mut events = provisioner.subscribe();
    let deadline = Instant::now() + timeout;
    loop {
        let record = provisioner
            .repository()
            .get_store(&id)
            .await
            .map_err(to_py)?;
        let status = record.as_ref().map(|r| r.status.as_str()).unwrap_or("gone");
        if let Some(done) = target.settle(&id, record) {
            return done;
        }
        let timed_out = format!(
            "store {id} is still {status} after {:.0} s (waiting for {})",
            timeout.as_secs_f64(),
            if target == Target::Ready {
                "ready"
            } else {
                "deleted"
            }
        );
        pause(&mut events, Some(deadline), timed_out).await?;
    }
}

/// The reconciler running in the background of this process.
struct Background {
    /// Dropping it stops the reconciler.
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<storefactory_core::Result<()>>,
}

/// Creates, follows and deletes stores on a Kubernetes cluster, recording them in a
/// `Database`.
///
/// The work (applying objects, watching readiness, deleting namespaces) is done by a
/// reconciler: `start()` runs it in the background of this process (`with provisioner:`
/// does too, and stops it at the end). With `leader=True` (the default) it reconciles only
/// while it holds the platform's Lease, so it can share the database and cluster with a
/// running server; `leader=False` is for a process that knows it is alone.
#[pyclass(name = "Provisioner", module = "storefactory", frozen)]
pub struct PyProvisioner {
    provisioner: Provisioner,
    background: Mutex<Option<Background>>,
}

impl PyProvisioner {
    fn background(&self) -> std::sync::MutexGuard<'_, Option<Background>> {
        self.background.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn create_request(
        spec: &PyStoreSpec,
        name: Option<String>,
        blueprint: Option<String>,
        inputs: Option<std::collections::BTreeMap<String, String>>,
    ) -> CreateStore {
        CreateStore {
            spec: spec.spec.clone(),
            name: name.unwrap_or_default(),
            blueprint,
            inputs: SecretInputs(inputs.unwrap_or_default()),
        }
    }
}

async fn create(p: Provisioner, request: CreateStore) -> PyResult<PyStore> {
    p.create(request).await.map(PyStore::from).map_err(to_py)
}

async fn get(p: Provisioner, id: StoreId) -> PyResult<PyStore> {
    match p.repository().get_store(&id).await.map_err(to_py)? {
        Some(record) => Ok(record.into()),
        None => Err(exception(
            ErrorKind::NotFound,
            format!("store {id} not found"),
            None,
        )),
    }
}

async fn list(p: Provisioner, filter: StoreFilter) -> PyResult<Vec<PyStore>> {
    let records = p.repository().list_stores(&filter).await.map_err(to_py)?;
    Ok(records.into_iter().map(PyStore::from).collect())
}

async fn delete(p: Provisioner, id: StoreId) -> PyResult<PyStore> {
    p.delete(&id).await.map(PyStore::from).map_err(to_py)
}

async fn retry(p: Provisioner, id: StoreId) -> PyResult<PyStore> {
    p.retry(&id).await.map(PyStore::from).map_err(to_py)
}

async fn suspend(p: Provisioner, id: StoreId) -> PyResult<PyStore> {
    p.suspend(&id).await.map(PyStore::from).map_err(to_py)
}

async fn resume(p: Provisioner, id: StoreId) -> PyResult<PyStore> {
    p.resume(&id).await.map(PyStore::from).map_err(to_py)
}

async fn add_domain(p: Provisioner, id: StoreId, domain: String) -> PyResult<PyStore> {
    p.add_domain(&id, &domain)
        .await
        .map(PyStore::from)
        .map_err(to_py)
}

async fn remove_domain(p: Provisioner, id: StoreId, domain: String) -> PyResult<PyStore> {
    p.remove_domain(&id, &domain)
        .await
        .map(PyStore::from)
        .map_err(to_py)
}

async fn change(p: Provisioner, id: StoreId, change: StoreChange) -> PyResult<PyStore> {
    p.change(&id, &change)
        .await
        .map(PyStore::from)
        .map_err(|error| match error {
            // Named as the keyword argument is.
            storefactory_core::Error::Invalid(mut invalid) => {
                if let Some(rest) = invalid.field.strip_prefix("storage_gib") {
                    invalid.field = format!("storage_size_gi{rest}");
                } else if let Some(rest) = invalid.field.strip_prefix("products") {
                    invalid.field = format!("sample_products{rest}");
                }
                to_py(storefactory_core::Error::Invalid(invalid))
            }
            other => to_py(other),
        })
}

fn backup_id(text: &str) -> PyResult<BackupId> {
    BackupId::new(text).map_err(to_py)
}

async fn backup(p: Provisioner, id: StoreId) -> PyResult<PyBackup> {
    p.backup(&id, BackupKind::Manual)
        .await
        .map(PyBackup::from)
        .map_err(to_py)
}

async fn backups(p: Provisioner, id: StoreId) -> PyResult<Vec<PyBackup>> {
    let list = p.list_backups(&id).await.map_err(to_py)?;
    Ok(list.into_iter().map(PyBackup::from).collect())
}

async fn delete_backup(p: Provisioner, id: StoreId, backup: BackupId) -> PyResult<PyBackup> {
    p.delete_backup(&id, &backup)
        .await
        .map(PyBackup::from)
        .map_err(to_py)
}

async fn restore(p: Provisioner, id: StoreId, backup: BackupId) -> PyResult<PyRestore> {
    p.restore(&id, &backup)
        .await
        .map(PyRestore::from)
        .map_err(to_py)
}

/// A clone keeps the source's WordPress administrator (in the restored database): its
/// Secret is created with the source's user name and password, unless `inputs` choose.
async fn clone_store(
    p: Provisioner,
    source: StoreId,
    mut request: CreateStore,
) -> PyResult<(PyStore, PyRestore)> {
    let credentials = p.credentials(&source).await.map_err(to_py)?;
    request.spec.wordpress.admin_user = credentials.username.clone();
    if request.inputs.0.is_empty() {
        request.inputs = SecretInputs::one("admin_password", credentials.password.clone());
    }
    let (store, restore) = p.clone_store(&source, request).await.map_err(to_py)?;
    Ok((PyStore::from(store), PyRestore::from(restore)))
}

async fn credentials(p: Provisioner, id: StoreId) -> PyResult<PyCredentials> {
    p.credentials(&id)
        .await
        .map(PyCredentials::from)
        .map_err(to_py)
}

#[pymethods]
impl PyProvisioner {
    /// A Provisioner on the cluster of `kubeconfig` (a file) and `context`, or of the usual
    /// places (`$KUBECONFIG`, `~/.kube/config`, the in-cluster service account), recording
    /// in `database`. Does not contact the cluster yet.
    #[new]
    #[pyo3(signature = (
        database, *, kubeconfig=None, context=None, blueprints=None, leader=true,
        lease_namespace="default", ready_timeout=900.0, concurrency=16, paused_backend=None,
        backup_endpoint=None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        database: &PyDatabase,
        kubeconfig: Option<PathBuf>,
        context: Option<String>,
        blueprints: Option<&PyBlueprints>,
        leader: bool,
        lease_namespace: &str,
        ready_timeout: f64,
        concurrency: usize,
        paused_backend: Option<&str>,
        backup_endpoint: Option<&str>,
    ) -> PyResult<Self> {
        let backup_endpoint = backup_endpoint
            .map(|text| {
                text.parse::<storefactory_core::backup::BackupEndpoint>()
                    .map_err(|e| invalid("backup_endpoint", e.message))
            })
            .transpose()?;
        if concurrency == 0 {
            return Err(invalid("concurrency", "must be at least 1"));
        }
        let paused_backend = paused_backend
            .map(|text| {
                text.parse::<storefactory_core::blueprint::PausedBackend>()
                    .map_err(|e| invalid("paused_backend", e.message))
            })
            .transpose()?;
        let ready_deadline = duration(ready_timeout, "ready_timeout")?;
        let registry = match blueprints {
            Some(blueprints) => blueprints.registry(),
            None => PyBlueprints::builtin()?.registry(),
        };
        let db = database.db.clone();
        let (client, token_key) = block_on(py, async move {
            let client = kube_client(kubeconfig, context).await?;
            let token_key = db.get_setting(TOKEN_KEY_SETTING).await.map_err(to_py)?;
            Ok((client, token_key))
        })?;
        let config = ProvisionerConfig {
            ready_deadline,
            concurrency,
            leader: leader.then(|| LeaderConfig {
                namespace: lease_namespace.to_owned(),
                ..LeaderConfig::default()
            }),
            sealing_key: token_key
                .map(|key| SealingKey::derive(key.as_bytes()))
                .unwrap_or_else(SealingKey::random),
            paused_backend,
            backups: storefactory_core::provisioner::BackupConfig {
                endpoint: backup_endpoint,
                // The server's archives, in their default place next to the database.
                archives: database.db.path().map(|p| {
                    Arc::new(storefactory_core::backup::ArchiveDir::new(
                        p.with_file_name("backups"),
                    )) as Arc<dyn storefactory_core::backup::ArchiveStore>
                }),
                ..Default::default()
            },
            ..ProvisionerConfig::default()
        };
        let provisioner = Provisioner::new(client, Arc::new(database.db.clone()), registry, config);
        Ok(PyProvisioner {
            provisioner,
            background: Mutex::new(None),
        })
    }

    /// Records a new store (the owner's quota is checked) and queues its provisioning;
    /// returns at once. `inputs` are chosen values for the blueprint's generated Secrets
    /// (for `woocommerce`, `{"admin_password": ...}`); the rest are generated.
    #[pyo3(signature = (spec, *, name=None, blueprint=None, inputs=None))]
    fn create(
        &self,
        py: Python<'_>,
        spec: &PyStoreSpec,
        name: Option<String>,
        blueprint: Option<String>,
        inputs: Option<std::collections::BTreeMap<String, String>>,
    ) -> PyResult<PyStore> {
        let request = Self::create_request(spec, name, blueprint, inputs);
        block_on(py, create(self.provisioner.clone(), request))
    }

    /// `create`, awaitable.
    #[pyo3(signature = (spec, *, name=None, blueprint=None, inputs=None))]
    fn create_async<'py>(
        &self,
        py: Python<'py>,
        spec: &PyStoreSpec,
        name: Option<String>,
        blueprint: Option<String>,
        inputs: Option<std::collections::BTreeMap<String, String>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let request = Self::create_request(spec, name, blueprint, inputs);
        awaitable(py, create(self.provisioner.clone(), request))
    }

    /// The store `store_id` (deleted ones included). Raises `NotFound`.
    fn get(&self, py: Python<'_>, store_id: &str) -> PyResult<PyStore> {
        block_on(py, get(self.provisioner.clone(), self::store_id(store_id)?))
    }

    /// `get`, awaitable.
    fn get_async<'py>(&self, py: Python<'py>, store_id: &str) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, get(self.provisioner.clone(), self::store_id(store_id)?))
    }

    /// Stores, oldest first: everyone's, or `owner`'s; deleted ones only when asked.
    #[pyo3(signature = (*, owner=None, include_deleted=false))]
    fn list(
        &self,
        py: Python<'_>,
        owner: Option<String>,
        include_deleted: bool,
    ) -> PyResult<Vec<PyStore>> {
        let filter = StoreFilter {
            owner,
            include_deleted,
        };
        block_on(py, list(self.provisioner.clone(), filter))
    }

    /// `list`, awaitable.
    #[pyo3(signature = (*, owner=None, include_deleted=false))]
    fn list_async<'py>(
        &self,
        py: Python<'py>,
        owner: Option<String>,
        include_deleted: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let filter = StoreFilter {
            owner,
            include_deleted,
        };
        awaitable(py, list(self.provisioner.clone(), filter))
    }

    /// Marks the store `deleting` and queues the deletion of its namespace; it becomes
    /// `deleted` once the namespace is gone. Repeating it is harmless.
    fn delete(&self, py: Python<'_>, store_id: &str) -> PyResult<PyStore> {
        block_on(
            py,
            delete(self.provisioner.clone(), self::store_id(store_id)?),
        )
    }

    /// `delete`, awaitable.
    fn delete_async<'py>(&self, py: Python<'py>, store_id: &str) -> PyResult<Bound<'py, PyAny>> {
        awaitable(
            py,
            delete(self.provisioner.clone(), self::store_id(store_id)?),
        )
    }

    /// Provisions a failed store again. Raises `Conflict` if it has not failed.
    fn retry(&self, py: Python<'_>, store_id: &str) -> PyResult<PyStore> {
        block_on(
            py,
            retry(self.provisioner.clone(), self::store_id(store_id)?),
        )
    }

    /// `retry`, awaitable.
    fn retry_async<'py>(&self, py: Python<'py>, store_id: &str) -> PyResult<Bound<'py, PyAny>> {
        awaitable(
            py,
            retry(self.provisioner.clone(), self::store_id(store_id)?),
        )
    }

    /// Suspends a ready store: its workloads are scaled to zero (no pod runs) while its
    /// volumes, Secrets and quota are kept; it becomes `suspended` in the background
    /// (`wait(store_id, until="suspended")`). Raises `Conflict` if it is not ready or its
    /// blueprint declares nothing to suspend.
    fn suspend(&self, py: Python<'_>, store_id: &str) -> PyResult<PyStore> {
        block_on(
            py,
            suspend(self.provisioner.clone(), self::store_id(store_id)?),
        )
    }

    /// `suspend`, awaitable.
    fn suspend_async<'py>(&self, py: Python<'py>, store_id: &str) -> PyResult<Bound<'py, PyAny>> {
        awaitable(
            py,
            suspend(self.provisioner.clone(), self::store_id(store_id)?),
        )
    }

    /// Resumes a suspended store with the same data and passwords; it becomes `ready` in the
    /// background. Raises `Conflict` if it is not suspended.
    fn resume(&self, py: Python<'_>, store_id: &str) -> PyResult<PyStore> {
        block_on(
            py,
            resume(self.provisioner.clone(), self::store_id(store_id)?),
        )
    }

    /// `resume`, awaitable.
    fn resume_async<'py>(&self, py: Python<'py>, store_id: &str) -> PyResult<Bound<'py, PyAny>> {
        awaitable(
            py,
            resume(self.provisioner.clone(), self::store_id(store_id)?),
        )
    }

    /// Adds a custom domain to a ready or suspended store and returns it: its Ingress gains a
    /// rule for the domain (and a name on its certificate with TLS through an issuer),
    /// updated in place; the store stays in its status. The domain is kept lowercase without
    /// a trailing dot; adding one the store has changes nothing. Raises `ValidationError` for
    /// an invalid name, `Conflict` for a domain another store holds (as a custom domain or
    /// its own host), for more than ten, or for a store neither ready nor suspended.
    fn add_domain(&self, py: Python<'_>, store_id: &str, domain: String) -> PyResult<PyStore> {
        block_on(
            py,
            add_domain(self.provisioner.clone(), self::store_id(store_id)?, domain),
        )
    }

    /// `add_domain`, awaitable.
    fn add_domain_async<'py>(
        &self,
        py: Python<'py>,
        store_id: &str,
        domain: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        awaitable(
            py,
            add_domain(self.provisioner.clone(), self::store_id(store_id)?, domain),
        )
    }

    /// Removes a custom domain from a ready or suspended store and returns it: its rule
    /// leaves the Ingress, every other host stays, and the domain is free for other stores.
    /// Raises `NotFound` for a domain the store does not have, `ValidationError` for its own
    /// host, `Conflict` for a store neither ready nor suspended.
    fn remove_domain(&self, py: Python<'_>, store_id: &str, domain: String) -> PyResult<PyStore> {
        block_on(
            py,
            remove_domain(self.provisioner.clone(), self::store_id(store_id)?, domain),
        )
    }

    /// `remove_domain`, awaitable.
    fn remove_domain_async<'py>(
        &self,
        py: Python<'py>,
        store_id: &str,
        domain: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        awaitable(
            py,
            remove_domain(self.provisioner.clone(), self::store_id(store_id)?, domain),
        )
    }

    /// Changes a ready store: a bigger WordPress volume (`storage_size_gi`, grown in place
    /// where its StorageClass allows expansion), new products (`sample_products`, as
    /// `StoreSpec` takes them), `title`, `currency`, and container resources
    /// (`wordpress_resources`, `mysql_resources`: dicts of `cpu_request`, `memory_request`,
    /// `cpu_limit`, `memory_limit`). Only what is given changes. Returns the store, now
    /// `updating`; it becomes `ready` again in the background (`wait(store_id)`), products
    /// updated by SKU, none duplicated. A change to what the store already is returns it
    /// as it is. Raises `ValidationError` (a smaller volume, a class that cannot expand,
    /// bad input), `Conflict` (not ready) or `QuotaExceeded`; a refused change changes
    /// nothing.
    #[pyo3(signature = (
        store_id, *, storage_size_gi=None, sample_products=None, title=None, currency=None,
        wordpress_resources=None, mysql_resources=None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn change(
        &self,
        py: Python<'_>,
        store_id: &str,
        storage_size_gi: Option<&Bound<'_, PyAny>>,
        sample_products: Option<&Bound<'_, PyAny>>,
        title: Option<String>,
        currency: Option<&str>,
        wordpress_resources: Option<&Bound<'_, PyAny>>,
        mysql_resources: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyStore> {
        let id = self::store_id(store_id)?;
        let request = change_from(
            storage_size_gi,
            sample_products,
            title,
            currency,
            wordpress_resources,
            mysql_resources,
        )?;
        block_on(py, change(self.provisioner.clone(), id, request))
    }

    /// `change`, awaitable.
    #[pyo3(signature = (
        store_id, *, storage_size_gi=None, sample_products=None, title=None, currency=None,
        wordpress_resources=None, mysql_resources=None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn change_async<'py>(
        &self,
        py: Python<'py>,
        store_id: &str,
        storage_size_gi: Option<&Bound<'py, PyAny>>,
        sample_products: Option<&Bound<'py, PyAny>>,
        title: Option<String>,
        currency: Option<&str>,
        wordpress_resources: Option<&Bound<'py, PyAny>>,
        mysql_resources: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let id = self::store_id(store_id)?;
        let request = change_from(
            storage_size_gi,
            sample_products,
            title,
            currency,
            wordpress_resources,
            mysql_resources,
        )?;
        awaitable(py, change(self.provisioner.clone(), id, request))
    }

    /// Backs up a ready store now: a Job hands its database and files to the platform's
    /// server (`backup_endpoint`), which keeps the archive. Returns the backup, `pending`;
    /// `backups()` shows when it completed (or failed, with the reason). Raises `Conflict`
    /// if the store is not ready or backups are not configured.
    fn backup(&self, py: Python<'_>, store_id: &str) -> PyResult<PyBackup> {
        block_on(
            py,
            backup(self.provisioner.clone(), self::store_id(store_id)?),
        )
    }

    /// `backup`, awaitable.
    fn backup_async<'py>(&self, py: Python<'py>, store_id: &str) -> PyResult<Bound<'py, PyAny>> {
        awaitable(
            py,
            backup(self.provisioner.clone(), self::store_id(store_id)?),
        )
    }

    /// The store's backups, newest first, with their size and times.
    fn backups(&self, py: Python<'_>, store_id: &str) -> PyResult<Vec<PyBackup>> {
        block_on(
            py,
            backups(self.provisioner.clone(), self::store_id(store_id)?),
        )
    }

    /// `backups`, awaitable.
    fn backups_async<'py>(&self, py: Python<'py>, store_id: &str) -> PyResult<Bound<'py, PyAny>> {
        awaitable(
            py,
            backups(self.provisioner.clone(), self::store_id(store_id)?),
        )
    }

    /// Deletes a completed or failed backup (its archive and record). Raises `NotFound`,
    /// or `Conflict` while it is pending.
    fn delete_backup(&self, py: Python<'_>, store_id: &str, backup_id: &str) -> PyResult<PyBackup> {
        let (id, backup) = (self::store_id(store_id)?, self::backup_id(backup_id)?);
        block_on(py, delete_backup(self.provisioner.clone(), id, backup))
    }

    /// `delete_backup`, awaitable.
    fn delete_backup_async<'py>(
        &self,
        py: Python<'py>,
        store_id: &str,
        backup_id: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (id, backup) = (self::store_id(store_id)?, self::backup_id(backup_id)?);
        awaitable(py, delete_backup(self.provisioner.clone(), id, backup))
    }

    /// Restores a completed backup (of this store or another, whose URL is then rewritten)
    /// into a ready or failed store: it is `restoring` until the restore Job ended, then
    /// `ready` (`wait(store_id)`), or `failed` with the reason. Raises `NotFound` for a
    /// backup that does not exist, `Conflict` when the store or backup cannot be used.
    fn restore(&self, py: Python<'_>, store_id: &str, backup_id: &str) -> PyResult<PyRestore> {
        let (id, backup) = (self::store_id(store_id)?, self::backup_id(backup_id)?);
        block_on(py, restore(self.provisioner.clone(), id, backup))
    }

    /// `restore`, awaitable.
    fn restore_async<'py>(
        &self,
        py: Python<'py>,
        store_id: &str,
        backup_id: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (id, backup) = (self::store_id(store_id)?, self::backup_id(backup_id)?);
        awaitable(py, restore(self.provisioner.clone(), id, backup))
    }

    /// A new store (`spec`, its owner's quota checked: `QuotaExceeded`, nothing created)
    /// from the latest completed backup of `source_id`: provisioned, then restored with its
    /// URLs rewritten to its own. It keeps the source's WordPress administrator. Returns the
    /// new store and its waiting restore.
    #[pyo3(signature = (source_id, spec, *, name=None, inputs=None))]
    fn clone_store(
        &self,
        py: Python<'_>,
        source_id: &str,
        spec: &PyStoreSpec,
        name: Option<String>,
        inputs: Option<std::collections::BTreeMap<String, String>>,
    ) -> PyResult<(PyStore, PyRestore)> {
        let request = Self::create_request(spec, name, None, inputs);
        let source = self::store_id(source_id)?;
        block_on(py, clone_store(self.provisioner.clone(), source, request))
    }

    /// `clone_store`, awaitable.
    #[pyo3(signature = (source_id, spec, *, name=None, inputs=None))]
    fn clone_store_async<'py>(
        &self,
        py: Python<'py>,
        source_id: &str,
        spec: &PyStoreSpec,
        name: Option<String>,
        inputs: Option<std::collections::BTreeMap<String, String>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let request = Self::create_request(spec, name, None, inputs);
        let source = self::store_id(source_id)?;
        awaitable(py, clone_store(self.provisioner.clone(), source, request))
    }

    /// How the owner logs in to the store, read from its Secret in the cluster.
    fn credentials(&self, py: Python<'_>, store_id: &str) -> PyResult<PyCredentials> {
        block_on(
            py,
            credentials(self.provisioner.clone(), self::store_id(store_id)?),
        )
    }

    /// `credentials`, awaitable.
    fn credentials_async<'py>(
        &self,
        py: Python<'py>,
        store_id: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        awaitable(
            py,
            credentials(self.provisioner.clone(), self::store_id(store_id)?),
        )
    }

    /// Waits until the store is `until` (`"ready"`, `"deleted"` or `"suspended"`) and returns it (`None`
    /// for a deleted store whose record is gone). Raises `StoreFailed` when it fails or is
    /// deleted while waiting for ready, `NotFound`, or `WaitTimeout` after `timeout`
    /// seconds.
    #[pyo3(signature = (store_id, *, until="ready", timeout=600.0))]
    fn wait(
        &self,
        py: Python<'_>,
        store_id: &str,
        until: &str,
        timeout: f64,
    ) -> PyResult<Option<PyStore>> {
        let (id, target, timeout) = (
            self::store_id(store_id)?,
            Target::parse(until)?,
            duration(timeout, "timeout")?,
        );
        block_on(py, wait_for(self.provisioner.clone(), id, target, timeout))
    }

    /// `wait`, awaitable.
    #[pyo3(signature = (store_id, *, until="ready", timeout=600.0))]
    fn wait_async<'py>(
        &self,
        py: Python<'py>,
        store_id: &str,
        until: &str,
        timeout: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (id, target, timeout) = (
            self::store_id(store_id)?,
            Target::parse(until)?,
            duration(timeout, "timeout")?,
        );
        awaitable(py, wait_for(self.provisioner.clone(), id, target, timeout))
    }

    /// The store's events: its history after `after` (a sequence number), then new ones as
    /// they happen, ending after the event that settles it (ready, failed or deleted).
    /// Iterate with `for` (blocking) or `async for`. With `timeout` (seconds for the whole
    /// stream), raises `WaitTimeout` when it has not ended by then.
    #[pyo3(signature = (store_id, *, after=0, timeout=None))]
    fn events(&self, store_id: &str, after: i64, timeout: Option<f64>) -> PyResult<PyEventStream> {
        let id = self::store_id(store_id)?;
        let timeout = timeout.map(|t| duration(t, "timeout")).transpose()?;
        Ok(PyEventStream {
            state: Arc::new(tokio::sync::Mutex::new(StreamState {
                events: self.provisioner.subscribe(),
                provisioner: self.provisioner.clone(),
                id,
                after: after.max(0),
                buffer: VecDeque::new(),
                checked: false,
                finished: false,
                timeout,
                deadline: None,
            })),
        })
    }

    /// Starts the reconciler in the background of this process. Raises `Conflict` if it
    /// already runs.
    fn start(&self) -> PyResult<()> {
        let mut background = self.background();
        if background.as_ref().is_some_and(|b| !b.task.is_finished()) {
            return Err(exception(
                ErrorKind::Conflict,
                "the reconciler already runs".to_owned(),
                None,
            ));
        }
        let (stop, stopped) = oneshot::channel::<()>();
        let provisioner = self.provisioner.clone();
        let task = runtime()?.spawn(async move {
            provisioner
                .run_until(async move {
                    // A send or a dropped sender: either way, stop.
                    let _ = stopped.await;
                })
                .await
        });
        *background = Some(Background { stop, task });
        Ok(())
    }

    /// Stops the background reconciler and waits (at most `timeout` seconds) until it has;
    /// raises the error it stopped with, if it failed. Work in flight resumes at the next
    /// start, here or in another process.
    #[pyo3(signature = (timeout=30.0))]
    fn stop(&self, py: Python<'_>, timeout: f64) -> PyResult<()> {
        let timeout = duration(timeout, "timeout")?;
        let Some(Background { stop, task }) = self.background().take() else {
            return Ok(());
        };
        let _ = stop.send(());
        block_on(py, async move {
            match tokio::time::timeout(timeout, task).await {
                Ok(Ok(result)) => result.map_err(to_py),
                Ok(Err(join)) => Err(exception(
                    ErrorKind::Internal,
                    format!("the reconciler ended abnormally: {join}"),
                    None,
                )),
                Err(_) => Err(WaitTimeout::new_err(format!(
                    "the reconciler did not stop within {:.0} s",
                    timeout.as_secs_f64()
                ))),
            }
        })
    }

    /// Whether the background reconciler runs (it may be waiting for the Lease).
    #[getter]
    fn running(&self) -> bool {
        self.background()
            .as_ref()
            .is_some_and(|b| !b.task.is_finished())
    }

    /// Whether this process reconciles right now (it holds the Lease, or runs without one).
    #[getter]
    fn leading(&self) -> bool {
        self.provisioner.is_leading()
    }

    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        slf.get().start()?;
        Ok(slf)
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.stop(py, 30.0)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!(
            "Provisioner(running={}, leading={})",
            self.running(),
            self.leading()
        )
    }
}

struct StreamState {
    provisioner: Provisioner,
    events: broadcast::Receiver<StoreEvent>,
    id: StoreId,
    after: i64,
    buffer: VecDeque<StoreEvent>,
    /// Whether the store was found to exist.
    checked: bool,
    finished: bool,
    timeout: Option<Duration>,
    /// Set when the first event is asked for.
    deadline: Option<Instant>,
}

impl StreamState {
    async fn fetch(&mut self) -> PyResult<()> {
        let events = self
            .provisioner
            .repository()
            .events(&self.id, self.after)
            .await
            .map_err(to_py)?;
        self.buffer.extend(events);
        Ok(())
    }

    async fn next(&mut self) -> PyResult<Option<StoreEvent>> {
        if self.finished {
            return Ok(None);
        }
        if !self.checked {
            let exists = self
                .provisioner
                .repository()
                .get_store(&self.id)
                .await
                .map_err(to_py)?
                .is_some();
            if !exists {
                self.finished = true;
                return Err(exception(
                    ErrorKind::NotFound,
                    format!("store {} not found", self.id),
                    None,
                ));
            }
            self.checked = true;
            self.deadline = self.timeout.map(|t| Instant::now() + t);
        }
        loop {
            if let Some(event) = self.buffer.pop_front() {
                self.after = event.seq;
                if event.is_terminal() && self.buffer.is_empty() {
                    // Settled, unless something happened since (a retry, a delete).
                    self.fetch().await?;
                    self.finished = self.buffer.is_empty();
                }
                return Ok(Some(event));
            }
            self.fetch().await?;
            if !self.buffer.is_empty() {
                continue;
            }
            let (id, timeout) = (&self.id, self.timeout.unwrap_or_default());
            let timed_out = format!(
                "store {id} did not settle within {:.0} s",
                timeout.as_secs_f64()
            );
            if let Err(error) = pause(&mut self.events, self.deadline, timed_out).await {
                self.finished = true;
                return Err(error);
            }
        }
    }
}

/// A store's events, history first, then live, until it settles. Iterable with `for` and
/// `async for`.
#[pyclass(name = "EventStream", module = "storefactory", frozen)]
pub struct PyEventStream {
    state: Arc<tokio::sync::Mutex<StreamState>>,
}

#[pymethods]
impl PyEventStream {
    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<PyEvent>> {
        let state = Arc::clone(&self.state);
        block_on(py, async move {
            let mut state = state.lock().await;
            Ok(state.next().await?.map(PyEvent::from))
        })
    }

    fn __aiter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let state = Arc::clone(&self.state);
        awaitable(py, async move {
            let mut state = state.lock().await;
            match state.next().await? {
                Some(event) => Ok(PyEvent::from(event)),
                None => Err(PyStopAsyncIteration::new_err(())),
            }
        })
    }
}
