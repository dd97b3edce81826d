//! Recurrence: which instants a recurring task fires at (`../shared/recurrence/SPEC.md`).
//!
//! The rule is expanded in *local wall-clock time* by the `rrule` crate, fed a floating
//! DTSTART (we hand it the wall time labelled as UTC, which has no transitions, so the crate
//! never applies DST logic of its own). Each wall time is then turned into an instant by
//! RFC 5545 §3.3.5: a time that occurs twice means the first instant, a time that does not
//! exist is read with the UTC offset in effect before the gap. UNTIL is taken out of the rule
//! before expansion and compared with the resolved instant, because RFC 5545 defines it in UTC.

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use rrule::{RRule, RRuleSet, Unvalidated};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// Why a rule, zone or start cannot describe a recurrence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecurrenceError {
    #[error("invalid rule: {0}")]
    Rule(String),
    #[error("unknown time zone {0:?} (use an IANA name such as Europe/Berlin)")]
    Zone(String),
    #[error("invalid dtstart {0:?}: write a local date-time without offset, like 2026-01-31T09:00[:00]")]
    DtStart(String),
    #[error("the rule matches too rarely: more than {0} wall-clock instances examined")]
    TooSparse(u64),
}

/// The simple patterns of the old system; each is stored as an RRULE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl FromStr for Pattern {
    type Err = RecurrenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "daily" => Ok(Self::Daily),
            "weekly" => Ok(Self::Weekly),
            "monthly" => Ok(Self::Monthly),
            "yearly" => Ok(Self::Yearly),
            _ => Err(RecurrenceError::Rule(format!(
                "unknown pattern {s:?} (daily, weekly, monthly or yearly)"
            ))),
        }
    }
}

impl Pattern {
    /// The RRULE a pattern stands for: weekday, month day and month come from DTSTART.
    pub fn to_rrule(self, interval: u32) -> Result<String, RecurrenceError> {
        if interval == 0 {
            return Err(RecurrenceError::Rule("interval must be at least 1".into()));
        }
        let freq = match self {
            Self::Daily => "DAILY",
            Self::Weekly => "WEEKLY",
            Self::Monthly => "MONTHLY",
            Self::Yearly => "YEARLY",
        };
        Ok(format!("FREQ={freq};INTERVAL={interval}"))
    }
}

/// What to do with occurrences missed while nothing ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CatchUp {
    /// One instance, for the latest missed occurrence (the default).
    #[default]
    Latest,
    /// One instance per missed occurrence, oldest first.
    All,
}

impl FromStr for CatchUp {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "latest" => Ok(Self::Latest),
            "all" => Ok(Self::All),
            other => Err(format!("unknown catch-up policy {other:?} (latest or all)")),
        }
    }
}

impl CatchUp {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Latest => "latest",
            Self::All => "all",
        }
    }
}

impl fmt::Display for CatchUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parts RFC 5545 allows in a RECUR value that this engine accepts.
const KNOWN_PARTS: &[&str] = &[
    "FREQ",
    "INTERVAL",
    "COUNT",
    "UNTIL",
    "BYSECOND",
    "BYMINUTE",
    "BYHOUR",
    "BYDAY",
    "BYMONTHDAY",
    "BYYEARDAY",
    "BYWEEKNO",
    "BYMONTH",
    "BYSETPOS",
    "WKST",
];

/// The search gives up after this many wall-clock instances (SPEC.md §7).
const MAX_EXAMINED: u64 = 5_000_000;

/// A parsed, validated recurrence: rule, local DTSTART and zone.
#[derive(Clone)]
pub struct Schedule {
    rule_text: String,
    set: RRuleSet,
    until: Option<DateTime<Utc>>,
    dtstart: NaiveDateTime,
    tz: Tz,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schedule")
            .field("rule", &self.rule_text)
            .field("dtstart", &self.dtstart)
            .field("tz", &self.tz.name())
            .finish()
    }
}

/// Parses a local DTSTART: `YYYY-MM-DDTHH:MM[:SS]`, no offset.
pub fn parse_local(s: &str) -> Result<NaiveDateTime, RecurrenceError> {
    let s = s.trim();
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M"))
        .map_err(|_| RecurrenceError::DtStart(s.to_owned()))
}

/// Parses an IANA zone name.
pub fn parse_zone(s: &str) -> Result<Tz, RecurrenceError> {
    s.parse::<Tz>().map_err(|_| RecurrenceError::Zone(s.to_owned()))
}

