//! Every version of every user, profile and group the snapshot runs observed, read back for
//! the change stage (issue H): the state of a target as of a time, names as of a time, and
//! the last time at which every version is known ([`History::last_observation_at_or_before`]).
//!
//! Versions come from `history/<run>-<instance>.jsonl` ([`HISTORY`]). A store written before
//! versions were kept has no history: its objects are read as one version each, observed when
//! the run that wrote them ran (`LastSeen`), a deleted one also as gone at `DeletedAt`.
//!
//! A version's `state` is the object in the canonical form of [`crate::change`] (one key per
//! attribute a call sets), holding only what the object knows: a user never described has
//! no `security_profiles`, so a change to them finds no `before` in it.

use std::collections::HashMap;

use futures_util::{StreamExt as _, TryStreamExt as _};
use jiff::Timestamp;
use serde_json::{Map, Value, json};

use crate::change::State;
use crate::directory::Directory;
use crate::error::Error;
use crate::ids::is_uuid;
use crate::location::Store;
use crate::record::TargetKind;
use crate::store::{FOLDERS, HISTORY};

/// History files read at once.
const READ_CONCURRENCY: usize = 16;

/// One observed version of a user, profile or group.
#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    /// When a snapshot run observed it.
    pub observed_at: Timestamp,
    /// Its username or name.
    pub name: String,
    /// Whether it was gone.
    pub deleted: bool,
    /// Its attributes, in [`crate::change`]'s canonical form.
    pub state: State,
    /// For a hierarchy group: the ids of its path, top level first, itself last.
    pub path: Option<Vec<String>>,
    /// The bare id of the instance it belongs to (lower case), when the object says.
    pub instance: Option<String>,
}

/// The versions of a snapshot store.
#[derive(Debug, Clone, Default)]
pub struct History {
    versions: HashMap<(TargetKind, String), Vec<Version>>,
    /// Per instance (`""` when a version names none), every observation time, sorted, each
    /// once (after [`History::seal`]).
    observations: HashMap<String, Vec<Timestamp>>,
    /// History files read (0 for a store without history).
    pub files: u64,
    /// Bytes of those files.
    pub bytes: u64,
}

impl History {
    /// No versions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a version observed at `observed_at` of the object `object` of `kind` (as its
    /// folder holds it). An object without a string `Id` is ignored.
    pub fn add(&mut self, kind: TargetKind, observed_at: Timestamp, object: &Value) {
        let Some(id) = object.get("Id").and_then(Value::as_str) else {
            return;
        };
        let name_field = FOLDERS
            .iter()
            .find(|(_, k, _)| *k == kind)
            .map_or("Name", |(_, _, f)| *f);
        let instance = text(object, "InstanceId")
            .map(str::to_owned)
            .or_else(|| {
                let arn = crate::ids::parse_connect_arn(text(object, "Arn")?)?;
                arn.instance_id.map(str::to_owned)
            })
            .unwrap_or_default()
            .to_ascii_lowercase();
        let version = Version {
            observed_at,
            name: text(object, name_field).unwrap_or_default().to_owned(),
            deleted: object.get("Deleted") == Some(&Value::Bool(true)),
            state: state_of(kind, object),
            path: object
                .get("HierarchyPath")
                .and_then(Value::as_array)
                .map(|levels| {
                    levels
                        .iter()
                        .filter_map(|l| text(l, "Id").map(str::to_ascii_lowercase))
                        .collect()
                }),
            instance: (!instance.is_empty()).then(|| instance.clone()),
        };
        self.observations
            .entry(instance)
            .or_default()
            .push(observed_at);
        let list = self
            .versions
            .entry((kind, id.to_ascii_lowercase()))
            .or_default();
        list.push(version);
    }

    /// Sorts every object's versions by time and drops repeats (the same content observed
    /// again, e.g. an index rebuilt). Call once after the last [`add`](Self::add).
    pub fn seal(&mut self) {
        for list in self.versions.values_mut() {
            list.sort_by_key(|v| v.observed_at);
            list.dedup_by(|later, earlier| {
                later.name == earlier.name
                    && later.deleted == earlier.deleted
                    && later.state == earlier.state
                    && later.path == earlier.path
            });
        }
        for times in self.observations.values_mut() {
            times.sort();
            times.dedup();
        }
    }

