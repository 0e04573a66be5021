//! Deciding what a run writes: the object each listed item should have, what changed, and
//! who is gone.

use std::collections::{HashMap, HashSet};

use connect_audit_core::TargetKind;
use connect_audit_core::ids::parse_connect_arn;
use connect_audit_core::store::object_key;
use jiff::Timestamp;
use serde_json::Value;

use crate::Counts;
use crate::fetch::{Described, Details, Listed};
use crate::objects::{ChangeEntry, ChangeLog, ResourceObject, SnapshotObject, UserObject};

/// One object to write.
pub(crate) struct Write {
    pub(crate) key: String,
    pub(crate) body: Vec<u8>,
}

/// Whether a user already in the store must be described again: never described (or by an
/// earlier version of the tool), gone and back, or its listing changed.
pub(crate) fn needs_describe(existing: &UserObject, listed: &Listed) -> bool {
    // Described by an earlier version (no proficiencies, contact details or tags kept): once
    // more, so its versions are whole.
    existing.security_profile_ids.is_none()
        || existing.proficiencies.is_none()
        || existing.deleted
        || existing.arn != listed.arn
        || existing.username != listed.name
        || existing.last_modified_time != listed.last_modified_time
}

/// The object a listed user should have, starting from what the store holds (so unknown
/// fields, `FirstSeen`/`LastSeen`, and `DescribeUser` fields not refreshed now are kept).
pub(crate) fn user_candidate(
    existing: Option<&UserObject>,
    listed: &Listed,
    described: Option<&Described>,
    instance: &str,
) -> UserObject {
    let mut user = existing.cloned().unwrap_or_default();
    user.arn.clone_from(&listed.arn);
    user.id.clone_from(&listed.id);
    user.username.clone_from(&listed.name);
    user.instance_id = Some(instance.to_owned());
    user.last_modified_time
        .clone_from(&listed.last_modified_time);
    user.last_modified_region
        .clone_from(&listed.last_modified_region);
    if let Some(d) = described {
        user.email.clone_from(&d.email);
        user.first_name.clone_from(&d.first_name);
        user.last_name.clone_from(&d.last_name);
        user.security_profile_ids = Some(d.security_profile_ids.clone());
        user.routing_profile_id.clone_from(&d.routing_profile_id);
        user.hierarchy_group_id.clone_from(&d.hierarchy_group_id);
        user.secondary_email.clone_from(&d.secondary_email);
        user.mobile.clone_from(&d.mobile);
        user.phone_config.clone_from(&d.phone_config);
        user.tags = Some(d.tags.clone());
        user.proficiencies = Some(d.proficiencies.clone());
    }
    user
}

/// Whether a resource already in the store must be described again: never described, gone
/// and back, or its listing changed.
pub(crate) fn needs_details(kind: TargetKind, existing: &ResourceObject, listed: &Listed) -> bool {
    !existing.has_details(kind)
        || existing.deleted
        || existing.arn != listed.arn
        || existing.name != listed.name
        || existing.last_modified_time != listed.last_modified_time
}

/// [`user_candidate`] for a security profile, routing profile or hierarchy group.
pub(crate) fn resource_candidate(
    existing: Option<&ResourceObject>,
    listed: &Listed,
    details: Option<&Details>,
    instance: &str,
) -> ResourceObject {
    let mut r = existing.cloned().unwrap_or_default();
    r.arn.clone_from(&listed.arn);
    r.id.clone_from(&listed.id);
    r.name.clone_from(&listed.name);
    r.instance_id = Some(instance.to_owned());
    r.last_modified_time.clone_from(&listed.last_modified_time);
    r.last_modified_region
        .clone_from(&listed.last_modified_region);
    if let Some(d) = details {
        r.tags = Some(d.tags.clone());
        r.permissions.clone_from(&d.permissions);
        r.allowed_access_control_tags
            .clone_from(&d.allowed_access_control_tags);
        r.tag_restricted_resources
            .clone_from(&d.tag_restricted_resources);
        r.hierarchy_restricted_resources
            .clone_from(&d.hierarchy_restricted_resources);
        r.allowed_access_control_hierarchy_group_id
            .clone_from(&d.allowed_access_control_hierarchy_group_id);
        r.queues.clone_from(&d.queues);
        r.level_id.clone_from(&d.level_id);
        r.hierarchy_path.clone_from(&d.hierarchy_path);
    }
    r
}

