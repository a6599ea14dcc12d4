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
    /// The user's [`User::token_version`] when the token was issued: logging out and
    /// disabling the account move it on, voiding the token. Absent from tokens of older
    /// versions, which count as version 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ver: Option<i64>,
}

impl Claims {
    /// Whether the token is still good for `user`: issued under their current password and
    /// token version.
    fn current_for(&self, user: &User) -> bool {
        self.issued_under_current_password(user) && self.ver.unwrap_or(0) == user.token_version
    }

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

/// One HS256 key and its id (`kid`).
#[derive(Clone)]
struct Key {
    id: String,
    decoding: DecodingKey,
}

/// Signs access tokens with the current HS256 key and checks them against it and any
/// previous keys, chosen by the token's `kid` header (RFC 7515, 4.1.4).
///
/// Rotating the key without logging everyone out: configure the new key as current and the
/// old one as previous; tokens signed with the old key stay good until they expire (at
/// most [`TokenKeys::ttl`]), new ones are signed with the new key; then drop the old key.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    current_id: String,
    keys: Vec<Key>,
    validation: Validation,
    ttl: Duration,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("ttl", &self.ttl)
            .field("current_id", &self.current_id)
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// A key's public id: the start of an HMAC of a fixed text under the key, so the id tells
/// nothing about the key, and the same key always has the same id on every replica.
fn key_id(secret: &[u8]) -> Result<String> {
    if secret.len() < MIN_TOKEN_KEY_BYTES {
        return Err(Error::TokenKeyTooShort {
            len: secret.len(),
            min: MIN_TOKEN_KEY_BYTES,
        });
    }
    let mac = jsonwebtoken::crypto::sign(
        b"storefactory access token key id",
        &EncodingKey::from_secret(secret),
        Algorithm::HS256,
    )
    .map_err(|_| Error::TokenKeyTooShort {
        len: secret.len(),
        min: MIN_TOKEN_KEY_BYTES,
    })?;
    Ok(mac.chars().take(16).collect())
}

impl TokenKeys {
    /// Keys from `secret` (at least [`MIN_TOKEN_KEY_BYTES`] bytes) issuing tokens valid for
    /// `ttl`.
    pub fn new(secret: &[u8], ttl: Duration) -> Result<Self> {
        let current_id = key_id(secret)?;
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
            keys: vec![Key {
                id: current_id.clone(),
                decoding: DecodingKey::from_secret(secret),
            }],
            current_id,
            validation,
            ttl,
        })
    }

    /// Also accepts tokens signed with `previous` keys (each at least
    /// [`MIN_TOKEN_KEY_BYTES`] bytes), without signing with them.
    pub fn with_previous<'a>(
        mut self,
        previous: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Self> {
        for secret in previous {
            let id = key_id(secret)?;
            if self.keys.iter().all(|key| key.id != id) {
                self.keys.push(Key {
                    id,
                    decoding: DecodingKey::from_secret(secret),
                });
            }
        }
        Ok(self)
    }

    /// How long issued tokens are valid.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The id (`kid`) of the key new tokens are signed with.
    pub fn current_id(&self) -> &str {
        &self.current_id
    }

    /// A token for `user`, good until it expires, their password changes, they log out or
    /// they are disabled.
    pub fn issue(&self, user: &User) -> Result<String, ApiError> {
        let now = unix_now();
        let claims = Claims {
            sub: user.username.clone(),
            iat: now,
            exp: now.saturating_add(self.ttl.as_secs()),
            iss: ISSUER.to_owned(),
            pwd_at: Some(user.password_changed_at.0),
            ver: Some(user.token_version),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.current_id.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|e| ApiError::internal("cannot sign token", &e))
    }

    /// The claims of `token` if it is signed by HS256 with one of these keys and not
    /// expired. A token naming its key (`kid`) is checked against that key only; one
    /// without (issued by older versions) against each key.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let why = |e: jsonwebtoken::errors::Error| {
            use jsonwebtoken::errors::ErrorKind as K;
            let why = match e.kind() {
                K::ExpiredSignature => "token expired",
                K::InvalidAlgorithm | K::InvalidAlgorithmName => "token algorithm not accepted",
                K::InvalidSignature => "token signature invalid",
                K::MissingRequiredClaim(_) => "token lacks a required claim",
                _ => "token malformed",
            };
            ApiError::Unauthorized(why.to_owned())
        };
        let header = jsonwebtoken::decode_header(token).map_err(why)?;
        let candidates: Vec<&Key> = match &header.kid {
            Some(kid) => self.keys.iter().filter(|key| &key.id == kid).collect(),
            None => self.keys.iter().collect(),
        };
        if candidates.is_empty() {
            return Err(ApiError::Unauthorized(
                "token signed with a key this server no longer accepts".to_owned(),
            ));
        }
        let mut last = None;
        for key in candidates {
            match jsonwebtoken::decode::<Claims>(token, &key.decoding, &self.validation) {
                Ok(data) => {
                    // `exp` is required and checked above; refuse a zero or absurd one all
                    // the same.
                    if data.claims.exp <= unix_now() {
                        return Err(ApiError::Unauthorized("token expired".to_owned()));
                    }
                    return Ok(data.claims);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.map_or_else(|| ApiError::Unauthorized("token malformed".to_owned()), why))
    }
}

