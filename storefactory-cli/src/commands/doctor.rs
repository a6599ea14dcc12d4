//! `storefactory doctor`: can this identity run the platform on this cluster?

use std::collections::BTreeSet;

use anyhow::Result;
use futures::StreamExt;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::networking::v1::IngressClass;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use storefactory_core::blueprint::{BlueprintRegistry, DEFAULT_BLUEPRINT, SecretValues};
use storefactory_core::manifest::Manifest;
use storefactory_core::provisioner::error_chain;
use storefactory_core::spec::{StoreId, StoreSpec};

use crate::Context;
use crate::cli::{DoctorArgs, OutputFormat};
use crate::cluster;
use crate::exit::{Code, Failure};
use crate::output;

// What the Provisioner sends, kind by kind. `tests/permissions.rs` records the requests of
// a whole store lifecycle against the local control plane and compares them with this list,
// so the two cannot drift apart.

/// Verbs on the kinds blueprints apply: server-side apply is a `patch`, which the apiserver
/// also authorizes as `create` when it creates the object; each kind is listed and watched
/// (by the managed-by label) for readiness and drift. No `get`: reads come from the caches.
const APPLIED_VERBS: &[&str] = &["create", "patch", "list", "watch"];
/// Jobs a blueprint reruns on retry are deleted first; so are Jobs it reruns on a change.
const RERUN_VERBS: &[&str] = &["delete"];
/// Changing a store reads, by name, the ConfigMaps its `rerun_on_change` Jobs read, to tell
/// whether they must run again.
const CHANGE_CONFIG_MAP_VERBS: &[&str] = &["get"];
/// Growing a volume claim is checked against its StorageClass (does it allow expansion?):
/// classes are listed.
const STORAGE_CLASS_VERBS: &[&str] = &["list"];
/// Generated Secrets are created once (never applied, so never patched) and read by name
/// when their credentials are asked for. Never listed or watched: no Secret of any other
/// namespace is ever read.
const GENERATED_SECRET_VERBS: &[&str] = &["create", "get"];
/// Secrets a blueprint applies (not generated) are patched like any other object, and not
/// watched.
const APPLIED_SECRET_VERBS: &[&str] = &["create", "patch"];
/// Verbs on namespaces: each store has one, applied, read by name (is it this store's?),
/// watched and deleted with the store.
const NAMESPACE_VERBS: &[&str] = &["create", "patch", "get", "list", "watch", "delete"];
/// The leader Lease is read, created once and renewed (updated).
const LEASE_VERBS: &[&str] = &["get", "create", "update"];
/// Pods are observed through a watch, for readiness and failure reasons; suspending a store
/// deletes the finished pods of its completed Jobs (the controllers remove the others).
const POD_VERBS: &[&str] = &["list", "watch", "delete"];
/// Verbs in the order they are shown.
const VERB_ORDER: &[&str] = &[
    "create", "patch", "update", "get", "list", "watch", "delete",
];

const DEFAULT_INGRESS_CLASS: &str = "ingressclass.kubernetes.io/is-default-class";
const DEFAULT_STORAGE_CLASS: &[&str] = &[
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
];

/// A permission the platform needs, cluster-wide (store namespaces come and go).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Permission {
    /// The verb, e.g. `create`.
    pub verb: String,
    /// The API group; empty for the core group.
    pub group: String,
    /// The resource, plural, e.g. `deployments`.
    pub resource: String,
    /// The namespace it is needed in; `None` for every namespace (or cluster-wide).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scope = match &self.namespace {
            Some(namespace) => format!("in namespace {namespace}"),
            None if self.resource == "namespaces" => "cluster-wide".to_owned(),
            None => "in all namespaces".to_owned(),
        };
        if self.group.is_empty() {
            write!(f, "{} {} ({scope})", self.verb, self.resource)
        } else {
            write!(
                f,
                "{} {}.{} ({scope})",
                self.verb, self.resource, self.group
            )
        }
    }
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Fine.
    Ok,
    /// Worth knowing; does not fail the doctor.
    Warning,
    /// Something the platform needs is missing.
    Error,
}

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// How it came out.
    pub status: Status,
    /// Details for a person.
    pub message: String,
}

impl Check {
    fn new(name: &str, status: Status, message: impl Into<String>) -> Self {
        Check {
            name: name.to_owned(),
            status,
            message: message.into(),
        }
    }
}

/// Everything the doctor found.
#[derive(Debug, Serialize)]
struct Report {
    ok: bool,
    server: Option<String>,
    version: Option<String>,
    checks: Vec<Check>,
    missing_permissions: Vec<Permission>,
}

