//! Incremental runs through the binary, as a scheduler runs them: a growing trail, a state
//! that advances only when every exporter finished, a killed run, profiles.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::helpers::{self, binary, copy_dir, events, files, stderr, trail_file};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");

fn connect_audit(cwd: &Path, args: &[&str]) -> Output {
    helpers::connect_audit(cwd, args, &[])
}

/// The event ids of JSON Lines files, with how often each occurs.
fn id_counts<'a>(paths: impl IntoIterator<Item = &'a PathBuf>) -> BTreeMap<String, usize> {
    let texts: Vec<Vec<u8>> = paths.into_iter().map(|p| fs::read(p).unwrap()).collect();
    helpers::id_counts(texts.iter().map(Vec::as_slice))
}

/// The delivery time in a CloudTrail file name (`…_20240503T1208Z_…`), as `20240503T1208`.
fn delivery_stamp(path: &Path) -> String {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let stem = name.split('.').next().unwrap();
    let stamp = stem
        .split('_')
        .find(|part| part.len() >= 13 && part.as_bytes()[8] == b'T' && part.ends_with('Z'))
        .unwrap_or_else(|| panic!("no delivery time in {name}"));
    stamp[..13].to_owned()
}

/// Copies the example trail files delivered before `stamp` (`YYYYMMDDTHHMM`) into `trail`.
fn deliver_until(trail: &Path, stamp: &str) {
    let examples = Path::new(EXAMPLES).join("trail");
    for file in files(&examples) {
        if delivery_stamp(&file).as_str() < stamp {
            let target = trail.join(file.strip_prefix(&examples).unwrap());
            fs::create_dir_all(target.parent().unwrap()).unwrap();
            fs::copy(&file, target).unwrap();
        }
    }
}

fn state(dir: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(dir.join("state/team.json")).unwrap()).unwrap()
}

