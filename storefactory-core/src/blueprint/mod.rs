//! Blueprints: folders of Handlebars templates that render the Kubernetes objects of a store.
//!
//! A blueprint is a folder `<name>/` holding `blueprint.yaml` (description and extra
//! parameters), templates `*.yaml.hbs` rendered in file-name order, and data files under
//! `files/` that templates read as `files.<name>`. The built-in blueprints are embedded at
//! compile time; [`BlueprintRegistry::load_dir`] overrides or adds blueprints at run time, and
//! embedders register their own helpers and blueprints: the plugin interface.
//!
//! Every value reaches the YAML through [`crate::yaml::quote_scalar`], so no user text can
//! change a document's structure; templates may not disable that escaping (`{{{ }}}`,
//! `{{& }}`). The registry is strict: a missing value is an error. The rendered YAML is parsed
//! into typed objects ([`Manifest`]), and a key the typed object does not know is an error.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use handlebars::{Handlebars, HelperDef};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub mod lifecycle;

pub use lifecycle::{Lifecycle, SecretInputs, SecretValues};

use crate::error::{Error, Result, ValidationError};
use crate::manifest::Manifest;
use crate::spec::{StoreId, StoreSpec, TlsSpec};
use crate::yaml;

/// The label every managed object carries, with the value [`MANAGED_BY`].
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The value of [`LABEL_MANAGED_BY`].
pub const MANAGED_BY: &str = "storefactory";
/// The label naming the store an object belongs to.
pub const LABEL_STORE: &str = "storefactory.io/store";
/// The name of the built-in blueprint.
pub const DEFAULT_BLUEPRINT: &str = "woocommerce";

const METADATA_FILE: &str = "blueprint.yaml";
const TEMPLATE_SUFFIX: &str = ".yaml.hbs";
const FILES_DIR: &str = "files/";
/// Templates rendered on demand (lifecycle.backup, ...), not with the store.
const JOBS_DIR: &str = "jobs/";

static EMBEDDED: &[(&str, &str, &str)] =
    include!(concat!(env!("OUT_DIR"), "/embedded_blueprints.rs"));

