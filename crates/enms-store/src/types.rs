//! Query and result types shared by every backend.

use chrono::{DateTime, Utc};
use enms_core::Resolution;
use serde::Serialize;
use uuid::Uuid;

/// Readings of one machine with `start <= timestamp < end`.
#[derive(Debug, Clone)]
pub struct ReadingQuery {
    pub machine_id: Uuid,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub resolution: Resolution,
    /// Cap on returned points.
    pub limit: u32,
}

/// One raw reading or one aggregated bucket. For a bucket, `timestamp` is its
/// start, `power_kw` the mean and `max_power_kw` the peak; energy and
/// production are sums, temperature a mean.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ReadingPoint {
    pub timestamp: DateTime<Utc>,
    pub power_kw: f64,
    pub max_power_kw: f64,
    pub energy_kwh: f64,
    pub production_units: Option<f64>,
    pub outdoor_temp_c: Option<f64>,
    pub samples: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<std::collections::BTreeMap<String, f64>>)]
    pub extra: Option<serde_json::Value>,
}
