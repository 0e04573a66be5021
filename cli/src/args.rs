//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Who changed which Amazon Connect user, and when: turns CloudTrail logs into a readable,
/// complete audit trail (CSV, JSON Lines, Parquet, an HTML report).
#[derive(Debug, Parser)]
#[command(name = "connect-audit", version, about, long_about = None)]
#[command(
    after_help = "Exit codes: 0 done; 1 failed; 2 bad usage or configuration; \
3 done, but bad trail files or records were skipped (see stderr; --tolerate-bad-files exits 0); \
4 done, but a log file or digest was not verified (verify, --verify; --tolerate-integrity exits 0)."
)]
pub struct Cli {
    /// Config file. Default: $CONNECT_AUDIT_CONFIG, else ./connect-audit.toml if present.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// The profile of the config file to use (`[team-blue.report]`, …), merged over its
    /// `[default…]` tables. Default: default.
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        env = "CONNECT_AUDIT_PROFILE"
    )]
    pub profile: Option<String>,

    /// More log output on stderr (-v: info, -vv: debug). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// No progress bar and no summary on stderr (warnings and errors still appear).
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scan a CloudTrail trail and write the audit trail of Connect user changes.
    Report(ReportArgs),
    /// Who holds what as of a time, and who gave it to them: one row per user with their
    /// security profiles (privileged marked), each profile's grant (who and when, from the
    /// trail), routing profile, hierarchy group, last change and sign-ins in the review
    /// period, for a user access review (SOX, ISO 27001, PCI DSS).
    AccessReview(AccessReviewArgs),
    /// Verify a trail's log files against CloudTrail's signed hourly digests: each file
    /// verified, modified, missing or unlisted, each digest verified, missing, invalid or
    /// modified; the chain followed per account and region. One JSON line per file with
    /// --output.
    Verify(VerifyArgs),
    /// Snapshot the Connect user directory (users, security profiles, routing profiles,
    /// hierarchy groups) into the snapshot store. Objects are never deleted; a user gone from
    /// Connect is marked Deleted. An unchanged re-run writes no object.
    Snapshot(SnapshotArgs),
    /// The nightly job: snapshot the instances (when [[instances]] are configured), then an
    /// incremental report into every configured exporter. The state ([incremental]) advances
    /// only when every exporter finished.
    Run(RunArgs),
    /// Follow the trail as it lands, until stopped (SIGTERM or Ctrl-C: the batch in flight is
    /// finished, nothing unfinished is acknowledged): S3 notifications on an SQS queue
    /// (--queue), or listings of only the keys after the last seen (--poll). Every new
    /// object's audited events go to every configured exporter, one file per batch.
    Watch(WatchArgs),
    /// Send the records of a SIEM dead-letter file again, through the configured
    /// siem-webhook exporter. The file is removed when all were delivered, or replaced by the
    /// records refused again (exit 1).
    Replay(ReplayArgs),
    /// Check or print the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Amazon Athena: create the tables and view, or print the audit query.
    #[command(subcommand)]
    Athena(AthenaCommand),
    /// Print shell completions on stdout, e.g.
    /// `connect-audit completions bash > ~/.local/share/bash-completion/completions/connect-audit`.
    /// Reads no configuration.
    Completions(CompletionsArgs),
}

/// `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

/// `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// End (exclusive) of the run's window. Default: now. [report.until]
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub until: Option<String>,

    /// Exit 0 (and advance the state) even when bad trail files or records were skipped.
    /// [report.tolerate_bad_files]
    #[arg(long)]
    pub tolerate_bad_files: bool,

    /// Skip the snapshot even when instances are configured.
    #[arg(long)]
    pub no_snapshot: bool,
}

/// `watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The SQS queue S3 notifies of new trail objects (direct, through SNS, or EventBridge).
    /// [watch.queue]
    #[arg(long, value_name = "URL", conflicts_with = "poll")]
    pub queue: Option<String>,

    /// Without a queue: list the trail for new objects this often (5m, 30s). [watch.poll]
    #[arg(long, value_name = "PERIOD")]
    pub poll: Option<String>,

    /// Queue: the longest a batch gathers objects before it is written (1m, 1h).
    /// [watch.roll]
    #[arg(long, value_name = "PERIOD")]
    pub roll: Option<String>,

    /// Acknowledge (and record as read) objects that are not readable CloudTrail files
    /// instead of leaving their messages to the queue's redrive. [report.tolerate_bad_files]
    #[arg(long)]
    pub tolerate_bad_files: bool,
}

