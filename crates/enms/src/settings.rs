//! Resolves the server's settings: flags, then `ENMS_*` environment variables
//! (clap reads both into the same fields), then the TOML file, then the
//! defaults of the service configs (`ServerConfig::new` and each section's
//! `Default`, the one place a default is written).
//!
//! This module only reads and merges: whether a value can run is for the
//! type that owns it (`ServerConfig::validate` and each section's), which
//! `App::build` runs too, so the CLI and any other builder of a config are
//! held to the same rules.

use std::path::{Path, PathBuf};

use enms_server::{DemoConfig, ServerConfig};
use serde::Deserialize;

use crate::cli::{AuthMode, DatabaseArgs, ServeArgs};
use crate::duration;

/// The `--config` file. Unknown keys are errors, so a typo is not silently
/// ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub bind: Option<String>,
    pub database_url: Option<String>,
    pub bus_url: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub base_path: Option<String>,
    pub offline_after: Option<String>,
    #[serde(default)]
    pub demo: FileDemo,
    #[serde(default)]
    pub realtime: FileRealtime,
    #[serde(default)]
    pub analytics: FileAnalytics,
    #[serde(default)]
    pub security: FileSecurity,
}

/// `[security]`: tokens, CORS, body sizes and per-token limits.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSecurity {
    pub auth: Option<AuthMode>,
    pub cors_origins: Option<Vec<String>>,
    pub publish_rate: Option<f64>,
    pub publish_burst: Option<u32>,
    pub ingest_rate: Option<f64>,
    pub ingest_burst: Option<u32>,
    pub max_connections_per_token: Option<usize>,
    pub token_cache: Option<String>,
    pub max_json_bytes: Option<usize>,
    pub max_csv_bytes: Option<usize>,
}

/// `[analytics]`: jobs, streaming detection, schedules and the tariff.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAnalytics {
    pub job_queue: Option<usize>,
    pub job_concurrency: Option<usize>,
    pub streaming: Option<bool>,
    /// Cron-like (`minute hour day month weekday`, UTC), or `"off"`.
    pub detect_schedule: Option<String>,
    pub retrain_schedule: Option<String>,
    pub tariff: Option<enms_analytics::kpi::Tariff>,
}

/// `[realtime]`: the WebSocket/SSE gateway and the event bus's history.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRealtime {
    pub ping_interval: Option<String>,
    pub max_connections: Option<usize>,
    pub queue_messages: Option<usize>,
    pub queue_bytes: Option<usize>,
    pub write_timeout: Option<String>,
    /// Batch the fan-out's socket writes through io_uring (default true).
    pub io_uring: Option<bool>,
    /// Most parts a large fan-out runs in at once (0: one per worker thread).
    pub fanout_parallelism: Option<usize>,
    pub drain_timeout: Option<String>,
    pub window_events: Option<usize>,
    pub window_age: Option<String>,
    pub log_retention: Option<String>,
    /// Redis bus: approximate stream length kept.
    pub stream_max_len: Option<usize>,
    /// Redis bus: events buffered while Redis is unreachable.
    pub bus_buffer: Option<usize>,
    /// Redis bus: key prefix.
    pub bus_prefix: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDemo {
    #[serde(default)]
    pub enabled: bool,
    pub seed: Option<u64>,
    pub interval: Option<String>,
    pub history_days: Option<u32>,
    pub history_end: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    Refused(#[from] enms_core::setting::InvalidSetting),
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid {setting}: {message}")]
    Invalid { setting: &'static str, message: String },
}

pub struct Settings {
    pub bind: String,
    pub server: ServerConfig,
    /// Decided once the address is bound (see [`AuthMode`]).
    pub auth: AuthMode,
}

pub fn load_file(path: &Path) -> Result<FileConfig, SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read { path: path.into(), source })?;
    toml::from_str(&text).map_err(|e| SettingsError::Parse { path: path.into(), message: e.to_string() })
}

