//! Backups, restores and clones: `/api/stores/{id}/backups`, `/restore` and `/clone` for
//! people; `/internal/backups/{id}`, where a store's backup Job hands its archive over, and
//! `/internal/restores/{id}/archive`, where a restore Job fetches it.
//!
//! The internal endpoint is authenticated by the Job's one-time token (only its SHA-256 is
//! recorded; compared in constant time), takes at most the configured size, streams the
//! body to a temporary file that is synced and renamed into place only when its SHA-256
//! matches the one announced, and then completes the backup. It needs no cluster: the
//! database and the archive folder are all it touches.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use storefactory_core::backup::{
    BackupId, BackupKind, BackupOutcome, BackupRecord, BackupRepository, BackupStatus,
    ReceiveError, RestoreRecord,
};
use storefactory_core::blueprint::SecretInputs;
use storefactory_core::port::StoreRepository;
use storefactory_core::provisioner::CreateStore;
use storefactory_core::spec::StoreId;
use storefactory_core::store::{EventKind, Timestamp};
use storefactory_sql::AuditRecord;

use crate::api_error::{ApiError, ApiJson, ApiPath};
use crate::auth::{AuthUser, ClientAddr};
use crate::routes::stores::{StoreView, audit, audit_store, visible_store};
use crate::state::AppState;

/// The header in which a backup Job announces the SHA-256 of its archive.
pub const SHA256_HEADER: &str = "x-backup-sha256";

/// `GET /api/stores/{id}/backups`: the store's backups, newest first, with their size and
/// times.
#[derive(Debug, Serialize)]
pub struct BackupList {
    /// The backups.
    pub backups: Vec<BackupRecord>,
}

fn backup_not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("backup {id} not found"))
}

fn backup_id(text: &str) -> Result<BackupId, ApiError> {
    BackupId::new(text).map_err(|_| backup_not_found(text))
}

/// `POST /api/stores/{id}/backups`: 202 with the backup, `pending`; it becomes
/// `completed` (or `failed`, with the reason) once its Job has run. Only ready stores (409
/// otherwise; nothing changes).
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    addr: ClientAddr,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<BackupRecord>), ApiError> {
    let record = visible_store(&state, &user, &id).await?;
    let provisioner = state.cluster().await?;
    let backup = state
        .within_cluster_deadline(async {
            Ok(provisioner.backup(&record.id, BackupKind::Manual).await?)
        })
        .await?;
    audit(
        &state,
        AuditRecord::new("backup.create")
            .actor(user.name())
            .target(record.id.as_str())
            .detail(backup.id.as_str()),
        addr,
    )
    .await;
    Ok((StatusCode::ACCEPTED, Json(backup)))
}

/// `GET /api/stores/{id}/backups`
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<BackupList>, ApiError> {
    let record = visible_store(&state, &user, &id).await?;
    let backups = state.db().list_backups(&record.id).await?;
    Ok(Json(BackupList { backups }))
}

/// `GET /api/stores/{id}/backups/{backup}`
pub async fn get(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath((id, backup)): ApiPath<(String, String)>,
) -> Result<Json<BackupRecord>, ApiError> {
    let record = visible_store(&state, &user, &id).await?;
    let backup_id = backup_id(&backup)?;
    match state.db().get_backup(&backup_id).await? {
        Some(found) if found.store_id == record.id => Ok(Json(found)),
        _ => Err(backup_not_found(&backup)),
    }
}

/// `DELETE /api/stores/{id}/backups/{backup}`: the archive and the record; 409 while the
/// backup is still being taken.
pub async fn delete(
    State(state): State<AppState>,
    user: AuthUser,
    addr: ClientAddr,
    ApiPath((id, backup)): ApiPath<(String, String)>,
) -> Result<Json<BackupRecord>, ApiError> {
    let record = visible_store(&state, &user, &id).await?;
    let backup_id = backup_id(&backup)?;
    let found = match state.db().get_backup(&backup_id).await? {
        Some(found) if found.store_id == record.id => found,
        _ => return Err(backup_not_found(&backup)),
    };
    if found.status == BackupStatus::Pending {
        return Err(ApiError::Conflict {
            code: "invalid_state",
            message: format!(
                "backup {backup} is still being taken; delete it once it completed or failed"
            ),
        });
    }
    if let Some(archives) = state.archives() {
        archives.remove(&backup_id).await.map_err(|error| {
            tracing::error!(backup = %backup_id, %error, "cannot remove a backup archive");
            ApiError::Internal
        })?;
    }
    state.db().delete_backup(&backup_id).await?;
    audit_store(&state, "backup.delete", &user, &record.id, addr).await;
    Ok(Json(found))
}

