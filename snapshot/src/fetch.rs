//! The Connect calls of a snapshot: the four list calls, paged to the end with every id
//! checked, and `DescribeUser`.

use std::collections::{HashMap, HashSet};
use std::fmt;

use aws_sdk_connect::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_connect::operation::describe_user::DescribeUserError;
use connect_audit_core::TargetKind;
use connect_audit_core::ids::is_uuid;
use futures_util::{StreamExt as _, TryStreamExt as _};
use jiff::Timestamp;
use serde_json::Value;
use tracing::warn;

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
                Err(e) => return Err(connect_error(instance, "DescribeUser", Some(user), e)),
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
            Ok(Some((
                (*user).to_owned(),
                Described {
                    email: info.and_then(|i| i.email()).map(str::to_owned),
                    first_name: info.and_then(|i| i.first_name()).map(str::to_owned),
                    last_name: info.and_then(|i| i.last_name()).map(str::to_owned),
                    security_profile_ids: u.security_profile_ids().to_vec(),
                    routing_profile_id: u.routing_profile_id().map(str::to_owned),
                    hierarchy_group_id: u.hierarchy_group_id().map(str::to_owned),
                },
            )))
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    Ok(found.into_iter().flatten().collect())
}
