//! The query parameters of the streams and of event playback, as the
//! OpenAPI document describes them. They are read by
//! [`ConnectRequest::from_params`](super::ConnectRequest::from_params) and
//! [`routes::events::filter`](crate::routes); these types only describe them.

use enms_core::event::{EventId, EventType, Severity};
use uuid::Uuid;

/// Which events a subscriber or a playback wants.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct FilterParams {
    /// Event types, comma-separated (the seeds' topic names such as
    /// `anomaly.detected` are accepted too); default every type.
    #[param(style = Form, explode = false, min_items = 1)]
    types: Option<Vec<EventType>>,
    /// Only events about these machines (repeat the parameter, or list
    /// them comma-separated); events without a machine always pass.
    #[param(style = Form, explode = true)]
    machine_id: Option<Vec<Uuid>>,
    /// Only anomalies of this severity or above.
    min_severity: Option<Severity>,
}

/// How a stream client names itself and resumes.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ConnectParams {
    /// Echoed in the `connection` message; assigned when absent.
    #[param(min_length = 1, max_length = 128, pattern = r"^[A-Za-z0-9._:-]+$")]
    client_id: Option<String>,
    /// Resume after this id: every missed event that matches is sent first,
    /// in order, before live ones.
    last_event_id: Option<EventId>,
    /// The API token, for clients that cannot set headers.
    token: Option<String>,
}
