//! `storefactory-testkit up --dir DIR`: a local control plane with a simulated kubelet, until
//! interrupted.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use storefactory_testkit::{ControlPlane, KubeletConfig, Options};

#[derive(Debug, Parser)]
#[command(version, about = "A local Kubernetes control plane for Storefactory")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Install if needed, start etcd, kube-apiserver, kube-controller-manager and the
    /// simulated kubelet, and run until Ctrl-C or SIGTERM.
    Up {
        /// Directory for the kubeconfig, certificates and logs (created if missing).
        #[arg(long)]
        dir: PathBuf,
        /// Number of simulated nodes.
        #[arg(long, default_value_t = 1)]
        nodes: usize,
        /// Milliseconds between binding a pod and reporting it running.
        #[arg(long, default_value_t = 0)]
        pod_start_delay_ms: u64,
        /// Milliseconds a Job pod runs before it succeeds.
        #[arg(long, default_value_t = 0)]
        job_duration_ms: u64,
        /// Keep the cluster's objects in DIR when stopped, and find them there when started
        /// again on the same DIR.
        #[arg(long)]
        keep_data: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        // kube's client logs every refused request, and the readiness probes expect a few.
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,kube_client=off")),
        )
        .with_writer(std::io::stderr)
        .init();
    let Cmd::Up {
        dir,
        nodes,
        pod_start_delay_ms,
        job_duration_ms,
        keep_data,
    } = Cli::parse().command;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))?;
    let kubelet = KubeletConfig::default()
        .nodes(nodes)
        .pod_start_delay(Duration::from_millis(pod_start_delay_ms))
        .job_duration(Duration::from_millis(job_duration_ms));
    let cp = ControlPlane::start(
        Options::default()
            .dir(&dir)
            .kubelet(Some(kubelet))
            .keep_data(keep_data),
    )
    .await
    .context("starting the control plane")?;
    println!(
        "storefactory-testkit: control plane ready at {} in {:.1}s; use it with `export KUBECONFIG={}` (restricted user: {}); logs in {}; Ctrl-C to stop",
        cp.server_url(),
        cp.started_in().as_secs_f64(),
        cp.kubeconfig_path().display(),
        cp.restricted_kubeconfig_path().display(),
        cp.logs_dir().display(),
    );
    wait_for_shutdown_signal().await?;
    eprintln!("storefactory-testkit: stopping");
    drop(cp);
    Ok(())
}

async fn wait_for_shutdown_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("listening for Ctrl-C")?,
        _ = terminate.recv() => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
