//! The error every validation rule returns: which field, what is wrong, and a
//! stable machine-readable code that the HTTP layer passes through.

use std::fmt;

/// A value that broke a rule. `field` is a path such as `power_kw` or
/// `readings[3].timestamp`, so clients can highlight the offending input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub code: &'static str,
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(code: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code, field: field.into(), message: message.into() }
    }

    /// Prefixes the field path, e.g. `power_kw` → `readings[3].power_kw`.
    pub fn within(mut self, prefix: &str) -> Self {
        self.field = if self.field.is_empty() { prefix.to_owned() } else { format!("{prefix}.{}", self.field) };
        self
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}

/// A finite number within `[min, max]`; NaN and infinities are refused
/// explicitly because CSV and some JSON encoders can produce them.
pub fn finite_in(field: &str, value: f64, min: f64, max: f64) -> Result<f64, FieldError> {
    if !value.is_finite() {
        return Err(FieldError::new("not_finite", field, format!("{field} must be a finite number, got {value}")));
    }
    if value < min || value > max {
        return Err(FieldError::new(
            "out_of_range",
            field,
            format!("{field} must be between {min} and {max}, got {value}"),
        ));
    }
    Ok(value)
}

/// A non-blank string of at most `max` characters without control
/// characters (they break CSV exports and log lines), returned trimmed.
pub fn text(field: &str, value: &str, max: usize, allow_empty: bool) -> Result<String, FieldError> {
    let trimmed = value.trim();
    if trimmed.is_empty() && !allow_empty {
        return Err(FieldError::new("required", field, format!("{field} must not be empty")));
    }
    // The raw length, so the limit is the one the OpenAPI schema states.
    if value.chars().count() > max {
        return Err(FieldError::new("too_long", field, format!("{field} must be at most {max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(FieldError::new(
            "invalid_characters",
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(trimmed.to_owned())
}
