//! The audit record as an [OCSF](https://schema.ocsf.io/1.3.0/) 1.3.0 event, for SIEMs and
//! security data lakes (`schema = "ocsf"` on the JSON Lines and Parquet exporters).
//!
//! [`to_ocsf_events`] maps one [`AuditRecord`] to its event, of one of three classes chosen by
//! what the call changed ([`classify`]), and for a `CreateUser` that gives the new user
//! privileges, a second event that grants them:
//!
//! | Events | Class | `activity_id` |
//! | --- | --- | --- |
//! | `user` group (`CreateUser`, `DeleteUser`, `UpdateUserIdentityInfo`, `UpdateUserPhoneConfig`, `UpdateUserConfig`) | Account Change (3001, IAM) | 1 Create, 6 Delete, 3 Password Change (an event name with `Password`), else 99 Other |
//! | `permissions` group (security profiles, routing profile, hierarchy, proficiencies, traffic distribution groups, workspaces of a user), and `AssociateSecurityProfiles` / `DisassociateSecurityProfiles` whose entity is a user | User Access Management (3005, IAM) | 1 Assign Privileges; 2 Revoke Privileges for `Disassociate…` and for `UpdateUserHierarchy` without a group; 99 Other, `activity_name = "Replace Privileges"`, for `UpdateUserSecurityProfiles`, which replaces the user's whole set (it may take profiles away as well as give them) |
//! | a successful `CreateUser` whose request gives `SecurityProfileIds`, `RoutingProfileId` or `HierarchyGroupId`: a second event after its Account Change | User Access Management (3005) | 1 Assign Privileges |
//! | a successful `UpdateUserSecurityProfiles` whose `before` the change stage knew (`change_basis` trail or snapshot): what it did, from the difference | User Access Management (3005) | 1 Assign Privileges of the profiles added, then 2 Revoke Privileges of those taken away (`metadata.uid` `<row key>/revoked`), each only when not empty |
//! | everything else (security profile, routing profile and hierarchy definitions, tags, agent status, instance, sign-in) | API Activity (6003, Application Activity) | 1 Create (`Create…`, `Replicate…`), 2 Read (`Get…`, `Describe…`, `List…`, `Search…`, `AdminGet…`), 4 Delete (`Delete…`), else 3 Update |
//!
//! Account Change and User Access Management both *require* the target `user`, so an event
//! of those groups whose target is not a named or identified Connect user (an
//! `AssociateSecurityProfiles` on another kind of entity, say) is an API Activity instead:
//! no event lacks a required attribute. Security profile *definitions* are API Activity for
//! the same reason (no user), with the profile in `resources`. Sign-ins
//! (`GetFederationToken`, `AdminGetEmergencyAccessToken`) are API Activity reads, not
//! Authentication (3002) logons: CloudTrail records the call that hands out a token, not the
//! logon, and says nothing of how the user authenticated.
//!
//! `type_uid` is `class_uid * 100 + activity_id`; `type_name` is `"<class>: <activity>"` with
//! the activity's OCSF caption (`Other` for 99). `severity_id` ([`severity_id`]):
//!
//! - 3 Medium: a successful grant or replacement of security-profile permissions
//!   (`UpdateUserSecurityProfiles`, `AssociateSecurityProfiles`, `CreateSecurityProfile`,
//!   `UpdateSecurityProfile`, the grant of a `CreateUser` with security profiles) and
//!   `AdminGetEmergencyAccessToken`;
//! - 2 Low: a failed call (anything with an `error_code`), any other User Access Management
//!   event, creating or deleting a user, deleting or disassociating a security profile;
//! - 1 Informational: everything else.
//!
//! Attributes: `metadata` (`uid` = the record's [`row_key`](AuditRecord::row_key), and
//! `<row key>/privileges` for the grant of a `CreateUser`, whose two events share
//! `correlation_uid` = the row key; `version` = [`OCSF_VERSION`], `product`, `profiles =
//! ["cloud"]`, and `["cloud", "host"]` for User Access Management, whose `actor` is an
//! attribute of the host profile in 1.3.0), `time` (epoch milliseconds), `actor.user` (`uid` =
//! `actor_id`, else `actor_arn`; `uid_alt` = `actor_arn` when `uid` is the id; `name` =
//! `actor_name`; `type_id` 1 User for Connect users and IAM principals, 3 System for AWS
//! services), `user` (the target of 3001 and 3005), `privileges` (3005: the assigned ids as
//! `security_profile:<id>`, `routing_profile:<id>`, `hierarchy_group:<id>`,
//! `traffic_distribution_group:<id>`, `workspace:<id>`, `proficiency:<name>=<value>`, else the
//! event name; for a replacement, the whole new set), `resources` (6003: the target),
//! `api.operation`, `api.service.name`, `cloud` (`provider = "AWS"`, `region`,
//! `account.uid`), `src_endpoint` (`ip` when `source_ip` is an IP address, else `svc_name`:
//! CloudTrail writes the calling service, `connect.amazonaws.com`, for admin-website calls),
//! `http_request.user_agent`, `status_id`/`status` (1 Success, 2 Failure),
//! `status_code`/`status_detail` (the error), and `unmapped` for the rest (`instance_id`,
//! `category`, `actor_kind`, `target_kind`, `name_source`, `origin`, `request_parameters` and
//! `response_elements` as JSON).
//!
//! Placeholders, only where OCSF requires a value the record lacks: an actor with no id, ARN
//! or name is `actor.user.name = "unknown"`; an API Activity without `source_ip` has
//! `src_endpoint.name = "unknown"`.
//!
//! The e2e test `ocsf::every_event_validates_against_the_ocsf_schema` validates every event
//! of the examples and fixtures against the OCSF 1.3.0 JSON schemas of these classes,
//! committed under `tests/fixtures/ocsf/1.3.0/`.
//!
//! For Parquet, [`arrow_schema`] is a fixed set of top-level columns taken from the event plus
//! the whole event as JSON text in `event`.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};
use connect_audit_core::catalogue::CONNECT_EVENT_SOURCE;
use connect_audit_core::ids::bare_id;
use connect_audit_core::{ActorKind, AuditRecord, Category, TargetKind};
use serde_json::{Map, Value, json};

/// The OCSF schema version every event claims in `metadata.version`.
pub const OCSF_VERSION: &str = "1.3.0";

/// `metadata.product.name` and `metadata.product.vendor_name`.
pub const PRODUCT_NAME: &str = "connect-audit";

/// The OCSF class of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OcsfClass {
    /// Account Change (3001): a user created, deleted or changed.
    AccountChange,
    /// User Access Management (3005): privileges assigned to or revoked from a user.
    UserAccessManagement,
    /// API Activity (6003): any other Connect API call.
    ApiActivity,
}

