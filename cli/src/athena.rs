//! `connect-audit athena init|sql` and `report --engine athena`.

use connect_audit_core::redact::Redaction;
use std::fmt::Write as _;
use std::time::Instant;

use anyhow::Context as _;
use connect_audit_config::{Settings, ValidAthenaReport};
use connect_audit_exporters::RunContext;
use connect_audit_exporters::destination::S3Outputs;
use connect_audit_query::athena::{self, AthenaSummary, Runner, ddl, sql};
use connect_audit_query::stage::ChangeStage;
use figment::Figment;

use crate::ExitCode;
use crate::args::{AthenaInitArgs, AthenaSqlArgs};
use crate::report::{
    FanOut, HistoryRead, build_exporters, exporter_specs, finish_exporters, run_context,
    upload_lines, upload_outputs,
};
use crate::terminal::{self, Reporter};

/// Merges the flags of `athena sql` over the layered config.
pub fn merge_sql_flags(mut figment: Figment, args: &AthenaSqlArgs) -> Figment {
    if let Some(v) = &args.since {
        figment = connect_audit_config::flag(figment, "report.since", v);
    }
    if let Some(v) = &args.until {
        figment = connect_audit_config::flag(figment, "report.until", v);
    }
    if let Some(v) = &args.events {
        figment = connect_audit_config::flag(figment, "report.events", v);
    }
    figment
}

/// Completes on Ctrl-C; never when the signal cannot be watched.
pub async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub async fn runner(settings: &Settings, valid: &ValidAthenaReport) -> Runner {
    let config = crate::aws::sdk_config(&settings.snapshot).await;
    Runner::new(aws_sdk_athena::Client::new(&config), &valid.athena)
}

/// `athena sql`: the audit query and its parameters, on stdout.
pub fn print_sql(valid: &ValidAthenaReport) -> ExitCode {
    let query = sql::audit_query(&valid.athena, valid.window, &valid.events, &valid.scope);
    terminal::data(&query.annotated());
    ExitCode::Success
}

/// `athena init`: runs (or prints) the DDL, one statement per query, in order.
pub fn init(
    settings: &Settings,
    valid: &ValidAthenaReport,
    args: &AthenaInitArgs,
    reporter: &Reporter,
) -> anyhow::Result<ExitCode> {
    let statements = ddl::init_statements(&valid.athena, args.replace, args.view);
    if args.dry_run {
        for s in &statements {
            terminal::data(&format!("-- {}\n{};\n\n", s.what, s.sql));
        }
        return Ok(ExitCode::Success);
    }
    if valid.athena.snapshot.is_none() {
        terminal::note(
            "connect-audit: note: no S3 snapshot store (report.snapshot or snapshot.store): the snapshot tables are not created and names come from the trail only",
        );
    }
    let runtime = runtime()?;
    runtime.block_on(async {
        let runner = runner(settings, valid).await;
        for statement in &statements {
            reporter.status(&statement.what);
            let finished = runner
                .run(&statement.sql, &[], ctrl_c())
                .await
                .with_context(|| format!("cannot create {}", statement.what))?;
            reporter.summary(&format!(
                "connect-audit: {} ok (query {})\n",
                statement.what, finished.id
            ));
        }
        reporter.finish();
        Ok(ExitCode::Success)
    })
}

