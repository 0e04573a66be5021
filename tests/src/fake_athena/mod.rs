//! A fake Amazon Athena for tests: a real HTTP server speaking Athena's awsJson1_1 protocol,
//! so the real `aws-sdk-athena` client talks to it through `endpoint_url`, and the SQL it is
//! sent really runs, on DataFusion, over files in local directories standing in for S3
//! buckets ([`FakeAthena::mount_bucket`]).
//!
//! Every call is `POST /` with `X-Amz-Target: AmazonAthena.<Operation>` and a JSON body with
//! the API's PascalCase member names (checked against `aws-sdk-athena`'s model):
//!
//! | call | request | answer |
//! |---|---|---|
//! | StartQueryExecution | `QueryString`, `QueryExecutionContext`, `WorkGroup`, `ResultConfiguration`, `ExecutionParameters`, `ClientRequestToken` | `QueryExecutionId` |
//! | GetQueryExecution | `QueryExecutionId` | `QueryExecution` (`Status`, `Statistics`, …) |
//! | GetQueryResults | `QueryExecutionId`, `MaxResults` (≤ 1000), `NextToken` | `ResultSet` (`Rows`, `ResultSetMetadata`), `NextToken` |
//! | StopQueryExecution | `QueryExecutionId` | `{}` |
//!
//! Statements, one per query as in Athena:
//!
//! - `SELECT …` / `WITH …` run on DataFusion, after `?` placeholders are bound to
//!   `ExecutionParameters` (each must be a literal). Results are text, like Athena's: the first
//!   row of the first page is the header row.
//! - `CREATE DATABASE`, `CREATE EXTERNAL TABLE` (Hive DDL: the CloudTrail input format with
//!   partition projection, or the JSON SerDe over a prefix), `DROP TABLE`, and
//!   `CREATE [OR REPLACE] VIEW`. A table's files are read when a query scans it, so files
//!   written after the `CREATE` are seen, as in Athena.
//! - UDFs with Trino semantics: `json_extract_scalar`, `regexp_extract`, `regexp_replace`
//!   (every match, `$1` back-references), `from_iso8601_timestamp`, `url_decode` (`+` is a
//!   space, a broken `%` escape fails the query, as Java's `URLDecoder` does), `json_size`.
//!
//! Errors carry `x-amzn-ErrorType` and a `{"__type","Message"}` body, as the service sends
//! them: `InvalidRequestException` (400) for unknown query ids, bad tokens, results asked too
//! early; `TooManyRequestsException` (400) when [`FakeAthena::throttle_next`] says so (the
//! SDK's standard retry treats it as throttling). A request without an `Authorization` header
//! is refused (403 `AccessDeniedException`): the SDK always signs.
//!
//! The server runs on its own thread and runtime; dropping the [`FakeAthena`] stops it.
//!
//! ```no_run
//! use connect_audit_tests::fake_athena::FakeAthena;
//!
//! let fake = FakeAthena::start();
//! fake.mount_bucket("trail-bucket", std::path::Path::new("/tmp/trail"));
//! fake.set_page_cap(2);
//! fake.set_polls_before_done(3);
//! fake.throttle_next(1);
//! // … point an aws_sdk_athena::Client at fake.url() (or use fake.client(3)) …
//! assert!(fake.executions().is_empty());
//! assert_eq!(fake.requests("GetQueryResults"), 0);
//! ```
//!
//! The parts, each in its own file: this one is the server and Athena's JSON protocol;
//! `engine.rs` runs a statement (the catalog, the DataFusion session, the DDL it executes),
//! `hive_ddl.rs` parses Athena's Hive DDL, `table.rs` reads a table's files from the mounted
//! buckets, `parameters.rs` binds `ExecutionParameters` into the SQL, `udf.rs` holds the
//! functions with Trino semantics and `results.rs` renders results as Athena's text.

mod engine;
mod hive_ddl;
mod parameters;
mod results;
mod table;
#[cfg(test)]
mod test_support;
mod udf;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use datafusion::catalog::CatalogProvider as _;
use serde_json::{Map, Value, json};

use crate::server::{Flavor, TestServer};
use engine::{Engine, statement_kind};

pub use hive_ddl::{HiveTable, parse_hive_ddl};

/// Rows per `GetQueryResults` page unless [`FakeAthena::set_page_cap`] says otherwise (also
/// the largest `MaxResults` Athena accepts).
pub const DEFAULT_PAGE_CAP: usize = 1000;
/// The catalog every table lives in (also reachable as `"AwsDataCatalog"`).
pub const CATALOG: &str = "awsdatacatalog";
/// The `ErrorType` of [`FakeAthena::fail_next_query`] failures and of SQL errors: Athena's
/// generic user error.
pub const USER_ERROR_TYPE: i64 = 1006;

/// One `StartQueryExecution` the fake received, as [`FakeAthena::executions`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    /// The `QueryExecutionId` it was given.
    pub id: String,
    /// `QueryString`, as sent.
    pub query: String,
    /// `ExecutionParameters`, as sent.
    pub parameters: Vec<String>,
    /// `QueryExecutionContext.Database`.
    pub database: Option<String>,
    /// `WorkGroup`.
    pub work_group: Option<String>,
    /// `ResultConfiguration.OutputLocation`, as sent (the prefix, not the result file).
    pub output_location: Option<String>,
    /// Where the query ended (or is): `SUCCEEDED`, `FAILED`, `CANCELLED`, or `RUNNING` for a
    /// hung query. The poll script ([`FakeAthena::set_polls_before_done`]) is not applied.
    pub state: String,
    /// `StateChangeReason` of a failed or cancelled query.
    pub reason: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// The server

#[derive(Debug)]
struct AthenaError {
    category: i64,
    error_type: i64,
    retryable: bool,
    message: String,
}

impl AthenaError {
    fn user(message: &str) -> Self {
        Self {
            category: 2,
            error_type: USER_ERROR_TYPE,
            retryable: false,
            message: message.to_owned(),
        }
    }
}

/// A query's result as text, header row included for SELECTs.
#[derive(Debug, Default)]
struct ResultTable {
    /// (name, Athena type) of each column.
    columns: Vec<(String, String)>,
    rows: Vec<Vec<Option<String>>>,
}

