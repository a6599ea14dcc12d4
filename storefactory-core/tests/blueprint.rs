//! Rendering blueprints: the built-in woocommerce blueprint, YAML safety, strictness and the
//! plugin interface.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::PodSpec;
use storefactory_core::Error;
use storefactory_core::blueprint::{
    Blueprint, BlueprintRegistry, DEFAULT_BLUEPRINT, LABEL_MANAGED_BY, LABEL_STORE, PausedBackend,
    RenderState, SecretInputs, SecretValues,
};
use storefactory_core::manifest::Manifest;
use storefactory_core::product::parse_products;
use storefactory_core::spec::{StoreId, StoreSpec, TlsSpec};

fn spec() -> StoreSpec {
    let mut spec = StoreSpec::new(
        StoreId::new("golden1").unwrap(),
        "alice",
        "store-golden1.storefactory.local",
    );
    spec.site_title = "Alice's Shop".to_owned();
    spec.products = parse_products("T-Shirt|5.99|Cotton t-shirt\nJeans|12.99|Denim jeans").unwrap();
    spec
}

fn fixed_secrets() -> SecretValues<'static> {
    SecretValues::Placeholders
}

fn render(spec: &StoreSpec) -> Vec<Manifest> {
    static BUILTIN: std::sync::LazyLock<BlueprintRegistry> =
        std::sync::LazyLock::new(|| BlueprintRegistry::builtin().unwrap());
    BUILTIN
        .render(DEFAULT_BLUEPRINT, spec, fixed_secrets())
        .unwrap()
}

fn find<'a>(manifests: &'a [Manifest], kind: &str, name: &str) -> &'a Manifest {
    manifests
        .iter()
        .find(|m| m.kind() == kind && m.name() == name)
        .unwrap_or_else(|| panic!("{kind}/{name} not rendered"))
}

fn pod_specs(manifests: &[Manifest]) -> Vec<(String, PodSpec)> {
    manifests
        .iter()
        .filter_map(|m| {
            let pod = match m {
                Manifest::Deployment(d) => d.spec.as_ref()?.template.spec.clone(),
                Manifest::StatefulSet(s) => s.spec.as_ref()?.template.spec.clone(),
                Manifest::Job(j) => j.spec.as_ref()?.template.spec.clone(),
                _ => None,
            }?;
            Some((m.describe(), pod))
        })
        .collect()
}

#[test]
fn woocommerce_renders_every_part_of_a_store_in_apply_order() {
    let manifests = render(&spec());
    let described: Vec<_> = manifests.iter().map(Manifest::describe).collect();
    for expected in [
        "Namespace/store-golden1",
        "ResourceQuota/store-quota",
        "LimitRange/store-limits",
        "NetworkPolicy/default-deny",
        "NetworkPolicy/allow-dns",
        "NetworkPolicy/allow-ingress-to-wordpress",
        "NetworkPolicy/allow-wordpress-to-mysql",
        "Secret/mysql",
        "Secret/wordpress-admin",
        "Service/mysql",
        "StatefulSet/mysql",
        "PersistentVolumeClaim/wordpress",
        "Service/wordpress",
        "Deployment/wordpress",
        "ConfigMap/seed",
        "Job/seed",
        "Ingress/wordpress",
    ] {
        assert!(
            described.contains(&expected.to_owned()),
            "{expected} missing from {described:?}"
        );
    }
    assert_eq!(manifests[0].kind(), "Namespace");
    let ranks: Vec<_> = manifests.iter().map(Manifest::apply_rank).collect();
    assert!(
        ranks.windows(2).all(|w| w[0] <= w[1]),
        "not in apply order: {described:?}"
    );
}

#[test]
fn every_object_is_labelled_and_stays_in_the_store_namespace() {
    for m in render(&spec()) {
        let labels = m.meta().labels.clone().unwrap_or_default();
        assert_eq!(
            labels.get(LABEL_MANAGED_BY).map(String::as_str),
            Some("storefactory"),
            "{}",
            m.describe()
        );
        assert_eq!(
            labels.get(LABEL_STORE).map(String::as_str),
            Some("golden1"),
            "{}",
            m.describe()
        );
        assert_eq!(
            labels.get("app.kubernetes.io/instance").map(String::as_str),
            Some("store-golden1")
        );
        if m.is_namespaced() {
            assert_eq!(
                m.meta().namespace.as_deref(),
                Some("store-golden1"),
                "{}",
                m.describe()
            );
        }
    }
}

#[test]
fn pods_are_hardened() {
    let manifests = render(&spec());
    let pods = pod_specs(&manifests);
    assert_eq!(pods.len(), 3);
    for (what, pod) in pods {
        assert_eq!(pod.automount_service_account_token, Some(false), "{what}");
        let pod_sc = pod.security_context.clone().unwrap();
        assert_eq!(
            pod_sc.seccomp_profile.unwrap().type_,
            "RuntimeDefault",
            "{what}"
        );
        for container in pod
            .containers
            .iter()
            .chain(pod.init_containers.iter().flatten())
        {
            let sc = container.security_context.clone().unwrap();
            assert_eq!(sc.allow_privilege_escalation, Some(false), "{what}");
            let caps = sc.capabilities.unwrap();
            assert_eq!(caps.drop, Some(vec!["ALL".to_owned()]), "{what}");
            let limits = container.resources.clone().unwrap().limits.unwrap();
            assert!(
                limits.contains_key("cpu") && limits.contains_key("memory"),
                "{what}"
            );
            for port in container.ports.iter().flatten() {
                assert_eq!(
                    port.protocol.as_deref(),
                    Some("TCP"),
                    "{what}: v1.20 apply needs it"
                );
            }
        }
    }
}

