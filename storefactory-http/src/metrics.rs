//! The service's figures on `GET /metrics`, in the Prometheus (OpenMetrics) text format:
//!
//! - `storefactory_stores{status}`: stores by status, counted in the database at each scrape;
//! - `storefactory_reconcile_duration_seconds`: how long each reconcile took;
//! - `storefactory_reconcile_queue_depth` and `storefactory_reconciles_running`;
//! - `storefactory_kube_requests_total{verb,resource}`: this process's Kubernetes API
//!   requests, with the apiserver's names for them;
//! - `storefactory_http_requests_total{method,route,status}` and
//!   `storefactory_http_request_duration_seconds{method,route}`: by route template
//!   (`/api/stores/{id}`), never by raw path, so clients cannot grow the label sets;
//! - `storefactory_webhook_deliveries_total{outcome}`: webhook delivery attempts that were
//!   `delivered`, `retried` (failed, another attempt follows) or `failed` (the last one).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use storefactory_core::provisioner::ReconcileHook;
use storefactory_core::request_counter::RequestCounter;
use storefactory_core::store::StoreStatus;

use crate::state::AppState;

/// OpenMetrics' content type, which Prometheus asks for and reads.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KubeLabels {
    verb: &'static str,
    resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResponseLabels {
    method: String,
    route: String,
    status: u16,
}

fn latency_histogram() -> Histogram {
    // 1 ms to about 16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

struct Inner {
    registry: Registry,
    stores: Family<StatusLabels, Gauge>,
    reconcile_duration: Histogram,
    queue_depth: Gauge,
    reconciles_running: Gauge,
    kube_requests: Family<KubeLabels, Counter>,
    http_requests: Family<ResponseLabels, Counter>,
    http_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    webhook_deliveries: Family<OutcomeLabels, Counter>,
    /// Counts the requests of every Kubernetes client the server builds.
    kube_counter: RequestCounter,
    /// HTTP requests answered and reconciles finished: what tells a busy server from an
    /// idle one ([`crate::memory`]).
    activity: Arc<AtomicU64>,
}

/// The service's figures. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every figure at zero, registered under `storefactory_`.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("storefactory");
        let stores = Family::<StatusLabels, Gauge>::default();
        registry.register("stores", "Stores by status", stores.clone());
        let reconcile_duration = latency_histogram();
        registry.register(
            "reconcile_duration_seconds",
            "How long reconciling one store took",
            reconcile_duration.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "reconcile_queue_depth",
            "Stores taken from the work queue that wait for a reconcile slot",
            queue_depth.clone(),
        );
        let reconciles_running = Gauge::default();
        registry.register(
            "reconciles_running",
            "Stores being reconciled",
            reconciles_running.clone(),
        );
        let kube_requests = Family::<KubeLabels, Counter>::default();
        registry.register(
            "kube_requests",
            "Kubernetes API requests sent, by the apiserver's verb and resource",
            kube_requests.clone(),
        );
        let http_requests = Family::<ResponseLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template and status",
            http_requests.clone(),
        );
        let http_duration =
            Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register(
            "http_request_duration_seconds",
            "How long answering an HTTP request took (until its headers were sent)",
            http_duration.clone(),
        );
        let webhook_deliveries = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "Webhook delivery attempts, by outcome (delivered, retried, failed)",
            webhook_deliveries.clone(),
        );
        Metrics {
            inner: Arc::new(Inner {
                registry,
                stores,
                reconcile_duration,
                queue_depth,
                reconciles_running,
                kube_requests,
                http_requests,
                http_duration,
                webhook_deliveries,
                kube_counter: RequestCounter::new(),
                activity: Arc::default(),
            }),
        }
    }

    /// Counts the requests of Kubernetes clients built with it.
    pub fn kube_counter(&self) -> &RequestCounter {
        &self.inner.kube_counter
    }

    /// A hook for [`storefactory_core::provisioner::ProvisionerConfig::on_reconcile`] that
    /// feeds the reconcile histogram.
    pub fn reconcile_hook(&self) -> ReconcileHook {
        let histogram = self.inner.reconcile_duration.clone();
        let activity = self.inner.activity.clone();
        ReconcileHook(Arc::new(move |took: Duration| {
            activity.fetch_add(1, Ordering::Relaxed);
            histogram.observe(took.as_secs_f64())
        }))
    }

    /// How many HTTP requests were answered and reconciles finished so far: unchanged over
    /// a while, the server was idle.
    pub(crate) fn activity(&self) -> u64 {
        self.inner.activity.load(Ordering::Relaxed)
    }

    /// Counts a webhook delivery attempt that ended `outcome` (`delivered`, `retried`,
    /// `failed`).
    pub(crate) fn webhook_delivery(&self, outcome: &'static str) {
        self.inner
            .webhook_deliveries
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    fn observe_http(&self, method: &str, route: &str, status: u16, took: Duration) {
        self.inner.activity.fetch_add(1, Ordering::Relaxed);
        let (method, route) = (method.to_owned(), route.to_owned());
        self.inner
            .http_duration
            .get_or_create(&RouteLabels {
                method: method.clone(),
                route: route.clone(),
            })
            .observe(took.as_secs_f64());
        self.inner
            .http_requests
            .get_or_create(&ResponseLabels {
                method,
                route,
                status,
            })
            .inc();
    }

    /// The figures as OpenMetrics text, with those read at scrape time brought up to date.
    async fn render(&self, state: &AppState) -> String {
        let inner = &self.inner;
        if let Ok(counts) = state.db().count_stores_by_status().await {
            for status in &StoreStatus::ALL {
                let count = counts
                    .iter()
                    .find(|(s, _)| s == status)
                    .map_or(0, |(_, n)| *n);
                inner
                    .stores
                    .get_or_create(&StatusLabels {
                        status: status.as_str(),
                    })
                    .set(i64::try_from(count).unwrap_or(i64::MAX));
            }
        }
        let depth = state
            .provisioner()
            .map(|p| p.queue_depth())
            .unwrap_or_default();
        inner
            .queue_depth
            .set(i64::try_from(depth.waiting).unwrap_or(i64::MAX));
        inner
            .reconciles_running
            .set(i64::try_from(depth.running).unwrap_or(i64::MAX));
        for ((verb, resource), total) in inner.kube_counter.snapshot() {
            let counter = inner
                .kube_requests
                .get_or_create(&KubeLabels { verb, resource });
            counter.inc_by(total.saturating_sub(counter.get()));
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &inner.registry);
        text
    }
}

/// `GET /metrics`.
pub(crate) async fn scrape(State(state): State<AppState>) -> Response {
    let text = state.metrics().render(&state).await;
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        text,
    )
        .into_response()
}

/// Middleware: counts and times every request by its route template, and holds the
/// reconciler to its few busy slots while an API request is in flight (an event stream
/// counts only until its first byte: its body is sent after this returns). Uploads of
/// backups and scrapes are machines' work: nobody waits on them.
pub(crate) async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    // Known methods only: anything else is one label value, whatever a client sends.
    let method = match request.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "DELETE" | "PATCH" | "HEAD" | "OPTIONS") => m.to_owned(),
        _ => "OTHER".to_owned(),
    };
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let _in_flight = route
        .starts_with("/api/")
        .then(|| state.foreground().enter());
    let response = next.run(request).await;
    state.metrics().observe_http(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}
