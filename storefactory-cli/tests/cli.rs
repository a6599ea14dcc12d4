//! The `storefactory` binary, run as a user would: against a temporary database and, where
//! the command needs one, the local control plane of storefactory-testkit.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::IngressClass;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::Value;
use storefactory_core::port::StoreRepository;
use storefactory_core::spec::{StoreId, StoreSpec};
use storefactory_core::store::{StoreRecord, StoreStatus};
use storefactory_testkit::{Fault, shared};
use tokio::io::AsyncWriteExt;

const BIN: &str = env!("CARGO_BIN_EXE_storefactory");

/// A temporary working directory with a database, and the kubeconfig to use.
struct Cli {
    dir: tempfile::TempDir,
    kubeconfig: Option<PathBuf>,
    /// A namespace of this test's own for the leader Lease: the tests of this binary share
    /// one control plane, and each test's commands elect their leader among themselves.
    lease_namespace: tokio::sync::OnceCell<String>,
}

impl Cli {
    fn offline() -> Self {
        Cli {
            dir: tempfile::tempdir().expect("tempdir"),
            kubeconfig: None,
            lease_namespace: tokio::sync::OnceCell::new(),
        }
    }

    fn with_kubeconfig(path: &Path) -> Self {
        Cli {
            kubeconfig: Some(path.to_owned()),
            ..Cli::offline()
        }
    }

