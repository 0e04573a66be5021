//! The audit record: one row per audited CloudTrail event, shared by every engine and exporter.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, TimeUnit};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// One audited CloudTrail event, with its actor and target named where possible.
///
/// Field order is the column order of every output (CSV, Parquet, JSON Lines).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When the call was made (CloudTrail `eventTime`), UTC.
    pub event_time: Timestamp,
    /// CloudTrail `eventID`; unique per event, duplicates are removed.
    pub event_id: String,
    /// Which target of the event this row is about: 0 for an event with one target (nearly
    /// all of them); 0, 1, … in request order for a call that names several (for example
    /// `AssociateWorkspace`'s `ResourceArns`). `event_id` and `target_index` together are the
    /// row's key ([`AuditRecord::row_key`]).
    #[serde(default)]
    pub target_index: u32,
    /// The Connect API called, e.g. `UpdateUserSecurityProfiles`.
    pub event_name: String,
    /// Which part of the catalogue the event belongs to.
    pub category: Category,
    /// The account whose trail recorded the event (`recipientAccountId`).
    pub account_id: String,
    /// `awsRegion` of the call.
    pub region: String,
    /// The Connect instance id (bare, even when the request gave an ARN).
    pub instance_id: Option<String>,
    /// Who acted: an admin-website user, an IAM principal, or an AWS service.
    pub actor_kind: ActorKind,
    /// Connect user id (admin website), session principal id (IAM) or role session name (service).
    pub actor_id: Option<String>,
    /// Readable name of the actor: Connect username, IAM session or user name.
    pub actor_name: Option<String>,
    /// The caller's ARN as CloudTrail gave it.
    pub actor_arn: Option<String>,
    /// What kind of thing the call changed.
    pub target_kind: TargetKind,
    /// Bare id of the changed thing (ARNs normalised).
    pub target_id: Option<String>,
    /// Readable name of the changed thing.
    pub target_name: Option<String>,
    /// Where the names of this row came from (the weakest source of the names it needed).
    pub name_source: NameSource,
    /// Whether the call came from the Connect admin website or straight from the API.
    pub origin: Origin,
    /// `sourceIPAddress`.
    pub source_ip: Option<String>,
    /// `userAgent`.
    pub user_agent: Option<String>,
    /// `errorCode` of a failed call; `None` when the call succeeded.
    pub error_code: Option<String>,
    /// `errorMessage` of a failed call.
    pub error_message: Option<String>,
    /// `requestParameters` as compact JSON text, with secrets (`Password`) removed.
    pub request_parameters: Option<String>,
    /// `responseElements` as compact JSON text.
    pub response_elements: Option<String>,
    /// What the call changed, in one readable line of names valid at the event time
    /// (`security profiles: +Admin −QualityAnalyst (now Admin, Agent)`); for a failed call,
    /// what it tried (`tried: …`). `None` for calls whose effect is not decoded
    /// ([`crate::change::rule`]). Set by the change stage, after the engine.
    #[serde(default)]
    pub change: Option<String>,
    /// The attributes the call sets, as they were before it, as JSON text with each id named
    /// (`{"id", "name"}`); `None` when not known (see `change_basis`) or for a create.
    #[serde(default)]
    pub before: Option<String>,
    /// The same attributes after the call, as JSON text; `None` for a delete.
    #[serde(default)]
    pub after: Option<String>,
    /// Where `before` came from: `trail`, `snapshot` or `unknown`; `None` when the call's
    /// effect is not decoded.
    #[serde(default)]
    pub change_basis: Option<ChangeBasis>,
    /// The codes of the rules the row trips (`self_grant`, …); empty for most rows.
    #[serde(default)]
    pub findings: Vec<String>,
}

/// The columns the engines give, in output order: the record as the trail and the
/// directory tell it.
pub const ENGINE_COLUMNS: [&str; 23] = [
    "event_time",
    "event_id",
    "target_index",
    "event_name",
    "category",
    "account_id",
    "region",
    "instance_id",
    "actor_kind",
    "actor_id",
    "actor_name",
    "actor_arn",
    "target_kind",
    "target_id",
    "target_name",
    "name_source",
    "origin",
    "source_ip",
    "user_agent",
    "error_code",
    "error_message",
    "request_parameters",
    "response_elements",
];

/// The columns the change stage adds after the engine ([`crate::change`]).
pub const CHANGE_COLUMNS: [&str; 5] = ["change", "before", "after", "change_basis", "findings"];

