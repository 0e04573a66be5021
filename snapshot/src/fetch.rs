//! The Connect calls of a snapshot: the four list calls, paged to the end with every id
//! checked, and `DescribeUser`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use aws_sdk_connect::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_connect::operation::describe_user::DescribeUserError;
use connect_audit_core::TargetKind;
use connect_audit_core::ids::is_uuid;
use futures_util::{StreamExt as _, TryStreamExt as _};
use jiff::Timestamp;
use serde_json::Value;
use tracing::warn;

use crate::objects::{PathLevel, Proficiency, QueueConfig};
use crate::{Error, SnapshotProgress};

pub(crate) const RESOURCE_KINDS: [(TargetKind, &str); 3] = [
    (TargetKind::SecurityProfile, "ListSecurityProfiles"),
    (TargetKind::RoutingProfile, "ListRoutingProfiles"),
    (TargetKind::HierarchyGroup, "ListUserHierarchyGroups"),
];

/// One item of a list call, validated.
#[derive(Debug, Clone)]
pub(crate) struct Listed {
    pub(crate) id: String,
    pub(crate) arn: String,
    pub(crate) name: String,
    pub(crate) last_modified_time: Option<Value>,
    pub(crate) last_modified_region: Option<String>,
}

/// What `DescribeUser` adds.
#[derive(Debug, Clone, Default)]
pub(crate) struct Described {
    pub(crate) email: Option<String>,
    pub(crate) first_name: Option<String>,
    pub(crate) last_name: Option<String>,
    pub(crate) security_profile_ids: Vec<String>,
    pub(crate) routing_profile_id: Option<String>,
    pub(crate) hierarchy_group_id: Option<String>,
    pub(crate) secondary_email: Option<String>,
    pub(crate) mobile: Option<String>,
    pub(crate) phone_config: Option<Value>,
    pub(crate) tags: BTreeMap<String, String>,
    pub(crate) proficiencies: Vec<Proficiency>,
}

/// What the `Describe…` calls of a security profile, routing profile or hierarchy group add.
#[derive(Debug, Clone, Default)]
pub(crate) struct Details {
    pub(crate) tags: BTreeMap<String, String>,
    pub(crate) permissions: Option<Vec<String>>,
    pub(crate) allowed_access_control_tags: Option<BTreeMap<String, String>>,
    pub(crate) tag_restricted_resources: Option<Vec<String>>,
    pub(crate) hierarchy_restricted_resources: Option<Vec<String>>,
    pub(crate) allowed_access_control_hierarchy_group_id: Option<String>,
    pub(crate) queues: Option<Vec<QueueConfig>>,
    pub(crate) level_id: Option<String>,
    pub(crate) hierarchy_path: Option<Vec<PathLevel>>,
}

/// Connect calls made while describing, per operation.
#[derive(Debug, Default)]
pub(crate) struct DescribeCalls {
    pub(crate) list_user_proficiencies: std::sync::atomic::AtomicU64,
    pub(crate) describe_security_profile: std::sync::atomic::AtomicU64,
    pub(crate) list_security_profile_permissions: std::sync::atomic::AtomicU64,
    pub(crate) describe_routing_profile: std::sync::atomic::AtomicU64,
    pub(crate) list_routing_profile_queues: std::sync::atomic::AtomicU64,
    pub(crate) describe_user_hierarchy_group: std::sync::atomic::AtomicU64,
}

