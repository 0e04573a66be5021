//! The records of `examples/` through JSON Lines and Parquet with `schema = "ocsf"`: one OCSF
//! event per record, of the class its event calls for, the same event in every output.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, TimestampMillisecondType};
use arrow_array::{Array, RecordBatch};
use connect_audit_config::{ExporterSpec, JsonlSpec, ParquetSpec, RecordSchema};
use connect_audit_core::store::load_directory_blocking;
use connect_audit_core::{AuditRecord, EventSelection, Store, Window};
use connect_audit_exporters::ocsf::{self, to_ocsf};
use connect_audit_exporters::{Exporter, build};
use connect_audit_query::local::{ScanOptions, TrailScanner};
use jiff::tz::TimeZone;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");

/// Every audited record of `examples/` (all groups), in time order.
fn example_records() -> Vec<AuditRecord> {
    let root = PathBuf::from(EXAMPLES);
    let (since, until) = connect_audit_tests::WINDOW;
    let window = Window::parse(
        Some(since),
        Some(until),
        "2024-06-01T00:00:00Z".parse().unwrap(),
    )
    .unwrap();
    let directory = load_directory_blocking(&Store::local(root.join("snapshot"))).unwrap();
    let options = ScanOptions::new(window, EventSelection::parse(&["all"]).unwrap());
    let scanner = TrailScanner::new(Store::local(root.join("trail")), directory, options);
    let mut records = Vec::new();
    scanner.scan(&mut records).unwrap();
    records.sort_by(|a, b| (a.event_time, &a.event_id).cmp(&(b.event_time, &b.event_id)));
    records
}

fn text(path: &Path) -> String {
    path.display().to_string()
}

/// Rows of every Parquet file given, in file order, as (event JSON, batch row) pairs checked
/// against the OCSF schema.
fn parquet_events(files: &[PathBuf]) -> Vec<Value> {
    let mut events = Vec::new();
    for file in files {
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(file).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            assert_eq!(batch.schema(), ocsf::arrow_schema());
            events.extend(checked_rows(&batch));
        }
    }
    events
}

