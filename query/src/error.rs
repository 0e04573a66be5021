//! Errors of the engines (local scan and Athena). Problems with single trail files are not errors: they are
//! [`BadInput`](crate::BadInput) reports, and the scan goes on.

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
    /// An Athena API call failed (after the SDK's retries).
    #[error("Athena {operation} failed: {message}")]
    Athena {
        /// The API operation, e.g. `StartQueryExecution`.
        operation: &'static str,
        /// The error and its causes.
        message: String,
    },
    /// The query ended FAILED or CANCELLED.
    #[error("Athena query {id} {state}: {reason}")]
    QueryFailed {
        /// The query execution id.
        id: String,
        /// `FAILED` or `CANCELLED`.
        state: String,
        /// `StateChangeReason` and `AthenaError`.
        reason: String,
    },
    /// The query ran past the timeout and was stopped.
    #[error(
        "Athena query {id} did not finish within {seconds} s (athena.timeout_secs); it was stopped"
    )]
    QueryTimeout {
        /// The query execution id.
        id: String,
        /// The timeout.
        seconds: u64,
    },
    /// The run was interrupted (Ctrl-C): a running query was stopped, or the reading of its
    /// results given up.
    #[error("interrupted: Athena query {id} was stopped (or its results no longer read)")]
    Interrupted {
        /// The query execution id.
        id: String,
    },
    /// An SQS call failed (after the SDK's retries).
    #[error("SQS {operation} on {url} failed: {message}")]
    Queue {
        /// The queue's URL.
        url: String,
        /// The API operation, e.g. `ReceiveMessage`.
        operation: &'static str,
        /// The error and its causes.
        message: String,
    },
    /// The query's results do not have the shape it asks for.
    #[error("Athena query {id} gave an unexpected result: {reason}")]
    BadResult {
        /// The query execution id.
        id: String,
        /// What is wrong.
        reason: String,
    },
}