/// The permissions the platform needs to provision stores of every blueprint in `registry`:
/// derived from the objects the blueprints render, so they cannot drift apart.
pub fn required_permissions(
    registry: &BlueprintRegistry,
    lease_namespace: &str,
) -> (Vec<Permission>, Vec<Check>) {
    let mut warnings = Vec::new();
    // Per kind, the verbs its objects need: (kind, verbs).
    let mut needs: BTreeSet<(String, &'static str)> = BTreeSet::new();
    // Whether some blueprint renders volume claims (which a change may grow).
    let mut claims = false;
    let mut spec = StoreSpec::new(
        StoreId::new("doctor").unwrap_or_else(|_| StoreId::generate()),
        "admin",
        "store-doctor.storefactory.local",
    );
    spec.products = Vec::new();
    for name in registry.names() {
        let rendered = registry
            .render(name, &spec, SecretValues::Placeholders)
            .and_then(|manifests| Ok((manifests, registry.get(name)?.lifecycle().clone())));
        match rendered {
            Ok((manifests, lifecycle)) => {
                claims |= manifests
                    .iter()
                    .any(|m| m.kind() == "PersistentVolumeClaim");
                if lifecycle.ready.iter().any(|r| r.rerun_on_change) {
                    needs.extend(
                        CHANGE_CONFIG_MAP_VERBS
                            .iter()
                            .map(|v| ("ConfigMap".to_owned(), *v)),
                    );
                }
                for m in manifests {
                    let kind = m.kind().to_owned();
                    let verbs = match m.kind() {
                        "Secret" if lifecycle.generates(m.name()) => GENERATED_SECRET_VERBS,
                        "Secret" => APPLIED_SECRET_VERBS,
                        _ => APPLIED_VERBS,
                    };
                    needs.extend(verbs.iter().map(|v| (kind.clone(), *v)));
                }
                for ready in lifecycle
                    .ready
                    .iter()
                    .filter(|r| r.rerun_on_retry || r.rerun_on_change)
                {
                    let kind = ready.kind.as_str().to_owned();
                    needs.extend(RERUN_VERBS.iter().map(|v| (kind.clone(), *v)));
                }
            }
            Err(error) if name != DEFAULT_BLUEPRINT => warnings.push(Check::new(
                "permissions",
                Status::Warning,
                format!(
                    "cannot tell which kinds blueprint {name} creates (it does not render a \
                     default store: {}); its permissions are not checked",
                    error_chain(&error)
                ),
            )),
            Err(error) => warnings.push(Check::new(
                "permissions",
                Status::Error,
                format!(
                    "the built-in blueprint does not render: {}",
                    error_chain(&error)
                ),
            )),
        }
    }
    let mut permissions = BTreeSet::new();
    let mut add = |group: &str, resource: &str, verbs: &[&str]| {
        for verb in verbs {
            permissions.insert(Permission {
                verb: (*verb).to_owned(),
                group: group.to_owned(),
                resource: resource.to_owned(),
                namespace: None,
            });
        }
    };
    add("", "namespaces", NAMESPACE_VERBS);
    add("", "pods", POD_VERBS);
    if claims {
        add("storage.k8s.io", "storageclasses", STORAGE_CLASS_VERBS);
    }
    for resource in Manifest::api_resources() {
        if resource.kind == "Namespace" {
            continue;
        }
        let verbs: Vec<&str> = needs
            .iter()
            .filter(|(kind, _)| *kind == resource.kind)
            .map(|(_, verb)| *verb)
            .collect();
        add(&resource.group, &resource.plural, &verbs);
    }
    // The leader Lease, in the platform's own namespace.
    for verb in LEASE_VERBS {
        permissions.insert(Permission {
            verb: (*verb).to_owned(),
            group: "coordination.k8s.io".to_owned(),
            resource: "leases".to_owned(),
            namespace: Some(lease_namespace.to_owned()),
        });
    }
    // Namespaces first, then by group and resource, verbs in their usual order.
    let order = |p: &Permission| {
        (
            p.resource != "namespaces",
            p.group.clone(),
            p.resource.clone(),
            VERB_ORDER.iter().position(|v| *v == p.verb),
        )
    };
    let mut permissions: Vec<Permission> = permissions.into_iter().collect();
    permissions.sort_by_key(order);
    (permissions, warnings)
}

async fn allowed(client: &Client, permission: &Permission) -> Result<bool, kube::Error> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(permission.verb.clone()),
                group: Some(permission.group.clone()),
                resource: Some(permission.resource.clone()),
                namespace: permission.namespace.clone(),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let answer = api.create(&PostParams::default(), &review).await?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

async fn check_permissions(
    client: &Client,
    permissions: &[Permission],
) -> (Vec<Check>, Vec<Permission>) {
    let answers: Vec<(Permission, Result<bool, kube::Error>)> =
        futures::stream::iter(permissions.iter().cloned())
            .map(|p| async move {
                let answer = allowed(client, &p).await;
                (p, answer)
            })
            .buffered(8)
            .collect()
            .await;
    let mut checks = Vec::new();
    let mut missing = Vec::new();
    for (permission, answer) in answers {
        match answer {
            Ok(true) => {}
            Ok(false) => {
                checks.push(Check::new(
                    "missing permission",
                    Status::Error,
                    permission.to_string(),
                ));
                missing.push(permission);
            }
            Err(error) => {
                checks.push(Check::new(
                    "permission",
                    Status::Error,
                    format!(
                        "cannot check permission {permission}: {}",
                        error_chain(&error)
                    ),
                ));
                missing.push(permission);
            }
        }
    }
    if missing.is_empty() {
        checks.push(Check::new(
            "permissions",
            Status::Ok,
            format!(
                "all {} permissions the platform needs are granted",
                permissions.len()
            ),
        ));
    }
    (checks, missing)
}

fn is_default(annotations: &std::collections::BTreeMap<String, String>, keys: &[&str]) -> bool {
    keys.iter()
        .any(|k| annotations.get(*k).is_some_and(|v| v == "true"))
}

/// A Kubernetes error in a few words: the API server's message, not its whole Status.
fn kube_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => error_chain(other),
    }
}

