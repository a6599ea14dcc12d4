//! The routes of the API and the layers around them.

pub mod backups;
pub mod domains;
pub mod events;
pub mod stores;
pub mod users;
pub mod webhooks;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use crate::api_error::ApiError;
use crate::state::AppState;

/// The OpenAPI 3 description of this API.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

/// The header carrying the request id, taken from the client when it sends one.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole API as one router: used by [`crate::Server`] and by tests (through
/// `tower::ServiceExt::oneshot`).
///
/// Requests are logged with their method, path (never the query or headers), status,
/// latency and an `x-request-id`, which is also returned to the client.
pub fn router(state: AppState) -> Router {
    let cors = (!state.cors_origins().is_empty()).then(|| {
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(state.cors_origins().iter().cloned()))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, REQUEST_ID])
            .expose_headers([REQUEST_ID, header::LOCATION])
    });
    let body_limit = state.max_body_bytes();
    let paused = state.clone();
    let mut router = Router::new()
        .route("/", get(dashboard))
        .route("/app.js", get(dashboard_script))
        .route("/app.css", get(dashboard_style))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/api/openapi.json", get(openapi))
        .route("/api/auth/login", post(users::login))
        .route("/api/auth/logout", post(users::logout))
        .route("/api/users/me", get(users::me))
        .route("/api/users", get(users::list).post(users::create))
        .route("/api/users/{username}/quota", put(users::set_quota))
        .route("/api/users/{username}/disabled", put(users::set_disabled))
        .route("/api/stores", get(stores::list).post(stores::create))
        .route(
            "/api/stores/{id}",
            get(stores::get)
                .delete(stores::delete)
                .patch(stores::change),
        )
        .route("/api/stores/{id}/retry", post(stores::retry))
        .route("/api/stores/{id}/suspend", post(stores::suspend))
        .route("/api/stores/{id}/resume", post(stores::resume))
        .route(
            "/api/stores/{id}/domains",
            get(domains::list).post(domains::add),
        )
        .route("/api/stores/{id}/domains/{domain}", delete(domains::remove))
        .route("/api/stores/{id}/events", get(events::stream))
        .route("/api/stores/{id}/credentials", get(stores::credentials))
        .route(
            "/api/stores/{id}/backups",
            get(backups::list).post(backups::create),
        )
        .route(
            "/api/stores/{id}/backups/{backup}",
            get(backups::get).delete(backups::delete),
        )
        .route("/api/stores/{id}/restore", post(backups::restore))
        .route("/api/stores/{id}/clone", post(backups::clone))
        .route("/internal/restores/{id}/archive", get(backups::download))
        // Streamed to disk under its own limit (`max_backup_bytes`), not the API's.
        .route(
            "/internal/backups/{id}",
            put(backups::upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/api/webhooks", get(webhooks::list).post(webhooks::create))
        .route("/api/webhooks/{id}", delete(webhooks::delete))
        .route("/api/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route("/metrics", get(crate::metrics::scrape))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::track,
        ))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_deadline,
        ))
        .with_state(state)
        .layer(DefaultBodyLimit::max(body_limit));
    if let Some(cors) = cors {
        router = router.layer(cors);
    }
    router
        // Before everything else: a paused store's host gets the paused page, whatever the
        // path (the Ingress of a suspended store sends its traffic here).
        .layer(axum::middleware::from_fn_with_state(paused, paused_store))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    let id = request
                        .headers()
                        .get(&REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    tracing::info_span!(
                        "request",
                        id,
                        method = %request.method(),
                        path = %request.uri().path(),
                    )
                })
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, RequestIds::new()))
}

/// Answers 503 `timeout` to a request not answered within the configured time, so that a
/// hung dependency cannot hold connections and tasks without bound. Event streams are
/// long-lived by design and bounded otherwise (per-user cap, token expiry).
async fn request_deadline(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // Archives of backups take as long as their size needs (bounded by the Job's deadline).
    if request.uri().path().ends_with("/events") || request.uri().path().starts_with("/internal/") {
        return next.run(request).await;
    }
    let deadline = state.request_timeout();
    match tokio::time::timeout(deadline, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(?deadline, "request timed out");
            ApiError::Timeout.into_response()
        }
    }
}

/// How long a client is told to wait before asking a paused store again.
const PAUSED_RETRY_AFTER_SECS: u32 = 300;

/// The page a paused store's host answers with. Static: no text of the store reaches it.
const PAUSED_HTML: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>This store is paused</title></head>\n<body><main><h1>This store is paused</h1>\
<p>It is not taking visitors right now. Its owner can resume it at any time; please come \
back later.</p></main></body></html>\n";

