//! The catalogue of audited events against the Connect API model of the SDK we build with.
//!
//! `tests/fixtures/models/connect-2017-08-08.json.gz` is the model of `aws-sdk-connect` 1.220.0
//! (see `tests/fixtures/models/README.md`). A rule, written below in words a reviewer can check,
//! picks every operation of the model that creates, deletes or changes a user, a user's
//! permissions, routing, hierarchy, proficiencies, phone or identity, a security profile, a
//! routing profile, a hierarchy group or structure, a workspace assignment, traffic distribution,
//! sign-in or authentication settings. Each one must be catalogued
//! (`connect_audit_core::catalogue::GROUPS`) or listed in [`LEFT_OUT`] with the reason.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;

use connect_audit_core::catalogue::GROUPS;
use flate2::read::GzDecoder;
use serde_json::Value;

/// The committed model, byte for byte botocore's.
const MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/models/connect-2017-08-08.json.gz"
);

/// The `aws-sdk-connect` version the committed model was matched to.
const MODEL_SDK_VERSION: &str = "1.220.0";

/// Verbs of operations that change something (after an optional `Batch` prefix).
const CHANGING_VERBS: &[&str] = &[
    "Create",
    "Delete",
    "Update",
    "Associate",
    "Disassociate",
    "Put",
    "Tag",
    "Untag",
    "Replicate",
    "Import",
    "Claim",
    "Release",
    "Activate",
    "Deactivate",
];

/// What the audit is about, as the first word(s) after the verb: `User` covers the user's
/// identity, phone, config, security profiles, routing profile, hierarchy, proficiencies and the
/// hierarchy groups and structure (`UserHierarchyGroup`, `UserHierarchyStructure`); `Resource`
/// is `Tag/UntagResource` (tags drive tag-based access control on users and profiles);
/// `Instance`, `ApprovedOrigin`, `SecurityKey`, `AuthenticationProfile` and `AuthCode` are the
/// sign-in and authentication settings; `PredefinedAttribute` is what proficiencies are made of.
const AUDITED_NOUNS: &[&str] = &[
    "User",
    "SecurityProfile",
    "RoutingProfile",
    "Workspace",
    "TrafficDistribution",
    "CrossRegionRouting",
    "AuthenticationProfile",
    "ApprovedOrigin",
    "SecurityKey",
    "Instance",
    "AuthCode",
    "PredefinedAttribute",
    "Resource",
];

/// Top-level request members that name a user, a profile, a group or what is assigned to them:
/// a changing operation carrying one is picked whatever its name.
const AUDITED_MEMBERS: &[&str] = &[
    "UserId",
    "SecurityProfileIds",
    "SecurityProfiles",
    "SecurityProfileId",
    "RoutingProfileId",
    "HierarchyGroupId",
    "EntityArn",
    "ResourceArns",
    "UserProficiencies",
    "TrafficDistributionGroupId",
    "AuthenticationProfileId",
];

/// Operations the rule picks that are deliberately not audited, with the reason.
const LEFT_OUT: &[(&str, &str)] = &[
    (
        "AssociateContactWithUser",
        "offers one queued contact to an agent: contact routing, the user's configuration is unchanged",
    ),
    (
        "UpdateUserNotificationStatus",
        "marks a notification read or hidden for its recipient; no account, permission or routing change",
    ),
    (
        "AssociateInstanceStorageConfig",
        "where recordings, transcripts and streams are stored: no user, permission or sign-in setting",
    ),
    (
        "DisassociateInstanceStorageConfig",
        "where recordings, transcripts and streams are stored: no user, permission or sign-in setting",
    ),
    (
        "UpdateInstanceStorageConfig",
        "where recordings, transcripts and streams are stored: no user, permission or sign-in setting",
    ),
    (
        "CreateWorkspace",
        "the request assigns no user or routing profile and has no Visibility; who sees the workspace \
         is set by AssociateWorkspace and UpdateWorkspaceVisibility, which are audited",
    ),
    (
        "CreateWorkspacePage",
        "workspace content (which view a page shows), not who sees the workspace",
    ),
    (
        "UpdateWorkspacePage",
        "workspace content (which view a page shows), not who sees the workspace",
    ),
    (
        "DeleteWorkspacePage",
        "workspace content (which view a page shows), not who sees the workspace",
    ),
    (
        "UpdateWorkspaceMetadata",
        "workspace name, title and description, not who sees the workspace",
    ),
    (
        "UpdateWorkspaceTheme",
        "workspace colours and fonts, not who sees the workspace",
    ),
    (
        "ImportWorkspaceMedia",
        "workspace logo and images, not who sees the workspace",
    ),
    (
        "DeleteWorkspaceMedia",
        "workspace logo and images, not who sees the workspace",
    ),
    (
        "CreatePredefinedAttribute",
        "defines the names and values proficiencies are chosen from; a user's proficiencies change only \
         through Associate/Update/DisassociateUserProficiencies, which are audited",
    ),
    (
        "UpdatePredefinedAttribute",
        "defines the names and values proficiencies are chosen from; a user's proficiencies change only \
         through Associate/Update/DisassociateUserProficiencies, which are audited",
    ),
    (
        "DeletePredefinedAttribute",
        "defines the names and values proficiencies are chosen from (refused while in use: \
         ResourceInUseException); users' proficiencies change only through the *UserProficiencies calls",
    ),
];

