//! A SIEM webhook receiver on `127.0.0.1`: a small hand-written HTTP/1.1 server that records
//! every request (headers, gzip-decoded body, event ids) and answers what a test scripts for
//! it, request by request: 200, any status (with `Retry-After`), a hang past the client's
//! timeout, or a connection dropped without an answer. Unscripted requests get 200.
//!
//! ```no_run
//! use connect_audit_tests::siem_receiver::{Reply, SiemReceiver};
//! let receiver = SiemReceiver::start();
//! receiver.script([Reply::status(503), Reply::Drop, Reply::Ok]);
//! // … point an exporter at receiver.url() …
//! let requests = receiver.requests();
//! assert!(requests.iter().all(|r| r.method == "POST"));
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::io::Read as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::server::{Flavor, TestServer};

/// How the receiver answers one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `200 OK` with Splunk's success body.
    Ok,
    /// A status, with an optional `Retry-After` value and a body.
    Status {
        /// The status code.
        code: u16,
        /// The `Retry-After` header, if any: seconds or an HTTP date.
        retry_after: Option<String>,
        /// The body.
        body: String,
    },
    /// Reads the request, then answers nothing for this long and closes the connection.
    Hang(Duration),
    /// Reads the request and closes the connection without answering.
    Drop,
}

impl Reply {
    /// A status with a short JSON body and no `Retry-After`.
    pub fn status(code: u16) -> Self {
        Self::Status {
            code,
            retry_after: None,
            body: format!(r#"{{"text":"scripted {code}","code":{code}}}"#),
        }
    }

    /// `429 Too Many Requests` with `Retry-After: <value>`.
    pub fn too_many(retry_after: &str) -> Self {
        Self::Status {
            code: 429,
            retry_after: Some(retry_after.to_owned()),
            body: r#"{"text":"Server is busy","code":9}"#.to_owned(),
        }
    }

    /// Whether the client was told its request was accepted.
    pub fn accepted(&self) -> bool {
        match self {
            Self::Ok => true,
            Self::Status { code, .. } => (200..300).contains(code),
            Self::Hang(_) | Self::Drop => false,
        }
    }
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    /// `POST`.
    pub method: String,
    /// The request target: path and query.
    pub target: String,
    /// Header names (lowercase) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body as sent (possibly gzip), unless the receiver only counts.
    pub raw_body: Vec<u8>,
    /// The body, gzip-decoded when `Content-Encoding: gzip`, unless the receiver only counts.
    pub body: Vec<u8>,
    /// The row keys in the body (`AuditRecord::row_key`: the event id, `#<target_index>` after
    /// it for the second and later targets of a call): `fields.row_key` of Splunk envelopes,
    /// from `event_id` and `target_index` of the records of a JSON array, `metadata.uid` of
    /// OCSF events. Empty when the receiver only counts.
    pub event_ids: Vec<String>,
    /// Events in the body.
    pub events: usize,
    /// Bytes of the body as sent.
    pub sent_len: usize,
    /// Bytes of the decoded body.
    pub body_len: usize,
    /// What the receiver answered.
    pub reply: Reply,
    /// When it arrived.
    pub at: std::time::Instant,
}

impl ReceivedRequest {
    /// The first value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    script: VecDeque<Reply>,
    requests: Vec<ReceivedRequest>,
    count_only: bool,
}

type Shared = Arc<Mutex<State>>;

fn lock(state: &Shared) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running receiver; stops when dropped.
pub struct SiemReceiver {
    server: TestServer,
    state: Shared,
}

impl fmt::Debug for SiemReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SiemReceiver")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl SiemReceiver {
    /// Starts a receiver that answers 200 until scripted otherwise.
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// Starts a receiver for benchmarks: it parses bodies to count events but keeps neither
    /// bodies nor ids.
    pub fn start_counting() -> Self {
        Self::start_with(true)
    }

    fn start_with(count_only: bool) -> Self {
        let state = Shared::default();
        lock(&state).count_only = count_only;
        let shared = Arc::clone(&state);
        let server = TestServer::bind("siem-receiver").serve_connections(
            Flavor::CurrentThread,
            move |stream| {
                let _ = stream.set_nodelay(true);
                serve(stream, Arc::clone(&shared))
            },
        );
        Self { server, state }
    }

    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        self.server.url()
    }

    /// Queues answers for the next requests, in arrival order; later requests get 200.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        lock(&self.state).script.extend(replies);
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        lock(&self.state).requests.clone()
    }

    /// Events in requests that were answered with a 2xx.
    pub fn accepted_events(&self) -> usize {
        lock(&self.state)
            .requests
            .iter()
            .filter(|r| r.reply.accepted())
            .map(|r| r.events)
            .sum()
    }

    /// Forgets the requests received so far.
    pub fn clear(&self) {
        lock(&self.state).requests.clear();
    }

    /// Drops the replies still scripted: from now on every request is answered 200.
    pub fn unscript(&self) {
        lock(&self.state).script.clear();
    }
}

