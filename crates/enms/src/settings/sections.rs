//! One shape per setting: each section of `enms serve`'s settings is one
//! struct that clap reads (flag and `ENMS_*` variable) and serde reads (the
//! TOML file's key), with the value already parsed into its type — a
//! duration, a schedule, a time — so a bad value is refused by the flag or
//! key that holds it. Fields are `Option`s: `None` means "not given here",
//! and [`Layer::over`] lays flags over the file. What a value becomes and
//! its default belong to the service configs (`mod.rs` applies them), and
//! whether it can run to their `validate`.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};
use enms_analytics::kpi::Tariff;
use enms_jobs::scheduler::Cron;
use serde::{Deserialize, Deserializer};

/// Settings given in two places, the higher one first.
pub trait Layer {
    fn over(self, lower: Self) -> Self;
}

/// Implements [`Layer`]: `Option` fields take the first given, flags are
/// on when either is, sections merge field by field.
macro_rules! layered {
    ($t:ident { $($field:ident),* $(,)? } $(flags { $($flag:ident),* })? $(sections { $($section:ident),* })?) => {
        impl Layer for $t {
            fn over(self, lower: Self) -> Self {
                Self {
                    $($field: self.$field.or(lower.$field),)*
                    $($($flag: self.$flag || lower.$flag,)*)?
                    $($($section: self.$section.over(lower.$section),)*)?
                }
            }
        }
    };
}

/// Reads a value from its text form in the file, as clap does on the
/// command line.
macro_rules! from_text {
    ($t:ty) => {
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A duration written `500ms`, `5s`, `15m`, `2h` or `1d`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Span(pub Duration);

impl FromStr for Span {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        enms_core::duration::parse(s).map(Span)
    }
}
from_text!(Span);

/// A cron-like schedule (`minute hour day month weekday`, UTC), or `off`.
#[derive(Debug, Clone)]
pub struct Schedule(pub Option<Cron>);

impl FromStr for Schedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim() == "off" { Ok(Schedule(None)) } else { Cron::parse(s).map(|c| Schedule(Some(c))) }
    }
}
from_text!(Schedule);

/// An RFC 3339 time.
#[derive(Debug, Clone, Copy)]
pub struct Moment(pub DateTime<Utc>);

impl FromStr for Moment {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        enms_core::timestamp::parse(s)
            .map(Moment)
            .ok_or_else(|| format!("{s:?} is not an RFC 3339 time such as 2026-11-01T00:00:00Z"))
    }
}
from_text!(Moment);

/// Where the database is: `serve` and the commands that open it directly.
/// In the file these are top-level keys.
#[derive(Args, Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// Database URL [default: sqlite://DATA_DIR/enms.db].
    #[arg(long, env = "ENMS_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Directory for the default SQLite database [default: ./data].
    #[arg(long, env = "ENMS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}
layered!(StoreSettings { database_url, data_dir });

/// `enms serve`'s settings (top-level keys of the file, then its sections).
#[derive(Args, Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeSettings {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "ENMS_BIND")]
    pub bind: Option<String>,
    /// Shared event bus for several instances, e.g. redis://127.0.0.1:6379
    /// [default: the in-process bus].
    #[arg(long, env = "ENMS_BUS_URL")]
    pub bus_url: Option<String>,
    /// Serve the whole app under this prefix, e.g. /api/analytics.
    #[arg(long, env = "ENMS_BASE_PATH")]
    pub base_path: Option<String>,
    /// A machine with no reading for this long is offline [default: 30m].
    #[arg(long, env = "ENMS_OFFLINE_AFTER")]
    pub offline_after: Option<Span>,
    #[command(flatten)]
    #[serde(default)]
    pub demo: DemoSettings,
    #[command(flatten)]
    #[serde(default)]
    pub realtime: RealtimeSettings,
    #[command(flatten)]
    #[serde(default)]
    pub analytics: AnalyticsSettings,
    #[command(flatten)]
    #[serde(default)]
    pub security: SecuritySettings,
    #[command(flatten)]
    #[serde(default)]
    pub retention: RetentionSettings,
    #[command(flatten)]
    #[serde(default)]
    pub monitor: MonitorSettings,
    #[command(flatten)]
    #[serde(default)]
    pub incidents: IncidentSettings,
    /// The file's `[mqtt]` table: broker and subscriptions (no flags: a
    /// list of subscriptions does not fit them).
    #[arg(skip)]
    #[serde(default)]
    pub mqtt: Option<enms_mqtt::MqttConfig>,
    /// The file's `[[modbus.meters]]`: meters polled over Modbus TCP.
    #[arg(skip)]
    #[serde(default)]
    pub modbus: Option<enms_modbus::ModbusConfig>,
    /// The file's `[notify]`: notification channels and rules.
    #[arg(skip)]
    #[serde(default)]
    pub notify: Option<enms_notify::NotifyConfig>,
}
layered!(ServeSettings { bind, bus_url, base_path, offline_after, mqtt, modbus, notify } sections { demo, realtime, analytics, security, retention, monitor, incidents });

