//! `connect-audit report`: scan, name, export.

use connect_audit_core::redact::Redaction;
use std::fmt::Write as _;
use std::time::Instant;

use anyhow::Context as _;
use connect_audit_config::{
    CsvSpec, ExporterSpec, HtmlSpec, JsonlSpec, ParquetSpec, Settings, ValidExporter,
    ValidIncremental, ValidReport,
};
use connect_audit_core::history::{History, load_snapshot};
use connect_audit_core::objects::ObjectLedger;
use connect_audit_core::{AuditRecord, ChangeBasis, Location, Scope, Store, Window};
use connect_audit_exporters::destination::{S3Outputs, Uploaded};
use connect_audit_exporters::{CredentialVars, ExportSummary, Exporter, RunContext};
use connect_audit_query::local::{EarlyRow, ScanOptions, ScanSummary, Simd, TrailScanner};
use connect_audit_query::stage::ChangeStage;
use connect_audit_query::{BadInput, ScanSink, SinkError};
use figment::Figment;

use crate::args::{Format, ReportArgs, RunArgs};
use crate::incremental::{self, DropDelivered, Incremental};
use crate::terminal::Reporter;
use crate::{ExitCode, UsageError};

/// Merges the flags of `report` over the layered config.
pub fn merge_flags(mut figment: Figment, args: &ReportArgs) -> Result<Figment, UsageError> {
    if let Some(v) = &args.trail {
        figment = connect_audit_config::flag(figment, "report.trail", v);
    }
    if let Some(v) = &args.snapshot {
        figment = connect_audit_config::flag(figment, "report.snapshot", v);
    }
    if let Some(v) = &args.since {
        figment = connect_audit_config::flag(figment, "report.since", v);
    }
    if let Some(v) = &args.until {
        figment = connect_audit_config::flag(figment, "report.until", v);
    }
    if let Some(v) = &args.events {
        figment = connect_audit_config::flag(figment, "report.events", v);
    }
    if args.tolerate_bad_files {
        figment = connect_audit_config::flag(figment, "report.tolerate_bad_files", true);
    }
    if args.verify {
        figment = connect_audit_config::flag(figment, "report.verify", true);
    }
    if args.tolerate_integrity {
        figment = connect_audit_config::flag(figment, "report.tolerate_integrity", true);
    }
    if let Some(v) = args.threads {
        figment = connect_audit_config::flag(figment, "report.threads", v);
    }
    if let Some(engine) = args.engine {
        let name = match engine {
            crate::args::EngineArg::Local => "local",
            crate::args::EngineArg::Athena => "athena",
        };
        figment = connect_audit_config::flag(figment, "report.engine", name);
    }
    for (key, value) in [
        ("report.accounts", &args.accounts),
        ("report.regions", &args.regions),
        ("report.instance_ids", &args.instance_ids),
    ] {
        if let Some(v) = value {
            figment = connect_audit_config::flag(figment, key, v);
        }
    }
    if let Some(spec) = shorthand_exporter(args.format, args.output.as_deref())? {
        figment = connect_audit_config::flag(figment, "exporters", vec![spec]);
    }
    Ok(figment)
}

/// Merges the flags of `run` over the layered config.
pub fn merge_run_flags(mut figment: Figment, args: &RunArgs) -> Figment {
    if let Some(v) = &args.until {
        figment = connect_audit_config::flag(figment, "report.until", v);
    }
    if args.tolerate_bad_files {
        figment = connect_audit_config::flag(figment, "report.tolerate_bad_files", true);
    }
    figment
}

