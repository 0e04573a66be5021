//! `bench-html [--events 50000] [--runs 5] [--out FILE] [--chromium /usr/bin/chromium]`:
//! writes an HTML report of N synthetic audit records, opens it in headless Chromium several
//! times and prints the times the page records itself, in milliseconds from the start of
//! navigation (reading and parsing the file included): `data-render-ms` on `<body>` when the
//! first page of the table is in the document, `data-painted-ms` once it was painted.

#![allow(clippy::print_stdout, clippy::print_stderr)]
#![allow(
    clippy::too_many_lines,
    reason = "a test or benchmark reads best top to bottom; product code is split at clippy.toml's threshold"
)]

use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use connect_audit_core::{
    ActorKind, AuditRecord, Category, NameSource, Origin, Scope, TargetKind, Window,
};
use connect_audit_exporters::{ExporterSpec, HtmlSpec, RunContext};
use jiff::{SignedDuration, Timestamp};

const INSTANCE: &str = "6762b34f-4e26-4a8e-a032-35a1e58e1b1c";

/// A small deterministic generator (64-bit LCG), so every run writes the same page.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

fn uuid(rng: &mut Lcg, n: u64) -> String {
    let a = n.wrapping_mul(2_654_435_761) ^ rng.below(1 << 30);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a & 0xffff_ffff,
        n & 0xffff,
        a & 0xfff,
        n & 0xfff,
        a.wrapping_mul(31) & 0xffff_ffff_ffff
    )
}

