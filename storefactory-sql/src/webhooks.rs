//! Webhooks and their deliveries: the registrations, and an outbox of deliveries filled from
//! the event feed and worked off by a dispatcher (in `storefactory-http`).
//!
//! Every edge registers webhooks through [`Database::register_webhook`], so the URL rules
//! ([`crate::webhook_target`]), the id and secret and how the secret is sealed are decided
//! once. This crate sends nothing. What it guarantees is the bookkeeping that makes the
//! dispatcher safe:
//! the fan-out of the feed into deliveries moves its cursor in the same transaction
//! ([`Database::fan_out_webhook_events`]), and a delivery is claimed by one process at a
//! time ([`Database::claim_webhook_deliveries`]).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::RngCore;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use storefactory_core::seal::SealingKey;
use storefactory_core::store::Timestamp;

use crate::db::Database;
use crate::error::{Error, QueryContext, Result};
use crate::users::Role;
use crate::webhook_target;

/// Settings key of the dispatcher's position in the event feed.
const CURSOR_SETTING: &str = "webhooks.feed_cursor";

/// Longest `last_error` kept, in characters: an error is for people, not a log.
pub const MAX_ERROR_CHARS: usize = 300;

/// Largest payload stored for one delivery, in bytes. Events are small; a larger one (a
/// very long reason) is sent without its details rather than stored whole for every
/// webhook.
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024;

/// Webhooks one user may register unless configured otherwise.
pub const DEFAULT_MAX_WEBHOOKS_PER_OWNER: usize = 10;

/// Most deliveries one read of a webhook's log may ask for (the log keeps the newest 200
/// by default).
pub const MAX_DELIVERIES: usize = 200;

/// Deliveries read from a webhook's log when the caller does not say how many.
pub const DEFAULT_DELIVERIES: usize = 50;

/// The sealing context of a webhook's secret: a secret sealed for one webhook does not
/// open for another, nor as a store's sealed inputs.
pub fn seal_context(webhook_id: &str) -> String {
    format!("webhook:{webhook_id}")
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buffer);
    buffer.iter().map(|b| format!("{b:02x}")).collect()
}

/// Which events a webhook receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookEvents {
    /// Every store event: status changes and provisioning steps.
    All,
    /// Status changes only (`provisioning`, `ready`, `failed`, `deleting`, ...).
    Status,
}

impl WebhookEvents {
    /// The lowercase name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEvents::All => "all",
            WebhookEvents::Status => "status",
        }
    }
}

impl FromStr for WebhookEvents {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "all" => Ok(WebhookEvents::All),
            "status" => Ok(WebhookEvents::Status),
            other => Err(Error::Corrupt {
                what: "webhook event filter",
                message: format!("unknown filter {other:?}"),
            }),
        }
    }
}

impl WebhookEvents {
    /// Parses a filter given by a user: `all` or `status`, or an
    /// [`Error::InvalidWebhook`] about `events`.
    pub fn parse_input(text: &str) -> Result<Self> {
        text.parse().map_err(|_| Error::InvalidWebhook {
            field: "events",
            message: "must be \"all\" or \"status\"".to_owned(),
        })
    }
}

/// What a user asks for when registering a webhook; see [`Database::register_webhook`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRequest {
    /// The user who registers it.
    pub owner: String,
    /// Where deliveries are sent, as given (checked and normalised on registration).
    pub url: String,
    /// Which events it receives.
    pub events: WebhookEvents,
    /// Whether it receives every user's store events (admins only).
    pub all_stores: bool,
}

/// The rules a registration follows: the platform's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookRules {
    /// Whether URLs may name private, loopback, link-local or internal hosts and use plain
    /// `http` (development only: otherwise any user could make the server call into its
    /// own network).
    pub allow_private: bool,
    /// Webhooks one user may register.
    pub max_per_owner: usize,
}

impl Default for WebhookRules {
    fn default() -> Self {
        WebhookRules {
            allow_private: false,
            max_per_owner: DEFAULT_MAX_WEBHOOKS_PER_OWNER,
        }
    }
}

