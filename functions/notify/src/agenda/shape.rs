//! What an agenda says on the channels beside e-mail: a webhook's request in each of the four
//! shapes, and a push's payload, in the user's language, times in the user's zone (UTC when
//! the zone is unknown, as for reminders).

use crate::channels::truncate;
use crate::channels::webhook::{header_text, slack_escape, Format, Outgoing};
use crate::i18n::Language;
use crate::mail::compose::{wall, zoned};
use fluent_bundle::FluentArgs;
use serde_json::json;
use todo_events_domain::agenda::AgendaDue;
use todo_events_domain::time::rfc3339;
use todo_events_store::agenda::AgendaContext;

/// An agenda as the other channels carry it.
pub(super) struct AgendaNotice<'a> {
    pub due: &'a AgendaDue,
    pub ctx: &'a AgendaContext,
    pub language: &'a Language,
    pub app_url: &'a str,
}

impl AgendaNotice<'_> {
    /// The day, written in full in the user's language.
    fn date(&self) -> String {
        zoned(self.due.agenda_at, &self.ctx.timezone)
            .ok()
            .and_then(|(local, _)| self.language.formats(wall(&local)))
            .map(|f| f.date)
            .unwrap_or_else(|| self.due.date.to_string())
    }

    fn args(&self) -> FluentArgs<'static> {
        let mut args = FluentArgs::new();
        args.set("date", self.date());
        args.set("count", self.ctx.due_count);
        args
    }

    /// "Your agenda for Monday, December 7, 2026".
    pub fn heading(&self) -> String {
        self.language.text("agenda-heading", &self.args())
    }

    /// "Your day, Monday, December 7, 2026: 3 tasks due or overdue".
    pub fn sentence(&self) -> String {
        self.language.text("agenda-sentence", &self.args())
    }

    /// The listed tasks' titles, one per line.
    fn lines(&self) -> String {
        let lines: Vec<String> = (self.ctx.tasks.iter())
            .map(|t| format!("- {}", crate::mail::compose::single_line(&t.title)))
            .collect();
        lines.join("\n")
    }

    /// The deterministic id of this agenda's delivery to `endpoint` (`webhook-id`).
    pub fn delivery_id(&self, endpoint: i64) -> String {
        format!(
            "msg_agenda-{}-{}-endpoint-{endpoint}",
            self.due.user_id,
            self.due.date.format("%Y%m%d")
        )
    }
}

/// The request an agenda becomes for a webhook of `format` (without signature headers).
pub(super) fn webhook(format: Format, notice: &AgendaNotice<'_>) -> Outgoing {
    let json = |value: serde_json::Value| Outgoing {
        body: serde_json::to_vec(&value).expect("JSON values serialize"),
        content_type: "application/json",
        headers: Vec::new(),
    };
    let url = notice.app_url;
    match format {
        Format::Standard => json(standard(notice)),
        Format::Slack => json(json!({
            "text": format!("{}\n{} <{url}|{}>", slack_escape(&notice.sentence()),
                slack_escape(&notice.lines()), slack_escape(&notice.language.text("agenda-open", &FluentArgs::new()))),
        })),
        Format::Discord => json(json!({
            "content": truncate(&format!("{}\n{}\n{url}", notice.sentence(), notice.lines()), 2000),
            "allowed_mentions": { "parse": [] },
        })),
        Format::Ntfy => Outgoing {
            body: format!("{}\n{}", notice.sentence(), notice.lines()).into_bytes(),
            content_type: "text/plain; charset=utf-8",
            headers: vec![
                ("title", header_text(&notice.heading())),
                ("click", url.to_owned()),
                ("tags", "spiral_calendar".into()),
            ],
        },
    }
}

/// The `standard` shape: the agenda's user, date and tasks, each with its due time in the
/// user's zone and its link.
fn standard(notice: &AgendaNotice<'_>) -> serde_json::Value {
    let (ctx, due) = (notice.ctx, notice.due);
    let tasks: Vec<_> = (ctx.tasks.iter())
        .map(|t| {
            let local = zoned(t.due_at, &ctx.timezone).ok();
            json!({
                "task_id": t.id,
                "title": crate::mail::compose::single_line(&t.title),
                "due_at": rfc3339(t.due_at),
                "due_local": local.map(|(l, _)| l.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()),
                "overdue": t.due_at < due.agenda_at,
                "url": format!("{}/tasks/{}", notice.app_url, t.id),
            })
        })
        .collect();
    json!({
        "type": "agenda.due",
        "timestamp": rfc3339(due.agenda_at),
        "data": {
            "user_id": due.user_id,
            "date": due.date.format("%Y-%m-%d").to_string(),
            "count": ctx.due_count,
            "timezone": ctx.timezone,
            "tasks": tasks,
            "url": notice.app_url,
        },
    })
}

/// What the service worker shows: title, body and the app's URL.
pub(super) fn push(notice: &AgendaNotice<'_>) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "title": notice.heading(),
        "body": notice.sentence(),
        "url": notice.app_url,
        "tag": format!("agenda-{}", notice.due.user_id),
    }))
    .expect("JSON values serialize")
}
