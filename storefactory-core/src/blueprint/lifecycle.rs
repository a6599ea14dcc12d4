//! What a blueprint declares about the life of its stores, as data in `blueprint.yaml`: which
//! workloads make a store ready (and what their failures mean), which Secrets are generated
//! once and never overwritten, and which credentials a store shows its owner.
//!
//! The Provisioner reads only this; it knows nothing of MySQL or WordPress.
//!
//! ```yaml
//! lifecycle:
//!   ready:
//!     - { kind: Deployment, name: web, step: web, message: The page is served }
//!   suspend:                 # scaled to zero while the store is suspended
//!     - { kind: Deployment, name: web }
//!   secrets:
//!     - name: admin
//!       keys:
//!         username: { from: store.wordpress.admin_user }
//!         password: { generate: 20, input: admin_password }
//!   credentials:
//!     secret: admin
//!     username_key: username
//!     password_key: password
//!     path: wp-admin/
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::manifest::Manifest;

/// The kinds whose status can make a store ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum WorkloadKind {
    /// Ready when its ready replicas reach the wanted replicas of the current generation.
    Deployment,
    /// Ready like a Deployment.
    StatefulSet,
    /// Ready when it completed; failed when it failed.
    Job,
}

impl WorkloadKind {
    /// The Kubernetes kind, e.g. `Deployment`.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::Job => "Job",
        }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One workload a store waits for, reported as a step when it becomes ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadyWhen {
    /// Its kind.
    pub kind: WorkloadKind,
    /// Its name in the store's namespace.
    pub name: String,
    /// The step's name in the store's events, e.g. `mysql`.
    pub step: String,
    /// What the step's event says when the workload is ready, e.g. `MySQL is ready`.
    pub message: String,
    /// What a failure of this Job means to a person, e.g. `seeding failed`; the Job's own
    /// reason follows. Only for Jobs; their failure fails the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Whether retrying a failed store replaces this Job so that it runs again.
    #[serde(default)]
    pub rerun_on_retry: bool,
    /// Whether changing a store replaces this Job so that it runs again, when what it runs
    /// with changed: its own object or a ConfigMap it reads. Declares that running it again
    /// is safe (it is idempotent).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rerun_on_change: bool,
}

/// A workload that suspending a store scales to zero replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuspendWorkload {
    /// `Deployment` or `StatefulSet`.
    pub kind: WorkloadKind,
    /// Its name in the store's namespace.
    pub name: String,
}

/// How one key of a generated Secret gets its value.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretKeySource {
    /// A random password of this many letters and digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate: Option<usize>,
    /// With `generate`: the name of a value the creator of the store may choose instead (at
    /// most once, at creation), e.g. `admin_password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// A value of the store's render context, by dotted path, e.g.
    /// `store.wordpress.admin_user`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

/// A Secret the engine creates once per store, and never overwrites: its passwords are what
/// the store's workloads were set up with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratedSecret {
    /// Its name in the store's namespace.
    pub name: String,
    /// Its keys and where their values come from.
    pub keys: BTreeMap<String, SecretKeySource>,
}

/// Which Secret keys a store's owner may read as the store's credentials, and where to use
/// them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsSpec {
    /// The Secret holding them (one of the generated ones).
    pub secret: String,
    /// The key of the user name.
    pub username_key: String,
    /// The key of the password.
    pub password_key: String,
    /// Appended to the store's URL to give the login address, e.g. `wp-admin/`.
    #[serde(default)]
    pub path: String,
}

/// A Job the engine renders on demand (a backup, a restore) from a template of the
/// blueprint's `jobs/` folder, which is not part of the store's own objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationJob {
    /// The template, e.g. `jobs/backup.yaml.hbs`. Besides what store templates see, it
    /// sees `job`: `id`, `name` (of every object it renders, and of the Job), `token_secret`
    /// (a Secret the engine creates, key `token`), `url` (where the Job hands over or
    /// fetches the archive) and `platform` (`namespace`, `port`: what its NetworkPolicy
    /// must let it reach).
    pub template: String,
}

