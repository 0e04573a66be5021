//! A fake Amazon Connect API for tests: a real HTTP server speaking Connect's REST-JSON
//! protocol, so the real `aws-sdk-connect` client talks to it through `endpoint_url`.
//!
//! It answers the calls the snapshot makes, with the paths, query names and JSON shapes the
//! SDK uses (checked against `aws-sdk-connect` 1.220's `protocol_serde` and the `uri_base` of
//! each `operation/<op>.rs`). Every list is paged by `maxResults` and `nextToken`.
//!
//! | call | request | answer |
//! |---|---|---|
//! | ListUsers | `GET /users-summary/{InstanceId}?maxResults&nextToken` | `UserSummaryList`, `NextToken` |
//! | DescribeUser | `GET /users/{InstanceId}/{UserId}` | `User` |
//! | ListUserProficiencies | `GET /users/{InstanceId}/{UserId}/proficiencies` | `UserProficiencyList`, `NextToken`, `LastModifiedTime`, `LastModifiedRegion` |
//! | ListSecurityProfiles | `GET /security-profiles-summary/{InstanceId}` | `SecurityProfileSummaryList` |
//! | DescribeSecurityProfile | `GET /security-profiles/{InstanceId}/{SecurityProfileId}` | `SecurityProfile` |
//! | ListSecurityProfilePermissions | `GET /security-profiles-permissions/{InstanceId}/{SecurityProfileId}` | `Permissions`, `NextToken`, `LastModifiedTime`, `LastModifiedRegion` |
//! | ListRoutingProfiles | `GET /routing-profiles-summary/{InstanceId}` | `RoutingProfileSummaryList` |
//! | DescribeRoutingProfile | `GET /routing-profiles/{InstanceId}/{RoutingProfileId}` | `RoutingProfile` |
//! | ListRoutingProfileQueues | `GET /routing-profiles/{InstanceId}/{RoutingProfileId}/queues` | `RoutingProfileQueueConfigSummaryList`, `NextToken`, `LastModifiedTime`, `LastModifiedRegion` |
//! | ListUserHierarchyGroups | `GET /user-hierarchy-groups-summary/{InstanceId}` | `UserHierarchyGroupSummaryList` |
//! | DescribeUserHierarchyGroup | `GET /user-hierarchy-groups/{InstanceId}/{HierarchyGroupId}` | `HierarchyGroup` |
//!
//! Errors carry `x-amzn-ErrorType` and a JSON `{"message"}` body, as the service sends them:
//! `ResourceNotFoundException` (404) for an unknown instance, user, profile or group,
//! `InvalidParameterException` (400) for a bad `maxResults` or `nextToken`, and the injected
//! faults ([`Fault`]). A request without an `Authorization` header is refused (403): the SDK
//! always signs, and the fake checks that it did (it does not verify the signature).
//!
//! The server runs on its own thread and runtime, so sync tests, async tests and tests that
//! start the `connect-audit` binary can all use it; dropping the [`FakeConnect`] stops it.
//!
//! ```no_run
//! use connect_audit_tests::fake_connect::{FakeConnect, Fault, Operation};
//!
//! let fake = FakeConnect::start();
//! let instance = "11111111-2222-3333-4444-555555555555";
//! let users = fake.add_instance(instance, 2_500);
//! fake.set_page_cap(1_000);
//! fake.inject(None, Fault::Throttling, 3);
//! fake.delete_user(instance, &users[0].id);
//! // … point an aws_sdk_connect::Client at fake.url() …
//! assert_eq!(fake.requests(Operation::ListUsers), 0);
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::server::{Flavor, TestServer};

/// The account every generated ARN uses unless an instance says otherwise.
pub const DEFAULT_ACCOUNT: &str = "111122223333";
/// The region every generated ARN uses unless an instance says otherwise.
pub const DEFAULT_REGION: &str = "us-east-1";
/// `LastModifiedTime` of generated users and resources: 2024-05-01T00:00:00Z.
pub const GENERATED_MODIFIED: f64 = 1_714_521_600.0;

/// A Connect API call the fake answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    /// `ListUsers`.
    ListUsers,
    /// `DescribeUser`.
    DescribeUser,
    /// `ListSecurityProfiles`.
    ListSecurityProfiles,
    /// `ListRoutingProfiles`.
    ListRoutingProfiles,
    /// `ListUserHierarchyGroups`.
    ListUserHierarchyGroups,
    /// `ListUserProficiencies`.
    ListUserProficiencies,
    /// `DescribeSecurityProfile`.
    DescribeSecurityProfile,
    /// `ListSecurityProfilePermissions`.
    ListSecurityProfilePermissions,
    /// `DescribeRoutingProfile`.
    DescribeRoutingProfile,
    /// `ListRoutingProfileQueues`.
    ListRoutingProfileQueues,
    /// `DescribeUserHierarchyGroup`.
    DescribeUserHierarchyGroup,
}

impl Operation {
    /// Every operation, in a fixed order.
    pub const ALL: [Self; 11] = [
        Self::ListUsers,
        Self::DescribeUser,
        Self::ListSecurityProfiles,
        Self::ListRoutingProfiles,
        Self::ListUserHierarchyGroups,
        Self::ListUserProficiencies,
        Self::DescribeSecurityProfile,
        Self::ListSecurityProfilePermissions,
        Self::DescribeRoutingProfile,
        Self::ListRoutingProfileQueues,
        Self::DescribeUserHierarchyGroup,
    ];

