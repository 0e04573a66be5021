//! `connect-audit watch`: follows the trail as it lands, until stopped.
//!
//! - **Queue** (`--queue URL`): S3 notifications on SQS, in any of their shapes
//!   ([`connect_audit_query::notification`]). Messages are gathered into a batch for at most
//!   `watch.roll` (or `watch.batch_objects` objects); each batch's new CloudTrail log objects are
//!   claimed ([`Claims`]), read, and their audited events written to every exporter, one file
//!   per batch named after the batch (`{batch}` in the path). Only then are the messages
//!   deleted. Digest, insight and foreign keys, test events and other notifications are
//!   acknowledged and counted. An object that cannot be read leaves its message on the queue,
//!   named in the log, until the queue's redrive policy moves it to the dead-letter queue.
//!   Messages are held (visibility extended) while their batch is worked on.
//! - **Polling** (`--poll 5m`): an incremental run every period, reading only the objects the
//!   ledger has not seen (see [`connect_audit_core::objects`]), each pass's files named after
//!   its start as `run` names them.
//!
//! Several processes on one queue: each object is claimed by one batch; a batch cut short
//! (killed, failed) is done again whole by whoever meets one of its objects next, under the
//! same file names with the same rows; so files never hold an event twice, and the SIEM
//! receives each event at least once, with its stable event id.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use connect_audit_config::{
    ConfigError, Engine, Settings, ValidExporter, ValidReport, ValidWatch, WatchSource,
};
use connect_audit_core::history::History;
use connect_audit_core::objects::{BatchManifest, BatchObject, Claimed, Claims, is_log_file_name};
use connect_audit_core::{AuditRecord, Directory, Location, Store, Window};
use connect_audit_exporters::destination::S3Outputs;
use connect_audit_query::local::TrailScanner;
use connect_audit_query::notification::{self, Notification, ObjectCreated};
use connect_audit_query::queue::{Message, Queue};
use connect_audit_query::stage::ChangeStage;
use connect_audit_query::{BadInput, ScanSink, SinkError};
use figment::Figment;
use futures_util::{StreamExt as _, TryStreamExt as _};
use jiff::Timestamp;

use crate::args::WatchArgs;
use crate::report::{self, FanOut};
use crate::terminal::Reporter;
use crate::{ExitCode, UsageError};

/// How long the snapshot store's names are used before they are read again.
const NAMES_FOR: Duration = Duration::from_mins(10);

/// How many objects' claims are looked up or made at once (each is a round trip or two to
/// the claims store).
const CLAIMS_AT_ONCE: usize = 16;

/// How long a process remembers the event ids it wrote, to drop a second delivery of an
/// event in another object (CloudTrail's duplicates come minutes apart; at 50 events a second
/// this is 360 000 ids).
const WRITTEN_KEPT: jiff::SignedDuration = jiff::SignedDuration::from_hours(2);

/// How long finished batches and their objects' claims are kept: SQS keeps a message 14 days
/// at most, so no queue can deliver one of their objects again after that.
const CLAIMS_KEPT: jiff::SignedDuration = jiff::SignedDuration::from_hours(15 * 24);

/// How often the claims older than [`CLAIMS_KEPT`] are forgotten.
const PRUNE_EVERY: Duration = Duration::from_hours(1);

/// The longest pause after a failed batch or pass.
const MAX_BACKOFF: Duration = Duration::from_mins(5);

/// Merges the flags of `watch` over the layered config.
fn merge_flags(mut figment: Figment, args: &WatchArgs) -> Figment {
    if let Some(v) = &args.queue {
        figment = connect_audit_config::flag(figment, "watch.queue", v);
    }
    if let Some(v) = &args.poll {
        figment = connect_audit_config::flag(figment, "watch.poll", v);
    }
    if let Some(v) = &args.roll {
        figment = connect_audit_config::flag(figment, "watch.roll", v);
    }
    if args.tolerate_bad_files {
        figment = connect_audit_config::flag(figment, "report.tolerate_bad_files", true);
    }
    figment
}

/// `watch`.
pub fn command(figment: Figment, args: &WatchArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let figment = merge_flags(figment, args);
    let settings: Settings = figment.extract().map_err(ConfigError::from)?;
    if settings.report.engine == Engine::Athena {
        return Err(UsageError(
            "`watch` reads new objects on the local engine; report.engine = \"athena\" is not supported"
                .into(),
        )
        .into());
    }
    let watch = settings.validate_watch(&figment)?;
    let valid = settings.validate(&figment, Timestamp::now())?;
    check_batch_names(&valid.exporters)?;
    let stop = Stop::install()?;
    let reporter = Reporter::new(quiet);
    match &watch.source {
        WatchSource::Poll(every) => poll(&settings, &figment, &watch, *every, &stop, &reporter),
        WatchSource::Queue(url) => {
            let url = url.clone();
            Ok(QueueWatch::start(&settings, valid, &watch, &url, &stop, &reporter)?.run())
        }
    }
}

