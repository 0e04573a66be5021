//! The embedded engine: scan CloudTrail files under a directory.
//!
//! Layouts: `AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/*.json.gz` and organization
//! trails `AWSLogs/<o-id>/<account>/CloudTrail/…`; the root may be any folder above or below
//! `AWSLogs`, or a single file. `CloudTrail-Digest/` and `CloudTrail-Insight/` are skipped.
//! Files are pruned by the delivery date in their path, with a day of slack on each side.
//!
//! Files are read by `threads` workers; results are put back into path order before they
//! reach the sink, so output is deterministic: rows come by file (path order), then by event
//! time. Rows that need a name only a later `CreateUser` can give are held back and come at
//! the end, named if the trail named them. Memory holds one decompressed file per worker and
//! the audited rows of files not yet in order, never the whole trail.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::fs;
use std::io::{self, BufRead as _, Read, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use connect_audit_core::catalogue::{CONNECT_EVENT_SOURCE, group_of};
use connect_audit_core::cloudtrail::{LearnedName, Parsed, parse_record};
use connect_audit_core::{AuditRecord, Directory, EventSelection, Location, Window};
use jiff::civil::Date;
use serde::Deserialize;
use serde_json::value::RawValue;
use tracing::debug;
use walkdir::WalkDir;

use crate::error::Error;

/// The error a sink returns to stop the scan.
pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// Receives what a scan finds, in order, on the calling thread.
///
/// `records` is called with batches in output order; an error stops the scan and is returned
/// from [`TrailScanner::scan`] as [`Error::Sink`]. The other hooks are for progress and
/// reporting and default to doing nothing.
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
    /// The file.
    pub path: PathBuf,
    /// Index of the record in the file's `Records` array, for a bad record.
    pub record: Option<usize>,
    /// The record's `eventID`, when it has one.
    pub event_id: Option<String>,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(i) = self.record {
            write!(f, ": record {i}")?;
        }
        if let Some(id) = &self.event_id {
            write!(f, " (eventID {id})")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// What to scan for.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Events with `since <= eventTime < until` are kept.
    pub window: Window,
    /// Which events are audited.
    pub events: EventSelection,
    /// Worker threads reading files. At least 1.
    pub threads: usize,
}

impl ScanOptions {
    /// Options with one worker per core.
    pub fn new(window: Window, events: EventSelection) -> Self {
        let threads = std::thread::available_parallelism().map_or(2, usize::from);
        Self {
            window,
            events,
            threads,
        }
    }
}

/// Counts of a finished scan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanSummary {
    /// Trail files found under the root (digest and insight files excluded).
    pub files_found: u64,
    /// Files skipped because their delivery date is outside the window (with slack).
    pub files_pruned: u64,
    /// Files read successfully.
    pub files_read: u64,
    /// Files that could not be read at all (see `bad`).
    pub files_bad: u64,
    /// Compressed bytes of the files read.
    pub bytes_read: u64,
    /// Records in the files read.
    pub records_seen: u64,
    /// Audited records written to the sink.
    pub records_matched: u64,
    /// Records skipped because their `eventID` was already written.
    pub duplicates: u64,
    /// Audited-looking records that could not be read (see `bad`).
    pub records_bad: u64,
    /// Records written with `name_source = unresolved`.
    pub names_unresolved: u64,
    /// Every file or record skipped, with the reason.
    pub bad: Vec<BadInput>,
}

impl ScanSummary {
    /// Whether anything was skipped as bad input.
    pub fn has_bad_input(&self) -> bool {
        self.files_bad > 0 || self.records_bad > 0
    }
}

/// Scans a trail and joins it with a [`Directory`].
#[derive(Debug)]
pub struct TrailScanner {
    root: Location,
    directory: Directory,
    options: ScanOptions,
}

/// A trail file to read.
#[derive(Debug)]
struct TrailFile {
    path: PathBuf,
    bytes: u64,
}

/// What a worker found in one file.
#[derive(Debug, Default)]
struct FileResult {
    path: PathBuf,
    bytes: u64,
    ok: bool,
    records_seen: u64,
    records: Vec<AuditRecord>,
    learned: Vec<LearnedName>,
    bad: Vec<BadInput>,
}

impl TrailScanner {
    /// A scanner of the trail under `root`, naming ids from `directory`.
    pub fn new(root: Location, directory: Directory, options: ScanOptions) -> Self {
        Self {
            root,
            directory,
            options,
        }
    }

