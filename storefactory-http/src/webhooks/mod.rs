//! Webhooks: store events sent to URLs that owners and admins register.
//!
//! One mechanism per module: [`storefactory_sql::webhook_target`] decides which URLs and
//! addresses may be called (shared with every edge that registers webhooks),
//! [`signature`] signs a body, `client` sends one request, and `dispatcher` turns the
//! durable event feed into deliveries and works them off.
//!
//! The path of an event: the Provisioner records it (store event + event feed entry, one
//! transaction); the dispatcher, on its own task and never on the reconciler's path, moves
//! its cursor over the feed and writes one pending delivery per matching webhook in the
//! same transaction; senders claim due deliveries (one in flight per webhook), sign and
//! POST them, and record the answer. Every step is in the database before the next starts,
//! so a crash loses nothing: at worst a delivery whose answer was not recorded yet is sent
//! again, under the same `Storefactory-Delivery` id.
//!
//! Several processes may share the database: the fan-out and the claims are transactions,
//! so each event is queued once and each delivery sent by one process at a time. No
//! leader is needed, so a replica without a cluster connection still delivers.

pub(crate) mod client;
pub(crate) use client::tls_config;
pub(crate) mod dispatcher;
pub mod signature;

use std::time::Duration;

/// How webhooks behave. Start from [`WebhookConfig::default`] and set the fields that
/// differ; a field of [`crate::ServerConfig`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WebhookConfig {
    /// Whether URLs may point at private, loopback, link-local, CGNAT or cluster-internal
    /// addresses, and may use plain `http`. Default `false`: such targets would let any
    /// user make the server call into its own network (SSRF). Checked when a webhook is
    /// registered and again on the resolved address at every delivery.
    pub allow_private: bool,
    /// How long one delivery attempt may take, connecting included. Default 5 seconds.
    pub timeout: Duration,
    /// Attempts per delivery before it is `failed`. Default 12.
    pub max_attempts: u32,
    /// Wait before the first retry; it doubles with each attempt (with jitter) up to
    /// [`WebhookConfig::max_retry_delay`]. Default 2 seconds.
    pub first_retry_delay: Duration,
    /// Longest wait between two attempts. Default 15 minutes.
    pub max_retry_delay: Duration,
    /// Deliveries sent at once by this process. Default 8.
    pub concurrency: usize,
    /// Webhooks one user may register. Default 10.
    pub max_per_user: usize,
    /// Deliveries kept per webhook (its log); older ones are dropped, sent or not.
    /// Default 200.
    pub keep_deliveries: usize,
    /// How often the event feed and the due deliveries are looked at. Default 250 ms.
    pub poll_interval: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            allow_private: false,
            timeout: Duration::from_secs(5),
            max_attempts: 12,
            first_retry_delay: Duration::from_secs(2),
            max_retry_delay: Duration::from_secs(15 * 60),
            concurrency: 8,
            max_per_user: storefactory_sql::DEFAULT_MAX_WEBHOOKS_PER_OWNER,
            keep_deliveries: 200,
            poll_interval: Duration::from_millis(250),
        }
    }
}
