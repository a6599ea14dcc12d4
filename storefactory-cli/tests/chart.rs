//! The Helm chart in `chart/`, checked the way an operator would meet it: it lints with every
//! values file; its manifests are accepted by the apiserver; the README's install, upgrade
//! and uninstall commands work on the local control plane; and its RBAC is exactly enough —
//! the real `storefactory` binary, with the chart ServiceAccount's token, provisions a store
//! and `doctor` finds nothing missing, while without any one of the chart's rules (or any one
//! resource or verb of a rule) doctor or provisioning fails.
//!
//! helm and kubectl come from `STOREFACTORY_HELM_BIN_DIR` (scripts/test.sh exports it), else
//! `scripts/install-helm.sh` is run, which caches them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Secret, ServiceAccount};
use k8s_openapi::api::networking::v1::IngressClass;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use storefactory_core::spec::StoreId;
use storefactory_testkit::{ControlPlane, shared};
use tokio::io::AsyncWriteExt;

const BIN: &str = env!("CARGO_BIN_EXE_storefactory");
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// The directory holding `helm` and `kubectl`.
fn tools_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("STOREFACTORY_HELM_BIN_DIR") {
            return PathBuf::from(dir);
        }
        let output = std::process::Command::new("bash")
            .arg(Path::new(ROOT).join("scripts/install-helm.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("scripts/install-helm.sh runs");
        assert!(output.status.success(), "scripts/install-helm.sh failed");
        let stdout = String::from_utf8(output.stdout).expect("UTF-8");
        PathBuf::from(
            stdout
                .lines()
                .last()
                .expect("the script prints the directory"),
        )
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A command line of helm, kubectl or the shell, run from the repository's root with
/// `kubeconfig` (if any) and helm's own files in `home`.
struct Shell<'a> {
    kubeconfig: Option<&'a Path>,
    home: &'a Path,
}

impl Shell<'_> {
    async fn run(&self, program: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let tools = tools_dir();
        let path = format!(
            "{}:{}",
            tools.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .current_dir(ROOT)
            .env("PATH", path)
            .env("HELM_CACHE_HOME", self.home.join("cache"))
            .env("HELM_CONFIG_HOME", self.home.join("config"))
            .env("HELM_DATA_HOME", self.home.join("data"))
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        match self.kubeconfig {
            Some(path) => command.env("KUBECONFIG", path),
            None => command.env("KUBECONFIG", self.home.join("no-kubeconfig")),
        };
        let mut child = command.spawn().expect("the command starts");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin");
            pipe.write_all(input).await.expect("write stdin");
            drop(pipe);
        }
        let output = tokio::time::timeout(Duration::from_secs(180), child.wait_with_output())
            .await
            .expect("the command finishes within 3 minutes")
            .expect("the command runs");
        eprintln!(
            "$ {program} {}\n-> {:?}\n{}",
            args.join(" "),
            output.status.code(),
            text(&output.stderr)
        );
        output
    }

    async fn helm(&self, args: &[&str]) -> Output {
        self.run(&tools_dir().join("helm").display().to_string(), args, None)
            .await
    }

    async fn kubectl(&self, args: &[&str], stdin: &[u8]) -> Output {
        let kubectl = tools_dir().join("kubectl").display().to_string();
        self.run(&kubectl, args, Some(stdin)).await
    }

    /// Runs a line of the README with bash.
    async fn line(&self, line: &str) -> Output {
        self.run("bash", &["-euo", "pipefail", "-c", line], None)
            .await
    }

    /// `helm template RELEASE chart/ --namespace NS ARGS`, parsed.
    async fn render(&self, release: &str, namespace: &str, args: &[&str]) -> Vec<Value> {
        let mut all = vec!["template", release, "chart/", "--namespace", namespace];
        all.extend_from_slice(args);
        let output = self.helm(&all).await;
        assert!(output.status.success(), "helm template failed");
        storefactory_core::yaml::parse_documents(&text(&output.stdout))
            .expect("helm template prints YAML")
            .into_iter()
            .filter(|d| !d.is_null())
            .collect()
    }
}