/// A random password of `len` letters and digits from the operating system's CSPRNG.
pub fn generate_password(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// Checks a password chosen by a user for an input of a generated Secret (see
/// [`Lifecycle::check_inputs`], which applies the same rules).
pub fn validate_admin_password(password: &str) -> std::result::Result<(), ValidationError> {
    let len = password.chars().count();
    if !(12..=128).contains(&len) {
        return Err(ValidationError::new(
            "admin_password",
            "must be between 12 and 128 characters",
        ));
    }
    if password.chars().any(char::is_control) {
        return Err(ValidationError::new(
            "admin_password",
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// A parameter a blueprint declares beyond the typed [`StoreSpec`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParameterMeta {
    /// What the parameter does.
    pub description: String,
    /// Its value when the spec gives none; required when absent.
    #[serde(default)]
    pub default: Option<String>,
}

/// The contents of `blueprint.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlueprintMeta {
    /// What the blueprint deploys.
    pub description: String,
    /// Extra parameters, read by templates as `params.<name>`.
    #[serde(default)]
    pub parameters: BTreeMap<String, ParameterMeta>,
    /// What makes a store ready, which Secrets are generated, which credentials are shown.
    #[serde(default)]
    pub lifecycle: Lifecycle,
}

/// One blueprint: metadata, templates in render order, and data files.
#[derive(Debug, Clone)]
pub struct Blueprint {
    name: String,
    meta: BlueprintMeta,
    templates: Vec<(String, String)>,
    /// Templates under `jobs/`, rendered on demand.
    jobs: Vec<(String, String)>,
    files: BTreeMap<String, String>,
}

impl Blueprint {
    /// Builds a blueprint from its files, given as `(path relative to the blueprint folder,
    /// contents)`: `blueprint.yaml`, `*.yaml.hbs` templates and `files/*`. Other files are
    /// ignored.
    pub fn from_files<I, P, C>(name: &str, files: I) -> Result<Self>
    where
        I: IntoIterator<Item = (P, C)>,
        P: Into<String>,
        C: Into<String>,
    {
        let load_error = |message: String| Error::LoadBlueprint {
            name: name.to_owned(),
            message,
        };
        if !crate::spec::is_dns1123_label(name) {
            return Err(load_error("blueprint names are DNS-1123 labels".to_owned()));
        }
        let mut meta = None;
        let mut templates = Vec::new();
        let mut jobs = Vec::new();
        let mut data = BTreeMap::new();
        for (path, contents) in files {
            let path: String = path.into();
            let contents: String = contents.into();
            if path == METADATA_FILE {
                meta = Some(
                    yaml::from_str::<BlueprintMeta>(&contents)
                        .map_err(|e| load_error(format!("{METADATA_FILE}: {e}")))?,
                );
            } else if let Some(file) = path.strip_prefix(FILES_DIR) {
                data.insert(file.to_owned(), contents);
            } else if path.ends_with(TEMPLATE_SUFFIX) {
                for forbidden in ["{{{", "{{&", "{{~{", "{{~&"] {
                    if contents.contains(forbidden) {
                        return Err(load_error(format!(
                            "{path}: {forbidden} disables YAML quoting; templates may not use it"
                        )));
                    }
                }
                if path.starts_with(JOBS_DIR) {
                    jobs.push((path, contents));
                } else {
                    templates.push((path, contents));
                }
            }
        }
        let meta = meta.ok_or_else(|| load_error(format!("{METADATA_FILE} is missing")))?;
        meta.lifecycle
            .check()
            .map_err(|e| load_error(format!("{METADATA_FILE}: lifecycle: {e}")))?;
        if templates.is_empty() {
            return Err(load_error(format!("no {TEMPLATE_SUFFIX} templates")));
        }
        for (field, job) in [
            ("backup", &meta.lifecycle.backup),
            ("restore", &meta.lifecycle.restore),
        ] {
            if let Some(job) = job
                && !jobs.iter().any(|(path, _)| *path == job.template)
            {
                return Err(load_error(format!(
                    "{METADATA_FILE}: lifecycle.{field} names {}, which is not a template \
                     under {JOBS_DIR}",
                    job.template
                )));
            }
        }
        templates.sort();
        Ok(Blueprint {
            name: name.to_owned(),
            meta,
            templates,
            jobs,
            files: data,
        })
    }

    /// Loads a blueprint from a folder.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::LoadBlueprint {
                name: dir.display().to_string(),
                message: "folder name is not UTF-8".to_owned(),
            })?
            .to_owned();
        let mut files = Vec::new();
        read_tree(dir, dir, &mut files)?;
        Blueprint::from_files(&name, files)
    }

    /// The blueprint's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its metadata.
    pub fn meta(&self) -> &BlueprintMeta {
        &self.meta
    }

    /// Its declared lifecycle.
    pub fn lifecycle(&self) -> &Lifecycle {
        &self.meta.lifecycle
    }

    /// File names of its templates, in render order.
    pub fn template_names(&self) -> impl Iterator<Item = &str> {
        self.templates.iter().map(|(name, _)| name.as_str())
    }
}

fn read_tree(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) -> Result<()> {
    let read_error = |path: &Path, source| Error::ReadBlueprintDir {
        path: path.to_owned(),
        source,
    };
    let mut entries = std::fs::read_dir(dir)
        .map_err(|e| read_error(dir, e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| read_error(dir, e))?;
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        if path.is_dir() {
            read_tree(root, &path, out)?;
        } else {
            let relative = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            let contents = std::fs::read_to_string(&path).map_err(|e| read_error(&path, e))?;
            out.push((relative, contents));
        }
    }
    Ok(())
}

mod value_helpers {
    //! Helpers whose output is a value, YAML-quoted like any other.
    #![allow(missing_docs)]

    use ::base64::Engine as _;
    use handlebars::handlebars_helper;

