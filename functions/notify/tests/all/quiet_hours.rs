//! Differential test: quiet hours (`todo_events_domain::QuietHours::deferral`, what notify
//! decides with) against an independent reference (`tests/reference/quiet_ref.py`: zoneinfo
//! offsets and the pinned `tzdata`, gaps found by bisection on the offset, no PEP 495 fold).
//!
//! The windows are made where time zones are hard: around every UTC-offset transition of ten
//! zones from 2025 to 2027 (30- and 45-minute offsets, a 30-minute DST in Lord Howe, negative
//! DST in Dublin, Casablanca's Ramadan changes, Santiago's midnight transitions), with their
//! edges at the transition's wall times (the start and end of a gap or an overlap), inside
//! it, or near it, on random days of the week; each asked at instants around the transition,
//! and at the end the engine answered and the second before it. The cases come from a fixed
//! seed (`QUIET_SEED` overrides it). Zero mismatches are allowed; the test says how many cases
//! it checked, how many fell inside a window and how many windows ended in a gap.

use chrono::{DateTime, Duration, NaiveTime, Timelike, Utc};
use serde_json::{json, Value};
use std::path::PathBuf;
use todo_events_domain::recurrence::{Zone, TZDB_VERSION};
use todo_events_domain::time::rfc3339;
use todo_events_domain::QuietHours;
use todo_events_testkit::reference::Rng;

const ZONES: &[&str] = &[
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "America/St_Johns",
    "Europe/Dublin",
    "America/Santiago",
    "Africa/Casablanca",
    "Asia/Kolkata",
    "Asia/Tokyo",
];
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Runs the reference with `args` and `input` on stdin; its stdout, parsed.
fn reference(args: &[&str], input: &Value) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference/quiet_ref.py");
    let out = todo_events_testkit::reference::run(&script, args, &input.to_string());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "the reference failed: {stderr}"
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.trim().to_owned()))
}

/// One question: the window and the instant asked about.
struct Case {
    zone: &'static str,
    start: String,
    end: String,
    days: String,
    at: DateTime<Utc>,
}

impl Case {
    fn engine(&self) -> Option<DateTime<Utc>> {
        let quiet = QuietHours::parse(Some(&self.start), Some(&self.end), Some(&self.days))
            .unwrap()
            .unwrap();
        quiet.deferral(&Zone::parse(self.zone).unwrap(), self.at)
    }

    fn json(&self) -> Value {
        json!({"zone": self.zone, "start": self.start, "end": self.end, "days": self.days,
               "at": rfc3339(self.at)})
    }
}

fn hhmm(t: NaiveTime, rng: &mut Rng) -> String {
    match rng.below(4) {
        0 => t.format("%H:%M:%S").to_string(),
        _ => t.with_second(0).unwrap().format("%H:%M").to_string(),
    }
}

/// The days a window starts on: every day half of the time, else a random non-empty set.
fn days(rng: &mut Rng) -> String {
    if rng.below(2) == 0 {
        return DAYS.join(",");
    }
    let set = 1 + rng.below(127);
    let picked: Vec<&str> = (0..7).filter(|d| set & (1 << d) != 0).map(|d| DAYS[d]).collect();
    picked.join(",")
}