/// The `event` column parsed, after checking that the scalar columns say what it says.
fn checked_rows(batch: &RecordBatch) -> Vec<Value> {
    let column = |name: &str| batch.column_by_name(name).unwrap().clone();
    let events = column("event");
    let events = events.as_string::<i32>();
    let time = column("time");
    let time = time.as_primitive::<TimestampMillisecondType>();
    let class = column("class_uid");
    let class = class.as_primitive::<Int32Type>();
    let user_uid = column("user_uid");
    let user_uid = user_uid.as_string::<i32>();
    let ip = column("src_endpoint_ip");
    let ip = ip.as_string::<i32>();
    let operation = column("api_operation");
    let operation = operation.as_string::<i32>();
    (0..batch.num_rows())
        .map(|i| {
            let event: Value = serde_json::from_str(events.value(i)).unwrap();
            assert_eq!(Some(time.value(i)), event["time"].as_i64());
            assert_eq!(Some(i64::from(class.value(i))), event["class_uid"].as_i64());
            assert_eq!(operation.value(i), event["api"]["operation"]);
            let uid = (!user_uid.is_null(i)).then(|| user_uid.value(i));
            assert_eq!(uid, event.pointer("/user/uid").and_then(Value::as_str));
            let addr = (!ip.is_null(i)).then(|| ip.value(i));
            assert_eq!(
                addr,
                event.pointer("/src_endpoint/ip").and_then(Value::as_str)
            );
            event
        })
        .collect()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

#[test]
fn examples_through_jsonl_and_parquet_as_ocsf() {
    let records = example_records();
    assert!(records.len() >= 20, "{} records", records.len());

    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("ocsf.jsonl");
    let single = dir.path().join("ocsf.parquet");
    let lake = dir.path().join("lake");
    let specs = [
        ExporterSpec::Jsonl(JsonlSpec {
            schema: RecordSchema::Ocsf,
            ..JsonlSpec::new(text(&jsonl))
        }),
        ExporterSpec::Parquet(ParquetSpec {
            schema: RecordSchema::Ocsf,
            row_group_size: 7,
            ..ParquetSpec::new(text(&single))
        }),
        ExporterSpec::Parquet(ParquetSpec {
            schema: RecordSchema::Ocsf,
            partition_by_date: true,
            ..ParquetSpec::new(text(&lake))
        }),
    ];
    let mut exporters: Vec<Box<dyn Exporter>> = specs.iter().map(|s| build(s).unwrap()).collect();
    assert_eq!(
        exporters[0].describe(),
        format!("jsonl {} (ocsf)", text(&jsonl))
    );
    for chunk in records.chunks(5) {
        for exporter in &mut exporters {
            exporter.write(chunk).unwrap();
        }
    }
    let summaries: Vec<_> = exporters.into_iter().map(|e| e.finish().unwrap()).collect();
    for summary in &summaries {
        assert_eq!(
            summary.records,
            records.len() as u64,
            "{}",
            summary.exporter
        );
    }

    // JSON Lines: one OCSF object per line, in record order, exactly `to_ocsf` of the record.
    let lines = fs::read_to_string(&jsonl).unwrap();
    let from_jsonl: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(from_jsonl.len(), records.len());
    for (event, record) in from_jsonl.iter().zip(&records) {
        assert_eq!(*event, to_ocsf(record), "{}", record.event_id);
        assert_eq!(event["metadata"]["uid"], record.event_id.as_str());
        assert_eq!(event["metadata"]["version"], ocsf::OCSF_VERSION);
        let expected_class = match record.event_name.as_str() {
            "CreateUser"
            | "DeleteUser"
            | "UpdateUserIdentityInfo"
            | "UpdateUserPhoneConfig"
            | "UpdateUserConfig" => 3001,
            "UpdateUserSecurityProfiles" | "UpdateUserRoutingProfile" | "UpdateUserHierarchy" => {
                3005
            }
            _ => 6003,
        };
        assert_eq!(
            event["class_uid"], expected_class,
            "{} {}",
            record.event_name, record.event_id
        );
        match expected_class {
            3001 | 3005 => assert!(event["user"]["uid"].is_string(), "{event:#}"),
            _ => assert!(event.get("user").is_none()),
        }
        let failed = record.error_code.is_some();
        assert_eq!(event["status_id"], if failed { 2 } else { 1 });
        // CloudTrail writes the service name for admin-website calls: never an `ip` then.
        match record.source_ip.as_deref() {
            Some("connect.amazonaws.com") => {
                assert_eq!(event["src_endpoint"]["domain"], "connect.amazonaws.com");
                assert!(event["src_endpoint"].get("ip").is_none());
            }
            Some(ip) if ip.parse::<std::net::IpAddr>().is_ok() => {
                assert_eq!(event["src_endpoint"]["ip"], ip);
            }
            _ => {}
        }
    }
    let classes: BTreeSet<i64> = from_jsonl
        .iter()
        .map(|e| e["class_uid"].as_i64().unwrap())
        .collect();
    assert_eq!(classes, BTreeSet::from([3001, 3005, 6003]));
    assert!(
        from_jsonl.iter().any(|e| e["status_id"] == 2),
        "the examples hold a failed call"
    );

    // Parquet, one file: the same events, with row groups of 7.
    assert_eq!(summaries[1].outputs, std::slice::from_ref(&single));
    assert_eq!(parquet_events(std::slice::from_ref(&single)), from_jsonl);

    // Parquet by date: one partition per UTC date, each with its date's events.
    let mut by_date: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (record, event) in records.iter().zip(&from_jsonl) {
        let date = TimeZone::UTC.to_datetime(record.event_time).date();
        by_date
            .entry(format!("date={date}"))
            .or_default()
            .push(event.clone());
    }
    let files = files_under(&lake);
    assert_eq!(files, summaries[2].outputs);
    assert_eq!(files.len(), by_date.len());
    for (file, (partition, expected)) in files.iter().zip(&by_date) {
        assert!(
            file.parent().unwrap().ends_with(partition),
            "{} is not in {partition}",
            file.display()
        );
        assert_eq!(&parquet_events(std::slice::from_ref(file)), expected);
    }
}

#[test]
fn schema_is_read_from_config() {
    let spec: ExporterSpec = toml::from_str(
        r#"
        type = "parquet"
        path = "out/ocsf"
        schema = "ocsf"
        "#,
    )
    .unwrap();
    let ExporterSpec::Parquet(spec) = spec else {
        panic!("not parquet: {spec:?}");
    };
    assert_eq!(spec.schema, RecordSchema::Ocsf);
    let spec: ExporterSpec = toml::from_str("type = \"jsonl\"\npath = \"-\"").unwrap();
    assert_eq!(spec, ExporterSpec::Jsonl(JsonlSpec::new("-")));
    let bad = toml::from_str::<ExporterSpec>("type = \"jsonl\"\npath = \"-\"\nschema = \"cef\"");
    assert!(bad.is_err());
}
