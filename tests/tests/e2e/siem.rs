//! The SIEM webhook exporter against a real local receiver: retries through throttling,
//! server errors, hangs and dropped connections; the dead-letter file and its replay; the
//! Splunk envelope and the Standard Webhooks signature; and the CLI run that must never print
//! the token.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use connect_audit_config::{ExporterSpec, Secret, SiemFlavor, SiemWebhookSpec};
use connect_audit_core::{ActorKind, AuditRecord, Category, NameSource, Origin, TargetKind};
use connect_audit_exporters::{Error, siem};
use connect_audit_tests::siem_receiver::{ReceivedRequest, Reply, SiemReceiver};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::helpers::{binary, row_key};

const TOKEN: &str = "hec-e2e-token-0f9a8b7c";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn record(i: usize) -> AuditRecord {
    AuditRecord {
        event_time: jiff::Timestamp::from_microsecond(
            1_714_641_242_000_000 + 1_250_000 * i64::try_from(i).unwrap(),
        )
        .unwrap(),
        event_id: format!("event-{i:04}"),
        target_index: 0,
        event_name: "UpdateUserSecurityProfiles".into(),
        category: Category::ALL[i % Category::ALL.len()],
        account_id: "111122223333".into(),
        region: "ap-northeast-1".into(),
        instance_id: Some("6762b34f-4e26-4a8e-a032-35a1e58e1b1c".into()),
        actor_kind: ActorKind::ALL[i % ActorKind::ALL.len()],
        actor_id: Some(format!("actor-{i}")),
        actor_name: Some("alice.admin".into()),
        actor_arn: None,
        target_kind: TargetKind::ALL[i % TargetKind::ALL.len()],
        target_id: Some(format!("target-{i}")),
        target_name: Some(format!("agent \"{i}\" 日本")),
        name_source: NameSource::ALL[i % NameSource::ALL.len()],
        origin: Origin::ALL[i % Origin::ALL.len()],
        source_ip: None,
        user_agent: None,
        error_code: None,
        error_message: None,
        request_parameters: Some(format!(r#"{{"UserId":"target-{i}"}}"#)),
        response_elements: None,
        // No change decoded: the change stage's columns empty.
        ..AuditRecord::new(jiff::Timestamp::UNIX_EPOCH, "", "", Category::User)
    }
}

fn records(n: usize) -> Vec<AuditRecord> {
    (0..n).map(record).collect()
}

/// A fast-retrying spec: 1 s timeout, millisecond backoffs.
fn spec(flavor: SiemFlavor, receiver: &SiemReceiver, dead_letter: &Path) -> SiemWebhookSpec {
    let mut spec = SiemWebhookSpec::new(flavor, receiver.url());
    match flavor {
        SiemFlavor::SplunkHec => spec.token = Some(Secret::new(TOKEN)),
        SiemFlavor::StandardWebhooks => spec.secret = Some(Secret::new(SECRET)),
    }
    spec.max_events = 7;
    spec.concurrency = 2;
    spec.timeout_secs = 1;
    spec.retry_initial_ms = 10;
    spec.retry_max_ms = 200;
    spec.dead_letter = dead_letter.display().to_string();
    spec
}

fn export(spec: &SiemWebhookSpec, records: &[AuditRecord]) -> Result<u64, Error> {
    let mut exporter = connect_audit_exporters::build(
        &ExporterSpec::SiemWebhook(spec.clone()).validated().unwrap(),
    )
    .unwrap();
    for chunk in records.chunks(10) {
        exporter.write(chunk).unwrap();
    }
    exporter.finish().map(|summary| summary.records)
}

/// Ids of the events in requests the receiver accepted, with how often each was accepted.
fn accepted(requests: &[ReceivedRequest]) -> BTreeMap<String, usize> {
    let mut ids = BTreeMap::new();
    for request in requests.iter().filter(|r| r.reply.accepted()) {
        for id in &request.event_ids {
            *ids.entry(id.clone()).or_default() += 1;
        }
    }
    ids
}

/// The dead-letter file's lines.
fn dead_letter_lines(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn ids_of(lines: &[Value]) -> BTreeSet<String> {
    lines.iter().map(|line| row_key(&line["record"])).collect()
}

/// The script that exercises every failure: a success, throttling with `Retry-After`, a
/// server error, a hang past the timeout, a dropped connection, and one refusal.
fn mixed_script() -> Vec<Reply> {
    vec![
        Reply::Ok,
        Reply::too_many("1"),
        Reply::status(503),
        Reply::Hang(Duration::from_secs(3)),
        Reply::Drop,
        Reply::status(400),
    ]
}

/// Every event arrives, none is lost, and only the refused batch is dead-lettered.
fn check_mixed_delivery(
    requests: &[ReceivedRequest],
    all: &BTreeSet<String>,
    dead_letter: &Path,
) -> BTreeSet<String> {
    let refused: Vec<_> = requests
        .iter()
        .filter(|r| matches!(r.reply, Reply::Status { code: 400, .. }))
        .collect();
    assert_eq!(refused.len(), 1);
    let refused_ids: BTreeSet<String> = refused[0].event_ids.iter().cloned().collect();
    let refused_at = requests
        .iter()
        .position(|r| matches!(r.reply, Reply::Status { code: 400, .. }))
        .unwrap();
    assert!(
        requests[refused_at + 1..]
            .iter()
            .all(|r| r.event_ids != refused[0].event_ids),
        "a 400 is not retried"
    );
    let lines = dead_letter_lines(dead_letter);
    assert_eq!(ids_of(&lines), refused_ids, "exactly the refused batch");
    assert_eq!(lines.len(), refused_ids.len());
    for line in &lines {
        assert_eq!(line["status"], 400);
        assert!(line["reason"].as_str().unwrap().contains("400"), "{line}");
    }
    let delivered = accepted(requests);
    let delivered_ids: BTreeSet<String> = delivered.keys().cloned().collect();
    assert!(delivered_ids.is_disjoint(&refused_ids));
    let union: BTreeSet<String> = delivered_ids.union(&refused_ids).cloned().collect();
    assert_eq!(&union, all, "no event is lost");
    let seen: BTreeSet<&String> = requests.iter().flat_map(|r| &r.event_ids).collect();
    assert_eq!(seen.len(), all.len(), "every event arrived at least once");
    refused_ids
}

#[test]
fn splunk_hec_delivers_through_throttling_errors_hangs_and_drops_and_dead_letters_a_refusal() {
    let receiver = SiemReceiver::start();
    receiver.script(mixed_script());
    let dir = tempfile::tempdir().unwrap();
    let dead_letter = dir.path().join("dl/dead.jsonl");
    let mut spec = spec(SiemFlavor::SplunkHec, &receiver, &dead_letter);
    spec.index = Some("connect_audit".into());
    spec.host = Some("audit-runner".into());
    let input = records(60);
    let err = export(&spec, &input).unwrap_err();

    let requests = receiver.requests();
    let all: BTreeSet<String> = input.iter().map(|r| r.event_id.clone()).collect();
    let refused = check_mixed_delivery(&requests, &all, &dead_letter);
    let Error::DeadLettered {
        events,
        batches,
        delivered,
        ref path,
        ..
    } = err
    else {
        panic!("{err}")
    };
    assert_eq!((events, batches), (refused.len() as u64, 1));
    assert_eq!(delivered, 60 - events);
    assert_eq!(path, &dead_letter);
    let message = err.to_string();
    assert!(
        message.contains(&dead_letter.display().to_string()),
        "{message}"
    );
    assert!(message.contains(&format!("{events} event(s)")), "{message}");
    assert!(!message.contains(TOKEN), "{message}");

    let by_id: BTreeMap<&str, &AuditRecord> =
        input.iter().map(|r| (r.event_id.as_str(), r)).collect();
    for request in &requests {
        assert_eq!(request.method, "POST");
        assert_eq!(request.target, "/services/collector/event");
        assert_eq!(
            request.header("authorization"),
            Some(&*format!("Splunk {TOKEN}"))
        );
        assert!(request.header("content-encoding").is_none());
        assert!(request.event_ids.len() <= 7);
        for envelope in serde_json::Deserializer::from_slice(&request.body).into_iter::<Value>() {
            let envelope = envelope.unwrap();
            let id = envelope["fields"]["event_id"].as_str().unwrap();
            let record = by_id[id];
            let micros = record.event_time.as_microsecond();
            #[allow(clippy::cast_precision_loss)]
            let seconds = micros as f64 / 1e6;
            assert!(
                (envelope["time"].as_f64().unwrap() - seconds).abs() < 1e-6,
                "{envelope}"
            );
            assert_eq!(envelope["host"], "audit-runner");
            assert_eq!(envelope["source"], "connect-audit");
            assert_eq!(envelope["sourcetype"], "aws:connect:audit");
            assert_eq!(envelope["index"], "connect_audit");
            assert_eq!(envelope["event"], serde_json::to_value(record).unwrap());
        }
    }
    // The batch throttled with `Retry-After: 1` came back no sooner than a second later.
    let throttled = requests
        .iter()
        .position(|r| matches!(r.reply, Reply::Status { code: 429, .. }))
        .unwrap();
    let again = requests[throttled + 1..]
        .iter()
        .find(|r| r.event_ids == requests[throttled].event_ids)
        .expect("the throttled batch is retried");
    assert!(
        again.at - requests[throttled].at >= Duration::from_millis(950),
        "Retry-After honoured: {:?}",
        again.at - requests[throttled].at
    );
    // Dead-lettered records are the records, as JSON Lines writes them.
    for line in dead_letter_lines(&dead_letter) {
        let record: AuditRecord = serde_json::from_value(line["record"].clone()).unwrap();
        assert_eq!(&record, by_id[record.event_id.as_str()]);
        assert!(
            line["exporter"]
                .as_str()
                .unwrap()
                .starts_with("siem-webhook http://127.0.0.1:")
        );
    }
}

fn hex_sha256_of_ids(ids: &[String]) -> String {
    let mut hash = Sha256::new();
    for id in ids {
        hash.update(id.as_bytes());
        hash.update(b"\n");
    }
    hash.finalize().iter().fold(String::new(), |mut hex, b| {
        hex.push(char::from_digit(u32::from(b >> 4), 16).unwrap());
        hex.push(char::from_digit(u32::from(b & 0xf), 16).unwrap());
        hex
    })
}

/// Verifies a Standard Webhooks request as a receiver would (the reference libraries'
/// algorithm, written here with the `hmac` crate).
fn verify_standard_webhook(request: &ReceivedRequest) -> (String, i64) {
    let id = request.header("webhook-id").expect("webhook-id").to_owned();
    let timestamp: i64 = request
        .header("webhook-timestamp")
        .expect("webhook-timestamp")
        .parse()
        .unwrap();
    let now = jiff::Timestamp::now().as_second();
    assert!((now - timestamp).abs() < 300, "timestamp within tolerance");
    let key = STANDARD
        .decode(SECRET.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&request.body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    let signatures = request
        .header("webhook-signature")
        .expect("webhook-signature");
    assert!(
        signatures.split(' ').any(|s| s == expected),
        "{signatures} != {expected}"
    );
    (id, timestamp)
}

#[test]
fn standard_webhooks_are_signed_gzipped_and_keep_their_id_across_retries() {
    let receiver = SiemReceiver::start();
    let soon = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(1);
    let http_date = jiff::fmt::rfc2822::DateTimePrinter::new()
        .timestamp_to_rfc9110_string(&soon)
        .unwrap();
    receiver.script([
        Reply::status(503),
        Reply::too_many(&http_date),
        Reply::Drop,
        Reply::Hang(Duration::from_secs(3)),
        Reply::status(500),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let dead_letter = dir.path().join("dead.jsonl");
    let mut spec = spec(SiemFlavor::StandardWebhooks, &receiver, &dead_letter);
    spec.gzip = true;
    spec.url = format!("{}/hooks/audit", receiver.url());
    let input = records(40);
    assert_eq!(export(&spec, &input).unwrap(), 40);
    assert!(!dead_letter.exists(), "nothing to dead-letter");

    let requests = receiver.requests();
    let mut id_of_batch: BTreeMap<Vec<String>, String> = BTreeMap::new();
    for request in &requests {
        assert_eq!(request.target, "/hooks/audit");
        assert_eq!(request.header("content-encoding"), Some("gzip"));
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert!(request.raw_body.starts_with(&[0x1f, 0x8b]), "gzip magic");
        let array: Vec<AuditRecord> = serde_json::from_slice(&request.body).unwrap();
        let ids: Vec<String> = array.iter().map(|r| r.event_id.clone()).collect();
        assert_eq!(ids, request.event_ids);
        let (webhook_id, _) = verify_standard_webhook(request);
        assert_eq!(webhook_id, format!("msg_{}", hex_sha256_of_ids(&ids)));
        let previous = id_of_batch.entry(ids).or_insert_with(|| webhook_id.clone());
        assert_eq!(previous, &webhook_id, "the same id on every retry");
    }
    let distinct: BTreeSet<&String> = id_of_batch.values().collect();
    assert_eq!(
        distinct.len(),
        id_of_batch.len(),
        "batches have distinct ids"
    );
    assert!(
        requests.len() >= id_of_batch.len() + 5,
        "the failures were retried"
    );
    let delivered = accepted(&requests);
    assert_eq!(delivered.len(), 40);
    assert!(
        delivered.values().all(|&n| n == 1),
        "accepted once each: {delivered:?}"
    );
}

#[test]
fn replay_sends_the_dead_letter_again_once_the_receiver_accepts() {
    let receiver = SiemReceiver::start();
    receiver.script([Reply::status(400), Reply::status(401), Reply::status(413)]);
    let dir = tempfile::tempdir().unwrap();
    let dead_letter = dir.path().join("dead.jsonl");
    let mut spec = spec(SiemFlavor::SplunkHec, &receiver, &dead_letter);
    spec.concurrency = 1;
    let input = records(30);
    let err = export(&spec, &input).unwrap_err();
    assert!(
        matches!(
            err,
            Error::DeadLettered {
                events: 21,
                batches: 3,
                ..
            }
        ),
        "{err}"
    );
    let dead = ids_of(&dead_letter_lines(&dead_letter));
    assert_eq!(dead.len(), 21);
    // Its records name people: owner-only, as every output file.
    #[cfg(unix)]
    assert_eq!(super::helpers::mode(&dead_letter), 0o600);

    // One batch is refused again: only its records stay in the file.
    receiver.clear();
    receiver.script([Reply::status(400)]);
    let err = siem::replay(&spec, &dead_letter).unwrap_err();
    assert!(
        matches!(
            err,
            Error::DeadLettered {
                events: 7,
                delivered: 14,
                ..
            }
        ),
        "{err}"
    );
    let first = receiver.requests();
    let still_dead = ids_of(&dead_letter_lines(&dead_letter));
    assert_eq!(still_dead.len(), 7);
    #[cfg(unix)]
    assert_eq!(
        super::helpers::mode(&dead_letter),
        0o600,
        "the file a replay leaves is owner-only too"
    );
    assert!(still_dead.is_subset(&dead));
    let replayed: BTreeSet<String> = accepted(&first).into_keys().collect();
    assert_eq!(
        replayed
            .union(&still_dead)
            .cloned()
            .collect::<BTreeSet<_>>(),
        dead
    );

    receiver.clear();
    let summary = siem::replay(&spec, &dead_letter).unwrap();
    assert_eq!(summary.records, 7);
    assert_eq!(summary.dead_letter, dead_letter);
    assert!(!dead_letter.exists(), "an empty dead letter is removed");
    let replayed: BTreeSet<String> = accepted(&receiver.requests()).into_keys().collect();
    assert_eq!(replayed, still_dead);
    let leftovers: Vec<PathBuf> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(leftovers.is_empty(), "no temporary files: {leftovers:?}");
}

#[test]
fn a_missing_token_variable_is_refused_at_build_without_a_request() {
    let receiver = SiemReceiver::start();
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec(
        SiemFlavor::SplunkHec,
        &receiver,
        &dir.path().join("d.jsonl"),
    );
    spec.token = None;
    spec.token_env = Some("E2E_SIEM_UNSET_TOKEN_VARIABLE".into());
    let valid = ExporterSpec::SiemWebhook(spec).validated().unwrap();
    let Err(err) = connect_audit_exporters::build(&valid) else {
        panic!("built without its token")
    };
    assert!(
        err.to_string()
            .contains("E2E_SIEM_UNSET_TOKEN_VARIABLE is not set"),
        "{err}"
    );
    assert!(receiver.requests().is_empty());
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn cli_report_into_a_flaky_splunk_exits_non_zero_naming_the_dead_letter_and_hides_the_token() {
    let receiver = SiemReceiver::start();
    receiver.script(mixed_script());
    let dir = tempfile::tempdir().unwrap();
    let examples = repo().join("examples");
    let toml_path = |p: &Path| p.display().to_string().replace('\\', "/");
    let config = format!(
        r#"[report]
trail = "{trail}"
snapshot = "{snapshot}"
since = "2024-05-01"
until = "2024-05-08"
events = ["all"]

[[exporters]]
type = "jsonl"
path = "all.jsonl"

[[exporters]]
type = "siem-webhook"
flavor = "splunk-hec"
url = "{url}"
token_env = "E2E_SIEM_HEC_TOKEN"
max_events = 5
concurrency = 2
timeout_secs = 1
retry_initial_ms = 10
retry_max_ms = 200
dead_letter = "dead/siem.jsonl"
"#,
        trail = toml_path(&examples.join("trail")),
        snapshot = toml_path(&examples.join("snapshot")),
        url = receiver.url(),
    );
    fs::write(dir.path().join("siem.toml"), config).unwrap();
    let out = Command::new(binary())
        .args(["-vv", "report", "--config", "siem.toml"])
        .current_dir(dir.path())
        .env_remove("CONNECT_AUDIT_CONFIG")
        .env("RUST_LOG", "trace")
        .env("E2E_SIEM_HEC_TOKEN", TOKEN)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stdout.contains(TOKEN) && !stderr.contains(TOKEN),
        "the token leaked"
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let dead_letter = dir.path().join("dead/siem.jsonl");
    assert!(
        stderr.contains("dead/siem.jsonl"),
        "the dead letter is named: {stderr}"
    );

    let all: BTreeSet<String> = fs::read_to_string(dir.path().join("all.jsonl"))
        .unwrap()
        .lines()
        .map(|line| row_key(&serde_json::from_str::<Value>(line).unwrap()))
        .collect();
    assert!(all.len() > 30, "{} events", all.len());
    let requests = receiver.requests();
    check_mixed_delivery(&requests, &all, &dead_letter);
    for request in &requests {
        assert_eq!(
            request.header("authorization"),
            Some(&*format!("Splunk {TOKEN}"))
        );
    }

    // `config show` prints the spec with the token hidden.
    fs::write(
        dir.path().join("show.toml"),
        format!(
            "[[exporters]]\ntype = 'siem-webhook'\nflavor = 'splunk-hec'\nurl = 'https://splunk:8088'\ntoken = '{TOKEN}'\n"
        ),
    )
    .unwrap();
    let out = Command::new(binary())
        .args(["config", "show", "--config", "show.toml"])
        .current_dir(dir.path())
        .env_remove("CONNECT_AUDIT_CONFIG")
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!shown.contains(TOKEN), "{shown}");
    assert!(shown.contains("token = \"***\""), "{shown}");
}

#[test]
fn config_check_names_bad_siem_fields_without_quoting_credentials() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("connect-audit.toml"),
        "[report]\ntrail = 'trail'\nsince = '2024-05-01'\n\
         [[exporters]]\ntype = 'siem-webhook'\nflavor = 'standard-webhooks'\n\
         url = 'https://hook-user:hook-password-77@hooks.example.com/in'\n\
         secret = 'whsec_not-base64-secret-66!'\nconcurrency = 0\n",
    )
    .unwrap();
    let out = Command::new(binary())
        .args(["config", "check"])
        .current_dir(dir.path())
        .env_remove("CONNECT_AUDIT_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for key in [
        "exporters[0].url",
        "exporters[0].secret",
        "exporters[0].concurrency",
    ] {
        assert!(stderr.contains(key), "{key}: {stderr}");
    }
    assert!(
        !stderr.contains("hook-password-77") && !stderr.contains("secret-66"),
        "{stderr}"
    );
}

#[test]
fn ocsf_events_to_a_webhook_and_the_replay_command_delivers_the_dead_letter() {
    let receiver = SiemReceiver::start();
    // The second batch is refused (400): it goes to the dead letter; everything else lands.
    receiver.script([Reply::Ok, Reply::status(400)]);
    let dir = tempfile::tempdir().unwrap();
    let examples = repo().join("examples");
    let toml_path = |p: &Path| p.display().to_string().replace('\\', "/");
    fs::write(
        dir.path().join("connect-audit.toml"),
        format!(
            r#"[report]
trail = "{trail}"
snapshot = "{snapshot}"
since = "2024-05-01"
until = "2024-05-08"

[[exporters]]
type = "siem-webhook"
flavor = "standard-webhooks"
url = "{url}"
secret_env = "E2E_WEBHOOK_SECRET"
schema = "ocsf"
max_events = 4
concurrency = 1
timeout_secs = 1
retry_initial_ms = 10
dead_letter = "dead/hook.jsonl"

# After the webhook: a failed webhook must not keep this file from being written.
[[exporters]]
type = "jsonl"
path = "all.jsonl"
"#,
            trail = toml_path(&examples.join("trail")),
            snapshot = toml_path(&examples.join("snapshot")),
            url = receiver.url(),
        ),
    )
    .unwrap();
    let connect_audit = |args: &[&str]| {
        Command::new(binary())
            .args(args)
            .current_dir(dir.path())
            .env_remove("CONNECT_AUDIT_CONFIG")
            .env("E2E_WEBHOOK_SECRET", SECRET)
            .output()
            .unwrap()
    };
    let out = connect_audit(&["report"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("dead/hook.jsonl"), "{stderr}");
    let dead_letter = dir.path().join("dead/hook.jsonl");
    let parked = fs::read_to_string(&dead_letter).unwrap().lines().count();
    assert_eq!(parked, 4, "exactly the refused batch");

    // OCSF events: `metadata.uid` is the event id; every request is signed.
    let delivered_uids = |requests: &[ReceivedRequest]| -> Vec<String> {
        requests
            .iter()
            .filter(|r| r.reply.accepted())
            .flat_map(|r| {
                let events: Value = serde_json::from_slice(&r.body).unwrap();
                events
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| {
                        assert!(e["class_uid"].is_u64(), "an OCSF event: {e}");
                        e["metadata"]["uid"].as_str().unwrap().to_owned()
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let first = delivered_uids(&receiver.requests());
    for request in receiver.requests() {
        assert!(request.header("webhook-signature").is_some());
    }
    receiver.clear();

    let out = connect_audit(&["replay", "dead/hook.jsonl"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("replayed 4 records"), "{stderr}");
    assert!(!dead_letter.exists(), "removed once delivered");
    let replayed = delivered_uids(&receiver.requests());
    assert!(replayed.len() >= 4, "{replayed:?}");

    // Every OCSF event of every record: a `CreateUser` that gives profiles is two.
    let all: BTreeSet<String> = fs::read_to_string(dir.path().join("all.jsonl"))
        .unwrap()
        .lines()
        .flat_map(|l| {
            let record: AuditRecord = serde_json::from_str(l).unwrap();
            connect_audit_exporters::ocsf::to_ocsf_events(&record)
                .into_iter()
                .map(|e| e["metadata"]["uid"].as_str().unwrap().to_owned())
        })
        .collect();
    assert!(
        all.iter().any(|uid| uid.ends_with("/privileges")),
        "the examples hold a CreateUser that grants"
    );
    let mut delivered: Vec<String> = first.into_iter().chain(replayed).collect();
    delivered.sort();
    assert_eq!(
        delivered,
        all.iter().cloned().collect::<Vec<_>>(),
        "every event exactly once across the run and the replay"
    );

    // Nothing left to replay: the missing file is named.
    let out = connect_audit(&["replay", "dead/hook.jsonl"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("hook.jsonl"));
}

#[test]
fn a_siem_down_past_its_retries_fails_the_incremental_run_and_the_next_run_delivers_all() {
    let receiver = SiemReceiver::start();
    // Down for every attempt of the first run: 503 far more often than it will be asked.
    receiver.script(std::iter::repeat_n(Reply::status(503), 1000));
    let dir = tempfile::tempdir().unwrap();
    let examples = repo().join("examples");
    let toml_path = |p: &Path| p.display().to_string().replace('\\', "/");
    fs::write(
        dir.path().join("connect-audit.toml"),
        format!(
            r#"[report]
trail = "{trail}"
since = "2024-05-01"

[incremental]
state = "state.json"

[[exporters]]
type = "siem-webhook"
flavor = "splunk-hec"
url = "{url}"
token_env = "E2E_SIEM_HEC_TOKEN"
max_events = 10
timeout_secs = 1
max_retries = 2
retry_initial_ms = 10
retry_max_ms = 50
dead_letter = "dead.jsonl"

[[exporters]]
type = "jsonl"
path = "out/audit-{{since}}.jsonl"
"#,
            trail = toml_path(&examples.join("trail")),
            url = receiver.url(),
        ),
    )
    .unwrap();
    let run = || {
        Command::new(binary())
            .args(["report", "--incremental", "--until", "2024-05-09"])
            .current_dir(dir.path())
            .env_remove("CONNECT_AUDIT_CONFIG")
            .env("E2E_SIEM_HEC_TOKEN", TOKEN)
            .output()
            .unwrap()
    };
    let out = run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("dead.jsonl"), "{stderr}");
    assert!(
        !dir.path().join("state.json").exists(),
        "the state did not advance"
    );
    let file = dir.path().join("out/audit-20240501T000000Z.jsonl");
    let all: BTreeSet<String> = fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| row_key(&serde_json::from_str::<Value>(l).unwrap()))
        .collect();
    assert!(all.len() > 15);
    assert_eq!(
        fs::read_to_string(dir.path().join("dead.jsonl"))
            .unwrap()
            .lines()
            .count(),
        all.len(),
        "every event is in the dead letter"
    );
    assert_eq!(receiver.accepted_events(), 0);

    // The SIEM is back: the next run covers the same window again.
    receiver.clear();
    receiver.unscript();
    let out = run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(dir.path().join("state.json").exists(), "advanced now");
    let delivered = accepted(&receiver.requests());
    assert_eq!(
        delivered.keys().cloned().collect::<BTreeSet<_>>(),
        all,
        "every event reached the SIEM"
    );
    // Files: the repeated run replaced its file; nothing doubled.
    let files: Vec<_> = fs::read_dir(dir.path().join("out")).unwrap().collect();
    assert_eq!(files.len(), 1);
    assert_eq!(
        fs::read_to_string(&file).unwrap().lines().count(),
        all.len()
    );
}
