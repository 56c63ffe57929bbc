//! Human durations in flags and the config file: `500ms`, `5s`, `15m`, `2h`, `1d`.

use std::time::Duration;

pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("{text:?} is not a duration such as 500ms, 5s, 15m or 1h"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "s" | "" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86_400.0,
        other => return Err(format!("unknown duration unit {other:?} in {text:?}; use ms, s, m, h or d")),
    };
    if !(seconds.is_finite() && seconds > 0.0 && seconds < 1e9) {
        return Err(format!("duration {text:?} must be positive"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// `#[serde(deserialize_with = "enms_core::duration::human")]`: a config
/// file's duration as text (`"15m"`) or as a number of seconds.
pub fn human<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Text {
        Seconds(f64),
        Human(String),
    }
    let text = match <Text as serde::Deserialize>::deserialize(d)? {
        Text::Seconds(s) => s.to_string(),
        Text::Human(h) => h,
    };
    parse(&text).map_err(serde::de::Error::custom)
}

/// [`human`] for an optional duration.
pub fn human_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    human(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_refuses_garbage() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse("2"), Ok(Duration::from_secs(2)));
        assert!(parse("0s").is_err());
        assert!(parse("5 parsecs").is_err());
        assert!(parse("fast").is_err());
    }
}
