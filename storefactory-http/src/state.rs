//! [`AppState`]: what every handler shares.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderValue;
use storefactory_core::blueprint::{BlueprintRegistry, generate_password};
use storefactory_core::port::Quota;
use storefactory_core::provisioner::{Provisioner, ProvisionerConfig, error_chain};
use storefactory_core::store::StoreEvent;
use storefactory_sql::{Database, Role};
use tokio::sync::{broadcast, watch};

use crate::api_error::ApiError;
use crate::auth::{IpNet, LoginThrottle, ProxyTrust, TokenKeys};
use crate::config::ServerConfig;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::webhooks::WebhookConfig;

/// Settings key under which a generated token key is kept.
pub use storefactory_sql::TOKEN_KEY_SETTING;

/// How long a cluster reachability check may take.
const CLUSTER_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// How long `/ready` answers from the last check instead of checking again: anonymous
/// callers cannot make the server call the cluster more often than this.
pub(crate) const READY_CACHE_TTL: Duration = Duration::from_secs(5);

/// What `/ready` found: whether the database and the cluster answered, and when.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Readiness {
    pub database: bool,
    pub cluster: bool,
    pub at: Instant,
}

/// What stores created through the API are published with.
#[derive(Debug, Clone)]
pub(crate) struct StoreDefaults {
    pub domain: String,
    pub ingress_class: Option<String>,
    pub storage_class: Option<String>,
    pub tls_cluster_issuer: Option<String>,
}

/// The Provisioner of the cluster the server works with, and the task that passes its events
/// on to [`AppState::subscribe`]rs.
struct Cluster {
    provisioner: Provisioner,
    forwarder: tokio::task::AbortHandle,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.forwarder.abort();
    }
}

/// What the last look at the cluster found.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reach {
    /// No cluster is configured (yet): why.
    Unconfigured(String),
    /// Configured, but no connection could be made: refused, reset, TLS, or no answer in
    /// time. The only state in which store operations answer 503.
    Unreachable(String),
    /// The API server answered, with an error (it is starting, or refuses the credentials).
    Refused(String),
    /// The API server answered with its version.
    Reachable(String),
}

impl Reach {
    fn result(&self) -> Result<String, String> {
        match self {
            Reach::Reachable(version) => Ok(version.clone()),
            Reach::Unconfigured(why) | Reach::Unreachable(why) | Reach::Refused(why) => {
                Err(why.clone())
            }
        }
    }
}

