//! Exporter specs: the registry of exporters, as config. Each spec is pure data with pure
//! validation; `connect-audit-exporters` builds the exporter (and does the I/O).

use serde::{Deserialize, Serialize};

/// One configured output. `type` picks the exporter.
///
/// ```toml
/// [[exporters]]
/// type = "csv"
/// path = "out/audit.csv"
/// timezone = "Asia/Tokyo"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ExporterSpec {
    /// Comma-separated values for people and spreadsheets.
    Csv(CsvSpec),
    /// One JSON object per line, for pipes and log shippers.
    Jsonl(JsonlSpec),
    /// Typed, compressed columns for the data lake.
    Parquet(ParquetSpec),
}

impl ExporterSpec {
    /// The exporter's type name as written in config.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Csv(_) => "csv",
            Self::Jsonl(_) => "jsonl",
            Self::Parquet(_) => "parquet",
        }
    }

    /// Where it writes: a path, a directory, or `-` for stdout.
    pub fn path(&self) -> &str {
        match self {
            Self::Csv(s) => &s.path,
            Self::Jsonl(s) => &s.path,
            Self::Parquet(s) => &s.path,
        }
    }
}

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

/// `type = "jsonl"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonlSpec {
    /// Output file, or `-` for stdout. Required.
    pub path: String,
}

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
}

fn utc() -> String {
    "UTC".to_owned()
}

fn yes() -> bool {
    true
}

fn row_group_size() -> usize {
    65_536
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

impl ParquetSpec {
    /// A Parquet spec with defaults for everything but the path.
    pub fn new(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            partition_by_date: false,
            row_group_size: row_group_size(),
        }
    }
}
