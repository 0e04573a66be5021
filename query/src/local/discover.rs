//! Finding the trail files, under a local directory (or file) or an S3 prefix, through the
//! trail's [`Store`].
//!
//! Takes the trail's store and the window. Gives the CloudTrail log files that may hold events
//! of the window ([`TrailFile`]s), in path order, and counts what it found, pruned and ignored
//! in the [`ScanSummary`]. One path for both kinds of store: a listing, then one selection
//! ([`select`]). The listing differs only in what the store makes cheap: a local root, whose
//! layout is not known, is walked whole ([`Store::walk`]: links followed, `CloudTrail-Digest/`
//! and `CloudTrail-Insight/` not entered, what cannot be read reported as bad input and the
//! walk goes on); an S3 root is never listed whole: accounts and regions are found with
//! delimiter listings, then only the date prefixes of the window are listed, and a listing
//! that fails, or a root with no objects at all, fails the scan. Never reads or fetches a
//! file's content: that is the later stages' work.

use std::io;
use std::path::{Path, PathBuf};

use connect_audit_core::{ObjectInfo, Store, Window};
use futures_util::{StreamExt as _, TryStreamExt as _};
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use tracing::info;

use super::ScanSummary;
use crate::error::Error;
use crate::sink::{BadInput, Escaped, ScanSink};

/// S3 listings run at once.
pub const LIST_CONCURRENCY: usize = 16;

/// The folders CloudTrail keeps beside its logs that hold no log file: never entered.
const NOT_LOGS: &[&str] = &["CloudTrail-Digest", "CloudTrail-Insight"];

/// A trail file to read.
#[derive(Debug)]
pub(super) struct TrailFile {
    /// A local path, or `s3://bucket/key`: what messages name.
    pub(super) path: PathBuf,
    /// The key in the store (empty for a local root that is the file itself).
    pub(super) key: Option<String>,
    pub(super) bytes: u64,
}

impl TrailFile {
    /// The segments of its key, for sorting as a walk does (by path component).
    fn key_segments(&self) -> std::str::Split<'_, char> {
        self.key.as_deref().unwrap_or_default().split('/')
    }
}

/// The trail files of the window under `store`, in path order: the store's listing, then
/// [`select`]. What a local walk cannot read goes to `sink` as bad input and into the summary.
pub(super) async fn find_files(
    store: &Store,
    window: Window,
    summary: &mut ScanSummary,
    sink: &mut dyn ScanSink,
) -> Result<Vec<TrailFile>, Error> {
    let objects = if store.local_root().is_some() {
        let walked = store.walk(NOT_LOGS).await?;
        for unreadable in walked.unreadable {
            let problem = BadInput {
                path: unreadable.path,
                record: None,
                event_id: None,
                reason: unreadable.reason,
            };
            summary.files_bad += 1;
            sink.bad_input(&problem);
            summary.bad.push(problem);
        }
        walked.objects
    } else {
        list_layout(store, window).await?
    };
    let files = select(store, objects, window, summary);
    if store.local_root().is_none() && summary.files_found == 0 && !store.has_objects("").await? {
        return Err(Error::Trail {
            path: store.describe("").into(),
            source: io::Error::new(
                io::ErrorKind::NotFound,
                "no objects under this prefix (check the bucket and prefix)",
            ),
        });
    }
    Ok(files)
}

/// The log files among `objects`, in path order (by segment), pruned by the delivery date in
/// their path: digest and insight files are passed over; any other file not named as
/// CloudTrail names its logs is counted as ignored and logged, except the root itself (a file
/// the user named is read whatever its name).
fn select(
    store: &Store,
    objects: Vec<ObjectInfo>,
    window: Window,
    summary: &mut ScanSummary,
) -> Vec<TrailFile> {
    let mut files = Vec::new();
    for object in objects {
        let mut segments = object.key.split('/');
        let name = segments.next_back().unwrap_or_default();
        if name.contains("_CloudTrail-Digest_")
            || name.contains("_CloudTrail-Insight_")
            || segments.any(|s| NOT_LOGS.contains(&s))
        {
            continue;
        }
        let path = PathBuf::from(store.describe(&object.key));
        if !object.key.is_empty() && !is_log_file_name(name) {
            summary.files_ignored += 1;
            info!(
                file = %Escaped(&path.display().to_string()),
                "Ignored a file that is not a CloudTrail log."
            );
            continue;
        }
        summary.files_found += 1;
        if delivery_date(&path).is_some_and(|d| !window.may_hold_delivery_date(d)) {
            summary.files_pruned += 1;
            continue;
        }
        files.push(TrailFile {
            path,
            key: Some(object.key),
            bytes: object.size,
        });
    }
    // The order of a walk by path component, whichever listing gave them.
    files.sort_by(|a, b| a.key_segments().cmp(b.key_segments()));
    files
}

