//! Command-line interface: every subcommand and flag, with its environment
//! variable where it has one.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use crate::settings::{AuthMode, DatabaseArgs, ServeArgs};

#[derive(Parser)]
#[command(name = "enms", version, about = "Real-time energy-management analytics server")]
pub struct Cli {
    #[command(flatten)]
    pub log: LogArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args)]
pub struct LogArgs {
    /// Log output format.
    #[arg(long, global = true, env = "ENMS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info` or `enms_server=debug,info`.
    #[arg(long, global = true, env = "ENMS_LOG", default_value = "info")]
    pub log_level: String,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(Box<ServeArgs>),
    /// Sample this host (CPU, memory, disks, network, power) and send it to
    /// a server, buffering on disk while the server is away.
    Agent(AgentArgs),
    /// Import a CSV file of readings into a running server.
    Import(ImportArgs),
    /// Export a machine's readings as CSV (the import format), streamed.
    Export(ExportArgs),
    /// Follow a live stream of events, reconnecting and resuming without loss.
    Watch(WatchArgs),
    /// Publish an event (e.g. a system_alert) through a running server.
    Publish(PublishArgs),
    /// List machines with their status and live power.
    Machines(MachinesArgs),
    /// Run anomaly detection on a machine's recent readings.
    Detect(DetectArgs),
    /// Train a model, with a progress bar driven by the training events.
    Train(TrainArgs),
    /// Check a configuration file.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Measure the server.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Manage API tokens, directly in the server's database.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Manage the people who sign in, directly in the server's database.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Inspect the database directly.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
}

