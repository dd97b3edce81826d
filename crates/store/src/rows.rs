//! Rows as the functions read them, typed once at the edge of the store.
//!
//! The database keeps states, statuses, policies and rules as text (readable with `psql`,
//! the same on both backends). Each backend reads a row into a private raw shape, and
//! [`TryFrom`] turns that into the typed row here: an id is a typed id, a state is an
//! enum, the rule is a parsed [`Schedule`]. A stored value that does not parse is a
//! [`Malformed`] error naming the table and row, never a silent default; code past the store
//! never compares string literals or re-parses a rule.

use chrono::{DateTime, Duration, Utc};
use std::fmt;
use todo_events_domain::recurrence::parse_local;
use todo_events_domain::{
    CatchUp, DeliveryId, EndpointId, RecurringTaskId, ReminderId, Schedule, TaskId, UserId,
};

/// A stored value that cannot be read as what it stands for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{table} row {id}: {detail}")]
pub struct Malformed {
    pub table: &'static str,
    pub id: i64,
    pub detail: String,
}

impl Malformed {
    fn new(table: &'static str, id: i64, detail: impl fmt::Display) -> Self {
        Self {
            table,
            id,
            detail: detail.to_string(),
        }
    }
}

/// `reminders.state`: where a reminder is on its way from due to mailed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum ReminderState {
    /// Not published yet (new, or moved by the app).
    Pending,
    /// Claimed by a scheduler, which holds a lease on it.
    Publishing,
    /// Its event is on the topic; notify has not finished it yet.
    Published,
    Sent,
    /// Mailing failed for good.
    Failed,
    /// Cancelled by the app: never mailed.
    Cancelled,
}

/// `tasks.status`, as the todo app sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum TaskStatus {
    Todo,
    InProgress,
    Done,
    Cancelled,
}

impl TaskStatus {
    /// A task that is done or cancelled needs no reminder any more.
    pub fn is_closed(self) -> bool {
        matches!(self, Self::Done | Self::Cancelled)
    }
}

/// `deliveries.status`: a claim (`sending`) and how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum DeliveryStatus {
    Sending,
    Sent,
    Failed,
}

/// `tasks.priority` and `recurring_tasks.priority`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Priority {
    Low,
    Medium,
    High,
}

macro_rules! text_of {
    ($($ty:ty),*) => {$(
        impl $ty {
            /// The stored text.
            pub fn as_str(self) -> &'static str {
                self.into()
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}
/// A way a reminder reaches its user: `reminders.channels` names some, `deliveries.channel`
/// and `channel_endpoints.channel` one each.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, strum::EnumString, strum::IntoStaticStr,
)]
pub enum Channel {
    /// To the user's address (`users.email`).
    #[strum(serialize = "email")]
    Email,
    /// An HTTP `POST` to each of the user's active webhook endpoints.
    #[strum(serialize = "webhook")]
    Webhook,
    /// A push message to each of the user's active Web Push subscriptions.
    #[strum(serialize = "webpush")]
    WebPush,
}

impl Channel {
    pub const ALL: [Channel; 3] = [Channel::Email, Channel::Webhook, Channel::WebPush];
}

text_of!(ReminderState, TaskStatus, DeliveryStatus, Priority, Channel);

/// `reminders.channels` read: a comma-separated subset of `email,webhook,webpush`. The
/// known names (spaces and case ignored, each once, in the order of [`Channel::ALL`]) are
/// delivered; a name that is none of them is kept in `unknown`, so that notify can say so
/// while still delivering the others (a typo must not silence a reminder's other channels).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Channels {
    pub known: Vec<Channel>,
    pub unknown: Vec<String>,
}

impl Channels {
    pub fn parse(text: &str) -> Self {
        let mut channels = Self::default();
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name.to_ascii_lowercase().parse::<Channel>() {
                Ok(c) if !channels.known.contains(&c) => channels.known.push(c),
                Ok(_) => {}
                Err(_) => channels.unknown.push(name.to_owned()),
            }
        }
        channels.known.sort();
        channels
    }

    pub fn email_only() -> Self {
        Self {
            known: vec![Channel::Email],
            unknown: Vec::new(),
        }
    }

    pub fn has(&self, channel: Channel) -> bool {
        self.known.contains(&channel)
    }
}

/// An active endpoint of a user (`channel_endpoints`), as stored: what its channel makes of
/// the target and keys (and whether the target may be reached at all) is the channel's to
/// judge, when it is used. `Debug` never shows the secret or the subscription keys.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub id: EndpointId,
    pub channel: Channel,
    /// The webhook's URL, or the subscription's push-service endpoint.
    pub target: String,
    /// The webhook's request shape (`standard`, `slack`, `discord`, `ntfy`).
    pub format: String,
    /// The webhook's signing secret (`whsec_…`), if it signs.
    pub secret: Option<String>,
    /// The subscription's keys (base64url).
    pub p256dh: Option<String>,
    pub auth: Option<String>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "***");
        f.debug_struct("Endpoint")
            .field("id", &self.id)
            .field("channel", &self.channel)
            .field("format", &self.format)
            .field("secret", &hidden(&self.secret))
            .field("p256dh", &hidden(&self.p256dh))
            .field("auth", &hidden(&self.auth))
            .finish_non_exhaustive()
    }
}