/// A webhook just registered, with its signing secret in plain text: the only time it is.
/// `Debug` output hides the secret.
#[derive(Clone)]
pub struct RegisteredWebhook {
    /// The webhook, as stored (its secret sealed).
    pub webhook: Webhook,
    /// The signing secret, `whsec_...`: show it to the user once and forget it.
    pub secret: String,
}

impl fmt::Debug for RegisteredWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisteredWebhook")
            .field("webhook", &self.webhook)
            .finish_non_exhaustive()
    }
}

/// A webhook to register; see [`Database::create_webhook`].
#[derive(Clone)]
pub struct NewWebhook {
    /// Its id, chosen by the caller (random, unguessable).
    pub id: String,
    /// The user who registers it.
    pub owner: String,
    /// Where deliveries are sent, already validated.
    pub url: String,
    /// The signing secret, sealed by the caller. Never stored in plain text.
    pub sealed_secret: String,
    /// Which events it receives.
    pub events: WebhookEvents,
    /// Whether it receives every user's store events (honoured for admins only).
    pub all_stores: bool,
}

impl fmt::Debug for NewWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewWebhook")
            .field("id", &self.id)
            .field("owner", &self.owner)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("all_stores", &self.all_stores)
            .finish_non_exhaustive()
    }
}

/// A registered webhook. Its `Debug` output hides the sealed secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Its id.
    pub id: String,
    /// The user who registered it.
    pub owner: String,
    /// Where deliveries are sent.
    pub url: String,
    /// The signing secret, sealed.
    pub sealed_secret: String,
    /// Which events it receives.
    pub events: WebhookEvents,
    /// Whether it receives every user's store events (while its owner is an admin).
    pub all_stores: bool,
    /// When it was registered; it receives events recorded from then on.
    pub created_at: Timestamp,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("id", &self.id)
            .field("owner", &self.owner)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("all_stores", &self.all_stores)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

const WEBHOOK_COLUMNS: &str = "id, owner, url, sealed_secret, events, all_stores, created_at";

fn read_webhook(row: &Row<'_>) -> rusqlite::Result<(Webhook, String)> {
    Ok((
        Webhook {
            id: row.get(0)?,
            owner: row.get(1)?,
            url: row.get(2)?,
            sealed_secret: row.get(3)?,
            events: WebhookEvents::All,
            all_stores: row.get::<_, i64>(5)? != 0,
            created_at: Timestamp(row.get(6)?),
        },
        row.get(4)?,
    ))
}

fn decode_webhook((mut webhook, events): (Webhook, String)) -> Result<Webhook> {
    webhook.events = events.parse()?;
    Ok(webhook)
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Not delivered yet: waiting for its first attempt or a retry (or being sent).
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Every attempt failed; no more are made.
    Failed,
}

impl DeliveryState {
    /// The lowercase name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }
}

impl FromStr for DeliveryState {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "pending" => Ok(DeliveryState::Pending),
            "delivered" => Ok(DeliveryState::Delivered),
            "failed" => Ok(DeliveryState::Failed),
            other => Err(Error::Corrupt {
                what: "delivery state",
                message: format!("unknown state {other:?}"),
            }),
        }
    }
}

/// A webhook as the edges show it (the HTTP API, the command line): never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookView {
    /// The id.
    pub id: String,
    /// Where deliveries are sent.
    pub url: String,
    /// `all` events or `status` changes only.
    pub events: WebhookEvents,
    /// Whether it receives every user's store events (admins).
    pub all_stores: bool,
    /// Who registered it.
    pub owner: String,
    /// When, milliseconds since the Unix epoch.
    pub created_at: i64,
}

impl From<&Webhook> for WebhookView {
    fn from(webhook: &Webhook) -> Self {
        WebhookView {
            id: webhook.id.clone(),
            url: webhook.url.clone(),
            events: webhook.events,
            all_stores: webhook.all_stores,
            owner: webhook.owner.clone(),
            created_at: webhook.created_at.0,
        }
    }
}

/// A webhook just registered as the edges show it: the webhook and, this once, its
/// secret. Its `Debug` output hides the secret.
#[derive(Clone, Serialize)]
pub struct CreatedWebhook {
    /// The webhook.
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// The signing secret: keep it, it is never shown again.
    pub secret: String,
}

