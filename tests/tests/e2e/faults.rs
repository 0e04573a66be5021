//! Faults at 02:00, each against the real servers of the test suite: S3 answering
//! `503 SlowDown` (a proxy in front of Garage, [`connect_audit_tests::s3_proxy`]), Garage
//! killed mid-scan and mid-upload (a private Garage, stopped and restarted on its data),
//! Connect throttling and failing for longer than a call's retries (the fake Connect API).
//!
//! Every test asks the same of the `connect-audit` binary: bounded retries (counted at the
//! server), a final error naming what failed, exit 1, nothing under a final name from the
//! output that failed (nor from any output when the scan failed), the incremental state as it
//! was — and the next run completes with every event exactly once across the runs' files. (A SIEM down past its retries and a run killed mid-export are in
//! `siem.rs` and `incremental.rs`.) A hung S3 or Connect (a request never answered, a body
//! that stops mid-stream) is bounded by `snapshot.attempt_timeout_secs`: those runs go through
//! [`connect_audit_limited`], so a hang fails the test instead of stalling the suite.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use connect_audit_core::Store;
use connect_audit_tests::fake_connect::{FakeConnect, FakeUser, Fault, Operation};
use connect_audit_tests::garage::Garage;
use connect_audit_tests::s3_proxy::{Outcome, Request, S3Proxy, Seen};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::runtime::Runtime;

use super::helpers::{command, connect_audit, events, files, id_counts, stderr, trail_file};

/// Attempts per AWS call in these tests (`snapshot.max_attempts`), with short backoffs.
const MAX_ATTEMPTS: usize = 3;

/// The `[snapshot]` retry settings of the tests' configurations (`MAX_ATTEMPTS`, 20 ms).
const RETRIES: &str = "[snapshot]\nmax_attempts = 3\nretry_initial_ms = 20\n";

/// The ids of [`events`]`(first, n, …)`.
fn ids(first: usize, n: usize) -> Vec<String> {
    (first..first + n)
        .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
        .collect()
}

/// Three files on 2024-05-`day`, 40 events each, numbered from `first` (120 in all).
fn day_of_files(trail: &Path, day: &str, first: usize) {
    for (n, hour) in ["01", "02", "03"].iter().enumerate() {
        let start = format!("2024-05-{day}T{hour}:00:00Z");
        let stamp = format!("202405{day}T{hour}05Z");
        trail_file(trail, day, &stamp, &events(first + n * 40, 40, &start, 0));
    }
}

/// The environment to reach `endpoint` (the proxy) with Garage's credentials.
fn aws_env(garage: &Garage, endpoint: &str) -> Vec<(&'static str, String)> {
    let mut env = garage.aws_env();
    for (name, value) in &mut env {
        if *name == "AWS_ENDPOINT_URL" {
            endpoint.clone_into(value);
        }
    }
    env
}

/// Each id of `ids` once.
fn once(ids: impl IntoIterator<Item = String>) -> BTreeMap<String, usize> {
    ids.into_iter().map(|id| (id, 1)).collect()
}

/// Every object under `prefix` of `bucket`, by key relative to it, with its body.
fn objects(garage: &Garage, prefix: &str) -> Vec<(String, Vec<u8>)> {
    let rt = Runtime::new().unwrap();
    let store = Store::s3(garage.client(), garage.bucket(), prefix);
    rt.block_on(async {
        let mut out = Vec::new();
        for info in store.list("").await.unwrap() {
            let body = store.get(&info.key).await.unwrap().unwrap();
            out.push((info.key, body));
        }
        out
    })
}

/// How the proxy's log shows the attempts at each request target matching `filter`.
fn attempts(seen: &[Seen], filter: impl Fn(&Request) -> bool) -> BTreeMap<String, Vec<Outcome>> {
    let mut out: BTreeMap<String, Vec<Outcome>> = BTreeMap::new();
    for s in seen.iter().filter(|s| filter(&s.request)) {
        out.entry(format!("{} {}", s.request.method, s.request.target))
            .or_default()
            .push(s.outcome);
    }
    out
}

/// The first `s3://…` URL in `text` that ends in `suffix`.
fn url_in(text: &str, suffix: &str) -> String {
    text.split(|c: char| c.is_whitespace() || c == '`' || c == '\'' || c == '"')
        .map(|word| word.trim_end_matches(':'))
        .find(|word| word.starts_with("s3://") && word.ends_with(suffix))
        .unwrap_or_else(|| panic!("no s3://…{suffix} in: {text}"))
        .to_owned()
}

/// Whether an object key ends in `.<extension>`.
fn has_extension(key: &str, extension: &str) -> bool {
    Path::new(key).extension().is_some_and(|e| e == extension)
}

/// A trail of [`day_of_files`] for each `(day, first)` of `days`, written under a fresh
/// directory's `trail/` and uploaded to `<prefix>/trail` in the shared Garage, under a prefix
/// of its own named after `label`.
fn shared_s3_trail(label: &str, days: &[(&str, usize)]) -> (&'static Garage, String, TempDir) {
    let garage = Garage::shared();
    let prefix = garage.unique_prefix(label);
    let dir = tempfile::tempdir().unwrap();
    let trail = dir.path().join("trail");
    for (day, first) in days {
        day_of_files(&trail, day, *first);
    }
    let rt = Runtime::new().unwrap();
    let client = garage.client();
    rt.block_on(garage.upload_dir(&client, garage.bucket(), &format!("{prefix}/trail"), &trail));
    (garage, prefix, dir)
}