pub fn resolve(args: ServeArgs) -> Result<Settings, SettingsError> {
    let (file, database_url) = file_and_database(args.db)?;
    let mut server = ServerConfig::new(database_url);
    if let Some(url) = args.bus_url.or(file.bus_url) {
        server.redis = Some(enms_server::RedisConfig::new(url));
    }
    let flags = RealtimeFlags {
        ping_interval: args.ping_interval,
        max_connections: args.max_connections,
        drain_timeout: args.drain_timeout,
    };
    realtime(&mut server, &flags, &file.realtime)?;
    analytics(&mut server, file.analytics)?;
    server.base_path = normalise_base_path(args.base_path.or(file.base_path).unwrap_or_default())?;
    if let Some(text) = args.offline_after.or(file.offline_after) {
        server.offline_after = parse_duration("offline_after", &text)?;
    }
    if args.demo || file.demo.enabled {
        let mut demo = DemoConfig::default();
        demo.seed = args.seed.or(file.demo.seed).unwrap_or(demo.seed);
        if let Some(text) = args.demo_interval.or(file.demo.interval) {
            demo.interval = parse_duration("demo interval", &text)?;
        }
        demo.history_days = args.demo_history_days.or(file.demo.history_days).unwrap_or(demo.history_days);
        if let Some(text) = args.demo_history_end.or(file.demo.history_end) {
            demo.history_end = Some(parse_history_end(&text)?);
        }
        server.demo = Some(demo);
    }
    let auth = args.auth.or(file.security.auth).unwrap_or(AuthMode::Auto);
    if let Some(origins) = args.cors_origins {
        server.auth.cors_origins = origins;
    }
    security(&mut server, file.security)?;
    server.validate()?;
    Ok(Settings { bind: args.bind.or(file.bind).unwrap_or_else(|| "127.0.0.1:8080".into()), server, auth })
}

fn parse_history_end(text: &str) -> Result<chrono::DateTime<chrono::Utc>, SettingsError> {
    let invalid = |message: String| SettingsError::Invalid { setting: "demo history end", message };
    enms_core::timestamp::parse(text)
        .ok_or_else(|| invalid(format!("{text:?} is not an RFC 3339 time such as 2026-11-01T00:00:00Z")))
}

/// The configuration file (empty without `--config`) and the database URL
/// it resolves to with the flags.
fn file_and_database(args: DatabaseArgs) -> Result<(FileConfig, String), SettingsError> {
    let file = match &args.config {
        Some(path) => load_file(path)?,
        None => FileConfig::default(),
    };
    let data_dir = args.data_dir.or(file.data_dir.clone()).unwrap_or_else(|| PathBuf::from("data"));
    let url = args
        .database_url
        .or(file.database_url.clone())
        .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("enms.db").display()));
    Ok((file, url))
}

/// The database URL for the commands that open it directly (`enms token`).
pub fn resolve_database(args: DatabaseArgs) -> Result<String, SettingsError> {
    Ok(file_and_database(args)?.1)
}

fn security(server: &mut ServerConfig, file: FileSecurity) -> Result<(), SettingsError> {
    let a = &mut server.auth;
    if let Some(origins) = file.cors_origins.filter(|_| a.cors_origins.is_empty()) {
        a.cors_origins = origins;
    }
    set(file.publish_rate, &mut a.publish_rate.per_second);
    set(file.ingest_rate, &mut a.ingest_rate.per_second);
    set(file.publish_burst, &mut a.publish_rate.burst);
    set(file.ingest_burst, &mut a.ingest_rate.burst);
    if let Some(text) = &file.token_cache {
        a.cache_ttl = parse_duration("token_cache", text)?;
    }
    set(file.max_connections_per_token, &mut server.gateway.max_per_token);
    set(file.max_json_bytes, &mut server.max_json_bytes);
    set(file.max_csv_bytes, &mut server.max_csv_bytes);
    Ok(())
}

struct RealtimeFlags {
    ping_interval: Option<String>,
    max_connections: Option<usize>,
    drain_timeout: Option<String>,
}

fn realtime(server: &mut ServerConfig, args: &RealtimeFlags, file: &FileRealtime) -> Result<(), SettingsError> {
    let gw = &mut server.gateway;
    let duration = |setting, flag: &Option<String>, file: &Option<String>, into: &mut std::time::Duration| {
        if let Some(text) = flag.as_ref().or(file.as_ref()) {
            *into = parse_duration(setting, text)?;
        }
        Ok::<_, SettingsError>(())
    };
    duration("ping_interval", &args.ping_interval, &file.ping_interval, &mut gw.ping_interval)?;
    duration("drain_timeout", &args.drain_timeout, &file.drain_timeout, &mut gw.drain_timeout)?;
    duration("write_timeout", &None, &file.write_timeout, &mut gw.write_timeout)?;
    duration("window_age", &None, &file.window_age, &mut server.bus.window_age)?;
    duration("log_retention", &None, &file.log_retention, &mut server.bus.log_age)?;
    set(args.max_connections.or(file.max_connections), &mut gw.max_connections);
    set(file.queue_messages, &mut gw.hub.queue.messages);
    set(file.queue_bytes, &mut gw.hub.queue.bytes);
    set(file.window_events, &mut server.bus.window_events);
    set(file.io_uring, &mut gw.hub.io_uring);
    set(file.fanout_parallelism, &mut gw.hub.fanout_parallelism);
    if let Some(redis) = server.redis.as_mut() {
        set(file.stream_max_len, &mut redis.stream_max_len);
        set(file.bus_buffer, &mut redis.buffer);
        set(file.bus_prefix.clone(), &mut redis.prefix);
    }
    Ok(())
}

