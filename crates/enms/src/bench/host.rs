//! `enms bench host`: what host monitoring costs and how fast a sample
//! travels. Listens on the seed's `/api/ws/ws` for `--samples` samples of
//! one host and reports, per sample, the delay from the moment it was taken
//! (its `timestamp`, set by the sampler before it reads the counters) to
//! the moment it arrived here — sampling, the HTTP post, the durable
//! commit, the bus and the WebSocket. Beside it, the floor: the round trip
//! of `GET /api/v1/health` on the same server in the same run.
//!
//! With `--agent-pid`, it also reads that process's CPU time and resident
//! memory from /proc over the same span: the agent's cost per core and its
//! RSS (current and peak). bench/agent.sh starts a release server and
//! agent and runs this.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use crate::cli::BenchHostArgs;

type BoxError = Box<dyn std::error::Error>;

pub async fn run(args: BenchHostArgs) -> Result<(), BoxError> {
    let base = args.url.trim_end_matches('/');
    let ws_url = format!("{}/api/ws/ws?host={}", base.replacen("http", "ws", 1), urlencode(&args.host));
    // The agent registers its host on first contact: wait for it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut ws = loop {
        match tokio_tungstenite::connect_async(&ws_url).await {
            Ok((ws, _)) => break ws,
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "host not there yet");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(format!("{ws_url}: {e} (is an agent running with --name {}?)", args.host).into()),
        }
    };
    let cpu_start = args.agent_pid.map(proc_cpu_seconds).transpose()?;
    let started = Instant::now();
    let mut delays = Vec::with_capacity(args.samples);
    let mut first = true;
    while delays.len() < args.samples {
        let msg = tokio::time::timeout(Duration::from_secs(120), ws.next())
            .await
            .map_err(|_| "no sample within 120 s: is the agent running with that --name?")?
            .ok_or("the server closed the socket")??;
        let arrived = chrono::Utc::now();
        let Message::Text(text) = msg else { continue };
        // The first message is the newest stored sample, sent on connect.
        if std::mem::take(&mut first) {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&text)?;
        let taken =
            v["timestamp"].as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()).ok_or("no timestamp")?;
        let ms = (arrived - taken.with_timezone(&chrono::Utc)).num_microseconds().unwrap_or(0) as f64 / 1e3;
        delays.push(ms);
        eprintln!("sample {:>3}: {ms:.1} ms after it was taken", delays.len());
    }
    let span = started.elapsed().as_secs_f64();
    let cpu = match (args.agent_pid, cpu_start) {
        (Some(pid), Some(c0)) => Some((proc_cpu_seconds(pid)? - c0) / span * 100.0),
        _ => None,
    };
    let rss = args.agent_pid.map(proc_rss_kib).transpose()?;

    let http = reqwest::Client::new();
    let mut floor = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        http.get(format!("{base}/api/v1/health")).send().await?.error_for_status()?;
        floor.push(t.elapsed().as_secs_f64() * 1e3);
    }
    delays.sort_by(f64::total_cmp);
    floor.sort_by(f64::total_cmp);
    let pct = |v: &[f64], p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    println!("host {:?}: {} samples over {span:.0} s", args.host, delays.len());
    println!(
        "  taken → /api/ws/ws   p50 {:.1} ms   p95 {:.1} ms   max {:.1} ms",
        pct(&delays, 0.5),
        pct(&delays, 0.95),
        delays[delays.len() - 1]
    );
    println!(
        "  floor: GET /api/v1/health round trip   p50 {:.2} ms   p95 {:.2} ms",
        pct(&floor, 0.5),
        pct(&floor, 0.95)
    );
    if let (Some(cpu), Some((now, peak))) = (cpu, rss) {
        println!(
            "  agent: {cpu:.3} % of one core   RSS {:.1} MiB (peak {:.1} MiB)",
            now as f64 / 1024.0,
            peak as f64 / 1024.0
        );
    }
    Ok(())
}

/// utime + stime of a process, in seconds.
fn proc_cpu_seconds(pid: u32) -> Result<f64, BoxError> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start after ')'.
    let rest = stat.rsplit_once(')').ok_or("unreadable /proc stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after ')'.
    let ticks: f64 = fields.get(11).ok_or("utime")?.parse::<f64>()? + fields.get(12).ok_or("stime")?.parse::<f64>()?;
    Ok(ticks / clock_ticks())
}

/// Resident memory now and at its peak, in KiB.
fn proc_rss_kib(pid: u32) -> Result<(u64, u64), BoxError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<u64, BoxError> {
        let line = status.lines().find(|l| l.starts_with(name)).ok_or_else(|| format!("no {name}"))?;
        Ok(line.split_whitespace().nth(1).ok_or("value")?.parse()?)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`); 100 on Linux.
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