/// `[demo]`: the simulated factory.
#[derive(Args, Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[command(next_help_heading = "Demo")]
pub struct DemoSettings {
    /// Run the simulated factory: five machines, 60 days of history, live readings.
    #[arg(long = "demo", env = "ENMS_DEMO")]
    #[serde(default)]
    pub enabled: bool,
    /// Seed of the simulated factory [default: 42].
    #[arg(long = "seed", env = "ENMS_DEMO_SEED")]
    pub seed: Option<u64>,
    /// Time between live demo readings, e.g. 5s or 500ms [default: 5s].
    #[arg(long = "demo-interval", env = "ENMS_DEMO_INTERVAL")]
    pub interval: Option<Span>,
    /// Days of history the demo creates on first start [default: 60].
    #[arg(long = "demo-history-days", env = "ENMS_DEMO_HISTORY_DAYS")]
    pub history_days: Option<u32>,
    /// Where the demo history ends (RFC 3339, not in the future): the same
    /// seed and end give the same data on any day [default: start-up time].
    #[arg(long = "demo-history-end", env = "ENMS_DEMO_HISTORY_END")]
    pub history_end: Option<Moment>,
    /// Mean time between live faults; the first comes within two minutes [default: 10m].
    #[arg(long = "demo-fault-every", env = "ENMS_DEMO_FAULT_EVERY")]
    pub fault_every: Option<Span>,
}
layered!(DemoSettings { seed, interval, history_days, history_end, fault_every } flags { enabled });

/// `[monitor]`: the server samples its own host (docs/hosts.md).
#[derive(Args, Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[command(next_help_heading = "Host monitoring")]
pub struct MonitorSettings {
    /// Record this server's host as a machine of type host; on by default
    /// with --demo, off with --monitor-self=false.
    #[arg(id = "monitor_self", long = "monitor-self", env = "ENMS_MONITOR_SELF", num_args = 0..=1, default_missing_value = "true")]
    #[serde(rename = "self")]
    pub enabled: Option<bool>,
    /// Time between samples, 250ms to 1h [default: 5s].
    #[arg(id = "monitor_interval", long = "monitor-interval", env = "ENMS_MONITOR_INTERVAL")]
    pub interval: Option<Span>,
    /// The host's machine name [default: the host name].
    #[arg(id = "monitor_name", long = "monitor-name", env = "ENMS_MONITOR_NAME")]
    pub name: Option<String>,
    /// Rated power for the estimate without energy counters [default: 0.2].
    #[arg(id = "monitor_rated_power_kw", long = "monitor-rated-power-kw", env = "ENMS_MONITOR_RATED_POWER_KW")]
    pub rated_power_kw: Option<f64>,
}
layered!(MonitorSettings { enabled, interval, name, rated_power_kw });

