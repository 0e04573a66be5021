//! The change stage: between either engine and the exporters, it puts the rows in event-time
//! order (within a bounded window), decodes what each one changed ([`connect_audit_core::change`])
//! and fills the change columns (`change`, `before`, `after`, `change_basis`, `findings`).
//!
//! Takes the engine's batches (in the engine's order: by file, then by event time) and gives
//! the same rows, in event-time order, to the sink it wraps. CloudTrail files are ordered by
//! delivery, not by event time, so a later file can hold an earlier event of the same user: rows
//! are held in a heap of at most [`REORDER_ROWS`] and the oldest goes out first, so the state each
//! row is decoded against is the one of the events before it. Audited rows are rare (about one
//! in a thousand records), so the bound is reached only by very large runs; memory stays flat.
//! Both engines go through this stage, so both give the same rows.
//!
//! Names are the ones valid at the event time: a name an earlier event of the scan gave (a
//! create, a rename) wins over the snapshot's, which may be newer than the event.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::Path;

use connect_audit_core::change::{Namer, Tracker};
use connect_audit_core::findings::{FindingRules, Findings};
use connect_audit_core::{AuditRecord, Directory, TargetKind};

use crate::sink::{BadInput, ScanSink, SinkError};

/// Rows held to put them in event-time order before the oldest goes out.
pub const REORDER_ROWS: usize = 10_000;

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

/// The stage, wrapping the sink the rows go to. Call [`finish`](Self::finish) when the engine
/// is done: the rows still held go out then.
pub struct ChangeStage<S> {
    inner: S,
    directory: Directory,
    tracker: Tracker,
    findings: Findings,
    held: BinaryHeap<Reverse<Held>>,
    bound: usize,
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
        }
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
        let mut out = Vec::with_capacity(self.held.len());
        while let Some(Reverse(Held(record))) = self.held.pop() {
            out.push(self.decode(record));
        }
        if !out.is_empty() {
            self.inner.records(out)?;
        }
        Ok(self.inner)
    }

    fn decode(&mut self, mut record: AuditRecord) -> AuditRecord {
        let request: serde_json::Value = record
            .request_parameters
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or(serde_json::Value::Null);
        let target = record.target_id.clone().unwrap_or_default();
        let failed = record.error_code.is_some();
        let namer = AsOfNow {
            tracker: &self.tracker,
            directory: &self.directory,
        };
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
        let namer = AsOfNow {
            tracker: &self.tracker,
            directory: &self.directory,
        };
        record.findings =
            self.findings
                .check(&record, &request, decoded.as_ref(), &self.tracker, &namer);
        record
    }
}

impl<S: ScanSink> ScanSink for ChangeStage<S> {
    fn records(&mut self, batch: Vec<AuditRecord>) -> Result<(), SinkError> {
        let mut out = Vec::new();
        for record in batch {
            self.held.push(Reverse(Held(record)));
            if self.held.len() > self.bound
                && let Some(Reverse(Held(oldest))) = self.held.pop()
            {
                out.push(self.decode(oldest));
            }
        }
        if out.is_empty() {
            return Ok(());
        }
        self.inner.records(out)
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

/// Names as the stage knows them at the row it decodes: what the trail said before it, else
/// the snapshot.
struct AsOfNow<'a> {
    tracker: &'a Tracker,
    directory: &'a Directory,
}

impl Namer for AsOfNow<'_> {
    fn name(&self, kind: TargetKind, id: &str) -> Option<String> {
        self.tracker
            .state(kind, id)
            .and_then(|state| state.get("name"))
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .or_else(|| {
                self.directory
                    .lookup(id)
                    .map(|(entry, _)| entry.name.clone())
            })
    }

    fn group_path(&self, id: &str) -> Option<Vec<String>> {
        let mut path = vec![self.name(TargetKind::HierarchyGroup, id)?];
        let mut at = id.to_owned();
        // A group's parents, as far as the trail tells them (at most five levels in Connect).
        for _ in 0..5 {
            let Some(parent) = self
                .tracker
                .state(TargetKind::HierarchyGroup, &at)
                .and_then(|state| state.get("parent_group"))
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
            else {
                break;
            };
            let Some(name) = self.name(TargetKind::HierarchyGroup, &parent) else {
                break;
            };
            path.insert(0, name);
            at = parent;
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
    fn past_the_bound_the_oldest_row_goes_out_first() {
        let mut stage = ChangeStage::new(Vec::new(), Directory::new()).with_bound(2);
        let at = |h: u32| format!("2024-05-02T{h:02}:00:00Z");
        for (id, hour) in [("c", 3), ("a", 1), ("b", 2), ("d", 4)] {
            let r = row(id, &at(hour), "PutUserStatus", "{}", "x");
            stage.records(vec![r]).unwrap();
        }
        let out: Vec<&str> = stage.inner().iter().map(|r| r.event_id.as_str()).collect();
        assert_eq!(out, ["a", "b"]);
        let rows = stage.finish().unwrap();
        let ids: Vec<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c", "d"]);
        // A call whose effect is not decoded carries no change.
        assert!(
            rows.iter()
                .all(|r| r.change.is_none() && r.change_basis.is_none())
        );
    }
}
