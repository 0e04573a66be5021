//! CloudTrail records: parsing the fields the audit needs, and turning an audited Connect
//! event into its [`AuditRecord`]s (actor, targets, origin, redaction by [`Redaction`]).

use std::borrow::Cow;

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::catalogue::{CONNECT_EVENT_SOURCE, EventGroup};
use crate::ids::{decode_id, leading_uuid, normal_id, parse_connect_arn};
use crate::record::{ActorKind, AuditRecord, NameSource, Origin, TargetKind};
use crate::redact::Redaction;

/// Role name prefix of the Connect admin website's service-linked role.
pub const CONNECT_ROLE_PREFIX: &str = "AWSServiceRoleForAmazonConnect_";
/// Role name prefix of the Global Resiliency synchronization service-linked role.
pub const SYNC_ROLE_PREFIX: &str = "AWSServiceRoleForAmazonConnectSynchronization_";

/// One CloudTrail record, reduced to the fields the audit reads. Unknown fields are ignored;
/// `requestParameters`/`responseElements` may be objects, `null` or absent.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudTrailRecord<'a> {
    /// `eventTime`, RFC 3339.
    #[serde(borrow)]
    pub event_time: Option<Cow<'a, str>>,
    /// `eventID`.
    #[serde(rename = "eventID", borrow)]
    pub event_id: Option<Cow<'a, str>>,
    /// `eventSource`, e.g. `connect.amazonaws.com`.
    #[serde(borrow)]
    pub event_source: Option<Cow<'a, str>>,
    /// `eventName`, the API operation.
    #[serde(borrow)]
    pub event_name: Option<Cow<'a, str>>,
    /// `awsRegion`.
    #[serde(borrow)]
    pub aws_region: Option<Cow<'a, str>>,
    /// `recipientAccountId`.
    #[serde(borrow)]
    pub recipient_account_id: Option<Cow<'a, str>>,
    /// `sourceIPAddress`.
    #[serde(rename = "sourceIPAddress", borrow)]
    pub source_ip_address: Option<Cow<'a, str>>,
    /// `userAgent`.
    #[serde(borrow)]
    pub user_agent: Option<Cow<'a, str>>,
    /// `errorCode`.
    #[serde(borrow)]
    pub error_code: Option<Cow<'a, str>>,
    /// `errorMessage`.
    #[serde(borrow)]
    pub error_message: Option<Cow<'a, str>>,
    /// `userIdentity`.
    #[serde(borrow)]
    pub user_identity: Option<UserIdentity<'a>>,
    /// `requestParameters`, any JSON value whose objects name each key once.
    #[serde(default, deserialize_with = "unique_keys")]
    pub request_parameters: Option<Value>,
    /// `responseElements`, any JSON value whose objects name each key once.
    #[serde(default, deserialize_with = "unique_keys")]
    pub response_elements: Option<Value>,
}

/// Reads an optional JSON value, refusing an object that names a key twice.
///
/// RFC 8259 leaves the meaning of a repeated name open and CloudTrail never writes one, so a
/// record with two `UserId`s is not something to guess about: one reader (serde_json, Athena's
/// JSON functions, a SIEM) may take the first, another the last, and the audit would name a
/// different user than the record shows. The typed fields of [`CloudTrailRecord`] and
/// [`UserIdentity`] refuse repeats already (serde's derive); this does it for the free-form
/// ones, whose text is written out.
fn unique_keys<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Ok(Option::<UniqueKeys>::deserialize(d)?.map(|v| v.0))
}

/// A JSON value in which no object names a key twice.
struct UniqueKeys(Value);

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueKeysVisitor).map(UniqueKeys)
    }
}

struct UniqueKeysVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueKeysVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        UniqueKeys::deserialize(d).map(|v| v.0)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(UniqueKeys(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(serde::de::Error::custom(format_args!(
                    "duplicate key {key:?} in an object"
                )));
            }
            let UniqueKeys(value) = access.next_value()?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

/// `userIdentity` of a CloudTrail record.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserIdentity<'a> {
    /// `type`: `AssumedRole`, `IAMUser`, `Root`, `AWSService`, ….
    #[serde(rename = "type", borrow)]
    pub kind: Option<Cow<'a, str>>,
    /// `principalId`: `AROA…:<session>` for role sessions.
    #[serde(borrow)]
    pub principal_id: Option<Cow<'a, str>>,
    /// `arn` of the caller.
    #[serde(borrow)]
    pub arn: Option<Cow<'a, str>>,
    /// `accountId` of the caller.
    #[serde(borrow)]
    pub account_id: Option<Cow<'a, str>>,
    /// `userName` (IAM users).
    #[serde(borrow)]
    pub user_name: Option<Cow<'a, str>>,
    /// `invokedBy` (calls made by an AWS service).
    #[serde(borrow)]
    pub invoked_by: Option<Cow<'a, str>>,
    /// `sessionContext`.
    #[serde(borrow)]
    pub session_context: Option<SessionContext<'a>>,
}

/// `userIdentity.sessionContext`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionContext<'a> {
    /// `sessionIssuer`: the role behind an assumed-role session.
    #[serde(borrow)]
    pub session_issuer: Option<SessionIssuer<'a>>,
}

