//! Typed Kubernetes objects rendered by blueprints.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    ConfigMap, LimitRange, Namespace, PersistentVolumeClaim, ResourceQuota, Secret, Service,
    ServiceAccount,
};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{Metadata, Resource};
use kube::core::ApiResource;
use serde_json::Value;

macro_rules! manifests {
    ($($variant:ident),* $(,)?) => {
        /// One Kubernetes object of a store, of a kind blueprints may create.
        ///
        /// The variants are listed in the order they are applied: the namespace and its limits
        /// before anything that runs pods.
        #[derive(Debug, Clone, PartialEq)]
        #[allow(missing_docs)]
        pub enum Manifest {
            $($variant($variant),)*
        }

        impl Manifest {
            /// The kinds blueprints may create, in the order they are applied.
            pub const KINDS: &'static [&'static str] = &[$(<$variant as Resource>::KIND),*];

            fn from_typed_value(api_version: &str, kind: &str, value: Value) -> Result<Self, String> {
                $(
                    if api_version == <$variant as Resource>::API_VERSION
                        && kind == <$variant as Resource>::KIND
                    {
                        return serde_json::from_value::<$variant>(value)
                            .map(Manifest::$variant)
                            .map_err(|e| format!("{kind}: {e}"));
                    }
                )*
                Err(format!(
                    "{api_version}/{kind} is not a kind blueprints may create (allowed: {})",
                    Self::KINDS.join(", ")
                ))
            }

            /// The object's kind, e.g. `Deployment`.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Manifest::$variant(_) => <$variant as Resource>::KIND,)*
                }
            }

            /// The object's apiVersion, e.g. `apps/v1`.
            pub fn api_version(&self) -> &'static str {
                match self {
                    $(Manifest::$variant(_) => <$variant as Resource>::API_VERSION,)*
                }
            }

            /// The object's metadata.
            pub fn meta(&self) -> &ObjectMeta {
                match self {
                    $(Manifest::$variant(o) => o.metadata(),)*
                }
            }

            /// The object's metadata, to change.
            pub fn meta_mut(&mut self) -> &mut ObjectMeta {
                match self {
                    $(Manifest::$variant(o) => o.metadata_mut(),)*
                }
            }

            /// The object as JSON, as sent to the API server.
            pub fn to_value(&self) -> Value {
                let value = match self {
                    $(Manifest::$variant(o) => serde_json::to_value(o),)*
                };
                // Serializing k8s-openapi types into a JSON value cannot fail: their maps have
                // string keys.
                value.unwrap_or(Value::Null)
            }

            /// The API resource of the object's kind (group, version, plural, ...).
            pub fn api_resource(&self) -> ApiResource {
                match self {
                    $(Manifest::$variant(_) => ApiResource::erase::<$variant>(&()),)*
                }
            }

            /// The API resources of every kind blueprints may create, in apply order: the one
            /// list the Provisioner watches and `doctor` checks permissions for.
            pub fn api_resources() -> Vec<ApiResource> {
                vec![$(ApiResource::erase::<$variant>(&())),*]
            }

            /// Position in the apply order.
            pub fn apply_rank(&self) -> usize {
                Self::KINDS.iter().position(|k| *k == self.kind()).unwrap_or(usize::MAX)
            }
        }
    };
}

manifests!(
    Namespace,
    ResourceQuota,
    LimitRange,
    NetworkPolicy,
    ServiceAccount,
    Secret,
    ConfigMap,
    PersistentVolumeClaim,
    Service,
    StatefulSet,
    Deployment,
    Job,
    Ingress,
);

impl Manifest {
    /// The object's name.
    pub fn name(&self) -> &str {
        self.meta().name.as_deref().unwrap_or_default()
    }

    /// Whether the object lives in a namespace (everything but the Namespace itself).
    pub fn is_namespaced(&self) -> bool {
        !matches!(self, Manifest::Namespace(_))
    }

    /// The API resource of `kind`, if blueprints may create objects of it.
    pub fn api_resource_of_kind(kind: &str) -> Option<ApiResource> {
        Self::api_resources().into_iter().find(|r| r.kind == kind)
    }

    /// `Kind/name`, for messages.
    pub fn describe(&self) -> String {
        format!("{}/{}", self.kind(), self.name())
    }

    /// Parses a JSON value into the typed object its `apiVersion` and `kind` name, and fails
    /// if the value has a key the typed object does not know (a misspelt key would otherwise
    /// vanish silently).
    pub fn from_value(value: Value) -> Result<Self, String> {
        let api_version = value
            .get("apiVersion")
            .and_then(Value::as_str)
            .ok_or("object has no apiVersion")?
            .to_owned();
        let kind = value
            .get("kind")
            .and_then(Value::as_str)
            .ok_or("object has no kind")?
            .to_owned();
        let manifest = Self::from_typed_value(&api_version, &kind, value.clone())?;
        let mut unknown = Vec::new();
        unknown_keys(&value, &manifest.to_value(), "", &mut unknown);
        if !unknown.is_empty() {
            return Err(format!(
                "{kind} has unknown or empty keys: {}",
                unknown.join(", ")
            ));
        }
        Ok(manifest)
    }

    /// Adds `labels` to the object's labels, and to the pod template's labels of workloads.
    pub fn add_labels(&mut self, labels: &BTreeMap<String, String>) {
        fn merge(target: &mut Option<BTreeMap<String, String>>, labels: &BTreeMap<String, String>) {
            let target = target.get_or_insert_with(BTreeMap::new);
            for (k, v) in labels {
                target.insert(k.clone(), v.clone());
            }
        }
        merge(&mut self.meta_mut().labels, labels);
        let template_meta = match self {
            Manifest::Deployment(d) => d.spec.as_mut().map(|s| &mut s.template.metadata),
            Manifest::StatefulSet(s) => s.spec.as_mut().map(|s| &mut s.template.metadata),
            Manifest::Job(j) => j.spec.as_mut().map(|s| &mut s.template.metadata),
            _ => None,
        };
        if let Some(meta) = template_meta {
            merge(
                &mut meta.get_or_insert_with(ObjectMeta::default).labels,
                labels,
            );
        }
    }
}

/// Collects the paths of keys in `original` that are missing from `typed` (the same object
/// after a round trip through its typed form).
fn unknown_keys(original: &Value, typed: &Value, path: &str, out: &mut Vec<String>) {
    match (original, typed) {
        (Value::Object(original), Value::Object(typed)) => {
            for (key, value) in original {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match typed.get(key) {
                    Some(typed_value) => unknown_keys(value, typed_value, &child, out),
                    None => out.push(child),
                }
            }
        }
        (Value::Array(original), Value::Array(typed)) => {
            for (i, (value, typed_value)) in original.iter().zip(typed).enumerate() {
                unknown_keys(value, typed_value, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn misspelt_keys_are_reported_with_their_path() {
        let err = Manifest::from_value(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "lables": {"a": "b"}},
            "spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPrt": 8080}]}
        }))
        .unwrap_err();
        assert!(err.contains("metadata.lables"), "{err}");
        assert!(err.contains("spec.ports[0].targetPrt"), "{err}");
    }

    #[test]
    fn only_known_kinds_are_accepted() {
        let err = Manifest::from_value(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "x"}
        }))
        .unwrap_err();
        assert!(err.contains("not a kind blueprints may create"), "{err}");
    }

    #[test]
    fn wrongly_typed_values_are_errors() {
        let err = Manifest::from_value(json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "x"},
            "spec": {"replicas": "one", "selector": {}, "template": {}}
        }))
        .unwrap_err();
        assert!(err.contains("Deployment"), "{err}");
    }
}
