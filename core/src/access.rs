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

/// One profile a user holds in a review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldProfile {
    /// The security profile id.
    pub id: String,
    /// Its name as of the review time, if known.
    pub name: Option<String>,
    /// Whether it is privileged (a permission of the findings' `privileged_permissions`, or,
    /// its permissions not known, its name among `privileged_profiles`).
    pub privileged: bool,
    /// Who gave it and when.
    pub grant: Grant,
}

/// One row of an access review: a user of an instance as of the review time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entitlement {
    /// The review time.
    pub at: Timestamp,
    /// The instance, when known.
    pub instance_id: Option<String>,
    /// The user id.
    pub user_id: String,
    /// The username as of the review time.
    pub username: Option<String>,
    /// `identity.first_name`, `last_name`, `email` as of the review time, when known.
    pub first_name: Option<String>,
    /// See [`first_name`](Self::first_name).
    pub last_name: Option<String>,
    /// See [`first_name`](Self::first_name).
    pub email: Option<String>,
    /// The security profiles held, by name; `None` when not known (never described).
    pub security_profiles: Option<Vec<HeldProfile>>,
    /// Whether any held profile is privileged.
    pub privileged: bool,
    /// The routing profile's name (else id) as of the review time.
    pub routing_profile: Option<String>,
    /// The hierarchy group's path (`Japan › Tokyo`) as of the review time.
    pub hierarchy_group: Option<String>,
    /// When a snapshot run first found the user gone, if after the review time.
    pub deleted_after: Option<Timestamp>,
}

/// Builds the entitlement rows of the users known as of `at`: every user the snapshot
/// history holds at `at` (not gone then) and every user the trail read created, their state
/// from `tracker` (the state the trail read up to `at` left) where it holds one, else from the
/// newest snapshot version observed by `at`. Sorted by instance, then username, then id.
pub fn entitlements(
    at: Timestamp,
    history: &crate::history::History,
    tracker: &crate::change::Tracker,
    grants: &Grants,
    rules: &crate::findings::FindingRules,
    namer: &dyn crate::change::Namer,
) -> Vec<Entitlement> {
    use crate::change::State;
    let mut ids: Vec<String> = history
        .ids(TargetKind::User)
        .filter(|id| {
            history
                .at(TargetKind::User, id, at)
                .is_some_and(|v| !v.deleted)
        })
        .map(str::to_owned)
        .collect();
    ids.extend(
        tracker
            .targets(TargetKind::User)
            .map(|(id, _)| id.to_owned()),
    );
    ids.sort();
    ids.dedup();
    let text = |state: Option<&State>, attr: &str, field: &str| {
        state?.get(attr)?.get(field)?.as_str().map(str::to_owned)
    };
    let mut rows: Vec<Entitlement> = ids
        .into_iter()
        .filter_map(|id| {
            let version = history.at(TargetKind::User, &id, at);
            // Deleted by the trail read (and not re-created): not a user at `at`.
            if tracker.knows(TargetKind::User, &id)
                && tracker.state(TargetKind::User, &id).is_none()
            {
                return None;
            }
            let state = tracker
                .state(TargetKind::User, &id)
                .or_else(|| version.map(|v| &v.state));
            let snapshot_profiles: Vec<String> = version
                .and_then(|v| v.state.get("security_profiles"))
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            let security_profiles = state
                .and_then(|s| s.get("security_profiles"))
                .and_then(Value::as_array)
                .map(|held| {
                    held.iter()
                        .filter_map(Value::as_str)
                        .map(|p| HeldProfile {
                            id: p.to_owned(),
                            name: namer.name(TargetKind::SecurityProfile, p),
                            privileged: privileged(p, at, history, tracker, rules, namer),
                            grant: grants.grant_or(
                                &id,
                                p,
                                snapshot_profiles.iter().any(|s| s == p),
                            ),
                        })
                        .collect::<Vec<_>>()
                });
            let name_of = |attr: &str, kind: TargetKind| {
                let id = state?.get(attr)?.as_str()?;
                Some(match kind {
                    TargetKind::HierarchyGroup => namer
                        .group_path(id)
                        .map_or_else(|| id.to_owned(), |p| p.join(" › ")),
                    _ => namer.name(kind, id).unwrap_or_else(|| id.to_owned()),
                })
            };
            let deleted_after = {
                let mut t = at;
                let mut found = None;
                while let Some(next) = history.after(TargetKind::User, &id, t) {
                    if next.deleted {
                        found = Some(next.observed_at);
                        break;
                    }
                    t = next.observed_at;
                }
                found
            };
            Some(Entitlement {
                at,
                instance_id: version.and_then(|v| v.instance.clone()),
                username: namer
                    .name(TargetKind::User, &id)
                    .or_else(|| version.map(|v| v.name.clone()).filter(|n| !n.is_empty())),
                first_name: text(state, "identity", "first_name"),
                last_name: text(state, "identity", "last_name"),
                email: text(state, "identity", "email"),
                privileged: security_profiles
                    .as_ref()
                    .is_some_and(|held| held.iter().any(|h| h.privileged)),
                security_profiles,
                routing_profile: name_of("routing_profile", TargetKind::RoutingProfile),
                hierarchy_group: name_of("hierarchy_group", TargetKind::HierarchyGroup),
                deleted_after,
                user_id: id,
            })
        })
        .collect();
    rows.sort_by(|a, b| {
        (&a.instance_id, &a.username, &a.user_id).cmp(&(&b.instance_id, &b.username, &b.user_id))
    });
    rows
}

