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
use enms_analytics::kpi::{self, Kpis, Tariff};
use serde::Serialize;
use uuid::Uuid;

use crate::error::{ApiError, ErrorResponse};
use crate::extract::{Params, path_id};
use crate::state::AppState;
use enms_jobs::{blocking, window_cells};

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
