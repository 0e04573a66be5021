//! The snapshot: the real `aws-sdk-connect` client against the fake Connect server, writing
//! to a snapshot store. Every test runs twice: on a local directory store (`local::…`) and on
//! real S3, a prefix of the shared Garage bucket (`garage::…`).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;

use connect_audit_core::location::Store;
use connect_audit_core::store::load_directory;
use connect_audit_core::{AuditRecord, EventSelection, NameSource, TargetKind, Window};
use connect_audit_query::local::{ScanOptions, TrailScanner};
use connect_audit_snapshot::{
    Error, Instance, NoProgress, ResourceObject, RunLog, RunSummary, SnapshotOptions,
    SnapshotProgress, Snapshotter, UserObject,
};
use connect_audit_tests::fake_connect::{FakeConnect, FakeUser, Fault, Operation, ResourceKind};
use connect_audit_tests::garage::Garage;
use jiff::Timestamp;
use serde_json::{Value, json};

const INSTANCE: &str = "6762b34f-4e26-4a8e-a032-35a1e58e1b1c";
const OTHER_INSTANCE: &str = "6861072c-1e75-4a93-8661-abe05b1b90b4";
const ACCOUNT: &str = connect_audit_tests::fake_connect::DEFAULT_ACCOUNT;
const REGION: &str = connect_audit_tests::fake_connect::DEFAULT_REGION;

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn instance() -> Instance {
    Instance::parse(INSTANCE).unwrap()
}

fn snapshotter(fake: &FakeConnect, store: &Store, options: SnapshotOptions) -> Snapshotter {
    Snapshotter::new(fake.client(5), store.clone(), options)
}

async fn run(
    fake: &FakeConnect,
    store: &Store,
    options: SnapshotOptions,
    time: &str,
) -> RunSummary {
    snapshotter(fake, store, options)
        .run_at(at(time), &[instance()], &NoProgress)
        .await
        .unwrap()
}

fn describe() -> SnapshotOptions {
    SnapshotOptions {
        describe_users: true,
        ..SnapshotOptions::default()
    }
}

/// Every object under `prefix`, key → body.
async fn objects(store: &Store, prefix: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for o in store.list(prefix).await.unwrap() {
        let body = store.get(&o.key).await.unwrap().unwrap();
        out.push((o.key, body));
    }
    out
}

async fn user(store: &Store, id: &str) -> UserObject {
    let body = store
        .get(&format!("users/{id}.json"))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("users/{id}.json missing"));
    assert_one_line_object(&body);
    serde_json::from_slice(&body).unwrap()
}

async fn run_log(store: &Store, summary: &RunSummary) -> RunLog {
    let body = store.get(&summary.run_key).await.unwrap().unwrap();
    serde_json::from_slice(&body).unwrap()
}

/// One JSON object on one line (with a final newline), as the openx JsonSerDe reads it.
fn assert_one_line_object(body: &[u8]) {
    let text = std::str::from_utf8(body).unwrap();
    let line = text.strip_suffix('\n').unwrap_or(text);
    assert!(!line.contains('\n'), "more than one line: {text}");
    let value: Value = serde_json::from_str(line).unwrap();
    let object = value.as_object().expect("a JSON object");
    for key in ["Arn", "Id", "Username"] {
        assert!(
            object.get(key).is_some_and(Value::is_string),
            "{key} in {text}"
        );
    }
}

/// Where a test's store lives, and what can count the requests it gets.
struct Backend {
    store: Store,
    /// The S3 requests the store's client sent, for the S3 backend.
    s3: Option<S3Requests>,
    _dir: Option<tempfile::TempDir>,
}

impl Backend {
    fn local() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            store: Store::local(dir.path().join("snapshot")),
            s3: None,
            _dir: Some(dir),
        }
    }

    /// A fresh prefix of the shared Garage bucket, through a client that counts requests.
    fn garage() -> Self {
        let garage = tokio::task::block_in_place(Garage::shared);
        let requests = S3Requests::default();
        let config = garage
            .client()
            .config()
            .to_builder()
            .interceptor(requests.clone())
            .build();
        let client = aws_sdk_s3::Client::from_conf(config);
        Self {
            store: Store::s3(client, garage.bucket(), garage.unique_prefix("snapshot")),
            s3: Some(requests),
            _dir: None,
        }
    }
}

/// Counts the HTTP requests an S3 client sends, by method (`PUT`, `GET`, …), retries
/// included: what the server really saw.
#[derive(Debug, Clone, Default)]
struct S3Requests(Arc<Mutex<BTreeMap<String, u64>>>);

impl S3Requests {
    fn count(&self, method: &str) -> u64 {
        self.0.lock().unwrap().get(method).copied().unwrap_or(0)
    }

    fn reset(&self) {
        self.0.lock().unwrap().clear();
    }
}

impl Intercept for S3Requests {
    fn name(&self) -> &'static str {
        "S3Requests"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let method = context.request().method().to_owned();
        *self.0.lock().unwrap().entry(method).or_default() += 1;
        Ok(())
    }
}

/// How each local object file was last written (inode and modification time): an atomic
/// rewrite changes both, even with the same bytes.
#[cfg(unix)]
fn file_stamps(root: &std::path::Path) -> Vec<(String, u64, std::time::SystemTime)> {
    use std::os::unix::fs::MetadataExt as _;
    let mut out = Vec::new();
    for entry in fs::read_dir(root.join("users")).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        out.push((
            entry.file_name().to_string_lossy().into_owned(),
            meta.ino(),
            meta.modified().unwrap(),
        ));
    }
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------
// A tiny CloudTrail writer, for the report tests.

