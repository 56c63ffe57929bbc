//! The plant inputs — MQTT subscriptions and Modbus meters — wired to this
//! server: one sink resolves machines in the store, hands readings to the
//! ingest path every reading takes (validation, durable commit,
//! `metric_updated`, streaming detection) and turns the inputs' alerts into
//! `system_alert` events; the MQTT relay and the notifier read events from
//! the bus's window and log.

use std::sync::Arc;

use enms_core::event::EventId;
use enms_core::event::EventType;
use enms_mqtt::{EventPage, EventSource, ReadingSink, SinkError};
use enms_realtime::Filter;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::state::AppState;

pub struct IngestSink {
    pub state: AppState,
}

impl IngestSink {
    async fn find(&self, name_or_id: &str) -> Result<Option<Uuid>, enms_store::StoreError> {
        if let Ok(id) = Uuid::parse_str(name_or_id) {
            return Ok(self.state.store.get_machine(id).await?.map(|m| m.id));
        }
        let machines = self.state.store.list_machines().await?;
        Ok(machines.into_iter().find(|m| m.name.eq_ignore_ascii_case(name_or_id.trim())).map(|m| m.id))
    }

    async fn publish_alert(&self, alert_type: &str, message: String, severity: &str) {
        let data = json!({"alert_type": alert_type, "message": message, "severity": severity, "source": alert_type});
        if let Err(e) = self.state.bus.publish(EventType::SystemAlert, data).await {
            tracing::warn!(error = %e, alert_type, "input alert not published");
        }
    }
}

#[async_trait::async_trait]
impl ReadingSink for IngestSink {
    async fn machine(&self, name_or_id: &str) -> Result<Option<Uuid>, SinkError> {
        self.find(name_or_id).await.map_err(|e| SinkError::Unavailable(e.to_string()))
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
        self.publish_alert("mqtt_input", message, "warning").await;
    }
}

#[async_trait::async_trait]
impl enms_modbus::MeterSink for IngestSink {
    async fn machine(&self, name_or_id: &str) -> Result<Option<Uuid>, String> {
        self.find(name_or_id).await.map_err(|e| e.to_string())
    }

    async fn store(&self, readings: &[enms_core::Reading]) -> Result<usize, String> {
        self.state.ingest.store(readings).await.map_err(|e| e.body.message)
    }

    async fn alert(&self, message: String, severity: &'static str) {
        self.publish_alert("modbus_meter", message, severity).await;
    }
}

#[async_trait::async_trait]
impl enms_notify::AlertSink for IngestSink {
    async fn alert(&self, alert_type: &str, message: String) {
        let data = json!({"alert_type": alert_type, "message": message, "severity": "warning", "source": "notify"});
        if let Err(e) = self.state.bus.publish(EventType::SystemAlert, data).await {
            tracing::warn!(error = %e, alert_type, "notifier alert not published");
        }
    }
}

#[async_trait::async_trait]
impl EventSource for IngestSink {
    async fn after(&self, after: Option<EventId>, types: &[EventType], limit: usize) -> Result<EventPage, String> {
        let filter = Filter { types: Some(types.iter().copied().collect()), ..Filter::default() };
        let replay = self.state.bus.since(after, &filter, limit).await.map_err(|e| e.to_string())?;
        let events = replay.events.iter().map(|d| (d.id(), d.event.event_type, d.text.clone())).collect();
        Ok(EventPage { events, complete: replay.complete })
    }

    async fn head(&self) -> Option<EventId> {
        Some(self.state.bus.status().last_event_id)
    }
}

/// Starts the inputs that are configured; their tasks end after `stop`.
pub fn start(state: &AppState, stop: CancellationToken) -> Vec<JoinHandle<()>> {
    let sink = Arc::new(IngestSink { state: state.clone() });
    let mut tasks = Vec::new();
    if let Some(config) = state.config.mqtt.clone() {
        let (mqtt, task) = enms_mqtt::start(config, sink.clone(), sink.clone(), stop.clone());
        let _ = state.mqtt.set(mqtt);
        tasks.push(task);
    }
    if let Some(config) = state.config.modbus.clone() {
        let (modbus, meters) = enms_modbus::start(config, sink.clone(), stop.clone());
        let _ = state.modbus.set(modbus);
        tasks.extend(meters);
    }
    if let Some(config) = state.config.notify.clone() {
        match enms_notify::start(config, state.store.clone(), sink.clone(), sink, stop) {
            Ok((notifier, workers)) => {
                let _ = state.notify.set(notifier);
                tasks.extend(workers);
            }
            // Checked by `validate` before; a secret gone since then.
            Err(e) => tracing::error!(error = %e, "notifications not started"),
        }
    }
    tasks
}
