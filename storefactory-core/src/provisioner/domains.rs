//! Custom domains: more hosts for a live store, added and removed without downtime.
//!
//! A change is recorded first — the repository checks, atomically, that no other store holds
//! the domain, and narrates it with a [`DOMAIN_STEP`] event — and then the store's objects
//! are applied again in place, as for drift: the same Ingress gains or loses one rule (and
//! one name of its certificate), its own host's rule never goes, and the store stays `ready`
//! (or `suspended`, its domains answering with the paused page like its host).

use super::Provisioner;
use crate::error::{Error, RepositoryError, Result};
use crate::port::DomainChange;
use crate::spec::{MAX_DOMAINS, StoreId, normalize_domain};
use crate::store::{DOMAIN_STEP, EventKind, StoreRecord, StoreStatus, Timestamp};

/// The statuses in which a store's custom domains may change: those whose objects the
/// reconciler re-applies in place on request. A store on its way (provisioning, suspending,
/// resuming, deleting) or failed is refused; the caller waits until it has arrived.
pub const DOMAIN_STATUSES: [StoreStatus; 2] = [StoreStatus::Ready, StoreStatus::Suspended];

const OPERATION: &str =
    "change its custom domains (only ready or suspended stores; try again once it is)";

impl Provisioner {
    /// Adds the custom domain `domain` (normalised by [`normalize_domain`]: lowercase,
    /// without a trailing dot) to a ready or suspended store and applies its Ingress again
    /// in place; returns the store as recorded. The store stays in its status and keeps its
    /// own host throughout. Adding a domain the store already has changes nothing.
    ///
    /// Refused, changing nothing: an invalid domain or the store's own host
    /// ([`Error::Invalid`]), one another store
    /// holds (as a custom domain or its own host, [`RepositoryError::DomainTaken`]), one too
    /// many ([`RepositoryError::DomainLimit`]), and a store in another status
    /// ([`Error::InvalidState`]).
    pub async fn add_domain(&self, id: &StoreId, domain: &str) -> Result<StoreRecord> {
        let host = normalize_domain(domain)?;
        let record = self.live_record(id).await?;
        check_status(&record)?;
        if record.spec.ingress.domains.contains(&host) {
            return Ok(record);
        }
        if record.spec.ingress.host == host {
            return Err(crate::error::ValidationError::new(
                "domain",
                format!("{host} is the store's own host already"),
            )
            .into());
        }
        if record.spec.ingress.domains.len() >= MAX_DOMAINS {
            return Err(RepositoryError::DomainLimit {
                id: id.clone(),
                max: MAX_DOMAINS,
            }
            .into());
        }
        // The store with the domain must render (the spec's own rules, such as TLS) before
        // anything is recorded.
        let mut spec = record.spec.clone();
        spec.ingress.domains.push(host.clone());
        self.render(
            &record.blueprint,
            &spec,
            None,
            self.render_state(record.status),
        )
        .await?;
        self.change_domain(id, DomainChange::Add(host)).await
    }

    /// Removes the custom domain `domain` from a ready or suspended store and applies its
    /// Ingress again in place (the domain's rule goes, every other stays); returns the store
    /// as recorded. The domain is free for other stores at once.
    ///
    /// Refused, changing nothing: a domain the store does not have
    /// ([`RepositoryError::DomainNotFound`]), the store's own host ([`Error::Invalid`]: it
    /// cannot be removed), and a store in another status ([`Error::InvalidState`]).
    pub async fn remove_domain(&self, id: &StoreId, domain: &str) -> Result<StoreRecord> {
        let host = normalize_domain(domain)?;
        let record = self.live_record(id).await?;
        check_status(&record)?;
        if record.spec.ingress.host == host {
            return Err(crate::error::ValidationError::new(
                "domain",
                format!("{host} is the store's own host, which cannot be removed"),
            )
            .into());
        }
        self.change_domain(id, DomainChange::Remove(host)).await
    }

    async fn change_domain(&self, id: &StoreId, change: DomainChange) -> Result<StoreRecord> {
        let message = match &change {
            DomainChange::Add(host) => format!("domain {host} added"),
            DomainChange::Remove(host) => format!("domain {host} removed"),
        };
        let kind = EventKind::Step {
            step: DOMAIN_STEP.to_owned(),
            message,
        };
        let own = self.inner.own_events.recording().await;
        let (record, event) = self
            .inner
            .repo
            .change_domain(id, &change, &DOMAIN_STATUSES, Timestamp::now(), &kind)
            .await
            .map_err(|error| match error {
                RepositoryError::WrongStatus { id, status } => Error::InvalidState {
                    id,
                    status,
                    operation: OPERATION,
                },
                RepositoryError::NotFound { id } => Error::StoreNotFound { id },
                other => other.into(),
            })?;
        let Some(event) = event else {
            return Ok(record);
        };
        self.published(&own, event);
        drop(own);
        tracing::info!(store = %id, domain = change.host(), "custom domains changed");
        // Applied in place by the leader: this process if it leads, else the leader when
        // the event reaches it through the feed. Counted here as well, so that a process
        // that reconciles the store once without leading (the command line's
        // `reconcile_once`) applies it too.
        if self.in_scope(id) && !self.is_leading() {
            self.inner.states.with(id, |s| s.apply_requests += 1);
        }
        self.enqueue(id);
        Ok(record)
    }
}

fn check_status(record: &StoreRecord) -> Result<()> {
    if DOMAIN_STATUSES.contains(&record.status) {
        Ok(())
    } else {
        Err(Error::InvalidState {
            id: record.id.clone(),
            status: record.status,
            operation: OPERATION,
        })
    }
}
