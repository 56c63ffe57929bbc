//! `enms train`: subscribes to the machine's training events first (so no
//! step is missed), submits the job, and drives a progress bar from the
//! events until the job completes, then says in one line what was trained
//! (`--json`: the job and the model in full). Exits with an error if it fails.

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::cli::{ModelKind, TrainArgs};
use crate::client::Client;
use crate::stream::EventStream;
use crate::summary;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

pub async fn run(args: TrainArgs) -> Result<()> {
    let client = Client::from_args(&args.client);
    let machine = client.find_machine(&args.machine).await?;
    let path = format!("/api/v1/ws/training?machine_id={}", machine.id);
    let mut events = EventStream::open(client.clone(), path, None).await?;
    let job_id = match args.model {
        ModelKind::Baseline => {
            let job: Value = client.post_json(&format!("/api/v1/baseline/train/{}", machine.id), &json!({})).await?;
            job["id"].as_str().map(str::to_owned)
        }
        ModelKind::Anomaly => {
            let path =
                format!("/api/v1/model-performance/retrain/trigger?model_type=anomaly&machine_id={}", machine.id);
            let answer: Value = client.post_json(&path, &json!({})).await?;
            answer["training_job_id"].as_str().map(str::to_owned)
        }
    }
    .ok_or("the server did not return a job id")?;
    let bar = if args.quiet { ProgressBar::hidden() } else { ProgressBar::new(100) };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos:>3}% {msg}").unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(format!("job {job_id} queued"));
    loop {
        let event = events.next().await?;
        let d = &event["data"];
        if d["job_id"] != job_id.as_str() {
            continue;
        }
        let pct = d["progress_pct"].as_f64().unwrap_or(0.0).clamp(0.0, 100.0);
        let message = d["message"].as_str().unwrap_or("").to_owned();
        bar.set_position(pct.round() as u64);
        bar.set_message(message.clone());
        if args.quiet {
            println!("{:>3.0}% {message}", pct);
        }
        if event["type"] == "training_completed" {
            bar.finish();
            return match d["status"].as_str() {
                Some("completed") => {
                    // The job names the model; the model, its version.
                    let job: Value = client.get(&format!("/api/v1/training/jobs/{job_id}")).await?;
                    let model: Option<Value> = match job["model_id"].as_str() {
                        Some(id) => Some(client.get(&format!("/api/v1/models/{id}")).await?),
                        None => None,
                    };
                    if args.json {
                        println!("{}", serde_json::to_string_pretty(&json!({"job": job, "model": model}))?);
                        return Ok(());
                    }
                    let version = model.as_ref().and_then(|m| m["version"].as_i64());
                    let line = match args.model {
                        ModelKind::Baseline => summary::baseline(&machine.name, version, &d["metrics"]),
                        ModelKind::Anomaly => summary::anomaly(&machine.name, version, &d["metrics"]),
                    };
                    println!("{line}");
                    Ok(())
                }
                status => Err(format!(
                    "training {}: {}",
                    status.unwrap_or("ended"),
                    d["error_message"].as_str().unwrap_or(&message)
                )
                .into()),
            };
        }
    }
}