    handlebars_helper!(base64: |value: str| {
        ::base64::engine::general_purpose::STANDARD.encode(value)
    });
    // `{{concat a "-" b}}`: the values' text joined, e.g. a name derived from another.
    handlebars_helper!(concat: |*args| {
        args.iter()
            .map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<String>()
    });
    handlebars_helper!(json: |value: Json| {
        serde_json::to_string(value).unwrap_or_default()
    });
}

/// `{{int value}}` writes an integer unquoted, for the few fields Kubernetes types as numbers.
/// It writes nothing but an optional sign and digits, so it cannot change the YAML's shape.
struct IntHelper;

impl HelperDef for IntHelper {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &handlebars::Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc handlebars::Context,
        _: &mut handlebars::RenderContext<'reg, 'rc>,
        out: &mut dyn handlebars::Output,
    ) -> handlebars::HelperResult {
        let param = h
            .param(0)
            .ok_or_else(|| handlebars::RenderErrorReason::ParamNotFoundForIndex("int", 0))?;
        let number = match param.value() {
            serde_json::Value::Number(n) => n.as_i64(),
            serde_json::Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        }
        .ok_or_else(|| {
            handlebars::RenderErrorReason::Other(format!(
                "int: {} is not an integer",
                param.value()
            ))
        })?;
        out.write(&number.to_string())?;
        Ok(())
    }
}

/// Blueprints by name, and the Handlebars registry that renders them.
pub struct BlueprintRegistry {
    handlebars: Handlebars<'static>,
    blueprints: BTreeMap<String, Blueprint>,
}

