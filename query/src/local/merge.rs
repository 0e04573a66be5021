//! The ordered merge: file results back in path order, and into the summary and the sink.
//!
//! Takes the workers' results, with their indexes, in the order the files finish. Gives the
//! sink each file's rows in path order (one batch a file, then the held rows at the end), its
//! bad input and its progress, and fills the [`ScanSummary`]. Guarantees that output is
//! deterministic (by file in path order, then by event time, whatever the threads did), that
//! the names a file teaches are learnt before its rows and every later file's are named, and
//! that a fetch S3 failed stops the scan there. Holds only the results that finished ahead of
//! the next one in order. Must never read files nor decide what a record is.

use std::collections::BTreeMap;
use std::sync::mpsc;

use connect_audit_core::Directory;
use tracing::debug;

use super::dedupe::UniqueRows;
use super::file::FileResult;
use super::{EarlyRow, ScanSummary};
use crate::error::Error;
use crate::sink::ScanSink;
use connect_audit_core::objects::file_delivery_time;

/// Puts file results back in path order, learns names, deduplicates, names and emits.
pub(super) fn merge(
    rx: &mpsc::Receiver<(usize, FileResult)>,
    directory: &mut Directory,
    sink: &mut dyn ScanSink,
    summary: &mut ScanSummary,
) -> Result<(), Error> {
    let mut pending = BTreeMap::new();
    let mut next = 0;
    let mut rows = UniqueRows::default();
    for (i, result) in rx {
        pending.insert(i, result);
        while let Some(result) = pending.remove(&next) {
            next += 1;
            take_file(result, directory, &mut rows, sink, summary)?;
        }
    }
    rows.finish(directory, sink, summary)
}

/// One file's result, in path order: counted, reported, its names learnt, its rows written.
fn take_file(
    result: FileResult,
    directory: &mut Directory,
    rows: &mut UniqueRows,
    sink: &mut dyn ScanSink,
    summary: &mut ScanSummary,
) -> Result<(), Error> {
    if let Some(e) = result.fatal {
        return Err(Error::Location(e));
    }
    if let Some((key, sha256)) = result.sha256 {
        summary
            .hashes
            .insert(key, connect_audit_core::integrity::LogSeen { sha256 });
    }
    if result.ok {
        summary.files_read += 1;
        summary.bytes_read += result.bytes;
    } else {
        summary.files_bad += 1;
    }
    summary.records_seen += result.records_seen;
    for problem in &result.bad {
        if problem.record.is_some() {
            summary.records_bad += 1;
        }
        sink.bad_input(problem);
    }
    summary.bad.extend(result.bad);
    for name in result.learned {
        directory.learn(name.kind, &name.id, &name.name);
    }
    if !result.early.is_empty() {
        let delivered_at = result
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(file_delivery_time);
        for (row_key, event_time) in result.early {
            summary.before_window.push(EarlyRow {
                row_key,
                event_time,
                path: result.path.clone(),
                delivered_at,
            });
        }
    }
    let batch = rows.take(result.records, directory, summary)?;
    sink.file_scanned(&result.path, result.bytes);
    debug!(file = %result.path.display(), records = batch.len(), "Scanned file.");
    summary.records_matched += batch.len() as u64;
    if !batch.is_empty() {
        sink.records(batch).map_err(Error::Sink)?;
    }
    Ok(())
}