/// The instance an object belongs to: its `InstanceId`, else the instance in its `Arn`
/// (objects written by the old recipe carry only the ARN).
pub(crate) fn instance_of<T: SnapshotObject>(object: &T) -> Option<&str> {
    object
        .instance_id()
        .or_else(|| parse_connect_arn(object.arn())?.instance_id)
}

/// The top-level fields whose values differ between two objects, `LastSeen` left out.
fn changed_fields<T: SnapshotObject>(before: &T, after: &T) -> Vec<String> {
    let (Ok(Value::Object(a)), Ok(Value::Object(b))) =
        (serde_json::to_value(before), serde_json::to_value(after))
    else {
        return Vec::new();
    };
    let mut fields: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| *k != "LastSeen" && a.get(*k) != b.get(*k))
        .cloned()
        .collect();
    fields.sort();
    fields.dedup();
    fields
}

fn later(a: Option<&str>, b: Option<Timestamp>) -> Option<String> {
    let a_ts = a.and_then(|s| s.parse::<Timestamp>().ok());
    match (a_ts, b) {
        (Some(x), Some(y)) => Some(x.max(y).to_string()),
        (None, Some(y)) => Some(y.to_string()),
        (_, None) => a.map(str::to_owned),
    }
}

fn object_body<T: SnapshotObject>(object: &T) -> Vec<u8> {
    let mut body = serde_json::to_vec(object).expect("a snapshot object serialises");
    body.push(b'\n');
    body
}

/// Where a [`reconcile`] happens: one kind of object, in one instance, in one run.
#[derive(Clone, Copy)]
pub(crate) struct Pass<'a> {
    pub(crate) kind: TargetKind,
    pub(crate) instance: &'a str,
    pub(crate) at: Timestamp,
    /// When the last run that listed this instance ran.
    pub(crate) last_run: Option<Timestamp>,
}

