//! notify's rows: the reminder context its read returns (with the user's endpoints) and the
//! delivery records. Apart from the other concerns' rows because only notify reads them, and
//! the context is the largest conversion of the store.

use super::{id, parse, Channel, Channels, DeliveryStatus, Malformed, ReminderState, TaskStatus};
use chrono::{DateTime, Utc};
use std::fmt;
use todo_events_domain::preferences::{self, PreferenceError, QuietHours};
use todo_events_domain::{DeliveryId, EndpointId, ReminderId, TaskId, UserId};

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
pub(crate) fn endpoints(reminder: i64, json: Option<&str>) -> Result<Vec<Endpoint>, Malformed> {
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
    /// `reminders.channels`; for `default`, the user's `user_preferences.channels` (e-mail
    /// when the user has no preferences).
    pub channels: Channels,
    /// The user's active endpoints, read when the reminder names a channel beside e-mail.
    pub endpoints: Vec<Endpoint>,
    /// `reminders.urgent`: goes out inside quiet hours.
    pub urgent: bool,
    /// `reminders.deferred_until`: when notify put it off to, once, for quiet hours.
    pub deferred_until: Option<DateTime<Utc>>,
    /// The user's quiet hours (`None`: none), or why the stored ones cannot be used.
    pub quiet_hours: Result<Option<QuietHours>, PreferenceError>,
    /// The user's locale, a BCP 47 tag in canonical case (`en` when the user has no
    /// preferences), or why the stored one cannot be used.
    pub locale: Result<String, PreferenceError>,
}

impl ReminderContext {
    /// When the reminder is due: its `remind_at`, or the end of the quiet hours it was put
    /// off to.
    pub fn due_at(&self) -> DateTime<Utc> {
        self.deferred_until
            .map_or(self.remind_at, |until| until.max(self.remind_at))
    }
}

/// [`ReminderContext`] as both backends return it.
#[derive(sqlx_macros::FromRow)]
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
    urgent: bool,
    deferred_until: Option<DateTime<Utc>>,
    quiet_start: Option<String>,
    quiet_end: Option<String>,
    quiet_days: Option<String>,
    locale: Option<String>,
    preferred_channels: Option<String>,
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
            channels: channels(&r.channels, r.preferred_channels.as_deref()),
            endpoints: endpoints(row, r.endpoints.as_deref())?,
            urgent: r.urgent,
            deferred_until: r.deferred_until,
            quiet_hours: QuietHours::parse(
                r.quiet_start.as_deref(),
                r.quiet_end.as_deref(),
                r.quiet_days.as_deref(),
            ),
            locale: preferences::locale(r.locale.as_deref().unwrap_or("en")),
        })
    }
}

/// A reminder's channels: as it names them, or for `default` as its user prefers them
/// (e-mail for a user without preferences).
fn channels(named: &str, preferred: Option<&str>) -> Channels {
    match named.trim().eq_ignore_ascii_case("default") {
        true => Channels::parse(preferred.unwrap_or("email")),
        false => Channels::parse(named),
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
#[derive(sqlx_macros::FromRow)]
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
