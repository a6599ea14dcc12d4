//! Small things the benchmarks of several crates share: their settings from the
//! environment, and the memory the benchmark's process holds.

/// A positive whole number from the environment variable `name`, or `default` when it is
/// unset, not a number, or zero.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

/// This process's resident memory in MiB (`VmRSS`), or 0 where `/proc` does not tell.
pub fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_process_holds_memory() {
        assert!(rss_mib() > 0.0);
    }

    #[test]
    fn unset_or_zero_settings_take_the_default() {
        assert_eq!(env_usize("STOREFACTORY_TESTKIT_UNSET_SETTING", 7), 7);
    }
}
