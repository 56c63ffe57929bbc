//! `[[modbus.meters]]`: where each meter is, how often it is read, and
//! which registers feed which reading field. Read from the TOML file as is;
//! checked by [`ModbusConfig::validate`] with every other section.

use std::time::Duration;

use enms_core::setting::InvalidSetting;
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusConfig {
    pub meters: Vec<Meter>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meter {
    /// The machine the meter measures: its name or id.
    pub machine: String,
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// The Modbus unit (slave) id.
    #[serde(default = "default_unit")]
    pub unit: u8,
    /// Milliseconds between two readings.
    #[serde(default = "default_interval")]
    pub interval_ms: u64,
    /// Milliseconds a connect or a read may take.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// Failed polls in a row after which the meter counts as not
    /// answering: a `system_alert` goes out once, and another when it
    /// answers again.
    #[serde(default = "default_fail_after")]
    pub fail_after: u32,
    pub registers: Vec<Register>,
}

fn default_port() -> u16 {
    502
}
fn default_unit() -> u8 {
    1
}
fn default_interval() -> u64 {
    5000
}
fn default_timeout() -> u64 {
    1000
}
fn default_fail_after() -> u32 {
    3
}

/// One value: which holding registers, how to read them, what they feed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Register {
    /// Holding register address (0-based, as on the wire).
    pub address: u16,
    #[serde(rename = "type")]
    pub kind: Kind,
    /// Which of a 32-bit value's two registers comes first.
    #[serde(default)]
    pub word_order: WordOrder,
    /// The register value times this is the field's unit (e.g. 0.001 for
    /// a counter in Wh feeding kWh).
    #[serde(default = "default_scale")]
    pub scale: f64,
    /// `power_kw`, `energy_counter_kwh` (a running counter: each reading's
    /// energy is the difference since the previous poll, across rollover),
    /// `energy_kwh` (energy of the interval itself), `production_units`,
    /// `outdoor_temp_c`, or any other name for an extra value.
    pub field: String,
}

fn default_scale() -> f64 {
    1.0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    U16,
    U32,
    I32,
    F32,
}

impl Kind {
    /// Registers the value spans.
    pub fn words(self) -> u16 {
        if self == Kind::U16 { 1 } else { 2 }
    }

    /// Where an unsigned counter of this width wraps.
    pub fn modulus(self) -> Option<f64> {
        match self {
            Kind::U16 => Some(65_536.0),
            Kind::U32 => Some(4_294_967_296.0),
            Kind::I32 | Kind::F32 => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WordOrder {
    /// High word first (ABCD), the Modbus convention.
    #[default]
    Big,
    /// Low word first (CDAB), as many meters send.
    Little,
}

impl Meter {
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub fn label(&self) -> String {
        format!("{} at {}:{} unit {}", self.machine, self.host, self.port, self.unit)
    }

    fn validate(&self) -> Result<(), InvalidSetting> {
        let bad = |m: String| InvalidSetting::new("modbus.meters", m);
        if self.machine.trim().is_empty() || self.host.trim().is_empty() {
            return Err(bad("every meter needs a machine and a host".into()));
        }
        if self.interval_ms < 100 || self.timeout_ms == 0 || self.fail_after == 0 {
            return Err(bad(format!("{}: interval_ms ≥ 100, timeout_ms and fail_after ≥ 1", self.label())));
        }
        let has = |f: &str| self.registers.iter().any(|r| r.field == f);
        if !has("power_kw") || !(has("energy_counter_kwh") || has("energy_kwh")) {
            return Err(bad(format!("{}: map power_kw and energy_counter_kwh (or energy_kwh)", self.label())));
        }
        for r in &self.registers {
            if !(r.scale.is_finite() && r.scale != 0.0) || r.field.trim().is_empty() {
                return Err(bad(format!(
                    "{}: register {}: a finite, non-zero scale and a field",
                    self.label(),
                    r.address
                )));
            }
            if r.field == "energy_counter_kwh" && r.kind.modulus().is_none() {
                return Err(bad(format!("{}: an energy counter is u16 or u32", self.label())));
            }
        }
        Ok(())
    }
}

impl ModbusConfig {
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.meters.is_empty() {
            return Err(InvalidSetting::new("modbus.meters", "list at least one meter"));
        }
        self.meters.iter().try_for_each(Meter::validate)
    }
}
