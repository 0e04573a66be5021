//! Incremental runs (`report --incremental`, `run`): the window starts a lookback before the
//! last finished run, events already delivered are dropped, and the state advances only when
//! every exporter finished.

use anyhow::Context as _;
use connect_audit_config::{ValidExporter, ValidIncremental};
use connect_audit_core::objects::ObjectLedger;
use connect_audit_core::{AuditRecord, RunState, StateFile, Window};
use connect_audit_query::local::EarlyRow;
use connect_audit_query::{BadInput, ScanSink, SinkError};
use jiff::Timestamp;

use crate::UsageError;

/// A compact, file-name-safe form of a run's start: `20240502T090000Z`, with milliseconds
/// when it has a fraction of a second (`20240502T090000.250Z`), so that runs a second apart
/// (`watch --poll`) never share a name.
pub fn stamp(t: Timestamp) -> String {
    if t.subsec_nanosecond() == 0 {
        t.strftime("%Y%m%dT%H%M%SZ").to_string()
    } else {
        t.strftime("%Y%m%dT%H%M%S%.3fZ").to_string()
    }
}

/// Puts the run's window into exporter paths (`{since}`, `{until}`). In an incremental run a
/// file exporter must name its file after the run's start, `{since}`: that start is the same
/// when a failed run is repeated (the state did not move), so the repeat replaces the failed
/// run's files instead of doubling their rows, and each finished run adds its own file.
pub fn name_outputs(
    specs: &mut [ValidExporter],
    window: Window,
    incremental: bool,
) -> Result<(), UsageError> {
    let since = stamp(window.since);
    let until = stamp(window.until);
    for (i, spec) in specs.iter_mut().enumerate() {
        // `{batch}` (what `watch` names its files by) is the run's start in a run.
        if let Some(file) = spec.partition_file_mut() {
            *file = file.replace("{batch}", "{since}");
        }
        if let Some(path) = spec.path_mut() {
            *path = path.replace("{batch}", "{since}");
        }
        if let Some(file) = spec.partition_file_mut() {
            if incremental && !file.contains("{since}") {
                "part-{since}.parquet".clone_into(file);
            }
            *file = file.replace("{since}", &since).replace("{until}", &until);
            // The partitions' folder is shared by every run: each run adds its own files.
            if let Some(path) = spec.path_mut() {
                *path = path.replace("{since}", &since).replace("{until}", &until);
            }
            continue;
        }
        let Some(path) = spec.path_mut() else {
            continue;
        };
        if incremental && path != "-" && !path.contains("{since}") {
            return Err(UsageError(format!(
                "exporters[{i}].path `{path}`: an incremental run writes its own file each run; \
                 put {{since}} in the path (e.g. out/audit-{{since}}.jsonl), or the next run \
                 would replace this run's file"
            )));
        }
        *path = path.replace("{since}", &since).replace("{until}", &until);
    }
    Ok(())
}

/// The state of a team's incremental runs, loaded.
pub struct Incremental {
    /// Where it is kept.
    pub file: StateFile,
    /// What the last finished run left; `None` before the first.
    pub previous: Option<RunState>,
    /// The lookback.
    pub lookback: jiff::SignedDuration,
    /// How late an object may be put after a newer one of its region.
    pub lateness: jiff::SignedDuration,
}

impl Incremental {
    /// Loads the state.
    pub async fn load(
        valid: &ValidIncremental,
        s3: Option<&aws_sdk_s3::Client>,
    ) -> anyhow::Result<Self> {
        let file = StateFile::open(&valid.state, s3)?;
        let previous = file
            .load()
            .await
            .with_context(|| format!("cannot read the incremental state {}", file.describe()))?;
        Ok(Self {
            file,
            previous,
            lookback: valid.lookback,
            lateness: valid.lateness,
        })
    }

    /// The objects read by earlier runs (see [`RunState::ledger`]); `since` is the configured
    /// window's start, from which a first run reads.
    pub fn ledger(&self, since: Timestamp) -> ObjectLedger {
        RunState::ledger(self.previous.as_ref(), since, self.lookback, self.lateness)
    }

    /// This run's window.
    pub fn window(&self, configured: Window) -> anyhow::Result<Window> {
        Ok(RunState::window(
            self.previous.as_ref(),
            configured,
            self.lookback,
        )?)
    }

    /// The rows the scan found before the window (older than the ledger's start) in the
    /// objects it read, all new since the last run, that no earlier run wrote or warned
    /// about: each row once. Their only trace is the warning these give.
    pub fn late_rows<'r>(&self, before_window: &'r [EarlyRow]) -> Vec<&'r EarlyRow> {
        let Some(previous) = &self.previous else {
            return Vec::new();
        };
        let mut seen = std::collections::BTreeSet::new();
        before_window
            .iter()
            .filter(|row| {
                row.delivered_at.is_some()
                    && !previous.is_late(&row.row_key)
                    && !previous.is_delivered(&row.row_key)
                    && seen.insert(row.row_key.as_str())
            })
            .collect()
    }

    /// Writes the advanced state (after every exporter finished): what was delivered, the
    /// late rows warned about, and when this run started.
    pub async fn advance(
        &self,
        window: Window,
        delivered: Vec<(String, Timestamp)>,
        late: &[&EarlyRow],
        started_at: Timestamp,
        objects: ObjectLedger,
    ) -> anyhow::Result<RunState> {
        let mut state = RunState::advanced(
            self.previous.as_ref(),
            window,
            self.lookback,
            delivered,
            Timestamp::now(),
        );
        state.started_at = Some(started_at);
        state.objects = Some(objects);
        state.note_late(
            late.iter()
                .filter_map(|r| Some((r.row_key.clone(), r.delivered_at?))),
        );
        self.file.save(&state).await.with_context(|| {
            format!(
                "cannot write the incremental state {}",
                self.file.describe()
            )
        })?;
        Ok(state)
    }
}

/// Passes on only the records earlier runs did not deliver, and remembers the ids it passed
/// that the next run's lookback can see again.
pub struct DropDelivered<'a, S> {
    /// The sink the new records go to.
    pub inner: S,
    /// The state of the last finished run.
    pub previous: Option<&'a RunState>,
    /// The first event time the next run looks at again (`until − lookback`); `None` when
    /// the run is not incremental (nothing to remember).
    pub horizon: Option<Timestamp>,
    /// Ids passed on at or after the horizon.
    pub delivered: Vec<(String, Timestamp)>,
    /// Records dropped as delivered before.
    pub dropped: u64,
}

impl<S: ScanSink> ScanSink for DropDelivered<'_, S> {
    fn records(&mut self, mut batch: Vec<AuditRecord>) -> Result<(), SinkError> {
        if let Some(previous) = self.previous {
            let before = batch.len();
            batch.retain(|r| !previous.is_delivered(&r.row_key()));
            self.dropped += (before - batch.len()) as u64;
        }
        if let Some(horizon) = self.horizon {
            self.delivered.extend(
                batch
                    .iter()
                    .filter(|r| r.event_time >= horizon)
                    .map(|r| (r.row_key().into_owned(), r.event_time)),
            );
        }
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
