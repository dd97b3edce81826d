//! Recurrence: which instants a recurring task fires at (`../shared/recurrence/SPEC.md`,
//! decisions and examples in `docs/RECURRENCE.md`).
//!
//! * `rule` (rule.rs) parses the RFC 5545 RECUR value and refuses what SPEC.md §7 forbids.
//! * `expand` (expand.rs) expands it in *local wall-clock time* (SPEC.md §1): the `rrule` crate
//!   generates candidates from a floating DTSTART; numeric BYDAY, BYSETPOS and COUNT are
//!   applied on top, because the crate's limits for them are narrower than RFC 5545's.
//! * `zone` (zone.rs) turns each wall time into an instant by RFC 5545 §3.3.5 (SPEC.md §2): a time
//!   that occurs twice is the first instant, a time that does not exist is read with the UTC
//!   offset in effect before the gap.
//! * [`Occurrences`] merges and sorts the instants and applies UNTIL, which RFC 5545 defines
//!   in UTC, to the resolved instants (SPEC.md §3–§5).

mod expand;
mod rule;
mod zone;

pub use zone::{Zone, TZDB_VERSION};

use chrono::{DateTime, Datelike, Duration, NaiveDateTime, Timelike, Utc};
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
    #[error("unknown time zone {0:?}: zone names are case-sensitive, did you mean {1:?}?")]
    ZoneCase(String, String),
    #[error("invalid dtstart {0:?}: write a local date-time without offset, like 2026-01-31T09:00[:00] (years 0001 to 9999)")]
    DtStart(String),
    #[error("the search examined more than {0} wall-clock instances: the rule matches too rarely, or the occurrences asked for lie too far after DTSTART")]
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

/// The RRULE of a pattern-form recurrence (SPEC.md, case format): `pattern` with `interval`,
/// `until` becomes `;UNTIL=<UTC>`, `limit` becomes `;COUNT=<limit>`; the two exclude each other.
pub fn pattern_rule(
    pattern: Pattern,
    interval: u32,
    until: Option<DateTime<Utc>>,
    limit: Option<u32>,
) -> Result<String, RecurrenceError> {
    let mut rule = pattern.to_rrule(interval)?;
    match (until, limit) {
        (Some(_), Some(_)) => {
            return Err(RecurrenceError::Rule(
                "until and limit cannot be combined (COUNT and UNTIL must not occur together)".into(),
            ))
        }
        (Some(u), None) => rule.push_str(&format!(";UNTIL={}", u.format("%Y%m%dT%H%M%SZ"))),
        (None, Some(0)) => return Err(RecurrenceError::Rule("limit must be at least 1".into())),
        (None, Some(n)) => rule.push_str(&format!(";COUNT={n}")),
        (None, None) => {}
    }
    Ok(rule)
}

/// The search gives up after this many wall-clock instances from DTSTART (SPEC.md §7).
pub const MAX_EXAMINED: u64 = 5_000_000;

/// A resolved instant lies within this distance of its wall time read as UTC: UTC offsets in
/// tzdata stay within ±26 h (local mean times included), and a gap moves a wall time by
/// less than a day, in the direction that keeps it inside that bound.
const MAX_OFFSET: Duration = Duration::hours(26);

/// A parsed, validated recurrence: rule, local DTSTART and zone.
#[derive(Clone)]
pub struct Schedule {
    rule: rule::Rule,
    expansion: expand::Expansion,
    dtstart: NaiveDateTime,
    zone: Zone,
    /// Where a COUNT rule's expansion may resume (see [`Schedule::with_cursor`]).
    mark: Option<expand::Mark>,
}

/// A series cursor as stored with a recurring task (`recurring_tasks.series_cursor`): JSON
/// naming the rule and DTSTART it was counted for, so that a cursor left over from an
/// earlier rule is recognised and not used.
#[derive(serde::Serialize, serde::Deserialize)]
struct CursorText {
    rrule: String,
    dtstart: String,
    /// Local wall time where the expansion may start: `YYYY-MM-DDTHH:MM:SS`.
    period: String,
    /// Instances of the series before `period`.
    before: u32,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schedule")
            .field("rule", &self.rule.text)
            .field("dtstart", &self.dtstart)
            .field("tz", &self.zone.name())
            .finish()
    }
}

