//! Explanations of an anomaly from facts, without I/O: the pattern its kind
//! names, the checks a documented rule table suggests for the machine type
//! and pattern, how much each judged signal contributed, the excess energy
//! priced under the tariff, how alike past episodes are, and a
//! plain-language summary assembled from those facts (templates, no model
//! of language).
//!
//! The rule table ([`RULES`]) is written down in docs/explanations.md with
//! the reasons behind each check; machine-specific rows come before the
//! generic row of the pattern.

use chrono::{DateTime, Duration, DurationRound, Timelike, Utc};
use serde::Serialize;

use crate::kpi::Tariff;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Pattern {
    /// Power drawn while the machine should be idle.
    OffHours,
    /// The meter repeats one value.
    StuckMeter,
    /// A slow move away from the expected level.
    Drift,
    /// A sudden rise above the expected level.
    Spike,
    /// A sudden fall below it.
    Drop,
}

impl Pattern {
    /// From an anomaly's type (`off_hours`, `stuck_sensor`, `drift`,
    /// `spike`, `drop`; anything else is read by the sign of the deviation).
    pub fn of(anomaly_type: &str, deviation: f64) -> Self {
        match anomaly_type {
            "off_hours" => Self::OffHours,
            "stuck_sensor" | "stuck" | "stuck_meter" => Self::StuckMeter,
            "drift" => Self::Drift,
            "drop" => Self::Drop,
            "spike" => Self::Spike,
            _ if deviation < 0.0 => Self::Drop,
            _ => Self::Spike,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Self::OffHours => "power drawn outside the machine's operating hours, when it should idle",
            Self::StuckMeter => "the meter kept reporting the same value while the machine was running",
            Self::Drift => "a gradual move away from the expected level over hours or days",
            Self::Spike => "a sudden rise above the expected level",
            Self::Drop => "a sudden fall below the expected level",
        }
    }
}

/// One row of the rule table: for a machine type (`*`: any) and a pattern,
/// the checks worth making, most likely cause first.
pub struct Rule {
    pub machine_type: &'static str,
    pub pattern: Pattern,
    pub checks: &'static [&'static str],
}

