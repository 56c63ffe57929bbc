//! The storage contract, written once against `dyn Store` so every backend
//! runs the same suite: each contract function below runs once on SQLite
//! and once on PostgreSQL (the `contract!` list at the end).
//!
//! PostgreSQL tests use `ENMS_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/test`), each in a schema of its own
//! that is dropped when the test passes.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use enms_core::{MachineRecord, Reading, Resolution};
use enms_store::{ReadingQuery, Store, StoreError};
use uuid::Uuid;

#[path = "store/periods.rs"]
mod periods;
#[path = "store/rollups.rs"]
mod rollups;
use periods::hour_cells_equal_a_recomputation_from_raw;
use rollups::{
    concurrent_writers_lose_no_rollup_count, pruned_levels_are_answered_by_the_levels_that_remain,
    rollups_equal_a_raw_recomputation_after_any_batches,
};

async fn sqlite() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("db/enms.db").display());
    let store = enms_store::connect(&url).await.expect("open sqlite");
    (dir, store)
}

/// A fresh schema in the test database, and a store migrated into it.
struct Pg {
    admin: sqlx::PgPool,
    schema: String,
    url: String,
}

impl Pg {
    async fn new() -> Self {
        let url = std::env::var("ENMS_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let admin = sqlx::PgPool::connect(&url).await.expect("PostgreSQL for the storage tests (ENMS_TEST_POSTGRES)");
        let schema = format!("enms_test_{}", Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&admin).await.expect("schema");
        Self { admin, schema, url }
    }

    /// A store on the schema; several handles act like several instances.
    async fn store(&self) -> Arc<dyn Store> {
        let options: sqlx::postgres::PgConnectOptions = self.url.parse().expect("url");
        let options = options.options([("search_path", self.schema.as_str())]);
        Arc::new(enms_store::postgres::PgStore::open_with(options).await.expect("open postgres"))
    }

    async fn drop(self) {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {} CASCADE", self.schema)))
            .execute(&self.admin)
            .await
            .expect("drop schema");
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).single().expect("date")
}

fn machine(name: &str) -> MachineRecord {
    MachineRecord {
        id: Uuid::new_v4(),
        name: name.into(),
        machine_type: "compressor".into(),
        location: "Hall A".into(),
        rated_power_kw: Some(75.0),
        created_at: t0(),
        last_reading_at: None,
    }
}

fn reading(id: Uuid, minutes: i64, kw: f64) -> Reading {
    Reading {
        machine_id: id,
        timestamp: t0() + Duration::minutes(minutes),
        power_kw: kw,
        energy_kwh: kw / 4.0,
        production_units: Some(1.0),
        outdoor_temp_c: None,
        extra: [("pressure_bar".to_owned(), 7.0)].into(),
    }
}

fn query(id: Uuid, resolution: Resolution) -> ReadingQuery {
    ReadingQuery { machine_id: id, start: t0(), end: t0() + Duration::days(1), resolution, limit: 10_000 }
}

async fn machines_crud_and_name_conflicts(store: Arc<dyn Store>) {
    let m = machine("C-1");
    store.create_machine(&m).await.expect("create");
    assert_eq!(store.get_machine(m.id).await.expect("get"), Some(m.clone()));
    assert_eq!(store.find_machine_by_name("c-1").await.expect("by name").map(|r| r.id), Some(m.id));
    let dup = machine("C-1");
    assert!(matches!(store.create_machine(&dup).await, Err(StoreError::Conflict { field: "name", .. })));
    let mut renamed = m.clone();
    renamed.name = "C-2".into();
    assert!(store.update_machine(&renamed).await.expect("update"));
    assert_eq!(store.list_machines().await.expect("list").len(), 1);
    assert!(store.delete_machine(m.id).await.expect("delete"));
    assert!(!store.delete_machine(m.id).await.expect("delete again"));
}

async fn ingest_is_idempotent_and_atomic(store: Arc<dyn Store>) {
    let m = machine("C-1");
    store.create_machine(&m).await.expect("create");
    let batch: Vec<_> = (1..=4).map(|i| reading(m.id, i * 15, 10.0 * i as f64)).collect();
    store.insert_readings(&batch).await.expect("insert");
    store.insert_readings(&batch).await.expect("insert again");
    assert_eq!(store.count_readings(Some(m.id)).await.expect("count"), 4);

    let mut bad = vec![reading(m.id, 75, 1.0)];
    bad.push(reading(Uuid::new_v4(), 90, 1.0));
    assert!(matches!(store.insert_readings(&bad).await, Err(StoreError::UnknownMachine(_))));
    assert_eq!(store.count_readings(None).await.expect("count"), 4, "a refused batch stores nothing");

    let rec = store.get_machine(m.id).await.expect("get").expect("exists");
    assert_eq!(rec.last_reading_at, Some(t0() + Duration::minutes(60)));
}

async fn queries_aggregate_in_buckets(store: Arc<dyn Store>) {
    let m = machine("C-1");
    store.create_machine(&m).await.expect("create");
    let batch: Vec<_> = (1..=8).map(|i| reading(m.id, i * 15, 10.0 * i as f64)).collect();
    store.insert_readings(&batch).await.expect("insert");

    let raw = store.query_readings(&query(m.id, Resolution::Raw)).await.expect("raw");
    assert_eq!(raw.len(), 8);
    assert_eq!(raw[0].extra, Some(serde_json::json!({"pressure_bar": 7.0})));

    let hourly = store.query_readings(&query(m.id, Resolution::OneHour)).await.expect("hourly");
    // Readings at :15, :30, :45 fall in hour 0; :60 .. :105 in hour 1; :120 in hour 2.
    assert_eq!(hourly.iter().map(|p| p.samples).collect::<Vec<_>>(), vec![3, 4, 1]);
    assert_eq!(hourly[0].power_kw, 20.0);
    assert_eq!(hourly[0].max_power_kw, 30.0);
    assert_eq!(hourly[0].energy_kwh, 15.0);
    assert_eq!(hourly[0].production_units, Some(3.0));
    let daily = store.query_readings(&query(m.id, Resolution::OneDay)).await.expect("daily");
    assert_eq!(daily.len(), 1);
    assert_eq!(daily[0].energy_kwh, batch.iter().map(|r| r.energy_kwh).sum::<f64>());

    // The extra values' names, for an export's columns.
    let names = store.reading_extra_names(m.id, t0(), t0() + Duration::days(1)).await.expect("names");
    assert_eq!(names, vec!["pressure_bar".to_owned()]);
    let none = store.reading_extra_names(m.id, t0() + Duration::days(2), t0() + Duration::days(3)).await;
    assert!(none.expect("names").is_empty());
}

async fn deleting_a_machine_deletes_its_readings(store: Arc<dyn Store>) {
    let m = machine("C-1");
    store.create_machine(&m).await.expect("create");
    store.insert_readings(&[reading(m.id, 15, 1.0)]).await.expect("insert");
    store.delete_machine(m.id).await.expect("delete");
    assert_eq!(store.count_readings(None).await.expect("count"), 0);
}

#[tokio::test]
async fn unsupported_urls_are_refused() {
    assert!(matches!(enms_store::connect("mysql://x").await, Err(StoreError::UnsupportedUrl(_))));
}

fn logged(ms: u64, seq: u64) -> enms_core::event::Event {
    enms_core::event::Event {
        event_type: enms_core::event::EventType::SystemAlert,
        id: enms_core::event::EventId { ms, seq },
        timestamp: t0(),
        data: serde_json::json!({"event_type": "system_alert", "alert_type": "t", "message": "m", "severity": "info"}),
    }
}

async fn the_event_log_pages_by_id_and_prunes_with_a_floor(store: Arc<dyn Store>) {
    use enms_core::event::EventId;
    assert_eq!(store.last_event_id().await.expect("last"), None);
    let events: Vec<_> = [(10, 0), (10, 1), (20, 0), (30, 0)].into_iter().map(|(m, s)| logged(m, s)).collect();
    store.append_events(&events).await.expect("append");
    store.append_events(&events[..1]).await.expect("appending again is harmless");
    let after = store.events_after(EventId { ms: 10, seq: 0 }, 2).await.expect("page");
    assert_eq!(
        after.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![EventId { ms: 10, seq: 1 }, EventId { ms: 20, seq: 0 }]
    );
    assert_eq!(store.event_log_floor().await.expect("floor"), None);

    assert_eq!(store.prune_events(EventId { ms: 25, seq: 0 }).await.expect("prune"), 3);
    assert_eq!(store.event_log_floor().await.expect("floor"), Some(EventId { ms: 20, seq: 0 }));
    let rest = store.events_after(EventId::default(), 10).await.expect("rest");
    assert_eq!(rest.len(), 1);
    assert_eq!(store.prune_events(EventId { ms: 25, seq: 0 }).await.expect("nothing left to prune"), 0);
    assert_eq!(store.event_log_floor().await.expect("floor"), Some(EventId { ms: 20, seq: 0 }), "floor stays");
    assert_eq!(store.last_event_id().await.expect("last"), Some(EventId { ms: 30, seq: 0 }));
}

fn model_record(machine: Uuid, kind: &str) -> enms_store::ModelRecord {
    enms_store::ModelRecord {
        id: Uuid::new_v4(),
        machine_id: machine,
        model_type: kind.into(),
        version: 0,
        active: false,
        created_at: t0(),
        job_id: None,
        metrics: serde_json::json!({"r_squared": 0.9}),
        body: serde_json::json!({"coefficients": [1.0, 2.0]}),
    }
}

async fn models_are_versioned_and_one_is_active(store: Arc<dyn Store>) {
    let m = Uuid::new_v4();
    let (a, b, other) = (model_record(m, "baseline"), model_record(m, "baseline"), model_record(m, "anomaly"));
    assert_eq!(store.insert_model(&a).await.unwrap(), 1);
    assert_eq!(store.insert_model(&b).await.unwrap(), 2);
    assert_eq!(store.insert_model(&other).await.unwrap(), 1, "versions count per type");
    assert!(store.active_model(m, "baseline").await.unwrap().is_none());
    assert!(store.activate_model(a.id).await.unwrap());
    assert!(store.activate_model(other.id).await.unwrap());
    assert!(store.activate_model(b.id).await.unwrap());
    let active = store.active_model(m, "baseline").await.unwrap().unwrap();
    assert_eq!((active.id, active.version, &active.body), (b.id, 2, &b.body));
    assert_eq!(store.active_model(m, "anomaly").await.unwrap().unwrap().id, other.id, "other type untouched");
    let list = store.list_models(Some(m), Some("baseline")).await.unwrap();
    assert_eq!(list.iter().map(|r| (r.version, r.active)).collect::<Vec<_>>(), vec![(2, true), (1, false)]);
    assert!(!store.activate_model(Uuid::new_v4()).await.unwrap());
}

async fn anomalies_are_stored_once_per_reading(store: Arc<dyn Store>) {
    let m = Uuid::new_v4();
    let anomaly = |minutes: i64| enms_store::AnomalyRecord {
        id: Uuid::new_v4(),
        machine_id: m,
        timestamp: t0() + Duration::minutes(minutes),
        metric: "power_kw".into(),
        severity: "critical".into(),
        anomaly_type: "spike".into(),
        value: 90.0,
        expected_value: 40.0,
        anomaly_score: -0.7,
        deviation: 12.0,
        source: "batch".into(),
        model_id: None,
        detected_at: t0(),
        acknowledged_at: None,
        acknowledged_by: None,
        note: None,
    };
    let first = store.insert_anomalies(&[anomaly(15), anomaly(30)]).await.unwrap();
    assert_eq!(first.len(), 2);
    let again = store.insert_anomalies(&[anomaly(30), anomaly(45)]).await.unwrap();
    assert_eq!(again.iter().map(|a| a.timestamp).collect::<Vec<_>>(), vec![t0() + Duration::minutes(45)]);
    let q = enms_store::AnomalyQuery { machine_id: Some(m), limit: 10, ..Default::default() };
    assert_eq!(store.list_anomalies(&q).await.unwrap().len(), 3);
    let id = first[0].id;
    assert!(store.acknowledge_anomaly(id, "alice", Some("valve replaced"), t0()).await.unwrap());
    assert!(store.acknowledge_anomaly(id, "bob", None, t0() + Duration::hours(1)).await.unwrap());
    let acked = store.get_anomaly(id).await.unwrap().unwrap();
    assert_eq!((acked.acknowledged_by.as_deref(), acked.acknowledged_at), (Some("alice"), Some(t0())));
    assert_eq!(acked.note.as_deref(), Some("valve replaced"));
}

fn job_record(machine: Uuid, kind: &str, status: enms_store::JobStatus) -> enms_store::JobRecord {
    enms_store::JobRecord {
        id: Uuid::new_v4(),
        machine_id: machine,
        model_type: kind.into(),
        trigger_type: "manual".into(),
        reason: None,
        status,
        progress_pct: 0.0,
        message: String::new(),
        params: serde_json::json!({"lookback_days": 7}),
        created_at: t0(),
        started_at: None,
        finished_at: None,
        error_message: None,
        model_id: None,
        metrics: None,
        owner: Some("instance-a".into()),
        lease_until: Some(t0() + Duration::seconds(30)),
    }
}

async fn one_unfinished_job_per_machine_and_type(store: Arc<dyn Store>) {
    use enms_store::JobStatus;
    let m = Uuid::new_v4();
    let mut first = job_record(m, "baseline", JobStatus::Queued);
    store.save_job(&first).await.expect("first");
    let second = job_record(m, "baseline", JobStatus::Queued);
    assert!(matches!(store.save_job(&second).await, Err(StoreError::JobConflict { .. })));
    store.save_job(&job_record(m, "anomaly", JobStatus::Queued)).await.expect("another type is free");
    first.status = JobStatus::Running;
    first.progress_pct = 40.0;
    store.save_job(&first).await.expect("updating the same job");
    first.status = JobStatus::Completed;
    store.save_job(&first).await.expect("finish");
    store.save_job(&second).await.expect("free again once the first finished");
    let saved = store.get_job(first.id).await.expect("get").expect("exists");
    assert_eq!((saved.status, saved.progress_pct), (JobStatus::Completed, 40.0));
    assert_eq!(saved.params, first.params);
}

async fn stale_jobs_are_claimed_once(store: Arc<dyn Store>) {
    use enms_store::JobStatus;
    let now = t0() + Duration::minutes(5);
    let (m1, m2, m3) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let live = job_record(m1, "baseline", JobStatus::Running);
    let mut dead = job_record(m2, "baseline", JobStatus::Running);
    dead.owner = Some("instance-b".into());
    let mut orphan = job_record(m3, "anomaly", JobStatus::Queued);
    orphan.owner = None;
    orphan.lease_until = None;
    let mut done = job_record(m3, "baseline", JobStatus::Completed);
    done.lease_until = None;
    for j in [&live, &dead, &orphan, &done] {
        store.save_job(j).await.expect("save");
    }
    // instance-a is alive: it renews; instance-b stopped renewing.
    assert_eq!(store.renew_job_leases("instance-a", now + Duration::seconds(30)).await.expect("renew"), 1);
    let claimed = store.claim_stale_jobs("instance-c", now, now + Duration::seconds(30)).await.expect("claim");
    let mut ids: Vec<Uuid> = claimed.iter().map(|j| j.id).collect();
    ids.sort();
    let mut expected = vec![dead.id, orphan.id];
    expected.sort();
    assert_eq!(ids, expected, "only the expired and the unowned unfinished jobs");
    assert!(claimed.iter().all(|j| j.owner.as_deref() == Some("instance-c")));
    let again = store.claim_stale_jobs("instance-d", now, now + Duration::seconds(30)).await.expect("claim again");
    assert!(again.is_empty(), "a claimed job is not handed out twice: {again:?}");
}

async fn a_scheduled_run_is_claimed_once(store: Arc<dyn Store>) {
    let slot = t0() + Duration::hours(1);
    assert!(store.claim_scheduled_run("detect", slot, "a").await.expect("claim"));
    assert!(!store.claim_scheduled_run("detect", slot, "b").await.expect("claim"));
    assert!(store.claim_scheduled_run("retrain", slot, "b").await.expect("another schedule"));
    assert!(store.claim_scheduled_run("detect", slot + Duration::hours(1), "b").await.expect("next slot"));
}

async fn bulk_ingest_keeps_the_last_duplicate(store: Arc<dyn Store>) {
    let m = machine("C-9");
    store.create_machine(&m).await.expect("create");
    // More rows than one statement takes, with a repeated timestamp.
    let mut batch: Vec<_> = (0..25_000).map(|i| reading(m.id, i, 1.0)).collect();
    batch.push(reading(m.id, 7, 99.0));
    store.insert_readings(&batch).await.expect("insert");
    assert_eq!(store.count_readings(Some(m.id)).await.expect("count"), 25_000);
    let q = ReadingQuery {
        machine_id: m.id,
        start: t0() + Duration::minutes(7),
        end: t0() + Duration::minutes(8),
        resolution: Resolution::Raw,
        limit: 10,
    };
    assert_eq!(store.query_readings(&q).await.expect("query")[0].power_kw, 99.0);
}

async fn tokens_are_found_by_hash_named_once_and_revoked(store: Arc<dyn Store>) {
    use enms_core::access::{Role, TokenRecord};
    let token = |name: &str, hash: &str, role| TokenRecord {
        id: Uuid::new_v4(),
        name: name.to_owned(),
        role,
        hash: hash.to_owned(),
        created_at: t0(),
        revoked_at: None,
    };
    let ops = token("ops", "aa11", Role::Operator);
    store.create_token(&ops).await.expect("create");
    store.create_token(&token("grafana", "bb22", Role::Viewer)).await.expect("create");
    let dup = store.create_token(&token("OPS", "cc33", Role::Admin)).await;
    assert!(matches!(dup, Err(StoreError::Conflict { field: "name", .. })), "{dup:?}");
    assert_eq!(store.find_token("aa11").await.expect("find"), Some(ops.clone()));
    assert_eq!(store.find_token("cc33").await.expect("find"), None, "the refused token was not stored");
    assert_eq!(store.list_tokens().await.expect("list").len(), 2);
    assert!(store.revoke_token(ops.id, t0() + Duration::hours(1)).await.expect("revoke"));
    assert!(!store.revoke_token(ops.id, t0()).await.expect("revoke twice"), "already revoked");
    let found = store.find_token("aa11").await.expect("find").expect("still listed");
    assert_eq!(found.revoked_at, Some(t0() + Duration::hours(1)));
    assert!(!found.is_active());
}

async fn users_lock_out_after_failures_and_sessions_end(store: Arc<dyn Store>) {
    use enms_core::access::{Role, SessionRecord, UserRecord};
    let user = |name: &str| UserRecord {
        id: Uuid::new_v4(),
        name: name.to_owned(),
        role: Role::Operator,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        created_at: t0(),
        failed_logins: 0,
        locked_until: None,
        last_login_at: None,
        disabled_at: None,
    };
    let ada = user("ada");
    store.create_user(&ada).await.expect("create");
    store.create_user(&user("grace")).await.expect("create");
    let dup = store.create_user(&user("ADA")).await;
    assert!(matches!(dup, Err(StoreError::Conflict { field: "name", .. })), "{dup:?}");
    assert_eq!(store.find_user("Ada").await.expect("find"), Some(ada.clone()), "names match case-insensitively");
    assert_eq!(store.get_user(ada.id).await.expect("get"), Some(ada.clone()));
    let names: Vec<_> = store.list_users().await.expect("list").into_iter().map(|u| u.name).collect();
    assert_eq!(names, ["ada", "grace"]);

    // Three failures with a limit of three: the third locks and restarts the count.
    let until = t0() + Duration::minutes(15);
    for n in 1..=2 {
        let u = store.record_failed_login(ada.id, 3, until).await.expect("count").expect("known");
        assert_eq!((u.failed_logins, u.locked_until), (n, None));
    }
    let locked = store.record_failed_login(ada.id, 3, until).await.expect("count").expect("known");
    assert_eq!((locked.failed_logins, locked.locked_until), (0, Some(until)));
    assert!(locked.is_locked(t0()) && !locked.is_locked(until));
    assert_eq!(store.record_failed_login(Uuid::new_v4(), 3, until).await.expect("unknown"), None);

    // Concurrent failures all count (two below the limit of 10).
    let counts = futures_util::future::join_all((0..8).map(|_| store.record_failed_login(ada.id, 10, until))).await;
    assert!(counts.iter().all(|c| c.is_ok()));
    assert_eq!(store.get_user(ada.id).await.unwrap().unwrap().failed_logins, 8);

    // A session starts, clearing the count and the lock, and ends by revocation.
    let session = |hash: &str, created: DateTime<Utc>| SessionRecord {
        id: Uuid::new_v4(),
        user_id: ada.id,
        hash: hash.to_owned(),
        created_at: created,
        expires_at: created + Duration::hours(12),
        revoked_at: None,
    };
    let old = session("0ld", t0() - Duration::days(60));
    store.start_session(&old).await.expect("old session");
    let s = session("5e55", t0());
    store.start_session(&s).await.expect("start");
    let after = store.get_user(ada.id).await.unwrap().unwrap();
    assert_eq!((after.failed_logins, after.locked_until, after.last_login_at), (0, None, Some(t0())));
    assert_eq!(store.find_session("5e55").await.expect("find"), Some(s.clone()));
    assert_eq!(store.find_session("0ld").await.expect("find"), None, "long-ended sessions are deleted on sign-in");
    assert!(store.revoke_session(s.id, t0() + Duration::hours(1)).await.expect("revoke"));
    assert!(!store.revoke_session(s.id, t0()).await.expect("twice"), "already revoked");
    assert_eq!(store.find_session("5e55").await.unwrap().unwrap().revoked_at, Some(t0() + Duration::hours(1)));

    // Disabling the user ends every live session with the same write.
    let live = session("11fe", t0() + Duration::hours(2));
    store.start_session(&live).await.expect("start");
    let mut disabled = store.get_user(ada.id).await.unwrap().unwrap();
    disabled.disabled_at = Some(t0() + Duration::hours(3));
    disabled.role = Role::Viewer;
    assert!(store.update_user(&disabled, Some(t0() + Duration::hours(3))).await.expect("update"));
    assert_eq!(store.get_user(ada.id).await.unwrap().unwrap(), disabled);
    assert_eq!(store.find_session("11fe").await.unwrap().unwrap().revoked_at, Some(t0() + Duration::hours(3)));
    let mut ghost = user("ghost");
    ghost.id = Uuid::new_v4();
    assert!(!store.update_user(&ghost, None).await.expect("unknown"));
    let orphan = SessionRecord { user_id: Uuid::new_v4(), ..session("0rf", t0()) };
    assert!(store.start_session(&orphan).await.is_err(), "a session needs its user");
    assert_eq!(store.find_session("0rf").await.expect("find"), None);
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite_backend {
            $(
                #[tokio::test]
                async fn $name() {
                    let (_dir, store) = super::sqlite().await;
                    super::$name(store).await;
                }
            )*
        }
        mod postgres_backend {
            $(
                #[tokio::test]
                async fn $name() {
                    let db = super::Pg::new().await;
                    super::$name(db.store().await).await;
                    db.drop().await;
                }
            )*
        }
    };
}

