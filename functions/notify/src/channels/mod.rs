//! Channels beside e-mail: a reminder delivered to places the user registered
//! (`channel_endpoints`, docs/CHANNELS.md).
//!
//! - [`webhook`] — an HTTP `POST` in one of four shapes (our own JSON, Slack, Discord, ntfy),
//!   signed per the Standard Webhooks specification.
//! - [`webpush`] — a push message to a browser's subscription: RFC 8030 delivery, RFC 8291
//!   encryption, RFC 8292 VAPID.
//! - [`guard`] — which targets may be reached at all: the URLs come from users, so each must
//!   be `https` and public (no cluster-internal or metadata address).
//!
//! A channel answers like the mailer does: delivered, failed for good (recorded, never
//! retried), or failed for now (the claim is given back and the event retried, not before
//! the receiver's `Retry-After`); a push service adds "gone" (the subscription ended: the
//! endpoint is deactivated). [`judge`] reads every answer the same way.

pub mod guard;
pub mod webhook;
pub mod webpush;

use crate::i18n::Language;
use crate::mail::compose::{single_line, wall, zoned};
use chrono::{DateTime, Utc};
use fluent_bundle::FluentArgs;
use guard::{Guard, Refused};
use std::sync::Arc;
use std::time::Duration;
use todo_events_domain::time::rfc3339;
use todo_events_domain::{ReminderId, TaskId, UserId};

/// Why a notice was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth another try (a timeout, a refused connection, `408`, `429`, `5xx`); not before
    /// `retry_after` when the receiver said so.
    #[error("temporary failure: {reason}")]
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Will never work (the target is not allowed, `4xx`, a redirect).
    #[error("permanent failure: {0}")]
    Permanent(String),
    /// The push service says the subscription is gone (`404`, `410`): deactivate it.
    #[error("the subscription is gone: {0}")]
    Gone(String),
}

impl SendError {
    pub fn transient(reason: impl Into<String>) -> Self {
        Self::Transient {
            reason: reason.into(),
            retry_after: None,
        }
    }
}

/// What a reminder says, whatever the channel carries it.
#[derive(Debug, Clone)]
pub struct Notice<'a> {
    pub reminder_id: ReminderId,
    pub task_id: TaskId,
    pub user_id: UserId,
    pub remind_at: DateTime<Utc>,
    pub task_title: &'a str,
    pub task_due_at: Option<DateTime<Utc>>,
    /// The user's IANA zone; UTC when it is unknown.
    pub timezone: &'a str,
    /// The task in the todo app (`APP_URL/tasks/<id>`).
    pub task_url: String,
    /// The user's language ([`crate::i18n`]).
    pub language: &'a Language,
}

impl Notice<'_> {
    /// The task's title on one line.
    pub fn title(&self) -> String {
        single_line(self.task_title)
    }

    /// The due time in the user's zone as an RFC 3339 local time with its offset, and the
    /// zone it was shown in (UTC when the user's is unknown).
    pub fn due_local(&self) -> Option<(String, String)> {
        let due = self.task_due_at?;
        let (local, zone) = zoned(due, self.timezone).ok()?;
        Some((
            local.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
            zone.to_owned(),
        ))
    }

    /// The notice's heading, in the user's language: "Reminder: Water the plants".
    pub fn heading(&self) -> String {
        let mut args = FluentArgs::new();
        args.set("title", self.title());
        self.language.text("reminder-heading", &args)
    }

    /// One sentence for chat-like channels, in the user's language: "Reminder: Water the
    /// plants (due Monday, November 30, 2026 at 10:00 AM CET)".
    pub fn sentence(&self) -> String {
        let mut args = FluentArgs::new();
        args.set("title", self.title());
        let due = self.task_due_at.and_then(|due| zoned(due, self.timezone).ok());
        let written = due.and_then(|(local, _)| {
            let f = self.language.formats(wall(&local))?;
            Some(format!("{} {}", f.date_time, local.strftime("%Z")))
        });
        match written {
            Some(full) => {
                args.set("due-full", full);
                self.language.text("reminder-sentence-due", &args)
            }
            None => self.language.text("reminder-sentence", &args),
        }
    }

    /// The deterministic id of this notice's delivery to `endpoint`: the same on every
    /// retry, so a receiver recognises a second copy (`webhook-id`).
    pub fn delivery_id(&self, endpoint: i64) -> String {
        delivery_id(self.reminder_id, self.remind_at, endpoint)
    }

    pub fn remind_at_text(&self) -> String {
        rfc3339(self.remind_at)
    }
}

/// The deterministic id of the delivery of reminder `reminder` at `remind_at` to `endpoint`
/// (`webhook-id`, and the Message-ID `deliveries` keeps for it).
pub fn delivery_id(reminder: ReminderId, remind_at: DateTime<Utc>, endpoint: i64) -> String {
    format!(
        "msg_reminder-{reminder}-{}-endpoint-{endpoint}",
        remind_at.timestamp_micros()
    )
}