fn list_error(what: &str, error: &kube::Error) -> Check {
    Check::new(
        what,
        Status::Warning,
        format!("cannot list {what}es to check: {}", kube_message(error)),
    )
}

/// The check of one kind of class (`kind`: IngressClass, StorageClass): the `wanted` one
/// exists, or, when none is named, one is marked default by one of `default_keys`. Without a
/// default, `no_default` gives the status and message from the names found.
async fn check_class<K>(
    client: &Client,
    name: &str,
    kind: &str,
    wanted: Option<&str>,
    default_keys: &[&str],
    no_default: impl FnOnce(&str) -> (Status, String),
) -> Check
where
    K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let api: Api<K> = Api::all(client.clone());
    let classes = match api.list(&ListParams::default()).await {
        Ok(list) => list.items,
        Err(error) => return list_error(name, &error),
    };
    let names: Vec<String> = classes.iter().map(ResourceExt::name_any).collect();
    let found = if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    };
    if let Some(wanted) = wanted {
        return if names.iter().any(|n| n == wanted) {
            Check::new(name, Status::Ok, format!("{kind} {wanted} exists"))
        } else {
            Check::new(
                name,
                Status::Error,
                format!("{kind} {wanted} does not exist (found: {found})"),
            )
        };
    }
    match classes
        .iter()
        .find(|c| is_default(c.annotations(), default_keys))
    {
        Some(class) => Check::new(
            name,
            Status::Ok,
            format!("default {kind} {}", class.name_any()),
        ),
        None => {
            let (status, message) = no_default(&found);
            Check::new(name, status, message)
        }
    }
}

async fn check_ingress_class(client: &Client, wanted: Option<&str>) -> Check {
    check_class::<IngressClass>(
        client,
        "ingress class",
        "IngressClass",
        wanted,
        &[DEFAULT_INGRESS_CLASS],
        |found| {
            (
                Status::Warning,
                format!(
                    "no default IngressClass (found: {found}); stores' Ingresses get no class, which \
                     only some controllers serve: pass --ingress-class, or install an ingress \
                     controller (ingress-nginx on kind and minikube; k3s ships Traefik)"
                ),
            )
        },
    )
    .await
}

async fn check_storage_class(client: &Client, wanted: Option<&str>) -> Check {
    check_class::<StorageClass>(
        client,
        "storage class",
        "StorageClass",
        wanted,
        DEFAULT_STORAGE_CLASS,
        |found| {
            (
                Status::Error,
                format!(
                    "no default StorageClass (found: {found}); store volumes would stay pending: \
                     pass --storage-class or mark a StorageClass as default"
                ),
            )
        },
    )
    .await
}

fn render_human(report: &Report) -> String {
    let mut text = String::new();
    for check in &report.checks {
        let mark = match check.status {
            Status::Ok => "[ok]     ",
            Status::Warning => "[warning]",
            Status::Error => "[error]  ",
        };
        text.push_str(&format!("{mark} {}: {}\n", check.name, check.message));
    }
    text.push_str(if report.ok {
        "\nThe cluster is ready for storefactory.\n"
    } else {
        "\nThe cluster is not ready for storefactory: fix the errors above.\n"
    });
    text
}

