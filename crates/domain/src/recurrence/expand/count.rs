//! How many instances of a series lie before a point, counted without walking them.
//!
//! Why: whether an instance of a COUNT rule exists depends on how many came before it, so
//! a question about a series started long ago needs that number. Walking the instances costs
//! one step each (86 400 a day for `FREQ=SECONDLY`, four million for
//! `FREQ=HOURLY;COUNT=4000000` asked about in its last year). The series cursor kept with a
//! recurring task ([`super::Mark`]) spares the walk when recur moves a task on, but a first
//! question (`recur occurrences`, a task's first advance) has none. Counting rests on two
//! facts:
//!
//! * **The calendar repeats.** Which days of a year pass the day-level parts (BYMONTH,
//!   BYMONTHDAY, BYYEARDAY, BYWEEKNO, BYDAY) depends only on the year's length and the
//!   weekday of its 1 January and, for the days of a period that crosses a new year (a week),
//!   on the lengths of the years before and after: 56 kinds of year.
//! * **The INTERVAL grid is arithmetic.** For DAILY and finer, every instance belongs to a
//!   grid point (DTSTART's period + k × INTERVAL) on an allowed day at an allowed time of day,
//!   and every grid point gives as many instances (its timeset, or what BYSETPOS picks of it).
//!   How many grid points a day holds depends only on where the first one after midnight
//!   falls: one lookup per day.
//!
//! So a whole year is counted once per (kind of year, INTERVAL phase at its start) and
//! remembered: the work is bounded by the number of distinct such pairs, not by the years or
//! instances in between. Where DTSTART's own cut-off and dateutil's first WEEKLY period apply
//! (DTSTART's day for DAILY and finer, its first two years for WEEKLY and coarser), those
//! rules are applied as [`super::Walls`] applies them. The tests compare every path with
//! the walk.

use super::{crate_set, day_set, floating, period_start, Expansion, Source, LAST_YEAR};
use crate::recurrence::RecurrenceError;
use chrono::{Datelike, Duration, Month, NaiveDate, NaiveDateTime, NaiveTime, Weekday};
use rrule::{Frequency, NWeekday, RRule, RRuleSetIter, Unvalidated};
use std::collections::HashMap;

/// Seconds in a wall-clock day (the expansion works on wall time: every day has 86 400).
const DAY: i64 = 86_400;

impl Expansion {
    /// The instances of the series, COUNT not applied, whose wall time lies before `target`
    /// (a point where the expansion may start, as [`Expansion::start_at`] gives it), at a
    /// cost that depends neither on how long ago DTSTART was nor on how many instances lie
    /// in between.
    pub(super) fn count_before(&self, target: NaiveDateTime) -> Result<u64, RecurrenceError> {
        let target = target.min(midnight(jan1(LAST_YEAR + 1)));
        if target <= self.dtstart {
            return Ok(0);
        }
        match self.freq {
            Frequency::Yearly | Frequency::Monthly | Frequency::Weekly => Periods::new(self).count(target),
            Frequency::Daily | Frequency::Hourly | Frequency::Minutely | Frequency::Secondly => {
                Grid::new(self)?.count(target)
            }
        }
    }

    /// The instances from DTSTART before `end`, COUNT not applied, walked one by one.
    fn walk_before(&self, end: NaiveDateTime) -> Result<u64, RecurrenceError> {
        let mut n = 0;
        for wall in self.walls_of(self.candidates_at(None)?, None) {
            if wall? >= end {
                break;
            }
            n += 1;
        }
        Ok(n)
    }
}

/// DAILY, HOURLY, MINUTELY and SECONDLY: grid points on allowed days at allowed times.
struct Grid<'a> {
    exp: &'a Expansion,
    /// DTSTART's period, wall seconds since the epoch: the grid's first point.
    origin: i64,
    /// INTERVAL in seconds.
    step: i64,
    /// Where a grid point gives instances (BYHOUR, BYMINUTE, BYSECOND as times of day): the
    /// allowed stretches of a day, (offset from midnight, length) in seconds, ascending.
    windows: Vec<(i64, i64)>,
    /// With many windows and a step shorter than a day: the allowed offsets by their
    /// remainder modulo the step, so that a day whose first grid point lies `r` seconds after
    /// midnight holds `hist[r]` (one lookup instead of one per window).
    hist: Vec<u32>,
    /// Instances per grid point: the timeset, or what BYSETPOS picks of it.
    per_point: u64,
    /// The allowed days (a YEARLY rule of the day-level parts), numeric BYDAY applied apart;
    /// `None` when every day is allowed.
    day_rule: Option<RRule<Unvalidated>>,
    /// The allowed days of a kind of year (leap, weekday of 1 January), from 0 = 1 January.
    days: HashMap<(bool, Weekday), Vec<u16>>,
    /// Grid points of whole years by (kind of year, offset of the first point after 1 January).
    years: HashMap<(bool, Weekday, i64), u64>,
}

