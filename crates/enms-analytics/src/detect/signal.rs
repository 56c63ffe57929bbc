//! The signals an anomaly model may judge: the reading's own fields and its
//! named `extra` values, spelt as the API spells them (`power_kw`,
//! `extra.pressure_bar`).

use serde::{Deserialize, Serialize};

/// Longest name of an `extra` value (as ingest allows).
const MAX_EXTRA_NAME: usize = 64;

/// One measured quantity of a machine's readings.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Signal {
    Power,
    Energy,
    Production,
    Temperature,
    /// A named value of the reading's `extra` map.
    Extra(String),
}

/// Why a feature name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown feature {0:?}; use power_kw, energy_kwh, production_units, outdoor_temp_c or extra.<name> \
     (letters, digits, '_', '.', '-')"
)]
pub struct UnknownSignal(pub String);

impl Signal {
    pub fn parse(name: &str) -> Result<Self, UnknownSignal> {
        Ok(match name {
            "power_kw" => Self::Power,
            "energy_kwh" => Self::Energy,
            "production_units" => Self::Production,
            "outdoor_temp_c" => Self::Temperature,
            _ => match name.strip_prefix("extra.") {
                Some(extra)
                    if !extra.is_empty()
                        && extra.len() <= MAX_EXTRA_NAME
                        && extra.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) =>
                {
                    Self::Extra(extra.to_owned())
                }
                _ => return Err(UnknownSignal(name.to_owned())),
            },
        })
    }

    pub fn name(&self) -> String {
        match self {
            Self::Power => "power_kw".into(),
            Self::Energy => "energy_kwh".into(),
            Self::Production => "production_units".into(),
            Self::Temperature => "outdoor_temp_c".into(),
            Self::Extra(n) => format!("extra.{n}"),
        }
    }

    /// The signal's value in a reading; `None` when the reading has none.
    pub fn pick(
        &self,
        power_kw: f64,
        energy_kwh: f64,
        production_units: Option<f64>,
        outdoor_temp_c: Option<f64>,
        extra: impl Fn(&str) -> Option<f64>,
    ) -> Option<f64> {
        match self {
            Self::Power => Some(power_kw),
            Self::Energy => Some(energy_kwh),
            Self::Production => production_units,
            Self::Temperature => outdoor_temp_c,
            Self::Extra(n) => extra(n),
        }
    }
}

impl From<Signal> for String {
    fn from(s: Signal) -> Self {
        s.name()
    }
}

impl TryFrom<String> for Signal {
    type Error = UnknownSignal;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bad_ones_are_refused() {
        for name in ["power_kw", "energy_kwh", "production_units", "outdoor_temp_c", "extra.pressure_bar"] {
            assert_eq!(Signal::parse(name).unwrap().name(), name);
        }
        for bad in ["power", "extra.", "extra.a b", "voltage", ""] {
            assert_eq!(Signal::parse(bad), Err(UnknownSignal(bad.into())));
        }
    }
}
