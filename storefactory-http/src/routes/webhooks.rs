//! `/api/webhooks`: register, list, delete, and read the delivery log.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use storefactory_sql::{AuditRecord, Delivery, DeliveryState, NewWebhook, Webhook, WebhookEvents};

use crate::api_error::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::auth::{AuthUser, ClientAddr};
use crate::routes::stores::audit;
use crate::state::AppState;
use crate::webhooks::{seal_context, target};

/// Deliveries per page of the log when the client does not say, and the most it may ask
/// for (the log keeps the newest 200 of each webhook by default).
pub const MAX_DELIVERIES: usize = 200;
const DEFAULT_DELIVERIES: usize = 50;

/// Most webhooks in an admin's listing of everyone's.
const MAX_LISTED: usize = 1000;

/// A webhook as the API shows it. Never carries the secret.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookView {
    /// The id.
    pub id: String,
    /// Where deliveries are sent.
    pub url: String,
    /// `all` events or `status` changes only.
    pub events: WebhookEvents,
    /// Whether it receives every user's store events (admins).
    pub all_stores: bool,
    /// Who registered it.
    pub owner: String,
    /// When, milliseconds since the Unix epoch.
    pub created_at: i64,
}

impl From<&Webhook> for WebhookView {
    fn from(webhook: &Webhook) -> Self {
        WebhookView {
            id: webhook.id.clone(),
            url: webhook.url.clone(),
            events: webhook.events,
            all_stores: webhook.all_stores,
            owner: webhook.owner.clone(),
            created_at: webhook.created_at.0,
        }
    }
}

/// The answer to `POST /api/webhooks`: the webhook and, this once, its secret. Its
/// `Debug` output hides the secret.
#[derive(Serialize)]
pub struct CreatedWebhook {
    /// The webhook.
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// The signing secret: keep it, it is never shown again.
    pub secret: String,
}

impl std::fmt::Debug for CreatedWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedWebhook")
            .field("webhook", &self.webhook)
            .finish_non_exhaustive()
    }
}

/// The body of `POST /api/webhooks`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookBody {
    /// Where to send deliveries: an absolute `https` URL.
    pub url: String,
    /// `all` (the default) or `status`.
    #[serde(default)]
    pub events: Option<WebhookEvents>,
    /// Every user's store events, not only the caller's (admins only).
    #[serde(default)]
    pub all_stores: bool,
}

/// Query of `GET /api/webhooks`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Everyone's webhooks (admins only).
    #[serde(default)]
    pub all: bool,
}

/// Query of `GET /api/webhooks/{id}/deliveries`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    /// Most deliveries in the answer, 1 to [`MAX_DELIVERIES`]; 50 by default.
    #[serde(default)]
    pub limit: Option<usize>,
}

/// One delivery in the log.
#[derive(Debug, Serialize)]
pub struct DeliveryView {
    /// The id, sent as `Storefactory-Delivery`.
    pub id: i64,
    /// The store the event is about.
    pub store_id: String,
    /// The event's sequence number in the store's history.
    pub event_seq: i64,
    /// The event's kind.
    pub event: String,
    /// `pending`, `delivered` or `failed`.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: u32,
    /// HTTP status of the last answer, if there was one.
    pub last_status: Option<u16>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
    /// When the next attempt is due, for a pending delivery.
    pub next_attempt_at: Option<i64>,
    /// When the event was queued.
    pub created_at: i64,
    /// When the delivery last changed.
    pub updated_at: i64,
}

impl From<Delivery> for DeliveryView {
    fn from(delivery: Delivery) -> Self {
        DeliveryView {
            id: delivery.id,
            store_id: delivery.store_id,
            event_seq: delivery.event_seq,
            event: delivery.event_kind,
            next_attempt_at: (delivery.state == DeliveryState::Pending)
                .then_some(delivery.next_attempt_at.0),
            state: delivery.state,
            attempts: delivery.attempts,
            last_status: delivery.last_status,
            last_error: delivery.last_error,
            created_at: delivery.created_at.0,
            updated_at: delivery.updated_at.0,
        }
    }
}

