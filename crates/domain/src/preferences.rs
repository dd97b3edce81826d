//! A user's notification preferences (`user_preferences`, docs/PREFERENCES.md), parsed once:
//! quiet hours, a locale, the channels a reminder marked `default` goes by.
//!
//! Quiet hours are a local start and end time and the days of the week they apply to. A
//! window belongs to the day it starts on: `22:00`–`07:00` on `mon,tue,wed,thu,fri` covers
//! Monday evening to Tuesday morning, ..., Friday evening to Saturday morning. A reminder due
//! inside a window is put off to the window's end ([`QuietHours::deferral`]), computed in the
//! user's zone: a window edge at a local time that does not exist (a spring-forward gap)
//! falls on the next instant that exists, the end of the gap; one that exists twice (a
//! fall-back overlap) on the first of them, as RFC 5545 reads such times.
//!
//! Each field is parsed on its own, so that one malformed field (written past the database's
//! checks, e.g. by hand on SQLite) loses only itself: the caller falls back for that field
//! and says so in its log (docs/PREFERENCES.md, "When a preference cannot be read").

use crate::recurrence::Zone;
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc, Weekday};

/// Why a stored preference cannot be used: the column and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("user_preferences.{column}: {problem}")]
pub struct PreferenceError {
    pub column: &'static str,
    pub problem: String,
}

impl PreferenceError {
    fn new(column: &'static str, problem: impl Into<String>) -> Self {
        Self {
            column,
            problem: problem.into(),
        }
    }
}

/// The days of the week a quiet window starts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Days(u8);

impl Days {
    pub const EVERY: Days = Days(0x7f);
    const NAMES: [(&'static str, Weekday); 7] = [
        ("mon", Weekday::Mon),
        ("tue", Weekday::Tue),
        ("wed", Weekday::Wed),
        ("thu", Weekday::Thu),
        ("fri", Weekday::Fri),
        ("sat", Weekday::Sat),
        ("sun", Weekday::Sun),
    ];

    /// A comma-separated list of `mon`..`sun` (at least one; case and spaces ignored;
    /// repeats allowed).
    pub fn parse(text: &str) -> Result<Self, PreferenceError> {
        let mut days = 0u8;
        for name in text.split(',').map(|n| n.trim().to_ascii_lowercase()) {
            let Some((_, day)) = Self::NAMES.iter().find(|(n, _)| *n == name) else {
                return Err(PreferenceError::new(
                    "quiet_days",
                    format!("{name:?} is not a day (mon, tue, wed, thu, fri, sat, sun)"),
                ));
            };
            days |= 1 << day.num_days_from_monday();
        }
        Ok(Self(days))
    }

    pub fn contains(self, day: Weekday) -> bool {
        self.0 & (1 << day.num_days_from_monday()) != 0
    }
}

/// A user's quiet hours: local `start` to `end` (crossing midnight when `end <= start`... a
/// window from a time to the same time is refused) on the days it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
    pub days: Days,
}

/// `HH:MM` or `HH:MM:SS`, 24-hour.
pub(crate) fn local_time(column: &'static str, text: &str) -> Result<NaiveTime, PreferenceError> {
    NaiveTime::parse_from_str(text, "%H:%M:%S")
        .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M"))
        .ok()
        .filter(|_| matches!(text.len(), 5 | 8))
        .ok_or_else(|| PreferenceError::new(column, format!("{text:?} is not a time (HH:MM or HH:MM:SS)")))
}

impl QuietHours {
    /// The stored columns: both times or neither (`None`: no quiet hours); `days` defaults
    /// to every day.
    pub fn parse(
        start: Option<&str>,
        end: Option<&str>,
        days: Option<&str>,
    ) -> Result<Option<Self>, PreferenceError> {
        let (start, end) = match (start, end) {
            (None, None) => return Ok(None),
            (Some(start), Some(end)) => (local_time("quiet_start", start)?, local_time("quiet_end", end)?),
            (Some(_), None) => {
                return Err(PreferenceError::new(
                    "quiet_end",
                    "is missing (quiet_start is set)",
                ))
            }
            (None, Some(_)) => {
                return Err(PreferenceError::new(
                    "quiet_start",
                    "is missing (quiet_end is set)",
                ))
            }
        };
        if start == end {
            return Err(PreferenceError::new(
                "quiet_end",
                "equals quiet_start (an empty window)",
            ));
        }
        let days = days.map(Days::parse).transpose()?.unwrap_or(Days::EVERY);
        Ok(Some(Self { start, end, days }))
    }

