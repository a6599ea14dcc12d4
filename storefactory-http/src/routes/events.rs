//! `GET /api/stores/{id}/events`: a store's history as Server-Sent Events, then its live
//! events until it is ready, failed or gone.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use storefactory_core::port::StoreRepository;
use storefactory_core::spec::StoreId;
use storefactory_core::store::StoreEvent;
use tokio::sync::{broadcast, watch};

use crate::api_error::{ApiError, ApiPath};
use crate::auth::AuthUser;
use crate::state::AppState;

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
}

impl Feed {
    /// Reads the events after `last_seq` from the database into `pending`.
    async fn catch_up(&mut self) -> Result<(), ApiError> {
        let events = self.state.db().events(&self.id, self.last_seq).await?;
        self.pending.extend(events);
        Ok(())
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
            let received = tokio::select! {
                received = self.live.recv() => received,
                _ = self.shutdown.wait_for(|stop| *stop) => return None,
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
    match state.db().get_store(&id).await? {
        Some(record) if record.owner == user.name() || user.is_admin() => {}
        _ => return Err(ApiError::store_not_found()),
    }
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(0)
        .max(0);
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
    };
    feed.catch_up().await?;
    if feed.pending.is_empty() {
        // Nothing new since `Last-Event-ID`: end at once if the store has settled.
        let history = feed.state.db().events(&feed.id, 0).await?;
        if history.last().is_some_and(StoreEvent::is_terminal) {
            feed.finished = true;
        }
    }
    let events = futures::stream::unfold(feed, |mut feed| async move {
        let event = feed.next().await?;
        Some((Ok(sse_event(&event)), feed))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
