//! One-shot client commands: `enms publish`, `enms machines`, `enms detect`.

use serde_json::{Value, json};

use crate::cli::{DetectArgs, MachinesArgs, PublishArgs};
use crate::client::Client;
use enms_core::duration;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

pub async fn publish(args: PublishArgs) -> Result<()> {
    let data: Value = serde_json::from_str(&args.data).map_err(|e| format!("--data is not JSON: {e}"))?;
    if !data.is_object() {
        return Err("--data must be a JSON object".into());
    }
    let client = Client::from_args(&args.client);
    let answer: Value = client.post_json("/api/v1/events", &json!({"type": args.event_type, "data": data})).await?;
    match answer["id"].as_str() {
        Some(id) => println!("{id}"),
        None => println!("buffered (the shared bus is down; the server will publish it when it is back)"),
    }
    Ok(())
}

pub async fn machines(args: MachinesArgs) -> Result<()> {
    let client = Client::from_args(&args.client);
    if args.json {
        let all: Value = client.get("/api/v1/machines").await?;
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(());
    }
    let all = client.machines().await?;
    println!("{:<24} {:<36} {:<14} {:<8} {:>9}  LAST READING", "NAME", "ID", "TYPE", "STATUS", "RATED kW");
    for m in all {
        let rated = m.rated_power_kw.map(|p| format!("{p:.1}")).unwrap_or_else(|| "-".into());
        let last =
            m.last_reading_at.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_else(|| "never".into());
        println!("{:<24} {:<36} {:<14} {:<8} {:>9}  {last}", m.name, m.id, m.machine_type, m.status.as_str(), rated);
    }
    Ok(())
}

pub async fn detect(args: DetectArgs) -> Result<()> {
    let window = duration::parse(&args.since).map_err(|e| format!("--since: {e}"))?;
    let window = chrono::Duration::from_std(window).map_err(|e| format!("--since: {e}"))?;
    let client = Client::from_args(&args.client);
    let machine = client.find_machine(&args.machine).await?;
    let end = chrono::Utc::now();
    let body = json!({"start": (end - window).to_rfc3339(), "end": end.to_rfc3339()});
    let out: Value = client.post_json(&format!("/api/v1/anomaly/detect/{}", machine.id), &body).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("{}", detection_line(&machine.name, &out));
    for a in out["anomalies"].as_array().into_iter().flatten().take(20) {
        println!(
            "  {}  {:<8} {:<12} {} = {}",
            a["timestamp"].as_str().unwrap_or(""),
            a["severity"].as_str().unwrap_or(""),
            a["anomaly_type"].as_str().unwrap_or(""),
            a["metric"].as_str().unwrap_or("value"),
            a["value"]
        );
    }
    Ok(())
}

/// `Compressor-1 · 672 readings analysed · 4 anomalies (2 critical, 2
/// warning), 3 new · 2 episodes`.
fn detection_line(machine: &str, out: &Value) -> String {
    let count = |v: &Value| v.as_u64().unwrap_or(0);
    let by: Vec<String> = ["critical", "warning", "normal"]
        .iter()
        .filter_map(|s| Some(count(&out["by_severity"][s])).filter(|n| *n > 0).map(|n| format!("{n} {s}")))
        .collect();
    let severities = if by.is_empty() { String::new() } else { format!(" ({})", by.join(", ")) };
    let episodes = out["episodes"].as_array().map_or(0, Vec::len);
    format!(
        "{machine} · {} readings analysed · {} anomalies{severities}, {} new · {episodes} episode{}",
        crate::summary::thousands(count(&out["readings_analyzed"])),
        count(&out["anomalies_detected"]),
        count(&out["anomalies_saved"]),
        if episodes == 1 { "" } else { "s" },
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn a_detection_reads_as_one_line() {
        let out = json!({"readings_analyzed": 2688, "anomalies_detected": 4, "anomalies_saved": 3,
                         "by_severity": {"critical": 2, "warning": 2}, "episodes": [{}, {}]});
        assert_eq!(
            super::detection_line("Compressor-1", &out),
            "Compressor-1 · 2,688 readings analysed · 4 anomalies (2 critical, 2 warning), 3 new · 2 episodes"
        );
    }
}