async fn episodes_are_upserted_by_id_and_listed_by_overlap(store: Arc<dyn Store>) {
    let m = Uuid::new_v4();
    let episode = |minutes: i64, len: i64, open: bool| enms_store::EpisodeRecord {
        id: Uuid::from_u64_pair(m.as_u64_pair().0, minutes as u64),
        machine_id: m,
        anomaly_type: "spike".into(),
        severity: "warning".into(),
        start: t0() + Duration::minutes(minutes),
        end: t0() + Duration::minutes(minutes + len),
        peak_at: t0() + Duration::minutes(minutes),
        peak_score: 0.999,
        signal: "power_kw".into(),
        peak_value: 90.0,
        peak_expected: 40.0,
        count: 1,
        actual_kwh: Some(22.5),
        expected_kwh: None,
        open,
        source: "stream".into(),
        updated_at: t0(),
    };
    store.upsert_episodes(&[episode(0, 30, false), episode(120, 15, true)]).await.unwrap();
    // The open one grows and escalates: the same id, updated in place.
    let mut grown = episode(120, 60, false);
    grown.severity = "critical".into();
    grown.count = 5;
    store.upsert_episodes(&[grown.clone()]).await.unwrap();
    let all = enms_store::EpisodeQuery { machine_id: Some(m), limit: 10, ..Default::default() };
    let listed = store.list_episodes(&all).await.unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0], grown, "latest start first, every field kept");
    assert_eq!(listed[1], episode(0, 30, false));
    // Overlap: an episode counts when it ends at or after `since` and starts before `until`.
    let window = |since: i64, until: i64| enms_store::EpisodeQuery {
        machine_id: Some(m),
        since: Some(t0() + Duration::minutes(since)),
        until: Some(t0() + Duration::minutes(until)),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(store.list_episodes(&window(20, 60)).await.unwrap().len(), 1);
    assert_eq!(store.list_episodes(&window(31, 120)).await.unwrap().len(), 0);
    assert_eq!(store.list_episodes(&window(150, 400)).await.unwrap()[0].id, grown.id);
    let critical = enms_store::EpisodeQuery { severity: Some("critical".into()), ..all.clone() };
    assert_eq!(store.list_episodes(&critical).await.unwrap().len(), 1);
    let one = enms_store::EpisodeQuery { id: Some(grown.id), ..all.clone() };
    assert_eq!(store.list_episodes(&one).await.unwrap(), vec![grown.clone()], "one by its id");
    let open = enms_store::EpisodeQuery { open: Some(true), ..all };
    assert!(store.list_episodes(&open).await.unwrap().is_empty());
}

