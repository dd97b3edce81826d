//! How long todo-events keeps what it writes about what happened (deliveries, status events):
//! a period between a day and ten years, or `off` (kept for good).
//!
//! Parsed once, where a setting or a flag is read, so that a zero, negative or absurd period
//! never reaches a `DELETE`: zero would delete history as it is written (and with it the
//! record a moved reminder's stale event is told apart by), ten years and more is "for good"
//! written as a number. docs/DESIGN.md ("History") has the arithmetic behind the defaults.

use crate::HumanDuration;
use std::{fmt, str::FromStr, time::Duration};

/// The shortest period accepted: a day.
pub const SHORTEST: Duration = Duration::from_secs(86_400);
/// The longest period accepted: ten years (3 650 days); beyond, write `off`.
pub const LONGEST: Duration = Duration::from_secs(3_650 * 86_400);

/// A retention period, or none (`off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Kept for good.
    Off,
    /// Deleted once older than this.
    For(HumanDuration),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid retention {input:?}: {reason}")]
pub struct RetentionError {
    input: String,
    reason: String,
}

impl FromStr for Retention {
    type Err = RetentionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fail = |reason: String| RetentionError {
            input: s.to_owned(),
            reason,
        };
        if s.trim() == "off" {
            return Ok(Retention::Off);
        }
        let period: HumanDuration = s
            .parse()
            .map_err(|e: crate::duration::DurationError| fail(format!("{e}; or off to keep it for good")))?;
        if period.0.is_zero() {
            return Err(fail(
                "zero would delete history as soon as it is written; write off to keep it for good".into(),
            ));
        }
        if period.0 < SHORTEST {
            return Err(fail(format!(
                "shorter than a day ({}): events can still arrive for longer (docs/DESIGN.md, \"History\")",
                HumanDuration(SHORTEST)
            )));
        }
        if period.0 > LONGEST {
            return Err(fail(
                "longer than ten years (3650d); write off to keep it for good".into(),
            ));
        }
        Ok(Retention::For(period))
    }
}

impl fmt::Display for Retention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Retention::Off => f.write_str("off"),
            Retention::For(period) => period.fmt(f),
        }
    }
}

impl Retention {
    /// Days, as the defaults are written.
    pub const fn days(n: u64) -> Self {
        Retention::For(HumanDuration(Duration::from_secs(n * 86_400)))
    }

    /// What is older than this at `now` may go; `None` when kept for good.
    pub fn cutoff(self, now: chrono::DateTime<chrono::Utc>) -> Option<chrono::DateTime<chrono::Utc>> {
        match self {
            Retention::Off => None,
            Retention::For(period) => Some(now - period.to_chrono()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_from_a_day_to_ten_years_or_off() {
        assert_eq!("off".parse(), Ok(Retention::Off));
        assert_eq!("30d".parse(), Ok(Retention::days(30)));
        assert_eq!("1d".parse(), Ok(Retention::days(1)));
        assert_eq!("3650d".parse(), Ok(Retention::days(3650)));
        let refused = [
            ("0s", "zero"),
            ("0d", "zero"),
            ("-5d", "invalid duration"),
            ("12h", "shorter than a day"),
            ("3651d", "longer than ten years"),
            ("1000years", "longer than ten years"),
            ("forever", "invalid duration"),
            ("30", "a unit is required"),
            ("", "empty"),
        ];
        for (input, says) in refused {
            let err = input.parse::<Retention>().unwrap_err().to_string();
            assert!(err.contains(says), "{input:?}: {err}");
            assert!(err.contains("invalid retention"), "{input:?}: {err}");
        }
    }

    #[test]
    fn the_cutoff_is_the_period_before_now() {
        let now = "2026-12-07T10:00:00Z".parse().unwrap();
        assert_eq!(Retention::Off.cutoff(now), None);
        assert_eq!(
            Retention::days(30).cutoff(now),
            Some("2026-11-07T10:00:00Z".parse().unwrap())
        );
    }
}