impl From<&RegisteredWebhook> for CreatedWebhook {
    fn from(registered: &RegisteredWebhook) -> Self {
        CreatedWebhook {
            webhook: WebhookView::from(&registered.webhook),
            secret: registered.secret.clone(),
        }
    }
}

impl fmt::Debug for CreatedWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedWebhook")
            .field("webhook", &self.webhook)
            .finish_non_exhaustive()
    }
}

/// One delivery of one event to one webhook, as its log shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Its id, also sent to the receiver (`Storefactory-Delivery`) so that a delivery sent
    /// twice (a crash between sending and recording) can be recognised.
    pub id: i64,
    /// The store the event is about.
    pub store_id: String,
    /// The event's sequence number within the store's history.
    pub event_seq: i64,
    /// The event's kind (`status`, `step`, ...).
    pub event_kind: String,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempts: u32,
    /// The HTTP status of the last answer, if the receiver answered.
    pub last_status: Option<u16>,
    /// Why the last attempt failed, for people (bounded).
    pub last_error: Option<String>,
    /// When the next attempt is due (for a pending delivery).
    pub next_attempt_at: Timestamp,
    /// When the event was queued for the webhook.
    pub created_at: Timestamp,
    /// When the delivery last changed (its last attempt, once there was one).
    pub updated_at: Timestamp,
}

/// One delivery in a webhook's log as the edges show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryView {
    /// The id, sent as `Storefactory-Delivery`.
    pub id: i64,
    /// The store the event is about.
    pub store_id: String,
    /// The event's sequence number in the store's history.
    pub event_seq: i64,
    /// The event's kind.
    pub event: String,
    /// `pending`, `delivered` or `failed`.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: u32,
    /// HTTP status of the last answer, if there was one.
    pub last_status: Option<u16>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
    /// When the next attempt is due, for a pending delivery.
    pub next_attempt_at: Option<i64>,
    /// When the event was queued.
    pub created_at: i64,
    /// When the delivery last changed.
    pub updated_at: i64,
}

impl From<Delivery> for DeliveryView {
    fn from(delivery: Delivery) -> Self {
        DeliveryView {
            id: delivery.id,
            store_id: delivery.store_id,
            event_seq: delivery.event_seq,
            event: delivery.event_kind,
            next_attempt_at: (delivery.state == DeliveryState::Pending)
                .then_some(delivery.next_attempt_at.0),
            state: delivery.state,
            attempts: delivery.attempts,
            last_status: delivery.last_status,
            last_error: delivery.last_error,
            created_at: delivery.created_at.0,
            updated_at: delivery.updated_at.0,
        }
    }
}

/// A delivery claimed for sending: everything the sender needs.
#[derive(Clone)]
pub struct ClaimedDelivery {
    /// The delivery's id.
    pub id: i64,
    /// The webhook's id.
    pub webhook_id: String,
    /// Where to send it.
    pub url: String,
    /// The webhook's sealed secret.
    pub sealed_secret: String,
    /// The event's kind.
    pub event_kind: String,
    /// The JSON body to send, exactly as stored (and signed).
    pub payload: String,
    /// Which attempt this is (1 for the first).
    pub attempt: u32,
}

impl fmt::Debug for ClaimedDelivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClaimedDelivery")
            .field("id", &self.id)
            .field("webhook_id", &self.webhook_id)
            .field("url", &self.url)
            .field("event_kind", &self.event_kind)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

/// How an attempt ended; see [`Database::finish_webhook_delivery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The receiver answered 2xx with this status.
    Delivered {
        /// The status.
        status: u16,
    },
    /// The attempt failed; try again at `at`.
    Retry {
        /// The status, if the receiver answered.
        status: Option<u16>,
        /// Why, for people.
        error: String,
        /// When the next attempt is due.
        at: Timestamp,
    },
    /// The attempt failed and was the last one.
    Failed {
        /// The status, if the receiver answered.
        status: Option<u16>,
        /// Why, for people.
        error: String,
    },
}

