//! `GET /api/v1/machines/{id}/kpis?start&end`: consumption, peak, load
//! factor, SEC, time-of-use cost and the comparison with the active baseline.
//!
//! KPIs are sums over the readings' intervals whose middle falls in the
//! window (`enms_analytics::cells`): whole hours come from the store's hour
//! cells, the edges from the raw readings around them — so a year costs its
//! 8,760 cells, not its readings.

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use enms_analytics::baseline::BaselineModel;
use enms_analytics::cells::{self, Cell};
use enms_analytics::kpi::{self, Kpis, Tariff};
use enms_store::Store;
use serde::Serialize;
use uuid::Uuid;

use crate::error::{ApiError, ErrorResponse};
use crate::extract::{Params, path_id};
use crate::state::AppState;
use enms_jobs::{blocking, load_samples};

#[derive(Serialize, utoipa::ToSchema)]
pub struct KpiReport {
    machine_id: Uuid,
    machine_name: String,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    /// The active baseline the window is compared with, if any.
    baseline_model_id: Option<Uuid>,
    baseline_version: Option<i64>,
    tariff: Tariff,
    kpis: Kpis,
}

#[utoipa::path(get, path = "/api/v1/machines/{id}/kpis", tag = "analytics", operation_id = "machine_kpis",
    params(
        ("id" = Uuid, Path, description = "Machine id"),
        ("start" = Option<DateTime<Utc>>, Query, description = "RFC 3339; default `end` minus 24 h"),
        ("end" = Option<DateTime<Utc>>, Query, description = "RFC 3339; default now; at most 400 days after `start`"),
    ),
    responses(
        (status = 200, description = "Consumption, peak, load factor, SEC, cost and the comparison with the active baseline", body = KpiReport),
        (status = 404, description = "No such machine (`not_found`)", body = ErrorResponse),
    ))]
pub async fn kpis(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Json<KpiReport>, ApiError> {
    let id = path_id(&id)?;
    let machine = state.store.get_machine(id).await?.ok_or_else(|| ApiError::not_found("machine", id))?;
    let (start, end) = params.start_end(400, "a KPI window")?;
    let baseline = match state.store.active_model(id, "baseline").await? {
        Some(r) => {
            Some((r.id, r.version, serde_json::from_value::<BaselineModel>(r.body).map_err(ApiError::internal)?))
        }
        None => None,
    };
    let cells = window_cells(state.store.as_ref(), id, start, end).await?;
    let tariff = state.analytics.config.tariff.clone();
    let model = baseline.as_ref().map(|b| b.2.clone());
    let k = blocking(move || kpi::from_cells(&cells, &tariff, model.as_ref())).await?;
    Ok(Json(KpiReport {
        machine_id: id,
        machine_name: machine.name,
        start,
        end,
        baseline_model_id: baseline.as_ref().map(|b| b.0),
        baseline_version: baseline.as_ref().map(|b| b.1),
        tariff: state.analytics.config.tariff.clone(),
        kpis: k,
    }))
}

/// The hour cells of `[start, end)`: whole hours from the store's cells
/// (`period_1h`: a year is 8,760 rows, whatever the meter's interval), the
/// unaligned edges from the raw readings around them, cut by the same rule.
async fn window_cells(
    store: &dyn Store,
    machine: Uuid,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Vec<Cell>, ApiError> {
    let hour = chrono::Duration::hours(1);
    // Whole hours inside the window (any time chrono holds, before 1970 too).
    let h = hour.num_milliseconds();
    let first = enms_core::timestamp::from_ms((start.timestamp_millis() + h - 1).div_euclid(h) * h);
    let last = enms_core::timestamp::from_ms(end.timestamp_millis().div_euclid(h) * h);
    let mut edges = Vec::new();
    let mut out = Vec::new();
    if first < last {
        edges.extend([(start, first), (last, end)].into_iter().filter(|(a, b)| a < b));
        if let Some(floor) = store.retention_floors().await?.hour
            && first.timestamp_millis() < floor
        {
            return Err(ApiError::invalid(
                crate::error::Code::PastRetention,
                "start",
                format!(
                    "hourly figures before {} were pruned (retention.hour); start at or after it",
                    enms_core::timestamp::from_ms(floor).to_rfc3339()
                ),
            ));
        }
        out.extend(store.period_cells(machine, first, last).await?.into_iter().map(cell));
    } else {
        edges.push((start, end));
    }
    for (from, to) in edges {
        // Every interval whose middle is in [from, to) ends within half an
        // hour after `to`, and starts at most an hour before `from`.
        let samples = load_samples(store, machine, from - hour, to + hour / 2).await?;
        out.extend(cells::cells(&samples, from, to));
    }
    // An edge's cells are hours the stored ones do not hold (the head
    // edge's is the hour before `first`, the tail's is `last`).
    out.sort_by_key(|c| c.start);
    Ok(out)
}

fn cell(c: enms_store::periods::PeriodCell) -> Cell {
    Cell {
        start: c.start,
        readings: c.readings,
        covered_h: c.covered_h,
        kwh: c.kwh,
        units: c.units,
        operating_h: c.operating_h,
        temp_weighted: c.temp_weighted,
        temp_h: c.temp_h,
        peak_kw: c.peak_kw,
        peak_at: c.peak_at,
    }
}
