//! Anomalies: batch detection (`POST /api/v1/anomaly/detect`, and
//! `/detect/{machine_id}`), the recent list, one anomaly, and acknowledging.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use chrono::{Duration, Utc};
use enms_store::{AnomalyQuery, AnomalyRecord};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::analytics::detection::{self, DetectRequest};
use crate::analytics::training::check_contamination;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::{OptionalJsonBody, Params, path_id};
use crate::state::AppState;

/// Longest window one detection request may cover.
const MAX_WINDOW_DAYS: i64 = 92;
const SEVERITIES: [&str; 3] = ["normal", "warning", "critical"];

pub async fn detect(
    State(state): State<AppState>,
    OptionalJsonBody(body): OptionalJsonBody<DetectRequest>,
) -> Result<Json<Value>, ApiError> {
    let machine =
        body.machine_id.ok_or_else(|| ApiError::invalid("missing_field", "machine_id", "machine_id is required"))?;
    run(state, machine, body).await
}

pub async fn detect_machine(
    State(state): State<AppState>,
    Path(id): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<DetectRequest>,
) -> Result<Json<Value>, ApiError> {
    let machine = path_id(&id)?;
    if body.machine_id.is_some_and(|m| m != machine) {
        return Err(ApiError::invalid(
            "machine_mismatch",
            "machine_id",
            "machine_id in the body differs from the path",
        ));
    }
    run(state, machine, body).await
}

async fn run(state: AppState, machine: Uuid, body: DetectRequest) -> Result<Json<Value>, ApiError> {
    let record = state.store.get_machine(machine).await?.ok_or_else(|| ApiError::not_found("machine", machine))?;
    let end = body.end.unwrap_or_else(Utc::now);
    let start = body.start.unwrap_or(end - Duration::hours(24));
    if start >= end {
        return Err(ApiError::invalid("invalid_range", "start", format!("start {start} must be before end {end}")));
    }
    if end - start > Duration::days(MAX_WINDOW_DAYS) {
        return Err(ApiError::invalid(
            "window_too_long",
            "end",
            format!("a window covers at most {MAX_WINDOW_DAYS} days"),
        ));
    }
    let contamination = check_contamination(body.contamination.unwrap_or(0.1))?;
    let use_baseline = body.use_baseline.unwrap_or(false);
    let out = detection::detect(&state.analytics.live, machine, start, end, contamination, use_baseline).await?;
    let mut by_severity = serde_json::Map::new();
    for a in &out.found {
        let n = by_severity.get(&a.severity).and_then(Value::as_u64).unwrap_or(0);
        by_severity.insert(a.severity.clone(), json!(n + 1));
    }
    Ok(Json(json!({
        "machine_id": machine,
        "machine_name": record.name,
        "start": start,
        "end": end,
        "contamination": contamination,
        "use_baseline": use_baseline,
        "baseline_model_id": out.baseline_model_id,
        "readings_analyzed": out.readings,
        "anomalies_detected": out.found.len(),
        "anomalies_saved": out.saved,
        "by_severity": by_severity,
        "anomalies": out.found.iter().take(500).collect::<Vec<_>>(),
    })))
}

pub async fn recent(State(state): State<AppState>, params: Params) -> Result<Json<Vec<AnomalyRecord>>, ApiError> {
    let machine_id = params.uuid("machine_id")?;
    let severity = params.parse("severity", |v| {
        if SEVERITIES.contains(&v) {
            Ok(v.to_owned())
        } else {
            Err("severity must be normal, warning or critical".into())
        }
    })?;
    let time = |v: &str| enms_core::timestamp::parse(v).ok_or_else(|| format!("{v:?} is not an RFC 3339 timestamp"));
    let since = params.parse("since", time)?;
    let until = params.parse("until", time)?;
    if let (Some(s), Some(u)) = (since, until)
        && s >= u
    {
        return Err(ApiError::invalid("invalid_range", "since", "since must be before until"));
    }
    let acknowledged = params.parse("acknowledged", |v| match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("acknowledged must be true or false".into()),
    })?;
    let limit = params.bounded("limit", 50u32, 1000)?;
    let query = AnomalyQuery { machine_id, severity, since, until, acknowledged, limit };
    Ok(Json(state.store.list_anomalies(&query).await?))
}

pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<AnomalyRecord>, ApiError> {
    let id = path_id(&id)?;
    Ok(Json(state.store.get_anomaly(id).await?.ok_or_else(|| ApiError::not_found("anomaly", id))?))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acknowledge {
    pub by: Option<String>,
    pub note: Option<String>,
}

pub async fn acknowledge(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Option<Extension<Principal>>,
    OptionalJsonBody(body): OptionalJsonBody<Acknowledge>,
) -> Result<Json<AnomalyRecord>, ApiError> {
    let id = path_id(&id)?;
    // Without a `by`, a token's name says who acknowledged.
    let named = caller.filter(|c| c.token_id.is_some()).map(|c| c.0.name);
    let by = body.by.or(named).unwrap_or_else(|| "operator".into());
    if by.trim().is_empty() || by.len() > 100 {
        return Err(ApiError::invalid("invalid_field", "by", "by must be 1-100 characters"));
    }
    if body.note.as_ref().is_some_and(|n| n.len() > 2000) {
        return Err(ApiError::invalid("invalid_field", "note", "note is at most 2000 characters"));
    }
    if !state.store.acknowledge_anomaly(id, by.trim(), body.note.as_deref(), Utc::now()).await? {
        return Err(ApiError::not_found("anomaly", id));
    }
    Ok(Json(state.store.get_anomaly(id).await?.ok_or_else(|| ApiError::not_found("anomaly", id))?))
}
