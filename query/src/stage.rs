//! The change stage: between either engine and the exporters, it puts the rows in event-time
//! order (within a bounded window), decodes what each one changed ([`connect_audit_core::change`])
//! and fills the change columns (`change`, `before`, `after`, `change_basis`, `findings`).
//!
//! Takes the engine's batches (in the engine's order: by file, then by event time) and gives
//! the same rows, in event-time order, to the sink it wraps. CloudTrail files are ordered by
//! delivery, not by event time, so a later file can hold an earlier event of the same user: rows
//! are held until the engine is done and go out oldest first, so the state each row is decoded
//! against is the one of the events before it. Memory stays flat: past [`REORDER_ROWS`] held
//! rows, the held rows spill to a temporary file as one sorted run, and the runs and what is
//! still held are merged when the rows go out (audited rows are about one record in a
//! thousand, so a run is some ten million records of trail). Both engines go through this
//! stage, so both give the same rows.
//!
//! Names are the ones valid at the event time: a name an earlier event of the scan gave (a
//! create, a rename) wins; else the name of the newest snapshot version observed by then
//! ([`History`]); else the snapshot's latest.
//!
//! With a [`History`], a target the scan has not seen an event of yet starts from its newest
//! snapshot version observed before the event (`change_basis = snapshot`). That is exact when
//! the scan covers the trail from that observation on: the caller scans the span from the last
//! snapshot run before the window up to the window's start first, in [`replay`](ChangeStage::set_replay)
//! mode (rows decoded, moving the state on, and not passed on), then the window.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{BufRead as _, BufReader, BufWriter, Seek as _, SeekFrom, Write as _};
use std::path::Path;

use connect_audit_core::change::{Namer, Tracker};
use connect_audit_core::findings::{FindingRules, Findings};
use connect_audit_core::history::History;
use connect_audit_core::{AuditRecord, Directory, TargetKind};
use jiff::Timestamp;
use serde_json::Value;

use crate::sink::{BadInput, ScanSink, SinkError};

/// Rows held in memory to put them in event-time order; past it they spill to a temporary
/// file, one sorted run each time.
pub const REORDER_ROWS: usize = 10_000;

/// Rows handed to the sink at once when the held rows go out.
const OUT_BATCH: usize = 4096;

/// A row waiting in the heap, ordered by event time, then its key.
struct Held(AuditRecord);

impl Held {
    fn key(&self) -> (jiff::Timestamp, &str, u32) {
        (self.0.event_time, &self.0.event_id, self.0.target_index)
    }
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Held {}

impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

/// Held rows in event-time order, from memory or from a temporary file (JSON Lines, read back
/// a row at a time).
enum Run {
    Memory(std::vec::IntoIter<AuditRecord>),
    File(std::io::Lines<BufReader<std::fs::File>>),
}

impl Run {
    fn memory(rows: impl Iterator<Item = AuditRecord>) -> Self {
        Self::Memory(rows.collect::<Vec<_>>().into_iter())
    }

    fn spill(rows: impl Iterator<Item = AuditRecord>) -> Result<Self, SinkError> {
        let mut file = BufWriter::new(tempfile::tempfile()?);
        for row in rows {
            serde_json::to_writer(&mut file, &row)?;
            file.write_all(b"\n")?;
        }
        let mut file = file
            .into_inner()
            .map_err(std::io::IntoInnerError::into_error)?;
        file.seek(SeekFrom::Start(0))?;
        Ok(Self::File(BufReader::new(file).lines()))
    }

    fn next(&mut self) -> Result<Option<AuditRecord>, SinkError> {
        match self {
            Self::Memory(rows) => Ok(rows.next()),
            Self::File(lines) => match lines.next() {
                None => Ok(None),
                Some(line) => Ok(Some(serde_json::from_str(&line?)?)),
            },
        }
    }
}

/// The stage, wrapping the sink the rows go to. Call [`finish`](Self::finish) when the engine
/// is done: the rows still held go out then.
pub struct ChangeStage<S> {
    inner: S,
    directory: Directory,
    tracker: Tracker,
    findings: Findings,
    held: BinaryHeap<Reverse<Held>>,
    bound: usize,
    /// Sorted runs of held rows spilled to temporary files.
    runs: Vec<Run>,
    history: History,
    replaying: bool,
    replayed: u64,
}

impl<S: ScanSink> ChangeStage<S> {
    /// A stage naming ids from `directory` (the snapshot's names) where the trail gave none
    /// before the event, with the default rules of the findings.
    pub fn new(inner: S, directory: Directory) -> Self {
        Self::with_rules(inner, directory, FindingRules::default())
    }