/// Whether security profile `profile` is privileged as of `at`: by its permissions (as the
/// trail left them, else the snapshot version of then), else by its name.
fn privileged(
    profile: &str,
    at: Timestamp,
    history: &crate::history::History,
    tracker: &crate::change::Tracker,
    rules: &crate::findings::FindingRules,
    namer: &dyn crate::change::Namer,
) -> bool {
    let sp = TargetKind::SecurityProfile;
    let permissions = tracker
        .state(sp, profile)
        .and_then(|s| s.get("permissions"))
        .or_else(|| history.at(sp, profile, at)?.state.get("permissions"))
        .and_then(Value::as_array);
    match permissions {
        Some(list) => list
            .iter()
            .filter_map(Value::as_str)
            .any(|p| rules.privileged_permissions.iter().any(|q| q == p)),
        None => namer
            .name(sp, profile)
            .is_some_and(|n| rules.privileged_profiles.contains(&n)),
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

    #[test]
    fn entitlements_are_the_users_as_of_the_review_time_with_their_grants() {
        const GONE: &str = "99999999-2222-3333-4444-555555555555";
        use crate::change::{NoNames, Tracker};
        use crate::findings::FindingRules;
        use crate::history::History;
        let t = |s: &str| -> Timestamp { s.parse().unwrap() };
        let mut history = History::new();
        let user = |id: &str, name: &str, profiles: &[&str]| {
            json!({"Id": id, "Username": name, "InstanceId": "I-1", "SecurityProfileIds": profiles,
                   "RoutingProfileId": "rp", "Email": format!("{name}@example.com"), "Proficiencies": []})
        };
        history.add(
            TargetKind::User,
            t("2024-05-01T00:00:00Z"),
            &user(U, "kenji", &["admin"]),
        );
        history.add(
            TargetKind::User,
            t("2024-05-01T00:00:00Z"),
            &user(GONE, "temp", &["agent"]),
        );
        let mut gone = user(GONE, "temp", &["agent"]);
        gone["Deleted"] = json!(true);
        history.add(TargetKind::User, t("2024-05-09T00:00:00Z"), &gone);
        history.add(
            TargetKind::SecurityProfile,
            t("2024-05-01T00:00:00Z"),
            &json!({"Id": "admin", "Name": "Admin", "Permissions": ["Users.Edit"]}),
        );
        history.seal();
        let grants = Grants::new();
        let rows = entitlements(
            t("2024-05-05T00:00:00Z"),
            &history,
            &Tracker::new(),
            &grants,
            &FindingRules::default(),
            &NoNames,
        );
        assert_eq!(rows.len(), 2);
        let kenji = rows.iter().find(|r| r.user_id == U).unwrap();
        assert_eq!(kenji.username.as_deref(), Some("kenji"));
        assert_eq!(kenji.email.as_deref(), Some("kenji@example.com"));
        assert_eq!(kenji.instance_id.as_deref(), Some("i-1"));
        assert!(kenji.privileged, "Admin holds Users.Edit");
        let held = kenji.security_profiles.as_ref().unwrap();
        assert_eq!(held[0].grant.basis, GrantBasis::BeforeTrail);
        let temp = rows.iter().find(|r| r.user_id == GONE).unwrap();
        assert_eq!(
            temp.deleted_after,
            Some(t("2024-05-09T00:00:00Z")),
            "in, and marked"
        );
        assert!(
            !temp.privileged,
            "Agent's permissions are not known and it is not named Admin"
        );
        // After the deletion: left out.
        let later = entitlements(
            t("2024-05-10T00:00:00Z"),
            &history,
            &Tracker::new(),
            &grants,
            &FindingRules::default(),
            &NoNames,
        );
        assert_eq!(later.len(), 1);
    }
}
