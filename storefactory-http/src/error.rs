//! Errors of setting up and running the server. Errors of single requests are
//! [`crate::ApiError`]s, answered to the client instead.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why the server could not start or stopped with a failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database file could not be opened (or migrated).
    #[error("cannot open database {}", path.display())]
    OpenDatabase {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: storefactory_sql::Error,
    },

    /// A database operation needed at start-up failed.
    #[error("database failed to {operation}")]
    Database {
        /// What was being done, e.g. `load the token key`.
        operation: &'static str,
        /// Why.
        #[source]
        source: storefactory_sql::Error,
    },

    /// The configured admin password was not accepted for the first user.
    #[error("cannot create the first user `admin`")]
    CreateAdmin {
        /// Why, e.g. a password that is too short.
        #[source]
        source: storefactory_sql::Error,
    },

    /// The generated password of the first `admin` could not be written to its file (the
    /// user is then not created: nobody could log in).
    #[error("cannot write the generated admin password to {}", path.display())]
    WriteAdminPassword {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// The configured token key is too short to sign tokens safely.
    #[error("token key is {len} bytes long; at least {min} bytes are required")]
    TokenKeyTooShort {
        /// Its length.
        len: usize,
        /// The minimum.
        min: usize,
    },

    /// The blueprints could not be loaded.
    #[error("cannot load blueprints")]
    LoadBlueprints {
        /// Why.
        #[source]
        source: storefactory_core::Error,
    },

    /// A configured CORS origin is not a valid header value.
    #[error("invalid CORS origin {origin:?}: expected e.g. https://shops.example.com")]
    InvalidCorsOrigin {
        /// The origin as configured.
        origin: String,
    },

    /// A configured trusted proxy is not an address or network.
    #[error("invalid trusted proxy {proxy:?}: expected an address or a network such as 10.0.0.0/8")]
    InvalidTrustedProxy {
        /// The proxy as configured.
        proxy: String,
    },

    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// Serving connections failed.
    #[error("HTTP server failed")]
    Serve {
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// Where backup archives are kept cannot be used (the reason is the source).
    #[error("the backup archive store is not usable")]
    ArchiveStore {
        /// Why, e.g. the bucket refused the credentials.
        source: std::io::Error,
    },

    /// The archive bucket's configuration is not usable (never shows the secret).
    #[error("invalid backup bucket configuration: {reason}")]
    InvalidBucket {
        /// What is wrong.
        reason: String,
    },

    /// The archive bucket could not be used at start-up.
    #[error("backup bucket {bucket} at {endpoint} is not usable: {reason}")]
    BucketUnavailable {
        /// The endpoint as configured.
        endpoint: String,
        /// The bucket.
        bucket: String,
        /// Why, e.g. `cannot connect: Connection refused` or `answered 403 …`.
        reason: String,
    },
}
