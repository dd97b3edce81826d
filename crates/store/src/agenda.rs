//! The daily agenda's rows (migration 0008; docs/PREFERENCES.md, "The daily agenda"): what
//! the scheduler claims and schedules (`user_preferences.agenda_*`) and what notify reads and
//! records (the user, the day's tasks, `agenda_deliveries`). Shared by both backends, which
//! import this module and never each other.

use crate::rows::{endpoints, id, parse, Channel, Channels, DeliveryStatus, Endpoint, Malformed, TaskStatus};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use todo_events_domain::agenda::agenda_time;
use todo_events_domain::preferences::{self, PreferenceError, QuietHours};
use todo_events_domain::{TaskId, UserId};

/// A user whose agenda the scheduler claimed: what computing it needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedAgenda {
    pub user_id: UserId,
    /// `users.timezone` as stored (the scheduler parses it).
    pub timezone: String,
    pub agenda_at: Result<NaiveTime, PreferenceError>,
    pub quiet_hours: Result<Option<QuietHours>, PreferenceError>,
    /// The next agenda as last computed; `None` until the scheduler computes it (and again
    /// after a change of time, quiet hours or zone).
    pub next: Option<(NaiveDate, DateTime<Utc>)>,
}

/// [`ClaimedAgenda`] as both backends return it.
#[derive(sqlx_macros::FromRow)]
pub(crate) struct ClaimedAgendaRaw {
    user_id: i64,
    timezone: String,
    agenda_at: String,
    quiet_start: Option<String>,
    quiet_end: Option<String>,
    quiet_days: Option<String>,
    next_date: Option<NaiveDate>,
    next_at: Option<DateTime<Utc>>,
}

impl TryFrom<ClaimedAgendaRaw> for ClaimedAgenda {
    type Error = Malformed;
    fn try_from(r: ClaimedAgendaRaw) -> Result<Self, Malformed> {
        Ok(Self {
            user_id: id("user_preferences", r.user_id, "user_id", r.user_id, UserId::new)?,
            timezone: r.timezone,
            agenda_at: agenda_time(&r.agenda_at),
            quiet_hours: QuietHours::parse(
                r.quiet_start.as_deref(),
                r.quiet_end.as_deref(),
                r.quiet_days.as_deref(),
            ),
            next: r.next_date.zip(r.next_at),
        })
    }
}

/// The next agenda of a user, as the scheduler sets it (releasing its claim).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgendaNext {
    pub user_id: UserId,
    pub date: NaiveDate,
    pub at: DateTime<Utc>,
}

/// What notify asks for one agenda event: the user, the local date, and the earliest and
/// latest instants that date can end (UTC+14 and UTC-12): the user's zone, and so the day's
/// own end, is read with the user ([`AgendaContext::within`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgendaAsked {
    pub user_id: UserId,
    pub date: NaiveDate,
    pub earliest_end: DateTime<Utc>,
    pub latest_end: DateTime<Utc>,
}

/// A task the agenda lists: open, due before the end of the day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgendaTask {
    pub id: TaskId,
    pub title: String,
    pub status: TaskStatus,
    pub due_at: DateTime<Utc>,
}

/// A delivery of a user's agenda of one date, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgendaDeliveryRow {
    pub id: i64,
    pub channel: Channel,
    /// 0 for e-mail.
    pub endpoint_id: i64,
    pub status: DeliveryStatus,
    pub claimed_at: DateTime<Utc>,
    pub lease_until: DateTime<Utc>,
}

/// Everything notify needs for one agenda, read in one statement with the batch's others.
#[derive(Debug, Clone, PartialEq)]
pub struct AgendaContext {
    pub user_id: UserId,
    pub date: NaiveDate,
    pub email: String,
    pub display_name: String,
    pub timezone: String,
    /// `None`: the user has no agenda (any more).
    pub agenda_at: Option<Result<NaiveTime, PreferenceError>>,
    pub quiet_hours: Result<Option<QuietHours>, PreferenceError>,
    pub locale: Result<String, PreferenceError>,
    /// The user's preferred channels (`user_preferences.channels`).
    pub channels: Channels,
    pub endpoints: Vec<Endpoint>,
    /// The open tasks due before the end of the day, earliest first, at most the limit asked.
    pub tasks: Vec<AgendaTask>,
    /// How many such tasks there are in all.
    pub due_count: i64,
    /// The due times of the open tasks due between the earliest and the latest end asked,
    /// which [`AgendaContext::within`] needs to count exactly.
    pub edge: Vec<DateTime<Utc>>,
    /// The deliveries of this date's agenda recorded so far.
    pub deliveries: Vec<AgendaDeliveryRow>,
}

/// [`AgendaContext`] as both backends return it (the lists as JSON arrays).
#[derive(sqlx_macros::FromRow)]
pub(crate) struct AgendaContextRaw {
    user_id: i64,
    agenda_date: NaiveDate,
    email: String,
    display_name: String,
    timezone: String,
    agenda_at: Option<String>,
    quiet_start: Option<String>,
    quiet_end: Option<String>,
    quiet_days: Option<String>,
    locale: Option<String>,
    preferred_channels: Option<String>,
    endpoints: Option<String>,
    tasks: Option<String>,
    due_count: i64,
    edge: Option<String>,
    deliveries: Option<String>,
}

