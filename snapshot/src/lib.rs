//! Snapshots the Amazon Connect user directory into the snapshot store, local or S3.
//!
//! CloudTrail names the people in a Connect change only by ids; a deleted user vanishes from
//! `ListUsers`. A [`Snapshotter`] keeps what the directory said, for every configured
//! instance, in the store the report reads ([`connect_audit_core::store`]):
//!
//! ```text
//! <root>/users/<user-id>.json          {"Arn","Id","Username","InstanceId","LastModifiedTime",…,"FirstSeen","LastSeen","Deleted"}
//! <root>/security-profiles/<id>.json   {"Arn","Id","Name","InstanceId",…,"FirstSeen","LastSeen","Deleted"}
//! <root>/routing-profiles/<id>.json    (same shape)
//! <root>/hierarchy-groups/<id>.json    (same shape)
//! <root>/runs/<YYYYMMDDTHHMMSSZ>.json  the change log of one run
//! <root>/history/<run>-<instance>.jsonl every version the run observed, one per line
//! <root>/index/objects.json            the latest objects and their tags (a cache)
//! ```
//!
//! One run, per instance: page through `ListUsers` (`MaxResults` 1000, every `NextToken`),
//! `ListSecurityProfiles`, `ListRoutingProfiles` and `ListUserHierarchyGroups`; with
//! [`SnapshotOptions::describe_users`], `DescribeUser` the users that need it, a few at a
//! time, for e-mail, names, security profiles, routing profile and hierarchy group. Every id
//! the API returns is checked to be a UUID before it becomes a key; a bad one fails the
//! instance with an error naming it, before anything of that instance is written. Throttling
//! (`ThrottlingException`, `TooManyRequestsException`) and 5xx answers are retried by the SDK
//! with the retry configuration the caller gave the client.
//!
//! # What is written, and when
//!
//! - Objects are **never deleted**. A user (or profile, or group) gone from its list call is
//!   rewritten once with `Deleted: true`, its last known fields, `DeletedAt` (the time of the
//!   first run that no longer listed it) and `LastSeen` (the last run that still did, taken
//!   from the run logs): it was deleted in between.
//! - An object is rewritten **only when something in it changes**. `LastSeen` is not bumped
//!   on every run (that would rewrite every object every night): it is the time of the run
//!   that last wrote the object. That a user was still there at a later run is recorded by
//!   the run log instead — every instance a run log lists was seen whole at its `RunAt`, and
//!   an object with `Deleted: false` was present in each of them. So an unchanged re-run makes
//!   zero object writes; only its run log is written.
//! - `FirstSeen` is the time of the run that first wrote the object.
//! - `DescribeUser` is called for a user when it is new, when `ListUsers` shows it changed
//!   (`Arn`, `Username` or `LastModifiedTime` differ from the object), when the object has no
//!   `DescribeUser` fields yet, or always with [`SnapshotOptions::redescribe_unchanged`].
//!   Connect's API limits are low; this keeps a nightly run to a handful of calls. A run
//!   without `describe_users` keeps the `DescribeUser` fields an earlier run wrote.
//! - **Every version is kept.** Before a run writes objects, it appends what it writes, each
//!   observed at the run's time, to `history/<run>-<instance>.jsonl` (never rewritten); an
//!   object without a version yet (an old store) first gets one observed at its `LastSeen`.
//!   With `describe_users`, the versions hold what changes are decoded against: a user's
//!   security profiles, routing profile, hierarchy group, identity, phone config, tags and
//!   proficiencies (`ListUserProficiencies`); a security profile's permissions
//!   (`ListSecurityProfilePermissions`) and access-control settings
//!   (`DescribeSecurityProfile`); a routing profile's queues (`ListRoutingProfileQueues`) and
//!   tags; a hierarchy group's level and path (`DescribeUserHierarchyGroup`). A resource is
//!   described when it is new, its listing changed, or it was never described.
//! - **An unchanged re-run reads listings and one index, not every object.**
//!   `index/objects.json` holds the latest objects with the tag (S3 `ETag`; locally size and
//!   modification time) each had when written; an object whose listed tag matches is taken
//!   from the index, any other is read. The index is rewritten only when it changes.
//! - `runs/<time>.json` ([`RunLog`]) lists, per instance, the users and resources added,
//!   changed (with the changed fields) and removed, and how many were unchanged. A run that
//!   fails part-way still writes its log, listing the instances it finished and the error.
//!
//! Instances are done one after the other; an instance fails as a whole (nothing written for
//! it) when a Connect call fails after the SDK's retries or the API answers something the
//! snapshot cannot trust (a non-UUID id, a repeated `NextToken`): the listing must be
//! complete before anyone is marked deleted.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use connect_audit_core::location::Store;
//! use connect_audit_snapshot::{Instance, NoProgress, SnapshotOptions, Snapshotter};
//!
//! let sdk = aws_config::load_from_env().await;
//! let connect = aws_sdk_connect::Client::new(&sdk);
//! let store = Store::s3(aws_sdk_s3::Client::new(&sdk), "audit-bucket", "connect-audit");
//! let options = SnapshotOptions { describe_users: true, ..SnapshotOptions::default() };
//! let instance = Instance::parse(
//!     "arn:aws:connect:ap-northeast-1:111122223333:instance/6762b34f-4e26-4a8e-a032-35a1e58e1b1c",
//! )?;
//! let summary = Snapshotter::new(connect, store, options)
//!     .run(&[instance], &NoProgress)
//!     .await?;
//! let totals = summary.user_totals();
//! println!("{}: {} users added, {} deleted", summary.run_key, totals.added, totals.deleted);
//! # Ok(())
//! # }
//! ```

mod diff;
mod error;
mod fetch;
mod history;
pub mod objects;
mod settings;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::time::Duration;

