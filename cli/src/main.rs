//! `connect-audit`: who changed which Amazon Connect user, and when.
//!
//! The only crate that prints and uses `anyhow`. `main` maps outcomes to the documented exit
//! codes and treats a closed stdout (broken pipe) as success.

mod args;
mod athena;
mod aws;
mod completions;
mod incremental;
mod report;
mod review;
mod snapshot;
mod terminal;
mod verify;
mod watch;

use std::io;
use std::io::IsTerminal as _;

use clap::Parser as _;
use connect_audit_config::{ConfigError, Engine, Settings};
use figment::Figment;

use crate::args::{AthenaCommand, Cli, Command, ConfigCommand};
use crate::terminal::Reporter;

/// The documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Everything done.
    Success = 0,
    /// A run failed (I/O, snapshot, exporter): nothing was written under a final name by the
    /// failing exporter.
    Failed = 1,
    /// Bad command line or configuration.
    Usage = 2,
    /// Done and written, but bad trail files or records were skipped.
    BadInput = 3,
    /// Done and written, but a log file or digest was not verified (`verify`, `--verify`).
    Integrity = 4,
}

/// A usage mistake found by the CLI itself.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let code = match run(&cli) {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => ExitCode::Success,
        Err(err) => {
            terminal::error(&err);
            if err.downcast_ref::<ConfigError>().is_some()
                || err.downcast_ref::<UsageError>().is_some()
            {
                ExitCode::Usage
            } else {
                ExitCode::Failed
            }
        }
    };
    std::process::ExitCode::from(code as u8)
}

fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    // Completions need no configuration: a broken config file must not stop them.
    if let Command::Completions(args) = &cli.command {
        return completions::print(args.shell);
    }
    let figment =
        connect_audit_config::load_profile(cli.config.as_deref(), cli.profile.as_deref())?;
    match &cli.command {
        Command::Report(args) => report_command(figment, args, cli.quiet),
        Command::Verify(args) => verify::command(figment, args, cli.quiet),
        Command::AccessReview(args) => review::command(figment, args, cli.quiet),
        Command::Run(args) => run_command(figment, args, cli.quiet),
        Command::Watch(args) => watch::command(figment, args, cli.quiet),
        Command::Athena(AthenaCommand::Init(args)) => athena_init(&figment, args, cli.quiet),
        Command::Athena(AthenaCommand::Sql(args)) => athena_sql(figment, args),
        Command::Snapshot(args) => snapshot_command(figment, args, cli.quiet),
        Command::Replay(args) => {
            let settings: Settings = figment.extract().map_err(ConfigError::from)?;
            replay(&settings, args)
        }
        Command::Config(ConfigCommand::Check) => config_check(&figment, cli.config.as_deref()),
        Command::Config(ConfigCommand::Show) => config_show(&figment),
        Command::Completions(_) => unreachable!("answered before the configuration is loaded"),
    }
}

/// `report`: on the Athena engine, or on the local one, incremental with `--incremental`.
fn report_command(
    figment: Figment,
    args: &args::ReportArgs,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let figment = report::merge_flags(figment, args)?;
    let settings: Settings = figment.extract().map_err(ConfigError::from)?;
    let reporter = Reporter::new(quiet);
    if settings.report.engine == Engine::Athena {
        if settings.report.verify {
            return Err(UsageError(
                "--verify reads every log file (the local engine); with report.engine = \"athena\" \
                 run `connect-audit verify` over the same trail"
                    .into(),
            )
            .into());
        }
        if args.incremental {
            return Err(UsageError(
                "--incremental runs on the local engine; report.engine = \"athena\" \
                 is not supported for incremental runs yet"
                    .into(),
            )
            .into());
        }
        let valid = settings.validate_athena(&figment, jiff::Timestamp::now())?;
        return athena::report(&settings, &valid, &reporter);
    }
    let valid = settings.validate(&figment, jiff::Timestamp::now())?;
    let incremental = if args.incremental {
        Some(settings.validate_incremental(&figment)?)
    } else {
        None
    };
    report::run(&settings, valid, incremental.as_ref(), &reporter)
}

