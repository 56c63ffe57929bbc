//! The dispatcher: claims due notifications, sends them, and records each
//! attempt with its result. Failed tries wait `retry_after`, doubled each
//! time up to `retry_max`; after `max_attempts`, or when the receiver
//! refuses for good, the notification is failed and a `system_alert` says
//! so.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use enms_store::{AttemptResult, DeliveryAttempt, DeliveryStatus, NotificationRecord};
use tokio_util::sync::CancellationToken;

use crate::Inner;
use crate::send::Outcome;

/// The `alert_type` of the `system_alert` a failed notification raises.
pub const FAILED_ALERT: &str = "notification_failed";

/// Claimed at once; each is sent concurrently.
const BATCH: u32 = 16;
/// A claim outlives the longest send (timeouts are capped by config checks
/// at the channel's timeout); after a crash, the notification is due again
/// when it expires.
const LEASE: Duration = Duration::from_secs(60);
/// The longest sleep with nothing due: a notification stored by another
/// instance is seen within this.
const IDLE_MAX: Duration = Duration::from_secs(1);

pub(crate) async fn dispatch(inner: Arc<Inner>, stop: CancellationToken) {
    loop {
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(LEASE).unwrap_or_default();
        let claimed = tokio::select! {
            c = inner.store.claim_notifications(&inner.owner, now, until, BATCH) => c,
            _ = stop.cancelled() => return,
        };
        match claimed {
            Ok(batch) if !batch.is_empty() => {
                // Sends in flight finish before a stop is honoured: their
                // results are recorded, not left to a lease.
                futures_util::future::join_all(batch.iter().map(|n| deliver(&inner, n))).await;
            }
            Ok(_) => {
                let next = inner.store.next_notification_due().await.ok().flatten();
                let wait = next.and_then(|t| (t - Utc::now()).to_std().ok()).map_or(IDLE_MAX, |d| d.min(IDLE_MAX));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = inner.wake.notified() => {}
                    _ = stop.cancelled() => return,
                }
            }
            Err(e) => {
                inner.status().last_error = Some(e.to_string());
                tracing::warn!(error = %e, "notifier: outbox not read");
                tokio::select! {
                    _ = tokio::time::sleep(IDLE_MAX) => {}
                    _ = stop.cancelled() => return,
                }
            }
        }
    }
}

/// The wait before try `attempt + 1`.
pub fn backoff(retry_after: Duration, retry_max: Duration, attempt: i64) -> Duration {
    let doublings = (attempt.max(1) - 1).min(30) as u32;
    retry_after.saturating_mul(2u32.saturating_pow(doublings)).min(retry_max)
}

async fn deliver(inner: &Inner, n: &NotificationRecord) {
    let outcome = match inner.senders.get(&n.channel) {
        Some(sender) => sender.send(n).await,
        None => Outcome {
            ok: false,
            retry: false,
            status_code: None,
            error: Some(format!("channel {:?} is no longer configured", n.channel)),
            duration: Duration::ZERO,
        },
    };
    let at = Utc::now();
    let attempt = n.attempts + 1;
    let status = if outcome.ok {
        DeliveryStatus::Delivered
    } else if outcome.retry && attempt < i64::from(inner.config.max_attempts) {
        DeliveryStatus::Pending
    } else {
        DeliveryStatus::Failed
    };
    let wait = backoff(inner.config.retry_after, inner.config.retry_max, attempt);
    let result = AttemptResult {
        attempt: DeliveryAttempt {
            notification_id: n.id,
            attempt,
            at,
            duration_ms: outcome.duration.as_millis() as i64,
            ok: outcome.ok,
            status_code: outcome.status_code,
            error: outcome.error.clone(),
        },
        status,
        next_attempt_at: at + chrono::Duration::from_std(wait).unwrap_or_default(),
    };
    {
        let mut s = inner.status();
        match status {
            DeliveryStatus::Delivered => s.delivered += 1,
            DeliveryStatus::Pending => s.retried += 1,
            DeliveryStatus::Failed => s.failed += 1,
        }
        if let Some(e) = &outcome.error {
            s.last_error = Some(format!("{}: {e}", n.channel));
        }
    }
    // Unrecorded, the claim expires and the try is made again: a second
    // send with the same key, not a lost one.
    if let Err(e) = inner.store.finish_attempt(&result).await {
        tracing::warn!(error = %e, notification = %n.id, "notifier: attempt not recorded");
        return;
    }
    match status {
        DeliveryStatus::Delivered => {
            tracing::info!(channel = %n.channel, kind = %n.kind, attempt, "notification delivered");
        }
        DeliveryStatus::Pending => {
            tracing::warn!(channel = %n.channel, attempt, error = ?outcome.error, "notification not delivered; will retry");
        }
        DeliveryStatus::Failed => {
            let message = format!(
                "notification {:?} through {} failed after {attempt} attempt(s): {}",
                n.title,
                n.channel,
                outcome.error.as_deref().unwrap_or("unknown error")
            );
            tracing::error!("{message}");
            // A notification about a failed notification that fails raises
            // nothing more: two dead channels would otherwise feed each
            // other for ever.
            let about_failure =
                n.body.pointer("/data/alert_type").and_then(serde_json::Value::as_str) == Some(FAILED_ALERT);
            if !about_failure {
                inner.alerts.alert(FAILED_ALERT, message).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let (first, cap) = (Duration::from_secs(1), Duration::from_secs(10));
        let waits: Vec<u64> = (1..=6).map(|a| backoff(first, cap, a).as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 10, 10]);
        assert_eq!(backoff(first, cap, 1000), cap);
    }
}
