//! `/api/v1/machines`: list, create, read, edit and delete machines.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use enms_core::{Machine, MachinePatch, MachineRecord, NewMachine};

use crate::error::{ApiError, ErrorResponse};
use crate::extract::{JsonBody, path_id};
use crate::state::AppState;

fn view(state: &AppState, record: MachineRecord) -> Machine {
    let offline_after = chrono::Duration::from_std(state.config.offline_after).unwrap_or(chrono::Duration::MAX);
    Machine::from_record(record, Utc::now(), offline_after)
}

#[utoipa::path(get, path = "/api/v1/machines", tag = "machines", operation_id = "list_machines",
    responses((status = 200, description = "Every machine, ordered by name", body = Vec<Machine>)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<Machine>>, ApiError> {
    let records = state.store.list_machines().await?;
    Ok(Json(records.into_iter().map(|r| view(&state, r)).collect()))
}

#[utoipa::path(get, path = "/api/v1/machines/{id}", tag = "machines", operation_id = "get_machine",
    params(("id" = Uuid, Path, description = "Machine id")),
    responses(
        (status = 200, description = "The machine", body = Machine),
        (status = 404, description = "No such machine (`not_found`)", body = ErrorResponse),
    ))]
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Machine>, ApiError> {
    let id = path_id(&id)?;
    let record = state.store.get_machine(id).await?.ok_or_else(|| ApiError::not_found("machine", id))?;
    Ok(Json(view(&state, record)))
}

#[utoipa::path(post, path = "/api/v1/machines", tag = "machines", operation_id = "create_machine",
    request_body = NewMachine,
    responses(
        (status = 201, description = "Created", body = Machine),
        (status = 409, description = "The name or id is taken (`conflict`)", body = ErrorResponse),
    ))]
pub async fn create(
    State(state): State<AppState>,
    JsonBody(new): JsonBody<NewMachine>,
) -> Result<(StatusCode, Json<Machine>), ApiError> {
    let record = new.validate(Utc::now())?;
    state.store.create_machine(&record).await?;
    tracing::info!(machine = %record.id, name = %record.name, "machine created");
    Ok((StatusCode::CREATED, Json(view(&state, record))))
}

/// Absent fields stay as they are; `"rated_power_kw": null` clears the rating.
#[utoipa::path(patch, path = "/api/v1/machines/{id}", tag = "machines", operation_id = "update_machine",
    params(("id" = Uuid, Path, description = "Machine id")),
    request_body = MachinePatch,
    responses(
        (status = 200, description = "The machine as changed", body = Machine),
        (status = 404, description = "No such machine (`not_found`)", body = ErrorResponse),
        (status = 409, description = "The new name is taken (`conflict`)", body = ErrorResponse),
    ))]
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<MachinePatch>,
) -> Result<Json<Machine>, ApiError> {
    let id = path_id(&id)?;
    let current = state.store.get_machine(id).await?.ok_or_else(|| ApiError::not_found("machine", id))?;
    let updated = patch.apply(current)?;
    if !state.store.update_machine(&updated).await? {
        return Err(ApiError::not_found("machine", id));
    }
    Ok(Json(view(&state, updated)))
}

/// Deletes the machine and its readings.
#[utoipa::path(delete, path = "/api/v1/machines/{id}", tag = "machines", operation_id = "delete_machine",
    params(("id" = Uuid, Path, description = "Machine id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such machine (`not_found`)", body = ErrorResponse),
    ))]
pub async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let id = path_id(&id)?;
    if !state.store.delete_machine(id).await? {
        return Err(ApiError::not_found("machine", id));
    }
    tracing::info!(machine = %id, "machine deleted with its readings");
    Ok(StatusCode::NO_CONTENT)
}
