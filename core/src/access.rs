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

use crate::change::State;
use crate::history::Version;
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

    /// One decoded row (the change stage's output), in event-time order. Gives how many
    /// profiles the row gave (0 for most rows).
    pub fn feed(&mut self, record: &AuditRecord) -> usize {
        if record.error_code.is_some() || record.target_kind != TargetKind::User {
            return 0;
        }
        let Some(user) = record.target_id.as_deref().map(str::to_ascii_lowercase) else {
            return 0;
        };
        if record.event_name == "DeleteUser" {
            self.users.remove(&user);
            return 0;
        }
        let Some(after) = ids(record.after.as_deref(), "security_profiles") else {
            return 0;
        };
        let before = ids(record.before.as_deref(), "security_profiles");
        let created = record.event_name == "CreateUser";
        let by = actor(record);
        let held = self.users.entry(user).or_default();
        let mut now = BTreeMap::new();
        let mut gave = 0;
        for p in after {
            let given = created || before.as_ref().is_some_and(|b| !b.contains(&p));
            gave += usize::from(given);
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
        gave
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

impl HeldProfile {
    /// Its name, else its id.
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }
}

/// The last change the trail read shows to a user (a successful call whose effect the change
/// stage decodes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastChange {
    /// When.
    pub at: Timestamp,
    /// The call, e.g. `UpdateUserSecurityProfiles`.
    pub event_name: String,
    /// Who made it (the row's actor: name, else id, else ARN).
    pub by: Option<String>,
    /// Its CloudTrail event id.
    pub event_id: String,
}

/// One row of an access review: a user of an instance as of the review time.
///
/// Field order is the order of the JSON Lines objects; [`ENTITLEMENT_COLUMNS`] are the
/// flat columns of CSV and the HTML table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entitlement {
    /// The review time.
    pub review_at: Timestamp,
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
    /// The security profiles held, each named and with its grant; `None` when not known.
    pub security_profiles: Option<Vec<HeldProfile>>,
    /// Whether any held profile is privileged.
    pub privileged: bool,
    /// The routing profile's name (else id) as of the review time.
    pub routing_profile: Option<String>,
    /// The hierarchy group's path (`Japan › Tokyo`) as of the review time.
    pub hierarchy_group: Option<String>,
    /// The last change to the user the trail read shows; `None`: none in the read.
    pub last_change: Option<LastChange>,
    /// Sign-ins (`GetFederationToken`) of the user the trail shows in the review period.
    pub sign_ins_in_period: u64,
    /// The last of them.
    pub last_sign_in: Option<Timestamp>,
    /// When a snapshot run first found the user gone, if after the review time.
    pub deleted_after: Option<Timestamp>,
    /// The snapshot observation the row rests on: when the newest snapshot version of the
    /// user at or before the review time was observed; `None` when no snapshot saw the user
    /// (created in the trail read).
    pub snapshot_at: Option<Timestamp>,
    /// The trail span read (`trail_from` ..  the review time), every event of which was
    /// applied to that version in event-time order.
    pub trail_from: Timestamp,
}

/// The flat columns of an [`Entitlement`], in output order (CSV, the HTML table). The last
/// two are the reviewer's, written empty.
pub const ENTITLEMENT_COLUMNS: [&str; 24] = [
    "review_at",
    "instance_id",
    "user_id",
    "username",
    "first_name",
    "last_name",
    "email",
    "security_profiles",
    "privileged",
    "privileged_profiles",
    "grants",
    "routing_profile",
    "hierarchy_group",
    "last_change_at",
    "last_change_event",
    "last_change_by",
    "last_change_event_id",
    "sign_ins_in_period",
    "last_sign_in",
    "deleted_after",
    "snapshot_at",
    "trail_from",
    "decision",
    "decision_note",
];