use aws_sdk_connect::config::Region;
use connect_audit_core::TargetKind;
use connect_audit_core::ids::{is_uuid, parse_connect_arn};
use connect_audit_core::location::Store;
use connect_audit_core::store::{INDEX_KEY, RUNS, folder_of, history_key, object_key, run_key};
use futures_util::{StreamExt as _, TryStreamExt as _};
use jiff::Timestamp;
use serde_json::Value;
use tracing::{debug, warn};

use crate::diff::{
    Pass, Write, instance_of, needs_describe, needs_details, reconcile, resource_candidate,
    user_candidate,
};
use crate::fetch::{
    DescribeCalls, Described, Details, Listed, RESOURCE_KINDS, dedupe, describe_resources,
    describe_users, list_resources, list_users,
};
use crate::history::{INDEX_VERSION, Index, IndexEntry, folder_of_key, version_line};

pub use crate::error::{ConnectSource, Error};
use crate::objects::SnapshotObject;
pub use crate::objects::{ChangeEntry, ChangeLog, InstanceLog, ResourceObject, RunLog, UserObject};
pub use crate::settings::SnapshotSettings;

/// How many older run logs a run reads, at most, to find when each instance was last seen.
const RUN_LOGS_READ: usize = 10;

/// How a run behaves. `SnapshotOptions::default()` gives the documented defaults; the
/// configured ones come from `[snapshot]` ([`SnapshotSettings::options`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotOptions {
    /// Call `DescribeUser` for e-mail, first and last name, security profiles, routing
    /// profile and hierarchy group. Default: `false`.
    pub describe_users: bool,
    /// `DescribeUser` calls in flight at once. Default: 4 (Connect's limits are a few
    /// requests per second; the SDK retries what is throttled).
    pub concurrency: usize,
    /// Describe every listed user on every run, not only new and changed ones.
    /// Default: `false`.
    pub redescribe_unchanged: bool,
    /// Store reads and writes in flight at once. Default: 32.
    pub store_concurrency: usize,
    /// `MaxResults` of the list calls (1–1000). Default: 1000.
    pub page_size: i32,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        Self {
            describe_users: false,
            concurrency: 4,
            redescribe_unchanged: false,
            store_concurrency: 32,
            page_size: 1000,
        }
    }
}

/// A Connect instance to snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// The bare instance id (a UUID).
    pub id: String,
    /// The region to call its API in; `None`: the region of the client given to
    /// [`Snapshotter::new`].
    pub region: Option<String>,
    /// The account it lives in, recorded in the run log; `None` when not known.
    pub account: Option<String>,
}

impl Instance {
    /// An instance from its id or its ARN; an ARN also gives the region and account.
    pub fn parse(id_or_arn: &str) -> Result<Self, Error> {
        let given = id_or_arn.trim();
        let bad = || Error::BadInstance {
            given: given.to_owned(),
        };
        let (id, region, account) = if given.starts_with("arn:") {
            // arn:partition:connect:region:account:instance/<id>, and nothing below it (an
            // agent ARN also ends in a UUID, but it names a user).
            let resource = parse_connect_arn(given).ok_or_else(bad)?;
            if resource.kind != TargetKind::Resource || resource.instance_id != Some(resource.id) {
                return Err(bad());
            }
            let mut parts = given.split(':').skip(3);
            let mut part = || parts.next().filter(|s| !s.is_empty()).map(str::to_owned);
            (resource.id, part(), part())
        } else {
            (given, None, None)
        };
        if !is_uuid(id) {
            return Err(bad());
        }
        Ok(Self {
            id: id.to_owned(),
            region,
            account,
        })
    }

    /// Sets the region (overriding one taken from an ARN).
    #[must_use]
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Sets the account (overriding one taken from an ARN).
    #[must_use]
    pub fn with_account(mut self, account: impl Into<String>) -> Self {
        self.account = Some(account.into());
        self
    }
}

impl fmt::Display for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

/// Hooks a run calls as it goes, for a progress bar. Every hook defaults to doing nothing.
///
/// Hooks are called from the task running [`Snapshotter::run`], possibly from several
/// concurrent futures of it, so they take `&self` and must be quick.
pub trait SnapshotProgress: Sync {
    /// An instance is starting.
    fn instance_started(&self, _instance: &str) {}
    /// A page of `ListUsers` brought `users` more users.
    fn users_listed(&self, _instance: &str, _users: u64) {}
    /// `users` users are about to be described.
    fn describing(&self, _instance: &str, _users: u64) {}
    /// One `DescribeUser` answered.
    fn user_described(&self) {}
    /// `objects` objects are about to be written.
    fn writing(&self, _instance: &str, _objects: u64) {}
    /// One object was written to the store.
    fn object_written(&self) {}
    /// An instance is done.
    fn instance_finished(&self, _summary: &InstanceSummary) {}
}

/// A [`SnapshotProgress`] that shows nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl SnapshotProgress for NoProgress {}

/// What happened to one kind of object in one instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Listed by the API now.
    pub listed: u64,
    /// New objects written.
    pub added: u64,
    /// Objects rewritten because something changed (a deleted one listed again included).
    pub changed: u64,
    /// Listed and unchanged: not written.
    pub unchanged: u64,
    /// Newly marked `Deleted` (and written).
    pub deleted: u64,
}

impl Counts {
    fn add(&mut self, other: &Self) {
        self.listed += other.listed;
        self.added += other.added;
        self.changed += other.changed;
        self.unchanged += other.unchanged;
        self.deleted += other.deleted;
    }
}

/// Connect calls a run made, per operation. These are the snapshot's calls: attempts the SDK
/// retried after throttling or a 5xx count once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectCalls {
    /// `ListUsers` pages.
    pub list_users: u64,
    /// `DescribeUser` calls.
    pub describe_user: u64,
    /// `ListSecurityProfiles` pages.
    pub list_security_profiles: u64,
    /// `ListRoutingProfiles` pages.
    pub list_routing_profiles: u64,
    /// `ListUserHierarchyGroups` pages.
    pub list_user_hierarchy_groups: u64,
    /// `ListUserProficiencies` pages (one or more per user described).
    pub list_user_proficiencies: u64,
    /// `DescribeSecurityProfile` calls.
    pub describe_security_profile: u64,
    /// `ListSecurityProfilePermissions` pages.
    pub list_security_profile_permissions: u64,
    /// `DescribeRoutingProfile` calls.
    pub describe_routing_profile: u64,
    /// `ListRoutingProfileQueues` pages.
    pub list_routing_profile_queues: u64,
    /// `DescribeUserHierarchyGroup` calls.
    pub describe_user_hierarchy_group: u64,
}

