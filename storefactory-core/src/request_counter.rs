//! Counting the Kubernetes API requests a client sends, by verb and resource, with the
//! apiserver's own names (`APPLY`, `LIST`, `WATCH`, ...), so that what Storefactory costs
//! the cluster can be read next to `apiserver_request_total`.
//!
//! ```no_run
//! # async fn example() -> Result<(), kube::Error> {
//! use storefactory_core::request_counter::RequestCounter;
//!
//! let counter = RequestCounter::new();
//! let client = counter.client(kube::Config::infer().await.unwrap())?;
//! // ... use `client` ...
//! for ((verb, resource), n) in counter.snapshot() {
//!     println!("{verb} {resource}: {n}");
//! }
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{Method, Request, Uri};
use kube::client::{Body, ClientBuilder};
use tower::util::MapRequestLayer;

/// Requests by `(verb, resource)`. Cheap to clone; clones count together.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter {
    counts: Arc<Mutex<BTreeMap<(&'static str, String), u64>>>,
}

impl RequestCounter {
    /// A counter at zero.
    pub fn new() -> Self {
        RequestCounter::default()
    }

    /// A client for `config` whose every request is counted here.
    pub fn client(&self, config: kube::Config) -> Result<kube::Client, kube::Error> {
        let counter = self.clone();
        let layer = MapRequestLayer::new(move |request: Request<Body>| {
            counter.record(&request);
            request
        });
        Ok(ClientBuilder::try_from(config)?.with_layer(&layer).build())
    }

    fn record(&self, request: &Request<Body>) {
        let is_apply = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/apply-patch"));
        let key = classify(request.method(), request.uri(), is_apply);
        *self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default() += 1;
    }

    /// The counts so far, by `(verb, resource)`; a subresource reads `pods/status`.
    pub fn snapshot(&self) -> BTreeMap<(&'static str, String), u64> {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// All requests so far.
    pub fn total(&self) -> u64 {
        self.snapshot().values().sum()
    }
}

/// The apiserver's verb and resource of a request: `/api/v1/namespaces/a/pods` read with
/// GET is `("LIST", "pods")`; with `?watch=true`, `("WATCH", "pods")`.
pub fn classify(method: &Method, uri: &Uri, is_apply: bool) -> (&'static str, String) {
    let path = uri.path().trim_matches('/');
    let segments: Vec<&str> = path.split('/').collect();
    // /api/v1/... or /apis/<group>/<version>/...
    let rest = match segments.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => return (verb_of(method, true, false, is_apply), format!("/{path}")),
    };
    let rest = match rest {
        ["namespaces", _namespace, inner @ ..] if !inner.is_empty() => inner,
        other => other,
    };
    let (resource, name, subresource) = match rest {
        [] => ("", None, None),
        [resource] => (*resource, None, None),
        [resource, name] => (*resource, Some(*name), None),
        [resource, name, subresource, ..] => (*resource, Some(*name), Some(*subresource)),
    };
    let watch = uri
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    let verb = verb_of(method, name.is_some(), watch, is_apply);
    let resource = match subresource {
        Some(sub) => format!("{resource}/{sub}"),
        None => resource.to_owned(),
    };
    (verb, resource)
}

fn verb_of(method: &Method, named: bool, watch: bool, is_apply: bool) -> &'static str {
    match *method {
        Method::GET if watch => "WATCH",
        Method::GET if named => "GET",
        Method::GET => "LIST",
        Method::POST => "CREATE",
        Method::PUT => "UPDATE",
        Method::PATCH if is_apply => "APPLY",
        Method::PATCH => "PATCH",
        Method::DELETE if named => "DELETE",
        Method::DELETE => "DELETECOLLECTION",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(method: Method, uri: &str, apply: bool) -> (&'static str, String) {
        classify(&method, &uri.parse().unwrap(), apply)
    }

    #[test]
    fn requests_are_named_as_the_apiserver_names_them() {
        assert_eq!(
            c(Method::GET, "/api/v1/namespaces/store-a/pods", false),
            ("LIST", "pods".into())
        );
        assert_eq!(
            c(
                Method::GET,
                "/api/v1/pods?labelSelector=x&watch=true&resourceVersion=1",
                false
            ),
            ("WATCH", "pods".into())
        );
        assert_eq!(
            c(Method::GET, "/api/v1/namespaces/store-a", false),
            ("GET", "namespaces".into())
        );
        assert_eq!(
            c(
                Method::PATCH,
                "/apis/apps/v1/namespaces/store-a/deployments/wordpress?fieldManager=sf",
                true
            ),
            ("APPLY", "deployments".into())
        );
        assert_eq!(
            c(Method::PATCH, "/api/v1/namespaces/a/pods/p/status", false),
            ("PATCH", "pods/status".into())
        );
        assert_eq!(
            c(Method::POST, "/api/v1/namespaces/a/secrets", false),
            ("CREATE", "secrets".into())
        );
        assert_eq!(
            c(Method::DELETE, "/api/v1/namespaces/store-a", false),
            ("DELETE", "namespaces".into())
        );
        assert_eq!(
            c(
                Method::PUT,
                "/apis/coordination.k8s.io/v1/namespaces/default/leases/l",
                false
            ),
            ("UPDATE", "leases".into())
        );
        assert_eq!(
            c(Method::GET, "/version", false),
            ("GET", "/version".into())
        );
    }
}