    /// Whether there is no version at all.
    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }

    /// How many objects have versions.
    pub fn objects(&self) -> usize {
        self.versions.len()
    }

    /// How many versions there are.
    pub fn len(&self) -> usize {
        self.versions.values().map(Vec::len).sum()
    }

    /// Every object of `kind` with a version, by id (lower case), in no order.
    pub fn ids(&self, kind: TargetKind) -> impl Iterator<Item = &str> {
        self.versions
            .keys()
            .filter(move |(k, _)| *k == kind)
            .map(|(_, id)| id.as_str())
    }

    /// The newest version of `kind`/`id` observed at or before `at`.
    pub fn at(&self, kind: TargetKind, id: &str, at: Timestamp) -> Option<&Version> {
        let list = self.versions.get(&(kind, id.to_ascii_lowercase()))?;
        let n = list.partition_point(|v| v.observed_at <= at);
        n.checked_sub(1).map(|i| &list[i])
    }

    /// The oldest version of `kind`/`id` observed after `at`.
    pub fn after(&self, kind: TargetKind, id: &str, at: Timestamp) -> Option<&Version> {
        let list = self.versions.get(&(kind, id.to_ascii_lowercase()))?;
        list.get(list.partition_point(|v| v.observed_at <= at))
    }

    /// The name of `kind`/`id` as of `at`: that of the newest version observed by then, else
    /// (the object first seen later) that of the first version.
    pub fn name_at(&self, kind: TargetKind, id: &str, at: Timestamp) -> Option<&str> {
        self.at(kind, id, at)
            .or_else(|| self.after(kind, id, at))
            .map(|v| v.name.as_str())
            .filter(|n| !n.is_empty())
    }

    /// The time from which a replay of the trail up to `at` is exact: per instance, the latest
    /// time at or before `at` a snapshot run wrote a version of it (the state of its every
    /// user, profile and group as of then is known: a run writes a version of whatever
    /// changed), and of those the earliest, so that no instance misses the events since its
    /// own last observation (a run that failed part-way, or instances snapshotted on other
    /// schedules). Runs that changed nothing wrote no version; starting earlier only replays
    /// more. `None` when nothing was observed by `at`.
    pub fn last_observation_at_or_before(&self, at: Timestamp) -> Option<Timestamp> {
        self.observations
            .values()
            .filter_map(|times| {
                let n = times.partition_point(|r| *r <= at);
                n.checked_sub(1).map(|i| times[i])
            })
            .min()
    }

    /// Every object's newest version observed at or before `at` (the deleted ones left out):
    /// the directory as that snapshot saw it.
    pub fn states_at(&self, at: Timestamp) -> impl Iterator<Item = (TargetKind, &str, &Version)> {
        self.versions.iter().filter_map(move |((kind, id), list)| {
            let n = list.partition_point(|v| v.observed_at <= at);
            let v = &list[n.checked_sub(1)?];
            (!v.deleted).then_some((*kind, id.as_str(), v))
        })
    }
}

fn has_extension(key: &str, extension: &str) -> bool {
    std::path::Path::new(key)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case(extension))
}

fn text<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

