//! One trail file, read: its bytes inflated window by window, split into records, and the
//! audited ones built.
//!
//! Takes a file's bytes (streamed from disk, or an object the fetch gave) and the scan options.
//! Gives a [`FileResult`]: its audited records in the window in output order (event time, event
//! id, target), its audited rows before the window, the names its events teach, and what was
//! bad. Guarantees that bad input never panics, and that nothing of a file bad as a whole is
//! used (not the records before the problem either), only the reason. Memory holds the
//! compressed file and one window of its text, in buffers each thread reuses from file to file.
//! Must never see other files, the [`Directory`](connect_audit_core::Directory) or the sink:
//! putting files in order, naming and removing duplicates are the merge's.

use std::fs;
use std::io::{self, BufRead};
use std::path::{Path, PathBuf};

use connect_audit_core::AuditRecord;
use connect_audit_core::catalogue::{CONNECT_EVENT_SOURCE, group_of};
use connect_audit_core::cloudtrail::{LearnedName, Parsed, parse_record, raw_event_id};
use jiff::Timestamp;

use super::ScanOptions;
use super::discover::TrailFile;
use super::inflate::{Gunzip, MAX_TRAIL_JSON, WHOLE_MAX, WINDOW, grow, inflate_whole_after};
use super::split::RecordSplitter;
use super::structural::Isa;
use crate::sink::{BadInput, clipped};

/// What a worker found in one file.
#[derive(Debug, Default)]
pub(super) struct FileResult {
    pub(super) path: PathBuf,
    pub(super) bytes: u64,
    pub(super) ok: bool,
    pub(super) records_seen: u64,
    pub(super) records: Vec<AuditRecord>,
    /// Audited rows before the window: row key and time.
    pub(super) early: Vec<(String, Timestamp)>,
    pub(super) learned: Vec<LearnedName>,
    pub(super) bad: Vec<BadInput>,
    /// S3 failed to give the object (after the SDK's retries): the scan stops here rather than
    /// skip the file, so no report, output or state advance ever leaves its events out.
    pub(super) fatal: Option<connect_audit_core::Error>,
    /// With [`ScanOptions::hash_files`]: the key and the hex SHA-256 of the file's inflated
    /// content, computed as it was inflated (or why it could not be read).
    pub(super) sha256: Option<(String, Result<String, String>)>,
}

/// What one trail file yields, read as [`TrailScanner`](super::TrailScanner) reads each file (for tools and fuzzing
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
        tag: None,
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
pub(super) fn scan_local_file(file: &TrailFile, options: &ScanOptions) -> FileResult {
    match fs::File::open(&file.path) {
        Ok(f) => scan_file(file, io::BufReader::new(f), options),
        Err(e) => bad_file_result(file, format!("cannot read: {e}")),
    }
}

