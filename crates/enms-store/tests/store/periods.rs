//! Hour cells (`period_1h`) against a recomputation from the raw rows, by
//! an independent reading of the rule: each reading's interval is the gap
//! to its predecessor capped at an hour (a full hour without one), and it
//! belongs to the hour of its interval's middle. Random batches with gaps
//! over an hour, re-sent readings and back-dated single readings.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Duration;
use enms_core::Resolution;
use enms_core::timestamp::to_ms;
use enms_store::{ReadingQuery, Store};

use super::rollups::{Rng, close, random_reading};
use super::{machine, t0};

const H: i64 = 3_600_000;

/// (readings, covered h, kWh, units, operating h, Σ T·h, temperature h, peak kW, peak at) per hour.
type Expected = BTreeMap<i64, (u64, f64, f64, f64, f64, f64, f64, f64, i64)>;

async fn expected(store: &Arc<dyn Store>, id: uuid::Uuid) -> Expected {
    let q = ReadingQuery {
        machine_id: id,
        start: t0() - Duration::days(2),
        end: t0() + Duration::days(30),
        resolution: Resolution::Raw,
        limit: u32::MAX,
    };
    let raw = store.query_readings(&q).await.expect("raw");
    let mut out = Expected::new();
    let mut prev: Option<i64> = None;
    for p in &raw {
        let t = to_ms(p.timestamp);
        let gap = prev.map_or(H, |q| (t - q).min(H));
        prev = Some(t);
        let middle = t - gap / 2;
        let h = gap as f64 / H as f64;
        let e = out.entry(middle.div_euclid(H) * H).or_insert((0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, f64::MIN, 0));
        let units = p.production_units.unwrap_or(0.0);
        e.0 += 1;
        e.1 += h;
        e.2 += p.power_kw * h;
        e.3 += units;
        e.4 += if units > 0.0 { h } else { 0.0 };
        if let Some(temp) = p.outdoor_temp_c {
            e.5 += temp * h;
            e.6 += h;
        }
        if p.power_kw > e.7 {
            (e.7, e.8) = (p.power_kw, t);
        }
    }
    out
}

async fn check(store: &Arc<dyn Store>, id: uuid::Uuid, round: usize) {
    let want = expected(store, id).await;
    let got = store.period_cells(id, t0() - Duration::days(2), t0() + Duration::days(30)).await.expect("cells");
    let hours: Vec<i64> = got.iter().map(|c| to_ms(c.start)).collect();
    assert_eq!(hours, want.keys().copied().collect::<Vec<_>>(), "round {round}: the hours with cells");
    for c in &got {
        let w = want[&to_ms(c.start)];
        let at = format!("round {round}, hour {}", c.start);
        assert_eq!(c.readings, w.0, "{at}: readings");
        for (name, g, e) in [
            ("covered", c.covered_h, w.1),
            ("kwh", c.kwh, w.2),
            ("units", c.units, w.3),
            ("operating", c.operating_h, w.4),
            ("temperature", c.temp_weighted, w.5),
            ("temperature hours", c.temp_h, w.6),
            ("peak", c.peak_kw, w.7),
        ] {
            assert!(close(g, e), "{at}: {name} {g} vs {e}");
        }
        assert_eq!(to_ms(c.peak_at), w.8, "{at}: the earliest reading at the peak");
    }
}

pub async fn hour_cells_equal_a_recomputation_from_raw(store: Arc<dyn Store>) {
    let mut rng = Rng(0x0000_ce11_5eed);
    let m = machine("Cells-1");
    store.create_machine(&m).await.expect("create");
    let span_ms = 3 * 86_400_000;
    let mut sent = Vec::new();
    for round in 0..6 {
        // 150 readings over three days: gaps from seconds to hours.
        let mut batch: Vec<_> = (0..150).map(|_| random_reading(&mut rng, m.id, span_ms)).collect();
        for _ in 0..10 {
            if let Some(old) = sent.get(rng.below(sent.len().max(1) as u64) as usize).cloned() {
                let mut again: enms_core::Reading = old;
                again.power_kw += 7.0;
                batch.push(again);
            }
        }
        store.insert_readings(&batch).await.expect("insert");
        sent.extend(batch);
        check(&store, m.id, round).await;
    }
    // Back-dated single readings just before stored ones: each shortens a
    // successor's interval, moving its middle, often across an hour.
    for round in 6..40 {
        let mut r = sent[rng.below(sent.len() as u64) as usize].clone();
        r.timestamp -= Duration::seconds(60 + rng.below(40 * 60) as i64);
        store.insert_readings(std::slice::from_ref(&r)).await.expect("insert one");
        sent.push(r);
        check(&store, m.id, round).await;
    }
    // Appended batches, after every stored reading (the path that adds to
    // cells instead of recomputing them): gaps from seconds to hours, and a
    // timestamp repeated in the batch whose later reading wins.
    // A second machine rides in the same batches: each machine's cells are
    // its own.
    let other = machine("Cells-2");
    store.create_machine(&other).await.expect("create");
    let mut t = t0() + Duration::days(3) + Duration::minutes(1);
    for round in 40..46 {
        let mut batch = Vec::new();
        for _ in 0..60 {
            let longest = if rng.below(10) == 0 { 7_200 } else { 900 };
            t += Duration::seconds(1 + rng.below(longest) as i64);
            let mut r = random_reading(&mut rng, m.id, 1_000);
            r.timestamp = t;
            batch.push(r);
        }
        let mut again = batch[30].clone();
        again.power_kw += 100.0;
        batch.push(again);
        let theirs: Vec<_> = batch
            .iter()
            .step_by(3)
            .map(|r| enms_core::Reading { machine_id: other.id, power_kw: r.power_kw * 2.0, ..r.clone() })
            .collect();
        batch.extend(theirs);
        store.insert_readings(&batch).await.expect("append");
        check(&store, m.id, round).await;
        check(&store, other.id, round).await;
    }
}
