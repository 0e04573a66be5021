//! The embedded engine: scan CloudTrail files under a directory or an S3 prefix.
//!
//! Layouts: `AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/*.json.gz` and organization
//! trails `AWSLogs/<o-id>/<account>/CloudTrail/…`; the root may be any folder above or below
//! `AWSLogs`, or (locally) a single file. `CloudTrail-Digest/` and `CloudTrail-Insight/` are
//! skipped. Under a directory or prefix only files named as CloudTrail names its log files
//! are read (see [`is_log_file_name`]): anything else kept there (a manifest, a CSV, a
//! snapshot store beside `AWSLogs/`) is not CloudTrail's, so it is neither read nor bad
//! input, only counted in [`ScanSummary::files_ignored`] and logged at info level. A single
//! file given as the root is read whatever its name. Files are pruned by the delivery date in
//! their path, with a day of slack on each side.
//!
//! A local trail is walked and each file streamed from disk. An S3 trail is never listed
//! whole: accounts and regions are found with delimiter listings, then only the date prefixes
//! `YYYY/MM/DD/` of the window (and its slack) are listed, so files outside the window are
//! neither fetched nor counted in [`ScanSummary::files_found`]. Objects are fetched up to
//! [`FETCH_CONCURRENCY`] at a time on a tokio runtime (enough to hide S3's latency behind
//! CloudTrail's many small files) and handed, in memory, to the same per-file code the local
//! walk uses; the objects being fetched or waiting for a worker never hold more than
//! [`ScanOptions::fetch_budget`] bytes between them (one larger object goes alone). An object
//! S3 does not give (after the SDK's retries: the store is down, throttles or refuses) is not
//! a bad file: the scan fails naming it, so no output or incremental state ever advances past
//! events it could not read.
//!
//! Files are read by `threads` workers; results are put back into path order before they
//! reach the sink, so output is deterministic: rows come by file (path order), then by event
//! time. Rows that need a name only a later `CreateUser` can give are held back and come at
//! the end, named if the trail named them. Memory holds a window of decompressed text per
//! worker and the audited rows of files not yet in order, never the whole trail. Local files
//! are started largest of the next few first (see [`LOOKAHEAD`]).

use std::collections::{BTreeMap, HashSet};
use std::fmt::{self, Write as _};
use std::fs;
use std::io::{self, BufRead, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use connect_audit_core::catalogue::{CONNECT_EVENT_SOURCE, group_of};
use connect_audit_core::cloudtrail::{LearnedName, Parsed, parse_record, raw_event_id};
use connect_audit_core::redact::Redaction;
use connect_audit_core::{
    AuditRecord, Directory, EventSelection, ObjectInfo, Scope, Store, Window,
};
use futures_util::{StreamExt as _, TryStreamExt as _};
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use tokio::runtime::{Handle, RuntimeFlavor};
use tracing::{debug, info};
use walkdir::WalkDir;

use crate::error::Error;
use crate::records::RecordSplitter;

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
fn clipped(mut text: String) -> String {
    if let Some((cut, _)) = text.char_indices().nth(MAX_SHOWN) {
        let left = text.len() - cut;
        text.truncate(cut);
        write!(text, "… ({left} more bytes)").ok();
    }
    text
}

/// Text shown with its control characters escaped, everything else as is.
struct Escaped<'a>(&'a str);

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

/// What to scan for.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Events with `since <= eventTime < until` are kept.
    pub window: Window,
    /// Which events are audited.
    pub events: EventSelection,
    /// Worker threads reading files. At least 1.
    pub threads: usize,
    /// The accounts, regions and instances reported. Default: everything.
    pub scope: Scope,
    /// S3 only: the most compressed bytes fetched and not yet scanned at once. Default
    /// [`FETCH_BUDGET`].
    pub fetch_budget: u32,
    /// What is removed from `request_parameters` and `response_elements`. Default: the
    /// secret credentials ([`Redaction::secrets`]).
    pub redaction: Redaction,
}

impl ScanOptions {
    /// Options with one worker per core.
    pub fn new(window: Window, events: EventSelection) -> Self {
        let threads = std::thread::available_parallelism().map_or(2, usize::from);
        Self {
            window,
            events,
            threads,
            scope: Scope::default(),
            fetch_budget: FETCH_BUDGET,
            redaction: Redaction::secrets(),
        }
    }
}

/// Counts of a finished scan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanSummary {
    /// Trail files found under the root (digest and insight files excluded). On S3 only the
    /// window's date prefixes are listed, so files of other dates are not counted here (nor
    /// in `files_pruned`): they are never seen.
    pub files_found: u64,
    /// Files skipped because their delivery date is outside the window (with slack).
    pub files_pruned: u64,
    /// Files under the root whose names are not CloudTrail log file names (see
    /// [`is_log_file_name`]): not read, not bad input, not in `files_found`; each is logged at
    /// info level. Digest and insight files are not counted here either. On S3 only the
    /// prefixes the walk lists are seen (as for `files_found`): objects beside `AWSLogs/` or
    /// in date prefixes outside the window are never listed, so never counted.
    pub files_ignored: u64,
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
    /// Audited rows (of the selected events and scope) read from the scanned files whose
    /// time lies before the window: not written. Usually the previous window's, delivered in
    /// the day of slack; an incremental run tells those in files delivered since its last run
    /// (see [`EarlyRow::delivered_at`]). A row delivered twice is here twice.
    pub before_window: Vec<EarlyRow>,
}

impl ScanSummary {
    /// Whether anything was skipped as bad input.
    pub fn has_bad_input(&self) -> bool {
        self.files_bad > 0 || self.records_bad > 0
    }
}

/// An audited row found in a scanned file, with a time before the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EarlyRow {
    /// Its row key (`AuditRecord::row_key`).
    pub row_key: String,
    /// Its event time.
    pub event_time: Timestamp,
    /// The file it was read from.
    pub path: PathBuf,
    /// When CloudTrail delivered that file, from its name (`…_20240502T1005Z_…`), to the
    /// minute; `None` for a file not named so (`--trail FILE`).
    pub delivered_at: Option<Timestamp>,
}

/// S3 objects fetched at once, at most. S3 answers each GET after tens of milliseconds, and
/// most CloudTrail files are small: with 16, a scan of many small files waited on latency.
pub const FETCH_CONCURRENCY: usize = 64;

/// S3 listings run at once.
pub const LIST_CONCURRENCY: usize = 16;

/// The default [`ScanOptions::fetch_budget`]: 32 MiB of compressed objects in memory.
pub const FETCH_BUDGET: u32 = 32 << 20;