impl Schedule {
    /// Parses `rule` (an RFC 5545 RECUR value, optional `RRULE:` prefix) for a task starting
    /// at local `dtstart` in zone `tz`.
    pub fn parse(rule: &str, dtstart: NaiveDateTime, tz: &str) -> Result<Self, RecurrenceError> {
        let tz = parse_zone(tz)?;
        let (normalized, without_until, until) = normalize(rule)?;
        let parsed: RRule<Unvalidated> = without_until
            .parse()
            .map_err(|e: rrule::RRuleError| RecurrenceError::Rule(e.to_string()))?;
        let start = floating(dtstart);
        let validated = parsed
            .validate(start)
            .map_err(|e| RecurrenceError::Rule(e.to_string()))?;
        let set = RRuleSet::new(start).rrule(validated).limit();
        let schedule = Self {
            rule_text: normalized,
            set,
            until,
            dtstart,
            tz,
        };
        // A rule that can never fire is refused where it enters, not discovered later.
        if schedule.wall_times().next().is_none() {
            return Err(RecurrenceError::Rule(
                "the rule produces no occurrence from this dtstart".into(),
            ));
        }
        Ok(schedule)
    }

    /// The RRULE text as stored (upper case, canonical part order kept from the input).
    pub fn rule(&self) -> &str {
        &self.rule_text
    }
    pub fn dtstart(&self) -> NaiveDateTime {
        self.dtstart
    }
    pub fn zone(&self) -> Tz {
        self.tz
    }

    /// DTSTART written back as stored: `YYYY-MM-DDTHH:MM:SS`.
    pub fn dtstart_text(&self) -> String {
        self.dtstart.format("%Y-%m-%dT%H:%M:%S").to_string()
    }

    /// Occurrences strictly after `after` (all from the first when `None`), ascending,
    /// distinct, ending with the rule.
    pub fn occurrences(&self, after: Option<DateTime<Utc>>) -> Occurrences<'_> {
        Occurrences {
            schedule: self,
            walls: Box::new(self.wall_times()),
            pending: BTreeSet::new(),
            after,
            examined: 0,
            exhausted: false,
            failed: false,
        }
    }

    /// The first occurrence strictly after `after`; `None` when the rule has ended.
    pub fn next_after(&self, after: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, RecurrenceError> {
        self.occurrences(Some(after)).next().transpose()
    }

    /// The first occurrence of all (DTSTART resolved, when it matches the rule).
    pub fn first(&self) -> Result<Option<DateTime<Utc>>, RecurrenceError> {
        self.occurrences(None).next().transpose()
    }

    /// Whether `t` is one of the rule's instants.
    pub fn is_occurrence(&self, t: DateTime<Utc>) -> Result<bool, RecurrenceError> {
        Ok(self.next_after(t - Duration::microseconds(1))? == Some(t))
    }

    /// The latest occurrence at or before `now`, starting the search at `from` (an
    /// occurrence known to be due). Used by the `latest` catch-up policy.
    pub fn latest_due(
        &self,
        from: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, RecurrenceError> {
        let mut latest = from;
        for next in self.occurrences(Some(from)) {
            let next = next?;
            if next > now {
                break;
            }
            latest = next;
        }
        Ok(latest)
    }

    fn wall_times(&self) -> impl Iterator<Item = NaiveDateTime> + '_ {
        (&self.set).into_iter().map(|t| t.naive_utc())
    }
}

/// Iterator behind [`Schedule::occurrences`].
pub struct Occurrences<'a> {
    schedule: &'a Schedule,
    walls: Box<dyn Iterator<Item = NaiveDateTime> + 'a>,
    /// Resolved instants not yet safe to emit: a later wall time may still resolve earlier.
    pending: BTreeSet<DateTime<Utc>>,
    after: Option<DateTime<Utc>>,
    examined: u64,
    exhausted: bool,
    failed: bool,
}

/// A wall time resolves to at most 12 h after it read as UTC (offset -12:00) and at least
/// 14 h before (+14:00); a gap moves it forward by less than a day. An instant is safe to
/// emit once the wall times being generated are further ahead than this.
const SETTLE: i64 = 14 + 12 + 24 + 1;

