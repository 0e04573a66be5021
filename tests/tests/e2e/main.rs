//! End-to-end tests of connect-audit: one test binary, one module per area.

#![allow(
    clippy::too_many_lines,
    reason = "a test or benchmark reads best top to bottom; product code is split at clippy.toml's threshold"
)]

mod access_review;
mod athena;
mod catalogue;
mod cli;
mod examples;
mod exporters;
mod fake_connect;
mod faults;
mod fuzz_regressions;
mod helpers;
mod hostile;
pub(crate) mod html;
mod incremental;
mod integrity;
mod ocsf;
mod s3;
mod scan;
mod siem;
mod snapshot;
mod story;
mod targets;
mod watch;