impl ConnectCalls {
    /// All calls.
    pub fn total(&self) -> u64 {
        self.list_users
            + self.describe_user
            + self.list_security_profiles
            + self.list_routing_profiles
            + self.list_user_hierarchy_groups
            + self.list_user_proficiencies
            + self.describe_security_profile
            + self.list_security_profile_permissions
            + self.describe_routing_profile
            + self.list_routing_profile_queues
            + self.describe_user_hierarchy_group
    }

    fn add(&mut self, c: &Self) {
        self.list_users += c.list_users;
        self.describe_user += c.describe_user;
        self.list_security_profiles += c.list_security_profiles;
        self.list_routing_profiles += c.list_routing_profiles;
        self.list_user_hierarchy_groups += c.list_user_hierarchy_groups;
        self.list_user_proficiencies += c.list_user_proficiencies;
        self.describe_security_profile += c.describe_security_profile;
        self.list_security_profile_permissions += c.list_security_profile_permissions;
        self.describe_routing_profile += c.describe_routing_profile;
        self.list_routing_profile_queues += c.list_routing_profile_queues;
        self.describe_user_hierarchy_group += c.describe_user_hierarchy_group;
    }
}

/// What a run did in one instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceSummary {
    /// The bare instance id.
    pub instance_id: String,
    /// The region its API was called in (`None`: the client's).
    pub region: Option<String>,
    /// Users.
    pub users: Counts,
    /// Security profiles.
    pub security_profiles: Counts,
    /// Routing profiles.
    pub routing_profiles: Counts,
    /// Hierarchy groups.
    pub hierarchy_groups: Counts,
    /// Users described with `DescribeUser`.
    pub users_described: u64,
    /// Security profiles, routing profiles and hierarchy groups described.
    pub resources_described: u64,
    /// Connect calls made.
    pub connect_calls: ConnectCalls,
    /// Objects written (users, profiles, groups).
    pub object_puts: u64,
}

/// What a run did. Returned by [`Snapshotter::run`]; also written, with the ids and names of
/// what changed, as the run's [`RunLog`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSummary {
    /// When the run started (whole seconds, UTC).
    pub run_at: Timestamp,
    /// The key of its change log, e.g. `runs/20240501T000000Z.json`.
    pub run_key: String,
    /// Per instance, in the order given.
    pub instances: Vec<InstanceSummary>,
    /// Objects already in the store when the run started (all four folders).
    pub existing_objects: u64,
    /// Objects written (users, profiles, groups) — zero for an unchanged re-run.
    pub object_puts: u64,
    /// History files written (one per instance with a new version) — zero for an unchanged
    /// re-run.
    pub history_puts: u64,
    /// Index writes (zero or one) — zero for an unchanged re-run.
    pub index_puts: u64,
    /// Run logs written (one).
    pub run_log_puts: u64,
    /// Store objects read (the index, objects it does not vouch for, and older run logs).
    pub store_gets: u64,
    /// Store listings made.
    pub store_lists: u64,
    /// The change log, as written to [`run_key`](Self::run_key).
    pub log: RunLog,
}

impl RunSummary {
    /// User counts of every instance together.
    pub fn user_totals(&self) -> Counts {
        let mut total = Counts::default();
        for i in &self.instances {
            total.add(&i.users);
        }
        total
    }

    /// Connect calls of every instance together.
    pub fn connect_calls(&self) -> ConnectCalls {
        let mut total = ConnectCalls::default();
        for i in &self.instances {
            total.add(&i.connect_calls);
        }
        total
    }
}

/// Takes snapshots of Connect instances into a [`Store`].
#[derive(Debug, Clone)]
pub struct Snapshotter {
    connect: aws_sdk_connect::Client,
    store: Store,
    options: SnapshotOptions,
}

/// What the store held when the run started.
#[derive(Debug, Default)]
struct Existing {
    users: HashMap<String, UserObject>,
    security_profiles: HashMap<String, ResourceObject>,
    routing_profiles: HashMap<String, ResourceObject>,
    hierarchy_groups: HashMap<String, ResourceObject>,
    /// Per instance: `RunAt` of the latest run log that lists it.
    last_run: HashMap<String, Timestamp>,
    /// The index as read, with only the entries whose tag the listing confirmed: the
    /// objects that have a version in the history.
    index: Index,
    /// Each object key's tag, as listed.
    tags: HashMap<String, String>,
    /// Keys the index held with another tag: rewritten since by someone else.
    stale: HashSet<String>,
}

impl Snapshotter {
    /// A snapshotter calling Connect with `connect` (its region is the default for
    /// instances that name none) and writing to `store`.
    ///
    /// Retries are the client's: configure them on the SDK config, e.g.
    /// `RetryConfig::standard().with_max_attempts(8)`.
    pub fn new(connect: aws_sdk_connect::Client, store: Store, options: SnapshotOptions) -> Self {
        Self {
            connect,
            store,
            options,
        }
    }

    /// The store written to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Snapshots `instances`, now. If a run log already exists for this second (another run
    /// just finished), waits for the next second.
    pub async fn run(
        &self,
        instances: &[Instance],
        progress: &dyn SnapshotProgress,
    ) -> Result<RunSummary, Error> {
        let mut attempts = 0;
        loop {
            match Box::pin(self.run_inner(Timestamp::now(), instances, progress, true)).await {
                Err(Error::RunExists { .. }) if attempts < 3 => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                other => return other,
            }
        }
    }

