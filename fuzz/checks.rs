//! The properties every input must keep, shared by the fuzz targets (`fuzz_targets/`) and the
//! test that replays every input that ever broke one (`tests/tests/e2e/fuzz_regressions.rs`,
//! inputs in `tests/fixtures/fuzz/`). A broken property is a panic, which libFuzzer saves.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use connect_audit_config::Settings;
use connect_audit_core::{Directory, EventSelection, Window};
use connect_audit_query::local::{ScanOptions, scan_trail_bytes};
use jiff::Timestamp;

/// A fixed "now", so that a replayed input does what it did when fuzzed.
fn now() -> Timestamp {
    "2024-06-01T00:00:00Z".parse().expect("a valid timestamp")
}

/// One trail file. The first byte picks how the rest is presented: as `.json`, as a
/// `.json.gz` file of exactly these bytes, or gzip-compressed here first (so JSON mutations
/// also pass through the inflate path).
pub fn trail_file(data: &[u8]) {
    const GZ: &str = "AWSLogs/1/CloudTrail/us-east-1/2024/05/02/f.json.gz";
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let (path, bytes, text) = match mode % 3 {
        0 => (&GZ[..GZ.len() - 3], body.to_vec(), Some(body.to_vec())),
        1 => (GZ, body.to_vec(), gunzip(body)),
        _ => (GZ, gzip(body), Some(body.to_vec())),
    };
    let window = Window::parse(Some("2000-01-01"), Some("2100-01-01"), now()).expect("a window");
    let events = EventSelection::parse(&["all"]).expect("`all` is a selection");
    let options = ScanOptions::new(window, events);
    let scan = scan_trail_bytes(Path::new(path), &bytes, &options);

    // The reference: a text serde_json reads as `{"Records": [...]}` (strictly: every token of
    // every record) is one the scanner reads, with as many records.
    if let Some(Ok(Reference {
        records: Some(records),
    })) = text.as_deref().map(serde_json::from_slice::<Reference<'_>>)
    {
        assert!(
            scan.readable,
            "serde_json reads it, the scanner did not: {:?}",
            scan.bad
        );
        assert_eq!(scan.records_seen, records.len() as u64, "records counted");
    }
    if !scan.readable {
        assert!(
            scan.records.is_empty(),
            "an unreadable file yielded records"
        );
        assert_eq!(scan.bad.len(), 1, "an unreadable file is one problem");
    }
    assert!(
        scan.records.len() as u64 <= scan.records_seen,
        "more records out than in"
    );
    for bad in &scan.bad {
        let message = bad.to_string();
        assert!(
            message.contains(path),
            "a problem must name its file: {message}"
        );
        assert!(
            !message.chars().any(char::is_control),
            "a control character reached a message: {message:?}"
        );
        assert!(
            message.len() < 2_000,
            "an unbounded message: {} bytes",
            message.len()
        );
        if let Some(index) = bad.record {
            assert!(
                (index as u64) < scan.records_seen,
                "record index out of range"
            );
        }
    }
    let mut directory = Directory::new();
    for learned in &scan.learned {
        directory.learn(learned.kind, &learned.id, &learned.name);
    }
    let mut previous = None;
    for record in &scan.records {
        assert!(!record.event_id.is_empty(), "a record without an event id");
        assert!(
            window.contains(record.event_time),
            "a record outside the window"
        );
        let key = (record.event_time, record.event_id.clone());
        assert!(
            previous.as_ref().is_none_or(|p| p <= &key),
            "records out of order"
        );
        previous = Some(key);

        let mut named = record.clone();
        directory.resolve(&mut named);
        let line = serde_json::to_string(&named).expect("a record serialises");
        let back: connect_audit_core::AuditRecord =
            serde_json::from_str(&line).expect("a written record reads back");
        assert_eq!(back, named, "a record does not survive JSON");
    }
}

/// The top of a trail file as the scanner read it before it had its own splitter.
#[derive(serde::Deserialize)]
struct Reference<'a> {
    #[serde(rename = "Records", borrow)]
    records: Option<Vec<&'a serde_json::value::RawValue>>,
}

/// Every member inflated, when the bytes are a good gzip file.
fn gunzip(data: &[u8]) -> Option<Vec<u8>> {
    let mut text = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(data), &mut text).ok()?;
    Some(text)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).expect("writing to memory");
    encoder.finish().expect("writing to memory")
}

/// One config file: loaded (as the default profile and as a named one), extracted and
/// validated for every command. Errors are fine; each must render as a message.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = config_path();
    std::fs::write(&path, text).expect("writing the config file");
    for profile in [None, Some("team-blue")] {
        let figment = match connect_audit_config::load_profile(Some(&path), profile) {
            Ok(figment) => figment,
            Err(e) => {
                assert!(!e.to_string().is_empty());
                continue;
            }
        };
        let settings: Settings = match figment.extract() {
            Ok(settings) => settings,
            Err(e) => {
                let _ = connect_audit_config::ConfigError::from(e).to_string();
                continue;
            }
        };
        let messages = [
            settings.validate(&figment, now()).err(),
            settings.validate_snapshot(&figment).err(),
            settings.validate_incremental(&figment).err(),
            settings.validate_athena(&figment, now()).err(),
        ];
        for e in messages.into_iter().flatten() {
            assert!(!e.to_string().is_empty(), "an empty error message");
        }
    }
}

/// One file per process, rewritten for each input.
fn config_path() -> PathBuf {
    std::env::temp_dir().join(format!("connect-audit-fuzz-{}.toml", std::process::id()))
}