fn admin_event(event_id: &str, event_name: &str, admin: &str, request: Value) -> Value {
    json!({
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": format!("AROAEXAMPLEROLEID1234:{admin}"),
            "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/AWSServiceRoleForAmazonConnect_Ab12/{admin}"),
            "accountId": ACCOUNT,
            "invokedBy": "connect.amazonaws.com"
        },
        "eventTime": "2024-05-10T12:00:00Z",
        "eventSource": "connect.amazonaws.com",
        "eventName": event_name,
        "awsRegion": REGION,
        "sourceIPAddress": "connect.amazonaws.com",
        "userAgent": "connect.amazonaws.com",
        "requestParameters": request,
        "responseElements": null,
        "requestID": format!("req-{event_id}"),
        "eventID": event_id,
        "readOnly": false,
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management"
    })
}

/// Writes `records` as one trail file delivered on 2024-05-10 and scans the trail with the
/// Directory loaded from `store`.
async fn report(store: &Store, records: Vec<Value>) -> Vec<AuditRecord> {
    let trail = tempfile::tempdir().unwrap();
    let dir = trail
        .path()
        .join(format!("AWSLogs/{ACCOUNT}/CloudTrail/{REGION}/2024/05/10"));
    fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!(
        "{ACCOUNT}_CloudTrail_{REGION}_20240510T1205Z_snapshot.json.gz"
    ));
    let mut gz = flate2::write::GzEncoder::new(
        fs::File::create(&file).unwrap(),
        flate2::Compression::default(),
    );
    gz.write_all(json!({ "Records": records }).to_string().as_bytes())
        .unwrap();
    gz.finish().unwrap();

    let directory = load_directory(store).await.unwrap();
    let window = Window::parse(
        Some("2024-05-01"),
        Some("2024-06-01"),
        at("2024-06-01T00:00:00Z"),
    )
    .unwrap();
    let options = ScanOptions::new(window, EventSelection::defaults());
    let root = trail.path().to_owned();
    tokio::task::spawn_blocking(move || {
        let scanner = TrailScanner::new(Store::local(&root), directory, options);
        let mut records = Vec::new();
        let summary = scanner.scan(&mut records).unwrap();
        assert!(!summary.has_bad_input(), "{summary:#?}");
        records
    })
    .await
    .unwrap()
}

// ---------------------------------------------------------------------------------------
// The tests, each run on both backends (see the end of the file).

async fn snapshot_of_2500_users_over_3_pages_lands_2500_objects(backend: Backend) {
    let store = backend.store.clone();
    let fake = FakeConnect::start();
    let users = fake.add_instance(INSTANCE, 2_500);
    fake.set_page_cap(1_000);

    let summary = run(
        &fake,
        &store,
        SnapshotOptions::default(),
        "2024-05-09T00:00:00Z",
    )
    .await;

    assert_eq!(fake.requests(Operation::ListUsers), 3, "1000 + 1000 + 500");
    assert_eq!(
        fake.requests(Operation::DescribeUser),
        0,
        "describe_users is off"
    );
    assert_eq!(fake.unsigned_requests(), 0, "the SDK signs every request");
    let listed = store.list("users/").await.unwrap();
    assert_eq!(listed.len(), 2_500);
    let s = &summary.instances[0];
    assert_eq!(s.users.listed, 2_500);
    assert_eq!(s.users.added, 2_500);
    assert_eq!(s.connect_calls.list_users, 3);
    assert_eq!(
        summary.object_puts,
        2_500 + 9,
        "users and 3 + 3 + 3 resources"
    );
    assert_eq!(summary.run_log_puts, 1);
    assert_eq!(summary.run_key, "runs/20240509T000000Z.json");

    // Every object is one line with Arn, Id, Username; the fields ride along.
    let u = user(&store, &users[1_234].id).await;
    assert_eq!(u.username, "agent01234");
    assert_eq!(u.instance_id.as_deref(), Some(INSTANCE));
    assert_eq!(
        u.arn,
        format!(
            "arn:aws:connect:{REGION}:{ACCOUNT}:instance/{INSTANCE}/agent/{}",
            u.id
        )
    );
    assert_eq!(u.last_modified_time, Some(json!("2024-05-01T00:00:00Z")));
    assert_eq!(u.first_seen.as_deref(), Some("2024-05-09T00:00:00Z"));
    assert_eq!(u.last_seen.as_deref(), Some("2024-05-09T00:00:00Z"));
    assert!(!u.deleted);
    assert_eq!(
        u.email, None,
        "no DescribeUser fields without describe_users"
    );
    for (_, body) in objects(&store, "users/").await.iter().step_by(97) {
        assert_one_line_object(body);
    }

    // The report's loader reads the whole store.
    let directory = load_directory(&store).await.unwrap();
    assert_eq!(directory.snapshot_len(), 2_500 + 9);
    let (entry, source) = directory.lookup(&users[2_499].id).unwrap();
    assert_eq!(
        (entry.name.as_str(), source),
        ("agent02499", NameSource::Snapshot)
    );

    let log = run_log(&store, &summary).await;
    assert_eq!(log.instances[0].users.added.len(), 2_500);
    assert_eq!(log.instances[0].users_listed, 2_500);
    assert_eq!(log.object_puts, 2_509);
}

