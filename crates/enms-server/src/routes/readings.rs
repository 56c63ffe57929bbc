//! Readings: JSON batch ingest, CSV import, and time-range queries.

use std::collections::HashMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use chrono::{DateTime, Duration, Utc};
use enms_core::{ReadingInput, Resolution, csv_format, parse_batch};
use enms_store::{ReadingPoint, ReadingQuery};
use serde::Serialize;
use uuid::Uuid;

use crate::error::{ApiError, Code, ErrorResponse};
use crate::extract::{Params, path_id, read_body};
use crate::state::AppState;

const DEFAULT_LIMIT: u32 = 10_000;
const MAX_LIMIT: u32 = 100_000;

/// Rows stored, all of them durable when this is answered.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Accepted {
    accepted: usize,
}

/// A JSON batch of 1 to 10,000 readings: an array, or an object holding one.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // describes the body `parse_batch` reads
pub enum ReadingBatch {
    Rows(Vec<ReadingInput>),
    Wrapped(WrappedBatch),
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct WrappedBatch {
    #[schema(min_items = 1, max_items = 10_000)]
    readings: Vec<ReadingInput>,
}

/// Stores a batch of up to 10,000 readings, whole or not at all, and answers
/// once it is durable.
#[utoipa::path(post, path = "/api/v1/readings", tag = "readings", operation_id = "ingest_readings",
    request_body(content = ReadingBatch, description = "Up to 10,000 readings, stored whole or not at all; \
        an error names the row (`row`) and field"),
    responses(
        (status = 200, description = "Stored and durable", body = Accepted),
        (status = 413, description = "The body is over the limit (`payload_too_large`) or holds more than \
            10,000 rows (`batch_too_large`)", body = ErrorResponse),
        (status = 422, description = "A row is invalid (`row` and `field` say where), names an unknown \
            machine (`unknown_machine`), or the batch is empty", body = ErrorResponse),
    ))]
pub async fn ingest(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Result<Json<Accepted>, ApiError> {
    let bytes = read_body(&headers, body, &["application/json"], state.config.max_json_bytes).await?;
    let readings = parse_batch(&bytes, Utc::now())?;
    let accepted = state.ingest.store(&readings).await?;
    Ok(Json(Accepted { accepted }))
}

/// Imports a CSV file, whole or not at all; errors name the line.
#[utoipa::path(post, path = "/api/v1/readings/import", tag = "readings", operation_id = "import_readings",
    params(("machine" = Option<String>, Query, description = "Machine name or id for rows without a machine column")),
    request_body(content = String, content_type = "text/csv", description = "A header row (`timestamp`, \
        `machine`/`machine_id`, `power_kw`, `energy_kwh`, optional `production_units`, `outdoor_temp_c`, \
        further numeric columns) and rows; see docs/api.md"),
    responses(
        (status = 200, description = "Stored and durable", body = Accepted),
        (status = 422, description = "A line is invalid (`line` and `field` say where), or `machine` names no \
            machine (`unknown_machine`, field `machine`)", body = ErrorResponse),
    ))]
pub async fn import(
    State(state): State<AppState>,
    params: Params,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Accepted>, ApiError> {
    let accepted_types = ["text/csv", "application/csv", "text/plain"];
    let bytes = read_body(&headers, body, &accepted_types, state.config.max_csv_bytes).await?;
    let machines = state.store.list_machines().await?;
    let mut by_name: HashMap<String, Uuid> = HashMap::with_capacity(machines.len() * 2);
    for m in &machines {
        by_name.insert(m.name.to_lowercase(), m.id);
        by_name.insert(m.id.to_string(), m.id);
    }
    let resolve = move |cell: &str| {
        let key = Uuid::parse_str(cell).map_or_else(|_| cell.to_lowercase(), |id| id.to_string());
        by_name.get(&key).copied()
    };
    let default_machine = match params.get("machine") {
        Some(name) => Some(resolve(name).ok_or_else(|| {
            ApiError::new(Code::UnknownMachine, format!("no machine named or with id {name:?}")).with_field("machine")
        })?),
        None => None,
    };
    // Parsing a large file is CPU work; keep it off the async workers.
    let started = std::time::Instant::now();
    let readings = tokio::task::spawn_blocking(move || csv_format::parse(&bytes, default_machine, resolve, Utc::now()))
        .await
        .map_err(ApiError::internal)??;
    let parsed = started.elapsed();
    let accepted = state.ingest.store(&readings).await?;
    tracing::info!(
        rows = accepted,
        parse_ms = parsed.as_millis() as u64,
        store_ms = (started.elapsed() - parsed).as_millis() as u64,
        "CSV import stored"
    );
    Ok(Json(Accepted { accepted }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Series {
    machine_id: Uuid,
    #[schema(value_type = Resolution)]
    resolution: &'static str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    points: Vec<ReadingPoint>,
    /// Which resolution answers which stretch: the one asked for, except
    /// where retention pruned the levels that would answer it (there the
    /// points are coarser) — docs/storage.md.
    answered_by: Vec<enms_store::rollup::Answered>,
}

/// Readings of one machine in a time range, raw or in time buckets.
#[utoipa::path(get, path = "/api/v1/machines/{id}/readings", tag = "readings", operation_id = "query_readings",
    params(
        ("id" = Uuid, Path, description = "Machine id"),
        ("start" = Option<DateTime<Utc>>, Query, description = "RFC 3339; default `end` minus 24 h"),
        ("end" = Option<DateTime<Utc>>, Query, description = "RFC 3339, exclusive; default now"),
        ("resolution" = Option<Resolution>, Query, description = "Raw readings or time buckets; default raw"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100_000, description = "At most this many points; default 10,000"),
    ),
    responses(
        (status = 200, description = "Points in time order", body = Series),
        (status = 404, description = "No such machine (`not_found`)", body = ErrorResponse),
    ))]
pub async fn query(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Json<Series>, ApiError> {
    let id = path_id(&id)?;
    let end = params.time("end")?.unwrap_or_else(Utc::now);
    let start = params.time("start")?.unwrap_or(end - Duration::days(1));
    if start >= end {
        return Err(ApiError::invalid(Code::InvalidRange, "start", "start must be before end"));
    }
    let resolution = params.parse("resolution", |v| v.parse::<Resolution>())?.unwrap_or(Resolution::Raw);
    let limit = params.bounded("limit", DEFAULT_LIMIT, MAX_LIMIT)?;
    if state.store.get_machine(id).await?.is_none() {
        return Err(ApiError::not_found("machine", id));
    }
    let floors = state.store.retention_floors().await?;
    let points = state.store.query_readings(&ReadingQuery { machine_id: id, start, end, resolution, limit }).await?;
    let answered_by = enms_store::rollup::answered_by(
        start.timestamp_millis(),
        end.timestamp_millis(),
        resolution.bucket_ms(),
        &floors,
    );
    Ok(Json(Series { machine_id: id, resolution: resolution.as_str(), start, end, points, answered_by }))
}
