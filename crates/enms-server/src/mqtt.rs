//! The MQTT input's [`ReadingSink`], wired to this server: machines are
//! resolved in the store, readings take the ingest path every reading takes
//! (validation, durable commit, `metric_updated`, streaming detection), and
//! a bad-share alert is a `system_alert` on the bus.

use std::sync::Arc;

use enms_core::event::EventType;
use enms_mqtt::{ReadingSink, SinkError};
use serde_json::json;
use uuid::Uuid;

use crate::state::AppState;

pub struct IngestSink {
    pub state: AppState,
}

#[async_trait::async_trait]
impl ReadingSink for IngestSink {
    async fn machine(&self, name_or_id: &str) -> Result<Option<Uuid>, SinkError> {
        let unavailable = |e: enms_store::StoreError| SinkError::Unavailable(e.to_string());
        if let Ok(id) = Uuid::parse_str(name_or_id) {
            return Ok(self.state.store.get_machine(id).await.map_err(unavailable)?.map(|m| m.id));
        }
        let machines = self.state.store.list_machines().await.map_err(unavailable)?;
        Ok(machines.into_iter().find(|m| m.name.eq_ignore_ascii_case(name_or_id.trim())).map(|m| m.id))
    }

    async fn store(&self, readings: &[enms_core::Reading]) -> Result<usize, SinkError> {
        self.state.ingest.store(readings).await.map_err(|e| {
            if e.status.is_client_error() {
                SinkError::Refused(e.body.message)
            } else {
                SinkError::Unavailable(e.body.message)
            }
        })
    }

    async fn alert(&self, message: String) {
        let data = json!({"alert_type": "mqtt_input", "message": message, "severity": "warning", "source": "mqtt"});
        if let Err(e) = self.state.bus.publish(EventType::SystemAlert, data).await {
            tracing::warn!(error = %e, "mqtt alert not published");
        }
    }
}

/// Starts the MQTT input when `[mqtt]` is configured.
pub fn start(state: &AppState, stop: tokio_util::sync::CancellationToken) -> Option<tokio::task::JoinHandle<()>> {
    let config = state.config.mqtt.clone()?;
    let sink = Arc::new(IngestSink { state: state.clone() });
    let (mqtt, task) = enms_mqtt::start(config, sink, stop);
    let _ = state.mqtt.set(mqtt);
    Some(task)
}
