//! Benchmark of the SIEM webhook exporter (not a timed test): N generated records through
//! `connect_audit_exporters::build` into the local receiver
//! ([`connect_audit_tests::siem_receiver`]), for both flavours, with and without gzip. Prints
//! events per second, requests and batch sizes as a Markdown table (`BENCHMARKS.md`).
//!
//! ```text
//! cargo run --release -p connect-audit-bench --bin bench-siem -- \
//!     [--events 200000] [--max-events 500] [--concurrency 4]
//! ```
//!
//! The receiver runs in the same process (one thread) and parses every body to count its
//! events, so the figure is a floor for the exporter: a real SIEM is another machine.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::Instant;

use connect_audit_core::{ActorKind, AuditRecord, Category, NameSource, Origin, TargetKind};
use connect_audit_exporters::{ExporterSpec, Secret, SiemFlavor, SiemWebhookSpec};
use connect_audit_tests::siem_receiver::SiemReceiver;

const INSTANCE: &str = "6762b34f-4e26-4a8e-a032-35a1e58e1b1c";

fn record(i: usize) -> AuditRecord {
    let second = i64::try_from(i).expect("small") % 86_400;
    AuditRecord {
        event_time: jiff::Timestamp::from_second(1_714_521_600 + second).expect("in range"),
        event_id: format!("{i:08x}-0000-4000-8000-{i:012x}"),
        target_index: 0,
        event_name: "UpdateUserSecurityProfiles".into(),
        category: Category::ALL[i % Category::ALL.len()],
        account_id: "111122223333".into(),
        region: "ap-northeast-1".into(),
        instance_id: Some(INSTANCE.into()),
        actor_kind: ActorKind::ALL[i % ActorKind::ALL.len()],
        actor_id: Some("8698e95f-b8d0-48ea-97da-1b729ffe1d99".into()),
        actor_name: Some("alice.admin".into()),
        actor_arn: Some(
            "arn:aws:sts::111122223333:assumed-role/AWSServiceRoleForAmazonConnect_x/8698e95f-b8d0-48ea-97da-1b729ffe1d99".into(),
        ),
        target_kind: TargetKind::ALL[i % TargetKind::ALL.len()],
        target_id: Some(format!("{i:08x}-1111-4000-8000-000000000000")),
        target_name: Some(format!("agent{i}")),
        name_source: NameSource::ALL[i % NameSource::ALL.len()],
        origin: Origin::ALL[i % Origin::ALL.len()],
        source_ip: Some("203.0.113.7".into()),
        user_agent: Some("connect.amazonaws.com".into()),
        error_code: None,
        error_message: None,
        request_parameters: Some(format!(
            r#"{{"InstanceId":"{INSTANCE}","UserId":"{i:08x}-1111-4000-8000-000000000000","SecurityProfileIds":["a","b"]}}"#
        )),
        response_elements: None,
        // No change decoded: the change stage's columns empty.
        ..AuditRecord::new(jiff::Timestamp::UNIX_EPOCH, "", "", Category::User)
    }
}

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let events = arg(&args, "--events", 200_000);
    let max_events = arg(&args, "--max-events", 500);
    let concurrency = arg(&args, "--concurrency", 4);
    let records: Vec<AuditRecord> = (0..events).map(record).collect();
    let dir = tempfile::tempdir().expect("a temporary directory");

    println!(
        "| flavour | gzip | events | max_events | concurrency | requests | avg batch | avg body / sent (kB) | seconds | events/s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for flavor in [SiemFlavor::SplunkHec, SiemFlavor::StandardWebhooks] {
        for gzip in [false, true] {
            let receiver = SiemReceiver::start_counting();
            let mut spec = SiemWebhookSpec::new(flavor, receiver.url());
            match flavor {
                SiemFlavor::SplunkHec => spec.token = Some(Secret::new("bench-token")),
                SiemFlavor::StandardWebhooks => {
                    spec.secret = Some(Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
                }
            }
            spec.gzip = gzip;
            spec.max_events = max_events;
            spec.concurrency = concurrency;
            spec.dead_letter = dir.path().join("dead.jsonl").display().to_string();
            let clock = Instant::now();
            let mut exporter = connect_audit_exporters::build(
                &ExporterSpec::SiemWebhook(spec).validated().expect("valid"),
            )
            .expect("build");
            // The scan hands over batches of about this size.
            for chunk in records.chunks(1000) {
                exporter.write(chunk).expect("write");
            }
            let summary = exporter.finish().expect("every event delivered");
            let seconds = clock.elapsed().as_secs_f64();
            assert_eq!(summary.records, events as u64);
            let requests = receiver.requests();
            let counted: usize = requests.iter().map(|r| r.events).sum();
            assert_eq!(counted, events, "the receiver counted every event");
            let flavour = match flavor {
                SiemFlavor::SplunkHec => "splunk-hec",
                SiemFlavor::StandardWebhooks => "standard-webhooks",
            };
            #[allow(clippy::cast_precision_loss)]
            let (per_second, average, body_kb, sent_kb) = (
                events as f64 / seconds,
                events as f64 / requests.len() as f64,
                requests.iter().map(|r| r.body_len).sum::<usize>() as f64
                    / requests.len() as f64
                    / 1000.0,
                requests.iter().map(|r| r.sent_len).sum::<usize>() as f64
                    / requests.len() as f64
                    / 1000.0,
            );
            println!(
                "| {flavour} | {gzip} | {events} | {max_events} | {concurrency} | {} | {average:.0} | {body_kb:.0} / {sent_kb:.0} | {seconds:.2} | {per_second:.0} |",
                requests.len()
            );
        }
    }
}
