//! Applying a store: its objects by server-side apply under one field manager, in order;
//! its generated Secrets created once and never overwritten; transient API errors retried
//! with bounded exponential backoff.

use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};

use super::Provisioner;
use super::state::Seen;
use super::watch::{object_key, ownership};
use crate::blueprint::{BlueprintRegistry, LABEL_STORE, RenderState, SecretInputs, SecretValues};
use crate::error::{Error, Result, kube_error_is_transient};
use crate::manifest::Manifest;
use crate::spec::StoreSpec;
use crate::store::{StoreRecord, StoreStatus};

/// What [`Provisioner::render`] hands to its blocking thread.
type RenderJob = (
    Arc<BlueprintRegistry>,
    String,
    StoreSpec,
    Option<SecretInputs>,
    RenderState,
);

/// Why a store's namespace cannot be used.
pub(super) enum NamespaceProblem {
    /// It exists without this store's label: someone else's.
    Taken,
    /// It vanished, or was replaced, after the store's objects were created in it.
    Lost(String),
}

impl Provisioner {
    /// Renders `spec` with `blueprint` in `state` (with generated secret values from
    /// `inputs`, or placeholders when `None`) on a blocking thread: rendering and parsing a
    /// store with many products takes milliseconds, too long to hold a runtime worker that
    /// also serves HTTP requests and watch events.
    pub(super) async fn render(
        &self,
        blueprint: &str,
        spec: &StoreSpec,
        inputs: Option<SecretInputs>,
        state: RenderState,
    ) -> Result<Vec<Manifest>> {
        let job = Arc::new((
            Arc::clone(&self.inner.blueprints),
            blueprint.to_owned(),
            spec.clone(),
            inputs,
            state,
        ));
        let render = |job: &RenderJob| {
            let (registry, blueprint, spec, inputs, state) = job;
            let values = match inputs {
                Some(inputs) => SecretValues::Generate(inputs),
                None => SecretValues::Placeholders,
            };
            registry.render_in(blueprint, spec, values, state)
        };
        // A turn first, without a thread: one render per core at most. A burst of creations
        // otherwise rendered on dozens of blocking threads at once, each allocating in
        // glibc's few heaps, and spent more time waiting for the heaps' locks than rendering.
        let turn = Arc::clone(&self.inner.render_turns).acquire_owned().await;
        let task = {
            let job = Arc::clone(&job);
            tokio::task::spawn_blocking(move || {
                let _turn = turn;
                render(&job)
            })
        };
        match task.await {
            Ok(rendered) => rendered,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            // The runtime is shutting down and ran no more blocking work: render here.
            Err(_) => render(&job),
        }
    }

    /// How a store in `status` is rendered: suspended or not, paused or not.
    pub(super) fn render_state(&self, status: StoreStatus) -> RenderState {
        RenderState {
            suspended: status.wants_suspended(),
            paused: status.is_paused(),
            paused_backend: self.inner.config.paused_backend.clone(),
        }
    }

    /// Renders the store as its status asks and applies every object in order. The
    /// generated Secrets of a store that was never ready are created if absent; those of a
    /// store that was ready (and may since be suspended) are left as they are. Returns how
    /// many objects were applied.
    pub(super) async fn apply_all(&self, record: &StoreRecord, report: bool) -> Result<usize> {
        let id = &record.id;
        let inputs = self.chosen_inputs(record).await;
        let manifests = self
            .render(
                &record.blueprint,
                &record.spec,
                Some(inputs),
                self.render_state(record.status),
            )
            .await?;
        let lifecycle = self.inner.blueprints.get(&record.blueprint)?.lifecycle();
        if report {
            self.step(id, "apply", format!("applying {} objects", manifests.len()))
                .await?;
        }
        let mut applied = 0;
        for manifest in &manifests {
            let generated = manifest.kind() == "Secret" && lifecycle.generates(manifest.name());
            if generated {
                // Passwords are what the workloads were set up with: never overwritten, and
                // not re-created for a store that was ready (see `watch::deleted`).
                if !record.status.was_ready() {
                    self.create_once(manifest).await?;
                    applied += 1;
                }
                continue;
            }
            let uid = self.apply(record, manifest).await?;
            applied += 1;
            if let Manifest::Namespace(_) = manifest {
                self.remember_namespace(record, uid.as_deref()).await?;
            }
        }
        if record.sealed_inputs.is_some() && !record.status.was_ready() {
            // The Secrets hold the chosen values now.
            self.inner.repo.clear_sealed_inputs(id).await?;
        }
        if report {
            self.step(id, "apply", "all objects applied").await?;
        }
        Ok(applied)
    }