/// `[incidents]`: when an incident resolves by itself (docs/incidents.md).
#[derive(Args, Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[command(next_help_heading = "Incidents")]
pub struct IncidentSettings {
    /// Resolve an incident once its machine has had no open episode of its
    /// kind for this long, 1s to 30d [default: 30m].
    #[arg(id = "incident_resolve_after", long = "incident-resolve-after", env = "ENMS_INCIDENT_RESOLVE_AFTER")]
    pub resolve_after: Option<Span>,
}
layered!(IncidentSettings { resolve_after });

/// How long a level is kept: a duration (`90d`) or `forever`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Keep(pub Option<Duration>);

impl FromStr for Keep {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim() == "forever" { Ok(Keep(None)) } else { enms_core::duration::parse(s).map(|d| Keep(Some(d))) }
    }
}
from_text!(Keep);

/// `[retention]`: how long raw readings and each rollup tier are kept
/// (docs/storage.md).
#[derive(Args, Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[command(next_help_heading = "Retention")]
pub struct RetentionSettings {
    /// Keep raw readings this long, e.g. 90d, or forever [default: forever].
    #[arg(long = "retention-raw", env = "ENMS_RETENTION_RAW")]
    pub raw: Option<Keep>,
    /// Keep 1-minute rollups this long (at least as long as raw) [default: forever].
    #[arg(long = "retention-minute", env = "ENMS_RETENTION_MINUTE")]
    pub minute: Option<Keep>,
    /// Keep 1-hour rollups this long (at least as long as minutes) [default: forever].
    #[arg(long = "retention-hour", env = "ENMS_RETENTION_HOUR")]
    pub hour: Option<Keep>,
    /// Keep 1-day rollups this long (at least as long as hours) [default: forever].
    #[arg(long = "retention-day", env = "ENMS_RETENTION_DAY")]
    pub day: Option<Keep>,
    /// Time between pruning passes [default: 1h].
    #[arg(long = "retention-every", env = "ENMS_RETENTION_EVERY")]
    pub every: Option<Span>,
    /// Rows deleted per transaction while pruning [default: 5000].
    #[arg(long = "retention-batch", env = "ENMS_RETENTION_BATCH")]
    pub batch: Option<u32>,
}
layered!(RetentionSettings { raw, minute, hour, day, every, batch });

/// `[realtime]`: WebSocket/SSE connections, the fan-out and the event bus.
#[derive(Args, Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[command(next_help_heading = "Real-time")]
pub struct RealtimeSettings {
    /// WebSocket protocol ping interval; silent clients go after two [default: 25s].
    #[arg(long, env = "ENMS_PING_INTERVAL")]
    pub ping_interval: Option<Span>,
    /// Most WebSocket and SSE connections at once [default: 10000].
    #[arg(long, env = "ENMS_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Per-connection send queue cap, messages [default: 4096].
    #[arg(long, env = "ENMS_QUEUE_MESSAGES")]
    pub queue_messages: Option<usize>,
    /// Per-connection send queue cap, bytes [default: 4194304].
    #[arg(long, env = "ENMS_QUEUE_BYTES")]
    pub queue_bytes: Option<usize>,
    /// A socket write blocked this long closes the client as slow [default: 10s].
    #[arg(long, env = "ENMS_WRITE_TIMEOUT")]
    pub write_timeout: Option<Span>,
    /// Batch the fan-out's socket writes through io_uring [default: true].
    #[arg(long, env = "ENMS_IO_URING")]
    pub io_uring: Option<bool>,
    /// Most parts a large fan-out runs in at once; 0: one per worker thread [default: 0].
    #[arg(long, env = "ENMS_FANOUT_PARALLELISM")]
    pub fanout_parallelism: Option<usize>,
    /// Time given to open connections to close on SIGTERM [default: 10s].
    #[arg(long, env = "ENMS_DRAIN_TIMEOUT")]
    pub drain_timeout: Option<Span>,
    /// In-memory replay window, events [default: 10000].
    #[arg(long, env = "ENMS_WINDOW_EVENTS")]
    pub window_events: Option<usize>,
    /// In-memory replay window, age [default: 1h].
    #[arg(long, env = "ENMS_WINDOW_AGE")]
    pub window_age: Option<Span>,
    /// Durable event log retention [default: 30d].
    #[arg(long, env = "ENMS_LOG_RETENTION")]
    pub log_retention: Option<Span>,
    /// Redis bus: approximate stream length kept [default: 100000].
    #[arg(long, env = "ENMS_STREAM_MAX_LEN")]
    pub stream_max_len: Option<usize>,
    /// Redis bus: events held while Redis is unreachable [default: 10000].
    #[arg(long, env = "ENMS_BUS_BUFFER")]
    pub bus_buffer: Option<usize>,
    /// Redis bus: key prefix [default: enms].
    #[arg(long, env = "ENMS_BUS_PREFIX")]
    pub bus_prefix: Option<String>,
}
layered!(RealtimeSettings {
    ping_interval,
    max_connections,
    queue_messages,
    queue_bytes,
    write_timeout,
    io_uring,
    fanout_parallelism,
    drain_timeout,
    window_events,
    window_age,
    log_retention,
    stream_max_len,
    bus_buffer,
    bus_prefix,
});

