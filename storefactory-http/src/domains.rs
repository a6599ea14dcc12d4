//! Which store a custom domain is for, as the paused page needs to know for every request
//! whose host is not a store's own (`store-<id>.<domain>`, found by its id): read from the
//! database at most once per [`DOMAIN_CACHE_TTL`], so that requests to the API itself cost no
//! query. A domain added in the last few seconds may not be known yet; its store's Ingress
//! takes longer than that to send it here.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use storefactory_core::spec::StoreId;
use storefactory_sql::Database;

/// How long a read of every custom domain is used before it is read again.
pub(crate) const DOMAIN_CACHE_TTL: Duration = Duration::from_secs(5);

type Domains = Arc<HashMap<String, StoreId>>;

/// Every custom domain of a live store, with its store, as last read.
#[derive(Default)]
pub(crate) struct DomainCache {
    read: tokio::sync::Mutex<Option<(Instant, Domains)>>,
}

impl DomainCache {
    /// The store `host` is a custom domain of, if any. A database that cannot be read
    /// answers `None` (the request goes on as any other) and is asked again next time.
    pub(crate) async fn store_of(&self, db: &Database, host: &str) -> Option<StoreId> {
        let domains = {
            // One reader at a time: the others wait for its answer instead of asking too.
            let mut read = self.read.lock().await;
            match &*read {
                Some((at, domains)) if at.elapsed() < DOMAIN_CACHE_TTL => Arc::clone(domains),
                _ => match db.store_domains().await {
                    Ok(rows) => {
                        let domains: Domains = Arc::new(rows.into_iter().collect());
                        *read = Some((Instant::now(), Arc::clone(&domains)));
                        domains
                    }
                    Err(error) => {
                        tracing::debug!(%error, "cannot read custom domains");
                        return None;
                    }
                },
            }
        };
        domains.get(host).cloned()
    }
}
