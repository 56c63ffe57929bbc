//! How far a measurement normally strays from its expected value, as a
//! function of that expected value: the σ behind anomaly deviations and
//! behind the baseline's exclusion of anomalous periods.
//!
//! Meter and process noise grow with the load: a compressor at 60 kW wanders
//! by ±2 kW where the same compressor idling at 6 kW wanders by ±0.2 kW. One
//! σ pooled over both is too small for the busy hours (every ordinary
//! wobble becomes "six sigma") and too large for the quiet ones. So σ is
//! learned per level: the training readings are sorted by expected power and
//! cut into bins of equal count, each bin's σ is 1.4826 × the median absolute
//! deviation in it (robust to the anomalies the training data may hold), and
//! σ between bin centres is interpolated linearly, held flat beyond them.

use serde::{Deserialize, Serialize};

/// Most bins: enough to follow a load curve, few enough for a stable median.
const MAX_BINS: usize = 8;
/// Fewest training readings per bin.
const MIN_PER_BIN: usize = 30;
/// 1.4826 × MAD estimates σ for normally distributed deviations.
const MAD_TO_SIGMA: f64 = 1.4826;
/// σ is never below this, so a perfectly flat training set cannot make
/// every later wobble infinitely significant.
const MIN_SIGMA_KW: f64 = 1e-6;

/// σ by expected level: `(level_kw, sigma_kw)` knots, increasing in level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoiseScale {
    knots: Vec<[f64; 2]>,
}

impl NoiseScale {
    /// Learns the scale from `(expected_kw, actual_kw − expected_kw)` pairs.
    pub fn fit(pairs: &[(f64, f64)]) -> Self {
        let mut pairs: Vec<(f64, f64)> =
            pairs.iter().filter(|(e, d)| e.is_finite() && d.is_finite()).map(|&(e, d)| (e, d.abs())).collect();
        if pairs.is_empty() {
            return Self { knots: vec![[0.0, MIN_SIGMA_KW]] };
        }
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let bins = (pairs.len() / MIN_PER_BIN).clamp(1, MAX_BINS);
        let mut knots: Vec<[f64; 2]> = (0..bins)
            .map(|b| {
                let bin = &pairs[b * pairs.len() / bins..(b + 1) * pairs.len() / bins];
                let mut levels: Vec<f64> = bin.iter().map(|p| p.0).collect();
                let mut deviations: Vec<f64> = bin.iter().map(|p| p.1).collect();
                [median(&mut levels), (MAD_TO_SIGMA * median(&mut deviations)).max(MIN_SIGMA_KW)]
            })
            .collect();
        // Bins of one repeated level (an idle machine's constant expectation)
        // would give duplicate knots; keep the first of each level.
        knots.dedup_by(|later, first| later[0] <= first[0]);
        Self { knots }
    }

    /// σ at `expected_kw`.
    pub fn at(&self, expected_kw: f64) -> f64 {
        let k = &self.knots;
        let Some(i) = k.iter().position(|knot| knot[0] >= expected_kw) else {
            return k.last().map_or(MIN_SIGMA_KW, |knot| knot[1]);
        };
        if i == 0 {
            return k[0][1];
        }
        let ([x0, y0], [x1, y1]) = (k[i - 1], k[i]);
        y0 + (y1 - y0) * (expected_kw - x0) / (x1 - x0)
    }

    /// The σ of a typical reading: the middle knot's.
    pub fn typical(&self) -> f64 {
        self.knots.get(self.knots.len() / 2).map_or(MIN_SIGMA_KW, |knot| knot[1])
    }
}

/// Median of `v` (sorted in place); NaN when empty.
pub(crate) fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 { v[m] } else { (v[m - 1] + v[m]) / 2.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deviations of ±`pct` % of the level (alternating), at levels 5..=100 kW.
    fn proportional(pct: f64) -> Vec<(f64, f64)> {
        (0..2000)
            .map(|i| {
                let level = 5.0 + (i % 20) as f64 * 5.0;
                let sign = if i % 2 == 0 { 1.0 } else { -1.0 };
                (level, sign * level * pct / 100.0 * (0.5 + (i % 7) as f64 / 6.0))
            })
            .collect()
    }

    #[test]
    fn sigma_follows_a_load_proportional_noise() {
        let s = NoiseScale::fit(&proportional(3.0));
        let (low, high) = (s.at(10.0), s.at(90.0));
        assert!(high > 6.0 * low, "σ {low:.3} kW at 10 kW, {high:.3} kW at 90 kW");
        assert!((high / 90.0 - low / 10.0).abs() < 0.02, "σ should stay near a fixed share of the level");
        assert!(s.at(1000.0) == s.at(200.0) && s.at(0.0) == s.at(-5.0), "held flat beyond the knots");
    }

    #[test]
    fn constant_noise_gives_a_flat_scale_and_outliers_do_not_inflate_it() {
        let mut pairs: Vec<(f64, f64)> =
            (0..1000).map(|i| (20.0 + (i % 50) as f64, if i % 2 == 0 { 1.0 } else { -1.0 })).collect();
        pairs.extend((0..50).map(|i| (20.0 + i as f64, 40.0)));
        let s = NoiseScale::fit(&pairs);
        for level in [20.0, 45.0, 70.0] {
            assert!((s.at(level) - 1.4826).abs() < 1e-9, "σ {} at {level}", s.at(level));
        }
    }

    #[test]
    fn few_or_repeated_levels_still_give_a_usable_scale() {
        assert_eq!(NoiseScale::fit(&[]).at(10.0), MIN_SIGMA_KW);
        let flat = NoiseScale::fit(&vec![(6.0, 0.1); 500]);
        assert!((flat.at(6.0) - 0.14826).abs() < 1e-9 && flat.at(50.0) == flat.at(6.0));
        let few = NoiseScale::fit(&[(1.0, 0.5), (2.0, -0.5), (3.0, 0.5)]);
        assert!((few.at(2.0) - 0.7413).abs() < 1e-9);
    }
}
