//! Modbus TCP polling against a real Modbus server: pymodbus (PyPI, in the
//! venv `scripts/modbus-sim/setup` makes; `scripts/test` runs it) serving a
//! simulated meter (`scripts/modbus-sim/meter.py`: power as float32, an
//! energy counter in Wh as uint32 that wraps soon after the start). What a
//! user would notice: readings with the meter's power and the energy used
//! since the previous poll, across the counter's rollover; a meter that
//! stops answering raises one alert and shows as unreachable, and another
//! alert when it answers again.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::TestServer;
use crate::scaleout::free_port;

const WAIT: Duration = Duration::from_secs(20);

fn python() -> String {
    std::env::var("ENMS_TEST_MODBUS_PYTHON")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/modbus-venv/bin/python").to_owned())
}

struct Meter {
    port: u16,
    child: Option<Child>,
}

impl Meter {
    async fn start(port: u16) -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/modbus-sim/meter.py");
        let child = Command::new(python())
            .args([script, &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pymodbus's python (scripts/modbus-sim/setup makes target/modbus-venv; scripts/test runs it)");
        let deadline = tokio::time::Instant::now() + WAIT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "the simulated meter listens in time");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self { port, child: Some(child) }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.kill();
    }
}

fn modbus_config(port: u16) -> enms_modbus::ModbusConfig {
    toml::from_str(&format!(
        "[[meters]]\nmachine = \"Press-1\"\nhost = \"127.0.0.1\"\nport = {port}\ninterval_ms = 200\ntimeout_ms = 300\n\
         fail_after = 2\n\
         registers = [\n\
           {{ address = 0, type = \"f32\", field = \"power_kw\" }},\n\
           {{ address = 2, type = \"u32\", scale = 0.001, field = \"energy_counter_kwh\" }},\n\
           {{ address = 4, type = \"u16\", scale = 0.1, field = \"supply_temp_c\" }},\n\
         ]\n"
    ))
    .expect("config")
}

async fn meter_status(s: &TestServer) -> Value {
    s.get("/api/v1/health").await.1["modbus"][0].clone()
}

async fn until(s: &TestServer, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let m = meter_status(s).await;
        if check(&m) {
            return m;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn alerts(s: &TestServer) -> Vec<Value> {
    let events = s.get("/api/v1/events?types=system_alert").await.1;
    events["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["data"]["alert_type"] == "modbus_meter")
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_meter_is_polled_into_readings_across_its_counter_rollover_and_an_outage_is_announced() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The machine exists before the meter is configured, as in a plant.
    let s = TestServer::start_in(dir.path(), |_| {}).await;
    let press = s.create_machine("Press-1").await;
    s.stop().await;
    let port = free_port();
    let mut meter = Meter::start(port).await;
    let s = TestServer::start_in(dir.path(), move |c| c.modbus = Some(modbus_config(port))).await;

    // The counter starts 20 Wh short of 2^32: at 42.5 kW it wraps within
    // two seconds.
    let m = until(&s, "15 readings", |m| m["readings"].as_u64().is_some_and(|n| n >= 15)).await;
    assert_eq!(m["state"], "ok", "{m}");
    // A rollover read wrong would have made a reading the ingest refuses:
    // a failed poll.
    assert_eq!(m["failures"], 0, "{m}");
    let path = format!("/api/v1/machines/{press}/readings?start=2000-01-01T00:00:00Z&resolution=raw");
    let points = s.get(&path).await.1["points"].as_array().cloned().expect("points");
    assert!(points.len() >= 15, "{} readings", points.len());
    for p in &points {
        assert_eq!(p["power_kw"], 42.5, "{p}");
        let e = p["energy_kwh"].as_f64().expect("energy");
        // 42.5 kW for about 0.2 s is about 2.4 Wh; a rollover read wrong
        // would be 4.3 million kWh (and refused by the ingest rules).
        assert!((0.0..0.02).contains(&e), "energy per reading {e} kWh: {p}");
    }
    let total: f64 = points.iter().filter_map(|p| p["energy_kwh"].as_f64()).sum();
    assert!(total > 0.01, "the counter's steps add up: {total} kWh over {} readings", points.len());

    // The meter goes away: after fail_after failed polls, one alert.
    meter.kill();
    until(&s, "unreachable", |m| m["state"] == "unreachable").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while alerts(&s).await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no alert for the silent meter");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first = alerts(&s).await;
    assert_eq!(first.len(), 1, "one alert for the outage, not one per poll: {first:?}");
    assert!(first[0]["data"]["message"].as_str().is_some_and(|m| m.contains("does not answer")), "{first:?}");

    // Back on the same port: it answers again, and says so.
    let _meter = Meter::start(meter.port).await;
    until(&s, "ok again", |m| m["state"] == "ok").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let all = alerts(&s).await;
        if all.iter().any(|a| a["data"]["message"].as_str().is_some_and(|m| m.contains("answers again"))) {
            assert_eq!(all.len(), 2, "{all:?}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no all-clear: {all:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let h = s.get("/api/v1/health").await.1;
    let metrics = s.request(reqwest::Method::GET, "/metrics").send().await.expect("scrape").text().await.expect("text");
    assert!(metrics.contains("enms_modbus_meter_up{machine=\"Press-1\"} 1"), "{metrics}\n{h}");
    s.stop().await;
}