/// The documented rule table (docs/explanations.md).
pub const RULES: &[Rule] = &[
    Rule {
        machine_type: "compressor",
        pattern: Pattern::OffHours,
        checks: &[
            "Listen for compressed-air leaks (an ultrasonic detector finds them) — leaks make a compressor run with no demand",
            "Check for valves left open and machines left connected to the air network after the shift",
            "Verify the compressor's timer or building-management schedule",
        ],
    },
    Rule {
        machine_type: "compressor",
        pattern: Pattern::Spike,
        checks: &[
            "Check the intake filter and the air dryer for clogging (higher pressure drop, higher power)",
            "Look for a new or larger air consumer on the network",
            "Check the cooling: a hot compressor works harder",
        ],
    },
    Rule {
        machine_type: "compressor",
        pattern: Pattern::Drift,
        checks: &[
            "Check filters and separators: load creeps up as they clog",
            "Check the pressure set point: each extra bar costs about 7 % power",
            "Look for leaks growing over time",
        ],
    },
    Rule {
        machine_type: "hvac",
        pattern: Pattern::OffHours,
        checks: &[
            "Check the schedule and any override left on in the building-management system",
            "Check occupancy sensors and setback temperatures",
        ],
    },
    Rule {
        machine_type: "hvac",
        pattern: Pattern::Drift,
        checks: &[
            "Replace or clean air filters; clean the coils",
            "Check the refrigerant charge and for leaks",
            "Check set points that may have been changed",
        ],
    },
    Rule {
        machine_type: "hvac",
        pattern: Pattern::Spike,
        checks: &[
            "Check doors and windows left open, and the outdoor temperature",
            "Check for simultaneous heating and cooling (valves fighting)",
        ],
    },
    Rule {
        machine_type: "furnace",
        pattern: Pattern::Spike,
        checks: &[
            "Check the door seals and insulation for heat loss",
            "Check the burner or heating elements and the temperature controller's tuning",
        ],
    },
    Rule {
        machine_type: "furnace",
        pattern: Pattern::OffHours,
        checks: &["Check whether the furnace was kept at temperature over idle time; a setback saves energy"],
    },
    Rule {
        machine_type: "furnace",
        pattern: Pattern::Drift,
        checks: &["Inspect the refractory lining and insulation for wear", "Check thermocouples for drift"],
    },
    Rule {
        machine_type: "conveyor",
        pattern: Pattern::Spike,
        checks: &[
            "Check for jams, worn bearings or a misaligned belt (friction raises the motor's load)",
            "Check belt tension and lubrication",
        ],
    },
    Rule {
        machine_type: "conveyor",
        pattern: Pattern::OffHours,
        checks: &["Check that the line stops when empty (idle running is pure loss)"],
    },
    Rule {
        machine_type: "host",
        pattern: Pattern::Spike,
        checks: &["Look for a runaway process (CPU) or a backup or batch job that started"],
    },
    Rule {
        machine_type: "host",
        pattern: Pattern::OffHours,
        checks: &["Check scheduled jobs and whether the host can sleep or scale down off-hours"],
    },
    Rule {
        machine_type: "*",
        pattern: Pattern::StuckMeter,
        checks: &[
            "Check the meter's communication (Modbus/MQTT link, gateway) — a frozen value often means a lost connection",
            "Check the meter itself: power supply, CT clamps, configuration",
        ],
    },
    Rule {
        machine_type: "*",
        pattern: Pattern::OffHours,
        checks: &["Check what ran outside operating hours: schedules, overrides, equipment left on"],
    },
    Rule {
        machine_type: "*",
        pattern: Pattern::Spike,
        checks: &[
            "Compare with production and the operating state at the time; a new load or a fault is likely",
            "Inspect the machine for mechanical problems (friction, blockage, overheating)",
        ],
    },
    Rule {
        machine_type: "*",
        pattern: Pattern::Drift,
        checks: &[
            "Look for wear and fouling that build up slowly (filters, bearings, heat exchangers)",
            "Check whether set points or the process changed; if so, retrain the baseline",
        ],
    },
    Rule {
        machine_type: "*",
        pattern: Pattern::Drop,
        checks: &[
            "Check whether the machine stopped or ran at part load, and whether that was planned",
            "Check the meter and its link: a drop can be a measurement fault",
        ],
    },
];

/// The checks for a machine type and pattern: its own rows, then the
/// generic row, without repeats.
pub fn checks_for(machine_type: &str, pattern: Pattern) -> Vec<&'static str> {
    let t = machine_type.to_ascii_lowercase();
    let mut out: Vec<&'static str> = Vec::new();
    for rule in RULES.iter().filter(|r| r.pattern == pattern && r.machine_type == t) {
        out.extend(rule.checks);
    }
    for rule in RULES.iter().filter(|r| r.pattern == pattern && r.machine_type == "*") {
        out.extend(rule.checks.iter().filter(|c| !out.contains(c)).collect::<Vec<_>>());
    }
    out
}

/// How much one judged signal contributed to the anomaly.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Contribution {
    pub signal: String,
    pub value: f64,
    pub expected: f64,
    /// Deviation in the signal's σ.
    pub z: f64,
    /// Its share of the combined deviation (Σ = 100).
    pub share_pct: f64,
}

/// Shares of z² (the parts of the Mahalanobis-like distance the detector
/// combines), largest first.
pub fn contributions(parts: &[(String, f64, f64, f64)]) -> Vec<Contribution> {
    let total: f64 = parts.iter().map(|p| p.3 * p.3).sum();
    let mut out: Vec<Contribution> = parts
        .iter()
        .map(|(signal, value, expected, z)| Contribution {
            signal: signal.clone(),
            value: *value,
            expected: *expected,
            z: *z,
            share_pct: if total > 0.0 { 100.0 * z * z / total } else { 100.0 / parts.len().max(1) as f64 },
        })
        .collect();
    out.sort_by(|a, b| b.share_pct.total_cmp(&a.share_pct));
    out
}