/// The user a request is made by, from its `Authorization: Bearer` token. The user is read
/// from the database on every request, so a removed or disabled user, a changed role, a
/// changed password or a logout (each voids the tokens issued before it) takes effect at
/// once.
#[derive(Debug, Clone)]
pub struct AuthUser(pub User, pub(crate) Claims);

impl AuthUser {
    /// The claims of the token the request came with.
    pub fn claims(&self) -> &Claims {
        &self.1
    }

    /// How long until the request's token expires (zero once it has).
    pub fn token_remaining(&self) -> Duration {
        Duration::from_secs(self.1.exp.saturating_sub(unix_now()))
    }

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
        let user = current_user(state, &claims).await?;
        Ok(AuthUser(user, claims))
    }
}

/// The user `claims` name, if the token is still good for them: the user exists, is not
/// disabled, and neither changed their password nor logged out since it was issued.
pub(crate) async fn current_user(state: &AppState, claims: &Claims) -> Result<User, ApiError> {
    let user = state
        .db()
        .get_user(&claims.sub)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("user no longer exists".to_owned()))?;
    if user.disabled {
        return Err(ApiError::Unauthorized(
            "this account is disabled".to_owned(),
        ));
    }
    if !claims.issued_under_current_password(&user) {
        return Err(ApiError::Unauthorized(
            "the password changed since this token was issued; log in again".to_owned(),
        ));
    }
    if !claims.current_for(&user) {
        return Err(ApiError::Unauthorized(
            "this token was revoked (logged out); log in again".to_owned(),
        ));
    }
    Ok(user)
}

/// A network of trusted proxies: an address with a prefix length (`10.0.0.0/8`,
/// `2001:db8::/32`), or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

/// Text that is not an address or network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an IP address or network (CIDR): {0:?}")]
pub struct InvalidIpNet(pub String);

impl std::str::FromStr for IpNet {
    type Err = InvalidIpNet;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidIpNet(text.to_owned());
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| invalid())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(invalid)?,
            Some(_) => return Err(invalid()),
            None => max,
        };
        Ok(IpNet { addr, prefix })
    }
}

impl IpNet {
    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        fn masked(bits: u128, prefix: u8, width: u8) -> u128 {
            if prefix == 0 {
                0
            } else {
                bits >> (width - prefix)
            }
        }
        match (self.addr.to_canonical(), ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u32::from(net).into(), self.prefix, 32)
                    == masked(u32::from(ip).into(), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(u128::from(net), self.prefix, 128)
                    == masked(u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }
}

/// How the client address of a request is found.
#[derive(Debug, Clone, Default)]
pub(crate) enum ProxyTrust {
    /// The TCP peer; `X-Forwarded-For` is ignored.
    #[default]
    None,
    /// The rightmost `X-Forwarded-For` entry, from any peer (the older setting).
    LastHop,
    /// Walk `X-Forwarded-For` from the right only while the hop is one of these networks.
    Networks(Vec<IpNet>),
}

/// The client's address: the TCP peer or, behind trusted proxies, the address the nearest
/// untrusted hop was seen at. `None` when neither is known (requests not from a socket, as
/// in tests).
///
/// With a list of trusted proxy networks, the header is read only when the TCP peer is a
/// trusted proxy, and walked from the right (the entry the nearest proxy appended) through
/// trusted hops only: the first entry not in a trusted network is the client. Entries
/// further left came with the request and are whatever the client chose to write.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        Ok(ClientAddr(client_addr(
            state.proxy_trust(),
            peer,
            &parts.headers,
        )))
    }
}

