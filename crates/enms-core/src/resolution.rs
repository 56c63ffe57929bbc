//! Time buckets for reading queries.

use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    Raw,
    OneMinute,
    FifteenMinutes,
    OneHour,
    /// Calendar days in UTC.
    OneDay,
}

impl Resolution {
    /// Bucket width in milliseconds; `None` for raw rows.
    pub fn bucket_ms(self) -> Option<i64> {
        match self {
            Self::Raw => None,
            Self::OneMinute => Some(60_000),
            Self::FifteenMinutes => Some(900_000),
            Self::OneHour => Some(3_600_000),
            Self::OneDay => Some(86_400_000),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::OneMinute => "1m",
            Self::FifteenMinutes => "15m",
            Self::OneHour => "1h",
            Self::OneDay => "1d",
        }
    }
}

impl Resolution {
    pub const ALL: [Resolution; 5] = [Self::Raw, Self::OneMinute, Self::FifteenMinutes, Self::OneHour, Self::OneDay];
}

/// Described by the names clients send (`raw`, `1m`, …), which are not
/// Rust identifiers, so by hand.
impl utoipa::PartialSchema for Resolution {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(Self::ALL.map(Self::as_str)))
            .description(Some("`raw` readings, or buckets of 1 minute, 15 minutes, 1 hour or 1 UTC day"))
            .into()
    }
}

impl utoipa::ToSchema for Resolution {}

impl FromStr for Resolution {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "raw" => Self::Raw,
            "1m" => Self::OneMinute,
            "15m" => Self::FifteenMinutes,
            "1h" => Self::OneHour,
            "1d" => Self::OneDay,
            other => return Err(format!("resolution must be one of raw, 1m, 15m, 1h, 1d; got {other:?}")),
        })
    }
}
