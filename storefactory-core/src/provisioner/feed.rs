//! Following other processes through the repository's event feed: every process publishes
//! the events others record (so that a replica's event streams show the leader's progress),
//! and the leader looks at a store whose status or custom domains another process changed (a
//! store created, deleted or retried through another replica, or the command line).

use std::time::Duration;

use super::Provisioner;

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
            let mut own = self.inner.own_events.lock().await;
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
