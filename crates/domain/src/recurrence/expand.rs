//! Expansion of a checked [`Rule`] into local wall-clock instances (SPEC.md §1, §4, §6).
//!
//! The `rrule` crate generates the *candidates*: INTERVAL stepping, WKST, BYMONTH, BYWEEKNO,
//! BYYEARDAY, BYMONTHDAY (negative too), plain weekdays and BYHOUR/BYMINUTE/BYSECOND. It is
//! fed floating wall times (labelled UTC, which has no transitions), so it never applies DST
//! logic of its own. Three parts are applied here instead, on top of the crate's output:
//!
//! * **Numeric BYDAY** (`2TU`, `-1FR`). The crate's validator limits the number by FREQ to
//!   `-4..=5` for MONTHLY and `-52..=53` for YEARLY, so it refuses `-5FR` and `-53MO`, which
//!   RFC 5545 allows (`ordwk = 1*2DIGIT ;1 to 53`). We ask the crate for every such weekday
//!   and keep the ones whose position in the month (or year) matches.
//! * **BYSETPOS**. The crate limits it by FREQ (MONTHLY to ±31, WEEKLY to ±53, HOURLY to ±24,
//!   ...) although RFC 5545 allows ±366 for every FREQ and a month can hold far more than 31
//!   instances (`BYDAY=MO,TU,WE,TH,FR;BYHOUR=9,17` has up to 46). We group the candidates by
//!   period and pick the positions ourselves.
//! * **The time grid of FREQ=MINUTELY and FREQ=SECONDLY.** With BYHOUR (or BYMINUTE) the
//!   crate steps these frequencies by calling its hourly (minutely) stepper with the carry as
//!   the interval and the list as a filter, so it skips ahead by whole hours (minutes) and
//!   leaves the INTERVAL grid: `FREQ=MINUTELY;INTERVAL=45;BYDAY=SU;BYHOUR=22` from 22:00
//!   gives 22:00, 22:45 and then 22:30 a week later, where dateutil and RFC 5545 keep every
//!   instance on DTSTART + k x 45 minutes (22:00 again: a week is 224 steps). Here the crate
//!   only picks the matching *days* (a YEARLY rule with the same BYMONTH, BYMONTHDAY,
//!   BYYEARDAY and BYDAY), and [`SubDaily`] lays the grid over the allowed hours, minutes and
//!   seconds of each of them, so a rule like `FREQ=SECONDLY;BYHOUR=9` also costs its
//!   instances, not every second of the day.
//! * **COUNT** and the DTSTART cut-off, which must come after BYSETPOS.
//!
//! The crate is started at the *beginning* of DTSTART's period, with every default that RFC
//! 5545 takes from DTSTART written out explicitly, so the periods and the INTERVAL grid are
//! exactly those of DTSTART and BYSETPOS sees whole periods. Like dateutil (SPEC.md: "RFC 5545
//! as dateutil implements it"), the first WEEKLY period only starts at DTSTART's day.
//!
//! UNTIL is not part of the expansion: it is compared with resolved instants (SPEC.md §3).

use super::rule::{freq_name, DaySpec, Rule};
use super::RecurrenceError;
use chrono::{Datelike, Duration, Month, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Weekday};
use rrule::{Frequency, NWeekday, RRule, RRuleSet, RRuleSetIter, Unvalidated};
use std::collections::VecDeque;

mod count;

/// Candidates examined in a row without producing an instance before the search gives up
/// (SPEC.md §7: "a rule that almost never matches").
pub(crate) const MAX_CANDIDATES_WITHOUT_MATCH: u64 = 5_000_000;

/// The last year of the expansion (SPEC.md §5, as Python's `datetime.MAXYEAR`).
const LAST_YEAR: i32 = 9999;

/// A fact about a COUNT rule's series that holds for as long as its rule and DTSTART do:
/// `before` instances of the series lie before wall time `period`, a point where the
/// expansion may start (the beginning of a FREQ period on the INTERVAL grid; for MINUTELY and
/// SECONDLY, of any minute or second after DTSTART). With it the expansion resumes there with
/// `COUNT - before` instances left, instead of counting them again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mark {
    pub(crate) period: NaiveDateTime,
    pub(crate) before: u32,
}

/// A rule bound to its DTSTART, ready to produce wall-clock instances.
#[derive(Clone)]
pub(crate) struct Expansion {
    freq: Frequency,
    wkst: Weekday,
    dtstart: NaiveDateTime,
    count: Option<u32>,
    plain_days: Vec<Weekday>,
    ordinal_days: Vec<(i16, Weekday)>,
    /// Numeric BYDAY counts within the month (MONTHLY, or YEARLY with BYMONTH) or the year.
    ordinals_in_month: bool,
    by_set_pos: Vec<i16>,
    source: Source,
}

