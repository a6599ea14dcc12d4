//! The dispatcher: one task per server process that fans the event feed out into
//! deliveries and sends the due ones, a bounded number at a time.
//!
//! It reads the event feed from the database, never the Provisioner's channels, so it
//! needs no cluster, and the reconciler never waits for it: a slow or hung receiver holds
//! one sender slot for at most the request timeout, and only its own webhook's queue.

use std::time::Duration;

use storefactory_core::seal::SealingKey;
use storefactory_core::store::Timestamp;
use storefactory_sql::webhook_target as target;
use storefactory_sql::{ClaimedDelivery, Database, DeliveryOutcome, seal_context};
use tokio::task::JoinSet;

use super::WebhookConfig;
use super::client::Client;
use super::signature::{DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, sign};
use crate::metrics::Metrics;
use crate::state::AppState;

/// Most feed events turned into deliveries per look.
const FAN_OUT_BATCH: usize = 512;

/// How much longer than the request timeout a claim lasts: the margin covers recording
/// the answer. A claim that outlives it belongs to a process that stopped.
const CLAIM_MARGIN: Duration = Duration::from_secs(10);

/// What each send needs.
#[derive(Clone)]
struct Context {
    db: Database,
    key: SealingKey,
    client: Client,
    config: WebhookConfig,
    metrics: Metrics,
}

/// Runs the dispatcher until the server begins to shut down, then lets the deliveries in
/// flight finish (each within the request timeout) and returns. Deliveries of a process
/// that stops without that (a crash, or the task dropped) are sent again once their claim
/// expires: at least once, never lost.
pub(crate) async fn run(state: AppState) {
    let mut shutdown = state.shutdown_signal();
    let config = state.webhook_config().clone();
    let context = Context {
        db: state.db().clone(),
        key: state.sealing_key().clone(),
        client: Client::new(config.allow_private, config.timeout),
        metrics: state.metrics().clone(),
        config,
    };
    let lease = context.config.timeout + CLAIM_MARGIN;
    let concurrency = context.config.concurrency.max(1);
    let mut interval =
        tokio::time::interval(context.config.poll_interval.max(Duration::from_millis(10)));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut in_flight = JoinSet::new();
    let mut last_error: Option<String> = None;
    let mut report = |result: Result<(), String>| match result {
        Ok(()) => last_error = None,
        Err(error) => {
            // Once per distinct failure: a database that stays locked would otherwise
            // write a line four times a second.
            if last_error.as_ref() != Some(&error) {
                tracing::warn!(%error, "webhooks: database call failed; trying again");
                last_error = Some(error);
            }
        }
    };
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            // A finished send frees a slot: look for due deliveries at once.
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
        while in_flight.try_join_next().is_some() {}
        let fanned = context
            .db
            .fan_out_webhook_events(FAN_OUT_BATCH, context.config.keep_deliveries)
            .await;
        report(fanned.map(drop).map_err(|e| e.to_string()));
        let free = concurrency.saturating_sub(in_flight.len());
        if free == 0 {
            continue;
        }
        match context
            .db
            .claim_webhook_deliveries(free, lease, context.config.max_attempts)
            .await
        {
            Ok(claimed) => {
                report(Ok(()));
                for delivery in claimed {
                    in_flight.spawn(deliver(context.clone(), delivery));
                }
            }
            Err(error) => report(Err(error.to_string())),
        }
    }
    // Their answers are recorded, so the next process neither waits for their claims to
    // expire nor sends them again.
    while in_flight.join_next().await.is_some() {}
}

/// One attempt at `delivery`, recorded whatever its outcome.
async fn deliver(context: Context, delivery: ClaimedDelivery) {
    let outcome = match attempt(&context, &delivery).await {
        Ok(status) => DeliveryOutcome::Delivered { status },
        Err((status, error)) if delivery.attempt >= context.config.max_attempts => {
            DeliveryOutcome::Failed { status, error }
        }
        Err((status, error)) => {
            let wait = retry_delay(
                delivery.attempt,
                context.config.first_retry_delay,
                context.config.max_retry_delay,
            );
            let at = Timestamp(
                Timestamp::now()
                    .0
                    .saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX)),
            );
            DeliveryOutcome::Retry { status, error, at }
        }
    };
    let label = match &outcome {
        DeliveryOutcome::Delivered { .. } => "delivered",
        DeliveryOutcome::Retry { .. } => "retried",
        DeliveryOutcome::Failed { .. } => "failed",
    };
    // The webhook's id only: its URL may carry a token of the receiver's.
    match &outcome {
        DeliveryOutcome::Delivered { status } => tracing::debug!(
            webhook = %delivery.webhook_id, delivery = delivery.id, status, "webhook delivered"
        ),
        DeliveryOutcome::Retry { error, .. } | DeliveryOutcome::Failed { error, .. } => {
            tracing::info!(
                webhook = %delivery.webhook_id,
                delivery = delivery.id,
                attempt = delivery.attempt,
                outcome = label,
                %error,
                "webhook delivery attempt failed"
            );
        }
    }
    context.metrics.webhook_delivery(label);
    if let Err(error) = context
        .db
        .finish_webhook_delivery(delivery.id, outcome)
        .await
    {
        // The claim expires and the delivery is sent again: at least once, never lost.
        tracing::warn!(%error, delivery = delivery.id, "cannot record a webhook delivery");
    }
}

/// Sends `delivery` once: `Ok(status)` for a 2xx answer, else the status (if any) and why.
async fn attempt(
    context: &Context,
    delivery: &ClaimedDelivery,
) -> Result<u16, (Option<u16>, String)> {
    // Checked again at every attempt: the operator may have withdrawn the permission for
    // private targets since the webhook was registered.
    let target = target::parse(&delivery.url, context.config.allow_private)
        .map_err(|why| (None, format!("the URL is no longer allowed: it {why}")))?;
    let secret = context
        .key
        .open(&seal_context(&delivery.webhook_id), &delivery.sealed_secret)
        .map_err(|_| {
            (
                None,
                "the signing secret cannot be opened (the server's token key changed); \
                 delete the webhook and register it again"
                    .to_owned(),
            )
        })?;
    let timestamp = u64::try_from(Timestamp::now().0 / 1000).unwrap_or(0);
    let headers = [
        (
            SIGNATURE_HEADER,
            sign(&secret, timestamp, delivery.payload.as_bytes()),
        ),
        (EVENT_HEADER, delivery.event_kind.clone()),
        (DELIVERY_HEADER, delivery.id.to_string()),
    ];
    context
        .client
        .post(&target, &headers, delivery.payload.clone())
        .await
        .map_err(|failure| (failure.status, failure.error))
}

/// The wait after failed attempt `attempt` (1 for the first): `first` doubled per attempt,
/// at most `max`, with "equal jitter" (between half and all of it) so that the retries of
/// many deliveries that failed together spread out.
pub(crate) fn retry_delay(attempt: u32, first: Duration, max: Duration) -> Duration {
    let doubled = first.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let full = doubled.min(max);
    full / 2 + full.mul_f64(rand::random::<f64>() / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_the_cap_with_jitter() {
        let first = Duration::from_secs(2);
        let max = Duration::from_secs(900);
        for _ in 0..100 {
            let one = retry_delay(1, first, max);
            assert!(one >= Duration::from_secs(1) && one <= first, "{one:?}");
            let four = retry_delay(4, first, max);
            assert!(four >= Duration::from_secs(8) && four <= Duration::from_secs(16));
            let late = retry_delay(40, first, max);
            assert!(late >= max / 2 && late <= max, "{late:?}");
        }
    }
}