async fn unchanged_rerun_writes_no_objects(backend: Backend) {
    let store = backend.store.clone();
    let fake = FakeConnect::start();
    fake.add_instance(INSTANCE, 300);
    fake.set_page_cap(100);
    let first = run(&fake, &store, describe(), "2024-05-09T00:00:00Z").await;
    assert_eq!(first.object_puts, 300 + 9);
    assert_eq!((first.history_puts, first.index_puts), (1, 1));
    let before = objects(&store, "users/").await;
    #[cfg(unix)]
    let stamps = store.local_root().map(file_stamps);
    fake.reset_counters();
    if let Some(s3) = &backend.s3 {
        s3.reset();
    }

    let second = run(&fake, &store, describe(), "2024-05-10T00:00:00Z").await;
    if let Some(s3) = &backend.s3 {
        // Listings (five folders, one page each) and two objects, as S3 saw them.
        let gets = s3.count("GET");
        assert!(gets < 20, "objects are not read one by one: {gets} GETs");
    }

    assert_eq!(second.object_puts, 0, "{second:#?}");
    assert_eq!(
        (second.history_puts, second.index_puts),
        (0, 0),
        "{second:#?}"
    );
    assert_eq!(
        second.store_gets, 2,
        "the index and the last run log, not one GET per object: {second:#?}"
    );
    assert_eq!(second.instances[0].users.unchanged, 300);
    assert_eq!(second.instances[0].security_profiles.unchanged, 3);
    assert_eq!(second.run_log_puts, 1, "only the run log is written");
    assert_eq!(
        fake.requests(Operation::DescribeUser),
        0,
        "unchanged users are not described again"
    );
    assert_eq!(fake.requests(Operation::ListUsers), 3);
    assert_eq!(
        objects(&store, "users/").await,
        before,
        "not one byte changed"
    );
    // What the server saw, not what the snapshot says it did.
    if let Some(s3) = &backend.s3 {
        assert_eq!(s3.count("PUT"), 1, "S3 saw one PUT: the run log");
    }
    #[cfg(unix)]
    if let Some(root) = store.local_root() {
        assert_eq!(Some(file_stamps(root)), stamps, "no file rewritten");
    }
    let runs = store.list("runs/").await.unwrap();
    let keys: Vec<&str> = runs.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(
        keys,
        ["runs/20240509T000000Z.json", "runs/20240510T000000Z.json"]
    );
    let log = run_log(&store, &second).await;
    let users = &log.instances[0].users;
    assert!(users.added.is_empty() && users.changed.is_empty() && users.removed.is_empty());
    assert_eq!(users.unchanged, 300);

    // The same second twice is refused rather than overwriting the first run's log.
    let err = snapshotter(&fake, &store, describe())
        .run_at(at("2024-05-10T00:00:00Z"), &[instance()], &NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RunExists { .. }), "{err}");
}

async fn deleted_user_is_marked_and_still_named_by_a_report_after_deletion(backend: Backend) {
    let store = backend.store.clone();
    let fake = FakeConnect::start();
    let users = fake.add_instance(INSTANCE, 50);
    let (admin, victim) = (&users[0], &users[7]);
    run(&fake, &store, describe(), "2024-05-09T00:00:00Z").await;
    let before = user(&store, &victim.id).await;
    run(&fake, &store, describe(), "2024-05-09T12:00:00Z").await;

    // DeleteUser at 2024-05-10T12:00:00Z; the next snapshot runs a day later.
    assert!(fake.delete_user(INSTANCE, &victim.id));
    let summary = run(&fake, &store, describe(), "2024-05-11T00:00:00Z").await;

    let s = &summary.instances[0];
    assert_eq!(
        (s.users.listed, s.users.deleted, s.users.unchanged),
        (49, 1, 49)
    );
    assert_eq!(summary.object_puts, 1, "only the deleted user is rewritten");
    let gone = user(&store, &victim.id).await;
    assert!(gone.deleted);
    assert_eq!(gone.deleted_at.as_deref(), Some("2024-05-11T00:00:00Z"));
    assert_eq!(
        gone.last_seen.as_deref(),
        Some("2024-05-09T12:00:00Z"),
        "the last run that still listed it, from the run logs"
    );
    assert_eq!(gone.first_seen, before.first_seen);
    assert_eq!(gone.username, before.username, "last known fields kept");
    assert_eq!(gone.email, before.email);
    let log = run_log(&store, &summary).await;
    assert_eq!(log.instances[0].users.removed.len(), 1);
    assert_eq!(log.instances[0].users.removed[0].id, victim.id);
    assert_eq!(log.instances[0].users.removed[0].name, victim.username);

    // Another run leaves the deleted user alone: never deleted, never rewritten.
    let again = run(&fake, &store, describe(), "2024-05-12T00:00:00Z").await;
    assert_eq!(again.object_puts, 0);
    assert_eq!(user(&store, &victim.id).await, gone);

    // A report of the DeleteUser, run after the deletion, still names both people.
    let rows = report(
        &store,
        vec![admin_event(
            "7d4b9c1e-0a2f-4e58-9b6d-3c1a2e4f5a6b",
            "DeleteUser",
            &admin.id,
            json!({ "InstanceId": INSTANCE, "UserId": victim.id }),
        )],
    )
    .await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    let row = &rows[0];
    assert_eq!(row.event_name, "DeleteUser");
    assert_eq!(row.target_kind, TargetKind::User);
    assert_eq!(row.target_id.as_deref(), Some(victim.id.as_str()));
    assert_eq!(row.target_name.as_deref(), Some(victim.username.as_str()));
    assert_eq!(row.actor_name.as_deref(), Some(admin.username.as_str()));
    assert_eq!(row.name_source, NameSource::Snapshot);
}

