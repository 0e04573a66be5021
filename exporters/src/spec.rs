//! The registry of exporters, as config: [`ExporterSpec`], one variant per exporter, tagged by
//! `type`. Each variant's spec lives beside its exporter ([`CsvSpec`] in `csv.rs`,
//! [`JsonlSpec`] in `jsonl.rs`, [`ParquetSpec`] in `parquet.rs`, [`HtmlSpec`] in `html/`,
//! [`SiemWebhookSpec`] in `siem/`) with its serde defaults, `deny_unknown_fields` and a pure
//! [`Spec::validate`]. Validation runs once, in [`ExporterSpec::check`] (or
//! [`ExporterSpec::validated`]), and yields a [`ValidExporter`], the only thing
//! [`build`](crate::build) takes; [`Spec::build`] does the I/O and trusts it.
//!
//! Adding an exporter is its module, with a spec that implements [`Spec`], and one line in the
//! registry of [`ExporterSpec`] here.

use std::collections::BTreeMap;

use connect_audit_core::Location;
use serde::{Deserialize, Serialize};

use crate::{
    CsvSpec, Error, Exporter, HtmlSpec, JsonlSpec, ParquetSpec, RecordKind, Secret, SiemWebhookSpec,
};

/// The registry: the enum of specs, tagged by `type`, and its dispatch to each [`Spec`], from
/// one line per exporter (`"csv" => Csv(CsvSpec)`), so the tag and [`ExporterSpec::kind`]
/// cannot disagree.
macro_rules! registry {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[$variant_meta:meta])* $kind:literal => $variant:ident($spec:ty),)*
        }
    ) => {
        $(#[$meta])*
        pub enum $name {
            $($(#[$variant_meta])* #[serde(rename = $kind)] $variant($spec),)*
        }

        impl $name {
            /// The exporter's type name as written in config (`type = "csv"`).
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => $kind,)*
                }
            }

            /// The spec of this variant, as the registry sees it.
            fn spec(&self) -> &dyn Spec {
                match self {
                    $(Self::$variant(spec) => spec,)*
                }
            }

            /// [`spec`](Self::spec), to change.
            fn spec_mut(&mut self) -> &mut dyn Spec {
                match self {
                    $(Self::$variant(spec) => spec,)*
                }
            }
        }
    };
}

registry! {
    /// One configured output. `type` picks the exporter.
    ///
    /// ```toml
    /// [[exporters]]
    /// type = "csv"
    /// path = "out/audit.csv"
    /// timezone = "Asia/Tokyo"
    /// ```
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(tag = "type")]
    // A handful of specs per run, read once: not worth a Box in every match and constructor.
    #[allow(clippy::large_enum_variant)]
    pub enum ExporterSpec {
        /// Comma-separated values for people and spreadsheets.
        "csv" => Csv(CsvSpec),
        /// One JSON object per line, for pipes and log shippers.
        "jsonl" => Jsonl(JsonlSpec),
        /// Typed, compressed columns for the data lake.
        "parquet" => Parquet(ParquetSpec),
        /// Batches of records POSTed to a SIEM: Splunk HEC or a Standard Webhooks receiver.
        "siem-webhook" => SiemWebhook(SiemWebhookSpec),
        /// One self-contained HTML page for auditors: header, charts and a sortable table.
        "html" => Html(HtmlSpec),
    }
}

/// What the spec of one kind of exporter tells the registry: the entry a new exporter
/// implements.
pub trait Spec {
    /// Where it writes: a path, a directory, or `-` for stdout; for an exporter that writes no
    /// file, what messages may show of its destination.
    fn path(&self) -> &str;

    /// The path of a file exporter, to rewrite (`{since}` placeholders, `s3://` staging);
    /// `None` for exporters that write no file.
    fn path_mut(&mut self) -> Option<&mut String>;

