//! S3 for real: the [`Store`] and the embedded engine against a Garage server
//! ([`connect_audit_tests::garage`]), compared with the same files read from disk. Nothing is
//! mocked at the S3 layer: requests are signed by the real `aws-sdk-s3` and checked by Garage.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use connect_audit_core::store::{load_directory, load_directory_blocking};
use connect_audit_core::{AuditRecord, Directory, EventSelection, Location, ObjectInfo, Store};
use connect_audit_query::local::{
    FETCH_BUDGET, FETCH_CONCURRENCY, ScanOptions, ScanSummary, TrailScanner,
};
use connect_audit_tests::garage::Garage;
use connect_audit_tests::s3_proxy::S3Proxy;
use serde_json::{Value, json};
use tokio::runtime::Runtime;

use super::helpers::{binary, embedded_rows, fixtures, row_key, window};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn examples() -> PathBuf {
    repo().join("examples")
}

/// Uploads `local` under a fresh prefix of the shared bucket; returns the S3 store there.
fn upload(rt: &Runtime, garage: &Garage, label: &str, local: &Path) -> Store {
    let prefix = garage.unique_prefix(label);
    let client = garage.client();
    rt.block_on(garage.upload_dir(&client, garage.bucket(), &prefix, local));
    Store::s3(client, garage.bucket(), prefix)
}

fn scan(rt: &Runtime, store: Store, directory: Directory) -> (Vec<AuditRecord>, ScanSummary) {
    let mut options = ScanOptions::new(window(), EventSelection::parse(&["all"]).unwrap());
    options.threads = 2;
    let scanner = TrailScanner::new(store, directory, options).with_runtime(rt.handle().clone());
    let mut records = Vec::new();
    let summary = scanner
        .scan(&mut records)
        .unwrap_or_else(|e| panic!("scan failed: {e}"));
    (records, summary)
}

fn jsonl(records: &[AuditRecord]) -> String {
    records
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect()
}

/// The counts of a summary, without the list of bad inputs (whose paths differ).
/// The summary without what names files by where they are: the bad input, and the folders
/// of the rows before the window (their file names stay).
fn counts(s: &ScanSummary) -> ScanSummary {
    let mut before_window = s.before_window.clone();
    for row in &mut before_window {
        row.path = row.path.file_name().unwrap().into();
    }
    // The tags differ by store (S3's ETag, a local file's size and time), the keys by root;
    // the file names do not.
    let objects = s
        .objects
        .iter()
        .map(|o| ObjectInfo {
            key: o.key.rsplit('/').next().unwrap().to_owned(),
            tag: None,
            ..o.clone()
        })
        .collect();
    ScanSummary {
        bad: Vec::new(),
        before_window,
        objects,
        ..s.clone()
    }
}

fn keys(objects: &[ObjectInfo]) -> Vec<&str> {
    objects.iter().map(|o| o.key.as_str()).collect()
}

