//! State shared by every request handler.
//!
//! Axum clones the state for every extractor and middleware layer of every
//! request, so [`AppState`] is one `Arc`: a clone is one reference count,
//! not one per service inside.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;

use enms_store::Store;

use crate::auth::Auth;
use crate::config::ServerConfig;
use crate::gateway::Gateway;
use crate::ingest::Ingest;
use crate::telemetry::Metrics;
use crate::ui::Ui;
use enms_jobs::Analytics;
use enms_realtime::bus::EventBus;

#[derive(Clone)]
pub struct AppState(Arc<Services>);

/// What every handler reaches through [`AppState`].
pub struct Services {
    pub config: Arc<ServerConfig>,
    pub store: Arc<dyn Store>,
    pub ingest: Ingest,
    pub bus: Arc<dyn EventBus>,
    pub gateway: Gateway,
    pub analytics: Analytics,
    pub ui: Arc<Ui>,
    pub auth: Arc<Auth>,
    pub telemetry: Arc<Metrics>,
    pub started: Instant,
    /// The MQTT input, once started (`[mqtt]` configured).
    pub mqtt: std::sync::OnceLock<enms_mqtt::Mqtt>,
    /// The Modbus meters' pollers, once started (`[modbus]` configured).
    pub modbus: std::sync::OnceLock<enms_modbus::Modbus>,
    /// The notifier, once started (`[notify]` configured).
    pub notify: std::sync::OnceLock<enms_notify::Notifier>,
    /// Incidents: the routes' actions; the intake runs from `App::serve`.
    pub incidents: enms_incidents::Incidents,
}

impl AppState {
    pub fn new(
        config: Arc<ServerConfig>,
        store: Arc<dyn Store>,
        bus: Arc<dyn EventBus>,
        gateway: Gateway,
        analytics: Analytics,
        telemetry: Arc<Metrics>,
    ) -> Self {
        let live = config.analytics.streaming.then(|| analytics.live.clone());
        let sink = Arc::new(crate::outlet::IncidentBus { bus: bus.clone() });
        let incidents = enms_incidents::Incidents::new(store.clone(), sink, config.incidents.clone());
        Self(Arc::new(Services {
            incidents,
            ingest: Ingest::new(store.clone(), bus.clone(), live, telemetry.ingested_rows.clone()),
            ui: Arc::new(Ui::new(&config.base_path)),
            auth: Arc::new(Auth::new(config.auth.clone(), &config.base_path, store.clone())),
            telemetry,
            bus,
            gateway,
            analytics,
            config,
            store,
            started: Instant::now(),
            mqtt: std::sync::OnceLock::new(),
            modbus: std::sync::OnceLock::new(),
            notify: std::sync::OnceLock::new(),
        }))
    }
}

impl Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}
