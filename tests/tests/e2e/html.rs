//! The HTML report: built by the binary from the examples (plus hostile records), opened in a
//! real headless Chromium from a local HTTP server that records every request. The table must
//! show every record, the page must fetch nothing but itself, and no value from the trail may
//! become markup. A screenshot is kept under `<target dir>/html-report/`.
//!
//! Chromium is Debian's `chromium` package (`/usr/bin/chromium`, or `$CHROMIUM`);
//! `scripts/test` installs it when missing.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use connect_audit_config::{ExporterSpec, HtmlSpec};
use connect_audit_core::AuditRecord;
use connect_audit_core::record::COLUMNS;
use serde_json::{Value, json};

use super::helpers::{binary, copy_dir, embedded_rows};

const ACCOUNT: &str = "111122223333";
const INSTANCE: &str = "6762b34f-4e26-4a8e-a032-35a1e58e1b1c";
const DAY: &str = "AWSLogs/111122223333/CloudTrail/ap-northeast-1/2024/05/03";
const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/golden/examples.jsonl"
);
/// A Chromium run that takes longer than this is a hang.
const BROWSER_LIMIT: Duration = Duration::from_mins(2);

/// Every request the page server saw, as `METHOD /path?query`.
type Seen = Arc<Mutex<Vec<String>>>;

/// A local HTTP server that serves one page at `/report.html`, answers 404 to anything else,
/// and records every request. It stops when dropped, with its runtime.
pub(super) struct PageServer {
    _runtime: tokio::runtime::Runtime,
    addr: SocketAddr,
    page: Arc<Mutex<Vec<u8>>>,
    seen: Seen,
}

impl PageServer {
    pub(super) fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let page = Arc::new(Mutex::new(Vec::new()));
        let seen = Seen::default();
        let app = Router::new()
            .fallback(serve)
            .with_state((Arc::clone(&page), Arc::clone(&seen)));
        runtime.spawn(async move { axum::serve(listener, app).await });
        Self {
            _runtime: runtime,
            addr,
            page,
            seen,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub(super) fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(super) fn set_page(&self, bytes: Vec<u8>) {
        *self.page.lock().unwrap_or_else(PoisonError::into_inner) = bytes;
    }

    pub(super) fn seen(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

async fn serve(
    State((page, seen)): State<(Arc<Mutex<Vec<u8>>>, Seen)>,
    method: Method,
    uri: Uri,
) -> Response {
    seen.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(format!("{method} {uri}"));
    if uri.path() != "/report.html" {
        return StatusCode::NOT_FOUND.into_response();
    }
    let body = page.lock().unwrap_or_else(PoisonError::into_inner).clone();
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

fn chromium() -> PathBuf {
    let path =
        std::env::var_os("CHROMIUM").map_or_else(|| "/usr/bin/chromium".into(), PathBuf::from);
    assert!(
        path.is_file(),
        "{} is missing: the browser tests need Debian's chromium (scripts/test installs it: apt-get install -y chromium)",
        path.display()
    );
    path
}

/// Runs headless Chromium on `url` with `extra` flags and a fresh profile; returns stdout.
pub(super) fn run_chromium(url: &str, extra: &[String]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait()));
    let Ok(status) = rx.recv_timeout(BROWSER_LIMIT) else {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        panic!("chromium did not finish within {BROWSER_LIMIT:?}");
    };
    let status = status.unwrap();
    let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
    assert!(status.success(), "chromium failed ({status}): {stderr}");
    stdout
}

/// Serves `page` from `server` and opens it in Chromium twice: once for its DOM after the
/// script ran, once for a screenshot `window` wide and tall. Keeps the page, the DOM and the
/// screenshot under `<target dir>/html-report/<name>.*`; gives the DOM and the screenshot.
pub(super) fn open_in_chromium(
    server: &PageServer,
    page: &str,
    name: &str,
    window: (u32, u32),
) -> (String, PathBuf) {
    server.set_page(page.as_bytes().to_vec());
    let url = format!("{}/report.html", server.base());
    let dom = run_chromium(&url, &["--dump-dom".to_owned()]);
    let shots = target_dir().join("html-report");
    fs::create_dir_all(&shots).unwrap();
    let screenshot = shots.join(format!("{name}.png"));
    let _ = fs::remove_file(&screenshot);
    run_chromium(
        &url,
        &[
            format!("--screenshot={}", screenshot.display()),
            format!("--window-size={},{}", window.0, window.1),
        ],
    );
    fs::write(shots.join(format!("{name}.html")), page).unwrap();
    fs::write(shots.join(format!("{name}.dom.html")), &dom).unwrap();
    (dom, screenshot)
}

/// The directory of this build's artefacts: `target/` of the workspace, or `$CARGO_TARGET_DIR`
/// (the test binary is `<target>/debug/deps/e2e-…`).
pub(super) fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_owned()
}

/// CloudTrail records whose values would fetch `<base>/pwned-…` if any became markup, a URL
/// or style, or ended the JSON block.
fn hostile_records(base: &str) -> Vec<Value> {
    let iam = |user: &str| {
        json!({"type": "IAMUser", "principalId": "AIDAHOSTILE", "userName": user,
               "arn": format!("arn:aws:iam::{ACCOUNT}:user/{user}"), "accountId": ACCOUNT})
    };
    let event = |id: &str, name: &str, time: &str, who: Value, req: Value, resp: Value| {
        json!({
            "eventVersion": "1.09", "userIdentity": who, "eventTime": time,
            "eventSource": "connect.amazonaws.com", "eventName": name,
            "awsRegion": "ap-northeast-1",
            "sourceIPAddress": format!("\"><img src={base}/pwned-ip onerror=\"fetch('{base}/pwned-onerror')\">"),
            "userAgent": format!("javascript:fetch('{base}/pwned-js')"),
            "requestParameters": req, "responseElements": resp,
            "eventID": id, "eventType": "AwsApiCall", "recipientAccountId": ACCOUNT
        })
    };
    let mut grant = event(
        "0badc0de-0000-4000-8000-000000000001",
        "UpdateUserSecurityProfiles",
        "2024-05-03T04:00:00Z",
        iam(&format!("<script>fetch('{base}/pwned-script')</script>")),
        json!({"InstanceId": INSTANCE,
               "UserId": format!("<img src={base}/pwned-target>"),
               "SecurityProfileIds": [format!("</script><script>fetch('{base}/pwned-json')</script>"),
                                      "\u{2028}<!--"]}),
        Value::Null,
    );
    grant["errorCode"] = json!(format!("<svg onload=\"fetch('{base}/pwned-svg')\">"));
    grant["errorMessage"] = json!(format!("<iframe src=\"{base}/pwned-iframe\"></iframe>"));
    let create = event(
        "0badc0de-0000-4000-8000-000000000002",
        "CreateUser",
        "2024-05-03T05:00:00Z",
        iam(&format!(
            "<style>body{{background:url({base}/pwned-style)}}</style>"
        )),
        json!({"InstanceId": INSTANCE,
               "Username": format!("<a href=\"javascript:fetch('{base}/pwned-href')\">x</a>")}),
        json!({"UserId": "0badc0de-0000-4000-8000-0000000000aa",
               "UserArn": format!("arn:aws:connect:ap-northeast-1:{ACCOUNT}:instance/{INSTANCE}/agent/0badc0de-0000-4000-8000-0000000000aa")}),
    );
    vec![grant, create]
}

fn write_gz(path: &Path, value: &Value) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(value.to_string().as_bytes()).unwrap();
    fs::write(path, gz.finish().unwrap()).unwrap();
}

