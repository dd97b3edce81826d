//! Durations as people write them in flags and environment variables: `30s`, `5m`, `1h`, `2d`.

use std::{fmt, str::FromStr, time::Duration};

/// A duration parsed from `30s` / `5m` / `1h` / `2d` (and combinations like `1h30m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

#[derive(Debug, thiserror::Error)]
#[error("invalid duration {input:?}: {reason} (write it like 30s, 5m, 1h or 2d)")]
pub struct DurationError {
    input: String,
    reason: String,
}

impl FromStr for HumanDuration {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fail = |reason: String| DurationError {
            input: s.to_owned(),
            reason,
        };
        if s.trim().is_empty() {
            return Err(fail("empty".into()));
        }
        if s.trim().chars().all(|c| c.is_ascii_digit()) {
            return Err(fail("a unit is required".into()));
        }
        humantime::parse_duration(s.trim())
            .map(HumanDuration)
            .map_err(|e| fail(e.to_string()))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        humantime::format_duration(self.0).fmt(f)
    }
}

impl HumanDuration {
    pub fn to_chrono(self) -> chrono::Duration {
        chrono::Duration::from_std(self.0).unwrap_or(chrono::Duration::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let secs = |s: &str| s.parse::<HumanDuration>().unwrap().0.as_secs();
        assert_eq!(secs("30s"), 30);
        assert_eq!(secs("5m"), 300);
        assert_eq!(secs("1h"), 3600);
        assert_eq!(secs("2d"), 172_800);
        assert_eq!(secs("1h30m"), 5400);
        for bad in ["", "5", "five minutes", "-5s", "5x"] {
            let err = bad.parse::<HumanDuration>().unwrap_err().to_string();
            assert!(err.contains("invalid duration"), "{bad}: {err}");
        }
    }
}
