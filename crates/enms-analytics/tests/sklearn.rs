//! Agreement with numpy and scikit-learn on the committed fixtures
//! (regenerate with `scripts/fixtures/generate.sh`).

use enms_analytics::iforest::{Contamination, ForestParams, IsolationForest};
use enms_analytics::ols;
use enms_analytics::roc::roc_auc;
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn matrix(v: &Value) -> (Vec<f64>, usize) {
    let rows = v.as_array().unwrap();
    let cols = rows[0].as_array().unwrap().len();
    (rows.iter().flat_map(floats).collect(), cols)
}

fn close(got: f64, want: f64, rel: f64, what: &str) {
    let scale = want.abs().max(1e-300);
    assert!((got - want).abs() <= rel * scale || (got - want).abs() < 1e-300, "{what}: got {got}, numpy {want}");
}

#[test]
fn ols_matches_numpy_to_1e_8() {
    for name in ["ols_energy", "ols_near_collinear", "ols_weak"] {
        let f = fixture(name);
        let (x, p) = matrix(&f["x"]);
        let y = floats(&f["y"]);
        let names: Vec<String> = (0..p).map(|i| format!("x{i}")).collect();
        let fit = ols::fit(&names, &x, &y, true).unwrap();
        for (j, c) in fit.coefficients.iter().enumerate() {
            close(c.estimate, floats(&f["coefficients"])[j], 1e-8, &format!("{name} beta{j}"));
            close(c.std_error, floats(&f["std_errors"])[j], 1e-8, &format!("{name} se{j}"));
            close(c.t_value, floats(&f["t_values"])[j], 1e-8, &format!("{name} t{j}"));
            // p-values pass through a special function: agree to 1e-6 relative
            // (or absolutely when tiny).
            let want = floats(&f["p_values"])[j];
            assert!((c.p_value - want).abs() <= 1e-6 * want.max(1e-10), "{name} p{j}: {} vs {want}", c.p_value);
        }
        close(fit.r_squared, f["r_squared"].as_f64().unwrap(), 1e-8, "r2");
        close(fit.adj_r_squared, f["adj_r_squared"].as_f64().unwrap(), 1e-8, "adj r2");
        close(fit.f_statistic, f["f_statistic"].as_f64().unwrap(), 1e-8, "F");
    }
}

#[test]
fn isolation_forest_auc_within_0_02_of_scikit_learn() {
    for name in ["blobs", "correlated", "energy", "hidim", "overlap"] {
        let f = fixture(&format!("iforest_{name}"));
        let (x, d) = matrix(&f["x"]);
        let labels: Vec<bool> = f["y"].as_array().unwrap().iter().map(|v| v.as_i64() == Some(1)).collect();
        let want = f["sklearn_roc_auc"].as_f64().unwrap();
        let forest = IsolationForest::fit(&x, d, &ForestParams { seed: 0, ..Default::default() }).unwrap();
        let scores: Vec<f64> = forest.score_samples(&x).unwrap().iter().map(|s| -s).collect();
        let auc = roc_auc(&scores, &labels).unwrap();
        println!("{name}: enms {auc:.4}, scikit-learn {want:.4}");
        assert!((auc - want).abs() <= 0.02, "{name}: enms AUC {auc:.4}, scikit-learn {want:.4}");
    }
}

#[test]
fn contamination_flags_exactly_that_share_of_training_rows() {
    let f = fixture("iforest_blobs");
    let (x, d) = matrix(&f["x"]);
    for c in [0.01, 0.05, 0.1, 0.25, 0.5] {
        let p = ForestParams { contamination: Contamination::Fraction(c), seed: 1, ..Default::default() };
        let forest = IsolationForest::fit(&x, d, &p).unwrap();
        let flagged = forest.decision_function(&x).unwrap().iter().filter(|v| **v < 0.0).count();
        let n = x.len() / d;
        assert_eq!(flagged, (c * n as f64).round() as usize, "contamination {c}");
    }
}
