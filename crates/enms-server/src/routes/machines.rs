//! `/api/v1/machines`: list, create, read, edit and delete machines.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use enms_core::{Machine, MachinePatch, MachineRecord, NewMachine};

use crate::error::ApiError;
use crate::extract::{JsonBody, path_id};
use crate::state::AppState;

fn view(state: &AppState, record: MachineRecord) -> Machine {
    let offline_after = chrono::Duration::from_std(state.config.offline_after).unwrap_or(chrono::Duration::MAX);
    Machine::from_record(record, Utc::now(), offline_after)
}

pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<Machine>>, ApiError> {
    let records = state.store.list_machines().await?;
    Ok(Json(records.into_iter().map(|r| view(&state, r)).collect()))
}

pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Machine>, ApiError> {
    let id = path_id(&id)?;
    let record = state.store.get_machine(id).await?.ok_or_else(|| ApiError::not_found("machine", id))?;
    Ok(Json(view(&state, record)))
}

pub async fn create(
    State(state): State<AppState>,
    JsonBody(new): JsonBody<NewMachine>,
) -> Result<(StatusCode, Json<Machine>), ApiError> {
    let record = new.validate(Utc::now())?;
    state.store.create_machine(&record).await?;
    tracing::info!(machine = %record.id, name = %record.name, "machine created");
    Ok((StatusCode::CREATED, Json(view(&state, record))))
}

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

pub async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let id = path_id(&id)?;
    if !state.store.delete_machine(id).await? {
        return Err(ApiError::not_found("machine", id));
    }
    tracing::info!(machine = %id, "machine deleted with its readings");
    Ok(StatusCode::NO_CONTENT)
}