impl OcsfClass {
    /// `class_uid`.
    pub fn uid(self) -> i32 {
        match self {
            Self::AccountChange => 3001,
            Self::UserAccessManagement => 3005,
            Self::ApiActivity => 6003,
        }
    }

    /// `class_name`.
    pub fn name(self) -> &'static str {
        match self {
            Self::AccountChange => "Account Change",
            Self::UserAccessManagement => "User Access Management",
            Self::ApiActivity => "API Activity",
        }
    }

    /// `category_uid`: 3 Identity & Access Management, 6 Application Activity.
    pub fn category_uid(self) -> i32 {
        match self {
            Self::AccountChange | Self::UserAccessManagement => 3,
            Self::ApiActivity => 6,
        }
    }

    /// `category_name`.
    pub fn category_name(self) -> &'static str {
        match self {
            Self::AccountChange | Self::UserAccessManagement => "Identity & Access Management",
            Self::ApiActivity => "Application Activity",
        }
    }

    /// `metadata.profiles`: `cloud` (for `cloud` and `api`), and `host` for User Access
    /// Management, which has `actor` only through that profile in 1.3.0.
    pub fn profiles(self) -> &'static [&'static str] {
        match self {
            Self::UserAccessManagement => &["cloud", "host"],
            Self::AccountChange | Self::ApiActivity => &["cloud"],
        }
    }
}

/// The class and activity of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classification {
    /// The event class.
    pub class: OcsfClass,
    /// `activity_id`, one of the class's activities.
    pub activity_id: i32,
    /// `activity_name`: the caption of `activity_id`, or what the event does when that is
    /// 99 Other.
    pub activity_name: &'static str,
}

impl Classification {
    /// `type_uid`: `class_uid * 100 + activity_id`.
    pub fn type_uid(self) -> i64 {
        i64::from(self.class.uid()) * 100 + i64::from(self.activity_id)
    }

    /// `type_name`: `"<class>: <activity>"`, with the OCSF caption of the activity (`Other`
    /// for 99, whatever `activity_name` says).
    pub fn type_name(self) -> String {
        let activity = if self.activity_id == 99 {
            "Other"
        } else {
            self.activity_name
        };
        format!("{}: {activity}", self.class.name())
    }
}

/// The class and activity of a record (see the [module](self) table).
pub fn classify(record: &AuditRecord) -> Classification {
    let params = parse_json(record.request_parameters.as_deref());
    classify_with(record, params.as_ref())
}

fn classify_with(record: &AuditRecord, params: Option<&Value>) -> Classification {
    let name = record.event_name.as_str();
    let class = |class, activity_id, activity_name| Classification {
        class,
        activity_id,
        activity_name,
    };
    if targets_user(record) {
        if record.category == Category::User {
            return if name.starts_with("Create") {
                class(OcsfClass::AccountChange, 1, "Create")
            } else if name.starts_with("Delete") {
                class(OcsfClass::AccountChange, 6, "Delete")
            } else if name.contains("Password") {
                class(OcsfClass::AccountChange, 3, "Password Change")
            } else {
                class(OcsfClass::AccountChange, 99, "Other")
            };
        }
        if record.category == Category::Permissions
            || matches!(
                name,
                "AssociateSecurityProfiles" | "DisassociateSecurityProfiles"
            )
        {
            let leaves_hierarchy = name == "UpdateUserHierarchy"
                && params
                    .and_then(|p| p.get("HierarchyGroupId"))
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty);
            return if name.starts_with("Disassociate") || leaves_hierarchy {
                class(OcsfClass::UserAccessManagement, 2, "Revoke Privileges")
            } else if name == "UpdateUserSecurityProfiles" {
                // The request is the user's whole new set: profiles it leaves out are taken
                // away. 1.3.0 has no activity for that, so 99 Other, named for what it does.
                class(OcsfClass::UserAccessManagement, 99, "Replace Privileges")
            } else {
                class(OcsfClass::UserAccessManagement, 1, "Assign Privileges")
            };
        }
    }
    if name.starts_with("Create") || name.starts_with("Replicate") {
        class(OcsfClass::ApiActivity, 1, "Create")
    } else if READS.iter().any(|p| name.starts_with(p)) {
        class(OcsfClass::ApiActivity, 2, "Read")
    } else if name.starts_with("Delete") {
        class(OcsfClass::ApiActivity, 4, "Delete")
    } else {
        class(OcsfClass::ApiActivity, 3, "Update")
    }
}

/// Event-name prefixes of API Activity reads.
const READS: [&str; 5] = ["Get", "Describe", "List", "Search", "AdminGet"];

/// Whether the record's target is a Connect user with an id or a name, as the `user` that
/// Account Change and User Access Management require.
fn targets_user(record: &AuditRecord) -> bool {
    record.target_kind == TargetKind::User
        && (record.target_id.is_some() || record.target_name.is_some())
}

/// `severity_id` of a record (see the [module](self) documentation).
pub fn severity_id(record: &AuditRecord, classification: Classification) -> i32 {
    if record.error_code.is_some() {
        return 2;
    }
    match record.event_name.as_str() {
        "UpdateUserSecurityProfiles"
        | "AssociateSecurityProfiles"
        | "CreateSecurityProfile"
        | "UpdateSecurityProfile"
        | "AdminGetEmergencyAccessToken" => 3,
        "CreateUser" | "DeleteUser" | "DeleteSecurityProfile" | "DisassociateSecurityProfiles" => 2,
        _ if classification.class == OcsfClass::UserAccessManagement => 2,
        _ => 1,
    }
}

fn severity_name(id: i32) -> &'static str {
    match id {
        1 => "Informational",
        2 => "Low",
        3 => "Medium",
        4 => "High",
        5 => "Critical",
        _ => "Unknown",
    }
}

/// The record as OCSF 1.3.0 events: its own event ([`to_ocsf`]), then, for a successful
/// `CreateUser` whose request gives the new user security profiles, a routing profile or a
/// hierarchy group, a User Access Management event that assigns them (see the
/// [module](self) documentation).
pub fn to_ocsf_events(record: &AuditRecord) -> Vec<Value> {
    let params = parse_json(record.request_parameters.as_deref());
    let c = classify_with(record, params.as_ref());
    if let Some(events) = replacement_as_diff(record, c, params.as_ref()) {
        return events;
    }
    let grant = creation_grant(record, c, params.as_ref());
    let mut main = event(record, c, params);
    let Some(privileges) = grant else {
        return vec![main];
    };
    let key = record.row_key();
    main["metadata"]["correlation_uid"] = json!(key);
    let mut grant = main.clone();
    let c = Classification {
        class: OcsfClass::UserAccessManagement,
        activity_id: 1,
        activity_name: "Assign Privileges",
    };
    let severity = if privileges
        .iter()
        .any(|p| p.starts_with("security_profile:"))
    {
        3
    } else {
        2
    };
    if let Value::Object(fields) = &mut grant {
        classify_event(fields, c, severity);
        fields.insert("privileges".into(), json!(privileges));
    }
    grant["metadata"]["uid"] = json!(format!("{key}/privileges"));
    grant["metadata"]["profiles"] = json!(c.class.profiles());
    vec![main, grant]
}