impl fmt::Debug for BlueprintRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlueprintRegistry")
            .field("blueprints", &self.blueprints.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl BlueprintRegistry {
    /// A registry without blueprints, with the built-in helpers `base64`, `json`, `concat` and `int`.
    pub fn empty() -> Self {
        let mut handlebars = Handlebars::new();
        handlebars.set_strict_mode(true);
        handlebars.register_escape_fn(yaml::quote_scalar);
        handlebars.register_helper("base64", Box::new(value_helpers::base64));
        handlebars.register_helper("json", Box::new(value_helpers::json));
        handlebars.register_helper("concat", Box::new(value_helpers::concat));
        handlebars.register_helper("int", Box::new(IntHelper));
        BlueprintRegistry {
            handlebars,
            blueprints: BTreeMap::new(),
        }
    }

    /// A registry with the blueprints embedded in the library (`woocommerce`).
    pub fn builtin() -> Result<Self> {
        let mut registry = Self::empty();
        let mut by_name: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
        for (blueprint, path, contents) in EMBEDDED {
            by_name.entry(blueprint).or_default().push((path, contents));
        }
        for (name, files) in by_name {
            registry.register_blueprint(Blueprint::from_files(name, files)?)?;
        }
        Ok(registry)
    }

    /// Adds or replaces the blueprints found as sub-folders of `dir`.
    pub fn load_dir(&mut self, dir: &Path) -> Result<Vec<String>> {
        let entries = std::fs::read_dir(dir).map_err(|source| Error::ReadBlueprintDir {
            path: dir.to_owned(),
            source,
        })?;
        let mut loaded = Vec::new();
        let mut dirs: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        for path in dirs {
            let blueprint = Blueprint::from_dir(&path)?;
            loaded.push(blueprint.name().to_owned());
            self.register_blueprint(blueprint)?;
        }
        Ok(loaded)
    }

    /// Adds or replaces a blueprint, compiling its templates.
    pub fn register_blueprint(&mut self, blueprint: Blueprint) -> Result<()> {
        if let Some(old) = self.blueprints.remove(blueprint.name()) {
            for (template, _) in old.templates.iter().chain(&old.jobs) {
                self.handlebars
                    .unregister_template(&template_key(old.name(), template));
            }
        }
        for (template, source) in blueprint.templates.iter().chain(&blueprint.jobs) {
            let key = template_key(blueprint.name(), template);
            self.handlebars
                .register_template_string(&key, source)
                .map_err(|e| Error::CompileTemplate {
                    template: key.clone(),
                    source: Box::new(e),
                })?;
        }
        self.blueprints
            .insert(blueprint.name().to_owned(), blueprint);
        Ok(())
    }

    /// Registers a Handlebars helper for all blueprints. Output of helpers written with
    /// [`handlebars::handlebars_helper!`] (or [`HelperDef::call_inner`]) is YAML-quoted like
    /// any value.
    pub fn register_helper(&mut self, name: &str, helper: Box<dyn HelperDef + Send + Sync>) {
        self.handlebars.register_helper(name, helper);
    }

    /// Names of the registered blueprints.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.blueprints.keys().map(String::as_str)
    }

    /// A blueprint by name.
    pub fn get(&self, name: &str) -> Result<&Blueprint> {
        self.blueprints
            .get(name)
            .ok_or_else(|| Error::UnknownBlueprint {
                name: name.to_owned(),
            })
    }

    /// The kinds the registered blueprints create, found by rendering a store with default
    /// parameters with each: what the Provisioner watches and what `storefactory doctor`
    /// asks permissions for. `None` when a blueprint does not render a default store, so
    /// that its kinds cannot be known.
    pub fn kinds(&self) -> Option<BTreeSet<&'static str>> {
        let id = StoreId::new("kinds").ok()?;
        let spec = StoreSpec::new(id, "admin", "store-kinds.storefactory.local");
        let mut kinds = BTreeSet::new();
        for name in self.names() {
            let manifests = self.render(name, &spec, SecretValues::Placeholders).ok()?;
            kinds.extend(
                manifests
                    .iter()
                    .filter_map(|m| Manifest::KINDS.iter().copied().find(|k| *k == m.kind())),
            );
        }
        Some(kinds)
    }

    /// Validates `spec` and renders every object of the store with blueprint `name`, its
    /// generated Secrets included (filled in as `values` says), in the order they are to be
    /// applied, each labelled as managed by Storefactory. The store is rendered running
    /// ([`RenderState::default`]); see [`BlueprintRegistry::render_in`].
    pub fn render(
        &self,
        name: &str,
        spec: &StoreSpec,
        values: SecretValues<'_>,
    ) -> Result<Vec<Manifest>> {
        self.render_in(name, spec, values, &RenderState::default())
    }

    /// Like [`BlueprintRegistry::render`], for a store in `state`: templates see
    /// `suspended`, `paused` and `paused_backend` (see [`RenderState`]), and when the store
    /// is suspended, the workloads its blueprint lists under `lifecycle.suspend` get zero
    /// replicas. A suspended render that would still run a pod (a Deployment or StatefulSet
    /// not listed) is an error, as is a listed workload the blueprint does not render.
    pub fn render_in(
        &self,
        name: &str,
        spec: &StoreSpec,
        values: SecretValues<'_>,
        state: &RenderState,
    ) -> Result<Vec<Manifest>> {
        let blueprint = self.get(name)?;
        let mut context = render_context(blueprint, spec)?;
        context["suspended"] = json!(state.suspended);
        context["paused"] = json!(state.paused);
        context["paused_backend"] = match &state.paused_backend {
            Some(backend) => json!({ "host": backend.host, "port": backend.port }),
            None => serde_json::Value::Null,
        };
        let mut manifests = self.render_templates(blueprint, spec, &context)?;
        manifests.extend(self.render_secrets(blueprint, spec, &context, values)?);
        manifests.sort_by_key(Manifest::apply_rank);
        if state.suspended {
            scale_to_zero(blueprint, &mut manifests)?;
        }
        check_volume_quota(blueprint, spec, &manifests)?;
        Ok(manifests)
    }

    /// Renders the objects of an on-demand Job of blueprint `name` (a template under
    /// `jobs/`, e.g. the one `lifecycle.backup` names) for the store `spec`: templates see
    /// what store templates see, plus `job` (see [`lifecycle::OperationJob`]). Every object
    /// is placed in the store's namespace and carries the store's labels, plus `extra_labels`.
    pub fn render_job(
        &self,
        name: &str,
        template: &str,
        spec: &StoreSpec,
        job: serde_json::Value,
        extra_labels: &BTreeMap<String, String>,
    ) -> Result<Vec<Manifest>> {
        let blueprint = self.get(name)?;
        if !blueprint.jobs.iter().any(|(path, _)| path == template) {
            return Err(Error::LoadBlueprint {
                name: name.to_owned(),
                message: format!("no template {template} under {JOBS_DIR}"),
            });
        }
        let mut context = render_context(blueprint, spec)?;
        context["job"] = job;
        let key = template_key(blueprint.name(), template);
        let rendered =
            self.handlebars
                .render(&key, &context)
                .map_err(|e| Error::RenderTemplate {
                    template: key.clone(),
                    source: Box::new(e),
                })?;
        let parse_error = |message: String| Error::ParseManifest {
            template: key.clone(),
            message,
        };
        let namespace = spec.namespace();
        let mut labels = store_labels(spec, blueprint.name());
        labels.extend(extra_labels.clone());
        let mut manifests = Vec::new();
        for document in yaml::parse_documents(&rendered).map_err(parse_error)? {
            let mut manifest = Manifest::from_value(document).map_err(parse_error)?;
            check_placement(&manifest, &namespace).map_err(parse_error)?;
            if !manifest.is_namespaced() {
                return Err(parse_error(format!(
                    "{}: a Job's objects live in the store's namespace",
                    manifest.describe()
                )));
            }
            manifest.add_labels(&labels);
            manifests.push(manifest);
        }
        manifests.sort_by_key(Manifest::apply_rank);
        Ok(manifests)
    }

    fn render_secrets(
        &self,
        blueprint: &Blueprint,
        spec: &StoreSpec,
        context: &serde_json::Value,
        values: SecretValues<'_>,
    ) -> Result<Vec<Manifest>> {
        let namespace = spec.namespace();
        let labels = store_labels(spec, blueprint.name());
        let mut secrets =
            lifecycle::render_secrets(&blueprint.meta.lifecycle, context, &namespace, values)
                .map_err(|message| Error::ParseManifest {
                    template: format!("{}/{METADATA_FILE}", blueprint.name()),
                    message,
                })?;
        for secret in &mut secrets {
            secret.add_labels(&labels);
        }
        Ok(secrets)
    }

    fn render_templates(
        &self,
        blueprint: &Blueprint,
        spec: &StoreSpec,
        context: &serde_json::Value,
    ) -> Result<Vec<Manifest>> {
        let namespace = spec.namespace();
        let labels = store_labels(spec, blueprint.name());
        let mut manifests = Vec::new();
        for (template, _) in &blueprint.templates {
            let key = template_key(blueprint.name(), template);
            let rendered =
                self.handlebars
                    .render(&key, context)
                    .map_err(|e| Error::RenderTemplate {
                        template: key.clone(),
                        source: Box::new(e),
                    })?;
            let parse_error = |message: String| Error::ParseManifest {
                template: key.clone(),
                message,
            };
            for document in yaml::parse_documents(&rendered).map_err(parse_error)? {
                let mut manifest = Manifest::from_value(document).map_err(parse_error)?;
                check_placement(&manifest, &namespace).map_err(parse_error)?;
                if manifest.kind() == "Secret" && blueprint.lifecycle().generates(manifest.name()) {
                    return Err(parse_error(format!(
                        "{} is a generated secret (lifecycle.secrets); templates may not \
                         render it",
                        manifest.describe()
                    )));
                }
                manifest.add_labels(&labels);
                manifests.push(manifest);
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for manifest in &manifests {
            if !seen.insert((manifest.kind(), manifest.name().to_owned())) {
                return Err(Error::ParseManifest {
                    template: format!("{}/*", blueprint.name()),
                    message: format!("{} is rendered twice", manifest.describe()),
                });
            }
        }
        Ok(manifests)
    }
}

/// Sets the replicas of the workloads a blueprint suspends to zero, and checks that no
/// other workload would keep a pod running.
fn scale_to_zero(blueprint: &Blueprint, manifests: &mut [Manifest]) -> Result<()> {
    use lifecycle::WorkloadKind;
    let error = |message: String| Error::ParseManifest {
        template: format!("{}/{METADATA_FILE}", blueprint.name()),
        message,
    };
    let lifecycle = blueprint.lifecycle();
    if !lifecycle.can_suspend() {
        return Err(error(
            "lifecycle.suspend is empty: this blueprint's stores cannot be suspended".to_owned(),
        ));
    }
    let mut scaled = BTreeSet::new();
    for manifest in manifests.iter_mut() {
        let name = manifest.name().to_owned();
        let replicas = match manifest {
            Manifest::Deployment(d) if lifecycle.suspends(WorkloadKind::Deployment, &name) => {
                d.spec.as_mut().map(|s| &mut s.replicas)
            }
            Manifest::StatefulSet(s) if lifecycle.suspends(WorkloadKind::StatefulSet, &name) => {
                s.spec.as_mut().map(|s| &mut s.replicas)
            }
            Manifest::Deployment(_) | Manifest::StatefulSet(_) => {
                return Err(error(format!(
                    "{} is not in lifecycle.suspend: a suspended store would keep its pods",
                    manifest.describe()
                )));
            }
            _ => continue,
        };
        if let Some(replicas) = replicas {
            *replicas = Some(0);
        }
        scaled.insert((manifest.kind(), name));
    }
    for workload in &lifecycle.suspend {
        if !scaled.contains(&(workload.kind.as_str(), workload.name.clone())) {
            return Err(error(format!(
                "lifecycle.suspend names {} {}, which the blueprint does not render",
                workload.kind, workload.name
            )));
        }
    }
    Ok(())
}

/// Where the host of a paused store is sent: a Service of the platform (`host`, a DNS name
/// such as `storefactory.storefactory.svc.cluster.local`, and `port`), which answers
/// requests for a paused store's host with a "store paused" page. Written `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PausedBackend {
    /// DNS name of the platform's Service.
    pub host: String,
    /// Its port.
    pub port: u16,
}