/// `userIdentity.sessionContext.sessionIssuer`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionIssuer<'a> {
    /// The role's name.
    #[serde(borrow)]
    pub user_name: Option<Cow<'a, str>>,
    /// The role's ARN.
    #[serde(borrow)]
    pub arn: Option<Cow<'a, str>>,
}

/// Why a record could not be audited.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The record is not a JSON object of the CloudTrail shape.
    #[error("not a CloudTrail record: {0}")]
    Shape(String),
    /// A field the audit needs is missing or null.
    #[error("missing `{0}`")]
    Missing(&'static str),
    /// `eventTime` is not an RFC 3339 timestamp.
    #[error("unparseable eventTime `{0}`")]
    BadTime(String),
    /// A list of targets is longer than the API accepts.
    #[error(
        "`requestParameters.{key}` names {count} targets, more than the {MAX_TARGETS} the Connect API accepts"
    )]
    TooManyTargets {
        /// The request key holding the list.
        key: &'static str,
        /// How many entries it has.
        count: usize,
    },
}

/// What parsing a raw record found.
#[derive(Debug)]
pub enum Parsed<'a> {
    /// A Connect event (any name); the caller decides whether it is audited.
    Connect(Box<CloudTrailRecord<'a>>),
    /// Some other service's event.
    Other,
}

/// Parses one record of a trail file's `Records` array.
///
/// A record that fails to parse is an error only when it claims to be a Connect event or its
/// source cannot be told; another service's odd record is none of our business.
pub fn parse_record(raw: &str) -> Result<Parsed<'_>, RecordError> {
    match serde_json::from_str::<CloudTrailRecord<'_>>(raw) {
        Ok(rec) => match rec.event_source.as_deref() {
            Some(CONNECT_EVENT_SOURCE) => Ok(Parsed::Connect(Box::new(rec))),
            Some(_) => Ok(Parsed::Other),
            None => Err(RecordError::Missing("eventSource")),
        },
        Err(err) => {
            #[derive(Deserialize)]
            struct Head {
                #[serde(rename = "eventSource")]
                event_source: Option<Value>,
            }
            match serde_json::from_str::<Head>(raw) {
                Ok(Head {
                    event_source: Some(Value::String(s)),
                }) if s != CONNECT_EVENT_SOURCE => Ok(Parsed::Other),
                _ => Err(RecordError::Shape(err.to_string())),
            }
        }
    }
}

/// The `eventID` of a raw record [`parse_record`] refused, when it is a string: so the message
/// about a record with, say, a numeric `eventTime` still names the event.
pub fn raw_event_id(raw: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Id {
        #[serde(rename = "eventID")]
        event_id: Option<Value>,
    }
    match serde_json::from_str::<Id>(raw).ok()?.event_id? {
        Value::String(id) => Some(id),
        _ => None,
    }
}

/// A name the trail itself teaches: the id and name of something created or renamed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LearnedName {
    /// What was named.
    pub kind: TargetKind,
    /// Its bare id.
    pub id: String,
    /// Its name.
    pub name: String,
}

impl CloudTrailRecord<'_> {
    fn request(&self) -> Option<&Map<String, Value>> {
        self.request_parameters.as_ref().and_then(Value::as_object)
    }

    fn response(&self) -> Option<&Map<String, Value>> {
        self.response_elements.as_ref().and_then(Value::as_object)
    }

    /// The name this event gives to an id, if it creates or renames a user, profile or group
    /// and succeeded (see [`TargetRule::teaches_name`]).
    pub fn learned_name(&self) -> Option<LearnedName> {
        if self.error_code.is_some() {
            return None;
        }
        let req = self.request()?;
        let TargetRule::Fixed {
            kind,
            id,
            name: Some(name),
        } = target_rule(self.event_name.as_deref()?)
        else {
            return None;
        };
        if !kind.is_named() {
            return None;
        }
        let resp = self.response();
        Some(LearnedName {
            kind,
            id: normal_id(id.read(Some(req), resp)?),
            name: name.read(Some(req), resp)?.to_owned(),
        })
    }

    /// Builds the audit records of this Connect event, before naming (see
    /// [`crate::Directory::resolve`]): names are those the trail itself carries. One record
    /// per target ([`Target::all`]): a call that names several targets gives one row for
    /// each, numbered by `target_index`; any other call gives exactly one.
    pub fn to_audit_records(
        &self,
        group: &EventGroup,
        redaction: &Redaction,
    ) -> Result<Vec<AuditRecord>, RecordError> {
        let event_id = self
            .event_id
            .as_deref()
            .ok_or(RecordError::Missing("eventID"))?;
        let event_name = self
            .event_name
            .as_deref()
            .ok_or(RecordError::Missing("eventName"))?;
        let time_text = self
            .event_time
            .as_deref()
            .ok_or(RecordError::Missing("eventTime"))?;
        let event_time = time_text
            .parse::<Timestamp>()
            .map_err(|_| RecordError::BadTime(time_text.to_owned()))?;
        let identity = self
            .user_identity
            .as_ref()
            .ok_or(RecordError::Missing("userIdentity"))?;
        let region = self
            .aws_region
            .as_deref()
            .ok_or(RecordError::Missing("awsRegion"))?;
        let account_id = self
            .recipient_account_id
            .as_deref()
            .or(identity.account_id.as_deref())
            .ok_or(RecordError::Missing("recipientAccountId"))?;

        let actor = Actor::of(identity);
        let targets = Target::all(event_name, self.request(), self.response())?;
        let instance_id = self
            .request()
            .and_then(|r| str_field(r, "InstanceId"))
            .map(normal_id);
        let user_agent = self.user_agent.as_deref();
        let source_ip = self.source_ip_address.as_deref();
        let origin = if actor.kind == ActorKind::ConnectUser
            || user_agent == Some(CONNECT_EVENT_SOURCE)
            || source_ip == Some(CONNECT_EVENT_SOURCE)
        {
            Origin::Console
        } else {
            Origin::Api
        };
        let redacted = |v: &Option<Value>| {
            v.as_ref().and_then(|v| {
                let mut v = v.clone();
                redaction.apply(&mut v);
                json_text(&v)
            })
        };
        let request_parameters = redacted(&self.request_parameters);
        let response_elements = redacted(&self.response_elements);
        let mut records = Vec::with_capacity(targets.len());
        for (index, target) in (0u32..).zip(targets) {
            records.push(AuditRecord {
                event_time,
                event_id: event_id.to_owned(),
                target_index: index,
                event_name: event_name.to_owned(),
                category: group.category,
                account_id: account_id.to_owned(),
                region: region.to_owned(),
                instance_id: instance_id.clone().or(target.instance_id),
                actor_kind: actor.kind,
                actor_id: actor.id.clone(),
                actor_name: actor.name.clone(),
                actor_arn: identity.arn.as_deref().map(str::to_owned),
                target_kind: target.kind,
                target_id: target.id,
                target_name: target.name,
                name_source: NameSource::Unresolved,
                origin,
                source_ip: source_ip.map(str::to_owned),
                user_agent: user_agent.map(str::to_owned),
                error_code: self.error_code.as_deref().map(str::to_owned),
                error_message: self.error_message.as_deref().map(str::to_owned),
                request_parameters: request_parameters.clone(),
                response_elements: response_elements.clone(),
                change: None,
                before: None,
                after: None,
                change_basis: None,
                findings: Vec::new(),
            });
        }
        Ok(records)
    }
}