/// `report --engine athena`: the audit query on Athena, its rows into every exporter.
pub fn report(
    settings: &Settings,
    valid: &ValidAthenaReport,
    reporter: &Reporter,
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let started_at = jiff::Timestamp::now();
    let query = sql::audit_query(&valid.athena, valid.window, &valid.events, &valid.scope);
    let mut specs = exporter_specs(&valid.exporters, valid.window, false)?;
    let s3_outputs = S3Outputs::stage(&mut specs)?;
    let exporters = build_exporters(&specs)?;
    let runtime = runtime()?;
    let fan_out = FanOut::new(exporters, reporter);
    reporter.status("waiting for Athena");
    let outcome = runtime.block_on(async {
        let runner = runner(settings, valid).await;
        let redaction = Redaction::with_keys(&settings.report.redact_keys);
        let cancel = ctrl_c();
        tokio::pin!(cancel);
        // The change stage names the ids inside requests from the snapshot tables, as the
        // local engine's names them from the snapshot store: one small query first.
        let names = athena::snapshot_names(&runner, &valid.athena, &mut cancel).await?;
        // The versions, from the history table: the same ones the local engine reads.
        let history = athena::snapshot_history(&runner, &valid.athena, &mut cancel).await?;
        let history_read = HistoryRead::of(&history);
        let replay_from = history
            .last_observation_at_or_before(valid.window.since)
            .filter(|from| *from < valid.window.since);
        let mut stage =
            ChangeStage::with_rules(fan_out, names, valid.findings.clone()).with_history(history);
        // The span from the last snapshot observation to the window's start, as the local
        // engine replays it: decoded, not written.
        let replay = match replay_from {
            Some(from) => {
                let span = connect_audit_core::Window {
                    since: from,
                    until: valid.window.since,
                };
                let replay_query =
                    sql::audit_query(&valid.athena, span, &valid.events, &valid.scope);
                stage
                    .set_replay(true)
                    .map_err(connect_audit_query::Error::Sink)?;
                let summary =
                    athena::report(&runner, &replay_query, &redaction, &mut stage, &mut cancel)
                        .await?;
                stage
                    .set_replay(false)
                    .map_err(connect_audit_query::Error::Sink)?;
                Some((from, summary, stage.replayed()))
            }
            None => None,
        };
        let summary = athena::report(&runner, &query, &redaction, &mut stage, &mut cancel).await?;
        Ok::<_, connect_audit_query::Error>((summary, stage, history_read, replay))
    });
    reporter.finish();
    let (summary, stage, history_read, replay) =
        outcome.context("the Athena report failed; nothing was written")?;
    let mut sink = stage
        .finish()
        .map_err(anyhow::Error::from_boxed)
        .context("writing the rows of the Athena report failed")?;
    let run = RunContext {
        source: Some(format!(
            "Athena table {}.{} (workgroup {})",
            valid.athena.database, valid.athena.table, valid.athena.workgroup
        )),
        snapshot: valid.athena.snapshot.as_ref().map(|s| s.url("")),
        skipped_records: summary.bad.len() as u64,
        ..run_context(valid.window, &valid.scope, started_at)
    };
    for exporter in &mut sink.exporters {
        exporter.run_context(&run);
    }
    let changes = std::mem::take(&mut sink.changes);
    let outputs = finish_exporters(sink.exporters)?;
    let s3 = if s3_outputs.any() {
        Some(runtime.block_on(async {
            crate::aws::s3_client(&crate::aws::sdk_config(&settings.snapshot).await)
        }))
    } else {
        None
    };
    let uploaded = upload_outputs(&runtime, &s3_outputs, s3.as_ref())?;
    let t = summary_text(
        valid,
        &summary,
        &Extra {
            history: history_read,
            replay: replay.as_ref(),
            changes: &changes,
            outputs: &outputs,
            uploaded: &uploaded,
            started,
        },
    );
    let replay_bad = replay.as_ref().map_or(0, |(_, r, _)| r.bad.len());
    reporter.summary(&t);
    if (!summary.bad.is_empty() || replay_bad > 0) && !settings.report.tolerate_bad_files {
        return Ok(ExitCode::BadInput);
    }
    Ok(ExitCode::Success)
}

/// What the summary of an Athena report tells besides the query's own summary.
struct Extra<'a> {
    history: HistoryRead,
    replay: Option<&'a (jiff::Timestamp, AthenaSummary, u64)>,
    changes: &'a crate::report::ChangeTally,
    outputs: &'a [connect_audit_exporters::ExportSummary],
    uploaded: &'a [connect_audit_exporters::destination::Uploaded],
    started: Instant,
}

fn summary_text(valid: &ValidAthenaReport, summary: &AthenaSummary, extra: &Extra<'_>) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "connect-audit: Athena report of {}.{} for {} .. {} (until exclusive), {:.1}s",
        valid.athena.database,
        valid.athena.table,
        valid.window.since,
        valid.window.until,
        extra.started.elapsed().as_secs_f64()
    );
    #[allow(clippy::cast_precision_loss)]
    let mib = summary.data_scanned_bytes as f64 / (1024.0 * 1024.0);
    let _ = writeln!(
        t,
        "  query:   {} in workgroup {}, {:.1} MiB scanned, about ${:.4} at $5/TB (10 MB minimum)",
        summary.query_id, valid.athena.workgroup, mib, summary.cost_usd
    );
    let _ = writeln!(
        t,
        "  records: {} audited events written ({} result pages), {} bad, {} rows with names unresolved",
        summary.records,
        summary.pages,
        summary.bad.len(),
        summary.names_unresolved
    );
    extra.changes.lines(&mut t);
    extra.history.line(&mut t);
    if let Some((from, replayed, rows)) = extra.replay {
        #[allow(clippy::cast_precision_loss)]
        let mib = replayed.data_scanned_bytes as f64 / (1024.0 * 1024.0);
        let _ = writeln!(
            t,
            "  replay:  {from} .. {} (from the last snapshot observation to the window start): query {}, {mib:.1} MiB scanned, about ${:.4}, {rows} audited events replayed, not written, {} bad",
            valid.window.since,
            replayed.query_id,
            replayed.cost_usd,
            replayed.bad.len()
        );
    }
    for o in extra.outputs {
        let _ = writeln!(t, "  output:  {} ({} records)", o.exporter, o.records);
    }
    upload_lines(&mut t, extra.uploaded);
    if !summary.bad.is_empty() {
        let _ = writeln!(
            t,
            "  warning: {} bad records were skipped (listed above)",
            summary.bad.len()
        );
    }
    let replay_bad = extra.replay.map_or(0, |(_, r, _)| r.bad.len());
    if replay_bad > 0 {
        let _ = writeln!(
            t,
            "  warning: {replay_bad} bad records in the replayed span were skipped; `before` of the rows after them may be incomplete"
        );
    }
    t
}