/// `text` cut to [`MAX_ERROR_CHARS`] characters.
fn bounded(text: &str) -> String {
    match text.char_indices().nth(MAX_ERROR_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// The JSON body sent for an event: what happened, to which store, when, and the event as
/// the store's history records it.
fn payload(
    store_id: &str,
    owner: &str,
    seq: i64,
    at: i64,
    kind: &str,
    body: &str,
) -> Result<String> {
    let data: serde_json::Value = serde_json::from_str(body).map_err(|e| Error::Corrupt {
        what: "store event",
        message: e.to_string(),
    })?;
    let mut value = serde_json::json!({
        "type": kind,
        "store_id": store_id,
        "owner": owner,
        "seq": seq,
        "at": at,
        "data": data,
    });
    let mut text = value.to_string();
    if text.len() > MAX_PAYLOAD_BYTES {
        value["data"] = serde_json::json!({ "kind": kind, "truncated": true });
        text = value.to_string();
    }
    Ok(text)
}

/// Where the fan-out stopped reading the event feed; `None` before its first look.
fn read_cursor(conn: &Connection) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT value FROM settings WHERE key = ?1")
        .and_then(|mut stmt| {
            stmt.query_row([CURSOR_SETTING], |row| row.get::<_, String>(0))
                .optional()
        })
        .during("read the webhook cursor")?
        .and_then(|text| text.parse().ok()))
}

fn fan_out(conn: &mut Connection, batch: usize, keep: usize) -> Result<usize> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .during("begin webhook fan-out")?;
    let cursor = read_cursor(&tx)?;
    let now = Timestamp::now().0;
    let save = |tx: &rusqlite::Transaction<'_>, position: i64| {
        tx.prepare_cached(
            "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
             updated_at = excluded.updated_at",
        )
        .and_then(|mut stmt| stmt.execute(params![CURSOR_SETTING, position.to_string(), now]))
        .during("save the webhook cursor")
    };
    let cursor = match cursor {
        Some(cursor) => cursor,
        None => {
            // First start. Without a webhook, events so far go to nobody: skip them. With
            // one (registered before this first look, which a busy process can take a
            // while to reach), read the feed from its start: each webhook receives nothing
            // from before its creation anyway, and its first events must not be skipped.
            let any_webhook: bool = tx
                .query_row("SELECT EXISTS (SELECT 1 FROM webhooks)", [], |row| {
                    row.get(0)
                })
                .during("look for webhooks")?;
            if any_webhook {
                0
            } else {
                let head: i64 = tx
                    .query_row("SELECT coalesce(max(pos), 0) FROM event_feed", [], |row| {
                        row.get(0)
                    })
                    .during("read the feed head")?;
                save(&tx, head)?;
                tx.commit().during("commit webhook fan-out")?;
                return Ok(0);
            }
        }
    };
    type FeedRow = (i64, String, i64, i64, String, String, String);
    let rows: Vec<FeedRow> = tx
        .prepare_cached(
            "SELECT f.pos, e.store_id, e.seq, e.at, e.kind, e.body, s.owner FROM event_feed f \
             JOIN store_events e ON e.store_id = f.store_id AND e.seq = f.seq \
             JOIN stores s ON s.id = e.store_id \
             WHERE f.pos > ?1 ORDER BY f.pos LIMIT ?2",
        )
        .and_then(|mut stmt| {
            stmt.query_map(
                params![cursor, i64::try_from(batch).unwrap_or(i64::MAX)],
                |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                        row.get(5)?,
                        row.get(6)?,
                    ))
                },
            )?
            .collect()
        })
        .during("read the event feed")?;
    let Some(last) = rows.last().map(|row| row.0) else {
        return Ok(0);
    };
    let mut queued = 0;
    for (pos, store_id, seq, at, kind, body, owner) in &rows {
        let payload = payload(store_id, owner, *seq, *at, kind, body)?;
        // The store's owner's webhooks, and those of admins who asked for every store's;
        // a disabled user's webhooks receive nothing, and a webhook nothing from before it.
        queued += tx
            .prepare_cached(
                "INSERT OR IGNORE INTO webhook_deliveries (webhook_id, feed_pos, store_id, \
                 event_seq, event_kind, payload, state, attempts, next_attempt_at, created_at, \
                 updated_at) \
                 SELECT w.id, ?1, ?2, ?3, ?4, ?5, 'pending', 0, ?6, ?6, ?6 \
                 FROM webhooks w JOIN users u ON u.username = w.owner \
                 WHERE u.disabled = 0 AND w.created_at <= ?7 \
                 AND (w.owner = ?8 OR (w.all_stores = 1 AND u.role = 'admin')) \
                 AND (w.events = 'all' OR ?4 = 'status')",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![pos, store_id, seq, kind, payload, now, at, owner])
            })
            .during("queue webhook deliveries")?;
    }
    save(&tx, last)?;
    if queued > 0 {
        // Each webhook keeps its newest deliveries only: a receiver that is down for long
        // cannot grow the database without bound.
        let over: Vec<String> = tx
            .prepare_cached(
                "SELECT webhook_id FROM webhook_deliveries GROUP BY webhook_id \
                 HAVING count(*) > ?1",
            )
            .and_then(|mut stmt| {
                stmt.query_map([i64::try_from(keep).unwrap_or(i64::MAX)], |row| row.get(0))?
                    .collect()
            })
            .during("count webhook deliveries")?;
        for webhook in over {
            tx.prepare_cached(
                "DELETE FROM webhook_deliveries WHERE webhook_id = ?1 AND id NOT IN \
                 (SELECT id FROM webhook_deliveries WHERE webhook_id = ?1 \
                 ORDER BY id DESC LIMIT ?2)",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![webhook, i64::try_from(keep).unwrap_or(i64::MAX)])
            })
            .during("trim webhook deliveries")?;
        }
    }
    tx.commit().during("commit webhook fan-out")?;
    Ok(queued)
}

