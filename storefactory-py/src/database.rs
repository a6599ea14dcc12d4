//! The platform's SQLite database from Python: users, roles and quotas, and webhooks.

use std::path::PathBuf;

use pyo3::prelude::*;
use storefactory_core::port::Quota;
use storefactory_sql::{
    DEFAULT_DELIVERIES, DEFAULT_MAX_WEBHOOKS_PER_OWNER, Database, Role, User, WebhookEvents,
    WebhookRequest, WebhookRules,
};

use crate::error::{exception, invalid, to_py};
use crate::runtime::block_on;
use crate::webhooks::{PyWebhook, PyWebhookDelivery};

/// A user of the platform, without the password hash.
#[pyclass(name = "User", module = "storefactory", frozen, get_all)]
pub struct PyUser {
    /// Unique name; stores name it as their owner.
    username: String,
    /// `"admin"` or `"user"`.
    role: String,
    /// Most stores the user may hold at once.
    max_stores: u32,
    /// Most storage, in GiB, over all the user's stores.
    max_storage_gib: u64,
    /// When the user was created, in seconds since the epoch.
    created_at: f64,
}

impl From<User> for PyUser {
    fn from(user: User) -> Self {
        PyUser {
            username: user.username,
            role: user.role.as_str().to_owned(),
            max_stores: user.quota.max_stores,
            max_storage_gib: user.quota.max_storage_gib,
            created_at: user.created_at.0 as f64 / 1000.0,
        }
    }
}

#[pymethods]
impl PyUser {
    fn __repr__(&self) -> String {
        format!(
            "User(username={:?}, role={:?}, max_stores={}, max_storage_gib={})",
            self.username, self.role, self.max_stores, self.max_storage_gib
        )
    }
}

fn role(text: &str) -> PyResult<Role> {
    text.parse::<Role>()
        .map_err(|e| invalid("role", e.to_string()))
}

/// The platform's database (a SQLite file, shared safely with a running server and the
/// command line): users, their quotas, the stores' records, and webhooks.
#[pyclass(name = "Database", module = "storefactory", frozen)]
pub struct PyDatabase {
    pub db: Database,
}

#[pymethods]
impl PyDatabase {
    /// Opens (creating and migrating if needed) the database at `path`.
    #[new]
    fn open(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let db = block_on(
            py,
            async move { Database::open(&path).await.map_err(to_py) },
        )?;
        Ok(PyDatabase { db })
    }

    /// Creates a user; the password is kept as an Argon2id hash. Raises `ValidationError`
    /// (username, password or role) or `AlreadyExists`.
    #[pyo3(signature = (username, password, *, role="user", max_stores=None, max_storage_gib=None))]
    fn create_user(
        &self,
        py: Python<'_>,
        username: &str,
        password: &str,
        role: &str,
        max_stores: Option<u32>,
        max_storage_gib: Option<u64>,
    ) -> PyResult<PyUser> {
        let role = self::role(role)?;
        let default = Quota::default();
        let quota = Quota {
            max_stores: max_stores.unwrap_or(default.max_stores),
            max_storage_gib: max_storage_gib.unwrap_or(default.max_storage_gib),
        };
        let (db, username, password) = (self.db.clone(), username.to_owned(), password.to_owned());
        block_on(py, async move {
            db.create_user(&username, &password, role, quota)
                .await
                .map(PyUser::from)
                .map_err(to_py)
        })
    }

    /// The user named `username`, or `None`.
    fn get_user(&self, py: Python<'_>, username: &str) -> PyResult<Option<PyUser>> {
        let (db, username) = (self.db.clone(), username.to_owned());
        block_on(py, async move {
            db.get_user(&username)
                .await
                .map(|user| user.map(PyUser::from))
                .map_err(to_py)
        })
    }

    /// Every user, by name.
    fn list_users(&self, py: Python<'_>) -> PyResult<Vec<PyUser>> {
        let db = self.db.clone();
        block_on(py, async move {
            db.list_users()
                .await
                .map(|users| users.into_iter().map(PyUser::from).collect())
                .map_err(to_py)
        })
    }

    /// Sets a user's quota; what is not given stays as it is. Raises `NotFound`.
    #[pyo3(signature = (username, *, max_stores=None, max_storage_gib=None))]
    fn set_quota(
        &self,
        py: Python<'_>,
        username: &str,
        max_stores: Option<u32>,
        max_storage_gib: Option<u64>,
    ) -> PyResult<PyUser> {
        let (db, username) = (self.db.clone(), username.to_owned());
        block_on(py, async move {
            let current = db
                .get_user(&username)
                .await
                .map_err(to_py)?
                .ok_or_else(|| {
                    exception(
                        storefactory_core::error::ErrorKind::NotFound,
                        format!("user {username} not found"),
                        None,
                    )
                })?;
            let quota = Quota {
                max_stores: max_stores.unwrap_or(current.quota.max_stores),
                max_storage_gib: max_storage_gib.unwrap_or(current.quota.max_storage_gib),
            };
            db.set_quota(&username, quota)
                .await
                .map(PyUser::from)
                .map_err(to_py)
        })
    }

