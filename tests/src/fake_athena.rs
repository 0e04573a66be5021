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

use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};
use std::io::Read as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Field, Fields, Schema, SchemaRef, TimeUnit, TimestampMillisecondType,
};
use datafusion::arrow::json::ReaderBuilder;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::catalog::{
    CatalogProvider, MemTable, MemoryCatalogProvider, MemorySchemaProvider, Session, TableProvider,
};
use datafusion::common::{DataFusionError, ScalarValue, exec_err, plan_err};
use datafusion::datasource::TableType;
use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use regex::Regex;
use serde_json::{Map, Value, json};
use sqlparser::ast::{
    ArrayElemTypeDef, CreateTable, CreateTableOptions, DataType as SqlType, Expr as SqlExpr,
    HiveDistributionStyle, HiveIOFormat, HiveRowFormat, ObjectName, ObjectType, SchemaName,
    SqlOption, Statement, UnaryOperator, Value as SqlValue,
};
use sqlparser::dialect::{Dialect, GenericDialect};
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Location, Token, Tokenizer};

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

/// A `CREATE EXTERNAL TABLE` statement as [`parse_hive_ddl`] understood it. Names are
/// lower-cased, as Hive does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HiveTable {
    /// The database part of the table name, if the name had one.
    pub database: Option<String>,
    /// The table name.
    pub name: String,
    /// The declared columns and their types as lower-case text without spaces, e.g.
    /// `struct<type:string,arn:string>`.
    pub columns: Vec<(String, String)>,
    /// `PARTITIONED BY` columns and their types, same form.
    pub partitions: Vec<(String, String)>,
    /// `LOCATION`.
    pub location: String,
    /// `TBLPROPERTIES`.
    pub properties: BTreeMap<String, String>,
    /// `STORED AS INPUTFORMAT '…'`.
    pub input_format: Option<String>,
    /// `ROW FORMAT SERDE '…'`.
    pub serde: Option<String>,
}

/// Parses one Athena `CREATE EXTERNAL TABLE` statement (Hive DDL: backtick identifiers,
/// `struct<name:type>`, `array<…>`, `map<k,v>`), e.g. to check that generated DDL is what
/// Athena accepts and declares the expected columns.
pub fn parse_hive_ddl(sql: &str) -> Result<HiveTable, String> {
    parse_hive_table(sql).map(|t| t.table)
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
    url: String,
    inner: Shared,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for FakeAthena {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeAthena")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl FakeAthena {
    /// Starts a server with an empty catalog (only the `default` database), no buckets, the
    /// default page cap, no poll script and no faults.
    pub fn start() -> Self {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind the fake Athena server to a free port");
        listener
            .set_nonblocking(true)
            .expect("make the fake Athena listener non-blocking");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        let inner = Arc::new(Inner {
            seed: url.clone(),
            state: Mutex::new(FakeState::default()),
            engine: Engine::new(),
        });
        let app = Router::new()
            .route("/", post(handle))
            .with_state(Arc::clone(&inner));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("fake-athena".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("fake Athena runtime");
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .expect("fake Athena tokio listener");
                    axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = rx.await;
                        })
                        .await
                        .expect("fake Athena server");
                });
            })
            .expect("spawn the fake Athena thread");
        Self {
            url,
            inner,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// The base URL to give the SDK as `endpoint_url`, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        self.url.clone()
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

impl Drop for FakeAthena {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
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

// ---------------------------------------------------------------------------------------------
// The SQL engine

/// What a statement is, from its first words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Select,
    View,
    HiveDdl,
    Unsupported,
}

impl Kind {
    fn statement_type(self) -> &'static str {
        match self {
            Self::Select => "DML",
            _ => "DDL",
        }
    }
}

fn statement_kind(sql: &str) -> Kind {
    let Ok(tokens) = Tokenizer::new(&AthenaDdlDialect, sql).tokenize() else {
        return Kind::Unsupported;
    };
    let words: Vec<String> = tokens
        .iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .take(4)
        .map(|t| match t {
            Token::Word(w) if w.quote_style.is_none() => w.value.to_uppercase(),
            other => other.to_string(),
        })
        .collect();
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    match w.as_slice() {
        ["SELECT" | "WITH" | "VALUES" | "(", ..] => Kind::Select,
        ["CREATE", "VIEW", ..] | ["CREATE", "OR", "REPLACE", "VIEW"] => Kind::View,
        ["CREATE", "DATABASE" | "SCHEMA" | "EXTERNAL", ..]
        | ["DROP", "TABLE" | "VIEW" | "DATABASE" | "SCHEMA", ..] => Kind::HiveDdl,
        _ => Kind::Unsupported,
    }
}

type Buckets = Arc<Mutex<BTreeMap<String, PathBuf>>>;

#[derive(Debug, Clone)]
enum Registered {
    Table(Arc<HiveTableProvider>),
    View(String),
}

#[derive(Debug)]
struct Engine {
    catalog: Arc<MemoryCatalogProvider>,
    buckets: Buckets,
    /// (database, name) → what was registered, to find what a query reads.
    registry: Mutex<BTreeMap<(String, String), Registered>>,
}

impl Engine {
    fn new() -> Self {
        let catalog = Arc::new(MemoryCatalogProvider::new());
        catalog
            .register_schema("default", Arc::new(MemorySchemaProvider::new()))
            .expect("register the default database");
        Self {
            catalog,
            buckets: Buckets::default(),
            registry: Mutex::new(BTreeMap::new()),
        }
    }

    fn registry(&self) -> MutexGuard<'_, BTreeMap<(String, String), Registered>> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn session(&self, database: Option<&str>) -> SessionContext {
        let schema = database.map_or_else(|| "default".to_owned(), str::to_lowercase);
        let config = SessionConfig::new()
            .with_create_default_catalog_and_schema(false)
            .with_default_catalog_and_schema(CATALOG, schema)
            .with_information_schema(false);
        let ctx = SessionContext::new_with_config(config);
        let catalog: Arc<dyn CatalogProvider> = self.catalog.clone();
        ctx.register_catalog(CATALOG, Arc::clone(&catalog));
        ctx.register_catalog("AwsDataCatalog", catalog);
        for udf in athena_udfs() {
            ctx.register_udf(udf);
        }
        ctx
    }

    async fn execute(&self, sql: &str, parameters: &[String], database: Option<&str>) -> Outcome {
        let kind = statement_kind(sql);
        if kind != Kind::Select && !parameters.is_empty() {
            return Outcome::failed(
                "INVALID_PARAMETER: ExecutionParameters are only supported in SELECT statements",
            );
        }
        match kind {
            Kind::Select => self.select(sql, parameters, database).await,
            Kind::View => self.create_view(sql, database).await,
            Kind::HiveDdl => self.hive_ddl(sql, database),
            Kind::Unsupported => Outcome::failed(format!(
                "unsupported statement: the fake Athena runs SELECT, WITH, CREATE DATABASE, \
                 CREATE EXTERNAL TABLE, CREATE VIEW and DROP TABLE (got: {})",
                sql.trim().chars().take(60).collect::<String>()
            )),
        }
    }

    async fn select(&self, sql: &str, parameters: &[String], database: Option<&str>) -> Outcome {
        let (sql, values) = match bind_parameters(sql, parameters) {
            Ok(bound) => bound,
            Err(reason) => return Outcome::failed(reason),
        };
        let ctx = self.session(database);
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let run = async {
            let mut df = ctx.sql_with_options(&sql, options).await?;
            if !values.is_empty() {
                df = df.with_param_values(values)?;
            }
            let schema = Arc::new(df.schema().as_arrow().clone());
            let batches = df.collect().await?;
            Ok::<_, DataFusionError>((schema, batches))
        };
        match run.await {
            Ok((schema, batches)) => match render(&schema, &batches) {
                Ok(result) => Outcome::done(result, self.scanned(&sql)),
                Err(e) => Outcome::failed(failure_reason(&e)),
            },
            Err(e) => Outcome::failed(failure_reason(&e)),
        }
    }

    /// Bytes of the files last read by the tables `sql` names (through views too).
    fn scanned(&self, sql: &str) -> u64 {
        let registry = self.registry();
        let mut texts = vec![sql.to_owned()];
        let mut seen = std::collections::BTreeSet::new();
        let mut bytes = 0;
        while let Some(text) = texts.pop() {
            for (key, registered) in registry.iter() {
                if seen.contains(key) || !mentions(&text, &key.1) {
                    continue;
                }
                seen.insert(key.clone());
                match registered {
                    Registered::Table(t) => bytes += t.last_bytes.load(Ordering::Relaxed),
                    Registered::View(view_sql) => texts.push(view_sql.clone()),
                }
            }
        }
        bytes
    }

    async fn create_view(&self, sql: &str, database: Option<&str>) -> Outcome {
        let key = match Parser::parse_sql(&GenericDialect {}, sql) {
            Ok(statements) => match statements.as_slice() {
                [Statement::CreateView(view)] => {
                    let (db, name) = split_name(&view.name, database);
                    (db, name)
                }
                _ => return Outcome::failed("expected one CREATE VIEW statement"),
            },
            Err(e) => return Outcome::failed(e.to_string()),
        };
        let ctx = self.session(database);
        let options = SQLOptions::new()
            .with_allow_ddl(true)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let run = async {
            let df = ctx.sql_with_options(sql, options).await?;
            df.collect().await
        };
        match run.await {
            Ok(_) => {
                self.registry()
                    .insert(key, Registered::View(sql.to_owned()));
                Outcome::done(ResultTable::default(), 0)
            }
            Err(e) => Outcome::failed(failure_reason(&e)),
        }
    }

    fn hive_ddl(&self, sql: &str, database: Option<&str>) -> Outcome {
        let statements = match Parser::parse_sql(&AthenaDdlDialect, sql) {
            Ok(s) => s,
            Err(e) => return Outcome::failed(format!("line 1:1: {e}")),
        };
        let [statement] = statements.as_slice() else {
            return Outcome::failed("Only one sql statement is allowed");
        };
        let done = || Outcome::done(ResultTable::default(), 0);
        match statement {
            Statement::CreateDatabase {
                db_name,
                if_not_exists,
                ..
            } => self.create_database(&object_name_parts(db_name), *if_not_exists),
            Statement::CreateSchema {
                schema_name: SchemaName::Simple(name),
                if_not_exists,
                ..
            } => self.create_database(&object_name_parts(name), *if_not_exists),
            Statement::CreateTable(create) => {
                let parsed = match hive_table_from(create) {
                    Ok(p) => p,
                    Err(e) => return Outcome::failed(e),
                };
                self.create_table(parsed, database)
            }
            Statement::Drop {
                object_type: ObjectType::Table | ObjectType::View,
                if_exists,
                names,
                ..
            } => {
                for name in names {
                    let (db, table) = split_name(name, database);
                    let Some(schema) = self.catalog.schema(&db) else {
                        return Outcome::failed(format!(
                            "SemanticException [Error 10072]: Database does not exist: {db}"
                        ));
                    };
                    if schema.table_exist(&table) {
                        if let Err(e) = schema.deregister_table(&table) {
                            return Outcome::failed(e.to_string());
                        }
                        self.registry().remove(&(db, table));
                    } else if !*if_exists {
                        return Outcome::failed(format!(
                            "SemanticException [Error 10001]: Table not found {db}.{table}"
                        ));
                    }
                }
                done()
            }
            Statement::Drop {
                object_type: ObjectType::Database | ObjectType::Schema,
                if_exists,
                names,
                ..
            } => {
                for name in names {
                    let db = object_name_parts(name).join(".");
                    match self.catalog.schema(&db) {
                        Some(schema) if !schema.table_names().is_empty() => {
                            return Outcome::failed(format!(
                                "InvalidOperationException: Database {db} is not empty"
                            ));
                        }
                        Some(_) => {
                            if let Err(e) = self.catalog.deregister_schema(&db, false) {
                                return Outcome::failed(e.to_string());
                            }
                        }
                        None if *if_exists => {}
                        None => {
                            return Outcome::failed(format!(
                                "SemanticException [Error 10072]: Database does not exist: {db}"
                            ));
                        }
                    }
                }
                done()
            }
            _ => Outcome::failed("unsupported statement"),
        }
    }

    fn create_database(&self, parts: &[String], if_not_exists: bool) -> Outcome {
        let name = parts.join(".");
        if self.catalog.schema(&name).is_some() {
            if if_not_exists {
                return Outcome::done(ResultTable::default(), 0);
            }
            return Outcome::failed(format!(
                "AlreadyExistsException: Database {name} already exists"
            ));
        }
        match self
            .catalog
            .register_schema(&name, Arc::new(MemorySchemaProvider::new()))
        {
            Ok(_) => Outcome::done(ResultTable::default(), 0),
            Err(e) => Outcome::failed(e.to_string()),
        }
    }

    fn create_table(&self, parsed: ParsedTable, database: Option<&str>) -> Outcome {
        let db = parsed
            .table
            .database
            .clone()
            .or_else(|| database.map(str::to_lowercase))
            .unwrap_or_else(|| "default".to_owned());
        let Some(schema) = self.catalog.schema(&db) else {
            return Outcome::failed(format!(
                "SemanticException [Error 10072]: Database does not exist: {db}"
            ));
        };
        let name = parsed.table.name.clone();
        if schema.table_exist(&name) {
            if parsed.if_not_exists {
                return Outcome::done(ResultTable::default(), 0);
            }
            return Outcome::failed("AlreadyExistsException: Table already exists");
        }
        let provider = match HiveTableProvider::new(parsed, Arc::clone(&self.buckets)) {
            Ok(p) => Arc::new(p),
            Err(e) => return Outcome::failed(e),
        };
        if let Err(e) = schema.register_table(name.clone(), provider.clone()) {
            return Outcome::failed(e.to_string());
        }
        self.registry()
            .insert((db, name), Registered::Table(provider));
        Outcome::done(ResultTable::default(), 0)
    }
}

