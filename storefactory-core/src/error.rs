//! Errors of the core crate.

use std::path::PathBuf;

use crate::spec::StoreId;

/// Result with core's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an error is: the one classification every edge maps to its own
/// codes (an HTTP status, a CLI exit code, a Python exception), each in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input is not acceptable; the message says what to fix.
    Invalid,
    /// The thing asked for does not exist (or is not the caller's to see).
    NotFound,
    /// Something with this name or id already exists.
    AlreadyExists,
    /// The current state does not allow the operation (a store that is not failed cannot be
    /// retried; a transition lost a race).
    Conflict,
    /// The owner's quota does not allow it.
    QuotaExceeded,
    /// A dependency (the cluster, the database) cannot be reached or is busy; retrying later
    /// may work.
    Unavailable,
    /// The cluster refused the operation for a reason that is not the caller's.
    Cluster,
    /// A fault inside Storefactory or its configuration (a broken blueprint, a corrupt
    /// record).
    Internal,
}

impl ErrorKind {
    /// A stable lowercase name, e.g. `not_found`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Invalid => "invalid",
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::Conflict => "conflict",
            ErrorKind::QuotaExceeded => "quota_exceeded",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Cluster => "cluster",
            ErrorKind::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A value given to Storefactory was not acceptable. The message names the field and the
/// problem, for a person to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// The field (dotted path) that was wrong, e.g. `ingress.host` or `products line 3`.
    pub field: String,
    /// What was wrong with it.
    pub message: String,
}

impl ValidationError {
    /// A validation error for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A storage port ([`crate::port::StoreRepository`]) failed.
///
/// A backend wraps its own errors in [`RepositoryError::Backend`] with the kind it knows
/// them to be, so that the edges can tell a busy database from a broken one.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    /// The owner's quota does not allow the new store.
    #[error("quota exceeded for {owner}: {message}")]
    QuotaExceeded {
        /// The owner whose quota would be exceeded.
        owner: String,
        /// Which limit, in words.
        message: String,
    },
    /// A live store with this id already exists.
    #[error("store {id} already exists")]
    AlreadyExists {
        /// The id.
        id: StoreId,
    },
    /// No store with this id.
    #[error("store {id} not found")]
    NotFound {
        /// The id.
        id: StoreId,
    },
    /// The store is not in a status from which it may take the requested one (see
    /// [`crate::store::StoreStatus::can_become`]); someone else changed it first.
    #[error("store {id} is {from} and cannot become {to}")]
    InvalidTransition {
        /// The id.
        id: StoreId,
        /// Its current status.
        from: crate::store::StoreStatus,
        /// The status asked for.
        to: crate::store::StoreStatus,
    },
    /// The custom domain is already held by another store, as a custom domain or as its
    /// own host. Which store is not said: it may be someone else's.
    #[error("domain {host} is already used by another store")]
    DomainTaken {
        /// The domain.
        host: String,
    },
    /// The store has as many custom domains as a store may have.
    #[error("store {id} already has {max} custom domains, the most a store may have")]
    DomainLimit {
        /// The store.
        id: StoreId,
        /// The limit ([`crate::spec::MAX_DOMAINS`]).
        max: usize,
    },
    /// The store has no such custom domain.
    #[error("store {id} has no custom domain {host}")]
    DomainNotFound {
        /// The store.
        id: StoreId,
        /// The domain asked for.
        host: String,
    },
    /// The store's status does not allow the change (its custom domains change only while
    /// it is ready or suspended); nothing was changed.
    #[error("store {id} is {status}")]
    WrongStatus {
        /// The store.
        id: StoreId,
        /// Its current status.
        status: crate::store::StoreStatus,
    },
    /// The storage backend failed.
    #[error("storage backend failed while trying to {operation}")]
    Backend {
        /// What was being done.
        operation: String,
        /// What kind of failure it is ([`ErrorKind::Unavailable`] for a busy database).
        kind: ErrorKind,
        /// Why it failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl RepositoryError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RepositoryError::QuotaExceeded { .. } => ErrorKind::QuotaExceeded,
            RepositoryError::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            RepositoryError::NotFound { .. } => ErrorKind::NotFound,
            RepositoryError::InvalidTransition { .. }
            | RepositoryError::DomainTaken { .. }
            | RepositoryError::DomainLimit { .. }
            | RepositoryError::WrongStatus { .. } => ErrorKind::Conflict,
            RepositoryError::DomainNotFound { .. } => ErrorKind::NotFound,
            RepositoryError::Backend { kind, .. } => *kind,
        }
    }
}

