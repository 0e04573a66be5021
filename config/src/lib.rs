//! Configuration of connect-audit, layered lowest to highest:
//!
//! 1. built-in defaults;
//! 2. the config file: `--config PATH`, else `$CONNECT_AUDIT_CONFIG`, else `./connect-audit.toml`
//!    when it exists;
//! 3. environment variables `CONNECT_AUDIT_…`, nested keys split on `__`
//!    (`CONNECT_AUDIT_REPORT__SINCE=7d` sets `report.since`);
//! 4. command-line flags (merged by the CLI on top of [`load`]'s figment with [`flag`]).
//!
//! A file may hold profiles instead, so several teams share it: `[default.report]`,
//! `[team-blue.report]`, `[[team-blue.exporters]]`, … ([`load_profile`], `--profile` or
//! `CONNECT_AUDIT_PROFILE`). The selected profile is merged over `default`; `[global.…]`,
//! the environment and flags override both.
//!
//! This crate composes the components' own settings types, each beside its code: the exporter
//! specs ([`ExporterSpec`], `connect-audit-exporters`), `[athena]` ([`AthenaSettings`],
//! `connect-audit-query`) and `[snapshot]` ([`SnapshotSettings`], `connect-audit-snapshot`),
//! and calls their pure validation; it owns the layering, the profiles, the provenance of
//! every key and what only a whole configuration can tell (the report's window and scope,
//! outputs that collide).
//!
//! Validation ([`Settings::validate`]) is pure: no network, no disk, no credentials. Its errors
//! name the key and the file or variable that set it.
//!
//! ```
//! use connect_audit_config::{load, Settings};
//! figment::Jail::expect_with(|jail| {
//!     jail.create_file("connect-audit.toml", "[report]\ntrail = 'trail'\nsince = '2024-05-01'")?;
//!     jail.set_env("CONNECT_AUDIT_REPORT__UNTIL", "2024-05-08");
//!     let figment = load(None).unwrap();
//!     let settings: Settings = figment.extract()?;
//!     assert_eq!(settings.report.until.as_deref(), Some("2024-05-08"));
//!     Ok(())
//! });
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use connect_audit_core::{EventSelection, Location, Scope, Window};
use connect_audit_query::athena::settings::{is_account, is_region};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

pub use connect_audit_core::findings::{FindingRules, FindingSettings};
pub use connect_audit_exporters::{
    CsvSpec, ExporterSpec, HtmlSpec, JsonlSpec, ParquetSpec, RecordKind, RecordSchema, Secret,
    SiemFlavor, SiemWebhookSpec, ValidExporter,
};
pub use connect_audit_query::athena::{AthenaSettings, S3Path, ValidAthena};
pub use connect_audit_query::queue::{Source as WatchSource, ValidWatch, WatchSettings};
pub use connect_audit_snapshot::SnapshotSettings;

/// The file read when neither `--config` nor `CONNECT_AUDIT_CONFIG` names one.
pub const DEFAULT_FILE: &str = "connect-audit.toml";
/// The environment variable that names the config file.
pub const CONFIG_ENV: &str = "CONNECT_AUDIT_CONFIG";
/// The prefix of configuration environment variables.
pub const ENV_PREFIX: &str = "CONNECT_AUDIT_";
/// The environment variable that selects a profile of the config file.
pub const PROFILE_ENV: &str = "CONNECT_AUDIT_PROFILE";
/// The environment variable that lowers the instruction set of the trail scanner's vector code
/// (`sse2`, `avx2`, `avx512`): a diagnostic, not a setting of the config file.
pub const SIMD_ENV: &str = "CONNECT_AUDIT_SIMD";
/// The top-level sections of a config file without profiles.
const SECTIONS: [&str; 9] = [
    "report",
    "watch",
    "access_review",
    "findings",
    "exporters",
    "instances",
    "snapshot",
    "athena",
    "incremental",
];

/// Everything a run can be told.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `[report]`: what to scan and for which window.
    #[serde(default)]
    pub report: ReportSettings,
    /// `[[exporters]]`: where the records go. Default: none (the CLI then writes JSON Lines to
    /// stdout).
    #[serde(default)]
    pub exporters: Vec<ExporterSpec>,
    /// `[[instances]]`: the Connect instances to snapshot. Default: none.
    #[serde(default)]
    pub instances: Vec<InstanceSettings>,
    /// `[snapshot]`: where and how the user directory is snapshotted.
    #[serde(default)]
    pub snapshot: SnapshotSettings,
    /// `[athena]`: the distributed engine (`report --engine athena`, `athena …`).
    #[serde(default)]
    pub athena: AthenaSettings,
    /// `[incremental]`: the state of `report --incremental` and `run`.
    #[serde(default)]
    pub incremental: IncrementalSettings,
    /// `[findings]`: the settings of the rules the change stage checks each row against.
    #[serde(default)]
    pub findings: FindingSettings,
    /// `[access_review]`: the time, period and outputs of `access-review`.
    #[serde(default)]
    pub access_review: AccessReviewSettings,
    /// `[watch]`: how `watch` follows the trail (a queue, or polling).
    #[serde(default)]
    pub watch: WatchSettings,
}

/// `[access_review]`: who holds what as of a time (`connect-audit access-review`). The trail,
/// the snapshot store, the engine and the scope are the report's (`[report]`, `[athena]`).
///
/// ```toml
/// [access_review]
/// at = "2024-06-30"
/// since = "90d"
///
/// [[access_review.exporters]]
/// type = "html"
/// path = "review-2024-Q2.html"
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessReviewSettings {
    /// The review time: a date (its midnight, UTC), an RFC 3339 time, or `now`. Default: now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// The start of the review period (sign-ins, grants and users created in it are
    /// counted): a time, or a duration back from `at` (`90d`, `13w`). Default: `90d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Where the entitlements go, as `[[exporters]]` (`csv`, `jsonl`, `parquet`, `html`; no
    /// OCSF, no SIEM). Default: CSV on stdout.
    #[serde(default)]
    pub exporters: Vec<ExporterSpec>,
}

/// `[access_review]`, checked: its time and period and its exporters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidAccessReview {
    /// The review time.
    pub at: Timestamp,
    /// The start of the review period, before `at`.
    pub since: Timestamp,
    /// The exporters, validated for entitlements.
    pub exporters: Vec<ValidExporter>,
}

/// The default review period: 90 days back from the review time.
const REVIEW_PERIOD: &str = "90d";

/// `[incremental]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncrementalSettings {
    /// The state object: a local file or `s3://bucket/key`. Default:
    /// `connect-audit-state.json`.
    #[serde(default = "default_state")]
    pub state: String,
    /// How far before the last run's end each run looks again, for events CloudTrail
    /// delivers late: `90m`, `2h`, `1d`. Default: `2h`.
    #[serde(default = "default_lookback")]
    pub lookback: String,
    /// How long after a newer object of its region CloudTrail may still put one (see
    /// `connect_audit_core::objects`): each run lists that far back again and reads what it
    /// has not read. `5m` to `1d`. Default: `15m`.
    #[serde(default = "default_lateness")]
    pub lateness: String,
}

