//! Errors of the SQLite persistence crate.

use std::path::PathBuf;

use storefactory_core::error::{ErrorKind, RepositoryError};
use storefactory_core::spec::StoreId;
use storefactory_core::store::StoreStatus;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in [`crate::Database`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database file could not be opened or configured.
    #[error("cannot open database {}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },

    /// SQLite would not switch the file to WAL mode (some network file systems cannot).
    #[error("cannot use WAL journal mode for {} (SQLite kept {mode:?})", path.display())]
    JournalMode {
        /// The file.
        path: PathBuf,
        /// The journal mode SQLite reported instead.
        mode: String,
    },

    /// Encoding a value for the database failed.
    #[error("cannot encode {what}")]
    Encode {
        /// What was being encoded, e.g. `store spec`.
        what: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },

    /// The database was written by a newer Storefactory; this one does not know its schema.
    #[error(
        "database {} has schema version {found}, but this Storefactory supports at most \
         version {supported}; upgrade Storefactory or restore a backup",
        path.display()
    )]
    NewerSchema {
        /// The file.
        path: PathBuf,
        /// The version recorded in the file.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },

    /// The file is an SQLite database of some other application.
    #[error(
        "{} is not a Storefactory database (application id {application_id:#x})",
        path.display()
    )]
    ForeignDatabase {
        /// The file.
        path: PathBuf,
        /// The application id found in the file header.
        application_id: i32,
    },

    /// A schema migration failed; the database was left at the previous version.
    #[error("migrating the database to schema version {version} failed")]
    Migrate {
        /// The version being migrated to.
        version: i64,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },

    /// A query failed.
    #[error("database failed to {operation}")]
    Query {
        /// What was being done, e.g. `insert store`.
        operation: &'static str,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },

    /// A value read from the database could not be decoded.
    #[error("database holds an invalid {what}: {message}")]
    Corrupt {
        /// What was being read, e.g. `store spec`.
        what: &'static str,
        /// What was wrong with it.
        message: String,
    },

    /// A user with this name already exists.
    #[error("user {username:?} already exists")]
    UserExists {
        /// The name.
        username: String,
    },

    /// No user with this name.
    #[error("user {username:?} not found")]
    UserNotFound {
        /// The name.
        username: String,
    },

    /// A username does not follow the rules.
    #[error("invalid username {username:?}: {reason}")]
    InvalidUsername {
        /// The name given.
        username: String,
        /// Which rule it breaks.
        reason: &'static str,
    },

    /// A password does not follow the rules.
    #[error("invalid password: {reason}")]
    InvalidPassword {
        /// Which rule it breaks.
        reason: &'static str,
    },

    /// Hashing a password failed.
    #[error("cannot hash password: {message}")]
    HashPassword {
        /// Why, as told by the hashing library.
        message: String,
    },

    /// A live store with this id already exists.
    #[error("store {id} already exists")]
    StoreExists {
        /// The id.
        id: StoreId,
    },

    /// No store with this id.
    #[error("store {id} not found")]
    StoreNotFound {
        /// The id.
        id: StoreId,
    },
    /// The store's status does not allow the requested transition.
    #[error("store {id} is {from} and cannot become {to}")]
    InvalidTransition {
        /// The store.
        id: StoreId,
        /// Its current status.
        from: StoreStatus,
        /// The status asked for.
        to: StoreStatus,
    },

    /// The owner's quota does not allow the new store (or the owner is not a user, and so
    /// has no quota at all).
    #[error("quota exceeded for {owner}: {message}")]
    QuotaExceeded {
        /// The owner.
        owner: String,
        /// Which limit, in words.
        message: String,
    },

    /// The owner already has the most webhooks allowed.
    #[error("{owner} already has {max} webhooks, the most allowed; delete one first")]
    WebhookLimit {
        /// The owner.
        owner: String,
        /// The limit.
        max: usize,
    },

    /// A webhook registration does not follow the rules (its URL, see
    /// [`crate::webhook_target::parse`]).
    #[error("{field}: {message}")]
    InvalidWebhook {
        /// The input at fault, e.g. `url`.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },

    /// Only an admin's webhook may receive every user's store events.
    #[error("only admins may register a webhook for every user's stores ({owner} is not one)")]
    WebhookNotAdmin {
        /// The owner asked for.
        owner: String,
    },

    /// The token key given to seal or open a value is not the server's.
    #[error(
        "{} is not the key the server seals secrets with: give the server's token key \
         (the file of `serve --token-key-file`, or STOREFACTORY_TOKEN_KEY)",
        if *given { "this token key" } else { "the key kept in the database" }
    )]
    KeyMismatch {
        /// Whether a key was given (or the database's was used).
        given: bool,
    },

    /// No webhook with this id.
    #[error("webhook {id:?} not found")]
    WebhookNotFound {
        /// The id.
        id: String,
    },

    /// Writing a backup failed.
    #[error("cannot back up the database to {}", path.display())]
    Backup {
        /// The destination.
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },

    /// A database or backup file could not be created private to its owner (mode 0600).
    #[error("cannot make {} private to its owner", path.display())]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// A change of a store's custom domains was refused (the domain is another store's,
    /// the store has the most it may have or not this one, its status does not allow it):
    /// core's own account of it, passed through to the Provisioner as it is.
    #[error(transparent)]
    DomainRefused(RepositoryError),

    /// The thread that runs the database's writes could not be started.
    #[error("cannot start the database's writer thread")]
    WriterThread {
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// The async runtime shut down before a database call finished.
    #[error("the runtime shut down during a database call")]
    Shutdown,
}

