//! Hosts' samples: `GET /api/v1/hosts` (every host with its newest sample)
//! and the seed monitor's `GET /api/metrics/current` and
//! `GET /api/metrics/history`, answered in its flat JSON
//! (`enms_core::host::FlatSample`).
//!
//! A host is a machine of type `host`; its samples are its readings, so
//! these routes read the readings table like any other and reshape.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Duration, Utc};
use enms_core::Resolution;
use enms_core::host::FlatSample;
use enms_store::ReadingQuery;
use serde::Serialize;
use uuid::Uuid;

use crate::error::{ApiError, Code, ErrorResponse};
use crate::extract::Params;
use crate::hosts::{chosen, flat, hosts_of, latest, newest};
use crate::state::AppState;

/// The longest history answered at once.
const MAX_HISTORY_DAYS: i64 = 31;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Host {
    pub machine_id: Uuid,
    pub name: String,
    pub rated_power_kw: Option<f64>,
    pub last_reading_at: Option<DateTime<Utc>>,
    /// The newest sample; absent before the first.
    pub latest: Option<FlatSample>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct HostHistory {
    pub machine_id: Uuid,
    pub host: String,
    /// Oldest first.
    pub samples: Vec<FlatSample>,
    /// True when the window holds more samples than `limit`: ask again from
    /// the last one's timestamp.
    pub truncated: bool,
}

/// Every host, with its newest sample.
#[utoipa::path(get, path = "/api/v1/hosts", tag = "hosts", operation_id = "list_hosts",
    responses((status = 200, description = "Hosts by name, each with its newest sample", body = Vec<Host>)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<Host>>, ApiError> {
    let mut hosts = Vec::new();
    for m in hosts_of(&state).await? {
        let latest = latest(&state, &m).await?;
        hosts.push(Host {
            machine_id: m.id,
            name: m.name,
            rated_power_kw: m.rated_power_kw,
            last_reading_at: m.last_reading_at,
            latest,
        });
    }
    hosts.sort_by_key(|h| h.name.to_lowercase());
    Ok(Json(hosts))
}

/// The seed's `GET /api/metrics/current`.
#[utoipa::path(get, path = "/api/metrics/current", tag = "seed compatibility", operation_id = "seed_metrics_current",
    description = "The newest host sample as the seed monitor's flat JSON (`timestamp`, `cpu_percent`, \
        `memory_percent`, …). Without `host`, the host that sampled last.",
    params(("host" = Option<String>, Query, description = "A host's machine name")),
    responses(
        (status = 200, description = "The newest sample", body = FlatSample),
        (status = 404, description = "No such host (`unknown_host`), or no sample yet (`no_samples`)", body = ErrorResponse),
    ))]
pub async fn current(State(state): State<AppState>, params: Params) -> Result<Json<FlatSample>, ApiError> {
    newest(&state, &params).await.map(Json)
}

/// The seed's `GET /api/metrics/history`.
#[utoipa::path(get, path = "/api/metrics/history", tag = "seed compatibility", operation_id = "seed_metrics_history",
    description = "A host's samples between `start` and `end` (default: the hour up to now), oldest first, \
        in the flat JSON of `/api/metrics/current`.",
    params(
        ("host" = Option<String>, Query, description = "A host's machine name; default: the host that sampled last"),
        ("start" = Option<DateTime<Utc>>, Query, description = "RFC 3339; default: an hour before `end`"),
        ("end" = Option<DateTime<Utc>>, Query, description = "RFC 3339; default: now; after `start`, at most 31 days later"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 10000, description = "Most samples; default 1000"),
    ),
    responses(
        (status = 200, description = "The samples", body = HostHistory),
        (status = 404, description = "No such host (`unknown_host`), or no host at all (`no_samples`)", body = ErrorResponse),
        (status = 422, description = "A bad time, window or limit", body = ErrorResponse),
    ))]
pub async fn history(State(state): State<AppState>, params: Params) -> Result<Json<HostHistory>, ApiError> {
    let end = params.time("end")?.unwrap_or_else(Utc::now);
    let start = params.time("start")?.unwrap_or(end - Duration::hours(1));
    if start >= end {
        return Err(ApiError::invalid(Code::InvalidRange, "start", format!("start {start} must be before end {end}")));
    }
    if end - start > Duration::days(MAX_HISTORY_DAYS) {
        return Err(ApiError::invalid(
            Code::WindowTooLong,
            "end",
            format!("a host's history covers at most {MAX_HISTORY_DAYS} days at once"),
        ));
    }
    let limit: u32 = params.bounded("limit", 1000, 10_000)?;
    let host = chosen(&state, &params).await?;
    enms_jobs::require_raw(state.store.as_ref(), start).await?;
    let query = ReadingQuery { machine_id: host.id, start, end, resolution: Resolution::Raw, limit: limit + 1 };
    let mut points = state.store.query_readings(&query).await?;
    let truncated = points.len() > limit as usize;
    points.truncate(limit as usize);
    let samples = points.iter().map(|p| flat(&host, p)).collect();
    Ok(Json(HostHistory { machine_id: host.id, host: host.name, samples, truncated }))
}