/// Whether a failed call never reached the API server (as opposed to being answered with an
/// error): kube reports connection failures and timeouts of its HTTP stack this way.
fn is_connection_error(error: &kube::Error) -> bool {
    matches!(error, kube::Error::HyperError(_) | kube::Error::Service(_))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

struct Inner {
    db: Database,
    /// Replaced when the server (re)connects: a cluster that appears after the start, or a
    /// kubeconfig that changes, gets a new client and a new Provisioner.
    cluster: Mutex<Option<Cluster>>,
    reach: Mutex<Reach>,
    blueprints: Arc<BlueprintRegistry>,
    provisioner_config: ProvisionerConfig,
    tokens: TokenKeys,
    throttle: LoginThrottle,
    stores: StoreDefaults,
    default_quota: Quota,
    proxy_trust: ProxyTrust,
    cors_origins: Vec<HeaderValue>,
    creations: CreationLimiter,
    streams: Mutex<HashMap<String, usize>>,
    max_streams_per_user: usize,
    readiness: tokio::sync::Mutex<Option<Readiness>>,
    deleted_store_retention: Duration,
    cluster_call_timeout: Duration,
    request_timeout: Duration,
    max_body_bytes: usize,
    /// Every store event of whichever Provisioner is current: subscribers keep their
    /// subscription when the server reconnects.
    events: broadcast::Sender<StoreEvent>,
    shutdown: watch::Sender<bool>,
    metrics: Metrics,
    webhooks: WebhookConfig,
    /// Which store each custom domain is for, for the paused page.
    domains: crate::domains::DomainCache,
    max_backup_bytes: u64,
}

/// The state every handler shares: the database, the Provisioner (once a cluster is
/// configured), the token keys and the login throttle. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("db", &self.inner.db)
            .field("cluster", &lock(&self.inner.reach))
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Builds the state from `config` over an open database and, when a cluster is
    /// configured, a Kubernetes client (a [`crate::Server`] passes none and connects, and
    /// reconnects, by itself).
    ///
    /// Loads the blueprints, settles the token key (the configured one, else the one kept in
    /// the database, else a new one that is then kept), and on a database without users
    /// creates `admin` (with [`ServerConfig::admin_password`], or a random password written
    /// to [`ServerConfig::generated_password_path`]). The Provisioner's reconciler is not
    /// started: run [`AppState::provisioner`]`.run()` next to the server, as
    /// [`crate::Server`] does.
    pub async fn new(
        config: &ServerConfig,
        db: Database,
        client: Option<kube::Client>,
    ) -> Result<AppState> {
        let mut blueprints =
            BlueprintRegistry::builtin().map_err(|source| Error::LoadBlueprints { source })?;
        if let Some(dir) = &config.blueprints_dir {
            let loaded = blueprints
                .load_dir(dir)
                .map_err(|source| Error::LoadBlueprints { source })?;
            tracing::info!(dir = %dir.display(), ?loaded, "loaded blueprints");
        }
        let key = match &config.token_key {
            Some(key) => key.clone(),
            None => db
                .setting_or_insert(TOKEN_KEY_SETTING, &generate_password(64))
                .await
                .map_err(|source| Error::Database {
                    operation: "load the token key",
                    source,
                })?,
        };
        let tokens = TokenKeys::new(key.as_bytes(), config.token_ttl)?
            .with_previous(config.previous_token_keys.iter().map(|k| k.as_bytes()))?;
        // Values chosen at creation are sealed under a key of the same secret, so that every
        // replica sharing it (and the database) can open them.
        let mut provisioner_config = config.provisioner.clone();
        provisioner_config.sealing_key =
            storefactory_core::seal::SealingKey::derive(key.as_bytes());
        // The command line and scripts register webhooks too: they check their key against
        // this record, so that none seals a secret this server cannot open.
        db.record_sealing_key(&provisioner_config.sealing_key)
            .await
            .map_err(|source| Error::Database {
                operation: "record the webhook sealing key",
                source,
            })?;
        // Archives go next to the database unless configured: the platform's data volume.
        if provisioner_config.backups.archives.is_none() {
            provisioner_config.backups.archives =
                Some(Arc::new(storefactory_core::backup::ArchiveDir::new(
                    config.database.with_file_name("backups"),
                )));
        }
        if let Some(archives) = &provisioner_config.backups.archives {
            archives
                .check()
                .await
                .map_err(|source| Error::ArchiveStore { source })?;
        }
        let metrics = Metrics::new();
        provisioner_config.on_reconcile = Some(metrics.reconcile_hook());
        let cors_origins = config
            .cors_origins
            .iter()
            .map(|origin| {
                let trimmed = origin.trim().trim_end_matches('/');
                let valid = (trimmed.starts_with("http://") || trimmed.starts_with("https://"))
                    && !trimmed.contains(char::is_whitespace);
                valid
                    .then(|| HeaderValue::from_str(trimmed).ok())
                    .flatten()
                    .ok_or_else(|| Error::InvalidCorsOrigin {
                        origin: origin.clone(),
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let proxy_trust = if !config.trusted_proxies.is_empty() {
            let networks = config
                .trusted_proxies
                .iter()
                .map(|proxy| {
                    proxy
                        .parse::<IpNet>()
                        .map_err(|_| Error::InvalidTrustedProxy {
                            proxy: proxy.clone(),
                        })
                })
                .collect::<Result<Vec<_>>>()?;
            ProxyTrust::Networks(networks)
        } else if config.trust_forwarded_for {
            ProxyTrust::LastHop
        } else {
            ProxyTrust::None
        };
        bootstrap_admin(&db, config).await?;
        let (shutdown, _) = watch::channel(false);
        let state = AppState {
            inner: Arc::new(Inner {
                db,
                cluster: Mutex::new(None),
                reach: Mutex::new(Reach::Unconfigured(
                    "no Kubernetes cluster is configured".to_owned(),
                )),
                blueprints: Arc::new(blueprints),
                provisioner_config,
                tokens,
                throttle: LoginThrottle::new(config.max_failed_logins, config.login_window)
                    .with_account_budget(config.max_login_attempts_per_account),
                stores: StoreDefaults {
                    domain: config.store_domain.clone(),
                    ingress_class: config.ingress_class.clone(),
                    storage_class: config.storage_class.clone(),
                    tls_cluster_issuer: config.tls_cluster_issuer.clone(),
                },
                default_quota: config.default_quota,
                proxy_trust,
                cors_origins,
                creations: CreationLimiter {
                    max: config.max_store_creations,
                    window: config.store_creation_window,
                    by_user: Mutex::new(HashMap::new()),
                },
                streams: Mutex::new(HashMap::new()),
                max_streams_per_user: config.max_event_streams_per_user.max(1),
                readiness: tokio::sync::Mutex::new(None),
                deleted_store_retention: config.deleted_store_retention,
                cluster_call_timeout: config.cluster_call_timeout,
                request_timeout: config.request_timeout,
                max_body_bytes: config.max_body_bytes,
                events: broadcast::channel(1024).0,
                shutdown,
                metrics,
                webhooks: config.webhooks.clone(),
                domains: crate::domains::DomainCache::default(),
                max_backup_bytes: config.max_backup_bytes,
            }),
        };
        if let Some(client) = client {
            state.connect(client);
            // Until a look says otherwise: callers that pass a client expect to use it.
            *lock(&state.inner.reach) = Reach::Reachable(String::new());
        }
        Ok(state)
    }

    /// The database.
    pub fn db(&self) -> &Database {
        &self.inner.db
    }

    /// The service's figures (`GET /metrics`).
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The requests people wait on, which the reconciler gives way to.
    pub(crate) fn foreground(&self) -> &storefactory_core::provisioner::Foreground {
        &self.inner.provisioner_config.foreground
    }

    /// The current Provisioner, once a cluster is configured. The server replaces it when it
    /// reconnects (a changed kubeconfig), so hold on to it only for one piece of work.
    pub fn provisioner(&self) -> Option<Provisioner> {
        lock(&self.inner.cluster)
            .as_ref()
            .map(|c| c.provisioner.clone())
    }

    /// Works with the cluster of `client` from now on: a new Provisioner (returned, for its
    /// reconciler to be started) replaces the current one.
    pub(crate) fn connect(&self, client: kube::Client) -> Provisioner {
        let provisioner = Provisioner::new(
            client,
            Arc::new(self.inner.db.clone()),
            self.inner.blueprints.clone(),
            self.inner.provisioner_config.clone(),
        );
        let mut events = provisioner.subscribe();
        let sink = self.inner.events.clone();
        let forwarder = tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(event) => {
                        let _ = sink.send(event);
                    }
                    // Subscribers that lag notice it on their own channel; go on.
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        let previous = lock(&self.inner.cluster).replace(Cluster {
            provisioner: provisioner.clone(),
            forwarder: forwarder.abort_handle(),
        });
        drop(previous);
        provisioner
    }

    /// Notes why no cluster can be configured, for `/ready` and the 503 answers; a cluster
    /// already connected to is kept.
    pub(crate) fn set_unconfigured(&self, why: String) {
        if lock(&self.inner.cluster).is_none() {
            *lock(&self.inner.reach) = Reach::Unconfigured(why);
        }
    }

    /// The Provisioner, or 503 `cluster_unavailable` while no cluster is configured or the
    /// API server cannot be connected to. A cluster last seen unreachable is looked at again
    /// first, so that no request is refused for a cluster that is already back.
    pub(crate) async fn cluster(&self) -> Result<Provisioner, ApiError> {
        let Some(provisioner) = self.provisioner() else {
            let why = lock(&self.inner.reach).result().err().unwrap_or_default();
            return Err(ApiError::ClusterUnavailable(format!(
                "no Kubernetes cluster is configured for this server yet ({why}); it connects \
                 as soon as one is"
            )));
        };
        let unreachable = || matches!(*lock(&self.inner.reach), Reach::Unreachable(_));
        if unreachable() && self.check_cluster().await.is_err() && unreachable() {
            return Err(ApiError::ClusterUnavailable(
                "the Kubernetes API server cannot be reached right now (connection refused or \
                 timed out); the server reconnects when it is back, try again then"
                    .to_owned(),
            ));
        }
        Ok(provisioner)
    }

    /// Whether the cluster answered the last time it was asked (without asking it again).
    pub(crate) fn cluster_reachable(&self) -> bool {
        matches!(*lock(&self.inner.reach), Reach::Reachable(_))
    }

    /// Asks the cluster for its version and remembers what it found; the outcome gates the
    /// store operations that need the cluster. `Err` tells why it is not usable.
    pub async fn check_cluster(&self) -> Result<String, String> {
        let Some(provisioner) = self.provisioner() else {
            return lock(&self.inner.reach).result();
        };
        let reach = match tokio::time::timeout(
            CLUSTER_CHECK_TIMEOUT,
            provisioner.client().apiserver_version(),
        )
        .await
        {
            Ok(Ok(info)) => Reach::Reachable(info.git_version),
            Ok(Err(error)) if is_connection_error(&error) => Reach::Unreachable(format!(
                "cannot connect to the Kubernetes API server: {}",
                error_chain(&error)
            )),
            Ok(Err(error)) => Reach::Refused(format!(
                "the Kubernetes API server answered with an error: {}",
                error_chain(&error)
            )),
            Err(_) => Reach::Unreachable(format!(
                "the Kubernetes API server did not answer within {} s",
                CLUSTER_CHECK_TIMEOUT.as_secs()
            )),
        };
        let previous = std::mem::replace(&mut *lock(&self.inner.reach), reach.clone());
        match (&previous, &reach) {
            (Reach::Reachable(_), Reach::Reachable(_)) => {}
            (_, Reach::Reachable(version)) => {
                tracing::info!(%version, "Kubernetes cluster reachable");
            }
            (
                Reach::Reachable(_) | Reach::Unconfigured(_),
                Reach::Unreachable(why) | Reach::Refused(why),
            ) => {
                tracing::warn!(error = %why, "Kubernetes cluster not usable");
            }
            _ => {}
        }
        reach.result()
    }

    /// Every store event recorded from now on, by whichever Provisioner is current
    /// (nothing while no cluster is configured).
    pub fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.inner.events.subscribe()
    }

    pub(crate) fn tokens(&self) -> &TokenKeys {
        &self.inner.tokens
    }

    pub(crate) fn throttle(&self) -> &LoginThrottle {
        &self.inner.throttle
    }

    /// The store a custom domain is for (cached, see [`crate::domains`]).
    pub(crate) async fn store_of_domain(
        &self,
        host: &str,
    ) -> Option<storefactory_core::spec::StoreId> {
        self.inner.domains.store_of(&self.inner.db, host).await
    }

    /// Forgets the cached custom domains: one was just changed through this server.
    pub(crate) fn domains_changed(&self) {
        self.inner.domains.expire();
    }

    pub(crate) fn store_defaults(&self) -> &StoreDefaults {
        &self.inner.stores
    }

    pub(crate) fn default_quota(&self) -> Quota {
        self.inner.default_quota
    }

    pub(crate) fn cors_origins(&self) -> &[HeaderValue] {
        &self.inner.cors_origins
    }

    /// Where backup archives are kept.
    pub(crate) fn archives(&self) -> Option<&Arc<dyn storefactory_core::backup::ArchiveStore>> {
        self.inner.provisioner_config.backups.archives.as_ref()
    }

    /// Largest backup archive taken.
    pub(crate) fn max_backup_bytes(&self) -> u64 {
        self.inner.max_backup_bytes
    }

    pub(crate) fn max_body_bytes(&self) -> usize {
        self.inner.max_body_bytes
    }

    pub(crate) fn proxy_trust(&self) -> &ProxyTrust {
        &self.inner.proxy_trust
    }

    pub(crate) fn webhook_config(&self) -> &WebhookConfig {
        &self.inner.webhooks
    }

    /// The key secrets kept in the database are sealed with (derived from the token key,
    /// so every replica sharing that key opens them).
    pub(crate) fn sealing_key(&self) -> &storefactory_core::seal::SealingKey {
        &self.inner.provisioner_config.sealing_key
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        self.inner.request_timeout
    }

    /// Runs a Kubernetes call made on behalf of a request under the configured deadline: a
    /// hung apiserver answers the client 503 instead of holding the request.
    pub(crate) async fn within_cluster_deadline<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        let deadline = self.inner.cluster_call_timeout;
        match tokio::time::timeout(deadline, call).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(?deadline, "a Kubernetes call inside a request timed out");
                Err(ApiError::ClusterUnavailable(
                    "the Kubernetes cluster did not answer in time; try again later".to_owned(),
                ))
            }
        }
    }

    /// Counts a store creation by `user`, or fails with 429 when they created the most
    /// allowed within the window.
    pub(crate) fn count_creation(&self, user: &str) -> Result<(), ApiError> {
        self.inner.creations.count(user)
    }

    /// Takes one of `user`'s event stream slots, given back when the slot is dropped, or
    /// fails with 429 when they hold the most allowed.
    pub(crate) fn stream_slot(&self, user: &str) -> Result<StreamSlot, ApiError> {
        let mut streams = self.inner.streams.lock().unwrap_or_else(|p| p.into_inner());
        let held = streams.entry(user.to_owned()).or_insert(0);
        if *held >= self.inner.max_streams_per_user {
            return Err(ApiError::RateLimited {
                message: format!(
                    "at most {} event streams may be open at once per user; close one first",
                    self.inner.max_streams_per_user
                ),
                retry_after_secs: 5,
            });
        }
        *held += 1;
        Ok(StreamSlot {
            state: self.clone(),
            user: user.to_owned(),
        })
    }

    /// The readiness of the database and the cluster, checked at most once per
    /// [`READY_CACHE_TTL`] however many ask.
    pub(crate) async fn readiness(&self) -> Readiness {
        // One check at a time: callers arriving during a check wait for its result.
        let mut cached = self.inner.readiness.lock().await;
        if let Some(found) = *cached
            && found.at.elapsed() < READY_CACHE_TTL
        {
            return found;
        }
        let database = match self.db().get_setting("schema-probe").await {
            Ok(_) => true,
            Err(error) => {
                tracing::warn!(error = %error, "readiness: database check failed");
                false
            }
        };
        let cluster = self.check_cluster().await.is_ok();
        let found = Readiness {
            database,
            cluster,
            at: Instant::now(),
        };
        *cached = Some(found);
        found
    }

    /// Removes the records of stores deleted longer ago than the retention, with their
    /// events, and returns how many went.
    pub async fn purge_deleted_stores(&self) -> Result<usize, storefactory_sql::Error> {
        let retention =
            i64::try_from(self.inner.deleted_store_retention.as_millis()).unwrap_or(i64::MAX);
        let before = storefactory_core::store::Timestamp(
            storefactory_core::store::Timestamp::now()
                .0
                .saturating_sub(retention),
        );
        self.db().purge_deleted_stores(before).await
    }

    /// Tells long-lived responses (event streams) to end, so that a graceful shutdown does
    /// not wait for clients to hang up.
    pub fn begin_shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    /// Becomes `true` when [`AppState::begin_shutdown`] is called.
    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }
}