/// One element of the tasks' JSON aggregate.
#[derive(serde::Deserialize)]
struct AgendaTaskRaw {
    id: i64,
    title: String,
    status: String,
    due_at: DateTime<Utc>,
}

/// One element of the deliveries' JSON aggregate.
#[derive(serde::Deserialize)]
struct AgendaDeliveryRaw {
    id: i64,
    channel: String,
    endpoint_id: i64,
    status: String,
    claimed_at: DateTime<Utc>,
    lease_until: DateTime<Utc>,
}

impl TryFrom<AgendaContextRaw> for AgendaContext {
    type Error = Malformed;
    fn try_from(r: AgendaContextRaw) -> Result<Self, Malformed> {
        const T: &str = "users";
        let row = r.user_id;
        let json = |what: &str, text: Option<&str>| {
            let text = text.unwrap_or("[]");
            serde_json::from_str::<Vec<serde_json::Value>>(text)
                .map_err(|e| Malformed::new(T, row, format!("its agenda's {what}: {e}")))
        };
        let tasks = json("tasks", r.tasks.as_deref())?
            .into_iter()
            .map(|t| {
                let t: AgendaTaskRaw = serde_json::from_value(t)
                    .map_err(|e| Malformed::new(T, row, format!("a task of its agenda: {e}")))?;
                Ok(AgendaTask {
                    id: id("tasks", t.id, "id", t.id, TaskId::new)?,
                    title: t.title,
                    status: parse("tasks", t.id, "status", &t.status)?,
                    due_at: t.due_at,
                })
            })
            .collect::<Result<Vec<_>, Malformed>>()?;
        let deliveries = json("deliveries", r.deliveries.as_deref())?
            .into_iter()
            .map(|d| {
                let d: AgendaDeliveryRaw = serde_json::from_value(d)
                    .map_err(|e| Malformed::new(T, row, format!("an agenda delivery: {e}")))?;
                Ok(AgendaDeliveryRow {
                    id: d.id,
                    channel: parse("agenda_deliveries", d.id, "channel", &d.channel)?,
                    endpoint_id: d.endpoint_id,
                    status: parse("agenda_deliveries", d.id, "status", &d.status)?,
                    claimed_at: d.claimed_at,
                    lease_until: d.lease_until,
                })
            })
            .collect::<Result<Vec<_>, Malformed>>()?;
        Ok(Self {
            user_id: id(T, row, "id", r.user_id, UserId::new)?,
            date: r.agenda_date,
            email: r.email,
            display_name: r.display_name,
            timezone: r.timezone,
            agenda_at: r.agenda_at.as_deref().map(agenda_time),
            quiet_hours: QuietHours::parse(
                r.quiet_start.as_deref(),
                r.quiet_end.as_deref(),
                r.quiet_days.as_deref(),
            ),
            locale: preferences::locale(r.locale.as_deref().unwrap_or("en")),
            channels: Channels::parse(r.preferred_channels.as_deref().unwrap_or("email")),
            endpoints: endpoints(row, r.endpoints.as_deref())?,
            tasks,
            due_count: r.due_count,
            edge: serde_json::from_str::<Option<Vec<DateTime<Utc>>>>(r.edge.as_deref().unwrap_or("null"))
                .map_err(|e| Malformed::new(T, row, format!("its agenda's due times: {e}")))?
                .unwrap_or_default(),
            deliveries,
        })
    }
}

impl AgendaContext {
    /// The context with only the tasks due before `end` (the day's end in the user's zone),
    /// listed and counted; the read took every end the date can have.
    pub fn within(mut self, end: DateTime<Utc>) -> Self {
        self.tasks.retain(|t| t.due_at < end);
        let after = self.edge.iter().filter(|t| **t >= end).count() as i64;
        self.due_count = (self.due_count - after).max(0);
        self.edge.clear();
        self
    }
}

/// A claim notify asks for: one delivery of a user's agenda of a date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgendaClaim {
    pub user_id: UserId,
    pub date: NaiveDate,
    pub channel: Channel,
    /// 0 for e-mail.
    pub endpoint_id: i64,
    pub event_id: String,
    pub tasks: i32,
    pub recipient: String,
}

/// A claim notify holds: its row and fencing token (`claimed_at`).
#[derive(Debug, Clone, PartialEq, Eq, sqlx_macros::FromRow)]
pub struct AgendaHeld {
    pub id: i64,
    pub user_id: i64,
    pub channel: String,
    pub endpoint_id: i64,
    pub claimed_at: DateTime<Utc>,
}

/// A delivery's end as notify records it, where its claim is still the one it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgendaFinished {
    pub id: i64,
    pub claimed_at: DateTime<Utc>,
    pub status: DeliveryStatus,
    pub message_id: Option<String>,
    pub detail: Option<String>,
}