fn count(counter: &std::sync::atomic::AtomicU64) {
    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

fn tag_map(tags: Option<&HashMap<String, String>>) -> BTreeMap<String, String> {
    tags.map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

fn connect_error<E, R>(
    instance: &str,
    operation: &'static str,
    user: Option<&str>,
    e: SdkError<E, R>,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: fmt::Debug + Send + Sync + 'static,
{
    let detail = match e.as_service_error() {
        Some(service) => format!(
            "{}: {}",
            service.code().unwrap_or("unknown error"),
            service.message().unwrap_or("(no message)")
        ),
        None => DisplayErrorContext(&e).to_string(),
    };
    Error::Connect {
        instance: instance.to_owned(),
        operation,
        user: user.map(str::to_owned),
        detail,
        source: Box::new(e),
    }
}

fn timestamp_value(t: Option<&aws_smithy_types::DateTime>) -> Option<Value> {
    let t = t?;
    let nanos = i32::try_from(t.subsec_nanos()).unwrap_or(0);
    let ts = Timestamp::new(t.secs(), nanos).ok()?;
    Some(Value::String(ts.to_string()))
}

/// One summary of a list call, as the SDK gives it (the four summary types share these).
struct RawItem<'a> {
    id: Option<&'a str>,
    arn: Option<&'a str>,
    name: Option<&'a str>,
    last_modified_time: Option<&'a aws_smithy_types::DateTime>,
    last_modified_region: Option<&'a str>,
}

macro_rules! raw {
    ($summary:expr, $name:ident) => {
        RawItem {
            id: $summary.id(),
            arn: $summary.arn(),
            name: $summary.$name(),
            last_modified_time: $summary.last_modified_time(),
            last_modified_region: $summary.last_modified_region(),
        }
    };
}

/// Checks one summary of a list call and makes it a [`Listed`].
fn listed(
    instance: &str,
    operation: &'static str,
    kind: TargetKind,
    raw: RawItem<'_>,
) -> Result<Listed, Error> {
    let RawItem {
        id,
        arn,
        name,
        last_modified_time,
        last_modified_region,
    } = raw;
    let bad = |problem: String| Error::BadAnswer {
        instance: instance.to_owned(),
        operation,
        problem,
    };
    let id = id.ok_or_else(|| bad("an item without `Id`".into()))?;
    if !is_uuid(id) {
        return Err(Error::BadId {
            instance: instance.to_owned(),
            operation,
            kind: kind.as_str(),
            id: id.to_owned(),
        });
    }
    let name = name.ok_or_else(|| bad(format!("{} {id} without a name", kind.as_str())))?;
    Ok(Listed {
        id: id.to_owned(),
        arn: arn.unwrap_or_default().to_owned(),
        name: name.to_owned(),
        last_modified_time: timestamp_value(last_modified_time),
        last_modified_region: last_modified_region.map(str::to_owned),
    })
}

/// Remembers every `NextToken` of a listing, so a service that repeats one fails the
/// instance instead of looping or (as the SDK's paginators do) stopping early, which would
/// mark the users of the missing pages deleted.
fn next_token(
    instance: &str,
    operation: &'static str,
    seen: &mut HashSet<String>,
    token: Option<&str>,
) -> Result<Option<String>, Error> {
    match token.filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) if seen.insert(t.to_owned()) => Ok(Some(t.to_owned())),
        Some(t) => Err(Error::BadAnswer {
            instance: instance.to_owned(),
            operation,
            problem: format!("the NextToken {t:?} a second time"),
        }),
    }
}

/// Every user of `ListUsers`, and the number of pages.
pub(crate) async fn list_users(
    client: &aws_sdk_connect::Client,
    instance: &str,
    page_size: i32,
    progress: &dyn SnapshotProgress,
) -> Result<(Vec<Listed>, u64), Error> {
    const OP: &str = "ListUsers";
    let (mut items, mut pages, mut token, mut seen) = (Vec::new(), 0, None, HashSet::new());
    loop {
        let out = client
            .list_users()
            .instance_id(instance)
            .max_results(page_size)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| connect_error(instance, OP, None, e))?;
        pages += 1;
        for u in out.user_summary_list() {
            items.push(listed(instance, OP, TargetKind::User, raw!(u, username))?);
        }
        progress.users_listed(instance, out.user_summary_list().len() as u64);
        token = next_token(instance, OP, &mut seen, out.next_token())?;
        if token.is_none() {
            return Ok((items, pages));
        }
    }
}

