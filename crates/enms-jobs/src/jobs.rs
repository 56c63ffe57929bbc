//! The job runner: a bounded queue, a concurrency limit, persisted states
//! (queued → running → completed | failed | cancelled) and the training
//! events that report each step as it happens.
//!
//! One job per machine and model type may be queued or running at a time,
//! across every instance sharing the database (a partial unique index); a
//! second request for the same pair is refused with 409, and the scheduler
//! skips it.
//!
//! Several instances: each job belongs to the instance that queued it, which
//! renews a lease on its unfinished jobs every `LEASE / 3`. Every instance
//! sweeps for jobs whose lease has expired — their instance stopped or was
//! killed — and takes them over, each job going to exactly one sweeper: a
//! job left `running` is failed with a reason (its partial work is gone), a
//! `queued` one is queued again. After a restart of a lone instance this
//! happens once its old leases expire (at most `LEASE`).
//!
//! Cancelling reaches the job's own instance only; a request that lands on
//! another instance for a running job is answered 409 `job_elsewhere`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use enms_core::event::EventType;
use enms_store::{JobRecord, JobStatus, Store, StoreError};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::AnalyticsConfig;
use super::live::Live;
use crate::error::JobError;
use crate::outlet::Outlet;

pub const MODEL_TYPES: [&str; 2] = ["baseline", "anomaly"];
pub const TRIGGER_TYPES: [&str; 3] = ["manual", "scheduled", "drift"];

type Key = (Uuid, String);

/// Runs one claimed job's steps and says how it ended (`Err`: why it
/// failed). Which work a model type stands for is the crate root's to say
/// ([`crate::run_job`]), so the runner knows no kind of job and its tests
/// can hand it their own.
pub type Work = for<'a> fn(
    &'a mut Tracker,
    &'a CancellationToken,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Done, String>> + Send + 'a>>;

#[derive(Clone)]
pub struct Jobs {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    outlet: Arc<dyn Outlet>,
    live: Live,
    queue: mpsc::Sender<Uuid>,
    cancels: Mutex<HashMap<Uuid, CancellationToken>>,
    /// (machine, model type) pairs with a job queued or running.
    busy: Mutex<HashSet<Key>>,
    /// Woken whenever a job finishes.
    finished: tokio::sync::Notify,
    /// This process, as an owner of jobs.
    instance: String,
    work: Work,
}

/// How long a job's claim holds without renewal.
pub const LEASE: std::time::Duration = std::time::Duration::from_secs(30);

fn lease_from(now: chrono::DateTime<Utc>) -> chrono::DateTime<Utc> {
    now + chrono::Duration::from_std(LEASE).unwrap_or(chrono::Duration::seconds(30))
}

/// What a caller asks for.
pub struct JobRequest {
    pub machine_id: Uuid,
    pub model_type: String,
    pub trigger_type: String,
    pub reason: Option<String>,
    pub params: Value,
}

impl Jobs {
    pub fn new(
        store: Arc<dyn Store>,
        outlet: Arc<dyn Outlet>,
        live: Live,
        config: &AnalyticsConfig,
        work: Work,
    ) -> Self {
        let (queue, rx) = mpsc::channel(config.job_queue.max(1));
        let inner = Arc::new(Inner {
            store,
            outlet,
            live,
            queue,
            cancels: Mutex::new(HashMap::new()),
            busy: Mutex::new(HashSet::new()),
            finished: tokio::sync::Notify::new(),
            instance: format!("{}-{}", hostname(), Uuid::new_v4().simple()),
            work,
        });
        tokio::spawn(dispatch(Arc::downgrade(&inner), rx, config.job_concurrency.max(1)));
        Self { inner }
    }

    /// Persists and queues a job; 409 when one for the same machine and type
    /// is already queued or running, 503 when the queue is full.
    pub async fn submit(&self, req: JobRequest) -> Result<JobRecord, JobError> {
        let key = (req.machine_id, req.model_type.clone());
        if !lock(&self.inner.busy).insert(key.clone()) {
            return Err(JobError::InProgress { machine: req.machine_id, model_type: req.model_type });
        }
        let permit = match self.inner.queue.try_reserve() {
            Ok(p) => p,
            Err(_) => {
                lock(&self.inner.busy).remove(&key);
                return Err(JobError::QueueFull);
            }
        };
        let job = JobRecord {
            id: Uuid::new_v4(),
            machine_id: req.machine_id,
            model_type: req.model_type,
            trigger_type: req.trigger_type,
            reason: req.reason,
            status: JobStatus::Queued,
            progress_pct: 0.0,
            message: "queued".into(),
            params: req.params,
            created_at: Utc::now(),
            started_at: None,
            finished_at: None,
            error_message: None,
            model_id: None,
            metrics: None,
            owner: Some(self.inner.instance.clone()),
            lease_until: Some(lease_from(Utc::now())),
        };
        if let Err(e) = self.inner.store.save_job(&job).await {
            lock(&self.inner.busy).remove(&key);
            return Err(e.into());
        }
        lock(&self.inner.cancels).insert(job.id, CancellationToken::new());
        permit.send(job.id);
        Ok(job)
    }

