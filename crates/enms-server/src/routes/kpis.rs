//! `GET /api/v1/machines/{id}/kpis?start&end`: consumption, peak, load
//! factor, SEC, time-of-use cost and the comparison with the active baseline.

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use enms_analytics::baseline::BaselineModel;
use enms_analytics::kpi::{self, Kpis, Tariff};
use enms_analytics::series;
use serde::Serialize;
use uuid::Uuid;

use crate::error::{ApiError, ErrorResponse};
use crate::extract::{Params, path_id};
use crate::state::AppState;
use enms_jobs::sample_pages;

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
    // Every reading of the window, page by page: a year of 3-second
    // readings is 10 M, more than one read may hold.
    let tariff = &state.analytics.config.tariff;
    let mut builder = kpi::KpiBuilder::new(tariff, baseline.as_ref().map(|b| &b.2));
    let mut intervals = series::IntervalStream::default();
    sample_pages(state.store.as_ref(), id, start, end, |page| {
        for s in page {
            intervals.push(*s, &mut |iv| builder.push(&iv));
        }
    })
    .await?;
    intervals.finish(&mut |iv| builder.push(&iv));
    let k = builder.finish();
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
