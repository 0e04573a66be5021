//! The findings: documented rules a row can trip, each with a code written in the row's
//! `findings` column. Fed the rows in event-time order (the change stage does), with what
//! each row changed ([`crate::change`]).
//!
//! | code | the row |
//! |---|---|
//! | `self_grant` | gives its own actor a security profile, a permission (to a profile the actor holds) or a hierarchy group: the same Connect user id, or an IAM or SSO session whose name is the target's Connect username |
//! | `privileged_grant` | gives a user a privileged security profile (one holding a permission of [`FindingRules::privileged_permissions`]), or adds such a permission to a profile |
//! | `privileged_by_name` | beside `privileged_grant`: the profile's permissions are not known here, so it was judged by its name ([`FindingRules::privileged_profiles`]) |
//! | `short_lived_user` | deletes a user created within [`FindingRules::short_lived`] before |
//! | `identity_change_then_sign_in` | is a sign-in (`GetFederationToken`) of a user whose e-mail someone else changed within the day before |
//! | `break_glass_change` | is a change made within [`FindingRules::break_glass_window`] after `AdminGetEmergencyAccessToken` by the same actor |
//! | `failed_escalation` | is a failed call that would have been a `privileged_grant` or a `self_grant` |

use std::collections::HashMap;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::change::{Decoded, Namer, Tracker};
use crate::record::{ActorKind, AuditRecord, Category, TargetKind};

/// The permissions that make a security profile privileged by default: the administration of
/// users, security profiles and routing.
pub const PRIVILEGED_PERMISSIONS: &[&str] = &[
    "Users.Create",
    "Users.Edit",
    "Users.EditPermission",
    "Users.Delete",
    "SecurityProfiles.Create",
    "SecurityProfiles.Edit",
    "SecurityProfiles.Delete",
    "RoutingPolicies.Create",
    "RoutingPolicies.Edit",
    "RoutingPolicies.Delete",
];

/// The rules' settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingRules {
    /// Permissions that make a profile privileged. Default: [`PRIVILEGED_PERMISSIONS`].
    pub privileged_permissions: Vec<String>,
    /// Names of profiles taken as privileged when their permissions are not known.
    /// Default: `["Admin"]`.
    pub privileged_profiles: Vec<String>,
    /// A user deleted this soon after being created is short-lived. Default: 24 hours.
    pub short_lived: SignedDuration,
    /// Changes this soon after an emergency access token are break-glass changes.
    /// Default: 4 hours.
    pub break_glass_window: SignedDuration,
}

impl Default for FindingRules {
    fn default() -> Self {
        Self {
            privileged_permissions: PRIVILEGED_PERMISSIONS
                .iter()
                .map(|p| (*p).to_owned())
                .collect(),
            privileged_profiles: vec!["Admin".to_owned()],
            short_lived: SignedDuration::from_hours(24),
            break_glass_window: SignedDuration::from_hours(4),
        }
    }
}

/// `[findings]`: the rules' settings as config has them. [`check`](Self::check) turns them into
/// [`FindingRules`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindingSettings {
    /// Permissions that make a security profile privileged. Default: the administration of
    /// users, security profiles and routing ([`PRIVILEGED_PERMISSIONS`]).
    #[serde(default = "default_permissions")]
    pub privileged_permissions: Vec<String>,
    /// Names of profiles taken as privileged when their permissions are not known.
    /// Default: `["Admin"]`.
    #[serde(default = "default_profiles")]
    pub privileged_profiles: Vec<String>,
    /// A user deleted this soon after it was created is short-lived: `24h`, `2d`.
    /// Default: `24h`.
    #[serde(default = "default_short_lived")]
    pub short_lived: String,
    /// Changes this soon after an emergency access token by the same actor are break-glass
    /// changes. Default: `4h`.
    #[serde(default = "default_break_glass")]
    pub break_glass_window: String,
}

fn default_permissions() -> Vec<String> {
    FindingRules::default().privileged_permissions
}

fn default_profiles() -> Vec<String> {
    FindingRules::default().privileged_profiles
}

fn default_short_lived() -> String {
    "24h".to_owned()
}

fn default_break_glass() -> String {
    "4h".to_owned()
}

impl Default for FindingSettings {
    fn default() -> Self {
        Self {
            privileged_permissions: default_permissions(),
            privileged_profiles: default_profiles(),
            short_lived: default_short_lived(),
            break_glass_window: default_break_glass(),
        }
    }
}