async fn throttling_and_server_errors_are_retried_and_the_run_completes(backend: Backend) {
    let store = backend.store.clone();
    let fake = FakeConnect::start();
    fake.add_instance(INSTANCE, 120);
    fake.set_page_cap(50);
    fake.inject(Some(Operation::ListUsers), Fault::Throttling, 2);
    fake.inject(Some(Operation::DescribeUser), Fault::TooManyRequests, 3);
    fake.inject(Some(Operation::ListSecurityProfiles), Fault::Internal, 2);
    fake.inject(Some(Operation::DescribeUser), Fault::Internal, 2);
    fake.inject(
        Some(Operation::ListUserHierarchyGroups),
        Fault::Throttling,
        1,
    );

    let summary = run(&fake, &store, describe(), "2024-05-09T00:00:00Z").await;

    assert_eq!(
        fake.total_faults_served(),
        10,
        "every injected fault was answered"
    );
    assert_eq!(
        fake.requests(Operation::ListUsers),
        3 + 2,
        "3 pages + 2 retried throttles"
    );
    assert_eq!(fake.requests(Operation::DescribeUser), 120 + 5);
    assert_eq!(fake.requests(Operation::ListSecurityProfiles), 1 + 2);
    assert_eq!(fake.requests(Operation::ListUserHierarchyGroups), 1 + 1);
    let s = &summary.instances[0];
    assert_eq!(s.connect_calls.list_users, 3, "the snapshot's own calls");
    assert_eq!(s.users.added, 120);
    assert_eq!(s.users_described, 120);
    assert_eq!(store.list("users/").await.unwrap().len(), 120);
    assert_eq!(store.list("security-profiles/").await.unwrap().len(), 3);
}

async fn persistent_throttling_fails_naming_the_instance_and_writes_no_objects(backend: Backend) {
    let store = backend.store.clone();
    let fake = FakeConnect::start();
    fake.add_instance(INSTANCE, 10);
    fake.inject(Some(Operation::ListUsers), Fault::Throttling, 1_000);

    let err = Snapshotter::new(fake.client(3), store.clone(), SnapshotOptions::default())
        .run_at(at("2024-05-09T00:00:00Z"), &[instance()], &NoProgress)
        .await
        .unwrap_err();

    let text = err.to_string();
    assert!(text.contains(INSTANCE), "{text}");
    assert!(text.contains("ListUsers"), "{text}");
    assert!(text.contains("ThrottlingException"), "{text}");
    assert_eq!(fake.requests(Operation::ListUsers), 3, "max_attempts = 3");
    assert!(store.list("users/").await.unwrap().is_empty());
    assert!(store.list("security-profiles/").await.unwrap().is_empty());
    // The failed run still leaves its log, saying why and listing no instance.
    let runs = store.list("runs/").await.unwrap();
    assert_eq!(runs.len(), 1);
    let log: RunLog =
        serde_json::from_slice(&store.get(&runs[0].key).await.unwrap().unwrap()).unwrap();
    assert!(log.instances.is_empty());
    assert!(log.error.unwrap().contains("ThrottlingException"));
}

