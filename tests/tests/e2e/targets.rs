//! Calls that name several targets (`AssociateWorkspace`'s `ResourceArns`): one row per
//! target in every output, each named, each once however often CloudTrail delivers the event
//! and however many incremental runs see it; and the secrets of the Connect model in no output.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::helpers::{
    EVENT, INSTANCE, associate_workspace, connect_audit, files, snapshot, stderr, trail_file,
    user_id, user_name,
};

fn write_config(root: &Path, incremental: bool) {
    let state = if incremental {
        "[incremental]\nstate = \"state.json\"\nlookback = \"1d\"\n"
    } else {
        ""
    };
    fs::write(
        root.join("connect-audit.toml"),
        format!(
            r#"
            [report]
            trail = "trail"
            snapshot = "snapshot"
            since = "2024-05-01"
            until = "2024-05-10"
            {state}
            [[exporters]]
            type = "jsonl"
            path = "out/audit-{{since}}.jsonl"
            [[exporters]]
            type = "csv"
            path = "out/audit-{{since}}.csv"
            [[exporters]]
            type = "jsonl"
            schema = "ocsf"
            path = "out/ocsf-{{since}}.jsonl"
            [[exporters]]
            type = "html"
            path = "out/audit-{{since}}.html"
            "#
        ),
    )
    .unwrap();
}

fn jsonl(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// (event id, target index) → how often it occurs, over JSON Lines files of audit records.
fn row_counts<'a>(paths: impl IntoIterator<Item = &'a Path>) -> BTreeMap<(String, u64), usize> {
    let mut counts = BTreeMap::new();
    for path in paths {
        for r in jsonl(path) {
            let key = (
                r["event_id"].as_str().unwrap().to_owned(),
                r["target_index"].as_u64().unwrap(),
            );
            *counts.entry(key).or_default() += 1;
        }
    }
    counts
}

#[test]
fn a_workspace_for_25_users_gives_25_named_rows_in_every_output_once_per_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    snapshot(root, 25);
    let event = associate_workspace(EVENT, "2024-05-02T03:04:05Z", 25);
    // Delivered twice, in two files: still 25 rows.
    trail_file(
        &root.join("trail"),
        "02",
        "20240502T0310Z",
        std::slice::from_ref(&event),
    );
    trail_file(&root.join("trail"), "02", "20240502T0325Z", &[event]);
    write_config(root, false);
    let out = connect_audit(root, &["report"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let rows = jsonl(&root.join("out/audit-20240501T000000Z.jsonl"));
    assert_eq!(rows.len(), 25, "{rows:#?}");
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r["event_id"], EVENT);
        assert_eq!(r["target_index"], i, "rows come in request order");
        assert_eq!(r["target_kind"], "user");
        assert_eq!(r["target_id"], user_id(i));
        assert_eq!(r["target_name"], user_name(i));
        assert_eq!(r["name_source"], "snapshot");
        assert_eq!(r["instance_id"], INSTANCE);
    }
    let csv = fs::read_to_string(root.join("out/audit-20240501T000000Z.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header = reader.headers().unwrap().clone();
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let csv_rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(csv_rows.len(), 25);
    for (i, row) in csv_rows.iter().enumerate() {
        assert_eq!(&row[column("target_index")], i.to_string());
        assert_eq!(&row[column("target_name")], user_name(i));
    }
    let ocsf = jsonl(&root.join("out/ocsf-20240501T000000Z.jsonl"));
    let uids: Vec<&str> = ocsf
        .iter()
        .map(|e| e["metadata"]["uid"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..25)
        .map(|i| {
            if i == 0 {
                EVENT.to_owned()
            } else {
                format!("{EVENT}#{i}")
            }
        })
        .collect();
    assert_eq!(
        uids, expected,
        "one OCSF event per target, each its own uid"
    );
    let ocsf_text = fs::read_to_string(root.join("out/ocsf-20240501T000000Z.jsonl")).unwrap();
    let html = fs::read_to_string(root.join("out/audit-20240501T000000Z.html")).unwrap();
    for i in 0..25 {
        assert!(
            ocsf_text.contains(&user_name(i)),
            "OCSF names {}",
            user_name(i)
        );
        assert!(
            html.contains(&user_name(i)),
            "the HTML names {}",
            user_name(i)
        );
    }
    let err = stderr(&out);
    assert!(err.contains("duplicate"), "{err}");
}

#[test]
fn incremental_runs_deliver_each_target_row_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    snapshot(root, 25);
    write_config(root, true);
    let trail = root.join("trail");
    let first = associate_workspace(EVENT, "2024-05-02T03:04:05Z", 25);
    trail_file(&trail, "02", "20240502T0310Z", std::slice::from_ref(&first));
    let run = |until: &str| {
        let out = connect_audit(root, &["report", "--incremental", "--until", until], &[]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    };
    run("2024-05-02T04:00:00Z");
    // Delivered again later, with a second call of three targets.
    let second = associate_workspace(
        "6f8b2a1d-4c3e-4f70-9a8b-1c2d3e4f5a6b",
        "2024-05-02T05:00:00Z",
        3,
    );
    trail_file(&trail, "02", "20240502T0510Z", &[first, second]);
    run("2024-05-02T06:00:00Z");
    run("2024-05-02T07:00:00Z");
    let outputs: Vec<_> = files(&root.join("out"))
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("audit-"))
                && p.extension().is_some_and(|e| e == "jsonl")
        })
        .collect();
    let counts = row_counts(outputs.iter().map(PathBuf::as_path));
    assert_eq!(counts.len(), 28, "{counts:?}");
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
    let state: Value =
        serde_json::from_str(&fs::read_to_string(root.join("state.json")).unwrap()).unwrap();
    let delivered = state["delivered"].as_object().unwrap();
    assert!(delivered.contains_key(EVENT));
    assert!(delivered.contains_key(&format!("{EVENT}#24")));
    assert_eq!(delivered.len(), 28, "{delivered:?}");
}

#[test]
fn a_call_naming_more_targets_than_the_api_accepts_is_a_named_bad_record() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    snapshot(root, 26);
    trail_file(
        &root.join("trail"),
        "02",
        "20240502T0310Z",
        &[associate_workspace(EVENT, "2024-05-02T03:04:05Z", 26)],
    );
    write_config(root, false);
    let out = connect_audit(root, &["report"], &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains(EVENT)
            && err.contains(
                "`requestParameters.ResourceArns` names 26 targets, more than the 25 the Connect API accepts"
            ),
        "{err}"
    );
}
