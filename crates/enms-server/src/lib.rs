//! The enms server: HTTP routes over the store, the ingest path every reading
//! takes, and the simulated factory of `--demo`.
//!
//! [`App::build`] opens storage and prepares the demo data; [`App::serve`]
//! runs the HTTP server on a listener until the shutdown future resolves.

pub mod auth;
pub mod config;
mod demo;
pub mod error;
mod extract;
mod gateway;
mod hosts;
mod ingest;
mod inputs;
mod monitor;
pub mod openapi;
mod outlet;
mod routes;
mod state;
pub mod telemetry;
mod ui;

use std::future::Future;
use std::sync::Arc;

pub use config::{AuthConfig, DemoConfig, RateLimit, RedisConfig, ServerConfig};
pub use error::ApiError;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::state::AppState;

/// Errors that stop the server from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] enms_core::setting::InvalidSetting),
    #[error(transparent)]
    Store(#[from] enms_store::StoreError),
    #[error(transparent)]
    Bus(#[from] enms_realtime::bus::redis::BusStartError),
    #[error("server I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Accepts HTTP/1.1 connections until `stop` fires, serving each with
/// upgrades enabled. Our own loop rather than `axum::serve`: the WebSocket
/// gateway needs the upgraded `TcpStream` itself to write events from the
/// hub, and `axum::serve` wraps it in a private type.
async fn serve_http(
    listener: TcpListener,
    router: axum::Router,
    stop: tokio_util::sync::CancellationToken,
) -> std::io::Result<tokio_util::task::TaskTracker> {
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: keep serving the open ones.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => return Ok(connections),
        };
        let _ = stream.set_nodelay(true);
        let (stream, hold) = gateway::held::HeldStream::new(stream);
        let service = hyper_util::service::TowerToHyperService::new(tower_http::add_extension::AddExtension::new(
            tower_http::add_extension::AddExtension::new(router.clone(), hold),
            auth::ClientAddr(peer.ip()),
        ));
        let conn = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
            .with_upgrades();
        let stop = stop.clone();
        connections.spawn(async move {
            let mut conn = std::pin::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = stop.cancelled() => {
                    // Finish the request in flight, then close.
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "http connection ended with an error");
            }
        });
    }
}

/// A ready-to-serve application.
pub struct App {
    state: AppState,
    factory: Option<enms_core::sim::Factory>,
}

impl App {
    /// Refuses an invalid configuration (whoever built it), then opens the
    /// database (migrating it) and, in demo mode, creates the demo machines
    /// and backfills their history.
    pub async fn build(config: ServerConfig) -> Result<Self, ServerError> {
        config.validate()?;
        let store = enms_store::connect(&config.database_url).await?;
        let telemetry = telemetry::Metrics::new();
        let hub = enms_realtime::Hub::new(&config.gateway.hub, telemetry.delivery.clone());
        let fan_out: Arc<dyn enms_realtime::FanOut> = Arc::new(hub.clone());
        let bus: Arc<dyn enms_realtime::EventBus> = match &config.redis {
            Some(redis) => Arc::new(
                enms_realtime::bus::redis::RedisBus::start(store.clone(), config.bus.clone(), redis.clone(), fan_out)
                    .await?,
            ),
            None => Arc::new(enms_realtime::InProcessBus::start(store.clone(), config.bus.clone(), fan_out).await?),
        };
        let gateway = gateway::Gateway::new(hub, config.gateway.clone());
        let analytics = enms_jobs::Analytics::new(
            store.clone(),
            Arc::new(outlet::BusOutlet { bus: bus.clone(), telemetry: telemetry.clone() }),
            config.analytics.clone(),
        );
        analytics.start().await?;
        let state = AppState::new(Arc::new(config), store, bus, gateway, analytics, telemetry);
        let factory = match &state.config.demo {
            Some(demo) => Some(demo::prepare(&state, demo).await?),
            None => None,
        };
        Ok(Self { state, factory })
    }

    /// Whether anyone can get in: an active API token or an enabled user.
    pub async fn has_credentials(&self) -> Result<bool, ServerError> {
        Ok(self.state.store.list_tokens().await?.iter().any(|t| t.is_active())
            || self.state.store.list_users().await?.iter().any(|u| u.is_active()))
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
                tokio::spawn(demo::train_first_models(self.state.clone(), demo.clone()));
                Some(tokio::spawn(demo::run_live(self.state.clone(), demo, factory, stop_rx)))
            }
            _ => None,
        };
        let scheduler_stop = tokio_util::sync::CancellationToken::new();
        let scheduler = tokio::spawn(enms_jobs::scheduler::run(self.state.analytics.clone(), scheduler_stop.clone()));
        let leases = tokio::spawn(self.state.analytics.jobs.clone().maintain(scheduler_stop.clone()));
        let pruner = tokio::spawn(enms_jobs::retention::run(
            self.state.store.clone(),
            self.state.config.retention.clone(),
            scheduler_stop.clone(),
        ));
        let inputs = inputs::start(&self.state, scheduler_stop.clone());
        let monitor = monitor::start(&self.state, scheduler_stop.clone());
        let incidents = tokio::spawn(enms_incidents::intake::run(
            self.state.incidents.clone(),
            std::sync::Arc::new(inputs::IngestSink { state: self.state.clone() }),
            chrono::Utc::now(),
            scheduler_stop.clone(),
        ));
        let sweep = tokio::spawn(gateway::credentials::sweep(
            self.state.gateway.credentials.clone(),
            self.state.auth.clone(),
            scheduler_stop.clone(),
        ));
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
        let result = serve_http(listener, router, draining.clone()).await;
        let graceful = result.map(|connections| {
            connections.close();
            async move {
                if tokio::time::timeout(deadline, connections.wait()).await.is_err() {
                    tracing::warn!("drain deadline passed with requests still open");
                }
            }
        });
        let result = match graceful {
            Ok(drained) => {
                drained.await;
                Ok(())
            }
            Err(e) => Err(e),
        };
        if !gateway.wait_closed(deadline).await {
            tracing::warn!("drain deadline passed with connections still open");
        }
        let _ = stop_tx.send(true);
        scheduler_stop.cancel();
        let _ = scheduler.await;
        let _ = leases.await;
        let _ = pruner.await;
        for task in inputs {
            let _ = task.await;
        }
        if let Some(task) = monitor {
            let _ = task.await;
        }
        let _ = incidents.await;
        let _ = sweep.await;
        if let Some(task) = producer {
            let _ = task.await;
        }
        self.state.store.close().await;
        tracing::info!("server stopped");
        result.map_err(ServerError::Io)
    }
}
