//! `/api/stores`: create, list, read, change, delete, retry, suspend, resume, credentials
//! (custom domains are in [`super::domains`]).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use storefactory_core::blueprint::{SecretInputs, generate_password, validate_admin_password};
use storefactory_core::change::StoreChange;
use storefactory_core::port::{StoreFilter, StoreRepository};
use storefactory_core::product::{parse_product_json, parse_products};
use storefactory_core::provisioner::CreateStore;
use storefactory_core::spec::{Currency, Quantity, Resources, StoreId, StoreSpec, TlsSpec};
use storefactory_core::store::{StoreRecord, StoreStatus};
use storefactory_sql::{AuditRecord, StoreCursor, StoreOrder};

use crate::api_error::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::auth::{AuthUser, ClientAddr};
use crate::state::AppState;

pub use storefactory_core::spec::{DEFAULT_SAMPLE_PRODUCTS, DEFAULT_STORAGE_GIB, MAX_STORAGE_GIB};

/// Stores per page of `GET /api/stores` when the client does not say, and the most it may
/// ask for. Quotas keep one user's stores far below it, so clients of the product this
/// replaces, which know nothing of pages, get all of theirs.
pub const MAX_PAGE_SIZE: usize = 500;

/// A store as the API shows it. Never carries a password.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoreView {
    /// The id; the namespace is `store-<id>`.
    pub id: String,
    /// The store's Kubernetes namespace.
    pub namespace: String,
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
    /// The WordPress administrator's user name.
    pub admin_user: String,
    /// Size of the WordPress volume, GiB, as asked for (`storage_size_gi`).
    pub storage_gi: u64,
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
    /// Custom domains: more hosts the store answers on, besides the host of `url`.
    #[serde(default)]
    pub domains: Vec<String>,
}

