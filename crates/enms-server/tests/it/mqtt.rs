//! MQTT ingest against a real mosquitto of the test's own (a free port, so
//! the test owns its sessions): what a plant device publishes reaches the
//! API through the ingest path, bad messages are counted by reason without
//! stopping the subscription, and what is published while enms is down
//! arrives when it is back.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{DurationRound, Utc};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::{Value, json};

use crate::common::TestServer;
use crate::scaleout::free_port;

const WAIT: Duration = Duration::from_secs(15);

struct Mosquitto {
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    async fn start() -> Self {
        Self::start_on(free_port()).await
    }

    /// On `port`: a broker restarted where its clients reconnect.
    async fn start_on(port: u16) -> Self {
        Self::spawn(&format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"), &[port]).await
    }

    /// A mosquitto with this configuration, once it listens on `ports`
    /// (the first is the one devices use).
    async fn spawn(config: &str, ports: &[u16]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(&conf, config).expect("write");
        let child = Command::new("mosquitto")
            .args(["-c", conf.to_str().expect("utf-8")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto (Debian package mosquitto) starts");
        let deadline = tokio::time::Instant::now() + WAIT;
        for port in ports {
            while tokio::net::TcpStream::connect(("127.0.0.1", *port)).await.is_err() {
                assert!(tokio::time::Instant::now() < deadline, "mosquitto listens in time");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Self { port: ports[0], child, _dir: dir }
    }

    /// A device publishing at QoS 1.
    fn device(&self) -> AsyncClient {
        let mut options = MqttOptions::new(format!("device-{}", uuid::Uuid::new_v4().simple()), "127.0.0.1", self.port);
        options.set_keep_alive(Duration::from_secs(5));
        let (client, mut events) = AsyncClient::new(options, 100);
        tokio::spawn(async move { while events.poll().await.is_ok() {} });
        client
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mqtt_config(port: u16, client_id: &str) -> enms_mqtt::MqttConfig {
    toml::from_str(&format!(
        "url = \"mqtt://127.0.0.1:{port}\"\nclient_id = \"{client_id}\"\n\
         [[subscriptions]]\ntopic = \"plant/+machine/reading\"\nformat = \"reading\"\n\
         [[subscriptions]]\ntopic = \"plant/+machine/json\"\nformat = \"json\"\ntimestamp = \"ts\"\n\
         fields = {{ power_kw = \"m.p\", energy_kwh = \"m.e\", pressure_bar = \"m.bar\" }}\n"
    ))
    .expect("config")
}

async fn health_mqtt(s: &TestServer) -> Value {
    s.get("/api/v1/health").await.1["mqtt"].clone()
}

/// Waits until `check` holds for the MQTT part of `/health`.
async fn until_health(s: &TestServer, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let h = health_mqtt(s).await;
        if check(&h) {
            return h;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {h}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn readings(s: &TestServer, machine: &str) -> Vec<Value> {
    let path = format!("/api/v1/machines/{machine}/readings?start=2000-01-01T00:00:00Z&resolution=raw");
    s.get(&path).await.1["points"].as_array().cloned().unwrap_or_default()
}

async fn until_readings(s: &TestServer, machine: &str, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = readings(s, machine).await;
        if got.len() >= n {
            return got;
        }
        assert!(tokio::time::Instant::now() < deadline, "{} of {n} readings stored", got.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn at(minutes_ago: i64) -> String {
    let t = Utc::now().duration_trunc(chrono::Duration::minutes(1)).expect("trunc")
        - chrono::Duration::minutes(minutes_ago);
    t.to_rfc3339()
}

#[tokio::test]
async fn a_device_publishes_readings_and_bad_messages_are_counted_without_stopping_the_subscription() {
    let broker = Mosquitto::start().await;
    let port = broker.port;
    let s = TestServer::with(move |c| c.mqtt = Some(mqtt_config(port, "enms-it-formats"))).await;
    let press = s.create_machine("Press-1").await;
    until_health(&s, "connected", |h| h["connected"] == true).await;
    let device = broker.device();
    let publish = |topic: &str, payload: Vec<u8>| {
        let (device, topic) = (device.clone(), topic.to_owned());
        async move { device.publish(topic, QoS::AtLeastOnce, false, payload).await.expect("publish") }
    };
    // The subscription is in place once a message sent after it arrives.
    let reading = json!({"timestamp": at(3), "power_kw": 12.5, "energy_kwh": 0.2, "production_units": 4});
    publish("plant/Press-1/reading", reading.to_string().into_bytes()).await;
    until_readings(&s, &press, 1).await;

    publish(
        "plant/press-1/json",
        json!({"ts": at(2), "m": {"p": "7.5", "e": 0.125, "bar": 6.9}}).to_string().into_bytes(),
    )
    .await;
    publish("plant/Press-1/reading", b"{not json".to_vec()).await;
    publish("plant/Nobody/json", json!({"ts": at(2), "m": {"p": 1, "e": 1, "bar": 1}}).to_string().into_bytes()).await;
    publish("plant/Press-1/json", json!({"ts": at(2), "m": {"p": 1}}).to_string().into_bytes()).await;
    publish(
        "plant/Press-1/reading",
        json!({"timestamp": at(2), "power_kw": -5, "energy_kwh": 1}).to_string().into_bytes(),
    )
    .await;
    // Still subscribed after the bad ones.
    publish(
        "plant/Press-1/reading",
        json!({"timestamp": at(1), "power_kw": 9, "energy_kwh": 0.15}).to_string().into_bytes(),
    )
    .await;
    let got = until_readings(&s, &press, 3).await;
    assert_eq!(got.len(), 3, "{got:?}");
    let from_json = got.iter().find(|p| p["power_kw"] == 7.5).expect("the JSON-path reading");
    assert_eq!(from_json["energy_kwh"], 0.125, "{from_json}");

    let h = until_health(&s, "four refusals", |h| h["rejected"] == 4).await;
    let reasons = &h["rejected_by_reason"];
    assert_eq!(
        (
            reasons["not_json"].as_u64(),
            reasons["unknown_machine"].as_u64(),
            reasons["missing_field"].as_u64(),
            reasons["invalid_reading"].as_u64()
        ),
        (Some(1), Some(1), Some(1), Some(1)),
        "{h}"
    );
    assert_eq!(h["readings_stored"], 3, "{h}");
    assert_eq!(h["messages"]["plant/+machine/reading"], 4, "{h}");
    assert_eq!(h["messages"]["plant/+machine/json"], 3, "{h}");
    let metrics = s.request(reqwest::Method::GET, "/metrics").send().await.expect("scrape").text().await.expect("text");
    assert!(metrics.contains("enms_mqtt_rejected_total{reason=\"not_json\"} 1"), "{metrics}");
    assert!(metrics.contains("enms_mqtt_up 1"), "{metrics}");

    // Refusals past the alert share (10 % of the recent messages) raise one
    // system_alert for everyone watching.
    for _ in 0..6 {
        publish("plant/Press-1/reading", b"[1, 2".to_vec()).await;
    }
    until_health(&s, "ten refusals", |h| h["rejected"] == 10).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let events = s.get("/api/v1/events?types=system_alert").await.1;
        let alerts: Vec<&Value> = events["events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["data"]["alert_type"] == "mqtt_input")
            .collect();
        if let Some(a) = alerts.first() {
            assert_eq!(alerts.len(), 1, "one alert, not one per message: {events}");
            assert!(a["data"]["message"].as_str().is_some_and(|m| m.contains("refused")), "{a}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no mqtt_input alert: {events}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.stop().await;
}

#[tokio::test]
async fn what_a_device_publishes_while_enms_is_down_arrives_when_it_is_back() {
    let broker = Mosquitto::start().await;
    let port = broker.port;
    let dir = tempfile::tempdir().expect("tempdir");
    let tune = move |c: &mut enms_server::ServerConfig| c.mqtt = Some(mqtt_config(port, "enms-it-persistent"));
    let s = TestServer::start_in(dir.path(), tune).await;
    let press = s.create_machine("Press-1").await;
    until_health(&s, "connected", |h| h["connected"] == true).await;
    let device = broker.device();
    let first = json!({"timestamp": at(10), "power_kw": 10, "energy_kwh": 0.1});
    device.publish("plant/Press-1/reading", QoS::AtLeastOnce, false, first.to_string()).await.expect("publish");
    until_readings(&s, &press, 1).await;
    s.stop().await;

    for minutes in [6, 5, 4] {
        let r = json!({"timestamp": at(minutes), "power_kw": 20 + minutes, "energy_kwh": 0.3});
        device.publish("plant/Press-1/reading", QoS::AtLeastOnce, false, r.to_string()).await.expect("publish");
    }
    let s = TestServer::start_in(dir.path(), tune).await;
    let got = until_readings(&s, &press, 4).await;
    let powers: Vec<f64> = got.iter().filter_map(|p| p["power_kw"].as_f64()).collect();
    assert_eq!(powers, vec![10.0, 26.0, 25.0, 24.0], "kept by the broker for the session, in order");
    s.stop().await;
}

#[tokio::test]
async fn durable_events_go_out_to_the_broker_for_scada_to_subscribe() {
    let broker = Mosquitto::start().await;
    let port = broker.port;
    let s = TestServer::with(move |c| {
        let mut config = mqtt_config(port, "enms-it-relay");
        config.publish = Some(
            toml::from_str("prefix = \"site-a/enms\"\ntypes = [\"system_alert\", \"anomaly_detected\"]\n")
                .expect("toml"),
        );
        c.mqtt = Some(config);
    })
    .await;
    until_health(&s, "connected", |h| h["connected"] == true).await;
    // A SCADA client subscribed to every enms event of the site.
    let mut options = MqttOptions::new("scada", "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(5));
    let (scada, mut inbox) = AsyncClient::new(options, 100);
    scada.subscribe("site-a/enms/#", QoS::AtLeastOnce).await.expect("subscribe");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(event) = inbox.poll().await {
            match event {
                rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) => {
                    let _ = tx.send(None);
                }
                rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) => {
                    let _ = tx.send(Some((p.topic.clone(), p.payload.to_vec())));
                }
                _ => {}
            }
        }
    });
    assert_eq!(tokio::time::timeout(WAIT, rx.recv()).await.expect("suback"), Some(None));
    let mut ids = Vec::new();
    for n in 0..3 {
        let alert = json!({"type": "system_alert", "data": {"alert_type": "relay", "message": format!("relay {n}"), "severity": "warning"}});
        let (status, body) = s.post("/api/v1/events", &alert).await;
        assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{body}");
        ids.push(body["id"].as_str().expect("id").to_owned());
        // Not relayed: metric_updated is not in the configured types.
        let metric = json!({"type": "metric_updated", "data": {"metric_name": "load", "value": n}});
        assert_eq!(s.post("/api/v1/events", &metric).await.0, reqwest::StatusCode::ACCEPTED);
    }
    let mut got = Vec::new();
    while got.len() < 3 {
        let (topic, payload) =
            tokio::time::timeout(WAIT, rx.recv()).await.expect("relayed in time").expect("open").expect("a message");
        assert_eq!(topic, "site-a/enms/system_alert");
        let envelope: Value = serde_json::from_slice(&payload).expect("the event's JSON envelope");
        got.push(envelope["id"].as_str().expect("id").to_owned());
    }
    assert_eq!(got, ids, "every alert once, in order");
    assert_eq!(health_mqtt(&s).await["events_published"], 3);
    s.stop().await;
}

/// `format = "number"`: a plain number is the topic's machine's power; its
/// energy is that power over the time since the machine's previous number.
#[tokio::test]
async fn plain_numbers_become_readings_with_the_energy_since_the_last() {
    let broker = Mosquitto::start().await;
    let port = broker.port;
    let config: enms_mqtt::MqttConfig = toml::from_str(&format!(
        "url = \"mqtt://127.0.0.1:{port}\"\nclient_id = \"enms-it-numbers\"\n\
         [[subscriptions]]\ntopic = \"plant/+machine/power\"\nformat = \"number\"\n"
    ))
    .expect("config");
    let s = TestServer::with(move |c| c.mqtt = Some(config)).await;
    let fan = s.create_machine("Fan-1").await;
    until_health(&s, "connected", |h| h["connected"] == true).await;
    let device = broker.device();
    let started = std::time::Instant::now();
    device.publish("plant/Fan-1/power", QoS::AtLeastOnce, false, b"40".to_vec()).await.expect("publish");
    // The first number only starts the count.
    until_health(&s, "the first number", |h| h["messages"]["plant/+machine/power"] == 1).await;
    device.publish("plant/Fan-1/power", QoS::AtLeastOnce, false, b"bogus".to_vec()).await.expect("publish");
    device.publish("plant/fan-1/power", QoS::AtLeastOnce, false, b" 41.5\n".to_vec()).await.expect("publish");
    let got = until_readings(&s, &fan, 1).await;
    let elapsed_h = started.elapsed().as_secs_f64() / 3600.0;
    assert_eq!(got[0]["power_kw"], 41.5, "{got:?}");
    let kwh = got[0]["energy_kwh"].as_f64().expect("energy");
    assert!(kwh > 0.0 && kwh <= 41.5 * elapsed_h, "41.5 kW over at most {elapsed_h} h: {kwh}");
    let h = until_health(&s, "the bad number refused", |h| h["rejected"] == 1).await;
    assert_eq!(
        (h["rejected_by_reason"]["invalid_reading"].as_u64(), h["readings_stored"].as_u64()),
        (Some(1), Some(1)),
        "{h}"
    );
    s.stop().await;
}

/// A device publishing as fast as its client can: all of a 300-message
/// burst is stored and acknowledged. (The ack stall bench/mqtt.sh found —
/// acks dropped by a full request queue, after which the broker stopped
/// sending — shows at 20,000 messages into a release build; this debug-build
/// test stores about 70 messages a second and does not reach it.)
#[tokio::test]
async fn a_fast_publisher_is_taken_to_the_last_message() {
    let broker = Mosquitto::start().await;
    let port = broker.port;
    let s = TestServer::with(move |c| c.mqtt = Some(mqtt_config(port, "enms-it-fast"))).await;
    s.create_machine("Press-9").await;
    until_health(&s, "connected", |h| h["connected"] == true).await;
    let device = broker.device();
    for i in 1..=300i64 {
        let reading = json!({"timestamp": at(i), "power_kw": 10.0 + (i % 5) as f64, "energy_kwh": 0.1});
        device
            .publish("plant/Press-9/reading", QoS::AtLeastOnce, false, reading.to_string().into_bytes())
            .await
            .expect("publish");
    }
    let h = until_health(&s, "all 300 stored", |h| h["readings_stored"] == 300).await;
    assert_eq!(h["rejected"], 0, "{h}");
    s.stop().await;
}

/// The broker killed and started again (without persistence: the session is
/// gone): `/health` says disconnected in between, enms reconnects and
/// subscribes again, and readings flow as before.
#[tokio::test]
async fn a_broker_killed_and_restarted_is_subscribed_again() {
    let broker = Mosquitto::start().await;
    let port = broker.port;
    let s = TestServer::with(move |c| c.mqtt = Some(mqtt_config(port, "enms-it-broker-restart"))).await;
    let press = s.create_machine("Press-7").await;
    until_health(&s, "connected", |h| h["connected"] == true).await;
    let publish = |device: rumqttc::AsyncClient, minutes_ago: i64| async move {
        let reading = json!({"timestamp": at(minutes_ago), "power_kw": 12.0, "energy_kwh": 0.2});
        device
            .publish("plant/Press-7/reading", QoS::AtLeastOnce, false, reading.to_string().into_bytes())
            .await
            .expect("publish");
    };
    publish(broker.device(), 3).await;
    until_readings(&s, &press, 1).await;

    drop(broker); // SIGKILL
    let h = until_health(&s, "disconnected", |h| h["connected"] == false).await;
    assert!(h["last_error"].as_str().is_some_and(|e| !e.is_empty()), "{h}");
    let broker = Mosquitto::start_on(port).await;
    until_health(&s, "connected again", |h| h["connected"] == true).await;
    // Subscribed again once a reading published now arrives.
    let device = broker.device();
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut minutes_ago = 2;
    loop {
        publish(device.clone(), minutes_ago).await;
        if tokio::time::timeout(Duration::from_millis(500), until_readings(&s, &press, 2)).await.is_ok() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no reading after the broker came back");
        minutes_ago += 1;
    }
    s.stop().await;
}

/// A test CA and what it signs, made with the openssl command.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Self {
        let pki = Self { dir: tempfile::tempdir().expect("tempdir") };
        pki.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=enms test CA",
        ]);
        pki
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl").args(args).current_dir(self.dir.path()).output().expect("openssl runs");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// `<name>.pem` and `<name>.key`, signed by this CA, for a server at
    /// localhost / 127.0.0.1 or for a client.
    fn issue(&self, name: &str, usage: &str) {
        let (key, csr, pem, ext) =
            (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"), format!("{name}.ext"));
        std::fs::write(
            self.path(&ext),
            format!("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage={usage}\nbasicConstraints=CA:FALSE\n"),
        )
        .expect("write");
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={name}"),
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &ext,
        ]);
    }
}

impl Mosquitto {
    /// A plain listener for devices and a TLS one that asks for a client
    /// certificate signed by `pki`'s CA; `port` is the plain one.
    async fn start_tls(pki: &Pki) -> (Self, u16) {
        pki.issue("server", "serverAuth");
        let (plain, tls) = (free_port(), free_port());
        let config = format!(
            "per_listener_settings false\nallow_anonymous true\npersistence false\nuser root\n\
             listener {plain} 127.0.0.1\n\
             listener {tls} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\nrequire_certificate true\n",
            ca = pki.path("ca.pem").display(),
            cert = pki.path("server.pem").display(),
            key = pki.path("server.key").display(),
        );
        (Self::spawn(&config, &[plain, tls]).await, tls)
    }
}

fn tls_config(port: u16, client_id: &str, ca: &std::path::Path, client: Option<(&Pki, &str)>) -> enms_mqtt::MqttConfig {
    let auth = client
        .map(|(pki, name)| {
            format!(
                "client_cert_file = {:?}\nclient_key_file = {:?}\n",
                pki.path(&format!("{name}.pem")),
                pki.path(&format!("{name}.key"))
            )
        })
        .unwrap_or_default();
    toml::from_str(&format!(
        "url = \"mqtts://localhost:{port}\"\nclient_id = \"{client_id}\"\nca_file = {ca:?}\n{auth}\
         [[subscriptions]]\ntopic = \"plant/+machine/reading\"\nformat = \"reading\"\n"
    ))
    .expect("config")
}

#[tokio::test]
async fn over_tls_with_a_client_certificate_readings_arrive_and_a_wrong_ca_is_refused_by_name() {
    let pki = Pki::new();
    pki.issue("enms", "clientAuth");
    let (broker, tls_port) = Mosquitto::start_tls(&pki).await;

    // The broker's CA and a client certificate: connected, readings flow.
    let ca = pki.path("ca.pem");
    let s = TestServer::with(|c| c.mqtt = Some(tls_config(tls_port, "enms-it-tls", &ca, Some((&pki, "enms"))))).await;
    let press = s.create_machine("Press-1").await;
    until_health(&s, "connected over TLS", |h| h["connected"] == true).await;
    let device = broker.device();
    let reading = json!({"timestamp": at(1), "power_kw": 9.5, "energy_kwh": 0.1});
    device.publish("plant/Press-1/reading", QoS::AtLeastOnce, false, reading.to_string()).await.expect("publish");
    let got = until_readings(&s, &press, 1).await;
    assert_eq!(got[0]["power_kw"], 9.5);

    // Trusting another CA: the broker's certificate is refused, and /health
    // says why instead of pretending to be connected.
    let other = Pki::new();
    let wrong = TestServer::with(|c| {
        c.mqtt = Some(tls_config(tls_port, "enms-it-tls-wrong-ca", &other.path("ca.pem"), Some((&pki, "enms"))))
    })
    .await;
    let h = until_health(&wrong, "a certificate error", |h| {
        h["last_error"].as_str().is_some_and(|e| e.to_lowercase().contains("certificate"))
    })
    .await;
    assert_eq!(h["connected"], false, "{h}");

    // Without a client certificate the broker (require_certificate) hangs up.
    let anonymous = TestServer::with(|c| c.mqtt = Some(tls_config(tls_port, "enms-it-tls-no-cert", &ca, None))).await;
    let h = until_health(&anonymous, "the broker refusing", |h| h["last_error"].is_string()).await;
    assert_eq!(h["connected"], false, "{h}");
}
