//! The one error shape of the API, `{"error": "...message...", "code": "..."}` (plus `field`
//! for invalid input), and the extractors whose rejections use it.
//!
//! `error` is a string because the clients of the product Storefactory replaces put it
//! straight into a page; the stable `code` sits beside it for programs.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use storefactory_core::error::{ErrorKind, RepositoryError, ValidationError};
use storefactory_core::provisioner::error_chain;

/// An error answered to a client: a status, a stable machine-readable `code` and a message
/// for people. Server-side failures are logged where they are converted and answered
/// without their internals.
#[derive(Debug)]
pub enum ApiError {
    /// A field of the request is not acceptable (422 `invalid_input`).
    Invalid {
        /// The field, e.g. `storage_size_gi` or `sample_products line 3`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The request was refused before it reached a handler: malformed JSON, unknown fields, a
    /// wrong content type, a body over the limit, an unsupported method... The status is the
    /// one that fits (400, 405, 413, 415, 422).
    Rejected {
        /// The status.
        status: StatusCode,
        /// Stable code, e.g. `invalid_json`.
        code: &'static str,
        /// What was wrong.
        message: String,
    },
    /// No valid bearer token (401 `unauthorized`).
    Unauthorized(String),
    /// Authenticated, but not allowed (403 `forbidden`).
    Forbidden(String),
    /// The owner's quota does not allow it (403 `quota_exceeded`).
    QuotaExceeded(String),
    /// Nothing there, or nothing the caller may see (404 `not_found`).
    NotFound(String),
    /// The request conflicts with the current state (409), e.g. `invalid_state`,
    /// `user_exists`.
    Conflict {
        /// Stable code.
        code: &'static str,
        /// Details.
        message: String,
    },
    /// Too many failed logins (429 `too_many_attempts`), with the seconds to wait.
    TooManyAttempts {
        /// Seconds until the next attempt is considered.
        retry_after_secs: u64,
    },
    /// Too many of something else at once or within a window: store creations, event
    /// streams (429 `rate_limited`, with `Retry-After`).
    RateLimited {
        /// What was limited, for people.
        message: String,
        /// Seconds until trying again may work.
        retry_after_secs: u64,
    },
    /// The request took longer than the server allows (503 `timeout`).
    Timeout,
    /// The Kubernetes cluster is not configured or not reachable (503
    /// `cluster_unavailable`).
    ClusterUnavailable(String),
    /// A dependency is busy or briefly unavailable (503 `unavailable`); retrying may work.
    Unavailable(String),
    /// The cluster refused an operation for a reason that is not the client's (502
    /// `cluster_error`).
    ClusterError,
    /// Something failed inside the server (500 `internal`). Details are in the log only.
    Internal,
}

impl ApiError {
    /// 404 for a store that does not exist or belongs to someone else: the two must be
    /// indistinguishable.
    pub fn store_not_found() -> Self {
        ApiError::NotFound("store not found".to_owned())
    }

    /// The HTTP status of the error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Rejected { status, .. } => *status,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::QuotaExceeded(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::TooManyAttempts { .. } | ApiError::RateLimited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::ClusterUnavailable(_) | ApiError::Unavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::ClusterError => StatusCode::BAD_GATEWAY,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code of the error.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Invalid { .. } => "invalid_input",
            ApiError::Rejected { code, .. } | ApiError::Conflict { code, .. } => code,
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::QuotaExceeded(_) => "quota_exceeded",
            ApiError::NotFound(_) => "not_found",
            ApiError::TooManyAttempts { .. } => "too_many_attempts",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Timeout => "timeout",
            ApiError::ClusterUnavailable(_) => "cluster_unavailable",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::ClusterError => "cluster_error",
            ApiError::Internal => "internal",
        }
    }

    /// The message for people.
    pub fn message(&self) -> String {
        match self {
            ApiError::Invalid { field, message } => format!("{field}: {message}"),
            ApiError::Rejected { message, .. }
            | ApiError::Conflict { message, .. }
            | ApiError::Unauthorized(message)
            | ApiError::Forbidden(message)
            | ApiError::QuotaExceeded(message)
            | ApiError::NotFound(message)
            | ApiError::ClusterUnavailable(message)
            | ApiError::Unavailable(message)
            | ApiError::RateLimited { message, .. } => message.clone(),
            ApiError::Timeout => {
                "the request took too long and was abandoned; try again".to_owned()
            }
            ApiError::TooManyAttempts { retry_after_secs } => {
                format!("too many failed login attempts; try again in {retry_after_secs} seconds")
            }
            ApiError::ClusterError => {
                "the Kubernetes cluster refused the operation; the server log has details"
                    .to_owned()
            }
            ApiError::Internal => "internal server error; the server log has details".to_owned(),
        }
    }

    /// Logs a server-side failure and returns [`ApiError::Internal`].
    pub(crate) fn internal(context: &str, error: &dyn std::error::Error) -> Self {
        tracing::error!(error = %error_chain(error), "{context}");
        ApiError::Internal
    }
}

impl ApiError {
    /// The JSON body of the error: `{"error": message, "code": code}`, with the `field` of
    /// invalid input and the seconds to wait of a throttled login.
    pub fn body(&self) -> serde_json::Value {
        let mut body = serde_json::json!({ "error": self.message(), "code": self.code() });
        match self {
            ApiError::Invalid { field, .. } => body["field"] = field.as_str().into(),
            ApiError::TooManyAttempts { retry_after_secs }
            | ApiError::RateLimited {
                retry_after_secs, ..
            } => {
                body["retry_after_secs"] = (*retry_after_secs).into();
            }
            _ => {}
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), axum::Json(self.body())).into_response();
        let headers = response.headers_mut();
        match &self {
            ApiError::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::TooManyAttempts { retry_after_secs }
            | ApiError::RateLimited {
                retry_after_secs, ..
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            _ => {}
        }
        response
    }
}

