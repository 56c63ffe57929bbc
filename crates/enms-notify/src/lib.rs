//! Notifications (`[notify]`, docs/notifications.md): the durable events a
//! rule matches go to its channels, escalate to more channels while nobody
//! acknowledges, repeat as reminders, and end with a resolved notification.
//! Nothing is lost on the way: every notification is stored before it is
//! sent and carries an idempotency key.
//!
//! Data flow:
//!
//! ```text
//!  event log ──(EventSource, from a stored cursor)──▶ follow::intake
//!                                                     │ rules match → alert + notifications
//!  open alerts ──(every tick: ack? due steps?)──────▶ follow::escalate
//!                                                     │ escalations, reminders (same keys → stored once)
//!                                                     ▼
//!                                  Store: notifications (the outbox)
//!                                                     │ claim (lease) → send → attempt recorded
//!                                                     ▼
//!                           outbox::dispatch ──▶ send::Sender (webhook kinds, SMTP)
//! ```
//!
//! Why it is never lost nor sent twice:
//! - the intake's cursor is saved after the page's notifications are
//!   stored, so a crash re-reads events, and their keys (rule, subject,
//!   step, channel) make the second store a no-op;
//! - the dispatcher claims a notification for a lease before sending, and
//!   records the attempt and its result in one transaction; a crash during
//!   a send leaves the claim to expire and the notification is sent again,
//!   with the same `Idempotency-Key`, so a receiver that honours the key
//!   keeps one;
//! - several instances on one PostgreSQL claim disjoint sets.
//!
//! Acknowledgement is read from the store: an alert about an anomaly
//! episode is acknowledged when the anomaly its first event named is
//! (`POST /api/v1/anomalies/{id}/acknowledge`). Escalation and reminders
//! stop at acknowledgement or resolution; a resolved notification goes to
//! every channel that was told of the alert.
//!
//! Layout: `config` (`[notify]` and its checks), `rules` (matching, quiet
//! hours), `follow` (intake and escalation), `outbox` (the dispatcher and
//! its backoff), `render` (payload formats), `send` (HTTP and SMTP), this
//! file (start, the handle the server holds, status).

pub mod config;
mod follow;
mod outbox;
pub mod render;
pub mod rules;
pub mod send;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{FixedOffset, Utc};
use enms_core::feed::EventSource;
use enms_store::{DeliveryStatus, NotificationRecord, Store, StoreError};
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use config::{Channel, NotifyConfig, Rule};
pub use outbox::FAILED_ALERT;
use send::Sender;

/// Where the notifier raises its own `system_alert`s (a notification that
/// failed for good, an intake that fell behind the log).
#[async_trait::async_trait]
pub trait AlertSink: Send + Sync + 'static {
    async fn alert(&self, alert_type: &str, message: String);
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("no channel is named {name:?}; channels: {known}")]
    UnknownChannel { name: String, known: String },
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What `/api/v1/health` shows of the notifier.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct NotifyStatus {
    pub channels: usize,
    pub rules: usize,
    /// Events the intake read since start.
    pub events_read: u64,
    /// Times the intake found the log had moved past its cursor.
    pub events_missed: u64,
    pub notifications_stored: u64,
    pub delivered: u64,
    /// Tries that failed and will be made again.
    pub retried: u64,
    /// Notifications that failed for good.
    pub failed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// A channel as the API shows it: no secret, no credential URL path.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChannelInfo {
    pub name: String,
    pub kind: String,
    /// A URL's scheme and host, or the mail's recipients.
    pub target: String,
    pub signed: bool,
}

/// The running notifier: the server's handle for status, channels and the
/// test button.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub config: NotifyConfig,
    pub offset: FixedOffset,
    pub store: Arc<dyn Store>,
    pub senders: BTreeMap<String, Sender>,
    pub alerts: Arc<dyn AlertSink>,
    /// Rung when notifications are stored, so the dispatcher sends them now.
    pub wake: Notify,
    pub status: Mutex<NotifyStatus>,
    /// This process, in claims.
    pub owner: String,
    /// When `start` ran: on a first start, events from then on are notified.
    pub started: chrono::DateTime<Utc>,
}