/// Every file exporter must name its file after the batch, or a batch would replace the last.
fn check_batch_names(exporters: &[ValidExporter]) -> Result<(), UsageError> {
    for (i, spec) in exporters.iter().enumerate() {
        let mut spec = spec.clone();
        if spec.partition_file_mut().is_some() {
            continue;
        }
        let Some(path) = spec.path_mut() else {
            continue;
        };
        if path != "-" && !path.contains("{batch}") && !path.contains("{since}") {
            return Err(UsageError(format!(
                "exporters[{i}].path `{path}`: watch writes one file per batch; put {{batch}} in \
                 the path (e.g. out/audit-{{batch}}.jsonl), or each batch would replace the last"
            )));
        }
    }
    Ok(())
}

/// Set by SIGTERM or Ctrl-C: the batch in flight is finished, nothing else started.
#[derive(Clone)]
struct Stop(Arc<AtomicBool>);

impl Stop {
    /// Listens for SIGTERM and Ctrl-C on a thread of its own. A second signal ends the
    /// process at once (nothing unfinished was acknowledged, so nothing is lost).
    fn install() -> anyhow::Result<Self> {
        let flag = Arc::new(AtomicBool::new(false));
        let set = flag.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the signal listener")?;
        std::thread::Builder::new()
            .name("connect-audit-signals".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(mut term) =
                        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    else {
                        return;
                    };
                    for _ in 0..2 {
                        tokio::select! {
                            _ = term.recv() => {}
                            _ = tokio::signal::ctrl_c() => {}
                        }
                        if set.swap(true, Ordering::SeqCst) {
                            crate::terminal::note(
                                "connect-audit watch: second signal: exiting now; the batch in flight is not acknowledged and will be received again",
                            );
                            std::process::exit(130);
                        }
                        crate::terminal::note(
                            "connect-audit watch: stopping after the batch in flight (a second signal exits at once)",
                        );
                    }
                });
            })
            .context("cannot start the signal listener")?;
        Ok(Self(flag))
    }

    fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Sleeps up to `d`, waking early when stopped.
    fn sleep(&self, d: Duration) {
        let until = Instant::now() + d;
        while !self.is_set() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(100)));
        }
    }
}

/// What `watch` did, for its health line.
#[derive(Debug, Default)]
struct Totals {
    messages: u64,
    objects: u64,
    duplicates: u64,
    ignored: u64,
    events: u64,
    batches: u64,
    failed: u64,
    /// When the newest object read was created (S3's time, else its delivery minute).
    newest: Option<Timestamp>,
}

/// Writes the health line every period, when stderr is not a terminal (a service's log).
struct Health {
    every: Duration,
    last: Instant,
    on: bool,
}

impl Health {
    fn new(every: Duration) -> Self {
        Self {
            every,
            last: Instant::now(),
            on: !std::io::stderr().is_terminal(),
        }
    }

    fn tick(&mut self, t: &Totals) {
        if !self.on || self.last.elapsed() < self.every {
            return;
        }
        self.last = Instant::now();
        let lag = t.newest.map_or_else(
            || "no object read yet".to_owned(),
            |n| {
                format!(
                    "{:.1}s behind the newest object read",
                    (Timestamp::now() - n).as_secs_f64()
                )
            },
        );
        crate::terminal::note(&format!(
            "connect-audit watch: health: {} messages, {} objects read ({} duplicates, {} not log files), {} events written, {} batches ({} failed); {lag}",
            t.messages, t.objects, t.duplicates, t.ignored, t.events, t.batches, t.failed
        ));
    }
}

