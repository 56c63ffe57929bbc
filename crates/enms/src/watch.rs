//! `enms watch`: a live, coloured feed of one stream that reconnects and
//! resumes by itself — websocat that knows the enms protocol.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};

use serde_json::Value;

use crate::cli::{Stream, WatchArgs};
use crate::client::Client;
use crate::stream::EventStream;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

pub async fn run(args: WatchArgs) -> Result<()> {
    let client = Client::from_args(&args.client);
    let machines = client.machines().await?;
    let names: HashMap<String, String> = machines.iter().map(|m| (m.id.to_string(), m.name.clone())).collect();
    let mut query = Vec::new();
    for which in &args.machines {
        query.push(format!("machine_id={}", client.find_machine(which).await?.id));
    }
    if let Some(s) = &args.min_severity {
        query.push(format!("min_severity={s}"));
    }
    let stream = match args.stream {
        Stream::Dashboard => "dashboard",
        Stream::Anomalies => "anomalies",
        Stream::Training => "training",
        Stream::Events => "events",
    };
    let path = if query.is_empty() {
        format!("/api/v1/ws/{stream}")
    } else {
        format!("/api/v1/ws/{stream}?{}", query.join("&"))
    };
    let mut events = EventStream::open(client, path, args.since_id.clone()).await?;
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    eprintln!("watching {stream}; Ctrl-C to stop");
    let mut out = std::io::stdout().lock();
    let mut seen = 0;
    while args.count.is_none_or(|n| seen < n) {
        let event = events.next().await?;
        seen += 1;
        let line = if args.json { event.to_string() } else { summary(&event, &names, colour) };
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    Ok(())
}

/// One line per event: time, type, severity, machine, what happened.
fn summary(event: &Value, names: &HashMap<String, String>, colour: bool) -> String {
    let d = &event["data"];
    let kind = event["type"].as_str().unwrap_or("?");
    let time = event["timestamp"].as_str().and_then(|t| t.get(11..23)).unwrap_or("");
    let machine = d["machine_id"].as_str().map(|id| {
        d["machine_name"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| names.get(id).cloned())
            .unwrap_or_else(|| id.to_owned())
    });
    let num = |v: &Value| v.as_f64().map(|x| format!("{x:.2}")).unwrap_or_else(|| "?".into());
    let text = |k: &str| d[k].as_str().unwrap_or("").to_owned();
    let (severity, what) = match kind {
        "anomaly_detected" => {
            let expected = d.get("expected_value").filter(|v| !v.is_null()).map(|v| format!(" (expected {})", num(v)));
            let what = format!(
                "{} {} {}{} score {}",
                text("anomaly_type"),
                d["metric"].as_str().unwrap_or("value"),
                num(&d["value"]),
                expected.unwrap_or_default(),
                num(&d["anomaly_score"])
            );
            (text("severity"), what)
        }
        "metric_updated" => (String::new(), format!("{} = {} {}", text("metric_name"), num(&d["value"]), text("unit"))),
        "training_started" | "training_progress" | "training_completed" => {
            let what =
                format!("{} {}% {} {}", text("model_type"), num(&d["progress_pct"]), text("status"), text("message"));
            let sev = if d["status"] == "failed" { "critical".into() } else { String::new() };
            (sev, what)
        }
        "model_updated" => (String::new(), format!("{} v{} {}", text("model_type"), d["version"], text("action"))),
        "system_alert" => (text("severity"), format!("{}: {}", text("alert_type"), text("message"))),
        _ => (String::new(), d.to_string()),
    };
    let paint =
        |code: &str, s: &str| if colour && !s.is_empty() { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_owned() };
    let sev_code = match severity.as_str() {
        "critical" => "1;31",
        "warning" => "33",
        "normal" | "info" => "32",
        _ => "0",
    };
    format!(
        "{time}  {:<19} {:<9} {:<16} {what}",
        paint("36", kind),
        paint(sev_code, &severity.to_uppercase()),
        machine.unwrap_or_default()
    )
}
