//! What the analytics service refuses or fails on, without HTTP: the server
//! maps each variant to a code of its one error table.

use enms_analytics::detect::DetectError;
use enms_store::StoreError;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// A request value the service refuses. `code` is the stable reason
    /// (`invalid_range`, `out_of_range`, `invalid_feature`,
    /// `invalid_parameter`, `empty_window`, `window_too_long`); `field`
    /// names the value.
    #[error("{message}")]
    Invalid { code: &'static str, field: String, message: String },
    /// The window holds too few readings to train on.
    #[error("{message}")]
    InsufficientData { field: String, message: String },
    #[error("no {what} with id {id}")]
    NotFound { what: &'static str, id: Uuid },
    /// The machine has no active model of the kind the request needs.
    #[error("{message}")]
    NoActiveModel { field: Option<String>, message: String },
    /// A job for the same machine and type is queued or running.
    #[error("a {model_type} job for machine {machine} is already queued or running")]
    InProgress { machine: Uuid, model_type: String },
    #[error("the job queue is full; retry when running jobs have finished")]
    QueueFull,
    #[error("job {id} has already finished ({status})")]
    Finished { id: Uuid, status: &'static str },
    /// Cancelling a job that another instance runs.
    #[error("job {id} runs on instance {owner}; send the cancellation there")]
    Elsewhere { id: Uuid, owner: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A fault of ours (a task that panicked, a model that cannot be
    /// encoded): logged, answered without details.
    #[error("{0}")]
    Internal(String),
}

impl JobError {
    pub fn invalid(code: &'static str, field: &str, message: impl Into<String>) -> Self {
        Self::Invalid { code, field: field.to_owned(), message: message.into() }
    }

    pub fn not_found(what: &'static str, id: Uuid) -> Self {
        Self::NotFound { what, id }
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<DetectError> for JobError {
    /// How a model error reads to a client.
    fn from(e: DetectError) -> Self {
        let message = e.to_string();
        match e {
            DetectError::InsufficientData { .. } => Self::InsufficientData { field: "start".into(), message },
            DetectError::MissingFeature(_) | DetectError::ConstantFeature(_) => {
                Self::Invalid { code: "invalid_feature", field: "features".into(), message }
            }
            DetectError::Contamination(_) => {
                Self::Invalid { code: "out_of_range", field: "contamination".into(), message }
            }
            DetectError::Shape { .. } | DetectError::Forest(_) => Self::Internal(message),
        }
    }
}