fn find<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} rendered"))
}

/// Runs the real binary with a kubeconfig and a database in `dir`.
async fn storefactory(kubeconfig: &Path, dir: &Path, args: &[&str]) -> Output {
    storefactory_with_input(kubeconfig, dir, args, "").await
}

/// The namespace of the kubeconfig's current context, if it names one.
fn context_namespace(kubeconfig: &Path) -> Option<String> {
    let config = kube::config::Kubeconfig::read_from(kubeconfig).ok()?;
    let current = config.current_context.clone()?;
    config
        .contexts
        .iter()
        .find(|c| c.name == current)?
        .context
        .as_ref()?
        .namespace
        .clone()
}

/// [`storefactory`] with `input` on standard input.
async fn storefactory_with_input(
    kubeconfig: &Path,
    dir: &Path,
    args: &[&str],
    input: &str,
) -> Output {
    let mut command = tokio::process::Command::new(BIN);
    command
        .current_dir(dir)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--db")
        .arg(dir.join("sf.db"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // The test decides everything; nothing leaks in from the developer's shell.
    for (key, _) in std::env::vars() {
        if key.starts_with("STOREFACTORY_") {
            command.env_remove(key);
        }
    }
    // As the chart's service account, the command line elects its leader where the chart's
    // server does: in the release's namespace (the kubeconfig context's).
    if let Some(namespace) = context_namespace(kubeconfig) {
        command.env("STOREFACTORY_LEASE_NAMESPACE", namespace);
    }
    let mut child = command.spawn().expect("the storefactory binary starts");
    let mut pipe = child.stdin.take().expect("stdin");
    pipe.write_all(input.as_bytes()).await.expect("write stdin");
    drop(pipe);
    let output = tokio::time::timeout(Duration::from_secs(240), child.wait_with_output())
        .await
        .expect("storefactory finishes within 4 minutes")
        .expect("storefactory runs");
    eprintln!(
        "$ storefactory {}\n-> {:?}\n{}{}",
        args.join(" "),
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr)
    );
    output
}

/// `storefactory doctor --ingress-class CLASS --output json`: the exit code and the report.
async fn doctor(kubeconfig: &Path, dir: &Path, ingress_class: &str) -> (Option<i32>, Value) {
    let output = storefactory(
        kubeconfig,
        dir,
        &[
            "doctor",
            "--ingress-class",
            ingress_class,
            "--output",
            "json",
        ],
    )
    .await;
    let report = serde_json::from_slice(&output.stdout).expect("doctor prints a JSON report");
    (output.status.code(), report)
}

/// The admin user that stores belong to by default.
async fn add_admin(kubeconfig: &Path, dir: &Path) {
    let output = storefactory_with_input(
        kubeconfig,
        dir,
        &["user", "add", "admin", "--role", "admin"],
        "correct horse battery\n",
    )
    .await;
    assert_eq!(output.status.code(), Some(0));
}

fn missing_of(report: &Value) -> BTreeSet<Permission> {
    report["missing_permissions"]
        .as_array()
        .expect("missing permissions")
        .iter()
        .map(|p| {
            let field = |f: &str| p[f].as_str().expect("a string").to_owned();
            (field("verb"), field("group"), field("resource"))
        })
        .collect()
}

fn checks_not_ok(report: &Value) -> Vec<String> {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["status"] != "ok")
        .map(|c| format!("{}: {}", c["name"], c["message"]))
        .collect()
}

/// An IngressClass for doctor to find, so that a healthy report has no warning at all.
async fn ingress_class(client: &Client, prefix: &str) -> String {
    let name = format!("{prefix}-{}", StoreId::generate());
    let class: IngressClass = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"controller": "example.com/ingress"},
    }))
    .expect("an IngressClass");
    Api::<IngressClass>::all(client.clone())
        .create(&PostParams::default(), &class)
        .await
        .expect("create the IngressClass");
    name
}

