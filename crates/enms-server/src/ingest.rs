//! The ingest path every reading takes — HTTP batches, CSV imports and the
//! demo factory alike — so they are validated and stored the same way.

use std::sync::Arc;

use std::collections::HashMap;

use enms_core::Reading;
use enms_core::event::EventType;
use enms_store::{Store, StoreError};
use serde_json::json;
use uuid::Uuid;

use crate::error::{ApiError, Code};
use enms_jobs::Live;
use enms_realtime::bus::EventBus;

#[derive(Clone)]
pub struct Ingest {
    store: Arc<dyn Store>,
    bus: Arc<dyn EventBus>,
    /// Streaming detection, when enabled.
    live: Option<Live>,
    rows: metrics::Counter,
}

impl Ingest {
    pub fn new(store: Arc<dyn Store>, bus: Arc<dyn EventBus>, live: Option<Live>, rows: metrics::Counter) -> Self {
        Self { store, bus, live, rows }
    }

    /// Stores validated readings atomically; returns once they are durable,
    /// then announces each machine's newest power as `metric_updated`.
    pub async fn store(&self, readings: &[Reading]) -> Result<usize, ApiError> {
        match self.store.insert_readings(readings).await {
            Ok(()) => {
                self.rows.increment(readings.len() as u64);
                self.announce(readings).await;
                if let Some(live) = &self.live {
                    live.observe(readings).await;
                }
                Ok(readings.len())
            }
            Err(StoreError::UnknownMachine(id)) => {
                let row = readings.iter().position(|r| r.machine_id == id).unwrap_or(0);
                Err(row_error(Code::UnknownMachine, row, "machine_id", format!("unknown machine {id}")))
            }
            Err(e @ StoreError::PastRetention { at, .. }) => {
                let row = readings.iter().position(|r| r.timestamp == at).unwrap_or(0);
                Err(row_error(Code::PastRetention, row, "timestamp", e.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn announce(&self, readings: &[Reading]) {
        let mut latest: HashMap<Uuid, &Reading> = HashMap::new();
        for r in readings {
            let entry = latest.entry(r.machine_id).or_insert(r);
            if r.timestamp > entry.timestamp {
                *entry = r;
            }
        }
        for r in latest.into_values() {
            let mut data = json!({"machine_id": r.machine_id, "metric_name": "power_kw", "value": r.power_kw,
                              "unit": "kW", "timestamp": r.timestamp.to_rfc3339()});
            // The reading's named values ride along, so a host's sample
            // reaches `/api/ws/ws` and the Hosts page without a second read.
            if !r.extra.is_empty() {
                data["values"] = json!(r.extra);
            }
            if let Err(e) = self.bus.publish(EventType::MetricUpdated, data).await {
                tracing::warn!(error = %e, "metric_updated not published");
            }
        }
    }
}

/// A refusal that names the batch's row and the field at fault.
fn row_error(code: Code, row: usize, field: &str, message: String) -> ApiError {
    let mut err = ApiError::invalid(code, &format!("readings[{row}].{field}"), format!("row {row}: {message}"));
    err.body.row = Some(row);
    err
}
