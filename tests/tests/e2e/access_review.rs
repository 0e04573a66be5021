//! Issue I's access review, end to end, on issue H's story (three snapshot runs of the fake
//! Connect and a trail between and after them) plus a fourth run after mika was deleted in
//! Connect: `access-review` as of three times (before the trail's changes, between them, after
//! them), on the local engine and on Athena, each compared with its golden CSV; the other
//! outputs (JSON Lines, Parquet, HTML, an `s3://` object in Garage) read back.
//!
//! The golden files are `tests/fixtures/golden/access-review-*.csv`. To accept an intended
//! change: `UPDATE_GOLDEN=1 cargo test -p connect-audit-tests --test e2e access_review::` and
//! review the diff.

use std::fs;
use std::path::{Path, PathBuf};

use arrow_array::Array as _;
use arrow_array::cast::AsArray as _;
use arrow_array::types::TimestampMicrosecondType;
use connect_audit_core::access::ENTITLEMENT_COLUMNS;
use connect_audit_core::location::Store;
use connect_audit_tests::fake_athena::FakeAthena;
use connect_audit_tests::fake_connect::FakeConnect;
use connect_audit_tests::garage::Garage;
use serde_json::Value;

use super::story::{
    ACCOUNT, INSTANCE, TEMP_USER, athena_init, cast, run_binary, snapshots, write_trail,
};

/// The review period's start of every review: the first snapshot run.
const SINCE: &str = "2024-05-01T00:00:00Z";

/// The three review times: before the trail's first change, between its changes (the temp
/// user created and not deleted yet), after them.
const REVIEWS: [(&str, &str); 3] = [
    ("before", "2024-05-01T06:00:00Z"),
    ("between", "2024-05-02T12:00:00Z"),
    ("after", "2024-05-05T00:00:00Z"),
];

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("fixtures/golden/access-review-{name}.csv"))
}

/// Compares `csv` with the golden file of `name` (or, with `UPDATE_GOLDEN=1`, writes it).
fn check_golden(name: &str, csv: &str) {
    let path = golden(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        fs::write(&path, csv).unwrap();
        return;
    }
    let want = fs::read_to_string(&path).unwrap_or_default();
    assert!(
        csv == want,
        "the access review `{name}` differs from {}:\n--- got\n{csv}\n--- want\n{want}\n\
         If the change is intended: UPDATE_GOLDEN=1 cargo test -p connect-audit-tests --test e2e access_review::",
        path.display()
    );
}

/// The rows of a review's CSV, as column → value maps, keyed by username.
fn by_user(
    csv: &str,
) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header, ENTITLEMENT_COLUMNS, "the CSV header");
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            let row: std::collections::BTreeMap<String, String> = header
                .iter()
                .cloned()
                .zip(r.iter().map(str::to_owned))
                .collect();
            (row["username"].clone(), row)
        })
        .collect()
}

/// The local engine's review as of `at`, into `output` (its format from the extension);
/// gives the summary on stderr.
fn local(root: &Path, env: &[(&str, String)], at: &str, output: &str) -> String {
    let run = review(root, env, at, &["--output", output]);
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    stderr
}

/// `access-review` of the story's trail and store as of `at` (period from [`SINCE`]), with
/// `extra` arguments.
fn review(root: &Path, env: &[(&str, String)], at: &str, extra: &[&str]) -> std::process::Output {
    let (trail, store) = (root.join("trail"), root.join("store"));
    let mut args = vec![
        "access-review",
        "--trail",
        trail.to_str().unwrap(),
        "--snapshot",
        store.to_str().unwrap(),
        "--at",
        at,
        "--since",
        SINCE,
    ];
    args.extend_from_slice(extra);
    run_binary(root, env, &args)
}