/// A snapshot object (`users/<id>.json` and its kin, PascalCase as Connect names fields) in
/// [`crate::change`]'s canonical form: only the attributes the object holds.
pub fn state_of(kind: TargetKind, object: &Value) -> State {
    let mut state = Map::new();
    let id = |key: &str| {
        text(object, key)
            .filter(|s| !s.is_empty())
            .map_or(Value::Null, |s| json!(s.to_ascii_lowercase()))
    };
    let tags = |state: &mut State| {
        if let Some(tags) = object.get("Tags").and_then(Value::as_object) {
            state.insert("tags".into(), Value::Object(tags.clone()));
        }
    };
    match kind {
        TargetKind::User => {
            // Described: DescribeUser's fields are there (the security profiles, possibly none).
            if let Some(profiles) = object.get("SecurityProfileIds").and_then(Value::as_array) {
                let mut ids: Vec<String> = profiles
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_ascii_lowercase)
                    .collect();
                ids.sort();
                ids.dedup();
                state.insert("security_profiles".into(), json!(ids));
                state.insert("routing_profile".into(), id("RoutingProfileId"));
                state.insert("hierarchy_group".into(), id("HierarchyGroupId"));
                let field = |key: &str| text(object, key).map_or(Value::Null, |s| json!(s));
                // Described by an earlier version of the tool, which kept neither the
                // secondary e-mail nor the mobile: their absence says nothing, so the identity
                // is not known (rather than known to have none).
                let whole = object.get("Proficiencies").is_some();
                if whole {
                    state.insert(
                        "identity".into(),
                        json!({
                            "first_name": field("FirstName"),
                            "last_name": field("LastName"),
                            "email": field("Email"),
                            "secondary_email": field("SecondaryEmail"),
                            "mobile": field("Mobile"),
                        }),
                    );
                }
            }
            if let Some(phone) = object.get("PhoneConfig") {
                state.insert(
                    "phone_config".into(),
                    crate::change::canonical_object(phone),
                );
            }
            if let Some(list) = object.get("Proficiencies").and_then(Value::as_array) {
                let entries: Map<String, Value> = list
                    .iter()
                    .filter_map(|p| {
                        let name = text(p, "AttributeName")?;
                        let value = text(p, "AttributeValue")?;
                        let level = p.get("Level").and_then(Value::as_f64)?;
                        Some((format!("{name}={value}"), json!(level)))
                    })
                    .collect();
                state.insert("proficiencies".into(), Value::Object(entries));
            }
            tags(&mut state);
        }
        TargetKind::SecurityProfile => {
            if let Some(name) = text(object, "Name") {
                state.insert("name".into(), json!(name));
            }
            if let Some(list) = object.get("Permissions").and_then(Value::as_array) {
                let mut permissions: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
                permissions.sort_unstable();
                permissions.dedup();
                state.insert("permissions".into(), json!(permissions));
            }
            tags(&mut state);
        }
        TargetKind::RoutingProfile => {
            if let Some(name) = text(object, "Name") {
                state.insert("name".into(), json!(name));
            }
            if let Some(list) = object.get("Queues").and_then(Value::as_array) {
                let queues: Map<String, Value> = list
                    .iter()
                    .filter_map(|q| {
                        let queue = text(q, "QueueId")?.to_ascii_lowercase();
                        let channel = text(q, "Channel")?;
                        Some((
                            format!("{queue}/{channel}"),
                            json!({
                                "priority": q.get("Priority").cloned().unwrap_or(Value::Null),
                                "delay": q.get("Delay").cloned().unwrap_or(Value::Null),
                            }),
                        ))
                    })
                    .collect();
                state.insert("queues".into(), Value::Object(queues));
            }
            tags(&mut state);
        }
        TargetKind::HierarchyGroup => {
            if let Some(name) = text(object, "Name") {
                state.insert("name".into(), json!(name));
            }
            if let Some(levels) = object.get("HierarchyPath").and_then(Value::as_array) {
                let parent = levels
                    .len()
                    .checked_sub(2)
                    .and_then(|i| text(&levels[i], "Id"))
                    .map_or(Value::Null, |s| json!(s.to_ascii_lowercase()));
                state.insert("parent_group".into(), parent);
            }
            tags(&mut state);
        }
        _ => {}
    }
    state
}

/// Reads every version in `store`: the history files, or, for a store without history, its
/// objects as one version each. A file or line that cannot be read is an error naming it (and
/// the line): a history is evidence.
pub async fn load_history(store: &Store) -> Result<History, Error> {
    load_snapshot(store).await.map(|(_, history)| history)
}

/// The snapshot store's names ([`Directory`], as [`crate::store::load_directory`] reads
/// them) and its versions ([`load_history`]), each object read once: a store without history
/// gives both from the same reads.
pub async fn load_snapshot(store: &Store) -> Result<(Directory, History), Error> {
    let mut history = History::new();
    let files: Vec<_> = store
        .list(&format!("{HISTORY}/"))
        .await?
        .into_iter()
        .filter(|o| has_extension(&o.key, "jsonl"))
        .collect();
    let directory = load_objects(store, files.is_empty().then_some(&mut history)).await?;
    let keys = files.into_iter().map(|o| o.key).collect();
    read_each(store, keys, |key, bytes| {
        history.files += 1;
        history.bytes += bytes.len() as u64;
        for (n, line) in bytes.split(|b| *b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            read_line(&mut history, line)
                .map_err(|e| bad(store, key, format!("line {}: {e}", n + 1)))?;
        }
        Ok(())
    })
    .await?;
    history.seal();
    Ok((directory, history))
}

