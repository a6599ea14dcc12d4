//! Webhooks as Python objects: registrations and their delivery logs. The operations are
//! methods of `Database` (see `database.rs`); the rules are the library's, shared with the
//! HTTP API and the command line.

use pyo3::prelude::*;
use storefactory_core::store::Timestamp;
use storefactory_sql::{Delivery, DeliveryState, RegisteredWebhook, Webhook};

fn seconds(at: Timestamp) -> f64 {
    at.0 as f64 / 1000.0
}

/// A registered webhook: store events of its owner's stores (or everyone's, for an admin's
/// webhook with `all_stores`) are POSTed to `url`, signed with its secret.
///
/// `secret` is `None` except on the object `Database.add_webhook` returns: the secret is
/// shown that once. `repr()` never shows it.
#[pyclass(name = "Webhook", module = "storefactory", frozen, get_all)]
pub struct PyWebhook {
    /// Its id, `wh_...`.
    id: String,
    /// Where deliveries are sent.
    url: String,
    /// `"all"` (status changes, steps and warnings) or `"status"` (status changes only).
    events: &'static str,
    /// Whether it receives every user's store events (an admin's webhook).
    all_stores: bool,
    /// The user who registered it.
    owner: String,
    /// When it was registered, in seconds since the epoch.
    created_at: f64,
    /// The signing secret (`whsec_...`), only right after registration.
    secret: Option<String>,
}

impl From<Webhook> for PyWebhook {
    fn from(webhook: Webhook) -> Self {
        PyWebhook {
            id: webhook.id,
            url: webhook.url,
            events: webhook.events.as_str(),
            all_stores: webhook.all_stores,
            owner: webhook.owner,
            created_at: seconds(webhook.created_at),
            secret: None,
        }
    }
}

impl From<RegisteredWebhook> for PyWebhook {
    fn from(registered: RegisteredWebhook) -> Self {
        PyWebhook {
            secret: Some(registered.secret),
            ..PyWebhook::from(registered.webhook)
        }
    }
}

#[pymethods]
impl PyWebhook {
    fn __repr__(&self) -> String {
        format!(
            "Webhook(id={:?}, owner={:?}, url={:?}, events={:?}, all_stores={}{})",
            self.id,
            self.owner,
            self.url,
            self.events,
            if self.all_stores { "True" } else { "False" },
            if self.secret.is_some() {
                ", secret=<hidden>"
            } else {
                ""
            }
        )
    }
}

/// One delivery of one store event to a webhook, as its log shows it.
#[pyclass(name = "WebhookDelivery", module = "storefactory", frozen, get_all)]
pub struct PyWebhookDelivery {
    /// Its id, sent to the receiver as `Storefactory-Delivery` (the same on every attempt).
    id: i64,
    /// The store the event is about.
    store_id: String,
    /// The event's sequence number in the store's history.
    event_seq: i64,
    /// The event's kind: `"status"`, `"step"` or `"warning"`.
    event: String,
    /// `"pending"`, `"delivered"` or `"failed"`.
    state: &'static str,
    /// Attempts made so far.
    attempts: u32,
    /// The HTTP status of the last answer, if the receiver answered.
    last_status: Option<u16>,
    /// Why the last attempt failed, if it did.
    last_error: Option<String>,
    /// When the next attempt is due (a pending delivery), in seconds since the epoch.
    next_attempt_at: Option<f64>,
    /// When the event was queued for the webhook, in seconds since the epoch.
    created_at: f64,
    /// When the delivery last changed, in seconds since the epoch.
    updated_at: f64,
}

impl From<Delivery> for PyWebhookDelivery {
    fn from(delivery: Delivery) -> Self {
        PyWebhookDelivery {
            id: delivery.id,
            store_id: delivery.store_id,
            event_seq: delivery.event_seq,
            event: delivery.event_kind,
            state: delivery.state.as_str(),
            attempts: delivery.attempts,
            last_status: delivery.last_status,
            last_error: delivery.last_error,
            next_attempt_at: (delivery.state == DeliveryState::Pending)
                .then(|| seconds(delivery.next_attempt_at)),
            created_at: seconds(delivery.created_at),
            updated_at: seconds(delivery.updated_at),
        }
    }
}

#[pymethods]
impl PyWebhookDelivery {
    fn __repr__(&self) -> String {
        format!(
            "WebhookDelivery(id={}, store_id={:?}, event={:?}, state={:?}, attempts={}, \
             last_status={:?})",
            self.id, self.store_id, self.event, self.state, self.attempts, self.last_status
        )
    }
}
