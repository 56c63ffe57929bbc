//! Energy readings: the JSON batch format of `POST /api/v1/readings`, the
//! rules a reading must satisfy, and batch-level errors that name the row.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_path_to_error::Segment;
use uuid::Uuid;

use crate::validation::{FieldError, finite_in};

/// Rows accepted in one batch; larger imports are split by the client.
pub const MAX_BATCH_ROWS: usize = 10_000;
/// How far ahead of the server clock a timestamp may be (clock skew).
pub const MAX_FUTURE_SKEW: Duration = Duration::minutes(5);
const MAX_EXTRA_VALUES: usize = 32;
const MAX_EXTRA_NAME: usize = 64;
const MAX_KW: f64 = 1_000_000.0;
const MAX_KWH: f64 = 1_000_000.0;
const MAX_UNITS: f64 = 1e12;

/// A validated reading: power is the average over the interval that ends at
/// `timestamp`, energy the consumption over that interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    pub machine_id: Uuid,
    pub timestamp: DateTime<Utc>,
    pub power_kw: f64,
    pub energy_kwh: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub production_units: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outdoor_temp_c: Option<f64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, f64>,
}

/// One row as clients send it, before validation. `timestamp` is RFC 3339,
/// from the year 2000 to at most 5 minutes ahead of the server clock.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadingInput {
    pub machine_id: Uuid,
    #[serde(deserialize_with = "crate::timestamp::deserialize")]
    pub timestamp: DateTime<Utc>,
    #[schema(minimum = 0.0, maximum = 1_000_000.0)]
    pub power_kw: f64,
    #[schema(minimum = 0.0, maximum = 1_000_000.0)]
    pub energy_kwh: f64,
    #[schema(minimum = 0.0, maximum = 1e12)]
    pub production_units: Option<f64>,
    #[schema(minimum = -90.0, maximum = 70.0)]
    pub outdoor_temp_c: Option<f64>,
    #[serde(default)]
    #[schema(value_type = ExtraValues)]
    pub extra: BTreeMap<String, f64>,
}

/// How the OpenAPI document describes `extra`.
pub struct ExtraValues;

impl utoipa::PartialSchema for ExtraValues {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let name = ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(format!("^[A-Za-z0-9_.-]{{1,{MAX_EXTRA_NAME}}}$")));
        let value = ObjectBuilder::new().schema_type(Type::Number).minimum(Some(-1e15)).maximum(Some(1e15));
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property_names(Some(name))
            .additional_properties(Some(value))
            .max_properties(Some(MAX_EXTRA_VALUES))
            .description(Some("Further named measurements (for example `pressure_bar`)."))
            .into()
    }
}

impl utoipa::ToSchema for ExtraValues {}

impl ReadingInput {
    /// Applies every rule; `now` bounds how far in the future a timestamp may be.
    pub fn validate(self, now: DateTime<Utc>) -> Result<Reading, FieldError> {
        Ok(Reading {
            machine_id: self.machine_id,
            timestamp: check_timestamp(self.timestamp, now)?,
            power_kw: finite_in("power_kw", self.power_kw, 0.0, MAX_KW)?,
            energy_kwh: finite_in("energy_kwh", self.energy_kwh, 0.0, MAX_KWH)?,
            production_units: self
                .production_units
                .map(|v| finite_in("production_units", v, 0.0, MAX_UNITS))
                .transpose()?,
            outdoor_temp_c: self.outdoor_temp_c.map(|v| finite_in("outdoor_temp_c", v, -90.0, 70.0)).transpose()?,
            extra: check_extra(self.extra)?,
        })
    }
}

fn earliest() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).single().unwrap_or_default()
}

fn check_timestamp(t: DateTime<Utc>, now: DateTime<Utc>) -> Result<DateTime<Utc>, FieldError> {
    if t > now + MAX_FUTURE_SKEW {
        return Err(FieldError::new(
            "future_timestamp",
            "timestamp",
            format!("timestamp {t} is more than 5 minutes ahead of the server clock ({now})"),
        ));
    }
    if t < earliest() {
        return Err(FieldError::new("out_of_range", "timestamp", "timestamp must be in or after the year 2000"));
    }
    Ok(t)
}

fn check_extra(extra: BTreeMap<String, f64>) -> Result<BTreeMap<String, f64>, FieldError> {
    if extra.len() > MAX_EXTRA_VALUES {
        return Err(FieldError::new(
            "too_many_values",
            "extra",
            format!("extra holds at most {MAX_EXTRA_VALUES} named values"),
        ));
    }
    for (name, value) in &extra {
        let valid_name = !name.is_empty()
            && name.len() <= MAX_EXTRA_NAME
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid_name {
            return Err(FieldError::new(
                "invalid_name",
                "extra",
                format!("extra value name {name:?} must be 1-{MAX_EXTRA_NAME} characters of A-Z, a-z, 0-9, _ - ."),
            ));
        }
        finite_in(&format!("extra.{name}"), *value, -1e15, 1e15)?;
        crate::host::check_signal(name, *value)?;
    }
    Ok(extra)
}

