//! `enms import FILE.csv`: validates the whole file locally first (so a bad
//! line refuses the file before anything is sent, and the error names the
//! line), then sends it in batches with a progress bar.

use std::collections::HashMap;
use std::time::Instant;

use chrono::Utc;
use enms_core::{MAX_BATCH_ROWS, csv_format};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use uuid::Uuid;

use crate::cli::ImportArgs;
use crate::client::Client;

#[derive(Deserialize)]
struct Accepted {
    accepted: usize,
}

pub async fn run(args: ImportArgs) -> Result<(), Box<dyn std::error::Error>> {
    if args.batch == 0 || args.batch > MAX_BATCH_ROWS {
        return Err(format!("--batch must be between 1 and {MAX_BATCH_ROWS}").into());
    }
    let client = Client::from_args(&args.client);
    let machines = client.machines().await?;
    let mut known: HashMap<String, Uuid> = HashMap::new();
    for m in &machines {
        known.insert(m.name.to_lowercase(), m.id);
        known.insert(m.id.to_string(), m.id);
    }
    let resolve = |cell: &str| {
        let key = Uuid::parse_str(cell).map_or_else(|_| cell.to_lowercase(), |id| id.to_string());
        known.get(&key).copied()
    };
    let default_machine = match &args.machine {
        Some(name) => Some(
            resolve(name).ok_or_else(|| format!("no machine named or with id {name:?} on {}", args.client.server))?,
        ),
        None => None,
    };
    let data = std::fs::read(&args.file).map_err(|e| format!("cannot read {}: {e}", args.file.display()))?;
    let readings = csv_format::parse(&data, default_machine, resolve, Utc::now())
        .map_err(|e| format!("{}: {e}", args.file.display()))?;

    let bar = if args.quiet { ProgressBar::hidden() } else { ProgressBar::new(readings.len() as u64) };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} readings ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut sent = 0;
    for chunk in readings.chunks(args.batch) {
        let answer: Accepted = client.post_json("/api/v1/readings", &chunk).await?;
        sent += answer.accepted;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    let rate = sent as f64 / secs.max(1e-9);
    if args.json {
        let out = serde_json::json!({"file": args.file.display().to_string(), "accepted": sent,
                                     "seconds": secs, "readings_per_second": rate});
        println!("{out}");
    } else {
        println!("imported {sent} readings from {} in {secs:.2} s ({rate:.0} readings/s)", args.file.display());
    }
    Ok(())
}
