//! The one place that builds AWS clients: the standard credential chain and region,
//! `AWS_ENDPOINT_URL*` honoured, bounded retries with exponential backoff and jitter.

use aws_config::BehaviorVersion;
use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use connect_audit_config::SnapshotSettings;
use std::time::Duration;

/// Loads the shared AWS configuration with the retries of `[snapshot]` (which every AWS
/// call uses): `max_attempts` tries per call (throttling, 5xx, connection failures), the
/// first backoff ceiling `retry_initial_ms`, doubling up to 20 s, full jitter.
pub async fn sdk_config(retries: &SnapshotSettings) -> SdkConfig {
    let retry = RetryConfig::standard()
        .with_max_attempts(retries.max_attempts.max(1))
        .with_initial_backoff(Duration::from_millis(retries.retry_initial_ms.max(1)));
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry)
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
