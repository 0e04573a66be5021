//! Errors of the engines. Problems with single trail files are not errors: they are
//! [`BadInput`](crate::local::BadInput) reports, and the scan goes on.

use std::path::PathBuf;

/// A failure that stops a scan.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The trail root does not exist or cannot be read.
    #[error("trail {path}: {source}")]
    Trail {
        /// The root given: a path, or `s3://bucket/prefix`.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A location could not be used.
    #[error(transparent)]
    Location(#[from] connect_audit_core::Error),
    /// The consumer of the records failed (an exporter); the scan stopped.
    #[error("writing records failed")]
    Sink(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Rows waiting for names could not be kept in a temporary file.
    #[error("cannot hold unnamed rows in a temporary file")]
    Spill(#[source] std::io::Error),
    /// The async runtime that lists and fetches S3 objects could not start.
    #[error("cannot start the runtime that reads S3")]
    Runtime(#[source] std::io::Error),
    /// A scanner thread panicked; this is a bug.
    #[error("a scanner thread panicked while reading {0}")]
    WorkerPanicked(String),
}
