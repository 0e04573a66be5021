//! A fault-injecting HTTP proxy in front of an S3 server (Garage), for the fault tests.
//!
//! [`S3Proxy::start`] listens on a free loopback port; give its [`endpoint`](S3Proxy::endpoint)
//! to the client instead of the server's. Each request is forwarded verbatim (request line,
//! headers — `Host` included, so SigV4 signatures stay valid — and body) with one change: a
//! `Connection: close` header (hop-by-hop, never signed), so every request comes on its own
//! connection and the proxy sees each one. Unless a rule says otherwise:
//!
//! - [`slow_down`](S3Proxy::slow_down): every distinct request (method and target) that
//!   matches is answered `503 SlowDown` with S3's XML error body its first `times` times —
//!   retries of it look the same, so `times` below the client's attempts is a blip it rides
//!   out, and `u64::MAX` is an S3 that never recovers.
//! - [`cut_body`](S3Proxy::cut_body): likewise, but the request is forwarded and the answer
//!   cut off a few bytes into its body, as a server that died while sending it.
//! - [`hang`](S3Proxy::hang): likewise, but the request is read and never answered (the
//!   connection stays open until the client gives up), as a hung server.
//! - [`stall_body`](S3Proxy::stall_body): likewise, but the request is forwarded, the
//!   answer's head and a few bytes of its body are sent, then the rest a byte every 200 ms:
//!   a server that all but stopped sending mid-body (too slow to finish within minutes, too
//!   fast for the SDK's stalled-stream protection to call it dead).
//! - [`hold_after`](S3Proxy::hold_after): the first `pass` matching requests go through, the
//!   next ones wait until [`release`](S3Proxy::release) — so a test can stop the server while
//!   a run is at a known point.
//! - When the server cannot be reached (stopped), the client connection is closed without an
//!   answer, as a server that died under the request would — or, after
//!   [`hold_when_unreachable`](S3Proxy::hold_when_unreachable)`(n)` and `n` such answers, the
//!   request waits for [`resume`](S3Proxy::resume) and tries the server again: a test can
//!   restart the server while a client is between two retries.
//!
//! Every request is logged ([`requests`](S3Proxy::requests)) with what happened to it, so a
//! test can count attempts per object: the bounded-retry assertions.
//!
//! ```no_run
//! use connect_audit_tests::s3_proxy::{Outcome, S3Proxy};
//!
//! let garage = connect_audit_tests::garage::Garage::shared();
//! let proxy = S3Proxy::start(garage.endpoint());
//! proxy.slow_down(|r| r.operation() == "GetObject", 2);
//! // … run a client with proxy.endpoint() as its S3 endpoint …
//! let seen = proxy.requests();
//! let slowed = seen.iter().filter(|s| s.outcome == Outcome::SlowDown).count();
//! println!("{slowed} of {} requests were told to slow down", seen.len());
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::server::{Flavor, TestServer};

/// The request line of a request the proxy saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `PUT`, …
    pub method: String,
    /// The request target: `/bucket/key?query`.
    pub target: String,
}

impl Request {
    /// The path, without the query: `/bucket/key`.
    pub fn path(&self) -> &str {
        self.target
            .split_once('?')
            .map_or(&*self.target, |(p, _)| p)
    }

    /// The query string, possibly empty.
    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q)
    }

    /// Whether the query has the parameter `name` (`name` or `name=…`).
    pub fn has_param(&self, name: &str) -> bool {
        self.query()
            .split('&')
            .any(|p| p.split_once('=').map_or(p, |(k, _)| k) == name)
    }

    /// The S3 operation, from the method and query (the subset this project uses).
    pub fn operation(&self) -> &'static str {
        match self.method.as_str() {
            "GET" if self.has_param("list-type") => "ListObjectsV2",
            "GET" if self.has_param("uploads") => "ListMultipartUploads",
            "GET" if self.path().trim_matches('/').contains('/') => "GetObject",
            "GET" => "ListObjects",
            "HEAD" => "HeadObject",
            "PUT" if self.has_param("partNumber") => "UploadPart",
            "PUT" => "PutObject",
            "POST" if self.has_param("uploads") => "CreateMultipartUpload",
            "POST" if self.has_param("uploadId") => "CompleteMultipartUpload",
            "DELETE" if self.has_param("uploadId") => "AbortMultipartUpload",
            "DELETE" => "DeleteObject",
            _ => "other",
        }
    }
}

