//! Finding (and if need be installing) the control plane binaries.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::error::{Error, Result};

/// The Kubernetes version the testkit runs.
pub const KUBERNETES_VERSION: &str = "1.20.2";

/// Where the control plane binaries are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binaries {
    /// `etcd`.
    pub etcd: PathBuf,
    /// `kube-apiserver`.
    pub kube_apiserver: PathBuf,
    /// `kube-controller-manager`.
    pub kube_controller_manager: PathBuf,
}

impl Binaries {
    /// Finds the binaries without installing anything.
    ///
    /// kube-apiserver and kube-controller-manager are looked for in `STOREFACTORY_K8S_BIN_DIR`,
    /// else in the install script's cache directory; etcd in `STOREFACTORY_K8S_BIN_DIR`, else
    /// on `PATH`.
    pub fn locate() -> Result<Self> {
        let bin_dir = std::env::var_os("STOREFACTORY_K8S_BIN_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(default_bin_dir);
        Self::in_dir(&bin_dir)
    }

    /// Finds kube-apiserver and kube-controller-manager in `bin_dir`, etcd there or on `PATH`.
    pub fn in_dir(bin_dir: &Path) -> Result<Self> {
        let kube = |name: &str| {
            let path = bin_dir.join(name);
            if is_executable(&path) {
                Ok(path)
            } else {
                Err(Error::BinaryNotFound {
                    name: name.to_owned(),
                    looked_in: bin_dir.display().to_string(),
                })
            }
        };
        let etcd = Some(bin_dir.join("etcd"))
            .filter(|p| is_executable(p))
            .or_else(|| find_on_path("etcd"))
            .ok_or_else(|| Error::BinaryNotFound {
                name: "etcd".to_owned(),
                looked_in: format!("{} and PATH", bin_dir.display()),
            })?;
        Ok(Binaries {
            etcd,
            kube_apiserver: kube("kube-apiserver")?,
            kube_controller_manager: kube("kube-controller-manager")?,
        })
    }

    /// Finds the binaries, running `scripts/install-control-plane.sh` when they are missing.
    ///
    /// The script is idempotent and caches its build, so this costs about a second once the
    /// machine has been set up, and about five minutes on a fresh one. It is blocking: call it
    /// from a thread where blocking is fine.
    pub fn locate_or_install() -> Result<Self> {
        match Self::locate() {
            Ok(found) => Ok(found),
            Err(Error::BinaryNotFound { .. })
                if std::env::var_os("STOREFACTORY_K8S_BIN_DIR").is_none() =>
            {
                let bin_dir = run_install_script()?;
                Self::in_dir(&bin_dir)
            }
            Err(e) => Err(e),
        }
    }
}

/// The install script's default cache directory for the Kubernetes binaries.
pub fn default_bin_dir() -> PathBuf {
    let cache_root = std::env::var_os("STOREFACTORY_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("storefactory"))
        })
        .or_else(|| std::env::var_os("HOME").map(|d| PathBuf::from(d).join(".cache/storefactory")))
        .unwrap_or_else(|| PathBuf::from("/tmp/storefactory-cache"));
    cache_root
        .join(format!("kubernetes-{KUBERNETES_VERSION}"))
        .join("bin")
}

/// The install script shipped in the repository.
pub fn install_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/install-control-plane.sh")
}

/// Runs the install script, its progress going to our stderr; returns the bin dir it printed.
pub fn run_install_script() -> Result<PathBuf> {
    let script = install_script();
    let fail = |reason: String| Error::Install {
        script: script.clone(),
        reason,
    };
    if !script.is_file() {
        return Err(fail("the script does not exist".to_owned()));
    }
    eprintln!(
        "storefactory-testkit: control plane binaries missing, running {} (a first install builds Kubernetes {KUBERNETES_VERSION}: about five minutes)",
        script.display()
    );
    let started = Instant::now();
    let output = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| fail(format!("cannot run bash: {e}")))?;
    if !output.status.success() {
        return Err(fail(format!("it exited with {}", output.status)));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let bin_dir = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .ok_or_else(|| fail("it printed no bin directory".to_owned()))?;
    eprintln!(
        "storefactory-testkit: control plane installed in {:.0?}",
        started.elapsed()
    );
    Ok(PathBuf::from(bin_dir.trim()))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_script_is_found_relative_to_the_crate() {
        assert!(install_script().is_file(), "{}", install_script().display());
    }

    #[test]
    fn missing_binaries_name_the_directory() {
        let err = Binaries::in_dir(Path::new("/nonexistent/storefactory")).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/storefactory"),
            "{err}"
        );
    }
}