/// Errors of the core crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input failed validation.
    #[error("invalid input: {0}")]
    Invalid(#[from] ValidationError),

    /// No blueprint with this name is registered.
    #[error("unknown blueprint {name:?}")]
    UnknownBlueprint {
        /// The name asked for.
        name: String,
    },

    /// A blueprint's files could not be read or are malformed.
    #[error("cannot load blueprint {name:?}: {message}")]
    LoadBlueprint {
        /// The blueprint.
        name: String,
        /// What was wrong.
        message: String,
    },

    /// A blueprint directory could not be read.
    #[error("cannot read {}", path.display())]
    ReadBlueprintDir {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// A template failed to compile.
    #[error("template {template} does not compile")]
    CompileTemplate {
        /// The template, `<blueprint>/<file>`.
        template: String,
        /// Why.
        #[source]
        source: Box<handlebars::TemplateError>,
    },

    /// A template failed to render (a missing value in strict mode, a failing helper, ...).
    #[error("template {template} failed to render")]
    RenderTemplate {
        /// The template, `<blueprint>/<file>`.
        template: String,
        /// Why.
        #[source]
        source: Box<handlebars::RenderError>,
    },

    /// A rendered template is not the YAML of a known Kubernetes object.
    #[error("template {template} rendered an invalid object: {message}")]
    ParseManifest {
        /// The template, `<blueprint>/<file>`.
        template: String,
        /// What was wrong, including the path of an unknown key.
        message: String,
    },

    /// A storage port failed.
    #[error(transparent)]
    Repository(#[from] RepositoryError),

    /// A Kubernetes API call failed.
    #[error("{operation} failed")]
    Kube {
        /// What was being done, e.g. `apply Deployment store-ab12/wordpress`.
        operation: String,
        /// Why.
        #[source]
        source: kube::Error,
    },

    /// The store does not exist.
    #[error("store {id} not found")]
    StoreNotFound {
        /// The id.
        id: StoreId,
    },

    /// The store is not in a state that allows the operation.
    #[error("store {id} is {status}: cannot {operation}")]
    InvalidState {
        /// The id.
        id: StoreId,
        /// Its current status.
        status: crate::store::StoreStatus,
        /// What was asked.
        operation: &'static str,
    },

    /// The store's blueprint declares nothing to suspend (`lifecycle.suspend`).
    #[error(
        "store {id} cannot be suspended: its blueprint {blueprint} declares no workloads to \
         suspend (lifecycle.suspend)"
    )]
    CannotSuspend {
        /// The id.
        id: StoreId,
        /// Its blueprint.
        blueprint: String,
    },

    /// The namespace the store's objects were created in vanished or was replaced: the
    /// store's data is gone, and the store is not re-created empty.
    #[error(
        "namespace {namespace} {reason}: the store's data is lost. Delete the store and create \
         it again (restoring a backup if there is one)"
    )]
    NamespaceLost {
        /// The namespace.
        namespace: String,
        /// What happened to it.
        reason: String,
    },

    /// No backup with this id (of this store).
    #[error("backup {id} not found")]
    BackupNotFound {
        /// The id asked for.
        id: String,
    },

    /// A backup's archive could not be read or removed on the platform's disk.
    #[error("the archive of backup {id} cannot be read or removed")]
    BackupArchive {
        /// The backup.
        id: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// The store cannot be backed up or restored here: backups are not configured, its
    /// repository keeps no backups, or its blueprint declares no backup Job.
    #[error("store {id} cannot be backed up or restored: {reason}")]
    BackupsUnavailable {
        /// The store.
        id: StoreId,
        /// Why, for a person.
        reason: String,
    },

    /// The store's namespace exists but was not created for this store; it is left alone.
    #[error("namespace {namespace} already exists and does not belong to this store")]
    NamespaceTaken {
        /// The namespace.
        namespace: String,
    },
}

impl Error {
    /// What kind of failure this is: the edges choose their status codes from it.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Invalid(_) => ErrorKind::Invalid,
            Error::StoreNotFound { .. }
            | Error::UnknownBlueprint { .. }
            | Error::BackupNotFound { .. } => ErrorKind::NotFound,
            Error::BackupsUnavailable { .. } => ErrorKind::Conflict,
            Error::InvalidState { .. } | Error::CannotSuspend { .. } => ErrorKind::Conflict,
            Error::NamespaceTaken { .. } | Error::NamespaceLost { .. } => ErrorKind::Conflict,
            Error::Repository(error) => error.kind(),
            Error::Kube { source, .. } if kube_error_is_transient(source) => ErrorKind::Unavailable,
            Error::Kube { .. } => ErrorKind::Cluster,
            Error::LoadBlueprint { .. }
            | Error::ReadBlueprintDir { .. }
            | Error::CompileTemplate { .. }
            | Error::RenderTemplate { .. }
            | Error::ParseManifest { .. }
            | Error::BackupArchive { .. } => ErrorKind::Internal,
        }
    }

    /// The field an [`ErrorKind::Invalid`] error is about, when it names one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Invalid(v) => Some(&v.field),
            _ => None,
        }
    }

    /// Whether retrying the same operation later may succeed: connection problems, server
    /// errors, throttling and storage hiccups, but never bad input.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Kube { source, .. } => kube_error_is_transient(source),
            // A storage failure is never the store's fault: look again later rather than
            // fail it.
            Error::Repository(RepositoryError::Backend { .. }) => true,
            _ => false,
        }
    }
}

/// Whether a Kubernetes API error is worth retrying: transport failures, 5xx, 429 and 409
/// conflicts of optimistic concurrency.
pub fn kube_error_is_transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code >= 500 || status.code == 429 || status.code == 409,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}