#[derive(Debug)]
enum Outcome {
    Succeeded {
        result: Arc<ResultTable>,
        scanned: u64,
    },
    Failed {
        reason: String,
        error: AthenaError,
    },
    Hanging,
}

impl Outcome {
    fn failed(reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self::Failed {
            error: AthenaError::user(&reason),
            reason,
        }
    }

    fn done(result: ResultTable, scanned: u64) -> Self {
        Self::Succeeded {
            result: Arc::new(result),
            scanned,
        }
    }
}

#[derive(Debug)]
struct Query {
    id: String,
    sql: String,
    parameters: Vec<String>,
    database: Option<String>,
    catalog: Option<String>,
    work_group: Option<String>,
    output_location: Option<String>,
    statement_type: &'static str,
    submitted: f64,
    completed: f64,
    millis: u64,
    outcome: Outcome,
    polls_before_done: u32,
    polls: u32,
    cancelled_at: Option<f64>,
}

/// What a poll shows of a query.
struct Shown<'a> {
    state: &'static str,
    reason: Option<String>,
    error: Option<&'a AthenaError>,
    completed: Option<f64>,
}

impl Query {
    /// The status at the `poll`-th answered `GetQueryExecution` (1-based).
    fn shown(&self, poll: u32) -> Shown<'_> {
        let pending = |state| Shown {
            state,
            reason: None,
            error: None,
            completed: None,
        };
        if let Some(at) = self.cancelled_at {
            return Shown {
                state: "CANCELLED",
                reason: Some("Query was cancelled by user".to_owned()),
                error: None,
                completed: Some(at),
            };
        }
        if matches!(self.outcome, Outcome::Hanging) {
            return pending("RUNNING");
        }
        if poll <= self.polls_before_done {
            return pending(if poll <= 1 { "QUEUED" } else { "RUNNING" });
        }
        match &self.outcome {
            Outcome::Succeeded { .. } => Shown {
                state: "SUCCEEDED",
                reason: None,
                error: None,
                completed: Some(self.completed),
            },
            Outcome::Failed { reason, error } => Shown {
                state: "FAILED",
                reason: Some(reason.clone()),
                error: Some(error),
                completed: Some(self.completed),
            },
            Outcome::Hanging => pending("RUNNING"),
        }
    }

    /// The status a `GetQueryResults` or `StopQueryExecution` sees now.
    fn current(&self) -> Shown<'_> {
        if self.polls >= self.polls_before_done {
            self.shown(u32::MAX)
        } else {
            self.shown(self.polls.max(1))
        }
    }

    fn final_state(&self) -> (&'static str, Option<String>) {
        if self.cancelled_at.is_some() {
            return ("CANCELLED", Some("Query was cancelled by user".to_owned()));
        }
        match &self.outcome {
            Outcome::Succeeded { .. } => ("SUCCEEDED", None),
            Outcome::Failed { reason, .. } => ("FAILED", Some(reason.clone())),
            Outcome::Hanging => ("RUNNING", None),
        }
    }
}

#[derive(Debug)]
struct FakeState {
    page_cap: usize,
    polls_before_done: u32,
    fail_next: Option<String>,
    hang_next: bool,
    throttle: u32,
    requests: BTreeMap<String, u64>,
    queries: Vec<Query>,
    tokens: HashMap<String, String>,
    next_id: u64,
}

impl Default for FakeState {
    fn default() -> Self {
        Self {
            page_cap: DEFAULT_PAGE_CAP,
            polls_before_done: 0,
            fail_next: None,
            hang_next: false,
            throttle: 0,
            requests: BTreeMap::new(),
            queries: Vec::new(),
            tokens: HashMap::new(),
            next_id: 0,
        }
    }
}

#[derive(Debug)]
struct Inner {
    seed: String,
    state: Mutex<FakeState>,
    engine: Engine,
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

type Shared = Arc<Inner>;

/// A running fake Athena on `127.0.0.1` and a free port.
pub struct FakeAthena {
    server: TestServer,
    inner: Shared,
}

impl fmt::Debug for FakeAthena {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeAthena")
            .field("url", &self.server.url())
            .finish_non_exhaustive()
    }
}

impl FakeAthena {
    /// Starts a server with an empty catalog (only the `default` database), no buckets, the
    /// default page cap, no poll script and no faults.
    pub fn start() -> Self {
        let bound = TestServer::bind("fake-athena");
        let inner = Arc::new(Inner {
            // Query ids are derived from the URL, so two fakes never hand out the same one.
            seed: bound.url().to_owned(),
            state: Mutex::new(FakeState::default()),
            engine: Engine::new(),
        });
        let app = Router::new()
            .route("/", post(handle))
            .with_state(Arc::clone(&inner));
        let server = bound.serve_router(Flavor::MultiThread(2), app);
        Self { server, inner }
    }

