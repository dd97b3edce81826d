//! Differential test: `recur occurrences` against an independent reference implementation of
//! SPEC.md (`tests/reference/rrule_ref.py`: python-dateutil's rrule on floating wall times,
//! zoneinfo offsets, the gap/overlap rule of SPEC §2 applied explicitly from offsets).
//!
//! The rules are generated from a fixed seed (reproducible; `DIFF_SEED` and `DIFF_RULES`
//! override it and the number of rules), in 16 zones, half of them with DTSTART placed inside
//! a spring-forward gap or a fall-back overlap, or with the series running through one. Only
//! rules whose DTSTART is the first instance of the rule are used (SPEC §6), as checked by the
//! reference. Beside them, dense rules (MINUTELY, HOURLY, BYSETPOS, COUNT: `OLD_TEMPLATES`)
//! with DTSTART in 1970–2016 are asked about 2026–2027, where the engine starts its expansion
//! near the question instead of at DTSTART and the reference still walks from DTSTART.
//! Zero mismatches are allowed.
//!
//! The reference runs in the test virtualenv; without it (no `python3-venv`) the test is
//! skipped with a message, and fails under CI=true (`todo_events_testkit::require`).
//!
//! Zone data: both sides read IANA 2026f. The engine uses jiff's bundled tzdb
//! (`todo_events_domain::recurrence::TZDB_VERSION`), the reference the pinned `tzdata` pip
//! package (`.ci/python-requirements.txt`, 2026.6 = 2026f) with zoneinfo's search path emptied,
//! so the machine's own `/usr/share/zoneinfo` (older on most machines) is never read. The test
//! first checks the two versions are equal; because they are, the generated dates may span
//! 1950–2079 in every zone. (chrono-tz, which embeds 2025b, would disagree from 2025c on —
//! Africa/Casablanca from 2026-09-20 among others — which is one reason the engine does not
//! use it.) Dates before 1950 are left out only to keep the zones' local-mean-time eras,
//! with their odd-second offsets, out of the comparison's scope.
//!
//! Known deliberate difference, avoided by the generator: a BYDAY list that mixes plain and
//! numeric weekdays (`MO,-1FR`) is a union in RFC 5545 and in the engine, but an intersection
//! in dateutil (usually empty, so SPEC §6 would drop such rules anyway).

use crate::common::{agrees, answer, parse_answer_line, Answer};
use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, Timelike, Weekday};
use serde_json::{json, Value};
use std::path::PathBuf;
use todo_events_testkit::reference::Rng;

const ZONES: &[&str] = &[
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "America/St_Johns",
    "Europe/Dublin",
    "America/Santiago",
    "America/Havana",
    "Pacific/Apia",
    "Africa/Casablanca",
    "Australia/Sydney",
    "Asia/Tehran",
    "America/Sao_Paulo",
    "Antarctica/Troll",
    "Asia/Kolkata",
    "UTC",
];
const FIRST_YEAR: i32 = 1950;
const LAST_YEAR: i32 = 2079;

fn reference_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference/rrule_ref.py")
}

/// Runs the reference in `mode` on the items of the array `input` in two processes at once
/// (the reference is Python on one core; the machine has two), one given the even items and
/// the other the odd ones (the costly old rules come last: halves would leave one process
/// with all of them); `split` cuts each output into its items, which come back interleaved.
fn reference_two(mode: Option<&str>, input: &[Value], split: fn(&str) -> Vec<String>) -> Vec<String> {
    let part =
        |parity: usize| -> Value { Value::Array(input.iter().skip(parity).step_by(2).cloned().collect()) };
    let (even, odd) = std::thread::scope(|scope| {
        let even = scope.spawn(|| split(&reference(mode, &part(0))));
        let odd = scope.spawn(|| split(&reference(mode, &part(1))));
        (even.join().unwrap(), odd.join().unwrap())
    });
    assert_eq!(even.len() + odd.len(), input.len(), "one answer per item");
    let mut odd = odd.into_iter();
    even.into_iter()
        .flat_map(|e| std::iter::once(e).chain(odd.next()))
        .collect()
}