/// Whether `sql` mentions `name` as a whole word (case-insensitive).
fn mentions(sql: &str, name: &str) -> bool {
    Regex::new(&format!(
        r"(?i)(^|[^A-Za-z0-9_]){}([^A-Za-z0-9_]|$)",
        regex::escape(name)
    ))
    .is_ok_and(|re| re.is_match(sql))
}

/// The `StateChangeReason` of a DataFusion error: its text, or the Athena-style message a
/// table read produced (`HIVE_…`).
fn failure_reason(e: &DataFusionError) -> String {
    let text = e.to_string();
    match text.find("HIVE_") {
        Some(i) => text[i..].to_owned(),
        None => text,
    }
}

fn object_name_parts(name: &ObjectName) -> Vec<String> {
    name.0
        .iter()
        .map(|p| {
            p.as_ident()
                .map_or_else(|| p.to_string(), |i| i.value.clone())
        })
        .map(|s| s.to_lowercase())
        .collect()
}

/// (database, object) of a one- or two-part name (a leading catalog part is ignored).
fn split_name(name: &ObjectName, database: Option<&str>) -> (String, String) {
    let parts = object_name_parts(name);
    let default = || database.map_or_else(|| "default".to_owned(), str::to_lowercase);
    match parts.as_slice() {
        [.., db, table] => (db.clone(), table.clone()),
        [table] => (default(), table.clone()),
        [] => (default(), String::new()),
    }
}

// ---------------------------------------------------------------------------------------------
// Hive DDL

/// The DDL dialect: Hive identifiers (backticks, and double quotes), `struct<name:type>`,
/// `array<…>` and `map<k,v>` types.
#[derive(Debug, Default, Clone, Copy)]
struct AthenaDdlDialect;

impl Dialect for AthenaDdlDialect {
    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        ch == '`' || ch == '"'
    }

    fn is_identifier_start(&self, ch: char) -> bool {
        ch.is_ascii_alphabetic() || ch == '_'
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        ch.is_ascii_alphanumeric() || ch == '_' || ch == '$'
    }

    fn supports_struct_literal(&self) -> bool {
        true
    }

    fn supports_map_literal_with_angle_brackets(&self) -> bool {
        true
    }

    /// Hive's `CREATE (DATABASE|SCHEMA) [IF NOT EXISTS] name [COMMENT '…'] [LOCATION '…']
    /// [WITH DBPROPERTIES ('k'='v', …)]`, which the generic parser does not know.
    fn parse_statement(&self, parser: &mut Parser) -> Option<Result<Statement, ParserError>> {
        if !parser.parse_keywords(&[Keyword::CREATE, Keyword::DATABASE])
            && !parser.parse_keywords(&[Keyword::CREATE, Keyword::SCHEMA])
        {
            return None;
        }
        Some(parse_hive_create_database(parser))
    }
}

fn parse_hive_create_database(parser: &mut Parser) -> Result<Statement, ParserError> {
    let if_not_exists = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let db_name = parser.parse_object_name(false)?;
    let mut comment = None;
    let mut location = None;
    loop {
        if comment.is_none() && parser.parse_keyword(Keyword::COMMENT) {
            comment = Some(parser.parse_literal_string()?);
        } else if location.is_none() && parser.parse_keyword(Keyword::LOCATION) {
            location = Some(parser.parse_literal_string()?);
        } else if parser.parse_keyword(Keyword::WITH) {
            let word = parser.parse_identifier()?;
            if !word.value.eq_ignore_ascii_case("DBPROPERTIES") {
                return parser.expected("DBPROPERTIES", parser.peek_token());
            }
            parser.expect_token(&Token::LParen)?;
            loop {
                parser.parse_literal_string()?;
                parser.expect_token(&Token::Eq)?;
                parser.parse_literal_string()?;
                if !parser.consume_token(&Token::Comma) {
                    break;
                }
            }
            parser.expect_token(&Token::RParen)?;
        } else {
            break;
        }
    }
    Ok(Statement::CreateDatabase {
        db_name,
        if_not_exists,
        location,
        managed_location: None,
        or_replace: false,
        transient: false,
        clone: None,
        data_retention_time_in_days: None,
        max_data_extension_time_in_days: None,
        external_volume: None,
        catalog: None,
        replace_invalid_characters: None,
        default_ddl_collation: None,
        storage_serialization_policy: None,
        comment,
        default_charset: None,
        default_collation: None,
        catalog_sync: None,
        catalog_sync_namespace_mode: None,
        catalog_sync_namespace_flatten_delimiter: None,
        with_tags: None,
        with_contacts: None,
    })
}

/// A Hive column type.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HiveType {
    String,
    Boolean,
    TinyInt,
    SmallInt,
    Int,
    BigInt,
    Float,
    Double,
    Date,
    Timestamp,
    Struct(Vec<(String, HiveType)>),
    Array(Box<HiveType>),
    Map(Box<HiveType>, Box<HiveType>),
}

impl HiveType {
    fn from_sql(data_type: &SqlType) -> Result<Self, String> {
        match data_type {
            SqlType::Struct(fields, _) => {
                if fields.is_empty() {
                    return Err("struct type without fields".to_owned());
                }
                fields
                    .iter()
                    .map(|f| {
                        let name = f
                            .field_name
                            .as_ref()
                            .ok_or_else(|| format!("struct field without a name: {f}"))?
                            .value
                            .to_lowercase();
                        Ok((name, Self::from_sql(&f.field_type)?))
                    })
                    .collect::<Result<_, String>>()
                    .map(Self::Struct)
            }
            SqlType::Array(ArrayElemTypeDef::AngleBracket(inner)) => {
                Ok(Self::Array(Box::new(Self::from_sql(inner)?)))
            }
            SqlType::Map(key, value) => Ok(Self::Map(
                Box::new(Self::from_sql(key)?),
                Box::new(Self::from_sql(value)?),
            )),
            other => {
                let text = other.to_string().to_lowercase();
                let base = text.split('(').next().unwrap_or_default().trim();
                Ok(match base {
                    "string" | "varchar" | "char" | "text" => Self::String,
                    "boolean" | "bool" => Self::Boolean,
                    "tinyint" => Self::TinyInt,
                    "smallint" => Self::SmallInt,
                    "int" | "integer" => Self::Int,
                    "bigint" => Self::BigInt,
                    "float" | "real" => Self::Float,
                    "double" | "double precision" => Self::Double,
                    "date" => Self::Date,
                    "timestamp" => Self::Timestamp,
                    _ => return Err(format!("unsupported column type {text}")),
                })
            }
        }
    }

