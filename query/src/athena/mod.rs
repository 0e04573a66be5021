//! The Athena engine: the join runs where the trail is.
//!
//! - [`ddl`]: `CREATE DATABASE`, the CloudTrail table with partition projection over account,
//!   region and delivery date (plain and organization trails), the snapshot tables, the
//!   `connect_user_audit` view.
//! - [`sql`]: the audit query generated from config, every value an execution parameter.
//! - [`runner`]: `StartQueryExecution`, polling with capped backoff and a timeout, Ctrl-C →
//!   `StopQueryExecution`, results page by page into a [`ScanSink`](crate::ScanSink).
//! - [`rows`]: result rows → audit records.
//! - [`settings`]: `[athena]` ([`AthenaSettings`]) and its pure check into [`ValidAthena`],
//!   which everything above takes.
//!
//! ```no_run
//! # async fn demo(client: aws_sdk_athena::Client, athena: connect_audit_query::athena::ValidAthena)
//! # -> Result<(), connect_audit_query::Error> {
//! use connect_audit_core::redact::Redaction;
//! use connect_audit_core::{EventSelection, Scope, Window};
//! use connect_audit_query::athena::{report, sql::audit_query, Runner};
//!
//! let window = Window::parse(Some("2024-05-01"), Some("2024-05-08"), jiff::Timestamp::now())
//!     .expect("a window");
//! let query = audit_query(&athena, window, &EventSelection::defaults(), &Scope::default());
//! let runner = Runner::new(client, &athena);
//! let mut records = Vec::new();
//! let redaction = Redaction::secrets();
//! let summary = report(&runner, &query, &redaction, &mut records, std::future::pending()).await?;
//! println!("{} records, {} bytes scanned", summary.records, summary.data_scanned_bytes);
//! # Ok(()) }
//! ```

pub mod ddl;
pub mod rows;
pub mod runner;
pub mod settings;
pub mod sql;

pub use runner::{AthenaSummary, Finished, Runner, report, snapshot_history, snapshot_names};
pub use settings::{AthenaSettings, S3Path, ValidAthena};