    /// Snapshots `instances` as a run at time `at` (cut to whole seconds): the time recorded
    /// in `FirstSeen`, `LastSeen`, `DeletedAt` and the run log's key. For tests and replays;
    /// [`run`](Self::run) uses the current time. [`Error::RunExists`] when a run log for that
    /// second exists.
    pub async fn run_at(
        &self,
        at: Timestamp,
        instances: &[Instance],
        progress: &dyn SnapshotProgress,
    ) -> Result<RunSummary, Error> {
        Box::pin(self.run_inner(at, instances, progress, false)).await
    }

    /// [`run_at`](Self::run_at); with `live`, the versions of each instance are observed when
    /// its reads finished (the clock then), not at `at`: a `DescribeUser` a minute into the
    /// run sees the changes of that minute, so its version must not claim the run's start.
    async fn run_inner(
        &self,
        at: Timestamp,
        instances: &[Instance],
        progress: &dyn SnapshotProgress,
        live: bool,
    ) -> Result<RunSummary, Error> {
        let mut unique = HashSet::new();
        for instance in instances {
            if !is_uuid(&instance.id) {
                return Err(Error::BadInstance {
                    given: instance.id.clone(),
                });
            }
        }
        // The same instance twice would be diffed twice against the same stored state.
        let instances: Vec<&Instance> = instances
            .iter()
            .filter(|i| unique.insert(i.id.as_str()))
            .collect();
        let at = Timestamp::from_second(at.as_second()).unwrap_or(at);
        let key = run_key(at);
        let mut summary = RunSummary {
            run_at: at,
            run_key: key.clone(),
            instances: Vec::new(),
            existing_objects: 0,
            object_puts: 0,
            history_puts: 0,
            index_puts: 0,
            run_log_puts: 0,
            store_gets: 0,
            store_lists: 0,
            log: RunLog {
                run_at: at.to_string(),
                describe_users: self.options.describe_users,
                ..RunLog::default()
            },
        };

        let existing = self.load_existing(&key, &instances, &mut summary).await?;
        let mut failure = None;
        let mut index = existing.index.clone();
        for instance in instances {
            progress.instance_started(&instance.id);
            match Box::pin(self.snapshot_instance(instance, at, live, &existing, progress)).await {
                Ok(done) => {
                    summary.object_puts += done.summary.object_puts;
                    summary.history_puts += done.history_puts;
                    index.objects.extend(done.index);
                    progress.instance_finished(&done.summary);
                    summary.instances.push(done.summary);
                    summary.log.instances.push(done.log);
                }
                Err(failed) => {
                    summary.object_puts += failed.puts;
                    summary.history_puts += failed.history_puts;
                    index.objects.extend(failed.index);
                    failure = Some(failed.error);
                    break;
                }
            }
        }
        if index != existing.index {
            // A cache: when it cannot be written, the next run reads the objects instead.
            match self.store.put(INDEX_KEY, index.body()).await {
                Ok(()) => summary.index_puts = 1,
                Err(e) => warn!(
                    object = %self.store.describe(INDEX_KEY),
                    error = %e,
                    "Could not write the snapshot index; the next run reads every object instead."
                ),
            }
        }

        summary.log.object_puts = summary.object_puts;
        summary.log.error = failure.as_ref().map(ToString::to_string);
        let mut body = serde_json::to_vec_pretty(&summary.log).expect("a run log serialises");
        body.push(b'\n');
        let written = self.store.put(&key, body).await;
        if written.is_ok() {
            summary.run_log_puts = 1;
        }
        match (failure, written) {
            (Some(e), Err(log_error)) => {
                warn!(key, error = %log_error, "Could not write the run log of a failed run.");
                Err(e)
            }
            (Some(e), Ok(())) => Err(e),
            (None, Err(source)) => Err(Error::RunLog { key, source }),
            (None, Ok(())) => Ok(summary),
        }
    }

    /// Lists and reads every object of the four folders, and the latest run logs.
    /// Lists the run logs (refusing to overwrite one), reads every object of the four
    /// folders, and reads the latest run logs back until each of `instances` is found.
    async fn load_existing(
        &self,
        key: &str,
        instances: &[&Instance],
        summary: &mut RunSummary,
    ) -> Result<Existing, Error> {
        let runs = self.store.list(&format!("{RUNS}/")).await?;
        summary.store_lists += 1;
        if runs.iter().any(|o| o.key == key) {
            return Err(Error::RunExists {
                key: key.to_owned(),
            });
        }

        let index = self.read_index(summary).await;
        let mut existing = Existing::default();
        existing.users = self
            .load_folder(TargetKind::User, &index, &mut existing, summary)
            .await?;
        existing.security_profiles = self
            .load_folder(TargetKind::SecurityProfile, &index, &mut existing, summary)
            .await?;
        existing.routing_profiles = self
            .load_folder(TargetKind::RoutingProfile, &index, &mut existing, summary)
            .await?;
        existing.hierarchy_groups = self
            .load_folder(TargetKind::HierarchyGroup, &index, &mut existing, summary)
            .await?;
        existing.index.version = INDEX_VERSION;
        summary.existing_objects = [
            existing.users.len(),
            existing.security_profiles.len(),
            existing.routing_profiles.len(),
            existing.hierarchy_groups.len(),
        ]
        .iter()
        .map(|n| *n as u64)
        .sum();

        let logs = runs.iter().rev().filter(|o| {
            Path::new(&o.key)
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        });
        for run in logs.take(RUN_LOGS_READ) {
            if instances
                .iter()
                .all(|i| existing.last_run.contains_key(&i.id))
            {
                break;
            }
            let Some(bytes) = self.store.get(&run.key).await? else {
                continue;
            };
            summary.store_gets += 1;
            let Some((run_at, ids)) = read_run_log(&bytes) else {
                warn!(object = %self.store.describe(&run.key), "Skipping a run log that cannot be read.");
                continue;
            };
            for id in ids {
                existing.last_run.entry(id).or_insert(run_at);
            }
        }
        Ok(existing)
    }