/// `watch --poll`: an incremental run each period.
fn poll(
    settings: &Settings,
    figment: &Figment,
    watch: &ValidWatch,
    every: Duration,
    stop: &Stop,
    reporter: &Reporter,
) -> anyhow::Result<ExitCode> {
    let incremental = settings.validate_incremental(figment)?;
    let mut health = Health::new(watch.health);
    let mut totals = Totals::default();
    let mut backoff = Duration::from_secs(1);
    tracing::info!(every = ?every, state = %incremental.state, "Watching the trail by listing.");
    while !stop.is_set() {
        let started = Instant::now();
        let valid = settings.validate(figment, Timestamp::now())?;
        match report::run_pass(settings, valid, Some(&incremental), reporter, true) {
            Ok(pass) => {
                totals.batches += 1;
                totals.objects += pass.objects;
                totals.events += pass.written;
                totals.newest = totals.newest.max(pass.newest_delivery);
                if pass.code == ExitCode::Success {
                    backoff = Duration::from_secs(1);
                } else {
                    // Bad input skipped (named above): the state did not advance, so the next
                    // pass reads the same objects again; not every period, but backing off.
                    totals.failed += 1;
                    tracing::error!(
                        exit_code = pass.code as u8,
                        next_in_secs = backoff.as_secs(),
                        "A pass skipped bad input (named above) and did not advance the state: the next pass reads the same objects again (its files are replaced, the SIEM gets their events again). Fix or move the file, or run with --tolerate-bad-files."
                    );
                    stop.sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
            Err(err) => {
                totals.failed += 1;
                crate::terminal::error(&err.context(format!(
                    "a pass failed; the next starts in {}s, from the same state",
                    backoff.as_secs()
                )));
                stop.sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
        health.tick(&totals);
        stop.sleep(every.saturating_sub(started.elapsed()));
    }
    Ok(ExitCode::Success)
}

/// One message received and what it announced.
struct Held {
    message: Message,
    /// The trail objects it names (keys relative to the trail's root), with their ETag, size
    /// and creation time as the notification gave them.
    objects: Vec<BatchObject>,
}

/// How long a batch that fails for a reason of its own (S3, the claims store or an exporter
/// down) is tried again, its messages held, before they are let go back to the queue.
const RETRY_FOR: Duration = Duration::from_mins(30);

/// `watch --queue`.
struct QueueWatch<'a> {
    settings: &'a Settings,
    valid: ValidReport,
    watch: &'a ValidWatch,
    stop: &'a Stop,
    reporter: &'a Reporter,
    runtime: tokio::runtime::Runtime,
    s3: aws_sdk_s3::Client,
    queue: Queue,
    trail: Store,
    /// The trail's bucket and key prefix (empty, or ending in `/`).
    bucket: String,
    prefix: String,
    claims: Claims,
    names: Option<(Directory, History, Instant)>,
    /// Event ids written by this process in the last hours: a second delivery of an event in
    /// another object is dropped (processes do not share these).
    written: BTreeMap<String, Timestamp>,
    totals: Totals,
    health: Health,
    /// The batch being written, for the heartbeat that says it is alive; `None` once done.
    alive: Arc<tokio::sync::Mutex<Option<BatchManifest>>>,
}

impl<'a> QueueWatch<'a> {
    fn start(
        settings: &'a Settings,
        valid: ValidReport,
        watch: &'a ValidWatch,
        url: &str,
        stop: &'a Stop,
        reporter: &'a Reporter,
    ) -> anyhow::Result<Self> {
        let Location::S3 { bucket, prefix } = valid.trail.clone() else {
            return Err(UsageError(format!(
                "--queue reads the objects S3 notifies of: report.trail must be the trail's s3://bucket/prefix, not {}",
                valid.trail
            ))
            .into());
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let (s3, sqs) = runtime.block_on(async {
            let sdk = crate::aws::sdk_config(&settings.snapshot).await;
            (crate::aws::s3_client(&sdk), aws_sdk_sqs::Client::new(&sdk))
        });
        let trail = Store::open(&valid.trail, Some(&s3))?;
        let claims = Claims::new(Store::open(&watch.claims, Some(&s3))?);
        let honoured = runtime
            .block_on(claims.probe())
            .with_context(|| format!("cannot use watch.claims {}", claims.describe()))?;
        if !honoured {
            return Err(UsageError(format!(
                "watch.claims {}: this store does not honour conditional writes (If-None-Match: *), so two processes could claim one object; use Amazon S3 or a local directory",
                claims.describe()
            ))
            .into());
        }
        let prefix = if prefix.is_empty() {
            prefix
        } else {
            format!("{}/", prefix.trim_end_matches('/'))
        };
        tracing::info!(queue = url, trail = %valid.trail, claims = %claims.describe(), "Watching the queue.");
        Ok(Self {
            settings,
            queue: Queue::new(sqs, url, watch.visibility),
            valid,
            watch,
            stop,
            reporter,
            runtime,
            s3,
            trail,
            bucket,
            prefix,
            claims,
            names: None,
            written: BTreeMap::new(),
            totals: Totals::default(),
            health: Health::new(watch.health),
            alive: Arc::new(tokio::sync::Mutex::new(None)),
        })
    }

    fn run(mut self) -> ExitCode {
        let mut backoff = Duration::from_secs(1);
        let mut pruned: Option<Instant> = None;
        while !self.stop.is_set() {
            if pruned.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                pruned = Some(Instant::now());
                let cutoff = Timestamp::now() - CLAIMS_KEPT;
                match self.runtime.block_on(self.claims.prune(cutoff)) {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(batches = n, before = %cutoff, "Forgot the batches finished before the queue's longest retention, and their objects' claims.");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, claims = %self.claims.describe(), "Could not forget old batches; trying again in an hour.");
                    }
                }
            }
            let held = match self.gather() {
                Ok(held) => held,
                Err(err) => {
                    crate::terminal::error(&err.context(format!(
                        "receiving from {} failed; trying again in {}s",
                        self.queue.url(),
                        backoff.as_secs()
                    )));
                    self.stop.sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            if self.stop.is_set() {
                // Nothing of it was started: others may take it now.
                let messages: Vec<Message> = held.into_iter().map(|h| h.message).collect();
                if let Err(e) = self.runtime.block_on(self.queue.release(&messages)) {
                    tracing::warn!(error = %e, "Could not release the messages not started; they come back after their visibility timeout.");
                }
                break;
            }
            if held.is_empty() {
                self.health.tick(&self.totals);
                continue;
            }
            self.work(held);
            backoff = Duration::from_secs(1);
            self.health.tick(&self.totals);
        }
        tracing::info!("Stopped.");
        ExitCode::Success
    }

    /// Receives messages until the batch is full, `roll` has passed since its first object,
    /// or the process is stopping; acknowledges at once those that announce no trail object.
    fn gather(&mut self) -> anyhow::Result<Vec<Held>> {
        let mut held: Vec<Held> = Vec::new();
        let mut objects = 0usize;
        let mut deadline: Option<Instant> = None;
        let mut extended = Instant::now();
        loop {
            if self.stop.is_set() || objects >= self.watch.batch_objects {
                break;
            }
            let wait = match deadline {
                Some(d) if Instant::now() >= d => break,
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(20),
            };
            // Short polls while stopping can be noticed; long ones otherwise.
            let wait = wait.min(Duration::from_secs(2));
            let received = self
                .runtime
                .block_on(self.queue.receive(10, wait))
                .map_err(anyhow::Error::from)?;
            let mut acknowledge = Vec::new();
            for message in received {
                self.totals.messages += 1;
                match self.read_message(&message) {
                    Some(found) if found.is_empty() => acknowledge.push(message),
                    Some(found) => {
                        objects += found.len();
                        held.push(Held {
                            message,
                            objects: found,
                        });
                    }
                    None => {}
                }
            }
            if !acknowledge.is_empty() {
                self.runtime.block_on(self.queue.delete(&acknowledge))?;
            }
            if deadline.is_none() && !held.is_empty() {
                deadline = Some(Instant::now() + self.watch.roll);
            }
            if !held.is_empty() && extended.elapsed() > self.watch.visibility / 3 {
                let messages: Vec<Message> = held.iter().map(|h| h.message.clone()).collect();
                self.runtime.block_on(self.queue.extend(&messages))?;
                extended = Instant::now();
            }
            if deadline.is_none() {
                self.health.tick(&self.totals);
            }
        }
        Ok(held)
    }

    /// The trail objects a message announces (empty: acknowledge it), or `None` for a body
    /// that is not a notification (left on the queue for its redrive, and named).
    fn read_message(&mut self, message: &Message) -> Option<Vec<BatchObject>> {
        let notification = match notification::parse(&message.body) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(
                    message_id = %message.id,
                    receive_count = message.receive_count,
                    reason = %e,
                    "A message that is not an S3 notification is left on the queue: after the queue's maxReceiveCount its redrive policy moves it to the dead-letter queue."
                );
                return None;
            }
        };
        let objects = match notification {
            Notification::Test => {
                tracing::info!(message_id = %message.id, "S3 test event: acknowledged.");
                return Some(Vec::new());
            }
            Notification::Other { what } => {
                tracing::info!(message_id = %message.id, what = %what, "Not a new object: acknowledged.");
                return Some(Vec::new());
            }
            Notification::Objects { objects, .. } => objects,
        };
        let mut found = Vec::new();
        for object in objects {
            let Some(key) = self.trail_key(&object) else {
                self.totals.ignored += 1;
                tracing::debug!(bucket = %object.bucket, key = %object.key, "Not a log file of the trail: acknowledged.");
                continue;
            };
            found.push(BatchObject {
                key,
                etag: object.etag.unwrap_or_default(),
                size: object.size,
                created_at: object.event_time,
            });
        }
        Some(found)
    }

    /// The key of a CloudTrail log object of the trail, relative to its root; `None` for a
    /// digest, an insight file, another bucket's or prefix's object, or any other file.
    fn trail_key(&self, object: &ObjectCreated) -> Option<String> {
        if object.bucket != self.bucket {
            return None;
        }
        let key = object.key.strip_prefix(&self.prefix)?;
        let name = key.rsplit('/').next()?;
        is_log_file_name(name).then(|| key.to_owned())
    }
}

/// What one batch did: the keys of the objects read whole (and those skipped as bad, when
/// tolerated).
struct Done {
    read: BTreeSet<String>,
}

impl QueueWatch<'_> {
    /// Works on the objects of `held` and deletes the messages all of whose objects were
    /// read (now, or before: duplicates). Messages are held while this runs. A batch that
    /// fails for a reason of its own (S3, the claims store or an exporter down) is tried again
    /// with backoff, its messages still held (their receive count does not grow), for
    /// [`RETRY_FOR`]; then, or when stopping, they are let go back to the queue.
    fn work(&mut self, held: Vec<Held>) {
        let messages: Vec<Message> = held.iter().map(|h| h.message.clone()).collect();
        let heartbeat = self.heartbeat(messages.clone());
        let started = Instant::now();
        let mut backoff = Duration::from_secs(1);
        let settled = loop {
            match self.settle(&held) {
                Ok(settled) => break Some(settled),
                Err(err) => {
                    self.totals.failed += 1;
                    let give_up = self.stop.is_set() || started.elapsed() >= RETRY_FOR;
                    let next = if give_up {
                        "its messages go back to the queue".to_owned()
                    } else {
                        format!("tried again in {}s, its messages held", backoff.as_secs())
                    };
                    crate::terminal::error(&err.context(format!("a batch failed; {next}")));
                    if give_up {
                        break None;
                    }
                    self.stop.sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        };
        heartbeat.abort();
        let Some(settled) = settled else {
            if let Err(e) = self.runtime.block_on(self.queue.release(&messages)) {
                tracing::warn!(error = %e, "Could not let the batch's messages go; they come back after their visibility timeout.");
            }
            return;
        };
        let mut delete = Vec::new();
        for h in held {
            let unread: Vec<&BatchObject> = h
                .objects
                .iter()
                .filter(|o| !settled.contains(&o.key))
                .collect();
            if unread.is_empty() {
                delete.push(h.message);
                continue;
            }
            for object in unread {
                tracing::warn!(
                    message_id = %h.message.id,
                    receive_count = h.message.receive_count,
                    object = %self.trail.describe(&object.key),
                    "An object of this message was not read (see above): the message stays on the queue and comes back after its visibility timeout; after the queue's maxReceiveCount its redrive policy moves it to the dead-letter queue."
                );
            }
        }
        if let Err(e) = self.runtime.block_on(self.queue.delete(&delete)) {
            // Their batches are done: when they come back, they are absorbed as duplicates.
            tracing::warn!(error = %e, "Could not delete the messages of a finished batch; they will be received again and absorbed as duplicates.");
        }
    }

    /// Holds `messages` (every third of the visibility timeout) and says that the batch being
    /// written is alive, until aborted.
    fn heartbeat(&self, messages: Vec<Message>) -> tokio::task::JoinHandle<()> {
        let queue = self.queue.clone();
        let claims = self.claims.clone();
        let alive = self.alive.clone();
        let every = self.watch.visibility / 3;
        self.runtime.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) = queue.extend(&messages).await {
                    tracing::warn!(error = %e, "Could not hold the batch's messages longer; they may be received again (their objects are then absorbed as duplicates).");
                }
                let mut current = alive.lock().await;
                if let Some(manifest) = current.as_mut() {
                    manifest.alive_at = Some(Timestamp::now());
                    if let Err(e) = claims.save(manifest).await {
                        tracing::warn!(error = %e, batch = %manifest.id, "Could not say the batch is alive.");
                    }
                }
            }
        })
    }

    /// Reads every object of `held` not read before (finishing first any batch that claimed
    /// one and was cut short); gives the keys of the objects now read, whole.
    fn settle(&mut self, held: &[Held]) -> anyhow::Result<BTreeSet<String>> {
        let mut wanted: BTreeMap<&str, &BatchObject> = BTreeMap::new();
        for object in held.iter().flat_map(|h| &h.objects) {
            wanted.entry(object.key.as_str()).or_insert(object);
        }
        let mut settled = BTreeSet::new();
        let mut unfinished = BTreeSet::new();
        let mut new = Vec::new();
        let stale_before = Timestamp::now()
            - jiff::SignedDuration::try_from(self.watch.visibility).unwrap_or_default();
        // Each object's claim and its batch, looked up [`CLAIMS_AT_ONCE`] objects at a time.
        let claims = self.claims.clone();
        let claims = &claims;
        let looked_up: Vec<_> = self.runtime.block_on(
            futures_util::stream::iter(wanted)
                .map(|(key, object)| async move {
                    let claim = claims.claim_of(key).await?;
                    let manifest = match &claim {
                        Some(c) => claims.manifest(&c.batch).await?,
                        None => None,
                    };
                    Ok::<_, connect_audit_core::Error>((key, object, claim, manifest))
                })
                .buffered(CLAIMS_AT_ONCE)
                .try_collect(),
        )?;
        for (key, object, claim, manifest) in looked_up {
            let Some(claim) = claim else {
                new.push(object.clone());
                continue;
            };
            match manifest {
                Some(m) if m.done_at.is_some() => {
                    self.totals.duplicates += 1;
                    settled.insert(key.to_owned());
                }
                Some(m) if m.alive_at.unwrap_or(m.started_at) < stale_before => {
                    unfinished.insert(m.id);
                }
                Some(m) => tracing::info!(
                    object = %self.trail.describe(key),
                    batch = %m.id,
                    "Another process is writing this object's batch: its message is left for later."
                ),
                // Claimed, and its batch never written down: its process died in between.
                None if claim.at < stale_before => {
                    self.runtime
                        .block_on(self.claims.release(key, &claim.batch))?;
                    new.push(object.clone());
                }
                None => tracing::info!(
                    object = %self.trail.describe(key),
                    batch = %claim.batch,
                    "Another process is claiming this object: its message is left for later."
                ),
            }
        }
        for id in unfinished {
            let Some(mut manifest) = self.runtime.block_on(self.claims.manifest(&id))? else {
                continue;
            };
            // Only the objects whose claims are still the batch's (an unreadable one was let go).
            let mut kept = Vec::new();
            for object in std::mem::take(&mut manifest.objects) {
                let claim = self.runtime.block_on(self.claims.claim_of(&object.key))?;
                if claim.is_some_and(|c| c.batch == id) {
                    kept.push(object);
                }
            }
            manifest.objects = kept;
            tracing::info!(batch = %id, objects = manifest.objects.len(), "Finishing a batch that was cut short, whole, under its own names.");
            let done = self.process(manifest)?;
            settled.extend(done.read);
        }
        if new.is_empty() {
            return Ok(settled);
        }
        // Claims first; the manifest lists only the objects this batch won, and is written
        // before any file.
        let now = Timestamp::now();
        let mut manifest = BatchManifest::new(new, now);
        let id = manifest.id.clone();
        let claims = self.claims.clone();
        let claims = &claims;
        let claimed: Vec<_> = self.runtime.block_on(
            futures_util::stream::iter(std::mem::take(&mut manifest.objects))
                .map(|object| {
                    let id = &id;
                    async move {
                        let outcome = claims.claim(&object.key, &object.etag, id, now).await?;
                        Ok::<_, connect_audit_core::Error>((object, outcome))
                    }
                })
                .buffered(CLAIMS_AT_ONCE)
                .try_collect(),
        )?;
        let mut won = Vec::new();
        for (object, outcome) in claimed {
            match outcome {
                Claimed::Ours => won.push(object),
                Claimed::By(other) => tracing::info!(
                    object = %self.trail.describe(&object.key),
                    batch = %other.batch,
                    "Another process claimed this object first: its message is left for later."
                ),
            }
        }
        manifest.objects = won;
        if manifest.objects.is_empty() {
            return Ok(settled);
        }
        let done = self.process(manifest)?;
        settled.extend(done.read);
        Ok(settled)
    }

    /// The snapshot's names and history, read again every [`NAMES_FOR`].
    fn names(&mut self) -> anyhow::Result<(Directory, History)> {
        if let Some((directory, history, at)) = &self.names
            && at.elapsed() < NAMES_FOR
        {
            return Ok((directory.clone(), history.clone()));
        }
        let (directory, history) = report::load_snapshot_store(
            &self.runtime,
            Some(&self.s3),
            self.valid.snapshot.as_ref(),
        )?;
        self.names = Some((directory.clone(), history.clone(), Instant::now()));
        Ok((directory, history))
    }

    /// Reads the batch's objects into every exporter, its files named after it, and marks it
    /// done. An object that cannot be read loses its claim (a later message retries it) unless
    /// bad files are tolerated.
    fn process(&mut self, mut manifest: BatchManifest) -> anyhow::Result<Done> {
        let started = Instant::now();
        manifest.alive_at = Some(Timestamp::now());
        self.runtime.block_on(async {
            let mut alive = self.alive.lock().await;
            self.claims.save(&manifest).await?;
            *alive = Some(manifest.clone());
            Ok::<_, connect_audit_core::Error>(())
        })?;
        let outcome = self.write_batch(&manifest);
        let done_at = Timestamp::now();
        let saved = self.runtime.block_on(async {
            let mut alive = self.alive.lock().await;
            *alive = None;
            match &outcome {
                Ok(_) => {
                    manifest.done_at = Some(done_at);
                    self.claims.save(&manifest).await
                }
                Err(_) => Ok(()),
            }
        });
        let (read, rows, bad, dropped, new_ids) = outcome?;
        saved?;
        // Only now are the ids written for good.
        let now = Timestamp::now();
        self.written.extend(new_ids.into_iter().map(|id| (id, now)));
        let horizon = now - WRITTEN_KEPT;
        self.written.retain(|_, t| *t >= horizon);
        self.account(&manifest, &read, bad, rows, dropped, started);
        Ok(Done { read })
    }

    /// Writes a batch: its objects read into every exporter, files named after it. Gives the
    /// keys read whole, the rows written, the bad objects, the rows dropped as written before,
    /// and the ids written.
    #[allow(clippy::type_complexity)]
    fn write_batch(
        &mut self,
        manifest: &BatchManifest,
    ) -> anyhow::Result<(BTreeSet<String>, u64, usize, u64, Vec<String>)> {
        let (directory, history) = self.names()?;
        let mut specs = self.valid.exporters.clone();
        name_batch_outputs(&mut specs, &manifest.id);
        let s3_outputs = S3Outputs::stage(&mut specs)?;
        let exporters = report::build_exporters(&specs)?;
        let mut options = report::scan_options(self.settings, &self.valid);
        options.window = Window {
            since: Timestamp::MIN,
            until: Timestamp::MAX,
        };
        options.hash_files = false;
        let scanner = TrailScanner::new(self.trail.clone(), directory.clone(), options)
            .with_runtime(self.runtime.handle().clone());
        let sink = DropWritten {
            inner: FanOut::new(exporters, self.reporter),
            written: &self.written,
            new: Vec::new(),
            dropped: 0,
            rows: 0,
        };
        let mut stage = ChangeStage::with_rules(sink, directory, self.valid.findings.clone())
            .with_history(history);
        let objects = manifest
            .objects
            .iter()
            .map(|o| connect_audit_core::ObjectInfo {
                key: o.key.clone(),
                size: o.size.unwrap_or(0),
                tag: Some(o.etag.clone()),
            })
            .collect();
        let summary = scanner
            .scan_objects(objects, &mut stage)
            .with_context(|| format!("batch {} could not be read", manifest.id))?;
        self.reporter.finish();
        let sink = stage
            .finish()
            .map_err(anyhow::Error::from_boxed)
            .with_context(|| format!("writing the rows of batch {} failed", manifest.id))?;
        let bad: BTreeSet<String> = summary
            .bad
            .iter()
            .filter(|b| b.record.is_none())
            .map(|b| b.path.display().to_string())
            .collect();
        let (rows, new_ids, dropped) = (sink.rows, sink.new, sink.dropped);
        let mut exporters = sink.inner.exporters;
        if rows > 0 {
            let context = self.batch_context(manifest, &summary, dropped);
            for exporter in &mut exporters {
                exporter.run_context(&context);
            }
            report::finish_exporters(exporters)?;
            report::upload_outputs(&self.runtime, &s3_outputs, Some(&self.s3))?;
        } else {
            drop(exporters);
        }
        let tolerate = self.settings.report.tolerate_bad_files;
        let mut read = BTreeSet::new();
        for object in &manifest.objects {
            if bad.contains(&self.trail.describe(&object.key)) && !tolerate {
                self.runtime
                    .block_on(self.claims.release(&object.key, &manifest.id))?;
            } else {
                read.insert(object.key.clone());
            }
        }
        Ok((read, rows, bad.len(), dropped, new_ids))
    }

    /// What the exporters are told of a batch (the HTML header).
    fn batch_context(
        &self,
        manifest: &BatchManifest,
        summary: &connect_audit_query::local::ScanSummary,
        dropped: u64,
    ) -> connect_audit_exporters::RunContext {
        connect_audit_exporters::RunContext {
            source: Some(format!(
                "trail {} (local engine), batch {} of queue {}",
                self.valid.trail,
                manifest.id,
                self.queue.url()
            )),
            snapshot: self.valid.snapshot.as_ref().map(ToString::to_string),
            skipped_files: summary.files_bad,
            skipped_records: summary.records_bad,
            events_in_window: Some(summary.records_matched),
            duplicates: summary.duplicates + dropped,
            ..report::run_context(
                Window {
                    since: manifest
                        .objects
                        .iter()
                        .filter_map(|o| o.created_at)
                        .min()
                        .unwrap_or(manifest.started_at),
                    until: Timestamp::now(),
                },
                &self.valid.scope,
                manifest.started_at,
            )
        }
    }

    /// Counts a finished batch and logs it, with the latency from each object's creation to
    /// the acceptance of its events by every exporter.
    fn account(
        &mut self,
        manifest: &BatchManifest,
        read: &BTreeSet<String>,
        bad: usize,
        rows: u64,
        dropped: u64,
        started: Instant,
    ) {
        let now = Timestamp::now();
        self.totals.batches += 1;
        self.totals.objects += read.len() as u64;
        self.totals.events += rows;
        let created: Vec<Timestamp> = manifest
            .objects
            .iter()
            .filter_map(|o| o.created_at)
            .collect();
        if let Some(newest) = created.iter().max() {
            self.totals.newest = self.totals.newest.max(Some(*newest));
        }
        let latency = created
            .iter()
            .map(|c| (now - *c).as_secs_f64())
            .fold(0.0_f64, f64::max);
        let mut line = format!(
            "connect-audit watch: batch {}: {} objects read, {} bad, {} events written, {} dropped as written before, {:.1}s",
            manifest.id,
            read.len(),
            bad,
            rows,
            dropped,
            started.elapsed().as_secs_f64()
        );
        if !created.is_empty() {
            let _ = write!(
                line,
                "; latency object created → accepted by every exporter: at most {latency:.1}s"
            );
        }
        tracing::info!(
            batch = %manifest.id,
            objects = read.len(),
            bad,
            events = rows,
            latency_max_secs = latency,
            batch_secs = started.elapsed().as_secs_f64(),
            "Batch written (latency: from the object's creation to its events' acceptance by every exporter)."
        );
        if !self.health.on {
            crate::terminal::note(&line);
        }
    }
}

