//! CSV for people and spreadsheets.
//!
//! - A header row of the selected columns, written even when there are no records.
//! - RFC 4180 quoting (a cell is quoted when it holds a comma, quote, CR or LF; quotes are
//!   doubled); rows end with `\n`. UTF-8, no byte-order mark.
//! - A null is an empty cell.
//! - `event_time` is RFC 3339 in the spec's time zone, with the offset of that instant:
//!   `2024-05-02T18:14:02+09:00` for `Asia/Tokyo`. In `UTC` (the default, also `Etc/UTC`)
//!   it ends in `Z`, as in JSON Lines: `2024-05-02T09:14:02Z`. Whole seconds print without a
//!   fraction; a fraction is printed only when nonzero.
//! - With `neutralize_formulas` (the default), a cell starting with `=`, `+`, `-`, `@`, tab or
//!   CR gets a leading `'`, so a spreadsheet shows it as text instead of running it.

use std::marker::PhantomData;

use connect_audit_core::AuditRecord;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::local_output::{self, Output};
use crate::spec::{CredentialVars, Spec, Validated, path_field, timezone_problem, utc};
use crate::{Error, ExportSummary, Exporter, RecordKind, Row};

/// `type = "csv"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvSpec {
    /// Output file, or `-` for stdout. Required.
    pub path: String,
    /// Columns to write, in this order. Default: every column of the audit record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    /// IANA time zone `event_time` is shown in, e.g. `Asia/Tokyo`. Default: `UTC`.
    #[serde(default = "utc")]
    pub timezone: String,
    /// Prefix cells starting with `=`, `+`, `-`, `@`, tab or CR with `'` so spreadsheets do
    /// not run them as formulas. Default: `true`.
    #[serde(default = "yes")]
    pub neutralize_formulas: bool,
}

fn yes() -> bool {
    true
}

impl CsvSpec {
    /// A CSV spec with defaults for everything but the path.
    pub fn new(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            columns: None,
            timezone: utc(),
            neutralize_formulas: true,
        }
    }
}

impl Spec for CsvSpec {
    path_field!();

    fn validate(&self, kind: RecordKind) -> Vec<(&'static str, String)> {
        let mut problems: Vec<_> = timezone_problem(&self.timezone).into_iter().collect();
        let known = kind.columns();
        for column in self.columns.iter().flatten() {
            if !known.contains(&column.as_str()) {
                problems.push((
                    "columns",
                    format!(
                        "unknown column `{column}` (columns of the {}: {})",
                        kind.noun(),
                        known.join(", ")
                    ),
                ));
            }
        }
        if self.columns.as_ref().is_some_and(Vec::is_empty) {
            problems.push(("columns", "must name at least one column".into()));
        }
        problems
    }

    fn build(&self, _: Validated, _vars: &CredentialVars) -> Result<Box<dyn Exporter>, Error> {
        Ok(Box::new(CsvExporter::<AuditRecord>::create(self)?))
    }
}

/// Writes records (of a [`Row`] kind: audit records by default) as CSV to a file or stdout.
/// Built from a [`CsvSpec`].
pub struct CsvExporter<R: Row = AuditRecord> {
    name: String,
    columns: Vec<&'static str>,
    timezone: Option<TimeZone>,
    neutralize: bool,
    to_stdout: bool,
    encoder: ::csv::Writer<Output>,
    row: Vec<String>,
    records: u64,
    kind: PhantomData<fn(&R)>,
}

impl<R: Row> std::fmt::Debug for CsvExporter<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvExporter")
            .field("name", &self.name)
            .field("columns", &self.columns)
            .field("records", &self.records)
            .finish_non_exhaustive()
    }
}

impl<R: Row> CsvExporter<R> {
    /// Opens the output of a validated spec (a temporary file beside `spec.path`, or stdout
    /// for `-`) and writes the header row. Validation found its columns and time zone.
    pub(crate) fn create(spec: &CsvSpec) -> Result<Self, Error> {
        let name = local_output::describe("csv", &spec.path);
        let all = R::KIND.columns();
        let columns = match &spec.columns {
            None => all.to_vec(),
            Some(wanted) => wanted
                .iter()
                .map(|column| {
                    all.iter()
                        .copied()
                        .find(|known| known == column)
                        .expect("validated: a column of the record kind")
                })
                .collect(),
        };
        let timezone = TimeZone::get(&spec.timezone).expect("validated: an IANA time zone");
        let timezone = (!is_utc(&spec.timezone, &timezone)).then_some(timezone);
        let mut encoder = ::csv::Writer::from_writer(Output::open(&name, &spec.path)?);
        encoder
            .write_record(&columns)
            .map_err(|source| csv_error(&name, source))?;
        Ok(Self {
            row: Vec::with_capacity(columns.len()),
            name,
            columns,
            timezone,
            neutralize: spec.neutralize_formulas,
            to_stdout: spec.path == local_output::STDOUT,
            encoder,
            records: 0,
            kind: PhantomData,
        })
    }

