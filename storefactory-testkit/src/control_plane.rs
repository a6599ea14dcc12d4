//! The local control plane: etcd, kube-apiserver and kube-controller-manager as processes,
//! plus the simulated kubelet, all hosted on one dedicated thread.
//!
//! Why a thread of its own: tests run on separate tokio runtimes that end with each test, and
//! the kernel kills our children (`PR_SET_PDEATHSIG`) when the *thread* that started them
//! exits. So the processes are started, watched and stopped from a long-lived thread with
//! its own runtime, which also runs the simulated kubelet; tests talk to it through channels
//! and build their own clients from the kubeconfig.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use crate::error::{Error, Result};
use crate::install::Binaries;
use crate::kubelet::{self, KubeletConfig, SimulatedKubelet};
use crate::pki::{self, ADMIN_USER, Pki, RESTRICTED_USER};
use crate::process::{Component, log_tail};

/// How to start a [`ControlPlane`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// Directory for the kubeconfigs, certificates and logs. `None` (the default) uses a fresh
    /// temporary directory that is removed afterwards. A given directory is kept, with its
    /// `logs/`; the rest of what was written there is removed.
    pub dir: Option<PathBuf>,
    /// The binaries to run; `None` finds them, installing them if needed
    /// ([`Binaries::locate_or_install`]).
    pub binaries: Option<Binaries>,
    /// The simulated kubelet's configuration; `None` runs no kubelet (pods stay pending).
    pub kubelet: Option<KubeletConfig>,
    /// How long each component may take to become ready.
    pub startup_timeout: Duration,
    /// Keeps the cluster's objects (etcd's data, in `<dir>/etcd`) after the control plane
    /// stops, so that one started again on the same [`Options::dir`] has them back: a
    /// platform run on it keeps its stores across restarts. Off by default: tests start
    /// empty, with etcd's data in memory when `/dev/shm` exists. Needs [`Options::dir`].
    pub keep_data: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            dir: None,
            binaries: None,
            kubelet: Some(KubeletConfig::default()),
            startup_timeout: Duration::from_secs(90),
            keep_data: false,
        }
    }
}

impl Options {
    /// Sets [`Options::dir`].
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Sets [`Options::binaries`].
    pub fn binaries(mut self, binaries: Binaries) -> Self {
        self.binaries = Some(binaries);
        self
    }

    /// Sets [`Options::kubelet`].
    pub fn kubelet(mut self, kubelet: Option<KubeletConfig>) -> Self {
        self.kubelet = kubelet;
        self
    }

    /// Sets [`Options::keep_data`].
    pub fn keep_data(mut self, keep: bool) -> Self {
        self.keep_data = keep;
        self
    }

    /// Sets [`Options::startup_timeout`].
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }
}

/// A running local control plane. Everything stops, and its files are removed, when it is
/// dropped, or when the process that started it dies.
///
/// Tests usually share one per test binary through [`shared`](crate::shared); a test that
/// stops the apiserver starts its own with [`ControlPlane::start`].
#[derive(Debug)]
pub struct ControlPlane {
    dir: PathBuf,
    kubeconfig: PathBuf,
    restricted_kubeconfig: PathBuf,
    logs_dir: PathBuf,
    keep_marker: PathBuf,
    server: String,
    kubelet: Option<SimulatedKubelet>,
    commands: mpsc::UnboundedSender<HostCommand>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    watchdog: Mutex<Option<Child>>,
    started_in: Duration,
}

/// What the host thread hands back once everything is ready.
struct Started {
    dir: PathBuf,
    kubeconfig: PathBuf,
    restricted_kubeconfig: PathBuf,
    logs_dir: PathBuf,
    keep_marker: PathBuf,
    server: String,
    watchdog: Child,
}

/// How often the host looks whether the apiserver is still running.
const SUPERVISE_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) enum HostCommand {
    StopApiserver(oneshot::Sender<Result<()>>),
    StartApiserver(oneshot::Sender<Result<()>>),
    DeleteNamespace(String),
    Shutdown,
}

