//! The snapshot store's layout and the loader that turns it into a [`Directory`].
//!
//! ```text
//! <root>/users/<user-id>.json                 {"Arn","Id","Username",…,"Deleted"}
//! <root>/security-profiles/<id>.json          {"Arn","Id","Name",…}
//! <root>/routing-profiles/<id>.json           {"Arn","Id","Name",…}
//! <root>/hierarchy-groups/<id>.json           {"Arn","Id","Name",…}
//! <root>/runs/<YYYYMMDDTHHMMSSZ>.json         the change log of one snapshot run
//! ```
//! One JSON object per file, on one line, so the classic Athena table over `users/` (openx
//! JsonSerDe, `Arn, Id, Username`) still reads it. Objects are never deleted. `<root>` is a
//! [`Store`]: a local directory or `s3://bucket/prefix`, one code path. Keys are built only by
//! [`object_key`] and [`run_key`], from ids checked to be UUIDs.

use futures_util::{StreamExt as _, TryStreamExt as _};
use jiff::Timestamp;
use serde_json::Value;

use crate::directory::Directory;
use crate::error::Error;
use crate::ids::is_uuid;
use crate::location::Store;
use crate::record::TargetKind;

/// The folders of the store, what they hold, and which field carries the name.
pub const FOLDERS: [(&str, TargetKind, &str); 4] = [
    ("users", TargetKind::User, "Username"),
    ("security-profiles", TargetKind::SecurityProfile, "Name"),
    ("routing-profiles", TargetKind::RoutingProfile, "Name"),
    ("hierarchy-groups", TargetKind::HierarchyGroup, "Name"),
];

/// The folder of the change log a snapshot run writes, one object per run.
pub const RUNS: &str = "runs";

/// The folder of every version a snapshot run observed: `history/<run>-<instance>.jsonl`
/// ([`history_key`]; one flat folder, so an Athena table reads it), one JSON object per line, `{"Folder", "ObservedAt", "Object"}`, where
/// `Object` is the object as its folder held it then. Append-only; outside the four folders,
/// so the classic Athena table over `users/` does not read it.
pub const HISTORY: &str = "history";

/// The index a snapshot run keeps of the latest objects, so that an unchanged re-run reads
/// one object instead of every object: `{"Version": 1, "Objects": {"<key>": {"Tag", "Object"}}}`,
/// where `Tag` is the object's tag as a listing shows it ([`crate::location::ObjectInfo::tag`]).
/// An entry whose tag no longer matches the listing is not trusted (the object is read).
pub const INDEX_KEY: &str = "index/objects.json";

/// `history/<YYYYMMDDTHHMMSSZ>-<instance>.jsonl`: the versions the snapshot run at `at`
/// observed in `instance` (a UUID).
pub fn history_key(at: Timestamp, instance: &str) -> Result<String, Error> {
    if !is_uuid(instance) {
        return Err(Error::BadId {
            kind: "instance",
            id: instance.to_owned(),
        });
    }
    Ok(format!(
        "{HISTORY}/{}-{instance}.jsonl",
        at.strftime("%Y%m%dT%H%M%SZ")
    ))
}

/// Objects read at once while loading the store: enough to hide S3 latency, few enough to
/// stay polite.
const LOAD_CONCURRENCY: usize = 16;

/// The store folder of objects of `kind`, if the store keeps that kind.
pub fn folder_of(kind: TargetKind) -> Option<&'static str> {
    FOLDERS
        .iter()
        .find(|(_, k, _)| *k == kind)
        .map(|(folder, _, _)| *folder)
}

/// The key of the object of `kind` with Connect id `id`: `users/<id>.json`,
/// `security-profiles/<id>.json`, `routing-profiles/<id>.json`, `hierarchy-groups/<id>.json`.
///
/// `id` must have the shape of a Connect id (a UUID), so nothing an API returns can become a
/// key that escapes its folder; the kinds without a folder ([`TargetKind::Resource`],
/// [`TargetKind::None`]) are errors too.
pub fn object_key(kind: TargetKind, id: &str) -> Result<String, Error> {
    let folder = folder_of(kind).ok_or(Error::BadKey {
        key: id.to_owned(),
        reason: "the snapshot store keeps only users, security profiles, routing profiles and hierarchy groups",
    })?;
    if !is_uuid(id) {
        return Err(Error::BadId {
            kind: kind.as_str(),
            id: id.to_owned(),
        });
    }
    Ok(format!("{folder}/{id}.json"))
}

/// `users/<id>.json`, for a user id of UUID shape.
pub fn user_key(id: &str) -> Result<String, Error> {
    object_key(TargetKind::User, id)
}

/// `runs/<YYYYMMDDTHHMMSSZ>.json`: the change log of the snapshot run at `at` (UTC).
pub fn run_key(at: Timestamp) -> String {
    format!("{RUNS}/{}.json", at.strftime("%Y%m%dT%H%M%SZ"))
}