    /// Applies the objects of the store rendered in `to` that differ from its render in
    /// `from` (e.g. only the Ingress, when a resumed store stops being paused). Generated
    /// Secrets are never applied here. Returns how many objects were applied.
    pub(super) async fn apply_changed(
        &self,
        record: &StoreRecord,
        from: RenderState,
        to: RenderState,
    ) -> Result<usize> {
        let before = self
            .render(&record.blueprint, &record.spec, None, from)
            .await?;
        let after = self
            .render(&record.blueprint, &record.spec, None, to)
            .await?;
        let lifecycle = self.inner.blueprints.get(&record.blueprint)?.lifecycle();
        let mut applied = 0;
        for manifest in &after {
            if manifest.kind() == "Secret" && lifecycle.generates(manifest.name()) {
                continue;
            }
            let same = before.iter().any(|old| {
                old.kind() == manifest.kind()
                    && old.name() == manifest.name()
                    && old.to_value() == manifest.to_value()
            });
            if !same {
                self.apply(record, manifest).await?;
                applied += 1;
            }
        }
        Ok(applied)
    }

    /// The values chosen at creation, unsealed; none when they cannot be opened (the key
    /// changed), which a warning reports.
    async fn chosen_inputs(&self, record: &StoreRecord) -> SecretInputs {
        let Some(sealed) = &record.sealed_inputs else {
            return SecretInputs::none();
        };
        let opened = self
            .inner
            .config
            .sealing_key
            .open(record.id.as_str(), sealed)
            .ok()
            .and_then(|json| serde_json::from_slice::<SecretInputs>(&json).ok());
        match opened {
            Some(inputs) => inputs,
            None => {
                self.warn_once(
                    &record.id,
                    "the values chosen at creation cannot be read (the server's key changed); \
                     generated ones are used instead"
                        .to_owned(),
                )
                .await;
                SecretInputs::none()
            }
        }
    }

    /// Records the UID of a namespace just applied, or fails if it is not the one the store
    /// was created in.
    async fn remember_namespace(&self, record: &StoreRecord, uid: Option<&str>) -> Result<()> {
        let Some(uid) = uid else {
            return Ok(());
        };
        match &record.namespace_uid {
            None => self.inner.repo.set_namespace_uid(&record.id, uid).await?,
            Some(known) if known == uid => {}
            Some(_) => {
                return Err(Error::NamespaceLost {
                    namespace: record.id.namespace(),
                    reason: "was replaced by another namespace of the same name".to_owned(),
                });
            }
        }
        Ok(())
    }

