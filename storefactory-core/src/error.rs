//! Errors of the core crate.

use std::path::PathBuf;

use crate::spec::StoreId;

/// Result with core's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

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
    /// The storage backend failed.
    #[error("storage backend failed while trying to {operation}")]
    Backend {
        /// What was being done.
        operation: String,
        /// Why it failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
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

    /// The store's namespace exists but was not created for this store; it is left alone.
    #[error("namespace {namespace} already exists and does not belong to this store")]
    NamespaceTaken {
        /// The namespace.
        namespace: String,
    },
}

impl Error {
    /// Whether retrying the same operation later may succeed: connection problems, server
    /// errors, throttling and storage hiccups, but never bad input.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Kube { source, .. } => kube_error_is_transient(source),
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
