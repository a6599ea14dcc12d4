//! Giving memory freed after a burst back to the system.
//!
//! glibc keeps memory freed inside its heaps for later allocations and returns only the free
//! space at the top of each heap. A burst of store creations (rendered manifests, watch
//! events, requests) leaves free holes between the allocations that live on (the watch
//! caches, the stores' state), and the process keeps them: with 1,000 ready stores the
//! server held 79 MiB of anonymous memory, of which `malloc_trim` handed 15 MiB back (the
//! `api_scale` benchmark). So the server asks glibc to release every free page now and then.
//!
//! This is the workspace's one use of `unsafe`: a call into the C library that takes no
//! pointer. Other C libraries (musl) have no such function, and there it does nothing.

use std::time::Duration;

use storefactory_sql::Database;

/// How often the server looks whether it was idle, and so whether to release free memory.
/// An idle server sends nothing and reads nothing, so its memory falls at most this long
/// (twice, counting the quiet interval) after its last request.
pub(crate) const RELEASE_INTERVAL: Duration = Duration::from_secs(10);

/// Returns free memory of every heap to the system; whether any was returned.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub(crate) fn release_free_memory() -> bool {
    unsafe extern "C" {
        /// glibc's `malloc_trim(3)`: releases free memory at the top of the heap beyond
        /// `pad` bytes, and every whole free page inside each heap.
        fn malloc_trim(pad: usize) -> std::ffi::c_int;
    }
    // SAFETY: `malloc_trim` takes no pointer and touches only glibc's own heaps, under
    // their locks, so it is sound from any thread at any time.
    unsafe { malloc_trim(0) != 0 }
}

/// Returns free memory to the system where the C library can; elsewhere does nothing.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn release_free_memory() -> bool {
    false
}

/// Releases free memory once the server has been idle for a whole [`RELEASE_INTERVAL`]
/// (`activity`, a count of the server's work, did not move), and not again until it has
/// worked since.
///
/// Never while busy: `malloc_trim` holds each heap's lock while it walks it, so every
/// allocation of the server's threads waits for it; one release in `api_scale`, after
/// 10,000 stores were inserted and while their pages were read, made 123 `madvise` calls
/// over 54 ms (under strace, which slows each call). During a burst there is also nothing
/// worth giving back: what is freed is reused at once.
///
/// The database's caches go first ([`Database::release_memory`]), so that what they held is
/// free when the heaps are trimmed.
pub(crate) async fn run(activity: impl Fn() -> u64 + Send + 'static, db: Database) {
    let mut interval = tokio::time::interval(RELEASE_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = None;
    let mut released = false;
    loop {
        interval.tick().await;
        let now = activity();
        match Quiet::after(&mut last, now, &mut released) {
            Quiet::Release => {
                if let Err(error) = db.release_memory().await {
                    tracing::debug!(%error, "cannot release the database's caches");
                }
                let _ = tokio::task::spawn_blocking(release_free_memory).await;
            }
            Quiet::Busy | Quiet::AlreadyReleased => {}
        }
    }
}

/// What a look at the server's activity decides.
#[derive(Debug, PartialEq, Eq)]
enum Quiet {
    /// It worked since the last look.
    Busy,
    /// Idle for a whole interval, and not released since it last worked.
    Release,
    /// Idle, and released already.
    AlreadyReleased,
}

impl Quiet {
    fn after(last: &mut Option<u64>, now: u64, released: &mut bool) -> Quiet {
        let idle = *last == Some(now);
        *last = Some(now);
        if !idle {
            *released = false;
            Quiet::Busy
        } else if *released {
            Quiet::AlreadyReleased
        } else {
            *released = true;
            Quiet::Release
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_released_once_per_quiet_spell_and_never_while_busy() {
        let (mut last, mut released) = (None, false);
        let mut look = |now| Quiet::after(&mut last, now, &mut released);
        // The first look has nothing to compare with.
        assert_eq!(look(0), Quiet::Busy);
        assert_eq!(look(5), Quiet::Busy);
        assert_eq!(look(9), Quiet::Busy);
        assert_eq!(look(9), Quiet::Release);
        assert_eq!(look(9), Quiet::AlreadyReleased);
        assert_eq!(look(9), Quiet::AlreadyReleased);
        assert_eq!(look(10), Quiet::Busy);
        assert_eq!(look(10), Quiet::Release);
    }

    fn rss_anon_kib() -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("RssAnon:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn freed_holes_go_back_to_the_system() {
        // Many small blocks, every other one kept: what a burst leaves behind. The freed
        // half cannot be given back from the top of the heap, only page by page.
        let blocks: Vec<Vec<u8>> = (0..64 * 1024).map(|i| vec![i as u8; 2000]).collect();
        let kept: Vec<Vec<u8>> = blocks
            .into_iter()
            .enumerate()
            .filter_map(|(i, b)| (i % 32 == 0).then_some(b))
            .collect();
        let before = rss_anon_kib().expect("RssAnon");
        assert!(release_free_memory(), "nothing was released");
        let after = rss_anon_kib().expect("RssAnon");
        assert!(
            after + 32 * 1024 < before,
            "RssAnon {before} KiB before, {after} KiB after"
        );
        assert_eq!(kept.len(), 2048);
        assert!(kept.iter().all(|b| b.len() == 2000));
    }
}
