//! Errors as a Python exception hierarchy: every Rust error is classified once, by its
//! [`ErrorKind`], and mapped here, in one function, to the exception of that kind. Messages
//! are the Rust ones, causes included.
//!
//! ```text
//! StorefactoryError
//! ├── ValidationError      (.field names what to fix)
//! ├── NotFound
//! ├── Conflict
//! │   └── AlreadyExists
//! ├── QuotaExceeded
//! ├── ClusterUnavailable   (retrying later may work)
//! ├── ClusterError         (the cluster refused, for a reason that is not the caller's)
//! ├── StoreFailed          (a wait ended on a failed store)
//! ├── WaitTimeout
//! └── InternalError
//! ```

use pyo3::create_exception;
use pyo3::prelude::*;
use storefactory_core::error::{ErrorKind, RepositoryError, ValidationError as InvalidInput};
use storefactory_core::provisioner::error_chain;

create_exception!(
    storefactory,
    StorefactoryError,
    pyo3::exceptions::PyException,
    "Base class of every error Storefactory raises."
);
create_exception!(
    storefactory,
    ValidationError,
    StorefactoryError,
    "The input is not acceptable. `field` names what to fix; the message says how."
);
create_exception!(
    storefactory,
    NotFound,
    StorefactoryError,
    "The store, user or blueprint does not exist."
);
create_exception!(
    storefactory,
    Conflict,
    StorefactoryError,
    "The current state does not allow the operation (e.g. retrying a store that has not failed)."
);
create_exception!(
    storefactory,
    AlreadyExists,
    Conflict,
    "Something with this name or id already exists."
);
create_exception!(
    storefactory,
    QuotaExceeded,
    StorefactoryError,
    "The owner's quota does not allow another store of this size."
);
create_exception!(
    storefactory,
    ClusterUnavailable,
    StorefactoryError,
    "The cluster or the database cannot be reached or is busy; retrying later may work."
);
create_exception!(
    storefactory,
    ClusterError,
    StorefactoryError,
    "The cluster refused the operation for a reason that is not the caller's."
);
create_exception!(
    storefactory,
    StoreFailed,
    StorefactoryError,
    "A store that was waited for failed (or is being deleted) and will not become ready."
);
create_exception!(
    storefactory,
    WaitTimeout,
    StorefactoryError,
    "A wait ran out of time before the store got where it was going."
);
create_exception!(
    storefactory,
    InternalError,
    StorefactoryError,
    "A fault inside Storefactory or its configuration (a broken blueprint, a corrupt record)."
);

/// Adds the exception classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("StorefactoryError", py.get_type::<StorefactoryError>())?;
    m.add("ValidationError", py.get_type::<ValidationError>())?;
    m.add("NotFound", py.get_type::<NotFound>())?;
    m.add("Conflict", py.get_type::<Conflict>())?;
    m.add("AlreadyExists", py.get_type::<AlreadyExists>())?;
    m.add("QuotaExceeded", py.get_type::<QuotaExceeded>())?;
    m.add("ClusterUnavailable", py.get_type::<ClusterUnavailable>())?;
    m.add("ClusterError", py.get_type::<ClusterError>())?;
    m.add("StoreFailed", py.get_type::<StoreFailed>())?;
    m.add("WaitTimeout", py.get_type::<WaitTimeout>())?;
    m.add("InternalError", py.get_type::<InternalError>())?;
    Ok(())
}

/// The exception of `kind` with `message`; for [`ErrorKind::Invalid`], `field` is set on it.
pub fn exception(kind: ErrorKind, message: String, field: Option<&str>) -> PyErr {
    let error = match kind {
        ErrorKind::Invalid => ValidationError::new_err(message),
        ErrorKind::NotFound => NotFound::new_err(message),
        ErrorKind::AlreadyExists => AlreadyExists::new_err(message),
        ErrorKind::Conflict => Conflict::new_err(message),
        ErrorKind::QuotaExceeded => QuotaExceeded::new_err(message),
        ErrorKind::Unavailable => ClusterUnavailable::new_err(message),
        ErrorKind::Cluster => ClusterError::new_err(message),
        _ => InternalError::new_err(message),
    };
    if kind == ErrorKind::Invalid {
        Python::attach(|py| {
            // Setting an attribute on a fresh exception object cannot fail in practice; if it
            // did, the exception would still say what is wrong.
            let _ = error.value(py).setattr("field", field);
        });
    }
    error
}

/// A Rust error that knows its kind.
pub trait Classified: std::error::Error {
    /// What kind of failure it is.
    fn kind(&self) -> ErrorKind;
    /// The field an invalid input is about.
    fn field(&self) -> Option<&str> {
        None
    }
}

impl Classified for storefactory_core::Error {
    fn kind(&self) -> ErrorKind {
        storefactory_core::Error::kind(self)
    }
    fn field(&self) -> Option<&str> {
        storefactory_core::Error::field(self)
    }
}

impl Classified for storefactory_sql::Error {
    fn kind(&self) -> ErrorKind {
        storefactory_sql::Error::kind(self)
    }
    fn field(&self) -> Option<&str> {
        storefactory_sql::Error::field(self)
    }
}

impl Classified for RepositoryError {
    fn kind(&self) -> ErrorKind {
        RepositoryError::kind(self)
    }
}

impl Classified for InvalidInput {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Invalid
    }
    fn field(&self) -> Option<&str> {
        Some(&self.field)
    }
}

/// The Python exception for a Rust error.
pub fn to_py<E: Classified>(error: E) -> PyErr {
    exception(error.kind(), error_chain(&error), error.field())
}

/// An invalid-input exception about `field`.
pub fn invalid(field: &str, message: impl Into<String>) -> PyErr {
    to_py(InvalidInput::new(field, message))
}
