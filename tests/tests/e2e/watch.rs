//! `watch`: the trail followed as it lands, through the binary, against real servers: Garage
//! for the trail's objects, moto's SQS server for the notifications (the real `aws-sdk-sqs`
//! client in the binary), a SIEM receiver over HTTP.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use connect_audit_tests::garage::Garage;
use connect_audit_tests::moto::{Moto, Queue};
use connect_audit_tests::siem_receiver::{Reply, SiemReceiver};
use jiff::Timestamp;
use serde_json::{Value, json};
use tokio::runtime::Runtime;

use super::helpers::{self, events, files};

/// A `watch` process, killed when the test ends however it ends (a failed assertion must not
/// leave it running).
struct Running(Child);

impl std::ops::Deref for Running {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// How a notification reaches the queue.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// An S3 event notification sent to the queue.
    S3,
    /// The same, in an SNS envelope.
    Sns,
    /// An EventBridge `Object Created` event.
    EventBridge,
    /// CloudTrail's own notification of a delivered log file, in an SNS envelope (no ETag).
    CloudTrailSns,
}

/// A trail in Garage, a queue in moto, a working directory with a config, a SIEM receiver.
struct Rig {
    garage: &'static Garage,
    moto: &'static Moto,
    rt: Runtime,
    prefix: String,
    queue: Queue,
    dir: tempfile::TempDir,
    siem: SiemReceiver,
}