    /// When a reminder due at `at` (the later of its time and now) may go out, if `at` lies
    /// inside one of these windows in `zone`: the end of that window. `None`: outside.
    pub fn deferral(&self, zone: &Zone, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let today = zone.wall_time(at).date();
        // A window that started yesterday may still be open; one that starts today may have.
        [today - Duration::days(1), today]
            .into_iter()
            .filter(|day| self.days.contains(day.weekday()))
            .map(|day| self.window(zone, day))
            .find(|(start, end)| *start <= at && at < *end)
            .map(|(_, end)| end)
    }

    /// The window starting on local `day`, as instants `[start, end)`.
    fn window(&self, zone: &Zone, day: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
        let end_day = if self.end <= self.start {
            day + Duration::days(1)
        } else {
            day
        };
        (
            zone.first_at_or_after(day.and_time(self.start)),
            zone.first_at_or_after(end_day.and_time(self.end)),
        )
    }
}

/// A BCP 47 language tag (`de-DE`, `en`, `pt-BR`), checked and put in canonical case.
pub fn locale(text: &str) -> Result<String, PreferenceError> {
    let parsed = icu_locale_core::Locale::try_from_str(text.trim()).map_err(|e| {
        PreferenceError::new("locale", format!("{text:?} is not a BCP 47 language tag ({e})"))
    })?;
    Ok(parsed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(name: &str) -> Zone {
        Zone::parse(name).unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn quiet(start: &str, end: &str, days: &str) -> QuietHours {
        QuietHours::parse(Some(start), Some(end), Some(days))
            .unwrap()
            .unwrap()
    }

    #[test]
    fn a_window_across_midnight_belongs_to_the_day_it_starts() {
        let berlin = zone("Europe/Berlin");
        let weeknights = quiet("22:00", "07:00", "mon,tue,wed,thu,fri");
        // Friday 2026-12-04 23:30 Berlin (22:30 UTC): in Friday's window, until Saturday 07:00.
        assert_eq!(
            weeknights.deferral(&berlin, at("2026-12-04T22:30:00Z")),
            Some(at("2026-12-05T06:00:00Z"))
        );
        // Saturday 23:30: Saturday has no window; Sunday 03:00 neither.
        assert_eq!(weeknights.deferral(&berlin, at("2026-12-05T22:30:00Z")), None);
        assert_eq!(weeknights.deferral(&berlin, at("2026-12-06T02:00:00Z")), None);
        // Tuesday 06:59:59 is in Monday's window; 07:00 is not.
        assert!(weeknights.deferral(&berlin, at("2026-12-08T05:59:59Z")).is_some());
        assert_eq!(weeknights.deferral(&berlin, at("2026-12-08T06:00:00Z")), None);
    }

    #[test]
    fn an_end_in_a_gap_is_the_gap_s_end_and_an_end_in_an_overlap_its_first_instant() {
        let berlin = zone("Europe/Berlin");
        // 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00 UTC); 02:30 does not exist.
        let w = quiet("23:00", "02:30", "sat");
        assert_eq!(
            w.deferral(&berlin, at("2026-03-28T23:30:00Z")),
            Some(at("2026-03-29T01:00:00Z"))
        );
        // 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 exists twice, the first
        // is 00:30 UTC.
        assert_eq!(
            w.deferral(&berlin, at("2026-10-24T23:30:00Z")),
            Some(at("2026-10-25T00:30:00Z"))
        );
        assert_eq!(w.deferral(&berlin, at("2026-10-25T00:30:00Z")), None);
    }

    #[test]
    fn malformed_fields_say_which() {
        for (start, end, days, column) in [
            (Some("25:00"), Some("07:00"), None, "quiet_start"),
            (Some("7:00"), Some("07:00"), None, "quiet_start"),
            (Some("22:00"), None, None, "quiet_end"),
            (Some("22:00"), Some("22:00"), None, "quiet_end"),
            (Some("22:00"), Some("07:00"), Some("mon,funday"), "quiet_days"),
            (Some("22:00"), Some("07:00"), Some(""), "quiet_days"),
        ] {
            assert_eq!(
                QuietHours::parse(start, end, days).unwrap_err().column,
                column,
                "{start:?} {end:?} {days:?}"
            );
        }
        assert_eq!(QuietHours::parse(None, None, Some("mon")), Ok(None));
        assert_eq!(locale("de-de").unwrap(), "de-DE");
        assert!(locale("not a locale").is_err());
    }
}