/// Whether the feed has events the fan-out has not looked at (or the cursor is not placed
/// yet): a read, so that an idle dispatcher never takes the write lock.
fn fan_out_due(conn: &Connection) -> Result<bool> {
    let Some(cursor) = read_cursor(conn)? else {
        return Ok(true);
    };
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM event_feed WHERE pos > ?1)")
        .and_then(|mut stmt| stmt.query_row([cursor], |row| row.get(0)))
        .during("look at the event feed")
}

/// Whether any delivery is due and not claimed: a read, like [`fan_out_due`].
fn claim_due(conn: &Connection) -> Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM webhook_deliveries WHERE state = 'pending' \
         AND next_attempt_at <= ?1 AND (claimed_until IS NULL OR claimed_until <= ?1))",
    )
    .and_then(|mut stmt| stmt.query_row([Timestamp::now().0], |row| row.get(0)))
    .during("look for due deliveries")
}

fn claim(
    conn: &mut Connection,
    max: usize,
    lease: Duration,
    max_attempts: u32,
) -> Result<Vec<ClaimedDelivery>> {
    let now = Timestamp::now().0;
    let until = now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .during("begin delivery claim")?;
    // A claim that expired on its last attempt: the process sending it stopped.
    tx.prepare_cached(
        "UPDATE webhook_deliveries SET state = 'failed', claimed_until = NULL, \
         last_error = 'the server stopped during the last attempt', updated_at = ?1 \
         WHERE state = 'pending' AND claimed_until IS NOT NULL AND claimed_until <= ?1 \
         AND attempts >= ?2",
    )
    .and_then(|mut stmt| stmt.execute(params![now, max_attempts]))
    .during("fail abandoned deliveries")?;
    // The oldest due delivery of each webhook that has none in flight: one at a time per
    // webhook, so a slow receiver holds one sender, and receivers see events in order
    // unless a retry is waiting.
    let claimed: Vec<ClaimedDelivery> = tx
        .prepare_cached(
            "SELECT d.id, d.webhook_id, w.url, w.sealed_secret, d.event_kind, d.payload, \
             d.attempts FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
             WHERE d.id IN (SELECT min(c.id) FROM webhook_deliveries c \
                 WHERE c.state = 'pending' AND c.next_attempt_at <= ?1 \
                 AND (c.claimed_until IS NULL OR c.claimed_until <= ?1) \
                 AND NOT EXISTS (SELECT 1 FROM webhook_deliveries b \
                     WHERE b.webhook_id = c.webhook_id AND b.state = 'pending' \
                     AND b.claimed_until > ?1) \
                 GROUP BY c.webhook_id) \
             ORDER BY d.next_attempt_at, d.id LIMIT ?2",
        )
        .and_then(|mut stmt| {
            stmt.query_map(
                params![now, i64::try_from(max).unwrap_or(i64::MAX)],
                |row| {
                    Ok(ClaimedDelivery {
                        id: row.get(0)?,
                        webhook_id: row.get(1)?,
                        url: row.get(2)?,
                        sealed_secret: row.get(3)?,
                        event_kind: row.get(4)?,
                        payload: row.get(5)?,
                        attempt: u32::try_from(row.get::<_, i64>(6)?)
                            .unwrap_or(u32::MAX)
                            .saturating_add(1),
                    })
                },
            )?
            .collect()
        })
        .during("find due deliveries")?;
    for delivery in &claimed {
        tx.prepare_cached(
            "UPDATE webhook_deliveries SET claimed_until = ?2, attempts = attempts + 1, \
             updated_at = ?3 WHERE id = ?1",
        )
        .and_then(|mut stmt| stmt.execute(params![delivery.id, until, now]))
        .during("claim delivery")?;
    }
    tx.commit().during("commit delivery claim")?;
    Ok(claimed)
}

