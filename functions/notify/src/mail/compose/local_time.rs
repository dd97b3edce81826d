//! Times in the recipient's zone: jiff's bundled zone data, a UTC instant as local time, and
//! a local time as the templates see it (with its words relative to the reminder). Apart
//! from the message because the other channels show times the same way ([`zoned`]).

use chrono::{DateTime, Utc};
use jiff::tz::{TimeZone, TimeZoneDatabase};
use jiff::ZonedDateTime;
use minijinja::context;
use minijinja::value::Value;
use std::sync::OnceLock;

/// The bundled IANA zone database, loaded once.
pub(super) fn tzdb() -> &'static TimeZoneDatabase {
    static DB: OnceLock<TimeZoneDatabase> = OnceLock::new();
    DB.get_or_init(TimeZoneDatabase::bundled)
}

/// `t` in the zone named `timezone`, with the name of the zone used: UTC when the zone is
/// unknown (the other channels show times as the mail does).
pub(crate) fn zoned(t: DateTime<Utc>, timezone: &str) -> Result<(ZonedDateTime, &str), String> {
    match tzdb().get(timezone) {
        Ok(tz) => Ok((local(t, &tz)?, timezone)),
        Err(_) => Ok((local(t, &TimeZone::UTC)?, "UTC")),
    }
}

/// `t` as a local time in `tz`.
pub(super) fn local(t: DateTime<Utc>, tz: &TimeZone) -> Result<ZonedDateTime, String> {
    jiff::Timestamp::from_microsecond(t.timestamp_micros())
        .map(|ts| ts.to_zoned_datetime(tz.clone()))
        .map_err(|e| format!("{t} cannot be shown as a local time: {e}"))
}

/// A local time as the templates see it.
pub(super) fn when(t: DateTime<Utc>, tz: &TimeZone, reference: &ZonedDateTime) -> Result<Value, String> {
    let local = local(t, tz)?;
    let time = local.strftime("%H:%M").to_string();
    let days = local
        .date()
        .since(reference.date())
        .map_err(|e| format!("{t}: {e}"))?
        .get_days();
    let relative = match days {
        0 => format!("today at {time}"),
        1 => format!("tomorrow at {time}"),
        -1 => format!("yesterday at {time}"),
        2..=6 => format!("on {} at {time}", local.strftime("%A")),
        _ if local.year() == reference.year() => format!("on {} at {time}", local.strftime("%A %-d %B")),
        _ => format!("on {} at {time}", local.strftime("%A %-d %B %Y")),
    };
    Ok(context! {
        local => local.strftime("%A %-d %B %Y, %H:%M %Z").to_string(),
        date => local.strftime("%A %-d %B %Y").to_string(),
        time => time,
        zone => local.strftime("%Z").to_string(),
        relative => relative,
        iso => local.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
    })
}
