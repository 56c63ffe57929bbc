//! Resolves the server's settings: flags, then `ENMS_*` environment variables
//! (clap reads both into the same fields), then the TOML file, then the
//! defaults of the service configs (`ServerConfig::new` and each section's
//! `Default`, the one place a default is written).
//!
//! This module only reads and merges: whether a value can run is for the
//! type that owns it (`ServerConfig::validate` and each section's), which
//! `App::build` runs too, so the CLI and any other builder of a config are
//! held to the same rules.

mod sections;

use std::path::{Path, PathBuf};

use enms_server::{DemoConfig, RedisConfig, ServerConfig};

pub use sections::{
    AnalyticsSettings, AuthMode, DatabaseArgs, DemoSettings, Layer, MonitorSettings, RealtimeSettings,
    RetentionSettings, SecuritySettings, ServeArgs, ServeSettings, StoreSettings,
};

/// The `--config` file: the store's top-level keys and everything else
/// `serve` reads. Unknown keys are errors, so a typo is not silently
/// ignored.
#[derive(Debug, Default)]
pub struct FileConfig {
    pub store: StoreSettings,
    pub serve: ServeSettings,
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
    let parse = |message: String| SettingsError::Parse { path: path.into(), message };
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| parse(e.to_string()))?;
    // The store's keys sit at the top level with serve's; each struct
    // refuses keys it does not know, so split them first.
    let store: toml::Table =
        ["database_url", "data_dir"].into_iter().filter_map(|k| table.remove(k).map(|v| (k.to_owned(), v))).collect();
    Ok(FileConfig {
        store: store.try_into().map_err(|e: toml::de::Error| parse(e.to_string()))?,
        serve: table.try_into().map_err(|e: toml::de::Error| parse(e.to_string()))?,
    })
}

/// Flags and `ENMS_*` variables over the file, applied to the service
/// configs' defaults, then checked by the types that own each value.
pub fn resolve(args: ServeArgs) -> Result<Settings, SettingsError> {
    let (file, database_url) = file_and_database(args.db)?;
    let given = args.settings.over(file.serve);
    let mut server = ServerConfig::new(database_url);
    if let Some(url) = given.bus_url {
        server.redis = Some(RedisConfig::new(url));
    }
    server.base_path = normalise_base_path(given.base_path.unwrap_or_default())?;
    set(given.offline_after.map(|s| s.0), &mut server.offline_after);
    if given.demo.enabled {
        server.demo = Some(demo(given.demo));
    }
    realtime(&mut server, given.realtime);
    analytics(&mut server, given.analytics);
    retention(&mut server, given.retention);
    set(given.incidents.resolve_after.map(|s| s.0), &mut server.incidents.resolve_after);
    if given.monitor.enabled.unwrap_or(server.demo.is_some()) {
        server.monitor = Some(monitor(given.monitor));
    }
    let auth = given.security.auth.unwrap_or(AuthMode::Auto);
    security(&mut server, given.security);
    server.mqtt = given.mqtt;
    server.modbus = given.modbus;
    server.notify = given.notify;
    server.validate()?;
    Ok(Settings { bind: given.bind.unwrap_or_else(|| "127.0.0.1:8080".into()), server, auth })
}

fn monitor(m: MonitorSettings) -> enms_host::MonitorConfig {
    let mut c = enms_host::MonitorConfig::default();
    set(m.interval.map(|s| s.0), &mut c.interval);
    c.name = m.name;
    set(m.rated_power_kw, &mut c.rated_power_kw);
    c
}

fn demo(d: DemoSettings) -> DemoConfig {
    let mut demo = DemoConfig::default();
    set(d.seed, &mut demo.seed);
    set(d.interval.map(|s| s.0), &mut demo.interval);
    set(d.history_days, &mut demo.history_days);
    demo.history_end = d.history_end.map(|m| m.0);
    set(d.fault_every.map(|s| s.0), &mut demo.fault_every);
    demo
}

/// The configuration file (empty without `--config`) and the database URL
/// it resolves to with the flags.
fn file_and_database(args: DatabaseArgs) -> Result<(FileConfig, String), SettingsError> {
    let file = match &args.config {
        Some(path) => load_file(path)?,
        None => FileConfig::default(),
    };
    let store = args.store.over(file.store.clone());
    let data_dir = store.data_dir.unwrap_or_else(|| PathBuf::from("data"));
    let url = store.database_url.unwrap_or_else(|| format!("sqlite://{}", data_dir.join("enms.db").display()));
    Ok((file, url))
}

