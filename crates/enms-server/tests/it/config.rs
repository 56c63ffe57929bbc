//! `App::build` holds any configuration to the rules of the types that own
//! each setting, whoever built it: here a program embedding enms, with no
//! CLI in between. A refused configuration opens nothing.

use enms_server::{App, RedisConfig, ServerConfig, ServerError};

/// What a case does to a valid configuration.
type Breaks = fn(&mut ServerConfig);

fn config(dir: &tempfile::TempDir) -> ServerConfig {
    ServerConfig::new(format!("sqlite://{}", dir.path().join("enms.db").display()))
}

#[tokio::test]
async fn an_invalid_setting_is_refused_by_name_before_anything_is_opened() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: [(&str, Breaks); 13] = [
        ("queue_bytes", |c| c.gateway.hub.queue.bytes = 0),
        ("ping_interval", |c| c.gateway.ping_interval = std::time::Duration::ZERO),
        ("window_events", |c| c.bus.window_events = 0),
        ("job_concurrency", |c| c.analytics.job_concurrency = 0),
        ("tariff", |c| c.analytics.tariff.peak_start_hour = 25),
        ("publish_burst", |c| c.auth.publish_rate.burst = 0),
        ("cors_origins", |c| c.auth.cors_origins = vec!["grafana".into()]),
        ("base_path", |c| c.base_path = "api/analytics/".into()),
        ("max_json_bytes", |c| c.max_json_bytes = 0),
        ("bus_url", |c| c.redis = Some(RedisConfig::new("nats://127.0.0.1:4222"))),
        ("modbus.meters", |c| {
            let meter = "[[meters]]\nmachine = \"M\"\nhost = \"h\"\nregisters = [{ address = 0, type = \"f32\", field = \"power_kw\" }]\n";
            c.modbus = Some(toml::from_str(meter).expect("toml"))
        }),
        ("mqtt.subscriptions", |c| {
            c.mqtt = Some(toml::from_str("url = \"mqtt://127.0.0.1:1883\"\nsubscriptions = []\n").expect("toml"))
        }),
        ("bus_buffer", |c| c.redis = Some(RedisConfig { buffer: 0, ..RedisConfig::new("redis://127.0.0.1:1") })),
    ];
    for (setting, breaks) in cases {
        let mut c = config(&dir);
        breaks(&mut c);
        match App::build(c).await {
            Err(ServerError::Config(e)) => assert_eq!(e.setting, setting, "{e}"),
            Err(e) => panic!("{setting}: refused as a setting, got {e}"),
            Ok(_) => panic!("{setting}: an invalid configuration was accepted"),
        }
    }
    assert!(!dir.path().join("enms.db").exists(), "a refused configuration opened no database");

    let app = App::build(config(&dir)).await.expect("the defaults are valid");
    drop(app);
}
