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
//! Both are found through the trail's [`Store`], by one path (`discover`). A local trail is
//! walked whole and each file streamed from disk. An S3 trail is never listed whole: accounts and regions are found with delimiter listings, then only the date prefixes
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
//! the end, named if the trail named them. Memory holds, per worker, one compressed file and
//! either its whole text (a file of at most [`WHOLE_MAX`] bytes of text, inflated by
//! libdeflate) or a window of it (a larger file, inflated by zlib-rs), and the audited rows of
//! files not yet in order, never the whole trail. Local files
//! are started largest of the next few first (see [`LOOKAHEAD`](pool::LOOKAHEAD)).
//!
//! The stages, one module each, in the order a file goes through them: `discover` (the trail
//! files of the window, local or S3), `fetch` (S3 objects within the byte budget), `pool` (the
//! worker threads), `file` (one file: `inflate`, the gzip inflaters with their checks, then
//! `split`, the record splitter over the `structural` pass, then the audited records), `merge`
//! (results back in path order) and `dedupe` (each event once, and the rows waiting for a
//! name). This module wires them: it takes the trail, the [`Directory`] and the options, and
//! never reads a file itself.

mod dedupe;
mod discover;
mod fetch;
mod file;
mod inflate;
mod merge;
mod pool;
mod split;
pub(crate) mod structural;

use std::fs;
use std::path::PathBuf;
use std::sync::Mutex;

use connect_audit_core::objects::ObjectLedger;
use connect_audit_core::redact::Redaction;
use connect_audit_core::{Directory, EventSelection, ObjectInfo, Scope, Store, Window};
use jiff::Timestamp;
use tokio::runtime::{Handle, RuntimeFlavor};
use tracing::debug;

pub use connect_audit_core::objects::{file_delivery_time, is_log_file_name};
pub use discover::LIST_CONCURRENCY;
pub use fetch::{FETCH_BUDGET, FETCH_CONCURRENCY};
pub use file::{FileScan, scan_trail_bytes};
pub use inflate::{WHOLE_MAX, gunzip, inflate_only};
pub use structural::Simd;

use crate::error::Error;
use crate::sink::{BadInput, ScanSink};
use discover::{Selection, TrailFile};
use pool::{Feed, Schedule};

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
    /// The instruction set the structural pass is asked to use, never one the CPU lacks. The
    /// engine reads no environment: the cli sets this from `CONNECT_AUDIT_SIMD`. Default:
    /// [`Simd::Best`].
    pub simd: Simd,
    /// Compute the SHA-256 of each file's inflated content as it is inflated (for
    /// [`connect_audit_core::integrity`]), into [`ScanSummary::hashes`]. Default: off.
    pub hash_files: bool,
    /// Read only the objects this ledger has not seen, delivered before the window's end,
    /// instead of those whose delivery date the window may hold (incremental runs, `watch
    /// --poll`). Their audited events are still kept only inside the window. Default: none.
    pub new_objects: Option<std::sync::Arc<ObjectLedger>>,
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
            simd: Simd::default(),
            hash_files: false,
            new_objects: None,
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
    /// With [`ScanOptions::new_objects`]: files the ledger had seen, not read again.
    pub files_already_read: u64,
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
    /// With [`ScanOptions::hash_files`]: per file read (its key, from the store's root), the
    /// SHA-256 of its inflated content, or why it could not be read.
    pub hashes: std::collections::BTreeMap<String, connect_audit_core::integrity::LogSeen>,
    /// The objects read whole (not bad files), with their tags as listed: what an incremental
    /// run records in its [`ObjectLedger`].
    pub objects: Vec<ObjectInfo>,
    /// On S3: the region folders (`…/CloudTrail/<region>/`) whose dates were listed; an
    /// incremental run records them as listed (see [`ObjectLedger::listed`]).
    pub folders_listed: Vec<String>,
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

/// Scans a trail and joins it with a [`Directory`].
#[derive(Debug)]
pub struct TrailScanner {
    trail: Store,
    directory: Directory,
    options: ScanOptions,
    runtime: Option<Handle>,
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
    pub fn scan(self, sink: &mut dyn ScanSink) -> Result<ScanSummary, Error> {
        self.scan_selected(None, sink)
    }

    /// Scans the given objects of the trail's store (keys relative to its root), as
    /// [`scan`](Self::scan) does the files it finds: for readers told of new objects (S3 event
    /// notifications). The objects are read in key order.
    pub fn scan_objects(
        self,
        objects: Vec<ObjectInfo>,
        sink: &mut dyn ScanSink,
    ) -> Result<ScanSummary, Error> {
        self.scan_selected(Some(objects), sink)
    }

    /// [`scan`](Self::scan) of the files found, or of `given` objects.
    fn scan_selected(
        mut self,
        given: Option<Vec<ObjectInfo>>,
        sink: &mut dyn ScanSink,
    ) -> Result<ScanSummary, Error> {
        let mut summary = ScanSummary::default();
        let root = self.trail.describe("");
        let window = self.options.window;
        let ledger = self.options.new_objects.clone();
        let selection = match &ledger {
            Some(ledger) => Selection::New {
                ledger,
                until: window.until,
            },
            None => Selection::Window(window),
        };
        let given = given.map(|mut objects| {
            objects.sort_by(|a, b| a.key.cmp(&b.key));
            summary.files_found = objects.len() as u64;
            objects
                .into_iter()
                .map(|o| TrailFile {
                    path: self.trail.describe(&o.key).into(),
                    key: Some(o.key),
                    bytes: o.size,
                    tag: o.tag,
                })
                .collect::<Vec<_>>()
        });
        if let Some(local) = self.trail.local_root() {
            fs::metadata(local).map_err(|source| Error::Trail {
                path: local.to_owned(),
                source,
            })?;
            // The walk runs on the blocking pool of a runtime of its own.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(Error::Runtime)?;
            let files = match given {
                Some(files) => files,
                None => runtime.block_on(discover::find_files(
                    &self.trail,
                    selection,
                    &mut summary,
                    sink,
                ))?,
            };
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
            let files = match given {
                Some(files) => files,
                None => {
                    handle.block_on(discover::find_files(&store, selection, &mut summary, sink))?
                }
            };
            let (fetcher, fetch_rx) =
                fetch::start(&handle, store, &files, self.options.fetch_budget);
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
            simd = crate::simd_level(self.options.simd),
            "Found trail files."
        );
        let options = &self.options;
        let directory = &mut self.directory;
        pool::read_files(files, feed, options, root, |results| {
            merge::merge(results, directory, sink, &mut summary)
        })?;
        let bad: std::collections::BTreeSet<&std::path::Path> = summary
            .bad
            .iter()
            .filter(|b| b.record.is_none())
            .map(|b| b.path.as_path())
            .collect();
        let read: Vec<ObjectInfo> = files
            .iter()
            .filter(|f| !bad.contains(f.path.as_path()))
            .filter_map(|f| {
                Some(ObjectInfo {
                    key: f.key.clone()?,
                    size: f.bytes,
                    tag: f.tag.clone(),
                })
            })
            .collect();
        summary.objects = read;
        Ok(summary)
    }
}