    /// Pure validation (no network, disk or credentials) for writing records of `kind`: the
    /// problems of the fields only this exporter has, as `(field, message)`, in field order.
    /// Messages never quote a credential.
    fn validate(&self, kind: RecordKind) -> Vec<(&'static str, String)>;

    /// The environment variable the credential is read from, if the spec names one. The
    /// program reads it and passes its value in [`CredentialVars`]. Default: none.
    fn credential_var(&self) -> Option<&str> {
        None
    }

    /// Builds the exporter and opens its output. It trusts the spec: [`Validated`] says that
    /// [`validate`](Self::validate) found no problem, so the names it parses (a time zone, the
    /// columns) are known. What it still refuses is I/O and what only the run can tell (a
    /// credential variable not passed in `vars`, an `s3://` path not staged).
    fn build(&self, proof: Validated, vars: &CredentialVars) -> Result<Box<dyn Exporter>, Error>;
}

/// The proof [`Spec::build`] asks for: only this crate makes one, from a [`ValidExporter`].
#[derive(Debug, Clone, Copy)]
pub struct Validated(());

/// [`Spec::path`] and [`Spec::path_mut`] of a spec whose output is its `path` field.
macro_rules! path_field {
    () => {
        fn path(&self) -> &str {
            &self.path
        }

        fn path_mut(&mut self) -> Option<&mut String> {
            Some(&mut self.path)
        }
    };
}
pub(crate) use path_field;

impl ExporterSpec {
    /// Where it writes: a path, a directory, or `-` for stdout; for a SIEM webhook, its URL
    /// without credentials, query or fragment ([`redact_url`](crate::siem::redact_url)).
    pub fn path(&self) -> &str {
        self.spec().path()
    }

    /// The path of a file exporter, to rewrite (`{since}` placeholders); `None` for exporters
    /// that write no file.
    pub fn path_mut(&mut self) -> Option<&mut String> {
        self.spec_mut().path_mut()
    }

    /// Whether the path names a folder of files (Parquet partitions by date) rather than one
    /// file.
    pub fn writes_folder(&self) -> bool {
        matches!(self, Self::Parquet(p) if p.partition_by_date)
    }

    /// The environment variable the exporter's credential is read from, if any
    /// ([`Spec::credential_var`]).
    pub fn credential_var(&self) -> Option<&str> {
        self.spec().credential_var()
    }

    /// Validates the exporter configured at `key` (`exporters[2]`), the one validation of an
    /// exporter: calls `problem(key.field, message)` for each problem, in field order, and
    /// gives the [`ValidExporter`] when there is none. Pure: no network, disk or credentials.
    /// Whether two exporters write the same output is for the caller, who sees them all.
    pub fn check(
        &self,
        key: &str,
        problem: &mut impl FnMut(&str, String),
    ) -> Option<ValidExporter> {
        self.check_for(RecordKind::Audit, key, problem)
    }

    /// [`check`](Self::check), for an exporter of records of `kind` (an access review's
    /// entitlements: CSV, JSON Lines, Parquet or HTML, their columns, no OCSF).
    pub fn check_for(
        &self,
        kind: RecordKind,
        key: &str,
        problem: &mut impl FnMut(&str, String),
    ) -> Option<ValidExporter> {
        // The problems of the path (an `s3://` one must parse and name an object), then the
        // spec's own, in field order.
        let path = self.path();
        let path_problem = match Location::parse(path) {
            _ if !path.starts_with("s3://") => None,
            Err(e) => Some(e.to_string()),
            Ok(Location::S3 { prefix, .. })
                if !self.writes_folder() && (prefix.is_empty() || path.ends_with('/')) =>
            {
                Some(format!(
                    "`{path}` names no object: give its key, e.g. s3://bucket/audit/audit-{{since}}.csv"
                ))
            }
            Ok(_) => None,
        };
        let problems: Vec<(String, String)> = path_problem
            .map(|message| ("path".to_owned(), message))
            .into_iter()
            .chain(
                self.spec()
                    .validate(kind)
                    .into_iter()
                    .map(|(f, m)| (f.to_owned(), m)),
            )
            .collect();
        let valid = problems.is_empty();
        for (field, message) in problems {
            problem(&format!("{key}.{field}"), message);
        }
        valid.then(|| ValidExporter(self.clone(), kind))
    }