impl From<&StoreRecord> for StoreView {
    fn from(record: &StoreRecord) -> Self {
        let url = record.spec.url();
        StoreView {
            id: record.id.to_string(),
            namespace: record.id.namespace(),
            name: record.name.clone(),
            status: record.status,
            reason: record.reason.clone(),
            admin_url: format!("{url}wp-admin/"),
            url,
            admin_user: record.spec.wordpress.admin_user.clone(),
            storage_gi: record.spec.wordpress.storage.gib_ceil(),
            storage_gib: record.storage_gib(),
            created_at: record.created_at.0,
            updated_at: record.updated_at.0,
            owner: record.owner.clone(),
            blueprint: record.blueprint.clone(),
            domains: record.spec.ingress.domains.clone(),
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
    /// Size of the WordPress volume, GiB: a whole number, or a string of one.
    #[serde(default)]
    pub storage_size_gi: Option<serde_json::Value>,
    /// The WordPress administrator's password; generated when absent or blank.
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

/// Products given as `Name|Price|Description` lines or as a JSON list (as text or a list).
fn sample_products(
    value: serde_json::Value,
) -> Result<Vec<storefactory_core::product::Product>, ApiError> {
    match value {
        serde_json::Value::String(text) => Ok(parse_products(&text)?),
        list @ serde_json::Value::Array(_) => Ok(parse_product_json(&list.to_string())?),
        _ => Err(invalid(
            "sample_products",
            "expected Name|Price|Description lines or a list of products",
        )),
    }
}

/// The body of `PATCH /api/stores/{id}`: what to change in a ready store, with the names of
/// `POST /api/stores` where it has them; everything left out stays as it is.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeStoreBody {
    /// A bigger WordPress volume, GiB: a whole number, or a string of one.
    #[serde(default)]
    pub storage_size_gi: Option<serde_json::Value>,
    /// The products from now on: `Name|Price|Description` lines, or a JSON list of products
    /// (as text or as a list). Seeding runs again: products are updated by SKU, none is
    /// duplicated.
    #[serde(default)]
    pub sample_products: Option<serde_json::Value>,
    /// The site title.
    #[serde(default)]
    pub site_title: Option<String>,
    /// The shop currency, a three-letter ISO 4217 code.
    #[serde(default)]
    pub currency: Option<String>,
    /// Resources of the WordPress container.
    #[serde(default)]
    pub wordpress_resources: Option<Resources>,
    /// Resources of the MySQL container.
    #[serde(default)]
    pub mysql_resources: Option<Resources>,
}

impl ChangeStoreBody {
    /// The change this body asks for; its fields are checked against the store by the
    /// Provisioner.
    fn into_change(self) -> Result<StoreChange, ApiError> {
        let storage_gib = match self.storage_size_gi {
            None | Some(serde_json::Value::Null) => None,
            size => Some(storage_size(size)?),
        };
        let products = match self.sample_products {
            None | Some(serde_json::Value::Null) => None,
            Some(value) => Some(sample_products(value)?),
        };
        let currency = self.currency.map(Currency::new).transpose()?;
        Ok(StoreChange {
            storage_gib,
            wordpress_resources: self.wordpress_resources,
            mysql_resources: self.mysql_resources,
            products,
            site_title: self.site_title,
            currency,
        })
    }
}

/// The WordPress volume asked for: `2` or `"2"`, as the product this replaces took it.
fn storage_size(value: Option<serde_json::Value>) -> Result<u64, ApiError> {
    let size = match value {
        None | Some(serde_json::Value::Null) => return Ok(DEFAULT_STORAGE_GIB),
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(text)) => {
            let text = text.trim();
            // Digits only: "+2", "2.5" or "0x2" are not sizes someone means.
            (!text.is_empty() && text.len() <= 20 && text.bytes().all(|b| b.is_ascii_digit()))
                .then(|| text.parse::<u64>().ok())
                .flatten()
        }
        Some(_) => None,
    };
    match size {
        Some(size) if (1..=MAX_STORAGE_GIB).contains(&size) => Ok(size),
        _ => Err(invalid(
            "storage_size_gi",
            format!("must be a whole number of GiB between 1 and {MAX_STORAGE_GIB}"),
        )),
    }
}

impl CreateStoreBody {
    /// The store spec this body asks for, owned by `owner`, published as configured, and
    /// the WordPress administrator's password (the one asked for, or a generated one).
    fn into_request(
        self,
        state: &AppState,
        owner: &str,
    ) -> Result<(CreateStore, String), ApiError> {
        let defaults = state.store_defaults();
        let id = StoreId::generate();
        let host = format!("{}.{}", id.namespace(), defaults.domain);
        let mut spec = StoreSpec::new(id, owner, host);
        spec.products = match self.sample_products {
            None | Some(serde_json::Value::Null) => parse_products(DEFAULT_SAMPLE_PRODUCTS)?,
            Some(value) => sample_products(value)?,
        };
        let storage = storage_size(self.storage_size_gi)?;
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
        // Blank means "generate one", as in the product this replaces. Generated here rather
        // than by the Provisioner so that the answer can tell it, once.
        let admin_password = match self.admin_password {
            Some(password) if !password.trim().is_empty() => {
                validate_admin_password(&password)?;
                password
            }
            _ => generate_password(20),
        };
        Ok((
            CreateStore {
                spec,
                name,
                blueprint: None,
                // The built-in blueprint's input for the WordPress administrator's password.
                inputs: SecretInputs::one("admin_password", admin_password.clone()),
            },
            admin_password,
        ))
    }
}

/// The answer to `POST /api/stores`: the store and, this once, the WordPress administrator's
/// password. Its `Debug` output hides the password.
#[derive(Serialize)]
pub struct CreatedStore {
    /// The store.
    #[serde(flatten)]
    pub store: StoreView,
    /// The WordPress administrator's password (asked for or generated).
    pub admin_password: String,
}

impl std::fmt::Debug for CreatedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedStore")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// One store with the products it is seeded with (`GET /api/stores/{id}`).
#[derive(Debug, Serialize)]
pub struct StoreDetail {
    /// The store.
    #[serde(flatten)]
    pub store: StoreView,
    /// Its sample products.
    pub products: Vec<storefactory_core::product::Product>,
}

/// The answer to `DELETE /api/stores/{id}`: `success` as the product this replaces said
/// it, and the store, now `deleting` (its namespace goes in the background).
#[derive(Debug, Serialize)]
pub struct DeletedStore {
    /// Always `true`: the deletion is under way.
    pub success: bool,
    /// What happens now, for people.
    pub message: String,
    /// The store.
    #[serde(flatten)]
    pub store: StoreView,
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
    /// Most stores in the answer, 1 to [`MAX_PAGE_SIZE`] (the default).
    #[serde(default)]
    pub limit: Option<usize>,
    /// Where to continue: the `next_cursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
    /// `oldest` first (the default) or `newest` first.
    #[serde(default)]
    pub order: ListOrder,
}

/// The order of `GET /api/stores`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListOrder {
    /// In the order they were created.
    #[default]
    Oldest,
    /// The most recently created first.
    Newest,
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
pub(crate) async fn audit_store(
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
pub(crate) async fn visible_store(
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
    // A full quota is refused before the products are parsed and the blueprint rendered:
    // that work is the expensive part. The insert checks again, atomically.
    let usage = state.db().usage(user.name()).await?;
    if let Some(message) = usage.exceeds(&user.0.quota, 0) {
        return Err(ApiError::QuotaExceeded(message));
    }
    let (request, admin_password) = body.into_request(&state, user.name())?;
    if let Some(message) = usage.exceeds(&user.0.quota, request.spec.storage_gib()) {
        return Err(ApiError::QuotaExceeded(message));
    }
    let provisioner = state.cluster().await?;
    // Counted only for requests that would create a store; deleting frees quota, not
    // this budget.
    state.count_creation(user.name())?;
    let record = provisioner.create(request).await?;
    tracing::info!(store = %record.id, owner = %record.owner, "store created");
    audit_store(&state, "store.create", &user, &record.id, addr).await;
    let mut headers = HeaderMap::new();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/stores/{}", record.id)) {
        headers.insert(header::LOCATION, location);
    }
    // Secrets must not linger in caches.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let created = CreatedStore {
        store: StoreView::from(&record),
        admin_password,
    };
    Ok((StatusCode::CREATED, headers, Json(created)))
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
    let limit = query.limit.unwrap_or(MAX_PAGE_SIZE);
    if !(1..=MAX_PAGE_SIZE).contains(&limit) {
        return Err(ApiError::Rejected {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_query",
            message: format!("limit must be between 1 and {MAX_PAGE_SIZE}"),
        });
    }
    let cursor = query
        .cursor
        .as_deref()
        .map(str::parse::<StoreCursor>)
        .transpose()
        .map_err(|_| ApiError::Rejected {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_query",
            message: "cursor is not a next_cursor this server handed out".to_owned(),
        })?;
    let filter = StoreFilter {
        owner: (!query.all).then(|| user.name().to_owned()),
        include_deleted: query.include_deleted,
    };
    let order = match query.order {
        ListOrder::Oldest => StoreOrder::OldestFirst,
        ListOrder::Newest => StoreOrder::NewestFirst,
    };
    let page = state
        .db()
        .list_stores_page(&filter, cursor, limit, order)
        .await?;
    let stores: Vec<StoreView> = page.stores.iter().map(StoreView::from).collect();
    Ok(Json(serde_json::json!({
        "stores": stores,
        "next_cursor": page.next.map(|c| c.to_string()),
    })))
}

