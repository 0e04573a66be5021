//! Parquet for the data lake: typed columns ([`arrow_schema()`]), zstd, dictionary encoding.
//!
//! - `event_time` is `TIMESTAMP(MICROS, UTC)` (sub-microsecond digits are dropped), the five
//!   enum columns are dictionary-encoded strings, everything else nullable UTF-8.
//! - Rows are grouped `row_group_size` at a time; each [`write`](Exporter::write) becomes Arrow
//!   columns once, so memory holds at most one open row group per file.
//! - One file at `path`, or with `partition_by_date` one file per event date (UTC) in Hive
//!   layout: `path/date=YYYY-MM-DD/part-00000.parquet`, replacing that file if it exists.
//! - Files appear under their final names only in [`finish`](Exporter::finish). A run without
//!   records still writes a valid, empty file with the schema, or no partition at all.
//! - With `schema = "ocsf"` the columns are [`ocsf::arrow_schema()`](crate::ocsf::arrow_schema)
//!   instead: top-level OCSF fields (`time` in milliseconds) and the whole event as JSON text
//!   in `event`. Files and partitions are the same.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ::parquet::arrow::ArrowWriter;
use ::parquet::basic::{Compression, ZstdLevel};
use ::parquet::errors::ParquetError;
use ::parquet::file::properties::WriterProperties;
use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::types::Int8Type;
use arrow_array::{
    ArrayRef, DictionaryArray, Int8Array, Int32Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow_schema::{ArrowError, DataType, Field, SchemaRef};
use connect_audit_core::record::arrow_schema;
use connect_audit_core::{
    ActorKind, AtomicFile, AuditRecord, Category, ChangeBasis, NameSource, Origin, TargetKind,
};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::local_output::{self, STDOUT};
use crate::ocsf;
use crate::spec::{CredentialVars, RecordSchema, Spec, Validated, path_field, schema_problem};
use crate::{Error, ExportSummary, Exporter, RecordKind, Row};

/// `type = "parquet"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParquetSpec {
    /// Output file, or the directory of `date=YYYY-MM-DD/` partitions. Required.
    pub path: String,
    /// Write Hive-style `date=YYYY-MM-DD/part-00000.parquet` files under `path` (by event date,
    /// UTC) instead of one file. Default: `false`.
    #[serde(default)]
    pub partition_by_date: bool,
    /// Rows per row group. Default: 65536.
    #[serde(default = "row_group_size")]
    pub row_group_size: usize,
    /// The columns: the audit record's, or OCSF's. Default: `audit`.
    #[serde(default)]
    pub schema: RecordSchema,
    /// The file name in each `date=` partition; `{since}` and `{until}` become the run's
    /// window (`20240501T000000Z`). A run replaces the files of its name. Default:
    /// `part-00000.parquet`; incremental runs (`report --incremental`, `run`) use
    /// `part-{since}.parquet` unless this names `{since}`, so each run adds its own files.
    #[serde(default = "partition_file")]
    pub partition_file: String,
}

fn row_group_size() -> usize {
    65_536
}

fn partition_file() -> String {
    "part-00000.parquet".to_owned()
}

impl ParquetSpec {
    /// A Parquet spec with defaults for everything but the path.
    pub fn new(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            partition_by_date: false,
            row_group_size: row_group_size(),
            schema: RecordSchema::Audit,
            partition_file: partition_file(),
        }
    }
}

impl Spec for ParquetSpec {
    path_field!();

    fn validate(&self, kind: RecordKind) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if !is_file_name(&self.partition_file) {
            problems.push((
                "partition_file",
                format!(
                    "`{}` must be a file name (no `/`, not `.` or `..`)",
                    self.partition_file.escape_default()
                ),
            ));
        }
        if self.path == STDOUT {
            problems.push(("path", "Parquet cannot be written to stdout".into()));
        }
        if self.row_group_size == 0 {
            problems.push(("row_group_size", "must be at least 1".into()));
        }
        problems.extend(schema_problem(self.schema, kind));
        problems
    }

    fn build(&self, _: Validated, _vars: &CredentialVars) -> Result<Box<dyn Exporter>, Error> {
        Ok(Box::new(ParquetExporter::<AuditRecord>::create(self)?))
    }
}

