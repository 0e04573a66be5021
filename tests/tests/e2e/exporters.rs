//! Every exporter through the same batches: the same records must come out of each, and no
//! output may appear under its final name before `finish`.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int8Type, Int32Type, TimestampMicrosecondType};
use arrow_array::{Array, ArrayRef};
use connect_audit_config::{
    CsvSpec, ExporterSpec, HtmlSpec, JsonlSpec, ParquetSpec, Secret, SiemFlavor, SiemWebhookSpec,
};
use connect_audit_core::record::{COLUMNS, arrow_schema};
use connect_audit_core::{
    ActorKind, AuditRecord, Category, ChangeBasis, NameSource, Origin, TargetKind,
};
use connect_audit_exporters::{Error, ExportSummary, Exporter, MemoryExporter};
use connect_audit_tests::siem_receiver::SiemReceiver;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;

const INSTANCE: &str = "11111111-2222-3333-4444-555555555555";
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// One row per column value, as `AuditRecord::column` gives it.
type Row = BTreeMap<&'static str, Option<String>>;

/// Record `i` of the fixture: categories in order, the other enums cycling, so nine records
/// cover every value of every enum.
fn record(i: usize, time: &str) -> AuditRecord {
    AuditRecord {
        event_time: time.parse().unwrap(),
        event_id: format!("event-{i}"),
        target_index: 0,
        event_name: format!("Call{i}"),
        category: Category::ALL[i],
        account_id: "111122223333".into(),
        region: "ap-northeast-1".into(),
        instance_id: Some(INSTANCE.into()),
        actor_kind: ActorKind::ALL[i % ActorKind::ALL.len()],
        actor_id: Some(format!("actor-{i}")),
        actor_name: Some(format!("admin{i}")),
        actor_arn: Some(format!(
            "arn:aws:sts::111122223333:assumed-role/Admin/admin{i}"
        )),
        target_kind: TargetKind::ALL[i % TargetKind::ALL.len()],
        target_id: Some(format!("target-{i}")),
        target_name: Some(format!("user{i}")),
        name_source: NameSource::ALL[i % NameSource::ALL.len()],
        origin: Origin::ALL[i % Origin::ALL.len()],
        source_ip: Some("203.0.113.7".into()),
        user_agent: Some("connect.amazonaws.com".into()),
        error_code: None,
        error_message: None,
        request_parameters: Some(format!(
            r#"{{"InstanceId":"{INSTANCE}","UserId":"target-{i}"}}"#
        )),
        response_elements: None,
        // The change columns: decoded on every other record (each basis in turn), findings
        // on some, none on the rest.
        change: i
            .is_multiple_of(2)
            .then(|| format!("security profiles: +Admin{i} (now Admin{i})")),
        before: i
            .is_multiple_of(2)
            .then(|| r#"{"security_profiles":[]}"#.to_owned()),
        after: i
            .is_multiple_of(2)
            .then(|| format!(r#"{{"security_profiles":[{{"id":"sp-{i}","name":"Admin{i}"}}]}}"#)),
        change_basis: i
            .is_multiple_of(2)
            .then(|| ChangeBasis::ALL[(i / 2) % ChangeBasis::ALL.len()]),
        findings: match i % 4 {
            0 => vec!["self_grant".into(), "privileged_grant".into()],
            2 => vec!["failed_escalation".into()],
            _ => Vec::new(),
        },
    }
}

/// Three batches (one empty) of nine records over three UTC dates, not in date order, with
/// nulls, failed calls and cells a spreadsheet would run.
fn batches() -> Vec<Vec<AuditRecord>> {
    let mut r: Vec<AuditRecord> = [
        "2024-05-01T09:14:02Z",
        "2024-05-01T10:00:00Z",
        "2024-05-01T11:30:15Z",
        "2024-05-01T23:59:59Z",
        "2024-05-02T23:30:00Z", // already 05-03 in Tokyo; partitioned by the UTC date
        "2024-05-03T00:00:00.123456Z",
        "2024-05-03T08:00:00Z",
        "2024-05-01T12:00:00Z", // late arrival for an earlier date
        "2024-05-03T09:00:00Z",
    ]
    .iter()
    .enumerate()
    .map(|(i, time)| record(i, time))
    .collect();
    r[0].target_name = Some("=cmd|'/C calc'!A0".into());
    r[1].actor_name = Some("+1".into());
    r[1].error_code = Some("AccessDeniedException".into());
    r[1].error_message = Some("-2".into());
    r[2].user_agent = Some("@SUM(1)".into());
    r[3].target_id = Some("\tx".into());
    r[4].actor_id = Some("\rx".into());
    r[5].error_code = Some("InvalidParameterException".into());
    r[5].error_message = Some("say \"hi\", then\nleave".into());
    r[6].target_name = Some("日本語".into());
    r[6].actor_name = Some("山田 太郎".into());
    let nulls = &mut r[7];
    nulls.instance_id = None;
    nulls.actor_id = None;
    nulls.actor_name = None;
    nulls.actor_arn = None;
    nulls.target_id = None;
    nulls.target_name = None;
    nulls.source_ip = None;
    nulls.user_agent = None;
    nulls.request_parameters = None;
    r[8].response_elements = Some(r#"{"UserArn":"arn:aws:connect:x","Tags":{"k":"=1"}}"#.into());
    let second = r.split_off(4);
    vec![r, Vec::new(), second]
}

fn as_row(record: &AuditRecord) -> Row {
    COLUMNS
        .iter()
        .map(|&name| (name, record.column(name)))
        .collect()
}

fn event_ids(rows: &[Row]) -> Vec<&str> {
    rows.iter()
        .map(|r| r["event_id"].as_deref().unwrap())
        .collect()
}

fn utc_date(record: &AuditRecord) -> String {
    TimeZone::UTC
        .to_datetime(record.event_time)
        .date()
        .to_string()
}

fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header = reader.headers().unwrap().iter().map(String::from).collect();
    let rows = reader
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    (header, rows)
}

/// The CSV cell a value must become: empty for null, `'`-prefixed if it looks like a formula.
fn csv_cell(value: Option<&str>, neutralize: bool) -> String {
    let value = value.unwrap_or_default();
    if neutralize && value.starts_with(FORMULA_STARTS) {
        format!("'{value}")
    } else {
        value.to_owned()
    }
}

fn read_jsonl(path: &Path) -> Vec<AuditRecord> {
    let text = fs::read_to_string(path).unwrap();
    assert!(text.ends_with('\n'), "every line ends with \\n");
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn parquet_cell(column: &ArrayRef, row: usize) -> Option<String> {
    if column.is_null(row) {
        return None;
    }
    if let Some(text) = column.as_string_opt::<i32>() {
        return Some(text.value(row).to_owned());
    }
    if let Some(index) = column.as_primitive_opt::<Int32Type>() {
        return Some(index.value(row).to_string());
    }
    if let Some(dict) = column.as_dictionary_opt::<Int8Type>() {
        let key = usize::try_from(dict.keys().value(row)).unwrap();
        return Some(dict.values().as_string::<i32>().value(key).to_owned());
    }
    if let Some(list) = column.as_list_opt::<i32>() {
        // `findings`: the codes, as the text columns join them.
        let items = list.value(row);
        let codes: Vec<&str> = items.as_string::<i32>().iter().flatten().collect();
        return Some(codes.join(";"));
    }
    let micros = column.as_primitive::<TimestampMicrosecondType>().value(row);
    Some(Timestamp::from_microsecond(micros).unwrap().to_string())
}

fn read_parquet(path: &Path) -> Vec<Row> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        assert_eq!(batch.schema(), arrow_schema());
        for i in 0..batch.num_rows() {
            rows.push(
                COLUMNS
                    .iter()
                    .zip(batch.columns())
                    .map(|(&name, column)| (name, parquet_cell(column, i)))
                    .collect(),
            );
        }
    }
    rows
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn text(path: &Path) -> String {
    path.display().to_string()
}

/// Validates `spec` as code-built specs are, then builds it.
fn build(spec: &ExporterSpec) -> Result<Box<dyn Exporter>, Error> {
    connect_audit_exporters::build(&spec.clone().validated()?)
}

#[test]
fn every_exporter_writes_the_same_records() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = SiemReceiver::start();
    let out = dir.path().join("out");
    let csv_path = out.join("audit.csv");
    let tokyo_path = out.join("tokyo/audit.csv");
    let jsonl_path = out.join("audit.jsonl");
    let parquet_path = out.join("audit.parquet");
    let lake = out.join("lake");
    let html_path = out.join("audit.html");
    let specs = [
        ExporterSpec::Csv(CsvSpec::new(text(&csv_path))),
        ExporterSpec::Csv(CsvSpec {
            timezone: "Asia/Tokyo".into(),
            neutralize_formulas: false,
            ..CsvSpec::new(text(&tokyo_path))
        }),
        ExporterSpec::Jsonl(JsonlSpec::new(text(&jsonl_path))),
        ExporterSpec::Parquet(ParquetSpec {
            row_group_size: 3,
            ..ParquetSpec::new(text(&parquet_path))
        }),
        ExporterSpec::Parquet(ParquetSpec {
            partition_by_date: true,
            ..ParquetSpec::new(text(&lake))
        }),
        ExporterSpec::SiemWebhook(SiemWebhookSpec {
            secret: Some(Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")),
            concurrency: 1,
            max_events: 4,
            dead_letter: text(&dir.path().join("dead-letter.jsonl")),
            ..SiemWebhookSpec::new(SiemFlavor::StandardWebhooks, receiver.url())
        }),
        ExporterSpec::Html(HtmlSpec::new(text(&html_path))),
    ];
    let mut exporters: Vec<Box<dyn Exporter>> = specs.iter().map(|s| build(s).unwrap()).collect();
    let (memory, kept) = MemoryExporter::new();
    exporters.push(Box::new(memory));

    let batches = batches();
    for batch in &batches {
        for exporter in &mut exporters {
            exporter.write(batch).unwrap();
        }
    }
    let expected: Vec<AuditRecord> = batches.concat();
    assert_eq!(expected.len(), 9);
    for path in [
        &csv_path,
        &tokyo_path,
        &jsonl_path,
        &parquet_path,
        &html_path,
    ] {
        assert!(!path.exists(), "{} appeared before finish", path.display());
    }
    let pending = files_under(&lake);
    assert_eq!(pending.len(), 3, "one open file per date: {pending:?}");
    for file in pending {
        let name = file.file_name().unwrap().to_string_lossy();
        assert!(
            name.starts_with(".part-00000.parquet.") && file.extension() == Some("tmp".as_ref()),
            "{} appeared before finish",
            file.display()
        );
    }

    let summaries: Vec<ExportSummary> =
        exporters.into_iter().map(|e| e.finish().unwrap()).collect();
    let partitions: Vec<PathBuf> = ["2024-05-01", "2024-05-02", "2024-05-03"]
        .iter()
        .map(|d| lake.join(format!("date={d}")).join("part-00000.parquet"))
        .collect();
    let described: Vec<&str> = summaries.iter().map(|s| s.exporter.as_str()).collect();
    assert_eq!(
        described,
        [
            format!("csv {}", csv_path.display()),
            format!("csv {}", tokyo_path.display()),
            format!("jsonl {}", jsonl_path.display()),
            format!("parquet {}", parquet_path.display()),
            format!("parquet {} (by date)", lake.display()),
            format!("siem-webhook {} (standard-webhooks)", receiver.url()),
            format!("html {}", html_path.display()),
            "memory".into(),
        ]
    );
    for summary in &summaries {
        assert_eq!(summary.records, 9, "{}", summary.exporter);
    }
    let outputs: Vec<Vec<PathBuf>> = summaries.iter().map(|s| s.outputs.clone()).collect();
    assert_eq!(
        outputs,
        [
            vec![csv_path.clone()],
            vec![tokyo_path.clone()],
            vec![jsonl_path.clone()],
            vec![parquet_path.clone()],
            partitions.clone(),
            vec![],
            vec![html_path.clone()],
            vec![],
        ]
    );
    let mut written: Vec<PathBuf> = summaries.iter().flat_map(|s| s.outputs.clone()).collect();
    written.sort();
    assert_eq!(
        files_under(&out),
        written,
        "no temporary file is left behind"
    );

    // Memory, JSON Lines and the webhook (one batch in flight, so in order): the records
    // themselves.
    assert_eq!(*kept.lock().unwrap(), expected);
    assert_eq!(read_jsonl(&jsonl_path), expected);
    let posted: Vec<AuditRecord> = receiver
        .requests()
        .iter()
        .flat_map(|r| serde_json::from_slice::<Vec<AuditRecord>>(&r.body).unwrap())
        .collect();
    assert_eq!(posted, expected);
    assert_eq!(receiver.requests().len(), 3, "batches of at most 4");

    // CSV in UTC, neutralised: every cell is the column text, `'`-prefixed where it starts
    // like a formula, and nothing else.
    let expected_rows: Vec<Row> = expected.iter().map(as_row).collect();
    let (header, rows) = read_csv(&csv_path);
    assert_eq!(header, COLUMNS);
    assert_eq!(rows.len(), expected_rows.len());
    let mut neutralised = 0;
    for (row, want) in rows.iter().zip(&expected_rows) {
        for (cell, &name) in row.iter().zip(&COLUMNS) {
            let value = want[name].as_deref();
            assert_eq!(
                *cell,
                csv_cell(value, true),
                "{} {name}",
                want["event_id"].as_deref().unwrap()
            );
            if value.is_some_and(|v| v.starts_with(FORMULA_STARTS)) {
                neutralised += 1;
                assert_eq!(cell.strip_prefix('\''), value, "un-neutralised");
            }
        }
    }
    assert_eq!(neutralised, 6, "one cell per formula character");
    assert_eq!(rows[0][0], "2024-05-01T09:14:02Z");
    assert_eq!(rows[5][0], "2024-05-03T00:00:00.123456Z");
    let column = |name: &str| COLUMNS.iter().position(|c| *c == name).unwrap();
    assert_eq!(rows[5][column("error_message")], "say \"hi\", then\nleave");
    assert_eq!(rows[6][column("target_name")], "日本語");

    // CSV in Tokyo, not neutralised: the same instants with +09:00, cells verbatim.
    let (header, rows) = read_csv(&tokyo_path);
    assert_eq!(header, COLUMNS);
    assert_eq!(rows.len(), expected.len());
    for (row, want) in rows.iter().zip(&expected) {
        assert!(row[0].ends_with("+09:00"), "{}", row[0]);
        assert_eq!(row[0].parse::<Timestamp>().unwrap(), want.event_time);
        let wanted = as_row(want);
        for (cell, &name) in row.iter().zip(&COLUMNS).skip(1) {
            assert_eq!(*cell, csv_cell(wanted[name].as_deref(), false), "{name}");
        }
    }
    assert_eq!(rows[0][0], "2024-05-01T18:14:02+09:00");
    assert_eq!(rows[4][0], "2024-05-03T08:30:00+09:00");
    assert_eq!(rows[0][column("target_name")], "=cmd|'/C calc'!A0");

    // HTML (UTC): its JSON block holds every column of every record, in order; the table
    // shows what it holds (see the `html` tests).
    let html = fs::read_to_string(&html_path).unwrap();
    let embedded: Vec<Row> = super::helpers::embedded_rows(&html)
        .into_iter()
        .map(|values| COLUMNS.iter().copied().zip(values).collect())
        .collect();
    assert_eq!(embedded, expected_rows);
    assert!(
        html.contains(r#"<b id="count-events">9</b>"#),
        "the header counts"
    );
    assert!(
        html.contains(r#"<b id="count-failed">2</b>"#),
        "the header counts"
    );

    // Parquet, one file: typed columns, zstd, several row groups, the same rows.
    assert_eq!(read_parquet(&parquet_path), expected_rows);
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(File::open(&parquet_path).unwrap()).unwrap();
    let meta = builder.metadata();
    assert_eq!(meta.num_row_groups(), 3, "row_group_size = 3");
    for row_group in meta.row_groups() {
        for column in row_group.columns() {
            assert!(matches!(column.compression(), Compression::ZSTD(_)));
        }
    }

    // Parquet by date: each partition holds its UTC date's rows, in arrival order.
    let dates: Vec<String> = expected.iter().map(utc_date).collect();
    let mut order: Vec<usize> = (0..expected.len()).collect();
    order.sort_by(|&a, &b| dates[a].cmp(&dates[b])); // stable: arrival order within a date
    let by_date: Vec<Row> = order.iter().map(|&i| expected_rows[i].clone()).collect();
    let read: Vec<Row> = partitions.iter().flat_map(|p| read_parquet(p)).collect();
    assert_eq!(event_ids(&read), event_ids(&by_date));
    assert_eq!(read, by_date);
    for (partition, date) in partitions
        .iter()
        .zip(["2024-05-01", "2024-05-02", "2024-05-03"])
    {
        for row in read_parquet(partition) {
            let id = row["event_id"].as_deref().unwrap();
            let i: usize = id.strip_prefix("event-").unwrap().parse().unwrap();
            assert_eq!(dates[i], date, "{id} in {}", partition.display());
        }
    }
}

#[test]
fn dropped_exporter_leaves_no_file_under_its_final_name() {
    let dir = tempfile::tempdir().unwrap();
    let specs = [
        ExporterSpec::Csv(CsvSpec::new(text(&dir.path().join("a.csv")))),
        ExporterSpec::Jsonl(JsonlSpec::new(text(&dir.path().join("a.jsonl")))),
        ExporterSpec::Parquet(ParquetSpec::new(text(&dir.path().join("a.parquet")))),
        ExporterSpec::Parquet(ParquetSpec {
            partition_by_date: true,
            ..ParquetSpec::new(text(&dir.path().join("lake")))
        }),
        ExporterSpec::Html(HtmlSpec::new(text(&dir.path().join("a.html")))),
    ];
    for spec in &specs {
        let mut exporter = build(spec).unwrap();
        for batch in batches() {
            exporter.write(&batch).unwrap();
        }
        drop(exporter);
        assert!(!Path::new(spec.path()).exists() || Path::new(spec.path()).is_dir());
    }
    assert_eq!(files_under(dir.path()), Vec::<PathBuf>::new());
}

#[test]
fn csv_column_selection_writes_exactly_those_columns_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blog.csv");
    let columns = [
        "event_name",
        "event_time",
        "actor_name",
        "target_name",
        "error_code",
        "change",
        "findings",
    ];
    let spec = ExporterSpec::Csv(CsvSpec {
        columns: Some(columns.iter().map(|&c| c.to_owned()).collect()),
        ..CsvSpec::new(text(&path))
    });
    let mut exporter = build(&spec).unwrap();
    let records = batches().concat();
    exporter.write(&records).unwrap();
    exporter.finish().unwrap();

    let (header, rows) = read_csv(&path);
    assert_eq!(header, columns);
    assert_eq!(rows.len(), records.len());
    for (row, record) in rows.iter().zip(&records) {
        let want: Vec<String> = columns
            .iter()
            .map(|&c| csv_cell(record.column(c).as_deref(), true))
            .collect();
        assert_eq!(*row, want);
    }
}

#[test]
fn parquet_columns_have_the_types_of_the_audit_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.parquet");
    let mut exporter = build(&ExporterSpec::Parquet(ParquetSpec::new(text(&path)))).unwrap();
    exporter.write(&batches()[0]).unwrap();
    exporter.finish().unwrap();

    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap()).unwrap();
    let want = arrow_schema();
    let got = builder.schema();
    assert_eq!(got.fields().len(), want.fields().len());
    for (got, want) in got.fields().iter().zip(want.fields()) {
        assert_eq!(got.name(), want.name());
        assert_eq!(got.data_type(), want.data_type(), "{}", want.name());
        assert_eq!(got.is_nullable(), want.is_nullable(), "{}", want.name());
    }
}

#[test]
fn empty_runs_write_headers_and_schemas_but_no_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let csv_path = dir.path().join("empty.csv");
    let jsonl_path = dir.path().join("empty.jsonl");
    let parquet_path = dir.path().join("empty.parquet");
    let lake = dir.path().join("lake");
    let specs = [
        ExporterSpec::Csv(CsvSpec::new(text(&csv_path))),
        ExporterSpec::Jsonl(JsonlSpec::new(text(&jsonl_path))),
        ExporterSpec::Parquet(ParquetSpec::new(text(&parquet_path))),
        ExporterSpec::Parquet(ParquetSpec {
            partition_by_date: true,
            ..ParquetSpec::new(text(&lake))
        }),
    ];
    for spec in &specs {
        let summary = build(spec).unwrap().finish().unwrap();
        assert_eq!(summary.records, 0);
    }
    assert_eq!(
        fs::read_to_string(&csv_path).unwrap(),
        format!("{}\n", COLUMNS.join(","))
    );
    assert_eq!(fs::read_to_string(&jsonl_path).unwrap(), "");
    assert!(read_parquet(&parquet_path).is_empty());
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(File::open(&parquet_path).unwrap()).unwrap();
    assert_eq!(builder.schema().fields(), arrow_schema().fields());
    assert!(files_under(&lake).is_empty());
}

#[test]
fn bad_specs_are_refused_naming_the_exporter() {
    let dir = tempfile::tempdir().unwrap();
    let path = text(&dir.path().join("x.csv"));
    let refused = |spec: ExporterSpec| build(&spec).err().expect("refused");
    // The one problem of an invalid spec, as `field: message`.
    let problem = |err: &Error| match err {
        Error::Invalid { problems, .. } if problems.len() == 1 => problems[0].clone(),
        other => panic!("not one problem of validation: {other}"),
    };

    let err = refused(ExporterSpec::Parquet(ParquetSpec::new("-")));
    assert!(problem(&err).starts_with("path: "), "{err}");
    assert!(err.to_string().starts_with("parquet stdout: "), "{err}");

    let err = refused(ExporterSpec::Csv(CsvSpec {
        columns: Some(vec!["event_id".into(), "nope".into()]),
        ..CsvSpec::new(path.clone())
    }));
    assert!(
        problem(&err).starts_with("columns: unknown column `nope`"),
        "{err}"
    );
    assert!(
        err.to_string().starts_with(&format!("csv {path}: ")),
        "{err}"
    );

    let err = refused(ExporterSpec::Csv(CsvSpec {
        timezone: "Mars/Base".into(),
        ..CsvSpec::new(path.clone())
    }));
    assert!(
        problem(&err).starts_with("timezone: `Mars/Base` is not an IANA time zone"),
        "{err}"
    );

    let err = refused(ExporterSpec::Parquet(ParquetSpec {
        row_group_size: 0,
        ..ParquetSpec::new(text(&dir.path().join("x.parquet")))
    }));
    assert_eq!(problem(&err), "row_group_size: must be at least 1", "{err}");

    let err = refused(ExporterSpec::Jsonl(JsonlSpec::new(
        "s3://bucket/audit.jsonl",
    )));
    assert!(matches!(err, Error::Output { .. }), "{err}");

    assert_eq!(
        files_under(dir.path()),
        Vec::<PathBuf>::new(),
        "refused before any I/O"
    );
}

/// Whether `text` holds `key` as a JSON key: in JSON (`"key"`), in JSON inside a JSON string
/// (`\"key\"`) or inside a CSV cell (`""key""`).
fn holds_key(text: &str, key: &str) -> bool {
    [
        format!("\"{key}\""),
        format!("\\\"{key}\\\""),
        format!("\"\"{key}\"\""),
    ]
    .iter()
    .any(|pattern| text.contains(pattern.as_str()))
}

/// Runs the binary on the example trail with every event and every file format, plus
/// `extra_report` lines in `[report]`, and returns each output's text (Parquet decoded).
fn example_outputs(extra_report: &str) -> Vec<(String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    fs::write(
        dir.path().join("connect-audit.toml"),
        format!(
            r#"
            [report]
            trail = "{trail}"
            snapshot = "{snapshot}"
            since = "2024-04-01"
            until = "2024-06-01"
            events = ["all"]
            {extra_report}
            [[exporters]]
            type = "jsonl"
            path = "out/audit.jsonl"
            [[exporters]]
            type = "csv"
            path = "out/audit.csv"
            [[exporters]]
            type = "parquet"
            path = "out/audit.parquet"
            [[exporters]]
            type = "html"
            path = "out/audit.html"
            [[exporters]]
            type = "jsonl"
            schema = "ocsf"
            path = "out/ocsf.jsonl"
            [[exporters]]
            type = "parquet"
            schema = "ocsf"
            path = "out/ocsf.parquet"
            "#,
            trail = examples.join("trail").display(),
            snapshot = examples.join("snapshot").display(),
        ),
    )
    .unwrap();
    let out = super::helpers::connect_audit(dir.path(), &["report"], &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        super::helpers::stderr(&out)
    );
    let mut texts = Vec::new();
    for path in files_under(&dir.path().join("out")) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = if name == "audit.parquet" {
            let rows = read_parquet(&path);
            assert!(!rows.is_empty());
            serde_json::to_string(&rows).unwrap()
        } else if name.ends_with(".parquet") {
            // OCSF columns: every text cell, as JSON strings.
            let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap())
                .unwrap()
                .build()
                .unwrap();
            let mut cells = Vec::new();
            for batch in reader {
                for column in batch.unwrap().columns() {
                    if let Some(text) = column.as_string_opt::<i32>() {
                        cells.extend(text.iter().flatten().map(str::to_owned));
                    }
                }
            }
            assert!(!cells.is_empty());
            serde_json::to_string(&cells).unwrap()
        } else {
            fs::read_to_string(&path).unwrap()
        };
        texts.push((name, text));
    }
    assert_eq!(
        texts.len(),
        6,
        "{:?}",
        texts.iter().map(|t| &t.0).collect::<Vec<_>>()
    );
    texts
}

