//! SQLite persistence for Storefactory: users, quotas, stores and their events, an audit
//! log and server settings, in one file.
//!
//! [`Database`] implements core's [`StoreRepository`](storefactory_core::port::StoreRepository),
//! so the Provisioner runs on it unchanged, and adds what only the platform needs: users with
//! Argon2id password hashes and quotas, the audit trail, settings and online backups.
//!
//! ```no_run
//! use storefactory_core::port::{Quota, StoreRepository};
//! use storefactory_sql::{AuditRecord, Database, Role};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let db = Database::open("storefactory.db").await?;
//! db.create_user("alice", "correct horse battery", Role::User, Quota::default())
//!     .await?;
//! if let Some(user) = db.verify_password("alice", "correct horse battery").await? {
//!     db.record_audit(AuditRecord::new("login").actor(&user.username)).await?;
//! }
//! // The storage port the Provisioner uses.
//! let repository: std::sync::Arc<dyn StoreRepository> = std::sync::Arc::new(db.clone());
//! db.backup_to("storefactory-backup.db").await?;
//! # Ok(())
//! # }
//! ```
//!
//! The schema is versioned ([`SCHEMA_VERSION`]) and migrated when the file is opened; a file
//! written by a newer version is refused rather than misread.

mod audit;
mod backups;
mod db;
pub mod error;
mod keys;
mod password;
mod schema;
mod stores;
mod users;
pub mod webhook_target;
mod webhooks;

pub use audit::{AuditEntry, AuditFilter, AuditRecord};
pub use db::Database;
pub use error::{Error, Result};
pub use keys::TOKEN_KEY_SETTING;
pub use schema::SCHEMA_VERSION;
pub use storefactory_core::port::{Quota, Usage};
pub use stores::{InvalidCursor, StoreCursor, StoreOrder, StorePage};
pub use users::{Role, UnknownRole, User, validate_username};
pub use webhooks::{
    ClaimedDelivery, CreatedWebhook, DEFAULT_DELIVERIES, DEFAULT_MAX_WEBHOOKS_PER_OWNER, Delivery,
    DeliveryOutcome, DeliveryState, DeliveryView, MAX_DELIVERIES, MAX_ERROR_CHARS,
    MAX_PAYLOAD_BYTES, NewWebhook, RegisteredWebhook, Webhook, WebhookEvents, WebhookRequest,
    WebhookRules, WebhookView, seal_context,
};