impl Default for IncrementalSettings {
    fn default() -> Self {
        Self {
            state: default_state(),
            lookback: default_lookback(),
            lateness: default_lateness(),
        }
    }
}

fn default_lateness() -> String {
    "15m".to_owned()
}

fn default_state() -> String {
    "connect-audit-state.json".to_owned()
}

fn default_lookback() -> String {
    "2h".to_owned()
}

/// `[incremental]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidIncremental {
    /// Where the state lives.
    pub state: Location,
    /// How far back each run looks before the watermark.
    pub lookback: jiff::SignedDuration,
    /// How late an object may be put after a newer one of its region.
    pub lateness: jiff::SignedDuration,
}

/// The longest lookback accepted: the state keeps every event id it covers.
const MAX_LOOKBACK_HOURS: i64 = 7 * 24;

/// Reads `90m`, `2h`, `1d` (at most 7 days; zero allowed).
fn parse_lookback(text: &str) -> Result<jiff::SignedDuration, String> {
    let t = text.trim();
    let bad = || {
        format!(
            "`{}` is not a duration such as 90m, 2h or 1d",
            t.escape_default()
        )
    };
    let lookback = connect_audit_core::window::parse_duration(t).ok_or_else(bad)?;
    if lookback > jiff::SignedDuration::from_hours(MAX_LOOKBACK_HOURS) {
        return Err(format!("{t} is longer than the 7 days accepted"));
    }
    Ok(lookback)
}

/// `[[instances]]`: one Amazon Connect instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceSettings {
    /// The instance id or ARN. Required.
    pub id: String,
    /// Its region. Default: the region of the ARN, else the AWS default region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Its account (informational; checked against the ARN). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

/// Which engine a report runs on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// The embedded engine: scans the trail on this machine.
    #[default]
    Local,
    /// Amazon Athena: the join runs where the trail is (see `[athena]`).
    Athena,
}

/// `[report]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSettings {
    /// The engine: `local` (scan here) or `athena`. Default: `local`.
    #[serde(default)]
    pub engine: Engine,
    /// The CloudTrail logs: a directory holding `AWSLogs/` (or any folder above or below it).
    /// Required for a report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trail: Option<String>,
    /// The snapshot store (a directory with `users/<id>.json`). Default: none; names then come
    /// from the trail alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// First instant of the window: a date, RFC 3339, or a duration back from now (`7d`).
    /// Default: 7 days before `until`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// First instant after the window (exclusive). Default: now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Event groups or names to audit. Default: `["default"]` (user, permissions, hierarchy,
    /// security_profile, routing_profile, tags).
    #[serde(default)]
    pub events: Vec<String>,
    /// Exit 0 even when bad trail files were skipped (they are still reported). Default: false.
    #[serde(default)]
    pub tolerate_bad_files: bool,
    /// Scanner threads. Default: the number of cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    /// Report only events of these accounts (`recipientAccountId`). Default: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<String>,
    /// Report only events of these regions. Default: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
    /// Report only events of these Connect instances (ids or ARNs); events that name no
    /// instance are then left out. Default: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instance_ids: Vec<String>,
    /// Keys removed from `request_parameters` and `response_elements` besides the secret
    /// credentials that are always removed (`Password`, `AuthCode`, `Credentials`,
    /// `AccessToken`, `RefreshToken`, `SignInUrl`), at any depth, in any letter case: e.g.
    /// `["Email", "Mobile"]`. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redact_keys: Vec<String>,
    /// Verify the log files read against CloudTrail's signed digests (local engine): the
    /// summary, the HTML header and the exit code (4) carry the verdict. Default: false.
    #[serde(default)]
    pub verify: bool,
    /// With `verify`, exit 0 even when a file is not verified (it is still reported).
    /// Default: false.
    #[serde(default)]
    pub tolerate_integrity: bool,
}

/// Where the value of a key came from, as a person reads it: never a Rust type name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provenance {
    /// No layer gives the key a value (an optional key left out, or a figment without the
    /// defaults).
    NotSet,
    /// The built-in default: no file, variable or flag set the key.
    Default,
    /// A layer set it: `file connect-audit.toml`, `environment variable
    /// CONNECT_AUDIT_REPORT__SINCE`, `--since`.
    SetBy(String),
}

impl fmt::Display for Provenance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotSet => f.write_str("not set"),
            Self::Default => f.write_str("default"),
            Self::SetBy(who) => write!(f, "set by {who}"),
        }
    }
}

/// A configuration problem: the key, who set it, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key, e.g. `report.since` or `exporters[1].timezone`.
    pub key: String,
    /// Where the value came from.
    pub origin: Provenance,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    /// The problem `message` of `key`, with who set it in `figment`.
    fn at(figment: &Figment, key: &str, message: String) -> Self {
        Self {
            key: key.to_owned(),
            origin: provenance(figment, key),
            message,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.key, self.origin, self.message)
    }
}

/// Configuration that could not be loaded or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file named by `--config` or `CONNECT_AUDIT_CONFIG` does not exist.
    #[error("config file {0} does not exist")]
    MissingFile(PathBuf),
    /// `--profile` names a profile the config file does not have.
    #[error("profile `{profile}` is not in {file}{}", known_profiles(.known))]
    UnknownProfile {
        /// The profile asked for.
        profile: String,
        /// The config file, or a note that there is none.
        file: String,
        /// The profiles the file has.
        known: Vec<String>,
    },
    /// A file with profiles also has sections outside them.
    #[error(
        "{file}: `[{section}]` is outside any profile, but the file has profiles: \
         write it as `[default.{section}]` (or `[<profile>.{section}]`)"
    )]
    MixedProfiles {
        /// The config file.
        file: PathBuf,
        /// The section outside the profiles.
        section: String,
    },
    /// A value has the wrong type or an unknown key (figment names key and source).
    #[error("{0}")]
    Extract(Box<figment::Error>),
    /// Values that parse but make no sense.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

impl From<figment::Error> for ConfigError {
    fn from(e: figment::Error) -> Self {
        Self::Extract(Box::new(e))
    }
}

/// Which config file a run reads: the explicit one, `$CONNECT_AUDIT_CONFIG`, or
/// `./connect-audit.toml` if present.
pub fn config_file(explicit: Option<&Path>) -> Result<Option<PathBuf>, ConfigError> {
    let named = explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os(CONFIG_ENV).map(PathBuf::from));
    match named {
        Some(path) if path.is_file() => Ok(Some(path)),
        Some(path) => Err(ConfigError::MissingFile(path)),
        None => Ok(Path::new(DEFAULT_FILE)
            .is_file()
            .then(|| PathBuf::from(DEFAULT_FILE))),
    }
}

