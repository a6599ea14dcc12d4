//! `/api/webhooks`: register, list, delete, and read the delivery log.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use serde::Deserialize;
use storefactory_sql::{
    AuditRecord, DEFAULT_DELIVERIES, Webhook, WebhookEvents, WebhookRequest, WebhookRules,
};

use crate::api_error::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::auth::{AuthUser, ClientAddr};
use crate::routes::stores::audit;
use crate::state::AppState;

pub use storefactory_sql::{CreatedWebhook, DeliveryView, MAX_DELIVERIES, WebhookView};

/// Most webhooks in an admin's listing of everyone's.
const MAX_LISTED: usize = 1000;

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

fn not_found() -> ApiError {
    ApiError::NotFound("webhook not found".to_owned())
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
    let registered = state
        .db()
        .register_webhook(
            WebhookRequest {
                owner: user.name().to_owned(),
                url: body.url,
                events: body.events.unwrap_or(WebhookEvents::All),
                all_stores: body.all_stores,
            },
            WebhookRules {
                allow_private: config.allow_private,
                max_per_owner: config.max_per_user,
            },
            state.sealing_key(),
        )
        .await
        .map_err(|error| match error {
            storefactory_sql::Error::WebhookLimit { .. } => ApiError::Conflict {
                code: "webhook_limit",
                message: error.to_string(),
            },
            // The caller asked for more than its role allows: as for any admin-only request.
            storefactory_sql::Error::WebhookNotAdmin { .. } => {
                ApiError::Forbidden("only admins may do this".to_owned())
            }
            other => other.into(),
        })?;
    let webhook = &registered.webhook;
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
        Json(CreatedWebhook::from(&registered)),
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
