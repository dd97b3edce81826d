//! The text columns that stand for a fixed set of values (states, statuses, priorities,
//! channels) as enums, with their stored text written once. They have a module of their own
//! because every concern's rows read them, and code past the store compares these enums,
//! never string literals.

use std::fmt;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::parse;

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
}