/// A step of the walk down an S3 trail: a relative prefix (`""` or ending in `/`) and what
/// the CloudTrail layout puts there.
#[derive(Debug)]
enum Step {
    /// `AWSLogs/`: account ids and organization ids.
    Accounts(String),
    /// `AWSLogs/o-…/`: the accounts of an organization trail.
    Organization(String),
    /// `AWSLogs/[o-…/]<account>/`.
    Account(String),
    /// `…/CloudTrail/`: regions.
    Regions(String),
    /// `…/CloudTrail/<region>/`: dates.
    Region(String),
    /// A prefix whose objects are listed recursively.
    Objects(String),
}

/// Where the walk starts, from the store's own prefix: a root at or below `AWSLogs` is placed
/// in the layout by its last segments; anything else is looked at by [`first_steps`].
fn start_step(root_prefix: &str) -> Option<Step> {
    let segments: Vec<&str> = root_prefix.split('/').filter(|s| !s.is_empty()).collect();
    let at = segments.iter().rposition(|s| *s == "AWSLogs")?;
    let here = String::new();
    Some(match &segments[at + 1..] {
        [] => Step::Accounts(here),
        [org] if org.starts_with("o-") => Step::Organization(here),
        [_] => Step::Account(here),
        [org, account] if org.starts_with("o-") && *account != "CloudTrail" => Step::Account(here),
        [_, "CloudTrail"] | [_, _, "CloudTrail"] => Step::Regions(here),
        [_, "CloudTrail", _] | [_, _, "CloudTrail", _] => Step::Region(here),
        _ => Step::Objects(here),
    })
}

/// The first steps for a root above `AWSLogs` (a bucket root or a key prefix of the trail):
/// `AWSLogs/` if it is there, else every object under the root, pruned by the date in its key.
async fn first_steps(store: &Store) -> Result<Vec<Step>, Error> {
    let dirs = store.list_dirs("").await?;
    Ok(if dirs.iter().any(|d| d == "AWSLogs/") {
        vec![Step::Accounts("AWSLogs/".into())]
    } else {
        vec![Step::Objects(String::new())]
    })
}

/// Lists what one step holds: further steps, or objects.
async fn expand(
    store: &Store,
    dates: &[String],
    step: Step,
) -> Result<(Vec<Step>, Vec<ObjectInfo>), Error> {
    let last_segment = |dir: &str| {
        dir.trim_end_matches('/')
            .rsplit('/')
            .next()
            .map(str::to_owned)
    };
    let steps = match step {
        Step::Accounts(base) => store
            .list_dirs(&base)
            .await?
            .into_iter()
            .map(|d| match last_segment(&d) {
                Some(id) if id.starts_with("o-") => Step::Organization(d),
                _ => Step::Account(d),
            })
            .collect(),
        Step::Organization(base) => store
            .list_dirs(&base)
            .await?
            .into_iter()
            .map(Step::Account)
            .collect(),
        Step::Account(base) => vec![Step::Regions(format!("{base}CloudTrail/"))],
        Step::Regions(base) => store
            .list_dirs(&base)
            .await?
            .into_iter()
            .map(Step::Region)
            .collect(),
        Step::Region(base) => dates
            .iter()
            .map(|date| Step::Objects(format!("{base}{date}")))
            .collect(),
        Step::Objects(prefix) => return Ok((Vec::new(), store.list(&prefix).await?)),
    };
    Ok((steps, Vec::new()))
}

/// The date prefixes of delivery dates the window may hold (see
/// [`Window::may_hold_delivery_date`]): `YYYY/MM/DD/` for windows up to about three months,
/// `YYYY/MM/` beyond, so a long window costs one listing per month, not per day. Dates before
/// CloudTrail existed (November 2013) or after tomorrow hold no files and are not listed.
fn date_prefixes(window: Window, today: Date) -> Vec<String> {
    let day = |t: jiff::Timestamp| t.to_zoned_datetime(TimeZone::UTC).date();
    let oldest = Date::new(2013, 11, 1).unwrap_or(Date::MIN);
    let newest = today.tomorrow().unwrap_or(Date::MAX);
    let first = day(window.since)
        .yesterday()
        .unwrap_or(Date::MIN)
        .max(oldest);
    let last = day(window.until)
        .tomorrow()
        .unwrap_or(Date::MAX)
        .min(newest);
    let mut prefixes = Vec::new();
    if first > last {
        return prefixes;
    }
    let by_day = first.until(last).is_ok_and(|span| span.get_days() <= 100);
    let mut date = first;
    while date <= last {
        if by_day {
            prefixes.push(format!("{}/", date.strftime("%Y/%m/%d")));
            date = match date.tomorrow() {
                Ok(next) => next,
                Err(_) => break,
            };
        } else {
            prefixes.push(format!("{}/", date.strftime("%Y/%m")));
            date = match date.first_of_month().checked_add(jiff::ToSpan::months(1)) {
                Ok(next) => next,
                Err(_) => break,
            };
        }
    }
    prefixes
}

