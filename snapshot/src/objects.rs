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
    /// `IdentityInfo.SecondaryEmail` (DescribeUser).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary_email: Option<String>,
    /// `IdentityInfo.Mobile` (DescribeUser).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile: Option<String>,
    /// `PhoneConfig` (DescribeUser): `PhoneType`, `AutoAccept`, `AfterContactWorkTimeLimit`,
    /// `DeskPhoneNumber`, as the API names them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_config: Option<Value>,
    /// The user's tags (DescribeUser).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    /// The user's routing proficiencies (`ListUserProficiencies`), sorted by attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proficiencies: Option<Vec<Proficiency>>,
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
    /// Its tags (the `Describe…` call of its kind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    /// A security profile's permissions (`ListSecurityProfilePermissions`), sorted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
    /// A security profile's `AllowedAccessControlTags` (`DescribeSecurityProfile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_access_control_tags: Option<BTreeMap<String, String>>,
    /// A security profile's `TagRestrictedResources`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_restricted_resources: Option<Vec<String>>,
    /// A security profile's `HierarchyRestrictedResources`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hierarchy_restricted_resources: Option<Vec<String>>,
    /// A security profile's `AllowedAccessControlHierarchyGroupId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_access_control_hierarchy_group_id: Option<String>,
    /// A routing profile's queues (`ListRoutingProfileQueues`), sorted by queue and channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queues: Option<Vec<QueueConfig>>,
    /// A hierarchy group's level, `"1"` (top) to `"5"` (`DescribeUserHierarchyGroup`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level_id: Option<String>,
    /// A hierarchy group's path, top level first, ending with the group itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hierarchy_path: Option<Vec<PathLevel>>,
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

/// One routing proficiency of a user, as `ListUserProficiencies` gives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Proficiency {
    /// The predefined attribute.
    pub attribute_name: String,
    /// Its value.
    pub attribute_value: String,
    /// The level, 1.0 to 5.0.
    pub level: f64,
}

/// One queue of a routing profile, as `ListRoutingProfileQueues` gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueueConfig {
    /// The queue id.
    pub queue_id: String,
    /// `VOICE`, `CHAT`, `TASK` or `EMAIL`.
    pub channel: String,
    /// The order contacts are taken in (1 first).
    pub priority: i32,
    /// Seconds a contact waits in this queue before the profile takes it.
    pub delay: i32,
}

/// One level of a hierarchy group's path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PathLevel {
    /// The group id of that level.
    pub id: String,
    /// Its name when described.
    pub name: String,
}

impl ResourceObject {
    /// Whether the `Describe…` details of its kind are in the object (permissions of a
    /// security profile, queues of a routing profile, the path of a hierarchy group).
    pub(crate) fn has_details(&self, kind: connect_audit_core::TargetKind) -> bool {
        use connect_audit_core::TargetKind;
        match kind {
            TargetKind::SecurityProfile => self.permissions.is_some(),
            TargetKind::RoutingProfile => self.queues.is_some(),
            TargetKind::HierarchyGroup => self.hierarchy_path.is_some(),
            _ => true,
        }
    }
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