#[test]
fn store_round_trip_on_garage() {
    let garage = Garage::shared();
    let rt = Runtime::new().unwrap();
    let prefix = garage.unique_prefix("store");
    let store = Store::s3(garage.client(), garage.bucket(), format!("/{prefix}/"));
    assert_eq!(
        store.describe("users/a.json"),
        format!("s3://{}/{prefix}/users/a.json", garage.bucket())
    );
    assert_eq!(
        store.describe(""),
        format!("s3://{}/{prefix}", garage.bucket())
    );
    rt.block_on(async {
        assert_eq!(store.get("users/a.json").await.unwrap(), None);
        assert_eq!(store.list("").await.unwrap(), []);
        assert!(!store.has_objects("").await.unwrap());
        store
            .put("users/a.json", b"{\"a\":1}".to_vec())
            .await
            .unwrap();
        store.put("users/b.json", b"BB".to_vec()).await.unwrap();
        store.put("users/sub/c.json", Vec::new()).await.unwrap();
        store.put("runs/r.json", b"R".to_vec()).await.unwrap();
        store.put("users/a.json", b"A2".to_vec()).await.unwrap();
        assert_eq!(
            store.get("users/a.json").await.unwrap(),
            Some(b"A2".to_vec())
        );
        assert_eq!(store.get("users/sub/c.json").await.unwrap(), Some(vec![]));
        let users = store.list("users/").await.unwrap();
        assert_eq!(
            keys(&users),
            ["users/a.json", "users/b.json", "users/sub/c.json"]
        );
        assert_eq!(users.iter().map(|o| o.size).collect::<Vec<_>>(), [2, 2, 0]);
        assert_eq!(
            keys(&store.list("users/b").await.unwrap()),
            ["users/b.json"]
        );
        assert_eq!(store.list("").await.unwrap().len(), 4);
        assert!(store.has_objects("runs/").await.unwrap());
        assert_eq!(store.list_dirs("").await.unwrap(), ["runs/", "users/"]);
        assert_eq!(store.list_dirs("users/").await.unwrap(), ["users/sub/"]);
        assert_eq!(
            store.list_dirs("nothing/").await.unwrap(),
            Vec::<String>::new()
        );

        // A sibling prefix sharing the first letters is not part of this store.
        let sibling = Store::s3(garage.client(), garage.bucket(), format!("{prefix}x"));
        sibling.put("users/z.json", b"Z".to_vec()).await.unwrap();
        assert_eq!(store.list("").await.unwrap().len(), 4);

        for bad in [
            "../x.json",
            "/abs.json",
            "users/../../x",
            "a\\b",
            "a\0b",
            "",
        ] {
            let err = store.put(bad, Vec::new()).await.unwrap_err();
            assert!(err.to_string().contains("not a valid object key"), "{err}");
            assert!(store.get(bad).await.is_err(), "{bad:?}");
        }
        assert!(store.list("../").await.is_err());
        assert_eq!(
            store.list("").await.unwrap().len(),
            4,
            "nothing bad was written"
        );

        let missing = Store::s3(garage.client(), "no-such-bucket-here", "p");
        let err = missing.get("users/a.json").await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("s3://no-such-bucket-here/p/users/a.json: S3 GetObject failed"),
            "{text}"
        );
        assert!(text.contains("NoSuchBucket"), "{text}");
        assert!(
            std::error::Error::source(&err).is_some(),
            "the SDK error is kept"
        );
        let err = missing.list("users/").await.unwrap_err();
        assert!(
            err.to_string()
                .starts_with("s3://no-such-bucket-here/p/users/: S3 ListObjectsV2 failed"),
            "{err}"
        );
    });

    // Wrong credentials: Garage checks the signature.
    let rt2 = Runtime::new().unwrap();
    let config = garage.client().config().to_builder().credentials_provider(
        aws_sdk_s3::config::Credentials::new(garage.access_key(), "wrong", None, None, "t"),
    );
    let forged = Store::s3(
        aws_sdk_s3::Client::from_conf(config.build()),
        garage.bucket(),
        &prefix,
    );
    let err = rt2.block_on(forged.get("users/a.json")).unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("s3://{}/{prefix}/users/a.json", garage.bucket()))
    );
}

#[test]
fn s3_trail_scan_equals_local_scan_of_the_same_files() {
    let garage = Garage::shared();
    let rt = Runtime::new().unwrap();
    let snapshot = load_directory_blocking(&Store::local(examples().join("snapshot"))).unwrap();
    let (local, local_summary) = scan(
        &rt,
        Store::local(examples().join("trail")),
        snapshot.clone(),
    );
    assert!(local.len() > 10, "the examples have audited events");

    // Root above AWSLogs/ (a key prefix of the trail).
    let store = upload(&rt, garage, "trail", &examples().join("trail"));
    let (records, summary) = scan(&rt, store.clone(), snapshot.clone());
    assert_eq!(jsonl(&records), jsonl(&local), "same records, same order");
    assert_eq!(counts(&summary), counts(&local_summary));
    assert!(summary.bad.is_empty(), "{:?}", summary.bad);

    // Root at AWSLogs itself.
    let Location::S3 { prefix, .. } = store.location() else {
        unreachable!("an S3 store")
    };
    let at_awslogs = Store::s3(
        garage.client(),
        garage.bucket(),
        format!("{prefix}/AWSLogs"),
    );
    let (records, summary) = scan(&rt, at_awslogs, snapshot.clone());
    assert_eq!(jsonl(&records), jsonl(&local));
    assert_eq!(counts(&summary), counts(&local_summary));

    // Root at the bucket's root.
    let bucket = format!("trail-root-{}", std::process::id());
    let client = garage.client();
    rt.block_on(async {
        garage.create_bucket(&client, &bucket).await;
        garage
            .upload_dir(&client, &bucket, "", &examples().join("trail"))
            .await;
    });
    let (records, summary) = scan(&rt, Store::s3(client, &bucket, ""), snapshot.clone());
    assert_eq!(jsonl(&records), jsonl(&local));
    assert_eq!(counts(&summary), counts(&local_summary));

    // One account's region, below AWSLogs: fewer files, the same rows for that region.
    let account = connect_audit_tests::ids::ACCOUNT_TOKYO;
    let region = connect_audit_tests::ids::REGION_TOKYO;
    let below = format!("AWSLogs/{account}/CloudTrail/{region}");
    let (records, _) = scan(
        &rt,
        Store::s3(garage.client(), &bucket, &below),
        snapshot.clone(),
    );
    let (local_below, _) = scan(
        &rt,
        Store::local(examples().join("trail").join(&below)),
        snapshot,
    );
    assert!(!records.is_empty());
    assert_eq!(jsonl(&records), jsonl(&local_below));
}

