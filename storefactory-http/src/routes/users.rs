//! `/api/auth/login` and `/api/users`: logging in, the caller's profile, and the admin's
//! user management.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use storefactory_core::port::{Quota, Usage};
use storefactory_sql::{AuditRecord, Role, User};

use crate::api_error::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::auth::{AuthUser, ClientAddr};
use crate::routes::stores::audit;
use crate::state::AppState;

/// Longest username looked up at login; longer ones cannot exist.
const MAX_LOGIN_NAME: usize = 256;

/// The body of `POST /api/auth/login`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    /// The username.
    pub username: String,
    /// The password.
    pub password: String,
}

/// The answer to a successful login.
#[derive(Debug, Serialize, Deserialize)]
pub struct LoginResponse {
    /// The bearer token.
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
    /// The user's id (their username: usernames are unique and never change).
    pub user_id: String,
    /// The username.
    pub username: String,
    /// `admin` or `user`.
    pub role: Role,
}

/// A user as the API shows it, with current usage. Never carries a password hash.
///
/// `max_stores`, `max_storage`, `current_stores` and `current_storage` are the flat fields of
/// the product this replaces (storage in GiB, MySQL's volume counted); `quota` and `usage`
/// say the same, grouped.
#[derive(Debug, Serialize, Deserialize)]
pub struct UserView {
    /// The username.
    pub username: String,
    /// `admin` or `user`.
    pub role: Role,
    /// Limits.
    pub quota: Quota,
    /// What the user holds now.
    pub usage: Usage,
    /// Most stores at once (`quota.max_stores`).
    pub max_stores: u32,
    /// Most storage over all stores, GiB (`quota.max_storage_gib`).
    pub max_storage: u64,
    /// Stores held now (`usage.stores`).
    pub current_stores: u32,
    /// Storage held now, GiB, WordPress and MySQL volumes (`usage.storage_gib`).
    pub current_storage: u64,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at: i64,
    /// Whether the account is disabled (cannot log in; its tokens were voided).
    #[serde(default)]
    pub disabled: bool,
}

/// `text` as it may appear in a log line: control characters (newlines, escape sequences)
/// escaped, so that a username cannot forge or rewrite log lines; at most 256 characters.
pub(crate) fn log_safe(text: &str) -> String {
    let mut safe: String = text
        .chars()
        .take(256)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().count() > 256 {
        safe.push_str("...");
    }
    safe
}

async fn view(state: &AppState, user: User) -> Result<UserView, ApiError> {
    let usage = state.db().usage(&user.username).await?;
    Ok(UserView {
        username: user.username,
        role: user.role,
        max_stores: user.quota.max_stores,
        max_storage: user.quota.max_storage_gib,
        current_stores: usage.stores,
        current_storage: usage.storage_gib,
        quota: user.quota,
        usage,
        created_at: user.created_at.0,
        disabled: user.disabled,
    })
}

/// `POST /api/auth/login`
pub async fn login(
    State(state): State<AppState>,
    addr: ClientAddr,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<impl IntoResponse, ApiError> {
    // The exact message of the product this replaces: its clients may compare it.
    let refused = || ApiError::Unauthorized("Invalid credentials".to_owned());
    if body.username.len() > MAX_LOGIN_NAME || body.password.len() > 1024 {
        return Err(refused());
    }
    // Counted before the slow check, so that parallel guesses cannot all slip through
    // while none has failed yet; a correct password clears the count below.
    state.throttle().reserve(&body.username, addr.0)?;
    let Some(user) = state
        .db()
        .verify_password(&body.username, &body.password)
        .await?
    else {
        tracing::info!(username = %log_safe(&body.username), "login failed");
        audit(
            &state,
            AuditRecord::new("login.failed").actor(&body.username),
            addr,
        )
        .await;
        return Err(refused());
    };
    state.throttle().succeeded(&body.username, addr.0);
    if user.disabled {
        audit(
            &state,
            AuditRecord::new("login.disabled").actor(&user.username),
            addr,
        )
        .await;
        return Err(ApiError::Forbidden(
            "this account is disabled; ask an administrator".to_owned(),
        ));
    }
    let token = state.tokens().issue(&user)?;
    audit(
        &state,
        AuditRecord::new("login").actor(&user.username),
        addr,
    )
    .await;
    // A token must not linger in any cache (RFC 6749, 5.1).
    Ok((
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        Json(LoginResponse {
            access_token: token,
            token_type: "bearer".to_owned(),
            expires_in: state.tokens().ttl().as_secs(),
            user_id: user.username.clone(),
            username: user.username,
            role: user.role,
        }),
    ))
}

/// `POST /api/auth/logout`: voids every token of the caller, on every device.
pub async fn logout(
    State(state): State<AppState>,
    user: AuthUser,
    addr: ClientAddr,
) -> Result<StatusCode, ApiError> {
    state.db().revoke_tokens(user.name()).await?;
    audit(&state, AuditRecord::new("logout").actor(user.name()), addr).await;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/users/me`
pub async fn me(State(state): State<AppState>, user: AuthUser) -> Result<Json<UserView>, ApiError> {
    Ok(Json(view(&state, user.0).await?))
}

/// Users per page of `GET /api/users` when the client does not say, and the most it may
/// ask for.
pub const MAX_USER_PAGE: usize = 500;

/// Query of `GET /api/users`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserListQuery {
    /// Most users in the answer, 1 to [`MAX_USER_PAGE`] (the default).
    #[serde(default)]
    pub limit: Option<usize>,
    /// Where to continue: the `next_cursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// `GET /api/users` (admin), by name, a page at a time.
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(query): ApiQuery<UserListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    user.require_admin()?;
    let limit = query.limit.unwrap_or(MAX_USER_PAGE);
    if !(1..=MAX_USER_PAGE).contains(&limit) {
        return Err(ApiError::Rejected {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_query",
            message: format!("limit must be between 1 and {MAX_USER_PAGE}"),
        });
    }
    // One more than asked for tells whether another page follows.
    let mut page = state
        .db()
        .list_users_page(query.cursor.as_deref(), limit + 1)
        .await?;
    let more = page.len() > limit;
    page.truncate(limit);
    let next_cursor = more
        .then(|| page.last().map(|u| u.username.clone()))
        .flatten();
    let mut users = Vec::with_capacity(page.len());
    for user in page {
        users.push(view(&state, user).await?);
    }
    Ok(Json(
        serde_json::json!({ "users": users, "next_cursor": next_cursor }),
    ))
}

/// The body of `PUT /api/users/{username}/disabled`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisabledBody {
    /// `true` disables the user (they cannot log in, their tokens are void at once);
    /// `false` lets them log in again.
    pub disabled: bool,
}