    /// The API name, e.g. `ListUsers`.
    pub fn name(self) -> &'static str {
        match self {
            Self::ListUsers => "ListUsers",
            Self::DescribeUser => "DescribeUser",
            Self::ListSecurityProfiles => "ListSecurityProfiles",
            Self::ListRoutingProfiles => "ListRoutingProfiles",
            Self::ListUserHierarchyGroups => "ListUserHierarchyGroups",
            Self::ListUserProficiencies => "ListUserProficiencies",
            Self::DescribeSecurityProfile => "DescribeSecurityProfile",
            Self::ListSecurityProfilePermissions => "ListSecurityProfilePermissions",
            Self::DescribeRoutingProfile => "DescribeRoutingProfile",
            Self::ListRoutingProfileQueues => "ListRoutingProfileQueues",
            Self::DescribeUserHierarchyGroup => "DescribeUserHierarchyGroup",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An error the fake can be told to answer instead of doing the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 429 `ThrottlingException`: what Connect's model names for its rate limits.
    Throttling,
    /// 429 `TooManyRequestsException`: the other throttling code AWS services send.
    TooManyRequests,
    /// 500 `InternalServiceException`.
    Internal,
    /// No answer at all: the request is read and counted, then the connection is left open
    /// until the client gives up (a hung service).
    Hang,
}

impl Fault {
    fn status_and_code(self) -> (StatusCode, &'static str) {
        match self {
            Self::Hang => unreachable!("a hung request is never answered"),
            Self::Throttling => (StatusCode::TOO_MANY_REQUESTS, "ThrottlingException"),
            Self::TooManyRequests => (StatusCode::TOO_MANY_REQUESTS, "TooManyRequestsException"),
            Self::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServiceException",
            ),
        }
    }
}

/// A user of a fake instance: what ListUsers and DescribeUser report.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeUser {
    /// The user id. Normally a UUID; a test may put anything here (e.g. `../../etc/passwd`)
    /// to see what a client does with a bad id from the API.
    pub id: String,
    /// The username.
    pub username: String,
    /// `IdentityInfo.FirstName`.
    pub first_name: String,
    /// `IdentityInfo.LastName`.
    pub last_name: String,
    /// `IdentityInfo.Email`.
    pub email: String,
    /// `SecurityProfileIds`.
    pub security_profile_ids: Vec<String>,
    /// `RoutingProfileId`.
    pub routing_profile_id: String,
    /// `HierarchyGroupId`, if the user is in a group.
    pub hierarchy_group_id: Option<String>,
    /// `LastModifiedTime`, epoch seconds.
    pub last_modified: f64,
    /// `IdentityInfo.SecondaryEmail`, if set.
    pub secondary_email: Option<String>,
    /// `IdentityInfo.Mobile`, if set.
    pub mobile: Option<String>,
    /// `PhoneConfig`, as DescribeUser returns it (left out of the answer when `Null`).
    pub phone_config: Value,
    /// `Tags`.
    pub tags: BTreeMap<String, String>,
    /// What ListUserProficiencies reports, in order.
    pub proficiencies: Vec<FakeProficiency>,
}

/// One entry of a user's `UserProficiencyList`.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeProficiency {
    /// `AttributeName`, e.g. `Language`.
    pub attribute_name: String,
    /// `AttributeValue`, e.g. `English`.
    pub attribute_value: String,
    /// `Level`, 1.0 to 5.0.
    pub level: f64,
}

/// The `PhoneConfig` every generated user has.
pub fn default_phone_config() -> Value {
    json!({
        "PhoneType": "SOFT_PHONE",
        "AutoAccept": false,
        "AfterContactWorkTimeLimit": 0,
        "DeskPhoneNumber": "",
    })
}

/// A security profile, routing profile or hierarchy group of a fake instance. Each kind uses
/// the fields its calls report and ignores the others.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeResource {
    /// The id (a UUID, or anything a test wants to see rejected).
    pub id: String,
    /// The name.
    pub name: String,
    /// `Description` (security and routing profiles), if set.
    pub description: Option<String>,
    /// Security profiles: what ListSecurityProfilePermissions reports, in order.
    pub permissions: Vec<String>,
    /// Routing profiles: what ListRoutingProfileQueues reports, in order.
    pub queues: Vec<FakeQueue>,
    /// Hierarchy groups: the parent group's id (`None` at the top level).
    pub parent_id: Option<String>,
    /// `Tags`.
    pub tags: BTreeMap<String, String>,
    /// `LastModifiedTime`, epoch seconds, in the list calls and the describe call.
    pub last_modified: f64,
}

impl FakeResource {
    /// A resource with this id and name, nothing else set, modified at
    /// [`GENERATED_MODIFIED`].
    pub fn new(id: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            ..Self::default()
        }
    }
}

impl Default for FakeResource {
    fn default() -> Self {
        Self {
            id: String::new(),
            name: String::new(),
            description: None,
            permissions: Vec::new(),
            queues: Vec::new(),
            parent_id: None,
            tags: BTreeMap::new(),
            last_modified: GENERATED_MODIFIED,
        }
    }
}

/// One queue of a routing profile: an entry of `RoutingProfileQueueConfigSummaryList`.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeQueue {
    /// `QueueId` (`QueueArn` and `QueueName` are derived from it).
    pub queue_id: String,
    /// `Channel`: `VOICE`, `CHAT`, `TASK` or `EMAIL`.
    pub channel: String,
    /// `Priority`.
    pub priority: i32,
    /// `Delay`, seconds.
    pub delay: i32,
}

impl FakeQueue {
    /// The `QueueName` the fake reports: `Queue ` and the id's first 8 characters.
    pub fn name(&self) -> String {
        format!(
            "Queue {}",
            self.queue_id.chars().take(8).collect::<String>()
        )
    }
}