/// Store creations per user within a window.
struct CreationLimiter {
    max: u32,
    window: Duration,
    /// Per user: creations counted and when the window began. Holds one entry per user
    /// who created a store lately (users are made by admins, so it stays small), and is
    /// swept of expired windows as it grows.
    by_user: Mutex<HashMap<String, (u32, Instant)>>,
}

impl CreationLimiter {
    fn count(&self, user: &str) -> Result<(), ApiError> {
        let mut by_user = self.by_user.lock().unwrap_or_else(|p| p.into_inner());
        if by_user.len() >= 1024 {
            let window = self.window;
            by_user.retain(|_, (_, first)| first.elapsed() < window);
        }
        let now = Instant::now();
        let (count, first) = by_user.entry(user.to_owned()).or_insert((0, now));
        if first.elapsed() >= self.window {
            (*count, *first) = (0, now);
        }
        if *count >= self.max {
            let left = self.window.saturating_sub(first.elapsed());
            return Err(ApiError::RateLimited {
                message: format!(
                    "at most {} stores may be created per {} minutes; try again later",
                    self.max,
                    self.window.as_secs().div_ceil(60)
                ),
                retry_after_secs: left.as_secs().max(1),
            });
        }
        *count += 1;
        Ok(())
    }
}

/// One open event stream of a user; dropping it frees the slot.
pub(crate) struct StreamSlot {
    state: AppState,
    user: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut streams = self
            .state
            .inner
            .streams
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(held) = streams.get_mut(&self.user) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                streams.remove(&self.user);
            }
        }
    }
}