/// Where the candidates come from.
#[derive(Clone)]
enum Source {
    /// The crate expands the rule (YEARLY to HOURLY), started at DTSTART's period; the
    /// unvalidated rule (every default explicit) starts it again at a later period.
    Crate {
        set: RRuleSet,
        rule: RRule<Unvalidated>,
        interval: u32,
    },
    /// The crate picks the days, [`SubDaily`] the times (MINUTELY, SECONDLY).
    SubDaily(SubDaily),
}

impl Expansion {
    pub(crate) fn new(rule: &Rule, dtstart: NaiveDateTime) -> Result<Self, RecurrenceError> {
        let mut by_month = rule.by_month.clone();
        let mut by_month_day = rule.by_month_day.clone();
        let mut by_day: Vec<DaySpec> = rule.by_day.clone();
        let mut by_hour = rule.by_hour.clone();
        let mut by_minute = rule.by_minute.clone();
        let mut by_second = rule.by_second.clone();

        // RFC 5545 §3.3.10: "Information, not contained in the rule, necessary to determine
        // the various recurrence instance start time and dates are derived from the Start
        // Time (DTSTART)". The same defaults as dateutil, made explicit.
        let day_level = !(rule.by_week_no.is_empty()
            && rule.by_year_day.is_empty()
            && rule.by_month_day.is_empty()
            && rule.by_day.is_empty());
        if !day_level {
            match rule.freq {
                Frequency::Yearly => {
                    if by_month.is_empty() {
                        by_month.push(dtstart.month() as u8);
                    }
                    by_month_day.push(dtstart.day() as i8);
                }
                Frequency::Monthly => by_month_day.push(dtstart.day() as i8),
                Frequency::Weekly => by_day.push(DaySpec {
                    ordinal: None,
                    weekday: dtstart.weekday(),
                }),
                _ => {}
            }
        }
        if by_hour.is_empty() && rule.freq < Frequency::Hourly {
            by_hour.push(dtstart.hour() as u8);
        }
        if by_minute.is_empty() && rule.freq < Frequency::Minutely {
            by_minute.push(dtstart.minute() as u8);
        }
        if by_second.is_empty() && rule.freq < Frequency::Secondly {
            by_second.push(dtstart.second() as u8);
        }
        check_time_grid(rule, dtstart, &by_hour, &by_minute, &by_second)?;
        check_set_pos(rule, &by_hour, &by_minute, &by_second)?;

        let plain_days: Vec<Weekday> = by_day
            .iter()
            .filter(|d| d.ordinal.is_none())
            .map(|d| d.weekday)
            .collect();
        let ordinal_days: Vec<(i16, Weekday)> = by_day
            .iter()
            .filter_map(|d| d.ordinal.map(|n| (n, d.weekday)))
            .collect();
        let mut crate_days: Vec<NWeekday> = by_day.iter().map(|d| NWeekday::Every(d.weekday)).collect();
        crate_days.sort_by_key(|d| match d {
            NWeekday::Every(w) | NWeekday::Nth(_, w) => w.num_days_from_monday(),
        });
        crate_days.dedup();
        let months: Vec<Month> = by_month
            .iter()
            .map(|m| Month::try_from(*m).expect("checked 1 to 12"))
            .collect();

        let source = if matches!(rule.freq, Frequency::Minutely | Frequency::Secondly) {
            // The days: every weekday unless BYDAY says otherwise (a day-level part keeps the
            // crate from defaulting to DTSTART's month and day), at 00:00:00.
            let mut days = crate_days;
            if days.is_empty() {
                days = (0..7)
                    .map(|d| NWeekday::Every(Weekday::try_from(d).expect("0 to 6")))
                    .collect();
            }
            let day_rule = RRule::new(Frequency::Yearly)
                .by_month(&months)
                .by_month_day(by_month_day)
                .by_year_day(rule.by_year_day.clone())
                .by_weekday(days)
                .by_hour(vec![0])
                .by_minute(vec![0])
                .by_second(vec![0]);
            let first_day = floating(dtstart.date().and_time(NaiveTime::MIN));
            let days = day_set(&day_rule, first_day)?;
            Source::SubDaily(SubDaily::new(
                rule, dtstart, days, day_rule, &by_hour, &by_minute, &by_second,
            ))
        } else {
            let start = period_start(rule.freq, rule.wkst, dtstart);
            let candidates = RRule::new(rule.freq)
                .interval(rule.interval)
                .week_start(rule.wkst)
                .by_month(&months)
                .by_month_day(by_month_day)
                .by_year_day(rule.by_year_day.clone())
                .by_week_no(rule.by_week_no.clone())
                .by_weekday(crate_days)
                .by_hour(by_hour)
                .by_minute(by_minute)
                .by_second(by_second);
            Source::Crate {
                set: crate_set(&candidates, start)?,
                rule: candidates,
                interval: u32::from(rule.interval),
            }
        };
        Ok(Self {
            freq: rule.freq,
            wkst: rule.wkst,
            dtstart,
            count: rule.count,
            plain_days,
            ordinal_days,
            ordinals_in_month: rule.freq == Frequency::Monthly || !by_month.is_empty(),
            by_set_pos: rule.by_set_pos.clone(),
            source,
        })
    }