async fn non_uuid_id_from_the_api_is_rejected_naming_it_and_nothing_is_written(backend: Backend) {
    let store = backend.store.clone();
    let fake = FakeConnect::start();
    let users = fake.add_instance(INSTANCE, 20);
    let evil = FakeUser {
        id: "../../etc/passwd".into(),
        username: "mallory".into(),
        ..users[0].clone()
    };
    fake.insert_user(INSTANCE, evil);

    let err = Snapshotter::new(fake.client(3), store.clone(), describe())
        .run_at(at("2024-05-09T00:00:00Z"), &[instance()], &NoProgress)
        .await
        .unwrap_err();

    assert!(matches!(err, Error::BadId { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("\"../../etc/passwd\""), "{text}");
    assert!(text.contains(INSTANCE), "{text}");
    assert!(text.contains("ListUsers"), "{text}");
    assert!(text.contains("not a Connect id (UUID)"), "{text}");
    assert_eq!(
        fake.requests(Operation::DescribeUser),
        0,
        "checked before any other call"
    );
    for folder in [
        "users/",
        "security-profiles/",
        "routing-profiles/",
        "hierarchy-groups/",
    ] {
        assert!(store.list(folder).await.unwrap().is_empty(), "{folder}");
    }
    if let Some(root) = store.local_root() {
        assert!(!root.join("../../etc/passwd.json").exists());
        assert!(!root.parent().unwrap().join("etc").exists());
    }

    // A bad security profile id is refused the same way.
    fake.delete_user(INSTANCE, "../../etc/passwd");
    let mut instance = fake.instance(INSTANCE).unwrap();
    instance.security_profiles[1].id = "sp/../../x".into();
    fake.put_instance(INSTANCE, instance);
    let err = Snapshotter::new(fake.client(3), store.clone(), describe())
        .run_at(at("2024-05-09T00:00:01Z"), &[instance_arn()], &NoProgress)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("ListSecurityProfiles"), "{text}");
    assert!(
        text.contains("security_profile id \"sp/../../x\""),
        "{text}"
    );
    assert!(store.list("users/").await.unwrap().is_empty());
}

fn instance_arn() -> Instance {
    Instance::parse(&format!(
        "arn:aws:connect:{REGION}:{ACCOUNT}:instance/{INSTANCE}"
    ))
    .unwrap()
}

async fn describe_users_fills_email_names_and_profiles(backend: Backend) {
    let store = backend.store.clone();
    let fake = FakeConnect::start();
    let users = fake.add_instance(INSTANCE, 40);
    let summary = run(&fake, &store, describe(), "2024-05-09T00:00:00Z").await;
    assert_eq!(fake.requests(Operation::DescribeUser), 40);
    assert_eq!(summary.instances[0].users_described, 40);

    let fake_user = &users[9];
    let u = user(&store, &fake_user.id).await;
    assert_eq!(u.email.as_deref(), Some(fake_user.email.as_str()));
    assert_eq!(u.first_name.as_deref(), Some(fake_user.first_name.as_str()));
    assert_eq!(u.last_name.as_deref(), Some(fake_user.last_name.as_str()));
    assert_eq!(
        u.security_profile_ids.as_deref(),
        Some(fake_user.security_profile_ids.as_slice())
    );
    assert_eq!(
        u.routing_profile_id.as_deref(),
        Some(fake_user.routing_profile_id.as_str())
    );
    assert_eq!(u.hierarchy_group_id, fake_user.hierarchy_group_id);

    // A change the service reports (new email, new LastModifiedTime) is described and
    // rewritten; the others are not touched.
    fake.reset_counters();
    assert!(fake.modify_user(INSTANCE, &fake_user.id, |u| {
        u.email = "new.address@example-callcenter.com".into();
        u.last_modified += 3600.0;
    }));
    let summary = run(&fake, &store, describe(), "2024-05-10T00:00:00Z").await;
    assert_eq!(fake.requests(Operation::DescribeUser), 1);
    assert_eq!(summary.object_puts, 1);
    let changed = user(&store, &fake_user.id).await;
    assert_eq!(
        changed.email.as_deref(),
        Some("new.address@example-callcenter.com")
    );
    assert_eq!(changed.first_seen.as_deref(), Some("2024-05-09T00:00:00Z"));
    assert_eq!(changed.last_seen.as_deref(), Some("2024-05-10T00:00:00Z"));
    let log = run_log(&store, &summary).await;
    assert_eq!(
        log.instances[0].users.changed[0].fields,
        ["Email", "LastModifiedTime"]
    );

    // A run without describe_users keeps what an earlier run described.
    let summary = run(
        &fake,
        &store,
        SnapshotOptions::default(),
        "2024-05-11T00:00:00Z",
    )
    .await;
    assert_eq!(summary.object_puts, 0);
    assert_eq!(user(&store, &fake_user.id).await, changed);

    // redescribe_unchanged describes everyone again (and writes nothing if nothing changed).
    fake.reset_counters();
    let options = SnapshotOptions {
        redescribe_unchanged: true,
        concurrency: 8,
        ..describe()
    };
    let summary = run(&fake, &store, options, "2024-05-12T00:00:00Z").await;
    assert_eq!(fake.requests(Operation::DescribeUser), 40);
    assert_eq!(summary.object_puts, 0);
}

async fn renamed_user_is_rewritten_and_logged_with_its_previous_name(backend: Backend) {
    let store = backend.store.clone();
    let fake = FakeConnect::start();
    let users = fake.add_instance(INSTANCE, 5);
    run(
        &fake,
        &store,
        SnapshotOptions::default(),
        "2024-05-09T00:00:00Z",
    )
    .await;
    fake.modify_user(INSTANCE, &users[2].id, |u| {
        u.username = "agent00002.renamed".into();
        u.last_modified += 60.0;
    });
    let summary = run(
        &fake,
        &store,
        SnapshotOptions::default(),
        "2024-05-10T00:00:00Z",
    )
    .await;
    assert_eq!(summary.instances[0].users.changed, 1);
    assert_eq!(summary.object_puts, 1);
    assert_eq!(
        user(&store, &users[2].id).await.username,
        "agent00002.renamed"
    );
    let log = run_log(&store, &summary).await;
    let entry = &log.instances[0].users.changed[0];
    assert_eq!(entry.name, "agent00002.renamed");
    assert_eq!(entry.previous_name.as_deref(), Some("agent00002"));
    assert_eq!(entry.fields, ["LastModifiedTime", "Username"]);
}

async fn profile_and_group_names_land_and_a_report_names_a_security_profile(backend: Backend) {
    let store = backend.store.clone();
    let fake = FakeConnect::start();
    let users = fake.add_instance(INSTANCE, 3);
    let instance = fake.instance(INSTANCE).unwrap();
    run(
        &fake,
        &store,
        SnapshotOptions::default(),
        "2024-05-09T00:00:00Z",
    )
    .await;

    for (folder, list) in [
        ("security-profiles", &instance.security_profiles),
        ("routing-profiles", &instance.routing_profiles),
        ("hierarchy-groups", &instance.hierarchy_groups),
    ] {
        assert_eq!(store.list(&format!("{folder}/")).await.unwrap().len(), 3);
        for r in list {
            let body = store
                .get(&format!("{folder}/{}.json", r.id))
                .await
                .unwrap()
                .unwrap();
            let object: ResourceObject = serde_json::from_slice(&body).unwrap();
            assert_eq!(object.name, r.name);
            assert_eq!(object.instance_id.as_deref(), Some(INSTANCE));
            assert!(!object.deleted);
            assert!(object.arn.ends_with(&r.id));
        }
    }

    // A profile deleted in Connect is kept and marked, like a user.
    let mut changed = instance.clone();
    let removed = changed.routing_profiles.remove(2);
    fake.put_instance(INSTANCE, changed);
    let summary = run(
        &fake,
        &store,
        SnapshotOptions::default(),
        "2024-05-10T00:00:00Z",
    )
    .await;
    assert_eq!(summary.instances[0].routing_profiles.deleted, 1);
    let body = store
        .get(&format!("routing-profiles/{}.json", removed.id))
        .await
        .unwrap()
        .unwrap();
    let object: ResourceObject = serde_json::from_slice(&body).unwrap();
    assert!(object.deleted);
    assert_eq!(object.name, removed.name);

    let admin_profile = &instance.security_profiles[0];
    let group = &instance.hierarchy_groups[2];
    let rows = report(
        &store,
        vec![
            admin_event(
                "0b5b0d8e-8f0e-4f4e-9d2a-1f2e3d4c5b6a",
                "UpdateSecurityProfile",
                &users[0].id,
                json!({ "InstanceId": INSTANCE, "SecurityProfileId": admin_profile.id }),
            ),
            admin_event(
                "1c6c1e9f-9a1f-4a5f-8e3b-2a3f4e5d6c7b",
                "UpdateUserHierarchyGroupName",
                &users[0].id,
                json!({ "InstanceId": INSTANCE, "HierarchyGroupId": group.id, "Name": "x" }),
            ),
        ],
    )
    .await;
    assert_eq!(rows.len(), 2, "{rows:#?}");
    let sp = rows
        .iter()
        .find(|r| r.event_name == "UpdateSecurityProfile")
        .unwrap();
    assert_eq!(sp.target_kind, TargetKind::SecurityProfile);
    assert_eq!(sp.target_name.as_deref(), Some("Admin"));
    assert_eq!(sp.name_source, NameSource::Snapshot);
    let hg = rows
        .iter()
        .find(|r| r.event_name == "UpdateUserHierarchyGroupName")
        .unwrap();
    assert_eq!(hg.target_kind, TargetKind::HierarchyGroup);
    assert_eq!(hg.target_name.as_deref(), Some(group.name.as_str()));
}

async fn every_instance_is_snapshotted_and_deletions_stay_in_their_instance(backend: Backend) {
    let store = backend.store.clone();
    let fake = FakeConnect::start();
    let a = fake.add_instance(INSTANCE, 30);
    let b = fake.add_instance(OTHER_INSTANCE, 20);
    let both = [instance_arn(), Instance::parse(OTHER_INSTANCE).unwrap()];
    let summary = snapshotter(&fake, &store, SnapshotOptions::default())
        .run_at(at("2024-05-09T00:00:00Z"), &both, &NoProgress)
        .await
        .unwrap();
    assert_eq!(summary.instances.len(), 2);
    assert_eq!(summary.user_totals().added, 50);
    assert_eq!(store.list("users/").await.unwrap().len(), 50);
    assert_eq!(summary.instances[0].region.as_deref(), Some(REGION));
    let log = run_log(&store, &summary).await;
    assert_eq!(log.instances[0].account.as_deref(), Some(ACCOUNT));

    // A run of one instance does not mark the other instance's users deleted.
    fake.delete_user(OTHER_INSTANCE, &b[0].id);
    let summary = snapshotter(&fake, &store, SnapshotOptions::default())
        .run_at(at("2024-05-10T00:00:00Z"), &[instance()], &NoProgress)
        .await
        .unwrap();
    assert_eq!(summary.user_totals().deleted, 0);
    assert!(!user(&store, &b[0].id).await.deleted);
    assert!(!user(&store, &a[0].id).await.deleted);
    let summary = snapshotter(&fake, &store, SnapshotOptions::default())
        .run_at(at("2024-05-11T00:00:00Z"), &both, &NoProgress)
        .await
        .unwrap();
    assert_eq!(summary.instances[1].users.deleted, 1);
    let gone = user(&store, &b[0].id).await;
    assert!(gone.deleted);
    assert_eq!(
        gone.last_seen.as_deref(),
        Some("2024-05-09T00:00:00Z"),
        "the last run log that lists its instance"
    );
}

async fn unknown_instance_fails_naming_it(backend: Backend) {
    let store = backend.store.clone();
    let fake = FakeConnect::start();
    let err = snapshotter(&fake, &store, SnapshotOptions::default())
        .run_at(at("2024-05-09T00:00:00Z"), &[instance()], &NoProgress)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains(INSTANCE), "{text}");
    assert!(text.contains("ResourceNotFoundException"), "{text}");
    assert!(
        Instance::parse("not-an-instance")
            .unwrap_err()
            .to_string()
            .contains("not-an-instance")
    );
}

