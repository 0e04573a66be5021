//! Exporters of audit records: where the rows of a run go.
//!
//! One trait, [`Exporter`], usable as `Box<dyn Exporter>` so a run can fan out to several
//! outputs: [`write`](Exporter::write) batches of [`AuditRecord`]s any number of times, then
//! [`finish`](Exporter::finish) once. The registry is [`ExporterSpec`], one variant per
//! exporter, each spec beside its exporter with a pure [`Spec::validate`]; [`build`] turns a
//! validated spec into an exporter and does the I/O.
//!
//! - [`CsvExporter`]: CSV for people, with a time zone, column choice and formula
//!   neutralisation.
//! - [`JsonlExporter`]: JSON Lines for pipes.
//! - [`ParquetExporter`]: typed, zstd-compressed Parquet, optionally partitioned by date.
//! - [`SiemExporter`]: batches POSTed to Splunk HEC or a Standard Webhooks receiver, with
//!   retries and a dead-letter file.
//! - [`HtmlExporter`]: one self-contained HTML page for auditors (header, charts, a sortable
//!   table), offline and with a Content-Security-Policy that forbids network access.
//! - [`MemoryExporter`]: keeps records in memory, for tests.
//!
//! JSON Lines and Parquet write the audit record as it is, or with `schema = "ocsf"` each
//! record as an OCSF 1.3.0 event ([`ocsf`]).
//!
//! CSV, JSON Lines, Parquet and HTML also write an access review's rows
//! ([`Entitlement`](connect_audit_core::access::Entitlement)): each is one exporter generic
//! over the kind of row ([`Row`], [`Exporter<R>`]), built by [`build_rows`] from a spec
//! validated for that kind ([`ExporterSpec::check_for`]); [`review`] holds the
//! entitlement's Parquet columns and HTML page.
//!
//! What a run knows beyond its records (window, scope, tool version, skipped input) reaches
//! the exporters that describe the run as a whole through [`Exporter::run_context`].
//!
//! CSV, JSON Lines and HTML write to stdout when the path is `-`. Every file output is written
//! to a temporary file beside its final name and renamed in `finish`: a run that crashes or
//! fails never leaves a half file that looks complete. `s3://` outputs are staged as local
//! files and uploaded once every exporter finished ([`destination::S3Outputs`]).
//!
//! ```
//! use connect_audit_core::AuditRecord;
//! use connect_audit_exporters::{ExporterSpec, JsonlSpec};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("out/audit.jsonl");
//! let spec = ExporterSpec::Jsonl(JsonlSpec::new(path.display().to_string()));
//!
//! let record: AuditRecord = serde_json::from_str(r#"{
//!     "event_time": "2024-05-02T09:14:02Z", "event_id": "e1", "event_name": "DeleteUser",
//!     "category": "user", "account_id": "111122223333", "region": "us-east-1",
//!     "actor_kind": "iam", "actor_name": "ops", "target_kind": "user",
//!     "target_id": "66666666-7777-8888-9999-000000000000", "target_name": "jdoe",
//!     "name_source": "snapshot", "origin": "api"
//! }"#)?;
//!
//! let mut exporter = connect_audit_exporters::build(&spec.validated()?)?;
//! exporter.write(std::slice::from_ref(&record))?;
//! assert!(!path.exists(), "the file appears only when finished");
//! let summary = exporter.finish()?;
//!
//! assert_eq!(summary.records, 1);
//! assert_eq!(summary.outputs, [path.clone()]);
//! let line = std::fs::read_to_string(&path)?;
//! assert!(line.starts_with(r#"{"event_time":"2024-05-02T09:14:02Z","event_id":"e1","#));
//! assert!(line.ends_with("}\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::PathBuf;

use connect_audit_core::{AuditRecord, Scope, Window};
use jiff::Timestamp;

pub mod csv;
pub mod destination;
pub mod error;
pub mod html;
pub mod jsonl;
mod local_output;
pub mod memory;
pub mod ocsf;
pub mod parquet;
pub mod review;
pub mod row;
pub mod siem;
pub mod spec;

