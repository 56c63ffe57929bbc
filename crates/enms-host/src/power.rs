//! The power estimate for hosts without energy counters.
//!
//! The linear utilisation model of server power (Fan, Weber and Barroso,
//! "Power provisioning for a warehouse-sized computer", ISCA 2007; the
//! shape SPECpower results follow): `P = P_idle + (P_max − P_idle) · u`
//! with `u` the CPU utilisation in [0, 1]. Its error on whole-machine power
//! is within about 5–10 % for CPU-bound loads in that study; it knows
//! nothing of disks, GPUs or fans, which is why readings made with it carry
//! `power_estimated = 1`.
//!
//! `P_max` is the machine's rated power (its nameplate or PSU rating as
//! entered on the machine). `P_idle` is [`IDLE_FRACTION`] of it: typical
//! volume servers idle at 40–60 % of their peak draw.

/// Idle power as a share of rated power.
pub const IDLE_FRACTION: f64 = 0.5;

/// Rated power assumed when the machine has none: a small 1U server.
pub const DEFAULT_RATED_KW: f64 = 0.2;

/// Estimated power in kW at `cpu_percent` (0–100) of a machine rated
/// `rated_kw`.
pub fn estimate_kw(cpu_percent: f64, rated_kw: f64) -> f64 {
    let u = (cpu_percent / 100.0).clamp(0.0, 1.0);
    rated_kw * (IDLE_FRACTION + (1.0 - IDLE_FRACTION) * u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_runs_from_idle_to_rated() {
        assert!((estimate_kw(0.0, 0.4) - 0.2).abs() < 1e-12);
        assert!((estimate_kw(100.0, 0.4) - 0.4).abs() < 1e-12);
        assert!((estimate_kw(50.0, 0.4) - 0.3).abs() < 1e-12);
        assert!((estimate_kw(250.0, 0.4) - 0.4).abs() < 1e-12, "clamped");
    }
}