/// A successful `UpdateUserSecurityProfiles` whose `before` the change stage knew, as what it
/// did: an Assign Privileges event of the profiles it added and a Revoke Privileges event of
/// those it took away (each only when not empty; the second has `metadata.uid` = `<row
/// key>/revoked`, both `correlation_uid` = the row key). `None` when `before` is not known
/// (the event stays a Replace Privileges of the whole new set) or nothing changed.
fn replacement_as_diff(
    record: &AuditRecord,
    c: Classification,
    params: Option<&Value>,
) -> Option<Vec<Value>> {
    if record.event_name != "UpdateUserSecurityProfiles"
        || record.error_code.is_some()
        || c.class != OcsfClass::UserAccessManagement
    {
        return None;
    }
    let profiles = |text: Option<&String>| -> Option<Vec<String>> {
        let value = parse_json(text.map(String::as_str))?;
        Some(
            value
                .get("security_profiles")?
                .as_array()?
                .iter()
                .filter_map(|p| p.get("id").and_then(Value::as_str))
                .map(|id| format!("security_profile:{}", bare_id(id)))
                .collect(),
        )
    };
    let before = profiles(record.before.as_ref())?;
    let after = profiles(record.after.as_ref())?;
    let added: Vec<String> = after
        .iter()
        .filter(|p| !before.contains(p))
        .cloned()
        .collect();
    let removed: Vec<String> = before
        .iter()
        .filter(|p| !after.contains(p))
        .cloned()
        .collect();
    let key = record.row_key();
    let mut events = Vec::new();
    for (privileges, activity_id, activity_name, severity) in [
        (added, 1, "Assign Privileges", 3),
        (removed, 2, "Revoke Privileges", 2),
    ] {
        if privileges.is_empty() {
            continue;
        }
        let c = Classification {
            class: OcsfClass::UserAccessManagement,
            activity_id,
            activity_name,
        };
        let mut event = event(record, c, params.cloned());
        if let Value::Object(fields) = &mut event {
            classify_event(fields, c, severity);
            fields.insert("privileges".into(), json!(privileges));
        }
        if !events.is_empty() {
            event["metadata"]["uid"] = json!(format!("{key}/revoked"));
        }
        events.push(event);
    }
    if events.len() > 1 {
        for event in &mut events {
            event["metadata"]["correlation_uid"] = json!(key);
        }
    }
    (!events.is_empty()).then_some(events)
}

/// The record's own OCSF 1.3.0 event: the first of [`to_ocsf_events`], and the only one for
/// every record but a `CreateUser` that grants privileges.
pub fn to_ocsf(record: &AuditRecord) -> Value {
    let params = parse_json(record.request_parameters.as_deref());
    let c = classify_with(record, params.as_ref());
    event(record, c, params)
}

/// What a successful `CreateUser` gives the new user, when it gives anything and its event
/// names the user.
fn creation_grant(
    record: &AuditRecord,
    c: Classification,
    params: Option<&Value>,
) -> Option<Vec<String>> {
    if record.event_name != "CreateUser"
        || record.error_code.is_some()
        || c.class != OcsfClass::AccountChange
    {
        return None;
    }
    let privileges = assigned(params);
    (!privileges.is_empty()).then_some(privileges)
}

/// The class, activity and severity attributes.
fn classify_event(event: &mut Map<String, Value>, c: Classification, severity: i32) {
    let mut put = |key: &str, value: Value| {
        event.insert(key.to_owned(), value);
    };
    put("activity_id", json!(c.activity_id));
    put("activity_name", json!(c.activity_name));
    put("category_uid", json!(c.class.category_uid()));
    put("category_name", json!(c.class.category_name()));
    put("class_uid", json!(c.class.uid()));
    put("class_name", json!(c.class.name()));
    put("type_uid", json!(c.type_uid()));
    put("type_name", json!(c.type_name()));
    put("severity_id", json!(severity));
    put("severity", json!(severity_name(severity)));
}

fn event(record: &AuditRecord, c: Classification, params: Option<Value>) -> Value {
    let severity = severity_id(record, c);
    let failed = record.error_code.is_some();

    let mut event = Map::new();
    classify_event(&mut event, c, severity);
    let mut put = |key: &str, value: Value| {
        event.insert(key.to_owned(), value);
    };
    put("time", json!(record.event_time.as_millisecond()));
    put("timezone_offset", json!(0));
    put("message", json!(message(record)));
    put("status_id", json!(if failed { 2 } else { 1 }));
    put("status", json!(if failed { "Failure" } else { "Success" }));
    if let Some(code) = &record.error_code {
        put("status_code", json!(code));
    }
    if let Some(detail) = &record.error_message {
        put("status_detail", json!(detail));
    }
    put(
        "metadata",
        json!({
            "uid": record.row_key(),
            "version": OCSF_VERSION,
            "product": {
                "name": PRODUCT_NAME,
                "vendor_name": PRODUCT_NAME,
                "version": env!("CARGO_PKG_VERSION"),
            },
            "profiles": c.class.profiles(),
            "log_provider": "AWS CloudTrail",
        }),
    );
    put(
        "cloud",
        json!({
            "provider": "AWS",
            "region": record.region,
            "account": { "uid": record.account_id },
        }),
    );
    put("actor", json!({ "user": actor_user(record) }));
    put(
        "api",
        json!({
            "operation": record.event_name,
            "service": { "name": CONNECT_EVENT_SOURCE },
        }),
    );
    if let Some(endpoint) = src_endpoint(record, c.class) {
        put("src_endpoint", endpoint);
    }
    if let Some(agent) = &record.user_agent {
        put("http_request", json!({ "user_agent": agent }));
    }
    match c.class {
        OcsfClass::AccountChange => put("user", target_user(record)),
        OcsfClass::UserAccessManagement => {
            put("user", target_user(record));
            put(
                "privileges",
                json!(privileges(&record.event_name, params.as_ref())),
            );
        }
        OcsfClass::ApiActivity => {
            if let Some(resource) = target_resource(record) {
                put("resources", json!([resource]));
            }
        }
    }
    put("unmapped", unmapped(record, params));
    Value::Object(event)
}

/// `"<event> by <actor> on <kind> <target>"`, and `" failed: <code>"` for a failed call.
fn message(record: &AuditRecord) -> String {
    let actor = record
        .actor_name
        .as_deref()
        .or(record.actor_id.as_deref())
        .or(record.actor_arn.as_deref())
        .unwrap_or("unknown");
    let mut text = format!("{} by {actor}", record.event_name);
    if record.target_kind != TargetKind::None {
        let target = record
            .target_name
            .as_deref()
            .or(record.target_id.as_deref());
        if let Some(target) = target {
            let _ = write!(text, " on {} {target}", record.target_kind);
        }
    }
    if let Some(code) = &record.error_code {
        let _ = write!(text, " failed: {code}");
    }
    text
}

