//! Blueprints from Python: list them, render a store into manifests, add a directory.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use storefactory_core::blueprint::{BlueprintRegistry, DEFAULT_BLUEPRINT, SecretValues};
use storefactory_core::manifest::Manifest;

use crate::convert::to_python;
use crate::error::{exception, to_py};
use crate::spec::PyStoreSpec;

/// The blueprints stores are rendered from: the built-in `woocommerce` and any directories
/// registered. A Provisioner made with it uses the blueprints registered at that moment.
#[pyclass(name = "Blueprints", module = "storefactory", frozen)]
pub struct PyBlueprints {
    state: Mutex<State>,
}

struct State {
    dirs: Vec<PathBuf>,
    registry: Arc<BlueprintRegistry>,
}

fn lock(mutex: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

fn load(dirs: &[PathBuf]) -> PyResult<BlueprintRegistry> {
    let mut registry = BlueprintRegistry::builtin().map_err(to_py)?;
    for dir in dirs {
        registry.load_dir(dir).map_err(to_py)?;
    }
    Ok(registry)
}

impl PyBlueprints {
    /// The registry as it is now.
    pub fn registry(&self) -> Arc<BlueprintRegistry> {
        Arc::clone(&lock(&self.state).registry)
    }

    /// The built-in blueprints only.
    pub fn builtin() -> PyResult<Self> {
        Ok(PyBlueprints {
            state: Mutex::new(State {
                dirs: Vec::new(),
                registry: Arc::new(load(&[])?),
            }),
        })
    }

    fn render_manifests(&self, spec: &PyStoreSpec, blueprint: &str) -> PyResult<Vec<Manifest>> {
        self.registry()
            .render(blueprint, &spec.spec, SecretValues::Placeholders)
            .map_err(to_py)
    }
}

#[pymethods]
impl PyBlueprints {
    /// The built-in blueprints, plus those in `dir` (a folder of blueprint folders) if given.
    #[new]
    #[pyo3(signature = (dir=None))]
    fn new(dir: Option<PathBuf>) -> PyResult<Self> {
        let blueprints = PyBlueprints::builtin()?;
        if let Some(dir) = dir {
            blueprints.register_dir(dir)?;
        }
        Ok(blueprints)
    }

    /// Adds or replaces the blueprints found as sub-folders of `dir`; returns their names.
    /// On an error (a missing folder, a template that does not compile) nothing changes.
    fn register_dir(&self, dir: PathBuf) -> PyResult<Vec<String>> {
        let mut state = lock(&self.state);
        let mut registry = load(&state.dirs)?;
        let added = registry.load_dir(&dir).map_err(to_py)?;
        state.dirs.push(dir);
        state.registry = Arc::new(registry);
        Ok(added)
    }

    /// Names of the blueprints, sorted.
    fn names(&self) -> Vec<String> {
        self.registry().names().map(str::to_owned).collect()
    }

    /// The Kubernetes objects of `spec`'s store, in the order they are applied, as dicts.
    /// Generated Secrets hold placeholders (`REPLACE_ME_<secret>_<key>`), never passwords.
    #[pyo3(signature = (spec, blueprint=DEFAULT_BLUEPRINT))]
    fn render<'py>(
        &self,
        py: Python<'py>,
        spec: &PyStoreSpec,
        blueprint: &str,
    ) -> PyResult<Vec<Bound<'py, PyAny>>> {
        self.render_manifests(spec, blueprint)?
            .iter()
            .map(|m| to_python(py, &m.to_value()))
            .collect()
    }

    /// The same objects as one YAML stream (`---` before each document), for review or
    /// GitOps.
    #[pyo3(signature = (spec, blueprint=DEFAULT_BLUEPRINT))]
    fn render_yaml(&self, spec: &PyStoreSpec, blueprint: &str) -> PyResult<String> {
        let mut text = String::new();
        for manifest in self.render_manifests(spec, blueprint)? {
            text.push_str("---\n");
            let yaml = storefactory_core::yaml::to_string(&manifest.to_value()).map_err(|e| {
                exception(
                    storefactory_core::error::ErrorKind::Internal,
                    format!("encoding YAML: {e}"),
                    None,
                )
            })?;
            text.push_str(&yaml);
        }
        Ok(text)
    }

    fn __repr__(&self) -> String {
        format!("Blueprints({:?})", self.names())
    }
}