/// The layered figment: defaults, the config file, then `CONNECT_AUDIT_…` variables. Merge
/// flags on top with [`flag`], then `extract::<Settings>()`. A file with profiles is read
/// as its `default` profile.
pub fn load(explicit: Option<&Path>) -> Result<Figment, ConfigError> {
    load_profile(explicit, None)
}

/// [`load`] with a profile of the config file selected (`None` or `"default"`: the default
/// profile). A file has profiles when it has a top-level `[default]` or `[global]` table, or a
/// table named as the selected profile; its other sections then all live inside profiles.
pub fn load_profile(
    explicit: Option<&Path>,
    profile: Option<&str>,
) -> Result<Figment, ConfigError> {
    let selected = profile.filter(|p| !p.is_empty()).unwrap_or("default");
    let mut figment = Figment::from(Named {
        name: DEFAULTS.to_owned(),
        value: Serialized::defaults(Settings::default()),
    });
    let file = config_file(explicit)?;
    let tables = file.as_deref().and_then(top_level_tables);
    let profiled = tables.as_ref().is_some_and(|t| {
        t.iter()
            .any(|name| name == "default" || name == "global" || name == selected)
    });
    match file {
        Some(file) if profiled => {
            let tables = tables.unwrap_or_default();
            if let Some(section) = tables.iter().find(|t| SECTIONS.contains(&t.as_str())) {
                return Err(ConfigError::MixedProfiles {
                    file,
                    section: section.clone(),
                });
            }
            if selected != "default" && !tables.iter().any(|t| t == selected) {
                return Err(unknown_profile(
                    selected,
                    &file.display().to_string(),
                    tables,
                ));
            }
            figment = figment.merge(Toml::file_exact(file).nested());
        }
        Some(file) => {
            if selected != "default" {
                return Err(unknown_profile(
                    selected,
                    &file.display().to_string(),
                    Vec::new(),
                ));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        None if selected != "default" => {
            return Err(unknown_profile(selected, "no config file", Vec::new()));
        }
        None => {}
    }
    Ok(figment
        .merge(
            Env::prefixed(ENV_PREFIX)
                .ignore(&["config", "profile", "simd"])
                .split("__")
                .global(),
        )
        .select(selected))
}

/// Merges a command-line flag over everything else (the file's profiles included).
#[must_use]
pub fn flag<T: Serialize>(figment: Figment, key: &str, value: T) -> Figment {
    // Named as the user typed it; two keys are set by flags not named after them.
    let name = match key {
        "exporters" => "--format/--output".to_owned(),
        "instances" => "--instance".to_owned(),
        _ => format!(
            "--{}",
            key.rsplit('.').next().unwrap_or(key).replace('_', "-")
        ),
    };
    figment.merge(Named {
        name,
        value: Serialized::global(key, value),
    })
}

/// The name of the built-in defaults' provider, which [`provenance`] reads as
/// [`Provenance::Default`].
const DEFAULTS: &str = "built-in defaults";

/// Serialised values as a figment provider with a name a person reads: a message about a
/// value then says `set by --since` or `default`, not the Rust type it was serialised from
/// (figment names a [`Serialized`] provider after its type, e.g. `connect_audit_config::Settings`).
struct Named<T> {
    name: String,
    value: Serialized<T>,
}

impl<T: Serialize> figment::Provider for Named<T> {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named(self.name.clone())
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        self.value.data()
    }
}

fn unknown_profile(profile: &str, file: &str, mut known: Vec<String>) -> ConfigError {
    known.retain(|t| t != "global");
    ConfigError::UnknownProfile {
        profile: profile.to_owned(),
        file: file.to_owned(),
        known,
    }
}

fn known_profiles(known: &[String]) -> String {
    if known.is_empty() {
        " (it has no profiles)".to_owned()
    } else {
        format!(" (profiles: {})", known.join(", "))
    }
}

/// The names of the top-level tables of a TOML file; `None` when it cannot be read or parsed
/// (loading it then reports why).
fn top_level_tables(file: &Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(file).ok()?;
    let table: toml::Table = text.parse().ok()?;
    Some(
        table
            .iter()
            .filter(|(_, v)| v.is_table() || v.is_array())
            .map(|(k, _)| k.clone())
            .collect(),
    )
}

/// One instance, checked: a bare id and the region to call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidInstance {
    /// The bare instance id (UUID).
    pub id: String,
    /// The region from config or the ARN; `None` means the AWS default region.
    pub region: Option<String>,
    /// The account from config or the ARN.
    pub account: Option<String>,
}

/// A snapshot's settings, checked.
#[derive(Debug, Clone)]
pub struct ValidSnapshot {
    /// The store.
    pub store: Location,
    /// The instances.
    pub instances: Vec<ValidInstance>,
}

/// A report's settings, checked and turned into domain values.
#[derive(Debug, Clone)]
pub struct ValidReport {
    /// The trail location.
    pub trail: Location,
    /// The snapshot store, if any.
    pub snapshot: Option<Location>,
    /// The time window.
    pub window: Window,
    /// The audited events.
    pub events: EventSelection,
    /// The accounts, regions and instances reported.
    pub scope: Scope,
    /// The exporters, validated; JSON Lines on stdout when none is configured.
    pub exporters: Vec<ValidExporter>,
    /// The rules of the findings.
    pub findings: FindingRules,
}

/// A report on the Athena engine, checked.
#[derive(Debug, Clone)]
pub struct ValidAthenaReport {
    /// The database, tables, workgroup and locations.
    pub athena: ValidAthena,
    /// The time window.
    pub window: Window,
    /// The audited events.
    pub events: EventSelection,
    /// The accounts, regions and instances reported.
    pub scope: Scope,
    /// The exporters, validated; JSON Lines on stdout when none is configured.
    pub exporters: Vec<ValidExporter>,
    /// The rules of the findings.
    pub findings: FindingRules,
}

/// The events a report selects, as both engines check them: when (the window), which calls
/// (the events) and where (accounts, regions, instances), each `None` when it is invalid; and
/// the exporters that are valid.
struct ReportSelection {
    window: Option<Window>,
    events: Option<EventSelection>,
    scope: Option<Scope>,
    exporters: Vec<ValidExporter>,
    findings: Option<FindingRules>,
}