impl ControlPlane {
    /// Installs the binaries if needed, starts etcd, kube-apiserver, kube-controller-manager
    /// and the simulated kubelet, and returns once the apiserver is ready, the
    /// controller-manager works (the `default` ServiceAccount has its token) and the nodes are
    /// registered.
    pub async fn start(options: Options) -> Result<Self> {
        if options.keep_data && options.dir.is_none() {
            return Err(Error::KeepDataWithoutDir);
        }
        let began = Instant::now();
        let kubelet = options.kubelet.clone().map(SimulatedKubelet::new);
        let (ready_tx, ready_rx) = oneshot::channel();
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let host_kubelet = kubelet.clone();
        let thread = std::thread::Builder::new()
            .name("storefactory-control-plane".to_owned())
            .spawn(move || host_main(options, host_kubelet, ready_tx, commands_rx))
            .map_err(|e| {
                Error::io(
                    "spawning the control plane thread",
                    "storefactory-control-plane",
                    e,
                )
            })?;
        let started = match ready_rx.await {
            Ok(Ok(started)) => started,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(Error::HostStopped);
            }
        };
        Ok(ControlPlane {
            dir: started.dir,
            kubeconfig: started.kubeconfig,
            restricted_kubeconfig: started.restricted_kubeconfig,
            logs_dir: started.logs_dir,
            keep_marker: started.keep_marker,
            server: started.server,
            kubelet,
            commands,
            thread: Mutex::new(Some(thread)),
            watchdog: Mutex::new(Some(started.watchdog)),
            started_in: began.elapsed(),
        })
    }

    /// A client with the admin identity (group `system:masters`), bound to the calling tokio
    /// runtime: build one per test rather than sharing one across runtimes.
    pub async fn client(&self) -> Result<Client> {
        client_from(&self.kubeconfig).await
    }

    /// A client with the restricted identity ([`ControlPlane::restricted_user`]), which RBAC
    /// grants nothing beyond what every authenticated user gets.
    pub async fn restricted_client(&self) -> Result<Client> {
        client_from(&self.restricted_kubeconfig).await
    }

    /// The admin kubeconfig file (certificate authority embedded, token authentication).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The restricted identity's kubeconfig file.
    pub fn restricted_kubeconfig_path(&self) -> &Path {
        &self.restricted_kubeconfig
    }

    /// The restricted identity's user name, for RoleBinding subjects.
    pub fn restricted_user(&self) -> &str {
        RESTRICTED_USER
    }

    /// The admin identity's user name.
    pub fn admin_user(&self) -> &str {
        ADMIN_USER
    }

    /// The apiserver's URL, like `https://127.0.0.1:41234`.
    pub fn server_url(&self) -> &str {
        &self.server
    }

    /// The directory holding the kubeconfigs, certificates and `logs/`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory of component logs: `etcd.log`, `kube-apiserver.log`,
    /// `kube-controller-manager.log`, `kubelet.log`.
    pub fn logs_dir(&self) -> &Path {
        &self.logs_dir
    }

    /// How long [`ControlPlane::start`] took.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// The simulated kubelet, to inject faults; `None` if started without one.
    pub fn kubelet(&self) -> Option<&SimulatedKubelet> {
        self.kubelet.as_ref()
    }

    /// Keeps the logs directory after the control plane is gone, and says where it is on
    /// stderr. [`TestNamespace`] calls this when a test panics.
    pub fn keep_logs(&self) {
        keep_logs(&self.keep_marker, &self.logs_dir);
    }

    /// Stops the apiserver (etcd keeps its data; the controller-manager and kubelet retry).
    pub async fn stop_apiserver(&self) -> Result<()> {
        self.ask(HostCommand::StopApiserver).await
    }

    /// Starts the apiserver again on the same port, and waits until it is ready.
    pub async fn start_apiserver(&self) -> Result<()> {
        self.ask(HostCommand::StartApiserver).await
    }

    /// Stops and starts the apiserver, keeping etcd's data.
    pub async fn restart_apiserver(&self) -> Result<()> {
        self.stop_apiserver().await?;
        self.start_apiserver().await
    }

    /// Creates a namespace for one test, named `<prefix>-<random>` and labelled
    /// `storefactory.io/testkit=true` and `storefactory.io/test=<prefix>`; it is deleted when
    /// the returned guard is dropped.
    pub async fn namespace(&self, client: &Client, prefix: &str) -> Result<TestNamespace> {
        let prefix: String = prefix
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(40)
            .collect();
        let prefix = prefix.trim_matches('-');
        let prefix = if prefix.is_empty() { "test" } else { prefix };
        let name = format!("{prefix}-{}", pki::random_hex(3)?);
        let namespace: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": name,
                "labels": {"storefactory.io/testkit": "true", "storefactory.io/test": prefix},
            },
        }))
        .expect("a valid Namespace");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .map_err(|e| Error::kube(format!("creating namespace {name}"), e))?;
        Ok(TestNamespace {
            name,
            commands: self.commands.clone(),
            keep_marker: self.keep_marker.clone(),
            logs_dir: self.logs_dir.clone(),
        })
    }

    async fn ask(&self, command: fn(oneshot::Sender<Result<()>>) -> HostCommand) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(command(tx))
            .map_err(|_| Error::HostStopped)?;
        rx.await.map_err(|_| Error::HostStopped)?
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = self.commands.send(HostCommand::Shutdown);
        if let Some(thread) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = thread.join();
        }
        // Closing its stdin tells the watchdog to clean up; wait so the files are gone on return.
        if let Some(mut watchdog) = self
            .watchdog
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            drop(watchdog.stdin.take());
            let _ = watchdog.wait();
        }
    }
}