/// Puts the batch's id into exporter paths: `{batch}`, and `{since}` as `run` names its files.
fn name_batch_outputs(specs: &mut [ValidExporter], id: &str) {
    for spec in specs.iter_mut() {
        if let Some(file) = spec.partition_file_mut() {
            if !file.contains("{batch}") && !file.contains("{since}") {
                "part-{batch}.parquet".clone_into(file);
            }
            *file = file.replace("{batch}", id).replace("{since}", id);
        }
        if let Some(path) = spec.path_mut() {
            *path = path.replace("{batch}", id).replace("{since}", id);
        }
    }
}

/// Passes on the rows this process did not write before, and keeps the ids it passed.
struct DropWritten<'a, S> {
    inner: S,
    written: &'a BTreeMap<String, Timestamp>,
    new: Vec<String>,
    dropped: u64,
    rows: u64,
}

impl<S: ScanSink> ScanSink for DropWritten<'_, S> {
    fn records(&mut self, mut batch: Vec<AuditRecord>) -> Result<(), SinkError> {
        let before = batch.len();
        batch.retain(|r| !self.written.contains_key(r.row_key().as_ref()));
        self.dropped += (before - batch.len()) as u64;
        self.rows += batch.len() as u64;
        self.new
            .extend(batch.iter().map(|r| r.row_key().into_owned()));
        self.inner.records(batch)
    }

    fn files_found(&mut self, files: u64, bytes: u64) {
        self.inner.files_found(files, bytes);
    }

    fn file_scanned(&mut self, path: &std::path::Path, bytes: u64) {
        self.inner.file_scanned(path, bytes);
    }

    fn bad_input(&mut self, problem: &BadInput) {
        self.inner.bad_input(problem);
    }
}