    /// The wall-clock instances, ascending, from DTSTART on, COUNT applied.
    pub(crate) fn walls(&self) -> Walls<'_> {
        let candidates = match &self.source {
            Source::Crate { set, .. } => Candidates::Crate(set.into_iter()),
            Source::SubDaily(sub) => Candidates::SubDaily(sub.iter()),
        };
        self.walls_of(candidates, self.count)
    }

    /// Where [`Expansion::walls_from`] starts for `from`: the last point at or before it
    /// where the expansion may start, `None` for DTSTART itself.
    fn start_at(&self, from: NaiveDateTime) -> Option<NaiveDateTime> {
        if from <= self.dtstart {
            return None;
        }
        match &self.source {
            Source::Crate { interval, .. } => {
                let first = period_start(self.freq, self.wkst, self.dtstart);
                grid_period_at(self.freq, self.wkst, first, *interval, from).filter(|start| *start > first)
            }
            // The grid is laid from DTSTART's period whatever the start, and a BYSETPOS
            // period is one minute (second): the expansion may start at any.
            Source::SubDaily(_) => {
                let start = period_start(self.freq, self.wkst, from);
                (start > self.dtstart).then_some(start)
            }
        }
    }

    /// The candidates from `start` (a point [`Expansion::start_at`] gives), or from DTSTART.
    fn candidates_at(&self, start: Option<NaiveDateTime>) -> Result<Candidates<'_>, RecurrenceError> {
        Ok(match (start, &self.source) {
            (None, Source::Crate { set, .. }) => Candidates::Crate(set.into_iter()),
            (None, Source::SubDaily(sub)) => Candidates::SubDaily(sub.iter()),
            (Some(start), Source::Crate { rule, .. }) => {
                Candidates::Crate((&crate_set(rule, start)?).into_iter())
            }
            // The days are a filter (a YEARLY rule with an interval of 1) and the time grid is
            // anchored at DTSTART's period whatever day the days start on.
            (Some(start), Source::SubDaily(sub)) => {
                let days = day_set(&sub.day_rule, floating(start.date().and_time(NaiveTime::MIN)))?;
                Candidates::SubDaily(sub.iter_from(days, start.and_utc().timestamp()))
            }
        })
    }

    /// Whether `mark` can be true of this series: a COUNT rule, no more instances before
    /// than COUNT, and a point where the expansion may start.
    pub(crate) fn fits(&self, mark: &Mark) -> bool {
        self.count.is_some_and(|count| mark.before <= count)
            && self.start_at(mark.period) == Some(mark.period)
    }

    /// The wall-clock instances, ascending, from a point at or before `from` on: the same
    /// instances as [`Expansion::walls`] from `from` on, at a cost that does not depend on
    /// how long ago DTSTART was.
    ///
    /// Without COUNT, an instance depends only on its own FREQ period and the INTERVAL grid
    /// laid from DTSTART's period (every default RFC 5545 takes from DTSTART is explicit in
    /// the rule given to the crate, BYSETPOS picks within one period, and the only period
    /// treated apart, dateutil's first WEEKLY one, is DTSTART's), so the expansion may start
    /// at the last grid period that begins at or before `from`. With COUNT the position of
    /// an instance in the whole series decides whether it exists, so the expansion starts
    /// where it knows how many instances came before: at `mark` (kept with the task, see
    /// [`Expansion::mark_at`]) when it fits this series and lies at or before that point
    /// (the walk from there is short), else at that point with the instances before it
    /// counted without walking them ([`count`]).
    pub(crate) fn walls_from(
        &self,
        from: NaiveDateTime,
        mark: Option<Mark>,
    ) -> Result<Walls<'_>, RecurrenceError> {
        let start = self.start_at(from);
        if self.count.is_none() {
            return Ok(self.walls_of(self.candidates_at(start)?, None));
        }
        Ok(self.resume(mark, start)?.0)
    }

    /// A COUNT rule's walls from `mark` when it fits this series and lies at or before
    /// `limit`, else from `limit` with the instances before it counted ([`count`]), else (no
    /// `limit`: the question is about DTSTART's own period) from DTSTART; with the number of
    /// instances before where they start.
    fn resume(
        &self,
        mark: Option<Mark>,
        limit: Option<NaiveDateTime>,
    ) -> Result<(Walls<'_>, u32), RecurrenceError> {
        let count = self.count.unwrap_or(u32::MAX);
        if let Some(m) = mark.filter(|m| self.fits(m) && limit.is_some_and(|l| m.period <= l)) {
            let walls = self.walls_of(self.candidates_at(Some(m.period))?, Some(count - m.before));
            return Ok((walls, m.before));
        }
        match limit {
            Some(start) => {
                let before = u32::try_from(self.count_before(start)?).map_or(count, |n| n.min(count));
                let walls = self.walls_of(self.candidates_at(Some(start))?, Some(count - before));
                Ok((walls, before))
            }
            None => Ok((self.walls(), 0)),
        }
    }

    /// For a COUNT rule, the [`Mark`] at the point where [`Expansion::walls_from`] starts for
    /// `from`: the instances before it walked from `mark` (when it fits and lies before) or
    /// counted. `None` for rules without COUNT (they need none) and before the first
    /// point after DTSTART.
    pub(crate) fn mark_at(
        &self,
        from: NaiveDateTime,
        mark: Option<Mark>,
    ) -> Result<Option<Mark>, RecurrenceError> {
        let (Some(_), Some(target)) = (self.count, self.start_at(from)) else {
            return Ok(None);
        };
        let (walls, mut before) = self.resume(mark, Some(target))?;
        for wall in walls {
            if wall? >= target {
                break;
            }
            before += 1;
        }
        Ok(Some(Mark {
            period: target,
            before,
        }))
    }

    fn walls_of<'a>(&'a self, candidates: Candidates<'a>, count_left: Option<u32>) -> Walls<'a> {
        Walls {
            exp: self,
            candidates,
            ready: VecDeque::new(),
            period: Vec::new(),
            period_key: None,
            count_left,
            since_match: 0,
            done: false,
        }
    }

    /// Whether a candidate's day passes the numeric BYDAY entries.
    fn day_matches(&self, c: NaiveDateTime) -> bool {
        if self.ordinal_days.is_empty() {
            return true;
        }
        let weekday = c.weekday();
        if self.plain_days.contains(&weekday) {
            return true;
        }
        let (index, last) = if self.ordinals_in_month {
            (c.day() as i32, days_in_month(c.year(), c.month()) as i32)
        } else {
            (c.ordinal() as i32, if c.date().leap_year() { 366 } else { 365 })
        };
        self.ordinal_days.iter().any(|&(n, wd)| {
            wd == weekday
                && if n > 0 {
                    (index - 1) / 7 + 1 == i32::from(n)
                } else {
                    (last - index) / 7 + 1 == -i32::from(n)
                }
        })
    }
}

