//! The one error type of the HTTP API and its mapping to statuses.
//!
//! Every failure answers `{"error": {"code", "message", "field"?, ...}}` so
//! clients can branch on `code` and point at `field`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use enms_core::csv_format::CsvError;
use enms_core::{BatchError, FieldError};
use enms_store::StoreError;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable reason, e.g. `not_found`, `invalid_field`.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// The field, parameter or path of the value at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// 0-based row of a refused JSON batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row: Option<usize>,
    /// 1-based line of a refused CSV file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{status}: {}", body.message)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody { code: code.to_owned(), message: message.into(), field: None, row: None, line: None },
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.body.field = Some(field.into());
        self
    }

    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.body.message = message.into();
        self
    }

    pub fn not_found(what: &str, id: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("no {what} with id {id}"))
    }

    pub fn invalid(code: &str, field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message).with_field(field)
    }

    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal server error; see the server log")
    }
}

/// What every failed request answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorBody,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(ErrorResponse { error: self.body })).into_response()
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        Self::invalid(e.code, &e.field, e.message)
    }
}

impl From<BatchError> for ApiError {
    fn from(e: BatchError) -> Self {
        let message = e.to_string();
        match e {
            BatchError::Malformed { field, .. } => {
                let mut err = Self::new(StatusCode::BAD_REQUEST, "malformed_json", message);
                err.body.field = field;
                err
            }
            BatchError::InvalidRow { row, error } => {
                let mut err = Self::invalid(error.code, &error.field, message);
                err.body.row = Some(row);
                err
            }
            BatchError::TooManyRows { .. } => Self::new(StatusCode::PAYLOAD_TOO_LARGE, "batch_too_large", message),
            BatchError::Empty => Self::invalid("empty_batch", "readings", message),
        }
    }
}

impl From<CsvError> for ApiError {
    fn from(e: CsvError) -> Self {
        let mut err = Self::new(StatusCode::UNPROCESSABLE_ENTITY, e.code, e.to_string());
        err.body.field = e.column;
        err.body.line = Some(e.line);
        err
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { field, .. } => {
                Self::new(StatusCode::CONFLICT, "conflict", e.to_string()).with_field(field)
            }
            StoreError::JobConflict { .. } => Self::new(StatusCode::CONFLICT, "job_in_progress", e.to_string()),
            StoreError::UnknownMachine(_) => Self::invalid("unknown_machine", "machine_id", e.to_string()),
            other => Self::internal(other),
        }
    }
}
