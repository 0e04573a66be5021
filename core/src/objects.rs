//! Which trail objects were read: the per-key state that lets an incremental run, and
//! `watch --poll`, read each CloudTrail log object once, so a run's cost follows the new data,
//! not the lookback.
//!
//! CloudTrail names a log object `…/<account>/CloudTrail/<region>/YYYY/MM/DD/<account>_
//! CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<suffix>.json.gz`: inside one region's folder the
//! keys of a day sort by the minute they were delivered. The [`ObjectLedger`] keeps, per
//! region folder, the newest delivery minute read and the keys read within a lateness window
//! before it. A listing then asks only for the keys after `newest − lateness` (S3's
//! `start-after`) in that day's prefix and the days after it, and an object is new when its
//! key is not among those kept. Objects delivered (put) more than the lateness after a newer
//! object of the same folder are not seen; CloudTrail puts its objects as it names them, so
//! a lateness of minutes is wide.
//!
//! ```
//! use connect_audit_core::objects::{LogKey, ObjectLedger};
//! use jiff::{SignedDuration, Timestamp};
//!
//! let t = |s: &str| s.parse::<Timestamp>().unwrap();
//! let mut ledger = ObjectLedger::new(t("2024-05-01T00:00:00Z"), SignedDuration::from_mins(15));
//! let key = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/02/111122223333_CloudTrail_us-east-1_20240502T1005Z_a.json.gz";
//! assert!(ledger.is_new(key));
//! ledger.record(key, Some("\"etag\""));
//! assert!(!ledger.is_new(key));
//! let later = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/02/111122223333_CloudTrail_us-east-1_20240502T1003Z_b.json.gz";
//! assert!(ledger.is_new(later), "two minutes older, within the lateness, not read yet");
//! let plan = ledger.listings(&LogKey::parse(key).unwrap().folder, t("2024-05-02T12:00:00Z"));
//! assert_eq!(plan[0].prefix, "AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/02/");
//! assert!(plan[0].start_after.as_deref().unwrap().ends_with("_20240502T0950Z"));
//! ```

use std::collections::BTreeMap;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::location::Store;

/// The lateness kept when none is configured.
pub const DEFAULT_LATENESS: SignedDuration = SignedDuration::from_mins(15);

/// What a CloudTrail log object's key says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogKey<'k> {
    /// The region folder, `…/<account>/CloudTrail/<region>/`, relative to the trail's root.
    pub folder: &'k str,
    /// The account in the file name.
    pub account: &'k str,
    /// The region in the file name.
    pub region: &'k str,
    /// When CloudTrail delivered it, to the minute, from its name.
    pub delivered_at: Timestamp,
}

impl<'k> LogKey<'k> {
    /// Reads a key `<folder>YYYY/MM/DD/<log file name>`; `None` for a key not laid out so, or
    /// not naming a log file (see [`is_log_file_name`]).
    pub fn parse(key: &'k str) -> Option<Self> {
        let (dirs, name) = key.rsplit_once('/')?;
        let delivered_at = file_delivery_time(name)?;
        let stem = name.split("_CloudTrail_").collect::<Vec<_>>();
        let [account, rest] = stem.as_slice() else {
            return None;
        };
        let region = rest.split('_').next()?;
        // `<folder>YYYY/MM/DD`: the folder is what precedes the date's three segments (empty
        // for a root at the region's folder).
        let date_segments = dirs.rsplitn(4, '/').take(3).count();
        if date_segments < 3 {
            return None;
        }
        let folder = match dirs.rsplitn(4, '/').nth(3) {
            Some(folder) => &key[..=folder.len()],
            None => "",
        };
        Some(Self {
            folder,
            account,
            region,
            delivered_at,
        })
    }
}

