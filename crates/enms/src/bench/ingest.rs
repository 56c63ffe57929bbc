//! `enms bench ingest`: readings per second into a running server through
//! JSON batches (`POST /api/v1/readings`) and CSV import
//! (`POST /api/v1/readings/import`), then a check that every reading landed.
//!
//! Bodies are encoded before the clock starts, so the figure is the server's
//! (and the loopback's), not the client's serialisation.

use std::fmt::Write as _;
use std::time::Instant;

use chrono::{DateTime, Duration, DurationRound, Utc};
use enms_core::{Machine, Reading};
use serde::Deserialize;
use serde_json::json;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::cli::{BenchIngestArgs, BenchMode};
use crate::client::Client;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Deserialize)]
struct Accepted {
    accepted: usize,
}

pub async fn run(args: BenchIngestArgs) -> Result<(), Box<dyn std::error::Error>> {
    if args.machines == 0 || args.readings < args.machines || args.batch == 0 || args.concurrency == 0 {
        return Err("--readings must be at least --machines, and --machines, --batch, --concurrency positive".into());
    }
    let client = Client::new(&args.url);
    let tag = Utc::now().timestamp_millis();
    if matches!(args.mode, BenchMode::Http | BenchMode::Both) {
        let machines = create_machines(&client, &format!("bench-{tag}-http"), args.machines).await?;
        let readings = generate(&machines, args.readings);
        let bodies: Vec<Vec<u8>> = readings.chunks(args.batch).map(serde_json::to_vec).collect::<Result<_, _>>()?;
        let started = Instant::now();
        let accepted = send_batches(&client, bodies, args.concurrency).await.map_err(|e| e.to_string())?;
        report("http-json", accepted, started, &args, &client, &machines).await?;
    }
    if matches!(args.mode, BenchMode::Csv | BenchMode::Both) {
        let machines = create_machines(&client, &format!("bench-{tag}-csv"), args.machines).await?;
        let body = to_csv(&machines, &generate(&machines, args.readings));
        let started = Instant::now();
        let answer: Accepted = client.post_raw("/api/v1/readings/import", "text/csv", body).await?;
        report("csv-import", answer.accepted, started, &args, &client, &machines).await?;
    }
    Ok(())
}

async fn create_machines(client: &Client, prefix: &str, n: usize) -> Result<Vec<Machine>, Box<dyn std::error::Error>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let body = json!({"name": format!("{prefix}-{i}"), "type": "bench", "location": "bench"});
        out.push(client.post_json("/api/v1/machines", &body).await?);
    }
    Ok(out)
}

fn start_of_series(per_machine: usize) -> DateTime<Utc> {
    let now = Utc::now().duration_trunc(Duration::minutes(1)).unwrap_or_else(|_| Utc::now());
    now - Duration::minutes(per_machine as i64 + 1)
}

/// One reading per minute per machine, ending now, interleaved by time as a
/// live plant would send them.
fn generate(machines: &[Machine], total: usize) -> Vec<Reading> {
    let per_machine = total.div_ceil(machines.len());
    let start = start_of_series(per_machine);
    (0..total)
        .map(|i| {
            let (step, m) = (i / machines.len(), &machines[i % machines.len()]);
            let kw = 20.0 + (i % 97) as f64 * 0.5;
            Reading {
                machine_id: m.id,
                timestamp: start + Duration::minutes(step as i64),
                power_kw: kw,
                energy_kwh: kw / 60.0,
                production_units: Some((i % 13) as f64),
                outdoor_temp_c: Some(12.5),
                extra: Default::default(),
            }
        })
        .collect()
}

fn to_csv(machines: &[Machine], readings: &[Reading]) -> Vec<u8> {
    let names: std::collections::HashMap<Uuid, &str> = machines.iter().map(|m| (m.id, m.name.as_str())).collect();
    let mut out = String::with_capacity(readings.len() * 80);
    out.push_str("timestamp,machine,power_kw,energy_kwh,production_units,outdoor_temp_c\n");
    for r in readings {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{}",
            r.timestamp.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            names[&r.machine_id],
            r.power_kw,
            r.energy_kwh,
            r.production_units.unwrap_or_default(),
            r.outdoor_temp_c.unwrap_or_default()
        );
    }
    out.into_bytes()
}

async fn send_batches(client: &Client, bodies: Vec<Vec<u8>>, concurrency: usize) -> Result<usize, BoxError> {
    let mut lanes: Vec<Vec<Vec<u8>>> = (0..concurrency).map(|_| Vec::new()).collect();
    for (i, body) in bodies.into_iter().enumerate() {
        lanes[i % concurrency].push(body);
    }
    let mut tasks = JoinSet::new();
    for lane in lanes {
        let client = client.clone();
        tasks.spawn(async move {
            let mut n = 0;
            for body in lane {
                let answer: Accepted = client.post_raw("/api/v1/readings", "application/json", body).await?;
                n += answer.accepted;
            }
            Ok::<usize, BoxError>(n)
        });
    }
    let mut total = 0;
    while let Some(done) = tasks.join_next().await {
        total += done??;
    }
    Ok(total)
}

#[derive(Deserialize)]
struct Series {
    points: Vec<Point>,
}

#[derive(Deserialize)]
struct Point {
    samples: u64,
}

async fn report(
    mode: &str,
    accepted: usize,
    started: Instant,
    args: &BenchIngestArgs,
    client: &Client,
    machines: &[Machine],
) -> Result<(), Box<dyn std::error::Error>> {
    let secs = started.elapsed().as_secs_f64();
    let per_machine = args.readings.div_ceil(machines.len());
    let from = (start_of_series(per_machine) - Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut stored = 0;
    for m in machines {
        let series: Series =
            client.get(&format!("/api/v1/machines/{}/readings?start={from}&resolution=1d", m.id)).await?;
        stored += series.points.iter().map(|p| p.samples).sum::<u64>();
    }
    let rate = accepted as f64 / secs;
    println!(
        "{mode}: {accepted} readings in {secs:.2} s = {rate:.0} readings/s (batch {}, concurrency {}); stored and verified: {stored}",
        args.batch, args.concurrency
    );
    println!(
        "{}",
        json!({"bench": "ingest", "mode": mode, "readings": accepted, "seconds": secs, "readings_per_s": rate,
               "batch": args.batch, "concurrency": args.concurrency, "verified": stored})
    );
    if stored != accepted as u64 {
        return Err(format!("{mode}: {accepted} accepted but {stored} stored").into());
    }
    Ok(())
}