impl<'a> Grid<'a> {
    fn new(exp: &'a Expansion) -> Result<Self, RecurrenceError> {
        let by_set = |len: usize| -> u64 {
            if exp.by_set_pos.is_empty() {
                len as u64
            } else {
                picks(&exp.by_set_pos, len).len() as u64
            }
        };
        let (origin, step, windows, per_point, day_rule) = match &exp.source {
            Source::SubDaily(sub) => (
                sub.origin,
                sub.step,
                sub.windows.clone(),
                by_set(sub.timeset.len()),
                sub.day_rule.clone(),
            ),
            Source::Crate { rule, interval, .. } => {
                // The rule as given (the crate sorts and dedups its lists when it validates).
                let distinct = |v: &[u8]| {
                    let mut v: Vec<i64> = v.iter().map(|x| i64::from(*x)).collect();
                    v.sort_unstable();
                    v.dedup();
                    v
                };
                let mut hours = distinct(rule.get_by_hour());
                if hours.is_empty() {
                    hours = (0..24).collect();
                }
                let n = |v: &[u8], all: usize| if v.is_empty() { all } else { distinct(v).len() };
                let times = n(rule.get_by_minute(), 60) * n(rule.get_by_second(), 60);
                let (unit, windows, per_period) = match exp.freq {
                    // A day's candidates are its times; the grid point is its midnight.
                    Frequency::Daily => (DAY, vec![(0, 1)], hours.len() * times),
                    Frequency::Hourly => (3600, hours.iter().map(|h| (h * 3600, 1)).collect(), times),
                    _ => unreachable!("only DAILY and HOURLY come from the crate here"),
                };
                let months: Vec<Month> = rule
                    .get_by_month()
                    .iter()
                    .map(|m| Month::try_from(*m).expect("checked 1 to 12"))
                    .collect();
                let mut weekdays = rule.get_by_weekday().to_vec();
                if weekdays.is_empty() {
                    weekdays = (0..7)
                        .map(|d| NWeekday::Every(Weekday::try_from(d).expect("0 to 6")))
                        .collect();
                }
                let day_rule = RRule::new(Frequency::Yearly)
                    .by_month(&months)
                    .by_month_day(rule.get_by_month_day().to_vec())
                    .by_year_day(rule.get_by_year_day().to_vec())
                    .by_weekday(weekdays)
                    .by_hour(vec![0])
                    .by_minute(vec![0])
                    .by_second(vec![0]);
                let origin = period_start(exp.freq, exp.wkst, exp.dtstart)
                    .and_utc()
                    .timestamp();
                (
                    origin,
                    i64::from(*interval) * unit,
                    windows,
                    by_set(per_period),
                    day_rule,
                )
            }
        };
        let mut hist = Vec::new();
        if windows.len() > 64 && step < DAY {
            hist = vec![0; step as usize];
            for &(offset, len) in &windows {
                for second in offset..offset + len {
                    hist[(second % step) as usize] += 1;
                }
            }
        }
        // Every day is allowed when no day-level part is given (SubDaily's and this day rule
        // then list all seven weekdays): the crate need not list them.
        let every_day = exp.ordinal_days.is_empty()
            && day_rule.get_by_month().is_empty()
            && day_rule.get_by_month_day().is_empty()
            && day_rule.get_by_year_day().is_empty()
            && day_rule.get_by_weekday().len() == 7;
        Ok(Self {
            exp,
            origin,
            step,
            windows,
            hist,
            per_point,
            day_rule: (!every_day).then_some(day_rule),
            days: HashMap::new(),
            years: HashMap::new(),
        })
    }