impl Iterator for Occurrences<'_> {
    type Item = Result<DateTime<Utc>, RecurrenceError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            if let Some(&first) = self.pending.first() {
                if self.exhausted {
                    self.pending.pop_first();
                    return self.emit(first);
                }
            } else if self.exhausted {
                return None;
            }
            match self.walls.next() {
                None => self.exhausted = true,
                Some(wall) => {
                    self.examined += 1;
                    if self.examined > MAX_EXAMINED {
                        self.failed = true;
                        return Some(Err(RecurrenceError::TooSparse(MAX_EXAMINED)));
                    }
                    let instant = resolve(self.schedule.tz, wall);
                    if let Some(until) = self.schedule.until {
                        // Instants only grow past UNTIL by a bounded amount; once walls are
                        // far beyond it, nothing further can qualify.
                        if wall.and_utc() - Duration::hours(SETTLE) > until {
                            self.exhausted = true;
                        }
                    }
                    if self.after.is_none_or(|a| instant > a)
                        && self.schedule.until.is_none_or(|u| instant <= u)
                    {
                        self.pending.insert(instant);
                    }
                    if let Some(&first) = self.pending.first() {
                        if wall.and_utc() - Duration::hours(SETTLE) > first {
                            self.pending.pop_first();
                            return self.emit(first);
                        }
                    }
                }
            }
        }
    }
}

impl Occurrences<'_> {
    fn emit(&mut self, t: DateTime<Utc>) -> Option<Result<DateTime<Utc>, RecurrenceError>> {
        Some(Ok(t))
    }
}

/// Labels a wall time as UTC so the `rrule` crate expands it without any DST logic.
fn floating(wall: NaiveDateTime) -> DateTime<rrule::Tz> {
    rrule::Tz::UTC.from_utc_datetime(&wall)
}

/// RFC 5545 §3.3.5: the instant a local wall time in `tz` stands for.
pub fn resolve(tz: Tz, wall: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&wall) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(a, b) => a.with_timezone(&Utc).min(b.with_timezone(&Utc)),
        LocalResult::None => {
            // The transition lies within (wall - 14h, wall + 12h] read as UTC, because
            // offsets are between -12:00 and +14:00, so the offset in effect 14 hours
            // before the wall time (read as UTC) is the offset before the gap.
            let before = tz
                .offset_from_utc_datetime(&(wall - Duration::hours(14)))
                .fix()
                .local_minus_utc();
            (wall - Duration::seconds(i64::from(before))).and_utc()
        }
    }
}

/// Upper-cases the rule, checks its parts and splits UNTIL off.
/// Returns (stored text, text given to the expander, UNTIL).
fn normalize(rule: &str) -> Result<(String, String, Option<DateTime<Utc>>), RecurrenceError> {
    let mut text = rule.trim().to_ascii_uppercase();
    if let Some(rest) = text.strip_prefix("RRULE:") {
        text = rest.to_owned();
    }
    if text.is_empty() {
        return Err(RecurrenceError::Rule("the rule is empty".into()));
    }
    let mut seen = Vec::new();
    let mut kept = Vec::new();
    let mut until = None;
    let mut has_count = false;
    for part in text.split(';').filter(|p| !p.is_empty()) {
        let (name, value) = part
            .split_once('=')
            .ok_or_else(|| RecurrenceError::Rule(format!("part {part:?} has no value")))?;
        if !KNOWN_PARTS.contains(&name) {
            return Err(RecurrenceError::Rule(format!("unknown part {name:?}")));
        }
        if seen.contains(&name) {
            return Err(RecurrenceError::Rule(format!("part {name} is repeated")));
        }
        seen.push(name);
        match name {
            "UNTIL" => until = Some(parse_until(value)?),
            "COUNT" => {
                has_count = true;
                kept.push(part);
            }
            _ => kept.push(part),
        }
    }
    if !seen.contains(&"FREQ") {
        return Err(RecurrenceError::Rule("FREQ is required".into()));
    }
    if has_count && until.is_some() {
        return Err(RecurrenceError::Rule(
            "COUNT and UNTIL must not occur together".into(),
        ));
    }
    let stored = text
        .split(';')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(";");
    Ok((stored, kept.join(";"), until))
}

