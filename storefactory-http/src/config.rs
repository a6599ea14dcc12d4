//! How the server is set up: [`ServerConfig`].

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use storefactory_core::port::Quota;
use storefactory_core::provisioner::ProvisionerConfig;

use crate::webhooks::WebhookConfig;

/// Everything [`crate::serve`] needs to know. Start from [`ServerConfig::default`] and set
/// the fields that differ:
///
/// ```
/// let mut config = storefactory_http::ServerConfig::default();
/// config.listen = "0.0.0.0:8080".parse().unwrap();
/// config.store_domain = "shops.example.com".to_owned();
/// ```
///
/// The struct is `#[non_exhaustive]` so that fields can be added without breaking callers;
/// it cannot be built with a struct literal outside this crate. Its `Debug` output hides
/// the admin password and the token key.
#[derive(Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Address and port to listen on. Default `127.0.0.1:8080`; port 0 picks a free port
    /// (see [`crate::Server::local_addr`]).
    pub listen: SocketAddr,

    /// The SQLite database file, created if missing. Default `storefactory.db`.
    pub database: PathBuf,

    /// Kubeconfig file of the cluster stores are provisioned in. `None` (the default) uses
    /// the usual discovery: `$KUBECONFIG`, `~/.kube/config`, then the in-cluster service
    /// account. When no cluster can be configured the server starts anyway: `/ready`
    /// reports it and store operations that need the cluster answer 503
    /// `cluster_unavailable`.
    pub kubeconfig: Option<PathBuf>,

    /// DNS domain under which stores are published: store `<id>` is served at
    /// `store-<id>.<store_domain>`. Default `storefactory.local`.
    pub store_domain: String,

    /// IngressClass of store Ingresses; `None` (the default) uses the cluster's default
    /// class.
    pub ingress_class: Option<String>,

    /// StorageClass of store volumes; `None` (the default) uses the cluster's default
    /// class.
    pub storage_class: Option<String>,

    /// cert-manager ClusterIssuer that issues store certificates. `None` (the default)
    /// publishes stores over plain HTTP.
    pub tls_cluster_issuer: Option<String>,

    /// Directory of extra blueprints (`<dir>/<name>/*.yaml.hbs`) that override or add to the
    /// built-in ones. Default `None`: built-in blueprints only.
    pub blueprints_dir: Option<PathBuf>,

    /// Browser origins allowed to call the API (CORS), e.g. `https://shops.example.com`.
    /// Empty (the default) sends no CORS headers, so only same-origin pages can call it.
    pub cors_origins: Vec<String>,

    /// Password of the `admin` user created on first start, when the database has no users.
    /// `None` (the default) generates a random password and writes it to
    /// [`ServerConfig::generated_password_file`]. Ignored once any user exists.
    pub admin_password: Option<String>,

    /// Where a generated password of the first `admin` is written, readable by this user
    /// only (mode 0600), and never logged. `None` (the default) writes it next to the
    /// database file actually opened: `<database>.admin-password`.
    pub generated_password_file: Option<PathBuf>,

    /// Key that signs access tokens (HS256), at least 32 bytes. `None` (the default)
    /// generates a key on first start and keeps it in the database, so tokens survive
    /// restarts. Changing it invalidates every token issued before.
    pub token_key: Option<String>,

    /// Earlier token keys, each at least 32 bytes, that still verify tokens but sign none:
    /// rotating the key is moving it here and setting a new [`ServerConfig::token_key`];
    /// the tokens of the old key stay good until they expire (at most
    /// [`ServerConfig::token_ttl`]), so nobody is logged out at once. Tokens name their key
    /// (`kid`). Default empty.
    pub previous_token_keys: Vec<String>,

    /// How long an access token is valid. Default 1 hour: a stolen token is good for at
    /// most that long, and a logout, a password change or disabling the user voids it
    /// earlier. The dashboard asks to log in again once it expires.
    pub token_ttl: Duration,

    /// Quota of users created through the API without an explicit one. Default
    /// [`Quota::default`] (5 stores, 20 GiB).
    pub default_quota: Quota,

    /// Largest request body accepted, in bytes; larger ones are refused with 413. Default
    /// 1 MiB, enough for the largest product list a store accepts.
    pub max_body_bytes: usize,

    /// Login attempts for one username from one client address within
    /// [`ServerConfig::login_window`] before further attempts are refused with 429. An
    /// attempt counts as soon as it is let through, so parallel guesses count too; a
    /// successful login clears the count. Default 5.
    pub max_failed_logins: u32,

    /// Login attempts on one account, from any address, within
    /// [`ServerConfig::login_window`] before each further attempt must wait a delay that
    /// doubles with every attempt (1 s, 2 s, 4 s, ... at most the window). Slows a guess
    /// spread over many addresses without locking the account: its owner gets through
    /// once the delay has passed. A successful login clears it. Default 20.
    pub max_login_attempts_per_account: u32,

    /// Window over which login attempts are counted; a refused client may try again once
    /// the window of its first attempt has passed. Default 15 minutes.
    pub login_window: Duration,

    /// Whether the client address is taken from the last (rightmost) `X-Forwarded-For`
    /// entry, the one a trusted reverse proxy or ingress controller appends, instead of the
    /// TCP peer. Entries before it are written by the client and never used; behind a chain
    /// of proxies the address is the one the last proxy received the request from. Default
    /// `false`: without a proxy in front, the whole header is client-controlled.
    pub trust_forwarded_for: bool,

    /// Networks of trusted reverse proxies (CIDR, e.g. `10.0.0.0/8`, or single addresses).
    /// When set, `X-Forwarded-For` is read only from a TCP peer in one of them, and walked
    /// from the right through trusted hops only: the first address not in a trusted
    /// network is the client. Takes precedence over [`ServerConfig::trust_forwarded_for`].
    /// Default empty.
    pub trusted_proxies: Vec<String>,

    /// Stores one user may create within [`ServerConfig::store_creation_window`]; further
    /// creations answer 429 `rate_limited`. Deleted stores free quota, so without this a
    /// loop of create and delete within any quota would keep the cluster busy. Default 20.
    pub max_store_creations: u32,

    /// Window of [`ServerConfig::max_store_creations`]. Default 1 hour.
    pub store_creation_window: Duration,

    /// How long the records of deleted stores (and their events) are kept for the audit
    /// trail before they are purged. Default 30 days.
    pub deleted_store_retention: Duration,

    /// Event streams (`GET /api/stores/{id}/events`) one user may hold open at once;
    /// further ones answer 429 `rate_limited`. Default 8.
    pub max_event_streams_per_user: usize,

    /// Longest time a request may take before it is answered 503 `timeout` (event streams
    /// excepted). Default 30 seconds.
    pub request_timeout: Duration,

    /// Longest time a Kubernetes call made inside a request (`retry`, `credentials`) may
    /// take before the request answers 503 `cluster_unavailable`. Default 10 seconds.
    pub cluster_call_timeout: Duration,

    /// How the Provisioner behaves (deadlines, retries, concurrency).
    pub provisioner: ProvisionerConfig,

    /// How webhooks behave: which targets are allowed, timeouts, retries, limits.
    pub webhooks: WebhookConfig,

    /// Largest backup archive a store's Job may hand over, in bytes. Default 20 GiB.
    /// (Where archives are kept, where Jobs reach the server and the schedule are in
    /// [`ProvisionerConfig::backups`]; archives default to a `backups` folder next to the
    /// database.)
    pub max_backup_bytes: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            database: PathBuf::from("storefactory.db"),
            kubeconfig: None,
            store_domain: "storefactory.local".to_owned(),
            ingress_class: None,
            storage_class: None,
            tls_cluster_issuer: None,
            blueprints_dir: None,
            cors_origins: Vec::new(),
            admin_password: None,
            generated_password_file: None,
            token_key: None,
            previous_token_keys: Vec::new(),
            token_ttl: Duration::from_secs(60 * 60),
            default_quota: Quota::default(),
            max_body_bytes: 1024 * 1024,
            max_failed_logins: 5,
            max_login_attempts_per_account: 20,
            login_window: Duration::from_secs(15 * 60),
            trust_forwarded_for: false,
            trusted_proxies: Vec::new(),
            max_store_creations: 20,
            store_creation_window: Duration::from_secs(60 * 60),
            deleted_store_retention: Duration::from_secs(30 * 24 * 60 * 60),
            max_event_streams_per_user: 8,
            request_timeout: Duration::from_secs(30),
            cluster_call_timeout: Duration::from_secs(10),
            provisioner: ProvisionerConfig::default(),
            webhooks: WebhookConfig::default(),
            max_backup_bytes: 20 * 1024 * 1024 * 1024,
        }
    }
}