impl Entitlement {
    /// The text of a column of [`ENTITLEMENT_COLUMNS`], times shown by `time` (RFC 3339 in
    /// UTC, or in a zone); `None` for a null (and for the reviewer's columns).
    pub fn column(&self, name: &str, time: &dyn Fn(Timestamp) -> String) -> Option<String> {
        let s = |v: &Option<String>| v.clone();
        let held = || self.security_profiles.as_deref().unwrap_or_default();
        let names = |privileged_only: bool| {
            self.security_profiles.as_ref().map(|_| {
                held()
                    .iter()
                    .filter(|p| !privileged_only || p.privileged)
                    .map(HeldProfile::label)
                    .collect::<Vec<_>>()
                    .join("; ")
            })
        };
        match name {
            "review_at" => Some(time(self.review_at)),
            "instance_id" => s(&self.instance_id),
            "user_id" => Some(self.user_id.clone()),
            "username" => s(&self.username),
            "first_name" => s(&self.first_name),
            "last_name" => s(&self.last_name),
            "email" => s(&self.email),
            "security_profiles" => names(false),
            "privileged" => Some(self.privileged.to_string()),
            "privileged_profiles" => names(true),
            "grants" => self.security_profiles.as_ref().map(|_| {
                held()
                    .iter()
                    .map(|p| format!("{}: {}", p.label(), grant_text(&p.grant, time)))
                    .collect::<Vec<_>>()
                    .join("; ")
            }),
            "routing_profile" => s(&self.routing_profile),
            "hierarchy_group" => s(&self.hierarchy_group),
            "last_change_at" => self.last_change.as_ref().map(|c| time(c.at)),
            "last_change_event" => self.last_change.as_ref().map(|c| c.event_name.clone()),
            "last_change_by" => self.last_change.as_ref().and_then(|c| c.by.clone()),
            "last_change_event_id" => self.last_change.as_ref().map(|c| c.event_id.clone()),
            "sign_ins_in_period" => Some(self.sign_ins_in_period.to_string()),
            "last_sign_in" => self.last_sign_in.map(time),
            "deleted_after" => self.deleted_after.map(time),
            "snapshot_at" => self.snapshot_at.map(time),
            "trail_from" => Some(time(self.trail_from)),
            _ => None,
        }
    }
}

/// `granted by alice at 2024-05-02T09:14:02Z (event e1)`, `before trail`, `unknown`.
pub fn grant_text(grant: &Grant, time: &dyn Fn(Timestamp) -> String) -> String {
    match grant.basis {
        GrantBasis::Trail => format!(
            "granted by {} at {} (event {})",
            grant.by.as_deref().unwrap_or("an unknown actor"),
            grant.at.map(time).unwrap_or_default(),
            grant.event_id.as_deref().unwrap_or("?")
        ),
        basis => basis.as_str().to_owned(),
    }
}

/// The counts of one instance in an access review.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InstanceSummary {
    /// The instance; `None` for users whose instance is not known.
    pub instance_id: Option<String>,
    /// Users as of the review time (rows).
    pub users: u64,
    /// Of those, holding a privileged profile.
    pub privileged_holders: u64,
    /// Security profiles given to users in the review period (each profile of each call).
    pub grants_in_period: u64,
    /// Calls in the period that gave their own actor a profile, a permission or a group
    /// (the `self_grant` finding).
    pub self_grants_in_period: u64,
    /// Users the trail shows no sign-in of in the period.
    pub without_sign_in: u64,
    /// Users created in the period.
    pub created_in_period: u64,
    /// Users in the review whom a later snapshot found deleted.
    pub deleted_after: u64,
}

/// What an access review found: its rows and its summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessReview {
    /// The summary.
    pub summary: ReviewSummary,
    /// The rows, by instance, then username, then id.
    pub rows: Vec<Entitlement>,
}

impl AccessReview {
    /// Keeps the rows (and the summaries) of these instances only; none given keeps all. A
    /// row whose instance is not known is left out of a limited review.
    pub fn limit_to(&mut self, instances: &[String]) {
        if instances.is_empty() {
            return;
        }
        let kept = |instance: Option<&String>| {
            instance.is_some_and(|i| instances.iter().any(|l| l.eq_ignore_ascii_case(i)))
        };
        self.rows.retain(|r| kept(r.instance_id.as_ref()));
        self.summary
            .instances
            .retain(|s| kept(s.instance_id.as_ref()));
    }
}

