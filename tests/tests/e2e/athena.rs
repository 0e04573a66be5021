//! The Athena engine against the Athena test endpoint (`connect_audit_tests::fake_athena`):
//! the real `aws-sdk-athena` client, the real awsJson1_1 protocol, and the generated DDL and
//! query executed for real on DataFusion over the example trail and snapshot.

use connect_audit_core::redact::Redaction;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_athena::config::{BehaviorVersion, Credentials, Region};
use connect_audit_config::{AthenaSettings, ValidAthena};
use connect_audit_core::{AuditRecord, EventSelection, Scope};
use connect_audit_query::Error;
use connect_audit_query::athena::rows::{Row, read_row};
use connect_audit_query::athena::sql::{RESULT_COLUMNS, audit_query};
use connect_audit_query::athena::{Runner, ddl, report};
use connect_audit_tests::fake_athena::{FakeAthena, parse_hive_ddl};

use super::helpers::{binary, window};

const TRAIL_BUCKET: &str = "trail-bucket";
const SNAP_BUCKET: &str = "snap-bucket";
const ORG: &str = "o-a1b2c3d4e5";

fn examples() -> PathBuf {
    connect_audit_tests::examples_dir()
}

/// A fake Athena that sees the example trail and snapshot as two buckets.
fn fake() -> FakeAthena {
    let fake = FakeAthena::start();
    fake.mount_bucket(TRAIL_BUCKET, &examples().join("trail"));
    fake.mount_bucket(SNAP_BUCKET, &examples().join("snapshot"));
    fake
}

/// `[athena]` for the examples' own-account trail (or, with `org`, the organization trail).
fn settings(org: bool) -> AthenaSettings {
    AthenaSettings {
        trail: Some(format!("s3://{TRAIL_BUCKET}")),
        organization_id: org.then(|| ORG.to_owned()),
        table: if org { "cloudtrail_org" } else { "cloudtrail" }.into(),
        accounts: vec![if org { "444455556666" } else { "111122223333" }.into()],
        regions: vec!["ap-northeast-1".into(), "us-east-1".into()],
        output_location: Some("s3://athena-results/connect-audit/".into()),
        timeout_secs: 60,
        poll_max_ms: 100,
        ..AthenaSettings::default()
    }
}

fn valid(settings: &AthenaSettings) -> ValidAthena {
    let mut problems = Vec::new();
    let v = settings.check(
        None,
        Some(("report.snapshot", &format!("s3://{SNAP_BUCKET}"))),
        &mut |k, m| problems.push(format!("{k}: {m}")),
    );
    assert!(problems.is_empty(), "{problems:?}");
    v.unwrap()
}

fn client(fake: &FakeAthena) -> aws_sdk_athena::Client {
    let config = aws_sdk_athena::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDTEST",
            "test-secret",
            None,
            None,
            "test",
        ))
        .endpoint_url(fake.url())
        .build();
    aws_sdk_athena::Client::from_conf(config)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Creates the database, tables (and view) on the fake through the runner.
fn init(rt: &tokio::runtime::Runtime, runner: &Runner, athena: &ValidAthena, view: bool) {
    rt.block_on(async {
        for s in ddl::init_statements(athena, false, view) {
            runner
                .run(&s.sql, &[], std::future::pending())
                .await
                .unwrap_or_else(|e| panic!("{}: {e}\n{}", s.what, s.sql));
        }
    });
}