/// The column names of [`AuditRecord`], in output order: [`ENGINE_COLUMNS`], then
/// [`CHANGE_COLUMNS`].
pub const COLUMNS: [&str; 28] = {
    let mut out = [""; 28];
    let mut i = 0;
    while i < ENGINE_COLUMNS.len() {
        out[i] = ENGINE_COLUMNS[i];
        i += 1;
    }
    while i < out.len() {
        out[i] = CHANGE_COLUMNS[i - ENGINE_COLUMNS.len()];
        i += 1;
    }
    out
};

/// The column names, as a slice.
pub fn column_names() -> &'static [&'static str] {
    &COLUMNS
}

impl AuditRecord {
    /// A row of `event_name` at `event_time`, with nothing else known: no account, region,
    /// instance, actor or target (`actor_kind` `iam`, `target_kind` `none`, `name_source`
    /// `unresolved`, `origin` `api`), no request, no change. For building rows field by field
    /// (tests, benchmarks, other engines).
    pub fn new(
        event_time: Timestamp,
        event_id: impl Into<String>,
        event_name: impl Into<String>,
        category: Category,
    ) -> Self {
        Self {
            event_time,
            event_id: event_id.into(),
            target_index: 0,
            event_name: event_name.into(),
            category,
            account_id: String::new(),
            region: String::new(),
            instance_id: None,
            actor_kind: ActorKind::Iam,
            actor_id: None,
            actor_name: None,
            actor_arn: None,
            target_kind: TargetKind::None,
            target_id: None,
            target_name: None,
            name_source: NameSource::Unresolved,
            origin: Origin::Api,
            source_ip: None,
            user_agent: None,
            error_code: None,
            error_message: None,
            request_parameters: None,
            response_elements: None,
            change: None,
            before: None,
            after: None,
            change_basis: None,
            findings: Vec::new(),
        }
    }

    /// The row's unique key: the `event_id` for the first (usually only) target of an event,
    /// `<event_id>#<target_index>` for the others. Duplicate removal, the incremental state,
    /// SIEM ids and OCSF `metadata.uid` use it, so the ids of single-target events are their
    /// CloudTrail event ids, as they always were.
    pub fn row_key(&self) -> Cow<'_, str> {
        if self.target_index == 0 {
            Cow::Borrowed(&self.event_id)
        } else {
            Cow::Owned(format!("{}#{}", self.event_id, self.target_index))
        }
    }

    /// The value of one column as text, `None` for a null. `event_time` is RFC 3339 UTC.
    ///
    /// Returns `None` for an unknown column name as well; callers validate names first
    /// against [`COLUMNS`].
    pub fn column(&self, name: &str) -> Option<String> {
        let s = |v: &Option<String>| v.clone();
        match name {
            "event_time" => Some(self.event_time.to_string()),
            "event_id" => Some(self.event_id.clone()),
            "target_index" => Some(self.target_index.to_string()),
            "event_name" => Some(self.event_name.clone()),
            "category" => Some(self.category.as_str().to_owned()),
            "account_id" => Some(self.account_id.clone()),
            "region" => Some(self.region.clone()),
            "instance_id" => s(&self.instance_id),
            "actor_kind" => Some(self.actor_kind.as_str().to_owned()),
            "actor_id" => s(&self.actor_id),
            "actor_name" => s(&self.actor_name),
            "actor_arn" => s(&self.actor_arn),
            "target_kind" => Some(self.target_kind.as_str().to_owned()),
            "target_id" => s(&self.target_id),
            "target_name" => s(&self.target_name),
            "name_source" => Some(self.name_source.as_str().to_owned()),
            "origin" => Some(self.origin.as_str().to_owned()),
            "source_ip" => s(&self.source_ip),
            "user_agent" => s(&self.user_agent),
            "error_code" => s(&self.error_code),
            "error_message" => s(&self.error_message),
            "request_parameters" => s(&self.request_parameters),
            "response_elements" => s(&self.response_elements),
            "change" => s(&self.change),
            "before" => s(&self.before),
            "after" => s(&self.after),
            "change_basis" => self.change_basis.map(|b| b.as_str().to_owned()),
            // As text (CSV, HTML): the codes joined by `;`; Parquet and JSON keep the list.
            "findings" => Some(self.findings.join(";")),
            _ => None,
        }
    }
}

