//! The webhook channel: a reminder as an HTTP `POST` to a URL the user registered.
//!
//! Four shapes ([`Format`]), because the places people want reminders in each expect their
//! own: `standard` (our JSON: the reminder's ids and times, the task's title, its due time in
//! the user's zone and a link), Slack's incoming webhooks (`{"text": …}`), Discord's
//! (`{"content": …}`, mentions disabled so a title cannot ping anyone) and ntfy (a plain-text
//! body with `Title`, `Click` and `Tags` headers).
//!
//! With a secret (`whsec_…`) every request is signed per the Standard Webhooks specification,
//! by the specification's own crate (`standardwebhooks`): `webhook-id` is the delivery's
//! deterministic id ([`Notice::delivery_id`], the same on every retry, so a receiver drops a
//! second copy), `webhook-timestamp` the time of sending, `webhook-signature` `v1,<base64
//! HMAC-SHA256 of "id.timestamp.body">`.
//!
//! The answer decides what happens next ([`super::judge`]): `2xx` delivered; `408`, `429`,
//! `5xx`, a timeout or a connection that fails are worth another try (not before
//! `Retry-After`); any other status, a redirect (never followed) or a refused target fail for
//! good.

#[cfg(test)]
mod tests;

use super::guard::{redacted, Guard, Refused};
use super::{failed_exchange, judge, truncate, LazyClient, Notice, SendError};
use base64::Engine;
use serde_json::json;
use std::time::Duration;
use url::Url;

/// The shortest signing key accepted: an HMAC-SHA256 key of fewer than 128 bits is too easy to
/// guess (an empty `whsec_` would sign with no key at all).
const MIN_SECRET_BYTES: usize = 16;

/// The shape of a webhook's request (`channel_endpoints.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Standard,
    Slack,
    Discord,
    Ntfy,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "standard" => Self::Standard,
            "slack" => Self::Slack,
            "discord" => Self::Discord,
            "ntfy" => Self::Ntfy,
            other => {
                return Err(format!(
                    "unknown webhook format {other:?} (standard, slack, discord or ntfy)"
                ))
            }
        })
    }
}

/// A user's webhook endpoint, checked once: the URL allowed by the target policy, the secret
/// held so that neither `Debug` nor an error can show it (nor the URL's path, a secret for
/// Slack and Discord).
pub struct WebhookEndpoint {
    pub id: i64,
    pub url: Url,
    pub format: Format,
    /// The signer, keyed with the endpoint's secret.
    secret: Option<standardwebhooks::Webhook>,
}

impl std::fmt::Debug for WebhookEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookEndpoint")
            .field("id", &self.id)
            .field("url", &redacted(&self.url))
            .field("format", &self.format)
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .finish()
    }
}

impl WebhookEndpoint {
    /// Checks an endpoint as stored: its URL against `guard`, its secret's form
    /// (`whsec_` + base64).
    pub fn new(
        id: i64,
        target: &str,
        format: Format,
        secret: Option<&str>,
        guard: &Guard,
    ) -> Result<Self, Refused> {
        let url = guard.check_url(target)?;
        let signer = secret
            .map(|s| {
                let key = s
                    .strip_prefix("whsec_")
                    .ok_or_else(|| Refused("the endpoint's secret does not start with whsec_".into()))?;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(key)
                    .map_err(|_| Refused("the endpoint's secret is not whsec_ and base64".into()))?;
                if bytes.len() < MIN_SECRET_BYTES {
                    return Err(Refused(format!(
                        "the endpoint's secret is {} bytes; at least {MIN_SECRET_BYTES} are needed \
                         (Standard Webhooks recommends 24 to 64)",
                        bytes.len()
                    )));
                }
                standardwebhooks::Webhook::new(s)
                    .map_err(|_| Refused("the endpoint's secret is not whsec_ and base64".into()))
            })
            .transpose()?;
        Ok(Self {
            id,
            url,
            format,
            secret: signer,
        })
    }

    /// Whether requests to this endpoint are signed.
    pub fn signs(&self) -> bool {
        self.secret.is_some()
    }
}

/// A request, before it goes out: body, content type and the headers of its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub body: Vec<u8>,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
}

