//! Timestamp parsing shared by JSON and CSV input.
//!
//! RFC 3339 with an offset is the canonical form. The system we replace sent
//! naive ISO timestamps (`2025-10-14T00:00:00`); those are accepted and read as
//! UTC so its clients keep working.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer, de};

/// Parses RFC 3339, or a naive ISO 8601 date-time taken as UTC.
pub fn parse(value: &str) -> Option<DateTime<Utc>> {
    let value = value.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Some(t.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|fmt| NaiveDateTime::parse_from_str(value, fmt).ok())
        .map(|naive| naive.and_utc())
}

/// Serde adapter for [`parse`].
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    struct Visitor;
    impl de::Visitor<'_> for Visitor {
        type Value = DateTime<Utc>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an RFC 3339 timestamp such as 2026-01-31T12:00:00Z")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            parse(v).ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
        }
    }
    d.deserialize_str(Visitor)
}

/// Serde adapter for an optional timestamp.
pub fn deserialize_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    #[derive(Deserialize)]
    struct Wrap(#[serde(deserialize_with = "deserialize")] DateTime<Utc>);
    Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
}

/// Milliseconds since the Unix epoch, the storage representation.
pub fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// Inverse of [`to_ms`]; out-of-range values clamp to the epoch rather than
/// panic, since they can only come from a corrupted store.
pub fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_rfc3339_and_naive_iso() {
        let a = parse("2025-10-14T02:00:00+02:00").expect("rfc3339");
        let b = parse("2025-10-14T00:00:00").expect("naive");
        let c = parse("2025-10-14 00:00:00.000").expect("space separated");
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert!(parse("14/10/2025").is_none());
        assert!(parse("").is_none());
    }
}
