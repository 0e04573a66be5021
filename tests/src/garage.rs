//! Real S3 for tests: one [Garage](https://garagehq.deuxfleurs.fr/) server per test binary.
//!
//! [`Garage::shared`] starts `garage server --single-node --default-bucket` the first time a
//! test asks for it, on free loopback ports, with a generated configuration (metadata and data
//! in a temporary directory, replication factor 1, a random RPC secret, region `us-east-1`,
//! an admin API with a random token) and a random access key that owns the default bucket.
//! It waits (at most [`STARTUP_TIMEOUT`]) until the admin API's `/health` answers 200, and
//! panics with Garage's log if it does not.
//!
//! Tests share the server and its bucket and stay apart by key prefix
//! ([`Garage::unique_prefix`]) or by bucket ([`Garage::create_bucket`]), so they can run in
//! parallel.
//!
//! A test that stops S3 on purpose starts its own server with [`Garage::private`]: the same
//! setup on ports of its own, which [`Garage::stop`] kills (`SIGKILL`, as a crash would) and
//! [`Garage::restart`] starts again on the same ports and data, so what was stored survives.
//! Dropping it stops it and removes its directory.
//!
//! Stopping: the workspace forbids `unsafe`, so no `atexit` or `prctl(PR_SET_PDEATHSIG)`, and
//! a `static` is never dropped. Instead a small `sh` watchdog, started beside Garage, polls
//! the test process's pid once a second; when it is gone (normal exit, panic, or `SIGKILL`)
//! it stops Garage (`TERM`, then `KILL`) and removes the temporary directory. Garage never
//! outlives the test binary by more than about three seconds.
//!
//! ```no_run
//! let garage = connect_audit_tests::garage::Garage::shared();
//! let client = garage.client();
//! # let _ = client;
//! ```

use std::fmt::Write as _;
use std::fs;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};

use crate::process::{ServerPid, free_ports, start_watchdog};

/// How long Garage may take to answer `/health` before the harness gives up.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The Garage version the harness is written for (`scripts/test` installs it).
pub const VERSION: &str = "2.5.0";

const REGION: &str = "us-east-1";
const BUCKET: &str = "connect-audit-tests";

/// A running Garage server; see the module documentation.
#[derive(Debug)]
pub struct Garage {
    endpoint: String,
    admin_endpoint: String,
    access_key: String,
    secret_key: String,
    dir: PathBuf,
    /// Garage (`None` while stopped) and its watchdog, owned for the life of the test binary
    /// (or of a private server); the watchdog stops Garage when the binary is gone.
    processes: Mutex<(Option<Child>, Child)>,
    /// Whether this is a test's own server (see [`Garage::private`]), stopped when dropped.
    private: bool,
}