    /// [`new`](Self::new), with these rules for the findings.
    pub fn with_rules(inner: S, directory: Directory, rules: FindingRules) -> Self {
        Self {
            inner,
            directory,
            tracker: Tracker::new(),
            findings: Findings::new(rules),
            held: BinaryHeap::new(),
            bound: REORDER_ROWS,
            runs: Vec::new(),
            history: History::new(),
            replaying: false,
            replayed: 0,
        }
    }

    /// The stage with the snapshot's versions: states and names as of each event.
    #[must_use]
    pub fn with_history(mut self, history: History) -> Self {
        self.history = history;
        self
    }

    /// Turns replay mode on or off. In replay mode, rows are decoded (their events move the
    /// state on) and not passed on; turning it off decodes the rows still held first, so the
    /// rows of the span replayed are all older than those that follow.
    pub fn set_replay(&mut self, on: bool) -> Result<(), SinkError> {
        if self.replaying && !on {
            self.release()?;
        }
        self.replaying = on;
        Ok(())
    }

    /// Rows decoded in replay mode (not passed on).
    pub fn replayed(&self) -> u64 {
        self.replayed
    }

    /// The stage with another reorder bound (tests).
    #[must_use]
    pub fn with_bound(mut self, bound: usize) -> Self {
        self.bound = bound.max(1);
        self
    }

    /// The sink it writes to.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Sends the rows still held, in event-time order, and gives the sink back.
    pub fn finish(mut self) -> Result<S, SinkError> {
        self.release()?;
        Ok(self.inner)
    }

    /// [`finish`](Self::finish), then `then` of the sink, the state every target was left in,
    /// the snapshot's versions, and names as of `at` (what an access review reads as of the
    /// end of its trail read).
    pub fn finish_as_of<T>(
        mut self,
        at: Timestamp,
        then: impl FnOnce(S, &Tracker, &History, &dyn Namer) -> T,
    ) -> Result<T, SinkError> {
        self.release()?;
        let Self {
            inner,
            tracker,
            directory,
            history,
            ..
        } = self;
        let names = AsOf {
            tracker: &tracker,
            directory: &directory,
            history: &history,
            at,
            subject: None,
        };
        Ok(then(inner, &tracker, &history, &names))
    }

    /// Spilled runs written so far (tests, and the memory bound's proof).
    pub fn spilled_runs(&self) -> usize {
        self.runs.len()
    }

    /// Decodes every held and spilled row, oldest first, and passes them on in batches (or,
    /// in replay mode, counts them).
    fn release(&mut self) -> Result<(), SinkError> {
        let mut sources: Vec<Run> = std::mem::take(&mut self.runs);
        if !self.held.is_empty() {
            let held = std::mem::take(&mut self.held).into_sorted_vec();
            // `into_sorted_vec` of `Reverse` is newest first.
            sources.push(Run::memory(
                held.into_iter().rev().map(|Reverse(Held(r))| r),
            ));
        }
        // The head row of each source, by its key.
        let mut heads = BinaryHeap::new();
        for (i, source) in sources.iter_mut().enumerate() {
            if let Some(record) = source.next()? {
                heads.push(Reverse((Held(record), i)));
            }
        }
        let mut out = Vec::new();
        while let Some(Reverse((Held(record), i))) = heads.pop() {
            if let Some(next) = sources[i].next()? {
                heads.push(Reverse((Held(next), i)));
            }
            let decoded = self.decode(record);
            if self.replaying {
                self.replayed += 1;
            } else {
                out.push(decoded);
                if out.len() >= OUT_BATCH {
                    self.inner.records(std::mem::take(&mut out))?;
                }
            }
        }
        if !out.is_empty() {
            self.inner.records(out)?;
        }
        Ok(())
    }

    /// Writes the held rows to a temporary file, oldest first, as one run.
    fn spill(&mut self) -> Result<(), SinkError> {
        let held = std::mem::take(&mut self.held).into_sorted_vec();
        self.runs.push(Run::spill(
            held.into_iter().rev().map(|Reverse(Held(r))| r),
        )?);
        Ok(())
    }

