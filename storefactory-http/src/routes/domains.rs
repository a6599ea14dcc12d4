//! `/api/stores/{id}/domains`: a store's custom domains — list, add, remove — for its owner
//! or an admin, like every other store route.
//!
//! Adding or removing a domain updates the store's Ingress in place: the store stays
//! `ready` (or `suspended`) and keeps its own host throughout. Refusals change nothing: an
//! invalid name (422 `invalid_input`), a name under the platform's own domain (422), a
//! domain another store holds (409 `domain_taken`), one too many (409 `domain_limit`), a
//! store that is neither ready nor suspended (409 `invalid_state`), a domain the store does
//! not have (404).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use storefactory_core::spec::normalize_domain;

use storefactory_core::error::RepositoryError;
use storefactory_core::port::StoreRepository as _;
use storefactory_core::spec::StoreId;
use storefactory_core::store::StoreStatus;
use storefactory_sql::AuditRecord;

use super::stores::{StoreView, audit, visible_store};
use crate::api_error::{ApiError, ApiJson, ApiPath};
use crate::auth::{AuthUser, ClientAddr};
use crate::state::AppState;

/// The answer to `GET /api/stores/{id}/domains`.
#[derive(Debug, Serialize)]
pub struct DomainList {
    /// The store.
    pub store_id: String,
    /// The store's own host, which cannot be removed.
    pub host: String,
    /// Its custom domains, in the order they were added.
    pub domains: Vec<String>,
}

/// The body of `POST /api/stores/{id}/domains`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddDomainBody {
    /// The domain, e.g. `shop.example.com`; case and a trailing dot do not matter.
    pub domain: String,
}

/// `GET /api/stores/{id}/domains`
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<DomainList>, ApiError> {
    let record = visible_store(&state, &user, &id).await?;
    Ok(Json(DomainList {
        store_id: record.id.to_string(),
        host: record.spec.ingress.host.clone(),
        domains: record.spec.ingress.domains.clone(),
    }))
}

/// `POST /api/stores/{id}/domains`: 201 with the store when the domain was added, 200 when
/// the store already had it.
pub async fn add(
    State(state): State<AppState>,
    user: AuthUser,
    addr: ClientAddr,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<AddDomainBody>,
) -> Result<(StatusCode, Json<StoreView>), ApiError> {
    let record = visible_store(&state, &user, &id).await?;
    let domain = normalize_domain(&body.domain)?;
    // Names under the platform's domain are the ones it gives to stores (`store-<id>.…`):
    // a store holding one could take the host of a store created later.
    let platform = &state.store_defaults().domain;
    let under_platform = domain == *platform || domain.ends_with(&format!(".{platform}"));
    if under_platform && domain != record.spec.ingress.host {
        if is_a_store_host(&state, &domain).await? {
            return Err(RepositoryError::DomainTaken { host: domain }.into());
        }
        return Err(ApiError::Invalid {
            field: "domain".to_owned(),
            message: format!(
                "{domain} is under {platform}, the platform's own domain, whose names it gives \
                 to stores; use a domain of your own"
            ),
        });
    }
    let had = record.spec.ingress.domains.contains(&domain);
    let provisioner = state.cluster().await?;
    let record = state
        .within_cluster_deadline(async { Ok(provisioner.add_domain(&record.id, &domain).await?) })
        .await?;
    if had {
        return Ok((StatusCode::OK, Json(StoreView::from(&record))));
    }
    state.domains_changed();
    tracing::info!(store = %record.id, domain, "custom domain added");
    audit_domain(&state, "store.domain.add", &user, &record.id, &domain, addr).await;
    Ok((StatusCode::CREATED, Json(StoreView::from(&record))))
}

/// `DELETE /api/stores/{id}/domains/{domain}`: 200 with the store.
pub async fn remove(
    State(state): State<AppState>,
    user: AuthUser,
    addr: ClientAddr,
    ApiPath((id, domain)): ApiPath<(String, String)>,
) -> Result<Json<StoreView>, ApiError> {
    let record = visible_store(&state, &user, &id).await?;
    let provisioner = state.cluster().await?;
    let record = state
        .within_cluster_deadline(async {
            Ok(provisioner.remove_domain(&record.id, &domain).await?)
        })
        .await?;
    state.domains_changed();
    tracing::info!(store = %record.id, domain, "custom domain removed");
    let domain = normalize_domain(&domain).unwrap_or(domain);
    audit_domain(
        &state,
        "store.domain.remove",
        &user,
        &record.id,
        &domain,
        addr,
    )
    .await;
    Ok(Json(StoreView::from(&record)))
}

/// Whether `host` is the own host of a store that is not deleted (`store-<id>.<domain>`,
/// found by its id): asking for it is asking for another store's host, and is answered as
/// such.
async fn is_a_store_host(state: &AppState, host: &str) -> Result<bool, ApiError> {
    let Some(id) = host
        .strip_prefix("store-")
        .and_then(|rest| rest.split_once('.'))
        .and_then(|(label, _)| StoreId::new(label).ok())
    else {
        return Ok(false);
    };
    Ok(matches!(
        state.db().get_store(&id).await?,
        Some(record) if record.status != StoreStatus::Deleted && record.spec.ingress.host == host
    ))
}

/// Records `action` by `user` on the store `id` with the domain as its detail.
async fn audit_domain(
    state: &AppState,
    action: &str,
    user: &AuthUser,
    id: &StoreId,
    domain: &str,
    addr: ClientAddr,
) {
    let record = AuditRecord::new(action)
        .actor(user.name())
        .target(id.as_str())
        .detail(domain);
    audit(state, record, addr).await;
}