/// UNTIL must be a UTC date-time (`YYYYMMDDTHHMMSSZ`) because DTSTART has a zone.
fn parse_until(value: &str) -> Result<DateTime<Utc>, RecurrenceError> {
    let digits = value.strip_suffix('Z').ok_or_else(|| {
        RecurrenceError::Rule(format!(
            "UNTIL {value:?} must be a UTC date-time like 20261231T235959Z"
        ))
    })?;
    NaiveDateTime::parse_from_str(digits, "%Y%m%dT%H%M%S")
        .map(|t| t.and_utc())
        .map_err(|_| {
            RecurrenceError::Rule(format!(
                "UNTIL {value:?} must be a UTC date-time like 20261231T235959Z"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{parse_instant, rfc3339};

    fn list(rule: &str, dtstart: &str, tz: &str, after: Option<&str>, n: usize) -> Vec<String> {
        let s = Schedule::parse(rule, parse_local(dtstart).unwrap(), tz).unwrap();
        s.occurrences(after.map(|a| parse_instant(a).unwrap()))
            .take(n)
            .map(|t| rfc3339(t.unwrap()))
            .collect()
    }

    #[test]
    fn daily_in_a_spring_gap_uses_the_offset_before() {
        assert_eq!(
            list("FREQ=DAILY", "2026-03-06T02:30", "America/New_York", None, 5),
            [
                "2026-03-06T07:30:00Z",
                "2026-03-07T07:30:00Z",
                "2026-03-08T07:30:00Z",
                "2026-03-09T06:30:00Z",
                "2026-03-10T06:30:00Z"
            ]
        );
    }

    #[test]
    fn repeated_time_takes_the_first_instant() {
        assert_eq!(
            list(
                "FREQ=DAILY;COUNT=1",
                "2026-11-01T01:30",
                "America/New_York",
                None,
                5
            ),
            ["2026-11-01T05:30:00Z"]
        );
        // Dublin's winter time is modelled as negative DST: only offsets matter.
        assert_eq!(
            list(
                "FREQ=YEARLY;COUNT=1",
                "2026-10-25T01:30",
                "Europe/Dublin",
                None,
                1
            ),
            ["2026-10-25T00:30:00Z"]
        );
        assert_eq!(
            list(
                "FREQ=YEARLY;COUNT=1",
                "2026-03-29T01:30",
                "Europe/Dublin",
                None,
                1
            ),
            ["2026-03-29T01:30:00Z"]
        );
    }

    #[test]
    fn hourly_across_the_gap_is_merged_and_sorted() {
        let got = list(
            "FREQ=MINUTELY;INTERVAL=30",
            "2026-03-08T01:00",
            "America/New_York",
            None,
            5,
        );
        assert_eq!(
            got,
            [
                "2026-03-08T06:00:00Z",
                "2026-03-08T06:30:00Z",
                "2026-03-08T07:00:00Z",
                "2026-03-08T07:30:00Z",
                "2026-03-08T08:00:00Z"
            ]
        );
    }

    #[test]
    fn until_is_inclusive_and_utc_only() {
        let got = list(
            "FREQ=DAILY;UNTIL=20260103T090000Z",
            "2026-01-01T09:00",
            "UTC",
            None,
            10,
        );
        assert_eq!(got.len(), 3);
        let err = Schedule::parse(
            "FREQ=DAILY;UNTIL=20260103T090000",
            parse_local("2026-01-01T09:00").unwrap(),
            "UTC",
        )
        .unwrap_err();
        assert!(err.to_string().contains("UTC"), "{err}");
    }

    #[test]
    fn monthly_from_the_31st_skips_short_months() {
        let got = list("FREQ=MONTHLY", "2026-01-31T09:00", "Europe/Berlin", None, 3);
        assert_eq!(
            got,
            [
                "2026-01-31T08:00:00Z",
                "2026-03-31T07:00:00Z",
                "2026-05-31T07:00:00Z"
            ]
        );
    }

    #[test]
    fn bad_input_is_rejected_with_a_reason() {
        let start = parse_local("2026-01-01T09:00").unwrap();
        for (rule, tz, needle) in [
            ("FREQ=DAILY", "Mars/Olympus", "time zone"),
            ("INTERVAL=2", "UTC", "FREQ"),
            ("FREQ=DAILY;FREQ=WEEKLY", "UTC", "repeated"),
            (
                "FREQ=DAILY;COUNT=2;UNTIL=20260105T000000Z",
                "UTC",
                "COUNT and UNTIL",
            ),
            ("FREQ=DAILY;BYFOO=1", "UTC", "unknown part"),
            ("FREQ=SOMETIMES", "UTC", "invalid rule"),
            ("", "UTC", "empty"),
        ] {
            let err = Schedule::parse(rule, start, tz).unwrap_err().to_string();
            assert!(err.contains(needle), "{rule}: {err}");
        }
        assert!(parse_local("2026-01-01T09:00:00+01:00").is_err());
    }

    #[test]
    fn catch_up_latest_finds_the_last_due_occurrence() {
        let s = Schedule::parse("FREQ=DAILY", parse_local("2026-01-01T09:00").unwrap(), "UTC").unwrap();
        let from = parse_instant("2026-01-01T09:00:00Z").unwrap();
        let now = parse_instant("2026-01-04T10:00:00Z").unwrap();
        assert_eq!(rfc3339(s.latest_due(from, now).unwrap()), "2026-01-04T09:00:00Z");
        assert!(s.is_occurrence(from).unwrap());
        assert!(!s.is_occurrence(from + Duration::hours(1)).unwrap());
    }
}
