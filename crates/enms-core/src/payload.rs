//! The fields of each event type's `data`, as one table per type. The same
//! table checks what publishers send ([`validate_payload`]) and describes it
//! in the OpenAPI document ([`schema`]), so the two cannot disagree.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::{KnownFormat, RefOr, SchemaFormat};
use uuid::Uuid;

use crate::event::{EventType, Severity};
use crate::validation::{FieldError, finite_in, text};

/// Largest magnitude of a number in an event.
const MAX_NUMBER: f64 = 1e15;
/// Text without control characters; required text also not blank.
const NO_CONTROL: &str = r"^[^\x00-\x1f\x7f-\x9f]*$";
const NOT_BLANK: &str = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$";

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Text of at most this many characters, returned trimmed.
    Text(usize),
    Uuid,
    /// A UUID, generated when absent.
    GeneratedUuid,
    Number,
    Percent,
    Severity,
    Object,
    /// RFC 3339, now when absent; normalised to milliseconds in UTC.
    Timestamp,
}

#[derive(Debug, Clone, Copy)]
struct Field {
    name: &'static str,
    kind: Kind,
    required: bool,
}

const fn req(name: &'static str, kind: Kind) -> Field {
    Field { name, kind, required: true }
}

const fn opt(name: &'static str, kind: Kind) -> Field {
    Field { name, kind, required: false }
}

const ANOMALY: &[Field] = &[
    opt("anomaly_id", Kind::GeneratedUuid),
    req("machine_id", Kind::Uuid),
    opt("machine_name", Kind::Text(100)),
    req("severity", Kind::Severity),
    req("anomaly_type", Kind::Text(100)),
    opt("metric", Kind::Text(100)),
    opt("value", Kind::Number),
    opt("expected_value", Kind::Number),
    opt("anomaly_score", Kind::Number),
    opt("timestamp", Kind::Timestamp),
    opt("details", Kind::Object),
];

const METRIC: &[Field] = &[
    opt("machine_id", Kind::Uuid),
    req("metric_name", Kind::Text(100)),
    req("value", Kind::Number),
    opt("unit", Kind::Text(20)),
    opt("timestamp", Kind::Timestamp),
    // The reading's named values (a host's cpu_percent, memory_percent, …).
    opt("values", Kind::Object),
    opt("details", Kind::Object),
];

/// The training events; only `training_started` may leave `status` out.
const fn training(status_required: bool) -> [Field; 9] {
    [
        req("job_id", Kind::Text(100)),
        opt("machine_id", Kind::Uuid),
        opt("model_type", Kind::Text(50)),
        opt("progress_pct", Kind::Percent),
        Field { name: "status", kind: Kind::Text(50), required: status_required },
        opt("message", Kind::Text(1000)),
        opt("metrics", Kind::Object),
        opt("error_message", Kind::Text(2000)),
        opt("details", Kind::Object),
    ]
}

const TRAINING_STARTED: &[Field] = &training(false);
const TRAINING: &[Field] = &training(true);

const MODEL: &[Field] = &[
    req("model_id", Kind::Text(100)),
    opt("machine_id", Kind::Uuid),
    opt("model_type", Kind::Text(50)),
    opt("version", Kind::Number),
    opt("metrics", Kind::Object),
    opt("message", Kind::Text(1000)),
    opt("details", Kind::Object),
];

/// `incident_opened`, `incident_updated`, `incident_resolved`: what changed
/// (`change`), by whom (`by`), and the incident as it now stands.
const INCIDENT: &[Field] = &[
    req("incident_id", Kind::Uuid),
    opt("machine_id", Kind::Uuid),
    opt("machine_name", Kind::Text(100)),
    opt("anomaly_type", Kind::Text(100)),
    opt("severity", Kind::Severity),
    req("state", Kind::Text(20)),
    opt("title", Kind::Text(300)),
    opt("assignee", Kind::Text(100)),
    opt("change", Kind::Text(50)),
    opt("by", Kind::Text(100)),
    opt("text", Kind::Text(2000)),
    opt("timestamp", Kind::Timestamp),
    opt("incident", Kind::Object),
    opt("details", Kind::Object),
];

