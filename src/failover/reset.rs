//! When an account's limit resets, read from the message Claude Code shows for it (pure).
//!
//! Claude Code 2.1 words a subscriber's limit as "You've hit your session limit · resets
//! 5:05am (UTC)", with the date when the reset is not today ("resets Dec 5, 4:08am
//! (Europe/Paris)"), minutes left out on the hour ("resets 5am (UTC)"), and the zone it
//! formatted in (the user's). Fast mode says "resets in 2h 5m". An API-key rate limit says
//! no time at all ("Please try again later"): then there is nothing to read and the caller
//! uses its default cooldown.

use std::sync::LazyLock;

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, ToSpan, ZonedDateTime};
use regex::Regex;

static AT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\bresets\s+(?:at\s+)?(?:(?P<mon>[a-z]{3})[a-z]*\.?\s+(?P<day>\d{1,2}),?\s+(?:at\s+)?)?(?P<h>\d{1,2})(?::(?P<m>\d{2}))?\s*(?P<ampm>am|pm)(?:\s*\((?P<tz>[^)]+)\))?",
    )
    .expect("valid regex")
});

static IN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\bresets\s+in\s+(?:(?P<d>\d+)\s*d)?\s*(?:(?P<h>\d+)\s*h)?\s*(?:(?P<m>\d+)\s*m)?",
    )
    .expect("valid regex")
});

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// The reset time named in `text`, judged from `at` (when the message was written), in
/// `local` when the message names no zone (or one this machine does not know). None when the
/// text names no reset time.
pub fn parse(text: &str, at: Timestamp, local: &TimeZone) -> Option<Timestamp> {
    if let Some(c) = IN.captures(text) {
        let n = |k: &str| c.name(k).and_then(|m| m.as_str().parse::<i64>().ok());
        let (d, h, m) = (n("d"), n("h"), n("m"));
        if d.is_some() || h.is_some() || m.is_some() {
            let span: Span = d
                .unwrap_or(0)
                .days()
                .hours(h.unwrap_or(0))
                .minutes(m.unwrap_or(0));
            return at
                .to_zoned_datetime(TimeZone::UTC)
                .checked_add(span)
                .ok()
                .map(|z| z.timestamp());
        }
    }
    let c = AT.captures(text)?;
    let hour12: i8 = c["h"].parse().ok().filter(|h| (1..=12).contains(h))?;
    let minute: i8 = match c.name("m") {
        Some(m) => m.as_str().parse().ok().filter(|m| (0..60).contains(m))?,
        None => 0,
    };
    let pm = c["ampm"].eq_ignore_ascii_case("pm");
    let hour = (hour12 % 12) + if pm { 12 } else { 0 };
    let tz = c
        .name("tz")
        .and_then(|z| TimeZone::get(z.as_str().trim()).ok())
        .unwrap_or_else(|| local.clone());
    let time = Time::new(hour, minute, 0, 0).ok()?;
    let now = at.to_zoned_datetime(tz.clone());
    match (c.name("mon"), c.name("day")) {
        (Some(mon), Some(day)) => {
            let mon = mon.as_str().to_ascii_lowercase();
            let month = MONTHS.iter().position(|m| *m == mon)? as i8 + 1;
            let day: i8 = day.as_str().parse().ok()?;
            // The year that puts the date nearest ahead of `at` (a reset is never long past).
            let year = now.year();
            [year, year + 1]
                .into_iter()
                .filter_map(|y| Date::new(y, month, day).ok())
                .filter_map(|d| d.to_datetime(time).to_zoned_datetime(tz.clone()).ok())
                .find(|z| {
                    z.timestamp()
                        >= at
                            .checked_sub(jiff::SignedDuration::from_hours(24))
                            .unwrap_or(at)
                })
                .map(|z| z.timestamp())
        }
        (None, None) => next_at(&now, time, &tz),
        _ => None,
    }
}