impl FindingSettings {
    /// The rules, or `problem(key, message)` for each setting that is not usable (keys
    /// `findings.…`). Pure.
    pub fn check(&self, problem: &mut impl FnMut(&str, String)) -> Option<FindingRules> {
        let mut ok = true;
        let mut duration = |key: &str, text: &str| {
            let parsed = crate::window::parse_duration(text).filter(|d| !d.is_zero());
            if parsed.is_none() {
                ok = false;
                problem(
                    key,
                    format!(
                        "`{}` is not a duration such as 90m, 24h or 2d",
                        text.escape_default()
                    ),
                );
            }
            parsed
        };
        let short_lived = duration("findings.short_lived", &self.short_lived);
        let break_glass_window = duration("findings.break_glass_window", &self.break_glass_window);
        for (key, names) in [
            (
                "findings.privileged_permissions",
                &self.privileged_permissions,
            ),
            ("findings.privileged_profiles", &self.privileged_profiles),
        ] {
            for (i, name) in names.iter().enumerate() {
                if name.trim().is_empty() || name.chars().any(char::is_control) {
                    ok = false;
                    problem(
                        &format!("{key}[{i}]"),
                        format!("`{}` is not a name", name.escape_default()),
                    );
                }
            }
        }
        Some(FindingRules {
            privileged_permissions: self.privileged_permissions.clone(),
            privileged_profiles: self.privileged_profiles.clone(),
            short_lived: short_lived?,
            break_glass_window: break_glass_window?,
        })
        .filter(|_| ok)
    }
}

/// How long after someone else changed a user's e-mail a sign-in of that user is a finding.
const TAKEOVER_WINDOW: SignedDuration = SignedDuration::from_hours(24);

/// What the rules remember of earlier rows.
#[derive(Debug, Clone, Default)]
pub struct Findings {
    rules: FindingRules,
    /// User id → when a `CreateUser` of the scan created it.
    created: HashMap<String, Timestamp>,
    /// User id → when someone else last changed its e-mail.
    email_changed: HashMap<String, Timestamp>,
    /// Actor → when it last took an emergency access token.
    break_glass: HashMap<String, Timestamp>,
}

/// The profiles a row gives (ids), and the permissions it adds to a profile.
struct Given {
    profiles: Vec<String>,
    permissions: Vec<String>,
    group: bool,
}

impl Findings {
    /// No row seen yet.
    pub fn new(rules: FindingRules) -> Self {
        Self {
            rules,
            ..Self::default()
        }
    }

    /// The codes `record` trips, given its request, what it changed, and the state the
    /// change stage's [`Tracker`] knows (a profile's permissions, the profiles an actor
    /// holds); remembers what later rows need. Codes come in the order of the table above.
    pub fn check(
        &mut self,
        record: &AuditRecord,
        request: &Value,
        decoded: Option<&Decoded>,
        tracker: &Tracker,
        namer: &dyn Namer,
    ) -> Vec<String> {
        let mut codes: Vec<&str> = Vec::new();
        let failed = record.error_code.is_some();
        let target = record.target_id.as_deref().map(str::to_ascii_lowercase);
        let given = given(record, decoded);
        let is_self = given.as_ref().is_some_and(|given| {
            (Self::actor_is_target(record, target.as_deref())
                && (!given.profiles.is_empty() || given.group))
                || (!given.permissions.is_empty()
                    && Self::actor_holds(tracker, record, target.as_deref()))
        });
        let (privileged, by_name) = given.as_ref().map_or((false, false), |given| {
            self.privileged(given, tracker, namer)
        });
        if failed {
            if is_self || privileged {
                codes.push("failed_escalation");
            }
        } else {
            if is_self {
                codes.push("self_grant");
            }
            if privileged {
                codes.push("privileged_grant");
                if by_name {
                    codes.push("privileged_by_name");
                }
            }
        }
        if !failed {
            self.remember(record, request, decoded, target.as_deref(), &mut codes);
        }
        codes.into_iter().map(str::to_owned).collect()
    }

    /// Whether the actor is the user the row is about.
    fn actor_is_target(record: &AuditRecord, target: Option<&str>) -> bool {
        if record.target_kind != TargetKind::User {
            return false;
        }
        match record.actor_kind {
            ActorKind::ConnectUser => {
                record
                    .actor_id
                    .as_deref()
                    .map(str::to_ascii_lowercase)
                    .as_deref()
                    == target
                    && target.is_some()
            }
            ActorKind::Iam => record
                .actor_name
                .as_deref()
                .zip(record.target_name.as_deref())
                .is_some_and(|(actor, username)| actor.eq_ignore_ascii_case(username)),
            ActorKind::Service => false,
        }
    }