impl Settings {
    /// What both engines' reports check: the window, events, scope, threads, redacted keys,
    /// the AWS calls' retries and the exporters.
    fn check_common(
        &self,
        now: Timestamp,
        problem: &mut impl FnMut(&str, String),
    ) -> ReportSelection {
        let r = &self.report;
        let mut window = None;
        for (key, value) in [("report.since", &r.since), ("report.until", &r.until)] {
            if let Some(v) = value
                && let Err(e) = connect_audit_core::window::parse_time(v, now)
            {
                problem(key, e.to_string());
            }
        }
        match Window::parse(r.since.as_deref(), r.until.as_deref(), now) {
            Ok(w) => window = Some(w),
            Err(e @ connect_audit_core::window::WindowError::Empty { .. }) => {
                problem("report.since", e.to_string());
            }
            Err(_) => {}
        }
        let events = match EventSelection::parse(&r.events) {
            Ok(e) => Some(e),
            Err(e) => {
                problem("report.events", e.to_string());
                None
            }
        };
        if r.threads == Some(0) {
            problem("report.threads", "must be at least 1".into());
        }
        self.snapshot.check_aws_calls(problem);
        let mut scope_ok = true;
        for a in &r.accounts {
            if !is_account(a) {
                scope_ok = false;
                problem(
                    "report.accounts",
                    format!("`{}` is not a 12-digit account id", a.escape_default()),
                );
            }
        }
        for g in &r.regions {
            if !is_region(g) {
                scope_ok = false;
                problem(
                    "report.regions",
                    format!("`{}` is not an AWS region", g.escape_default()),
                );
            }
        }
        let mut instances = Vec::new();
        for (i, id) in r.instance_ids.iter().enumerate() {
            let settings = InstanceSettings {
                id: id.clone(),
                region: None,
                account: None,
            };
            match check_instance(&settings) {
                Ok(valid) => instances.push(valid.id.to_ascii_lowercase()),
                Err(message) => {
                    scope_ok = false;
                    problem(&format!("report.instance_ids[{i}]"), message);
                }
            }
        }
        for (i, key) in r.redact_keys.iter().enumerate() {
            if key.trim().is_empty() || key.chars().any(char::is_control) {
                problem(
                    &format!("report.redact_keys[{i}]"),
                    format!(
                        "`{}` is not a JSON key name (empty, or a control character)",
                        key.escape_default()
                    ),
                );
            }
        }
        let exporters = validate_exporters(&self.exporters, problem);
        let findings = self.findings.check(problem);
        ReportSelection {
            exporters,
            findings,
            window,
            events,
            scope: scope_ok.then(|| Scope {
                accounts: r.accounts.clone(),
                regions: r.regions.clone(),
                instances,
            }),
        }
    }

    /// Checks a report on the Athena engine (and `athena init`/`athena sql`), without I/O:
    /// `[athena]`, the window, events, scope and exporters. The report's scope must lie within
    /// the accounts and regions the table covers.
    pub fn validate_athena(
        &self,
        figment: &Figment,
        now: Timestamp,
    ) -> Result<ValidAthenaReport, ConfigError> {
        let mut problems = Vec::new();
        let mut problem =
            |key: &str, message: String| problems.push(Problem::at(figment, key, message));
        let common = self.check_common(now, &mut problem);
        let snapshot = match (&self.report.snapshot, &self.snapshot.store) {
            (Some(s), _) => Some(("report.snapshot", s.as_str())),
            (None, Some(s)) => Some(("snapshot.store", s.as_str())),
            (None, None) => None,
        };
        let mut athena = self
            .athena
            .check(self.report.trail.as_deref(), snapshot, &mut problem);
        if let Some(a) = &mut athena {
            a.lake = self.lake(&mut problem);
        }
        if let Some(a) = &athena {
            for account in &self.report.accounts {
                if !a.accounts.contains(account) {
                    problem(
                        "report.accounts",
                        format!(
                            "`{account}` is not one of athena.accounts, which the table covers"
                        ),
                    );
                }
            }
            for region in &self.report.regions {
                if !a.regions.contains(region) {
                    problem(
                        "report.regions",
                        format!("`{region}` is not one of athena.regions, which the table covers"),
                    );
                }
            }
        }
        match (
            athena,
            common.window,
            common.events,
            common.scope,
            common.findings,
        ) {
            (Some(athena), Some(window), Some(events), Some(scope), Some(findings))
                if problems.is_empty() =>
            {
                Ok(ValidAthenaReport {
                    athena,
                    window,
                    events,
                    scope,
                    exporters: common.exporters,
                    findings,
                })
            }
            _ => Err(ConfigError::Invalid(problems)),
        }
    }

    /// The data lake Athena can read: the first `parquet` exporter with `partition_by_date`,
    /// the audit schema and an `s3://` path.
    fn lake(&self, problem: &mut impl FnMut(&str, String)) -> Option<S3Path> {
        self.exporters
            .iter()
            .enumerate()
            .find_map(|(i, spec)| match spec {
                ExporterSpec::Parquet(p)
                    if p.partition_by_date
                        && p.schema == RecordSchema::Audit
                        && p.path.starts_with("s3://") =>
                {
                    S3Path::parse(&p.path)
                        .map_err(|e| problem(&format!("exporters[{i}].path"), e))
                        .ok()
                }
                _ => None,
            })
    }

    /// Checks everything a report needs, without I/O. `now` anchors relative times.
    /// Problems name the key and, via `figment`, the file or variable that set it.
    pub fn validate(&self, figment: &Figment, now: Timestamp) -> Result<ValidReport, ConfigError> {
        let mut problems = Vec::new();
        let mut problem =
            |key: &str, message: String| problems.push(Problem::at(figment, key, message));
        let r = &self.report;
        let trail = match r.trail.as_deref().map(Location::parse) {
            None => {
                problem("report.trail", "give --trail DIR or report.trail".into());
                None
            }
            Some(Err(e)) => {
                problem("report.trail", e.to_string());
                None
            }
            Some(Ok(l)) => Some(l),
        };
        let snapshot_key = if r.snapshot.is_some() {
            "report.snapshot"
        } else {
            "snapshot.store"
        };
        let snapshot_text = r.snapshot.as_deref().or(self.snapshot.store.as_deref());
        let snapshot = match snapshot_text.map(Location::parse) {
            Some(Err(e)) => {
                problem(snapshot_key, e.to_string());
                None
            }
            Some(Ok(l)) => Some(l),
            None => None,
        };
        let common = self.check_common(now, &mut problem);
        match (
            trail,
            common.window,
            common.events,
            common.scope,
            common.findings,
        ) {
            (Some(trail), Some(window), Some(events), Some(scope), Some(findings))
                if problems.is_empty() =>
            {
                Ok(ValidReport {
                    trail,
                    snapshot,
                    window,
                    events,
                    scope,
                    exporters: common.exporters,
                    findings,
                })
            }
            _ => Err(ConfigError::Invalid(problems)),
        }
    }
}

