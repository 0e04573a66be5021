//! The `Directory`: Connect ids → readable names, and where each name came from.

use std::collections::HashMap;

use crate::record::{ActorKind, AuditRecord, NameSource, TargetKind};

/// A name known for an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The readable name (username, profile or group name).
    pub name: String,
    /// What the id names.
    pub kind: TargetKind,
}

/// Maps Connect ids to names. Names from the snapshot win over names learned from the trail
/// (`CreateUser` and the other create/rename events), which fill the gaps: a user created and
/// deleted between two snapshots is still named.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    snapshot: HashMap<String, Entry>,
    trail: HashMap<String, Entry>,
}

impl Directory {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a name read from the snapshot store.
    pub fn insert_snapshot(&mut self, kind: TargetKind, id: &str, name: &str) {
        self.snapshot.insert(
            id.to_ascii_lowercase(),
            Entry {
                name: name.to_owned(),
                kind,
            },
        );
    }

    /// Adds a name learned from an event of the trail. A later event (e.g. a rename) replaces
    /// an earlier one only when the caller feeds them in time order.
    pub fn learn(&mut self, kind: TargetKind, id: &str, name: &str) {
        self.trail.insert(
            id.to_ascii_lowercase(),
            Entry {
                name: name.to_owned(),
                kind,
            },
        );
    }

    /// Number of ids known from the snapshot.
    pub fn snapshot_len(&self) -> usize {
        self.snapshot.len()
    }

    /// Number of ids known from the trail only.
    pub fn trail_len(&self) -> usize {
        self.trail.len()
    }

    /// The name of an id and where it came from.
    pub fn lookup(&self, id: &str) -> Option<(&Entry, NameSource)> {
        let key = id.to_ascii_lowercase();
        self.snapshot
            .get(&key)
            .map(|e| (e, NameSource::Snapshot))
            .or_else(|| self.trail.get(&key).map(|e| (e, NameSource::Trail)))
    }

    /// Names the actor and target of `record` and sets its `name_source` to the weakest source
    /// among the names it needed (a Connect user actor, a user/profile/group target).
    ///
    /// Names the record carried itself (`CreateUser`'s `Username`) count as `trail`. A record
    /// that needed no lookup keeps the names the trail gave it: `trail`. Returns whether every
    /// needed name was found.
    pub fn resolve(&self, record: &mut AuditRecord) -> bool {
        let mut source = NameSource::Snapshot;
        let mut needed = false;
        if record.actor_kind == ActorKind::ConnectUser {
            needed = true;
            match record.actor_id.as_deref().and_then(|id| self.lookup(id)) {
                Some((entry, s)) => {
                    record.actor_name = Some(entry.name.clone());
                    source = source.max(s);
                }
                None => source = NameSource::Unresolved,
            }
        }
        if record.target_kind.is_named() {
            needed = true;
            match record.target_id.as_deref().and_then(|id| self.lookup(id)) {
                Some((entry, s)) => {
                    record.target_name = Some(entry.name.clone());
                    source = source.max(s);
                }
                None if record.target_name.is_some() => source = source.max(NameSource::Trail),
                None => source = NameSource::Unresolved,
            }
        }
        record.name_source = if needed { source } else { NameSource::Trail };
        record.name_source != NameSource::Unresolved
    }
}
