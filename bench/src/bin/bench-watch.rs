//! Benchmark of `connect-audit watch --queue` (not a timed test), through the release binary,
//! against the test servers: Garage for the trail, moto's SQS server for the S3
//! notifications, the SIEM receiver ([`connect_audit_tests::siem_receiver`]) in this process.
//!
//! ```text
//! CARGO_TARGET_DIR=/var/tmp/connect-audit-target cargo build --release -p connect-audit-cli
//! CARGO_TARGET_DIR=/var/tmp/connect-audit-target cargo run --release -p connect-audit-bench \
//!     --bin bench-watch -- [--objects 2000] [--seconds 60] [--rate 10] [--records 50] \
//!     [--audited 5] [--binary PATH] [--before-binary PATH] \
//!     [--skip-throughput] [--skip-latency] [--skip-incremental] [--keep]
//! ```
//!
//! Three measurements:
//!
//! 1. **Sustained throughput**: `--objects` CloudTrail log objects (gzip JSON, `--records`
//!    records each, `--audited` of them audited Connect calls, the rest S3 data events, STS,
//!    KMS and Connect reads) are put into Garage and announced on the queue, one S3
//!    notification per object; then one `watch` starts (roll 1 s, visibility 60 s, the default
//!    `batch_objects`), and the clock runs until the SIEM accepted every audited event. The
//!    JSON Lines files must then hold every event exactly once, the SIEM must have accepted
//!    every one, and `watch` must exit 0 on SIGTERM; the bench exits 1 otherwise. Peak RSS is
//!    `VmHWM` of the process, read just before the SIGTERM.
//! 2. **Latency at a steady rate**: a fresh queue and prefix, `watch` started first; then
//!    `--rate` objects a second for `--seconds`, each put then announced on a steady
//!    schedule. Per object: from the end of its `PutObject` to the SIEM receiver's receipt of
//!    the last of its events (the receiver stamps each request when it has read it whole).
//!    p50, p90, p99 and max over the objects, and the target (p99 < 5 s).
//! 3. **Objects read by incremental runs, before and after the object ledger**: a local trail
//!    of 30 days (12 objects a day, one region) up to the last hour; a first
//!    `report --incremental`, then five more, each after 12 new objects were added (a new
//!    "hour"); the objects each run read, from its summary line. With the binary under test
//!    and, when given or built (`--before-binary`, default
//!    `/var/tmp/connect-audit-target-before/release/connect-audit`), the one before.
//!
//! `--keep` keeps the working directories (config, `watch.log`, outputs, claims) and prints
//! where they are. Each phase also prints the CPU seconds of `watch`, moto, Garage and this
//! process, and the requests moto logged: moto's SQS is the slowest server here (its
//! `ReceiveMessage` and `SendMessage` cost grows with the messages in the queue).

#![allow(clippy::print_stdout, clippy::print_stderr)]
#![allow(
    clippy::too_many_lines,
    reason = "a test or benchmark reads best top to bottom; product code is split at clippy.toml's threshold"
)]
#![allow(
    clippy::cast_precision_loss,
    reason = "counts and durations printed as floating point"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::error::DisplayErrorContext;
use connect_audit_tests::garage::Garage;
use connect_audit_tests::moto::Moto;
use connect_audit_tests::siem_receiver::{ReceivedRequest, SiemReceiver};
use futures_util::StreamExt as _;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

const ACCOUNT: &str = "111122223333";
const REGION: &str = "us-east-1";
const INSTANCE: &str = "11111111-2222-3333-4444-555555555555";

/// A failed check: the bench prints it and exits 1.
type Failure = String;

// ---------------------------------------------------------------------------------------------
// Options

struct Options {
    binary: PathBuf,
    before_binary: Option<PathBuf>,
    objects: usize,
    seconds: u64,
    rate: u64,
    records: usize,
    audited: usize,
    throughput: bool,
    latency: bool,
    incremental: bool,
    /// Keep the working directories (configs, logs, outputs) and print where they are.
    keep: bool,
}

/// A working directory, removed at the end unless `keep`.
fn work_dir(label: &str, keep: bool) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(&format!("bench-watch-{label}."))
        .disable_cleanup(keep)
        .tempdir()
        .expect("a temporary directory");
    if keep {
        println!("working directory (kept): {}", dir.path().display());
    }
    dir
}

fn value<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .map(|i| args.get(i + 1).map_or_else(|| usage(name), String::as_str))
}

fn usage(name: &str) -> ! {
    eprintln!("bench-watch: {name} needs a value (see the top of bench/src/bin/bench-watch.rs)");
    std::process::exit(2);
}

fn number<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    value(args, name).map_or(default, |v| v.parse().unwrap_or_else(|_| usage(name)))
}

