//! The PostgreSQL backend, for several instances sharing one database and
//! for data that outgrows one file. Same contract as SQLite; native types
//! (UUID, TIMESTAMPTZ, JSONB), bulk ingest through `UNNEST` arrays, and
//! row-level claims so jobs and scheduled runs happen once across instances.
//!
//! Timestamps are truncated to milliseconds on the way in, as SQLite stores
//! them, so both backends answer the same.

mod analytics;
mod demo;
mod episodes;
mod events;
mod incidents;
mod machines;
mod notify;
mod periods;
mod readings;
mod retention;
mod rollup;
mod tokens;
mod users;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use enms_core::access::{SessionRecord, TokenRecord, UserRecord};
use enms_core::event::{Event, EventId};
use enms_core::sim::InjectedAnomaly;
use enms_core::timestamp::{from_ms, to_ms};
use enms_core::{MachineRecord, Reading};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use uuid::Uuid;

use crate::{
    AlertRecord, AnomalyQuery, AnomalyRecord, AttemptResult, DeliveryAttempt, EpisodeQuery, EpisodeRecord,
    IncidentEntry, IncidentQuery, IncidentRecord, JobQuery, JobRecord, ModelRecord, NotificationQuery,
    NotificationRecord, ReadingPoint, ReadingQuery, Result, Saved, Store, StoreError,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

const CONNECTIONS: u32 = 8;

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to `url` and migrates the schema (concurrent instances
    /// serialise on sqlx's migration lock).
    pub async fn open(url: &str) -> Result<Self> {
        let options: PgConnectOptions = url.parse()?;
        Self::open_with(options).await
    }

    /// As [`open`](Self::open), from parsed options (tests use a schema of
    /// their own through `search_path`).
    pub async fn open_with(options: PgConnectOptions) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await.map_err(|e| StoreError::Migration(e.to_string()))?;
        Ok(Self { pool })
    }
}