/// The first `time` of day in `tz` that is not before `now` (less a minute of rounding: the
/// message shows minutes, so a reset "at 5:05am" written at 5:05:30 is that one, not
/// tomorrow's).
fn next_at(now: &ZonedDateTime, time: Time, tz: &TimeZone) -> Option<Timestamp> {
    let floor = now.timestamp().checked_sub(1.minute()).ok()?;
    let today = now
        .date()
        .to_datetime(time)
        .to_zoned_datetime(tz.clone())
        .ok()?;
    if today.timestamp() >= floor {
        return Some(today.timestamp());
    }
    let tomorrow = now.date().tomorrow().ok()?.to_datetime(time);
    tomorrow
        .to_zoned_datetime(tz.clone())
        .ok()
        .map(|z| z.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn p(text: &str, at: &str) -> Option<Timestamp> {
        parse(text, ts(at), &TimeZone::UTC)
    }

    #[test]
    fn time_of_day_today_or_tomorrow() {
        let m = "You've hit your session limit · resets 5:05am (UTC)";
        assert_eq!(
            p(m, "2026-12-02T03:05:00Z"),
            Some(ts("2026-12-02T05:05:00Z"))
        );
        assert_eq!(
            p(m, "2026-12-02T06:00:00Z"),
            Some(ts("2026-12-03T05:05:00Z"))
        );
        // Written within the minute it names: that one.
        assert_eq!(
            p(m, "2026-12-02T05:05:40Z"),
            Some(ts("2026-12-02T05:05:00Z"))
        );
        let on_the_hour = "You've hit your session limit · resets 5pm (UTC)";
        assert_eq!(
            p(on_the_hour, "2026-12-02T13:00:00Z"),
            Some(ts("2026-12-02T17:00:00Z"))
        );
        let noon = "resets 12am (UTC)";
        assert_eq!(
            p(noon, "2026-12-02T13:00:00Z"),
            Some(ts("2026-12-03T00:00:00Z"))
        );
        assert_eq!(
            p("resets 12pm (UTC)", "2026-12-02T10:00:00Z"),
            Some(ts("2026-12-02T12:00:00Z"))
        );
    }

    #[test]
    fn named_zone_and_date() {
        let m = "You've hit your session limit · resets Dec 5, 4:08am (Europe/Paris)";
        assert_eq!(
            p(m, "2026-12-02T03:07:18Z"),
            Some(ts("2026-12-05T03:08:00Z"))
        );
        let weekly = "You've hit your weekly limit · resets Jan 3, 9am (America/New_York)";
        assert_eq!(
            p(weekly, "2026-12-30T10:00:00Z"),
            Some(ts("2027-01-03T14:00:00Z"))
        );
        // Summer time is the zone's, not a fixed offset.
        let summer = "resets Jul 1, 9am (Europe/Paris)";
        assert_eq!(
            p(summer, "2026-06-30T10:00:00Z"),
            Some(ts("2026-07-01T07:00:00Z"))
        );
    }

    #[test]
    fn unknown_zone_uses_the_local_one() {
        let m = "resets 5:05am (Mars/Olympus)";
        let paris = TimeZone::get("Europe/Paris").unwrap();
        assert_eq!(
            parse(m, ts("2026-12-02T01:00:00Z"), &paris),
            Some(ts("2026-12-02T04:05:00Z"))
        );
        assert_eq!(
            parse("resets 5:05am", ts("2026-12-02T01:00:00Z"), &paris),
            Some(ts("2026-12-02T04:05:00Z"))
        );
    }

    #[test]
    fn relative() {
        let m = "Fast limit reached and temporarily disabled · resets in 2h 5m";
        assert_eq!(
            p(m, "2026-12-02T03:00:00Z"),
            Some(ts("2026-12-02T05:05:00Z"))
        );
        assert_eq!(
            p("resets in 45m", "2026-12-02T03:00:00Z"),
            Some(ts("2026-12-02T03:45:00Z"))
        );
    }

    #[test]
    fn no_time_named() {
        let api = "API Error: Request rejected (429) · This request would exceed your account's rate limit. Please try again later.";
        assert_eq!(p(api, "2026-12-02T03:00:00Z"), None);
        assert_eq!(p("resets 13:05pm (UTC)", "2026-12-02T03:00:00Z"), None);
        assert_eq!(p("resets Foo 5, 4am (UTC)", "2026-12-02T03:00:00Z"), None);
        assert_eq!(p("resets Feb 30, 4am (UTC)", "2026-12-02T03:00:00Z"), None);
        assert_eq!(p("", "2026-12-02T03:00:00Z"), None);
    }
}