#[test]
fn three_runs_over_a_growing_trail_give_each_event_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    copy_dir(
        &Path::new(EXAMPLES).join("snapshot"),
        &root.join("snapshot"),
    );
    fs::create_dir_all(root.join("trail")).unwrap();
    // The example trail delivers files up to 12 hours after their events: a lookback of a
    // day sees every late file again.
    fs::write(
        root.join("connect-audit.toml"),
        r#"
        [report]
        trail = "trail"
        snapshot = "snapshot"
        since = "2024-05-01"
        [incremental]
        state = "state/team.json"
        lookback = "1d"
        [[exporters]]
        type = "jsonl"
        path = "out/audit-{since}.jsonl"
        [[exporters]]
        type = "csv"
        path = "out/audit-{since}.csv"
        [[exporters]]
        type = "parquet"
        path = "lake"
        partition_by_date = true
        "#,
    )
    .unwrap();

    let runs = [
        ("20240503T1200", "2024-05-03T12:00:00Z"),
        ("20240505T1200", "2024-05-05T12:00:00Z"),
        ("20240510T0000", "2024-05-10T00:00:00Z"),
    ];
    for (i, (stamp, until)) in runs.iter().enumerate() {
        deliver_until(&root.join("trail"), stamp);
        let out = connect_audit(root, &["report", "--incremental", "--until", until]);
        assert_eq!(out.status.code(), Some(0), "run {i}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("state/team.json advanced to"),
            "{}",
            stderr(&out)
        );
        let s = state(root);
        assert_eq!(s["watermark"], *until);
        assert_eq!(s["runs"], i + 1);
    }
    let outputs: Vec<PathBuf> = files(&root.join("out"));
    let jsonl: Vec<PathBuf> = outputs
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .cloned()
        .collect();
    let names: Vec<String> = jsonl
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "audit-20240501T000000Z.jsonl",
            "audit-20240502T120000Z.jsonl",
            "audit-20240504T120000Z.jsonl"
        ],
        "one file per run, named after its start (watermark − lookback)"
    );
    assert_eq!(outputs.len(), 6, "{outputs:?}");

    // The same trail in one plain run.
    let reference = root.join("reference.jsonl");
    let out = connect_audit(
        root,
        &[
            "report",
            "--until",
            "2024-05-10",
            "--output",
            reference.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let expected = id_counts([&reference]);
    assert!(expected.len() > 15, "the examples hold many events");
    let delivered = id_counts(&jsonl);
    assert_eq!(
        delivered, expected,
        "every event of the trail, each exactly once across the runs' files"
    );
    // The lake: every run adds its own file to the partitions it touches.
    let lake = files(&root.join("lake"));
    let mut lake_rows = 0;
    for file in &lake {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("part-2024") && name.ends_with("Z.parquet"),
            "{name}"
        );
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            fs::File::open(file).unwrap(),
        )
        .unwrap()
        .build()
        .unwrap();
        lake_rows += reader.map(|b| b.unwrap().num_rows()).sum::<usize>();
    }
    assert_eq!(
        lake_rows,
        expected.len(),
        "the lake holds each event once: {lake:?}"
    );
    let csv_rows: usize = outputs
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .map(|p| fs::read_to_string(p).unwrap().lines().count() - 1)
        .sum();
    assert_eq!(csv_rows, expected.len(), "the CSV files hold the same rows");

    // Nothing new to cover: refused, state untouched.
    let before = fs::read(root.join("state/team.json")).unwrap();
    let out = connect_audit(
        root,
        &["report", "--incremental", "--until", "2024-05-09T00:00:00Z"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("before the watermark"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs::read(root.join("state/team.json")).unwrap(), before);

    // A file exporter without {since} would overwrite the previous run's file.
    let out = connect_audit(
        root,
        &["report", "--incremental", "--output", "out/audit.jsonl"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("{since}"), "{}", stderr(&out));
}

#[test]
fn a_killed_run_writes_nothing_and_the_rerun_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let trail = root.join("trail");
    // 3000 events (about 2 MB of JSON Lines): far more than a pipe holds, so a run whose
    // stdout nobody reads blocks mid-export.
    trail_file(
        &trail,
        "03",
        "20240503T0000Z",
        &events(0, 3000, "2024-05-02T12:00:00Z", 0),
    );
    fs::write(
        root.join("connect-audit.toml"),
        r#"
        [report]
        trail = "trail"
        since = "2024-05-01"
        [incremental]
        state = "state/team.json"
        [[exporters]]
        type = "csv"
        path = "out/audit-{since}.csv"
        [[exporters]]
        type = "jsonl"
        path = "-"
        "#,
    )
    .unwrap();
    let args = ["report", "--incremental", "--until", "2024-05-04T00:00:00Z"];

    let mut child = Command::new(binary())
        .args(args)
        .current_dir(root)
        .env_remove("CONNECT_AUDIT_CONFIG")
        .env_remove("CONNECT_AUDIT_PROFILE")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the run has started its CSV (a temporary file in out/), then give it time
    // to fill the pipe and block.
    let started = Instant::now();
    while files(&root.join("out")).is_empty() {
        assert!(
            started.elapsed() < Duration::from_mins(1),
            "the run never started its CSV"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(child.try_wait().unwrap().is_none(), "blocked on its stdout");
    child.kill().unwrap();
    child.wait().unwrap();

    let final_csv = root.join("out/audit-20240501T000000Z.csv");
    assert!(!final_csv.exists(), "no output under its final name");
    assert!(!root.join("state/team.json").exists(), "no state written");

    // The rerun (stdout read this time) delivers everything.
    let out = Command::new(binary())
        .args(args)
        .current_dir(root)
        .env_remove("CONNECT_AUDIT_CONFIG")
        .env_remove("CONNECT_AUDIT_PROFILE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3000);
    let rows = fs::read_to_string(&final_csv).unwrap().lines().count() - 1;
    assert_eq!(rows, 3000);
    assert_eq!(state(root)["runs"], 1);

    // More events arrive; the next run delivers exactly those.
    trail_file(
        &trail,
        "05",
        "20240505T0000Z",
        &events(3000, 500, "2024-05-04T01:00:00Z", 0),
    );
    let out = connect_audit(
        root,
        &["report", "--incremental", "--until", "2024-05-06T00:00:00Z"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 500);
    let second = root.join("out/audit-20240503T220000Z.csv");
    assert_eq!(fs::read_to_string(second).unwrap().lines().count() - 1, 500);
    assert_eq!(state(root)["runs"], 2);
}

#[test]
fn run_uses_the_selected_profile_and_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    copy_dir(&Path::new(EXAMPLES).join("trail"), &root.join("trail"));
    fs::write(
        root.join("teams.toml"),
        r#"
        [default.report]
        trail = "trail"
        since = "2024-05-01"
        [team-blue.incremental]
        state = "state/blue.json"
        [[team-blue.exporters]]
        type = "jsonl"
        path = "blue/audit-{since}.jsonl"
        [team-red.report]
        accounts = ["444455556666"]
        [team-red.incremental]
        state = "state/red.json"
        [[team-red.exporters]]
        type = "jsonl"
        path = "red/audit-{since}.jsonl"
        "#,
    )
    .unwrap();
    let blue = connect_audit(
        root,
        &[
            "run",
            "--config",
            "teams.toml",
            "--profile",
            "team-blue",
            "--until",
            "2024-05-10",
        ],
    );
    assert_eq!(blue.status.code(), Some(0), "{}", stderr(&blue));
    let red = Command::new(binary())
        .args(["run", "--config", "teams.toml", "--until", "2024-05-10"])
        .env("CONNECT_AUDIT_PROFILE", "team-red")
        .current_dir(root)
        .output()
        .unwrap();
    assert_eq!(red.status.code(), Some(0), "{}", stderr(&red));
    let blue_ids = id_counts(&files(&root.join("blue")));
    let red_ids = id_counts(&files(&root.join("red")));
    assert!(
        !red_ids.is_empty() && red_ids.len() < blue_ids.len(),
        "red sees one account"
    );
    assert!(red_ids.keys().all(|id| blue_ids.contains_key(id)));
    assert!(root.join("state/blue.json").is_file() && root.join("state/red.json").is_file());

    let out = connect_audit(
        root,
        &[
            "config",
            "check",
            "--config",
            "teams.toml",
            "--profile",
            "team-red",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("incremental configuration OK (teams.toml): state state/red.json"),
        "{}",
        stderr(&out)
    );

    let out = connect_audit(
        root,
        &["run", "--config", "teams.toml", "--profile", "team-gren"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("profiles: default, team-blue, team-red"),
        "{}",
        stderr(&out)
    );
}

/// Writes a trail file CloudTrail delivered at `delivered` (its folder and name say so).
fn delivered_file(trail: &Path, delivered: jiff::Timestamp, records: &[Value]) {
    let utc = delivered.to_zoned_datetime(jiff::tz::TimeZone::UTC);
    helpers::write_trail_file(
        &trail.join(format!(
            "AWSLogs/111122223333/CloudTrail/us-east-1/{}/111122223333_CloudTrail_us-east-1_{}_x.json.gz",
            utc.strftime("%Y/%m/%d"),
            utc.strftime("%Y%m%dT%H%MZ"),
        )),
        records,
    );
}

/// One event of [`events`], numbered `i`, at `time`.
fn event_at(i: usize, time: jiff::Timestamp) -> Value {
    events(i, 1, &time.to_string(), 0).remove(0)
}

/// The `events:` line of a run's summary.
fn events_line(out: &Output) -> String {
    stderr(out)
        .lines()
        .find(|l| l.trim_start().starts_with("events:"))
        .unwrap_or_else(|| panic!("no events line: {}", stderr(out)))
        .trim()
        .to_owned()
}

/// The issue's scenario, in today's prefix: three runs over a growing trail, each summary's
/// counts against the records its file holds; an event older than the window in a newly
/// delivered file is warned about (and named at `-v`), once.
#[test]
fn summaries_count_what_each_run_wrote_and_each_run_reads_only_new_objects() {
    use jiff::{SignedDuration as D, Timestamp};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let trail = root.join("trail");
    let now = Timestamp::now();
    let min = |m: i64| now + D::from_mins(m);
    fs::write(
        root.join("connect-audit.toml"),
        format!(
            r#"
            [report]
            trail = "trail"
            since = "{since}"
            [incremental]
            state = "state/team.json"
            lookback = "1h"
            [[exporters]]
            type = "jsonl"
            path = "out/audit-{{since}}.jsonl"
            [[exporters]]
            type = "html"
            path = "out/audit-{{since}}.html"
            "#,
            since = min(-120),
        ),
    )
    .unwrap();
    let run = |until: Timestamp, verbose: bool| {
        let until = until.to_string();
        let mut args = vec!["report", "--incremental", "--until", &until];
        if verbose {
            args.push("-v");
        }
        let out = connect_audit(root, &args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        out
    };
    let newest = |before: &[PathBuf], ext: &str| -> PathBuf {
        let now: Vec<PathBuf> = files(&root.join("out"))
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == ext) && !before.contains(p))
            .collect();
        assert_eq!(now.len(), 1, "{now:?}");
        now[0].clone()
    };
    let id = |i: usize| format!("00000000-0000-4000-8000-{i:012}");

    // Run 1: two events.
    delivered_file(
        &trail,
        min(-50),
        &[event_at(0, min(-55)), event_at(1, min(-54))],
    );
    let out = run(min(-30), false);
    let file = newest(&[], "jsonl");
    assert_eq!(id_counts([&file]).len(), 2);
    assert_eq!(
        events_line(&out),
        "events:  2 audited in the window, 0 already delivered by an earlier run (dropped), 0 duplicate deliveries (dropped), 2 written"
    );

    // Run 2: a new file with one new event and event 1 again (delivered twice); only the
    // new file is read.
    let seen = files(&root.join("out"));
    delivered_file(
        &trail,
        min(-24),
        &[event_at(2, min(-25)), event_at(1, min(-54))],
    );
    let out = run(min(-20), false);
    let file = newest(&seen, "jsonl");
    assert_eq!(
        id_counts([&file]).into_keys().collect::<Vec<_>>(),
        [id(2)],
        "only the new event"
    );
    assert_eq!(
        events_line(&out),
        "events:  2 audited in the window, 1 already delivered by an earlier run (dropped), 0 duplicate deliveries (dropped), 1 written"
    );
    assert!(
        files_line(&out)
            .contains("2 found, 0 outside the window, 1 read by an earlier run, 1 read"),
        "{}",
        files_line(&out)
    );
    let html = fs::read_to_string(newest(&seen, "html")).unwrap();
    assert!(
        html.contains("The run found 2 audited events in its window: 1 written, 1 already delivered by an earlier run (not repeated here), 0 duplicate deliveries dropped."),
        "the HTML header counts the same"
    );

    // Run 3: a new file with a new event, one older than the lookback (written: its file is
    // new), and one older than the configured start (named, not lost in silence); a file
    // delivered after the run's end waits for the next run.
    let seen = files(&root.join("out"));
    delivered_file(
        &trail,
        min(-12),
        &[
            event_at(3, min(-15)),
            event_at(4, min(-100)),
            event_at(5, min(-180)),
        ],
    );
    delivered_file(&trail, min(-8), &[event_at(6, min(-9))]);
    let out = run(min(-10), true);
    let file = newest(&seen, "jsonl");
    assert_eq!(
        id_counts([&file]).into_keys().collect::<Vec<_>>(),
        [id(3), id(4)]
    );
    assert_eq!(
        events_line(&out),
        "events:  2 audited in the window, 0 already delivered by an earlier run (dropped), 0 duplicate deliveries (dropped), 2 written"
    );
    assert!(
        files_line(&out)
            .contains("4 found, 1 outside the window, 2 read by an earlier run, 1 read"),
        "{}",
        files_line(&out)
    );
    let err = stderr(&out);
    assert!(
        err.contains("warning: 1 audited events older than the window were found in files delivered since the last run; they are not in this run's output"),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.contains(&id(5)) && l.contains("older than the window")),
        "-v names the event: {err}"
    );
    let html = fs::read_to_string(newest(&seen, "html")).unwrap();
    assert!(html.contains(r#"id="late-events""#), "the HTML warns too");
    assert!(state(root)["late"][id(5)].is_string(), "{}", state(root));

    // Run 4: only the file delivered since; nothing read twice, the late event not warned
    // about again.
    let seen = files(&root.join("out"));
    let out = run(min(-5), false);
    assert!(
        !stderr(&out).contains("older than the window"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        id_counts([&newest(&seen, "jsonl")])
            .into_keys()
            .collect::<Vec<_>>(),
        [id(6)]
    );
    assert!(
        files_line(&out)
            .contains("4 found, 0 outside the window, 3 read by an earlier run, 1 read"),
        "{}",
        files_line(&out)
    );
}

/// The `files:` line of a run's summary.
fn files_line(out: &Output) -> String {
    stderr(out)
        .lines()
        .find(|l| l.trim_start().starts_with("files:"))
        .unwrap_or_else(|| panic!("no files line: {}", stderr(out)))
        .trim()
        .to_owned()
}

#[test]
fn a_flat_folder_of_copied_files_is_read_once_too() {
    // Files not in CloudTrail's layout (downloaded into one folder): each read once, by name.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let trail = root.join("trail");
    fs::create_dir_all(&trail).unwrap();
    let examples = Path::new(EXAMPLES).join("trail");
    for file in files(&examples) {
        fs::copy(&file, trail.join(file.file_name().unwrap())).unwrap();
    }
    fs::write(
        root.join("connect-audit.toml"),
        r#"
        [report]
        trail = "trail"
        since = "2024-05-01"
        [incremental]
        state = "state/team.json"
        [[exporters]]
        type = "jsonl"
        path = "out/audit-{since}.jsonl"
        "#,
    )
    .unwrap();
    let first = connect_audit(root, &["report", "--incremental", "--until", "2024-05-20"]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let written_first = id_counts(&files(&root.join("out")));
    assert!(written_first.len() > 10, "{}", stderr(&first));
    let second = connect_audit(root, &["report", "--incremental", "--until", "2024-05-21"]);
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    assert!(
        events_line(&second).ends_with(" 0 written"),
        "{}",
        stderr(&second)
    );
    let all = id_counts(&files(&root.join("out")));
    assert_eq!(all, written_first, "nothing written twice");
}

#[test]
fn a_state_of_version_1_continues_from_its_lookback_without_loss_or_doubling() {
    use jiff::{SignedDuration as D, Timestamp};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let trail = root.join("trail");
    let now = Timestamp::now();
    let min = |m: i64| now + D::from_mins(m);
    // Delivered before the old watermark (-60) − lookback (60): read by the old runs.
    delivered_file(&trail, min(-150), &[event_at(0, min(-155))]);
    // In the lookback: event 1 delivered by the old run, event 2 not.
    delivered_file(&trail, min(-90), &[event_at(1, min(-95))]);
    delivered_file(&trail, min(-70), &[event_at(2, min(-75))]);
    // After the watermark: new.
    delivered_file(&trail, min(-30), &[event_at(3, min(-35))]);
    fs::create_dir_all(root.join("state")).unwrap();
    fs::write(
        root.join("state/team.json"),
        serde_json::json!({
            "version": 1,
            "watermark": min(-60).to_string(),
            "lookback_secs": 3600,
            "delivered": { format!("00000000-0000-4000-8000-{:012}", 1): min(-95).to_string() },
            "runs": 7,
            "written_at": min(-59).to_string(),
            "started_at": min(-60).to_string()
        })
        .to_string(),
    )
    .unwrap();
    fs::write(
        root.join("connect-audit.toml"),
        r#"
        [report]
        trail = "trail"
        since = "1d"
        [incremental]
        state = "state/team.json"
        lookback = "1h"
        [[exporters]]
        type = "jsonl"
        path = "out/audit-{since}.jsonl"
        "#,
    )
    .unwrap();
    let out = connect_audit(root, &["report", "--incremental"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let written = id_counts(&files(&root.join("out")));
    assert_eq!(
        written.keys().cloned().collect::<Vec<_>>(),
        [2, 3]
            .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
            .to_vec(),
        "the lookback's undelivered event and the new one: {}",
        stderr(&out)
    );
    assert!(
        files_line(&out).contains("3 read ("),
        "the files delivered from the lookback on: {}",
        stderr(&out)
    );
    assert_eq!(state(root)["version"], 2);
    assert!(
        state(root)["objects"]["folders"].is_object(),
        "{}",
        state(root)
    );
    let again = connect_audit(root, &["report", "--incremental"]);
    assert!(
        files_line(&again).contains(", 0 read ("),
        "{}",
        stderr(&again)
    );
}