    /// The index, or an empty one when there is none or it cannot be used.
    async fn read_index(&self, summary: &mut RunSummary) -> Index {
        let bytes = match self.store.get(INDEX_KEY).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Index::default(),
            Err(e) => {
                warn!(object = %self.store.describe(INDEX_KEY), error = %e, "Could not read the snapshot index; reading every object instead.");
                return Index::default();
            }
        };
        summary.store_gets += 1;
        Index::read(&bytes).unwrap_or_else(|reason| {
            warn!(object = %self.store.describe(INDEX_KEY), reason, "Ignoring the snapshot index; reading every object instead.");
            Index::default()
        })
    }

    /// Every object of `kind`'s folder: from the index when it holds the object with the tag
    /// the listing shows, else read. Records each key's tag, and the index entries confirmed,
    /// in `existing`.
    async fn load_folder<T: SnapshotObject>(
        &self,
        kind: TargetKind,
        index: &Index,
        existing: &mut Existing,
        summary: &mut RunSummary,
    ) -> Result<HashMap<String, T>, Error> {
        let folder = folder_of(kind).expect("every snapshot kind has a folder");
        let listed = self.store.list(&format!("{folder}/")).await?;
        summary.store_lists += 1;
        let mut keys: Vec<(String, String)> = Vec::new();
        let mut indexed: Vec<(String, T)> = Vec::new();
        for o in listed {
            let Some(stem) = o
                .key
                .strip_prefix(folder)
                .and_then(|k| k.strip_prefix('/'))
                .and_then(|k| k.strip_suffix(".json"))
                .filter(|stem| !stem.contains('/'))
            else {
                continue;
            };
            let stem = stem.to_owned();
            if let Some(tag) = &o.tag {
                existing.tags.insert(o.key.clone(), tag.clone());
                let entry = index.objects.get(&o.key).filter(|e| &e.tag == tag);
                let object = entry.and_then(|e| serde_json::from_value::<T>(e.object.clone()).ok());
                if let (Some(entry), Some(object)) = (entry, object)
                    && object.id() == stem
                {
                    existing.index.objects.insert(o.key.clone(), entry.clone());
                    indexed.push((stem, object));
                    continue;
                }
            }
            if index.objects.contains_key(&o.key) {
                existing.stale.insert(o.key.clone());
            }
            keys.push((stem, o.key));
        }
        let store = &self.store;
        let objects: Vec<(String, T)> = futures_util::stream::iter(keys)
            .map(|(stem, key)| async move {
                let bad = |reason: String| Error::BadObject {
                    object: store.describe(&key),
                    reason,
                };
                let bytes = store
                    .get(&key)
                    .await?
                    .ok_or_else(|| bad("listed, then gone when read".into()))?;
                let object: T = serde_json::from_slice(&bytes)
                    .map_err(|e| bad(format!("not a snapshot object: {e}")))?;
                if object.id() != stem {
                    return Err(bad(format!(
                        "its `Id` {:?} is not its file name",
                        object.id()
                    )));
                }
                if !is_uuid(&stem) {
                    return Err(bad(format!("`Id` {stem:?} is not a Connect id (UUID)")));
                }
                Ok((stem, object))
            })
            .buffer_unordered(self.options.store_concurrency.max(1))
            .try_collect()
            .await?;
        summary.store_gets += objects.len() as u64;
        Ok(objects.into_iter().chain(indexed).collect())
    }

    fn client_for(&self, instance: &Instance) -> aws_sdk_connect::Client {
        let config = self.connect.config();
        match &instance.region {
            Some(region) if config.region().map(Region::as_ref) != Some(region.as_str()) => {
                aws_sdk_connect::Client::from_conf(
                    config
                        .to_builder()
                        .region(Region::new(region.clone()))
                        .build(),
                )
            }
            _ => self.connect.clone(),
        }
    }

    /// One instance: list, describe, diff, then write its history file and its objects. On
    /// error, also says what was written before it (nothing, unless writing itself failed).
    async fn snapshot_instance(
        &self,
        instance: &Instance,
        at: Timestamp,
        live: bool,
        existing: &Existing,
        progress: &dyn SnapshotProgress,
    ) -> Result<InstanceDone, InstanceFailed> {
        let run = InstanceRun {
            client: self.client_for(instance),
            id: instance.id.as_str(),
            at,
            existing,
            progress,
        };
        let (mut summary, mut log) = run.records(instance);

        // Everything is read and checked before anything is written.
        let listings = self
            .list_instance(&run, &mut summary.connect_calls)
            .await
            .map_err(InstanceFailed::before_writing)?;
        log.users_listed = listings.users.len() as u64;
        let described = self
            .describe_instance(&run, &listings, &mut summary)
            .await
            .map_err(InstanceFailed::before_writing)?;
        // Every read is done: what it saw is the state as of now at the latest.
        let observed = if live { Timestamp::now().max(at) } else { at };
        let writes = run.diff(listings, &described, &mut summary, &mut log);
        // The versions first: an object is never newer than the history.
        let (lines, mut index) = run.versions(&writes, &described, observed, &self.store);
        let mut history_puts = 0;
        if !lines.is_empty() {
            let key =
                history_key(at, run.id).map_err(|e| InstanceFailed::before_writing(e.into()))?;
            self.store
                .put(&key, lines)
                .await
                .map_err(|e| InstanceFailed::before_writing(e.into()))?;
            history_puts = 1;
        }
        let written = self.write_instance(&run, writes, &mut summary).await;
        index.extend(written.0);
        if let Some(error) = written.1 {
            return Err(InstanceFailed {
                error,
                puts: summary.object_puts,
                history_puts,
                index,
            });
        }
        debug!(
            instance = run.id,
            users = summary.users.listed,
            added = summary.users.added,
            changed = summary.users.changed,
            deleted = summary.users.deleted,
            puts = summary.object_puts,
            "Snapshotted instance."
        );
        Ok(InstanceDone {
            summary,
            log,
            history_puts,
            index,
        })
    }

    /// Lists the users and the three kinds of resources of the instance, all at once, and
    /// counts the pages in `calls`. The users come deduplicated, the resources as listed.
    async fn list_instance(
        &self,
        run: &InstanceRun<'_>,
        calls: &mut ConnectCalls,
    ) -> Result<Listings, Error> {
        let (client, id) = (&run.client, run.id);
        let page_size = self.options.page_size.clamp(1, 1000);
        let (users, profiles, routing, groups) = futures_util::try_join!(
            Box::pin(list_users(client, id, page_size, run.progress)),
            Box::pin(list_resources(client, id, page_size, 0)),
            Box::pin(list_resources(client, id, page_size, 1)),
            Box::pin(list_resources(client, id, page_size, 2)),
        )?;
        calls.list_users = users.1;
        calls.list_security_profiles = profiles.1;
        calls.list_routing_profiles = routing.1;
        calls.list_user_hierarchy_groups = groups.1;
        Ok(Listings {
            users: dedupe(users.0),
            resources: [profiles.0, routing.0, groups.0],
        })
    }

    /// With [`SnapshotOptions::describe_users`], describes the listed users and resources
    /// that need it (new, changed, never described, or all with
    /// [`SnapshotOptions::redescribe_unchanged`]): `DescribeUser` and `ListUserProficiencies`
    /// per user; `DescribeSecurityProfile` and `ListSecurityProfilePermissions`,
    /// `DescribeRoutingProfile` and `ListRoutingProfileQueues`, `DescribeUserHierarchyGroup`
    /// per resource. Counts the calls and what was described in `summary`.
    async fn describe_instance(
        &self,
        run: &InstanceRun<'_>,
        listings: &Listings,
        summary: &mut InstanceSummary,
    ) -> Result<DescribedAll, Error> {
        let calls = DescribeCalls::default();
        let users = self
            .describe_listed_users(run, &listings.users, summary, &calls)
            .await?;
        let mut resources: [HashMap<String, Details>; 3] = Default::default();
        if self.options.describe_users {
            for (i, (kind, _)) in RESOURCE_KINDS.iter().enumerate() {
                let existing = run.existing.resources(*kind);
                let listed = &listings.resources[i];
                let wanted: Vec<&str> = listed
                    .iter()
                    .filter(|r| {
                        self.options.redescribe_unchanged
                            || existing
                                .get(&r.id)
                                .is_none_or(|e| needs_details(*kind, e, r))
                    })
                    .map(|r| r.id.as_str())
                    .collect::<HashSet<_>>()
                    .into_iter()
                    .collect();
                resources[i] = Box::pin(describe_resources(
                    &run.client,
                    run.id,
                    *kind,
                    &wanted,
                    self.options.concurrency,
                    &calls,
                ))
                .await?;
                summary.resources_described += resources[i].len() as u64;
            }
        }
        let read = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        let c = &mut summary.connect_calls;
        c.list_user_proficiencies = read(&calls.list_user_proficiencies);
        c.describe_security_profile = read(&calls.describe_security_profile);
        c.list_security_profile_permissions = read(&calls.list_security_profile_permissions);
        c.describe_routing_profile = read(&calls.describe_routing_profile);
        c.list_routing_profile_queues = read(&calls.list_routing_profile_queues);
        c.describe_user_hierarchy_group = read(&calls.describe_user_hierarchy_group);
        Ok(DescribedAll { users, resources })
    }

    async fn describe_listed_users(
        &self,
        run: &InstanceRun<'_>,
        users: &[Listed],
        summary: &mut InstanceSummary,
        calls: &DescribeCalls,
    ) -> Result<HashMap<String, Described>, Error> {
        let to_describe: Vec<&str> = if self.options.describe_users {
            users
                .iter()
                .filter(|u| {
                    self.options.redescribe_unchanged
                        || run
                            .existing
                            .users
                            .get(&u.id)
                            .is_none_or(|e| needs_describe(e, u))
                })
                .map(|u| u.id.as_str())
                .collect()
        } else {
            Vec::new()
        };
        run.progress.describing(run.id, to_describe.len() as u64);
        let described = Box::pin(describe_users(
            &run.client,
            run.id,
            &to_describe,
            self.options.concurrency,
            run.progress,
            calls,
        ))
        .await?;
        summary.connect_calls.describe_user = to_describe.len() as u64;
        summary.users_described = described.len() as u64;
        Ok(described)
    }

    /// Writes the objects the diff queued, a few at a time, and counts them in `summary`.
    /// Returns the index entries of what was written and the first error, if any (the
    /// writes in flight finish first).
    async fn write_instance(
        &self,
        run: &InstanceRun<'_>,
        writes: Vec<Write>,
        summary: &mut InstanceSummary,
    ) -> (Vec<(String, IndexEntry)>, Option<Error>) {
        run.progress.writing(run.id, writes.len() as u64);
        let store = &self.store;
        let mut results = futures_util::stream::iter(writes)
            .map(|w| async move {
                let object: Option<Value> = serde_json::from_slice(&w.body).ok();
                let r = store.put_tagged(&w.key, w.body).await;
                if r.is_ok() {
                    run.progress.object_written();
                }
                r.map(|tag| (w.key, tag, object))
            })
            .buffer_unordered(self.options.store_concurrency.max(1));
        let mut entries = Vec::new();
        let mut first_error = None;
        while let Some(r) = results.next().await {
            match r {
                Ok((key, tag, object)) => {
                    summary.object_puts += 1;
                    if let (Some(tag), Some(object)) = (tag, object) {
                        entries.push((key, IndexEntry { tag, object }));
                    }
                }
                Err(e) => {
                    first_error.get_or_insert(Error::Store(e));
                }
            }
        }
        (entries, first_error)
    }
}