/// What an error is about, for the words and codes of its answer.
#[derive(Debug, Clone, Copy)]
enum Subject {
    /// A store operation (through the Provisioner and the cluster).
    Store,
    /// A user or a database operation.
    User,
}

impl ApiError {
    /// The answer to an error of `kind`: the one place where error kinds become statuses.
    /// `field` names the input an `Invalid` error is about. A store that is missing and one
    /// that is someone else's read the same. Failures that are not the client's are logged
    /// here and answered without their internals.
    fn of_kind(
        kind: ErrorKind,
        field: Option<&str>,
        subject: Subject,
        error: &dyn std::error::Error,
    ) -> Self {
        match kind {
            ErrorKind::Invalid => {
                let text = error.to_string();
                let text = text.strip_prefix("invalid input: ").unwrap_or(&text);
                match field {
                    // The message of a validation error starts with its field already.
                    Some(field) => ApiError::Invalid {
                        field: field.to_owned(),
                        message: text
                            .strip_prefix(&format!("{field}: "))
                            .unwrap_or(text)
                            .to_owned(),
                    },
                    None => ApiError::Invalid {
                        field: "request".to_owned(),
                        message: text.to_owned(),
                    },
                }
            }
            ErrorKind::NotFound => match subject {
                Subject::Store => ApiError::store_not_found(),
                Subject::User => ApiError::NotFound(error.to_string()),
            },
            ErrorKind::AlreadyExists => ApiError::Conflict {
                code: match subject {
                    Subject::Store => "store_exists",
                    Subject::User => "user_exists",
                },
                message: error.to_string(),
            },
            ErrorKind::Conflict => ApiError::Conflict {
                code: "invalid_state",
                message: error.to_string(),
            },
            ErrorKind::QuotaExceeded => ApiError::QuotaExceeded(quota_message(error)),
            ErrorKind::Unavailable => {
                tracing::warn!(error = %error_chain(error), "dependency unavailable");
                match subject {
                    Subject::Store => ApiError::ClusterUnavailable(
                        "the Kubernetes cluster cannot be reached right now; try again later"
                            .to_owned(),
                    ),
                    Subject::User => {
                        ApiError::Unavailable("the database is busy; try again".to_owned())
                    }
                }
            }
            ErrorKind::Cluster => {
                tracing::error!(error = %error_chain(error), "cluster refused");
                ApiError::ClusterError
            }
            _ => ApiError::internal("operation failed", error),
        }
    }
}

/// The words of a quota error without the owner's name in front.
fn quota_message(error: &dyn std::error::Error) -> String {
    let text = error.to_string();
    match text.split_once(": ") {
        Some((head, rest)) if head.starts_with("quota exceeded") => rest.to_owned(),
        _ => text,
    }
}

impl From<storefactory_core::Error> for ApiError {
    fn from(error: storefactory_core::Error) -> Self {
        // A backend error is classified by the backend that raised it.
        if let storefactory_core::Error::Repository(repository) = error {
            return repository.into();
        }
        if let storefactory_core::Error::BackupNotFound { .. } = error {
            return ApiError::NotFound(error.to_string());
        }
        ApiError::of_kind(error.kind(), error.field(), Subject::Store, &error)
    }
}

impl From<ValidationError> for ApiError {
    fn from(error: ValidationError) -> Self {
        ApiError::Invalid {
            field: error.field,
            message: error.message,
        }
    }
}

impl From<RepositoryError> for ApiError {
    fn from(error: RepositoryError) -> Self {
        match error {
            RepositoryError::Backend { source, kind, .. } => {
                match source.downcast::<storefactory_sql::Error>() {
                    Ok(sql) => (*sql).into(),
                    Err(source) => ApiError::of_kind(kind, None, Subject::User, &*source),
                }
            }
            // Said as they are: which domain, and why (the store itself exists).
            RepositoryError::DomainTaken { .. } => ApiError::Conflict {
                code: "domain_taken",
                message: error.to_string(),
            },
            RepositoryError::DomainLimit { .. } => ApiError::Conflict {
                code: "domain_limit",
                message: error.to_string(),
            },
            RepositoryError::DomainNotFound { .. } => ApiError::NotFound(error.to_string()),
            error => ApiError::of_kind(error.kind(), None, Subject::Store, &error),
        }
    }
}

impl From<storefactory_sql::Error> for ApiError {
    fn from(error: storefactory_sql::Error) -> Self {
        let subject = match &error {
            storefactory_sql::Error::StoreNotFound { .. }
            | storefactory_sql::Error::StoreExists { .. } => Subject::Store,
            _ => Subject::User,
        };
        ApiError::of_kind(error.kind(), error.field(), subject, &error)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        let code = match &rejection {
            JsonRejection::JsonDataError(_) => "invalid_input",
            JsonRejection::JsonSyntaxError(_) => "invalid_json",
            JsonRejection::MissingJsonContentType(_) => "unsupported_media_type",
            _ if status == StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            _ => "bad_request",
        };
        ApiError::Rejected {
            status: if status.is_server_error() {
                StatusCode::BAD_REQUEST
            } else {
                status
            },
            code,
            message: rejection.body_text(),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::NotFound(format!("no such resource: {}", rejection.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::Rejected {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_query",
            message: rejection.body_text(),
        }
    }
}

/// [`axum::Json`] whose rejections are [`ApiError`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(ApiJson(value))
    }
}

/// [`axum::extract::Path`] whose rejections are [`ApiError`]s (404: a path that does not
/// parse names nothing).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(ApiPath(value))
    }
}

/// [`axum::extract::Query`] whose rejections are [`ApiError`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(ApiQuery(value))
    }
}
