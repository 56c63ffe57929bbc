//! Records of the analytics layer: models, jobs, detected anomalies and
//! their episodes, as every backend stores them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// A trained model. `body` is the fitted model (opaque to storage).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ModelRecord {
    pub id: Uuid,
    pub machine_id: Uuid,
    pub model_type: String,
    /// 1, 2, … per machine and type; assigned by the store on insert.
    pub version: i64,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub job_id: Option<Uuid>,
    pub metrics: serde_json::Value,
    #[serde(skip)]
    #[schema(ignore)]
    pub body: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Queued, Self::Running, Self::Completed, Self::Failed, Self::Cancelled]
            .into_iter()
            .find(|v| v.as_str() == s)
    }

    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct JobRecord {
    pub id: Uuid,
    pub machine_id: Uuid,
    pub model_type: String,
    pub trigger_type: String,
    pub reason: Option<String>,
    pub status: JobStatus,
    pub progress_pct: f64,
    pub message: String,
    pub params: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error_message: Option<String>,
    pub model_id: Option<Uuid>,
    pub metrics: Option<serde_json::Value>,
    /// The instance that queued or runs the job (`None`: nobody; free to take).
    #[serde(skip)]
    #[schema(ignore)]
    pub owner: Option<String>,
    /// Until when `owner`'s claim holds unless renewed.
    #[serde(skip)]
    #[schema(ignore)]
    pub lease_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default)]
pub struct JobQuery {
    pub machine_id: Option<Uuid>,
    pub status: Option<JobStatus>,
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AnomalyRecord {
    pub id: Uuid,
    pub machine_id: Uuid,
    pub timestamp: DateTime<Utc>,
    pub metric: String,
    pub severity: String,
    pub anomaly_type: String,
    pub value: f64,
    pub expected_value: f64,
    pub anomaly_score: f64,
    pub deviation: f64,
    pub source: String,
    pub model_id: Option<Uuid>,
    pub detected_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct AnomalyQuery {
    pub machine_id: Option<Uuid>,
    pub severity: Option<String>,
    /// Readings at or after this time.
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// `Some(false)`: only those not yet acknowledged.
    pub acknowledged: Option<bool>,
    pub limit: u32,
}

/// An anomaly episode: consecutive flagged readings of one machine and one
/// anomaly type. Its readings are the machine's anomalies of that type with
/// a timestamp in `[start, end]`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EpisodeRecord {
    pub id: Uuid,
    pub machine_id: Uuid,
    pub anomaly_type: String,
    /// The highest severity reached.
    pub severity: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub peak_at: DateTime<Utc>,
    pub peak_score: f64,
    /// The contributing signal at the peak, with its actual and expected value.
    pub signal: String,
    pub peak_value: f64,
    pub peak_expected: f64,
    /// Flagged readings.
    pub count: i64,
    pub actual_kwh: Option<f64>,
    pub expected_kwh: Option<f64>,
    /// Still open: the machine has not been normal for the quiet stretch yet.
    pub open: bool,
    /// `stream` or `batch`: what last updated it.
    pub source: String,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct EpisodeQuery {
    /// One episode by its id.
    pub id: Option<Uuid>,
    pub machine_id: Option<Uuid>,
    /// Episodes that end at or after this time…
    pub since: Option<DateTime<Utc>>,
    /// …and start before this one.
    pub until: Option<DateTime<Utc>>,
    pub open: Option<bool>,
    pub severity: Option<String>,
    pub limit: u32,
}
