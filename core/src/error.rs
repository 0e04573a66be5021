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
    /// An `s3://` location was given, but this build has no S3 support yet.
    #[error("{0}: s3:// locations are not supported by this version yet; use a local directory")]
    S3Unsupported(String),
    /// A location string is neither a path nor a well-formed `s3://bucket/prefix`.
    #[error("`{0}` is not a location: give a directory path or s3://bucket/prefix")]
    BadLocation(String),
    /// A snapshot object is not a JSON object of the expected shape.
    #[error("snapshot object {path}: {reason}")]
    BadSnapshotObject {
        /// The object's file.
        path: PathBuf,
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
