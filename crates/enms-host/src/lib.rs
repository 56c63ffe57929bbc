//! Host monitoring: hosts (servers, PLC gateways, the enms server itself)
//! are machines of type `host` whose readings carry their utilisation.
//!
//! - [`sampler`]: one sample of the host this process runs on — CPU,
//!   memory, swap, disks, network, load and processes through `sysinfo`;
//! - [`rapl`]: power from the host's energy counters where Linux exposes
//!   them; [`power`]: the documented estimate where it does not;
//! - [`spool`]: the agent's disk buffer, so a server outage or a restart
//!   loses no sample.
//!
//! The signal names and their ranges are the domain's (`enms_core::host`).
//! This crate does no network I/O: `enms agent` sends what it samples
//! through the HTTP ingest path, `enms serve --monitor-self` through the
//! server's own.

pub mod power;
pub mod rapl;
pub mod sampler;
pub mod spool;

use std::path::PathBuf;

pub use sampler::{MIN_INTERVAL, Sample, Sampler};
pub use spool::Spool;

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// sysinfo cannot read this operating system's counters.
    #[error("this system's counters cannot be read: {0}")]
    Unsupported(String),
    #[error("spool {}: {message}", path.display())]
    Spool { path: PathBuf, message: String },
}

/// How a process samples its own host (`enms serve --monitor-self`, and
/// the agent's sampling half).
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorConfig {
    /// Time between samples [default: 5 s].
    pub interval: std::time::Duration,
    /// The host's machine name [default: the host name].
    pub name: Option<String>,
    /// Rated power for the estimate when the machine has none and the host
    /// has no energy counters [default: 0.2 kW].
    pub rated_power_kw: f64,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self { interval: std::time::Duration::from_secs(5), name: None, rated_power_kw: power::DEFAULT_RATED_KW }
    }
}

/// Longest sampling interval: a host sampled less often than hourly says
/// nothing about its load.
pub const MAX_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

impl MonitorConfig {
    pub fn validate(&self) -> Result<(), enms_core::setting::InvalidSetting> {
        use enms_core::setting::InvalidSetting;
        if self.interval < MIN_INTERVAL || self.interval > MAX_INTERVAL {
            return Err(InvalidSetting::new(
                "monitor interval",
                format!("{:?} must be between {MIN_INTERVAL:?} and 1h", self.interval),
            ));
        }
        if !(self.rated_power_kw > 0.0 && self.rated_power_kw <= 1_000_000.0) {
            return Err(InvalidSetting::new(
                "monitor rated power",
                format!("{} kW must be above 0 and at most 1000000", self.rated_power_kw),
            ));
        }
        if let Some(name) = &self.name {
            enms_core::validation::text("monitor name", name, 100, false)
                .map_err(|e| InvalidSetting::new("monitor name", e.message))?;
        }
        Ok(())
    }

    /// The machine name: the configured one, else this host's name.
    pub fn machine_name(&self) -> String {
        self.name.clone().unwrap_or_else(host_name)
    }
}

/// This host's name, or `host` when the system does not tell.
pub fn host_name() -> String {
    sysinfo::System::host_name()
        .ok()
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "host".into())
}