/// Whether `name` (a file name, not a path) is the name CloudTrail gives a log file:
/// `<account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<suffix>.json.gz`, or a `.json` copy of
/// one (unzipped by someone). The account is 12 digits, the region lower-case letters, digits
/// and `-`, the time a real UTC minute, the suffix not empty. Organization trails name their
/// files the same way (the organization is in the path). Digest and insight files have names
/// of their own and are not log files in this sense.
///
/// ```
/// use connect_audit_core::objects::is_log_file_name;
///
/// assert!(is_log_file_name("111122223333_CloudTrail_us-east-1_20240502T1005Z_Mu0KsOhtH1ar15ZZ.json.gz"));
/// assert!(!is_log_file_name("manifest.json"));
/// ```
pub fn is_log_file_name(name: &str) -> bool {
    let Some(stem) = name
        .strip_suffix(".json.gz")
        .or_else(|| name.strip_suffix(".json"))
    else {
        return false;
    };
    let Some((account, rest)) = stem.split_once("_CloudTrail_") else {
        return false;
    };
    let Some((region, rest)) = rest.split_once('_') else {
        return false;
    };
    let Some((stamp, suffix)) = rest.split_once('_') else {
        return false;
    };
    account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && is_file_stamp(stamp)
        && !suffix.is_empty()
}

/// The delivery time in a CloudTrail log file name (`<account>_CloudTrail_<region>_
/// <YYYYMMDDTHHmmZ>_<suffix>.json.gz`), to the minute.
pub fn file_delivery_time(name: &str) -> Option<Timestamp> {
    if !is_log_file_name(name) {
        return None;
    }
    let stamp = name.split("_CloudTrail_").nth(1)?.split('_').nth(1)?;
    let civil = jiff::civil::DateTime::strptime("%Y%m%dT%H%MZ", stamp).ok()?;
    civil
        .to_zoned_datetime(TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

/// Whether `stamp` is `YYYYMMDDTHHmmZ` naming a real minute.
fn is_file_stamp(stamp: &str) -> bool {
    let b = stamp.as_bytes();
    if b.len() != 14
        || b[8] != b'T'
        || b[13] != b'Z'
        || !b[..8].iter().chain(&b[9..13]).all(u8::is_ascii_digit)
    {
        return false;
    }
    // All ASCII now: every slice is on a character boundary, and holds only digits.
    let number = |at: usize, len: usize| stamp[at..at + len].parse::<i16>().unwrap_or(-1);
    let two = |at: usize| i8::try_from(number(at, 2)).unwrap_or(-1);
    Date::new(number(0, 4), two(4), two(6)).is_ok() && two(9) < 24 && two(11) < 60
}

/// One listing a run makes of a region folder: the objects under `prefix` whose keys sort
/// after `start_after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// A day prefix, `<folder>YYYY/MM/DD/`.
    pub prefix: String,
    /// Keys at or before it were read, or are older than the lateness.
    pub start_after: Option<String>,
}

/// What was read of one region folder.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FolderState {
    /// The newest delivery minute of an object read.
    pub newest: Option<Timestamp>,
    /// The keys read delivered at or after `newest − lateness`, with the tag (S3's `ETag`)
    /// they had when read.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub recent: BTreeMap<String, String>,
    /// Up to when the folder was listed (by a run that found nothing newer): the next
    /// listing starts from here, less the lateness, not from an old `newest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listed: Option<Timestamp>,
}

/// The objects read, per region folder (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectLedger {
    /// Objects of a folder the ledger does not know are new when delivered at or after this
    /// (a run's start when the ledger was made; the end of the last run's listing since).
    pub since: Timestamp,
    /// How long before a folder's newest object a later-put object may be named.
    pub lateness_secs: i64,
    /// Per region folder, `…/<account>/CloudTrail/<region>/`.
    #[serde(default)]
    pub folders: BTreeMap<String, FolderState>,
    /// The keys read that are not laid out as CloudTrail lays its objects out (a folder of
    /// copied files, a single file): all of them are kept, with their tags, so each is read
    /// once too.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub other: BTreeMap<String, String>,
}

impl ObjectLedger {
    /// An empty ledger: every object delivered from `since` on is new.
    pub fn new(since: Timestamp, lateness: SignedDuration) -> Self {
        Self {
            since,
            lateness_secs: lateness.as_secs(),
            folders: BTreeMap::new(),
            other: BTreeMap::new(),
        }
    }

    /// The lateness.
    pub fn lateness(&self) -> SignedDuration {
        SignedDuration::from_secs(self.lateness_secs)
    }

