//! Rollup exactness: whatever the batches did — random order, duplicates
//! inside a batch, re-sent readings with new values, late and back-dated
//! readings, a deleted machine — every aggregated answer equals the same
//! aggregation recomputed from the raw rows, for every resolution and for
//! windows whose edges fall anywhere (so each tier and the raw edges are
//! read).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Duration;
use enms_core::timestamp::{from_ms, to_ms};
use enms_core::{Reading, Resolution};
use enms_store::{ReadingPoint, ReadingQuery, Store};

use super::{machine, t0};

/// SplitMix64: a seeded, dependency-free source for the test's choices.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

pub fn random_reading(rng: &mut Rng, id: uuid::Uuid, span_ms: i64) -> Reading {
    // Seconds apart, so several readings share a minute.
    let ms = (rng.below((span_ms / 1000) as u64) as i64) * 1000;
    Reading {
        machine_id: id,
        timestamp: t0() + Duration::milliseconds(ms),
        power_kw: (rng.unit() * 100.0 * 1000.0).round() / 1000.0,
        energy_kwh: rng.unit(),
        production_units: (rng.below(3) > 0).then(|| rng.below(20) as f64),
        outdoor_temp_c: (rng.below(4) > 0).then(|| rng.unit() * 30.0 - 5.0),
        extra: Default::default(),
    }
}

/// Bucket start, samples, mean and peak power, energy, production, mean
/// temperature.
type Bucket = (i64, u32, f64, f64, f64, Option<f64>, Option<f64>);

/// The aggregation of raw rows, as the API defines it.
fn expected(raw: &[ReadingPoint], start: i64, end: i64, width: i64) -> Vec<Bucket> {
    let mut buckets: BTreeMap<i64, Vec<&ReadingPoint>> = BTreeMap::new();
    for p in raw {
        let t = to_ms(p.timestamp);
        if t >= start && t < end {
            buckets.entry(t.div_euclid(width) * width).or_default().push(p);
        }
    }
    buckets
        .into_iter()
        .map(|(b, ps)| {
            let n = ps.len();
            let units: Vec<f64> = ps.iter().filter_map(|p| p.production_units).collect();
            let temps: Vec<f64> = ps.iter().filter_map(|p| p.outdoor_temp_c).collect();
            (
                b,
                n as u32,
                ps.iter().map(|p| p.power_kw).sum::<f64>() / n as f64,
                ps.iter().map(|p| p.power_kw).fold(f64::MIN, f64::max),
                ps.iter().map(|p| p.energy_kwh).sum::<f64>(),
                (!units.is_empty()).then(|| units.iter().sum()),
                (!temps.is_empty()).then(|| temps.iter().sum::<f64>() / temps.len() as f64),
            )
        })
        .collect()
}

pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn close_opt(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => close(a, b),
        (None, None) => true,
        _ => false,
    }
}

async fn check(store: &Arc<dyn Store>, id: uuid::Uuid, span_ms: i64, rng: &mut Rng, round: usize) {
    let all = ReadingQuery {
        machine_id: id,
        start: t0() - Duration::days(1),
        end: t0() + Duration::milliseconds(span_ms) + Duration::days(1),
        resolution: Resolution::Raw,
        limit: u32::MAX,
    };
    let raw = store.query_readings(&all).await.expect("raw");
    for resolution in [Resolution::OneMinute, Resolution::FifteenMinutes, Resolution::OneHour, Resolution::OneDay] {
        let width = resolution.bucket_ms().expect("bucketed");
        // The whole span aligned, and windows cut anywhere.
        let mut windows = vec![(to_ms(all.start), to_ms(all.end))];
        for _ in 0..4 {
            let a = to_ms(t0()) + rng.below(span_ms as u64) as i64 - 3_600_000;
            let b = a + rng.below(span_ms as u64) as i64;
            windows.push((a, b));
        }
        for (start, end) in windows {
            let q =
                ReadingQuery { machine_id: id, start: from_ms(start), end: from_ms(end), resolution, limit: 100_000 };
            let got = store.query_readings(&q).await.expect("aggregate");
            let want = expected(&raw, start, end, width);
            let what = format!("round {round}, {} over [{start}, {end})", resolution.as_str());
            assert_eq!(got.len(), want.len(), "{what}: bucket count");
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(to_ms(g.timestamp), w.0, "{what}: bucket");
                assert_eq!(g.samples, w.1, "{what}: samples at {}", w.0);
                assert!(close(g.power_kw, w.2), "{what}: mean power at {}: {} vs {}", w.0, g.power_kw, w.2);
                assert!(close(g.max_power_kw, w.3), "{what}: peak at {}", w.0);
                assert!(close(g.energy_kwh, w.4), "{what}: energy at {}", w.0);
                assert!(close_opt(g.production_units, w.5), "{what}: production at {}", w.0);
                assert!(close_opt(g.outdoor_temp_c, w.6), "{what}: temperature at {}", w.0);
            }
        }
    }
}

