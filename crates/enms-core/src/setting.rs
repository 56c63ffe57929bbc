//! What a configuration type answers when one of its values cannot run.
//!
//! Each crate's settings (`BusConfig`, `HubConfig`, `AnalyticsConfig`,
//! `GatewayConfig`, …) validate themselves with this error, so the server
//! refuses an invalid configuration whoever built it — the CLI from flags
//! and a file, a test, or a program embedding enms — and the rule lives once,
//! next to the value. `setting` is the value's name in the TOML file.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid {setting}: {message}")]
pub struct InvalidSetting {
    pub setting: &'static str,
    pub message: String,
}

impl InvalidSetting {
    pub fn new(setting: &'static str, message: impl Into<String>) -> Self {
        Self { setting, message: message.into() }
    }
}

/// A count that must be at least 1 (queues, limits, buffers).
pub fn at_least_one(setting: &'static str, value: usize) -> Result<(), InvalidSetting> {
    if value == 0 { Err(InvalidSetting::new(setting, "must be at least 1")) } else { Ok(()) }
}

/// A time span that must be above zero (intervals, timeouts, ages).
pub fn above_zero(setting: &'static str, value: Duration) -> Result<(), InvalidSetting> {
    if value.is_zero() { Err(InvalidSetting::new(setting, "must be above zero")) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_counts_and_spans_are_refused_by_name() {
        assert_eq!(at_least_one("queue_bytes", 0).unwrap_err().to_string(), "invalid queue_bytes: must be at least 1");
        assert!(at_least_one("queue_bytes", 1).is_ok());
        assert!(above_zero("ping_interval", Duration::ZERO).is_err());
        assert!(above_zero("ping_interval", Duration::from_millis(1)).is_ok());
    }
}