/// The values of attribute `name` in `html`, in order.
pub(super) fn attributes(html: &str, name: &str) -> Vec<String> {
    let needle = format!(" {name}=\"");
    html.match_indices(&needle)
        .map(|(at, _)| {
            let rest = &html[at + needle.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

pub(super) fn attribute(html: &str, name: &str) -> String {
    let values = attributes(html, name);
    assert_eq!(values.len(), 1, "one {name} in the DOM: {values:?}");
    values[0].clone()
}

#[test]
fn examples_report_renders_every_record_offline_in_chromium() {
    let server = PageServer::start();
    let base = server.base();
    let dir = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    copy_dir(&repo.join("examples"), &dir.path().join("examples"));
    let hostile = hostile_records(&base);
    write_gz(
        &dir.path().join("examples/trail").join(DAY).join(format!(
            "{ACCOUNT}_CloudTrail_ap-northeast-1_20240503T0600Z_hostile.json.gz"
        )),
        &json!({ "Records": hostile }),
    );
    let out = Command::new(binary())
        .args([
            "report",
            "--config",
            "examples/demo.toml",
            "--format",
            "html",
        ])
        .args(["--output", "out/audit.html"])
        .current_dir(dir.path())
        .env_remove("CONNECT_AUDIT_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let page = fs::read_to_string(dir.path().join("out/audit.html")).unwrap();

    // What must be in the table: the examples' records and the hostile ones.
    let mut expected: BTreeSet<String> = fs::read_to_string(GOLDEN)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<AuditRecord>(l)
                .unwrap()
                .row_key()
                .into_owned()
        })
        .collect();
    let golden = expected.len();
    for record in &hostile {
        expected.insert(record["eventID"].as_str().unwrap().to_owned());
    }
    assert_eq!(expected.len(), golden + hostile.len());
    let rows = embedded_rows(&page);
    let id_column = COLUMNS.iter().position(|c| *c == "event_id").unwrap();
    let index_column = COLUMNS.iter().position(|c| *c == "target_index").unwrap();
    let embedded: BTreeSet<String> = rows
        .iter()
        .map(|r| {
            let id = r[id_column].clone().unwrap();
            match r[index_column].as_deref() {
                Some("0") => id,
                Some(index) => format!("{id}#{index}"),
                None => panic!("no target_index in {r:?}"),
            }
        })
        .collect();
    assert_eq!(embedded, expected, "the JSON block holds every record");

    let (dom, screenshot) = open_in_chromium(&server, &page, "examples", (1400, 4000));
    let shots = screenshot.parent().unwrap().to_owned();

    // The script ran (it writes these) and rendered one row per record: all fit on page 1.
    let count = expected.len().to_string();
    assert_eq!(attribute(&dom, "data-records"), count, "the header's count");
    assert_eq!(
        attribute(&dom, "data-loaded"),
        count,
        "records the script parsed"
    );
    assert_eq!(attribute(&dom, "data-rendered"), count, "rows on the page");
    let ids = attributes(&dom, "data-event-id");
    let indexes = attributes(&dom, "data-target-index");
    assert_eq!(ids.len(), indexes.len());
    let shown: BTreeSet<String> = ids
        .into_iter()
        .zip(indexes)
        .map(|(id, index)| {
            if index == "0" {
                id
            } else {
                format!("{id}#{index}")
            }
        })
        .collect();
    assert_eq!(shown, expected, "one row per record, each row key once");
    assert_eq!(dom.matches("<tr class=\"event").count(), expected.len());
    assert_eq!(
        dom.matches("<tr class=\"event failed\"").count(),
        2,
        "the example's AccessDenied and the hostile failed call are marked"
    );
    let render_ms: f64 = attribute(&dom, "data-render-ms").parse().unwrap();
    assert!(render_ms > 0.0);
    // The header says what the trail cannot show: admin-website changes CloudTrail never got.
    let header = &dom[dom.find("<header>").unwrap()..dom.find("</header>").unwrap()];
    assert!(
        header.contains(r#"<p class="note" id="coverage">"#)
            && header.contains("This report holds what CloudTrail recorded")
            && header.contains("user hierarchy, agent status and prompts")
            && header.contains("only when made through the API or CLI"),
        "the coverage note is in the header: {header}"
    );
    // Oldest first.
    let table = &dom[dom.find(r#"<table id="events""#).unwrap()..];
    let times: Vec<jiff::Timestamp> = table
        .match_indices(r#"<td class="time">"#)
        .map(|(at, open)| {
            let rest = &table[at + open.len()..];
            rest[..rest.find('<').unwrap()]
                .replace(' ', "T")
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(times.len(), expected.len());
    assert!(times.is_sorted(), "rows in time order: {times:?}");

    // No value became markup: no element the payloads would create exists, the only scripts
    // are the page's two, and the payloads are on the page as text.
    for element in ["<img", "<iframe", "<svg onload", "<a href", "<style>body"] {
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
    assert_eq!(dom.matches("<style").count(), 1);
    assert!(
        dom.contains("&lt;script&gt;fetch("),
        "the hostile actor is shown as text"
    );
    assert!(
        dom.contains("&lt;svg onload="),
        "the hostile error code is shown as text"
    );

    // The browser asked for the page (once per run) and for nothing else: no favicon, no
    // pwned-… URL, no CDN.
    let seen = server.seen();
    assert_eq!(
        seen,
        ["GET /report.html", "GET /report.html"],
        "requests: {seen:?}"
    );
    let png = fs::read(&screenshot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{}",
        screenshot.display()
    );
}

#[test]
fn hostile_values_stay_text_in_every_part_of_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile.html");
    let payloads = [
        "<script>alert(1)</script>",
        "\"><img src=x onerror=alert(1)>",
        "'><img src=x onerror=alert(1)>",
        "javascript:alert(1)",
        "</script><script>alert(1)</script>",
        "<!--",
        "\u{2028}\u{2029}",
    ];
    let records: Vec<AuditRecord> = payloads
        .iter()
        .enumerate()
        .map(|(i, payload)| {
            serde_json::from_value(json!({
                "event_time": format!("2024-05-0{}T09:00:00Z", i % 3 + 1),
                "event_id": format!("event-{i}"),
                "event_name": "UpdateUserSecurityProfiles",
                "category": "permissions",
                "account_id": payload, "region": payload, "instance_id": payload,
                "actor_kind": "iam", "actor_id": payload, "actor_name": payload,
                "actor_arn": payload, "target_kind": "user", "target_id": payload,
                "target_name": null, "name_source": "unresolved", "origin": "api",
                "source_ip": payload, "user_agent": payload, "error_code": payload,
                "error_message": payload, "request_parameters": payload,
                "response_elements": payload
            }))
            .unwrap()
        })
        .collect();
    let spec = ExporterSpec::Html(HtmlSpec {
        title: payloads[1].to_owned(),
        ..HtmlSpec::new(path.display().to_string())
    });
    let mut exporter = connect_audit_exporters::build(&spec.validated().unwrap()).unwrap();
    exporter.write(&records).unwrap();
    exporter.finish().unwrap();
    let page = fs::read_to_string(&path).unwrap();

    for payload in payloads
        .iter()
        .filter(|p| p.contains(['<', '>', '"', '\'']))
    {
        assert!(
            !page.contains(payload),
            "{payload:?} is in the page unescaped"
        );
    }
    assert!(!page.contains("<img") && !page.contains("<!--"));
    assert_eq!(page.matches("<script").count(), 2);
    assert_eq!(page.matches("</script>").count(), 2);
    // `javascript:` is harmless as text; it must never be a URL (the page has no links).
    assert!(page.contains("javascript:alert(1)"));
    assert!(!page.contains("=\"javascript:") && !page.contains("='javascript:"));
    assert_eq!(page.matches(" href=").count(), 1, "only the data: favicon");
    let json = &page[page.find("id=\"audit-records\"").unwrap()..page.find("]</script>").unwrap()];
    assert!(
        !json.contains(['\u{2028}', '\u{2029}']),
        "line separators end JavaScript strings in old engines"
    );
    // Escaped where the header, charts and grants show them; intact in the JSON block.
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"));
    let rows = embedded_rows(&page);
    assert_eq!(rows.len(), payloads.len());
    for (row, payload) in rows.iter().zip(payloads) {
        assert_eq!(
            row[COLUMNS.iter().position(|c| *c == "actor_name").unwrap()].as_deref(),
            Some(payload)
        );
    }
}

#[test]
fn times_days_and_the_run_context_are_shown_in_the_configured_zone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokyo.html");
    let record = |id: &str, time: &str, error: Option<&str>| -> AuditRecord {
        serde_json::from_value(json!({
            "event_time": time, "event_id": id, "event_name": "UpdateUserHierarchy",
            "category": "permissions", "account_id": ACCOUNT, "region": "ap-northeast-1",
            "instance_id": INSTANCE, "actor_kind": "iam", "actor_name": "ops",
            "target_kind": "user", "target_id": "u1", "target_name": "jdoe",
            "name_source": "snapshot", "origin": "api", "error_code": error
        }))
        .unwrap()
    };
    let spec = ExporterSpec::Html(HtmlSpec {
        timezone: "Asia/Tokyo".into(),
        ..HtmlSpec::new(path.display().to_string())
    });
    let mut exporter = connect_audit_exporters::build(&spec.validated().unwrap()).unwrap();
    exporter
        .write(&[
            // 2024-05-03 08:30 in Tokyo: the day of the bar is the local one.
            record(
                "late",
                "2024-05-02T23:30:00Z",
                Some("AccessDeniedException"),
            ),
            record("early", "2024-05-01T00:00:00Z", None),
        ])
        .unwrap();
    exporter.run_context(&connect_audit_exporters::RunContext {
        tool: "connect-audit 9.9.9".into(),
        generated_at: Some("2024-05-04T00:00:00Z".parse().unwrap()),
        window: Some(connect_audit_core::Window {
            since: "2024-05-01T00:00:00Z".parse().unwrap(),
            until: "2024-05-04T00:00:00Z".parse().unwrap(),
        }),
        skipped_files: 2,
        ..Default::default()
    });
    exporter.finish().unwrap();
    let page = fs::read_to_string(&path).unwrap();

    let rows = embedded_rows(&page);
    assert_eq!(rows[0][0].as_deref(), Some("2024-05-03T08:30:00+09:00"));
    assert_eq!(rows[1][0].as_deref(), Some("2024-05-01T09:00:00+09:00"));
    assert!(
        page.contains("Times in Asia/Tokyo. Generated 2024-05-04 09:00:00 by connect-audit 9.9.9.")
    );
    assert!(page.contains("2024-05-01 09:00:00 – 2024-05-04 09:00:00 (until exclusive)"));
    assert!(page.contains("Incomplete: 2 bad trail files and 0 bad records were skipped"));
    // One bar per local day of the window, 05-01 to 05-04; the failure on Tokyo's 05-03.
    for day in ["05-01", "05-02", "05-03", "05-04"] {
        assert_eq!(page.matches(&format!(">{day}</text>")).count(), 2, "{day}");
    }
    assert!(page.contains("<title>2024-05-03: failed 1 failed attempts</title>"));
    assert!(page.contains("<title>2024-05-01: permissions 1 changes</title>"));
    assert!(
        page.contains(r#"<th data-sort="time"><button type="button">Time (Asia/Tokyo)</button>"#)
    );
}
