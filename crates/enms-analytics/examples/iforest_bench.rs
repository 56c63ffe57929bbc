//! Fit + score time of the isolation forest on a file of little-endian f64
//! rows (written by `bench/iforest.py`), for comparison with scikit-learn.
//!
//! Usage: `iforest_bench FILE N_FEATURES [REPEATS]`

use std::time::Instant;

use enms_analytics::iforest::{ForestParams, IsolationForest};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, path, features, rest @ ..] = args.as_slice() else {
        return Err("usage: iforest_bench FILE N_FEATURES [REPEATS]".into());
    };
    let d: usize = features.parse()?;
    let repeats: usize = rest.first().map(|r| r.parse()).transpose()?.unwrap_or(5);
    let bytes = std::fs::read(path)?;
    let x: Vec<f64> = bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect();
    let mut best = f64::INFINITY;
    let mut checksum = 0.0;
    for seed in 0..repeats as u64 {
        let t = Instant::now();
        let forest = IsolationForest::fit(&x, d, &ForestParams { seed, ..Default::default() })?;
        let scores = forest.score_samples(&x)?;
        best = best.min(t.elapsed().as_secs_f64());
        checksum += scores.iter().sum::<f64>() / scores.len() as f64;
    }
    let threads = rayon::current_num_threads();
    println!(
        "enms: {} rows x {d}: fit+score best of {repeats} {:.1} ms on {threads} threads (mean score {:.4})",
        x.len() / d,
        best * 1e3,
        checksum / repeats as f64
    );
    Ok(())
}
