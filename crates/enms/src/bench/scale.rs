//! `enms bench scale`: how reading queries and ingest cost grow with the
//! rows stored. Fills one machine (or several) of a running server with
//! `--readings` readings `--interval-s` apart ending now, timing ingest by
//! tenths of the fill (so the rate as the database grows is visible), then
//! times the questions a dashboard asks — a year at 1 h and at 1 d, 30 days
//! at 15 min, KPIs over a year — each beside its floor: a raw query that
//! returns as many points from a short span, which costs what returning
//! the points costs and nothing for the rows stored.
//!
//! Readings are generated batch by batch while sending (memory stays at a
//! few batches however many are stored). Prints one line per figure and a
//! JSON line at the end for the record.

use std::time::Instant;

use chrono::{DateTime, Duration, DurationRound, Utc};
use enms_core::{Machine, Reading};
use serde_json::json;
use tokio::task::JoinSet;

use crate::cli::BenchScaleArgs;
use crate::client::Client;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub async fn run(args: BenchScaleArgs) -> Result<(), Box<dyn std::error::Error>> {
    if args.readings == 0 || args.machines == 0 || args.interval_s == 0 || args.repeat == 0 {
        return Err("--readings, --machines, --interval-s and --repeat must be positive".into());
    }
    let client = Client::new(&args.url);
    let tag = Utc::now().timestamp_millis();
    let mut machines = Vec::new();
    for i in 0..args.machines {
        let body = json!({"name": format!("scale-{tag}-{i}"), "type": "bench", "location": "bench"});
        machines.push(client.post_json::<Machine>("/api/v1/machines", &body).await?);
    }
    let per_machine = args.readings;
    let end = Utc::now().duration_trunc(Duration::seconds(1))? - Duration::minutes(10);
    let start = end - Duration::seconds(args.interval_s as i64 * per_machine as i64);
    let mut report = json!({"bench": "scale", "readings_per_machine": per_machine, "machines": args.machines,
                            "interval_s": args.interval_s});

    // Fill, by tenths; all machines' readings interleaved by time.
    let total = per_machine * args.machines;
    let batches = total.div_ceil(args.batch);
    let mut tenths = Vec::new();
    let mut sent = 0usize;
    let started = Instant::now();
    for tenth in 0..10 {
        let (from, to) = (batches * tenth / 10, batches * (tenth + 1) / 10);
        let t = Instant::now();
        let mut n = 0;
        let mut set: JoinSet<Result<usize, BoxError>> = JoinSet::new();
        for b in from..to {
            while set.len() >= args.concurrency {
                n += set.join_next().await.ok_or("no task")?.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
            }
            let body = batch(&machines, start, args.interval_s, b * args.batch, args.batch.min(total - b * args.batch));
            let client = client.clone();
            set.spawn(async move {
                #[derive(serde::Deserialize)]
                struct Accepted {
                    accepted: usize,
                }
                let a: Accepted = client.post_raw("/api/v1/readings", "application/json", body?).await?;
                Ok::<usize, BoxError>(a.accepted)
            });
        }
        while let Some(done) = set.join_next().await {
            n += done.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
        }
        sent += n;
        let rate = n as f64 / t.elapsed().as_secs_f64();
        println!("ingest {:>3}-{:>3} %: {rate:>9.0} readings/s ({sent} stored)", tenth * 10, tenth * 10 + 10);
        tenths.push(rate);
    }
    let fill_s = started.elapsed().as_secs_f64();
    println!("filled {sent} readings in {fill_s:.1} s");
    report["ingest_readings_per_s_by_tenth"] = json!(tenths);
    report["fill_seconds"] = json!(fill_s);

    let m = &machines[0];
    let year_start = (end - Duration::days(365)).max(start);
    let month_start = end - Duration::days(30);
    // The floor: as many raw points as the question returns, from the
    // newest readings.
    let floor = |points: usize| end - Duration::seconds(args.interval_s as i64 * points as i64);
    let questions: Vec<(&str, String, Option<usize>)> = vec![
        ("year_1h", series(m, year_start, end, "1h"), Some(((end - year_start).num_hours() as usize).min(100_000))),
        ("year_1d", series(m, year_start, end, "1d"), Some((end - year_start).num_days() as usize + 1)),
        ("30d_15m", series(m, month_start, end, "15m"), Some(30 * 96)),
        ("kpis_year", format!("/api/v1/machines/{}/kpis?start={}&end={}", m.id, q(year_start), q(end)), None),
    ];
    for (name, path, points) in questions {
        let took = median(&client, &path, args.repeat).await?;
        let mut line = format!("{name:>10}: {took:>9.2} ms (median of {})", args.repeat);
        report[name] = json!({"ms": took});
        if let Some(p) = points {
            let raw = series(m, floor(p), end, "raw") + &format!("&limit={}", p.min(100_000));
            let f = median(&client, &raw, args.repeat).await?;
            line.push_str(&format!("; floor ({p} raw points) {f:.2} ms; ratio {:.2}", took / f.max(1e-9)));
            report[name]["floor_ms"] = json!(f);
            report[name]["points"] = json!(p);
        }
        println!("{line}");
    }
    println!("{report}");
    Ok(())
}

fn q(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn series(m: &Machine, from: DateTime<Utc>, to: DateTime<Utc>, resolution: &str) -> String {
    format!("/api/v1/machines/{}/readings?start={}&end={}&resolution={resolution}&limit=100000", m.id, q(from), q(to))
}

/// Median wall time of `repeat` GETs, in ms, after one untimed warm-up.
async fn median(client: &Client, path: &str, repeat: usize) -> Result<f64, Box<dyn std::error::Error>> {
    let _: serde_json::Value = client.get(path).await?;
    let mut times = Vec::with_capacity(repeat);
    for _ in 0..repeat {
        let t = Instant::now();
        let _: serde_json::Value = client.get(path).await?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// Readings `first .. first + n` of the interleaved series, as a JSON body.
fn batch(
    machines: &[Machine],
    start: DateTime<Utc>,
    interval_s: u64,
    first: usize,
    n: usize,
) -> Result<Vec<u8>, BoxError> {
    let rows: Vec<Reading> = (first..first + n)
        .map(|i| {
            let (step, m) = (i / machines.len(), &machines[i % machines.len()]);
            let kw = 20.0 + (i % 97) as f64 * 0.5;
            Reading {
                machine_id: m.id,
                timestamp: start + Duration::seconds(interval_s as i64 * (step as i64 + 1)),
                power_kw: kw,
                energy_kwh: kw * interval_s as f64 / 3600.0,
                production_units: Some((i % 13) as f64),
                outdoor_temp_c: Some(12.5),
                extra: Default::default(),
            }
        })
        .collect();
    Ok(serde_json::to_vec(&rows)?)
}
