//! One way to write instants: RFC 3339 in UTC with `Z`, seconds always present and a
//! fraction only when there is one. Event ids embed these strings, so they must be stable.

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};

/// Formats an instant the way event ids and payloads carry it.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Truncates to microseconds, the precision PostgreSQL keeps, so an instant read back
/// from either store compares equal to the one written.
pub fn db_precision(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

/// Parses an RFC 3339 instant with an explicit offset (`Z` or `±HH:MM`).
pub fn parse_instant(s: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_z_and_optional_fraction() {
        let t = parse_instant("2026-03-08T02:30:00-05:00").unwrap();
        assert_eq!(rfc3339(t), "2026-03-08T07:30:00Z");
        let t = parse_instant("2026-03-08T07:30:00.250Z").unwrap();
        assert_eq!(rfc3339(t), "2026-03-08T07:30:00.250Z");
        assert!(parse_instant("2026-03-08T07:30:00").is_err());
    }
}

/// serde adapter: writes [`rfc3339`], reads any RFC 3339 instant with an offset.
pub mod serde_rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        super::parse_instant(&s).map_err(|e| {
            serde::de::Error::custom(format!(
                "must be an RFC 3339 date-time with an offset, like 2026-01-31T09:00:00Z ({e})"
            ))
        })
    }
}

/// The current instant at database precision.
pub fn now() -> DateTime<Utc> {
    db_precision(Utc::now())
}
