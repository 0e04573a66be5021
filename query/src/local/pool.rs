//! The worker pool: trail files read on `threads` threads at once.
//!
//! Takes the files to read and where their bytes come from (a [`Feed`]: local files opened by
//! the workers in the order a [`Schedule`] gives, or objects as the fetch hands them over).
//! Gives each file's [`FileResult`], with its index, to the consumer on the calling thread, in
//! the order the files finish. Guarantees that every file is read once, that a local file
//! starts at most [`LOOKAHEAD`] files past the first one not yet started (so the merge holds at
//! most that many results back), that the workers stop taking files once the consumer fails,
//! and that a worker's panic is an error, not a hang. Must never reorder, name, count or emit
//! records: that is the merge's.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};

use super::ScanOptions;
use super::discover::TrailFile;
use super::fetch::{Fetched, scan_fetched_object};
use super::file::{FileResult, scan_local_file};
use crate::error::Error;

/// Where workers take their next file from.
pub(super) enum Feed<'a> {
    /// Workers open files themselves, in the order the schedule gives.
    Disk(&'a Schedule),
    /// The runtime fetches objects; workers take them as they arrive.
    Fetched(&'a Mutex<tokio::sync::mpsc::Receiver<Fetched>>),
}

/// How many files past the first one not yet started a worker may start: the largest of them
/// goes first, so that a large file near the end of the trail does not leave one thread
/// inflating alone while the others wait; the merge holds at most this many results back.
pub(super) const LOOKAHEAD: usize = 32;

/// Hands out local files to workers: path order, but the largest of the next [`LOOKAHEAD`]
/// first.
pub(super) struct Schedule {
    sizes: Vec<u64>,
    /// The first file not handed out, and which files have been.
    taken: Mutex<(usize, Vec<bool>)>,
}

impl Schedule {
    pub(super) fn new(files: &[TrailFile]) -> Self {
        Self {
            sizes: files.iter().map(|f| f.bytes).collect(),
            taken: Mutex::new((0, vec![false; files.len()])),
        }
    }

    pub(super) fn next(&self) -> Option<usize> {
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

/// Reads `files` on worker threads (`options.threads`, at least 1, at most one a file) and
/// hands what each gave, with its index, to `consume` on this thread; `root` names the trail
/// when a worker panics. When `consume` fails, the workers stop taking files.
pub(super) fn read_files(
    files: &[TrailFile],
    feed: &Feed<'_>,
    options: &ScanOptions,
    root: &str,
    consume: impl FnOnce(&mpsc::Receiver<(usize, FileResult)>) -> Result<(), Error>,
) -> Result<(), Error> {
    let threads = options.threads.clamp(1, files.len().max(1));
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::sync_channel::<(usize, FileResult)>(threads * 4);
    std::thread::scope(|scope| {
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
        let merged = consume(&rx);
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
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

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
                tag: None,
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
}