#[test]
fn the_three_passwords_go_to_their_own_secrets() {
    static BUILTIN: std::sync::LazyLock<BlueprintRegistry> =
        std::sync::LazyLock::new(|| BlueprintRegistry::builtin().unwrap());
    let inputs = SecretInputs::none();
    let generated = BUILTIN
        .render(DEFAULT_BLUEPRINT, &spec(), SecretValues::Generate(&inputs))
        .unwrap();
    let value = |name: &str, key: &str| {
        let Manifest::Secret(secret) = find(&generated, "Secret", name) else {
            unreachable!()
        };
        String::from_utf8(secret.data.as_ref().unwrap()[key].0.clone()).unwrap()
    };
    let passwords = [
        value("mysql", "root-password"),
        value("mysql", "password"),
        value("wordpress-admin", "password"),
    ];
    let distinct: BTreeSet<_> = passwords.iter().collect();
    assert_eq!(distinct.len(), 3);
    assert!(passwords[0].len() >= 32);
    assert_eq!(value("wordpress-admin", "username"), "admin");

    let manifests = render(&spec());
    let Manifest::Secret(mysql) = find(&manifests, "Secret", "mysql") else {
        unreachable!()
    };
    let data = mysql.data.clone().unwrap();
    assert_eq!(data["root-password"].0, b"REPLACE_ME_mysql_root_password");
    assert_eq!(data["password"].0, b"REPLACE_ME_mysql_password");
    let Manifest::Secret(admin) = find(&manifests, "Secret", "wordpress-admin") else {
        unreachable!()
    };
    let data = admin.data.clone().unwrap();
    assert_eq!(data["password"].0, b"REPLACE_ME_wordpress_admin_password");
    assert_eq!(data["username"].0, b"admin");
}

#[test]
fn products_reach_the_seeding_step_as_json_data() {
    let mut spec = spec();
    spec.products = parse_products("--help|1|$(reboot)\nEvil\"|2|x: y\n  kind: Secret|3").unwrap();
    let manifests = render(&spec);
    let Manifest::ConfigMap(seed) = find(&manifests, "ConfigMap", "seed") else {
        unreachable!()
    };
    let data = seed.data.clone().unwrap();
    let products: serde_json::Value = serde_json::from_str(&data["products.json"]).unwrap();
    assert_eq!(products[0]["name"], "--help");
    assert_eq!(products[0]["description"], "$(reboot)");
    assert_eq!(products[1]["name"], "Evil\"");
    assert!(data["seed.sh"].starts_with("#!/bin/sh"));
    let Manifest::Job(job) = find(&manifests, "Job", "seed") else {
        unreachable!()
    };
    let pod = job.spec.clone().unwrap().template.spec.unwrap();
    assert_eq!(
        pod.containers[0].command,
        Some(vec!["sh".to_owned(), "/seed/seed.sh".to_owned()])
    );
    assert_eq!(
        pod.containers[0].args, None,
        "user text must not become arguments"
    );
    assert_eq!(job.spec.clone().unwrap().backoff_limit, Some(3));
}

#[test]
fn user_text_cannot_change_the_yaml_structure() {
    let mut spec = spec();
    spec.site_title =
        "Shop\"\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: x".replace('\n', " ");
    spec.site_title.push_str("\u{2028}kind: Secret # ");
    spec.ingress.annotations.insert(
        "example.com/note".to_owned(),
        "a\nb: c\n---\nkind: Namespace".to_owned(),
    );
    let baseline = render(&self::spec()).len();
    let manifests = render(&spec);
    assert_eq!(manifests.len(), baseline, "no object may be added");
    let Manifest::ConfigMap(seed) = find(&manifests, "ConfigMap", "seed") else {
        unreachable!()
    };
    assert_eq!(seed.data.clone().unwrap()["site-title"], spec.site_title);
    let ingress = find(&manifests, "Ingress", "wordpress");
    assert_eq!(
        ingress.meta().annotations.clone().unwrap()["example.com/note"],
        "a\nb: c\n---\nkind: Namespace"
    );
}

#[test]
fn ingress_class_and_tls_are_configurable() {
    let mut spec = spec();
    spec.ingress.class = Some("traefik".to_owned());
    spec.ingress.tls = Some(TlsSpec::ClusterIssuer("letsencrypt-prod".to_owned()));
    spec.storage_class = Some("local-path".to_owned());
    let manifests = render(&spec);
    let Manifest::Ingress(ingress) = find(&manifests, "Ingress", "wordpress") else {
        unreachable!()
    };
    let ingress_spec = ingress.spec.clone().unwrap();
    assert_eq!(ingress_spec.ingress_class_name.as_deref(), Some("traefik"));
    let tls = ingress_spec.tls.unwrap();
    assert_eq!(tls[0].secret_name.as_deref(), Some("store-tls"));
    assert_eq!(
        tls[0].hosts,
        Some(vec!["store-golden1.storefactory.local".to_owned()])
    );
    assert_eq!(
        ingress.metadata.annotations.clone().unwrap()["cert-manager.io/cluster-issuer"],
        "letsencrypt-prod"
    );
    let Manifest::PersistentVolumeClaim(pvc) =
        find(&manifests, "PersistentVolumeClaim", "wordpress")
    else {
        unreachable!()
    };
    assert_eq!(
        pvc.spec.clone().unwrap().storage_class_name.as_deref(),
        Some("local-path")
    );
    assert_eq!(spec.url(), "https://store-golden1.storefactory.local/");
}

