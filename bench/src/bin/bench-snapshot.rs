//! Benchmark of the snapshot (not a timed test): 10 000 users in one instance, from the fake
//! Connect server into real S3, first run and unchanged re-run, with and without
//! `DescribeUser`, and the floor: the same number of bare PUTs with no snapshot logic.
//! Prints wall times and the requests each server saw, as a Markdown table (`BENCHMARKS.md`).
//!
//! ```text
//! cargo run --release -p connect-audit-bench --bin bench-snapshot -- \
//!     [--users 10000] [--latency-ms 0] [--store-concurrency 32] [--store s3://bucket/prefix]
//! ```
//!
//! Without `--store`, S3 is the test harness's Garage ([`connect_audit_tests::garage`]);
//! with it, any S3 reached through the standard AWS configuration (`AWS_ENDPOINT_URL`, …).
//! `--latency-ms` delays every fake Connect answer (the real service answers in tens of
//! milliseconds); the default is 0, so the figures measure the tool and the store.

#![allow(clippy::print_stdout, clippy::print_stderr)]
#![allow(
    clippy::too_many_lines,
    reason = "a test or benchmark reads best top to bottom; product code is split at clippy.toml's threshold"
)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;
use connect_audit_core::location::{Location, Store};
use connect_audit_snapshot::{Instance, NoProgress, SnapshotOptions, Snapshotter};
use connect_audit_tests::fake_connect::FakeConnect;
use connect_audit_tests::garage::Garage;
use futures_util::StreamExt as _;

const INSTANCE: &str = "6762b34f-4e26-4a8e-a032-35a1e58e1b1c";

/// Counts the HTTP requests an S3 client sends, by method, retries included.
#[derive(Debug, Clone, Default)]
struct S3Requests(Arc<Mutex<BTreeMap<String, u64>>>);

impl S3Requests {
    fn take(&self) -> BTreeMap<String, u64> {
        std::mem::take(&mut *self.0.lock().unwrap())
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

/// One line of the table.
struct Row {
    scenario: String,
    seconds: f64,
    connect: BTreeMap<&'static str, u64>,
    s3: BTreeMap<String, u64>,
    /// Object PUTs and run-log PUTs as the snapshot counted them.
    puts: Option<(u64, u64)>,
    /// Users added and unchanged.
    users: Option<(u64, u64)>,
}

fn arg_text(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    Some(
        args.get(i + 1)
            .unwrap_or_else(|| panic!("{name} takes a value"))
            .clone(),
    )
}

fn arg(name: &str, default: u64) -> u64 {
    arg_text(name).map_or(default, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} takes a number, not {v:?}"))
    })
}

/// An S3 client from the standard AWS configuration (path-style when `AWS_ENDPOINT_URL`
/// overrides the endpoint), and the bucket and prefix of `location`.
async fn external_s3(location: &str) -> (aws_sdk_s3::Client, String, String) {
    let Ok(Location::S3 { bucket, prefix }) = Location::parse(location) else {
        panic!("--store takes s3://bucket/prefix, not {location:?}");
    };
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let config = aws_sdk_s3::config::Builder::from(&sdk)
        .force_path_style(std::env::var_os("AWS_ENDPOINT_URL").is_some())
        .build();
    (aws_sdk_s3::Client::from_conf(config), bucket, prefix)
}

