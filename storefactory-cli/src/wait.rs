//! Following a store until it is ready or deleted, with a spinner showing the current step.
//!
//! The command line often runs without a server, so while it waits it also runs the
//! Provisioner's reconciler: that is what moves the store along. The Provisioner given here
//! should be limited to the store followed (`ProvisionerConfig::only`): every other store
//! in the database belongs to whoever else uses it. Progress comes from the
//! Provisioner's events; a light check of the database record every second also notices
//! the work of another process (a running server) sharing the database file.

use std::time::Duration;

use anyhow::{Context as _, Result};
use indicatif::{ProgressBar, ProgressStyle};
use storefactory_core::provisioner::Provisioner;
use storefactory_core::spec::StoreId;
use storefactory_core::store::{EventKind, StoreEvent, StoreRecord, StoreStatus};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use crate::exit::{Code, Failure};

/// What to wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The store is ready; failing or being deleted ends the wait with an error.
    Ready,
    /// The store is deleted (or its record gone).
    Deleted,
    /// The store is suspended; failing, being deleted or resumed ends the wait with an
    /// error.
    Suspended,
}

impl Target {
    fn describe(self) -> &'static str {
        match self {
            Target::Ready => "ready",
            Target::Deleted => "deleted",
            Target::Suspended => "suspended",
        }
    }
}

/// Whether the wait is over: `Some(Ok)` reached, `Some(Err)` never will be, `None` not yet.
pub fn settle(
    target: Target,
    id: &StoreId,
    record: Option<&StoreRecord>,
) -> Option<Result<(), Failure>> {
    let status = record.map(|r| r.status);
    match (target, status) {
        (Target::Deleted, None | Some(StoreStatus::Deleted)) => Some(Ok(())),
        (Target::Deleted, _) => None,
        (Target::Ready, Some(StoreStatus::Ready)) => Some(Ok(())),
        (Target::Ready, None) => Some(Err(Failure::new(
            Code::NotFound,
            format!("store {id} not found"),
        ))),
        (Target::Ready, Some(StoreStatus::Failed)) => {
            let reason = record
                .and_then(|r| r.reason.clone())
                .unwrap_or_else(|| "no reason recorded".to_owned());
            Some(Err(Failure::new(
                Code::StoreFailed,
                format!(
                    "store {id} failed: {reason}\n\
                     (fix the cause, then `storefactory store retry {id} --wait`)"
                ),
            )))
        }
        (Target::Ready, Some(status @ (StoreStatus::Deleting | StoreStatus::Deleted))) => {
            Some(Err(Failure::new(
                Code::StoreFailed,
                format!("store {id} is {status}; it will not become ready"),
            )))
        }
        (Target::Ready, Some(_)) => None,
        (Target::Suspended, Some(StoreStatus::Suspended)) => Some(Ok(())),
        (Target::Suspended, Some(StoreStatus::Suspending)) => None,
        (Target::Suspended, None) => Some(Err(Failure::new(
            Code::NotFound,
            format!("store {id} not found"),
        ))),
        (Target::Suspended, Some(status)) => {
            let reason = record
                .and_then(|r| r.reason.clone())
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            Some(Err(Failure::new(
                Code::StoreFailed,
                format!("store {id} is {status}{reason}; it will not become suspended"),
            )))
        }
    }
}

/// One line for a person about an event.
pub fn describe_event(kind: &EventKind) -> String {
    match kind {
        EventKind::Status {
            status,
            reason: Some(reason),
        } => format!("{status}: {reason}"),
        EventKind::Status {
            status,
            reason: None,
        } => format!("{status}"),
        EventKind::Step { step, message } => format!("{step}: {message}"),
        EventKind::Warning { message } => format!("warning: {message}"),
    }
}

/// A spinner on a terminal; plain lines on stderr otherwise (CI logs, pipes).
struct Progress {
    bar: ProgressBar,
}