    fn text(&self) -> String {
        match self {
            Self::String => "string".into(),
            Self::Boolean => "boolean".into(),
            Self::TinyInt => "tinyint".into(),
            Self::SmallInt => "smallint".into(),
            Self::Int => "int".into(),
            Self::BigInt => "bigint".into(),
            Self::Float => "float".into(),
            Self::Double => "double".into(),
            Self::Date => "date".into(),
            Self::Timestamp => "timestamp".into(),
            Self::Struct(fields) => format!(
                "struct<{}>",
                fields
                    .iter()
                    .map(|(n, t)| format!("{n}:{}", t.text()))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Self::Array(t) => format!("array<{}>", t.text()),
            Self::Map(k, v) => format!("map<{},{}>", k.text(), v.text()),
        }
    }

    fn arrow(&self) -> DataType {
        match self {
            Self::String => DataType::Utf8,
            Self::Boolean => DataType::Boolean,
            Self::TinyInt => DataType::Int8,
            Self::SmallInt => DataType::Int16,
            Self::Int => DataType::Int32,
            Self::BigInt => DataType::Int64,
            Self::Float => DataType::Float32,
            Self::Double => DataType::Float64,
            Self::Date => DataType::Date32,
            Self::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, None),
            Self::Struct(fields) => DataType::Struct(
                fields
                    .iter()
                    .map(|(n, t)| Field::new(n, t.arrow(), true))
                    .collect::<Fields>(),
            ),
            Self::Array(t) => DataType::List(Arc::new(Field::new("item", t.arrow(), true))),
            Self::Map(k, v) => DataType::Map(
                Arc::new(Field::new(
                    "entries",
                    DataType::Struct(Fields::from(vec![
                        Field::new("key", k.arrow(), false),
                        Field::new("value", v.arrow(), true),
                    ])),
                    false,
                )),
                false,
            ),
        }
    }

    /// `value` shaped for the Arrow JSON decoder: what Hive's JSON SerDes make of it (keys
    /// matched case-insensitively, objects and arrays in string columns as their JSON text,
    /// mismatched scalars as NULL).
    fn conform(&self, value: &Value) -> Value {
        match (self, value) {
            (_, Value::Null) => Value::Null,
            (Self::String, Value::String(s)) => Value::String(s.clone()),
            (Self::String, other) => Value::String(other.to_string()),
            (Self::Boolean, Value::Bool(b)) => Value::Bool(*b),
            (Self::Boolean, Value::String(s)) if s.eq_ignore_ascii_case("true") => {
                Value::Bool(true)
            }
            (Self::Boolean, Value::String(s)) if s.eq_ignore_ascii_case("false") => {
                Value::Bool(false)
            }
            (Self::TinyInt | Self::SmallInt | Self::Int | Self::BigInt, v) => {
                let n = match v {
                    Value::Number(n) => n.as_i64(),
                    Value::String(s) => s.trim().parse::<i64>().ok(),
                    _ => None,
                };
                let fits = |n: i64| match self {
                    Self::TinyInt => i8::try_from(n).is_ok(),
                    Self::SmallInt => i16::try_from(n).is_ok(),
                    Self::Int => i32::try_from(n).is_ok(),
                    _ => true,
                };
                n.filter(|n| fits(*n)).map_or(Value::Null, Value::from)
            }
            (Self::Float | Self::Double, Value::Number(n)) => Value::Number(n.clone()),
            (Self::Float | Self::Double, Value::String(s)) => s
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or(Value::Null, Value::Number),
            (Self::Date, Value::String(s)) => {
                if s.parse::<jiff::civil::Date>().is_ok() {
                    Value::String(s.clone())
                } else {
                    Value::Null
                }
            }
            (Self::Timestamp, Value::String(s)) => {
                parse_iso8601_millis(s).map_or(Value::Null, Value::from)
            }
            (Self::Timestamp, Value::Number(n)) => n.as_i64().map_or(Value::Null, Value::from),
            (Self::Struct(fields), Value::Object(object)) => Value::Object(
                fields
                    .iter()
                    .map(|(name, t)| {
                        let v = lookup(object, name).map_or(Value::Null, |v| t.conform(v));
                        (name.clone(), v)
                    })
                    .collect(),
            ),
            (Self::Array(t), Value::Array(items)) => {
                Value::Array(items.iter().map(|v| t.conform(v)).collect())
            }
            (Self::Map(_, t), Value::Object(object)) => Value::Object(
                object
                    .iter()
                    .map(|(k, v)| (k.clone(), t.conform(v)))
                    .collect(),
            ),
            _ => Value::Null,
        }
    }
}

