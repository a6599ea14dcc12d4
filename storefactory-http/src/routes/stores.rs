//! `/api/stores`: create, list, read, delete, retry, credentials.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use storefactory_core::port::{StoreFilter, StoreRepository};
use storefactory_core::product::{parse_product_json, parse_products};
use storefactory_core::blueprint::SecretInputs;
use storefactory_core::provisioner::CreateStore;
use storefactory_core::spec::{Quantity, StoreId, StoreSpec, TlsSpec};
use storefactory_core::store::{StoreRecord, StoreStatus};
use storefactory_sql::AuditRecord;

use crate::api_error::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::auth::{AuthUser, ClientAddr};
use crate::state::AppState;

/// Largest WordPress volume a store may ask for, in GiB.
pub const MAX_STORAGE_GIB: u64 = 1024;
/// WordPress volume of a store that does not ask for one, in GiB.
pub const DEFAULT_STORAGE_GIB: u64 = 2;

/// A store as the API shows it. Never carries a password.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoreView {
    /// The id; the namespace is `store-<id>`.
    pub id: String,
    /// Name for people.
    pub name: String,
    /// Lifecycle state.
    pub status: StoreStatus,
    /// Why it failed, or other context for the status.
    pub reason: Option<String>,
    /// The store's public URL.
    pub url: String,
    /// The WordPress admin URL.
    pub admin_url: String,
    /// Storage reserved (WordPress + MySQL volumes), GiB.
    pub storage_gib: u64,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at: i64,
    /// Time of the last change, milliseconds since the Unix epoch.
    pub updated_at: i64,
    /// Username of the owner.
    pub owner: String,
    /// Blueprint the store is built from.
    pub blueprint: String,
}

impl From<&StoreRecord> for StoreView {
    fn from(record: &StoreRecord) -> Self {
        let url = record.spec.url();
        StoreView {
            id: record.id.to_string(),
            name: record.name.clone(),
            status: record.status,
            reason: record.reason.clone(),
            admin_url: format!("{url}wp-admin/"),
            url,
            storage_gib: record.storage_gib(),
            created_at: record.created_at.0,
            updated_at: record.updated_at.0,
            owner: record.owner.clone(),
            blueprint: record.blueprint.clone(),
        }
    }
}

/// The body of `POST /api/stores`, as the product this replaces accepted it. Its `Debug`
/// output hides the admin password.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateStoreBody {
    /// `Name|Price|Description` lines, or a JSON list of products (as text or as a list).
    #[serde(default)]
    pub sample_products: Option<serde_json::Value>,
    /// Size of the WordPress volume, GiB.
    #[serde(default)]
    pub storage_size_gi: Option<u64>,
    /// The WordPress administrator's password; generated when absent.
    #[serde(default)]
    pub admin_password: Option<String>,
    /// A name for people; also the site title.
    #[serde(default)]
    pub name: Option<String>,
}

impl std::fmt::Debug for CreateStoreBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Whether one was given is worth seeing; the password itself never is.
        let admin_password = self.admin_password.as_ref().map(|_| "<hidden>");
        f.debug_struct("CreateStoreBody")
            .field("sample_products", &self.sample_products)
            .field("storage_size_gi", &self.storage_size_gi)
            .field("admin_password", &admin_password)
            .field("name", &self.name)
            .finish()
    }
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::Invalid {
        field: field.to_owned(),
        message: message.into(),
    }
}

impl CreateStoreBody {
    /// The store spec this body asks for, owned by `owner`, published as configured.
    fn into_request(self, state: &AppState, owner: &str) -> Result<CreateStore, ApiError> {
        let defaults = state.store_defaults();
        let id = StoreId::generate();
        let host = format!("{}.{}", id.namespace(), defaults.domain);
        let mut spec = StoreSpec::new(id, owner, host);
        spec.products = match self.sample_products {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(serde_json::Value::String(text)) => parse_products(&text)?,
            Some(list @ serde_json::Value::Array(_)) => parse_product_json(&list.to_string())?,
            Some(_) => {
                return Err(invalid(
                    "sample_products",
                    "expected Name|Price|Description lines or a list of products",
                ));
            }
        };
        let storage = self.storage_size_gi.unwrap_or(DEFAULT_STORAGE_GIB);
        if !(1..=MAX_STORAGE_GIB).contains(&storage) {
            return Err(invalid(
                "storage_size_gi",
                format!("must be between 1 and {MAX_STORAGE_GIB}"),
            ));
        }
        spec.wordpress.storage = Quantity::gib(storage);
        spec.fit_quota_to_volumes();
        spec.storage_class = defaults.storage_class.clone();
        spec.ingress.class = defaults.ingress_class.clone();
        spec.ingress.tls = defaults
            .tls_cluster_issuer
            .clone()
            .map(TlsSpec::ClusterIssuer);
        let name = self.name.unwrap_or_default().trim().to_owned();
        if name.chars().count() > 100 {
            return Err(invalid("name", "must be at most 100 characters"));
        }
        if !name.is_empty() {
            spec.site_title = name.clone();
        }
        spec.validate()?;
        Ok(CreateStore {
            spec,
            name,
            blueprint: None,
            // The built-in blueprint's input for the WordPress administrator's password.
            inputs: self
                .admin_password
                .map(|password| SecretInputs::one("admin_password", password))
                .unwrap_or_default(),
        })
    }
}

