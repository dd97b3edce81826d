//! The RECUR value of RFC 5545 §3.3.10, parsed and checked by us.
//!
//! Every rejection of SPEC.md §7 that depends on the rule text alone happens here, with a
//! message naming the part. The `rrule` crate is not asked: it accepts some combinations RFC
//! 5545 forbids (numeric BYDAY with FREQ=WEEKLY/DAILY, BYSETPOS ranges per FREQ that are both
//! too loose and too tight), ignores others silently, and answers in its own words.

use super::RecurrenceError;
use chrono::{DateTime, NaiveDateTime, Utc, Weekday};
use rrule::Frequency;

/// Parts RFC 5545 allows in a RECUR value that this engine accepts (SPEC.md, case format).
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

/// The `rrule` crate stores INTERVAL as `u16`; larger intervals are refused with a message
/// rather than truncated.
const MAX_INTERVAL: u64 = u16::MAX as u64;

/// One BYDAY entry: `MO` (every Monday of the period) or `-1FR` (the last Friday).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DaySpec {
    pub ordinal: Option<i16>,
    pub weekday: Weekday,
}

/// A checked rule, as written (defaults from DTSTART are filled in by the expander).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    pub freq: Frequency,
    pub interval: u16,
    pub count: Option<u32>,
    pub until: Option<DateTime<Utc>>,
    pub wkst: Weekday,
    pub by_second: Vec<u8>,
    pub by_minute: Vec<u8>,
    pub by_hour: Vec<u8>,
    pub by_day: Vec<DaySpec>,
    pub by_month_day: Vec<i8>,
    pub by_year_day: Vec<i16>,
    pub by_week_no: Vec<i8>,
    pub by_month: Vec<u8>,
    pub by_set_pos: Vec<i16>,
    /// The rule as stored: upper case, no `RRULE:` prefix, parts in the order given.
    pub text: String,
}

fn bad(msg: impl Into<String>) -> RecurrenceError {
    RecurrenceError::Rule(msg.into())
}

/// Parses and checks an RFC 5545 RECUR value (an optional `RRULE:` prefix is accepted; part
/// names and values are not case-sensitive).
pub(crate) fn parse(rule: &str) -> Result<Rule, RecurrenceError> {
    let upper = rule.trim().to_ascii_uppercase();
    let body = upper.strip_prefix("RRULE:").unwrap_or(&upper);
    if body.is_empty() {
        return Err(bad("the rule is empty (write e.g. FREQ=WEEKLY;BYDAY=MO)"));
    }
    let mut r = Rule {
        freq: Frequency::Yearly,
        interval: 1,
        count: None,
        until: None,
        wkst: Weekday::Mon,
        by_second: vec![],
        by_minute: vec![],
        by_hour: vec![],
        by_day: vec![],
        by_month_day: vec![],
        by_year_day: vec![],
        by_week_no: vec![],
        by_month: vec![],
        by_set_pos: vec![],
        text: body.to_owned(),
    };
    let mut seen: Vec<&str> = Vec::new();
    for part in body.split(';') {
        if part.is_empty() {
            return Err(bad("empty part (a ';' too many)"));
        }
        let (name, value) = part
            .split_once('=')
            .ok_or_else(|| bad(format!("part {part:?} is not NAME=VALUE")))?;
        if !KNOWN_PARTS.contains(&name) {
            return Err(bad(format!(
                "unknown part {name:?} (allowed: {})",
                KNOWN_PARTS.join(", ")
            )));
        }
        if seen.contains(&name) {
            return Err(bad(format!("part {name} is repeated")));
        }
        seen.push(name);
        if value.is_empty() {
            return Err(bad(format!("{name} has no value")));
        }
        match name {
            "FREQ" => r.freq = parse_freq(value)?,
            "INTERVAL" => {
                let n = unsigned(name, value)?;
                if n == 0 {
                    return Err(bad("INTERVAL must be at least 1"));
                }
                if n > MAX_INTERVAL {
                    return Err(bad(format!(
                        "INTERVAL={n} is not supported (at most {MAX_INTERVAL})"
                    )));
                }
                r.interval = n as u16;
            }
            "COUNT" => {
                let n = unsigned(name, value)?;
                if n == 0 {
                    return Err(bad("COUNT must be at least 1 (COUNT=0 never fires)"));
                }
                r.count = Some(u32::try_from(n).map_err(|_| bad(format!("COUNT={n} is too large")))?);
            }
            "UNTIL" => r.until = Some(parse_until(value)?),
            "WKST" => {
                r.wkst = parse_weekday(value).ok_or_else(|| {
                    bad(format!(
                        "WKST={value}: not a weekday (MO, TU, WE, TH, FR, SA, SU)"
                    ))
                })?
            }
            "BYSECOND" => {
                r.by_second = list(name, value, |v| {
                    if v == 60 {
                        Err(bad("BYSECOND=60 (a leap second) is not supported"))
                    } else {
                        in_range(name, v, 0, 59).map(|v| v as u8)
                    }
                })?
            }
            "BYMINUTE" => r.by_minute = list(name, value, |v| in_range(name, v, 0, 59).map(|v| v as u8))?,
            "BYHOUR" => r.by_hour = list(name, value, |v| in_range(name, v, 0, 23).map(|v| v as u8))?,
            "BYMONTH" => r.by_month = list(name, value, |v| in_range(name, v, 1, 12).map(|v| v as u8))?,
            "BYMONTHDAY" => {
                r.by_month_day = list(name, value, |v| nonzero_range(name, v, 31).map(|v| v as i8))?
            }
            "BYYEARDAY" => {
                r.by_year_day = list(name, value, |v| nonzero_range(name, v, 366).map(|v| v as i16))?
            }
            "BYWEEKNO" => r.by_week_no = list(name, value, |v| nonzero_range(name, v, 53).map(|v| v as i8))?,
            "BYSETPOS" => {
                r.by_set_pos = list(name, value, |v| nonzero_range(name, v, 366).map(|v| v as i16))?
            }
            "BYDAY" => {
                r.by_day = value.split(',').map(parse_day).collect::<Result<_, _>>()?;
            }
            _ => unreachable!("every known part is handled"),
        }
    }
    if !seen.contains(&"FREQ") {
        return Err(bad(
            "FREQ is required (SECONDLY, MINUTELY, HOURLY, DAILY, WEEKLY, MONTHLY or YEARLY)",
        ));
    }
    if r.count.is_some() && r.until.is_some() {
        return Err(bad("COUNT and UNTIL must not occur together"));
    }
    check_combinations(&r)?;
    Ok(r)
}