/// An access review's time, period, trail read and counts per instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReviewSummary {
    /// The review time.
    pub at: Timestamp,
    /// The review period (`since` .. the review time).
    pub since: Timestamp,
    /// Where the trail read began: the last snapshot observation at or before the period's
    /// start (or the period's start, without one).
    pub trail_from: Timestamp,
    /// Per instance, in order.
    pub instances: Vec<InstanceSummary>,
}

/// An access review in the making: fed the change stage's rows of the trail read (from
/// `trail_from` to the review time) in event-time order, then [`finish`](Self::finish)ed
/// with the state they left.
#[derive(Debug, Clone)]
pub struct Review {
    since: Timestamp,
    at: Timestamp,
    trail_from: Timestamp,
    grants: Grants,
    last_change: HashMap<String, LastChange>,
    /// Per user: sign-ins in the period and the last one.
    sign_ins: HashMap<String, (u64, Timestamp)>,
    /// Per user: the instance its rows name.
    instance_of: HashMap<String, String>,
    /// Per user: the name its rows give (a user the trail created has no other).
    names: HashMap<String, String>,
    /// Per instance (`""`: unknown): grants, self-grants, users created in the period.
    period: BTreeMap<String, [u64; 3]>,
}

impl Review {
    /// A review as of `at` of the period from `since`, reading the trail from `trail_from`;
    /// the profiles every user held in the snapshot version of `trail_from` are known to be
    /// held then ([`Grants::held_at_start`]).
    pub fn new(
        since: Timestamp,
        at: Timestamp,
        trail_from: Timestamp,
        history: &crate::history::History,
    ) -> Self {
        let mut grants = Grants::new();
        for id in history.ids(TargetKind::User) {
            if let Some(v) = history
                .at(TargetKind::User, id, trail_from)
                .filter(|v| !v.deleted)
            {
                grants.held_at_start(id, &profile_ids(&v.state));
            }
        }
        Self {
            since,
            at,
            trail_from,
            grants,
            last_change: HashMap::new(),
            sign_ins: HashMap::new(),
            instance_of: HashMap::new(),
            names: HashMap::new(),
            period: BTreeMap::new(),
        }
    }

    /// One row of the trail read, in event-time order.
    pub fn feed(&mut self, record: &AuditRecord) {
        if record.event_time >= self.at {
            return;
        }
        let gave = self.grants.feed(record);
        let in_period = record.event_time >= self.since;
        let instance = record
            .instance_id
            .as_deref()
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        if in_period {
            let counts = self.period.entry(instance.clone()).or_default();
            counts[0] += gave as u64;
            if record.error_code.is_none() {
                counts[1] += u64::from(record.findings.iter().any(|f| f == "self_grant"));
                counts[2] += u64::from(
                    record.event_name == "CreateUser" && record.target_kind == TargetKind::User,
                );
            }
        }
        if record.error_code.is_some() || record.target_kind != TargetKind::User {
            return;
        }
        let Some(user) = record.target_id.as_deref().map(str::to_ascii_lowercase) else {
            return;
        };
        if !instance.is_empty() {
            self.instance_of.insert(user.clone(), instance);
        }
        if let Some(name) = &record.target_name {
            self.names.insert(user.clone(), name.clone());
        }
        if record.event_name == "GetFederationToken" {
            if in_period {
                let seen = self.sign_ins.entry(user).or_insert((0, record.event_time));
                seen.0 += 1;
                seen.1 = seen.1.max(record.event_time);
            }
        } else if crate::change::rule(&record.event_name).is_some() {
            self.last_change.insert(
                user,
                LastChange {
                    at: record.event_time,
                    event_name: record.event_name.clone(),
                    by: actor(record),
                    event_id: record.event_id.clone(),
                },
            );
        }
    }