impl std::str::FromStr for PausedBackend {
    type Err = ValidationError;

    fn from_str(text: &str) -> std::result::Result<Self, Self::Err> {
        let invalid = |message: &str| ValidationError::new("paused_backend", message);
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| invalid("must be host:port"))?;
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if !crate::spec::is_dns1123_subdomain(&host) {
            return Err(invalid("the host must be a DNS name"));
        }
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| invalid("the port must be a number from 1 to 65535"))?;
        Ok(PausedBackend { host, port })
    }
}

impl fmt::Display for PausedBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// The state a store is rendered in, beyond its spec. The default is a running store.
///
/// Templates see `suspended` (the workloads are scaled to zero; the engine sets their
/// replicas itself), `paused` (the store's host should answer that it is paused: while it
/// is suspended and until it is ready again after a resume) and `paused_backend` (`host`
/// and `port` of [`PausedBackend`], or nothing when none is configured, in any state, so
/// that the objects pointing there can exist for the store's whole life).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderState {
    /// The store's declared workloads are scaled to zero.
    pub suspended: bool,
    /// The store's host answers that it is paused.
    pub paused: bool,
    /// Where a paused store's host is sent.
    pub paused_backend: Option<PausedBackend>,
}

/// Validates `spec` and builds what templates see.
fn render_context(blueprint: &Blueprint, spec: &StoreSpec) -> Result<serde_json::Value> {
    spec.validate()?;
    let params = resolve_params(blueprint, spec)?;
    Ok(json!({
        "store": spec,
        "namespace": spec.namespace(),
        "url": spec.url(),
        "storage_gib": spec.storage_gib(),
        "products_json": serde_json::to_string(&spec.products).unwrap_or_default(),
        "params": params,
        "files": blueprint.files,
        "blueprint": blueprint.name,
        "ingress": ingress_context(spec),
        "suspended": false,
        "paused": false,
        "paused_backend": null,
    }))
}

