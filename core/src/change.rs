//! What an audited call changed: for each call, the attributes of its target it sets, whether
//! it replaces them or adds and removes members, and how `after` follows from the request and
//! `before` (issue H's decoding). Pure: no I/O, no clock; the caller brings the state known
//! before the event and a [`Namer`] that names ids as of the event time.
//!
//! A state is a JSON object, one key per attribute, each value in one canonical form so two
//! states compare equal when Connect would show the same thing:
//!
//! | attribute | form |
//! |---|---|
//! | `security_profiles`, `permissions` | sorted array of strings (ids, permission names) |
//! | `routing_profile`, `hierarchy_group`, `parent_group` | an id, or `null` for none |
//! | `name` | a string |
//! | `identity` | `{first_name, last_name, email, secondary_email, mobile}`, each a string or `null` |
//! | `phone_config`, `user_config` | the object the request gave |
//! | `proficiencies` | `{"<name>=<value>": level}` |
//! | `tags` | `{"<key>": "<value>"}` |
//! | `queues` | `{"<queue id>/<channel>": {"priority", "delay"}}` |
//!
//! Values CloudTrail hides (`HIDDEN_DUE_TO_SECURITY_REASONS`) are kept as the placeholder in
//! `after`, never compared as a value: [`render`] says a hidden field was set, and the caller
//! compares snapshot versions to say whether it changed.
//!
//! ```
//! use connect_audit_core::change::{self, NoNames};
//! use serde_json::json;
//!
//! let rule = change::rule("UpdateUserSecurityProfiles").unwrap();
//! let before = json!({"security_profiles": ["agent", "qa"]});
//! let request = json!({"SecurityProfileIds": ["admin", "agent"], "UserId": "u", "InstanceId": "i"});
//! let after = change::apply(rule, &request, before.as_object());
//! assert_eq!(after.state["security_profiles"], json!(["admin", "agent"]));
//! let line = change::render(rule, &request, before.as_object(), &after, &NoNames);
//! assert_eq!(line, "security profiles: +admin −qa (now admin, agent)");
//! ```

use serde_json::{Map, Value, json};

use crate::record::{ChangeBasis, TargetKind};

/// The state of one user, profile or group: attribute → canonical value (see the module).
pub type State = Map<String, Value>;

/// The placeholder CloudTrail writes in place of a value it does not show.
pub const HIDDEN: &str = "HIDDEN_DUE_TO_SECURITY_REASONS";

/// What a call does to its target as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// It creates the target: there is no `before`.
    Create,
    /// It changes attributes of an existing target.
    Update,
    /// It deletes the target: there is no `after`.
    Delete,
}

/// How a call changes one attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// The request gives the attribute's whole new value.
    Replace,
    /// The request gives members or entries to add (or, for maps, to set).
    Add,
    /// The request gives members or keys to remove.
    Remove,
}

