//! End-to-end tests of connect-audit: one test binary, one module per area.

mod athena;
mod cli;
mod examples;
mod exporters;
mod fuzz_regressions;
mod hostile;
mod incremental;
mod ocsf;
mod s3;
mod scan;
mod siem;
mod snapshot;