/// Whether `name` is a plain file name: not empty, no path separator, not `.`/`..`, no
/// control character.
pub fn is_file_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control)
}

/// Writes records (of a [`Row`] kind: audit records by default) as Parquet, to one file or
/// to date partitions. Built from a [`ParquetSpec`].
pub struct ParquetExporter<R: Row = AuditRecord> {
    name: String,
    /// OCSF's columns instead of the kind's own (audit records only).
    ocsf: bool,
    properties: WriterProperties,
    layout: Layout,
    records: u64,
    kind: PhantomData<fn(&R)>,
}

/// An open file: its final name and the writer over its temporary file.
type OpenFile = (PathBuf, ArrowWriter<AtomicFile>);

enum Layout {
    File(Box<OpenFile>),
    ByDate {
        root: PathBuf,
        /// The file name in each partition.
        file_name: String,
        partitions: BTreeMap<Date, OpenFile>,
    },
}

impl<R: Row> std::fmt::Debug for ParquetExporter<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetExporter")
            .field("name", &self.name)
            .field("records", &self.records)
            .finish_non_exhaustive()
    }
}

impl<R: Row> ParquetExporter<R> {
    /// For a single file, opens a temporary file beside `spec.path` (a validated spec);
    /// partitions are opened as their first record arrives. Validation refused stdout and row
    /// groups of no rows, which a Parquet writer cannot have.
    pub(crate) fn create(spec: &ParquetSpec) -> Result<Self, Error> {
        let ocsf = spec.schema == RecordSchema::Ocsf && R::KIND == RecordKind::Audit;
        let name = match (spec.partition_by_date, ocsf) {
            (true, false) => format!("parquet {} (by date)", spec.path),
            (true, true) => format!("parquet {} (by date, ocsf)", spec.path),
            (false, false) => local_output::describe("parquet", &spec.path),
            (false, true) => format!("{} (ocsf)", local_output::describe("parquet", &spec.path)),
        };
        let path = local_output::local_path(&name, &spec.path)?;
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_dictionary_enabled(true)
            .set_max_row_group_row_count(Some(spec.row_group_size))
            .build();
        let layout = if spec.partition_by_date {
            Layout::ByDate {
                root: path,
                file_name: spec.partition_file.clone(),
                partitions: BTreeMap::new(),
            }
        } else {
            Layout::File(Box::new(open(
                &name,
                path,
                &properties,
                Self::schema(ocsf),
            )?))
        };
        Ok(Self {
            name,
            ocsf,
            properties,
            layout,
            records: 0,
            kind: PhantomData,
        })
    }

    /// The Arrow schema of the files.
    fn schema(ocsf: bool) -> SchemaRef {
        if ocsf {
            ocsf::arrow_schema()
        } else {
            R::arrow_schema()
        }
    }

    fn write_batch(&mut self, batch: &[R]) -> Result<(), Error> {
        if batch.is_empty() {
            return Ok(());
        }
        match &mut self.layout {
            Layout::File(file) => {
                let (path, writer) = &mut **file;
                let rows: Vec<&R> = batch.iter().collect();
                write_rows(&self.name, self.ocsf, path, writer, &rows)?;
            }
            Layout::ByDate {
                root,
                file_name,
                partitions,
            } => {
                let mut by_date: BTreeMap<Date, Vec<&R>> = BTreeMap::new();
                for record in batch {
                    let date = TimeZone::UTC.to_datetime(record.time()).date();
                    by_date.entry(date).or_default().push(record);
                }
                for (date, rows) in by_date {
                    let (path, writer) = match partitions.entry(date) {
                        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::btree_map::Entry::Vacant(e) => {
                            let path = root.join(format!("date={date}")).join(&*file_name);
                            let schema = Self::schema(self.ocsf);
                            e.insert(open(&self.name, path, &self.properties, schema)?)
                        }
                    };
                    write_rows(&self.name, self.ocsf, path, writer, &rows)?;
                }
            }
        }
        self.records += batch.len() as u64;
        Ok(())
    }
}