fn is_trail_get(r: &Request) -> bool {
    r.operation() == "GetObject" && r.path().ends_with(".json.gz")
}

#[test]
fn s3_slowing_down_for_a_while_is_retried_and_the_output_is_the_same() {
    let (garage, prefix, dir) = shared_s3_trail("slowdown-blip", &[("02", 0), ("03", 120)]);
    let bucket = garage.bucket();
    let root = dir.path();
    fs::write(
        root.join("connect-audit.toml"),
        format!(
            r#"{RETRIES}
            [report]
            trail = "s3://{bucket}/{prefix}/trail"
            since = "2024-05-01"
            [incremental]
            state = "s3://{bucket}/{prefix}/state/team.json"
            [[exporters]]
            type = "jsonl"
            path = "out/audit-{{since}}.jsonl"
            [[exporters]]
            type = "csv"
            path = "s3://{bucket}/{prefix}/out/audit-{{since}}.csv"
            "#
        ),
    )
    .unwrap();
    // Without faults, straight to Garage: what the run must give.
    let reference = connect_audit(
        root,
        &[
            "report",
            "--until",
            "2024-05-05",
            "--output",
            "reference.jsonl",
        ],
        &garage.aws_env(),
    );
    assert_eq!(reference.status.code(), Some(0), "{}", stderr(&reference));

    // Every request S3 gets is answered SlowDown twice before it is served: one less than
    // the attempts a call has.
    let proxy = S3Proxy::start(garage.endpoint());
    proxy.slow_down(|_| true, 2);
    let out = connect_audit(
        root,
        &["report", "--incremental", "--until", "2024-05-05T00:00:00Z"],
        &aws_env(garage, proxy.endpoint()),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let seen = proxy.requests();
    let per_request = attempts(&seen, |_| true);
    for (request, outcomes) in &per_request {
        assert_eq!(
            outcomes[..],
            [
                Outcome::SlowDown,
                Outcome::SlowDown,
                *outcomes.last().unwrap()
            ],
            "{request}: two SlowDowns, then served"
        );
        assert!(
            matches!(outcomes[2], Outcome::Forwarded(Some(200 | 404))),
            "{request}: {outcomes:?}"
        );
    }
    let operations: Vec<&str> = seen.iter().map(Seen::operation).collect();
    for operation in ["ListObjectsV2", "GetObject", "PutObject"] {
        assert!(operations.contains(&operation), "{operation}: {seen:#?}");
    }
    assert_eq!(
        per_request
            .keys()
            .filter(|r| r.contains(".json.gz"))
            .count(),
        6,
        "every trail file fetched"
    );

    // The same records as the run without faults, in the same order.
    let jsonl = fs::read(root.join("out/audit-20240501T000000Z.jsonl")).unwrap();
    assert!(
        jsonl == fs::read(root.join("reference.jsonl")).unwrap(),
        "the output differs from the run without faults"
    );
    assert_eq!(id_counts([&jsonl[..]]), once(ids(0, 240)));
    let uploaded = objects(garage, &prefix);
    let keys: Vec<&str> = uploaded.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        keys.contains(&"out/audit-20240501T000000Z.csv") && keys.contains(&"state/team.json"),
        "{keys:?}"
    );
    let csv = &uploaded
        .iter()
        .find(|(k, _)| has_extension(k, "csv"))
        .unwrap()
        .1;
    assert_eq!(String::from_utf8_lossy(csv).lines().count(), 1 + 240);
}

#[test]
fn an_object_cut_off_mid_body_is_fetched_again_and_one_never_whole_fails_the_run() {
    let (garage, prefix, dir) = shared_s3_trail("cut-body", &[("02", 0)]);
    let bucket = garage.bucket();
    let root = dir.path();
    fs::write(
        root.join("connect-audit.toml"),
        format!(
            r#"{RETRIES}
            [report]
            trail = "s3://{bucket}/{prefix}/trail"
            since = "2024-05-01"
            [incremental]
            state = "state/team.json"
            [[exporters]]
            type = "jsonl"
            path = "out/audit-{{since}}.jsonl"
            "#
        ),
    )
    .unwrap();
    let proxy = S3Proxy::start(garage.endpoint());
    let env = aws_env(garage, proxy.endpoint());
    let args = ["report", "--incremental", "--until", "2024-05-05T00:00:00Z"];

    // Every trail object is cut off under way, every time: the run fails naming one.
    proxy.cut_body(is_trail_get, u64::MAX);
    let out = connect_audit(root, &args, &env);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let url = url_in(&err, ".json.gz");
    assert!(
        err.contains(&format!(
            "{url}: S3 GetObject failed: reading the body (3 attempts)"
        )),
        "{err}"
    );
    let gets = attempts(&proxy.requests(), is_trail_get);
    let failed = format!("GET /{}", url.strip_prefix("s3://").unwrap());
    let named = gets
        .iter()
        .find(|(r, _)| r.starts_with(&failed))
        .unwrap_or_else(|| panic!("{failed} not requested: {gets:#?}"));
    assert_eq!(named.1[..], [Outcome::Cut; MAX_ATTEMPTS]);
    for (request, outcomes) in &gets {
        assert!(outcomes.len() <= MAX_ATTEMPTS, "{request}: {outcomes:?}");
    }
    assert!(
        files(&root.join("out")).is_empty(),
        "no output, not even a temporary file"
    );
    assert!(!root.join("state/team.json").exists(), "no state");

    // Cut off twice, whole the third time: the run completes as if nothing happened.
    proxy.clear_log();
    proxy.cut_body(is_trail_get, 2);
    let out = connect_audit(root, &args, &env);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let gets = attempts(&proxy.requests(), is_trail_get);
    assert_eq!(gets.len(), 3, "{gets:#?}");
    for (request, outcomes) in &gets {
        assert_eq!(
            outcomes[..],
            [Outcome::Cut, Outcome::Cut, Outcome::Forwarded(Some(200))],
            "{request}"
        );
    }
    let outputs = files(&root.join("out"));
    assert_eq!(outputs.len(), 1, "{outputs:?}");
    assert_eq!(
        id_counts([&fs::read(&outputs[0]).unwrap()[..]]),
        once(ids(0, 120))
    );
}