/// The crate's candidates from `start` (the beginning of a FREQ period on the INTERVAL grid).
/// `limit()` makes the crate give up after 100,000 periods in a row without a candidate
/// instead of looping until year 10000. Only rules that can never (or almost never) match
/// get there; for them the expansion simply ends, and `Schedule::parse` refuses a rule with
/// no occurrence at all.
fn crate_set(rule: &RRule<Unvalidated>, start: NaiveDateTime) -> Result<RRuleSet, RecurrenceError> {
    let rule = rule
        .clone()
        .validate(floating(start))
        .map_err(|e| RecurrenceError::Rule(format!("the rule cannot be expanded: {e}")))?;
    Ok(RRuleSet::new(floating(start)).rrule(rule).limit())
}

/// The days of a MINUTELY or SECONDLY rule from `first_day` on.
fn day_set(
    rule: &RRule<Unvalidated>,
    first_day: chrono::DateTime<rrule::Tz>,
) -> Result<RRuleSet, RecurrenceError> {
    let rule = rule
        .clone()
        .validate(first_day)
        .map_err(|e| RecurrenceError::Rule(format!("the rule cannot be expanded: {e}")))?;
    Ok(RRuleSet::new(first_day).rrule(rule).limit())
}

/// The start of the last FREQ period on the INTERVAL grid from `first` (DTSTART's period)
/// that begins at or before `t`; `None` before `first` or past the calendar's end.
fn grid_period_at(
    freq: Frequency,
    wkst: Weekday,
    first: NaiveDateTime,
    interval: u32,
    t: NaiveDateTime,
) -> Option<NaiveDateTime> {
    let here = period_start(freq, wkst, t);
    if here <= first {
        return None;
    }
    let interval = i64::from(interval.max(1));
    let months = |d: NaiveDateTime| i64::from(d.year()) * 12 + i64::from(d.month0());
    let steps = |n: i64| n / interval * interval;
    match freq {
        Frequency::Yearly => {
            let n = steps(i64::from(here.year() - first.year()));
            first.with_year(first.year() + i32::try_from(n).ok()?)
        }
        Frequency::Monthly => {
            let n = steps(months(here) - months(first));
            first.checked_add_months(chrono::Months::new(u32::try_from(n).ok()?))
        }
        Frequency::Weekly => first.checked_add_signed(Duration::weeks(steps((here - first).num_weeks()))),
        Frequency::Daily => first.checked_add_signed(Duration::days(steps((here - first).num_days()))),
        Frequency::Hourly => first.checked_add_signed(Duration::hours(steps((here - first).num_hours()))),
        Frequency::Minutely | Frequency::Secondly => None,
    }
}