/// The database URL for the commands that open it directly (`enms token`).
pub fn resolve_database(args: DatabaseArgs) -> Result<String, SettingsError> {
    Ok(file_and_database(args)?.1)
}

fn security(server: &mut ServerConfig, s: SecuritySettings) {
    let a = &mut server.auth;
    set(s.cors_origins, &mut a.cors_origins);
    set(s.publish_rate, &mut a.publish_rate.per_second);
    set(s.ingest_rate, &mut a.ingest_rate.per_second);
    set(s.publish_burst, &mut a.publish_rate.burst);
    set(s.ingest_burst, &mut a.ingest_rate.burst);
    set(s.token_cache.map(|s| s.0), &mut a.cache_ttl);
    set(s.session_lifetime.map(|s| s.0), &mut a.sign_in.session_lifetime);
    set(s.max_failed_logins, &mut a.sign_in.max_failures);
    set(s.lockout.map(|s| s.0), &mut a.sign_in.lockout);
    // Per minute in the file (what a person reads), per second inside.
    set(s.login_rate.map(|per_minute| per_minute / 60.0), &mut a.login_rate.per_second);
    set(s.login_burst, &mut a.login_rate.burst);
    set(s.trusted_proxies, &mut a.trusted_proxies);
    set(s.max_connections_per_token, &mut server.gateway.max_per_token);
    set(s.max_json_bytes, &mut server.max_json_bytes);
    set(s.max_csv_bytes, &mut server.max_csv_bytes);
}

fn realtime(server: &mut ServerConfig, r: RealtimeSettings) {
    let gw = &mut server.gateway;
    set(r.ping_interval.map(|s| s.0), &mut gw.ping_interval);
    set(r.drain_timeout.map(|s| s.0), &mut gw.drain_timeout);
    set(r.write_timeout.map(|s| s.0), &mut gw.write_timeout);
    set(r.max_connections, &mut gw.max_connections);
    set(r.queue_messages, &mut gw.hub.queue.messages);
    set(r.queue_bytes, &mut gw.hub.queue.bytes);
    set(r.io_uring, &mut gw.hub.io_uring);
    set(r.fanout_parallelism, &mut gw.hub.fanout_parallelism);
    set(r.window_events, &mut server.bus.window_events);
    set(r.window_age.map(|s| s.0), &mut server.bus.window_age);
    set(r.log_retention.map(|s| s.0), &mut server.bus.log_age);
    if let Some(redis) = server.redis.as_mut() {
        set(r.stream_max_len, &mut redis.stream_max_len);
        set(r.bus_buffer, &mut redis.buffer);
        set(r.bus_prefix, &mut redis.prefix);
    }
}

fn analytics(server: &mut ServerConfig, s: AnalyticsSettings) {
    let a = &mut server.analytics;
    set(s.job_queue, &mut a.job_queue);
    set(s.job_concurrency, &mut a.job_concurrency);
    set(s.streaming, &mut a.streaming);
    set(s.detect_schedule.map(|s| s.0), &mut a.schedule.detect);
    set(s.retrain_schedule.map(|s| s.0), &mut a.schedule.retrain);
    set(s.forecast_schedule.map(|s| s.0), &mut a.schedule.forecast);
    set(s.tariff, &mut a.tariff);
    set(s.refresh_after.map(|s| s.0), &mut a.adapt.refresh_after);
    set(s.refresh_min_readings, &mut a.adapt.refresh_min_readings);
    set(s.budget_window.map(|s| s.0), &mut a.adapt.budget_window);
    set(s.stale_factor, &mut a.adapt.stale_factor);
    set(s.accept_after.map(|s| s.0), &mut a.adapt.accept_after);
}