/// The request `notice` becomes for an endpoint of `format` (without signature headers).
pub fn shape(format: Format, notice: &Notice<'_>) -> Outgoing {
    let json = |value: serde_json::Value| Outgoing {
        body: serde_json::to_vec(&value).expect("JSON values serialize"),
        content_type: "application/json",
        headers: Vec::new(),
    };
    match format {
        Format::Standard => json(standard(notice)),
        // Slack's mrkdwn: &, < and > escaped; <url|text> is a link.
        Format::Slack => json(json!({
            "text": format!("{} <{}|Open the task>", slack_escape(&notice.sentence()), notice.task_url),
        })),
        Format::Discord => json(json!({
            "content": truncate(&format!("{} {}", notice.sentence(), notice.task_url), 2000),
            "allowed_mentions": { "parse": [] },
        })),
        Format::Ntfy => Outgoing {
            body: notice.sentence().into_bytes(),
            content_type: "text/plain; charset=utf-8",
            headers: vec![
                ("title", header_text(&notice.heading())),
                ("click", notice.task_url.clone()),
                ("tags", "alarm_clock".into()),
            ],
        },
    }
}

/// The `standard` shape's JSON: the reminder's ids and times, the task's title, its due time
/// in the user's zone and its link.
fn standard(notice: &Notice<'_>) -> serde_json::Value {
    let due_local = notice.due_local();
    json!({
        "type": "reminder.due",
        "timestamp": notice.remind_at_text(),
        "data": {
            "reminder_id": notice.reminder_id,
            "task_id": notice.task_id,
            "user_id": notice.user_id,
            "remind_at": notice.remind_at_text(),
            "task": {
                "title": notice.title(),
                "due_at": notice.task_due_at.map(todo_events_domain::time::rfc3339),
                "due_local": due_local.as_ref().map(|(local, _)| local),
                "timezone": due_local.as_ref().map_or(notice.timezone, |(_, zone)| zone.as_str()),
                "url": notice.task_url,
            },
        },
    })
}

/// Sends notices to webhooks: one HTTP client (connection pool) for all endpoints, its
/// resolver the target guard, redirects off, every exchange bounded by `timeout`; built when
/// the first webhook is sent.
pub struct Webhooks {
    client: LazyClient,
}

impl Webhooks {
    pub fn new(guard: Guard, timeout: Duration) -> Self {
        Self {
            client: LazyClient::new(guard, timeout),
        }
    }

    /// Sends `notice` to `endpoint`, signed when it has a secret; `now` is the signature's
    /// timestamp (seconds since the epoch).
    pub async fn send(
        &self,
        endpoint: &WebhookEndpoint,
        notice: &Notice<'_>,
        now: i64,
    ) -> Result<(), SendError> {
        let outgoing = shape(endpoint.format, notice);
        self.post(endpoint, outgoing, notice.delivery_id(endpoint.id), now)
            .await
    }

    /// Posts `outgoing` (a reminder's [`shape`], or the daily agenda's) to `endpoint`, signed
    /// as delivery `id` when the endpoint has a secret; `now` is the signature's timestamp.
    pub async fn post(
        &self,
        endpoint: &WebhookEndpoint,
        outgoing: Outgoing,
        id: String,
        now: i64,
    ) -> Result<(), SendError> {
        let mut request = self
            .client
            .get()?
            .post(endpoint.url.clone())
            .header(reqwest::header::CONTENT_TYPE, outgoing.content_type);
        for (name, value) in &outgoing.headers {
            request = request.header(*name, value);
        }
        if let Some(signer) = &endpoint.secret {
            let signature = signer
                .sign(&id, now, &outgoing.body)
                .map_err(|e| SendError::Permanent(format!("the request cannot be signed: {e}")))?;
            request = request
                .header("webhook-id", id)
                .header("webhook-timestamp", now.to_string())
                .header("webhook-signature", signature);
        }
        let shown = redacted(&endpoint.url);
        let response = request
            .body(outgoing.body)
            .send()
            .await
            .map_err(|e| failed_exchange(&shown, &e))?;
        judge(&shown, response, &[]).await
    }
}

pub(crate) fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A header value from any text: ASCII as is, anything else as an RFC 2047 encoded word
/// (which ntfy reads), so that a title can neither break the header nor be refused.
pub(crate) fn header_text(text: &str) -> String {
    let text = truncate(&super::single_line(text), 250);
    if text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        text
    } else {
        format!(
            "=?UTF-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(text)
        )
    }
}
