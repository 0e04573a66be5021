//! `connect-audit access-review`: who holds what as of a time, and who gave it to them.
//!
//! The state of every user as of `--at` is the newest snapshot version observed by then,
//! replayed forward through the trail: the trail is read from the last snapshot observation
//! at or before the review period's start up to `--at`, through the change stage (both
//! engines), its rows feeding [`Review`] (grants, last changes, sign-ins in the period); the
//! state they leave and the history give the rows ([`Review::finish`]). No row of the trail
//! is written: the outputs hold the entitlements.

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::Context as _;
use connect_audit_config::{
    Engine, Settings, ValidAccessReview, ValidAthenaReport, ValidExporter, ValidReport,
};
use connect_audit_core::access::{AccessReview, Entitlement, Review};
use connect_audit_core::history::History;
use connect_audit_core::redact::Redaction;
use connect_audit_core::{AuditRecord, EventSelection, Location, Store, Window};
use connect_audit_exporters::destination::S3Outputs;
use connect_audit_exporters::{ExportSummary, Exporter, RunContext};
use connect_audit_query::local::{ScanSummary, TrailScanner};
use connect_audit_query::stage::ChangeStage;
use connect_audit_query::{BadInput, ScanSink, SinkError};
use figment::Figment;

use crate::args::{AccessReviewArgs, EngineArg};
use crate::report::{
    HistoryRead, credential_vars, load_snapshot_store, mib, run_context, scan_options,
    shorthand_exporter, upload_lines, upload_outputs,
};
use crate::terminal::Reporter;
use crate::{ExitCode, UsageError};

/// Merges the flags of `access-review` over the layered config.
pub fn merge_flags(mut figment: Figment, args: &AccessReviewArgs) -> Result<Figment, UsageError> {
    use connect_audit_config::flag;
    for (key, value) in [
        ("access_review.at", &args.at),
        ("access_review.since", &args.since),
        ("report.trail", &args.trail),
        ("report.snapshot", &args.snapshot),
    ] {
        if let Some(v) = value {
            figment = flag(figment, key, v);
        }
    }
    if let Some(engine) = args.engine {
        let name = match engine {
            EngineArg::Local => "local",
            EngineArg::Athena => "athena",
        };
        figment = flag(figment, "report.engine", name);
    }
    if let Some(v) = &args.instance_ids {
        figment = flag(figment, "report.instance_ids", v);
    }
    if args.tolerate_bad_files {
        figment = flag(figment, "report.tolerate_bad_files", true);
    }
    let format = args.format.or_else(|| {
        // No extension to go by and no format: CSV, the review's default.
        args.output
            .as_deref()
            .filter(|o| std::path::Path::new(o).extension().is_none())
            .map(|_| crate::args::Format::Csv)
    });
    if let Some(spec) = shorthand_exporter(format, args.output.as_deref())? {
        figment = flag(figment, "access_review.exporters", vec![spec]);
    }
    Ok(figment)
}

/// The events an access review reads: the default groups (users, profiles, groups: what
/// decides what a user holds and what each profile grants) and the sign-ins.
fn review_events() -> EventSelection {
    EventSelection::parse(&["default", "GetFederationToken"]).expect("catalogued names")
}

/// `access-review`, on the configured engine.
pub fn command(figment: Figment, args: &AccessReviewArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let figment = merge_flags(figment, args)?;
    let settings: Settings = figment
        .extract()
        .map_err(connect_audit_config::ConfigError::from)?;
    let now = jiff::Timestamp::now();
    let review = settings.validate_access_review(&figment, now)?;
    let reporter = Reporter::new(quiet);
    if settings.report.engine == Engine::Athena {
        let valid = settings.validate_athena(&figment, now)?;
        return athena(&settings, &valid, &review, &reporter);
    }
    let valid = settings.validate(&figment, now)?;
    local(&settings, &valid, &review, &reporter)
}

/// Feeds the review and the progress display with the change stage's rows.
struct ReviewSink<'a> {
    review: Review,
    reporter: &'a Reporter,
    rows: u64,
}

impl<'a> ReviewSink<'a> {
    fn new(review: Review, reporter: &'a Reporter) -> Self {
        Self {
            review,
            reporter,
            rows: 0,
        }
    }
}