/// Every item of one of the three resource list calls (`which` indexes
/// [`RESOURCE_KINDS`]), and the number of pages.
pub(crate) async fn list_resources(
    client: &aws_sdk_connect::Client,
    instance: &str,
    page_size: i32,
    which: usize,
) -> Result<(Vec<Listed>, u64), Error> {
    let (kind, op) = RESOURCE_KINDS[which];
    let (mut items, mut pages, mut token, mut seen) = (Vec::new(), 0, None, HashSet::new());
    loop {
        let next = match kind {
            TargetKind::SecurityProfile => {
                let out = client
                    .list_security_profiles()
                    .instance_id(instance)
                    .max_results(page_size)
                    .set_next_token(token)
                    .send()
                    .await
                    .map_err(|e| connect_error(instance, op, None, e))?;
                for r in out.security_profile_summary_list() {
                    items.push(listed(instance, op, kind, raw!(r, name))?);
                }
                out.next_token
            }
            TargetKind::RoutingProfile => {
                let out = client
                    .list_routing_profiles()
                    .instance_id(instance)
                    .max_results(page_size)
                    .set_next_token(token)
                    .send()
                    .await
                    .map_err(|e| connect_error(instance, op, None, e))?;
                for r in out.routing_profile_summary_list() {
                    items.push(listed(instance, op, kind, raw!(r, name))?);
                }
                out.next_token
            }
            _ => {
                let out = client
                    .list_user_hierarchy_groups()
                    .instance_id(instance)
                    .max_results(page_size)
                    .set_next_token(token)
                    .send()
                    .await
                    .map_err(|e| connect_error(instance, op, None, e))?;
                for r in out.user_hierarchy_group_summary_list() {
                    items.push(listed(instance, op, kind, raw!(r, name))?);
                }
                out.next_token
            }
        };
        pages += 1;
        token = next_token(instance, op, &mut seen, next.as_deref())?;
        if token.is_none() {
            return Ok((items, pages));
        }
    }
}

/// One entry per id, the last listed winning (a listing changed while paged may repeat one).
pub(crate) fn dedupe(items: Vec<Listed>) -> Vec<Listed> {
    let mut index: HashMap<String, usize> = HashMap::with_capacity(items.len());
    let mut out: Vec<Listed> = Vec::with_capacity(items.len());
    for item in items {
        if let Some(&i) = index.get(&item.id) {
            out[i] = item;
        } else {
            index.insert(item.id.clone(), out.len());
            out.push(item);
        }
    }
    out
}