    fn count(mut self, target: NaiveDateTime) -> Result<u64, RecurrenceError> {
        // DTSTART's day: the cut-off at DTSTART and the grid's first point apply there.
        let second_day = self.exp.dtstart.date() + Duration::days(1);
        let mut n = self.exp.walk_before(target.min(midnight(second_day)))?;
        let last = target.date();
        let mut day = second_day;
        while day < last {
            let year = day.year();
            let next_year = jan1(year + 1);
            if day == jan1(year) && next_year <= last {
                n += self.year(year)?;
            } else {
                n += self.days_between(day, next_year.min(last))?;
            }
            day = next_year.min(last);
        }
        let rest = (target - midnight(last)).num_seconds();
        if last >= second_day && rest > 0 && self.allows(last)? {
            n += self.points_before(seconds(midnight(last)), rest) * self.per_point;
        }
        Ok(n)
    }

    /// The instances of a whole year after DTSTART's day.
    fn year(&mut self, year: i32) -> Result<u64, RecurrenceError> {
        let first = jan1(year);
        let key = (
            is_leap(year),
            first.weekday(),
            self.first_point(seconds(midnight(first))),
        );
        if let Some(n) = self.years.get(&key) {
            return Ok(*n);
        }
        let n = self.days_between(first, jan1(year + 1))?;
        self.years.insert(key, n);
        Ok(n)
    }

    /// The instances on the allowed days from `from` to before `to` (one year).
    fn days_between(&mut self, from: NaiveDate, to: NaiveDate) -> Result<u64, RecurrenceError> {
        let first = jan1(from.year());
        let start = seconds(midnight(first));
        let (lo, hi) = ((from - first).num_days(), (to - first).num_days());
        let kind = self.kind_of(from.year())?;
        let mut points = 0;
        for &d in &self.days[&kind] {
            let d = i64::from(d);
            if (lo..hi).contains(&d) {
                points += self.points_in_day(start + d * DAY);
            }
        }
        Ok(points * self.per_point)
    }

    fn allows(&mut self, day: NaiveDate) -> Result<bool, RecurrenceError> {
        let index = (day - jan1(day.year())).num_days() as u16;
        let kind = self.kind_of(day.year())?;
        Ok(self.days[&kind].binary_search(&index).is_ok())
    }

    /// `year`'s kind, its allowed days taken from the crate (once for each kind) into `days`.
    fn kind_of(&mut self, year: i32) -> Result<(bool, Weekday), RecurrenceError> {
        let first = jan1(year);
        let key = (is_leap(year), first.weekday());
        if !self.days.contains_key(&key) {
            let days = match &self.day_rule {
                None => (0..if key.0 { 366 } else { 365 }).collect(),
                Some(rule) => {
                    let set = day_set(rule, floating(midnight(first)))?;
                    (&set)
                        .into_iter()
                        .map(|c| c.naive_utc())
                        .take_while(|c| c.year() == year)
                        .filter(|c| self.exp.day_matches(*c))
                        .map(|c| (c.date() - first).num_days() as u16)
                        .collect()
                }
            };
            self.days.insert(key, days);
        }
        Ok(key)
    }

    /// Seconds from `midnight` (after DTSTART's day) to the first grid point at or after it.
    fn first_point(&self, midnight: i64) -> i64 {
        (self.origin - midnight).rem_euclid(self.step)
    }

    fn points_in_day(&self, midnight: i64) -> u64 {
        let r = self.first_point(midnight);
        if self.hist.is_empty() {
            self.points_between(r, DAY)
        } else {
            u64::from(self.hist[r as usize])
        }
    }

    /// Allowed grid points from `midnight` to before `rest` seconds after it.
    fn points_before(&self, midnight: i64, rest: i64) -> u64 {
        self.points_between(self.first_point(midnight), rest)
    }

    /// Grid points `r + k × step` (k ≥ 0) in the windows, before offset `end`.
    fn points_between(&self, r: i64, end: i64) -> u64 {
        // The first k whose point is at or after `x`.
        let k_from = |x: i64| (x - r + self.step - 1).div_euclid(self.step).max(0);
        self.windows
            .iter()
            .take_while(|(offset, _)| *offset < end)
            .map(|&(offset, len)| (k_from((offset + len).min(end)) - k_from(offset)) as u64)
            .sum()
    }
}