fn audit(
    rt: &tokio::runtime::Runtime,
    runner: &Runner,
    athena: &ValidAthena,
    events: &EventSelection,
) -> (Vec<AuditRecord>, connect_audit_query::athena::AthenaSummary) {
    let query = audit_query(athena, window(), events, &Scope::default());
    let mut records = Vec::new();
    let summary = rt
        .block_on(report(
            runner,
            &query,
            &Redaction::secrets(),
            &mut records,
            std::future::pending(),
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    (records, summary)
}

#[test]
fn the_lake_table_declares_the_parquet_exporters_columns() {
    let mut athena = valid(&settings(false));
    athena.lake = Some(connect_audit_config::S3Path {
        bucket: "lake".into(),
        prefix: "connect_audit".into(),
    });
    let statement = ddl::create_lake_table(&athena).expect("a lake table");
    let table = parse_hive_ddl(&statement.sql).unwrap_or_else(|e| panic!("{e}\n{}", statement.sql));
    assert_eq!(table.name, ddl::LAKE_TABLE);
    // The columns are the Parquet exporter's, by name and (Hive) type.
    let schema = connect_audit_core::record::arrow_schema();
    let expected: Vec<(String, String)> = schema
        .fields()
        .iter()
        .map(|f| {
            let ty = match f.data_type() {
                arrow_schema::DataType::Timestamp(..) => "timestamp",
                arrow_schema::DataType::Int32 => "int",
                arrow_schema::DataType::List(item)
                    if item.data_type() == &arrow_schema::DataType::Utf8 =>
                {
                    "array<string>"
                }
                _ => "string",
            };
            (f.name().clone(), ty.to_owned())
        })
        .collect();
    assert_eq!(table.columns, expected);
    assert_eq!(table.partitions, [("date".to_owned(), "string".to_owned())]);
    assert_eq!(table.location, "s3://lake/connect_audit/");
    assert_eq!(
        table.properties["storage.location.template"],
        "s3://lake/connect_audit/date=${date}/"
    );
}

#[test]
fn generated_ddl_parses_and_declares_every_column_the_query_reads() {
    let athena = valid(&settings(false));
    let statements = ddl::init_statements(&athena, true, false);
    let mut cloudtrail = None;
    for s in &statements {
        if s.sql.starts_with("CREATE EXTERNAL TABLE") {
            let table = parse_hive_ddl(&s.sql).unwrap_or_else(|e| panic!("{e}\n{}", s.sql));
            if table.name == "cloudtrail" {
                cloudtrail = Some(table);
            }
        }
    }
    let cloudtrail = cloudtrail.expect("the CloudTrail table is created");
    let partitions: Vec<&str> = cloudtrail
        .partitions
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(partitions, ddl::PARTITIONS);
    assert_eq!(
        cloudtrail.properties["storage.location.template"],
        "s3://trail-bucket/AWSLogs/${account}/CloudTrail/${region}/${date}"
    );
    // Every column the query reads from the CloudTrail table: the `trail` CTE is the only
    // part that reads it. Take each word that is not a keyword, a function, an alias or a
    // struct field, and find it among the declared columns; struct paths are checked against
    // the declared struct type.
    let query = audit_query(
        &athena,
        window(),
        &EventSelection::defaults(),
        &Scope::default(),
    );
    let end = query.sql.find("\n),").unwrap();
    let cte = &query.sql[query.sql.find("SELECT").unwrap()..end];
    let declared: BTreeSet<&str> = cloudtrail
        .columns
        .iter()
        .chain(&cloudtrail.partitions)
        .map(|(n, _)| n.as_str())
        .collect();
    let identity_type = &cloudtrail
        .columns
        .iter()
        .find(|(n, _)| n == "useridentity")
        .unwrap()
        .1;
    let dialect = sqlparser::dialect::GenericDialect {};
    let tokens = sqlparser::tokenizer::Tokenizer::new(&dialect, cte)
        .tokenize()
        .unwrap();
    let significant: Vec<&sqlparser::tokenizer::Token> = tokens
        .iter()
        .filter(|t| !matches!(t, sqlparser::tokenizer::Token::Whitespace(_)))
        .collect();
    let mut read = BTreeSet::new();
    for (i, token) in significant.iter().enumerate() {
        use sqlparser::tokenizer::Token;
        let Token::Word(word) = token else { continue };
        let before = i.checked_sub(1).map(|j| significant[j]);
        let after = significant.get(i + 1);
        let is_keyword = word.quote_style.is_none()
            && word.keyword != sqlparser::keywords::Keyword::NoKeyword
            && !declared.contains(word.value.as_str());
        let is_function = matches!(after, Some(Token::LParen));
        let is_alias = matches!(before, Some(Token::Word(w)) if w.value.eq_ignore_ascii_case("AS"));
        let is_field = matches!(before, Some(Token::Period));
        let is_table = matches!(after, Some(Token::Period)) && word.quote_style == Some('"')
            || matches!(before, Some(Token::Period)) && word.value == athena.table;
        if is_table {
            continue;
        }
        if is_field {
            assert!(
                identity_type.contains(&format!("{}:", word.value)),
                "struct field {} is not declared in {identity_type}",
                word.value
            );
        } else if !(is_keyword || is_function || is_alias) {
            read.insert(word.value.clone());
        }
    }
    read.remove("$path");
    for column in &read {
        assert!(
            declared.contains(column.as_str()),
            "the query reads `{column}`, which the DDL does not declare"
        );
    }
    for needed in ["eventtime", "requestparameters", "useridentity", "date"] {
        assert!(read.contains(needed), "{needed} not found in {read:?}");
    }
}

/// Runs the binary with the fake's endpoint and test credentials.
fn run_binary(cwd: &Path, fake: &FakeAthena, args: &[&str]) -> Output {
    command(cwd, fake, args).output().unwrap()
}

fn command(cwd: &Path, fake: &FakeAthena, args: &[&str]) -> Command {
    let mut c = Command::new(binary());
    c.args(args)
        .current_dir(cwd)
        .env_remove("CONNECT_AUDIT_CONFIG")
        .env_remove("RUST_LOG")
        .env("AWS_ENDPOINT_URL_ATHENA", fake.url())
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "test-secret")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL");
    c
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write_config(dir: &Path, org: bool, events: &str) -> PathBuf {
    let s = settings(org);
    let path = dir.join(if org { "org.toml" } else { "athena.toml" });
    fs::write(
        &path,
        format!(
            r#"[report]
since = "2024-05-01"
until = "2024-05-08"
snapshot = "s3://{SNAP_BUCKET}"
events = [{events}]

[athena]
trail = "s3://{TRAIL_BUCKET}"
table = "{table}"
{org}accounts = ["{account}"]
regions = ["ap-northeast-1", "us-east-1"]
output_location = "s3://athena-results/connect-audit/"
poll_max_ms = 100
"#,
            table = s.table,
            org = if org {
                format!("organization_id = \"{ORG}\"\n")
            } else {
                String::new()
            },
            account = s.accounts[0],
        ),
    )
    .unwrap();
    path
}

#[test]
fn local_and_athena_engines_give_identical_jsonl() {
    let fake = fake();
    let dir = tempfile::tempdir().unwrap();
    let examples = examples();
    for (org, root) in [
        (false, "AWSLogs/111122223333"),
        (true, "AWSLogs/o-a1b2c3d4e5"),
    ] {
        for events in ["\"default\"", "\"all\""] {
            let config = write_config(dir.path(), org, events);
            let config = config.to_str().unwrap();
            let init = run_binary(dir.path(), &fake, &["athena", "init", "--config", config]);
            assert_eq!(init.status.code(), Some(0), "{}", text(&init.stderr));
            let athena_out = dir.path().join("athena.jsonl");
            let out = run_binary(
                dir.path(),
                &fake,
                &[
                    "report",
                    "--engine",
                    "athena",
                    "--config",
                    config,
                    "--format",
                    "jsonl",
                    "--output",
                    athena_out.to_str().unwrap(),
                ],
            );
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(0), "{stderr}");
            assert!(stderr.contains("MiB scanned"), "{stderr}");
            assert!(stderr.contains("at $5/TB"), "{stderr}");
            let local_out = dir.path().join("local.jsonl");
            let trail = examples.join("trail").join(root);
            let local = run_binary(
                dir.path(),
                &fake,
                &[
                    "report",
                    "--trail",
                    trail.to_str().unwrap(),
                    "--snapshot",
                    examples.join("snapshot").to_str().unwrap(),
                    "--since",
                    "2024-05-01",
                    "--until",
                    "2024-05-08",
                    "--events",
                    events.trim_matches('"'),
                    "--format",
                    "jsonl",
                    "--output",
                    local_out.to_str().unwrap(),
                ],
            );
            assert_eq!(local.status.code(), Some(0), "{}", text(&local.stderr));
            let athena_jsonl = fs::read_to_string(&athena_out).unwrap();
            let local_jsonl = fs::read_to_string(&local_out).unwrap();
            assert!(
                local_jsonl.lines().count() >= 3,
                "{root}: too few rows to compare"
            );
            for (i, (a, l)) in athena_jsonl.lines().zip(local_jsonl.lines()).enumerate() {
                assert_eq!(a, l, "{root} events {events}: record {i} differs");
            }
            assert_eq!(
                athena_jsonl.lines().count(),
                local_jsonl.lines().count(),
                "{root} events {events}"
            );
            assert_eq!(athena_jsonl, local_jsonl);
        }
    }
    // The query was parameterised, ran in the configured workgroup and output location.
    let reports: Vec<_> = fake
        .executions()
        .into_iter()
        .filter(|e| e.query.starts_with("WITH"))
        .collect();
    assert_eq!(reports.len(), 4);
    for e in &reports {
        assert_eq!(e.work_group.as_deref(), Some("primary"));
        assert_eq!(
            e.output_location.as_deref(),
            Some("s3://athena-results/connect-audit/")
        );
        assert!(e.parameters.contains(&"'2024-05-01T00:00:00Z'".to_owned()));
        assert!(!e.query.contains("2024-05-01"));
    }
}

/// Runs `report` on both engines over `root/trail` and `root/snapshot` (mounted as the
/// buckets of a fresh fake) and returns (exit code, stderr, JSON Lines) of each.
fn both_engines(root: &Path) -> [(Option<i32>, String, String); 2] {
    let fake = FakeAthena::start();
    fake.mount_bucket(TRAIL_BUCKET, &root.join("trail"));
    fake.mount_bucket(SNAP_BUCKET, &root.join("snapshot"));
    let config = write_config(root, false, "\"default\"");
    let config = config.to_str().unwrap();
    let init = run_binary(root, &fake, &["athena", "init", "--config", config]);
    assert_eq!(init.status.code(), Some(0), "{}", text(&init.stderr));
    let athena_out = root.join("athena.jsonl");
    let athena = run_binary(
        root,
        &fake,
        &[
            "report",
            "--engine",
            "athena",
            "--config",
            config,
            "--format",
            "jsonl",
            "--output",
            athena_out.to_str().unwrap(),
        ],
    );
    let local_out = root.join("local.jsonl");
    let local = run_binary(
        root,
        &fake,
        &[
            "report",
            "--trail",
            root.join("trail").to_str().unwrap(),
            "--snapshot",
            root.join("snapshot").to_str().unwrap(),
            "--since",
            "2024-05-01",
            "--until",
            "2024-05-08",
            "--format",
            "jsonl",
            "--output",
            local_out.to_str().unwrap(),
        ],
    );
    [(athena, athena_out), (local, local_out)].map(|(out, path)| {
        (
            out.status.code(),
            text(&out.stderr),
            fs::read_to_string(path).unwrap_or_default(),
        )
    })
}

#[test]
fn a_call_naming_25_targets_gives_the_same_25_named_rows_in_both_engines() {
    use super::helpers::{EVENT, associate_workspace, snapshot, trail_file, user_name};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    snapshot(root, 25);
    let mut event = associate_workspace(EVENT, "2024-05-02T03:04:05Z", 25);
    // One ARN percent-encoded, as CloudFormation records them.
    let arns = event["requestParameters"]["ResourceArns"]
        .as_array_mut()
        .unwrap();
    let plain = arns[7].as_str().unwrap().to_owned();
    arns[7] = Value::from(plain.replace(':', "%3A").replace('/', "%2F"));
    // Delivered twice.
    trail_file(
        &root.join("trail"),
        "02",
        "20240502T0310Z",
        &[event.clone()],
    );
    trail_file(&root.join("trail"), "02", "20240502T0325Z", &[event]);
    let [athena, local] = both_engines(root);
    assert_eq!(athena.0, Some(0), "{}", athena.1);
    assert_eq!(local.0, Some(0), "{}", local.1);
    assert_eq!(athena.2, local.2, "the engines differ");
    let rows: Vec<Value> = local
        .2
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 25);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(
            (r["event_id"].as_str(), r["target_index"].as_u64()),
            (Some(EVENT), Some(i as u64))
        );
        assert_eq!(r["target_name"], user_name(i));
        assert_eq!(r["name_source"], "snapshot");
    }

    // More than the API accepts: the same bad record named by both, nothing written.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    snapshot(root, 26);
    trail_file(
        &root.join("trail"),
        "02",
        "20240502T0310Z",
        &[associate_workspace(EVENT, "2024-05-02T03:04:05Z", 26)],
    );
    let why = "`requestParameters.ResourceArns` names 26 targets, more than the 25 the Connect API accepts";
    for (code, stderr, jsonl) in both_engines(root) {
        assert_eq!(code, Some(3), "{stderr}");
        assert!(stderr.contains(EVENT) && stderr.contains(why), "{stderr}");
        assert_eq!(jsonl, "");
    }
}