impl Options {
    fn parse() -> Self {
        let args: Vec<String> = std::env::args().collect();
        let known = [
            "--binary",
            "--before-binary",
            "--objects",
            "--seconds",
            "--rate",
            "--records",
            "--audited",
            "--skip-throughput",
            "--skip-latency",
            "--skip-incremental",
            "--keep",
        ];
        for a in args.iter().skip(1).filter(|a| a.starts_with("--")) {
            if !known.contains(&a.as_str()) {
                eprintln!(
                    "bench-watch: unknown option {a}; known: {}",
                    known.join(" ")
                );
                std::process::exit(2);
            }
        }
        // The release binary beside this one ($CARGO_TARGET_DIR/release/).
        let beside = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|d| d.join("connect-audit")))
            .unwrap_or_else(|| PathBuf::from("connect-audit"));
        let binary = value(&args, "--binary").map_or(beside, PathBuf::from);
        let before_binary = value(&args, "--before-binary").map_or_else(
            || {
                let default =
                    PathBuf::from("/var/tmp/connect-audit-target-before/release/connect-audit");
                default.is_file().then_some(default)
            },
            |p| Some(PathBuf::from(p)),
        );
        let options = Self {
            binary,
            before_binary,
            objects: number(&args, "--objects", 2000),
            seconds: number(&args, "--seconds", 60),
            rate: number(&args, "--rate", 10),
            records: number(&args, "--records", 50),
            audited: number(&args, "--audited", 5),
            throughput: !args.iter().any(|a| a == "--skip-throughput"),
            latency: !args.iter().any(|a| a == "--skip-latency"),
            incremental: !args.iter().any(|a| a == "--skip-incremental"),
            keep: args.iter().any(|a| a == "--keep"),
        };
        assert!(
            options.audited >= 1 && options.audited <= options.records,
            "--audited must be between 1 and --records"
        );
        assert!(options.rate >= 1, "--rate must be at least 1");
        options
    }
}

// ---------------------------------------------------------------------------------------------
// Trail objects

/// The id of audited event `n`.
fn event_id(n: usize) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

/// An audited Connect call (`UpdateUserHierarchy`, as e2e `helpers::events` writes it).
fn audited_record(n: usize, time: Timestamp) -> Value {
    json!({
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDAEXAMPLE",
            "arn": format!("arn:aws:iam::{ACCOUNT}:user/ops-automation"),
            "accountId": ACCOUNT,
            "accessKeyId": "AKIAIOSFODNN7EXAMPLE",
            "userName": "ops-automation"
        },
        "eventTime": time.to_string(),
        "eventSource": "connect.amazonaws.com",
        "eventName": "UpdateUserHierarchy",
        "awsRegion": REGION,
        "sourceIPAddress": "198.51.100.7",
        "userAgent": "Boto3/1.34.0 md/Botocore#1.34.0 ua/2.0 os/linux#6.1 md/arch#x86_64 lang/python#3.12.2",
        "requestParameters": {
            "InstanceId": INSTANCE,
            "UserId": format!("aaaaaaaa-bbbb-4ccc-8ddd-{:012}", n % 5000),
            "HierarchyGroupId": "99999999-8888-7777-6666-555555555555"
        },
        "responseElements": null,
        "requestID": format!("{n:08x}-aaaa-4bbb-8ccc-000000000000"),
        "eventID": event_id(n),
        "readOnly": false,
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
        "tlsDetails": {
            "tlsVersion": "TLSv1.3",
            "cipherSuite": "TLS_AES_128_GCM_SHA256",
            "clientProvidedHostHeader": format!("connect.{REGION}.amazonaws.com")
        }
    })
}