pub use crate::csv::{CsvExporter, CsvSpec};
pub use crate::error::Error;
pub use crate::html::{HtmlExporter, HtmlSpec};
pub use crate::jsonl::{JsonlExporter, JsonlSpec};
pub use crate::memory::{MemoryExporter, MemoryRecords};
pub use crate::parquet::{ParquetExporter, ParquetSpec};
pub use crate::row::{RecordKind, Row};
pub use crate::siem::{Secret, SiemExporter, SiemFlavor, SiemWebhookSpec};
pub use crate::spec::{CredentialVars, ExporterSpec, RecordSchema, Spec, ValidExporter, Validated};

/// A destination for audit records.
///
/// The contract:
///
/// 1. [`write`](Self::write) is called any number of times (zero included), each time with a
///    batch of records in output order. An exporter keeps at most a bounded buffer, never the
///    whole run.
/// 2. [`finish`](Self::finish) is called once, after the last batch: it flushes, closes, puts
///    file outputs under their final names and says what was written.
/// 3. An exporter dropped without `finish` (the run failed or was interrupted) leaves no file
///    under its final name. After a `write` error, an exporter from [`build`] refuses to
///    `finish` with [`Error::Incomplete`] for the same reason.
///
/// Errors name the exporter ([`describe`](Self::describe)) and keep the underlying error as
/// their source; see [`Error::is_broken_pipe`] for a reader of stdout going away.
pub trait Exporter<R: Row = AuditRecord>: Send {
    /// What the exporter writes where, for logs and messages: `csv out/audit.csv`,
    /// `jsonl stdout`, `parquet lake (by date)`, `memory`.
    fn describe(&self) -> String;

    /// Writes one batch of records.
    fn write(&mut self, batch: &[R]) -> Result<(), Error>;

    /// Tells the exporter what the run knows beyond its records. A driver calls it before
    /// [`finish`](Self::finish), after the last [`write`](Self::write) once the run's counts
    /// of skipped input are known; a later call replaces an earlier one. The default ignores
    /// it: only outputs that describe the run as a whole (HTML) use it, and they work without
    /// it (the window is then the span of the records).
    fn run_context(&mut self, _run: &RunContext) {}

    /// Completes the output and reports what was written.
    fn finish(self: Box<Self>) -> Result<ExportSummary, Error>;
}

/// What a run knows that its records do not carry, for outputs that describe the run: the
/// HTML report's header. Given by [`Exporter::run_context`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunContext {
    /// The program that ran and its version, e.g. `connect-audit 0.1.0`. Empty: this
    /// crate's version.
    pub tool: String,
    /// When the run started. `None`: when the exporter finishes.
    pub generated_at: Option<Timestamp>,
    /// The window reported on. `None`: the span of the records.
    pub window: Option<Window>,
    /// The accounts, regions and instances the run was limited to (empty lists: all).
    pub scope: Scope,
    /// Where the events came from, e.g. `trail s3://trail-bucket/AWSLogs (local engine)`.
    pub source: Option<String>,
    /// The snapshot store the names came from; `None`: names from the trail only.
    pub snapshot: Option<String>,
    /// Trail files the run skipped as bad: their events are missing from the outputs.
    pub skipped_files: u64,
    /// Records the run skipped as bad.
    pub skipped_records: u64,
    /// Audited events the run found in its window, each once; `None` when not counted (the
    /// Athena engine, or an exporter run on its own).
    pub events_in_window: Option<u64>,
    /// Of those, delivered by an earlier incremental run and not written again.
    pub already_delivered: u64,
    /// Second and later deliveries of an event, dropped.
    pub duplicates: u64,
    /// Audited events older than the window found in files delivered since the last
    /// incremental run: in no output of this run.
    pub late: u64,
    /// An access review's time, period, trail read and counts per instance (its HTML
    /// page's header); `None` for a report.
    pub review: Option<connect_audit_core::access::ReviewSummary>,
    /// The log file integrity verdict (`report --verify`): the summary line, and the files
    /// not verified (kind, key, verdict, why); `None` when not verified.
    pub integrity: Option<(String, Vec<String>)>,
}

