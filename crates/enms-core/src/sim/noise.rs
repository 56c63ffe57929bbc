//! Deterministic noise: a hash of (seed, stream, key) instead of a stateful
//! RNG, so a value never depends on what was generated before it.

/// SplitMix64 finaliser: a fast, well-mixed 64-bit hash step.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub fn hash(seed: u64, stream: u64, key: u64) -> u64 {
    mix(mix(mix(seed) ^ stream) ^ key)
}

/// Uniform in [0, 1).
pub fn uniform(seed: u64, stream: u64, key: u64) -> f64 {
    (hash(seed, stream, key) >> 11) as f64 / (1u64 << 53) as f64
}

/// Standard normal by Box–Muller.
pub fn normal(seed: u64, stream: u64, key: u64) -> f64 {
    let u1 = uniform(seed, stream, key).max(f64::MIN_POSITIVE);
    let u2 = uniform(seed, stream ^ 0xA5A5_A5A5, key);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}
