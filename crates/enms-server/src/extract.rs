//! Request bodies and parameters, read with limits and turned into
//! [`ApiError`]s that name what was wrong, instead of axum's plain-text
//! rejections.

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::{ApiError, Code};

/// Largest body of the small JSON endpoints (machines).
const SMALL_JSON: usize = 64 << 10;

/// Reads the whole body if its media type is one of `accepted` and it is at
/// most `limit` bytes.
pub async fn read_body(headers: &HeaderMap, body: Body, accepted: &[&str], limit: usize) -> Result<Bytes, ApiError> {
    let media = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    if !media.as_deref().is_some_and(|m| accepted.contains(&m)) {
        return Err(ApiError::new(
            Code::UnsupportedMediaType,
            format!("Content-Type must be {}; got {}", accepted.join(" or "), media.as_deref().unwrap_or("none")),
        ));
    }
    let too_large = || ApiError::new(Code::PayloadTooLarge, format!("the body exceeds {limit} bytes"));
    let declared = headers.get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(err) = source {
            if err.is::<http_body_util::LengthLimitError>() {
                return too_large();
            }
            source = err.source();
        }
        ApiError::new(Code::BodyReadFailed, format!("could not read the body: {e}"))
    })
}

/// Parses JSON, naming the path of the first wrong field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let malformed = |e: serde_json::Error| ApiError::new(Code::MalformedJson, e.to_string());
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = match serde_path_to_error::deserialize(&mut de) {
        Ok(v) => v,
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.classify() != serde_json::error::Category::Data {
                return Err(malformed(inner));
            }
            // A missing or unknown top-level field has path "."; its name is
            // quoted in serde's message.
            let field = if path == "." { inner.to_string().split('`').nth(1).unwrap_or("").to_owned() } else { path };
            return Err(ApiError::invalid(Code::InvalidField, &field, inner.to_string()));
        }
    };
    de.end().map_err(malformed)?;
    Ok(value)
}

/// A small JSON body (`application/json`, at most 64 KiB).
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let bytes = read_body(&parts.headers, body, &["application/json"], SMALL_JSON).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Query parameters in request order; `get` takes the last value of a key,
/// `all` every value (for repeatable ones like `machine_id`). An empty value
/// (`?since=`) is a value, and parameters refuse it rather than read it as
/// absent: the OpenAPI schemas say so, and a client that sends `since=` by
/// mistake should hear about it instead of getting everything.
pub struct Params(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map(|Query(pairs)| Params(pairs))
            .map_err(|e| ApiError::new(Code::InvalidQuery, e.body_text()))
    }
}

impl Params {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Every value given for `key`.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Parses an optional parameter with `parse`, naming it on failure.
    pub fn parse<T>(&self, key: &str, parse: impl FnOnce(&str) -> Result<T, String>) -> Result<Option<T>, ApiError> {
        self.get(key).map(|v| parse(v).map_err(|msg| ApiError::invalid(Code::InvalidParameter, key, msg))).transpose()
    }
}

type Time = DateTime<Utc>;

impl Params {
    /// An optional RFC 3339 timestamp parameter.
    pub fn time(&self, key: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        self.parse(key, |v| enms_core::timestamp::parse(v).ok_or_else(|| format!("{v:?} is not an RFC 3339 timestamp")))
    }

    /// Optional `since` and `until`; when both are given, since before until.
    pub fn since_until(&self) -> Result<(Option<Time>, Option<Time>), ApiError> {
        let (since, until) = (self.time("since")?, self.time("until")?);
        if let (Some(s), Some(u)) = (since, until)
            && s >= u
        {
            return Err(ApiError::invalid(Code::InvalidRange, "since", "since must be before until"));
        }
        Ok((since, until))
    }

    /// `start` and `end` (default: the 24 h up to now), start before end and
    /// at most `max_days` apart; `what` names the window in that error.
    pub fn start_end(&self, max_days: i64, what: &str) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
        let end = self.time("end")?.unwrap_or_else(Utc::now);
        let start = self.time("start")?.unwrap_or(end - chrono::Duration::days(1));
        if start >= end {
            return Err(ApiError::invalid(
                Code::InvalidRange,
                "start",
                format!("start {start} must be before end {end}"),
            ));
        }
        if end - start > chrono::Duration::days(max_days) {
            return Err(ApiError::invalid(
                Code::WindowTooLong,
                "end",
                format!("{what} covers at most {max_days} days"),
            ));
        }
        Ok((start, end))
    }

    /// An optional UUID parameter.
    pub fn uuid(&self, key: &str) -> Result<Option<Uuid>, ApiError> {
        self.parse(key, |v| Uuid::parse_str(v).map_err(|_| format!("{v:?} is not a UUID")))
    }

    /// An optional integer `limit`-style parameter within `1..=max`.
    pub fn bounded<T>(&self, key: &str, default: T, max: T) -> Result<T, ApiError>
    where
        T: std::str::FromStr + PartialOrd + From<u8> + std::fmt::Display + Copy,
    {
        let parsed = self.parse(key, |v| match v.parse::<T>() {
            Ok(n) if n >= T::from(1) && n <= max => Ok(n),
            _ => Err(format!("{key} must be an integer from 1 to {max}")),
        })?;
        Ok(parsed.unwrap_or(default))
    }
}

/// A machine id from the path.
pub fn path_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::invalid(Code::InvalidId, "id", format!("{raw:?} is not a UUID")))
}

/// A small JSON body that may be absent: an empty body, or JSON `null`, gives
/// `T::default()`.
pub struct OptionalJsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let bytes = axum::body::to_bytes(body, SMALL_JSON)
            .await
            .map_err(|_| ApiError::new(Code::PayloadTooLarge, format!("the body exceeds {SMALL_JSON} bytes")))?;
        if bytes.iter().all(u8::is_ascii_whitespace) || bytes.trim_ascii() == b"null" {
            return Ok(Self(T::default()));
        }
        let media = parts.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !media.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json") {
            return Err(ApiError::new(
                Code::UnsupportedMediaType,
                format!("Content-Type must be application/json; got {}", if media.is_empty() { "none" } else { media }),
            ));
        }
        parse_json(&bytes).map(Self)
    }
}