fn notification(key: &str, due: DateTime<Utc>) -> enms_store::NotificationRecord {
    enms_store::NotificationRecord {
        id: Uuid::new_v4(),
        key: key.into(),
        channel: "ops".into(),
        kind: "firing".into(),
        rule: Some("r".into()),
        alert_id: Some("r/episode:1".into()),
        event_id: Some("1-0".into()),
        title: format!("title {key}"),
        body: serde_json::json!({"k": key}),
        status: enms_store::DeliveryStatus::Pending,
        attempts: 0,
        created_at: due,
        next_attempt_at: due,
        delivered_at: None,
        last_error: None,
    }
}

async fn the_outbox_stores_once_claims_once_and_keeps_every_attempt(store: Arc<dyn Store>) {
    use enms_store::{AttemptResult, DeliveryAttempt, DeliveryStatus, NotificationQuery};
    let now = t0();
    let a = notification("a", now);
    let later = notification("b", now + Duration::minutes(5));
    let stored = store.enqueue_notifications(&[a.clone(), later.clone()]).await.unwrap();
    assert_eq!(stored, vec![a.id, later.id]);
    // The same key again (a re-read event, a second instance): not stored.
    let again = store.enqueue_notifications(&[notification("a", now)]).await.unwrap();
    assert!(again.is_empty());
    assert_eq!(store.next_notification_due().await.unwrap(), Some(now));

    // Only what is due, and only once while the claim lives.
    let until = now + Duration::seconds(30);
    let claimed = store.claim_notifications("i1", now, until, 10).await.unwrap();
    assert_eq!(claimed.iter().map(|n| n.id).collect::<Vec<_>>(), vec![a.id]);
    assert_eq!(claimed[0].body, serde_json::json!({"k": "a"}));
    assert!(store.claim_notifications("i2", now, until, 10).await.unwrap().is_empty());

    // A failed attempt: pending again, due later, claim released.
    let retry_at = now + Duration::seconds(2);
    let failed = AttemptResult {
        attempt: DeliveryAttempt {
            notification_id: a.id,
            attempt: 1,
            at: now,
            duration_ms: 12,
            ok: false,
            status_code: Some(500),
            error: Some("HTTP 500".into()),
        },
        status: DeliveryStatus::Pending,
        next_attempt_at: retry_at,
    };
    store.finish_attempt(&failed).await.unwrap();
    assert!(store.claim_notifications("i2", now, until, 10).await.unwrap().is_empty(), "not due yet");
    let second = store.claim_notifications("i2", retry_at, retry_at + Duration::seconds(30), 10).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].attempts, 1);
    assert_eq!(second[0].last_error.as_deref(), Some("HTTP 500"));
    let mut ok = failed.clone();
    ok.attempt.attempt = 2;
    ok.attempt.at = retry_at;
    ok.attempt.ok = true;
    ok.attempt.status_code = Some(200);
    ok.attempt.error = None;
    ok.status = DeliveryStatus::Delivered;
    store.finish_attempt(&ok).await.unwrap();
    let done = store.get_notification(a.id).await.unwrap().expect("stored");
    assert_eq!((done.status, done.attempts, done.delivered_at), (DeliveryStatus::Delivered, 2, Some(retry_at)));
    assert!(
        store
            .claim_notifications("i3", now + Duration::hours(1), until, 10)
            .await
            .unwrap()
            .iter()
            .all(|n| n.id != a.id)
    );

    let attempts = store.notification_attempts(&[a.id, later.id]).await.unwrap();
    assert_eq!(
        attempts.iter().map(|t| (t.attempt, t.ok, t.status_code)).collect::<Vec<_>>(),
        vec![(1, false, Some(500)), (2, true, Some(200))]
    );
    let delivered = NotificationQuery { status: Some(DeliveryStatus::Delivered), limit: 10, ..Default::default() };
    assert_eq!(store.list_notifications(&delivered).await.unwrap().len(), 1);
    let all = NotificationQuery { limit: 10, ..Default::default() };
    assert_eq!(store.list_notifications(&all).await.unwrap()[0].id, later.id, "newest first");
    let other = NotificationQuery { channel: Some("mail".into()), limit: 10, ..Default::default() };
    assert!(store.list_notifications(&other).await.unwrap().is_empty());

    // Alerts: stored once, updated in place, open until resolved.
    let mut alert = enms_store::AlertRecord {
        id: "r/episode:1".into(),
        rule: "r".into(),
        subject: "episode:1".into(),
        anomaly_id: Some(Uuid::new_v4()),
        machine_id: None,
        severity: "warning".into(),
        title: "Compressor-1 spike".into(),
        opened_at: now,
        acknowledged_at: None,
        acknowledged_by: None,
        resolved_at: None,
        data: serde_json::json!({"severity": "warning"}),
    };
    assert!(store.insert_alert(&alert).await.unwrap());
    assert!(!store.insert_alert(&alert).await.unwrap());
    alert.severity = "critical".into();
    alert.acknowledged_at = Some(now + Duration::minutes(1));
    alert.acknowledged_by = Some("ana".into());
    assert!(store.update_alert(&alert).await.unwrap());
    assert_eq!(store.get_alert(&alert.id).await.unwrap(), Some(alert.clone()));
    assert_eq!(store.list_alerts(true, 10).await.unwrap().len(), 1);
    alert.resolved_at = Some(now + Duration::minutes(2));
    store.update_alert(&alert).await.unwrap();
    assert!(store.list_alerts(true, 10).await.unwrap().is_empty());
    assert_eq!(store.list_alerts(false, 10).await.unwrap().len(), 1);

    assert_eq!(store.cursor("notify").await.unwrap(), None);
    store.set_cursor("notify", "5-0").await.unwrap();
    store.set_cursor("notify", "7-1").await.unwrap();
    assert_eq!(store.cursor("notify").await.unwrap().as_deref(), Some("7-1"));
}

