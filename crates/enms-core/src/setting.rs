//! What a configuration type answers when one of its values cannot run.
//!
//! Each crate's settings (`BusConfig`, `HubConfig`, `AnalyticsConfig`,
//! `GatewayConfig`, …) validate themselves with this error, so the server
//! refuses an invalid configuration whoever built it — the CLI from flags
//! and a file, a test, or a program embedding enms — and the rule lives once,
//! next to the value. `setting` is the value's name in the TOML file.

use std::path::PathBuf;
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

/// The secret an `*_env` or `*_file` setting names (SMTP and MQTT
/// passwords, webhook secrets: never inline in a file that gets copied
/// around, never from the API); `Ok(None)` when neither is set.
/// The message never holds the secret.
pub fn secret(env: &Option<String>, file: &Option<PathBuf>) -> Result<Option<String>, String> {
    let value = match (env, file) {
        (Some(var), _) => std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))?,
        (None, Some(path)) => {
            std::fs::read_to_string(path).map_err(|e| format!("secret file {} cannot be read: {e}", path.display()))?
        }
        (None, None) => return Ok(None),
    };
    let value = value.trim().to_owned();
    if value.is_empty() {
        return Err("the secret is empty".into());
    }
    Ok(Some(value))
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
