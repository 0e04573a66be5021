//! JSON Lines for pipes and log shippers: one JSON object per record, `\n`-terminated, UTF-8.
//!
//! Each object is the serde form of [`AuditRecord`]: snake_case keys in column order, nulls as
//! `null`, `event_time` as RFC 3339 UTC (`2024-05-02T09:14:02Z`). With `schema = "ocsf"` the
//! lines are the record's OCSF events instead
//! ([`to_ocsf_events`](crate::ocsf::to_ocsf_events): one per record, two for a `CreateUser`
//! that grants privileges).

use connect_audit_core::AuditRecord;
use serde::{Deserialize, Serialize};

use crate::local_output::{self, Output};
use crate::ocsf::to_ocsf_events;
use crate::spec::{CredentialVars, RecordSchema, Spec, Validated, path_field};
use crate::{Error, ExportSummary, Exporter};

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

    /// Nothing beyond the path, which [`ExporterSpec::validate`](crate::ExporterSpec::validate)
    /// checks for every exporter.
    fn validate(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    fn build(&self, _: Validated, _vars: &CredentialVars) -> Result<Box<dyn Exporter>, Error> {
        Ok(Box::new(JsonlExporter::create(self)?))
    }
}

/// Writes records as JSON Lines to a file or stdout. Built from a [`JsonlSpec`].
pub struct JsonlExporter {
    name: String,
    schema: RecordSchema,
    line: Vec<u8>,
    output: Output,
    records: u64,
}

impl std::fmt::Debug for JsonlExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonlExporter")
            .field("name", &self.name)
            .field("records", &self.records)
            .finish_non_exhaustive()
    }
}

impl JsonlExporter {
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
        })
    }

    fn write_batch(&mut self, batch: &[AuditRecord]) -> Result<(), Error> {
        for record in batch {
            self.line.clear();
            // Serialised into memory first, so an I/O error reaches the caller as a plain
            // `io::Error` rather than inside a serde_json error.
            let written = match self.schema {
                RecordSchema::Audit => serde_json::to_writer(&mut self.line, record),
                RecordSchema::Ocsf => {
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
                event_id: record.event_id.clone(),
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

impl Exporter for JsonlExporter {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn write(&mut self, batch: &[AuditRecord]) -> Result<(), Error> {
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