/// Decides, for one kind of object in one instance, what is added, changed, unchanged and
/// newly deleted; queues the writes and fills the change log.
pub(crate) fn reconcile<T: SnapshotObject>(
    pass: Pass<'_>,
    existing: &HashMap<String, T>,
    candidates: Vec<T>,
    writes: &mut Vec<Write>,
    log: &mut ChangeLog,
) -> Counts {
    let Pass {
        kind,
        instance,
        at,
        last_run,
    } = pass;
    let now = at.to_string();
    let mut counts = Counts {
        listed: candidates.len() as u64,
        ..Counts::default()
    };
    let queue = |object: &T, writes: &mut Vec<Write>| {
        // Ids were checked when listed; object_key checks again, and cannot fail here.
        let key = object_key(kind, object.id()).expect("listed ids are UUIDs");
        writes.push(Write {
            key,
            body: object_body(object),
        });
    };
    let listed: HashSet<&str> = candidates.iter().map(SnapshotObject::id).collect();
    for (id, old) in existing {
        if old.is_deleted() || listed.contains(id.as_str()) || instance_of(old) != Some(instance) {
            continue;
        }
        let mut gone = old.clone();
        let (deleted, deleted_at) = gone.deletion();
        *deleted = true;
        *deleted_at = Some(now.clone());
        let (first_seen, last_seen) = gone.seen();
        *last_seen = later(last_seen.as_deref(), last_run);
        if first_seen.is_none() {
            first_seen.clone_from(last_seen);
        }
        queue(&gone, writes);
        log.removed.push(ChangeEntry {
            id: id.clone(),
            name: gone.name().to_owned(),
            fields: Vec::new(),
            previous_name: None,
        });
        counts.deleted += 1;
    }
    for mut object in candidates {
        let old = existing.get(object.id());
        {
            let (deleted, deleted_at) = object.deletion();
            *deleted = false;
            *deleted_at = None;
        }
        let Some(old) = old else {
            let (first_seen, last_seen) = object.seen();
            *first_seen = Some(now.clone());
            *last_seen = Some(now.clone());
            queue(&object, writes);
            log.added.push(ChangeEntry {
                id: object.id().to_owned(),
                name: object.name().to_owned(),
                fields: Vec::new(),
                previous_name: None,
            });
            counts.added += 1;
            continue;
        };
        if object.seen().0.is_none() {
            *object.seen().0 = Some(now.clone());
        }
        if object == *old {
            counts.unchanged += 1;
            continue;
        }
        let fields = changed_fields(old, &object);
        *object.seen().1 = Some(now.clone());
        queue(&object, writes);
        log.changed.push(ChangeEntry {
            id: object.id().to_owned(),
            name: object.name().to_owned(),
            previous_name: (old.name() != object.name()).then(|| old.name().to_owned()),
            fields,
        });
        counts.changed += 1;
    }
    log.unchanged = counts.unchanged;
    for list in [&mut log.added, &mut log.changed, &mut log.removed] {
        list.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    const I: &str = "11111111-2222-3333-4444-555555555555";
    const OTHER: &str = "99999999-2222-3333-4444-555555555555";
    const A: &str = "aaaaaaaa-0000-4000-a000-000000000001";
    const B: &str = "aaaaaaaa-0000-4000-a000-000000000002";
    const C: &str = "aaaaaaaa-0000-4000-a000-000000000003";

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn listed(id: &str, name: &str, modified: &str) -> Listed {
        Listed {
            id: id.into(),
            arn: format!("arn:aws:connect:us-east-1:1:instance/{I}/agent/{id}"),
            name: name.into(),
            last_modified_time: Some(Value::String(modified.into())),
            last_modified_region: Some("us-east-1".into()),
        }
    }

    /// One reconcile of users: the objects it would write, the counts, the change log.
    fn pass(
        existing: &HashMap<String, UserObject>,
        now: &[Listed],
        time: &str,
        last_run: Option<&str>,
    ) -> (HashMap<String, UserObject>, Counts, ChangeLog) {
        let candidates = now
            .iter()
            .map(|l| user_candidate(existing.get(&l.id), l, None, I))
            .collect();
        let mut writes = Vec::new();
        let mut log = ChangeLog::default();
        let pass = Pass {
            kind: TargetKind::User,
            instance: I,
            at: at(time),
            last_run: last_run.map(at),
        };
        let counts = reconcile(pass, existing, candidates, &mut writes, &mut log);
        let written = writes
            .into_iter()
            .map(|w| {
                assert!(w.key.starts_with("users/") && w.body.ends_with(b"}\n"));
                let u: UserObject = serde_json::from_slice(&w.body).unwrap();
                (u.id.clone(), u)
            })
            .collect();
        (written, counts, log)
    }

    #[test]
    fn only_new_changed_and_newly_gone_objects_are_written() {
        let first = [
            listed(A, "ann", "t1"),
            listed(B, "bob", "t1"),
            listed(C, "cy", "t1"),
        ];
        let (store, counts, _) = pass(&HashMap::new(), &first, "2024-05-01T00:00:00Z", None);
        assert_eq!((counts.added, counts.listed), (3, 3));
        assert_eq!(store[A].first_seen.as_deref(), Some("2024-05-01T00:00:00Z"));
        assert_eq!(store[A].last_seen, store[A].first_seen);

        // The same listing again: nothing to write, LastSeen not bumped.
        let (written, counts, log) = pass(&store, &first, "2024-05-02T00:00:00Z", None);
        assert!(written.is_empty());
        assert_eq!((counts.unchanged, log.unchanged), (3, 3));

        // Bob renamed, Cy gone.
        let second = [listed(A, "ann", "t1"), listed(B, "robert", "t2")];
        let (written, counts, log) = pass(
            &store,
            &second,
            "2024-05-03T00:00:00Z",
            Some("2024-05-02T00:00:00Z"),
        );
        assert_eq!(
            (counts.changed, counts.deleted, counts.unchanged),
            (1, 1, 1)
        );
        assert_eq!(written.len(), 2);
        let bob = &written[B];
        assert_eq!(bob.username, "robert");
        assert_eq!(bob.first_seen.as_deref(), Some("2024-05-01T00:00:00Z"));
        assert_eq!(bob.last_seen.as_deref(), Some("2024-05-03T00:00:00Z"));
        assert_eq!(log.changed[0].previous_name.as_deref(), Some("bob"));
        assert_eq!(log.changed[0].fields, ["LastModifiedTime", "Username"]);
        let cy = &written[C];
        assert!(cy.deleted);
        assert_eq!(cy.username, "cy");
        assert_eq!(cy.deleted_at.as_deref(), Some("2024-05-03T00:00:00Z"));
        assert_eq!(
            cy.last_seen.as_deref(),
            Some("2024-05-02T00:00:00Z"),
            "the last run that listed the instance"
        );
        assert_eq!(log.removed[0].name, "cy");

        // Gone stays gone without rewrites; listed again, it is restored.
        let mut store = store;
        store.extend(written);
        let (written, counts, _) = pass(&store, &second, "2024-05-04T00:00:00Z", None);
        assert!(written.is_empty(), "{written:?}");
        assert_eq!(counts.deleted, 0);
        let third = [
            listed(A, "ann", "t1"),
            listed(B, "robert", "t2"),
            listed(C, "cy", "t1"),
        ];
        let (written, counts, log) = pass(&store, &third, "2024-05-05T00:00:00Z", None);
        assert_eq!(counts.changed, 1);
        assert!(!written[C].deleted && written[C].deleted_at.is_none());
        assert_eq!(log.changed[0].fields, ["Deleted", "DeletedAt"]);
    }

    #[test]
    fn objects_of_other_instances_are_never_marked_deleted() {
        let mut theirs = user_candidate(None, &listed(A, "ann", "t1"), None, OTHER);
        theirs.arn = format!("arn:aws:connect:us-east-1:1:instance/{OTHER}/agent/{A}");
        let unknown = UserObject {
            id: B.into(),
            username: "no-instance".into(),
            ..UserObject::default()
        };
        let store = HashMap::from([(A.to_owned(), theirs), (B.to_owned(), unknown)]);
        let (written, counts, _) = pass(&store, &[], "2024-05-01T00:00:00Z", None);
        assert!(written.is_empty());
        assert_eq!(counts.deleted, 0);
    }

    #[test]
    fn describe_only_what_is_new_changed_or_never_described() {
        let l = listed(A, "ann", "t1");
        let mut user = user_candidate(None, &l, None, I);
        assert!(needs_describe(&user, &l), "never described");
        let described = Described {
            email: Some("ann@example.com".into()),
            security_profile_ids: vec![C.into()],
            ..Described::default()
        };
        user = user_candidate(Some(&user), &l, Some(&described), I);
        assert!(!needs_describe(&user, &l));
        assert!(needs_describe(&user, &listed(A, "ann", "t2")), "modified");
        assert!(needs_describe(&user, &listed(A, "ann2", "t1")), "renamed");
        // Without a new description, the old one is kept.
        let again = user_candidate(Some(&user), &listed(A, "ann2", "t2"), None, I);
        assert_eq!(again.email.as_deref(), Some("ann@example.com"));
    }

    #[test]
    fn later_takes_the_latest_time() {
        let t = |s: &str| Some(at(s));
        assert_eq!(
            later(Some("2024-05-01T00:00:00Z"), t("2024-05-02T00:00:00Z")).as_deref(),
            Some("2024-05-02T00:00:00Z")
        );
        assert_eq!(
            later(Some("2024-05-03T00:00:00Z"), t("2024-05-02T00:00:00Z")).as_deref(),
            Some("2024-05-03T00:00:00Z")
        );
        assert_eq!(later(Some("garbage"), None).as_deref(), Some("garbage"));
        assert_eq!(later(None, None), None);
    }
}
