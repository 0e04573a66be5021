//! Hostile input through the real binary: every kind of bad trail file and record (the corpus
//! in `tests/fixtures/bad/`, and what is too big or too odd to commit, made here), formula and
//! control-character injection into the outputs, and secrets that must never be echoed.
//!
//! Each bad input runs beside a good file: the good records must arrive, the bad one must be
//! named on stderr (file, record index, eventID when there is one), the exit status must be the
//! documented one, and nothing may panic.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::helpers::{binary, fixtures};

const ACCOUNT: &str = "111122223333";
const DAY: &str = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/02";
const INSTANCE: &str = "11111111-2222-3333-4444-555555555555";
const USER: &str = "66666666-7777-8888-9999-000000000000";
/// A run of the binary that takes longer than this is a hang.
const RUN_LIMIT: Duration = Duration::from_mins(2);

fn bad_fixture(name: &str) -> PathBuf {
    fixtures().join("bad").join(name)
}

/// A Connect `DeleteUser` by an IAM user: the shape of the records in the corpus.
fn event(id: &str) -> Value {
    json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLE", "userName": "ops",
                         "accountId": ACCOUNT},
        "eventTime": "2024-05-02T10:00:00Z", "eventSource": "connect.amazonaws.com",
        "eventName": "DeleteUser", "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.7",
        "userAgent": "aws-cli/2.15", "requestParameters": {"InstanceId": INSTANCE, "UserId": USER},
        "responseElements": null, "eventID": id, "eventType": "AwsApiCall",
        "recipientAccountId": ACCOUNT
    })
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn records(records: &[Value]) -> Vec<u8> {
    json!({ "Records": records }).to_string().into_bytes()
}

/// What one run of the binary did.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    /// The JSON Lines output, when there is one.
    jsonl: String,
}

impl Run {
    /// The event ids written, in order.
    fn ids(&self) -> Vec<String> {
        self.jsonl
            .lines()
            .map(|line| {
                let row: Value = serde_json::from_str(line).unwrap();
                row["event_id"].as_str().unwrap().to_owned()
            })
            .collect()
    }

    fn id_set(&self) -> BTreeSet<String> {
        self.ids().into_iter().collect()
    }

    /// The warning lines about skipped input.
    fn skipped(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("connect-audit: warning: skipped "))
            .collect()
    }
}

