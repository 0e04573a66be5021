//! The dead-letter file: JSON Lines of the records a SIEM did not take, each with why.
//!
//! One line per record, appended:
//!
//! ```json
//! {"exporter":"siem-webhook https://splunk:8088","failed_at":"2024-05-02T09:14:02Z","reason":"HTTP 400: …","status":400,"attempts":1,"batch":"msg_…","row_key":"…","record":{…}}
//! ```
//!
//! `record` is the audit record's serde form (as JSON Lines writes it), so [`replay`](super::replay)
//! can send it again through any exporter; `status` is `null` when no answer came. A batch's
//! lines are written with one `write` on a file opened for appending, then synced: a crash
//! leaves whole batches, and a second run appends to the first's file.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};

use connect_audit_core::AuditRecord;

use super::batch::Batch;
use crate::Error;

/// Why a batch was given up.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    /// For people: the status and the start of the answer, or the transport error.
    pub(crate) reason: String,
    /// The last HTTP status, if an answer came.
    pub(crate) status: Option<u16>,
    /// Attempts made.
    pub(crate) attempts: u32,
    /// The `webhook-id` (Standard Webhooks) of the batch, if it had one.
    pub(crate) batch_id: Option<String>,
}

/// Appends failed batches to the dead-letter file, which is created on the first one.
#[derive(Debug)]
pub(crate) struct DeadLetter {
    exporter: String,
    path: PathBuf,
    file: Option<File>,
    /// Events and batches written.
    pub(crate) events: u64,
    pub(crate) batches: u64,
    /// Events that could not be written, and the first error.
    pub(crate) lost: u64,
    pub(crate) error: Option<io::Error>,
}

impl DeadLetter {
    pub(crate) fn new(exporter: &str, path: PathBuf) -> Self {
        Self {
            exporter: exporter.to_owned(),
            path,
            file: None,
            events: 0,
            batches: 0,
            lost: 0,
            error: None,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes every record of `batch` with why it failed.
    pub(crate) fn write(&mut self, batch: &Batch, failure: &Failure) {
        let lines = self.lines(batch, failure);
        match self.append(&lines) {
            Ok(()) => {
                self.events += batch.len() as u64;
                self.batches += 1;
            }
            Err(e) => {
                tracing::error!(
                    exporter = %self.exporter,
                    path = %self.path.display(),
                    events = batch.len(),
                    error = %e,
                    "Cannot write to the dead-letter file."
                );
                self.lost += batch.len() as u64;
                self.error.get_or_insert(e);
            }
        }
    }

    fn lines(&self, batch: &Batch, failure: &Failure) -> Vec<u8> {
        let now = jiff::Timestamp::now();
        let failed_at = now.round(jiff::Unit::Millisecond).unwrap_or(now);
        let mut head = Vec::with_capacity(256);
        head.extend_from_slice(b"{\"exporter\":");
        put(&mut head, &self.exporter.as_str());
        head.extend_from_slice(b",\"failed_at\":");
        put(&mut head, &failed_at.to_string().as_str());
        head.extend_from_slice(b",\"reason\":");
        put(&mut head, &failure.reason.as_str());
        head.extend_from_slice(b",\"status\":");
        put(&mut head, &failure.status);
        head.extend_from_slice(b",\"attempts\":");
        put(&mut head, &failure.attempts);
        head.extend_from_slice(b",\"batch\":");
        put(&mut head, &failure.batch_id.as_deref());
        let mut out = Vec::with_capacity(batch.records.len() + batch.len() * (head.len() + 64));
        for (i, id) in batch.ids.iter().enumerate() {
            out.extend_from_slice(&head);
            out.extend_from_slice(b",\"row_key\":");
            put(&mut out, &id.as_str());
            out.extend_from_slice(b",\"record\":");
            out.extend_from_slice(batch.record(i));
            out.extend_from_slice(b"}\n");
        }
        out
    }

    fn append(&mut self, lines: &[u8]) -> io::Result<()> {
        if self.file.is_none() {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let mut options = OpenOptions::new();
            options.create(true).append(true);
            // Its records name people: created owner-only (0600), as every other output is.
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let file = options.open(&self.path)?;
            self.file = Some(file);
        }
        let file = self.file.as_mut().expect("opened above");
        file.write_all(lines)?;
        file.sync_data()
    }

    /// The error `finish` answers when anything failed: lost events first, as they are worse.
    pub(crate) fn outcome(&mut self, delivered: u64) -> Result<(), Error> {
        if let Some(source) = self.error.take() {
            return Err(Error::DeadLetterWrite {
                exporter: self.exporter.clone(),
                events: self.lost,
                path: self.path.clone(),
                source,
            });
        }
        if self.events > 0 {
            return Err(Error::DeadLettered {
                exporter: self.exporter.clone(),
                events: self.events,
                batches: self.batches,
                delivered,
                path: self.path.clone(),
            });
        }
        Ok(())
    }
}

/// Serialises a plain value (a string, a number, an option of one) into a line.
fn put<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    serde_json::to_writer(out, value).expect("plain values serialise");
}

/// Reads the records of a dead-letter file, in order, handing them to `each` in chunks.
pub(crate) fn read_records(
    path: &Path,
    chunk: usize,
    mut each: impl FnMut(Vec<AuditRecord>) -> Result<(), Error>,
) -> Result<u64, Error> {
    let read_error =
        |line: u64, source: Box<dyn std::error::Error + Send + Sync>| Error::DeadLetterRead {
            path: path.to_owned(),
            line,
            source,
        };
    let file = File::open(path).map_err(|e| read_error(0, e.into()))?;
    let mut records = Vec::with_capacity(chunk);
    let mut count = 0;
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let n = n as u64 + 1;
        let line = line.map_err(|e| read_error(n, e.into()))?;
        if line.trim().is_empty() {
            continue;
        }
        let entry: DeadLetterLine =
            serde_json::from_str(&line).map_err(|e| read_error(n, e.into()))?;
        records.push(entry.record);
        count += 1;
        if records.len() >= chunk {
            each(std::mem::take(&mut records))?;
        }
    }
    if !records.is_empty() {
        each(records)?;
    }
    Ok(count)
}

/// What a replay needs of a line; the rest is for people.
#[derive(serde::Deserialize)]
struct DeadLetterLine {
    record: AuditRecord,
}
