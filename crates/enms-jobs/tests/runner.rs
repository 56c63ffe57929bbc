//! The job runner on its own: a SQLite store, an outlet that records what
//! it is handed, and a work function of the test's (the runner knows no kind
//! of job, so none is trained here). What a client would notice: one job
//! per machine and type at a time, a full queue refusing without storing
//! half, cancellation of queued and running jobs, jobs of a stopped
//! instance taken over or failed, and each step announced in order.

use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use chrono::Utc;
use enms_core::MachineRecord;
use enms_core::event::EventType;
use enms_jobs::jobs::{Done, JobRequest, Tracker};
use enms_jobs::{AnalyticsConfig, JobError, Jobs, Live, Outlet};
use enms_store::{JobQuery, JobRecord, JobStatus, Store};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(10);

/// Permits that let held jobs finish; each held job takes one.
static RELEASE: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(0));

/// The test's work: `{"hold": true}` runs until released or cancelled,
/// `{"fail": reason}` fails, anything else completes after one step.
fn work<'a>(
    t: &'a mut Tracker,
    cancel: &'a CancellationToken,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Done, String>> + Send + 'a>> {
    Box::pin(async move {
        t.progress(50.0, "halfway".into()).await;
        if t.job.params["hold"] == true {
            tokio::select! {
                permit = RELEASE.acquire() => permit.map_err(|e| e.to_string())?.forget(),
                _ = cancel.cancelled() => return Err("cancelled".into()),
            }
        }
        if let Some(reason) = t.job.params["fail"].as_str() {
            return Err(reason.to_owned());
        }
        Ok(Done { model_id: None, message: "done".into(), metrics: json!({"rows": 1}) })
    })
}

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<(EventType, Value)>>,
    finished: Mutex<Vec<(String, String)>>,
}

#[async_trait::async_trait]
impl Outlet for Recorder {
    async fn publish(&self, event_type: EventType, data: Value) -> Result<(), String> {
        self.events.lock().expect("events").push((event_type, data));
        Ok(())
    }

    fn job_finished(&self, model_type: &str, outcome: &str, _took: Duration) {
        self.finished.lock().expect("finished").push((model_type.to_owned(), outcome.to_owned()));
    }
}

impl Recorder {
    /// (type, status) of every event about `job`, in order.
    fn steps(&self, job: Uuid) -> Vec<(EventType, String)> {
        let events = self.events.lock().expect("events");
        events
            .iter()
            .filter(|(_, d)| d["job_id"] == job.to_string())
            .map(|(t, d)| (*t, d["status"].as_str().unwrap_or_default().to_owned()))
            .collect()
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    outlet: Arc<Recorder>,
    jobs: Jobs,
}

async fn setup(job_queue: usize) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        enms_store::connect(&format!("sqlite://{}", dir.path().join("jobs.db").display())).await.expect("store");
    let outlet = Arc::new(Recorder::default());
    let config = AnalyticsConfig { job_queue, job_concurrency: 1, ..AnalyticsConfig::default() };
    let live = Live::new(store.clone(), outlet.clone());
    let jobs = Jobs::new(store.clone(), outlet.clone(), live, &config, work);
    Setup { _dir: dir, store, outlet, jobs }
}

async fn machine(store: &dyn Store, name: &str) -> Uuid {
    let id = Uuid::new_v4();
    let record = MachineRecord {
        id,
        name: name.into(),
        machine_type: "compressor".into(),
        location: String::new(),
        rated_power_kw: None,
        created_at: Utc::now(),
        last_reading_at: None,
    };
    store.create_machine(&record).await.expect("machine");
    id
}

fn request(machine_id: Uuid, model_type: &str, params: Value) -> JobRequest {
    JobRequest { machine_id, model_type: model_type.into(), trigger_type: "manual".into(), reason: None, params }
}