impl ScanSink for ReviewSink<'_> {
    fn records(&mut self, batch: Vec<AuditRecord>) -> Result<(), SinkError> {
        self.rows += batch.len() as u64;
        for record in &batch {
            self.review.feed(record);
        }
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

/// Where the review's trail read begins: the last snapshot observation at or before the
/// period's start, else the period's start.
fn trail_from(history: &History, review: &ValidAccessReview) -> jiff::Timestamp {
    history
        .last_observation_at_or_before(review.since)
        .unwrap_or(review.since)
}

/// What a run read, for the summary.
struct Read {
    /// The trail: `trail s3://…`, `Athena table db.t`.
    source: String,
    /// The snapshot store, if any.
    snapshot: Option<String>,
    /// The scan's lines (files, records; or the query).
    lines: String,
    /// Rows of the trail read, decoded.
    rows: u64,
    history: HistoryRead,
    bad_files: u64,
    bad_records: u64,
    /// When the run started: for the elapsed time, and for the outputs.
    started: (Instant, jiff::Timestamp),
}

/// The local engine: scan the trail from the snapshot observation to `--at`.
fn local(
    settings: &Settings,
    valid: &ValidReport,
    review: &ValidAccessReview,
    reporter: &Reporter,
) -> anyhow::Result<ExitCode> {
    let started = (Instant::now(), jiff::Timestamp::now());
    let runtime = crate::athena::runtime()?;
    let is_s3 = |l: &Location| matches!(l, Location::S3 { .. });
    let needs_s3 = is_s3(&valid.trail)
        || valid.snapshot.as_ref().is_some_and(is_s3)
        || review
            .exporters
            .iter()
            .any(|e| e.path().starts_with("s3://"));
    let s3 = needs_s3.then(|| {
        runtime.block_on(async {
            crate::aws::s3_client(&crate::aws::sdk_config(&settings.snapshot).await)
        })
    });
    let (directory, history) = load_snapshot_store(&runtime, s3.as_ref(), valid.snapshot.as_ref())?;
    let from = trail_from(&history, review);
    let history_read = HistoryRead::of(&history);
    let mut options = scan_options(settings, valid);
    options.window = Window {
        since: from,
        until: review.at,
    };
    options.events = review_events();
    let trail = Store::open(&valid.trail, s3.as_ref())?;
    let scanner =
        TrailScanner::new(trail, directory.clone(), options).with_runtime(runtime.handle().clone());
    let sink = ReviewSink::new(
        Review::new(review.since, review.at, from, &history),
        reporter,
    );
    let mut stage =
        ChangeStage::with_rules(sink, directory, valid.findings.clone()).with_history(history);
    let outcome = scanner.scan(&mut stage);
    reporter.finish();
    let summary: ScanSummary =
        outcome.with_context(|| format!("scan of {} failed", valid.trail))?;
    let (rows, done) = finish(stage, review.at, &valid.findings, &valid.scope)?;
    let mut lines = String::new();
    let _ = writeln!(
        lines,
        "  files:   {} found, {} outside the span, {} read ({:.1} MiB), {} bad",
        summary.files_found,
        summary.files_pruned,
        summary.files_read,
        mib(summary.bytes_read),
        summary.files_bad
    );
    let read = Read {
        source: format!("trail {} (local engine)", valid.trail),
        snapshot: valid.snapshot.as_ref().map(ToString::to_string),
        lines,
        rows,
        history: history_read,
        bad_files: summary.files_bad,
        bad_records: summary.records_bad,
        started,
    };
    write(
        settings,
        &runtime,
        s3.as_ref(),
        review,
        &done,
        &read,
        reporter,
    )
}

/// Athena: the audit query family over the span, the rows through the same change stage.
fn athena(
    settings: &Settings,
    valid: &ValidAthenaReport,
    review: &ValidAccessReview,
    reporter: &Reporter,
) -> anyhow::Result<ExitCode> {
    use connect_audit_query::athena::{self as engine, sql};
    let started = (Instant::now(), jiff::Timestamp::now());
    let runtime = crate::athena::runtime()?;
    reporter.status("waiting for Athena");
    let outcome = runtime.block_on(async {
        let runner = crate::athena::runner(settings, valid).await;
        let redaction = Redaction::with_keys(&settings.report.redact_keys);
        let cancel = crate::athena::ctrl_c();
        tokio::pin!(cancel);
        let names = engine::snapshot_names(&runner, &valid.athena, &mut cancel).await?;
        let history = engine::snapshot_history(&runner, &valid.athena, &mut cancel).await?;
        let from = trail_from(&history, review);
        let history_read = HistoryRead::of(&history);
        let span = Window {
            since: from,
            until: review.at,
        };
        let query = sql::audit_query(&valid.athena, span, &review_events(), &valid.scope);
        let sink = ReviewSink::new(
            Review::new(review.since, review.at, from, &history),
            reporter,
        );
        let mut stage =
            ChangeStage::with_rules(sink, names, valid.findings.clone()).with_history(history);
        let summary = engine::report(&runner, &query, &redaction, &mut stage, &mut cancel).await?;
        Ok::<_, connect_audit_query::Error>((summary, stage, history_read))
    });
    reporter.finish();
    let (summary, stage, history_read) =
        outcome.context("the Athena access review failed; nothing was written")?;
    let (rows, done) = finish(stage, review.at, &valid.findings, &valid.scope)?;
    #[allow(clippy::cast_precision_loss)]
    let scanned = summary.data_scanned_bytes as f64 / (1024.0 * 1024.0);
    let mut lines = String::new();
    let _ = writeln!(
        lines,
        "  query:   {} in workgroup {}, {scanned:.1} MiB scanned, about ${:.4} at $5/TB (10 MB minimum)",
        summary.query_id, valid.athena.workgroup, summary.cost_usd
    );
    let read = Read {
        source: format!(
            "Athena table {}.{} (workgroup {})",
            valid.athena.database, valid.athena.table, valid.athena.workgroup
        ),
        snapshot: valid.athena.snapshot.as_ref().map(|s| s.url("")),
        lines,
        rows,
        history: history_read,
        bad_files: 0,
        bad_records: summary.bad.len() as u64,
        started,
    };
    let s3 = review
        .exporters
        .iter()
        .any(|e| e.path().starts_with("s3://"))
        .then(|| {
            runtime.block_on(async {
                crate::aws::s3_client(&crate::aws::sdk_config(&settings.snapshot).await)
            })
        });
    write(
        settings,
        &runtime,
        s3.as_ref(),
        review,
        &done,
        &read,
        reporter,
    )
}

/// The rows still held by the stage go to the review; then the review's rows, as of `at`.
/// Rows of users of other instances than the scope's (`--instance-ids`) are left out; the
/// scope's accounts and regions limit the trail read.
fn finish(
    stage: ChangeStage<ReviewSink<'_>>,
    at: jiff::Timestamp,
    rules: &connect_audit_core::findings::FindingRules,
    scope: &connect_audit_core::Scope,
) -> anyhow::Result<(u64, AccessReview)> {
    let (rows, mut done) = stage
        .finish_as_of(at, |sink, tracker, history, names| {
            (
                sink.rows,
                sink.review.finish(history, tracker, rules, names),
            )
        })
        .map_err(anyhow::Error::from_boxed)
        .context("decoding the trail read failed")?;
    done.limit_to(&scope.instances);
    Ok((rows, done))
}

/// Writes the entitlements into every exporter, uploads the `s3://` ones, and prints the
/// summary.
fn write(
    settings: &Settings,
    runtime: &tokio::runtime::Runtime,
    s3: Option<&aws_sdk_s3::Client>,
    review: &ValidAccessReview,
    done: &AccessReview,
    read: &Read,
    reporter: &Reporter,
) -> anyhow::Result<ExitCode> {
    let (started, started_at) = read.started;
    let mut specs: Vec<ValidExporter> = review.exporters.clone();
    let s3_outputs = S3Outputs::stage(&mut specs)?;
    let vars = credential_vars(specs.iter().filter_map(|s| s.credential_var()));
    let mut exporters: Vec<Box<dyn Exporter<Entitlement>>> = Vec::with_capacity(specs.len());
    for spec in &specs {
        exporters.push(
            connect_audit_exporters::build_rows::<Entitlement>(spec, &vars).with_context(|| {
                format!(
                    "cannot start the {} exporter for {}",
                    spec.kind(),
                    spec.path()
                )
            })?,
        );
    }
    let window = Window {
        since: review.since,
        until: review.at,
    };
    let context = RunContext {
        source: Some(read.source.clone()),
        snapshot: read.snapshot.clone(),
        skipped_files: read.bad_files,
        skipped_records: read.bad_records,
        review: Some(done.summary.clone()),
        ..run_context(window, &connect_audit_core::Scope::default(), started_at)
    };
    let mut outputs: Vec<ExportSummary> = Vec::new();
    let mut failures = Vec::new();
    for mut exporter in exporters {
        let name = exporter.describe();
        let written = exporter
            .write(&done.rows)
            .map_err(anyhow::Error::from)
            .and_then(|()| {
                exporter.run_context(&context);
                exporter.finish().map_err(anyhow::Error::from)
            });
        match written {
            Ok(summary) => outputs.push(summary),
            Err(e) => failures.push(e.context(format!("exporter {name} failed"))),
        }
    }
    if let Some(first) = failures.into_iter().next() {
        return Err(first);
    }
    let uploaded = upload_outputs(runtime, &s3_outputs, s3)?;
    let s = &done.summary;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "connect-audit: access review as of {} (review period {} .. {}), {:.1}s",
        s.at,
        s.since,
        s.at,
        started.elapsed().as_secs_f64()
    );
    let _ = writeln!(
        t,
        "  trail:   {} read {} .. {} (from the last snapshot observation at or before the period start): {} audited events applied",
        read.source, s.trail_from, s.at, read.rows
    );
    t.push_str(&read.lines);
    read.history.line(&mut t);
    for i in &s.instances {
        let _ = writeln!(
            t,
            "  instance {}: {} users, {} privileged holders, {} grants and {} self-grants in the period, {} users without a recorded sign-in in the period, {} created in the period, {} deleted after the review time",
            i.instance_id.as_deref().unwrap_or("(not known)"),
            i.users,
            i.privileged_holders,
            i.grants_in_period,
            i.self_grants_in_period,
            i.without_sign_in,
            i.created_in_period,
            i.deleted_after
        );
    }
    for o in &outputs {
        let _ = writeln!(t, "  output:  {} ({} users)", o.exporter, o.records);
    }
    upload_lines(&mut t, &uploaded);
    let bad = read.bad_files > 0 || read.bad_records > 0;
    if bad {
        let _ = writeln!(
            t,
            "  warning: {} bad files and {} bad records were skipped (listed above): the events in them are not applied to this review",
            read.bad_files, read.bad_records
        );
    }
    reporter.summary(&t);
    Ok(if bad && !settings.report.tolerate_bad_files {
        ExitCode::BadInput
    } else {
        ExitCode::Success
    })
}
