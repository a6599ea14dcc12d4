//! Users, their roles, quotas and passwords.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use storefactory_core::port::{Quota, Usage};
use storefactory_core::store::Timestamp;

use crate::db::{Database, blocking};
use crate::error::{Error, QueryContext, Result};
use crate::password;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Manages users and sees every store.
    Admin,
    /// Manages their own stores, within their quota.
    User,
}

impl Role {
    /// The lowercase name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not the name of a [`Role`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?} (expected admin or user)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Role::Admin),
            "user" => Ok(Role::User),
            other => Err(UnknownRole(other.to_owned())),
        }
    }
}

/// A user as stored, without the password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Unique name; stores name it as their owner.
    pub username: String,
    /// What the user may do.
    pub role: Role,
    /// How many stores and how much storage the user may hold.
    pub quota: Quota,
    /// When the user was created.
    pub created_at: Timestamp,
    /// When the role, quota or password last changed.
    pub updated_at: Timestamp,
    /// When the password was last set: at creation and by [`Database::set_password`].
    /// Strictly increases with every change, so it also tells apart two changes within
    /// one millisecond. Access tokens issued before it should no longer be accepted.
    pub password_changed_at: Timestamp,
    /// Moves on with every logout and every time the account is disabled: access tokens
    /// name the version they were issued under and are good only while it is current.
    #[serde(default)]
    pub token_version: i64,
    /// A disabled user cannot log in, and their tokens were voided when it was disabled.
    #[serde(default)]
    pub disabled: bool,
}

/// Longest username: usernames end up in Kubernetes label values, which allow 63 characters.
const MAX_USERNAME_LEN: usize = 63;

/// Checks a new username: 1 to 63 lowercase ASCII letters, digits, `.`, `_` or `-`, starting
/// and ending with a letter or digit, so it is also a valid Kubernetes label value.
pub fn validate_username(username: &str) -> Result<()> {
    let invalid = |reason| {
        Err(Error::InvalidUsername {
            username: username.to_owned(),
            reason,
        })
    };
    if username.is_empty() {
        return invalid("must not be empty");
    }
    if username.len() > MAX_USERNAME_LEN {
        return invalid("longer than 63 characters");
    }
    let edge = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let inner = |c: u8| edge(c) || matches!(c, b'.' | b'_' | b'-');
    let bytes = username.as_bytes();
    if !bytes.iter().all(|&c| inner(c)) {
        return invalid("only lowercase letters, digits, '.', '_' and '-' are allowed");
    }
    if !edge(bytes[0]) || !edge(bytes[bytes.len() - 1]) {
        return invalid("must start and end with a lowercase letter or digit");
    }
    Ok(())
}

const USER_COLUMNS: &str = "username, role, max_stores, max_storage_gib, created_at, \
                            updated_at, password_changed_at, password_hash, token_version, \
                            disabled";

/// Reads a row selected with [`USER_COLUMNS`] into the user and the password hash.
fn user_from_row(row: &Row<'_>) -> rusqlite::Result<(User, String)> {
    let role: String = row.get(1)?;
    let role = role.parse::<Role>().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(e))
    })?;
    let max_stores: u32 = row.get(2)?;
    let max_storage_gib: u64 = row.get::<_, i64>(3)?.try_into().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Integer, Box::new(e))
    })?;
    Ok((
        User {
            username: row.get(0)?,
            role,
            quota: Quota {
                max_stores,
                max_storage_gib,
            },
            created_at: Timestamp(row.get(4)?),
            updated_at: Timestamp(row.get(5)?),
            password_changed_at: Timestamp(row.get(6)?),
            token_version: row.get(8)?,
            disabled: row.get(9)?,
        },
        row.get(7)?,
    ))
}

fn find_user(conn: &Connection, username: &str) -> Result<Option<(User, String)>> {
    conn.prepare_cached(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE username = ?1"
    ))
    .and_then(|mut stmt| stmt.query_row([username], user_from_row).optional())
    .during("read user")
}

fn storage_sql(gib: u64) -> i64 {
    // SQLite integers are signed; no quota needs more than 2^63 GiB.
    i64::try_from(gib).unwrap_or(i64::MAX)
}

/// The SQL list of statuses that count against a quota, e.g. `'initialized','ready'`,
/// derived from core so the two cannot drift apart.
pub(crate) fn holding_statuses() -> &'static str {
    use std::sync::LazyLock;
    use storefactory_core::store::StoreStatus;
    static LIST: LazyLock<String> = LazyLock::new(|| {
        StoreStatus::ALL
            .into_iter()
            .filter(|s| s.holds_resources())
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(",")
    });
    &LIST
}