/// Runs the reference in `mode` with `input` on stdin; its stdout.
fn reference(mode: Option<&str>, input: &Value) -> String {
    let args: Vec<&str> = mode.into_iter().collect();
    let out = todo_events_testkit::reference::run(&reference_script(), &args, &input.to_string());
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Exit status 1 means "some case was an error" (SPEC.md); anything else is a crash.
    assert!(
        matches!(out.status.code(), Some(0 | 1)) && stderr.trim().is_empty(),
        "the reference failed ({:?}): {stderr}",
        out.status
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn weekday_code(w: Weekday) -> &'static str {
    ["MO", "TU", "WE", "TH", "FR", "SA", "SU"][w.num_days_from_monday() as usize]
}

fn days_in_month(y: i32, m: u32) -> u32 {
    let next = if m == 12 {
        NaiveDate::from_ymd_opt(y + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(y, m + 1, 1)
    };
    next.unwrap().pred_opt().unwrap().day()
}

fn days_in_year(y: i32) -> u32 {
    if NaiveDate::from_ymd_opt(y, 2, 29).is_some() {
        366
    } else {
        365
    }
}

/// RFC 5545 week numbering: weeks start on `wkst`, week 1 has at least four days of the year.
fn week1_start(year: i32, wkst: Weekday) -> NaiveDate {
    let jan1 = NaiveDate::from_ymd_opt(year, 1, 1).unwrap();
    let offset = (7 + jan1.weekday().num_days_from_monday() - wkst.num_days_from_monday()) % 7;
    if offset <= 3 {
        jan1 - Duration::days(i64::from(offset))
    } else {
        jan1 + Duration::days(i64::from(7 - offset))
    }
}

/// The BYWEEKNO values (positive and negative form) that select `d`'s week in `d`'s year.
fn week_numbers(d: NaiveDate, wkst: Weekday) -> Option<(i64, i64)> {
    let start = week1_start(d.year(), wkst);
    let next = week1_start(d.year() + 1, wkst);
    if d < start || d >= next {
        return None; // belongs to a week of the neighbouring year
    }
    let weeks = (next - start).num_days() / 7;
    let n = (d - start).num_days() / 7 + 1;
    Some((n, n - weeks - 1))
}

/// A few distinct values, `own` among them (if given), from `others`.
fn set_with(rng: &mut Rng, own: Option<i64>, others: impl Fn(&mut Rng) -> i64) -> Vec<i64> {
    let mut v = vec![own.unwrap_or_else(|| others(rng))];
    for _ in 0..rng.below(3) {
        v.push(others(rng));
    }
    v.sort();
    v.dedup();
    // Not always in ascending order: order does not matter to RFC 5545.
    if rng.chance(30) {
        v.reverse();
    }
    v
}

fn join(v: &[i64]) -> String {
    v.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

/// One generated rule: text, the wall time to search its first instance from, zone, and how
/// to list it.
#[derive(Debug, Clone)]
struct Draft {
    kind: &'static str,
    rule: String,
    start: NaiveDateTime,
    zone: &'static str,
    freq: &'static str,
    interval: i64,
    /// For rules without COUNT: an UNTIL at least this far after DTSTART (keeps the first
    /// instance before UNTIL), or no UNTIL.
    until_window: Option<(Duration, Duration)>,
}

fn period(freq: &str) -> Duration {
    match freq {
        "YEARLY" => Duration::days(366),
        "MONTHLY" => Duration::days(31),
        "WEEKLY" => Duration::days(7),
        "DAILY" => Duration::days(1),
        "HOURLY" => Duration::hours(1),
        "MINUTELY" => Duration::minutes(1),
        _ => Duration::seconds(1),
    }
}

/// A rule of `freq` that the wall time `s` satisfies: every BYxxx list contains `s`'s own
/// value, so `s` is an instance unless BYSETPOS or the INTERVAL grid says otherwise.
///
/// With `free`, the day-level lists (BYMONTH, BYWEEKNO, BYMONTHDAY, BYYEARDAY, BYDAY) are
/// random instead: the first instance then lies somewhere after `s`, or nowhere.
fn rule_for(rng: &mut Rng, freq: &'static str, s: NaiveDateTime, rich: bool, free: bool) -> (String, i64) {
    let own = |v: i64| (!free).then_some(v);
    let mut parts = vec![format!("FREQ={freq}")];
    let sub_daily = matches!(freq, "HOURLY" | "MINUTELY" | "SECONDLY");
    let interval = match freq {
        "MINUTELY" if rng.chance(50) => *rng.pick(&[5, 15, 30, 45, 90, 7]),
        "SECONDLY" => *rng.pick(&[1, 10, 30, 59, 600, 3600]),
        _ if rng.chance(35) => rng.range(2, 5),
        _ => 1,
    };
    if interval > 1 || rng.chance(20) {
        parts.push(format!("INTERVAL={interval}"));
    }
    let wkst = *rng.pick(&[Weekday::Mon, Weekday::Sun, Weekday::Sat, Weekday::Wed]);
    if freq == "WEEKLY" || rng.chance(15) {
        parts.push(format!("WKST={}", weekday_code(wkst)));
    }
    let dim = days_in_month(s.year(), s.month()) as i64;
    let diy = days_in_year(s.year()) as i64;
    let mut has_by = false;
    // How many of each time part a period holds (1 for a part that is stepped or defaulted).
    let (mut hours_n, mut minutes_n, mut seconds_n) = (1i64, 1i64, 1i64);
    if rich {
        if rng.chance(30) {
            parts.push(format!(
                "BYMONTH={}",
                join(&set_with(rng, own(i64::from(s.month())), |r| r.range(1, 12)))
            ));
            has_by = true;
        }
        let weekno = if freq == "YEARLY" && rng.chance(20) {
            week_numbers(s.date(), wkst)
        } else {
            None
        };
        if let Some((pos, neg)) = weekno {
            let mine = if rng.chance(70) { pos } else { neg };
            parts.push(format!(
                "BYWEEKNO={}",
                join(&set_with(rng, own(mine), |r| r.range(1, 52)))
            ));
            has_by = true;
        }
        if freq != "WEEKLY" && weekno.is_none() && rng.chance(30) {
            let mine = if rng.chance(70) {
                i64::from(s.day())
            } else {
                i64::from(s.day()) - dim - 1
            };
            parts.push(format!(
                "BYMONTHDAY={}",
                join(&set_with(rng, own(mine), |r| if r.chance(70) {
                    r.range(1, 28)
                } else {
                    r.range(-31, -1)
                }))
            ));
            has_by = true;
        }
        if (freq == "YEARLY" || sub_daily) && weekno.is_none() && rng.chance(15) {
            let mine = if rng.chance(70) {
                i64::from(s.ordinal())
            } else {
                i64::from(s.ordinal()) - diy - 1
            };
            parts.push(format!(
                "BYYEARDAY={}",
                join(&set_with(rng, own(mine), |r| r.range(1, 365)))
            ));
            has_by = true;
        }
        if rng.chance(40) {
            // Numeric BYDAY only where RFC 5545 allows it, and never mixed with plain days.
            let numeric = matches!(freq, "MONTHLY" | "YEARLY") && weekno.is_none() && rng.chance(60);
            let text = if numeric {
                let in_month = freq == "MONTHLY" || parts.iter().any(|p| p.starts_with("BYMONTH="));
                let (index, last) = if in_month {
                    (i64::from(s.day()), dim)
                } else {
                    (i64::from(s.ordinal()), diy)
                };
                let n = if rng.chance(60) {
                    (index - 1) / 7 + 1
                } else {
                    -((last - index) / 7 + 1)
                };
                let mut days = if free {
                    let m = rng.range(1, if in_month { 5 } else { 53 });
                    let m = if rng.chance(50) { m } else { -m };
                    vec![format!(
                        "{m}{}",
                        weekday_code(Weekday::try_from(rng.below(7) as u8).unwrap())
                    )]
                } else {
                    vec![format!("{n}{}", weekday_code(s.weekday()))]
                };
                if rng.chance(40) {
                    let m = if in_month {
                        rng.range(1, 5)
                    } else {
                        rng.range(1, 53)
                    };
                    let m = if rng.chance(50) { m } else { -m };
                    days.push(format!(
                        "{m}{}",
                        weekday_code(*rng.pick(&[Weekday::Mon, Weekday::Fri, Weekday::Sun]))
                    ));
                }
                days.join(",")
            } else {
                let mut days = vec![if free {
                    Weekday::try_from(rng.below(7) as u8).unwrap()
                } else {
                    s.weekday()
                }];
                for _ in 0..rng.below(3) {
                    days.push(Weekday::try_from(rng.below(7) as u8).unwrap());
                }
                days.dedup();
                days.iter()
                    .map(|d| weekday_code(*d))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            parts.push(format!("BYDAY={text}"));
            has_by = true;
        }
        // DTSTART's own hour/minute/second is in each list and on the INTERVAL grid, so
        // the grid always reaches the lists.
        if rng.chance(30) {
            let hours = set_with(rng, Some(i64::from(s.hour())), |r| r.range(0, 23));
            hours_n = hours.len() as i64;
            parts.push(format!("BYHOUR={}", join(&hours)));
            has_by = true;
        }
        if rng.chance(25) {
            let minutes = set_with(rng, Some(i64::from(s.minute())), |r| {
                let any = r.range(0, 59);
                *r.pick(&[0, 15, 30, 45, any])
            });
            minutes_n = minutes.len() as i64;
            parts.push(format!("BYMINUTE={}", join(&minutes)));
            has_by = true;
        }
        if rng.chance(10) {
            let seconds = set_with(rng, Some(i64::from(s.second())), |r| r.range(0, 59));
            seconds_n = seconds.len() as i64;
            parts.push(format!("BYSECOND={}", join(&seconds)));
            has_by = true;
        }
        if has_by && rng.chance(25) {
            // A position every non-empty period has: +-1, or +-2 when a period that has a
            // matching day (or hour, minute) holds at least two times.
            let per_period = match freq {
                "SECONDLY" => 1,
                "MINUTELY" => seconds_n,
                "HOURLY" => minutes_n * seconds_n,
                _ => hours_n * minutes_n * seconds_n,
            };
            let max = if per_period >= 2 { 2 } else { 1 };
            let p = rng.range(1, max);
            let mut pos = vec![if rng.chance(50) { p } else { -p }];
            if rng.chance(30) {
                pos.push(-pos[0]);
            }
            parts.push(format!("BYSETPOS={}", join(&pos)));
        }
    }
    (parts.join(";"), interval)
}

/// Gap and overlap windows of a zone, as wall times: `[first, end)`.
#[derive(Debug, Clone, Copy)]
struct Window {
    first: NaiveDateTime,
    end: NaiveDateTime,
    gap: bool,
    at: NaiveDateTime,
}

fn windows(transitions: &Value) -> Vec<Window> {
    transitions
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| {
            let at = chrono::DateTime::from_timestamp(t[0].as_i64()?, 0)?.naive_utc();
            let (before, after) = (t[1].as_i64()?, t[2].as_i64()?);
            let a = at + Duration::seconds(before);
            let b = at + Duration::seconds(after);
            // Keep the windows of at least a minute whose walls lie in the generated years.
            (a.year() >= FIRST_YEAR && a.year() <= LAST_YEAR && (b - a).num_seconds().abs() >= 60).then_some(
                if after > before {
                    Window {
                        first: a,
                        end: b,
                        gap: true,
                        at,
                    }
                } else {
                    Window {
                        first: b,
                        end: a,
                        gap: false,
                        at,
                    }
                },
            )
        })
        .collect()
}

fn in_window(ws: &[Window], t: NaiveDateTime) -> Option<bool> {
    ws.iter().find(|w| w.first <= t && t < w.end).map(|w| w.gap)
}

/// A random wall time inside the window, on a whole minute (often on the hour edge).
fn wall_in(rng: &mut Rng, w: &Window) -> NaiveDateTime {
    let minutes = ((w.end - w.first).num_minutes()).max(1);
    let t = if rng.chance(25) {
        w.first
    } else {
        w.first + Duration::minutes(rng.below(minutes as u64) as i64)
    };
    t.with_second(0).unwrap().max(w.first)
}

fn draft_spot(rng: &mut Rng, zone: &'static str, w: &Window) -> Draft {
    let s = wall_in(rng, w);
    let inside = rng.chance(60);
    if inside {
        // DTSTART itself in the gap or overlap.
        let freq = *rng.pick(&[
            "YEARLY", "MONTHLY", "WEEKLY", "DAILY", "DAILY", "HOURLY", "MINUTELY",
        ]);
        let rich = rng.chance(50);
        let (rule, interval) = rule_for(rng, freq, s, rich, false);
        let until_window = Some((Duration::hours(26), period(freq) * 40 * interval as i32));
        Draft {
            kind: if w.gap {
                "dtstart-in-gap"
            } else {
                "dtstart-in-overlap"
            },
            rule,
            start: s,
            zone,
            freq,
            interval,
            until_window,
        }
    } else {
        // The series runs through the window; UNTIL (if any) falls near the transition.
        let (freq, back) = *rng.pick(&[
            ("DAILY", Duration::days(3)),
            ("HOURLY", Duration::hours(30)),
            ("MINUTELY", Duration::hours(27)),
            ("WEEKLY", Duration::days(14)),
        ]);
        let (rule, interval) = rule_for(rng, freq, s, false, false);
        let start = s - back;
        let near = w.at - start;
        let until_window = Some((near - Duration::hours(2), near + Duration::hours(3)));
        Draft {
            kind: if w.gap { "through-gap" } else { "through-overlap" },
            rule,
            start,
            zone,
            freq,
            interval,
            until_window,
        }
    }
}

fn draft_broad(rng: &mut Rng) -> Draft {
    let zone = *rng.pick(ZONES);
    let date = NaiveDate::from_yo_opt(rng.range(FIRST_YEAR as i64, LAST_YEAR as i64) as i32, 1).unwrap()
        + Duration::days(rng.range(0, 364));
    let time = chrono::NaiveTime::from_hms_opt(
        rng.below(24) as u32,
        if rng.chance(50) { 0 } else { rng.below(60) as u32 },
        if rng.chance(85) { 0 } else { rng.below(60) as u32 },
    )
    .unwrap();
    let s = date.and_time(time);
    let freq = *rng.pick(&[
        "YEARLY", "YEARLY", "MONTHLY", "MONTHLY", "WEEKLY", "WEEKLY", "DAILY", "DAILY", "HOURLY", "MINUTELY",
        "SECONDLY",
    ]);
    let rich = rng.chance(75);
    // Free day lists only where a period is cheap for dateutil to skip (it may search far).
    let free = rich && matches!(freq, "YEARLY" | "MONTHLY" | "WEEKLY") && rng.chance(40);
    let (rule, interval) = rule_for(rng, freq, s, rich, free);
    Draft {
        kind: if free { "broad-free" } else { "broad" },
        rule,
        start: s,
        zone,
        freq,
        interval,
        until_window: Some((Duration::hours(26), period(freq) * 60 * interval as i32)),
    }
}

/// Dense rules started long ago (DTSTART in 1970–2016) and asked about 2026–2027: the engine
/// must give the same answers without walking from DTSTART (`Expansion::walls_from`). Each
/// template is (rule, instances per year at most, COUNT rule). dateutil walks every instance
/// from DTSTART, so the start year is chosen to keep that walk under ~300 000 instances.
const OLD_TEMPLATES: &[(&str, f64, bool)] = &[
    ("FREQ=MINUTELY;INTERVAL=7", 75_086.0, false),
    ("FREQ=MINUTELY;INTERVAL=13", 40_431.0, false),
    ("FREQ=MINUTELY;INTERVAL=45", 11_680.0, false),
    ("FREQ=MINUTELY;INTERVAL=20;BYHOUR=9,17", 1_100.0, false),
    ("FREQ=MINUTELY;INTERVAL=10;BYDAY=MO,FR;BYHOUR=8", 650.0, false),
    ("FREQ=HOURLY", 8_784.0, false),
    ("FREQ=HOURLY;INTERVAL=5", 1_757.0, false),
    ("FREQ=HOURLY;INTERVAL=3;BYMINUTE=5,35;BYSETPOS=-1", 2_928.0, false),
    ("FREQ=DAILY;BYHOUR=8,20;BYMINUTE=0;BYSETPOS=2", 366.0, false),
    ("FREQ=WEEKLY;INTERVAL=3;BYDAY=MO,FR", 35.0, false),
    (
        "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=9;BYMINUTE=0;BYSETPOS=-1",
        12.0,
        false,
    ),
    ("FREQ=MONTHLY;INTERVAL=5;BYMONTHDAY=31", 3.0, false),
    ("FREQ=YEARLY;BYWEEKNO=1,20;BYDAY=MO", 2.0, false),
    ("FREQ=HOURLY;COUNT=3000", 8_784.0, true),
    ("FREQ=MINUTELY;INTERVAL=10;COUNT=20000", 52_704.0, true),
    (
        "FREQ=DAILY;BYHOUR=6,18;BYMINUTE=30;BYSETPOS=1;COUNT=400",
        366.0,
        true,
    ),
];

/// One draft per template (and zone), DTSTART searched from a start in 1970–2016.
fn old_drafts(rng: &mut Rng, rounds: usize) -> Vec<Draft> {
    let mut drafts = Vec::new();
    for round in 0..rounds {
        for (i, &(rule, per_year, _)) in OLD_TEMPLATES.iter().enumerate() {
            // At most ~300 000 instances between DTSTART and 2028 for dateutil to walk.
            let earliest = (2028.0 - 300_000.0 / per_year).ceil().max(1970.0) as i64;
            let year = rng.range(earliest.min(2016), 2016) as i32;
            let date = NaiveDate::from_yo_opt(year, 1).unwrap() + Duration::days(rng.range(0, 364));
            let time =
                chrono::NaiveTime::from_hms_opt(rng.below(24) as u32, rng.below(60) as u32, 0).unwrap();
            drafts.push(Draft {
                kind: "old",
                rule: rule.to_owned(),
                start: date.and_time(time),
                zone: ZONES[(round * OLD_TEMPLATES.len() + i) % ZONES.len()],
                freq: "OLD",
                interval: 1,
                until_window: None,
            });
        }
    }
    drafts
}

/// The SPEC case of an old draft: `after` somewhere in 2026–2027 (within the series for a
/// COUNT rule, which ends: there, between its start and a little past its end).
fn old_case(rng: &mut Rng, id: usize, d: &Draft, dtstart: NaiveDateTime, counted: bool) -> Value {
    let after = if counted {
        let count: i64 = d.rule.rsplit("COUNT=").next().unwrap().parse().unwrap();
        let per_year = OLD_TEMPLATES.iter().find(|t| t.0 == d.rule).unwrap().1;
        let span = Duration::seconds((count as f64 / per_year * 365.25 * 86_400.0 * 1.1) as i64);
        dtstart + Duration::seconds(rng.range(0, span.num_seconds()))
    } else {
        NaiveDate::from_ymd_opt(2026, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            + Duration::seconds(rng.range(0, 2 * 365 * 86_400))
    };
    json!({
        "id": format!("old-{id}"),
        "rrule": d.rule,
        "tz": d.zone,
        "dtstart": dtstart.format("%Y-%m-%dT%H:%M:%S").to_string(),
        "after": rfc3339_with_offset(rng, after),
        "count": rng.range(1, 20),
    })
}

fn rfc3339_with_offset(rng: &mut Rng, t: NaiveDateTime) -> String {
    let offset = *rng.pick(&[0, 0, 0, 19800, -10800, 50400, -34200]);
    if offset == 0 {
        return format!("{}Z", t.format("%Y-%m-%dT%H:%M:%S"));
    }
    let local = t + Duration::seconds(offset);
    let (sign, abs) = if offset < 0 { ('-', -offset) } else { ('+', offset) };
    format!(
        "{}{sign}{:02}:{:02}",
        local.format("%Y-%m-%dT%H:%M:%S"),
        abs / 3600,
        abs / 60 % 60
    )
}

/// Turns a draft with its checked DTSTART into a SPEC case.
fn case(rng: &mut Rng, id: usize, d: &Draft, dtstart: NaiveDateTime) -> Value {
    let mut rule = d.rule.clone();
    let step = period(d.freq) * d.interval as i32;
    if let Some((lo, hi)) = d.until_window.filter(|_| rng.chance(25)) {
        let lo = lo.max(Duration::hours(26));
        let hi = hi.max(lo + Duration::hours(1));
        let until = dtstart + lo + Duration::seconds(rng.range(0, (hi - lo).num_seconds()));
        rule += &format!(";UNTIL={}", until.format("%Y%m%dT%H%M%SZ"));
    } else if rng.chance(25) {
        rule += &format!(";COUNT={}", rng.range(1, 30));
    }
    let mut c = json!({
        "id": format!("gen-{id}-{}", d.kind),
        "tz": d.zone,
        "dtstart": dtstart.format("%Y-%m-%dT%H:%M:%S").to_string(),
        "count": if rng.chance(3) { 0 } else { rng.range(1, 20) },
    });
    match pattern_form(&rule) {
        Some((pattern, interval, until, limit)) if rng.chance(30) => {
            c["pattern"] = json!(pattern);
            if interval != 1 || rng.chance(50) {
                c["interval"] = json!(interval);
            }
            if let Some(u) = until {
                c["until"] = json!(rfc3339_with_offset(rng, u));
            }
            if let Some(n) = limit {
                c["limit"] = json!(n);
            }
        }
        _ => {
            c["rrule"] = json!(if rng.chance(10) {
                format!("RRULE:{}", rule.to_lowercase())
            } else {
                rule
            })
        }
    }
    if !rng.chance(20) {
        let k = rng.range(-2, 40);
        let after = dtstart + step * k as i32 + Duration::seconds(rng.range(-2 * 86400, 2 * 86400));
        c["after"] = json!(rfc3339_with_offset(rng, after));
    }
    c
}

/// The pattern form of a rule, when it has one: (pattern, interval, until, limit).
type PatternForm = (&'static str, i64, Option<NaiveDateTime>, Option<i64>);

fn pattern_form(rule: &str) -> Option<PatternForm> {
    let mut parts = rule.split(';');
    let freq = match parts.next()? {
        "FREQ=DAILY" => "daily",
        "FREQ=WEEKLY" => "weekly",
        "FREQ=MONTHLY" => "monthly",
        "FREQ=YEARLY" => "yearly",
        _ => return None,
    };
    let (mut interval, mut until, mut limit) = (1, None, None);
    for p in parts {
        let (name, value) = p.split_once('=')?;
        match name {
            "INTERVAL" => interval = value.parse().ok()?,
            "UNTIL" => until = Some(NaiveDateTime::parse_from_str(value, "%Y%m%dT%H%M%SZ").ok()?),
            "COUNT" => limit = Some(value.parse().ok()?),
            _ => return None,
        }
    }
    Some((freq, interval, until, limit))
}

/// With `DIFF_DUMP=<dir>`, the generated inputs are written there, to replay a mismatch
/// with `rrule_ref.py` or `recur occurrences` by hand.
fn dump(name: &str, v: &Value) {
    if let Ok(dir) = std::env::var("DIFF_DUMP") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            PathBuf::from(dir).join(name),
            serde_json::to_string_pretty(v).unwrap(),
        )
        .unwrap();
    }
}

#[test]
fn recur_occurrences_agrees_with_the_reference_implementation() {
    // The reference runs in the test virtualenv (python-dateutil, tzdata).
    if todo_events_testkit::require::python().is_none() {
        return;
    }
    // Same zone data on both sides, or the comparison means nothing.
    let py_version = reference(Some("--tzdata-version"), &json!(null))
        .trim()
        .to_owned();
    assert_eq!(
        py_version,
        todo_events_domain::recurrence::TZDB_VERSION,
        "the reference's tzdata and the engine's bundled tzdb must be the same IANA release"
    );
    // The reference itself must reproduce SPEC.md's own answers.
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/recurrence");
    let examples: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("cases_public.json")).unwrap()).unwrap();
    let expected = crate::common::read_expected(&data.join("expected_public.jsonl"));
    let ref_answers: Vec<_> = reference(None, &examples)
        .lines()
        .map(|l| parse_answer_line(l).unwrap().1)
        .collect();
    assert_eq!(
        ref_answers,
        expected.into_iter().map(|(_, a)| a).collect::<Vec<_>>(),
        "reference vs SPEC examples"
    );

    let seed = std::env::var("DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_127u64);
    let rules: usize = std::env::var("DIFF_RULES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1200);
    let mut rng = Rng(seed);

    let transitions: Value = serde_json::from_str(&reference(
        Some("--transitions"),
        &json!({"zones": ZONES, "from": format!("{FIRST_YEAR}-01-01T00:00:00Z"), "to": format!("{}-01-01T00:00:00Z", LAST_YEAR + 1)}),
    ))
    .unwrap();
    let zone_windows: Vec<(&'static str, Vec<Window>)> =
        ZONES.iter().map(|z| (*z, windows(&transitions[*z]))).collect();

    let mut drafts = Vec::new();
    while drafts.len() < rules {
        if drafts.len() % 2 == 0 {
            drafts.push(draft_broad(&mut rng));
        } else {
            let (zone, ws) = rng.pick(&zone_windows);
            if ws.is_empty() {
                continue;
            }
            let w = *rng.pick(ws);
            drafts.push(draft_spot(&mut rng, zone, &w));
        }
    }
    let fresh = drafts.len();
    drafts.extend(old_drafts(&mut rng, 2));
    let searches = Value::Array(
        drafts
            .iter()
            .map(|d| json!({"rule": d.rule, "start": d.start.format("%Y-%m-%dT%H:%M:%S").to_string()}))
            .collect(),
    );
    dump("first-walls.json", &searches);
    let firsts: Vec<Option<String>> =
        reference_two(Some("--first-walls"), searches.as_array().unwrap(), |out| {
            let items: Vec<Value> = serde_json::from_str(out).unwrap();
            items.iter().map(Value::to_string).collect()
        })
        .iter()
        .map(|item| serde_json::from_str(item).unwrap())
        .collect();
    let mut cases = Vec::new();
    let (mut in_gap, mut in_overlap) = (0, 0);
    let mut zones_used = std::collections::BTreeSet::new();
    let mut old_cases = 0;
    for (i, (d, first)) in drafts.iter().zip(&firsts).enumerate() {
        let Some(first) = first else { continue };
        let dtstart = NaiveDateTime::parse_from_str(first, "%Y-%m-%dT%H:%M:%S").unwrap();
        if i >= fresh {
            assert!(
                (1970..=2017).contains(&dtstart.year()),
                "{d:?}: DTSTART {dtstart}"
            );
            old_cases += 1;
            cases.push(old_case(&mut rng, i, d, dtstart, d.rule.contains("COUNT=")));
            continue;
        }
        if dtstart.year() > LAST_YEAR + 1 {
            continue;
        }
        let ws = &zone_windows.iter().find(|(z, _)| *z == d.zone).unwrap().1;
        match in_window(ws, dtstart) {
            Some(true) => in_gap += 1,
            Some(false) => in_overlap += 1,
            None => {}
        }
        zones_used.insert(d.zone);
        cases.push(case(&mut rng, i, d, dtstart));
    }

    let cases_json = Value::Array(cases.clone());
    dump("cases.json", &cases_json);
    let expected: Vec<Answer> = reference_two(None, &cases, |out| out.lines().map(str::to_owned).collect())
        .iter()
        .map(|l| parse_answer_line(l).unwrap().1)
        .collect();
    assert_eq!(expected.len(), cases.len());

    // The binary, on both cores.
    let got: Vec<Answer> = std::thread::scope(|scope| {
        let half = cases.len().div_ceil(2);
        let workers: Vec<_> = cases
            .chunks(half.max(1))
            .map(|chunk| scope.spawn(move || chunk.iter().map(answer).collect::<Vec<_>>()))
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    });

    let mut mismatches = Vec::new();
    let (mut occurrences, mut errors, mut old_occurrences) = (0, 0, 0);
    for ((c, want), got) in cases.iter().zip(&expected).zip(&got) {
        match want {
            Answer::Occurrences(list) => occurrences += list.len(),
            Answer::Error(_) => errors += 1,
        }
        if let (true, Answer::Occurrences(list)) = (c["id"].as_str().unwrap().starts_with("old-"), want) {
            old_occurrences += list.len();
        }
        if !agrees(want, got) {
            mismatches.push(format!("{c}\n  reference {want:?}\n  recur     {got:?}"));
        }
    }
    eprintln!(
        "differential: seed {seed}, {} rules generated, {} used (DTSTART matches the rule), {} zones, \
         {in_gap} DTSTARTs in gaps, {in_overlap} in overlaps, {occurrences} occurrences compared, \
         {errors} rejected by both, {old_cases} with DTSTART in 1970–2016 asked about 2026–2027 \
         ({old_occurrences} of the occurrences), {} mismatches",
        drafts.len(),
        cases.len(),
        zones_used.len(),
        mismatches.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} of {} cases differ; first ones:\n{}",
        mismatches.len(),
        cases.len(),
        mismatches.iter().take(15).cloned().collect::<Vec<_>>().join("\n")
    );
    assert_eq!(zones_used.len(), ZONES.len(), "every zone is exercised");
    assert_eq!(
        old_cases,
        2 * OLD_TEMPLATES.len(),
        "every old-DTSTART draft found its DTSTART"
    );
    assert!(
        old_occurrences >= 200,
        "old-DTSTART occurrences compared: {old_occurrences}"
    );
    assert!(
        in_gap >= 50 && in_overlap >= 50,
        "DTSTARTs in gaps {in_gap}, in overlaps {in_overlap}"
    );
    assert!(
        cases.len() - old_cases >= rules * 3 / 4,
        "most generated rules are usable: {}",
        cases.len()
    );
    assert!(
        errors * 20 < cases.len(),
        "generated rules are valid; {errors} rejected"
    );
}
