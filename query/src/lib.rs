//! The engines that yield [`AuditRecord`](connect_audit_core::AuditRecord)s.
//!
//! - [`local`]: the embedded engine. Walks CloudTrail files under a directory or an S3 prefix
//!   (a [`Store`](connect_audit_core::Store)), filters audited Connect events on the raw bytes
//!   before parsing, names actors and targets from the snapshot and the trail, removes
//!   duplicate deliveries, and streams batches to a [`ScanSink`] using every core.
//! - [`athena`] (for trails too big for one machine): the DDL of the CloudTrail and snapshot
//!   tables, the join query (values only as execution parameters), and a runner that polls,
//!   stops, and streams result pages into the same [`ScanSink`]. It yields the same
//!   records as `local` from the same trail.
//! - The sink contract both engines share, at the root: [`ScanSink`] receives the records,
//!   [`BadInput`] says what was skipped and why.
//!
//! ```no_run
//! use connect_audit_core::{Directory, EventSelection, Store, Window};
//! use connect_audit_query::local::{ScanOptions, TrailScanner};
//!
//! let window = Window::parse(Some("2024-05-01"), Some("2024-05-08"), jiff::Timestamp::now())?;
//! let options = ScanOptions::new(window, EventSelection::defaults());
//! let scanner = TrailScanner::new(Store::local("examples/trail"), Directory::new(), options);
//! let mut records = Vec::new();
//! let summary = scanner.scan(&mut records)?;
//! println!("{} records from {} files", records.len(), summary.files_read);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod athena;
pub mod error;
pub mod integrity;
pub mod local;
pub mod notification;
pub mod queue;
mod sink;
pub mod stage;

pub use error::Error;
pub use sink::{BadInput, ScanSink, SinkError};

/// The instruction set the local engine's structural pass uses on this CPU when asked for
/// `requested` (`avx512`, `avx2` or `sse2`; the cli's `CONNECT_AUDIT_SIMD` can lower it), for
/// logs and benchmarks.
#[must_use]
pub fn simd_level(requested: local::Simd) -> &'static str {
    local::structural::Isa::chosen(requested).name()
}