    fn decode(&mut self, mut record: AuditRecord) -> AuditRecord {
        let request: serde_json::Value = record
            .request_parameters
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or(serde_json::Value::Null);
        let target = record.target_id.clone().unwrap_or_default();
        let failed = record.error_code.is_some();
        let at = record.event_time;
        if record.target_id.is_some() {
            self.start_from_snapshot(record.target_kind, &target, at);
        }
        // The profiles a grant names: their permissions as of the event, for the findings.
        if let Some(ids) = request.get("SecurityProfileIds").and_then(Value::as_array) {
            for id in ids.iter().filter_map(Value::as_str) {
                self.start_from_snapshot(TargetKind::SecurityProfile, id, at);
            }
        }
        let namer = AsOf::new(&self.tracker, &self.directory, &self.history, &record);
        let found = self.tracker.decode(
            &record.event_name,
            record.target_kind,
            &target,
            &request,
            failed,
            &namer,
        );
        // A row whose target has no id keeps no state: two such rows are not the same thing.
        let keeps_state = record.target_id.is_some();
        let decoded = found.map(|(decoded, transition)| {
            if keeps_state {
                self.tracker.advance(transition);
            }
            decoded
        });
        if let Some(decoded) = &decoded {
            record.change = Some(decoded.change.clone());
            record.before = decoded.before.as_ref().map(ToString::to_string);
            record.after = decoded.after.as_ref().map(ToString::to_string);
            record.change_basis = Some(decoded.basis);
        }
        let namer = AsOf::new(&self.tracker, &self.directory, &self.history, &record);
        record.findings =
            self.findings
                .check(&record, &request, decoded.as_ref(), &self.tracker, &namer);
        record
    }

    /// A target no event of the scan has touched yet starts from its newest snapshot version
    /// observed at or before `at` (if it was not gone then and the version holds anything).
    fn start_from_snapshot(&mut self, kind: TargetKind, id: &str, at: Timestamp) {
        if self.tracker.knows(kind, id) {
            return;
        }
        if let Some(version) = self.history.at(kind, id, at)
            && !version.deleted
            && !version.state.is_empty()
        {
            self.tracker.observe(kind, id, version.state.clone());
        }
    }
}

impl<S: ScanSink> ScanSink for ChangeStage<S> {
    fn records(&mut self, batch: Vec<AuditRecord>) -> Result<(), SinkError> {
        for record in batch {
            self.held.push(Reverse(Held(record)));
            if self.held.len() >= self.bound {
                self.spill()?;
            }
        }
        Ok(())
    }

    fn files_found(&mut self, files: u64, bytes: u64) {
        self.inner.files_found(files, bytes);
    }

    fn file_scanned(&mut self, path: &Path, bytes: u64) {
        self.inner.file_scanned(path, bytes);
    }

    fn bad_input(&mut self, problem: &BadInput) {
        self.inner.bad_input(problem);
    }
}

/// Names as the stage knows them at the row it decodes, at its event time `at`: what the
/// trail said before it, else the snapshot version of then, else the snapshot's latest.
struct AsOf<'a> {
    tracker: &'a Tracker,
    directory: &'a Directory,
    history: &'a History,
    at: Timestamp,
    /// The row's target, for what only its versions tell (a hidden e-mail changed or not).
    subject: Option<(TargetKind, &'a str)>,
}

impl<'a> AsOf<'a> {
    /// Names as of `record`'s event time, about its target.
    fn new(
        tracker: &'a Tracker,
        directory: &'a Directory,
        history: &'a History,
        record: &'a AuditRecord,
    ) -> Self {
        Self {
            tracker,
            directory,
            history,
            at: record.event_time,
            subject: record
                .target_id
                .as_deref()
                .map(|id| (record.target_kind, id)),
        }
    }
}

impl Namer for AsOf<'_> {
    fn name(&self, kind: TargetKind, id: &str) -> Option<String> {
        self.tracker
            .set_by_trail(kind, id, "name")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| self.history.name_at(kind, id, self.at).map(str::to_owned))
            .or_else(|| {
                self.directory
                    .lookup(id)
                    .map(|(entry, _)| entry.name.clone())
            })
    }

    fn hidden_changed(&self, field: &str) -> Option<bool> {
        let (kind, id) = self.subject?;
        let value =
            |v: &connect_audit_core::history::Version| v.state.get("identity")?.get(field).cloned();
        let before = value(self.history.at(kind, id, self.at)?)?;
        let after = value(self.history.after(kind, id, self.at)?)?;
        Some(before != after)
    }

    fn group_path(&self, id: &str) -> Option<Vec<String>> {
        let mut path = vec![self.name(TargetKind::HierarchyGroup, id)?];
        let mut at = id.to_owned();
        // A group's parents (at most five levels in Connect): as the trail last set them,
        // else as the snapshot version of then holds them.
        for _ in 0..5 {
            let group = TargetKind::HierarchyGroup;
            let parent = self
                .tracker
                .state(group, &at)
                .and_then(|state| state.get("parent_group"))
                .or_else(|| {
                    self.history
                        .at(group, &at, self.at)
                        .or_else(|| self.history.after(group, &at, self.at))
                        .and_then(|v| v.state.get("parent_group"))
                });
            let Some(Value::String(parent)) = parent else {
                break;
            };
            let Some(name) = self.name(group, parent) else {
                break;
            };
            path.insert(0, name);
            at.clone_from(parent);
        }
        Some(path)
    }
}