    /// The base URL to give the SDK as `endpoint_url`, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        self.server.url().to_owned()
    }

    /// A real `aws-sdk-athena` client for this server: region `us-east-1`, static test
    /// credentials, and the standard retry mode with up to `max_attempts` attempts and
    /// millisecond backoffs (so retry tests are fast).
    pub fn client(&self, max_attempts: u32) -> aws_sdk_athena::Client {
        use aws_sdk_athena::config::retry::RetryConfig;
        use aws_sdk_athena::config::{BehaviorVersion, Credentials, Region};
        let retry = RetryConfig::standard()
            .with_max_attempts(max_attempts)
            .with_initial_backoff(Duration::from_millis(1))
            .with_max_backoff(Duration::from_millis(20));
        let config = aws_sdk_athena::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(self.url())
            .credentials_provider(Credentials::new(
                "AKIDFAKEATHENA",
                "fake-athena-secret",
                None,
                None,
                "fake-athena",
            ))
            .retry_config(retry)
            .build();
        aws_sdk_athena::Client::from_conf(config)
    }

    fn state(&self) -> MutexGuard<'_, FakeState> {
        self.inner.state()
    }

    /// Makes `s3://<bucket>/<key>` read the file `<dir>/<key>`. Tables read their files when a
    /// query scans them, so mounting (or writing files) after a `CREATE` is fine.
    pub fn mount_bucket(&self, bucket: &str, dir: &Path) {
        self.inner
            .engine
            .buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(bucket.to_owned(), dir.to_path_buf());
    }

    /// Serves at most `rows` rows per `GetQueryResults` page, whatever `MaxResults` asks (at
    /// least 1).
    pub fn set_page_cap(&self, rows: usize) {
        self.state().page_cap = rows.max(1);
    }

    /// Queries started from now on answer `QUEUED` to their first `GetQueryExecution`, then
    /// `RUNNING`, until `polls` polls were answered; the next poll shows the final state.
    /// `GetQueryResults` fails until then. 0 (the default) shows the final state at once.
    pub fn set_polls_before_done(&self, polls: u32) {
        self.state().polls_before_done = polls;
    }

    /// The next `StartQueryExecution` ends `FAILED` with `reason` as its `StateChangeReason`
    /// and `AthenaError.ErrorMessage` (category 2, type [`USER_ERROR_TYPE`]), without running.
    pub fn fail_next_query(&self, reason: &str) {
        self.state().fail_next = Some(reason.to_owned());
    }

    /// The next `StartQueryExecution` stays `RUNNING` (without running) until a
    /// `StopQueryExecution` cancels it.
    pub fn hang_next_query(&self) {
        self.state().hang_next = true;
    }

    /// The next `requests` requests, whatever the operation, answer 400
    /// `TooManyRequestsException`.
    pub fn throttle_next(&self, requests: u32) {
        self.state().throttle = requests;
    }

    /// Signed requests received for `operation` (e.g. `"GetQueryResults"`), throttled and
    /// failed ones included.
    pub fn requests(&self, operation: &str) -> u64 {
        self.state().requests.get(operation).copied().unwrap_or(0)
    }

    /// Every `StartQueryExecution` so far, in order (a retried request with the same
    /// `ClientRequestToken` is listed once, as Athena starts it once).
    pub fn executions(&self) -> Vec<Execution> {
        self.state()
            .queries
            .iter()
            .map(|q| {
                let (state, reason) = q.final_state();
                Execution {
                    id: q.id.clone(),
                    query: q.sql.clone(),
                    parameters: q.parameters.clone(),
                    database: q.database.clone(),
                    work_group: q.work_group.clone(),
                    output_location: q.output_location.clone(),
                    state: state.to_owned(),
                    reason,
                }
            })
            .collect()
    }

    /// The tables and views registered in `database`, sorted (empty if it does not exist).
    pub fn tables(&self, database: &str) -> Vec<String> {
        let mut names = self
            .inner
            .engine
            .catalog
            .schema(&database.to_lowercase())
            .map(|s| s.table_names())
            .unwrap_or_default();
        names.sort();
        names
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn json_response(body: &Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-amz-json-1.1")],
        body.to_string(),
    )
        .into_response()
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "__type": code, "Message": message });
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/x-amz-json-1.1")],
        body.to_string(),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(code) {
        response.headers_mut().insert("x-amzn-ErrorType", value);
    }
    response
}

fn invalid(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "InvalidRequestException", message)
}

async fn handle(State(inner): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let operation = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix("AmazonAthena."))
        .unwrap_or_default()
        .to_owned();
    if !headers.contains_key(header::AUTHORIZATION) {
        return error(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            "Missing Authentication Token",
        );
    }
    {
        let mut s = inner.state();
        *s.requests.entry(operation.clone()).or_default() += 1;
        if s.throttle > 0 {
            s.throttle -= 1;
            return error(
                StatusCode::BAD_REQUEST,
                "TooManyRequestsException",
                "Rate exceeded",
            );
        }
    }
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "SerializationException",
                "the request body is not a JSON object",
            );
        }
    };
    match operation.as_str() {
        "StartQueryExecution" => start_query(&inner, &request).await,
        "GetQueryExecution" => get_query_execution(&inner, &request),
        "GetQueryResults" => get_query_results(&inner, &request),
        "StopQueryExecution" => stop_query(&inner, &request),
        _ => error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            &format!("the fake Athena does not implement {operation:?}"),
        ),
    }
}

fn text(request: &Value, pointer: &str) -> Option<String> {
    request
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

async fn start_query(inner: &Shared, request: &Value) -> Response {
    let Some(sql) = text(request, "/QueryString") else {
        return invalid("QueryString is required");
    };
    let database = text(request, "/QueryExecutionContext/Database");
    let catalog = text(request, "/QueryExecutionContext/Catalog");
    let work_group = text(request, "/WorkGroup");
    let output_location = text(request, "/ResultConfiguration/OutputLocation");
    let token = text(request, "/ClientRequestToken");
    let parameters: Vec<String> = match request.get("ExecutionParameters") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            let strings: Option<Vec<String>> = items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect();
            match strings {
                Some(s) if !s.is_empty() => s,
                _ => return invalid("ExecutionParameters must be a non-empty list of strings"),
            }
        }
        Some(_) => return invalid("ExecutionParameters must be a list of strings"),
    };
    let (id, fail, hang, polls_before_done) = {
        let mut s = inner.state();
        if let Some(id) = token.as_ref().and_then(|t| s.tokens.get(t)) {
            return json_response(&json!({ "QueryExecutionId": id }));
        }
        s.next_id += 1;
        let id = crate::fake_connect::fake_uuid(&inner.seed, s.next_id);
        let hang = std::mem::take(&mut s.hang_next);
        (id, s.fail_next.take(), hang, s.polls_before_done)
    };
    let submitted = now();
    let started = Instant::now();
    let statement_type = statement_kind(&sql).statement_type();
    let outcome = if hang {
        Outcome::Hanging
    } else if let Some(reason) = fail {
        Outcome::failed(reason)
    } else {
        inner
            .engine
            .execute(&sql, &parameters, database.as_deref())
            .await
    };
    let millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut s = inner.state();
    if let Some(token) = token {
        s.tokens.insert(token, id.clone());
    }
    s.queries.push(Query {
        id: id.clone(),
        sql,
        parameters,
        database,
        catalog,
        work_group,
        output_location,
        statement_type,
        submitted,
        completed: now(),
        millis,
        outcome,
        polls_before_done,
        polls: 0,
        cancelled_at: None,
    });
    json_response(&json!({ "QueryExecutionId": id }))
}

/// The query a request names, or the `InvalidRequestException` message.
fn find<'a>(s: &'a mut FakeState, request: &Value) -> Result<&'a mut Query, String> {
    let Some(id) = request.get("QueryExecutionId").and_then(Value::as_str) else {
        return Err("QueryExecutionId is required".to_owned());
    };
    s.queries
        .iter_mut()
        .find(|q| q.id == id)
        .ok_or_else(|| format!("QueryExecution {id} was not found"))
}

