//! JSON Lines for pipes and log shippers: one JSON object per record, `\n`-terminated, UTF-8.
//!
//! Each object is the serde form of [`AuditRecord`]: snake_case keys in column order, nulls as
//! `null`, `event_time` as RFC 3339 UTC (`2024-05-02T09:14:02Z`). With `schema = "ocsf"` the
//! lines are the record's OCSF events instead
//! ([`to_ocsf_events`](crate::ocsf::to_ocsf_events): one per record, two for a `CreateUser`
//! that grants privileges).

use std::marker::PhantomData;

use connect_audit_core::AuditRecord;
use serde::{Deserialize, Serialize};

use crate::local_output::{self, Output};
use crate::ocsf::to_ocsf_events;
use crate::spec::{CredentialVars, RecordSchema, Spec, Validated, path_field, schema_problem};
use crate::{Error, ExportSummary, Exporter, RecordKind, Row};

/// `type = "jsonl"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonlSpec {
    /// Output file, or `-` for stdout. Required.
    pub path: String,
    /// The shape of each line: the audit record, or an OCSF event. Default: `audit`.
    #[serde(default)]
    pub schema: RecordSchema,
}

impl JsonlSpec {
    /// A JSON Lines spec of the audit schema.
    pub fn new(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            schema: RecordSchema::Audit,
        }
    }
}

impl Spec for JsonlSpec {
    path_field!();

    /// Beyond the path, which [`ExporterSpec::check`](crate::ExporterSpec::check) checks for
    /// every exporter: OCSF only for audit records.
    fn validate(&self, kind: RecordKind) -> Vec<(&'static str, String)> {
        schema_problem(self.schema, kind).into_iter().collect()
    }

    fn build(&self, _: Validated, _vars: &CredentialVars) -> Result<Box<dyn Exporter>, Error> {
        Ok(Box::new(JsonlExporter::<AuditRecord>::create(self)?))
    }
}

/// Writes records (of a [`Row`] kind: audit records by default) as JSON Lines to a file or
/// stdout. Built from a [`JsonlSpec`].
pub struct JsonlExporter<R: Row = AuditRecord> {
    name: String,
    schema: RecordSchema,
    line: Vec<u8>,
    output: Output,
    records: u64,
    kind: PhantomData<fn(&R)>,
}

impl<R: Row> std::fmt::Debug for JsonlExporter<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonlExporter")
            .field("name", &self.name)
            .field("records", &self.records)
            .finish_non_exhaustive()
    }
}

impl<R: Row> JsonlExporter<R> {
    /// Opens the output: a temporary file beside `spec.path`, or stdout for `-`.
    pub fn create(spec: &JsonlSpec) -> Result<Self, Error> {
        let mut name = local_output::describe("jsonl", &spec.path);
        if spec.schema == RecordSchema::Ocsf {
            name.push_str(" (ocsf)");
        }
        let output = Output::open(&name, &spec.path)?;
        Ok(Self {
            name,
            schema: spec.schema,
            line: Vec::with_capacity(1024),
            output,
            records: 0,
            kind: PhantomData,
        })
    }

    fn write_batch(&mut self, batch: &[R]) -> Result<(), Error> {
        for record in batch {
            self.line.clear();
            // Serialised into memory first, so an I/O error reaches the caller as a plain
            // `io::Error` rather than inside a serde_json error. OCSF is of audit records
            // only (validation refuses it for other kinds).
            let ocsf = (self.schema == RecordSchema::Ocsf)
                .then(|| record.as_audit())
                .flatten();
            let written = match ocsf {
                None => serde_json::to_writer(&mut self.line, record),
                Some(record) => {
                    to_ocsf_events(record)
                        .iter()
                        .enumerate()
                        .try_for_each(|(i, event)| {
                            if i > 0 {
                                self.line.push(b'\n');
                            }
                            serde_json::to_writer(&mut self.line, event)
                        })
                }
            };
            written.map_err(|source| Error::Json {
                exporter: self.name.clone(),
                event_id: record.key(),
                source,
            })?;
            self.line.push(b'\n');
            self.output.append(&self.line)?;
        }
        self.output.end_batch()?;
        self.records += batch.len() as u64;
        Ok(())
    }
}

impl<R: Row> Exporter<R> for JsonlExporter<R> {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn write(&mut self, batch: &[R]) -> Result<(), Error> {
        self.write_batch(batch)
    }

    fn finish(self: Box<Self>) -> Result<ExportSummary, Error> {
        let outputs = self.output.finish()?;
        Ok(ExportSummary {
            exporter: self.name,
            records: self.records,
            outputs,
        })
    }
}
