//! The server's secret key, kept in the database when the operator gives none, and the key
//! derived from it that seals what the database must not hold in plain text: the values
//! chosen at a store's creation (its admin password) and webhook signing secrets.
//!
//! Every process sealing or opening those values (servers, the command line, scripts) must
//! hold the same key, or a value sealed by one never opens in another. The last server to
//! start records a check value sealed under its key; the others compare against it.

use storefactory_core::seal::SealingKey;

use crate::db::Database;
use crate::error::{Error, Result};

/// Settings key of the secret a server generates when it is given no token key: it signs
/// access tokens, and the sealing key is derived from it.
pub const TOKEN_KEY_SETTING: &str = "http.token_key";

/// Settings key of a value sealed under the key the last server started with. (Its name is
/// from the time only webhook secrets were sealed; databases keep it.)
const KEY_CHECK_SETTING: &str = "webhooks.key_check";
const KEY_CHECK_CONTEXT: &str = "webhooks key check";

impl Database {
    /// Records that servers seal with `key` (a server calls this when it starts), so that
    /// [`Database::sealing_key`] in another process can tell whether it holds the same key.
    pub async fn record_sealing_key(&self, key: &SealingKey) -> Result<()> {
        self.set_setting(
            KEY_CHECK_SETTING,
            &key.seal(KEY_CHECK_CONTEXT, KEY_CHECK_CONTEXT.as_bytes()),
        )
        .await
    }

    /// The key the server seals with: derived from `token_key` (the server's
    /// `--token-key-file` or `STOREFACTORY_TOKEN_KEY`) when given, otherwise from the key
    /// a server without one keeps in the database ([`TOKEN_KEY_SETTING`]), generated and
    /// stored first if no server ever ran on this database, as a server would.
    ///
    /// A key that is not the one the last server started with is refused
    /// ([`Error::KeyMismatch`]): values sealed under it would never open in the server.
    /// Before any server started, the first key used is recorded as if a server had
    /// started with it, so that two scripts do not seal under different keys either.
    pub async fn sealing_key(&self, token_key: Option<&str>) -> Result<SealingKey> {
        let key = match token_key {
            Some(key) => key.to_owned(),
            None => {
                self.setting_or_insert(
                    TOKEN_KEY_SETTING,
                    &storefactory_core::blueprint::generate_password(64),
                )
                .await?
            }
        };
        let key = SealingKey::derive(key.as_bytes());
        let check = self
            .setting_or_insert(
                KEY_CHECK_SETTING,
                &key.seal(KEY_CHECK_CONTEXT, KEY_CHECK_CONTEXT.as_bytes()),
            )
            .await?;
        if key.open(KEY_CHECK_CONTEXT, &check).is_err() {
            return Err(Error::KeyMismatch {
                given: token_key.is_some(),
            });
        }
        Ok(key)
    }
}
