//! Errors of the core crate that are about files and objects: each names what it is about.

use std::path::PathBuf;

/// An error reading or writing a location or the snapshot store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// An S3 request failed.
    #[error("{url}: S3 {operation} failed{detail}")]
    S3 {
        /// The object or prefix, as `s3://bucket/key`.
        url: String,
        /// The S3 operation, e.g. `GetObject`.
        operation: &'static str,
        /// `: <code>: <message>` from the service when it said something, else empty.
        detail: String,
        /// The SDK's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An `s3://` location was given where only a local path works.
    #[error("{0}: s3:// locations are not supported here; use a local path")]
    S3Unsupported(String),
    /// An `s3://` location was opened without an S3 client to reach it.
    #[error("{0}: an S3 client is needed to read or write this location")]
    NoS3Client(String),
    /// A location string is neither a path nor a well-formed `s3://bucket/prefix`.
    #[error("`{0}` is not a location: give a directory path or s3://bucket/prefix")]
    BadLocation(String),
    /// An object key that could escape the store or is not a plain relative key.
    #[error("{key:?} is not a valid object key: {reason}")]
    BadKey {
        /// The key given.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An id that should be a Connect id (UUID) and is not, so it cannot name an object.
    #[error("{id:?} is not a Connect {kind} id (UUID)")]
    BadId {
        /// What the id was meant to name.
        kind: &'static str,
        /// The id given.
        id: String,
    },
    /// A snapshot object is not a JSON object of the expected shape.
    #[error("snapshot object {object}: {reason}")]
    BadSnapshotObject {
        /// The object: a path or `s3://bucket/key`.
        object: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The state of incremental runs cannot be used.
    #[error("incremental state {object}: {reason}")]
    BadState {
        /// The state object: a path or `s3://bucket/key`.
        object: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl Error {
    /// Wraps an I/O error with the path it is about.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
