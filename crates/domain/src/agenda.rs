//! The daily agenda (docs/PREFERENCES.md, "The daily agenda"): a user who sets
//! `user_preferences.agenda_at` gets one summary per local date, at that local time in their
//! zone, of the tasks due that day and those overdue.
//!
//! Its time is a wall-clock time, so it is computed per local date, never by adding 24 hours:
//! on a day whose clocks spring forward over it, the agenda goes at the end of the gap; on a
//! day they fall back over it, at the first of the two instants ([`Zone::first_at_or_after`],
//! as quiet hours' edges are). A time inside the user's quiet hours moves to their end.
//!
//! The scheduler asks [`due`] which agenda to publish now and [`next_after`] when the next
//! one falls; notify asks [`instant`] whether an event came at its time. All three are pure.
//! The event is [`AgendaDue`], whose id names the user and the local date, so whatever
//! republishes it, and whichever zone the user had when it was computed, one user gets one
//! agenda per local date.

use crate::ids::UserId;
use crate::preferences::{local_time, PreferenceError, QuietHours};
use crate::recurrence::Zone;
use crate::time::serde_rfc3339;
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

/// CloudEvents `type` of a user's daily agenda.
pub const AGENDA_DUE: &str = "dev.todo.agenda.due";

/// Data of `dev.todo.agenda.due`: the agenda of `user_id` for the local date `date`, due at
/// `agenda_at` (the scheduler's computation, which notify checks against the stored
/// preferences rather than trusts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgendaDue {
    pub user_id: UserId,
    /// The local date in the user's zone (`YYYY-MM-DD`).
    pub date: NaiveDate,
    #[serde(with = "serde_rfc3339")]
    pub agenda_at: DateTime<Utc>,
}

impl AgendaDue {
    /// `agenda/<user>/<local date>`: one per user and local date, whatever time and zone it
    /// was computed with.
    pub fn event_id(&self) -> String {
        format!("agenda/{}/{}", self.user_id, self.date.format("%Y-%m-%d"))
    }

    pub fn subject(&self) -> String {
        format!("users/{}", self.user_id)
    }
}

/// `user_preferences.agenda_at`, parsed: the local time of day (`HH:MM` or `HH:MM:SS`).
pub fn agenda_time(text: &str) -> Result<NaiveTime, PreferenceError> {
    local_time("agenda_at", text)
}

/// When the agenda of local `date` goes out: `at` on that date in `zone` (a time in a gap:
/// the gap's end), or the end of the quiet hours that instant falls in.
pub fn instant(zone: &Zone, date: NaiveDate, at: NaiveTime, quiet: Option<&QuietHours>) -> DateTime<Utc> {
    let wall = zone.first_at_or_after(date.and_time(at));
    quiet.and_then(|q| q.deferral(zone, wall)).unwrap_or(wall)
}

/// The agenda to publish at `now`: the latest local date, not before `from`, whose agenda is
/// due at or before `now`, with its instant; `None` when none is. Missed days are not
/// published: only the latest (an agenda is a summary of its day, worth nothing after it).
pub fn due(
    zone: &Zone,
    at: NaiveTime,
    quiet: Option<&QuietHours>,
    from: NaiveDate,
    now: DateTime<Utc>,
) -> Option<(NaiveDate, DateTime<Utc>)> {
    let today = zone.wall_time(now).date();
    // Quiet hours move an agenda at most to the next day's end of the window.
    (0..=2)
        .map(|back| today - Duration::days(back))
        .filter(|date| *date >= from)
        .map(|date| (date, instant(zone, date, at, quiet)))
        .find(|(_, t)| *t <= now)
}

/// The first agenda after `now`: its local date and instant.
pub fn next_after(
    zone: &Zone,
    at: NaiveTime,
    quiet: Option<&QuietHours>,
    now: DateTime<Utc>,
) -> (NaiveDate, DateTime<Utc>) {
    let today = zone.wall_time(now).date();
    (-2..=2)
        .map(|ahead| today + Duration::days(ahead))
        .map(|date| (date, instant(zone, date, at, quiet)))
        .find(|(_, t)| *t > now)
        // A day's agenda is at most two days from its date: tomorrow's is always after now.
        .unwrap_or_else(|| {
            let date = today + Duration::days(3);
            (date, instant(zone, date, at, quiet))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn seven() -> NaiveTime {
        agenda_time("07:00").unwrap()
    }

    #[test]
    fn the_id_names_the_user_and_the_local_date() {
        let a = AgendaDue {
            user_id: UserId::new(5).unwrap(),
            date: date("2026-12-07"),
            agenda_at: at("2026-12-07T06:00:00Z"),
        };
        assert_eq!(a.event_id(), "agenda/5/2026-12-07");
        assert_eq!(a.subject(), "users/5");
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["date"], "2026-12-07");
        assert_eq!(json["agenda_at"], "2026-12-07T06:00:00Z");
        assert_eq!(serde_json::from_value::<AgendaDue>(json).unwrap(), a);
        assert!(agenda_time("7:00").is_err() && agenda_time("24:00").is_err());
    }

    #[test]
    fn one_agenda_per_local_date_across_both_dst_changes() {
        let berlin = Zone::parse("Europe/Berlin").unwrap();
        // 02:30 does not exist on 29 March 2026 in Berlin: the gap's end, 03:00 CEST.
        let half_past_two = agenda_time("02:30").unwrap();
        assert_eq!(
            instant(&berlin, date("2026-03-29"), half_past_two, None),
            at("2026-03-29T01:00:00Z")
        );
        // 02:30 happens twice on 25 October: the first, in CEST.
        assert_eq!(
            instant(&berlin, date("2026-10-25"), half_past_two, None),
            at("2026-10-25T00:30:00Z")
        );
        // Walking the days from one agenda to the next gives every date once.
        let mut now = at("2026-03-27T12:00:00Z");
        let mut dates = Vec::new();
        for _ in 0..4 {
            let (d, t) = next_after(&berlin, half_past_two, None, now);
            dates.push(d);
            now = t;
        }
        assert_eq!(
            dates,
            ["2026-03-28", "2026-03-29", "2026-03-30", "2026-03-31"].map(date)
        );
    }

    #[test]
    fn quiet_hours_move_it_to_their_end_and_missed_days_give_the_latest() {
        let tokyo = Zone::parse("Asia/Tokyo").unwrap();
        let quiet = QuietHours::parse(Some("22:00"), Some("07:30"), None)
            .unwrap()
            .unwrap();
        // 07:00 JST is inside 22:00-07:30: at 07:30 JST, 22:30Z the day before.
        assert_eq!(
            instant(&tokyo, date("2026-12-07"), seven(), Some(&quiet)),
            at("2026-12-06T22:30:00Z")
        );
        let now = at("2026-12-07T03:00:00Z"); // 12:00 JST on the 7th
        assert_eq!(
            due(&tokyo, seven(), None, date("2026-12-04"), now),
            Some((date("2026-12-07"), at("2026-12-06T22:00:00Z")))
        );
        // Already published for the 7th: nothing due until the 8th's.
        assert_eq!(due(&tokyo, seven(), None, date("2026-12-08"), now), None);
        assert_eq!(
            next_after(&tokyo, seven(), None, now),
            (date("2026-12-08"), at("2026-12-07T22:00:00Z"))
        );
    }
}