fn main() {
    let users = usize::try_from(arg("--users", 10_000)).expect("--users fits in memory");
    let latency = Duration::from_millis(arg("--latency-ms", 0));
    let store_concurrency = usize::try_from(arg("--store-concurrency", 32)).expect("a count");
    let external = arg_text("--store");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let fake = FakeConnect::start();
    fake.add_instance(INSTANCE, users);
    fake.set_latency(latency);
    let started = jiff::Timestamp::now();

    let garage = external.is_none().then(|| {
        let clock = Instant::now();
        let garage = Garage::shared();
        eprintln!("Garage up in {:.2?}", clock.elapsed());
        garage
    });

    let rows = runtime.block_on(async {
        let (base, bucket, root) = if let Some(garage) = garage {
            (garage.client(), garage.bucket().to_owned(), String::new())
        } else {
            external_s3(external.as_deref().unwrap_or_default()).await
        };
        let requests = S3Requests::default();
        let config = base
            .config()
            .to_builder()
            .interceptor(requests.clone())
            .build();
        let s3 = aws_sdk_s3::Client::from_conf(config);
        let mut n = 0;
        let mut fresh_store = |label: &str| {
            n += 1;
            let name = format!("bench-{}-{label}-{n}", started.as_second());
            let prefix = if root.is_empty() {
                name
            } else {
                format!("{root}/{name}")
            };
            Store::s3(s3.clone(), &bucket, prefix)
        };
        let connect = fake.client(8);
        let instance = [Instance::parse(INSTANCE).expect("a UUID")];
        let mut rows = Vec::new();

        // The floor: the same number of PUTs of a user object's size, nothing else.
        let store = fresh_store("floor");
        requests.take();
        let clock = Instant::now();
        futures_util::stream::iter(0..users)
            .map(|i| {
                let store = &store;
                async move {
                    let key = format!("users/{i:08}.json");
                    store.put(&key, vec![b'x'; 400]).await.unwrap();
                }
            })
            .buffer_unordered(store_concurrency)
            .count()
            .await;
        rows.push(Row {
            scenario: format!("floor: {users} bare PUTs of 400 bytes, no snapshot"),
            seconds: clock.elapsed().as_secs_f64(),
            connect: fake.request_counts(),
            s3: requests.take(),
            puts: None,
            users: None,
        });

        for (label, describe_users, offset) in
            [("ListUsers only", false, 0), ("describe_users", true, 600)]
        {
            let options = SnapshotOptions {
                describe_users,
                store_concurrency,
                ..SnapshotOptions::default()
            };
            let snapshotter = Snapshotter::new(connect.clone(), fresh_store("snapshot"), options);
            for (run, later) in [("first run", 0), ("unchanged re-run", 60)] {
                fake.reset_counters();
                requests.take();
                let at = started + jiff::SignedDuration::from_secs(offset + later);
                let clock = Instant::now();
                let summary = snapshotter
                    .run_at(at, &instance, &NoProgress)
                    .await
                    .unwrap_or_else(|e| panic!("snapshot failed: {e}"));
                let seconds = clock.elapsed().as_secs_f64();
                let u = summary.user_totals();
                rows.push(Row {
                    scenario: format!("{label}, {run}"),
                    seconds,
                    connect: fake.request_counts(),
                    s3: requests.take(),
                    puts: Some((summary.object_puts, summary.run_log_puts)),
                    users: Some((u.added, u.unchanged)),
                });
            }
        }
        rows
    });

    println!(
        "| scenario | wall time | Connect requests: ListUsers / DescribeUser / profile+group lists | S3 PUT (objects + run log) | S3 GET (objects, run logs, listings) | users added / unchanged |"
    );
    println!("|---|---|---|---|---|---|");
    for row in &rows {
        let c = &row.connect;
        let profiles =
            c["ListSecurityProfiles"] + c["ListRoutingProfiles"] + c["ListUserHierarchyGroups"];
        let s3 = |m: &str| row.s3.get(m).copied().unwrap_or(0);
        let puts = row.puts.map_or_else(
            || s3("PUT").to_string(),
            |(objects, logs)| format!("{} ({objects} + {logs})", s3("PUT")),
        );
        let users = row
            .users
            .map_or_else(|| "–".to_owned(), |(a, u)| format!("{a} / {u}"));
        println!(
            "| {} | {:.2} s | {} / {} / {profiles} | {puts} | {} | {users} |",
            row.scenario,
            row.seconds,
            c["ListUsers"],
            c["DescribeUser"],
            s3("GET"),
        );
    }
}
