//! The time window of a report: `since <= eventTime < until`, given as dates, RFC 3339 or
//! relative durations.

use jiff::civil::Date;
use jiff::{Timestamp, ToSpan, tz::TimeZone};

/// A half-open time window `[since, until)` in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First instant included.
    pub since: Timestamp,
    /// First instant excluded.
    pub until: Timestamp,
}

/// A time that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// Not a date, an RFC 3339 timestamp, `now`, or a relative duration.
    #[error(
        "`{0}` is not a time: use a date (2024-05-01), RFC 3339 (2024-05-01T10:00:00Z), `now`, or a duration back from now (90m, 12h, 7d, 2w)"
    )]
    Unreadable(String),
    /// `since` is not before `until`.
    #[error("the window is empty: since {since} is not before until {until}")]
    Empty {
        /// The start given.
        since: Timestamp,
        /// The end given.
        until: Timestamp,
    },
}

/// Reads a time: `2024-05-01` (midnight UTC), an RFC 3339 timestamp with offset, `now`, or a
/// duration back from `now` such as `90m`, `12h`, `7d`, `2w`.
pub fn parse_time(text: &str, now: Timestamp) -> Result<Timestamp, WindowError> {
    let t = text.trim();
    let bad = || WindowError::Unreadable(text.to_owned());
    if t.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    if let Ok(ts) = t.parse::<Timestamp>() {
        return Ok(ts);
    }
    if let Ok(date) = t.parse::<Date>() {
        return date
            .to_zoned_datetime(TimeZone::UTC)
            .map(|z| z.timestamp())
            .map_err(|_| bad());
    }
    let back = parse_duration(t).ok_or_else(bad)?;
    now.checked_sub(back).map_err(|_| bad())
}

/// Reads a duration of whole minutes, hours, days or weeks: `90m` (or `90min`), `12h`, `7d`,
/// `2w`. The one reader of the durations of config and flags.
pub fn parse_duration(text: &str) -> Option<jiff::SignedDuration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = t.split_at(split);
    let n: i64 = digits.parse().ok()?;
    let minutes = match unit {
        "m" | "min" => n,
        "h" => n.checked_mul(60)?,
        "d" => n.checked_mul(24 * 60)?,
        "w" => n.checked_mul(7 * 24 * 60)?,
        _ => return None,
    };
    Some(jiff::SignedDuration::from_secs(minutes.checked_mul(60)?))
}

impl Window {
    /// The default window: the last 7 days up to `now`.
    pub fn last_days(now: Timestamp, days: i64) -> Self {
        Self {
            since: now - (days * 24).hours(),
            until: now,
        }
    }

    /// Builds a window from optional texts; a missing `since` is 7 days before `until`, a
    /// missing `until` is `now`.
    pub fn parse(
        since: Option<&str>,
        until: Option<&str>,
        now: Timestamp,
    ) -> Result<Self, WindowError> {
        let until = until.map_or(Ok(now), |u| parse_time(u, now))?;
        let since = since.map_or(Ok(until - (7 * 24).hours()), |s| parse_time(s, now))?;
        if since >= until {
            return Err(WindowError::Empty { since, until });
        }
        Ok(Self { since, until })
    }

    /// Whether an event time falls in the window.
    pub fn contains(&self, t: Timestamp) -> bool {
        self.since <= t && t < self.until
    }

    /// Whether a trail file delivered on `date` (UTC, from its path) may hold events of the
    /// window. Files are dated by delivery, which follows the event, so one day of slack is
    /// kept on each side.
    pub fn may_hold_delivery_date(&self, date: Date) -> bool {
        let (first, last) = self.delivery_days();
        first <= date && date <= last
    }

    /// The first and last delivery dates (UTC) whose files may hold events of the window:
    /// a day of slack on each side.
    pub fn delivery_days(&self) -> (Date, Date) {
        let day = |t: Timestamp| t.to_zoned_datetime(TimeZone::UTC).date();
        (
            day(self.since).yesterday().unwrap_or(Date::MIN),
            day(self.until).tomorrow().unwrap_or(Date::MAX),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn reads_dates_timestamps_and_durations() {
        let now = ts("2024-05-08T12:00:00Z");
        assert_eq!(
            parse_time("2024-05-01", now).unwrap(),
            ts("2024-05-01T00:00:00Z")
        );
        assert_eq!(
            parse_time("2024-05-01T09:00:00+09:00", now).unwrap(),
            ts("2024-05-01T00:00:00Z")
        );
        assert_eq!(parse_time("7d", now).unwrap(), ts("2024-05-01T12:00:00Z"));
        assert_eq!(parse_time("12h", now).unwrap(), ts("2024-05-08T00:00:00Z"));
        assert_eq!(parse_time("30m", now).unwrap(), ts("2024-05-08T11:30:00Z"));
        assert_eq!(parse_time("1w", now).unwrap(), ts("2024-05-01T12:00:00Z"));
        assert_eq!(parse_time("now", now).unwrap(), now);
        assert!(parse_time("7x", now).is_err());
        assert!(parse_time("yesterday", now).is_err());
        assert!(parse_time("d", now).is_err());
    }

    #[test]
    fn window_is_half_open_and_defaults_to_a_week() {
        let now = ts("2024-05-08T12:00:00Z");
        let w = Window::parse(Some("2024-05-01"), Some("2024-05-08"), now).unwrap();
        assert!(w.contains(ts("2024-05-01T00:00:00Z")));
        assert!(!w.contains(ts("2024-05-08T00:00:00Z")));
        assert!(w.contains(ts("2024-05-07T23:59:59.999Z")));
        let d = Window::parse(None, None, now).unwrap();
        assert_eq!(d, Window::last_days(now, 7));
        assert!(matches!(
            Window::parse(Some("2024-05-08"), Some("2024-05-01"), now),
            Err(WindowError::Empty { .. })
        ));
    }

    #[test]
    fn delivery_dates_have_a_day_of_slack() {
        let now = ts("2024-05-08T12:00:00Z");
        let w = Window::parse(Some("2024-05-01"), Some("2024-05-08"), now).unwrap();
        let d = |s: &str| s.parse::<Date>().unwrap();
        assert!(w.may_hold_delivery_date(d("2024-04-30")));
        assert!(w.may_hold_delivery_date(d("2024-05-09")));
        assert!(!w.may_hold_delivery_date(d("2024-04-29")));
        assert!(!w.may_hold_delivery_date(d("2024-05-10")));
    }
}