/// What `owner` holds: stores not yet deleted and their WordPress + MySQL storage.
pub(crate) fn usage_of(conn: &Connection, owner: &str) -> Result<Usage> {
    let (stores, storage): (i64, i64) = conn
        .prepare_cached(&format!(
            "SELECT count(*), coalesce(sum(storage_gib), 0) FROM stores \
             WHERE owner = ?1 AND status IN ({})",
            holding_statuses()
        ))
        .and_then(|mut stmt| stmt.query_row([owner], |row| Ok((row.get(0)?, row.get(1)?))))
        .during("count usage")?;
    Ok(Usage {
        stores: u32::try_from(stores).unwrap_or(u32::MAX),
        storage_gib: u64::try_from(storage).unwrap_or(0),
    })
}

impl Database {
    /// Creates a user with an Argon2id hash of `password`.
    ///
    /// Fails with [`Error::InvalidUsername`] (see [`validate_username`]),
    /// [`Error::InvalidPassword`] (fewer than 8 or more than 1024 characters) or
    /// [`Error::UserExists`].
    pub async fn create_user(
        &self,
        username: &str,
        password: &str,
        role: Role,
        quota: Quota,
    ) -> Result<User> {
        validate_username(username)?;
        password::check(password)?;
        let (username, password) = (username.to_owned(), password.to_owned());
        let inner = Arc::clone(&self.inner);
        let permit = self.password_permit().await?;
        blocking(move || {
            // Hash before taking the write lock: it is the slow part.
            let hash = password::hash(&password)?;
            drop(permit);
            let now = Timestamp::now();
            let conn = inner.lock_writer();
            let inserted = conn
                .execute(
                    "INSERT INTO users (username, password_hash, role, max_stores, \
                     max_storage_gib, created_at, updated_at, password_changed_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?6) ON CONFLICT (username) DO NOTHING",
                    params![
                        username,
                        hash,
                        role.as_str(),
                        quota.max_stores,
                        storage_sql(quota.max_storage_gib),
                        now.0
                    ],
                )
                .during("create user")?;
            if inserted == 0 {
                return Err(Error::UserExists { username });
            }
            Ok(User {
                username,
                role,
                quota,
                created_at: now,
                updated_at: now,
                password_changed_at: now,
                token_version: 0,
                disabled: false,
            })
        })
        .await
    }

    /// The user named `username`, if any.
    pub async fn get_user(&self, username: &str) -> Result<Option<User>> {
        let username = username.to_owned();
        self.read(move |conn| Ok(find_user(conn, &username)?.map(|(user, _)| user)))
            .await
    }