/// A namespace for one test; deleted (in the background) when dropped. When dropped during a
/// panic (a failed assertion), it also keeps the control plane's logs, prints where they are
/// and shows the end of the kubelet's and controller-manager's. A test that fails by returning
/// an error does not panic: set `STOREFACTORY_TESTKIT_KEEP_LOGS=1` or call
/// [`ControlPlane::keep_logs`] to keep the logs then.
#[derive(Debug)]
pub struct TestNamespace {
    name: String,
    commands: mpsc::UnboundedSender<HostCommand>,
    keep_marker: PathBuf,
    logs_dir: PathBuf,
}

impl TestNamespace {
    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if std::thread::panicking() {
            report_failure(&self.keep_marker, &self.logs_dir);
        }
        let _ = self
            .commands
            .send(HostCommand::DeleteNamespace(self.name.clone()));
    }
}

fn keep_logs(marker: &Path, logs_dir: &Path) {
    let _ = std::fs::write(marker, "");
    eprintln!(
        "storefactory-testkit: control plane logs are kept in {}",
        logs_dir.display()
    );
}

/// Keeps the logs and shows the end of the kubelet's and controller-manager's, which is
/// where a CI log needs them.
fn report_failure(marker: &Path, logs_dir: &Path) {
    keep_logs(marker, logs_dir);
    for log in ["kubelet.log", "kube-controller-manager.log"] {
        let path = logs_dir.join(log);
        eprintln!(
            "---- last lines of {} ----\n{}",
            path.display(),
            log_tail(&path, 20)
        );
    }
}

/// Builds a client from a kubeconfig file, verifying the apiserver with the embedded CA.
pub(crate) async fn client_from(path: &Path) -> Result<Client> {
    let kubeconfig = Kubeconfig::read_from(path).map_err(|source| Error::LoadKubeconfig {
        path: path.to_owned(),
        source,
    })?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|source| Error::LoadKubeconfig {
            path: path.to_owned(),
            source,
        })?;
    Client::try_from(config).map_err(Error::BuildClient)
}

// ---- the host thread ------------------------------------------------------------------------