/// Runs `doctor`.
pub async fn run(ctx: &Context, args: DoctorArgs) -> Result<()> {
    let registry = ctx.blueprints()?;
    let (permissions, mut checks) = required_permissions(&registry, &ctx.global.lease_namespace);
    let mut report = Report {
        ok: false,
        server: None,
        version: None,
        checks: Vec::new(),
        missing_permissions: Vec::new(),
    };

    let config = match cluster::config(
        ctx.global.kubeconfig.as_deref(),
        ctx.global.context.as_deref(),
    )
    .await
    {
        Ok(config) => config,
        Err(error) => {
            report
                .checks
                .push(Check::new("cluster", Status::Error, format!("{error:#}")));
            return finish(ctx, report, Code::Cluster);
        }
    };
    report.server = Some(config.cluster_url.to_string());
    let client = Client::try_from(config)?;
    match cluster::reachable(&client).await {
        Ok(info) => {
            report.version = Some(info.git_version.clone());
            report.checks.push(Check::new(
                "cluster",
                Status::Ok,
                format!(
                    "reachable at {}, Kubernetes {}",
                    report.server.as_deref().unwrap_or_default(),
                    info.git_version
                ),
            ));
        }
        Err(error) => {
            report
                .checks
                .push(Check::new("cluster", Status::Error, format!("{error:#}")));
            return finish(ctx, report, Code::Cluster);
        }
    }

    let (permission_checks, missing) = check_permissions(&client, &permissions).await;
    report.checks.append(&mut checks);
    report.checks.extend(permission_checks);
    report.missing_permissions = missing;
    report
        .checks
        .push(check_ingress_class(&client, args.ingress_class.as_deref()).await);
    report
        .checks
        .push(check_storage_class(&client, args.storage_class.as_deref()).await);
    finish(ctx, report, Code::Problems)
}

/// Prints the report; fails with `code` if any check is an error.
fn finish(ctx: &Context, mut report: Report, code: Code) -> Result<()> {
    let errors = report
        .checks
        .iter()
        .filter(|c| c.status == Status::Error)
        .count();
    report.ok = errors == 0;
    let format = ctx.output();
    output::print(format, &report, || render_human(&report))?;
    if report.ok {
        Ok(())
    } else {
        let message = if format == OutputFormat::Table {
            format!("doctor found {errors} problem(s)")
        } else {
            format!("doctor found {errors} problem(s); see the report on standard output")
        };
        Err(Failure::new(code, message).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_cover_every_kind_the_builtin_blueprint_creates() {
        let registry = BlueprintRegistry::builtin().unwrap();
        let (permissions, warnings) = required_permissions(&registry, "storefactory");
        assert!(warnings.is_empty(), "{warnings:?}");
        let has = |verb: &str, group: &str, resource: &str| {
            permissions
                .iter()
                .any(|p| p.verb == verb && p.group == group && p.resource == resource)
        };
        for verb in ["create", "delete", "get", "list", "watch"] {
            assert!(has(verb, "", "namespaces"), "{verb} namespaces");
        }
        for (group, resource) in [
            ("", "resourcequotas"),
            ("", "limitranges"),
            ("networking.k8s.io", "networkpolicies"),
            ("", "services"),
            ("", "configmaps"),
            ("", "persistentvolumeclaims"),
            ("apps", "statefulsets"),
            ("apps", "deployments"),
            ("batch", "jobs"),
            ("networking.k8s.io", "ingresses"),
        ] {
            for verb in APPLIED_VERBS {
                assert!(has(verb, group, resource), "{verb} {resource}.{group}");
            }
            // ConfigMaps aside: a change reads the seeding Job's by name.
            assert_eq!(
                has("get", group, resource),
                resource == "configmaps",
                "get {resource}: read from caches"
            );
        }
        // A change checks that a growing volume's StorageClass allows expansion.
        assert!(has("list", "storage.k8s.io", "storageclasses"));
        // Only the rerun seeding Job is ever deleted (namespaces aside).
        assert!(has("delete", "batch", "jobs") && !has("delete", "apps", "deployments"));
        // The built-in blueprint's Secrets are all generated: created once and read by name,
        // never listed, watched, patched or deleted.
        for verb in ["create", "get"] {
            assert!(has(verb, "", "secrets"), "{verb} secrets");
        }
        for verb in ["list", "watch", "patch", "update", "delete"] {
            assert!(!has(verb, "", "secrets"), "{verb} secrets");
        }
        assert!(has("watch", "", "pods") && !has("create", "", "pods") && !has("get", "", "pods"));
        assert_eq!(permissions[0].resource, "namespaces");
        let line = permissions
            .iter()
            .find(|p| p.resource == "deployments" && p.verb == "patch")
            .unwrap()
            .to_string();
        assert_eq!(line, "patch deployments.apps (in all namespaces)");
    }
}
