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
        let bus = bus::Bus::start(store.clone(), config.bus.clone()).await?;
        let state = AppState::new(Arc::new(config), store, bus);
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
        let result = axum::serve(listener, router).with_graceful_shutdown(shutdown).await;
        let _ = stop_tx.send(true);
        if let Some(task) = producer {
            let _ = task.await;
        }
        self.state.store.close().await;
        tracing::info!("server stopped");
        result.map_err(ServerError::Io)
    }
}
