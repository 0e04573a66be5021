//! The records of `examples/` through JSON Lines and Parquet with `schema = "ocsf"`: the OCSF
//! events of each record (one, or two for a `CreateUser` that grants privileges), of the class
//! its event calls for, the same events in every output; and every event of the examples and
//! fixtures validated against the OCSF 1.3.0 JSON schemas in `tests/fixtures/ocsf/1.3.0/`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, TimestampMillisecondType};
use arrow_array::{Array, RecordBatch};
use connect_audit_config::{ExporterSpec, JsonlSpec, ParquetSpec, RecordSchema};
use connect_audit_core::catalogue::group_of;
use connect_audit_core::store::load_directory_blocking;
use connect_audit_core::{AuditRecord, EventSelection, Store, TargetKind, Window};
use connect_audit_exporters::ocsf::{self, to_ocsf, to_ocsf_events};
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
    let mut exporters: Vec<Box<dyn Exporter>> = specs
        .iter()
        .map(|s| build(&s.clone().validated().unwrap()).unwrap())
        .collect();
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

    // JSON Lines: one OCSF object per line, in record order, exactly `to_ocsf_events` of each
    // record; the first is `to_ocsf`, a second only for a CreateUser that grants privileges.
    let lines = fs::read_to_string(&jsonl).unwrap();
    let from_jsonl: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let expected: Vec<Value> = records.iter().flat_map(to_ocsf_events).collect();
    assert_eq!(from_jsonl, expected);
    let grants = records
        .iter()
        .filter(|r| to_ocsf_events(r).len() == 2)
        .count();
    assert!(grants >= 1, "a CreateUser of the examples gives profiles");
    assert_eq!(from_jsonl.len(), records.len() + grants);
    for record in &records {
        let events = to_ocsf_events(record);
        let event = &events[0];
        assert_eq!(*event, {
            let mut e = to_ocsf(record);
            if events.len() == 2 {
                e["metadata"]["correlation_uid"] = Value::from(record.row_key());
            }
            e
        });
        if let [created, granted] = &events[..] {
            assert_eq!(record.event_name, "CreateUser");
            assert_eq!(
                (&created["class_uid"], &granted["class_uid"]),
                (&Value::from(3001), &Value::from(3005))
            );
            assert_eq!(granted["activity_name"], "Assign Privileges");
            assert_eq!(granted["user"], created["user"]);
            assert!(!granted["privileges"].as_array().unwrap().is_empty());
        }
        assert_eq!(event["metadata"]["uid"], &*record.row_key());
        assert_eq!(event["metadata"]["version"], ocsf::OCSF_VERSION);
        let expected_class = match record.event_name.as_str() {
            "CreateUser"
            | "DeleteUser"
            | "UpdateUserIdentityInfo"
            | "UpdateUserPhoneConfig"
            | "UpdateUserConfig" => 3001,
            name if (group_of(name).is_some_and(|g| g.name == "permissions")
                || name.ends_with("SecurityProfiles"))
                && record.target_kind == TargetKind::User =>
            {
                3005
            }
            _ => 6003,
        };
        match record.event_name.as_str() {
            "UpdateUserSecurityProfiles" => {
                assert_eq!(event["activity_name"], "Replace Privileges", "{event:#}");
            }
            "GetFederationToken" | "AdminGetEmergencyAccessToken" => {
                assert_eq!(
                    event["type_name"], "API Activity: Read",
                    "a sign-in is a read"
                );
            }
            _ => {}
        }
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
                assert_eq!(event["src_endpoint"]["svc_name"], "connect.amazonaws.com");
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
    for record in &records {
        let date = TimeZone::UTC.to_datetime(record.event_time).date();
        by_date
            .entry(format!("date={date}"))
            .or_default()
            .extend(to_ocsf_events(record));
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

// ---------------------------------------------------------------------------------------------
// Validation against the OCSF 1.3.0 JSON schemas

const SCHEMAS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/ocsf/1.3.0");

/// The committed schemas (`tests/fixtures/ocsf/generate.py`), by `class_uid`: a draft 2020-12
/// validator and the profiles the schema was generated with, which the event must declare.
struct OcsfSchemas(BTreeMap<i64, (jsonschema::Validator, Value)>);

impl OcsfSchemas {
    fn load() -> Self {
        let mut by_class = BTreeMap::new();
        for (class_uid, name) in [
            (3001, "account_change"),
            (3005, "user_access"),
            (6003, "api_activity"),
        ] {
            let path = Path::new(SCHEMAS).join(format!("{name}.json"));
            let schema: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
            assert_eq!(
                schema["properties"]["class_uid"]["const"],
                class_uid,
                "{}",
                path.display()
            );
            let id = schema["$id"].as_str().unwrap();
            let (_, profiles) = id.split_once("?profiles=").unwrap();
            let profiles: Value = profiles.split(',').collect();
            // Building the validator also checks the schema against the 2020-12 meta-schema.
            let validator = jsonschema::draft202012::new(&schema)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            by_class.insert(class_uid, (validator, profiles));
        }
        Self(by_class)
    }

    /// Every way `event` breaks its class's schema, as `<instance path>: <error>`.
    fn errors(&self, event: &Value) -> Vec<String> {
        let class = event["class_uid"].as_i64().unwrap_or_default();
        let Some((validator, profiles)) = self.0.get(&class) else {
            return vec![format!(
                "class_uid {class} is not a class we have a schema of"
            )];
        };
        let mut errors: Vec<String> = validator
            .iter_errors(event)
            .map(|e| format!("{}: {e}", e.instance_path))
            .collect();
        if event["metadata"]["profiles"] != *profiles {
            errors.push(format!(
                "/metadata/profiles: {} is not the schema's {profiles}",
                event["metadata"]["profiles"]
            ));
        }
        errors
    }
}

/// A record of every shape the mapping has to handle: each catalogued event with each kind of
/// target, and, turn by turn, each kind of source address, actor, outcome and request.
fn synthetic_records() -> Vec<AuditRecord> {
    let sources = [
        Value::from("203.0.113.10"),
        Value::from("2001:db8::1"),
        Value::from("connect.amazonaws.com"),
        Value::from("AWS Internal"),
        Value::Null,
    ];
    let actors = [
        serde_json::json!({"actor_kind": "connect_user", "actor_id": "8698e95f-b8d0-48ea-97da-1b729ffe1d99",
            "actor_name": "alice.admin", "actor_arn": "arn:aws:sts::111122223333:assumed-role/AWSServiceRoleForAmazonConnect_x/8698e95f-b8d0-48ea-97da-1b729ffe1d99"}),
        serde_json::json!({"actor_kind": "iam", "actor_arn": "arn:aws:iam::111122223333:user/ops"}),
        serde_json::json!({"actor_kind": "service"}),
    ];
    let requests = [
        r#"{"InstanceId":"i-1","UserId":"t-1","Username":"jdoe","SecurityProfileIds":["sp-1","arn:aws:connect:us-east-1:111122223333:instance/i-1/security-profile/sp-2"],"RoutingProfileId":"rp-1","HierarchyGroupId":"hg-1","WorkspaceId":"ws-1","UserProficiencies":[{"AttributeName":"Language","AttributeValue":"Japanese"}]}"#,
        r#"{"InstanceId":"i-1"}"#,
        "not JSON",
    ];
    let targets = [
        ("user", true),
        ("hierarchy_group", true),
        ("security_profile", true),
        ("routing_profile", true),
        ("resource", true),
        ("user", false),
        ("none", false),
    ];
    let mut records = Vec::new();
    let mut turn = 0_usize;
    for group in connect_audit_core::catalogue::GROUPS {
        for &name in group.events {
            for (kind, named) in targets {
                let mut record = serde_json::json!({
                    "event_time": "2024-05-02T09:14:02.5Z",
                    "event_id": format!("synthetic-{turn}"),
                    "target_index": turn % 3,
                    "event_name": name,
                    "category": group.category.as_str(),
                    "account_id": "111122223333",
                    "region": "us-east-1",
                    "instance_id": if turn.is_multiple_of(4) { Value::Null } else { Value::from("i-1") },
                    "target_kind": kind,
                    "target_id": if named { Value::from("t-1") } else { Value::Null },
                    "target_name": if named && turn.is_multiple_of(2) { Value::from("jdoe") } else { Value::Null },
                    "name_source": "snapshot",
                    "origin": if turn.is_multiple_of(2) { "console" } else { "api" },
                    "source_ip": sources[turn % sources.len()],
                    "user_agent": if turn.is_multiple_of(5) { Value::Null } else { Value::from("aws-cli/2.15") },
                    "error_code": if turn % 3 == 1 { Value::from("AccessDeniedException") } else { Value::Null },
                    "error_message": if turn % 3 == 1 { Value::from("not allowed") } else { Value::Null },
                    "request_parameters": requests[turn % requests.len()],
                    "response_elements": if turn.is_multiple_of(2) { Value::from(r#"{"UserId":"t-1"}"#) } else { Value::Null },
                });
                let fields = record.as_object_mut().unwrap();
                for (key, value) in actors[turn % actors.len()].as_object().unwrap() {
                    fields.insert(key.clone(), value.clone());
                }
                records.push(serde_json::from_value(record).unwrap());
                turn += 1;
            }
        }
    }
    records
}

/// The audit records of every committed fixture that has them: the golden rows of the
/// examples, and the good records of `tests/fixtures/bad-trail` (its bad files are skipped).
fn fixture_records() -> Vec<(String, AuditRecord)> {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let golden = fs::read_to_string(fixtures.join("golden/examples.jsonl")).unwrap();
    let mut records: Vec<(String, AuditRecord)> = golden
        .lines()
        .map(|l| {
            // Golden rows hold each column's text (`AuditRecord::value`): numbers as strings.
            let mut row: Value = serde_json::from_str(l).unwrap();
            if let Some(index) = row["target_index"].as_str() {
                row["target_index"] = index.parse::<u32>().unwrap().into();
            }
            (
                "golden/examples.jsonl".into(),
                serde_json::from_value(row).unwrap(),
            )
        })
        .collect();
    let (since, until) = connect_audit_tests::WINDOW;
    let window = Window::parse(
        Some(since),
        Some(until),
        "2024-06-01T00:00:00Z".parse().unwrap(),
    )
    .unwrap();
    let options = ScanOptions::new(window, EventSelection::parse(&["all"]).unwrap());
    let scanner = TrailScanner::new(
        Store::local(fixtures.join("bad-trail")),
        connect_audit_core::Directory::new(),
        options,
    );
    let mut trail = Vec::new();
    scanner.scan(&mut trail).unwrap();
    assert!(!trail.is_empty(), "bad-trail has good records");
    records.extend(trail.into_iter().map(|r| ("bad-trail".into(), r)));
    records
}

#[test]
fn every_event_validates_against_the_ocsf_schema() {
    let schemas = OcsfSchemas::load();
    let mut sources: Vec<(String, AuditRecord)> = example_records()
        .into_iter()
        .map(|r| ("examples".to_owned(), r))
        .collect();
    sources.extend(fixture_records());
    sources.extend(
        synthetic_records()
            .into_iter()
            .map(|r| ("synthetic".to_owned(), r)),
    );

    let mut failures = Vec::new();
    let mut events = Vec::new();
    let mut per_class: BTreeMap<(String, i64), usize> = BTreeMap::new();
    for (source, record) in &sources {
        for event in to_ocsf_events(record) {
            for error in schemas.errors(&event) {
                failures.push(format!(
                    "{source} {} {} ({}): {error}",
                    record.event_name, event["metadata"]["uid"], event["class_uid"]
                ));
            }
            *per_class
                .entry((source.clone(), event["class_uid"].as_i64().unwrap()))
                .or_default() += 1;
            events.push(event);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} events break the OCSF 1.3.0 schema:\n{}",
        failures.len(),
        events.len(),
        failures[..failures.len().min(40)].join("\n")
    );
    // Every class of every source was exercised, and the shapes this mapping was fixed for.
    for source in ["examples", "synthetic"] {
        for class in [3001, 3005, 6003] {
            assert!(
                per_class
                    .get(&(source.to_owned(), class))
                    .is_some_and(|&n| n > 0),
                "{source} has no {class} event: {per_class:?}"
            );
        }
    }
    let has = |what: &str, test: &dyn Fn(&Value) -> bool| {
        assert!(events.iter().any(test), "no event {what}");
    };
    has("from a service (svc_name)", &|e| {
        e["src_endpoint"]["svc_name"] == "connect.amazonaws.com"
    });
    has("from an IPv6 address", &|e| {
        e["src_endpoint"]["ip"] == "2001:db8::1"
    });
    has("without a source (6003 placeholder)", &|e| {
        e["class_uid"] == 6003 && e["src_endpoint"]["name"] == "unknown"
    });
    has("replacing privileges", &|e| {
        e["activity_name"] == "Replace Privileges"
    });
    has("granting what CreateUser gave", &|e| {
        e["class_uid"] == 3005 && e["api"]["operation"] == "CreateUser"
    });
    has("of a sign-in read", &|e| {
        e["api"]["operation"] == "GetFederationToken" && e["class_uid"] == 6003
    });
    has("that failed", &|e| e["status_id"] == 2);
    has("of a second target", &|e| {
        e["metadata"]["uid"]
            .as_str()
            .is_some_and(|u| u.ends_with("#2"))
    });
    assert!(events.len() >= 500, "{} events", events.len());
}

/// The test above can fail: events the schema forbids are rejected, each for its reason.
#[test]
fn events_that_break_the_ocsf_schema_are_rejected() {
    let schemas = OcsfSchemas::load();
    let records = example_records();
    let events: Vec<Value> = records.iter().flat_map(to_ocsf_events).collect();
    let find = |class: i64| {
        events
            .iter()
            .find(|e| e["class_uid"] == class && e["src_endpoint"]["svc_name"].is_string())
            .unwrap_or_else(|| panic!("no {class} event from a service"))
            .clone()
    };
    // Each broken event is a valid one with one thing changed, refused with an error at `path`.
    let rejected = |valid: &Value, change: &dyn Fn(&mut Value), path: &str| {
        assert!(schemas.errors(valid).is_empty(), "the original is valid");
        let mut broken = valid.clone();
        change(&mut broken);
        let errors = schemas.errors(&broken);
        assert!(
            errors.iter().any(|e| e.starts_with(path)),
            "expected an error at `{path}`, got {errors:?}"
        );
    };
    let api = find(6003);
    // The mapping this test was written for: a service caller as `domain`, no identifier.
    rejected(
        &api,
        &|e| e["src_endpoint"] = serde_json::json!({"domain": "x"}),
        "/src_endpoint",
    );
    // 6003 requires the source endpoint.
    rejected(
        &api,
        &|e| {
            e.as_object_mut().unwrap().remove("src_endpoint");
        },
        ": ",
    );
    // An attribute OCSF does not define belongs under `unmapped`.
    rejected(&api, &|e| e["connect_instance"] = Value::from("i-1"), ": ");
    // An `ip` that is not an IP address.
    rejected(
        &api,
        &|e| e["src_endpoint"] = serde_json::json!({"ip": "connect.amazonaws.com"}),
        "/src_endpoint/ip",
    );

    let access = find(3005);
    // User Access Management has no activity 3 in 1.3.0.
    rejected(
        &access,
        &|e| e["activity_id"] = Value::from(3),
        "/activity_id",
    );
    // Its `actor` comes from the host profile: the event must declare the profiles its schema
    // was generated with.
    rejected(
        &access,
        &|e| e["metadata"]["profiles"] = serde_json::json!(["cloud"]),
        "/metadata/profiles",
    );
    // A user needs an identifier.
    rejected(
        &access,
        &|e| e["user"] = serde_json::json!({"type_id": 1}),
        "/user",
    );
    // Authentication is not a class we emit.
    let mut broken = find(3001);
    broken["class_uid"] = Value::from(3002);
    assert!(!schemas.errors(&broken).is_empty());
}
