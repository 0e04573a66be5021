//! The SIEM webhook exporter: batches of records POSTed to Splunk's HTTP Event Collector or to
//! a [Standard Webhooks](https://www.standardwebhooks.com) receiver.
//!
//! - `splunk-hec`: `POST <url>/services/collector/event`, `Authorization: Splunk <token>`, a
//!   body of JSON envelopes, one per record: `{"time": <epoch seconds>, "host", "source",
//!   "sourcetype", "index", "event": <record>, "fields": {"event_id": <id>, "row_key": <key>}}`
//!   (the row key is the event id, and `<event id>#<target index>` for the second and later
//!   targets of a call that names several: dedupe on it, not on the event id; for OCSF events,
//!   the event's `metadata.uid`, which tells a `CreateUser`'s grant from its account change).
//! - `standard-webhooks`: `POST <url>`, a JSON array of records, `webhook-id` (the same on every
//!   retry of a batch: `msg_` + hex SHA-256 of its row keys), `webhook-timestamp` and
//!   `webhook-signature: v1,<base64 HMAC-SHA256>` of `"{id}.{timestamp}.{body}"`, signed over
//!   the uncompressed body.
//!
//! Delivery is at least once. Batches are cut at `max_events` and `max_bytes`, optionally
//! gzipped, sent `concurrency` at a time (so not necessarily in order), and retried on
//! connection errors, timeouts, 408, 429 and 5xx with exponential backoff and full jitter,
//! honouring `Retry-After`, up to `max_retries` and `retry_budget_secs`. A batch that is
//! refused (another 4xx) or runs out of retries goes to the dead-letter file (one JSON line
//! per record: the record and why it was not delivered), and
//! [`finish`](crate::Exporter::finish) then fails with [`Error::DeadLettered`] naming the file
//! and the count; [`replay`] sends that file again.
//!
//! [`Exporter`] is synchronous and may be called from inside a tokio runtime, so the exporter
//! owns a thread with its own runtime: [`write`](crate::Exporter::write) serialises records and
//! hands full batches over a bounded channel (it blocks when `concurrency` batches are
//! waiting), which bounds memory whatever the size of the run.
//!
//! The token and the secret come from config, or from the environment variable named by
//! `token_env`/`secret_env`, whose value the program reads and passes in
//! ([`CredentialVars`]) when the exporter is built. They appear in no message, log line or
//! `Debug` output: the `Authorization` and signature headers are marked sensitive and error
//! text is scrubbed of them and of the URL's userinfo and query.

mod batch;
mod deadletter;
mod deliver;
mod sign;
mod spec;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use connect_audit_core::AuditRecord;

use self::batch::{Batch, Batcher};
use self::deadletter::DeadLetter;
use self::deliver::{Endpoint, Verdict};
pub use self::spec::{Secret, SiemFlavor, SiemWebhookSpec, check_webhook_secret, redact_url};
use crate::spec::{CredentialVars, RecordSchema};
use crate::{Error, ExportSummary, Exporter};

/// What each record becomes in a request.
#[derive(Debug, Clone, Copy, Default)]
pub enum EventBody {
    /// The record's serde form, as JSON Lines writes it.
    #[default]
    Record,
    /// A mapping of the record to one or more events of another JSON shape (OCSF: a
    /// `CreateUser` that gives profiles is an account change and a grant). Each event is its
    /// own array element or HEC envelope; the dead-letter file still keeps the record itself,
    /// so a replay maps it again.
    Json(fn(&AuditRecord) -> Vec<serde_json::Value>),
}

/// Posts batches of records to a SIEM. Built from a [`SiemWebhookSpec`].
pub struct SiemExporter {
    name: String,
    batcher: Batcher,
    batches: Option<SyncSender<Batch>>,
    worker: Option<JoinHandle<Tally>>,
    dead_letter: Arc<Mutex<DeadLetter>>,
    /// Records handed to the delivery thread.
    handed_over: u64,
}

impl std::fmt::Debug for SiemExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiemExporter")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// What the delivery thread did.
#[derive(Debug, Default)]
struct Tally {
    delivered: u64,
}

impl SiemExporter {
    /// Takes the credential (from the spec, or the value of its variable in `vars`), sets up
    /// TLS and starts the delivery thread, for a validated spec. No request is made until the
    /// first batch is full.
    pub fn create(spec: &SiemWebhookSpec, vars: &CredentialVars) -> Result<Self, Error> {
        Self::with_event_body(spec, vars, EventBody::Record)
    }

