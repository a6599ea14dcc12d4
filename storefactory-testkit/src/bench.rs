//! Small things the benchmarks of several crates share: their settings from the
//! environment, the memory the benchmark's process holds, and a control plane of their own in
//! a child process, so that what the benchmark's process holds and spends is the code under
//! test's alone (the simulated kubelet of a thousand stores holds hundreds of MiB).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use kube::Client;

use crate::control_plane::client_from;
use crate::{ControlPlane, Options};

/// Set in the child that [`ChildControlPlane::start`] runs: the directory for its control plane.
const CHILD_DIR: &str = "STOREFACTORY_BENCH_CONTROL_PLANE_DIR";
/// The line the child prints once its control plane is ready, followed by the kubeconfig path.
const READY: &str = "control-plane-ready ";

/// A positive whole number from the environment variable `name`, or `default` when it is
/// unset, not a number, or zero.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

/// This process's resident memory in MiB (`VmRSS`), or 0 where `/proc` does not tell.
pub fn rss_mib() -> f64 {
    status_mib("VmRSS:")
}

/// This process's resident memory in MiB split into what it allocated (`RssAnon`) and the
/// pages of its executable and other files it maps (`RssFile`, shared with other processes
/// that map them).
pub fn rss_split_mib() -> (f64, f64) {
    (status_mib("RssAnon:"), status_mib("RssFile:"))
}

fn status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// A control plane run by a child process: this executable started again, which
/// [`host_control_plane_if_child`] turns into the control plane's host. Stopped (and its
/// directory removed) when dropped.
pub struct ChildControlPlane {
    child: Child,
    stdin: Option<ChildStdin>,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl ChildControlPlane {
    /// Starts this executable again as the host of a fresh control plane with the simulated
    /// kubelet, and waits until it is ready (the first run installs it, which takes minutes).
    pub fn start() -> anyhow::Result<ChildControlPlane> {
        use anyhow::Context;
        let dir = tempfile::tempdir().context("creating the control plane's directory")?;
        let exe = std::env::current_exe().context("finding this executable")?;
        let mut child = Command::new(exe)
            .env(CHILD_DIR, dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the control plane's process")?;
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().context("no stdout")?);
        let mut line = String::new();
        loop {
            line.clear();
            if stdout.read_line(&mut line)? == 0 {
                let status = child.wait()?;
                anyhow::bail!("the control plane's process ended ({status}) before it was ready");
            }
            if let Some(path) = line.trim_end().strip_prefix(READY) {
                return Ok(ChildControlPlane {
                    child,
                    stdin,
                    kubeconfig: PathBuf::from(path),
                    _dir: dir,
                });
            }
        }
    }

    /// The cluster administrator's kubeconfig.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// A client with the cluster administrator's identity.
    pub async fn client(&self) -> crate::Result<Client> {
        client_from(&self.kubeconfig).await
    }

    /// The child's process id, to read its memory.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ChildControlPlane {
    fn drop(&mut self) {
        // Closing its stdin is the child's signal to stop its control plane cleanly.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// Call first in a benchmark's `main`. In the child that [`ChildControlPlane::start`] runs,
/// it hosts the control plane until the parent closes its stdin (or dies), then exits the
/// process; anywhere else it returns at once.
pub fn host_control_plane_if_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let code = match host(PathBuf::from(dir)) {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("control plane for the benchmark: {error:#}");
            1
        }
    };
    std::process::exit(code);
}

fn host(dir: PathBuf) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let cp = runtime.block_on(ControlPlane::start(Options::default().dir(&dir)))?;
    println!("{READY}{}", cp.kubeconfig_path().display());
    // Until the parent closes our stdin, on purpose or by ending.
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(cp);
    drop(runtime);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_process_holds_memory() {
        assert!(rss_mib() > 0.0);
    }

    #[test]
    fn unset_or_zero_settings_take_the_default() {
        assert_eq!(env_usize("STOREFACTORY_TESTKIT_UNSET_SETTING", 7), 7);
    }
}