/// `forecast_updated`: a summary; the forecast itself is read from the API.
const FORECAST: &[Field] = &[
    req("machine_id", Kind::Uuid),
    opt("machine_name", Kind::Text(100)),
    req("method", Kind::Text(50)),
    req("origin", Kind::Timestamp),
    opt("horizon_hours", Kind::Number),
    opt("expected_kwh", Kind::Number),
    opt("model_id", Kind::Text(100)),
    opt("accuracy", Kind::Object),
    opt("threshold", Kind::Object),
    opt("details", Kind::Object),
];

const ALERT: &[Field] = &[
    req("alert_type", Kind::Text(100)),
    req("message", Kind::Text(2000)),
    req("severity", Kind::Severity),
    opt("source", Kind::Text(100)),
    opt("details", Kind::Object),
];

fn fields(event_type: EventType) -> &'static [Field] {
    match event_type {
        EventType::AnomalyDetected | EventType::AnomalyUpdated => ANOMALY,
        EventType::MetricUpdated => METRIC,
        EventType::TrainingStarted => TRAINING_STARTED,
        EventType::TrainingProgress | EventType::TrainingCompleted => TRAINING,
        EventType::ModelUpdated => MODEL,
        EventType::SystemAlert => ALERT,
        EventType::IncidentOpened | EventType::IncidentUpdated | EventType::IncidentResolved => INCIDENT,
        EventType::ForecastUpdated => FORECAST,
    }
}

/// Checks a payload against its type's fields and returns it normalised
/// (with `event_type`, and generated ids or timestamps where optional).
pub fn validate_payload(event_type: EventType, data: Value, now: DateTime<Utc>) -> Result<Value, FieldError> {
    let Value::Object(mut map) = data else {
        return Err(FieldError::new("invalid_type", "data", "data must be a JSON object"));
    };
    match map.remove("event_type") {
        None => {}
        Some(Value::String(t)) if t == event_type.as_str() => {}
        Some(other) => {
            return Err(FieldError::new(
                "type_mismatch",
                "data.event_type",
                format!("data.event_type {other} does not match type {event_type}"),
            ));
        }
    }
    let mut out = Map::new();
    out.insert("event_type".into(), Value::String(event_type.as_str().into()));
    for field in fields(event_type) {
        let given = match map.remove(field.name) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        };
        if let Some(value) = check(field, given, now)? {
            out.insert(field.name.into(), value);
        }
    }
    if let Some(extra) = map.keys().next() {
        return Err(FieldError::new(
            "unknown_field",
            format!("data.{extra}"),
            format!("{event_type} has no field {extra:?}"),
        ));
    }
    Ok(Value::Object(out))
}

/// The value to keep for `field`, given what was sent (absent or null: `None`).
fn check(field: &Field, given: Option<Value>, now: DateTime<Utc>) -> Result<Option<Value>, FieldError> {
    let path = format!("data.{}", field.name);
    let wrong = |expected: &str| FieldError::new("invalid_type", path.clone(), format!("{path} must be {expected}"));
    let Some(v) = given else {
        return match field.kind {
            _ if field.required => Err(FieldError::new("required", path.clone(), format!("{path} is required"))),
            Kind::GeneratedUuid => Ok(Some(Value::String(Uuid::new_v4().to_string()))),
            Kind::Timestamp => Ok(Some(Value::String(millis(now)))),
            _ => Ok(None),
        };
    };
    let value = match field.kind {
        Kind::Text(max) => {
            let s = v.as_str().ok_or_else(|| wrong("a string"))?;
            Value::String(text(&path, s, max, !field.required)?)
        }
        Kind::Uuid | Kind::GeneratedUuid => {
            let id = v.as_str().and_then(|s| Uuid::parse_str(s).ok()).ok_or_else(|| wrong("a UUID"))?;
            Value::String(id.to_string())
        }
        Kind::Number | Kind::Percent => {
            let n = v.as_f64().ok_or_else(|| wrong("a number"))?;
            let (min, max) = if matches!(field.kind, Kind::Percent) { (0.0, 100.0) } else { (-MAX_NUMBER, MAX_NUMBER) };
            finite_in(&path, n, min, max)?;
            v
        }
        Kind::Severity => {
            let s = v.as_str().ok_or_else(|| wrong("a string"))?;
            s.parse::<Severity>().map_err(|m| FieldError::new("invalid_value", path.clone(), m))?;
            v
        }
        Kind::Object if v.is_object() => v,
        Kind::Object => return Err(wrong("an object")),
        Kind::Timestamp => {
            let t = v.as_str().and_then(crate::timestamp::parse).ok_or_else(|| wrong("an RFC 3339 timestamp"))?;
            Value::String(millis(t))
        }
    };
    Ok(Some(value))
}