impl Garage {
    /// The server of this test binary, started on first use.
    pub fn shared() -> &'static Garage {
        static GARAGE: OnceLock<Garage> = OnceLock::new();
        GARAGE.get_or_init(|| Garage::start(false))
    }

    /// A server of the calling test alone (same setup as [`shared`](Self::shared), its own
    /// ports and directory), for tests that [`stop`](Self::stop) and
    /// [`restart`](Self::restart) it. Dropping it stops it and removes its directory.
    pub fn private() -> Self {
        Garage::start(true)
    }

    fn start(private: bool) -> Self {
        let binary = garage_binary();
        // Kept by the watchdog, which removes it after Garage stops.
        let dir = tempfile::Builder::new()
            .prefix("connect-audit-garage.")
            .tempdir()
            .expect("cannot create a temporary directory for Garage")
            .keep();
        let [s3_port, rpc_port, admin_port] = free_ports::<3>();
        let access_key = format!("GK{}", random_hex(12));
        let secret_key = random_hex(32);
        let config = format!(
            r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "lmdb"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc_port}"
rpc_public_addr = "127.0.0.1:{rpc_port}"
rpc_secret = "{rpc_secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3_port}"

[admin]
api_bind_addr = "127.0.0.1:{admin_port}"
admin_token = "{admin_token}"
"#,
            meta = dir.join("meta").display(),
            data = dir.join("data").display(),
            rpc_secret = random_hex(32),
            admin_token = random_hex(16),
        );
        fs::write(dir.join("garage.toml"), config).expect("cannot write Garage's configuration");
        let child = spawn_garage(&binary, &dir, &access_key, &secret_key);
        let watchdog = start_watchdog(ServerPid::File(&dir.join("garage.pid")), &dir, "Garage");
        let garage = Self {
            endpoint: format!("http://127.0.0.1:{s3_port}"),
            admin_endpoint: format!("127.0.0.1:{admin_port}"),
            access_key,
            secret_key,
            dir,
            processes: Mutex::new((Some(child), watchdog)),
            private,
        };
        garage.wait_until_healthy();
        garage
    }

    fn processes(&self) -> std::sync::MutexGuard<'_, (Option<Child>, Child)> {
        self.processes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Kills the server (`SIGKILL`: no goodbye to clients, as a crash or a lost host) and
    /// waits until it is gone. Only for a [`private`](Self::private) server.
    pub fn stop(&self) {
        assert!(self.private, "only a private Garage may be stopped");
        if let Some(mut child) = self.processes().0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a [`stop`](Self::stop)ped server again on the same ports, configuration and
    /// data, and waits until it is healthy.
    pub fn restart(&self) {
        assert!(self.private, "only a private Garage may be restarted");
        {
            let mut processes = self.processes();
            assert!(processes.0.is_none(), "Garage is running: stop it first");
            processes.0 = Some(spawn_garage(
                &garage_binary(),
                &self.dir,
                &self.access_key,
                &self.secret_key,
            ));
        }
        self.wait_until_healthy();
    }

    /// Polls the admin API's `/health` until it answers 200; panics with Garage's log if it
    /// exits or takes longer than [`STARTUP_TIMEOUT`].
    fn wait_until_healthy(&self) {
        let started = Instant::now();
        let fail = |why: String| -> ! {
            let log = fs::read_to_string(self.dir.join("garage.log")).unwrap_or_default();
            panic!("Garage did not start: {why}\n--- garage log ---\n{log}");
        };
        loop {
            let exited = match self.processes().0.as_mut() {
                Some(child) => child.try_wait().ok().flatten(),
                None => fail("it is stopped".into()),
            };
            if let Some(status) = exited {
                fail(format!("it exited with {status}"));
            }
            if self.health() == Some(200) {
                return;
            }
            if started.elapsed() > STARTUP_TIMEOUT {
                fail(format!(
                    "/health on {} did not answer 200 within {STARTUP_TIMEOUT:?}",
                    self.admin_endpoint
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The HTTP status of `GET /health` on the admin API, if it answers.
    fn health(&self) -> Option<u16> {
        let mut stream = TcpStream::connect(&self.admin_endpoint).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        write!(
            stream,
            "GET /health HTTP/1.0\r\nHost: {}\r\n\r\n",
            self.admin_endpoint
        )
        .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        response.split_whitespace().nth(1)?.parse().ok()
    }

    /// The S3 endpoint, `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The region Garage checks in signatures.
    pub fn region(&self) -> &str {
        REGION
    }

    /// The access key id that owns [`bucket`](Self::bucket) and may create buckets.
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// The secret of [`access_key`](Self::access_key).
    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    /// The bucket created at startup.
    pub fn bucket(&self) -> &str {
        BUCKET
    }

    /// Garage's process id (`None` while [`stop`](Self::stop)ped).
    pub fn pid(&self) -> Option<u32> {
        self.processes().0.as_ref().map(Child::id)
    }

    /// The directory of Garage's configuration, data and log (`garage.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A real `aws-sdk-s3` client for this server: static credentials, the server's region,
    /// path-style addressing. Make one per runtime: its connection pool belongs to the
    /// runtime that first uses it.
    pub fn client(&self) -> aws_sdk_s3::Client {
        self.client_via(&self.endpoint)
    }

    /// A client with this server's credentials that sends its requests to `endpoint` (a proxy
    /// in front of the server).
    pub fn client_via(&self, endpoint: &str) -> aws_sdk_s3::Client {
        let credentials = Credentials::new(
            &self.access_key,
            &self.secret_key,
            None,
            None,
            "connect-audit-tests",
        );
        let config = aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(credentials)
            .endpoint_url(endpoint)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// The environment a `connect-audit` process needs to reach this server through the
    /// standard AWS configuration, with nothing from the host's own AWS setup leaking in.
    pub fn aws_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.clone()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
            ("AWS_CONFIG_FILE", "/nonexistent/aws-config".to_owned()),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/aws-credentials".to_owned(),
            ),
        ]
    }

    /// A key prefix no other test of this binary uses: `<label>-<n>`.
    pub fn unique_prefix(&self, label: &str) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        format!("{label}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// Creates a bucket owned by [`access_key`](Self::access_key) (an existing one is fine).
    pub async fn create_bucket(&self, client: &aws_sdk_s3::Client, name: &str) {
        match client.create_bucket().bucket(name).send().await {
            Ok(_) => {}
            Err(e)
                if e.as_service_error().is_some_and(|s| {
                    s.is_bucket_already_owned_by_you() || s.is_bucket_already_exists()
                }) => {}
            Err(e) => panic!(
                "cannot create bucket {name}: {}",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            ),
        }
    }

    /// Uploads every file under `local` to `s3://bucket/prefix/<relative path>`, returning
    /// how many.
    pub async fn upload_dir(
        &self,
        client: &aws_sdk_s3::Client,
        bucket: &str,
        prefix: &str,
        local: &Path,
    ) -> usize {
        let mut files = Vec::new();
        collect_files(local, &mut files);
        files.sort();
        for path in &files {
            let relative = path.strip_prefix(local).unwrap();
            let mut key = prefix.trim_end_matches('/').to_owned();
            for part in relative.components() {
                if !key.is_empty() {
                    key.push('/');
                }
                key.push_str(part.as_os_str().to_str().unwrap());
            }
            let body = fs::read(path).unwrap();
            client
                .put_object()
                .bucket(bucket)
                .key(&key)
                .body(body.into())
                .send()
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot upload {} to s3://{bucket}/{key}: {}",
                        path.display(),
                        aws_sdk_s3::error::DisplayErrorContext(&e)
                    )
                });
        }
        files.len()
    }
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// The `garage` binary: on `PATH`, else in cargo's bin directory (where `cargo install`
/// puts it). Panics with what to do when it is missing.
pub fn garage_binary() -> PathBuf {
    let name = format!("garage{}", std::env::consts::EXE_SUFFIX);
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default();
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")));
    on_path
        .into_iter()
        .chain(cargo_home.map(|home| home.join("bin")))
        .map(|dir| dir.join(&name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "Garage {VERSION} is not installed (no `garage` on PATH or in ~/.cargo/bin): \
                 run scripts/test (it installs Garage)"
            )
        })
}

/// `bytes` random bytes from the operating system, hex-encoded.
fn random_hex(bytes: usize) -> String {
    let mut raw = vec![0; bytes];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut raw))
        .expect("cannot read /dev/urandom");
    raw.iter().fold(String::new(), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    })
}

impl Drop for Garage {
    /// A private server is stopped and its directory removed (the shared one is a `static`,
    /// never dropped: its watchdog does that when the test binary is gone).
    fn drop(&mut self) {
        if !self.private {
            return;
        }
        let processes = self
            .processes
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(child) = processes.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = processes.1.kill();
        let _ = processes.1.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Starts `garage server` on the configuration in `dir`, appending to `dir/garage.log` and
/// writing its pid to `dir/garage.pid` for the watchdog.
fn spawn_garage(binary: &Path, dir: &Path, access_key: &str, secret_key: &str) -> Child {
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("garage.log"))
        .expect("cannot open Garage's log file");
    let child = Command::new(binary)
        .arg("-c")
        .arg(dir.join("garage.toml"))
        .args(["server", "--single-node", "--default-bucket"])
        .env("GARAGE_DEFAULT_ACCESS_KEY", access_key)
        .env("GARAGE_DEFAULT_SECRET_KEY", secret_key)
        .env("GARAGE_DEFAULT_BUCKET", BUCKET)
        .env("RUST_LOG", "garage=info,warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("cannot share Garage's log file"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
    fs::write(dir.join("garage.pid"), child.id().to_string())
        .expect("cannot write Garage's pid file");
    child
}