    /// As [`create`](Self::create), with each record sent as `event_body` shapes it.
    pub fn with_event_body(
        spec: &SiemWebhookSpec,
        vars: &CredentialVars,
        event_body: EventBody,
    ) -> Result<Self, Error> {
        let name = describe(spec);
        let fail = |message: String| Error::Siem {
            exporter: name.clone(),
            message,
        };
        let credential = credential(spec, vars).map_err(fail)?;
        let endpoint = Arc::new(Endpoint::new(spec, credential).map_err(fail)?);
        let dead_letter = Arc::new(Mutex::new(DeadLetter::new(
            &name,
            PathBuf::from(&spec.dead_letter),
        )));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("siem-webhook")
            .enable_all()
            .build()
            .map_err(|e| fail(format!("cannot start the delivery runtime: {e}")))?;
        let concurrency = spec.concurrency.max(1);
        let (batches, receiver) = mpsc::sync_channel(concurrency);
        let worker = {
            let name = name.clone();
            let dead_letter = Arc::clone(&dead_letter);
            std::thread::Builder::new()
                .name("siem-webhook".into())
                .spawn(move || {
                    deliver_all(
                        &runtime,
                        &receiver,
                        &endpoint,
                        &dead_letter,
                        concurrency,
                        &name,
                    )
                })
                .map_err(|e| fail(format!("cannot start the delivery thread: {e}")))?
        };
        Ok(Self {
            batcher: Batcher::new(spec, event_body),
            name,
            batches: Some(batches),
            worker: Some(worker),
            dead_letter,
            handed_over: 0,
        })
    }

    fn send(&mut self, batch: Batch) -> Result<(), Error> {
        let events = batch.len() as u64;
        let sent = self.batches.as_ref().map(|tx| tx.send(batch));
        if matches!(sent, Some(Ok(()))) {
            self.handed_over += events;
            return Ok(());
        }
        Err(Error::Siem {
            exporter: self.name.clone(),
            message: "the delivery thread stopped".into(),
        })
    }
}

/// `siem-webhook <url without credentials> (<flavor>)`.
fn describe(spec: &SiemWebhookSpec) -> String {
    let flavor = match spec.flavor {
        SiemFlavor::SplunkHec => "splunk-hec",
        SiemFlavor::StandardWebhooks => "standard-webhooks",
    };
    format!("siem-webhook {} ({flavor})", redact_url(&spec.url))
}

/// The token or secret, from config or the value of its environment variable in `vars`.
fn credential(spec: &SiemWebhookSpec, vars: &CredentialVars) -> Result<String, String> {
    let (value, var, what) = match spec.flavor {
        SiemFlavor::SplunkHec => (&spec.token, &spec.token_env, "token"),
        SiemFlavor::StandardWebhooks => (&spec.secret, &spec.secret_env, "secret"),
    };
    match (value, var) {
        (Some(value), _) => Ok(value.expose().to_owned()),
        (None, Some(var)) => match vars.get(var) {
            Some(value) if !value.trim().is_empty() => Ok(value.trim().to_owned()),
            Some(_) => Err(format!("the {what} variable {var} is empty")),
            None => Err(format!("the {what} variable {var} is not set")),
        },
        (None, None) => Err(format!("no {what}: give {what} or {what}_env")),
    }
}

/// The delivery thread: at most `concurrency` batches in flight on `runtime`.
fn deliver_all(
    runtime: &tokio::runtime::Runtime,
    receiver: &Receiver<Batch>,
    endpoint: &Arc<Endpoint>,
    dead_letter: &Arc<Mutex<DeadLetter>>,
    concurrency: usize,
    name: &str,
) -> Tally {
    let slots = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    let mut tally = Tally::default();
    let count = |tally: &mut Tally, done: Result<u64, tokio::task::JoinError>| match done {
        Ok(events) => tally.delivered += events,
        Err(e) => tracing::error!(exporter = name, error = %e, "A delivery task failed."),
    };
    for batch in receiver {
        let slot = runtime
            .block_on(Arc::clone(&slots).acquire_owned())
            .expect("the semaphore is never closed");
        while let Some(done) = tasks.try_join_next() {
            count(&mut tally, done);
        }
        let endpoint = Arc::clone(endpoint);
        let dead_letter = Arc::clone(dead_letter);
        let name = name.to_owned();
        tasks.spawn_on(
            async move {
                let _slot = slot;
                match endpoint.deliver(&batch, &name).await {
                    Verdict::Delivered => batch.len() as u64,
                    Verdict::GivenUp(failure) => {
                        let mut dead_letter = dead_letter
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        tracing::warn!(
                            exporter = %name,
                            events = batch.len(),
                            status = failure.status,
                            reason = %failure.reason,
                            path = %dead_letter.path().display(),
                            "Batch not delivered; written to the dead-letter file."
                        );
                        // Blocking file I/O, rare and short: it stays on this worker.
                        dead_letter.write(&batch, &failure);
                        0
                    }
                }
            },
            runtime.handle(),
        );
    }
    runtime.block_on(async {
        while let Some(done) = tasks.join_next().await {
            count(&mut tally, done);
        }
    });
    tally
}