impl Error {
    /// Whether retrying the same operation later may succeed: the database was busy or
    /// locked (by another process) for longer than the busy timeout.
    pub fn is_transient(&self) -> bool {
        let source = match self {
            Error::Query { source, .. } | Error::Backup { source, .. } => source,
            _ => return false,
        };
        matches!(
            source.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        )
    }

    /// What kind of failure this is: the edges choose their codes from it.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::UserExists { .. } | Error::StoreExists { .. } => ErrorKind::AlreadyExists,
            Error::UserNotFound { .. }
            | Error::StoreNotFound { .. }
            | Error::WebhookNotFound { .. } => ErrorKind::NotFound,
            Error::InvalidUsername { .. }
            | Error::InvalidPassword { .. }
            | Error::InvalidWebhook { .. }
            | Error::WebhookNotAdmin { .. }
            | Error::KeyMismatch { .. } => ErrorKind::Invalid,
            Error::InvalidTransition { .. } | Error::WebhookLimit { .. } => ErrorKind::Conflict,
            Error::QuotaExceeded { .. } => ErrorKind::QuotaExceeded,
            Error::DomainRefused(refused) => refused.kind(),
            error if error.is_transient() => ErrorKind::Unavailable,
            Error::Shutdown => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        }
    }

    /// The field an [`ErrorKind::Invalid`] error is about.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Error::InvalidUsername { .. } => Some("username"),
            Error::InvalidPassword { .. } => Some("password"),
            Error::InvalidWebhook { field, .. } => Some(field),
            Error::WebhookNotAdmin { .. } => Some("all_stores"),
            Error::KeyMismatch { .. } => Some("token_key"),
            _ => None,
        }
    }

    /// Translates the error for core's storage port, keeping the kinds the Provisioner
    /// acts on (quota, already exists, not found) and wrapping the rest as backend failures.
    pub(crate) fn into_repository(self, operation: &str) -> RepositoryError {
        match self {
            Error::QuotaExceeded { owner, message } => {
                RepositoryError::QuotaExceeded { owner, message }
            }
            Error::StoreExists { id } => RepositoryError::AlreadyExists { id },
            Error::DomainRefused(refused) => refused,
            Error::StoreNotFound { id } => RepositoryError::NotFound { id },
            Error::InvalidTransition { id, from, to } => {
                RepositoryError::InvalidTransition { id, from, to }
            }
            other => RepositoryError::Backend {
                operation: operation.to_owned(),
                kind: other.kind(),
                source: Box::new(other),
            },
        }
    }
}

/// Attaches the name of the operation to a rusqlite error.
pub(crate) trait QueryContext<T> {
    /// Wraps an error as [`Error::Query`] for `operation`.
    fn during(self, operation: &'static str) -> Result<T>;
}

impl<T> QueryContext<T> for rusqlite::Result<T> {
    fn during(self, operation: &'static str) -> Result<T> {
        self.map_err(|source| Error::Query { operation, source })
    }
}
