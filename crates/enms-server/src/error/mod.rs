//! The one error type of the HTTP API, and the service crates' errors
//! mapped onto it.
//!
//! Every failure answers `{"error": {"code", "message", "field"?, ...}}` so
//! clients can branch on `code` and point at `field`. The code decides the
//! status, through the one table in [`code`].

pub mod code;

pub use code::Code;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use enms_core::csv_format::CsvError;
use enms_core::{BatchError, FieldError};
use enms_jobs::JobError;
use enms_realtime::BusError;
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
    /// Seconds to send as `Retry-After` (rate limits, lock-outs).
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            status: code.status(),
            body: ErrorBody {
                code: code.as_str().to_owned(),
                message: message.into(),
                field: None,
                row: None,
                line: None,
            },
            retry_after: None,
        }
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(u32::try_from(secs).unwrap_or(u32::MAX));
        self
    }

    /// An error a lower crate named by its code string (a field rule of
    /// enms-core, a CSV rule, a job's refusal). Every such code is in the
    /// table; one that is not is a bug, caught by the tests that produce
    /// it (debug builds panic) and answered as `invalid_field` in release.
    pub fn coded(code: &str, message: impl Into<String>) -> Self {
        let known = Code::parse(code);
        debug_assert!(known.is_some(), "error code {code:?} is missing from the code table");
        if known.is_none() {
            tracing::error!(code, "error code missing from the code table");
        }
        Self::new(known.unwrap_or(Code::InvalidField), message)
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
        Self::new(Code::NotFound, format!("no {what} with id {id}"))
    }

    /// A refused value: its code and the field that holds it.
    pub fn invalid(code: Code, field: &str, message: impl Into<String>) -> Self {
        Self::new(code, message).with_field(field)
    }

    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "internal error");
        Self::new(Code::Internal, "internal server error; see the server log")
    }
}

/// What every failed request answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorBody,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(ErrorResponse { error: self.body })).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
        }
        resp
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        Self::coded(e.code, e.message).with_field(e.field)
    }
}

impl From<BatchError> for ApiError {
    fn from(e: BatchError) -> Self {
        let message = e.to_string();
        match e {
            BatchError::Malformed { field, .. } => {
                let mut err = Self::new(Code::MalformedJson, message);
                err.body.field = field;
                err
            }
            BatchError::InvalidRow { row, error } => {
                let mut err = Self::coded(error.code, message).with_field(error.field);
                err.body.row = Some(row);
                err
            }
            BatchError::TooManyRows { .. } => Self::new(Code::BatchTooLarge, message),
            BatchError::Empty => Self::invalid(Code::EmptyBatch, "readings", message),
        }
    }
}

impl From<CsvError> for ApiError {
    fn from(e: CsvError) -> Self {
        let mut err = Self::coded(e.code, e.to_string());
        err.body.field = e.column;
        err.body.line = Some(e.line);
        err
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { field, .. } => Self::new(Code::Conflict, e.to_string()).with_field(field),
            StoreError::JobConflict { .. } => Self::new(Code::JobInProgress, e.to_string()),
            StoreError::UnknownMachine(_) => Self::invalid(Code::UnknownMachine, "machine_id", e.to_string()),
            StoreError::PastRetention { .. } => Self::invalid(Code::PastRetention, "timestamp", e.to_string()),
            other => Self::internal(other),
        }
    }
}

impl From<BusError> for ApiError {
    fn from(e: BusError) -> Self {
        match e {
            BusError::Invalid(f) => f.into(),
            BusError::BufferFull => Self::new(Code::BusBufferFull, e.to_string()),
            BusError::Store(s) => s.into(),
            BusError::Stopped | BusError::LogUnavailable => Self::internal(e),
        }
    }
}

impl From<enms_incidents::IncidentError> for ApiError {
    fn from(e: enms_incidents::IncidentError) -> Self {
        use enms_incidents::IncidentError as E;
        let message = e.to_string();
        match e {
            E::NotFound(_) => Self::new(Code::NotFound, message),
            E::Transition { .. } => Self::new(Code::InvalidTransition, message),
            E::Invalid { field, .. } => Self::invalid(Code::InvalidValue, field, message),
            E::Contended => Self::new(Code::Contended, message),
            E::Store(s) => s.into(),
        }
    }
}

impl From<enms_accounts::AccountError> for ApiError {
    fn from(e: enms_accounts::AccountError) -> Self {
        use enms_accounts::AccountError as E;
        let message = e.to_string();
        match e {
            E::Invalid { field, .. } => Self::invalid(Code::InvalidField, field, message),
            E::NameTaken(_) => Self::invalid(Code::Conflict, "name", message),
            E::UnknownUser(_) => Self::new(Code::NotFound, message),
            E::InvalidCredentials => Self::new(Code::InvalidCredentials, message),
            E::LockedOut { until } => {
                let secs = (until - chrono::Utc::now()).num_seconds().max(1).unsigned_abs();
                Self::new(Code::LockedOut, message).with_retry_after(secs)
            }
            E::SessionExpired { .. } => Self::new(Code::SessionExpired, message),
            E::UnknownSession => Self::new(Code::InvalidToken, message),
            E::Store(s) => s.into(),
            E::Hashing(_) => Self::internal(message),
        }
    }
}

impl From<JobError> for ApiError {
    fn from(e: JobError) -> Self {
        let message = e.to_string();
        match e {
            JobError::Invalid { code, field, .. } => Self::coded(code, message).with_field(field),
            JobError::InsufficientData { field, .. } => Self::invalid(Code::InsufficientData, &field, message),
            JobError::NotFound { .. } => Self::new(Code::NotFound, message),
            JobError::NoActiveModel { field, .. } => {
                let mut err = Self::new(Code::NoActiveModel, message);
                err.body.field = field;
                err
            }
            JobError::InProgress { .. } => Self::new(Code::JobInProgress, message),
            JobError::QueueFull => Self::new(Code::JobQueueFull, message),
            JobError::Finished { .. } => Self::new(Code::JobFinished, message),
            JobError::Elsewhere { .. } => Self::new(Code::JobElsewhere, message),
            JobError::Store(s) => s.into(),
            JobError::Internal(_) => Self::internal(message),
        }
    }
}