#[test]
fn network_policies_can_be_turned_off() {
    let mut spec = spec();
    spec.network_policy.enabled = false;
    assert!(render(&spec).iter().all(|m| m.kind() != "NetworkPolicy"));
}

#[test]
fn invalid_specs_are_rejected_before_rendering() {
    let mut spec = spec();
    spec.ingress.host = "Not A Host".to_owned();
    let err = BlueprintRegistry::builtin()
        .unwrap()
        .render(DEFAULT_BLUEPRINT, &spec, fixed_secrets())
        .unwrap_err();
    assert!(
        matches!(err, Error::Invalid(ref v) if v.field == "ingress.host"),
        "{err}"
    );
}

/// The rendered woocommerce blueprint, reviewed like code. Regenerate with
/// `UPDATE_GOLDEN=1 cargo test -p storefactory-core --test blueprint`.
#[test]
fn woocommerce_matches_its_golden_file() {
    let manifests = render(&spec());
    let values: Vec<_> = manifests.iter().map(Manifest::to_value).collect();
    let rendered = storefactory_core::yaml::to_string(&values).unwrap();
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/woocommerce.yaml");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &rendered).unwrap();
    }
    let golden = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        golden == rendered,
        "rendered blueprint differs from {}; review and regenerate with UPDATE_GOLDEN=1",
        path.display()
    );
}

// --- suspended stores -----------------------------------------------------------------------

fn render_in(spec: &StoreSpec, state: &RenderState) -> Vec<Manifest> {
    BlueprintRegistry::builtin()
        .unwrap()
        .render_in(DEFAULT_BLUEPRINT, spec, fixed_secrets(), state)
        .unwrap()
}

fn backend() -> Option<PausedBackend> {
    Some(
        "storefactory.platform.svc.cluster.local:8080"
            .parse()
            .unwrap(),
    )
}

fn replicas_of(manifests: &[Manifest]) -> Vec<(String, Option<i32>)> {
    manifests
        .iter()
        .filter_map(|m| match m {
            Manifest::Deployment(d) => Some((m.describe(), d.spec.as_ref()?.replicas)),
            Manifest::StatefulSet(s) => Some((m.describe(), s.spec.as_ref()?.replicas)),
            _ => None,
        })
        .collect()
}

fn backend_of(manifests: &[Manifest]) -> String {
    let Manifest::Ingress(ingress) = find(manifests, "Ingress", "wordpress") else {
        unreachable!()
    };
    let rules = ingress.spec.as_ref().unwrap().rules.as_ref().unwrap();
    let path = &rules[0].http.as_ref().unwrap().paths[0];
    path.backend.service.as_ref().unwrap().name.clone()
}

#[test]
fn a_suspended_store_renders_its_workloads_at_zero_and_its_host_paused() {
    let running = render_in(
        &spec(),
        &RenderState {
            paused_backend: backend(),
            ..RenderState::default()
        },
    );
    let suspended = render_in(
        &spec(),
        &RenderState {
            suspended: true,
            paused: true,
            paused_backend: backend(),
        },
    );
    let resuming = render_in(
        &spec(),
        &RenderState {
            suspended: false,
            paused: true,
            paused_backend: backend(),
        },
    );
    assert!(replicas_of(&running).iter().all(|(_, r)| *r == Some(1)));
    assert_eq!(replicas_of(&suspended).len(), 2);
    assert!(
        replicas_of(&suspended).iter().all(|(_, r)| *r == Some(0)),
        "{:?}",
        replicas_of(&suspended)
    );
    assert_eq!(replicas_of(&resuming), replicas_of(&running));
    assert_eq!(backend_of(&running), "wordpress");
    assert_eq!(backend_of(&suspended), "storefactory-paused");
    assert_eq!(backend_of(&resuming), "storefactory-paused");
    // The same objects in every state: only fields change, nothing has to be removed.
    let names = |m: &[Manifest]| m.iter().map(Manifest::describe).collect::<Vec<_>>();
    assert_eq!(names(&running), names(&suspended));
    // Without a paused backend, the Ingress keeps its backend and no Service is added.
    let plain = render_in(
        &spec(),
        &RenderState {
            suspended: true,
            paused: true,
            paused_backend: None,
        },
    );
    assert_eq!(backend_of(&plain), "wordpress");
    assert!(
        !plain
            .iter()
            .any(|m| m.kind() == "Service" && m.name() == "storefactory-paused")
    );
    assert_eq!(names(&render(&spec())), names(&plain));

    // What suspending changes, reviewed like code.
    let changed: Vec<_> = suspended
        .iter()
        .filter(|m| !running.iter().any(|r| r.to_value() == m.to_value()))
        .chain(
            suspended
                .iter()
                .filter(|m| m.kind() == "Service" && m.name() == "storefactory-paused"),
        )
        .map(Manifest::to_value)
        .collect();
    let rendered = storefactory_core::yaml::to_string(&changed).unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/woocommerce-suspended.yaml");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &rendered).unwrap();
    }
    let golden = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        golden == rendered,
        "suspended render differs from {}; review and regenerate with UPDATE_GOLDEN=1",
        path.display()
    );
}

#[test]
fn a_paused_backend_is_a_host_and_a_port() {
    let backend: PausedBackend = "Storefactory.platform.svc:8080".parse().unwrap();
    assert_eq!(backend.host, "storefactory.platform.svc");
    assert_eq!(backend.port, 8080);
    assert_eq!(backend.to_string(), "storefactory.platform.svc:8080");
    for bad in [
        "storefactory",
        "storefactory:0",
        "storefactory:http",
        "bad_host:80",
        ":80",
    ] {
        assert!(bad.parse::<PausedBackend>().is_err(), "{bad}");
    }
}