pub(super) fn bad_file_result(file: &TrailFile, reason: String) -> FileResult {
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
pub(super) fn scan_file(
    file: &TrailFile,
    reader: impl BufRead,
    options: &ScanOptions,
) -> FileResult {
    let mut buffers = BUFFERS.with_borrow_mut(std::mem::take);
    let result = scan_file_with(file, reader, options, &mut buffers);
    buffers.release_large();
    BUFFERS.with_borrow_mut(|b| *b = buffers);
    result
}

/// The buffers a scanning thread reuses from file to file (no new pages to fault in for each).
#[derive(Default)]
struct Buffers {
    /// A file's compressed bytes at its start and, for a file inflated whole, its text right
    /// after them. Its length is the most any file has needed, every byte of it initialised
    /// once, when it grew: reading and inflating write over it, nothing zeroes it again. One
    /// buffer for both, so that a thread holds a large file's bytes or a small file's bytes
    /// and text in the same pages, never the one beside the other.
    file: Vec<u8>,
    /// The window of a text inflated window by window.
    text: Vec<u8>,
    libdeflate: Option<libdeflater::Decompressor>,
}

impl Buffers {
    /// Drops a buffer that grew for one unusual file (a huge record, a huge file), so that it
    /// is not held for the rest of the run.
    fn release_large(&mut self) {
        if self.text.capacity() > 2 * WINDOW {
            self.text = Vec::new();
        }
        if self.file.len() > 2 * WHOLE_MAX {
            self.file = Vec::new();
        }
    }

    /// Reads all of `reader` into the start of [`Buffers::file`]; how many bytes.
    /// `expected` (the size the listing gave) sizes the buffer before the first read, up to
    /// 64 MiB: a size that lies gets no larger buffer than the bytes that come.
    fn read(&mut self, reader: &mut impl io::Read, expected: u64) -> io::Result<usize> {
        // A byte more than expected: the end is seen without growing.
        let expected = usize::try_from(expected).map_or(usize::MAX, |n| n.saturating_add(1));
        grow(&mut self.file, expected.min(64 << 20));
        let mut n = 0;
        loop {
            if n == self.file.len() {
                grow(&mut self.file, n + n / 2 + (64 << 10));
            }
            match reader.read(&mut self.file[n..]) {
                Ok(0) => return Ok(n),
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
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
    let read = buffers
        .read(&mut reader, file.bytes)
        .map_err(|e| format!("cannot read: {e}"));
    let read_whole = read.is_ok();
    let len = read.as_ref().map_or(0, |n| *n);
    let mut records = RecordReader {
        file,
        options,
        needle: memchr::memmem::Finder::new(CONNECT_EVENT_SOURCE),
        result: &mut result,
    };
    let mut splitter = RecordSplitter::new(Isa::chosen(options.simd));
    let mut hash = options
        .hash_files
        .then(connect_audit_core::integrity::Sha256::default);
    let outcome = read.and_then(|_| {
        if gz {
            split_gzip(buffers, len, &mut splitter, &mut records, hash.as_mut())
        } else {
            let input = &buffers.file[..len];
            if let Some(h) = hash.as_mut() {
                h.update(input);
            }
            let mut record = |index, raw, escapes| records.record(index, raw, escapes);
            splitter.feed(input, true, &mut record).map(drop)
        }
    });
    if let Some(h) = hash {
        let key = file
            .key
            .clone()
            .unwrap_or_else(|| file.path.display().to_string());
        let sha256 = match &outcome {
            Ok(()) => Ok(h.finish()),
            // A file the parser refuses may still be exactly what CloudTrail delivered: its
            // hash is of all its bytes (a second pass, for such a file only).
            Err(_) if read_whole && gz => super::inflate::gunzip(&buffers.file[..len])
                .map(|text| connect_audit_core::integrity::sha256_hex(&text)),
            Err(_) if read_whole => Ok(connect_audit_core::integrity::sha256_hex(
                &buffers.file[..len],
            )),
            Err(why) => Err(why.clone()),
        };
        result.sha256 = Some((key, sha256));
    }
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

/// Inflates the `.json.gz` file in the first `len` bytes of `buffers.file` and splits its text
/// into records: whole, with libdeflate, into the buffer after the file's bytes, when it is one
/// member of at most [`WHOLE_MAX`] bytes of text; otherwise window by window with zlib-rs.
fn split_gzip(
    buffers: &mut Buffers,
    len: usize,
    splitter: &mut RecordSplitter,
    records: &mut RecordReader<'_, '_>,
    mut hash: Option<&mut connect_audit_core::integrity::Sha256>,
) -> Result<(), String> {
    let Buffers {
        file,
        text,
        libdeflate,
    } = buffers;
    if len == 0 {
        return Err("empty file (expected gzip)".into());
    }
    if !file[..len].starts_with(&[0x1f, 0x8b]) {
        return Err("not gzip (no gzip magic bytes)".into());
    }
    let libdeflate = libdeflate.get_or_insert_with(libdeflater::Decompressor::new);
    if let Some(size) = inflate_whole_after(libdeflate, file, len) {
        let whole: &[u8] = &file[len..len + size];
        if let Some(h) = hash.as_deref_mut() {
            h.update(whole);
        }
        let mut record = |index, raw, escapes| records.record(index, raw, escapes);
        return splitter.feed(whole, true, &mut record).map(drop);
    }
    let input: &[u8] = &file[..len];
    let mut inflater = Gunzip::new(input, MAX_TRAIL_JSON);
    text.clear();
    text.reserve(inflater.first_window());
    loop {
        let before = text.len();
        let eof = inflater.fill(text)?;
        if let Some(h) = hash.as_deref_mut() {
            // The inflated bytes, as they come: no second pass over the file.
            h.update(&text[before..]);
        }
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

#[cfg(test)]
mod tests {
    use connect_audit_core::{EventSelection, Window};

    use super::super::inflate::tests::{gz, inflate};
    use super::*;

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

    #[test]
    fn a_file_of_several_members_is_read_to_its_end() {
        let record = |i: usize| format!("{{\"eventID\":\"{i:08}\",\"eventName\":\"X\"}}");
        let records: Vec<String> = (0..2000).map(record).collect();
        let text = format!("{{\"Records\":[{}]}}", records.join(","));
        let one = gz(text.as_bytes(), None);
        let scan = scan_trail_bytes(Path::new("a.json.gz"), &one, &any_time());
        assert!(scan.readable && scan.bad.is_empty(), "{:?}", scan.bad);
        assert_eq!(scan.records_seen, 2000);
        // The text in two members: every record, from both.
        let (a, b) = text.split_at(text.len() / 3);
        let mut two = gz(a.as_bytes(), None);
        two.extend(gz(b.as_bytes(), None));
        let scan = scan_trail_bytes(Path::new("a.json.gz"), &two, &any_time());
        assert!(scan.readable && scan.bad.is_empty(), "{:?}", scan.bad);
        assert_eq!(scan.records_seen, 2000);
        // The same member twice is two Records objects, not one file's worth of records.
        let mut twice = one.clone();
        twice.extend_from_slice(&one);
        let scan = scan_trail_bytes(Path::new("a.json.gz"), &twice, &any_time());
        assert!(!scan.readable, "{scan:?}");
        assert_eq!(scan.records_seen, 0);
    }

    fn any_time() -> ScanOptions {
        let window = Window::parse(
            Some("2000-01-01"),
            Some("2100-01-01"),
            jiff::Timestamp::now(),
        );
        ScanOptions::new(window.unwrap(), EventSelection::defaults())
    }
}
