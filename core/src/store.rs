//! The snapshot store's layout and the loader that turns it into a [`Directory`].
//!
//! ```text
//! <root>/users/<user-id>.json                 {"Arn","Id","Username",…,"Deleted"}
//! <root>/security-profiles/<id>.json          {"Arn","Id","Name",…}
//! <root>/routing-profiles/<id>.json           {"Arn","Id","Name",…}
//! <root>/hierarchy-groups/<id>.json           {"Arn","Id","Name",…}
//! ```
//! One JSON object per file, on one line, so the classic Athena table over `users/` (openx
//! JsonSerDe, `Arn, Id, Username`) still reads it. Objects are never deleted.

use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::directory::Directory;
use crate::error::Error;
use crate::ids::is_uuid;
use crate::location::Location;
use crate::record::TargetKind;

/// The folders of the store, what they hold, and which field carries the name.
pub const FOLDERS: [(&str, TargetKind, &str); 4] = [
    ("users", TargetKind::User, "Username"),
    ("security-profiles", TargetKind::SecurityProfile, "Name"),
    ("routing-profiles", TargetKind::RoutingProfile, "Name"),
    ("hierarchy-groups", TargetKind::HierarchyGroup, "Name"),
];

/// Loads every object of the store into a Directory.
///
/// A folder that does not exist is empty. An object that is not a JSON object with a string
/// `Id` of UUID shape and a string name is an error naming its file: a snapshot is evidence,
/// and a silently skipped user would leave rows unnamed without saying why.
pub fn load_directory(root: &Location) -> Result<Directory, Error> {
    let root = root.local_path()?;
    let mut directory = Directory::new();
    for (folder, kind, name_field) in FOLDERS {
        let dir = root.join(folder);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(&dir, e)),
        };
        let mut paths = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| Error::io(&dir, e))?.path();
            if path.extension().is_some_and(|e| e == "json") {
                paths.push(path);
            }
        }
        paths.sort();
        for path in paths {
            let (id, name) = read_object(&path, name_field)?;
            directory.insert_snapshot(kind, &id, &name);
        }
    }
    Ok(directory)
}

fn read_object(path: &Path, name_field: &str) -> Result<(String, String), Error> {
    let bad = |reason: String| Error::BadSnapshotObject {
        path: path.to_owned(),
        reason,
    };
    let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
    let value: Value =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| bad("not a JSON object".into()))?;
    let id = obj
        .get("Id")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no string `Id`".into()))?;
    if !is_uuid(id) {
        return Err(bad(format!("`Id` {id:?} is not a Connect id (UUID)")));
    }
    let name = obj
        .get(name_field)
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("no string `{name_field}`")))?;
    Ok((id.to_owned(), name.to_owned()))
}

#[cfg(test)]
mod tests {
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
        let d = load_directory(&Location::Local(dir.path().into())).unwrap();
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
            let err = load_directory(&Location::Local(dir.path().into())).unwrap_err();
            assert!(err.to_string().contains("users/x.json"), "{err}");
        }
    }
}