/// Where an attribute is in the request, and its shape there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One id under this request key; absent or empty is none.
    Id(&'static str),
    /// An array of ids under this request key.
    Ids(&'static str),
    /// A string under this request key.
    Text(&'static str),
    /// An array of strings under this request key (permissions).
    Strings(&'static str),
    /// `IdentityInfo`.
    Identity,
    /// An object under this request key, kept as given.
    Object(&'static str),
    /// Tags: an object of key → value under this request key, or an array of keys to remove.
    Tags(&'static str),
    /// `UserProficiencies`: `[{AttributeName, AttributeValue, Level}]`.
    Proficiencies,
    /// Routing profile queues under this request key: `QueueConfigs`
    /// (`[{QueueReference: {QueueId, Channel}, Priority, Delay}]`) or `QueueReferences`
    /// (`[{QueueId, Channel}]`).
    Queues(&'static str),
}

/// One attribute a call sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The attribute (a key of [`State`]).
    pub attr: &'static str,
    /// Replace, add or remove.
    pub op: Op,
    /// Where it is in the request.
    pub shape: Shape,
}

/// What one audited call changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallChange {
    /// The Connect API operation.
    pub event: &'static str,
    /// What its target is.
    pub kind: TargetKind,
    /// Whether it creates, updates or deletes its target.
    pub lifecycle: Lifecycle,
    /// The attributes it sets.
    pub sets: &'static [Setting],
}

const fn set(attr: &'static str, op: Op, shape: Shape) -> Setting {
    Setting { attr, op, shape }
}

const USER_CREATED: &[Setting] = &[
    set(
        "security_profiles",
        Op::Replace,
        Shape::Ids("SecurityProfileIds"),
    ),
    set(
        "routing_profile",
        Op::Replace,
        Shape::Id("RoutingProfileId"),
    ),
    set(
        "hierarchy_group",
        Op::Replace,
        Shape::Id("HierarchyGroupId"),
    ),
    set("identity", Op::Replace, Shape::Identity),
    set("phone_config", Op::Replace, Shape::Object("PhoneConfig")),
    set("tags", Op::Replace, Shape::Tags("Tags")),
];

/// The user calls (group `user` and `permissions` of the catalogue) whose effect on the user
/// is known from the request.
pub const USER_CALLS: &[CallChange] = &[
    CallChange {
        event: "CreateUser",
        kind: TargetKind::User,
        lifecycle: Lifecycle::Create,
        sets: USER_CREATED,
    },
    CallChange {
        event: "DeleteUser",
        kind: TargetKind::User,
        lifecycle: Lifecycle::Delete,
        sets: &[],
    },
    CallChange {
        event: "UpdateUserSecurityProfiles",
        kind: TargetKind::User,
        lifecycle: Lifecycle::Update,
        sets: &[set(
            "security_profiles",
            Op::Replace,
            Shape::Ids("SecurityProfileIds"),
        )],
    },
    CallChange {
        event: "UpdateUserRoutingProfile",
        kind: TargetKind::User,
        lifecycle: Lifecycle::Update,
        sets: &[set(
            "routing_profile",
            Op::Replace,
            Shape::Id("RoutingProfileId"),
        )],
    },
    CallChange {
        event: "UpdateUserHierarchy",
        kind: TargetKind::User,
        lifecycle: Lifecycle::Update,
        sets: &[set(
            "hierarchy_group",
            Op::Replace,
            Shape::Id("HierarchyGroupId"),
        )],
    },
    CallChange {
        event: "UpdateUserIdentityInfo",
        kind: TargetKind::User,
        lifecycle: Lifecycle::Update,
        sets: &[set("identity", Op::Replace, Shape::Identity)],
    },
    CallChange {
        event: "UpdateUserPhoneConfig",
        kind: TargetKind::User,
        lifecycle: Lifecycle::Update,
        sets: &[set(
            "phone_config",
            Op::Replace,
            Shape::Object("PhoneConfig"),
        )],
    },
    CallChange {
        event: "AssociateUserProficiencies",
        kind: TargetKind::User,
        lifecycle: Lifecycle::Update,
        sets: &[set("proficiencies", Op::Add, Shape::Proficiencies)],
    },
    CallChange {
        event: "UpdateUserProficiencies",
        kind: TargetKind::User,
        lifecycle: Lifecycle::Update,
        sets: &[set("proficiencies", Op::Add, Shape::Proficiencies)],
    },
    CallChange {
        event: "DisassociateUserProficiencies",
        kind: TargetKind::User,
        lifecycle: Lifecycle::Update,
        sets: &[set("proficiencies", Op::Remove, Shape::Proficiencies)],
    },
];

/// The security profile calls.
pub const SECURITY_PROFILE_CALLS: &[CallChange] = &[
    CallChange {
        event: "CreateSecurityProfile",
        kind: TargetKind::SecurityProfile,
        lifecycle: Lifecycle::Create,
        sets: &[
            set("name", Op::Replace, Shape::Text("SecurityProfileName")),
            set("permissions", Op::Replace, Shape::Strings("Permissions")),
            set("tags", Op::Replace, Shape::Tags("Tags")),
        ],
    },
    CallChange {
        event: "UpdateSecurityProfile",
        kind: TargetKind::SecurityProfile,
        lifecycle: Lifecycle::Update,
        sets: &[set(
            "permissions",
            Op::Replace,
            Shape::Strings("Permissions"),
        )],
    },
    CallChange {
        event: "DeleteSecurityProfile",
        kind: TargetKind::SecurityProfile,
        lifecycle: Lifecycle::Delete,
        sets: &[],
    },
];

/// The routing profile calls.
pub const ROUTING_PROFILE_CALLS: &[CallChange] = &[
    CallChange {
        event: "CreateRoutingProfile",
        kind: TargetKind::RoutingProfile,
        lifecycle: Lifecycle::Create,
        sets: &[
            set("name", Op::Replace, Shape::Text("Name")),
            set("queues", Op::Replace, Shape::Queues("QueueConfigs")),
            set("tags", Op::Replace, Shape::Tags("Tags")),
        ],
    },
    CallChange {
        event: "DeleteRoutingProfile",
        kind: TargetKind::RoutingProfile,
        lifecycle: Lifecycle::Delete,
        sets: &[],
    },
    CallChange {
        event: "UpdateRoutingProfileName",
        kind: TargetKind::RoutingProfile,
        lifecycle: Lifecycle::Update,
        sets: &[set("name", Op::Replace, Shape::Text("Name"))],
    },
    CallChange {
        event: "UpdateRoutingProfileQueues",
        kind: TargetKind::RoutingProfile,
        lifecycle: Lifecycle::Update,
        sets: &[set("queues", Op::Add, Shape::Queues("QueueConfigs"))],
    },
    CallChange {
        event: "AssociateRoutingProfileQueues",
        kind: TargetKind::RoutingProfile,
        lifecycle: Lifecycle::Update,
        sets: &[set("queues", Op::Add, Shape::Queues("QueueConfigs"))],
    },
    CallChange {
        event: "DisassociateRoutingProfileQueues",
        kind: TargetKind::RoutingProfile,
        lifecycle: Lifecycle::Update,
        sets: &[set("queues", Op::Remove, Shape::Queues("QueueReferences"))],
    },
];

/// The hierarchy group calls.
pub const HIERARCHY_CALLS: &[CallChange] = &[
    CallChange {
        event: "CreateUserHierarchyGroup",
        kind: TargetKind::HierarchyGroup,
        lifecycle: Lifecycle::Create,
        sets: &[
            set("name", Op::Replace, Shape::Text("Name")),
            set("parent_group", Op::Replace, Shape::Id("ParentGroupId")),
            set("tags", Op::Replace, Shape::Tags("Tags")),
        ],
    },
    CallChange {
        event: "DeleteUserHierarchyGroup",
        kind: TargetKind::HierarchyGroup,
        lifecycle: Lifecycle::Delete,
        sets: &[],
    },
    CallChange {
        event: "UpdateUserHierarchyGroupName",
        kind: TargetKind::HierarchyGroup,
        lifecycle: Lifecycle::Update,
        sets: &[set("name", Op::Replace, Shape::Text("Name"))],
    },
];

/// The tag calls, whatever the resource (`resourceArn`).
pub const TAG_CALLS: &[CallChange] = &[
    CallChange {
        event: "TagResource",
        kind: TargetKind::Resource,
        lifecycle: Lifecycle::Update,
        sets: &[set("tags", Op::Add, Shape::Tags("tags"))],
    },
    CallChange {
        event: "UntagResource",
        kind: TargetKind::Resource,
        lifecycle: Lifecycle::Update,
        sets: &[set("tags", Op::Remove, Shape::Tags("tagKeys"))],
    },
];

/// Every family's table.
pub const FAMILIES: [&[CallChange]; 5] = [
    USER_CALLS,
    SECURITY_PROFILE_CALLS,
    ROUTING_PROFILE_CALLS,
    HIERARCHY_CALLS,
    TAG_CALLS,
];

/// The change rule of a call, if its effect is decoded.
pub fn rule(event: &str) -> Option<&'static CallChange> {
    FAMILIES
        .iter()
        .flat_map(|family| family.iter())
        .find(|c| c.event == event)
}

/// What [`apply`] gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The target's state after the call: `before` with the attributes the call sets
    /// changed. An attribute added to or removed from when its `before` is not known is left
    /// out (it is not guessed); [`Self::unknown`] lists it.
    pub state: State,
    /// The attributes whose value after the call cannot be known.
    pub unknown: Vec<&'static str>,
}

/// Applies a successful call to `before` (`None`: nothing known). A delete gives the empty
/// state.
pub fn apply(rule: &CallChange, request: &Value, before: Option<&State>) -> Applied {
    let mut state = match rule.lifecycle {
        Lifecycle::Create | Lifecycle::Delete => State::new(),
        Lifecycle::Update => before.cloned().unwrap_or_default(),
    };
    let mut unknown = Vec::new();
    if rule.lifecycle == Lifecycle::Delete {
        return Applied { state, unknown };
    }
    for setting in rule.sets {
        let given = read(setting.shape, request);
        match setting.op {
            Op::Replace => {
                state.insert(setting.attr.to_owned(), given.unwrap_or(Value::Null));
            }
            Op::Add | Op::Remove => {
                let Some(Value::Object(mut current)) = before
                    .and_then(|b| b.get(setting.attr))
                    .cloned()
                    .or_else(|| (rule.lifecycle == Lifecycle::Create).then(|| json!({})))
                else {
                    state.remove(setting.attr);
                    unknown.push(setting.attr);
                    continue;
                };
                if let Some(Value::Object(given)) = given {
                    for (key, value) in given {
                        if setting.op == Op::Add {
                            current.insert(key, value);
                        } else {
                            current.remove(&key);
                        }
                    }
                }
                state.insert(setting.attr.to_owned(), Value::Object(current));
            }
        }
    }
    Applied { state, unknown }
}

/// The attribute's canonical value in `request`; for a removal, an object whose keys are what
/// is removed. `None` when the request does not carry it.
fn read(shape: Shape, request: &Value) -> Option<Value> {
    let text = |v: &Value| v.as_str().map(str::to_owned);
    match shape {
        Shape::Id(key) => Some(
            request
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map_or(Value::Null, |s| {
                    Value::String(crate::ids::decode_id(s).into_owned())
                }),
        ),
        Shape::Ids(key) | Shape::Strings(key) => {
            let mut items: Vec<String> = request
                .get(key)?
                .as_array()?
                .iter()
                .filter_map(text)
                .map(|s| match shape {
                    Shape::Ids(_) => crate::ids::decode_id(&s).into_owned(),
                    _ => s,
                })
                .collect();
            items.sort();
            items.dedup();
            Some(json!(items))
        }
        Shape::Text(key) => request.get(key).and_then(Value::as_str).map(|s| json!(s)),
        Shape::Identity => {
            let info = request.get("IdentityInfo")?.as_object()?;
            let field = |k: &str| info.get(k).cloned().unwrap_or(Value::Null);
            Some(json!({
                "first_name": field("FirstName"),
                "last_name": field("LastName"),
                "email": field("Email"),
                "secondary_email": field("SecondaryEmail"),
                "mobile": field("Mobile"),
            }))
        }
        Shape::Object(key) => request.get(key).map(canonical_object),
        Shape::Tags(key) => match request.get(key)? {
            Value::Object(tags) => Some(Value::Object(tags.clone())),
            Value::Array(keys) => Some(Value::Object(
                keys.iter()
                    .filter_map(text)
                    .map(|k| (k, Value::Null))
                    .collect(),
            )),
            _ => None,
        },
        Shape::Proficiencies => {
            let entries = request.get("UserProficiencies")?.as_array()?;
            Some(Value::Object(
                entries
                    .iter()
                    .filter_map(|p| {
                        let name = p.get("AttributeName")?.as_str()?;
                        let value = p.get("AttributeValue")?.as_str()?;
                        Some((
                            format!("{name}={value}"),
                            p.get("Level")
                                .and_then(Value::as_f64)
                                .map_or(Value::Null, |l| json!(l)),
                        ))
                    })
                    .collect(),
            ))
        }
        Shape::Queues(key) => {
            let entries = request.get(key)?.as_array()?;
            Some(Value::Object(
                entries
                    .iter()
                    .filter_map(|q| {
                        let reference = q.get("QueueReference").unwrap_or(q);
                        let queue = reference.get("QueueId")?.as_str()?;
                        let channel = reference.get("Channel")?.as_str()?;
                        Some((
                            format!("{}/{channel}", crate::ids::decode_id(queue)),
                            json!({
                                "priority": q.get("Priority").cloned().unwrap_or(Value::Null),
                                "delay": q.get("Delay").cloned().unwrap_or(Value::Null),
                            }),
                        ))
                    })
                    .collect(),
            ))
        }
    }
}

/// An object attribute (`phone_config`) in one form: members that are `null` or empty
/// strings left out, as a request may omit what `DescribeUser` gives empty.
pub fn canonical_object(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !(v.is_null() || v.as_str() == Some("")))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Names ids as of the event time.
pub trait Namer {
    /// The name of the thing of `kind` with id `id`, if known.
    fn name(&self, kind: TargetKind, id: &str) -> Option<String>;

    /// The path of a hierarchy group, top level first (`["Tokyo", "Floor 2"]`), if known;
    /// by default its own name alone.
    fn group_path(&self, id: &str) -> Option<Vec<String>> {
        self.name(TargetKind::HierarchyGroup, id).map(|n| vec![n])
    }

    /// Whether an identity field (`email`, …) CloudTrail hid in this row's request changed,
    /// when snapshot versions observed before and after the event tell; `None` (the default)
    /// when they do not.
    fn hidden_changed(&self, _field: &str) -> Option<bool> {
        None
    }
}

/// A [`Namer`] that knows no name: ids are shown as they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoNames;

impl Namer for NoNames {
    fn name(&self, _: TargetKind, _: &str) -> Option<String> {
        None
    }
}

/// The kind of thing the ids of an attribute name, if they name one.
fn named_kind(attr: &str) -> Option<TargetKind> {
    match attr {
        "security_profiles" => Some(TargetKind::SecurityProfile),
        "routing_profile" => Some(TargetKind::RoutingProfile),
        "hierarchy_group" | "parent_group" => Some(TargetKind::HierarchyGroup),
        _ => None,
    }
}

/// The readable form of one id of `attr`: its name (a group's path joined by ` › `), or the
/// id itself when no name is known.
fn display_id(attr: &str, id: &str, namer: &dyn Namer) -> String {
    name_of(attr, id, namer).unwrap_or_else(|| id.to_owned())
}

/// The name of one id of `attr` (a group's path joined by ` › `), if known.
fn name_of(attr: &str, id: &str, namer: &dyn Namer) -> Option<String> {
    match named_kind(attr)? {
        TargetKind::HierarchyGroup => namer.group_path(id).map(|path| path.join(" › ")),
        kind => namer.name(kind, id),
    }
}

/// `state` with each id replaced by `{"id", "name"}` (name `null` when unknown), for the
/// `before` and `after` columns. Attributes that hold no ids are as they are.
pub fn named(state: &State, namer: &dyn Namer) -> Value {
    let name_of = |attr: &str, id: &str| json!({"id": id, "name": name_of(attr, id, namer)});
    let mut out = Map::new();
    for (attr, value) in state {
        let value = match (named_kind(attr), value) {
            (Some(_), Value::String(id)) => name_of(attr, id),
            (Some(_), Value::Array(ids)) => Value::Array(
                ids.iter()
                    .map(|id| id.as_str().map_or(Value::Null, |id| name_of(attr, id)))
                    .collect(),
            ),
            _ => value.clone(),
        };
        out.insert(attr.clone(), value);
    }
    Value::Object(out)
}

/// The words of an attribute in a change line.
fn label(attr: &str) -> &str {
    match attr {
        "security_profiles" => "security profiles",
        "routing_profile" => "routing profile",
        "hierarchy_group" => "hierarchy group",
        "parent_group" => "parent group",
        "phone_config" => "phone config",
        other => other,
    }
}

/// The members of a set- or map-valued attribute, each as shown: ids named, tags and
/// proficiencies as `key=value`, queues as `<queue>/<channel>`.
fn members(attr: &str, value: Option<&Value>, namer: &dyn Namer) -> Vec<(String, String)> {
    let mut members = match value {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|id| (id.to_owned(), display_id(attr, id, namer)))
            .collect(),
        Some(Value::Object(entries)) => entries
            .iter()
            .map(|(key, v)| {
                let shown = match v {
                    Value::String(s) => format!("{key}={s}"),
                    Value::Null | Value::Object(_) => key.clone(),
                    other => format!("{key}={other}"),
                };
                (key.clone(), shown)
            })
            .collect(),
        _ => Vec::new(),
    };
    // As a person reads a list: by what is shown.
    members.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    members
}

/// One readable line of what a call changed, in names: for a replaced set
/// `security profiles: +Admin −QualityAnalyst (now Admin, Agent)`, for a replaced id
/// `routing profile: Tier 1 Support → Tier 2 Support`, for identity the fields that changed
/// (`identity: e-mail changed`), for additions and removals `tags: +team=blue −old`; a create
/// `created with …`, a delete `deleted (had …)`. Without `before`, what a replace sets is
/// shown as `now …`, never as a difference.
pub fn render(
    rule: &CallChange,
    request: &Value,
    before: Option<&State>,
    after: &Applied,
    namer: &dyn Namer,
) -> String {
    match rule.lifecycle {
        Lifecycle::Create => {
            // What it was created with that gives or routes: not its identity, phone
            // settings, tags or its own name (the row's target names it).
            let parts: Vec<String> = rule
                .sets
                .iter()
                .filter(|s| !matches!(s.attr, "identity" | "phone_config" | "tags" | "name"))
                .filter_map(|s| summary(s.attr, after.state.get(s.attr), namer))
                .collect();
            // A group is created under its parent; the rest with what it is given.
            let (under, with): (Vec<String>, Vec<String>) =
                parts.into_iter().partition(|p| p.starts_with("under "));
            let mut line = "created".to_owned();
            for part in under {
                line = format!("{line} {part}");
            }
            if !with.is_empty() {
                line = format!("{line} with {}", with.join("; "));
            }
            line
        }
        Lifecycle::Delete => {
            let had: Vec<String> = before
                .into_iter()
                .flat_map(|b| b.iter())
                .filter(|(attr, _)| matches!(attr.as_str(), "security_profiles" | "permissions"))
                .filter_map(|(attr, v)| summary(attr, Some(v), namer))
                .collect();
            if had.is_empty() {
                "deleted".to_owned()
            } else {
                format!("deleted (had {})", had.join("; "))
            }
        }
        Lifecycle::Update => rule
            .sets
            .iter()
            .map(|s| update_line(s, request, before, after, namer))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// The value of an attribute in a `created with` or `deleted (had …)` list; `None` when empty.
fn summary(attr: &str, value: Option<&Value>, namer: &dyn Namer) -> Option<String> {
    match value? {
        Value::String(id) if attr == "parent_group" => {
            Some(format!("under {}", display_id(attr, id, namer)))
        }
        Value::String(id) if named_kind(attr).is_some() => Some(display_id(attr, id, namer)),
        Value::String(text) => Some(text.clone()),
        value @ (Value::Array(_) | Value::Object(_)) if attr != "identity" => {
            let shown: Vec<String> = members(attr, Some(value), namer)
                .into_iter()
                .map(|(_, shown)| shown)
                .collect();
            (!shown.is_empty()).then(|| match attr {
                "security_profiles" => shown.join(", "),
                other => format!("{}: {}", label(other), shown.join(", ")),
            })
        }
        _ => None,
    }
}

fn update_line(
    setting: &Setting,
    request: &Value,
    before: Option<&State>,
    after: &Applied,
    namer: &dyn Namer,
) -> String {
    let attr = setting.attr;
    let old = before.and_then(|b| b.get(attr));
    let new = after.state.get(attr);
    let head = label(attr);
    match (setting.shape, setting.op) {
        (Shape::Id(_) | Shape::Text(_), _) => {
            let show = |v: Option<&Value>| match v {
                Some(Value::String(s)) => display_id(attr, s, namer),
                _ => "none".to_owned(),
            };
            match old {
                Some(old) if Some(old) == new => format!("{head}: {} (unchanged)", show(new)),
                Some(old) => format!("{head}: {} → {}", show(Some(old)), show(new)),
                None => format!("{head}: now {}", show(new)),
            }
        }
        (Shape::Identity, _) => identity_line(old, new, namer),
        (Shape::Object(_), _) => match old {
            Some(old) if Some(old) == new => format!("{head}: unchanged"),
            Some(_) => format!("{head}: changed"),
            None => format!("{head}: set"),
        },
        (_, Op::Replace) => {
            let now = members(attr, new, namer);
            let now_text = now.iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>();
            let now_text = if now_text.is_empty() {
                "none".to_owned()
            } else {
                now_text.join(", ")
            };
            match old {
                Some(old) => {
                    let was = members(attr, Some(old), namer);
                    let diff = difference(&was, &now);
                    if diff.is_empty() {
                        format!("{head}: unchanged ({now_text})")
                    } else {
                        format!("{head}: {diff} (now {now_text})")
                    }
                }
                None => format!("{head}: now {now_text}"),
            }
        }
        (_, op) => {
            let given = members(attr, read(setting.shape, request).as_ref(), namer);
            let sign = if op == Op::Add { '+' } else { '−' };
            let mut parts: Vec<String> = given.iter().map(|(_, s)| format!("{sign}{s}")).collect();
            if parts.is_empty() {
                parts.push("nothing".to_owned());
            }
            let mut line = format!("{head}: {}", parts.join(" "));
            if let Some(now) = new.filter(|_| old.is_some()) {
                let now: Vec<String> = members(attr, Some(now), namer)
                    .into_iter()
                    .map(|(_, s)| s)
                    .collect();
                let now = if now.is_empty() {
                    "none".to_owned()
                } else {
                    now.join(", ")
                };
                line = format!("{line} (now {now})");
            }
            line
        }
    }
}

/// `+added −removed` between two member lists (compared by key, shown by name).
fn difference(was: &[(String, String)], now: &[(String, String)]) -> String {
    let added = now
        .iter()
        .filter(|(k, _)| !was.iter().any(|(w, _)| w == k))
        .map(|(_, s)| format!("+{s}"));
    let removed = was
        .iter()
        .filter(|(k, _)| !now.iter().any(|(n, _)| n == k))
        .map(|(_, s)| format!("−{s}"));
    added.chain(removed).collect::<Vec<_>>().join(" ")
}

/// The identity fields, with the words a change line uses.
const IDENTITY_FIELDS: [(&str, &str); 5] = [
    ("first_name", "first name"),
    ("last_name", "last name"),
    ("email", "e-mail"),
    ("secondary_email", "secondary e-mail"),
    ("mobile", "mobile"),
];

/// `identity: e-mail changed` (the fields whose values differ, never the values); a field
/// CloudTrail hides on either side is not compared: `identity: e-mail set (hidden)`, unless
/// the snapshot versions around the event say whether it changed ([`Namer::hidden_changed`]).
fn identity_line(old: Option<&Value>, new: Option<&Value>, namer: &dyn Namer) -> String {
    let field = |v: Option<&Value>, k: &str| v.and_then(|v| v.get(k)).cloned();
    let mut changed = Vec::new();
    let mut hidden = Vec::new();
    for (key, words) in IDENTITY_FIELDS {
        let (was, now) = (field(old, key), field(new, key));
        let is_hidden = |v: &Option<Value>| v.as_ref().and_then(Value::as_str) == Some(HIDDEN);
        if is_hidden(&now) || (old.is_some() && is_hidden(&was)) {
            match namer.hidden_changed(key) {
                Some(true) => changed.push(words),
                None if now.as_ref().is_some_and(|v| !v.is_null()) => hidden.push(words),
                // Unchanged as the versions show, or not set at all.
                _ => {}
            }
        } else if old.is_some() && was.unwrap_or(Value::Null) != now.unwrap_or(Value::Null) {
            changed.push(words);
        }
    }
    let mut parts = Vec::new();
    if !changed.is_empty() {
        parts.push(format!("{} changed", changed.join(", ")));
    }
    if !hidden.is_empty() {
        parts.push(format!("{} set (hidden)", hidden.join(", ")));
    }
    if parts.is_empty() {
        parts.push(if old.is_some() { "unchanged" } else { "set" }.to_owned());
    }
    format!("identity: {}", parts.join("; "))
}

/// What one row changed, ready for its columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The one readable line (`change`); for a failed call, what it tried.
    pub change: String,
    /// The attributes the call sets, as they were, named (`before`); `None` when unknown or
    /// when the call creates its target.
    pub before: Option<Value>,
    /// The same attributes after the call, named (`after`); `None` for a delete.
    pub after: Option<Value>,
    /// Where `before` came from.
    pub basis: ChangeBasis,
}

/// The state of every target seen so far, fed events in event-time order: each row's
/// `before` is the newest state known before it ([`ChangeBasis::Trail`] when an earlier event set
/// it, [`ChangeBasis::Snapshot`] when it rests on a snapshot version given with [`Self::observe`]).
#[derive(Debug, Default, Clone)]
pub struct Tracker {
    states: std::collections::HashMap<(TargetKind, String), Entry>,
    /// Targets an event of the trail deleted (and none re-created since): known to be gone,
    /// so no snapshot version from before the delete brings them back.
    gone: std::collections::HashSet<(TargetKind, String)>,
}

/// What the [`Tracker`] knows of one target.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    state: State,
    /// [`ChangeBasis::Snapshot`] when the state started from a snapshot version, else
    /// [`ChangeBasis::Trail`].
    basis: ChangeBasis,
    /// The attributes an event of the trail has set since: a `before` made only of these is
    /// the trail's even when the state started from a snapshot.
    by_trail: Vec<String>,
}

impl Entry {
    /// Where a `before` made of `attrs` of this state comes from.
    fn basis_of<'a>(&self, mut attrs: impl Iterator<Item = &'a str>) -> ChangeBasis {
        if self.basis == ChangeBasis::Snapshot
            && !attrs.all(|a| self.by_trail.iter().any(|t| t == a))
        {
            ChangeBasis::Snapshot
        } else {
            ChangeBasis::Trail
        }
    }
}

