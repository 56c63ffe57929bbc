//! An isolation forest with scikit-learn's semantics (`IsolationForest` in
//! sklearn 1.x), written here because no maintained crate matches them.
//!
//! - `max_samples = min(256, n)`, drawn without replacement per tree;
//! - `max_depth = ceil(log2(max(max_samples, 2)))`;
//! - each split picks a random feature that is not constant in the node and a
//!   threshold uniform between its minimum and maximum there;
//! - a sample's path length is the depth of its leaf plus `c(size of leaf)`;
//! - `score_samples = −2^(−E(h)/c(max_samples))`, lower is more abnormal;
//! - `offset = −0.5` for contamination `auto`, otherwise the contamination
//!   percentile (linear interpolation, as numpy) of the training scores;
//!   a sample is an outlier when `score − offset < 0`.
//!
//! Trees are stored flat (one array of nodes each) and scored in parallel
//! over chunks of rows with rayon.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;
/// Rows per parallel scoring task: large enough to amortise scheduling.
const SCORE_CHUNK: usize = 2048;

/// How the decision threshold is set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Contamination {
    /// The paper's threshold: scores below −0.5 are outliers.
    Auto,
    /// The expected share of outliers in the training data, in (0, 0.5].
    Fraction(f64),
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ForestError {
    #[error("no training rows")]
    Empty,
    #[error("rows hold {got} values, expected a multiple of {features} features")]
    Shape { got: usize, features: usize },
    #[error("contamination must be in (0, 0.5], got {0}")]
    Contamination(f64),
    #[error("the data hold a value that is not a finite number")]
    NotFinite,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ForestParams {
    pub n_estimators: usize,
    /// `None` for scikit-learn's `auto`: min(256, n).
    pub max_samples: Option<usize>,
    pub contamination: Contamination,
    pub seed: u64,
}

impl Default for ForestParams {
    fn default() -> Self {
        Self { n_estimators: 100, max_samples: None, contamination: Contamination::Auto, seed: 0 }
    }
}

/// A split `x[feature] <= threshold` goes to `left`, else to `left + 1`.
/// A leaf points at itself with a threshold no finite value exceeds, so a
/// walk can take exactly `max_depth` steps without testing for leaves: the
/// loop has no unpredictable exit branch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Node {
    feature: u32,
    left: u32,
    threshold: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Tree {
    nodes: Vec<Node>,
    /// Per node: for a leaf, the path length credited to samples ending
    /// there (depth + c(leaf size)); 0 for a split.
    path: Vec<f64>,
}

impl Node {
    fn leaf(at: usize) -> Self {
        Self { feature: 0, left: at as u32, threshold: f64::MAX }
    }
}

/// A fitted forest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IsolationForest {
    pub n_features: usize,
    pub max_samples: usize,
    /// Decision threshold on [`Self::score_samples`].
    pub offset: f64,
    max_depth: usize,
    trees: Vec<Tree>,
}

impl IsolationForest {
    /// Fits on `x`, row-major with `n_features` columns.
    pub fn fit(x: &[f64], n_features: usize, params: &ForestParams) -> Result<Self, ForestError> {
        if n_features == 0 || x.is_empty() {
            return Err(ForestError::Empty);
        }
        if !x.len().is_multiple_of(n_features) {
            return Err(ForestError::Shape { got: x.len(), features: n_features });
        }
        if !x.iter().all(|v| v.is_finite()) {
            return Err(ForestError::NotFinite);
        }
        if let Contamination::Fraction(c) = params.contamination
            && !(c > 0.0 && c <= 0.5)
        {
            return Err(ForestError::Contamination(c));
        }
        let n = x.len() / n_features;
        let max_samples = params.max_samples.unwrap_or(256).min(n).max(1);
        let max_depth = (max_samples.max(2) as f64).log2().ceil() as usize;
        let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
        let mut indices: Vec<usize> = (0..n).collect();
        let trees = (0..params.n_estimators.max(1))
            .map(|_| {
                // Partial Fisher–Yates: the first max_samples entries are a
                // uniform sample without replacement.
                for i in 0..max_samples {
                    let j = rng.random_range(i..n);
                    indices.swap(i, j);
                }
                let mut sample = indices[..max_samples].to_vec();
                let mut builder =
                    Builder { x, n_features, max_depth, rng: &mut rng, nodes: Vec::new(), path: Vec::new() };
                builder.nodes.push(Node::leaf(0));
                builder.path.push(0.0);
                builder.grow(0, &mut sample, 0);
                Tree { nodes: builder.nodes, path: builder.path }
            })
            .collect();
        let mut forest = Self { n_features, max_samples, offset: -0.5, max_depth, trees };
        if let Contamination::Fraction(c) = params.contamination {
            let mut scores = forest.score_samples(x)?;
            scores.sort_by(f64::total_cmp);
            forest.offset = percentile(&scores, 100.0 * c);
        }
        Ok(forest)
    }