impl Rig {
    /// A rig whose queue hides a message for `visibility_secs` and moves it to its
    /// dead-letter queue after `max_receives`.
    fn new(label: &str, visibility_secs: u32, max_receives: u32) -> Self {
        let garage = Garage::shared();
        let moto = Moto::shared();
        let prefix = garage.unique_prefix(label);
        let queue = moto.create_queue(
            &moto.unique_name(label),
            visibility_secs,
            Some(max_receives),
        );
        let dir = tempfile::tempdir().unwrap();
        let siem = SiemReceiver::start();
        let rig = Self {
            garage,
            moto,
            rt: Runtime::new().unwrap(),
            prefix,
            queue,
            dir,
            siem,
        };
        rig.config(visibility_secs);
        rig
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn config(&self, visibility_secs: u32) {
        fs::write(
            self.root().join("connect-audit.toml"),
            format!(
                r#"
                [report]
                trail = "s3://{bucket}/{prefix}"
                [watch]
                roll = "1s"
                visibility = "{visibility_secs}s"
                health = "1s"
                claims = "claims"
                [[exporters]]
                type = "jsonl"
                path = "out/audit-{{batch}}.jsonl"
                [[exporters]]
                type = "parquet"
                path = "lake/"
                partition_by_date = true
                [[exporters]]
                type = "siem-webhook"
                flavor = "splunk-hec"
                url = "{siem}"
                token_env = "SIEM_TOKEN"
                timeout_secs = 2
                max_retries = 2
                retry_initial_ms = 10
                retry_max_ms = 200
                dead_letter = "dead-letter.jsonl"
                "#,
                bucket = self.garage.bucket(),
                prefix = self.prefix,
                siem = self.siem.url(),
            ),
        )
        .unwrap();
    }

    /// Puts a trail object delivered `delivered` holding events `first..first + n`; gives its
    /// key (from the bucket's root) and ETag.
    fn put(&self, first: usize, n: usize, delivered: Timestamp) -> (String, String) {
        let utc = delivered.to_zoned_datetime(jiff::tz::TimeZone::UTC);
        let key = format!(
            "{}/AWSLogs/111122223333/CloudTrail/us-east-1/{}/111122223333_CloudTrail_us-east-1_{}_{first:06}.json.gz",
            self.prefix,
            utc.strftime("%Y/%m/%d"),
            utc.strftime("%Y%m%dT%H%MZ"),
        );
        let start = (delivered - jiff::SignedDuration::from_mins(3)).to_string();
        self.put_bytes(
            &key,
            &gzip(&json!({ "Records": events(first, n, &start, 0) })),
        )
    }

    fn put_bytes(&self, key: &str, body: &[u8]) -> (String, String) {
        let client = self.garage.client();
        let out = self
            .rt
            .block_on(
                client
                    .put_object()
                    .bucket(self.garage.bucket())
                    .key(key)
                    .body(body.to_vec().into())
                    .send(),
            )
            .unwrap();
        (
            key.to_owned(),
            out.e_tag().unwrap().trim_matches('"').to_owned(),
        )
    }

    /// Tells the queue of an object, in `shape`.
    fn notify(&self, shape: Shape, key: &str, etag: &str) {
        self.moto.send(
            &self.queue.url,
            &notification(shape, self.garage.bucket(), key, etag),
        );
    }

    /// Starts `watch --queue` in the rig's directory, its log in `watch.log`.
    fn spawn(&self) -> Running {
        self.spawn_logging("watch.log", &[])
    }

    /// Starts `watch --queue` in the rig's directory, its log in `log`, with `env` added.
    fn spawn_logging(&self, log: &str, env: &[(&str, &str)]) -> Running {
        let mut command = helpers::command(
            self.root(),
            &["watch", "--queue", &self.queue.url],
            &self.garage.aws_env(),
        );
        command
            .envs(self.moto.aws_env())
            .env("SIEM_TOKEN", "test-token")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.root().join(log))
                    .unwrap(),
            ));
        Running(command.spawn().unwrap())
    }

    /// Waits (at most a minute) until the SIEM receiver has had a request; panics with the
    /// log otherwise.
    fn wait_for_siem_request(&self) {
        let deadline = Instant::now() + Duration::from_mins(1);
        while self.siem.requests().is_empty() {
            assert!(Instant::now() < deadline, "{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every process's log.
    fn log(&self) -> String {
        let mut text = String::new();
        for file in files(self.root()) {
            if file.extension().is_some_and(|e| e == "log") {
                let _ = writeln!(text, "--- {}", file.display());
                text.push_str(&fs::read_to_string(&file).unwrap_or_default());
            }
        }
        text
    }

    /// How often each event id occurs across the JSON Lines files written.
    fn ids_in_files(&self) -> BTreeMap<String, usize> {
        let texts = helpers::jsonl_texts(&self.root().join("out"));
        helpers::id_counts(texts.iter().map(Vec::as_slice))
    }

    /// Waits (at most a minute) until the files hold exactly `ids`, each once, and the queue
    /// is empty; panics with the log otherwise.
    fn wait_for(&self, ids: &[String]) {
        let want: BTreeMap<String, usize> = ids.iter().map(|id| (id.clone(), 1)).collect();
        let deadline = Instant::now() + Duration::from_mins(1);
        loop {
            let found = self.ids_in_files();
            let queue = self.moto.approximate_counts(&self.queue.url);
            if found == want && queue == (0, 0) {
                return;
            }
            assert!(
                found.values().all(|n| *n == 1),
                "an event written twice: {found:?}\n{}",
                self.log()
            );
            assert!(
                Instant::now() < deadline,
                "files hold {found:?}, want {want:?}; queue {queue:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn id(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

fn ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(id).collect()
}

fn gzip(value: &Value) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(value.to_string().as_bytes()).unwrap();
    gz.finish().unwrap()
}

/// The body S3 (through SNS, or EventBridge) sends for a new object, as AWS documents it.
fn notification(shape: Shape, bucket: &str, key: &str, etag: &str) -> String {
    let now = Timestamp::now().to_string();
    let s3 = connect_audit_tests::moto::s3_notification(bucket, key, etag, 1024);
    match shape {
        Shape::S3 => s3.to_string(),
        Shape::Sns => json!({
            "Type": "Notification",
            "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
            "TopicArn": "arn:aws:sns:us-east-1:111122223333:cloudtrail-objects",
            "Subject": "Amazon S3 Notification",
            "Message": s3.to_string(),
            "Timestamp": now,
            "SignatureVersion": "1",
            "Signature": "EXAMPLE",
            "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000.pem",
            "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"
        })
        .to_string(),
        Shape::CloudTrailSns => json!({
            "Type": "Notification",
            "MessageId": "5c4f6bd1-0a16-5ef4-9c3e-3c1d7ea4b0a1",
            "TopicArn": "arn:aws:sns:us-east-1:111122223333:cloudtrail-log-delivery",
            "Message": json!({"s3Bucket": bucket, "s3ObjectKey": [key]}).to_string(),
            "Timestamp": now,
            "SignatureVersion": "1",
            "Signature": "EXAMPLE",
            "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000.pem",
            "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"
        })
        .to_string(),
        Shape::EventBridge => json!({
            "version": "0",
            "id": "17793124-05d4-b198-2fde-7ededc63b103",
            "detail-type": "Object Created",
            "source": "aws.s3",
            "account": "111122223333",
            "time": now,
            "region": "us-east-1",
            "resources": [format!("arn:aws:s3:::{bucket}")],
            "detail": {
                "version": "0",
                "bucket": {"name": bucket},
                "object": {"key": key, "size": 1024, "etag": etag, "sequencer": "00617F08299329D189"},
                "request-id": "N4N7GDK58NMKJ12R",
                "requester": "111122223333",
                "reason": "PutObject"
            }
        })
        .to_string(),
    }
}

/// Sends SIGTERM and waits (at most 60 s) for the exit; gives its code.
fn terminate(child: &mut Child) -> Option<i32> {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_mins(1);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        assert!(Instant::now() < deadline, "watch did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The count before `what` (`duplicates`, `objects read`, …) in the last health line.
fn last_health(log: &str, what: &str) -> u64 {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("connect-audit watch: health:"))
        .unwrap_or_else(|| panic!("no health line: {log}"));
    let at = line
        .find(&format!(" {what}"))
        .unwrap_or_else(|| panic!("no {what} in {line}"));
    let digits: String = line[..at]
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no count before {what} in {line}"))
}

fn minutes_ago(m: i64) -> Timestamp {
    Timestamp::now() - jiff::SignedDuration::from_mins(m)
}

#[test]
fn objects_arriving_in_every_shape_are_written_once_and_their_messages_deleted() {
    let rig = Rig::new("watch-shapes", 30, 3);
    let mut watch = rig.spawn();
    // A test event, as S3 sends when notifications are configured.
    rig.moto.send(
        &rig.queue.url,
        &json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": Timestamp::now().to_string(),
                "Bucket": rig.garage.bucket(), "RequestId": "5582815E1AEA5ADF", "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE"})
            .to_string(),
    );
    let first = rig.put(0, 2, minutes_ago(30));
    let second = rig.put(2, 2, minutes_ago(20));
    let third = rig.put(4, 2, minutes_ago(10));
    rig.notify(Shape::S3, &first.0, &first.1);
    rig.notify(Shape::Sns, &second.0, &second.1);
    rig.notify(Shape::EventBridge, &third.0, &third.1);
    // A digest object: acknowledged, never read, never redelivered.
    let digest = format!(
        "{}/AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2024/05/02/111122223333_CloudTrail-Digest_us-east-1_trail_us-east-1_20240502T100000Z.json.gz",
        rig.prefix
    );
    let digest_object = rig.put_bytes(&digest, &gzip(&json!({"digestStartTime": "x"})));
    rig.notify(Shape::S3, &digest_object.0, &digest_object.1);
    rig.wait_for(&ids(0..6));

    // Later: a duplicate message of an object read (in CloudTrail's own shape, without an
    // ETag), and a new object announced twice.
    rig.notify(Shape::CloudTrailSns, &first.0, "");
    let fifth = rig.put(6, 1, minutes_ago(5));
    rig.notify(Shape::S3, &fifth.0, &fifth.1);
    rig.notify(Shape::EventBridge, &fifth.0, &fifth.1);
    rig.wait_for(&ids(0..7));
    // And an object announced only by CloudTrail's notification.
    let sixth = rig.put(7, 1, minutes_ago(4));
    rig.notify(Shape::CloudTrailSns, &sixth.0, "");
    rig.wait_for(&ids(0..8));
    assert_eq!(terminate(&mut watch), Some(0), "{}", rig.log());

    let accepted: Vec<String> = rig
        .siem
        .requests()
        .iter()
        .filter(|r| r.reply.accepted())
        .flat_map(|r| r.event_ids.clone())
        .collect();
    let mut unique = accepted.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique, ids(0..8), "the SIEM received every event");
    let log = rig.log();
    assert!(log.contains("S3 test event: acknowledged"), "{log}");
    assert!(
        last_health(&log, "duplicates") >= 1,
        "the health line counts the duplicate: {log}"
    );
    assert_eq!(last_health(&log, "not log files"), 1, "the digest: {log}");
    assert!(
        log.contains("latency_max_secs=") && log.contains("acceptance by every exporter"),
        "the end-to-end latency is logged: {log}"
    );
    assert_eq!(
        rig.moto
            .approximate_counts(rig.queue.dlq_url.as_ref().unwrap()),
        (0, 0)
    );
}

#[test]
fn an_unreadable_object_is_retried_then_left_to_the_redrive_and_named() {
    // Held 1 s, moved to the dead-letter queue on its third receive.
    let rig = Rig::new("watch-redrive", 1, 2);
    let mut watch = rig.spawn();
    let good = rig.put(0, 2, minutes_ago(9));
    let utc = minutes_ago(8).to_zoned_datetime(jiff::tz::TimeZone::UTC);
    let bad_key = format!(
        "{}/AWSLogs/111122223333/CloudTrail/us-east-1/{}/111122223333_CloudTrail_us-east-1_{}_broken.json.gz",
        rig.prefix,
        utc.strftime("%Y/%m/%d"),
        utc.strftime("%Y%m%dT%H%MZ"),
    );
    let bad = rig.put_bytes(&bad_key, b"not gzip at all");
    rig.notify(Shape::S3, &good.0, &good.1);
    rig.notify(Shape::S3, &bad.0, &bad.1);
    rig.moto.send(&rig.queue.url, "this is not a notification");
    let dlq = rig.queue.dlq_url.clone().unwrap();
    let deadline = Instant::now() + Duration::from_mins(1);
    while rig.moto.approximate_counts(&dlq).0 < 2 {
        assert!(
            Instant::now() < deadline,
            "the dead-letter queue holds {:?}\n{}",
            rig.moto.approximate_counts(&dlq),
            rig.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    rig.wait_for(&ids(0..2));
    assert_eq!(terminate(&mut watch), Some(0), "{}", rig.log());
    let dead = rig.moto.receive_all(&dlq);
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert!(dead.iter().any(|b| b == "this is not a notification"));
    assert!(dead.iter().any(|b| b.contains("_broken.json.gz")));
    let log = rig.log();
    assert!(
        log.contains(&format!("s3://{}/{bad_key}", rig.garage.bucket()))
            && log.contains("redrive policy moves it to the dead-letter queue"),
        "the unreadable object is named: {log}"
    );
    assert!(log.contains("receive_count=2"), "retried: {log}");
    assert!(log.contains("not an S3 notification"), "{log}");
}

#[test]
fn a_process_killed_between_writing_and_deleting_loses_and_doubles_nothing_on_restart() {
    let rig = Rig::new("watch-killed", 4, 5);
    // The SIEM hangs on the first request: the JSON Lines file of the batch is written by
    // then, and no message is deleted.
    rig.siem.script([Reply::Hang(Duration::from_mins(1))]);
    let mut watch = rig.spawn();
    let a = rig.put(0, 3, minutes_ago(7));
    let b = rig.put(3, 2, minutes_ago(6));
    rig.notify(Shape::S3, &a.0, &a.1);
    rig.notify(Shape::Sns, &b.0, &b.1);
    rig.wait_for_siem_request();
    watch.kill().unwrap();
    watch.wait().unwrap();
    let written = files(&rig.root().join("out"));
    assert_eq!(
        written.len(),
        1,
        "the batch's file was written: {written:?}"
    );
    assert_eq!(
        rig.moto.approximate_counts(&rig.queue.url).1,
        2,
        "both messages in flight"
    );
    let claims = files(&rig.root().join("claims/batches"));
    assert_eq!(claims.len(), 1);
    assert!(!fs::read_to_string(&claims[0]).unwrap().contains("done_at"));

    // A new object arrives while nobody watches; the restarted process finishes the batch
    // cut short whole (same file, same rows), then the new object in a batch of its own.
    let c = rig.put(5, 1, minutes_ago(5));
    rig.notify(Shape::EventBridge, &c.0, &c.1);
    let mut watch = rig.spawn();
    rig.wait_for(&ids(0..6));
    assert_eq!(terminate(&mut watch), Some(0), "{}", rig.log());
    let after = files(&rig.root().join("out"));
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(
        after.contains(&written[0]),
        "the batch kept its name: {after:?}"
    );
    let log = rig.log();
    assert!(
        log.contains("Finishing a batch that was cut short"),
        "{log}"
    );
    // The lake: Hive partitions, one file per batch and day, each event once.
    let parts = files(&rig.root().join("lake"));
    assert!(
        parts.iter().all(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let day = p
                .parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            day.starts_with("date=") && name.starts_with("part-") && name.ends_with(".parquet")
        }),
        "{parts:?}"
    );
    let mut lake_ids = Vec::new();
    for part in &parts {
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            fs::File::open(part).unwrap(),
        )
        .unwrap()
        .build()
        .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let column = batch
                .column_by_name("event_id")
                .unwrap()
                .as_any()
                .downcast_ref::<arrow_array::StringArray>()
                .unwrap()
                .clone();
            lake_ids.extend(column.iter().map(|v| v.unwrap().to_owned()));
        }
    }
    lake_ids.sort();
    assert_eq!(
        lake_ids,
        ids(0..6),
        "the lake holds each event once: {parts:?}"
    );
    let accepted: Vec<String> = rig
        .siem
        .requests()
        .iter()
        .filter(|r| r.reply.accepted())
        .flat_map(|r| r.event_ids.clone())
        .collect();
    for id in ids(0..6) {
        assert!(accepted.contains(&id), "the SIEM got {id} at least once");
    }
}

#[test]
fn two_processes_on_one_queue_share_the_work_and_write_each_event_once() {
    let rig = Rig::new("watch-two", 5, 5);
    // Small batches, each slow at the SIEM: the work is spread over both.
    rig.siem
        .script((0..12).map(|_| Reply::Hang(Duration::from_millis(300))));
    let small = [("CONNECT_AUDIT_WATCH__BATCH_OBJECTS", "2")];
    let mut first = rig.spawn_logging("first.log", &small);
    let mut second = rig.spawn_logging("second.log", &small);
    let mut expected = Vec::new();
    for i in 0..24 {
        let object = rig.put(i * 2, 2, minutes_ago(60 - i64::try_from(i).unwrap()));
        rig.notify(Shape::S3, &object.0, &object.1);
        // Every fourth object is announced twice, as S3 sometimes does.
        if i % 4 == 0 {
            rig.notify(Shape::EventBridge, &object.0, &object.1);
        }
        expected.extend(ids(i * 2..i * 2 + 2));
    }
    expected.sort();
    rig.wait_for(&expected);
    assert_eq!(terminate(&mut first), Some(0), "{}", rig.log());
    assert_eq!(terminate(&mut second), Some(0), "{}", rig.log());
    for log in ["first.log", "second.log"] {
        let text = fs::read_to_string(rig.root().join(log)).unwrap();
        assert!(
            text.contains("Batch written"),
            "{log} did some of the work: {}",
            rig.log()
        );
    }
    let batches = files(&rig.root().join("claims/batches"));
    assert!(
        batches
            .iter()
            .all(|b| fs::read_to_string(b).unwrap().contains("done_at")),
        "every batch finished"
    );
}

#[test]
fn sigterm_finishes_the_batch_in_flight_and_exits_zero() {
    let rig = Rig::new("watch-sigterm", 30, 5);
    // The SIEM takes its time over the first request: SIGTERM arrives while it is sent.
    rig.siem.script([Reply::Hang(Duration::from_millis(1500))]);
    let mut watch = rig.spawn();
    let a = rig.put(0, 4, minutes_ago(4));
    rig.notify(Shape::S3, &a.0, &a.1);
    rig.wait_for_siem_request();
    assert_eq!(terminate(&mut watch), Some(0), "{}", rig.log());
    // Finished, not abandoned: written, accepted, and its message deleted.
    assert_eq!(rig.ids_in_files().len(), 4, "{}", rig.log());
    assert_eq!(rig.moto.approximate_counts(&rig.queue.url), (0, 0));
    assert!(rig.siem.accepted_events() >= 4, "{}", rig.log());
    assert!(rig.log().contains("stopping after the batch in flight"));
}

/// Writes a trail file delivered at `delivered` with events `first..first + n`, in `trail`.
fn deliver(trail: &Path, first: usize, n: usize, delivered: Timestamp) {
    let utc = delivered.to_zoned_datetime(jiff::tz::TimeZone::UTC);
    let start = (delivered - jiff::SignedDuration::from_mins(2)).to_string();
    helpers::write_trail_file(
        &trail.join(format!(
            "AWSLogs/111122223333/CloudTrail/us-east-1/{}/111122223333_CloudTrail_us-east-1_{}_{first:06}.json.gz",
            utc.strftime("%Y/%m/%d"),
            utc.strftime("%Y%m%dT%H%MZ"),
        )),
        &events(first, n, &start, 0),
    );
}

#[test]
fn polling_a_growing_trail_reads_each_object_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let trail = root.join("trail");
    deliver(&trail, 0, 2, minutes_ago(50));
    fs::write(
        root.join("connect-audit.toml"),
        r#"
        [report]
        trail = "trail"
        since = "1d"
        [incremental]
        state = "state.json"
        [watch]
        health = "1s"
        [[exporters]]
        type = "jsonl"
        path = "out/audit-{batch}.jsonl"
        "#,
    )
    .unwrap();
    let mut watch = Running(
        helpers::command(root, &["watch", "--poll", "1s"], &[])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                fs::File::create(root.join("watch.log")).unwrap(),
            ))
            .spawn()
            .unwrap(),
    );
    let log = || fs::read_to_string(root.join("watch.log")).unwrap_or_default();
    let ids_written = || {
        let texts = helpers::jsonl_texts(&root.join("out"));
        helpers::id_counts(texts.iter().map(Vec::as_slice))
    };
    let wait_for = |want: &[usize]| {
        let want: Vec<String> = want.iter().copied().map(id).collect();
        let deadline = Instant::now() + Duration::from_mins(1);
        loop {
            let found = ids_written();
            assert!(found.values().all(|c| *c == 1), "{found:?}\n{}", log());
            if found.keys().cloned().collect::<Vec<_>>() == want {
                return;
            }
            assert!(Instant::now() < deadline, "{found:?}\n{}", log());
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait_for(&[0, 1]);
    // A file, then one of the same minute put after it was read, whose name sorts before it.
    deliver(&trail, 3, 1, minutes_ago(10));
    wait_for(&[0, 1, 3]);
    deliver(&trail, 2, 1, minutes_ago(10));
    wait_for(&[0, 1, 2, 3]);
    // A newer file, then a late one: put after it, named within the lateness before it.
    deliver(&trail, 4, 1, minutes_ago(3));
    wait_for(&[0, 1, 2, 3, 4]);
    deliver(&trail, 5, 1, minutes_ago(6));
    wait_for(&[0, 1, 2, 3, 4, 5]);
    // Quiet passes write nothing.
    std::thread::sleep(Duration::from_secs(2));
    let outputs = files(&root.join("out")).len();
    assert!(
        outputs <= 5,
        "a file per pass that read something: {outputs}"
    );
    assert_eq!(terminate(&mut watch), Some(0), "{}", log());
    let state: Value =
        serde_json::from_str(&fs::read_to_string(root.join("state.json")).unwrap()).unwrap();
    let folder = &state["objects"]["folders"]["AWSLogs/111122223333/CloudTrail/us-east-1/"];
    assert!(folder["newest"].is_string(), "{state}");
    assert!(log().contains("connect-audit watch: health:"), "{}", log());
}

#[test]
fn incremental_runs_read_only_new_objects_counted_at_the_s3_server() {
    let garage = Garage::shared();
    let rt = Runtime::new().unwrap();
    let prefix = garage.unique_prefix("incremental-objects");
    let client = garage.client();
    let put = |key: String, body: Vec<u8>| {
        rt.block_on(
            client
                .put_object()
                .bucket(garage.bucket())
                .key(format!("{prefix}/{key}"))
                .body(body.into())
                .send(),
        )
        .unwrap();
    };
    let object = |first: usize, delivered: Timestamp| {
        let utc = delivered.to_zoned_datetime(jiff::tz::TimeZone::UTC);
        let start = (delivered - jiff::SignedDuration::from_mins(2)).to_string();
        (
            format!(
                "AWSLogs/111122223333/CloudTrail/us-east-1/{}/111122223333_CloudTrail_us-east-1_{}_{first:06}.json.gz",
                utc.strftime("%Y/%m/%d"),
                utc.strftime("%Y%m%dT%H%MZ"),
            ),
            gzip(&json!({ "Records": events(first, 1, &start, 0) })),
        )
    };
    // 30 days, four objects a day.
    let now = Timestamp::now();
    let mut n = 0;
    for hours in (2..30 * 24_i32).step_by(6).rev() {
        let (key, body) = object(n, now - jiff::SignedDuration::from_hours(hours.into()));
        put(key, body);
        n += 1;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::write(
        root.join("connect-audit.toml"),
        format!(
            r#"
            [report]
            trail = "s3://{bucket}/{prefix}"
            since = "31d"
            [incremental]
            state = "state.json"
            [[exporters]]
            type = "jsonl"
            path = "out/audit-{{since}}.jsonl"
            "#,
            bucket = garage.bucket()
        ),
    )
    .unwrap();
    let proxy = connect_audit_tests::s3_proxy::S3Proxy::start(garage.endpoint());
    let mut env = garage.aws_env();
    for (k, v) in &mut env {
        if *k == "AWS_ENDPOINT_URL" {
            *v = proxy.endpoint().to_owned();
        }
    }
    let run = || {
        proxy.clear_log();
        let out = helpers::connect_audit(root, &["report", "--incremental"], &env);
        assert_eq!(out.status.code(), Some(0), "{}", helpers::stderr(&out));
        let gets = proxy
            .requests()
            .iter()
            .filter(|r| r.operation() == "GetObject")
            .count();
        let lists = proxy
            .requests()
            .iter()
            .filter(|r| r.operation() == "ListObjectsV2")
            .count();
        (gets, lists, helpers::stderr(&out))
    };
    let (gets, _, first) = run();
    assert_eq!(gets, n, "the first run reads the 30 days: {first}");
    // One new hour: two objects.
    let (key, body) = object(n, now - jiff::SignedDuration::from_mins(50));
    put(key, body);
    let (key, body) = object(n + 1, now - jiff::SignedDuration::from_mins(20));
    put(key, body);
    let (gets, lists, second) = run();
    assert_eq!(gets, 2, "only the new hour's objects are read: {second}");
    assert!(lists <= 8, "and a few listings: {lists}\n{second}");
    assert!(second.contains(", 2 read ("), "{second}");
    let (gets, _, third) = run();
    assert_eq!(gets, 0, "nothing new, nothing read: {third}");
    assert!(
        proxy
            .requests()
            .iter()
            .any(|r| r.operation() == "ListObjectsV2" && r.request.has_param("start-after")),
        "the listing starts after the newest key read less the lateness"
    );
    // A late object: named 5 minutes before the newest read, put after it was read.
    let (key, body) = object(n + 2, now - jiff::SignedDuration::from_mins(25));
    put(key, body);
    let (gets, _, fourth) = run();
    assert_eq!(
        gets, 1,
        "the late object, within the lateness, is read: {fourth}"
    );
    let texts: Vec<Vec<u8>> = files(&root.join("out"))
        .iter()
        .map(|p| fs::read(p).unwrap())
        .collect();
    let written = helpers::id_counts(texts.iter().map(Vec::as_slice));
    assert_eq!(written.len(), n + 3, "{first}\n{second}\n{third}\n{fourth}");
    assert!(written.values().all(|c| *c == 1));
}

#[test]
fn a_batch_longer_than_the_visibility_timeout_keeps_its_messages_hidden() {
    // Held 2 s at a time; the SIEM takes two failed 1.5 s attempts before it accepts, so the
    // batch lasts well past the timeout.
    let rig = Rig::new("watch-visibility", 2, 5);
    // Each of the SIEM's first two answers takes 1.9 s and fails: the batch lasts 3.8 s and
    // more from its first request.
    rig.siem.script([
        Reply::Hang(Duration::from_millis(1900)),
        Reply::Hang(Duration::from_millis(1900)),
    ]);
    let mut watch = rig.spawn();
    let object = rig.put(0, 3, minutes_ago(3));
    rig.notify(Shape::S3, &object.0, &object.1);
    rig.wait_for_siem_request();
    // Received before the first request: past its 2 s timeout now, and the batch not done.
    std::thread::sleep(Duration::from_millis(2800));
    assert_eq!(
        rig.moto.approximate_counts(&rig.queue.url),
        (0, 1),
        "the message is still held, past its 2 s timeout\n{}",
        rig.log()
    );
    rig.wait_for(&ids(0..3));
    assert_eq!(terminate(&mut watch), Some(0), "{}", rig.log());
    let log = rig.log();
    assert_eq!(last_health(&log, "messages"), 1, "received once: {log}");
    assert!(!log.contains("Finishing a batch"), "{log}");
}
