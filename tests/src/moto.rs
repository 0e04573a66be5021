//! Real SQS for tests: one [moto](https://docs.getmoto.org/) server per test binary.
//!
//! [`Moto::shared`] starts `moto_server -H 127.0.0.1 -p <port>` (moto's standalone server
//! mode, PyPI `moto[server]`) the first time a test asks for it, on a free loopback port, with
//! its log in a temporary directory. It waits (at most [`STARTUP_TIMEOUT`]) until the server
//! answers HTTP, and panics with moto's log if it does not. Moto keeps everything in memory:
//! it starts in about half a second and forgets all queues when it stops.
//!
//! Moto accepts any credentials and signs nothing back; the region of a request's signature
//! is the region of the queues it sees (this harness uses `us-east-1`, as Garage does). Queue
//! URLs are `http://127.0.0.1:<port>/123456789012/<name>` (moto's default account), ARNs
//! `arn:aws:sqs:us-east-1:123456789012:<name>`. Moto honours a queue's `RedrivePolicy`: a
//! message received more than `maxReceiveCount` times is moved to the dead-letter queue on
//! the next receive, as SQS does.
//!
//! Tests share the server and stay apart by queue name ([`Moto::unique_name`]), so they can
//! run in parallel. A test that needs a server of its own uses [`Moto::private`], stopped when
//! dropped.
//!
//! The helpers ([`Moto::create_queue`], [`Moto::send`], [`Moto::receive_all`],
//! [`Moto::approximate_counts`]) are blocking: each runs on a runtime of its own in a thread
//! of its own, so they may be called from plain `#[test]`s and from inside a Tokio runtime
//! alike. For anything else, [`Moto::client`] is a real `aws-sdk-sqs` client.
//!
//! Stopping: as for [Garage](crate::garage) (the workspace forbids `unsafe`, and a `static` is
//! never dropped), a small `sh` watchdog, started beside moto, polls the test process's pid
//! once a second; when it is gone (normal exit, panic, or `SIGKILL`) it stops moto (`TERM`,
//! then `KILL`) and removes the temporary directory.
//!
//! Finding moto: `$MOTO_SERVER` (a path, which `scripts/test` exports), else
//! `$CARGO_TARGET_DIR/moto-venv/bin/moto_server` (the workspace's `target/` when
//! `CARGO_TARGET_DIR` is unset; where `scripts/test` installs it), else `moto_server` on
//! `PATH`.
//!
//! ```no_run
//! use connect_audit_tests::moto::Moto;
//!
//! let moto = Moto::shared();
//! let queue = moto.create_queue(&moto.unique_name("events"), 30, Some(3));
//! moto.send(&queue.url, r#"{"hello":"world"}"#);
//! // A `connect-audit` process reaches it with Garage's credentials and moto's endpoint:
//! // Command::new(bin).envs(garage.aws_env()).envs(moto.aws_env())
//! assert_eq!(moto.approximate_counts(&queue.url), (1, 0));
//! ```

use std::fs;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::operation::create_queue::builders::CreateQueueFluentBuilder;
use aws_sdk_sqs::types::QueueAttributeName;

use crate::process::{ServerPid, free_ports, start_watchdog};

/// How long moto may take to answer HTTP before the harness gives up.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The moto version the harness is written for (`scripts/test` installs `moto[server]` at
/// this version).
pub const VERSION: &str = "5.2.6";

const REGION: &str = "us-east-1";

/// How long [`Moto::receive_all`] hides what it has received while it collects the rest (it
/// makes them visible again at the end).
const COLLECT_VISIBILITY_SECS: i32 = 60;

/// A running moto server; see the module documentation.
#[derive(Debug)]
pub struct Moto {
    endpoint: String,
    dir: PathBuf,
    /// Moto and its watchdog, owned for the life of the test binary (or of a private server);
    /// the watchdog stops moto when the binary is gone.
    processes: Mutex<(Child, Child)>,
    /// Whether this is a test's own server (see [`Moto::private`]), stopped when dropped.
    private: bool,
}

