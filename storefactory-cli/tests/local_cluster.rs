//! The README's first command, `serve --local-cluster`, run as a newcomer would: it starts
//! its own control plane, tells where the first password is (and never logs it), provisions
//! a store to `ready`, stops everything on SIGTERM, and on the next start on the same
//! directory has the store back, which it then deletes.
//!
//! Needs the `local-cluster` feature:
//! `cargo test -p storefactory-cli --features local-cluster --test local_cluster`.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_storefactory");

/// The arguments of the README's first command, after `cargo run ... --`.
fn readme_first_command() -> Vec<String> {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("## The two commands")
        .nth(1)
        .expect("a section `The two commands`");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a sh block");
    let command = block.lines().next().expect("a command").trim();
    assert_eq!(
        command,
        "cargo run --release -p storefactory-cli --features local-cluster -- serve --local-cluster",
        "the README's first command changed: change this test with it"
    );
    let (_, args) = command.split_once(" -- ").expect("arguments after --");
    args.split_whitespace().map(str::to_owned).collect()
}

struct Running {
    child: tokio::process::Child,
    addr: String,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// Starts the README's command in `dir` on port 0, with no password configured.
async fn start(dir: &Path) -> Running {
    let mut command = tokio::process::Command::new(BIN);
    command
        .current_dir(dir)
        .args(readme_first_command())
        .args(["--listen", "127.0.0.1:0", "--lease-duration", "4"])
        .env("RUST_LOG", "info")
        .env_remove("STOREFACTORY_ADMIN_PASSWORD")
        .env_remove("STOREFACTORY_TOKEN_KEY")
        .env("KUBECONFIG", dir.join("no-kubeconfig"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("serve starts");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = log.clone();
    let addr = tokio::time::timeout(Duration::from_secs(300), async {
        while let Some(line) = lines.next_line().await.expect("read log") {
            eprintln!("serve: {line}");
            kept.lock().unwrap().push(line.clone());
            if let Some(addr) = line.split("addr=").nth(1) {
                return addr.trim().to_owned();
            }
        }
        panic!("serve exited without listening");
    })
    .await
    .expect("serve listens within five minutes");
    let kept = log.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("serve: {line}");
            kept.lock().unwrap().push(line);
        }
    });
    Running { child, addr, log }
}

async fn stop(mut running: Running) -> Option<i32> {
    let pid = running.child.id().expect("running").to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    tokio::time::timeout(Duration::from_secs(60), running.child.wait())
        .await
        .expect("serve stops on SIGTERM")
        .unwrap()
        .code()
}

async fn call(addr: &str, method: &str, path: &str, token: &str, body: &Value) -> (u16, Value) {
    let body = body.to_string();
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("an HTTP status line");
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

async fn login(addr: &str, password: &str) -> String {
    let (status, body) = call(
        addr,
        "POST",
        "/api/auth/login",
        "",
        &json!({"username": "admin", "password": password}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

async fn status_becomes(addr: &str, token: &str, id: &str, want: &str) -> Value {
    let started = Instant::now();
    loop {
        let (_, store) = call(
            addr,
            "GET",
            &format!("/api/stores/{id}"),
            token,
            &Value::Null,
        )
        .await;
        if store["status"] == want {
            return store;
        }
        assert!(
            store["status"] != "failed" && started.elapsed() < Duration::from_secs(120),
            "store {id} did not become {want}: {store}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn the_readme_first_command_provisions_on_its_own_cluster_and_keeps_stores_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path()).await;
    let (status, ready) = call(&server.addr, "GET", "/ready", "", &Value::Null).await;
    assert_eq!(status, 200, "{ready}");

    // The first password: in a file only its owner can read, named in the log, not in it.
    let password_file = dir.path().join("storefactory.db.admin-password");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&password_file)
            .expect("the generated password's file")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let password = std::fs::read_to_string(&password_file).unwrap();
    let password = password.trim();
    let log = server.log.lock().unwrap().join("\n");
    assert!(!log.contains(password), "the password is in the log");
    assert!(log.contains("storefactory.db.admin-password"), "{log}");

    let token = login(&server.addr, password).await;
    let (status, store) = call(
        &server.addr,
        "POST",
        "/api/stores",
        &token,
        &json!({"sample_products": "Mug|4.50|Ceramic"}),
    )
    .await;
    assert_eq!(status, 201, "{store}");
    let id = store["id"].as_str().unwrap().to_owned();
    status_becomes(&server.addr, &token, &id, "ready").await;

    // The cluster's directory holds its admin token: its user's only.
    let cluster_dir = std::fs::metadata(dir.path().join("storefactory-cluster")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&cluster_dir.permissions()) & 0o777,
        0o700
    );

    // SIGTERM stops the server and its control plane.
    let kubeconfig = std::fs::read_to_string(dir.path().join("storefactory-cluster/kubeconfig"))
        .expect("the local cluster's kubeconfig");
    let apiserver = kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: https://"))
        .expect("a server in the kubeconfig")
        .to_owned();
    assert_eq!(stop(server).await, Some(0));
    assert!(
        tokio::net::TcpStream::connect(&apiserver).await.is_err(),
        "the apiserver at {apiserver} still listens"
    );

    // Started again on the same directory: the store is there, still ready, and goes away.
    let server = start(dir.path()).await;
    let token = login(&server.addr, password).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let store = status_becomes(&server.addr, &token, &id, "ready").await;
    assert_eq!(store["status"], "ready");
    let (status, deleting) = call(
        &server.addr,
        "DELETE",
        &format!("/api/stores/{id}"),
        &token,
        &Value::Null,
    )
    .await;
    assert_eq!(status, 200, "{deleting}");
    status_becomes(&server.addr, &token, &id, "deleted").await;
    assert_eq!(stop(server).await, Some(0));
}