fn client_addr(
    trust: &ProxyTrust,
    peer: Option<IpAddr>,
    headers: &axum::http::HeaderMap,
) -> Option<IpAddr> {
    match trust {
        ProxyTrust::None => peer,
        ProxyTrust::LastHop => last_forwarded_for(headers).or(peer),
        ProxyTrust::Networks(networks) => {
            let trusted = |ip: IpAddr| networks.iter().any(|net| net.contains(ip));
            let mut hop = peer?;
            for entry in forwarded_for(headers).into_iter().rev() {
                if !trusted(hop) {
                    break;
                }
                // A malformed entry ends the walk at the last hop known: never further left.
                let Some(entry) = entry else { break };
                hop = entry;
            }
            Some(hop)
        }
    }
}

/// Every `X-Forwarded-For` entry, left to right; `None` for one that is not an address.
/// Several header lines form one list in order (RFC 9110, 5.3).
fn forwarded_for(headers: &axum::http::HeaderMap) -> Vec<Option<IpAddr>> {
    let parse = |entry: &str| {
        let entry = entry.trim();
        entry
            .parse::<IpAddr>()
            .or_else(|_| entry.parse::<SocketAddr>().map(|addr| addr.ip()))
            .ok()
    };
    headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|line| match line.to_str() {
            Ok(text) => text.split(',').map(parse).collect::<Vec<_>>(),
            Err(_) => vec![None],
        })
        .collect()
}

/// The rightmost `X-Forwarded-For` entry. Several header lines form one list in order
/// (RFC 9110, 5.3), so the entry comes from the last line; a proxy that adds a line of its
/// own instead of appending to the client's is handled alike.
fn last_forwarded_for(headers: &axum::http::HeaderMap) -> Option<IpAddr> {
    forwarded_for(headers).pop().flatten()
}

/// Throttles logins, in memory, two ways:
///
/// - per username and client address: `max_attempts` within the window, then refused
///   until the window of the first attempt has passed (one client guessing one account);
/// - per account, from anywhere: a budget of attempts within the window, then each further
///   attempt only after a delay that doubles with every attempt (1 s, 2 s, 4 s, ... up to
///   the window). A guess spread over many addresses is slowed to a crawl, yet the account
///   is never locked: its owner gets through once the delay has passed, and at once from
///   an address they logged in from before (kept in memory for a while), which the
///   account's backoff does not hold up.
///
/// A successful login clears both counts. An attempt is counted when it is let through,
/// before the password is checked: counting only once a (slow) check has failed would let
/// a burst of parallel guesses all through while the count still read zero. The maps are
/// bounded: expired entries are swept, and past the bound the oldest entries are dropped.
#[derive(Debug)]
pub struct LoginThrottle {
    max_attempts: u32,
    account_budget: u32,
    window: Duration,
    max_entries: usize,
    maps: Mutex<ThrottleMaps>,
}

#[derive(Debug, Default)]
struct ThrottleMaps {
    pairs: HashMap<(String, Option<IpAddr>), Attempts>,
    accounts: HashMap<String, Attempts>,
    /// Username and address of recent successful logins.
    known: HashMap<(String, IpAddr), Attempts>,
}

/// How long an address a user logged in from stays exempt from their account's backoff.
const KNOWN_ADDRESS_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);

#[derive(Debug, Clone, Copy)]
struct Attempts {
    count: u32,
    first: Instant,
    last: Instant,
}

/// Entries kept per map by default: bounds the memory a flood of made-up usernames or
/// addresses can take.
const MAX_ENTRIES: usize = 10_000;

/// Keeps `map` below `max` entries: expired ones go first, then the oldest.
fn bound<K: Clone + Eq + std::hash::Hash>(
    map: &mut HashMap<K, Attempts>,
    max: usize,
    window: Duration,
) {
    if map.len() < max {
        return;
    }
    map.retain(|_, a| a.last.elapsed() < window);
    if map.len() < max {
        return;
    }
    // Drop the oldest tenth at once, so that a flood does not pay a sort per request.
    let mut by_age: Vec<(Instant, K)> = map.iter().map(|(k, a)| (a.last, k.clone())).collect();
    by_age.sort_unstable_by_key(|(last, _)| *last);
    let excess = map.len() + 1 - max + max / 10;
    for (_, key) in by_age.into_iter().take(excess) {
        map.remove(&key);
    }
}

impl LoginThrottle {
    /// Allows `max_attempts` logins per username and address within `window` that do not
    /// succeed, and by default four times as many per account before the backoff starts.
    pub fn new(max_attempts: u32, window: Duration) -> Self {
        let max_attempts = max_attempts.max(1);
        LoginThrottle {
            max_attempts,
            account_budget: max_attempts.saturating_mul(4),
            window,
            max_entries: MAX_ENTRIES,
            maps: Mutex::new(ThrottleMaps::default()),
        }
    }

