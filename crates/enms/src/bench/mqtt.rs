//! `enms bench mqtt`: MQTT ingest throughput — readings published to a
//! broker at QoS 1 (enms's reading JSON, `--batch` readings per message,
//! round-robin over `--machines` machines) until the server's MQTT input
//! reports them all stored (`/api/v1/health` → `mqtt.readings_stored`).
//! The server must subscribe `<prefix>/+machine/reading` with
//! `format = "reading"` (bench/mqtt.sh writes that config). Messages are
//! encoded before the clock starts; the clock stops when the last reading
//! is stored, so the figure is stored readings per second end to end.

use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::{Value, json};

use crate::cli::BenchMqttArgs;

type BoxError = Box<dyn std::error::Error>;

pub async fn run(args: BenchMqttArgs) -> Result<(), BoxError> {
    let base = args.url.trim_end_matches('/');
    let http = reqwest::Client::new();
    let stored = || async {
        let h: Value = http.get(format!("{base}/api/v1/health")).send().await?.json().await?;
        h["mqtt"]["readings_stored"].as_u64().ok_or_else(|| -> BoxError { "the server has no MQTT input".into() })
    };
    // Machines named bench-0 … bench-N, created if missing.
    let mut names = Vec::new();
    for m in 0..args.machines {
        let name = format!("bench-{m}");
        let r = http
            .post(format!("{base}/api/v1/machines"))
            .json(&json!({"name": name, "type": "compressor"}))
            .send()
            .await?;
        if !(r.status().is_success() || r.status() == reqwest::StatusCode::CONFLICT) {
            return Err(format!("machine {name}: {}", r.text().await?).into());
        }
        names.push(name);
    }
    let start = chrono::Utc::now() - chrono::Duration::days(30);
    let messages: Vec<(String, Vec<u8>)> = (0..args.readings.div_ceil(args.batch))
        .map(|i| {
            let machine = &names[i % names.len()];
            let rows: Vec<Value> = (0..args.batch)
                .map(|k| {
                    let n = (i * args.batch + k) as i64;
                    let ts = start + chrono::Duration::milliseconds(n * 100);
                    json!({"timestamp": ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true), "power_kw": 40.0 + (n % 7) as f64, "energy_kwh": 0.001})
                })
                .collect();
            (format!("{}/{machine}/reading", args.prefix), serde_json::to_vec(&rows).unwrap_or_default())
        })
        .collect();
    let total = (messages.len() * args.batch) as u64;
    let before = stored().await?;
    let (host, port) = args
        .broker
        .trim_start_matches("mqtt://")
        .rsplit_once(':')
        .map_or((args.broker.trim_start_matches("mqtt://").to_owned(), 1883), |(h, p)| {
            (h.to_owned(), p.parse().unwrap_or(1883))
        });
    let mut options = MqttOptions::new(format!("enms-bench-{}", uuid::Uuid::new_v4().simple()), host, port);
    options.set_keep_alive(Duration::from_secs(30)).set_inflight(1000).set_max_packet_size(64 << 20, 64 << 20);
    let (client, mut events) = AsyncClient::new(options, 1000);
    let poller = tokio::spawn(async move { while events.poll().await.is_ok() {} });
    let started = Instant::now();
    for (topic, payload) in messages {
        client.publish(topic, QoS::AtLeastOnce, false, payload).await?;
    }
    let published = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut done = stored().await? - before;
    while done < total {
        if Instant::now() > deadline {
            return Err(format!("only {done} of {total} readings stored in 10 minutes").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        done = stored().await? - before;
    }
    let elapsed = started.elapsed().as_secs_f64();
    poller.abort();
    println!(
        "readings: {total} in {} messages of {}, {} machines",
        total as usize / args.batch,
        args.batch,
        args.machines
    );
    println!("published in {:.2} s; all stored after {elapsed:.2} s", published.as_secs_f64());
    println!(
        "MQTT ingest: {:.0} readings/s ({:.0} messages/s)",
        total as f64 / elapsed,
        total as f64 / args.batch as f64 / elapsed
    );
    Ok(())
}
