//! The embedded engine over fixture trails: bad input, window edges, layouts, duplicates,
//! naming from the trail, determinism.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write as _;
use std::path::Path;

use connect_audit_core::{
    ActorKind, AuditRecord, Directory, EventSelection, NameSource, Store, TargetKind, Window,
};
use connect_audit_query::local::{ScanOptions, ScanSummary, TrailScanner};
use serde_json::{Value, json};

use super::helpers::fixtures;

const ADMIN: &str = "78adbca8-17ff-47dd-b354-2405d9371018";
const USER: &str = "66666666-7777-8888-9999-000000000000";
const NEWBIE: &str = "12345678-1234-4321-8765-1234567890ab";
const INSTANCE: &str = "11111111-2222-3333-4444-555555555555";

fn window() -> Window {
    Window::parse(
        Some("2024-05-01"),
        Some("2024-05-08"),
        "2024-06-01T00:00:00Z".parse().unwrap(),
    )
    .unwrap()
}

fn scan_with(root: &Path, directory: Directory, threads: usize) -> (Vec<AuditRecord>, ScanSummary) {
    let mut options = ScanOptions::new(window(), EventSelection::defaults());
    options.threads = threads;
    let scanner = TrailScanner::new(Store::local(root), directory, options);
    let mut records = Vec::new();
    let summary = scanner.scan(&mut records).unwrap();
    (records, summary)
}

fn ids(records: &[AuditRecord]) -> Vec<&str> {
    records.iter().map(|r| r.event_id.as_str()).collect()
}

#[test]
fn bad_files_are_reported_and_good_ones_still_processed() {
    let (records, summary) = scan_with(&fixtures().join("bad-trail"), Directory::new(), 2);
    let got: BTreeSet<&str> = ids(&records).into_iter().collect();
    assert_eq!(
        got,
        BTreeSet::from(["good-1", "good-2", "good-3", "good-4"]),
        "every good record of every readable file is kept"
    );
    assert_eq!(summary.files_found, 9);
    assert_eq!(summary.files_ignored, 1, "the fixture's README.md");
    assert_eq!(summary.files_bad, 6, "{:#?}", summary.bad);
    assert_eq!(summary.files_read, 3);
    assert_eq!(summary.records_bad, 4, "{:#?}", summary.bad);
    let reason = |suffix: &str| {
        summary
            .bad
            .iter()
            .filter(|b| b.path.to_string_lossy().contains(suffix))
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(reason("_notgzip.").contains("not gzip"));
    assert!(reason("_truncated.").contains("truncated gzip"));
    assert!(reason("_notjson.").contains("not JSON"));
    assert!(reason("_norecords.").contains("no `Records` array"));
    assert!(reason("_recordsobject.").contains("`Records` is not an array"));
    assert!(reason("_empty.").contains("empty file"));
    let records_text = reason("_badrecords.");
    assert!(
        records_text.contains("record 0: not a JSON object"),
        "{records_text}"
    );
    assert!(
        records_text.contains("record 1 (eventID bad-time): unparseable eventTime"),
        "{records_text}"
    );
    assert!(
        records_text.contains("record 2 (eventID no-time): missing `eventTime`"),
        "{records_text}"
    );
    assert!(
        records_text.contains("record 3 (eventID wrong-type): not a CloudTrail record"),
        "{records_text}"
    );
    for bad in &summary.bad {
        assert!(bad.path.is_file(), "bad input names its file: {bad}");
    }
}

/// Writes `{"Records": records}` gzipped at `root/rel`.
fn write_trail(root: &Path, rel: &str, records: &[Value]) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(json!({ "Records": records }).to_string().as_bytes())
        .unwrap();
    fs::write(path, enc.finish().unwrap()).unwrap();
}