/// A kubeconfig for the chart's ServiceAccount `namespace/name`: the cluster of the admin
/// kubeconfig, with the token the token controller put into the account's Secret (the
/// Kubernetes 1.20 way; what the server's pod gets mounted).
async fn service_account_kubeconfig(
    cp: &ControlPlane,
    client: &Client,
    namespace: &str,
    name: &str,
    dir: &Path,
) -> PathBuf {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let has_token = |sa: Option<&ServiceAccount>| {
        sa.and_then(|sa| sa.secrets.as_ref())
            .is_some_and(|s| !s.is_empty())
    };
    let account = tokio::time::timeout(
        Duration::from_secs(30),
        kube::runtime::wait::await_condition(accounts, name, has_token),
    )
    .await
    .expect("the ServiceAccount gets a token within 30s")
    .expect("watch the ServiceAccount")
    .expect("the ServiceAccount exists");
    let secret_name = account.secrets.as_ref().unwrap()[0]
        .name
        .clone()
        .expect("a named Secret");
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get(&secret_name)
        .await
        .expect("read the token Secret");
    let token = secret
        .data
        .as_ref()
        .and_then(|d| d.get("token"))
        .map(|t| String::from_utf8(t.0.clone()).expect("a UTF-8 token"))
        .expect("the Secret holds a token");
    let admin = kube::config::Kubeconfig::read_from(cp.kubeconfig_path()).expect("kubeconfig");
    let ca = admin.clusters[0]
        .cluster
        .as_ref()
        .and_then(|c| c.certificate_authority_data.clone())
        .expect("the CA");
    let path = dir.join(format!("{namespace}-{name}.kubeconfig"));
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: {name}
  user:
    token: {token}
contexts:
- name: {name}
  context:
    cluster: local
    user: {name}
    namespace: {namespace}
current-context: {name}
",
        server = cp.server_url(),
    );
    std::fs::write(&path, text).expect("write the kubeconfig");
    path
}

async fn deployment_available(client: &Client, namespace: &str, name: &str) -> bool {
    let deployment = Api::<Deployment>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .expect("read the Deployment");
    deployment
        .and_then(|d| d.status)
        .and_then(|s| s.conditions)
        .is_some_and(|c| {
            c.iter()
                .any(|c| c.type_ == "Available" && c.status == "True")
        })
}

async fn secret_data(client: &Client, namespace: &str, name: &str) -> Vec<(String, Vec<u8>)> {
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get(name)
        .await
        .expect("read the Secret");
    secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect()
}

#[tokio::test]
async fn trusted_proxies_reach_the_server_and_an_empty_one_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let shell = Shell {
        kubeconfig: None,
        home: home.path(),
    };
    let objects = shell
        .render(
            "sf",
            "platform",
            &["--set", "server.trustedProxies={10.0.0.0/8,192.168.0.0/16}"],
        )
        .await;
    let env = &find(&objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"];
    let proxies = env
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "STOREFACTORY_TRUSTED_PROXIES")
        .expect("the variable is set");
    assert_eq!(proxies["value"], "10.0.0.0/8,192.168.0.0/16");
    let output = shell
        .helm(&[
            "lint",
            "--strict",
            "chart/",
            "--set",
            "server.trustedProxies[0]=",
        ])
        .await;
    assert!(!output.status.success(), "an empty proxy was accepted");
}

