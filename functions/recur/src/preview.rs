//! `recur occurrences`: the next N occurrences of a rule, as the engine will fire them.

use chrono::{DateTime, Utc};
use todo_events_domain::recurrence::parse_local;
use todo_events_domain::time::parse_instant;
use todo_events_domain::Schedule;

/// The next `count` occurrences strictly after `after` (default now; with `from_start`, from
/// the first occurrence on, DTSTART included), as RFC 3339 UTC with `Z` and whole seconds;
/// fewer when the rule ends first. Errors are one line, for stderr.
pub fn occurrences(
    rule: &str,
    dtstart: &str,
    tz: &str,
    after: Option<&str>,
    from_start: bool,
    count: usize,
) -> Result<Vec<String>, String> {
    let dtstart = parse_local(dtstart).map_err(|e| e.to_string())?;
    let after: Option<DateTime<Utc>> = match after {
        Some(a) => Some(parse_instant(a).map_err(|_| {
            format!(
                "invalid --after {a:?}: write an RFC 3339 instant with an offset, like 2026-01-31T09:00:00Z"
            )
        })?),
        None if from_start => None,
        None => Some(Utc::now()),
    };
    let schedule = Schedule::parse(rule, dtstart, tz).map_err(|e| e.to_string())?;
    schedule
        .occurrences(after)
        .take(count)
        .map(|t| {
            t.map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                .map_err(|e| e.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn lists_after_and_rejects_bad_input() {
        let got = super::occurrences(
            "FREQ=WEEKLY",
            "2026-01-05T09:00",
            "Europe/Berlin",
            Some("2026-01-05T08:00:00Z"),
            false,
            3,
        )
        .unwrap();
        assert_eq!(
            got,
            [
                "2026-01-12T08:00:00Z",
                "2026-01-19T08:00:00Z",
                "2026-01-26T08:00:00Z"
            ]
        );
        let from_start =
            super::occurrences("FREQ=WEEKLY", "2026-01-05T09:00", "Europe/Berlin", None, true, 2).unwrap();
        assert_eq!(from_start, ["2026-01-05T08:00:00Z", "2026-01-12T08:00:00Z"]);
        assert!(
            super::occurrences("FREQ=WEEKLY", "2026-01-05T09:00", "Nowhere/City", None, false, 3)
                .unwrap_err()
                .contains("time zone")
        );
        assert!(super::occurrences(
            "FREQ=WEEKLY",
            "2026-01-05T09:00",
            "UTC",
            Some("2026-01-05"),
            false,
            3
        )
        .unwrap_err()
        .contains("--after"));
    }
}