/// What every step of one instance's snapshot works with.
struct InstanceRun<'a> {
    /// The client calling the instance's region.
    client: aws_sdk_connect::Client,
    /// The bare instance id.
    id: &'a str,
    /// The time of the run.
    at: Timestamp,
    /// What the store held when the run started.
    existing: &'a Existing,
    /// The progress hooks.
    progress: &'a dyn SnapshotProgress,
}

/// What one instance's snapshot did, when it finished.
struct InstanceDone {
    summary: InstanceSummary,
    log: InstanceLog,
    /// History files written (0 or 1).
    history_puts: u64,
    /// Index entries of the objects now versioned: those written, and those given their first
    /// version.
    index: Vec<(String, IndexEntry)>,
}

/// Why one instance's snapshot stopped, and what it wrote before.
struct InstanceFailed {
    error: Error,
    /// Objects written.
    puts: u64,
    /// History files written.
    history_puts: u64,
    /// As [`InstanceDone::index`], for what was written.
    index: Vec<(String, IndexEntry)>,
}

impl InstanceFailed {
    fn before_writing(error: Error) -> Self {
        Self {
            error,
            puts: 0,
            history_puts: 0,
            index: Vec::new(),
        }
    }
}

/// What the describe calls of one instance returned.
struct DescribedAll {
    users: HashMap<String, Described>,
    /// Per kind, in the order of [`RESOURCE_KINDS`].
    resources: [HashMap<String, Details>; 3],
}