/// Why a batch was refused. Nothing of a refused batch is stored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BatchError {
    /// Not JSON, or truncated. `field` says where parsing stopped, if known.
    #[error("malformed JSON: {message}")]
    Malformed { message: String, field: Option<String> },
    /// A row broke a rule; `row` is its 0-based index.
    #[error("row {row}: {error}")]
    InvalidRow { row: usize, error: FieldError },
    #[error("a batch holds at most {max} readings, got {rows}")]
    TooManyRows { rows: usize, max: usize },
    #[error("the batch holds no readings")]
    Empty,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    readings: Vec<ReadingInput>,
}

/// Parses and validates a batch: either a JSON array of readings or an object
/// `{"readings": [...]}`. Refused whole at the first bad row.
pub fn parse_batch(body: &[u8], now: DateTime<Utc>) -> Result<Vec<Reading>, BatchError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let rows = match first {
        Some(b'[') => deserialize::<Vec<ReadingInput>>(body)?,
        Some(b'{') => deserialize::<Envelope>(body)?.readings,
        _ => {
            return Err(BatchError::Malformed {
                message: "expected a JSON array of readings or an object {\"readings\": [...]}".into(),
                field: None,
            });
        }
    };
    if rows.is_empty() {
        return Err(BatchError::Empty);
    }
    if rows.len() > MAX_BATCH_ROWS {
        return Err(BatchError::TooManyRows { rows: rows.len(), max: MAX_BATCH_ROWS });
    }
    rows.into_iter()
        .enumerate()
        .map(|(row, input)| {
            input
                .validate(now)
                .map_err(|error| BatchError::InvalidRow { row, error: error.within(&format!("readings[{row}]")) })
        })
        .collect()
}

fn deserialize<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, BatchError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(path_error)?;
    de.end().map_err(|e| BatchError::Malformed { message: e.to_string(), field: None })?;
    Ok(value)
}

/// Turns a serde error into a batch error carrying the row and field path.
fn path_error(err: serde_path_to_error::Error<serde_json::Error>) -> BatchError {
    let mut row = None;
    let mut field = String::from("readings");
    for segment in err.path().iter() {
        match segment {
            Segment::Seq { index } => {
                row = row.or(Some(*index));
                field.push_str(&format!("[{index}]"));
            }
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if key != "readings" {
                    field.push('.');
                    field.push_str(key);
                }
            }
            Segment::Unknown => {}
        }
    }
    let inner = err.into_inner();
    let message = inner.to_string();
    match (inner.classify(), row) {
        (serde_json::error::Category::Data, Some(row)) => {
            // A missing field is reported at its parent's path; name it.
            if let Some(name) = message.strip_prefix("missing field `").and_then(|m| m.split('`').next()) {
                field.push('.');
                field.push_str(name);
            }
            BatchError::InvalidRow { row, error: FieldError::new(data_code(&message), field, message) }
        }
        (serde_json::error::Category::Data, None) => {
            BatchError::InvalidRow { row: 0, error: FieldError::new("invalid_type", field, message) }
        }
        _ => BatchError::Malformed { message, field: row.map(|_| field) },
    }
}

fn data_code(message: &str) -> &'static str {
    if message.starts_with("missing field") {
        "required"
    } else if message.starts_with("unknown field") {
        "unknown_field"
    } else {
        "invalid_type"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "c0000000-0000-0000-0000-000000000001";

    fn row(extra: &str) -> String {
        format!(r#"{{"machine_id":"{ID}","timestamp":"2026-01-01T00:00:00Z","power_kw":10.0,"energy_kwh":2.5{extra}}}"#)
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).single().expect("valid date")
    }

    #[test]
    fn accepts_array_and_envelope() {
        let a = parse_batch(format!("[{}]", row("")).as_bytes(), now()).expect("array");
        let b = parse_batch(format!(r#"{{"readings":[{}]}}"#, row("")).as_bytes(), now()).expect("envelope");
        assert_eq!(a, b);
        assert_eq!(a[0].power_kw, 10.0);
    }

    #[test]
    fn names_row_and_field_of_a_type_error() {
        let body = format!(r#"[{}, {}]"#, row(""), row("").replace("10.0", "\"ten\""));
        match parse_batch(body.as_bytes(), now()) {
            Err(BatchError::InvalidRow { row, error }) => {
                assert_eq!(row, 1);
                assert_eq!(error.field, "readings[1].power_kw");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn refuses_future_negative_and_unknown_fields() {
        let future = row("").replace("2026-01-01", "2027-01-01");
        let neg = row("").replace("2.5", "-1");
        let unknown = row(r#","colour":"red""#);
        for (body, field) in
            [(future, "readings[0].timestamp"), (neg, "readings[0].energy_kwh"), (unknown, "readings[0].colour")]
        {
            match parse_batch(format!("[{body}]").as_bytes(), now()) {
                Err(BatchError::InvalidRow { error, .. }) => assert_eq!(error.field, field),
                other => panic!("unexpected {other:?} for {field}"),
            }
        }
    }

    #[test]
    fn malformed_and_empty() {
        assert!(matches!(parse_batch(b"[", now()), Err(BatchError::Malformed { .. })));
        assert!(matches!(parse_batch(b"nope", now()), Err(BatchError::Malformed { .. })));
        let nan = row("").replace("10.0", "NaN");
        assert!(matches!(parse_batch(format!("[{nan}]").as_bytes(), now()), Err(BatchError::Malformed { .. })));
        assert_eq!(parse_batch(b"[]", now()), Err(BatchError::Empty));
    }
}