/// Which of an instance's resource lists a resource is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    /// [`FakeInstance::security_profiles`].
    SecurityProfile,
    /// [`FakeInstance::routing_profiles`].
    RoutingProfile,
    /// [`FakeInstance::hierarchy_groups`].
    HierarchyGroup,
}

impl ResourceKind {
    /// The resource type in its ARN, e.g. `security-profile`.
    pub fn arn_kind(self) -> &'static str {
        match self {
            Self::SecurityProfile => "security-profile",
            Self::RoutingProfile => "routing-profile",
            Self::HierarchyGroup => "agent-group",
        }
    }

    fn list(self, instance: &FakeInstance) -> &[FakeResource] {
        match self {
            Self::SecurityProfile => &instance.security_profiles,
            Self::RoutingProfile => &instance.routing_profiles,
            Self::HierarchyGroup => &instance.hierarchy_groups,
        }
    }

    fn list_mut(self, instance: &mut FakeInstance) -> &mut Vec<FakeResource> {
        match self {
            Self::SecurityProfile => &mut instance.security_profiles,
            Self::RoutingProfile => &mut instance.routing_profiles,
            Self::HierarchyGroup => &mut instance.hierarchy_groups,
        }
    }

    fn not_found(self) -> &'static str {
        match self {
            Self::SecurityProfile => "Security profile",
            Self::RoutingProfile => "Routing profile",
            Self::HierarchyGroup => "Hierarchy group",
        }
    }
}

/// One fake Connect instance.
#[derive(Debug, Clone, Default)]
pub struct FakeInstance {
    /// The account its ARNs name.
    pub account: String,
    /// The region its ARNs name.
    pub region: String,
    /// Users, in ListUsers order.
    pub users: Vec<FakeUser>,
    /// Security profiles, in list order.
    pub security_profiles: Vec<FakeResource>,
    /// Routing profiles, in list order.
    pub routing_profiles: Vec<FakeResource>,
    /// Hierarchy groups, in list order.
    pub hierarchy_groups: Vec<FakeResource>,
}

#[derive(Debug)]
struct FaultRule {
    operation: Option<Operation>,
    fault: Fault,
    remaining: u64,
}

#[derive(Debug, Default)]
struct FakeState {
    // Arc: a request takes a cheap snapshot; mutations copy on write.
    instances: BTreeMap<String, Arc<FakeInstance>>,
    page_cap: Option<usize>,
    latency: Duration,
    faults: Vec<FaultRule>,
    requests: BTreeMap<Operation, u64>,
    faults_served: BTreeMap<Operation, u64>,
    unsigned: u64,
}

type Shared = Arc<Mutex<FakeState>>;

/// A running fake Connect API on `127.0.0.1` and a free port.
pub struct FakeConnect {
    server: TestServer,
    state: Shared,
}

