//! Following other processes through the repository's event feed: every process publishes
//! the events others record (so that a replica's event streams show the leader's progress),
//! and the leader looks at a store whose status or custom domains another process changed (a
//! store created, deleted or retried through another replica, or the command line).

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{RwLock, RwLockReadGuard};

use super::{Provisioner, lock};
use crate::spec::StoreId;
use crate::store::StoreEvent;

/// Most events read from the feed at once.
const BATCH: usize = 512;

impl Provisioner {
    /// Reads the feed for ever, from its current head.
    pub(super) async fn follow_feed(&self) {
        let interval = self
            .inner
            .config
            .feed_interval
            .max(Duration::from_millis(10));
        let mut position = loop {
            match self.inner.repo.feed_head().await {
                Ok(head) => break head,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the event feed; trying again");
                    tokio::time::sleep(interval * 10).await;
                }
            }
        };
        loop {
            tokio::time::sleep(interval).await;
            let batch = match self.inner.repo.feed(position, BATCH).await {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::debug!(%error, "cannot read the event feed; trying again");
                    continue;
                }
            };
            if batch.is_empty() {
                continue;
            }
            // Every event in the batch is committed; waiting for the recorders in flight
            // means each of ours is marked by now.
            let _sorting = self.inner.own_events.gate.write().await;
            let mut own = lock(&self.inner.own_events.marked);
            for (at, event) in batch {
                position = at;
                if own.remove(&(event.store_id.clone(), event.seq)) {
                    continue;
                }
                if event.kind.asks_for_apply() {
                    // Another process changed the store (its status, its custom domains):
                    // what this one knew of it is stale.
                    self.enqueue(&event.store_id);
                }
                let _ = self.inner.events.send(event);
            }
        }
    }
}

/// The events this process recorded that the feed has not passed yet, so that it does not
/// publish them a second time.
///
/// A recorder holds [`OwnEvents::recording`] from before its append until the event is
/// marked; the feed sorts a batch it read only once no recorder is in that window (the
/// gate's exclusive side). Recorders share the gate, so appends of many stores still run
/// side by side and queue only on the database's writer.
#[derive(Default)]
pub(super) struct OwnEvents {
    gate: RwLock<()>,
    marked: Mutex<HashSet<(StoreId, i64)>>,
}

/// A recorder's hold on [`OwnEvents`] while it appends and marks its events.
pub(super) struct Recording<'a> {
    _gate: RwLockReadGuard<'a, ()>,
    marked: &'a Mutex<HashSet<(StoreId, i64)>>,
}

impl OwnEvents {
    pub(super) async fn recording(&self) -> Recording<'_> {
        Recording {
            _gate: self.gate.read().await,
            marked: &self.marked,
        }
    }
}

impl Recording<'_> {
    /// Marks `event` as this process's own: the feed will pass it without publishing it.
    pub(super) fn mark(&self, event: &StoreEvent) {
        lock(self.marked).insert((event.store_id.clone(), event.seq));
    }
}