/// WEEKLY, MONTHLY and YEARLY: the crate's days per period, one time of day each, times the
/// timeset (BYSETPOS picking positions over days × times, as [`super::Walls`] does).
struct Periods<'a> {
    exp: &'a Expansion,
    /// The rule with a single time of day (midnight): its candidates are the days.
    days_rule: RRule<Unvalidated>,
    /// Every instance's time of day on its day, ascending.
    times: Vec<NaiveTime>,
    interval: i64,
    /// DTSTART's period.
    first: NaiveDateTime,
    /// Instances of whole years by (lengths of the year before, the year and the year after,
    /// weekday of 1 January, INTERVAL phase of the period holding 1 January).
    years: HashMap<(bool, bool, bool, Weekday, i64), u64>,
}

impl<'a> Periods<'a> {
    fn new(exp: &'a Expansion) -> Self {
        let Source::Crate { rule, interval, .. } = &exp.source else {
            unreachable!("WEEKLY and coarser come from the crate")
        };
        let mut times = Vec::new();
        for h in rule.get_by_hour() {
            for m in rule.get_by_minute() {
                for s in rule.get_by_second() {
                    times.push(
                        NaiveTime::from_hms_opt(u32::from(*h), u32::from(*m), u32::from(*s))
                            .expect("checked ranges"),
                    );
                }
            }
        }
        times.sort_unstable();
        times.dedup();
        Self {
            exp,
            days_rule: rule
                .clone()
                .by_hour(vec![0])
                .by_minute(vec![0])
                .by_second(vec![0]),
            times,
            interval: i64::from(*interval),
            first: period_start(exp.freq, exp.wkst, exp.dtstart),
            years: HashMap::new(),
        }
    }

    fn count(mut self, target: NaiveDateTime) -> Result<u64, RecurrenceError> {
        // DTSTART's first two years: its cut-off and the first WEEKLY period apply there.
        let y0 = self.exp.dtstart.year();
        let head = target.min(midnight(jan1(y0 + 2)));
        let mut walk = Walk::new(&self, None)?;
        let mut n = walk.count(&self, NaiveDateTime::MIN, head);
        if target <= head {
            return Ok(n);
        }
        // Whole years: remembered by kind and phase; a year not seen yet is counted by the
        // walk, which goes on from where it stands (one walk when the INTERVAL is so long
        // that phases seldom repeat) or starts again at the year's grid period.
        let mut walk_at = y0 + 2;
        for year in y0 + 2..target.year() {
            let key = self.key(year);
            // The expansion ends with year 9999: a period running into 10000 is cut short.
            if let Some(known) = self.years.get(&key).filter(|_| year < LAST_YEAR) {
                n += known;
                continue;
            }
            let start = midnight(jan1(year));
            if walk_at != year {
                walk = Walk::new(&self, self.exp.start_at(start))?;
            }
            let counted = walk.count(&self, start, midnight(jan1(year + 1)));
            self.years.insert(key, counted);
            n += counted;
            walk_at = year + 1;
        }
        let start = midnight(jan1(target.year()));
        if target > start {
            if walk_at != target.year() {
                walk = Walk::new(&self, self.exp.start_at(start))?;
            }
            n += walk.count(&self, start, target);
        }
        Ok(n)
    }

    /// What decides a whole year's count: the lengths of the year before, the year and the
    /// year after, the weekday of its 1 January and the INTERVAL phase of the period holding it.
    fn key(&self, year: i32) -> (bool, bool, bool, Weekday, i64) {
        let start = midnight(jan1(year));
        let period = period_start(self.exp.freq, self.exp.wkst, start);
        let index = match self.exp.freq {
            Frequency::Yearly => i64::from(period.year() - self.first.year()),
            Frequency::Monthly => months(period) - months(self.first),
            _ => (period - self.first).num_weeks(),
        };
        (
            is_leap(year - 1),
            is_leap(year),
            is_leap(year + 1),
            start.weekday(),
            index.rem_euclid(self.interval),
        )
    }