/// A key of a JSON object, matched case-insensitively (exact match first).
fn lookup<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.get(name).or_else(|| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// A parsed `CREATE EXTERNAL TABLE`.
#[derive(Debug, Clone)]
struct ParsedTable {
    table: HiveTable,
    columns: Vec<(String, HiveType)>,
    partitions: Vec<(String, HiveType)>,
    if_not_exists: bool,
}

fn parse_hive_table(sql: &str) -> Result<ParsedTable, String> {
    let statements = Parser::parse_sql(&AthenaDdlDialect, sql).map_err(|e| e.to_string())?;
    match statements.as_slice() {
        [Statement::CreateTable(create)] => hive_table_from(create),
        [_] => Err("not a CREATE EXTERNAL TABLE statement".to_owned()),
        _ => Err(format!("expected one statement, got {}", statements.len())),
    }
}

fn string_literal(expr: &SqlExpr) -> Option<String> {
    match expr {
        SqlExpr::Value(v) => match &v.value {
            SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

fn hive_table_from(create: &CreateTable) -> Result<ParsedTable, String> {
    if !create.external {
        return Err("only CREATE EXTERNAL TABLE is supported".to_owned());
    }
    let parts = object_name_parts(&create.name);
    let (database, name) = match parts.as_slice() {
        [name] => (None, name.clone()),
        [.., db, name] => (Some(db.clone()), name.clone()),
        [] => return Err("a table needs a name".to_owned()),
    };
    let column = |c: &sqlparser::ast::ColumnDef| -> Result<(String, HiveType), String> {
        Ok((
            c.name.value.to_lowercase(),
            HiveType::from_sql(&c.data_type).map_err(|e| format!("column {}: {e}", c.name))?,
        ))
    };
    let columns = create
        .columns
        .iter()
        .map(column)
        .collect::<Result<Vec<_>, _>>()?;
    let partitions = match &create.hive_distribution {
        HiveDistributionStyle::PARTITIONED { columns } => {
            columns.iter().map(column).collect::<Result<Vec<_>, _>>()?
        }
        _ => Vec::new(),
    };
    let formats = create.hive_formats.as_ref();
    let serde = formats.and_then(|f| match &f.row_format {
        Some(HiveRowFormat::SERDE { class }) => Some(class.clone()),
        _ => None,
    });
    let input_format = formats.and_then(|f| match &f.storage {
        Some(HiveIOFormat::IOF { input_format, .. }) => string_literal(input_format),
        _ => None,
    });
    let location = formats
        .and_then(|f| f.location.clone())
        .or_else(|| create.location.clone())
        .ok_or("a table needs a LOCATION")?;
    let mut properties = BTreeMap::new();
    if let CreateTableOptions::TableProperties(options) = &create.table_options {
        for option in options {
            if let SqlOption::KeyValue { key, value } = option {
                let value = string_literal(value).unwrap_or_else(|| value.to_string());
                properties.insert(key.value.clone(), value);
            }
        }
    }
    let text = |cols: &[(String, HiveType)]| {
        cols.iter()
            .map(|(n, t)| (n.clone(), t.text()))
            .collect::<Vec<_>>()
    };
    Ok(ParsedTable {
        table: HiveTable {
            database,
            name,
            columns: text(&columns),
            partitions: text(&partitions),
            location,
            properties,
            input_format,
            serde,
        },
        columns,
        partitions,
        if_not_exists: create.if_not_exists,
    })
}

// ---------------------------------------------------------------------------------------------
// Tables over files

/// One file a table reads, and the partition values it belongs to.
struct SourceFile {
    local: PathBuf,
    s3: String,
    partition_values: Vec<String>,
}

type FileStamp = (PathBuf, u64, Option<SystemTime>);

/// A Hive table whose rows are read from the mounted buckets at every scan (cached while its
/// files are unchanged).
#[derive(Debug)]
struct HiveTableProvider {
    parsed: ParsedTable,
    cloudtrail: bool,
    schema: SchemaRef,
    buckets: Buckets,
    last_bytes: AtomicU64,
    cache: Mutex<Option<(Vec<FileStamp>, RecordBatch)>>,
}

impl HiveTableProvider {
    fn new(parsed: ParsedTable, buckets: Buckets) -> Result<Self, String> {
        let cloudtrail = parsed
            .table
            .input_format
            .as_deref()
            .is_some_and(|f| f.contains("CloudTrailInputFormat"));
        if !cloudtrail
            && !parsed
                .table
                .serde
                .as_deref()
                .is_some_and(|s| s.contains("JsonSerDe"))
        {
            return Err(format!(
                "the fake Athena reads only CloudTrail and JSON SerDe tables (serde {:?}, input format {:?})",
                parsed.table.serde, parsed.table.input_format
            ));
        }
        let mut fields: Vec<Field> = parsed
            .columns
            .iter()
            .chain(&parsed.partitions)
            .map(|(n, t)| Field::new(n, t.arrow(), true))
            .collect();
        fields.push(Field::new("$path", DataType::Utf8, true));
        let schema = Arc::new(Schema::new(fields));
        // Fail now on a schema the JSON decoder cannot build.
        ReaderBuilder::new(Arc::clone(&schema))
            .build_decoder()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            parsed,
            cloudtrail,
            schema,
            buckets,
            last_bytes: AtomicU64::new(0),
            cache: Mutex::new(None),
        })
    }

    fn properties(&self) -> &BTreeMap<String, String> {
        &self.parsed.table.properties
    }

    /// The local directory of `s3://bucket/key`.
    fn resolve(&self, url: &str) -> Result<PathBuf, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("HIVE_FILESYSTEM_ERROR: not an s3:// location: {url}"))?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        let root = self
            .buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(bucket)
            .cloned()
            .ok_or_else(|| {
                format!(
                    "HIVE_FILESYSTEM_ERROR: The specified bucket does not exist \
                     (Service: Amazon S3; Status Code: 404; Error Code: NoSuchBucket; Bucket: {bucket})"
                )
            })?;
        let mut path = root;
        for part in key.split('/').filter(|p| !p.is_empty()) {
            if part == ".." || part == "." {
                return Err(format!("HIVE_FILESYSTEM_ERROR: bad key in {url}"));
            }
            path.push(part);
        }
        Ok(path)
    }

    /// The (location, partition values) of every projected partition.
    fn partitions(&self) -> Result<Vec<(String, Vec<String>)>, String> {
        let props = self.properties();
        if self.parsed.partitions.is_empty() {
            return Ok(vec![(self.parsed.table.location.clone(), Vec::new())]);
        }
        if props.get("projection.enabled").map(String::as_str) != Some("true") {
            // No projection: Athena knows only partitions added by ALTER TABLE/MSCK.
            return Ok(Vec::new());
        }
        let template = props
            .get("storage.location.template")
            .cloned()
            .unwrap_or_else(|| {
                let mut t = self.parsed.table.location.trim_end_matches('/').to_owned();
                for (col, _) in &self.parsed.partitions {
                    let _ = write!(t, "/{col}=${{{col}}}");
                }
                t
            });
        // Enum and integer columns first (they may sit before a date in the template).
        let mut partial: Vec<(String, BTreeMap<String, String>)> =
            vec![(template, BTreeMap::new())];
        let mut dates = Vec::new();
        for (col, _) in &self.parsed.partitions {
            let prop = |name: &str| props.get(&format!("projection.{col}.{name}"));
            let values: Vec<String> = match prop("type").map(String::as_str) {
                Some("enum") => prop("values")
                    .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect())
                    .unwrap_or_default(),
                Some("integer") => {
                    let range = prop("range").cloned().unwrap_or_default();
                    let (a, b) = range
                        .split_once(',')
                        .and_then(|(a, b)| {
                            Some((a.trim().parse::<i64>().ok()?, b.trim().parse::<i64>().ok()?))
                        })
                        .ok_or_else(|| format!("bad projection.{col}.range {range:?}"))?;
                    (a..=b).map(|n| n.to_string()).collect()
                }
                Some("date") => {
                    dates.push(col.clone());
                    continue;
                }
                other => {
                    return Err(format!(
                        "HIVE_METASTORE_ERROR: unsupported projection type {other:?} for column {col}"
                    ));
                }
            };
            let placeholder = &format!("${{{col}}}");
            partial = partial
                .into_iter()
                .flat_map(|(t, map)| {
                    values.iter().map(move |v| {
                        let mut map = map.clone();
                        map.insert(col.clone(), v.clone());
                        (t.replace(placeholder, v), map)
                    })
                })
                .collect();
        }
        for col in dates {
            let format = props
                .get(&format!("projection.{col}.format"))
                .cloned()
                .unwrap_or_else(|| "yyyy/MM/dd".to_owned());
            let range = props
                .get(&format!("projection.{col}.range"))
                .cloned()
                .ok_or_else(|| format!("projection.{col}.range is required"))?;
            let (from, to) = date_range(&range, &format)?;
            let placeholder = format!("${{{col}}}");
            let mut next = Vec::new();
            for (t, map) in partial {
                let Some((prefix, suffix)) = t.split_once(&placeholder) else {
                    return Err(format!("storage.location.template does not use ${{{col}}}"));
                };
                let dir = self.resolve(prefix)?;
                for date in date_dirs(&dir, &format) {
                    let Some(d) = parse_date(&date, &format) else {
                        continue;
                    };
                    if d < from || d > to {
                        continue;
                    }
                    let mut map = map.clone();
                    map.insert(col.clone(), date.clone());
                    next.push((format!("{prefix}{date}{suffix}"), map));
                }
            }
            partial = next;
        }
        Ok(partial
            .into_iter()
            .map(|(location, map)| {
                let values = self
                    .parsed
                    .partitions
                    .iter()
                    .map(|(c, _)| map.get(c).cloned().unwrap_or_default())
                    .collect();
                (location, values)
            })
            .collect())
    }

    fn files(&self) -> Result<Vec<SourceFile>, String> {
        let mut out = Vec::new();
        for (location, values) in self.partitions()? {
            let dir = self.resolve(&location)?;
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| !n.starts_with('_') && !n.starts_with('.'))
                .filter(|n| {
                    !self.cloudtrail
                        || (is_json_file(n)
                            && !n.contains("CloudTrail-Digest")
                            && !n.contains("CloudTrail-Insight"))
                })
                .collect();
            names.sort();
            for name in names {
                out.push(SourceFile {
                    local: dir.join(&name),
                    s3: format!("{}/{name}", location.trim_end_matches('/')),
                    partition_values: values.clone(),
                });
            }
        }
        Ok(out)
    }

    /// Every row of the table, read from its files now (or from the cache when no file
    /// changed).
    fn load(&self) -> Result<RecordBatch, String> {
        let files = self.files()?;
        let stamps: Vec<FileStamp> = files
            .iter()
            .map(|f| {
                let meta = std::fs::metadata(&f.local).ok();
                (
                    f.local.clone(),
                    meta.as_ref().map_or(0, std::fs::Metadata::len),
                    meta.and_then(|m| m.modified().ok()),
                )
            })
            .collect();
        let bytes = stamps.iter().map(|s| s.1).sum();
        self.last_bytes.store(bytes, Ordering::Relaxed);
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((cached, batch)) = cache.as_ref()
            && *cached == stamps
        {
            return Ok(batch.clone());
        }
        let mut rows = Vec::new();
        for file in &files {
            let data = read_maybe_gzip(&file.local).map_err(|e| {
                format!(
                    "HIVE_CANNOT_OPEN_SPLIT: Error opening Hive split {}: {e}",
                    file.s3
                )
            })?;
            if self.cloudtrail {
                let Ok(document) = serde_json::from_slice::<Value>(&data) else {
                    return Err(format!(
                        "HIVE_CURSOR_ERROR: the file is not a CloudTrail JSON document (file {})",
                        file.s3
                    ));
                };
                let Some(records) = document.get("Records").and_then(Value::as_array) else {
                    continue;
                };
                for record in records {
                    if let Value::Object(record) = record {
                        rows.push(self.row(record, file));
                    }
                }
            } else {
                let text = String::from_utf8_lossy(&data);
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    match serde_json::from_str::<Value>(line) {
                        Ok(Value::Object(record)) => rows.push(self.row(&record, file)),
                        Ok(_) => {
                            return Err(format!(
                                "HIVE_CURSOR_ERROR: Row is not a valid JSON Object - JSONException: \
                                 A JSONObject text must begin with '{{' (file {})",
                                file.s3
                            ));
                        }
                        Err(e) => {
                            return Err(format!(
                                "HIVE_CURSOR_ERROR: Row is not a valid JSON Object - JSONException: {e} (file {})",
                                file.s3
                            ));
                        }
                    }
                }
            }
        }
        let batch = decode_rows(&self.schema, &rows)?;
        *cache = Some((stamps, batch.clone()));
        Ok(batch)
    }

    fn row(&self, record: &Map<String, Value>, file: &SourceFile) -> Value {
        let mut row = Map::new();
        for (name, t) in &self.parsed.columns {
            let v = lookup(record, name).map_or(Value::Null, |v| t.conform(v));
            row.insert(name.clone(), v);
        }
        for ((name, t), value) in self.parsed.partitions.iter().zip(&file.partition_values) {
            row.insert(name.clone(), t.conform(&Value::String(value.clone())));
        }
        row.insert("$path".into(), Value::String(file.s3.clone()));
        Value::Object(row)
    }
}

#[async_trait::async_trait]
impl TableProvider for HiveTableProvider {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        let batch = self.load().map_err(DataFusionError::Execution)?;
        let table = MemTable::try_new(Arc::clone(&self.schema), vec![vec![batch]])?;
        table.scan(state, projection, filters, limit).await
    }
}

fn decode_rows(schema: &SchemaRef, rows: &[Value]) -> Result<RecordBatch, String> {
    if rows.is_empty() {
        return Ok(RecordBatch::new_empty(Arc::clone(schema)));
    }
    let mut decoder = ReaderBuilder::new(Arc::clone(schema))
        .with_batch_size(rows.len())
        .build_decoder()
        .map_err(|e| e.to_string())?;
    decoder
        .serialize(rows)
        .map_err(|e| format!("HIVE_BAD_DATA: {e}"))?;
    Ok(decoder
        .flush()
        .map_err(|e| format!("HIVE_BAD_DATA: {e}"))?
        .unwrap_or_else(|| RecordBatch::new_empty(Arc::clone(schema))))
}

/// `*.json` or `*.json.gz` (any case).
fn is_json_file(name: &str) -> bool {
    let has = |p: &Path, ext: &str| p.extension().is_some_and(|e| e.eq_ignore_ascii_case(ext));
    let path = Path::new(name);
    has(path, "json")
        || (has(path, "gz")
            && path
                .file_stem()
                .is_some_and(|stem| has(Path::new(stem), "json")))
}