/// A record the scanner must pass over: S3 data events mostly, some STS, KMS and Connect
/// reads (`DescribeUser` is catalogued but not in the default selection; `ListQueues` is not
/// catalogued).
fn noise_record(object: usize, k: usize, time: Timestamp) -> Value {
    let session = format!("i-0{object:08x}{k:08x}");
    let identity = json!({
        "type": "AssumedRole",
        "principalId": format!("AROAEXAMPLEAPPRUNTIME:{session}"),
        "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/app-runtime-role/{session}"),
        "accountId": ACCOUNT,
        "accessKeyId": "ASIAEXAMPLEKEY000001",
        "sessionContext": {
            "sessionIssuer": {"type": "Role", "principalId": "AROAEXAMPLEAPPRUNTIME",
                "arn": format!("arn:aws:iam::{ACCOUNT}:role/app-runtime-role"),
                "accountId": ACCOUNT, "userName": "app-runtime-role"},
            "attributes": {"creationDate": "2026-01-01T00:00:00Z", "mfaAuthenticated": "false"}
        }
    });
    let id = format!("{object:08x}-{k:04x}-4000-9000-{:012x}", object * 1000 + k);
    let (source, name, category, request) = match k % 10 {
        0 => (
            "sts",
            "AssumeRole",
            "Management",
            json!({"roleArn": format!("arn:aws:iam::{ACCOUNT}:role/app-{}", k % 40),
                   "roleSessionName": session, "durationSeconds": 3600}),
        ),
        1 => (
            "kms",
            "Decrypt",
            "Management",
            json!({"encryptionAlgorithm": "SYMMETRIC_DEFAULT",
                   "keyId": format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")}),
        ),
        2 if k % 20 == 2 => (
            "connect",
            "DescribeUser",
            "Management",
            json!({"InstanceId": INSTANCE, "UserId": format!("aaaaaaaa-bbbb-4ccc-8ddd-{k:012}")}),
        ),
        2 => (
            "connect",
            "ListQueues",
            "Management",
            json!({"InstanceId": INSTANCE, "MaxResults": 100}),
        ),
        _ => {
            let bucket = format!("app-data-{ACCOUNT}-{REGION}");
            let key = format!("tenants/{}/objects/{id}.json", (object * 7 + k) % 5000);
            (
                "s3",
                "GetObject",
                "Data",
                json!({"bucketName": bucket, "Host": format!("{bucket}.s3.{REGION}.amazonaws.com"),
                       "key": key, "x-amz-checksum-mode": "ENABLED"}),
            )
        }
    };
    json!({
        "eventVersion": "1.10",
        "userIdentity": identity,
        "eventTime": time.to_string(),
        "eventSource": format!("{source}.amazonaws.com"),
        "eventName": name,
        "awsRegion": REGION,
        "sourceIPAddress": format!("10.{}.{}.{}", object % 256, k % 256, (object + k) % 256),
        "userAgent": "aws-sdk-java/2.25.0 Linux/6.1 OpenJDK_64-Bit_Server_VM/21.0.2",
        "requestParameters": request,
        "responseElements": null,
        "additionalEventData": {"SignatureVersion": "SigV4", "CipherSuite": "TLS_AES_128_GCM_SHA256",
            "bytesTransferredIn": 0, "AuthenticationMethod": "AuthHeader", "bytesTransferredOut": 1000 + k},
        "requestID": format!("{object:08X}{k:08X}"),
        "eventID": id,
        "readOnly": true,
        "eventType": "AwsApiCall",
        "managementEvent": category == "Management",
        "recipientAccountId": ACCOUNT,
        "eventCategory": category
    })
}

/// One log object: `records` records ending a few minutes before `delivered`, `audited` of
/// them (spread through the file) the audited events `first_event..first_event + audited`.
/// Gives the gzip body.
fn object_body(
    object: usize,
    delivered: Timestamp,
    records: usize,
    audited: usize,
    first_event: usize,
) -> Vec<u8> {
    let start = delivered - SignedDuration::from_mins(5);
    let step = records / audited;
    let mut out = Vec::with_capacity(records);
    let mut next_audited = 0;
    for k in 0..records {
        let time = start + SignedDuration::from_secs(i64::try_from(k).expect("small") * 4);
        if next_audited < audited && k == next_audited * step + step / 2 {
            out.push(audited_record(first_event + next_audited, time));
            next_audited += 1;
        } else {
            out.push(noise_record(object, k, time));
        }
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(json!({ "Records": out }).to_string().as_bytes())
        .expect("gzip in memory");
    gz.finish().expect("gzip in memory")
}

/// The key of a log object under the trail's root: CloudTrail's layout and file name.
fn object_key(delivered: Timestamp, suffix: &str) -> String {
    let utc = delivered.to_zoned_datetime(jiff::tz::TimeZone::UTC);
    format!(
        "AWSLogs/{ACCOUNT}/CloudTrail/{REGION}/{}/{ACCOUNT}_CloudTrail_{REGION}_{}_{suffix}.json.gz",
        utc.strftime("%Y/%m/%d"),
        utc.strftime("%Y%m%dT%H%MZ"),
    )
}

/// The body S3 sends to SQS for a new object, as AWS documents it (the key form-encoded).
fn notification(bucket: &str, key: &str, etag: &str, size: usize) -> String {
    connect_audit_tests::moto::s3_notification(bucket, key, etag, size).to_string()
}

// ---------------------------------------------------------------------------------------------
// The servers and one `watch`

/// Garage, moto, a runtime with an S3 client (SQS clients are made in the runtime where they
/// are used: `Moto::client`).
struct Servers {
    garage: &'static Garage,
    moto: &'static Moto,
    rt: tokio::runtime::Runtime,
    s3: aws_sdk_s3::Client,
}

impl Servers {
    fn start() -> Self {
        let garage = Garage::shared();
        let moto = Moto::shared();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let s3 = rt.block_on(async { garage.client() });
        Self {
            garage,
            moto,
            rt,
            s3,
        }
    }

    /// Puts `body` at `key` (from the bucket's root); gives its ETag.
    async fn put(
        s3: &aws_sdk_s3::Client,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
    ) -> Result<String, Failure> {
        let out = s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(body.into())
            .send()
            .await
            .map_err(|e| format!("cannot put {key}: {}", DisplayErrorContext(&e)))?;
        Ok(out.e_tag().unwrap_or_default().trim_matches('"').to_owned())
    }
}

/// A `watch` process, killed if the bench leaves it running (an error or a panic on the way).
struct WatchProcess(Child);

impl Drop for WatchProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A working directory with a `watch` config, a queue, a prefix, a SIEM receiver.
struct Rig {
    dir: tempfile::TempDir,
    prefix: String,
    queue: String,
    siem: SiemReceiver,
}

impl Rig {
    fn new(servers: &Servers, label: &str, options: &Options) -> Self {
        let prefix = servers.garage.unique_prefix(label);
        let queue = servers
            .moto
            .create_queue(&servers.moto.unique_name(label), 60, None)
            .url;
        let dir = work_dir(label, options.keep);
        let siem = SiemReceiver::start();
        fs::write(
            dir.path().join("connect-audit.toml"),
            format!(
                r#"
[report]
trail = "s3://{bucket}/{prefix}"
[watch]
roll = "1s"
visibility = "60s"
health = "10s"
claims = "claims"
[[exporters]]
type = "jsonl"
path = "out/audit-{{batch}}.jsonl"
[[exporters]]
type = "siem-webhook"
flavor = "splunk-hec"
url = "{siem}"
token_env = "SIEM_TOKEN"
dead_letter = "dead-letter.jsonl"
"#,
                bucket = servers.garage.bucket(),
                siem = siem.url(),
            ),
        )
        .expect("write the config");
        Self {
            dir,
            prefix,
            queue,
            siem,
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn spawn(&self, servers: &Servers, binary: &Path) -> WatchProcess {
        let child = Command::new(binary)
            .args(["watch", "--queue", &self.queue])
            .current_dir(self.root())
            .env_remove("CONNECT_AUDIT_CONFIG")
            .env_remove("CONNECT_AUDIT_PROFILE")
            .env_remove("AWS_PROFILE")
            .envs(servers.garage.aws_env())
            .envs(servers.moto.aws_env())
            .env("SIEM_TOKEN", "bench-token")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                fs::File::create(self.root().join("watch.log")).expect("the log file"),
            ))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        WatchProcess(child)
    }

    fn log(&self) -> String {
        fs::read_to_string(self.root().join("watch.log")).unwrap_or_default()
    }

    /// The last lines of the log, for a failure.
    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// How often each event id occurs across the JSON Lines files written.
    fn ids_in_files(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        let Ok(entries) = fs::read_dir(self.root().join("out")) else {
            return counts;
        };
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.extension().is_none_or(|e| e != "jsonl") {
                continue;
            }
            for line in fs::read_to_string(&path)
                .expect("a JSON Lines file")
                .lines()
            {
                let record: Value = serde_json::from_str(line).expect("a JSON line");
                let id = record["event_id"].as_str().expect("an event id");
                let key = match record["target_index"].as_u64().unwrap_or(0) {
                    0 => id.to_owned(),
                    i => format!("{id}#{i}"),
                };
                *counts.entry(key).or_default() += 1;
            }
        }
        counts
    }

    /// Waits until the SIEM accepted every id of `want` (at least once), or `limit` passed, or
    /// `watch` exited.
    fn wait_for_siem(
        &self,
        want: &BTreeSet<String>,
        limit: Duration,
        watch: &mut Child,
    ) -> Result<(), Failure> {
        let deadline = Instant::now() + limit;
        loop {
            if self.siem.accepted_events() >= want.len() {
                let accepted = accepted_ids(&self.siem.requests());
                if want.iter().all(|id| accepted.contains(id)) {
                    return Ok(());
                }
            }
            if let Ok(Some(status)) = watch.try_wait() {
                return Err(format!(
                    "watch exited ({status}) before the SIEM had every event\n--- watch.log (tail)\n{}",
                    self.log_tail()
                ));
            }
            if Instant::now() > deadline {
                let accepted = accepted_ids(&self.siem.requests());
                let missing = want.iter().filter(|id| !accepted.contains(*id)).count();
                return Err(format!(
                    "after {limit:?} the SIEM still lacks {missing} of {} events\n--- watch.log (tail)\n{}",
                    want.len(),
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Checks the files hold each id of `want` exactly once and nothing else.
    fn check_files(&self, want: &BTreeSet<String>) -> Result<(), Failure> {
        let found = self.ids_in_files();
        let doubled: Vec<&String> = found
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(k, _)| k)
            .collect();
        let missing = want.iter().filter(|id| !found.contains_key(*id)).count();
        let extra = found.keys().filter(|id| !want.contains(*id)).count();
        if doubled.is_empty() && missing == 0 && extra == 0 {
            return Ok(());
        }
        Err(format!(
            "the JSON Lines files are not exact: {} ids more than once (e.g. {:?}), {missing} missing, {extra} unexpected\n--- watch.log (tail)\n{}",
            doubled.len(),
            doubled.first(),
            self.log_tail()
        ))
    }
}

/// The ids of the events the SIEM accepted.
fn accepted_ids(requests: &[ReceivedRequest]) -> BTreeSet<String> {
    requests
        .iter()
        .filter(|r| r.reply.accepted())
        .flat_map(|r| r.event_ids.iter().cloned())
        .collect()
}

/// CPU time (user + system) of a process so far, in seconds.
fn cpu_secs(pid: u32) -> Option<f64> {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let ticks = *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    });
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name in parentheses: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks)
}

/// What the servers and this process had used at one moment: CPU seconds of moto, Garage and
/// the bench (with its SIEM receiver), and the requests moto has logged.
#[derive(Debug, Clone, Copy)]
struct Usage {
    at: Instant,
    moto_cpu: f64,
    garage_cpu: f64,
    bench_cpu: f64,
    moto_requests: usize,
}

impl Usage {
    fn now(servers: &Servers) -> Self {
        Self {
            at: Instant::now(),
            moto_cpu: cpu_secs(servers.moto.pid()).unwrap_or(f64::NAN),
            garage_cpu: servers.garage.pid().and_then(cpu_secs).unwrap_or(f64::NAN),
            bench_cpu: cpu_secs(std::process::id()).unwrap_or(f64::NAN),
            // Moto logs one line per HTTP request (werkzeug's access log).
            moto_requests: servers
                .moto
                .log()
                .lines()
                .filter(|l| l.contains("\"POST "))
                .count(),
        }
    }

    /// The line printed for the span from `self` to `end`, with the watch process's CPU.
    fn line(&self, end: &Self, watch_cpu: Option<f64>, bench_requests: usize) -> String {
        let secs = end.at.duration_since(self.at).as_secs_f64();
        let requests = end.moto_requests - self.moto_requests;
        format!(
            "over {secs:.1}s: CPU seconds: watch {}, moto {:.1}, Garage {:.1}, bench + SIEM receiver {:.1} (2 cores: {:.0} available); moto requests: {requests} ({:.0}/s), of which the bench's SendMessage {bench_requests}, so watch's about {:.0}/s",
            watch_cpu.map_or_else(|| "?".into(), |c| format!("{c:.1}")),
            end.moto_cpu - self.moto_cpu,
            end.garage_cpu - self.garage_cpu,
            end.bench_cpu - self.bench_cpu,
            2.0 * secs,
            requests as f64 / secs,
            requests.saturating_sub(bench_requests) as f64 / secs,
        )
    }
}

/// `VmHWM` of a process, in kB.
fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Sends SIGTERM and waits (at most 60 s) for the exit; gives its code.
fn terminate(child: &mut Child) -> Result<Option<i32>, Failure> {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .map_err(|e| format!("cannot run kill: {e}"))?;
    if !sent.success() {
        return Err("kill -TERM failed".into());
    }
    let deadline = Instant::now() + Duration::from_mins(1);
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok(status.code());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err("watch did not stop within 60 s of SIGTERM (killed)".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What the log's `Batch written` lines say: (objects, latency_max_secs) per batch.
fn batches(log: &str) -> Vec<(usize, f64)> {
    let field = |line: &str, name: &str| -> Option<String> {
        let at = line.find(&format!(" {name}="))? + name.len() + 2;
        Some(line[at..].split_whitespace().next()?.to_owned())
    };
    log.lines()
        .filter(|l| l.contains("Batch written"))
        .filter_map(|l| {
            Some((
                field(l, "objects")?.parse().ok()?,
                field(l, "latency_max_secs")?.parse().ok()?,
            ))
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // Nearest rank.
    let rank = (p / 100.0 * sorted.len() as f64).ceil().max(1.0);
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a rank between 1 and the length"
    )]
    let index = (rank as usize).min(sorted.len()) - 1;
    sorted[index]
}

fn summarize_batches(log: &str) -> String {
    let list = batches(log);
    if list.is_empty() {
        return "no `Batch written` line in the log".into();
    }
    let objects: Vec<f64> = list.iter().map(|b| b.0 as f64).collect();
    let mut latencies: Vec<f64> = list.iter().map(|b| b.1).collect();
    latencies.sort_by(f64::total_cmp);
    let mut sizes = objects.clone();
    sizes.sort_by(f64::total_cmp);
    // Not counted: the AWS SDK's note that the harness's AWS_CONFIG_FILE does not exist.
    let warnings = log
        .lines()
        .filter(|l| l.contains(" WARN ") && !l.contains("config file overridden"))
        .count();
    let errors = log
        .lines()
        .filter(|l| l.contains(" ERROR ") || l.contains("error:"))
        .count();
    format!(
        "{} batches, objects per batch: median {:.0}, max {:.0}; watch's own latency_max_secs per batch: median {:.2}, max {:.2}; {warnings} WARN and {errors} error lines",
        list.len(),
        percentile(&sizes, 50.0),
        sizes.last().copied().unwrap_or(0.0),
        percentile(&latencies, 50.0),
        latencies.last().copied().unwrap_or(0.0),
    )
}

// ---------------------------------------------------------------------------------------------
// 1. Sustained throughput

fn throughput(servers: &Servers, options: &Options) -> Result<(), Failure> {
    let n = options.objects;
    let audited = options.audited;
    println!(
        "## 1. Sustained throughput: {n} objects of {} records ({audited} audited) already queued, one watch",
        options.records
    );
    let rig = Rig::new(servers, "bench-watch-throughput", options);
    let bucket = servers.garage.bucket().to_owned();
    let now = Timestamp::now();
    let clock = Instant::now();
    let bodies: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| {
            // One object every 30 s, ending now.
            let delivered =
                now - SignedDuration::from_secs(30 * i64::try_from(n - i).expect("small"));
            let key = format!(
                "{}/{}",
                rig.prefix,
                object_key(delivered, &format!("tp{i:06}"))
            );
            let body = object_body(i, delivered, options.records, audited, i * audited);
            (key, body)
        })
        .collect();
    let bytes: usize = bodies.iter().map(|(_, b)| b.len()).sum();
    println!(
        "generated {n} objects, {:.1} MiB gzip ({:.1} kB each), in {:.1}s",
        bytes as f64 / 1_048_576.0,
        bytes as f64 / n as f64 / 1000.0,
        clock.elapsed().as_secs_f64()
    );
    let clock = Instant::now();
    let s3 = servers.s3.clone();
    let put: Vec<(String, String, usize)> = servers.rt.block_on(
        futures_util::stream::iter(bodies)
            .map(|(key, body)| {
                let (s3, bucket) = (s3.clone(), bucket.clone());
                async move {
                    let size = body.len();
                    let etag = Servers::put(&s3, &bucket, &key, body)
                        .await
                        .unwrap_or_else(|e| panic!("{e}"));
                    (key, etag, size)
                }
            })
            .buffer_unordered(32)
            .collect(),
    );
    println!(
        "put {n} objects into Garage in {:.1}s (32 at a time)",
        clock.elapsed().as_secs_f64()
    );
    let clock = Instant::now();
    let queue = rig.queue.clone();
    servers.rt.block_on(async {
        let sqs = servers.moto.client();
        futures_util::stream::iter(put)
            .map(|(key, etag, size)| {
                let (sqs, queue, bucket) = (sqs.clone(), queue.clone(), bucket.clone());
                async move {
                    sqs.send_message()
                        .queue_url(&queue)
                        .message_body(notification(&bucket, &key, &etag, size))
                        .send()
                        .await
                        .expect("SendMessage");
                }
            })
            .buffer_unordered(8)
            .collect::<Vec<()>>()
            .await;
    });
    let queued = servers.moto.approximate_counts(&rig.queue);
    println!(
        "sent {n} notifications (SendMessage, 8 at a time) in {:.1}s; queue: {} visible, {} in flight",
        clock.elapsed().as_secs_f64(),
        queued.0,
        queued.1
    );
    if queued != (n as u64, 0) {
        return Err(format!(
            "the queue holds {queued:?}, not {n} visible messages"
        ));
    }
    let want: BTreeSet<String> = (0..n * audited).map(event_id).collect();

    let usage = Usage::now(servers);
    let started = Instant::now();
    let mut watch = rig.spawn(servers, &options.binary);
    let waited = rig.wait_for_siem(&want, Duration::from_mins(10), &mut watch.0);
    let siem_done = started.elapsed();
    let result = waited.and_then(|()| {
        // The files are written before the SIEM is sent to; the messages deleted after.
        let deadline = Instant::now() + Duration::from_mins(1);
        while servers.moto.approximate_counts(&rig.queue) != (0, 0) {
            if Instant::now() > deadline {
                return Err(format!(
                    "the queue still holds {:?} a minute after the SIEM got every event",
                    servers.moto.approximate_counts(&rig.queue)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(started.elapsed())
    });
    let rss = peak_rss_kb(watch.0.id());
    let watch_cpu = cpu_secs(watch.0.id());
    let usage = usage.line(&Usage::now(servers), watch_cpu, 0);
    let code = terminate(&mut watch.0);
    let queue_empty = result?;
    let code = code?;
    if code != Some(0) {
        return Err(format!(
            "watch exited with {code:?}, not 0\n--- watch.log (tail)\n{}",
            rig.log_tail()
        ));
    }
    rig.check_files(&want)?;
    let requests = rig.siem.requests();
    let accepted: usize = requests
        .iter()
        .filter(|r| r.reply.accepted())
        .map(|r| r.events)
        .sum();
    let first_request = requests.first().map(|r| r.at.duration_since(started));
    let seconds = siem_done.as_secs_f64();
    println!();
    println!(
        "| objects | events | wall: start → SIEM has all (s) | events/s | objects/s | until the queue is empty (s) | first SIEM request after (s) | SIEM requests (events accepted) | peak RSS of watch (MiB) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {n} | {} | {seconds:.2} | {:.0} | {:.0} | {:.2} | {} | {} ({accepted}) | {} |",
        want.len(),
        want.len() as f64 / seconds,
        n as f64 / seconds,
        queue_empty.as_secs_f64(),
        first_request.map_or_else(|| "–".into(), |d| format!("{:.2}", d.as_secs_f64())),
        requests.len(),
        rss.map_or_else(|| "?".into(), |kb| format!("{:.1}", kb as f64 / 1024.0)),
    );
    println!();
    println!(
        "exact: the JSON Lines files hold each of the {} events once; the SIEM accepted each (duplicates accepted: {}); watch exited 0 on SIGTERM",
        want.len(),
        accepted - want.len()
    );
    println!("watch log: {}", summarize_batches(&rig.log()));
    println!("{usage}");
    println!();
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 2. Latency at a steady rate

/// One object of the steady run: when its put ended, when its notification was sent.
#[derive(Debug, Clone, Copy)]
struct Sent {
    put_started: Instant,
    put_done: Instant,
    notified: Instant,
}

fn latency(servers: &Servers, options: &Options) -> Result<(), Failure> {
    let total = usize::try_from(options.seconds * options.rate).expect("small");
    let audited = options.audited;
    println!(
        "## 2. Latency at a steady rate: {} objects/s for {} s ({total} objects, {} records, {audited} audited each), watch started first",
        options.rate, options.seconds, options.records
    );
    let rig = Rig::new(servers, "bench-watch-latency", options);
    let bucket = servers.garage.bucket().to_owned();
    let mut watch = rig.spawn(servers, &options.binary);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !rig.log().contains("Watching the queue") {
        if Instant::now() > deadline {
            let _ = terminate(&mut watch.0);
            return Err(format!("watch did not start\n{}", rig.log_tail()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Bodies made beforehand, so the schedule only puts and sends; the key's delivery minute
    // is the scheduled time.
    let now = Timestamp::now();
    let period = Duration::from_secs(1) / u32::try_from(options.rate).expect("a small rate");
    let objects: Vec<(String, Vec<u8>)> = (0..total)
        .map(|i| {
            let delivered = now
                + SignedDuration::try_from(period * u32::try_from(i).expect("small"))
                    .expect("small");
            (
                format!(
                    "{}/{}",
                    rig.prefix,
                    object_key(delivered, &format!("lt{i:06}"))
                ),
                object_body(i, delivered, options.records, audited, i * audited),
            )
        })
        .collect();
    let sent: Arc<Mutex<Vec<Option<Sent>>>> = Arc::new(Mutex::new(vec![None; total]));
    let late = Arc::new(Mutex::new(Duration::ZERO));
    let idle = Usage::now(servers);
    let idle_watch = cpu_secs(watch.0.id());
    std::thread::sleep(Duration::from_secs(5));
    let idle = idle.line(
        &Usage::now(servers),
        cpu_secs(watch.0.id()).zip(idle_watch).map(|(a, b)| a - b),
        0,
    );
    let usage = Usage::now(servers);
    let busy_watch = cpu_secs(watch.0.id());
    let start = Instant::now() + Duration::from_millis(200);
    let failures = servers.rt.block_on(async {
        let sqs = servers.moto.client();
        let mut tasks = Vec::with_capacity(total);
        for (i, (key, body)) in objects.into_iter().enumerate() {
            let at = start + period * u32::try_from(i).expect("small");
            tokio::time::sleep_until(at.into()).await;
            {
                let mut late = late.lock().expect("lock");
                *late = (*late).max(Instant::now().saturating_duration_since(at));
            }
            let (s3, sqs) = (servers.s3.clone(), sqs.clone());
            let (bucket, queue, sent) = (bucket.clone(), rig.queue.clone(), Arc::clone(&sent));
            tasks.push(tokio::spawn(async move {
                let put_started = Instant::now();
                let size = body.len();
                let etag = Servers::put(&s3, &bucket, &key, body).await?;
                let put_done = Instant::now();
                sqs.send_message()
                    .queue_url(&queue)
                    .message_body(notification(&bucket, &key, &etag, size))
                    .send()
                    .await
                    .map_err(|e| {
                        format!("cannot send to the queue: {}", DisplayErrorContext(&e))
                    })?;
                sent.lock().expect("lock")[i] = Some(Sent {
                    put_started,
                    put_done,
                    notified: Instant::now(),
                });
                Ok::<(), Failure>(())
            }));
        }
        let mut failures = Vec::new();
        for task in tasks {
            if let Err(e) = task.await.expect("a put task") {
                failures.push(e);
            }
        }
        failures
    });
    if let Some(first) = failures.first() {
        let _ = terminate(&mut watch.0);
        return Err(format!(
            "{} of {total} objects could not be put and announced; the first: {first}",
            failures.len()
        ));
    }
    let scheduled = start.elapsed();
    let want: BTreeSet<String> = (0..total * audited).map(event_id).collect();
    let waited = rig.wait_for_siem(&want, Duration::from_mins(3), &mut watch.0);
    let rss = peak_rss_kb(watch.0.id());
    let usage = usage.line(
        &Usage::now(servers),
        cpu_secs(watch.0.id()).zip(busy_watch).map(|(a, b)| a - b),
        total,
    );
    let code = terminate(&mut watch.0);
    waited?;
    let code = code?;
    if code != Some(0) {
        return Err(format!(
            "watch exited with {code:?}, not 0\n--- watch.log (tail)\n{}",
            rig.log_tail()
        ));
    }
    rig.check_files(&want)?;
    // The first acceptance of each event.
    let mut first: BTreeMap<String, Instant> = BTreeMap::new();
    for r in rig.siem.requests().iter().filter(|r| r.reply.accepted()) {
        for id in &r.event_ids {
            first
                .entry(id.clone())
                .and_modify(|t| *t = (*t).min(r.at))
                .or_insert(r.at);
        }
    }
    let sent = sent.lock().expect("lock").clone();
    let mut latencies = Vec::with_capacity(total);
    let mut put_secs = Vec::with_capacity(total);
    let mut notify_secs = Vec::with_capacity(total);
    for (i, s) in sent.iter().enumerate() {
        let s = s.ok_or_else(|| format!("object {i} was never put"))?;
        let last = (i * audited..(i + 1) * audited)
            .map(|n| first[&event_id(n)])
            .max()
            .expect("audited >= 1");
        latencies.push(last.saturating_duration_since(s.put_done).as_secs_f64());
        put_secs.push((s.put_done - s.put_started).as_secs_f64());
        notify_secs.push((s.notified - s.put_done).as_secs_f64());
    }
    for v in [&mut latencies, &mut put_secs, &mut notify_secs] {
        v.sort_by(f64::total_cmp);
    }
    let p99 = percentile(&latencies, 99.0);
    println!(
        "schedule: {total} objects in {:.1}s, at most {:.0} ms behind it; PutObject median {:.0} ms (max {:.0}), then SendMessage median {:.0} ms (max {:.0})",
        scheduled.as_secs_f64(),
        late.lock().expect("lock").as_secs_f64() * 1000.0,
        percentile(&put_secs, 50.0) * 1000.0,
        put_secs.last().copied().unwrap_or(0.0) * 1000.0,
        percentile(&notify_secs, 50.0) * 1000.0,
        notify_secs.last().copied().unwrap_or(0.0) * 1000.0,
    );
    println!();
    println!(
        "| objects | rate (/s) | p50 (s) | p90 (s) | p99 (s) | max (s) | p99 < 5 s | peak RSS of watch (MiB) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {total} | {} | {:.2} | {:.2} | {p99:.2} | {:.2} | {} | {} |",
        options.rate,
        percentile(&latencies, 50.0),
        percentile(&latencies, 90.0),
        latencies.last().copied().unwrap_or(f64::NAN),
        if p99 < 5.0 { "met" } else { "NOT met" },
        rss.map_or_else(|| "?".into(), |kb| format!("{:.1}", kb as f64 / 1024.0)),
    );
    println!();
    println!(
        "latency: from the end of the object's PutObject to the SIEM receiver's receipt of the last of its events"
    );
    println!(
        "exact: the JSON Lines files hold each of the {} events once; the SIEM accepted each; watch exited 0 on SIGTERM",
        want.len()
    );
    println!("watch log: {}", summarize_batches(&rig.log()));
    println!("idle (queue empty, 5 s before the schedule) {idle}");
    println!("steady run {usage}");
    println!();
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 3. Objects read by incremental runs

/// The summary's `files:` line: (found, read).
fn files_line(stderr: &str) -> Option<(u64, u64, String)> {
    let line = stderr
        .lines()
        .find(|l| l.trim_start().starts_with("files:"))?;
    let found = line
        .trim_start()
        .strip_prefix("files:")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let before_read = &line[..line.find(" read (")?];
    let read = before_read.rsplit(' ').next()?.parse().ok()?;
    Some((found, read, line.trim().to_owned()))
}

/// One series: the 30 days, a first run, then five runs each after a new "hour".
fn incremental_series(binary: &Path, options: &Options) -> Result<Vec<(u64, u64, f64)>, Failure> {
    let dir = work_dir("incremental", options.keep);
    let root = dir.path();
    let trail = root.join("trail");
    fs::write(
        root.join("connect-audit.toml"),
        format!(
            r#"
[report]
trail = "{}"
since = "31d"
[incremental]
state = "state.json"
lookback = "2h"
[[exporters]]
type = "jsonl"
path = "out/audit-{{since}}.jsonl"
"#,
            trail.display()
        ),
    )
    .expect("write the config");
    let audited = options.audited;
    let mut next_object = 0usize;
    let mut deliver = |delivered: Timestamp| {
        let i = next_object;
        next_object += 1;
        let path = trail.join(object_key(delivered, &format!("inc{i:06}")));
        fs::create_dir_all(path.parent().expect("a folder")).expect("mkdir");
        fs::write(
            &path,
            object_body(i, delivered, options.records, audited, i * audited),
        )
        .expect("write an object");
    };
    // Every two hours for 30 days, up to an hour ago; then each new "hour" is 12 objects a
    // minute apart after all before them, still before now (a benchmark cannot wait five
    // hours: the runs take the default until = now).
    let now = Timestamp::now();
    let base = now - SignedDuration::from_mins(61);
    for step in (1..=30 * 12).rev() {
        deliver(base - SignedDuration::from_hours(2 * step));
    }
    let mut rows = Vec::new();
    for run in 0..=5_i64 {
        if run > 0 {
            // The binary before names its file after the run's start to the second
            // (`{since}`): runs within one second would write the same file.
            std::thread::sleep(Duration::from_millis(1100));
            for j in 0..12 {
                deliver(base + SignedDuration::from_mins((run - 1) * 12 + j));
            }
        }
        let clock = Instant::now();
        let out = Command::new(binary)
            .args(["report", "--incremental"])
            .current_dir(root)
            .env_remove("CONNECT_AUDIT_CONFIG")
            .env_remove("CONNECT_AUDIT_PROFILE")
            .env_remove("RUST_LOG")
            .env_remove("AWS_PROFILE")
            .output()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        let wall = clock.elapsed().as_secs_f64();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(0) {
            return Err(format!(
                "{} report --incremental (run {run}) exited {:?}:\n{stderr}",
                binary.display(),
                out.status.code()
            ));
        }
        let (found, read, _) = files_line(&stderr)
            .ok_or_else(|| format!("no `files:` line in the summary:\n{stderr}"))?;
        rows.push((found, read, wall));
    }
    // Every audited event written once over the six runs.
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for entry in fs::read_dir(root.join("out")).map_err(|e| e.to_string())? {
        let text = fs::read_to_string(entry.map_err(|e| e.to_string())?.path())
            .map_err(|e| e.to_string())?;
        for line in text.lines() {
            let record: Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
            *counts
                .entry(record["event_id"].as_str().unwrap_or_default().to_owned())
                .or_default() += 1;
        }
    }
    let want = next_object * audited;
    let doubled = counts.values().filter(|n| **n > 1).count();
    println!(
        "{}: {} of {want} audited events written over the six runs, {doubled} more than once",
        binary.display(),
        counts.len()
    );
    Ok(rows)
}

fn incremental(options: &Options) -> Result<(), Failure> {
    println!(
        "## 3. Objects read by incremental runs: local trail, 30 days × 12 objects, then 12 new objects before each of five runs"
    );
    let after = incremental_series(&options.binary, options)?;
    let before = if let Some(b) = &options.before_binary {
        Some(incremental_series(b, options)?)
    } else {
        println!(
            "(no binary from before: pass --before-binary, or build ce1a976 into /var/tmp/connect-audit-target-before)"
        );
        None
    };
    println!();
    println!(
        "| run | objects in the trail | read, before | read, after | wall before (s) | wall after (s) |"
    );
    println!("|---|---|---|---|---|---|");
    for (run, a) in after.iter().enumerate() {
        let b = before.as_ref().map(|b| b[run]);
        let name = if run == 0 {
            "first (empty state)".to_owned()
        } else {
            format!("{run} (+12 objects)")
        };
        let mut line = format!("| {name} | {} |", a.0);
        let _ = write!(
            line,
            " {} | {} | {} | {:.2} |",
            b.map_or_else(|| "–".into(), |b| b.1.to_string()),
            a.1,
            b.map_or_else(|| "–".into(), |b| format!("{:.2}", b.2)),
            a.2
        );
        println!("{line}");
    }
    println!();
    Ok(())
}

// ---------------------------------------------------------------------------------------------

fn main() -> ExitCode {
    let options = Options::parse();
    if !options.binary.is_file() {
        eprintln!(
            "bench-watch: {} is missing: `cargo build --release -p connect-audit-cli` (same CARGO_TARGET_DIR), or --binary PATH",
            options.binary.display()
        );
        return ExitCode::from(2);
    }
    println!("binary: {}", options.binary.display());
    if let Some(b) = &options.before_binary {
        println!("before: {}", b.display());
    }
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load average at start: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!();
    let servers = (options.throughput || options.latency).then(Servers::start);
    let mut failed = false;
    let mut check = |what: &str, result: Result<(), Failure>| {
        if let Err(e) = result {
            eprintln!("bench-watch: {what} FAILED: {e}");
            failed = true;
        }
    };
    if let Some(servers) = &servers {
        if options.throughput {
            check("throughput", throughput(servers, &options));
        }
        if options.latency {
            check("latency", latency(servers, &options));
        }
    }
    if options.incremental {
        check("incremental runs", incremental(&options));
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
