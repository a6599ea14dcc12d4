//! The dashboard in a real browser: a real server on a loopback port against the local
//! control plane, driven by `tests/browser/dashboard.js` in headless Chromium (Playwright).
//! `scripts/test.sh` installs Chromium and the script's npm packages.
//!
//! The script asks this test for what only it can do, one line at a time on its standard
//! output (`@@fault <name>`), and waits for `ok` on its standard input: the simulated
//! kubelet's faults make a store provision slowly (to watch its progress) or fail (to
//! retry it).
//!
//! With `STOREFACTORY_SCREENSHOTS=<dir>` the script saves screenshots of the main screens
//! there (`docs/screenshots` holds the committed ones).

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use storefactory_http::Server;
use storefactory_testkit::{Fault, FaultGuard};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// How long the whole browser session may take.
const SESSION_LIMIT: Duration = Duration::from_secs(600);

/// The faults the script can ask for.
fn fault(name: &str) -> Result<Option<Fault>> {
    Ok(match name {
        // WordPress comes up only after a while: the store's progress can be watched.
        "slow-wordpress" => Some(
            Fault::slow_start(Duration::from_secs(8)).label("app.kubernetes.io/name", "wordpress"),
        ),
        // The seeding image cannot be pulled: the store fails; a retry replaces the Job.
        "seed-image-pull" => Some(Fault::image_pull().label("app.kubernetes.io/name", "seed")),
        "clear" => None,
        other => bail!("the browser script asked for an unknown fault {other:?}"),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_does_what_a_store_owner_and_an_admin_need() -> Result<()> {
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    ensure!(
        browser_dir.join("node_modules/playwright-core").is_dir()
            && Path::new("/usr/bin/chromium").exists(),
        "the browser test needs Chromium and its npm packages: run ./scripts/test.sh, which installs both"
    );
    let cp = storefactory_testkit::shared().await?;
    let kubelet = cp.kubelet().context("the control plane has a kubelet")?;
    let dir = tempfile::tempdir()?;
    let mut config = common::config();
    config.listen = "127.0.0.1:0".parse()?;
    config.database = dir.path().join("dashboard.db");
    config.kubeconfig = Some(cp.kubeconfig_path().to_path_buf());
    // The script makes more wrong logins on purpose than the tests' usual budget.
    config.max_failed_logins = 10;
    let server = Server::bind(config).await?;
    let url = format!("http://{}/", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));

    let mut child = tokio::process::Command::new("node")
        .arg(browser_dir.join("dashboard.js"))
        .args([url.as_str(), "admin", common::ADMIN_PASSWORD])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot run node")?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut stderr = child.stderr.take().context("stderr")?;
    let errors = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });

    let session = async {
        let mut lines = BufReader::new(stdout).lines();
        let mut transcript = String::new();
        let mut active: Option<FaultGuard> = None;
        while let Some(line) = lines.next_line().await? {
            transcript.push_str(&line);
            transcript.push('\n');
            if let Some(name) = line.strip_prefix("@@fault ") {
                drop(active.take());
                active = fault(name.trim())?.map(|f| kubelet.inject(f));
                stdin.write_all(b"ok\n").await?;
                stdin.flush().await?;
            }
        }
        drop(active);
        anyhow::Ok(transcript)
    };
    let transcript = tokio::time::timeout(SESSION_LIMIT, session)
        .await
        .context("the browser session took too long")??;
    let status = child.wait().await?;
    let errors = errors.await?;
    ensure!(
        status.success(),
        "browser test failed:\n{transcript}\n{errors}"
    );
    assert!(
        transcript.contains("dashboard: every check passed"),
        "{transcript}\n{errors}"
    );

    let _ = stop.send(());
    running.await??;
    Ok(())
}