/// The store's quota must admit the volume claims its objects make: a quota that cannot is
/// a request that would never become ready.
fn check_volume_quota(
    blueprint: &Blueprint,
    spec: &StoreSpec,
    manifests: &[Manifest],
) -> Result<()> {
    let claims: u64 = manifests
        .iter()
        .map(|m| match m {
            Manifest::PersistentVolumeClaim(_) => 1,
            Manifest::StatefulSet(s) => s.spec.as_ref().map_or(0, |s| {
                let replicas = u64::try_from(s.replicas.unwrap_or(1)).unwrap_or_default();
                let templates = s.volume_claim_templates.as_ref().map_or(0, Vec::len);
                replicas.saturating_mul(u64::try_from(templates).unwrap_or(u64::MAX))
            }),
            _ => 0,
        })
        .sum();
    if claims > u64::from(spec.quota.persistent_volume_claims) {
        return Err(ValidationError::new(
            "quota.persistent_volume_claims",
            format!(
                "blueprint {} makes {claims} volume claims; the quota allows {}",
                blueprint.name(),
                spec.quota.persistent_volume_claims
            ),
        )
        .into());
    }
    Ok(())
}

/// What the Ingress template needs beyond the spec: all annotations (the user's plus
/// cert-manager's), the TLS secret, if any, and `hosts`: the store's host, then its custom
/// domains, each a rule of the Ingress and a name of its TLS entry. cert-manager's annotation
/// issues one certificate for every host of the TLS entry, so custom domains get theirs
/// through the configured issuer; a fixed Secret admits no custom domains
/// ([`StoreSpec::validate`]).
fn ingress_context(spec: &StoreSpec) -> serde_json::Value {
    let mut annotations = spec.ingress.annotations.clone();
    let tls_secret = match &spec.ingress.tls {
        Some(TlsSpec::ClusterIssuer(issuer)) => {
            annotations.insert("cert-manager.io/cluster-issuer".to_owned(), issuer.clone());
            Some("store-tls".to_owned())
        }
        Some(TlsSpec::Secret(secret)) => Some(secret.clone()),
        None => None,
    };
    let hosts: Vec<&str> = spec.ingress.hosts().collect();
    json!({ "annotations": annotations, "tls_secret": tls_secret, "hosts": hosts })
}