impl Inner {
    pub fn status(&self) -> std::sync::MutexGuard<'_, NotifyStatus> {
        self.status.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stores notifications (existing keys skipped) and wakes the sender.
    pub async fn enqueue(&self, batch: Vec<NotificationRecord>) -> Result<usize, StoreError> {
        if batch.is_empty() {
            return Ok(0);
        }
        let stored = self.store.enqueue_notifications(&batch).await?.len();
        if stored > 0 {
            self.status().notifications_stored += stored as u64;
            self.wake.notify_one();
        }
        Ok(stored)
    }
}

/// Builds the channels (reading their secrets) and starts the intake, the
/// escalation watch and the dispatcher; they run until `stop`. The
/// configuration must have passed [`NotifyConfig::validate`].
pub fn start(
    config: NotifyConfig,
    store: Arc<dyn Store>,
    events: Arc<dyn EventSource>,
    alerts: Arc<dyn AlertSink>,
    stop: CancellationToken,
) -> Result<(Notifier, Vec<tokio::task::JoinHandle<()>>), NotifyError> {
    // reqwest and lettre are built on rustls without a default crypto
    // provider (aws-lc would need cmake); ring is installed here, once. An
    // error means one is installed already, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let offset = config.offset().map_err(|e| NotifyError::Config(e.to_string()))?;
    let mut senders = BTreeMap::new();
    for (name, channel) in &config.channels {
        let sender = Sender::new(channel).map_err(|e| NotifyError::Config(format!("channel {name:?}: {e}")))?;
        senders.insert(name.clone(), sender);
    }
    let status = NotifyStatus { channels: senders.len(), rules: config.rules.len(), ..NotifyStatus::default() };
    let inner = Arc::new(Inner {
        config,
        offset,
        store,
        senders,
        alerts,
        wake: Notify::new(),
        status: Mutex::new(status),
        owner: format!("notify-{}", Uuid::new_v4().simple()),
        started: Utc::now(),
    });
    let tasks = vec![
        tokio::spawn(follow::intake(inner.clone(), events, stop.clone())),
        tokio::spawn(follow::escalate(inner.clone(), stop.clone())),
        tokio::spawn(outbox::dispatch(inner.clone(), stop)),
    ];
    Ok((Notifier { inner }, tasks))
}

impl Notifier {
    pub fn status(&self) -> NotifyStatus {
        self.inner.status().clone()
    }

    pub fn channels(&self) -> Vec<ChannelInfo> {
        self.inner
            .senders
            .iter()
            .map(|(name, sender)| ChannelInfo {
                name: name.clone(),
                kind: self.inner.config.channels.get(name).map(Channel::kind).unwrap_or_default().to_owned(),
                target: sender.target(),
                signed: matches!(sender, Sender::Http { secret: Some(_), .. }),
            })
            .collect()
    }

    /// Stores a test notification for `channel` and wakes the sender; the
    /// delivery log shows how it went.
    pub async fn test(&self, channel: &str, by: &str) -> Result<NotificationRecord, NotifyError> {
        if !self.inner.senders.contains_key(channel) {
            let known: Vec<&str> = self.inner.senders.keys().map(String::as_str).collect();
            return Err(NotifyError::UnknownChannel {
                name: channel.to_owned(),
                known: if known.is_empty() { "none".into() } else { known.join(", ") },
            });
        }
        let now = Utc::now();
        let id = Uuid::new_v4();
        let mut body = serde_json::json!({"requested_by": by, "severity": "info"});
        if let Some(url) = &self.inner.config.dashboard_url {
            body["link"] = serde_json::json!(url);
        }
        let note = NotificationRecord {
            id,
            key: format!("test:{id}:{channel}"),
            channel: channel.to_owned(),
            kind: "test".into(),
            rule: None,
            alert_id: None,
            event_id: None,
            title: format!("Test notification through {channel}"),
            body,
            status: DeliveryStatus::Pending,
            attempts: 0,
            created_at: now,
            next_attempt_at: now,
            delivered_at: None,
            last_error: None,
        };
        self.inner.enqueue(vec![note.clone()]).await?;
        Ok(note)
    }
}
