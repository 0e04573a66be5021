//! Helpers the test modules share: the binary and the fixtures, trail files and the events in
//! them, running the binary and reading what it wrote, and a call naming many targets.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use connect_audit_core::Window;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// The binary and the fixtures

/// The `connect-audit` binary of this build (`scripts/test` builds it, with every other target,
/// before the tests).
pub(super) fn binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = dir.join(format!("connect-audit{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build --workspace --all-targets` first (scripts/test does)",
        bin.display()
    );
    bin
}

/// The fixtures directory, `tests/fixtures/`.
pub(super) fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The report window of the examples ([`connect_audit_tests::WINDOW`]), as seen on
/// 2024-06-01.
pub(super) fn window() -> Window {
    let (since, until) = connect_audit_tests::WINDOW;
    Window::parse(
        Some(since),
        Some(until),
        "2024-06-01T00:00:00Z".parse().unwrap(),
    )
    .unwrap()
}

/// Copies the directory `from` to `to`, recursively.
pub(super) fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The permission bits of a file (`0o600`: owner read and write only).
#[cfg(unix)]
pub(super) fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

// ---------------------------------------------------------------------------------------------
// Trail files

/// `n` `UpdateUserHierarchy` calls numbered from `first`, a second apart from `start`; each
/// request carries `pad` bytes of padding (to make large outputs).
pub(super) fn events(first: usize, n: usize, start: &str, pad: usize) -> Vec<Value> {
    let start: jiff::Timestamp = start.parse().unwrap();
    let padding = "p".repeat(pad);
    (first..first + n)
        .map(|i| {
            let time = start + jiff::SignedDuration::from_secs(i64::try_from(i - first).unwrap());
            json!({
                "eventVersion": "1.09",
                "userIdentity": {
                    "type": "IAMUser",
                    "principalId": "AIDAEXAMPLE",
                    "arn": "arn:aws:iam::111122223333:user/ops-automation",
                    "accountId": "111122223333",
                    "userName": "ops-automation"
                },
                "eventTime": time.to_string(),
                "eventSource": "connect.amazonaws.com",
                "eventName": "UpdateUserHierarchy",
                "awsRegion": "us-east-1",
                "sourceIPAddress": "198.51.100.7",
                "userAgent": "Boto3/1.34.0",
                "requestParameters": {
                    "InstanceId": "11111111-2222-3333-4444-555555555555",
                    "UserId": format!("aaaaaaaa-bbbb-4ccc-8ddd-{i:012}"),
                    "HierarchyGroupId": "99999999-8888-7777-6666-555555555555",
                    "Note": padding
                },
                "responseElements": null,
                "eventID": format!("00000000-0000-4000-8000-{i:012}"),
                "eventType": "AwsApiCall",
                "recipientAccountId": "111122223333"
            })
        })
        .collect()
}

/// Writes a trail file delivered on 2024-05-`day` (`stamp` is its delivery time).
pub(super) fn trail_file(trail: &Path, day: &str, stamp: &str, records: &[Value]) {
    write_trail_file(
        &trail.join(format!(
            "AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/{day}/111122223333_CloudTrail_us-east-1_{stamp}_x.json.gz"
        )),
        records,
    );
}