fn actor_user(record: &AuditRecord) -> Value {
    let mut user = Map::new();
    let uid = record.actor_id.as_deref().or(record.actor_arn.as_deref());
    if let Some(uid) = uid {
        user.insert("uid".into(), json!(uid));
    }
    if record.actor_id.is_some()
        && let Some(arn) = &record.actor_arn
    {
        user.insert("uid_alt".into(), json!(arn));
    }
    match (&record.actor_name, uid) {
        (Some(name), _) => {
            user.insert("name".into(), json!(name));
        }
        (None, None) => {
            user.insert("name".into(), json!("unknown"));
        }
        (None, Some(_)) => {}
    }
    let (type_id, type_name) = match record.actor_kind {
        ActorKind::ConnectUser | ActorKind::Iam => (1, "User"),
        ActorKind::Service => (3, "System"),
    };
    user.insert("type_id".into(), json!(type_id));
    user.insert("type".into(), json!(type_name));
    Value::Object(user)
}

/// The target as an OCSF user (only called when [`targets_user`] holds).
fn target_user(record: &AuditRecord) -> Value {
    let mut user = Map::new();
    if let Some(id) = &record.target_id {
        user.insert("uid".into(), json!(id));
    }
    if let Some(name) = &record.target_name {
        user.insert("name".into(), json!(name));
    }
    Value::Object(user)
}

fn target_resource(record: &AuditRecord) -> Option<Value> {
    if record.target_kind == TargetKind::None
        || (record.target_id.is_none() && record.target_name.is_none())
    {
        return None;
    }
    let mut resource = Map::new();
    if let Some(id) = &record.target_id {
        resource.insert("uid".into(), json!(id));
    }
    if let Some(name) = &record.target_name {
        resource.insert("name".into(), json!(name));
    }
    resource.insert("type".into(), json!(record.target_kind.as_str()));
    resource.insert("region".into(), json!(record.region));
    Some(Value::Object(resource))
}

/// `ip` for an IP address, else `svc_name`: CloudTrail's `sourceIPAddress` names the AWS
/// service that called on a user's behalf (`connect.amazonaws.com` for the admin website,
/// `AWS Internal`), which is what OCSF's service-to-service `svc_name` is for (a
/// `network_endpoint` needs one of `ip`, `uid`, `name`, `hostname`, `svc_name`, …; `domain`
/// is not one). API Activity requires the endpoint: without a source it is named `unknown`;
/// the IAM classes leave it out.
fn src_endpoint(record: &AuditRecord, class: OcsfClass) -> Option<Value> {
    match record.source_ip.as_deref() {
        Some(ip) if ip.parse::<IpAddr>().is_ok() => Some(json!({ "ip": ip })),
        Some(service) => Some(json!({ "svc_name": service })),
        None if class == OcsfClass::ApiActivity => Some(json!({ "name": "unknown" })),
        None => None,
    }
}

/// What a User Access Management event assigns or revokes, from its request; the event name
/// when the request names nothing.
fn privileges(event_name: &str, params: Option<&Value>) -> Vec<String> {
    let mut out = assigned(params);
    if out.is_empty() {
        out.push(event_name.to_owned());
    }
    out
}

/// The security profiles, routing profile, hierarchy group, traffic distribution group,
/// workspace and proficiencies a request names, as `<kind>:<id>`.
fn assigned(params: Option<&Value>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(p) = params.and_then(Value::as_object) {
        let mut push = |kind: &str, id: &str| out.push(format!("{kind}:{}", bare_id(id)));
        let items = |key: &str| {
            p.get(key)
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default()
        };
        for id in items("SecurityProfileIds").iter().filter_map(Value::as_str) {
            push("security_profile", id);
        }
        for item in items("SecurityProfiles") {
            let id = item
                .as_str()
                .or_else(|| item.get("Id").and_then(Value::as_str));
            if let Some(id) = id {
                push("security_profile", id);
            }
        }
        for (key, kind) in [
            ("RoutingProfileId", "routing_profile"),
            ("HierarchyGroupId", "hierarchy_group"),
            ("TrafficDistributionGroupId", "traffic_distribution_group"),
            ("WorkspaceId", "workspace"),
        ] {
            if let Some(id) = p.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()) {
                push(kind, id);
            }
        }
        for item in items("UserProficiencies") {
            let field = |k: &str| item.get(k).and_then(Value::as_str);
            if let (Some(name), Some(value)) = (field("AttributeName"), field("AttributeValue")) {
                out.push(format!("proficiency:{name}={value}"));
            }
        }
    }
    out
}

fn unmapped(record: &AuditRecord, params: Option<Value>) -> Value {
    let mut map = Map::new();
    if let Some(instance) = &record.instance_id {
        map.insert("instance_id".into(), json!(instance));
    }
    map.insert("category".into(), json!(record.category.as_str()));
    map.insert("actor_kind".into(), json!(record.actor_kind.as_str()));
    map.insert("target_kind".into(), json!(record.target_kind.as_str()));
    map.insert("name_source".into(), json!(record.name_source.as_str()));
    map.insert("origin".into(), json!(record.origin.as_str()));
    let json_or_text = |parsed: Option<Value>, text: &Option<String>| match (parsed, text) {
        (Some(v), _) => Some(v),
        (None, Some(t)) => Some(Value::String(t.clone())),
        (None, None) => None,
    };
    if let Some(v) = json_or_text(params, &record.request_parameters) {
        map.insert("request_parameters".into(), v);
    }
    let response = parse_json(record.response_elements.as_deref());
    if let Some(v) = json_or_text(response, &record.response_elements) {
        map.insert("response_elements".into(), v);
    }
    // What the change stage decoded: the line, before and after, and the findings.
    if let Some(change) = &record.change {
        map.insert("change".into(), json!(change));
    }
    for (key, text) in [("before", &record.before), ("after", &record.after)] {
        if let Some(v) = json_or_text(parse_json(text.as_deref()), text) {
            map.insert(key.into(), v);
        }
    }
    if let Some(basis) = record.change_basis {
        map.insert("change_basis".into(), json!(basis.as_str()));
    }
    if !record.findings.is_empty() {
        map.insert("findings".into(), json!(record.findings));
    }
    Value::Object(map)
}

fn parse_json(text: Option<&str>) -> Option<Value> {
    text.and_then(|t| serde_json::from_str(t).ok())
}

// ---------------------------------------------------------------------------------------------
// Parquet

/// How a column is read from the event.
#[derive(Clone, Copy)]
enum Kind {
    /// `time`, epoch milliseconds, as a UTC millisecond timestamp.
    Time,
    Int32,
    Int64,
    Text,
    /// The whole event as JSON text.
    Event,
}