#[tokio::test]
async fn chart_lints_strictly_refuses_bad_values_and_honours_an_existing_secret_and_claim() {
    let home = tempfile::tempdir().unwrap();
    let shell = Shell {
        kubeconfig: None,
        home: home.path(),
    };
    for values in ["values.yaml", "values-dev.yaml", "values-prod.yaml"] {
        let file = format!("chart/{values}");
        let output = shell
            .helm(&["lint", "--strict", "chart/", "--values", &file])
            .await;
        assert!(
            output.status.success(),
            "helm lint --strict with {values}:\n{}",
            text(&output.stdout)
        );
    }
    // The schema catches what a typo or a too-broad rule would otherwise slip through.
    for (set, expected) in [
        ("ingress.hots=shop.example.com", "hots"),
        ("stores.domain=Not A Domain", "domain"),
        ("persistence.size=lots", "size"),
        ("rbac.extraClusterRules[0].apiGroups[0]=*", "apiGroups"),
    ] {
        let output = shell
            .helm(&["lint", "--strict", "chart/", "--set", set])
            .await;
        let said = format!("{}{}", text(&output.stdout), text(&output.stderr));
        assert!(
            !output.status.success() && said.contains(expected),
            "--set {set} was not refused: {said}"
        );
    }
    // Bring-your-own Secret and volume, no Ingress: the chart then creates none of them,
    // and the server uses what it was given.
    let objects = shell
        .render(
            "sf",
            "platform",
            &[
                "--set",
                "auth.existingSecret=platform-secrets",
                "--set",
                "persistence.existingClaim=platform-db",
                "--set",
                "ingress.enabled=false",
            ],
        )
        .await;
    for kind in ["Secret", "PersistentVolumeClaim", "Ingress"] {
        assert!(
            objects.iter().all(|o| o["kind"] != kind),
            "a {kind} was rendered"
        );
    }
    let volumes = &find(&objects, "Deployment")["spec"]["template"]["spec"]["volumes"];
    assert!(
        volumes
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["secret"]["secretName"] == "platform-secrets")
    );
    assert!(
        volumes
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["persistentVolumeClaim"]["claimName"] == "platform-db")
    );

    let chart = std::fs::read_to_string(Path::new(ROOT).join("chart/Chart.yaml")).unwrap();
    let chart: Value = storefactory_core::yaml::from_str(&chart).unwrap();
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(
        chart["appVersion"],
        env!("CARGO_PKG_VERSION"),
        "Chart.yaml's appVersion (the image tag) is the workspace version"
    );
}