    /// From when objects of `folder` may be new: `newest − lateness` for a folder read
    /// before, else `since`.
    fn horizon(&self, folder: &str) -> Timestamp {
        self.folders
            .get(folder)
            .and_then(|f| f.newest.max(f.listed))
            .map_or(self.since, |newest| (newest - self.lateness()).min(newest))
    }

    /// Remembers that `folder` was listed up to `at` (its objects then read or found read).
    /// For a folder whose newest object read is more than a day older than that (a region
    /// no longer used, or never read), the next listings start a day before `at` (less the
    /// lateness), not at its last object: one or two listings a run, not one per day since.
    /// A folder in use keeps listing from its newest object.
    pub fn listed(&mut self, folder: &str, at: Timestamp) {
        let day_before = at - SignedDuration::from_hours(24);
        let state = self.folders.entry(folder.to_owned()).or_default();
        if state.newest.is_none_or(|newest| newest < day_before) {
            state.listed = state.listed.max(Some(day_before));
        }
    }

    /// Whether the object at `key` was not read yet (a key not laid out as CloudTrail's:
    /// whether it is among [`other`](Self::other)).
    pub fn is_new(&self, key: &str) -> bool {
        let Some(log) = LogKey::parse(key) else {
            return !self.other.contains_key(key);
        };
        if log.delivered_at < self.horizon(log.folder) {
            return false;
        }
        self.folders
            .get(log.folder)
            .is_none_or(|f| !f.recent.contains_key(key))
    }

    /// Remembers that the object at `key`, with `tag`, was read, and forgets the keys of its
    /// folder older than the lateness.
    pub fn record(&mut self, key: &str, tag: Option<&str>) {
        let Some(log) = LogKey::parse(key) else {
            self.other
                .insert(key.to_owned(), tag.unwrap_or_default().to_owned());
            return;
        };
        let lateness = self.lateness();
        let folder = self.folders.entry(log.folder.to_owned()).or_default();
        let newest = folder
            .newest
            .map_or(log.delivered_at, |n| n.max(log.delivered_at));
        folder.newest = Some(newest);
        folder
            .recent
            .insert(key.to_owned(), tag.unwrap_or_default().to_owned());
        let horizon = newest - lateness;
        folder
            .recent
            .retain(|k, _| LogKey::parse(k).is_some_and(|l| l.delivered_at >= horizon));
    }

    /// The listings that find every new object of `folder` delivered up to `now`: the day
    /// prefix of its horizon from the horizon's minute on, and each later day whole.
    pub fn listings(&self, folder: &str, now: Timestamp) -> Vec<Listing> {
        let horizon = self.horizon(folder);
        let day = |t: Timestamp| t.to_zoned_datetime(TimeZone::UTC).date();
        let (first, last) = (day(horizon), day(now.max(horizon)));
        let account_region = folder_account_region(folder);
        let mut listings = Vec::new();
        let mut date = first;
        while date <= last {
            let prefix = format!("{folder}{}/", date.strftime("%Y/%m/%d"));
            let start_after = (date == first).then_some(()).and_then(|()| {
                let (account, region) = account_region?;
                Some(format!(
                    "{prefix}{account}_CloudTrail_{region}_{}",
                    horizon.strftime("%Y%m%dT%H%MZ")
                ))
            });
            listings.push(Listing {
                prefix,
                start_after,
            });
            date = match date.tomorrow() {
                Ok(next) => next,
                Err(_) => break,
            };
        }
        listings
    }

    /// How many keys the ledger keeps.
    pub fn keys(&self) -> usize {
        self.folders.values().map(|f| f.recent.len()).sum::<usize>() + self.other.len()
    }
}

/// One object a batch of `watch` reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchObject {
    /// Its key, relative to the trail's root.
    pub key: String,
    /// Its `ETag` as the notification gave it; empty when none did.
    #[serde(default)]
    pub etag: String,
    /// Its size, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// When S3 created it, as the notification said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
}