/// What `PUT /internal/backups/{id}` answers.
#[derive(Debug, Serialize)]
pub struct Received {
    /// The backup.
    pub id: BackupId,
    /// Bytes kept.
    pub size_bytes: u64,
    /// Their SHA-256.
    pub sha256: String,
}

/// `PUT /internal/backups/{id}`: a backup Job hands over its archive (see the module).
/// 404 for an unknown backup, a wrong token or a backup not pending any more (nothing is
/// told about which); 413 over the size limit, 422 on a checksum mismatch and 502 when
/// the archive bucket refused it or could not be reached (the backup fails with the
/// reason); 400 for an interrupted body (the backup stays pending, the Job may try again).
pub async fn upload(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Received>, ApiError> {
    let unknown = || ApiError::NotFound("no such pending backup for this token".to_owned());
    let backup_id = BackupId::new(&id).map_err(|_| unknown())?;
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::Unauthorized("a backup token is required".to_owned()))?;
    let record = match state.db().get_backup(&backup_id).await? {
        Some(record) if record.status == BackupStatus::Pending && record.accepts(token) => record,
        _ => return Err(unknown()),
    };
    let expected = headers
        .get(SHA256_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| ApiError::Invalid {
            field: SHA256_HEADER.to_owned(),
            message: "must be the archive's SHA-256, 64 hex digits".to_owned(),
        })?;
    let Some(archives) = state.archives() else {
        return Err(ApiError::Internal);
    };
    let max = state.max_backup_bytes();
    let received = archives
        .receive(
            &backup_id,
            Box::pin(
                body.into_data_stream()
                    .map(|chunk| chunk.map(|b| b.to_vec()).map_err(|e| e.to_string())),
            ),
            max,
            &expected,
        )
        .await;
    let (size_bytes, sha256) = match received {
        Ok(done) => done,
        Err(ReceiveError::Body(error)) => {
            return Err(ApiError::Rejected {
                status: StatusCode::BAD_REQUEST,
                code: "upload_interrupted",
                message: format!("the upload was interrupted: {error}"),
            });
        }
        Err(ReceiveError::Io(error)) => {
            tracing::error!(backup = %backup_id, %error, "cannot write a backup archive");
            return Err(ApiError::Internal);
        }
        Err(refused) => {
            let (status, code) = match refused {
                ReceiveError::TooLarge { .. } => {
                    (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
                }
                // The bucket refused it or could not be reached: the backup fails with the
                // reason (which names no credentials), and a new one may be taken.
                ReceiveError::Store(_) => (StatusCode::BAD_GATEWAY, "archive_store_failed"),
                _ => (StatusCode::UNPROCESSABLE_ENTITY, "checksum_mismatch"),
            };
            let message = refused.to_string();
            settle(&state, &record, BackupOutcome::Failed(message.clone())).await?;
            return Err(ApiError::Rejected {
                status,
                code,
                message,
            });
        }
    };
    let outcome = BackupOutcome::Completed {
        size_bytes,
        sha256: sha256.clone(),
    };
    if !settle(&state, &record, outcome).await? {
        // Settled meanwhile (its Job was failed): what arrived is not kept.
        let _ = archives.remove(&backup_id).await;
        return Err(unknown());
    }
    Ok(Json(Received {
        id: backup_id,
        size_bytes,
        sha256,
    }))
}

/// Settles a pending backup and tells its store's history; `false` if it was settled
/// already. Recorded through the database: every process (the leader's reconciler too)
/// follows it through the event feed.
async fn settle(
    state: &AppState,
    record: &BackupRecord,
    outcome: BackupOutcome,
) -> Result<bool, ApiError> {
    let message = match &outcome {
        BackupOutcome::Completed { size_bytes, .. } => {
            format!("backup {} completed ({size_bytes} bytes)", record.id)
        }
        BackupOutcome::Failed(reason) => format!("backup {} failed: {reason}", record.id),
    };
    let Some(settled) = state.db().settle_backup(&record.id, outcome).await? else {
        return Ok(false);
    };
    let kind = match settled.status {
        BackupStatus::Failed => EventKind::Warning { message },
        _ => EventKind::Step {
            step: "backup".to_owned(),
            message,
        },
    };
    // The store's record may be gone (purged); the backup is settled all the same.
    if state.db().get_store(&record.store_id).await?.is_some()
        && let Err(error) = state
            .db()
            .append_event(&record.store_id, Timestamp::now(), &kind)
            .await
    {
        tracing::warn!(store = %record.store_id, %error, "cannot record a backup's event");
    }
    tracing::info!(store = %record.store_id, backup = %record.id, status = %settled.status, "backup settled");
    Ok(true)
}

/// The body of `POST /api/stores/{id}/restore`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreBody {
    /// The backup to restore: one of this store's, or of another store the caller may see.
    pub backup: String,
}