fn host_main(
    options: Options,
    kubelet: Option<SimulatedKubelet>,
    ready: oneshot::Sender<Result<Started>>,
    commands: mpsc::UnboundedReceiver<HostCommand>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = ready.send(Err(Error::io(
                "building a runtime for",
                "the control plane",
                e,
            )));
            return;
        }
    };
    runtime.block_on(async move {
        let mut host = match Host::boot(options, kubelet).await {
            Ok((host, started)) => {
                if let Err(Ok(started)) = ready.send(Ok(started)) {
                    // Nobody is waiting any more: clean up.
                    drop(started.watchdog.stdin);
                    drop(host);
                    return;
                }
                host
            }
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        host.serve(commands).await;
        host.shutdown();
    });
}

struct Host {
    etcd: Component,
    apiserver: Component,
    controller_manager: Component,
    admin: Client,
    kubelet_tasks: Option<JoinSet<()>>,
    logs_dir: PathBuf,
    timeout: Duration,
}

/// Files written into the control plane's directory.
struct Layout {
    dir: PathBuf,
    pki_dir: PathBuf,
    logs_dir: PathBuf,
    etcd_dir: PathBuf,
    kubeconfig: PathBuf,
    restricted_kubeconfig: PathBuf,
    keep_marker: PathBuf,
}

impl Layout {
    fn create(dir: Option<PathBuf>, keep_data: bool) -> Result<(Layout, bool)> {
        let (dir, temporary) = match dir {
            Some(dir) => (dir, false),
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("storefactory-testkit-")
                    .tempdir()
                    .map_err(|e| {
                        Error::io("creating a temporary directory in", std::env::temp_dir(), e)
                    })?;
                (temp.keep(), true)
            }
        };
        let logs_dir = dir.join("logs");
        std::fs::create_dir_all(&logs_dir).map_err(|e| Error::io("creating", &logs_dir, e))?;
        // etcd fsyncs a lot: keep its data in memory when we can.
        let shm = Path::new("/dev/shm");
        let etcd_dir = if keep_data {
            dir.join("etcd")
        } else if shm.is_dir() {
            tempfile::Builder::new()
                .prefix("storefactory-etcd-")
                .tempdir_in(shm)
                .map(|t| t.keep())
                .unwrap_or_else(|_| dir.join("etcd"))
        } else {
            dir.join("etcd")
        };
        Ok((
            Layout {
                pki_dir: dir.join("pki"),
                kubeconfig: dir.join("kubeconfig"),
                restricted_kubeconfig: dir.join("kubeconfig-restricted"),
                keep_marker: dir.join(".keep-logs"),
                logs_dir,
                etcd_dir,
                dir,
            },
            temporary,
        ))
    }

    /// A process that removes our files once its stdin closes: when the control plane is
    /// dropped, or when the test process dies (statics are never dropped).
    fn spawn_watchdog(&self, temporary: bool, keep_data: bool) -> Result<Child> {
        const SCRIPT: &str = r#"cat >/dev/null
marker=$1; shift
while [ "$1" != -- ]; do rm -rf -- "$1"; shift; done; shift
[ -e "$marker" ] || rm -rf -- "$@""#;
        // Kept data keeps the kubeconfigs too: a server pointed at one reconnects when the
        // control plane is started again and rewrites them.
        let mut always = if keep_data {
            vec![]
        } else {
            vec![
                &self.etcd_dir,
                &self.pki_dir,
                &self.kubeconfig,
                &self.restricted_kubeconfig,
            ]
        };
        let mut unless_kept = vec![];
        if temporary {
            unless_kept.push(&self.dir);
        } else {
            always.push(&self.keep_marker);
        }
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(SCRIPT)
            .arg("storefactory-testkit-cleanup")
            .arg(&self.keep_marker)
            .args(always)
            .arg("--")
            .args(unless_kept)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        command.spawn().map_err(|source| Error::SpawnComponent {
            component: "cleanup watchdog",
            source,
        })
    }
}