/// `run`: the snapshot (unless `--no-snapshot` or no instance is configured), then the
/// incremental report; a snapshot that did not succeed ends the run with its exit code.
fn run_command(figment: Figment, args: &args::RunArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let figment = report::merge_run_flags(figment, args);
    let settings: Settings = figment.extract().map_err(ConfigError::from)?;
    let reporter = Reporter::new(quiet);
    if settings.report.engine == Engine::Athena {
        return Err(UsageError(
            "`run` uses the local engine; report.engine = \"athena\" is not supported \
             for incremental runs yet"
                .into(),
        )
        .into());
    }
    let valid = settings.validate(&figment, jiff::Timestamp::now())?;
    let incremental = settings.validate_incremental(&figment)?;
    if !args.no_snapshot && !settings.instances.is_empty() {
        let snapshot = settings.validate_snapshot(&figment)?;
        let code = snapshot::run(&settings, &snapshot, &reporter)?;
        if code != ExitCode::Success {
            return Ok(code);
        }
    }
    report::run(&settings, valid, Some(&incremental), &reporter)
}

/// `athena init`: runs (or prints) the DDL of the Athena table.
fn athena_init(
    figment: &Figment,
    args: &args::AthenaInitArgs,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let settings: Settings = figment.extract().map_err(ConfigError::from)?;
    let valid = settings.validate_athena(figment, jiff::Timestamp::now())?;
    let reporter = Reporter::new(quiet);
    athena::init(&settings, &valid, args, &reporter)
}

/// `athena sql`: prints the audit query and its parameters.
fn athena_sql(figment: Figment, args: &args::AthenaSqlArgs) -> anyhow::Result<ExitCode> {
    let figment = athena::merge_sql_flags(figment, args);
    let settings: Settings = figment.extract().map_err(ConfigError::from)?;
    let valid = settings.validate_athena(&figment, jiff::Timestamp::now())?;
    Ok(athena::print_sql(&valid))
}

/// `snapshot`: snapshots the configured instances into the snapshot store.
fn snapshot_command(
    figment: Figment,
    args: &args::SnapshotArgs,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let figment = snapshot::merge_flags(figment, args);
    let settings: Settings = figment.extract().map_err(ConfigError::from)?;
    let valid = settings.validate_snapshot(&figment)?;
    let reporter = Reporter::new(quiet);
    snapshot::run(&settings, &valid, &reporter)
}

