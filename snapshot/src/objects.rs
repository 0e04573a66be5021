//! The objects a snapshot writes: one per user, profile and group, and one change log per run.
//!
//! Field names are PascalCase, as Connect's API names them, and each object is one JSON
//! object on one line (the classic Athena table over `users/` uses the openx JsonSerDe, which
//! reads one object per line). Absent values are left out rather than written as `null`.
//! Fields this version does not know (from an older tool, or a newer version) are kept as
//! they are when an object is rewritten.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `users/<id>.json`.
///
/// `Arn`, `Id` and `Username` come first, as the old recipe wrote them. The `DescribeUser`
/// fields (`Email` … `HierarchyGroupId`) are present once a run with `describe_users` has
/// described the user; a later run without it keeps them as they were.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UserObject {
    /// The user's ARN (`…:instance/<i>/agent/<id>`).
    #[serde(default)]
    pub arn: String,
    /// The user id (a UUID; also the object's file name).
    pub id: String,
    /// The username.
    pub username: String,
    /// The bare id of the instance the user belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// When Connect last changed the user (RFC 3339), as ListUsers reports it. Kept as any
    /// JSON value, so objects written by other tools (epoch numbers) still read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified_time: Option<Value>,
    /// The region of that last change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified_region: Option<String>,
    /// `IdentityInfo.Email` (DescribeUser).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// `IdentityInfo.FirstName` (DescribeUser).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// `IdentityInfo.LastName` (DescribeUser).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// The user's security profiles (DescribeUser). Present (possibly empty) exactly when the
    /// user has been described.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_profile_ids: Option<Vec<String>>,
    /// The user's routing profile (DescribeUser).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_profile_id: Option<String>,
    /// The user's hierarchy group (DescribeUser), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hierarchy_group_id: Option<String>,
    /// The time of the run that first wrote this object (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
    /// The time of the last run known to have seen the user as recorded here: the run that
    /// last wrote the object, or, for a deleted user, the last run that still listed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
    /// Whether the user is gone from ListUsers.
    #[serde(default)]
    pub deleted: bool,
    /// The time of the first run that no longer listed the user: it was deleted between
    /// `LastSeen` and `DeletedAt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
    /// Fields this version does not write, kept as found.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// `security-profiles/<id>.json`, `routing-profiles/<id>.json`, `hierarchy-groups/<id>.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResourceObject {
    /// The ARN.
    #[serde(default)]
    pub arn: String,
    /// The id (a UUID; also the object's file name).
    pub id: String,
    /// The name.
    pub name: String,
    /// The bare id of the instance it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// When Connect last changed it (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified_time: Option<Value>,
    /// The region of that last change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified_region: Option<String>,
    /// As [`UserObject::first_seen`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
    /// As [`UserObject::last_seen`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
    /// Whether it is gone from its list call.
    #[serde(default)]
    pub deleted: bool,
    /// As [`UserObject::deleted_at`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
    /// Fields this version does not write, kept as found.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// What a snapshot keeps about every kind of object, so one diff routine serves all four.
pub(crate) trait SnapshotObject:
    Clone + PartialEq + Serialize + for<'de> Deserialize<'de>
{
    fn id(&self) -> &str;
    fn name(&self) -> &str;
    fn arn(&self) -> &str;
    fn instance_id(&self) -> Option<&str>;
    fn seen(&mut self) -> (&mut Option<String>, &mut Option<String>);
    fn deletion(&mut self) -> (&mut bool, &mut Option<String>);
    fn is_deleted(&self) -> bool;
}

macro_rules! snapshot_object {
    ($t:ty, $name:ident) => {
        impl SnapshotObject for $t {
            fn id(&self) -> &str {
                &self.id
            }
            fn name(&self) -> &str {
                &self.$name
            }
            fn arn(&self) -> &str {
                &self.arn
            }
            fn instance_id(&self) -> Option<&str> {
                self.instance_id.as_deref()
            }
            fn seen(&mut self) -> (&mut Option<String>, &mut Option<String>) {
                (&mut self.first_seen, &mut self.last_seen)
            }
            fn deletion(&mut self) -> (&mut bool, &mut Option<String>) {
                (&mut self.deleted, &mut self.deleted_at)
            }
            fn is_deleted(&self) -> bool {
                self.deleted
            }
        }
    };
}

snapshot_object!(UserObject, username);
snapshot_object!(ResourceObject, name);

/// One user or resource named in a run's change log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChangeEntry {
    /// The id.
    pub id: String,
    /// The username or name (for a removed one: the last known).
    pub name: String,
    /// For a change: the fields that changed (`Username`, `Email`, `Deleted`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// For a rename: the name before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_name: Option<String>,
}

/// The changes of one kind of object in one instance, in a run's change log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChangeLog {
    /// New objects.
    pub added: Vec<ChangeEntry>,
    /// Objects rewritten because something changed (including a deleted one listed again).
    pub changed: Vec<ChangeEntry>,
    /// Objects newly marked `Deleted`.
    pub removed: Vec<ChangeEntry>,
    /// Objects listed and unchanged (not rewritten).
    pub unchanged: u64,
}

/// One instance in a run's change log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InstanceLog {
    /// The bare instance id.
    pub instance_id: String,
    /// The region its API was called in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The account, when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Users ListUsers returned.
    pub users_listed: u64,
    /// User changes.
    pub users: ChangeLog,
    /// Security profile changes.
    pub security_profiles: ChangeLog,
    /// Routing profile changes.
    pub routing_profiles: ChangeLog,
    /// Hierarchy group changes.
    pub hierarchy_groups: ChangeLog,
}

/// `runs/<YYYYMMDDTHHMMSSZ>.json`: what one snapshot run saw and changed.
///
/// Only instances that were snapshotted completely are listed; a run that failed says why
/// in `Error`. Every instance listed here was seen whole at `RunAt`, so a user object with
/// `Deleted: false` was present at the time of every later run log that lists its instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunLog {
    /// When the run started (RFC 3339, UTC, whole seconds; the key's timestamp).
    pub run_at: String,
    /// Whether DescribeUser was called.
    pub describe_users: bool,
    /// The instances done.
    pub instances: Vec<InstanceLog>,
    /// Object writes (users, profiles, groups; this log not counted).
    pub object_puts: u64,
    /// Why the run stopped early, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