    /// The instances of one period (its allowed `days`) from `a` to before `b`.
    fn period(&self, key: NaiveDateTime, days: &[NaiveDate], a: NaiveDateTime, b: NaiveDateTime) -> u64 {
        let exp = self.exp;
        let counts = |wall: NaiveDateTime| wall >= a && wall < b && wall >= exp.dtstart;
        let t = self.times.len();
        if exp.by_set_pos.is_empty() {
            return days
                .iter()
                .map(|day| {
                    let whole = midnight(*day) >= a && midnight(*day + Duration::days(1)) <= b;
                    if whole && *day > exp.dtstart.date() {
                        t as u64
                    } else {
                        self.times
                            .iter()
                            .filter(|time| counts(day.and_time(**time)))
                            .count() as u64
                    }
                })
                .sum();
        }
        let mut days = days.to_vec();
        if exp.freq == Frequency::Weekly && key == self.first {
            // dateutil's first weekly period runs from DTSTART's day (as Walls does).
            days.retain(|d| *d >= exp.dtstart.date());
        }
        picks(&exp.by_set_pos, days.len() * t)
            .into_iter()
            .filter(|i| counts(days[i / t].and_time(self.times[i % t])))
            .count() as u64
    }
}

/// The crate's allowed days, period by period, from a grid period on.
struct Walk {
    candidates: RRuleSetIter,
    /// A candidate read past the period before it.
    ahead: Option<NaiveDateTime>,
    /// A period read whole but not counted yet (it begins at or after the last range's end).
    pending: Option<(NaiveDateTime, Vec<NaiveDate>)>,
    /// The last period counted: it may run on into the next range (a week into January).
    held: Option<(NaiveDateTime, Vec<NaiveDate>)>,
}

impl Walk {
    /// From the grid period `start` (`None`: DTSTART's).
    fn new(periods: &Periods<'_>, start: Option<NaiveDateTime>) -> Result<Self, RecurrenceError> {
        let set = crate_set(&periods.days_rule, start.unwrap_or(periods.first))?;
        Ok(Self {
            candidates: (&set).into_iter(),
            ahead: None,
            pending: None,
            held: None,
        })
    }

    /// The next period with a candidate (its allowed days, possibly none).
    fn read(&mut self, periods: &Periods<'_>) -> Option<(NaiveDateTime, Vec<NaiveDate>)> {
        let (freq, wkst) = (periods.exp.freq, periods.exp.wkst);
        let mut next = || {
            self.ahead
                .take()
                .or_else(|| self.candidates.next().map(|c| c.naive_utc()))
                .filter(|c| c.year() <= LAST_YEAR)
        };
        let first = next()?;
        let key = period_start(freq, wkst, first);
        let mut days = Vec::new();
        let mut c = Some(first);
        while let Some(day) = c {
            if period_start(freq, wkst, day) != key {
                self.ahead = Some(day);
                break;
            }
            if periods.exp.day_matches(day) {
                days.push(day.date());
            }
            c = next();
        }
        Some((key, days))
    }

    /// The instances from `a` to before `b` of the held period and the periods beginning
    /// before `b`; the walk then stands at the first period beginning at or after `b`.
    fn count(&mut self, periods: &Periods<'_>, a: NaiveDateTime, b: NaiveDateTime) -> u64 {
        let mut n = 0;
        if let Some((key, days)) = &self.held {
            n += periods.period(*key, days, a, b);
        }
        while let Some((key, days)) = self.pending.take().or_else(|| self.read(periods)) {
            if key >= b {
                self.pending = Some((key, days));
                break;
            }
            n += periods.period(key, &days, a, b);
            self.held = Some((key, days));
        }
        n
    }
}

/// The positions BYSETPOS picks among `len` candidates, ascending, each once.
fn picks(by_set_pos: &[i16], len: usize) -> Vec<usize> {
    let len = len as i64;
    let mut picked: Vec<usize> = by_set_pos
        .iter()
        .map(|&p| {
            if p > 0 {
                i64::from(p) - 1
            } else {
                len + i64::from(p)
            }
        })
        .filter(|i| (0..len).contains(i))
        .map(|i| i as usize)
        .collect();
    picked.sort_unstable();
    picked.dedup();
    picked
}

fn jan1(year: i32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, 1, 1).expect("years 0 to 10001 exist")
}

fn is_leap(year: i32) -> bool {
    NaiveDate::from_ymd_opt(year, 2, 29).is_some()
}