    /// Scans every file, streaming records to `sink`. Bad files and records are reported to
    /// the sink and in the summary; they do not stop the scan.
    pub fn scan(mut self, sink: &mut dyn ScanSink) -> Result<ScanSummary, Error> {
        let root = self.root.local_path()?.to_owned();
        fs::metadata(&root).map_err(|source| Error::Trail {
            path: root.clone(),
            source,
        })?;
        let mut summary = ScanSummary::default();
        let files = self.find_files(&root, &mut summary, sink);
        let total: u64 = files.iter().map(|f| f.bytes).sum();
        sink.files_found(files.len() as u64, total);
        debug!(root = %root.display(), files = files.len(), bytes = total, "Found trail files.");

        let threads = self.options.threads.clamp(1, files.len().max(1));
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let (tx, rx) = mpsc::sync_channel::<(usize, FileResult)>(threads * 4);
        let options = &self.options.clone();
        let files = &files;
        let outcome = std::thread::scope(|scope| {
            let mut workers = Vec::new();
            for _ in 0..threads {
                let tx = tx.clone();
                let (next, stop) = (&next, &stop);
                workers.push(scope.spawn(move || {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= files.len() || stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let result = scan_file(&files[i], options);
                        if tx.send((i, result)).is_err() {
                            break;
                        }
                    }
                }));
            }
            drop(tx);
            let merged = self.merge(&rx, sink, &mut summary);
            if merged.is_err() {
                stop.store(true, Ordering::Relaxed);
            }
            drop(rx);
            for w in workers {
                if w.join().is_err() {
                    return Err(Error::WorkerPanicked(root.display().to_string()));
                }
            }
            merged
        });
        outcome?;
        Ok(summary)
    }

    /// Puts file results back in path order, learns names, deduplicates, names and emits.
    fn merge(
        &mut self,
        rx: &mpsc::Receiver<(usize, FileResult)>,
        sink: &mut dyn ScanSink,
        summary: &mut ScanSummary,
    ) -> Result<(), Error> {
        let mut pending = BTreeMap::new();
        let mut next = 0;
        let mut seen_ids = HashSet::new();
        let mut held = HeldRows::default();
        for (i, result) in rx {
            pending.insert(i, result);
            while let Some(result) = pending.remove(&next) {
                next += 1;
                self.take_file(result, &mut seen_ids, &mut held, sink, summary)?;
            }
        }
        // Rows still unnamed: the whole trail has been read now, so they get every name the
        // trail can give, and come last, in trail order.
        held.drain(HELD_BATCH, |mut batch| {
            for record in &mut batch {
                if !self.directory.resolve(record) {
                    summary.names_unresolved += 1;
                }
            }
            summary.records_matched += batch.len() as u64;
            sink.records(batch).map_err(Error::Sink)
        })
    }

    fn take_file(
        &mut self,
        result: FileResult,
        seen_ids: &mut HashSet<String>,
        held: &mut HeldRows,
        sink: &mut dyn ScanSink,
        summary: &mut ScanSummary,
    ) -> Result<(), Error> {
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
            self.directory.learn(name.kind, &name.id, &name.name);
        }
        let mut batch = Vec::with_capacity(result.records.len());
        for mut record in result.records {
            if !seen_ids.insert(record.event_id.clone()) {
                summary.duplicates += 1;
                continue;
            }
            if self.directory.resolve(&mut record) {
                batch.push(record);
            } else {
                held.push(record)?;
            }
        }
        sink.file_scanned(&result.path, result.bytes);
        debug!(file = %result.path.display(), records = batch.len(), "Scanned file.");
        summary.records_matched += batch.len() as u64;
        if !batch.is_empty() {
            sink.records(batch).map_err(Error::Sink)?;
        }
        Ok(())
    }

    /// Walks the root for trail files in the window, in path order.
    fn find_files(
        &self,
        root: &Path,
        summary: &mut ScanSummary,
        sink: &mut dyn ScanSink,
    ) -> Vec<TrailFile> {
        let mut files = Vec::new();
        let walk = WalkDir::new(root)
            .follow_links(true)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| {
                let name = e.file_name().to_string_lossy();
                !(e.file_type().is_dir()
                    && (name == "CloudTrail-Digest" || name == "CloudTrail-Insight"))
            });
        for entry in walk {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    let problem = BadInput {
                        path: e.path().unwrap_or(root).to_owned(),
                        record: None,
                        event_id: None,
                        reason: walk_error_reason(&e),
                    };
                    summary.files_bad += 1;
                    sink.bad_input(&problem);
                    summary.bad.push(problem);
                    continue;
                }
            };
            if !entry.file_type().is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy();
            let is_trail = name.ends_with(".json.gz") || name.ends_with(".json");
            if !is_trail
                || name.contains("_CloudTrail-Digest_")
                || name.contains("_CloudTrail-Insight_")
            {
                continue;
            }
            summary.files_found += 1;
            if delivery_date(entry.path())
                .is_some_and(|d| !self.options.window.may_hold_delivery_date(d))
            {
                summary.files_pruned += 1;
                continue;
            }
            let bytes = entry.metadata().map_or(0, |m| m.len());
            files.push(TrailFile {
                path: entry.into_path(),
                bytes,
            });
        }
        files
    }
}

