//! The `connect-audit` binary run as a process, as a user would.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use super::helpers::{binary, copy_dir, fixtures};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(cwd: &Path, args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .current_dir(cwd)
        .env_remove("CONNECT_AUDIT_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A copy of `examples/` in a fresh directory, as a user's checkout would have it.
fn examples_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo().join("examples"), &dir.path().join("examples"));
    dir
}

#[test]
fn quick_start_demo_writes_every_output_and_a_summary() {
    let dir = examples_copy();
    let out = run(dir.path(), &["report", "--config", "examples/demo.toml"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(out.stdout.is_empty(), "data goes to files, not stdout");
    let demo = dir.path().join("out/demo");
    let csv = fs::read_to_string(demo.join("audit.csv")).unwrap();
    let jsonl = fs::read_to_string(demo.join("audit.jsonl")).unwrap();
    let rows = jsonl.lines().count();
    assert!(
        stderr.contains(&format!(
            "events:  {rows} audited in the window, 0 already delivered by an earlier run (dropped), 1 duplicate deliveries (dropped), {rows} written"
        )),
        "{stderr}"
    );
    assert!(rows > 10, "{rows} rows");
    assert_eq!(
        csv.lines().count(),
        rows + 1,
        "CSV has a header and one row per event"
    );
    assert!(csv.contains("+09:00"), "the demo shows times in Asia/Tokyo");
    // The changes in names, and the findings, in the CSV and the summary; the summary counts
    // what the JSON Lines file holds.
    let header = csv.lines().next().unwrap();
    assert!(
        header.ends_with(",change,before,after,change_basis,findings"),
        "{header}"
    );
    assert!(
        csv.contains("security profiles: +QualityAnalyst (now Agent, QualityAnalyst)"),
        "{csv}"
    );
    let records: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let decoded = records
        .iter()
        .filter(|r| !r["change_basis"].is_null())
        .count();
    let count = |code: &str| {
        records
            .iter()
            .filter(|r| r["findings"].as_array().unwrap().iter().any(|f| f == code))
            .count()
    };
    assert!(
        stderr.contains(&format!("  changes: {decoded} decoded (")),
        "{stderr}"
    );
    assert_eq!(count("failed_escalation"), 1);
    assert_eq!(count("short_lived_user"), 1);
    assert!(
        stderr.contains("  findings: 1 failed_escalation, 1 short_lived_user\n"),
        "{stderr}"
    );
    let parts: Vec<_> = fs::read_dir(demo.join("parquet"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        parts.iter().all(|p| p.starts_with("date=2024-05-")),
        "{parts:?}"
    );
    assert!(!parts.is_empty());
    let html = fs::read_to_string(demo.join("audit.html")).unwrap();
    assert!(
        html.starts_with("<!DOCTYPE html>"),
        "{}",
        &html[..80.min(html.len())]
    );
    assert!(
        html.contains(&format!("data-records=\"{rows}\"")),
        "the page counts {rows} events"
    );
    // The findings at the top of the page, before the charts; the grants show the change.
    let findings = html
        .find(r#"<section id="findings">"#)
        .expect("a findings section");
    assert!(findings < html.find(r#"<section id="grants">"#).unwrap());
    assert!(
        html.contains("(2: 1 failed_escalation, 1 short_lived_user)"),
        "{}",
        &html[findings..findings + 300]
    );
    assert!(html.contains("short_lived_user · DeleteUser"));
    assert!(html.contains("deleted (had Agent, QualityAnalyst)"));
    // Nothing half-written is left behind.
    let leftovers: Vec<_> = walk(&demo)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn jsonl_to_stdout_carries_the_record_fields_in_order() {
    let dir = examples_copy();
    let out = run(
        dir.path(),
        &[
            "report",
            "--trail",
            "examples/trail",
            "--snapshot",
            "examples/snapshot",
            "--since",
            "2024-05-01",
            "--until",
            "2024-05-08",
            "--format",
            "jsonl",
            "--output",
            "-",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let mut count = 0;
    for line in stdout.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(
            v.as_object().unwrap().len(),
            connect_audit_core::record::COLUMNS.len(),
            "{line}"
        );
        let positions: Vec<usize> = connect_audit_core::record::COLUMNS
            .iter()
            .map(|c| line.find(&format!("\"{c}\":")).unwrap())
            .collect();
        assert!(positions.is_sorted(), "fields in record order: {line}");
        let t = v["event_time"].as_str().unwrap();
        assert!(("2024-05-01".."2024-05-08").contains(&t), "{t}");
        count += 1;
    }
    assert!(count > 10);
}

#[test]
fn bad_files_exit_3_unless_tolerated_and_good_records_are_still_written() {
    let trail = fixtures().join("bad-trail");
    let trail = trail.to_str().unwrap();
    let args = [
        "report",
        "--trail",
        trail,
        "--since",
        "2024-05-01",
        "--until",
        "2024-05-08",
        "--format",
        "jsonl",
    ];
    let out = run(&repo(), &args);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    for suffix in [
        "_notgzip.json.gz: not gzip",
        "_truncated.json.gz: truncated gzip",
        "_notjson.json.gz: not JSON",
        "_norecords.json.gz: no `Records` array",
        "_recordsobject.json.gz: `Records` is not an array",
        "_empty.json.gz: empty file",
        "_badrecords.json.gz: record 1 (eventID bad-time): unparseable eventTime",
    ] {
        assert!(stderr.contains(suffix), "missing `{suffix}` in:\n{stderr}");
    }
    assert_eq!(
        text(&out.stdout).lines().count(),
        4,
        "good-1..4 still written"
    );

    let mut tolerant = args.to_vec();
    tolerant.push("--tolerate-bad-files");
    let out = run(&repo(), &tolerant);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains("not gzip"), "still reported");
    assert_eq!(text(&out.stdout).lines().count(), 4);
}

#[test]
fn a_snapshot_object_that_is_not_json_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("snap/users");
    fs::create_dir_all(&users).unwrap();
    fs::write(
        users.join("66666666-7777-8888-9999-000000000000.json"),
        "{oops",
    )
    .unwrap();
    let trail = fixtures().join("bad-trail");
    let out = run(
        dir.path(),
        &[
            "report",
            "--trail",
            trail.to_str().unwrap(),
            "--snapshot",
            "snap",
            "--since",
            "2024-05-01",
            "--until",
            "2024-05-08",
        ],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("snap/users/66666666-7777-8888-9999-000000000000.json"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn config_check_names_the_key_and_who_set_it() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("connect-audit.toml"),
        "[report]\ntrail = 'trail'\nevents = ['NoSuchEvent']\n",
    )
    .unwrap();
    let out = Command::new(binary())
        .args(["config", "check"])
        .current_dir(dir.path())
        .env_remove("CONNECT_AUDIT_CONFIG")
        .env("CONNECT_AUDIT_REPORT__SINCE", "last tuesday")
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("report.events (set by file"), "{stderr}");
    assert!(stderr.contains("NoSuchEvent"), "{stderr}");
    assert!(
        stderr.contains("report.since (set by environment variable CONNECT_AUDIT_REPORT__SINCE)"),
        "{stderr}"
    );

    fs::write(
        dir.path().join("connect-audit.toml"),
        "[report]\ntrail = 'trail'\nsince = '2024-05-01'\n[[exporters]]\ntype = 'csv'\npath = 'a.csv'\n",
    )
    .unwrap();
    let out = run(dir.path(), &["config", "check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = run(dir.path(), &["config", "show"]);
    assert_eq!(out.status.code(), Some(0));
    let shown: toml::Value = toml::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(shown["report"]["trail"].as_str(), Some("trail"));
    assert_eq!(
        shown["exporters"][0]["timezone"].as_str(),
        Some("UTC"),
        "defaults are shown"
    );
}

#[test]
fn unknown_config_keys_and_usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("c.toml"), "[report]\ntrial = 'typo'\n").unwrap();
    let out = run(dir.path(), &["config", "check", "--config", "c.toml"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("trial"), "{stderr}");
    let out = run(dir.path(), &["report", "--format", "parquet"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(dir.path(), &["report", "--bogus"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn help_is_everywhere() {
    for args in [
        &["--help"][..],
        &["report", "--help"],
        &["config", "--help"],
        &["config", "check", "--help"],
        &["config", "show", "--help"],
    ] {
        let out = run(&repo(), args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(text(&out.stdout).contains("Usage"), "{args:?}");
    }
    let out = run(&repo(), &["--help"]);
    assert!(text(&out.stdout).contains("Exit codes"));
}

#[test]
fn completions_for_bash_parse_and_every_shell_gets_a_script() {
    let dir = tempfile::tempdir().unwrap();
    // Completions read no configuration: a broken config file does not stop them.
    fs::write(dir.path().join("connect-audit.toml"), "[report\n").unwrap();
    let out = run(dir.path(), &["completions", "bash"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let script = dir.path().join("connect-audit.bash");
    fs::write(&script, &out.stdout).unwrap();
    let check = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(check.status.success(), "bash -n: {}", text(&check.stderr));
    let bash = text(&out.stdout);
    assert!(
        bash.contains("complete -F"),
        "a bash completion function is registered"
    );
    for word in [
        "connect-audit",
        "report",
        "snapshot",
        "run",
        "replay",
        "config",
        "athena",
        "completions",
        "--since",
        "--format",
    ] {
        assert!(bash.contains(word), "{word} is completed");
    }

    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let out = run(dir.path(), &["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        assert!(
            script.len() > 1000 && script.contains("connect-audit") && script.contains("report"),
            "{shell}: {script}"
        );
    }

    let out = run(dir.path(), &["completions", "tcsh"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr.contains("invalid value 'tcsh'")
            && stderr.contains("bash")
            && stderr.contains("powershell"),
        "the error names the shells there are: {stderr}"
    );
    let out = run(dir.path(), &["completions"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("<SHELL>"));
}

/// A csv output that cannot be created (its folder would be under a regular file): the error
/// and its causes each say their part once, however many error types wrap the OS error.
#[test]
fn an_error_chain_never_repeats_itself() {
    let dir = examples_copy();
    fs::write(dir.path().join("blocker"), "a file, not a folder").unwrap();
    let out = run(
        dir.path(),
        &[
            "report",
            "--trail",
            "examples/trail",
            "--since",
            "2024-05-01",
            "--until",
            "2024-05-08",
            "--format",
            "csv",
            "--output",
            "blocker/out/audit.csv",
        ],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter_map(|l| {
            l.strip_prefix("connect-audit: error: ")
                .or_else(|| l.strip_prefix("  caused by: "))
        })
        .collect();
    assert!(
        lines
            .first()
            .is_some_and(|l| l.contains("cannot start the csv exporter")),
        "{stderr}"
    );
    assert!(lines.len() >= 2, "the cause is shown: {stderr}");
    for (i, line) in lines.iter().enumerate() {
        for earlier in &lines[..i] {
            assert!(
                !earlier.contains(line),
                "`{line}` repeats `{earlier}`:\n{stderr}"
            );
        }
    }
    // The operating system's words (ENOTDIR), once.
    assert_eq!(stderr.matches("Not a directory").count(), 1, "{stderr}");
    assert!(stderr.contains("blocker"), "the path is named: {stderr}");
}

/// A value nobody set is called `default` (or `not set`), never the Rust type the defaults
/// were serialised from.
#[test]
fn config_errors_say_default_or_not_set_never_a_type_name() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("connect-audit.toml"),
        "[report]\nengine = 'athena'\n",
    )
    .unwrap();
    let out = run(dir.path(), &["config", "check"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("athena.accounts (default): no account"),
        "{stderr}"
    );
    assert!(
        stderr.contains("athena.regions (default): no region"),
        "{stderr}"
    );
    assert!(stderr.contains("athena.trail (not set): give"), "{stderr}");
    assert!(
        !stderr.contains("::") && !stderr.contains("Settings"),
        "no Rust type: {stderr}"
    );
    let out = run(
        dir.path(),
        &["report", "--engine", "local", "--threads", "0"],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("report.trail (not set): give --trail DIR"),
        "{stderr}"
    );
    assert!(
        stderr.contains("report.threads (set by --threads)"),
        "{stderr}"
    );
    assert!(!stderr.contains("::"), "{stderr}");
}

/// Every file a run writes is created owner-only (0600) through a temporary file renamed into
/// place: the CSV, JSON Lines, Parquet partitions and HTML of the demo, and the incremental
/// state.
#[cfg(unix)]
#[test]
fn every_output_file_is_created_owner_only() {
    let dir = examples_copy();
    fs::write(
        dir.path().join("connect-audit.toml"),
        r#"
        [report]
        trail = "examples/trail"
        snapshot = "examples/snapshot"
        since = "2024-05-01"
        [incremental]
        state = "state/team.json"
        [[exporters]]
        type = "jsonl"
        path = "out/nightly/audit-{since}.jsonl"
        "#,
    )
    .unwrap();
    let out = run(dir.path(), &["report", "--config", "examples/demo.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = run(
        dir.path(),
        &["report", "--incremental", "--until", "2024-05-08"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let files: Vec<PathBuf> = walk(&dir.path().join("out"))
        .into_iter()
        .chain([dir.path().join("state/team.json")])
        .collect();
    for ext in ["csv", "jsonl", "parquet", "html"] {
        assert!(
            files
                .iter()
                .any(|f| f.extension().is_some_and(|e| e == ext)),
            "a .{ext} output: {files:?}"
        );
    }
    for file in &files {
        assert_eq!(super::helpers::mode(file), 0o600, "{}", file.display());
        let name = file.file_name().unwrap().to_string_lossy();
        assert!(!name.ends_with(".tmp"), "no temporary file is left: {name}");
    }
}

/// `snapshot` as a user runs it: the real SDK clients through `AWS_ENDPOINT_URL*`, the store on
/// real S3 (Garage), Connect faked at the HTTP layer; then `report` reads that store.
#[test]
fn snapshot_command_fills_an_s3_store_that_report_reads() {
    use connect_audit_tests::fake_connect::FakeConnect;
    use connect_audit_tests::garage::Garage;

    const INSTANCE: &str = "0a1b2c3d-0000-4000-8000-00000000c11a";
    let garage = Garage::shared();
    let fake = FakeConnect::start();
    let users = fake.add_instance(INSTANCE, 30);
    let store = format!(
        "s3://{}/{}",
        garage.bucket(),
        garage.unique_prefix("cli-snapshot")
    );
    let snapshot = || {
        Command::new(binary())
            .args([
                "snapshot",
                "--instance",
                INSTANCE,
                "--region",
                "us-east-1",
                "--store",
                &store,
            ])
            .envs(garage.aws_env())
            .env("AWS_ENDPOINT_URL_CONNECT", fake.url())
            .env_remove("CONNECT_AUDIT_CONFIG")
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap()
    };
    let out = snapshot();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("users 30 listed, 30 added"), "{stderr}");
    let again = snapshot();
    let stderr = text(&again.stderr);
    assert_eq!(again.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("30 unchanged"), "{stderr}");
    assert!(
        stderr.contains(" 0 written"),
        "an unchanged re-run writes no object: {stderr}"
    );

    // A trail with a DeleteUser of one of those users, named from the S3 store.
    let dir = tempfile::tempdir().unwrap();
    let day = dir
        .path()
        .join("AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/02");
    fs::create_dir_all(&day).unwrap();
    let record = serde_json::json!({"Records": [{
        "eventTime": "2024-05-02T10:00:00Z", "eventID": "cli-delete", "eventName": "DeleteUser",
        "eventSource": "connect.amazonaws.com", "awsRegion": "us-east-1",
        "recipientAccountId": "111122223333",
        "userIdentity": {"type": "IAMUser", "userName": "ops", "principalId": "AIDA1"},
        "requestParameters": {"InstanceId": INSTANCE, "UserId": users[3].id}
    }]});
    fs::write(
        day.join("111122223333_CloudTrail_us-east-1_20240502T1000Z_a.json"),
        record.to_string(),
    )
    .unwrap();
    let out = Command::new(binary())
        .args([
            "report",
            "--trail",
            dir.path().to_str().unwrap(),
            "--snapshot",
            &store,
            "--since",
            "2024-05-01",
            "--until",
            "2024-05-08",
        ])
        .envs(garage.aws_env())
        .env_remove("CONNECT_AUDIT_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let row: Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(
        row["target_name"].as_str(),
        Some(users[3].username.as_str())
    );
    assert_eq!(row["name_source"].as_str(), Some("snapshot"));
}

#[test]
fn config_check_validates_a_snapshot_only_configuration() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("connect-audit.toml"),
        "[snapshot]\nstore = 's3://audit-bucket/connect-audit'\n[[instances]]\nid = 'arn:aws:connect:ap-northeast-1:111122223333:instance/11111111-2222-3333-4444-555555555555'\n",
    )
    .unwrap();
    let out = run(dir.path(), &["config", "check"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("snapshot configuration OK"), "{stderr}");
    assert!(!stderr.contains("report.trail"), "{stderr}");

    fs::write(
        dir.path().join("connect-audit.toml"),
        "[snapshot]\nstore = 's3://audit-bucket/x'\n[[instances]]\nid = '../../etc/passwd'\n",
    )
    .unwrap();
    let out = run(dir.path(), &["config", "check"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("instances[0] (set by file"), "{stderr}");
    assert!(stderr.contains("not a Connect id"), "{stderr}");
}

/// The bad-input corpus (`tests/fixtures/bad`, its `snapshot/` objects too) copied byte for
/// byte into `<tmp>/bad/AWSLogs/…/2024/05/02/` under CloudTrail log file names: a directory
/// walk reads only those, and ignores the corpus's own names.
fn bad_corpus_trail() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let day = dir
        .path()
        .join("bad/AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/02");
    fs::create_dir_all(&day).unwrap();
    let corpus = repo().join("tests/fixtures/bad");
    for sub in ["", "snapshot"] {
        for entry in fs::read_dir(corpus.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let split = |ext: &'static str| Some((name.strip_suffix(&format!(".{ext}"))?, ext));
            let Some((stem, ext)) = split("json.gz").or_else(|| split("json")) else {
                continue;
            };
            let stem = if sub.is_empty() {
                stem.to_owned()
            } else {
                format!("{sub}-{stem}")
            };
            fs::copy(
                &path,
                day.join(format!(
                    "111122223333_CloudTrail_us-east-1_20240502T1000Z_{stem}.{ext}"
                )),
            )
            .unwrap();
        }
    }
    dir
}

/// Every instruction set of the scanner's vector code (`CONNECT_AUDIT_SIMD` lowers the one the
/// CPU has) gives the same report byte for byte, and the same messages, lines and columns
/// included, on the bad-input corpus; `-vv` names the set that ran.
#[test]
fn every_simd_level_gives_the_same_report_and_the_same_messages() {
    let report = |trail: &Path, simd: Option<&str>| {
        let mut command = Command::new(binary());
        command
            .args(["-vv", "report", "--trail"])
            .arg(trail)
            .args(["--since", "2024-05-01", "--until", "2024-05-08"])
            .args(["--format", "jsonl", "--output", "-"])
            .env_remove("CONNECT_AUDIT_CONFIG")
            .env_remove("RUST_LOG")
            .env_remove("CONNECT_AUDIT_SIMD");
        if let Some(level) = simd {
            command.env("CONNECT_AUDIT_SIMD", level);
        }
        let out = command.output().unwrap();
        let stderr = text(&out.stderr);
        assert!(
            !stderr.contains('\x1b'),
            "no colors in a log that is not a terminal: {stderr}"
        );
        let ran = stderr
            .split("simd=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no simd= in the log: {stderr}"))
            .trim_matches('"')
            .to_owned();
        let skipped: Vec<String> = stderr
            .lines()
            .filter(|l| l.contains("skipped "))
            .map(str::to_owned)
            .collect();
        (out.status.code(), out.stdout, skipped, ran)
    };
    let corpus = bad_corpus_trail();
    for trail in [repo().join("examples/trail"), corpus.path().join("bad")] {
        let (code, stdout, skipped, best) = report(&trail, None);
        assert!(matches!(code, Some(0 | 3)), "{code:?}");
        assert!(
            ["avx512", "avx2", "sse2"].contains(&best.as_str()),
            "{best}"
        );
        for level in ["sse2", "avx2", "avx512"] {
            let (level_code, level_stdout, level_skipped, ran) = report(&trail, Some(level));
            // A set the CPU lacks is not used: the best it has below it is.
            let order = ["sse2", "avx2", "avx512"];
            let rank = |l: &str| order.iter().position(|o| *o == l).unwrap();
            assert!(
                rank(&ran) <= rank(level).min(rank(&best)),
                "{level} ran as {ran}"
            );
            assert_eq!(level_code, code, "{level}");
            assert_eq!(level_stdout, stdout, "{level} on {}", trail.display());
            assert_eq!(level_skipped, skipped, "{level} on {}", trail.display());
        }
        if trail.ends_with("bad") {
            assert!(skipped.len() > 10, "{skipped:#?}");
        } else {
            assert!(stdout.len() > 1000);
            // A value it does not know is named and ignored: the best set runs.
            let out = Command::new(binary())
                .args(["report", "--trail"])
                .arg(&trail)
                .args(["--since", "2024-05-01", "--until", "2024-05-08"])
                .args(["--format", "jsonl", "--output", "-"])
                .env_remove("CONNECT_AUDIT_CONFIG")
                .env_remove("RUST_LOG")
                .env("CONNECT_AUDIT_SIMD", "avx9000")
                .output()
                .unwrap();
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), code, "{stderr}");
            assert_eq!(out.stdout, stdout);
            assert!(
                stderr.contains(
                    r#"CONNECT_AUDIT_SIMD="avx9000" is not avx512, avx2 or sse2: ignored"#
                ),
                "{stderr}"
            );
        }
    }
}