impl Tracker {
    /// No state known.
    pub fn new() -> Self {
        Self::default()
    }

    /// A snapshot version of a target, observed before the events that follow.
    pub fn observe(&mut self, kind: TargetKind, id: &str, state: State) {
        self.states.insert(
            (kind, id.to_ascii_lowercase()),
            Entry {
                state,
                basis: ChangeBasis::Snapshot,
                by_trail: Vec::new(),
            },
        );
    }

    /// The state known now of a target.
    pub fn state(&self, kind: TargetKind, id: &str) -> Option<&State> {
        self.states
            .get(&(kind, id.to_ascii_lowercase()))
            .map(|e| &e.state)
    }

    /// Every target of `kind` with a known state, by id (lower case), in no order.
    pub fn targets(&self, kind: TargetKind) -> impl Iterator<Item = (&str, &State)> {
        self.states
            .iter()
            .filter(move |((k, _), _)| *k == kind)
            .map(|((_, id), entry)| (id.as_str(), &entry.state))
    }

    /// An attribute of a target as an event of the trail last set it; `None` when no event
    /// did (it rests on a snapshot version, or is unknown).
    pub fn set_by_trail(&self, kind: TargetKind, id: &str, attr: &str) -> Option<&Value> {
        let entry = self.states.get(&(kind, id.to_ascii_lowercase()))?;
        (entry.basis != ChangeBasis::Snapshot || entry.by_trail.iter().any(|a| a == attr))
            .then(|| entry.state.get(attr))
            .flatten()
    }

