//! Exit codes scripts can rely on, and the translation of errors into them.
//!
//! The codes are listed in `storefactory --help`; changing one breaks scripts.

use std::fmt;

use storefactory_core::error::{ErrorKind, RepositoryError, ValidationError};

/// Why the command ended, as an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// Unexpected failure: I/O, database, a broken blueprint.
    Failure = 1,
    /// Invalid arguments or input.
    Usage = 2,
    /// A store, user or blueprint does not exist.
    NotFound = 3,
    /// Quota exceeded, already exists, or not allowed in the current state.
    Conflict = 4,
    /// The cluster cannot be reached or refused a request.
    Cluster = 5,
    /// The store failed (or went away) while waiting for it.
    StoreFailed = 6,
    /// Waiting took longer than allowed.
    Timeout = 7,
    /// `doctor` found a problem.
    Problems = 8,
}

impl Code {
    /// The process exit code.
    pub fn value(self) -> u8 {
        self as u8
    }
}

/// An error that decides its own exit code.
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub code: Code,
    /// What to tell the user.
    pub message: String,
}

impl Failure {
    /// A failure with `code`.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// The exit code of an error of `kind`: the one place where error kinds become codes.
pub fn kind_code(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::Invalid => Code::Usage,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::AlreadyExists | ErrorKind::Conflict | ErrorKind::QuotaExceeded => Code::Conflict,
        ErrorKind::Unavailable | ErrorKind::Cluster => Code::Cluster,
        _ => Code::Failure,
    }
}

/// The exit code of a core error.
pub fn core_code(error: &storefactory_core::Error) -> Code {
    match error {
        // The database being busy is not the cluster's fault.
        storefactory_core::Error::Repository(RepositoryError::Backend { .. }) => Code::Failure,
        error => kind_code(error.kind()),
    }
}

/// The exit code of an error: the first error in its chain that is known decides.
pub fn code_of(error: &anyhow::Error) -> Code {
    for cause in error.chain() {
        if let Some(f) = cause.downcast_ref::<Failure>() {
            return f.code;
        }
        if let Some(e) = cause.downcast_ref::<storefactory_core::Error>() {
            return core_code(e);
        }
        if let Some(e) = cause.downcast_ref::<RepositoryError>() {
            return match e {
                RepositoryError::Backend { .. } => Code::Failure,
                e => kind_code(e.kind()),
            };
        }
        if let Some(e) = cause.downcast_ref::<storefactory_sql::Error>() {
            return match e.kind() {
                ErrorKind::Unavailable => Code::Failure,
                kind => kind_code(kind),
            };
        }
        if cause.is::<ValidationError>() {
            return Code::Usage;
        }
        if cause.is::<kube::Error>()
            || cause.is::<kube::config::KubeconfigError>()
            || cause.is::<kube::config::InferConfigError>()
        {
            return Code::Cluster;
        }
    }
    Code::Failure
}

#[cfg(test)]
mod tests {
    use anyhow::Context;
    use storefactory_core::spec::StoreId;

    use super::*;

    #[test]
    fn errors_map_to_documented_codes() {
        let id = StoreId::new("ab12").unwrap();
        let cases: Vec<(anyhow::Error, Code)> = vec![
            (anyhow::anyhow!("boom"), Code::Failure),
            (Failure::new(Code::Timeout, "late").into(), Code::Timeout),
            (
                storefactory_core::Error::StoreNotFound { id: id.clone() }.into(),
                Code::NotFound,
            ),
            (
                storefactory_core::Error::from(RepositoryError::QuotaExceeded {
                    owner: "a".into(),
                    message: "full".into(),
                })
                .into(),
                Code::Conflict,
            ),
            (ValidationError::new("f", "bad").into(), Code::Usage),
            (
                storefactory_sql::Error::UserNotFound {
                    username: "bob".into(),
                }
                .into(),
                Code::NotFound,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(code_of(&error), code, "{error:#}");
        }
    }

    #[test]
    fn context_does_not_hide_the_code() {
        let error = Err::<(), _>(storefactory_sql::Error::UserExists {
            username: "bob".into(),
        })
        .context("adding user bob")
        .unwrap_err();
        assert_eq!(code_of(&error), Code::Conflict);
    }
}