/// Catalogued events that are not operations of the API, with the reason.
const NOT_IN_THE_API: &[(&str, &str)] = &[(
    "AdminGetEmergencyAccessToken",
    "a console event: the emergency-access sign-in to the admin website from the AWS console \
     (IAM action connect:AdminGetEmergencyAccessToken) is logged to CloudTrail under this name, \
     but it is no operation of the Connect API",
)];

/// One operation of the model: its name and top-level request member names.
struct Operation {
    name: String,
    input_members: BTreeSet<String>,
}

fn model() -> Value {
    let file = File::open(MODEL).unwrap_or_else(|e| panic!("{MODEL}: {e}"));
    serde_json::from_reader(GzDecoder::new(file)).unwrap_or_else(|e| panic!("{MODEL}: {e}"))
}

fn operations() -> Vec<Operation> {
    let model = model();
    let shapes = model["shapes"].as_object().expect("shapes");
    model["operations"]
        .as_object()
        .expect("operations")
        .iter()
        .map(|(name, op)| {
            let input_members = op["input"]["shape"]
                .as_str()
                .and_then(|shape| shapes[shape]["members"].as_object())
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            Operation {
                name: name.clone(),
                input_members,
            }
        })
        .collect()
}

/// `Verb` and the rest of an operation name, when the verb is a changing one.
fn changing_verb(name: &str) -> Option<(&'static str, &str)> {
    let name = name.strip_prefix("Batch").unwrap_or(name);
    CHANGING_VERBS.iter().find_map(|verb| {
        let rest = name.strip_prefix(verb)?;
        rest.starts_with(|c: char| c.is_ascii_uppercase())
            .then_some((*verb, rest))
    })
}

/// Whether `rest` starts with the whole word(s) `noun` (`UserHierarchyGroup` starts with `User`,
/// `Username` would not).
fn starts_with_word(rest: &str, noun: &str) -> bool {
    rest.strip_prefix(noun).is_some_and(|after| {
        after.is_empty() || after.starts_with(|c: char| c.is_ascii_uppercase())
    })
}

/// Why the rule picks `op`, or `None` when it does not.
fn picked(op: &Operation) -> Option<String> {
    let name = op.name.as_str();
    // Sign-in: the calls that hand out a session for a user (`GetFederationToken`).
    if name.starts_with("Get") && name.ends_with("Token") {
        return Some("hands out a sign-in token".into());
    }
    let (verb, rest) = changing_verb(name)?;
    if let Some(noun) = AUDITED_NOUNS.iter().find(|n| starts_with_word(rest, n)) {
        return Some(format!("{verb} + {noun}"));
    }
    let members: Vec<&str> = AUDITED_MEMBERS
        .iter()
        .copied()
        .filter(|m| op.input_members.contains(*m))
        .collect();
    (!members.is_empty()).then(|| format!("{verb} with request member(s) {}", members.join(", ")))
}