#[test]
fn a_blueprint_cannot_be_suspended_unless_it_scales_every_workload() {
    let blueprint = |lifecycle: &str| {
        let metadata = format!("description: Two workloads.\nlifecycle:\n{lifecycle}");
        let template = "\
apiVersion: v1
kind: Namespace
metadata:
  name: {{namespace}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: {{namespace}}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: cache, namespace: {{namespace}}}
spec:
  selector: {matchLabels: {app: cache}}
  template:
    metadata: {labels: {app: cache}}
    spec: {containers: [{name: cache, image: redis}]}
";
        let mut registry = BlueprintRegistry::empty();
        registry
            .register_blueprint(
                Blueprint::from_files(
                    "two",
                    [
                        ("blueprint.yaml", metadata.as_str()),
                        ("00.yaml.hbs", template),
                    ],
                )
                .unwrap(),
            )
            .unwrap();
        registry
    };
    let suspended = RenderState {
        suspended: true,
        paused: true,
        paused_backend: None,
    };
    let render = |registry: &BlueprintRegistry| {
        registry.render_in("two", &spec(), fixed_secrets(), &suspended)
    };
    let none = render(&blueprint("  ready: []\n")).unwrap_err().to_string();
    assert!(none.contains("cannot be suspended"), "{none}");
    let partial = render(&blueprint("  suspend: [{kind: Deployment, name: web}]\n"))
        .unwrap_err()
        .to_string();
    assert!(
        partial.contains("Deployment")
            && partial.contains("cache")
            && partial.contains("keep its pods"),
        "{partial}"
    );
    let unknown = render(&blueprint(
        "  suspend: [{kind: Deployment, name: web}, {kind: Deployment, name: cache}, \
         {kind: StatefulSet, name: db}]\n",
    ))
    .unwrap_err()
    .to_string();
    assert!(unknown.contains("does not render"), "{unknown}");
    let all = render(&blueprint(
        "  suspend: [{kind: Deployment, name: web}, {kind: Deployment, name: cache}]\n",
    ))
    .unwrap();
    assert!(
        replicas_of(&all).iter().all(|(_, r)| *r == Some(0)),
        "{:?}",
        replicas_of(&all)
    );
}

// --- the plugin interface -------------------------------------------------------------------

mod helpers {
    #![allow(missing_docs)]
    handlebars::handlebars_helper!(shout: |value: str| value.to_uppercase());
}
use helpers::shout;

fn custom_blueprint(template: &str) -> Result<Blueprint, Error> {
    Blueprint::from_files(
        "greeting",
        [
            (
                "blueprint.yaml",
                "description: A greeting.\nparameters:\n  greeting:\n    description: What to say.\n    default: hello\n",
            ),
            ("00-config.yaml.hbs", template),
        ],
    )
}

#[test]
fn embedders_register_helpers_and_blueprints() {
    let mut registry = BlueprintRegistry::builtin().unwrap();
    registry.register_helper("shout", Box::new(shout));
    registry
        .register_blueprint(
            custom_blueprint(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: greeting\n  namespace: {{namespace}}\ndata:\n  text: {{shout params.greeting}}\n  title: {{shout store.site_title}}\n",
            )
            .unwrap(),
        )
        .unwrap();
    assert_eq!(
        registry.names().collect::<Vec<_>>(),
        ["greeting", "woocommerce"]
    );
    let mut spec = spec();
    spec.params
        .insert("greeting".to_owned(), "good: day # x".to_owned());
    let manifests = registry.render("greeting", &spec, fixed_secrets()).unwrap();
    let Manifest::ConfigMap(cm) = &manifests[0] else {
        panic!("not a ConfigMap")
    };
    let data = cm.data.clone().unwrap();
    assert_eq!(
        data["text"], "GOOD: DAY # X",
        "helper output is quoted like any value"
    );
    assert_eq!(data["title"], "ALICE'S SHOP");
    assert_eq!(cm.metadata.labels.clone().unwrap()[LABEL_STORE], "golden1");

    spec.params.insert("colour".to_owned(), "red".to_owned());
    let err = registry
        .render("greeting", &spec, fixed_secrets())
        .unwrap_err();
    assert!(err.to_string().contains("params.colour"), "{err}");
}

#[test]
fn a_misspelt_key_in_a_template_is_an_error() {
    let mut registry = BlueprintRegistry::empty();
    registry
        .register_blueprint(
            custom_blueprint("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: {{namespace}}\n  lables:\n    a: b\n").unwrap(),
        )
        .unwrap();
    let err = registry
        .render("greeting", &spec(), fixed_secrets())
        .unwrap_err();
    let Error::ParseManifest { message, .. } = &err else {
        panic!("{err}")
    };
    assert!(message.contains("metadata.lables"), "{message}");
}

#[test]
fn a_missing_value_is_an_error_in_strict_mode() {
    let mut registry = BlueprintRegistry::empty();
    registry
        .register_blueprint(
            custom_blueprint("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{store.nmae}}\n  namespace: {{namespace}}\n").unwrap(),
        )
        .unwrap();
    let err = registry
        .render("greeting", &spec(), fixed_secrets())
        .unwrap_err();
    assert!(matches!(err, Error::RenderTemplate { .. }), "{err}");
}