/// What an exporter wrote, returned by [`Exporter::finish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    /// The exporter, as [`Exporter::describe`] names it.
    pub exporter: String,
    /// Records written.
    pub records: u64,
    /// Final paths of the files written, in order (partitions by date); empty for stdout.
    pub outputs: Vec<PathBuf>,
}

/// Builds the exporter a validated spec describes ([`ExporterSpec::check`] or
/// [`ExporterSpec::validated`]) and opens its output, so a temporary file exists from here on
/// ([`Spec::build`]). A credential variable the spec names is taken as not set: see
/// [`build_with`]. The exporter refuses to finish after a failed `write`
/// ([`Error::Incomplete`]).
pub fn build(spec: &ValidExporter) -> Result<Box<dyn Exporter>, Error> {
    build_with(spec, &CredentialVars::default())
}

/// [`build`], with the values of the credential variables the spec names
/// ([`ExporterSpec::credential_var`]), which the program read.
pub fn build_with(spec: &ValidExporter, vars: &CredentialVars) -> Result<Box<dyn Exporter>, Error> {
    build_rows(spec, vars)
}

/// [`build_with`], for exporters of another [`Row`] kind (an access review's entitlements):
/// the spec must have been validated for that kind ([`ExporterSpec::check_for`]).
pub fn build_rows<R: Row>(
    spec: &ValidExporter,
    vars: &CredentialVars,
) -> Result<Box<dyn Exporter<R>>, Error> {
    if spec.record_kind() != R::KIND {
        return Err(Error::Invalid {
            exporter: local_output::describe(spec.kind(), spec.path()),
            problems: vec![format!(
                "validated for {}s, asked to write {}s",
                spec.record_kind().noun(),
                R::KIND.noun()
            )],
        });
    }
    Ok(Box::new(Guarded {
        inner: R::build(spec, vars)?,
        failed: false,
    }))
}

/// Point 3 of the [`Exporter`] contract, kept in one place for every exporter: after a failed
/// `write` the batch may be half written, so `finish` drops the output (no final name) and
/// answers [`Error::Incomplete`].
struct Guarded<R: Row> {
    inner: Box<dyn Exporter<R>>,
    failed: bool,
}

impl<R: Row> Exporter<R> for Guarded<R> {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn write(&mut self, batch: &[R]) -> Result<(), Error> {
        let result = self.inner.write(batch);
        self.failed |= result.is_err();
        result
    }

    fn run_context(&mut self, run: &RunContext) {
        self.inner.run_context(run);
    }

    fn finish(self: Box<Self>) -> Result<ExportSummary, Error> {
        if self.failed {
            return Err(Error::Incomplete {
                exporter: self.inner.describe(),
            });
        }
        self.inner.finish()
    }
}

#[cfg(test)]
mod guard_tests {
    use super::*;

    /// Fails its first write; would otherwise "commit" by finishing successfully.
    struct FailsOnce(bool);

    impl Exporter for FailsOnce {
        fn describe(&self) -> String {
            "flaky".into()
        }

        fn write(&mut self, _batch: &[AuditRecord]) -> Result<(), Error> {
            if std::mem::replace(&mut self.0, false) {
                return Err(Error::Incomplete {
                    exporter: "flaky (simulated write error)".into(),
                });
            }
            Ok(())
        }

        fn finish(self: Box<Self>) -> Result<ExportSummary, Error> {
            Ok(ExportSummary {
                exporter: "flaky".into(),
                records: 0,
                outputs: Vec::new(),
            })
        }
    }

    fn guarded(fails: bool) -> Box<dyn Exporter> {
        Box::new(Guarded {
            inner: Box::new(FailsOnce(fails)),
            failed: false,
        })
    }

    #[test]
    fn finish_after_a_failed_write_is_refused() {
        let mut e = guarded(true);
        assert!(e.write(&[]).is_err());
        assert!(e.write(&[]).is_ok(), "later writes reach the exporter");
        let err = e.finish().unwrap_err();
        assert!(
            matches!(err, Error::Incomplete { ref exporter } if exporter == "flaky"),
            "{err}"
        );
        let mut ok = guarded(false);
        ok.write(&[]).unwrap();
        assert_eq!(ok.finish().unwrap().exporter, "flaky");
    }
}
