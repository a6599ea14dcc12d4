//! The platform's SQLite database from Python: users, roles and quotas.

use std::path::PathBuf;

use pyo3::prelude::*;
use storefactory_core::port::Quota;
use storefactory_sql::{Database, Role, User};

use crate::error::{exception, invalid, to_py};
use crate::runtime::block_on;

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
/// command line): users, their quotas, and the stores' records.
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

    /// The database file.
    #[getter]
    fn path(&self) -> Option<PathBuf> {
        self.db.path().map(PathBuf::from)
    }

    fn __repr__(&self) -> String {
        format!("Database({:?})", self.db.path())
    }
}