/// Runs the binary in `cwd` with stdout and stderr in files (a chatty run cannot block on a
/// pipe) and a time limit (a hang fails the test instead of the suite).
fn run_in(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let logs = tempfile::tempdir().unwrap();
    let out_path = logs.path().join("stdout");
    let err_path = logs.path().join("stderr");
    let mut command = Command::new(binary());
    command
        .args(args)
        .current_dir(cwd)
        .env_remove("CONNECT_AUDIT_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(File::create(&err_path).unwrap());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > RUN_LIMIT {
            child.kill().ok();
            child.wait().ok();
            panic!("connect-audit {args:?} still running after {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = String::from_utf8_lossy(&fs::read(&out_path).unwrap()).into_owned();
    let stderr = String::from_utf8_lossy(&fs::read(&err_path).unwrap()).into_owned();
    assert!(
        !stderr.contains("panicked"),
        "connect-audit {args:?} panicked:\n{stderr}"
    );
    Run {
        code: status.code(),
        stdout,
        stderr,
        jsonl: String::new(),
    }
}

/// A trail in the standard layout holding one good file (`good-file`), to put bad input beside.
struct Trail {
    dir: tempfile::TempDir,
}

impl Trail {
    fn new() -> Self {
        let trail = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        trail.put("0900Z_good", &gzip(&records(&[event("good-file")])));
        trail
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("trail")
    }

    fn day(&self) -> PathBuf {
        let day = self.root().join(DAY);
        fs::create_dir_all(&day).unwrap();
        day
    }

    /// Writes `bytes` as the trail file `<account>_CloudTrail_us-east-1_20240502T<name>.json.gz`.
    fn put(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.day().join(format!(
            "{ACCOUNT}_CloudTrail_us-east-1_20240502T{name}.json.gz"
        ));
        fs::write(&path, bytes).unwrap();
        path
    }

    /// Puts a corpus file in the trail: a `.json.gz` one byte for byte, a `.json` one gzipped
    /// (what is wrong with it is its JSON, not its compression).
    fn put_fixture(&self, fixture: &str) -> PathBuf {
        let bytes = fs::read(bad_fixture(fixture)).unwrap();
        let (stem, bytes) = match fixture.strip_suffix(".json.gz") {
            Some(stem) => (stem, bytes),
            None => (fixture.strip_suffix(".json").unwrap(), gzip(&bytes)),
        };
        self.put(&format!("1000Z_{stem}"), &bytes)
    }

    /// `report` over the trail into JSON Lines.
    fn report(&self, extra: &[&str]) -> Run {
        let out = self.dir.path().join("out.jsonl");
        fs::remove_file(&out).ok();
        let root = self.root();
        let mut args = vec![
            "report",
            "--trail",
            root.to_str().unwrap(),
            "--since",
            "2024-05-01",
            "--until",
            "2024-05-09",
            "--output",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        let mut run = run_in(self.dir.path(), &args, &[]);
        run.jsonl = fs::read_to_string(&out).unwrap_or_default();
        run
    }
}

fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Puts the corpus file `fixture` beside a good file and reports: the exit status is `code`,
/// each of `messages` follows the file's path on a warning line, and exactly `good` (and
/// `good-file`) are written.
fn check(fixture: &str, code: i32, messages: &[&str], good: &[&str]) -> Run {
    let trail = Trail::new();
    let path = trail.put_fixture(fixture);
    let run = trail.report(&[]);
    assert_eq!(run.code, Some(code), "{fixture}:\n{}", run.stderr);
    for message in messages {
        let wanted = format!("skipped {}{message}", path.display());
        assert!(
            run.skipped().iter().any(|l| l.contains(&wanted)),
            "{fixture}: no `{wanted}` in:\n{}",
            run.stderr
        );
    }
    assert_eq!(
        run.skipped().len(),
        messages.len(),
        "{fixture}: one warning per problem:\n{}",
        run.stderr
    );
    let mut expected = ids(good);
    expected.insert("good-file".into());
    assert_eq!(run.id_set(), expected, "{fixture}:\n{}", run.stderr);
    run
}

// --- Files that cannot be read as a trail file at all -------------------------------------

#[test]
fn not_gzip_is_a_bad_file() {
    check(
        "not-gzip.json.gz",
        3,
        &[": not gzip (no gzip magic bytes)"],
        &[],
    );
}

#[test]
fn truncated_gzip_is_a_bad_file() {
    check(
        "truncated.json.gz",
        3,
        &[": truncated gzip (unexpected end of data)"],
        &[],
    );
}

#[test]
fn gzip_of_garbage_is_not_json() {
    check("gzip-of-garbage.json.gz", 3, &[": not JSON: "], &[]);
}

#[test]
fn empty_file_is_a_bad_file() {
    check("empty.json.gz", 3, &[": empty file (expected gzip)"], &[]);
}

#[test]
fn records_that_is_not_an_array_is_a_bad_file() {
    check(
        "records-not-array.json",
        3,
        &[": `Records` is not an array of records: invalid type: map"],
        &[],
    );
}

/// Invalid UTF-8 makes the file something other than JSON (RFC 8259 §8.1: JSON exchanged
/// between systems is UTF-8); the whole file is skipped, not guessed at.
#[test]
fn invalid_utf8_is_a_bad_file() {
    check(
        "invalid-utf8.json",
        3,
        &[": not JSON: invalid unicode code point at line 1"],
        &[],
    );
}

/// A raw NUL (or any control character) inside a string is not JSON: it must be written
/// `\u0000`. The whole file is skipped.
#[test]
fn nul_bytes_make_a_bad_file() {
    check(
        "nul-bytes.json",
        3,
        &[": not JSON: control character (\\u0000-\\u001F) found while parsing a string"],
        &[],
    );
}

/// A JSON text is exactly one value (RFC 8259 §2) and CloudTrail writes exactly one object per
/// file. Something after it means the file is not what CloudTrail delivered (two files
/// concatenated, an append, a tampering): the whole file is skipped and named, as a truncated
/// JSON text is, rather than trusting the first object and dropping the rest.
#[test]
fn a_value_after_the_top_object_makes_a_bad_file() {
    let run = check(
        "value-after-object.json",
        3,
        &[": not JSON: trailing characters at line 2"],
        &[],
    );
    assert!(!run.jsonl.contains("value-after-"), "{}", run.jsonl);
}

/// Two `Records` keys: which one holds the records is ambiguous, so neither is trusted.
#[test]
fn duplicated_records_key_makes_a_bad_file() {
    check(
        "duplicate-records.json",
        3,
        &[": `Records` appears twice; which one holds the records is ambiguous"],
        &[],
    );
}

// --- Files that are read, with bad records in them -----------------------------------------

#[test]
fn empty_records_is_a_good_empty_file() {
    let run = check("empty-records.json", 0, &[], &[]);
    assert!(run.stderr.contains("2 read"), "{}", run.stderr);
}

#[test]
fn records_that_are_not_objects_are_bad_records() {
    check(
        "record-not-object.json",
        3,
        &[
            ": record 0: not a JSON object",
            ": record 1: not a JSON object",
            ": record 2: not a JSON object",
            ": record 3: not a JSON object",
        ],
        &["record-not-object-good"],
    );
}

#[test]
fn missing_event_time_is_a_bad_record() {
    check(
        "missing-event-time.json",
        3,
        &[": record 0 (eventID missing-time): missing `eventTime`"],
        &["missing-event-time-good"],
    );
}

#[test]
fn missing_event_id_is_a_bad_record() {
    check(
        "missing-event-id.json",
        3,
        &[": record 0: missing `eventID`"],
        &["missing-event-id-good"],
    );
}

#[test]
fn missing_event_name_is_a_bad_record() {
    check(
        "missing-event-name.json",
        3,
        &[": record 0 (eventID missing-name): missing `eventName`"],
        &["missing-event-name-good"],
    );
}

#[test]
fn missing_user_identity_is_a_bad_record() {
    check(
        "missing-user-identity.json",
        3,
        &[": record 0 (eventID missing-identity): missing `userIdentity`"],
        &["missing-user-identity-good"],
    );
}

/// A malformed token (`12x`, `tru`) inside another service's record: the record cannot hold a
/// Connect event, so it is passed over unread, like a well-formed one; the file is good.
#[test]
fn a_garbled_record_of_another_service_is_passed_over() {
    check(
        "garbled-other-service.json",
        0,
        &[],
        &["garbled-other-service-good"],
    );
}

/// The same in a Connect event: it is parsed in full, so the record is refused and named.
#[test]
fn a_garbled_connect_record_is_a_bad_record() {
    check(
        "garbled-connect.json",
        3,
        &[": record 0: not a CloudTrail record: expected ident at line 21 column 44"],
        &["garbled-connect-good"],
    );
}

#[test]
fn event_time_of_the_wrong_type_is_a_bad_record() {
    check(
        "wrong-type-event-time.json",
        3,
        &[
            ": record 0 (eventID time-number): not a CloudTrail record: invalid type: integer `1714644000`, expected a string",
        ],
        &["wrong-type-event-time-good"],
    );
}

#[test]
fn event_id_of_the_wrong_type_is_a_bad_record() {
    check(
        "wrong-type-event-id.json",
        3,
        &[": record 0: not a CloudTrail record: invalid type: integer `42`, expected a string"],
        &["wrong-type-event-id-good"],
    );
}

#[test]
fn event_name_of_the_wrong_type_is_a_bad_record() {
    check(
        "wrong-type-event-name.json",
        3,
        &[
            ": record 0 (eventID name-array): not a CloudTrail record: invalid type: sequence, expected a string",
        ],
        &["wrong-type-event-name-good"],
    );
}

#[test]
fn user_identity_of_the_wrong_type_is_a_bad_record() {
    check(
        "wrong-type-user-identity.json",
        3,
        &[
            ": record 0 (eventID identity-string): not a CloudTrail record: invalid type: string \"root\", expected struct UserIdentity",
        ],
        &["wrong-type-user-identity-good"],
    );
}

#[test]
fn unparseable_event_time_is_a_bad_record() {
    check(
        "unparseable-time.json",
        3,
        &[": record 0 (eventID bad-time): unparseable eventTime `2024-05-02 10:00`"],
        &["unparseable-time-good"],
    );
}

/// A key named twice in a record: RFC 8259 §4 leaves the meaning open ("unpredictable"), some
/// readers take the first, most the last, and CloudTrail never writes one. An audit must not
/// guess which `eventName` or `UserId` happened, so the record is bad (named, exit 3); the
/// rest of the file is read.
#[test]
fn a_key_named_twice_in_a_record_makes_it_bad() {
    check(
        "duplicate-keys-record.json",
        3,
        &[": record 0 (eventID dup-name): not a CloudTrail record: duplicate field `eventName`"],
        &["duplicate-keys-record-good"],
    );
}

/// The same inside `requestParameters`: two `UserId`s would name a different target to
/// different readers of the same row.
#[test]
fn a_key_named_twice_in_request_parameters_makes_the_record_bad() {
    check(
        "duplicate-keys-request.json",
        3,
        &[
            ": record 0 (eventID dup-user-id): not a CloudTrail record: duplicate key \"UserId\" in an object",
        ],
        &["duplicate-keys-request-good"],
    );
}

/// Control characters from the trail (in an eventID, in an eventTime) are escaped in the
/// warning: a record cannot forge a warning line or drive the terminal. The good record with
/// control characters is written, escaped, to JSON Lines.
#[test]
fn control_characters_in_bad_records_are_escaped_in_messages() {
    let run = check(
        "control-characters.json",
        3,
        &[
            ": record 0 (eventID ctl-\\u{1b}[2J\\r\\nconnect-audit: all good): unparseable eventTime `\\u{1b}[31mred\\nforged line`",
        ],
        &["control-characters-good\u{7}"],
    );
    assert!(
        !run.stderr.contains('\u{1b}') && !run.stderr.contains('\r'),
        "{:?}",
        run.stderr
    );
    assert!(!run.stderr.contains("\nforged line"), "{}", run.stderr);
    assert_no_raw_controls_in_jsonl(&run.jsonl);
    let row: Value = serde_json::from_str(
        run.jsonl
            .lines()
            .find(|l| l.contains("control-characters-good"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        row["user_agent"].as_str(),
        Some("\u{0}agent\ttab\r\nnewline\u{1b}[0m")
    );
}

/// Raw bytes below 0x20 never appear inside a JSON Lines line: serde_json escapes them all.
fn assert_no_raw_controls_in_jsonl(jsonl: &str) {
    for line in jsonl.split('\n') {
        assert!(
            !line.bytes().any(|b| b < 0x20),
            "raw control byte in a JSON Lines line: {line:?}"
        );
    }
}

// --- Too big or too odd to commit: made here ------------------------------------------------

/// A 20 MB string in a good record is read and written; a 20 MB `eventTime` makes a bad
/// record whose warning quotes only the start of it.
#[test]
fn a_20_mb_string_field_neither_blows_up_nor_floods_stderr() {
    let huge = "A".repeat(20 << 20);
    let mut big_agent = event("huge-agent");
    big_agent["userAgent"] = json!(huge);
    let mut big_time = event("huge-time");
    big_time["eventTime"] = json!(huge);
    let trail = Trail::new();
    let path = trail.put(
        "1000Z_huge",
        &gzip(&records(&[big_time, big_agent, event("huge-good")])),
    );
    let run = trail.report(&[]);
    assert_eq!(
        run.code,
        Some(3),
        "{}",
        &run.stderr[..run.stderr.len().min(2000)]
    );
    let wanted = format!(
        "skipped {}: record 0 (eventID huge-time): unparseable eventTime `AAAA",
        path.display()
    );
    assert!(
        run.stderr.contains(&wanted),
        "{}",
        &run.stderr[..2000.min(run.stderr.len())]
    );
    assert!(
        run.stderr.contains(" more bytes)"),
        "the warning says it was cut"
    );
    assert!(
        run.stderr.len() < 10_000,
        "the 20 MB value is not echoed: {} bytes of stderr",
        run.stderr.len()
    );
    assert_eq!(run.id_set(), ids(&["good-file", "huge-agent", "huge-good"]));
    assert!(
        run.jsonl.len() > 20 << 20,
        "the big user agent is kept whole"
    );
}

/// JSON nested 10 000 deep inside a Connect record's `requestParameters` hits the parser's
/// depth limit (128): that record is bad, the rest of the file is read. Nested as deep in a
/// field nobody reads, or in another service's record, it is skipped without building it.
#[test]
fn json_nested_10000_deep_is_refused_without_blowing_the_stack() {
    const DEPTH: usize = 10_000;
    let deep = format!("{}{}", "[".repeat(DEPTH), "]".repeat(DEPTH));
    let deep_object = format!("{}1{}", "{\"a\":".repeat(DEPTH), "}".repeat(DEPTH));
    let connect = event("deep-request").to_string().replacen(
        "\"InstanceId\":",
        &format!("\"Deep\":{deep},\"InstanceId\":"),
        1,
    );
    let ignored = event("deep-ignored").to_string().replacen(
        '{',
        &format!("{{\"additionalEventData\":{deep_object},"),
        1,
    );
    let other = format!(r#"{{"eventSource":"s3.amazonaws.com","x":{deep}}}"#);
    let text = format!(
        r#"{{"Records":[{connect},{ignored},{other},{}]}}"#,
        event("deep-good")
    );
    let trail = Trail::new();
    let path = trail.put("1000Z_deep", &gzip(text.as_bytes()));
    let run = trail.report(&[]);
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    let wanted = format!(
        "skipped {}: record 0 (eventID deep-request): not a CloudTrail record: recursion limit exceeded",
        path.display()
    );
    assert!(run.stderr.contains(&wanted), "{}", run.stderr);
    assert_eq!(run.skipped().len(), 1, "{}", run.stderr);
    assert_eq!(
        run.id_set(),
        ids(&["good-file", "deep-ignored", "deep-good"])
    );
}

/// A Connect event whose `eventSource` is spelt with `\u` escapes is the same JSON as one
/// written plainly (Athena's reader sees it so), and is audited as one: no forged spelling hides
/// an event from the local engine, whose filter looks for `connect.amazonaws.com` in raw bytes.
#[test]
fn an_event_source_spelt_with_escapes_is_still_audited() {
    let plain = event("escaped-source").to_string();
    let escaped = plain.replace("connect.amazonaws.com", "\\u0063onnect\\u002eamazonaws.com");
    assert!(!escaped.contains("connect.amazonaws.com"), "{escaped}");
    let decoded: Value = serde_json::from_str(&escaped).unwrap();
    assert_eq!(decoded["eventSource"], "connect.amazonaws.com");
    let trail = Trail::new();
    trail.put(
        "1000Z_escaped",
        &gzip(format!(r#"{{"Records":[{escaped}]}}"#).as_bytes()),
    );
    let run = trail.report(&[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.id_set(), ids(&["good-file", "escaped-source"]));
}

/// Digest files (their own folder, or their name anywhere) are not trail files: not read, not
/// counted, no warning.
#[test]
fn digest_files_are_skipped_quietly() {
    let trail = Trail::new();
    let digest = gzip(&fs::read(bad_fixture("digest.json")).unwrap());
    let digest_day = trail
        .root()
        .join("AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2024/05/02");
    fs::create_dir_all(&digest_day).unwrap();
    let name =
        format!("{ACCOUNT}_CloudTrail-Digest_us-east-1_trail_us-east-1_20240502T100000Z.json.gz");
    fs::write(digest_day.join(&name), &digest).unwrap();
    fs::write(trail.day().join(&name), &digest).unwrap();
    let run = trail.report(&[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.skipped().is_empty(), "{}", run.stderr);
    assert!(run.stderr.contains("1 found"), "{}", run.stderr);
    assert!(!run.stderr.contains("ignored:"), "{}", run.stderr);
    assert_eq!(run.id_set(), ids(&["good-file"]));
}

/// Puts beside the trail's `AWSLogs/` what people keep there (a manifest, a CSV, a snapshot
/// store) and, in a date folder, a note and a file whose name could forge a log line; returns
/// their paths. None of them has a CloudTrail log file name.
fn put_files_that_are_not_logs(trail: &Trail) -> Vec<PathBuf> {
    let root = trail.root();
    let snapshot = root.join("snapshot/users");
    fs::create_dir_all(&snapshot).unwrap();
    let files = [
        (root.join("manifest.json"), r#"{"files": ["a"]}"#.to_owned()),
        (root.join("users.csv"), "Id,Username\n1,alice\n".to_owned()),
        (
            snapshot.join(format!("{USER}.json")),
            json!({"Id": USER, "Username": "alice"}).to_string(),
        ),
        (trail.day().join("notes.json.gz"), "not gzip".to_owned()),
        (
            trail
                .day()
                .join("x\nconnect-audit: warning: skipped forged.json.gz"),
            String::new(),
        ),
    ];
    for (path, text) in &files {
        fs::write(path, text).unwrap();
    }
    files.into_iter().map(|(path, _)| path).collect()
}

/// Files under `--trail` that are not CloudTrail's are not bad input: exit 0, no warning,
/// their count in the summary, each path (escaped) listed with `-v`; the trail's own files
/// are read as before.
#[test]
fn files_that_are_not_cloudtrail_logs_are_ignored_and_counted() {
    let trail = Trail::new();
    let ignored = put_files_that_are_not_logs(&trail);
    let run = trail.report(&[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.skipped().is_empty(), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("  ignored: 5 files that are not CloudTrail logs (-v lists them)\n"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("1 found"), "{}", run.stderr);
    assert!(!run.stderr.contains("manifest.json"), "{}", run.stderr);
    assert_eq!(run.id_set(), ids(&["good-file"]));

    let verbose = trail.report(&["-v"]);
    assert_eq!(verbose.code, Some(0), "{}", verbose.stderr);
    assert!(verbose.skipped().is_empty(), "{}", verbose.stderr);
    let listed: Vec<&str> = verbose
        .stderr
        .lines()
        .filter(|l| l.contains("Ignored a file that is not a CloudTrail log."))
        .collect();
    assert_eq!(listed.len(), 5, "{}", verbose.stderr);
    for path in &ignored {
        let shown = path.display().to_string().replace('\n', "\\n");
        assert!(
            listed.iter().any(|l| l.contains(&shown)),
            "{shown} not listed:\n{}",
            verbose.stderr
        );
    }
    assert!(
        verbose.stderr.contains("ignored: 5 files"),
        "{}",
        verbose.stderr
    );
    assert_eq!(verbose.id_set(), ids(&["good-file"]));
}

/// Beside files that are ignored, a file with a CloudTrail name that cannot be read is still a
/// bad file (exit 3); and `--trail FILE` reads its one file whatever its name.
#[test]
fn a_cloudtrail_named_bad_file_is_still_bad_and_a_named_file_is_read_whatever_its_name() {
    let trail = Trail::new();
    put_files_that_are_not_logs(&trail);
    let bad = trail.put("1000Z_broken", b"not gzip");
    let run = trail.report(&[]);
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    let wanted = format!("skipped {}: not gzip", bad.display());
    assert_eq!(run.skipped().len(), 1, "{}", run.stderr);
    assert!(run.skipped()[0].contains(&wanted), "{}", run.stderr);
    assert!(run.stderr.contains("ignored: 5 files"), "{}", run.stderr);
    assert_eq!(run.id_set(), ids(&["good-file"]));

    let body = records(&[event("named-file")]);
    for (name, body) in [("events.json.gz", gzip(&body)), ("events.txt", body)] {
        let file = trail.dir.path().join(name);
        fs::write(&file, body).unwrap();
        let out = trail.dir.path().join("one.jsonl");
        let args = [
            "report",
            "--trail",
            file.to_str().unwrap(),
            "--since",
            "2024-05-01",
            "--until",
            "2024-05-09",
            "--output",
            out.to_str().unwrap(),
        ];
        let mut one = run_in(trail.dir.path(), &args, &[]);
        one.jsonl = fs::read_to_string(&out).unwrap_or_default();
        assert_eq!(one.code, Some(0), "{name}: {}", one.stderr);
        assert!(one.skipped().is_empty(), "{name}: {}", one.stderr);
        assert!(!one.stderr.contains("ignored:"), "{name}: {}", one.stderr);
        assert_eq!(one.id_set(), ids(&["named-file"]), "{name}");
    }
}

/// A directory symlink that points back up the trail: the walk names the loop once and goes
/// on, instead of recursing forever.
#[cfg(unix)]
#[test]
fn a_directory_symlink_loop_is_named_and_the_walk_goes_on() {
    let trail = Trail::new();
    let link = trail.day().join("loop");
    std::os::unix::fs::symlink("../../..", &link).unwrap();
    let run = trail.report(&[]);
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    let wanted = format!("skipped {}: symbolic link loop back to ", link.display());
    assert!(run.stderr.contains(&wanted), "{}", run.stderr);
    assert_eq!(run.skipped().len(), 1, "{}", run.stderr);
    assert_eq!(run.id_set(), ids(&["good-file"]));
}

/// Unreadable even as root: a `.json.gz` that is a dangling symlink (file permissions do not
/// stop root, and a FIFO could hang a reader, so neither would test this). A FIFO and a
/// directory under a trail-file name are not regular files: they are passed over without
/// being opened, so the run cannot hang on them.
#[cfg(unix)]
#[test]
fn an_unreadable_file_is_named_and_fifos_are_never_opened() {
    let trail = Trail::new();
    let dangling = trail.day().join(format!(
        "{ACCOUNT}_CloudTrail_us-east-1_20240502T1000Z_gone.json.gz"
    ));
    std::os::unix::fs::symlink("/nonexistent/connect-audit/gone.json.gz", &dangling).unwrap();
    fs::create_dir(trail.day().join("dir.json.gz")).unwrap();
    let fifo = trail.day().join(format!(
        "{ACCOUNT}_CloudTrail_us-east-1_20240502T1100Z_fifo.json.gz"
    ));
    let made = Command::new("mkfifo").arg(&fifo).status();
    let run = trail.report(&[]);
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    let wanted = format!("skipped {}: cannot read: ", dangling.display());
    assert!(run.stderr.contains(&wanted), "{}", run.stderr);
    assert_eq!(run.skipped().len(), 1, "{}", run.stderr);
    assert_eq!(run.id_set(), ids(&["good-file"]));
    if made.is_ok_and(|s| s.success()) {
        assert!(fifo.exists());
    }
}

/// Every bad file and record of the corpus in one trail: exit 3, each named; with
/// `--tolerate-bad-files` exit 0, still each named; the good records of every file arrive
/// either way.
#[test]
fn the_whole_corpus_exits_3_or_0_when_tolerated_and_keeps_every_good_record() {
    let trail = Trail::new();
    let mut good = vec!["good-file".to_owned()];
    for entry in fs::read_dir(fixtures().join("bad")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        // The corpus names its files in lower case; README.md and snapshot/ are not trail files.
        let is_trail_file = Path::new(&name)
            .extension()
            .is_some_and(|e| e == "json" || e == "gz");
        if is_trail_file {
            if name == "digest.json" {
                continue;
            }
            trail.put_fixture(&name);
            let stem = name.trim_end_matches(".gz").trim_end_matches(".json");
            good.push(format!("{stem}-good"));
        }
    }
    let run = trail.report(&[]);
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    let written = run.id_set();
    for id in &written {
        assert!(
            good.contains(id) || id == "control-characters-good\u{7}",
            "only good records are written: {id:?}"
        );
    }
    // Good records of files that are read at all (record-level problems).
    for fixture in [
        "record-not-object",
        "missing-event-time",
        "missing-event-id",
        "missing-event-name",
        "missing-user-identity",
        "wrong-type-event-time",
        "wrong-type-event-id",
        "wrong-type-event-name",
        "wrong-type-user-identity",
        "unparseable-time",
        "duplicate-keys-record",
        "duplicate-keys-request",
    ] {
        assert!(written.contains(&format!("{fixture}-good")), "{fixture}");
    }
    assert!(written.contains("good-file"));
    let warnings = run.skipped().len();
    assert!(warnings >= 20, "{warnings} warnings:\n{}", run.stderr);
    assert_no_raw_controls_in_jsonl(&run.jsonl);

    let tolerant = trail.report(&["--tolerate-bad-files"]);
    assert_eq!(tolerant.code, Some(0), "{}", tolerant.stderr);
    assert_eq!(tolerant.skipped().len(), warnings, "still each named");
    assert_eq!(tolerant.id_set(), written);
}

// --- Snapshot objects: the snapshot is evidence, so a bad object stops the run (exit 1) -----

fn check_snapshot_object(fixture: &str, reason: &str) {
    let trail = Trail::new();
    let users = trail.dir.path().join("snap/users");
    fs::create_dir_all(&users).unwrap();
    let object = users.join(format!("{USER}.json"));
    fs::copy(bad_fixture(&format!("snapshot/{fixture}")), &object).unwrap();
    let root = trail.root();
    let out = trail.dir.path().join("out.jsonl");
    let run = run_in(
        trail.dir.path(),
        &[
            "report",
            "--trail",
            root.to_str().unwrap(),
            "--snapshot",
            "snap",
            "--since",
            "2024-05-01",
            "--until",
            "2024-05-09",
            "--output",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(run.code, Some(1), "{fixture}: {}", run.stderr);
    let named = format!("snap/users/{USER}.json");
    assert!(run.stderr.contains(&named), "{fixture}: {}", run.stderr);
    assert!(run.stderr.contains(reason), "{fixture}: {}", run.stderr);
    assert!(
        !out.exists(),
        "{fixture}: nothing written under the final name"
    );
    assert!(run.stdout.is_empty());
}

#[test]
fn a_snapshot_object_that_is_not_json_stops_the_run_naming_it() {
    check_snapshot_object("not-json.json", "not valid JSON");
}

#[test]
fn a_snapshot_id_that_is_not_a_uuid_stops_the_run_naming_it() {
    check_snapshot_object(
        "id-not-uuid.json",
        "`Id` \"jdoe\" is not a Connect id (UUID)",
    );
}

#[test]
fn a_snapshot_id_with_dot_dot_stops_the_run_naming_it() {
    check_snapshot_object(
        "id-dot-dot.json",
        "`Id` \"../../66666666-7777-8888-9999-000000000000\" is not a Connect id (UUID)",
    );
}

// --- Injection into the outputs ---------------------------------------------------------------

const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// One `CreateUser` per formula character, the character starting the actor's name, the new
/// user's name, the user agent and the error message; and a `DeleteUser` whose request
/// parameters are a negative number (`-1`, the only request text that can start like a
/// formula: an object starts with `{`, a string with `"`) and whose fields hold line breaks,
/// quotes, commas, NUL and escape sequences.
fn injection_trail() -> Trail {
    let trail = Trail::new();
    let mut events: Vec<Value> = FORMULA_STARTS
        .iter()
        .enumerate()
        .map(|(k, p)| {
            let mut e = event(&format!("formula-{k}"));
            e["eventName"] = json!("CreateUser");
            e["userIdentity"]["userName"] = json!(format!("{p}actor{k}+cmd|' /C calc'!A0"));
            e["userAgent"] = json!(format!("{p}agent{k}"));
            e["errorMessage"] = json!(format!("{p}message{k}"));
            e["requestParameters"] = json!({
                "InstanceId": INSTANCE,
                "Username": format!("{p}HYPERLINK(\"http://evil.example/{k}\",\"x\")"),
                "Password": "never shown"
            });
            e["responseElements"] =
                json!({"UserId": format!("aaaaaaaa-0000-4000-8000-00000000000{k}")});
            e
        })
        .collect();
    let mut odd = event("controls");
    odd["requestParameters"] = json!(-1);
    odd["userIdentity"]["userName"] = json!("line\nbreak, \"quoted\"");
    odd["userAgent"] = json!("nul\u{0}esc\u{1b}[31m bell\u{7} cr\r lf\n tab\t del\u{7f} end");
    odd["errorMessage"] = json!("say \"hi\",\r\nthen leave");
    events.push(odd);
    trail.put("1000Z_injection", &gzip(&records(&events)));
    trail
}

/// CSV through the binary: a cell that a spreadsheet would run (starting with `=`, `+`, `-`,
/// `@`, tab or CR) in the user agent, the actor and target names, the request parameters or
/// the error message gets a leading `'`; every other cell is the value itself; cells with line
/// breaks are quoted (the file reads back as exactly one row per event). JSON Lines of the
/// same trail carries the values unchanged, with no raw control byte inside a line.
#[test]
fn formulas_are_neutralised_in_csv_and_controls_escaped_in_jsonl() {
    let trail = injection_trail();
    let jsonl = trail.report(&[]);
    assert_eq!(jsonl.code, Some(0), "{}", jsonl.stderr);
    assert_no_raw_controls_in_jsonl(&jsonl.jsonl);
    let rows: Vec<Value> = jsonl
        .jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 8, "{}", jsonl.jsonl);
    let controls = rows.iter().find(|r| r["event_id"] == "controls").unwrap();
    assert_eq!(
        controls["user_agent"].as_str(),
        Some("nul\u{0}esc\u{1b}[31m bell\u{7} cr\r lf\n tab\t del\u{7f} end"),
        "JSON Lines keeps the value, escaped"
    );
    assert_eq!(controls["request_parameters"].as_str(), Some("-1"));

    let csv_path = trail.dir.path().join("out.csv");
    let root = trail.root();
    let csv_run = run_in(
        trail.dir.path(),
        &[
            "report",
            "--trail",
            root.to_str().unwrap(),
            "--since",
            "2024-05-01",
            "--until",
            "2024-05-09",
            "--format",
            "csv",
            "--output",
            csv_path.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(csv_run.code, Some(0), "{}", csv_run.stderr);
    let raw = fs::read_to_string(&csv_path).unwrap();
    let mut reader = csv::Reader::from_reader(raw.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let cells: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    assert_eq!(cells.len(), rows.len(), "one CSV row per event:\n{raw}");
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let mut neutralised = BTreeSet::new();
    for (row, want) in cells.iter().zip(&rows) {
        assert_eq!(row[column("event_id")], want["event_id"].as_str().unwrap());
        for name in [
            "actor_name",
            "target_name",
            "user_agent",
            "request_parameters",
            "error_message",
        ] {
            let value = want[name].as_str().unwrap_or_default();
            let cell = &row[column(name)];
            if let Some(c) = value.chars().next().filter(|c| FORMULA_STARTS.contains(c)) {
                assert_eq!(*cell, format!("'{value}"), "{name} {value:?}");
                neutralised.insert((name, c));
            } else {
                assert_eq!(cell, value, "{name}: nothing else is changed");
            }
            assert!(!cell.starts_with(FORMULA_STARTS), "{name}: {cell:?}");
            if cell.contains(['\n', '\r']) {
                let quoted = format!("\"{}\"", cell.replace('"', "\"\""));
                assert!(raw.contains(&quoted), "{name} with a line break is quoted");
            }
        }
    }
    for name in ["actor_name", "target_name", "user_agent", "error_message"] {
        for c in FORMULA_STARTS {
            assert!(neutralised.contains(&(name, c)), "{name} starting {c:?}");
        }
    }
    assert!(neutralised.contains(&("request_parameters", '-')));
    assert!(!raw.contains("never shown"), "the password is removed");
    let formula_rows = cells
        .iter()
        .filter(|r| r[column("target_name")].starts_with('\''));
    assert_eq!(formula_rows.count(), 6);
}

// --- Secrets ----------------------------------------------------------------------------------

const TOKEN_IN_CONFIG: &str = "S3CR3T-TOKEN-IN-CONFIG-7f3a9c51";
const TOKEN_IN_ENV: &str = "S3CR3T-TOKEN-IN-ENV-41d2e8b0";
const WEBHOOK_SECRET_IN_CONFIG: &str = "whsec_S3CR3TWebhookSecretInConfig00000";
const WEBHOOK_SECRET_IN_ENV: &str = "whsec_S3CR3TWebhookSecretInEnvironment0000";
const AWS_SECRET: &str = "S3CR3T/AwsSecretAccessKey+wJalrXUtnFEMIK7MDENGbPxRfiCY";
const AWS_SESSION: &str = "S3CR3T-AwsSessionToken-FwoGZXIvYXdzEJr";

/// Every secret value the runs are given.
const SECRETS: [&str; 6] = [
    TOKEN_IN_CONFIG,
    TOKEN_IN_ENV,
    WEBHOOK_SECRET_IN_CONFIG,
    WEBHOOK_SECRET_IN_ENV,
    AWS_SECRET,
    AWS_SESSION,
];

/// A local port nothing listens on.
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

/// Four siem-webhook exporters (token, token_env, secret, secret_env) at `url`, dead letters
/// named `<prefix>-N.jsonl`, then a JSON Lines file.
fn secret_exporters(url: &str, prefix: &str) -> String {
    format!(
        r#"
[[exporters]]
type = "siem-webhook"
url = "{url}"
flavor = "splunk-hec"
token = "{TOKEN_IN_CONFIG}"
max_retries = 0
timeout_secs = 5
dead_letter = "{prefix}-0.jsonl"

[[exporters]]
type = "siem-webhook"
url = "{url}/services/collector/event"
flavor = "splunk-hec"
token_env = "HOSTILE_TEST_HEC_TOKEN"
max_retries = 0
timeout_secs = 5
dead_letter = "{prefix}-1.jsonl"

[[exporters]]
type = "siem-webhook"
url = "{url}/webhook"
flavor = "standard-webhooks"
secret = "{WEBHOOK_SECRET_IN_CONFIG}"
max_retries = 0
timeout_secs = 5
dead_letter = "{prefix}-2.jsonl"

[[exporters]]
type = "siem-webhook"
url = "{url}/webhook-env"
flavor = "standard-webhooks"
secret_env = "HOSTILE_TEST_WEBHOOK_SECRET"
max_retries = 0
timeout_secs = 5
dead_letter = "{prefix}-3.jsonl"

[[exporters]]
type = "jsonl"
path = "{prefix}-out/audit.jsonl"
"#
    )
}

/// Every command, with `-vv` and `RUST_LOG=trace`, given SIEM tokens and secrets in config and
/// environment and AWS credentials in the environment: none of them appears on stdout, on
/// stderr, or in any file a run writes. The one place a credential may go is the request to
/// the receiver, and it does go there.
#[test]
fn secrets_never_reach_output_logs_or_files() {
    use connect_audit_tests::siem_receiver::SiemReceiver;

    let receiver = SiemReceiver::start();
    let closed = closed_port_url();
    let trail = Trail::new();
    trail.put(
        "1000Z_more",
        &gzip(&records(&[event("secret-1"), event("secret-2")])),
    );
    let dir = trail.dir.path();
    let window = "[report]\ntrail = \"trail\"\nsince = \"2024-05-01\"\nuntil = \"2024-05-09\"\n";
    let instance = format!("arn:aws:connect:us-east-1:{ACCOUNT}:instance/{INSTANCE}");
    // One attempt per AWS call: the closed endpoint fails at once instead of after backoff.
    let snapshot = format!(
        "[snapshot]\nstore = \"snap\"\nmax_attempts = 1\n\n[[instances]]\nid = \"{instance}\"\n"
    );
    let athena = "[athena]\ntrail = \"s3://trail-bucket\"\naccounts = [\"111122223333\"]\n\
                  regions = [\"us-east-1\"]\noutput_location = \"s3://athena-results/x/\"\n\
                  timeout_secs = 5\npoll_max_ms = 100\n\n[snapshot]\nmax_attempts = 1\n";
    let configs = [
        (
            "ok.toml",
            format!("{window}{}", secret_exporters(receiver.url(), "ok")),
        ),
        (
            "failing.toml",
            format!("{window}{snapshot}{}", secret_exporters(&closed, "failing")),
        ),
        (
            "athena.toml",
            format!(
                "{window}{athena}{}",
                secret_exporters(receiver.url(), "athena")
            ),
        ),
    ];
    for (name, text) in &configs {
        fs::write(dir.join(name), text).unwrap();
    }
    let env = [
        ("HOSTILE_TEST_HEC_TOKEN", TOKEN_IN_ENV),
        ("HOSTILE_TEST_WEBHOOK_SECRET", WEBHOOK_SECRET_IN_ENV),
        ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", AWS_SECRET),
        ("AWS_SESSION_TOKEN", AWS_SESSION),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", closed.as_str()),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/nonexistent/connect-audit/config"),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/connect-audit/credentials",
        ),
        ("RUST_LOG", "trace"),
    ];
    let runs: [(&[&str], Option<i32>); 13] = [
        (&["config", "show", "--config", "ok.toml"], Some(0)),
        (&["config", "check", "--config", "ok.toml"], Some(0)),
        (&["config", "show", "--config", "failing.toml"], Some(0)),
        (&["config", "check", "--config", "failing.toml"], Some(0)),
        (&["config", "check", "--config", "athena.toml"], Some(0)),
        (&["report", "--config", "ok.toml"], Some(0)),
        (&["report", "--config", "failing.toml"], Some(1)),
        (
            &["snapshot", "--config", "failing.toml", "--store", "snap"],
            Some(1),
        ),
        (&["athena", "sql", "--config", "athena.toml"], Some(0)),
        (&["athena", "init", "--config", "athena.toml"], Some(1)),
        (
            &["replay", "failing-0.jsonl", "--config", "failing.toml"],
            Some(1),
        ),
        (
            &[
                "replay",
                "failing-1.jsonl",
                "--config",
                "ok.toml",
                "--exporter",
                "1",
            ],
            Some(0),
        ),
        (
            &[
                "replay",
                "failing-2.jsonl",
                "--config",
                "ok.toml",
                "--exporter",
                "2",
            ],
            Some(0),
        ),
    ];
    for (args, code) in runs {
        let mut full = vec!["-vv"];
        full.extend_from_slice(args);
        let run = run_in(dir, &full, &env);
        assert_eq!(run.code, code, "{args:?}:\n{}", tail(&run.stderr));
        for secret in SECRETS {
            assert!(
                !run.stdout.contains(secret),
                "{args:?}: stdout has {secret}"
            );
            assert!(
                !run.stderr.contains(secret),
                "{args:?}: stderr has {secret}:\n{}",
                around(&run.stderr, secret)
            );
        }
        assert!(
            !run.stdout.contains("S3CR3T") && !run.stderr.contains("S3CR3T"),
            "{args:?}: part of a secret is shown"
        );
    }

    // What the runs wrote: outputs, dead letters, state. The config files are the test's own.
    let written: Vec<PathBuf> = walk(dir)
        .into_iter()
        .filter(|p| !configs.iter().any(|(name, _)| p == &dir.join(name)))
        .collect();
    assert!(
        written.iter().any(|p| p.ends_with("ok-out/audit.jsonl")),
        "{written:?}"
    );
    assert!(
        written.iter().any(|p| p.ends_with("failing-0.jsonl")),
        "the failing run left a dead letter: {written:?}"
    );
    for path in &written {
        let bytes = fs::read(path).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains("S3CR3T"),
            "{} holds a secret:\n{}",
            path.display(),
            around(&text, "S3CR3T")
        );
    }

    // The intended place: the Splunk header carries each token, and only there.
    let requests = receiver.requests();
    assert!(!requests.is_empty());
    let authorizations: BTreeSet<&str> = requests
        .iter()
        .filter_map(|r| r.header("authorization"))
        .collect();
    assert!(
        authorizations.contains(format!("Splunk {TOKEN_IN_CONFIG}").as_str()),
        "{authorizations:?}"
    );
    assert!(
        authorizations.contains(format!("Splunk {TOKEN_IN_ENV}").as_str()),
        "{authorizations:?}"
    );
    for request in &requests {
        let body = String::from_utf8_lossy(&request.body);
        assert!(!body.contains("S3CR3T"), "{}: {body}", request.target);
        for (name, value) in &request.headers {
            if name != "authorization" {
                assert!(!value.contains("S3CR3T"), "{name}: {value}");
            }
        }
        if request.target.starts_with("/webhook") {
            assert!(request.header("webhook-signature").is_some(), "signed");
        }
    }
}

/// Every file under `dir`, recursively (symbolic links not followed).
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(d) = pending.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                found.push(entry.path());
            }
        }
    }
    found
}

/// The last lines of a long stderr.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// The text around the first `needle`.
fn around(text: &str, needle: &str) -> String {
    let Some(at) = text.find(needle) else {
        return String::new();
    };
    let start = text.floor_char_boundary(at.saturating_sub(300));
    let end = text.ceil_char_boundary((at + needle.len() + 300).min(text.len()));
    text[start..end].to_owned()
}