impl ServerConfig {
    /// Where a generated password of the first `admin` goes:
    /// [`ServerConfig::generated_password_file`], else `<database>.admin-password`.
    pub fn generated_password_path(&self) -> PathBuf {
        self.generated_password_file
            .clone()
            .unwrap_or_else(|| password_file_next_to(&self.database))
    }
}

/// `<database>.admin-password`, in the database's directory.
pub(crate) fn password_file_next_to(database: &std::path::Path) -> PathBuf {
    let mut name = database.file_name().unwrap_or_default().to_owned();
    name.push(".admin-password");
    database.with_file_name(name)
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |set: bool| if set { Some("<hidden>") } else { None };
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("database", &self.database)
            .field("kubeconfig", &self.kubeconfig)
            .field("store_domain", &self.store_domain)
            .field("ingress_class", &self.ingress_class)
            .field("storage_class", &self.storage_class)
            .field("tls_cluster_issuer", &self.tls_cluster_issuer)
            .field("blueprints_dir", &self.blueprints_dir)
            .field("cors_origins", &self.cors_origins)
            .field("admin_password", &hidden(self.admin_password.is_some()))
            .field("generated_password_file", &self.generated_password_file)
            .field("token_key", &hidden(self.token_key.is_some()))
            .field(
                "previous_token_keys",
                &format_args!("<{} hidden>", self.previous_token_keys.len()),
            )
            .field("token_ttl", &self.token_ttl)
            .field("default_quota", &self.default_quota)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_failed_logins", &self.max_failed_logins)
            .field(
                "max_login_attempts_per_account",
                &self.max_login_attempts_per_account,
            )
            .field("login_window", &self.login_window)
            .field("trust_forwarded_for", &self.trust_forwarded_for)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("max_store_creations", &self.max_store_creations)
            .field("store_creation_window", &self.store_creation_window)
            .field("deleted_store_retention", &self.deleted_store_retention)
            .field(
                "max_event_streams_per_user",
                &self.max_event_streams_per_user,
            )
            .field("request_timeout", &self.request_timeout)
            .field("cluster_call_timeout", &self.cluster_call_timeout)
            .field("provisioner", &self.provisioner)
            .field("webhooks", &self.webhooks)
            .field("max_backup_bytes", &self.max_backup_bytes)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_secrets() {
        let config = ServerConfig {
            admin_password: Some("hunter2-hunter2".to_owned()),
            token_key: Some("k".repeat(40)),
            ..ServerConfig::default()
        };
        let text = format!("{config:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains(&"k".repeat(40)), "{text}");
        assert!(text.contains("<hidden>"), "{text}");
    }

    #[test]
    fn a_generated_password_goes_next_to_the_database_by_default() {
        let mut config = ServerConfig {
            database: PathBuf::from("/var/lib/sf/storefactory.db"),
            ..ServerConfig::default()
        };
        assert_eq!(
            config.generated_password_path(),
            PathBuf::from("/var/lib/sf/storefactory.db.admin-password")
        );
        config.generated_password_file = Some(PathBuf::from("/run/first-password"));
        assert_eq!(
            config.generated_password_path(),
            PathBuf::from("/run/first-password")
        );
    }
}
