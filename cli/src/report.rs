//! `connect-audit report`: scan, name, export.

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::Context as _;
use connect_audit_config::{CsvSpec, ExporterSpec, JsonlSpec, ParquetSpec, Settings, ValidReport};
use connect_audit_core::{AuditRecord, Location, Store};
use connect_audit_exporters::{ExportSummary, Exporter};
use connect_audit_query::local::{
    BadInput, ScanOptions, ScanSink, ScanSummary, SinkError, TrailScanner,
};
use figment::Figment;

use crate::args::{Format, ReportArgs};
use crate::output::Reporter;
use crate::{ExitCode, UsageError};

/// Merges the flags of `report` over the layered config.
pub fn merge_flags(mut figment: Figment, args: &ReportArgs) -> Result<Figment, UsageError> {
    if let Some(v) = &args.trail {
        figment = figment.merge(("report.trail", v));
    }
    if let Some(v) = &args.snapshot {
        figment = figment.merge(("report.snapshot", v));
    }
    if let Some(v) = &args.since {
        figment = figment.merge(("report.since", v));
    }
    if let Some(v) = &args.until {
        figment = figment.merge(("report.until", v));
    }
    if let Some(v) = &args.events {
        figment = figment.merge(("report.events", v));
    }
    if args.tolerate_bad_files {
        figment = figment.merge(("report.tolerate_bad_files", true));
    }
    if let Some(v) = args.threads {
        figment = figment.merge(("report.threads", v));
    }
    if let Some(engine) = args.engine {
        let name = match engine {
            crate::args::EngineArg::Local => "local",
            crate::args::EngineArg::Athena => "athena",
        };
        figment = figment.merge(("report.engine", name));
    }
    for (key, value) in [
        ("report.accounts", &args.accounts),
        ("report.regions", &args.regions),
        ("report.instance_ids", &args.instance_ids),
    ] {
        if let Some(v) = value {
            figment = figment.merge((key, v));
        }
    }
    if let Some(spec) = shorthand_exporter(args)? {
        figment = figment.merge(("exporters", vec![spec]));
    }
    Ok(figment)
}

/// `--format`/`--output`: one exporter instead of the configured ones.
fn shorthand_exporter(args: &ReportArgs) -> Result<Option<ExporterSpec>, UsageError> {
    let format = match (args.format, args.output.as_deref()) {
        (None, None) => return Ok(None),
        (Some(f), _) => f,
        (None, Some(path)) => {
            let extension = std::path::Path::new(path)
                .extension()
                .map(|e| e.to_string_lossy().to_ascii_lowercase());
            match extension.as_deref() {
                Some("csv") => Format::Csv,
                Some("jsonl" | "json") => Format::Jsonl,
                Some("parquet") => Format::Parquet,
                _ => {
                    return Err(UsageError(format!(
                        "cannot tell the format of --output {path}: add --format csv|jsonl|parquet"
                    )));
                }
            }
        }
    };
    let path = args.output.clone().unwrap_or_else(|| "-".to_owned());
    Ok(Some(match format {
        Format::Csv => ExporterSpec::Csv(CsvSpec::new(path)),
        Format::Jsonl => ExporterSpec::Jsonl(JsonlSpec { path }),
        Format::Parquet if path == "-" => {
            return Err(UsageError(
                "Parquet cannot go to stdout: give --output FILE.parquet or a directory".into(),
            ));
        }
        Format::Parquet => {
            let mut spec = ParquetSpec::new(path.clone());
            spec.partition_by_date = !path.ends_with(".parquet");
            ExporterSpec::Parquet(spec)
        }
    }))
}

/// The configured exporters, or JSON Lines on stdout when none is configured.
pub fn build_exporters(settings: &Settings) -> anyhow::Result<Vec<Box<dyn Exporter>>> {
    let specs = if settings.exporters.is_empty() {
        vec![ExporterSpec::Jsonl(JsonlSpec { path: "-".into() })]
    } else {
        settings.exporters.clone()
    };
    let mut exporters = Vec::with_capacity(specs.len());
    for spec in &specs {
        let exporter = connect_audit_exporters::build(spec).with_context(|| {
            format!(
                "cannot start the {} exporter for {}",
                spec.kind(),
                spec.path()
            )
        })?;
        exporters.push(exporter);
    }
    Ok(exporters)
}