impl fmt::Debug for FakeConnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeConnect")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl FakeConnect {
    /// Starts a server with no instances, no page cap and no faults.
    pub fn start() -> Self {
        let state = Shared::default();
        let server = TestServer::bind("fake-connect")
            .serve_router(Flavor::CurrentThread, router(Arc::clone(&state)));
        Self { server, state }
    }

    /// The base URL to give the SDK as `endpoint_url`, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        self.server.url()
    }

    /// A real `aws-sdk-connect` client for this server: region [`DEFAULT_REGION`], static
    /// test credentials, and the standard retry mode with up to `max_attempts` attempts and
    /// millisecond backoffs (so retry tests are fast).
    pub fn client(&self, max_attempts: u32) -> aws_sdk_connect::Client {
        use aws_sdk_connect::config::retry::RetryConfig;
        use aws_sdk_connect::config::{BehaviorVersion, Credentials, Region};
        let retry = RetryConfig::standard()
            .with_max_attempts(max_attempts)
            .with_initial_backoff(Duration::from_millis(1))
            .with_max_backoff(Duration::from_millis(20));
        let config = aws_sdk_connect::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(DEFAULT_REGION))
            .endpoint_url(self.url())
            .credentials_provider(Credentials::new(
                "AKIDFAKECONNECT",
                "fake-connect-secret",
                None,
                None,
                "fake-connect",
            ))
            .retry_config(retry)
            .build();
        aws_sdk_connect::Client::from_conf(config)
    }

    fn state(&self) -> MutexGuard<'_, FakeState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds an instance (in [`DEFAULT_ACCOUNT`], [`DEFAULT_REGION`]) with `users` generated
    /// users and three of each profile and group, all derived from the instance id alone, so
    /// the same call gives the same directory on every run. Returns the users.
    pub fn add_instance(&self, instance_id: &str, users: usize) -> Vec<FakeUser> {
        let instance = generate_instance(instance_id, users);
        let out = instance.users.clone();
        self.put_instance(instance_id, instance);
        out
    }

    /// Adds or replaces an instance as given.
    pub fn put_instance(&self, instance_id: &str, instance: FakeInstance) {
        self.state()
            .instances
            .insert(instance_id.to_owned(), Arc::new(instance));
    }

    /// A copy of an instance as it is now.
    pub fn instance(&self, instance_id: &str) -> Option<FakeInstance> {
        self.state()
            .instances
            .get(instance_id)
            .map(|i| FakeInstance::clone(i))
    }

    /// Caps every page at `cap` items, whatever `maxResults` asks for (the service's own
    /// page size may be smaller than asked). `None` removes the cap.
    pub fn set_page_cap(&self, cap: impl Into<Option<usize>>) {
        self.state().page_cap = cap.into().map(|c| c.max(1));
    }

    /// Delays every answer by `latency`, to look more like the real service.
    pub fn set_latency(&self, latency: Duration) {
        self.state().latency = latency;
    }

    /// The next `count` requests for `operation` (any operation for `None`) answer `fault`.
    /// Rules are consumed in the order they were added.
    pub fn inject(&self, operation: Option<Operation>, fault: Fault, count: u64) {
        self.state().faults.push(FaultRule {
            operation,
            fault,
            remaining: count,
        });
    }

    /// Appends a user to an instance's ListUsers (and makes it describable).
    pub fn insert_user(&self, instance_id: &str, user: FakeUser) {
        self.with_instance(instance_id, |i| i.users.push(user));
    }

    /// Removes a user, as `DeleteUser` would. Returns whether it existed.
    pub fn delete_user(&self, instance_id: &str, user_id: &str) -> bool {
        self.with_instance(instance_id, |i| {
            let before = i.users.len();
            i.users.retain(|u| u.id != user_id);
            before != i.users.len()
        })
    }

    /// Changes a user in place (rename, new email, …). Returns whether it existed. The caller
    /// sets `last_modified` if it wants the change to show there, as the service would.
    pub fn modify_user(
        &self,
        instance_id: &str,
        user_id: &str,
        change: impl FnOnce(&mut FakeUser),
    ) -> bool {
        self.with_instance(instance_id, |i| {
            i.users
                .iter_mut()
                .find(|u| u.id == user_id)
                .map(change)
                .is_some()
        })
    }

    /// Appends a resource to one of an instance's lists (and makes it describable).
    pub fn insert_resource(&self, instance_id: &str, kind: ResourceKind, resource: FakeResource) {
        self.with_instance(instance_id, |i| kind.list_mut(i).push(resource));
    }

    /// Removes a resource, as its `Delete…` call would. Returns whether it existed.
    pub fn delete_resource(&self, instance_id: &str, kind: ResourceKind, id: &str) -> bool {
        self.with_instance(instance_id, |i| {
            let list = kind.list_mut(i);
            let before = list.len();
            list.retain(|r| r.id != id);
            before != list.len()
        })
    }

    /// Changes a resource in place (rename, new permissions, queues, parent, …). Returns
    /// whether it existed. The caller sets `last_modified` if it wants the change to show
    /// there, as the service would.
    pub fn modify_resource(
        &self,
        instance_id: &str,
        kind: ResourceKind,
        id: &str,
        change: impl FnOnce(&mut FakeResource),
    ) -> bool {
        self.with_instance(instance_id, |i| {
            kind.list_mut(i)
                .iter_mut()
                .find(|r| r.id == id)
                .map(change)
                .is_some()
        })
    }

    fn with_instance<T>(&self, instance_id: &str, f: impl FnOnce(&mut FakeInstance) -> T) -> T {
        let mut state = self.state();
        let instance = state
            .instances
            .get_mut(instance_id)
            .unwrap_or_else(|| panic!("no fake instance {instance_id}"));
        f(Arc::make_mut(instance))
    }

    /// Requests received for `operation` (faults and errors included, unsigned ones not).
    pub fn requests(&self, operation: Operation) -> u64 {
        self.state().requests.get(&operation).copied().unwrap_or(0)
    }

    /// Requests received, per operation name, every operation listed.
    pub fn request_counts(&self) -> BTreeMap<&'static str, u64> {
        let state = self.state();
        Operation::ALL
            .iter()
            .map(|op| (op.name(), state.requests.get(op).copied().unwrap_or(0)))
            .collect()
    }

    /// Injected faults answered for `operation`.
    pub fn faults_served(&self, operation: Operation) -> u64 {
        self.state()
            .faults_served
            .get(&operation)
            .copied()
            .unwrap_or(0)
    }

    /// Injected faults answered, all operations.
    pub fn total_faults_served(&self) -> u64 {
        self.state().faults_served.values().sum()
    }

    /// Requests refused for having no `Authorization` header.
    pub fn unsigned_requests(&self) -> u64 {
        self.state().unsigned
    }

    /// Sets every counter back to zero (instances, faults and settings are kept).
    pub fn reset_counters(&self) {
        let mut state = self.state();
        state.requests.clear();
        state.faults_served.clear();
        state.unsigned = 0;
    }
}