/// The actor of an event, as far as the trail tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// Admin-website user, IAM principal or service.
    pub kind: ActorKind,
    /// Connect user id, IAM principal id, or the service's role session name.
    pub id: Option<String>,
    /// The name the trail carries (IAM session or user name, the service); `None` for a
    /// Connect user, whose name comes from the Directory.
    pub name: Option<String>,
}

impl Actor {
    /// Reads the actor from `userIdentity`.
    pub fn of(identity: &UserIdentity<'_>) -> Self {
        let arn = identity.arn.as_deref();
        let (arn_role, arn_session) = arn.and_then(split_assumed_role).unzip();
        let issuer = identity
            .session_context
            .as_ref()
            .and_then(|c| c.session_issuer.as_ref());
        let role = issuer
            .and_then(|i| i.user_name.as_deref())
            .or(arn_role)
            .unwrap_or("");
        let session = arn_session.or_else(|| {
            identity
                .principal_id
                .as_deref()
                .and_then(|p| p.split_once(':'))
                .map(|(_, s)| s)
        });
        if role.starts_with(SYNC_ROLE_PREFIX) || identity.kind.as_deref() == Some("AWSService") {
            let name = identity
                .invoked_by
                .as_deref()
                .or((!role.is_empty()).then_some(role));
            return Self {
                kind: ActorKind::Service,
                id: session.map(str::to_owned),
                name: name.map(str::to_owned),
            };
        }
        if role.starts_with(CONNECT_ROLE_PREFIX) {
            let id = session.map(|s| leading_uuid(s).unwrap_or(s).to_ascii_lowercase());
            return Self {
                kind: ActorKind::ConnectUser,
                id,
                name: None,
            };
        }
        let name = match identity.kind.as_deref() {
            Some("IAMUser") => identity.user_name.as_deref(),
            Some("Root") => Some("root"),
            _ => session.or(identity.user_name.as_deref()),
        };
        Self {
            kind: ActorKind::Iam,
            id: identity.principal_id.as_deref().map(str::to_owned),
            name: name.map(str::to_owned),
        }
    }
}

/// `arn:aws:sts::<acct>:assumed-role/<role>/<session>` → (`role`, `session`).
fn split_assumed_role(arn: &str) -> Option<(&str, &str)> {
    let (_, rest) = arn.split_once(":assumed-role/")?;
    rest.split_once('/')
}

/// The target of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// What was changed.
    pub kind: TargetKind,
    /// Its bare id.
    pub id: Option<String>,
    /// A name the event itself carries (`CreateUser`'s `Username`, a new profile's name).
    pub name: Option<String>,
    /// The instance named by a resource ARN, for events without `InstanceId`.
    pub instance_id: Option<String>,
}

impl Target {
    fn new(kind: TargetKind, id: Option<&str>, name: Option<&str>) -> Self {
        Self {
            kind,
            id: id.map(normal_id),
            name: name.map(str::to_owned),
            instance_id: None,
        }
    }