/// `GET /api/stores/{id}`
pub async fn get(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<StoreDetail>, ApiError> {
    let record = visible_store(&state, &user, &id).await?;
    Ok(Json(StoreDetail {
        store: StoreView::from(&record),
        products: record.spec.products.clone(),
    }))
}

/// `PATCH /api/stores/{id}`: changes a ready store (owner or admin). 202 with the store,
/// now `updating`; it becomes `ready` again once the change is applied and observed (a
/// bigger volume grown, seeding run again for new products, title or currency). 200 with
/// the store as it is when the body changes nothing. Refused, changing nothing: a store
/// that is not ready (409), invalid input or a volume that would shrink or cannot grow
/// (422), storage beyond the owner's quota (403).
pub async fn change(
    State(state): State<AppState>,
    user: AuthUser,
    addr: ClientAddr,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ChangeStoreBody>,
) -> Result<(StatusCode, Json<StoreView>), ApiError> {
    let record = visible_store(&state, &user, &id).await?;
    let change = body.into_change()?;
    let provisioner = state.cluster().await?;
    let record = state
        .within_cluster_deadline(async { Ok(provisioner.change(&record.id, &change).await?) })
        .await
        .map_err(body_field)?;
    if record.status != StoreStatus::Updating {
        return Ok((StatusCode::OK, Json(StoreView::from(&record))));
    }
    tracing::info!(store = %record.id, "store change requested");
    accepted(&state, "store.change", &user, &record, addr).await
}

/// An error about a field of a change, named as the body of `PATCH /api/stores/{id}`
/// names it (`storage_size_gi`, not the core's `storage_gib`).
fn body_field(error: ApiError) -> ApiError {
    match error {
        ApiError::Invalid { field, message } => {
            let field = [
                ("storage_gib", "storage_size_gi"),
                ("products", "sample_products"),
                ("wordpress.resources", "wordpress_resources"),
                ("mysql.resources", "mysql_resources"),
            ]
            .into_iter()
            .find_map(|(core, body)| field.strip_prefix(core).map(|rest| format!("{body}{rest}")))
            .unwrap_or(field);
            ApiError::Invalid { field, message }
        }
        other => other,
    }
}

/// `DELETE /api/stores/{id}`
pub async fn delete(
    State(state): State<AppState>,
    user: AuthUser,
    addr: ClientAddr,
    ApiPath(id): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let record = visible_store(&state, &user, &id).await?;
    let record = state.cluster().await?.delete(&record.id).await?;
    tracing::info!(store = %record.id, "store deletion requested");
    audit_store(&state, "store.delete", &user, &record.id, addr).await;
    // 200, not 202, for the clients of the product this replaces; the status `deleting` says
    // that the namespace goes in the background.
    Ok(Json(DeletedStore {
        success: true,
        message: format!(
            "store {} is being deleted; its namespace {} is removed in the background",
            record.id,
            record.id.namespace()
        ),
        store: StoreView::from(&record),
    }))
}

/// `POST /api/stores/{id}/retry`
pub async fn retry(
    State(state): State<AppState>,
    user: AuthUser,
    addr: ClientAddr,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<StoreView>, ApiError> {
    let record = visible_store(&state, &user, &id).await?;
    let provisioner = state.cluster().await?;
    let record = state
        .within_cluster_deadline(async { Ok(provisioner.retry(&record.id).await?) })
        .await?;
    audit_store(&state, "store.retry", &user, &record.id, addr).await;
    Ok(Json(StoreView::from(&record)))
}

/// `POST /api/stores/{id}/suspend`: 202 with the store, now `suspending`; it becomes
/// `suspended` once no pod is left. Only ready stores of blueprints that declare what
/// suspending means (409 otherwise, saying why; nothing changes).
pub async fn suspend(
    State(state): State<AppState>,
    user: AuthUser,
    addr: ClientAddr,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<StoreView>), ApiError> {
    let record = visible_store(&state, &user, &id).await?;
    let provisioner = state.cluster().await?;
    let record = state
        .within_cluster_deadline(async { Ok(provisioner.suspend(&record.id).await?) })
        .await?;
    tracing::info!(store = %record.id, "store suspension requested");
    accepted(&state, "store.suspend", &user, &record, addr).await
}

/// `POST /api/stores/{id}/resume`: 202 with the store, now `resuming`; it becomes `ready`
/// with the same data and passwords. Only suspended (or suspending) stores (409 otherwise).
pub async fn resume(
    State(state): State<AppState>,
    user: AuthUser,
    addr: ClientAddr,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<StoreView>), ApiError> {
    let record = visible_store(&state, &user, &id).await?;
    let provisioner = state.cluster().await?;
    let record = state
        .within_cluster_deadline(async { Ok(provisioner.resume(&record.id).await?) })
        .await?;
    tracing::info!(store = %record.id, "store resumption requested");
    accepted(&state, "store.resume", &user, &record, addr).await
}

/// The answer to a change the reconciler carries out (suspend, resume, change): audited, then 202
/// with the store as it now is.
async fn accepted(
    state: &AppState,
    action: &str,
    user: &AuthUser,
    record: &StoreRecord,
    addr: ClientAddr,
) -> Result<(StatusCode, Json<StoreView>), ApiError> {
    audit_store(state, action, user, &record.id, addr).await;
    Ok((StatusCode::ACCEPTED, Json(StoreView::from(record))))
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
    let provisioner = state.cluster().await?;
    let credentials = state
        .within_cluster_deadline(async { Ok(provisioner.credentials(&record.id).await?) })
        .await?;
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