/// What the proxy did with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered `503 SlowDown` by the proxy.
    SlowDown,
    /// Forwarded; the server's status (`None`: it closed without an answer).
    Forwarded(Option<u16>),
    /// Forwarded, and the answer cut off a few bytes into its body.
    Cut,
    /// Read and never answered ([`S3Proxy::hang`]); logged when the request was read.
    Hung,
    /// Forwarded, and the answer slowed to a trickle a few bytes into its body
    /// ([`S3Proxy::stall_body`]); logged when it slowed.
    Stalled,
    /// The server could not be reached; the client connection was closed unanswered.
    Unreachable,
}

/// A request and what happened to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The request.
    pub request: Request,
    /// What the proxy did.
    pub outcome: Outcome,
}

impl Seen {
    /// The S3 operation of the request.
    pub fn operation(&self) -> &'static str {
        self.request.operation()
    }
}

type Matcher = Box<dyn Fn(&Request) -> bool + Send + Sync>;

/// A fault for the first `times` tries of each distinct matching request.
struct Rule {
    matching: Matcher,
    times: u64,
    /// SlowDowns served per `METHOD target`.
    served: HashMap<String, u64>,
}

struct Hold {
    matching: Matcher,
    pass: u64,
}

#[derive(Default)]
struct Rules {
    slow_down: Option<Rule>,
    cut_body: Option<Rule>,
    hang: Option<Rule>,
    stall_body: Option<Rule>,
    hold: Option<Hold>,
    /// Unreachable answers left before requests that find the server down wait.
    unreachable_hold: Option<u64>,
    log: Vec<Seen>,
}

struct Shared {
    upstream: String,
    rules: Mutex<Rules>,
    released: Notify,
    held: AtomicU64,
}

impl Rule {
    fn new(matching: Matcher, times: u64) -> Self {
        Self {
            matching,
            times,
            served: HashMap::new(),
        }
    }

    /// Whether `request` gets the fault now (and counts it).
    fn applies(rule: Option<&mut Self>, request: &Request) -> bool {
        let Some(rule) = rule else {
            return false;
        };
        if !(rule.matching)(request) {
            return false;
        }
        let served = rule
            .served
            .entry(format!("{} {}", request.method, request.target))
            .or_default();
        let applies = *served < rule.times;
        if applies {
            *served += 1;
        }
        applies
    }
}

impl Shared {
    fn rules(&self) -> MutexGuard<'_, Rules> {
        self.rules.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn log(&self, request: Request, outcome: Outcome) {
        self.rules().log.push(Seen { request, outcome });
    }
}

/// A running proxy; see the module documentation. Stopped when dropped.
pub struct S3Proxy {
    server: TestServer,
    shared: Arc<Shared>,
}

impl fmt::Debug for S3Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Proxy")
            .field("endpoint", &self.endpoint())
            .field("upstream", &self.shared.upstream)
            .finish_non_exhaustive()
    }
}

/// How long a test waits for the proxy to reach a state before it gives up.
const WAIT_LIMIT: Duration = Duration::from_mins(1);

impl S3Proxy {
    /// Starts a proxy forwarding to `upstream` (`http://host:port`), with no rules.
    pub fn start(upstream: &str) -> Self {
        let upstream = upstream
            .strip_prefix("http://")
            .unwrap_or(upstream)
            .trim_end_matches('/')
            .to_owned();
        let shared = Arc::new(Shared {
            upstream,
            rules: Mutex::default(),
            released: Notify::new(),
            held: AtomicU64::new(0),
        });
        let serving = Arc::clone(&shared);
        let server = TestServer::bind("s3-proxy")
            .serve_connections(Flavor::CurrentThread, move |client| {
                serve(client, Arc::clone(&serving))
            });
        Self { server, shared }
    }