fn analytics(server: &mut ServerConfig, file: FileAnalytics) -> Result<(), SettingsError> {
    let a = &mut server.analytics;
    set(file.job_queue, &mut a.job_queue);
    set(file.job_concurrency, &mut a.job_concurrency);
    set(file.streaming, &mut a.streaming);
    let schedule = |setting, text: Option<String>, into: &mut Option<enms_jobs::scheduler::Cron>| {
        match text.as_deref() {
            None => {}
            Some("off") => *into = None,
            Some(t) => {
                *into = Some(
                    enms_jobs::scheduler::Cron::parse(t)
                        .map_err(|message| SettingsError::Invalid { setting, message })?,
                )
            }
        }
        Ok::<_, SettingsError>(())
    };
    schedule("detect_schedule", file.detect_schedule, &mut a.schedule.detect)?;
    schedule("retrain_schedule", file.retrain_schedule, &mut a.schedule.retrain)?;
    set(file.tariff, &mut a.tariff);
    Ok(())
}

/// `enms config check FILE`: everything `serve` would check, without
/// starting; prints what the file resolves to.
pub fn check(path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let s = resolve(ServeArgs { db: DatabaseArgs::file(path.to_owned()), ..ServeArgs::default() })?;
    let c = &s.server;
    println!("{} is valid. With no flags or ENMS_* variables it means:", path.display());
    println!("  bind            {}", s.bind);
    println!("  database        {}", redact(&c.database_url));
    println!("  bus             {}", c.redis.as_ref().map_or("in-process".to_owned(), |r| redact(&r.url)));
    let auth = match s.auth {
        AuthMode::Auto => "auto (required unless bound to loopback)",
        AuthMode::Required => "required",
        AuthMode::Off => "off",
    };
    println!("  auth            {auth}");
    println!(
        "  cors origins    {}",
        if c.auth.cors_origins.is_empty() { "same origin only".into() } else { c.auth.cors_origins.join(", ") }
    );
    println!(
        "  demo            {}",
        c.demo.as_ref().map_or("off".to_owned(), |d| format!("seed {}, every {:?}", d.seed, d.interval))
    );
    println!("  base path       {}", if c.base_path.is_empty() { "/" } else { &c.base_path });
    Ok(())
}

/// A URL with its password hidden.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Sets `into` when the value is given; its owner checks it.
fn set<T>(value: Option<T>, into: &mut T) {
    if let Some(v) = value {
        *into = v;
    }
}

fn parse_duration(setting: &'static str, text: &str) -> Result<std::time::Duration, SettingsError> {
    duration::parse(text).map_err(|message| SettingsError::Invalid { setting, message })
}

