//! The S3 fetch: the objects the S3 walk found, fetched on the runtime within a byte budget.
//!
//! Takes the trail files of an S3 trail, in path order, and the budget
//! ([`ScanOptions::fetch_budget`](super::ScanOptions::fetch_budget)). Gives each object's
//! bytes, with its index and its share of the budget, over a channel as the GETs finish (the
//! merge puts them back in order). Guarantees that at most [`FETCH_CONCURRENCY`] objects are
//! fetched at once, that the objects fetched and not yet scanned never hold more than the
//! budget between them (one larger object goes alone), and that a large object is not overtaken
//! for ever by small ones. Must never take an object S3 did not give for a bad file: the scan
//! fails naming it, so no output or incremental state ever advances past events it could not
//! read.

use std::sync::Arc;

use connect_audit_core::Store;
use futures_util::StreamExt as _;
use tokio::runtime::Handle;

use super::ScanOptions;
use super::discover::TrailFile;
use super::file::{FileResult, bad_file_result, scan_file};

/// S3 objects fetched at once, at most. S3 answers each GET after tens of milliseconds, and
/// most CloudTrail files are small: with 16, a scan of many small files waited on latency.
pub const FETCH_CONCURRENCY: usize = 64;

/// The default [`ScanOptions::fetch_budget`]: 32 MiB of compressed objects in memory.
pub const FETCH_BUDGET: u32 = 32 << 20;

/// What an S3 fetch gave for the file at an index, with its share of the fetch budget (given
/// back when the object has been scanned).
pub(super) type Fetched = (
    usize,
    Result<Option<Vec<u8>>, connect_audit_core::Error>,
    tokio::sync::OwnedSemaphorePermit,
);

/// Starts fetching the objects of `files` from `store` on `runtime`, in key order, at most
/// `budget` compressed bytes at a time. Abort the task to stop fetching before the end.
pub(super) fn start(
    runtime: &Handle,
    store: Store,
    files: &[TrailFile],
    budget: u32,
) -> (
    tokio::task::JoinHandle<()>,
    tokio::sync::mpsc::Receiver<Fetched>,
) {
    let (fetch_tx, fetch_rx) = tokio::sync::mpsc::channel::<Fetched>(FETCH_CONCURRENCY);
    let budget = budget.max(1);
    let keys: Vec<(usize, String, u32)> = files
        .iter()
        .enumerate()
        .filter_map(|(i, f)| {
            // An object larger than the whole budget takes all of it, and goes alone.
            let share = u32::try_from(f.bytes).unwrap_or(u32::MAX).clamp(1, budget);
            Some((i, f.key.clone()?, share))
        })
        .collect();
    let fetcher = runtime.spawn(async move {
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
    (fetcher, fetch_rx)
}

/// Scans an object the runtime fetched.
pub(super) fn scan_fetched_object(
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