impl Progress {
    fn new(id: &StoreId, target: Target) -> Self {
        let bar = ProgressBar::new_spinner();
        let style = ProgressStyle::with_template("{spinner} [{elapsed:>4}] {prefix} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.set_prefix(format!("store {id}:"));
        bar.enable_steady_tick(Duration::from_millis(120));
        let progress = Progress { bar };
        progress.line(&format!(
            "waiting for store {id} to be {}",
            target.describe()
        ));
        progress
    }

    /// Shows `text` as the current step, and keeps it in the scrollback.
    fn line(&self, text: &str) {
        if self.bar.is_hidden() {
            eprintln!("{text}");
        } else {
            self.bar.println(format!("  {text}"));
        }
        self.bar.set_message(text.to_owned());
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Runs the reconciler and follows store `id` until `target`, a failure, or `timeout`.
///
/// `events` must have been subscribed before the operation that started the work, so that
/// no event is missed. Returns the final record (`None` once a deleted store's record is
/// gone).
pub async fn until(
    provisioner: &Provisioner,
    id: &StoreId,
    target: Target,
    timeout: Duration,
    mut events: broadcast::Receiver<StoreEvent>,
) -> Result<Option<StoreRecord>> {
    let repo = provisioner.repository().clone();
    let read = || async {
        repo.get_store(id)
            .await
            .with_context(|| format!("cannot read store {id}"))
    };
    let record = read().await?;
    if let Some(done) = settle(target, id, record.as_ref()) {
        return done.map(|()| record).map_err(Into::into);
    }

    let progress = Progress::new(id, target);
    let result = follow(
        provisioner,
        id,
        target,
        timeout,
        &mut events,
        &progress,
        record,
    )
    .await;
    progress.finish();
    result
}

async fn follow(
    provisioner: &Provisioner,
    id: &StoreId,
    target: Target,
    timeout: Duration,
    events: &mut broadcast::Receiver<StoreEvent>,
    progress: &Progress,
    mut last: Option<StoreRecord>,
) -> Result<Option<StoreRecord>> {
    let repo = provisioner.repository().clone();
    // The reconciler stops (and gives the leader Lease back, if it took it) when the wait
    // ends, however it ends.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = futures::FutureExt::fuse(provisioner.run_until(async move {
        let _ = stopped.await;
    }));
    tokio::pin!(run);
    let outcome = follow_until(
        &repo,
        id,
        target,
        timeout,
        events,
        progress,
        &mut last,
        run.as_mut(),
    )
    .await;
    let _ = stop.send(());
    if !futures::future::FusedFuture::is_terminated(&*run) {
        let _ = tokio::time::timeout(Duration::from_secs(5), run).await;
    }
    outcome
}

#[allow(clippy::too_many_arguments)]
async fn follow_until(
    repo: &std::sync::Arc<dyn storefactory_core::port::StoreRepository>,
    id: &StoreId,
    target: Target,
    timeout: Duration,
    events: &mut broadcast::Receiver<StoreEvent>,
    progress: &Progress,
    last: &mut Option<StoreRecord>,
    mut run: std::pin::Pin<&mut impl std::future::Future<Output = storefactory_core::Result<()>>>,
) -> Result<Option<StoreRecord>> {
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut reconciler_running = true;
    let mut events_open = true;
    let mut last_step = String::new();
    let mut shown_status = last.as_ref().map(|r| r.status);
    loop {
        tokio::select! {
            result = &mut run, if reconciler_running => {
                reconciler_running = false;
                result.context("the reconciler stopped")?;
            }
            event = events.recv(), if events_open => match event {
                Ok(event) if event.store_id == *id => {
                    last_step = describe_event(&event.kind);
                    progress.line(&last_step);
                    match event.kind {
                        EventKind::Status { status, .. } => shown_status = Some(status),
                        _ => continue,
                    }
                }
                Ok(_) | Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => {
                    events_open = false;
                    continue;
                }
            },
            _ = tick.tick() => {}
            () = &mut deadline => {
                let status = last.as_ref().map_or("gone".to_owned(), |r| r.status.to_string());
                let step = if last_step.is_empty() { String::new() } else { format!(", last step: {last_step}") };
                return Err(Failure::new(
                    Code::Timeout,
                    format!(
                        "timed out after {} waiting for store {id} to be {} (status: {status}{step})",
                        humanize(timeout),
                        target.describe()
                    ),
                )
                .into());
            }
        }
        // A status event arrived, or a second passed: the record decides.
        let record = repo
            .get_store(id)
            .await
            .with_context(|| format!("cannot read store {id}"))?;
        // Another process (a server sharing the database) may be doing the work; its
        // progress shows only in the record.
        if let Some(now) = &record
            && shown_status != Some(now.status)
        {
            shown_status = Some(now.status);
            progress.line(&now.status.to_string());
        }
        if let Some(done) = settle(target, id, record.as_ref()) {
            return done.map(|()| record).map_err(Into::into);
        }
        *last = record;
    }
}

