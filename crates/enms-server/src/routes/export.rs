//! `GET /api/v1/machines/{id}/readings/export`: a machine's readings over
//! any span as one CSV file, streamed in pages so memory stays constant
//! however long the span.
//!
//! Raw exports are the import format (`enms_core::csv_format`): columns
//! `timestamp, power_kw, energy_kwh, production_units, outdoor_temp_c`, then
//! one column per extra value the span carries (names read first, from the
//! store), so a file exported from one server imports into another as the
//! same readings. Aggregated exports have one row per bucket: its start,
//! mean and peak power, energy, production, mean temperature and samples.
//!
//! A page is read, encoded and handed to the body through a channel of two
//! pages: the client's pace bounds the server's memory. A store error after
//! the head is sent aborts the body, so the client sees a broken transfer,
//! never a file that ends early as if it were whole.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, TimeZone, Utc};
use enms_core::Resolution;
use enms_store::{ReadingPoint, ReadingQuery, Store};
use std::sync::Arc;
use uuid::Uuid;

use crate::error::{ApiError, Code, ErrorResponse};
use crate::extract::{Params, path_id};
use crate::state::AppState;

/// Points per page: a few MB of CSV at most.
const PAGE: u32 = 10_000;

/// The formats `format=` takes.
const FORMATS: [&str; 1] = ["csv"];

/// How the OpenAPI document describes `format=`: the formats there are.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // describes the parameter; the handler reads the text
pub enum ExportFormat {
    Csv,
}

#[utoipa::path(get, path = "/api/v1/machines/{id}/readings/export", tag = "readings", operation_id = "export_readings",
    params(
        ("id" = Uuid, Path, description = "Machine id"),
        ("start" = Option<DateTime<Utc>>, Query, description = "RFC 3339; default 2000-01-01, the earliest a reading can be (or a day before an earlier `end`)"),
        ("end" = Option<DateTime<Utc>>, Query, description = "RFC 3339, exclusive; default now"),
        ("resolution" = Option<Resolution>, Query, description = "Raw readings (the import format) or time buckets; default raw"),
        ("format" = Option<ExportFormat>, Query, description = "`csv` (the only one so far; the default)"),
    ),
    responses(
        (status = 200, description = "The readings as CSV, streamed", content_type = "text/csv", body = String),
        (status = 404, description = "No such machine (`not_found`)", body = ErrorResponse),
        (status = 422, description = "An unknown format (`invalid_parameter`) or start not before end (`invalid_range`)", body = ErrorResponse),
    ))]
pub async fn export(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let id = path_id(&id)?;
    if let Some(format) = params.get("format")
        && !FORMATS.contains(&format)
    {
        return Err(ApiError::invalid(
            Code::InvalidParameter,
            "format",
            format!("{format:?} is not an export format; use one of {}", FORMATS.join(", ")),
        ));
    }
    let end = params.time("end")?.unwrap_or_else(Utc::now);
    // Every reading by default (none can be older than 2000), or the day
    // before an `end` that is earlier still.
    let earliest = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).single().unwrap_or_default();
    let start = params.time("start")?.unwrap_or_else(|| earliest.min(end - Duration::days(1)));
    if start >= end {
        return Err(ApiError::invalid(Code::InvalidRange, "start", format!("start {start} must be before end {end}")));
    }
    let resolution = params.parse("resolution", |v| v.parse::<Resolution>())?.unwrap_or(Resolution::Raw);
    let machine = state.store.get_machine(id).await?.ok_or_else(|| ApiError::not_found("machine", id))?;
    let extras = match resolution {
        Resolution::Raw => state.store.reading_extra_names(id, start, end).await?,
        _ => Vec::new(),
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    let store = state.store.clone();
    tokio::spawn(async move {
        if let Err(e) = pages(store, id, start, end, resolution, &extras, &tx).await {
            tracing::warn!(machine = %id, error = %e, "export stopped");
            let _ = tx.send(Err(std::io::Error::other(e))).await;
        }
    });
    let body =
        Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) }));
    let name = format!(
        "{}-{}-{}.csv",
        machine.name.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_', "_"),
        start.format("%Y%m%dT%H%M%SZ"),
        end.format("%Y%m%dT%H%M%SZ")
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        body,
    )
        .into_response())
}

/// Reads and sends every page; `Ok` also when the client went away.
async fn pages(
    store: Arc<dyn Store>,
    machine_id: Uuid,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    resolution: Resolution,
    extras: &[String],
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> Result<(), String> {
    let mut head = csv::Writer::from_writer(Vec::new());
    let columns: Vec<&str> = match resolution {
        Resolution::Raw => ["timestamp", "power_kw", "energy_kwh", "production_units", "outdoor_temp_c"]
            .into_iter()
            .chain(extras.iter().map(String::as_str))
            .collect(),
        _ => {
            vec!["timestamp", "power_kw", "max_power_kw", "energy_kwh", "production_units", "outdoor_temp_c", "samples"]
        }
    };
    head.write_record(&columns).map_err(|e| e.to_string())?;
    if tx.send(Ok(Bytes::from(head.into_inner().map_err(|e| e.to_string())?))).await.is_err() {
        return Ok(());
    }
    let floors = store.retention_floors().await.map_err(|e| e.to_string())?;
    let mut from = start;
    loop {
        let query = ReadingQuery { machine_id, start: from, end, resolution, limit: PAGE };
        let points = store.query_readings(&query).await.map_err(|e| e.to_string())?;
        let Some(last) = points.last() else { return Ok(()) };
        // The next page starts after this one's last reading (timestamps
        // are whole milliseconds) or bucket — as wide as the points are
        // there, which is coarser where retention pruned finer levels.
        let width = enms_store::rollup::width_at(last.timestamp.timestamp_millis(), resolution.bucket_ms(), &floors);
        from = last.timestamp + width.map_or(Duration::milliseconds(1), Duration::milliseconds);
        let chunk = encode(&points, resolution, extras).map_err(|e| e.to_string())?;
        if tx.send(Ok(Bytes::from(chunk))).await.is_err() {
            return Ok(());
        }
        if points.len() < PAGE as usize || from >= end {
            return Ok(());
        }
    }
}

fn encode(points: &[ReadingPoint], resolution: Resolution, extras: &[String]) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::with_capacity(points.len() * 64));
    let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    for p in points {
        let ts = p.timestamp.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut row = vec![ts, p.power_kw.to_string()];
        if resolution == Resolution::Raw {
            row.extend([p.energy_kwh.to_string(), opt(p.production_units), opt(p.outdoor_temp_c)]);
            for name in extras {
                row.push(opt(p.extra.as_ref().and_then(|x| x.get(name)).and_then(serde_json::Value::as_f64)));
            }
        } else {
            row.extend([
                p.max_power_kw.to_string(),
                p.energy_kwh.to_string(),
                opt(p.production_units),
                opt(p.outdoor_temp_c),
                p.samples.to_string(),
            ]);
        }
        w.write_record(&row)?;
    }
    w.into_inner().map_err(|e| e.into_error().into())
}
