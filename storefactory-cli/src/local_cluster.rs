//! `serve --local-cluster`: the platform on a local Kubernetes control plane that this
//! process installs (once), starts, and stops with it.
//!
//! The control plane is storefactory-testkit's: etcd, kube-apiserver and
//! kube-controller-manager as local processes and a simulated kubelet. It is compiled in only
//! with the `local-cluster` cargo feature, off by default, so the production binary and the
//! image carry none of it. In-process rather than a child `storefactory-testkit` binary: one
//! `cargo run` builds and starts everything, the control plane's processes die with this one
//! (the testkit ties them to its host thread), and Ctrl-C stops both in order.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use indicatif::{ProgressBar, ProgressStyle};
use storefactory_testkit::{Binaries, ControlPlane, KubeletConfig, Options};
use tokio::io::AsyncBufReadExt;

/// A running local control plane; stopped when dropped.
#[derive(Debug)]
pub struct LocalCluster {
    control_plane: ControlPlane,
}

impl LocalCluster {
    /// Installs the control plane if needed, and starts it with its data in `dir` (created
    /// if missing), so that what it held before it was last stopped is back.
    pub async fn start(dir: &Path) -> Result<LocalCluster> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        // It holds the cluster's admin token and certificate authority key: this user's only.
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .with_context(|| format!("cannot make {} private", dir.display()))?;
        let dir = dir
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", dir.display()))?;
        let binaries = binaries().await?;
        let spinner = spinner("starting the local Kubernetes control plane");
        let started = ControlPlane::start(
            Options::default()
                .dir(&dir)
                .binaries(binaries)
                .keep_data(true)
                .kubelet(Some(KubeletConfig::default())),
        )
        .await;
        spinner.finish_and_clear();
        let control_plane = started.with_context(|| {
            format!(
                "the local control plane did not start (its logs are in {})",
                dir.join("logs").display()
            )
        })?;
        eprintln!(
            "local Kubernetes control plane ready at {} in {:.1}s; data in {}; for the \
             command line: export KUBECONFIG={}",
            control_plane.server_url(),
            control_plane.started_in().as_secs_f64(),
            dir.display(),
            control_plane.kubeconfig_path().display(),
        );
        Ok(LocalCluster { control_plane })
    }

    /// The kubeconfig of its admin identity.
    pub fn kubeconfig(&self) -> PathBuf {
        self.control_plane.kubeconfig_path().to_owned()
    }

    /// Stops etcd, the apiserver, the controller manager and the kubelet; the data stays.
    pub fn stop(self) {
        eprintln!("stopping the local Kubernetes control plane");
        drop(self.control_plane);
    }
}

/// The control plane's binaries, installed first if they are missing.
async fn binaries() -> Result<Binaries> {
    match Binaries::locate() {
        Ok(binaries) => Ok(binaries),
        Err(storefactory_testkit::Error::BinaryNotFound { .. })
            if std::env::var_os("STOREFACTORY_K8S_BIN_DIR").is_none() =>
        {
            let bin_dir = install().await?;
            Binaries::in_dir(&bin_dir).context("the installed control plane is incomplete")
        }
        Err(error) => Err(error).context("cannot find the local control plane's binaries"),
    }
}

/// Runs the install script with a progress display: the time so far and its latest step.
/// Returns the directory of the binaries, which the script prints last.
async fn install() -> Result<PathBuf> {
    let script = storefactory_testkit::install_script();
    let cache = storefactory_testkit::default_bin_dir();
    eprintln!(
        "installing the local Kubernetes control plane (first use only): etcd from Debian, and \
         kube-apiserver and kube-controller-manager {} built from Debian's source package, \
         five to ten minutes on two cores; cached in {}",
        storefactory_testkit::KUBERNETES_VERSION,
        cache.display(),
    );
    let started = Instant::now();
    let mut child = tokio::process::Command::new("bash")
        .arg(&script)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot run {}", script.display()))?;
    let stdout = child.stdout.take().context("no stdout of the installer")?;
    let stderr = child.stderr.take().context("no stderr of the installer")?;
    let output = tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let mut last = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            if !line.trim().is_empty() {
                last = line;
            }
        }
        last
    });
    let spinner = spinner("installing");
    // The script's own steps are kept in the scrollback; the compiler's chatter only shows
    // as the spinner's latest line.
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let mut tail: Vec<String> = Vec::new();
    while let Some(line) = lines
        .next_line()
        .await
        .context("reading the installer's output")?
    {
        if let Some(step) = line.strip_prefix("[install-control-plane] ") {
            if spinner.is_hidden() {
                eprintln!("{step}");
            } else {
                spinner.println(format!("  {step}"));
            }
        }
        spinner.set_message(line.chars().take(100).collect::<String>());
        tail.push(line);
        if tail.len() > 20 {
            tail.remove(0);
        }
    }
    let status = child.wait().await.context("waiting for the installer")?;
    spinner.finish_and_clear();
    let bin_dir = output.await.unwrap_or_default();
    if !status.success() || bin_dir.is_empty() {
        anyhow::bail!(
            "installing the local control plane failed ({status}); the end of its output:\n{}",
            tail.join("\n")
        );
    }
    eprintln!(
        "local control plane installed in {:.0?}, cached in {bin_dir}",
        started.elapsed()
    );
    Ok(PathBuf::from(bin_dir.trim()))
}

/// A spinner with the time elapsed on a terminal; nothing otherwise (the caller's lines
/// then speak for it).
fn spinner(prefix: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    let style = ProgressStyle::with_template("{spinner} [{elapsed:>4}] {prefix} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    bar.set_style(style);
    bar.set_prefix(prefix.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}
