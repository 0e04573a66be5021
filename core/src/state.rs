//! The state of incremental runs (`report --incremental`, `run`): a watermark and the event
//! ids already delivered close to it.
//!
//! CloudTrail delivers late (files are dated by delivery, minutes after the events), so a
//! run does not start at the watermark but a lookback before it, `[watermark − lookback,
//! until)`, and drops the events it already delivered there. The state is advanced only
//! after every exporter finished: a failed or killed run leaves it as it was, and the next
//! run delivers the same events again (files: written again under the same names; a SIEM:
//! at least once, with stable event ids).
//!
//! ```
//! use connect_audit_core::{AuditRecord, RunState, Window};
//! use jiff::{SignedDuration, Timestamp};
//!
//! let lookback = SignedDuration::from_hours(2);
//! let t = |s: &str| s.parse::<Timestamp>().unwrap();
//! // First run: no state, the configured window.
//! let first = RunState::window(None, Window { since: t("2024-05-01T00:00:00Z"), until: t("2024-05-02T00:00:00Z") }, lookback)?;
//! let state = RunState::advanced(None, first, lookback, [("e1".to_owned(), t("2024-05-01T23:30:00Z"))], t("2024-05-02T00:00:05Z"));
//! // The next run looks two hours back and knows e1 was delivered.
//! let next = RunState::window(Some(&state), Window { since: t("2024-04-01T00:00:00Z"), until: t("2024-05-02T06:00:00Z") }, lookback)?;
//! assert_eq!(next.since, t("2024-05-01T22:00:00Z"));
//! assert!(state.is_delivered("e1"));
//! # Ok::<(), connect_audit_core::state::WindowAfterWatermark>(())
//! ```

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::location::{Location, Store};
use crate::objects::ObjectLedger;
use crate::window::Window;

/// The version written in every state object. Version 1 (no object ledger) is read too: its
/// next run reads the objects delivered from its lookback on, as version 1 did, and keeps a
/// ledger from then on. Another version is refused.
pub const STATE_VERSION: u32 = 2;

/// What incremental runs remember.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunState {
    /// [`STATE_VERSION`].
    pub version: u32,
    /// The end (exclusive) of the last run that finished: every event before it that was
    /// delivered by then has been exported.
    pub watermark: Timestamp,
    /// The lookback the state was written with; ids older than `watermark − lookback` are
    /// forgotten.
    pub lookback_secs: i64,
    /// Rows delivered at or after `watermark − lookback`, by row key (the event id; for the
    /// second and later targets of one call, `<event id>#<target index>`: see
    /// `AuditRecord::row_key`), with their event times.
    pub delivered: BTreeMap<String, Timestamp>,
    /// Rows older than a run's window found in files delivered since the run before it, so
    /// never written: by row key, with when their file was delivered. Runs warn about each once; an entry is forgotten once its
    /// file is too old for any later run to read again.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub late: BTreeMap<String, Timestamp>,
    /// How many runs advanced this state.
    pub runs: u64,
    /// When the last run finished.
    pub written_at: Timestamp,
    /// When the last run started: it listed the trail's files after this, so a file
    /// delivered later is new to the next run. `None` in states written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    /// The trail objects read (version 2): the next run reads only the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<ObjectLedger>,
}

/// The window asked for ends before the watermark: those events were already delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the window ends at {until}, before the watermark {watermark} of the incremental state: \
     those events were delivered already (give a later --until, or another state)"
)]
pub struct WindowAfterWatermark {
    /// The end asked for.
    pub until: Timestamp,
    /// The state's watermark.
    pub watermark: Timestamp,
}

impl RunState {
    /// The window of the next run: `configured` as it is when there is no state yet, else
    /// `[watermark − lookback, configured.until)`.
    pub fn window(
        state: Option<&Self>,
        configured: Window,
        lookback: SignedDuration,
    ) -> Result<Window, WindowAfterWatermark> {
        let Some(state) = state else {
            return Ok(configured);
        };
        if configured.until <= state.watermark {
            return Err(WindowAfterWatermark {
                until: configured.until,
                watermark: state.watermark,
            });
        }
        Ok(Window {
            since: state.watermark - lookback,
            until: configured.until,
        })
    }

