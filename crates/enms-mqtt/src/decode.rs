//! A message's payload, by its subscription's format, as enms readings in
//! the JSON shape `POST /api/v1/readings` takes, so the same parser checks
//! every field. Machines are still names or ids here; the ingest side
//! resolves them.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Value, json};

use crate::config::{Format, Subscription};

/// Why a message was refused; the name is what `/health` counts by.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("the payload is not JSON: {0}")]
    NotJson(String),
    #[error("the payload has no value at {0:?}")]
    MissingField(String),
    #[error("{0}")]
    Invalid(String),
    #[error("no machine named or with id {0:?}")]
    UnknownMachine(String),
    #[error("the payload names no machine and its topic has no +machine level")]
    NoMachine,
}

impl Refusal {
    /// The reason as `/health` and the metrics count it.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotJson(_) => "not_json",
            Self::MissingField(_) => "missing_field",
            Self::Invalid(_) => "invalid_reading",
            Self::UnknownMachine(_) => "unknown_machine",
            Self::NoMachine => "no_machine",
        }
    }
}

/// A reading before its machine is resolved: the machine's name or id, and
/// the reading's JSON without `machine_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub machine: String,
    pub reading: Map<String, Value>,
}

/// The readings a payload holds. `topic_machine` is the topic's `+machine`
/// level; `now` stamps readings whose payload has no time.
pub fn decode(
    sub: &Subscription,
    payload: &[u8],
    topic_machine: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Vec<Pending>, Refusal> {
    if sub.format == Format::Number {
        let machine = topic_machine.ok_or(Refusal::NoMachine)?.to_owned();
        let text = std::str::from_utf8(payload).map_err(|_| Refusal::Invalid("the payload is not text".into()))?;
        let kw: f64 =
            text.trim().parse().map_err(|_| Refusal::Invalid(format!("{:?} is not a number", text.trim())))?;
        if !kw.is_finite() {
            return Err(Refusal::Invalid(format!("{kw} is not a finite number")));
        }
        let mut reading = Map::new();
        reading.insert("timestamp".into(), json!(now.to_rfc3339()));
        reading.insert("power_kw".into(), json!(kw));
        return Ok(vec![Pending { machine, reading }]);
    }
    let value: Value = serde_json::from_slice(payload).map_err(|e| Refusal::NotJson(e.to_string()))?;
    match sub.format {
        Format::Number => Err(Refusal::Invalid("a number payload".into())),
        Format::Reading => {
            let rows = match value {
                Value::Array(rows) => rows,
                Value::Object(mut o) if o.contains_key("readings") => match o.remove("readings") {
                    Some(Value::Array(rows)) => rows,
                    _ => return Err(Refusal::Invalid("readings must be an array".into())),
                },
                one @ Value::Object(_) => vec![one],
                _ => {
                    return Err(Refusal::Invalid(
                        "expected a reading, an array of readings or {\"readings\": [...]}".into(),
                    ));
                }
            };
            rows.into_iter()
                .map(|row| {
                    let Value::Object(mut reading) = row else {
                        return Err(Refusal::Invalid("a reading must be a JSON object".into()));
                    };
                    let machine = match reading.remove("machine_id") {
                        Some(Value::String(m)) => m,
                        Some(_) => return Err(Refusal::Invalid("machine_id must be a string".into())),
                        None => topic_machine.ok_or(Refusal::NoMachine)?.to_owned(),
                    };
                    Ok(Pending { machine, reading })
                })
                .collect()
        }
        Format::Json => {
            let (machine, timestamp, fields) = (&sub.machine, &sub.timestamp, &sub.fields);
            let machine = match machine {
                Some(path) => match at(&value, path) {
                    Some(Value::String(m)) => m.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    _ => return Err(Refusal::MissingField(path.clone())),
                },
                None => topic_machine.ok_or(Refusal::NoMachine)?.to_owned(),
            };
            let ts = match timestamp {
                Some(path) => {
                    time(at(&value, path).ok_or_else(|| Refusal::MissingField(path.clone()))?).ok_or_else(|| {
                        Refusal::Invalid(format!("{path}: not an RFC 3339 time or Unix seconds/milliseconds"))
                    })?
                }
                None => now,
            };
            let mut reading = Map::new();
            reading.insert("timestamp".into(), json!(ts.to_rfc3339()));
            let mut extra = Map::new();
            for (field, path) in fields {
                let v = at(&value, path).ok_or_else(|| Refusal::MissingField(path.clone()))?;
                let v = match v {
                    Value::String(s) => s
                        .trim()
                        .parse::<f64>()
                        .map(|f| json!(f))
                        .map_err(|_| Refusal::Invalid(format!("{path}: {s:?} is not a number")))?,
                    other => other.clone(),
                };
                match field.as_str() {
                    "power_kw" | "energy_kwh" | "production_units" | "outdoor_temp_c" => {
                        reading.insert(field.clone(), v);
                    }
                    _ => {
                        extra.insert(field.clone(), v);
                    }
                }
            }
            if !extra.is_empty() {
                reading.insert("extra".into(), Value::Object(extra));
            }
            Ok(vec![Pending { machine, reading }])
        }
    }
}

/// The value at a dotted path (`meter.p`, `values.0`).
fn at<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, key| match v {
        Value::Object(o) => o.get(key),
        Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

/// RFC 3339 text, or Unix seconds or milliseconds (told apart by size).
fn time(v: &Value) -> Option<DateTime<Utc>> {
    match v {
        Value::String(s) => enms_core::timestamp::parse(s),
        Value::Number(n) => {
            let x = n.as_f64()?;
            let ms = if x.abs() < 1e11 { x * 1000.0 } else { x };
            Utc.timestamp_millis_opt(ms.round() as i64).single()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn reading() -> Subscription {
        Subscription {
            topic: "t".into(),
            format: Format::Reading,
            machine: None,
            timestamp: None,
            fields: BTreeMap::new(),
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).single().expect("time")
    }

    #[test]
    fn enms_readings_take_the_machine_from_the_payload_or_the_topic() {
        let one = br#"{"timestamp": "2026-12-01T11:00:00Z", "power_kw": 5, "energy_kwh": 1.25}"#;
        let got = decode(&reading(), one, Some("C-1"), now()).expect("decoded");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].machine, "C-1");
        assert!(!got[0].reading.contains_key("machine_id"));
        let batch = br#"{"readings": [{"machine_id": "C-2", "timestamp": "2026-12-01T11:00:00Z", "power_kw": 5, "energy_kwh": 1}]}"#;
        assert_eq!(decode(&reading(), batch, None, now()).expect("decoded")[0].machine, "C-2");
        assert_eq!(decode(&reading(), one, None, now()), Err(Refusal::NoMachine));
        assert_eq!(decode(&reading(), b"{nope", None, now()).map_err(|e| e.reason()), Err("not_json"));
        assert_eq!(decode(&reading(), b"42", None, now()).map_err(|e| e.reason()), Err("invalid_reading"));
    }

    #[test]
    fn plain_numbers_are_a_topic_machines_power() {
        let sub = Subscription { format: Format::Number, ..reading() };
        let got = decode(&sub, b" 41.5\n", Some("C-1"), now()).expect("decoded");
        assert_eq!(got[0].machine, "C-1");
        assert_eq!(got[0].reading.get("power_kw"), Some(&json!(41.5)));
        assert_eq!(got[0].reading.get("timestamp"), Some(&json!(now().to_rfc3339())));
        assert_eq!(decode(&sub, b"41.5", None, now()), Err(Refusal::NoMachine));
        for bad in [&b"forty"[..], b"NaN", b"inf", b"{\"p\": 1}", b"\xff"] {
            assert_eq!(
                decode(&sub, bad, Some("C-1"), now()).map_err(|e| e.reason()),
                Err("invalid_reading"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn json_payloads_are_read_by_field_paths() {
        let format = Subscription {
            topic: "t".into(),
            format: Format::Json,
            machine: Some("dev.name".into()),
            timestamp: Some("ts".into()),
            fields: BTreeMap::from([
                ("power_kw".into(), "m.p".into()),
                ("energy_kwh".into(), "m.e".into()),
                ("pressure_bar".into(), "m.extra.0".into()),
            ]),
        };
        let payload =
            br#"{"dev": {"name": "Compressor-1"}, "ts": 1764590400, "m": {"p": "12.5", "e": 0.2, "extra": [6.9]}}"#;
        let got = decode(&format, payload, None, now()).expect("decoded");
        assert_eq!(got[0].machine, "Compressor-1");
        assert_eq!(got[0].reading["timestamp"], "2025-12-01T12:00:00+00:00");
        assert_eq!(
            (got[0].reading["power_kw"].clone(), got[0].reading["energy_kwh"].clone()),
            (json!(12.5), json!(0.2))
        );
        assert_eq!(got[0].reading["extra"], json!({"pressure_bar": 6.9}));
        let missing = br#"{"dev": {"name": "C"}, "ts": 1, "m": {"p": 1}}"#;
        assert_eq!(decode(&format, missing, None, now()), Err(Refusal::MissingField("m.e".into())));
        let text = br#"{"dev": {"name": "C"}, "ts": 1, "m": {"p": "high", "e": 1, "extra": [1]}}"#;
        assert_eq!(decode(&format, text, None, now()).map_err(|e| e.reason()), Err("invalid_reading"));
    }
}