    /// [`check`](Self::check) for a spec built in code, not read from config: the problems,
    /// if any, in one [`Error::Invalid`] that names the exporter and each field.
    pub fn validated(self) -> Result<ValidExporter, Error> {
        let mut problems = Vec::new();
        match self.check("", &mut |field, message| {
            problems.push(format!("{}: {message}", field.trim_start_matches('.')));
        }) {
            Some(valid) => Ok(valid),
            None => Err(Error::Invalid {
                exporter: crate::local_output::describe(self.kind(), self.path()),
                problems,
            }),
        }
    }
}

/// An exporter spec that passed [`ExporterSpec::check`]: the only input of
/// [`build`](crate::build). It reads as its [`ExporterSpec`]; what may change after
/// validation is only where the files go ([`path_mut`](Self::path_mut),
/// [`partition_file_mut`](Self::partition_file_mut)), which the program rewrites for `{since}`
/// names and `s3://` staging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidExporter(ExporterSpec, RecordKind);

impl ValidExporter {
    /// What a report writes when no exporter is configured: JSON Lines on stdout.
    pub fn stdout_jsonl() -> Self {
        Self(
            ExporterSpec::Jsonl(crate::JsonlSpec::new(crate::local_output::STDOUT)),
            RecordKind::Audit,
        )
    }

    /// CSV on stdout, of records of `kind`: what an access review writes when no exporter is
    /// configured.
    pub fn stdout_csv_of(kind: RecordKind) -> Self {
        Self(
            ExporterSpec::Csv(CsvSpec::new(crate::local_output::STDOUT)),
            kind,
        )
    }

    /// The kind of record it was validated for.
    pub fn record_kind(&self) -> RecordKind {
        self.1
    }

    /// The output path of a file exporter, to rewrite: the result must still name a file (or
    /// the folder of a partitioned Parquet exporter). `None` for exporters that write no file.
    pub fn path_mut(&mut self) -> Option<&mut String> {
        self.0.path_mut()
    }

    /// The file name in each partition of a Parquet exporter that partitions by date, to
    /// rewrite: the result must still be a plain file name
    /// ([`is_file_name`](crate::parquet::is_file_name)). `None` for every other exporter.
    pub fn partition_file_mut(&mut self) -> Option<&mut String> {
        match &mut self.0 {
            ExporterSpec::Parquet(p) if p.partition_by_date => Some(&mut p.partition_file),
            _ => None,
        }
    }

    /// Builds the exporter ([`Spec::build`]): the proof of validation is this value.
    pub(crate) fn build(&self, vars: &CredentialVars) -> Result<Box<dyn Exporter>, Error> {
        self.0.spec().build(Validated(()), vars)
    }
}

impl std::ops::Deref for ValidExporter {
    type Target = ExporterSpec;

    fn deref(&self) -> &ExporterSpec {
        &self.0
    }
}

/// The problem of `schema = "ocsf"` for records that are not audit records.
pub(crate) fn schema_problem(
    schema: RecordSchema,
    kind: RecordKind,
) -> Option<(&'static str, String)> {
    (schema == RecordSchema::Ocsf && kind != RecordKind::Audit).then(|| {
        (
            "schema",
            format!(
                "`ocsf` is the shape of audit events; {}s are written as they are (leave `schema` out)",
                kind.noun()
            ),
        )
    })
}

/// What a JSON Lines, Parquet or SIEM webhook exporter writes: `schema = "audit" | "ocsf"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordSchema {
    /// The audit record as it is: every column, in order.
    #[default]
    Audit,
    /// An OCSF 1.3.0 event per record (Account Change, User Access Management or API
    /// Activity), for SIEMs and security data lakes.
    Ocsf,
}

/// The values of the environment variables that specs name for their credentials
/// ([`ExporterSpec::credential_var`]: `token_env`, `secret_env`). The program reads them and
/// hands them to [`build_with`](crate::build_with): no library crate reads its environment.
/// A variable that is not set is left out. `Debug` shows the names only.
#[derive(Clone, Default)]
pub struct CredentialVars(BTreeMap<String, Secret>);

impl CredentialVars {
    /// Records the value of the variable `name`.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), Secret::new(value));
    }

    /// The value of the variable `name`; `None` when it was not set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(Secret::expose)
    }
}

impl std::fmt::Debug for CredentialVars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// The problem of a `timezone` field, if it is not an IANA time zone name.
pub(crate) fn timezone_problem(timezone: &str) -> Option<(&'static str, String)> {
    jiff::tz::TimeZone::get(timezone).err().map(|e| {
        (
            "timezone",
            format!("`{timezone}` is not an IANA time zone: {e}"),
        )
    })
}

/// `"UTC"`: the default time zone of the exporters that show times.
pub(crate) fn utc() -> String {
    "UTC".to_owned()
}