#[test]
fn s3_scan_on_a_private_runtime_gives_the_same_records() {
    let garage = Garage::shared();
    let rt = Runtime::new().unwrap();
    let store = upload(&rt, garage, "private-rt", &examples().join("trail"));
    drop(rt);
    // A fresh client whose connections all live in the scanner's own runtime.
    let location = store.location();
    let store = Store::open(&location, Some(&garage.client())).unwrap();
    let options = ScanOptions::new(window(), EventSelection::defaults());
    let mut records = Vec::new();
    TrailScanner::new(store, Directory::new(), options)
        .scan(&mut records)
        .unwrap();
    let mut local = Vec::new();
    TrailScanner::new(
        Store::local(examples().join("trail")),
        Directory::new(),
        ScanOptions::new(window(), EventSelection::defaults()),
    )
    .scan(&mut local)
    .unwrap();
    assert_eq!(jsonl(&records), jsonl(&local));
}

fn gz(value: &Value) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(value.to_string().as_bytes()).unwrap();
    enc.finish().unwrap()
}

fn delete_user(id: &str, time: &str) -> Value {
    json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDA1", "userName": "ops",
                         "arn": "arn:aws:iam::111122223333:user/ops", "accountId": "111122223333"},
        "eventTime": time, "eventSource": "connect.amazonaws.com", "eventName": "DeleteUser",
        "awsRegion": "us-east-1", "sourceIPAddress": "192.0.2.1", "userAgent": "aws-cli",
        "requestParameters": {"InstanceId": "11111111-2222-3333-4444-555555555555",
                              "UserId": "66666666-7777-8888-9999-000000000000"},
        "responseElements": null, "eventID": id, "eventType": "AwsApiCall",
        "recipientAccountId": "111122223333"
    })
}