/// Parses a local DTSTART: `YYYY-MM-DDTHH:MM[:SS]`, no offset, no fraction, years 0001–9999.
pub fn parse_local(s: &str) -> Result<NaiveDateTime, RecurrenceError> {
    let s = s.trim();
    let shape_ok = matches!(s.len(), 16 | 19)
        && s.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b'T',
            13 | 16 => b == b':',
            _ => b.is_ascii_digit(),
        });
    let parsed = if !shape_ok {
        None
    } else if s.len() == 16 {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M").ok()
    } else {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").ok()
    };
    parsed
        // chrono reads second 60 as a leap second; RFC 5545 DTSTART has none here.
        .filter(|t| (1..=9999).contains(&t.year()) && t.nanosecond() == 0)
        .ok_or_else(|| RecurrenceError::DtStart(s.to_owned()))
}

impl Schedule {
    /// Parses `rule` (an RFC 5545 RECUR value, optional `RRULE:` prefix) for a task starting
    /// at local `dtstart` in zone `tz`. A rule that cannot produce a single occurrence from
    /// this DTSTART is refused here, where it enters.
    pub fn parse(rule: &str, dtstart: NaiveDateTime, tz: &str) -> Result<Self, RecurrenceError> {
        let zone = Zone::parse(tz)?;
        let rule = rule::parse(rule)?;
        if !(1..=9999).contains(&dtstart.year()) {
            return Err(RecurrenceError::DtStart(dtstart.to_string()));
        }
        let expansion = expand::Expansion::new(&rule, dtstart)?;
        let schedule = Self {
            rule,
            expansion,
            dtstart,
            zone,
            mark: None,
        };
        if schedule.first()?.is_none() {
            let why = match schedule.rule.until {
                Some(u) if schedule.expansion.walls().next().is_some() => format!(
                    "UNTIL {} is before the first occurrence",
                    u.format("%Y%m%dT%H%M%SZ")
                ),
                _ => "it never matches".to_owned(),
            };
            return Err(RecurrenceError::Rule(format!(
                "the rule produces no occurrence from dtstart {}: {why}",
                schedule.dtstart_text()
            )));
        }
        Ok(schedule)
    }

    /// The schedule resuming its COUNT rule's expansion from a stored series cursor (what
    /// [`Schedule::cursor_for`] gave) instead of walking from DTSTART. A cursor counted for
    /// another rule or DTSTART (the app changed the task since), or one that cannot be true
    /// of this series, is not used: the answers are the same without it, only slower.
    pub fn with_cursor(mut self, cursor: Option<&str>) -> Self {
        self.mark = cursor
            .and_then(|text| serde_json::from_str::<CursorText>(text).ok())
            .filter(|c| c.rrule == self.rule.text && c.dtstart == self.dtstart_text())
            .and_then(|c| {
                Some(expand::Mark {
                    period: NaiveDateTime::parse_from_str(&c.period, "%Y-%m-%dT%H:%M:%S").ok()?,
                    before: c.before,
                })
            })
            .filter(|mark| self.expansion.fits(mark));
        self
    }

    /// The series cursor in use ([`Schedule::with_cursor`]), as stored; `None` when the
    /// schedule walks from DTSTART.
    pub fn cursor(&self) -> Option<String> {
        self.mark.map(|mark| self.cursor_text(mark))
    }

    fn cursor_text(&self, mark: expand::Mark) -> String {
        let text = CursorText {
            rrule: self.rule.text.clone(),
            dtstart: self.dtstart_text(),
            period: mark.period.format("%Y-%m-%dT%H:%M:%S").to_string(),
            before: mark.before,
        };
        serde_json::to_string(&text).expect("plain fields serialize")
    }

    /// The series cursor to keep with the task once it has moved on to `t`: every later
    /// question (`is_occurrence`, `next_after` of `t` or after) resumes from it, so that a
    /// COUNT rule's cost does not grow with the task's age. It costs the walk from the
    /// current cursor to `t` (without one, a count that does not walk). `None` for rules
    /// without COUNT, which need none.
    pub fn cursor_for(&self, t: DateTime<Utc>) -> Result<Option<String>, RecurrenceError> {
        // The earliest point a question about `t` starts at: is_occurrence(t) asks for the
        // occurrences after t - 1 µs, and those start MAX_OFFSET before.
        let from = (t - Duration::microseconds(1) - MAX_OFFSET).naive_utc();
        Ok(self
            .expansion
            .mark_at(from, self.mark)?
            .map(|mark| self.cursor_text(mark)))
    }

    /// The RRULE text as stored (upper case, parts in the order given, no `RRULE:` prefix).
    pub fn rule(&self) -> &str {
        &self.rule.text
    }
    pub fn dtstart(&self) -> NaiveDateTime {
        self.dtstart
    }
    pub fn zone(&self) -> &Zone {
        &self.zone
    }