/// `[analytics]`: jobs, streaming detection, schedules and the tariff.
#[derive(Args, Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[command(next_help_heading = "Analytics")]
pub struct AnalyticsSettings {
    /// Jobs waiting to run; a full queue answers 503 [default: 64].
    #[arg(long, env = "ENMS_JOB_QUEUE")]
    pub job_queue: Option<usize>,
    /// Jobs running at once [default: 1].
    #[arg(long, env = "ENMS_JOB_CONCURRENCY")]
    pub job_concurrency: Option<usize>,
    /// Score every ingested reading against its machine's active anomaly model [default: true].
    #[arg(long, env = "ENMS_STREAMING")]
    pub streaming: Option<bool>,
    /// Batch detection schedule (cron, UTC), or off [default: "5 * * * *"].
    #[arg(long, env = "ENMS_DETECT_SCHEDULE")]
    pub detect_schedule: Option<Schedule>,
    /// Model refresh schedule (cron, UTC), or off [default: "30 2 * * *"].
    #[arg(long, env = "ENMS_RETRAIN_SCHEDULE")]
    pub retrain_schedule: Option<Schedule>,
    /// Forecast refresh schedule (cron, UTC), or off [default: "15 3 * * *"].
    #[arg(long, env = "ENMS_FORECAST_SCHEDULE")]
    pub forecast_schedule: Option<Schedule>,
    /// Refresh a machine's anomaly model once this much new data (by the
    /// readings' timestamps) has arrived since its training [default: 1d].
    #[arg(long, env = "ENMS_REFRESH_AFTER")]
    pub refresh_after: Option<Span>,
    /// …and at least this many readings [default: 96].
    #[arg(long, env = "ENMS_REFRESH_MIN_READINGS")]
    pub refresh_min_readings: Option<usize>,
    /// Data time the live flagged share is measured over [default: 1d].
    #[arg(long, env = "ENMS_BUDGET_WINDOW")]
    pub budget_window: Option<Span>,
    /// A model flagging more than this many times its alarm budget is stale and refreshed [default: 3].
    #[arg(long, env = "ENMS_STALE_FACTOR")]
    pub stale_factor: Option<f64>,
    /// An episode open this long (data time) is a level shift, learnt as the new normal [default: 1d].
    #[arg(long, env = "ENMS_ACCEPT_AFTER")]
    pub accept_after: Option<Span>,
    /// The file's `[analytics.tariff]` table (five keys, no flag).
    #[arg(skip)]
    pub tariff: Option<Tariff>,
}
layered!(AnalyticsSettings {
    job_queue,
    job_concurrency,
    streaming,
    refresh_after,
    refresh_min_readings,
    budget_window,
    stale_factor,
    accept_after,
    detect_schedule,
    retrain_schedule,
    forecast_schedule,
    tariff
});