/// Finishes every exporter: its output appears under its final name only now.
pub fn finish_exporters(exporters: Vec<Box<dyn Exporter>>) -> anyhow::Result<Vec<ExportSummary>> {
    let mut outputs = Vec::new();
    for exporter in exporters {
        let name = exporter.describe();
        outputs.push(
            exporter
                .finish()
                .with_context(|| format!("exporter {name} failed"))?,
        );
    }
    Ok(outputs)
}

/// Feeds every exporter and the progress display.
pub struct FanOut<'a> {
    /// The exporters.
    pub exporters: Vec<Box<dyn Exporter>>,
    /// The progress display.
    pub reporter: &'a Reporter,
    /// Files to read.
    pub files: u64,
    /// Files read.
    pub done: u64,
}

impl ScanSink for FanOut<'_> {
    fn records(&mut self, batch: Vec<AuditRecord>) -> Result<(), SinkError> {
        for exporter in &mut self.exporters {
            exporter.write(&batch)?;
        }
        Ok(())
    }

    fn files_found(&mut self, files: u64, bytes: u64) {
        self.files = files;
        self.reporter.files_found(files, bytes);
    }

    fn file_scanned(&mut self, path: &std::path::Path, bytes: u64) {
        self.done += 1;
        self.reporter
            .file_scanned(self.done, self.files, bytes, path);
    }

    fn bad_input(&mut self, problem: &BadInput) {
        self.reporter.bad_input(problem);
    }
}

/// Runs a report with validated settings.
pub fn run(
    settings: &Settings,
    valid: ValidReport,
    reporter: &Reporter,
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let is_s3 = |l: &Location| matches!(l, Location::S3 { .. });
    let s3 = (is_s3(&valid.trail) || valid.snapshot.as_ref().is_some_and(is_s3)).then(|| {
        runtime.block_on(async {
            crate::aws::s3_client(&crate::aws::sdk_config(settings.snapshot.max_attempts).await)
        })
    });
    let directory = match &valid.snapshot {
        Some(root) => {
            let store = Store::open(root, s3.as_ref())?;
            runtime
                .block_on(connect_audit_core::store::load_directory(&store))
                .with_context(|| format!("cannot load the snapshot store {root}"))?
        }
        None => connect_audit_core::Directory::new(),
    };
    let exporters = build_exporters(settings)?;
    let mut options = ScanOptions::new(valid.window, valid.events.clone());
    options.scope = valid.scope.clone();
    if let Some(threads) = settings.report.threads {
        options.threads = threads;
    }
    let snapshot_names = directory.snapshot_len();
    let trail = Store::open(&valid.trail, s3.as_ref())?;
    let scanner =
        TrailScanner::new(trail, directory, options).with_runtime(runtime.handle().clone());
    let mut sink = FanOut {
        exporters,
        reporter,
        files: 0,
        done: 0,
    };
    let outcome = scanner.scan(&mut sink);
    reporter.finish();
    let summary = outcome.with_context(|| format!("scan of {} failed", valid.trail))?;
    let outputs = finish_exporters(sink.exporters)?;
    reporter.summary(&summary_text(
        &valid,
        &summary,
        &outputs,
        snapshot_names,
        started,
    ));
    if summary.has_bad_input() && !settings.report.tolerate_bad_files {
        return Ok(ExitCode::BadInput);
    }
    Ok(ExitCode::Success)
}

fn summary_text(
    valid: &ValidReport,
    s: &ScanSummary,
    outputs: &[ExportSummary],
    snapshot_names: usize,
    started: Instant,
) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "connect-audit: report of {} for {} .. {} (until exclusive), {:.1}s",
        valid.trail,
        valid.window.since,
        valid.window.until,
        started.elapsed().as_secs_f64()
    );
    let _ = writeln!(
        t,
        "  files:   {} found, {} outside the window, {} read ({:.1} MiB), {} bad",
        s.files_found,
        s.files_pruned,
        s.files_read,
        mib(s.bytes_read),
        s.files_bad
    );
    let _ = writeln!(
        t,
        "  records: {} seen, {} audited events written, {} duplicate deliveries dropped, {} bad",
        s.records_seen, s.records_matched, s.duplicates, s.records_bad
    );
    let _ = writeln!(
        t,
        "  names:   {} from the snapshot, {} rows with names unresolved",
        snapshot_names, s.names_unresolved
    );
    for o in outputs {
        let _ = writeln!(t, "  output:  {} ({} records)", o.exporter, o.records);
    }
    if s.has_bad_input() {
        let _ = writeln!(
            t,
            "  warning: {} bad files and {} bad records were skipped (listed above)",
            s.files_bad, s.records_bad
        );
    }
    t
}

#[allow(clippy::cast_precision_loss)]
fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
