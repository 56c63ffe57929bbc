//! Storage for enms: the [`Store`] trait every backend implements, the
//! SQLite backend used by default and the PostgreSQL backend for scale.
//!
//! Each backend owns its schema and migrations (`migrations/<backend>/`);
//! callers only see domain types from `enms-core`.

pub mod analytics;
pub mod cursors;
mod error;
pub mod follow;
pub mod incidents;
pub mod notify;
pub mod periods;
pub mod postgres;
pub mod retention;
pub mod rollup;
pub mod sqlite;
mod types;
pub mod users;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use enms_core::access::{SessionRecord, TokenRecord, UserRecord};
use enms_core::event::{Event, EventId};
use enms_core::sim::InjectedAnomaly;
use enms_core::{MachineRecord, Reading};
use uuid::Uuid;

pub use analytics::{
    AnomalyQuery, AnomalyRecord, EpisodeQuery, EpisodeRecord, JobQuery, JobRecord, JobStatus, ModelRecord,
};
pub use error::StoreError;
pub use incidents::{IncidentEntry, IncidentQuery, IncidentRecord, Saved};
pub use notify::{AlertRecord, AttemptResult, DeliveryAttempt, DeliveryStatus, NotificationQuery, NotificationRecord};
pub use types::{ReadingPoint, ReadingQuery};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything enms persists. Implementations must be safe to share between
/// tasks; each method is one atomic unit of work.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Cheap round trip proving the database answers.
    async fn ping(&self) -> Result<()>;

    async fn list_machines(&self) -> Result<Vec<MachineRecord>>;
    async fn get_machine(&self, id: Uuid) -> Result<Option<MachineRecord>>;
    /// Case-insensitive lookup by name.
    async fn find_machine_by_name(&self, name: &str) -> Result<Option<MachineRecord>>;
    /// Fails with [`StoreError::Conflict`] when the id or name is taken.
    async fn create_machine(&self, machine: &MachineRecord) -> Result<()>;
    /// Replaces the editable fields; `Ok(false)` when the machine is unknown.
    async fn update_machine(&self, machine: &MachineRecord) -> Result<bool>;
    /// Deletes the machine and its readings; `Ok(false)` when unknown.
    async fn delete_machine(&self, id: Uuid) -> Result<bool>;

    /// Stores a batch atomically and durably, replacing readings with the same
    /// (machine, timestamp). Fails whole with [`StoreError::UnknownMachine`].
    async fn insert_readings(&self, readings: &[Reading]) -> Result<()>;
    async fn query_readings(&self, query: &ReadingQuery) -> Result<Vec<ReadingPoint>>;
    async fn count_readings(&self, machine: Option<Uuid>) -> Result<u64>;
    /// A machine's hour cells ([`periods::PeriodCell`]) of whole hours in
    /// `[start, end)`, oldest first.
    async fn period_cells(
        &self,
        machine: Uuid,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<periods::PeriodCell>>;
    /// Where retention pruned each level ([`rollup::Floors`]).
    async fn retention_floors(&self) -> Result<rollup::Floors>;
    /// Raises a level's floor to `floor` (never lowers it). Called before
    /// pruning, so a reading older than the new raw floor is refused from
    /// then on.
    async fn raise_retention_floor(&self, level: rollup::Source, floor: DateTime<Utc>) -> Result<()>;
    /// Deletes up to `limit` rows of `level` older than `before`, in short
    /// transactions; returns how many. Call until it answers 0.
    async fn prune_level(&self, level: rollup::Source, before: DateTime<Utc>, limit: u32) -> Result<u64>;
    /// Rows, span and bytes of every level, per machine (`enms db stats`).
    async fn storage_stats(&self) -> Result<rollup::StorageStats>;
    /// The names of the extra values one machine's readings in
    /// `[start, end)` carry, sorted: the columns of a raw export.
    async fn reading_extra_names(&self, machine: Uuid, start: DateTime<Utc>, end: DateTime<Utc>)
    -> Result<Vec<String>>;

    async fn record_injected(&self, anomalies: &[InjectedAnomaly]) -> Result<()>;
    async fn list_injected(&self) -> Result<Vec<InjectedAnomaly>>;

    /// Appends durable events to the log (ids already assigned).
    async fn append_events(&self, events: &[Event]) -> Result<()>;
    /// Logged events with an id greater than `after`, oldest first.
    async fn events_after(&self, after: EventId, limit: u32) -> Result<Vec<Event>>;
    /// Logged events with an id lower than `before` (all when `None`), newest first.
    async fn events_before(&self, before: Option<EventId>, limit: u32) -> Result<Vec<Event>>;
    /// Highest logged id, so ids keep increasing across restarts.
    async fn last_event_id(&self) -> Result<Option<EventId>>;
    /// Deletes logged events older than `before`; returns how many.
    async fn prune_events(&self, before: EventId) -> Result<u64>;
    /// Newest id ever pruned: the log is complete only after it.
    async fn event_log_floor(&self) -> Result<Option<EventId>>;

    /// Stores a model with the next version of its machine and type (inactive);
    /// returns that version.
    async fn insert_model(&self, model: &ModelRecord) -> Result<i64>;
    /// Models without their bodies, newest version first.
    async fn list_models(&self, machine: Option<Uuid>, model_type: Option<&str>) -> Result<Vec<ModelRecord>>;
    async fn get_model(&self, id: Uuid) -> Result<Option<ModelRecord>>;
    async fn active_model(&self, machine: Uuid, model_type: &str) -> Result<Option<ModelRecord>>;
    /// Makes the model the only active one of its machine and type, atomically;
    /// `Ok(false)` when unknown.
    async fn activate_model(&self, id: Uuid) -> Result<bool>;

    /// Inserts or updates a job. Fails with [`StoreError::JobConflict`] when
    /// another unfinished job has the same machine and model type.
    async fn save_job(&self, job: &JobRecord) -> Result<()>;
    /// Extends the lease of every unfinished job `owner` holds.
    async fn renew_job_leases(&self, owner: &str, until: DateTime<Utc>) -> Result<u64>;
    /// Takes over unfinished jobs whose lease expired before `now` (or that
    /// nobody owns) for `owner` until `until`; returns them, oldest first.
    /// Each job is handed to one caller only, whatever the instance.
    async fn claim_stale_jobs(&self, owner: &str, now: DateTime<Utc>, until: DateTime<Utc>) -> Result<Vec<JobRecord>>;
    /// Claims a scheduled run (`name` at `slot`) for `owner`; true for the
    /// first caller only, so a schedule fires once across instances.
    async fn claim_scheduled_run(&self, name: &str, slot: DateTime<Utc>, owner: &str) -> Result<bool>;
    async fn get_job(&self, id: Uuid) -> Result<Option<JobRecord>>;
    /// Newest first.
    async fn list_jobs(&self, query: &JobQuery) -> Result<Vec<JobRecord>>;

    /// Stores anomalies not stored yet (per machine, timestamp and metric) and
    /// returns those that were new.
    async fn insert_anomalies(&self, anomalies: &[AnomalyRecord]) -> Result<Vec<AnomalyRecord>>;
    async fn list_anomalies(&self, query: &AnomalyQuery) -> Result<Vec<AnomalyRecord>>;
    async fn get_anomaly(&self, id: Uuid) -> Result<Option<AnomalyRecord>>;
    /// `Ok(false)` when unknown.
    async fn acknowledge_anomaly(&self, id: Uuid, by: &str, note: Option<&str>, at: DateTime<Utc>) -> Result<bool>;
    /// Inserts episodes, or updates them in place by id.
    async fn upsert_episodes(&self, episodes: &[EpisodeRecord]) -> Result<()>;
    /// Episodes overlapping the query's window, latest start first.
    async fn list_episodes(&self, query: &EpisodeQuery) -> Result<Vec<EpisodeRecord>>;

    /// Fails with [`StoreError::Conflict`] when the name is taken
    /// (case-insensitively).
    async fn create_token(&self, token: &TokenRecord) -> Result<()>;
    /// Every token, revoked ones included, oldest first.
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>>;
    /// The token with this SHA-256 hash (hex), revoked or not.
    async fn find_token(&self, hash: &str) -> Result<Option<TokenRecord>>;
    /// `Ok(false)` when unknown or already revoked.
    async fn revoke_token(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool>;

    /// Fails with [`StoreError::Conflict`] when the name is taken
    /// (case-insensitively).
    async fn create_user(&self, user: &UserRecord) -> Result<()>;
    /// Every user, disabled ones included, by name.
    async fn list_users(&self) -> Result<Vec<UserRecord>>;
    async fn get_user(&self, id: Uuid) -> Result<Option<UserRecord>>;
    /// Case-insensitive lookup by name.
    async fn find_user(&self, name: &str) -> Result<Option<UserRecord>>;
    /// Replaces the role, password hash and `disabled_at`, and with
    /// `end_sessions_at` revokes every live session of the user, in one
    /// transaction; `Ok(false)` when unknown.
    async fn update_user(&self, user: &UserRecord, end_sessions_at: Option<DateTime<Utc>>) -> Result<bool>;
    /// Counts a failed sign-in atomically: the attempt that reaches
    /// `max_failures` sets `locked_until` and starts the count again.
    /// Answers the user as it now is (`None` when unknown).
    async fn record_failed_login(
        &self,
        user: Uuid,
        max_failures: u32,
        lock_until: DateTime<Utc>,
    ) -> Result<Option<UserRecord>>;
    /// Stores a session and, in the same transaction, clears the user's
    /// failed sign-ins, sets `last_login_at` and deletes their sessions
    /// that ended more than [`users::SESSIONS_KEPT`] ago.
    async fn start_session(&self, session: &SessionRecord) -> Result<()>;
    /// The session with this SHA-256 hash (hex), ended or not.
    async fn find_session(&self, hash: &str) -> Result<Option<SessionRecord>>;
    /// `Ok(false)` when unknown or already revoked.
    async fn revoke_session(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool>;

    /// Stores an alert unless one with its id exists; `Ok(true)` when new.
    async fn insert_alert(&self, alert: &AlertRecord) -> Result<bool>;
    /// Replaces an alert's changing fields; `Ok(false)` when unknown.
    async fn update_alert(&self, alert: &AlertRecord) -> Result<bool>;
    async fn get_alert(&self, id: &str) -> Result<Option<AlertRecord>>;
    /// Newest first; `open_only`: not yet resolved.
    async fn list_alerts(&self, open_only: bool, limit: u32) -> Result<Vec<AlertRecord>>;
    /// Stores notifications whose key is new, in one transaction; answers
    /// the ids stored (a key already stored is skipped).
    async fn enqueue_notifications(&self, batch: &[NotificationRecord]) -> Result<Vec<Uuid>>;
    /// Claims up to `limit` pending notifications due at `now` and not
    /// claimed by a live claim, for `owner` until `until`; oldest due first.
    async fn claim_notifications(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<NotificationRecord>>;
    /// Records an attempt and its result, and releases the claim, at once.
    async fn finish_attempt(&self, result: &AttemptResult) -> Result<()>;
    /// The earliest `next_attempt_at` of the pending notifications.
    async fn next_notification_due(&self) -> Result<Option<DateTime<Utc>>>;
    async fn get_notification(&self, id: Uuid) -> Result<Option<NotificationRecord>>;
    /// Newest first.
    async fn list_notifications(&self, query: &NotificationQuery) -> Result<Vec<NotificationRecord>>;
    /// The attempts of these notifications, by notification then attempt.
    async fn notification_attempts(&self, ids: &[Uuid]) -> Result<Vec<DeliveryAttempt>>;
    /// Writes an incident and one timeline entry in one transaction:
    /// inserted when `expected` is `None` ([`StoreError::Conflict`] when the
    /// machine already has an unresolved incident of that kind), else
    /// updated if its stored version is `expected` ([`Saved::Stale`]
    /// otherwise). An entry whose `source_event` the incident already holds
    /// makes it [`Saved::Duplicate`], with nothing written.
    async fn save_incident(
        &self,
        incident: &IncidentRecord,
        entry: &IncidentEntry,
        expected: Option<i64>,
    ) -> Result<Saved>;
    async fn get_incident(&self, id: Uuid) -> Result<Option<IncidentRecord>>;
    /// The machine's unresolved incident of that kind, if any.
    async fn unresolved_incident(&self, machine: Uuid, anomaly_type: &str) -> Result<Option<IncidentRecord>>;
    /// Newest opened first.
    async fn list_incidents(&self, query: &IncidentQuery) -> Result<Vec<IncidentRecord>>;
    /// The incident's timeline, oldest first.
    async fn incident_entries(&self, id: Uuid) -> Result<Vec<IncidentEntry>>;

    /// A named position (e.g. the notifier's last event id).
    async fn cursor(&self, name: &str) -> Result<Option<String>>;
    async fn set_cursor(&self, name: &str, value: &str) -> Result<()>;

    /// Flushes and closes connections; called on shutdown.
    async fn close(&self);
}

/// Opens the store a URL names: `sqlite://path/to/file.db` (created if
/// missing) or `postgres://user@host:port/database` (migrated on open).
pub async fn connect(url: &str) -> Result<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(postgres::PgStore::open(url).await?));
    }
    if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
        return Ok(Arc::new(sqlite::SqliteStore::open(path).await?));
    }
    Err(StoreError::UnsupportedUrl(url.to_owned()))
}