    /// Whether the store's namespace can be applied: it must not be someone else's, and once
    /// the store's objects were created in it, it must still be the same one. Reads the
    /// cache; only a store that never had a namespace asks the API server, so that a
    /// namespace made a moment ago by someone else is not adopted.
    pub(super) async fn namespace_problem(
        &self,
        record: &StoreRecord,
    ) -> Result<Option<NamespaceProblem>> {
        let name = record.id.namespace();
        let cached = super::lock(&self.inner.caches)
            .as_ref()
            .map(|c| c.namespace(&name));
        let current = match (&record.namespace_uid, cached) {
            (Some(_), Some(cached)) => cached.map(|ns| (*ns).clone()),
            _ => {
                let resource = Manifest::api_resource_of_kind("Namespace").ok_or_else(|| {
                    Error::NamespaceTaken {
                        namespace: name.clone(),
                    }
                })?;
                let api: Api<DynamicObject> = Api::all_with(self.inner.client.clone(), &resource);
                self.with_retries(&format!("read Namespace {name}"), || api.get_opt(&name))
                    .await?
            }
        };
        let Some(namespace) = current else {
            return Ok(record
                .namespace_uid
                .as_ref()
                .map(|_| NamespaceProblem::Lost("was deleted outside Storefactory".to_owned())));
        };
        let labelled = namespace
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_STORE))
            .is_some_and(|s| s == record.id.as_str());
        if !labelled {
            return Ok(Some(match &record.namespace_uid {
                None => NamespaceProblem::Taken,
                Some(_) => NamespaceProblem::Lost(
                    "was replaced by a namespace Storefactory did not create".to_owned(),
                ),
            }));
        }
        if let Some(known) = &record.namespace_uid {
            if namespace.metadata.uid.as_ref() != Some(known) {
                return Ok(Some(NamespaceProblem::Lost(
                    "was replaced by another namespace of the same name".to_owned(),
                )));
            }
            if namespace.metadata.deletion_timestamp.is_some()
                && record.status != StoreStatus::Deleting
            {
                return Ok(Some(NamespaceProblem::Lost(
                    "is being deleted outside Storefactory".to_owned(),
                )));
            }
        }
        Ok(None)
    }

    /// Creates a Secret if it does not exist; an existing one is kept as it is.
    async fn create_once(&self, manifest: &Manifest) -> Result<()> {
        let namespace = manifest.meta().namespace.clone().unwrap_or_default();
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.inner.client.clone(),
            &namespace,
            &manifest.api_resource(),
        );
        let object: DynamicObject =
            serde_json::from_value(manifest.to_value()).map_err(|e| Error::ParseManifest {
                template: manifest.describe(),
                message: e.to_string(),
            })?;
        let operation = format!("create {}", manifest.describe());
        self.with_retries(&operation, || async {
            match api.create(&PostParams::default(), &object).await {
                Ok(_) => Ok(()),
                // Created before (by this process or another): the first values stand.
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
                Err(error) => Err(error),
            }
        })
        .await
    }

    /// Server-side applies one object and remembers the version it produced, so that its
    /// watch event is recognised as our own echo. Returns the object's UID.
    async fn apply(&self, record: &StoreRecord, manifest: &Manifest) -> Result<Option<String>> {
        let resource = manifest.api_resource();
        let api: Api<DynamicObject> = match &manifest.meta().namespace {
            Some(namespace) => {
                Api::namespaced_with(self.inner.client.clone(), namespace, &resource)
            }
            None => Api::all_with(self.inner.client.clone(), &resource),
        };
        let params = PatchParams::apply(&self.inner.config.field_manager).force();
        let value = manifest.to_value();
        let name = manifest.name().to_owned();
        let operation = format!("apply {}", manifest.describe());
        let key = object_key(manifest.kind(), &name);
        let id = &record.id;
        self.inner
            .states
            .with(id, |s| *s.in_flight.entry(key.clone()).or_default() += 1);
        let result = self
            .with_retries(&operation, || {
                let api = api.clone();
                let params = params.clone();
                let value = value.clone();
                let name = name.clone();
                async move { api.patch(&name, &params, &Patch::Apply(&value)).await }
            })
            .await;
        self.inner.states.with(id, |s| {
            if let Some(count) = s.in_flight.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    s.in_flight.remove(&key);
                }
            }
        });
        let applied = result?;
        let uid = applied.metadata.uid.clone();
        if let Some(uid) = &uid {
            let content = ownership(&applied.metadata, &self.inner.config.field_manager);
            self.inner.states.with(id, |s| {
                s.seen.insert(
                    uid.clone(),
                    Seen {
                        resource_version: applied.metadata.resource_version.clone(),
                        content,
                    },
                );
                if let Some(generation) = applied.metadata.generation {
                    s.generations.insert(key.clone(), (uid.clone(), generation));
                }
            });
        }
        Ok(uid)
    }

    /// Calls `call` until it succeeds, fails for good, or runs out of attempts; transient
    /// failures are retried with exponential backoff, honouring a server's retry-after hint.
    pub(super) async fn with_retries<T, F, Fut>(&self, operation: &str, mut call: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = kube::Result<T>>,
    {
        let config = &self.inner.config;
        let mut delay = config.initial_backoff;
        let mut attempt = 1;
        loop {
            match call().await {
                Ok(value) => return Ok(value),
                Err(source)
                    if kube_error_is_transient(&source) && attempt < config.max_attempts =>
                {
                    let hinted = match &source {
                        kube::Error::Api(status) => status
                            .details
                            .as_ref()
                            .map(|d| Duration::from_secs(u64::from(d.retry_after_seconds)))
                            .filter(|d| !d.is_zero()),
                        _ => None,
                    };
                    let wait = hinted.unwrap_or(delay).min(config.max_backoff);
                    tracing::debug!(operation, attempt, ?wait, error = %source, "retrying");
                    tokio::time::sleep(wait).await;
                    delay = (delay * 2).min(config.max_backoff);
                    attempt += 1;
                }
                Err(source) => {
                    return Err(Error::Kube {
                        operation: operation.to_owned(),
                        source,
                    });
                }
            }
        }
    }
}
