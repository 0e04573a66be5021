//! `[athena]`: the Athena engine's settings (database, tables, workgroup, locations) and their
//! pure checks, which turn them into the [`ValidAthena`] the DDL, the query and the runner take.
//!
//! Athena DDL cannot take parameters, so every value that reaches a `CREATE` statement
//! (names, S3 locations, account and region lists) is checked here against a strict pattern;
//! nothing else ever reaches the SQL text.

use connect_audit_core::Location;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

/// `[athena]`.
///
/// ```toml
/// [athena]
/// trail = "s3://org-trail-bucket/AWSLogs"        # or the bucket root above AWSLogs/
/// organization_id = "o-a1b2c3d4e5"               # organization trails only
/// accounts = ["111122223333", "444455556666"]
/// regions = ["ap-northeast-1", "us-east-1"]
/// output_location = "s3://athena-results/connect-audit/"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AthenaSettings {
    /// The Glue database the tables and the view live in. Default: `connect_audit`.
    #[serde(default = "default_database")]
    pub database: String,
    /// The CloudTrail table's name. Default: `cloudtrail`.
    #[serde(default = "default_table")]
    pub table: String,
    /// The workgroup queries run in. Default: `primary`.
    #[serde(default = "default_workgroup")]
    pub workgroup: String,
    /// Where Athena writes query results (`s3://bucket/prefix/`). Default: none, the
    /// workgroup's own setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_location: Option<String>,
    /// The trail's S3 location: the folder holding `AWSLogs/`, or `AWSLogs/` itself.
    /// Default: `report.trail` when it is an `s3://` location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trail: Option<String>,
    /// The AWS Organizations id of an organization trail (`AWSLogs/o-…/<account>/…`).
    /// Default: none (a trail of the accounts' own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<String>,
    /// The accounts whose logs the table covers (partition projection). Required.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// The regions the table covers (partition projection). Required.
    #[serde(default)]
    pub regions: Vec<String>,
    /// First delivery date the table covers, `YYYY-MM-DD`. Default: `2020-01-01`.
    #[serde(default = "default_projection_start")]
    pub projection_start: String,
    /// Longest a query may run before it is stopped, in seconds. Default: 1800.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Longest pause between two status polls, in milliseconds (polls start at 100 ms and
    /// double up to this). Default: 5000.
    #[serde(default = "default_poll_max")]
    pub poll_max_ms: u64,
}

impl Default for AthenaSettings {
    fn default() -> Self {
        Self {
            database: default_database(),
            table: default_table(),
            workgroup: default_workgroup(),
            output_location: None,
            trail: None,
            organization_id: None,
            accounts: Vec::new(),
            regions: Vec::new(),
            projection_start: default_projection_start(),
            timeout_secs: default_timeout(),
            poll_max_ms: default_poll_max(),
        }
    }
}

fn default_database() -> String {
    "connect_audit".into()
}
fn default_table() -> String {
    "cloudtrail".into()
}
fn default_workgroup() -> String {
    "primary".into()
}
fn default_projection_start() -> String {
    "2020-01-01".into()
}
fn default_timeout() -> u64 {
    1800
}
fn default_poll_max() -> u64 {
    5000
}

/// `[athena]`, checked: every value is safe to write into DDL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidAthena {
    /// Database name (`[a-z_][a-z0-9_]*`).
    pub database: String,
    /// CloudTrail table name (same pattern).
    pub table: String,
    /// Workgroup name (`[A-Za-z0-9._-]+`).
    pub workgroup: String,
    /// Query result location.
    pub output_location: Option<S3Path>,
    /// The `AWSLogs/` folder of the trail.
    pub aws_logs: S3Path,
    /// The organization id of an organization trail.
    pub organization_id: Option<String>,
    /// Accounts covered (12 digits each), in config order.
    pub accounts: Vec<String>,
    /// Regions covered, in config order.
    pub regions: Vec<String>,
    /// First delivery date covered.
    pub projection_start: Date,
    /// The snapshot store the snapshot tables read, when it is on S3.
    pub snapshot: Option<S3Path>,
    /// The data lake: the root of the first `parquet` exporter with `partition_by_date` and
    /// the audit schema on S3, which `athena init` makes a table of.
    pub lake: Option<S3Path>,
    /// Query timeout.
    pub timeout: std::time::Duration,
    /// Longest pause between polls.
    pub poll_max: std::time::Duration,
}

