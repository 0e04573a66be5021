//! Who gave each user each security profile they hold (issue I's access review, its first
//! part): fed the change stage's decoded rows in event-time order, [`Grants`] keeps, per user
//! and profile held, the latest event of the trail that gave it — or says that the profile was
//! already held when the trail read began ([`GrantBasis::BeforeTrail`]), or that neither the
//! trail nor the snapshot history can say ([`GrantBasis::Unknown`]).
//!
//! A row gives a profile when it succeeded and its profile is in `after` but not in `before`
//! (`CreateUser`: every profile it was created with). A replace whose `before` is not known
//! (`change_basis = unknown`) cannot say which of its profiles it gave: those not known to be
//! held already are `Unknown`, never guessed to be this row's grant. A profile taken away is
//! forgotten; a deleted user has no grants.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::record::{AuditRecord, TargetKind};

/// How a held profile's grant is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GrantBasis {
    /// An event of the trail read gave it: [`Grant::by`] and [`Grant::at`] say who and when.
    #[serde(rename = "trail")]
    Trail,
    /// It was held when the trail read began (the snapshot version it starts from holds it).
    #[serde(rename = "before trail")]
    BeforeTrail,
    /// Neither the trail read nor the snapshot history can say.
    #[serde(rename = "unknown")]
    Unknown,
}

impl GrantBasis {
    /// `trail`, `before trail`, `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trail => "trail",
            Self::BeforeTrail => "before trail",
            Self::Unknown => "unknown",
        }
    }
}

/// The grant of one held profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// How it is known.
    pub basis: GrantBasis,
    /// Who gave it (the row's actor: name, else id, else ARN), for [`GrantBasis::Trail`].
    pub by: Option<String>,
    /// When, for [`GrantBasis::Trail`].
    pub at: Option<Timestamp>,
    /// The event that gave it, for [`GrantBasis::Trail`].
    pub event_id: Option<String>,
}

impl Grant {
    fn known_before() -> Self {
        Self {
            basis: GrantBasis::BeforeTrail,
            by: None,
            at: None,
            event_id: None,
        }
    }

    fn unknown() -> Self {
        Self {
            basis: GrantBasis::Unknown,
            ..Self::known_before()
        }
    }
}

/// The grants of the profiles each user holds, as the rows fed so far tell.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// Per user id (lower case): profile id (lower case) → its grant.
    users: HashMap<String, BTreeMap<String, Grant>>,
}

/// The ids of an attribute of a `before`/`after` column (`[{"id", "name"}]` or `["id"]`),
/// lower case; `None` when the column does not hold the attribute.
fn ids(column: Option<&str>, attr: &str) -> Option<Vec<String>> {
    let value: Value = serde_json::from_str(column?).ok()?;
    Some(
        value
            .get(attr)?
            .as_array()?
            .iter()
            .filter_map(|item| item.get("id").and_then(Value::as_str).or(item.as_str()))
            .map(str::to_ascii_lowercase)
            .collect(),
    )
}

impl Grants {
    /// No grant known.
    pub fn new() -> Self {
        Self::default()
    }

    /// The profiles `user` held when the trail read began (its snapshot version then): each
    /// is [`GrantBasis::BeforeTrail`] until a row of the trail says otherwise. Profiles a row
    /// already accounted for are left as they are.
    pub fn held_at_start(&mut self, user: &str, profiles: &[String]) {
        let held = self.users.entry(user.to_ascii_lowercase()).or_default();
        for p in profiles {
            held.entry(p.to_ascii_lowercase())
                .or_insert_with(Grant::known_before);
        }
    }

    /// One decoded row (the change stage's output), in event-time order.
    pub fn feed(&mut self, record: &AuditRecord) {
        if record.error_code.is_some() || record.target_kind != TargetKind::User {
            return;
        }
        let Some(user) = record.target_id.as_deref().map(str::to_ascii_lowercase) else {
            return;
        };
        if record.event_name == "DeleteUser" {
            self.users.remove(&user);
            return;
        }
        let Some(after) = ids(record.after.as_deref(), "security_profiles") else {
            return;
        };
        let before = ids(record.before.as_deref(), "security_profiles");
        let created = record.event_name == "CreateUser";
        let by = record
            .actor_name
            .clone()
            .or_else(|| record.actor_id.clone())
            .or_else(|| record.actor_arn.clone());
        let held = self.users.entry(user).or_default();
        let mut now = BTreeMap::new();
        for p in after {
            let given = created || before.as_ref().is_some_and(|b| !b.contains(&p));
            let grant = if given {
                Grant {
                    basis: GrantBasis::Trail,
                    by: by.clone(),
                    at: Some(record.event_time),
                    event_id: Some(record.event_id.clone()),
                }
            } else {
                // Held before this row (its `before` says so, or an earlier row or the
                // snapshot accounted for it); or, with no `before`, not known to be held.
                held.get(&p).cloned().unwrap_or_else(|| {
                    if before.is_some() {
                        Grant::known_before()
                    } else {
                        Grant::unknown()
                    }
                })
            };
            now.insert(p, grant);
        }
        *held = now;
    }

