//! Machines: what a plant meters, how clients create and edit them, and the
//! online/offline status derived from the age of the last reading.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use crate::validation::{FieldError, finite_in, text};

const MAX_NAME: usize = 100;
const MAX_TYPE: usize = 50;
const MAX_LOCATION: usize = 200;
/// Largest nameplate rating accepted: 1 GW covers any single machine.
const MAX_RATED_KW: f64 = 1_000_000.0;

/// A machine as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineRecord {
    pub id: Uuid,
    pub name: String,
    pub machine_type: String,
    pub location: String,
    pub rated_power_kw: Option<f64>,
    pub created_at: DateTime<Utc>,
    pub last_reading_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MachineStatus {
    Online,
    Offline,
}

impl MachineStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Offline => "offline",
        }
    }

    /// Online while the last reading is younger than `offline_after`.
    pub fn at(last_reading_at: Option<DateTime<Utc>>, now: DateTime<Utc>, offline_after: Duration) -> Self {
        match last_reading_at {
            Some(t) if now - t <= offline_after => Self::Online,
            _ => Self::Offline,
        }
    }
}

/// A machine as clients see it. `status` is online while the last reading is
/// younger than the server's `offline_after`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Machine {
    pub id: Uuid,
    pub name: String,
    #[serde(rename = "type")]
    pub machine_type: String,
    pub location: String,
    pub rated_power_kw: Option<f64>,
    pub created_at: DateTime<Utc>,
    pub last_reading_at: Option<DateTime<Utc>>,
    pub status: MachineStatus,
}

impl Machine {
    pub fn from_record(r: MachineRecord, now: DateTime<Utc>, offline_after: Duration) -> Self {
        Self {
            status: MachineStatus::at(r.last_reading_at, now, offline_after),
            id: r.id,
            name: r.name,
            machine_type: r.machine_type,
            location: r.location,
            rated_power_kw: r.rated_power_kw,
            created_at: r.created_at,
            last_reading_at: r.last_reading_at,
        }
    }
}

/// Body of `POST /api/v1/machines`. Text is trimmed; names are unique
/// (case-insensitive).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMachine {
    /// Clients that mirror another system's ids may choose the id.
    pub id: Option<Uuid>,
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: String,
    #[serde(rename = "type")]
    #[schema(
        min_length = 1,
        max_length = 50,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub machine_type: String,
    #[serde(default)]
    #[schema(max_length = 200, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    pub location: String,
    #[schema(exclusive_minimum = 0.0, maximum = 1_000_000.0)]
    pub rated_power_kw: Option<f64>,
}

impl NewMachine {
    /// Checks every field and returns the record to store.
    pub fn validate(self, now: DateTime<Utc>) -> Result<MachineRecord, FieldError> {
        Ok(MachineRecord {
            id: self.id.unwrap_or_else(Uuid::new_v4),
            name: text("name", &self.name, MAX_NAME, false)?,
            machine_type: text("type", &self.machine_type, MAX_TYPE, false)?,
            location: text("location", &self.location, MAX_LOCATION, true)?,
            rated_power_kw: self.rated_power_kw.map(rated_power).transpose()?,
            created_at: now,
            last_reading_at: None,
        })
    }
}

/// Body of `PATCH /api/v1/machines/{id}`: absent fields stay as they are;
/// `"rated_power_kw": null` clears the rating.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MachinePatch {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: Option<String>,
    #[serde(rename = "type")]
    #[schema(
        min_length = 1,
        max_length = 50,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub machine_type: Option<String>,
    #[schema(max_length = 200, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    pub location: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<f64>, exclusive_minimum = 0.0, maximum = 1_000_000.0)]
    pub rated_power_kw: Option<Option<f64>>,
}

impl MachinePatch {
    /// Applies the patch to `record`, validating each field that is present.
    pub fn apply(self, mut record: MachineRecord) -> Result<MachineRecord, FieldError> {
        if let Some(name) = self.name {
            record.name = text("name", &name, MAX_NAME, false)?;
        }
        if let Some(t) = self.machine_type {
            record.machine_type = text("type", &t, MAX_TYPE, false)?;
        }
        if let Some(l) = self.location {
            record.location = text("location", &l, MAX_LOCATION, true)?;
        }
        if let Some(rating) = self.rated_power_kw {
            record.rated_power_kw = rating.map(rated_power).transpose()?;
        }
        Ok(record)
    }
}

fn rated_power(kw: f64) -> Result<f64, FieldError> {
    let kw = finite_in("rated_power_kw", kw, 0.0, MAX_RATED_KW)?;
    if kw == 0.0 {
        return Err(FieldError::new("out_of_range", "rated_power_kw", "rated_power_kw must be positive"));
    }
    Ok(kw)
}

/// Distinguishes a field sent as `null` (Some(None)) from an absent one (None).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(name: &str) -> NewMachine {
        NewMachine {
            id: None,
            name: name.into(),
            machine_type: "compressor".into(),
            location: " Hall A ".into(),
            rated_power_kw: Some(75.0),
        }
    }

    #[test]
    fn validation_trims_and_checks() {
        let rec = new(" C-1 ").validate(Utc::now()).expect("valid");
        assert_eq!(rec.name, "C-1");
        assert_eq!(rec.location, "Hall A");
        assert_eq!(new("  ").validate(Utc::now()).unwrap_err().field, "name");
        let mut bad = new("x");
        bad.rated_power_kw = Some(f64::NAN);
        assert_eq!(bad.validate(Utc::now()).unwrap_err().code, "not_finite");
    }

    #[test]
    fn patch_null_clears_rating_and_absent_keeps_it() {
        let rec = new("a").validate(Utc::now()).expect("valid");
        let keep: MachinePatch = serde_json::from_str(r#"{"location":"B"}"#).expect("json");
        assert_eq!(keep.apply(rec.clone()).expect("ok").rated_power_kw, Some(75.0));
        let clear: MachinePatch = serde_json::from_str(r#"{"rated_power_kw":null}"#).expect("json");
        assert_eq!(clear.apply(rec).expect("ok").rated_power_kw, None);
    }

    #[test]
    fn status_follows_age_of_last_reading() {
        let now = Utc::now();
        let limit = Duration::minutes(30);
        assert_eq!(MachineStatus::at(None, now, limit), MachineStatus::Offline);
        assert_eq!(MachineStatus::at(Some(now - Duration::minutes(5)), now, limit), MachineStatus::Online);
        assert_eq!(MachineStatus::at(Some(now - Duration::hours(1)), now, limit), MachineStatus::Offline);
    }
}
