//! The SQLite backend: one file, WAL journal, one writer connection (SQLite
//! allows one writer at a time, so queueing writers in the pool is cheaper
//! than having them spin on the file lock) and a pool of read-only readers.
//!
//! `synchronous = FULL` makes every committed batch survive power loss, which
//! is what "answered only once durable" promises; batching keeps the fsync
//! cost per reading negligible.

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

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use enms_core::access::{SessionRecord, TokenRecord, UserRecord};
use enms_core::event::{Event, EventId};
use enms_core::sim::InjectedAnomaly;
use enms_core::{MachineRecord, Reading};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use uuid::Uuid;

use crate::{
    AlertRecord, AnomalyQuery, AnomalyRecord, AttemptResult, DeliveryAttempt, EpisodeQuery, EpisodeRecord,
    IncidentEntry, IncidentQuery, IncidentRecord, JobQuery, JobRecord, ModelRecord, NotificationQuery,
    NotificationRecord, ReadingPoint, ReadingQuery, Result, Saved, Store, StoreError,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

const READERS: u32 = 4;

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub async fn open(path: &str) -> Result<Self> {
        if let Some(dir) = Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        }
        let base = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // 64 MiB page cache per connection: ingest touches one B-tree path
            // per machine and range queries scan long runs of pages.
            .pragma("cache_size", "-65536");
        let writer =
            SqlitePoolOptions::new().max_connections(1).connect_with(base.clone().create_if_missing(true)).await?;
        MIGRATOR.run(&writer).await.map_err(|e| StoreError::Migration(e.to_string()))?;
        let reader = SqlitePoolOptions::new().max_connections(READERS).connect_with(base.read_only(true)).await?;
        Ok(Self { writer, reader })
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn list_machines(&self) -> Result<Vec<MachineRecord>> {
        machines::list(&self.reader).await
    }

    async fn get_machine(&self, id: Uuid) -> Result<Option<MachineRecord>> {
        machines::get(&self.reader, id).await
    }

    async fn find_machine_by_name(&self, name: &str) -> Result<Option<MachineRecord>> {
        machines::by_name(&self.reader, name).await
    }

    async fn create_machine(&self, machine: &MachineRecord) -> Result<()> {
        machines::create(&self.writer, machine).await
    }

    async fn update_machine(&self, machine: &MachineRecord) -> Result<bool> {
        machines::update(&self.writer, machine).await
    }

    async fn delete_machine(&self, id: Uuid) -> Result<bool> {
        machines::delete(&self.writer, id).await
    }

    async fn insert_readings(&self, batch: &[Reading]) -> Result<()> {
        readings::insert(&self.writer, batch).await
    }

    async fn query_readings(&self, query: &ReadingQuery) -> Result<Vec<ReadingPoint>> {
        readings::query(&self.reader, query).await
    }

    async fn count_readings(&self, machine: Option<Uuid>) -> Result<u64> {
        readings::count(&self.reader, machine).await
    }

    async fn period_cells(
        &self,
        machine: Uuid,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<crate::periods::PeriodCell>> {
        let mut conn = self.reader.acquire().await?;
        let key: Option<i64> = sqlx::query_scalar("SELECT key FROM machines WHERE id = ?")
            .bind(machine.to_string())
            .fetch_optional(&mut *conn)
            .await?;
        match key {
            Some(key) => periods::cells(&mut conn, key, start.timestamp_millis(), end.timestamp_millis()).await,
            None => Ok(Vec::new()),
        }
    }

    async fn retention_floors(&self) -> Result<crate::rollup::Floors> {
        let mut conn = self.reader.acquire().await?;
        retention::floors(&mut conn).await
    }

    async fn raise_retention_floor(&self, level: crate::rollup::Source, floor: DateTime<Utc>) -> Result<()> {
        retention::raise(&self.writer, level, floor).await
    }

    async fn prune_level(&self, level: crate::rollup::Source, before: DateTime<Utc>, limit: u32) -> Result<u64> {
        retention::prune(&self.writer, level, before, limit).await
    }

    async fn storage_stats(&self) -> Result<crate::rollup::StorageStats> {
        retention::stats(&self.reader).await
    }

    async fn reading_extra_names(
        &self,
        machine: Uuid,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<String>> {
        readings::extra_names(&self.reader, machine, start, end).await
    }

    async fn record_injected(&self, anomalies: &[InjectedAnomaly]) -> Result<()> {
        demo::record(&self.writer, anomalies).await
    }

    async fn list_injected(&self) -> Result<Vec<InjectedAnomaly>> {
        demo::list(&self.reader).await
    }

    async fn append_events(&self, batch: &[Event]) -> Result<()> {
        events::append(&self.writer, batch).await
    }

    async fn events_after(&self, after: EventId, limit: u32) -> Result<Vec<Event>> {
        events::after(&self.reader, after, limit).await
    }

    async fn events_before(&self, before: Option<EventId>, limit: u32) -> Result<Vec<Event>> {
        events::before(&self.reader, before, limit).await
    }

    async fn last_event_id(&self) -> Result<Option<EventId>> {
        events::last_id(&self.reader).await
    }

    async fn prune_events(&self, before: EventId) -> Result<u64> {
        events::prune(&self.writer, before).await
    }

    async fn event_log_floor(&self) -> Result<Option<EventId>> {
        events::floor(&self.reader).await
    }

    async fn insert_model(&self, model: &ModelRecord) -> Result<i64> {
        analytics::insert_model(&self.writer, model).await
    }

    async fn list_models(&self, machine: Option<Uuid>, model_type: Option<&str>) -> Result<Vec<ModelRecord>> {
        analytics::list_models(&self.reader, machine, model_type).await
    }

    async fn get_model(&self, id: Uuid) -> Result<Option<ModelRecord>> {
        analytics::get_model(&self.reader, id).await
    }

    async fn active_model(&self, machine: Uuid, model_type: &str) -> Result<Option<ModelRecord>> {
        analytics::active_model(&self.reader, machine, model_type).await
    }

    async fn activate_model(&self, id: Uuid) -> Result<bool> {
        analytics::activate_model(&self.writer, id).await
    }

    async fn save_job(&self, job: &JobRecord) -> Result<()> {
        analytics::save_job(&self.writer, job).await
    }

    async fn renew_job_leases(&self, owner: &str, until: DateTime<Utc>) -> Result<u64> {
        analytics::renew_leases(&self.writer, owner, until).await
    }

    async fn claim_stale_jobs(&self, owner: &str, now: DateTime<Utc>, until: DateTime<Utc>) -> Result<Vec<JobRecord>> {
        analytics::claim_stale(&self.writer, owner, now, until).await
    }

    async fn claim_scheduled_run(&self, name: &str, slot: DateTime<Utc>, owner: &str) -> Result<bool> {
        analytics::claim_run(&self.writer, name, slot, owner).await
    }

    async fn get_job(&self, id: Uuid) -> Result<Option<JobRecord>> {
        analytics::get_job(&self.reader, id).await
    }

    async fn list_jobs(&self, query: &JobQuery) -> Result<Vec<JobRecord>> {
        analytics::list_jobs(&self.reader, query).await
    }

    async fn insert_anomalies(&self, anomalies: &[AnomalyRecord]) -> Result<Vec<AnomalyRecord>> {
        analytics::insert_anomalies(&self.writer, anomalies).await
    }

    async fn list_anomalies(&self, query: &AnomalyQuery) -> Result<Vec<AnomalyRecord>> {
        analytics::list_anomalies(&self.reader, query).await
    }

    async fn get_anomaly(&self, id: Uuid) -> Result<Option<AnomalyRecord>> {
        analytics::get_anomaly(&self.reader, id).await
    }

    async fn acknowledge_anomaly(&self, id: Uuid, by: &str, note: Option<&str>, at: DateTime<Utc>) -> Result<bool> {
        analytics::acknowledge(&self.writer, id, by, note, at).await
    }

    async fn save_incident(
        &self,
        incident: &IncidentRecord,
        entry: &IncidentEntry,
        expected: Option<i64>,
    ) -> Result<Saved> {
        incidents::save(&self.writer, incident, entry, expected).await
    }

    async fn get_incident(&self, id: Uuid) -> Result<Option<IncidentRecord>> {
        incidents::get(&self.reader, id).await
    }

    async fn unresolved_incident(&self, machine: Uuid, anomaly_type: &str) -> Result<Option<IncidentRecord>> {
        incidents::unresolved(&self.reader, machine, anomaly_type).await
    }

    async fn list_incidents(&self, query: &IncidentQuery) -> Result<Vec<IncidentRecord>> {
        incidents::list(&self.reader, query).await
    }

    async fn incident_entries(&self, id: Uuid) -> Result<Vec<IncidentEntry>> {
        incidents::entries(&self.reader, id).await
    }

    async fn upsert_episodes(&self, episodes: &[EpisodeRecord]) -> Result<()> {
        episodes::upsert(&self.writer, episodes).await
    }

    async fn list_episodes(&self, query: &EpisodeQuery) -> Result<Vec<EpisodeRecord>> {
        episodes::list(&self.reader, query).await
    }

    async fn create_token(&self, token: &TokenRecord) -> Result<()> {
        tokens::create(&self.writer, token).await
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        tokens::list(&self.reader).await
    }

    async fn find_token(&self, hash: &str) -> Result<Option<TokenRecord>> {
        tokens::by_hash(&self.reader, hash).await
    }

    async fn revoke_token(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool> {
        tokens::revoke(&self.writer, id, at).await
    }

    async fn create_user(&self, user: &UserRecord) -> Result<()> {
        users::create(&self.writer, user).await
    }

    async fn list_users(&self) -> Result<Vec<UserRecord>> {
        users::list(&self.reader).await
    }

    async fn get_user(&self, id: Uuid) -> Result<Option<UserRecord>> {
        users::get(&self.reader, id).await
    }

    async fn find_user(&self, name: &str) -> Result<Option<UserRecord>> {
        users::find(&self.reader, name).await
    }

    async fn update_user(&self, user: &UserRecord, end_sessions_at: Option<DateTime<Utc>>) -> Result<bool> {
        users::update(&self.writer, user, end_sessions_at).await
    }

    async fn record_failed_login(
        &self,
        user: Uuid,
        max_failures: u32,
        lock_until: DateTime<Utc>,
    ) -> Result<Option<UserRecord>> {
        users::failed_login(&self.writer, user, max_failures, lock_until).await
    }

    async fn start_session(&self, session: &SessionRecord) -> Result<()> {
        users::start_session(&self.writer, session).await
    }

    async fn find_session(&self, hash: &str) -> Result<Option<SessionRecord>> {
        users::find_session(&self.reader, hash).await
    }

    async fn revoke_session(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool> {
        users::revoke_session(&self.writer, id, at).await
    }

    async fn insert_alert(&self, alert: &AlertRecord) -> Result<bool> {
        notify::insert_alert(&self.writer, alert).await
    }

    async fn update_alert(&self, alert: &AlertRecord) -> Result<bool> {
        notify::update_alert(&self.writer, alert).await
    }

    async fn get_alert(&self, id: &str) -> Result<Option<AlertRecord>> {
        notify::get_alert(&self.reader, id).await
    }

    async fn list_alerts(&self, open_only: bool, limit: u32) -> Result<Vec<AlertRecord>> {
        notify::list_alerts(&self.reader, open_only, limit).await
    }

    async fn enqueue_notifications(&self, batch: &[NotificationRecord]) -> Result<Vec<Uuid>> {
        notify::enqueue(&self.writer, batch).await
    }

    async fn claim_notifications(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<NotificationRecord>> {
        notify::claim(&self.writer, owner, now, until, limit).await
    }

    async fn finish_attempt(&self, result: &AttemptResult) -> Result<()> {
        notify::finish(&self.writer, result).await
    }

    async fn next_notification_due(&self) -> Result<Option<DateTime<Utc>>> {
        notify::next_due(&self.reader).await
    }

    async fn get_notification(&self, id: Uuid) -> Result<Option<NotificationRecord>> {
        notify::get(&self.reader, id).await
    }

    async fn list_notifications(&self, query: &NotificationQuery) -> Result<Vec<NotificationRecord>> {
        notify::list(&self.reader, query).await
    }

    async fn notification_attempts(&self, ids: &[Uuid]) -> Result<Vec<DeliveryAttempt>> {
        notify::attempts(&self.reader, ids).await
    }

    async fn cursor(&self, name: &str) -> Result<Option<String>> {
        notify::cursor(&self.reader, name).await
    }

    async fn set_cursor(&self, name: &str, value: &str) -> Result<()> {
        notify::set_cursor(&self.writer, name, value).await
    }

    async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

fn parse_uuid(text: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(|e| StoreError::Corrupt(format!("uuid {text:?}: {e}")))
}
