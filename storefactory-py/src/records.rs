//! What the Provisioner answers, as Python objects: stores, their events, credentials.

use pyo3::prelude::*;
use storefactory_core::provisioner::Credentials;
use storefactory_core::store::{EventKind, StoreEvent, StoreRecord, Timestamp};

use crate::spec::PyStoreSpec;

fn seconds(at: Timestamp) -> f64 {
    at.0 as f64 / 1000.0
}

/// A store as the platform records it. Never carries a password.
#[pyclass(name = "Store", module = "storefactory", frozen)]
pub struct PyStore {
    record: StoreRecord,
}

impl From<StoreRecord> for PyStore {
    fn from(record: StoreRecord) -> Self {
        PyStore { record }
    }
}

#[pymethods]
impl PyStore {
    /// The id; the namespace is `store-<id>`.
    #[getter]
    fn id(&self) -> &str {
        self.record.id.as_str()
    }
    /// Name for people.
    #[getter]
    fn name(&self) -> &str {
        &self.record.name
    }
    /// Username of the owner.
    #[getter]
    fn owner(&self) -> &str {
        &self.record.owner
    }
    /// `initialized`, `provisioning`, `ready`, `failed`, `deleting` or `deleted`.
    #[getter]
    fn status(&self) -> &'static str {
        self.record.status.as_str()
    }
    /// Why it failed, or other context for the status.
    #[getter]
    fn reason(&self) -> Option<&str> {
        self.record.reason.as_deref()
    }
    /// The blueprint it is rendered from.
    #[getter]
    fn blueprint(&self) -> &str {
        &self.record.blueprint
    }
    /// Its Kubernetes namespace.
    #[getter]
    fn namespace(&self) -> String {
        self.record.id.namespace()
    }
    /// The host it is published at.
    #[getter]
    fn host(&self) -> &str {
        &self.record.spec.ingress.host
    }
    /// Its custom domains: more hosts it answers on, in the order they were added.
    #[getter]
    fn domains(&self) -> Vec<String> {
        self.record.spec.ingress.domains.clone()
    }
    /// Its public URL.
    #[getter]
    fn url(&self) -> String {
        self.record.spec.url()
    }
    /// Storage it reserves in GiB (WordPress and MySQL volumes).
    #[getter]
    fn storage_gib(&self) -> u64 {
        self.record.storage_gib()
    }
    /// When it was created, in seconds since the epoch.
    #[getter]
    fn created_at(&self) -> f64 {
        seconds(self.record.created_at)
    }
    /// When its record last changed, in seconds since the epoch.
    #[getter]
    fn updated_at(&self) -> f64 {
        seconds(self.record.updated_at)
    }
    /// What it was built from.
    #[getter]
    fn spec(&self) -> PyStoreSpec {
        PyStoreSpec {
            spec: self.record.spec.clone(),
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "Store(id={:?}, owner={:?}, status={:?}, url={:?})",
            self.record.id.as_str(),
            self.record.owner,
            self.record.status.as_str(),
            self.record.spec.url()
        )
    }
}

/// One entry of a store's history.
///
/// `kind` is `"status"` (with `status` and maybe `reason`), `"step"` (with `step` and
/// `message`) or `"warning"` (with `message`); the other fields are `None`.
#[pyclass(name = "Event", module = "storefactory", frozen, get_all)]
pub struct PyEvent {
    /// Position in the store's history, from 1.
    seq: i64,
    /// The store.
    store_id: String,
    /// When it happened, in seconds since the epoch.
    at: f64,
    /// `"status"`, `"step"` or `"warning"`.
    kind: &'static str,
    /// The new status, for a status event.
    status: Option<&'static str>,
    /// Why, for a status event that says.
    reason: Option<String>,
    /// The step, for a step event (e.g. `apply Deployment/wordpress`).
    step: Option<String>,
    /// Details for a person, for step and warning events.
    message: Option<String>,
    /// Whether the store settled with it (ready, failed or deleted).
    is_terminal: bool,
}

impl From<StoreEvent> for PyEvent {
    fn from(event: StoreEvent) -> Self {
        let is_terminal = event.is_terminal();
        let (kind, status, reason, step, message) = match event.kind {
            EventKind::Status { status, reason } => {
                ("status", Some(status.as_str()), reason, None, None)
            }
            EventKind::Step { step, message } => ("step", None, None, Some(step), Some(message)),
            EventKind::Warning { message } => ("warning", None, None, None, Some(message)),
        };
        PyEvent {
            seq: event.seq,
            store_id: event.store_id.to_string(),
            at: seconds(event.at),
            kind,
            status,
            reason,
            step,
            message,
            is_terminal,
        }
    }
}