/// Creates `admin` on a database without users.
async fn bootstrap_admin(db: &Database, config: &ServerConfig) -> Result<()> {
    let users = db.list_users().await.map_err(|source| Error::Database {
        operation: "list users",
        source,
    })?;
    if !users.is_empty() {
        return Ok(());
    }
    let Some(password) = &config.admin_password else {
        return bootstrap_generated_admin(db, config, quota(config)).await;
    };
    match db
        .create_user("admin", password, Role::Admin, quota(config))
        .await
    {
        Ok(_) => tracing::info!("created the first user `admin` with the configured password"),
        // Another server process on the same database got there first.
        Err(storefactory_sql::Error::UserExists { .. }) => {}
        Err(source) => return Err(Error::CreateAdmin { source }),
    }
    Ok(())
}

/// Admins are not limited by the default quota of users.
fn quota(config: &ServerConfig) -> Quota {
    Quota {
        max_stores: config.default_quota.max_stores.max(100),
        max_storage_gib: config.default_quota.max_storage_gib.max(1000),
    }
}

/// Creates `admin` with a generated password, which goes to a file only its owner can read
/// and never to the log: logs are kept, shipped and shown to people who should not log in.
/// The file is written (under a temporary name) before the user exists, so that a password
/// that could not be kept is never the only way in.
async fn bootstrap_generated_admin(
    db: &Database,
    config: &ServerConfig,
    quota: Quota,
) -> Result<()> {
    // Next to the database actually opened, which an embedder may have opened elsewhere
    // than `config.database` says.
    let path = match (&config.generated_password_file, db.path()) {
        (None, Some(database)) => crate::config::password_file_next_to(database),
        _ => config.generated_password_path(),
    };
    let password = generate_password(20);
    let mut temporary = path.clone().into_os_string();
    temporary.push(format!(".{}.tmp", std::process::id()));
    let temporary = std::path::PathBuf::from(temporary);
    let write_error = |source| Error::WriteAdminPassword {
        path: path.clone(),
        source,
    };
    write_private(&temporary, &format!("{password}\n")).map_err(write_error)?;
    match db.create_user("admin", &password, Role::Admin, quota).await {
        Ok(_) => {
            std::fs::rename(&temporary, &path).map_err(|e| {
                let _ = std::fs::remove_file(&temporary);
                write_error(e)
            })?;
            let shown = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
            tracing::info!(
                file = %shown.display(),
                "created the first user `admin` with a generated password, written to the \
                 file (readable by this user only); log in with it, change it, then delete \
                 the file"
            );
            Ok(())
        }
        Err(error) => {
            let _ = std::fs::remove_file(&temporary);
            match error {
                // Another server process on the same database got there first.
                storefactory_sql::Error::UserExists { .. } => Ok(()),
                source => Err(Error::CreateAdmin { source }),
            }
        }
    }
}

/// Writes a new file readable and writable by its owner only.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}