fn millis(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The JSON Schema of `data` for `event_type`, for the OpenAPI document.
pub fn schema(event_type: EventType) -> RefOr<Schema> {
    let mut object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .title(Some(format!("{}_data", event_type.as_str())))
        .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)))
        .property(
            "event_type",
            ObjectBuilder::new().schema_type(Type::String).enum_values(Some([event_type.as_str()])),
        );
    for field in fields(event_type) {
        object = object.property(field.name, field_schema(field));
        if field.required {
            object = object.required(field.name);
        }
    }
    object.into()
}

fn field_schema(field: &Field) -> ObjectBuilder {
    let nullable = |t: Type| {
        if field.required { SchemaType::Type(t) } else { SchemaType::Array(vec![t, Type::Null]) }
    };
    let b = ObjectBuilder::new();
    match field.kind {
        Kind::Text(max) => b
            .schema_type(nullable(Type::String))
            .max_length(Some(max))
            .min_length(field.required.then_some(1))
            .pattern(Some(if field.required { NOT_BLANK } else { NO_CONTROL })),
        Kind::Uuid | Kind::GeneratedUuid => {
            b.schema_type(nullable(Type::String)).format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
        }
        Kind::Number => b.schema_type(nullable(Type::Number)).minimum(Some(-MAX_NUMBER)).maximum(Some(MAX_NUMBER)),
        Kind::Percent => b.schema_type(nullable(Type::Number)).minimum(Some(0.0)).maximum(Some(100.0)),
        Kind::Severity => b.schema_type(nullable(Type::String)).enum_values(Some(
            ["normal", "info", "warning", "critical"]
                .map(|s| json!(s))
                .into_iter()
                .chain((!field.required).then_some(Value::Null)),
        )),
        Kind::Object => b.schema_type(nullable(Type::Object)),
        Kind::Timestamp => {
            b.schema_type(nullable(Type::String)).format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value of each kind that the validator takes.
    fn sample(kind: Kind) -> Value {
        match kind {
            Kind::Text(_) => json!("x"),
            Kind::Uuid | Kind::GeneratedUuid => json!("c0000000-0000-0000-0000-000000000001"),
            Kind::Number | Kind::Percent => json!(42.5),
            Kind::Severity => json!("warning"),
            Kind::Object => json!({"k": 1}),
            Kind::Timestamp => json!("2026-11-22T10:00:00Z"),
        }
    }

    #[test]
    fn the_schema_lists_exactly_the_fields_the_validator_takes() {
        let now = Utc::now();
        for t in EventType::ALL {
            let schema = serde_json::to_value(schema(t)).expect("schema");
            let required: std::collections::BTreeSet<&str> =
                schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            let props = schema["properties"].as_object().expect("properties");
            // Only the required fields: accepted.
            let minimal: Map<String, Value> =
                fields(t).iter().filter(|f| f.required).map(|f| (f.name.to_owned(), sample(f.kind))).collect();
            assert_eq!(minimal.keys().map(String::as_str).collect::<std::collections::BTreeSet<_>>(), required, "{t}");
            validate_payload(t, Value::Object(minimal.clone()), now).expect("required fields suffice");
            // Every listed field: accepted; each required one missing: refused.
            let full: Map<String, Value> = fields(t).iter().map(|f| (f.name.to_owned(), sample(f.kind))).collect();
            assert_eq!(props.len(), full.len() + 1, "{t}: every field and event_type");
            validate_payload(t, Value::Object(full), now).expect("every field");
            for name in &required {
                let mut missing = minimal.clone();
                missing.remove(*name);
                let err = validate_payload(t, Value::Object(missing), now).expect_err("missing");
                assert_eq!(err.field, format!("data.{name}"));
            }
            assert_eq!(schema["additionalProperties"], json!(false), "{t}: unknown fields are refused");
        }
    }
}
