//! Running a query on Athena: start it, poll it, stop it, read its results page by page.

use std::future::Future;
use std::time::{Duration, Instant};

use aws_sdk_athena::Client;
use aws_sdk_athena::error::DisplayErrorContext;
use aws_sdk_athena::types::{QueryExecutionContext, QueryExecutionState, ResultConfiguration};
use connect_audit_core::{Directory, NameSource, TargetKind};
use tracing::{debug, info};

use super::rows::{Row, read_row};
use super::settings::ValidAthena;
use super::sql::{
    HISTORY_COLUMNS, NAMES_COLUMNS, Query, RESULT_COLUMNS, history_query, snapshot_names_query,
};
use crate::error::Error;
use crate::sink::ScanSink;
use connect_audit_core::history::{History, add_row};
use connect_audit_core::redact::Redaction;

/// The first pause between two status polls; it doubles up to the configured maximum.
pub const FIRST_POLL: Duration = Duration::from_millis(100);
/// Rows asked for per `GetQueryResults` page (Athena's maximum).
pub const PAGE_SIZE: i32 = 1000;
/// US dollars per TB (10^12 bytes) scanned.
pub const USD_PER_TB: f64 = 5.0;
/// Athena bills at least this many bytes per query.
pub const MINIMUM_BILLED_BYTES: u64 = 10 * 1_000_000;

/// Runs statements in one database and workgroup.
#[derive(Debug, Clone)]
pub struct Runner {
    client: Client,
    database: String,
    workgroup: String,
    output_location: Option<String>,
    timeout: Duration,
    poll_max: Duration,
}

/// A query that succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// The query execution id.
    pub id: String,
    /// `Statistics.DataScannedInBytes`.
    pub data_scanned_bytes: u64,
    /// `Statistics.EngineExecutionTimeInMillis`.
    pub engine_millis: u64,
}

impl Finished {
    /// What the query costs at [`USD_PER_TB`], with Athena's 10 MB minimum (DDL is free).
    #[allow(clippy::cast_precision_loss)]
    pub fn cost_usd(&self) -> f64 {
        let billed = self.data_scanned_bytes.max(MINIMUM_BILLED_BYTES);
        billed as f64 / 1e12 * USD_PER_TB
    }
}

/// What an audit query on Athena did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AthenaSummary {
    /// The query execution id.
    pub query_id: String,
    /// Bytes the query scanned.
    pub data_scanned_bytes: u64,
    /// Its cost at $5 per TB (10 MB minimum).
    pub cost_usd: f64,
    /// Result pages read.
    pub pages: u64,
    /// Audit records written to the sink.
    pub records: u64,
    /// Records written with `name_source = unresolved`.
    pub names_unresolved: u64,
    /// Records the local engine would report as bad input, reported the same way.
    pub bad: Vec<crate::BadInput>,
}