/// One connection: requests in turn (keep-alive) until the client closes or a reply ends it.
async fn serve(mut stream: TcpStream, state: Shared) {
    let mut buffer = Vec::with_capacity(64 * 1024);
    loop {
        let Some((head_len, method, target, headers)) = read_head(&mut stream, &mut buffer).await
        else {
            return;
        };
        let length = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(0);
        while buffer.len() < head_len + length {
            buffer.reserve(head_len + length - buffer.len());
            match stream.read_buf(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
        let raw_body = buffer[head_len..head_len + length].to_vec();
        buffer.drain(..head_len + length);
        let reply = record(&state, method, target, headers, raw_body);
        match reply {
            Reply::Drop => return,
            Reply::Hang(how_long) => {
                tokio::time::sleep(how_long).await;
                return;
            }
            Reply::Ok => {
                let body = r#"{"text":"Success","code":0}"#;
                if respond(&mut stream, 200, None, body).await.is_err() {
                    return;
                }
            }
            Reply::Status {
                code,
                retry_after,
                body,
            } => {
                if respond(&mut stream, code, retry_after.as_deref(), &body)
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

type Head = (usize, String, String, Vec<(String, String)>);

/// Reads up to the end of a request head; `None` when the connection ends first.
async fn read_head(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Head> {
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buffer[..end]).ok()?;
            let mut lines = head.split("\r\n");
            let mut first = lines.next()?.split(' ');
            let method = first.next()?.to_owned();
            let target = first.next()?.to_owned();
            let headers = lines
                .filter_map(|line| line.split_once(':'))
                .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
                .collect();
            return Some((end + 4, method, target, headers));
        }
        buffer.reserve(16 * 1024);
        match stream.read_buf(buffer).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Logs the request and picks its reply.
fn record(
    state: &Shared,
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    raw_body: Vec<u8>,
) -> Reply {
    let gzip = headers
        .iter()
        .any(|(n, v)| n == "content-encoding" && v.eq_ignore_ascii_case("gzip"));
    let body = if gzip {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw_body.as_slice())
            .read_to_end(&mut out)
            .expect("a gzip body that decodes");
        out
    } else {
        raw_body.clone()
    };
    let count_only = lock(state).count_only;
    let (events, event_ids) = if count_only {
        (count_events(&body), Vec::new())
    } else {
        let ids = event_ids(&body);
        (ids.len(), ids)
    };
    let (sent_len, body_len) = (raw_body.len(), body.len());
    let mut state = lock(state);
    let reply = state.script.pop_front().unwrap_or(Reply::Ok);
    let (raw_body, body) = if count_only {
        (Vec::new(), Vec::new())
    } else {
        (raw_body, body)
    };
    state.requests.push(ReceivedRequest {
        method,
        target,
        headers,
        raw_body,
        body,
        event_ids,
        events,
        sent_len,
        body_len,
        reply: reply.clone(),
        at: std::time::Instant::now(),
    });
    reply
}

/// The row keys of a Standard Webhooks array or of concatenated Splunk envelopes (records
/// carry `event_id` and `target_index`, OCSF events `metadata.uid`).
fn event_ids(body: &[u8]) -> Vec<String> {
    let mut ids = Vec::new();
    for value in serde_json::Deserializer::from_slice(body).into_iter::<serde_json::Value>() {
        let value = value.expect("a JSON body");
        let items = match value {
            serde_json::Value::Array(items) => items,
            other => vec![other],
        };
        for item in items {
            let record_key = || {
                let id = item.get("event_id")?.as_str()?;
                Some(match item.get("target_index")?.as_u64()? {
                    0 => id.to_owned(),
                    index => format!("{id}#{index}"),
                })
            };
            let id = item
                .pointer("/fields/row_key")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
                .or_else(record_key)
                .or_else(|| {
                    item.pointer("/metadata/uid")
                        .and_then(serde_json::Value::as_str)
                        .map(str::to_owned)
                })
                .expect("every event carries its id");
            ids.push(id);
        }
    }
    ids
}

/// Events in a body, without keeping them.
fn count_events(body: &[u8]) -> usize {
    if body.first() == Some(&b'[') {
        serde_json::from_slice::<Vec<serde::de::IgnoredAny>>(body)
            .expect("a JSON array")
            .len()
    } else {
        serde_json::Deserializer::from_slice(body)
            .into_iter::<serde::de::IgnoredAny>()
            .count()
    }
}

async fn respond(
    stream: &mut TcpStream,
    code: u16,
    retry_after: Option<&str>,
    body: &str,
) -> std::io::Result<()> {
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        408 => "Request Timeout",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Scripted",
    };
    let mut head = format!(
        "HTTP/1.1 {code} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    if let Some(value) = retry_after {
        head.push_str("retry-after: ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.flush().await
}
