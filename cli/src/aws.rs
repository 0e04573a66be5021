//! The one place that builds AWS clients: the standard credential chain and region,
//! `AWS_ENDPOINT_URL*` honoured, bounded retries with exponential backoff and jitter, and a
//! time limit on each attempt so that a hung endpoint cannot stall a run.

use aws_config::BehaviorVersion;
use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use connect_audit_config::SnapshotSettings;
use std::time::Duration;

/// How long opening a connection (TCP and TLS) may take before the attempt fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Loads the shared AWS configuration with the retries of `[snapshot]` (which every AWS
/// call uses): `max_attempts` tries per call (throttling, 5xx, connection failures, attempts
/// that time out), the first backoff ceiling `retry_initial_ms`, doubling up to 20 s, full
/// jitter. Each attempt may take `attempt_timeout_secs` (connecting: at most
/// [`CONNECT_TIMEOUT`] of it); the SDK's standard retry classifies an attempt that ran out of
/// time as transient, so it is retried like a 5xx. The SDK's attempt ends when the answer's
/// headers are in: an S3 body streamed after that is bounded by
/// [`Store::get`](connect_audit_core::Store::get), with the same limit.
pub async fn sdk_config(retries: &SnapshotSettings) -> SdkConfig {
    let retry = RetryConfig::standard()
        .with_max_attempts(retries.max_attempts.max(1))
        .with_initial_backoff(Duration::from_millis(retries.retry_initial_ms.max(1)));
    let timeout = TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(Duration::from_secs(retries.attempt_timeout_secs.max(1)))
        .build();
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry)
        .timeout_config(timeout)
        .load()
        .await
}

/// Whether an S3 endpoint override is set: S3-compatible stores rarely serve
/// virtual-hosted buckets, so such clients use path-style addressing.
fn s3_endpoint_overridden() -> bool {
    ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
}

/// An S3 client, path-style when the endpoint is overridden.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let s3_config = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(s3_endpoint_overridden())
        .build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

/// A Connect client.
pub fn connect_client(config: &SdkConfig) -> aws_sdk_connect::Client {
    aws_sdk_connect::Client::new(config)
}