async fn objects_of_the_old_recipe_are_kept_and_upgraded(backend: Backend) {
    let store = backend.store.clone();
    let fake = FakeConnect::start();
    let users = fake.add_instance(INSTANCE, 3);
    // What the Step Functions recipe wrote: ListUsers summaries, one per object, one of
    // them since deleted in Connect, plus a field this tool does not know.
    let gone_id = "0fcb44b3-fcba-4843-9238-0b6a8c10562b";
    let old = |id: &str, name: &str| {
        let arn = format!("arn:aws:connect:{REGION}:{ACCOUNT}:instance/{INSTANCE}/agent/{id}");
        json!({ "Arn": arn, "Id": id, "Username": name, "Team": "blue" }).to_string()
    };
    store
        .put(
            &format!("users/{}.json", users[0].id),
            old(&users[0].id, "agent00000").into_bytes(),
        )
        .await
        .unwrap();
    store
        .put(
            &format!("users/{gone_id}.json"),
            old(gone_id, "old.timer").into_bytes(),
        )
        .await
        .unwrap();

    let summary = run(
        &fake,
        &store,
        SnapshotOptions::default(),
        "2024-05-09T00:00:00Z",
    )
    .await;

    let s = &summary.instances[0].users;
    assert_eq!((s.added, s.changed, s.deleted), (2, 1, 1));
    let upgraded = user(&store, &users[0].id).await;
    assert_eq!(
        upgraded.other.get("Team"),
        Some(&json!("blue")),
        "unknown fields kept"
    );
    assert_eq!(upgraded.instance_id.as_deref(), Some(INSTANCE));
    let gone = user(&store, gone_id).await;
    assert!(gone.deleted, "its ARN names this instance");
    assert_eq!(gone.username, "old.timer");
    assert_eq!(gone.other.get("Team"), Some(&json!("blue")));

    // The history starts with what the old store knew: each old object as it was, then
    // what this run made of it.
    let lines = history_lines(&store, "history/").await;
    let of = |id: &str| -> Vec<&Value> {
        lines
            .iter()
            .filter(|l| l["Object"]["Id"] == json!(id))
            .collect()
    };
    let gone_versions = of(gone_id);
    assert_eq!(gone_versions.len(), 2, "{gone_versions:#?}");
    assert_eq!(gone_versions[0]["Object"]["Username"], json!("old.timer"));
    assert_ne!(gone_versions[0]["Object"]["Deleted"], json!(true));
    assert_eq!(gone_versions[1]["Object"]["Deleted"], json!(true));
    assert_eq!(of(&users[0].id).len(), 2);
    assert_eq!(of(&users[1].id).len(), 1, "a new user has one version");
    let history = connect_audit_core::history::load_history(&store)
        .await
        .unwrap();
    let now = at("2024-05-09T00:00:00Z");
    assert!(history.at(TargetKind::User, gone_id, now).unwrap().deleted);
}