/// Labels a wall time as UTC so the `rrule` crate expands it without any DST logic.
fn floating(wall: NaiveDateTime) -> chrono::DateTime<rrule::Tz> {
    rrule::Tz::UTC.from_utc_datetime(&wall)
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let (y, m) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1)
        .and_then(|d| d.pred_opt())
        .map_or(31, |d| d.day())
}

/// The start of the FREQ period that contains `t` (the key BYSETPOS groups by).
fn period_start(freq: Frequency, wkst: Weekday, t: NaiveDateTime) -> NaiveDateTime {
    let date = t.date();
    let midnight = |d: NaiveDate| d.and_time(NaiveTime::MIN);
    match freq {
        Frequency::Yearly => midnight(date.with_ordinal(1).expect("Jan 1 exists")),
        Frequency::Monthly => midnight(date.with_day(1).expect("day 1 exists")),
        Frequency::Weekly => {
            let back = (7 + date.weekday().num_days_from_monday() - wkst.num_days_from_monday()) % 7;
            midnight(date - Duration::days(i64::from(back)))
        }
        Frequency::Daily => midnight(date),
        Frequency::Hourly => date.and_hms_opt(t.hour(), 0, 0).expect("valid"),
        Frequency::Minutely => date.and_hms_opt(t.hour(), t.minute(), 0).expect("valid"),
        Frequency::Secondly => t,
    }
}

/// dateutil refuses HOURLY/MINUTELY/SECONDLY rules whose INTERVAL steps, taken from DTSTART's
/// time of day, never land on BYHOUR/BYMINUTE/BYSECOND ("byxxx generates an empty set",
/// "resulting in empty rule"); SPEC.md §7 makes that an error. The `rrule` crate would only
/// end the iteration silently ("Infinite loop detected").
fn check_time_grid(
    rule: &Rule,
    dtstart: NaiveDateTime,
    by_hour: &[u8],
    by_minute: &[u8],
    by_second: &[u8],
) -> Result<(), RecurrenceError> {
    let (unit, cycle): (u64, u64) = match rule.freq {
        Frequency::Hourly => (3600, 24),
        Frequency::Minutely => (60, 1440),
        Frequency::Secondly => (1, 86400),
        _ => return Ok(()),
    };
    let start = u64::from(dtstart.num_seconds_from_midnight()) / unit;
    let step = u64::from(rule.interval);
    let mut slot = start % cycle;
    for _ in 0..cycle {
        let secs = slot * unit;
        let (h, m, s) = ((secs / 3600) as u8, (secs / 60 % 60) as u8, (secs % 60) as u8);
        let hour_ok = by_hour.is_empty() || by_hour.contains(&h);
        let minute_ok = rule.freq == Frequency::Hourly || by_minute.is_empty() || by_minute.contains(&m);
        let second_ok = rule.freq != Frequency::Secondly || by_second.is_empty() || by_second.contains(&s);
        if hour_ok && minute_ok && second_ok {
            return Ok(());
        }
        slot = (slot + step) % cycle;
        if slot == start % cycle {
            break;
        }
    }
    Err(RecurrenceError::Rule(format!(
        "FREQ={};INTERVAL={} stepping from {} never reaches the given BYHOUR/BYMINUTE/BYSECOND, \
         so the rule has no occurrence",
        freq_name(rule.freq),
        rule.interval,
        dtstart.format("%H:%M:%S")
    )))
}