/// A batch of `watch`: the objects whose events go into one file per file exporter, named
/// after [`id`](Self::id). Written before its files, marked done after them, so a batch
/// that was cut short is done again whole, under the same names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchManifest {
    /// `<first delivery minute>-<16 hex digits of the SHA-256 of its keys and ETags>`.
    pub id: String,
    /// Its objects, by key.
    pub objects: Vec<BatchObject>,
    /// When the batch was started.
    pub started_at: Timestamp,
    /// When the process working on it last said it was (every third of the visibility
    /// timeout); a batch not done and not alive for a visibility timeout is done again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alive_at: Option<Timestamp>,
    /// When every exporter finished it; `None` while it is not done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_at: Option<Timestamp>,
}

impl BatchManifest {
    /// A new batch of `objects` (sorted by key here), started at `now`.
    pub fn new(mut objects: Vec<BatchObject>, now: Timestamp) -> Self {
        objects.sort_by(|a, b| a.key.cmp(&b.key).then_with(|| a.etag.cmp(&b.etag)));
        objects.dedup_by(|a, b| a.key == b.key && a.etag == b.etag);
        let mut listed = String::new();
        for o in &objects {
            listed.push_str(&o.key);
            listed.push('\n');
            listed.push_str(&o.etag);
            listed.push('\n');
        }
        let first = objects
            .iter()
            .filter_map(|o| LogKey::parse(&o.key).map(|k| k.delivered_at))
            .min()
            .unwrap_or(now);
        let id = format!(
            "{}-{}",
            first.strftime("%Y%m%dT%H%MZ"),
            &crate::integrity::sha256_hex(listed.as_bytes())[..16]
        );
        Self {
            id,
            objects,
            started_at: now,
            alive_at: Some(now),
            done_at: None,
        }
    }
}

/// Which batch claimed an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    /// The object's key.
    pub key: String,
    /// Its `ETag` when claimed (empty when the notification gave none).
    pub etag: String,
    /// The batch.
    pub batch: String,
    /// When it was claimed.
    pub at: Timestamp,
}

/// Where every `watch` on a queue keeps its batches (`batches/<id>.json`) and the claims of
/// objects by batches (`objects/<hash of the key>.json`, in 256 folders): a directory, or an S3 prefix.
///
/// An object (by key: CloudTrail never rewrites one, and one of its notification shapes gives
/// no `ETag`) is claimed once: the claim is created only where none exists (see
/// [`Store::put_new`]; [`probe`](Self::probe) refuses a store that does not honour it), so of
/// two processes handed the same object at once, one claims it and the other leaves its
/// message for later. A batch's manifest is written after its claims, listing only the objects
/// it won, before its files; it is marked done after them. A batch is done again whole, by any
/// process, when one of its objects comes back before it was marked done and it has not been
/// seen alive for a visibility timeout: its files get the same names and the same objects.
#[derive(Debug, Clone)]
pub struct Claims {
    store: Store,
}

/// What a claim attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// This batch claimed it.
    Ours,
    /// Another batch had.
    By(Claim),
}

/// How many times a claim is tried when the claim it met vanished before it was read.
const CLAIM_ATTEMPTS: usize = 5;

impl Claims {
    /// The claims kept in `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Where they are kept, for messages.
    pub fn describe(&self) -> String {
        self.store.describe("")
    }

    /// Checks that the store creates an object only where none exists (a local directory, or
    /// Amazon S3's conditional writes); some S3-compatible stores ignore `If-None-Match` and
    /// would let two processes claim one object. Leaves nothing behind.
    pub async fn probe(&self) -> Result<bool, Error> {
        let key = format!(
            "probe/{}.json",
            &crate::integrity::sha256_hex(Timestamp::now().to_string().as_bytes())[..32]
        );
        let first = self.store.put_new(&key, b"1".to_vec()).await?;
        let second = self.store.put_new(&key, b"2".to_vec()).await?;
        self.store.delete(&key).await?;
        Ok(first && !second)
    }

    /// `objects/<2 hex>/<40 hex>.json`: 256 folders, so a local store keeps its folders small
    /// (a busy trail claims about a million objects in the days claims are kept).
    fn claim_key(key: &str) -> String {
        let hash = crate::integrity::sha256_hex(key.as_bytes());
        format!("objects/{}/{}.json", &hash[..2], &hash[..40])
    }