fn incident(machine: Uuid, kind: &str) -> enms_store::IncidentRecord {
    enms_store::IncidentRecord {
        id: Uuid::new_v4(),
        machine_id: machine,
        anomaly_type: kind.into(),
        state: "open".into(),
        severity: "warning".into(),
        title: format!("{kind} on a machine"),
        assignee: None,
        opened_at: t0(),
        acknowledged_at: None,
        acknowledged_by: None,
        resolved_at: None,
        resolved_by: None,
        resolution: None,
        episode_count: 1,
        open_episodes: vec![Uuid::new_v4()],
        last_activity_at: t0(),
        updated_at: t0(),
        version: 1,
    }
}

fn entry(i: &enms_store::IncidentRecord, kind: &str, source: Option<&str>, minutes: i64) -> enms_store::IncidentEntry {
    enms_store::IncidentEntry {
        seq: 0,
        incident_id: i.id,
        at: t0() + Duration::minutes(minutes),
        kind: kind.into(),
        actor: "system".into(),
        text: None,
        data: serde_json::json!({"n": minutes}),
        source_event: source.map(str::to_owned),
    }
}

async fn incidents_open_once_change_at_their_version_and_apply_an_event_once(store: Arc<dyn Store>) {
    use enms_store::{IncidentQuery, Saved};
    let m = Uuid::new_v4();
    let mut i = incident(m, "spike");
    assert_eq!(store.save_incident(&i, &entry(&i, "opened", Some("1-0"), 0), None).await.unwrap(), Saved::Written);
    // A second unresolved incident of the same machine and kind is refused.
    let twin = incident(m, "spike");
    let err = store.save_incident(&twin, &entry(&twin, "opened", Some("1-0"), 0), None).await.unwrap_err();
    assert!(matches!(err, enms_store::StoreError::Conflict { .. }), "{err:?}");
    // Another kind is another incident.
    let drift = incident(m, "drift");
    assert_eq!(store.save_incident(&drift, &entry(&drift, "opened", None, 0), None).await.unwrap(), Saved::Written);

    // A change at the version read is written; the event's entry once only.
    let read = store.unresolved_incident(m, "spike").await.unwrap().expect("unresolved");
    assert_eq!(read, i);
    i.severity = "critical".into();
    i.episode_count = 2;
    i.open_episodes.push(Uuid::new_v4());
    i.version = 2;
    assert_eq!(
        store.save_incident(&i, &entry(&i, "escalated", Some("2-0"), 5), Some(1)).await.unwrap(),
        Saved::Written
    );
    let mut again = i.clone();
    again.episode_count = 3;
    again.version = 3;
    assert_eq!(
        store.save_incident(&again, &entry(&i, "escalated", Some("2-0"), 5), Some(2)).await.unwrap(),
        Saved::Duplicate
    );
    // A change made from a version that is no longer current writes nothing.
    let mut stale = i.clone();
    stale.assignee = Some("bob".into());
    stale.version = 2;
    assert_eq!(store.save_incident(&stale, &entry(&i, "assigned", None, 6), Some(1)).await.unwrap(), Saved::Stale);
    let now = store.get_incident(i.id).await.unwrap().expect("stored");
    assert_eq!((now.episode_count, now.severity.as_str(), now.assignee.clone(), now.version), (2, "critical", None, 2));
    let timeline = store.incident_entries(i.id).await.unwrap();
    let kinds: Vec<&str> = timeline.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["opened", "escalated"], "neither the duplicate nor the stale change left an entry");
    assert!(timeline[0].seq < timeline[1].seq);
    assert_eq!(timeline[1].data, serde_json::json!({"n": 5}));

    // Resolved, the machine may open a new incident of that kind.
    let mut done = now.clone();
    done.state = "resolved".into();
    done.resolved_at = Some(t0() + Duration::hours(1));
    done.resolved_by = Some("alice".into());
    done.resolution = Some("manual".into());
    done.open_episodes.clear();
    done.version = 3;
    assert_eq!(store.save_incident(&done, &entry(&done, "resolved", None, 60), Some(2)).await.unwrap(), Saved::Written);
    assert!(store.unresolved_incident(m, "spike").await.unwrap().is_none());
    let mut next = incident(m, "spike");
    next.opened_at = t0() + Duration::hours(2);
    assert_eq!(
        store.save_incident(&next, &entry(&next, "opened", Some("1-0"), 120), None).await.unwrap(),
        Saved::Written
    );

    let all = store.list_incidents(&IncidentQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(all.first().map(|x| x.id), Some(next.id), "newest opened first");
    assert_eq!(all.len(), 3);
    let q = |states: &[&str]| IncidentQuery {
        machine_id: Some(m),
        states: states.iter().map(|s| s.to_string()).collect(),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(store.list_incidents(&q(&["resolved"])).await.unwrap().len(), 1);
    assert_eq!(store.list_incidents(&q(&["open", "acknowledged"])).await.unwrap().len(), 2);
    let critical = IncidentQuery { severity: Some("critical".into()), limit: 10, ..Default::default() };
    assert_eq!(store.list_incidents(&critical).await.unwrap().len(), 1);
    assert!(store.get_incident(Uuid::new_v4()).await.unwrap().is_none());
}

contract!(
    machines_crud_and_name_conflicts,
    ingest_is_idempotent_and_atomic,
    queries_aggregate_in_buckets,
    deleting_a_machine_deletes_its_readings,
    models_are_versioned_and_one_is_active,
    anomalies_are_stored_once_per_reading,
    episodes_are_upserted_by_id_and_listed_by_overlap,
    the_event_log_pages_by_id_and_prunes_with_a_floor,
    one_unfinished_job_per_machine_and_type,
    stale_jobs_are_claimed_once,
    a_scheduled_run_is_claimed_once,
    bulk_ingest_keeps_the_last_duplicate,
    tokens_are_found_by_hash_named_once_and_revoked,
    the_outbox_stores_once_claims_once_and_keeps_every_attempt,
    rollups_equal_a_raw_recomputation_after_any_batches,
    pruned_levels_are_answered_by_the_levels_that_remain,
    hour_cells_equal_a_recomputation_from_raw,
    incidents_open_once_change_at_their_version_and_apply_an_event_once,
    users_lock_out_after_failures_and_sessions_end,
);

/// Two PostgreSQL handles on one schema — two instances — sweeping for stale
/// jobs at the same time split them without overlap.
#[tokio::test]
async fn postgres_instances_split_stale_jobs() {
    use enms_store::JobStatus;
    let db = Pg::new().await;
    let (a, b) = (db.store().await, db.store().await);
    for _ in 0..40 {
        let mut j = job_record(Uuid::new_v4(), "baseline", JobStatus::Queued);
        j.owner = None;
        j.lease_until = None;
        a.save_job(&j).await.expect("save");
    }
    let now = t0();
    let until = now + Duration::seconds(30);
    let (ja, jb) = tokio::join!(a.claim_stale_jobs("a", now, until), b.claim_stale_jobs("b", now, until));
    let (ja, jb) = (ja.expect("a"), jb.expect("b"));
    assert_eq!(ja.len() + jb.len(), 40);
    assert!(ja.iter().all(|j| jb.iter().all(|k| k.id != j.id)));
    db.drop().await;
}

/// Two PostgreSQL handles writing one machine's buckets at the same time
/// keep its rollups exact (a transaction lock per machine orders them).
#[tokio::test]
async fn postgres_instances_writing_one_machine_keep_rollups_exact() {
    let db = Pg::new().await;
    concurrent_writers_lose_no_rollup_count(db.store().await, db.store().await).await;
    db.drop().await;
}