    fn write_batch(&mut self, batch: &[R]) -> Result<(), Error> {
        for record in batch {
            self.row.clear();
            for &column in &self.columns {
                let mut cell = record
                    .cell(column, self.timezone.as_ref())
                    .unwrap_or_default();
                if self.neutralize && is_formula(&cell) {
                    cell.insert(0, '\'');
                }
                self.row.push(cell);
            }
            self.encoder
                .write_record(&self.row)
                .map_err(|source| csv_error(&self.name, source))?;
        }
        // A reader of stdout sees each batch as soon as it is written; a file is flushed
        // when complete.
        if self.to_stdout {
            self.encoder.flush().map_err(|source| Error::Io {
                exporter: self.name.clone(),
                source,
            })?;
        }
        self.records += batch.len() as u64;
        Ok(())
    }
}

/// Unwraps the I/O errors the CSV writer passes through, so a caller finds the
/// [`std::io::Error`] in the chain of sources.
fn csv_error(exporter: &str, source: ::csv::Error) -> Error {
    if !source.is_io_error() {
        return Error::Csv {
            exporter: exporter.to_owned(),
            source,
        };
    }
    match source.into_kind() {
        ::csv::ErrorKind::Io(source) => Error::Io {
            exporter: exporter.to_owned(),
            source,
        },
        _ => unreachable!("is_io_error() said this is an I/O error"),
    }
}

impl<R: Row> Exporter<R> for CsvExporter<R> {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn write(&mut self, batch: &[R]) -> Result<(), Error> {
        self.write_batch(batch)
    }

    fn finish(self: Box<Self>) -> Result<ExportSummary, Error> {
        let output = self.encoder.into_inner().map_err(|e| Error::Io {
            exporter: self.name.clone(),
            source: e.into_error(),
        })?;
        let outputs = output.finish()?;
        Ok(ExportSummary {
            exporter: self.name,
            records: self.records,
            outputs,
        })
    }
}

/// Whether the configured zone is UTC itself, which is shown with `Z`.
pub(crate) fn is_utc(name: &str, timezone: &TimeZone) -> bool {
    name.eq_ignore_ascii_case("UTC") || matches!(timezone.iana_name(), Some("UTC" | "Etc/UTC"))
}

/// RFC 3339 with the zone's offset at that instant, or `Z` when `timezone` is `None` (UTC).
pub(crate) fn format_time(time: Timestamp, timezone: Option<&TimeZone>) -> String {
    match timezone {
        None => time.to_string(),
        Some(tz) => time.display_with_offset(tz.to_offset(time)).to_string(),
    }
}

/// Whether a spreadsheet would take the cell for a formula (OWASP "CSV injection").
fn is_formula(cell: &str) -> bool {
    cell.starts_with(['=', '+', '-', '@', '\t', '\r'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_recognised() {
        for cell in ["=cmd|'/C calc'!A0", "+1", "-2", "@SUM(1)", "\tx", "\rx"] {
            assert!(is_formula(cell), "{cell:?}");
        }
        for cell in ["", "x=1", " =1", "'=1", "日本語", "{\"a\":1}"] {
            assert!(!is_formula(cell), "{cell:?}");
        }
    }

    #[test]
    fn times_print_in_the_zone_with_its_offset() {
        let t: Timestamp = "2024-05-02T09:14:02Z".parse().unwrap();
        let tokyo = TimeZone::get("Asia/Tokyo").unwrap();
        assert_eq!(format_time(t, Some(&tokyo)), "2024-05-02T18:14:02+09:00");
        assert_eq!(format_time(t, None), "2024-05-02T09:14:02Z");
        let ny = TimeZone::get("America/New_York").unwrap();
        assert_eq!(format_time(t, Some(&ny)), "2024-05-02T05:14:02-04:00");
        let winter: Timestamp = "2024-01-02T09:14:02.5Z".parse().unwrap();
        assert_eq!(
            format_time(winter, Some(&ny)),
            "2024-01-02T04:14:02.5-05:00"
        );
        let london = TimeZone::get("Europe/London").unwrap();
        assert_eq!(
            format_time(winter, Some(&london)),
            "2024-01-02T09:14:02.5+00:00"
        );
    }

    #[test]
    fn utc_is_recognised_by_name() {
        for name in ["UTC", "utc", "Etc/UTC"] {
            assert!(is_utc(name, &TimeZone::get(name).unwrap()), "{name}");
        }
        assert!(!is_utc(
            "Europe/London",
            &TimeZone::get("Europe/London").unwrap()
        ));
    }
}