/// A BYSETPOS that exceeds the most instances a period can hold selects nothing, ever.
fn check_set_pos(
    rule: &Rule,
    by_hour: &[u8],
    by_minute: &[u8],
    by_second: &[u8],
) -> Result<(), RecurrenceError> {
    if rule.by_set_pos.is_empty() {
        return Ok(());
    }
    let n = |v: &[u8], all: u64| if v.is_empty() { all } else { v.len() as u64 };
    let times = n(by_hour, 24) * n(by_minute, 60) * n(by_second, 60);
    let most = match rule.freq {
        Frequency::Yearly => 366 * times,
        Frequency::Monthly => 31 * times,
        Frequency::Weekly => 7 * times,
        Frequency::Daily => times,
        Frequency::Hourly => n(by_minute, 60) * n(by_second, 60),
        Frequency::Minutely => n(by_second, 60),
        Frequency::Secondly => 1,
    };
    if rule.by_set_pos.iter().all(|p| u64::from(p.unsigned_abs()) > most) {
        return Err(RecurrenceError::Rule(format!(
            "BYSETPOS={} can never select anything: a {} period of this rule holds at most {most} instances",
            rule.by_set_pos
                .iter()
                .map(i16::to_string)
                .collect::<Vec<_>>()
                .join(","),
            freq_name(rule.freq)
        )));
    }
    Ok(())
}

/// The time grid of a MINUTELY or SECONDLY rule: DTSTART's minute (second) + k x INTERVAL,
/// on the days the crate picks, within the allowed hours, minutes (and seconds).
#[derive(Clone)]
struct SubDaily {
    /// The grid origin (DTSTART's minute or second), seconds since the epoch (wall time).
    origin: i64,
    /// The grid step in seconds.
    step: i64,
    /// The allowed stretches of a day: (offset from midnight, length), seconds, ascending.
    windows: Vec<(i64, i64)>,
    /// The instants of one grid point, as seconds after it: BYSECOND for MINUTELY, 0 for
    /// SECONDLY.
    timeset: Vec<i64>,
    days: RRuleSet,
    /// The rule behind `days`, to start them on a later day.
    day_rule: RRule<Unvalidated>,
}

impl SubDaily {
    fn new(
        rule: &Rule,
        dtstart: NaiveDateTime,
        days: RRuleSet,
        day_rule: RRule<Unvalidated>,
        by_hour: &[u8],
        by_minute: &[u8],
        by_second: &[u8],
    ) -> Self {
        let sorted = |v: &[u8]| {
            let mut v: Vec<i64> = v.iter().map(|x| i64::from(*x)).collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        let secondly = rule.freq == Frequency::Secondly;
        let (hours, minutes) = (sorted(by_hour), sorted(by_minute));
        // For SECONDLY, BYSECOND filters the grid; for MINUTELY it is the timeset.
        let seconds = if secondly { sorted(by_second) } else { vec![] };
        let all = |n: i64| (0..n).collect::<Vec<_>>();
        let or_all = |v: &Vec<i64>, n: i64| if v.is_empty() { all(n) } else { v.clone() };
        // The finest level that has a list decides the windows: seconds, minutes or hours.
        let mut windows = Vec::new();
        if !seconds.is_empty() || !minutes.is_empty() {
            for h in or_all(&hours, 24) {
                for m in or_all(&minutes, 60) {
                    if seconds.is_empty() {
                        windows.push((h * 3600 + m * 60, 60));
                    } else {
                        windows.extend(seconds.iter().map(|s| (h * 3600 + m * 60 + s, 1)));
                    }
                }
            }
        } else if !hours.is_empty() {
            windows.extend(hours.iter().map(|h| (h * 3600, 3600)));
        } else {
            windows.push((0, 86400));
        }
        let unit = if secondly { 1 } else { 60 };
        let origin = period_start(rule.freq, rule.wkst, dtstart).and_utc().timestamp();
        Self {
            origin,
            step: i64::from(rule.interval) * unit,
            windows,
            timeset: if secondly { vec![0] } else { sorted(by_second) },
            days,
            day_rule,
        }
    }

    fn iter(&self) -> SubDailyIter<'_> {
        self.iter_from(self.days.clone(), i64::MIN)
    }

    /// The grid over `days` (the rule's days from some day on), from wall time `floor`
    /// (seconds since the epoch) on.
    fn iter_from(&self, days: RRuleSet, floor: i64) -> SubDailyIter<'_> {
        SubDailyIter {
            sub: self,
            floor,
            days: (&days).into_iter(),
            day: None,
            window: 0,
            next: 0,
            point: None,
            time: 0,
        }
    }
}

struct SubDailyIter<'a> {
    sub: &'a SubDaily,
    /// No grid point before this wall time (seconds since the epoch).
    floor: i64,
    days: RRuleSetIter,
    /// The current day's midnight, seconds since the epoch.
    day: Option<i64>,
    window: usize,
    /// The next grid point to look at.
    next: i64,
    /// The grid point being expanded by the timeset, and the position in it.
    point: Option<i64>,
    time: usize,
}

