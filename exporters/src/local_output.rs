//! Where a file exporter writes on this machine: stdout, or a local file that appears under its
//! final name only when the exporter finishes. `s3://` outputs reach the exporters as local
//! files too: [`destination::S3Outputs`](crate::destination::S3Outputs) stages them and
//! uploads them once every exporter finished.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use connect_audit_core::{AtomicFile, Location};

use crate::Error;

/// The path that means stdout.
pub(crate) const STDOUT: &str = "-";

/// `"{kind} {path}"`, or `"{kind} stdout"` for `-`.
pub(crate) fn describe(kind: &str, path: &str) -> String {
    if path == STDOUT {
        format!("{kind} stdout")
    } else {
        format!("{kind} {path}")
    }
}

/// The local file a path names. An `s3://` location is refused: an exporter writes it only
/// through [`S3Outputs::stage`](crate::destination::S3Outputs::stage), which gives it a
/// local path instead.
pub(crate) fn local_path(exporter: &str, path: &str) -> Result<PathBuf, Error> {
    let output = |source| Error::Output {
        exporter: exporter.to_owned(),
        source,
    };
    let location = Location::parse(path).map_err(output)?;
    location.local_path().map(ToOwned::to_owned).map_err(output)
}

/// Starts a file that is committed in [`finish`](crate::Exporter::finish).
pub(crate) fn create_file(exporter: &str, path: &std::path::Path) -> Result<AtomicFile, Error> {
    AtomicFile::create(path).map_err(|source| Error::Output {
        exporter: exporter.to_owned(),
        source,
    })
}

/// Puts a finished file under its final name.
pub(crate) fn commit_file(exporter: &str, file: AtomicFile) -> Result<PathBuf, Error> {
    file.commit().map_err(|source| Error::Output {
        exporter: exporter.to_owned(),
        source,
    })
}

enum Destination {
    Stdout(io::Stdout),
    File(AtomicFile),
}

impl Write for Destination {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Stdout(s) => s.write(buf),
            Self::File(f) => f.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Stdout(s) => s.flush(),
            Self::File(f) => f.flush(),
        }
    }
}

/// A buffered byte sink over stdout or an [`AtomicFile`].
///
/// As [`Write`] it gives plain I/O errors, for encoders that wrap them (CSV); the inherent
/// methods name the exporter.
pub(crate) struct Output {
    exporter: String,
    inner: BufWriter<Destination>,
}

impl Output {
    /// Opens `path` (`-` for stdout) for the exporter named `exporter`.
    pub(crate) fn open(exporter: &str, path: &str) -> Result<Self, Error> {
        let destination = if path == STDOUT {
            Destination::Stdout(io::stdout())
        } else {
            Destination::File(create_file(exporter, &local_path(exporter, path)?)?)
        };
        Ok(Self {
            exporter: exporter.to_owned(),
            inner: BufWriter::with_capacity(64 * 1024, destination),
        })
    }

    /// An I/O error of this output.
    fn io_error(&self, source: io::Error) -> Error {
        Error::Io {
            exporter: self.exporter.clone(),
            source,
        }
    }

    /// Appends bytes.
    pub(crate) fn append(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.inner.write_all(bytes).map_err(|e| self.io_error(e))
    }

    /// Called after each batch: a reader of stdout sees every batch as soon as it is written,
    /// while a file is only flushed when it is complete.
    pub(crate) fn end_batch(&mut self) -> Result<(), Error> {
        if matches!(self.inner.get_ref(), Destination::Stdout(_)) {
            self.inner.flush().map_err(|e| self.io_error(e))?;
        }
        Ok(())
    }

    /// Flushes everything and, for a file, puts it under its final name. Returns the paths
    /// written (none for stdout).
    pub(crate) fn finish(self) -> Result<Vec<PathBuf>, Error> {
        let exporter = self.exporter;
        let io_error = |source| Error::Io {
            exporter: exporter.clone(),
            source,
        };
        match self
            .inner
            .into_inner()
            .map_err(|e| io_error(e.into_error()))?
        {
            Destination::Stdout(mut stdout) => {
                stdout.flush().map_err(io_error)?;
                Ok(Vec::new())
            }
            Destination::File(file) => Ok(vec![commit_file(&exporter, file)?]),
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf)
    }

    /// Flushes the buffer only: the file itself is synced when committed.
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
