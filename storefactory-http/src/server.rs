//! Running the server: [`Server`] and [`serve`].

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use storefactory_core::provisioner::error_chain;
use storefactory_sql::Database;
use tokio::net::TcpListener;

use crate::config::ServerConfig;
use crate::error::{Error, Result};
use crate::routes::router;
use crate::state::AppState;

/// How often the cluster's reachability is checked in the background.
const CLUSTER_CHECK_INTERVAL: Duration = Duration::from_secs(15);

/// How often the records of stores deleted longer ago than the retention are purged.
const PURGE_INTERVAL: Duration = Duration::from_secs(60 * 60);

/// A server bound to its address, not yet serving. [`serve`] is `bind` then `run`; the two
/// steps let a caller learn the address of a server started on port 0.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    state: AppState,
}

impl Server {
    /// Opens the database, connects to the cluster (or notes that there is none: the server
    /// starts anyway, `/ready` reports it and store operations answer 503), builds the
    /// [`AppState`] and binds the listening socket.
    pub async fn bind(config: ServerConfig) -> Result<Server> {
        let db = Database::open(&config.database)
            .await
            .map_err(|source| Error::OpenDatabase {
                path: config.database.clone(),
                source,
            })?;
        let client = match kube_client(&config).await {
            Ok(client) => Some(client),
            Err(why) => {
                tracing::error!(
                    "no Kubernetes cluster: {why}; serving anyway, store operations that need \
                     the cluster will answer 503 until the server is restarted with one"
                );
                None
            }
        };
        let state = AppState::new(&config, db, client).await?;
        match state.check_cluster().await {
            Ok(version) => tracing::info!(%version, "Kubernetes cluster reachable"),
            Err(why) if state.provisioner().is_some() => tracing::error!(
                "{why}; serving anyway, store operations answer 503 until it is reachable"
            ),
            Err(_) => {}
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
    /// alongside. On shutdown, new connections are refused, event streams end, requests in
    /// flight finish, and the reconciler stops; whatever it was doing is resumed on the
    /// next start.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let Server {
            listener,
            addr,
            state,
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
        // Stops the reconciler on shutdown, which gives the leader Lease back so that another
        // replica takes over at once.
        let (stop_reconciler, reconciler_stopped) = tokio::sync::watch::channel(false);
        let mut reconciler = None;
        if let Some(provisioner) = state.provisioner().cloned() {
            let mut stopped = reconciler_stopped.clone();
            reconciler = Some(tokio::spawn(async move {
                let stop = async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                };
                if let Err(error) = provisioner.run_until(stop).await {
                    tracing::error!(error = %error_chain(&error), "the reconciler stopped");
                }
            }));
            let probe = state.clone();
            background.spawn(async move {
                let mut interval = tokio::time::interval(CLUSTER_CHECK_INTERVAL);
                interval.tick().await;
                loop {
                    interval.tick().await;
                    let _ = probe.check_cluster().await;
                }
            });
        }
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
        let _ = stop_reconciler.send(true);
        if let Some(reconciler) = reconciler
            && tokio::time::timeout(Duration::from_secs(5), reconciler)
                .await
                .is_err()
        {
            tracing::warn!("the reconciler did not stop in time");
        }
        background.shutdown().await;
        tracing::info!("stopped");
        result
    }
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
async fn kube_client(config: &ServerConfig) -> Result<kube::Client, String> {
    let kube_config = match &config.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .map_err(|e| format!("cannot read kubeconfig {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|e| format!("invalid kubeconfig {}: {e}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| format!("no kubeconfig or in-cluster configuration found ({e})"))?,
    };
    kube::Client::try_from(kube_config)
        .map_err(|e| format!("cannot build a Kubernetes client: {e}"))
}
