//! The enms server: HTTP routes over the store, the ingest path every reading
//! takes, and the simulated factory of `--demo`.
//!
//! [`App::build`] opens storage and prepares the demo data; [`App::serve`]
//! runs the HTTP server on a listener until the shutdown future resolves.

pub mod bus;
pub mod config;
mod demo;
pub mod error;
mod extract;
mod gateway;
pub mod hub;
mod ingest;
mod routes;
mod state;

use std::future::Future;
use std::sync::Arc;

pub use config::{DemoConfig, ServerConfig};
pub use error::ApiError;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::state::AppState;

/// Errors that stop the server from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] enms_store::StoreError),
    #[error("server I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// A ready-to-serve application.
pub struct App {
    state: AppState,
    factory: Option<enms_core::sim::Factory>,
}

impl App {
    /// Opens the database (migrating it) and, in demo mode, creates the demo
    /// machines and backfills their history.
    pub async fn build(config: ServerConfig) -> Result<Self, ServerError> {
        let store = enms_store::connect(&config.database_url).await?;
        let hub = hub::Hub::new(config.gateway.queue);
        let bus = bus::InProcessBus::start(store.clone(), config.bus.clone(), hub.clone()).await?;
        let gateway = gateway::Gateway::new(hub, config.gateway.clone());
        let state = AppState::new(Arc::new(config), store, Arc::new(bus), gateway);
        let factory = match &state.config.demo {
            Some(demo) => Some(demo::prepare(&state, demo).await?),
            None => None,
        };
        Ok(Self { state, factory })
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests,
    /// stops the demo producer and closes the database.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let producer = match (self.state.config.demo.clone(), self.factory) {
            (Some(demo), Some(factory)) => {
                Some(tokio::spawn(demo::run_live(self.state.clone(), demo, factory, stop_rx)))
            }
            _ => None,
        };
        let router = routes::router(self.state.clone());
        let gateway = self.state.gateway.clone();
        let draining = gateway.draining().clone();
        // On the signal: refuse new streams and tell every open one to close
        // (1001), while axum stops accepting and finishes requests.
        tokio::spawn({
            let gateway = gateway.clone();
            async move {
                shutdown.await;
                gateway.drain();
            }
        });
        let deadline = gateway.config.drain_timeout;
        let server = axum::serve(listener, router).with_graceful_shutdown(draining.clone().cancelled_owned());
        let result = tokio::select! {
            r = server => r,
            _ = async { draining.cancelled().await; tokio::time::sleep(deadline).await } => {
                tracing::warn!("drain deadline passed with requests still open");
                Ok(())
            }
        };
        if !gateway.wait_closed(deadline).await {
            tracing::warn!("drain deadline passed with connections still open");
        }
        let _ = stop_tx.send(true);
        if let Some(task) = producer {
            let _ = task.await;
        }
        self.state.store.close().await;
        tracing::info!("server stopped");
        result.map_err(ServerError::Io)
    }
}