    /// DTSTART written back as stored: `YYYY-MM-DDTHH:MM:SS`.
    pub fn dtstart_text(&self) -> String {
        self.dtstart.format("%Y-%m-%dT%H:%M:%S").to_string()
    }

    /// Occurrences strictly after `after` (all from the first when `None`), ascending,
    /// distinct, ending with the rule.
    ///
    /// The expansion starts at the wall time from which an instant after `after` can come
    /// (`after` plus the smallest UTC offset the zone has near it), not at DTSTART, so a task
    /// started decades ago costs what one started today does; a COUNT rule starts at its
    /// series cursor ([`Schedule::with_cursor`]) when it has one before that point, else
    /// there too, with the instances before it counted rather than walked.
    pub fn occurrences(&self, after: Option<DateTime<Utc>>) -> Occurrences<'_> {
        // Starting later can only fail where starting at DTSTART would have (the crate's
        // validation of the same rule); DTSTART is then the slower, equal answer.
        let walls = match after {
            Some(a) => {
                // A wall time before `after` plus the smallest UTC offset near it resolves
                // at or before `after` (see OffsetBounds).
                let reach = MAX_OFFSET.num_seconds();
                let near = OffsetBounds::of(&self.zone, a.timestamp() - reach, a.timestamp() + reach);
                let from = (a + Duration::seconds(near.min)).naive_utc();
                self.expansion
                    .walls_from(from, self.mark)
                    .unwrap_or_else(|_| self.expansion.walls())
            }
            None => self.expansion.walls(),
        };
        Occurrences {
            schedule: self,
            walls,
            bounds: None,
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
}

/// Bounds on the UTC offsets of a stretch of wall times: every wall time read as UTC from
/// `lo` to `hi` (seconds since the epoch) resolves with an offset from `min` to `max`
/// seconds, the offsets in effect at the instants within `MAX_OFFSET` of them. So a wall
/// time `w` there stands for an instant from `w - max` to `w - min`: walls that cannot come
/// after the question need no lookup, and an instant is final once the walk has passed it
/// by the zone's own largest offset, not by the 26 h every zone stays within.
#[derive(Clone, Copy)]
struct OffsetBounds {
    lo: i64,
    hi: i64,
    min: i64,
    max: i64,
}

impl OffsetBounds {
    /// The bounds of the wall times from `lo` to `hi`; ±26 h where the zone data has none.
    fn of(zone: &Zone, lo: i64, hi: i64) -> Self {
        let reach = MAX_OFFSET.num_seconds();
        let (min, max) = zone
            .offsets_between(lo - reach, hi + reach)
            .unwrap_or((-reach, reach));
        Self { lo, hi, min, max }
    }
}

/// Iterator behind [`Schedule::occurrences`].
pub struct Occurrences<'a> {
    schedule: &'a Schedule,
    walls: expand::Walls<'a>,
    /// The offset bounds of the wall times being walked (a week at a time).
    bounds: Option<OffsetBounds>,
    /// Resolved instants not yet safe to emit: a later wall time may still resolve earlier.
    pending: BTreeSet<DateTime<Utc>>,
    after: Option<DateTime<Utc>>,
    examined: u64,
    exhausted: bool,
    failed: bool,
}

impl Occurrences<'_> {
    /// Offset bounds valid for the wall time `wall` and the 52 h after it.
    fn bounds_at(&mut self, wall: i64) -> OffsetBounds {
        let reach = 2 * MAX_OFFSET.num_seconds();
        match self.bounds {
            Some(b) if b.lo <= wall && wall + reach <= b.hi => b,
            _ => {
                let b = OffsetBounds::of(&self.schedule.zone, wall, wall + 7 * 86_400);
                self.bounds = Some(b);
                b
            }
        }
    }
}