pub async fn rollups_equal_a_raw_recomputation_after_any_batches(store: Arc<dyn Store>) {
    let mut rng = Rng(0x005e_ed0f_e115);
    let m = machine("Roll-1");
    let other = machine("Roll-2");
    store.create_machine(&m).await.expect("create");
    store.create_machine(&other).await.expect("create");
    // Three days: days, hours and minutes all have edges inside.
    let span_ms = 3 * 86_400_000;
    let mut sent: Vec<Reading> = Vec::new();
    for round in 0..8 {
        let mut batch: Vec<Reading> = (0..200).map(|_| random_reading(&mut rng, m.id, span_ms)).collect();
        // Re-sent readings with new values (replacing, so the old value
        // must leave its buckets), and a duplicate inside the batch.
        for _ in 0..20 {
            if let Some(old) = sent.get(rng.below(sent.len().max(1) as u64) as usize) {
                let mut again = old.clone();
                again.power_kw += 50.0;
                again.energy_kwh *= 2.0;
                again.production_units = None;
                batch.push(again);
            }
        }
        if let Some(first) = batch.first().cloned() {
            let mut dup = first.clone();
            dup.power_kw = 1.5;
            batch.push(dup);
        }
        // Another machine in the same batch must not leak into this one.
        batch.extend((0..30).map(|_| random_reading(&mut rng, other.id, span_ms)));
        store.insert_readings(&batch).await.expect("insert");
        sent.extend(batch);
        check(&store, m.id, span_ms, &mut rng, round).await;
    }
    // Late, back-dated readings, one at a time (the live path).
    for round in 8..12 {
        let r = random_reading(&mut rng, m.id, span_ms);
        store.insert_readings(std::slice::from_ref(&r)).await.expect("insert one");
        check(&store, m.id, span_ms, &mut rng, round).await;
    }
    check(&store, other.id, span_ms, &mut rng, 99).await;

    // A deleted machine leaves no buckets behind for a new one of that name.
    assert!(store.delete_machine(m.id).await.expect("delete"));
    let again = machine("Roll-1");
    store.create_machine(&again).await.expect("create again");
    let q = ReadingQuery {
        machine_id: again.id,
        start: t0() - Duration::days(1),
        end: t0() + Duration::days(5),
        resolution: Resolution::OneDay,
        limit: 100,
    };
    assert!(store.query_readings(&q).await.expect("daily").is_empty());
    store.insert_readings(&[random_reading(&mut rng, again.id, span_ms)]).await.expect("insert");
    let days = store.query_readings(&q).await.expect("daily");
    assert_eq!(days.iter().map(|p| p.samples).sum::<u32>(), 1);
}

/// Two instances writing one machine's minutes at once: each batch
/// recomputes its buckets after the other's commit, so no count is lost.
pub async fn concurrent_writers_lose_no_rollup_count(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    let mut rng = Rng(0x000c_0c0a);
    let m = machine("Roll-3");
    a.create_machine(&m).await.expect("create");
    let span_ms = 2 * 3_600_000;
    let batches: Vec<Vec<Reading>> =
        (0..40).map(|_| (0..50).map(|_| random_reading(&mut rng, m.id, span_ms)).collect()).collect();
    let (left, right) = batches.split_at(20);
    let write = |store: Arc<dyn Store>, batches: Vec<Vec<Reading>>| async move {
        for batch in batches {
            store.insert_readings(&batch).await.expect("insert");
        }
    };
    tokio::join!(write(a.clone(), left.to_vec()), write(b.clone(), right.to_vec()));
    check(&a, m.id, span_ms, &mut rng, 0).await;
}