    /// Cancels a queued or running job.
    pub async fn cancel(&self, id: Uuid) -> Result<JobRecord, JobError> {
        let job = self.inner.store.get_job(id).await?.ok_or_else(|| JobError::not_found("training job", id))?;
        if job.status.is_final() {
            return Err(JobError::Finished { id, status: job.status.as_str() });
        }
        let token = lock(&self.inner.cancels).get(&id).cloned();
        match &token {
            Some(token) => token.cancel(),
            None if job.status == JobStatus::Running => {
                return Err(JobError::Elsewhere { id, owner: job.owner.unwrap_or_else(|| "unknown".into()) });
            }
            None => {}
        }
        if job.status == JobStatus::Queued {
            // The dispatcher skips it when its turn comes.
            let mut tracker = Tracker { inner: self.inner.clone(), job };
            tracker.finish_cancelled().await;
            return Ok(tracker.job);
        }
        // A running job stops at its next step and reports it.
        Ok(job)
    }

    /// Takes over the unfinished jobs whose owner stopped renewing them:
    /// running ones fail, queued ones are queued here.
    pub async fn sweep(&self) -> Result<(), StoreError> {
        let now = Utc::now();
        let claimed = self.inner.store.claim_stale_jobs(&self.inner.instance, now, lease_from(now)).await?;
        for job in claimed {
            if job.status == JobStatus::Running {
                let mut tracker = Tracker { inner: self.inner.clone(), job };
                tracker.finish_failed("interrupted: the instance running it stopped; trigger it again".into()).await;
                continue;
            }
            let key = (job.machine_id, job.model_type.clone());
            match self.inner.queue.try_reserve() {
                Ok(permit) if lock(&self.inner.busy).insert(key) => {
                    tracing::info!(job = %job.id, previous = ?job.owner, "queued job taken over");
                    lock(&self.inner.cancels).insert(job.id, CancellationToken::new());
                    permit.send(job.id);
                }
                _ => {
                    let mut tracker = Tracker { inner: self.inner.clone(), job };
                    tracker.finish_failed("could not be queued again after its instance stopped".into()).await;
                }
            }
        }
        Ok(())
    }

    /// Renews this instance's leases and sweeps for abandoned jobs, every
    /// third of a lease, until `stop`.
    pub async fn maintain(self, stop: tokio_util::sync::CancellationToken) {
        let mut tick = tokio::time::interval(LEASE / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => return,
            }
            if let Err(e) = self.inner.store.renew_job_leases(&self.inner.instance, lease_from(Utc::now())).await {
                tracing::warn!(error = %e, "job leases not renewed");
            }
            if let Err(e) = self.sweep().await {
                tracing::warn!(error = %e, "abandoned jobs not swept");
            }
        }
    }

    /// This process's name as an owner of jobs and scheduled runs.
    pub fn instance(&self) -> &str {
        &self.inner.instance
    }

    /// Waits until job `id` has finished and returns its final record.
    pub async fn wait(&self, id: Uuid) -> Result<JobRecord, JobError> {
        loop {
            let notified = self.inner.finished.notified();
            let job = self.inner.store.get_job(id).await?.ok_or_else(|| JobError::not_found("training job", id))?;
            if job.status.is_final() {
                return Ok(job);
            }
            notified.await;
        }
    }

    /// Whether a job for this machine and type is queued or running.
    pub fn is_busy(&self, machine_id: Uuid, model_type: &str) -> bool {
        lock(&self.inner.busy).contains(&(machine_id, model_type.to_owned()))
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "enms".into())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn dispatch(inner: std::sync::Weak<Inner>, mut rx: mpsc::Receiver<Uuid>, concurrency: usize) {
    let slots = Arc::new(Semaphore::new(concurrency));
    while let Some(id) = rx.recv().await {
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        let Some(inner) = inner.upgrade() else { return };
        tokio::spawn(async move {
            run(inner, id).await;
            drop(permit);
        });
    }
}