/// A deterministic UUID-shaped id from a seed string and a number.
pub fn fake_uuid(seed: &str, n: u64) -> String {
    // FNV-1a over the seed, then splitmix64: stable across platforms and Rust versions.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in seed.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let mut state = hash ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let (high, low) = (next(), next());
    let hex = format!("{high:016x}{low:016x}");
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

const FIRST_NAMES: [&str; 8] = [
    "Aiko", "Ben", "Chen", "Dana", "Emeka", "Farah", "Goro", "Hana",
];
const LAST_NAMES: [&str; 8] = [
    "Sato", "Okafor", "Lopez", "Nguyen", "Smith", "Tanaka", "Weber", "Kim",
];

/// The `n`-th generated user of `instance_id` (see [`FakeConnect::add_instance`]).
pub fn generated_user(instance_id: &str, n: usize, instance: &FakeInstance) -> FakeUser {
    let first = FIRST_NAMES[n % FIRST_NAMES.len()];
    let last = LAST_NAMES[(n / FIRST_NAMES.len()) % LAST_NAMES.len()];
    let username = format!("agent{n:05}");
    let pick = |list: &[FakeResource]| list.get(n % list.len().max(1)).map(|r| r.id.clone());
    FakeUser {
        id: fake_uuid(instance_id, n as u64),
        email: format!("{username}@example-callcenter.com"),
        username,
        first_name: first.to_owned(),
        last_name: last.to_owned(),
        security_profile_ids: pick(&instance.security_profiles).into_iter().collect(),
        routing_profile_id: pick(&instance.routing_profiles).unwrap_or_default(),
        hierarchy_group_id: pick(&instance.hierarchy_groups),
        last_modified: GENERATED_MODIFIED,
        secondary_email: None,
        mobile: None,
        phone_config: default_phone_config(),
        tags: BTreeMap::new(),
        // Every other user speaks English, at a level from 1 to 5.
        proficiencies: if n.is_multiple_of(2) {
            vec![FakeProficiency {
                attribute_name: "Language".to_owned(),
                attribute_value: "English".to_owned(),
                level: [1.0, 2.0, 3.0, 4.0, 5.0][n % 5],
            }]
        } else {
            Vec::new()
        },
    }
}

fn generate_instance(instance_id: &str, users: usize) -> FakeInstance {
    let resources = |kind: &str, names: [&str; 3]| {
        names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                FakeResource::new(fake_uuid(&format!("{instance_id}/{kind}"), i as u64), *name)
            })
            .collect::<Vec<_>>()
    };
    let strings = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();

    let mut security_profiles =
        resources("security-profile", ["Admin", "Agent", "CallCenterManager"]);
    let permissions = [
        strings(&[
            "BasicAgentAccess",
            "Users.Create",
            "Users.Edit",
            "SecurityProfiles.Edit",
            "RoutingProfiles.Edit",
        ]),
        strings(&["BasicAgentAccess", "ContactControlPanel.Access"]),
        strings(&["BasicAgentAccess", "Queues.View", "Users.View"]),
    ];
    for (profile, permissions) in security_profiles.iter_mut().zip(permissions) {
        profile.description = Some(format!("{} security profile", profile.name));
        profile.permissions = permissions;
    }

    // Each routing profile has a VOICE queue of its own; all but the first also a CHAT one.
    let mut routing_profiles = resources(
        "routing-profile",
        ["Basic Routing Profile", "Tier 1 Support", "Outbound Sales"],
    );
    for (n, profile) in (0u64..).zip(routing_profiles.iter_mut()) {
        let queue = |k: u64| fake_uuid(&format!("{instance_id}/queue"), 2 * n + k);
        profile.description = Some(format!("{} routing profile", profile.name));
        profile.queues.push(FakeQueue {
            queue_id: queue(0),
            channel: "VOICE".to_owned(),
            priority: 1,
            delay: 0,
        });
        if n > 0 {
            profile.queues.push(FakeQueue {
                queue_id: queue(1),
                channel: "CHAT".to_owned(),
                priority: 2,
                delay: 30,
            });
        }
    }

    // Japan > Tokyo > Tokyo Floor 2.
    let mut hierarchy_groups = resources("agent-group", ["Japan", "Tokyo", "Tokyo Floor 2"]);
    for n in 1..hierarchy_groups.len() {
        hierarchy_groups[n].parent_id = Some(hierarchy_groups[n - 1].id.clone());
    }

    let mut instance = FakeInstance {
        account: DEFAULT_ACCOUNT.to_owned(),
        region: DEFAULT_REGION.to_owned(),
        users: Vec::new(),
        security_profiles,
        routing_profiles,
        hierarchy_groups,
    };
    instance.users = (0..users)
        .map(|n| generated_user(instance_id, n, &instance))
        .collect();
    instance
}

fn router(state: Shared) -> Router {
    Router::new()
        .route("/users-summary/{instance}", get(list_users))
        .route("/users/{instance}/{user}", get(describe_user))
        .route(
            "/users/{instance}/{user}/proficiencies",
            get(list_user_proficiencies),
        )
        .route(
            "/security-profiles/{instance}/{id}",
            get(describe_security_profile),
        )
        .route(
            "/security-profiles-permissions/{instance}/{id}",
            get(list_security_profile_permissions),
        )
        .route(
            "/routing-profiles/{instance}/{id}",
            get(describe_routing_profile),
        )
        .route(
            "/routing-profiles/{instance}/{id}/queues",
            get(list_routing_profile_queues),
        )
        .route(
            "/user-hierarchy-groups/{instance}/{id}",
            get(describe_user_hierarchy_group),
        )
        .route(
            "/security-profiles-summary/{instance}",
            get(list_security_profiles),
        )
        .route(
            "/routing-profiles-summary/{instance}",
            get(list_routing_profiles),
        )
        .route(
            "/user-hierarchy-groups-summary/{instance}",
            get(list_user_hierarchy_groups),
        )
        .with_state(state)
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let mut response = (status, Json(json!({ "message": message }))).into_response();
    if let Ok(value) = HeaderValue::from_str(code) {
        response.headers_mut().insert("x-amzn-ErrorType", value);
    }
    response
}