    /// Every user, by name.
    pub async fn list_users(&self) -> Result<Vec<User>> {
        self.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users ORDER BY username"
            ))
            .and_then(|mut stmt| {
                stmt.query_map([], |row| user_from_row(row).map(|(user, _)| user))?
                    .collect()
            })
            .during("list users")
        })
        .await
    }

    /// The user, if `password` is theirs; `None` for a wrong password and for an unknown
    /// user alike.
    ///
    /// Takes the same time whether or not the user exists: for an unknown user the password
    /// is checked against a dummy hash of the same cost. The Argon2 work runs on the
    /// blocking thread pool, outside any database lock, and at most one per core at a time:
    /// further calls wait their turn without holding a thread.
    pub async fn verify_password(&self, username: &str, password: &str) -> Result<Option<User>> {
        let (username, password) = (username.to_owned(), password.to_owned());
        let inner = Arc::clone(&self.inner);
        let permit = self.password_permit().await?;
        blocking(move || {
            let found = inner.with_reader(|conn| find_user(conn, &username))?;
            let hash = found
                .as_ref()
                .map_or(password::DUMMY_HASH, |(_, hash)| hash.as_str());
            let matches = password::verify(&password, hash);
            drop(permit);
            Ok(found.filter(|_| matches).map(|(user, _)| user))
        })
        .await
    }

    /// Replaces the user's password and moves [`User::password_changed_at`] forward. Fails
    /// with [`Error::InvalidPassword`] or [`Error::UserNotFound`].
    pub async fn set_password(&self, username: &str, password: &str) -> Result<()> {
        password::check(password)?;
        let (username, password) = (username.to_owned(), password.to_owned());
        let inner = Arc::clone(&self.inner);
        let permit = self.password_permit().await?;
        blocking(move || {
            let hash = password::hash(&password)?;
            drop(permit);
            let updated = inner
                .lock_writer()
                .execute(
                    // `max`: never the same stamp twice, even for two changes within a
                    // millisecond or after the clock stepped back.
                    "UPDATE users SET password_hash = ?2, updated_at = ?3, \
                     password_changed_at = max(?3, password_changed_at + 1) \
                     WHERE username = ?1",
                    params![username, hash, Timestamp::now().0],
                )
                .during("set password")?;
            if updated == 0 {
                return Err(Error::UserNotFound { username });
            }
            Ok(())
        })
        .await
    }

    /// Sets the user's quota and returns the updated user. Stores already held are kept
    /// even if they now exceed it; only new stores are refused.
    pub async fn set_quota(&self, username: &str, quota: Quota) -> Result<User> {
        let username = username.to_owned();
        self.update_user(username, "set quota", move |conn, username, now| {
            conn.execute(
                "UPDATE users SET max_stores = ?2, max_storage_gib = ?3, updated_at = ?4 \
                 WHERE username = ?1",
                params![
                    username,
                    quota.max_stores,
                    storage_sql(quota.max_storage_gib),
                    now
                ],
            )
        })
        .await
    }

    /// Sets the user's role and returns the updated user.
    pub async fn set_role(&self, username: &str, role: Role) -> Result<User> {
        let username = username.to_owned();
        self.update_user(username, "set role", move |conn, username, now| {
            conn.execute(
                "UPDATE users SET role = ?2, updated_at = ?3 WHERE username = ?1",
                params![username, role.as_str(), now],
            )
        })
        .await
    }

    /// Voids every access token issued to the user so far (logging out everywhere) and
    /// returns the updated user.
    pub async fn revoke_tokens(&self, username: &str) -> Result<User> {
        let username = username.to_owned();
        self.update_user(username, "revoke tokens", move |conn, username, now| {
            conn.execute(
                "UPDATE users SET token_version = token_version + 1, updated_at = ?2 \
                 WHERE username = ?1",
                params![username, now],
            )
        })
        .await
    }

    /// Disables the user (they cannot log in, and every token they hold is void at once) or
    /// enables them again, and returns the updated user. Their stores are kept.
    pub async fn set_disabled(&self, username: &str, disabled: bool) -> Result<User> {
        let username = username.to_owned();
        self.update_user(username, "disable user", move |conn, username, now| {
            conn.execute(
                "UPDATE users SET disabled = ?2, updated_at = ?3, \
                 token_version = token_version + (CASE WHEN ?2 THEN 1 ELSE 0 END) \
                 WHERE username = ?1",
                params![username, disabled, now],
            )
        })
        .await
    }

    /// Users by name, a page at a time: at most `limit` (at least one) of those whose names
    /// sort after `after`.
    pub async fn list_users_page(&self, after: Option<&str>, limit: usize) -> Result<Vec<User>> {
        let after = after.unwrap_or_default().to_owned();
        let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE username > ?1 ORDER BY username LIMIT ?2"
            ))
            .and_then(|mut stmt| {
                stmt.query_map(params![after, limit], |row| {
                    user_from_row(row).map(|(user, _)| user)
                })?
                .collect()
            })
            .during("list a page of users")
        })
        .await
    }

    async fn update_user<F>(
        &self,
        username: String,
        operation: &'static str,
        update: F,
    ) -> Result<User>
    where
        F: FnOnce(&Connection, &str, i64) -> rusqlite::Result<usize> + Send + 'static,
    {
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .during(operation)?;
            if update(&tx, &username, Timestamp::now().0).during(operation)? == 0 {
                return Err(Error::UserNotFound { username });
            }
            let user = find_user(&tx, &username)?
                .map(|(user, _)| user)
                .ok_or_else(|| Error::UserNotFound {
                    username: username.clone(),
                })?;
            tx.commit().during(operation)?;
            Ok(user)
        })
        .await
    }

    /// What `owner` holds now, as counted against their quota: stores not yet deleted and
    /// the storage of their WordPress and MySQL volumes. Zero for an unknown owner.
    pub async fn usage(&self, owner: &str) -> Result<Usage> {
        let owner = owner.to_owned();
        self.read(move |conn| usage_of(conn, &owner)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        for ok in ["admin", "a", "alice.smith", "bob_2", "x-y", &"a".repeat(63)] {
            assert!(validate_username(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Admin",
            "-bob",
            "bob-",
            "a b",
            "al/ice",
            "élise",
            &"a".repeat(64),
        ] {
            assert!(validate_username(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn roles_round_trip() {
        for role in [Role::Admin, Role::User] {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn only_deleted_stores_are_free() {
        // A suspended store keeps its volumes: it still counts against its owner's quota.
        assert_eq!(
            holding_statuses(),
            "'initialized','provisioning','ready','failed','deleting','suspending','suspended',\
             'resuming','updating','restoring'"
        );
    }
}