    /// Whether anything is known of a target: a state (even of no attribute), or that an
    /// event deleted it.
    pub fn knows(&self, kind: TargetKind, id: &str) -> bool {
        let key = (kind, id.to_ascii_lowercase());
        self.states.contains_key(&key) || self.gone.contains(&key)
    }

    /// Decodes one event on `kind`/`id`, against the state known now. `None` for a call whose
    /// effect is not decoded (see [`rule`]). A failed call changes nothing: its line is
    /// `tried: …` with what it would have done. `before` is known only when the state holds
    /// every attribute the call sets (any state, for a delete); otherwise it is `None` and the
    /// basis [`ChangeBasis::Unknown`]. Give the [`Transition`] to [`advance`](Self::advance)
    /// to move the state on.
    pub fn decode(
        &self,
        event: &str,
        kind: TargetKind,
        id: &str,
        request: &Value,
        failed: bool,
        namer: &dyn Namer,
    ) -> Option<(Decoded, Transition)> {
        let rule = rule(event)?;
        let key = (kind, id.to_ascii_lowercase());
        let known = self.states.get(&key);
        let covers = |state: &State| {
            rule.lifecycle == Lifecycle::Delete
                || rule.sets.iter().all(|s| state.contains_key(s.attr))
        };
        let (before, basis) = match (known, rule.lifecycle) {
            (_, Lifecycle::Create) => (None, ChangeBasis::Trail),
            (Some(e), Lifecycle::Delete) => (
                Some(&e.state),
                e.basis_of(e.state.keys().map(String::as_str)),
            ),
            (Some(e), _) if covers(&e.state) => {
                (Some(&e.state), e.basis_of(rule.sets.iter().map(|s| s.attr)))
            }
            _ => (None, ChangeBasis::Unknown),
        };
        // The state the call is applied to: what is known, even in part (what it does not
        // set is carried over).
        let base = known.map(|e| &e.state);
        let after = apply(rule, request, base);
        let line = render(rule, request, before, &after, namer);
        let attrs = |state: &State| -> State {
            let wanted = |attr: &str| {
                rule.lifecycle == Lifecycle::Delete || rule.sets.iter().any(|s| s.attr == attr)
            };
            state
                .iter()
                .filter(|(attr, _)| wanted(attr))
                .map(|(a, v)| (a.clone(), v.clone()))
                .collect()
        };
        let decoded = Decoded {
            change: if failed {
                format!("tried: {line}")
            } else {
                line
            },
            before: before.map(|b| named(&attrs(b), namer)),
            after: (rule.lifecycle != Lifecycle::Delete)
                .then(|| named(&attrs(&after.state), namer)),
            basis,
        };
        let set_now = rule.sets.iter().map(|s| s.attr.to_owned());
        let next = match rule.lifecycle {
            _ if failed => Next::Keep,
            Lifecycle::Delete => Next::Remove,
            Lifecycle::Create => Next::Set(Entry {
                state: after.state,
                basis: ChangeBasis::Trail,
                by_trail: set_now.collect(),
            }),
            // What rests on a snapshot version stays so, but for what events set since.
            Lifecycle::Update => Next::Set(match known {
                Some(e) => {
                    let mut by_trail = e.by_trail.clone();
                    by_trail.extend(set_now.filter(|a| !e.by_trail.contains(a)));
                    Entry {
                        state: after.state,
                        basis: e.basis,
                        by_trail,
                    }
                }
                None => Entry {
                    state: after.state,
                    basis: ChangeBasis::Trail,
                    by_trail: set_now.collect(),
                },
            }),
        };
        Some((decoded, Transition { key, next }))
    }

