//! The delivery: one reminder to one [`Route`], the unit that goes through notify's steps.
//!
//! Its type says how far it got: [`Planned`] (where it goes, checked), [`Claimed`] (this call
//! holds its row), [`Attempted`] (what the channel said), and at last an [`End`] (how it
//! ended in this call: sent, failed, done before, to be retried...). Each step takes the
//! values of one state and gives back those of the next, or their ends: only a claimed
//! delivery is sent, only an attempted one recorded, and none is looked up by position. The
//! ends find their events again only at the answer, by reminder.

use crate::channels::guard::redacted;
use crate::channels::{delivery_id, SendError};
use crate::mail::message_id;
use crate::plan::Target;
use chrono::{DateTime, Utc};
use todo_events_domain::ReminderId;
use todo_events_host::Failure;
use todo_events_store::notify::{Held, NewClaim, Route};
use todo_events_store::{DeliveryStatus, ReminderContext};

/// A delivery planned: the event that asks for it, its reminder, and where it goes.
pub(super) struct Planned<'c> {
    /// The CloudEvents id of the event that asks (the claim keeps it).
    pub event_id: &'c str,
    pub ctx: &'c ReminderContext,
    pub route: Route,
    pub target: Target,
}

/// A delivery whose claim this call holds: its row and fencing token, and when the
/// delivery was first claimed.
pub(super) struct Claimed<'c> {
    pub delivery: Planned<'c>,
    pub held: Held,
    pub since: DateTime<Utc>,
}

/// A claimed delivery and what its channel said: where it went, or why not.
pub(super) struct Attempted<'c> {
    pub claimed: Claimed<'c>,
    pub sent: Sent,
}

/// What the channel said about a delivery: where it went, or why not.
pub(super) type Sent = Result<String, SendError>;

/// A delivery at its end in this call: its reminder (whose event it answers), its route, and
/// how it ended.
pub(super) struct End {
    pub reminder_id: ReminderId,
    pub route: Route,
    pub ended: Ended,
}

/// How one delivery ended in this call.
#[derive(Debug)]
pub(super) enum Ended {
    /// Sent now; the id the receiver knows it by (Message-ID, `webhook-id`), and where it
    /// went (the mail's file or relay, the target without its path).
    Sent { message_id: String, place: String },
    /// Failed for good now (recorded); why.
    Failed(String),
    /// The push subscription is gone (recorded failed, the endpoint deactivated); why.
    Gone(String),
    /// Done before, or being done by another delivery: as found.
    Duplicate {
        status: DeliveryStatus,
        detail: Option<String>,
    },
    /// Not done; the event must come again (a transient failure, the database away).
    Retry(Failure),
    /// A webhook or push failed transiently (now, or before and its retry time has not
    /// come): retried on its own schedule, without holding the event up; why.
    Scheduled(String),
    /// A webhook or push whose endpoint had not answered within the batch's patience: its
    /// request goes on without the batch and records its own outcome
    /// ([`super::send`]); why.
    Sending(String),
}

impl Ended {
    /// The word for it: the answer's `outcome` of a delivery, the metric's label.
    pub fn word(&self) -> &'static str {
        match self {
            Ended::Sent { .. } => "sent",
            Ended::Failed(_) => "failed",
            Ended::Gone(_) => "gone",
            Ended::Duplicate { .. } => "duplicate",
            Ended::Retry(_) => "retry",
            Ended::Scheduled(_) => "scheduled",
            Ended::Sending(_) => "sending",
        }
    }
}

impl<'c> Planned<'c> {
    /// This delivery's claim.
    pub fn new_claim(&self) -> NewClaim<'c> {
        NewClaim {
            reminder_id: self.ctx.reminder_id,
            remind_at: self.ctx.remind_at,
            route: self.route,
            event_id: self.event_id,
        }
    }

    /// This delivery, ended as `ended`.
    pub fn ended(&self, ended: Ended) -> End {
        End {
            reminder_id: self.ctx.reminder_id,
            route: self.route,
            ended,
        }
    }

    /// Where this delivery goes, as `deliveries.recipient` keeps it (never a URL's path:
    /// Slack's and Discord's hold their secret there).
    pub fn recipient(&self) -> String {
        match &self.target {
            Target::Email => self.ctx.email.clone(),
            Target::Webhook(w) => redacted(&w.url),
            Target::WebPush(s) => redacted(&s.url),
            Target::Unusable(_) => self.route.to_string(),
        }
    }

    /// The id `deliveries` keeps for this delivery: the mail's Message-ID, else the
    /// deterministic delivery id (what a webhook's receiver sees as `webhook-id`), both
    /// without a `Notice`.
    pub fn message_id(&self) -> String {
        let ctx = self.ctx;
        match self.route.endpoint {
            None => message_id(ctx.reminder_id, ctx.remind_at),
            Some(endpoint) => delivery_id(ctx.reminder_id, ctx.remind_at, endpoint.get()),
        }
    }
}

impl Attempted<'_> {
    /// This delivery, ended as `ended`.
    pub fn ended(&self, ended: Ended) -> End {
        self.claimed.delivery.ended(ended)
    }
}
