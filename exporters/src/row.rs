//! The kinds of record the file exporters write: the audit record of `report`, and the
//! entitlement of `access-review` ([`connect_audit_core::access::Entitlement`]). CSV, JSON
//! Lines, Parquet and HTML are each one exporter, generic over [`Row`]; what differs between
//! the kinds (columns, their text, the Arrow schema, the HTML page) is here and beside each
//! kind's exporter code, not in copies of the exporters.

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, SchemaRef};
use connect_audit_core::AuditRecord;
use connect_audit_core::access::{ENTITLEMENT_COLUMNS, Entitlement};
use connect_audit_core::record::COLUMNS;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;

use crate::csv::format_time;
use crate::html::{HtmlSpec, Page};
use crate::spec::{CredentialVars, ExporterSpec, ValidExporter};
use crate::{CsvExporter, Error, Exporter, HtmlExporter, JsonlExporter, ParquetExporter};

/// Which record an exporter writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// The audit record of `report`: one row per audited event.
    #[default]
    Audit,
    /// The entitlement of `access-review`: one row per user as of the review time.
    Entitlement,
}

impl RecordKind {
    /// The columns of CSV and the HTML table.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Self::Audit => &COLUMNS,
            Self::Entitlement => &ENTITLEMENT_COLUMNS,
        }
    }

    /// What one row is, for messages: `audit record`, `entitlement`.
    pub fn noun(self) -> &'static str {
        match self {
            Self::Audit => "audit record",
            Self::Entitlement => "entitlement",
        }
    }
}

/// A record the file exporters write.
pub trait Row: Serialize + Send + Sync + Sized + 'static {
    /// Its kind.
    const KIND: RecordKind;

    /// The text of a column of [`RecordKind::columns`], times in RFC 3339 in `zone` (`None`:
    /// UTC, ending in `Z`); `None` for a null.
    fn cell(&self, column: &str, zone: Option<&TimeZone>) -> Option<String>;

    /// What names the row in an error message: the event id, the user id.
    fn key(&self) -> String;

    /// The time the row is filed under: the date partition of Parquet.
    fn time(&self) -> Timestamp;

    /// The Arrow schema of its Parquet files.
    fn arrow_schema() -> SchemaRef;

    /// Rows as Arrow columns of [`arrow_schema`](Self::arrow_schema).
    fn record_batch(rows: &[&Self]) -> Result<RecordBatch, ArrowError>;

    /// The HTML page of this kind of row.
    fn page(spec: &HtmlSpec) -> Box<dyn Page<Self>>;

    /// The row as an audit record, for the shapes only audit records have (OCSF).
    fn as_audit(&self) -> Option<&AuditRecord> {
        None
    }

    /// The exporter a validated spec describes, not guarded yet ([`crate::build_rows`]).
    fn build(spec: &ValidExporter, vars: &CredentialVars)
    -> Result<Box<dyn Exporter<Self>>, Error>;
}

impl Row for AuditRecord {
    const KIND: RecordKind = RecordKind::Audit;

    fn cell(&self, column: &str, zone: Option<&TimeZone>) -> Option<String> {
        match column {
            "event_time" => Some(format_time(self.event_time, zone)),
            _ => self.column(column),
        }
    }

    fn key(&self) -> String {
        self.event_id.clone()
    }

    fn as_audit(&self) -> Option<&AuditRecord> {
        Some(self)
    }

    fn time(&self) -> Timestamp {
        self.event_time
    }

    fn arrow_schema() -> SchemaRef {
        connect_audit_core::record::arrow_schema()
    }

    fn record_batch(rows: &[&Self]) -> Result<RecordBatch, ArrowError> {
        crate::parquet::audit_batch(rows)
    }

    fn page(spec: &HtmlSpec) -> Box<dyn Page<Self>> {
        Box::new(crate::html::AuditPage::new(spec))
    }

    fn build(
        spec: &ValidExporter,
        vars: &CredentialVars,
    ) -> Result<Box<dyn Exporter<Self>>, Error> {
        spec.build(vars)
    }
}

impl Row for Entitlement {
    const KIND: RecordKind = RecordKind::Entitlement;

    fn cell(&self, column: &str, zone: Option<&TimeZone>) -> Option<String> {
        self.column(column, &|t| format_time(t, zone))
    }

    fn key(&self) -> String {
        format!("user {}", self.user_id)
    }

    fn time(&self) -> Timestamp {
        self.review_at
    }

    fn arrow_schema() -> SchemaRef {
        crate::review::arrow_schema()
    }

    fn record_batch(rows: &[&Self]) -> Result<RecordBatch, ArrowError> {
        crate::review::record_batch(rows)
    }

    fn page(spec: &HtmlSpec) -> Box<dyn Page<Self>> {
        Box::new(crate::review::ReviewPage::new(spec))
    }

    /// CSV, JSON Lines (the entitlement as it is), Parquet and HTML; validation refused the
    /// rest ([`ExporterSpec::check_for`]).
    fn build(
        spec: &ValidExporter,
        _vars: &CredentialVars,
    ) -> Result<Box<dyn Exporter<Self>>, Error> {
        Ok(match &**spec {
            ExporterSpec::Csv(s) => Box::new(CsvExporter::<Self>::create(s)?),
            ExporterSpec::Jsonl(s) => Box::new(JsonlExporter::<Self>::create(s)?),
            ExporterSpec::Parquet(s) => Box::new(ParquetExporter::<Self>::create(s)?),
            ExporterSpec::Html(s) => Box::new(HtmlExporter::<Self>::create(s)?),
            other @ ExporterSpec::SiemWebhook(_) => {
                return Err(Error::Invalid {
                    exporter: crate::local_output::describe(other.kind(), other.path()),
                    problems: vec![format!("writes no {}", Self::KIND.noun())],
                });
            }
        })
    }
}