/// What every handler does first: count, check the signature header, sleep, maybe fail.
/// `Ok` carries a snapshot of the instance (or the error to send).
async fn admit(
    state: &Shared,
    operation: Operation,
    headers: &HeaderMap,
    instance_id: &str,
) -> Result<Arc<FakeInstance>, Response> {
    let latency = {
        let mut s = state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !headers.contains_key(header::AUTHORIZATION) {
            s.unsigned += 1;
            return Err(error(
                StatusCode::FORBIDDEN,
                "MissingAuthenticationTokenException",
                "Missing Authentication Token",
            ));
        }
        *s.requests.entry(operation).or_default() += 1;
        s.latency
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let answer = {
        let mut s = state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let fault = s
            .faults
            .iter_mut()
            .find(|r| r.remaining > 0 && r.operation.is_none_or(|op| op == operation))
            .map(|rule| {
                rule.remaining -= 1;
                rule.fault
            });
        s.faults.retain(|r| r.remaining > 0);
        match fault {
            Some(Fault::Hang) => {
                *s.faults_served.entry(operation).or_default() += 1;
                None
            }
            Some(fault) => {
                *s.faults_served.entry(operation).or_default() += 1;
                let (status, code) = fault.status_and_code();
                Some(Err(error(status, code, &format!("injected {code}"))))
            }
            None => Some(s.instances.get(instance_id).cloned().ok_or_else(|| {
                error(
                    StatusCode::NOT_FOUND,
                    "ResourceNotFoundException",
                    &format!("Instance not found: {instance_id}"),
                )
            })),
        }
    };
    match answer {
        Some(answer) => answer,
        // Hung: dropped with the connection when the client gives up.
        None => std::future::pending().await,
    }
}

/// The page of `items` asked for by `maxResults`/`nextToken`, and the next token; or why
/// the parameters are invalid (`InvalidParameterException`).
fn page<T: Clone>(
    state: &Shared,
    items: &[T],
    query: &HashMap<String, String>,
) -> Result<(Vec<T>, Option<String>), &'static str> {
    let max = match query.get("maxResults") {
        None => 100,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => return Err("maxResults must be between 1 and 1000"),
        },
    };
    let cap = state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .page_cap;
    let size = cap.map_or(max, |c| c.min(max));
    let start = match query.get("nextToken") {
        None => 0,
        Some(t) => match t.strip_prefix("fake-page-").and_then(|n| n.parse().ok()) {
            Some(n) if n <= items.len() => n,
            _ => return Err("The nextToken is not valid"),
        },
    };
    let end = (start + size).min(items.len());
    let next = (end < items.len()).then(|| format!("fake-page-{end}"));
    Ok((items[start..end].to_vec(), next))
}

fn arn(instance_id: &str, instance: &FakeInstance, kind: &str, id: &str) -> String {
    format!(
        "arn:aws:connect:{}:{}:instance/{instance_id}/{kind}/{id}",
        instance.region, instance.account
    )
}

fn list_response(list_key: &str, items: Vec<Value>, next: Option<String>) -> Response {
    let mut body = serde_json::Map::new();
    body.insert(list_key.to_owned(), Value::Array(items));
    if let Some(next) = next {
        body.insert("NextToken".to_owned(), Value::String(next));
    }
    Json(Value::Object(body)).into_response()
}