#[cfg(test)]
mod tests {
    use connect_audit_core::{ActorKind, Category, ChangeBasis};

    use super::*;

    const USER: &str = "11111111-2222-3333-4444-555555555555";
    const ADMIN: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
    const AGENT: &str = "bbbbbbbb-bbbb-cccc-dddd-eeeeeeeeeeee";

    fn row(id: &str, at: &str, event: &str, request: &str, actor: &str) -> AuditRecord {
        let mut r = AuditRecord::new(at.parse().unwrap(), id, event, Category::Permissions);
        r.actor_kind = ActorKind::ConnectUser;
        r.actor_id = Some(actor.to_owned());
        r.target_kind = TargetKind::User;
        r.target_id = Some(USER.to_owned());
        r.target_name = Some("kenji".to_owned());
        r.request_parameters = Some(request.to_owned());
        r
    }

    fn directory() -> Directory {
        let mut d = Directory::new();
        d.insert_snapshot(TargetKind::SecurityProfile, ADMIN, "Admin");
        d.insert_snapshot(TargetKind::SecurityProfile, AGENT, "Agent");
        d
    }

    #[test]
    fn rows_delivered_out_of_order_are_decoded_in_event_time_order() {
        let first = row(
            "e1",
            "2024-05-02T09:00:00Z",
            "UpdateUserSecurityProfiles",
            &format!(r#"{{"SecurityProfileIds":["{AGENT}"],"UserId":"{USER}"}}"#),
            "someone",
        );
        let second = row(
            "e2",
            "2024-05-02T10:00:00Z",
            "UpdateUserSecurityProfiles",
            &format!(r#"{{"SecurityProfileIds":["{AGENT}","{ADMIN}"],"UserId":"{USER}"}}"#),
            USER,
        );
        // The later event comes first, in an earlier file.
        let mut stage = ChangeStage::new(Vec::new(), directory());
        stage.records(vec![second]).unwrap();
        stage.records(vec![first]).unwrap();
        assert!(stage.inner().is_empty(), "held until the end");
        let rows = stage.finish().unwrap();
        let ids: Vec<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
        assert_eq!(ids, ["e1", "e2"]);
        assert_eq!(
            rows[0].change.as_deref(),
            Some("security profiles: now Agent")
        );
        assert_eq!(rows[0].change_basis, Some(ChangeBasis::Unknown));
        assert_eq!(rows[0].before, None);
        assert_eq!(
            rows[1].change.as_deref(),
            Some("security profiles: +Admin (now Admin, Agent)")
        );
        assert_eq!(rows[1].change_basis, Some(ChangeBasis::Trail));
        assert_eq!(
            rows[1].before.as_deref(),
            Some(
                format!(r#"{{"security_profiles":[{{"id":"{AGENT}","name":"Agent"}}]}}"#).as_str()
            )
        );
        // The user gave itself Admin.
        assert_eq!(
            rows[1].findings,
            ["self_grant", "privileged_grant", "privileged_by_name"]
        );
        assert!(rows[0].findings.is_empty());
    }

    #[test]
    fn names_are_the_ones_valid_at_the_event_time() {
        const RP: &str = "cccccccc-bbbb-cccc-dddd-eeeeeeeeeeee";
        const RP_OTHER: &str = "dddddddd-bbbb-cccc-dddd-eeeeeeeeeeee";
        // The snapshot, taken after everything below, knows the profile by its new name.
        let mut names = directory();
        names.insert_snapshot(TargetKind::RoutingProfile, RP, "Tier 1 Support");
        names.insert_snapshot(TargetKind::RoutingProfile, RP_OTHER, "Sales");
        let profile = |id: &str, at: &str, event: &str, request: String| {
            let mut r = row(id, at, event, &request, "admin");
            r.target_kind = TargetKind::RoutingProfile;
            r.target_id = Some(RP.to_owned());
            r
        };
        let move_to = |id: &str, at: &str, to: &str| {
            row(
                id,
                at,
                "UpdateUserRoutingProfile",
                &format!(r#"{{"RoutingProfileId":"{to}"}}"#),
                "admin",
            )
        };
        let mut stage = ChangeStage::new(Vec::new(), names);
        stage
            .records(vec![
                profile(
                    "c",
                    "2024-05-01T00:00:00Z",
                    "CreateRoutingProfile",
                    r#"{"Name":"Tier 1"}"#.to_owned(),
                ),
                move_to("m1", "2024-05-01T01:00:00Z", RP),
                profile(
                    "r",
                    "2024-05-01T02:00:00Z",
                    "UpdateRoutingProfileName",
                    r#"{"Name":"Tier 1 Support"}"#.to_owned(),
                ),
                move_to("m2", "2024-05-01T03:00:00Z", RP_OTHER),
            ])
            .unwrap();
        let rows = stage.finish().unwrap();
        let change = |id: &str| {
            rows.iter()
                .find(|r| r.event_id == id)
                .and_then(|r| r.change.clone())
                .unwrap()
        };
        assert_eq!(change("m1"), "routing profile: now Tier 1", "its name then");
        assert_eq!(change("r"), "name: Tier 1 → Tier 1 Support");
        assert_eq!(change("m2"), "routing profile: Tier 1 Support → Sales");
    }

    #[test]
    fn rows_without_a_target_id_share_no_state() {
        let tag = |id: &str, at: &str, tags: &str| {
            let mut r = row(
                id,
                at,
                "TagResource",
                &format!(r#"{{"tags":{tags}}}"#),
                "admin",
            );
            r.target_kind = TargetKind::Resource;
            r.target_id = None;
            r
        };
        let mut stage = ChangeStage::new(Vec::new(), Directory::new());
        stage
            .records(vec![
                tag("t1", "2024-05-01T00:00:00Z", r#"{"a":"1"}"#),
                tag("t2", "2024-05-01T01:00:00Z", r#"{"b":"2"}"#),
            ])
            .unwrap();
        let rows = stage.finish().unwrap();
        assert_eq!(rows[1].change.as_deref(), Some("tags: +b=2"));
        assert_eq!(
            rows[1].change_basis,
            Some(ChangeBasis::Unknown),
            "not t1's state"
        );
    }

    #[test]
    fn past_the_bound_held_rows_spill_and_still_go_out_in_event_time_order() {
        let mut stage = ChangeStage::new(Vec::new(), Directory::new()).with_bound(2);
        let at = |h: u32| format!("2024-05-02T{h:02}:00:00Z");
        for (id, hour) in [("c", 3), ("e", 5), ("a", 1), ("d", 4), ("b", 2)] {
            let r = row(id, &at(hour), "PutUserStatus", "{}", "x");
            stage.records(vec![r]).unwrap();
        }
        assert!(stage.inner().is_empty(), "held until the engine is done");
        assert_eq!(
            stage.spilled_runs(),
            2,
            "two runs of two, one row in memory"
        );
        let rows = stage.finish().unwrap();
        let ids: Vec<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c", "d", "e"]);
        // A call whose effect is not decoded carries no change.
        assert!(
            rows.iter()
                .all(|r| r.change.is_none() && r.change_basis.is_none())
        );
    }

    #[test]
    fn snapshot_versions_give_before_names_and_hidden_changes_as_of_each_event() {
        use serde_json::json;
        let at = |s: &str| -> Timestamp { s.parse().unwrap() };
        let mut history = History::new();
        let user = |email: &str| {
            json!({"Id": USER, "Username": "kenji", "SecurityProfileIds": [AGENT],
                   "RoutingProfileId": "rp", "Email": email, "Proficiencies": []})
        };
        history.add(
            TargetKind::User,
            at("2024-05-01T00:00:00Z"),
            &user("k@example.com"),
        );
        history.add(
            TargetKind::User,
            at("2024-05-03T00:00:00Z"),
            &user("new@example.com"),
        );
        let admin = |name: &str| json!({"Id": ADMIN, "Name": name, "Permissions": ["Users.Edit"]});
        history.add(
            TargetKind::SecurityProfile,
            at("2024-05-01T00:00:00Z"),
            &admin("Admin"),
        );
        history.add(
            TargetKind::SecurityProfile,
            at("2024-05-03T00:00:00Z"),
            &admin("Administrators"),
        );
        history.seal();
        let grant = |id: &str, at: &str, ids: &[&str]| {
            row(
                id,
                at,
                "UpdateUserSecurityProfiles",
                &json!({"SecurityProfileIds": ids, "UserId": USER}).to_string(),
                "someone",
            )
        };
        let mut stage = ChangeStage::new(Vec::new(), directory()).with_history(history);
        // The span between the snapshot and the window: decoded, not passed on.
        stage.set_replay(true).unwrap();
        stage
            .records(vec![grant("e0", "2024-05-01T12:00:00Z", &[AGENT, "qa"])])
            .unwrap();
        stage.set_replay(false).unwrap();
        assert_eq!(stage.replayed(), 1);
        let mut email = row(
            "e2",
            "2024-05-02T11:00:00Z",
            "UpdateUserIdentityInfo",
            &json!({"IdentityInfo": {"Email": "HIDDEN_DUE_TO_SECURITY_REASONS"}, "UserId": USER})
                .to_string(),
            "someone",
        );
        email.category = Category::User;
        stage
            .records(vec![
                grant("e1", "2024-05-02T10:00:00Z", &[AGENT, ADMIN]),
                email,
                grant("e3", "2024-05-04T10:00:00Z", &[AGENT]),
            ])
            .unwrap();
        let rows = stage.finish().unwrap();
        let ids: Vec<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
        assert_eq!(ids, ["e1", "e2", "e3"], "the replayed row is not written");
        assert_eq!(
            rows[0].change.as_deref(),
            Some("security profiles: +Admin −qa (now Admin, Agent)"),
            "the replayed grant of qa is the before"
        );
        assert_eq!(
            rows[0].change_basis,
            Some(ChangeBasis::Trail),
            "an event of the replayed span set it"
        );
        assert_eq!(rows[1].change.as_deref(), Some("identity: e-mail changed"));
        assert_eq!(rows[1].change_basis, Some(ChangeBasis::Snapshot));
        assert_eq!(
            rows[2].change.as_deref(),
            Some("security profiles: −Administrators (now Agent)"),
            "the name valid at the event"
        );
        assert_eq!(rows[2].change_basis, Some(ChangeBasis::Trail));
        assert!(
            rows[0].findings.contains(&"privileged_grant".to_owned()),
            "the snapshot's permissions of Admin: {:?}",
            rows[0].findings
        );
    }

    #[test]
    fn a_target_the_trail_deleted_does_not_come_back_from_an_older_snapshot() {
        use serde_json::json;
        let at = |s: &str| -> Timestamp { s.parse().unwrap() };
        let mut history = History::new();
        history.add(
            TargetKind::User,
            at("2024-05-01T00:00:00Z"),
            &json!({"Id": USER, "Username": "kenji", "SecurityProfileIds": [AGENT], "Proficiencies": []}),
        );
        history.seal();
        let mut stage = ChangeStage::new(Vec::new(), directory()).with_history(history);
        let delete = row(
            "e1",
            "2024-05-02T09:00:00Z",
            "DeleteUser",
            &format!(r#"{{"UserId":"{USER}"}}"#),
            "x",
        );
        let grant = row(
            "e2",
            "2024-05-02T10:00:00Z",
            "UpdateUserSecurityProfiles",
            &format!(r#"{{"SecurityProfileIds":["{ADMIN}"],"UserId":"{USER}"}}"#),
            "x",
        );
        stage.records(vec![delete, grant]).unwrap();
        let rows = stage.finish().unwrap();
        assert_eq!(rows[0].change.as_deref(), Some("deleted (had Agent)"));
        assert_eq!(rows[0].change_basis, Some(ChangeBasis::Snapshot));
        assert_eq!(
            rows[1].change_basis,
            Some(ChangeBasis::Unknown),
            "{:?}",
            rows[1]
        );
        assert_eq!(
            rows[1].change.as_deref(),
            Some("security profiles: now Admin")
        );
    }
}
