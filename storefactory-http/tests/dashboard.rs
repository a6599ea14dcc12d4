//! The dashboard in a real browser: a real server on a loopback port against the local
//! control plane, driven by `tests/browser/dashboard.js` in headless Chromium (Playwright).
//! `scripts/test.sh` installs Chromium and the script's npm packages.

mod common;

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, ensure};
use storefactory_http::Server;

#[tokio::test]
async fn the_dashboard_logs_in_creates_follows_and_deletes_a_store() -> Result<()> {
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    ensure!(
        browser_dir.join("node_modules/playwright-core").is_dir()
            && Path::new("/usr/bin/chromium").exists(),
        "the browser test needs Chromium and its npm packages: run ./scripts/test.sh, which installs both"
    );
    let cp = storefactory_testkit::shared().await?;
    let dir = tempfile::tempdir()?;
    let mut config = common::config();
    config.listen = "127.0.0.1:0".parse()?;
    config.database = dir.path().join("dashboard.db");
    config.kubeconfig = Some(cp.kubeconfig_path().to_path_buf());
    let server = Server::bind(config).await?;
    let url = format!("http://{}/", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));

    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(browser_dir.join("dashboard.js"))
            .args([url.as_str(), "admin", common::ADMIN_PASSWORD])
            .output()
    })
    .await?
    .context("cannot run node")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.success(),
        "browser test failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("all work"), "{stdout}");

    let _ = stop.send(());
    running.await??;
    Ok(())
}