fn read_maybe_gzip(path: &Path) -> std::io::Result<Vec<u8>> {
    let raw = std::fs::read(path)?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(raw.as_slice()).read_to_end(&mut out)?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parses `text` by a projection date format made of `yyyy`, `MM`, `dd` and literal
/// characters.
fn parse_date(text: &str, format: &str) -> Option<jiff::civil::Date> {
    let (mut year, mut month, mut day) = (None, None, Some(1));
    let mut rest = text;
    let mut fmt = format;
    while !fmt.is_empty() {
        let (len, slot) = if fmt.starts_with("yyyy") {
            (4, &mut year)
        } else if fmt.starts_with("MM") {
            (2, &mut month)
        } else if fmt.starts_with("dd") {
            (2, &mut day)
        } else {
            let c = fmt.chars().next()?;
            if c.is_ascii_alphabetic() || !rest.starts_with(c) {
                return None;
            }
            fmt = &fmt[c.len_utf8()..];
            rest = &rest[c.len_utf8()..];
            continue;
        };
        let digits = rest.get(..len)?;
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *slot = Some(digits.parse::<i16>().ok()?);
        fmt = &fmt[len..];
        rest = &rest[len..];
    }
    if !rest.is_empty() {
        return None;
    }
    jiff::civil::Date::new(year?, i8::try_from(month?).ok()?, i8::try_from(day?).ok()?).ok()
}

/// The `projection.<col>.range` of a date column: `start,end`, each a date in `format` or
/// `NOW` (optionally `NOW-<n>DAYS`/`NOW+<n>DAYS`).
fn date_range(range: &str, format: &str) -> Result<(jiff::civil::Date, jiff::civil::Date), String> {
    let bound = |text: &str| -> Option<jiff::civil::Date> {
        let text = text.trim();
        if let Some(rest) = text.strip_prefix("NOW") {
            let today = jiff::Timestamp::now()
                .to_zoned_datetime(jiff::tz::TimeZone::UTC)
                .date();
            if rest.is_empty() {
                return Some(today);
            }
            let (sign, rest) = match rest.as_bytes().first()? {
                b'+' => (1, &rest[1..]),
                b'-' => (-1, &rest[1..]),
                _ => return None,
            };
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let unit = rest[digits.len()..].to_ascii_uppercase();
            if !unit.starts_with("DAY") {
                return None;
            }
            let days: i64 = digits.parse().ok()?;
            return today.checked_add(jiff::Span::new().days(sign * days)).ok();
        }
        parse_date(text, format)
    };
    let (a, b) = range
        .split_once(',')
        .ok_or_else(|| format!("bad date projection range {range:?}"))?;
    match (bound(a), bound(b)) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(format!(
            "bad date projection range {range:?} for format {format:?}"
        )),
    }
}

/// The relative paths under `dir` that look like dates in `format` (one directory level per
/// `/` in the format).
fn date_dirs(dir: &Path, format: &str) -> Vec<String> {
    let depth = format.matches('/').count() + 1;
    let mut level: Vec<(PathBuf, String)> = vec![(dir.to_path_buf(), String::new())];
    for _ in 0..depth {
        let mut next = Vec::new();
        for (path, rel) in level {
            let Ok(entries) = std::fs::read_dir(&path) else {
                continue;
            };
            for entry in entries.filter_map(Result::ok) {
                if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                let rel = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                next.push((entry.path(), rel));
            }
        }
        level = next;
    }
    let mut out: Vec<String> = level
        .into_iter()
        .map(|(_, rel)| rel)
        .filter(|rel| parse_date(rel, format).is_some())
        .collect();
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------------
// Results

/// Athena's name for a result column of this Arrow type.
fn athena_type(data_type: &DataType) -> &'static str {
    match data_type {
        DataType::Boolean => "boolean",
        DataType::Int8 => "tinyint",
        DataType::Int16 => "smallint",
        DataType::Int32 => "integer",
        DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => "bigint",
        DataType::Float16 | DataType::Float32 => "real",
        DataType::Float64 => "double",
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => "decimal",
        DataType::Date32 | DataType::Date64 => "date",
        DataType::Timestamp(_, None) => "timestamp",
        DataType::Timestamp(_, Some(_)) => "timestamp with time zone",
        DataType::Struct(_) => "row",
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => "array",
        DataType::Map(..) => "map",
        DataType::Null => "unknown",
        _ => "varchar",
    }
}

/// The column name Athena would give: the name itself for a column or alias, the last field
/// for a dereference (`a.b.c` → `c`), `_col<i>` for any other expression.
fn athena_column_name(name: &str, index: usize) -> String {
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '$' || c == '-')
    };
    if plain(name) {
        return name.to_owned();
    }
    // DataFusion names a struct dereference `col[field][field]`.
    if let Some(open) = name.find('[')
        && name[..open].split('.').all(plain)
        && name.ends_with(']')
    {
        let last = name[..name.len() - 1]
            .rsplit('[')
            .next()
            .unwrap_or_default();
        if plain(last) && name[open..].chars().all(|c| c != '(' && c != ' ') {
            return last.to_owned();
        }
    }
    format!("_col{index}")
}

fn render(schema: &Schema, batches: &[RecordBatch]) -> datafusion::common::Result<ResultTable> {
    let columns: Vec<(String, String)> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            (
                athena_column_name(f.name(), i),
                athena_type(f.data_type()).to_owned(),
            )
        })
        .collect();
    let mut rows = vec![
        columns
            .iter()
            .map(|(n, _)| Some(n.clone()))
            .collect::<Vec<_>>(),
    ];
    for batch in batches {
        let rendered: Vec<Vec<Option<String>>> = batch
            .columns()
            .iter()
            .map(render_column)
            .collect::<datafusion::common::Result<_>>()?;
        for r in 0..batch.num_rows() {
            rows.push(rendered.iter().map(|c| c[r].clone()).collect());
        }
    }
    Ok(ResultTable { columns, rows })
}

fn render_column(array: &ArrayRef) -> datafusion::common::Result<Vec<Option<String>>> {
    if let DataType::Timestamp(_, tz) = array.data_type() {
        let millis = cast(
            array,
            &DataType::Timestamp(TimeUnit::Millisecond, tz.clone()),
        )?;
        let millis = millis.as_primitive::<TimestampMillisecondType>();
        let zone = tz.as_deref().map(|name| {
            (
                name,
                jiff::tz::TimeZone::get(name).unwrap_or(jiff::tz::TimeZone::UTC),
            )
        });
        return Ok((0..millis.len())
            .map(|i| {
                if millis.is_null(i) {
                    return None;
                }
                let ts = jiff::Timestamp::from_millisecond(millis.value(i)).ok()?;
                let (time, suffix) = match &zone {
                    Some((name, zone)) => (
                        ts.to_zoned_datetime(zone.clone()).datetime(),
                        format!(" {name}"),
                    ),
                    None => (
                        ts.to_zoned_datetime(jiff::tz::TimeZone::UTC).datetime(),
                        String::new(),
                    ),
                };
                Some(format!(
                    "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}{suffix}",
                    time.year(),
                    time.month(),
                    time.day(),
                    time.hour(),
                    time.minute(),
                    time.second(),
                    time.millisecond()
                ))
            })
            .collect());
    }
    let options = FormatOptions::default();
    let formatter = ArrayFormatter::try_new(array.as_ref(), &options)?;
    Ok((0..array.len())
        .map(|i| (!array.is_null(i)).then(|| formatter.value(i).to_string()))
        .collect())
}

// ---------------------------------------------------------------------------------------------
// Parameters