#[test]
fn the_view_returns_the_records_of_the_query() {
    let fake = fake();
    let rt = runtime();
    let athena = valid(&settings(false));
    let runner = Runner::new(client(&fake), &athena);
    init(&rt, &runner, &athena, true);
    assert!(
        fake.tables("connect_audit")
            .contains(&"connect_user_audit".to_owned())
    );
    let events = EventSelection::defaults();
    let (mut from_query, _) = audit(&rt, &runner, &athena, &events);
    let names: Vec<String> = events.names().map(|n| format!("'{n}'")).collect();
    let sql = format!(
        "SELECT * FROM \"connect_audit\".\"connect_user_audit\" \
         WHERE event_time >= from_iso8601_timestamp(?) AND event_time < from_iso8601_timestamp(?) \
         AND event_name IN ({})",
        names.join(", ")
    );
    let parameters = vec![
        "'2024-05-01T00:00:00Z'".to_owned(),
        "'2024-05-08T00:00:00Z'".to_owned(),
    ];
    let mut from_view = Vec::new();
    rt.block_on(async {
        let finished = runner
            .run(&sql, &parameters, std::future::pending())
            .await
            .unwrap();
        let mut index = 0;
        runner
            .results(
                &finished.id,
                &RESULT_COLUMNS,
                |rows| {
                    for values in rows {
                        match read_row(index, values, &Redaction::secrets()).unwrap() {
                            Row::Record(r) => from_view.push(*r),
                            Row::Bad(b) => panic!("{b}"),
                        }
                        index += 1;
                    }
                    Ok(())
                },
                std::future::pending(),
            )
            .await
            .unwrap();
    });
    let key = |r: &AuditRecord| (r.event_time, r.event_id.clone(), r.target_index);
    from_query.sort_by_key(key);
    from_view.sort_by_key(key);
    assert!(from_query.len() > 10, "{}", from_query.len());
    assert_eq!(from_view, from_query);
}