fn get_query_execution(inner: &Shared, request: &Value) -> Response {
    let mut s = inner.state();
    let q = match find(&mut s, request) {
        Ok(q) => q,
        Err(m) => return invalid(&m),
    };
    q.polls = q.polls.saturating_add(1);
    let shown = q.shown(q.polls);
    let mut status = json!({
        "State": shown.state,
        "SubmissionDateTime": q.submitted,
    });
    if let Some(reason) = &shown.reason {
        status["StateChangeReason"] = json!(reason);
    }
    if let Some(at) = shown.completed {
        status["CompletionDateTime"] = json!(at);
    }
    if let Some(e) = shown.error {
        status["AthenaError"] = json!({
            "ErrorCategory": e.category,
            "ErrorType": e.error_type,
            "Retryable": e.retryable,
            "ErrorMessage": e.message,
        });
    }
    let (scanned, millis) = match (&q.outcome, shown.state) {
        (Outcome::Succeeded { scanned, .. }, "SUCCEEDED") => (*scanned, q.millis),
        (_, "FAILED") => (0, q.millis),
        _ => (0, 0),
    };
    let mut context = Map::new();
    if let Some(db) = &q.database {
        context.insert("Database".into(), json!(db));
    }
    if let Some(catalog) = &q.catalog {
        context.insert("Catalog".into(), json!(catalog));
    }
    let mut execution = json!({
        "QueryExecutionId": q.id,
        "Query": q.sql,
        "StatementType": q.statement_type,
        "QueryExecutionContext": context,
        "WorkGroup": q.work_group.as_deref().unwrap_or("primary"),
        "Status": status,
        "Statistics": {
            "DataScannedInBytes": scanned,
            "EngineExecutionTimeInMillis": millis,
            "TotalExecutionTimeInMillis": millis,
            "QueryQueueTimeInMillis": 0,
        },
    });
    if let Some(output) = &q.output_location {
        execution["ResultConfiguration"] = json!({
            "OutputLocation": format!("{}/{}.csv", output.trim_end_matches('/'), q.id),
        });
    }
    if !q.parameters.is_empty() {
        execution["ExecutionParameters"] = json!(q.parameters);
    }
    json_response(&json!({ "QueryExecution": execution }))
}

fn get_query_results(inner: &Shared, request: &Value) -> Response {
    let mut s = inner.state();
    let page_cap = s.page_cap;
    let q = match find(&mut s, request) {
        Ok(q) => q,
        Err(m) => return invalid(&m),
    };
    let max = match request.get("MaxResults") {
        None | Some(Value::Null) => DEFAULT_PAGE_CAP,
        Some(v) => match v.as_u64().and_then(|n| usize::try_from(n).ok()) {
            Some(n) if (1..=DEFAULT_PAGE_CAP).contains(&n) => n,
            _ => return invalid("MaxResults must be between 1 and 1000"),
        },
    };
    let shown = q.current();
    let result = match (&q.outcome, shown.state) {
        (Outcome::Succeeded { result, .. }, "SUCCEEDED") => Arc::clone(result),
        (_, state @ ("QUEUED" | "RUNNING")) => {
            return invalid(&format!(
                "Query has not yet finished. Current state: {state}"
            ));
        }
        (_, state) => {
            let reason = shown.reason.unwrap_or_default();
            return invalid(&format!(
                "Query did not finish successfully. Final query state: {state}\n{reason}"
            ));
        }
    };
    let start = match request.get("NextToken").and_then(Value::as_str) {
        None => 0,
        Some(token) => match token
            .split_once('.')
            .filter(|(_, id)| *id == q.id)
            .and_then(|(n, _)| n.parse::<usize>().ok())
        {
            Some(n) if n <= result.rows.len() => n,
            _ => return invalid("The NextToken is not valid"),
        },
    };
    let end = (start + max.min(page_cap)).min(result.rows.len());
    let rows: Vec<Value> = result.rows[start..end]
        .iter()
        .map(|row| {
            let data: Vec<Value> = row
                .iter()
                .map(|v| {
                    v.as_ref()
                        .map_or_else(|| json!({}), |v| json!({ "VarCharValue": v }))
                })
                .collect();
            json!({ "Data": data })
        })
        .collect();
    let columns: Vec<Value> = result
        .columns
        .iter()
        .map(|(name, ty)| {
            json!({
                "CatalogName": "hive",
                "SchemaName": "",
                "TableName": "",
                "Name": name,
                "Label": name,
                "Type": ty,
                "Precision": precision(ty),
                "Scale": 0,
                "Nullable": "UNKNOWN",
                "CaseSensitive": ty == "varchar",
            })
        })
        .collect();
    let mut body = json!({
        "UpdateCount": 0,
        "ResultSet": {
            "Rows": rows,
            "ResultSetMetadata": { "ColumnInfo": columns },
        },
    });
    if end < result.rows.len() {
        body["NextToken"] = json!(format!("{end}.{}", q.id));
    }
    json_response(&body)
}

fn precision(athena_type: &str) -> i64 {
    match athena_type {
        "varchar" | "array" | "map" | "row" | "json" => 2_147_483_647,
        "bigint" => 19,
        "integer" => 10,
        "smallint" => 5,
        "double" => 17,
        "real" => 7,
        "tinyint" | "timestamp" | "timestamp with time zone" => 3,
        _ => 0,
    }
}