#[test]
fn templates_may_not_disable_quoting_or_leave_the_store() {
    let err = custom_blueprint("data: {{{store.site_title}}}\n").unwrap_err();
    assert!(err.to_string().contains("disables YAML quoting"), "{err}");

    let mut registry = BlueprintRegistry::empty();
    registry
        .register_blueprint(
            custom_blueprint(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: kube-system\n",
            )
            .unwrap(),
        )
        .unwrap();
    let err = registry
        .render("greeting", &spec(), fixed_secrets())
        .unwrap_err();
    assert!(
        err.to_string().contains("rendered an invalid object"),
        "{err}"
    );
}

#[test]
fn a_directory_overrides_and_adds_blueprints() {
    let dir = tempfile::tempdir().unwrap();
    let custom = dir.path().join("woocommerce");
    std::fs::create_dir_all(&custom).unwrap();
    std::fs::write(
        custom.join("blueprint.yaml"),
        "description: Only a namespace.\n",
    )
    .unwrap();
    std::fs::write(
        custom.join("00-namespace.yaml.hbs"),
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {{namespace}}\n",
    )
    .unwrap();
    let mut registry = BlueprintRegistry::builtin().unwrap();
    let loaded = registry.load_dir(dir.path()).unwrap();
    assert_eq!(loaded, ["woocommerce"]);
    let manifests = registry
        .render(DEFAULT_BLUEPRINT, &spec(), fixed_secrets())
        .unwrap();
    assert_eq!(manifests.len(), 1);
    assert_eq!(
        registry.get(DEFAULT_BLUEPRINT).unwrap().meta().description,
        "Only a namespace."
    );
}

// --- hostile input -------------------------------------------------------------------------

/// The rendered objects with every string replaced by a marker: what user text must not be
/// able to change.
fn shape(manifests: &[Manifest]) -> Vec<serde_json::Value> {
    fn strip(value: &serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::String(_) => serde_json::Value::String("*".to_owned()),
            serde_json::Value::Array(items) => items.iter().map(strip).collect(),
            serde_json::Value::Object(map) => map
                .iter()
                .map(|(k, v)| (k.clone(), strip(v)))
                .collect::<serde_json::Map<_, _>>()
                .into(),
            other => other.clone(),
        }
    }
    manifests.iter().map(|m| strip(&m.to_value())).collect()
}

const HOSTILE: &[&str] = &[
    "\"quoted\" 'single'",
    "line\nbreak",
    "key: value",
    "# not a comment",
    "---",
    "...",
    "{{store.id}} {{{raw}}} {{> partial}}",
    "--exec=rm -rf /",
    "$(reboot) `id` ${HOME}",
    "; rm -rf / #",
    "ünïcödé ✓ 🛒 中文 \u{2028} \u{2029} \u{feff}",
    "- [a, b]\n- {c: d}",
    "&anchor *alias !!binary",
    "| literal\n> folded",
    "\\\\ back\\slash",
];

fn products_json(manifests: &[Manifest]) -> String {
    let Manifest::ConfigMap(seed) = find(manifests, "ConfigMap", "seed") else {
        unreachable!()
    };
    seed.data.clone().unwrap()["products.json"].clone()
}

#[test]
fn hostile_product_text_reaches_the_seeding_data_byte_for_byte() {
    let baseline = render(&spec());
    let mut hostile = spec();
    hostile.products = HOSTILE
        .iter()
        .enumerate()
        .map(|(i, text)| storefactory_core::product::Product {
            name: text.replace('\n', " "),
            price: storefactory_core::product::Price::parse(&format!("{i}.99")).unwrap(),
            description: format!("{text} {}", "long ".repeat(390)),
        })
        .collect();
    hostile.site_title = HOSTILE[0..4].concat().replace('\n', " ");
    let manifests = render(&hostile);
    assert_eq!(
        manifests.iter().map(Manifest::describe).collect::<Vec<_>>(),
        baseline.iter().map(Manifest::describe).collect::<Vec<_>>(),
        "the set and kinds of objects must not change"
    );
    assert_eq!(
        shape(&manifests),
        shape(&baseline),
        "the structure must not change"
    );
    let seeded: Vec<storefactory_core::product::Product> =
        serde_json::from_str(&products_json(&manifests)).unwrap();
    assert_eq!(
        seeded, hostile.products,
        "products must arrive byte for byte"
    );
}

/// A property test with a fixed seed: random mixtures of hostile fragments, as names,
/// descriptions, titles and annotation values, never change the objects' structure and always
/// arrive unchanged.
#[test]
fn random_hostile_mixtures_never_change_the_structure() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x0057_002e);
    let baseline_shape = shape(&render(&spec()));
    for _ in 0..200 {
        let mut text = String::new();
        for _ in 0..rng.random_range(1..6) {
            text.push_str(HOSTILE[rng.random_range(0..HOSTILE.len())]);
            if rng.random_bool(0.3) {
                // Control characters (and bidi overrides) are refused by validation;
                // everything else must pass.
                let c = char::from_u32(rng.random_range(0x20..0x2FFF)).unwrap_or('x');
                let allowed = storefactory_core::product::is_allowed_in_text(c) && c != '\t';
                text.push(if allowed { c } else { 'x' });
            }
        }
        let mut spec = spec();
        spec.products[0].description = text.clone();
        spec.products[1].name = text.replace('\n', " ").chars().take(200).collect();
        spec.site_title = spec.products[1].name.clone();
        let manifests = render(&spec);
        assert_eq!(
            shape(&manifests),
            baseline_shape,
            "structure changed for {text:?}"
        );
        let seeded: Vec<storefactory_core::product::Product> =
            serde_json::from_str(&products_json(&manifests)).unwrap();
        assert_eq!(seeded, spec.products);
    }
}