/// Query of `GET /api/stores`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Everyone's stores (admins only).
    #[serde(default)]
    pub all: bool,
    /// Include deleted stores kept for the audit trail.
    #[serde(default)]
    pub include_deleted: bool,
}

/// Records an audit entry; a failure is logged, not answered.
pub(crate) async fn audit(state: &AppState, record: AuditRecord, addr: ClientAddr) {
    let record = match addr.0 {
        Some(ip) => record.client_addr(ip),
        None => record,
    };
    if let Err(error) = state.db().record_audit(record).await {
        tracing::warn!(error = %error, "cannot write audit record");
    }
}

/// Records `action` by `user` on the store `id`; a failure is logged, not answered.
async fn audit_store(
    state: &AppState,
    action: &str,
    user: &AuthUser,
    id: &StoreId,
    addr: ClientAddr,
) {
    audit(
        state,
        AuditRecord::new(action)
            .actor(user.name())
            .target(id.as_str()),
        addr,
    )
    .await;
}

/// The store `id` if the caller may see it: its owner or an admin. Anything else is 404,
/// like a store that does not exist.
async fn visible_store(
    state: &AppState,
    user: &AuthUser,
    id: &str,
) -> Result<StoreRecord, ApiError> {
    let id = StoreId::new(id).map_err(|_| ApiError::store_not_found())?;
    match state.db().get_store(&id).await? {
        Some(record) if record.owner == user.name() || user.is_admin() => Ok(record),
        _ => Err(ApiError::store_not_found()),
    }
}

/// `POST /api/stores`
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    addr: ClientAddr,
    ApiJson(body): ApiJson<CreateStoreBody>,
) -> Result<impl IntoResponse, ApiError> {
    let request = body.into_request(&state, user.name())?;
    let provisioner = state.cluster()?;
    let record = provisioner.create(request).await?;
    tracing::info!(store = %record.id, owner = %record.owner, "store created");
    audit_store(&state, "store.create", &user, &record.id, addr).await;
    let mut headers = HeaderMap::new();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/stores/{}", record.id)) {
        headers.insert(header::LOCATION, location);
    }
    Ok((StatusCode::CREATED, headers, Json(StoreView::from(&record))))
}

/// `GET /api/stores`
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if query.all {
        user.require_admin()?;
    }
    let filter = StoreFilter {
        owner: (!query.all).then(|| user.name().to_owned()),
        include_deleted: query.include_deleted,
    };
    let stores: Vec<StoreView> = state
        .db()
        .list_stores(&filter)
        .await?
        .iter()
        .map(StoreView::from)
        .collect();
    Ok(Json(serde_json::json!({ "stores": stores })))
}

/// `GET /api/stores/{id}`
pub async fn get(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<StoreView>, ApiError> {
    let record = visible_store(&state, &user, &id).await?;
    Ok(Json(StoreView::from(&record)))
}

/// `DELETE /api/stores/{id}`
pub async fn delete(
    State(state): State<AppState>,
    user: AuthUser,
    addr: ClientAddr,
    ApiPath(id): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let record = visible_store(&state, &user, &id).await?;
    let record = state.cluster()?.delete(&record.id).await?;
    tracing::info!(store = %record.id, "store deletion requested");
    audit_store(&state, "store.delete", &user, &record.id, addr).await;
    Ok((StatusCode::ACCEPTED, Json(StoreView::from(&record))))
}

/// `POST /api/stores/{id}/retry`
pub async fn retry(
    State(state): State<AppState>,
    user: AuthUser,
    addr: ClientAddr,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<StoreView>, ApiError> {
    let record = visible_store(&state, &user, &id).await?;
    let record = state.cluster()?.retry(&record.id).await?;
    audit_store(&state, "store.retry", &user, &record.id, addr).await;
    Ok(Json(StoreView::from(&record)))
}

/// `GET /api/stores/{id}/credentials`: for the owner only, even admins see others'
/// credentials refused.
pub async fn credentials(
    State(state): State<AppState>,
    user: AuthUser,
    addr: ClientAddr,
    ApiPath(id): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let record = visible_store(&state, &user, &id).await?;
    if record.owner != user.name() {
        return Err(ApiError::Forbidden(
            "only the store's owner may read its credentials".to_owned(),
        ));
    }
    let credentials = state.cluster()?.credentials(&record.id).await?;
    audit_store(&state, "store.credentials", &user, &record.id, addr).await;
    // Secrets must not linger in caches.
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(serde_json::json!({
            "username": credentials.username,
            "password": credentials.password,
            "admin_url": credentials.admin_url,
        })),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Regression: the derived Debug printed the WordPress admin password, so logging a
    // request body (a `?body` in a trace, a debug print) leaked it.
    #[test]
    fn create_store_body_debug_hides_the_admin_password() {
        let body: CreateStoreBody = serde_json::from_value(serde_json::json!({
            "admin_password": "s3cret-wp-admin-pass",
            "name": "Shop",
            "storage_size_gi": 3,
        }))
        .unwrap();
        let text = format!("{body:?}");
        assert!(!text.contains("s3cret-wp-admin-pass"), "{text}");
        assert!(text.contains("<hidden>"), "{text}");
        assert!(text.contains("Shop") && text.contains('3'), "{text}");
        let pretty = format!("{body:#?}");
        assert!(!pretty.contains("s3cret-wp-admin-pass"), "{pretty}");
    }
}