impl Exporter for SiemExporter {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn write(&mut self, batch: &[AuditRecord]) -> Result<(), Error> {
        for record in batch {
            let full = self.batcher.push(record).map_err(|source| Error::Json {
                exporter: self.name.clone(),
                event_id: record.event_id.clone(),
                source,
            })?;
            if let Some(full) = full {
                self.send(full)?;
            }
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<ExportSummary, Error> {
        if let Some(last) = self.batcher.take() {
            self.send(last)?;
        }
        drop(self.batches.take());
        let tally = self
            .worker
            .take()
            .expect("finish is called once")
            .join()
            .map_err(|_| Error::Siem {
                exporter: self.name.clone(),
                message: "the delivery thread panicked".into(),
            })?;
        let mut dead_letter = self
            .dead_letter
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let accounted = tally.delivered + dead_letter.events + dead_letter.lost;
        if accounted != self.handed_over {
            return Err(Error::Siem {
                exporter: self.name.clone(),
                message: format!(
                    "{} event(s) were neither delivered nor dead-lettered: a delivery task failed",
                    self.handed_over.saturating_sub(accounted)
                ),
            });
        }
        dead_letter.outcome(tally.delivered)?;
        drop(dead_letter);
        Ok(ExportSummary {
            exporter: self.name.clone(),
            records: tally.delivered,
            outputs: Vec::new(),
        })
    }
}

impl Drop for SiemExporter {
    /// Dropped without `finish` (the run failed): batches already handed over are still
    /// delivered or dead-lettered by the thread, which is not waited for.
    fn drop(&mut self) {
        drop(self.batches.take());
    }
}

/// What [`replay`] resent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplaySummary {
    /// The exporter, as [`Exporter::describe`] names it.
    pub exporter: String,
    /// Records read from the dead-letter file and delivered.
    pub records: u64,
    /// The dead-letter file, now removed.
    pub dead_letter: PathBuf,
}

/// Sends the records of a dead-letter file again through the exporter `spec` describes (a
/// credential variable it names is not set: see [`replay_with`]).
///
/// Every record delivered: the file is removed and the summary returned. Some refused again:
/// the file is atomically replaced by a new one holding just those (with the new reasons) and
/// the answer is [`Error::DeadLettered`]. Any other error leaves the file as it was, so a later
/// replay resends everything (at least once, never lost). Do not replay a file that a running
/// report is still appending to.
pub fn replay(spec: &SiemWebhookSpec, dead_letter: &Path) -> Result<ReplaySummary, Error> {
    replay_with(spec, dead_letter, &CredentialVars::default())
}

/// The events a spec asks for: the record (`schema = "audit"`) or its OCSF event.
pub fn event_body(spec: &SiemWebhookSpec) -> EventBody {
    match spec.schema {
        RecordSchema::Audit => EventBody::Record,
        RecordSchema::Ocsf => EventBody::Json(crate::ocsf::to_ocsf_events),
    }
}

/// [`replay`], with the value of the credential's variable, if the spec names one, in `vars`.
pub fn replay_with(
    spec: &SiemWebhookSpec,
    dead_letter: &Path,
    vars: &CredentialVars,
) -> Result<ReplaySummary, Error> {
    let file_name = dead_letter.file_name().map_or_else(
        || "dead-letter".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let retry = dead_letter.with_file_name(format!(".{file_name}.replay-{}", std::process::id()));
    let _ = std::fs::remove_file(&retry);
    let mut retry_spec = spec.clone();
    retry_spec.dead_letter = retry.display().to_string();
    let mut exporter = Box::new(SiemExporter::with_event_body(
        &retry_spec,
        vars,
        event_body(spec),
    )?);
    let name = exporter.describe();
    let read = deadletter::read_records(dead_letter, 500, |records| exporter.write(&records));
    if let Err(e) = read {
        drop(exporter);
        let _ = std::fs::remove_file(&retry);
        return Err(e);
    }
    let io = |source| Error::DeadLetterWrite {
        exporter: name.clone(),
        events: 0,
        path: dead_letter.to_owned(),
        source,
    };
    match exporter.finish() {
        Ok(summary) => {
            std::fs::remove_file(dead_letter).map_err(io)?;
            Ok(ReplaySummary {
                exporter: name,
                records: summary.records,
                dead_letter: dead_letter.to_owned(),
            })
        }
        Err(Error::DeadLettered {
            exporter,
            events,
            batches,
            delivered,
            ..
        }) => {
            std::fs::rename(&retry, dead_letter).map_err(io)?;
            Err(Error::DeadLettered {
                exporter,
                events,
                batches,
                delivered,
                path: dead_letter.to_owned(),
            })
        }
        Err(e) => {
            let _ = std::fs::remove_file(&retry);
            Err(e)
        }
    }
}