fn console_event(id: &str, name: &str, time: &str, req: Value, resp: Value) -> Value {
    json!({
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": format!("AROAEXAMPLE:{ADMIN}"),
            "arn": format!("arn:aws:sts::111122223333:assumed-role/AWSServiceRoleForAmazonConnect_Ab/{ADMIN}"),
            "accountId": "111122223333",
            "sessionContext": {"sessionIssuer": {"type": "Role", "userName": "AWSServiceRoleForAmazonConnect_Ab"}}
        },
        "eventTime": time, "eventSource": "connect.amazonaws.com", "eventName": name,
        "awsRegion": "us-east-1", "sourceIPAddress": "connect.amazonaws.com",
        "userAgent": "connect.amazonaws.com", "requestParameters": req, "responseElements": resp,
        "eventID": id, "eventType": "AwsApiCall", "recipientAccountId": "111122223333"
    })
}

fn update(id: &str, time: &str, user: &str) -> Value {
    console_event(
        id,
        "UpdateUserHierarchy",
        time,
        json!({"InstanceId": INSTANCE, "UserId": user, "HierarchyGroupId": "g"}),
        Value::Null,
    )
}

const STD: &str = "AWSLogs/111122223333/CloudTrail/us-east-1";

fn edge_trail() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_trail(
        root,
        &format!("{STD}/2024/05/01/111122223333_CloudTrail_us-east-1_20240501T0005Z_x.json.gz"),
        &[
            update("before-since", "2024-04-30T23:59:59Z", USER),
            update("at-since", "2024-05-01T00:00:00Z", USER),
        ],
    );
    write_trail(
        root,
        &format!("{STD}/2024/05/02/111122223333_CloudTrail_us-east-1_20240502T0900Z_x.json.gz"),
        &[update("about-newbie", "2024-05-02T09:00:00Z", NEWBIE)],
    );
    write_trail(
        root,
        &format!("{STD}/2024/05/03/111122223333_CloudTrail_us-east-1_20240503T0900Z_x.json.gz"),
        &[update("dup", "2024-05-03T08:59:00Z", USER)],
    );
    write_trail(
        root,
        &format!("{STD}/2024/05/04/111122223333_CloudTrail_us-east-1_20240504T0900Z_x.json.gz"),
        &[
            update("dup", "2024-05-03T08:59:00Z", USER),
            json!({"eventSource": "iam.amazonaws.com", "eventName": "CreateUser", "eventID": "iam-create",
                   "eventTime": "2024-05-04T08:00:00Z", "userAgent": "connect.amazonaws.com",
                   "requestParameters": {"userName": "eve"}}),
        ],
    );
    // The CreateUser that names NEWBIE comes in a later file than the event about NEWBIE.
    write_trail(
        root,
        &format!("{STD}/2024/05/06/111122223333_CloudTrail_us-east-1_20240506T0900Z_x.json.gz"),
        &[console_event(
            "create-newbie",
            "CreateUser",
            "2024-05-01T12:00:00Z",
            json!({"InstanceId": INSTANCE, "Username": "newbie", "Password": "HIDDEN_DUE_TO_SECURITY_REASONS"}),
            json!({"UserId": NEWBIE, "UserArn": format!("arn:aws:connect:us-east-1:111122223333:instance/{INSTANCE}/agent/{NEWBIE}")}),
        )],
    );
    write_trail(
        root,
        &format!("{STD}/2024/05/08/111122223333_CloudTrail_us-east-1_20240508T0005Z_x.json.gz"),
        &[
            update("delivered-next-day", "2024-05-07T23:58:00Z", USER),
            update("at-until", "2024-05-08T00:00:00Z", USER),
        ],
    );
    write_trail(
        root,
        &format!("{STD}/2024/05/20/111122223333_CloudTrail_us-east-1_20240520T0005Z_x.json.gz"),
        &[update("far-file", "2024-05-03T00:00:00Z", USER)],
    );
    write_trail(
        root,
        "AWSLogs/o-a1b2c3d4e5/444455556666/CloudTrail/eu-west-2/2024/05/05/444455556666_CloudTrail_eu-west-2_20240505T0900Z_x.json.gz",
        &[{
            let mut org = update("org-trail", "2024-05-05T08:00:00Z", USER);
            org["awsRegion"] = json!("eu-west-2");
            org["recipientAccountId"] = json!("444455556666");
            org
        }],
    );
    let digest = root.join(
        "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2024/05/02/a_CloudTrail-Digest_us-east-1_x_20240502T010000Z.json.gz",
    );
    fs::create_dir_all(digest.parent().unwrap()).unwrap();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(br#"{"awsAccountId":"111122223333","digestStartTime":"2024-05-02T00:00:00Z","logFiles":[]}"#)
        .unwrap();
    fs::write(digest, enc.finish().unwrap()).unwrap();
    dir
}