fn retention(server: &mut ServerConfig, r: RetentionSettings) {
    let c = &mut server.retention;
    for (given, slot) in [(r.raw, &mut c.raw), (r.minute, &mut c.minute), (r.hour, &mut c.hour), (r.day, &mut c.day)] {
        if let Some(keep) = given {
            *slot = keep.0;
        }
    }
    set(r.every.map(|s| s.0), &mut c.every);
    set(r.batch, &mut c.batch);
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
    println!(
        "  monitor self    {}",
        c.monitor.as_ref().map_or("off".to_owned(), |m| format!("as {:?}, every {:?}", m.machine_name(), m.interval))
    );
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
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    /// `enms serve FLAGS…` up to the resolved settings; a refused flag or
    /// setting as its message.
    fn serve(flags: &[&str]) -> Result<Settings, String> {
        let cli =
            Cli::try_parse_from(std::iter::once("enms").chain(flags.iter().copied())).map_err(|e| e.to_string())?;
        resolve(cli.serve).map_err(|e| e.to_string())
    }

    /// docs/configuration.md's table names every flag of `enms serve` with
    /// its variable, in one row.
    #[test]
    fn every_serve_flag_and_variable_is_documented() {
        let doc = include_str!("../../../../docs/configuration.md");
        let command = <Cli as clap::CommandFactory>::command();
        let mut checked = 0;
        for arg in command.get_arguments() {
            let (Some(long), Some(env)) = (arg.get_long(), arg.get_env()) else { continue };
            let env = env.to_string_lossy();
            let row = doc.lines().find(|l| l.starts_with(&format!("| `--{long}")));
            let row = row.unwrap_or_else(|| panic!("docs/configuration.md has no row for --{long}"));
            assert!(row.contains(&format!("`{env}`")), "the row of --{long} names {env}: {row}");
            checked += 1;
        }
        assert!(checked >= 40, "only {checked} flags seen");
    }

    #[test]
    fn flags_override_file_and_defaults_fill_the_rest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("enms.toml");
        std::fs::write(
            &path,
            "bind = \"0.0.0.0:9000\"\nbase_path = \"api/analytics/\"\n[demo]\nenabled = true\nseed = 7\n",
        )
        .expect("write");
        let s = serve(&["--config", path.to_str().expect("utf-8"), "--seed", "9"]).expect("valid");
        assert_eq!(s.bind, "0.0.0.0:9000");
        assert_eq!(s.server.base_path, "/api/analytics");
        assert_eq!(s.server.database_url, "sqlite://data/enms.db");
        assert_eq!(s.server.demo.expect("demo on").seed, 9);
    }

    #[test]
    fn a_demo_history_end_is_a_past_rfc3339_time() {
        let demo = |end: &str| serve(&["--demo", "--demo-history-end", end]);
        let s = demo("2026-11-01T00:00:00Z").expect("valid");
        let end = s.server.demo.and_then(|d| d.history_end).expect("pinned");
        assert_eq!(end.to_rfc3339(), "2026-11-01T00:00:00+00:00");
        let err = demo("yesterday").err().expect("not a time");
        assert!(err.contains("--demo-history-end") && err.contains("RFC 3339"), "{err}");
        let err = demo("9999-01-01T00:00:00Z").err().expect("future");
        assert!(err.to_string().contains("in the future"), "{err}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("enms.toml");
        std::fs::write(&path, "bnd = \"x\"\n").expect("write");
        let err = resolve(ServeArgs { db: DatabaseArgs::file(path.clone()), ..ServeArgs::default() })
            .err()
            .expect("unknown key");
        assert!(err.to_string().contains("bnd"), "{err}");
        let err = serve(&["--offline-after", "soon"]).err().expect("bad");
        assert!(err.contains("--offline-after"), "{err}");
        let err = serve(&["--base-path", "/a b"]).err().expect("bad");
        assert!(err.contains("base path"), "{err}");
        std::fs::write(&path, "offline_after = \"soon\"\n").expect("write");
        let err = serve(&["--config", path.to_str().expect("utf-8")]).err().expect("bad in the file");
        assert!(err.contains("offline_after") && err.contains("soon"), "{err}");
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
        let err =
            resolve(ServeArgs { db: DatabaseArgs::file(path.clone()), ..ServeArgs::default() }).err().expect("zero");
        assert!(err.to_string().contains("job_concurrency"), "{err}");
        // The adaptation settings: read, and each bad value refused by name.
        std::fs::write(
            &path,
            "[analytics]\nrefresh_after = \"6h\"\nrefresh_min_readings = 50\nbudget_window = \"12h\"\n\
             stale_factor = 4.5\naccept_after = \"2d\"\n",
        )
        .expect("write");
        let s = resolve(ServeArgs { db: DatabaseArgs::file(path.clone()), ..ServeArgs::default() }).expect("valid");
        let adapt = &s.server.analytics.adapt;
        assert_eq!(adapt.refresh_after, std::time::Duration::from_secs(6 * 3600));
        assert_eq!((adapt.refresh_min_readings, adapt.stale_factor), (50, 4.5));
        assert_eq!(adapt.accept_after, std::time::Duration::from_secs(2 * 86_400));
        for (line, name) in [
            ("refresh_after = \"0s\"", "refresh_after"),
            ("refresh_after = \"a while\"", "refresh_after"),
            ("refresh_min_readings = 0", "refresh_min_readings"),
            ("refresh_min_readings = -3", "refresh_min_readings"),
            ("budget_window = \"0s\"", "budget_window"),
            ("stale_factor = 0.5", "stale_factor"),
            ("stale_factor = \"high\"", "stale_factor"),
            ("accept_after = \"0s\"", "accept_after"),
        ] {
            std::fs::write(&path, format!("[analytics]\n{line}\n")).expect("write");
            let err = resolve(ServeArgs { db: DatabaseArgs::file(path.clone()), ..ServeArgs::default() })
                .err()
                .unwrap_or_else(|| panic!("{line} accepted"));
            assert!(err.to_string().contains(name), "{line}: {err}");
        }
        let err = serve(&["--stale-factor", "1"]).err().expect("a flag too");
        assert!(err.contains("stale_factor"), "{err}");
    }

    #[test]
    fn realtime_settings_come_from_flags_and_file_and_are_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("enms.toml");
        std::fs::write(&path, "[realtime]\nping_interval = \"5s\"\nqueue_messages = 64\nmax_connections = 7\n")
            .expect("write");
        let s = serve(&["--config", path.to_str().expect("utf-8"), "--max-connections", "9"]).expect("valid");
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
             publish_burst = 10\nmax_connections_per_token = 3\ntoken_cache = \"1s\"\nsession_lifetime = \"8h\"\n\
             max_failed_logins = 3\nlockout = \"30m\"\nlogin_rate = 30\nlogin_burst = 5\n\
             trusted_proxies = [\"127.0.0.1\", \"::1\"]\n",
        )
        .expect("write");
        let s = resolve(ServeArgs { db: DatabaseArgs::file(path.clone()), ..ServeArgs::default() }).expect("valid");
        assert_eq!(s.auth, AuthMode::Required);
        assert_eq!(s.server.auth.cors_origins, ["https://grafana.plant:3000"]);
        assert_eq!((s.server.auth.publish_rate.per_second, s.server.auth.publish_rate.burst), (50.0, 10));
        assert_eq!(s.server.gateway.max_per_token, 3);
        let sign_in = &s.server.auth.sign_in;
        assert_eq!(
            (sign_in.session_lifetime, sign_in.max_failures, sign_in.lockout),
            (std::time::Duration::from_secs(8 * 3600), 3, std::time::Duration::from_secs(1800))
        );
        assert_eq!((s.server.auth.login_rate.per_second, s.server.auth.login_rate.burst), (0.5, 5));
        assert_eq!(s.server.auth.trusted_proxies.len(), 2);
        for (text, setting) in [
            ("auth = \"maybe\"", "auth"),
            ("cors_origins = [\"grafana\"]", "cors_origins"),
            ("publish_rate = 0", "publish_rate"),
            ("ingest_burst = 0", "ingest_burst"),
            ("max_json_bytes = 0", "max_json_bytes"),
            ("session_lifetime = \"0s\"", "session_lifetime"),
            ("max_failed_logins = 0", "max_failed_logins"),
            ("lockout = \"soon\"", "lockout"),
            ("login_rate = -1", "login_rate"),
            ("login_burst = 0", "login_burst"),
            ("trusted_proxies = [\"nginx\"]", "trusted_proxies"),
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
    fn an_mqtt_input_is_read_from_the_file_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("enms.toml");
        let file = path.to_str().expect("utf-8").to_owned();
        std::fs::write(
            &path,
            "[mqtt]\nurl = \"mqtt://10.0.0.7:1883\"\nclient_id = \"enms-hall-a\"\n\
             [[mqtt.subscriptions]]\ntopic = \"plant/+machine/reading\"\nformat = \"reading\"\n",
        )
        .expect("write");
        let s = serve(&["--config", &file]).expect("valid");
        let mqtt = s.server.mqtt.expect("mqtt input");
        assert_eq!((mqtt.client_id.as_str(), mqtt.subscriptions.len()), ("enms-hall-a", 1));
        std::fs::write(&path, "[mqtt]\nurl = \"mqtt://h\"\nsubscriptions = []\n").expect("write");
        let err = serve(&["--config", &file]).err().expect("no subscriptions");
        assert!(err.contains("mqtt.subscriptions"), "{err}");
        std::fs::write(&path, "[mqtt]\nurl = \"mqtt://h\"\nqos = 2\nsubscriptions = []\n").expect("write");
        let err = serve(&["--config", &file]).err().expect("unknown key");
        assert!(err.contains("qos"), "{err}");
    }

    #[test]
    fn host_monitoring_follows_the_demo_and_incident_and_monitor_values_are_checked() {
        let s = serve(&[]).expect("defaults");
        assert!(s.server.monitor.is_none(), "off without --demo");
        let s = serve(&["--demo"]).expect("demo");
        assert_eq!(s.server.monitor.expect("on with --demo").interval, std::time::Duration::from_secs(5));
        assert!(serve(&["--demo", "--monitor-self=false"]).expect("off").server.monitor.is_none());
        let s = serve(&["--monitor-self", "--monitor-name", "edge-1", "--incident-resolve-after", "10m"]).expect("ok");
        assert_eq!(s.server.monitor.and_then(|m| m.name).as_deref(), Some("edge-1"));
        assert_eq!(s.server.incidents.resolve_after, std::time::Duration::from_secs(600));
        for (flags, needle) in [
            (&["--monitor-self", "--monitor-interval", "10ms"][..], "monitor interval"),
            (&["--monitor-self", "--monitor-rated-power-kw=-1"], "monitor rated power"),
            (&["--monitor-self", "--monitor-name", " "], "monitor name"),
            (&["--incident-resolve-after", "90d"], "incidents resolve_after"),
            (&["--forecast-schedule", "61 * * * *"], "forecast-schedule"),
        ] {
            let err = serve(flags).err().unwrap_or_else(|| panic!("{flags:?} accepted"));
            assert!(err.contains(needle), "{flags:?}: {err}");
        }
    }

    #[test]
    fn retention_is_read_from_file_and_flags_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("enms.toml");
        let file = path.to_str().expect("utf-8").to_owned();
        std::fs::write(&path, "[retention]\nraw = \"90d\"\nminute = \"730d\"\nbatch = 1000\n").expect("write");
        let s = serve(&["--config", &file]).expect("valid");
        let day = |n: u64| Some(std::time::Duration::from_secs(n * 86_400));
        assert_eq!((s.server.retention.raw, s.server.retention.minute), (day(90), day(730)));
        assert_eq!((s.server.retention.hour, s.server.retention.batch), (None, 1000));
        // A flag wins over the file, and `forever` turns pruning off.
        let s = serve(&["--config", &file, "--retention-raw", "forever", "--retention-minute", "forever"]).expect("ok");
        assert!(!s.server.retention.prunes());
        // Shorter than the level it is built from.
        let err = serve(&["--config", &file, "--retention-minute", "30d"]).err().expect("minute < raw");
        assert!(err.contains("retention.minute") && err.contains("retention.raw (90d)"), "{err}");
        // An unknown tier, and a value that is no duration.
        std::fs::write(&path, "[retention]\nweek = \"90d\"\n").expect("write");
        let err = serve(&["--config", &file]).err().expect("unknown tier");
        assert!(err.contains("week"), "{err}");
        let err = serve(&["--retention-raw", "a while"]).err().expect("not a duration");
        assert!(err.contains("retention-raw"), "{err}");
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
        let err = serve(&["--bus-url", "nats://x"]).err().expect("not redis");
        assert!(err.to_string().contains("bus_url"), "{err}");
        std::fs::write(&path, "bus_url = \"redis://h\"\n[realtime]\nbus_buffer = 0\n").expect("write");
        let err =
            resolve(ServeArgs { db: DatabaseArgs::file(path), ..ServeArgs::default() }).err().expect("zero buffer");
        assert!(err.to_string().contains("bus_buffer"), "{err}");
        assert!(resolve(ServeArgs::default()).expect("default").server.redis.is_none(), "in-process by default");
    }
}