/// What the list calls of one instance returned, checked.
struct Listings {
    /// The users, each once.
    users: Vec<Listed>,
    /// The security profiles, routing profiles and hierarchy groups, in the order of
    /// [`RESOURCE_KINDS`], as listed.
    resources: [Vec<Listed>; 3],
}

impl InstanceRun<'_> {
    /// The instance's summary and change log, before anything is counted: its id, the
    /// region its API is called in, and its account.
    fn records(&self, instance: &Instance) -> (InstanceSummary, InstanceLog) {
        let summary = InstanceSummary {
            instance_id: self.id.to_owned(),
            region: instance
                .region
                .clone()
                .or_else(|| self.client.config().region().map(ToString::to_string)),
            ..InstanceSummary::default()
        };
        let log = InstanceLog {
            instance_id: self.id.to_owned(),
            region: summary.region.clone(),
            account: instance.account.clone(),
            ..InstanceLog::default()
        };
        (summary, log)
    }

    /// The history lines of this instance's run: the first version of every object of the
    /// instance that has none yet (observed when it was last written), then every object to
    /// write (observed now). Also the index entries of the objects given a first version and
    /// not rewritten now (those rewritten get theirs when written).
    fn versions(
        &self,
        writes: &[Write],
        described: &DescribedAll,
        observed: Timestamp,
        store: &Store,
    ) -> (Vec<u8>, Vec<(String, IndexEntry)>) {
        let now = observed.to_string();
        let mut lines = Vec::new();
        let mut index = Vec::new();
        let rewritten: HashSet<&str> = writes.iter().map(|w| w.key.as_str()).collect();
        let existing = self.existing;
        let mut first = |key: String, object: Value| {
            // Versioned already; or seen changed behind the index's back and rewritten now,
            // whose version below supersedes what was found (one version a time).
            if existing.index.objects.contains_key(&key)
                || (existing.stale.contains(&key) && rewritten.contains(key.as_str()))
            {
                return;
            }
            let field = |name: &str| object.get(name).and_then(Value::as_str);
            // Rewritten behind the index's back: seen so now. Never versioned (an old store):
            // as it was when the run that wrote it ran.
            let observed = if existing.stale.contains(&key) {
                Some(now.as_str())
            } else if object.get("Deleted") == Some(&Value::Bool(true)) {
                field("DeletedAt")
            } else {
                field("LastSeen")
            }
            .or_else(|| field("FirstSeen"))
            .unwrap_or(&now)
            .to_owned();
            lines.extend(version_line(folder_of_key(&key), &observed, &object));
            if let Some(tag) = existing.tags.get(&key)
                && !rewritten.contains(key.as_str())
            {
                index.push((
                    key,
                    IndexEntry {
                        tag: tag.clone(),
                        object,
                    },
                ));
            }
        };
        firsts(&existing.users, TargetKind::User, self.id, &mut first);
        for (kind, _) in RESOURCE_KINDS {
            firsts(existing.resources(kind), kind, self.id, &mut first);
        }
        for w in writes {
            match serde_json::from_slice::<Value>(&w.body) {
                Ok(mut object) => {
                    undescribed_out(&mut object, folder_of_key(&w.key), described);
                    lines.extend(version_line(folder_of_key(&w.key), &now, &object));
                }
                Err(e) => {
                    warn!(object = %store.describe(&w.key), error = %e, "Not versioning an object that does not read back.");
                }
            }
        }
        (lines, index)
    }

    /// Diffs the listings (and what `DescribeUser` added) against what the store holds:
    /// fills the counts of `summary` and the change log, and returns the objects to write,
    /// users first, then each kind of resource in the order of [`RESOURCE_KINDS`].
    fn diff(
        &self,
        listings: Listings,
        described: &DescribedAll,
        summary: &mut InstanceSummary,
        log: &mut InstanceLog,
    ) -> Vec<Write> {
        let (id, existing) = (self.id, self.existing);
        let last_run = existing.last_run.get(id).copied();
        let mut writes = Vec::new();
        let candidates = listings
            .users
            .iter()
            .map(|u| user_candidate(existing.users.get(&u.id), u, described.users.get(&u.id), id))
            .collect();
        let pass = Pass {
            kind: TargetKind::User,
            instance: id,
            at: self.at,
            last_run,
        };
        summary.users = reconcile(
            pass,
            &existing.users,
            candidates,
            &mut writes,
            &mut log.users,
        );
        for (((kind, _), listed), details) in RESOURCE_KINDS
            .iter()
            .zip(listings.resources)
            .zip(&described.resources)
        {
            let (map, counts, change_log) = match kind {
                TargetKind::SecurityProfile => (
                    &existing.security_profiles,
                    &mut summary.security_profiles,
                    &mut log.security_profiles,
                ),
                TargetKind::RoutingProfile => (
                    &existing.routing_profiles,
                    &mut summary.routing_profiles,
                    &mut log.routing_profiles,
                ),
                _ => (
                    &existing.hierarchy_groups,
                    &mut summary.hierarchy_groups,
                    &mut log.hierarchy_groups,
                ),
            };
            let candidates = dedupe(listed)
                .iter()
                .map(|r| resource_candidate(map.get(&r.id), r, details.get(&r.id), id))
                .collect();
            let pass = Pass {
                kind: *kind,
                ..pass
            };
            *counts = reconcile(pass, map, candidates, &mut writes, change_log);
        }
        writes
    }
}