    async fn lease_namespace(&self) -> &str {
        self.lease_namespace
            .get_or_init(|| async {
                let name = format!("lease-{}", StoreId::generate());
                let client = shared()
                    .await
                    .expect("control plane")
                    .client()
                    .await
                    .expect("client");
                let namespaces: Api<Namespace> = Api::all(client);
                let namespace = Namespace {
                    metadata: kube::api::ObjectMeta {
                        name: Some(name.clone()),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                namespaces
                    .create(&PostParams::default(), &namespace)
                    .await
                    .expect("lease namespace");
                name
            })
            .await
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `storefactory --db <tmp>/sf.db [--kubeconfig K] ARGS` with `stdin` as input.
    async fn run_with_input(&self, args: &[&str], stdin: &str) -> Output {
        let mut command = tokio::process::Command::new(BIN);
        command
            .current_dir(self.dir.path())
            .arg("--db")
            .arg(self.path("sf.db"))
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        // The tests decide everything; nothing leaks in from the developer's shell.
        for (key, _) in std::env::vars() {
            if key.starts_with("STOREFACTORY_") && key != "STOREFACTORY_K8S_BIN_DIR" {
                command.env_remove(key);
            }
        }
        command.env_remove("KUBECONFIG");
        match &self.kubeconfig {
            Some(path) => command.arg("--kubeconfig").arg(path),
            None => command.env("KUBECONFIG", self.path("no-kubeconfig")),
        };
        if self.kubeconfig.is_some() {
            command.env("STOREFACTORY_LEASE_NAMESPACE", self.lease_namespace().await);
        }
        let mut child = command.spawn().expect("the storefactory binary starts");
        let mut input = child.stdin.take().expect("stdin");
        input
            .write_all(stdin.as_bytes())
            .await
            .expect("write stdin");
        drop(input);
        let output = tokio::time::timeout(Duration::from_secs(240), child.wait_with_output())
            .await
            .expect("storefactory finishes within 4 minutes")
            .expect("storefactory runs");
        eprintln!(
            "$ storefactory {}\n-> {:?}\n{}{}",
            args.join(" "),
            output.status.code(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    async fn run(&self, args: &[&str]) -> Output {
        self.run_with_input(args, "").await
    }

    /// Runs a command that must succeed and print JSON.
    async fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let output = self.run(&all).await;
        assert_eq!(output.status.code(), Some(0), "{args:?} failed");
        serde_json::from_slice(&output.stdout).expect("JSON on stdout")
    }

    /// `store create --id ID --wait --timeout TIMEOUT`.
    async fn create_and_wait(&self, id: &str, timeout: &str) -> Output {
        self.run(&[
            "store",
            "create",
            "--id",
            id,
            "--wait",
            "--timeout",
            timeout,
        ])
        .await
    }

    /// `store delete ID --wait --timeout 2m`.
    async fn delete_and_wait(&self, id: &str) -> Output {
        self.run(&["store", "delete", id, "--wait", "--timeout", "2m"])
            .await
    }

    async fn add_admin(&self) {
        let output = self
            .run_with_input(
                &["user", "add", "admin", "--role", "admin"],
                "correct horse battery\n",
            )
            .await;
        assert_eq!(output.status.code(), Some(0));
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn store_in<'a>(list: &'a Value, id: &str) -> Option<&'a Value> {
    list.as_array()
        .expect("a JSON list")
        .iter()
        .find(|s| s["id"] == id)
}

async fn namespace_exists(client: &kube::Client, id: &str) -> bool {
    Api::<Namespace>::all(client.clone())
        .get_opt(&format!("store-{id}"))
        .await
        .expect("read namespace")
        .is_some()
}

/// A `Cli` on the shared control plane with an admin user, and a client of that cluster.
async fn admin_on_cluster() -> (kube::Client, Cli) {
    let cp = shared().await.expect("control plane");
    let client = cp.client().await.expect("client");
    let cli = Cli::with_kubeconfig(cp.kubeconfig_path());
    cli.add_admin().await;
    (client, cli)
}

#[tokio::test]
async fn create_wait_reaches_ready_then_list_shows_it_and_delete_wait_removes_it() {
    let (client, cli) = admin_on_cluster().await;
    std::fs::write(
        cli.path("products.txt"),
        "# name|price|description\nT-Shirt|5.99|Cotton t-shirt\nJeans|12.99|Denim | blue\n",
    )
    .unwrap();
    let id = StoreId::generate().to_string();

    let created = cli
        .json(&[
            "store",
            "create",
            "--id",
            &id,
            "--name",
            "CLI shop",
            "--products-file",
            "products.txt",
            "--storage",
            "3",
            "--wait",
            "--timeout",
            "3m",
        ])
        .await;
    assert_eq!(created["status"], "ready");
    assert_eq!(
        created["url"],
        format!("http://store-{id}.storefactory.local/")
    );
    assert_eq!(created["spec"]["products"].as_array().unwrap().len(), 2);
    assert_eq!(
        created["spec"]["products"][1]["description"],
        "Denim | blue"
    );
    assert_eq!(created["spec"]["wordpress"]["storage"], "3Gi");
    assert!(namespace_exists(&client, &id).await);

    let list = cli.json(&["store", "list"]).await;
    let store = store_in(&list, &id).expect("the new store is listed");
    assert_eq!(store["status"], "ready");
    assert_eq!(store["name"], "CLI shop");
    assert_eq!(store["owner"], "admin");

    let table = cli.run(&["store", "list"]).await;
    let line = stdout(&table)
        .lines()
        .find(|l| l.starts_with(&id))
        .map(str::to_owned)
        .expect("a table row for the store");
    assert!(
        line.contains("CLI shop") && line.contains("ready"),
        "{line}"
    );

    let got = cli.json(&["store", "get", &id]).await;
    let events: Vec<String> = got["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect();
    assert!(events.contains(&"step".to_owned()), "{events:?}");

    let credentials = cli.json(&["store", "credentials", &id]).await;
    assert_eq!(credentials["username"], "admin");
    assert!(credentials["password"].as_str().unwrap().len() >= 20);

    // Quota: admin's usage counts the store.
    let users = cli.json(&["user", "list"]).await;
    assert_eq!(users[0]["usage"]["stores"], 1);
    assert_eq!(users[0]["usage"]["storage_gib"], 4);

    let deleted = cli.delete_and_wait(&id).await;
    assert_eq!(deleted.status.code(), Some(0));
    assert!(stdout(&deleted).contains("deleted"));
    assert!(
        !namespace_exists(&client, &id).await,
        "namespace still exists"
    );
    let list = cli.json(&["store", "list"]).await;
    assert!(store_in(&list, &id).is_none(), "deleted store still listed");
    let all = cli.json(&["store", "list", "--all"]).await;
    assert_eq!(
        store_in(&all, &id).expect("kept for the audit trail")["status"],
        "deleted"
    );
}

#[tokio::test]
async fn create_without_wait_applies_objects_then_wait_and_wait_deleted_finish_the_work() {
    let (client, cli) = admin_on_cluster().await;
    let id = StoreId::generate().to_string();
    let password = "a fine admin password";
    std::fs::write(cli.path("admin-password"), format!("{password}\n")).unwrap();

    let created = cli
        .json(&[
            "store",
            "create",
            "--id",
            &id,
            "--admin-password-file",
            "admin-password",
        ])
        .await;
    assert_eq!(created["status"], "provisioning");
    assert!(namespace_exists(&client, &id).await, "objects not applied");

    let ready = cli.run(&["store", "wait", &id, "--timeout", "3m"]).await;
    assert_eq!(ready.status.code(), Some(0));
    assert!(stderr(&ready).contains("ready"), "no progress shown");
    // The chosen password reached the store's Secret although the CLI exited in between.
    let credentials = cli.json(&["store", "credentials", &id]).await;
    assert_eq!(credentials["password"], password);

    let deleting = cli.json(&["store", "delete", &id]).await;
    assert_eq!(deleting["status"], "deleting");
    let gone = cli
        .run(&["store", "wait", &id, "--deleted", "--timeout", "2m"])
        .await;
    assert_eq!(gone.status.code(), Some(0));
    assert!(!namespace_exists(&client, &id).await);

    // Everything the store had is gone; asking again says so.
    let again = cli.run(&["store", "delete", &id]).await;
    assert_eq!(again.status.code(), Some(3), "{}", stderr(&again));
}

// Regression: `store create --admin-password-file` sealed the password under a key of its
// own process, so when another process did the cluster work (a running server, or a later
// `store wait`) the password could not be opened and a generated one was used instead.
#[tokio::test]
async fn a_password_chosen_on_the_command_line_reaches_the_store_when_another_process_applies_it() {
    use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};

    let (client, cli) = admin_on_cluster().await;
    // Another process leads: `create` records the store and leaves the work to it.
    let leases: Api<Lease> = Api::namespaced(client.clone(), cli.lease_namespace().await);
    let held = Lease {
        metadata: kube::api::ObjectMeta {
            name: Some("storefactory-reconciler".to_owned()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("somebody-else".to_owned()),
            lease_duration_seconds: Some(3600),
            ..Default::default()
        }),
    };
    leases.create(&PostParams::default(), &held).await.unwrap();
    let id = StoreId::generate().to_string();
    let password = "chosen on the command line";
    std::fs::write(cli.path("admin-password"), password).unwrap();
    let created = cli
        .json(&[
            "store",
            "create",
            "--id",
            &id,
            "--admin-password-file",
            "admin-password",
        ])
        .await;
    assert_eq!(created["status"], "initialized", "{created}");
    assert!(
        !namespace_exists(&client, &id).await,
        "applied despite the leader"
    );

    // The leader goes away; a new process (as a server would) provisions the store.
    leases
        .delete("storefactory-reconciler", &DeleteParams::default())
        .await
        .unwrap();
    let ready = cli.run(&["store", "wait", &id, "--timeout", "3m"]).await;
    assert_eq!(ready.status.code(), Some(0), "{}", stderr(&ready));
    assert!(
        !stderr(&ready).contains("cannot be read"),
        "the chosen password could not be opened: {}",
        stderr(&ready)
    );
    let credentials = cli.json(&["store", "credentials", &id]).await;
    assert_eq!(credentials["password"], password);
    let deleted = cli.run(&["store", "delete", &id, "--wait"]).await;
    assert_eq!(deleted.status.code(), Some(0), "{}", stderr(&deleted));
}

// Regression: `store wait` (like `create/delete/retry --wait`) ran the reconciler over every
// store in the database, so next to a running server it worked on the server's stores too,
// and marked failed those of blueprints the command line does not know.
#[tokio::test]
async fn store_wait_leaves_the_other_stores_in_the_database_alone() {
    let (client, cli) = admin_on_cluster().await;
    let id = StoreId::generate().to_string();
    let created = cli.json(&["store", "create", "--id", &id]).await;
    assert_eq!(created["status"], "provisioning");

    // Another process's store, mid-provisioning, from a blueprint only that process has.
    let db = storefactory_sql::Database::open(cli.path("sf.db"))
        .await
        .expect("open the CLI's database");
    let theirs = StoreId::generate();
    let spec = StoreSpec::new(theirs.clone(), "admin", format!("{theirs}.shop.example"));
    db.insert_store(&StoreRecord::new(
        spec,
        "theirs",
        "a-blueprint-only-the-server-has",
    ))
    .await
    .expect("insert");
    db.set_status(&theirs, StoreStatus::Provisioning, None)
        .await
        .expect("provisioning");
    let events_before = db.events(&theirs, 0).await.expect("events");

    let ready = cli.run(&["store", "wait", &id, "--timeout", "3m"]).await;
    assert_eq!(ready.status.code(), Some(0), "{}", stderr(&ready));

    let after = db.get_store(&theirs).await.expect("read").expect("kept");
    assert_eq!(
        after.status,
        StoreStatus::Provisioning,
        "{:?}",
        after.reason
    );
    assert_eq!(db.events(&theirs, 0).await.expect("events"), events_before);
    assert!(!namespace_exists(&client, theirs.as_str()).await);

    let output = cli.delete_and_wait(&id).await;
    assert_eq!(output.status.code(), Some(0));
}

#[tokio::test]
async fn a_failing_store_exits_6_with_the_reason_and_a_stuck_one_exits_7() {
    let cp = shared().await.expect("control plane");
    let kubelet = cp.kubelet().expect("simulated kubelet");
    let cli = Cli::with_kubeconfig(cp.kubeconfig_path());
    cli.add_admin().await;

    let failing = StoreId::generate().to_string();
    let _pull = kubelet.inject(Fault::image_pull().namespace(format!("store-{failing}")));
    let output = cli.create_and_wait(&failing, "3m").await;
    assert_eq!(output.status.code(), Some(6));
    assert!(
        stderr(&output).contains("cannot be pulled"),
        "no reason given"
    );
    let got = cli.json(&["store", "get", &failing]).await;
    assert_eq!(got["status"], "failed");

    let stuck = StoreId::generate().to_string();
    let _never = kubelet.inject(Fault::never_ready().namespace(format!("store-{stuck}")));
    let output = cli.create_and_wait(&stuck, "4s").await;
    assert_eq!(output.status.code(), Some(7));
    assert!(
        stderr(&output).contains("timed out after 4s"),
        "{}",
        stderr(&output)
    );

    for id in [&failing, &stuck] {
        let output = cli.delete_and_wait(id).await;
        assert_eq!(output.status.code(), Some(0));
    }
}

#[tokio::test]
async fn doctor_passes_as_admin_and_checks_the_named_ingress_class() {
    let cp = shared().await.expect("control plane");
    let client = cp.client().await.expect("client");
    let cli = Cli::with_kubeconfig(cp.kubeconfig_path());

    // The testkit has a default StorageClass but no IngressClass: a warning, not an error.
    let report = cli.json(&["doctor"]).await;
    assert_eq!(report["ok"], true);
    assert_eq!(report["version"], "v1.20.2");
    assert!(report["missing_permissions"].as_array().unwrap().is_empty());
    let statuses = |report: &Value, name: &str| -> Vec<String> {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["name"] == name)
            .map(|c| c["status"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(statuses(&report, "storage class"), ["ok"]);
    assert_eq!(statuses(&report, "permissions"), ["ok"]);

    let class_name = format!("cli-doctor-{}", StoreId::generate());
    let class: IngressClass = serde_json::from_value(serde_json::json!({
        "metadata": {"name": class_name},
        "spec": {"controller": "example.com/ingress-controller"},
    }))
    .unwrap();
    let classes: Api<IngressClass> = Api::all(client.clone());
    classes
        .create(&PostParams::default(), &class)
        .await
        .unwrap();

    let named = cli.run(&["doctor", "--ingress-class", &class_name]).await;
    let missing = cli
        .run(&["doctor", "--ingress-class", "no-such-class"])
        .await;
    let _ = classes.delete(&class_name, &DeleteParams::default()).await;

    assert_eq!(named.status.code(), Some(0), "{}", stdout(&named));
    assert!(stdout(&named).contains(&format!("IngressClass {class_name} exists")));
    assert_eq!(missing.status.code(), Some(8));
    assert!(stdout(&missing).contains("IngressClass no-such-class does not exist"));
}

#[tokio::test]
async fn doctor_names_every_missing_permission_of_the_restricted_identity() {
    let cp = shared().await.expect("control plane");
    let cli = Cli::with_kubeconfig(cp.restricted_kubeconfig_path());
    let output = cli.run(&["doctor"]).await;
    assert_eq!(output.status.code(), Some(8));
    let text = stdout(&output);
    for line in [
        "missing permission: create namespaces (cluster-wide)",
        "missing permission: delete namespaces (cluster-wide)",
        "missing permission: watch pods (in all namespaces)",
        "missing permission: patch deployments.apps (in all namespaces)",
        "missing permission: create statefulsets.apps (in all namespaces)",
        "missing permission: delete jobs.batch (in all namespaces)",
        "missing permission: create ingresses.networking.k8s.io (in all namespaces)",
        "missing permission: get secrets (in all namespaces)",
        "missing permission: create secrets (in all namespaces)",
    ] {
        assert!(text.contains(line), "{line:?} not reported");
    }
    // Never asked for: no Secret is listed, watched, patched or deleted, and nothing but
    // namespaces is read by name.
    for line in [
        "missing permission: list secrets",
        "missing permission: watch secrets",
        "missing permission: patch secrets",
        "missing permission: delete secrets",
        "missing permission: get pods",
        "missing permission: get deployments.apps",
        "missing permission: delete deployments.apps",
    ] {
        assert!(!text.contains(line), "{line:?} reported: {text}");
    }
    for line in [
        "missing permission: list pods (in all namespaces)",
        "missing permission: get namespaces (cluster-wide)",
    ] {
        assert!(text.contains(line), "{line:?} not reported");
    }
    // One line per permission.
    let lines = text
        .lines()
        .filter(|l| l.contains("missing permission:"))
        .count();
    // The JSON report says the same, though the exit code is 8.
    let json = cli.run(&["doctor", "--output", "json"]).await;
    assert_eq!(json.status.code(), Some(8));
    let report: Value = serde_json::from_slice(&json.stdout).expect("JSON report");
    assert_eq!(report["ok"], false);
    assert_eq!(
        report["missing_permissions"].as_array().unwrap().len(),
        lines
    );
}

#[tokio::test]
async fn an_unreachable_cluster_exits_5_and_records_nothing() {
    let cli = Cli::offline();
    cli.add_admin().await;
    // A kubeconfig whose API server does not exist (nothing listens on port 1).
    std::fs::write(
        cli.path("kubeconfig"),
        "apiVersion: v1\nkind: Config\nclusters:\n- name: nowhere\n  cluster:\n    server: https://127.0.0.1:1\n    insecure-skip-tls-verify: true\ncontexts:\n- name: nowhere\n  context:\n    cluster: nowhere\n    user: nobody\nusers:\n- name: nobody\n  user:\n    token: x\ncurrent-context: nowhere\n",
    )
    .unwrap();
    let output = cli
        .run(&[
            "--kubeconfig",
            "kubeconfig",
            "store",
            "create",
            "--id",
            "nowhere",
        ])
        .await;
    assert_eq!(output.status.code(), Some(5));
    assert!(stderr(&output).contains("cannot reach the Kubernetes API server"));
    let list = cli.json(&["store", "list"]).await;
    assert!(list.as_array().unwrap().is_empty(), "a store was recorded");

    let doctor = cli.run(&["--kubeconfig", "kubeconfig", "doctor"]).await;
    assert_eq!(doctor.status.code(), Some(5));
}

#[tokio::test]
async fn store_list_shows_every_store_of_a_large_database_and_honours_limit_and_order() {
    let cli = Cli::offline();
    cli.add_admin().await;
    let quota = cli
        .run(&[
            "user",
            "set-quota",
            "admin",
            "--max-stores",
            "1500",
            "--max-storage",
            "10000",
        ])
        .await;
    assert_eq!(quota.status.code(), Some(0), "{}", stderr(&quota));
    let db = storefactory_sql::Database::open(cli.path("sf.db"))
        .await
        .expect("open the CLI's database");
    // More than two of the pages the command reads at a time.
    let ids: Vec<StoreId> = (0..1203)
        .map(|n| StoreId::new(format!("shop-{n:04}")).unwrap())
        .collect();
    for id in &ids {
        let spec = StoreSpec::new(id.clone(), "admin", format!("{id}.shop.example"));
        db.insert_store(&StoreRecord::new(spec, id.as_str(), "woocommerce"))
            .await
            .expect("insert");
    }
    let listed = |list: &Value| -> Vec<String> {
        list.as_array()
            .expect("a JSON array")
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = listed(&cli.json(&["store", "list"]).await);
    let expected: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
    assert_eq!(all, expected, "every store once, oldest first");

    let newest = listed(
        &cli.json(&["store", "list", "--newest-first", "--limit", "3"])
            .await,
    );
    assert_eq!(newest, ["shop-1202", "shop-1201", "shop-1200"]);
    let first = listed(&cli.json(&["store", "list", "--limit", "501"]).await);
    assert_eq!(first, expected[..501]);
    let zero = cli.run(&["store", "list", "--limit", "0"]).await;
    assert_eq!(zero.status.code(), Some(2), "{}", stderr(&zero));
}

#[tokio::test]
async fn users_are_managed_with_passwords_from_stdin_and_quotas_enforced() {
    let cli = Cli::offline();
    let added = cli
        .run_with_input(
            &[
                "user",
                "add",
                "alice",
                "--max-stores",
                "1",
                "--max-storage",
                "3",
            ],
            "alice's password\n",
        )
        .await;
    assert_eq!(added.status.code(), Some(0));
    let again = cli
        .run_with_input(&["user", "add", "alice"], "another password\n")
        .await;
    assert_eq!(again.status.code(), Some(4));
    let short = cli.run_with_input(&["user", "add", "bob"], "short\n").await;
    assert_eq!(short.status.code(), Some(2));
    let none = cli.run(&["user", "add", "carol"]).await;
    assert_eq!(none.status.code(), Some(2));
    assert!(stderr(&none).contains("no password on standard input"));

    let changed = cli
        .run_with_input(&["user", "passwd", "alice"], "a new password\n")
        .await;
    assert_eq!(changed.status.code(), Some(0));
    let unknown = cli
        .run_with_input(&["user", "passwd", "dave"], "a new password\n")
        .await;
    assert_eq!(unknown.status.code(), Some(3));

    let user = cli
        .json(&["user", "set-quota", "alice", "--max-stores", "4"])
        .await;
    assert_eq!(user["quota"]["max_stores"], 4);
    assert_eq!(user["quota"]["max_storage_gib"], 3);
    assert!(user.get("password_hash").is_none());
    let users = cli.json(&["user", "list"]).await;
    assert_eq!(users.as_array().unwrap().len(), 1);

    // Quota is checked before the cluster is touched: 2 + 1 GiB of volumes fit into 3 GiB,
    // 3 + 1 do not. (No cluster here, so the fitting store stops at exit 5.)
    let too_big = cli
        .run(&["store", "create", "--owner", "alice", "--storage", "3"])
        .await;
    assert_eq!(too_big.status.code(), Some(4), "{}", stderr(&too_big));
    assert!(stderr(&too_big).contains("quota"));

    let backup = cli.run(&["db", "backup", "backup.db"]).await;
    assert_eq!(backup.status.code(), Some(0));
    assert!(cli.path("backup.db").exists());
    let copy = Cli::offline();
    std::fs::copy(cli.path("backup.db"), copy.path("sf.db")).unwrap();
    let users = copy.json(&["user", "list"]).await;
    assert_eq!(users[0]["username"], "alice");

    // `-` streams the copy, and only the copy, to standard output.
    let streamed = cli.run(&["db", "backup", "-"]).await;
    assert_eq!(streamed.status.code(), Some(0), "{}", stderr(&streamed));
    let from_stdout = Cli::offline();
    std::fs::write(from_stdout.path("sf.db"), &streamed.stdout).unwrap();
    let users = from_stdout.json(&["user", "list"]).await;
    assert_eq!(users[0]["username"], "alice");
    assert!(!cli.path("-").exists());
}

#[tokio::test]
async fn blueprint_render_prints_placeholders_never_real_secrets() {
    let cli = Cli::offline();
    let manifests = cli.json(&["blueprint", "render", "--id", "demo"]).await;
    let manifests = manifests.as_array().unwrap();
    assert!(manifests.iter().any(|m| m["kind"] == "Ingress"));
    let secrets: Vec<&Value> = manifests.iter().filter(|m| m["kind"] == "Secret").collect();
    assert_eq!(secrets.len(), 2);
    for secret in &secrets {
        assert!(secret.get("data").is_none());
        assert!(
            secret["stringData"]["password"]
                .as_str()
                .unwrap()
                .starts_with("REPLACE_ME_")
        );
    }
    let generated = cli
        .json(&["blueprint", "render", "--id", "demo", "--generate-secrets"])
        .await;
    let secret = generated
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["kind"] == "Secret")
        .unwrap();
    assert!(secret["data"]["password"].as_str().is_some());

    let yaml = cli.run(&["blueprint", "render", "--id", "demo"]).await;
    assert_eq!(yaml.status.code(), Some(0));
    assert!(stdout(&yaml).starts_with("---\napiVersion: v1\nkind: Namespace\n"));
    let unknown = cli
        .run(&["blueprint", "render", "--blueprint", "nope"])
        .await;
    assert_eq!(unknown.status.code(), Some(3));
}

/// Starts `storefactory serve --listen 127.0.0.1:0` and returns the child and its address,
/// read from the log line that announces it.
async fn start_server(cli: &Cli, extra: &[&str]) -> (tokio::process::Child, String) {
    let (child, addr, _) = start_server_logged(cli, extra).await;
    (child, addr)
}

/// The log lines a server wrote so far.
type Log = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// [`start_server`], also keeping every line of the server's log.
async fn start_server_logged(cli: &Cli, extra: &[&str]) -> (tokio::process::Child, String, Log) {
    use tokio::io::AsyncBufReadExt;
    let mut command = tokio::process::Command::new(BIN);
    command
        .current_dir(cli.dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(cli.path("sf.db"))
        .args(extra)
        .env("RUST_LOG", "info")
        .env("STOREFACTORY_ADMIN_PASSWORD", "the first admin password")
        .env(
            "STOREFACTORY_TOKEN_KEY",
            "a token key shared by the servers of one test",
        )
        .env("STOREFACTORY_LEASE_DURATION", "4")
        .env_remove("KUBECONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    if let Some(path) = &cli.kubeconfig {
        command.arg("--kubeconfig").arg(path);
        command.env("STOREFACTORY_LEASE_NAMESPACE", cli.lease_namespace().await);
    } else {
        command.env("KUBECONFIG", cli.path("no-kubeconfig"));
    }
    let mut child = command.spawn().expect("serve starts");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("read log") {
            eprintln!("serve: {line}");
            if let Some(addr) = line.split("addr=").nth(1) {
                return addr.trim().to_owned();
            }
        }
        panic!("serve exited without listening");
    })
    .await
    .expect("serve listens within a minute");
    // Keep draining the log so the server never blocks on a full pipe.
    let log = Log::default();
    let kept = log.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            kept.lock().unwrap_or_else(|p| p.into_inner()).push(line);
        }
    });
    (child, addr, log)
}

/// `GET path` over a plain TCP connection: status code and body.
async fn get(addr: &str, path: &str) -> (u16, String) {
    use tokio::io::AsyncReadExt;
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("an HTTP status line");
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

async fn stop(mut child: tokio::process::Child) -> Option<i32> {
    let pid = child.id().expect("running").to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("serve stops on SIGTERM")
        .unwrap()
        .code()
}

#[tokio::test]
async fn serve_runs_the_api_on_the_cluster_and_stops_on_sigterm() {
    let cp = shared().await.expect("control plane");
    let cli = Cli::with_kubeconfig(cp.kubeconfig_path());
    let (child, addr) = start_server(&cli, &["--context", "storefactory-testkit"]).await;
    let (status, body) = get(&addr, "/ready").await;
    assert_eq!(status, 200, "{body}");
    // Anonymous callers learn that it is ready, not which Kubernetes it runs on.
    assert!(!body.contains("v1.20.2"), "{body}");
    assert_eq!(stop(child).await, Some(0));
    // The first start created the admin user in the database the CLI shares.
    let users = cli.json(&["user", "list"]).await;
    assert_eq!(users[0]["username"], "admin");
}

#[tokio::test]
async fn serve_starts_without_a_cluster_and_says_so_on_ready() {
    let cli = Cli::offline();
    let (child, addr) = start_server(&cli, &[]).await;
    let (status, body) = get(&addr, "/ready").await;
    assert_ne!(status, 200, "{body}");
    let ready: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(ready["cluster"]["ok"], false, "{body}");
    assert_eq!(stop(child).await, Some(0));
}

// Attack: an account is compromised while its tokens are in use; the operator disables it
// from the command line, next to the running server.
#[tokio::test]
async fn user_disable_locks_a_user_out_of_a_running_server_at_once() {
    let cli = Cli::offline();
    let (child, addr) = start_server(&cli, &[]).await;
    let added = cli
        .run_with_input(&["user", "add", "bob"], "bobs long password\n")
        .await;
    assert_eq!(added.status.code(), Some(0));
    let credentials = serde_json::json!({"username": "bob", "password": "bobs long password"});
    let (status, body) = call(&addr, "POST", "/api/auth/login", "", &credentials).await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    let (status, _) = call(&addr, "GET", "/api/users/me", &token, &Value::Null).await;
    assert_eq!(status, 200);

    let disabled = cli.json(&["user", "disable", "bob"]).await;
    assert_eq!(disabled["disabled"], true);
    let (status, body) = call(&addr, "GET", "/api/users/me", &token, &Value::Null).await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = call(&addr, "POST", "/api/auth/login", "", &credentials).await;
    assert_eq!(status, 403);

    assert_eq!(
        cli.json(&["user", "enable", "bob"]).await["disabled"],
        false
    );
    let (status, _) = call(&addr, "POST", "/api/auth/login", "", &credentials).await;
    assert_eq!(status, 200);
    let missing = cli.run(&["user", "disable", "nobody"]).await;
    assert_eq!(missing.status.code(), Some(3));
    assert_eq!(stop(child).await, Some(0));
}

#[tokio::test]
async fn serve_refuses_a_trusted_proxy_that_is_not_a_network() {
    let cli = Cli::offline();
    let output = cli
        .run(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--trusted-proxy",
            "10.0.0.0/99",
        ])
        .await;
    assert_ne!(output.status.code(), Some(0));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("10.0.0.0/99"), "{said}");
}

#[tokio::test]
async fn serve_refuses_to_start_with_a_backup_bucket_it_cannot_reach_and_never_shows_the_secret() {
    let cli = Cli::offline();
    let credentials = cli.path("s3");
    std::fs::write(
        &credentials,
        "AWS_ACCESS_KEY_ID=minio\nAWS_SECRET_ACCESS_KEY=very-secret\n",
    )
    .unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let endpoint = format!("http://{closed}");
    let output = cli
        .run(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--backup-s3-endpoint",
            &endpoint,
            "--backup-s3-bucket",
            "store-backups",
            "--backup-s3-credentials-file",
            credentials.to_str().unwrap(),
        ])
        .await;
    assert_ne!(output.status.code(), Some(0));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains(&format!(
            "backup bucket store-backups at {endpoint} is not usable"
        )) && said.contains("cannot connect"),
        "{said}"
    );
    assert!(!said.contains("very-secret"), "{said}");
}