fn stop_query(inner: &Shared, request: &Value) -> Response {
    let mut s = inner.state();
    let q = match find(&mut s, request) {
        Ok(q) => q,
        Err(m) => return invalid(&m),
    };
    if matches!(q.current().state, "QUEUED" | "RUNNING") {
        q.cancelled_at = Some(now());
    }
    json_response(&json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io::Write as _;

    use aws_sdk_athena::types::{QueryExecutionContext, ResultConfiguration};

    use super::test_support::{CLOUDTRAIL_DDL, Rows, USERS_DDL, runtime, s};

    const SELECT_TRAIL: &str = r#"SELECT eventid,
       json_extract_scalar(requestparameters, '$.UserId') AS user_id,
       useridentity.sessioncontext.sessionissuer.username AS issuer,
       "$path" AS path, account, region, "date",
       regexp_extract("$path", '_CloudTrail_([a-z0-9-]+)_', 1) AS file_region,
       responseelements, readonly, cardinality(resources) AS resources_count,
       row_number() OVER (PARTITION BY eventid ORDER BY "$path") AS rn
FROM "connect_audit"."cloudtrail"
WHERE eventsource = ? -- a ? in a comment is not a placeholder
  AND from_iso8601_timestamp(eventtime) >= from_iso8601_timestamp(?)
  AND eventname <> 'What?'
ORDER BY eventid, rn"#;

    fn record(id: &str, time: &str, user: &str) -> Value {
        json!({
            "eventVersion": "1.09",
            "userIdentity": {
                "type": "AssumedRole",
                "principalId": "AROAEXAMPLE:alice",
                "arn": "arn:aws:sts::111122223333:assumed-role/Admin/alice",
                "accountId": "111122223333",
                "sessionContext": {
                    "sessionIssuer": {
                        "type": "Role",
                        "principalId": "AROAEXAMPLE",
                        "arn": "arn:aws:iam::111122223333:role/Admin",
                        "accountId": "111122223333",
                        "userName": "Admin"
                    },
                    "attributes": {"creationDate": "2024-05-02T00:00:00Z", "mfaAuthenticated": "false"},
                    "webIdFederationData": {}
                }
            },
            "eventTime": time,
            "eventSource": "connect.amazonaws.com",
            "eventName": "UpdateUserSecurityProfiles",
            "awsRegion": "us-east-1",
            "sourceIPAddress": "192.0.2.1",
            "userAgent": "aws-cli/2",
            "requestParameters": {"UserId": user, "InstanceId": "inst-1", "SecurityProfileIds": ["sp-1"]},
            "responseElements": null,
            "requestID": format!("req-{id}"),
            "eventID": id,
            "readOnly": false,
            "resources": [{"ARN": "arn:aws:connect:us-east-1:111122223333:instance/inst-1", "accountId": "111122223333", "type": "AWS::Connect::Instance"}],
            "eventType": "AwsApiCall",
            "recipientAccountId": "111122223333",
            "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256", "clientProvidedHostHeader": "connect.us-east-1.amazonaws.com"}
        })
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).expect("gzip");
        encoder.finish().expect("gzip")
    }

    fn write(path: &Path, bytes: &[u8]) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, bytes).expect("write");
    }

    /// A trail in `dir` (the bucket root): 8 Connect records on 05/02, one of them again in
    /// a second file, one in Tokyo on 05/03 (plain `.json`), one too old, a digest file and a
    /// file without `Records`.
    fn make_trail(dir: &Path) {
        let base = dir.join("logs/AWSLogs/111122223333/CloudTrail");
        let day = base.join("us-east-1/2024/05/02");
        let mut records: Vec<Value> = (1..=8)
            .map(|i| {
                record(
                    &format!("ev-{i}"),
                    &format!("2024-05-02T01:0{i}:00Z"),
                    &format!("user-{i}"),
                )
            })
            .collect();
        records.push(record("ev-0", "2024-04-30T23:59:59Z", "user-0"));
        let doc = json!({ "Records": records });
        write(
            &day.join("111122223333_CloudTrail_us-east-1_20240502T0000Z_a.json.gz"),
            &gzip(doc.to_string().as_bytes()),
        );
        let dup = json!({ "Records": [record("ev-1", "2024-05-02T01:01:00Z", "user-1")] });
        write(
            &day.join("111122223333_CloudTrail_us-east-1_20240502T0005Z_b.json.gz"),
            &gzip(dup.to_string().as_bytes()),
        );
        let digest = json!({ "Records": [record("ev-digest", "2024-05-02T01:00:00Z", "x")] });
        write(
            &day.join(
                "111122223333_CloudTrail-Digest_us-east-1_trail_us-east-1_20240502T000000Z.json.gz",
            ),
            &gzip(digest.to_string().as_bytes()),
        );
        write(
            &day.join("111122223333_CloudTrail_us-east-1_20240502T0010Z_c.json.gz"),
            &gzip(br#"{"awsAccountId":"111122223333","digestStartTime":"2024-05-02T00:00:00Z"}"#),
        );
        let tokyo = json!({ "Records": [record("ev-9", "2024-05-03T09:00:00Z", "user-9")] });
        write(
            &base.join("ap-northeast-1/2024/05/03/111122223333_CloudTrail_ap-northeast-1_20240503T0900Z_d.json"),
            tokyo.to_string().as_bytes(),
        );
    }

    fn make_users(dir: &Path) {
        for (id, name, deleted) in [
            ("user-1", "kenji.tanaka", false),
            ("user-2", "yuki.sato", true),
        ] {
            let doc = json!({
                "Arn": format!("arn:aws:connect:us-east-1:111122223333:instance/inst-1/agent/{id}"),
                "Id": id,
                "Username": name,
                "InstanceId": "inst-1",
                "LastModifiedTime": "2024-05-06T00:40:12Z",
                "Email": format!("{name}@example.com"),
                "FirstSeen": "2024-04-01T00:05:00Z",
                "LastSeen": "2024-05-07T00:05:00Z",
                "Deleted": deleted,
            });
            write(
                &dir.join(format!("snapshot/users/{id}.json")),
                format!("{doc}\n").as_bytes(),
            );
        }
    }

    /// Starts `sql` and polls until it ends: (id, state, reason, every state seen).
    async fn run(
        client: &aws_sdk_athena::Client,
        sql: &str,
        parameters: &[&str],
    ) -> (String, String, Option<String>, Vec<String>) {
        let started = client
            .start_query_execution()
            .query_string(sql)
            .query_execution_context(
                QueryExecutionContext::builder()
                    .database("connect_audit")
                    .catalog("AwsDataCatalog")
                    .build(),
            )
            .work_group("primary")
            .result_configuration(
                ResultConfiguration::builder()
                    .output_location("s3://results-bucket/athena/")
                    .build(),
            )
            .set_execution_parameters(if parameters.is_empty() {
                None
            } else {
                Some(parameters.iter().map(|p| (*p).to_owned()).collect())
            })
            .send()
            .await
            .expect("StartQueryExecution");
        let id = started.query_execution_id().expect("id").to_owned();
        let mut seen = Vec::new();
        for _ in 0..50 {
            let out = client
                .get_query_execution()
                .query_execution_id(&id)
                .send()
                .await
                .expect("GetQueryExecution");
            let status = out
                .query_execution()
                .and_then(|q| q.status())
                .expect("status");
            let state = status.state().expect("state").as_str().to_owned();
            seen.push(state.clone());
            if matches!(state.as_str(), "SUCCEEDED" | "FAILED" | "CANCELLED") {
                return (
                    id,
                    state,
                    status.state_change_reason().map(str::to_owned),
                    seen,
                );
            }
        }
        panic!("query {id} never finished: {seen:?}");
    }

    async fn run_ok(client: &aws_sdk_athena::Client, sql: &str, parameters: &[&str]) -> String {
        let (id, state, reason, _) = run(client, sql, parameters).await;
        assert_eq!(state, "SUCCEEDED", "{sql}: {reason:?}");
        id
    }

    /// Every row of a result (header row first), following `NextToken`; and the page count.
    async fn results(
        client: &aws_sdk_athena::Client,
        id: &str,
    ) -> (Rows, Vec<(String, String)>, usize) {
        let mut rows = Vec::new();
        let mut columns = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let out = client
                .get_query_results()
                .query_execution_id(id)
                .max_results(1000)
                .set_next_token(token.clone())
                .send()
                .await
                .expect("GetQueryResults");
            pages += 1;
            let set = out.result_set().expect("ResultSet");
            if columns.is_empty() {
                columns = set
                    .result_set_metadata()
                    .map(|m| {
                        m.column_info()
                            .iter()
                            .map(|c| (c.name().to_owned(), c.r#type().to_owned()))
                            .collect()
                    })
                    .unwrap_or_default();
            }
            for row in set.rows() {
                rows.push(
                    row.data()
                        .iter()
                        .map(|d| d.var_char_value().map(str::to_owned))
                        .collect(),
                );
            }
            token = out.next_token().map(str::to_owned);
            if token.is_none() {
                return (rows, columns, pages);
            }
        }
    }

    async fn setup(fake: &FakeAthena, client: &aws_sdk_athena::Client) {
        run_ok(
            client,
            "CREATE DATABASE IF NOT EXISTS `connect_audit`\nCOMMENT 'audit'\n\
             LOCATION 's3://lake/db/' WITH DBPROPERTIES ('owner'='audit', 'team'='blue')",
            &[],
        )
        .await;
        run_ok(
            client,
            "CREATE SCHEMA IF NOT EXISTS connect_audit COMMENT 'again'",
            &[],
        )
        .await;
        run_ok(client, CLOUDTRAIL_DDL, &[]).await;
        run_ok(client, USERS_DDL, &[]).await;
        assert_eq!(
            fake.tables("connect_audit"),
            ["cloudtrail", "connect_users"]
        );
    }

    #[test]
    fn cloudtrail_table_is_queried_through_the_sdk_in_pages() {
        let dir = tempfile::tempdir().expect("tempdir");
        make_trail(&dir.path().join("trail"));
        let fake = FakeAthena::start();
        fake.mount_bucket("trail-bucket", &dir.path().join("trail"));
        fake.mount_bucket("snap-bucket", &dir.path().join("snap"));
        let client = fake.client(3);
        runtime().block_on(async {
            setup(&fake, &client).await;
            // IF NOT EXISTS on an existing table is a no-op; without it, a failure.
            run_ok(&client, CLOUDTRAIL_DDL, &[]).await;
            let (_, state, reason, _) =
                run(&client, &CLOUDTRAIL_DDL.replace(" IF NOT EXISTS", ""), &[]).await;
            assert_eq!(state, "FAILED");
            assert_eq!(reason.as_deref(), Some("AlreadyExistsException: Table already exists"));

            fake.set_page_cap(2);
            let before = fake.requests("GetQueryResults");
            let id = run_ok(
                &client,
                SELECT_TRAIL,
                &["'connect.amazonaws.com'", "'2024-05-01T00:00:00Z'"],
            )
            .await;
            let (rows, columns, pages) = results(&client, &id).await;
            assert_eq!(rows.len(), 11, "header + 10 rows: {rows:#?}");
            assert_eq!(pages, 6);
            assert_eq!(fake.requests("GetQueryResults") - before, 6);
            let header: Vec<Option<String>> = [
                "eventid", "user_id", "issuer", "path", "account", "region", "date",
                "file_region", "responseelements", "readonly", "resources_count", "rn",
            ]
            .iter()
            .map(|n| s(n))
            .collect();
            assert_eq!(rows[0], header);
            assert_eq!(columns[0], ("eventid".to_owned(), "varchar".to_owned()));
            assert_eq!(columns[11], ("rn".to_owned(), "bigint".to_owned()));
            let ev1: Vec<&Vec<Option<String>>> =
                rows.iter().filter(|r| r[0] == s("ev-1")).collect();
            assert_eq!(ev1.len(), 2);
            let a = "s3://trail-bucket/logs/AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/02/111122223333_CloudTrail_us-east-1_20240502T0000Z_a.json.gz";
            assert_eq!(
                *ev1[0],
                vec![
                    s("ev-1"),
                    s("user-1"),
                    s("Admin"),
                    s(a),
                    s("111122223333"),
                    s("us-east-1"),
                    s("2024/05/02"),
                    s("us-east-1"),
                    None,
                    s("false"),
                    s("1"),
                    s("1"),
                ]
            );
            assert_eq!(ev1[1][11], s("2"));
            assert!(ev1[1][3].as_deref().is_some_and(|p| p.ends_with("_b.json.gz")));
            let ev9 = rows.iter().find(|r| r[0] == s("ev-9")).expect("Tokyo record");
            assert_eq!(ev9[5], s("ap-northeast-1"));
            assert_eq!(ev9[6], s("2024/05/03"));
            assert!(!rows.iter().any(|r| r[0] == s("ev-0") || r[0] == s("ev-digest")));

            let execution = client
                .get_query_execution()
                .query_execution_id(&id)
                .send()
                .await
                .expect("GetQueryExecution");
            let q = execution.query_execution().expect("execution");
            assert_eq!(q.statement_type().map(aws_sdk_athena::types::StatementType::as_str), Some("DML"));
            assert_eq!(
                q.result_configuration().and_then(|r| r.output_location()),
                Some(format!("s3://results-bucket/athena/{id}.csv").as_str())
            );
            assert_eq!(
                q.execution_parameters(),
                ["'connect.amazonaws.com'", "'2024-05-01T00:00:00Z'"]
            );
            let scanned = q
                .statistics()
                .and_then(aws_sdk_athena::types::QueryExecutionStatistics::data_scanned_in_bytes)
                .expect("scanned");
            assert!(scanned > 0);
            assert!(q.status().and_then(|s| s.completion_date_time()).is_some());

            // The whole record: JSON text of objects, NULL of JSON nulls, timestamps rendered.
            let id = run_ok(
                &client,
                r#"SELECT requestparameters, from_iso8601_timestamp(eventtime) AS t, useridentity.sessioncontext.webidfederationdata AS web
                   FROM "connect_audit"."cloudtrail" WHERE eventid = 'ev-2'"#,
                &[],
            )
            .await;
            let (rows, columns, _) = results(&client, &id).await;
            assert_eq!(
                rows[1][0].as_deref().map(|t| serde_json::from_str::<Value>(t).expect("json")),
                Some(json!({"UserId": "user-2", "InstanceId": "inst-1", "SecurityProfileIds": ["sp-1"]}))
            );
            assert_eq!(rows[1][1], s("2024-05-02 01:02:00.000 UTC"));
            assert_eq!(columns[1].1, "timestamp with time zone");
            assert_eq!(columns[2].1, "map");
        });

        let executions = fake.executions();
        assert_eq!(executions.len(), 8);
        let select = &executions[6];
        assert_eq!(select.query, SELECT_TRAIL);
        assert_eq!(select.database.as_deref(), Some("connect_audit"));
        assert_eq!(select.work_group.as_deref(), Some("primary"));
        assert_eq!(
            select.output_location.as_deref(),
            Some("s3://results-bucket/athena/")
        );
        assert_eq!(select.state, "SUCCEEDED");
        assert_eq!(executions[5].state, "FAILED");
    }

    #[test]
    fn json_serde_table_joins_the_trail_and_views_work() {
        let dir = tempfile::tempdir().expect("tempdir");
        make_trail(&dir.path().join("trail"));
        make_users(&dir.path().join("snap"));
        write(
            &dir.path().join("snap/snapshot/broken/x.json"),
            b"{\"Id\":\"a\"}\nnot json\n",
        );
        let fake = FakeAthena::start();
        fake.mount_bucket("trail-bucket", &dir.path().join("trail"));
        fake.mount_bucket("snap-bucket", &dir.path().join("snap"));
        let client = fake.client(3);
        runtime().block_on(async {
            setup(&fake, &client).await;
            let id = run_ok(
                &client,
                r#"SELECT u.username, u.deleted, u."$path" AS path, count(*) AS changes
                   FROM "connect_audit"."cloudtrail" c
                   JOIN "connect_audit"."connect_users" u
                     ON json_extract_scalar(c.requestparameters, '$.UserId') = u.id
                   GROUP BY u.username, u.deleted, u."$path"
                   ORDER BY u.username"#,
                &[],
            )
            .await;
            let (rows, columns, _) = results(&client, &id).await;
            assert_eq!(
                rows,
                vec![
                    vec![s("username"), s("deleted"), s("path"), s("changes")],
                    vec![s("kenji.tanaka"), s("false"), s("s3://snap-bucket/snapshot/users/user-1.json"), s("2")],
                    vec![s("yuki.sato"), s("true"), s("s3://snap-bucket/snapshot/users/user-2.json"), s("1")],
                ]
            );
            assert_eq!(columns[1].1, "boolean");

            // A file written after the CREATE is read by the next query.
            write(
                &dir.path().join("snap/snapshot/users/user-3.json"),
                br#"{"Id":"user-3","USERNAME":"new.agent","Deleted":false,"Extra":1}"#,
            );
            let id = run_ok(&client, r#"SELECT id, username, email FROM "connect_users" ORDER BY id"#, &[]).await;
            let (rows, _, _) = results(&client, &id).await;
            assert_eq!(rows.len(), 4);
            assert_eq!(rows[3], vec![s("user-3"), s("new.agent"), None]);

            // Views.
            run_ok(
                &client,
                r#"CREATE OR REPLACE VIEW "connect_audit"."active_users" AS SELECT id, username FROM "connect_audit"."connect_users" WHERE NOT deleted"#,
                &[],
            )
            .await;
            assert!(fake.tables("connect_audit").contains(&"active_users".to_owned()));
            let id = run_ok(&client, r#"SELECT username FROM "connect_audit"."active_users" ORDER BY username"#, &[]).await;
            let (rows, _, _) = results(&client, &id).await;
            assert_eq!(rows, vec![vec![s("username")], vec![s("kenji.tanaka")], vec![s("new.agent")]]);

            // A line that is not a JSON object fails the query that reads it, not the CREATE.
            run_ok(
                &client,
                "CREATE EXTERNAL TABLE `connect_audit`.`broken` (`id` string) \
                 ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe' \
                 LOCATION 's3://snap-bucket/snapshot/broken/'",
                &[],
            )
            .await;
            let (_, state, reason, _) =
                run(&client, r#"SELECT * FROM "connect_audit"."broken""#, &[]).await;
            assert_eq!(state, "FAILED");
            let reason = reason.expect("reason");
            assert!(reason.starts_with("HIVE_CURSOR_ERROR: Row is not a valid JSON Object"), "{reason}");
            assert!(reason.ends_with("(file s3://snap-bucket/snapshot/broken/x.json)"), "{reason}");

            run_ok(&client, "DROP TABLE IF EXISTS `connect_audit`.`broken`", &[]).await;
            assert!(!fake.tables("connect_audit").contains(&"broken".to_owned()));
        });
    }

    #[test]
    fn faults_and_poll_script() {
        let fake = FakeAthena::start();
        let client = fake.client(3);
        runtime().block_on(async {
            run_ok(&client, "CREATE DATABASE `connect_audit`", &[]).await;

            // fail_next_query
            fake.fail_next_query("HIVE_BAD_DATA: injected");
            let (id, state, reason, _) = run(&client, "SELECT 1", &[]).await;
            assert_eq!(
                (state.as_str(), reason.as_deref()),
                ("FAILED", Some("HIVE_BAD_DATA: injected"))
            );
            let out = client
                .get_query_execution()
                .query_execution_id(&id)
                .send()
                .await
                .expect("get");
            let error = out
                .query_execution()
                .and_then(|q| q.status())
                .and_then(|s| s.athena_error())
                .expect("AthenaError");
            assert_eq!(error.error_category(), Some(2));
            assert_eq!(error.error_type(), Some(1006));
            assert!(!error.retryable());
            assert_eq!(error.error_message(), Some("HIVE_BAD_DATA: injected"));

            // hang + stop
            fake.hang_next_query();
            let id = client
                .start_query_execution()
                .query_string("SELECT 1")
                .send()
                .await
                .expect("start")
                .query_execution_id()
                .expect("id")
                .to_owned();
            for _ in 0..3 {
                let out = client
                    .get_query_execution()
                    .query_execution_id(&id)
                    .send()
                    .await
                    .expect("get");
                let state = out
                    .query_execution()
                    .and_then(|q| q.status())
                    .and_then(|s| s.state())
                    .expect("state");
                assert_eq!(state.as_str(), "RUNNING");
            }
            client
                .stop_query_execution()
                .query_execution_id(&id)
                .send()
                .await
                .expect("stop");
            let out = client
                .get_query_execution()
                .query_execution_id(&id)
                .send()
                .await
                .expect("get");
            let status = out
                .query_execution()
                .and_then(|q| q.status())
                .expect("status");
            assert_eq!(
                status
                    .state()
                    .map(aws_sdk_athena::types::QueryExecutionState::as_str),
                Some("CANCELLED")
            );
            assert_eq!(
                status.state_change_reason(),
                Some("Query was cancelled by user")
            );
            assert_eq!(fake.requests("StopQueryExecution"), 1);

            // throttling: the SDK retries
            let before = fake.requests("GetQueryExecution");
            fake.throttle_next(2);
            client
                .get_query_execution()
                .query_execution_id(&id)
                .send()
                .await
                .expect("retried");
            assert_eq!(fake.requests("GetQueryExecution") - before, 3);

            // poll script
            fake.set_polls_before_done(3);
            let id = client
                .start_query_execution()
                .query_string("SELECT 42 AS answer")
                .send()
                .await
                .expect("start")
                .query_execution_id()
                .expect("id")
                .to_owned();
            let early = client
                .get_query_results()
                .query_execution_id(&id)
                .send()
                .await
                .expect_err("not done");
            let service = early.into_service_error();
            assert!(service.is_invalid_request_exception(), "{service:?}");
            assert_eq!(
                aws_sdk_athena::error::ProvideErrorMetadata::message(&service),
                Some("Query has not yet finished. Current state: QUEUED")
            );
            let mut seen_states = Vec::new();
            for _ in 0..4 {
                let out = client
                    .get_query_execution()
                    .query_execution_id(&id)
                    .send()
                    .await
                    .expect("get");
                seen_states.push(
                    out.query_execution()
                        .and_then(|q| q.status())
                        .and_then(|s| s.state())
                        .expect("state")
                        .as_str()
                        .to_owned(),
                );
            }
            assert_eq!(seen_states, ["QUEUED", "RUNNING", "RUNNING", "SUCCEEDED"]);
            let (rows, _, _) = results(&client, &id).await;
            assert_eq!(rows, vec![vec![s("answer")], vec![s("42")]]);
            fake.set_polls_before_done(0);

            // unknown id
            let unknown = client
                .get_query_execution()
                .query_execution_id("nope")
                .send()
                .await
                .expect_err("unknown");
            assert!(unknown.into_service_error().is_invalid_request_exception());

            // SQL error: FAILED with DataFusion's message
            let (_, state, reason, _) = run(
                &client,
                r#"SELECT nope FROM "connect_audit"."missing""#,
                &[],
            )
            .await;
            assert_eq!(state, "FAILED");
            let reason = reason.expect("reason");
            assert!(
                reason.contains("missing") && reason.contains("not found"),
                "{reason}"
            );

            // from_iso8601_timestamp of garbage is an error, as in Trino
            let (_, state, reason, _) =
                run(&client, "SELECT from_iso8601_timestamp('yesterday')", &[]).await;
            assert_eq!(state, "FAILED");
            assert!(
                reason
                    .expect("reason")
                    .contains("Invalid format: \"yesterday\"")
            );

            // parameter injection is rejected, naming the parameter
            let (_, state, reason, _) = run(
                &client,
                "SELECT ? AS a, ? AS b",
                &["'x'", "1); DROP TABLE x"],
            )
            .await;
            assert_eq!(state, "FAILED");
            assert!(reason.expect("reason").contains("parameter 2"));
            let (_, state, reason, _) = run(&client, "SELECT ? AS a", &["'a'", "'b'"]).await;
            assert_eq!(state, "FAILED");
            assert!(reason.expect("reason").starts_with("INVALID_PARAMETER"));
            let id = run_ok(
                &client,
                "SELECT ? AS a, ? AS b, ? AS c",
                &["'x'' OR 1=1 --'", "-2", "TIMESTAMP '2024-05-01 00:00:00'"],
            )
            .await;
            let (rows, _, _) = results(&client, &id).await;
            assert_eq!(
                rows[1],
                vec![s("x' OR 1=1 --"), s("-2"), s("2024-05-01 00:00:00.000")]
            );

            // unsupported statements
            let (_, state, reason, _) = run(&client, "INSERT INTO t VALUES (1)", &[]).await;
            assert_eq!(state, "FAILED");
            assert!(reason.expect("reason").starts_with("unsupported statement"));
        });

        // Unsigned requests are refused.
        let response = runtime().block_on(async {
            let stream = tokio::net::TcpStream::connect(fake.url().trim_start_matches("http://"))
                .await
                .expect("connect");
            let (mut rd, mut wr) = stream.into_split();
            let body = r#"{"QueryExecutionId":"x"}"#;
            let request = format!(
                "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: AmazonAthena.GetQueryExecution\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            tokio::io::AsyncWriteExt::write_all(&mut wr, request.as_bytes()).await.expect("send");
            let mut out = String::new();
            tokio::io::AsyncReadExt::read_to_string(&mut rd, &mut out).await.expect("read");
            out
        });
        assert!(response.starts_with("HTTP/1.1 403"), "{response}");
        assert!(response.contains("AccessDeniedException"), "{response}");
    }
}