impl Host {
    async fn boot(options: Options, kubelet: Option<SimulatedKubelet>) -> Result<(Host, Started)> {
        let binaries = match options.binaries {
            Some(binaries) => binaries,
            None => Binaries::locate_or_install()?,
        };
        let (layout, temporary) = Layout::create(options.dir, options.keep_data)?;
        let watchdog = layout.spawn_watchdog(temporary, options.keep_data)?;
        if std::env::var_os("STOREFACTORY_TESTKIT_KEEP_LOGS")
            .is_some_and(|v| !v.is_empty() && v != "0")
        {
            keep_logs(&layout.keep_marker, &layout.logs_dir);
        }
        let result = Self::boot_in(&layout, &binaries, kubelet, options.startup_timeout).await;
        match result {
            Ok((host, server)) => Ok((
                host,
                Started {
                    dir: layout.dir.clone(),
                    kubeconfig: layout.kubeconfig.clone(),
                    restricted_kubeconfig: layout.restricted_kubeconfig.clone(),
                    logs_dir: layout.logs_dir.clone(),
                    keep_marker: layout.keep_marker.clone(),
                    server,
                    watchdog,
                },
            )),
            Err(e) => {
                // The components are already stopped (dropped); keep their logs to explain.
                keep_logs(&layout.keep_marker, &layout.logs_dir);
                drop(watchdog);
                Err(e)
            }
        }
    }

    async fn boot_in(
        layout: &Layout,
        binaries: &Binaries,
        kubelet: Option<SimulatedKubelet>,
        timeout: Duration,
    ) -> Result<(Host, String)> {
        let pki = Pki::generate(&layout.pki_dir)?;
        let ports = {
            // Hold all listeners at once so the ports differ.
            let listeners: Vec<_> = (0..3)
                .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
                .collect::<std::io::Result<_>>()
                .map_err(|e| Error::io("binding a port on", "127.0.0.1", e))?;
            listeners
                .iter()
                .map(|l| l.local_addr().map(|a| a.port()))
                .collect::<std::io::Result<Vec<u16>>>()
                .map_err(|e| Error::io("binding a port on", "127.0.0.1", e))?
        };
        let (etcd_port, peer_port, api_port) = (ports[0], ports[1], ports[2]);
        let server = format!("https://127.0.0.1:{api_port}");
        write_kubeconfig(
            &layout.kubeconfig,
            &server,
            &pki,
            ADMIN_USER,
            &pki.admin_token,
        )?;
        write_kubeconfig(
            &layout.restricted_kubeconfig,
            &server,
            &pki,
            RESTRICTED_USER,
            &pki.restricted_token,
        )?;

        let p = |path: &Path| path.display().to_string();
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let mut etcd = Component::new(
            "etcd",
            &binaries.etcd,
            vec![
                "--name=storefactory".into(),
                format!("--data-dir={}", p(&layout.etcd_dir)),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=storefactory={peer_url}"),
                "--initial-cluster-state=new".into(),
                "--log-level=warn".into(),
                "--logger=zap".into(),
            ],
            &layout.logs_dir,
        );
        etcd.spawn()?;
        wait_for_etcd(&mut etcd, etcd_port, timeout, &layout.logs_dir).await?;

        let mut apiserver = Component::new(
            "kube-apiserver",
            &binaries.kube_apiserver,
            vec![
                format!("--etcd-servers={etcd_url}"),
                format!("--secure-port={api_port}"),
                "--bind-address=127.0.0.1".into(),
                "--advertise-address=127.0.0.1".into(),
                "--insecure-port=0".into(),
                format!("--tls-cert-file={}", p(&pki.serving_cert)),
                format!("--tls-private-key-file={}", p(&pki.serving_key)),
                format!("--client-ca-file={}", p(&pki.ca_cert)),
                format!("--token-auth-file={}", p(&pki.tokens_csv)),
                "--authorization-mode=RBAC".into(),
                format!("--service-account-key-file={}", p(&pki.sa_pub)),
                format!("--service-account-signing-key-file={}", p(&pki.sa_key)),
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
                "--service-cluster-ip-range=10.96.0.0/16".into(),
                format!(
                    "--cert-dir={}",
                    p(&layout.pki_dir.join("apiserver-generated"))
                ),
                "--allow-privileged=true".into(),
                "--profiling=false".into(),
                "--v=1".into(),
            ],
            &layout.logs_dir,
        );
        apiserver.spawn()?;
        let admin = client_from(&layout.kubeconfig).await?;
        wait_for_apiserver(&mut apiserver, &admin, timeout, &layout.logs_dir).await?;

        let mut controller_manager = Component::new(
            "kube-controller-manager",
            &binaries.kube_controller_manager,
            vec![
                format!("--kubeconfig={}", p(&layout.kubeconfig)),
                "--leader-elect=false".into(),
                "--controllers=*".into(),
                "--use-service-account-credentials=false".into(),
                format!("--service-account-private-key-file={}", p(&pki.sa_key)),
                format!("--root-ca-file={}", p(&pki.ca_cert)),
                format!("--cluster-signing-cert-file={}", p(&pki.ca_cert)),
                format!("--cluster-signing-key-file={}", p(&pki.ca_key)),
                "--port=0".into(),
                "--secure-port=0".into(),
                // Tests share one control plane: don't let client-side throttling queue them.
                "--kube-api-qps=200".into(),
                "--kube-api-burst=400".into(),
                // Deleting namespaces re-checks every second instead of waiting out the pods'
                // grace period estimate: the kubelet finishes pod deletion at once.
                "--namespace-sync-period=1s".into(),
                "--pvclaimbinder-sync-period=2s".into(),
                "--v=1".into(),
            ],
            &layout.logs_dir,
        );
        controller_manager.spawn()?;
        wait_for_controller_manager(&mut controller_manager, &admin, timeout, &layout.logs_dir)
            .await?;

        let kubelet_tasks = match &kubelet {
            Some(kubelet) => Some(
                kubelet::run(admin.clone(), kubelet, &layout.logs_dir.join("kubelet.log")).await?,
            ),
            None => None,
        };
        Ok((
            Host {
                etcd,
                apiserver,
                controller_manager,
                admin,
                kubelet_tasks,
                logs_dir: layout.logs_dir.clone(),
                timeout,
            },
            server,
        ))
    }