/// The lifecycle a blueprint declares.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lifecycle {
    /// The workloads that make a store ready, in the order their steps are reported. A
    /// blueprint without any is ready as soon as its objects are applied.
    #[serde(default)]
    pub ready: Vec<ReadyWhen>,
    /// The Secrets generated once per store.
    #[serde(default)]
    pub secrets: Vec<GeneratedSecret>,
    /// What a store's owner may read; none when absent.
    #[serde(default)]
    pub credentials: Option<CredentialsSpec>,
    /// The workloads scaled to zero while a store is suspended. Together they must be every
    /// Deployment and StatefulSet the blueprint renders (a suspended store runs no pod),
    /// which rendering a suspended store checks. A blueprint without any cannot be
    /// suspended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suspend: Vec<SuspendWorkload>,
    /// How a store is backed up: a Job that hands its data to the platform. A blueprint
    /// without one cannot be backed up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<OperationJob>,
    /// How a backup is restored into a store: a Job that fetches it from the platform. Its
    /// template also sees `job.backup` (`id`, `sha256`) and `job.old_url`/`job.new_url` (a
    /// rewrite of the site's URL, empty when there is none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<OperationJob>,
}

/// Longest generated password.
const MAX_GENERATED: usize = 256;

impl Lifecycle {
    /// Checks that the declaration is consistent: every key has exactly one source, inputs
    /// are unique, credentials name a generated Secret's keys.
    pub fn check(&self) -> Result<(), String> {
        let mut inputs = BTreeSet::new();
        let mut names = BTreeSet::new();
        for secret in &self.secrets {
            if !crate::spec::is_dns1123_subdomain(&secret.name) {
                return Err(format!("secret {:?} is not a valid name", secret.name));
            }
            if !names.insert(secret.name.as_str()) {
                return Err(format!("secret {} is declared twice", secret.name));
            }
            if secret.keys.is_empty() {
                return Err(format!("secret {} has no keys", secret.name));
            }
            for (key, source) in &secret.keys {
                let at = format!("secret {} key {key}", secret.name);
                match (source.generate, &source.from) {
                    (Some(length), None) if (8..=MAX_GENERATED).contains(&length) => {}
                    (Some(_), None) => {
                        return Err(format!(
                            "{at}: generate takes a length from 8 to {MAX_GENERATED}"
                        ));
                    }
                    (None, Some(_)) if source.input.is_none() => {}
                    _ => {
                        return Err(format!(
                            "{at}: give either `generate: <length>` (optionally with `input`) \
                             or `from: <path>`"
                        ));
                    }
                }
                if let Some(input) = &source.input
                    && !inputs.insert(input.as_str())
                {
                    return Err(format!("input {input} is declared twice"));
                }
            }
        }
        let mut steps = BTreeSet::new();
        for ready in &self.ready {
            if !steps.insert(ready.step.as_str()) {
                return Err(format!("step {} is declared twice", ready.step));
            }
            if ready.kind != WorkloadKind::Job
                && (ready.failure.is_some() || ready.rerun_on_retry || ready.rerun_on_change)
            {
                return Err(format!(
                    "{} {}: failure, rerun_on_retry and rerun_on_change are for Jobs only",
                    ready.kind, ready.name
                ));
            }
        }
        let mut suspended = BTreeSet::new();
        for workload in &self.suspend {
            if workload.kind == WorkloadKind::Job {
                return Err(format!(
                    "suspend: Job {} cannot be scaled; list Deployments and StatefulSets",
                    workload.name
                ));
            }
            if !suspended.insert((workload.kind, workload.name.as_str())) {
                return Err(format!(
                    "suspend: {} {} is declared twice",
                    workload.kind, workload.name
                ));
            }
        }
        if let Some(credentials) = &self.credentials {
            let secret = self.secret(&credentials.secret).ok_or_else(|| {
                format!("credentials: no generated secret {}", credentials.secret)
            })?;
            for key in [&credentials.username_key, &credentials.password_key] {
                if !secret.keys.contains_key(key) {
                    return Err(format!(
                        "credentials: secret {} has no key {key}",
                        credentials.secret
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether stores of this blueprint can be suspended.
    pub fn can_suspend(&self) -> bool {
        !self.suspend.is_empty()
    }

    /// Whether suspending scales the workload `kind`/`name` to zero.
    pub fn suspends(&self, kind: WorkloadKind, name: &str) -> bool {
        self.suspend
            .iter()
            .any(|w| w.kind == kind && w.name == name)
    }

    /// A generated Secret by name.
    pub fn secret(&self, name: &str) -> Option<&GeneratedSecret> {
        self.secrets.iter().find(|s| s.name == name)
    }

    /// Whether `name` is one of the generated Secrets.
    pub fn generates(&self, name: &str) -> bool {
        self.secret(name).is_some()
    }

    /// The values a store's creator may choose, by name.
    pub fn inputs(&self) -> impl Iterator<Item = &str> {
        self.secrets
            .iter()
            .flat_map(|s| s.keys.values())
            .filter_map(|k| k.input.as_deref())
    }

    /// Checks values chosen at creation: each must be a declared input, of 12 to 128
    /// characters without control characters.
    pub fn check_inputs(&self, inputs: &SecretInputs) -> Result<(), ValidationError> {
        for (name, value) in &inputs.0 {
            if !self.inputs().any(|i| i == name) {
                let known: Vec<&str> = self.inputs().collect();
                return Err(ValidationError::new(
                    name.clone(),
                    if known.is_empty() {
                        "this blueprint takes no chosen secrets".to_owned()
                    } else {
                        format!(
                            "not a value this blueprint takes (it takes: {})",
                            known.join(", ")
                        )
                    },
                ));
            }
            let len = value.chars().count();
            if !(12..=128).contains(&len) {
                return Err(ValidationError::new(
                    name.clone(),
                    "must be between 12 and 128 characters",
                ));
            }
            if value.chars().any(char::is_control) {
                return Err(ValidationError::new(
                    name.clone(),
                    "must not contain control characters",
                ));
            }
        }
        Ok(())
    }
}

/// Values chosen by a store's creator for inputs of its generated Secrets, by input name
/// (e.g. `admin_password`). Debug output hides the values.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretInputs(pub BTreeMap<String, String>);

impl SecretInputs {
    /// No chosen values.
    pub fn none() -> Self {
        SecretInputs::default()
    }

    /// One chosen value.
    pub fn one(name: impl Into<String>, value: impl Into<String>) -> Self {
        SecretInputs(BTreeMap::from([(name.into(), value.into())]))
    }

    /// Whether nothing was chosen.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretInputs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// How generated values are filled in when Secrets are rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretValues<'a> {
    /// Fresh random passwords, or the chosen inputs.
    Generate(&'a SecretInputs),
    /// `REPLACE_ME_<secret>_<key>` for every generated value: for showing a store's objects.
    Placeholders,
}

/// Builds the generated Secrets of a store. `context` is the render context that `from`
/// paths are read from.
pub(crate) fn render_secrets(
    lifecycle: &Lifecycle,
    context: &serde_json::Value,
    namespace: &str,
    values: SecretValues<'_>,
) -> Result<Vec<Manifest>, String> {
    let mut manifests = Vec::new();
    for secret in &lifecycle.secrets {
        let mut data = BTreeMap::new();
        for (key, source) in &secret.keys {
            let value = match (source.generate, &source.from) {
                (_, Some(path)) => lookup(context, path).ok_or_else(|| {
                    format!("secret {} key {key}: {path} has no value", secret.name)
                })?,
                (Some(length), None) => match values {
                    SecretValues::Placeholders => format!(
                        "REPLACE_ME_{}_{}",
                        secret.name.replace('-', "_"),
                        key.replace('-', "_")
                    ),
                    SecretValues::Generate(inputs) => source
                        .input
                        .as_ref()
                        .and_then(|input| inputs.0.get(input))
                        .cloned()
                        .unwrap_or_else(|| crate::blueprint::generate_password(length)),
                },
                (None, None) => return Err(format!("secret {} key {key}: no source", secret.name)),
            };
            data.insert(key.clone(), ByteString(value.into_bytes()));
        }
        manifests.push(Manifest::Secret(Secret {
            metadata: ObjectMeta {
                name: Some(secret.name.clone()),
                namespace: Some(namespace.to_owned()),
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".to_owned()),
            data: Some(data),
            ..Secret::default()
        }));
    }
    Ok(manifests)
}

/// The scalar at a dotted path of a JSON value, as text.
fn lookup(context: &serde_json::Value, path: &str) -> Option<String> {
    let mut value = context;
    for part in path.split('.') {
        value = value.get(part)?;
    }
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lifecycle(yaml: &str) -> Lifecycle {
        crate::yaml::from_str(yaml).expect("lifecycle parses")
    }

    #[test]
    fn a_key_has_exactly_one_source() {
        let both = lifecycle("secrets: [{name: a, keys: {k: {generate: 20, from: x}}}]");
        assert!(both.check().unwrap_err().contains("either"));
        let none = lifecycle("secrets: [{name: a, keys: {k: {}}}]");
        assert!(none.check().is_err());
        let short = lifecycle("secrets: [{name: a, keys: {k: {generate: 4}}}]");
        assert!(short.check().unwrap_err().contains("length"));
        let input_on_from = lifecycle("secrets: [{name: a, keys: {k: {from: x, input: y}}}]");
        assert!(input_on_from.check().is_err());
    }

    #[test]
    fn credentials_must_name_generated_keys() {
        let bad = lifecycle(
            "secrets: [{name: a, keys: {p: {generate: 20}}}]\n\
             credentials: {secret: a, username_key: u, password_key: p}",
        );
        assert!(bad.check().unwrap_err().contains("no key u"));
        let missing = lifecycle("credentials: {secret: a, username_key: u, password_key: p}");
        assert!(missing.check().unwrap_err().contains("no generated secret"));
    }

    #[test]
    fn only_jobs_have_failures() {
        let bad = lifecycle(
            "ready: [{kind: Deployment, name: web, step: web, message: up, failure: broke}]",
        );
        assert!(bad.check().is_err());
        let rerun = lifecycle(
            "ready: [{kind: Deployment, name: web, step: web, message: up, rerun_on_change: true}]",
        );
        assert!(rerun.check().unwrap_err().contains("rerun_on_change"));
    }

    #[test]
    fn only_deployments_and_statefulsets_are_suspended_each_once() {
        let job = lifecycle("suspend: [{kind: Job, name: seed}]");
        assert!(job.check().unwrap_err().contains("cannot be scaled"));
        let twice =
            lifecycle("suspend: [{kind: Deployment, name: web}, {kind: Deployment, name: web}]");
        assert!(twice.check().unwrap_err().contains("twice"));
        let good =
            lifecycle("suspend: [{kind: Deployment, name: web}, {kind: StatefulSet, name: web}]");
        good.check().unwrap();
        assert!(good.can_suspend() && good.suspends(WorkloadKind::StatefulSet, "web"));
        assert!(!Lifecycle::default().can_suspend());
    }

    #[test]
    fn chosen_inputs_are_used_and_checked() {
        let l = lifecycle(
            "secrets: [{name: admin, keys: {user: {from: store.user}, password: {generate: 20, input: admin_password}}}]",
        );
        l.check().unwrap();
        let context = serde_json::json!({"store": {"user": "alice"}});
        let chosen = SecretInputs::one("admin_password", "a chosen password");
        l.check_inputs(&chosen).unwrap();
        let secrets =
            render_secrets(&l, &context, "store-a", SecretValues::Generate(&chosen)).unwrap();
        let Manifest::Secret(secret) = &secrets[0] else {
            panic!("not a secret")
        };
        let data = secret.data.as_ref().unwrap();
        assert_eq!(data["password"].0, b"a chosen password");
        assert_eq!(data["user"].0, b"alice");

        let fresh = render_secrets(
            &l,
            &context,
            "store-a",
            SecretValues::Generate(&SecretInputs::none()),
        )
        .unwrap();
        let Manifest::Secret(secret) = &fresh[0] else {
            panic!("not a secret")
        };
        assert_eq!(secret.data.as_ref().unwrap()["password"].0.len(), 20);

        let unknown = SecretInputs::one("root_password", "a chosen password");
        assert!(
            l.check_inputs(&unknown)
                .unwrap_err()
                .message
                .contains("admin_password")
        );
        let short = SecretInputs::one("admin_password", "short");
        assert!(l.check_inputs(&short).is_err());
        assert!(!format!("{chosen:?}").contains("chosen password"));
    }
}