#[test]
fn invalid_specs_fail_with_clear_messages() {
    let cases: &[(&str, &str)] = &[
        (r#"{"id":"Bad_Id","owner":"a"}"#, "not a DNS-1123 label"),
        (
            r#"{"id":"ok","owner":"a","ingress":{"host":"bad host"}}"#,
            "ingress.host",
        ),
        (
            r#"{"id":"ok","owner":"a","wordpress":{"storage":"2 GB"}}"#,
            "not a Kubernetes quantity",
        ),
        (
            r#"{"id":"ok","owner":"a","products":[{"name":"x","price":"-1"}]}"#,
            "non-negative",
        ),
    ];
    for (json, expected) in cases {
        let message = match serde_json::from_str::<StoreSpec>(json) {
            Err(e) => e.to_string(),
            Ok(spec) => {
                BlueprintRegistry::builtin()
                    .unwrap()
                    .render(DEFAULT_BLUEPRINT, &spec, fixed_secrets())
                    .unwrap_err()
                    .to_string()
                    + &format!("{:?}", spec.validate())
            }
        };
        assert!(message.contains(expected), "{json}: {message}");
    }
    let err = parse_products("Good|1|ok\nno price here").unwrap_err();
    assert_eq!(
        err.to_string(),
        "sample_products line 2: expected Name|Price|Description, got \"no price here\""
    );
}

/// Whether a NetworkPolicy's pod selector picks pods labelled `app.kubernetes.io/name: app`
/// (the selectors this blueprint uses: match labels and `In` expressions).
fn selects(
    selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    labels: &[(&str, &str)],
) -> bool {
    let label = |key: &str| labels.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    let by_labels = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| label(k) == Some(v.as_str()));
    let by_expressions = selector.match_expressions.iter().flatten().all(|e| {
        assert_eq!(e.operator, "In", "only In expressions are understood here");
        label(&e.key).is_some_and(|v| e.values.iter().flatten().any(|x| x == v))
    });
    by_labels && by_expressions
}

/// The egress rules that apply to pods named `app`, with their policy's name.
fn egress_of(
    manifests: &[Manifest],
    app: &str,
) -> Vec<(
    String,
    k8s_openapi::api::networking::v1::NetworkPolicyEgressRule,
)> {
    manifests
        .iter()
        .filter_map(|m| match m {
            Manifest::NetworkPolicy(p) => Some(p),
            _ => None,
        })
        .filter_map(|p| {
            let spec = p.spec.as_ref()?;
            let selector = spec.pod_selector.clone().unwrap_or_default();
            selects(&selector, &[("app.kubernetes.io/name", app)]).then(|| {
                spec.egress
                    .iter()
                    .flatten()
                    .map(|rule| (p.metadata.name.clone().unwrap_or_default(), rule.clone()))
                    .collect::<Vec<_>>()
            })
        })
        .flatten()
        .collect()
}

fn cidrs_of(
    rules: &[(
        String,
        k8s_openapi::api::networking::v1::NetworkPolicyEgressRule,
    )],
) -> Vec<String> {
    rules
        .iter()
        .flat_map(|(_, rule)| rule.to.iter().flatten())
        .filter_map(|peer| peer.ip_block.as_ref().map(|b| b.cidr.clone()))
        .collect()
}

#[test]
fn wordpress_reaches_no_address_range_by_default_and_only_the_allowed_ones_when_configured() {
    let manifests = render(&spec());
    let wordpress = egress_of(&manifests, "wordpress");
    assert!(
        !wordpress.is_empty(),
        "WordPress has egress rules (DNS, MySQL)"
    );
    assert_eq!(cidrs_of(&wordpress), Vec::<String>::new(), "{wordpress:#?}");
    // Every peer WordPress may reach is a pod (MySQL, the cluster DNS), none "anything".
    for (policy, rule) in &wordpress {
        let peers = rule.to.as_deref().unwrap_or_default();
        assert!(
            !peers.is_empty(),
            "{policy}: a rule without peers allows every address"
        );
        for peer in peers {
            assert!(peer.pod_selector.is_some(), "{policy}: {peer:?}");
        }
    }
    // MySQL reaches nothing but the DNS.
    let mysql = egress_of(&manifests, "mysql");
    assert_eq!(
        mysql
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>(),
        ["allow-dns"]
    );

    let mut spec = spec();
    spec.network_policy.wordpress_egress_cidrs =
        vec!["203.0.113.0/24".to_owned(), "2001:db8::/32".to_owned()];
    let manifests = render(&spec);
    let wordpress = egress_of(&manifests, "wordpress");
    assert_eq!(cidrs_of(&wordpress), ["203.0.113.0/24", "2001:db8::/32"]);
    let (_, rule) = wordpress
        .iter()
        .find(|(name, _)| name == "allow-wordpress-egress")
        .expect("the allow-list policy");
    let ports: Vec<i32> = rule
        .ports
        .iter()
        .flatten()
        .filter_map(|p| match &p.port {
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n)) => Some(*n),
            _ => None,
        })
        .collect();
    assert_eq!(ports, [80, 443]);
    // The seeding step is not widened by WordPress' list, nor narrowed.
    assert_eq!(cidrs_of(&egress_of(&manifests, "seed")), ["0.0.0.0/0"]);
}