impl<R: Row> Exporter<R> for ParquetExporter<R> {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn write(&mut self, batch: &[R]) -> Result<(), Error> {
        self.write_batch(batch)
    }

    fn finish(self: Box<Self>) -> Result<ExportSummary, Error> {
        let Self {
            name,
            layout,
            records,
            ..
        } = *self;
        let open_files = match layout {
            Layout::File(file) => vec![*file],
            Layout::ByDate { partitions, .. } => partitions.into_values().collect(),
        };
        // Every footer is written before any file is renamed, so a failure here leaves no
        // partition of this run under its final name.
        let mut finished = Vec::with_capacity(open_files.len());
        for (path, writer) in open_files {
            let file = writer
                .into_inner()
                .map_err(|source| parquet_error(&name, &path, source))?;
            finished.push(file);
        }
        let outputs = finished
            .into_iter()
            .map(|file| local_output::commit_file(&name, file))
            .collect::<Result<_, _>>()?;
        Ok(ExportSummary {
            exporter: name,
            records,
            outputs,
        })
    }
}

fn parquet_error(exporter: &str, path: &Path, source: ParquetError) -> Error {
    Error::Parquet {
        exporter: exporter.to_owned(),
        path: path.to_owned(),
        source: Box::new(source),
    }
}

fn open(
    exporter: &str,
    path: PathBuf,
    properties: &WriterProperties,
    schema: SchemaRef,
) -> Result<OpenFile, Error> {
    let file = local_output::create_file(exporter, &path)?;
    let writer = ArrowWriter::try_new(file, schema, Some(properties.clone()))
        .map_err(|source| parquet_error(exporter, &path, source))?;
    Ok((path, writer))
}

fn write_rows<R: Row>(
    exporter: &str,
    ocsf: bool,
    path: &Path,
    writer: &mut ArrowWriter<AtomicFile>,
    rows: &[&R],
) -> Result<(), Error> {
    let batch = if ocsf {
        let audit: Vec<&AuditRecord> = rows.iter().filter_map(|r| r.as_audit()).collect();
        ocsf::record_batch(&audit)
    } else {
        R::record_batch(rows)
    };
    let batch = batch.map_err(|source| Error::Arrow {
        exporter: exporter.to_owned(),
        source: Box::new(source),
    })?;
    writer
        .write(&batch)
        .map_err(|source| parquet_error(exporter, path, source))
}

/// The records as Arrow columns of [`arrow_schema()`].
pub(crate) fn audit_batch(rows: &[&AuditRecord]) -> Result<RecordBatch, ArrowError> {
    let schema = arrow_schema();
    let columns = schema
        .fields()
        .iter()
        .map(|field| column(field.name(), rows))
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema, columns)
}

