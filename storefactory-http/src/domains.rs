//! Which store a custom domain is for, as the paused page needs to know for every request
//! whose host is not a store's own (`store-<id>.<domain>`, found by its id): read from the
//! database at most once per [`DOMAIN_CACHE_TTL`], so that requests to the API itself cost no
//! query. A change made through this server is read at the next request; one made by another
//! process (the command line, another replica) within the last few seconds may not be known
//! yet.

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
    /// The last read and when it was made.
    snapshot: std::sync::Mutex<Option<(Instant, Domains)>>,
    /// Held by the one request that reads the database again; the others go on with the
    /// previous read meanwhile (or wait for the first one).
    refresh: tokio::sync::Mutex<()>,
}

impl DomainCache {
    /// The store `host` is a custom domain of, if any. A database that cannot be read
    /// answers from the previous read, or `None` (the request goes on as any other), and is
    /// asked again by the next request.
    pub(crate) async fn store_of(&self, db: &Database, host: &str) -> Option<StoreId> {
        let (fresh, current) = self.current();
        if !fresh {
            let refreshing = match &current {
                // Someone is reading already: the previous read serves meanwhile.
                Some(_) => self.refresh.try_lock().ok(),
                None => Some(self.refresh.lock().await),
            };
            if let Some(_refreshing) = refreshing {
                if let (false, _) = self.current() {
                    return self.read(db).await?.get(host).cloned();
                }
                return self.current().1?.get(host).cloned();
            }
        }
        current?.get(host).cloned()
    }

    /// Marks the last read as out of date: this process just changed a custom domain, and
    /// the next request reads them again instead of waiting out the rest of the
    /// [`DOMAIN_CACHE_TTL`].
    pub(crate) fn expire(&self) {
        let mut snapshot = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, _)) = snapshot.as_mut() {
            match Instant::now().checked_sub(DOMAIN_CACHE_TTL) {
                Some(long_ago) => *at = long_ago,
                None => *snapshot = None,
            }
        }
    }

    /// Whether the last read is recent enough, and the read.
    fn current(&self) -> (bool, Option<Domains>) {
        let snapshot = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        match &*snapshot {
            Some((at, domains)) => (at.elapsed() < DOMAIN_CACHE_TTL, Some(Arc::clone(domains))),
            None => (false, None),
        }
    }

    /// Reads every custom domain again and keeps the read; `None` when the database cannot
    /// be read (the previous read is kept and answers).
    async fn read(&self, db: &Database) -> Option<Domains> {
        match db.store_domains().await {
            Ok(rows) => {
                let domains: Domains = Arc::new(rows.into_iter().collect());
                *self.snapshot.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((Instant::now(), Arc::clone(&domains)));
                Some(domains)
            }
            Err(error) => {
                tracing::debug!(%error, "cannot read custom domains");
                self.current().1
            }
        }
    }
}