/// The combinations RFC 5545 §3.3.10 forbids.
fn check_combinations(r: &Rule) -> Result<(), RecurrenceError> {
    let freq = freq_name(r.freq);
    if !r.by_month_day.is_empty() && r.freq == Frequency::Weekly {
        return Err(bad("BYMONTHDAY must not be used with FREQ=WEEKLY"));
    }
    if !r.by_year_day.is_empty()
        && matches!(r.freq, Frequency::Daily | Frequency::Weekly | Frequency::Monthly)
    {
        return Err(bad(format!("BYYEARDAY must not be used with FREQ={freq}")));
    }
    if !r.by_week_no.is_empty() && r.freq != Frequency::Yearly {
        return Err(bad(format!(
            "BYWEEKNO is only allowed with FREQ=YEARLY, not FREQ={freq}"
        )));
    }
    if let Some(d) = r.by_day.iter().find(|d| d.ordinal.is_some()) {
        let text = day_text(*d);
        if !matches!(r.freq, Frequency::Monthly | Frequency::Yearly) {
            return Err(bad(format!(
                "BYDAY={text}: a numeric BYDAY is only allowed with FREQ=MONTHLY or YEARLY, not FREQ={freq}"
            )));
        }
        if r.freq == Frequency::Yearly && !r.by_week_no.is_empty() {
            return Err(bad(format!(
                "BYDAY={text}: a numeric BYDAY must not be used with FREQ=YEARLY and BYWEEKNO"
            )));
        }
    }
    let other_by = !(r.by_second.is_empty()
        && r.by_minute.is_empty()
        && r.by_hour.is_empty()
        && r.by_day.is_empty()
        && r.by_month_day.is_empty()
        && r.by_year_day.is_empty()
        && r.by_week_no.is_empty()
        && r.by_month.is_empty());
    if !r.by_set_pos.is_empty() && !other_by {
        return Err(bad("BYSETPOS must be used together with another BYxxx part"));
    }
    Ok(())
}

fn parse_freq(value: &str) -> Result<Frequency, RecurrenceError> {
    Ok(match value {
        "SECONDLY" => Frequency::Secondly,
        "MINUTELY" => Frequency::Minutely,
        "HOURLY" => Frequency::Hourly,
        "DAILY" => Frequency::Daily,
        "WEEKLY" => Frequency::Weekly,
        "MONTHLY" => Frequency::Monthly,
        "YEARLY" => Frequency::Yearly,
        other => {
            return Err(bad(format!(
                "unknown FREQ {other:?} (SECONDLY, MINUTELY, HOURLY, DAILY, WEEKLY, MONTHLY or YEARLY)"
            )))
        }
    })
}