fn finish(conn: &Connection, id: i64, outcome: &DeliveryOutcome) -> Result<()> {
    let now = Timestamp::now().0;
    let (state, status, error, next) = match outcome {
        DeliveryOutcome::Delivered { status } => ("delivered", Some(*status), None, None),
        DeliveryOutcome::Retry { status, error, at } => {
            ("pending", *status, Some(bounded(error)), Some(at.0))
        }
        DeliveryOutcome::Failed { status, error } => {
            ("failed", *status, Some(bounded(error)), None)
        }
    };
    // A delivery trimmed away or whose webhook was deleted meanwhile is simply gone.
    conn.prepare_cached(
        "UPDATE webhook_deliveries SET state = ?2, last_status = ?3, last_error = ?4, \
         next_attempt_at = coalesce(?5, next_attempt_at), claimed_until = NULL, \
         updated_at = ?6 WHERE id = ?1 AND state = 'pending'",
    )
    .and_then(|mut stmt| stmt.execute(params![id, state, status, error, next, now]))
    .during("record delivery attempt")?;
    Ok(())
}

fn read_delivery(row: &Row<'_>) -> rusqlite::Result<(Delivery, String)> {
    Ok((
        Delivery {
            id: row.get(0)?,
            store_id: row.get(1)?,
            event_seq: row.get(2)?,
            event_kind: row.get(3)?,
            state: DeliveryState::Pending,
            attempts: u32::try_from(row.get::<_, i64>(5)?).unwrap_or(u32::MAX),
            last_status: row
                .get::<_, Option<i64>>(6)?
                .and_then(|s| u16::try_from(s).ok()),
            last_error: row.get(7)?,
            next_attempt_at: Timestamp(row.get(8)?),
            created_at: Timestamp(row.get(9)?),
            updated_at: Timestamp(row.get(10)?),
        },
        row.get(4)?,
    ))
}

impl Database {
    /// Registers a webhook as a user asks: checks the URL ([`webhook_target::parse`],
    /// [`Error::InvalidWebhook`] about `url`), that the owner exists
    /// ([`Error::UserNotFound`]) and is an admin if it asks for every store
    /// ([`Error::WebhookNotAdmin`]), and the owner's limit ([`Error::WebhookLimit`]); then
    /// generates its id and signing secret and stores the secret sealed with `key` for this
    /// webhook. The key must be the one the dispatcher opens secrets with (see
    /// [`Database::sealing_key`]), or every delivery fails.
    pub async fn register_webhook(
        &self,
        request: WebhookRequest,
        rules: WebhookRules,
        key: &SealingKey,
    ) -> Result<RegisteredWebhook> {
        let target =
            webhook_target::parse(request.url.trim(), rules.allow_private).map_err(|message| {
                Error::InvalidWebhook {
                    field: "url",
                    message,
                }
            })?;
        let owner = self
            .get_user(&request.owner)
            .await?
            .ok_or_else(|| Error::UserNotFound {
                username: request.owner.clone(),
            })?;
        if request.all_stores && owner.role != Role::Admin {
            return Err(Error::WebhookNotAdmin {
                owner: owner.username,
            });
        }
        let id = format!("wh_{}", random_hex(12));
        let secret = format!("whsec_{}", random_hex(32));
        let sealed_secret = key.seal(&seal_context(&id), secret.as_bytes());
        let webhook = self
            .create_webhook(
                NewWebhook {
                    id,
                    owner: owner.username,
                    url: target.url,
                    sealed_secret,
                    events: request.events,
                    all_stores: request.all_stores,
                },
                rules.max_per_owner,
            )
            .await?;
        Ok(RegisteredWebhook { webhook, secret })
    }

