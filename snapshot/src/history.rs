//! What a run keeps besides the latest objects: every version it observed, appended under
//! `history/` ([`HISTORY`](connect_audit_core::store::HISTORY)), and the index of the latest objects ([`INDEX_KEY`](connect_audit_core::store::INDEX_KEY)) that lets an
//! unchanged re-run skip reading every object.
//!
//! A version is written when a run writes an object (new, changed, newly deleted), observed
//! at the run's time. An object that has no version yet (a store written before versions were
//! kept, or by another tool) gets one the first time a run sees it, observed at its `LastSeen`
//! (the run that last wrote it; it has not changed since, or the listing would say so), so an
//! old store's history starts with what it already knew.
//!
//! The index is a cache, never evidence: an entry is used only while the object's tag in the
//! listing is the one the index recorded; otherwise the object is read. An index that cannot
//! be read is ignored (with a warning) and rewritten.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The index's format version.
pub(crate) const INDEX_VERSION: u32 = 1;

/// `index/objects.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Index {
    /// [`INDEX_VERSION`].
    pub(crate) version: u32,
    /// Per object key: its tag and content.
    pub(crate) objects: BTreeMap<String, IndexEntry>,
}

/// One object in the [`Index`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct IndexEntry {
    /// The object's tag when the index was written.
    pub(crate) tag: String,
    /// The object, as written.
    pub(crate) object: Value,
}

impl Index {
    /// The index in `bytes`, or why it cannot be used.
    pub(crate) fn read(bytes: &[u8]) -> Result<Self, String> {
        let index: Self = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if index.version != INDEX_VERSION {
            return Err(format!(
                "format version {} (this tool reads {INDEX_VERSION})",
                index.version
            ));
        }
        Ok(index)
    }

    /// The index as written to [`INDEX_KEY`].
    pub(crate) fn body(&self) -> Vec<u8> {
        let mut body = serde_json::to_vec(self).expect("an index serialises");
        body.push(b'\n');
        body
    }
}

/// One line of a history file: an object as its folder held it at `observed_at`.
pub(crate) fn version_line(folder: &str, observed_at: &str, object: &Value) -> Vec<u8> {
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Line<'a> {
        folder: &'a str,
        observed_at: &'a str,
        object: &'a Value,
    }
    let mut line = serde_json::to_vec(&Line {
        folder,
        observed_at,
        object,
    })
    .expect("a version serialises");
    line.push(b'\n');
    line
}

/// The folder of an object key (`users/<id>.json` → `users`).
pub(crate) fn folder_of_key(key: &str) -> &str {
    key.split_once('/').map_or(key, |(folder, _)| folder)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_index_of_another_version_or_not_json_is_not_used() {
        let index = Index {
            version: INDEX_VERSION,
            objects: BTreeMap::from([(
                "users/a.json".to_owned(),
                IndexEntry {
                    tag: "\"etag\"".into(),
                    object: json!({"Id": "a"}),
                },
            )]),
        };
        assert_eq!(Index::read(&index.body()).unwrap(), index);
        let newer = Index {
            version: INDEX_VERSION + 1,
            ..index
        };
        assert!(
            Index::read(&newer.body())
                .unwrap_err()
                .contains("format version 2")
        );
        assert!(Index::read(b"{").is_err());
    }

    #[test]
    fn a_version_line_is_one_line_of_json() {
        let line = version_line("users", "2024-05-01T00:00:00Z", &json!({"Id": "a"}));
        assert_eq!(line.last(), Some(&b'\n'));
        assert!(!line[..line.len() - 1].contains(&b'\n'));
        let value: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(
            value,
            json!({"Folder": "users", "ObservedAt": "2024-05-01T00:00:00Z", "Object": {"Id": "a"}})
        );
        assert_eq!(
            folder_of_key("security-profiles/x.json"),
            "security-profiles"
        );
    }
}