impl SubDailyIter<'_> {
    /// The first grid point at or after `t`.
    fn grid_from(&self, t: i64) -> i64 {
        let sub = self.sub;
        let behind = (t.max(self.floor) - sub.origin).max(0);
        sub.origin + (behind + sub.step - 1) / sub.step * sub.step
    }
}

impl Iterator for SubDailyIter<'_> {
    type Item = NaiveDateTime;

    fn next(&mut self) -> Option<NaiveDateTime> {
        let sub = self.sub;
        loop {
            if let Some(p) = self.point {
                if let Some(t) = sub.timeset.get(self.time) {
                    self.time += 1;
                    return chrono::DateTime::from_timestamp(p + t, 0).map(|t| t.naive_utc());
                }
                self.point = None;
            }
            match self.day {
                None => {
                    let day = self.days.next()?.naive_utc().and_utc().timestamp();
                    self.day = Some(day);
                    self.window = 0;
                    self.next = self.grid_from(day + sub.windows[0].0);
                }
                Some(day) => {
                    let (offset, len) = sub.windows[self.window];
                    if self.next < day + offset + len {
                        self.point = Some(self.next);
                        self.time = 0;
                        self.next += sub.step;
                    } else if self.window + 1 < sub.windows.len() {
                        self.window += 1;
                        let start = day + sub.windows[self.window].0;
                        self.next = self.next.max(self.grid_from(start));
                    } else {
                        self.day = None;
                    }
                }
            }
        }
    }
}

/// The candidates of [`Walls`].
enum Candidates<'a> {
    Crate(RRuleSetIter),
    SubDaily(SubDailyIter<'a>),
}

/// Iterator behind [`Expansion::walls`].
pub(crate) struct Walls<'a> {
    exp: &'a Expansion,
    candidates: Candidates<'a>,
    /// Instances decided, not yet handed out.
    ready: VecDeque<NaiveDateTime>,
    /// Candidates of the current period (BYSETPOS only).
    period: Vec<NaiveDateTime>,
    period_key: Option<NaiveDateTime>,
    count_left: Option<u32>,
    since_match: u64,
    done: bool,
}

impl Iterator for Walls<'_> {
    type Item = Result<NaiveDateTime, RecurrenceError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(w) = self.ready.pop_front() {
                return Some(Ok(w));
            }
            if self.done {
                return None;
            }
            let candidate = match &mut self.candidates {
                Candidates::Crate(it) => it.next().map(|c| c.naive_utc()),
                Candidates::SubDaily(it) => it.next(),
            }
            .filter(|c| c.year() <= LAST_YEAR);
            let Some(c) = candidate else {
                self.flush_period();
                self.done = true;
                continue;
            };
            self.since_match += 1;
            if self.since_match > MAX_CANDIDATES_WITHOUT_MATCH {
                self.done = true;
                self.ready.clear();
                return Some(Err(RecurrenceError::TooSparse(MAX_CANDIDATES_WITHOUT_MATCH)));
            }
            if !self.exp.day_matches(c) {
                continue;
            }
            if self.exp.by_set_pos.is_empty() {
                self.accept(c);
            } else {
                let key = period_start(self.exp.freq, self.exp.wkst, c);
                if self.period_key != Some(key) {
                    self.flush_period();
                    self.period_key = Some(key);
                }
                self.period.push(c);
            }
        }
    }
}