#[test]
fn s3_slowing_down_for_good_fails_after_bounded_attempts_and_the_next_run_completes() {
    let garage = Garage::shared();
    let bucket = garage.bucket();
    let prefix = garage.unique_prefix("slowdown-down");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let trail = root.join("trail");
    day_of_files(&trail, "02", 0);
    let rt = Runtime::new().unwrap();
    let client = garage.client();
    let upload = |trail: &Path| {
        rt.block_on(garage.upload_dir(&client, bucket, &format!("{prefix}/trail"), trail));
    };
    upload(&trail);
    fs::write(
        root.join("connect-audit.toml"),
        format!(
            r#"{RETRIES}
            [report]
            trail = "s3://{bucket}/{prefix}/trail"
            since = "2024-05-01"
            [incremental]
            state = "s3://{bucket}/{prefix}/state/team.json"
            lookback = "1h"
            [[exporters]]
            type = "jsonl"
            path = "out/audit-{{since}}.jsonl"
            [[exporters]]
            type = "csv"
            path = "s3://{bucket}/{prefix}/out/audit-{{since}}.csv"
            "#
        ),
    )
    .unwrap();
    let proxy = S3Proxy::start(garage.endpoint());
    let env = aws_env(garage, proxy.endpoint());
    let run = || {
        connect_audit(
            root,
            &["report", "--incremental", "--until", "2024-05-05T00:00:00Z"],
            &env,
        )
    };
    let first = connect_audit(
        root,
        &["report", "--incremental", "--until", "2024-05-03T00:00:00Z"],
        &env,
    );
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let state_key = format!("{prefix}/state/team.json");
    let state = || {
        objects(garage, &prefix)
            .into_iter()
            .find(|(k, _)| format!("{prefix}/{k}") == state_key)
            .unwrap()
            .1
    };
    let state_before = state();
    let outputs_before: Vec<String> = objects(garage, &format!("{prefix}/out"))
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(outputs_before, ["audit-20240501T000000Z.csv"]);
    day_of_files(&trail, "04", 120);
    upload(&trail);

    // 1. The trail's objects never come: the scan fails after 3 attempts at an object.
    proxy.clear_log();
    proxy.slow_down(is_trail_get, u64::MAX);
    let out = run();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("GetObject failed: SlowDown: Please reduce your request rate."),
        "{err}"
    );
    let url = url_in(&err, ".json.gz");
    assert!(
        url.starts_with(&format!("s3://{bucket}/{prefix}/trail/AWSLogs/")),
        "{err}"
    );
    assert!(
        err.contains(&format!("scan of s3://{bucket}/{prefix}/trail failed")),
        "{err}"
    );
    let gets = attempts(&proxy.requests(), is_trail_get);
    let failed = format!("GET /{}", url.strip_prefix("s3://").unwrap());
    let named = gets
        .iter()
        .find(|(r, _)| r.starts_with(&failed))
        .unwrap_or_else(|| panic!("{failed} not requested: {gets:#?}"));
    assert_eq!(
        named.1[..],
        [Outcome::SlowDown; MAX_ATTEMPTS],
        "max_attempts tries, then the run gives up"
    );
    for (request, outcomes) in &gets {
        assert!(outcomes.len() <= MAX_ATTEMPTS, "{request}: {outcomes:?}");
        assert!(
            outcomes.iter().all(|o| *o == Outcome::SlowDown),
            "{request}"
        );
    }
    let local = root.join("out/audit-20240502T230000Z.jsonl");
    let unchanged = |what: &str| {
        assert_eq!(state(), state_before, "{what}: the state did not move");
        let outputs: Vec<String> = objects(garage, &format!("{prefix}/out"))
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(outputs, outputs_before, "{what}: no new object");
    };
    unchanged("failed scan");
    assert!(!local.exists(), "no local output under its final name");

    // 2. The upload of the output never lands: the run fails naming the object.
    proxy.clear_log();
    proxy.slow_down(|r| r.operation() == "PutObject", u64::MAX);
    let out = run();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let csv = format!("s3://{bucket}/{prefix}/out/audit-20240502T230000Z.csv");
    assert!(err.contains(&format!("cannot upload {csv}")), "{err}");
    assert!(err.contains("PutObject failed: SlowDown"), "{err}");
    let puts = attempts(&proxy.requests(), |r| r.operation() == "PutObject");
    assert_eq!(
        puts.len(),
        1,
        "only the CSV was tried, not the state: {puts:#?}"
    );
    assert_eq!(
        puts.values().next().unwrap()[..],
        [Outcome::SlowDown; MAX_ATTEMPTS]
    );
    unchanged("failed upload");
    // The local exporter had finished before the uploads (one exporter failing does not cost
    // the others): its file is whole, and the next run, starting at the same place, replaces
    // it rather than add a copy.
    assert_eq!(
        id_counts([&fs::read(&local).unwrap()[..]]),
        once(ids(120, 120))
    );

    // 3. S3 is fine again: the next run delivers the rest, each event once.
    proxy.clear();
    let out = run();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_ne!(state(), state_before);
    let local: Vec<Vec<u8>> = files(&root.join("out"))
        .iter()
        .map(|p| fs::read(p).unwrap())
        .collect();
    assert_eq!(local.len(), 2, "one file per finished run");
    assert_eq!(
        id_counts(local.iter().map(Vec::as_slice)),
        once(ids(0, 240))
    );
    let csv_rows: usize = objects(garage, &format!("{prefix}/out"))
        .iter()
        .map(|(_, body)| String::from_utf8_lossy(body).lines().count() - 1)
        .sum();
    assert_eq!(csv_rows, 240, "the CSV objects hold each event once");
}