fn call_failed<E>(operation: &'static str, err: E) -> Error
where
    E: std::error::Error + 'static,
{
    Error::Athena {
        operation,
        message: DisplayErrorContext(err).to_string(),
    }
}

impl Runner {
    /// A runner for the database, workgroup, output location, timeout and poll settings of
    /// `athena`.
    pub fn new(client: Client, athena: &ValidAthena) -> Self {
        Self {
            client,
            database: athena.database.clone(),
            workgroup: athena.workgroup.clone(),
            output_location: athena.output_location.as_ref().map(|o| o.url("")),
            timeout: athena.timeout,
            poll_max: athena.poll_max,
        }
    }

    /// Starts `sql` with its parameters, waits for it with capped exponential backoff, and
    /// returns when it succeeded. FAILED and CANCELLED are errors carrying Athena's reason;
    /// past the timeout, or when `cancel` completes (Ctrl-C), the query is stopped
    /// (`StopQueryExecution`) and the run fails.
    pub async fn run(
        &self,
        sql: &str,
        parameters: &[String],
        cancel: impl Future<Output = ()>,
    ) -> Result<Finished, Error> {
        let started = Instant::now();
        let output = self.client.start_query_execution().query_string(sql);
        let output = output
            .query_execution_context(
                QueryExecutionContext::builder()
                    .catalog("AwsDataCatalog")
                    .database(&self.database)
                    .build(),
            )
            .work_group(&self.workgroup)
            .set_result_configuration(
                self.output_location
                    .as_ref()
                    .map(|o| ResultConfiguration::builder().output_location(o).build()),
            )
            .set_execution_parameters((!parameters.is_empty()).then(|| parameters.to_vec()))
            .send()
            .await
            .map_err(|e| call_failed("StartQueryExecution", e))?;
        let id = output
            .query_execution_id()
            .ok_or_else(|| Error::Athena {
                operation: "StartQueryExecution",
                message: "no QueryExecutionId in the answer".into(),
            })?
            .to_owned();
        info!(query = %id, workgroup = %self.workgroup, "Started Athena query.");
        tokio::pin!(cancel);
        let mut pause = FIRST_POLL;
        loop {
            let answer = self
                .client
                .get_query_execution()
                .query_execution_id(&id)
                .send()
                .await
                .map_err(|e| call_failed("GetQueryExecution", e))?;
            let execution = answer.query_execution();
            let status = execution.and_then(|e| e.status());
            let state = status.and_then(|s| s.state()).cloned();
            debug!(query = %id, state = ?state, "Polled Athena query.");
            match state {
                Some(QueryExecutionState::Succeeded) => {
                    let statistics = execution.and_then(|e| e.statistics());
                    let non_negative = |v: Option<i64>| v.and_then(|n| u64::try_from(n).ok());
                    return Ok(Finished {
                        data_scanned_bytes: non_negative(
                            statistics.and_then(aws_sdk_athena::types::QueryExecutionStatistics::data_scanned_in_bytes),
                        )
                        .unwrap_or(0),
                        engine_millis: non_negative(
                            statistics.and_then(
                                aws_sdk_athena::types::QueryExecutionStatistics::engine_execution_time_in_millis,
                            ),
                        )
                        .unwrap_or(0),
                        id,
                    });
                }
                Some(state @ (QueryExecutionState::Failed | QueryExecutionState::Cancelled)) => {
                    let reason = status
                        .and_then(|s| s.state_change_reason())
                        .unwrap_or("no reason given");
                    let athena_error = status.and_then(|s| s.athena_error()).map(|e| {
                        format!(
                            " (AthenaError category {}, type {}, {}retryable: {})",
                            e.error_category().unwrap_or_default(),
                            e.error_type().unwrap_or_default(),
                            if e.retryable() { "" } else { "not " },
                            e.error_message().unwrap_or("no message")
                        )
                    });
                    return Err(Error::QueryFailed {
                        id,
                        state: state.as_str().to_owned(),
                        reason: format!("{reason}{}", athena_error.unwrap_or_default()),
                    });
                }
                _ => {}
            }
            if started.elapsed() >= self.timeout {
                self.stop(&id).await;
                return Err(Error::QueryTimeout {
                    id,
                    seconds: self.timeout.as_secs(),
                });
            }
            let wait = pause.min(self.timeout.saturating_sub(started.elapsed()));
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = &mut cancel => {
                    self.stop(&id).await;
                    return Err(Error::Interrupted { id });
                }
            }
            pause = (pause * 2).min(self.poll_max);
        }
    }

    /// Asks Athena to stop a query; a failure to stop is logged, not raised (the run is
    /// failing already).
    async fn stop(&self, id: &str) {
        match self
            .client
            .stop_query_execution()
            .query_execution_id(id)
            .send()
            .await
        {
            Ok(_) => info!(query = %id, "Stopped Athena query."),
            Err(e) => tracing::warn!(
                query = %id,
                error = %DisplayErrorContext(e),
                "Could not stop the Athena query; stop it in the console."
            ),
        }
    }

    /// Reads the rows of a finished query page by page (`NextToken`), handing each page's
    /// rows to `page` (the header row of the first page is checked and dropped). Returns the
    /// number of pages. When `cancel` completes (Ctrl-C), reading stops with
    /// [`Error::Interrupted`].
    pub async fn results(
        &self,
        id: &str,
        expected_header: &[&str],
        mut page: impl FnMut(Vec<Vec<Option<String>>>) -> Result<(), Error>,
        cancel: impl Future<Output = ()>,
    ) -> Result<u64, Error> {
        tokio::pin!(cancel);
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let request = self
                .client
                .get_query_results()
                .query_execution_id(id)
                .max_results(PAGE_SIZE)
                .set_next_token(token.take())
                .send();
            let answer = tokio::select! {
                answer = request => answer.map_err(|e| call_failed("GetQueryResults", e))?,
                () = &mut cancel => return Err(Error::Interrupted { id: id.to_owned() }),
            };
            let rows = answer
                .result_set()
                .map(aws_sdk_athena::types::ResultSet::rows)
                .unwrap_or_default();
            let mut values: Vec<Vec<Option<String>>> = rows
                .iter()
                .map(|r| {
                    r.data()
                        .iter()
                        .map(|d| d.var_char_value().map(str::to_owned))
                        .collect()
                })
                .collect();
            if pages == 0 && !expected_header.is_empty() {
                let header = if values.is_empty() {
                    Vec::new()
                } else {
                    values.remove(0)
                };
                let names: Vec<&str> = header.iter().map(|v| v.as_deref().unwrap_or("")).collect();
                if names != expected_header {
                    return Err(Error::BadResult {
                        id: id.to_owned(),
                        reason: format!(
                            "unexpected columns {names:?}; the query asks for {expected_header:?}"
                        ),
                    });
                }
            }
            pages += 1;
            page(values)?;
            match answer.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                _ => return Ok(pages),
            }
        }
    }
}