#[test]
fn results_are_read_page_by_page_over_many_pages() {
    let fake = fake();
    let rt = runtime();
    let athena = valid(&settings(false));
    let runner = Runner::new(client(&fake), &athena);
    init(&rt, &runner, &athena, false);
    let events = EventSelection::parse(&["all"]).unwrap();
    let (whole, _) = audit(&rt, &runner, &athena, &events);
    fake.set_page_cap(4);
    let before = fake.requests("GetQueryResults");
    let (paged, summary) = audit(&rt, &runner, &athena, &events);
    let requests = fake.requests("GetQueryResults") - before;
    assert!(requests > 3, "{requests} pages");
    assert_eq!(summary.pages, requests);
    assert_eq!(paged, whole, "pagination changes nothing");
    assert_eq!(summary.records, whole.len() as u64);
    assert!(summary.data_scanned_bytes > 0);
    assert!(summary.cost_usd > 0.0);
}

#[test]
fn a_failed_query_is_an_error_with_athenas_reason() {
    let fake = fake();
    let rt = runtime();
    let athena = valid(&settings(false));
    let runner = Runner::new(client(&fake), &athena);
    init(&rt, &runner, &athena, false);
    fake.fail_next_query("HIVE_BAD_DATA: Error parsing field value for field 3");
    let query = audit_query(
        &athena,
        window(),
        &EventSelection::defaults(),
        &Scope::default(),
    );
    let mut records = Vec::new();
    let err = rt
        .block_on(report(
            &runner,
            &query,
            &Redaction::secrets(),
            &mut records,
            std::future::pending(),
        ))
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::QueryFailed { .. }), "{text}");
    assert!(text.contains("FAILED"), "{text}");
    assert!(text.contains("HIVE_BAD_DATA"), "{text}");
    assert!(text.contains("AthenaError"), "{text}");
    assert!(records.is_empty());
    // A SQL mistake fails the same way, with the engine's message.
    let bad = rt
        .block_on(runner.run(
            "SELECT no_such_column FROM \"connect_audit\".\"cloudtrail\"",
            &[],
            std::future::pending(),
        ))
        .unwrap_err();
    assert!(bad.to_string().contains("no_such_column"), "{bad}");
}