/// The Arrow schema of [`AuditRecord`]: `event_time` is a UTC microsecond timestamp, enum
/// columns are dictionary-encoded strings, everything else UTF-8.
pub fn arrow_schema() -> Arc<Schema> {
    let dict = || DataType::Dictionary(Box::new(DataType::Int8), Box::new(DataType::Utf8));
    let fields: Vec<Field> = column_names()
        .iter()
        .map(|&name| match name {
            "event_time" => Field::new(
                name,
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            "event_id" | "event_name" | "account_id" | "region" => {
                Field::new(name, DataType::Utf8, false)
            }
            // Signed, so every Parquet reader (Athena's `int` among them) takes it as it is.
            "target_index" => Field::new(name, DataType::Int32, false),
            "category" | "actor_kind" | "target_kind" | "name_source" | "origin" => {
                Field::new(name, dict(), false)
            }
            "change_basis" => Field::new(name, dict(), true),
            "findings" => Field::new(
                name,
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, false))),
                false,
            ),
            _ => Field::new(name, DataType::Utf8, true),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value as written in outputs.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the output text back.
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum! {
    /// Which part of the event catalogue an event belongs to.
    Category {
        /// User lifecycle and identity: create, delete, identity/phone/config updates.
        User => "user",
        /// What a user may do or take: security profiles, routing profile, hierarchy, proficiencies.
        Permissions => "permissions",
        /// The agent hierarchy itself.
        Hierarchy => "hierarchy",
        /// Security profile definitions.
        SecurityProfile => "security_profile",
        /// Routing profile definitions.
        RoutingProfile => "routing_profile",
        /// Tags on users and profiles.
        Tags => "tags",
        /// Agent status (opt-in).
        AgentStatus => "agent_status",
        /// Instance settings, authentication and identity (opt-in).
        Instance => "instance",
        /// Sign-in and directory reads (opt-in).
        SignIn => "sign_in",
    }
}

text_enum! {
    /// Who made a call.
    ActorKind {
        /// A Connect user acting in the admin website (service-linked role session).
        ConnectUser => "connect_user",
        /// An IAM principal: user, role session, SSO session, root.
        Iam => "iam",
        /// An AWS service acting on its own, e.g. Global Resiliency synchronization.
        Service => "service",
    }
}

text_enum! {
    /// What kind of thing a call changed.
    TargetKind {
        /// A Connect user (agent).
        User => "user",
        /// A user hierarchy group.
        HierarchyGroup => "hierarchy_group",
        /// A security profile.
        SecurityProfile => "security_profile",
        /// A routing profile.
        RoutingProfile => "routing_profile",
        /// Another Connect resource, identified by its id or ARN.
        Resource => "resource",
        /// The call has no single target (e.g. an instance-wide setting).
        None => "none",
    }
}

text_enum! {
    /// Where the names of a row came from.
    NameSource {
        /// Every name the row needed came from the snapshot of the Connect directory.
        Snapshot => "snapshot",
        /// At least one name came from the trail itself (a `CreateUser` event, a session name).
        Trail => "trail",
        /// At least one id could not be named.
        Unresolved => "unresolved",
    }
}

text_enum! {
    /// Where a row's `before` came from.
    ChangeBasis {
        /// An earlier event of the scan set it.
        Trail => "trail",
        /// A snapshot version observed before the event, replayed forward through the trail.
        Snapshot => "snapshot",
        /// Neither: `before` is null, never guessed.
        Unknown => "unknown",
    }
}

text_enum! {
    /// How a call was made.
    Origin {
        /// From the Amazon Connect admin website.
        Console => "console",
        /// Straight from the API (CLI, SDK, another service).
        Api => "api",
    }
}

impl TargetKind {
    /// Whether targets of this kind have a name the Directory keeps: users, hierarchy groups,
    /// security profiles and routing profiles.
    pub fn is_named(self) -> bool {
        matches!(
            self,
            Self::User | Self::HierarchyGroup | Self::SecurityProfile | Self::RoutingProfile
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_matches_columns() {
        let schema = arrow_schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, column_names());
        // The engines' 23, then the change stage's 5.
        assert_eq!(names[..23], ENGINE_COLUMNS);
        assert_eq!(names[23..], CHANGE_COLUMNS);
    }

    #[test]
    fn enums_round_trip_through_text() {
        for c in Category::ALL {
            assert_eq!(Category::parse(c.as_str()), Some(*c));
        }
        assert_eq!(
            TargetKind::parse("hierarchy_group"),
            Some(TargetKind::HierarchyGroup)
        );
        assert_eq!(ActorKind::parse("nobody"), None);
    }
}
