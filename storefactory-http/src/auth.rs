//! Access tokens (HS256 JWTs), the authenticated-user extractor, client addresses and the
//! throttle of failed logins.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use storefactory_sql::{Role, User};

use crate::api_error::ApiError;
use crate::error::{Error, Result};
use crate::state::AppState;

/// Shortest token key accepted, in bytes: HS256 keys shorter than the hash are weak.
pub const MIN_TOKEN_KEY_BYTES: usize = 32;

/// Issuer written into and required from every token.
const ISSUER: &str = "storefactory";

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The username.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issue time, seconds since the Unix epoch.
    pub iat: u64,
    /// Always `storefactory`.
    pub iss: String,
    /// The user's [`User::password_changed_at`] when the token was issued, in milliseconds:
    /// the token is good only while the password it was issued under is the current one.
    /// Exact, unlike `iat`, which cannot tell a token issued just before a change from one
    /// issued just after it within the same second. Absent from tokens of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pwd_at: Option<i64>,
}

impl Claims {
    /// Whether the token was issued under `user`'s current password.
    ///
    /// With the `pwd_at` stamp this is exact. A token without it is judged by `iat` at
    /// second granularity: refused when issued in a second before the change.
    fn issued_under_current_password(&self, user: &User) -> bool {
        let changed_ms = user.password_changed_at.0;
        match self.pwd_at {
            Some(stamp) => stamp == changed_ms,
            None => {
                let changed_secs = u64::try_from(changed_ms.div_euclid(1000)).unwrap_or(0);
                self.iat >= changed_secs
            }
        }
    }
}

/// Signs and checks access tokens with one HS256 key.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl TokenKeys {
    /// Keys from `secret` (at least [`MIN_TOKEN_KEY_BYTES`] bytes) issuing tokens valid for
    /// `ttl`.
    pub fn new(secret: &[u8], ttl: Duration) -> Result<Self> {
        if secret.len() < MIN_TOKEN_KEY_BYTES {
            return Err(Error::TokenKeyTooShort {
                len: secret.len(),
                min: MIN_TOKEN_KEY_BYTES,
            });
        }
        // HS256 only: `alg: none`, other HMAC sizes and every asymmetric algorithm are
        // refused before the signature is even looked at.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        validation.set_issuer(&[ISSUER]);
        validation.validate_exp = true;
        // One server signs and checks: no clock skew to allow for.
        validation.leeway = 0;
        Ok(TokenKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        })
    }

    /// How long issued tokens are valid.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A token for `user`, good until it expires or their password changes.
    pub fn issue(&self, user: &User) -> Result<String, ApiError> {
        let now = unix_now();
        let claims = Claims {
            sub: user.username.clone(),
            iat: now,
            exp: now.saturating_add(self.ttl.as_secs()),
            iss: ISSUER.to_owned(),
            pwd_at: Some(user.password_changed_at.0),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ApiError::internal("cannot sign token", &e))
    }

    /// The claims of `token` if it is signed with this key by HS256 and not expired.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                let why = match e.kind() {
                    K::ExpiredSignature => "token expired",
                    K::InvalidAlgorithm | K::InvalidAlgorithmName => "token algorithm not accepted",
                    K::InvalidSignature => "token signature invalid",
                    K::MissingRequiredClaim(_) => "token lacks a required claim",
                    _ => "token malformed",
                };
                ApiError::Unauthorized(why.to_owned())
            })?;
        // `exp` is required and checked above; refuse a zero or absurd one all the same.
        if data.claims.exp <= unix_now() {
            return Err(ApiError::Unauthorized("token expired".to_owned()));
        }
        Ok(data.claims)
    }
}

/// The user a request is made by, from its `Authorization: Bearer` token. The user is read
/// from the database on every request, so a removed user, a changed role or a changed
/// password (which voids the tokens issued before it) takes effect at once.
#[derive(Debug, Clone)]
pub struct AuthUser(pub User);

impl AuthUser {
    /// The username.
    pub fn name(&self) -> &str {
        &self.0.username
    }

    /// Whether the user is an admin.
    pub fn is_admin(&self) -> bool {
        self.0.role == Role::Admin
    }