/// The Athena engine's review as of `at`, as CSV: the fake Athena reads the trail and the
/// store as two buckets.
fn athena(root: &Path, at: &str) -> (String, String) {
    let fake = FakeAthena::start();
    fake.mount_bucket("trail-bucket", &root.join("trail"));
    fake.mount_bucket("snap-bucket", &root.join("store"));
    let config = root.join("athena.toml");
    let out = root.join("athena-review.csv");
    fs::write(
        &config,
        format!(
            r#"[report]
snapshot = "s3://snap-bucket"

[access_review]
at = "{at}"
since = "{SINCE}"

[[access_review.exporters]]
type = "csv"
path = "{}"

[athena]
trail = "s3://trail-bucket"
accounts = ["{ACCOUNT}"]
regions = ["us-east-1"]
output_location = "s3://athena-results/connect-audit/"
poll_max_ms = 100
"#,
            out.display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let env = athena_init(root, &fake, config);
    let run = run_binary(
        root,
        &env,
        &["access-review", "--engine", "athena", "--config", config],
    );
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    (fs::read_to_string(out).unwrap(), stderr)
}

#[test]
fn access_reviews_of_the_story_at_three_times_on_both_engines() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(snapshots(&Store::local(root.join("store")), true));
    let c = cast(&FakeConnect::start());
    write_trail(root, &c);

    let mut reviews = std::collections::BTreeMap::new();
    for (name, at) in REVIEWS {
        let out = root.join(format!("review-{name}.csv"));
        let summary = local(root, &[], at, out.to_str().unwrap());
        let csv = fs::read_to_string(&out).unwrap();
        let (on_athena, athena_summary) = athena(root, at);
        assert_eq!(
            csv, on_athena,
            "the engines differ as of {at}: {athena_summary}"
        );
        check_golden(name, &csv);
        reviews.insert(name, (csv, summary));
    }

    // Before the trail's changes: the first snapshot's users, each profile held before the
    // trail read (it starts at that snapshot).
    let (before, summary) = &reviews["before"];
    let rows = by_user(before);
    assert_eq!(
        rows.keys().collect::<Vec<_>>(),
        [&c.alice.username, &c.kenji.username, &c.mika.username],
        "{summary}"
    );
    for row in rows.values() {
        assert!(
            row["grants"]
                .split("; ")
                .all(|g| g.ends_with(": before trail")),
            "{row:?}"
        );
        assert_eq!(row["snapshot_at"], "2024-05-01T00:00:00Z");
        assert_eq!(row["trail_from"], SINCE);
        assert_eq!(row["decision"], "", "the reviewer's column, empty");
    }
    assert_eq!(rows[&c.alice.username]["privileged"], "true");
    assert_eq!(rows[&c.kenji.username]["privileged"], "false");

    // Between: kenji was given Admin by alice (event 1); alice gave herself
    // CallCenterManager (event 9, a self-grant); the temp user is in (created by the trail,
    // deleted after); mika is in and marked (a later snapshot found her gone); mika's
    // sign-in is counted.
    let (between, summary) = &reviews["between"];
    let rows = by_user(between);
    let kenji = &rows[&c.kenji.username];
    assert_eq!(
        kenji["grants"],
        format!(
            "Admin: granted by {} at 2024-05-01T09:00:00Z (event 00000000-0000-4000-8000-000000000001); Agents: before trail",
            c.alice.username
        ),
        "{kenji:?}"
    );
    assert_eq!(kenji["privileged"], "true");
    assert_eq!(kenji["privileged_profiles"], "Admin");
    let alice = &rows[&c.alice.username];
    assert_eq!(
        alice["grants"],
        format!(
            "Admin: before trail; CallCenterManager: granted by {} at 2024-05-02T10:00:00Z (event 00000000-0000-4000-8000-000000000009)",
            c.alice.username
        ),
        "a self-grant: {alice:?}"
    );
    assert_eq!(alice["last_change_event"], "UpdateUserSecurityProfiles");
    let temp = &rows["temp.contractor"];
    assert_eq!(temp["user_id"], TEMP_USER);
    assert_eq!(temp["snapshot_at"], "", "no snapshot saw it");
    assert!(temp["grants"].starts_with("Agents: granted by breakglass at 2024-05-02T09:00:00Z"));
    let mika = &rows[&c.mika.username];
    assert_eq!(
        mika["deleted_after"], "2024-05-04T00:00:00Z",
        "in, and marked"
    );
    assert_eq!(mika["sign_ins_in_period"], "1");
    assert_eq!(mika["last_sign_in"], "2024-05-01T15:00:00Z");
    assert_eq!(
        mika["email"], "mika.new@example.net",
        "the snapshot's, not the trail's placeholder"
    );
    assert!(
        summary.contains(&format!(
            "instance {INSTANCE}: 4 users, 2 privileged holders, 3 grants and 1 self-grants in the period, 3 users without a recorded sign-in in the period, 1 created in the period, 1 deleted after the review time"
        )),
        "{summary}"
    );

    // After: kenji lost Admin (event 10), the temp user was deleted (event 8), mika is gone.
    let (after, summary) = &reviews["after"];
    let rows = by_user(after);
    assert_eq!(
        rows.keys().collect::<Vec<_>>(),
        [&c.alice.username, &c.kenji.username],
        "{summary}"
    );
    let kenji = &rows[&c.kenji.username];
    assert_eq!(kenji["security_profiles"], "Agents");
    assert_eq!(kenji["privileged"], "false");
    assert_eq!(
        kenji["last_change_event_id"], "00000000-0000-4000-8000-000000000012",
        "the last change applied: the routing profile of 05-03 14:00"
    );
    assert!(
        summary.contains(&format!(
            "instance {INSTANCE}: 2 users, 1 privileged holders, 3 grants and 1 self-grants in the period"
        )),
        "{summary}"
    );
}

#[test]
fn a_review_goes_to_jsonl_parquet_html_and_s3_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let garage = Garage::shared();
    let prefix = garage.unique_prefix("review");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(snapshots(&Store::local(root.join("store")), true));
    let c = cast(&FakeConnect::start());
    write_trail(root, &c);
    let at = REVIEWS[1].1;
    let csv_path = root.join("review.csv");
    local(root, &[], at, csv_path.to_str().unwrap());
    let csv = fs::read_to_string(&csv_path).unwrap();
    let rows = by_user(&csv);

    // JSON Lines: one object per user, its profiles with their grants.
    let jsonl = root.join("review.jsonl");
    local(root, &[], at, jsonl.to_str().unwrap());
    let lines: Vec<Value> = fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), rows.len());
    let kenji = lines
        .iter()
        .find(|l| l["username"] == c.kenji.username.as_str())
        .unwrap();
    let admin = kenji["security_profiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Admin")
        .unwrap();
    assert_eq!(admin["grant"]["basis"], "trail");
    assert_eq!(admin["grant"]["by"], c.alice.username.as_str());
    assert_eq!(admin["privileged"], true);

    // Parquet: the same users; profiles as a list of structs, times as timestamps.
    let parquet = root.join("review.parquet");
    local(root, &[], at, parquet.to_str().unwrap());
    let file = fs::File::open(&parquet).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<_> = reader.map(Result::unwrap).collect();
    let total: usize = batches.iter().map(arrow_array::RecordBatch::num_rows).sum();
    assert_eq!(total, rows.len());
    let batch = &batches[0];
    let usernames = batch.column_by_name("username").unwrap().as_string::<i32>();
    let i = (0..batch.num_rows())
        .find(|&i| usernames.value(i) == c.kenji.username)
        .unwrap();
    let profiles = batch
        .column_by_name("security_profiles")
        .unwrap()
        .as_list::<i32>()
        .value(i);
    let profiles = profiles.as_struct();
    let names = profiles.column_by_name("name").unwrap().as_string::<i32>();
    let basis = profiles
        .column_by_name("grant_basis")
        .unwrap()
        .as_string::<i32>();
    let granted_at = profiles
        .column_by_name("granted_at")
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>();
    let admin = (0..profiles.len())
        .find(|&k| names.value(k) == "Admin")
        .unwrap();
    assert_eq!(basis.value(admin), "trail");
    assert_eq!(
        granted_at.value(admin),
        "2024-05-01T09:00:00Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_microsecond()
    );

    // HTML: every user in the JSON block, as in the CSV.
    let html = root.join("review.html");
    local(root, &[], at, html.to_str().unwrap());
    let page = fs::read_to_string(&html).unwrap();
    let block = review_rows(&page);
    assert_eq!(block.len(), rows.len());
    let user = ENTITLEMENT_COLUMNS
        .iter()
        .position(|c| *c == "username")
        .unwrap();
    for r in &block {
        let name = r[user].clone().unwrap();
        for (k, column) in ENTITLEMENT_COLUMNS.iter().enumerate() {
            assert_eq!(
                r[k].clone().unwrap_or_default(),
                rows[&name][*column],
                "{name} {column}"
            );
        }
    }

    // Limited to another instance: no row of this one.
    let limited = review(
        root,
        &[],
        at,
        &["--instance-ids", "6861072c-1e75-4a93-8661-abe05b1b90b4"],
    );
    assert_eq!(limited.status.code(), Some(0));
    let stdout = String::from_utf8(limited.stdout).unwrap();
    assert_eq!(
        stdout.lines().count(),
        1,
        "the header only, on stdout: {stdout}"
    );

    // An s3:// output: the same bytes as the local CSV.
    let url = format!("s3://{}/{prefix}/review.csv", garage.bucket());
    let env = garage.aws_env();
    let summary = local(root, &env, at, &url);
    assert!(summary.contains(&format!("upload:  {url}")), "{summary}");
    let object = runtime.block_on(async {
        garage
            .client()
            .get_object()
            .bucket(garage.bucket())
            .key(format!("{prefix}/review.csv"))
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes()
    });
    assert_eq!(std::str::from_utf8(&object).unwrap(), csv);
}