/// Runs the audit query and streams its records into `sink`, page by page: never the whole
/// result in memory. `cancel` (Ctrl-C) stops the query while it runs, and the reading of its
/// results after.
pub async fn report(
    runner: &Runner,
    query: &Query,
    redaction: &Redaction,
    sink: &mut dyn ScanSink,
    cancel: impl Future<Output = ()>,
) -> Result<AthenaSummary, Error> {
    tokio::pin!(cancel);
    let finished = runner
        .run(&query.sql, &query.parameters, &mut cancel)
        .await?;
    let mut summary = AthenaSummary {
        query_id: finished.id.clone(),
        data_scanned_bytes: finished.data_scanned_bytes,
        cost_usd: finished.cost_usd(),
        ..AthenaSummary::default()
    };
    let mut index = 0u64;
    let id = finished.id.clone();
    let pages = runner
        .results(
            &finished.id,
            &RESULT_COLUMNS,
            |rows| {
                let mut batch = Vec::with_capacity(rows.len());
                for values in rows {
                    let row =
                        read_row(index, values, redaction).map_err(|source| Error::BadResult {
                            id: id.clone(),
                            reason: source.to_string(),
                        })?;
                    index += 1;
                    match row {
                        Row::Record(record) => {
                            if record.name_source == NameSource::Unresolved {
                                summary.names_unresolved += 1;
                            }
                            batch.push(*record);
                        }
                        Row::Bad(problem) => {
                            sink.bad_input(&problem);
                            summary.bad.push(problem);
                        }
                    }
                }
                summary.records += batch.len() as u64;
                if !batch.is_empty() {
                    sink.records(batch).map_err(Error::Sink)?;
                }
                Ok(())
            },
            &mut cancel,
        )
        .await?;
    summary.pages = pages;
    Ok(summary)
}

/// Runs `query` (`None`: nothing to run) and hands each result row, `N` values none of
/// which is null, to `each`; a row with a null, or one `each` refuses, fails the whole with
/// the query's id and `what` the rows are.
async fn each_row<const N: usize>(
    runner: &Runner,
    query: Option<Query>,
    columns: &[&str; N],
    what: &str,
    cancel: impl Future<Output = ()>,
    mut each: impl FnMut([String; N]) -> Result<(), String>,
) -> Result<(), Error> {
    let Some(query) = query else {
        return Ok(());
    };
    tokio::pin!(cancel);
    let finished = runner
        .run(&query.sql, &query.parameters, &mut cancel)
        .await?;
    let id = finished.id.clone();
    runner
        .results(
            &finished.id,
            columns,
            |rows| {
                for row in rows {
                    let values: Option<Vec<String>> = row.into_iter().collect();
                    let Some(values) = values.and_then(|v| <[String; N]>::try_from(v).ok()) else {
                        return Err(Error::BadResult {
                            id: id.clone(),
                            reason: format!("a {what} row without its {N} values"),
                        });
                    };
                    each(values).map_err(|reason| Error::BadResult {
                        id: id.clone(),
                        reason,
                    })?;
                }
                Ok(())
            },
            &mut cancel,
        )
        .await?;
    Ok(())
}

/// The names of the snapshot tables as a [`Directory`], read with one query
/// ([`snapshot_names_query`]); empty without a snapshot store. `cancel` (Ctrl-C) stops it as
/// it stops the audit query.
pub async fn snapshot_names(
    runner: &Runner,
    athena: &ValidAthena,
    cancel: impl Future<Output = ()>,
) -> Result<Directory, Error> {
    let mut directory = Directory::new();
    let query = snapshot_names_query(athena);
    each_row(
        runner,
        query,
        &NAMES_COLUMNS,
        "snapshot name",
        cancel,
        |[kind, item, name]| {
            let kind = TargetKind::parse(&kind)
                .ok_or_else(|| format!("a snapshot name of the unknown kind `{kind}`"))?;
            directory.insert_snapshot(kind, &item, &name);
            Ok(())
        },
    )
    .await?;
    Ok(directory)
}

/// The versions of the snapshot's history table as a [`History`], read with one query
/// ([`history_query`]); empty without a snapshot store. A row that is not a version is an
/// error naming the query.
pub async fn snapshot_history(
    runner: &Runner,
    athena: &ValidAthena,
    cancel: impl Future<Output = ()>,
) -> Result<History, Error> {
    let mut history = History::new();
    let query = history_query(athena);
    each_row(
        runner,
        query,
        &HISTORY_COLUMNS,
        "history",
        cancel,
        |[folder, observed, object, path]| {
            add_row(&mut history, &folder, &observed, &object).map_err(|reason| {
                format!("{path}: a history row of {folder} at {observed}: {reason}")
            })
        },
    )
    .await?;
    history.seal();
    Ok(history)
}