    /// The rows of the users as of the review time and the summary per instance: every user
    /// the snapshot history holds then (not gone) and every user the trail read created,
    /// their state from `tracker` (the state the trail read left) and the newest snapshot
    /// version observed by then; names as `namer` gives them as of the review time.
    pub fn finish(
        self,
        history: &crate::history::History,
        tracker: &crate::change::Tracker,
        rules: &crate::findings::FindingRules,
        namer: &dyn crate::change::Namer,
    ) -> AccessReview {
        let at = self.at;
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
        let sources = Sources {
            history,
            tracker,
            rules,
            namer,
        };
        let mut rows: Vec<Entitlement> = ids
            .into_iter()
            .filter_map(|id| self.entitlement(id, &sources))
            .collect();
        rows.sort_by(|a, b| {
            (&a.instance_id, &a.username, &a.user_id).cmp(&(
                &b.instance_id,
                &b.username,
                &b.user_id,
            ))
        });
        AccessReview {
            summary: ReviewSummary {
                at,
                since: self.since,
                trail_from: self.trail_from,
                instances: self.instances(&rows),
            },
            rows,
        }
    }

    /// The state of user `id` as of the review time, and its snapshot version then; `None`
    /// when it is not a user then (deleted by the trail read, or found gone by a snapshot run
    /// after the trail's last change to it).
    fn state_of<'h>(&self, id: &str, s: &Sources<'h>) -> Option<(State, Option<&'h Version>)> {
        let version = s.history.at(TargetKind::User, id, self.at);
        let tracked = s.tracker.state(TargetKind::User, id);
        if s.tracker.knows(TargetKind::User, id) && tracked.is_none() {
            return None;
        }
        let last = self.last_change.get(&id.to_ascii_lowercase()).map(|c| c.at);
        let snapshot_newer = |v: &Version| last.is_none_or(|l| v.observed_at >= l);
        if version.is_some_and(|v| v.deleted && snapshot_newer(v)) {
            return None;
        }
        let version = version.filter(|v| !v.deleted);
        // A version observed after the trail's last change to the user holds every attribute
        // it has (and what the trail did not record). Else the version, with the attributes
        // the trail set since (not those the trail's state took from an older version).
        let state = match (tracked, version) {
            (None, v) => v.map(|v| v.state.clone()).unwrap_or_default(),
            (Some(t), None) => t.clone(),
            (Some(t), Some(v)) if snapshot_newer(v) => {
                let mut state = t.clone();
                state.extend(v.state.iter().map(|(a, value)| (a.clone(), value.clone())));
                state
            }
            (Some(t), Some(v)) => {
                let mut state = v.state.clone();
                for (attr, value) in t {
                    if s.tracker.set_by_trail(TargetKind::User, id, attr).is_some() {
                        state.insert(attr.clone(), value.clone());
                    }
                }
                state
            }
        };
        Some((state, version))
    }

    /// The row of user `id`, if a user as of the review time.
    fn entitlement(&self, id: String, s: &Sources<'_>) -> Option<Entitlement> {
        let at = self.at;
        let (state, version) = self.state_of(&id, s)?;
        let key = id.to_ascii_lowercase();
        let text = |state: &State, field: &str| {
            state
                .get("identity")?
                .get(field)?
                .as_str()
                .filter(|v| *v != crate::change::HIDDEN)
                .map(str::to_owned)
        };
        // An identity field the trail hid (`HIDDEN_DUE_TO_SECURITY_REASONS`) after the
        // snapshot saw it is not known (the snapshot's value is older than the change).
        let identity = |field: &str| text(&state, field);
        let security_profiles = self.held(&id, &state, s);
        let name_of = |attr: &str, kind: TargetKind| {
            let id = state.get(attr)?.as_str()?;
            Some(match kind {
                TargetKind::HierarchyGroup => s
                    .namer
                    .group_path(id)
                    .map_or_else(|| id.to_owned(), |p| p.join(" › ")),
                _ => s.namer.name(kind, id).unwrap_or_else(|| id.to_owned()),
            })
        };
        let sign_ins = self.sign_ins.get(&key);
        Some(Entitlement {
            review_at: at,
            instance_id: version
                .and_then(|v| v.instance.clone())
                .or_else(|| self.instance_of.get(&key).cloned()),
            username: s
                .history
                .name_at(TargetKind::User, &id, at)
                .map(str::to_owned)
                .or_else(|| self.names.get(&key).cloned())
                .or_else(|| s.namer.name(TargetKind::User, &id)),
            first_name: identity("first_name"),
            last_name: identity("last_name"),
            email: identity("email"),
            privileged: security_profiles
                .as_ref()
                .is_some_and(|held| held.iter().any(|h| h.privileged)),
            security_profiles,
            routing_profile: name_of("routing_profile", TargetKind::RoutingProfile),
            hierarchy_group: name_of("hierarchy_group", TargetKind::HierarchyGroup),
            last_change: self.last_change.get(&key).cloned(),
            sign_ins_in_period: sign_ins.map_or(0, |s| s.0),
            last_sign_in: sign_ins.map(|s| s.1),
            deleted_after: deleted_after(s.history, &id, at),
            snapshot_at: version.map(|v| v.observed_at),
            trail_from: self.trail_from,
            user_id: id,
        })
    }

    /// The profiles `state` holds, named, judged and with their grants, by name; `None` when
    /// the state does not say (a user never described).
    fn held(&self, id: &str, state: &State, s: &Sources<'_>) -> Option<Vec<HeldProfile>> {
        let held_at_start: Vec<String> = s
            .history
            .at(TargetKind::User, id, self.trail_from)
            .filter(|v| !v.deleted)
            .map(|v| profile_ids(&v.state))
            .unwrap_or_default();
        let mut held: Vec<HeldProfile> = state
            .get("security_profiles")?
            .as_array()?
            .iter()
            .filter_map(Value::as_str)
            .map(|p| HeldProfile {
                id: p.to_owned(),
                name: s.namer.name(TargetKind::SecurityProfile, p),
                privileged: privileged(p, self.at, s),
                grant: self.grants.grant_or(
                    id,
                    p,
                    held_at_start.iter().any(|h| h.eq_ignore_ascii_case(p)),
                ),
            })
            .collect();
        held.sort_by(|a, b| (a.label(), &a.id).cmp(&(b.label(), &b.id)));
        Some(held)
    }

    /// The summary per instance of `rows` and of the calls in the period.
    fn instances(&self, rows: &[Entitlement]) -> Vec<InstanceSummary> {
        let mut instances: BTreeMap<Option<String>, InstanceSummary> = BTreeMap::new();
        let entry = |instances: &mut BTreeMap<Option<String>, InstanceSummary>,
                     key: Option<String>| {
            instances
                .entry(key.clone())
                .or_insert_with(|| InstanceSummary {
                    instance_id: key,
                    ..InstanceSummary::default()
                })
                .clone()
        };
        for row in rows {
            let mut s = entry(&mut instances, row.instance_id.clone());
            s.users += 1;
            s.privileged_holders += u64::from(row.privileged);
            s.without_sign_in += u64::from(row.sign_ins_in_period == 0);
            s.deleted_after += u64::from(row.deleted_after.is_some());
            instances.insert(row.instance_id.clone(), s);
        }
        for (instance, [grants, self_grants, created]) in &self.period {
            let key = (!instance.is_empty()).then(|| instance.clone());
            let mut s = entry(&mut instances, key.clone());
            s.grants_in_period += grants;
            s.self_grants_in_period += self_grants;
            s.created_in_period += created;
            instances.insert(key, s);
        }
        instances.into_values().collect()
    }
}