fn midnight(day: NaiveDate) -> NaiveDateTime {
    day.and_time(NaiveTime::MIN)
}

fn seconds(wall: NaiveDateTime) -> i64 {
    wall.and_utc().timestamp()
}

fn months(t: NaiveDateTime) -> i64 {
    i64::from(t.year()) * 12 + i64::from(t.month0())
}

#[cfg(test)]
mod tests {
    use super::super::super::rule::parse;
    use super::*;

    const EVERYWHERE: &[&str] = &[
        "2026-11-30T09:00:00",
        "1999-12-31T23:59:30",
        "2000-02-29T00:00:00",
        "2015-12-28T13:45:10",
        "1970-01-01T00:00:00",
    ];
    const ONE: &[&str] = &["2016-11-01T09:00:17"];
    const END_OF_CALENDAR: &[&str] = &["9990-06-15T12:00:00", "9998-12-27T07:00:00"];

    /// (rule, days asked about after DTSTART, DTSTARTs). The rules reach every path of the
    /// counting: each frequency, INTERVAL grids shorter and longer than a day, time windows,
    /// BYSETPOS within a minute, hour, day, week, month and year, numeric BYDAY, negative
    /// BYMONTHDAY and BYYEARDAY, BYWEEKNO, WKST, weeks across the new year, leap days, and the
    /// end of the calendar (year 9999).
    const CASES: &[(&str, i64, &[&str])] = &[
        ("FREQ=SECONDLY", 3, ONE),
        ("FREQ=SECONDLY;INTERVAL=7;BYHOUR=9;BYMINUTE=0,1", 1900, EVERYWHERE),
        ("FREQ=SECONDLY;INTERVAL=90;BYHOUR=9", 1500, ONE),
        ("FREQ=SECONDLY;INTERVAL=65521", 3700, EVERYWHERE),
        (
            "FREQ=SECONDLY;BYSECOND=0,30;BYMINUTE=15;BYHOUR=3,15;BYDAY=MO,FR",
            3700,
            EVERYWHERE,
        ),
        ("FREQ=MINUTELY;INTERVAL=7", 730, ONE),
        ("FREQ=MINUTELY;INTERVAL=45;BYDAY=SU;BYHOUR=22", 7300, EVERYWHERE),
        (
            "FREQ=MINUTELY;BYSECOND=10,20,40;BYSETPOS=-1,2;BYHOUR=8",
            1900,
            EVERYWHERE,
        ),
        ("FREQ=MINUTELY;INTERVAL=1441;BYMONTH=2,3", 7300, EVERYWHERE),
        (
            "FREQ=MINUTELY;INTERVAL=13;BYMONTHDAY=-1,15;BYHOUR=0,23",
            3700,
            EVERYWHERE,
        ),
        ("FREQ=HOURLY", 1100, EVERYWHERE),
        ("FREQ=HOURLY;INTERVAL=5;BYHOUR=1,6,11,16,21,0", 1900, EVERYWHERE),
        (
            "FREQ=HOURLY;BYHOUR=8,12,18;BYMINUTE=0,30;BYSETPOS=-1",
            3700,
            EVERYWHERE,
        ),
        (
            "FREQ=HOURLY;INTERVAL=25;BYDAY=MO;BYMINUTE=5,5,1",
            7300,
            EVERYWHERE,
        ),
        (
            "FREQ=HOURLY;INTERVAL=7;BYYEARDAY=1,-1,100;BYMINUTE=5,10",
            14600,
            EVERYWHERE,
        ),
        ("FREQ=HOURLY;INTERVAL=48", 11000, EVERYWHERE),
        ("FREQ=DAILY", 14600, EVERYWHERE),
        (
            "FREQ=DAILY;INTERVAL=3;BYMONTH=1,7;BYMONTHDAY=1,-1,29",
            14600,
            EVERYWHERE,
        ),
        (
            "FREQ=DAILY;BYHOUR=17,9,9;BYMINUTE=30,0,30;BYSETPOS=2,-1",
            11000,
            EVERYWHERE,
        ),
        ("FREQ=DAILY;INTERVAL=10;BYDAY=MO,TU", 22000, EVERYWHERE),
        ("FREQ=DAILY;INTERVAL=2", 3700, END_OF_CALENDAR),
        ("FREQ=WEEKLY", 22000, EVERYWHERE),
        ("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH", 22000, EVERYWHERE),
        ("FREQ=WEEKLY;BYDAY=MO,FR;BYSETPOS=1", 22000, EVERYWHERE),
        (
            "FREQ=WEEKLY;INTERVAL=3;WKST=SU;BYDAY=SA,SU,MO;BYSETPOS=-1,2;BYHOUR=18,9,18",
            22000,
            EVERYWHERE,
        ),
        (
            "FREQ=WEEKLY;BYMONTH=12,1;BYDAY=TU,SU;BYHOUR=0,23",
            22000,
            EVERYWHERE,
        ),
        ("FREQ=WEEKLY;BYDAY=TH,FR,SA;BYSETPOS=-1", 3700, END_OF_CALENDAR),
        ("FREQ=MONTHLY;BYDAY=-1FR", 36500, EVERYWHERE),
        ("FREQ=MONTHLY;INTERVAL=5;BYMONTHDAY=31,-3", 73000, EVERYWHERE),
        ("FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1", 36500, EVERYWHERE),
        (
            "FREQ=MONTHLY;BYDAY=MO,-5FR;BYHOUR=9,17;BYSETPOS=3,-2",
            36500,
            EVERYWHERE,
        ),
        ("FREQ=MONTHLY;INTERVAL=7;BYDAY=2TU,4TH", 55000, EVERYWHERE),
        ("FREQ=YEARLY", 146100, EVERYWHERE),
        ("FREQ=YEARLY;BYWEEKNO=1,53,-1;BYDAY=MO,SU", 146100, EVERYWHERE),
        ("FREQ=YEARLY;INTERVAL=3;BYYEARDAY=-1,60,366", 146100, EVERYWHERE),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", 146100, EVERYWHERE),
        ("FREQ=YEARLY;BYDAY=20MO,-53FR,1SU;BYHOUR=6,7", 146100, EVERYWHERE),
        (
            "FREQ=YEARLY;BYMONTH=1,12;BYDAY=-1SU,1MO;BYSETPOS=1,-1",
            110000,
            EVERYWHERE,
        ),
        (
            "FREQ=YEARLY;INTERVAL=4;BYWEEKNO=52;BYDAY=TU;WKST=SU",
            146100,
            EVERYWHERE,
        ),
        (
            "FREQ=YEARLY;BYWEEKNO=1,52,53;BYDAY=MO,TU,WE,TH,FR,SA,SU;BYSETPOS=1,-1",
            3700,
            END_OF_CALENDAR,
        ),
    ];