/// [`Endpoint`] as both backends return it: one element of the JSON array the context read
/// aggregates (so that a batch's endpoints cost no statement of their own).
#[derive(serde::Deserialize)]
struct EndpointRaw {
    id: i64,
    channel: String,
    target: String,
    format: String,
    secret: Option<String>,
    p256dh: Option<String>,
    auth: Option<String>,
}

/// The endpoints of a reminder's user from their JSON aggregate (`None`: not read, because
/// the reminder names no channel that has endpoints).
fn endpoints(reminder: i64, json: Option<&str>) -> Result<Vec<Endpoint>, Malformed> {
    const T: &str = "channel_endpoints";
    let Some(json) = json else { return Ok(Vec::new()) };
    let raw: Vec<EndpointRaw> = serde_json::from_str(json)
        .map_err(|e| Malformed::new("reminders", reminder, format!("its user's endpoints: {e}")))?;
    raw.into_iter()
        .map(|e| {
            Ok(Endpoint {
                id: id(T, e.id, "id", e.id, EndpointId::new)?,
                channel: parse(T, e.id, "channel", &e.channel)?,
                target: e.target,
                format: e.format,
                secret: e.secret,
                p256dh: e.p256dh,
                auth: e.auth,
            })
        })
        .collect()
}

/// Reads a stored value with its `FromStr`, naming the row when it does not parse.
pub(crate) fn parse<T: std::str::FromStr>(
    table: &'static str,
    id: i64,
    column: &str,
    text: &str,
) -> Result<T, Malformed> {
    text.parse()
        .map_err(|_| Malformed::new(table, id, format!("{column} {text:?} is not a known value")))
}

/// Reads a stored id (ids are positive).
pub(crate) fn id<T>(
    table: &'static str,
    row: i64,
    column: &str,
    value: i64,
    new: fn(i64) -> Option<T>,
) -> Result<T, Malformed> {
    new(value).ok_or_else(|| Malformed::new(table, row, format!("{column} {value} is not an id")))
}

/// A reminder with its task and recipient: everything notify needs, read in one query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReminderContext {
    pub reminder_id: ReminderId,
    pub task_id: TaskId,
    pub user_id: UserId,
    pub remind_at: DateTime<Utc>,
    pub state: ReminderState,
    pub task_title: String,
    pub task_description: String,
    pub task_status: TaskStatus,
    pub task_due_at: Option<DateTime<Utc>>,
    pub email: String,
    pub display_name: String,
    /// The user's IANA zone as the app stored it; the mail composer shows UTC (and says so
    /// in its log) when the zone is unknown, since the mail is still worth sending.
    pub timezone: String,
    /// `reminders.channels`.
    pub channels: Channels,
    /// The user's active endpoints, read when the reminder names a channel beside e-mail.
    pub endpoints: Vec<Endpoint>,
}

/// [`ReminderContext`] as both backends return it.
#[derive(sqlx::FromRow)]
pub(crate) struct ReminderContextRaw {
    reminder_id: i64,
    task_id: i64,
    user_id: i64,
    remind_at: DateTime<Utc>,
    state: String,
    task_title: String,
    task_description: String,
    task_status: String,
    task_due_at: Option<DateTime<Utc>>,
    email: String,
    display_name: String,
    timezone: String,
    channels: String,
    endpoints: Option<String>,
}

impl TryFrom<ReminderContextRaw> for ReminderContext {
    type Error = Malformed;
    fn try_from(r: ReminderContextRaw) -> Result<Self, Malformed> {
        const T: &str = "reminders";
        let row = r.reminder_id;
        Ok(Self {
            reminder_id: id(T, row, "id", r.reminder_id, ReminderId::new)?,
            task_id: id(T, row, "task_id", r.task_id, TaskId::new)?,
            user_id: id(T, row, "user_id", r.user_id, UserId::new)?,
            remind_at: r.remind_at,
            state: parse(T, row, "state", &r.state)?,
            task_title: r.task_title,
            task_description: r.task_description,
            task_status: parse(T, row, "its task's status", &r.task_status)?,
            task_due_at: r.task_due_at,
            email: r.email,
            display_name: r.display_name,
            timezone: r.timezone,
            channels: Channels::parse(&r.channels),
            endpoints: endpoints(row, r.endpoints.as_deref())?,
        })
    }
}