pub(crate) fn freq_name(f: Frequency) -> &'static str {
    match f {
        Frequency::Secondly => "SECONDLY",
        Frequency::Minutely => "MINUTELY",
        Frequency::Hourly => "HOURLY",
        Frequency::Daily => "DAILY",
        Frequency::Weekly => "WEEKLY",
        Frequency::Monthly => "MONTHLY",
        Frequency::Yearly => "YEARLY",
    }
}

fn parse_weekday(s: &str) -> Option<Weekday> {
    Some(match s {
        "MO" => Weekday::Mon,
        "TU" => Weekday::Tue,
        "WE" => Weekday::Wed,
        "TH" => Weekday::Thu,
        "FR" => Weekday::Fri,
        "SA" => Weekday::Sat,
        "SU" => Weekday::Sun,
        _ => return None,
    })
}

fn day_text(d: DaySpec) -> String {
    let wd = &format!("{:?}", d.weekday).to_ascii_uppercase()[..2];
    match d.ordinal {
        Some(n) => format!("{n}{wd}"),
        None => wd.to_owned(),
    }
}

/// `[+|-][1..53]XX` (RFC 5545 `weekdaynum`).
fn parse_day(item: &str) -> Result<DaySpec, RecurrenceError> {
    let err = || {
        bad(format!(
            "BYDAY value {item:?} is not a weekday like MO, 2TU or -1FR"
        ))
    };
    if item.len() < 2 || !item.is_char_boundary(item.len() - 2) {
        return Err(err());
    }
    let (num, wd) = item.split_at(item.len() - 2);
    let weekday = parse_weekday(wd).ok_or_else(err)?;
    if num.is_empty() {
        return Ok(DaySpec {
            ordinal: None,
            weekday,
        });
    }
    let digits = num.strip_prefix(['+', '-']).unwrap_or(num);
    if digits.is_empty() || digits.len() > 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    let n: i16 = num.trim_start_matches('+').parse().map_err(|_| err())?;
    if n == 0 || n.abs() > 53 {
        return Err(bad(format!(
            "BYDAY value {item:?}: the number must be 1 to 53 or -53 to -1"
        )));
    }
    Ok(DaySpec {
        ordinal: Some(n),
        weekday,
    })
}

/// An integer `[+|-]digits`.
fn integer(name: &str, item: &str) -> Result<i64, RecurrenceError> {
    let digits = item.strip_prefix(['+', '-']).unwrap_or(item);
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(format!("{name} value {item:?} is not an integer")));
    }
    item.trim_start_matches('+')
        .parse()
        .map_err(|_| bad(format!("{name} value {item:?} is not an integer")))
}

/// Digits only (INTERVAL, COUNT).
fn unsigned(name: &str, value: &str) -> Result<u64, RecurrenceError> {
    if value.len() > 12 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(format!("{name}={value} is not a positive integer")));
    }
    value
        .parse()
        .map_err(|_| bad(format!("{name}={value} is not a positive integer")))
}

fn in_range(name: &str, v: i64, lo: i64, hi: i64) -> Result<i64, RecurrenceError> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(bad(format!("{name} value {v} is out of range ({lo} to {hi})")))
    }
}

fn nonzero_range(name: &str, v: i64, max: i64) -> Result<i64, RecurrenceError> {
    if v != 0 && (-max..=max).contains(&v) {
        Ok(v)
    } else {
        Err(bad(format!(
            "{name} value {v} is out of range (1 to {max} or -{max} to -1)"
        )))
    }
}

fn list<T>(
    name: &str,
    value: &str,
    check: impl Fn(i64) -> Result<T, RecurrenceError>,
) -> Result<Vec<T>, RecurrenceError> {
    value
        .split(',')
        .map(|item| {
            if item.is_empty() {
                Err(bad(format!("{name} has an empty value in its list")))
            } else {
                check(integer(name, item)?)
            }
        })
        .collect()
}