#[test]
fn no_output_holds_a_secret_credential_of_the_connect_model() {
    use connect_audit_tests::ids;
    let outputs = example_outputs("");
    for (name, text) in &outputs {
        for secret in [
            ids::FEDERATION_ACCESS_TOKEN,
            ids::FEDERATION_REFRESH_TOKEN,
            ids::FEDERATION_URL_TOKEN,
            ids::AUTH_CODE,
        ] {
            assert!(!text.contains(secret), "{name} holds {secret}");
        }
        for key in connect_audit_core::redact::SECRET_KEYS {
            assert!(!holds_key(text, key), "{name} holds the key {key}");
        }
        // The record of the call is still there, with the rest of its response.
        if ["audit.jsonl", "audit.csv", "audit.parquet"].contains(&name.as_str()) {
            assert!(
                text.contains(connect_audit_tests::events::FEDERATION_TOKEN),
                "{name}"
            );
            assert!(text.contains("UserArn"), "{name}");
        }
    }
    let jsonl = &outputs.iter().find(|(n, _)| n == "audit.jsonl").unwrap().1;
    assert!(
        jsonl.contains(r#"\"Email\""#),
        "identity values are kept by default"
    );
}

#[test]
fn redact_keys_remove_more_in_every_output() {
    let outputs = example_outputs(r#"redact_keys = ["Email", "deskphonenumber"]"#);
    for (name, text) in &outputs {
        assert!(!holds_key(text, "Email"), "{name} still holds Email");
        assert!(
            !text.contains("+81312345678"),
            "{name} still holds the desk phone"
        );
        assert!(text.contains("FirstName"), "{name}: other keys stay");
    }
}
