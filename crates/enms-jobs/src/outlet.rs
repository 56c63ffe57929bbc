//! Where the service's results go out besides the store: the events that
//! tell clients about progress, findings and models, and the figures of
//! finished jobs. Implemented by the server over its event bus and metrics,
//! so this crate knows neither.

use std::time::Duration;

use enms_core::event::EventType;
use serde_json::Value;

#[async_trait::async_trait]
pub trait Outlet: Send + Sync + 'static {
    /// Publishes an event (or hands it to the bus's buffer while a shared
    /// bus is away). The error is a reason to log: a result is saved
    /// whether or not its event went out.
    async fn publish(&self, event_type: EventType, data: Value) -> Result<(), String>;

    /// A job reached a final status after `took`.
    fn job_finished(&self, _model_type: &str, _outcome: &str, _took: Duration) {}
}
