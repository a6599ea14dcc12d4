//! [`AppState`]: what every handler shares.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderValue;
use storefactory_core::blueprint::{BlueprintRegistry, generate_password};
use storefactory_core::port::Quota;
use storefactory_core::provisioner::Provisioner;
use storefactory_core::store::StoreEvent;
use storefactory_sql::{Database, Role};
use tokio::sync::{broadcast, watch};

use crate::api_error::ApiError;
use crate::auth::{IpNet, LoginThrottle, ProxyTrust, TokenKeys};
use crate::config::ServerConfig;
use crate::error::{Error, Result};

/// Settings key under which a generated token key is kept.
pub const TOKEN_KEY_SETTING: &str = "http.token_key";

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

struct Cluster {
    provisioner: Provisioner,
    reachable: AtomicBool,
    last_error: Mutex<Option<String>>,
}

struct Inner {
    db: Database,
    cluster: Option<Cluster>,
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
    /// Stands in for the Provisioner's event feed when there is no cluster: nothing is ever
    /// sent on it.
    idle_events: broadcast::Sender<StoreEvent>,
    shutdown: watch::Sender<bool>,
}

/// The state every handler shares: the database, the Provisioner (when a cluster is
/// configured), the token keys and the login throttle. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("db", &self.inner.db)
            .field("cluster", &self.inner.cluster.is_some())
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Builds the state from `config` over an open database and, when a cluster is
    /// configured, a Kubernetes client.
    ///
    /// Loads the blueprints, settles the token key (the configured one, else the one kept in
    /// the database, else a new one that is then kept), and on a database without users
    /// creates `admin` (with [`ServerConfig::admin_password`], or a random password logged
    /// once). The Provisioner's reconciler is not started: run
    /// [`AppState::provisioner`]`.run()` next to the server, as [`crate::Server`] does.
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
        let cluster = client.map(|client| Cluster {
            provisioner: Provisioner::new(
                client,
                Arc::new(db.clone()),
                Arc::new(blueprints),
                provisioner_config,
            ),
            reachable: AtomicBool::new(true),
            last_error: Mutex::new(None),
        });
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
        Ok(AppState {
            inner: Arc::new(Inner {
                db,
                cluster,
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
                idle_events: broadcast::channel(1).0,
                shutdown,
            }),
        })
    }

    /// The database.
    pub fn db(&self) -> &Database {
        &self.inner.db
    }

    /// The Provisioner, when a cluster is configured.
    pub fn provisioner(&self) -> Option<&Provisioner> {
        self.inner.cluster.as_ref().map(|c| &c.provisioner)
    }

    /// The Provisioner, or 503 `cluster_unavailable` when no cluster is configured or the
    /// last check found it unreachable.
    pub(crate) fn cluster(&self) -> Result<&Provisioner, ApiError> {
        let Some(cluster) = &self.inner.cluster else {
            return Err(ApiError::ClusterUnavailable(
                "no Kubernetes cluster is configured for this server".to_owned(),
            ));
        };
        if !cluster.reachable.load(Ordering::Relaxed) {
            return Err(ApiError::ClusterUnavailable(
                "the Kubernetes cluster cannot be reached right now; try again later".to_owned(),
            ));
        }
        Ok(&cluster.provisioner)
    }

    /// Asks the cluster for its version and remembers whether it answered; the outcome
    /// gates the store operations that need the cluster. `Err` tells why it is not usable.
    pub async fn check_cluster(&self) -> Result<String, String> {
        let Some(cluster) = &self.inner.cluster else {
            return Err("no Kubernetes cluster is configured".to_owned());
        };
        let client = cluster.provisioner.client();
        let outcome =
            match tokio::time::timeout(CLUSTER_CHECK_TIMEOUT, client.apiserver_version()).await {
                Ok(Ok(info)) => Ok(info.git_version),
                Ok(Err(error)) => Err(format!("cannot reach the Kubernetes API: {error}")),
                Err(_) => Err(format!(
                    "the Kubernetes API did not answer within {} s",
                    CLUSTER_CHECK_TIMEOUT.as_secs()
                )),
            };
        let was = cluster.reachable.swap(outcome.is_ok(), Ordering::Relaxed);
        let mut last_error = cluster.last_error.lock().unwrap_or_else(|p| p.into_inner());
        match (&outcome, was) {
            (Ok(version), false) => tracing::info!(%version, "Kubernetes cluster reachable again"),
            (Err(error), true) => tracing::warn!(%error, "Kubernetes cluster unreachable"),
            _ => {}
        }
        *last_error = outcome.as_ref().err().cloned();
        outcome
    }

    /// Every store event recorded from now on (nothing when no cluster is configured).
    pub fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        match &self.inner.cluster {
            Some(cluster) => cluster.provisioner.subscribe(),
            None => self.inner.idle_events.subscribe(),
        }
    }

    pub(crate) fn tokens(&self) -> &TokenKeys {
        &self.inner.tokens
    }

    pub(crate) fn throttle(&self) -> &LoginThrottle {
        &self.inner.throttle
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

    pub(crate) fn max_body_bytes(&self) -> usize {
        self.inner.max_body_bytes
    }

    pub(crate) fn proxy_trust(&self) -> &ProxyTrust {
        &self.inner.proxy_trust
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
    let (password, generated) = match &config.admin_password {
        Some(password) => (password.clone(), false),
        None => (generate_password(20), true),
    };
    // Admins are not limited by the default quota of users.
    let quota = Quota {
        max_stores: config.default_quota.max_stores.max(100),
        max_storage_gib: config.default_quota.max_storage_gib.max(1000),
    };
    match db.create_user("admin", &password, Role::Admin, quota).await {
        Ok(_) if generated => {
            // Logged once, on purpose: there is no other way to learn it.
            tracing::warn!(
                "created the first user `admin` with the generated password {password}; \
                 it is not shown again; change it"
            );
        }
        Ok(_) => tracing::info!("created the first user `admin` with the configured password"),
        // Another server process on the same database got there first.
        Err(storefactory_sql::Error::UserExists { .. }) => {}
        Err(source) => return Err(Error::CreateAdmin { source }),
    }
    Ok(())
}