    /// Whether the actor (a Connect user) holds the security profile the row changes.
    fn actor_holds(tracker: &Tracker, record: &AuditRecord, profile: Option<&str>) -> bool {
        let (Some(actor), Some(profile)) = (record.actor_id.as_deref(), profile) else {
            return false;
        };
        record.actor_kind == ActorKind::ConnectUser
            && strings(tracker.state(TargetKind::User, actor), "security_profiles")
                .is_some_and(|held| held.iter().any(|p| p.eq_ignore_ascii_case(profile)))
    }

    /// Whether what is given is privileged, and whether that was judged by a profile's name.
    fn privileged(&self, given: &Given, tracker: &Tracker, namer: &dyn Namer) -> (bool, bool) {
        let privileged_permission =
            |p: &String| self.rules.privileged_permissions.iter().any(|q| q == p);
        if given.permissions.iter().any(privileged_permission) {
            return (true, false);
        }
        let mut by_name = false;
        for profile in &given.profiles {
            let known = strings(
                tracker.state(TargetKind::SecurityProfile, profile),
                "permissions",
            );
            match known {
                Some(permissions) if permissions.iter().any(privileged_permission) => {
                    return (true, false);
                }
                Some(_) => {}
                None => {
                    let name = namer.name(TargetKind::SecurityProfile, profile);
                    if name.is_some_and(|n| self.rules.privileged_profiles.contains(&n)) {
                        by_name = true;
                    }
                }
            }
        }
        (by_name, by_name)
    }

    /// Keeps what later rows are checked against, and adds the codes that complete on this row.
    fn remember(
        &mut self,
        record: &AuditRecord,
        request: &Value,
        decoded: Option<&Decoded>,
        target: Option<&str>,
        codes: &mut Vec<&str>,
    ) {
        let at = record.event_time;
        let actor = record
            .actor_arn
            .clone()
            .or_else(|| record.actor_id.clone())
            .unwrap_or_default();
        // A change: any audited call but the sign-ins and reads of the `sign_in` group.
        if record.category != Category::SignIn
            && self
                .break_glass
                .get(&actor)
                .is_some_and(|&t| at.duration_since(t) <= self.rules.break_glass_window)
        {
            codes.push("break_glass_change");
        }
        match (record.event_name.as_str(), target) {
            ("AdminGetEmergencyAccessToken", _) => {
                self.break_glass.insert(actor, at);
            }
            ("CreateUser", Some(user)) => {
                self.created.insert(user.to_owned(), at);
            }
            ("DeleteUser", Some(user)) => {
                let created = self.created.remove(user);
                if created.is_some_and(|t| at.duration_since(t) <= self.rules.short_lived) {
                    codes.push("short_lived_user");
                }
            }
            ("UpdateUserIdentityInfo", Some(user)) => {
                let by_someone_else = record.actor_kind != ActorKind::ConnectUser
                    || record
                        .actor_id
                        .as_deref()
                        .map(str::to_ascii_lowercase)
                        .as_deref()
                        != Some(user);
                // The request sets an e-mail that differs from the one known before (or none
                // was known): CloudTrail may hide the value, so any value set counts then.
                let set = request
                    .pointer("/IdentityInfo/Email")
                    .filter(|email| !email.is_null());
                let was = decoded
                    .and_then(|d| d.before.as_ref())
                    .and_then(|b| b.pointer("/identity/email"));
                let email_set = set.is_some_and(|email| {
                    email.as_str() == Some(crate::change::HIDDEN) || Some(email) != was
                });
                if by_someone_else && email_set {
                    self.email_changed.insert(user.to_owned(), at);
                }
            }
            ("GetFederationToken", _) => {
                let user = target
                    .map(str::to_owned)
                    .or_else(|| record.actor_id.as_deref().map(str::to_ascii_lowercase));
                if user
                    .and_then(|u| self.email_changed.get(&u))
                    .is_some_and(|&t| at.duration_since(t) <= TAKEOVER_WINDOW)
                {
                    codes.push("identity_change_then_sign_in");
                }
            }
            _ => {}
        }
    }
}

/// The strings of an array-valued attribute of a known state.
fn strings(state: Option<&crate::change::State>, attr: &str) -> Option<Vec<String>> {
    Some(
        state?
            .get(attr)?
            .as_array()?
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
    )
}