    /// Moves the state on by what [`decode`](Self::decode) found.
    pub fn advance(&mut self, transition: Transition) {
        match transition.next {
            Next::Keep => {}
            Next::Remove => {
                self.states.remove(&transition.key);
                self.gone.insert(transition.key);
            }
            Next::Set(entry) => {
                self.gone.remove(&transition.key);
                self.states.insert(transition.key, entry);
            }
        }
    }
}

/// How one decoded event moves the [`Tracker`]'s state on.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    key: (TargetKind, String),
    next: Next,
}

#[derive(Debug, Clone, PartialEq)]
enum Next {
    Keep,
    Remove,
    Set(Entry),
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    struct Names(
        HashMap<&'static str, &'static str>,
        HashMap<&'static str, Vec<&'static str>>,
    );

    impl Namer for Names {
        fn name(&self, _: TargetKind, id: &str) -> Option<String> {
            self.0.get(id).map(|s| (*s).to_owned())
        }
        fn group_path(&self, id: &str) -> Option<Vec<String>> {
            self.1
                .get(id)
                .map(|p| p.iter().map(|s| (*s).to_owned()).collect())
        }
    }

    fn names() -> Names {
        Names(
            HashMap::from([
                ("sp-admin", "Admin"),
                ("sp-agent", "Agent"),
                ("sp-qa", "QualityAnalyst"),
                ("rp-1", "Tier 1 Support"),
                ("rp-2", "Tier 2 Support"),
            ]),
            HashMap::from([
                ("hg-tokyo2", vec!["Tokyo", "Floor 2"]),
                ("hg-osaka-a", vec!["Osaka", "Team A"]),
            ]),
        )
    }

