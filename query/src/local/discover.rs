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

use connect_audit_core::objects::{ObjectLedger, file_delivery_time, is_log_file_name};
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
    /// The store's tag of the object as listed (S3's `ETag`), for the ledger.
    pub(super) tag: Option<String>,
}

impl TrailFile {
    /// The segments of its key, for sorting as a walk does (by path component).
    fn key_segments(&self) -> std::str::Split<'_, char> {
        self.key.as_deref().unwrap_or_default().split('/')
    }
}

/// Which files a scan reads.
#[derive(Debug, Clone, Copy)]
pub(super) enum Selection<'a> {
    /// Those whose delivery date the window may hold (with a day of slack each side).
    Window(Window),
    /// Those the ledger has not seen, delivered before `until` (see
    /// [`connect_audit_core::objects`]).
    New {
        ledger: &'a ObjectLedger,
        until: Timestamp,
    },
}

/// The trail files of the selection under `store`, in path order: the store's listing, then
/// [`select`]. What a local walk cannot read goes to `sink` as bad input and into the summary.
pub(super) async fn find_files(
    store: &Store,
    selection: Selection<'_>,
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
        let (objects, folders) = list_layout(store, selection).await?;
        summary.folders_listed = folders;
        objects
    };
    let files = select(store, objects, selection, summary);
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
    selection: Selection<'_>,
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
        match selection {
            Selection::Window(window) => {
                if delivery_date(&path).is_some_and(|d| !window.may_hold_delivery_date(d)) {
                    summary.files_pruned += 1;
                    continue;
                }
            }
            Selection::New { ledger, until } => {
                if !ledger.is_new(&object.key) {
                    summary.files_already_read += 1;
                    continue;
                }
                if file_delivery_time(name).is_some_and(|t| t >= until) {
                    summary.files_pruned += 1;
                    continue;
                }
            }
        }
        files.push(TrailFile {
            path,
            key: Some(object.key),
            bytes: object.size,
            tag: object.tag,
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
    /// A prefix whose objects are listed recursively, those after a key only when one is
    /// given.
    Objects(String, Option<String>),
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
        _ => Step::Objects(here, None),
    })
}

/// The first steps for a root above `AWSLogs` (a bucket root or a key prefix of the trail):
/// `AWSLogs/` if it is there, else every object under the root, pruned by the date in its key.
async fn first_steps(store: &Store) -> Result<Vec<Step>, Error> {
    let dirs = store.list_dirs("").await?;
    Ok(if dirs.iter().any(|d| d == "AWSLogs/") {
        vec![Step::Accounts("AWSLogs/".into())]
    } else {
        vec![Step::Objects(String::new(), None)]
    })
}

/// Lists what one step holds: further steps, or objects.
async fn expand(
    store: &Store,
    dates: &Dates<'_>,
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
        Step::Region(base) => match dates {
            Dates::Prefixes(dates) => dates
                .iter()
                .map(|date| Step::Objects(format!("{base}{date}"), None))
                .collect(),
            Dates::New { ledger, now } => ledger
                .listings(&base, *now)
                .into_iter()
                .map(|l| Step::Objects(l.prefix, l.start_after))
                .collect(),
        },
        Step::Objects(prefix, after) => {
            return Ok((
                Vec::new(),
                store.list_after(&prefix, after.as_deref()).await?,
            ));
        }
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

/// What a region folder's listings are.
enum Dates<'a> {
    /// These date prefixes.
    Prefixes(Vec<String>),
    /// Those the ledger plans, up to `now` (see [`ObjectLedger::listings`]).
    New {
        ledger: &'a ObjectLedger,
        now: Timestamp,
    },
}

/// Lists the trail objects of the selection under an S3 store by its layout ([`Step`]s, then
/// the date prefixes of the window, or the ledger's listings), [`LIST_CONCURRENCY`] listings
/// at a time; a listing that fails stops the scan (the trail cannot be read as a whole).
async fn list_layout(
    store: &Store,
    selection: Selection<'_>,
) -> Result<(Vec<ObjectInfo>, Vec<String>), Error> {
    let now = jiff::Timestamp::now();
    let dates = match selection {
        Selection::Window(window) => Dates::Prefixes(date_prefixes(
            window,
            now.to_zoned_datetime(TimeZone::UTC).date(),
        )),
        Selection::New { ledger, until } => Dates::New {
            ledger,
            now: now.min(until),
        },
    };
    let root_prefix = match store.location() {
        connect_audit_core::Location::S3 { prefix, .. } => prefix,
        connect_audit_core::Location::Local(_) => String::new(),
    };
    let mut steps = match start_step(&root_prefix) {
        Some(step) => vec![step],
        None => first_steps(store).await?,
    };
    let mut objects = Vec::new();
    let mut folders = Vec::new();
    while !steps.is_empty() {
        if matches!(dates, Dates::New { .. }) {
            folders.extend(steps.iter().filter_map(|step| match step {
                Step::Region(base) => Some(base.clone()),
                _ => None,
            }));
        }
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
    Ok((objects, folders))
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
            r#"Some(Objects("", None))"#
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
