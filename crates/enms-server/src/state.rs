//! State shared by every request handler.

use std::sync::Arc;
use std::time::Instant;

use enms_store::Store;

use crate::analytics::Analytics;
use crate::bus::EventBus;
use crate::config::ServerConfig;
use crate::gateway::Gateway;
use crate::ingest::Ingest;
use crate::ui::Ui;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<ServerConfig>,
    pub store: Arc<dyn Store>,
    pub ingest: Ingest,
    pub bus: Arc<dyn EventBus>,
    pub gateway: Gateway,
    pub analytics: Analytics,
    pub ui: Arc<Ui>,
    pub started: Instant,
}

impl AppState {
    pub fn new(
        config: Arc<ServerConfig>,
        store: Arc<dyn Store>,
        bus: Arc<dyn EventBus>,
        gateway: Gateway,
        analytics: Analytics,
    ) -> Self {
        let live = config.analytics.streaming.then(|| analytics.live.clone());
        Self {
            ingest: Ingest::new(store.clone(), bus.clone(), live),
            ui: Arc::new(Ui::new(&config.base_path)),
            bus,
            gateway,
            analytics,
            config,
            store,
            started: Instant::now(),
        }
    }
}