/// `config check`: validates what is configured (Athena, the local report, the incremental
/// state, the snapshot) and says so, one line each.
fn config_check(figment: &Figment, config: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    let settings: Settings = figment.extract().map_err(ConfigError::from)?;
    let file = connect_audit_config::config_file(config)?;
    let file = file.map_or_else(|| "no config file".to_owned(), |f| f.display().to_string());
    // Check what is configured: the report, the snapshot, or both.
    let snapshot_configured = !settings.instances.is_empty() || settings.snapshot.store.is_some();
    let athena_configured = settings.report.engine == Engine::Athena
        || settings.athena != connect_audit_config::AthenaSettings::default();
    let report_configured = settings.report.engine == Engine::Local
        && (settings.report.trail.is_some() || !snapshot_configured);
    if athena_configured {
        let valid = settings.validate_athena(figment, jiff::Timestamp::now())?;
        terminal::note(&format!(
            "connect-audit: athena configuration OK ({file}): table {}.{} over {}, {} accounts, {} regions, workgroup {}",
            valid.athena.database,
            valid.athena.table,
            valid.athena.aws_logs.url(""),
            valid.athena.accounts.len(),
            valid.athena.regions.len(),
            valid.athena.workgroup,
        ));
    }
    if report_configured {
        let valid = settings.validate(figment, jiff::Timestamp::now())?;
        terminal::note(&format!(
            "connect-audit: report configuration OK ({file}): trail {}, window {} .. {}, {} events, {} exporters",
            valid.trail,
            valid.window.since,
            valid.window.until,
            valid.events.names().count(),
            settings.exporters.len().max(1),
        ));
    }
    if settings.access_review != connect_audit_config::AccessReviewSettings::default() {
        let valid = settings.validate_access_review(figment, jiff::Timestamp::now())?;
        terminal::note(&format!(
            "connect-audit: access review configuration OK ({file}): as of {}, period from {}, {} exporters",
            valid.at,
            valid.since,
            valid.exporters.len(),
        ));
    }
    if settings.incremental != connect_audit_config::IncrementalSettings::default() {
        let valid = settings.validate_incremental(figment)?;
        terminal::note(&format!(
            "connect-audit: incremental configuration OK ({file}): state {}, lookback {}",
            valid.state, settings.incremental.lookback,
        ));
    }
    if settings.watch != connect_audit_config::WatchSettings::default() {
        let valid = settings.validate_watch(figment)?;
        let source = match &valid.source {
            connect_audit_config::WatchSource::Queue(url) => format!("queue {url}"),
            connect_audit_config::WatchSource::Poll(every) => {
                format!("listings every {}s", every.as_secs())
            }
        };
        terminal::note(&format!(
            "connect-audit: watch configuration OK ({file}): {source}, batches of at most {}s or {} objects, claims in {}",
            valid.roll.as_secs(),
            valid.batch_objects,
            valid.claims,
        ));
    }
    if snapshot_configured {
        let valid = settings.validate_snapshot(figment)?;
        terminal::note(&format!(
            "connect-audit: snapshot configuration OK ({file}): store {}, {} instances",
            valid.store,
            valid.instances.len(),
        ));
    }
    Ok(ExitCode::Success)
}

/// `config show`: prints the merged settings as TOML.
fn config_show(figment: &Figment) -> anyhow::Result<ExitCode> {
    let settings: Settings = figment.extract().map_err(ConfigError::from)?;
    terminal::data(&toml::to_string_pretty(&settings)?);
    Ok(ExitCode::Success)
}

/// `replay FILE`: the dead-letter file's records, sent again.
fn replay(settings: &Settings, args: &args::ReplayArgs) -> anyhow::Result<ExitCode> {
    use connect_audit_config::ExporterSpec;
    let siem: Vec<(usize, &connect_audit_config::SiemWebhookSpec)> = settings
        .exporters
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e {
            ExporterSpec::SiemWebhook(s) => Some((i, s)),
            _ => None,
        })
        .collect();
    let chosen = if let Some(n) = args.exporter {
        siem.iter()
            .find(|(i, _)| *i == n)
            .ok_or_else(|| UsageError(format!("exporters[{n}] is not a siem-webhook exporter")))?
    } else {
        let same_file = |(_, s): &&(usize, &connect_audit_config::SiemWebhookSpec)| {
            std::path::Path::new(&s.dead_letter) == args.dead_letter
        };
        {
            match (siem.iter().find(same_file), siem.as_slice()) {
                (Some(found), _) => found,
                (None, [only]) => only,
                (None, []) => {
                    return Err(UsageError(
                        "no siem-webhook exporter is configured to replay through".into(),
                    )
                    .into());
                }
                (None, _) => {
                    return Err(UsageError(
                        "several siem-webhook exporters are configured: choose one with --exporter N"
                            .into(),
                    )
                    .into());
                }
            }
        }
    };
    let vars = report::credential_vars(connect_audit_exporters::Spec::credential_var(chosen.1));
    let summary = connect_audit_exporters::siem::replay_with(chosen.1, &args.dead_letter, &vars)
        .map_err(anyhow::Error::from)?;
    terminal::note(&format!(
        "connect-audit: replayed {} records of {} through {}; the file is removed",
        summary.records,
        summary.dead_letter.display(),
        summary.exporter
    ));
    Ok(ExitCode::Success)
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colors only for a person at a terminal: a log file read after a 02:00 run gets plain text.
    let colors = io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(colors)
        .with_target(false)
        .init();
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