/// Millisecond precision, as stored by every backend.
fn ms(t: DateTime<Utc>) -> DateTime<Utc> {
    from_ms(to_ms(t))
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn list_machines(&self) -> Result<Vec<MachineRecord>> {
        machines::list(&self.pool).await
    }

    async fn get_machine(&self, id: Uuid) -> Result<Option<MachineRecord>> {
        machines::get(&self.pool, id).await
    }

    async fn find_machine_by_name(&self, name: &str) -> Result<Option<MachineRecord>> {
        machines::by_name(&self.pool, name).await
    }

    async fn create_machine(&self, machine: &MachineRecord) -> Result<()> {
        machines::create(&self.pool, machine).await
    }

    async fn update_machine(&self, machine: &MachineRecord) -> Result<bool> {
        machines::update(&self.pool, machine).await
    }

    async fn delete_machine(&self, id: Uuid) -> Result<bool> {
        machines::delete(&self.pool, id).await
    }

    async fn insert_readings(&self, batch: &[Reading]) -> Result<()> {
        readings::insert(&self.pool, batch).await
    }

    async fn query_readings(&self, query: &ReadingQuery) -> Result<Vec<ReadingPoint>> {
        readings::query(&self.pool, query).await
    }

    async fn count_readings(&self, machine: Option<Uuid>) -> Result<u64> {
        readings::count(&self.pool, machine).await
    }

    async fn period_cells(
        &self,
        machine: Uuid,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<crate::periods::PeriodCell>> {
        let mut conn = self.pool.acquire().await?;
        let key: Option<i32> = sqlx::query_scalar("SELECT key FROM machines WHERE id = $1")
            .bind(machine)
            .fetch_optional(&mut *conn)
            .await?;
        match key {
            Some(key) => periods::cells(&mut conn, key, start, end).await,
            None => Ok(Vec::new()),
        }
    }

    async fn retention_floors(&self) -> Result<crate::rollup::Floors> {
        let mut conn = self.pool.acquire().await?;
        retention::floors(&mut conn).await
    }

    async fn raise_retention_floor(&self, level: crate::rollup::Source, floor: DateTime<Utc>) -> Result<()> {
        retention::raise(&self.pool, level, floor).await
    }

    async fn prune_level(&self, level: crate::rollup::Source, before: DateTime<Utc>, limit: u32) -> Result<u64> {
        retention::prune(&self.pool, level, before, limit).await
    }

    async fn storage_stats(&self) -> Result<crate::rollup::StorageStats> {
        retention::stats(&self.pool).await
    }

    async fn reading_extra_names(
        &self,
        machine: Uuid,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<String>> {
        readings::extra_names(&self.pool, machine, start, end).await
    }

    async fn record_injected(&self, anomalies: &[InjectedAnomaly]) -> Result<()> {
        demo::record(&self.pool, anomalies).await
    }

    async fn list_injected(&self) -> Result<Vec<InjectedAnomaly>> {
        demo::list(&self.pool).await
    }

    async fn append_events(&self, batch: &[Event]) -> Result<()> {
        events::append(&self.pool, batch).await
    }

    async fn events_after(&self, after: EventId, limit: u32) -> Result<Vec<Event>> {
        events::after(&self.pool, after, limit).await
    }

    async fn events_before(&self, before: Option<EventId>, limit: u32) -> Result<Vec<Event>> {
        events::before(&self.pool, before, limit).await
    }

    async fn last_event_id(&self) -> Result<Option<EventId>> {
        events::last_id(&self.pool).await
    }

    async fn prune_events(&self, before: EventId) -> Result<u64> {
        events::prune(&self.pool, before).await
    }

    async fn event_log_floor(&self) -> Result<Option<EventId>> {
        events::floor(&self.pool).await
    }

    async fn insert_model(&self, model: &ModelRecord) -> Result<i64> {
        analytics::insert_model(&self.pool, model).await
    }

    async fn list_models(&self, machine: Option<Uuid>, model_type: Option<&str>) -> Result<Vec<ModelRecord>> {
        analytics::list_models(&self.pool, machine, model_type).await
    }

    async fn get_model(&self, id: Uuid) -> Result<Option<ModelRecord>> {
        analytics::get_model(&self.pool, id).await
    }

    async fn active_model(&self, machine: Uuid, model_type: &str) -> Result<Option<ModelRecord>> {
        analytics::active_model(&self.pool, machine, model_type).await
    }

    async fn activate_model(&self, id: Uuid) -> Result<bool> {
        analytics::activate_model(&self.pool, id).await
    }

    async fn save_job(&self, job: &JobRecord) -> Result<()> {
        analytics::save_job(&self.pool, job).await
    }

    async fn renew_job_leases(&self, owner: &str, until: DateTime<Utc>) -> Result<u64> {
        analytics::renew_leases(&self.pool, owner, until).await
    }

    async fn claim_stale_jobs(&self, owner: &str, now: DateTime<Utc>, until: DateTime<Utc>) -> Result<Vec<JobRecord>> {
        analytics::claim_stale(&self.pool, owner, now, until).await
    }

    async fn claim_scheduled_run(&self, name: &str, slot: DateTime<Utc>, owner: &str) -> Result<bool> {
        analytics::claim_run(&self.pool, name, slot, owner).await
    }

    async fn get_job(&self, id: Uuid) -> Result<Option<JobRecord>> {
        analytics::get_job(&self.pool, id).await
    }

    async fn list_jobs(&self, query: &JobQuery) -> Result<Vec<JobRecord>> {
        analytics::list_jobs(&self.pool, query).await
    }

    async fn insert_anomalies(&self, anomalies: &[AnomalyRecord]) -> Result<Vec<AnomalyRecord>> {
        analytics::insert_anomalies(&self.pool, anomalies).await
    }

    async fn list_anomalies(&self, query: &AnomalyQuery) -> Result<Vec<AnomalyRecord>> {
        analytics::list_anomalies(&self.pool, query).await
    }

    async fn get_anomaly(&self, id: Uuid) -> Result<Option<AnomalyRecord>> {
        analytics::get_anomaly(&self.pool, id).await
    }

    async fn acknowledge_anomaly(&self, id: Uuid, by: &str, note: Option<&str>, at: DateTime<Utc>) -> Result<bool> {
        analytics::acknowledge(&self.pool, id, by, note, at).await
    }

    async fn save_incident(
        &self,
        incident: &IncidentRecord,
        entry: &IncidentEntry,
        expected: Option<i64>,
    ) -> Result<Saved> {
        incidents::save(&self.pool, incident, entry, expected).await
    }

    async fn get_incident(&self, id: Uuid) -> Result<Option<IncidentRecord>> {
        incidents::get(&self.pool, id).await
    }

    async fn unresolved_incident(&self, machine: Uuid, anomaly_type: &str) -> Result<Option<IncidentRecord>> {
        incidents::unresolved(&self.pool, machine, anomaly_type).await
    }

    async fn list_incidents(&self, query: &IncidentQuery) -> Result<Vec<IncidentRecord>> {
        incidents::list(&self.pool, query).await
    }

    async fn incident_entries(&self, id: Uuid) -> Result<Vec<IncidentEntry>> {
        incidents::entries(&self.pool, id).await
    }

    async fn upsert_episodes(&self, episodes: &[EpisodeRecord]) -> Result<()> {
        episodes::upsert(&self.pool, episodes).await
    }

    async fn list_episodes(&self, query: &EpisodeQuery) -> Result<Vec<EpisodeRecord>> {
        episodes::list(&self.pool, query).await
    }

    async fn create_token(&self, token: &TokenRecord) -> Result<()> {
        tokens::create(&self.pool, token).await
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        tokens::list(&self.pool).await
    }

    async fn find_token(&self, hash: &str) -> Result<Option<TokenRecord>> {
        tokens::by_hash(&self.pool, hash).await
    }

    async fn revoke_token(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool> {
        tokens::revoke(&self.pool, id, at).await
    }

    async fn create_user(&self, user: &UserRecord) -> Result<()> {
        users::create(&self.pool, user).await
    }

    async fn list_users(&self) -> Result<Vec<UserRecord>> {
        users::list(&self.pool).await
    }

    async fn get_user(&self, id: Uuid) -> Result<Option<UserRecord>> {
        users::get(&self.pool, id).await
    }

    async fn find_user(&self, name: &str) -> Result<Option<UserRecord>> {
        users::find(&self.pool, name).await
    }

    async fn update_user(&self, user: &UserRecord, end_sessions_at: Option<DateTime<Utc>>) -> Result<bool> {
        users::update(&self.pool, user, end_sessions_at).await
    }

    async fn record_failed_login(
        &self,
        user: Uuid,
        max_failures: u32,
        lock_until: DateTime<Utc>,
    ) -> Result<Option<UserRecord>> {
        users::failed_login(&self.pool, user, max_failures, lock_until).await
    }

    async fn start_session(&self, session: &SessionRecord) -> Result<()> {
        users::start_session(&self.pool, session).await
    }

    async fn find_session(&self, hash: &str) -> Result<Option<SessionRecord>> {
        users::find_session(&self.pool, hash).await
    }

    async fn revoke_session(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool> {
        users::revoke_session(&self.pool, id, at).await
    }

    async fn insert_alert(&self, alert: &AlertRecord) -> Result<bool> {
        notify::insert_alert(&self.pool, alert).await
    }

    async fn update_alert(&self, alert: &AlertRecord) -> Result<bool> {
        notify::update_alert(&self.pool, alert).await
    }

    async fn get_alert(&self, id: &str) -> Result<Option<AlertRecord>> {
        notify::get_alert(&self.pool, id).await
    }

    async fn list_alerts(&self, open_only: bool, limit: u32) -> Result<Vec<AlertRecord>> {
        notify::list_alerts(&self.pool, open_only, limit).await
    }

    async fn enqueue_notifications(&self, batch: &[NotificationRecord]) -> Result<Vec<Uuid>> {
        notify::enqueue(&self.pool, batch).await
    }

    async fn claim_notifications(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<NotificationRecord>> {
        notify::claim(&self.pool, owner, now, until, limit).await
    }

    async fn finish_attempt(&self, result: &AttemptResult) -> Result<()> {
        notify::finish(&self.pool, result).await
    }

    async fn next_notification_due(&self) -> Result<Option<DateTime<Utc>>> {
        notify::next_due(&self.pool).await
    }

    async fn get_notification(&self, id: Uuid) -> Result<Option<NotificationRecord>> {
        notify::get(&self.pool, id).await
    }

    async fn list_notifications(&self, query: &NotificationQuery) -> Result<Vec<NotificationRecord>> {
        notify::list(&self.pool, query).await
    }

    async fn notification_attempts(&self, ids: &[Uuid]) -> Result<Vec<DeliveryAttempt>> {
        notify::attempts(&self.pool, ids).await
    }

    async fn cursor(&self, name: &str) -> Result<Option<String>> {
        notify::cursor(&self.pool, name).await
    }

    async fn set_cursor(&self, name: &str, value: &str) -> Result<()> {
        notify::set_cursor(&self.pool, name, value).await
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
