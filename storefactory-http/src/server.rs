//! Running the server: [`Server`] and [`serve`].

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use storefactory_core::provisioner::{Provisioner, error_chain};
use storefactory_sql::Database;
use tokio::net::TcpListener;

use crate::config::ServerConfig;
use crate::error::{Error, Result};
use crate::routes::router;
use crate::state::AppState;

/// How often the kubeconfig is looked at for changes while the cluster can be used. The
/// cluster itself is not asked anything on a timer then, so that an idle platform sends it
/// no request: `/ready` checks it on demand (cached), and the watches of the reconciler
/// notice a lost connection on their own.
const CLUSTER_CHECK_INTERVAL: Duration = Duration::from_secs(10);
/// How often the server tries to connect while it cannot use the cluster: short, so that a
/// cluster that appears (or an apiserver that restarts) is picked up within seconds.
const RECONNECT_INTERVAL: Duration = Duration::from_secs(2);
/// How long connecting to the API server may take; a slower cluster counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a stopping reconciler may take to give its Lease back.
const RECONCILER_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the records of stores deleted longer ago than the retention are purged.
const PURGE_INTERVAL: Duration = Duration::from_secs(60 * 60);

/// A server bound to its address, not yet serving. [`serve`] is `bind` then `run`; the two
/// steps let a caller learn the address of a server started on port 0.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    state: AppState,
    connector: Connector,
}

impl Server {
    /// Opens the database, connects to the cluster if one is configured (the server starts
    /// anyway without one: `/ready` reports it, store operations answer 503, and the server
    /// connects as soon as a kubeconfig appears and the cluster answers), builds the
    /// [`AppState`] and binds the listening socket.
    pub async fn bind(config: ServerConfig) -> Result<Server> {
        let db = Database::open(&config.database)
            .await
            .map_err(|source| Error::OpenDatabase {
                path: config.database.clone(),
                source,
            })?;
        let state = AppState::new(&config, db, None).await?;
        let mut connector = Connector::new(config.kubeconfig.clone());
        connector.refresh(&state).await;
        // A reachable cluster is logged by the check itself.
        if let Err(why) = state.check_cluster().await {
            tracing::error!(
                "{why}; serving anyway: store operations answer 503 until the cluster can be \
                 reached, and the server connects to it as soon as it can"
            );
        }
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
        Ok(Server {
            listener,
            addr,
            state,
            connector,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state, e.g. to reach the database or the Provisioner.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, with the Provisioner's reconciler running
    /// alongside, and reconnecting to the cluster when its kubeconfig appears or changes.
    /// On shutdown, new connections are refused, event streams end, requests in flight
    /// finish, and the reconciler stops; whatever it was doing is resumed on the next start.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let Server {
            listener,
            addr,
            state,
            connector,
        } = self;
        let mut background = tokio::task::JoinSet::new();
        let purger = state.clone();
        background.spawn(async move {
            let mut interval = tokio::time::interval(PURGE_INTERVAL);
            loop {
                interval.tick().await;
                match purger.purge_deleted_stores().await {
                    Ok(0) => {}
                    Ok(purged) => tracing::info!(purged, "purged the records of deleted stores"),
                    Err(error) => tracing::warn!(%error, "cannot purge deleted stores"),
                }
            }
        });
        let metrics = state.metrics().clone();
        background.spawn(crate::memory::run(
            move || metrics.activity(),
            state.db().clone(),
        ));
        // Webhook deliveries run beside the reconciler, never on its path, and need no
        // cluster: they follow the event feed in the database.
        let dispatching = tokio::spawn(crate::webhooks::dispatcher::run(state.clone()));
        let dispatch_stop_timeout = state.webhook_config().timeout + RECONCILER_STOP_TIMEOUT;
        // Stops the reconciler on shutdown, which gives the leader Lease back so that another
        // replica takes over at once.
        let (stop_connector, connector_stopped) = tokio::sync::watch::channel(false);
        let connecting = tokio::spawn(connector.run(state.clone(), connector_stopped));
        tracing::info!(%addr, "serving the Storefactory API");
        let stopping = state.clone();
        let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                shutdown.await;
                tracing::info!("shutting down: finishing requests in flight");
                stopping.begin_shutdown();
            })
            .await
            .map_err(|source| Error::Serve { source });
        let _ = stop_connector.send(true);
        let _ = connecting.await;
        // Deliveries in flight finish (within their timeout) so that they are recorded.
        let mut dispatching = dispatching;
        if tokio::time::timeout(dispatch_stop_timeout, &mut dispatching)
            .await
            .is_err()
        {
            dispatching.abort();
        }
        tracing::info!("stopped");
        result
    }
}