    /// The grant of `profile` held by `user`, if known to be held.
    pub fn grant(&self, user: &str, profile: &str) -> Option<&Grant> {
        self.users
            .get(&user.to_ascii_lowercase())?
            .get(&profile.to_ascii_lowercase())
    }

    /// The grant of `profile` held by `user`: what [`grant`](Self::grant) knows, else
    /// [`GrantBasis::BeforeTrail`] when the snapshot the review starts from shows it held
    /// (`snapshot_held`), else [`GrantBasis::Unknown`].
    pub fn grant_or(&self, user: &str, profile: &str, snapshot_held: bool) -> Grant {
        self.grant(user, profile).cloned().unwrap_or_else(|| {
            if snapshot_held {
                Grant::known_before()
            } else {
                Grant::unknown()
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::record::{ActorKind, Category};

    const U: &str = "11111111-2222-3333-4444-555555555555";

    fn row(
        n: u32,
        event: &str,
        before: Option<Value>,
        after: Option<Value>,
        actor: &str,
    ) -> AuditRecord {
        let at: Timestamp = format!("2024-05-0{n}T09:00:00Z").parse().unwrap();
        let mut r = AuditRecord::new(at, format!("e{n}"), event, Category::Permissions);
        r.actor_kind = ActorKind::Iam;
        r.actor_name = Some(actor.to_owned());
        r.target_kind = TargetKind::User;
        r.target_id = Some(U.to_owned());
        r.before = before.map(|b| b.to_string());
        r.after = after.map(|a| a.to_string());
        r
    }

    fn profiles(ids: &[&str]) -> Value {
        json!({"security_profiles": ids.iter().map(|id| json!({"id": id, "name": null})).collect::<Vec<_>>()})
    }

    #[test]
    fn each_held_profile_says_which_event_gave_it_or_that_it_was_held_before() {
        let mut g = Grants::new();
        g.held_at_start(U, &["agent".to_owned()]);
        // alice gives Admin; Agent was held before the trail read.
        g.feed(&row(
            1,
            "UpdateUserSecurityProfiles",
            Some(profiles(&["agent"])),
            Some(profiles(&["agent", "admin"])),
            "alice",
        ));
        let admin = g.grant(U, "ADMIN").unwrap();
        assert_eq!(
            (admin.basis, admin.by.as_deref(), admin.event_id.as_deref()),
            (GrantBasis::Trail, Some("alice"), Some("e1"))
        );
        assert_eq!(g.grant(U, "agent").unwrap().basis, GrantBasis::BeforeTrail);
        // A failed call gives nothing; a later replace keeps what it does not change.
        let mut failed = row(
            2,
            "UpdateUserSecurityProfiles",
            Some(profiles(&["agent", "admin"])),
            Some(profiles(&["agent", "admin", "qa"])),
            "bob",
        );
        failed.error_code = Some("AccessDeniedException".into());
        g.feed(&failed);
        assert!(g.grant(U, "qa").is_none());
        g.feed(&row(
            3,
            "UpdateUserSecurityProfiles",
            Some(profiles(&["agent", "admin"])),
            Some(profiles(&["admin"])),
            "carol",
        ));
        assert!(g.grant(U, "agent").is_none(), "taken away");
        assert_eq!(g.grant(U, "admin").unwrap().by.as_deref(), Some("alice"));
        // Deleted: nothing held.
        g.feed(&row(
            4,
            "DeleteUser",
            Some(profiles(&["admin"])),
            None,
            "carol",
        ));
        assert!(g.grant(U, "admin").is_none());
        assert_eq!(
            g.grant_or(U, "admin", false).basis,
            GrantBasis::Unknown,
            "not held, not in the snapshot"
        );
    }

    #[test]
    fn a_replace_with_no_before_does_not_claim_to_have_given_its_profiles() {
        let mut g = Grants::new();
        g.feed(&row(
            1,
            "UpdateUserSecurityProfiles",
            None,
            Some(profiles(&["admin"])),
            "alice",
        ));
        assert_eq!(g.grant(U, "admin").unwrap().basis, GrantBasis::Unknown);
        // A create gives every profile it was created with.
        g.feed(&row(
            2,
            "CreateUser",
            None,
            Some(profiles(&["agent"])),
            "bob",
        ));
        let agent = g.grant(U, "agent").unwrap();
        assert_eq!(
            (agent.basis, agent.by.as_deref()),
            (GrantBasis::Trail, Some("bob"))
        );
        assert_eq!(
            serde_json::to_value(GrantBasis::BeforeTrail).unwrap(),
            json!("before trail")
        );
    }
}