    /// The endpoint to give clients, e.g. `http://127.0.0.1:41234`.
    pub fn endpoint(&self) -> &str {
        self.server.url()
    }

    /// Answers `503 SlowDown` to each distinct matching request its first `times` times
    /// (`u64::MAX`: always). Replaces an earlier `slow_down` rule.
    pub fn slow_down(
        &self,
        matching: impl Fn(&Request) -> bool + Send + Sync + 'static,
        times: u64,
    ) {
        self.shared.rules().slow_down = Some(Rule::new(Box::new(matching), times));
    }

    /// Forwards each distinct matching request, but cuts the answer off a few bytes into its
    /// body, its first `times` times (`u64::MAX`: always). Replaces an earlier `cut_body`.
    pub fn cut_body(
        &self,
        matching: impl Fn(&Request) -> bool + Send + Sync + 'static,
        times: u64,
    ) {
        self.shared.rules().cut_body = Some(Rule::new(Box::new(matching), times));
    }

    /// Reads each distinct matching request and never answers it, its first `times` times
    /// (`u64::MAX`: always): the connection stays open until the client closes it. Replaces an
    /// earlier `hang`.
    pub fn hang(&self, matching: impl Fn(&Request) -> bool + Send + Sync + 'static, times: u64) {
        self.shared.rules().hang = Some(Rule::new(Box::new(matching), times));
    }

    /// Forwards each distinct matching request, sends the answer's head and a few bytes of
    /// its body, then the rest a byte every 200 ms until the client closes the connection, its
    /// first `times` times (`u64::MAX`: always). Replaces an earlier `stall_body`.
    pub fn stall_body(
        &self,
        matching: impl Fn(&Request) -> bool + Send + Sync + 'static,
        times: u64,
    ) {
        self.shared.rules().stall_body = Some(Rule::new(Box::new(matching), times));
    }

    /// Lets the first `pass` matching requests through and holds the next ones until
    /// [`release`](Self::release). Replaces an earlier hold.
    pub fn hold_after(
        &self,
        matching: impl Fn(&Request) -> bool + Send + Sync + 'static,
        pass: u64,
    ) {
        self.shared.rules().hold = Some(Hold {
            matching: Box::new(matching),
            pass,
        });
    }

    /// Lets the held requests go on (to whatever the server is now) and holds no more.
    pub fn release(&self) {
        self.shared.rules().hold = None;
        self.shared.released.notify_waiters();
    }

    /// Answers the next `n` requests that find the server down unanswered; later ones wait
    /// for [`resume`](Self::resume), then try the server again.
    pub fn hold_when_unreachable(&self, n: u64) {
        self.shared.rules().unreachable_hold = Some(n);
    }

    /// Ends [`hold_when_unreachable`](Self::hold_when_unreachable): the waiting requests try
    /// the server again.
    pub fn resume(&self) {
        self.shared.rules().unreachable_hold = None;
        self.shared.released.notify_waiters();
    }

    /// Drops every rule (held requests go on); the log is kept.
    pub fn clear(&self) {
        {
            let mut rules = self.shared.rules();
            rules.slow_down = None;
            rules.cut_body = None;
            rules.hang = None;
            rules.stall_body = None;
        }
        self.resume();
        self.release();
    }

