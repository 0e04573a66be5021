//! The digest files of a span, found beside the log files the scan read and fetched with
//! their S3 metadata, for [`connect_audit_core::integrity::verify`] (issue J). The public
//! keys are the caller's (the cli asks CloudTrail's `ListPublicKeys`).

use std::collections::{BTreeMap, BTreeSet};

use connect_audit_core::Store;
use connect_audit_core::integrity::{DigestObject, LogSeen, is_digest_key};
use futures_util::{StreamExt as _, TryStreamExt as _};
use jiff::civil::Date;

/// Digests fetched at once.
const FETCH_CONCURRENCY: usize = 16;

/// The account folders (`…/AWSLogs/[<org>/]<account>/`, relative to the store's root, which
/// may be the bucket, `AWSLogs/` or the account folder itself: then `""`) of the log files
/// read.
fn account_prefixes<'a>(logs: impl Iterator<Item = &'a String>) -> BTreeSet<String> {
    logs.filter_map(|key| {
        if key.starts_with("CloudTrail/") {
            return Some(String::new());
        }
        let at = key.find("/CloudTrail/")?;
        Some(key[..=at].to_owned())
    })
    .collect()
}

/// The day folders (`<region>YYYY/MM/DD/`) under `region` that exist and lie in `days`:
/// listed year by year and month by month, so a wide window costs what the trail holds, not
/// a listing per day of it.
async fn day_folders(
    trail: &Store,
    region: &str,
    days: (Date, Date),
) -> Result<Vec<String>, connect_audit_core::Error> {
    let number = |folder: &str| -> Option<i16> {
        folder
            .trim_end_matches('/')
            .rsplit('/')
            .next()?
            .parse()
            .ok()
    };
    let mut out = Vec::new();
    for year in trail.list_dirs(region).await? {
        let Some(y) = number(&year) else { continue };
        if y < days.0.year() || y > days.1.year() {
            continue;
        }
        for month in trail.list_dirs(&year).await? {
            let Some(m) = number(&month).and_then(|m| i8::try_from(m).ok()) else {
                continue;
            };
            for day in trail.list_dirs(&month).await? {
                let Some(d) = number(&day).and_then(|d| i8::try_from(d).ok()) else {
                    continue;
                };
                if Date::new(y, m, d).is_ok_and(|date| days.0 <= date && date <= days.1) {
                    out.push(day);
                }
            }
        }
    }
    Ok(out)
}

/// The home region of the trail a digest is of (`…_<trail>_<home region>_<stamp>.json.gz`).
pub fn home_region(key: &str) -> Option<&str> {
    let name = key.rsplit('/').next()?;
    let mut parts = name.rsplit('_');
    parts.next()?;
    parts.next()
}

/// Every digest of `days` in every region of the accounts whose log files were read
/// (`hashes`, keys from the store's root), inflated, with its `signature` metadata (none in
/// a local copy). `bucket` is the trail's bucket (`None`: a local copy).
pub async fn read_digests(
    trail: &Store,
    bucket: Option<&str>,
    hashes: &BTreeMap<String, LogSeen>,
    days: (Date, Date),
) -> Result<Vec<DigestObject>, connect_audit_core::Error> {
    let mut keys: Vec<String> = Vec::new();
    for account in account_prefixes(hashes.keys()) {
        for region in trail
            .list_dirs(&format!("{account}CloudTrail-Digest/"))
            .await?
        {
            // The last hour of the last day is listed by a digest of the day after.
            let listed = (days.0, days.1.tomorrow().unwrap_or(days.1));
            for prefix in day_folders(trail, &region, listed).await? {
                keys.extend(
                    trail
                        .list(&prefix)
                        .await?
                        .into_iter()
                        .map(|o| o.key)
                        .filter(|k| is_digest_key(k)),
                );
            }
        }
    }
    futures_util::stream::iter(keys)
        .map(|key| async move {
            let (bytes, metadata) = trail.get_with_metadata(&key).await?.unwrap_or_default();
            Ok::<_, connect_audit_core::Error>(DigestObject {
                bucket: bucket.map(str::to_owned),
                inflated: if bytes.is_empty() {
                    Err("vanished while verifying".to_owned())
                } else {
                    crate::local::gunzip(&bytes)
                },
                signature: metadata.and_then(|m| m.get("signature").cloned()),
                key,
            })
        })
        .buffered(FETCH_CONCURRENCY)
        .try_collect()
        .await
}