    /// `−2^(−E(h)/c(max_samples))` per row: near −1 is abnormal, near −0.5 or
    /// above is normal.
    pub fn score_samples(&self, x: &[f64]) -> Result<Vec<f64>, ForestError> {
        if !x.len().is_multiple_of(self.n_features) {
            return Err(ForestError::Shape { got: x.len(), features: self.n_features });
        }
        let norm = average_path_length(self.max_samples) * self.trees.len() as f64;
        let mut out = vec![0.0; x.len() / self.n_features];
        out.par_chunks_mut(SCORE_CHUNK).enumerate().for_each(|(chunk, scores)| {
            let rows = &x[chunk * SCORE_CHUNK * self.n_features..][..scores.len() * self.n_features];
            // Tree by tree over the chunk: one tree's nodes stay in cache
            // while every row of the chunk walks it.
            for tree in &self.trees {
                tree.add_path_lengths(rows, self.n_features, self.max_depth, scores);
            }
            for s in scores.iter_mut() {
                *s = -(2f64.powf(-*s / norm));
            }
        });
        Ok(out)
    }

    /// Score minus offset: negative for outliers.
    pub fn decision_function(&self, x: &[f64]) -> Result<Vec<f64>, ForestError> {
        Ok(self.score_samples(x)?.into_iter().map(|s| s - self.offset).collect())
    }

    /// Score of one row, without the thread pool (the streaming path).
    pub fn score_one(&self, row: &[f64]) -> f64 {
        let norm = average_path_length(self.max_samples) * self.trees.len() as f64;
        let total: f64 = self.trees.iter().map(|t| t.path_length(row, self.max_depth)).sum();
        -(2f64.powf(-total / norm))
    }
}

/// Rows walked down one tree in lockstep: each row's walk is a chain of
/// dependent loads, so interleaving several lets the CPU overlap them.
const LANES: usize = 8;

impl Tree {
    /// Adds each row's path length to its score, `LANES` rows at a time.
    fn add_path_lengths(&self, rows: &[f64], n_features: usize, max_depth: usize, scores: &mut [f64]) {
        let mut groups = scores.chunks_exact_mut(LANES);
        let mut row_groups = rows.chunks_exact(LANES * n_features);
        for (out, group) in (&mut groups).zip(&mut row_groups) {
            let mut at = [0usize; LANES];
            for _ in 0..max_depth {
                for (lane, i) in at.iter_mut().enumerate() {
                    let node = &self.nodes[*i];
                    let v = group[lane * n_features + node.feature as usize];
                    *i = node.left as usize + usize::from(v > node.threshold);
                }
            }
            for (s, i) in out.iter_mut().zip(at) {
                *s += self.path[i];
            }
        }
        let rest = groups.into_remainder();
        let rest_rows = &rows[rows.len() - rest.len() * n_features..];
        for (s, row) in rest.iter_mut().zip(rest_rows.chunks_exact(n_features)) {
            *s += self.path_length(row, max_depth);
        }
    }

    fn path_length(&self, row: &[f64], max_depth: usize) -> f64 {
        let mut i = 0;
        for _ in 0..max_depth {
            let node = &self.nodes[i];
            i = node.left as usize + usize::from(row[node.feature as usize] > node.threshold);
        }
        self.path[i]
    }
}

struct Builder<'a> {
    x: &'a [f64],
    n_features: usize,
    max_depth: usize,
    rng: &'a mut ChaCha8Rng,
    nodes: Vec<Node>,
    path: Vec<f64>,
}

