//! State shared by every request handler.

use std::sync::Arc;
use std::time::Instant;

use enms_store::Store;

use crate::bus::Bus;
use crate::config::ServerConfig;
use crate::ingest::Ingest;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<ServerConfig>,
    pub store: Arc<dyn Store>,
    pub ingest: Ingest,
    pub bus: Bus,
    pub started: Instant,
}

impl AppState {
    pub fn new(config: Arc<ServerConfig>, store: Arc<dyn Store>, bus: Bus) -> Self {
        Self { ingest: Ingest::new(store.clone(), bus.clone()), bus, config, store, started: Instant::now() }
    }
}
