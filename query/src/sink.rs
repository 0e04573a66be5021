//! The sink contract both engines write to: [`ScanSink`] receives the records, in order, and
//! the [`BadInput`] reports of what was skipped.
//!
//! Takes nothing from either engine: [`local`](crate::local) and [`athena`](crate::athena)
//! depend on this module, never the other way round. Guarantees that a [`BadInput`] shown on a
//! terminal or in a log cannot forge a line or move the cursor, and that the text it keeps from
//! the trail is bounded ([`clipped`]). Must never do I/O or know where the records came from.

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use connect_audit_core::AuditRecord;

/// The error a sink returns to stop the scan.
pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// Receives what a scan finds, in order, on the calling thread.
///
/// `records` is called with batches in output order; an error stops the scan and is returned
/// from [`TrailScanner::scan`](crate::local::TrailScanner::scan) as
/// [`Error::Sink`](crate::Error::Sink). The other hooks are for progress and reporting and
/// default to doing nothing.
pub trait ScanSink {
    /// A batch of named, deduplicated records in the window.
    fn records(&mut self, batch: Vec<AuditRecord>) -> Result<(), SinkError>;

    /// The walk is done: this many files (and compressed bytes) will be read.
    fn files_found(&mut self, _files: u64, _bytes: u64) {}

    /// One file was read (well or badly).
    fn file_scanned(&mut self, _path: &Path, _bytes: u64) {}

    /// A file or record was skipped; the scan goes on.
    fn bad_input(&mut self, _problem: &BadInput) {}
}

/// Collects every record: for tests and small runs.
impl ScanSink for Vec<AuditRecord> {
    fn records(&mut self, batch: Vec<AuditRecord>) -> Result<(), SinkError> {
        self.extend(batch);
        Ok(())
    }
}

/// A file or record that could not be read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadInput {
    /// The file: its path, or `s3://bucket/key` for an S3 object.
    pub path: PathBuf,
    /// Index of the record in the file's `Records` array, for a bad record.
    pub record: Option<usize>,
    /// The record's `eventID`, when it has one.
    pub event_id: Option<String>,
    /// What is wrong.
    pub reason: String,
}

/// Control characters escaped (`\n`, `\u{1b}`, …): the path, eventID and reason come from the
/// trail, and a message on a terminal or in a log must not be able to forge a line or move the
/// cursor.
impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", Escaped(&self.path.display().to_string()))?;
        if let Some(i) = self.record {
            write!(f, ": record {i}")?;
        }
        if let Some(id) = &self.event_id {
            write!(f, " (eventID {})", Escaped(id))?;
        }
        write!(f, ": {}", Escaped(&self.reason))
    }
}

/// Characters of a reason or eventID kept in a [`BadInput`]: what the trail put there (a
/// 20 MB `eventTime`, a serde error quoting a whole string) must not become a 20 MB warning,
/// nor be held in memory for every bad record.
const MAX_SHOWN: usize = 300;

/// `text` cut to [`MAX_SHOWN`] characters, saying how much was left out.
pub(crate) fn clipped(mut text: String) -> String {
    if let Some((cut, _)) = text.char_indices().nth(MAX_SHOWN) {
        let left = text.len() - cut;
        text.truncate(cut);
        write!(text, "… ({left} more bytes)").ok();
    }
    text
}

/// Text shown with its control characters escaped, everything else as is.
pub(crate) struct Escaped<'a>(pub(crate) &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_messages_escape_control_characters() {
        let problem = BadInput {
            path: PathBuf::from("trail/a\nb.json.gz"),
            record: Some(3),
            event_id: Some("x\u{1b}[31m\r\nfake: record 0: ok".into()),
            reason: "unparseable eventTime `\u{0}`".into(),
        };
        let shown = problem.to_string();
        assert_eq!(
            shown,
            "trail/a\\nb.json.gz: record 3 (eventID x\\u{1b}[31m\\r\\nfake: record 0: ok): \
             unparseable eventTime `\\u{0}`"
        );
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        assert_eq!(clipped("é".repeat(MAX_SHOWN)), "é".repeat(MAX_SHOWN));
        let long = clipped(format!("{}xyz", "é".repeat(MAX_SHOWN)));
        assert_eq!(long, format!("{}… (3 more bytes)", "é".repeat(MAX_SHOWN)));
    }
}