/// Writes `records` as a gzipped trail file at `path`, creating its folders.
pub(super) fn write_trail_file(path: &Path, records: &[Value]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(json!({ "Records": records }).to_string().as_bytes())
        .unwrap();
    fs::write(path, gz.finish().unwrap()).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Running the binary, and what it wrote

/// Runs the binary as [`command`] sets it up, and waits for it.
pub(super) fn connect_audit(cwd: &Path, args: &[&str], env: &[(&'static str, String)]) -> Output {
    command(cwd, args, env).output().unwrap()
}

/// The binary, to run in `cwd` with `args` and the environment `env`, and none of the caller's
/// `CONNECT_AUDIT_CONFIG`, `CONNECT_AUDIT_PROFILE`, `RUST_LOG` or `AWS_PROFILE`.
pub(super) fn command(cwd: &Path, args: &[&str], env: &[(&'static str, String)]) -> Command {
    let mut command = Command::new(binary());
    command
        .args(args)
        .current_dir(cwd)
        .env_remove("CONNECT_AUDIT_CONFIG")
        .env_remove("CONNECT_AUDIT_PROFILE")
        .env_remove("RUST_LOG")
        .env_remove("AWS_PROFILE")
        .envs(env.iter().map(|(k, v)| (k, v)));
    command
}

/// What a run wrote to its standard error.
pub(super) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every file under `dir`, recursively, sorted.
pub(super) fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(files(&path));
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The texts of the JSON Lines files under `dir`, as written. A writer that is still running
/// keeps its writes in progress beside them (`.<name>.<random>.tmp`, renamed when done); those
/// are not `.jsonl` files and are skipped.
pub(super) fn jsonl_texts(dir: &Path) -> Vec<Vec<u8>> {
    files(dir)
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .map(|p| fs::read(p).unwrap())
        .collect()
}

/// The row key of an audit record in its JSON form: the event id, `#<target_index>` after it
/// for the second and later targets of one call (`AuditRecord::row_key`).
pub(super) fn row_key(record: &Value) -> String {
    let id = record["event_id"].as_str().unwrap();
    match record["target_index"].as_u64().unwrap() {
        0 => id.to_owned(),
        index => format!("{id}#{index}"),
    }
}

/// How often each row key ([`row_key`]) occurs in JSON Lines texts.
pub(super) fn id_counts<'a>(texts: impl IntoIterator<Item = &'a [u8]>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for text in texts {
        for line in String::from_utf8_lossy(text).lines() {
            let record: Value = serde_json::from_str(line).unwrap();
            *counts.entry(row_key(&record)).or_default() += 1;
        }
    }
    counts
}

/// The rows of the JSON block of a report: the column values of each record.
pub(super) fn embedded_rows(html: &str) -> Vec<Vec<Option<String>>> {
    let open = r#"<script type="application/json" id="audit-records">"#;
    let start = html.find(open).expect("the JSON block") + open.len();
    let end = start + html[start..].find("</script>").unwrap();
    serde_json::from_str(&html[start..end]).unwrap()
}

// ---------------------------------------------------------------------------------------------
// A call naming many targets (`AssociateWorkspace`)

/// The instance of the users the call names.
pub(super) const INSTANCE: &str = "11111111-2222-3333-4444-555555555555";
const WORKSPACE: &str = "f5111754-7ba5-4c83-b1d7-9b93cca93bf2";
/// The `eventID` of the call.
pub(super) const EVENT: &str = "5e7a1f0c-3b2d-4e6f-8a9b-0c1d2e3f4a5b";

/// The id of user `i`.
pub(super) fn user_id(i: usize) -> String {
    format!("aaaaaaaa-bbbb-4ccc-8ddd-{i:012}")
}

/// The username of user `i` in [`snapshot`].
pub(super) fn user_name(i: usize) -> String {
    format!("agent.{i:02}")
}

fn agent_arn(i: usize) -> String {
    format!(
        "arn:aws:connect:us-east-1:111122223333:instance/{INSTANCE}/agent/{}",
        user_id(i)
    )
}

/// The admin-website user who makes the calls.
const ADMIN: &str = "8698e95f-b8d0-48ea-97da-1b729ffe1d99";

/// A snapshot store naming users 0..n and the admin.
pub(super) fn snapshot(root: &Path, n: usize) {
    let users = root.join("snapshot/users");
    fs::create_dir_all(&users).unwrap();
    for other in ["security-profiles", "routing-profiles", "hierarchy-groups"] {
        fs::create_dir_all(root.join("snapshot").join(other)).unwrap();
    }
    let ids = (0..n).map(|i| (user_id(i), user_name(i)));
    for (id, name) in ids.chain([(ADMIN.to_owned(), "alice.admin".to_owned())]) {
        let arn = format!("arn:aws:connect:us-east-1:111122223333:instance/{INSTANCE}/agent/{id}");
        let user = json!({
            "Arn": arn, "Id": id, "Username": name,
            "InstanceId": INSTANCE, "LastModifiedTime": "2024-04-01T00:00:00Z",
            "FirstSeen": "2024-04-01T00:00:00Z", "LastSeen": "2024-05-01T00:00:00Z", "Deleted": false
        });
        fs::write(users.join(format!("{id}.json")), user.to_string()).unwrap();
    }
}

/// `AssociateWorkspace` of `n` users from the admin website, as CloudTrail records it.
pub(super) fn associate_workspace(id: &str, time: &str, n: usize) -> Value {
    let admin = ADMIN;
    json!({
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": format!("AROAEXAMPLECONNECT:{admin}"),
            "arn": format!("arn:aws:sts::111122223333:assumed-role/AWSServiceRoleForAmazonConnect_Dw5sZ7/{admin}"),
            "accountId": "111122223333",
            "sessionContext": {"sessionIssuer": {"type": "Role", "userName": "AWSServiceRoleForAmazonConnect_Dw5sZ7"}},
            "invokedBy": "connect.amazonaws.com"
        },
        "eventTime": time,
        "eventSource": "connect.amazonaws.com",
        "eventName": "AssociateWorkspace",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "connect.amazonaws.com",
        "userAgent": "connect.amazonaws.com",
        "requestParameters": {
            "ResourceArns": (0..n).map(agent_arn).collect::<Vec<_>>(),
            "WorkspaceId": WORKSPACE,
            "InstanceId": INSTANCE
        },
        "responseElements": null,
        "requestID": "0c9e2a4b-1f3d-4e5a-9b8c-7d6e5f4a3b2c",
        "eventID": id,
        "readOnly": false,
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": "111122223333",
        "eventCategory": "Management"
    })
}