#[pymethods]
impl PyEvent {
    fn __repr__(&self) -> String {
        let detail = match (self.status, &self.step, &self.message) {
            (Some(status), _, _) => format!("status={status:?}, reason={:?}", self.reason),
            (None, Some(step), message) => format!("step={step:?}, message={message:?}"),
            (None, None, message) => format!("message={message:?}"),
        };
        format!(
            "Event(store_id={:?}, seq={}, kind={:?}, {detail})",
            self.store_id, self.seq, self.kind
        )
    }
}

/// How the owner logs in to a store. `repr()` never shows the password.
#[pyclass(name = "Credentials", module = "storefactory", frozen, get_all)]
pub struct PyCredentials {
    /// User name.
    username: String,
    /// Password.
    password: String,
    /// Where to log in.
    admin_url: String,
}

impl From<Credentials> for PyCredentials {
    fn from(c: Credentials) -> Self {
        PyCredentials {
            username: c.username,
            password: c.password,
            admin_url: c.admin_url,
        }
    }
}

#[pymethods]
impl PyCredentials {
    fn __repr__(&self) -> String {
        format!(
            "Credentials(username={:?}, password=<hidden>, admin_url={:?})",
            self.username, self.admin_url
        )
    }
}

/// A backup of a store: its database and WordPress files, as one archive kept by the
/// platform. Times in seconds since the epoch.
#[pyclass(name = "Backup", module = "storefactory", frozen, get_all)]
pub struct PyBackup {
    /// Its id.
    id: String,
    /// The store it is a backup of.
    store_id: String,
    /// `manual` or `scheduled`.
    kind: &'static str,
    /// `pending`, `completed` or `failed`.
    status: &'static str,
    /// Size of the archive in bytes, once completed.
    size_bytes: Option<u64>,
    /// SHA-256 of the archive, once completed.
    sha256: Option<String>,
    /// When it was asked for.
    created_at: f64,
    /// When it completed or failed.
    finished_at: Option<f64>,
    /// Why it failed.
    error: Option<String>,
}

impl From<storefactory_core::backup::BackupRecord> for PyBackup {
    fn from(b: storefactory_core::backup::BackupRecord) -> Self {
        PyBackup {
            id: b.id.to_string(),
            store_id: b.store_id.to_string(),
            kind: b.kind.as_str(),
            status: b.status.as_str(),
            size_bytes: b.size_bytes,
            sha256: b.sha256,
            created_at: seconds(b.created_at),
            finished_at: b.finished_at.map(seconds),
            error: b.error,
        }
    }
}

#[pymethods]
impl PyBackup {
    fn __repr__(&self) -> String {
        format!(
            "Backup(id={:?}, store_id={:?}, status={:?}, size_bytes={:?})",
            self.id, self.store_id, self.status, self.size_bytes
        )
    }
}

/// A restore of a backup into a store. Times in seconds since the epoch.
#[pyclass(name = "Restore", module = "storefactory", frozen, get_all)]
pub struct PyRestore {
    /// Its id.
    id: String,
    /// The store restored into.
    store_id: String,
    /// The backup restored.
    backup_id: String,
    /// `waiting`, `running`, `completed` or `failed`.
    status: &'static str,
    /// The site URL rewritten from (a clone, or another store's backup).
    old_url: Option<String>,
    /// The site URL rewritten to.
    new_url: Option<String>,
    /// When it was asked for.
    created_at: f64,
    /// When it completed or failed.
    finished_at: Option<f64>,
    /// Why it failed.
    error: Option<String>,
}

impl From<storefactory_core::backup::RestoreRecord> for PyRestore {
    fn from(r: storefactory_core::backup::RestoreRecord) -> Self {
        PyRestore {
            id: r.id.to_string(),
            store_id: r.store_id.to_string(),
            backup_id: r.backup_id.to_string(),
            status: r.status.as_str(),
            old_url: r.old_url,
            new_url: r.new_url,
            created_at: seconds(r.created_at),
            finished_at: r.finished_at.map(seconds),
            error: r.error,
        }
    }
}

#[pymethods]
impl PyRestore {
    fn __repr__(&self) -> String {
        format!(
            "Restore(id={:?}, store_id={:?}, backup_id={:?}, status={:?})",
            self.id, self.store_id, self.backup_id, self.status
        )
    }
}