/// The columns of the OCSF Parquet schema: name, JSON pointer into the event, kind, nullable.
const COLUMNS: &[(&str, &str, Kind, bool)] = &[
    ("time", "/time", Kind::Time, false),
    ("class_uid", "/class_uid", Kind::Int32, false),
    ("class_name", "/class_name", Kind::Text, false),
    ("category_uid", "/category_uid", Kind::Int32, false),
    ("activity_id", "/activity_id", Kind::Int32, false),
    ("activity_name", "/activity_name", Kind::Text, false),
    ("type_uid", "/type_uid", Kind::Int64, false),
    ("severity_id", "/severity_id", Kind::Int32, false),
    ("status_id", "/status_id", Kind::Int32, false),
    ("status_code", "/status_code", Kind::Text, true),
    ("metadata_uid", "/metadata/uid", Kind::Text, false),
    ("actor_user_uid", "/actor/user/uid", Kind::Text, true),
    ("actor_user_name", "/actor/user/name", Kind::Text, true),
    ("user_uid", "/user/uid", Kind::Text, true),
    ("user_name", "/user/name", Kind::Text, true),
    ("api_operation", "/api/operation", Kind::Text, false),
    ("cloud_region", "/cloud/region", Kind::Text, false),
    ("cloud_account_uid", "/cloud/account/uid", Kind::Text, false),
    ("src_endpoint_ip", "/src_endpoint/ip", Kind::Text, true),
    (
        "src_endpoint_svc_name",
        "/src_endpoint/svc_name",
        Kind::Text,
        true,
    ),
    ("event", "", Kind::Event, false),
];