/// What [`Review::finish`] reads besides the review: the history, the state the trail read
/// left, the rules of privilege and the names as of the review time.
struct Sources<'a> {
    history: &'a crate::history::History,
    tracker: &'a crate::change::Tracker,
    rules: &'a crate::findings::FindingRules,
    namer: &'a dyn crate::change::Namer,
}

/// When a snapshot run first found user `id` gone after `at`, if one did.
fn deleted_after(history: &crate::history::History, id: &str, at: Timestamp) -> Option<Timestamp> {
    let mut t = at;
    while let Some(next) = history.after(TargetKind::User, id, t) {
        if next.deleted {
            return Some(next.observed_at);
        }
        t = next.observed_at;
    }
    None
}

/// The security profile ids of a user's state.
fn profile_ids(state: &crate::change::State) -> Vec<String> {
    state
        .get("security_profiles")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The row's actor: name, else id, else ARN.
fn actor(record: &AuditRecord) -> Option<String> {
    record
        .actor_name
        .clone()
        .or_else(|| record.actor_id.clone())
        .or_else(|| record.actor_arn.clone())
}

/// Whether security profile `profile` is privileged as of `at`: by its permissions (as the
/// trail left them, else the snapshot version of then), else by its name.
fn privileged(profile: &str, at: Timestamp, s: &Sources<'_>) -> bool {
    let sp = TargetKind::SecurityProfile;
    let permissions = s
        .tracker
        .state(sp, profile)
        .and_then(|state| state.get("permissions"))
        .or_else(|| s.history.at(sp, profile, at)?.state.get("permissions"))
        .and_then(Value::as_array);
    match permissions {
        Some(list) => list
            .iter()
            .filter_map(Value::as_str)
            .any(|p| s.rules.privileged_permissions.iter().any(|q| q == p)),
        None => s
            .namer
            .name(sp, profile)
            .is_some_and(|n| s.rules.privileged_profiles.contains(&n)),
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
        let review = |since: &str, at: &str, rows: &[AuditRecord]| {
            let mut r = Review::new(t(since), t(at), t("2024-05-01T00:00:00Z"), &history);
            for row in rows {
                r.feed(row);
            }
            r.finish(
                &history,
                &Tracker::new(),
                &FindingRules::default(),
                &NoNames,
            )
        };
        // Sign-ins in the period count; one before it does not; a self-grant and a grant in
        // the period are counted for the instance.
        let sign_in = |n: u32| {
            let mut r = row(n, "GetFederationToken", None, None, "kenji");
            r.category = Category::SignIn;
            r.instance_id = Some("i-1".into());
            r
        };
        let mut grant = row(
            4,
            "UpdateUserSecurityProfiles",
            Some(profiles(&["admin"])),
            Some(profiles(&["admin", "agent"])),
            "kenji",
        );
        grant.findings = vec!["self_grant".into()];
        grant.instance_id = Some("i-1".into());
        let done = review(
            "2024-05-02T00:00:00Z",
            "2024-05-05T00:00:00Z",
            &[sign_in(1), sign_in(3), grant.clone()],
        );
        let rows = &done.rows;
        assert_eq!(rows.len(), 2);
        assert_eq!(
            done.summary.instances,
            [InstanceSummary {
                instance_id: Some("i-1".into()),
                users: 2,
                privileged_holders: 1,
                grants_in_period: 1,
                self_grants_in_period: 1,
                without_sign_in: 1,
                created_in_period: 0,
                deleted_after: 1,
            }]
        );
        let kenji = rows.iter().find(|r| r.user_id == U).unwrap();
        assert_eq!(kenji.username.as_deref(), Some("kenji"));
        assert_eq!(kenji.email.as_deref(), Some("kenji@example.com"));
        assert_eq!(kenji.instance_id.as_deref(), Some("i-1"));
        assert!(kenji.privileged, "Admin holds Users.Edit");
        assert_eq!(
            (kenji.sign_ins_in_period, kenji.last_sign_in),
            (1, Some(t("2024-05-03T09:00:00Z")))
        );
        assert_eq!(kenji.last_change.as_ref().unwrap().event_id, "e4");
        let held = kenji.security_profiles.as_ref().unwrap();
        assert_eq!(held[0].grant.basis, GrantBasis::BeforeTrail);
        let time = |t: Timestamp| t.to_string();
        assert_eq!(
            kenji.column("grants", &time).as_deref(),
            Some("admin: before trail"),
            "the tracker was not fed: the state is the snapshot's"
        );
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
        let later = review("2024-05-02T00:00:00Z", "2024-05-10T00:00:00Z", &[]);
        assert_eq!(later.rows.len(), 1);
        assert_eq!(later.summary.instances[0].without_sign_in, 1);
    }
}