/// Replaces each `?` placeholder of `sql` (never one inside a string or a comment: the SQL is
/// tokenized) by `$1…$n`, and parses each parameter, which must be one literal.
fn bind_parameters(sql: &str, parameters: &[String]) -> Result<(String, Vec<ScalarValue>), String> {
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize_with_location()
        .map_err(|e| format!("INVALID_PARAMETER: the query cannot be tokenized: {e}"))?;
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(sql.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let offset = |loc: Location| -> Option<usize> {
        let line_start = *line_starts.get(usize::try_from(loc.line).ok()?.checked_sub(1)?)?;
        let column = usize::try_from(loc.column).ok()?.checked_sub(1)?;
        sql[line_start..]
            .char_indices()
            .nth(column)
            .map(|(i, _)| line_start + i)
    };
    let mut out = String::with_capacity(sql.len() + 8);
    let mut last = 0;
    let mut count = 0;
    for token in &tokens {
        if token.token == Token::Placeholder("?".to_owned()) {
            let at = offset(token.span.start)
                .filter(|&i| sql[i..].starts_with('?'))
                .ok_or("INVALID_PARAMETER: cannot locate a ? placeholder")?;
            count += 1;
            out.push_str(&sql[last..at]);
            let _ = write!(out, "${count}");
            last = at + 1;
        }
    }
    out.push_str(&sql[last..]);
    if count != parameters.len() {
        return Err(format!(
            "INVALID_PARAMETER: the query has {count} parameter placeholder(s) but {} \
             ExecutionParameters were given",
            parameters.len()
        ));
    }
    let values = parameters
        .iter()
        .enumerate()
        .map(|(i, p)| parameter_value(i + 1, p))
        .collect::<Result<_, _>>()?;
    Ok((out, values))
}

/// One execution parameter: a literal and nothing else.
fn parameter_value(index: usize, text: &str) -> Result<ScalarValue, String> {
    let bad = |why: &str| {
        format!("INVALID_PARAMETER: execution parameter {index} ({text:?}) is not a literal: {why}")
    };
    let dialect = GenericDialect {};
    let mut parser = Parser::new(&dialect)
        .try_with_sql(text)
        .map_err(|e| bad(&e.to_string()))?;
    let expr = parser.parse_expr().map_err(|e| bad(&e.to_string()))?;
    if parser.peek_token().token != Token::EOF {
        return Err(bad("unexpected text after the literal"));
    }
    let number = |n: &str, negative: bool| -> Result<ScalarValue, String> {
        let n = if negative {
            format!("-{n}")
        } else {
            n.to_owned()
        };
        if let Ok(i) = n.parse::<i64>() {
            Ok(ScalarValue::Int64(Some(i)))
        } else {
            n.parse::<f64>()
                .map(|f| ScalarValue::Float64(Some(f)))
                .map_err(|_| bad("bad number"))
        }
    };
    match &expr {
        SqlExpr::Value(v) => match &v.value {
            SqlValue::SingleQuotedString(s) => Ok(ScalarValue::Utf8(Some(s.clone()))),
            SqlValue::Number(n, _) => number(n, false),
            SqlValue::Boolean(b) => Ok(ScalarValue::Boolean(Some(*b))),
            SqlValue::Null => Ok(ScalarValue::Null),
            _ => Err(bad("unsupported literal")),
        },
        SqlExpr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match expr.as_ref() {
            SqlExpr::Value(v) => match &v.value {
                SqlValue::Number(n, _) => number(n, true),
                _ => Err(bad("unsupported literal")),
            },
            _ => Err(bad("unsupported literal")),
        },
        SqlExpr::TypedString(typed) => {
            let value = match &typed.value.value {
                SqlValue::SingleQuotedString(s) => s.clone(),
                _ => return Err(bad("unsupported literal")),
            };
            let kind = typed.data_type.to_string().to_uppercase();
            if kind.starts_with("TIMESTAMP") {
                let millis = parse_iso8601_millis(&value).ok_or_else(|| bad("bad timestamp"))?;
                Ok(ScalarValue::TimestampMillisecond(Some(millis), None))
            } else if kind == "DATE" {
                let date = value
                    .parse::<jiff::civil::Date>()
                    .map_err(|e| bad(&e.to_string()))?;
                let days = date
                    .since(jiff::civil::date(1970, 1, 1))
                    .map_err(|e| bad(&e.to_string()))?
                    .get_days();
                Ok(ScalarValue::Date32(Some(days)))
            } else {
                Err(bad("unsupported typed literal"))
            }
        }
        _ => Err(bad(
            "only a string, number, boolean, NULL, TIMESTAMP or DATE literal is accepted",
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// UDFs with Trino semantics

fn athena_udfs() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::from(JsonExtractScalar::new()),
        ScalarUDF::from(RegexpExtract::new()),
        ScalarUDF::from(RegexpReplace::new()),
        ScalarUDF::from(FromIso8601Timestamp::new()),
        ScalarUDF::from(UrlDecode::new()),
        ScalarUDF::from(JsonSize::new()),
    ]
}

fn string_array(arg: &ColumnarValue, rows: usize) -> datafusion::common::Result<StringArray> {
    let array = arg.to_array(rows)?;
    let array = cast(&array, &DataType::Utf8)?;
    Ok(array.as_string::<i32>().clone())
}

fn int_array(arg: &ColumnarValue, rows: usize) -> datafusion::common::Result<Int64Array> {
    let array = arg.to_array(rows)?;
    let array = cast(&array, &DataType::Int64)?;
    Ok(array.as_primitive().clone())
}

/// Compiles each distinct pattern once per batch.
#[derive(Default)]
struct RegexCache(HashMap<String, Regex>);

impl RegexCache {
    fn get(&mut self, pattern: &str) -> datafusion::common::Result<&Regex> {
        if !self.0.contains_key(pattern) {
            let re = Regex::new(pattern).map_err(|e| {
                DataFusionError::Execution(format!("Invalid regular expression {pattern:?}: {e}"))
            })?;
            self.0.insert(pattern.to_owned(), re);
        }
        Ok(&self.0[pattern])
    }
}

fn coerce_strings(
    name: &str,
    arg_types: &[DataType],
    counts: &[usize],
    last_is_int: bool,
) -> datafusion::common::Result<Vec<DataType>> {
    if !counts.contains(&arg_types.len()) {
        return plan_err!("{name} takes {counts:?} arguments, got {}", arg_types.len());
    }
    Ok((0..arg_types.len())
        .map(|i| {
            if last_is_int && i == 2 {
                DataType::Int64
            } else {
                DataType::Utf8
            }
        })
        .collect())
}

/// `json_extract_scalar(json, path)`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonExtractScalar {
    signature: Signature,
}

impl JsonExtractScalar {
    fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// One step of a JSONPath.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PathStep {
    Key(String),
    Index(usize),
}

/// Parses the JSONPath subset Athena users write: `$.a.b`, `$["Key"]`, `$['Key']`, `$[0]`.
fn parse_json_path(path: &str) -> Option<Vec<PathStep>> {
    let mut rest = path.trim().strip_prefix('$')?;
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end == 0 {
                return None;
            }
            steps.push(PathStep::Key(r[..end].to_owned()));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let close = r.find(']')?;
            let inner = r[..close].trim();
            if let Some(q) = inner
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .or_else(|| inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
            {
                steps.push(PathStep::Key(q.to_owned()));
            } else {
                steps.push(PathStep::Index(inner.parse().ok()?));
            }
            rest = &r[close + 1..];
        } else {
            return None;
        }
    }
    Some(steps)
}

/// `f(json, path)` for every row of a `(json, path)` function: NULL in, NULL out; each distinct
/// path parsed once; a path Trino would refuse fails the query.
fn each_json_path<T>(
    args: &ScalarFunctionArgs,
    f: fn(&str, &[PathStep]) -> Option<T>,
) -> datafusion::common::Result<Vec<Option<T>>> {
    let rows = args.number_rows;
    let json = string_array(&args.args[0], rows)?;
    let paths = string_array(&args.args[1], rows)?;
    let mut parsed: HashMap<String, Vec<PathStep>> = HashMap::new();
    let mut out = Vec::with_capacity(rows);
    for i in 0..rows {
        if json.is_null(i) || paths.is_null(i) {
            out.push(None);
            continue;
        }
        let path = paths.value(i);
        if !parsed.contains_key(path) {
            let Some(steps) = parse_json_path(path) else {
                return exec_err!("Invalid JSON path: '{path}'");
            };
            parsed.insert(path.to_owned(), steps);
        }
        out.push(f(json.value(i), &parsed[path]));
    }
    Ok(out)
}

/// The value at a JSONPath of a JSON text; `None` when the text is not JSON or the path finds
/// nothing.
fn json_at(json: &str, steps: &[PathStep]) -> Option<Value> {
    let mut value: Value = serde_json::from_str(json).ok()?;
    for step in steps {
        value = match (step, value) {
            (PathStep::Key(k), Value::Object(mut m)) => m.remove(k)?,
            (PathStep::Index(i), Value::Array(mut a)) if *i < a.len() => a.swap_remove(*i),
            _ => return None,
        };
    }
    Some(value)
}

fn json_extract_scalar(json: &str, steps: &[PathStep]) -> Option<String> {
    match json_at(json, steps)? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl ScalarUDFImpl for JsonExtractScalar {
    fn name(&self) -> &'static str {
        "json_extract_scalar"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> datafusion::common::Result<Vec<DataType>> {
        coerce_strings(self.name(), arg_types, &[2], false)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let out = each_json_path(&args, json_extract_scalar)?;
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
    }
}

/// `regexp_extract(string, pattern[, group])`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct RegexpExtract {
    signature: Signature,
}

impl RegexpExtract {
    fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

fn regexp_extract(
    re: &Regex,
    text: &str,
    group: i64,
) -> datafusion::common::Result<Option<String>> {
    let groups = re.captures_len() - 1;
    let Some(g) = usize::try_from(group).ok().filter(|g| *g <= groups) else {
        return exec_err!("Pattern has {groups} groups. Cannot access group {group}");
    };
    Ok(re
        .captures(text)
        .and_then(|c| c.get(g))
        .map(|m| m.as_str().to_owned()))
}

impl ScalarUDFImpl for RegexpExtract {
    fn name(&self) -> &'static str {
        "regexp_extract"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> datafusion::common::Result<Vec<DataType>> {
        coerce_strings(self.name(), arg_types, &[2, 3], true)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let rows = args.number_rows;
        let text = string_array(&args.args[0], rows)?;
        let patterns = string_array(&args.args[1], rows)?;
        let groups = match args.args.get(2) {
            Some(g) => Some(int_array(g, rows)?),
            None => None,
        };
        let mut cache = RegexCache::default();
        let mut out = Vec::with_capacity(rows);
        for i in 0..rows {
            let group = match &groups {
                Some(g) if g.is_null(i) => None,
                Some(g) => Some(g.value(i)),
                None => Some(0),
            };
            match group {
                Some(group) if !text.is_null(i) && !patterns.is_null(i) => {
                    let re = cache.get(patterns.value(i))?;
                    out.push(regexp_extract(re, text.value(i), group)?);
                }
                _ => out.push(None),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
    }
}

/// `regexp_replace(string, pattern[, replacement])`: every match, Java-style `$1`/`${name}`
/// back-references and `\$` escapes.
#[derive(Debug, PartialEq, Eq, Hash)]
struct RegexpReplace {
    signature: Signature,
}

impl RegexpReplace {
    fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// A Java replacement string as a `regex` crate one, for a pattern with `groups` groups.
fn java_replacement(replacement: &str, groups: usize) -> datafusion::common::Result<String> {
    let mut out = String::with_capacity(replacement.len());
    let mut chars = replacement.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(other) => out.push(other),
                None => return exec_err!("character to be escaped is missing"),
            },
            '$' => {
                if chars.peek() == Some(&'{') {
                    chars.next();
                    let name: String = chars.by_ref().take_while(|c| *c != '}').collect();
                    if name.is_empty() {
                        return exec_err!("Illegal group reference in {replacement:?}");
                    }
                    let _ = write!(out, "${{{name}}}");
                } else {
                    // Java reads digits while the number stays a valid group.
                    let mut number: Option<usize> = None;
                    while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                        let candidate = number.unwrap_or(0) * 10 + d as usize;
                        if number.is_some() && candidate > groups {
                            break;
                        }
                        number = Some(candidate);
                        chars.next();
                    }
                    match number {
                        Some(n) if n <= groups => {
                            let _ = write!(out, "${{{n}}}");
                        }
                        Some(n) => return exec_err!("No group {n}"),
                        None => return exec_err!("Illegal group reference in {replacement:?}"),
                    }
                }
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

impl ScalarUDFImpl for RegexpReplace {
    fn name(&self) -> &'static str {
        "regexp_replace"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> datafusion::common::Result<Vec<DataType>> {
        coerce_strings(self.name(), arg_types, &[2, 3], false)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let rows = args.number_rows;
        let text = string_array(&args.args[0], rows)?;
        let patterns = string_array(&args.args[1], rows)?;
        let replacements = match args.args.get(2) {
            Some(r) => Some(string_array(r, rows)?),
            None => None,
        };
        let mut cache = RegexCache::default();
        let mut out = Vec::with_capacity(rows);
        for i in 0..rows {
            let replacement = match &replacements {
                Some(r) if r.is_null(i) => None,
                Some(r) => Some(r.value(i)),
                None => Some(""),
            };
            match replacement {
                Some(replacement) if !text.is_null(i) && !patterns.is_null(i) => {
                    let re = cache.get(patterns.value(i))?;
                    let rust = java_replacement(replacement, re.captures_len() - 1)?;
                    out.push(Some(
                        re.replace_all(text.value(i), rust.as_str()).into_owned(),
                    ));
                }
                _ => out.push(None),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
    }
}

/// `from_iso8601_timestamp(string)` → `timestamp(3) with time zone` (UTC here).
#[derive(Debug, PartialEq, Eq, Hash)]
struct FromIso8601Timestamp {
    signature: Signature,
}

impl FromIso8601Timestamp {
    fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// Milliseconds since the epoch of an ISO 8601 timestamp: with an offset (`Z`, `+09:00`) or
/// without (read as UTC), with or without a fraction, or a bare date (midnight UTC).
fn parse_iso8601_millis(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Some(ts.as_millisecond());
    }
    if let Ok(dt) = text.parse::<jiff::civil::DateTime>() {
        return dt
            .to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp().as_millisecond());
    }
    None
}

impl ScalarUDFImpl for FromIso8601Timestamp {
    fn name(&self) -> &'static str {
        "from_iso8601_timestamp"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Timestamp(
            TimeUnit::Millisecond,
            Some("UTC".into()),
        ))
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> datafusion::common::Result<Vec<DataType>> {
        coerce_strings(self.name(), arg_types, &[1], false)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let rows = args.number_rows;
        let text = string_array(&args.args[0], rows)?;
        let mut out = Vec::with_capacity(rows);
        for i in 0..rows {
            if text.is_null(i) {
                out.push(None);
                continue;
            }
            let value = text.value(i);
            match parse_iso8601_millis(value) {
                Some(ms) => out.push(Some(ms)),
                None => return exec_err!("Invalid format: \"{value}\""),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(
            TimestampMillisecondArray::from(out).with_timezone("UTC"),
        )))
    }
}

/// `url_decode(value)`: Trino's, which is Java's `URLDecoder.decode(value, UTF_8)`: `+` is a
/// space, `%XX` a byte, bytes that are not UTF-8 become U+FFFD, and a `%` not followed by two
/// hex digits fails the query.
#[derive(Debug, PartialEq, Eq, Hash)]
struct UrlDecode {
    signature: Signature,
}

impl UrlDecode {
    fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

fn url_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

impl ScalarUDFImpl for UrlDecode {
    fn name(&self) -> &'static str {
        "url_decode"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> datafusion::common::Result<Vec<DataType>> {
        coerce_strings(self.name(), arg_types, &[1], false)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let rows = args.number_rows;
        let text = string_array(&args.args[0], rows)?;
        let mut out = Vec::with_capacity(rows);
        for i in 0..rows {
            if text.is_null(i) {
                out.push(None);
                continue;
            }
            let value = text.value(i);
            match url_decode(value) {
                Some(decoded) => out.push(Some(decoded)),
                None => {
                    return exec_err!("URLDecoder: Illegal hex characters in escape (%) pattern");
                }
            }
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
    }
}

/// `json_size(json, path)`: the number of members of the array or object at `path`, 0 for a
/// scalar, NULL when the path finds nothing or the text is not JSON.
#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonSize {
    signature: Signature,
}

impl JsonSize {
    fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

fn json_size(json: &str, steps: &[PathStep]) -> Option<i64> {
    let size = match json_at(json, steps)? {
        Value::Array(a) => a.len(),
        Value::Object(m) => m.len(),
        _ => 0,
    };
    i64::try_from(size).ok()
}

impl ScalarUDFImpl for JsonSize {
    fn name(&self) -> &'static str {
        "json_size"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Int64)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> datafusion::common::Result<Vec<DataType>> {
        coerce_strings(self.name(), arg_types, &[2], false)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let out = each_json_path(&args, json_size)?;
        Ok(ColumnarValue::Array(Arc::new(Int64Array::from(out))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io::Write as _;

    use aws_sdk_athena::types::{QueryExecutionContext, ResultConfiguration};

    const CLOUDTRAIL_DDL: &str = r"CREATE EXTERNAL TABLE IF NOT EXISTS `connect_audit`.`cloudtrail` (
  `eventversion` string,
  `useridentity` struct<type:string,principalid:string,arn:string,accountid:string,invokedby:string,accesskeyid:string,username:string,sessioncontext:struct<attributes:struct<mfaauthenticated:string,creationdate:string>,sessionissuer:struct<type:string,principalid:string,arn:string,accountid:string,username:string>,ec2roledelivery:string,webidfederationdata:map<string,string>>>,
  `eventtime` string,
  `eventsource` string,
  `eventname` string,
  `awsregion` string,
  `sourceipaddress` string,
  `useragent` string,
  `errorcode` string,
  `errormessage` string,
  `requestparameters` string,
  `responseelements` string,
  `additionaleventdata` string,
  `requestid` string,
  `eventid` string,
  `readonly` string,
  `resources` array<struct<arn:string,accountid:string,type:string>>,
  `eventtype` string,
  `apiversion` string,
  `recipientaccountid` string,
  `serviceeventdetails` string,
  `sharedeventid` string,
  `vpcendpointid` string,
  `tlsdetails` struct<tlsversion:string,ciphersuite:string,clientprovidedhostheader:string>
)
PARTITIONED BY (`account` string, `region` string, `date` string)
ROW FORMAT SERDE 'org.apache.hive.hcatalog.data.JsonSerDe'
STORED AS INPUTFORMAT 'com.amazon.emr.cloudtrail.CloudTrailInputFormat'
OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'
LOCATION 's3://trail-bucket/logs/AWSLogs/'
TBLPROPERTIES (
  'projection.enabled'='true',
  'projection.account.type'='enum',
  'projection.account.values'='111122223333,444455556666',
  'projection.region.type'='enum',
  'projection.region.values'='ap-northeast-1,us-east-1',
  'projection.date.type'='date',
  'projection.date.format'='yyyy/MM/dd',
  'projection.date.range'='2020/01/01,NOW',
  'projection.date.interval'='1',
  'projection.date.interval.unit'='DAYS',
  'storage.location.template'='s3://trail-bucket/logs/AWSLogs/${account}/CloudTrail/${region}/${date}'
)";

    const USERS_DDL: &str = r"CREATE EXTERNAL TABLE IF NOT EXISTS `connect_audit`.`connect_users` (
  `arn` string, `id` string, `username` string, `instanceid` string, `lastmodifiedtime` string,
  `email` string, `firstseen` string, `lastseen` string, `deleted` boolean, `deletedat` string
)
ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'
LOCATION 's3://snap-bucket/snapshot/users/'";

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

    type Rows = Vec<Vec<Option<String>>>;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("test runtime")
    }

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

    #[allow(
        clippy::unnecessary_wraps,
        reason = "reads as the Option cells it builds"
    )]
    fn s(v: &str) -> Option<String> {
        Some(v.to_owned())
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

    #[test]
    fn official_aws_ddl_parses() {
        // The sample lives outside the repository: skip when it is not there.
        let Ok(sql) = std::fs::read_to_string(
            "/work/shared/samples/06_athena_cloudtrail_pp_DDL_official_2023-02_verbatim.sql",
        ) else {
            return;
        };
        let table = parse_hive_ddl(&sql).expect("parse the official DDL");
        assert_eq!(table.database, None);
        assert_eq!(table.name, "cloudtrail_logs_pp");
        assert_eq!(table.columns.len(), 24);
        assert_eq!(
            table.columns[0],
            ("eventversion".to_owned(), "string".to_owned())
        );
        assert_eq!(
            table.columns[1].1,
            "struct<type:string,principalid:string,arn:string,accountid:string,invokedby:string,\
             accesskeyid:string,username:string,sessioncontext:struct<attributes:struct<\
             mfaauthenticated:string,creationdate:string>,sessionissuer:struct<type:string,\
             principalid:string,arn:string,accountid:string,username:string>,ec2roledelivery:\
             string,webidfederationdata:map<string,string>>>"
        );
        assert_eq!(
            table.columns[16],
            (
                "resources".to_owned(),
                "array<struct<arn:string,accountid:string,type:string>>".to_owned()
            )
        );
        assert_eq!(
            table.partitions,
            [("timestamp".to_owned(), "string".to_owned())]
        );
        assert_eq!(
            table.location,
            "s3://bucket/AWSLogs/account-id/CloudTrail/aws-region"
        );
        assert_eq!(
            table
                .properties
                .get("projection.timestamp.range")
                .map(String::as_str),
            Some("2020/01/01,NOW")
        );
        assert_eq!(
            table.input_format.as_deref(),
            Some("com.amazon.emr.cloudtrail.CloudTrailInputFormat")
        );
        assert_eq!(
            table.serde.as_deref(),
            Some("org.apache.hive.hcatalog.data.JsonSerDe")
        );
    }

    #[test]
    fn product_ddl_parses() {
        let table = parse_hive_ddl(CLOUDTRAIL_DDL).expect("parse");
        assert_eq!(table.database.as_deref(), Some("connect_audit"));
        assert_eq!(table.name, "cloudtrail");
        assert_eq!(table.columns.len(), 24);
        let names: Vec<&str> = table.partitions.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["account", "region", "date"]);
        assert_eq!(
            table
                .properties
                .get("storage.location.template")
                .map(String::as_str),
            Some("s3://trail-bucket/logs/AWSLogs/${account}/CloudTrail/${region}/${date}")
        );
        let users = parse_hive_ddl(USERS_DDL).expect("parse");
        assert_eq!(
            users.columns[8],
            ("deleted".to_owned(), "boolean".to_owned())
        );
        assert_eq!(
            users.serde.as_deref(),
            Some("org.openx.data.jsonserde.JsonSerDe")
        );
        assert_eq!(users.location, "s3://snap-bucket/snapshot/users/");
        assert!(parse_hive_ddl("SELECT 1").is_err());
        assert!(parse_hive_ddl("CREATE EXTERNAL TABLE t (a strng) LOCATION 's3://b/'").is_err());
    }

    /// Runs `sql` on a bare engine and returns its rows (header included) or failure reason.
    fn engine_sql(sql: &str, parameters: &[&str]) -> Result<Rows, String> {
        let engine = Engine::new();
        let parameters: Vec<String> = parameters.iter().map(|p| (*p).to_owned()).collect();
        match runtime().block_on(engine.execute(sql, &parameters, None)) {
            Outcome::Succeeded { result, .. } => Ok(result.rows.clone()),
            Outcome::Failed { reason, .. } => Err(reason),
            Outcome::Hanging => unreachable!(),
        }
    }

    fn value(sql: &str) -> Option<String> {
        let rows = engine_sql(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows[1][0].clone()
    }

    #[test]
    fn json_extract_scalar_has_trino_semantics() {
        let doc = r#"'{"UserId":"u-1","n":3,"b":true,"z":null,"o":{"a":{"b":"deep"}},"l":["x","y"],"Weird Key":"w"}'"#;
        let f = |path: &str| value(&format!("SELECT json_extract_scalar({doc}, '{path}')"));
        assert_eq!(f("$.UserId"), s("u-1"));
        assert_eq!(f("$.n"), s("3"));
        assert_eq!(f("$.b"), s("true"));
        assert_eq!(f("$.z"), None);
        assert_eq!(f("$.o"), None);
        assert_eq!(f("$.o.a.b"), s("deep"));
        assert_eq!(f("$.l[1]"), s("y"));
        assert_eq!(f("$.l"), None);
        assert_eq!(f(r#"$["Weird Key"]"#), s("w"));
        assert_eq!(f("$.missing"), None);
        assert_eq!(value("SELECT json_extract_scalar('not json', '$.a')"), None);
        assert_eq!(value("SELECT json_extract_scalar(NULL, '$.a')"), None);
        assert_eq!(
            parse_json_path("$[0].a"),
            Some(vec![PathStep::Index(0), PathStep::Key("a".into())])
        );
        assert_eq!(parse_json_path("a.b"), None);
    }

    #[test]
    fn url_decode_and_json_size_have_trino_semantics() {
        assert_eq!(
            value("SELECT url_decode('arn%3Aaws%3aconnect%2Fx+y')"),
            s("arn:aws:connect/x y")
        );
        assert_eq!(value("SELECT url_decode('%E6%9D%B1%FF')"), s("東\u{fffd}"));
        assert_eq!(value("SELECT url_decode(NULL)"), None);
        let err = engine_sql("SELECT url_decode('100%')", &[]).expect_err("broken escape");
        assert!(err.contains("Illegal hex characters"), "{err}");
        let doc = r#"'{"l":["a","b",{"c":1}],"o":{"a":1,"b":2},"n":5}'"#;
        let f = |path: &str| value(&format!("SELECT json_size({doc}, '{path}')"));
        assert_eq!(f("$.l"), s("3"));
        assert_eq!(f("$.o"), s("2"));
        assert_eq!(f("$.n"), s("0"));
        assert_eq!(f("$.l[2]"), s("1"));
        assert_eq!(f("$.missing"), None);
        assert_eq!(value("SELECT json_size('not json', '$.a')"), None);
    }

    #[test]
    fn regexp_extract_has_trino_semantics() {
        assert_eq!(
            value("SELECT regexp_extract('abc-123-def', '[0-9]+')"),
            s("123")
        );
        assert_eq!(
            value("SELECT regexp_extract('abc-123-def', '([a-z]+)-([0-9]+)', 2)"),
            s("123")
        );
        assert_eq!(
            value("SELECT regexp_extract('abc-123-def', '([a-z]+)-([0-9]+)', 0)"),
            s("abc-123")
        );
        assert_eq!(value("SELECT regexp_extract('abc', '[0-9]+')"), None);
        assert_eq!(value("SELECT regexp_extract('abc', 'a(x)?', 1)"), None);
        assert_eq!(
            value(
                "SELECT regexp_extract('arn:aws:connect:us-east-1:1:instance/i-1/agent/u-9', 'agent/([^/]+)$', 1)"
            ),
            s("u-9")
        );
        let err =
            engine_sql("SELECT regexp_extract('abc', 'a(b)', 2)", &[]).expect_err("bad group");
        assert!(
            err.contains("Pattern has 1 groups. Cannot access group 2"),
            "{err}"
        );
    }

    #[test]
    fn regexp_replace_replaces_every_match_with_java_references() {
        assert_eq!(
            value("SELECT regexp_replace('a1b22c333', '[0-9]+', '#')"),
            s("a#b#c#")
        );
        assert_eq!(value("SELECT regexp_replace('a1b22', '[0-9]+')"), s("ab"));
        assert_eq!(
            value("SELECT regexp_replace('john smith', '(\\w+) (\\w+)', '$2, $1')"),
            s("smith, john")
        );
        assert_eq!(
            value("SELECT regexp_replace('ab', '(a)', '${1}x')"),
            s("axb")
        );
        assert_eq!(value("SELECT regexp_replace('ab', '(a)', '$1x')"), s("axb"));
        assert_eq!(value("SELECT regexp_replace('ab', 'a', '\\$')"), s("$b"));
        assert_eq!(java_replacement("$12", 1).expect("ok"), "${1}2");
        assert_eq!(java_replacement("$12", 12).expect("ok"), "${12}");
        assert!(java_replacement("$", 1).is_err());
    }

    #[test]
    fn from_iso8601_timestamp_parses_iso_8601_and_fails_on_garbage() {
        assert_eq!(
            value("SELECT from_iso8601_timestamp('2024-05-01T00:00:00Z')"),
            s("2024-05-01 00:00:00.000 UTC")
        );
        assert_eq!(
            value("SELECT from_iso8601_timestamp('2024-05-01T09:00:00.123+09:00')"),
            s("2024-05-01 00:00:00.123 UTC")
        );
        assert_eq!(
            value("SELECT from_iso8601_timestamp('2024-05-01T00:00:00')"),
            s("2024-05-01 00:00:00.000 UTC")
        );
        assert_eq!(value("SELECT from_iso8601_timestamp(NULL)"), None);
        assert_eq!(
            value(
                "SELECT from_iso8601_timestamp('2024-05-02T00:00:00Z') > from_iso8601_timestamp('2024-05-01T23:59:59Z')"
            ),
            s("true")
        );
        let err =
            engine_sql("SELECT from_iso8601_timestamp('2024-13-01')", &[]).expect_err("garbage");
        assert!(err.contains("Invalid format"), "{err}");
    }

    #[test]
    fn placeholders_are_tokens_and_parameters_literals() {
        let (sql, values) = bind_parameters(
            "SELECT '?' AS q, ? AS a -- ?\n/* ? */ , \"?\" , ?",
            &["'x'".to_owned(), "2".to_owned()],
        )
        .expect("bind");
        assert_eq!(sql, "SELECT '?' AS q, $1 AS a -- ?\n/* ? */ , \"?\" , $2");
        assert_eq!(
            values,
            [
                ScalarValue::Utf8(Some("x".into())),
                ScalarValue::Int64(Some(2))
            ]
        );
        let (_, values) =
            bind_parameters("SELECT ?", &["'x'' OR 1=1 --'".to_owned()]).expect("bind");
        assert_eq!(values, [ScalarValue::Utf8(Some("x' OR 1=1 --".into()))]);
        for bad in [
            "1); DROP TABLE x",
            "x",
            "now()",
            "(SELECT 1)",
            "'a'; SELECT 1",
            "'a' 'b'",
            "1 + 1",
        ] {
            let err = bind_parameters("SELECT ?", &[bad.to_owned()]).expect_err(bad);
            assert!(err.contains("parameter 1"), "{bad}: {err}");
        }
        assert!(bind_parameters("SELECT ?, ?", &["1".to_owned()]).is_err());
        assert!(bind_parameters("SELECT 1", &["1".to_owned()]).is_err());
        for ok in [
            "NULL",
            "true",
            "1.5",
            "DATE '2024-05-01'",
            "TIMESTAMP '2024-05-01 00:00:00'",
        ] {
            bind_parameters("SELECT ?", &[ok.to_owned()]).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        // Non-ASCII text before a placeholder does not shift it.
        let (sql, _) = bind_parameters("SELECT 'é日本' AS x, ?", &["1".to_owned()]).expect("bind");
        assert_eq!(sql, "SELECT 'é日本' AS x, $1");
        assert_eq!(
            engine_sql("SELECT ? AS a, ? AS b", &["'x'' y'", "true"]),
            Ok(vec![vec![s("a"), s("b")], vec![s("x' y"), s("true")]])
        );
    }

    #[test]
    fn projection_dates() {
        let d = |y, m, day| jiff::civil::date(y, m, day);
        assert_eq!(parse_date("2024/05/02", "yyyy/MM/dd"), Some(d(2024, 5, 2)));
        assert_eq!(parse_date("2024/5/02", "yyyy/MM/dd"), None);
        assert_eq!(parse_date("2024-05", "yyyy-MM"), Some(d(2024, 5, 1)));
        let (from, to) = date_range("2020/01/01,NOW", "yyyy/MM/dd").expect("range");
        assert_eq!(from, d(2020, 1, 1));
        assert!(to > d(2024, 1, 1));
        assert!(date_range("2020/01/01,NOW-1DAYS", "yyyy/MM/dd").is_ok());
        assert_eq!(
            athena_column_name("useridentity[sessioncontext][username]", 3),
            "username"
        );
        assert_eq!(athena_column_name("count(*)", 3), "_col3");
        assert_eq!(athena_column_name("$path", 0), "$path");
    }
}