impl Iterator for Occurrences<'_> {
    type Item = Result<DateTime<Utc>, RecurrenceError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let until = self.schedule.rule.until;
        loop {
            if let Some(&first) = self.pending.first() {
                if self.exhausted {
                    self.pending.pop_first();
                    return Some(Ok(first));
                }
            } else if self.exhausted {
                return None;
            }
            match self.walls.next() {
                None => self.exhausted = true,
                Some(Err(e)) => {
                    self.failed = true;
                    return Some(Err(e));
                }
                Some(Ok(wall)) => {
                    self.examined += 1;
                    if self.examined > MAX_EXAMINED {
                        self.failed = true;
                        return Some(Err(RecurrenceError::TooSparse(MAX_EXAMINED)));
                    }
                    let read_as_utc = wall.and_utc();
                    let bounds = self.bounds_at(read_as_utc.timestamp());
                    // Every instant from this wall time on lies after `horizon`: the walls of
                    // the next 52 h have offsets up to `bounds.max`, later ones resolve more
                    // than 26 h after this wall time.
                    let horizon = read_as_utc - Duration::seconds(bounds.max);
                    if until.is_some_and(|u| horizon > u) {
                        self.exhausted = true;
                    }
                    // Walls that cannot resolve after `after` need no zone lookup.
                    if self
                        .after
                        .is_none_or(|a| read_as_utc - Duration::seconds(bounds.min) > a)
                    {
                        let instant = self.schedule.zone.resolve(wall);
                        if self.after.is_none_or(|a| instant > a) && until.is_none_or(|u| instant <= u) {
                            self.pending.insert(instant);
                        }
                    }
                    if let Some(&first) = self.pending.first() {
                        if horizon > first {
                            self.pending.pop_first();
                            return Some(Ok(first));
                        }
                    }
                }
            }
        }
    }
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
    fn a_task_started_decades_ago_answers_like_one_started_today() {
        // 4.2 million instances lie between DTSTART and the question: walked from DTSTART,
        // nearly the whole 5 000 000 limit; the expansion starts near the question instead.
        // Expected: the 7-minute wall-clock grid from 1970-01-01 00:00 (Berlin, UTC+1 then
        // and in November).
        let question = parse_instant("2026-11-30T04:07:30Z").unwrap();
        let s = Schedule::parse(
            "FREQ=MINUTELY;INTERVAL=7",
            parse_local("1970-01-01T00:00").unwrap(),
            "Europe/Berlin",
        )
        .unwrap();
        let mut walk = s.occurrences(Some(question));
        let got: Vec<_> = walk.by_ref().take(2).map(|t| rfc3339(t.unwrap())).collect();
        assert_eq!(got, ["2026-11-30T04:09:00Z", "2026-11-30T04:16:00Z"]);
        assert!(walk.examined < 1_000, "examined {} wall times", walk.examined);
        assert!(s
            .is_occurrence(parse_instant("2026-11-30T04:16:00Z").unwrap())
            .unwrap());
        assert!(!s
            .is_occurrence(parse_instant("2026-11-30T04:15:00Z").unwrap())
            .unwrap());
        // A monthly rule with BYSETPOS from 1970: the last weekday of the month.
        let s = Schedule::parse(
            "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
            parse_local("1970-01-30T09:00").unwrap(),
            "America/New_York",
        )
        .unwrap();
        assert_eq!(
            rfc3339(s.next_after(question).unwrap().unwrap()),
            "2026-11-30T14:00:00Z"
        );
    }

    #[test]
    fn a_count_rule_resumes_from_its_series_cursor_with_the_same_answers() {
        // COUNT rules: where an instance lies in the series decides whether it exists, so
        // without a cursor each question walks from DTSTART. (rule, DTSTART, zone, question)
        let cases = [
            // ~760 000 instances before the question, the series ends in 2026-05.
            (
                "FREQ=MINUTELY;INTERVAL=7;COUNT=780000",
                "2016-01-01T00:03",
                "Europe/Berlin",
                "2026-04-30T04:07:30Z",
            ),
            (
                "FREQ=HOURLY;BYHOUR=8,12,18;BYSETPOS=1,-1;COUNT=14000",
                "2014-03-30T08:00",
                "Europe/Berlin",
                "2026-03-29T01:30:00Z",
            ),
            (
                "FREQ=MONTHLY;BYDAY=-1FR;COUNT=700",
                "1970-01-30T09:00",
                "America/New_York",
                "2026-11-01T00:00:00Z",
            ),
            (
                "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH;COUNT=1500",
                "2000-01-03T07:30",
                "Australia/Lord_Howe",
                "2026-10-04T00:00:00Z",
            ),
            (
                "FREQ=SECONDLY;INTERVAL=90;BYHOUR=9;COUNT=200000",
                "2016-11-01T09:00",
                "Asia/Kolkata",
                "2026-11-30T03:31:00Z",
            ),
        ];
        for (rule, dtstart, tz, question) in cases {
            let s = Schedule::parse(rule, parse_local(dtstart).unwrap(), tz).unwrap();
            let t = parse_instant(question).unwrap();
            let walked: Vec<_> = s.occurrences(Some(t)).take(6).map(|o| o.unwrap()).collect();
            assert!(!walked.is_empty(), "{rule}: the case must still have occurrences");
            let cursor = s.cursor_for(t).unwrap().expect("a COUNT rule has a cursor");
            let resumed = s.clone().with_cursor(Some(&cursor));
            assert_eq!(resumed.cursor().as_deref(), Some(cursor.as_str()), "{rule}");
            let mut walk = resumed.occurrences(Some(t));
            let got: Vec<_> = walk.by_ref().take(6).map(|o| o.unwrap()).collect();
            assert_eq!(got, walked, "{rule}: {cursor}");
            assert!(
                walk.examined < 20_000,
                "{rule}: examined {} wall times",
                walk.examined
            );
            for o in &walked {
                assert!(resumed.is_occurrence(*o).unwrap(), "{rule}: {o}");
                assert!(
                    !resumed.is_occurrence(*o + Duration::seconds(1)).unwrap(),
                    "{rule}: {o}"
                );
                assert_eq!(
                    resumed.next_after(*o).unwrap(),
                    s.next_after(*o).unwrap(),
                    "{rule}: {o}"
                );
            }
            // The cursor moves on from itself: counted from the old one, the same as from DTSTART.
            let later = *walked.last().unwrap();
            assert_eq!(
                resumed.cursor_for(later).unwrap(),
                s.cursor_for(later).unwrap(),
                "{rule}"
            );
            // A cursor of another rule or DTSTART is not used.
            let other = Schedule::parse(rule, parse_local("2016-01-01T00:00").unwrap(), tz)
                .unwrap()
                .with_cursor(Some(&cursor));
            assert_eq!(other.cursor(), None, "{rule}");
        }
        // A cursor that cannot be true of the series (off the grid, more before than COUNT,
        // not JSON) is not used either.
        let s = Schedule::parse(
            "FREQ=DAILY;COUNT=10",
            parse_local("2026-01-01T09:00").unwrap(),
            "UTC",
        )
        .unwrap();
        for bad in [
            r#"{"rrule":"FREQ=DAILY;COUNT=10","dtstart":"2026-01-01T09:00:00","period":"2026-01-03T09:00:00","before":2}"#,
            r#"{"rrule":"FREQ=DAILY;COUNT=10","dtstart":"2026-01-01T09:00:00","period":"2026-01-03T00:00:00","before":11}"#,
            "2026-01-03T00:00:00 2",
        ] {
            assert_eq!(s.clone().with_cursor(Some(bad)).cursor(), None, "{bad}");
        }
        let good = r#"{"rrule":"FREQ=DAILY;COUNT=10","dtstart":"2026-01-01T09:00:00","period":"2026-01-03T00:00:00","before":2}"#;
        assert_eq!(s.clone().with_cursor(Some(good)).cursor().as_deref(), Some(good));
        // Rules without COUNT need none.
        let open = Schedule::parse("FREQ=DAILY", parse_local("2016-01-01T09:00").unwrap(), "UTC").unwrap();
        assert_eq!(
            open.cursor_for(parse_instant("2026-01-01T00:00:00Z").unwrap())
                .unwrap(),
            None
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
        for bad in [
            "2026-01-01T09:00:00+01:00",
            "2026-01-01T09:00:00Z",
            "2026-01-01T09:00:60",
            "2026-02-30T09:00",
            "2026-01-01T09:00:00.5",
            "2026-01-01 09:00",
            "0000-01-01T09:00",
        ] {
            assert!(parse_local(bad).is_err(), "{bad}");
        }
        assert!(parse_local("2026-01-01T09:00").is_ok());
    }

    #[test]
    fn patterns_become_rrules_as_the_spec_says() {
        let until = parse_instant("2026-03-11T08:00:00-04:00").unwrap();
        assert_eq!(
            pattern_rule(Pattern::Weekly, 2, None, None).unwrap(),
            "FREQ=WEEKLY;INTERVAL=2"
        );
        assert_eq!(
            pattern_rule(Pattern::Daily, 2, Some(until), None).unwrap(),
            "FREQ=DAILY;INTERVAL=2;UNTIL=20260311T120000Z"
        );
        assert_eq!(
            pattern_rule(Pattern::Monthly, 1, None, Some(3)).unwrap(),
            "FREQ=MONTHLY;INTERVAL=1;COUNT=3"
        );
        assert!(pattern_rule(Pattern::Yearly, 1, Some(until), Some(3)).is_err());
        assert!(pattern_rule(Pattern::Yearly, 0, None, None).is_err());
        assert_eq!("Yearly".parse::<Pattern>().unwrap(), Pattern::Yearly);
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