/// A queue made by [`Moto::create_queue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    /// The queue URL, `http://127.0.0.1:<port>/123456789012/<name>`.
    pub url: String,
    /// The queue ARN, `arn:aws:sqs:us-east-1:123456789012:<name>`.
    pub arn: String,
    /// The URL of its dead-letter queue `<name>-dlq`, when it was made with a
    /// `max_receive_count`.
    pub dlq_url: Option<String>,
}

impl Moto {
    /// The server of this test binary, started on first use.
    pub fn shared() -> &'static Moto {
        static MOTO: OnceLock<Moto> = OnceLock::new();
        MOTO.get_or_init(|| Moto::start(false))
    }

    /// A server of the calling test alone (same setup as [`shared`](Self::shared), its own
    /// port, empty). Dropping it stops it and removes its directory.
    pub fn private() -> Self {
        Moto::start(true)
    }

    fn start(private: bool) -> Self {
        let binary = moto_server_binary();
        // Kept by the watchdog, which removes it after moto stops.
        let dir = tempfile::Builder::new()
            .prefix("connect-audit-moto.")
            .tempdir()
            .expect("cannot create a temporary directory for moto")
            .keep();
        let [port] = free_ports::<1>();
        let log = fs::File::create(dir.join("moto.log")).expect("cannot create moto's log file");
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            // Python buffers a redirected stderr/stdout: unbuffered, the log is complete when
            // a failure prints it.
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cannot share moto's log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let watchdog = start_watchdog(ServerPid::Known(child.id()), &dir, "moto");
        let moto = Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            dir,
            processes: Mutex::new((child, watchdog)),
            private,
        };
        moto.wait_until_ready();
        moto
    }

    fn processes(&self) -> MutexGuard<'_, (Child, Child)> {
        self.processes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Polls `GET /moto-api/` until moto answers with any HTTP status; panics with moto's log
    /// if it exits or takes longer than [`STARTUP_TIMEOUT`].
    fn wait_until_ready(&self) {
        let started = Instant::now();
        let fail = |why: String| -> ! {
            panic!(
                "moto ({}) did not start: {why}\n--- moto log ---\n{}",
                moto_server_binary().display(),
                self.log()
            );
        };
        loop {
            if let Some(status) = self.processes().0.try_wait().ok().flatten() {
                fail(format!("it exited with {status}"));
            }
            if self.http_status("/moto-api/").is_some() {
                return;
            }
            if started.elapsed() > STARTUP_TIMEOUT {
                fail(format!(
                    "{} did not answer HTTP within {STARTUP_TIMEOUT:?}",
                    self.endpoint
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The HTTP status of `GET <path>`, if the server answers.
    fn http_status(&self, path: &str) -> Option<u16> {
        let address = self.endpoint.trim_start_matches("http://");
        let mut stream = TcpStream::connect(address).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).ok()?;
        let response = String::from_utf8_lossy(&response);
        response.split_whitespace().nth(1)?.parse().ok()
    }

    /// The SQS endpoint, `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The region of the harness's requests, and so of its queues.
    pub fn region(&self) -> &str {
        REGION
    }

    /// Moto's process id.
    pub fn pid(&self) -> u32 {
        self.processes().0.id()
    }

    /// The directory of moto's log (`moto.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What moto has logged so far (one line per request).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("moto.log")).unwrap_or_default()
    }

    /// A real `aws-sdk-sqs` client for this server: static test credentials
    /// (`testing`/`testing`; moto accepts any), region `us-east-1`. Make one per runtime: its
    /// connection pool belongs to the runtime that first uses it.
    pub fn client(&self) -> aws_sdk_sqs::Client {
        let credentials = Credentials::new("testing", "testing", None, None, "connect-audit-tests");
        let config = aws_sdk_sqs::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(credentials)
            .endpoint_url(&self.endpoint)
            .build();
        aws_sdk_sqs::Client::from_conf(config)
    }

    /// The environment a `connect-audit` process needs to reach this server through the
    /// standard AWS configuration: only `AWS_ENDPOINT_URL_SQS`, which takes precedence over
    /// `AWS_ENDPOINT_URL` for SQS alone.
    ///
    /// No credentials or region: a process has one `AWS_ACCESS_KEY_ID`, and Garage checks its
    /// signatures while moto accepts any. Add [`Garage::aws_env`](crate::garage::Garage::aws_env)
    /// (credentials, region `us-east-1`, the host's AWS configuration shut out) before this.
    pub fn aws_env(&self) -> Vec<(&'static str, String)> {
        vec![("AWS_ENDPOINT_URL_SQS", self.endpoint.clone())]
    }

    /// A queue name no other test of this binary uses: `<prefix>-<n>`. (SQS allows 80
    /// characters of `[A-Za-z0-9_-]`; [`create_queue`](Self::create_queue) adds `-dlq` for a
    /// dead-letter queue.)
    pub fn unique_name(&self, prefix: &str) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// Creates the queue `name` with a default visibility timeout; with `max_receive_count`,
    /// also the queue `<name>-dlq` and a `RedrivePolicy` on `name` that moves a message there
    /// once it has been received more than `max_receive_count` times.
    pub fn create_queue(
        &self,
        name: &str,
        visibility_timeout_secs: u32,
        max_receive_count: Option<u32>,
    ) -> Queue {
        self.block_on(async |client| {
            let mut dlq = None;
            let mut create = client.create_queue().queue_name(name).attributes(
                QueueAttributeName::VisibilityTimeout,
                visibility_timeout_secs.to_string(),
            );
            if let Some(max) = max_receive_count {
                let dlq_name = format!("{name}-dlq");
                let url = create_queue(client.create_queue().queue_name(&dlq_name)).await;
                let arn = queue_arn(client, &url).await;
                let policy =
                    serde_json::json!({ "deadLetterTargetArn": arn, "maxReceiveCount": max });
                create = create.attributes(QueueAttributeName::RedrivePolicy, policy.to_string());
                dlq = Some(url);
            }
            let url = create_queue(create).await;
            let arn = queue_arn(client, &url).await;
            Queue {
                url,
                arn,
                dlq_url: dlq,
            }
        })
    }

    /// Sends one message with `body` to the queue at `queue_url`.
    pub fn send(&self, queue_url: &str, body: &str) {
        self.block_on(async |client| {
            client
                .send_message()
                .queue_url(queue_url)
                .message_body(body)
                .send()
                .await
                .unwrap_or_else(|e| {
                    panic!("cannot send to {queue_url}: {}", DisplayErrorContext(&e))
                });
        });
    }

    /// The bodies of the messages visible now in the queue at `queue_url` (in the order moto
    /// returns them: sort before comparing), which stay there, visible again when this
    /// returns — for asserting what a dead-letter queue holds.
    ///
    /// Each counts as a receive: on a queue with a `RedrivePolicy` this brings messages
    /// closer to its dead-letter queue.
    pub fn receive_all(&self, queue_url: &str) -> Vec<String> {
        self.block_on(async |client| {
            let mut bodies = Vec::new();
            let mut handles = Vec::new();
            loop {
                let received = client
                    .receive_message()
                    .queue_url(queue_url)
                    .max_number_of_messages(10)
                    .visibility_timeout(COLLECT_VISIBILITY_SECS)
                    .wait_time_seconds(0)
                    .send()
                    .await
                    .unwrap_or_else(|e| {
                        panic!(
                            "cannot receive from {queue_url}: {}",
                            DisplayErrorContext(&e)
                        )
                    });
                if received.messages().is_empty() {
                    break;
                }
                for message in received.messages() {
                    bodies.push(message.body().unwrap_or_default().to_owned());
                    handles.extend(message.receipt_handle().map(str::to_owned));
                }
            }
            for handle in handles {
                client
                    .change_message_visibility()
                    .queue_url(queue_url)
                    .receipt_handle(handle)
                    .visibility_timeout(0)
                    .send()
                    .await
                    .unwrap_or_else(|e| {
                        panic!(
                            "cannot make a message of {queue_url} visible again: {}",
                            DisplayErrorContext(&e)
                        )
                    });
            }
            bodies
        })
    }

    /// `(visible, in flight)`: the queue's `ApproximateNumberOfMessages` and
    /// `ApproximateNumberOfMessagesNotVisible` (exact on moto).
    pub fn approximate_counts(&self, queue_url: &str) -> (u64, u64) {
        self.block_on(async |client| {
            let output = client
                .get_queue_attributes()
                .queue_url(queue_url)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                .send()
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot get the attributes of {queue_url}: {}",
                        DisplayErrorContext(&e)
                    )
                });
            let count = |name: QueueAttributeName| -> u64 {
                output
                    .attributes()
                    .and_then(|attributes| attributes.get(&name))
                    .and_then(|value| value.parse().ok())
                    .unwrap_or_else(|| panic!("{queue_url} has no numeric {name}: {output:?}"))
            };
            (
                count(QueueAttributeName::ApproximateNumberOfMessages),
                count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            )
        })
    }

    /// Runs `work` with a fresh [`client`](Self::client) on a current-thread runtime in a
    /// thread of its own (so the caller may itself be inside a runtime), passing on its
    /// panics.
    fn block_on<T: Send>(&self, work: impl AsyncFnOnce(&aws_sdk_sqs::Client) -> T + Send) -> T {
        std::thread::scope(|scope| {
            let thread = std::thread::Builder::new()
                .name("moto-helper".into())
                .spawn_scoped(scope, || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("cannot build a Tokio runtime for moto's helpers");
                    let client = self.client();
                    runtime.block_on(work(&client))
                })
                .expect("cannot start a thread for moto's helpers");
            thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

/// Sends a `CreateQueue` request, returning the URL.
async fn create_queue(request: CreateQueueFluentBuilder) -> String {
    let name = request.get_queue_name().clone().unwrap_or_default();
    let output = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("cannot create queue {name}: {}", DisplayErrorContext(&e)));
    output
        .queue_url()
        .unwrap_or_else(|| panic!("moto created queue {name} without a URL"))
        .to_owned()
}

/// The `QueueArn` attribute of the queue at `url`.
async fn queue_arn(client: &aws_sdk_sqs::Client, url: &str) -> String {
    let output = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap_or_else(|e| panic!("cannot get the ARN of {url}: {}", DisplayErrorContext(&e)));
    output
        .attributes()
        .and_then(|attributes| attributes.get(&QueueAttributeName::QueueArn))
        .unwrap_or_else(|| panic!("moto gave no QueueArn for {url}: {output:?}"))
        .clone()
}

/// The `moto_server` executable: `$MOTO_SERVER`, else `moto-venv/bin/moto_server` in the
/// target directory (`$CARGO_TARGET_DIR`, relative to the workspace, or the workspace's
/// `target/`), else `moto_server` on `PATH`. Panics with what to do when it is missing.
pub fn moto_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("MOTO_SERVER").filter(|path| !path.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "MOTO_SERVER is {}, which is not a file: run scripts/test (it installs \
             moto[server]=={VERSION} and exports MOTO_SERVER), or unset it",
            path.display()
        );
        return path;
    }
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir.parent().unwrap_or(manifest_dir);
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|dir| !dir.is_empty())
        .map_or_else(|| workspace.join("target"), |dir| workspace.join(dir));
    let name = format!("moto_server{}", std::env::consts::EXE_SUFFIX);
    let in_target = target.join("moto-venv").join("bin").join(&name);
    if in_target.is_file() {
        return in_target;
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join(&name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "moto {VERSION} is not installed (MOTO_SERVER is unset, there is no {}, and no \
                 `moto_server` on PATH): run scripts/test (it installs moto[server]=={VERSION} \
                 in $CARGO_TARGET_DIR/moto-venv and exports MOTO_SERVER)",
                in_target.display()
            )
        })
}