/// Seconds before each occurrence at which its instance gets a reminder, stored as a JSON
/// array of whole seconds (`[900]`: fifteen minutes before).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReminderOffsets(Vec<Duration>);

impl ReminderOffsets {
    pub fn from_seconds(seconds: &[i64]) -> Self {
        Self(seconds.iter().map(|s| Duration::seconds(*s)).collect())
    }

    /// The reminder instants of an occurrence.
    pub fn before(&self, occurrence: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        self.0.iter().map(|offset| occurrence - *offset).collect()
    }

    pub(crate) fn to_json(&self) -> String {
        let seconds: Vec<i64> = self.0.iter().map(|d| d.num_seconds()).collect();
        serde_json::to_string(&seconds).expect("integers serialize")
    }

    fn from_json(text: &str) -> Result<Self, String> {
        serde_json::from_str::<Vec<i64>>(text)
            .map(|s| Self::from_seconds(&s))
            .map_err(|e| format!("reminder_offsets {text:?} is not a JSON array of seconds: {e}"))
    }
}

/// The stored rule of a recurring task (the same columns in every read of one).
#[derive(sqlx::FromRow)]
pub(crate) struct StoredRule {
    rrule: String,
    timezone: String,
    dtstart: String,
    series_cursor: Option<String>,
}

impl StoredRule {
    /// The rule parsed: rule, local DTSTART and zone, resuming from its series cursor
    /// (`Schedule::with_cursor`: one that does not fit is not used).
    fn schedule(&self, table: &'static str, row: i64) -> Result<Schedule, Malformed> {
        parse_local(&self.dtstart)
            .and_then(|dtstart| Schedule::parse(&self.rrule, dtstart, &self.timezone))
            .map(|schedule| schedule.with_cursor(self.series_cursor.as_deref()))
            .map_err(|e| Malformed::new(table, row, format!("the stored rule cannot be evaluated: {e}")))
    }
}

/// A recurring task as recur reads it.
#[derive(Debug, Clone)]
pub struct RecurringTaskRow {
    pub id: RecurringTaskId,
    pub user_id: UserId,
    pub title: String,
    pub description: String,
    pub priority: Priority,
    pub schedule: Schedule,
    pub next_occurrence: Option<DateTime<Utc>>,
    pub active: bool,
    pub catch_up: CatchUp,
    pub reminder_offsets: ReminderOffsets,
}

/// [`RecurringTaskRow`] as both backends return it.
#[derive(sqlx::FromRow)]
pub(crate) struct RecurringTaskRaw {
    pub(crate) id: i64,
    user_id: i64,
    title: String,
    description: String,
    priority: String,
    #[sqlx(flatten)]
    rule: StoredRule,
    next_occurrence: Option<DateTime<Utc>>,
    active: bool,
    catch_up: String,
    reminder_offsets: String,
}

impl TryFrom<RecurringTaskRaw> for RecurringTaskRow {
    type Error = Malformed;
    fn try_from(r: RecurringTaskRaw) -> Result<Self, Malformed> {
        const T: &str = "recurring_tasks";
        let row = r.id;
        Ok(Self {
            id: id(T, row, "id", r.id, RecurringTaskId::new)?,
            user_id: id(T, row, "user_id", r.user_id, UserId::new)?,
            title: r.title,
            description: r.description,
            priority: parse(T, row, "priority", &r.priority)?,
            schedule: r.rule.schedule(T, row)?,
            next_occurrence: r.next_occurrence,
            active: r.active,
            catch_up: parse(T, row, "catch_up", &r.catch_up)?,
            reminder_offsets: ReminderOffsets::from_json(&r.reminder_offsets)
                .map_err(|e| Malformed::new(T, row, e))?,
        })
    }
}

/// A delivery record (one per reminder occurrence and channel).
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub id: DeliveryId,
    pub reminder_id: ReminderId,
    pub remind_at: DateTime<Utc>,
    pub channel: Channel,
    /// The endpoint delivered to; `None` for e-mail.
    pub endpoint_id: Option<EndpointId>,
    pub event_id: String,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub recipient: Option<String>,
    pub message_id: Option<String>,
    pub detail: Option<String>,
}

/// [`DeliveryRow`] as both backends return it.
#[derive(sqlx::FromRow)]
pub(crate) struct DeliveryRaw {
    id: i64,
    reminder_id: i64,
    remind_at: DateTime<Utc>,
    channel: String,
    endpoint_id: i64,
    event_id: String,
    status: String,
    attempts: i32,
    recipient: Option<String>,
    message_id: Option<String>,
    detail: Option<String>,
}