impl Builder<'_> {
    fn grow(&mut self, at: usize, rows: &mut [usize], depth: usize) {
        let leaf = |b: &mut Self, n: usize| {
            b.nodes[at] = Node::leaf(at);
            b.path[at] = depth as f64 + average_path_length(n);
        };
        if depth >= self.max_depth || rows.len() < 2 {
            leaf(self, rows.len());
            return;
        }
        let Some((feature, threshold)) = self.split(rows) else {
            leaf(self, rows.len());
            return;
        };
        let mut mid = 0;
        for i in 0..rows.len() {
            if self.value(rows[i], feature) <= threshold {
                rows.swap(i, mid);
                mid += 1;
            }
        }
        let left = self.nodes.len();
        self.nodes[at] = Node { feature: feature as u32, left: left as u32, threshold };
        self.nodes.extend([Node::leaf(left), Node::leaf(left + 1)]);
        self.path.extend([0.0, 0.0]);
        let (l, r) = rows.split_at_mut(mid);
        self.grow(left, l, depth + 1);
        self.grow(left + 1, r, depth + 1);
    }

    /// A random non-constant feature and a threshold uniform in its range,
    /// or `None` when every feature is constant in this node.
    fn split(&mut self, rows: &[usize]) -> Option<(usize, f64)> {
        let mut candidates: Vec<usize> = (0..self.n_features).collect();
        while !candidates.is_empty() {
            let k = self.rng.random_range(0..candidates.len());
            let f = candidates.swap_remove(k);
            let (lo, hi) = rows.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &r| {
                let v = self.value(r, f);
                (lo.min(v), hi.max(v))
            });
            if hi > lo {
                let u: f64 = self.rng.random();
                let t = lo + u * (hi - lo);
                // As scikit-learn: a threshold equal to the maximum would send
                // every row left.
                return Some((f, if t >= hi { lo } else { t }));
            }
        }
        None
    }

    fn value(&self, row: usize, feature: usize) -> f64 {
        self.x[row * self.n_features + feature]
    }
}

/// c(n): the average path length of an unsuccessful search in a binary
/// search tree of n nodes, as scikit-learn computes it.
pub fn average_path_length(n: usize) -> f64 {
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        _ => {
            let n = n as f64;
            2.0 * ((n - 1.0).ln() + EULER_GAMMA) - 2.0 * (n - 1.0) / n
        }
    }
}

/// numpy's default (linear) percentile of sorted values.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q / 100.0 * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_length_constants_match_scikit_learn() {
        // sklearn.ensemble._iforest._average_path_length([256, 3, 2, 1])
        assert!((average_path_length(256) - 10.244_770_920_119_917).abs() < 1e-12);
        assert!((average_path_length(3) - 1.207_392_357_589_623).abs() < 1e-12);
        assert_eq!(average_path_length(2), 1.0);
        assert_eq!(average_path_length(1), 0.0);
    }

    #[test]
    fn percentile_is_linear_like_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 50.0), 2.5);
        assert!((percentile(&v, 10.0) - 1.3).abs() < 1e-12);
    }

    #[test]
    fn same_seed_same_forest_and_outlier_scores_lowest() {
        let mut x: Vec<f64> = (0..500).flat_map(|i| [(i % 25) as f64 / 25.0, (i / 25) as f64 / 20.0]).collect();
        x.extend([8.0, 8.0]);
        let p = ForestParams { seed: 3, ..Default::default() };
        let a = IsolationForest::fit(&x, 2, &p).unwrap();
        assert_eq!(a, IsolationForest::fit(&x, 2, &p).unwrap());
        let s = a.score_samples(&x).unwrap();
        let (argmin, _) = s.iter().enumerate().min_by(|a, b| a.1.total_cmp(b.1)).unwrap();
        assert_eq!(argmin, 500);
        assert!(s[500] < -0.6 && (a.score_one(&x[1000..]) - s[500]).abs() < 1e-15);
    }

    #[test]
    fn bad_parameters_are_refused() {
        let p = ForestParams { contamination: Contamination::Fraction(0.6), ..Default::default() };
        assert_eq!(IsolationForest::fit(&[1.0, 2.0], 1, &p).unwrap_err(), ForestError::Contamination(0.6));
        assert_eq!(IsolationForest::fit(&[], 1, &ForestParams::default()).unwrap_err(), ForestError::Empty);
        assert!(matches!(
            IsolationForest::fit(&[1.0, 2.0, 3.0], 2, &ForestParams::default()),
            Err(ForestError::Shape { .. })
        ));
        assert_eq!(IsolationForest::fit(&[f64::NAN], 1, &ForestParams::default()).unwrap_err(), ForestError::NotFinite);
    }

    #[test]
    fn constant_data_makes_leaves_not_loops() {
        let f = IsolationForest::fit(&[1.0; 64], 2, &ForestParams::default()).unwrap();
        let s = f.score_samples(&[1.0, 1.0]).unwrap();
        // Every row ends at the root: E(h) = c(32), so the score is −0.5.
        assert!((s[0] + 0.5).abs() < 1e-12, "{s:?}");
    }
}
