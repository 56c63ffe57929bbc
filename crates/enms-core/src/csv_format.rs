//! The CSV reading format used by `POST /api/v1/readings/import` and
//! `enms import`.
//!
//! A header line is required. Columns: `timestamp`, `power_kw`, `energy_kwh`
//! (required); `machine_id` or `machine` (an id or a name; may be omitted when
//! the importer names one machine for the whole file); `production_units` and
//! `outdoor_temp_c` (optional, empty cells allowed); any other column is a
//! named extra value. Lines are numbered from 1, the header being line 1.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::reading::{Reading, ReadingInput};
use crate::timestamp;

/// Why an import was refused, naming the line (and column) at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct CsvError {
    pub code: &'static str,
    pub line: u64,
    pub column: Option<String>,
    pub message: String,
}

impl CsvError {
    fn new(code: &'static str, line: u64, column: Option<&str>, message: impl Into<String>) -> Self {
        Self { code, line, column: column.map(str::to_owned), message: message.into() }
    }
}

#[derive(Default)]
struct Columns {
    timestamp: Option<usize>,
    power: Option<usize>,
    energy: Option<usize>,
    machine: Option<usize>,
    production: Option<usize>,
    temperature: Option<usize>,
    extra: Vec<(usize, String)>,
}

impl Columns {
    fn from_header(header: &csv::StringRecord) -> Result<Self, CsvError> {
        let mut cols = Columns::default();
        for (i, name) in header.iter().enumerate() {
            let slot = match name {
                "timestamp" => &mut cols.timestamp,
                "power_kw" => &mut cols.power,
                "energy_kwh" => &mut cols.energy,
                "machine_id" | "machine" => &mut cols.machine,
                "production_units" => &mut cols.production,
                "outdoor_temp_c" => &mut cols.temperature,
                "" => return Err(CsvError::new("invalid_header", 1, None, format!("column {} has no name", i + 1))),
                other => {
                    cols.extra.push((i, other.to_owned()));
                    continue;
                }
            };
            if slot.replace(i).is_some() {
                return Err(CsvError::new("invalid_header", 1, Some(name), format!("column {name:?} appears twice")));
            }
        }
        for (slot, name) in [(cols.timestamp, "timestamp"), (cols.power, "power_kw"), (cols.energy, "energy_kwh")] {
            if slot.is_none() {
                return Err(CsvError::new(
                    "invalid_header",
                    1,
                    Some(name),
                    format!("the header has no {name:?} column"),
                ));
            }
        }
        Ok(cols)
    }
}

/// Parses and validates a whole CSV document. `machine` names the machine for
/// files without a machine column; `resolve` maps a machine cell (id or name)
/// to a known machine id.
pub fn parse(
    data: &[u8],
    machine: Option<Uuid>,
    mut resolve: impl FnMut(&str) -> Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<Vec<Reading>, CsvError> {
    let data = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(data);
    let header = reader.headers().map_err(|e| csv_error(&e, 1))?.clone();
    let cols = Columns::from_header(&header)?;
    if cols.machine.is_none() && machine.is_none() {
        return Err(CsvError::new(
            "machine_required",
            1,
            None,
            "the file has no machine_id column; name the machine for the whole file",
        ));
    }
    let mut out = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(csv_error(&e, out.len() as u64 + 2)),
        }
        let line = record.position().map_or(out.len() as u64 + 2, csv::Position::line);
        out.push(parse_row(&record, &cols, machine, &mut resolve, now, line)?);
    }
    if out.is_empty() {
        return Err(CsvError::new("empty", 1, None, "the file holds a header but no readings"));
    }
    Ok(out)
}