/// Lists the trail objects of the window under an S3 store by its layout ([`Step`]s, then
/// the date prefixes of the window), [`LIST_CONCURRENCY`] listings at a time; a listing that
/// fails stops the scan (the trail cannot be read as a whole).
async fn list_layout(store: &Store, window: Window) -> Result<Vec<ObjectInfo>, Error> {
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(TimeZone::UTC)
        .date();
    let dates = date_prefixes(window, today);
    let root_prefix = match store.location() {
        connect_audit_core::Location::S3 { prefix, .. } => prefix,
        connect_audit_core::Location::Local(_) => String::new(),
    };
    let mut steps = match start_step(&root_prefix) {
        Some(step) => vec![step],
        None => first_steps(store).await?,
    };
    let mut objects = Vec::new();
    while !steps.is_empty() {
        let expanded: Vec<(Vec<Step>, Vec<ObjectInfo>)> = futures_util::stream::iter(steps)
            .map(|step| expand(store, &dates, step))
            .buffer_unordered(LIST_CONCURRENCY)
            .try_collect()
            .await?;
        steps = Vec::new();
        for (more, found) in expanded {
            steps.extend(more);
            objects.extend(found);
        }
    }
    Ok(objects)
}

/// Whether `name` (a file name, not a path) is the name CloudTrail gives a log file:
/// `<account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<suffix>.json.gz`, or a `.json` copy of
/// one (unzipped by someone). The account is 12 digits, the region lower-case letters, digits
/// and `-`, the time a real UTC minute, the suffix not empty. Organization trails name their
/// files the same way (the organization is in the path). Digest and insight files have names
/// of their own and are not log files in this sense.
///
/// ```
/// use connect_audit_query::local::is_log_file_name;
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

/// The delivery date of a file from `…/YYYY/MM/DD/<file>`, if its path has one.
fn delivery_date(path: &Path) -> Option<Date> {
    let mut dirs = path
        .parent()?
        .components()
        .rev()
        .map(|c| c.as_os_str().to_str());
    let day: i8 = dirs.next()??.parse().ok()?;
    let month: i8 = dirs.next()??.parse().ok()?;
    let year: i16 = dirs.next()??.parse().ok()?;
    Date::new(year, month, day).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_dates_come_from_the_path() {
        let d = delivery_date(Path::new(
            "AWSLogs/1/CloudTrail/us-east-1/2024/05/02/1_CloudTrail_us-east-1_x.json.gz",
        ));
        assert_eq!(d, Some(Date::new(2024, 5, 2).unwrap()));
        assert_eq!(delivery_date(Path::new("trail/file.json.gz")), None);
        assert_eq!(delivery_date(Path::new("2024/13/02/f.json")), None);
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
    fn s3_walk_starts_where_the_root_sits_in_the_layout() {
        let step = |p: &str| format!("{:?}", start_step(p));
        assert_eq!(step(""), "None");
        assert_eq!(step("trails/prod"), "None");
        assert_eq!(step("AWSLogs"), r#"Some(Accounts(""))"#);
        assert_eq!(step("x/AWSLogs"), r#"Some(Accounts(""))"#);
        assert_eq!(step("AWSLogs/111122223333"), r#"Some(Account(""))"#);
        assert_eq!(step("AWSLogs/o-abc"), r#"Some(Organization(""))"#);
        assert_eq!(step("AWSLogs/o-abc/111122223333"), r#"Some(Account(""))"#);
        assert_eq!(
            step("AWSLogs/111122223333/CloudTrail"),
            r#"Some(Regions(""))"#
        );
        assert_eq!(step("AWSLogs/o-abc/1/CloudTrail"), r#"Some(Regions(""))"#);
        assert_eq!(
            step("AWSLogs/1/CloudTrail/us-east-1"),
            r#"Some(Region(""))"#
        );
        assert_eq!(
            step("AWSLogs/o-a/1/CloudTrail/eu-west-1"),
            r#"Some(Region(""))"#
        );
        assert_eq!(
            step("AWSLogs/1/CloudTrail/us-east-1/2024"),
            r#"Some(Objects(""))"#
        );
    }

    #[test]
    fn date_prefixes_cover_the_window_and_its_slack() {
        let window = |since: &str, until: &str| {
            Window::parse(
                Some(since),
                Some(until),
                "2030-01-01T00:00:00Z".parse().unwrap(),
            )
            .unwrap()
        };
        let today = Date::new(2025, 1, 1).unwrap();
        let days = date_prefixes(window("2024-05-01", "2024-05-08"), today);
        assert_eq!(days.first().unwrap(), "2024/04/30/");
        assert_eq!(days.last().unwrap(), "2024/05/09/");
        assert_eq!(days.len(), 10);
        let year_end = date_prefixes(
            window("2023-12-31T10:00:00Z", "2024-01-01T10:00:00Z"),
            today,
        );
        assert_eq!(
            year_end,
            ["2023/12/30/", "2023/12/31/", "2024/01/01/", "2024/01/02/"]
        );
        let months = date_prefixes(window("2023-01-15", "2024-03-01"), today);
        assert_eq!(months.first().unwrap(), "2023/01/");
        assert_eq!(months.last().unwrap(), "2024/03/");
        assert_eq!(months.len(), 15);
        let clamped = date_prefixes(window("2001-01-01", "2024-12-30"), today);
        assert_eq!(clamped.first().unwrap(), "2013/11/");
        assert_eq!(clamped.last().unwrap(), "2024/12/");
        assert!(date_prefixes(window("2026-01-01", "2026-02-01"), today).is_empty());
    }
}