async fn list_users(
    State(state): State<Shared>,
    Path(instance_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let instance = match admit(&state, Operation::ListUsers, &headers, &instance_id).await {
        Ok(i) => i,
        Err(e) => return e,
    };
    let (users, next) = match page(&state, &instance.users, &query) {
        Ok(p) => p,
        Err(m) => return error(StatusCode::BAD_REQUEST, "InvalidParameterException", m),
    };
    let items = users
        .iter()
        .map(|u| {
            json!({
                "Arn": arn(&instance_id, &instance, "agent", &u.id),
                "Id": u.id,
                "Username": u.username,
                "LastModifiedTime": u.last_modified,
                "LastModifiedRegion": instance.region,
            })
        })
        .collect();
    list_response("UserSummaryList", items, next)
}

async fn describe_user(
    State(state): State<Shared>,
    Path((instance_id, user_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let instance = match admit(&state, Operation::DescribeUser, &headers, &instance_id).await {
        Ok(i) => i,
        Err(e) => return e,
    };
    let Some(u) = instance.users.iter().find(|u| u.id == user_id) else {
        return error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!("User not found: {user_id}"),
        );
    };
    let mut user = json!({
        "Id": u.id,
        "Arn": arn(&instance_id, &instance, "agent", &u.id),
        "Username": u.username,
        "IdentityInfo": {
            "FirstName": u.first_name,
            "LastName": u.last_name,
            "Email": u.email,
        },
        "SecurityProfileIds": u.security_profile_ids,
        "RoutingProfileId": u.routing_profile_id,
        "Tags": u.tags,
        "LastModifiedTime": u.last_modified,
        "LastModifiedRegion": instance.region,
    });
    if let Some(email) = &u.secondary_email {
        user["IdentityInfo"]["SecondaryEmail"] = json!(email);
    }
    if let Some(mobile) = &u.mobile {
        user["IdentityInfo"]["Mobile"] = json!(mobile);
    }
    if !u.phone_config.is_null() {
        user["PhoneConfig"] = u.phone_config.clone();
    }
    if let Some(group) = &u.hierarchy_group_id {
        user["HierarchyGroupId"] = json!(group);
    }
    Json(json!({ "User": user })).into_response()
}

async fn list_resources(
    state: Shared,
    operation: Operation,
    instance_id: String,
    query: HashMap<String, String>,
    headers: HeaderMap,
) -> Response {
    let instance = match admit(&state, operation, &headers, &instance_id).await {
        Ok(i) => i,
        Err(e) => return e,
    };
    let (list, kind, key) = match operation {
        Operation::ListSecurityProfiles => (
            &instance.security_profiles,
            "security-profile",
            "SecurityProfileSummaryList",
        ),
        Operation::ListRoutingProfiles => (
            &instance.routing_profiles,
            "routing-profile",
            "RoutingProfileSummaryList",
        ),
        _ => (
            &instance.hierarchy_groups,
            "agent-group",
            "UserHierarchyGroupSummaryList",
        ),
    };
    let (items, next) = match page(&state, list, &query) {
        Ok(p) => p,
        Err(m) => return error(StatusCode::BAD_REQUEST, "InvalidParameterException", m),
    };
    let items = items
        .iter()
        .map(|r| {
            json!({
                "Id": r.id,
                "Arn": arn(&instance_id, &instance, kind, &r.id),
                "Name": r.name,
                "LastModifiedTime": r.last_modified,
                "LastModifiedRegion": instance.region,
            })
        })
        .collect();
    list_response(key, items, next)
}

async fn list_security_profiles(
    State(state): State<Shared>,
    Path(instance_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    list_resources(
        state,
        Operation::ListSecurityProfiles,
        instance_id,
        query,
        headers,
    )
    .await
}

async fn list_routing_profiles(
    State(state): State<Shared>,
    Path(instance_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    list_resources(
        state,
        Operation::ListRoutingProfiles,
        instance_id,
        query,
        headers,
    )
    .await
}

async fn list_user_hierarchy_groups(
    State(state): State<Shared>,
    Path(instance_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    list_resources(
        state,
        Operation::ListUserHierarchyGroups,
        instance_id,
        query,
        headers,
    )
    .await
}

fn invalid_parameter(message: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "InvalidParameterException",
        message,
    )
}

/// What every resource handler does first: [`admit`], then find the resource of `kind` with
/// `id` in the instance (or the `ResourceNotFoundException` to send).
async fn admit_resource(
    state: &Shared,
    operation: Operation,
    headers: &HeaderMap,
    instance_id: &str,
    kind: ResourceKind,
    id: &str,
) -> Result<(Arc<FakeInstance>, FakeResource), Response> {
    let instance = admit(state, operation, headers, instance_id).await?;
    let resource = kind
        .list(&instance)
        .iter()
        .find(|r| r.id == id)
        .cloned()
        .ok_or_else(|| resource_not_found(kind, id))?;
    Ok((instance, resource))
}

/// The 404 the service answers for an unknown resource id.
fn resource_not_found(kind: ResourceKind, id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "ResourceNotFoundException",
        &format!("{} not found: {id}", kind.not_found()),
    )
}

/// A paged list answer with the `LastModifiedTime`/`LastModifiedRegion` of its owner.
fn owned_list_response(
    list_key: &str,
    items: Vec<Value>,
    next: Option<String>,
    last_modified: f64,
    region: &str,
) -> Response {
    let mut body = serde_json::Map::new();
    body.insert(list_key.to_owned(), Value::Array(items));
    if let Some(next) = next {
        body.insert("NextToken".to_owned(), Value::String(next));
    }
    body.insert("LastModifiedTime".to_owned(), json!(last_modified));
    body.insert("LastModifiedRegion".to_owned(), json!(region));
    Json(Value::Object(body)).into_response()
}

async fn list_user_proficiencies(
    State(state): State<Shared>,
    Path((instance_id, user_id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let operation = Operation::ListUserProficiencies;
    let instance = match admit(&state, operation, &headers, &instance_id).await {
        Ok(i) => i,
        Err(e) => return e,
    };
    let Some(u) = instance.users.iter().find(|u| u.id == user_id) else {
        return error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!("User not found: {user_id}"),
        );
    };
    let (items, next) = match page(&state, &u.proficiencies, &query) {
        Ok(p) => p,
        Err(m) => return invalid_parameter(m),
    };
    let items = items
        .iter()
        .map(|p| {
            json!({
                "AttributeName": p.attribute_name,
                "AttributeValue": p.attribute_value,
                "Level": p.level,
            })
        })
        .collect();
    owned_list_response(
        "UserProficiencyList",
        items,
        next,
        u.last_modified,
        &instance.region,
    )
}

async fn describe_security_profile(
    State(state): State<Shared>,
    Path((instance_id, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let kind = ResourceKind::SecurityProfile;
    let operation = Operation::DescribeSecurityProfile;
    let (instance, r) =
        match admit_resource(&state, operation, &headers, &instance_id, kind, &id).await {
            Ok(found) => found,
            Err(e) => return e,
        };
    let mut profile = json!({
        "Id": r.id,
        "OrganizationResourceId": instance_id,
        "Arn": arn(&instance_id, &instance, kind.arn_kind(), &r.id),
        "SecurityProfileName": r.name,
        "Tags": r.tags,
        "AllowedAccessControlTags": {},
        "TagRestrictedResources": [],
        "HierarchyRestrictedResources": [],
        "LastModifiedTime": r.last_modified,
        "LastModifiedRegion": instance.region,
    });
    if let Some(description) = &r.description {
        profile["Description"] = json!(description);
    }
    Json(json!({ "SecurityProfile": profile })).into_response()
}

async fn list_security_profile_permissions(
    State(state): State<Shared>,
    Path((instance_id, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let operation = Operation::ListSecurityProfilePermissions;
    let (instance, r) = match admit_resource(
        &state,
        operation,
        &headers,
        &instance_id,
        ResourceKind::SecurityProfile,
        &id,
    )
    .await
    {
        Ok(found) => found,
        Err(e) => return e,
    };
    let (items, next) = match page(&state, &r.permissions, &query) {
        Ok(p) => p,
        Err(m) => return invalid_parameter(m),
    };
    let items = items.into_iter().map(Value::String).collect();
    owned_list_response(
        "Permissions",
        items,
        next,
        r.last_modified,
        &instance.region,
    )
}

async fn describe_routing_profile(
    State(state): State<Shared>,
    Path((instance_id, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let kind = ResourceKind::RoutingProfile;
    let operation = Operation::DescribeRoutingProfile;
    let (instance, r) =
        match admit_resource(&state, operation, &headers, &instance_id, kind, &id).await {
            Ok(found) => found,
            Err(e) => return e,
        };
    let mut queue_ids: Vec<&str> = Vec::new();
    let mut channels: Vec<&str> = Vec::new();
    for queue in &r.queues {
        if !queue_ids.contains(&queue.queue_id.as_str()) {
            queue_ids.push(&queue.queue_id);
        }
        if !channels.contains(&queue.channel.as_str()) {
            channels.push(&queue.channel);
        }
    }
    if channels.is_empty() {
        channels.push("VOICE");
    }
    let concurrencies: Vec<Value> = channels
        .iter()
        .map(|channel| {
            json!({
                "Channel": channel,
                "Concurrency": if *channel == "VOICE" { 1 } else { 2 },
                "CrossChannelBehavior": { "BehaviorType": "ROUTE_CURRENT_CHANNEL_ONLY" },
            })
        })
        .collect();
    let users = instance
        .users
        .iter()
        .filter(|u| u.routing_profile_id == r.id)
        .count();
    let mut profile = json!({
        "InstanceId": instance_id,
        "Name": r.name,
        "RoutingProfileArn": arn(&instance_id, &instance, kind.arn_kind(), &r.id),
        "RoutingProfileId": r.id,
        "MediaConcurrencies": concurrencies,
        "Tags": r.tags,
        "NumberOfAssociatedQueues": queue_ids.len(),
        "NumberOfAssociatedUsers": users,
        "LastModifiedTime": r.last_modified,
        "LastModifiedRegion": instance.region,
        // Every instance's default routing profile has this name.
        "IsDefault": r.name == "Basic Routing Profile",
        "AssociatedQueueIds": queue_ids,
    });
    if let Some(description) = &r.description {
        profile["Description"] = json!(description);
    }
    if let Some(queue) = r.queues.first() {
        profile["DefaultOutboundQueueId"] = json!(queue.queue_id);
    }
    Json(json!({ "RoutingProfile": profile })).into_response()
}

async fn list_routing_profile_queues(
    State(state): State<Shared>,
    Path((instance_id, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let operation = Operation::ListRoutingProfileQueues;
    let (instance, r) = match admit_resource(
        &state,
        operation,
        &headers,
        &instance_id,
        ResourceKind::RoutingProfile,
        &id,
    )
    .await
    {
        Ok(found) => found,
        Err(e) => return e,
    };
    let (items, next) = match page(&state, &r.queues, &query) {
        Ok(p) => p,
        Err(m) => return invalid_parameter(m),
    };
    let items = items
        .iter()
        .map(|q| {
            json!({
                "QueueId": q.queue_id,
                "QueueArn": arn(&instance_id, &instance, "queue", &q.queue_id),
                "QueueName": q.name(),
                "Priority": q.priority,
                "Delay": q.delay,
                "Channel": q.channel,
            })
        })
        .collect();
    owned_list_response(
        "RoutingProfileQueueConfigSummaryList",
        items,
        next,
        r.last_modified,
        &instance.region,
    )
}

/// The levels of `group`'s hierarchy path, top level first and `group` last: its ancestors
/// through `parent_id`, at most five levels (the service's limit; a deeper chain keeps its
/// lowest five), stopping at an unknown parent or a cycle.
fn hierarchy_chain<'a>(
    groups: &'a [FakeResource],
    group: &'a FakeResource,
) -> Vec<&'a FakeResource> {
    let mut chain = vec![group];
    while chain.len() < 5 {
        let current = chain[chain.len() - 1];
        let Some(parent) = current
            .parent_id
            .as_deref()
            .and_then(|p| groups.iter().find(|g| g.id == p))
        else {
            break;
        };
        if chain.iter().any(|g| g.id == parent.id) {
            break;
        }
        chain.push(parent);
    }
    chain.reverse();
    chain
}

async fn describe_user_hierarchy_group(
    State(state): State<Shared>,
    Path((instance_id, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let kind = ResourceKind::HierarchyGroup;
    let operation = Operation::DescribeUserHierarchyGroup;
    let (instance, r) =
        match admit_resource(&state, operation, &headers, &instance_id, kind, &id).await {
            Ok(found) => found,
            Err(e) => return e,
        };
    let chain = hierarchy_chain(&instance.hierarchy_groups, &r);
    let levels = [
        "LevelOne",
        "LevelTwo",
        "LevelThree",
        "LevelFour",
        "LevelFive",
    ];
    let path: serde_json::Map<String, Value> = levels
        .iter()
        .zip(&chain)
        .map(|(level, g)| {
            let summary = json!({
                "Id": g.id,
                "Arn": arn(&instance_id, &instance, kind.arn_kind(), &g.id),
                "Name": g.name,
                "LastModifiedTime": g.last_modified,
                "LastModifiedRegion": instance.region,
            });
            ((*level).to_owned(), summary)
        })
        .collect();
    let group = json!({
        "Id": r.id,
        "Arn": arn(&instance_id, &instance, kind.arn_kind(), &r.id),
        "Name": r.name,
        "LevelId": chain.len().to_string(),
        "HierarchyPath": path,
        "Tags": r.tags,
        "LastModifiedTime": r.last_modified,
        "LastModifiedRegion": instance.region,
    });
    Json(json!({ "HierarchyGroup": group })).into_response()
}