    fn line(event: &str, request: &Value, before: Option<&Value>) -> (String, Applied) {
        let rule = rule(event).unwrap();
        let before = before.and_then(Value::as_object);
        let after = apply(rule, request, before);
        (render(rule, request, before, &after, &names()), after)
    }

    #[test]
    fn security_profiles_replaced_show_gains_losses_and_the_result() {
        let (text, after) = line(
            "UpdateUserSecurityProfiles",
            &json!({"SecurityProfileIds": ["sp-admin", "sp-agent"]}),
            Some(&json!({"security_profiles": ["sp-agent", "sp-qa"], "routing_profile": "rp-1"})),
        );
        assert_eq!(
            text,
            "security profiles: +Admin −QualityAnalyst (now Admin, Agent)"
        );
        // Attributes the call does not set are carried over.
        assert_eq!(after.state["routing_profile"], "rp-1");
        let (text, _) = line(
            "UpdateUserSecurityProfiles",
            &json!({"SecurityProfileIds": ["sp-agent"]}),
            None,
        );
        assert_eq!(
            text, "security profiles: now Agent",
            "no guessed difference"
        );
    }

    #[test]
    fn routing_and_hierarchy_moves_name_both_ends() {
        let before = json!({"routing_profile": "rp-1", "hierarchy_group": "hg-tokyo2"});
        let (text, _) = line(
            "UpdateUserRoutingProfile",
            &json!({"RoutingProfileId": "rp-2"}),
            Some(&before),
        );
        assert_eq!(text, "routing profile: Tier 1 Support → Tier 2 Support");
        let (text, _) = line(
            "UpdateUserHierarchy",
            &json!({"HierarchyGroupId": "hg-osaka-a"}),
            Some(&before),
        );
        assert_eq!(text, "hierarchy group: Tokyo › Floor 2 → Osaka › Team A");
        let (text, after) = line("UpdateUserHierarchy", &json!({}), Some(&before));
        assert_eq!(text, "hierarchy group: Tokyo › Floor 2 → none");
        assert_eq!(after.state["hierarchy_group"], Value::Null);
    }