fn parse_row(
    record: &csv::StringRecord,
    cols: &Columns,
    default_machine: Option<Uuid>,
    resolve: &mut impl FnMut(&str) -> Option<Uuid>,
    now: DateTime<Utc>,
    line: u64,
) -> Result<Reading, CsvError> {
    let cell = |i: usize| record.get(i).unwrap_or("");
    let machine_id = match cols.machine.map(cell) {
        Some(name) if !name.is_empty() => resolve(name).ok_or_else(|| {
            CsvError::new("unknown_machine", line, Some("machine_id"), format!("unknown machine {name:?}"))
        })?,
        _ => {
            default_machine.ok_or_else(|| CsvError::new("required", line, Some("machine_id"), "machine_id is empty"))?
        }
    };
    let ts_cell = cols.timestamp.map(cell).unwrap_or("");
    let timestamp = timestamp::parse(ts_cell).ok_or_else(|| {
        CsvError::new("invalid_type", line, Some("timestamp"), format!("{ts_cell:?} is not an RFC 3339 timestamp"))
    })?;
    let number = |i: Option<usize>, name: &str| optional_number(i.map(cell).unwrap_or(""), name, line);
    let required = |i: Option<usize>, name: &str| {
        number(i, name)?.ok_or_else(|| CsvError::new("required", line, Some(name), format!("{name} is empty")))
    };
    let mut extra = BTreeMap::new();
    for (i, name) in &cols.extra {
        if let Some(v) = optional_number(cell(*i), name, line)? {
            extra.insert(name.clone(), v);
        }
    }
    let input = ReadingInput {
        machine_id,
        timestamp,
        power_kw: required(cols.power, "power_kw")?,
        energy_kwh: required(cols.energy, "energy_kwh")?,
        production_units: number(cols.production, "production_units")?,
        outdoor_temp_c: number(cols.temperature, "outdoor_temp_c")?,
        extra,
    };
    input.validate(now).map_err(|e| {
        let column = e.field.clone();
        CsvError { code: e.code, line, column: Some(column), message: e.message }
    })
}

fn optional_number(text: &str, column: &str, line: u64) -> Result<Option<f64>, CsvError> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<f64>()
        .map(Some)
        .map_err(|_| CsvError::new("invalid_type", line, Some(column), format!("{column}: {text:?} is not a number")))
}

fn csv_error(e: &csv::Error, fallback_line: u64) -> CsvError {
    let line = e.position().map_or(fallback_line, csv::Position::line);
    let message = match e.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("expected {expected_len} fields like the header, found {len}")
        }
        csv::ErrorKind::Utf8 { .. } => "the line is not valid UTF-8".to_owned(),
        _ => e.to_string(),
    };
    CsvError::new("malformed_csv", line, None, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const ID: Uuid = Uuid::from_u128(1);

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).single().expect("date")
    }

    fn resolve(s: &str) -> Option<Uuid> {
        (s == "C-1").then_some(ID)
    }

    #[test]
    fn parses_optional_and_extra_columns() {
        let csv = "timestamp,machine,power_kw,energy_kwh,production_units,pressure_bar\n\
                   2026-01-01T00:15:00Z,C-1,40,10,,7.1\n";
        let rows = parse(csv.as_bytes(), None, resolve, now()).expect("valid");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].machine_id, ID);
        assert_eq!(rows[0].production_units, None);
        assert_eq!(rows[0].extra.get("pressure_bar"), Some(&7.1));
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            ("timestamp,power_kw,energy_kwh\n2026-01-01T00:00:00Z,1,1\n2026-01-01T00:15:00Z,x,1\n", 3, "invalid_type"),
            ("timestamp,power_kw,energy_kwh\n2026-01-01T00:00:00Z,1,1\n2026-01-01T00:15:00Z,1\n", 3, "malformed_csv"),
            ("timestamp,power_kw,energy_kwh\nyesterday,1,1\n", 2, "invalid_type"),
            ("timestamp,power_kw,energy_kwh\n2026-01-01T00:00:00Z,NaN,1\n", 2, "not_finite"),
            ("timestamp,power_kw\n2026-01-01T00:00:00Z,1\n", 1, "invalid_header"),
            ("timestamp,power_kw,energy_kwh\n", 1, "empty"),
        ];
        for (csv, line, code) in cases {
            let err = parse(csv.as_bytes(), Some(ID), resolve, now()).expect_err(csv);
            assert_eq!((err.line, err.code), (line, code), "{csv}: {err}");
        }
    }

    #[test]
    fn unknown_machine_and_missing_machine_column() {
        let csv = "timestamp,machine,power_kw,energy_kwh\n2026-01-01T00:00:00Z,C-9,1,1\n";
        assert_eq!(parse(csv.as_bytes(), None, resolve, now()).expect_err("unknown").code, "unknown_machine");
        let csv = "timestamp,power_kw,energy_kwh\n2026-01-01T00:00:00Z,1,1\n";
        assert_eq!(parse(csv.as_bytes(), None, resolve, now()).expect_err("none").code, "machine_required");
    }
}