#[test]
fn a_query_past_the_timeout_is_stopped() {
    let fake = fake();
    let rt = runtime();
    let mut s = settings(false);
    s.timeout_secs = 1;
    let athena = valid(&s);
    let runner = Runner::new(client(&fake), &athena);
    fake.hang_next_query();
    let started = Instant::now();
    let err = rt
        .block_on(runner.run("SELECT 1", &[], std::future::pending()))
        .unwrap_err();
    assert!(matches!(err, Error::QueryTimeout { .. }), "{err}");
    assert!(err.to_string().contains("athena.timeout_secs"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(fake.requests("StopQueryExecution"), 1);
    let last = fake.executions().pop().unwrap();
    assert_eq!(last.state, "CANCELLED");
}

#[test]
fn cancelling_stops_the_query() {
    let fake = fake();
    let rt = runtime();
    let athena = valid(&settings(false));
    let runner = Runner::new(client(&fake), &athena);
    fake.hang_next_query();
    let err = rt
        .block_on(async {
            let cancel = tokio::time::sleep(Duration::from_millis(500));
            runner.run("SELECT 1", &[], cancel).await
        })
        .unwrap_err();
    assert!(matches!(err, Error::Interrupted { .. }), "{err}");
    assert_eq!(fake.requests("StopQueryExecution"), 1);
    assert_eq!(fake.executions().pop().unwrap().state, "CANCELLED");
}

#[test]
fn throttling_and_slow_queries_are_waited_out_with_backoff() {
    let fake = fake();
    let rt = runtime();
    let athena = valid(&settings(false));
    let runner = Runner::new(client(&fake), &athena);
    fake.set_polls_before_done(4);
    fake.throttle_next(2);
    let finished = rt
        .block_on(runner.run("SELECT 1", &[], std::future::pending()))
        .unwrap();
    assert!(!finished.id.is_empty());
    assert_eq!(
        fake.requests("StartQueryExecution"),
        3,
        "two throttled, then accepted"
    );
    assert!(fake.requests("GetQueryExecution") >= 5);
}

#[test]
fn hostile_config_values_never_reach_athena() {
    let fake = fake();
    let dir = tempfile::tempdir().unwrap();
    let base = fs::read_to_string(write_config(dir.path(), false, "\"default\"")).unwrap();
    let hostile = [
        ("database", "\"connect_audit; DROP TABLE x\""),
        ("database", "\"c\u{043e}nnect\""),
        ("table", "\"cloudtrail`--\""),
        ("workgroup", "\"primary' OR '1'='1\""),
        ("trail", "\"s3://trail-bucket/x'/*\""),
        ("organization_id", "\"o-a1b2c3d4e5' --\""),
        ("accounts", "[\"111122223333'); DROP TABLE y; --\"]"),
        ("regions", "[\"us-east-1\\u0000\"]"),
        ("output_location", "\"s3://athena-results/${x}\""),
    ];
    for (key, value) in hostile {
        let config = dir.path().join("hostile.toml");
        let mut lines: Vec<String> = base
            .lines()
            .filter(|l| !l.starts_with(&format!("{key} =")))
            .map(str::to_owned)
            .collect();
        let at = lines.iter().position(|l| l == "[athena]").unwrap() + 1;
        lines.insert(at, format!("{key} = {value}"));
        fs::write(&config, lines.join("\n")).unwrap();
        for args in [
            &["athena", "init", "--config"][..],
            &["athena", "sql", "--config"][..],
        ] {
            let mut args = args.to_vec();
            args.push(config.to_str().unwrap());
            let out = run_binary(dir.path(), &fake, &args);
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{key} = {value}: {stderr}");
            assert!(stderr.contains(&format!("athena.{key}")), "{stderr}");
        }
    }
    for (flag, value) in [
        (
            "--instance-ids",
            "11111111-2222-3333-4444-555555555555') OR ('1'='1",
        ),
        ("--accounts", "111122223333' --"),
        ("--regions", "us-east-1;"),
        ("--since", "2024-05-01' OR 1=1 --"),
        ("--events", "CreateUser') OR ('1'='1"),
    ] {
        let config = write_config(dir.path(), false, "\"default\"");
        let out = run_binary(
            dir.path(),
            &fake,
            &[
                "report",
                "--engine",
                "athena",
                "--config",
                config.to_str().unwrap(),
                flag,
                value,
            ],
        );
        assert_eq!(out.status.code(), Some(2), "{flag}: {}", text(&out.stderr));
    }
    assert!(
        fake.executions().is_empty(),
        "nothing was sent to Athena: {:?}",
        fake.executions()
    );
}

#[test]
fn athena_sql_prints_the_query_and_its_parameters_and_runs_nothing() {
    let fake = fake();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), false, "\"default\"");
    let out = run_binary(
        dir.path(),
        &fake,
        &[
            "athena",
            "sql",
            "--config",
            config.to_str().unwrap(),
            "--since",
            "2024-05-02",
            "--until",
            "2024-05-03",
        ],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(stdout.starts_with("WITH trail AS ("), "{stdout}");
    assert!(stdout.contains("-- parameter 1: '2024/05/01'"), "{stdout}");
    assert!(stdout.contains("-- parameter 2: '2024/05/04'"), "{stdout}");
    assert!(stdout.contains("'2024-05-02T00:00:00Z'"), "{stdout}");
    let sql = &stdout[..stdout.find("-- parameter 1").unwrap()];
    let mut in_string = false;
    let placeholders = sql
        .chars()
        .filter(|c| {
            if *c == '\'' {
                in_string = !in_string;
            }
            !in_string && *c == '?'
        })
        .count();
    assert_eq!(placeholders, stdout.matches("-- parameter ").count());
    let dry = run_binary(
        dir.path(),
        &fake,
        &[
            "athena",
            "init",
            "--view",
            "--dry-run",
            "--config",
            config.to_str().unwrap(),
        ],
    );
    let ddl = text(&dry.stdout);
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry.stderr));
    assert!(ddl.contains("CREATE EXTERNAL TABLE IF NOT EXISTS `connect_audit`.`cloudtrail`"));
    assert!(ddl.contains("CREATE OR REPLACE VIEW \"connect_audit\".\"connect_user_audit\""));
    assert!(fake.executions().is_empty());
}