    #[test]
    fn identity_changes_name_fields_never_values_and_hidden_ones_are_not_compared() {
        let before = json!({"identity": {"first_name": "Mei", "last_name": "Sato",
            "email": "mei@example.com", "secondary_email": null, "mobile": null}});
        let (text, _) = line(
            "UpdateUserIdentityInfo",
            &json!({"IdentityInfo": {"FirstName": "Mei", "LastName": "Sato", "Email": "m2@example.com"}}),
            Some(&before),
        );
        assert_eq!(text, "identity: e-mail changed");
        assert!(!text.contains("example.com"));
        let (text, after) = line(
            "UpdateUserIdentityInfo",
            &json!({"IdentityInfo": {"FirstName": "Mei", "LastName": "Sato", "Email": HIDDEN}}),
            Some(&before),
        );
        assert_eq!(text, "identity: e-mail set (hidden)");
        assert_eq!(after.state["identity"]["email"], HIDDEN);
    }

    #[test]
    fn additions_and_removals_show_what_the_request_names() {
        let (text, after) = line(
            "TagResource",
            &json!({"resourceArn": "arn", "tags": {"team": "blue"}}),
            None,
        );
        assert_eq!(text, "tags: +team=blue");
        assert_eq!(after.unknown, ["tags"], "the other tags are not known");
        assert!(!after.state.contains_key("tags"));
        let (text, after) = line(
            "UntagResource",
            &json!({"resourceArn": "arn", "tagKeys": ["old"]}),
            Some(&json!({"tags": {"old": "x", "team": "blue"}})),
        );
        assert_eq!(text, "tags: −old (now team=blue)");
        assert_eq!(after.state["tags"], json!({"team": "blue"}));
        let (text, _) = line(
            "AssociateUserProficiencies",
            &json!({"UserProficiencies": [{"AttributeName": "Language", "AttributeValue": "Japanese", "Level": 4.0}]}),
            Some(&json!({"proficiencies": {}})),
        );
        assert_eq!(
            text,
            "proficiencies: +Language=Japanese=4.0 (now Language=Japanese=4.0)"
        );
    }

    #[test]
    fn permissions_of_a_profile_are_a_replaced_set() {
        let (text, _) = line(
            "UpdateSecurityProfile",
            &json!({"Permissions": ["BasicAgentAccess", "Users.Edit"], "SecurityProfileId": "sp-agent"}),
            Some(&json!({"name": "Agent", "permissions": ["BasicAgentAccess"]})),
        );
        assert_eq!(
            text,
            "permissions: +Users.Edit (now BasicAgentAccess, Users.Edit)"
        );
    }

    #[test]
    fn creates_list_what_was_given_and_deletes_what_was_held() {
        let (text, after) = line(
            "CreateUser",
            &json!({"Username": "kenji", "SecurityProfileIds": ["sp-agent"],
                "RoutingProfileId": "rp-1", "HierarchyGroupId": "hg-tokyo2",
                "IdentityInfo": {"FirstName": "Kenji"}}),
            None,
        );
        assert_eq!(text, "created with Agent; Tier 1 Support; Tokyo › Floor 2");
        assert_eq!(after.state["security_profiles"], json!(["sp-agent"]));
        let (text, after) = line(
            "DeleteUser",
            &json!({"UserId": "u"}),
            Some(&json!({"security_profiles": ["sp-admin", "sp-agent"]})),
        );
        assert_eq!(text, "deleted (had Admin, Agent)");
        assert!(after.state.is_empty());
        assert_eq!(line("DeleteUser", &json!({}), None).0, "deleted");
    }

    #[test]
    fn named_states_carry_ids_with_names_or_null() {
        let state = json!({"security_profiles": ["sp-admin", "sp-x"], "routing_profile": "rp-2",
            "hierarchy_group": "hg-tokyo2", "tags": {"a": "b"}});
        assert_eq!(
            named(state.as_object().unwrap(), &names()),
            json!({
                "security_profiles": [{"id": "sp-admin", "name": "Admin"}, {"id": "sp-x", "name": null}],
                "routing_profile": {"id": "rp-2", "name": "Tier 2 Support"},
                "hierarchy_group": {"id": "hg-tokyo2", "name": "Tokyo › Floor 2"},
                "tags": {"a": "b"},
            })
        );
    }