    /// Sets the attempts on one account (from any address) within the window before each
    /// further attempt has to wait.
    pub fn with_account_budget(mut self, budget: u32) -> Self {
        self.account_budget = budget.max(1);
        self
    }

    /// Sets the most entries each map keeps.
    pub fn with_max_entries(mut self, max: usize) -> Self {
        self.max_entries = max.max(10);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ThrottleMaps> {
        self.maps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Entries held (pairs, accounts).
    pub fn len(&self) -> (usize, usize) {
        let maps = self.lock();
        (maps.pairs.len(), maps.accounts.len())
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0)
    }

    /// The delay an account owes before its next attempt, after `over` attempts beyond
    /// its budget.
    fn backoff(&self, over: u32) -> Duration {
        Duration::from_secs(1u64 << over.min(30)).min(self.window)
    }

    /// Counts an attempt of this username and address and lets it through, or fails with
    /// 429 (counting nothing) when the pair's attempts are used up or the account's
    /// backoff has not passed. The attempt stays counted unless
    /// [`LoginThrottle::succeeded`] clears it.
    pub fn reserve(&self, username: &str, addr: Option<IpAddr>) -> Result<(), ApiError> {
        let mut maps = self.lock();
        let ThrottleMaps {
            pairs,
            accounts,
            known,
        } = &mut *maps;
        bound(pairs, self.max_entries, self.window);
        bound(accounts, self.max_entries, self.window);
        let familiar = addr.is_some_and(|ip| {
            known
                .get(&(username.to_owned(), ip))
                .is_some_and(|seen| seen.last.elapsed() < KNOWN_ADDRESS_TTL)
        });
        let now = Instant::now();
        let fresh = Attempts {
            count: 0,
            first: now,
            last: now,
        };
        let pair = pairs.entry((username.to_owned(), addr)).or_insert(fresh);
        if pair.first.elapsed() >= self.window {
            *pair = fresh;
        } else if pair.count >= self.max_attempts {
            let left = self.window - pair.first.elapsed();
            return Err(ApiError::TooManyAttempts {
                retry_after_secs: left.as_secs().max(1),
            });
        }
        let account = accounts.entry(username.to_owned()).or_insert(fresh);
        if account.last.elapsed() >= self.window {
            *account = fresh;
        } else if account.count >= self.account_budget && !familiar {
            let wait = self.backoff(account.count - self.account_budget);
            let since = account.last.elapsed();
            if since < wait {
                return Err(ApiError::TooManyAttempts {
                    retry_after_secs: (wait - since).as_secs_f64().ceil().max(1.0) as u64,
                });
            }
        }
        account.count = account.count.saturating_add(1);
        account.last = now;
        pair.count = pair.count.saturating_add(1);
        pair.last = now;
        Ok(())
    }

    /// Forgets the attempts of a username (from every address) after a successful login,
    /// and remembers the address as one the user logs in from.
    pub fn succeeded(&self, username: &str, addr: Option<IpAddr>) {
        let mut maps = self.lock();
        maps.pairs.remove(&(username.to_owned(), addr));
        maps.accounts.remove(username);
        if let Some(ip) = addr {
            bound(&mut maps.known, self.max_entries, KNOWN_ADDRESS_TTL);
            let now = Instant::now();
            maps.known.insert(
                (username.to_owned(), ip),
                Attempts {
                    count: 0,
                    first: now,
                    last: now,
                },
            );
        }
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
            token_version: 0,
            disabled: false,
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
            ver: None,
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

    #[test]
    fn networks_parse_and_contain() {
        let net: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains("10.200.3.4".parse().unwrap()));
        assert!(
            net.contains("::ffff:10.1.1.1".parse().unwrap()),
            "IPv4-mapped"
        );
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        assert!(!net.contains("2001:db8::1".parse().unwrap()));
        let one: IpNet = "192.0.2.7".parse().unwrap();
        assert!(one.contains("192.0.2.7".parse().unwrap()));
        assert!(!one.contains("192.0.2.8".parse().unwrap()));
        let v6: IpNet = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        for bad in [
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0/8",
            "x",
            "10.0.0.0/+8",
            "",
        ] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn forwarded_for_is_walked_from_the_right_through_trusted_hops_only() {
        let headers = |line: &str| {
            let mut map = axum::http::HeaderMap::new();
            map.append("x-forwarded-for", line.parse().unwrap());
            map
        };
        let trust = ProxyTrust::Networks(vec![
            "10.0.0.0/8".parse().unwrap(),
            "172.16.0.0/12".parse().unwrap(),
        ]);
        let ip = |text: &str| Some(text.parse::<IpAddr>().unwrap());
        // Client -> CDN edge (172.16.0.5) -> ingress (10.0.0.2) -> server.
        let h = headers("6.6.6.6, 203.0.113.9, 172.16.0.5");
        assert_eq!(client_addr(&trust, ip("10.0.0.2"), &h), ip("203.0.113.9"));
        // Untrusted peer: the header is the client's own writing.
        assert_eq!(
            client_addr(&trust, ip("198.51.100.1"), &h),
            ip("198.51.100.1")
        );
        // Every hop trusted: the leftmost entry is as far as it goes.
        let h = headers("10.9.9.9, 172.16.0.5");
        assert_eq!(client_addr(&trust, ip("10.0.0.2"), &h), ip("10.9.9.9"));
        // A malformed entry stops the walk at the last hop known.
        let h = headers("6.6.6.6, garbage");
        assert_eq!(client_addr(&trust, ip("10.0.0.2"), &h), ip("10.0.0.2"));
        // No peer known (not from a socket): nothing to trust.
        assert_eq!(client_addr(&trust, None, &headers("1.2.3.4")), None);
        // Not configured: the peer, whatever the header says.
        assert_eq!(
            client_addr(&ProxyTrust::None, ip("10.0.0.2"), &headers("1.2.3.4")),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn the_throttle_maps_stay_bounded_under_a_flood_of_names() {
        let throttle = LoginThrottle::new(3, Duration::from_secs(600)).with_max_entries(100);
        for n in 0..5_000 {
            let _ = throttle.reserve(&format!("made-up-{n}"), Some(IpAddr::from([10, 0, 0, 1])));
            let (pairs, accounts) = throttle.len();
            assert!(pairs <= 100 && accounts <= 100, "{pairs} {accounts}");
        }
        // The newest entries are the ones kept: a fresh guesser is still counted.
        let ip = Some(IpAddr::from([10, 0, 0, 9]));
        for _ in 0..3 {
            throttle.reserve("target", ip).unwrap();
        }
        assert!(throttle.reserve("target", ip).is_err());
    }

    #[test]
    fn the_account_backoff_doubles_and_success_clears_it() {
        let throttle = LoginThrottle::new(100, Duration::from_secs(600)).with_account_budget(2);
        let from = |n: u8| Some(IpAddr::from([192, 0, 2, n]));
        throttle.reserve("amy", from(1)).unwrap();
        throttle.reserve("amy", from(2)).unwrap();
        match throttle.reserve("amy", from(3)) {
            Err(ApiError::TooManyAttempts { retry_after_secs }) => assert_eq!(retry_after_secs, 1),
            other => panic!("{other:?}"),
        }
        std::thread::sleep(Duration::from_millis(1100));
        throttle.reserve("amy", from(3)).unwrap();
        match throttle.reserve("amy", from(4)) {
            Err(ApiError::TooManyAttempts { retry_after_secs }) => assert_eq!(retry_after_secs, 2),
            other => panic!("{other:?}"),
        }
        // Another account is not affected.
        throttle.reserve("bea", from(4)).unwrap();
        throttle.succeeded("amy", from(3));
        throttle.reserve("amy", from(5)).unwrap();
        // An address amy logged in from is not held up by her account's backoff.
        for n in 10..20 {
            let _ = throttle.reserve("amy", from(n));
        }
        assert!(throttle.reserve("amy", from(30)).is_err());
        throttle.reserve("amy", from(3)).unwrap();
    }

    #[test]
    fn rotated_keys_verify_by_kid_and_unknown_kids_are_refused() {
        let old = TokenKeys::new(&[1; 32], Duration::from_secs(60)).unwrap();
        let new = TokenKeys::new(&[2; 32], Duration::from_secs(60))
            .unwrap()
            .with_previous([&[1u8; 32][..]])
            .unwrap();
        let token = old.issue(&user("alice", 1)).unwrap();
        assert_eq!(new.verify(&token).unwrap().sub, "alice");
        assert_ne!(old.current_id(), new.current_id());
        let unrelated = TokenKeys::new(&[3; 32], Duration::from_secs(60)).unwrap();
        assert!(unrelated.verify(&token).is_err());
    }
}