#[test]
fn date_prefixes_outside_the_window_are_never_listed_or_fetched() {
    let garage = Garage::shared();
    let rt = Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let region = "AWSLogs/111122223333/CloudTrail/us-east-1";
    let file = |date: &str, name: &str, body: &[u8]| {
        let path = dir.path().join(format!("{region}/{date}/{name}"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    };
    let inside = gz(&json!({"Records": [delete_user("in-window", "2024-05-02T10:00:00Z")]}));
    file(
        "2024/05/02",
        "111122223333_CloudTrail_us-east-1_20240502T1000Z_a.json.gz",
        &inside,
    );
    // In the slack day before the window: listed and read, its event outside the window.
    let slack = gz(&json!({"Records": [delete_user("slack", "2024-04-30T23:00:00Z")]}));
    file(
        "2024/04/30",
        "111122223333_CloudTrail_us-east-1_20240430T2300Z_s.json.gz",
        &slack,
    );
    // Far outside: if these were fetched, the bad one would be reported and the good one
    // would count as read.
    let old = gz(&json!({"Records": [delete_user("old", "2019-05-02T10:00:00Z")]}));
    file(
        "2019/05/02",
        "111122223333_CloudTrail_us-east-1_20190502T1000Z_o.json.gz",
        &old,
    );
    file(
        "2019/05/03",
        "111122223333_CloudTrail_us-east-1_20190503T1000Z_bad.json.gz",
        b"not gzip",
    );
    file(
        "2024/06/20",
        "111122223333_CloudTrail_us-east-1_20240620T1000Z_bad.json.gz",
        b"not gzip",
    );

    let store = upload(&rt, garage, "pruning", dir.path());
    let (records, summary) = scan(&rt, store, Directory::new());
    let ids: Vec<_> = records.iter().map(|r| r.event_id.as_str()).collect();
    assert_eq!(ids, ["in-window"]);
    assert!(summary.bad.is_empty(), "{:?}", summary.bad);
    assert_eq!(
        summary.files_found, 2,
        "only the window's date prefixes are listed"
    );
    assert_eq!(summary.files_pruned, 0);
    assert_eq!(summary.files_read, 2);

    // The local walk sees every file and prunes by date; what is read is the same.
    let (local, local_summary) = scan(&rt, Store::local(dir.path()), Directory::new());
    assert_eq!(jsonl(&local), jsonl(&records));
    assert_eq!(local_summary.files_found, 5);
    assert_eq!(local_summary.files_pruned, 3);
    assert_eq!(local_summary.files_read, summary.files_read);
    assert_eq!(local_summary.bytes_read, summary.bytes_read);
}

#[test]
fn bad_s3_objects_are_reported_by_url_and_the_rest_is_scanned() {
    let garage = Garage::shared();
    let rt = Runtime::new().unwrap();
    let local_root = fixtures().join("bad-trail");
    let (local, local_summary) = scan(&rt, Store::local(&local_root), Directory::new());
    let store = upload(&rt, garage, "bad-trail", &local_root);
    let (records, summary) = scan(&rt, store.clone(), Directory::new());
    assert_eq!(jsonl(&records), jsonl(&local));
    // The fixture's README.md sits beside AWSLogs/: the local walk sees it and ignores it, S3
    // never lists there.
    assert_eq!((local_summary.files_ignored, summary.files_ignored), (1, 0));
    let seen_alike = |s: &ScanSummary| ScanSummary {
        files_ignored: 0,
        ..counts(s)
    };
    assert_eq!(seen_alike(&summary), seen_alike(&local_summary));
    assert_eq!(summary.files_bad, 6);
    assert_eq!(summary.bad.len(), local_summary.bad.len());
    let root = store.describe("");
    for (s3, disk) in summary.bad.iter().zip(&local_summary.bad) {
        let url = s3.path.to_string_lossy();
        let relative = disk.path.strip_prefix(&local_root).unwrap();
        assert_eq!(url, format!("{root}/{}", relative.display()), "{s3}");
        assert_eq!(
            (&s3.reason, s3.record, &s3.event_id),
            (&disk.reason, disk.record, &disk.event_id)
        );
        assert!(
            s3.to_string()
                .starts_with(&format!("s3://{}/", garage.bucket())),
            "{s3}"
        );
    }
}

#[test]
fn an_empty_or_missing_s3_trail_is_an_error_naming_it() {
    let garage = Garage::shared();
    let rt = Runtime::new().unwrap();
    for store in [
        Store::s3(
            garage.client(),
            garage.bucket(),
            garage.unique_prefix("nothing-here"),
        ),
        Store::s3(garage.client(), "no-such-trail-bucket", "AWSLogs"),
    ] {
        let name = store.describe("");
        let scanner = TrailScanner::new(
            store,
            Directory::new(),
            ScanOptions::new(window(), EventSelection::defaults()),
        )
        .with_runtime(rt.handle().clone());
        let err = scanner.scan(&mut Vec::new()).unwrap_err();
        let mut text = err.to_string();
        let mut cause = std::error::Error::source(&err);
        while let Some(c) = cause {
            text = format!("{text}: {c}");
            cause = c.source();
        }
        assert!(text.contains(&name), "{text}");
    }
}

#[test]
fn snapshot_store_loads_the_same_from_s3() {
    let garage = Garage::shared();
    let rt = Runtime::new().unwrap();
    let local_root = examples().join("snapshot");
    let local = load_directory_blocking(&Store::local(&local_root)).unwrap();
    let store = upload(&rt, garage, "snapshot", &local_root);
    let remote = rt.block_on(load_directory(&store)).unwrap();
    assert_eq!(remote.snapshot_len(), local.snapshot_len());
    let mut ids = 0;
    for folder in [
        "users",
        "security-profiles",
        "routing-profiles",
        "hierarchy-groups",
    ] {
        for entry in std::fs::read_dir(local_root.join(folder)).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let id = name.strip_suffix(".json").unwrap();
            assert_eq!(remote.lookup(id), local.lookup(id), "{folder}/{name}");
            assert!(remote.lookup(id).is_some());
            ids += 1;
        }
    }
    assert_eq!(ids, local.snapshot_len());

    // A bad object is an error naming it by URL.
    rt.block_on(store.put("users/x.json", b"{not json".to_vec()))
        .unwrap();
    let err = rt.block_on(load_directory(&store)).unwrap_err();
    assert!(
        err.to_string().contains(&store.describe("users/x.json")),
        "{err}"
    );
}

fn report(trail: &str, snapshot: &str, env: &[(&'static str, String)]) -> Output {
    let (since, until) = connect_audit_tests::WINDOW;
    let mut command = Command::new(binary());
    command
        .args(["report", "--trail", trail, "--snapshot", snapshot])
        .args(["--since", since, "--until", until, "--format", "jsonl"])
        .current_dir(repo())
        .env_remove("CONNECT_AUDIT_CONFIG")
        .env_remove("RUST_LOG")
        .env_remove("AWS_PROFILE");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

/// The summary lines that must agree between a local and an S3 run.
fn summary_counts(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.trim_start().starts_with("files:") || l.trim_start().starts_with("records:"))
        .collect()
}

#[test]
fn report_command_reads_trail_and_snapshot_from_s3() {
    let garage = Garage::shared();
    let rt = Runtime::new().unwrap();
    let prefix = garage.unique_prefix("cli");
    let client = garage.client();
    rt.block_on(async {
        garage
            .upload_dir(
                &client,
                garage.bucket(),
                &format!("{prefix}/trail"),
                &examples().join("trail"),
            )
            .await;
        garage
            .upload_dir(
                &client,
                garage.bucket(),
                &format!("{prefix}/snap"),
                &examples().join("snapshot"),
            )
            .await;
    });
    let local = report("examples/trail", "examples/snapshot", &[]);
    let local_err = String::from_utf8_lossy(&local.stderr);
    assert_eq!(local.status.code(), Some(0), "{local_err}");
    let bucket = garage.bucket();
    let s3 = report(
        &format!("s3://{bucket}/{prefix}/trail"),
        &format!("s3://{bucket}/{prefix}/snap"),
        &garage.aws_env(),
    );
    let s3_err = String::from_utf8_lossy(&s3.stderr);
    assert_eq!(s3.status.code(), Some(0), "{s3_err}");
    assert!(!local.stdout.is_empty());
    assert!(
        local.stdout == s3.stdout,
        "the S3 run printed other records than the local run"
    );
    assert_eq!(
        summary_counts(&s3_err),
        summary_counts(&local_err),
        "{s3_err}"
    );
    assert_eq!(summary_counts(&s3_err).len(), 2, "{s3_err}");
    assert!(
        s3_err.contains(&format!("s3://{bucket}/{prefix}/trail")),
        "{s3_err}"
    );

    // A trail bucket that does not exist fails the run, naming it.
    let missing = report(
        "s3://no-such-bucket-for-cli/AWSLogs",
        &format!("s3://{bucket}/{prefix}/snap"),
        &garage.aws_env(),
    );
    let err = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(missing.status.code(), Some(1), "{err}");
    assert!(err.contains("s3://no-such-bucket-for-cli/AWSLogs"), "{err}");
}

/// Files that are not CloudTrail's under an S3 trail are ignored and counted as on disk, never
/// bad input. With `AWSLogs/` at the root only the layout is listed: what sits beside it (a
/// manifest, a CSV, a snapshot store) is never listed, so not counted, while a note in a listed
/// date prefix is; a root without `AWSLogs/` is listed whole, and every such file counts, as
/// on disk. `-v` lists each by URL.
#[test]
fn s3_files_that_are_not_cloudtrail_logs_are_ignored_and_counted() {
    let garage = Garage::shared();
    let rt = Runtime::new().unwrap();
    let good = gz(&json!({"Records": [delete_user("good", "2024-05-02T10:00:00Z")]}));
    let log = "111122223333_CloudTrail_us-east-1_20240502T1000Z_Mu0KsOhtH1ar15ZZ.json.gz";
    let write = |path: PathBuf, body: &[u8]| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    };
    let beside = |root: &Path| {
        write(root.join("manifest.json"), br#"{"files": ["a"]}"#);
        write(root.join("users.csv"), b"Id,Username\n1,alice\n");
        write(
            root.join("snapshot/users/66666666-7777-8888-9999-000000000000.json"),
            br#"{"Id": "66666666-7777-8888-9999-000000000000", "Username": "alice"}"#,
        );
    };
    let layout = tempfile::tempdir().unwrap();
    let day = layout
        .path()
        .join("AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/02");
    write(day.join(log), &good);
    write(day.join("notes.txt"), b"delivered late");
    beside(layout.path());
    let flat = tempfile::tempdir().unwrap();
    write(flat.path().join(log), &good);
    beside(flat.path());

    let client = garage.client();
    let bucket = garage.bucket();
    for (dir, on_disk, on_s3) in [(&layout, 4, 1), (&flat, 3, 3)] {
        let prefix = garage.unique_prefix("not-logs");
        rt.block_on(garage.upload_dir(&client, bucket, &prefix, dir.path()));
        let url = format!("s3://{bucket}/{prefix}");
        let run = |trail: &str, env: &[(&'static str, String)]| {
            let mut command = Command::new(binary());
            command
                .args(["-v", "report", "--trail", trail])
                .args(["--since", "2024-05-01", "--until", "2024-05-08"])
                .args(["--format", "jsonl"])
                .env_remove("CONNECT_AUDIT_CONFIG")
                .env_remove("RUST_LOG")
                .env_remove("AWS_PROFILE");
            for (name, value) in env {
                command.env(name, value);
            }
            command.output().unwrap()
        };
        let local = run(dir.path().to_str().unwrap(), &[]);
        let s3 = run(&url, &garage.aws_env());
        for (out, ignored, named) in [
            (&local, on_disk, dir.path().display().to_string()),
            (&s3, on_s3, url.clone()),
        ] {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(0), "{stderr}");
            assert!(!stderr.contains("warning: skipped"), "{stderr}");
            assert!(
                stderr.contains(&format!(
                    "  ignored: {ignored} files that are not CloudTrail logs"
                )),
                "{stderr}"
            );
            let listed: Vec<&str> = stderr
                .lines()
                .filter(|l| l.contains("Ignored a file that is not a CloudTrail log."))
                .collect();
            assert_eq!(listed.len(), ignored, "{stderr}");
            assert!(listed.iter().all(|l| l.contains(&named)), "{stderr}");
            assert!(
                listed.iter().any(|l| l.contains(if ignored == 1 {
                    "/2024/05/02/notes.txt"
                } else {
                    "/users.csv"
                })),
                "{stderr}"
            );
        }
        let rows = String::from_utf8_lossy(&local.stdout).into_owned();
        assert!(rows.contains(r#""event_id":"good""#), "{rows}");
        assert_eq!(rows, String::from_utf8_lossy(&s3.stdout), "same rows");
    }
}

/// Every object under `prefix` of the shared bucket, by key relative to it.
fn objects(rt: &Runtime, garage: &Garage, prefix: &str) -> Vec<(String, Vec<u8>)> {
    let store = Store::s3(garage.client(), garage.bucket(), prefix);
    rt.block_on(async {
        let mut out = Vec::new();
        for info in store.list("").await.unwrap() {
            let body = store.get(&info.key).await.unwrap().unwrap();
            out.push((info.key, body));
        }
        out.sort();
        out
    })
}

#[test]
fn s3_outputs_land_in_garage_named_by_the_run_and_a_rerun_replaces_them() {
    let garage = Garage::shared();
    let rt = Runtime::new().unwrap();
    let prefix = garage.unique_prefix("outputs");
    let bucket = garage.bucket();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("connect-audit.toml");
    std::fs::write(
        &config,
        format!(
            r#"
            [report]
            trail = "{trail}"
            snapshot = "{snapshot}"
            since = "2024-05-01"
            until = "2024-05-09"
            [[exporters]]
            type = "jsonl"
            path = "s3://{bucket}/{prefix}/jsonl/audit-{{since}}-{{until}}.jsonl"
            [[exporters]]
            type = "csv"
            path = "s3://{bucket}/{prefix}/csv/audit-{{since}}.csv"
            [[exporters]]
            type = "parquet"
            path = "s3://{bucket}/{prefix}/lake/"
            partition_by_date = true
            [[exporters]]
            type = "html"
            path = "s3://{bucket}/{prefix}/html/audit-{{since}}.html"
            [[exporters]]
            type = "jsonl"
            path = "local.jsonl"
            "#,
            trail = examples().join("trail").display(),
            snapshot = examples().join("snapshot").display(),
        ),
    )
    .unwrap();
    let run = || {
        Command::new(binary())
            .args(["report", "--config", config.to_str().unwrap()])
            .current_dir(dir.path())
            .envs(garage.aws_env())
            .env_remove("CONNECT_AUDIT_CONFIG")
            .output()
            .unwrap()
    };
    let out = run();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let first = objects(&rt, garage, &prefix);
    let keys: Vec<&str> = first.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        keys.contains(&"jsonl/audit-20240501T000000Z-20240509T000000Z.jsonl")
            && keys.contains(&"csv/audit-20240501T000000Z.csv")
            && keys.contains(&"html/audit-20240501T000000Z.html"),
        "{keys:?}"
    );
    let partitions = keys
        .iter()
        .filter(|k| k.starts_with("lake/date=2024-05-") && k.ends_with(".parquet"))
        .count();
    assert!(partitions >= 5, "{keys:?}");
    assert_eq!(
        keys.len(),
        3 + partitions,
        "nothing else: no temporary objects"
    );
    for (key, _) in &first {
        assert!(
            err.contains(&format!("s3://{bucket}/{prefix}/{key}")),
            "{err}"
        );
    }
    // The object holds what the local file of the same run holds.
    let local = std::fs::read(dir.path().join("local.jsonl")).unwrap();
    let remote = &first
        .iter()
        .find(|(k, _)| k.starts_with("jsonl/"))
        .unwrap()
        .1;
    assert_eq!(remote, &local);
    let html = &first
        .iter()
        .find(|(k, _)| k.starts_with("html/"))
        .unwrap()
        .1;
    let html = String::from_utf8(html.clone()).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.ends_with("</html>\n"));
    assert_eq!(
        embedded_rows(&html).len(),
        local
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count(),
        "the report holds every record of the run"
    );

    // The same run again replaces its objects: same keys, same bodies, no copies.
    let out = run();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = objects(&rt, garage, &prefix);
    assert_eq!(
        again.iter().map(|(k, _)| k).collect::<Vec<_>>(),
        first.iter().map(|(k, _)| k).collect::<Vec<_>>()
    );
    let csv = |o: &[(String, Vec<u8>)]| {
        o.iter()
            .find(|(k, _)| k.starts_with("csv/"))
            .unwrap()
            .1
            .clone()
    };
    assert_eq!(csv(&again), csv(&first));
}

#[test]
fn large_files_are_uploaded_in_parts_and_arrive_whole() {
    let garage = Garage::shared();
    let rt = Runtime::new().unwrap();
    let prefix = garage.unique_prefix("multipart");
    let store = Store::s3(garage.client(), garage.bucket(), &prefix);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.bin");
    // 12 MiB + 3 bytes of a pattern that shows misplaced parts: three parts of 5 MiB.
    let body: Vec<u8> = (0..12 * 1024 * 1024 + 3_u32)
        .map(|i| u8::try_from((i / 4096) % 251).unwrap())
        .collect();
    std::fs::write(&file, &body).unwrap();
    let size = rt
        .block_on(store.put_file_in_parts("runs/big.bin", &file, 5 * 1024 * 1024))
        .unwrap();
    assert_eq!(size, body.len() as u64);
    let back = rt.block_on(store.get("runs/big.bin")).unwrap().unwrap();
    assert!(back == body, "the object is the file, byte for byte");
    // A small file is one PutObject and arrives the same.
    std::fs::write(&file, b"small").unwrap();
    rt.block_on(store.put_file("runs/small.bin", &file))
        .unwrap();
    assert_eq!(
        rt.block_on(store.get("runs/small.bin")).unwrap().as_deref(),
        Some(&b"small"[..])
    );
    // A missing file fails naming it, and leaves no object.
    let missing = dir.path().join("missing.bin");
    let err = rt
        .block_on(store.put_file("runs/missing.bin", &missing))
        .unwrap_err();
    assert!(err.to_string().contains("missing.bin"), "{err}");
    assert_eq!(rt.block_on(store.get("runs/missing.bin")).unwrap(), None);
}

#[test]
fn incremental_state_on_s3_advances_and_the_next_run_continues_from_it() {
    let garage = Garage::shared();
    let rt = Runtime::new().unwrap();
    let prefix = garage.unique_prefix("state");
    let bucket = garage.bucket();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("connect-audit.toml");
    std::fs::write(
        &config,
        format!(
            r#"
            [report]
            trail = "{trail}"
            since = "2024-05-01"
            [incremental]
            state = "s3://{bucket}/{prefix}/teams/blue.json"
            lookback = "1d"
            [[exporters]]
            type = "jsonl"
            path = "s3://{bucket}/{prefix}/out/audit-{{since}}.jsonl"
            "#,
            trail = examples().join("trail").display(),
        ),
    )
    .unwrap();
    let run = |until: &str| {
        Command::new(binary())
            .args(["report", "--config", config.to_str().unwrap()])
            .args(["--incremental", "--until", until])
            .current_dir(dir.path())
            .envs(garage.aws_env())
            .env_remove("CONNECT_AUDIT_CONFIG")
            .output()
            .unwrap()
    };
    let first = run("2024-05-04T00:00:00Z");
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let second = run("2024-05-10T00:00:00Z");
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!("s3://{bucket}/{prefix}/teams/blue.json advanced")),
        "{err}"
    );

    let objects = objects(&rt, garage, &prefix);
    let state: Value = serde_json::from_slice(
        &objects
            .iter()
            .find(|(k, _)| k == "teams/blue.json")
            .unwrap()
            .1,
    )
    .unwrap();
    assert_eq!(state["runs"], 2);
    assert_eq!(state["watermark"], "2024-05-10T00:00:00Z");
    let outputs: Vec<&(String, Vec<u8>)> = objects
        .iter()
        .filter(|(k, _)| k.starts_with("out/"))
        .collect();
    assert_eq!(outputs.len(), 2, "one object per run");
    let mut ids: Vec<String> = outputs
        .iter()
        .flat_map(|(_, body)| {
            String::from_utf8(body.clone())
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .map(|line| row_key(&serde_json::from_str::<Value>(&line).unwrap()))
        .collect();
    let total = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), total, "no event in two objects");
    assert!(total > 15);
}

/// Objects are fetched at most `FETCH_CONCURRENCY` at a time, and never more than the fetch
/// budget's bytes at once. The proxy holds every GET, so the requests in flight can be counted
/// exactly; then it lets them go, and every file is read.
#[test]
fn s3_fetches_are_bounded_in_number_and_in_bytes() {
    const FILES: usize = 100;
    const SIZE: usize = 1000;
    let garage = Garage::shared();
    let rt = Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let day = dir
        .path()
        .join("AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/02");
    std::fs::create_dir_all(&day).unwrap();
    let (head, tail) = (r#"{"Records":[],"pad":""#, r#""}"#);
    let text = format!("{head}{}{tail}", "x".repeat(SIZE - head.len() - tail.len()));
    for i in 0..FILES {
        let name = format!("111122223333_CloudTrail_us-east-1_20240502T0000Z_{i:03}.json");
        std::fs::write(day.join(name), &text).unwrap();
    }
    let Location::S3 { prefix, .. } = upload(&rt, garage, "bounded", dir.path()).location() else {
        unreachable!("an S3 store")
    };
    let proxy = S3Proxy::start(garage.endpoint());
    let store = Store::s3(garage.client_via(proxy.endpoint()), garage.bucket(), prefix);
    let scan_with_budget = |budget: u32, in_flight: u64| {
        proxy.hold_after(|r| r.operation() == "GetObject", 0);
        let (store, handle) = (store.clone(), rt.handle().clone());
        let scan = std::thread::spawn(move || {
            let mut options = ScanOptions::new(window(), EventSelection::defaults());
            options.fetch_budget = budget;
            TrailScanner::new(store, Directory::new(), options)
                .with_runtime(handle)
                .scan(&mut Vec::new())
        });
        proxy.wait_until_held(in_flight);
        // Time for a request past the bound to show up, if one were sent.
        std::thread::sleep(std::time::Duration::from_millis(500));
        assert_eq!(proxy.held(), in_flight, "budget {budget}");
        proxy.release();
        let summary = scan.join().unwrap().unwrap();
        assert_eq!(summary.files_read, FILES as u64, "{summary:?}");
        assert!(!summary.has_bad_input(), "{summary:?}");
    };
    // The default budget (32 MiB) holds all 100: the number of requests is the bound.
    scan_with_budget(FETCH_BUDGET, FETCH_CONCURRENCY as u64);
    // Room for three objects and a half: three at a time.
    scan_with_budget(u32::try_from(3 * SIZE + SIZE / 2).unwrap(), 3);
}

#[test]
fn put_new_creates_an_object_once() {
    // Locally: the link that fails when the name exists. (Garage 2.5 ignores S3's
    // `If-None-Match: *`, so the S3 side of `put_new` is only seen creating objects here; on
    // Amazon S3 the 412 it answers is what `put_new` reads as "already there".)
    let garage = Garage::shared();
    let rt = Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::local(dir.path());
    rt.block_on(async {
        assert!(
            store
                .put_new("claims/a.json", b"first".to_vec())
                .await
                .unwrap()
        );
        assert!(
            !store
                .put_new("claims/a.json", b"second".to_vec())
                .await
                .unwrap()
        );
        assert_eq!(
            store.get("claims/a.json").await.unwrap().as_deref(),
            Some(&b"first"[..])
        );
        store.delete("claims/a.json").await.unwrap();
        store.delete("claims/a.json").await.unwrap();
        assert_eq!(store.get("claims/a.json").await.unwrap(), None);
        assert!(
            store
                .put_new("claims/a.json", b"third".to_vec())
                .await
                .unwrap()
        );
        assert_eq!(
            store.list("claims/").await.unwrap().len(),
            1,
            "no temporary file is left behind"
        );
        let s3 = Store::s3(
            garage.client(),
            garage.bucket(),
            garage.unique_prefix("put-new"),
        );
        assert!(
            s3.put_new("claims/a.json", b"first".to_vec())
                .await
                .unwrap()
        );
        s3.delete("claims/a.json").await.unwrap();
        assert_eq!(s3.get("claims/a.json").await.unwrap(), None);
    });
}