    async fn serve(&mut self, mut commands: mpsc::UnboundedReceiver<HostCommand>) {
        // Stopped on request (a test of an outage) or running: a crash is the other case.
        let mut apiserver_wanted = true;
        let mut supervise = tokio::time::interval(SUPERVISE_EVERY);
        supervise.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let command = tokio::select! {
                command = commands.recv() => command,
                _ = supervise.tick() => {
                    if apiserver_wanted {
                        self.restart_if_crashed().await;
                    }
                    continue;
                }
            };
            let Some(command) = command else { break };
            match command {
                HostCommand::StopApiserver(reply) => {
                    apiserver_wanted = false;
                    self.apiserver.stop();
                    let _ = reply.send(Ok(()));
                }
                HostCommand::StartApiserver(reply) => {
                    apiserver_wanted = true;
                    let result = match self.apiserver.check_running() {
                        Ok(()) => Ok(()),
                        Err(_) => self.start_apiserver().await,
                    };
                    let _ = reply.send(result);
                }
                HostCommand::DeleteNamespace(name) => {
                    let api: Api<Namespace> = Api::all(self.admin.clone());
                    tokio::spawn(async move {
                        let _ = api.delete(&name, &DeleteParams::background()).await;
                    });
                }
                HostCommand::Shutdown => break,
            }
        }
    }

    async fn start_apiserver(&mut self) -> Result<()> {
        self.apiserver.spawn()?;
        wait_for_apiserver(
            &mut self.apiserver,
            &self.admin,
            self.timeout,
            &self.logs_dir,
        )
        .await
    }

    /// Starts the apiserver again if it exited on its own (it crashes on a few requests it
    /// cannot encode, and long runs are expected to survive that), keeping etcd's data. Each
    /// restart is written to `supervisor.log` and stderr.
    async fn restart_if_crashed(&mut self) {
        let Err(exited) = self.apiserver.check_running() else {
            return;
        };
        let log_path = self.logs_dir.join("supervisor.log");
        let note = |text: String| {
            eprintln!("storefactory-testkit: {text}");
            if let Ok(mut log) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
            {
                use std::io::Write;
                let _ = writeln!(log, "{text}");
            }
        };
        note(format!(
            "kube-apiserver exited, starting it again: {exited}"
        ));
        match self.start_apiserver().await {
            Ok(()) => note("kube-apiserver is back".to_owned()),
            Err(error) => note(format!("kube-apiserver did not come back: {error}")),
        }
    }

    fn shutdown(mut self) {
        drop(self.kubelet_tasks.take());
        self.controller_manager.stop();
        self.apiserver.stop();
        self.etcd.stop();
    }
}