/// The history lines of every file under `prefix`, in key order.
async fn history_lines(store: &Store, prefix: &str) -> Vec<Value> {
    let mut lines = Vec::new();
    for (key, body) in objects(store, prefix).await {
        assert!(
            std::path::Path::new(&key)
                .extension()
                .is_some_and(|e| e == "jsonl"),
            "{key}"
        );
        for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            lines.push(serde_json::from_slice(line).unwrap());
        }
    }
    lines
}

async fn resource(store: &Store, folder: &str, id: &str) -> ResourceObject {
    let body = store
        .get(&format!("{folder}/{id}.json"))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no {folder}/{id}.json"));
    serde_json::from_slice(&body).unwrap()
}

async fn history_keeps_each_version_and_the_index_vouches_only_for_what_it_wrote(backend: Backend) {
    let store = backend.store.clone();
    let fake = FakeConnect::start();
    let users = fake.add_instance(INSTANCE, 20);
    let first = run(&fake, &store, describe(), "2024-05-09T00:00:00Z").await;
    assert_eq!((first.history_puts, first.index_puts), (1, 1));
    let lines = history_lines(&store, "history/20240509T000000Z-").await;
    assert_eq!(lines.len(), 20 + 9);
    assert!(
        lines
            .iter()
            .all(|l| l["ObservedAt"] == json!("2024-05-09T00:00:00Z"))
    );

    // What changes are decoded against landed: permissions, queues, paths, user details.
    let fixture = fake.instance(INSTANCE).unwrap();
    let admin = &fixture.security_profiles[0];
    let admin_object = resource(&store, "security-profiles", &admin.id).await;
    assert!(
        admin_object
            .permissions
            .as_ref()
            .unwrap()
            .contains(&"Users.Edit".to_owned())
    );
    let floor = resource(&store, "hierarchy-groups", &fixture.hierarchy_groups[2].id).await;
    let path: Vec<&str> = floor
        .hierarchy_path
        .as_ref()
        .unwrap()
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(path, ["Japan", "Tokyo", "Tokyo Floor 2"]);
    let routing = resource(&store, "routing-profiles", &fixture.routing_profiles[1].id).await;
    assert_eq!(routing.queues.as_ref().map(Vec::len), Some(2));
    let u0 = user(&store, &users[0].id).await;
    assert_eq!(
        u0.proficiencies.as_ref().map(Vec::len),
        Some(1),
        "{:?}",
        u0.proficiencies
    );
    assert!(u0.phone_config.is_some() && u0.tags.is_some());

    // A changed user and a renamed profile: two new versions, and nothing else read.
    fake.modify_user(INSTANCE, &users[1].id, |u| {
        u.email = "new.address@example-callcenter.com".into();
        u.last_modified += 60.0;
    });
    fake.modify_resource(INSTANCE, ResourceKind::SecurityProfile, &admin.id, |r| {
        r.name = "Administrators".into();
        r.last_modified += 60.0;
    });
    fake.reset_counters();
    let second = run(&fake, &store, describe(), "2024-05-10T00:00:00Z").await;
    assert_eq!(second.store_gets, 2, "the index and the last run log");
    assert_eq!(
        (second.object_puts, second.history_puts, second.index_puts),
        (2, 1, 1)
    );
    assert_eq!(fake.requests(Operation::DescribeUser), 1);
    assert_eq!(fake.requests(Operation::DescribeSecurityProfile), 1);
    assert_eq!(fake.requests(Operation::ListSecurityProfilePermissions), 1);
    let lines = history_lines(&store, "history/20240510T000000Z-").await;
    let names: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| {
            let o = &l["Object"];
            let name = o.get("Username").or_else(|| o.get("Name")).unwrap();
            (l["Folder"].as_str().unwrap(), name.as_str().unwrap())
        })
        .collect();
    assert_eq!(
        names,
        [
            ("users", users[1].username.as_str()),
            ("security-profiles", "Administrators")
        ]
    );
    assert_eq!(
        history_lines(&store, "history/20240509T000000Z-")
            .await
            .len(),
        29,
        "append-only"
    );

    // An object rewritten behind the index's back is read, not trusted, and versioned.
    let key = format!("users/{}.json", users[2].id);
    let mut edited: Value =
        serde_json::from_slice(&store.get(&key).await.unwrap().unwrap()).unwrap();
    edited["Team"] = json!("red");
    std::thread::sleep(std::time::Duration::from_millis(20));
    store
        .put(&key, edited.to_string().into_bytes())
        .await
        .unwrap();
    let third = run(&fake, &store, describe(), "2024-05-11T00:00:00Z").await;
    assert_eq!(
        third.store_gets, 3,
        "the index, the edited object, the last run log"
    );
    assert_eq!((third.object_puts, third.index_puts), (0, 1));
    let lines = history_lines(&store, "history/20240511T000000Z-").await;
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_eq!(lines[0]["Object"]["Team"], json!("red"));
    let fourth = run(&fake, &store, describe(), "2024-05-12T00:00:00Z").await;
    assert_eq!(
        (
            fourth.store_gets,
            fourth.object_puts,
            fourth.history_puts,
            fourth.index_puts
        ),
        (2, 0, 0, 0)
    );

    // A run without describe_users that rewrites a user (its listing changed) keeps the
    // described fields in the object, but its version does not claim them as of then.
    fake.modify_user(INSTANCE, &users[3].id, |u| {
        u.username = "renamed.agent".into();
        u.last_modified += 60.0;
    });
    let listing_only = run(
        &fake,
        &store,
        SnapshotOptions::default(),
        "2024-05-13T00:00:00Z",
    )
    .await;
    assert_eq!(listing_only.object_puts, 1);
    assert!(
        user(&store, &users[3].id)
            .await
            .security_profile_ids
            .is_some()
    );
    let lines = history_lines(&store, "history/20240513T000000Z-").await;
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["Object"]["Username"], json!("renamed.agent"));
    assert_eq!(
        lines[0]["Object"].get("SecurityProfileIds"),
        None,
        "{lines:#?}"
    );

    // The report side reads every version back, each as of its time.
    let history = connect_audit_core::history::load_history(&store)
        .await
        .unwrap();
    let sp = TargetKind::SecurityProfile;
    assert_eq!(
        history.name_at(sp, &admin.id, at("2024-05-09T12:00:00Z")),
        Some("Admin")
    );
    assert_eq!(
        history.name_at(sp, &admin.id, at("2024-05-10T00:00:00Z")),
        Some("Administrators")
    );
    let email = |t: &str| {
        history
            .at(TargetKind::User, &users[1].id, at(t))
            .unwrap()
            .state["identity"]["email"]
            .clone()
    };
    assert_eq!(email("2024-05-09T12:00:00Z"), json!(users[1].email));
    assert_eq!(
        email("2024-05-10T12:00:00Z"),
        json!("new.address@example-callcenter.com")
    );
    assert_eq!(
        history.last_observation_at_or_before(at("2024-05-12T12:00:00Z")),
        Some(at("2024-05-11T00:00:00Z")),
        "the last run that wrote a version"
    );
    assert_eq!(
        history.last_observation_at_or_before(at("2024-05-10T12:00:00Z")),
        Some(at("2024-05-10T00:00:00Z"))
    );
}