impl Walls<'_> {
    /// An instance of the rule, if it is not before DTSTART and COUNT allows it.
    fn accept(&mut self, c: NaiveDateTime) {
        if self.done || c < self.exp.dtstart {
            return;
        }
        match &mut self.count_left {
            Some(0) => {
                self.done = true;
                return;
            }
            Some(n) => *n -= 1,
            None => {}
        }
        self.ready.push_back(c);
        self.since_match = 0;
        if self.count_left == Some(0) {
            self.done = true;
        }
    }

    /// Applies BYSETPOS to the collected period.
    fn flush_period(&mut self) {
        let Some(key) = self.period_key.take() else {
            return;
        };
        let mut period = std::mem::take(&mut self.period);
        if self.exp.freq == Frequency::Weekly
            && key == period_start(Frequency::Weekly, self.exp.wkst, self.exp.dtstart)
        {
            // dateutil's first weekly period runs from DTSTART's day to the end of its week.
            period.retain(|c| c.date() >= self.exp.dtstart.date());
        }
        let len = period.len() as i64;
        let mut picked: Vec<NaiveDateTime> = self
            .exp
            .by_set_pos
            .iter()
            .filter_map(|&p| {
                let i = if p > 0 {
                    i64::from(p) - 1
                } else {
                    len + i64::from(p)
                };
                (0..len).contains(&i).then(|| period[i as usize])
            })
            .collect();
        picked.sort();
        picked.dedup();
        for c in picked {
            self.accept(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::rule::parse;
    use super::*;

    fn walls(rule: &str, dtstart: &str, n: usize) -> Vec<String> {
        let start = NaiveDateTime::parse_from_str(dtstart, "%Y-%m-%dT%H:%M:%S").unwrap();
        let exp = Expansion::new(&parse(rule).unwrap(), start).unwrap();
        exp.walls()
            .take(n)
            .map(|w| w.unwrap().format("%Y-%m-%d %H:%M").to_string())
            .collect()
    }

    #[test]
    fn fifth_from_last_friday_and_large_set_positions_work() {
        // -5FR exists only in months with five Fridays; the rrule crate refuses -5 for MONTHLY.
        assert_eq!(
            walls("FREQ=MONTHLY;BYDAY=-5FR", "2026-01-02T09:00:00", 3),
            ["2026-01-02 09:00", "2026-05-01 09:00", "2026-07-03 09:00"]
        );
        // The 40th of 44 working-day slots of January 2026 (22 days x 2 times); the crate
        // limits MONTHLY BYSETPOS to 31.
        assert_eq!(
            walls(
                "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=9,17;BYMINUTE=0;BYSECOND=0;BYSETPOS=40;COUNT=1",
                "2026-01-01T00:00:00",
                3
            ),
            ["2026-01-28 17:00"]
        );
    }

    #[test]
    fn minutely_and_secondly_with_time_lists_stay_on_the_interval_grid() {
        // 45-minute steps from Sunday 22:00; a week is 224 steps, so the next Sunday has
        // 22:00 and 22:45 again (the rrule crate alone gives 22:30).
        assert_eq!(
            walls(
                "FREQ=MINUTELY;INTERVAL=45;BYDAY=SU;BYHOUR=22",
                "2027-08-15T22:00:00",
                4
            ),
            [
                "2027-08-15 22:00",
                "2027-08-15 22:45",
                "2027-08-22 22:00",
                "2027-08-22 22:45"
            ]
        );
        assert_eq!(
            walls(
                "FREQ=SECONDLY;INTERVAL=600;BYHOUR=10;BYMINUTE=0,20",
                "1982-05-01T10:00:00",
                3
            ),
            ["1982-05-01 10:00", "1982-05-01 10:20", "1982-05-02 10:00"]
        );
    }

    #[test]
    fn plain_and_numeric_byday_are_a_union_as_rfc_5545_says() {
        assert_eq!(
            walls("FREQ=MONTHLY;BYDAY=MO,-1FR", "2026-01-05T09:00:00", 6),
            [
                "2026-01-05 09:00",
                "2026-01-12 09:00",
                "2026-01-19 09:00",
                "2026-01-26 09:00",
                "2026-01-30 09:00",
                "2026-02-02 09:00"
            ]
        );
    }

    #[test]
    fn first_weekly_period_starts_at_dtstart_like_dateutil() {
        assert_eq!(
            walls(
                "FREQ=WEEKLY;BYDAY=MO,FR;BYSETPOS=1;COUNT=3",
                "2026-01-07T09:00:00",
                5
            ),
            ["2026-01-09 09:00", "2026-01-12 09:00", "2026-01-19 09:00"]
        );
    }

    #[test]
    fn unreachable_time_grids_and_set_positions_are_refused() {
        let start = NaiveDateTime::parse_from_str("2026-01-05T00:00:00", "%Y-%m-%dT%H:%M:%S").unwrap();
        for (rule, needle) in [
            ("FREQ=HOURLY;INTERVAL=4;BYHOUR=1,6", "never reaches"),
            ("FREQ=MINUTELY;INTERVAL=120;BYHOUR=1", "never reaches"),
            ("FREQ=SECONDLY;INTERVAL=2;BYSECOND=1", "never reaches"),
            ("FREQ=DAILY;BYHOUR=9;BYSETPOS=2", "never select"),
        ] {
            let err = Expansion::new(&parse(rule).unwrap(), start)
                .err()
                .expect(rule)
                .to_string();
            assert!(err.contains(needle), "{rule}: {err}");
        }
        assert!(Expansion::new(&parse("FREQ=HOURLY;INTERVAL=4;BYHOUR=1,4").unwrap(), start).is_ok());
    }

    #[test]
    fn count_counts_from_dtstart_and_year_9999_ends() {
        assert_eq!(walls("FREQ=YEARLY;COUNT=2", "2026-06-01T09:00:00", 5).len(), 2);
        assert_eq!(
            walls("FREQ=YEARLY", "9998-06-01T09:00:00", 5),
            ["9998-06-01 09:00", "9999-06-01 09:00"]
        );
    }
}