async fn wait_for_etcd(
    etcd: &mut Component,
    port: u16,
    timeout: Duration,
    logs_dir: &Path,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        etcd.check_running()?;
        if etcd_healthy(port).await {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(not_ready("etcd", timeout, logs_dir));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn etcd_healthy(port: u16) -> bool {
    let check = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream
            .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        std::io::Result::Ok(response.contains("\"health\":\"true\""))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), check).await,
        Ok(Ok(true))
    )
}

async fn wait_for_apiserver(
    apiserver: &mut Component,
    admin: &Client,
    timeout: Duration,
    logs_dir: &Path,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        apiserver.check_running()?;
        let request = http::Request::get("/readyz")
            .body(Vec::new())
            .expect("a valid request");
        if let Ok(Ok(body)) =
            tokio::time::timeout(Duration::from_secs(5), admin.request_text(request)).await
            && body.trim() == "ok"
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(not_ready("kube-apiserver", timeout, logs_dir));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The controller-manager works once the `default` ServiceAccount exists with its token:
/// that takes the service account and token controllers, which pods need to be admitted.
async fn wait_for_controller_manager(
    controller_manager: &mut Component,
    admin: &Client,
    timeout: Duration,
    logs_dir: &Path,
) -> Result<()> {
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), "default");
    let has_token = |sa: Option<&ServiceAccount>| {
        sa.and_then(|sa| sa.secrets.as_ref())
            .is_some_and(|s| !s.is_empty())
    };
    let ready = kube::runtime::wait::await_condition(accounts, "default", has_token);
    tokio::pin!(ready);
    let deadline = Instant::now() + timeout;
    loop {
        controller_manager.check_running()?;
        tokio::select! {
            result = &mut ready => {
                result.map_err(|source| Error::Wait {
                    what: "the default ServiceAccount's token".to_owned(),
                    source,
                })?;
                return Ok(());
            }
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        if Instant::now() > deadline {
            return Err(not_ready("kube-controller-manager", timeout, logs_dir));
        }
    }
}

fn not_ready(component: &'static str, timeout: Duration, logs_dir: &Path) -> Error {
    Error::NotReady {
        component,
        seconds: timeout.as_secs(),
        logs_dir: logs_dir.to_owned(),
    }
}

fn write_kubeconfig(path: &Path, server: &str, pki: &Pki, user: &str, token: &str) -> Result<()> {
    let ca = std::fs::read(&pki.ca_cert).map_err(|e| Error::io("reading", &pki.ca_cert, e))?;
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: storefactory-testkit
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: {user}
  user:
    token: {token}
contexts:
- name: storefactory-testkit
  context:
    cluster: storefactory-testkit
    user: {user}
    namespace: default
current-context: storefactory-testkit
",
        ca = base64(&ca)
    );
    std::fs::write(path, text).map_err(|e| Error::io("writing", path, e))
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_matches_the_standard_alphabet_with_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar!"), "Zm9vYmFyIQ==");
    }
}