#[derive(Subcommand)]
pub enum DbCommand {
    /// Rows, span and bytes of raw readings and each rollup tier, per machine.
    Stats {
        /// Print the figures as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (it is shown this once; only its hash is kept).
    Create {
        /// viewer (read, subscribe), operator (also detect, train, publish,
        /// ingest), admin (also machines and tokens).
        #[arg(long)]
        role: enms_core::access::Role,
        /// A name saying who or what uses it, e.g. "grafana".
        #[arg(long)]
        name: String,
        /// Print the record and the secret as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// List tokens (never their secrets).
    List {
        /// Print the records as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Revoke a token by id or name; it stops working within seconds on
    /// every instance.
    Revoke {
        token: String,
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

/// `enms user`: a password is prompted for twice on a terminal, or read as
/// one line from standard input otherwise (`echo "$PW" | enms user …`); it
/// is never an argument, where it would land in the shell history.
#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user who signs in with a name and password.
    Create {
        /// viewer (read, subscribe), operator (also detect, train, act on
        /// incidents), admin (also machines, tokens and users).
        #[arg(long)]
        role: enms_core::access::Role,
        /// The sign-in name: 1-64 ASCII letters, digits, '-', '_', '.' or '@'.
        #[arg(long)]
        name: String,
        /// Print the record as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// List users (never their password hashes).
    List {
        /// Print the records as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Set a user's password (by id or name); their sessions end.
    Passwd {
        user: String,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Disable a user (by id or name): they cannot sign in and their sessions end.
    Disable {
        user: String,
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

/// Where the server is and how to prove who we are.
#[derive(Args, Clone)]
pub struct ClientArgs {
    /// Server to talk to.
    #[arg(long, env = "ENMS_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// API token (see `enms token create`).
    #[arg(long, env = "ENMS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Stream {
    Dashboard,
    Anomalies,
    Training,
    Events,
}

#[derive(Args)]
pub struct WatchArgs {
    /// Which stream: every event, anomalies, training, or system alerts.
    #[arg(value_enum, default_value_t = Stream::Dashboard)]
    pub stream: Stream,
    /// Only events of this machine (name or id); repeatable.
    #[arg(long = "machine")]
    pub machines: Vec<String>,
    /// Only anomalies at or above this severity (normal, warning, critical).
    #[arg(long)]
    pub min_severity: Option<String>,
    /// Print each event as one JSON line instead of a coloured summary.
    #[arg(long)]
    pub json: bool,
    /// Exit after this many events.
    #[arg(long)]
    pub count: Option<usize>,
    /// Start after this event id (resume a previous watch).
    #[arg(long)]
    pub since_id: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args)]
pub struct PublishArgs {
    /// Event type, e.g. system_alert or metric_updated.
    pub event_type: String,
    /// The event's data as a JSON object.
    #[arg(long)]
    pub data: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args)]
pub struct MachinesArgs {
    /// Print the server's JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args)]
pub struct DetectArgs {
    /// Machine name or id.
    #[arg(long)]
    pub machine: String,
    /// How far back to look, e.g. 24h or 7d.
    #[arg(long, default_value = "24h")]
    pub since: String,
    /// Print the server's JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModelKind {
    Baseline,
    Anomaly,
}

#[derive(Args)]
pub struct TrainArgs {
    /// Machine name or id.
    #[arg(long)]
    pub machine: String,
    /// Which model.
    #[arg(long, value_enum, default_value_t = ModelKind::Baseline)]
    pub model: ModelKind,
    /// No progress bar; print each step as a line.
    #[arg(long)]
    pub quiet: bool,
    /// End with the job and the model as JSON instead of a summary line.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration file: unknown keys, bad values, what it resolves to.
    Check { file: PathBuf },
}

#[derive(Args)]
pub struct ImportArgs {
    /// CSV file: header line, then timestamp, power_kw, energy_kwh and optional columns.
    pub file: PathBuf,
    /// Machine (name or id) for files without a machine_id column.
    #[arg(long)]
    pub machine: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
    /// Readings per request (at most 10,000).
    #[arg(long, default_value_t = 10_000)]
    pub batch: usize,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// End with the result as JSON instead of a summary line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct AgentArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Time between samples, 250ms to 1h.
    #[arg(long, default_value = "5s", value_parser = enms_core::duration::parse)]
    pub interval: Duration,
    /// The host's machine name [default: the host name].
    #[arg(long)]
    pub name: Option<String>,
    /// Rated power given to the machine when the agent creates it (kW),
    /// for the estimate when the host has no readable energy counters.
    #[arg(long, default_value_t = enms_host::power::DEFAULT_RATED_KW)]
    pub rated_power_kw: f64,
    /// Directory of the disk buffer [default: $STATE_DIRECTORY, else
    /// ~/.local/state/enms-agent, else ./enms-agent].
    #[arg(long, env = "ENMS_AGENT_SPOOL")]
    pub spool: Option<PathBuf>,
    /// Most unsent samples kept while the server is away, in MiB; beyond
    /// it the oldest are dropped (64 MiB: about nine days at 5 s).
    #[arg(long, default_value_t = 64)]
    pub max_spool_mib: u64,
}

#[derive(Args)]
pub struct ExportArgs {
    /// Machine, by name or id.
    #[arg(long)]
    pub machine: String,
    /// RFC 3339; default: the machine's first reading.
    #[arg(long)]
    pub start: Option<String>,
    /// RFC 3339, exclusive; default: now.
    #[arg(long)]
    pub end: Option<String>,
    /// raw (the import format), 1m, 15m, 1h or 1d.
    #[arg(long, default_value = "raw")]
    pub resolution: String,
    /// File to write (written under FILE.csv.part, renamed when whole);
    /// standard output without it.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub client: ClientArgs,
    /// No progress bar and no summary line.
    #[arg(long)]
    pub quiet: bool,
    /// End with the result as JSON instead of a summary line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Ingest throughput through JSON batches and CSV import.
    Ingest(BenchIngestArgs),
    /// WebSocket fan-out: delivery latency, throughput and loss to N clients.
    Fanout(BenchFanoutArgs),
    /// Streaming detection: reading sent → `anomaly_detected` received.
    Detect(BenchDetectArgs),
    /// Notifications: event published → webhook received, against a bare POST.
    Notify(BenchNotifyArgs),
    /// MQTT ingest: readings published to a broker until the server stored them.
    Mqtt(BenchMqttArgs),
    /// Growth: ingest rate as the database fills, then query and KPI
    /// latency beside their floors.
    Scale(BenchScaleArgs),
    /// Host monitoring: each sample's delay to /api/ws/ws, and an agent's
    /// CPU and memory (bench/agent.sh).
    Host(BenchHostArgs),
    /// Forecast quality: each machine's backtest per horizon day against
    /// seasonal naive (bench/forecast.sh).
    Forecast(BenchForecastArgs),
}

#[derive(Args)]
pub struct BenchForecastArgs {
    /// Server to measure.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Hours forecast (24 to 168).
    #[arg(long, default_value_t = 168)]
    pub horizon_hours: u32,
}

#[derive(Args)]
pub struct BenchHostArgs {
    /// Server to measure.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The host's machine name (the agent's --name).
    #[arg(long)]
    pub host: String,
    /// Samples to wait for.
    #[arg(long, default_value_t = 60)]
    pub samples: usize,
    /// The agent's process id, to read its CPU time and memory from /proc.
    #[arg(long)]
    pub agent_pid: Option<u32>,
}

#[derive(Args)]
pub struct BenchScaleArgs {
    /// Server to measure.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Readings per machine.
    #[arg(long, default_value_t = 1_000_000)]
    pub readings: usize,
    /// Machines filled (the queries ask about the first).
    #[arg(long, default_value_t = 1)]
    pub machines: usize,
    /// Seconds between a machine's readings (30 s: a year is 1 M readings).
    #[arg(long, default_value_t = 30)]
    pub interval_s: u64,
    /// Readings per JSON batch.
    #[arg(long, default_value_t = 10_000)]
    pub batch: usize,
    /// Batches in flight at once.
    #[arg(long, default_value_t = 2)]
    pub concurrency: usize,
    /// Timed repetitions of each query (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
}

#[derive(Args)]
pub struct BenchMqttArgs {
    /// Server to measure; its [mqtt] must subscribe <prefix>/+machine/reading
    /// with format = "reading" (bench/mqtt.sh writes such a config).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The broker, mqtt://HOST:PORT.
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    pub broker: String,
    /// The topics' first level.
    #[arg(long, default_value = "bench")]
    pub prefix: String,
    /// Readings to publish in all.
    #[arg(long, default_value_t = 200_000)]
    pub readings: usize,
    /// Readings per message.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Machines the readings go round.
    #[arg(long, default_value_t = 10)]
    pub machines: usize,
}

#[derive(Args)]
pub struct BenchNotifyArgs {
    /// Server to measure; its [notify] must send critical system alerts to
    /// a webhook at --listen (bench/notify.sh writes such a config).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Where the bench's webhook receiver listens.
    #[arg(long, default_value = "127.0.0.1:9750")]
    pub listen: String,
    /// Events to publish, one at a time.
    #[arg(long, default_value_t = 500)]
    pub events: usize,
}

#[derive(Args)]
pub struct BenchDetectArgs {
    /// Server to measure.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Machine with an active anomaly model.
    #[arg(long, default_value = "c0000000-0000-0000-0000-000000000001")]
    pub machine: String,
    /// Readings to send, one at a time.
    #[arg(long, default_value_t = 500)]
    pub readings: usize,
    /// Power of each (spike) reading.
    #[arg(long, default_value_t = 5000.0)]
    pub power_kw: f64,
}

#[derive(Args)]
pub struct BenchFanoutArgs {
    /// Server to measure.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Publish through another instance (a shared bus) [default: --url].
    #[arg(long)]
    pub publish_url: Option<String>,
    /// WebSocket connections to open.
    #[arg(long, default_value_t = 1000)]
    pub clients: usize,
    /// Events to publish (0: only connect, then report memory).
    #[arg(long, default_value_t = 1000)]
    pub events: usize,
    /// Events published per second.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Stream the clients subscribe to.
    #[arg(long, default_value = "dashboard")]
    pub stream: String,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 256)]
    pub connect_concurrency: usize,
    /// The server's process id, to report its CPU time and RSS.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Bytes of filler added to each event (the seeds' events are ~300 bytes).
    #[arg(long, default_value_t = 0)]
    pub payload_bytes: usize,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct BenchIngestArgs {
    /// Server to measure.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Readings to ingest per mode.
    #[arg(long, default_value_t = 1_000_000)]
    pub readings: usize,
    /// Readings per JSON batch.
    #[arg(long, default_value_t = 10_000)]
    pub batch: usize,
    /// JSON batches in flight at once.
    #[arg(long, default_value_t = 2)]
    pub concurrency: usize,
    /// Machines the readings are spread over.
    #[arg(long, default_value_t = 10)]
    pub machines: usize,
    /// Which paths to measure.
    #[arg(long, value_enum, default_value_t = BenchMode::Both)]
    pub mode: BenchMode,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchMode {
    Http,
    Csv,
    Both,
}
