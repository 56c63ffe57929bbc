//! `enms bench forecast`: forecast quality on a server's machines — each
//! machine's forecast over `--horizon-hours`, and its rolling-origin
//! backtest (the last 14 days) as the server reports it: per horizon day
//! the chosen method's MAPE, CV(RMSE), 80 % and 95 % interval coverage,
//! beside seasonal naive's MAPE on the same hours and the skill against it.
//! bench/forecast.sh runs it on the demo factory's history.

use serde_json::Value;

use crate::cli::BenchForecastArgs;

type BoxError = Box<dyn std::error::Error>;

pub async fn run(args: BenchForecastArgs) -> Result<(), BoxError> {
    let base = args.url.trim_end_matches('/');
    let http = reqwest::Client::new();
    let machines: Vec<Value> =
        http.get(format!("{base}/api/v1/machines")).send().await?.error_for_status()?.json().await?;
    let f1 = |v: &Value| v.as_f64().map_or("–".to_owned(), |x| format!("{x:.1}"));
    let f2 = |v: &Value| v.as_f64().map_or("–".to_owned(), |x| format!("{x:.2}"));
    let mut days: Vec<Vec<(f64, f64, f64, f64)>> = vec![Vec::new(); 7];
    for m in machines.iter().filter(|m| m["type"] != "host") {
        let id = m["id"].as_str().ok_or("machine id")?;
        let started = std::time::Instant::now();
        let r = http
            .get(format!("{base}/api/v1/machines/{id}/forecast?horizon_hours={}", args.horizon_hours))
            .send()
            .await?;
        let took = started.elapsed().as_secs_f64() * 1e3;
        let f: Value = r.json().await?;
        if f.get("error").is_some() {
            println!("{:<14} {}", m["name"].as_str().unwrap_or("?"), f["error"]["message"]);
            continue;
        }
        println!(
            "{:<14} method {:<15} ({took:.0} ms)",
            m["name"].as_str().unwrap_or("?"),
            f["method"].as_str().unwrap_or("?")
        );
        println!("  day  MAPE %  naive MAPE %  CV(RMSE) %  cover 80 %  cover 95 %  skill");
        let naive = f["backtest"]["seasonal_naive"].as_array().cloned().unwrap_or_default();
        for (i, a) in f["backtest"]["accuracy"].as_array().into_iter().flatten().enumerate() {
            let n = naive.get(i).cloned().unwrap_or(Value::Null);
            println!(
                "  {:>3}  {:>6}  {:>12}  {:>10}  {:>10}  {:>10}  {:>5}",
                a["horizon_day"],
                f1(&a["mape_pct"]),
                f1(&n["mape_pct"]),
                f1(&a["cv_rmse_pct"]),
                f1(&a["coverage_80_pct"]),
                f1(&a["coverage_95_pct"]),
                f2(&a["skill_vs_seasonal_naive"])
            );
            if let (Some(mape), Some(nm), Some(c80), Some(c95)) = (
                a["mape_pct"].as_f64(),
                n["mape_pct"].as_f64(),
                a["coverage_80_pct"].as_f64(),
                a["coverage_95_pct"].as_f64(),
            ) && i < days.len()
            {
                days[i].push((mape, nm, c80, c95));
            }
        }
    }
    println!("mean over machines");
    println!("  day  MAPE %  naive MAPE %  cover 80 %  cover 95 %");
    for (i, d) in days.iter().enumerate().filter(|(_, d)| !d.is_empty()) {
        let k = d.len() as f64;
        let mean = |f: fn(&(f64, f64, f64, f64)) -> f64| d.iter().map(f).sum::<f64>() / k;
        println!(
            "  {:>3}  {:>6.1}  {:>12.1}  {:>10.1}  {:>10.1}",
            i + 1,
            mean(|x| x.0),
            mean(|x| x.1),
            mean(|x| x.2),
            mean(|x| x.3)
        );
    }
    Ok(())
}