/// The cost of `kwh` spread evenly over `[start, end]`, at each hour's
/// tariff price.
pub fn cost_over(kwh: f64, start: DateTime<Utc>, end: DateTime<Utc>, tariff: &Tariff) -> f64 {
    if end <= start {
        return kwh * tariff.price(start);
    }
    let total = (end - start).num_milliseconds() as f64;
    let mut t = start;
    let mut cost = 0.0;
    while t < end {
        let next = (t.duration_trunc(Duration::hours(1)).unwrap_or(t) + Duration::hours(1)).min(end);
        cost += kwh * (next - t).num_milliseconds() as f64 / total * tariff.price(t);
        t = next;
    }
    cost
}

/// What an episode looks like, for comparing episodes.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub peak_value: f64,
    pub peak_expected: f64,
}

/// In [0, 1]: alike in how far the peak went from the expectation (as a
/// ratio), how long it lasted, and the hour of day it began.
pub fn similarity(a: &Shape, b: &Shape) -> f64 {
    let ratio = |s: &Shape| ((s.peak_value.abs() + 1e-6) / (s.peak_expected.abs() + 1e-6)).ln();
    let minutes = |s: &Shape| ((s.end - s.start).num_seconds() as f64 / 60.0).max(1.0);
    let hours = {
        let d = (a.start.hour() as i32 - b.start.hour() as i32).rem_euclid(24);
        d.min(24 - d) as f64
    };
    let level = (-(ratio(a) - ratio(b)).abs()).exp();
    let length = (-(minutes(a).ln() - minutes(b).ln()).abs() / 2.0).exp();
    let time = 1.0 - hours / 24.0;
    (level * 0.5 + length * 0.25 + time * 0.25).clamp(0.0, 1.0)
}

/// The facts a summary is written from.
pub struct Facts<'a> {
    pub machine: &'a str,
    pub pattern: Pattern,
    pub severity: &'a str,
    pub metric: &'a str,
    pub actual: f64,
    pub expected: f64,
    pub at: DateTime<Utc>,
    pub duration_min: Option<f64>,
    pub excess_kwh: Option<f64>,
    pub cost: Option<(f64, &'a str)>,
    pub top: Option<&'a Contribution>,
    pub similar: usize,
    pub first_check: Option<&'a str>,
}

