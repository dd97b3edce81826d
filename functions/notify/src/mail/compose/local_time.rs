//! Times in the recipient's zone: jiff's bundled zone data, a UTC instant as local time, and
//! a local time as the templates see it (with its words relative to the reminder). Apart
//! from the message because the other channels show times the same way ([`zoned`]).

use crate::i18n::{Language, Wall};
use chrono::{DateTime, Utc};
use fluent_bundle::FluentArgs;
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

/// A local time as the templates see it, in `language`: its date and time as the
/// language's formats write them (ICU4X), and in words relative to `reference` (the
/// reminder's own local time) from the language's messages: "today at 18:00", "morgen um
/// 09:30", "le lundi 7 décembre à 08:00".
pub(super) fn when(
    t: DateTime<Utc>,
    tz: &TimeZone,
    reference: &ZonedDateTime,
    language: &Language,
) -> Result<Value, String> {
    let local = local(t, tz)?;
    let f = language
        .formats(wall(&local))
        .ok_or_else(|| format!("{t} cannot be shown as a local time"))?;
    let days = local
        .date()
        .since(reference.date())
        .map_err(|e| format!("{t}: {e}"))?
        .get_days();
    let mut args = FluentArgs::new();
    args.set("time", f.time.clone());
    args.set("weekday", f.weekday.clone());
    let (id, date) = match days {
        0 => ("when-today", None),
        1 => ("when-tomorrow", None),
        -1 => ("when-yesterday", None),
        2..=6 => ("when-weekday", None),
        _ if local.year() == reference.year() => ("when-date", Some(f.day_and_month.clone())),
        _ => ("when-date", Some(f.date.clone())),
    };
    if let Some(date) = date {
        args.set("date", date);
    }
    let zone = local.strftime("%Z").to_string();
    Ok(context! {
        local => format!("{} {zone}", f.date_time),
        date => f.date,
        time => f.time,
        zone => zone,
        relative => language.text(id, &args),
        iso => local.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
    })
}

/// The wall time of `local`, as the formats take it.
pub(crate) fn wall(local: &ZonedDateTime) -> Wall {
    Wall {
        year: i32::from(local.year()),
        month: local.month() as u8,
        day: local.day() as u8,
        hour: local.hour() as u8,
        minute: local.minute() as u8,
    }
}