impl TryFrom<DeliveryRaw> for DeliveryRow {
    type Error = Malformed;
    fn try_from(r: DeliveryRaw) -> Result<Self, Malformed> {
        const T: &str = "deliveries";
        let row = r.id;
        Ok(Self {
            id: id(T, row, "id", r.id, DeliveryId::new)?,
            reminder_id: id(T, row, "reminder_id", r.reminder_id, ReminderId::new)?,
            remind_at: r.remind_at,
            channel: parse(T, row, "channel", &r.channel)?,
            endpoint_id: EndpointId::new(r.endpoint_id),
            event_id: r.event_id,
            status: parse(T, row, "status", &r.status)?,
            attempts: r.attempts,
            recipient: r.recipient,
            message_id: r.message_id,
            detail: r.detail,
        })
    }
}

/// A claimed reminder, ready to become a `dev.todo.reminder.due` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedReminder {
    pub id: ReminderId,
    pub task_id: TaskId,
    pub user_id: UserId,
    pub remind_at: DateTime<Utc>,
    /// Published before, without effect after the republish delay.
    pub again: bool,
}

/// [`ClaimedReminder`] as both backends return it.
#[derive(sqlx::FromRow)]
pub(crate) struct ClaimedReminderRaw {
    id: i64,
    task_id: i64,
    user_id: i64,
    remind_at: DateTime<Utc>,
    again: bool,
}

impl TryFrom<ClaimedReminderRaw> for ClaimedReminder {
    type Error = Malformed;
    fn try_from(r: ClaimedReminderRaw) -> Result<Self, Malformed> {
        const T: &str = "reminders";
        let row = r.id;
        Ok(Self {
            id: id(T, row, "id", r.id, ReminderId::new)?,
            task_id: id(T, row, "task_id", r.task_id, TaskId::new)?,
            user_id: id(T, row, "user_id", r.user_id, UserId::new)?,
            remind_at: r.remind_at,
            again: r.again,
        })
    }
}

/// A claimed recurring task whose `next_occurrence` is due.
#[derive(Debug, Clone)]
pub struct ClaimedOccurrence {
    pub id: RecurringTaskId,
    pub user_id: UserId,
    pub schedule: Schedule,
    pub next_occurrence: DateTime<Utc>,
    pub catch_up: CatchUp,
    /// This occurrence was published before, without effect after the republish delay.
    pub again: bool,
}

/// [`ClaimedOccurrence`] as both backends return it.
#[derive(sqlx::FromRow)]
pub(crate) struct ClaimedOccurrenceRaw {
    pub(crate) id: i64,
    user_id: i64,
    #[sqlx(flatten)]
    rule: StoredRule,
    pub(crate) next_occurrence: DateTime<Utc>,
    catch_up: String,
    again: bool,
}

impl TryFrom<ClaimedOccurrenceRaw> for ClaimedOccurrence {
    type Error = Malformed;
    fn try_from(r: ClaimedOccurrenceRaw) -> Result<Self, Malformed> {
        const T: &str = "recurring_tasks";
        let row = r.id;
        Ok(Self {
            id: id(T, row, "id", r.id, RecurringTaskId::new)?,
            user_id: id(T, row, "user_id", r.user_id, UserId::new)?,
            schedule: r.rule.schedule(T, row)?,
            next_occurrence: r.next_occurrence,
            catch_up: parse(T, row, "catch_up", &r.catch_up)?,
            again: r.again,
        })
    }
}

/// Converts every raw row, failing with the first malformed one (for reads whose rows
/// must all be usable).
pub(crate) fn typed<R, T: TryFrom<R, Error = Malformed>>(rows: Vec<R>) -> Result<Vec<T>, Malformed> {
    rows.into_iter().map(T::try_from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_text_reads_back_as_the_same_value() {
        for s in [
            "pending",
            "publishing",
            "published",
            "sent",
            "failed",
            "cancelled",
        ] {
            assert_eq!(s.parse::<ReminderState>().unwrap().as_str(), s);
        }
        for s in ["todo", "in_progress", "done", "cancelled"] {
            assert_eq!(s.parse::<TaskStatus>().unwrap().as_str(), s);
        }
        for s in ["sending", "sent", "failed"] {
            assert_eq!(s.parse::<DeliveryStatus>().unwrap().as_str(), s);
        }
        let e = parse::<TaskStatus>("tasks", 7, "status", "Done").unwrap_err();
        assert_eq!(e.to_string(), "tasks row 7: status \"Done\" is not a known value");
    }

    #[test]
    fn reminder_offsets_are_seconds_before_and_malformed_json_is_an_error() {
        let offsets = ReminderOffsets::from_json("[900, 0]").unwrap();
        let t = DateTime::<Utc>::from_timestamp(10_000, 0).unwrap();
        assert_eq!(offsets.before(t), [t - Duration::seconds(900), t]);
        assert_eq!(offsets.to_json(), "[900,0]");
        assert!(ReminderOffsets::from_json("[\"15m\"]").is_err());
        assert!(ReminderOffsets::from_json("").is_err());
    }
}