/// `POST /api/stores/{id}/restore`: 202 with the restore, `running`; the store is
/// `restoring` until it ended (`ready` again, or `failed` with the reason). 404 for a
/// backup that does not exist (or that the caller may not see), 409 when the store is not
/// ready or failed, or the backup not completed: nothing changes.
pub async fn restore(
    State(state): State<AppState>,
    user: AuthUser,
    addr: ClientAddr,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<RestoreBody>,
) -> Result<(StatusCode, Json<RestoreRecord>), ApiError> {
    let record = visible_store(&state, &user, &id).await?;
    let backup_id = backup_id(&body.backup)?;
    let backup = match state.db().get_backup(&backup_id).await? {
        Some(backup) => backup,
        None => return Err(backup_not_found(&body.backup)),
    };
    // A backup of another store: only if the caller may see that store (its record may
    // be gone, then only admins may).
    if backup.store_id != record.id {
        let source = state.db().get_store(&backup.store_id).await?;
        let visible = user.is_admin() || source.is_some_and(|s| s.owner == user.name());
        if !visible {
            return Err(backup_not_found(&body.backup));
        }
    }
    let provisioner = state.cluster().await?;
    let restore = state
        .within_cluster_deadline(async { Ok(provisioner.restore(&record.id, &backup_id).await?) })
        .await?;
    audit(
        &state,
        AuditRecord::new("store.restore")
            .actor(user.name())
            .target(record.id.as_str())
            .detail(backup_id.as_str()),
        addr,
    )
    .await;
    Ok((StatusCode::ACCEPTED, Json(restore)))
}

/// The body of `POST /api/stores/{id}/clone`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloneBody {
    /// A name for people for the clone; `<source name> (copy)` when absent.
    #[serde(default)]
    pub name: Option<String>,
}

/// The answer to `POST /api/stores/{id}/clone`.
#[derive(Debug, Serialize)]
pub struct ClonedStore {
    /// The new store, provisioning.
    pub store: StoreView,
    /// The restore that waits for it to be ready.
    pub restore: RestoreRecord,
}

