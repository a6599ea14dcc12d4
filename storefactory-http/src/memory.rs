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

/// How often free memory is released. A release with nothing to give back costs a walk
/// over the free lists; an idle server sends nothing and reads nothing, so its memory only
/// falls between releases.
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

/// Releases free memory every [`RELEASE_INTERVAL`], off the async workers, for ever.
pub(crate) async fn run() {
    let mut interval = tokio::time::interval(RELEASE_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let _ = tokio::task::spawn_blocking(release_free_memory).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
