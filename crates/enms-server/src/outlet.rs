//! The analytics service's [`Outlet`], wired to this server's event bus and
//! metrics: the one place where jobs and live detection meet the bus.

use std::sync::Arc;
use std::time::Duration;

use enms_core::event::EventType;
use enms_jobs::Outlet;
use enms_realtime::EventBus;
use serde_json::Value;

use crate::telemetry::Metrics;

pub struct BusOutlet {
    pub bus: Arc<dyn EventBus>,
    pub telemetry: Arc<Metrics>,
}

#[async_trait::async_trait]
impl Outlet for BusOutlet {
    async fn publish(&self, event_type: EventType, data: Value) -> Result<(), String> {
        self.bus.publish(event_type, data).await.map(drop).map_err(|e| e.to_string())
    }

    fn job_finished(&self, model_type: &str, outcome: &str, took: Duration) {
        self.telemetry.job_finished(model_type, outcome, took);
    }
}

/// Where incidents publish their events: the bus.
pub struct IncidentBus {
    pub bus: std::sync::Arc<dyn enms_realtime::EventBus>,
}

#[async_trait::async_trait]
impl enms_incidents::IncidentSink for IncidentBus {
    async fn publish(&self, kind: enms_core::event::EventType, data: serde_json::Value) -> Result<(), String> {
        self.bus.publish(kind, data).await.map(|_| ()).map_err(|e| e.to_string())
    }
}