fn column(name: &str, rows: &[&AuditRecord]) -> Result<ArrayRef, ArrowError> {
    let text = |value: fn(&AuditRecord) -> Option<&str>| -> ArrayRef {
        Arc::new(rows.iter().map(|r| value(r)).collect::<StringArray>())
    };
    Ok(match name {
        "event_time" => Arc::new(
            TimestampMicrosecondArray::from_iter_values(
                rows.iter().map(|r| r.event_time.as_microsecond()),
            )
            .with_timezone("UTC"),
        ),
        "event_id" => text(|r| Some(&r.event_id)),
        "target_index" => Arc::new(Int32Array::from_iter_values(
            // At most MAX_TARGETS (25): always fits.
            rows.iter()
                .map(|r| i32::try_from(r.target_index).unwrap_or(i32::MAX)),
        )),
        "event_name" => text(|r| Some(&r.event_name)),
        "category" => dictionary(Category::ALL, Category::as_str, rows, |r| Some(r.category))?,
        "account_id" => text(|r| Some(&r.account_id)),
        "region" => text(|r| Some(&r.region)),
        "instance_id" => text(|r| r.instance_id.as_deref()),
        "actor_kind" => dictionary(ActorKind::ALL, ActorKind::as_str, rows, |r| {
            Some(r.actor_kind)
        })?,
        "actor_id" => text(|r| r.actor_id.as_deref()),
        "actor_name" => text(|r| r.actor_name.as_deref()),
        "actor_arn" => text(|r| r.actor_arn.as_deref()),
        "target_kind" => dictionary(TargetKind::ALL, TargetKind::as_str, rows, |r| {
            Some(r.target_kind)
        })?,
        "target_id" => text(|r| r.target_id.as_deref()),
        "target_name" => text(|r| r.target_name.as_deref()),
        "name_source" => dictionary(NameSource::ALL, NameSource::as_str, rows, |r| {
            Some(r.name_source)
        })?,
        "origin" => dictionary(Origin::ALL, Origin::as_str, rows, |r| Some(r.origin))?,
        "source_ip" => text(|r| r.source_ip.as_deref()),
        "user_agent" => text(|r| r.user_agent.as_deref()),
        "error_code" => text(|r| r.error_code.as_deref()),
        "error_message" => text(|r| r.error_message.as_deref()),
        "request_parameters" => text(|r| r.request_parameters.as_deref()),
        "response_elements" => text(|r| r.response_elements.as_deref()),
        "change" => text(|r| r.change.as_deref()),
        "before" => text(|r| r.before.as_deref()),
        "after" => text(|r| r.after.as_deref()),
        "change_basis" => dictionary(ChangeBasis::ALL, ChangeBasis::as_str, rows, |r| {
            r.change_basis
        })?,
        "findings" => {
            let mut list = ListBuilder::new(StringBuilder::new()).with_field(Arc::new(Field::new(
                "item",
                DataType::Utf8,
                false,
            )));
            for row in rows {
                for finding in &row.findings {
                    list.values().append_value(finding);
                }
                list.append(true);
            }
            Arc::new(list.finish())
        }
        other => {
            return Err(ArrowError::SchemaError(format!(
                "column `{other}` of the audit schema has no writer"
            )));
        }
    })
}

/// A dictionary column whose dictionary is every value of the enum, in declaration order, so
/// keys mean the same in every batch and file.
fn dictionary<T: Copy + PartialEq>(
    all: &[T],
    text: fn(T) -> &'static str,
    rows: &[&AuditRecord],
    value: fn(&AuditRecord) -> Option<T>,
) -> Result<ArrayRef, ArrowError> {
    let keys: Int8Array = rows
        .iter()
        .map(|r| {
            let v = value(r)?;
            all.iter()
                .position(|a| *a == v)
                .and_then(|i| i8::try_from(i).ok())
        })
        .collect();
    let values = StringArray::from_iter_values(all.iter().map(|a| text(*a)));
    Ok(Arc::new(DictionaryArray::<Int8Type>::try_new(
        keys,
        Arc::new(values),
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_batch_has_the_audit_schema() {
        let record: AuditRecord = serde_json::from_value(serde_json::json!({
            "event_time": "2024-05-02T09:14:02.123456789Z",
            "event_id": "e1",
            "event_name": "CreateUser",
            "category": "user",
            "account_id": "111122223333",
            "region": "us-east-1",
            "actor_kind": "connect_user",
            "target_kind": "user",
            "name_source": "snapshot",
            "origin": "console",
        }))
        .unwrap();
        let batch = audit_batch(&[&record]).unwrap();
        assert_eq!(batch.schema(), arrow_schema());
        let times = batch
            .column(0)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(times.value(0), 1_714_641_242_123_456);
    }
}