/// `replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The dead-letter file (JSON Lines, as a siem-webhook exporter wrote it).
    #[arg(value_name = "FILE")]
    pub dead_letter: PathBuf,

    /// Which exporter to send through, by its position in [[exporters]] (0 is the first).
    /// Default: the siem-webhook exporter whose dead_letter is FILE, else the only one.
    #[arg(long, value_name = "N")]
    pub exporter: Option<usize>,
}

/// `athena …`.
#[derive(Debug, Subcommand)]
pub enum AthenaCommand {
    /// Create the database, the CloudTrail table (partition projection over [athena] accounts,
    /// regions and dates) and the snapshot tables. Idempotent: existing tables are kept.
    Init(AthenaInitArgs),
    /// Print the audit query for a window on stdout, its parameters as `--` comment lines
    /// after it. Runs nothing.
    Sql(AthenaSqlArgs),
}

/// `athena init` flags.
#[derive(Debug, Args)]
pub struct AthenaInitArgs {
    /// Also create (or replace) the view `connect_user_audit`, one row per audited event, for
    /// the Athena console and BI tools.
    #[arg(long)]
    pub view: bool,
    /// Drop and re-create the tables (after [athena] accounts, regions or locations changed).
    /// They are external: no log or snapshot object is deleted.
    #[arg(long)]
    pub replace: bool,
    /// Print the statements instead of running them.
    #[arg(long)]
    pub dry_run: bool,
}

/// `athena sql` flags; each overrides the config key named in its help.
#[derive(Debug, Args)]
pub struct AthenaSqlArgs {
    /// Start of the window (inclusive), as for `report`. [report.since]
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub since: Option<String>,
    /// End of the window (exclusive). [report.until]
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub until: Option<String>,
    /// Event groups or names, comma-separated. [report.events]
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub events: Option<Vec<String>>,
}

/// `config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration (no network, no files read but the config); exit 2 if invalid.
    Check,
    /// Print the effective configuration (defaults, file, environment merged) as TOML.
    Show,
}

/// `verify` flags; each overrides the config key named in its help.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// CloudTrail logs, as for `report`: a directory or `s3://bucket/prefix` holding AWSLogs/
    /// (with its CloudTrail-Digest/ folders). [report.trail]
    #[arg(long, value_name = "DIR")]
    pub trail: Option<String>,

    /// Start of the window, as for `report`: the files delivered in its days (a day of
    /// slack on each side) are verified. [report.since]
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub since: Option<String>,

    /// End of the window (exclusive). [report.until]
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub until: Option<String>,

    /// Write one JSON object per log file and digest (kind, key, verdict, detail, digest)
    /// to this file, or `-` for stdout.
    #[arg(long, short, value_name = "PATH", allow_hyphen_values = true)]
    pub output: Option<String>,

    /// Exit 0 even when a file is not verified (it is still reported).
    /// [report.tolerate_integrity]
    #[arg(long)]
    pub tolerate_integrity: bool,
}

/// `access-review` flags; each overrides the config key named in its help.
#[derive(Debug, Args)]
pub struct AccessReviewArgs {
    /// The review time: 2024-06-30 (its midnight, UTC: the state at the end of June 29),
    /// RFC 3339, or `now`. Default: now. [access_review.at]
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub at: Option<String>,

    /// Start of the review period (sign-ins, grants and users created in it are counted): a
    /// time, or a duration back from --at (90d, 13w). Default: 90d. [access_review.since]
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub since: Option<String>,

    /// CloudTrail logs, as for `report`. [report.trail]
    #[arg(long, value_name = "DIR")]
    pub trail: Option<String>,

    /// Snapshot store, as for `report`: the users as its history observed them. [report.snapshot]
    #[arg(long, value_name = "DIR")]
    pub snapshot: Option<String>,

    /// Query engine: `local` or `athena`. [report.engine]
    #[arg(long, value_enum)]
    pub engine: Option<EngineArg>,

    /// Only these Connect instances (ids), comma-separated. [report.instance_ids]
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub instance_ids: Option<Vec<String>>,

    /// Exit 0 even when bad trail files or records were skipped. [report.tolerate_bad_files]
    #[arg(long)]
    pub tolerate_bad_files: bool,