#[test]
fn window_edges_layouts_digest_duplicates_and_trail_names() {
    let dir = edge_trail();
    let mut directory = Directory::new();
    directory.insert_snapshot(TargetKind::User, USER, "alice");
    directory.insert_snapshot(TargetKind::User, ADMIN, "admin");
    let (records, summary) = scan_with(dir.path(), directory, 2);
    let got = ids(&records);
    let set: BTreeSet<&str> = got.iter().copied().collect();
    assert_eq!(
        set,
        BTreeSet::from([
            "at-since",
            "about-newbie",
            "dup",
            "create-newbie",
            "delivered-next-day",
            "org-trail"
        ]),
        "{got:?}"
    );
    assert_eq!(got.len(), set.len(), "each event once: {got:?}");
    assert_eq!(summary.duplicates, 1);
    assert_eq!(summary.files_pruned, 1, "the file dated 2024/05/20");
    assert_eq!(
        summary.files_found, 8,
        "the digest file is not a trail file"
    );
    assert_eq!(
        summary.files_ignored, 0,
        "a digest file is not ignored: skipped"
    );
    assert!(summary.bad.is_empty(), "{:#?}", summary.bad);
    let by_id = |id: &str| records.iter().find(|r| r.event_id == id).unwrap();
    let newbie = by_id("about-newbie");
    assert_eq!(newbie.target_name.as_deref(), Some("newbie"));
    assert_eq!(newbie.name_source, NameSource::Trail);
    assert_eq!(newbie.actor_name.as_deref(), Some("admin"));
    let create = by_id("create-newbie");
    assert_eq!(create.target_id.as_deref(), Some(NEWBIE));
    assert!(
        !create
            .request_parameters
            .as_deref()
            .unwrap()
            .contains("Password")
    );
    let org = by_id("org-trail");
    assert_eq!(
        (org.region.as_str(), org.account_id.as_str(), org.actor_kind),
        ("eu-west-2", "444455556666", ActorKind::ConnectUser)
    );
    assert_eq!(by_id("dup").name_source, NameSource::Snapshot);
    // Rows needing a name from a later file come last; the rest is in file, then time order.
    assert_eq!(got.last(), Some(&"about-newbie"), "{got:?}");
}

#[test]
fn thread_count_does_not_change_the_output() {
    let dir = edge_trail();
    let (one, _) = scan_with(dir.path(), Directory::new(), 1);
    let (four, _) = scan_with(dir.path(), Directory::new(), 4);
    assert_eq!(one, four);
    let (bad_one, s1) = scan_with(&fixtures().join("bad-trail"), Directory::new(), 1);
    let (bad_four, s4) = scan_with(&fixtures().join("bad-trail"), Directory::new(), 4);
    assert_eq!(bad_one, bad_four);
    assert_eq!(s1, s4);
}

#[test]
fn unnamed_ids_are_marked_unresolved() {
    let dir = edge_trail();
    let (records, summary) = scan_with(dir.path(), Directory::new(), 2);
    let at_since = records.iter().find(|r| r.event_id == "at-since").unwrap();
    assert_eq!(at_since.name_source, NameSource::Unresolved);
    assert_eq!(at_since.target_name, None);
    assert!(summary.names_unresolved >= 4, "{summary:?}");
}

#[test]
fn missing_trail_is_an_error_naming_it() {
    let options = ScanOptions::new(window(), EventSelection::defaults());
    let scanner = TrailScanner::new(
        Store::local("/nonexistent/trail"),
        Directory::new(),
        options,
    );
    let err = scanner.scan(&mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/trail"), "{err}");
}