/// Scans a trail and joins it with a [`Directory`].
#[derive(Debug)]
pub struct TrailScanner {
    trail: Store,
    directory: Directory,
    options: ScanOptions,
    runtime: Option<Handle>,
}

/// A trail file to read.
#[derive(Debug)]
struct TrailFile {
    /// A local path, or `s3://bucket/key`: what messages name.
    path: PathBuf,
    /// The key in the store, for an S3 object.
    key: Option<String>,
    bytes: u64,
}

impl TrailFile {
    /// The segments of its S3 key, for sorting as a local walk does (by path component).
    fn key_segments(&self) -> std::str::Split<'_, char> {
        self.key.as_deref().unwrap_or_default().split('/')
    }
}

/// What an S3 fetch gave for the file at an index, with its share of the fetch budget (given
/// back when the object has been scanned).
type Fetched = (
    usize,
    Result<Option<Vec<u8>>, connect_audit_core::Error>,
    tokio::sync::OwnedSemaphorePermit,
);

/// Where workers take their next file from.
enum Feed<'a> {
    /// Workers open files themselves, in the order the schedule gives.
    Disk(&'a Schedule),
    /// The runtime fetches objects; workers take them as they arrive.
    Fetched(&'a Mutex<tokio::sync::mpsc::Receiver<Fetched>>),
}

/// How many files past the first one not yet started a worker may start: the largest of them
/// goes first, so that a large file near the end of the trail does not leave one thread
/// inflating alone while the others wait; the merge holds at most this many results back.
const LOOKAHEAD: usize = 32;

/// Hands out local files to workers: path order, but the largest of the next [`LOOKAHEAD`]
/// first.
struct Schedule {
    sizes: Vec<u64>,
    /// The first file not handed out, and which files have been.
    taken: Mutex<(usize, Vec<bool>)>,
}

impl Schedule {
    fn new(files: &[TrailFile]) -> Self {
        Self {
            sizes: files.iter().map(|f| f.bytes).collect(),
            taken: Mutex::new((0, vec![false; files.len()])),
        }
    }

    fn next(&self) -> Option<usize> {
        let mut guard = self
            .taken
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (first, taken) = &mut *guard;
        while taken.get(*first) == Some(&true) {
            *first += 1;
        }
        let end = (*first + LOOKAHEAD).min(taken.len());
        // The largest; of equal sizes, the first in path order.
        let i = (*first..end)
            .filter(|&i| !taken[i])
            .max_by_key(|&i| (self.sizes[i], std::cmp::Reverse(i)))?;
        taken[i] = true;
        Some(i)
    }
}

/// What a worker found in one file.
#[derive(Debug, Default)]
struct FileResult {
    path: PathBuf,
    bytes: u64,
    ok: bool,
    records_seen: u64,
    records: Vec<AuditRecord>,
    /// Audited rows before the window: row key and time.
    early: Vec<(String, Timestamp)>,
    learned: Vec<LearnedName>,
    bad: Vec<BadInput>,
    /// S3 failed to give the object (after the SDK's retries): the scan stops here rather than
    /// skip the file, so no report, output or state advance ever leaves its events out.
    fatal: Option<connect_audit_core::Error>,
}

impl TrailScanner {
    /// A scanner of the trail in `trail` (a local directory or file, or an S3 prefix), naming
    /// ids from `directory`.
    pub fn new(trail: Store, directory: Directory, options: ScanOptions) -> Self {
        Self {
            trail,
            directory,
            options,
            runtime: None,
        }
    }

    /// Runs the S3 listings and fetches on this multi-threaded runtime (the one the S3
    /// client was built and used on) instead of a private one. A current-thread runtime is
    /// ignored: it would only run while its owner blocks on it.
    #[must_use]
    pub fn with_runtime(mut self, runtime: Handle) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// Scans every file, streaming records to `sink`. Bad files and records are reported to
    /// the sink and in the summary; they do not stop the scan.
    ///
    /// This blocks: from async code, call it inside `tokio::task::spawn_blocking`.
    pub fn scan(mut self, sink: &mut dyn ScanSink) -> Result<ScanSummary, Error> {
        let mut summary = ScanSummary::default();
        let root = self.trail.describe("");
        if let Some(local) = self.trail.local_root() {
            let local = local.to_owned();
            fs::metadata(&local).map_err(|source| Error::Trail {
                path: local.clone(),
                source,
            })?;
            let files = self.find_files(&local, &mut summary, sink);
            let schedule = Schedule::new(&files);
            self.scan_files(&files, &Feed::Disk(&schedule), sink, summary, &root)
        } else {
            // Kept alive until the scan is over when it is ours.
            let private;
            let handle = match &self.runtime {
                Some(h) if h.runtime_flavor() != RuntimeFlavor::CurrentThread => h.clone(),
                _ => {
                    private = tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .thread_name("connect-audit-s3")
                        .enable_all()
                        .build()
                        .map_err(Error::Runtime)?;
                    private.handle().clone()
                }
            };
            let store = self.trail.clone();
            let window = self.options.window;
            let files = handle.block_on(find_objects(&store, window, &mut summary))?;
            let (fetch_tx, fetch_rx) = tokio::sync::mpsc::channel::<Fetched>(FETCH_CONCURRENCY);
            let budget = self.options.fetch_budget.max(1);
            let keys: Vec<(usize, String, u32)> = files
                .iter()
                .enumerate()
                .filter_map(|(i, f)| {
                    // An object larger than the whole budget takes all of it, and goes alone.
                    let share = u32::try_from(f.bytes).unwrap_or(u32::MAX).clamp(1, budget);
                    Some((i, f.key.clone()?, share))
                })
                .collect();
            let fetcher = handle.spawn(async move {
                let budget = Arc::new(tokio::sync::Semaphore::new(budget as usize));
                let mut fetched = futures_util::stream::iter(keys)
                    .map(|(i, key, share)| {
                        let store = store.clone();
                        let budget = Arc::clone(&budget);
                        async move {
                            // In key order: the semaphore is fair, so a large object is not
                            // overtaken for ever by small ones.
                            let share = budget
                                .acquire_many_owned(share)
                                .await
                                .expect("the budget is never closed");
                            (i, store.get(&key).await, share)
                        }
                    })
                    .buffer_unordered(FETCH_CONCURRENCY);
                while let Some(item) = fetched.next().await {
                    if fetch_tx.send(item).await.is_err() {
                        break;
                    }
                }
            });
            let fetch_rx = Mutex::new(fetch_rx);
            let scanned = self.scan_files(&files, &Feed::Fetched(&fetch_rx), sink, summary, &root);
            fetcher.abort();
            scanned
        }
    }

    /// Reads `files` on worker threads and merges their results in order.
    fn scan_files(
        &mut self,
        files: &[TrailFile],
        feed: &Feed<'_>,
        sink: &mut dyn ScanSink,
        mut summary: ScanSummary,
        root: &str,
    ) -> Result<ScanSummary, Error> {
        let total: u64 = files.iter().map(|f| f.bytes).sum();
        sink.files_found(files.len() as u64, total);
        debug!(
            %root,
            files = files.len(),
            bytes = total,
            simd = crate::simd_level(),
            "Found trail files."
        );

        let threads = self.options.threads.clamp(1, files.len().max(1));
        let stop = AtomicBool::new(false);
        let (tx, rx) = mpsc::sync_channel::<(usize, FileResult)>(threads * 4);
        let options = &self.options.clone();
        let outcome = std::thread::scope(|scope| {
            let mut workers = Vec::new();
            for _ in 0..threads {
                let tx = tx.clone();
                let stop = &stop;
                workers.push(scope.spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let (i, result) = match feed {
                            Feed::Disk(schedule) => {
                                let Some(i) = schedule.next() else { break };
                                (i, scan_local_file(&files[i], options))
                            }
                            Feed::Fetched(fetched) => {
                                let next = fetched
                                    .lock()
                                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                                    .blocking_recv();
                                let Some((i, got, share)) = next else { break };
                                let result = scan_fetched_object(&files[i], got, options);
                                drop(share);
                                (i, result)
                            }
                        };
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
                    return Err(Error::WorkerPanicked(root.to_owned()));
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
        if let Some(e) = result.fatal {
            return Err(Error::Location(e));
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
            self.directory.learn(name.kind, &name.id, &name.name);
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
        let mut batch = Vec::with_capacity(result.records.len());
        for mut record in result.records {
            if !seen_ids.insert(record.row_key().into_owned()) {
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
            if name.contains("_CloudTrail-Digest_") || name.contains("_CloudTrail-Insight_") {
                continue;
            }
            // A root that is a file was named by the user: it is read whatever its name.
            if entry.depth() > 0 && !is_log_file_name(&name) {
                summary.files_ignored += 1;
                info!(
                    file = %Escaped(&entry.path().display().to_string()),
                    "Ignored a file that is not a CloudTrail log."
                );
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
                key: None,
                bytes,
            });
        }
        files
    }
}

/// Rows held back in memory before they spill to a temporary file (and read back at a time).
/// Small: a held row is a few kB, and memory must not grow with the number of audited events
/// (measured: 20 000 made a run without a snapshot grow by 5 MiB from a 1 GB to a 4 GB trail).
const HELD_BATCH: usize = 256;

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

/// A step of the walk down an S3 trail: a relative prefix (`""` or ending in `/`) and what
/// the CloudTrail layout puts there.
#[derive(Debug)]
enum Step {
    /// `AWSLogs/`: account ids and organization ids.
    Accounts(String),
    /// `AWSLogs/o-…/`: the accounts of an organization trail.
    Organization(String),
    /// `AWSLogs/[o-…/]<account>/`.
    Account(String),
    /// `…/CloudTrail/`: regions.
    Regions(String),
    /// `…/CloudTrail/<region>/`: dates.
    Region(String),
    /// A prefix whose objects are listed recursively.
    Objects(String),
}

/// Where the walk starts, from the store's own prefix: a root at or below `AWSLogs` is placed
/// in the layout by its last segments; anything else is looked at by [`first_steps`].
fn start_step(root_prefix: &str) -> Option<Step> {
    let segments: Vec<&str> = root_prefix.split('/').filter(|s| !s.is_empty()).collect();
    let at = segments.iter().rposition(|s| *s == "AWSLogs")?;
    let here = String::new();
    Some(match &segments[at + 1..] {
        [] => Step::Accounts(here),
        [org] if org.starts_with("o-") => Step::Organization(here),
        [_] => Step::Account(here),
        [org, account] if org.starts_with("o-") && *account != "CloudTrail" => Step::Account(here),
        [_, "CloudTrail"] | [_, _, "CloudTrail"] => Step::Regions(here),
        [_, "CloudTrail", _] | [_, _, "CloudTrail", _] => Step::Region(here),
        _ => Step::Objects(here),
    })
}

/// The first steps for a root above `AWSLogs` (a bucket root or a key prefix of the trail):
/// `AWSLogs/` if it is there, else every object under the root, pruned by the date in its key.
async fn first_steps(store: &Store) -> Result<Vec<Step>, Error> {
    let dirs = store.list_dirs("").await?;
    Ok(if dirs.iter().any(|d| d == "AWSLogs/") {
        vec![Step::Accounts("AWSLogs/".into())]
    } else {
        vec![Step::Objects(String::new())]
    })
}

/// Lists what one step holds: further steps, or objects.
async fn expand(
    store: &Store,
    dates: &[String],
    step: Step,
) -> Result<(Vec<Step>, Vec<ObjectInfo>), Error> {
    let last_segment = |dir: &str| {
        dir.trim_end_matches('/')
            .rsplit('/')
            .next()
            .map(str::to_owned)
    };
    let steps = match step {
        Step::Accounts(base) => store
            .list_dirs(&base)
            .await?
            .into_iter()
            .map(|d| match last_segment(&d) {
                Some(id) if id.starts_with("o-") => Step::Organization(d),
                _ => Step::Account(d),
            })
            .collect(),
        Step::Organization(base) => store
            .list_dirs(&base)
            .await?
            .into_iter()
            .map(Step::Account)
            .collect(),
        Step::Account(base) => vec![Step::Regions(format!("{base}CloudTrail/"))],
        Step::Regions(base) => store
            .list_dirs(&base)
            .await?
            .into_iter()
            .map(Step::Region)
            .collect(),
        Step::Region(base) => dates
            .iter()
            .map(|date| Step::Objects(format!("{base}{date}")))
            .collect(),
        Step::Objects(prefix) => return Ok((Vec::new(), store.list(&prefix).await?)),
    };
    Ok((steps, Vec::new()))
}

/// The date prefixes of delivery dates the window may hold (see
/// [`Window::may_hold_delivery_date`]): `YYYY/MM/DD/` for windows up to about three months,
/// `YYYY/MM/` beyond, so a long window costs one listing per month, not per day. Dates before
/// CloudTrail existed (November 2013) or after tomorrow hold no files and are not listed.
fn date_prefixes(window: Window, today: Date) -> Vec<String> {
    let day = |t: jiff::Timestamp| t.to_zoned_datetime(TimeZone::UTC).date();
    let oldest = Date::new(2013, 11, 1).unwrap_or(Date::MIN);
    let newest = today.tomorrow().unwrap_or(Date::MAX);
    let first = day(window.since)
        .yesterday()
        .unwrap_or(Date::MIN)
        .max(oldest);
    let last = day(window.until)
        .tomorrow()
        .unwrap_or(Date::MAX)
        .min(newest);
    let mut prefixes = Vec::new();
    if first > last {
        return prefixes;
    }
    let by_day = first.until(last).is_ok_and(|span| span.get_days() <= 100);
    let mut date = first;
    while date <= last {
        if by_day {
            prefixes.push(format!("{}/", date.strftime("%Y/%m/%d")));
            date = match date.tomorrow() {
                Ok(next) => next,
                Err(_) => break,
            };
        } else {
            prefixes.push(format!("{}/", date.strftime("%Y/%m")));
            date = match date.first_of_month().checked_add(jiff::ToSpan::months(1)) {
                Ok(next) => next,
                Err(_) => break,
            };
        }
    }
    prefixes
}

/// Finds the trail objects of the window under an S3 store, in path order. Listings run
/// [`LIST_CONCURRENCY`] at a time; a listing that fails stops the scan (the trail cannot be
/// read as a whole), and so does a root with no objects at all (a mistyped bucket or prefix
/// must not look like a quiet week).
async fn find_objects(
    store: &Store,
    window: Window,
    summary: &mut ScanSummary,
) -> Result<Vec<TrailFile>, Error> {
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(TimeZone::UTC)
        .date();
    let dates = date_prefixes(window, today);
    let root_prefix = match store.location() {
        connect_audit_core::Location::S3 { prefix, .. } => prefix,
        connect_audit_core::Location::Local(_) => String::new(),
    };
    let mut steps = match start_step(&root_prefix) {
        Some(step) => vec![step],
        None => first_steps(store).await?,
    };
    let mut objects = Vec::new();
    while !steps.is_empty() {
        let expanded: Vec<(Vec<Step>, Vec<ObjectInfo>)> = futures_util::stream::iter(steps)
            .map(|step| expand(store, &dates, step))
            .buffer_unordered(LIST_CONCURRENCY)
            .try_collect()
            .await?;
        steps = Vec::new();
        for (more, found) in expanded {
            steps.extend(more);
            objects.extend(found);
        }
    }
    let mut files = Vec::new();
    for object in objects {
        let mut segments = object.key.split('/');
        let name = segments.next_back().unwrap_or_default();
        if name.contains("_CloudTrail-Digest_")
            || name.contains("_CloudTrail-Insight_")
            || segments.any(|s| s == "CloudTrail-Digest" || s == "CloudTrail-Insight")
        {
            continue;
        }
        if !is_log_file_name(name) {
            summary.files_ignored += 1;
            info!(
                file = %Escaped(&store.describe(&object.key)),
                "Ignored a file that is not a CloudTrail log."
            );
            continue;
        }
        summary.files_found += 1;
        if delivery_date(Path::new(&object.key)).is_some_and(|d| !window.may_hold_delivery_date(d))
        {
            summary.files_pruned += 1;
            continue;
        }
        files.push(TrailFile {
            path: PathBuf::from(store.describe(&object.key)),
            key: Some(object.key),
            bytes: object.size,
        });
    }
    if summary.files_found == 0 && !store.has_objects("").await? {
        return Err(Error::Trail {
            path: store.describe("").into(),
            source: io::Error::new(
                io::ErrorKind::NotFound,
                "no objects under this prefix (check the bucket and prefix)",
            ),
        });
    }
    // The order a local walk gives (by path component), so results merge identically.
    files.sort_by(|a, b| a.key_segments().cmp(b.key_segments()));
    Ok(files)
}

/// Whether `name` (a file name, not a path) is the name CloudTrail gives a log file:
/// `<account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<suffix>.json.gz`, or a `.json` copy of
/// one (unzipped by someone). The account is 12 digits, the region lower-case letters, digits
/// and `-`, the time a real UTC minute, the suffix not empty. Organization trails name their
/// files the same way (the organization is in the path). Digest and insight files have names
/// of their own and are not log files in this sense.
///
/// ```
/// use connect_audit_query::local::is_log_file_name;
///
/// assert!(is_log_file_name("111122223333_CloudTrail_us-east-1_20240502T1005Z_Mu0KsOhtH1ar15ZZ.json.gz"));
/// assert!(!is_log_file_name("manifest.json"));
/// ```
pub fn is_log_file_name(name: &str) -> bool {
    let Some(stem) = name
        .strip_suffix(".json.gz")
        .or_else(|| name.strip_suffix(".json"))
    else {
        return false;
    };
    let Some((account, rest)) = stem.split_once("_CloudTrail_") else {
        return false;
    };
    let Some((region, rest)) = rest.split_once('_') else {
        return false;
    };
    let Some((stamp, suffix)) = rest.split_once('_') else {
        return false;
    };
    account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && is_file_stamp(stamp)
        && !suffix.is_empty()
}

/// The delivery time in a CloudTrail log file name (`<account>_CloudTrail_<region>_
/// <YYYYMMDDTHHmmZ>_<suffix>.json.gz`), to the minute.
pub fn file_delivery_time(name: &str) -> Option<Timestamp> {
    if !is_log_file_name(name) {
        return None;
    }
    let stamp = name.split("_CloudTrail_").nth(1)?.split('_').nth(1)?;
    let civil = jiff::civil::DateTime::strptime("%Y%m%dT%H%MZ", stamp).ok()?;
    civil
        .to_zoned_datetime(TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

/// Whether `stamp` is `YYYYMMDDTHHmmZ` naming a real minute.
fn is_file_stamp(stamp: &str) -> bool {
    let b = stamp.as_bytes();
    if b.len() != 14
        || b[8] != b'T'
        || b[13] != b'Z'
        || !b[..8].iter().chain(&b[9..13]).all(u8::is_ascii_digit)
    {
        return false;
    }
    // All ASCII now: every slice is on a character boundary, and holds only digits.
    let number = |at: usize, len: usize| stamp[at..at + len].parse::<i16>().unwrap_or(-1);
    let two = |at: usize| i8::try_from(number(at, 2)).unwrap_or(-1);
    Date::new(number(0, 4), two(4), two(6)).is_ok() && two(9) < 24 && two(11) < 60
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

/// What one trail file yields, read as [`TrailScanner`] reads each file (for tools and fuzzing
/// that hold a file's bytes): before names are resolved, duplicates removed or records merged
/// across files.
#[derive(Debug, Default)]
pub struct FileScan {
    /// Whether the file could be read as a trail file at all (gzip and the `Records` array).
    pub readable: bool,
    /// Records in its `Records` array.
    pub records_seen: u64,
    /// Its audited records in the window, in output order.
    pub records: Vec<AuditRecord>,
    /// Names its events teach.
    pub learned: Vec<LearnedName>,
    /// What was skipped, the file itself or records of it.
    pub bad: Vec<BadInput>,
}

/// Scans one trail file held in memory; `path` names it in messages and decides gzip
/// (`.gz`). Never panics on bad input: problems become [`FileScan::bad`].
pub fn scan_trail_bytes(path: &Path, bytes: &[u8], options: &ScanOptions) -> FileScan {
    let file = TrailFile {
        path: path.to_path_buf(),
        key: None,
        bytes: bytes.len() as u64,
    };
    let result = scan_file(&file, bytes, options);
    FileScan {
        readable: result.ok,
        records_seen: result.records_seen,
        records: result.records,
        learned: result.learned,
        bad: result.bad,
    }
}

/// Opens a local file and scans it, streaming it from disk through the decompressor.
fn scan_local_file(file: &TrailFile, options: &ScanOptions) -> FileResult {
    match fs::File::open(&file.path) {
        Ok(f) => scan_file(file, io::BufReader::new(f), options),
        Err(e) => bad_file_result(file, format!("cannot read: {e}")),
    }
}

/// Scans an object the runtime fetched.
fn scan_fetched_object(
    file: &TrailFile,
    got: Result<Option<Vec<u8>>, connect_audit_core::Error>,
    options: &ScanOptions,
) -> FileResult {
    match got {
        Ok(Some(bytes)) => scan_file(file, bytes.as_slice(), options),
        Ok(None) => bad_file_result(file, "cannot read: listed, then gone when fetched".into()),
        // Not a bad file: S3 (or the way to it) failed, and the object may be fine.
        Err(e @ connect_audit_core::Error::S3 { .. }) => FileResult {
            path: file.path.clone(),
            bytes: file.bytes,
            fatal: Some(e),
            ..FileResult::default()
        },
        Err(e) => bad_file_result(file, format!("cannot read: {e}")),
    }
}

fn bad_file_result(file: &TrailFile, reason: String) -> FileResult {
    FileResult {
        path: file.path.clone(),
        bytes: file.bytes,
        bad: vec![BadInput {
            path: file.path.clone(),
            record: None,
            event_id: None,
            reason,
        }],
        ..FileResult::default()
    }
}

/// Decompresses and scans one file, local or fetched, from `reader`. Never panics on bad
/// input; problems become [`BadInput`]s.
fn scan_file(file: &TrailFile, reader: impl BufRead, options: &ScanOptions) -> FileResult {
    let mut buffers = BUFFERS.with_borrow_mut(std::mem::take);
    let result = scan_file_with(file, reader, options, &mut buffers);
    buffers.release_large();
    BUFFERS.with_borrow_mut(|b| *b = buffers);
    result
}

/// Inflated text is split in windows of this size (or the whole text, when smaller): memory
/// stays bounded by the window, not by the largest file, and the CRC and the structural pass
/// read each window while it is still in the core's L2 cache (1 MiB measured 3 % faster than
/// 4 MiB). A record longer than the window grows it.
const WINDOW: usize = 1 << 20;

/// The buffers a scanning thread reuses from file to file (no new pages to fault in for each):
/// the compressed file, and the window of its text.
#[derive(Default)]
struct Buffers {
    input: Vec<u8>,
    text: Vec<u8>,
}

impl Buffers {
    /// Drops a buffer that grew for one unusual file (a huge record, a huge `.json`), so that
    /// it is not held for the rest of the run.
    fn release_large(&mut self) {
        if self.text.capacity() > 2 * WINDOW {
            self.text = Vec::new();
        }
        if self.input.capacity() > 16 * WINDOW {
            self.input = Vec::new();
        }
    }
}

thread_local! {
    static BUFFERS: std::cell::RefCell<Buffers> = std::cell::RefCell::default();
}

fn scan_file_with(
    file: &TrailFile,
    mut reader: impl BufRead,
    options: &ScanOptions,
    buffers: &mut Buffers,
) -> FileResult {
    let mut result = FileResult {
        path: file.path.clone(),
        bytes: file.bytes,
        ..FileResult::default()
    };
    let gz = file.path.extension().is_some_and(|e| e == "gz");
    buffers.input.clear();
    let read = reader
        .read_to_end(&mut buffers.input)
        .map_err(|e| format!("cannot read: {e}"));
    let mut records = RecordReader {
        file,
        options,
        needle: memchr::memmem::Finder::new(CONNECT_EVENT_SOURCE),
        result: &mut result,
    };
    let mut splitter = RecordSplitter::default();
    let outcome = read.and_then(|_| {
        if gz {
            split_gzip(
                &buffers.input,
                &mut buffers.text,
                &mut splitter,
                &mut records,
            )
        } else {
            let mut record = |index, raw, escapes| records.record(index, raw, escapes);
            splitter.feed(&buffers.input, true, &mut record).map(drop)
        }
    });
    if let Err(reason) = outcome {
        // Nothing of a bad file is used: not the records before the problem either.
        result.records.clear();
        result.early.clear();
        result.learned.clear();
        result.records_seen = 0;
        result.bad = vec![BadInput {
            path: file.path.clone(),
            record: None,
            event_id: None,
            reason: clipped(reason),
        }];
        return result;
    }
    result.ok = true;
    result.records.sort_by(|a, b| {
        (a.event_time, &a.event_id, a.target_index).cmp(&(
            b.event_time,
            &b.event_id,
            b.target_index,
        ))
    });
    result
}

/// Inflates a `.json.gz` file window by window into `text`, splitting each window into records.
fn split_gzip(
    input: &[u8],
    text: &mut Vec<u8>,
    splitter: &mut RecordSplitter,
    records: &mut RecordReader<'_, '_>,
) -> Result<(), String> {
    if input.is_empty() {
        return Err("empty file (expected gzip)".into());
    }
    if !input.starts_with(&[0x1f, 0x8b]) {
        return Err("not gzip (no gzip magic bytes)".into());
    }
    let mut inflater = Gunzip::new(input, MAX_TRAIL_JSON);
    text.clear();
    text.reserve(inflater.first_window());
    loop {
        let eof = inflater.fill(text)?;
        let mut record = |index, raw, escapes| records.record(index, raw, escapes);
        let consumed = splitter.feed(text, eof, &mut record)?;
        if eof {
            return Ok(());
        }
        splitter.consumed(&text[..consumed]);
        text.drain(..consumed);
        if text.len() == text.capacity() {
            // One record larger than the window: the window grows to hold it.
            text.reserve(text.capacity());
        }
    }
}

/// What the records of one file become: audited records, learned names and bad records.
struct RecordReader<'f, 'r> {
    file: &'f TrailFile,
    options: &'f ScanOptions,
    needle: memchr::memmem::Finder<'static>,
    result: &'r mut FileResult,
}

impl RecordReader<'_, '_> {
    /// One record; `escapes` is false when the splitter saw no backslash in it.
    fn record(&mut self, index: usize, raw: &[u8], escapes: bool) {
        self.result.records_seen += 1;
        let path = &self.file.path;
        let bad_record = |event_id: Option<&str>, reason: String| BadInput {
            path: path.clone(),
            record: Some(index),
            event_id: event_id.map(|id| clipped(id.to_owned())),
            reason: clipped(reason),
        };
        if !raw.starts_with(b"{") {
            self.result
                .bad
                .push(bad_record(None, "not a JSON object".into()));
            return;
        }
        // Only a Connect event matters, and its `eventSource` is `connect.amazonaws.com`: in
        // the raw bytes, or spelt with `\u` escapes (CloudTrail never writes them so, a forged
        // record could; JSON has no other way to write those characters).
        if self.needle.find(raw).is_none()
            && !(escapes && memchr::memmem::find(raw, b"\\u").is_some())
        {
            return;
        }
        // The splitter has checked every record's UTF-8 (or seen it is ASCII).
        let Ok(raw) = std::str::from_utf8(raw) else {
            self.result
                .bad
                .push(bad_record(None, "invalid UTF-8".into()));
            return;
        };
        let rec = match parse_record(raw) {
            Ok(Parsed::Connect(rec)) => rec,
            Ok(Parsed::Other) => return,
            Err(e) => {
                let id = raw_event_id(raw);
                self.result
                    .bad
                    .push(bad_record(id.as_deref(), e.to_string()));
                return;
            }
        };
        self.result.learned.extend(rec.learned_name());
        let Some(name) = rec.event_name.as_deref() else {
            self.result.bad.push(bad_record(
                rec.event_id.as_deref(),
                "missing `eventName`".into(),
            ));
            return;
        };
        let options = self.options;
        let Some(group) = group_of(name).filter(|_| options.events.contains(name)) else {
            return;
        };
        match rec.to_audit_records(group, &options.redaction) {
            Ok(records) => {
                for record in records {
                    if !options.scope.admits(&record) {
                        continue;
                    }
                    if options.window.contains(record.event_time) {
                        self.result.records.push(record);
                    } else if record.event_time < options.window.since {
                        self.result
                            .early
                            .push((record.row_key().into_owned(), record.event_time));
                    }
                }
            }
            Err(e) => self
                .result
                .bad
                .push(bad_record(rec.event_id.as_deref(), e.to_string())),
        }
    }
}

/// The most JSON one trail file may inflate to. CloudTrail's files are far smaller (tens of
/// MB); a file past this is a gzip bomb or not CloudTrail, and is reported, not read on.
const MAX_TRAIL_JSON: usize = 4 << 30;

/// Inflates every gzip member of a compressed file held whole, into windows the caller
/// provides, checking each member's CRC-32 and length. Inflating from the whole input into
/// large output buffers is several times faster than a streaming decoder's small reads.
struct Gunzip<'a> {
    input: &'a [u8],
    /// Where the next member's header starts, when no member is open.
    next: usize,
    member: Option<Member>,
    /// Bytes inflated so far, all members.
    produced: usize,
    limit: usize,
}

/// The gzip member being inflated.
struct Member {
    /// Where its deflate data starts in the input.
    data: usize,
    inflate: flate2::Decompress,
    crc: crc32fast::Hasher,
    len: usize,
}

impl<'a> Gunzip<'a> {
    /// An inflater refusing to produce more than `limit` bytes.
    fn new(input: &'a [u8], limit: usize) -> Self {
        Self {
            input,
            next: 0,
            member: None,
            produced: 0,
            limit,
        }
    }

    /// The size of the first window: the last member's ISIZE (the whole text, for the usual
    /// single member) up to [`WINDOW`], and only as far as a plausible ratio goes, so that a
    /// forged trailer gets no large buffer.
    fn first_window(&self) -> usize {
        let input = self.input;
        let declared = input.len().checked_sub(4).map_or(0, |at| {
            u32::from_le_bytes([input[at], input[at + 1], input[at + 2], input[at + 3]])
        });
        usize::try_from(declared)
            .unwrap_or(WINDOW)
            .saturating_add(1)
            .min(input.len().saturating_mul(64))
            .clamp(64 << 10, WINDOW)
    }

    /// Appends inflated text to `out`, up to its capacity. `Ok(true)` once every member has
    /// been inflated and checked.
    fn fill(&mut self, out: &mut Vec<u8>) -> Result<bool, String> {
        let truncated = || "truncated gzip (unexpected end of data)".to_owned();
        loop {
            if out.len() == out.capacity() {
                return Ok(false);
            }
            let member = match &mut self.member {
                Some(member) => member,
                None if self.next >= self.input.len() => return Ok(true),
                None => {
                    let at = self.next;
                    let header = gzip_header_len(&self.input[at..]).ok_or_else(|| {
                        if at == 0 {
                            "corrupt gzip: bad header".to_owned()
                        } else {
                            format!("corrupt gzip: data after member ending at byte {at}")
                        }
                    })?;
                    self.member.insert(Member {
                        data: at + header,
                        inflate: flate2::Decompress::new(false),
                        crc: crc32fast::Hasher::new(),
                        len: 0,
                    })
                }
            };
            let consumed = usize::try_from(member.inflate.total_in()).unwrap_or(usize::MAX);
            let rest = self.input.get(member.data + consumed..).unwrap_or_default();
            let before = out.len();
            let status = member
                .inflate
                .decompress_vec(rest, out, flate2::FlushDecompress::Finish)
                .map_err(|e| format!("corrupt gzip: {e}"))?;
            member.crc.update(&out[before..]);
            member.len += out.len() - before;
            self.produced += out.len() - before;
            if self.produced > self.limit {
                return Err(format!(
                    "inflates to more than {} bytes: not a CloudTrail file (gzip bomb?)",
                    self.limit
                ));
            }
            match status {
                flate2::Status::StreamEnd => {}
                // Out of room: the caller makes room and calls again.
                _ if out.len() == out.capacity() => return Ok(false),
                // Room left but no more input: the file was cut short.
                _ => return Err(truncated()),
            }
            let end =
                member.data + usize::try_from(member.inflate.total_in()).unwrap_or(usize::MAX);
            let trailer = self.input.get(end..end + 8).ok_or_else(truncated)?;
            let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
            let len = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
            // ISIZE is the length modulo 2^32.
            #[allow(clippy::cast_possible_truncation)]
            let member_len = member.len as u32;
            if member_len != len || member.crc.clone().finalize() != crc {
                return Err("corrupt gzip: checksum or length does not match the data".into());
            }
            self.member = None;
            self.next = end + 8;
        }
    }
}

/// The length of the gzip member header at the start of `input` (RFC 1952), `None` when it is
/// not one.
fn gzip_header_len(input: &[u8]) -> Option<usize> {
    const FHCRC: u8 = 2;
    const FEXTRA: u8 = 4;
    const FNAME: u8 = 8;
    const FCOMMENT: u8 = 16;
    if input.len() < 10 || input[0] != 0x1f || input[1] != 0x8b || input[2] != 8 {
        return None;
    }
    let flags = input[3];
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let n = usize::from(u16::from_le_bytes([*input.get(at)?, *input.get(at + 1)?]));
        at += 2 + n;
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            at += memchr::memchr(0, input.get(at..)?)? + 1;
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    (at <= input.len()).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_hands_out_each_file_once_largest_of_the_lookahead_first() {
        let sizes: Vec<u64> = (0..100u64)
            .map(|i| (i * 37) % 11 + u64::from(i == 90) * 1000)
            .collect();
        let files: Vec<TrailFile> = sizes
            .iter()
            .map(|&bytes| TrailFile {
                path: PathBuf::new(),
                key: None,
                bytes,
            })
            .collect();
        let schedule = Schedule::new(&files);
        let order: Vec<usize> = std::iter::from_fn(|| schedule.next()).collect();
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        let first_left = |n: usize| (0..100).find(|j| !order[..n].contains(j)).unwrap();
        // No file starts more than the lookahead ahead of the first one not started.
        for (n, &i) in order.iter().enumerate() {
            assert!(i < first_left(n) + LOOKAHEAD, "{order:?}");
        }
        // The first pick is the largest of files 0..32; file 90, the largest of all, is
        // picked as soon as it comes within the lookahead.
        let first = (0..LOOKAHEAD).max_by_key(|&i| (sizes[i], std::cmp::Reverse(i)));
        assert_eq!(Some(order[0]), first);
        let at = order.iter().position(|&i| i == 90).unwrap();
        assert!(first_left(at - 1) + LOOKAHEAD <= 90, "{order:?}");
    }

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
    fn only_cloudtrail_log_file_names_are_log_files() {
        for name in [
            "111122223333_CloudTrail_us-east-1_20240502T1005Z_Mu0KsOhtH1ar15ZZ.json.gz",
            // An organization trail's file (under AWSLogs/o-…/<account>/): the same name.
            "444455556666_CloudTrail_eu-west-2_20240505T0900Z_a1B2c3D4e5F6g7H8.json.gz",
            "111122223333_CloudTrail_us-gov-west-1_20241231T2359Z_x.json.gz",
            "111122223333_CloudTrail_ap-northeast-1_20240229T0000Z_leap.json.gz",
            // A `.json` copy, unzipped.
            "111122223333_CloudTrail_us-east-1_20240502T1005Z_Mu0KsOhtH1ar15ZZ.json",
            // Suffixes are CloudTrail's to choose; copies may add to them.
            "111122223333_CloudTrail_us-east-1_20240502T1005Z_not-gzip.json.gz",
            "111122223333_CloudTrail_us-east-1_20240502T1005Z_a_b.json.gz",
        ] {
            assert!(is_log_file_name(name), "{name}");
        }
        for name in [
            "manifest.json",
            "users.csv",
            "README.md",
            "a.json",
            "66666666-7777-8888-9999-000000000000.json",
            "111122223333_CloudTrail_us-east-1_20240502T1005Z_x.csv",
            "111122223333_CloudTrail_us-east-1_20240502T1005Z_x.json.gz.tmp",
            "111122223333_CloudTrail_us-east-1_20240502T1005Z_x.JSON.GZ",
            // Digest and insight files are CloudTrail's, but not log files.
            "111122223333_CloudTrail-Digest_us-east-1_trail_us-east-1_20240502T100000Z.json.gz",
            "111122223333_CloudTrail-Insight_us-east-1_20240502T1005Z_x.json.gz",
            // Not a 12-digit account.
            "a_CloudTrail_us-east-1_20240502T1005Z_x.json.gz",
            "11112222333_CloudTrail_us-east-1_20240502T1005Z_x.json.gz",
            "1111222233334_CloudTrail_us-east-1_20240502T1005Z_x.json.gz",
            // Bad regions.
            "111122223333_CloudTrail__20240502T1005Z_x.json.gz",
            "111122223333_CloudTrail_US-EAST-1_20240502T1005Z_x.json.gz",
            // Bad timestamps: short, with seconds, separators, not a real day or minute.
            "111122223333_CloudTrail_us-east-1_20240502T105Z_x.json.gz",
            "111122223333_CloudTrail_us-east-1_20240502T100500Z_x.json.gz",
            "111122223333_CloudTrail_us-east-1_2024-05-02T1005Z_x.json.gz",
            "111122223333_CloudTrail_us-east-1_20240502 1005Z_x.json.gz",
            "111122223333_CloudTrail_us-east-1_20240502T1005_x.json.gz",
            "111122223333_CloudTrail_us-east-1_20241302T1005Z_x.json.gz",
            "111122223333_CloudTrail_us-east-1_20230229T1005Z_x.json.gz",
            "111122223333_CloudTrail_us-east-1_20240502T2400Z_x.json.gz",
            "111122223333_CloudTrail_us-east-1_20240502T1060Z_x.json.gz",
            "111122223333_CloudTrail_us-east-1_2024050+T1005Z_x.json.gz",
            // No suffix, or nothing after the region.
            "111122223333_CloudTrail_us-east-1_20240502T1005Z_.json.gz",
            "111122223333_CloudTrail_us-east-1_20240502T1005Z.json.gz",
            "111122223333_CloudTrail_us-east-1.json.gz",
            ".json.gz",
            "",
        ] {
            assert!(!is_log_file_name(name), "{name}");
        }
    }

    #[test]
    fn held_rows_spill_and_come_back_in_order() {
        let record = |i: usize| AuditRecord {
            event_time: jiff::Timestamp::UNIX_EPOCH,
            event_id: format!("e{i}"),
            target_index: 0,
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

    #[test]
    fn gzip_problems_are_named() {
        let problem = |name: &str, bytes: &[u8]| {
            let scan = scan_trail_bytes(Path::new(name), bytes, &any_time());
            assert!(!scan.readable, "{name}");
            scan.bad[0].reason.clone()
        };
        let not_gz = problem("a.json.gz", b"{\"Records\":[]}");
        assert!(not_gz.contains("not gzip"), "{not_gz}");
        assert!(problem("a.json.gz", b"").contains("empty file"));
        let bytes = gz(&[b'x'; 10_000], None);
        let truncated = problem("a.json.gz", &bytes[..bytes.len() / 2]);
        assert!(truncated.contains("truncated"), "{truncated}");
        assert_eq!(inflate(&bytes, usize::MAX).unwrap().len(), 10_000);
        let plain = scan_trail_bytes(Path::new("a.json"), b"{\"Records\":[{}]}", &any_time());
        assert!(plain.readable && plain.bad.is_empty());
        assert_eq!(plain.records_seen, 1);
    }

    fn any_time() -> ScanOptions {
        let window = Window::parse(
            Some("2000-01-01"),
            Some("2100-01-01"),
            jiff::Timestamp::now(),
        );
        ScanOptions::new(window.unwrap(), EventSelection::defaults())
    }

    /// Inflates all of `input` as the scanner does, in small windows.
    fn inflate(input: &[u8], limit: usize) -> Result<Vec<u8>, String> {
        let mut inflater = Gunzip::new(input, limit);
        let mut text = Vec::new();
        let mut window = Vec::with_capacity(4096);
        loop {
            let eof = inflater.fill(&mut window)?;
            text.extend_from_slice(&window);
            window.clear();
            if eof {
                return Ok(text);
            }
        }
    }

    fn gz(data: &[u8], name: Option<&str>) -> Vec<u8> {
        let mut builder = flate2::GzBuilder::new();
        if let Some(name) = name {
            builder = builder.filename(name).comment("c").extra(vec![1, 2, 3]);
        }
        let mut enc = builder.write(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut enc, data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn gunzip_reads_every_member_and_checks_each() {
        // Header fields, several members, a member larger than its neighbour's ISIZE.
        let big: Vec<u8> = (0..300_000_u32)
            .map(|i| u8::try_from(i % 251).unwrap())
            .collect();
        let mut both = gz(&big, Some("a.json"));
        both.extend(gz(b"tail", None));
        let text = inflate(&both, usize::MAX).unwrap();
        assert_eq!(text.len(), big.len() + 4);
        assert!(text.starts_with(&big) && text.ends_with(b"tail"));

        let mut bad_crc = gz(b"{\"Records\":[]}", None);
        let n = bad_crc.len();
        bad_crc[n - 8] ^= 1;
        let err = inflate(&bad_crc, usize::MAX).unwrap_err();
        assert!(err.contains("checksum"), "{err}");

        let mut garbage_after = gz(b"{}", None);
        garbage_after.extend_from_slice(b"garbage!!!!");
        let err = inflate(&garbage_after, usize::MAX).unwrap_err();
        assert!(err.contains("data after member"), "{err}");

        // Past the limit, inflation stops and the file is reported.
        let zeros = gz(&vec![0; 8 << 20], None);
        assert!(zeros.len() < 64 << 10, "a high ratio");
        let err = inflate(&zeros, 1 << 20).unwrap_err();
        assert!(err.contains("gzip bomb"), "{err}");
        assert_eq!(inflate(&zeros, 8 << 20).unwrap().len(), 8 << 20);

        // A forged ISIZE neither breaks the read nor is believed.
        let mut forged = gz(b"{}", None);
        let n = forged.len();
        forged[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = inflate(&forged, usize::MAX).unwrap_err();
        assert!(err.contains("length"), "{err}");
    }

    #[test]
    fn s3_walk_starts_where_the_root_sits_in_the_layout() {
        let step = |p: &str| format!("{:?}", start_step(p));
        assert_eq!(step(""), "None");
        assert_eq!(step("trails/prod"), "None");
        assert_eq!(step("AWSLogs"), r#"Some(Accounts(""))"#);
        assert_eq!(step("x/AWSLogs"), r#"Some(Accounts(""))"#);
        assert_eq!(step("AWSLogs/111122223333"), r#"Some(Account(""))"#);
        assert_eq!(step("AWSLogs/o-abc"), r#"Some(Organization(""))"#);
        assert_eq!(step("AWSLogs/o-abc/111122223333"), r#"Some(Account(""))"#);
        assert_eq!(
            step("AWSLogs/111122223333/CloudTrail"),
            r#"Some(Regions(""))"#
        );
        assert_eq!(step("AWSLogs/o-abc/1/CloudTrail"), r#"Some(Regions(""))"#);
        assert_eq!(
            step("AWSLogs/1/CloudTrail/us-east-1"),
            r#"Some(Region(""))"#
        );
        assert_eq!(
            step("AWSLogs/o-a/1/CloudTrail/eu-west-1"),
            r#"Some(Region(""))"#
        );
        assert_eq!(
            step("AWSLogs/1/CloudTrail/us-east-1/2024"),
            r#"Some(Objects(""))"#
        );
    }

    #[test]
    fn date_prefixes_cover_the_window_and_its_slack() {
        let window = |since: &str, until: &str| {
            Window::parse(
                Some(since),
                Some(until),
                "2030-01-01T00:00:00Z".parse().unwrap(),
            )
            .unwrap()
        };
        let today = Date::new(2025, 1, 1).unwrap();
        let days = date_prefixes(window("2024-05-01", "2024-05-08"), today);
        assert_eq!(days.first().unwrap(), "2024/04/30/");
        assert_eq!(days.last().unwrap(), "2024/05/09/");
        assert_eq!(days.len(), 10);
        let year_end = date_prefixes(
            window("2023-12-31T10:00:00Z", "2024-01-01T10:00:00Z"),
            today,
        );
        assert_eq!(
            year_end,
            ["2023/12/30/", "2023/12/31/", "2024/01/01/", "2024/01/02/"]
        );
        let months = date_prefixes(window("2023-01-15", "2024-03-01"), today);
        assert_eq!(months.first().unwrap(), "2023/01/");
        assert_eq!(months.last().unwrap(), "2024/03/");
        assert_eq!(months.len(), 15);
        let clamped = date_prefixes(window("2001-01-01", "2024-12-30"), today);
        assert_eq!(clamped.first().unwrap(), "2013/11/");
        assert_eq!(clamped.last().unwrap(), "2024/12/");
        assert!(date_prefixes(window("2026-01-01", "2026-02-01"), today).is_empty());
    }
}