/// `[security]`: tokens, sign-in, CORS, body sizes and per-token limits.
#[derive(Args, Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[command(next_help_heading = "Security")]
pub struct SecuritySettings {
    /// API tokens: `auto` requires them unless bound to a loopback address [default: auto].
    #[arg(long, env = "ENMS_AUTH", value_enum)]
    pub auth: Option<AuthMode>,
    /// Browser origins allowed to call the API (CORS), comma-separated.
    #[arg(long, env = "ENMS_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Option<Vec<String>>,
    /// Per token: event publishes per second, sustained [default: 200].
    #[arg(long, env = "ENMS_PUBLISH_RATE")]
    pub publish_rate: Option<f64>,
    /// Per token: event publishes at once [default: 400].
    #[arg(long, env = "ENMS_PUBLISH_BURST")]
    pub publish_burst: Option<u32>,
    /// Per token: ingest requests per second, sustained [default: 20].
    #[arg(long, env = "ENMS_INGEST_RATE")]
    pub ingest_rate: Option<f64>,
    /// Per token: ingest requests at once [default: 40].
    #[arg(long, env = "ENMS_INGEST_BURST")]
    pub ingest_burst: Option<u32>,
    /// WebSocket + SSE connections one token may hold [default: 500].
    #[arg(long, env = "ENMS_MAX_CONNECTIONS_PER_TOKEN")]
    pub max_connections_per_token: Option<usize>,
    /// How long a token lookup is trusted [default: 5s].
    #[arg(long, env = "ENMS_TOKEN_CACHE")]
    pub token_cache: Option<Span>,
    /// A signed-in person's session ends this long after sign-in [default: 12h].
    #[arg(long, env = "ENMS_SESSION_LIFETIME")]
    pub session_lifetime: Option<Span>,
    /// Failed sign-ins in a row that lock a user out [default: 5].
    #[arg(long, env = "ENMS_MAX_FAILED_LOGINS")]
    pub max_failed_logins: Option<u32>,
    /// How long a lock-out lasts [default: 15m].
    #[arg(long, env = "ENMS_LOCKOUT")]
    pub lockout: Option<Span>,
    /// Per client address: sign-in attempts per minute, sustained [default: 10].
    #[arg(long, env = "ENMS_LOGIN_RATE")]
    pub login_rate: Option<f64>,
    /// Per client address: sign-in attempts at once [default: 10].
    #[arg(long, env = "ENMS_LOGIN_BURST")]
    pub login_burst: Option<u32>,
    /// Reverse proxies whose X-Forwarded-For names the client, comma-separated IPs.
    #[arg(long, env = "ENMS_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Option<Vec<std::net::IpAddr>>,
    /// Largest JSON body of POST /api/v1/readings [default: 33554432].
    #[arg(long, env = "ENMS_MAX_JSON_BYTES")]
    pub max_json_bytes: Option<usize>,
    /// Largest CSV body of POST /api/v1/readings/import [default: 268435456].
    #[arg(long, env = "ENMS_MAX_CSV_BYTES")]
    pub max_csv_bytes: Option<usize>,
}
layered!(SecuritySettings {
    auth,
    cors_origins,
    publish_rate,
    publish_burst,
    ingest_rate,
    ingest_burst,
    max_connections_per_token,
    token_cache,
    session_lifetime,
    max_failed_logins,
    lockout,
    login_rate,
    login_burst,
    trusted_proxies,
    max_json_bytes,
    max_csv_bytes,
});

/// The configuration file and the database: `enms serve` and the commands
/// that open its database directly resolve them the same way.
#[derive(Args, Default)]
pub struct DatabaseArgs {
    /// TOML configuration file (see docs/configuration.md).
    #[arg(long, env = "ENMS_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreSettings,
}

impl DatabaseArgs {
    /// Only a configuration file.
    pub fn file(path: PathBuf) -> Self {
        Self { config: Some(path), ..Self::default() }
    }
}

/// Flags override `ENMS_*` variables, which override the `--config` file,
/// which overrides the defaults. Each setting is declared once, in
/// `settings::sections`, for the flag, the variable and the file key.
#[derive(Args, Default)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    #[command(flatten)]
    pub settings: ServeSettings,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    Auto,
    Required,
    Off,
}