/// The rows of the JSON block of an access review's page.
pub(super) fn review_rows(html: &str) -> Vec<Vec<Option<String>>> {
    let open = r#"<script type="application/json" id="review-records">"#;
    let start = html.find(open).expect("the JSON block") + open.len();
    let end = start + html[start..].find("</script>").unwrap();
    serde_json::from_str(&html[start..end]).unwrap()
}

/// A described user of the hostile store.
fn user_object(id: &str, username: &str, first: &str, email: &str, profiles: &[&str]) -> Value {
    serde_json::json!({
        "Arn": format!("arn:aws:connect:us-east-1:{ACCOUNT}:instance/{INSTANCE}/agent/{id}"),
        "Id": id,
        "Username": username,
        "InstanceId": INSTANCE,
        "SecurityProfileIds": profiles,
        "RoutingProfileId": "99999999-0000-4000-8000-000000000001",
        "FirstName": first,
        "LastName": "Tanaka",
        "Email": email,
        "Proficiencies": [],
        "FirstSeen": "2024-04-01T00:00:00Z",
        "LastSeen": "2024-05-01T00:00:00Z",
        "Deleted": false
    })
}

#[test]
fn the_review_page_shows_every_user_offline_with_hostile_values_as_text_in_chromium() {
    use super::helpers::write_trail_file;
    use super::html::{PageServer, attribute, open_in_chromium};
    let server = PageServer::start();
    let base = server.base();
    let pwned = |what: &str| format!("{base}/pwned-{what}");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let store = root.join("store");
    for folder in ["users", "security-profiles", "routing-profiles"] {
        fs::create_dir_all(store.join(folder)).unwrap();
    }
    let admin = "88888888-0000-4000-8000-000000000001";
    let agent = "88888888-0000-4000-8000-000000000002";
    let profile = |id: &str, name: &str, permissions: &[&str]| {
        serde_json::json!({
            "Id": id, "Name": name, "Permissions": permissions,
            "Arn": format!("arn:aws:connect:us-east-1:{ACCOUNT}:instance/{INSTANCE}/security-profile/{id}"),
            "LastSeen": "2024-05-01T00:00:00Z"
        })
    };
    fs::write(
        store.join(format!("security-profiles/{admin}.json")),
        profile(admin, "Admin", &["Users.Edit"]).to_string(),
    )
    .unwrap();
    fs::write(
        store.join(format!("security-profiles/{agent}.json")),
        profile(
            agent,
            &format!("</script><script>fetch('{}')</script>", pwned("profile")),
            &[],
        )
        .to_string(),
    )
    .unwrap();
    let users = [
        user_object(
            "77777777-0000-4000-8000-000000000001",
            &format!("<img src=x onerror=fetch('{}')>", pwned("username")),
            &format!("<svg onload=fetch('{}')>", pwned("first")),
            &format!("\"><iframe src='{}'>", pwned("email")),
            &[agent],
        ),
        user_object(
            "77777777-0000-4000-8000-000000000002",
            "kenji",
            "Kenji",
            "kenji@example.com",
            &[admin, agent],
        ),
        user_object(
            "77777777-0000-4000-8000-000000000003",
            "=HYPERLINK(\"http://evil\")",
            "Mika",
            "mika@example.com",
            &[],
        ),
    ];
    for u in &users {
        fs::write(
            store.join(format!("users/{}.json", u["Id"].as_str().unwrap())),
            u.to_string(),
        )
        .unwrap();
    }
    // A grant in the trail by an actor with a hostile name.
    write_trail_file(
        &root.join(format!(
            "trail/AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2024/05/02/{ACCOUNT}_CloudTrail_us-east-1_20240502T0905Z_x.json.gz"
        )),
        &[serde_json::json!({
            "eventVersion": "1.09",
            "userIdentity": {
                "type": "IAMUser", "principalId": "AIDAEXAMPLE", "accountId": ACCOUNT,
                "arn": format!("arn:aws:iam::{ACCOUNT}:user/ops"),
                "userName": format!("<img src=x onerror=fetch('{}')>", pwned("actor"))
            },
            "eventTime": "2024-05-02T09:00:00Z",
            "eventSource": "connect.amazonaws.com",
            "eventName": "UpdateUserSecurityProfiles",
            "awsRegion": "us-east-1",
            "sourceIPAddress": "203.0.113.10",
            "userAgent": "aws-cli/2.15.40",
            "requestParameters": {
                "SecurityProfileIds": [admin, agent],
                "UserId": "77777777-0000-4000-8000-000000000001",
                "InstanceId": INSTANCE
            },
            "responseElements": null,
            "requestID": "10000000-0000-4000-8000-000000000001",
            "eventID": "00000000-0000-4000-8000-000000000001",
            "readOnly": false,
            "eventType": "AwsApiCall",
            "managementEvent": true,
            "recipientAccountId": ACCOUNT,
            "eventCategory": "Management"
        })],
    );
    let out = root.join("out/review.html");
    local(root, &[], "2024-05-08T00:00:00Z", out.to_str().unwrap());
    let page = fs::read_to_string(&out).unwrap();
    assert_eq!(review_rows(&page).len(), users.len());

    let (dom, screenshot) = open_in_chromium(&server, &page, "access-review", (1400, 1400));
    let shots = screenshot.parent().unwrap().to_owned();

    // The script ran and rendered one row per user, each with an empty decision.
    let count = users.len().to_string();
    assert_eq!(attribute(&dom, "data-records"), count);
    assert_eq!(attribute(&dom, "data-loaded"), count);
    assert_eq!(attribute(&dom, "data-rendered"), count);
    assert_eq!(dom.matches("<tr class=\"user").count(), users.len());
    assert_eq!(
        dom.matches("<tr class=\"user privileged").count(),
        2,
        "kenji, holding Admin, and the user the trail gave it"
    );
    assert_eq!(
        dom.matches("<select aria-label=\"Decision for").count(),
        users.len()
    );
    // The header: the review's time, period and summary.
    assert!(
        dom.contains(r#"<dd id="review-at">2024-05-08 00:00:00</dd>"#),
        "{dom}"
    );
    assert!(dom.contains(&format!(r#"<tr data-instance="{INSTANCE}">"#)));
    // No value became markup, and the hostile ones are on the page as text.
    for element in ["<img", "<iframe", "<svg onload"] {
        assert!(
            !dom.contains(element),
            "{element} became live: see {}",
            shots.display()
        );
    }
    assert_eq!(
        dom.matches("<script").count(),
        2,
        "the JSON block and the page's script"
    );
    assert!(
        dom.contains("&lt;img src=x onerror=fetch("),
        "the username as text"
    );
    assert!(
        dom.contains("granted by &lt;img src=x"),
        "the grantor as text"
    );
    assert!(
        dom.contains("&lt;/script&gt;&lt;script&gt;fetch("),
        "the profile name as text"
    );
    // The browser asked for the page and for nothing else.
    let seen = server.seen();
    assert_eq!(
        seen,
        ["GET /report.html", "GET /report.html"],
        "requests: {seen:?}"
    );
    let png = fs::read(&screenshot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000);

    // The CSV of the same review neutralises formula cells.
    let csv_path = root.join("out/review.csv");
    local(
        root,
        &[],
        "2024-05-08T00:00:00Z",
        csv_path.to_str().unwrap(),
    );
    let csv = fs::read_to_string(&csv_path).unwrap();
    assert!(csv.contains(r#","'=HYPERLINK(""http://evil"")","#), "{csv}");
}