/// `DescribeUser` of `users`, `concurrency` at a time; a user not found (deleted since it
/// was listed) is left out.
pub(crate) async fn describe_users(
    client: &aws_sdk_connect::Client,
    instance: &str,
    users: &[&str],
    concurrency: usize,
    progress: &dyn SnapshotProgress,
    calls: &DescribeCalls,
) -> Result<HashMap<String, Described>, Error> {
    let found: Vec<Option<(String, Described)>> = futures_util::stream::iter(users)
        .map(|user| async move {
            let sent = client
                .describe_user()
                .instance_id(instance)
                .user_id(*user)
                .send()
                .await;
            progress.user_described();
            let out = match sent {
                Ok(out) => out,
                Err(e)
                    if e.as_service_error()
                        .is_some_and(DescribeUserError::is_resource_not_found_exception) =>
                {
                    // Deleted between ListUsers and now: the next run marks it.
                    warn!(
                        instance,
                        user, "User listed, then not found by DescribeUser."
                    );
                    return Ok(None);
                }
                Err(e) => {
                    let subject = format!("user {user}");
                    return Err(connect_error(instance, "DescribeUser", Some(&subject), e));
                }
            };
            let u = out.user().ok_or_else(|| Error::BadAnswer {
                instance: instance.to_owned(),
                operation: "DescribeUser",
                problem: format!("no `User` for user {user}"),
            })?;
            if u.id() != Some(*user) {
                return Err(Error::BadAnswer {
                    instance: instance.to_owned(),
                    operation: "DescribeUser",
                    problem: format!("user {:?} when asked for user {user}", u.id()),
                });
            }
            let info = u.identity_info();
            let text = |v: Option<&str>| v.filter(|s| !s.is_empty()).map(str::to_owned);
            let mut security_profile_ids = u.security_profile_ids().to_vec();
            security_profile_ids.sort();
            let described = Described {
                email: info.and_then(|i| i.email()).map(str::to_owned),
                first_name: info.and_then(|i| i.first_name()).map(str::to_owned),
                last_name: info.and_then(|i| i.last_name()).map(str::to_owned),
                security_profile_ids,
                routing_profile_id: u.routing_profile_id().map(str::to_owned),
                hierarchy_group_id: text(u.hierarchy_group_id()),
                secondary_email: text(info.and_then(|i| i.secondary_email())),
                mobile: text(info.and_then(|i| i.mobile())),
                phone_config: u.phone_config().map(|p| {
                    serde_json::json!({
                        "PhoneType": p.phone_type().as_str(),
                        "AutoAccept": p.auto_accept(),
                        "AfterContactWorkTimeLimit": p.after_contact_work_time_limit(),
                        "DeskPhoneNumber": p.desk_phone_number().unwrap_or_default(),
                    })
                }),
                tags: tag_map(u.tags()),
                proficiencies: list_user_proficiencies(client, instance, user, calls).await?,
            };
            Ok(Some(((*user).to_owned(), described)))
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    Ok(found.into_iter().flatten().collect())
}

/// The page size of the per-object list calls (proficiencies, permissions, queues).
const DETAIL_PAGE: i32 = 100;

/// A user's routing proficiencies, every page, sorted by attribute name and value.
async fn list_user_proficiencies(
    client: &aws_sdk_connect::Client,
    instance: &str,
    user: &str,
    calls: &DescribeCalls,
) -> Result<Vec<Proficiency>, Error> {
    const OP: &str = "ListUserProficiencies";
    let (mut out, mut token, mut seen) = (Vec::new(), None, HashSet::new());
    loop {
        count(&calls.list_user_proficiencies);
        let page = client
            .list_user_proficiencies()
            .instance_id(instance)
            .user_id(user)
            .max_results(DETAIL_PAGE)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| connect_error(instance, OP, Some(&format!("user {user}")), e))?;
        out.extend(page.user_proficiency_list().iter().map(|p| Proficiency {
            attribute_name: p.attribute_name().to_owned(),
            attribute_value: p.attribute_value().to_owned(),
            level: f64::from(p.level()),
        }));
        token = next_token(instance, OP, &mut seen, page.next_token())?;
        if token.is_none() {
            out.sort_by(|a, b| {
                (&a.attribute_name, &a.attribute_value)
                    .cmp(&(&b.attribute_name, &b.attribute_value))
            });
            return Ok(out);
        }
    }
}

/// The `Describe…` details of `ids` of `kind`, `concurrency` at a time; one gone since it was
/// listed is left out.
pub(crate) async fn describe_resources(
    client: &aws_sdk_connect::Client,
    instance: &str,
    kind: TargetKind,
    ids: &[&str],
    concurrency: usize,
    calls: &DescribeCalls,
) -> Result<HashMap<String, Details>, Error> {
    let found: Vec<Option<(String, Details)>> = futures_util::stream::iter(ids)
        .map(|id| async move {
            let details = match kind {
                TargetKind::SecurityProfile => security_profile(client, instance, id, calls).await,
                TargetKind::RoutingProfile => routing_profile(client, instance, id, calls).await,
                _ => hierarchy_group(client, instance, id, calls).await,
            }?;
            Ok::<_, Error>(details.map(|d| ((*id).to_owned(), d)))
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    Ok(found.into_iter().flatten().collect())
}

/// Whether an error is Connect's "not found": the object went away after it was listed.
fn not_found<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.as_service_error()
        .is_some_and(|s| s.code() == Some("ResourceNotFoundException"))
}

macro_rules! gone_or_fail {
    ($result:expr, $instance:expr, $op:expr, $kind:expr, $id:expr) => {
        match $result {
            Ok(out) => out,
            Err(e) if not_found(&e) => {
                warn!(
                    instance = $instance,
                    id = $id,
                    operation = $op,
                    kind = $kind,
                    "Listed, then not found."
                );
                return Ok(None);
            }
            Err(e) => {
                return Err(connect_error(
                    $instance,
                    $op,
                    Some(&format!("{} {}", $kind, $id)),
                    e,
                ));
            }
        }
    };
}

async fn security_profile(
    client: &aws_sdk_connect::Client,
    instance: &str,
    id: &str,
    calls: &DescribeCalls,
) -> Result<Option<Details>, Error> {
    const OP: &str = "DescribeSecurityProfile";
    const PERMISSIONS: &str = "ListSecurityProfilePermissions";
    const KIND: &str = "security profile";
    count(&calls.describe_security_profile);
    let sent = client
        .describe_security_profile()
        .instance_id(instance)
        .security_profile_id(id)
        .send()
        .await;
    let out = gone_or_fail!(sent, instance, OP, KIND, id);
    let profile = out.security_profile().ok_or_else(|| Error::BadAnswer {
        instance: instance.to_owned(),
        operation: OP,
        problem: format!("no `SecurityProfile` for {id}"),
    })?;
    let sorted = |items: &[String]| {
        let mut items = items.to_vec();
        items.sort();
        items
    };
    let mut details = Details {
        tags: tag_map(profile.tags()),
        allowed_access_control_tags: profile
            .allowed_access_control_tags()
            .map(|t| tag_map(Some(t))),
        tag_restricted_resources: Some(sorted(profile.tag_restricted_resources())),
        hierarchy_restricted_resources: Some(sorted(profile.hierarchy_restricted_resources())),
        allowed_access_control_hierarchy_group_id: profile
            .allowed_access_control_hierarchy_group_id()
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        ..Details::default()
    };
    let (mut permissions, mut token, mut seen) = (Vec::new(), None, HashSet::new());
    loop {
        count(&calls.list_security_profile_permissions);
        let sent = client
            .list_security_profile_permissions()
            .instance_id(instance)
            .security_profile_id(id)
            .max_results(DETAIL_PAGE)
            .set_next_token(token)
            .send()
            .await;
        let page = gone_or_fail!(sent, instance, PERMISSIONS, KIND, id);
        permissions.extend(page.permissions().iter().cloned());
        token = next_token(instance, PERMISSIONS, &mut seen, page.next_token())?;
        if token.is_none() {
            break;
        }
    }
    permissions.sort();
    permissions.dedup();
    details.permissions = Some(permissions);
    Ok(Some(details))
}

async fn routing_profile(
    client: &aws_sdk_connect::Client,
    instance: &str,
    id: &str,
    calls: &DescribeCalls,
) -> Result<Option<Details>, Error> {
    const OP: &str = "DescribeRoutingProfile";
    const QUEUES: &str = "ListRoutingProfileQueues";
    const KIND: &str = "routing profile";
    count(&calls.describe_routing_profile);
    let sent = client
        .describe_routing_profile()
        .instance_id(instance)
        .routing_profile_id(id)
        .send()
        .await;
    let out = gone_or_fail!(sent, instance, OP, KIND, id);
    let mut details = Details {
        tags: tag_map(out.routing_profile().and_then(|p| p.tags())),
        ..Details::default()
    };
    let (mut queues, mut token, mut seen) = (Vec::new(), None, HashSet::new());
    loop {
        count(&calls.list_routing_profile_queues);
        let sent = client
            .list_routing_profile_queues()
            .instance_id(instance)
            .routing_profile_id(id)
            .max_results(DETAIL_PAGE)
            .set_next_token(token)
            .send()
            .await;
        let page = gone_or_fail!(sent, instance, QUEUES, KIND, id);
        queues.extend(
            page.routing_profile_queue_config_summary_list()
                .iter()
                .map(|q| QueueConfig {
                    queue_id: q.queue_id().to_owned(),
                    channel: q.channel().as_str().to_owned(),
                    priority: q.priority(),
                    delay: q.delay(),
                }),
        );
        token = next_token(instance, QUEUES, &mut seen, page.next_token())?;
        if token.is_none() {
            break;
        }
    }
    queues.sort_by(|a, b| (&a.queue_id, &a.channel).cmp(&(&b.queue_id, &b.channel)));
    details.queues = Some(queues);
    Ok(Some(details))
}

async fn hierarchy_group(
    client: &aws_sdk_connect::Client,
    instance: &str,
    id: &str,
    calls: &DescribeCalls,
) -> Result<Option<Details>, Error> {
    const OP: &str = "DescribeUserHierarchyGroup";
    const KIND: &str = "hierarchy group";
    count(&calls.describe_user_hierarchy_group);
    let sent = client
        .describe_user_hierarchy_group()
        .instance_id(instance)
        .hierarchy_group_id(id)
        .send()
        .await;
    let out = gone_or_fail!(sent, instance, OP, KIND, id);
    let group = out.hierarchy_group().ok_or_else(|| Error::BadAnswer {
        instance: instance.to_owned(),
        operation: OP,
        problem: format!("no `HierarchyGroup` for {id}"),
    })?;
    let path = group.hierarchy_path().map(|p| {
        [
            p.level_one(),
            p.level_two(),
            p.level_three(),
            p.level_four(),
            p.level_five(),
        ]
        .into_iter()
        .flatten()
        .filter_map(|level| {
            Some(PathLevel {
                id: level.id()?.to_owned(),
                name: level.name().unwrap_or_default().to_owned(),
            })
        })
        .collect::<Vec<_>>()
    });
    Ok(Some(Details {
        tags: tag_map(group.tags()),
        level_id: group.level_id().map(str::to_owned),
        hierarchy_path: Some(path.unwrap_or_default()),
        ..Details::default()
    }))
}