impl Settings {
    /// Checks `[access_review]`, without I/O: `now` anchors `at = "now"`; a duration of
    /// `since` goes back from `at`.
    pub fn validate_access_review(
        &self,
        figment: &Figment,
        now: Timestamp,
    ) -> Result<ValidAccessReview, ConfigError> {
        let mut problems = Vec::new();
        let mut problem =
            |key: &str, message: String| problems.push(Problem::at(figment, key, message));
        let r = &self.access_review;
        let at = match connect_audit_core::window::parse_time(r.at.as_deref().unwrap_or("now"), now)
        {
            Ok(at) if at > now => {
                problem(
                    "access_review.at",
                    format!("{at} is in the future: a review is of what was, up to now"),
                );
                None
            }
            Ok(at) => Some(at),
            Err(e) => {
                problem("access_review.at", e.to_string());
                None
            }
        };
        let since = at.and_then(|at| {
            let text = r.since.as_deref().unwrap_or(REVIEW_PERIOD);
            match connect_audit_core::window::parse_time(text, at) {
                Ok(since) if since < at => Some(since),
                Ok(since) => {
                    problem(
                        "access_review.since",
                        format!(
                            "the review period is empty: {since} is not before the review time {at}"
                        ),
                    );
                    None
                }
                Err(e) => {
                    problem("access_review.since", e.to_string());
                    None
                }
            }
        });
        let exporters = if r.exporters.is_empty() {
            vec![ValidExporter::stdout_csv_of(RecordKind::Entitlement)]
        } else {
            check_exporters(
                "access_review.exporters",
                RecordKind::Entitlement,
                &r.exporters,
                &mut problem,
            )
        };
        match (at, since) {
            (Some(at), Some(since)) if problems.is_empty() => Ok(ValidAccessReview {
                at,
                since,
                exporters,
            }),
            _ => Err(ConfigError::Invalid(problems)),
        }
    }

    /// Checks `[watch]`, without I/O.
    pub fn validate_watch(&self, figment: &Figment) -> Result<ValidWatch, ConfigError> {
        self.watch.validate().map_err(|found| {
            ConfigError::Invalid(
                found
                    .into_iter()
                    .map(|(key, message)| Problem::at(figment, key, message))
                    .collect(),
            )
        })
    }

    /// Checks `[incremental]`, without I/O.
    pub fn validate_incremental(&self, figment: &Figment) -> Result<ValidIncremental, ConfigError> {
        let mut problems = Vec::new();
        let mut problem =
            |key: &str, message: String| problems.push(Problem::at(figment, key, message));
        let i = &self.incremental;
        let state = Location::parse(&i.state)
            .map_err(|e| problem("incremental.state", e.to_string()))
            .ok();
        let lookback = parse_lookback(&i.lookback)
            .map_err(|e| problem("incremental.lookback", e))
            .ok();
        let lateness = parse_lookback(&i.lateness)
            .and_then(|d| {
                if d < jiff::SignedDuration::from_mins(1) {
                    Err(format!("`{}` is shorter than a minute", i.lateness))
                } else {
                    Ok(d)
                }
            })
            .map_err(|e| problem("incremental.lateness", e))
            .ok();
        match (state, lookback, lateness) {
            (Some(state), Some(lookback), Some(lateness)) => Ok(ValidIncremental {
                state,
                lookback,
                lateness,
            }),
            _ => Err(ConfigError::Invalid(problems)),
        }
    }

    /// Checks what `snapshot` needs, without I/O: the store and at least one instance, each an
    /// instance id or ARN, with a plausible region and account.
    pub fn validate_snapshot(&self, figment: &Figment) -> Result<ValidSnapshot, ConfigError> {
        let mut problems = Vec::new();
        let mut problem =
            |key: &str, message: String| problems.push(Problem::at(figment, key, message));
        let store = match self.snapshot.store.as_deref().map(Location::parse) {
            None => {
                problem(
                    "snapshot.store",
                    "give --store s3://bucket/prefix (or a directory) or snapshot.store".into(),
                );
                None
            }
            Some(Err(e)) => {
                problem("snapshot.store", e.to_string());
                None
            }
            Some(Ok(l)) => Some(l),
        };
        if self.instances.is_empty() {
            problem(
                "instances",
                "no instance: give --instance ID-or-ARN or an [[instances]] entry".into(),
            );
        }
        self.snapshot.check(&mut problem);
        let mut instances = Vec::new();
        for (i, instance) in self.instances.iter().enumerate() {
            match check_instance(instance) {
                Ok(valid) => instances.push(valid),
                Err(message) => problem(&format!("instances[{i}]"), message),
            }
        }
        match store {
            Some(store) if problems.is_empty() => Ok(ValidSnapshot { store, instances }),
            _ => Err(ConfigError::Invalid(problems)),
        }
    }
}

/// An instance id or `arn:aws:connect:<region>:<account>:instance/<id>`, with region and
/// account checked against the ARN.
fn check_instance(instance: &InstanceSettings) -> Result<ValidInstance, String> {
    use connect_audit_core::ids::is_uuid;
    let (id, arn_region, arn_account) = if let Some(rest) = instance.id.strip_prefix("arn:") {
        let parts: Vec<&str> = rest.splitn(5, ':').collect();
        match parts.as_slice() {
            [_, "connect", region, account, resource] => match resource.strip_prefix("instance/") {
                Some(id) => (id, Some(*region), Some(*account)),
                None => return Err(format!("`{}` is not an instance ARN", instance.id)),
            },
            _ => return Err(format!("`{}` is not a Connect instance ARN", instance.id)),
        }
    } else {
        (instance.id.as_str(), None, None)
    };
    if !is_uuid(id) {
        return Err(format!("instance id `{id}` is not a Connect id (UUID)"));
    }
    let region = instance.region.as_deref().or(arn_region);
    if let (Some(given), Some(from_arn)) = (instance.region.as_deref(), arn_region)
        && given != from_arn
    {
        return Err(format!(
            "region `{given}` differs from the ARN's `{from_arn}`"
        ));
    }
    if let Some(r) = region
        && !(r.len() <= 32
            && r.split('-').count() >= 3
            && r.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
    {
        return Err(format!("`{r}` is not an AWS region"));
    }
    let account = instance.account.as_deref().or(arn_account);
    if let Some(a) = account
        && !(a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("account `{a}` is not a 12-digit AWS account id"));
    }
    if let (Some(given), Some(from_arn)) = (instance.account.as_deref(), arn_account)
        && given != from_arn
    {
        return Err(format!(
            "account `{given}` differs from the ARN's `{from_arn}`"
        ));
    }
    Ok(ValidInstance {
        id: id.to_owned(),
        region: region.map(str::to_owned),
        account: account.map(str::to_owned),
    })
}

/// The exporters, each by its own pure validation ([`ExporterSpec::check`]), and what only
/// all of them tell: no two write the same output. Gives the valid ones; none configured is
/// JSON Lines on stdout.
fn validate_exporters(
    specs: &[ExporterSpec],
    problem: &mut impl FnMut(&str, String),
) -> Vec<ValidExporter> {
    if specs.is_empty() {
        return vec![ValidExporter::stdout_jsonl()];
    }
    check_exporters("exporters", RecordKind::Audit, specs, problem)
}