/// Rows held back in memory before they spill to a temporary file.
const HELD_BATCH: usize = 20_000;

/// Rows waiting for a name the rest of the trail may give. Past [`HELD_BATCH`] rows they go
/// to a temporary JSON Lines file, so memory stays flat even when most rows wait (a run
/// without a snapshot).
struct HeldRows {
    rows: Vec<AuditRecord>,
    limit: usize,
    spill: Option<io::BufWriter<fs::File>>,
}

impl Default for HeldRows {
    fn default() -> Self {
        Self {
            rows: Vec::new(),
            limit: HELD_BATCH,
            spill: None,
        }
    }
}

impl HeldRows {
    fn push(&mut self, record: AuditRecord) -> Result<(), Error> {
        self.rows.push(record);
        if self.rows.len() >= self.limit {
            let spill = match &mut self.spill {
                Some(spill) => spill,
                None => self.spill.insert(io::BufWriter::new(
                    tempfile::tempfile().map_err(Error::Spill)?,
                )),
            };
            for row in self.rows.drain(..) {
                serde_json::to_writer(&mut *spill, &row).map_err(|e| Error::Spill(e.into()))?;
                spill.write_all(b"\n").map_err(Error::Spill)?;
            }
        }
        Ok(())
    }

    /// Hands every held row to `emit` in batches of at most `size`, spilled rows first.
    fn drain(
        self,
        size: usize,
        mut emit: impl FnMut(Vec<AuditRecord>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        if let Some(spill) = self.spill {
            let mut file = spill
                .into_inner()
                .map_err(|e| Error::Spill(e.into_error()))?;
            file.seek(io::SeekFrom::Start(0)).map_err(Error::Spill)?;
            let mut batch = Vec::with_capacity(size);
            for line in io::BufReader::new(file).lines() {
                let line = line.map_err(Error::Spill)?;
                batch.push(serde_json::from_str(&line).map_err(|e| Error::Spill(e.into()))?);
                if batch.len() == size {
                    emit(std::mem::take(&mut batch))?;
                }
            }
            if !batch.is_empty() {
                emit(batch)?;
            }
        }
        if !self.rows.is_empty() {
            emit(self.rows)?;
        }
        Ok(())
    }
}

fn walk_error_reason(e: &walkdir::Error) -> String {
    if let Some(ancestor) = e.loop_ancestor() {
        return format!("symbolic link loop back to {}", ancestor.display());
    }
    match e.io_error() {
        Some(io) => format!("cannot read: {io}"),
        None => e.to_string(),
    }
}

/// The delivery date of a file from `…/YYYY/MM/DD/<file>`, if its path has one.
fn delivery_date(path: &Path) -> Option<Date> {
    let mut dirs = path
        .parent()?
        .components()
        .rev()
        .map(|c| c.as_os_str().to_str());
    let day: i8 = dirs.next()??.parse().ok()?;
    let month: i8 = dirs.next()??.parse().ok()?;
    let year: i16 = dirs.next()??.parse().ok()?;
    Date::new(year, month, day).ok()
}

/// The top level of a trail file: only `Records`, each kept as raw text until it passes the
/// byte-level filter.
#[derive(Deserialize)]
struct Records<'a> {
    #[serde(rename = "Records", borrow)]
    records: Option<Vec<&'a RawValue>>,
}