/// Waits until the stored job reaches `status`.
async fn reaches(store: &dyn Store, id: Uuid, status: JobStatus) -> JobRecord {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let job = store.get_job(id).await.expect("get").expect("stored");
        if job.status == status {
            return job;
        }
        assert!(tokio::time::Instant::now() < deadline, "job {id} is {:?}, not {status:?}", job.status);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_job_runs_to_completion_and_announces_each_step_in_order() {
    let s = setup(8).await;
    let m = machine(s.store.as_ref(), "C-1").await;
    let job = s.jobs.submit(request(m, "anomaly", json!({}))).await.expect("submitted");
    assert_eq!(job.status, JobStatus::Queued);
    let done = tokio::time::timeout(WAIT, s.jobs.wait(job.id)).await.expect("in time").expect("waited");
    assert_eq!((done.status, done.progress_pct, done.metrics), (JobStatus::Completed, 100.0, Some(json!({"rows": 1}))));
    assert_eq!(done.owner.as_deref(), Some(s.jobs.instance()));
    assert_eq!(
        s.outlet.steps(job.id),
        vec![
            (EventType::TrainingStarted, "running".into()),
            (EventType::TrainingProgress, "running".into()),
            (EventType::TrainingCompleted, "completed".into()),
        ]
    );
    assert_eq!(*s.outlet.finished.lock().expect("finished"), vec![("anomaly".to_owned(), "completed".to_owned())]);

    let failed = s.jobs.submit(request(m, "anomaly", json!({"fail": "no data"}))).await.expect("again, once done");
    let failed = s.jobs.wait(failed.id).await.expect("waited");
    assert_eq!((failed.status, failed.error_message.as_deref()), (JobStatus::Failed, Some("no data")));
}

#[tokio::test]
async fn one_job_per_machine_and_type_at_a_time() {
    let s = setup(8).await;
    let m = machine(s.store.as_ref(), "C-1").await;
    let held = s.jobs.submit(request(m, "anomaly", json!({"hold": true}))).await.expect("submitted");
    reaches(s.store.as_ref(), held.id, JobStatus::Running).await;
    match s.jobs.submit(request(m, "anomaly", json!({}))).await {
        Err(JobError::InProgress { machine, model_type }) => assert_eq!((machine, model_type.as_str()), (m, "anomaly")),
        other => panic!("a second anomaly job of C-1 is refused, got {other:?}"),
    }
    assert!(s.jobs.is_busy(m, "anomaly"));
    let other_type = s.jobs.submit(request(m, "baseline", json!({}))).await.expect("another type may queue");
    let stored = s.store.list_jobs(&JobQuery { machine_id: Some(m), status: None, limit: 100 }).await.expect("list");
    assert_eq!(stored.len(), 2, "the refused job was not stored");

    RELEASE.add_permits(1);
    assert_eq!(s.jobs.wait(held.id).await.expect("waited").status, JobStatus::Completed);
    assert_eq!(s.jobs.wait(other_type.id).await.expect("waited").status, JobStatus::Completed);
    assert!(!s.jobs.is_busy(m, "anomaly"));
    s.jobs.submit(request(m, "anomaly", json!({}))).await.expect("free again once it ended");
}

#[tokio::test]
async fn a_full_queue_refuses_and_stores_nothing() {
    // One running, one taken by the dispatcher, one in the queue of one.
    let s = setup(1).await;
    let first = machine(s.store.as_ref(), "C-0").await;
    let held = s.jobs.submit(request(first, "anomaly", json!({"hold": true}))).await.expect("submitted");
    reaches(s.store.as_ref(), held.id, JobStatus::Running).await;
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    for n in 1..=4 {
        let m = machine(s.store.as_ref(), &format!("C-{n}")).await;
        match s.jobs.submit(request(m, "anomaly", json!({}))).await {
            Ok(job) => accepted.push(job.id),
            Err(JobError::QueueFull) => refused.push(m),
            Err(e) => panic!("only QueueFull, got {e:?}"),
        }
    }
    assert!(!refused.is_empty() && accepted.len() <= 2, "accepted {accepted:?}, refused {refused:?}");
    for m in &refused {
        assert!(!s.jobs.is_busy(*m, "anomaly"), "a refused job holds no place");
        let stored =
            s.store.list_jobs(&JobQuery { machine_id: Some(*m), status: None, limit: 100 }).await.expect("list");
        assert!(stored.is_empty(), "a refused job is not stored");
    }
    RELEASE.add_permits(1);
    for id in accepted.into_iter().chain([held.id]) {
        assert_eq!(s.jobs.wait(id).await.expect("waited").status, JobStatus::Completed);
    }
}

#[tokio::test]
async fn queued_and_running_jobs_can_be_cancelled_once() {
    let s = setup(8).await;
    let (a, b) = (machine(s.store.as_ref(), "C-1").await, machine(s.store.as_ref(), "C-2").await);
    let running = s.jobs.submit(request(a, "anomaly", json!({"hold": true}))).await.expect("submitted");
    reaches(s.store.as_ref(), running.id, JobStatus::Running).await;
    let queued = s.jobs.submit(request(b, "anomaly", json!({}))).await.expect("queued behind it");

    let cancelled = s.jobs.cancel(queued.id).await.expect("cancel queued");
    assert_eq!(cancelled.status, JobStatus::Cancelled, "a queued job ends at once");
    s.jobs.cancel(running.id).await.expect("cancel running");
    let ended = s.jobs.wait(running.id).await.expect("waited");
    assert_eq!(ended.status, JobStatus::Cancelled, "a running job stops at its next step");
    assert_eq!(s.outlet.steps(running.id).last().map(|(_, st)| st.as_str()), Some("cancelled"));

    match s.jobs.cancel(running.id).await {
        Err(JobError::Finished { id, status }) => assert_eq!((id, status), (running.id, "cancelled")),
        other => panic!("a finished job cannot be cancelled again, got {other:?}"),
    }
    let unknown = Uuid::new_v4();
    assert!(matches!(s.jobs.cancel(unknown).await, Err(JobError::NotFound { id, .. }) if id == unknown));
    // The skipped queued job never ran.
    assert!(s.outlet.steps(queued.id).iter().all(|(t, _)| *t == EventType::TrainingCompleted));
}

fn abandoned(machine_id: Uuid, status: JobStatus, owner: &str, lease_s: i64) -> JobRecord {
    JobRecord {
        id: Uuid::new_v4(),
        machine_id,
        model_type: "anomaly".into(),
        trigger_type: "manual".into(),
        reason: None,
        status,
        progress_pct: 0.0,
        message: "left behind".into(),
        params: json!({}),
        created_at: Utc::now(),
        started_at: None,
        finished_at: None,
        error_message: None,
        model_id: None,
        metrics: None,
        owner: Some(owner.into()),
        lease_until: Some(Utc::now() + chrono::Duration::seconds(lease_s)),
    }
}

#[tokio::test]
async fn jobs_of_a_stopped_instance_are_taken_over_or_failed_and_live_ones_are_left_alone() {
    let s = setup(8).await;
    let (a, b, c) = (
        machine(s.store.as_ref(), "C-1").await,
        machine(s.store.as_ref(), "C-2").await,
        machine(s.store.as_ref(), "C-3").await,
    );
    let queued = abandoned(a, JobStatus::Queued, "gone", -60);
    let running = abandoned(b, JobStatus::Running, "gone", -60);
    let alive = abandoned(c, JobStatus::Running, "alive-elsewhere", 600);
    for job in [&queued, &running, &alive] {
        s.store.save_job(job).await.expect("save");
    }
    s.jobs.sweep().await.expect("sweep");

    let taken = s.jobs.wait(queued.id).await.expect("waited");
    assert_eq!((taken.status, taken.owner.as_deref()), (JobStatus::Completed, Some(s.jobs.instance())), "run here");
    let failed = s.jobs.wait(running.id).await.expect("waited");
    assert_eq!(failed.status, JobStatus::Failed, "a run cut off midway is not resumed");
    assert!(failed.error_message.as_deref().is_some_and(|m| m.contains("interrupted")), "{failed:?}");

    let untouched = s.store.get_job(alive.id).await.expect("get").expect("stored");
    assert_eq!((untouched.status, untouched.owner.as_deref()), (JobStatus::Running, Some("alive-elsewhere")));
    match s.jobs.cancel(alive.id).await {
        Err(JobError::Elsewhere { id, owner }) => assert_eq!((id, owner.as_str()), (alive.id, "alive-elsewhere")),
        other => panic!("a job another instance runs is cancelled there, got {other:?}"),
    }
}