/// `--format`/`--output`: one exporter instead of the configured ones.
pub fn shorthand_exporter(
    format: Option<Format>,
    output: Option<&str>,
) -> Result<Option<ExporterSpec>, UsageError> {
    let format = match (format, output) {
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
                Some("html" | "htm") => Format::Html,
                _ => {
                    return Err(UsageError(format!(
                        "cannot tell the format of --output {path}: add --format csv|jsonl|parquet|html"
                    )));
                }
            }
        }
    };
    let path = output.unwrap_or("-").to_owned();
    Ok(Some(match format {
        Format::Csv => ExporterSpec::Csv(CsvSpec::new(path)),
        Format::Jsonl => ExporterSpec::Jsonl(JsonlSpec::new(path)),
        Format::Html => ExporterSpec::Html(HtmlSpec::new(path)),
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

/// The validated exporters (JSON Lines on stdout when none is configured), with the window
/// put into their paths (`{since}`, `{until}`; see [`incremental::name_outputs`]).
pub fn exporter_specs(
    exporters: &[ValidExporter],
    window: Window,
    incremental: bool,
) -> Result<Vec<ValidExporter>, UsageError> {
    let mut specs = exporters.to_vec();
    incremental::name_outputs(&mut specs, window, incremental)?;
    Ok(specs)
}

/// The values of the environment variables named for credentials (`token_env`,
/// `secret_env`): the program reads them, the exporters read no environment.
pub fn credential_vars<'a>(names: impl IntoIterator<Item = &'a str>) -> CredentialVars {
    let mut vars = CredentialVars::default();
    for name in names {
        if let Ok(value) = std::env::var(name) {
            vars.insert(name, value);
        }
    }
    vars
}

/// Starts every exporter.
pub fn build_exporters(specs: &[ValidExporter]) -> anyhow::Result<Vec<Box<dyn Exporter>>> {
    let vars = credential_vars(specs.iter().filter_map(|spec| spec.credential_var()));
    let mut exporters = Vec::with_capacity(specs.len());
    for spec in specs {
        let exporter = connect_audit_exporters::build_with(spec, &vars).with_context(|| {
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

/// Finishes every exporter: its output appears under its final name only now. One failing
/// exporter does not stop the others from finishing (a SIEM that dead-lettered a batch must
/// not cost the CSV); the run then fails naming every exporter that failed.
pub fn finish_exporters(exporters: Vec<Box<dyn Exporter>>) -> anyhow::Result<Vec<ExportSummary>> {
    let mut outputs = Vec::new();
    let mut failures = Vec::new();
    for exporter in exporters {
        let name = exporter.describe();
        match exporter.finish() {
            Ok(summary) => outputs.push(summary),
            Err(e) => {
                failures.push(anyhow::Error::from(e).context(format!("exporter {name} failed")));
            }
        }
    }
    let mut failures = failures.into_iter();
    match failures.next() {
        None => Ok(outputs),
        Some(first) => {
            let others: Vec<String> = failures
                .map(|e| crate::terminal::chain(&e).join(": "))
                .collect();
            if others.is_empty() {
                Err(first)
            } else {
                Err(first.context(format!(
                    "{} exporters failed; the others: {}",
                    others.len() + 1,
                    others.join("; ")
                )))
            }
        }
    }
}

/// Feeds every exporter and the progress display.
pub struct FanOut<'a> {
    /// The exporters.
    pub exporters: Vec<Box<dyn Exporter>>,
    /// The progress display.
    pub reporter: &'a Reporter,
    /// What the written rows changed and the rules they tripped, for the summary.
    pub changes: ChangeTally,
}

impl<'a> FanOut<'a> {
    /// Fans out to `exporters`, showing progress on `reporter`.
    pub fn new(exporters: Vec<Box<dyn Exporter>>, reporter: &'a Reporter) -> Self {
        Self {
            exporters,
            reporter,
            changes: ChangeTally::default(),
        }
    }
}

/// The change columns of the rows written: how many were decoded, where their `before` came
/// from, and each finding's count.
#[derive(Debug, Default)]
pub struct ChangeTally {
    /// Rows whose change was decoded.
    pub decoded: u64,
    /// Of those, by `change_basis`: trail, snapshot, unknown.
    pub basis: [u64; 3],
    /// Rows per finding code.
    pub findings: std::collections::BTreeMap<String, u64>,
}

impl ChangeTally {
    fn add(&mut self, batch: &[AuditRecord]) {
        for record in batch {
            if let Some(basis) = record.change_basis {
                self.decoded += 1;
                self.basis[match basis {
                    ChangeBasis::Trail => 0,
                    ChangeBasis::Snapshot => 1,
                    ChangeBasis::Unknown => 2,
                }] += 1;
            }
            for code in &record.findings {
                *self.findings.entry(code.clone()).or_default() += 1;
            }
        }
    }

    /// The summary's `changes:` and `findings:` lines.
    pub fn lines(&self, t: &mut String) {
        let _ = writeln!(
            t,
            "  changes: {} decoded ({} with `before` from the trail, {} from a snapshot, {} unknown)",
            self.decoded, self.basis[0], self.basis[1], self.basis[2]
        );
        let findings: Vec<String> = self
            .findings
            .iter()
            .map(|(code, n)| format!("{n} {code}"))
            .collect();
        let _ = writeln!(
            t,
            "  findings: {}",
            if findings.is_empty() {
                "none".to_owned()
            } else {
                findings.join(", ")
            }
        );
    }
}

impl ScanSink for FanOut<'_> {
    fn records(&mut self, batch: Vec<AuditRecord>) -> Result<(), SinkError> {
        for exporter in &mut self.exporters {
            exporter.write(&batch)?;
        }
        self.changes.add(&batch);
        Ok(())
    }

    fn files_found(&mut self, files: u64, bytes: u64) {
        self.reporter.files_found(files, bytes);
    }

    fn file_scanned(&mut self, path: &std::path::Path, bytes: u64) {
        self.reporter.file_scanned(bytes, path);
    }

    fn bad_input(&mut self, problem: &BadInput) {
        self.reporter.bad_input(problem);
    }
}

/// Runs a report with validated settings; with `incremental`, continues from the state of
/// the last finished run and advances it when every exporter finished.
pub fn run(
    settings: &Settings,
    valid: ValidReport,
    incremental: Option<&ValidIncremental>,
    reporter: &Reporter,
) -> anyhow::Result<ExitCode> {
    run_pass(settings, valid, incremental, reporter, false).map(|pass| pass.code)
}

/// What a run did, for `watch --poll`'s health line.
#[derive(Debug, Clone, Copy)]
pub struct Pass {
    /// Its exit code.
    pub code: ExitCode,
    /// Trail objects read.
    pub objects: u64,
    /// Events written.
    pub written: u64,
    /// The delivery minute of the newest object read.
    pub newest_delivery: Option<jiff::Timestamp>,
}

/// [`run`], telling what it did. With `quiet_when_empty` (a pass of `watch --poll`), a pass
/// that wrote no row writes no file and no summary (the state still advances).
pub fn run_pass(
    settings: &Settings,
    mut valid: ValidReport,
    incremental: Option<&ValidIncremental>,
    reporter: &Reporter,
    quiet_when_empty: bool,
) -> anyhow::Result<Pass> {
    let report = ReportRun::start(settings, &valid, incremental)?;
    let ledger = report
        .state
        .as_ref()
        .map(|state| state.ledger(valid.window.since));
    if let Some(state) = &report.state {
        valid.window = state.window(valid.window)?;
    }
    let scanned = scan_trail(&report, settings, &valid, ledger.as_ref(), reporter)?;
    let integrity = if settings.report.verify {
        Some(report.verify(settings, &valid, &scanned.summary)?)
    } else {
        None
    };
    let late = late_rows(report.state.as_ref(), &scanned.summary);
    let counts = Counts {
        in_window: scanned.summary.records_matched,
        already_delivered: scanned.dropped,
        duplicates: scanned.summary.duplicates,
        late: late.len() as u64,
    };
    let mut context = report_context(&valid, &scanned.summary, &counts, report.started_at);
    context.integrity = integrity.as_ref().map(crate::verify::Integrity::context);
    let empty = quiet_when_empty
        && counts.written() == 0
        && counts.late == 0
        && !scanned.summary.has_bad_input()
        && scanned.replay.is_none();
    let (outputs, uploaded) = if empty {
        drop(scanned.exporters);
        (Vec::new(), Vec::new())
    } else {
        (
            finish_with_context(scanned.exporters, &context)?,
            upload_outputs(&report.runtime, &scanned.s3_outputs, report.s3.as_ref())?,
        )
    };
    let replay_bad = scanned
        .replay
        .as_ref()
        .is_some_and(|r| r.summary.has_bad_input());
    let clean =
        !(scanned.summary.has_bad_input() || replay_bad) || settings.report.tolerate_bad_files;
    let mut text = summary_text(
        &valid,
        &scanned.summary,
        &counts,
        &outputs,
        scanned.snapshot_names,
        &scanned.changes,
        report.started,
    );
    scanned.history.line(&mut text);
    if let Some(replay) = &scanned.replay {
        replay.line(&mut text, valid.window.since);
        if replay.summary.has_bad_input() {
            let _ = writeln!(
                text,
                "  warning: {} bad files and {} bad records in the replayed span were skipped (listed above); `before` of the rows after them may be incomplete",
                replay.summary.files_bad, replay.summary.records_bad
            );
        }
    }
    if let Some(i) = &integrity {
        i.lines(&mut text);
    }
    upload_lines(&mut text, &uploaded);
    let ledger = ledger.map(|mut ledger| {
        for object in &scanned.summary.objects {
            ledger.record(&object.key, object.tag.as_deref());
        }
        // Listed after the run started, up to its end at most.
        let listed = report.started_at.min(valid.window.until);
        for folder in &scanned.summary.folders_listed {
            ledger.listed(folder, listed);
        }
        ledger
    });
    report.advance_state(
        valid.window,
        scanned.delivered,
        &late,
        clean,
        ledger,
        &mut text,
    )?;
    if !empty {
        reporter.summary(&text);
    }
    let verified = integrity
        .as_ref()
        .is_none_or(|i| i.summary.all_verified() || settings.report.tolerate_integrity);
    let code = if !clean {
        ExitCode::BadInput
    } else if !verified {
        ExitCode::Integrity
    } else {
        ExitCode::Success
    };
    Ok(Pass {
        code,
        objects: scanned.summary.files_read,
        written: counts.written(),
        newest_delivery: scanned
            .summary
            .objects
            .iter()
            .filter_map(|o| {
                connect_audit_core::objects::LogKey::parse(&o.key).map(|k| k.delivered_at)
            })
            .max(),
    })
}

/// What a local report run keeps from its start to its end. The fields are declared in the
/// reverse order of their making, so they are dropped as the locals they replace were: the
/// state, then the S3 client, then the runtime.
struct ReportRun {
    /// The incremental state, loaded; `None` for a plain report.
    state: Option<Incremental>,
    /// The S3 client, made only when something the run reads or writes is on S3.
    s3: Option<aws_sdk_s3::Client>,
    /// The async runtime of every S3 call and of the scan.
    runtime: tokio::runtime::Runtime,
    /// When the run started, for the elapsed time of the summary.
    started: Instant,
    /// When the run started, for the exporters and the incremental state.
    started_at: jiff::Timestamp,
}

impl ReportRun {
    /// Starts the clock and the async runtime, makes the S3 client when anything is on S3,
    /// and loads the incremental state.
    fn start(
        settings: &Settings,
        valid: &ValidReport,
        incremental: Option<&ValidIncremental>,
    ) -> anyhow::Result<Self> {
        let started = Instant::now();
        let started_at = jiff::Timestamp::now();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let s3 = uses_s3(settings, valid, incremental).then(|| {
            runtime.block_on(async {
                crate::aws::s3_client(&crate::aws::sdk_config(&settings.snapshot).await)
            })
        });
        let state = match incremental {
            Some(i) => Some(runtime.block_on(Incremental::load(i, s3.as_ref()))?),
            None => None,
        };
        Ok(Self {
            state,
            s3,
            runtime,
            started,
            started_at,
        })
    }

    /// The names and the versions of the snapshot store at `snapshot`; none without a
    /// snapshot store.
    fn load_snapshot(
        &self,
        snapshot: Option<&Location>,
    ) -> anyhow::Result<(connect_audit_core::Directory, History)> {
        load_snapshot_store(&self.runtime, self.s3.as_ref(), snapshot)
    }

    /// Verifies the log files the scan read against CloudTrail's digests.
    fn verify(
        &self,
        settings: &Settings,
        valid: &ValidReport,
        summary: &ScanSummary,
    ) -> anyhow::Result<crate::verify::Integrity> {
        let trail = Store::open(&valid.trail, self.s3.as_ref())?;
        self.runtime.block_on(async {
            let sdk = match valid.trail {
                Location::S3 { .. } => Some(crate::aws::sdk_config(&settings.snapshot).await),
                Location::Local(_) => None,
            };
            crate::verify::check(
                &trail,
                &valid.trail,
                &summary.hashes,
                valid.window,
                sdk.as_ref(),
            )
            .await
        })
    }

    /// Of an incremental run: advances the state past `window` when the run is `clean`, or
    /// leaves it for the next run to cover the window again; either way adds the state's
    /// line to the summary `text`. Nothing for a plain report.
    fn advance_state(
        &self,
        window: Window,
        delivered: Vec<(String, jiff::Timestamp)>,
        late: &[&EarlyRow],
        clean: bool,
        ledger: Option<ObjectLedger>,
        text: &mut String,
    ) -> anyhow::Result<()> {
        let (Some(state), Some(ledger)) = (&self.state, ledger) else {
            return Ok(());
        };
        if clean {
            let keys = ledger.keys();
            let folders = ledger.folders.len();
            let advanced = self.runtime.block_on(state.advance(
                window,
                delivered,
                late,
                self.started_at,
                ledger,
            ))?;
            let _ = writeln!(
                text,
                "  state:   {} advanced to {} (run {}, {} event ids kept for the lookback, {} object keys of {} region folders kept for the lateness)",
                state.file.describe(),
                advanced.watermark,
                advanced.runs,
                advanced.delivered.len(),
                keys,
                folders
            );
        } else {
            let _ = writeln!(
                text,
                "  state:   {} NOT advanced (bad input was skipped): the next run covers this window again",
                state.file.describe()
            );
        }
        Ok(())
    }
}

/// The names and the versions of the snapshot store at `snapshot`; none without a snapshot
/// store.
pub fn load_snapshot_store(
    runtime: &tokio::runtime::Runtime,
    s3: Option<&aws_sdk_s3::Client>,
    snapshot: Option<&Location>,
) -> anyhow::Result<(connect_audit_core::Directory, History)> {
    Ok(match snapshot {
        Some(root) => {
            let store = Store::open(root, s3)?;
            runtime
                .block_on(load_snapshot(&store))
                .with_context(|| format!("cannot load the snapshot store {root}"))?
        }
        None => (connect_audit_core::Directory::new(), History::new()),
    })
}

/// Whether the trail, the snapshot store, the incremental state or an output is on S3.
fn uses_s3(
    settings: &Settings,
    valid: &ValidReport,
    incremental: Option<&ValidIncremental>,
) -> bool {
    let is_s3 = |l: &Location| matches!(l, Location::S3 { .. });
    let s3_outputs_configured = settings
        .exporters
        .iter()
        .any(|e| e.path().starts_with("s3://"));
    is_s3(&valid.trail)
        || valid.snapshot.as_ref().is_some_and(is_s3)
        || incremental.is_some_and(|i| is_s3(&i.state))
        || s3_outputs_configured
}

/// What the scan leaves for the rest of the run.
struct Scanned {
    /// What the written rows changed.
    changes: ChangeTally,
    /// The exporters, fed every record; not finished yet.
    exporters: Vec<Box<dyn Exporter>>,
    /// The `s3://` outputs, staged until every exporter finished.
    s3_outputs: S3Outputs,
    /// How many names the snapshot store gave.
    snapshot_names: usize,
    /// What the snapshot's history held.
    history: HistoryRead,
    /// The span replayed before the window, if any.
    replay: Option<Replay>,
    /// What the scan found.
    summary: ScanSummary,
    /// The ids passed on that the next run's lookback can see again.
    delivered: Vec<(String, jiff::Timestamp)>,
    /// Records dropped as delivered by an earlier run.
    dropped: u64,
}

/// What a report read of the snapshot's history, for its summary.
#[derive(Debug, Clone, Copy)]
pub struct HistoryRead {
    /// Versions.
    pub versions: usize,
    /// Objects they are of.
    pub objects: usize,
    /// History files read (0: a store without history, read as one version per object).
    pub files: u64,
}

impl HistoryRead {
    /// The counts of `history`.
    pub fn of(history: &History) -> Self {
        Self {
            versions: history.len(),
            objects: history.objects(),
            files: history.files,
        }
    }

    /// The summary line (none when there is no snapshot at all).
    pub fn line(&self, t: &mut String) {
        if self.objects == 0 {
            return;
        }
        let source = if self.files == 0 {
            "the latest objects (no history yet: one version each)".to_owned()
        } else {
            format!("{} history files", self.files)
        };
        let _ = writeln!(
            t,
            "  history: {} versions of {} users, profiles and groups, from {source}",
            self.versions, self.objects
        );
    }
}

/// The span of the trail a report read before its window, so that each row's `before` rests
/// on the last snapshot run before the window and every event since.
pub struct Replay {
    /// The last snapshot observation before the window's start.
    pub from: jiff::Timestamp,
    /// What that scan found.
    pub summary: ScanSummary,
    /// Rows decoded there (moving the state on; not written).
    pub rows: u64,
}

impl Replay {
    /// The summary line of the span.
    fn line(&self, t: &mut String, since: jiff::Timestamp) {
        let s = &self.summary;
        let _ = writeln!(
            t,
            "  replay:  {} .. {} (from the last snapshot observation to the window start): {} files read ({:.1} MiB), {} bad, {} audited events replayed, not written",
            self.from,
            since,
            s.files_read,
            mib(s.bytes_read),
            s.files_bad,
            self.rows
        );
    }
}

/// Names the outputs, starts the exporters and scans the trail into them, the records an
/// earlier incremental run delivered dropped.
fn scan_trail(
    report: &ReportRun,
    settings: &Settings,
    valid: &ValidReport,
    ledger: Option<&ObjectLedger>,
    reporter: &Reporter,
) -> anyhow::Result<Scanned> {
    let mut specs = exporter_specs(&valid.exporters, valid.window, report.state.is_some())?;
    let s3_outputs = S3Outputs::stage(&mut specs)?;
    let (directory, history) = report.load_snapshot(valid.snapshot.as_ref())?;
    let exporters = build_exporters(&specs)?;
    let mut options = scan_options(settings, valid);
    // An incremental run reads the objects no earlier run read, and writes every event they
    // hold from the ledger's start on that no earlier run delivered.
    let replay_options = options.clone();
    if let Some(ledger) = ledger {
        options.new_objects = Some(std::sync::Arc::new(ledger.clone()));
        options.window.since = ledger.since.min(options.window.since);
    }
    let snapshot_names = directory.snapshot_len();
    let trail = Store::open(&valid.trail, report.s3.as_ref())?;
    let names = directory.clone();
    let history_read = HistoryRead::of(&history);
    // The span from the last snapshot observation before the window to the window's start:
    // replayed so that each target's state is exact from that snapshot on (see `ChangeStage`).
    let replay_from = history
        .last_observation_at_or_before(valid.window.since)
        .filter(|from| *from < valid.window.since);
    let replay_scanner = replay_from.map(|from| {
        let mut options = replay_options.clone();
        options.hash_files = false;
        options.window = Window {
            since: from,
            until: valid.window.since,
        };
        TrailScanner::new(trail.clone(), directory.clone(), options)
            .with_runtime(report.runtime.handle().clone())
    });
    let scanner =
        TrailScanner::new(trail, directory, options).with_runtime(report.runtime.handle().clone());
    let drop_delivered = DropDelivered {
        inner: FanOut::new(exporters, reporter),
        previous: report.state.as_ref().and_then(|s| s.previous.as_ref()),
        horizon: report
            .state
            .as_ref()
            .map(|s| valid.window.until - s.lookback),
        delivered: Vec::new(),
        dropped: 0,
    };
    // The change stage sees every row, those delivered before too: they move its state on.
    let mut stage = ChangeStage::with_rules(drop_delivered, names, valid.findings.clone())
        .with_history(history);
    let replay = match (replay_from, replay_scanner) {
        (Some(from), Some(scanner)) => {
            stage.set_replay(true).map_err(anyhow::Error::from_boxed)?;
            let outcome = scanner.scan(&mut stage);
            stage.set_replay(false).map_err(anyhow::Error::from_boxed)?;
            let summary = outcome.with_context(|| {
                format!(
                    "scan of {} from the snapshot of {from} to the window start failed",
                    valid.trail
                )
            })?;
            Some(Replay {
                from,
                summary,
                rows: stage.replayed(),
            })
        }
        _ => None,
    };
    let outcome = scanner.scan(&mut stage);
    reporter.finish();
    let summary = outcome.with_context(|| format!("scan of {} failed", valid.trail))?;
    let sink = stage
        .finish()
        .map_err(anyhow::Error::from_boxed)
        .with_context(|| format!("writing the rows of {} failed", valid.trail))?;
    Ok(Scanned {
        changes: sink.inner.changes,
        exporters: sink.inner.exporters,
        s3_outputs,
        snapshot_names,
        history: history_read,
        replay,
        summary,
        delivered: sink.delivered,
        dropped: sink.dropped,
    })
}

/// The scan options of the report settings: window, events, scope, redaction, instruction
/// set and threads.
pub fn scan_options(settings: &Settings, valid: &ValidReport) -> ScanOptions {
    let mut options = ScanOptions::new(valid.window, valid.events.clone());
    options.scope = valid.scope.clone();
    options.redaction = Redaction::with_keys(&settings.report.redact_keys);
    options.simd = requested_simd();
    if let Some(threads) = settings.report.threads {
        options.threads = threads;
    }
    options.hash_files = settings.report.verify;
    options
}

/// The late rows of an incremental run (see [`Incremental::late_rows`]), each logged at
/// info level; none for a plain report.
fn late_rows<'r>(state: Option<&Incremental>, summary: &'r ScanSummary) -> Vec<&'r EarlyRow> {
    let late = state
        .map(|s| s.late_rows(&summary.before_window))
        .unwrap_or_default();
    for row in &late {
        tracing::info!(
            event_id = %row.row_key,
            event_time = %row.event_time,
            file = %row.path.display(),
            "Audited event older than the window, in a file delivered since the last run: not in this run's output."
        );
    }
    late
}

/// What a local report tells its exporters: where the events came from, what was skipped
/// and what became of the events found.
fn report_context(
    valid: &ValidReport,
    summary: &ScanSummary,
    counts: &Counts,
    started_at: jiff::Timestamp,
) -> RunContext {
    RunContext {
        source: Some(format!("trail {} (local engine)", valid.trail)),
        snapshot: valid.snapshot.as_ref().map(ToString::to_string),
        skipped_files: summary.files_bad,
        skipped_records: summary.records_bad,
        events_in_window: Some(counts.in_window),
        already_delivered: counts.already_delivered,
        duplicates: counts.duplicates,
        late: counts.late,
        ..run_context(valid.window, &valid.scope, started_at)
    }
}

/// Gives every exporter the run's `context`, then finishes them (see [`finish_exporters`]).
pub fn finish_with_context(
    mut exporters: Vec<Box<dyn Exporter>>,
    context: &RunContext,
) -> anyhow::Result<Vec<ExportSummary>> {
    for exporter in &mut exporters {
        exporter.run_context(context);
    }
    finish_exporters(exporters)
}

/// The instruction set `CONNECT_AUDIT_SIMD` asks the scanner's structural pass to use: a
/// diagnostic of the environment, read here because the engine reads none. A value it does
/// not know is named and ignored (the best set the CPU has runs).
fn requested_simd() -> Simd {
    let Ok(name) = std::env::var(connect_audit_config::SIMD_ENV) else {
        return Simd::Best;
    };
    Simd::from_name(&name).unwrap_or_else(|| {
        tracing::warn!(
            "{}={name:?} is not avx512, avx2 or sse2: ignored",
            connect_audit_config::SIMD_ENV
        );
        Simd::Best
    })
}

/// What every run of `report` tells its exporters (the HTML header): the tool, the window and
/// scope; the caller adds where the events came from and what was skipped.
pub fn run_context(window: Window, scope: &Scope, started_at: jiff::Timestamp) -> RunContext {
    RunContext {
        tool: concat!("connect-audit ", env!("CARGO_PKG_VERSION")).to_owned(),
        generated_at: Some(started_at),
        window: Some(window),
        scope: scope.clone(),
        ..RunContext::default()
    }
}

/// Uploads the staged `s3://` outputs once every exporter finished.
pub fn upload_outputs(
    runtime: &tokio::runtime::Runtime,
    outputs: &S3Outputs,
    s3: Option<&aws_sdk_s3::Client>,
) -> anyhow::Result<Vec<Uploaded>> {
    if !outputs.any() {
        return Ok(Vec::new());
    }
    let s3 = s3.context("an S3 client is needed for the s3:// outputs")?;
    Ok(runtime.block_on(outputs.upload(|target| Store::open(target, Some(s3))))?)
}

/// The summary lines of the uploaded objects.
pub fn upload_lines(text: &mut String, uploaded: &[Uploaded]) {
    for u in uploaded {
        let _ = writeln!(text, "  upload:  {} ({} bytes)", u.url, u.bytes);
    }
}

/// What became of the audited events a run found (rows: a call naming several targets counts
/// once per target).
struct Counts {
    /// In the window, each once (duplicate deliveries removed).
    in_window: u64,
    /// Of those, delivered by an earlier incremental run: dropped.
    already_delivered: u64,
    /// Second and later deliveries of an event: dropped.
    duplicates: u64,
    /// Older than the window, in files delivered since the last run: not written.
    late: u64,
}

impl Counts {
    /// What every exporter received.
    fn written(&self) -> u64 {
        self.in_window - self.already_delivered
    }
}

fn summary_text(
    valid: &ValidReport,
    s: &ScanSummary,
    counts: &Counts,
    outputs: &[ExportSummary],
    snapshot_names: usize,
    changes: &ChangeTally,
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
    let already = if s.files_already_read > 0 {
        format!(", {} read by an earlier run", s.files_already_read)
    } else {
        String::new()
    };
    let _ = writeln!(
        t,
        "  files:   {} found, {} outside the window{already}, {} read ({:.1} MiB), {} bad",
        s.files_found,
        s.files_pruned,
        s.files_read,
        mib(s.bytes_read),
        s.files_bad
    );
    if s.files_ignored > 0 {
        let _ = writeln!(
            t,
            "  ignored: {} files that are not CloudTrail logs (-v lists them)",
            s.files_ignored
        );
    }
    let _ = writeln!(
        t,
        "  records: {} seen, {} bad",
        s.records_seen, s.records_bad
    );
    let _ = writeln!(
        t,
        "  events:  {} audited in the window, {} already delivered by an earlier run (dropped), {} duplicate deliveries (dropped), {} written",
        counts.in_window,
        counts.already_delivered,
        counts.duplicates,
        counts.written()
    );
    let _ = writeln!(
        t,
        "  names:   {} from the snapshot, {} rows with names unresolved",
        snapshot_names, s.names_unresolved
    );
    changes.lines(&mut t);
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
    if counts.late > 0 {
        let _ = writeln!(
            t,
            "  warning: {} audited events older than the window were found in files delivered since the last run; they are not in this run's output (-v lists their event ids)",
            counts.late
        );
    }
    t
}

#[allow(clippy::cast_precision_loss)]
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
