use chrono::TimeZone;

use super::*;

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).single().expect("date")
}

#[test]
fn same_seed_same_readings_different_seed_different() {
    let a: Vec<_> = Factory::new(7).history(start(), start() + Duration::days(1), Duration::minutes(15)).collect();
    let b: Vec<_> = Factory::new(7).history(start(), start() + Duration::days(1), Duration::minutes(15)).collect();
    let c: Vec<_> = Factory::new(8).history(start(), start() + Duration::days(1), Duration::minutes(15)).collect();
    assert_eq!(a.len(), 96 * 5);
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn power_follows_shifts_and_weekends() {
    let f = Factory::new(1);
    let c1 = &DEMO_MACHINES[0];
    let q = Duration::minutes(15);
    // Monday 2026-01-05 10:00 (day shift) vs Sunday 2026-01-11 10:00.
    let weekday = f.reading(c1, start() + Duration::hours(10), q);
    let sunday = f.reading(c1, start() + Duration::days(6) + Duration::hours(10), q);
    assert!(weekday.power_kw > 3.0 * sunday.power_kw, "{weekday:?} vs {sunday:?}");
    assert_eq!(sunday.production_units, Some(0.0));
    assert!((weekday.energy_kwh - weekday.power_kw / 4.0).abs() < 1e-3);
}

#[test]
fn hvac_follows_degree_hours() {
    let f = Factory::new(1);
    let hvac = &DEMO_MACHINES[2];
    let q = Duration::hours(1);
    let winter = f.reading(hvac, Utc.with_ymd_and_hms(2026, 1, 20, 11, 0, 0).single().expect("date"), q);
    let spring = f.reading(hvac, Utc.with_ymd_and_hms(2026, 5, 5, 11, 0, 0).single().expect("date"), q);
    assert!(winter.outdoor_temp_c < spring.outdoor_temp_c);
    assert!(winter.power_kw > spring.power_kw, "{winter:?} vs {spring:?}");
}

#[test]
fn injected_anomalies_change_the_readings_they_cover() {
    let mut f = Factory::new(3);
    let clean = f.clone();
    let plan = f.plan_history(start(), 60);
    let kinds: Vec<_> = plan.iter().map(|a| a.kind).collect();
    for k in [AnomalyKind::Spike, AnomalyKind::StuckSensor, AnomalyKind::OffHours, AnomalyKind::Drift] {
        assert!(kinds.contains(&k), "{k:?} missing from {kinds:?}");
    }
    for a in &plan {
        f.inject(a.clone());
    }
    let q = Duration::minutes(15);
    for a in &plan {
        let m = DEMO_MACHINES.iter().find(|m| m.id == a.machine_id).expect("demo machine");
        let ts = a.end;
        let (got, normal) = (f.reading(m, ts, q), clean.reading(m, ts, q));
        assert_ne!(got.power_kw, normal.power_kw, "{a:?}");
        let before = f.reading(m, a.start, q);
        assert_eq!(before, clean.reading(m, a.start, q), "anomaly leaks before its start: {a:?}");
    }
}

#[test]
fn the_first_live_fault_comes_within_two_minutes_then_about_every_mean_gap() {
    let f = Factory::new(9);
    let step = Duration::seconds(5);
    let day = 17_280; // 5 s ticks in a day
    let mut faults = f.live_faults(start(), Duration::minutes(10));
    let at: Vec<_> = (1..=day)
        .filter_map(|i| {
            let ts = start() + step * i;
            faults.due(ts, step).map(|a| (ts, a))
        })
        .collect();
    assert!(at[0].0 - start() <= FIRST_FAULT_WITHIN, "first at {}", at[0].0 - start());
    assert!((72..=216).contains(&at.len()), "{} live faults in a day at a 10-minute mean", at.len());
    for w in at.windows(2) {
        let gap = w[1].0 - w[0].0;
        assert!(gap >= Duration::seconds(150) && gap <= Duration::minutes(31), "gap {gap}");
    }
    // The same seed, another start: the same sequence of offsets and faults.
    let later = start() + Duration::days(3);
    let mut again = f.live_faults(later, Duration::minutes(10));
    let first = (1..=day).find_map(|i| again.due(later + step * i, step).map(|a| (later + step * i, a)));
    let (ts, a) = first.expect("a fault");
    assert_eq!((ts - later, a.machine_id, a.magnitude), (at[0].0 - start(), at[0].1.machine_id, at[0].1.magnitude));
}