    /// Removes the webhook `id` and its delivery log ([`Error::WebhookNotFound`] if there
    /// is none); pending deliveries are not sent.
    pub async fn remove_webhook(&self, id: &str) -> Result<()> {
        if self.delete_webhook(id).await? {
            Ok(())
        } else {
            Err(Error::WebhookNotFound { id: id.to_owned() })
        }
    }

    /// The newest `limit` deliveries of webhook `id`, newest first, as a user asks for
    /// them: `limit` from 1 to [`MAX_DELIVERIES`] ([`Error::InvalidWebhook`] about
    /// `limit`), and [`Error::WebhookNotFound`] for a webhook that does not exist.
    pub async fn webhook_delivery_log(&self, id: &str, limit: usize) -> Result<Vec<Delivery>> {
        if !(1..=MAX_DELIVERIES).contains(&limit) {
            return Err(Error::InvalidWebhook {
                field: "limit",
                message: format!("must be between 1 and {MAX_DELIVERIES}"),
            });
        }
        if self.get_webhook(id).await?.is_none() {
            return Err(Error::WebhookNotFound { id: id.to_owned() });
        }
        self.webhook_deliveries(id, limit).await
    }

    /// Registers a webhook, unless its owner already has `max_per_owner` of them
    /// ([`Error::WebhookLimit`]); the count and the insert are one transaction.
    pub async fn create_webhook(&self, new: NewWebhook, max_per_owner: usize) -> Result<Webhook> {
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .during("begin webhook registration")?;
            let count: i64 = tx
                .prepare_cached("SELECT count(*) FROM webhooks WHERE owner = ?1")
                .and_then(|mut stmt| stmt.query_row([&new.owner], |row| row.get(0)))
                .during("count webhooks")?;
            if usize::try_from(count).unwrap_or(usize::MAX) >= max_per_owner {
                return Err(Error::WebhookLimit {
                    owner: new.owner,
                    max: max_per_owner,
                });
            }
            let created_at = Timestamp::now();
            tx.prepare_cached(
                "INSERT INTO webhooks (id, owner, url, sealed_secret, events, all_stores, \
                 created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    new.id,
                    new.owner,
                    new.url,
                    new.sealed_secret,
                    new.events.as_str(),
                    i64::from(new.all_stores),
                    created_at.0
                ])
            })
            .during("register webhook")?;
            tx.commit().during("commit webhook registration")?;
            Ok(Webhook {
                id: new.id,
                owner: new.owner,
                url: new.url,
                sealed_secret: new.sealed_secret,
                events: new.events,
                all_stores: new.all_stores,
                created_at,
            })
        })
        .await
    }

    /// The webhook `id`, if it exists.
    pub async fn get_webhook(&self, id: &str) -> Result<Option<Webhook>> {
        let id = id.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = ?1"
            ))
            .and_then(|mut stmt| stmt.query_row([&id], read_webhook).optional())
            .during("read webhook")?
            .map(decode_webhook)
            .transpose()
        })
        .await
    }

    /// Webhooks oldest first: one owner's, or everyone's (at most `limit`).
    pub async fn list_webhooks(&self, owner: Option<&str>, limit: usize) -> Result<Vec<Webhook>> {
        let owner = owner.map(str::to_owned);
        self.read(move |conn| {
            let rows: Vec<(Webhook, String)> = conn
                .prepare_cached(&format!(
                    "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE (?1 IS NULL OR owner = ?1) \
                     ORDER BY created_at, id LIMIT ?2"
                ))
                .and_then(|mut stmt| {
                    stmt.query_map(
                        params![owner, i64::try_from(limit).unwrap_or(i64::MAX)],
                        read_webhook,
                    )?
                    .collect()
                })
                .during("list webhooks")?;
            rows.into_iter().map(decode_webhook).collect()
        })
        .await
    }

    /// Removes the webhook `id` and its deliveries; `false` if there was none.
    pub async fn delete_webhook(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.write(move |conn| {
            conn.prepare_cached("DELETE FROM webhooks WHERE id = ?1")
                .and_then(|mut stmt| stmt.execute([&id]))
                .during("delete webhook")
                .map(|n| n > 0)
        })
        .await
    }

    /// The newest `limit` deliveries of webhook `id`, newest first.
    pub async fn webhook_deliveries(&self, id: &str, limit: usize) -> Result<Vec<Delivery>> {
        let id = id.to_owned();
        self.read(move |conn| {
            let rows: Vec<(Delivery, String)> = conn
                .prepare_cached(
                    "SELECT id, store_id, event_seq, event_kind, state, attempts, last_status, \
                     last_error, next_attempt_at, created_at, updated_at \
                     FROM webhook_deliveries WHERE webhook_id = ?1 ORDER BY id DESC LIMIT ?2",
                )
                .and_then(|mut stmt| {
                    stmt.query_map(
                        params![id, i64::try_from(limit).unwrap_or(i64::MAX)],
                        read_delivery,
                    )?
                    .collect()
                })
                .during("list webhook deliveries")?;
            rows.into_iter()
                .map(|(mut delivery, state)| {
                    delivery.state = state.parse()?;
                    Ok(delivery)
                })
                .collect()
        })
        .await
    }

    /// Turns up to `batch` events of the feed after the dispatcher's cursor into pending
    /// deliveries, moving the cursor past them in the same transaction, and keeps the newest
    /// `keep` deliveries of each webhook. Returns how many deliveries were queued.
    ///
    /// The first call on a database only places the cursor at the feed's head. Safe to call
    /// from several processes at once: each event is fanned out exactly once.
    pub async fn fan_out_webhook_events(&self, batch: usize, keep: usize) -> Result<usize> {
        let batch = batch.max(1);
        let keep = keep.max(1);
        if !self.read(fan_out_due).await? {
            return Ok(0);
        }
        self.write(move |conn| fan_out(conn, batch, keep)).await
    }

    /// Claims up to `max` due deliveries for sending, at most one per webhook and none of a
    /// webhook that has one in flight, for `lease`; counts the attempt. A claim not finished
    /// within the lease (the process stopped) makes the delivery due again, or failed if
    /// that was attempt `max_attempts`.
    pub async fn claim_webhook_deliveries(
        &self,
        max: usize,
        lease: Duration,
        max_attempts: u32,
    ) -> Result<Vec<ClaimedDelivery>> {
        if max == 0 || !self.read(claim_due).await? {
            return Ok(Vec::new());
        }
        self.write(move |conn| claim(conn, max, lease, max_attempts))
            .await
    }

    /// Records how an attempt at delivery `id` ended and releases its claim.
    pub async fn finish_webhook_delivery(&self, id: i64, outcome: DeliveryOutcome) -> Result<()> {
        self.write(move |conn| finish(conn, id, &outcome)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_errors_are_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_ERROR_CHARS + 10);
        let cut = bounded(&long);
        assert_eq!(cut.chars().count(), MAX_ERROR_CHARS + 1);
        assert_eq!(bounded("short"), "short");
    }

    #[test]
    fn an_oversized_event_is_sent_without_its_details() {
        let body = serde_json::json!({"kind": "status", "reason": "x".repeat(MAX_PAYLOAD_BYTES)});
        let text = payload("ab12", "ann", 3, 1000, "status", &body.to_string()).unwrap();
        assert!(text.len() < 1024, "{}", text.len());
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["data"]["truncated"], true);
        assert_eq!(value["store_id"], "ab12");
    }
}