    fn from_arn(arn: Option<&str>) -> Self {
        let decoded = arn.map(decode_id);
        let arn = decoded.as_deref();
        match arn.and_then(parse_connect_arn) {
            Some(r) => Self {
                kind: r.kind,
                id: Some(r.id.to_owned()),
                name: None,
                instance_id: r.instance_id.map(str::to_owned),
            },
            None => Self::new(
                if arn.is_some() {
                    TargetKind::Resource
                } else {
                    TargetKind::None
                },
                arn,
                None,
            ),
        }
    }

    /// Finds the target of `event_name` in its request and response, by its
    /// [`target_rule`]; for a call naming several targets, the first (see [`Target::all`]).
    pub fn of(
        event_name: &str,
        req: Option<&Map<String, Value>>,
        resp: Option<&Map<String, Value>>,
    ) -> Self {
        match target_rule(event_name) {
            TargetRule::Fixed { kind, id, name } => Self::new(
                kind,
                id.read(req, resp),
                name.and_then(|n| n.read(req, resp)),
            ),
            TargetRule::Arn(key) => Self::from_arn(req.and_then(|m| str_field(m, key))),
            TargetRule::ArnList(key) => Self::from_arn(
                req.and_then(|m| m.get(key))
                    .and_then(Value::as_array)
                    .and_then(|items| items.first())
                    .and_then(Value::as_str),
            ),
            TargetRule::UserOrNone(field) => match field.read(req, resp) {
                Some(id) => Self::new(TargetKind::User, Some(id), None),
                None => Self::new(TargetKind::None, None, None),
            },
        }
    }

    /// Every target of `event_name`, in request order: one for nearly every call; one per
    /// ARN of the list for an [`TargetRule::ArnList`] call (no target when the list is empty
    /// or absent). A list longer than the API accepts ([`MAX_TARGETS`]) is refused, so no
    /// engine has to cut it.
    pub fn all(
        event_name: &str,
        req: Option<&Map<String, Value>>,
        resp: Option<&Map<String, Value>>,
    ) -> Result<Vec<Self>, RecordError> {
        let TargetRule::ArnList(key) = target_rule(event_name) else {
            return Ok(vec![Self::of(event_name, req, resp)]);
        };
        let items = match req.and_then(|m| m.get(key)) {
            Some(Value::Array(items)) if !items.is_empty() => items,
            _ => return Ok(vec![Self::new(TargetKind::None, None, None)]),
        };
        if items.len() > MAX_TARGETS {
            return Err(RecordError::TooManyTargets {
                key,
                count: items.len(),
            });
        }
        Ok(items
            .iter()
            .map(|item| match item {
                Value::String(arn) => Self::from_arn(Some(arn)),
                _ => Self::new(TargetKind::None, None, None),
            })
            .collect())
    }
}

/// Where a value of an event is read from. Only JSON strings count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `requestParameters.<key>`.
    Request(&'static str),
    /// `responseElements.<key>`.
    Response(&'static str),
    /// `responseElements.<first key>`, else `responseElements.<second key>`.
    ResponseEither(&'static str, &'static str),
}

impl Field {
    /// Reads the field from a request and response.
    pub fn read<'m>(
        self,
        req: Option<&'m Map<String, Value>>,
        resp: Option<&'m Map<String, Value>>,
    ) -> Option<&'m str> {
        match self {
            Self::Request(key) => req.and_then(|m| str_field(m, key)),
            Self::Response(key) => resp.and_then(|m| str_field(m, key)),
            Self::ResponseEither(first, second) => resp
                .and_then(|m| str_field(m, first))
                .or_else(|| resp.and_then(|m| str_field(m, second))),
        }
    }
}