#[tokio::test]
async fn dev_and_prod_manifests_are_accepted_by_the_apiserver_in_a_server_side_dry_run() {
    let cp = shared().await.expect("control plane");
    let client = cp.client().await.expect("client");
    let ns = cp.namespace(&client, "chart-dry-run").await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let shell = Shell {
        kubeconfig: Some(cp.kubeconfig_path()),
        home: home.path(),
    };
    for values in ["values-dev.yaml", "values-prod.yaml"] {
        let file = format!("chart/{values}");
        let objects = shell
            .render("storefactory", ns.name(), &["--values", &file])
            .await;
        let kinds: BTreeSet<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
        let expected = [
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "Ingress",
            "PersistentVolumeClaim",
            "Role",
            "RoleBinding",
            "Secret",
            "Service",
            "ServiceAccount",
        ];
        assert_eq!(kinds, expected.into_iter().collect(), "{values}");

        let manifests = objects
            .iter()
            .map(|o| serde_json::to_string(o).unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        // kubectl 1.33 is four minor versions ahead of this apiserver; it warns about the
        // skew, and both its client-side schema check and the server-side dry run work.
        let output = shell
            .kubectl(
                &["apply", "--server-side", "--dry-run=server", "-f", "-"],
                manifests.as_bytes(),
            )
            .await;
        assert!(
            output.status.success(),
            "the apiserver refused the {values} manifests"
        );
        let applied = text(&output.stdout);
        assert_eq!(
            applied.matches("(server dry run)").count(),
            objects.len(),
            "{applied}"
        );

        // The pod meets the restricted Pod Security Standard (1.20 has no admission for it).
        let pod = &find(&objects, "Deployment")["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        let container = &pod["containers"][0];
        assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(
            container["securityContext"]["allowPrivilegeEscalation"],
            false
        );
        assert_eq!(
            container["securityContext"]["capabilities"]["drop"],
            json!(["ALL"])
        );
        assert_eq!(
            find(&objects, "Deployment")["spec"]["strategy"]["type"],
            "Recreate"
        );
        let env = |name: &str| {
            container["env"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == name)
                .cloned()
        };
        assert_eq!(
            env("STOREFACTORY_LEASE_NAMESPACE").unwrap()["valueFrom"]["fieldRef"]["fieldPath"],
            "metadata.namespace"
        );
        let ingress = find(&objects, "Ingress");
        if values == "values-prod.yaml" {
            assert_eq!(
                ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"],
                "letsencrypt-prod"
            );
            assert_eq!(
                ingress["spec"]["tls"][0]["hosts"][0],
                "storefactory.shops.example.com"
            );
            assert_eq!(ingress["spec"]["ingressClassName"], "traefik");
            assert_eq!(
                env("STOREFACTORY_TLS_CLUSTER_ISSUER").unwrap()["value"],
                "letsencrypt-prod"
            );
            assert_eq!(
                env("STOREFACTORY_STORAGE_CLASS").unwrap()["value"],
                "local-path"
            );
            assert_eq!(
                find(&objects, "PersistentVolumeClaim")["spec"]["storageClassName"],
                "local-path"
            );
        } else {
            assert!(ingress["spec"].get("tls").is_none());
            assert_eq!(ingress["spec"]["rules"][0]["host"], "storefactory.local");
            assert_eq!(ingress["spec"]["ingressClassName"], "nginx");
            assert!(env("STOREFACTORY_TLS_CLUSTER_ISSUER").is_none());
        }
    }
    // A dry run creates nothing.
    assert!(
        !deployment_available(&client, ns.name(), "storefactory").await
            && Api::<Deployment>::namespaced(client.clone(), ns.name())
                .get_opt("storefactory")
                .await
                .unwrap()
                .is_none()
    );
}

/// The README's command for `prefix` (e.g. `helm install storefactory`), from a code block.
fn readme_command(readme: &str, prefix: &str) -> String {
    readme
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("the README has no `{prefix} ...` command"))
        .to_owned()
}

#[tokio::test]
async fn readme_install_upgrade_and_uninstall_work_and_the_service_account_provisions_stores() {
    let cp = shared().await.expect("control plane");
    let client = cp.client().await.expect("client");
    let home = tempfile::tempdir().unwrap();
    let shell = Shell {
        kubeconfig: Some(cp.kubeconfig_path()),
        home: home.path(),
    };
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    // The README installs into namespace `storefactory`; this test binary's control plane
    // is its own, so that namespace is free.
    let namespace = "storefactory";

    let install = readme_command(&readme, "helm install storefactory chart/ ");
    assert!(install.contains("chart/values-dev.yaml"), "{install}");
    let output = shell.line(&install).await;
    assert!(output.status.success(), "the README's install failed");
    let rollout = readme_command(&readme, "kubectl --namespace storefactory rollout status");
    let output = shell.line(&rollout).await;
    assert!(output.status.success(), "the rollout did not finish");
    assert!(text(&output.stdout).contains("successfully rolled out"));
    assert!(deployment_available(&client, namespace, "storefactory").await);

    // The admin password, as the README (and NOTES.txt) say to read it.
    let password_line = readme_command(&readme, "kubectl --namespace storefactory get secret");
    let output = shell.line(&password_line).await;
    assert!(output.status.success());
    let secret = secret_data(&client, namespace, "storefactory").await;
    let stored = &secret
        .iter()
        .find(|(k, _)| k == "admin-password")
        .unwrap()
        .1;
    // (Compared without printing them, even in a failure message.)
    assert!(
        text(&output.stdout).trim() == text(stored),
        "the README's command does not print the admin password"
    );
    assert!(stored.len() >= 16, "a generated password of 16 or more");

    // The chart's identity: doctor finds nothing missing, and it provisions and deletes.
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig =
        service_account_kubeconfig(cp, &client, namespace, "storefactory", dir.path()).await;
    let class = ingress_class(&client, "chart-readme").await;
    let (code, report) = doctor(&kubeconfig, dir.path(), &class).await;
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["missing_permissions"], json!([]));
    assert!(checks_not_ok(&report).is_empty(), "{report}");

    add_admin(&kubeconfig, dir.path()).await;
    let id = StoreId::generate().to_string();
    let created = storefactory(
        &kubeconfig,
        dir.path(),
        &[
            "store",
            "create",
            "--id",
            &id,
            "--wait",
            "--timeout",
            "2m",
            "--output",
            "json",
        ],
    )
    .await;
    assert_eq!(created.status.code(), Some(0));
    let created: Value = serde_json::from_slice(&created.stdout).unwrap();
    assert_eq!(created["status"], "ready");
    let deleted = storefactory(
        &kubeconfig,
        dir.path(),
        &["store", "delete", &id, "--wait", "--timeout", "2m"],
    )
    .await;
    assert_eq!(deleted.status.code(), Some(0));
    let namespaces: Api<Namespace> = Api::all(client.clone());
    assert!(
        namespaces
            .get_opt(&format!("store-{id}"))
            .await
            .unwrap()
            .is_none()
    );

    // A store that is still there when the release goes.
    let kept = StoreId::generate().to_string();
    let created = storefactory(
        &kubeconfig,
        dir.path(),
        &[
            "store",
            "create",
            "--id",
            &kept,
            "--wait",
            "--timeout",
            "2m",
        ],
    )
    .await;
    assert_eq!(created.status.code(), Some(0));

    let upgrade = readme_command(&readme, "helm upgrade storefactory chart/ ");
    let output = shell.line(&upgrade).await;
    assert!(output.status.success(), "the README's upgrade failed");
    assert!(
        secret_data(&client, namespace, "storefactory").await == secret,
        "an upgrade keeps the token key and the admin password"
    );
    let output = shell.line(&rollout).await;
    assert!(output.status.success());
    assert!(deployment_available(&client, namespace, "storefactory").await);

    let uninstall = readme_command(&readme, "helm uninstall storefactory ");
    let output = shell.line(&uninstall).await;
    assert!(output.status.success(), "the README's uninstall failed");
    assert!(
        Api::<Deployment>::namespaced(client.clone(), namespace)
            .get_opt("storefactory")
            .await
            .unwrap()
            .is_none(),
        "the server is gone"
    );
    assert!(
        namespaces
            .get_opt(&format!("store-{kept}"))
            .await
            .unwrap()
            .is_some_and(|n| n.metadata.deletion_timestamp.is_none()),
        "the store's namespace stays"
    );
    assert!(
        Api::<PersistentVolumeClaim>::namespaced(client.clone(), namespace)
            .get_opt("storefactory-data")
            .await
            .unwrap()
            .is_some(),
        "the database volume stays"
    );
    assert!(
        secret_data(&client, namespace, "storefactory").await == secret,
        "the Secret stays, unchanged"
    );
    let (code, _) = doctor(&kubeconfig, dir.path(), &class).await;
    assert_ne!(code, Some(0), "the release's permissions are gone");

    // Clean up with the admin identity.
    let gone = storefactory(
        cp.kubeconfig_path(),
        dir.path(),
        &["store", "delete", &kept, "--wait", "--timeout", "2m"],
    )
    .await;
    assert_eq!(gone.status.code(), Some(0));
    let _ = namespaces.delete(namespace, &DeleteParams::default()).await;
}

