//! `recur occurrences` as a user runs it: what it lists, and what it refuses (SPEC.md §7),
//! always with one line on stderr and exit status 2.

use crate::common::{run, Answer};
use chrono::{DateTime, Utc};

fn args(rule: &str, dtstart: &str, tz: &str, after: Option<&str>, count: usize) -> Vec<String> {
    let mut a: Vec<String> = [
        "--rule",
        rule,
        "--dtstart",
        dtstart,
        "--tz",
        tz,
        "--count",
        &count.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    match after {
        Some(t) => a.extend(["--after".to_owned(), t.to_owned()]),
        None => a.push("--from-start".to_owned()),
    }
    a
}

fn list(rule: &str, dtstart: &str, tz: &str, after: Option<&str>, count: usize) -> Vec<String> {
    match run(&args(rule, dtstart, tz, after, count)) {
        Answer::Occurrences(lines) => lines,
        Answer::Error(e) => panic!("{rule}: {e}"),
    }
}

#[test]
fn lists_local_times_resolved_by_the_spec_rules() {
    // A DTSTART in New York's spring-forward gap is read with the offset before the gap.
    assert_eq!(
        list("FREQ=WEEKLY", "2026-03-08T02:30", "America/New_York", None, 3),
        [
            "2026-03-08T07:30:00Z",
            "2026-03-15T06:30:00Z",
            "2026-03-22T06:30:00Z"
        ]
    );
    // A repeated time is the first of the two instants (EDT).
    assert_eq!(
        list(
            "FREQ=DAILY;COUNT=1",
            "2026-11-01T01:30:00",
            "America/New_York",
            None,
            5
        ),
        ["2026-11-01T05:30:00Z"]
    );
    // Dublin's "negative DST": offsets decide, so the gap instant uses +00:00.
    assert_eq!(
        list("FREQ=YEARLY", "2026-03-29T01:30", "Europe/Dublin", None, 1),
        ["2026-03-29T01:30:00Z"]
    );
    // Apia skipped 2011-12-30: noon that day is read with -10:00, the offset before the gap,
    // which is the same instant as noon on the 31st at +14:00; it is listed once.
    assert_eq!(
        list("FREQ=DAILY", "2011-12-29T12:00", "Pacific/Apia", None, 3),
        [
            "2011-12-29T22:00:00Z",
            "2011-12-30T22:00:00Z",
            "2011-12-31T22:00:00Z"
        ]
    );
    // COUNT ends the list early; --count 0 lists nothing.
    assert_eq!(
        list("FREQ=DAILY;COUNT=2", "2026-01-01T09:00", "UTC", None, 10).len(),
        2
    );
    assert!(list("FREQ=DAILY", "2026-01-01T09:00", "UTC", None, 0).is_empty());
}

#[test]
fn lists_after_now_by_default() {
    let Answer::Occurrences(lines) = run(&[
        "--rule".into(),
        "FREQ=DAILY".into(),
        "--dtstart".into(),
        "2020-01-01T09:00".into(),
        "--tz".into(),
        "Europe/Berlin".into(),
        "--count".into(),
        "3".into(),
    ]) else {
        panic!("FREQ=DAILY is valid")
    };
    let times: Vec<DateTime<Utc>> = lines
        .iter()
        .map(|l| {
            assert!(l.ends_with('Z') && l.len() == 20, "{l}");
            DateTime::parse_from_rfc3339(l).unwrap().to_utc()
        })
        .collect();
    let now = Utc::now();
    assert_eq!(times.len(), 3);
    assert!(times[0] > now - chrono::Duration::seconds(5) && times[0] <= now + chrono::Duration::hours(25));
    assert!(times.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn refuses_what_the_spec_refuses_with_one_line_and_status_2() {
    let d = "2026-01-05T00:00:00";
    let cases: &[(&str, &str, &str, Option<&str>, &str)] = &[
        ("INTERVAL=2", d, "UTC", None, "FREQ is required"),
        ("FREQ=FORTNIGHTLY", d, "UTC", None, "unknown FREQ"),
        ("FREQ=DAILY;BYFOO=1", d, "UTC", None, "unknown part"),
        ("FREQ=DAILY;COUNT=2;COUNT=3", d, "UTC", None, "repeated"),
        (
            "FREQ=DAILY;COUNT=2;UNTIL=20260110T000000Z",
            d,
            "UTC",
            None,
            "COUNT and UNTIL",
        ),
        (
            "FREQ=DAILY;UNTIL=20260110T000000",
            d,
            "UTC",
            None,
            "UTC date-time",
        ),
        ("FREQ=DAILY;UNTIL=20260110", d, "UTC", None, "UTC date-time"),
        ("FREQ=MINUTELY;BYSECOND=60", d, "UTC", None, "leap second"),
        ("FREQ=YEARLY;BYMONTH=13", d, "UTC", None, "out of range"),
        ("FREQ=DAILY;BYHOUR=24", d, "UTC", None, "out of range"),
        ("FREQ=DAILY;BYMINUTE=60", d, "UTC", None, "out of range"),
        ("FREQ=MONTHLY;BYMONTHDAY=32", d, "UTC", None, "out of range"),
        ("FREQ=MONTHLY;BYMONTHDAY=0", d, "UTC", None, "out of range"),
        ("FREQ=YEARLY;BYYEARDAY=367", d, "UTC", None, "out of range"),
        ("FREQ=YEARLY;BYWEEKNO=54", d, "UTC", None, "out of range"),
        (
            "FREQ=MONTHLY;BYDAY=MO;BYSETPOS=367",
            d,
            "UTC",
            None,
            "out of range",
        ),
        ("FREQ=MONTHLY;BYDAY=0MO", d, "UTC", None, "1 to 53"),
        (
            "FREQ=WEEKLY;BYMONTHDAY=5",
            d,
            "UTC",
            None,
            "BYMONTHDAY must not be used with FREQ=WEEKLY",
        ),
        (
            "FREQ=DAILY;BYYEARDAY=5",
            d,
            "UTC",
            None,
            "BYYEARDAY must not be used",
        ),
        (
            "FREQ=WEEKLY;BYYEARDAY=5",
            d,
            "UTC",
            None,
            "BYYEARDAY must not be used",
        ),
        (
            "FREQ=MONTHLY;BYYEARDAY=5",
            d,
            "UTC",
            None,
            "BYYEARDAY must not be used",
        ),
        (
            "FREQ=MONTHLY;BYWEEKNO=2",
            d,
            "UTC",
            None,
            "BYWEEKNO is only allowed",
        ),
        ("FREQ=WEEKLY;BYDAY=1MO", d, "UTC", None, "numeric BYDAY"),
        ("FREQ=DAILY;BYDAY=-1MO", d, "UTC", None, "numeric BYDAY"),
        ("FREQ=YEARLY;BYWEEKNO=2;BYDAY=1MO", d, "UTC", None, "BYWEEKNO"),
        ("FREQ=MONTHLY;BYSETPOS=1", d, "UTC", None, "another BYxxx"),
        // dateutil: "byxxx generates an empty set" (hours 0, 4, 8, ... never hit 1 or 6).
        (
            "FREQ=HOURLY;INTERVAL=4;BYHOUR=1,6",
            d,
            "UTC",
            None,
            "never reaches",
        ),
        ("FREQ=DAILY", d, "Mars/Olympus", None, "unknown time zone"),
        ("FREQ=DAILY", d, "europe/berlin", None, "case-sensitive"),
        (
            "FREQ=DAILY",
            "2026-01-05T09:00:00+01:00",
            "UTC",
            None,
            "invalid dtstart",
        ),
        ("FREQ=DAILY", "2026-01-05", "UTC", None, "invalid dtstart"),
        ("FREQ=DAILY", d, "UTC", Some("2026-01-06T00:00:00"), "--after"),
        // Rules that can never fire are refused where they enter.
        (
            "FREQ=DAILY;UNTIL=20260101T000000Z",
            d,
            "UTC",
            None,
            "no occurrence",
        ),
        (
            "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",
            d,
            "UTC",
            None,
            "no occurrence",
        ),
        ("FREQ=DAILY;BYHOUR=9;BYSETPOS=2", d, "UTC", None, "never select"),
    ];
    for (rule, dtstart, tz, after, needle) in cases {
        match run(&args(rule, dtstart, tz, *after, 3)) {
            Answer::Error(line) => {
                assert!(line.starts_with("recur occurrences: "), "{line}");
                assert!(
                    line.contains(needle),
                    "{rule} {dtstart} {tz}: {line:?} lacks {needle:?}"
                );
            }
            Answer::Occurrences(o) => panic!("{rule} {dtstart} {tz} {after:?} was accepted: {o:?}"),
        }
    }
    // A question starts near the answer, not at DTSTART: without COUNT, and with COUNT too,
    // whose 5.4 million instances before the question are counted, not walked (that walk was
    // refused at 5,000,000 wall-clock instances before).
    for rule in ["FREQ=SECONDLY", "FREQ=SECONDLY;COUNT=6000000"] {
        assert_eq!(
            run(&args(rule, d, "UTC", Some("2026-03-10T00:00:00Z"), 2)),
            Answer::Occurrences(vec!["2026-03-10T00:00:01Z".into(), "2026-03-10T00:00:02Z".into()]),
            "{rule}"
        );
    }
    // The 6,000,000th second from 2026-01-05T00:00:00 is 2026-03-15T10:39:59; then it ends.
    assert_eq!(
        run(&args(
            "FREQ=SECONDLY;COUNT=6000000",
            d,
            "UTC",
            Some("2026-03-15T10:39:57Z"),
            3
        )),
        Answer::Occurrences(vec!["2026-03-15T10:39:58Z".into(), "2026-03-15T10:39:59Z".into()])
    );
}