    /// Fails with 403 unless the user is an admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::Forbidden("only admins may do this".to_owned()))
        }
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| ApiError::Unauthorized("missing Authorization header".to_owned()))?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::Unauthorized("expected Authorization: Bearer <token>".to_owned())
            })?;
        let claims = state.tokens().verify(token)?;
        let user = state
            .db()
            .get_user(&claims.sub)
            .await?
            .ok_or_else(|| ApiError::Unauthorized("user no longer exists".to_owned()))?;
        if !claims.issued_under_current_password(&user) {
            return Err(ApiError::Unauthorized(
                "the password changed since this token was issued; log in again".to_owned(),
            ));
        }
        Ok(AuthUser(user))
    }
}

/// The client's address: the TCP peer, or, when configured to trust it, the last
/// `X-Forwarded-For` entry. `None` when neither is known (requests not from a socket, as in
/// tests).
///
/// Only the last entry is trusted: it is the one the trusted proxy appended (the address it
/// received the request from). Every entry before it came with the request and is
/// whatever the client chose to write.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if state.trust_forwarded_for()
            && let Some(forwarded) = last_forwarded_for(&parts.headers)
        {
            return Ok(ClientAddr(Some(forwarded)));
        }
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip()),
        ))
    }
}

/// The rightmost `X-Forwarded-For` entry. Several header lines form one list in order
/// (RFC 9110, 5.3), so the entry comes from the last line; a proxy that adds a line of its
/// own instead of appending to the client's is handled alike.
fn last_forwarded_for(headers: &axum::http::HeaderMap) -> Option<IpAddr> {
    let last_line = headers.get_all("x-forwarded-for").iter().next_back()?;
    let entry = last_line.to_str().ok()?.rsplit(',').next()?.trim();
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|addr| addr.ip()))
        .ok()
}

/// Counts login attempts per username and client address, in memory, and refuses attempts
/// once there were too many in the window. A successful login clears the count.
///
/// An attempt is counted when it is let through, before the password is checked: counting
/// only once a (slow) check has failed would let a burst of parallel guesses all through
/// while the count still read zero.
#[derive(Debug)]
pub struct LoginThrottle {
    max_attempts: u32,
    window: Duration,
    attempts: Mutex<HashMap<(String, Option<IpAddr>), Attempts>>,
}

#[derive(Debug, Clone, Copy)]
struct Attempts {
    count: u32,
    first: Instant,
}

/// Entries kept before expired ones are swept, bounding the memory a flood of made-up
/// usernames can take.
const SWEEP_AT: usize = 10_000;

