//! Control plane processes: started with their output in a log file, killed when dropped,
//! and killed by the kernel if the process that started them dies.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// One control plane process (etcd, kube-apiserver, kube-controller-manager).
#[derive(Debug)]
pub(crate) struct Component {
    pub name: &'static str,
    program: PathBuf,
    args: Vec<String>,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Component {
    pub fn new(name: &'static str, program: &Path, args: Vec<String>, logs_dir: &Path) -> Self {
        Component {
            name,
            program: program.to_owned(),
            args,
            log: logs_dir.join(format!("{name}.log")),
            child: None,
        }
    }

    /// Starts the process; its stdout and stderr are appended to its log file.
    ///
    /// `setpriv --pdeathsig KILL` makes the kernel kill it when the thread that started it
    /// exits, which covers a test process that dies without running destructors (and the
    /// shared control plane, which lives in a static and is never dropped). Callers start
    /// components from the control plane's own long-lived thread for that reason.
    pub fn spawn(&mut self) -> Result<()> {
        self.stop();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| Error::io("opening", &self.log, e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| Error::io("opening", &self.log, e))?;
        let mut command = match setpriv() {
            Some(setpriv) => {
                let mut c = Command::new(setpriv);
                c.args(["--pdeathsig", "KILL", "--"]).arg(&self.program);
                c
            }
            None => Command::new(&self.program),
        };
        command
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            // Its own process group: Ctrl-C in a terminal reaches us, and we stop it in order.
            .process_group(0);
        let child = command.spawn().map_err(|source| Error::SpawnComponent {
            component: self.name,
            source,
        })?;
        self.child = Some(child);
        Ok(())
    }

    /// An error if the process is not running (it exited, or was never started).
    pub fn check_running(&mut self) -> Result<()> {
        let status = match self.child.as_mut().map(Child::try_wait) {
            None => "not started".to_owned(),
            Some(Ok(None)) => return Ok(()),
            Some(Ok(Some(status))) => status.to_string(),
            Some(Err(e)) => format!("unknown status ({e})"),
        };
        self.child = None;
        Err(Error::ComponentExited {
            component: self.name,
            status,
            log: self.log.clone(),
            log_tail: log_tail(&self.log, 30),
        })
    }

    /// Kills the process (if running) and reaps it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The last `lines` lines of a log file (empty if unreadable).
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn setpriv() -> Option<&'static Path> {
    static SETPRIV: OnceLock<Option<PathBuf>> = OnceLock::new();
    SETPRIV
        .get_or_init(|| {
            ["/usr/bin/setpriv", "/bin/setpriv", "/usr/local/bin/setpriv"]
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file())
        })
        .as_deref()
}