/// The exporters of records of `kind` configured at `list` (`exporters`), each by its own
/// pure validation ([`ExporterSpec::check_for`]), and no two writing the same output.
fn check_exporters(
    list: &str,
    kind: RecordKind,
    specs: &[ExporterSpec],
    problem: &mut impl FnMut(&str, String),
) -> Vec<ValidExporter> {
    let mut valid = Vec::with_capacity(specs.len());
    let mut paths = BTreeSet::new();
    for (i, spec) in specs.iter().enumerate() {
        let key = format!("{list}[{i}]");
        let path = spec.path();
        if path.is_empty() {
            problem(&format!("{key}.path"), "must not be empty".into());
        } else if !paths.insert(path) {
            problem(
                &format!("{key}.path"),
                format!("`{path}` is already the output of another exporter"),
            );
        }
        valid.extend(spec.check_for(kind, &key, problem));
    }
    valid
}

/// Who set `key` in `figment` (as [`load`] builds it, flags merged with [`flag`]): a file, an
/// environment variable or a flag; else the built-in default; else nothing.
pub fn provenance(figment: &Figment, key: &str) -> Provenance {
    // `exporters[1].timezone` → the metadata of `exporters` (figment has no index paths).
    let lookup = key.split('[').next().unwrap_or(key);
    let Some(meta) = figment.find_metadata(lookup) else {
        return Provenance::NotSet;
    };
    if meta.name == DEFAULTS {
        return Provenance::Default;
    }
    Provenance::SetBy(match &meta.source {
        Some(figment::Source::File(path)) => format!("file {}", path.display()),
        _ if meta.name.contains("environment") => format!(
            "environment variable {ENV_PREFIX}{}",
            lookup.to_ascii_uppercase().replace('.', "__")
        ),
        _ => meta.name.to_string(),
    })
}

