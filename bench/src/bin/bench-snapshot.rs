//! Benchmark of the snapshot (not a timed test): 10 000 users in one instance, from the fake
//! Connect server into real S3, first run and unchanged re-run, with and without
//! `DescribeUser`, and the floor: the same number of bare PUTs with no snapshot logic.
//! Prints wall times and the requests each server saw, as a Markdown table (`BENCHMARKS.md`):
//! the fake Connect's counters per operation, and S3 requests counted by an interceptor and
//! told apart by key (objects, `history/`, `index/`, `runs/`) and query (a `ListObjectsV2`
//! is a `GET` with `list-type=2`). Then, per unchanged re-run, whether it met the target of
//! the versioned snapshot: listings and the index, not one GET per object.
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

/// What an S3 request was for, told from its method, key and query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// A `ListObjectsV2` page (`GET ?list-type=2`).
    Listing,
    /// A user, security profile, routing profile or hierarchy group object
    /// (`<folder>/<id>.json`; the floor's keys too).
    Object,
    /// A history file, `history/<run>-<instance>.jsonl`.
    History,
    /// The index, `index/objects.json`.
    Index,
    /// A run log, `runs/<time>.json`.
    RunLog,
}

impl Kind {
    /// From the request's URI: path-style (`/<bucket>/<prefix>/<key>`) or virtual-hosted
    /// (`/<prefix>/<key>`) alike, since only the key's last segments are looked at.
    fn of(method: &str, uri: &str) -> Self {
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        if method == "GET" && query.split('&').any(|p| p == "list-type=2") {
            return Self::Listing;
        }
        let mut segments = path.rsplit('/').skip(1);
        let (parent, grandparent) = (segments.next(), segments.next());
        match (parent, grandparent) {
            (Some("runs"), _) => Self::RunLog,
            (Some("index"), _) => Self::Index,
            // `history/<run>-<instance>.jsonl`; `history/<run>/<instance>.jsonl` before.
            (Some("history"), _) | (_, Some("history")) => Self::History,
            _ => Self::Object,
        }
    }
}

/// Counts the HTTP requests an S3 client sends, by method and [`Kind`], retries included.
#[derive(Debug, Clone, Default)]
struct S3Requests(Arc<Mutex<BTreeMap<(String, Kind), u64>>>);

impl S3Requests {
    fn take(&self) -> S3Counts {
        S3Counts(std::mem::take(&mut *self.0.lock().unwrap()))
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
        let request = context.request();
        let method = request.method().to_owned();
        let kind = Kind::of(&method, request.uri());
        *self.0.lock().unwrap().entry((method, kind)).or_default() += 1;
        Ok(())
    }
}

/// The S3 requests of one scenario.
#[derive(Debug, Default)]
struct S3Counts(BTreeMap<(String, Kind), u64>);

impl S3Counts {
    fn get(&self, method: &str, kind: Kind) -> u64 {
        self.0.get(&(method.to_owned(), kind)).copied().unwrap_or(0)
    }

    fn method(&self, method: &str) -> u64 {
        self.0
            .iter()
            .filter(|((m, _), _)| m == method)
            .map(|(_, n)| n)
            .sum()
    }

    fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// Requests neither `GET` nor `PUT` (none expected).
    fn other(&self) -> u64 {
        self.total() - self.method("GET") - self.method("PUT")
    }
}

/// What the snapshot's own [`RunSummary`](connect_audit_snapshot::RunSummary) counted.
struct Counted {
    object_puts: u64,
    history_puts: u64,
    index_puts: u64,
    run_log_puts: u64,
    store_gets: u64,
    users_added: u64,
    users_unchanged: u64,
}

/// One line of the table.
struct Row {
    scenario: String,
    seconds: f64,
    connect: BTreeMap<&'static str, u64>,
    s3: S3Counts,
    /// `None` for the floor.
    counted: Option<Counted>,
}

/// `10000` as `10 000`, as `BENCHMARKS.md` writes numbers.
fn grouped(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
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
    let user_count = arg("--users", 10_000);
    let users = usize::try_from(user_count).expect("--users fits in memory");
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
            scenario: format!(
                "floor: {} bare PUTs of 400 bytes, no snapshot",
                grouped(user_count)
            ),
            seconds: clock.elapsed().as_secs_f64(),
            connect: fake.request_counts(),
            s3: requests.take(),
            counted: None,
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
                    counted: Some(Counted {
                        object_puts: summary.object_puts,
                        history_puts: summary.history_puts,
                        index_puts: summary.index_puts,
                        run_log_puts: summary.run_log_puts,
                        store_gets: summary.store_gets,
                        users_added: u.added,
                        users_unchanged: u.unchanged,
                    }),
                });
            }
        }
        rows
    });

    print_table(&rows);
    println!();
    for row in rows
        .iter()
        .filter(|r| r.scenario.ends_with("unchanged re-run"))
    {
        print_target(row);
    }
}