#[cfg(unix)]
#[test]
fn ctrl_c_stops_the_running_query_and_writes_nothing() {
    let fake = fake();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), false, "\"default\"");
    let init = run_binary(
        dir.path(),
        &fake,
        &["athena", "init", "--config", config.to_str().unwrap()],
    );
    assert_eq!(init.status.code(), Some(0), "{}", text(&init.stderr));
    let started = fake.executions().len();
    fake.hang_next_query();
    let output = dir.path().join("out.jsonl");
    let child = command(
        dir.path(),
        &fake,
        &[
            "report",
            "--engine",
            "athena",
            "--config",
            config.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while fake.executions().len() == started {
        assert!(
            Instant::now() < deadline,
            "the report never started a query"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_eq!(fake.requests("StopQueryExecution"), 1);
    assert_eq!(fake.executions().pop().unwrap().state, "CANCELLED");
    assert!(!output.exists(), "no output under its final name");
}

#[test]
fn a_bad_line_in_the_history_table_is_an_error_naming_its_file_and_both_engines_refuse_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    super::helpers::copy_dir(&examples().join("snapshot"), &root.join("snapshot"));
    super::helpers::copy_dir(&examples().join("trail"), &root.join("trail"));
    let file = "history/20240501T000000Z-6762b34f-4e26-4a8e-a032-35a1e58e1b1c.jsonl";
    fs::create_dir_all(root.join("snapshot/history")).unwrap();
    fs::write(
        root.join("snapshot").join(file),
        "{\"Folder\":\"users\",\"ObservedAt\":\"2024-05-01T00:00:00Z\",\"Object\":{\"Id\":\"../../etc/passwd\"}}\n",
    )
    .unwrap();
    for (code, stderr, jsonl) in both_engines(root) {
        assert_ne!(code, Some(0), "{stderr}");
        assert!(stderr.contains(file), "names the file: {stderr}");
        assert!(stderr.contains("not a Connect id"), "{stderr}");
        assert_eq!(jsonl, "", "nothing written");
    }
}