/// Starts `args` in `root` and kills Garage once the scan has listed the trail and read two
/// objects, the four others requested and held at the proxy (`release` lets them go on).
fn stop_mid_scan(
    garage: &Garage,
    proxy: &S3Proxy,
    root: &Path,
    args: &[&str],
    env: &[(&'static str, String)],
) -> std::process::Child {
    proxy.hold_after(is_trail_get, 2);
    let child = command(root, args, env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    proxy.wait_for("two trail objects served", |seen| {
        seen.iter()
            .filter(|s| is_trail_get(&s.request) && matches!(s.outcome, Outcome::Forwarded(_)))
            .count()
            == 2
    });
    proxy.wait_until_held(4);
    garage.stop();
    child
}

#[test]
fn garage_stopped_mid_scan_fails_naming_the_object_and_a_blip_is_ridden_out() {
    let garage = Garage::private();
    let bucket = garage.bucket();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let trail = root.join("trail");
    day_of_files(&trail, "02", 0);
    let rt = Runtime::new().unwrap();
    let upload = |trail: &Path| {
        let client = garage.client();
        rt.block_on(garage.upload_dir(&client, bucket, "trail", trail));
    };
    upload(&trail);
    fs::write(
        root.join("connect-audit.toml"),
        format!(
            r#"{RETRIES}
            [report]
            trail = "s3://{bucket}/trail"
            since = "2024-05-01"
            [incremental]
            state = "state/team.json"
            lookback = "1h"
            [[exporters]]
            type = "jsonl"
            path = "out/audit-{{since}}.jsonl"
            [[exporters]]
            type = "csv"
            path = "out/audit-{{since}}.csv"
            "#
        ),
    )
    .unwrap();
    let proxy = S3Proxy::start(garage.endpoint());
    let env = aws_env(&garage, proxy.endpoint());
    let args = ["report", "--incremental", "--until", "2024-05-05T00:00:00Z"];
    let first = connect_audit(
        root,
        &["report", "--incremental", "--until", "2024-05-03T00:00:00Z"],
        &env,
    );
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let state_before = fs::read(root.join("state/team.json")).unwrap();
    let outputs_before = files(&root.join("out"));
    assert_eq!(outputs_before.len(), 2);
    // Six new objects: the run reads only those (not the first run's again).
    day_of_files(&trail, "03", 240);
    day_of_files(&trail, "04", 120);
    upload(&trail);

    // The scan has listed the trail and read two of its six new objects when Garage dies
    // under it, for good.
    proxy.clear_log();
    let child = stop_mid_scan(&garage, &proxy, root, &args, &env);
    proxy.release();
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let url = url_in(&err, ".json.gz");
    assert!(
        url.starts_with(&format!("s3://{bucket}/trail/AWSLogs/")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{url}: S3 GetObject failed")),
        "{err}"
    );
    assert!(err.contains("dispatch failure"), "{err}");
    let gets = attempts(&proxy.requests(), is_trail_get);
    let failed = format!("GET /{}", url.strip_prefix("s3://").unwrap());
    let named = gets
        .iter()
        .find(|(r, _)| r.starts_with(&failed))
        .unwrap_or_else(|| panic!("{failed} not requested: {gets:#?}"));
    assert_eq!(
        named.1[..],
        [Outcome::Unreachable; MAX_ATTEMPTS],
        "max_attempts tries at a dead server, then the run gives up"
    );
    for (request, outcomes) in &gets {
        assert!(outcomes.len() <= MAX_ATTEMPTS, "{request}: {outcomes:?}");
    }
    assert_eq!(
        fs::read(root.join("state/team.json")).unwrap(),
        state_before,
        "the state did not move"
    );
    assert_eq!(
        files(&root.join("out")),
        outputs_before,
        "nothing new under out/, not even a temporary file"
    );

    // Garage comes back with its data. The next run meets a blip: Garage dies at the same
    // point and is back before the next retry; the run rides it out and delivers the rest.
    garage.restart();
    proxy.clear_log();
    let child = stop_mid_scan(&garage, &proxy, root, &args, &env);
    proxy.hold_when_unreachable(4);
    proxy.release();
    proxy.wait_for("the 4 waiting requests found Garage down", |seen| {
        seen.iter()
            .filter(|s| s.outcome == Outcome::Unreachable)
            .count()
            == 4
    });
    proxy.wait_until_held(4);
    garage.restart();
    proxy.resume();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let gets = attempts(&proxy.requests(), is_trail_get);
    let mut tries: Vec<&[Outcome]> = gets.values().map(Vec::as_slice).collect();
    tries.sort_by_key(|t| t.len());
    assert_eq!(
        tries,
        [
            &[Outcome::Forwarded(Some(200))][..],
            &[Outcome::Forwarded(Some(200))],
            &[Outcome::Unreachable, Outcome::Forwarded(Some(200))],
            &[Outcome::Unreachable, Outcome::Forwarded(Some(200))],
            &[Outcome::Unreachable, Outcome::Forwarded(Some(200))],
            &[Outcome::Unreachable, Outcome::Forwarded(Some(200))],
        ],
        "{gets:#?}"
    );
    let outputs = files(&root.join("out"));
    assert_eq!(outputs.len(), 4, "{outputs:?}");
    let jsonl: Vec<Vec<u8>> = outputs
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .map(|p| fs::read(p).unwrap())
        .collect();
    assert_eq!(
        id_counts(jsonl.iter().map(Vec::as_slice)),
        once(ids(0, 360))
    );
    let csv_rows: usize = outputs
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .map(|p| fs::read_to_string(p).unwrap().lines().count() - 1)
        .sum();
    assert_eq!(csv_rows, 360);
}

#[test]
fn garage_stopped_mid_upload_leaves_no_object_and_the_run_after_restart_uploads_all() {
    let garage = Garage::private();
    let bucket = garage.bucket();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let trail = root.join("trail");
    day_of_files(&trail, "02", 0);
    // 7000 events of about 3.6 KB each as JSON Lines: above 16 MiB, a multipart upload.
    trail_file(
        &trail,
        "04",
        "20240504T0105Z",
        &events(120, 7000, "2024-05-04T01:00:00Z", 2500),
    );
    fs::write(
        root.join("connect-audit.toml"),
        format!(
            r#"{RETRIES}
            [report]
            trail = "trail"
            since = "2024-05-01"
            [incremental]
            state = "s3://{bucket}/state/team.json"
            lookback = "1h"
            [[exporters]]
            type = "jsonl"
            path = "s3://{bucket}/out/audit-{{since}}.jsonl"
            [[exporters]]
            type = "csv"
            path = "s3://{bucket}/out/audit-{{since}}.csv"
            columns = ["event_time", "event_id"]
            "#
        ),
    )
    .unwrap();
    let proxy = S3Proxy::start(garage.endpoint());
    let env = aws_env(&garage, proxy.endpoint());
    let args = ["report", "--incremental", "--until", "2024-05-05T00:00:00Z"];
    let first = connect_audit(
        root,
        &["report", "--incremental", "--until", "2024-05-03T00:00:00Z"],
        &env,
    );
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let before = objects(&garage, "");
    let keys = |objects: &[(String, Vec<u8>)]| -> Vec<String> {
        objects.iter().map(|(k, _)| k.clone()).collect()
    };
    assert_eq!(
        keys(&before),
        [
            "out/audit-20240501T000000Z.csv",
            "out/audit-20240501T000000Z.jsonl",
            "state/team.json"
        ]
    );

    // The first part of the JSON Lines object landed when Garage dies.
    proxy.clear_log();
    proxy.hold_after(|r| r.operation() == "UploadPart", 1);
    let child = command(root, &args, &env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    proxy.wait_until_held(1);
    garage.stop();
    proxy.release();
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let jsonl = format!("s3://{bucket}/out/audit-20240502T230000Z.jsonl");
    assert!(err.contains(&format!("cannot upload {jsonl}")), "{err}");
    assert!(err.contains("S3 UploadPart failed"), "{err}");
    let seen = proxy.requests();
    let parts = attempts(&seen, |r| r.operation() == "UploadPart");
    let outcomes: Vec<&[Outcome]> = parts.values().map(Vec::as_slice).collect();
    assert_eq!(
        outcomes,
        [
            &[Outcome::Forwarded(Some(200))][..],
            &[Outcome::Unreachable; MAX_ATTEMPTS][..]
        ],
        "part 1 landed, part 2 tried max_attempts times: {parts:#?}"
    );
    let operations: Vec<&str> = seen.iter().map(Seen::operation).collect();
    assert!(
        operations.contains(&"AbortMultipartUpload"),
        "the upload is aborted (best effort): {operations:?}"
    );
    assert!(
        !operations.contains(&"CompleteMultipartUpload") && !operations.contains(&"PutObject"),
        "never completed, and nothing after it: {operations:?}"
    );

    // Garage comes back: nothing of the failed run is an object, the state is the old one.
    garage.restart();
    assert_eq!(objects(&garage, ""), before);

    let out = connect_audit(root, &args, &env);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let after = objects(&garage, "");
    assert_eq!(
        keys(&after),
        [
            "out/audit-20240501T000000Z.csv",
            "out/audit-20240501T000000Z.jsonl",
            "out/audit-20240502T230000Z.csv",
            "out/audit-20240502T230000Z.jsonl",
            "state/team.json"
        ]
    );
    let big = &after[3].1;
    assert!(big.len() > 16 * 1024 * 1024, "{} bytes", big.len());
    let jsonl: Vec<&[u8]> = after
        .iter()
        .filter(|(k, _)| has_extension(k, "jsonl"))
        .map(|(_, body)| body.as_slice())
        .collect();
    assert_eq!(id_counts(jsonl), once(ids(0, 7120)));
    let csv_rows: usize = after
        .iter()
        .filter(|(k, _)| has_extension(k, "csv"))
        .map(|(_, body)| String::from_utf8_lossy(body).lines().count() - 1)
        .sum();
    assert_eq!(csv_rows, 7120);
}

#[test]
fn connect_throttling_and_failing_past_its_retries_fails_the_run_and_the_next_run_completes() {
    const INSTANCE: &str = "0a1b2c3d-0000-4000-8000-00000000fa17";
    let (fake, users, dir, env) =
        connect_fault_setup(INSTANCE, "max_attempts = 3\nretry_initial_ms = 20", &[]);
    let root = dir.path();
    let args = ["run", "--until", "2024-05-04T00:00:00Z"];
    // Throttled twice, then failing: more faults than one call's 3 attempts.
    fake.inject(Some(Operation::ListUsers), Fault::Throttling, 2);
    fake.inject(Some(Operation::ListUsers), Fault::Internal, 2);

    let out = connect_audit(root, &args, &env);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(INSTANCE), "{err}");
    assert!(err.contains("ListUsers"), "{err}");
    assert!(err.contains("InternalServiceException"), "{err}");
    assert_eq!(
        fake.requests(Operation::ListUsers),
        3,
        "max_attempts tries, then the run gives up"
    );
    assert_eq!(fake.faults_served(Operation::ListUsers), 3);
    assert!(
        files(&root.join("snapshot/users")).is_empty(),
        "no user object from a failed listing"
    );
    // The run log of the failed snapshot says why and lists no instance as seen.
    let logs = files(&root.join("snapshot/runs"));
    assert_eq!(logs.len(), 1, "{logs:?}");
    let log: Value = serde_json::from_slice(&fs::read(&logs[0]).unwrap()).unwrap();
    assert_eq!(log["Instances"], json!([]), "{log}");
    assert!(
        log["Error"]
            .as_str()
            .is_some_and(|e| e.contains("InternalServiceException")),
        "{log}"
    );
    assert!(
        files(&root.join("out")).is_empty(),
        "the report does not run on a failed snapshot"
    );
    assert!(!root.join("state/team.json").exists(), "no state written");

    // Connect recovers (one more 500 left: within the next call's retries).
    fake.reset_counters();
    let out = connect_audit(root, &args, &env);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(
        fake.requests(Operation::ListUsers),
        2,
        "one 500, then served"
    );
    assert_recovered_connect_run(root, &users);
}

/// How long a run that meets a hung server may take before the test kills it and fails: far
/// above what the attempt timeouts of these tests add up to.
const RUN_LIMIT: Duration = Duration::from_mins(2);

/// [`connect_audit`] with stdout and stderr in files and a time limit: a run that hangs is
/// killed and the test fails, instead of the suite hanging.
fn connect_audit_limited(cwd: &Path, args: &[&str], env: &[(&'static str, String)]) -> Output {
    let logs = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (logs.path().join("stdout"), logs.path().join("stderr"));
    let mut child = command(cwd, args, env)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > RUN_LIMIT {
            child.kill().ok();
            child.wait().ok();
            panic!(
                "connect-audit {args:?} still running after {RUN_LIMIT:?} (hung); stderr:\n{}",
                fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: fs::read(&out_path).unwrap(),
        stderr: fs::read(&err_path).unwrap(),
    }
}

/// The `[snapshot]` settings of the hang tests: two attempts per call, one second each.
const HANG_RETRIES: &str =
    "[snapshot]\nmax_attempts = 2\nretry_initial_ms = 20\nattempt_timeout_secs = 1\n";

/// The GetObject of the one trail object the hang tests make S3 hang on (the second file of
/// 2024-05-03).
fn is_hung_object(r: &Request) -> bool {
    is_trail_get(r) && r.path().contains("_20240503T0205Z_")
}

/// A run over an S3 trail, after a good run, meets S3 hanging on one trail object as
/// `hang(proxy, times)` makes it (`times` tries of that object): with `u64::MAX` the run must
/// fail after two attempts at it, each logged `outcome`, with an error containing `detail`,
/// nothing new under out/ and the state unchanged; then with one hung try the run rides it
/// out (timed out, retried, served) and every event is in the outputs exactly once.
fn s3_hangs_on_a_trail_object(
    name: &str,
    hang: impl Fn(&S3Proxy, u64),
    outcome: Outcome,
    detail: &str,
) {
    let garage = Garage::shared();
    let bucket = garage.bucket();
    let prefix = garage.unique_prefix(name);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let trail = root.join("trail");
    day_of_files(&trail, "02", 0);
    let rt = Runtime::new().unwrap();
    let client = garage.client();
    let upload = |trail: &Path| {
        rt.block_on(garage.upload_dir(&client, bucket, &format!("{prefix}/trail"), trail));
    };
    upload(&trail);
    fs::write(
        root.join("connect-audit.toml"),
        format!(
            r#"{HANG_RETRIES}
            [report]
            trail = "s3://{bucket}/{prefix}/trail"
            since = "2024-05-01"
            [incremental]
            state = "state/team.json"
            lookback = "1h"
            [[exporters]]
            type = "jsonl"
            path = "out/audit-{{since}}.jsonl"
            "#
        ),
    )
    .unwrap();
    let proxy = S3Proxy::start(garage.endpoint());
    let env = aws_env(garage, proxy.endpoint());
    let first = connect_audit_limited(
        root,
        &["report", "--incremental", "--until", "2024-05-03T00:00:00Z"],
        &env,
    );
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let state_before = fs::read(root.join("state/team.json")).unwrap();
    let outputs_before = files(&root.join("out"));
    assert_eq!(outputs_before.len(), 1, "{outputs_before:?}");
    day_of_files(&trail, "03", 120);
    upload(&trail);
    let args = ["report", "--incremental", "--until", "2024-05-05T00:00:00Z"];

    // S3 hangs on that object for good: two attempts, each abandoned after a second, then
    // the run fails naming the object.
    proxy.clear_log();
    hang(&proxy, u64::MAX);
    let out = connect_audit_limited(root, &args, &env);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let url = url_in(&err, ".json.gz");
    assert!(url.contains("_20240503T0205Z_"), "the hung object: {err}");
    assert!(
        err.contains(&format!("{url}: S3 GetObject failed")),
        "{err}"
    );
    assert!(err.contains(detail), "{err}");
    assert!(err.contains("timed out"), "{err}");
    let gets = attempts(&proxy.requests(), is_trail_get);
    let tries: Vec<&Vec<Outcome>> = gets
        .iter()
        .filter(|(r, _)| r.contains("_20240503T0205Z_"))
        .map(|(_, outcomes)| outcomes)
        .collect();
    assert_eq!(
        tries,
        [&vec![outcome; 2]],
        "max_attempts tries, each abandoned, then the run gives up: {gets:#?}"
    );
    for (request, outcomes) in &gets {
        assert!(outcomes.len() <= 2, "{request}: {outcomes:?}");
    }
    assert_eq!(
        fs::read(root.join("state/team.json")).unwrap(),
        state_before,
        "the state did not move"
    );
    assert_eq!(
        files(&root.join("out")),
        outputs_before,
        "nothing new under out/, not even a temporary file"
    );

    // The next run: S3 hangs once more on that object, then serves it; the run completes.
    proxy.clear_log();
    hang(&proxy, 1);
    let out = connect_audit_limited(root, &args, &env);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let gets = attempts(&proxy.requests(), is_trail_get);
    assert_eq!(
        gets.keys().filter(|r| r.contains("/2024/05/03/")).count(),
        3,
        "the three new objects fetched: {gets:#?}"
    );
    for (request, outcomes) in &gets {
        let expected = if request.contains("_20240503T0205Z_") {
            vec![outcome, Outcome::Forwarded(Some(200))]
        } else {
            vec![Outcome::Forwarded(Some(200))]
        };
        assert_eq!(outcomes, &expected, "{request}");
    }
    let outputs = files(&root.join("out"));
    assert_eq!(outputs.len(), 2, "{outputs:?}");
    let jsonl: Vec<Vec<u8>> = outputs.iter().map(|p| fs::read(p).unwrap()).collect();
    assert_eq!(
        id_counts(jsonl.iter().map(Vec::as_slice)),
        once(ids(0, 240))
    );
    let state: Value =
        serde_json::from_slice(&fs::read(root.join("state/team.json")).unwrap()).unwrap();
    assert_eq!(state["runs"], 2, "{state}");
}

#[test]
fn an_s3_request_never_answered_times_out_and_is_retried_within_max_attempts() {
    s3_hangs_on_a_trail_object(
        "hang-request",
        |proxy, times| proxy.hang(is_hung_object, times),
        Outcome::Hung,
        // The SDK's attempt timeout.
        "operation attempt timeout",
    );
}

#[test]
fn an_s3_body_that_stalls_mid_stream_times_out_and_is_fetched_again_within_max_attempts() {
    s3_hangs_on_a_trail_object(
        "stall-body",
        |proxy, times| proxy.stall_body(is_hung_object, times),
        Outcome::Stalled,
        // Store::get's bound on the body, counted as an attempt.
        "reading the body (2 attempts): timed out",
    );
}

#[test]
fn a_hung_connect_call_times_out_and_is_retried_within_max_attempts() {
    const INSTANCE: &str = "0a1b2c3d-0000-4000-8000-00000000ba96";
    // The retry and timeout settings from the environment this time.
    let (fake, users, dir, env) = connect_fault_setup(
        INSTANCE,
        "",
        &[
            ("CONNECT_AUDIT_SNAPSHOT__MAX_ATTEMPTS", "2"),
            ("CONNECT_AUDIT_SNAPSHOT__RETRY_INITIAL_MS", "20"),
            ("CONNECT_AUDIT_SNAPSHOT__ATTEMPT_TIMEOUT_SECS", "1"),
        ],
    );
    let root = dir.path();
    let args = ["run", "--until", "2024-05-04T00:00:00Z"];

    // ListUsers is never answered: two attempts, then the run fails naming the call.
    fake.inject(Some(Operation::ListUsers), Fault::Hang, 2);
    let out = connect_audit_limited(root, &args, &env);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("instance {INSTANCE}: Connect ListUsers failed")),
        "{err}"
    );
    assert!(err.contains("timed out"), "{err}");
    assert_eq!(
        fake.requests(Operation::ListUsers),
        2,
        "max_attempts tries, then the run gives up"
    );
    assert_eq!(fake.faults_served(Operation::ListUsers), 2);
    assert!(
        files(&root.join("snapshot/users")).is_empty(),
        "no user object"
    );
    assert!(files(&root.join("out")).is_empty(), "no report output");
    assert!(!root.join("state/team.json").exists(), "no state written");

    // Connect hangs once more, then answers: the run rides it out.
    fake.reset_counters();
    fake.inject(Some(Operation::ListUsers), Fault::Hang, 1);
    let out = connect_audit_limited(root, &args, &env);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        fake.requests(Operation::ListUsers),
        2,
        "one hung, then served"
    );
    assert_recovered_connect_run(root, &users);
}

/// The Connect fault tests' setup: a fake Connect with one instance of 30 users, a local trail
/// of three changes to the first three of them by an admin outside Connect, and a config for
/// `run` (snapshot, then an incremental JSONL report), `snapshot` holding more `[snapshot]`
/// keys (or nothing). Returns the fake, its users, the working directory and the
/// environment for the binary (the AWS settings pointing at the fake, then `extra_env`).
fn connect_fault_setup(
    instance: &str,
    snapshot: &str,
    extra_env: &[(&'static str, &str)],
) -> (
    FakeConnect,
    Vec<FakeUser>,
    TempDir,
    Vec<(&'static str, String)>,
) {
    let fake = FakeConnect::start();
    let users = fake.add_instance(instance, 30);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut records = events(0, 3, "2024-05-02T01:00:00Z", 0);
    for (record, user) in records.iter_mut().zip(&users) {
        record["requestParameters"]["InstanceId"] = json!(instance);
        record["requestParameters"]["UserId"] = json!(user.id);
    }
    trail_file(&root.join("trail"), "02", "20240502T0105Z", &records);
    fs::write(
        root.join("connect-audit.toml"),
        format!(
            r#"
            [report]
            trail = "trail"
            since = "2024-05-01"
            [snapshot]
            store = "snapshot"
            {snapshot}
            [[instances]]
            id = "{instance}"
            region = "us-east-1"
            [incremental]
            state = "state/team.json"
            [[exporters]]
            type = "jsonl"
            path = "out/audit-{{since}}.jsonl"
            "#
        ),
    )
    .unwrap();
    let mut env = vec![
        ("AWS_ENDPOINT_URL_CONNECT", fake.url().to_owned()),
        ("AWS_ACCESS_KEY_ID", "AKIDFAULTS".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "fault-test-secret".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ("AWS_CONFIG_FILE", "/nonexistent/aws-config".to_owned()),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials".to_owned(),
        ),
    ];
    env.extend(extra_env.iter().map(|(k, v)| (*k, (*v).to_owned())));
    (fake, users, dir, env)
}

/// After a Connect fault test's failed run, the run that got through: every user snapshotted,
/// one output with each of the three events once, named from the snapshot, and the state's
/// first run recorded.
fn assert_recovered_connect_run(root: &Path, users: &[FakeUser]) {
    assert_eq!(files(&root.join("snapshot/users")).len(), 30);
    let outputs = files(&root.join("out"));
    assert_eq!(outputs.len(), 1, "{outputs:?}");
    let text = fs::read(&outputs[0]).unwrap();
    assert_eq!(id_counts([&text[..]]), once(ids(0, 3)));
    for (line, user) in String::from_utf8_lossy(&text).lines().zip(users) {
        let row: Value = serde_json::from_str(line).unwrap();
        assert_eq!(row["target_id"].as_str(), Some(user.id.as_str()));
        assert_eq!(
            row["target_name"].as_str(),
            Some(user.username.as_str()),
            "named from the snapshot"
        );
    }
    let state: Value =
        serde_json::from_slice(&fs::read(root.join("state/team.json")).unwrap()).unwrap();
    assert_eq!(state["runs"], 1);
}