// Attack: a username carrying a newline and a made-up log record, sent to the login
// endpoint, whose failures are logged.
#[tokio::test]
async fn a_username_cannot_forge_a_line_of_the_server_log() {
    let cli = Cli::offline();
    let (child, addr, log) = start_server_logged(&cli, &[]).await;
    let forged =
        "mallory\n2026-01-01T00:00:00.000000Z  INFO forged: login succeeded username=admin";
    let (status, _) = call(
        &addr,
        "POST",
        "/api/auth/login",
        "",
        &serde_json::json!({"username": forged, "password": "wrong password"}),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(stop(child).await, Some(0));
    let log = log.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let failed: Vec<&String> = log.iter().filter(|l| l.contains("login failed")).collect();
    assert_eq!(failed.len(), 1, "{log:#?}");
    assert!(
        failed[0].contains("mallory\\n2026"),
        "escaped: {}",
        failed[0]
    );
    assert!(
        !log.iter()
            .any(|line| line.starts_with("2026-01-01T00:00:00")),
        "a forged line: {log:#?}"
    );
}

/// `METHOD path` with a JSON body and a bearer token over a plain TCP connection: status
/// code and body.
async fn call(addr: &str, method: &str, path: &str, token: &str, body: &Value) -> (u16, Value) {
    use tokio::io::AsyncReadExt;
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

async fn login(addr: &str) -> String {
    let (status, body) = call(
        addr,
        "POST",
        "/api/auth/login",
        "",
        &serde_json::json!({"username": "admin", "password": "the first admin password"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// Polls the store's record in the shared database until it has `status`.
async fn wait_for_status(cli: &Cli, id: &str, status: &str, within: Duration) -> Value {
    let started = std::time::Instant::now();
    loop {
        let store = cli.json(&["store", "get", id]).await;
        if store["status"] == status {
            return store;
        }
        assert!(
            started.elapsed() < within,
            "store {id} not {status} within {within:?}: {store}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn a_killed_leader_is_replaced_by_another_server_and_the_stores_converge() {
    let cp = shared().await.expect("control plane");
    let cli = Cli::with_kubeconfig(cp.kubeconfig_path());
    let id = StoreId::generate();
    // Pods of the store take a while to start, so the leader is killed mid-provisioning.
    let _slow = cp
        .kubelet()
        .unwrap()
        .inject(Fault::slow_start(Duration::from_secs(6)).namespace(id.namespace()));
    let (leader, _) = start_server(&cli, &["--context", "storefactory-testkit"]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (follower, addr) = start_server(&cli, &["--context", "storefactory-testkit"]).await;
    // Recorded by another process (the command line, without waiting): the leader learns
    // of it from the database's feed.
    let created = cli
        .run(&["store", "create", "--owner", "admin", "--id", id.as_str()])
        .await;
    assert_eq!(created.status.code(), Some(0), "{}", stderr(&created));
    let id = id.to_string();
    let (status, _) = get(&addr, "/health").await;
    assert_eq!(status, 200);
    wait_for_status(&cli, &id, "provisioning", Duration::from_secs(30)).await;
    let mut leader = leader;
    leader.kill().await.unwrap();
    let started = std::time::Instant::now();
    wait_for_status(&cli, &id, "ready", Duration::from_secs(60)).await;
    eprintln!("ready {:?} after the leader was killed", started.elapsed());
    let events = cli.json(&["store", "get", &id]).await;
    assert_eq!(events["status"], "ready");
    let credentials = cli.json(&["store", "credentials", &id]).await;
    assert!(
        credentials["password"]
            .as_str()
            .is_some_and(|p| p.len() >= 12)
    );
    let deleted = cli.run(&["store", "delete", &id, "--wait"]).await;
    assert_eq!(deleted.status.code(), Some(0), "{}", stderr(&deleted));
    assert_eq!(stop(follower).await, Some(0));
}

#[tokio::test]
async fn the_command_line_follows_a_running_leader_and_one_set_of_passwords_results() {
    let cp = shared().await.expect("control plane");
    let cli = Cli::with_kubeconfig(cp.kubeconfig_path());
    let (server, _) = start_server(&cli, &["--context", "storefactory-testkit"]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let id = StoreId::generate();
    let created = cli
        .run(&[
            "store",
            "create",
            "--owner",
            "admin",
            "--id",
            id.as_str(),
            "--wait",
            "--timeout",
            "90s",
        ])
        .await;
    assert_eq!(created.status.code(), Some(0), "{}", stderr(&created));
    let client = cp.client().await.unwrap();
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), &id.namespace());
    let mysql = secrets.get("mysql").await.unwrap();
    // Written once: created, never patched by a second writer.
    let writers: Vec<_> = mysql
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .map(|f| f.operation.clone().unwrap_or_default())
        .collect();
    assert_eq!(writers, ["Update"], "{writers:?}");
    let credentials = cli.json(&["store", "credentials", id.as_str()]).await;
    let admin = secrets.get("wordpress-admin").await.unwrap();
    assert_eq!(
        admin.data.unwrap()["password"].0,
        credentials["password"].as_str().unwrap().as_bytes()
    );
    let deleted = cli.run(&["store", "delete", id.as_str(), "--wait"]).await;
    assert_eq!(deleted.status.code(), Some(0), "{}", stderr(&deleted));
    assert_eq!(stop(server).await, Some(0));
}

#[tokio::test]
async fn a_chosen_password_survives_a_server_restart_between_the_answer_and_the_first_apply() {
    use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
    let cp = shared().await.expect("control plane");
    let cli = Cli::with_kubeconfig(cp.kubeconfig_path());
    let client = cp.client().await.unwrap();
    // Another process holds the Lease (and never renews it while this test needs it): the
    // server answers, but does not reconcile.
    let leases: Api<Lease> = Api::namespaced(client.clone(), cli.lease_namespace().await);
    let held = Lease {
        metadata: kube::api::ObjectMeta {
            name: Some("storefactory-reconciler".to_owned()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("somebody-else".to_owned()),
            lease_duration_seconds: Some(3600),
            ..Default::default()
        }),
    };
    leases.create(&PostParams::default(), &held).await.unwrap();
    let (server, addr) = start_server(&cli, &["--context", "storefactory-testkit"]).await;
    let token = login(&addr).await;
    let chosen = "my own admin password";
    let (status, body) = call(
        &addr,
        "POST",
        "/api/stores",
        &token,
        &serde_json::json!({"admin_password": chosen}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(stop(server).await, Some(0));
    // Not applied, and not in the database in plain text.
    let record = cli.json(&["store", "get", &id]).await;
    assert_eq!(record["status"], "initialized", "{record}");
    let db = std::fs::read(cli.path("sf.db")).unwrap();
    let wal = std::fs::read(cli.path("sf.db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(
            !bytes.windows(chosen.len()).any(|w| w == chosen.as_bytes()),
            "the chosen password is in the database in plain text"
        );
    }
    // The other holder goes away; a restarted server leads and provisions the store.
    leases
        .delete("storefactory-reconciler", &DeleteParams::default())
        .await
        .unwrap();
    let (server, _) = start_server(&cli, &["--context", "storefactory-testkit"]).await;
    wait_for_status(&cli, &id, "ready", Duration::from_secs(90)).await;
    let credentials = cli.json(&["store", "credentials", &id]).await;
    assert_eq!(credentials["password"], chosen);
    let deleted = cli.run(&["store", "delete", &id, "--wait"]).await;
    assert_eq!(deleted.status.code(), Some(0), "{}", stderr(&deleted));
    assert_eq!(stop(server).await, Some(0));
}

/// `webhook add --owner OWNER URL EXTRA... --output json`, which must succeed.
async fn add_webhook(cli: &Cli, owner: &str, url: &str, extra: &[&str]) -> Value {
    let mut args = vec!["webhook", "add", "--owner", owner, url];
    args.extend_from_slice(extra);
    cli.json(&args).await
}

#[tokio::test]
async fn webhooks_follow_the_api_rules_and_show_the_secret_once() {
    let cli = Cli::offline();
    cli.add_admin().await;
    let alice = cli
        .run_with_input(&["user", "add", "alice"], "alice's password\n")
        .await;
    assert_eq!(alice.status.code(), Some(0));

    // The API's rules and messages, and the documented exit codes.
    for (url, extra, code, message) in [
        (
            "http://hooks.example.com/in",
            &[][..],
            2,
            "url: must use https",
        ),
        (
            "https://169.254.169.254/latest/meta-data",
            &[][..],
            2,
            "url: must not point at a private, loopback, link-local or internal address",
        ),
        (
            "https://kubernetes.default.svc/",
            &[][..],
            2,
            "url: must not name a local or cluster-internal host",
        ),
        (
            "https://user:pw@hooks.example.com/",
            &[][..],
            2,
            "url: must not contain credentials",
        ),
        (
            "https://hooks.example.com/in",
            &["--all-stores"][..],
            2,
            "only admins may register a webhook for every user's stores",
        ),
        (
            "https://hooks.example.com/in",
            &["--events", "sometimes"][..],
            2,
            "events: must be \"all\" or \"status\"",
        ),
    ] {
        let mut args = vec!["webhook", "add", "--owner", "alice", url];
        args.extend_from_slice(extra);
        let refused = cli.run(&args).await;
        assert_eq!(refused.status.code(), Some(code), "{args:?}");
        assert!(stderr(&refused).contains(message), "{}", stderr(&refused));
    }
    let nobody = cli
        .run(&[
            "webhook",
            "add",
            "--owner",
            "nobody",
            "https://hooks.example.com/in",
        ])
        .await;
    assert_eq!(nobody.status.code(), Some(3), "{}", stderr(&nobody));
    assert!(
        cli.json(&["webhook", "list"])
            .await
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Registered: the secret is printed this once, in JSON as the API answers it...
    let created = add_webhook(
        &cli,
        "alice",
        "https://hooks.example.com/in?token=abc",
        &["--events", "status"],
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(id.starts_with("wh_"), "{created}");
    assert!(
        secret.starts_with("whsec_") && secret.len() > 40,
        "{created}"
    );
    assert_eq!(created["url"], "https://hooks.example.com/in?token=abc");
    assert_eq!(created["events"], "status");
    assert_eq!(created["owner"], "alice");
    assert_eq!(created["all_stores"], false);
    // ...and in the table, with a word on keeping it.
    let table = cli
        .run(&[
            "webhook",
            "add",
            "--owner",
            "admin",
            "--all-stores",
            "https://ops.example.com/in",
        ])
        .await;
    assert_eq!(table.status.code(), Some(0), "{}", stderr(&table));
    let text = stdout(&table);
    assert!(
        text.contains("secret:") && text.contains("whsec_"),
        "{text}"
    );
    assert!(text.contains("shown this once"), "{text}");

    // Lists never show a secret, in any format.
    let listed = cli.json(&["webhook", "list"]).await;
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    let mine = cli.json(&["webhook", "list", "--owner", "alice"]).await;
    assert_eq!(mine.as_array().unwrap().len(), 1);
    assert_eq!(mine[0]["id"], id.as_str());
    for format in ["table", "json", "yaml"] {
        let out = cli.run(&["webhook", "list", "--output", format]).await;
        assert_eq!(out.status.code(), Some(0));
        let text = stdout(&out);
        assert!(text.contains(&id), "{text}");
        assert!(
            !text.contains("whsec_") && !text.contains("secret"),
            "{text}"
        );
    }

    // The limit per user, as `serve --max-webhooks-per-user`.
    let over = cli
        .run(&[
            "webhook",
            "add",
            "--owner",
            "alice",
            "https://hooks.example.com/second",
            "--max-webhooks-per-user",
            "1",
        ])
        .await;
    assert_eq!(over.status.code(), Some(4), "{}", stderr(&over));
    assert!(
        stderr(&over).contains("alice already has 1 webhooks"),
        "{}",
        stderr(&over)
    );

    // The delivery log: empty until events come, the API's bounds, unknown ids not found.
    let log = cli.json(&["webhook", "deliveries", &id]).await;
    assert_eq!(log, serde_json::json!([]));
    for limit in ["0", "201"] {
        let bad = cli
            .run(&["webhook", "deliveries", &id, "--limit", limit])
            .await;
        assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
        assert!(stderr(&bad).contains("limit: must be between 1 and 200"));
    }
    let unknown = cli.run(&["webhook", "deliveries", "wh_nothing"]).await;
    assert_eq!(unknown.status.code(), Some(3), "{}", stderr(&unknown));

    // Removed once; the second time there is nothing to remove.
    let removed = cli.run(&["webhook", "remove", &id]).await;
    assert_eq!(removed.status.code(), Some(0), "{}", stderr(&removed));
    let again = cli.run(&["webhook", "remove", &id]).await;
    assert_eq!(again.status.code(), Some(3), "{}", stderr(&again));
    assert!(stderr(&again).contains("not found"));
    let left = cli.json(&["webhook", "list"]).await;
    assert_eq!(left.as_array().unwrap().len(), 1);
    assert_eq!(left[0]["owner"], "admin");
}

/// One HTTP request received on `listener`, answered 200: its head and body.
async fn receive_one(listener: &tokio::net::TcpListener) -> (String, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let (mut stream, _) = listener.accept().await.expect("accept");
    let mut data = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let n = stream.read(&mut buffer).await.expect("read request");
        assert!(
            n > 0,
            "the connection closed before the request was complete"
        );
        data.extend_from_slice(&buffer[..n]);
        let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if data.len() >= end + 4 + length {
            let body = data[end + 4..end + 4 + length].to_vec();
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .await
                .expect("answer");
            return (head, body);
        }
    }
}

#[tokio::test]
async fn a_webhook_added_on_the_command_line_is_delivered_and_signed_by_a_running_server() {
    use storefactory_core::store::{EventKind, Timestamp};
    let cli = Cli::offline();
    cli.add_admin().await;
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", receiver.local_addr().unwrap());
    // The server's key, given to the command as `serve` gets it (start_server sets the
    // same variable).
    let key_file = cli.path("token-key");
    std::fs::write(&key_file, "a token key shared by the servers of one test\n").unwrap();
    let db = storefactory_sql::Database::open(cli.path("sf.db"))
        .await
        .unwrap();
    // Place the dispatcher's cursor at the feed's head, as a server that ran before would
    // have; events from now on are delivered.
    db.fan_out_webhook_events(1, 1).await.unwrap();
    let (server, _) = start_server(&cli, &["--webhook-allow-private"]).await;

    // Without the server's key the secret would never open there: refused, not stored.
    let wrong = cli
        .run(&[
            "webhook",
            "add",
            "--owner",
            "admin",
            &url,
            "--webhook-allow-private",
        ])
        .await;
    assert_eq!(wrong.status.code(), Some(2), "{}", stderr(&wrong));
    assert!(
        stderr(&wrong).contains("not the key the server seals secrets with"),
        "{}",
        stderr(&wrong)
    );
    assert!(
        cli.json(&["webhook", "list"])
            .await
            .as_array()
            .unwrap()
            .is_empty()
    );
    let created = add_webhook(
        &cli,
        "admin",
        &url,
        &[
            "--webhook-allow-private",
            "--token-key-file",
            key_file.to_str().unwrap(),
        ],
    )
    .await;
    let secret = created["secret"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    let store = StoreId::new("hooked").unwrap();
    let spec = StoreSpec::new(store.clone(), "admin", "hooked.shop.example");
    db.insert_store(&StoreRecord::new(spec, "Shop", "woocommerce"))
        .await
        .unwrap();
    db.append_event(
        &store,
        Timestamp::now(),
        &EventKind::Status {
            status: StoreStatus::Provisioning,
            reason: None,
        },
    )
    .await
    .unwrap();

    let (head, body) = tokio::time::timeout(Duration::from_secs(20), receive_one(&receiver))
        .await
        .expect("the server delivers within 20 s");
    let signature = head
        .lines()
        .find_map(|l| l.strip_prefix("storefactory-signature:"))
        .expect("a signature header")
        .trim()
        .to_owned();
    let now = u64::try_from(Timestamp::now().0 / 1000).unwrap();
    assert!(
        storefactory_http::webhooks::signature::verify(
            secret.as_bytes(),
            &signature,
            &body,
            now,
            300
        ),
        "the secret the command printed verifies the server's signature"
    );
    let event: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(event["store_id"], "hooked");
    assert_eq!(event["data"]["status"], "provisioning");

    // The command line reads the log the server wrote.
    let mut delivered = Value::Null;
    for _ in 0..100 {
        delivered = cli.json(&["webhook", "deliveries", &id]).await;
        if delivered[0]["state"] == "delivered" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(delivered[0]["state"], "delivered", "{delivered}");
    assert_eq!(delivered[0]["last_status"], 200);
    assert_eq!(delivered[0]["event"], "status");
    let table = stdout(&cli.run(&["webhook", "deliveries", &id]).await);
    assert!(
        table.contains("delivered") && table.contains("hooked"),
        "{table}"
    );
    assert_eq!(stop(server).await, Some(0));
}

/// The rule hosts of a store's Ingress on the cluster.
async fn ingress_hosts(client: &kube::Client, id: &str) -> Vec<String> {
    let api: Api<k8s_openapi::api::networking::v1::Ingress> =
        Api::namespaced(client.clone(), &format!("store-{id}"));
    let ingress = api.get("wordpress").await.expect("ingress");
    ingress
        .spec
        .and_then(|s| s.rules)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| r.host)
        .collect()
}

#[tokio::test]
async fn store_domain_add_list_remove_update_the_ingress_and_refuse_another_stores_domain() {
    let (client, cli) = admin_on_cluster().await;
    let (a, b) = (
        StoreId::generate().to_string(),
        StoreId::generate().to_string(),
    );
    for id in [&a, &b] {
        assert_eq!(cli.create_and_wait(id, "3m").await.status.code(), Some(0));
    }
    let host_a = format!("store-{a}.storefactory.local");

    let added = cli
        .json(&["store", "domain", "add", &a, "Shop.Example.com."])
        .await;
    assert_eq!(added["domains"], serde_json::json!(["shop.example.com"]));
    assert_eq!(added["host"], host_a.as_str());
    // Applied by the command itself: no server runs.
    assert_eq!(
        ingress_hosts(&client, &a).await,
        [host_a.clone(), "shop.example.com".to_owned()]
    );
    let shown = cli.run(&["store", "get", &a]).await;
    assert!(
        stdout(&shown).contains("shop.example.com"),
        "{}",
        stdout(&shown)
    );
    let listed = cli.run(&["store", "domain", "list", &a]).await;
    assert_eq!(listed.status.code(), Some(0));
    assert!(
        stdout(&listed).contains("shop.example.com"),
        "{}",
        stdout(&listed)
    );

    // Another store's domain or host: exit 4, nothing changes; a bad name: exit 2.
    for domain in ["shop.example.com", host_a.as_str()] {
        let refused = cli.run(&["store", "domain", "add", &b, domain]).await;
        assert_eq!(refused.status.code(), Some(4), "{domain}");
        assert!(
            stderr(&refused).contains("already used by another store"),
            "{}",
            stderr(&refused)
        );
    }
    let refused = cli
        .run(&["store", "domain", "add", &b, "*.example.com"])
        .await;
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        stderr(&refused).contains("wildcards"),
        "{}",
        stderr(&refused)
    );
    let shown = cli.json(&["store", "domain", "list", &b]).await;
    assert_eq!(shown["domains"], serde_json::json!([]));
    assert_eq!(
        ingress_hosts(&client, &b).await,
        [format!("store-{b}.storefactory.local")]
    );

    let removed = cli
        .json(&["store", "domain", "remove", &a, "shop.example.com"])
        .await;
    assert_eq!(removed["domains"], serde_json::json!([]));
    assert_eq!(ingress_hosts(&client, &a).await, [host_a]);
    let missing = cli
        .run(&["store", "domain", "remove", &a, "shop.example.com"])
        .await;
    assert_eq!(missing.status.code(), Some(3));
    let status = cli.json(&["store", "get", &a]).await;
    assert_eq!(status["status"], "ready", "the store stayed ready");

    for id in [&a, &b] {
        assert_eq!(cli.delete_and_wait(id).await.status.code(), Some(0));
    }
}

#[tokio::test]
async fn store_change_grows_the_volume_reseeds_and_refuses_a_smaller_size() {
    let (client, cli) = admin_on_cluster().await;
    let id = StoreId::generate().to_string();
    let created = cli.create_and_wait(&id, "3m").await;
    assert_eq!(created.status.code(), Some(0));
    std::fs::write(cli.path("products.txt"), "Mug|3|Ceramic\nCap|4.50|Wool\n").unwrap();

    let changed = cli
        .json(&[
            "store",
            "change",
            &id,
            "--storage",
            "4",
            "--products-file",
            "products.txt",
            "--title",
            "Changed by the CLI",
            "--currency",
            "eur",
            "--wait",
            "--timeout",
            "3m",
        ])
        .await;
    assert_eq!(changed["status"], "ready");
    assert_eq!(changed["spec"]["wordpress"]["storage"], "4Gi");
    assert_eq!(changed["spec"]["site_title"], "Changed by the CLI");
    assert_eq!(changed["spec"]["currency"], "EUR");
    assert_eq!(changed["spec"]["products"][1]["name"], "Cap");
    let claim = Api::<k8s_openapi::api::core::v1::PersistentVolumeClaim>::namespaced(
        client.clone(),
        &format!("store-{id}"),
    )
    .get("wordpress")
    .await
    .unwrap();
    let capacity = claim.status.unwrap().capacity.unwrap();
    assert_eq!(capacity["storage"].0, "4Gi");

    // A smaller volume is refused, saying why, and nothing changes.
    let smaller = cli.run(&["store", "change", &id, "--storage", "2"]).await;
    assert_ne!(smaller.status.code(), Some(0));
    assert!(
        stderr(&smaller).contains("below the current size"),
        "{}",
        stderr(&smaller)
    );
    let got = cli.json(&["store", "get", &id]).await;
    assert_eq!(got["status"], "ready");
    assert_eq!(got["spec"]["wordpress"]["storage"], "4Gi");
    // Resources that are not cpu=REQUEST/LIMIT,memory=REQUEST/LIMIT are a usage error.
    let bad = cli
        .run(&["store", "change", &id, "--wordpress-resources", "cpu=1"])
        .await;
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));

    assert_eq!(cli.delete_and_wait(&id).await.status.code(), Some(0));
}

/// Backups from the command line: taken (the simulated kubelet runs no container, so the
/// Job cannot hand anything over; the archive's arrival is what the server records), listed,
/// a missing backup refused, and a clone made from a completed backup, restored and ready.
#[tokio::test]
async fn backups_restores_and_clones_from_the_command_line() {
    let (client, cli) = admin_on_cluster().await;
    let endpoint = "http://storefactory.storefactory.svc:8080@storefactory";
    let id = StoreId::generate().to_string();
    assert_eq!(cli.create_and_wait(&id, "2m").await.status.code(), Some(0));

    let taken = cli
        .json(&["backup", "create", &id, "--backup-endpoint", endpoint])
        .await;
    assert_eq!(taken["status"], "pending");
    let listed = cli.json(&["backup", "list", &id]).await;
    assert_eq!(listed[0]["id"], taken["id"]);
    let table = cli.run(&["backup", "list", &id]).await;
    assert!(stdout(&table).contains("SIZE"), "{}", stdout(&table));

    // A backup that does not exist: exit 3, nothing changes.
    let missing = cli
        .run(&[
            "store",
            "restore",
            &id,
            "--backup",
            "nosuchbackup",
            "--backup-endpoint",
            endpoint,
        ])
        .await;
    assert_eq!(missing.status.code(), Some(3), "{}", stderr(&missing));
    assert!(stderr(&missing).contains("backup nosuchbackup not found"));
    // Nothing to clone from yet (the backup is pending): refused, nothing created.
    let clone = StoreId::generate().to_string();
    let refused = cli
        .run(&[
            "store",
            "clone",
            &id,
            "--id",
            &clone,
            "--backup-endpoint",
            endpoint,
        ])
        .await;
    assert_ne!(refused.status.code(), Some(0));
    assert!(
        stderr(&refused).contains("no completed backup"),
        "{}",
        stderr(&refused)
    );
    assert!(!namespace_exists(&client, &clone).await);

    // As the server records an archive that arrived whole.
    {
        use storefactory_core::backup::{BackupId, BackupOutcome, BackupRepository};
        let db = storefactory_sql::Database::open(cli.path("sf.db"))
            .await
            .unwrap();
        let backup = BackupId::new(taken["id"].as_str().unwrap()).unwrap();
        db.settle_backup(
            &backup,
            BackupOutcome::Completed {
                size_bytes: 100,
                sha256: "0".repeat(64),
            },
        )
        .await
        .unwrap();
    }
    let cloned = cli
        .json(&[
            "store",
            "clone",
            &id,
            "--id",
            &clone,
            "--name",
            "Staging",
            "--backup-endpoint",
            endpoint,
            "--wait",
            "--timeout",
            "2m",
        ])
        .await;
    assert_eq!(cloned["status"], "ready");
    assert_eq!(cloned["name"], "Staging");
    let events = cli.json(&["store", "get", &clone]).await;
    assert!(
        events.to_string().contains("restored"),
        "the clone's history tells the restore: {events}"
    );

    let deleted = cli
        .run(&["backup", "delete", &id, taken["id"].as_str().unwrap()])
        .await;
    assert_eq!(deleted.status.code(), Some(0), "{}", stderr(&deleted));
    assert_eq!(
        cli.json(&["backup", "list", &id]).await,
        serde_json::json!([])
    );
    for store in [&id, &clone] {
        assert_eq!(cli.delete_and_wait(store).await.status.code(), Some(0));
    }
}