    fn batch_key(id: &str) -> String {
        format!("batches/{id}.json")
    }

    /// The JSON object at `key`, if any; one that does not read is an error naming it.
    async fn read<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        let Some(bytes) = self.store.get(key).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::BadState {
                object: self.store.describe(key),
                reason: e.to_string(),
            })
    }

    /// The claim of an object, if any.
    pub async fn claim_of(&self, key: &str) -> Result<Option<Claim>, Error> {
        self.read(&Self::claim_key(key)).await
    }

    /// Claims an object for `batch`, unless a batch already has.
    pub async fn claim(
        &self,
        key: &str,
        etag: &str,
        batch: &str,
        now: Timestamp,
    ) -> Result<Claimed, Error> {
        let claim = Claim {
            key: key.to_owned(),
            etag: etag.to_owned(),
            batch: batch.to_owned(),
            at: now,
        };
        let body = serde_json::to_vec(&claim).unwrap_or_default();
        for _ in 0..CLAIM_ATTEMPTS {
            if self
                .store
                .put_new(&Self::claim_key(key), body.clone())
                .await?
            {
                return Ok(Claimed::Ours);
            }
            match self.claim_of(key).await? {
                Some(other) if other.batch == batch => return Ok(Claimed::Ours),
                Some(other) => return Ok(Claimed::By(other)),
                // Released between the two calls: try again.
                None => {}
            }
        }
        Err(Error::BadState {
            object: self.store.describe(&Self::claim_key(key)),
            reason: format!(
                "the claim could neither be created nor read in {CLAIM_ATTEMPTS} attempts"
            ),
        })
    }

    /// Drops an object's claim, if `batch` holds it (it could not be read: a later message
    /// retries it; or its batch never got a manifest).
    pub async fn release(&self, key: &str, batch: &str) -> Result<(), Error> {
        if self.claim_of(key).await?.is_some_and(|c| c.batch == batch) {
            self.store.delete(&Self::claim_key(key)).await?;
        }
        Ok(())
    }

    /// A batch's manifest.
    pub async fn manifest(&self, id: &str) -> Result<Option<BatchManifest>, Error> {
        self.read(&Self::batch_key(id)).await
    }

    /// Forgets the batches done before `cutoff`, and their objects' claims: a notification
    /// of one of their objects arriving after that is read again. (SQS keeps a message 14 days
    /// at most: a cutoff older than that forgets nothing a queue can still deliver.) Gives how
    /// many batches were forgotten.
    pub async fn prune(&self, cutoff: Timestamp) -> Result<usize, Error> {
        let mut forgotten = 0;
        for object in self.store.list("batches/").await? {
            let Some(id) = object
                .key
                .strip_prefix("batches/")
                .and_then(|k| k.strip_suffix(".json"))
            else {
                continue;
            };
            let Some(manifest) = self.manifest(id).await? else {
                continue;
            };
            if manifest.done_at.is_none_or(|done| done >= cutoff) {
                continue;
            }
            for o in &manifest.objects {
                self.release(&o.key, id).await?;
            }
            self.store.delete(&object.key).await?;
            forgotten += 1;
        }
        Ok(forgotten)
    }

    /// Writes a batch's manifest (before its files; again, done, after them).
    pub async fn save(&self, manifest: &BatchManifest) -> Result<(), Error> {
        let body = serde_json::to_vec_pretty(manifest).unwrap_or_default();
        self.store.put(&Self::batch_key(&manifest.id), body).await
    }
}