/// Reads, decompresses and scans one file. Never panics on bad input; problems become
/// [`BadInput`]s.
fn scan_file(file: &TrailFile, options: &ScanOptions) -> FileResult {
    let mut result = FileResult {
        path: file.path.clone(),
        bytes: file.bytes,
        ..FileResult::default()
    };
    let bad_file = |reason: String| BadInput {
        path: file.path.clone(),
        record: None,
        event_id: None,
        reason,
    };
    let text = match read_trail_file(&file.path) {
        Ok(text) => text,
        Err(reason) => {
            result.bad.push(bad_file(reason));
            return result;
        }
    };
    let records = match serde_json::from_slice::<Records<'_>>(&text) {
        Ok(Records {
            records: Some(records),
        }) => records,
        Ok(Records { records: None }) => {
            result.bad.push(bad_file("no `Records` array".into()));
            return result;
        }
        Err(e) if e.is_data() => {
            result.bad.push(bad_file(format!(
                "`Records` is not an array of records: {e}"
            )));
            return result;
        }
        Err(e) => {
            result.bad.push(bad_file(format!("not JSON: {e}")));
            return result;
        }
    };
    result.ok = true;
    result.records_seen = records.len() as u64;
    let needle = memchr::memmem::Finder::new(CONNECT_EVENT_SOURCE);
    for (index, raw) in records.iter().enumerate() {
        let raw = raw.get();
        let bad_record = |event_id: Option<&str>, reason: String| BadInput {
            path: file.path.clone(),
            record: Some(index),
            event_id: event_id.map(str::to_owned),
            reason,
        };
        if !raw.starts_with('{') {
            result
                .bad
                .push(bad_record(None, "not a JSON object".into()));
            continue;
        }
        if needle.find(raw.as_bytes()).is_none() {
            continue;
        }
        let rec = match parse_record(raw) {
            Ok(Parsed::Connect(rec)) => rec,
            Ok(Parsed::Other) => continue,
            Err(e) => {
                result.bad.push(bad_record(None, e.to_string()));
                continue;
            }
        };
        result.learned.extend(rec.learned_name());
        let Some(name) = rec.event_name.as_deref() else {
            result.bad.push(bad_record(
                rec.event_id.as_deref(),
                "missing `eventName`".into(),
            ));
            continue;
        };
        let Some(group) = group_of(name).filter(|_| options.events.contains(name)) else {
            continue;
        };
        match rec.to_audit_record(group) {
            Ok(record) if options.window.contains(record.event_time) => result.records.push(record),
            Ok(_) => {}
            Err(e) => result
                .bad
                .push(bad_record(rec.event_id.as_deref(), e.to_string())),
        }
    }
    result
        .records
        .sort_by(|a, b| (a.event_time, &a.event_id).cmp(&(b.event_time, &b.event_id)));
    result
}

/// The JSON text of a trail file: `.json.gz` is gunzipped (all members), `.json` read as is.
fn read_trail_file(path: &Path) -> Result<Vec<u8>, String> {
    let raw = fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let gz = path.extension().is_some_and(|e| e == "gz");
    if !gz {
        return Ok(raw);
    }
    if raw.is_empty() {
        return Err("empty file (expected gzip)".into());
    }
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Err("not gzip (no gzip magic bytes)".into());
    }
    let mut text = Vec::with_capacity(raw.len() * 8);
    flate2::read::MultiGzDecoder::new(raw.as_slice())
        .read_to_end(&mut text)
        .map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => "truncated gzip (unexpected end of data)".to_owned(),
            _ => format!("corrupt gzip: {e}"),
        })?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_dates_come_from_the_path() {
        let d = delivery_date(Path::new(
            "AWSLogs/1/CloudTrail/us-east-1/2024/05/02/1_CloudTrail_us-east-1_x.json.gz",
        ));
        assert_eq!(d, Some(Date::new(2024, 5, 2).unwrap()));
        assert_eq!(delivery_date(Path::new("trail/file.json.gz")), None);
        assert_eq!(delivery_date(Path::new("2024/13/02/f.json")), None);
    }

    #[test]
    fn held_rows_spill_and_come_back_in_order() {
        let record = |i: usize| AuditRecord {
            event_time: jiff::Timestamp::UNIX_EPOCH,
            event_id: format!("e{i}"),
            event_name: "DeleteUser".into(),
            category: connect_audit_core::Category::User,
            account_id: "1".into(),
            region: "r".into(),
            instance_id: None,
            actor_kind: connect_audit_core::ActorKind::Iam,
            actor_id: None,
            actor_name: Some("ops".into()),
            actor_arn: None,
            target_kind: connect_audit_core::TargetKind::User,
            target_id: Some(format!("u{i}")),
            target_name: None,
            name_source: connect_audit_core::NameSource::Unresolved,
            origin: connect_audit_core::Origin::Api,
            source_ip: None,
            user_agent: Some("a\nb\"c".into()),
            error_code: None,
            error_message: None,
            request_parameters: Some("{\"UserId\":\"u\"}".into()),
            response_elements: None,
        };
        let mut held = HeldRows {
            limit: 3,
            ..HeldRows::default()
        };
        for i in 0..8 {
            held.push(record(i)).unwrap();
        }
        assert!(held.spill.is_some());
        assert_eq!(held.rows.len(), 2);
        let mut out = Vec::new();
        held.drain(4, |batch| {
            assert!(batch.len() <= 4);
            out.extend(batch);
            Ok(())
        })
        .unwrap();
        assert_eq!(out, (0..8).map(record).collect::<Vec<_>>());
    }

    #[test]
    fn gzip_problems_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let not_gz = dir.path().join("a.json.gz");
        fs::write(&not_gz, b"{\"Records\":[]}").unwrap();
        assert!(read_trail_file(&not_gz).unwrap_err().contains("not gzip"));
        let truncated = dir.path().join("b.json.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut enc, &[b'x'; 10_000]).unwrap();
        let bytes = enc.finish().unwrap();
        fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
        assert!(
            read_trail_file(&truncated)
                .unwrap_err()
                .contains("truncated")
        );
    }
}