/// `PUT /api/users/{username}/disabled` (admin)
pub async fn set_disabled(
    State(state): State<AppState>,
    user: AuthUser,
    addr: ClientAddr,
    ApiPath(username): ApiPath<String>,
    ApiJson(body): ApiJson<DisabledBody>,
) -> Result<Json<UserView>, ApiError> {
    user.require_admin()?;
    if body.disabled && username == user.name() {
        return Err(ApiError::Invalid {
            field: "disabled".to_owned(),
            message: "admins cannot disable themselves".to_owned(),
        });
    }
    let updated = state.db().set_disabled(&username, body.disabled).await?;
    tracing::info!(
        username = %updated.username,
        disabled = body.disabled,
        "user disabled flag set"
    );
    audit(
        &state,
        AuditRecord::new(if body.disabled {
            "user.disable"
        } else {
            "user.enable"
        })
        .actor(user.name())
        .target(&updated.username),
        addr,
    )
    .await;
    Ok(Json(view(&state, updated).await?))
}

/// A quota in a request body.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaBody {
    /// Most stores at once.
    pub max_stores: u32,
    /// Most storage over all stores, GiB.
    pub max_storage_gib: u64,
}

impl From<QuotaBody> for Quota {
    fn from(q: QuotaBody) -> Self {
        Quota {
            max_stores: q.max_stores,
            max_storage_gib: q.max_storage_gib,
        }
    }
}

/// The body of `POST /api/users`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUserBody {
    /// The new username.
    pub username: String,
    /// The new user's password (8 to 1024 characters).
    pub password: String,
    /// `user` (the default) or `admin`.
    #[serde(default)]
    pub role: Option<Role>,
    /// The quota; the server's default quota when absent.
    #[serde(default)]
    pub quota: Option<QuotaBody>,
}

/// `POST /api/users` (admin)
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    addr: ClientAddr,
    ApiJson(body): ApiJson<CreateUserBody>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    user.require_admin()?;
    let quota = body.quota.map_or(state.default_quota(), Quota::from);
    let created = state
        .db()
        .create_user(
            &body.username,
            &body.password,
            body.role.unwrap_or(Role::User),
            quota,
        )
        .await?;
    tracing::info!(username = %created.username, role = %created.role, "user created");
    audit(
        &state,
        AuditRecord::new("user.create")
            .actor(user.name())
            .target(&created.username),
        addr,
    )
    .await;
    Ok((StatusCode::CREATED, Json(view(&state, created).await?)))
}

/// `PUT /api/users/{username}/quota` (admin)
pub async fn set_quota(
    State(state): State<AppState>,
    user: AuthUser,
    addr: ClientAddr,
    ApiPath(username): ApiPath<String>,
    ApiJson(body): ApiJson<QuotaBody>,
) -> Result<Json<UserView>, ApiError> {
    user.require_admin()?;
    let updated = state.db().set_quota(&username, body.into()).await?;
    audit(
        &state,
        AuditRecord::new("user.quota")
            .actor(user.name())
            .target(&updated.username)
            .detail(format!(
                "max_stores={} max_storage_gib={}",
                body.max_stores, body.max_storage_gib
            )),
        addr,
    )
    .await;
    Ok(Json(view(&state, updated).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Attack: a username with a newline and a fake log record, sent to the login endpoint
    // whose failures are logged.
    #[test]
    fn usernames_cannot_forge_log_lines() {
        let forged = "x\n2026-01-01T00:00:00Z  INFO login succeeded username=admin\r\u{1b}[2K";
        let safe = log_safe(forged);
        assert!(!safe.contains('\n') && !safe.contains('\r') && !safe.contains('\u{1b}'));
        assert!(safe.contains("\\n"), "{safe}");
        assert_eq!(log_safe("alice"), "alice");
        assert!(log_safe(&"a".repeat(10_000)).len() < 300);
    }
}