impl LoginThrottle {
    /// Allows `max_attempts` logins per username and address within `window` that do not
    /// succeed.
    pub fn new(max_attempts: u32, window: Duration) -> Self {
        LoginThrottle {
            max_attempts: max_attempts.max(1),
            window,
            attempts: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, Option<IpAddr>), Attempts>> {
        self.attempts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts an attempt of this username and address and lets it through, or fails with
    /// 429 (counting nothing) when the window's attempts are used up. The attempt stays
    /// counted unless [`LoginThrottle::succeeded`] clears it.
    pub fn reserve(&self, username: &str, addr: Option<IpAddr>) -> Result<(), ApiError> {
        let mut attempts = self.lock();
        if attempts.len() >= SWEEP_AT {
            let window = self.window;
            attempts.retain(|_, a| a.first.elapsed() < window);
        }
        let now = Instant::now();
        let entry = attempts
            .entry((username.to_owned(), addr))
            .or_insert(Attempts {
                count: 0,
                first: now,
            });
        let elapsed = entry.first.elapsed();
        if elapsed >= self.window {
            *entry = Attempts {
                count: 0,
                first: now,
            };
        } else if entry.count >= self.max_attempts {
            let left = self.window - elapsed;
            return Err(ApiError::TooManyAttempts {
                retry_after_secs: left.as_secs().max(1),
            });
        }
        entry.count = entry.count.saturating_add(1);
        Ok(())
    }

    /// Forgets the attempts of a username and address after a successful login.
    pub fn succeeded(&self, username: &str, addr: Option<IpAddr>) {
        self.lock().remove(&(username.to_owned(), addr));
    }
}

#[cfg(test)]
mod tests {
    use storefactory_core::store::Timestamp;

    use super::*;

    fn user(name: &str, password_changed_at_ms: i64) -> User {
        User {
            username: name.to_owned(),
            role: Role::User,
            quota: storefactory_sql::Quota::default(),
            created_at: Timestamp(0),
            updated_at: Timestamp(password_changed_at_ms),
            password_changed_at: Timestamp(password_changed_at_ms),
        }
    }

    #[test]
    fn tokens_name_the_password_they_were_issued_under() {
        let keys = TokenKeys::new(&[7; 32], Duration::from_secs(60)).unwrap();
        let before = user("alice", 1_700_000_000_250);
        let claims = keys.verify(&keys.issue(&before).unwrap()).unwrap();
        assert!(claims.iat > 0);
        assert_eq!(claims.pwd_at, Some(1_700_000_000_250));
        assert!(claims.issued_under_current_password(&before));
        // Changed a millisecond later, within the same second as the issue.
        let after = user("alice", 1_700_000_000_251);
        assert!(!claims.issued_under_current_password(&after));
    }

    #[test]
    fn tokens_without_a_password_stamp_are_judged_by_their_issue_second() {
        let changed = user("alice", 1_700_000_000_250);
        let legacy = |iat| Claims {
            sub: "alice".to_owned(),
            exp: u64::MAX,
            iat,
            iss: ISSUER.to_owned(),
            pwd_at: None,
        };
        assert!(!legacy(1_699_999_999).issued_under_current_password(&changed));
        assert!(legacy(1_700_000_000).issued_under_current_password(&changed));
        assert!(legacy(1_700_000_001).issued_under_current_password(&changed));
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(matches!(
            TokenKeys::new(b"short", Duration::from_secs(60)),
            Err(Error::TokenKeyTooShort { len: 5, .. })
        ));
    }

    #[test]
    fn issued_tokens_verify_and_other_keys_do_not() {
        let keys = TokenKeys::new(&[7; 32], Duration::from_secs(60)).unwrap();
        let token = keys.issue(&user("alice", 1_000)).unwrap();
        assert_eq!(keys.verify(&token).unwrap().sub, "alice");
        let other = TokenKeys::new(&[8; 32], Duration::from_secs(60)).unwrap();
        assert!(other.verify(&token).is_err());
    }

    #[test]
    fn throttle_refuses_after_max_attempts_and_forgets_on_success() {
        let throttle = LoginThrottle::new(2, Duration::from_secs(60));
        let ip = Some(IpAddr::from([10, 0, 0, 1]));
        assert!(throttle.reserve("bob", ip).is_ok());
        assert!(throttle.reserve("bob", ip).is_ok());
        assert!(matches!(
            throttle.reserve("bob", ip),
            Err(ApiError::TooManyAttempts { .. })
        ));
        // Another address or another user is not affected.
        assert!(
            throttle
                .reserve("bob", Some(IpAddr::from([10, 0, 0, 2])))
                .is_ok()
        );
        assert!(throttle.reserve("carol", ip).is_ok());
        throttle.succeeded("bob", ip);
        assert!(throttle.reserve("bob", ip).is_ok());
    }

    #[test]
    fn throttle_window_expires() {
        let throttle = LoginThrottle::new(1, Duration::from_millis(1));
        assert!(throttle.reserve("bob", None).is_ok());
        std::thread::sleep(Duration::from_millis(5));
        assert!(throttle.reserve("bob", None).is_ok());
    }

    #[test]
    fn the_rightmost_forwarded_for_entry_is_the_client() {
        let headers = |lines: &[&str]| {
            let mut map = axum::http::HeaderMap::new();
            for line in lines {
                map.append("x-forwarded-for", line.parse().unwrap());
            }
            map
        };
        let proxy_saw = Some(IpAddr::from([203, 0, 113, 7]));
        assert_eq!(last_forwarded_for(&headers(&["203.0.113.7"])), proxy_saw);
        assert_eq!(
            last_forwarded_for(&headers(&["1.2.3.4, 10.9.9.9 , 203.0.113.7"])),
            proxy_saw
        );
        assert_eq!(
            last_forwarded_for(&headers(&["1.2.3.4", "203.0.113.7"])),
            proxy_saw,
            "a second header line continues the list"
        );
        assert_eq!(
            last_forwarded_for(&headers(&["203.0.113.7:4711"])),
            proxy_saw
        );
        assert_eq!(
            last_forwarded_for(&headers(&["[2001:db8::1]:443"])),
            Some("2001:db8::1".parse().unwrap())
        );
        // A spoofed entry in front of a malformed last one is not taken instead.
        assert_eq!(last_forwarded_for(&headers(&["1.2.3.4, unknown"])), None);
        assert_eq!(last_forwarded_for(&headers(&[])), None);
    }
}