/// Loads every object of the store into a Directory.
///
/// A folder that does not exist is empty. An object that is not a JSON object with a string
/// `Id` of UUID shape and a string name is an error naming it ([`Store::describe`]): a
/// snapshot is evidence, and a silently skipped user would leave rows unnamed without saying
/// why. Objects are read a few at a time and inserted in key order.
pub async fn load_directory(store: &Store) -> Result<Directory, Error> {
    let mut directory = Directory::new();
    for (folder, kind, name_field) in FOLDERS {
        let keys: Vec<String> = store
            .list(&format!("{folder}/"))
            .await?
            .into_iter()
            .map(|o| o.key)
            .filter(|k| {
                k.strip_prefix(folder)
                    .and_then(|rest| rest.strip_prefix('/'))
                    .is_some_and(|name| {
                        !name.contains('/')
                            && std::path::Path::new(name)
                                .extension()
                                .is_some_and(|e| e == "json")
                    })
            })
            .collect();
        let mut objects = futures_util::stream::iter(keys)
            .map(|key| async move {
                let bytes = store.get(&key).await?;
                Ok::<_, Error>((key, bytes))
            })
            .buffered(LOAD_CONCURRENCY);
        while let Some((key, bytes)) = objects.try_next().await? {
            let bad = |reason: String| Error::BadSnapshotObject {
                object: store.describe(&key),
                reason,
            };
            let bytes = bytes.ok_or_else(|| bad("listed, then gone when read".into()))?;
            let (id, name) = read_object(&bytes, name_field).map_err(bad)?;
            directory.insert_snapshot(kind, &id, &name);
        }
    }
    Ok(directory)
}

/// [`load_directory`] for callers without an async runtime: runs it on a small one.
pub fn load_directory_blocking(store: &Store) -> Result<Directory, Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io(store.describe(""), e))?;
    runtime.block_on(load_directory(store))
}

/// The id and name of one snapshot object, or what is wrong with it.
pub(crate) fn read_object(bytes: &[u8], name_field: &str) -> Result<(String, String), String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}"))?;
    let obj = value.as_object().ok_or("not a JSON object")?;
    let id = obj
        .get("Id")
        .and_then(Value::as_str)
        .ok_or("no string `Id`")?;
    if !is_uuid(id) {
        return Err(format!("`Id` {id:?} is not a Connect id (UUID)"));
    }
    let name = obj
        .get(name_field)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("no string `{name_field}`"))?;
    Ok((id.to_owned(), name.to_owned()))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::record::NameSource;

    const U: &str = "66666666-7777-8888-9999-000000000000";

    fn store(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (rel, body) in files {
            let p = dir.path().join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, body).unwrap();
        }
        dir
    }

    #[test]
    fn loads_users_and_profiles() {
        let dir = store(&[
            (
                &format!("users/{U}.json"),
                &format!(r#"{{"Arn":"arn","Id":"{U}","Username":"jdoe","Deleted":false}}"#),
            ),
            (
                "security-profiles/aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee.json",
                r#"{"Id":"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee","Name":"Admin"}"#,
            ),
        ]);
        let d = load_directory_blocking(&Store::local(dir.path())).unwrap();
        let (e, s) = d.lookup(&U.to_uppercase()).unwrap();
        assert_eq!((e.name.as_str(), s), ("jdoe", NameSource::Snapshot));
        assert_eq!(d.snapshot_len(), 2);
    }

    #[test]
    fn bad_objects_are_errors_naming_the_file() {
        for body in [
            "{not json".to_owned(),
            "[1]".to_owned(),
            r#"{"Id":"../../etc/passwd","Username":"x"}"#.to_owned(),
            format!(r#"{{"Id":"{U}"}}"#),
        ] {
            let dir = store(&[("users/x.json", &body)]);
            let err = load_directory_blocking(&Store::local(dir.path())).unwrap_err();
            assert!(err.to_string().contains("users/x.json"), "{err}");
        }
    }

    #[test]
    fn object_keys_come_only_from_connect_ids() {
        assert_eq!(user_key(U).unwrap(), format!("users/{U}.json"));
        assert_eq!(
            object_key(TargetKind::HierarchyGroup, U).unwrap(),
            format!("hierarchy-groups/{U}.json")
        );
        assert_eq!(
            object_key(TargetKind::SecurityProfile, U).unwrap(),
            format!("security-profiles/{U}.json")
        );
        assert_eq!(
            object_key(TargetKind::RoutingProfile, U).unwrap(),
            format!("routing-profiles/{U}.json")
        );
        for id in [
            "../../etc/passwd",
            "",
            "x",
            &format!("{U}/x"),
            &format!("{U} "),
        ] {
            let err = user_key(id).unwrap_err();
            assert!(err.to_string().contains(&format!("{id:?}")), "{err}");
        }
        assert!(object_key(TargetKind::Resource, U).is_err());
        assert!(object_key(TargetKind::None, U).is_err());
    }

    #[test]
    fn run_keys_sort_by_time() {
        let at: Timestamp = "2024-05-01T09:08:07.654Z".parse().unwrap();
        assert_eq!(run_key(at), "runs/20240501T090807Z.json");
    }

    #[test]
    fn stray_files_in_folders_are_not_objects() {
        let dir = store(&[
            (
                &format!("users/{U}.json"),
                &format!(r#"{{"Id":"{U}","Username":"jdoe"}}"#),
            ),
            ("users/README.txt", "not an object"),
            ("users/nested/x.json", "{not json"),
        ]);
        let d = load_directory_blocking(&Store::local(dir.path())).unwrap();
        assert_eq!(d.snapshot_len(), 1);
    }
}