/// How the target of an event is found. One table for both engines: the local engine reads it
/// in [`Target::of`], the Athena engine turns it into SQL, so the two cannot drift apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetRule {
    /// A target of `kind`, its id (an ARN is normalised to the bare id) and maybe its name.
    Fixed {
        /// What the event changes.
        kind: TargetKind,
        /// Where the id is.
        id: Field,
        /// Where a name is, for events that name what they create or rename.
        name: Option<Field>,
    },
    /// A resource ARN in this request field, classified by its resource type
    /// ([`parse_connect_arn`]); a non-Connect ARN is a `resource`, no ARN is `none`.
    Arn(&'static str),
    /// A list of resource ARNs in this request field, each classified as [`Self::Arn`]
    /// does: one target per ARN, at most [`MAX_TARGETS`].
    ArnList(&'static str),
    /// The user this field names, when present; else no target. Most calls name their user
    /// in `requestParameters.UserId`; a sign-in names it in its response.
    UserOrNone(Field),
}

/// The most targets one call may name: the Connect API's limit on `ResourceArns`
/// (`AssociateWorkspace`, `DisassociateWorkspace`). A record listing more did not come from
/// the API, and is refused rather than cut.
pub const MAX_TARGETS: usize = 25;

impl TargetRule {
    /// Whether a successful event of this rule teaches the name of what it creates or renames
    /// (see [`CloudTrailRecord::learned_name`]).
    pub fn teaches_name(self) -> bool {
        matches!(self, Self::Fixed { kind, name: Some(_), .. } if kind.is_named())
    }
}

/// The rule that finds the target of `event_name`.
pub fn target_rule(event_name: &str) -> TargetRule {
    use Field::{Request as R, Response as O};
    use TargetKind as K;
    let fixed = |kind, id, name| TargetRule::Fixed { kind, id, name };
    match event_name {
        "CreateUser" => fixed(
            K::User,
            Field::ResponseEither("UserId", "UserArn"),
            Some(R("Username")),
        ),
        "CreateUserHierarchyGroup" => {
            fixed(K::HierarchyGroup, O("HierarchyGroupId"), Some(R("Name")))
        }
        "UpdateUserHierarchyGroupName" => {
            fixed(K::HierarchyGroup, R("HierarchyGroupId"), Some(R("Name")))
        }
        "DeleteUserHierarchyGroup" => fixed(K::HierarchyGroup, R("HierarchyGroupId"), None),
        "CreateSecurityProfile" => fixed(
            K::SecurityProfile,
            O("SecurityProfileId"),
            Some(R("SecurityProfileName")),
        ),
        "UpdateSecurityProfile" | "DeleteSecurityProfile" => {
            fixed(K::SecurityProfile, R("SecurityProfileId"), None)
        }
        "AssociateSecurityProfiles" | "DisassociateSecurityProfiles" => {
            TargetRule::Arn("EntityArn")
        }
        "CreateRoutingProfile" => fixed(K::RoutingProfile, O("RoutingProfileId"), Some(R("Name"))),
        "UpdateRoutingProfileName" => {
            fixed(K::RoutingProfile, R("RoutingProfileId"), Some(R("Name")))
        }
        name if name.contains("RoutingProfile") && !name.starts_with("UpdateUser") => {
            fixed(K::RoutingProfile, R("RoutingProfileId"), None)
        }
        "TagResource" | "UntagResource" => TargetRule::Arn("resourceArn"),
        "CreateAgentStatus" => fixed(K::Resource, O("AgentStatusId"), Some(R("Name"))),
        "UpdateAgentStatus" => fixed(K::Resource, R("AgentStatusId"), Some(R("Name"))),
        "UpdateAuthenticationProfile" => {
            fixed(K::Resource, R("AuthenticationProfileId"), Some(R("Name")))
        }
        "CreateInstance" | "ReplicateInstance" => fixed(K::Resource, O("Id"), None),
        "AssociateWorkspace" | "DisassociateWorkspace" => TargetRule::ArnList("ResourceArns"),
        "UpdateWorkspaceVisibility" | "DeleteWorkspace" => {
            fixed(K::Resource, R("WorkspaceId"), None)
        }
        "CreateTrafficDistributionGroup" => fixed(K::Resource, O("Id"), Some(R("Name"))),
        "DeleteTrafficDistributionGroup" => {
            fixed(K::Resource, R("TrafficDistributionGroupId"), None)
        }
        "UpdateTrafficDistribution" => fixed(K::Resource, R("Id"), None),
        "GetFederationToken" => TargetRule::UserOrNone(Field::ResponseEither("UserId", "UserArn")),
        _ => TargetRule::UserOrNone(R("UserId")),
    }
}

fn str_field<'m>(map: &'m Map<String, Value>, key: &str) -> Option<&'m str> {
    map.get(key).and_then(Value::as_str)
}