/// A (verb, group, resource) the role grants or doctor asks for.
type Permission = (String, String, String);

fn permissions_of(rules: &[PolicyRule]) -> BTreeSet<Permission> {
    let mut granted = BTreeSet::new();
    for rule in rules {
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    granted.insert((verb.clone(), group.clone(), resource.clone()));
                }
            }
        }
    }
    granted
}

/// The chart's rules with one thing taken out: every rule once, and, in each rule, every
/// resource and every verb once (when the rule has more than one).
fn variants(rules: &[PolicyRule]) -> Vec<(String, Vec<PolicyRule>)> {
    let mut out = Vec::new();
    let describe = |rule: &PolicyRule| {
        format!(
            "{:?} {:?} {:?}",
            rule.api_groups.as_deref().unwrap_or_default(),
            rule.resources.as_deref().unwrap_or_default(),
            rule.verbs
        )
    };
    for (i, rule) in rules.iter().enumerate() {
        let mut without = rules.to_vec();
        without.remove(i);
        out.push((format!("rule {}", describe(rule)), without));
        let resources = rule.resources.clone().unwrap_or_default();
        if resources.len() > 1 {
            for r in &resources {
                let mut changed = rules.to_vec();
                changed[i].resources =
                    Some(resources.iter().filter(|x| *x != r).cloned().collect());
                out.push((format!("resource {r} of rule {}", describe(rule)), changed));
            }
        }
        if rule.verbs.len() > 1 {
            for v in &rule.verbs {
                let mut changed = rules.to_vec();
                changed[i].verbs = rule.verbs.iter().filter(|x| *x != v).cloned().collect();
                out.push((format!("verb {v} of rule {}", describe(rule)), changed));
            }
        }
    }
    out
}