/// `POST /api/stores/{id}/clone`: 202 with a new store of the caller's (a staging copy),
/// which is provisioned and then restored from the source's latest completed backup, its
/// URLs rewritten to its own. The caller's quota applies (403 `quota_exceeded`, nothing
/// created); 409 when the source has no completed backup.
///
/// The clone keeps the source's WordPress administrator (user name and password): they are
/// in the restored database, and the clone's Secret is created with them so that its
/// credentials are the ones that work.
pub async fn clone(
    State(state): State<AppState>,
    user: AuthUser,
    addr: ClientAddr,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<CloneBody>,
) -> Result<(StatusCode, HeaderMap, Json<ClonedStore>), ApiError> {
    let source = visible_store(&state, &user, &id).await?;
    let usage = state.db().usage(user.name()).await?;
    if let Some(message) = usage.exceeds(&user.0.quota, source.storage_gib()) {
        return Err(ApiError::QuotaExceeded(message));
    }
    // Said before anything else is looked at: the source's administrator is read from its
    // Secret below, which a store never ready has not.
    let has_backup = state
        .db()
        .list_backups(&source.id)
        .await?
        .iter()
        .any(|b| b.status == BackupStatus::Completed);
    if !has_backup {
        return Err(ApiError::Conflict {
            code: "invalid_state",
            message: format!(
                "store {} has no completed backup to clone from; back it up first",
                source.id
            ),
        });
    }
    let provisioner = state.cluster().await?;
    let credentials = state
        .within_cluster_deadline(async { Ok(provisioner.credentials(&source.id).await?) })
        .await?;
    let defaults = state.store_defaults();
    let new_id = StoreId::generate();
    let mut spec = source.spec.clone();
    spec.id = new_id.clone();
    spec.owner = user.name().to_owned();
    spec.ingress.host = format!("{}.{}", new_id.namespace(), defaults.domain);
    spec.ingress.class = defaults.ingress_class.clone();
    spec.ingress.tls = defaults
        .tls_cluster_issuer
        .clone()
        .map(storefactory_core::spec::TlsSpec::ClusterIssuer);
    spec.wordpress.admin_user = credentials.username.clone();
    let name = match body.name.map(|n| n.trim().to_owned()) {
        Some(name) if !name.is_empty() => name,
        _ => format!("{} (copy)", source.name),
    };
    if name.chars().count() > 100 {
        return Err(ApiError::Invalid {
            field: "name".to_owned(),
            message: "must be at most 100 characters".to_owned(),
        });
    }
    let request = CreateStore {
        spec,
        name,
        blueprint: Some(source.blueprint.clone()),
        inputs: SecretInputs::one("admin_password", credentials.password.clone()),
    };
    state.count_creation(user.name())?;
    let (record, restore) = state
        .within_cluster_deadline(async { Ok(provisioner.clone_store(&source.id, request).await?) })
        .await?;
    tracing::info!(store = %record.id, source = %source.id, "store cloned");
    audit(
        &state,
        AuditRecord::new("store.clone")
            .actor(user.name())
            .target(record.id.as_str())
            .detail(source.id.as_str()),
        addr,
    )
    .await;
    let mut headers = HeaderMap::new();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/stores/{}", record.id)) {
        headers.insert(header::LOCATION, location);
    }
    Ok((
        StatusCode::ACCEPTED,
        headers,
        Json(ClonedStore {
            store: StoreView::from(&record),
            restore,
        }),
    ))
}

/// `GET /internal/restores/{id}/archive`: a store's restore Job fetches the archive of the
/// backup it restores, with its one-time token. 404 for anything else (an unknown or ended
/// restore, a wrong token, an archive that is gone).
pub async fn download(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let unknown = || ApiError::NotFound("no such running restore for this token".to_owned());
    let restore_id = BackupId::new(&id).map_err(|_| unknown())?;
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::Unauthorized("a restore token is required".to_owned()))?;
    let restore = match state.db().get_restore(&restore_id).await? {
        Some(restore) if restore.accepts(token) => restore,
        _ => return Err(unknown()),
    };
    let backup = match state.db().get_backup(&restore.backup_id).await? {
        Some(backup) if backup.status == BackupStatus::Completed => backup,
        _ => return Err(unknown()),
    };
    let Some(archives) = state.archives() else {
        return Err(unknown());
    };
    let Some((size, chunks)) = archives.read(&backup.id).await.map_err(|error| {
        tracing::error!(backup = %backup.id, %error, "cannot read a backup archive");
        ApiError::Internal
    })?
    else {
        return Err(unknown());
    };
    let mut response = Response::new(Body::from_stream(chunks));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    if let Some(sum) = backup
        .sha256
        .as_deref()
        .and_then(|s| HeaderValue::from_str(s).ok())
    {
        headers.insert(SHA256_HEADER, sum);
    }
    Ok(response)
}