    #[test]
    fn a_snapshot_state_stays_the_basis_of_what_no_event_has_set_since() {
        let mut tracker = Tracker::new();
        let user = "U-2";
        tracker.observe(
            TargetKind::User,
            user,
            json!({"security_profiles": ["sp-agent"], "routing_profile": "rp-1"})
                .as_object()
                .unwrap()
                .clone(),
        );
        let mut decode = |event: &str, request: Value| {
            let (decoded, transition) = tracker
                .decode(event, TargetKind::User, user, &request, false, &names())
                .unwrap();
            tracker.advance(transition);
            decoded.basis
        };
        let grant = json!({"SecurityProfileIds": ["sp-agent", "sp-admin"]});
        assert_eq!(
            decode("UpdateUserSecurityProfiles", grant.clone()),
            ChangeBasis::Snapshot
        );
        assert_eq!(
            decode("UpdateUserSecurityProfiles", grant),
            ChangeBasis::Trail,
            "the first event set them"
        );
        assert_eq!(
            decode(
                "UpdateUserRoutingProfile",
                json!({"RoutingProfileId": "rp-2"})
            ),
            ChangeBasis::Snapshot,
            "no event set the routing profile yet"
        );
        assert_eq!(
            decode("DeleteUser", json!({})),
            ChangeBasis::Trail,
            "every attribute held was set by an event"
        );
    }

    #[test]
    fn hidden_identity_fields_are_compared_through_what_the_namer_knows() {
        struct Versions(Option<bool>);
        impl Namer for Versions {
            fn name(&self, _: TargetKind, _: &str) -> Option<String> {
                None
            }
            fn hidden_changed(&self, field: &str) -> Option<bool> {
                (field == "email").then_some(self.0?)
            }
        }
        let rule = rule("UpdateUserIdentityInfo").unwrap();
        let request = json!({"IdentityInfo": {"Email": HIDDEN, "FirstName": "Kenji"}});
        let before = json!({"identity": {"email": "k@example.com", "first_name": "Kenji"}});
        let line = |known: Option<bool>| {
            let after = apply(rule, &request, before.as_object());
            render(rule, &request, before.as_object(), &after, &Versions(known))
        };
        assert_eq!(line(Some(true)), "identity: e-mail changed");
        assert_eq!(line(Some(false)), "identity: unchanged");
        assert_eq!(line(None), "identity: e-mail set (hidden)");
    }

    #[test]
    fn the_tracker_carries_state_from_event_to_event_and_says_where_before_came_from() {
        let mut tracker = Tracker::new();
        let user = "U-1";
        let decode = |t: &mut Tracker, event: &str, request: Value, failed: bool| {
            let (decoded, transition) = t
                .decode(event, TargetKind::User, user, &request, failed, &names())
                .unwrap();
            t.advance(transition);
            decoded
        };
        // Nothing known: before is null, never guessed.
        let first = decode(
            &mut tracker,
            "UpdateUserRoutingProfile",
            json!({"RoutingProfileId": "rp-1"}),
            false,
        );
        assert_eq!(first.basis, ChangeBasis::Unknown);
        assert_eq!(first.before, None);
        assert_eq!(
            first.after,
            Some(json!({"routing_profile": {"id": "rp-1", "name": "Tier 1 Support"}}))
        );
        // The next event's before is what the first made.
        let second = decode(
            &mut tracker,
            "UpdateUserRoutingProfile",
            json!({"RoutingProfileId": "rp-2"}),
            false,
        );
        assert_eq!(second.basis, ChangeBasis::Trail);
        assert_eq!(
            second.change,
            "routing profile: Tier 1 Support → Tier 2 Support"
        );
        // A failed call says what it tried and changes nothing.
        let failed = decode(
            &mut tracker,
            "UpdateUserSecurityProfiles",
            json!({"SecurityProfileIds": ["sp-admin"]}),
            true,
        );
        assert_eq!(failed.change, "tried: security profiles: now Admin");
        assert!(
            !tracker
                .state(TargetKind::User, "u-1")
                .unwrap()
                .contains_key("security_profiles")
        );

        // A snapshot version: before rests on it, and so do the states replayed from it.
        tracker.observe(
            TargetKind::User,
            user,
            json!({"security_profiles": ["sp-agent"]})
                .as_object()
                .unwrap()
                .clone(),
        );
        let granted = decode(
            &mut tracker,
            "UpdateUserSecurityProfiles",
            json!({"SecurityProfileIds": ["sp-admin", "sp-agent"]}),
            false,
        );
        assert_eq!(granted.basis, ChangeBasis::Snapshot);
        assert_eq!(
            granted.change,
            "security profiles: +Admin (now Admin, Agent)"
        );
        let deleted = decode(&mut tracker, "DeleteUser", json!({}), false);
        assert_eq!(deleted.change, "deleted (had Admin, Agent)");
        assert_eq!(deleted.after, None);
        assert!(tracker.state(TargetKind::User, user).is_none());
        // A call the decoding does not know gives nothing.
        assert!(
            tracker
                .decode(
                    "PutUserStatus",
                    TargetKind::User,
                    user,
                    &json!({}),
                    false,
                    &NoNames
                )
                .is_none()
        );
    }

    #[test]
    fn every_rule_is_an_audited_call_of_its_kind() {
        use crate::record::Category;
        for family in FAMILIES {
            for rule in family {
                let group = crate::catalogue::group_of(rule.event);
                let group = group.unwrap_or_else(|| panic!("{} is not audited", rule.event));
                let kind = match group.category {
                    Category::User | Category::Permissions => TargetKind::User,
                    Category::SecurityProfile => TargetKind::SecurityProfile,
                    Category::RoutingProfile => TargetKind::RoutingProfile,
                    Category::Hierarchy => TargetKind::HierarchyGroup,
                    _ => TargetKind::Resource,
                };
                assert_eq!(rule.kind, kind, "{}", rule.event);
            }
        }
    }
}