    /// The ledger of the objects read, for the next run: this state's, or, for a state
    /// written before ledgers were kept (version 1), one from which every object delivered
    /// from `watermark − lookback` on is new (the window version 1 read); with no state, one
    /// from `since` (the configured window's start). `lateness` is used for a new ledger.
    pub fn ledger(
        state: Option<&Self>,
        since: Timestamp,
        lookback: SignedDuration,
        lateness: SignedDuration,
    ) -> ObjectLedger {
        match state {
            Some(RunState {
                objects: Some(ledger),
                ..
            }) => ledger.clone(),
            Some(state) => ObjectLedger::new(state.watermark - lookback, lateness),
            None => ObjectLedger::new(since, lateness),
        }
    }

    /// Whether an event was delivered by an earlier run.
    pub fn is_delivered(&self, event_id: &str) -> bool {
        self.delivered.contains_key(event_id)
    }

    /// The state after a run over `window` that delivered `delivered` (event id and time)
    /// finished: the watermark moves to `window.until`, and the ids the next run's lookback
    /// can see again are kept, the earlier ones' and this run's.
    pub fn advanced(
        previous: Option<&Self>,
        window: Window,
        lookback: SignedDuration,
        delivered: impl IntoIterator<Item = (String, Timestamp)>,
        now: Timestamp,
    ) -> Self {
        let horizon = window.until - lookback;
        let mut kept: BTreeMap<String, Timestamp> = previous
            .map(|p| {
                p.delivered
                    .iter()
                    .filter(|(_, t)| **t >= horizon)
                    .map(|(id, t)| (id.clone(), *t))
                    .collect()
            })
            .unwrap_or_default();
        kept.extend(delivered.into_iter().filter(|(_, t)| *t >= horizon));
        let mut state = Self {
            version: STATE_VERSION,
            watermark: window.until,
            lookback_secs: lookback.as_secs(),
            delivered: kept,
            late: previous.map(|p| p.late.clone()).unwrap_or_default(),
            runs: previous.map_or(0, |p| p.runs) + 1,
            written_at: now,
            started_at: None,
            objects: previous.and_then(|p| p.objects.clone()),
        };
        state.note_late(std::iter::empty());
        state
    }

    /// Whether a file CloudTrail delivered at `delivered_at` (to the minute, as its name says)
    /// may be new since the run that wrote this state: delivered in or after the minute that
    /// run started (its finish, for a state that does not say when it started).
    pub fn is_new_file(&self, delivered_at: Timestamp) -> bool {
        let started = self.started_at.unwrap_or(self.written_at);
        delivered_at + SignedDuration::from_mins(1) > started
    }

    /// Whether an earlier run already warned that this row was late.
    pub fn is_late(&self, row_key: &str) -> bool {
        self.late.contains_key(row_key)
    }

    /// Remembers rows this run found late (row key, delivery time of their file), and forgets
    /// those whose file the next run can no longer read: the next run reads files delivered
    /// from a day before its window, `watermark − lookback`, so a file delivered two days
    /// before that is never read again.
    pub fn note_late(&mut self, late: impl IntoIterator<Item = (String, Timestamp)>) {
        self.late.extend(late);
        let reread_from = self.watermark
            - SignedDuration::from_secs(self.lookback_secs)
            - SignedDuration::from_hours(48);
        self.late
            .retain(|_, delivered_at| *delivered_at >= reread_from);
    }
}

/// Where the state lives: one object, a local file or `s3://bucket/key`, written atomically.
#[derive(Debug, Clone)]
pub struct StateFile {
    store: Store,
    key: String,
}