/// Windows with edges at and near the transition at `t` (UTC seconds) in `zone`, each asked
/// at instants around it.
fn cases_at(zone: &'static str, t: i64, rng: &mut Rng, cases: &mut Vec<Case>) {
    let z = Zone::parse(zone).unwrap();
    let t = DateTime::from_timestamp(t, 0).unwrap();
    let reached = (z.wall_time(t - Duration::seconds(1)) + Duration::seconds(1)).time();
    let shown = z.wall_time(t).time();
    let between = reached + (shown - reached) / 2;
    let edges = [
        reached,
        shown,
        between,
        reached - Duration::hours(1),
        shown + Duration::minutes(30),
        NaiveTime::from_num_seconds_from_midnight_opt(rng.below(86_400) as u32, 0).unwrap(),
    ];
    for _ in 0..6 {
        let start = edges[rng.below(edges.len() as u64) as usize];
        let end = edges[rng.below(edges.len() as u64) as usize];
        let (start, end) = (hhmm(start, rng), hhmm(end, rng));
        if start == end
            || NaiveTime::parse_from_str(&start, "%H:%M").ok()
                == NaiveTime::parse_from_str(&end, "%H:%M:%S").ok()
        {
            continue;
        }
        let days = days(rng);
        for k in 0..8 {
            let at = match k {
                0 => t,
                1 => t - Duration::seconds(1),
                _ => t + Duration::seconds(rng.range(-30 * 3600, 30 * 3600)),
            };
            cases.push(Case {
                zone,
                start: start.clone(),
                end: end.clone(),
                days: days.clone(),
                at,
            });
        }
    }
}

#[test]
fn quiet_hours_agree_with_the_reference_across_time_zone_transitions() {
    if todo_events_testkit::require::python().is_none() {
        return;
    }
    let version = reference(&["--tzdata-version"], &json!(null));
    assert_eq!(
        version,
        json!(TZDB_VERSION),
        "both sides must read the same IANA release"
    );
    let seed = std::env::var("QUIET_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261206);
    let mut rng = Rng(seed);
    let transitions = reference(
        &["--transitions"],
        &json!({"zones": ZONES, "from": "2025-01-01T00:00:00", "to": "2028-01-01T00:00:00"}),
    );
    let mut cases = Vec::new();
    for zone in ZONES {
        let ts = transitions[zone].as_array().unwrap();
        for t in ts {
            cases_at(zone, t.as_i64().unwrap(), &mut rng, &mut cases);
        }
        // Zones without transitions in the range (and the others too): windows at random.
        let mid = DateTime::parse_from_rfc3339("2026-06-15T00:00:00Z")
            .unwrap()
            .timestamp();
        cases_at(
            zone,
            mid + rng.range(-200 * 86_400, 200 * 86_400),
            &mut rng,
            &mut cases,
        );
    }
    // The engine's ends, and the second before each: inside, and the end itself: outside.
    let mut edges = Vec::new();
    for case in &cases {
        if let Some(end) = case.engine() {
            for at in [end - Duration::seconds(1), end] {
                edges.push(Case {
                    zone: case.zone,
                    start: case.start.clone(),
                    end: case.end.clone(),
                    days: case.days.clone(),
                    at,
                });
            }
        }
    }
    cases.extend(edges);
    let expected = reference(&[], &Value::Array(cases.iter().map(Case::json).collect()));
    let expected = expected.as_array().unwrap();
    assert_eq!(expected.len(), cases.len());
    let (mut inside, mut in_gap, mut mismatches) = (0, 0, Vec::new());
    for (case, want) in cases.iter().zip(expected) {
        let got = case.engine().map(rfc3339);
        let want = want.as_str().map(str::to_owned);
        if got != want {
            mismatches.push(format!(
                "{} {} (\"{}\"–\"{}\" {}): engine {got:?}, reference {want:?}",
                case.zone,
                rfc3339(case.at),
                case.start,
                case.end,
                case.days
            ));
        }
        if let Some(end) = case.engine() {
            inside += 1;
            let wall = Zone::parse(case.zone).unwrap().wall_time(end).time();
            let asked = NaiveTime::parse_from_str(&case.end, "%H:%M:%S")
                .or_else(|_| NaiveTime::parse_from_str(&case.end, "%H:%M"))
                .unwrap();
            if wall != asked {
                in_gap += 1;
            }
        }
    }
    println!(
        "quiet hours: {} cases checked ({inside} inside a window, {in_gap} of them ending in a gap), {} mismatches",
        cases.len(),
        mismatches.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches[..mismatches.len().min(20)].join("\n")
    );
    assert!(
        cases.len() >= 2_000 && inside >= 500 && in_gap >= 20,
        "too few cases: {} / {inside} / {in_gap}",
        cases.len()
    );
}