fn not_found() -> ApiError {
    ApiError::NotFound("webhook not found".to_owned())
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buffer);
    buffer.iter().map(|b| format!("{b:02x}")).collect()
}

/// The webhook `id` if the caller may see it: its owner or an admin. Anything else is 404,
/// like a webhook that does not exist.
async fn visible_webhook(state: &AppState, user: &AuthUser, id: &str) -> Result<Webhook, ApiError> {
    // Ids are ours: anything else names nothing, and never reaches the database.
    if id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(not_found());
    }
    match state.db().get_webhook(id).await? {
        Some(webhook) if webhook.owner == user.name() || user.is_admin() => Ok(webhook),
        _ => Err(not_found()),
    }
}

/// `POST /api/webhooks`
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    addr: ClientAddr,
    ApiJson(body): ApiJson<CreateWebhookBody>,
) -> Result<impl IntoResponse, ApiError> {
    let config = state.webhook_config();
    let target = target::parse(body.url.trim(), config.allow_private).map_err(|message| {
        ApiError::Invalid {
            field: "url".to_owned(),
            message,
        }
    })?;
    if body.all_stores {
        user.require_admin()?;
    }
    let id = format!("wh_{}", random_hex(12));
    let secret = format!("whsec_{}", random_hex(32));
    let sealed_secret = state
        .sealing_key()
        .seal(&seal_context(&id), secret.as_bytes());
    let webhook = state
        .db()
        .create_webhook(
            NewWebhook {
                id,
                owner: user.name().to_owned(),
                url: target.url,
                sealed_secret,
                events: body.events.unwrap_or(WebhookEvents::All),
                all_stores: body.all_stores,
            },
            config.max_per_user,
        )
        .await
        .map_err(|error| match error {
            storefactory_sql::Error::WebhookLimit { .. } => ApiError::Conflict {
                code: "webhook_limit",
                message: error.to_string(),
            },
            other => other.into(),
        })?;
    tracing::info!(webhook = %webhook.id, owner = %webhook.owner, "webhook registered");
    audit(
        &state,
        AuditRecord::new("webhook.create")
            .actor(user.name())
            .target(&webhook.id),
        addr,
    )
    .await;
    let mut headers = HeaderMap::new();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/webhooks/{}", webhook.id)) {
        headers.insert(header::LOCATION, location);
    }
    // The secret must not linger in caches.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok((
        StatusCode::CREATED,
        headers,
        Json(CreatedWebhook {
            webhook: WebhookView::from(&webhook),
            secret,
        }),
    ))
}

/// `GET /api/webhooks`
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if query.all {
        user.require_admin()?;
    }
    let owner = (!query.all).then(|| user.name());
    let webhooks = state.db().list_webhooks(owner, MAX_LISTED).await?;
    let views: Vec<WebhookView> = webhooks.iter().map(WebhookView::from).collect();
    Ok(Json(serde_json::json!({ "webhooks": views })))
}

/// `DELETE /api/webhooks/{id}`: the webhook and its delivery log; pending deliveries are
/// not sent.
pub async fn delete(
    State(state): State<AppState>,
    user: AuthUser,
    addr: ClientAddr,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let webhook = visible_webhook(&state, &user, &id).await?;
    if !state.db().delete_webhook(&webhook.id).await? {
        return Err(not_found());
    }
    tracing::info!(webhook = %webhook.id, "webhook deleted");
    audit(
        &state,
        AuditRecord::new("webhook.delete")
            .actor(user.name())
            .target(&webhook.id),
        addr,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/webhooks/{id}/deliveries`: the newest deliveries first.
pub async fn deliveries(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<DeliveriesQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_DELIVERIES);
    if !(1..=MAX_DELIVERIES).contains(&limit) {
        return Err(ApiError::Rejected {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_query",
            message: format!("limit must be between 1 and {MAX_DELIVERIES}"),
        });
    }
    let webhook = visible_webhook(&state, &user, &id).await?;
    let deliveries = state.db().webhook_deliveries(&webhook.id, limit).await?;
    let views: Vec<DeliveryView> = deliveries.into_iter().map(DeliveryView::from).collect();
    Ok(Json(serde_json::json!({ "deliveries": views })))
}