impl StateFile {
    /// The state object at `location` (a file path or `s3://bucket/key`; the key must not be
    /// empty). An S3 location needs a client.
    pub fn open(location: &Location, s3: Option<&aws_sdk_s3::Client>) -> Result<Self, Error> {
        let bad = |reason: &str| Error::BadState {
            object: location.to_string(),
            reason: reason.to_owned(),
        };
        let (root, key) = match location {
            Location::Local(path) => {
                let key = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .ok_or_else(|| bad("it names no file"))?
                    .to_owned();
                let parent = path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .map_or_else(|| ".".into(), ToOwned::to_owned);
                (Location::Local(parent), key)
            }
            Location::S3 { bucket, prefix } => {
                let (dir, key) = prefix.rsplit_once('/').unwrap_or(("", prefix));
                if key.is_empty() {
                    return Err(bad("give the object's key: s3://bucket/path/state.json"));
                }
                (
                    Location::S3 {
                        bucket: bucket.clone(),
                        prefix: dir.to_owned(),
                    },
                    key.to_owned(),
                )
            }
        };
        Ok(Self {
            store: Store::open(&root, s3)?,
            key,
        })
    }

    /// The state object's name, for messages.
    pub fn describe(&self) -> String {
        self.store.describe(&self.key)
    }

    /// Reads the state; `None` before the first run.
    pub async fn load(&self) -> Result<Option<RunState>, Error> {
        let Some(bytes) = self.store.get(&self.key).await? else {
            return Ok(None);
        };
        let bad = |reason: String| Error::BadState {
            object: self.describe(),
            reason,
        };
        let state: RunState = serde_json::from_slice(&bytes).map_err(|e| {
            bad(format!(
                "not a connect-audit state ({e}); move it away to start over"
            ))
        })?;
        if state.version != STATE_VERSION && state.version != 1 {
            return Err(bad(format!(
                "version {} is not 1 or {STATE_VERSION}, the versions this build reads",
                state.version
            )));
        }
        Ok(Some(state))
    }