/// The fields of a version that only the describe calls give, per folder.
const DESCRIBED_FIELDS: [(&str, &[&str]); 4] = [
    (
        "users",
        &[
            "Email",
            "FirstName",
            "LastName",
            "SecurityProfileIds",
            "RoutingProfileId",
            "HierarchyGroupId",
            "SecondaryEmail",
            "Mobile",
            "PhoneConfig",
            "Tags",
            "Proficiencies",
        ],
    ),
    (
        "security-profiles",
        &[
            "Tags",
            "Permissions",
            "AllowedAccessControlTags",
            "TagRestrictedResources",
            "HierarchyRestrictedResources",
            "AllowedAccessControlHierarchyGroupId",
        ],
    ),
    ("routing-profiles", &["Tags", "Queues"]),
    ("hierarchy-groups", &["Tags", "LevelId", "HierarchyPath"]),
];

/// A version of an object rewritten now but not described now (a run without
/// `describe_users`, or a listing change of a resource it did not describe) keeps no
/// describe field: the object carries them over from an earlier run, but this run did not
/// see them, so the version does not claim them as of now. A deletion keeps the last known.
fn undescribed_out(object: &mut Value, folder: &str, described: &DescribedAll) {
    let Some(id) = object.get("Id").and_then(Value::as_str).map(str::to_owned) else {
        return;
    };
    if object.get("Deleted") == Some(&Value::Bool(true)) {
        return;
    }
    let fresh = match folder {
        "users" => described.users.contains_key(&id),
        "security-profiles" => described.resources[0].contains_key(&id),
        "routing-profiles" => described.resources[1].contains_key(&id),
        _ => described.resources[2].contains_key(&id),
    };
    let Some(map) = object.as_object_mut().filter(|_| !fresh) else {
        return;
    };
    for (f, fields) in DESCRIBED_FIELDS {
        if f == folder {
            for field in fields {
                map.remove(*field);
            }
        }
    }
}

/// Calls `first` with the key and content of every object of `kind` in `instance`, in key
/// order.
fn firsts<T: SnapshotObject>(
    objects: &HashMap<String, T>,
    kind: TargetKind,
    instance: &str,
    first: &mut impl FnMut(String, Value),
) {
    let mut mine: Vec<(String, Value)> = objects
        .iter()
        .filter(|(_, o)| instance_of(*o) == Some(instance))
        .filter_map(|(id, o)| Some((object_key(kind, id).ok()?, serde_json::to_value(o).ok()?)))
        .collect();
    mine.sort_by(|a, b| a.0.cmp(&b.0));
    for (key, object) in mine {
        first(key, object);
    }
}

impl Existing {
    /// The stored resources of `kind` (security profiles, routing profiles or groups).
    fn resources(&self, kind: TargetKind) -> &HashMap<String, ResourceObject> {
        match kind {
            TargetKind::SecurityProfile => &self.security_profiles,
            TargetKind::RoutingProfile => &self.routing_profiles,
            _ => &self.hierarchy_groups,
        }
    }
}

/// `RunAt` and the instance ids of a run log, if it reads as one.
fn read_run_log(bytes: &[u8]) -> Option<(Timestamp, Vec<String>)> {
    let value: Value = serde_json::from_slice(bytes).ok()?;
    let run_at = value.get("RunAt")?.as_str()?.parse().ok()?;
    let instances = value
        .get("Instances")?
        .as_array()?
        .iter()
        .filter_map(|i| i.get("InstanceId")?.as_str().map(str::to_owned))
        .collect();
    Some((run_at, instances))
}

#[cfg(test)]
mod tests {
    use super::*;

    const I: &str = "6762b34f-4e26-4a8e-a032-35a1e58e1b1c";

    #[test]
    fn instances_are_ids_or_arns() {
        let bare = Instance::parse(I).unwrap();
        assert_eq!(
            (bare.id.as_str(), bare.region, bare.account),
            (I, None, None)
        );
        let arn = Instance::parse(&format!(
            " arn:aws:connect:ap-northeast-1:111122223333:instance/{I} "
        ))
        .unwrap();
        assert_eq!(arn.id, I);
        assert_eq!(arn.region.as_deref(), Some("ap-northeast-1"));
        assert_eq!(arn.account.as_deref(), Some("111122223333"));
        let arn = arn.with_region("us-west-2").with_account("444455556666");
        assert_eq!(arn.region.as_deref(), Some("us-west-2"));
        let agent = format!("arn:aws:connect:us-east-1:1:instance/{I}/agent/{I}");
        for bad in [
            "",
            "my-instance",
            "../../etc/passwd",
            "arn:aws:iam::1:role/x",
            &agent,
            "arn:aws:connect:r:1:instance/x",
        ] {
            let err = Instance::parse(bad).unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn run_logs_are_read_leniently() {
        let log = RunLog {
            run_at: "2024-05-01T00:00:00Z".into(),
            instances: vec![InstanceLog {
                instance_id: I.into(),
                ..InstanceLog::default()
            }],
            ..RunLog::default()
        };
        let bytes = serde_json::to_vec(&log).unwrap();
        let (at, instances) = read_run_log(&bytes).unwrap();
        assert_eq!(at.to_string(), "2024-05-01T00:00:00Z");
        assert_eq!(instances, [I]);
        assert!(read_run_log(b"{}").is_none());
        assert!(read_run_log(b"not json").is_none());
    }
}