/// The Markdown table of `BENCHMARKS.md`. S3 requests are what the interceptor saw, told
/// apart by key; the snapshot's own counts are checked against them (a difference, e.g. a
/// retried request, is reported on stderr).
fn print_table(rows: &[Row]) {
    println!(
        "| scenario | wall time | Connect: ListUsers / DescribeUser / ListUserProficiencies / resource describes / resource lists | S3 PUT (objects + history + index + run log) | S3 GET (listings + object reads: objects, index, run logs) | `store_gets` | users added / unchanged |"
    );
    println!("|---|---|---|---|---|---|---|");
    for row in rows {
        let c = |op: &str| {
            *row.connect
                .get(op)
                .unwrap_or_else(|| panic!("the fake Connect counts no {op}"))
        };
        let lists =
            c("ListSecurityProfiles") + c("ListRoutingProfiles") + c("ListUserHierarchyGroups");
        let describes = c("DescribeSecurityProfile")
            + c("ListSecurityProfilePermissions")
            + c("DescribeRoutingProfile")
            + c("ListRoutingProfileQueues")
            + c("DescribeUserHierarchyGroup");
        let shown =
            c("ListUsers") + c("DescribeUser") + c("ListUserProficiencies") + describes + lists;
        let all: u64 = row.connect.values().sum();
        if all != shown {
            eprintln!(
                "{}: {} Connect requests not in the table",
                row.scenario,
                all - shown
            );
        }

        let s3 = &row.s3;
        let put = |k| s3.get("PUT", k);
        let get = |k| s3.get("GET", k);
        let puts = format!(
            "{} ({} + {} + {} + {})",
            grouped(s3.method("PUT")),
            grouped(put(Kind::Object)),
            grouped(put(Kind::History)),
            grouped(put(Kind::Index)),
            grouped(put(Kind::RunLog)),
        );
        let reads = get(Kind::Object) + get(Kind::History) + get(Kind::Index) + get(Kind::RunLog);
        let gets = format!(
            "{} ({} + {}: {}, {}, {})",
            grouped(s3.method("GET")),
            grouped(get(Kind::Listing)),
            grouped(reads),
            grouped(get(Kind::Object) + get(Kind::History)),
            grouped(get(Kind::Index)),
            grouped(get(Kind::RunLog)),
        );
        if s3.other() > 0 {
            eprintln!(
                "{}: {} S3 requests neither GET nor PUT: {:?}",
                row.scenario,
                s3.other(),
                s3.0
            );
        }
        let (store_gets, users) = match &row.counted {
            None => ("–".to_owned(), "–".to_owned()),
            Some(k) => {
                let seen = [
                    ("object PUTs", k.object_puts, put(Kind::Object)),
                    ("history PUTs", k.history_puts, put(Kind::History)),
                    ("index PUTs", k.index_puts, put(Kind::Index)),
                    ("run log PUTs", k.run_log_puts, put(Kind::RunLog)),
                ];
                for (what, counted, sent) in seen {
                    if counted != sent {
                        eprintln!(
                            "{}: the snapshot counted {counted} {what}, S3 saw {sent}",
                            row.scenario
                        );
                    }
                }
                (
                    grouped(k.store_gets),
                    format!(
                        "{} / {}",
                        grouped(k.users_added),
                        grouped(k.users_unchanged)
                    ),
                )
            }
        };
        println!(
            "| {} | {:.2} s | {} / {} / {} / {} / {} | {puts} | {gets} | {store_gets} | {users} |",
            row.scenario,
            row.seconds,
            grouped(c("ListUsers")),
            grouped(c("DescribeUser")),
            grouped(c("ListUserProficiencies")),
            grouped(describes),
            grouped(lists),
        );
    }
}

/// The issue's target for an unchanged re-run: its S3 requests are the listings and the
/// index (and the last run log), not one GET per object; nothing but the run log written.
fn print_target(row: &Row) {
    let s3 = &row.s3;
    let get = |k| s3.get("GET", k);
    let listings = get(Kind::Listing);
    let object_gets = get(Kind::Object) + get(Kind::History);
    let (index, logs) = (get(Kind::Index), get(Kind::RunLog));
    let puts = s3.method("PUT");
    let met =
        object_gets == 0 && index == 1 && s3.other() == 0 && puts == s3.get("PUT", Kind::RunLog);
    println!(
        "{}: {} S3 requests ({} listings, {} object GETs: {} index + {} run log{}{}; {} PUT{}), target: listings + index — {}",
        row.scenario,
        grouped(s3.total()),
        grouped(listings),
        grouped(object_gets + index + logs),
        grouped(index),
        grouped(logs),
        if logs == 1 { "" } else { "s" },
        if object_gets == 0 {
            String::new()
        } else {
            format!(" + {} objects", grouped(object_gets))
        },
        grouped(puts),
        if puts == 1 { "" } else { "s" },
        if met { "met" } else { "NOT met" },
    );
}