fn catalogued() -> BTreeSet<&'static str> {
    GROUPS
        .iter()
        .flat_map(|g| g.events.iter().copied())
        .collect()
}

#[test]
fn the_model_is_the_one_of_the_sdk_we_build_with() {
    assert_eq!(
        aws_sdk_connect::meta::PKG_VERSION,
        MODEL_SDK_VERSION,
        "aws-sdk-connect moved: replace tests/fixtures/models/connect-2017-08-08.json.gz with the \
         model of the new version (tests/fixtures/models/README.md says how) and update \
         MODEL_SDK_VERSION"
    );
    assert!(
        operations().len() > 300,
        "the model should hold the whole Connect API"
    );
}

#[test]
fn every_operation_the_rule_picks_is_catalogued_or_left_out() {
    let catalogued = catalogued();
    let left_out: BTreeMap<&str, &str> = LEFT_OUT.iter().copied().collect();
    let missing: Vec<String> = operations()
        .iter()
        .filter_map(|op| {
            let why = picked(op)?;
            let known =
                catalogued.contains(op.name.as_str()) || left_out.contains_key(op.name.as_str());
            (!known).then(|| format!("{} ({why})", op.name))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "operations that change what the audit covers are neither in catalogue::GROUPS nor in \
         LEFT_OUT (with a reason):\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn every_catalogued_event_is_an_operation_of_the_model() {
    let ops: BTreeSet<String> = operations().into_iter().map(|op| op.name).collect();
    let console_only: BTreeSet<&str> = NOT_IN_THE_API.iter().map(|(name, _)| *name).collect();
    let unknown: Vec<&str> = catalogued()
        .into_iter()
        .filter(|e| !ops.contains(*e) && !console_only.contains(e))
        .collect();
    assert!(
        unknown.is_empty(),
        "catalogued events that are not operations of the Connect API model: {unknown:?}"
    );
    for (name, _) in NOT_IN_THE_API {
        assert!(
            !ops.contains(*name),
            "{name} is an operation of the model now: drop it from NOT_IN_THE_API"
        );
        assert!(
            catalogued().contains(name),
            "{name} is listed as a console event but not catalogued"
        );
    }
}

#[test]
fn left_out_operations_exist_are_picked_and_are_not_catalogued() {
    let ops: BTreeMap<String, Operation> = operations()
        .into_iter()
        .map(|op| (op.name.clone(), op))
        .collect();
    let catalogued = catalogued();
    let mut seen = BTreeSet::new();
    for (name, reason) in LEFT_OUT {
        assert!(seen.insert(*name), "{name} is in LEFT_OUT twice");
        assert!(
            !reason.trim().is_empty(),
            "{name} is left out without a reason"
        );
        let op = ops
            .get(*name)
            .unwrap_or_else(|| panic!("{name} is in LEFT_OUT but not an operation of the model"));
        assert!(
            !catalogued.contains(name),
            "{name} is both catalogued and in LEFT_OUT"
        );
        assert!(
            picked(op).is_some(),
            "{name} is in LEFT_OUT but the rule does not pick it: drop it"
        );
    }
}

#[test]
fn the_rule_reads_operation_names_as_intended() {
    let op = |name: &str, members: &[&str]| Operation {
        name: name.into(),
        input_members: members.iter().map(|m| (*m).to_owned()).collect(),
    };
    assert!(picked(&op("UpdateUserHierarchyStructure", &[])).is_some());
    assert!(picked(&op("DisassociateSecurityKey", &["InstanceId"])).is_some());
    assert!(picked(&op("GetFederationToken", &["InstanceId"])).is_some());
    assert!(picked(&op("AssociateContactWithUser", &["UserId"])).is_some());
    assert!(picked(&op("BatchUpdateUser", &[])).is_some());
    // Reads, and changes to other things, are not picked.
    assert!(picked(&op("DescribeUser", &["UserId"])).is_none());
    assert!(picked(&op("MonitorContact", &["UserId"])).is_none());
    assert!(picked(&op("UpdateQueueName", &["QueueId"])).is_none());
    assert!(picked(&op("TagContact", &["ContactId"])).is_none());
    assert!(picked(&op("Updater", &[])).is_none());
    assert!(picked(&op("CreateUsername", &[])).is_none());
}

/// Members of catalogued calls that the model marks secret but that are kept: identity values
/// an auditor needs to read what an identity change set, and instance names.
const SENSITIVE_KEPT: &[(&str, &str)] = &[
    ("FirstName", "identity: the user's name"),
    ("LastName", "identity: the user's name"),
    ("Email", "identity: the user's e-mail"),
    ("SecondaryEmail", "identity: the user's second e-mail"),
    ("DeskPhoneNumber", "identity: the user's desk phone"),
    (
        "PhoneNumber",
        "identity: a phone number of the user's phone configuration",
    ),
    ("InstanceAlias", "the name of an instance"),
    ("ReplicaAlias", "the name of a replica instance"),
];

/// Every member reachable from `shape` whose own shape the model marks `sensitive`, as
/// `(member name, path)`.
fn sensitive_members(
    shapes: &serde_json::Map<String, Value>,
    shape: &str,
    path: &str,
    seen: &mut BTreeSet<String>,
    out: &mut BTreeSet<(String, String)>,
) {
    if !seen.insert(shape.to_owned()) {
        return;
    }
    let def = &shapes[shape];
    let mut visit = |name: &str, target: &str, path: String| {
        if shapes[target]["sensitive"] == Value::Bool(true) {
            out.insert((name.to_owned(), path.clone()));
        }
        sensitive_members(shapes, target, &path, seen, out);
    };
    match def["type"].as_str() {
        Some("structure") => {
            for (name, member) in def["members"].as_object().into_iter().flatten() {
                let target = member["shape"].as_str().unwrap();
                visit(name, target, format!("{path}.{name}"));
            }
        }
        Some("list") => {
            let target = def["member"]["shape"].as_str().unwrap();
            sensitive_members(shapes, target, &format!("{path}[]"), seen, out);
        }
        Some("map") => {
            let target = def["value"]["shape"].as_str().unwrap();
            sensitive_members(shapes, target, &format!("{path}{{}}"), seen, out);
        }
        _ => {}
    }
}

#[test]
fn every_secret_member_of_a_catalogued_call_is_removed_or_kept_on_purpose() {
    use connect_audit_core::redact::{Redaction, SECRET_KEYS};
    let model = model();
    let shapes = model["shapes"].as_object().unwrap();
    let redaction = Redaction::secrets();
    let kept: BTreeMap<&str, &str> = SENSITIVE_KEPT.iter().copied().collect();
    let mut found = BTreeSet::new();
    for name in catalogued() {
        let Some(op) = model["operations"].get(name) else {
            continue; // AdminGetEmergencyAccessToken: no API (see above).
        };
        for (side, key) in [("request", "input"), ("response", "output")] {
            if let Some(shape) = op[key]["shape"].as_str() {
                let mut seen = BTreeSet::new();
                sensitive_members(
                    shapes,
                    shape,
                    &format!("{name} {side}"),
                    &mut seen,
                    &mut found,
                );
            }
        }
    }
    assert!(found.len() > 5, "{found:?}");
    let unhandled: Vec<&(String, String)> = found
        .iter()
        .filter(|(member, _)| !redaction.removes(member) && !kept.contains_key(member.as_str()))
        .collect();
    assert!(
        unhandled.is_empty(),
        "members the model marks secret that are neither removed (connect_audit_core::redact::\
         SECRET_KEYS) nor kept on purpose (SENSITIVE_KEPT): {unhandled:?}"
    );
    // The list follows the model: each removed key is a secret member it names, but for
    // `SignInUrl` (not marked; removed as the way in for the user it names).
    let names: BTreeSet<&str> = found.iter().map(|(m, _)| m.as_str()).collect();
    for key in SECRET_KEYS.iter().filter(|k| **k != "SignInUrl") {
        assert!(
            names.contains(key),
            "{key} is not a secret member of a catalogued call"
        );
    }
    for (member, _) in SENSITIVE_KEPT {
        assert!(
            names.contains(member),
            "{member} is not a secret member of a catalogued call"
        );
        assert!(
            !redaction.removes(member),
            "{member} is both kept and removed"
        );
    }
}