async fn allowed(client: &Client, (verb, group, resource): &Permission) -> bool {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.clone()),
                group: Some(group.clone()),
                resource: Some(resource.clone()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("SelfSubjectAccessReview")
        .status
        .is_some_and(|s| s.allowed)
}

/// Replaces the ClusterRole's rules, and waits until the authorizer denies `removed` (its
/// cache follows within moments). A permission still allowed after 10s is granted by another
/// rule as well: the role would be broader than its rules say.
async fn set_rules(
    roles: &Api<ClusterRole>,
    name: &str,
    rules: Vec<PolicyRule>,
    identity: &Client,
    removed: &BTreeSet<Permission>,
    what: &str,
) {
    let mut role = roles.get(name).await.expect("read the ClusterRole");
    role.rules = Some(rules);
    roles
        .replace(name, &PostParams::default(), &role)
        .await
        .expect("replace the ClusterRole");
    let deadline = Instant::now() + Duration::from_secs(10);
    for permission in removed {
        while allowed(identity, permission).await {
            assert!(
                Instant::now() < deadline,
                "without {what}, {permission:?} is still allowed"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn every_rule_resource_and_verb_of_the_chart_role_is_needed_and_nothing_more() {
    let cp = shared().await.expect("control plane");
    let client = cp.client().await.expect("client");
    let ns = cp.namespace(&client, "chart-rbac").await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let shell = Shell {
        kubeconfig: Some(cp.kubeconfig_path()),
        home: home.path(),
    };
    let output = shell
        .helm(&[
            "install",
            "rbac",
            "chart/",
            "--namespace",
            ns.name(),
            "--values",
            "chart/values-dev.yaml",
        ])
        .await;
    assert!(output.status.success(), "helm install failed");
    let role_name = format!("{}-rbac-storefactory", ns.name());
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let full: Vec<PolicyRule> = roles
        .get(&role_name)
        .await
        .expect("the chart's ClusterRole")
        .rules
        .unwrap_or_default();

    // Nothing broader than named verbs on named resources.
    for rule in &full {
        let words = rule
            .api_groups
            .iter()
            .flatten()
            .chain(rule.resources.iter().flatten())
            .chain(&rule.verbs);
        for word in words {
            assert!(!word.contains('*'), "a wildcard in {rule:?}");
        }
        assert!(rule.resource_names.is_none() && rule.non_resource_urls.is_none());
    }

    // Exactly doctor's list, plus listing ingress and storage classes (doctor's class
    // checks): the identity with no permissions at all is told it lacks every one.
    let dir = tempfile::tempdir().unwrap();
    let class = ingress_class(&client, "chart-rbac").await;
    let (_, nothing) = doctor(cp.restricted_kubeconfig_path(), dir.path(), &class).await;
    // The Lease is granted by the chart's Role in the release namespace, not cluster-wide.
    let required: BTreeSet<Permission> = missing_of(&nothing)
        .into_iter()
        .filter(|p| p.2 != "leases")
        .collect();
    assert!(required.len() > 50, "doctor lists what it needs: {nothing}");
    let class_checks: BTreeSet<Permission> = [
        ("list", "networking.k8s.io", "ingressclasses"),
        ("list", "storage.k8s.io", "storageclasses"),
    ]
    .into_iter()
    .map(|(v, g, r)| (v.to_owned(), g.to_owned(), r.to_owned()))
    .collect();
    let granted = permissions_of(&full);
    let expected: BTreeSet<Permission> = required.union(&class_checks).cloned().collect();
    let extra: Vec<_> = granted.difference(&expected).collect();
    let lacking: Vec<_> = expected.difference(&granted).collect();
    assert!(
        extra.is_empty() && lacking.is_empty(),
        "the chart grants more than doctor checks: {extra:?}; and lacks: {lacking:?}"
    );

    let kubeconfig =
        service_account_kubeconfig(cp, &client, ns.name(), "rbac-storefactory", dir.path()).await;
    let identity = client_for(&kubeconfig).await;
    let (code, report) = doctor(&kubeconfig, dir.path(), &class).await;
    assert_eq!(code, Some(0), "{report}");
    assert!(checks_not_ok(&report).is_empty(), "{report}");

    let all = variants(&full);
    assert!(all.len() > full.len(), "variants of every rule");
    let count = all.len();
    for (what, rules) in all {
        let removed: BTreeSet<Permission> = granted
            .difference(&permissions_of(&rules))
            .cloned()
            .collect();
        set_rules(&roles, &role_name, rules, &identity, &removed, &what).await;
        let (code, report) = doctor(&kubeconfig, dir.path(), &class).await;
        let problems = checks_not_ok(&report);
        assert!(
            !problems.is_empty(),
            "without {what}, doctor reports no problem"
        );
        let missing = missing_of(&report);
        for permission in &removed {
            let named = if class_checks.contains(permission) {
                let complaint = match permission.2.as_str() {
                    "ingressclasses" => "cannot list ingress classes",
                    _ => "cannot list storage classes",
                };
                problems.iter().any(|p| p.contains(complaint))
            } else {
                missing.contains(permission)
            };
            assert!(
                named,
                "without {what}, doctor does not name {permission:?}: {problems:?}"
            );
        }
        if required.iter().any(|p| removed.contains(p)) {
            assert_eq!(code, Some(8), "without {what}, doctor exits 8");
        }
    }

    eprintln!(
        "{count} variants of the chart's {} rules each made doctor fail",
        full.len()
    );

    // Doctor's word is the provisioning's: without the Jobs rule a store fails, saying so.
    let without_jobs: Vec<PolicyRule> = full
        .iter()
        .filter(|r| r.resources.as_deref() != Some(&["jobs".to_owned()][..]))
        .cloned()
        .collect();
    let removed = granted
        .difference(&permissions_of(&without_jobs))
        .cloned()
        .collect();
    set_rules(
        &roles,
        &role_name,
        without_jobs,
        &identity,
        &removed,
        "the Jobs rule",
    )
    .await;
    add_admin(&kubeconfig, dir.path()).await;
    let id = StoreId::generate().to_string();
    let failed = storefactory(
        &kubeconfig,
        dir.path(),
        &["store", "create", "--id", &id, "--wait", "--timeout", "1m"],
    )
    .await;
    assert_eq!(failed.status.code(), Some(6), "the store fails");
    let said = text(&failed.stderr);
    assert!(
        said.contains("forbidden") && said.contains("jobs"),
        "{said}"
    );

    // And with every rule back, it is provisioned.
    set_rules(
        &roles,
        &role_name,
        full.clone(),
        &identity,
        &BTreeSet::new(),
        "nothing",
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    for permission in &granted {
        while !allowed(&identity, permission).await {
            assert!(
                Instant::now() < deadline,
                "with every rule back, {permission:?} is still denied"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let retried = storefactory(
        &kubeconfig,
        dir.path(),
        &["store", "retry", &id, "--wait", "--timeout", "2m"],
    )
    .await;
    assert_eq!(retried.status.code(), Some(0), "{}", text(&retried.stderr));
    let deleted = storefactory(
        &kubeconfig,
        dir.path(),
        &["store", "delete", &id, "--wait", "--timeout", "2m"],
    )
    .await;
    assert_eq!(deleted.status.code(), Some(0));
    let output = shell
        .helm(&["uninstall", "rbac", "--namespace", ns.name()])
        .await;
    assert!(output.status.success());
}

/// A client with the identity of `kubeconfig`.
async fn client_for(kubeconfig: &Path) -> Client {
    let file = kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    let config =
        kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
            .await
            .expect("config");
    Client::try_from(config).expect("client")
}