    /// Blocks until `done` holds for the requests seen; panics after a minute, naming `what`.
    pub fn wait_for(&self, what: &str, done: impl Fn(&[Seen]) -> bool) {
        let started = Instant::now();
        while !done(&self.shared.rules().log) {
            assert!(
                started.elapsed() < WAIT_LIMIT,
                "not within {WAIT_LIMIT:?}: {what}; seen: {:#?}",
                self.requests()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Requests waiting on a hold now.
    pub fn held(&self) -> u64 {
        self.shared.held.load(Ordering::SeqCst)
    }

    /// Blocks until at least `n` requests are held; panics after a minute (the run never got
    /// there).
    pub fn wait_until_held(&self, n: u64) {
        let started = Instant::now();
        while self.held() < n {
            assert!(
                started.elapsed() < WAIT_LIMIT,
                "no {n} requests held within {WAIT_LIMIT:?}; seen: {:#?}",
                self.requests()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every request seen so far, in arrival order of their outcome.
    pub fn requests(&self) -> Vec<Seen> {
        self.shared.rules().log.clone()
    }

    /// Forgets the requests seen so far.
    pub fn clear_log(&self) {
        self.shared.rules().log.clear();
    }
}

impl Drop for S3Proxy {
    fn drop(&mut self) {
        // Before the proxy stops listening: its `server` field, dropped after this, stops it
        // and joins its thread.
        self.release();
    }
}

/// The largest request or answer head the proxy reads.
const MAX_HEAD: usize = 64 * 1024;

/// Numbers the proxy's own answers (`x-amz-request-id`).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Bytes of the body a [`cut_body`](S3Proxy::cut_body) or [`stall_body`](S3Proxy::stall_body)
/// answer gets.
const CUT_AFTER: usize = 16;

/// Serves one client connection: one request, then the connection is closed.
async fn serve(mut client: TcpStream, shared: Arc<Shared>) {
    let Some((head, rest)) = read_head(&mut client).await else {
        return;
    };
    let Some(request) = request_line(&head) else {
        return;
    };
    hold(&shared, &request).await;
    let fault = {
        let mut rules = shared.rules();
        if Rule::applies(rules.slow_down.as_mut(), &request) {
            Some(Outcome::SlowDown)
        } else if Rule::applies(rules.cut_body.as_mut(), &request) {
            Some(Outcome::Cut)
        } else if Rule::applies(rules.hang.as_mut(), &request) {
            Some(Outcome::Hung)
        } else if Rule::applies(rules.stall_body.as_mut(), &request) {
            Some(Outcome::Stalled)
        } else {
            None
        }
    };
    match fault {
        Some(Outcome::SlowDown) => {
            answer_slow_down(&mut client, &head, rest, &request).await;
            shared.log(request, Outcome::SlowDown);
            return;
        }
        Some(Outcome::Hung) => {
            shared.log(request, Outcome::Hung);
            until_closed(&mut client).await;
            return;
        }
        _ => {}
    }
    let answer = match fault {
        Some(Outcome::Cut) => Answer::Cut,
        Some(Outcome::Stalled) => Answer::Stall,
        _ => Answer::Whole,
    };
    let mut upstream = loop {
        if let Ok(upstream) = TcpStream::connect(&shared.upstream).await {
            break upstream;
        }
        if !wait_while_unreachable(&shared).await {
            // Closed unanswered: what a client sees of a server that died under its request.
            shared.log(request, Outcome::Unreachable);
            return;
        }
    };
    let (status, held_back) = forward(&mut client, &mut upstream, &head, &rest, answer).await;
    match answer {
        Answer::Whole => shared.log(request, Outcome::Forwarded(status)),
        Answer::Cut => shared.log(request, Outcome::Cut),
        Answer::Stall => {
            shared.log(request, Outcome::Stalled);
            trickle(&mut client, &mut upstream, held_back).await;
        }
    }
}

/// How often a stalled answer sends its next byte: 5 B/s, so a trail object of a few KB is
/// not whole within minutes, yet above the 1 B/s that the SDK's stalled-stream protection
/// takes for a dead stream — only a time limit on the whole body ends it.
const TRICKLE_EVERY: Duration = Duration::from_millis(200);

/// Sends the rest of the answer (`held_back`, then what the server still sends) one byte per
/// [`TRICKLE_EVERY`], until the client closes the connection.
async fn trickle(client: &mut TcpStream, upstream: &mut TcpStream, held_back: Vec<u8>) {
    let mut pending = std::collections::VecDeque::from(held_back);
    let mut chunk = vec![0; 16 * 1024];
    loop {
        if pending.is_empty() {
            match upstream.read(&mut chunk).await {
                Ok(n) if n > 0 => pending.extend(&chunk[..n]),
                // The whole answer was sent, slowly.
                _ => break,
            }
        }
        let byte = pending.pop_front().unwrap_or_default();
        if client.write_all(&[byte]).await.is_err() {
            return;
        }
        tokio::time::sleep(TRICKLE_EVERY).await;
    }
    until_closed(client).await;
}

/// How much of the server's answer the client gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// All of it.
    Whole,
    /// The head and a few bytes of the body, then the connection is closed.
    Cut,
    /// The head and a few bytes of the body, then the rest a byte at a time, slowly
    /// ([`trickle`]).
    Stall,
}

/// Waits until the client closes its connection (reading and dropping what it sends).
async fn until_closed(client: &mut TcpStream) {
    let mut chunk = vec![0; 16 * 1024];
    while matches!(client.read(&mut chunk).await, Ok(n) if n > 0) {}
}

/// Waits while a hold rule covers `request` (after its `pass` requests went through).
async fn hold(shared: &Shared, request: &Request) {
    let mut counted = false;
    loop {
        let released = shared.released.notified();
        tokio::pin!(released);
        released.as_mut().enable();
        {
            let mut rules = shared.rules();
            let Some(hold) = rules.hold.as_mut() else {
                break;
            };
            if !(hold.matching)(request) {
                break;
            }
            if !counted && hold.pass > 0 {
                hold.pass -= 1;
                break;
            }
        }
        if !counted {
            counted = true;
            shared.held.fetch_add(1, Ordering::SeqCst);
        }
        released.await;
    }
    if counted {
        shared.held.fetch_sub(1, Ordering::SeqCst);
    }
}

/// For a request that found the server down: `false` if it is to be answered unreachable
/// now; else it waited for [`S3Proxy::resume`] and `true` (try the server again).
async fn wait_while_unreachable(shared: &Shared) -> bool {
    {
        let mut rules = shared.rules();
        match rules.unreachable_hold.as_mut() {
            Some(0) => {}
            Some(left) => {
                *left -= 1;
                return false;
            }
            None => return false,
        }
    }
    shared.held.fetch_add(1, Ordering::SeqCst);
    loop {
        let resumed = shared.released.notified();
        tokio::pin!(resumed);
        resumed.as_mut().enable();
        if shared.rules().unreachable_hold != Some(0) {
            break;
        }
        resumed.await;
    }
    shared.held.fetch_sub(1, Ordering::SeqCst);
    true
}

/// Reads up to the end of the request head; returns the head (without the blank line) and
/// the body bytes read with it.
async fn read_head(client: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = vec![0; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(buf[..end].to_vec()).ok()?;
            return Some((head, buf[end + 4..].to_vec()));
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
        let n = client.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn request_line(head: &str) -> Option<Request> {
    let mut parts = head.lines().next()?.split(' ');
    Some(Request {
        method: parts.next()?.to_owned(),
        target: parts.next()?.to_owned(),
    })
}

/// The value of header `name` (case-insensitive) in `head`.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then_some(value.trim())
    })
}

/// Forwards the request with `Connection: close` and copies the answer back, as much of it
/// as `answer` says; returns the server's status. With [`Answer::Stall`] it returns once the
/// head and a few bytes are sent, the connections left open, with the bytes of the answer
/// read but not sent.
async fn forward(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    head: &str,
    rest: &[u8],
    answer: Answer,
) -> (Option<u16>, Vec<u8>) {
    let mut out = String::with_capacity(head.len() + 40);
    for line in head.split("\r\n") {
        let hop = line.split_once(':').is_some_and(|(k, _)| {
            k.trim().eq_ignore_ascii_case("connection")
                || k.trim().eq_ignore_ascii_case("keep-alive")
        });
        if !hop {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    if upstream.write_all(out.as_bytes()).await.is_err() || upstream.write_all(rest).await.is_err()
    {
        return (None, Vec::new());
    }
    let (mut client_read, mut client_write) = client.split();
    let (mut upstream_read, mut upstream_write) = upstream.split();
    let to_upstream = async {
        let _ = tokio::io::copy(&mut client_read, &mut upstream_write).await;
        let _ = upstream_write.shutdown().await;
    };
    let to_client = async {
        // The answer's head, until its end is seen (for the status, and where a cut goes).
        let mut answer_head = Vec::new();
        // Cut or stalled: how many bytes of the answer the client gets, once the head is known.
        let mut limit = None;
        let mut passed = 0;
        let mut chunk = vec![0; 16 * 1024];
        let mut held_back = Vec::new();
        while let Ok(n) = upstream_read.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            if limit.is_none() && answer_head.len() < MAX_HEAD {
                answer_head.extend_from_slice(&chunk[..n]);
                if let Some(end) = answer_head.windows(4).position(|w| w == b"\r\n\r\n") {
                    limit = Some(if answer == Answer::Whole {
                        usize::MAX
                    } else {
                        end + 4 + CUT_AFTER
                    });
                }
            }
            let give = n.min(limit.unwrap_or(usize::MAX).saturating_sub(passed));
            if client_write.write_all(&chunk[..give]).await.is_err() {
                break;
            }
            passed += give;
            if give < n {
                if answer == Answer::Stall {
                    held_back.extend_from_slice(&chunk[give..n]);
                }
                break;
            }
        }
        if answer != Answer::Stall {
            let _ = client_write.shutdown().await;
        }
        let status = String::from_utf8_lossy(&answer_head[..answer_head.len().min(64)])
            .split(' ')
            .nth(1)
            .and_then(|code| code.get(..3))
            .and_then(|code| code.parse().ok());
        (status, held_back)
    };
    // The answer ends the exchange: the server closes after it (`Connection: close`).
    tokio::select! {
        answered = to_client => answered,
        () = async { to_upstream.await; std::future::pending::<()>().await } => (None, Vec::new()),
    }
}

/// Reads and drops the request body, then answers `503 SlowDown` as S3 does.
async fn answer_slow_down(client: &mut TcpStream, head: &str, rest: Vec<u8>, request: &Request) {
    let length: usize = header(head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut received = rest.len();
    let mut chunk = vec![0; 16 * 1024];
    while received < length {
        match tokio::time::timeout(Duration::from_secs(5), client.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => received += n,
            _ => return,
        }
    }
    let id = format!("PROXY{:011}", NEXT_ID.fetch_add(1, Ordering::Relaxed));
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>\
         <Message>Please reduce your request rate.</Message><Resource>{}</Resource>\
         <RequestId>{id}</RequestId></Error>",
        request.path()
    );
    let response = format!(
        "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
         x-amz-request-id: {id}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = client.write_all(response.as_bytes()).await;
    let _ = client.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, target: &str) -> Request {
        Request {
            method: method.into(),
            target: target.into(),
        }
    }

    #[test]
    fn operations_are_told_from_method_and_query() {
        for (method, target, operation) in [
            ("GET", "/b?list-type=2&prefix=a%2F", "ListObjectsV2"),
            ("GET", "/b/a/b.json.gz?x-id=GetObject", "GetObject"),
            ("PUT", "/b/out.csv?x-id=PutObject", "PutObject"),
            ("POST", "/b/big.jsonl?uploads", "CreateMultipartUpload"),
            ("PUT", "/b/big.jsonl?partNumber=2&uploadId=u", "UploadPart"),
            ("POST", "/b/big.jsonl?uploadId=u", "CompleteMultipartUpload"),
            ("DELETE", "/b/big.jsonl?uploadId=u", "AbortMultipartUpload"),
        ] {
            assert_eq!(request(method, target).operation(), operation, "{target}");
        }
        assert_eq!(request("GET", "/b/k?a=1").path(), "/b/k");
        assert!(!request("GET", "/b/k?uploadIdx=1").has_param("uploadId"));
    }

    #[test]
    fn headers_are_found_case_insensitively() {
        let head = "PUT /b/k HTTP/1.1\r\nHost: x\r\ncontent-length: 12";
        assert_eq!(header(head, "Content-Length"), Some("12"));
        assert_eq!(header(head, "expect"), None);
        assert_eq!(request_line(head), Some(request("PUT", "/b/k")));
    }
}