/// Compact JSON text of a value; `None` for `null`.
fn json_text(v: &Value) -> Option<String> {
    (!v.is_null()).then(|| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::group_of;
    use serde_json::json;

    const ADMIN: &str = "78adbca8-17ff-47dd-b354-2405d9371018";
    const USER: &str = "66666666-7777-8888-9999-000000000000";
    const INSTANCE: &str = "11111111-2222-3333-4444-555555555555";

    fn audit(v: &Value) -> AuditRecord {
        let text = v.to_string();
        let Parsed::Connect(rec) = parse_record(&text).unwrap() else {
            panic!("not a connect record")
        };
        let group = group_of(rec.event_name.as_deref().unwrap()).unwrap();
        let mut rows = rec.to_audit_records(group, &Redaction::default()).unwrap();
        assert_eq!(rows.len(), 1, "{rows:?}");
        rows.remove(0)
    }

    fn console(session: &str) -> Value {
        json!({
            "type": "AssumedRole",
            "principalId": format!("AROAEXAMPLE:{session}"),
            "arn": format!("arn:aws:sts::111122223333:assumed-role/AWSServiceRoleForAmazonConnect_Dw/{session}"),
            "accountId": "111122223333",
            "sessionContext": {"sessionIssuer": {"userName": "AWSServiceRoleForAmazonConnect_Dw"}}
        })
    }

    fn event(name: &str, identity: Value, req: Value, resp: Value) -> Value {
        json!({
            "eventTime": "2024-05-02T09:14:02Z", "eventID": "e-1", "eventSource": "connect.amazonaws.com",
            "eventName": name, "awsRegion": "ap-northeast-1", "recipientAccountId": "111122223333",
            "sourceIPAddress": "connect.amazonaws.com", "userAgent": "connect.amazonaws.com",
            "userIdentity": identity, "requestParameters": req, "responseElements": resp
        })
    }

    #[test]
    fn console_create_user_names_itself_and_drops_the_password() {
        let rec = audit(&event(
            "CreateUser",
            console(ADMIN),
            json!({"InstanceId": INSTANCE, "Username": "jdoe", "Password": "HIDDEN", "IdentityInfo": {"password": "x"}}),
            json!({"UserId": USER, "UserArn": format!("arn:aws:connect:ap-northeast-1:111122223333:instance/{INSTANCE}/agent/{USER}")}),
        ));
        assert_eq!(rec.actor_kind, ActorKind::ConnectUser);
        assert_eq!(rec.actor_id.as_deref(), Some(ADMIN));
        assert_eq!(rec.target_kind, TargetKind::User);
        assert_eq!(rec.target_id.as_deref(), Some(USER));
        assert_eq!(rec.target_name.as_deref(), Some("jdoe"));
        assert_eq!(rec.origin, Origin::Console);
        let params = rec.request_parameters.unwrap();
        assert!(!params.to_lowercase().contains("password"), "{params}");
        assert!(params.contains("jdoe"));
    }

    #[test]
    fn session_name_with_more_after_the_uuid() {
        let session = format!("{ADMIN}@someone.with.a.long.address@example.c");
        let rec = audit(&event(
            "DeleteUser",
            console(&session),
            json!({"UserId": USER}),
            Value::Null,
        ));
        assert_eq!(rec.actor_id.as_deref(), Some(ADMIN));
    }

    #[test]
    fn sync_role_is_a_service_and_arn_ids_are_normalised() {
        let identity = json!({
            "type": "AssumedRole", "invokedBy": "synchronization.connect.amazonaws.com",
            "arn": "arn:aws:sts::111122223333:assumed-role/AWSServiceRoleForAmazonConnectSynchronization_1-2-3/ResourceSynchronization",
            "sessionContext": {"sessionIssuer": {"userName": "AWSServiceRoleForAmazonConnectSynchronization_1-2-3"}}
        });
        let mut v = event(
            "DeleteUser",
            identity,
            json!({
                "InstanceId": format!("arn:aws:connect:us-west-2:111122223333:instance/{INSTANCE}"),
                "UserId": format!("arn:aws:connect:us-west-2:111122223333:instance/{INSTANCE}/agent/{USER}")
            }),
            Value::Null,
        );
        v["userAgent"] = json!("synchronization.connect.amazonaws.com");
        v["sourceIPAddress"] = json!("synchronization.connect.amazonaws.com");
        let rec = audit(&v);
        assert_eq!(rec.actor_kind, ActorKind::Service);
        assert_eq!(rec.actor_id.as_deref(), Some("ResourceSynchronization"));
        assert_eq!(rec.instance_id.as_deref(), Some(INSTANCE));
        assert_eq!(rec.target_id.as_deref(), Some(USER));
        assert_eq!(rec.origin, Origin::Api);
        assert_eq!(rec.response_elements, None);
    }

    #[test]
    fn iam_actors_keep_session_or_user_name() {
        let sso = json!({
            "type": "AssumedRole", "principalId": "AROAEXAMPLESSO:admin@example.com",
            "arn": "arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_Admins_0123/admin@example.com",
            "sessionContext": {"sessionIssuer": {"userName": "AWSReservedSSO_Admins_0123"}}
        });
        let mut v = event(
            "UpdateUserHierarchy",
            sso,
            json!({"UserId": USER, "HierarchyGroupId": "g"}),
            Value::Null,
        );
        v["userAgent"] = json!("aws-cli/2");
        v["sourceIPAddress"] = json!("203.0.113.10");
        let rec = audit(&v);
        assert_eq!(rec.actor_kind, ActorKind::Iam);
        assert_eq!(rec.actor_name.as_deref(), Some("admin@example.com"));
        assert_eq!(rec.origin, Origin::Api);
        let user = json!({"type": "IAMUser", "principalId": "AIDAX", "userName": "ops-bot",
            "arn": "arn:aws:iam::111122223333:user/ops-bot"});
        let rec = audit(&event(
            "UpdateUserHierarchy",
            user,
            json!({"UserId": USER}),
            Value::Null,
        ));
        assert_eq!(rec.actor_name.as_deref(), Some("ops-bot"));
        assert_eq!(
            rec.actor_arn.as_deref(),
            Some("arn:aws:iam::111122223333:user/ops-bot")
        );
    }

    #[test]
    fn targets_per_family() {
        let t = |name: &str, req: Value, resp: Value| {
            Target::of(name, req.as_object(), resp.as_object())
        };
        let agent = format!("arn:aws:connect:us-east-1:1:instance/{INSTANCE}/agent/{USER}");
        let tag = t(
            "TagResource",
            json!({"resourceArn": agent, "tags": {"a": "b"}}),
            Value::Null,
        );
        assert_eq!(
            (tag.kind, tag.id.as_deref()),
            (TargetKind::User, Some(USER))
        );
        assert_eq!(tag.instance_id.as_deref(), Some(INSTANCE));
        let sp = t(
            "UpdateSecurityProfile",
            json!({"SecurityProfileId": "sp-1"}),
            Value::Null,
        );
        assert_eq!(sp.kind, TargetKind::SecurityProfile);
        let rp = t(
            "UpdateRoutingProfileQueues",
            json!({"RoutingProfileId": "rp-1"}),
            Value::Null,
        );
        assert_eq!(
            (rp.kind, rp.id.as_deref()),
            (TargetKind::RoutingProfile, Some("rp-1"))
        );
        let urp = t(
            "UpdateUserRoutingProfile",
            json!({"UserId": USER, "RoutingProfileId": "rp"}),
            Value::Null,
        );
        assert_eq!(urp.kind, TargetKind::User);
        let hg = t(
            "CreateUserHierarchyGroup",
            json!({"Name": "Tokyo"}),
            json!({"HierarchyGroupId": "hg-1"}),
        );
        assert_eq!(
            (hg.kind, hg.id.as_deref(), hg.name.as_deref()),
            (TargetKind::HierarchyGroup, Some("hg-1"), Some("Tokyo"))
        );
        let st = t(
            "UpdateUserHierarchyStructure",
            json!({"HierarchyStructure": {}}),
            Value::Null,
        );
        assert_eq!(st.kind, TargetKind::None);
        let assoc = t(
            "AssociateSecurityProfiles",
            json!({"EntityArn": agent}),
            Value::Null,
        );
        assert_eq!(assoc.kind, TargetKind::User);
    }

    fn records(v: &Value) -> Result<Vec<AuditRecord>, RecordError> {
        let text = v.to_string();
        let Parsed::Connect(rec) = parse_record(&text).unwrap() else {
            panic!("not a connect record")
        };
        let group = group_of(rec.event_name.as_deref().unwrap()).unwrap();
        rec.to_audit_records(group, &Redaction::default())
    }

    fn encoded(text: &str) -> String {
        text.replace(':', "%3A").replace('/', "%2F")
    }

    #[test]
    fn percent_encoded_ids_give_the_rows_of_plain_ones() {
        let instance = format!("arn:aws:connect:us-east-1:111122223333:instance/{INSTANCE}");
        let agent = format!("{instance}/agent/{USER}");
        let cases = [
            (
                "UpdateUserHierarchy",
                json!({"InstanceId": instance, "UserId": USER}),
            ),
            (
                "DeleteUser",
                json!({"InstanceId": INSTANCE, "UserId": agent}),
            ),
            (
                "TagResource",
                json!({"resourceArn": agent, "tags": {"a": "b"}}),
            ),
            (
                "AssociateSecurityProfiles",
                json!({"EntityArn": agent, "EntityType": "USER", "InstanceId": INSTANCE}),
            ),
        ];
        for (name, plain) in cases {
            let mut coded = plain.clone();
            for v in coded.as_object_mut().unwrap().values_mut() {
                if let Value::String(text) = v
                    && text.starts_with("arn:")
                {
                    *text = encoded(text);
                }
            }
            assert_ne!(plain, coded, "{name}: nothing was encoded");
            let a = audit(&event(name, console(ADMIN), plain, Value::Null));
            let mut b = audit(&event(name, console(ADMIN), coded, Value::Null));
            assert_eq!(b.target_kind, TargetKind::User, "{name}");
            assert_eq!(b.target_id.as_deref(), Some(USER), "{name}");
            assert_eq!(b.instance_id.as_deref(), Some(INSTANCE), "{name}");
            assert!(b.request_parameters.as_deref().unwrap().contains("%3A"));
            b.request_parameters.clone_from(&a.request_parameters);
            assert_eq!(a, b, "{name}");
        }
        // A value that is no ARN or id once decoded is kept as recorded.
        let rec = audit(&event(
            "DeleteUser",
            console(ADMIN),
            json!({"InstanceId": "my%20instance", "UserId": "100%25"}),
            Value::Null,
        ));
        assert_eq!(rec.instance_id.as_deref(), Some("my%20instance"));
        assert_eq!(rec.target_id.as_deref(), Some("100%25"));
    }

    #[test]
    fn a_call_naming_several_targets_gives_a_row_for_each() {
        let instance = format!("arn:aws:connect:us-east-1:111122223333:instance/{INSTANCE}");
        let users: Vec<String> = (0..3)
            .map(|i| format!("{instance}/agent/{i:08}-7777-8888-9999-000000000000"))
            .collect();
        let routing = format!("{instance}/routing-profile/rp-1");
        let arns = json!([users[0], encoded(&users[1]), routing, users[2]]);
        let rows = records(&event(
            "AssociateWorkspace",
            console(ADMIN),
            json!({"ResourceArns": arns, "WorkspaceId": "w-1", "InstanceId": INSTANCE}),
            Value::Null,
        ))
        .unwrap();
        let got: Vec<(u32, TargetKind, Option<&str>)> = rows
            .iter()
            .map(|r| (r.target_index, r.target_kind, r.target_id.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    0,
                    TargetKind::User,
                    Some("00000000-7777-8888-9999-000000000000")
                ),
                (
                    1,
                    TargetKind::User,
                    Some("00000001-7777-8888-9999-000000000000")
                ),
                (2, TargetKind::RoutingProfile, Some("rp-1")),
                (
                    3,
                    TargetKind::User,
                    Some("00000002-7777-8888-9999-000000000000")
                ),
            ]
        );
        assert!(
            rows.iter()
                .all(|r| r.event_id == "e-1" && r.category == rows[0].category)
        );
        assert_eq!(rows[0].row_key(), "e-1");
        assert_eq!(rows[3].row_key(), "e-1#3");
        // No list: one row without a target; more than the API accepts: refused.
        let none = records(&event(
            "DisassociateWorkspace",
            console(ADMIN),
            json!({"ResourceArns": [], "WorkspaceId": "w-1"}),
            Value::Null,
        ))
        .unwrap();
        assert_eq!(
            (none.len(), none[0].target_kind, none[0].target_index),
            (1, TargetKind::None, 0)
        );
        let many: Vec<String> = (0..=MAX_TARGETS).map(|_| users[0].clone()).collect();
        let refused = records(&event(
            "AssociateWorkspace",
            console(ADMIN),
            json!({"ResourceArns": many, "WorkspaceId": "w-1"}),
            Value::Null,
        ));
        assert_eq!(
            refused.unwrap_err().to_string(),
            "`requestParameters.ResourceArns` names 26 targets, more than the 25 the Connect API accepts"
        );
    }

    #[test]
    fn a_sign_in_names_its_user_from_the_response_and_loses_its_credentials() {
        let rec = audit(&event(
            "GetFederationToken",
            console(ADMIN),
            json!({"InstanceId": INSTANCE}),
            json!({
                "Credentials": {"AccessToken": "secret-a", "AccessTokenExpiration": "x", "RefreshToken": "secret-r"},
                "SignInUrl": "https://x.my.connect.aws/auth/sign-in?token=secret-u",
                "UserArn": format!("arn:aws:connect:us-east-1:1:instance/{INSTANCE}/agent/{USER}"),
                "UserId": USER
            }),
        ));
        assert_eq!(
            (rec.target_kind, rec.target_id.as_deref()),
            (TargetKind::User, Some(USER))
        );
        let response = rec.response_elements.unwrap();
        assert!(!response.contains("secret"), "{response}");
        assert!(!response.contains("Credentials"), "{response}");
        assert!(response.contains("UserArn"), "{response}");
        let failed = audit(&event(
            "GetFederationToken",
            console(ADMIN),
            json!({"InstanceId": INSTANCE}),
            Value::Null,
        ));
        assert_eq!(failed.target_kind, TargetKind::None);
    }

    #[test]
    fn failed_create_user_has_name_but_no_id_and_teaches_nothing() {
        let mut v = event(
            "CreateUser",
            console(ADMIN),
            json!({"Username": "dup"}),
            Value::Null,
        );
        v["errorCode"] = json!("DuplicateResourceException");
        let text = v.to_string();
        let Parsed::Connect(rec) = parse_record(&text).unwrap() else {
            panic!()
        };
        assert_eq!(rec.learned_name(), None);
        let a = rec
            .to_audit_records(group_of("CreateUser").unwrap(), &Redaction::default())
            .unwrap()
            .remove(0);
        assert_eq!((a.target_id, a.target_name.as_deref()), (None, Some("dup")));
        assert_eq!(a.error_code.as_deref(), Some("DuplicateResourceException"));
    }

    #[test]
    fn a_key_named_twice_makes_the_record_bad_and_the_id_is_still_found() {
        let once = event(
            "DeleteUser",
            console(ADMIN),
            json!({"UserId": USER}),
            json!({"a": [1, -2, 2.5, null, true, {"b": "c"}]}),
        )
        .to_string();
        let rec = audit(&serde_json::from_str(&once).unwrap());
        assert_eq!(
            rec.response_elements.as_deref(),
            Some(r#"{"a":[1,-2,2.5,null,true,{"b":"c"}]}"#)
        );
        let twice = once.replacen(
            "\"UserId\":",
            "\"UserId\":\"aaaaaaaa-7777-8888-9999-000000000000\",\"UserId\":",
            1,
        );
        let Err(RecordError::Shape(why)) = parse_record(&twice) else {
            panic!("accepted {twice}")
        };
        assert!(why.contains("duplicate key \"UserId\""), "{why}");
        assert_eq!(raw_event_id(&twice).as_deref(), Some("e-1"));
        let nested = once.replacen("\"b\":\"c\"", "\"b\":1,\"b\":2", 1);
        assert!(parse_record(&nested).is_err(), "{nested}");
        let top = once.replacen(
            "\"eventName\":",
            "\"eventName\":\"GetUser\",\"eventName\":",
            1,
        );
        assert!(parse_record(&top).is_err(), "{top}");
        assert_eq!(raw_event_id(r#"{"eventID": 5}"#), None);
        assert_eq!(raw_event_id("[1]"), None);
    }

    #[test]
    fn other_services_and_bad_records() {
        let iam =
            json!({"eventSource": "iam.amazonaws.com", "eventName": "CreateUser"}).to_string();
        assert!(matches!(parse_record(&iam), Ok(Parsed::Other)));
        let weird = json!({"eventSource": "s3.amazonaws.com", "eventTime": 5}).to_string();
        assert!(matches!(parse_record(&weird), Ok(Parsed::Other)));
        let bad = json!({"eventSource": "connect.amazonaws.com", "eventTime": 5}).to_string();
        assert!(matches!(parse_record(&bad), Err(RecordError::Shape(_))));
        assert!(matches!(parse_record("[1]"), Err(RecordError::Shape(_))));
        let mut v = event(
            "DeleteUser",
            console(ADMIN),
            json!({"UserId": USER}),
            Value::Null,
        );
        v["eventTime"] = json!("yesterday");
        let text = v.to_string();
        let Parsed::Connect(rec) = parse_record(&text).unwrap() else {
            panic!()
        };
        assert_eq!(
            rec.to_audit_records(group_of("DeleteUser").unwrap(), &Redaction::default()),
            Err(RecordError::BadTime("yesterday".into()))
        );
    }
}
