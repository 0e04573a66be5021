//! Test support for connect-audit: the servers the end-to-end tests run against — a fake
//! Connect API ([`fake_connect`]), an Athena endpoint that runs the SQL on DataFusion
//! ([`fake_athena`]), a SIEM webhook receiver ([`siem_receiver`]) and a fault-injecting S3 proxy
//! ([`s3_proxy`]), all on one scaffold ([`server`]), the Garage S3 server ([`garage`]) and
//! moto's SQS server ([`moto`]) —
//! and the deterministic generator of the repository's `examples/` ([`generate`]; the ids of
//! what its trail mentions in [`ids`] and [`events`]).
//!
//! ```no_run
//! let out = std::path::Path::new("/tmp/examples");
//! connect_audit_tests::generate(out)?;
//! assert!(out.join("snapshot/users").join(format!("{}.json", connect_audit_tests::ids::ALICE)).exists());
//! # Ok::<(), std::io::Error>(())
//! ```

#![allow(
    clippy::too_many_lines,
    reason = "a test or benchmark reads best top to bottom; product code is split at clippy.toml's threshold"
)]

#[macro_use]
mod json;

mod examples;
pub mod fake_athena;
pub mod fake_connect;
pub mod garage;
pub mod moto;
pub mod process;
pub mod s3_proxy;
pub mod server;
pub mod siem_receiver;
pub mod trail_digests;

pub use examples::{
    DEMO_TOML, ExampleFile, GENERATED_DIRS, HIDDEN, SEED, WINDOW, build, events, examples_dir,
    generate, ids, write,
};