async fn run(inner: Arc<Inner>, id: Uuid) {
    let token = lock(&inner.cancels).get(&id).cloned().unwrap_or_default();
    let job = match inner.store.get_job(id).await {
        Ok(Some(job)) => job,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(job = %id, error = %e, "could not load the job");
            return;
        }
    };
    if job.status != JobStatus::Queued || token.is_cancelled() {
        release(&inner, &job);
        return;
    }
    let mut tracker = Tracker { inner: inner.clone(), job };
    tracker.start().await;
    let outcome = (inner.work)(&mut tracker, &token).await;
    match outcome {
        _ if token.is_cancelled() => tracker.finish_cancelled().await,
        Ok(done) => tracker.finish_completed(done).await,
        Err(reason) => tracker.finish_failed(reason).await,
    }
}

fn release(inner: &Inner, job: &JobRecord) {
    lock(&inner.busy).remove(&(job.machine_id, job.model_type.clone()));
    lock(&inner.cancels).remove(&job.id);
    inner.finished.notify_waiters();
}

/// What a finished job hands back.
pub struct Done {
    /// The model trained; `None` for detection jobs.
    pub model_id: Option<Uuid>,
    pub message: String,
    pub metrics: Value,
}

/// A running job: persists each step and publishes it.
pub struct Tracker {
    inner: Arc<Inner>,
    pub job: JobRecord,
}

impl Tracker {
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    pub fn outlet(&self) -> &Arc<dyn Outlet> {
        &self.inner.outlet
    }

    pub fn live(&self) -> &Live {
        &self.inner.live
    }

    async fn start(&mut self) {
        self.job.status = JobStatus::Running;
        self.job.started_at = Some(Utc::now());
        self.job.message = "started".into();
        self.save_and_publish(EventType::TrainingStarted, json!({})).await;
    }

    /// Reports a step that has just happened.
    pub async fn progress(&mut self, pct: f64, message: String) {
        self.job.progress_pct = pct;
        self.job.message = message;
        self.save_and_publish(EventType::TrainingProgress, json!({})).await;
    }

    async fn finish_completed(&mut self, done: Done) {
        self.job.status = JobStatus::Completed;
        self.job.progress_pct = 100.0;
        self.job.message = done.message;
        self.job.model_id = done.model_id;
        self.job.metrics = Some(done.metrics.clone());
        self.finish(json!({"metrics": done.metrics})).await;
    }

    async fn finish_failed(&mut self, reason: String) {
        tracing::warn!(job = %self.job.id, %reason, "training job failed");
        self.job.status = JobStatus::Failed;
        self.job.message = "failed".into();
        self.job.error_message = Some(reason.clone());
        self.finish(json!({"error_message": reason})).await;
    }

    async fn finish_cancelled(&mut self) {
        self.job.status = JobStatus::Cancelled;
        self.job.message = "cancelled".into();
        self.finish(json!({})).await;
    }

    async fn finish(&mut self, extra: Value) {
        let now = Utc::now();
        self.job.finished_at = Some(now);
        let took = self.job.started_at.and_then(|s| (now - s).to_std().ok()).unwrap_or_default();
        self.inner.outlet.job_finished(&self.job.model_type, self.job.status.as_str(), took);
        self.save_and_publish(EventType::TrainingCompleted, extra).await;
        release(&self.inner, &self.job);
    }

    async fn save_and_publish(&mut self, kind: EventType, extra: Value) {
        // Each step also renews the claim, so a long step is never mistaken
        // for a dead instance between two renewals.
        self.job.owner = Some(self.inner.instance.clone());
        self.job.lease_until = Some(lease_from(Utc::now()));
        if let Err(e) = self.inner.store.save_job(&self.job).await {
            tracing::error!(job = %self.job.id, error = %e, "job state not saved");
        }
        let mut data = json!({
            "job_id": self.job.id.to_string(),
            "machine_id": self.job.machine_id,
            "model_type": self.job.model_type,
            "progress_pct": self.job.progress_pct,
            "status": self.job.status.as_str(),
            "message": self.job.message,
        });
        if let (Some(d), Value::Object(extra)) = (data.as_object_mut(), extra) {
            d.extend(extra);
        }
        if let Err(e) = self.inner.outlet.publish(kind, data).await {
            tracing::warn!(job = %self.job.id, error = %e, "training event not published");
        }
    }
}