impl Drop for Moto {
    /// A private server is stopped and its directory removed (the shared one is a `static`,
    /// never dropped: its watchdog does that when the test binary is gone).
    fn drop(&mut self) {
        if !self.private {
            return;
        }
        let (moto, watchdog) = self
            .processes
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        for child in [moto, watchdog] {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The body S3 sends to SQS for an object created (`ObjectCreated:Put`), as the S3 User
/// Guide's "Event message structure" shows it: the key form-encoded (`%XX` for every byte but
/// letters, digits and `-_./~`), the `ETag` and size as given, `eventTime` now.
pub fn s3_notification(bucket: &str, key: &str, etag: &str, size: usize) -> serde_json::Value {
    let encoded: String = key
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    serde_json::json!({"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": REGION,
        "eventTime": jiff::Timestamp::now().to_string(),
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:AROAEXAMPLE:regionalDeliverySession"},
        "requestParameters": {"sourceIPAddress": "198.51.100.1"},
        "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURIY8"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "cloudtrail-logs",
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": "A3NL1KOZZKExample"}, "arn": format!("arn:aws:s3:::{bucket}")},
            "object": {"key": encoded, "size": size, "eTag": etag, "sequencer": "0055AED6DCD90281E5"}
        }
    }]})
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Send, receive with the real client, delete: the queue is empty again. The helpers
    /// work from inside a runtime too.
    #[tokio::test]
    async fn send_receive_delete() {
        let moto = Moto::shared();
        let name = moto.unique_name("roundtrip");
        let queue = moto.create_queue(&name, 30, None);
        assert!(queue.url.ends_with(&format!("/{name}")), "{queue:?}");
        assert_eq!(
            queue.arn,
            format!("arn:aws:sqs:us-east-1:123456789012:{name}")
        );
        assert_eq!(queue.dlq_url, None);

        moto.send(&queue.url, r#"{"hello":"world"}"#);
        assert_eq!(moto.approximate_counts(&queue.url), (1, 0));

        let client = moto.client();
        let received = client
            .receive_message()
            .queue_url(&queue.url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let [message] = received.messages() else {
            panic!("expected one message: {received:?}");
        };
        assert_eq!(message.body(), Some(r#"{"hello":"world"}"#));
        assert_eq!(moto.approximate_counts(&queue.url), (0, 1));
        client
            .delete_message()
            .queue_url(&queue.url)
            .receipt_handle(message.receipt_handle().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(moto.approximate_counts(&queue.url), (0, 0));
        assert!(moto.receive_all(&queue.url).is_empty());
    }

    /// A message received more than `maxReceiveCount` times moves to the dead-letter queue
    /// (moto applies the redrive policy on the next receive).
    #[test]
    fn redrive_to_dead_letter_queue() {
        let moto = Moto::shared();
        let name = moto.unique_name("redrive");
        // Visibility timeout 0: a received message is visible again at once.
        let queue = moto.create_queue(&name, 0, Some(2));
        let dlq_url = queue.dlq_url.clone().expect("a dead-letter queue");
        assert!(dlq_url.ends_with(&format!("/{name}-dlq")), "{queue:?}");
        moto.send(&queue.url, "poison");
        moto.send(&dlq_url, "already dead");

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = moto.client();
        let mut deliveries = 0;
        for _ in 0..5 {
            let received = runtime
                .block_on(
                    client
                        .receive_message()
                        .queue_url(&queue.url)
                        .max_number_of_messages(10)
                        .send(),
                )
                .unwrap();
            for message in received.messages() {
                assert_eq!(message.body(), Some("poison"));
                deliveries += 1;
            }
        }
        assert_eq!(deliveries, 2, "received maxReceiveCount times, then moved");
        assert_eq!(moto.approximate_counts(&queue.url), (0, 0));
        assert_eq!(moto.approximate_counts(&dlq_url), (2, 0));

        let mut dead = moto.receive_all(&dlq_url);
        dead.sort();
        assert_eq!(dead, ["already dead", "poison"]);
        // receive_all leaves them there, visible.
        assert_eq!(moto.approximate_counts(&dlq_url), (2, 0));
        assert_eq!(moto.receive_all(&dlq_url).len(), 2);
    }

    /// The environment points SQS, and only SQS, at moto.
    #[test]
    fn aws_env_names_the_sqs_endpoint() {
        let moto = Moto::shared();
        assert_eq!(
            moto.aws_env(),
            [("AWS_ENDPOINT_URL_SQS", moto.endpoint().to_owned())]
        );
    }

    /// A private server has its own queues and is gone once dropped.
    #[test]
    fn private_server_stops_on_drop() {
        let moto = Moto::private();
        let endpoint = moto.endpoint().to_owned();
        assert_ne!(endpoint, Moto::shared().endpoint());
        let queue = moto.create_queue("private", 30, None);
        moto.send(&queue.url, "mine");
        assert_eq!(moto.receive_all(&queue.url), ["mine"]);
        let dir = moto.dir().to_owned();
        drop(moto);
        assert!(TcpStream::connect(endpoint.trim_start_matches("http://")).is_err());
        assert!(!dir.exists());
    }
}