/// One line of a history file into `history`.
fn read_line(history: &mut History, line: &[u8]) -> Result<(), String> {
    let value: Value = serde_json::from_slice(line).map_err(|e| format!("not JSON: {e}"))?;
    let folder = text(&value, "Folder").ok_or("no string `Folder`")?;
    let kind = FOLDERS
        .iter()
        .find(|(f, _, _)| *f == folder)
        .map(|(_, k, _)| *k)
        .ok_or_else(|| format!("unknown `Folder` {folder:?}"))?;
    let observed: Timestamp = text(&value, "ObservedAt")
        .ok_or("no string `ObservedAt`")?
        .parse()
        .map_err(|e| format!("`ObservedAt`: {e}"))?;
    let object = value.get("Object").ok_or("no `Object`")?;
    let id = text(object, "Id").ok_or("an `Object` without a string `Id`")?;
    if !is_uuid(id) {
        return Err(format!("`Id` {id:?} is not a Connect id (UUID)"));
    }
    history.add(kind, observed, object);
    Ok(())
}

/// One row of the history as the Athena table `connect_history` gives it (`folder`,
/// `observedat`, `object` as JSON text) into `history`; what is wrong with it otherwise.
pub fn add_row(
    history: &mut History,
    folder: &str,
    observed_at: &str,
    object: &str,
) -> Result<(), String> {
    let line = json!({
        "Folder": folder,
        "ObservedAt": observed_at,
        "Object": serde_json::from_str::<Value>(object).map_err(|e| format!("`Object` is not JSON: {e}"))?,
    });
    read_line(history, line.to_string().as_bytes())
}

/// The error of an object of the store that cannot be read as part of the history.
fn bad(store: &Store, key: &str, reason: String) -> Error {
    Error::BadSnapshotObject {
        object: store.describe(key),
        reason,
    }
}

/// Reads `keys`, a few at a time, handing each object to `each` in key order; an object listed
/// and then gone is an error naming it.
async fn read_each(
    store: &Store,
    keys: Vec<String>,
    mut each: impl FnMut(&str, Vec<u8>) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut reads = futures_util::stream::iter(keys)
        .map(|key| async move {
            let bytes = store.get(&key).await?;
            Ok::<_, Error>((key, bytes))
        })
        .buffered(READ_CONCURRENCY);
    while let Some((key, bytes)) = reads.try_next().await? {
        let bytes = bytes.ok_or_else(|| bad(store, &key, "listed, then gone when read".into()))?;
        each(&key, bytes)?;
    }
    Ok(())
}