/// Retention: pruning a level in bounded batches, after raising its floor;
/// the levels that remain answer for pruned time, as exactly as they can;
/// a reading older than the raw floor is refused.
pub async fn pruned_levels_are_answered_by_the_levels_that_remain(store: Arc<dyn Store>) {
    use enms_store::StoreError;
    use enms_store::rollup::{Source, Tier};
    let m = machine("Keep-1");
    store.create_machine(&m).await.expect("create");
    // Ten days, one reading every 10 minutes.
    let n = 10 * 144;
    let batch: Vec<Reading> = (1..=n)
        .map(|i| Reading {
            machine_id: m.id,
            timestamp: t0() + Duration::minutes(10 * i),
            power_kw: (i % 37) as f64,
            energy_kwh: 0.5,
            production_units: Some(1.0),
            outdoor_temp_c: None,
            extra: Default::default(),
        })
        .collect();
    store.insert_readings(&batch).await.expect("insert");
    let q = |resolution, days_from: i64, days_to: i64| ReadingQuery {
        machine_id: m.id,
        start: t0() + Duration::days(days_from),
        end: t0() + Duration::days(days_to),
        resolution,
        limit: 100_000,
    };
    let daily = store.query_readings(&q(Resolution::OneDay, 0, 11)).await.expect("daily");
    let hourly = store.query_readings(&q(Resolution::OneHour, 0, 11)).await.expect("hourly");

    // Raw readings before day 5 go, 100 rows a pass.
    let floor = t0() + Duration::days(5);
    store.raise_retention_floor(Source::Raw, floor).await.expect("floor");
    let mut passes = 0;
    while store.prune_level(Source::Raw, floor, 100).await.expect("prune") > 0 {
        passes += 1;
    }
    assert_eq!(passes, (5 * 144 - 1) / 100 + 1, "bounded passes");
    assert_eq!(store.count_readings(Some(m.id)).await.expect("count"), (n - 5 * 144 + 1) as u64);
    assert_eq!(store.retention_floors().await.expect("floors").raw, Some(to_ms(floor)));

    // Days and hours read the tiers: the same answers as before pruning.
    assert_eq!(store.query_readings(&q(Resolution::OneDay, 0, 11)).await.expect("daily"), daily);
    assert_eq!(store.query_readings(&q(Resolution::OneHour, 0, 11)).await.expect("hourly"), hourly);
    // Raw asked across the floor: minutes before it, readings after.
    let raw = store.query_readings(&q(Resolution::Raw, 4, 6)).await.expect("raw");
    assert_eq!(raw.len(), 2 * 144, "one minute bucket per reading before the floor, raw after");
    assert!(raw.iter().all(|p| p.samples == 1));
    assert!(raw.iter().filter(|p| p.timestamp < floor).all(|p| p.extra.is_none()));

    // A reading older than the raw floor is refused whole; newer ones land.
    let late =
        |days: i64| Reading { timestamp: t0() + Duration::days(days) + Duration::minutes(3), ..batch[0].clone() };
    let refused = store.insert_readings(&[late(6), late(1)]).await;
    assert!(matches!(refused, Err(StoreError::PastRetention { .. })), "{refused:?}");
    store.insert_readings(&[late(6)]).await.expect("inside retention");

    // Minutes before day 3 go too: 15-minute buckets there come as hours.
    let minute_floor = t0() + Duration::days(3);
    store.raise_retention_floor(Source::Tier(Tier::Minute), minute_floor).await.expect("floor");
    while store.prune_level(Source::Tier(Tier::Minute), minute_floor, 1_000).await.expect("prune") > 0 {}
    let quarter = store.query_readings(&q(Resolution::FifteenMinutes, 2, 4)).await.expect("15m");
    let (before, after): (Vec<_>, Vec<_>) = quarter.iter().partition(|p| p.timestamp < minute_floor);
    assert_eq!(before.len(), 24, "hourly points where only hours remain");
    assert_eq!(after.len(), 96);
    assert_eq!(quarter.iter().map(|p| p.samples).sum::<u32>(), 2 * 144);

    let stats = store.storage_stats().await.expect("stats");
    let rows = |level: &str| {
        stats.levels.iter().find(|l| l.machine_id == m.id && l.level == level).map(|l| l.rows).expect("level")
    };
    assert_eq!(rows("raw"), (n - 5 * 144 + 2) as u64);
    assert_eq!(rows("1h"), 10 * 24 + 1);
    assert_eq!(stats.bytes.len(), 4, "{stats:?}");
}