/// Keeps the server connected: builds a client when the kubeconfig appears or changes
/// (a local control plane restarted on another port, say), runs the reconciler of the
/// current Provisioner, and looks at the cluster often while it cannot be used.
#[derive(Debug)]
struct Connector {
    kubeconfig: Option<PathBuf>,
    /// A hash of the kubeconfig files the current client was built from.
    fingerprint: Option<u64>,
    /// The last reason no client could be built, to log each reason once.
    last_error: Option<String>,
}

/// A running reconciler and the way to stop it.
struct Reconciler {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Reconciler {
    fn start(provisioner: Provisioner) -> Self {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let stop = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            if let Err(error) = provisioner.run_until(stop).await {
                tracing::error!(error = %error_chain(&error), "the reconciler stopped");
            }
        });
        Reconciler { stop, task }
    }

    async fn stop(mut self) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(RECONCILER_STOP_TIMEOUT, &mut self.task)
            .await
            .is_err()
        {
            tracing::warn!("the reconciler did not stop in time");
            self.task.abort();
        }
    }
}

impl Connector {
    fn new(kubeconfig: Option<PathBuf>) -> Self {
        Connector {
            kubeconfig,
            fingerprint: None,
            last_error: None,
        }
    }

    /// Builds a client and a Provisioner when there is none yet or the kubeconfig changed;
    /// returns the new Provisioner.
    async fn refresh(&mut self, state: &AppState) -> Option<Provisioner> {
        let fingerprint = kubeconfig_fingerprint(self.kubeconfig.as_deref());
        let connected = state.provisioner().is_some();
        if connected && self.fingerprint == Some(fingerprint) {
            return None;
        }
        match kube_client(self.kubeconfig.as_deref(), state.metrics().kube_counter()).await {
            Ok(client) => {
                if connected {
                    tracing::info!("the kubeconfig changed; reconnecting");
                }
                self.fingerprint = Some(fingerprint);
                self.last_error = None;
                Some(state.connect(client))
            }
            Err(why) => {
                if self.last_error.as_ref() != Some(&why) {
                    if connected {
                        tracing::warn!("{why}; keeping the current connection");
                    } else {
                        tracing::info!("{why}; connecting when there is one");
                    }
                    self.last_error = Some(why.clone());
                }
                state.set_unconfigured(why);
                None
            }
        }
    }

    async fn run(mut self, state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut reconciler = state.provisioner().map(Reconciler::start);
        loop {
            let usable = state.cluster_reachable() || state.check_cluster().await.is_ok();
            let wait = if usable {
                CLUSTER_CHECK_INTERVAL
            } else {
                RECONNECT_INTERVAL
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|stop| *stop) => break,
            }
            if let Some(provisioner) = self.refresh(&state).await {
                // The old reconciler works through the old client: stop it (in the
                // background: its cluster may be gone) and start one for the new.
                if let Some(old) = reconciler.take() {
                    tokio::spawn(old.stop());
                }
                reconciler = Some(Reconciler::start(provisioner));
            }
        }
        if let Some(reconciler) = reconciler {
            reconciler.stop().await;
        }
    }
}

/// A hash of what a client would be built from: the kubeconfig files' contents (none for
/// the in-cluster configuration).
fn kubeconfig_fingerprint(kubeconfig: Option<&Path>) -> u64 {
    use std::hash::{Hash, Hasher};
    let files: Vec<PathBuf> = match kubeconfig {
        Some(path) => vec![path.to_owned()],
        None => match std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
            Some(paths) => std::env::split_paths(&paths).collect(),
            None => std::env::var_os("HOME")
                .map(|home| vec![PathBuf::from(home).join(".kube/config")])
                .unwrap_or_default(),
        },
    };
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for file in files {
        file.hash(&mut hasher);
        std::fs::read(&file).ok().hash(&mut hasher);
    }
    hasher.finish()
}

/// Binds as configured and serves until `shutdown` completes: [`Server::bind`] then
/// [`Server::run`].
///
/// ```no_run
/// # async fn example() -> Result<(), storefactory_http::Error> {
/// let config = storefactory_http::ServerConfig::default();
/// storefactory_http::serve(config, async {
///     let _ = tokio::signal::ctrl_c().await;
/// })
/// .await
/// # }
/// ```
pub async fn serve(
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    Server::bind(config).await?.run(shutdown).await
}

/// A client for the configured cluster, or why there is none.
async fn kube_client(
    kubeconfig: Option<&Path>,
    counter: &storefactory_core::request_counter::RequestCounter,
) -> Result<kube::Client, String> {
    let mut kube_config = storefactory_core::kube_config::load(kubeconfig, None)
        .await
        .map_err(|e| e.to_string())?;
    kube_config.connect_timeout = Some(CONNECT_TIMEOUT);
    counter
        .client(kube_config)
        .map_err(|e| format!("cannot build a Kubernetes client: {e}"))
}
