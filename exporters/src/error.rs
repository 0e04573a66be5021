//! The error of every exporter: each variant names the exporter it is about (as
//! [`Exporter::describe`](crate::Exporter::describe) writes it) and keeps the underlying error as
//! its source, so a caller can walk the chain down to the [`std::io::Error`].

use std::error::Error as _;
use std::io;
use std::path::PathBuf;

/// An error building, writing to or finishing an exporter.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing to or flushing the output (a file or stdout) failed.
    #[error("{exporter}: cannot write: {source}")]
    Io {
        /// The exporter, e.g. `csv out/audit.csv` or `jsonl stdout`.
        exporter: String,
        /// What the operating system said; `BrokenPipe` when stdout's reader went away.
        #[source]
        source: io::Error,
    },
    /// The output file could not be created or put under its final name, or its location is
    /// not a local file (an `s3://` location not staged by
    /// [`S3Outputs::stage`](crate::destination::S3Outputs::stage)).
    #[error("{exporter}: {source}")]
    Output {
        /// The exporter.
        exporter: String,
        /// The error of the location, naming the file.
        #[source]
        source: connect_audit_core::Error,
    },
    /// The CSV writer failed for a reason other than I/O.
    #[error("{exporter}: {source}")]
    Csv {
        /// The exporter.
        exporter: String,
        /// The CSV writer's error.
        #[source]
        source: csv::Error,
    },
    /// A record could not be serialised to JSON.
    #[error("{exporter}: record {event_id}: {source}")]
    Json {
        /// The exporter.
        exporter: String,
        /// The record's `event_id`.
        event_id: String,
        /// The serialiser's error.
        #[source]
        source: serde_json::Error,
    },
    /// A batch of records could not be turned into Arrow columns.
    #[error("{exporter}: cannot build an Arrow batch: {source}")]
    Arrow {
        /// The exporter.
        exporter: String,
        /// Arrow's error.
        #[source]
        source: Box<arrow_schema::ArrowError>,
    },
    /// The Parquet writer failed on one file.
    #[error("{exporter}: {}: {source}", path.display())]
    Parquet {
        /// The exporter.
        exporter: String,
        /// The Parquet file (its final name).
        path: PathBuf,
        /// The Parquet writer's error.
        #[source]
        source: Box<parquet::errors::ParquetError>,
    },
    /// A spec built in code that does not pass its validation
    /// ([`ExporterSpec::validated`](crate::ExporterSpec::validated)); config reports the same
    /// problems by key instead.
    #[error("{exporter}: {}", problems.join("; "))]
    Invalid {
        /// The exporter.
        exporter: String,
        /// Each problem, as `field: message`, in field order.
        problems: Vec<String>,
    },
    /// The SIEM webhook exporter cannot start or stopped: a credential variable is not set
    /// or empty, its URL or secret is unusable, TLS cannot be set up, or its delivery thread
    /// failed. The message never quotes a credential.
    #[error("{exporter}: {message}")]
    Siem {
        /// The exporter.
        exporter: String,
        /// What is wrong.
        message: String,
    },
    /// Batches the SIEM refused (a 4xx other than 408/429) or that ran out of retries were
    /// written to the dead-letter file: the run did not deliver everything.
    #[error(
        "{exporter}: {events} event(s) in {batches} batch(es) were not delivered ({delivered} were) and are in the dead-letter file {}; resend them with `connect-audit replay` once the receiver accepts them",
        path.display()
    )]
    DeadLettered {
        /// The exporter.
        exporter: String,
        /// Events written to the dead-letter file.
        events: u64,
        /// Batches they were sent in.
        batches: u64,
        /// Events the SIEM accepted.
        delivered: u64,
        /// The dead-letter file.
        path: PathBuf,
    },
    /// Undelivered events could not be written to the dead-letter file either.
    #[error(
        "{exporter}: {events} undelivered event(s) could not be written to the dead-letter file {}: {source}",
        path.display()
    )]
    DeadLetterWrite {
        /// The exporter.
        exporter: String,
        /// Events lost from this run.
        events: u64,
        /// The dead-letter file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// A dead-letter file cannot be read back for a replay.
    #[error("{}: line {line}: {source}", path.display())]
    DeadLetterRead {
        /// The dead-letter file.
        path: PathBuf,
        /// The line (1-based; 0 when the file itself cannot be read).
        line: u64,
        /// The I/O or JSON error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An `s3://` output could not be staged locally, listed or uploaded
    /// ([`S3Outputs`](crate::destination::S3Outputs)).
    #[error("{context}")]
    S3Output {
        /// What was being done, e.g. `cannot upload s3://bucket/audit/audit.csv`.
        context: String,
        /// The error of the store, the file system or the listing.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The store of an `s3://` output could not be opened.
    #[error(transparent)]
    Store(connect_audit_core::Error),
    /// [`finish`](crate::Exporter::finish) after a failed
    /// [`write`](crate::Exporter::write): the output may be incomplete, so it was discarded
    /// rather than put under its final name.
    #[error("{exporter}: an earlier write failed; the output was discarded")]
    Incomplete {
        /// The exporter.
        exporter: String,
    },
}

impl Error {
    /// The first [`io::Error`] in the chain of sources, if any.
    pub fn io_error(&self) -> Option<&io::Error> {
        let mut cause = self.source();
        while let Some(e) = cause {
            if let Some(io) = e.downcast_ref::<io::Error>() {
                return Some(io);
            }
            cause = e.source();
        }
        None
    }

    /// Whether this is the reader of stdout going away (`io::ErrorKind::BrokenPipe`), which a
    /// command writing to a pipe usually treats as success.
    pub fn is_broken_pipe(&self) -> bool {
        self.io_error()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_pipe_is_found_through_the_chain() {
        let direct = Error::Io {
            exporter: "jsonl stdout".into(),
            source: io::Error::from(io::ErrorKind::BrokenPipe),
        };
        assert!(direct.is_broken_pipe());
        assert!(direct.to_string().starts_with("jsonl stdout: "));
        let nested = Error::Output {
            exporter: "csv a.csv".into(),
            source: connect_audit_core::Error::io("a.csv", io::ErrorKind::BrokenPipe.into()),
        };
        assert!(nested.is_broken_pipe());
        let other = Error::Output {
            exporter: "csv a.csv".into(),
            source: connect_audit_core::Error::io("a.csv", io::ErrorKind::NotFound.into()),
        };
        assert!(!other.is_broken_pipe());
        assert_eq!(
            other.io_error().map(io::Error::kind),
            Some(io::ErrorKind::NotFound)
        );
        let none = Error::Incomplete {
            exporter: "csv a.csv".into(),
        };
        assert!(none.io_error().is_none());
    }
}
