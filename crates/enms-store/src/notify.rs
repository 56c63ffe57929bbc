//! Records of the notifier (docs/notifications.md): alerts (an event a rule
//! matched, followed until it is acknowledged or resolved), the durable
//! outbox of notifications with their delivery attempts, and named cursors
//! into the event log.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// An event a rule matched, followed for escalation, reminders and the
/// resolved notification. One per rule and subject (an anomaly episode, or
/// one event for types without an episode).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AlertRecord {
    /// `<rule>/<subject>`.
    pub id: String,
    pub rule: String,
    /// `episode:<uuid>` or `event:<event id>`.
    pub subject: String,
    /// The anomaly whose acknowledgement acknowledges the alert.
    pub anomaly_id: Option<Uuid>,
    pub machine_id: Option<Uuid>,
    pub severity: String,
    pub title: String,
    pub opened_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// The newest matching event's `data`.
    pub data: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Stored, not yet delivered: due at `next_attempt_at`.
    Pending,
    Delivered,
    /// Every attempt failed; no more are made.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Failed].into_iter().find(|v| v.as_str() == s)
    }
}

/// One message to one channel, stored before it is sent.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct NotificationRecord {
    pub id: Uuid,
    /// Idempotency key: a second notification with the same key is not
    /// stored, and receivers get it (`Idempotency-Key`, the e-mail's
    /// Message-ID) to drop a retry they already have.
    pub key: String,
    pub channel: String,
    /// `firing`, `escalation`, `reminder`, `resolved` or `test`.
    pub kind: String,
    pub rule: Option<String>,
    pub alert_id: Option<String>,
    pub event_id: Option<String>,
    pub title: String,
    /// The facts a channel renders (alert, event data, links).
    pub body: serde_json::Value,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// One try at sending a notification.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DeliveryAttempt {
    pub notification_id: Uuid,
    /// 1, 2, …
    pub attempt: i64,
    pub at: DateTime<Utc>,
    pub duration_ms: i64,
    pub ok: bool,
    /// The receiver's HTTP status or SMTP reply code, when it answered.
    pub status_code: Option<i64>,
    pub error: Option<String>,
}

/// What a finished attempt leaves the notification as.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptResult {
    pub attempt: DeliveryAttempt,
    pub status: DeliveryStatus,
    /// When `status` is pending: the next try.
    pub next_attempt_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct NotificationQuery {
    pub status: Option<DeliveryStatus>,
    pub channel: Option<String>,
    pub alert_id: Option<String>,
    pub limit: u32,
}
