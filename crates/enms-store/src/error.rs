//! Typed storage errors; the server maps each to an HTTP status.

use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique field (id or name) is already used by another record.
    #[error("{field} {value:?} is already taken")]
    Conflict { field: &'static str, value: String },
    /// A machine already has an unfinished job of this model type.
    #[error("a {model_type} job for machine {machine_id} is already queued or running")]
    JobConflict { machine_id: Uuid, model_type: String },
    #[error("unknown machine {0}")]
    UnknownMachine(Uuid),
    /// A reading older than the raw readings retention keeps: its buckets
    /// could no longer be recomputed whole.
    #[error("a reading at {at} is older than the raw readings kept (from {floor}, retention.raw)")]
    PastRetention { at: chrono::DateTime<chrono::Utc>, floor: chrono::DateTime<chrono::Utc> },
    #[error("unsupported database URL {0:?}; use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("database migration failed: {0}")]
    Migration(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored value that cannot be read back (corruption or a foreign writer).
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
}