fn template_key(blueprint: &str, template: &str) -> String {
    format!("{blueprint}/{template}")
}

/// Objects must be named, and stay inside the store: the Namespace is the store's, everything
/// else is in it.
fn check_placement(manifest: &Manifest, namespace: &str) -> std::result::Result<(), String> {
    if manifest.name().is_empty() {
        return Err(format!("{} has no metadata.name", manifest.kind()));
    }
    let ok = if manifest.is_namespaced() {
        manifest.meta().namespace.as_deref() == Some(namespace)
    } else {
        manifest.name() == namespace && manifest.meta().namespace.is_none()
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{} must be {} the store namespace {namespace}",
            manifest.describe(),
            if manifest.is_namespaced() {
                "in"
            } else {
                "named after"
            }
        ))
    }
}

/// The labels every object of a store carries.
pub fn store_labels(spec: &StoreSpec, blueprint: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned()),
        (LABEL_STORE.to_owned(), spec.id.to_string()),
        ("app.kubernetes.io/instance".to_owned(), spec.namespace()),
        ("app.kubernetes.io/part-of".to_owned(), blueprint.to_owned()),
    ])
}

fn resolve_params(blueprint: &Blueprint, spec: &StoreSpec) -> Result<BTreeMap<String, String>> {
    for key in spec.params.keys() {
        if !blueprint.meta.parameters.contains_key(key) {
            return Err(ValidationError::new(
                format!("params.{key}"),
                format!(
                    "blueprint {} has no such parameter (it has: {})",
                    blueprint.name,
                    blueprint
                        .meta
                        .parameters
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .into());
        }
    }
    let mut params = BTreeMap::new();
    for (key, meta) in &blueprint.meta.parameters {
        let value = spec
            .params
            .get(key)
            .or(meta.default.as_ref())
            .ok_or_else(|| ValidationError::new(format!("params.{key}"), "is required"))?;
        params.insert(key.clone(), value.clone());
    }
    Ok(params)
}
