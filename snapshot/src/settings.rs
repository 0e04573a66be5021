//! `[snapshot]`: where and how the user directory is snapshotted, as config, with its pure
//! checks; [`SnapshotSettings::options`] gives the [`SnapshotOptions`] of a run.

use serde::{Deserialize, Serialize};

use crate::SnapshotOptions;

/// `[snapshot]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotSettings {
    /// The snapshot store: `s3://bucket/prefix` or a directory. Required for `snapshot`; also
    /// the default of `report.snapshot`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// Call `DescribeUser` per user for e-mail, names, profile and hierarchy ids. Default: false.
    #[serde(default)]
    pub describe_users: bool,
    /// `DescribeUser` calls in flight per instance. Default: 4 (Connect's limits are low).
    #[serde(default = "four")]
    pub concurrency: usize,
    /// Attempts per AWS call (Connect, S3: trail, snapshot, state, outputs), with exponential
    /// backoff and jitter, on throttling, 5xx and connection failures. Default: 8.
    #[serde(default = "eight")]
    pub max_attempts: u32,
    /// The backoff ceiling of the first retry, in milliseconds; it doubles per retry, up to
    /// 20 s, and each wait is drawn below it (full jitter). Default: 1000.
    #[serde(default = "retry_initial_ms")]
    pub retry_initial_ms: u64,
    /// The time one attempt of an AWS call may take, in seconds, before it is abandoned and
    /// counts as a failed attempt (retried within `max_attempts` like a 5xx): the request and
    /// its answer, and for an S3 object read the whole body. It bounds a hung (not dead) S3 or
    /// Connect endpoint, which would otherwise stall a run forever. Default: 60 — the largest
    /// single transfer is a 16 MiB upload part or a trail object of about 10 MB, which takes
    /// well under a second in-region and still fits at about 300 KB/s; a Connect or S3 call
    /// normally answers in milliseconds. So 60 s only fires on an endpoint that has stopped
    /// answering, while a hang costs at most a minute per attempt. Raise it on a very slow link.
    #[serde(default = "attempt_timeout_secs")]
    pub attempt_timeout_secs: u64,
}

impl Default for SnapshotSettings {
    fn default() -> Self {
        Self {
            store: None,
            describe_users: false,
            concurrency: four(),
            max_attempts: eight(),
            retry_initial_ms: retry_initial_ms(),
            attempt_timeout_secs: attempt_timeout_secs(),
        }
    }
}

fn retry_initial_ms() -> u64 {
    1000
}

fn attempt_timeout_secs() -> u64 {
    60
}

fn four() -> usize {
    4
}

fn eight() -> u32 {
    8
}

impl SnapshotSettings {
    /// Checks the retries and timeouts of every AWS call (they live in `[snapshot]`, though
    /// the report's S3 reads and uploads use them too), without I/O: calls
    /// `problem(key, message)` for each problem, keys `snapshot.…`.
    pub fn check_aws_calls(&self, problem: &mut impl FnMut(&str, String)) {
        if self.max_attempts == 0 {
            problem("snapshot.max_attempts", "must be at least 1".into());
        }
        if self.retry_initial_ms == 0 {
            problem("snapshot.retry_initial_ms", "must be at least 1".into());
        }
        if self.attempt_timeout_secs == 0 {
            problem("snapshot.attempt_timeout_secs", "must be at least 1".into());
        }
    }

    /// Checks what a snapshot run needs of `[snapshot]` besides the store (which the caller
    /// checks: it is also the report's default snapshot), without I/O.
    pub fn check(&self, problem: &mut impl FnMut(&str, String)) {
        if self.concurrency == 0 {
            problem("snapshot.concurrency", "must be at least 1".into());
        }
        self.check_aws_calls(problem);
    }

    /// The options of a run, for checked settings.
    pub fn options(&self) -> SnapshotOptions {
        SnapshotOptions {
            describe_users: self.describe_users,
            concurrency: self.concurrency,
            ..SnapshotOptions::default()
        }
    }
}
