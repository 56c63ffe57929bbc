//! Turning a statistic into "how unusual would this be in the training
//! period": the empirical upper tail of the statistic over the training
//! readings, with an exponential tail beyond the largest one so that two
//! readings both beyond anything seen in training are still told apart.
//!
//! This is what makes thresholds follow the machine instead of being fixed
//! constants: a tail of 0.01 means "1 % of the training readings were at
//! least this extreme", on any data.

use serde::{Deserialize, Serialize};

/// The training distribution of one statistic (larger = more abnormal).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tail {
    /// Sorted training values, thinned to at most [`MAX_KNOTS`] quantiles.
    knots: Vec<f64>,
    /// Training rows the knots stand for.
    n: usize,
    /// Mean excess over the 90th percentile: the exponential tail's scale.
    beta: f64,
}

/// Knots kept: quantile resolution of 1/2048 is plenty for a tail, and a
/// year of 1-second data must not make the model megabytes long.
const MAX_KNOTS: usize = 2048;

impl Tail {
    /// Learns the distribution of `values` (non-finite values are dropped).
    pub fn fit(values: &[f64]) -> Self {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n == 0 {
            return Self { knots: vec![0.0], n: 1, beta: 1.0 };
        }
        let q90 = v[(n * 9 / 10).min(n - 1)];
        let over: Vec<f64> = v.iter().filter(|x| **x > q90).map(|x| x - q90).collect();
        let spread = v[n - 1] - v[0];
        let beta = if over.is_empty() { 0.0 } else { over.iter().sum::<f64>() / over.len() as f64 };
        let beta = beta.max(1e-6 * spread.abs()).max(1e-12);
        // Keep the top of the distribution exactly (that is where thresholds
        // sit), thin the bulk evenly.
        let knots = if n <= MAX_KNOTS {
            v
        } else {
            let top = MAX_KNOTS / 2;
            let bulk = n - top;
            let mut k: Vec<f64> = (0..MAX_KNOTS - top).map(|i| v[i * bulk / (MAX_KNOTS - top)]).collect();
            k.extend_from_slice(&v[bulk..]);
            k
        };
        Self { knots, n, beta }
    }

    /// Share of training values at least as large as `x`, in (0, 1]; beyond
    /// the largest it keeps falling exponentially.
    pub fn upper(&self, x: f64) -> f64 {
        let k = &self.knots;
        let n = self.n as f64;
        let last = k[k.len() - 1];
        if x.is_nan() {
            return 1.0;
        }
        if x > last {
            return (0.5 / (n + 1.0)) * (-(x - last) / self.beta).exp();
        }
        // Knots at or above x, scaled to the rows they stand for.
        let below = k.partition_point(|v| *v < x);
        let at_or_above = self.rows_at_or_above(below);
        ((at_or_above + 0.5) / (n + 1.0)).min(1.0)
    }

    /// The smallest value whose [`upper`](Self::upper) share is at most
    /// `share`: the inverse of the tail, for thresholds at a share other
    /// than those fixed in training (a finer reading interval judged at the
    /// same alarm rate per hour). Beyond the largest training value it
    /// follows the exponential tail.
    pub fn at_share(&self, share: f64) -> f64 {
        let k = &self.knots;
        let last = k[k.len() - 1];
        let share = share.clamp(f64::MIN_POSITIVE, 1.0);
        let edge = 0.5 / (self.n as f64 + 1.0);
        if share < edge {
            return last + self.beta * (edge / share).ln();
        }
        // `upper` falls as x rises: the first knot whose share is at most
        // `share` (bisection over the knots).
        let (mut lo, mut hi) = (0usize, k.len() - 1);
        if self.upper(k[hi]) > share {
            return last + self.beta * (edge / share).ln().max(0.0);
        }
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.upper(k[mid]) <= share { hi = mid } else { lo = mid + 1 }
        }
        k[lo]
    }

    fn rows_at_or_above(&self, knot_index: usize) -> f64 {
        let kept = self.knots.len();
        if self.n == kept {
            return (kept - knot_index) as f64;
        }
        let top = MAX_KNOTS / 2;
        let bulk_knots = kept - top;
        if knot_index >= bulk_knots {
            (kept - knot_index) as f64
        } else {
            let bulk_rows = (self.n - top) as f64;
            top as f64 + bulk_rows * (bulk_knots - knot_index) as f64 / bulk_knots as f64
        }
    }
}

/// Largest value strictly beaten by at most `share` of `values`: flagging
/// `x > threshold` flags at most `floor(share · n)` of them (fewer on ties).
pub fn threshold_for_share(values: &[f64], share: f64) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::INFINITY;
    }
    v.sort_by(f64::total_cmp);
    let allowed = (share * v.len() as f64).floor() as usize;
    if allowed == 0 {
        return v[v.len() - 1];
    }
    v[v.len() - 1 - allowed.min(v.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_is_the_share_of_training_values_at_least_as_large() {
        let v: Vec<f64> = (0..1000).map(f64::from).collect();
        let t = Tail::fit(&v);
        assert!((t.upper(990.0) - 10.5 / 1001.0).abs() < 1e-12);
        assert!(t.upper(-5.0) > 0.99);
        let (a, b) = (t.upper(1000.0), t.upper(1100.0));
        assert!(a < t.upper(999.0) && b < a && b > 0.0, "monotone beyond the largest value");
    }

    #[test]
    fn thinned_tails_keep_their_top_exact_and_their_bulk_close() {
        let v: Vec<f64> = (0..100_000).map(f64::from).collect();
        let t = Tail::fit(&v);
        assert!(t.knots.len() <= MAX_KNOTS);
        assert!((t.upper(99_990.0) - 10.5 / 100_001.0).abs() < 1e-9);
        assert!((t.upper(50_000.0) - 0.5).abs() < 0.01, "{}", t.upper(50_000.0));
    }

    #[test]
    fn at_share_inverts_the_tail_inside_and_beyond_the_training_values() {
        let v: Vec<f64> = (0..1000).map(f64::from).collect();
        let t = Tail::fit(&v);
        for share in [0.5, 0.1, 0.01, 0.002] {
            let x = t.at_share(share);
            assert!(t.upper(x) <= share + 1e-12, "{share}: upper({x}) = {}", t.upper(x));
            assert!(t.upper(x - 1.0) > share, "{share}: {x} is the smallest such value");
        }
        for share in [1e-4, 1e-6, 1e-9] {
            let x = t.at_share(share);
            assert!(x > 999.0 && (t.upper(x) / share - 1.0).abs() < 1e-9, "{share}: {}", t.upper(x));
        }
    }

    #[test]
    fn a_threshold_lets_through_at_most_the_share() {
        let v: Vec<f64> = (0..1000).map(f64::from).collect();
        let th = threshold_for_share(&v, 0.01);
        assert_eq!(v.iter().filter(|x| **x > th).count(), 10);
        let ties = vec![1.0; 500];
        assert_eq!(ties.iter().filter(|x| **x > threshold_for_share(&ties, 0.1)).count(), 0);
    }
}