#[test]
fn only_the_seeding_step_reaches_the_internet_and_never_private_or_metadata_ranges() {
    let manifests = render(&spec());
    let seed = egress_of(&manifests, "seed");
    let internet: Vec<_> = seed
        .iter()
        .flat_map(|(_, rule)| rule.to.iter().flatten())
        .filter_map(|peer| peer.ip_block.clone())
        .collect();
    assert_eq!(internet.len(), 1, "{seed:#?}");
    assert_eq!(internet[0].cidr, "0.0.0.0/0");
    let except: BTreeSet<&str> = internet[0]
        .except
        .iter()
        .flatten()
        .map(String::as_str)
        .collect();
    for closed in [
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "127.0.0.0/8",
    ] {
        assert!(except.contains(closed), "{closed} is reachable: {except:?}");
    }

    let mut spec = spec();
    spec.network_policy.allow_internet_egress = false;
    let manifests = render(&spec);
    for app in ["seed", "wordpress", "mysql"] {
        assert_eq!(cidrs_of(&egress_of(&manifests, app)), Vec::<String>::new());
    }
}

#[test]
fn name_lookups_go_to_the_cluster_dns_pods_only() {
    let manifests = render(&spec());
    let Manifest::NetworkPolicy(dns) = find(&manifests, "NetworkPolicy", "allow-dns") else {
        unreachable!()
    };
    let rules = dns.spec.as_ref().unwrap().egress.clone().unwrap();
    assert_eq!(rules.len(), 1);
    let peers = rules[0].to.clone().unwrap();
    assert_eq!(peers.len(), 1, "one peer: namespace AND pod selector");
    let peer = &peers[0];
    assert!(peer.ip_block.is_none());
    let namespaces = peer
        .namespace_selector
        .clone()
        .expect("a namespace selector");
    assert!(selects(
        &namespaces,
        &[("kubernetes.io/metadata.name", "kube-system")]
    ));
    assert!(!selects(
        &namespaces,
        &[("kubernetes.io/metadata.name", "store-other")]
    ));
    let pods = peer.pod_selector.clone().expect("a pod selector");
    assert!(selects(&pods, &[("k8s-app", "kube-dns")]));
    assert!(!selects(&pods, &[("app", "evil-dns")]));
    assert!(!selects(&pods, &[]));
    let ports: BTreeSet<(String, String)> = rules[0]
        .ports
        .iter()
        .flatten()
        .map(|p| {
            (
                format!("{:?}", p.port),
                p.protocol.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(ports.len(), 2, "53 over UDP and TCP: {ports:?}");

    // Clusters whose DNS pods live elsewhere say so with blueprint parameters.
    let mut spec = spec();
    spec.params
        .insert("dns_namespace".to_owned(), "dns".to_owned());
    spec.params
        .insert("dns_k8s_app".to_owned(), "coredns".to_owned());
    let manifests = render(&spec);
    let Manifest::NetworkPolicy(dns) = find(&manifests, "NetworkPolicy", "allow-dns") else {
        unreachable!()
    };
    let peer = dns.spec.clone().unwrap().egress.unwrap()[0]
        .to
        .clone()
        .unwrap()[0]
        .clone();
    assert!(selects(
        &peer.namespace_selector.unwrap(),
        &[("kubernetes.io/metadata.name", "dns")]
    ));
    assert!(selects(
        &peer.pod_selector.unwrap(),
        &[("k8s-app", "coredns")]
    ));
}

#[test]
fn node_disk_is_limited_by_the_quota_and_the_limit_defaults() {
    let manifests = render(&spec());
    let Manifest::ResourceQuota(quota) = find(&manifests, "ResourceQuota", "store-quota") else {
        unreachable!()
    };
    let hard = quota.spec.clone().unwrap().hard.unwrap();
    assert_eq!(hard["limits.ephemeral-storage"].0, "4Gi");
    assert_eq!(hard["requests.ephemeral-storage"].0, "4Gi");
    let Manifest::LimitRange(limits) = find(&manifests, "LimitRange", "store-limits") else {
        unreachable!()
    };
    let container = &limits.spec.clone().unwrap().limits[0];
    assert_eq!(
        container.default.clone().unwrap()["ephemeral-storage"].0,
        "1Gi"
    );
    assert_eq!(
        container.default_request.clone().unwrap()["ephemeral-storage"].0,
        "100Mi"
    );
    // Every container of the store fits under the quota at its default limit.
    let containers: usize = pod_specs(&manifests)
        .iter()
        .map(|(_, pod)| pod.containers.len() + pod.init_containers.as_ref().map_or(0, Vec::len))
        .sum();
    assert!(
        containers as u64 <= 4,
        "{containers} containers of 1Gi in 4Gi"
    );

    let mut spec = spec();
    spec.quota.default_ephemeral_storage_request = storefactory_core::spec::Quantity::gib(2);
    assert!(
        BlueprintRegistry::builtin()
            .unwrap()
            .render(DEFAULT_BLUEPRINT, &spec, fixed_secrets())
            .is_err()
    );
}

/// The checks of the "restricted" Pod Security level (Kubernetes' Pod Security Standards)
/// that a pod template can fail, applied to every pod of the store: the namespace enforces
/// that level, so a pod failing one would not be admitted.
#[test]
fn every_pod_meets_the_restricted_pod_security_level_which_the_namespace_enforces() {
    let manifests = render(&spec());
    let Manifest::Namespace(namespace) = &manifests[0] else {
        panic!("the namespace comes first")
    };
    let labels = namespace.metadata.labels.clone().unwrap();
    assert_eq!(labels["pod-security.kubernetes.io/enforce"], "restricted");
    let pods = pod_specs(&manifests);
    assert_eq!(pods.len(), 3);
    for (what, pod) in pods {
        let pod_sc = pod.security_context.clone().unwrap_or_default();
        assert!(
            pod.host_network != Some(true) && pod.host_pid != Some(true),
            "{what}"
        );
        assert!(pod.host_ipc != Some(true), "{what}");
        for volume in pod.volumes.iter().flatten() {
            let allowed = volume.config_map.is_some()
                || volume.persistent_volume_claim.is_some()
                || volume.secret.is_some()
                || volume.empty_dir.is_some()
                || volume.projected.is_some()
                || volume.downward_api.is_some();
            assert!(
                allowed,
                "{what}: volume {} is not of an allowed type",
                volume.name
            );
        }
        assert!(pod_sc.sysctls.is_none(), "{what}");
        for container in pod
            .containers
            .iter()
            .chain(pod.init_containers.iter().flatten())
        {
            let sc = container.security_context.clone().unwrap_or_default();
            let non_root = sc.run_as_non_root.or(pod_sc.run_as_non_root);
            assert_eq!(non_root, Some(true), "{what}: runAsNonRoot");
            let uid = sc.run_as_user.or(pod_sc.run_as_user);
            assert!(
                uid.is_some_and(|u| u != 0),
                "{what}: a non-zero uid, {uid:?}"
            );
            assert_ne!(sc.privileged, Some(true), "{what}");
            assert_eq!(sc.allow_privilege_escalation, Some(false), "{what}");
            let caps = sc.capabilities.unwrap_or_default();
            assert_eq!(caps.drop, Some(vec!["ALL".to_owned()]), "{what}");
            assert!(
                caps.add.iter().flatten().all(|c| c == "NET_BIND_SERVICE"),
                "{what}: adds {:?}",
                caps.add
            );
            let seccomp = sc
                .seccomp_profile
                .or(pod_sc.seccomp_profile.clone())
                .expect("a seccomp profile");
            assert!(
                ["RuntimeDefault", "Localhost"].contains(&seccomp.type_.as_str()),
                "{what}"
            );
            for port in container.ports.iter().flatten() {
                assert!(port.host_port.is_none(), "{what}");
                assert!(port.container_port >= 1024, "{what}: an unprivileged port");
            }
        }
    }
}

// --- custom domains -------------------------------------------------------------------------

fn ingress_of(manifests: &[Manifest]) -> k8s_openapi::api::networking::v1::IngressSpec {
    let Manifest::Ingress(ingress) = find(manifests, "Ingress", "wordpress") else {
        unreachable!()
    };
    ingress.spec.clone().unwrap()
}

#[test]
fn custom_domains_are_rules_and_certificate_names_of_the_same_ingress() {
    let mut spec = spec();
    spec.ingress.tls = Some(TlsSpec::ClusterIssuer("letsencrypt-prod".to_owned()));
    spec.ingress.domains = vec!["shop.example.com".to_owned(), "www.example.com".to_owned()];
    let hosts = [
        "store-golden1.storefactory.local",
        "shop.example.com",
        "www.example.com",
    ];
    let running = render(&spec);
    let ingress = ingress_of(&running);
    let rules = ingress.rules.clone().unwrap();
    let rule_hosts: Vec<_> = rules.iter().map(|r| r.host.clone().unwrap()).collect();
    assert_eq!(
        rule_hosts, hosts,
        "the store's own host stays the first rule"
    );
    let backends: BTreeSet<_> = rules
        .iter()
        .map(|r| r.http.as_ref().unwrap().paths[0].clone())
        .map(|p| p.backend.service.unwrap().name)
        .collect();
    assert_eq!(backends, BTreeSet::from(["wordpress".to_owned()]));
    let tls = ingress.tls.clone().unwrap();
    assert_eq!(tls.len(), 1, "one certificate for every host");
    assert_eq!(tls[0].hosts.clone().unwrap(), hosts);
    assert_eq!(spec.url(), "https://store-golden1.storefactory.local/");

    // Paused: every host goes to the paused page, not only the store's own.
    let paused = render_in(
        &spec,
        &RenderState {
            suspended: true,
            paused: true,
            paused_backend: backend(),
        },
    );
    let paused_ingress = ingress_of(&paused);
    let paused_backends: Vec<_> = paused_ingress
        .rules
        .clone()
        .unwrap()
        .iter()
        .map(|r| r.http.as_ref().unwrap().paths[0].clone())
        .map(|p| p.backend.service.unwrap().name)
        .collect();
    assert_eq!(paused_backends, ["storefactory-paused"; 3]);

    // Without TLS, no TLS entry appears for the domains either.
    spec.ingress.tls = None;
    assert_eq!(ingress_of(&render(&spec)).tls, None);

    let ingresses: Vec<_> = [&running, &paused]
        .into_iter()
        .map(|m| find(m, "Ingress", "wordpress").to_value())
        .collect();
    let rendered = storefactory_core::yaml::to_string(&ingresses).unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/woocommerce-domains.yaml");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &rendered).unwrap();
    }
    let golden = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        golden == rendered,
        "the Ingress with custom domains differs from {}; review and regenerate with \
         UPDATE_GOLDEN=1",
        path.display()
    );
}

#[test]
fn hostile_custom_domains_never_reach_the_template() {
    for hostile in [
        "a.example, evil.example",
        "a.example]\n- b",
        "{{x}}.example",
    ] {
        let mut spec = spec();
        spec.ingress.domains = vec![hostile.to_owned()];
        let err = BlueprintRegistry::builtin()
            .unwrap()
            .render(DEFAULT_BLUEPRINT, &spec, fixed_secrets())
            .unwrap_err();
        assert!(
            matches!(err, Error::Invalid(ref v) if v.field == "ingress.domains"),
            "{hostile:?}: {err}"
        );
    }
}