/// The most of a receiver's answer that is read (for the failure's detail).
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024;

/// The longest `Retry-After` honoured; a longer one is cut to this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The HTTP client of a channel, built on its first use: a notify whose reminders name only
/// e-mail (and every pod that starts and idles, scale-to-zero's common case) does not carry
/// the client's TLS set-up in its idle memory (docs/PERFORMANCE.md, "What the figures say, and
/// what was done about them", item 17).
pub(crate) struct LazyClient {
    guard: Guard,
    timeout: Duration,
    client: std::sync::OnceLock<Result<reqwest::Client, String>>,
}

impl LazyClient {
    pub(crate) fn new(guard: Guard, timeout: Duration) -> Self {
        Self {
            guard,
            timeout,
            client: std::sync::OnceLock::new(),
        }
    }

    /// The client; a client that cannot be built fails the delivery for now.
    pub(crate) fn get(&self) -> Result<&reqwest::Client, SendError> {
        self.client
            .get_or_init(|| client(self.guard.clone(), self.timeout))
            .as_ref()
            .map_err(|e| SendError::transient(e.clone()))
    }
}

/// The HTTP client of a channel: one connection pool for all its targets, the target guard
/// as its resolver, redirects never followed, no proxy (a proxy would resolve and connect on
/// notify's behalf, past the guard), every exchange bounded by `timeout`.
fn client(guard: Guard, timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .user_agent(concat!("todo-events-notify/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(guard))
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .build()
        .map_err(|e| format!("the HTTP client cannot be built: {e}"))
}

/// What an answer means for the delivery: `2xx` delivered; `408`, `429`, `5xx` worth another
/// try (not before `Retry-After`); a status among `gone` the end of a subscription; anything
/// else (other `4xx`, a redirect) a failure for good. At most [`MAX_RESPONSE_BYTES`] of the
/// answer are read, for the detail. `shown` names the target without its path.
pub(crate) async fn judge(
    shown: &str,
    mut response: reqwest::Response,
    gone: &[u16],
) -> Result<(), SendError> {
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| retry_after(v, Utc::now()));
    let redirect = response.headers().contains_key(reqwest::header::LOCATION);
    let mut text = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        text.extend_from_slice(&chunk[..chunk.len().min(MAX_RESPONSE_BYTES - text.len())]);
        if text.len() >= MAX_RESPONSE_BYTES {
            break;
        }
    }
    let said = truncate(&single_line(&String::from_utf8_lossy(&text)), 200);
    let reason = if redirect {
        format!("{shown} answered {status}: a redirect (not followed)")
    } else if said.is_empty() {
        format!("{shown} answered {status}")
    } else {
        format!("{shown} answered {status}: {said}")
    };
    let code = status.as_u16();
    if gone.contains(&code) {
        Err(SendError::Gone(reason))
    } else if code == 408 || code == 429 || status.is_server_error() {
        Err(SendError::Transient { reason, retry_after })
    } else {
        Err(SendError::Permanent(reason))
    }
}

/// A request that got no answer: refused by the guard (for good), else worth another try.
pub(crate) fn failed_exchange(shown: &str, e: &reqwest::Error) -> SendError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(refused) = err.downcast_ref::<Refused>() {
            return SendError::Permanent(format!("the target {shown} is not allowed: {refused}"));
        }
        source = err.source();
    }
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not be reached"
    } else {
        "failed"
    };
    // reqwest's own message names the URL with its path: only the cause is kept, its URLs cut.
    let cause = std::error::Error::source(e)
        .map(|s| format!(": {}", strip_urls(&s.to_string())))
        .unwrap_or_default();
    SendError::transient(format!("the request to {shown} {what}{cause}"))
}

/// `Retry-After` as delta-seconds or an HTTP date, at most an hour; `None` when unreadable
/// or in the past.
pub fn retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = DateTime::parse_from_rfc2822(value).ok()?;
            (at.with_timezone(&Utc) - now).to_std().ok()?
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// At most `max_chars` characters, an ellipsis marking a cut.
pub(crate) fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        text.to_owned()
    } else {
        text.chars().take(max_chars - 1).collect::<String>() + "…"
    }
}

/// Removes `scheme://…` words from an error's text (they would show a URL's secret path).
fn strip_urls(text: &str) -> String {
    text.split(' ')
        .map(|w| if w.contains("://") { "(url)" } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_dates_and_is_bounded() {
        let now: DateTime<Utc> = "2026-11-30T08:00:00Z".parse().unwrap();
        assert_eq!(retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            retry_after("Mon, 30 Nov 2026 08:01:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(retry_after("86400", now), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after("Mon, 30 Nov 2026 07:00:00 GMT", now), None);
        assert_eq!(retry_after("soon", now), None);
    }
}
