//! Shared by the recurrence tests: SPEC.md cases, turned into `recur occurrences` command
//! lines and run through the real binary.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What `recur occurrences` (or the case itself) answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Occurrences(Vec<String>),
    /// Rejected: the binary's one stderr line (exit status 2), or why the case is invalid.
    Error(String),
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `recur occurrences` with `args`; exit 0 gives lines, exit 2 the one stderr line.
/// Anything else (a crash, several stderr lines, output on a failure) fails the test.
pub fn run(args: &[String]) -> Answer {
    let out = Command::new(env!("CARGO_BIN_EXE_recur"))
        .arg("occurrences")
        .args(args)
        .output()
        .expect("recur runs");
    let stdout = String::from_utf8(out.stdout).expect("utf-8 stdout");
    let stderr = String::from_utf8(out.stderr).expect("utf-8 stderr");
    match out.status.code() {
        Some(0) => {
            assert!(stderr.is_empty(), "{args:?}: stderr on success: {stderr}");
            Answer::Occurrences(stdout.lines().map(str::to_owned).collect())
        }
        Some(2) => {
            assert!(stdout.is_empty(), "{args:?}: output on failure: {stdout}");
            assert_eq!(stderr.lines().count(), 1, "{args:?}: not one line: {stderr}");
            Answer::Error(stderr.trim_end().to_owned())
        }
        other => panic!("{args:?}: exit status {other:?}, stderr {stderr}"),
    }
}

const FIELDS: &[&str] = &[
    "id", "rrule", "pattern", "interval", "until", "limit", "dtstart", "tz", "after", "count", "note",
];

/// The command line for a SPEC.md case, or why the case itself is invalid. The pattern form
/// becomes an RRULE as SPEC.md says: `FREQ=<pattern>;INTERVAL=<interval>`, `until` →
/// `;UNTIL=<UTC>`, `limit` → `;COUNT=<limit>`. A case without `after` lists from the first
/// occurrence (`--from-start`).
pub fn case_args(case: &Value) -> Result<Vec<String>, String> {
    let obj = case.as_object().ok_or("a case is a JSON object")?;
    if let Some(k) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(format!("unknown field {k:?}"));
    }
    let text = |k: &str| obj.get(k).and_then(Value::as_str);
    let rule = match (obj.get("rrule"), obj.get("pattern")) {
        (Some(r), None) => {
            if ["interval", "until", "limit"]
                .iter()
                .any(|k| obj.contains_key(*k))
            {
                return Err("interval/until/limit belong to the pattern form".into());
            }
            r.as_str().ok_or("rrule must be a string")?.to_owned()
        }
        (None, Some(p)) => {
            let freq = match p.as_str() {
                Some("daily") => "DAILY",
                Some("weekly") => "WEEKLY",
                Some("monthly") => "MONTHLY",
                Some("yearly") => "YEARLY",
                _ => return Err(format!("unknown pattern {p}")),
            };
            let interval = match obj.get("interval") {
                None => 1,
                Some(i) => i.as_u64().ok_or("interval must be an integer >= 1")?,
            };
            let mut rule = format!("FREQ={freq};INTERVAL={interval}");
            if let Some(until) = obj.get("until") {
                let until = until
                    .as_str()
                    .and_then(|u| chrono::DateTime::parse_from_rfc3339(u).ok())
                    .ok_or("until must be an RFC 3339 instant")?;
                rule += &format!(";UNTIL={}", until.to_utc().format("%Y%m%dT%H%M%SZ"));
            }
            if let Some(limit) = obj.get("limit") {
                rule += &format!(
                    ";COUNT={}",
                    limit.as_u64().ok_or("limit must be an integer >= 1")?
                );
            }
            rule
        }
        _ => return Err("exactly one of rrule and pattern".into()),
    };
    let count = obj
        .get("count")
        .and_then(Value::as_u64)
        .ok_or("count must be an integer >= 0")?;
    let mut args = vec![
        "--rule".to_owned(),
        rule,
        "--dtstart".to_owned(),
        text("dtstart").ok_or("dtstart must be a string")?.to_owned(),
        "--tz".to_owned(),
        text("tz").ok_or("tz must be a string")?.to_owned(),
        "--count".to_owned(),
        count.to_string(),
    ];
    match obj.get("after") {
        None => args.push("--from-start".to_owned()),
        Some(a) => {
            args.push("--after".to_owned());
            args.push(a.as_str().ok_or("after must be a string")?.to_owned());
        }
    }
    Ok(args)
}

/// The answer to one case, from the binary (or the case's own invalidity).
pub fn answer(case: &Value) -> Answer {
    match case_args(case) {
        Ok(args) => run(&args),
        Err(why) => Answer::Error(why),
    }
}

/// Reads an expected-answers file (`{"id", "occurrences"}` or `{"id", "error"}` per line).
pub fn read_expected(path: &Path) -> Vec<(Value, Answer)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| parse_answer_line(line).unwrap_or_else(|e| panic!("{}: {e}: {line}", path.display())))
        .collect()
}

pub fn parse_answer_line(line: &str) -> Result<(Value, Answer), String> {
    let v: Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let id = v.get("id").cloned().unwrap_or(Value::Null);
    if let Some(list) = v.get("occurrences").and_then(Value::as_array) {
        let list = list
            .iter()
            .map(|t| t.as_str().map(str::to_owned).ok_or("occurrences are strings"))
            .collect::<Result<_, _>>()?;
        Ok((id, Answer::Occurrences(list)))
    } else if let Some(e) = v.get("error") {
        Ok((id, Answer::Error(e.as_str().unwrap_or_default().to_owned())))
    } else {
        Err("neither occurrences nor error".into())
    }
}

/// Whether `got` is the expected answer: the same list, or both rejected.
pub fn agrees(expected: &Answer, got: &Answer) -> bool {
    match (expected, got) {
        (Answer::Occurrences(a), Answer::Occurrences(b)) => a == b,
        (Answer::Error(_), Answer::Error(_)) => true,
        _ => false,
    }
}