/// A few sentences from the facts, in a fixed order: what, how much, what
/// drove it, what it cost, what happened before, what to check.
pub fn summary(f: &Facts<'_>) -> String {
    let mut s = format!(
        "{} had a {} {} at {}: {} was {:.1} against {:.1} expected",
        f.machine,
        f.severity,
        match f.pattern {
            Pattern::OffHours => "off-hours consumption",
            Pattern::StuckMeter => "stuck meter",
            Pattern::Drift => "drift",
            Pattern::Spike => "spike",
            Pattern::Drop => "drop",
        },
        f.at.format("%Y-%m-%d %H:%M UTC"),
        f.metric,
        f.actual,
        f.expected,
    );
    if f.expected.abs() > 1e-9 {
        s.push_str(&format!(" ({:+.0} %)", (f.actual - f.expected) / f.expected.abs() * 100.0));
    }
    if let Some(d) = f.duration_min {
        s.push_str(&format!(", over {d:.0} minutes"));
    }
    s.push('.');
    if let Some(c) = f.top {
        s.push_str(&format!(" {} contributed most ({:.0} % of the deviation, {:.1} σ).", c.signal, c.share_pct, c.z));
    }
    match (f.excess_kwh, f.cost) {
        (Some(k), Some((c, cur))) if k > 0.0 => {
            s.push_str(&format!(" It used {k:.1} kWh more than expected, about {c:.2} {cur} at the tariff."))
        }
        (Some(k), _) if k < 0.0 => s.push_str(&format!(" It used {:.1} kWh less than expected.", -k)),
        _ => {}
    }
    if f.similar > 0 {
        s.push_str(&format!(
            " {} similar episode{} of this machine came before.",
            f.similar,
            if f.similar == 1 { "" } else { "s" }
        ));
    }
    if let Some(c) = f.first_check {
        s.push_str(&format!(" First check: {}.", c.trim_end_matches('.')));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn machine_rules_come_before_the_generic_ones() {
        let c = checks_for("Compressor", Pattern::OffHours);
        assert!(c[0].contains("leaks"), "{c:?}");
        assert!(c.last().unwrap().contains("outside operating hours"), "the generic row follows");
        assert!(!checks_for("pump", Pattern::Spike).is_empty(), "an unknown type gets the generic checks");
        for p in [Pattern::OffHours, Pattern::StuckMeter, Pattern::Drift, Pattern::Spike, Pattern::Drop] {
            assert!(!checks_for("anything", p).is_empty(), "{p:?} has a generic row");
        }
    }

    #[test]
    fn patterns_are_read_from_the_kind() {
        assert_eq!(Pattern::of("off_hours", 3.0), Pattern::OffHours);
        assert_eq!(Pattern::of("stuck_sensor", 0.0), Pattern::StuckMeter);
        assert_eq!(Pattern::of("whatever", -2.0), Pattern::Drop);
    }

    #[test]
    fn shares_add_up_and_the_largest_leads() {
        let c = contributions(&[("power_kw".into(), 90.0, 40.0, 4.0), ("extra.pressure_bar".into(), 7.0, 7.2, -1.0)]);
        assert_eq!(c[0].signal, "power_kw");
        assert!((c[0].share_pct - 100.0 * 16.0 / 17.0).abs() < 1e-9);
        assert!((c.iter().map(|x| x.share_pct).sum::<f64>() - 100.0).abs() < 1e-9);
    }

    #[test]
    fn cost_follows_the_hours_of_the_tariff() {
        let tariff = Tariff::default();
        // A Monday, 19:30–20:30: half at the peak price, half off-peak.
        let start = Utc.with_ymd_and_hms(2026, 11, 23, 19, 30, 0).unwrap();
        let c = cost_over(10.0, start, start + Duration::hours(1), &tariff);
        let want = 5.0 * tariff.peak_price + 5.0 * tariff.offpeak_price;
        assert!((c - want).abs() < 1e-9, "{c} vs {want}");
    }

    #[test]
    fn alike_episodes_score_higher() {
        let t = Utc.with_ymd_and_hms(2026, 11, 23, 22, 0, 0).unwrap();
        let base = Shape { start: t, end: t + Duration::minutes(30), peak_value: 60.0, peak_expected: 10.0 };
        let twin =
            Shape { start: t + Duration::days(7), end: t + Duration::days(7) + Duration::minutes(35), ..base.clone() };
        let other = Shape {
            start: t + Duration::hours(12),
            end: t + Duration::hours(20),
            peak_value: 11.0,
            peak_expected: 10.0,
        };
        assert!(similarity(&base, &twin) > 0.9);
        assert!(similarity(&base, &other) < similarity(&base, &twin));
    }

    #[test]
    fn the_summary_states_the_facts() {
        let c = Contribution { signal: "power_kw".into(), value: 90.0, expected: 40.0, z: 4.2, share_pct: 88.0 };
        let s = summary(&Facts {
            machine: "Compressor-1",
            pattern: Pattern::OffHours,
            severity: "critical",
            metric: "power_kw",
            actual: 30.0,
            expected: 6.0,
            at: Utc.with_ymd_and_hms(2026, 11, 23, 23, 0, 0).unwrap(),
            duration_min: Some(95.0),
            excess_kwh: Some(38.0),
            cost: Some((6.08, "EUR")),
            top: Some(&c),
            similar: 2,
            first_check: Some("Listen for compressed-air leaks."),
        });
        assert!(s.starts_with("Compressor-1 had a critical off-hours consumption at 2026-11-23 23:00 UTC"), "{s}");
        for part in [
            "(+400 %)",
            "over 95 minutes",
            "power_kw contributed most (88 %",
            "38.0 kWh more",
            "6.08 EUR",
            "2 similar episodes",
            "First check: Listen",
        ] {
            assert!(s.contains(part), "{part:?} in {s}");
        }
        assert!(!s.to_lowercase().contains("language model") && !s.contains("AI"));
    }
}