    /// Writes the state: it appears whole or not at all.
    pub async fn save(&self, state: &RunState) -> Result<(), Error> {
        let mut body = serde_json::to_vec_pretty(state).map_err(|e| Error::BadState {
            object: self.describe(),
            reason: e.to_string(),
        })?;
        body.push(b'\n');
        self.store.put(&self.key, body).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn window(since: &str, until: &str) -> Window {
        Window {
            since: t(since),
            until: t(until),
        }
    }

    const TWO_HOURS: SignedDuration = SignedDuration::from_hours(2);

    #[test]
    fn first_run_uses_the_configured_window_and_later_runs_look_back() {
        let configured = window("2024-05-01T00:00:00Z", "2024-05-02T00:00:00Z");
        assert_eq!(
            RunState::window(None, configured, TWO_HOURS),
            Ok(configured)
        );
        let state = RunState::advanced(None, configured, TWO_HOURS, [], t("2024-05-02T00:01:00Z"));
        assert_eq!(state.watermark, configured.until);
        assert_eq!(state.runs, 1);
        let next = RunState::window(
            Some(&state),
            window("2024-04-25T00:00:00Z", "2024-05-02T03:00:00Z"),
            TWO_HOURS,
        )
        .unwrap();
        assert_eq!(next, window("2024-05-01T22:00:00Z", "2024-05-02T03:00:00Z"));
    }

    #[test]
    fn a_window_ending_at_or_before_the_watermark_is_refused() {
        let configured = window("2024-05-01T00:00:00Z", "2024-05-02T00:00:00Z");
        let state = RunState::advanced(None, configured, TWO_HOURS, [], t("2024-05-02T00:01:00Z"));
        let err = RunState::window(Some(&state), configured, TWO_HOURS).unwrap_err();
        assert_eq!(err.watermark, configured.until);
        assert!(err.to_string().contains("delivered already"), "{err}");
    }

    #[test]
    fn late_rows_are_remembered_while_a_later_run_can_read_their_file() {
        let w = window("2024-05-01T00:00:00Z", "2024-05-03T00:00:00Z");
        let mut s1 = RunState::advanced(None, w, TWO_HOURS, [], t("2024-05-03T00:01:00Z"));
        s1.note_late([
            ("old".to_owned(), t("2024-04-30T21:59:00Z")),
            ("new".to_owned(), t("2024-05-02T23:00:00Z")),
        ]);
        // Next run reads from 2024-05-02T22:00Z − 1 day: a file of 04/30 21:59 is never read again.
        assert!(s1.is_late("new") && !s1.is_late("old"), "{s1:?}");
        let w2 = window("2024-05-01T00:00:00Z", "2024-05-04T00:00:00Z");
        let s2 = RunState::advanced(Some(&s1), w2, TWO_HOURS, [], t("2024-05-04T00:01:00Z"));
        assert!(s2.is_late("new"), "kept across runs");
        let w3 = window("2024-05-01T00:00:00Z", "2024-05-06T00:00:00Z");
        let s3 = RunState::advanced(Some(&s2), w3, TWO_HOURS, [], t("2024-05-06T00:01:00Z"));
        assert!(
            !s3.is_late("new"),
            "forgotten when no run reads its file again"
        );
        let text = serde_json::to_string(&s3).unwrap();
        assert!(
            !text.contains("late"),
            "an empty list is not written: {text}"
        );
        let old: RunState = serde_json::from_str(&text).unwrap();
        assert!(old.late.is_empty());
    }

    #[test]
    fn ids_are_kept_only_while_a_lookback_can_see_them_again() {
        let w1 = window("2024-05-01T00:00:00Z", "2024-05-01T12:00:00Z");
        let s1 = RunState::advanced(
            None,
            w1,
            TWO_HOURS,
            [
                ("old".to_owned(), t("2024-05-01T09:59:59Z")),
                ("edge".to_owned(), t("2024-05-01T10:00:00Z")),
                ("late".to_owned(), t("2024-05-01T11:59:00Z")),
            ],
            t("2024-05-01T12:00:01Z"),
        );
        assert!(!s1.is_delivered("old"));
        assert!(s1.is_delivered("edge") && s1.is_delivered("late"));
        let w2 = RunState::window(
            Some(&s1),
            window("2024-05-01T00:00:00Z", "2024-05-01T13:00:00Z"),
            TWO_HOURS,
        )
        .unwrap();
        let s2 = RunState::advanced(
            Some(&s1),
            w2,
            TWO_HOURS,
            [("new".to_owned(), t("2024-05-01T12:30:00Z"))],
            t("2024-05-01T13:00:01Z"),
        );
        assert_eq!(
            s2.delivered.keys().map(String::as_str).collect::<Vec<_>>(),
            ["late", "new"],
            "edge fell out of the next lookback (11:00)"
        );
        assert_eq!(s2.runs, 2);
        assert_eq!(s2.watermark, t("2024-05-01T13:00:00Z"));
    }

    #[test]
    fn state_files_round_trip_and_bad_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/team.json");
        let file = StateFile::open(&Location::Local(path.clone()), None).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(rt.block_on(file.load()).unwrap(), None);
        let w = window("2024-05-01T00:00:00Z", "2024-05-01T12:00:00Z");
        let state = RunState::advanced(
            None,
            w,
            TWO_HOURS,
            [("e1".to_owned(), t("2024-05-01T11:00:00Z"))],
            t("2024-05-01T12:00:01Z"),
        );
        rt.block_on(file.save(&state)).unwrap();
        assert_eq!(rt.block_on(file.load()).unwrap(), Some(state));

        std::fs::write(&path, "{\"version\": 1}").unwrap();
        let err = rt.block_on(file.load()).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("not a connect-audit state"), "{err}");

        let bucket_only = Location::parse("s3://bucket-name").unwrap();
        let err = StateFile::open(&bucket_only, None).unwrap_err().to_string();
        assert!(err.contains("give the object's key"), "{err}");
    }
}