/// The account and region of `…/<account>/CloudTrail/<region>/`.
fn folder_account_region(folder: &str) -> Option<(&str, &str)> {
    let mut segments = folder.trim_end_matches('/').rsplit('/');
    let region = segments.next()?;
    (segments.next()? == "CloudTrail").then_some(())?;
    Some((segments.next()?, region))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const FOLDER: &str = "AWSLogs/o-abc/111122223333/CloudTrail/ap-northeast-1/";

    fn key(stamp: &str, suffix: &str) -> String {
        let day = format!("{}/{}/{}", &stamp[..4], &stamp[4..6], &stamp[6..8]);
        format!("{FOLDER}{day}/111122223333_CloudTrail_ap-northeast-1_{stamp}_{suffix}.json.gz")
    }

    #[test]
    fn only_cloudtrail_log_file_names_are_log_files() {
        for name in [
            "111122223333_CloudTrail_us-east-1_20240502T1005Z_Mu0KsOhtH1ar15ZZ.json.gz",
            // An organization trail's file (under AWSLogs/o-…/<account>/): the same name.
            "444455556666_CloudTrail_eu-west-2_20240505T0900Z_a1B2c3D4e5F6g7H8.json.gz",
            "111122223333_CloudTrail_us-gov-west-1_20241231T2359Z_x.json.gz",
            "111122223333_CloudTrail_ap-northeast-1_20240229T0000Z_leap.json.gz",
            // A `.json` copy, unzipped.
            "111122223333_CloudTrail_us-east-1_20240502T1005Z_Mu0KsOhtH1ar15ZZ.json",
            // Suffixes are CloudTrail's to choose; copies may add to them.
            "111122223333_CloudTrail_us-east-1_20240502T1005Z_not-gzip.json.gz",
            "111122223333_CloudTrail_us-east-1_20240502T1005Z_a_b.json.gz",
        ] {
            assert!(is_log_file_name(name), "{name}");
        }
        for name in [
            "manifest.json",
            "users.csv",
            "README.md",
            "a.json",
            "66666666-7777-8888-9999-000000000000.json",
            "111122223333_CloudTrail_us-east-1_20240502T1005Z_x.csv",
            "111122223333_CloudTrail_us-east-1_20240502T1005Z_x.json.gz.tmp",
            "111122223333_CloudTrail_us-east-1_20240502T1005Z_x.JSON.GZ",
            // Digest and insight files are CloudTrail's, but not log files.
            "111122223333_CloudTrail-Digest_us-east-1_trail_us-east-1_20240502T100000Z.json.gz",
            "111122223333_CloudTrail-Insight_us-east-1_20240502T1005Z_x.json.gz",
            // Not a 12-digit account.
            "a_CloudTrail_us-east-1_20240502T1005Z_x.json.gz",
            "11112222333_CloudTrail_us-east-1_20240502T1005Z_x.json.gz",
            "1111222233334_CloudTrail_us-east-1_20240502T1005Z_x.json.gz",
            // Bad regions.
            "111122223333_CloudTrail__20240502T1005Z_x.json.gz",
            "111122223333_CloudTrail_US-EAST-1_20240502T1005Z_x.json.gz",
            // Bad timestamps: short, with seconds, separators, not a real day or minute.
            "111122223333_CloudTrail_us-east-1_20240502T105Z_x.json.gz",
            "111122223333_CloudTrail_us-east-1_20240502T100500Z_x.json.gz",
            "111122223333_CloudTrail_us-east-1_2024-05-02T1005Z_x.json.gz",
            "111122223333_CloudTrail_us-east-1_20240502 1005Z_x.json.gz",
            "111122223333_CloudTrail_us-east-1_20240502T1005_x.json.gz",
            "111122223333_CloudTrail_us-east-1_20241302T1005Z_x.json.gz",
            "111122223333_CloudTrail_us-east-1_20230229T1005Z_x.json.gz",
            "111122223333_CloudTrail_us-east-1_20240502T2400Z_x.json.gz",
            "111122223333_CloudTrail_us-east-1_20240502T1060Z_x.json.gz",
            "111122223333_CloudTrail_us-east-1_2024050+T1005Z_x.json.gz",
            // No suffix, or nothing after the region.
            "111122223333_CloudTrail_us-east-1_20240502T1005Z_.json.gz",
            "111122223333_CloudTrail_us-east-1_20240502T1005Z.json.gz",
            "111122223333_CloudTrail_us-east-1.json.gz",
            ".json.gz",
            "",
        ] {
            assert!(!is_log_file_name(name), "{name}");
        }
    }

    #[test]
    fn claims_are_taken_once_and_forgotten_with_their_batch() {
        let dir = tempfile::tempdir().unwrap();
        let claims = Claims::new(Store::local(dir.path()));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let object = |k: &str| BatchObject {
            key: key("20240502T0905Z", k),
            etag: format!("etag-{k}"),
            size: None,
            created_at: None,
        };
        let mut batch = BatchManifest::new(
            vec![object("b"), object("a"), object("a")],
            t("2024-05-02T09:10:00Z"),
        );
        assert_eq!(batch.objects.len(), 2, "sorted, each once");
        assert!(batch.id.starts_with("20240502T0905Z-"), "{}", batch.id);
        let again = BatchManifest::new(vec![object("a"), object("b")], t("2024-05-03T00:00:00Z"));
        assert_eq!(again.id, batch.id, "the id is of the objects, not the time");
        rt.block_on(async {
            claims.save(&batch).await.unwrap();
            assert!(
                claims.probe().await.unwrap(),
                "a local directory creates once"
            );
            let a = object("a");
            let now = t("2024-05-02T09:10:00Z");
            assert_eq!(
                claims.claim(&a.key, &a.etag, &batch.id, now).await.unwrap(),
                Claimed::Ours
            );
            assert_eq!(
                claims.claim(&a.key, &a.etag, &batch.id, now).await.unwrap(),
                Claimed::Ours,
                "a batch done again keeps its claims"
            );
            let Claimed::By(other) = claims.claim(&a.key, "", "other", now).await.unwrap() else {
                panic!("claimed twice")
            };
            assert_eq!(other.batch, batch.id, "by key, whatever the ETag");
            claims.release(&a.key, "other").await.unwrap();
            assert!(
                claims.claim_of(&a.key).await.unwrap().is_some(),
                "not other's to release"
            );
            assert_eq!(
                claims.prune(t("2030-01-01T00:00:00Z")).await.unwrap(),
                0,
                "not done"
            );
            batch.done_at = Some(t("2024-05-02T09:11:00Z"));
            claims.save(&batch).await.unwrap();
            assert_eq!(
                claims.prune(t("2024-05-02T09:11:00Z")).await.unwrap(),
                0,
                "too recent"
            );
            assert_eq!(claims.prune(t("2024-05-20T00:00:00Z")).await.unwrap(), 1);
            assert_eq!(claims.manifest(&batch.id).await.unwrap(), None);
            assert_eq!(claims.claim_of(&a.key).await.unwrap(), None);
            assert!(claims.store.list("probe/").await.unwrap().is_empty());
        });
    }

    #[test]
    fn keys_name_their_folder_and_minute() {
        let k = key("20240502T0905Z", "x");
        let log = LogKey::parse(&k).unwrap();
        assert_eq!(log.folder, FOLDER);
        assert_eq!(log.account, "111122223333");
        assert_eq!(log.region, "ap-northeast-1");
        assert_eq!(log.delivered_at, t("2024-05-02T09:05:00Z"));
        let at_region =
            "2024/05/02/111122223333_CloudTrail_ap-northeast-1_20240502T0905Z_x.json.gz";
        assert_eq!(LogKey::parse(at_region).unwrap().folder, "");
        for bad in [
            "111122223333_CloudTrail_ap-northeast-1_20240502T0905Z_x.json.gz",
            "a/111122223333_CloudTrail_ap-northeast-1_20240502T0905Z_x.json.gz",
            "05/02/111122223333_CloudTrail_ap-northeast-1_20240502T0905Z_x.json.gz",
            "AWSLogs/1/CloudTrail/r/2024/05/02/manifest.json",
        ] {
            assert_eq!(LogKey::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn objects_are_new_once_and_late_ones_within_the_lateness_are_found() {
        let mut ledger = ObjectLedger::new(t("2024-05-02T00:00:00Z"), DEFAULT_LATENESS);
        let old = key("20240501T2359Z", "old");
        assert!(!ledger.is_new(&old), "before the ledger's start");
        let a = key("20240502T0905Z", "a");
        assert!(ledger.is_new(&a));
        ledger.record(&a, Some("\"e1\""));
        assert!(!ledger.is_new(&a));
        let same_minute = key("20240502T0905Z", "0");
        assert!(ledger.is_new(&same_minute), "put after a, sorts before it");
        let late = key("20240502T0851Z", "late");
        assert!(ledger.is_new(&late), "14 minutes before the newest");
        let too_late = key("20240502T0849Z", "too-late");
        assert!(!ledger.is_new(&too_late), "16 minutes before the newest");
        ledger.record(&key("20240502T0930Z", "b"), None);
        assert_eq!(
            ledger.folders[FOLDER].recent.keys().collect::<Vec<_>>(),
            [&key("20240502T0930Z", "b")],
            "a fell out of the lateness"
        );
        assert!(!ledger.is_new(&a), "older than the lateness now");
        assert!(ledger.is_new("not/a/log/key"));
        ledger.record("not/a/log/key", Some("t"));
        ledger.record("", None);
        assert!(
            !ledger.is_new("not/a/log/key") && !ledger.is_new(""),
            "kept, read once"
        );
        let text = serde_json::to_string(&ledger).unwrap();
        assert_eq!(serde_json::from_str::<ObjectLedger>(&text).unwrap(), ledger);
    }

    #[test]
    fn listings_start_after_the_horizon_and_cover_every_later_day() {
        let mut ledger = ObjectLedger::new(t("2024-05-01T00:00:00Z"), DEFAULT_LATENESS);
        ledger.record(&key("20240502T0005Z", "a"), None);
        let plan = ledger.listings(FOLDER, t("2024-05-03T08:00:00Z"));
        assert_eq!(
            plan,
            [
                Listing {
                    prefix: format!("{FOLDER}2024/05/01/"),
                    start_after: Some(format!(
                        "{FOLDER}2024/05/01/111122223333_CloudTrail_ap-northeast-1_20240501T2350Z"
                    )),
                },
                Listing {
                    prefix: format!("{FOLDER}2024/05/02/"),
                    start_after: None,
                },
                Listing {
                    prefix: format!("{FOLDER}2024/05/03/"),
                    start_after: None,
                },
            ]
        );
        // The synthetic start-after sorts before every key of its minute and after the
        // minute before.
        let start = plan[0].start_after.clone().unwrap();
        assert!(start < key("20240501T2350Z", "0") && start > key("20240501T2349Z", "z"));
        // Listed within a day of its newest object: a folder in use lists from that object.
        let mut in_use = ledger.clone();
        in_use.listed(FOLDER, t("2024-05-02T12:00:00Z"));
        assert_eq!(in_use, ledger);
        // Listed days after it: from a day before the listing on.
        ledger.listed(FOLDER, t("2024-05-10T06:00:00Z"));
        let plan = ledger.listings(FOLDER, t("2024-05-10T08:00:00Z"));
        assert_eq!(plan.len(), 2, "{plan:?}");
        assert!(
            plan[0]
                .start_after
                .as_deref()
                .unwrap()
                .ends_with("_20240509T0545Z")
        );
        assert!(!ledger.is_new(&key("20240509T0544Z", "a")));
        assert!(ledger.is_new(&key("20240509T0545Z", "a")));
        let fresh = ObjectLedger::new(t("2024-04-01T00:00:00Z"), DEFAULT_LATENESS);
        let mut never_read = fresh.clone();
        never_read.listed("AWSLogs/1/CloudTrail/r/", t("2024-05-10T06:00:00Z"));
        assert_eq!(
            never_read
                .listings("AWSLogs/1/CloudTrail/r/", t("2024-05-10T08:00:00Z"))
                .len(),
            2
        );
        assert_eq!(
            fresh
                .listings("AWSLogs/1/CloudTrail/r/", t("2024-05-10T08:00:00Z"))
                .len(),
            40
        );
        let unknown = "AWSLogs/222233334444/CloudTrail/eu-west-1/";
        let plan = ledger.listings(unknown, t("2024-05-01T08:00:00Z"));
        assert_eq!(plan.len(), 1);
        assert!(
            plan[0]
                .start_after
                .as_deref()
                .unwrap()
                .ends_with("2024/05/01/222233334444_CloudTrail_eu-west-1_20240501T0000Z")
        );
    }
}
