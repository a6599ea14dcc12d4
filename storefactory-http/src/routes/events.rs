//! `GET /api/stores/{id}/events`: a store's history as Server-Sent Events, then its live
//! events until it is ready, failed or gone, the token expires or is revoked, or the caller
//! may no longer see the store.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use storefactory_core::port::StoreRepository;
use storefactory_core::spec::StoreId;
use storefactory_core::store::StoreEvent;
use storefactory_sql::Role;
use tokio::sync::{broadcast, watch};

use crate::api_error::{ApiError, ApiPath};
use crate::auth::{AuthUser, Claims, current_user};
use crate::state::{AppState, StreamSlot};

/// How often an open stream checks again that its token is still good (not revoked, user
/// not disabled), that the caller may still see the store, and whether it settled.
pub const RECHECK_INTERVAL: Duration = Duration::from_secs(5);

/// Where a stream is.
struct Feed {
    state: AppState,
    id: StoreId,
    /// Events read from the database, not yet sent.
    pending: VecDeque<StoreEvent>,
    /// Sequence number of the last event sent (or skipped through `Last-Event-ID`).
    last_seq: i64,
    live: broadcast::Receiver<StoreEvent>,
    shutdown: watch::Receiver<bool>,
    /// Whether the stream ends once `pending` is drained.
    finished: bool,
    /// The token the stream was opened with: the stream ends when it expires or stops
    /// being good.
    claims: Claims,
    /// Holds one of the user's stream slots while the stream is open.
    _slot: StreamSlot,
}

impl Feed {
    /// Reads the events after `last_seq` from the database into `pending`.
    async fn catch_up(&mut self) -> Result<(), ApiError> {
        let events = self.state.db().events(&self.id, self.last_seq).await?;
        self.pending.extend(events);
        Ok(())
    }

    /// Whether the stream should go on: the token is still good for a user who may see the
    /// store, and the store has not settled with nothing left to send. Events missed in
    /// between are read from the database.
    async fn still_wanted(&mut self) -> bool {
        let Ok(user) = current_user(&self.state, &self.claims).await else {
            return false;
        };
        let record = match self.state.db().get_store(&self.id).await {
            Ok(Some(record)) if record.owner == user.username || user.role == Role::Admin => record,
            _ => return false,
        };
        if self.catch_up().await.is_err() {
            return false;
        }
        if record.status.is_settled() && self.pending.is_empty() {
            return false;
        }
        true
    }

    /// The next event to send, or `None` when the stream is over.
    async fn next(&mut self) -> Option<StoreEvent> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                if event.seq <= self.last_seq {
                    continue;
                }
                self.last_seq = event.seq;
                // A settled status ends the stream, unless more history follows it (a failed
                // store that was retried, say).
                if event.is_terminal() && self.pending.is_empty() {
                    self.finished = true;
                }
                return Some(event);
            }
            if self.finished {
                return None;
            }
            let expires_in = Duration::from_secs(self.claims.exp.saturating_sub(unix_now()));
            let received = tokio::select! {
                received = self.live.recv() => Some(received),
                _ = self.shutdown.wait_for(|stop| *stop) => return None,
                // The token expired: the client must log in again (and reconnect with
                // `Last-Event-ID`).
                () = tokio::time::sleep(expires_in) => return None,
                () = tokio::time::sleep(RECHECK_INTERVAL) => None,
            };
            let Some(received) = received else {
                if !self.still_wanted().await {
                    return None;
                }
                continue;
            };
            match received {
                Ok(event) if event.store_id != self.id || event.seq <= self.last_seq => {}
                Ok(event) if event.seq == self.last_seq + 1 => self.pending.push_back(event),
                // A gap: an event was broadcast out of order or missed. The database has
                // them all, in order.
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    if let Err(error) = self.catch_up().await {
                        tracing::warn!(store = %self.id, ?error, "event stream cannot read history");
                        return None;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn sse_event(event: &StoreEvent) -> Event {
    let data = serde_json::to_string(event).unwrap_or_else(|_| "{}".to_owned());
    Event::default().id(event.seq.to_string()).data(data)
}

/// `GET /api/stores/{id}/events`. Each event is a JSON [`StoreEvent`] with its sequence
/// number as the SSE id; a client reconnecting with `Last-Event-ID` gets only what follows.
pub async fn stream(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let id = StoreId::new(id).map_err(|_| ApiError::store_not_found())?;
    let record = match state.db().get_store(&id).await? {
        Some(record) if record.owner == user.name() || user.is_admin() => record,
        _ => return Err(ApiError::store_not_found()),
    };
    let slot = state.stream_slot(user.name())?;
    let history = state.db().events(&id, 0).await?;
    let newest = history.last().map_or(0, |event| event.seq);
    // Clamped to the events there are: an id past the end would otherwise skip every
    // event to come, and the stream would never end.
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(0)
        .clamp(0, newest);
    // Subscribe before reading the history: an event recorded in between is then in both,
    // and duplicates are dropped by sequence number; nothing falls between the two.
    let live = state.subscribe();
    let shutdown = state.shutdown_signal();
    let mut feed = Feed {
        state,
        id,
        pending: VecDeque::new(),
        last_seq: after,
        live,
        shutdown,
        finished: false,
        claims: user.claims().clone(),
        _slot: slot,
    };
    feed.catch_up().await?;
    // Nothing new since `Last-Event-ID`: end at once if the store has settled.
    if feed.pending.is_empty()
        && (history.last().is_some_and(StoreEvent::is_terminal) || record.status.is_settled())
    {
        feed.finished = true;
    }
    let events = futures::stream::unfold(feed, |mut feed| async move {
        let event = feed.next().await?;
        Some((Ok(sse_event(&event)), feed))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