    /// Output format: csv, jsonl, parquet or html (replaces [[access_review.exporters]]).
    /// Default: from the --output extension, else csv.
    #[arg(long, value_enum)]
    pub format: Option<Format>,

    /// Output file; `-` is stdout (not for parquet). `s3://bucket/key` uploads it.
    #[arg(long, short, value_name = "PATH", allow_hyphen_values = true)]
    pub output: Option<String>,
}

/// `report` flags; each overrides the config key named in its help.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// CloudTrail logs: a directory holding AWSLogs/ (or any folder above or below it).
    /// [report.trail]
    #[arg(long, value_name = "DIR")]
    pub trail: Option<String>,

    /// Snapshot store directory (users/<id>.json …). Without it, names come from the trail
    /// only. [report.snapshot]
    #[arg(long, value_name = "DIR")]
    pub snapshot: Option<String>,

    /// Start of the window (inclusive): 2024-05-01, RFC 3339, or a duration back from now
    /// (7d, 12h). Default: 7 days before --until. [report.since]
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub since: Option<String>,

    /// End of the window (exclusive), same forms. Default: now. [report.until]
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub until: Option<String>,

    /// Event groups or names, comma-separated: user, permissions, hierarchy,
    /// security_profile, routing_profile, tags (the default set), agent_status, instance,
    /// sign_in, default, all, or API names like UpdateUserHierarchy. [report.events]
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub events: Option<Vec<String>>,

    /// Exit 0 even when bad trail files or records were skipped (they are still reported).
    /// [report.tolerate_bad_files]
    #[arg(long)]
    pub tolerate_bad_files: bool,

    /// Continue from the last finished run ([incremental] state): the window starts a lookback
    /// before it, events delivered already are dropped, and the state advances only when every
    /// exporter finished. File exporters need `{since}` in their paths.
    #[arg(long)]
    pub incremental: bool,

    /// Verify the log files read against CloudTrail's signed digests (local engine): the
    /// summary, the HTML header and the exit code (4) carry the verdict. [report.verify]
    #[arg(long)]
    pub verify: bool,

    /// With --verify, exit 0 even when a file is not verified. [report.tolerate_integrity]
    #[arg(long)]
    pub tolerate_integrity: bool,

    /// Scanner threads. Default: the number of cores. [report.threads]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// Where the join runs: local (scan the trail here) or athena (see [athena]).
    /// [report.engine]
    #[arg(long, value_enum)]
    pub engine: Option<EngineArg>,

    /// Only these accounts, comma-separated. [report.accounts]
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub accounts: Option<Vec<String>>,

    /// Only these regions, comma-separated. [report.regions]
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub regions: Option<Vec<String>>,

    /// Only these Connect instances (ids or ARNs), comma-separated. [report.instance_ids]
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub instance_ids: Option<Vec<String>>,

    /// Write one output in this format instead of the configured [[exporters]].
    #[arg(long, value_enum)]
    pub format: Option<Format>,

    /// Where the --format output goes: a file, a directory (partitioned Parquet), or - for
    /// stdout. Default: stdout (csv, jsonl, html).
    #[arg(long, short, value_name = "PATH", allow_hyphen_values = true)]
    pub output: Option<String>,
}

/// `snapshot` flags; each overrides the config key named in its help.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// Instance id or ARN; repeat for several. Replaces [[instances]].
    #[arg(long, value_name = "ID-OR-ARN")]
    pub instance: Vec<String>,

    /// Region of the --instance ids (an ARN carries its own). Default: the AWS default region.
    #[arg(long, value_name = "REGION", requires = "instance")]
    pub region: Option<String>,

    /// The snapshot store: s3://bucket/prefix or a directory. [snapshot.store]
    #[arg(long, value_name = "LOCATION")]
    pub store: Option<String>,

    /// Call DescribeUser per user for e-mail, names, profiles and hierarchy group.
    /// [snapshot.describe_users]
    #[arg(long)]
    pub describe_users: bool,
}

/// `--engine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineArg {
    /// The embedded engine.
    Local,
    /// Amazon Athena.
    Athena,
}

/// Output formats of the one-exporter shorthand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Comma-separated values.
    Csv,
    /// JSON Lines.
    Jsonl,
    /// Parquet (zstd).
    Parquet,
    /// One self-contained HTML report: header, charts and a sortable table.
    Html,
}