async fn an_unreadable_object_in_the_store_stops_the_run_naming_it(backend: Backend) {
    let store = backend.store.clone();
    let fake = FakeConnect::start();
    fake.add_instance(INSTANCE, 3);
    let key = "users/66666666-7777-8888-9999-000000000000.json";
    store.put(key, b"{not json".to_vec()).await.unwrap();
    let err = snapshotter(&fake, &store, SnapshotOptions::default())
        .run_at(at("2024-05-09T00:00:00Z"), &[instance()], &NoProgress)
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&store.describe(key)), "{err}");
    assert_eq!(
        fake.requests(Operation::ListUsers),
        0,
        "stopped before calling Connect"
    );
    assert_eq!(
        store.get(key).await.unwrap().unwrap(),
        b"{not json",
        "left as it was"
    );
}

#[derive(Default)]
struct Counting {
    listed: AtomicU64,
    described: AtomicU64,
    written: AtomicU64,
    finished: AtomicU64,
}

impl SnapshotProgress for Counting {
    fn users_listed(&self, instance: &str, users: u64) {
        assert_eq!(instance, INSTANCE);
        self.listed.fetch_add(users, Relaxed);
    }
    fn user_described(&self) {
        self.described.fetch_add(1, Relaxed);
    }
    fn object_written(&self) {
        self.written.fetch_add(1, Relaxed);
    }
    fn instance_finished(&self, summary: &connect_audit_snapshot::InstanceSummary) {
        assert_eq!(summary.instance_id, INSTANCE);
        self.finished.fetch_add(1, Relaxed);
    }
}

async fn progress_hooks_see_every_page_description_and_write(backend: Backend) {
    let store = backend.store.clone();
    let fake = FakeConnect::start();
    fake.add_instance(INSTANCE, 25);
    fake.set_page_cap(10);
    let progress = Counting::default();
    let summary = snapshotter(&fake, &store, describe())
        .run_at(at("2024-05-09T00:00:00Z"), &[instance()], &progress)
        .await
        .unwrap();
    assert_eq!(progress.listed.load(Relaxed), 25);
    assert_eq!(progress.described.load(Relaxed), 25);
    assert_eq!(progress.written.load(Relaxed), summary.object_puts);
    assert_eq!(progress.finished.load(Relaxed), 1);
}

/// Runs each test on a local directory store and on a bucket of a real S3 server.
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod local {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::local()).await;
                }
            )*
        }
        mod garage {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::garage()).await;
                }
            )*
        }
    };
}

on_every_backend!(
    snapshot_of_2500_users_over_3_pages_lands_2500_objects,
    unchanged_rerun_writes_no_objects,
    deleted_user_is_marked_and_still_named_by_a_report_after_deletion,
    throttling_and_server_errors_are_retried_and_the_run_completes,
    persistent_throttling_fails_naming_the_instance_and_writes_no_objects,
    non_uuid_id_from_the_api_is_rejected_naming_it_and_nothing_is_written,
    describe_users_fills_email_names_and_profiles,
    renamed_user_is_rewritten_and_logged_with_its_previous_name,
    profile_and_group_names_land_and_a_report_names_a_security_profile,
    every_instance_is_snapshotted_and_deletions_stay_in_their_instance,
    unknown_instance_fails_naming_it,
    objects_of_the_old_recipe_are_kept_and_upgraded,
    history_keeps_each_version_and_the_index_vouches_only_for_what_it_wrote,
    an_unreadable_object_in_the_store_stops_the_run_naming_it,
    progress_hooks_see_every_page_description_and_write,
);
