//! Settings the server runs with, after the CLI has merged flags, `ENMS_*`
//! environment variables and the TOML file.

use std::time::Duration;

use chrono::{DateTime, Utc};
use enms_core::setting::{InvalidSetting, above_zero, at_least_one};

pub use crate::auth::{AuthConfig, RateLimit};
pub use crate::gateway::GatewayConfig;
pub use enms_jobs::AnalyticsConfig;
pub use enms_realtime::bus::BusConfig;
pub use enms_realtime::bus::redis::RedisConfig;
pub use enms_realtime::hub::{HubConfig, QueueLimits};

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `sqlite://PATH` or `postgres://…`.
    pub database_url: String,
    /// The shared event bus (Redis Streams) for several instances; `None`
    /// runs the in-process bus.
    pub redis: Option<RedisConfig>,
    /// Prefix the whole app is served under, e.g. `/api/analytics`; empty for none.
    pub base_path: String,
    /// Run the simulated factory.
    pub demo: Option<DemoConfig>,
    /// A machine whose last reading is older than this is `offline`.
    pub offline_after: Duration,
    /// Largest JSON body accepted by `POST /api/v1/readings`.
    pub max_json_bytes: usize,
    /// Largest CSV body accepted by `POST /api/v1/readings/import`.
    pub max_csv_bytes: usize,
    /// Replay window of the event bus.
    pub bus: BusConfig,
    /// WebSocket and SSE connections.
    pub gateway: GatewayConfig,
    /// Jobs, detection, tariff and schedules.
    pub analytics: AnalyticsConfig,
    /// Tokens, CORS and per-token limits.
    pub auth: AuthConfig,
    /// Readings from an MQTT broker (`[mqtt]`); `None`: no MQTT input.
    pub mqtt: Option<enms_mqtt::MqttConfig>,
    /// Meters polled over Modbus TCP (`[[modbus.meters]]`); `None`: none.
    pub modbus: Option<enms_modbus::ModbusConfig>,
    /// Notification rules and channels (`[notify]`); `None`: none sent.
    pub notify: Option<enms_notify::NotifyConfig>,
    /// How long each level of readings is kept (`[retention]`; forever by
    /// default).
    pub retention: enms_store::retention::RetentionConfig,
    /// Sample the server's own host as a machine of type `host`
    /// (`--monitor-self`; on by default with `--demo`).
    pub monitor: Option<enms_host::MonitorConfig>,
    /// Incidents: when one resolves by itself (`[incidents]`).
    pub incidents: enms_incidents::IncidentsConfig,
}

impl ServerConfig {
    /// Every section's own checks, then this level's: what [`App::build`]
    /// runs before it opens anything.
    ///
    /// [`App::build`]: crate::App::build
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.database_url.trim().is_empty() {
            return Err(InvalidSetting::new("database_url", "must name a database (sqlite://PATH or postgres://…)"));
        }
        let b = &self.base_path;
        let path_ok = b.is_empty()
            || (b.starts_with('/')
                && !b.ends_with('/')
                && !b.contains("//")
                && b.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.')));
        if !path_ok {
            return Err(InvalidSetting::new("base_path", format!("{b:?} must be a URL path such as /api/analytics")));
        }
        above_zero("offline_after", self.offline_after)?;
        at_least_one("max_json_bytes", self.max_json_bytes)?;
        at_least_one("max_csv_bytes", self.max_csv_bytes)?;
        if let Some(redis) = &self.redis {
            redis.validate()?;
        }
        if let Some(demo) = &self.demo {
            demo.validate()?;
        }
        if let Some(mqtt) = &self.mqtt {
            mqtt.validate()?;
        }
        if let Some(modbus) = &self.modbus {
            modbus.validate()?;
        }
        if let Some(notify) = &self.notify {
            notify.validate()?;
        }
        if let Some(monitor) = &self.monitor {
            monitor.validate()?;
        }
        self.incidents.validate()?;
        self.retention.validate()?;
        self.bus.validate()?;
        self.gateway.validate()?;
        self.analytics.validate()?;
        self.auth.validate()
    }

    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            redis: None,
            base_path: String::new(),
            demo: None,
            offline_after: Duration::from_secs(30 * 60),
            max_json_bytes: 32 << 20,
            max_csv_bytes: 256 << 20,
            bus: BusConfig::default(),
            gateway: GatewayConfig::default(),
            analytics: AnalyticsConfig::default(),
            auth: AuthConfig::default(),
            mqtt: None,
            modbus: None,
            notify: None,
            retention: enms_store::retention::RetentionConfig::default(),
            monitor: None,
            incidents: enms_incidents::IncidentsConfig::default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Makes the simulated plant and its anomalies reproducible.
    pub seed: u64,
    /// Time between live readings.
    pub interval: Duration,
    /// Days of 15-minute history created on first start.
    pub history_days: u32,
    /// Where that history ends; `None` is the start-up time. Pinning it
    /// makes the demo's data the same on any day (the simulated weather,
    /// weekdays and shifts follow the calendar), for reproducible analyses
    /// and tests. Live readings still start at the real time, after a gap.
    pub history_end: Option<DateTime<Utc>>,
    /// Mean time between live faults; the first comes within two minutes
    /// of the start.
    pub fault_every: Duration,
}

impl DemoConfig {
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        above_zero("demo interval", self.interval)?;
        above_zero("demo fault every", self.fault_every)?;
        if self.history_days > 3650 {
            return Err(InvalidSetting::new("demo history days", "at most 3650"));
        }
        // Live readings follow the history from the real time on; a history
        // reaching past it would interleave with them.
        if let Some(end) = self.history_end.filter(|end| *end > Utc::now()) {
            return Err(InvalidSetting::new("demo history end", format!("{end} is in the future")));
        }
        Ok(())
    }
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            interval: Duration::from_secs(5),
            history_days: 60,
            history_end: None,
            fault_every: Duration::from_secs(600),
        }
    }
}