/// Record `i` of a 30-day window: 40 actors (a few busy), 2 000 users, every category, one
/// call in 25 failed, request parameters of the size the real ones have.
fn record(i: u64, rng: &mut Lcg, since: Timestamp, span_secs: i64) -> AuditRecord {
    const NAMES: [(&str, Category, TargetKind); 8] = [
        (
            "UpdateUserSecurityProfiles",
            Category::Permissions,
            TargetKind::User,
        ),
        (
            "UpdateUserRoutingProfile",
            Category::Permissions,
            TargetKind::User,
        ),
        (
            "UpdateUserHierarchy",
            Category::Permissions,
            TargetKind::User,
        ),
        ("UpdateUserIdentityInfo", Category::User, TargetKind::User),
        ("CreateUser", Category::User, TargetKind::User),
        ("TagResource", Category::Tags, TargetKind::User),
        (
            "UpdateSecurityProfile",
            Category::SecurityProfile,
            TargetKind::SecurityProfile,
        ),
        (
            "UpdateUserHierarchyGroupName",
            Category::Hierarchy,
            TargetKind::HierarchyGroup,
        ),
    ];
    let (name, category, target_kind) = NAMES[usize::try_from(rng.below(8)).unwrap_or(0)];
    let offset = i64::try_from(rng.below(u64::try_from(span_secs).unwrap_or(1))).unwrap_or(0);
    let actor = rng.below(40).min(rng.below(40));
    let user = rng.below(2000);
    let failed = rng.below(25) == 0;
    let console = rng.below(3) > 0;
    let target_id = uuid(rng, user);
    AuditRecord {
        event_time: since
            .checked_add(SignedDuration::from_secs(offset))
            .unwrap_or(since),
        event_id: uuid(rng, i),
        target_index: 0,
        event_name: name.to_owned(),
        category,
        account_id: "111122223333".to_owned(),
        region: "ap-northeast-1".to_owned(),
        instance_id: Some(INSTANCE.to_owned()),
        actor_kind: if console {
            ActorKind::ConnectUser
        } else {
            ActorKind::Iam
        },
        actor_id: Some(format!("actor-{actor:02}")),
        actor_name: Some(format!("admin{actor:02}.example")),
        actor_arn: Some(format!(
            "arn:aws:sts::111122223333:assumed-role/AWSServiceRoleForAmazonConnect_Ab/actor-{actor:02}"
        )),
        target_kind,
        target_name: Some(format!("agent{user:04}")),
        name_source: NameSource::Snapshot,
        origin: if console { Origin::Console } else { Origin::Api },
        source_ip: Some(format!("203.0.113.{}", actor + 1)),
        user_agent: Some(if console {
            "connect.amazonaws.com".to_owned()
        } else {
            "aws-cli/2.15.30 Python/3.11.8 Linux/6.1.0 exe/x86_64.debian.12 command/connect.update-user-security-profiles".to_owned()
        }),
        error_code: failed.then(|| "AccessDeniedException".to_owned()),
        error_message: failed.then(|| {
            "User: arn:aws:iam::111122223333:user/ops is not authorized to perform: connect:UpdateUserSecurityProfiles".to_owned()
        }),
        request_parameters: Some(format!(
            r#"{{"InstanceId":"{INSTANCE}","SecurityProfileIds":["d6a7b6c8-a2d2-466d-a760-ed2a37ffff52","2a79e68e-9142-4874-b3ae-1a625db1e199"],"UserId":"{target_id}"}}"#
        )),
        target_id: Some(target_id),
        response_elements: None,
        // No change decoded: the change stage's columns empty.
        ..AuditRecord::new(jiff::Timestamp::UNIX_EPOCH, "", "", Category::User)
    }
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: bench-html [--events 50000] [--runs 5] [--out FILE] [--chromium /usr/bin/chromium]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut events: u64 = 50_000;
    let mut runs: usize = 5;
    let mut out: Option<PathBuf> = None;
    let mut chromium = PathBuf::from("/usr/bin/chromium");
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let Some(value) = args.next() else {
            return usage();
        };
        let ok = match flag.as_str() {
            "--events" => value.parse().map(|n| events = n).is_ok(),
            "--runs" => value.parse().map(|n| runs = n).is_ok(),
            "--out" => {
                out = Some(PathBuf::from(value));
                true
            }
            "--chromium" => {
                chromium = PathBuf::from(value);
                true
            }
            _ => false,
        };
        if !ok {
            return usage();
        }
    }
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let out = out.unwrap_or_else(|| scratch.path().join("bench.html"));

    let since: Timestamp = "2024-05-01T00:00:00Z".parse().expect("a time");
    let until: Timestamp = "2024-05-31T00:00:00Z".parse().expect("a time");
    let span = until.duration_since(since).as_secs();
    let mut rng = Lcg(42);
    // In random time order: the page sorts them (oldest first) before its first render.
    let records: Vec<AuditRecord> = (0..events)
        .map(|i| record(i, &mut rng, since, span))
        .collect();

    let started = Instant::now();
    let spec = ExporterSpec::Html(HtmlSpec {
        timezone: "Asia/Tokyo".to_owned(),
        ..HtmlSpec::new(out.display().to_string())
    });
    let mut exporter = connect_audit_exporters::build(&spec.validated().expect("valid"))
        .expect("the html exporter");
    for batch in records.chunks(8192) {
        exporter.write(batch).expect("written");
    }
    exporter.run_context(&RunContext {
        tool: "bench-html".to_owned(),
        window: Some(Window { since, until }),
        scope: Scope::default(),
        ..RunContext::default()
    });
    exporter.finish().expect("finished");
    let write = started.elapsed();
    let bytes = std::fs::metadata(&out).map_or(0, |m| m.len());
    #[allow(clippy::cast_precision_loss)]
    let mib = bytes as f64 / (1024.0 * 1024.0);
    println!(
        "bench-html: {events} records, {mib:.1} MiB of HTML written in {:.2} s ({})",
        write.as_secs_f64(),
        out.display()
    );

    let url = format!("file://{}", out.display());
    let mut times = Vec::new();
    for run in 1..=runs {
        let profile = tempfile::tempdir().expect("a profile directory");
        let started = Instant::now();
        let dom = Command::new(&chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1400,2000",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(&url)
            .stderr(Stdio::null())
            .output();
        let wall = started.elapsed();
        let dom = match dom {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
            Ok(o) => {
                eprintln!("bench-html: chromium failed: {}", o.status);
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("bench-html: cannot run {}: {e}", chromium.display());
                return ExitCode::FAILURE;
            }
        };
        let attribute = |name: &str| {
            let needle = format!(" {name}=\"");
            let at = dom.find(&needle)? + needle.len();
            Some(dom[at..at + dom[at..].find('"')?].to_owned())
        };
        let (Some(render), Some(painted), Some(rendered), Some(loaded)) = (
            attribute("data-render-ms").and_then(|v| v.parse::<f64>().ok()),
            attribute("data-painted-ms").and_then(|v| v.parse::<f64>().ok()),
            attribute("data-rendered"),
            attribute("data-loaded"),
        ) else {
            eprintln!("bench-html: the page recorded no render time (did its script run?)");
            return ExitCode::FAILURE;
        };
        println!(
            "run {run}: first page in the document at {render:.0} ms, painted at {painted:.0} ms ({rendered} rows of {loaded} records); chromium process {:.2} s (with --dump-dom of the whole page)",
            wall.as_secs_f64()
        );
        times.push((render, painted));
    }
    for (what, pick) in [
        (
            "in the document",
            (|t: &(f64, f64)| t.0) as fn(&(f64, f64)) -> f64,
        ),
        ("painted", |t: &(f64, f64)| t.1),
    ] {
        let mut ms: Vec<f64> = times.iter().map(pick).collect();
        ms.sort_by(f64::total_cmp);
        if let (Some(min), Some(max)) = (ms.first(), ms.last()) {
            println!(
                "first page {what}: median {:.0} ms, min {min:.0} ms, max {max:.0} ms over {runs} runs",
                ms[ms.len() / 2]
            );
        }
    }
    ExitCode::SUCCESS
}
