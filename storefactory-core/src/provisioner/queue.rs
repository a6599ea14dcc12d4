//! The run loop: leader election, then watches, the start-up pass and the work queue.
//!
//! The queue is kube-runtime's scheduler: requests for a store are deduplicated (the earliest
//! wins), delayed ones wait in a timer wheel rather than one task each, and a store being
//! reconciled is held back until its reconcile ends, so one store is never reconciled twice
//! at once.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use kube::runtime::scheduler::{ScheduleRequest, scheduler};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::leader::Elector;
use super::{Inner, Outcome, Provisioner, lock};
use crate::error::Result;
use crate::port::StoreFilter;
use crate::spec::StoreId;
use crate::store::StoreStatus;

/// How long a term waits for the watches' first listings before it reconciles anyway.
const CACHE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Marks the run over, however it ends (returned, or dropped as an aborted task).
struct RunGuard(Arc<Inner>);

impl Drop for RunGuard {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::Release);
    }
}

/// One unit of a gauge while it lives (a task aborted while waiting is counted out too).
struct Gauge<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> Gauge<'a> {
    fn enter(gauge: &'a std::sync::atomic::AtomicUsize) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        Gauge(gauge)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Clears the queue and caches when a term of leadership ends, however it ends.
struct TermGuard(Arc<Inner>);

impl Drop for TermGuard {
    fn drop(&mut self) {
        *lock(&self.0.queue) = None;
        *lock(&self.0.caches) = None;
    }
}

impl Provisioner {
    /// Runs the reconciler until the future is dropped: see [`Provisioner::run_until`].
    pub async fn run(&self) -> Result<()> {
        self.run_until(std::future::pending::<()>()).await
    }

    /// Runs the reconciler until `stop` completes, then gives up the leader Lease (if held)
    /// so that another process can take over at once.
    ///
    /// All the while it follows the repository's event feed, publishing what other processes
    /// record. With leader election it campaigns for the Lease and reconciles only while it
    /// holds it: then it starts the watches, compares records with the cluster once, and
    /// reconciles stores as watch events, user actions (here or in other processes) and
    /// deadlines call for.
    ///
    /// Only one `run` may be active per Provisioner; a second call returns at once.
    pub async fn run_until(&self, stop: impl Future<Output = ()>) -> Result<()> {
        if self.inner.running.swap(true, Ordering::AcqRel) {
            tracing::warn!("Provisioner::run called twice; the second call does nothing");
            return Ok(());
        }
        let _guard = RunGuard(self.inner.clone());
        let mut elector = self
            .inner
            .config
            .leader
            .clone()
            .map(|config| Elector::new(self.inner.client.clone(), config));
        let lead = async {
            match elector.as_mut() {
                None => self.reconcile_term().await,
                Some(elector) => loop {
                    elector.acquire().await;
                    tokio::select! {
                        () = elector.hold() => {}
                        result = self.reconcile_term() => return result,
                    }
                    tracing::warn!("no longer the leader; stopped reconciling");
                },
            }
        };
        let result = tokio::select! {
            () = self.follow_feed() => Ok(()),
            result = lead => result,
            () = stop => Ok(()),
        };
        // The term ended with `lead`, so nothing reconciles any more.
        if let Some(elector) = elector.as_mut() {
            elector.release().await;
        }
        result
    }

    /// One reconcile of one store, for a program that records a change and wants it started
    /// without running the reconciler: done only if no other process leads (this one takes
    /// the Lease for the moment, and gives it back). `Ok(None)` means a leader is at work
    /// and will do it.
    pub async fn reconcile_once(&self, id: &StoreId) -> Result<Option<Outcome>> {
        let Some(config) = self.inner.config.leader.clone() else {
            return self.reconcile(id).await.map(Some);
        };
        let mut elector = Elector::new(self.inner.client.clone(), config);
        let held = elector
            .try_acquire()
            .await
            .map_err(|source| crate::error::Error::Kube {
                operation: "read the leader lease".to_owned(),
                source,
            })?;
        if !held {
            return Ok(None);
        }
        let result = self.reconcile(id).await;
        elector.release().await;
        result.map(Some)
    }

    /// Reconciles for one term of leadership: until dropped.
    async fn reconcile_term(&self) -> Result<()> {
        let _term = TermGuard(self.inner.clone());
        let (tx, rx) = futures::channel::mpsc::unbounded::<ScheduleRequest<StoreId>>();
        let mut background = JoinSet::new();
        let caches = self.start_watches(&mut background);
        // A watch that cannot list (a missing permission, say) must not stop the work: the
        // stores' own API calls then fail with the reason, which is what a person sees.
        if tokio::time::timeout(CACHE_WAIT, caches.ready())
            .await
            .is_err()
        {
            tracing::error!(
                "the watches have not listed every kind after {} s (missing permissions? \
                 `storefactory doctor` tells); reconciling anyway",
                CACHE_WAIT.as_secs()
            );
        }
        *lock(&self.inner.caches) = Some(caches);
        *lock(&self.inner.queue) = Some(tx);
        self.startup_pass().await;
        // Backups are settled (and scheduled) by the leader only.
        self.start_backup_work(&mut background);

        let semaphore = Arc::new(Semaphore::new(self.inner.config.concurrency.max(1)));
        let running: Arc<Mutex<HashSet<StoreId>>> = Arc::default();
        let mut reconciles: JoinSet<(StoreId, Outcome)> = JoinSet::new();
        let mut tasks: HashMap<tokio::task::Id, StoreId> = HashMap::new();
        let mut queue = std::pin::pin!(scheduler(rx));
        loop {
            let busy = running.clone();
            let mut free = queue
                .as_mut()
                .hold_unless(move |id| !lock(&busy).contains(id));
            tokio::select! {
                Some(id) = free.next() => {
                    lock(&running).insert(id.clone());
                    let this = self.clone();
                    let semaphore = semaphore.clone();
                    let task_id = id.clone();
                    let handle = reconciles.spawn(async move {
                        let waiting = Gauge::enter(&this.inner.waiting);
                        let _permit = semaphore.acquire_owned().await;
                        this.inner.config.foreground.give_way(&this.inner.reconciling).await;
                        drop(waiting);
                        let _running = Gauge::enter(&this.inner.reconciling);
                        let started = std::time::Instant::now();
                        let limit = this.inner.config.reconcile_timeout;
                        let outcome = match tokio::time::timeout(limit, this.reconcile_logged(&id)).await {
                            Ok(outcome) => outcome,
                            Err(_) => {
                                tracing::warn!(
                                    store = %id,
                                    "reconcile still unfinished after {} s (a hung apiserver?); \
                                     looking again later",
                                    limit.as_secs()
                                );
                                Outcome::RequeueAfter(this.inner.config.max_backoff)
                            }
                        };
                        if let Some(hook) = &this.inner.config.on_reconcile {
                            (hook.0)(started.elapsed());
                        }
                        (id, outcome)
                    });
                    tasks.insert(handle.id(), task_id);
                }
                Some(done) = reconciles.join_next_with_id() => {
                    let (id, outcome) = match done {
                        Ok((task, result)) => {
                            tasks.remove(&task);
                            result
                        }
                        Err(error) => {
                            // A panicking reconcile must not leave its store marked running
                            // for ever: forget it and look again after a backoff.
                            let Some(id) = tasks.remove(&error.id()) else { continue };
                            tracing::error!(store = %id, %error, "reconcile panicked");
                            (id, Outcome::RequeueAfter(self.inner.config.max_backoff))
                        }
                    };
                    lock(&running).remove(&id);
                    if let Outcome::RequeueAfter(delay) = outcome {
                        self.schedule(&id, delay);
                    }
                }
                Some(_) = background.join_next() => {}
            }
        }
    }

    /// Compares records with the cached namespaces: queues every store with work in flight
    /// (and every ready store, whose objects are re-applied once per term), and reports
    /// namespaces labelled as Storefactory's that have no record.
    async fn startup_pass(&self) {
        let records = match self
            .inner
            .repo
            .list_stores(&StoreFilter {
                owner: None,
                include_deleted: false,
            })
            .await
        {
            Ok(records) => records,
            Err(error) => {
                tracing::error!(%error, "cannot list stores; relying on watches alone");
                return;
            }
        };
        let known: HashSet<String> = records.iter().map(|r| r.id.namespace()).collect();
        for record in records.iter().filter(|r| self.in_scope(&r.id)) {
            if record.status != StoreStatus::Failed {
                self.enqueue(&record.id);
            }
        }
        if self.inner.config.only.is_some() {
            return;
        }
        let namespaces = lock(&self.inner.caches)
            .as_ref()
            .map(|c| c.namespaces.state())
            .unwrap_or_default();
        for namespace in namespaces {
            let name = namespace.metadata.name.clone().unwrap_or_default();
            if !known.contains(&name) {
                tracing::warn!(
                    namespace = name,
                    "namespace labelled as managed by storefactory has no store record; leaving it alone"
                );
            }
        }
    }
}