/// What a row gives: the security profiles it adds to a user, the permissions it adds to a
/// profile, whether it sets a user's hierarchy group. `None` for rows that give nothing.
fn given(record: &AuditRecord, decoded: Option<&Decoded>) -> Option<Given> {
    let decoded = decoded?;
    let ids = |value: Option<&Value>, key: &str| -> Vec<String> {
        value
            .and_then(|v| v.get(key))
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| item.get("id").and_then(Value::as_str).or(item.as_str()))
                    .map(str::to_ascii_lowercase)
                    .collect()
            })
            .unwrap_or_default()
    };
    let added = |key: &str| -> Vec<String> {
        let before = ids(decoded.before.as_ref(), key);
        ids(decoded.after.as_ref(), key)
            .into_iter()
            .filter(|id| !before.contains(id))
            .collect()
    };
    let given = match record.event_name.as_str() {
        "CreateUser" | "UpdateUserSecurityProfiles" => Given {
            profiles: added("security_profiles"),
            permissions: Vec::new(),
            group: false,
        },
        "CreateSecurityProfile" | "UpdateSecurityProfile" => Given {
            profiles: Vec::new(),
            // Permission names are kept as they are.
            permissions: decoded
                .after
                .as_ref()
                .and_then(|a| a.get("permissions"))
                .and_then(Value::as_array)
                .map(|items| {
                    let before: Vec<&Value> = decoded
                        .before
                        .as_ref()
                        .and_then(|b| b.get("permissions"))
                        .and_then(Value::as_array)
                        .map(|b| b.iter().collect())
                        .unwrap_or_default();
                    items
                        .iter()
                        .filter(|p| !before.contains(p))
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            group: false,
        },
        "UpdateUserHierarchy" => Given {
            profiles: Vec::new(),
            permissions: Vec::new(),
            group: decoded
                .after
                .as_ref()
                .and_then(|a| a.get("hierarchy_group"))
                .is_some_and(|g| !g.is_null()),
        },
        _ => return None,
    };
    Some(given)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::change::NoNames;

    const ADMIN: &str = "sp-admin";

    struct Names;

    impl Namer for Names {
        fn name(&self, _: TargetKind, id: &str) -> Option<String> {
            (id == ADMIN).then(|| "Admin".to_owned())
        }
    }

    /// A row of `event` by Connect user `actor` on user `target`, at minute `minute` of a day.
    fn row(event: &str, actor: &str, target: &str, minute: i64) -> AuditRecord {
        let at = Timestamp::UNIX_EPOCH + SignedDuration::from_mins(minute);
        let mut r = AuditRecord::new(at, format!("{event}-{minute}"), event, Category::User);
        r.actor_kind = ActorKind::ConnectUser;
        r.actor_id = Some(actor.to_owned());
        r.actor_name = Some(actor.to_owned());
        r.actor_arn = Some(format!("arn:{actor}"));
        r.target_kind = TargetKind::User;
        r.target_id = Some(target.to_owned());
        r.target_name = Some(target.to_owned());
        r
    }

    /// Runs rows through a tracker and the rules, as the change stage does; the codes of each.
    fn run(rows: &[(AuditRecord, serde_json::Value)]) -> Vec<Vec<String>> {
        let mut tracker = Tracker::new();
        let mut findings = Findings::new(FindingRules::default());
        rows.iter()
            .map(|(record, request)| {
                let decoded = tracker
                    .decode(
                        &record.event_name,
                        record.target_kind,
                        record.target_id.as_deref().unwrap_or_default(),
                        request,
                        record.error_code.is_some(),
                        &Names,
                    )
                    .map(|(decoded, transition)| {
                        tracker.advance(transition);
                        decoded
                    });
                findings.check(record, request, decoded.as_ref(), &tracker, &Names)
            })
            .collect()
    }

    #[test]
    fn settings_default_to_the_documented_rules_and_bad_ones_are_named() {
        let mut problems = Vec::new();
        let rules = FindingSettings::default()
            .check(&mut |k, m| problems.push(format!("{k}: {m}")))
            .unwrap();
        assert_eq!(rules, FindingRules::default());
        assert!(problems.is_empty());
        let bad = FindingSettings {
            short_lived: "soon".into(),
            break_glass_window: "0h".into(),
            privileged_profiles: vec![String::new()],
            ..FindingSettings::default()
        };
        assert!(
            bad.check(&mut |k, m| problems.push(format!("{k}: {m}")))
                .is_none()
        );
        assert_eq!(
            problems,
            [
                "findings.short_lived: `soon` is not a duration such as 90m, 24h or 2d",
                "findings.break_glass_window: `0h` is not a duration such as 90m, 24h or 2d",
                "findings.privileged_profiles[0]: `` is not a name",
            ]
        );
        let two_days = FindingSettings {
            short_lived: "2d".into(),
            ..FindingSettings::default()
        };
        let rules = two_days.check(&mut |_, _| {}).unwrap();
        assert_eq!(rules.short_lived, SignedDuration::from_hours(48));
    }

    #[test]
    fn self_and_privileged_grants_and_the_failed_ones() {
        let grant = json!({"SecurityProfileIds": [ADMIN]});
        let mut failed = row("UpdateUserSecurityProfiles", "hal", "hal", 2);
        failed.error_code = Some("AccessDeniedException".into());
        let codes = run(&[
            (
                row("UpdateUserSecurityProfiles", "bob", "bob", 1),
                grant.clone(),
            ),
            (failed, grant.clone()),
            (
                row("UpdateUserSecurityProfiles", "alice", "carol", 3),
                grant.clone(),
            ),
            (
                row("UpdateUserSecurityProfiles", "alice", "dan", 4),
                json!({"SecurityProfileIds": ["sp-agent"]}),
            ),
        ]);
        assert_eq!(
            codes[0],
            ["self_grant", "privileged_grant", "privileged_by_name"]
        );
        assert_eq!(codes[1], ["failed_escalation"]);
        assert_eq!(codes[2], ["privileged_grant", "privileged_by_name"]);
        assert!(codes[3].is_empty(), "{:?}", codes[3]);
    }

    #[test]
    fn a_privileged_permission_makes_a_profile_privileged_by_its_permissions() {
        let mut profile = row("CreateSecurityProfile", "alice", "sp-ops", 1);
        profile.target_kind = TargetKind::SecurityProfile;
        let codes = run(&[
            (
                profile,
                json!({"SecurityProfileName": "Ops", "Permissions": ["Users.Edit"]}),
            ),
            (
                row("UpdateUserSecurityProfiles", "alice", "erin", 2),
                json!({"SecurityProfileIds": ["sp-ops"]}),
            ),
        ]);
        assert_eq!(
            codes[0],
            ["privileged_grant"],
            "a privileged permission added"
        );
        assert_eq!(
            codes[1],
            ["privileged_grant"],
            "not by name: by its permissions"
        );
    }

    #[test]
    fn short_lived_users_break_glass_changes_and_takeovers() {
        let day = 24 * 60;
        let mut token = row("AdminGetEmergencyAccessToken", "root", "none", 10);
        token.target_kind = TargetKind::None;
        token.category = Category::SignIn;
        token.target_id = None;
        let mut email = row("UpdateUserIdentityInfo", "alice", "gus", 100);
        email.actor_id = Some("alice".into());
        let codes = run(&[
            (
                row("CreateUser", "alice", "fay", 0),
                json!({"Username": "fay"}),
            ),
            (row("DeleteUser", "alice", "fay", day - 1), json!({})),
            (
                row("CreateUser", "alice", "old", 0),
                json!({"Username": "old"}),
            ),
            (row("DeleteUser", "alice", "old", day + 1), json!({})),
            (token, json!({})),
            (
                row("UpdateUserRoutingProfile", "root", "gus", 10 + 3 * 60),
                json!({"RoutingProfileId": "rp"}),
            ),
            (
                row("UpdateUserRoutingProfile", "root", "gus", 10 + 5 * 60),
                json!({"RoutingProfileId": "rp2"}),
            ),
            (email, json!({"IdentityInfo": {"Email": "new@example.com"}})),
            (row("GetFederationToken", "gus", "gus", 200), json!({})),
            (
                row("GetFederationToken", "gus", "gus", 100 + day + 1),
                json!({}),
            ),
        ]);
        assert_eq!(codes[1], ["short_lived_user"]);
        assert!(codes[3].is_empty(), "deleted after more than a day");
        assert!(codes[4].is_empty());
        assert_eq!(codes[5], ["break_glass_change"]);
        assert!(codes[6].is_empty(), "more than 4 h after the token");
        assert!(codes[7].is_empty());
        assert_eq!(codes[8], ["identity_change_then_sign_in"]);
        assert!(codes[9].is_empty(), "more than a day after the change");
        let _ = NoNames;
    }
}