#[cfg(test)]
// figment's Jail closures must return figment's (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    fn now() -> Timestamp {
        "2024-05-08T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn layers_file_then_env_then_flags() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "connect-audit.toml",
                r#"
                [report]
                trail = "from-file"
                since = "2024-05-01"
                until = "2024-05-08"
                [[exporters]]
                type = "csv"
                path = "out.csv"
                timezone = "Asia/Tokyo"
                "#,
            )?;
            jail.set_env("CONNECT_AUDIT_REPORT__SINCE", "2024-05-02");
            let figment = load(None).unwrap();
            let s: Settings = figment.extract()?;
            assert_eq!(s.report.trail.as_deref(), Some("from-file"));
            assert_eq!(s.report.since.as_deref(), Some("2024-05-02"));
            assert_eq!(s.exporters.len(), 1);
            let figment = figment.merge(("report.trail", "from-flag"));
            let s: Settings = figment.extract()?;
            assert_eq!(s.report.trail.as_deref(), Some("from-flag"));
            let v = s.validate(&figment, now()).unwrap();
            assert_eq!(v.window.since, "2024-05-02T00:00:00Z".parse().unwrap());
            Ok(())
        });
    }

    #[test]
    fn access_review_times_and_exporters_are_checked_for_entitlements() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "connect-audit.toml",
                r#"
                [access_review]
                at = "2024-06-30"
                since = "13w"
                [[access_review.exporters]]
                type = "csv"
                path = "review.csv"
                columns = ["username", "grants", "decision"]
                [[access_review.exporters]]
                type = "html"
                path = "review.html"
                "#,
            )?;
            let figment = load(None).unwrap();
            let s: Settings = figment.extract()?;
            let v = s
                .validate_access_review(&figment, "2024-07-02T00:00:00Z".parse().unwrap())
                .unwrap();
            assert_eq!(v.at, "2024-06-30T00:00:00Z".parse().unwrap());
            assert_eq!(
                v.since,
                "2024-03-31T00:00:00Z".parse().unwrap(),
                "13 weeks back from `at`, not from now"
            );
            assert_eq!(v.exporters.len(), 2);
            assert!(
                v.exporters
                    .iter()
                    .all(|e| e.record_kind() == RecordKind::Entitlement)
            );
            // Nothing configured: CSV on stdout, the review's default; since 90 days back.
            let v = Settings::default()
                .validate_access_review(&figment, now())
                .unwrap();
            assert_eq!(v.at, now());
            assert_eq!(v.since, "2024-02-08T12:00:00Z".parse().unwrap());
            assert_eq!(v.exporters[0].kind(), "csv");
            assert_eq!(v.exporters[0].path(), "-");

            jail.create_file(
                "connect-audit.toml",
                r#"
                [access_review]
                at = "2030-01-01"
                [[access_review.exporters]]
                type = "csv"
                path = "review.csv"
                columns = ["event_time"]
                [[access_review.exporters]]
                type = "jsonl"
                path = "review.jsonl"
                schema = "ocsf"
                [[access_review.exporters]]
                type = "siem-webhook"
                flavor = "splunk-hec"
                url = "https://siem.example.com/hook"
                token = "t"
                "#,
            )?;
            let figment = load(None).unwrap();
            let s: Settings = figment.extract()?;
            let err = s
                .validate_access_review(&figment, now())
                .unwrap_err()
                .to_string();
            assert!(err.contains("access_review.at"), "{err}");
            assert!(err.contains("is in the future"), "{err}");
            assert!(
                err.contains("access_review.exporters[0].columns")
                    && err.contains("unknown column `event_time` (columns of the entitlement"),
                "{err}"
            );
            assert!(
                err.contains("access_review.exporters[1].schema")
                    && err.contains("`ocsf` is the shape of audit events"),
                "{err}"
            );
            assert!(
                err.contains("access_review.exporters[2].type")
                    && err.contains("a SIEM webhook takes audit records"),
                "{err}"
            );
            let flagged = flag(figment, "access_review.at", "2024-05-08");
            let flagged = flag(flagged, "access_review.since", "2024-05-09");
            let s: Settings = flagged.extract()?;
            let err = s
                .validate_access_review(&flagged, now())
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("access_review.since (set by --since)")
                    && err.contains("the review period is empty"),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    fn config_env_names_the_file() {
        Jail::expect_with(|jail| {
            jail.create_file("other.toml", "[report]\ntrail = 'x'")?;
            jail.set_env(CONFIG_ENV, "other.toml");
            let s: Settings = load(None).unwrap().extract()?;
            assert_eq!(s.report.trail.as_deref(), Some("x"));
            jail.set_env(CONFIG_ENV, "missing.toml");
            assert!(matches!(load(None), Err(ConfigError::MissingFile(_))));
            Ok(())
        });
    }

    #[test]
    fn problems_name_key_and_origin() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "connect-audit.toml",
                "[report]\ntrail = 't'\nevents = ['Bogus']\n[[exporters]]\ntype = 'csv'\npath = 'a.csv'\ntimezone = 'Mars/Base'\ncolumns = ['nope']",
            )?;
            jail.set_env("CONNECT_AUDIT_REPORT__SINCE", "yesterday");
            let figment = load(None).unwrap();
            let s: Settings = figment.extract()?;
            let err = s.validate(&figment, now()).unwrap_err().to_string();
            assert!(err.contains("report.since (set by"), "{err}");
            assert!(err.contains("CONNECT_AUDIT_REPORT__SINCE"), "{err}");
            assert!(err.contains("report.events (set by file"), "{err}");
            assert!(err.contains("connect-audit.toml"), "{err}");
            assert!(err.contains("exporters[0].timezone"), "{err}");
            assert!(err.contains("unknown column `nope`"), "{err}");

            // A flag is named as the user typed it, not as the type it was serialised from.
            let flagged = flag(figment, "report.since", "tomorrow");
            let err = s.validate(&flagged, now()).unwrap_err().to_string();
            assert!(err.contains("report.since (set by --since)"), "{err}");
            let flagged = flag(flagged, "report.tolerate_bad_files", "yes");
            let err = flagged.extract::<Settings>().unwrap_err().to_string();
            assert!(err.contains("--tolerate-bad-files"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn findings_settings_reach_the_report_and_bad_ones_are_named_with_their_file() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "connect-audit.toml",
                "[report]\ntrail = 't'\n[findings]\nprivileged_profiles = ['Admin', 'Ops']\nshort_lived = '2d'\n",
            )?;
            let figment = load(None).unwrap();
            let s: Settings = figment.extract()?;
            let valid = s.validate(&figment, now()).unwrap();
            assert_eq!(valid.findings.privileged_profiles, ["Admin", "Ops"]);
            assert_eq!(
                valid.findings.short_lived,
                jiff::SignedDuration::from_hours(48)
            );
            assert_eq!(
                valid.findings.break_glass_window,
                jiff::SignedDuration::from_hours(4),
                "the default"
            );
            jail.create_file(
                "connect-audit.toml",
                "[report]\ntrail = 't'\n[findings]\nbreak_glass_window = 'a while'\n",
            )?;
            let figment = load(None).unwrap();
            let s: Settings = figment.extract()?;
            let err = s.validate(&figment, now()).unwrap_err().to_string();
            assert!(
                err.contains("findings.break_glass_window (set by file"),
                "{err}"
            );
            assert!(err.contains("`a while` is not a duration"), "{err}");
            jail.create_file("connect-audit.toml", "[findings]\nshort = '1h'\n")?;
            let err = load(None).unwrap().extract::<Settings>().unwrap_err();
            assert!(err.to_string().contains("short"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn provenance_reads_default_or_not_set_never_a_type_name() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "connect-audit.toml",
                "[report]\nengine = 'athena'\ntrail = 's3://trail-bucket'\n",
            )?;
            jail.set_env("CONNECT_AUDIT_ATHENA__REGIONS", "[\"Mars\"]");
            let figment = load(None).unwrap();
            let s: Settings = figment.extract()?;
            let err = s.validate_athena(&figment, now()).unwrap_err().to_string();
            // The default (an empty list) is called that, not `connect_audit_config::Settings`.
            assert!(
                err.contains("athena.accounts (default): no account"),
                "{err}"
            );
            assert!(
                err.contains(
                    "athena.regions (set by environment variable CONNECT_AUDIT_ATHENA__REGIONS)"
                ),
                "{err}"
            );
            assert!(!err.contains("::") && !err.contains("Settings"), "{err}");

            assert_eq!(provenance(&figment, "athena.accounts"), Provenance::Default);
            assert_eq!(
                provenance(&figment, "snapshot.max_attempts"),
                Provenance::Default
            );
            assert_eq!(provenance(&figment, "report.snapshot"), Provenance::NotSet);
            assert_eq!(provenance(&figment, "no.such.key"), Provenance::NotSet);
            assert!(matches!(
                provenance(&figment, "report.engine"),
                Provenance::SetBy(who) if who.starts_with("file ") && who.ends_with("connect-audit.toml")
            ));
            let flagged = flag(figment.clone(), "report.threads", 0);
            assert_eq!(
                provenance(&flagged, "report.threads").to_string(),
                "set by --threads"
            );
            let flagged = flag(
                flagged,
                "exporters",
                vec![ExporterSpec::Jsonl(JsonlSpec::new("-"))],
            );
            assert_eq!(
                provenance(&flagged, "exporters[0].path").to_string(),
                "set by --format/--output"
            );
            let flagged = flag(flagged, "instances", Vec::<InstanceSettings>::new());
            assert_eq!(
                provenance(&flagged, "instances").to_string(),
                "set by --instance"
            );

            // A required key nobody set says so once, in the provenance.
            let err = Settings::default()
                .validate(&figment::Figment::new(), now())
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("report.trail (not set): give --trail DIR or report.trail"),
                "{err}"
            );
            assert_eq!(err.matches("not set").count(), 1, "{err}");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_source() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "connect-audit.toml",
                "[[exporters]]\ntype = 'jsonl'\npath = 'x'\ncompression = 'zstd'",
            )?;
            let err = load(None).unwrap().extract::<Settings>().unwrap_err();
            let text = err.to_string();
            assert!(text.contains("compression"), "{text}");
            Ok(())
        });
    }

    #[test]
    fn missing_trail_and_empty_window() {
        Jail::expect_with(|_| {
            let figment = load(None)
                .unwrap()
                .merge(("report.since", "2024-05-09"))
                .merge(("report.until", "2024-05-01"));
            let s: Settings = figment.extract()?;
            let err = s.validate(&figment, now()).unwrap_err().to_string();
            assert!(
                err.contains("report.trail (not set): give --trail DIR"),
                "{err}"
            );
            assert!(err.contains("window is empty"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn snapshot_settings_are_checked() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "connect-audit.toml",
                r#"
                [snapshot]
                store = "s3://audit-bucket/connect-audit"
                describe_users = true
                [[instances]]
                id = "arn:aws:connect:ap-northeast-1:111122223333:instance/11111111-2222-3333-4444-555555555555"
                [[instances]]
                id = "66666666-7777-8888-9999-000000000000"
                region = "us-east-1"
                [report]
                trail = "t"
                "#,
            )?;
            let figment = load(None).unwrap();
            let s: Settings = figment.extract()?;
            let v = s.validate_snapshot(&figment).unwrap();
            assert_eq!(v.instances.len(), 2);
            assert_eq!(v.instances[0].region.as_deref(), Some("ap-northeast-1"));
            assert_eq!(v.instances[0].account.as_deref(), Some("111122223333"));
            assert_eq!(v.instances[0].id, "11111111-2222-3333-4444-555555555555");
            let report = s.validate(&figment, now()).unwrap();
            assert_eq!(
                report.snapshot.unwrap().to_string(),
                "s3://audit-bucket/connect-audit",
                "report.snapshot defaults to snapshot.store"
            );
            Ok(())
        });
        let bad = |id: &str, region: Option<&str>| {
            check_instance(&InstanceSettings {
                id: id.into(),
                region: region.map(Into::into),
                account: None,
            })
            .unwrap_err()
        };
        assert!(bad("../../x", None).contains("not a Connect id"));
        assert!(bad("arn:aws:iam::1:role/x", None).contains("not a Connect instance ARN"));
        let arn =
            "arn:aws:connect:us-west-2:111122223333:instance/11111111-2222-3333-4444-555555555555";
        assert!(bad(arn, Some("eu-west-1")).contains("differs"));
        assert!(
            bad("11111111-2222-3333-4444-555555555555", Some("Mars")).contains("not an AWS region")
        );
        let empty = Settings::default();
        let err = empty
            .validate_snapshot(&Figment::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("snapshot.store (not set): give --store"),
            "{err}"
        );
        assert!(err.contains("instances (not set): no instance"), "{err}");
    }

    #[test]
    fn attempt_timeout_defaults_to_a_minute_and_must_be_at_least_a_second() {
        assert_eq!(SnapshotSettings::default().attempt_timeout_secs, 60);
        Jail::expect_with(|jail| {
            jail.create_file(
                "connect-audit.toml",
                r#"
                [report]
                trail = "t"
                [snapshot]
                store = "snap"
                [[instances]]
                id = "66666666-7777-8888-9999-000000000000"
                "#,
            )?;
            let figment = load(None).unwrap();
            let s: Settings = figment.extract()?;
            assert_eq!(s.snapshot.attempt_timeout_secs, 60, "the default");
            s.validate(&figment, now()).unwrap();
            s.validate_snapshot(&figment).unwrap();

            jail.set_env("CONNECT_AUDIT_SNAPSHOT__ATTEMPT_TIMEOUT_SECS", "5");
            let s: Settings = load(None).unwrap().extract()?;
            assert_eq!(s.snapshot.attempt_timeout_secs, 5);

            jail.set_env("CONNECT_AUDIT_SNAPSHOT__ATTEMPT_TIMEOUT_SECS", "0");
            let figment = load(None).unwrap();
            let s: Settings = figment.extract()?;
            // Every AWS call uses it, so the report and the snapshot both refuse a zero.
            let errors = [
                s.validate(&figment, now()).unwrap_err().to_string(),
                s.validate_snapshot(&figment).unwrap_err().to_string(),
            ];
            for err in errors {
                assert!(
                    err.contains("snapshot.attempt_timeout_secs (set by")
                        && err.contains("CONNECT_AUDIT_SNAPSHOT__ATTEMPT_TIMEOUT_SECS")
                        && err.contains("must be at least 1"),
                    "{err}"
                );
            }
            Ok(())
        });
    }

    #[test]
    fn exporter_paths_must_differ_and_parquet_needs_a_file() {
        let specs = vec![
            ExporterSpec::Jsonl(JsonlSpec::new("-")),
            ExporterSpec::Csv(CsvSpec::new("-")),
            ExporterSpec::Parquet(ParquetSpec::new("x")),
        ];
        let mut found = Vec::new();
        validate_exporters(&specs, &mut |k, m| found.push(format!("{k}: {m}")));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("exporters[1].path"));
    }

    #[test]
    fn profiles_merge_over_default_and_env_and_flags_win() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "teams.toml",
                r#"
                [default.report]
                trail = "shared-trail"
                since = "2024-05-01"
                [default.incremental]
                lookback = "3h"
                [team-blue.report]
                snapshot = "blue-store"
                [[team-blue.exporters]]
                type = "jsonl"
                path = "blue.jsonl"
                [team-red.report]
                trail = "red-trail"
                "#,
            )?;
            let file = Path::new("teams.toml");
            let blue: Settings = load_profile(Some(file), Some("team-blue"))
                .unwrap()
                .extract()?;
            assert_eq!(blue.report.trail.as_deref(), Some("shared-trail"));
            assert_eq!(blue.report.snapshot.as_deref(), Some("blue-store"));
            assert_eq!(blue.exporters.len(), 1);
            assert_eq!(blue.incremental.lookback, "3h");
            let red: Settings = load_profile(Some(file), Some("team-red"))
                .unwrap()
                .extract()?;
            assert_eq!(red.report.trail.as_deref(), Some("red-trail"));
            assert!(red.exporters.is_empty());
            let default: Settings = load(Some(file)).unwrap().extract()?;
            assert_eq!(default.report.trail.as_deref(), Some("shared-trail"));
            assert_eq!(default.report.snapshot, None);

            jail.set_env("CONNECT_AUDIT_REPORT__TRAIL", "env-trail");
            jail.set_env("CONNECT_AUDIT_PROFILE", "ignored-as-a-key");
            jail.set_env("CONNECT_AUDIT_SIMD", "sse2");
            let figment = load_profile(Some(file), Some("team-red")).unwrap();
            let red: Settings = figment.clone().extract()?;
            assert_eq!(
                red.report.trail.as_deref(),
                Some("env-trail"),
                "env beats the profile"
            );
            let red: Settings = flag(figment, "report.trail", "flag-trail").extract()?;
            assert_eq!(
                red.report.trail.as_deref(),
                Some("flag-trail"),
                "flags beat env"
            );
            Ok(())
        });
    }

    #[test]
    fn unknown_profiles_and_mixed_files_are_refused_naming_the_file() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "teams.toml",
                "[default.report]\ntrail = 't'\n[team-blue.report]\n",
            )?;
            let err = load_profile(Some(Path::new("teams.toml")), Some("team-gren")).unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains("team-gren") && text.contains("teams.toml"),
                "{text}"
            );
            assert!(text.contains("profiles: default, team-blue"), "{text}");

            jail.create_file("flat.toml", "[report]\ntrail = 't'\n")?;
            let err = load_profile(Some(Path::new("flat.toml")), Some("team-blue")).unwrap_err();
            assert!(err.to_string().contains("it has no profiles"), "{err}");
            let flat: Settings = load_profile(Some(Path::new("flat.toml")), Some("default"))
                .unwrap()
                .extract()?;
            assert_eq!(flat.report.trail.as_deref(), Some("t"));

            jail.create_file("mixed.toml", "[report]\ntrail = 't'\n[default.report]\n")?;
            let err = load(Some(Path::new("mixed.toml"))).unwrap_err().to_string();
            assert!(
                err.contains("[default.report]") && err.contains("mixed.toml"),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    fn incremental_settings_are_checked() {
        let mut s = Settings::default();
        let v = s.validate_incremental(&Figment::new()).unwrap();
        assert_eq!(v.lookback, jiff::SignedDuration::from_hours(2));
        assert_eq!(v.state, Location::Local("connect-audit-state.json".into()));
        s.incremental.lookback = "90m".into();
        s.incremental.state = "s3://state-bucket/teams/blue.json".into();
        let v = s.validate_incremental(&Figment::new()).unwrap();
        assert_eq!(v.lookback, jiff::SignedDuration::from_mins(90));
        for bad in ["2", "h", "-2h", "2 hours", "8d", "99999999999999999999d"] {
            s.incremental.lookback = bad.into();
            let err = s
                .validate_incremental(&Figment::new())
                .unwrap_err()
                .to_string();
            assert!(err.contains("incremental.lookback"), "{bad}: {err}");
        }
    }
}