/// Answers requests for the host of a paused store (suspending, suspended, or resuming and
/// not ready yet) with 503 and a small "This store is paused" page, with `Retry-After`:
/// while suspended, a store's Ingress sends its host to this server (see
/// `ProvisionerConfig::paused_backend`). Hosts of the form `store-<id>.<domain>` are looked
/// up by the store's id (one read); other hosts among the stores' custom domains (cached,
/// see [`crate::domains`]). Only a store whose recorded host or custom domain it is
/// answers; every other request goes on to the API untouched.
async fn paused_store(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let host = request
        .uri()
        .host()
        .map(str::to_owned)
        .or_else(|| {
            let value = request.headers().get(header::HOST)?.to_str().ok()?;
            // Without the port; IPv6 literals are never store hosts.
            Some(value.rsplit_once(':').map_or(value, |(h, _)| h).to_owned())
        })
        .map(|h| h.trim_end_matches('.').to_ascii_lowercase());
    // Any domain: stores created by the command line may use another than the server's.
    let Some(host) = host else {
        return next.run(request).await;
    };
    if !is_paused_host(&state, &host).await {
        return next.run(request).await;
    }
    let body = if request.method() == Method::HEAD {
        ""
    } else {
        PAUSED_HTML
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8".to_owned()),
            (header::RETRY_AFTER, PAUSED_RETRY_AFTER_SECS.to_string()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'".to_owned(),
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        ],
        body,
    )
        .into_response()
}

/// Whether `host` (lowercase, without port or trailing dot) is the host or a custom domain of
/// a paused store.
async fn is_paused_host(state: &AppState, host: &str) -> bool {
    use storefactory_core::port::StoreRepository as _;
    let answers = |record: &storefactory_core::store::StoreRecord| {
        record.status.is_paused()
            && (host == record.spec.ingress.host.to_ascii_lowercase()
                || record.spec.ingress.domains.iter().any(|d| d == host))
    };
    let own = host.strip_prefix("store-").and_then(|rest| {
        let (label, _) = rest.split_once('.')?;
        storefactory_core::spec::StoreId::new(label).ok()
    });
    if let Some(id) = own
        && let Ok(Some(record)) = state.db().get_store(&id).await
        && record.spec.ingress.host.eq_ignore_ascii_case(host)
    {
        return answers(&record);
    }
    // Not a store's own host: perhaps one's custom domain.
    let Some(id) = state.store_of_domain(host).await else {
        return false;
    };
    matches!(state.db().get_store(&id).await, Ok(Some(record)) if answers(&record))
}

/// Request ids: a per-process random prefix and a counter.
#[derive(Clone)]
struct RequestIds {
    prefix: Arc<str>,
    next: Arc<AtomicU64>,
}

impl RequestIds {
    fn new() -> Self {
        RequestIds {
            prefix: storefactory_core::blueprint::generate_password(8)
                .to_ascii_lowercase()
                .into(),
            next: Arc::new(AtomicU64::new(1)),
        }
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}-{n}", self.prefix))
            .ok()
            .map(RequestId::new)
    }
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".to_owned())
}

async fn method_not_allowed() -> ApiError {
    ApiError::Rejected {
        status: StatusCode::METHOD_NOT_ALLOWED,
        code: "method_not_allowed",
        message: "this endpoint does not accept that method".to_owned(),
    }
}

/// `GET /health`: the process is up.
async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "healthy" }))
}

/// `GET /ready`: the database answers and the cluster is reachable. Served from a check at
/// most a few seconds old, so anonymous callers cannot make the server call the cluster
/// per request; the body is generic (no error text of the cluster, no version: the log has
/// them).
async fn ready(State(state): State<AppState>) -> Response {
    let found = state.readiness().await;
    let part = |ok: bool, bad: &str| serde_json::json!({ "ok": ok, "detail": if ok { "ok" } else { bad } });
    let mut body = serde_json::json!({
        "status": if found.database && found.cluster { "ready" } else { "not_ready" },
        "database": part(found.database, "database check failed"),
        "cluster": part(found.cluster, "Kubernetes cluster unreachable"),
    });
    if found.database && found.cluster {
        return Json(body).into_response();
    }
    let problems: Vec<&str> = [
        (!found.database).then_some("database check failed"),
        (!found.cluster).then_some("Kubernetes cluster unreachable"),
    ]
    .into_iter()
    .flatten()
    .collect();
    body["error"] = problems.join("; ").into();
    body["code"] = "not_ready".into();
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

/// The dashboard page. Its script is served separately so that the content security policy
/// can forbid inline scripts.
const DASHBOARD_HTML: &str = include_str!("../../assets/index.html");
const DASHBOARD_JS: &str = include_str!("../../assets/app.js");
const DASHBOARD_CSS: &str = include_str!("../../assets/app.css");
const DASHBOARD_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
                             img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
                             base-uri 'none'; form-action 'self'";

/// `GET /`: the single-page dashboard.
async fn dashboard() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, DASHBOARD_CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        DASHBOARD_HTML,
    )
}

/// `GET /app.js`: the dashboard's script.
async fn dashboard_script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        DASHBOARD_JS,
    )
}

/// `GET /app.css`: the dashboard's styles (a file too: the policy forbids inline styles).
async fn dashboard_style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        DASHBOARD_CSS,
    )
}

/// `GET /api/openapi.json`
async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON)
}