    /// Questions per series: points spread over the span, at odd times of day.
    const QUESTIONS: i64 = 40;

    #[test]
    fn counting_gives_what_walking_gives() {
        let mut checked = 0;
        let mut series = 0;
        for (rule, span, dtstarts) in CASES {
            for dtstart in *dtstarts {
                let dtstart = NaiveDateTime::parse_from_str(dtstart, "%Y-%m-%dT%H:%M:%S").unwrap();
                let exp = match Expansion::new(&parse(rule).unwrap(), dtstart) {
                    Ok(exp) => exp,
                    Err(e) => panic!("{rule} from {dtstart}: {e}"),
                };
                let end = (dtstart + Duration::days(*span)).min(midnight(jan1(LAST_YEAR + 1)));
                let walls: Vec<NaiveDateTime> = exp
                    .walls_of(exp.candidates_at(None).unwrap(), None)
                    .map(|w| w.unwrap())
                    .take_while(|w| *w < end)
                    .collect();
                series += 1;
                for k in 1..=QUESTIONS {
                    let from = dtstart + (end - dtstart) * k as i32 / QUESTIONS as i32
                        - Duration::seconds(k * 7919 % DAY);
                    let Some(target) = exp.start_at(from) else {
                        continue;
                    };
                    let walked = walls.partition_point(|w| *w < target) as u64;
                    assert_eq!(
                        exp.count_before(target).unwrap(),
                        walked,
                        "{rule} from {dtstart}, before {target}"
                    );
                    checked += 1;
                }
            }
        }
        assert_eq!(series, 179);
        assert_eq!(checked, 7148);
    }
}