/// Every object of the four folders, checked as [`crate::store::load_directory`] checks
/// them, into a [`Directory`]; with `history` (a store without history files), each also one
/// version, observed at `LastSeen` (else `FirstSeen`), a deleted one also gone at
/// `DeletedAt`. Objects with neither time are versions of no known time and are left out.
async fn load_objects(
    store: &Store,
    mut history: Option<&mut History>,
) -> Result<Directory, Error> {
    let mut directory = Directory::new();
    for (folder, kind, name_field) in FOLDERS {
        let keys: Vec<String> = store
            .list(&format!("{folder}/"))
            .await?
            .into_iter()
            .map(|o| o.key)
            .filter(|k| has_extension(k, "json") && !k[folder.len() + 1..].contains('/'))
            .collect();
        read_each(store, keys, |key, bytes| {
            let (id, name) =
                crate::store::read_object(&bytes, name_field).map_err(|e| bad(store, key, e))?;
            directory.insert_snapshot(kind, &id, &name);
            let Some(history) = history.as_deref_mut() else {
                return Ok(());
            };
            let object: Value = serde_json::from_slice(&bytes)
                .map_err(|e| bad(store, key, format!("not valid JSON: {e}")))?;
            let time = |k: &str| text(&object, k).and_then(|s| s.parse::<Timestamp>().ok());
            if let Some(seen) = time("LastSeen").or_else(|| time("FirstSeen")) {
                let mut alive = object.clone();
                if let Some(map) = alive.as_object_mut() {
                    map.insert("Deleted".into(), Value::Bool(false));
                }
                history.add(kind, seen, &alive);
            }
            if let Some(gone) =
                time("DeletedAt").filter(|_| object.get("Deleted") == Some(&Value::Bool(true)))
            {
                history.add(kind, gone, &object);
            }
            Ok(())
        })
        .await?;
    }
    Ok(directory)
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "66666666-7777-8888-9999-000000000000";
    const P: &str = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_described_user_is_in_the_change_form_and_an_undescribed_one_holds_no_profiles() {
        let described = json!({
            "Id": U, "Username": "kenji", "SecurityProfileIds": [P.to_uppercase(), "b"],
            "RoutingProfileId": "r", "Email": "k@example.com", "FirstName": "Kenji",
            "PhoneConfig": {"PhoneType": "SOFT_PHONE", "AutoAccept": false, "DeskPhoneNumber": ""},
            "Tags": {"team": "blue"},
            "Proficiencies": [{"AttributeName": "Language", "AttributeValue": "English", "Level": 3}],
        });
        let state = state_of(TargetKind::User, &described);
        assert_eq!(state["security_profiles"], json!([P, "b"]));
        assert_eq!(state["routing_profile"], json!("r"));
        assert_eq!(state["hierarchy_group"], Value::Null);
        assert_eq!(state["identity"]["email"], json!("k@example.com"));
        assert_eq!(state["identity"]["mobile"], Value::Null);
        assert_eq!(
            state["phone_config"],
            json!({"PhoneType": "SOFT_PHONE", "AutoAccept": false})
        );
        assert_eq!(state["proficiencies"], json!({"Language=English": 3.0}));
        assert_eq!(state["tags"], json!({"team": "blue"}));
        let listed = json!({"Id": U, "Username": "kenji"});
        assert!(state_of(TargetKind::User, &listed).is_empty());
        let described_before =
            json!({"Id": U, "SecurityProfileIds": [P], "Email": "k@example.com"});
        let state = state_of(TargetKind::User, &described_before);
        assert!(state.contains_key("security_profiles") && !state.contains_key("identity"));
        let group = json!({"Id": P, "Name": "Floor 2",
            "HierarchyPath": [{"Id": "TOP", "Name": "Tokyo"}, {"Id": P, "Name": "Floor 2"}]});
        let state = state_of(TargetKind::HierarchyGroup, &group);
        assert_eq!(state["parent_group"], json!("top"));
        assert_eq!(state["name"], json!("Floor 2"));
    }

    #[test]
    fn a_replay_starts_where_every_instance_was_last_observed() {
        let mut h = History::new();
        let in_instance =
            |instance: &str| json!({"Id": U, "Username": "u", "InstanceId": instance});
        h.add(
            TargetKind::User,
            at("2024-05-01T00:00:00Z"),
            &in_instance("a"),
        );
        h.add(
            TargetKind::User,
            at("2024-05-01T00:00:00Z"),
            &in_instance("b"),
        );
        // Instance b's part of the next run failed: only a was observed then.
        h.add(
            TargetKind::User,
            at("2024-05-02T00:00:00Z"),
            &in_instance("a"),
        );
        h.seal();
        assert_eq!(
            h.last_observation_at_or_before(at("2024-05-03T00:00:00Z")),
            Some(at("2024-05-01T00:00:00Z"))
        );
    }

    #[test]
    fn versions_answer_as_of_a_time() {
        let mut h = History::new();
        let v = |name: &str| json!({"Id": P, "Name": name, "Permissions": ["Users.Edit"]});
        h.add(
            TargetKind::SecurityProfile,
            at("2024-05-10T00:00:00Z"),
            &v("Admins"),
        );
        h.add(
            TargetKind::SecurityProfile,
            at("2024-05-01T00:00:00Z"),
            &v("Admin"),
        );
        h.add(
            TargetKind::SecurityProfile,
            at("2024-05-05T00:00:00Z"),
            &v("Admin"),
        );
        h.seal();
        assert_eq!(h.len(), 2, "a repeat of the same content is one version");
        let sp = TargetKind::SecurityProfile;
        assert_eq!(h.name_at(sp, P, at("2024-04-01T00:00:00Z")), Some("Admin"));
        assert_eq!(h.name_at(sp, P, at("2024-05-09T00:00:00Z")), Some("Admin"));
        assert_eq!(h.name_at(sp, P, at("2024-05-10T00:00:00Z")), Some("Admins"));
        assert!(h.at(sp, P, at("2024-04-01T00:00:00Z")).is_none());
        assert_eq!(
            h.after(sp, P, at("2024-05-02T00:00:00Z")).unwrap().name,
            "Admins"
        );
        assert_eq!(
            h.last_observation_at_or_before(at("2024-05-09T00:00:00Z")),
            Some(at("2024-05-05T00:00:00Z")),
            "a repeat was still an observation"
        );
        assert_eq!(
            h.last_observation_at_or_before(at("2024-04-09T00:00:00Z")),
            None
        );
        assert_eq!(h.states_at(at("2024-05-02T00:00:00Z")).count(), 1);
    }

    fn files(files: &[(&str, String)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (rel, body) in files {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        dir
    }

    fn load(dir: &tempfile::TempDir) -> Result<History, Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(load_history(&Store::local(dir.path())))
    }

    #[test]
    fn an_old_store_is_one_version_per_object_and_a_deleted_one_is_gone_at_deleted_at() {
        let dir = files(&[(
            &format!("users/{U}.json"),
            format!(
                r#"{{"Id":"{U}","Username":"temp","LastSeen":"2024-05-01T00:00:00Z","Deleted":true,"DeletedAt":"2024-05-02T00:00:00Z"}}"#
            ),
        )]);
        let h = load(&dir).unwrap();
        assert_eq!((h.files, h.len()), (0, 2));
        let user = TargetKind::User;
        assert!(!h.at(user, U, at("2024-05-01T12:00:00Z")).unwrap().deleted);
        assert!(h.at(user, U, at("2024-05-02T00:00:00Z")).unwrap().deleted);
        assert_eq!(h.states_at(at("2024-05-03T00:00:00Z")).count(), 0);
    }

    #[test]
    fn history_files_win_over_objects_and_a_bad_line_is_named() {
        let line = |name: &str, observed: &str| {
            format!(
                r#"{{"Folder":"users","ObservedAt":"{observed}","Object":{{"Id":"{U}","Username":"{name}"}}}}"#
            )
        };
        let dir = files(&[
            (
                &format!("users/{U}.json"),
                format!(r#"{{"Id":"{U}","Username":"latest","LastSeen":"2024-05-09T00:00:00Z"}}"#),
            ),
            (
                "history/20240501T000000Z/i.jsonl",
                format!(
                    "{}\n\n{}\n",
                    line("first", "2024-05-01T00:00:00Z"),
                    line("second", "2024-05-03T00:00:00Z")
                ),
            ),
        ]);
        let h = load(&dir).unwrap();
        assert_eq!((h.files, h.len()), (1, 2));
        assert_eq!(
            h.name_at(TargetKind::User, U, at("2024-05-02T00:00:00Z")),
            Some("first")
        );
        for (body, reason) in [
            ("{not json".to_owned(), "line 1: not JSON"),
            (line("x", "yesterday"), "line 1: `ObservedAt`"),
            (
                r#"{"Folder":"queues","ObservedAt":"2024-05-01T00:00:00Z","Object":{}}"#.to_owned(),
                "unknown `Folder`",
            ),
            (
                r#"{"Folder":"users","ObservedAt":"2024-05-01T00:00:00Z","Object":{"Id":"../x"}}"#
                    .to_owned(),
                "not a Connect id",
            ),
        ] {
            let dir = files(&[("history/20240501T000000Z/i.jsonl", format!("\n{body}"))]);
            let err = load(&dir).unwrap_err().to_string();
            assert!(err.contains("history/20240501T000000Z/i.jsonl"), "{err}");
            assert!(err.contains(&reason.replace("line 1", "line 2")), "{err}");
        }
    }
}
