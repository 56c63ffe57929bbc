//! `enms export --machine M [--start] [--end] [--resolution] [-o FILE]`:
//! streams a machine's readings from a running server into a CSV file (the
//! import format for raw readings), with a progress bar counted in readings.
//!
//! The file is written under a temporary name beside the target and renamed
//! once the server's answer ended whole: a broken transfer leaves no file
//! that looks complete.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::ExportArgs;
use crate::client::Client;

pub async fn run(args: ExportArgs) -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::from_args(&args.client);
    let machine = client.find_machine(&args.machine).await?;
    let mut query = vec![("format", "csv".to_owned()), ("resolution", args.resolution.clone())];
    if let Some(s) = &args.start {
        query.push(("start", s.clone()));
    }
    if let Some(e) = &args.end {
        query.push(("end", e.clone()));
    }
    let path = format!("/api/v1/machines/{}/readings/export", machine.id);
    // How many rows to expect, for the bar: readings per day from the
    // rollups (cheap), or unknown for aggregates.
    let total = if args.resolution == "raw" { expected_rows(&client, machine.id, &args).await } else { None };
    let bar = match (args.quiet || args.output.is_none(), total) {
        (true, _) => ProgressBar::hidden(),
        (false, Some(n)) => ProgressBar::new(n),
        (false, None) => ProgressBar::new_spinner(),
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} readings ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut resp = client.get_stream(&path, &query).await?;
    let (mut out, temp): (Box<dyn Write>, Option<(PathBuf, PathBuf)>) = match &args.output {
        Some(target) => {
            let temp = target.with_extension("csv.part");
            let file = std::fs::File::create(&temp).map_err(|e| format!("cannot write {}: {e}", temp.display()))?;
            (Box::new(std::io::BufWriter::new(file)), Some((temp, target.clone())))
        }
        None => (Box::new(std::io::stdout().lock()), None),
    };
    let (mut lines, mut bytes) = (0u64, 0u64);
    while let Some(chunk) = resp.chunk().await.map_err(|e| format!("the export broke off after {lines} lines: {e}"))? {
        out.write_all(&chunk)?;
        let n = chunk.iter().filter(|b| **b == b'\n').count() as u64;
        lines += n;
        bytes += chunk.len() as u64;
        bar.inc(n);
    }
    out.flush()?;
    drop(out);
    bar.finish_and_clear();
    let rows = lines.saturating_sub(1);
    let secs = started.elapsed().as_secs_f64();
    if let Some((temp, target)) = temp {
        std::fs::rename(&temp, &target).map_err(|e| format!("cannot rename to {}: {e}", target.display()))?;
        if args.json {
            println!(
                "{}",
                serde_json::json!({"file": target.display().to_string(), "machine": machine.name, "rows": rows,
                                   "bytes": bytes, "seconds": secs})
            );
        } else if !args.quiet {
            println!("exported {rows} rows of {} to {} ({bytes} bytes) in {secs:.2} s", machine.name, target.display());
        }
    }
    Ok(())
}

async fn expected_rows(client: &Client, machine: uuid::Uuid, args: &ExportArgs) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Point {
        samples: u64,
    }
    #[derive(serde::Deserialize)]
    struct Series {
        points: Vec<Point>,
    }
    let start = args.start.clone().unwrap_or_else(|| "2000-01-01T00:00:00Z".into());
    let mut query = vec![("resolution", "1d".to_owned()), ("limit", "100000".to_owned()), ("start", start)];
    if let Some(end) = &args.end {
        query.push(("end", end.clone()));
    }
    let resp = client.get_stream(&format!("/api/v1/machines/{machine}/readings"), &query).await.ok()?;
    let series: Series = resp.json().await.ok()?;
    Some(series.points.iter().map(|p| p.samples).sum())
}