/// The Arrow schema of OCSF Parquet: `time` is `TIMESTAMP(MILLIS, UTC)`, ids are `INT32`
/// (`type_uid` `INT64`), the rest UTF-8; `event` holds the whole event as JSON text.
pub fn arrow_schema() -> SchemaRef {
    let fields: Vec<Field> = COLUMNS
        .iter()
        .map(|&(name, _, kind, nullable)| {
            let data_type = match kind {
                Kind::Time => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                Kind::Int32 => DataType::Int32,
                Kind::Int64 => DataType::Int64,
                Kind::Text | Kind::Event => DataType::Utf8,
            };
            Field::new(name, data_type, nullable)
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// The records' OCSF events ([`to_ocsf_events`], so a row per event: two for a `CreateUser`
/// that grants privileges) in the columns of [`arrow_schema`].
pub fn record_batch(rows: &[&AuditRecord]) -> Result<RecordBatch, ArrowError> {
    let events: Vec<Value> = rows.iter().flat_map(|r| to_ocsf_events(r)).collect();
    let columns = COLUMNS
        .iter()
        .map(
            |&(name, pointer, kind, _)| -> Result<ArrayRef, ArrowError> {
                let ints = || {
                    events
                        .iter()
                        .map(|e| e.pointer(pointer).and_then(Value::as_i64))
                };
                let column: ArrayRef = match kind {
                    Kind::Time => Arc::new(
                        ints()
                            .collect::<TimestampMillisecondArray>()
                            .with_timezone("UTC"),
                    ),
                    Kind::Int32 => Arc::new(
                        ints()
                            .map(|v| v.map(i32::try_from).transpose())
                            .collect::<Result<Int32Array, _>>()
                            .map_err(|e| {
                                ArrowError::ComputeError(format!("OCSF column `{name}`: {e}"))
                            })?,
                    ),
                    Kind::Int64 => Arc::new(ints().collect::<Int64Array>()),
                    Kind::Text => Arc::new(
                        events
                            .iter()
                            .map(|e| e.pointer(pointer).and_then(Value::as_str))
                            .collect::<StringArray>(),
                    ),
                    Kind::Event => Arc::new(StringArray::from_iter_values(
                        events.iter().map(Value::to_string),
                    )),
                };
                Ok(column)
            },
        )
        .collect::<Result<Vec<_>, ArrowError>>()?;
    RecordBatch::try_new(arrow_schema(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use connect_audit_core::catalogue::GROUPS;

    // Required attributes, OCSF 1.3.0 (https://schema.ocsf.io/1.3.0/, the ocsf/ocsf-schema
    // files named in each comment). A dotted path is an attribute of an object attribute.

    /// `events/base_event.json` with its `classification` and `occurrence` traits, plus the
    /// required attributes of the objects we fill: `objects/metadata.json` (`product`,
    /// `version`), `objects/product.json` (`name`; `vendor_name` was required in 1.0 and is
    /// given too).
    const BASE_REQUIRED: &[&str] = &[
        "activity_id",
        "category_uid",
        "class_uid",
        "metadata",
        "metadata.product",
        "metadata.product.name",
        "metadata.product.vendor_name",
        "metadata.version",
        "severity_id",
        "time",
        "type_uid",
    ];

    /// `profiles/cloud.json` (`cloud` is required once the profile is declared in
    /// `metadata.profiles`) and `objects/cloud.json` (`provider`); `objects/api.json`
    /// (`operation`) for the `api` every event carries.
    const CLOUD_PROFILE_REQUIRED: &[&str] = &["cloud", "cloud.provider", "api.operation"];

    /// `events/iam/account_change.json`: `user`.
    const ACCOUNT_CHANGE_REQUIRED: &[&str] = &["user"];

    /// `events/iam/user_access.json` (1.3.0; `privileges` became recommended in later
    /// versions): `privileges`, `user`.
    const USER_ACCESS_REQUIRED: &[&str] = &["privileges", "user"];

    /// `events/application/api_activity.json`: `actor`, `api`, `src_endpoint`.
    const API_ACTIVITY_REQUIRED: &[&str] = &["actor", "api", "src_endpoint"];

    /// Activities each class defines in 1.3.0 (0 Unknown and 99 Other are in every class).
    fn allowed_activities(class: OcsfClass) -> &'static [i64] {
        match class {
            OcsfClass::AccountChange => &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 99],
            OcsfClass::UserAccessManagement => &[1, 2, 99],
            OcsfClass::ApiActivity => &[1, 2, 3, 4, 99],
        }
    }

    fn required(class_uid: i64) -> &'static [&'static str] {
        match class_uid {
            3001 => ACCOUNT_CHANGE_REQUIRED,
            3005 => USER_ACCESS_REQUIRED,
            6003 => API_ACTIVITY_REQUIRED,
            other => panic!("unexpected class {other}"),
        }
    }

    fn at<'v>(event: &'v Value, path: &str) -> Option<&'v Value> {
        event
            .pointer(&format!("/{}", path.replace('.', "/")))
            .filter(|v| !v.is_null())
    }

    /// Every required attribute is present, and the base fields have their OCSF types.
    fn assert_valid(event: &Value, record: &AuditRecord) {
        let class_uid = event["class_uid"]
            .as_i64()
            .expect("class_uid is an integer");
        let lists = [BASE_REQUIRED, CLOUD_PROFILE_REQUIRED, required(class_uid)];
        for path in lists.iter().flat_map(|l| l.iter()) {
            assert!(
                at(event, path).is_some(),
                "{}: {path} missing from {event:#}",
                record.event_name
            );
        }
        for key in [
            "activity_id",
            "category_uid",
            "class_uid",
            "severity_id",
            "status_id",
            "type_uid",
            "time",
            "timezone_offset",
        ] {
            assert!(
                event[key].is_i64(),
                "{}: {key} is not an integer: {}",
                record.event_name,
                event[key]
            );
        }
        assert_eq!(
            event["time"].as_i64(),
            Some(record.event_time.as_millisecond()),
            "time is epoch milliseconds"
        );
        let activity = event["activity_id"].as_i64().unwrap();
        assert_eq!(event["type_uid"].as_i64(), Some(class_uid * 100 + activity));
        let category = event["category_uid"].as_i64().unwrap();
        assert_eq!(category, class_uid / 1000);
        let class = match class_uid {
            3001 => OcsfClass::AccountChange,
            3005 => OcsfClass::UserAccessManagement,
            _ => OcsfClass::ApiActivity,
        };
        assert!(
            allowed_activities(class).contains(&activity),
            "{}: activity {activity} of class {class_uid}",
            record.event_name
        );
        assert!((1..=6).contains(&event["severity_id"].as_i64().unwrap()));
        assert_eq!(event["metadata"]["version"], OCSF_VERSION);
        assert_eq!(event["metadata"]["uid"], &*record.row_key());
        let profiles = json!(if class_uid == 3005 {
            &["cloud", "host"][..]
        } else {
            &["cloud"][..]
        });
        assert_eq!(event["metadata"]["profiles"], profiles);
        // A user object needs at least one of `uid` and `name` (objects/user.json constraint).
        for user in ["actor/user", "user"] {
            if let Some(u) = event.pointer(&format!("/{user}")) {
                assert!(
                    u["uid"].is_string() || u["name"].is_string(),
                    "{user} without uid or name"
                );
            }
        }
        if class_uid == 3005 {
            let privileges = event["privileges"]
                .as_array()
                .expect("privileges is an array");
            assert!(!privileges.is_empty());
            assert!(privileges.iter().all(Value::is_string));
        }
        if let Some(ip) = event.pointer("/src_endpoint/ip") {
            assert!(ip.as_str().unwrap().parse::<IpAddr>().is_ok(), "ip_t: {ip}");
        }
        // 6003 `src_endpoint` needs one of its identifying attributes.
        let endpoint = event["src_endpoint"].as_object();
        if class_uid == 6003 {
            assert!(!endpoint.unwrap().is_empty());
        }
    }

    fn record(event_name: &str, category: Category, target_kind: TargetKind) -> AuditRecord {
        let target = (target_kind != TargetKind::None).then(|| "t-1".to_owned());
        AuditRecord {
            event_time: "2024-05-02T09:14:02.123456Z".parse().unwrap(),
            event_id: format!("id-{event_name}"),
            target_index: 0,
            event_name: event_name.to_owned(),
            category,
            account_id: "111122223333".into(),
            region: "ap-northeast-1".into(),
            instance_id: Some("i-1".into()),
            actor_kind: ActorKind::ConnectUser,
            actor_id: Some("a-1".into()),
            actor_name: Some("alice.admin".into()),
            actor_arn: Some("arn:aws:sts::111122223333:assumed-role/R/alice".into()),
            target_kind,
            target_id: target.clone(),
            target_name: target.map(|_| "jdoe".to_owned()),
            name_source: connect_audit_core::NameSource::Snapshot,
            origin: connect_audit_core::Origin::Console,
            source_ip: Some("connect.amazonaws.com".into()),
            user_agent: Some("aws-internal/3".into()),
            error_code: None,
            error_message: None,
            request_parameters: Some(r#"{"InstanceId":"i-1","UserId":"t-1"}"#.into()),
            response_elements: None,
            // No change decoded: the change stage's columns empty.
            ..AuditRecord::new(jiff::Timestamp::UNIX_EPOCH, "", "", Category::User)
        }
    }

    #[test]
    fn account_change_has_its_required_attributes() {
        let r = record("CreateUser", Category::User, TargetKind::User);
        let e = to_ocsf(&r);
        assert_valid(&e, &r);
        assert_eq!(
            (&e["class_uid"], &e["activity_id"], &e["type_uid"]),
            (&json!(3001), &json!(1), &json!(300_101))
        );
        assert_eq!(e["category_uid"], 3);
        assert_eq!(e["user"], json!({"uid": "t-1", "name": "jdoe"}));
        assert_eq!(e["actor"]["user"]["uid"], "a-1");
        assert_eq!(e["actor"]["user"]["name"], "alice.admin");
        assert_eq!(
            e["actor"]["user"]["uid_alt"],
            "arn:aws:sts::111122223333:assumed-role/R/alice"
        );
        assert_eq!(e["time"], 1_714_641_242_123_i64);
        assert_eq!(e["severity_id"], 2);
        assert_eq!(
            e["src_endpoint"],
            json!({"svc_name": "connect.amazonaws.com"}),
            "a service name is a network_endpoint's svc_name"
        );
        assert_eq!(e["http_request"]["user_agent"], "aws-internal/3");
        assert_eq!(e["api"]["service"]["name"], "connect.amazonaws.com");
        assert_eq!(e["cloud"]["account"]["uid"], "111122223333");
        assert_eq!(e["unmapped"]["instance_id"], "i-1");
        assert_eq!(e["unmapped"]["request_parameters"]["UserId"], "t-1");
        let delete = to_ocsf(&record("DeleteUser", Category::User, TargetKind::User));
        assert_eq!(delete["activity_id"], 6);
        let phone = to_ocsf(&record(
            "UpdateUserPhoneConfig",
            Category::User,
            TargetKind::User,
        ));
        assert_eq!(
            (&phone["activity_id"], &phone["severity_id"]),
            (&json!(99), &json!(1))
        );
    }

    #[test]
    fn user_access_management_has_its_required_attributes() {
        let mut r = record(
            "UpdateUserSecurityProfiles",
            Category::Permissions,
            TargetKind::User,
        );
        r.source_ip = Some("203.0.113.10".into());
        r.request_parameters = Some(
            r#"{"InstanceId":"i-1","SecurityProfileIds":["sp-1","arn:aws:connect:us-east-1:111122223333:instance/6762b34f-4e26-4a8e-a032-35a1e58e1b1c/security-profile/2a79e68e-9142-4874-b3ae-1a625db1e199"],"UserId":"t-1"}"#
                .into(),
        );
        let e = to_ocsf(&r);
        assert_valid(&e, &r);
        assert_eq!(
            (&e["class_uid"], &e["activity_id"], &e["type_uid"]),
            (&json!(3005), &json!(99), &json!(300_599)),
            "the whole set is replaced: neither a grant nor a revocation"
        );
        assert_eq!(
            (&e["activity_name"], &e["type_name"]),
            (
                &json!("Replace Privileges"),
                &json!("User Access Management: Other")
            )
        );
        assert_eq!(
            e["privileges"],
            json!([
                "security_profile:sp-1",
                "security_profile:2a79e68e-9142-4874-b3ae-1a625db1e199"
            ])
        );
        assert_eq!(
            e["severity_id"], 3,
            "new security profiles may be granted: Medium"
        );
        assert_eq!(e["src_endpoint"], json!({"ip": "203.0.113.10"}));

        let mut routing = record(
            "UpdateUserRoutingProfile",
            Category::Permissions,
            TargetKind::User,
        );
        routing.request_parameters = Some(r#"{"RoutingProfileId":"rp-1","UserId":"t-1"}"#.into());
        let e = to_ocsf(&routing);
        assert_valid(&e, &routing);
        assert_eq!(
            (&e["activity_id"], &e["type_name"]),
            (
                &json!(1),
                &json!("User Access Management: Assign Privileges")
            )
        );
        assert_eq!(e["privileges"], json!(["routing_profile:rp-1"]));

        let mut leave = record(
            "UpdateUserHierarchy",
            Category::Permissions,
            TargetKind::User,
        );
        leave.request_parameters = Some(r#"{"InstanceId":"i-1","UserId":"t-1"}"#.into());
        let e = to_ocsf(&leave);
        assert_valid(&e, &leave);
        assert_eq!(
            (&e["activity_id"], &e["severity_id"]),
            (&json!(2), &json!(2))
        );
        assert_eq!(e["privileges"], json!(["UpdateUserHierarchy"]));

        let mut skills = record(
            "DisassociateUserProficiencies",
            Category::Permissions,
            TargetKind::User,
        );
        skills.request_parameters = Some(
            r#"{"UserProficiencies":[{"AttributeName":"Language","AttributeValue":"Japanese"}]}"#
                .into(),
        );
        let e = to_ocsf(&skills);
        assert_eq!(e["activity_id"], 2);
        assert_eq!(e["privileges"], json!(["proficiency:Language=Japanese"]));
    }

    #[test]
    fn a_replacement_with_a_known_before_is_what_it_assigned_and_revoked() {
        let mut r = record(
            "UpdateUserSecurityProfiles",
            Category::Permissions,
            TargetKind::User,
        );
        r.request_parameters = Some(r#"{"SecurityProfileIds":["sp-admin","sp-agent"]}"#.into());
        let named = |ids: &[&str]| {
            let list: Vec<Value> = ids
                .iter()
                .map(|id| json!({"id": id, "name": null}))
                .collect();
            Some(json!({ "security_profiles": list }).to_string())
        };
        // Unknown before: one Replace Privileges of the whole new set, as before.
        let events = to_ocsf_events(&r);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["activity_name"], "Replace Privileges");
        // Known before: +sp-admin −sp-qa.
        r.before = named(&["sp-agent", "sp-qa"]);
        r.after = named(&["sp-admin", "sp-agent"]);
        r.change_basis = Some(connect_audit_core::ChangeBasis::Trail);
        let events = to_ocsf_events(&r);
        assert_eq!(events.len(), 2, "{events:#?}");
        for event in &events {
            // The checks of every event, which read the uid as the row key.
            let mut event = event.clone();
            event["metadata"]["uid"] = json!(r.row_key());
            assert_valid(&event, &r);
            assert_eq!(event["class_uid"], 3005);
            assert_eq!(
                event["metadata"]["correlation_uid"],
                "id-UpdateUserSecurityProfiles"
            );
        }
        assert_eq!(events[0]["activity_id"], 1);
        assert_eq!(
            events[0]["privileges"],
            json!(["security_profile:sp-admin"])
        );
        assert_eq!(
            events[0]["metadata"]["uid"],
            "id-UpdateUserSecurityProfiles"
        );
        assert_eq!(events[1]["activity_id"], 2);
        assert_eq!(
            events[1]["type_name"],
            "User Access Management: Revoke Privileges"
        );
        assert_eq!(events[1]["privileges"], json!(["security_profile:sp-qa"]));
        assert_eq!(
            events[1]["metadata"]["uid"],
            "id-UpdateUserSecurityProfiles/revoked"
        );
        // Only added: one Assign event, under the row key.
        r.before = named(&["sp-agent"]);
        let events = to_ocsf_events(&r);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["activity_name"], "Assign Privileges");
        assert!(events[0]["metadata"].get("correlation_uid").is_none());
    }

    #[test]
    fn create_user_with_profiles_grants_them_in_a_second_event() {
        let mut r = record("CreateUser", Category::User, TargetKind::User);
        r.request_parameters = Some(
            r#"{"Username":"jdoe","SecurityProfileIds":["sp-1","sp-2"],"RoutingProfileId":"rp-1","HierarchyGroupId":"hg-1"}"#
                .into(),
        );
        let events = to_ocsf_events(&r);
        assert_eq!(events.len(), 2, "{events:#?}");
        let (created, granted) = (&events[0], &events[1]);
        assert_eq!(*created, {
            let mut e = to_ocsf(&r);
            e["metadata"]["correlation_uid"] = json!("id-CreateUser");
            e
        });
        assert_valid(created, &r);
        assert_eq!(
            (&created["class_uid"], &created["activity_id"]),
            (&json!(3001), &json!(1))
        );
        assert!(created.get("privileges").is_none());
        assert_eq!(
            (
                &granted["class_uid"],
                &granted["activity_id"],
                &granted["type_uid"]
            ),
            (&json!(3005), &json!(1), &json!(300_501))
        );
        assert_eq!(
            granted["type_name"],
            "User Access Management: Assign Privileges"
        );
        assert_eq!(
            granted["privileges"],
            json!([
                "security_profile:sp-1",
                "security_profile:sp-2",
                "routing_profile:rp-1",
                "hierarchy_group:hg-1"
            ])
        );
        assert_eq!(granted["user"], created["user"]);
        assert_eq!(granted["actor"], created["actor"]);
        assert_eq!(
            granted["severity_id"], 3,
            "security profiles granted: Medium"
        );
        assert_eq!(granted["metadata"]["uid"], "id-CreateUser/privileges");
        assert_eq!(granted["metadata"]["profiles"], json!(["cloud", "host"]));
        assert_eq!(
            (
                &created["metadata"]["correlation_uid"],
                &granted["metadata"]["correlation_uid"]
            ),
            (&json!("id-CreateUser"), &json!("id-CreateUser"))
        );
        let batch = record_batch(&[&r]).unwrap();
        assert_eq!(batch.num_rows(), 2, "a Parquet row per event");

        // Only a routing profile: a grant, Low.
        r.request_parameters = Some(r#"{"Username":"jdoe","RoutingProfileId":"rp-1"}"#.into());
        let events = to_ocsf_events(&r);
        assert_eq!(events[1]["privileges"], json!(["routing_profile:rp-1"]));
        assert_eq!(events[1]["severity_id"], 2);
        // A failed CreateUser granted nothing; one without privileges has nothing to grant.
        r.error_code = Some("DuplicateResourceException".into());
        assert_eq!(to_ocsf_events(&r).len(), 1);
        r.error_code = None;
        r.request_parameters = Some(r#"{"Username":"jdoe"}"#.into());
        assert_eq!(to_ocsf_events(&r), vec![to_ocsf(&r)]);
        assert!(to_ocsf(&r)["metadata"].get("correlation_uid").is_none());
    }

    #[test]
    fn sign_ins_are_api_reads_not_logons() {
        for name in ["GetFederationToken", "AdminGetEmergencyAccessToken"] {
            for kind in [TargetKind::User, TargetKind::None] {
                let r = record(name, Category::SignIn, kind);
                let e = to_ocsf(&r);
                assert_valid(&e, &r);
                assert_eq!(
                    (&e["class_uid"], &e["activity_id"], &e["type_name"]),
                    (&json!(6003), &json!(2), &json!("API Activity: Read")),
                    "{name} with target {kind}"
                );
            }
        }
        let r = record(
            "AdminGetEmergencyAccessToken",
            Category::SignIn,
            TargetKind::None,
        );
        assert_eq!(to_ocsf(&r)["severity_id"], 3);
    }

    #[test]
    fn metadata_uid_is_the_row_key() {
        let mut r = record(
            "AssociateWorkspace",
            Category::Permissions,
            TargetKind::User,
        );
        r.request_parameters = Some(r#"{"WorkspaceId":"ws-1","ResourceArns":["a","b"]}"#.into());
        r.target_index = 3;
        let e = to_ocsf(&r);
        assert_valid(&e, &r);
        assert_eq!(e["metadata"]["uid"], "id-AssociateWorkspace#3");
        assert_eq!(e["privileges"], json!(["workspace:ws-1"]));
        r.target_index = 0;
        assert_eq!(to_ocsf(&r)["metadata"]["uid"], "id-AssociateWorkspace");
    }

    #[test]
    fn api_activity_has_its_required_attributes() {
        let mut r = record(
            "UpdateUserHierarchyGroupName",
            Category::Hierarchy,
            TargetKind::HierarchyGroup,
        );
        r.source_ip = None;
        r.error_code = Some("AccessDeniedException".into());
        r.error_message = Some("not allowed".into());
        let e = to_ocsf(&r);
        assert_valid(&e, &r);
        assert_eq!(
            (&e["class_uid"], &e["activity_id"], &e["type_uid"]),
            (&json!(6003), &json!(3), &json!(600_303))
        );
        assert_eq!(e["category_uid"], 6);
        assert_eq!(
            (&e["status_id"], &e["status"]),
            (&json!(2), &json!("Failure"))
        );
        assert_eq!(e["status_code"], "AccessDeniedException");
        assert_eq!(e["status_detail"], "not allowed");
        assert_eq!(e["severity_id"], 2, "a failed call is Low");
        assert_eq!(e["src_endpoint"], json!({"name": "unknown"}));
        assert_eq!(e["resources"][0]["type"], "hierarchy_group");
        assert_eq!(e["resources"][0]["uid"], "t-1");
        assert!(e.get("user").is_none(), "API Activity has no target user");

        let create = to_ocsf(&record(
            "CreateSecurityProfile",
            Category::SecurityProfile,
            TargetKind::SecurityProfile,
        ));
        assert_eq!(
            (
                &create["class_uid"],
                &create["activity_id"],
                &create["severity_id"]
            ),
            (&json!(6003), &json!(1), &json!(3))
        );
        let list = to_ocsf(&record("ListUsers", Category::SignIn, TargetKind::None));
        assert_eq!(list["activity_id"], 2);
        assert!(list.get("resources").is_none());
        let delete = to_ocsf(&record(
            "DeleteRoutingProfile",
            Category::RoutingProfile,
            TargetKind::RoutingProfile,
        ));
        assert_eq!(delete["activity_id"], 4);
    }

    /// Every catalogued event, with a user target and without one, maps to a valid event of
    /// the class the module table names.
    #[test]
    fn every_catalogued_event_maps_to_a_valid_event() {
        for group in GROUPS {
            for &name in group.events {
                for kind in [TargetKind::User, TargetKind::Resource, TargetKind::None] {
                    let r = record(name, group.category, kind);
                    let e = to_ocsf(&r);
                    assert_valid(&e, &r);
                    let expected = match (group.category, kind) {
                        (Category::User, TargetKind::User) => 3001,
                        (Category::Permissions, TargetKind::User) => 3005,
                        (_, TargetKind::User) if name.ends_with("SecurityProfiles") => 3005,
                        _ => 6003,
                    };
                    assert_eq!(e["class_uid"], expected, "{name} with target {kind}");
                }
            }
        }
    }

    #[test]
    fn actors_without_an_id_are_still_users() {
        let mut r = record("UpdateUserConfig", Category::User, TargetKind::User);
        r.actor_kind = ActorKind::Service;
        r.actor_id = None;
        r.actor_name = None;
        r.actor_arn = None;
        let e = to_ocsf(&r);
        assert_valid(&e, &r);
        assert_eq!(
            e["actor"]["user"],
            json!({"name": "unknown", "type_id": 3, "type": "System"})
        );
        r.actor_arn = Some("arn:aws:sts::1:assumed-role/x/y".into());
        let e = to_ocsf(&r);
        assert_eq!(e["actor"]["user"]["uid"], "arn:aws:sts::1:assumed-role/x/y");
        assert!(e["actor"]["user"].get("uid_alt").is_none());
    }

    #[test]
    fn record_batch_has_the_ocsf_schema() {
        let a = record("CreateUser", Category::User, TargetKind::User);
        let b = record("TagResource", Category::Tags, TargetKind::Resource);
        let batch = record_batch(&[&a, &b]).unwrap();
        assert_eq!(batch.schema(), arrow_schema());
        assert_eq!(batch.num_rows(), 2);
        let times = batch
            .column(0)
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .unwrap();
        assert_eq!(times.value(0), 1_714_641_242_123);
        let class = batch
            .column_by_name("class_uid")
            .unwrap()
            .as_any()
            .downcast_ref::<Int32Array>()
            .unwrap();
        assert_eq!((class.value(0), class.value(1)), (3001, 6003));
        let events = batch
            .column_by_name("event")
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        let first: Value = serde_json::from_str(events.value(0)).unwrap();
        assert_eq!(first, to_ocsf(&a));
    }
}