/// UNTIL must be a UTC date-time (`YYYYMMDDTHHMMSSZ`): DTSTART has a zone (RFC 5545 §3.3.10).
fn parse_until(value: &str) -> Result<DateTime<Utc>, RecurrenceError> {
    let err = || {
        bad(format!(
            "UNTIL={value} must be a UTC date-time like 20261231T235959Z (the task has a time zone)"
        ))
    };
    let digits = value.strip_suffix('Z').ok_or_else(err)?;
    if digits.len() != 15 {
        return Err(err());
    }
    NaiveDateTime::parse_from_str(digits, "%Y%m%dT%H%M%S")
        .map(|t| t.and_utc())
        .map_err(|_| err())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejects(rule: &str, needle: &str) {
        let err = parse(rule).expect_err(rule).to_string();
        assert!(err.contains(needle), "{rule}: {err}");
    }

    #[test]
    fn parses_all_parts_case_insensitively() {
        let r =
            parse("rrule:freq=monthly;interval=2;byday=-1fr,+2MO,tu;bysetpos=-1;wkst=su;count=4").unwrap();
        assert_eq!(r.freq, Frequency::Monthly);
        assert_eq!(r.interval, 2);
        assert_eq!(r.count, Some(4));
        assert_eq!(r.wkst, Weekday::Sun);
        assert_eq!(
            r.by_day,
            [
                DaySpec {
                    ordinal: Some(-1),
                    weekday: Weekday::Fri
                },
                DaySpec {
                    ordinal: Some(2),
                    weekday: Weekday::Mon
                },
                DaySpec {
                    ordinal: None,
                    weekday: Weekday::Tue
                },
            ]
        );
        assert_eq!(
            r.text,
            "FREQ=MONTHLY;INTERVAL=2;BYDAY=-1FR,+2MO,TU;BYSETPOS=-1;WKST=SU;COUNT=4"
        );
    }

    #[test]
    fn rejects_what_spec_section_7_lists() {
        rejects("INTERVAL=2", "FREQ is required");
        rejects("FREQ=FORTNIGHTLY", "unknown FREQ");
        rejects("FREQ=DAILY;BYFOO=1", "unknown part");
        rejects("FREQ=DAILY;COUNT=2;COUNT=3", "repeated");
        rejects("FREQ=DAILY;COUNT=2;UNTIL=20260105T000000Z", "COUNT and UNTIL");
        rejects("FREQ=DAILY;UNTIL=20260105T000000", "UTC date-time");
        rejects("FREQ=DAILY;UNTIL=20260105", "UTC date-time");
        rejects("FREQ=DAILY;BYSECOND=60", "leap second");
        rejects("FREQ=DAILY;BYMINUTE=60", "out of range");
        rejects("FREQ=DAILY;BYHOUR=24", "out of range");
        rejects("FREQ=YEARLY;BYMONTH=13", "out of range");
        rejects("FREQ=MONTHLY;BYMONTHDAY=32", "out of range");
        rejects("FREQ=MONTHLY;BYMONTHDAY=0", "out of range");
        rejects("FREQ=YEARLY;BYYEARDAY=367", "out of range");
        rejects("FREQ=YEARLY;BYWEEKNO=54", "out of range");
        rejects("FREQ=MONTHLY;BYDAY=MO;BYSETPOS=0", "out of range");
        rejects("FREQ=MONTHLY;BYDAY=54MO", "1 to 53");
        rejects("FREQ=MONTHLY;BYDAY=XX", "not a weekday");
        rejects(
            "FREQ=WEEKLY;BYMONTHDAY=1",
            "BYMONTHDAY must not be used with FREQ=WEEKLY",
        );
        for f in ["DAILY", "WEEKLY", "MONTHLY"] {
            rejects(&format!("FREQ={f};BYYEARDAY=1"), "BYYEARDAY must not be used");
        }
        rejects(
            "FREQ=MONTHLY;BYWEEKNO=1",
            "BYWEEKNO is only allowed with FREQ=YEARLY",
        );
        rejects("FREQ=WEEKLY;BYDAY=1MO", "numeric BYDAY");
        rejects("FREQ=DAILY;BYDAY=-1FR", "numeric BYDAY");
        rejects("FREQ=YEARLY;BYWEEKNO=20;BYDAY=1MO", "BYWEEKNO");
        rejects("FREQ=MONTHLY;BYSETPOS=1", "another BYxxx");
        rejects("FREQ=DAILY;INTERVAL=0", "at least 1");
        rejects("FREQ=DAILY;COUNT=0", "at least 1");
        rejects("FREQ=DAILY;COUNT=-1", "positive integer");
        rejects("FREQ=DAILY;;COUNT=1", "empty part");
        rejects("FREQ=DAILY;COUNT", "NAME=VALUE");
        rejects("", "empty");
    }
}
