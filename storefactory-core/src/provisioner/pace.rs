//! Pacing the reconciler behind requests people wait on.
//!
//! A server's API requests and its reconciler share the cores with the apiserver the
//! reconciler keeps busy. Provisioning can wait a few seconds; a person waiting on
//! `POST /api/stores` should not. So while any such request is in flight, new reconciles
//! start in [`BUSY_SLOTS`] slots only (those already running finish), and the reconciler's
//! full concurrency comes back as soon as the requests stop. Measured with
//! `storefactory-http --bench api_scale`: while 64 clients create stores as fast as they
//! can, the apiserver otherwise takes about half the CPU and the requests wait for it.
//!
//! Never zero slots: under requests that never stop (a busy dashboard), stores still
//! provision, more slowly.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Reconciles that may start while requests are in flight (beyond those already running).
pub const BUSY_SLOTS: usize = 2;

/// How often a reconcile held back looks again.
const RECHECK: Duration = Duration::from_millis(20);

/// Counts the requests people wait on, for the reconciler to give way to. Cheap to clone;
/// clones share the count. The default counts nothing until [`Foreground::enter`] is used.
#[derive(Debug, Clone, Default)]
pub struct Foreground {
    in_flight: Arc<AtomicUsize>,
}

/// One request in flight, counted until dropped.
#[derive(Debug)]
pub struct ForegroundRequest {
    in_flight: Arc<AtomicUsize>,
}

impl Foreground {
    /// Counts a request as in flight until the returned guard is dropped.
    pub fn enter(&self) -> ForegroundRequest {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        ForegroundRequest {
            in_flight: Arc::clone(&self.in_flight),
        }
    }

    /// Whether any request is in flight.
    pub fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) > 0
    }

    /// Waits until a reconcile may start, `running` being how many run now: at once when
    /// no request is in flight or fewer than [`BUSY_SLOTS`] reconciles run.
    pub(super) async fn give_way(&self, running: &AtomicUsize) {
        while self.busy() && running.load(Ordering::Relaxed) >= BUSY_SLOTS {
            tokio::time::sleep(RECHECK).await;
        }
    }
}

impl Drop for ForegroundRequest {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn reconciles_wait_while_requests_are_in_flight_and_more_than_the_busy_slots_run() {
        let foreground = Foreground::default();
        let running = AtomicUsize::new(BUSY_SLOTS);
        // Nobody waiting on a request: full speed.
        tokio::time::timeout(Duration::from_millis(1), foreground.give_way(&running))
            .await
            .expect("no request in flight");

        let request = foreground.enter();
        let second = foreground.enter();
        assert!(foreground.busy());
        // Fewer than the busy slots run: one more may start.
        let few = AtomicUsize::new(BUSY_SLOTS - 1);
        tokio::time::timeout(Duration::from_millis(1), foreground.give_way(&few))
            .await
            .expect("a busy slot is free");
        // All busy slots taken: held back until the requests end.
        let waiting = foreground.give_way(&running);
        tokio::pin!(waiting);
        assert!(
            tokio::time::timeout(Duration::from_secs(5), &mut waiting)
                .await
                .is_err()
        );
        drop(request);
        assert!(foreground.busy(), "one request is still in flight");
        drop(second);
        tokio::time::timeout(RECHECK * 2, waiting)
            .await
            .expect("the requests ended");
    }
}