    /// Makes a user `"admin"` or `"user"`. Raises `NotFound`.
    fn set_role(&self, py: Python<'_>, username: &str, role: &str) -> PyResult<PyUser> {
        let role = self::role(role)?;
        let (db, username) = (self.db.clone(), username.to_owned());
        block_on(py, async move {
            db.set_role(&username, role)
                .await
                .map(PyUser::from)
                .map_err(to_py)
        })
    }

    /// What a user's stores hold now: `{"stores": n, "storage_gib": n}`.
    fn usage(
        &self,
        py: Python<'_>,
        username: &str,
    ) -> PyResult<std::collections::BTreeMap<&'static str, u64>> {
        let (db, username) = (self.db.clone(), username.to_owned());
        let usage = block_on(py, async move { db.usage(&username).await.map_err(to_py) })?;
        Ok([
            ("stores", u64::from(usage.stores)),
            ("storage_gib", usage.storage_gib),
        ]
        .into())
    }

    /// Registers a webhook: store events of `owner`'s stores (every user's with
    /// `all_stores`, for an admin) are POSTed to `url`, signed with a secret that the
    /// returned `Webhook` carries in `secret` this once: keep it.
    ///
    /// The rules are the HTTP API's: an absolute https URL without credentials or a
    /// fragment, not naming a private, loopback, link-local or cluster-internal host (unless
    /// `allow_private`, as `serve --webhook-allow-private`), at most `max_per_owner` per
    /// user (`serve --max-webhooks-per-user`). The secret is sealed under the server's
    /// token key: pass the key `serve` is given (`token_key`), or `None` for the one a
    /// server without one keeps in the database. Raises `ValidationError` (`field` is
    /// `url`, `events`, `all_stores` or `token_key`: a key that is not the running
    /// server's), `NotFound` (no such owner) or `Conflict` (the owner has the most
    /// webhooks allowed).
    #[pyo3(signature = (
        owner, url, *, events="all", all_stores=false, token_key=None, allow_private=false,
        max_per_owner=DEFAULT_MAX_WEBHOOKS_PER_OWNER
    ))]
    #[allow(clippy::too_many_arguments)]
    fn add_webhook(
        &self,
        py: Python<'_>,
        owner: &str,
        url: &str,
        events: &str,
        all_stores: bool,
        token_key: Option<String>,
        allow_private: bool,
        max_per_owner: usize,
    ) -> PyResult<PyWebhook> {
        let events = WebhookEvents::parse_input(events).map_err(to_py)?;
        let request = WebhookRequest {
            owner: owner.to_owned(),
            url: url.to_owned(),
            events,
            all_stores,
        };
        let rules = WebhookRules {
            allow_private,
            max_per_owner,
        };
        let db = self.db.clone();
        block_on(py, async move {
            let key = db.sealing_key(token_key.as_deref()).await.map_err(to_py)?;
            db.register_webhook(request, rules, &key)
                .await
                .map(PyWebhook::from)
                .map_err(to_py)
        })
    }

    /// Registered webhooks, oldest first: `owner`'s, or everyone's. Never their secrets.
    #[pyo3(signature = (*, owner=None))]
    fn webhooks(&self, py: Python<'_>, owner: Option<String>) -> PyResult<Vec<PyWebhook>> {
        let db = self.db.clone();
        block_on(py, async move {
            db.list_webhooks(owner.as_deref(), usize::MAX)
                .await
                .map(|list| list.into_iter().map(PyWebhook::from).collect())
                .map_err(to_py)
        })
    }

    /// Removes a webhook and its delivery log; its pending deliveries are not sent.
    /// Raises `NotFound`.
    fn remove_webhook(&self, py: Python<'_>, webhook_id: &str) -> PyResult<()> {
        let (db, id) = (self.db.clone(), webhook_id.to_owned());
        block_on(
            py,
            async move { db.remove_webhook(&id).await.map_err(to_py) },
        )
    }

    /// The newest `limit` (1 to 200) deliveries of a webhook, newest first. Raises
    /// `NotFound` or `ValidationError` (`field` is `limit`).
    #[pyo3(signature = (webhook_id, *, limit=DEFAULT_DELIVERIES))]
    fn webhook_deliveries(
        &self,
        py: Python<'_>,
        webhook_id: &str,
        limit: usize,
    ) -> PyResult<Vec<PyWebhookDelivery>> {
        let (db, id) = (self.db.clone(), webhook_id.to_owned());
        block_on(py, async move {
            db.webhook_delivery_log(&id, limit)
                .await
                .map(|log| log.into_iter().map(PyWebhookDelivery::from).collect())
                .map_err(to_py)
        })
    }

    /// The database file.
    #[getter]
    fn path(&self) -> Option<PathBuf> {
        self.db.path().map(PathBuf::from)
    }

    fn __repr__(&self) -> String {
        format!("Database({:?})", self.db.path())
    }
}
