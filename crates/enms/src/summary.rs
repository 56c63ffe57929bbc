//! Plain words for what a command ends with: one line a person reads at a
//! glance (`--json` prints the full result instead, for scripts).

use serde_json::Value;

/// `Compressor-1 baseline v2 · hourly · R² 0.999 · CV(RMSE) 1.8 % · NMBE
/// 0.0 % · G14 pass · production, operating_hours, cdd (hdd dropped: p =
/// 0.480)`.
pub fn baseline(machine: &str, version: Option<i64>, m: &Value) -> String {
    let mut parts = vec![title(machine, "baseline", version)];
    if let Some(g) = m["granularity"].as_str() {
        parts.push(g.to_owned());
    }
    if let Some(r2) = m["r_squared"].as_f64() {
        parts.push(format!("R² {r2:.3}"));
    }
    if let Some(cv) = m["cv_rmse_pct"].as_f64() {
        parts.push(format!("CV(RMSE) {cv:.1} %"));
    }
    if let Some(nmbe) = m["nmbe_pct"].as_f64() {
        // -0.001 reads as 0.0, not -0.0.
        let nmbe = if nmbe.abs() < 0.05 { 0.0 } else { nmbe };
        parts.push(format!("NMBE {nmbe:.1} %"));
    }
    match m["g14_pass"].as_bool() {
        Some(true) => parts.push("G14 pass".into()),
        Some(false) => parts.push("G14 FAIL".into()),
        None => {}
    }
    let kept: Vec<&str> = m["variables"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let dropped: Vec<String> = m["dropped"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            let reason = d["reason"].as_str().unwrap_or("dropped");
            // "not significant (p = 0.480 > 0.1)" reads as "p = 0.480".
            let short = match reason.find("p = ") {
                Some(i) => reason[i..].split(" >").next().unwrap_or(&reason[i..]).trim_end_matches(')'),
                None => reason,
            };
            format!("{} dropped: {short}", d["variable"].as_str().unwrap_or("?"))
        })
        .collect();
    let mut variables = if kept.is_empty() { "intercept only".to_owned() } else { kept.join(", ") };
    if !dropped.is_empty() {
        variables.push_str(&format!(" ({})", dropped.join("; ")));
    }
    parts.push(variables);
    parts.join(" · ")
}

/// `Compressor-1 anomaly v3 · 5,664 training readings · power_kw ·
/// flags 1.0 % (budget 1.0 %), 6 critical`.
pub fn anomaly(machine: &str, version: Option<i64>, m: &Value) -> String {
    let mut parts = vec![title(machine, "anomaly", version)];
    if let Some(n) = m["training_rows"].as_u64() {
        parts.push(format!("{} training readings", thousands(n)));
    }
    let signals: Vec<&str> = m["signals"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    if !signals.is_empty() {
        parts.push(signals.join(", "));
    }
    if let (Some(share), Some(budget)) = (m["training_flagged_share"].as_f64(), m["contamination"].as_f64()) {
        let critical = m["training_critical"].as_u64().unwrap_or(0);
        parts.push(format!("flags {:.1} % (budget {:.1} %), {critical} critical", share * 100.0, budget * 100.0));
    }
    if let Some(n) = m["left_out_episodes"].as_u64().filter(|n| *n > 0) {
        parts.push(format!("{n} recent episodes left out"));
    }
    parts.join(" · ")
}

fn title(machine: &str, kind: &str, version: Option<i64>) -> String {
    match version {
        Some(v) => format!("{machine} {kind} v{v}"),
        None => format!("{machine} {kind}"),
    }
}

/// `5664` → `5,664`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_baseline_reads_as_one_line_with_its_quality_and_variables() {
        let m = json!({"granularity": "hourly", "r_squared": 0.99912, "cv_rmse_pct": 1.84, "nmbe_pct": -0.001,
                       "g14_pass": true, "variables": ["production", "operating_hours", "cdd"],
                       "dropped": [{"variable": "hdd", "reason": "not significant (p = 0.480 > 0.1)"},
                                   {"variable": "cdd", "reason": "no variation in the baseline period"}]});
        assert_eq!(
            baseline("Compressor-1", Some(2), &m),
            "Compressor-1 baseline v2 · hourly · R² 0.999 · CV(RMSE) 1.8 % · NMBE 0.0 % · G14 pass · \
             production, operating_hours, cdd (hdd dropped: p = 0.480; cdd dropped: no variation in the baseline period)"
        );
    }

    #[test]
    fn an_anomaly_model_reads_as_one_line_with_its_budget() {
        let m = json!({"training_rows": 5664, "signals": ["power_kw"], "training_flagged_share": 0.0101,
                       "contamination": 0.01, "training_critical": 6, "left_out_episodes": 0});
        assert_eq!(
            anomaly("Compressor-1", Some(3), &m),
            "Compressor-1 anomaly v3 · 5,664 training readings · power_kw · flags 1.0 % (budget 1.0 %), 6 critical"
        );
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }
}