/// `90s`, `15m`, `1h`, for messages.
pub fn humanize(duration: Duration) -> String {
    let s = duration.as_secs();
    if s >= 3600 && s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s >= 60 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use storefactory_core::spec::StoreSpec;

    use super::*;

    fn record(status: StoreStatus, reason: Option<&str>) -> StoreRecord {
        let id = StoreId::new("ab12").unwrap();
        let mut record =
            StoreRecord::new(StoreSpec::new(id, "alice", "a.example"), "a", "woocommerce");
        record.status = status;
        record.reason = reason.map(str::to_owned);
        record
    }

    #[test]
    fn suspended_wait_ends_on_suspended_and_fails_when_it_never_will_be() {
        let id = StoreId::new("ab12").unwrap();
        let r = |s| record(s, None);
        assert!(settle(Target::Suspended, &id, Some(&r(StoreStatus::Suspending))).is_none());
        assert!(matches!(
            settle(Target::Suspended, &id, Some(&r(StoreStatus::Suspended))),
            Some(Ok(()))
        ));
        for status in [
            StoreStatus::Resuming,
            StoreStatus::Failed,
            StoreStatus::Deleting,
        ] {
            let err = settle(Target::Suspended, &id, Some(&r(status)))
                .unwrap()
                .unwrap_err();
            assert_eq!(err.code, Code::StoreFailed);
            assert!(err.message.contains("will not become suspended"), "{err}");
        }
    }

    #[test]
    fn ready_wait_ends_on_ready_and_fails_on_failure_or_deletion() {
        let id = StoreId::new("ab12").unwrap();
        let r = |s| record(s, None);
        assert!(settle(Target::Ready, &id, Some(&r(StoreStatus::Provisioning))).is_none());
        assert!(matches!(
            settle(Target::Ready, &id, Some(&r(StoreStatus::Ready))),
            Some(Ok(()))
        ));
        let failed = record(StoreStatus::Failed, Some("image cannot be pulled"));
        let err = settle(Target::Ready, &id, Some(&failed))
            .unwrap()
            .unwrap_err();
        assert_eq!(err.code, Code::StoreFailed);
        assert!(err.message.contains("image cannot be pulled"), "{err}");
        let err = settle(Target::Ready, &id, Some(&r(StoreStatus::Deleting)))
            .unwrap()
            .unwrap_err();
        assert_eq!(err.code, Code::StoreFailed);
        let err = settle(Target::Ready, &id, None).unwrap().unwrap_err();
        assert_eq!(err.code, Code::NotFound);
    }

    #[test]
    fn deleted_wait_ends_when_the_record_is_deleted_or_gone() {
        let id = StoreId::new("ab12").unwrap();
        assert!(
            settle(
                Target::Deleted,
                &id,
                Some(&record(StoreStatus::Deleting, None))
            )
            .is_none()
        );
        assert!(matches!(
            settle(
                Target::Deleted,
                &id,
                Some(&record(StoreStatus::Deleted, None))
            ),
            Some(Ok(()))
        ));
        assert!(matches!(settle(Target::Deleted, &id, None), Some(Ok(()))));
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(humanize(Duration::from_secs(900)), "15m");
        assert_eq!(humanize(Duration::from_secs(7200)), "2h");
        assert_eq!(humanize(Duration::from_secs(95)), "95s");
    }
}