/// `api/analytics/` → `/api/analytics`; empty stays empty.
fn normalise_base_path(raw: String) -> Result<String, SettingsError> {
    let trimmed = raw.trim().trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    if trimmed.chars().any(|c| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.')))
        || trimmed.contains("//")
    {
        return Err(SettingsError::Invalid {
            setting: "base path",
            message: format!("{raw:?} must be a URL path such as /api/analytics"),
        });
    }
    Ok(format!("/{trimmed}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_and_defaults_fill_the_rest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("enms.toml");
        std::fs::write(
            &path,
            "bind = \"0.0.0.0:9000\"\nbase_path = \"api/analytics/\"\n[demo]\nenabled = true\nseed = 7\n",
        )
        .expect("write");
        let args = ServeArgs { db: DatabaseArgs::file(path), seed: Some(9), ..ServeArgs::default() };
        let s = resolve(args).expect("valid");
        assert_eq!(s.bind, "0.0.0.0:9000");
        assert_eq!(s.server.base_path, "/api/analytics");
        assert_eq!(s.server.database_url, "sqlite://data/enms.db");
        assert_eq!(s.server.demo.expect("demo on").seed, 9);
    }

    #[test]
    fn a_demo_history_end_is_a_past_rfc3339_time() {
        let demo =
            |end: &str| resolve(ServeArgs { demo: true, demo_history_end: Some(end.into()), ..ServeArgs::default() });
        let s = demo("2026-11-01T00:00:00Z").expect("valid");
        let end = s.server.demo.and_then(|d| d.history_end).expect("pinned");
        assert_eq!(end.to_rfc3339(), "2026-11-01T00:00:00+00:00");
        let err = demo("yesterday").err().expect("not a time");
        assert!(err.to_string().contains("demo history end"), "{err}");
        let err = demo("9999-01-01T00:00:00Z").err().expect("future");
        assert!(err.to_string().contains("in the future"), "{err}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("enms.toml");
        std::fs::write(&path, "bnd = \"x\"\n").expect("write");
        let err =
            resolve(ServeArgs { db: DatabaseArgs::file(path), ..ServeArgs::default() }).err().expect("unknown key");
        assert!(err.to_string().contains("bnd"), "{err}");
        let err = resolve(ServeArgs { offline_after: Some("soon".into()), ..ServeArgs::default() }).err().expect("bad");
        assert!(err.to_string().contains("offline_after"), "{err}");
        let err = resolve(ServeArgs { base_path: Some("/a b".into()), ..ServeArgs::default() }).err().expect("bad");
        assert!(err.to_string().contains("base path"), "{err}");
    }

    #[test]
    fn analytics_settings_are_read_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("enms.toml");
        std::fs::write(
            &path,
            "[analytics]\njob_concurrency = 2\ndetect_schedule = \"*/10 * * * *\"\nretrain_schedule = \"off\"\n\
             [analytics.tariff]\ncurrency = \"USD\"\npeak_start_hour = 7\npeak_end_hour = 19\npeak_price = 0.3\noffpeak_price = 0.1\n",
        )
        .expect("write");
        let s = resolve(ServeArgs { db: DatabaseArgs::file(path.clone()), ..ServeArgs::default() }).expect("valid");
        let a = &s.server.analytics;
        assert_eq!((a.job_concurrency, a.tariff.currency.as_str()), (2, "USD"));
        assert_eq!(a.schedule.detect.as_ref().map(|c| c.as_str()), Some("*/10 * * * *"));
        assert!(a.schedule.retrain.is_none());
        std::fs::write(&path, "[analytics]\ndetect_schedule = \"61 * * * *\"\n").expect("write");
        let err = resolve(ServeArgs { db: DatabaseArgs::file(path.clone()), ..ServeArgs::default() })
            .err()
            .expect("bad cron");
        assert!(err.to_string().contains("detect_schedule"), "{err}");
        std::fs::write(
            &path,
            "[analytics.tariff]\ncurrency = \"EUR\"\npeak_start_hour = 20\npeak_end_hour = 8\npeak_price = 0.3\noffpeak_price = 0.1\n",
        )
        .expect("write");
        let err = resolve(ServeArgs { db: DatabaseArgs::file(path.clone()), ..ServeArgs::default() })
            .err()
            .expect("bad tariff");
        assert!(err.to_string().contains("tariff"), "{err}");
        std::fs::write(&path, "[analytics]\njob_concurrency = 0\n").expect("write");
        let err = resolve(ServeArgs { db: DatabaseArgs::file(path), ..ServeArgs::default() }).err().expect("zero");
        assert!(err.to_string().contains("job_concurrency"), "{err}");
    }

    #[test]
    fn realtime_settings_come_from_flags_and_file_and_are_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("enms.toml");
        std::fs::write(&path, "[realtime]\nping_interval = \"5s\"\nqueue_messages = 64\nmax_connections = 7\n")
            .expect("write");
        let args = ServeArgs { db: DatabaseArgs::file(path.clone()), max_connections: Some(9), ..ServeArgs::default() };
        let s = resolve(args).expect("valid");
        assert_eq!(s.server.gateway.ping_interval, std::time::Duration::from_secs(5));
        assert_eq!((s.server.gateway.hub.queue.messages, s.server.gateway.max_connections), (64, 9));
        std::fs::write(&path, "[realtime]\nqueue_bytes = 0\n").expect("write");
        let err =
            resolve(ServeArgs { db: DatabaseArgs::file(path.clone()), ..ServeArgs::default() }).err().expect("zero");
        assert!(err.to_string().contains("queue_bytes"), "{err}");
        std::fs::write(&path, "[realtime]\nping = \"5s\"\n").expect("write");
        let err =
            resolve(ServeArgs { db: DatabaseArgs::file(path), ..ServeArgs::default() }).err().expect("unknown key");
        assert!(err.to_string().contains("ping"), "{err}");
    }

    #[test]
    fn fan_out_settings_are_read_and_bad_values_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("enms.toml");
        let serve =
            |path: &std::path::Path| resolve(ServeArgs { db: DatabaseArgs::file(path.into()), ..ServeArgs::default() });
        let defaults = resolve(ServeArgs::default()).expect("defaults");
        assert!(defaults.server.gateway.hub.io_uring);
        assert_eq!(defaults.server.gateway.hub.fanout_parallelism, 0, "auto by default");
        std::fs::write(&path, "[realtime]\nio_uring = false\nfanout_parallelism = 3\n").expect("write");
        let s = serve(&path).expect("valid");
        assert!(!s.server.gateway.hub.io_uring);
        assert_eq!(s.server.gateway.hub.fanout_parallelism, 3);
        for (bad, key) in [("io_uring = \"yes\"", "io_uring"), ("fanout_parallelism = -1", "fanout_parallelism")] {
            std::fs::write(&path, format!("[realtime]\n{bad}\n")).expect("write");
            let err = serve(&path).err().expect("bad value");
            assert!(err.to_string().contains(key), "{bad}: {err}");
        }
    }

    #[test]
    fn security_settings_are_read_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("enms.toml");
        std::fs::write(
            &path,
            "[security]\nauth = \"required\"\ncors_origins = [\"https://grafana.plant:3000\"]\npublish_rate = 50\n\
             publish_burst = 10\nmax_connections_per_token = 3\ntoken_cache = \"1s\"\n",
        )
        .expect("write");
        let s = resolve(ServeArgs { db: DatabaseArgs::file(path.clone()), ..ServeArgs::default() }).expect("valid");
        assert_eq!(s.auth, AuthMode::Required);
        assert_eq!(s.server.auth.cors_origins, ["https://grafana.plant:3000"]);
        assert_eq!((s.server.auth.publish_rate.per_second, s.server.auth.publish_rate.burst), (50.0, 10));
        assert_eq!(s.server.gateway.max_per_token, 3);
        for (text, setting) in [
            ("auth = \"maybe\"", "auth"),
            ("cors_origins = [\"grafana\"]", "cors_origins"),
            ("publish_rate = 0", "publish_rate"),
            ("ingest_burst = 0", "ingest_burst"),
            ("max_json_bytes = 0", "max_json_bytes"),
        ] {
            std::fs::write(&path, format!("[security]\n{text}\n")).expect("write");
            let err =
                resolve(ServeArgs { db: DatabaseArgs::file(path.clone()), ..ServeArgs::default() }).err().expect(text);
            assert!(err.to_string().contains(setting), "{text}: {err}");
        }
        assert_eq!(redact("postgres://enms:s3cret@db:5432/enms"), "postgres://enms:***@db:5432/enms");
        assert_eq!(redact("sqlite://data/enms.db"), "sqlite://data/enms.db");
    }

    #[test]
    fn bus_settings_are_read_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("enms.toml");
        std::fs::write(&path, "bus_url = \"redis://10.0.0.5:6379\"\n[realtime]\nstream_max_len = 500\nbus_buffer = 20\nbus_prefix = \"plant1\"\n")
            .expect("write");
        let s = resolve(ServeArgs { db: DatabaseArgs::file(path.clone()), ..ServeArgs::default() }).expect("valid");
        let redis = s.server.redis.expect("redis bus");
        assert_eq!((redis.url.as_str(), redis.stream_max_len, redis.buffer), ("redis://10.0.0.5:6379", 500, 20));
        assert_eq!(redis.prefix, "plant1");
        let flag = ServeArgs { bus_url: Some("nats://x".into()), ..ServeArgs::default() };
        let err = resolve(flag).err().expect("not redis");
        assert!(err.to_string().contains("bus_url"), "{err}");
        std::fs::write(&path, "bus_url = \"redis://h\"\n[realtime]\nbus_buffer = 0\n").expect("write");
        let err =
            resolve(ServeArgs { db: DatabaseArgs::file(path), ..ServeArgs::default() }).err().expect("zero buffer");
        assert!(err.to_string().contains("bus_buffer"), "{err}");
        assert!(resolve(ServeArgs::default()).expect("default").server.redis.is_none(), "in-process by default");
    }
}