/// An S3 folder whose bucket and prefix contain only characters safe inside a SQL string
/// literal: `s3://bucket/prefix/` (always with a trailing `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Path {
    /// The bucket.
    pub bucket: String,
    /// The key prefix, without leading or trailing `/` (may be empty).
    pub prefix: String,
}

impl S3Path {
    /// `s3://bucket/prefix/` followed by `more` (which must itself be safe).
    pub fn url(&self, more: &str) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}/{more}", self.bucket)
        } else {
            format!("s3://{}/{}/{more}", self.bucket, self.prefix)
        }
    }

    /// Checks an `s3://` location for use in DDL.
    pub fn parse(text: &str) -> Result<Self, String> {
        let Ok(Location::S3 { bucket, prefix }) = Location::parse(text) else {
            return Err(format!(
                "`{text}` is not an s3://bucket/prefix location (Athena reads S3 only)"
            ));
        };
        let safe = |b: u8| b.is_ascii_alphanumeric() || b"/_.-!*()=+".contains(&b);
        if let Some(bad) = prefix.bytes().find(|b| !safe(*b)) {
            return Err(format!(
                "`{text}`: the character `{}` is not allowed in a location Athena tables read (letters, digits and / _ . - ! * ( ) = + only)",
                char::from(bad).escape_default()
            ));
        }
        if prefix.contains("//") {
            return Err(format!("`{text}`: empty folder name (`//`)"));
        }
        Ok(Self { bucket, prefix })
    }
}

/// Whether `name` is a safe Athena database or table name: lower-case letters, digits and
/// `_`, not starting with a digit, at most 128 characters.
pub fn is_identifier(name: &str) -> bool {
    let b = name.as_bytes();
    (1..=128).contains(&b.len())
        && !b[0].is_ascii_digit()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

/// Whether `name` is a valid workgroup name: letters, digits, `.`, `_`, `-`, 1 to 128.
pub fn is_workgroup(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c))
}

/// Whether `text` is a 12-digit AWS account id.
pub fn is_account(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `text` looks like an AWS region (`ap-northeast-1`, `us-gov-west-1`).
pub fn is_region(text: &str) -> bool {
    text.len() <= 32
        && text.split('-').count() >= 3
        && text.split('-').all(|p| !p.is_empty())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Whether `text` is an AWS Organizations id (`o-` and 10 to 32 lower-case letters or digits).
pub fn is_organization_id(text: &str) -> bool {
    text.strip_prefix("o-").is_some_and(|rest| {
        (10..=32).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

impl AthenaSettings {
    /// Checks `[athena]`; `report_trail` and `snapshot` are the report's trail and snapshot
    /// texts (their defaults). Calls `problem(key, message)` for each problem found.
    ///
    /// Problems are reported in key order: names, output location, trail, coverage
    /// (organization, accounts, regions), projection start, snapshot, limits.
    pub fn check(
        &self,
        report_trail: Option<&str>,
        snapshot: Option<(&str, &str)>,
        problem: &mut impl FnMut(&str, String),
    ) -> Option<ValidAthena> {
        let mut ok = true;
        let mut bad = |key: &str, message: String| {
            ok = false;
            problem(key, message);
        };
        self.check_names(&mut bad);
        let output_location = self.check_output_location(&mut bad);
        let aws_logs = self.check_trail(report_trail, &mut bad);
        self.check_coverage(&mut bad);
        let projection_start = self.check_projection_start(&mut bad);
        let snapshot = check_snapshot(snapshot, &mut bad);
        self.check_limits(&mut bad);
        if !ok {
            return None;
        }
        Some(ValidAthena {
            database: self.database.clone(),
            table: self.table.clone(),
            workgroup: self.workgroup.clone(),
            output_location,
            aws_logs: aws_logs?,
            organization_id: self.organization_id.clone(),
            accounts: self.accounts.clone(),
            regions: self.regions.clone(),
            projection_start: projection_start?,
            snapshot,
            lake: None,
            timeout: std::time::Duration::from_secs(self.timeout_secs),
            poll_max: std::time::Duration::from_millis(self.poll_max_ms),
        })
    }

    /// `athena.database`, `athena.table` and `athena.workgroup`: names safe in DDL.
    fn check_names(&self, bad: &mut impl FnMut(&str, String)) {
        for (key, value) in [
            ("athena.database", &self.database),
            ("athena.table", &self.table),
        ] {
            if !is_identifier(value) {
                bad(
                    key,
                    format!(
                        "`{}` is not a safe Athena name: lower-case letters, digits and _, not starting with a digit",
                        value.escape_default()
                    ),
                );
            }
        }
        if !is_workgroup(&self.workgroup) {
            bad(
                "athena.workgroup",
                format!(
                    "`{}` is not a workgroup name: letters, digits, . _ - only",
                    self.workgroup.escape_default()
                ),
            );
        }
    }

    /// `athena.output_location`: where query results go, when set.
    fn check_output_location(&self, bad: &mut impl FnMut(&str, String)) -> Option<S3Path> {
        match self.output_location.as_deref().map(S3Path::parse) {
            Some(Err(e)) => {
                bad("athena.output_location", e);
                None
            }
            Some(Ok(p)) => Some(p),
            None => None,
        }
    }

    /// `athena.trail` (or, by default, `report.trail`): the trail's `AWSLogs/` folder.
    fn check_trail(
        &self,
        report_trail: Option<&str>,
        bad: &mut impl FnMut(&str, String),
    ) -> Option<S3Path> {
        let (trail_key, trail_text) = match (&self.trail, report_trail) {
            (Some(t), _) => ("athena.trail", Some(t.as_str())),
            (None, Some(t)) if t.starts_with("s3://") => ("report.trail", Some(t)),
            _ => ("athena.trail", None),
        };
        match trail_text.map(S3Path::parse) {
            None => {
                bad(
                    "athena.trail",
                    "give the trail's s3:// location (the folder holding AWSLogs/) as athena.trail or report.trail".into(),
                );
                None
            }
            Some(Err(e)) => {
                bad(trail_key, e);
                None
            }
            Some(Ok(mut p)) => {
                // Point at AWSLogs/ itself; a root at or below an organization or account
                // folder is a mistake the template would repeat.
                let segments: Vec<&str> = p.prefix.split('/').filter(|s| !s.is_empty()).collect();
                match segments.iter().rposition(|s| *s == "AWSLogs") {
                    Some(at) if at + 1 == segments.len() => Some(p),
                    Some(_) => {
                        bad(
                            trail_key,
                            "must be the folder holding AWSLogs/ or AWSLogs/ itself, not a folder below it (accounts and regions come from athena.accounts and athena.regions)".into(),
                        );
                        None
                    }
                    None => {
                        p.prefix = if p.prefix.is_empty() {
                            "AWSLogs".into()
                        } else {
                            format!("{}/AWSLogs", p.prefix)
                        };
                        Some(p)
                    }
                }
            }
        }
    }

    /// `athena.organization_id`, `athena.accounts` and `athena.regions`: what the table
    /// covers.
    fn check_coverage(&self, bad: &mut impl FnMut(&str, String)) {
        if let Some(org) = &self.organization_id
            && !is_organization_id(org)
        {
            bad(
                "athena.organization_id",
                format!("`{}` is not an organization id (o-…)", org.escape_default()),
            );
        }
        if self.accounts.is_empty() {
            bad(
                "athena.accounts",
                "no account: list the accounts whose logs the table covers".into(),
            );
        }
        for a in &self.accounts {
            if !is_account(a) {
                bad(
                    "athena.accounts",
                    format!("`{}` is not a 12-digit account id", a.escape_default()),
                );
            }
        }
        if self.regions.is_empty() {
            bad(
                "athena.regions",
                "no region: list the regions the table covers".into(),
            );
        }
        for r in &self.regions {
            if !is_region(r) {
                bad(
                    "athena.regions",
                    format!("`{}` is not an AWS region", r.escape_default()),
                );
            }
        }
    }

    /// `athena.projection_start`: the first delivery date the table covers.
    fn check_projection_start(&self, bad: &mut impl FnMut(&str, String)) -> Option<Date> {
        match self.projection_start.parse::<Date>() {
            Ok(d) if d.year() >= 2013 => Some(d),
            _ => {
                bad(
                    "athena.projection_start",
                    format!(
                        "`{}` is not a date (YYYY-MM-DD) from 2013 on",
                        self.projection_start.escape_default()
                    ),
                );
                None
            }
        }
    }

    /// `athena.timeout_secs` and `athena.poll_max_ms`: the query's time limits.
    fn check_limits(&self, bad: &mut impl FnMut(&str, String)) {
        if self.timeout_secs == 0 {
            bad("athena.timeout_secs", "must be at least 1".into());
        }
        if self.poll_max_ms < 100 {
            bad("athena.poll_max_ms", "must be at least 100".into());
        }
    }
}

/// The report's snapshot store (`(key, text)`), which the Athena engine reads only from S3.
fn check_snapshot(
    snapshot: Option<(&str, &str)>,
    bad: &mut impl FnMut(&str, String),
) -> Option<S3Path> {
    match snapshot {
        Some((key, text)) if text.starts_with("s3://") => match S3Path::parse(text) {
            Ok(p) => Some(p),
            Err(e) => {
                bad(key, e);
                None
            }
        },
        Some((key, text)) => {
            bad(
                key,
                format!(
                    "`{text}` is a local directory: the Athena engine reads the snapshot store from S3 (s3://bucket/prefix)"
                ),
            );
            None
        }
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> AthenaSettings {
        AthenaSettings {
            trail: Some("s3://trail-bucket/logs".into()),
            accounts: vec!["111122223333".into()],
            regions: vec!["us-east-1".into()],
            ..AthenaSettings::default()
        }
    }

    fn problems(s: &AthenaSettings, snapshot: Option<(&str, &str)>) -> Vec<String> {
        let mut found = Vec::new();
        s.check(None, snapshot, &mut |k, m| found.push(format!("{k}: {m}")));
        found
    }

    #[test]
    fn a_plain_setup_is_valid_and_points_at_awslogs() {
        let mut found = Vec::new();
        let v = settings()
            .check(
                None,
                Some(("report.snapshot", "s3://snap/x")),
                &mut |k, m| {
                    found.push(format!("{k}: {m}"));
                },
            )
            .unwrap();
        assert!(found.is_empty(), "{found:?}");
        assert_eq!(v.aws_logs.url(""), "s3://trail-bucket/logs/AWSLogs/");
        assert_eq!(v.snapshot.unwrap().url("users/"), "s3://snap/x/users/");
        let mut at_logs = settings();
        at_logs.trail = Some("s3://bkt/AWSLogs/".into());
        let mut none = Vec::new();
        let v = at_logs.check(None, None, &mut |k, m| none.push(format!("{k}: {m}")));
        assert_eq!(v.unwrap().aws_logs.url(""), "s3://bkt/AWSLogs/");
    }

    #[test]
    fn hostile_values_never_pass() {
        let hostile = [
            "x'; DROP TABLE t; --",
            "a\"b",
            "Connect",
            "db name",
            "1db",
            "db;",
            "d\u{0430}tabase",
            "",
        ];
        for value in hostile {
            let mut s = settings();
            s.database = value.into();
            s.table = value.into();
            let found = problems(&s, None);
            assert!(
                found.iter().any(|p| p.starts_with("athena.database")),
                "{value}: {found:?}"
            );
            assert!(
                found.iter().any(|p| p.starts_with("athena.table")),
                "{value}: {found:?}"
            );
        }
        let mut s = settings();
        s.workgroup = "primary'--".into();
        s.accounts = vec!["1111'22223333".into()];
        s.regions = vec!["us-east-1') --".into()];
        s.organization_id = Some("o-abc' OR '1'='1".into());
        s.trail = Some("s3://bucket/a'b".into());
        s.output_location = Some("s3://bucket/${x}".into());
        let found = problems(&s, Some(("report.snapshot", "s3://b/it's")));
        for key in [
            "athena.workgroup",
            "athena.accounts",
            "athena.regions",
            "athena.organization_id",
            "athena.trail",
            "athena.output_location",
            "report.snapshot",
        ] {
            assert!(found.iter().any(|p| p.starts_with(key)), "{key}: {found:?}");
        }
    }

    #[test]
    fn missing_and_local_values_are_named() {
        let found = problems(
            &AthenaSettings::default(),
            Some(("snapshot.store", "examples/snapshot")),
        );
        let text = found.join("\n");
        assert!(
            text.contains("athena.trail: give the trail's s3:// location"),
            "{text}"
        );
        assert!(text.contains("athena.accounts: no account"), "{text}");
        assert!(text.contains("athena.regions: no region"), "{text}");
        assert!(text.contains("snapshot.store"), "{text}");
        let mut below = settings();
        below.trail = Some("s3://bkt/AWSLogs/111122223333".into());
        assert!(problems(&below, None)[0].contains("not a folder below it"));
    }
}
